//! Streamed replies of both providers' formats (SSE events into a completion), in arbitrary
//! chunks: the same bytes read as OpenAI and as Anthropic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentry_providers::fuzz::openai_stream(data);
    agentry_providers::fuzz::anthropic_stream(data);
});
