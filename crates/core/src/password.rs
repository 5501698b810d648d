//! Passwords as clients send them: checked for length, never printed.

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// A password that met the policy. Its `Debug` output is redacted so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least 8 characters")]
    TooShort,
    #[error("must be at most 128 characters")]
    TooLong,
    #[error("must not be only whitespace")]
    Blank,
    #[error("must not contain control characters")]
    Control,
}

impl Password {
    pub fn parse(input: &str) -> Result<Password, PasswordError> {
        let n = input.chars().count();
        if n < MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if n > MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        if input.trim().is_empty() {
            return Err(PasswordError::Blank);
        }
        if input.chars().any(char::is_control) {
            return Err(PasswordError::Control);
        }
        Ok(Password(input.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn policy() {
        assert!(Password::parse("correct horse").is_ok());
        assert_eq!(Password::parse("short"), Err(PasswordError::TooShort));
        assert_eq!(Password::parse("        "), Err(PasswordError::Blank));
        assert_eq!(
            Password::parse(&"x".repeat(129)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            Password::parse("abc\u{0}defgh"),
            Err(PasswordError::Control)
        );
        // Length counts characters, not bytes.
        assert!(Password::parse("ééééééé").is_err());
        assert!(Password::parse("éééééééé").is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::parse("super secret pw").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn accepted_passwords_meet_policy(s in "\\PC{0,140}") {
            if let Ok(p) = Password::parse(&s) {
                let n = p.expose().chars().count();
                prop_assert!((MIN_CHARS..=MAX_CHARS).contains(&n));
            } else {
                let n = s.chars().count();
                prop_assert!(!(MIN_CHARS..=MAX_CHARS).contains(&n) || s.trim().is_empty() || s.chars().any(char::is_control));
            }
        }
    }
}
