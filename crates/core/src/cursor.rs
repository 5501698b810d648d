//! Opaque pagination cursors.
//!
//! A cursor names the last row a page ended on (its id, and the value of the sort key when the
//! sort is not by id). Clients treat it as an opaque string.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The id of the last row of the previous page.
    pub id: Uuid,
    /// The sort key's value on that row, for sorts other than by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The sort column's value on that row, for sorts by a column other than id.
    #[serde(default, rename = "v", skip_serializing_if = "Option::is_none")]
    pub value: Option<KeyValue>,
}

/// The value of a sort column, as carried in a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyValue {
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "t")]
    Time(DateTime<Utc>),
}

/// The type of a sort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Text,
    Time,
}

impl KeyValue {
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyValue::Int(_) => KeyKind::Int,
            KeyValue::Text(_) => KeyKind::Text,
            KeyValue::Time(_) => KeyKind::Time,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a valid cursor")]
pub struct CursorError;

impl Cursor {
    pub fn after(id: Uuid) -> Cursor {
        Cursor {
            id,
            key: None,
            value: None,
        }
    }

    pub fn encode(&self) -> String {
        // Serializing a struct of a Uuid and an optional String cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str) -> Result<Cursor, CursorError> {
        if s.is_empty() || s.len() > 1024 {
            return Err(CursorError);
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        serde_json::from_slice(&bytes).map_err(|_| CursorError)
    }
}

/// Page size: 1 to 200, default 50.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, &'static str> {
    match raw {
        None => Ok(50),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err("must be an integer from 1 to 200"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let c = Cursor {
            id: crate::new_id(),
            key: Some("-due_at".into()),
            value: Some(KeyValue::Time(Utc::now())),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        let c = Cursor {
            id: crate::new_id(),
            key: Some("name".into()),
            value: Some(KeyValue::Text("Zed".into())),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        let c = Cursor::after(crate::new_id());
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("200")), Ok(200));
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("201")).is_err());
        assert!(parse_limit(Some("-1")).is_err());
        assert!(parse_limit(Some("ten")).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC{0,200}") {
            let _ = Cursor::decode(&s);
        }

        #[test]
        fn any_cursor_round_trips(bytes in any::<[u8; 16]>(), key in proptest::option::of("\\PC{0,40}")) {
            let c = Cursor { id: Uuid::from_bytes(bytes), key, value: Some(KeyValue::Int(7)) };
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
    }
}
