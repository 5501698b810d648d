//! List cursors and limits from query strings.
#![no_main]

use agentry_core::cursor::{Cursor, parse_limit};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = Cursor::decode(s) {
            // What decodes encodes back to something that decodes the same.
            let again = Cursor::decode(&c.encode()).expect("a cursor re-encodes");
            assert_eq!(again.encode(), c.encode());
        }
        let _ = parse_limit(Some(s));
    }
});
