//! Prices and cost.
//!
//! Prices are micro-USD per million tokens, so a price of `2_500_000` is $2.50 per million.
//! Cost is integer micro-USD: `(uncached input × input + cached input × cached_input +
//! output × output) / 1,000,000`, rounded half up, in 128-bit arithmetic. Reasoning tokens are
//! part of the output tokens (both vendors bill them as output) and are not added again.
//!
//! The built-in table: list prices published by OpenAI (openai.com/api/pricing) and Anthropic
//! (anthropic.com/pricing) as of 2025-11-01, for standard (not batch) processing. Prompt-cache
//! writes are billed here at the input price. Prices change: a provider's `prices` overrides
//! this table, and a model in neither gets a `null` cost, never a guess.

use serde::{Deserialize, Serialize};

use crate::{Kind, Usage};

/// A model's price in micro-USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    #[serde(deserialize_with = "whole")]
    pub input: u64,
    /// When absent, cached input is billed as input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_or_null"
    )]
    pub cached_input: Option<u64>,
    #[serde(deserialize_with = "whole")]
    pub output: u64,
}

/// A whole number of at least 0; written with a fraction (`34.0`) it is still that integer,
/// as JSON Schema counts it.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..9.0e15).contains(f))
                .map(|f| f as u64)
        })
        .ok_or_else(|| serde::de::Error::custom("expected a whole number of at least 0"))
}

fn whole_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// The date the built-in table was taken.
pub const TABLE_DATE: &str = "2025-11-01";

const fn p(input: u64, cached: u64, output: u64) -> Price {
    Price {
        input,
        cached_input: Some(cached),
        output,
    }
}

/// (kind, model, price). A model named with a date suffix (`claude-sonnet-4-5-20250929`,
/// `gpt-4o-2024-08-06`) takes the price of its base name.
const TABLE: &[(Kind, &str, Price)] = &[
    (Kind::OpenAi, "gpt-5", p(1_250_000, 125_000, 10_000_000)),
    (Kind::OpenAi, "gpt-5-mini", p(250_000, 25_000, 2_000_000)),
    (Kind::OpenAi, "gpt-5-nano", p(50_000, 5_000, 400_000)),
    (Kind::OpenAi, "gpt-4.1", p(2_000_000, 500_000, 8_000_000)),
    (Kind::OpenAi, "gpt-4.1-mini", p(400_000, 100_000, 1_600_000)),
    (Kind::OpenAi, "gpt-4.1-nano", p(100_000, 25_000, 400_000)),
    (Kind::OpenAi, "gpt-4o", p(2_500_000, 1_250_000, 10_000_000)),
    (Kind::OpenAi, "gpt-4o-mini", p(150_000, 75_000, 600_000)),
    (Kind::OpenAi, "o3", p(2_000_000, 500_000, 8_000_000)),
    (Kind::OpenAi, "o4-mini", p(1_100_000, 275_000, 4_400_000)),
    (Kind::OpenAi, "o3-mini", p(1_100_000, 550_000, 4_400_000)),
    (
        Kind::Anthropic,
        "claude-opus-4-1",
        p(15_000_000, 1_500_000, 75_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-opus-4",
        p(15_000_000, 1_500_000, 75_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-sonnet-4-5",
        p(3_000_000, 300_000, 15_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-sonnet-4",
        p(3_000_000, 300_000, 15_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-3-7-sonnet",
        p(3_000_000, 300_000, 15_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-haiku-4-5",
        p(1_000_000, 100_000, 5_000_000),
    ),
    (
        Kind::Anthropic,
        "claude-3-5-haiku",
        p(800_000, 80_000, 4_000_000),
    ),
];

/// The built-in price of `model` on a provider of `kind`, if the table knows it. `echo` is free.
pub fn builtin(kind: Kind, model: &str) -> Option<Price> {
    if kind == Kind::Echo {
        return Some(p(0, 0, 0));
    }
    TABLE
        .iter()
        .filter(|(k, name, _)| *k == kind && matches_model(name, model))
        .max_by_key(|(_, name, _)| name.len())
        .map(|(_, _, price)| *price)
}

/// `model` is `name`, or `name` followed by a date or `-latest`.
fn matches_model(name: &str, model: &str) -> bool {
    match model.strip_prefix(name) {
        Some("") | Some("-latest") => true,
        Some(rest) => {
            rest.starts_with('-')
                && rest[1..].chars().all(|c| c.is_ascii_digit() || c == '-')
                && rest.chars().filter(char::is_ascii_digit).count() >= 4
        }
        None => false,
    }
}

/// The cost of `usage` at `price`, in micro-USD.
pub fn cost_micros(usage: &Usage, price: &Price) -> u64 {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let uncached = usage.input_tokens - cached;
    let total = u128::from(uncached) * u128::from(price.input)
        + u128::from(cached) * u128::from(price.cached_input.unwrap_or(price.input))
        + u128::from(usage.output_tokens) * u128::from(price.output);
    u64::try_from((total + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_whole_numbers_however_written() {
        let p: Price =
            serde_json::from_str(r#"{"input": 34.0, "output": 7, "cached_input": null}"#).unwrap();
        assert_eq!((p.input, p.output, p.cached_input), (34, 7, None));
        let p: Price =
            serde_json::from_str(r#"{"input": 1, "output": 2, "cached_input": 3.0}"#).unwrap();
        assert_eq!(p.cached_input, Some(3));
        for bad in [
            r#"{"input": 1.5, "output": 2}"#,
            r#"{"input": -1, "output": 2}"#,
            r#"{"input": "1", "output": 2}"#,
        ] {
            assert!(serde_json::from_str::<Price>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dated_names_take_their_base_price_and_others_none() {
        let mini = builtin(Kind::OpenAi, "gpt-4o-mini").unwrap();
        assert_eq!(builtin(Kind::OpenAi, "gpt-4o-mini-2024-07-18"), Some(mini));
        assert_ne!(builtin(Kind::OpenAi, "gpt-4o"), Some(mini));
        assert_eq!(builtin(Kind::OpenAi, "gpt-4o-audio-preview"), None);
        assert_eq!(builtin(Kind::OpenAi, "llama3"), None);
        assert_eq!(builtin(Kind::Anthropic, "gpt-4o"), None);
        assert!(builtin(Kind::Anthropic, "claude-sonnet-4-5-20250929").is_some());
        assert!(builtin(Kind::Anthropic, "claude-3-5-haiku-latest").is_some());
    }

    #[test]
    fn cost_is_exact_integer_micros() {
        let price = p(2_500_000, 1_250_000, 10_000_000);
        let u = Usage {
            input_tokens: 1_000,
            cached_input_tokens: 400,
            output_tokens: 200,
            reasoning_tokens: 50,
        };
        // 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 µUSD
        assert_eq!(cost_micros(&u, &price), 4_000);
        // Half a micro-dollar rounds up: 1 token at $0.50/M.
        let half = Price {
            input: 500_000,
            cached_input: None,
            output: 0,
        };
        let one = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(cost_micros(&one, &half), 1);
        let huge = Usage {
            input_tokens: u64::MAX,
            ..Usage::default()
        };
        assert_eq!(cost_micros(&huge, &price), u64::MAX);
    }
}
