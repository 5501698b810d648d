//! Starting the `agentry` binary under test on a fresh SQLite data directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process; killed and its data directory removed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    keep_dir: bool,
}

impl Server {
    /// Spawns `bin serve` on `dir` listening on `port` with extra environment `env`, and returns
    /// once it is spawned (not yet ready).
    pub fn spawn(bin: &str, dir: PathBuf, port: u16, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("AGENTRY_DATA_DIR", &dir)
            .env("AGENTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "AGENTRY_LOG",
                std::env::var("AGENTRY_BENCH_SERVER_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The server's log, when asked for (to see why a run went wrong), at
        // `AGENTRY_BENCH_SERVER_LOG_LEVEL` (an `AGENTRY_LOG` filter; default `warn`).
        if let Some(path) = std::env::var_os("AGENTRY_BENCH_SERVER_LOG") {
            cmd.stderr(std::fs::File::create(path)?);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(Server {
            child: cmd.spawn()?,
            port,
            dir,
            keep_dir: false,
        })
    }

    /// Keeps the data directory when the server is dropped (to restart on it).
    pub fn keep_dir(mut self) -> Self {
        self.keep_dir = true;
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls `/readyz` until it answers 200; returns the time since `started`.
    pub async fn wait_ready(&self, started: Instant) -> anyhow::Result<Duration> {
        let client = reqwest::Client::new();
        let url = self.url("/readyz");
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(Instant::now() < deadline, "server did not become ready");
            tokio::task::yield_now().await;
        }
    }

    /// Resident and peak resident memory of the process, in KiB.
    pub fn memory_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh, unused data directory path under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agentry-bench-{}-{tag}", std::process::id()))
}

/// Median, min and max of a sample.
pub fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The `q` quantile (0–1) of a sample, nearest rank; sorts it.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// `{"p50", "p99", "max"}` of a sample.
pub fn quantiles(v: &mut [f64]) -> serde_json::Value {
    serde_json::json!({
        "p50": quantile(v, 0.5), "p99": quantile(v, 0.99), "max": quantile(v, 1.0),
    })
}
