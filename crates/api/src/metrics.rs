//! Prometheus metrics: request counts and latency histograms by route, method and status.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    counts: [u64; BUCKETS.len()],
    total: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<HashMap<(String, &'static str, u16), Series>>,
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn observe(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let secs = elapsed.as_secs_f64();
        let mut map = match self.series.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let s = map
            .entry((route.to_string(), method_label(method), status))
            .or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.counts[i] += 1;
            }
        }
        s.total += 1;
        s.sum += secs;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let map = match self.series.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut keys: Vec<_> = map.keys().collect();
        keys.sort();
        let mut out = String::new();
        out.push_str(
            "# HELP agentry_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE agentry_http_requests_total counter\n");
        for k in &keys {
            let s = &map[*k];
            let _ = writeln!(
                out,
                "agentry_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
                escape(&k.0),
                k.1,
                k.2,
                s.total
            );
        }
        out.push_str("# HELP agentry_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE agentry_http_request_duration_seconds histogram\n");
        for k in &keys {
            let s = &map[*k];
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{}\"",
                escape(&k.0),
                k.1,
                k.2
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "agentry_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "agentry_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.total
            );
            let _ = writeln!(
                out,
                "agentry_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "agentry_http_request_duration_seconds_count{{{labels}}} {}",
                s.total
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.observe(
            "/api/v1/auth/me",
            &axum::http::Method::GET,
            200,
            Duration::from_millis(2),
        );
        m.observe(
            "/api/v1/auth/me",
            &axum::http::Method::GET,
            200,
            Duration::from_millis(30),
        );
        let text = m.render();
        assert!(text.contains(
            r#"agentry_http_requests_total{route="/api/v1/auth/me",method="GET",status="200"} 2"#
        ));
        assert!(text.contains(r#"le="0.0025"} 1"#));
        assert!(text.contains(r#"le="0.05"} 2"#));
        assert!(text.contains(r#"le="+Inf"} 2"#));
    }
}
