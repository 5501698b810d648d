//! The real `agentry` binary, started on a test database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::process::Stdio;
use std::time::Duration;

use agentry_testkit::TestDb;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(30);

pub struct Server {
    child: tokio::process::Child,
    pub base: String,
    pub addr: String,
    http: reqwest::Client,
}

impl Server {
    pub async fn start(db: &TestDb) -> Server {
        Server::start_with(db, "all").await
    }

    /// `agentry serve --role <role>` on `db`, sharing its data directory (and so its secrets)
    /// with any other server started on it.
    pub async fn start_with(db: &TestDb, role: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentry"))
            .arg("serve")
            .arg("--role")
            .arg(role)
            .env("AGENTRY_DATA_DIR", &db.dir)
            .env("AGENTRY_DATABASE_URL", &db.url)
            .env("AGENTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGENTRY_LEASE_SECONDS", "2")
            .env("AGENTRY_MASTER_KEY", "11".repeat(32))
            .env("AGENTRY_EGRESS_ALLOW", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            if let Ok(r) = s.http.get(format!("{}/readyz", s.base)).send().await
                && r.status() == 200
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/api/v1{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// SIGKILL: no drain, no cleanup.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}
