//! The SSE reader providers' streams go through, fed in arbitrary chunks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentry_providers::fuzz::sse(data);
});
