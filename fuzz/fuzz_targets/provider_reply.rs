//! Whole replies of both providers' formats: the same bytes read as OpenAI and as Anthropic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentry_providers::fuzz::openai_reply(data);
    agentry_providers::fuzz::anthropic_reply(data);
});
