//! Tool and output schemas, and the arguments checked against them: `[schema, value]`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Array(pair)) = serde_json::from_slice(data) else {
        return;
    };
    let (Some(schema), Some(value)) = (pair.first(), pair.get(1)) else {
        return;
    };
    if agentry_core::schema::check(schema).is_ok() {
        let _ = agentry_core::schema::validate(schema, value);
    }
});
