//! Organization slugs: short, lowercase, URL-safe names.

use serde::Serialize;

pub const MIN_LEN: usize = 2;
pub const MAX_LEN: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("must be 2 to 48 characters")]
    Length,
    #[error(
        "must use lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
    )]
    Invalid,
}

impl Slug {
    pub fn parse(input: &str) -> Result<Slug, SlugError> {
        let s = input;
        if s.len() < MIN_LEN || s.len() > MAX_LEN {
            return Err(SlugError::Length);
        }
        let ok = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        if ok {
            Ok(Slug(s.to_string()))
        } else {
            Err(SlugError::Invalid)
        }
    }

    /// A slug made from a display name ("Acme Corp." → "acme-corp"), or `None` when the name
    /// has too few usable characters.
    pub fn from_name(name: &str) -> Option<Slug> {
        let mut out = String::new();
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            if out.len() >= MAX_LEN - 7 {
                break;
            }
        }
        let trimmed = out.trim_end_matches('-');
        Slug::parse(trimmed).ok()
    }

    /// This slug with a suffix, used to make a derived slug unique.
    pub fn with_suffix(&self, suffix: &str) -> Option<Slug> {
        let mut base = self.0.clone();
        base.truncate(MAX_LEN - suffix.len() - 1);
        Slug::parse(&format!("{}-{suffix}", base.trim_end_matches('-'))).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_good_and_rejects_bad() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-2").is_ok());
        for bad in [
            "a",
            "-acme",
            "acme-",
            "ac--me",
            "Acme",
            "ac me",
            "acmé",
            &"a".repeat(49),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn derives_from_names() {
        assert_eq!(Slug::from_name("Acme Corp.").unwrap().as_str(), "acme-corp");
        assert_eq!(
            Slug::from_name("  Ada's   team!! ").unwrap().as_str(),
            "ada-s-team"
        );
        assert_eq!(Slug::from_name("東京"), None);
        let s = Slug::from_name("acme").unwrap();
        assert_eq!(s.with_suffix("x1y2").unwrap().as_str(), "acme-x1y2");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_valid(s in "\\PC{0,60}") {
            if let Ok(slug) = Slug::parse(&s) {
                prop_assert!(slug.as_str().len() >= MIN_LEN && slug.as_str().len() <= MAX_LEN);
                prop_assert!(!slug.as_str().contains("--"));
            }
        }

        #[test]
        fn derived_slugs_are_valid(name in "\\PC{0,80}") {
            if let Some(slug) = Slug::from_name(&name) {
                prop_assert_eq!(Slug::parse(slug.as_str()), Ok(slug.clone()));
                prop_assert!(slug.with_suffix("abcd1234").is_some());
            }
        }
    }
}
