//! Benchmarks that need a running server: startup time to a ready `/readyz` and idle RSS.
//!
//! `cargo build --release && cargo run --release -p agentry-bench -- target/release/agentry`
//! Each run starts the binary on a fresh SQLite data dir (first start: migrations), then again
//! on the same dir (a migrated database), and reports the median, min and max of five runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn start_once(
    bin: &str,
    dir: &std::path::Path,
    port: u16,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("serve")
        .env("AGENTRY_DATA_DIR", dir)
        .env("AGENTRY_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENTRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = started + Duration::from_secs(30);
    let ready = loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            break started.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "server did not become ready");
        tokio::task::yield_now().await;
    };
    // Let the process settle before reading its idle memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kb(child.id()).unwrap_or(0);
    child.kill()?;
    child.wait()?;
    Ok((ready, rss))
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/agentry".into());
    let mut first = vec![];
    let mut warm = vec![];
    let mut rss = vec![];
    for i in 0..5u16 {
        let dir = std::env::temp_dir().join(format!("agentry-bench-{}-{i}", std::process::id()));
        let (t1, _) = start_once(&bin, &dir, 18_500 + i).await?;
        let (t2, r2) = start_once(&bin, &dir, 18_600 + i).await?;
        first.push(t1.as_secs_f64() * 1000.0);
        warm.push(t2.as_secs_f64() * 1000.0);
        rss.push(r2 as f64 / 1024.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let out = serde_json::json!({
        "startup_first_ms": summary(first),
        "startup_migrated_ms": summary(warm),
        "idle_rss_mb": summary(rss),
        "note": "(median, min, max) of 5 runs; SQLite; release build",
    });
    std::io::Write::write_all(
        &mut std::io::stdout(),
        format!("{}\n", serde_json::to_string_pretty(&out)?).as_bytes(),
    )?;
    Ok(())
}
