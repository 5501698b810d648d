//! Bearer credentials as the server reads them: API keys by prefix, anything else as an access
//! token (raw, and as a well-signed token around arbitrary header and claims JSON, so the
//! claims parsing is reached too).
#![no_main]

use agentry_services::tokens::{API_KEY_PREFIX, api_key_prefix, hash_secret, verify_access_token};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &[u8] = b"a fuzzing secret of at least 32 bytes!";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if s.starts_with(API_KEY_PREFIX) {
        let _ = (api_key_prefix(s), hash_secret(s));
    }
    let _ = verify_access_token(SECRET, s, 1_800_000_000);
    // Split into a header and claims, sign them properly, and verify.
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid -= 1;
    }
    let (h, p) = s.split_at(mid);
    let head = format!("{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("key");
    mac.update(head.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let _ = verify_access_token(SECRET, &format!("{head}.{sig}"), 1_800_000_000);
});
