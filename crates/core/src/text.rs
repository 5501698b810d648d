//! Free-text fields such as names: trimmed, bounded, no control characters.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
}

/// A trimmed, non-empty single-line text of at most `max` characters.
pub fn parse_line(input: &str, max: usize) -> Result<String, TextError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(TextError::Empty);
    }
    if s.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    if s.chars().any(char::is_control) {
        return Err(TextError::Control);
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(parse_line("  Ada  ", 10), Ok("Ada".into()));
        assert_eq!(parse_line("   ", 10), Err(TextError::Empty));
        assert_eq!(parse_line("abcdef", 5), Err(TextError::TooLong(5)));
        assert_eq!(parse_line("a\tb", 5), Err(TextError::Control));
    }
}
