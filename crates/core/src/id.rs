//! Identifiers: UUIDv7, so ids sort by creation time and keyset pagination can use them.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A new id together with the creation time embedded in it, so `created_at` and id order agree.
pub fn new_id_at() -> (Uuid, DateTime<Utc>) {
    let id = new_id();
    (id, id_time(&id).unwrap_or_else(Utc::now))
}

/// The time a UUIDv7 was minted, at millisecond precision.
pub fn id_time(id: &Uuid) -> Option<DateTime<Utc>> {
    let ts = id.get_timestamp()?;
    let (secs, nanos) = ts.to_unix();
    let millis = i64::try_from(secs).ok()? * 1000 + i64::from(nanos / 1_000_000);
    Utc.timestamp_millis_opt(millis).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_ordered() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn creation_time_matches_id() {
        let before = Utc::now().timestamp_millis();
        let (id, at) = new_id_at();
        let after = Utc::now().timestamp_millis();
        assert!(at.timestamp_millis() >= before && at.timestamp_millis() <= after);
        assert_eq!(id_time(&id), Some(at));
    }
}
