//! Fixed-window rate limits kept in memory, per replica.
//!
//! A window is one minute. Each key (an IP, an email, a principal) counts its requests in the
//! current window; past the limit the caller gets `429 rate_limited` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::RateLimitConfig;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many keys, expired windows are swept.
const SWEEP_AT: usize = 100_000;

/// The outcome of one check, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

pub struct Limiter {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(limit: u32) -> Limiter {
        Limiter {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: &str) -> Decision {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Decision {
        let mut map = match self.windows.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= SWEEP_AT {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let reset_secs = WINDOW
            .saturating_sub(now.duration_since(entry.0))
            .as_secs()
            .max(1);
        if entry.1 >= self.limit {
            return Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_secs,
            };
        }
        entry.1 += 1;
        Decision {
            allowed: true,
            limit: self.limit,
            remaining: self.limit - entry.1,
            reset_secs,
        }
    }
}

pub struct RateLimits {
    pub auth: Limiter,
    pub api: Limiter,
}

impl RateLimits {
    pub fn new(cfg: RateLimitConfig) -> RateLimits {
        RateLimits {
            auth: Limiter::new(cfg.auth_per_minute),
            api: Limiter::new(cfg.api_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_a_window_and_resets_after() {
        let l = Limiter::new(2);
        let t0 = Instant::now();
        assert!(l.check_at("a", t0).allowed);
        let d = l.check_at("a", t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let d = l.check_at("a", t0 + Duration::from_secs(1));
        assert!(!d.allowed);
        assert_eq!(d.reset_secs, 59);
        assert!(l.check_at("b", t0).allowed, "keys are independent");
        assert!(
            l.check_at("a", t0 + WINDOW).allowed,
            "a new window starts fresh"
        );
    }
}
