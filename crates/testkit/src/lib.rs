//! Test support: each test gets its own server on port 0 over its own database — a fresh
//! SQLite file, or a fresh PostgreSQL database that is dropped afterwards — and talks to it
//! over real HTTP.
//!
//! PostgreSQL is reached at `AGENTRY_TEST_POSTGRES`. When that is unset the PostgreSQL half of
//! each test prints a notice and passes, except under `CI=true`, where it fails loudly.

pub mod mcp;
pub mod mock;
pub mod sse;
pub mod tool_server;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;

use agentry_api::{ApiConfig, AppState, RateLimitConfig};
use agentry_services::{AuthSettings, Mailer, Services};
use agentry_store::{Store, StoreOptions};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

/// The JWT secret every test server signs with, so tests can mint tokens of their own.
pub const TEST_JWT_SECRET: &[u8] = b"agentry-test-secret-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Knobs a test may turn before its server starts.
pub struct Setup {
    pub api: ApiConfig,
    pub auth: AuthSettings,
    pub mailer: Mailer,
    pub runtime: agentry_runtime::RuntimeOptions,
    /// Run the runtime in the server (default); off for tests that drive the queue by hand.
    pub run_runtime: bool,
    pub provider_client: agentry_providers::ClientOptions,
    /// Tool settings; tests allow loopback so tools can reach their local servers.
    pub tools: agentry_services::ToolSettings,
}

impl Default for Setup {
    fn default() -> Self {
        // Tests register many users from one address; the rate-limit tests lower these.
        let api = ApiConfig {
            rate_limits: RateLimitConfig {
                auth_per_minute: 100_000,
                api_per_minute: 100_000,
            },
            ..ApiConfig::default()
        };
        Setup {
            api,
            auth: AuthSettings::new(TEST_JWT_SECRET.to_vec()),
            mailer: Mailer::Log,
            // Short leases and polls so crash and reaper tests finish quickly.
            runtime: agentry_runtime::RuntimeOptions {
                lease: std::time::Duration::from_secs(3),
                poll: std::time::Duration::from_millis(100),
                ..Default::default()
            },
            run_runtime: true,
            provider_client: agentry_providers::ClientOptions::default(),
            tools: agentry_services::ToolSettings {
                egress: agentry_tools::Egress::parse("127.0.0.1").expect("egress"),
                ..Default::default()
            },
        }
    }
}

enum DbGuard {
    Sqlite,
    Postgres { admin_url: String, name: String },
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub store: Store,
    /// The server's services, for driving parts that have no HTTP route yet.
    pub services: Services,
    _db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A registered user and their credentials.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh: String,
    pub org_id: Uuid,
}

fn postgres_url() -> Option<String> {
    match std::env::var("AGENTRY_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but AGENTRY_TEST_POSTGRES is not set: the PostgreSQL tests must run in CI"
                );
            }
            eprintln!(
                "notice: AGENTRY_TEST_POSTGRES is not set; skipping the PostgreSQL half of this test"
            );
            None
        }
    }
}

/// `postgres://…/db?x` with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestApp {
    /// A server on SQLite, or `None` for PostgreSQL when it is not configured (outside CI).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Setup)) -> Option<TestApp> {
        let mut setup = Setup::default();
        tweak(&mut setup);
        let db = TestDb::create(backend).await?;
        let url = db.url.clone();
        let store = Store::connect(
            &url,
            &StoreOptions {
                max_connections: 8,
                ..StoreOptions::default()
            },
        )
        .await
        .expect("connect");
        store.migrate().await.expect("migrate");
        let llm = agentry_providers::Client::new(setup.provider_client).expect("provider client");
        let services = Services::new(store.clone(), setup.auth, setup.mailer, &[9u8; 32], llm)
            .and_then(|s| s.with_tools(setup.tools))
            .expect("services");
        let runtime = agentry_runtime::Runtime::new(services.clone(), setup.runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (rt_tx, mut rt_rx) = tokio::sync::watch::channel(false);
        let state = AppState::new(services.clone(), setup.api);
        if setup.run_runtime {
            tokio::spawn(runtime.run(async move {
                let _ = rt_rx.wait_for(|s| *s).await;
            }));
        }
        let live = tokio::spawn(services.clone().listen_forever());
        tokio::spawn(async move {
            let _ = agentry_api::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
            live.abort();
            let _ = rt_tx.send(true);
        });
        Some(TestApp {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            backend,
            store,
            services,
            _db: db,
            shutdown: Some(tx),
        })
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') && !path.starts_with("/api/") && !path.starts_with("/health") {
            format!("{}/api/v1{path}", self.base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request; `path` is under `/api/v1` unless it starts with `/api/`, `/health`
    /// or is given as `raw:` (for `/livez`, `/docs`…).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = match path.strip_prefix("raw:") {
            Some(p) => format!("{}{p}", self.base),
            None => self.url(path),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        Resp::read(res).await
    }

    /// Opens an event stream (`GET` unless `body` is given, then `POST`), asserting `200` and
    /// `text/event-stream`.
    pub async fn sse(
        &self,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> sse::SseReader {
        let mut req = match &body {
            Some(b) => self.client.post(self.url(path)).json(b),
            None => self.client.get(self.url(path)),
        }
        .bearer_auth(token)
        .header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status().as_u16(), 200, "opening the stream {path}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        sse::SseReader::new(res)
    }

    /// Opens the WebSocket with these headers (`Err(status)` when refused over HTTP).
    pub async fn ws(&self, query: &str, headers: &[(&str, &str)]) -> Result<ws::WsClient, u16> {
        ws::WsClient::connect(&format!("ws://{}/api/v1/ws{query}", self.addr), headers).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call("POST", path, token, Some(body)).await
    }

    /// Registers a user with a unique email.
    pub async fn register(&self, name: &str) -> User {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            Uuid::now_v7().simple()
        );
        let password = "correct horse battery".to_string();
        let r = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "register: {}", r.text);
        User {
            id: r.body["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
            email,
            password,
            token: r.body["access_token"].as_str().expect("token").to_string(),
            refresh: r.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_string(),
            org_id: r.body["org"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("org id"),
        }
    }

    /// Adds `user` to `org` with `role`, acting as `admin`.
    pub async fn add_member(&self, admin: &User, org: Uuid, user: &User, role: &str) {
        let r = self
            .post(
                &format!("/orgs/{org}/members"),
                Some(&admin.token),
                json!({"email": user.email, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "add member: {}", r.text);
    }

    /// Creates an API key in `user`'s default org with `role`; returns the secret.
    pub async fn api_key(&self, user: &User, role: &str) -> String {
        let r = self
            .post(
                "/api-keys",
                Some(&user.token),
                json!({"name": format!("{role} key"), "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "api key: {}", r.text);
        r.body["key"].as_str().expect("key").to_string()
    }
}

impl Resp {
    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A database of a test's own: a fresh SQLite file in a temporary directory, or a fresh
/// PostgreSQL database. Removed (dropped) with this value.
pub struct TestDb {
    pub url: String,
    /// The temporary directory (SQLite), usable as the server's data directory.
    pub dir: PathBuf,
    guard: DbGuard,
}

impl TestDb {
    /// `None` for PostgreSQL when it is not configured (outside CI).
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let dir = std::env::temp_dir().join(format!("agentry-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (url, guard) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.join("agentry.db").display()),
                DbGuard::Sqlite,
            ),
            Backend::Postgres => {
                let Some(admin_url) = postgres_url() else {
                    let _ = std::fs::remove_dir_all(&dir);
                    return None;
                };
                let name = format!("agentry_test_{}", Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at AGENTRY_TEST_POSTGRES is unreachable: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                (
                    with_database(&admin_url, &name),
                    DbGuard::Postgres { admin_url, name },
                )
            }
        };
        Some(TestDb { url, dir, guard })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let DbGuard::Postgres { admin_url, name } = &self.guard {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop may run inside the test's runtime; do the async cleanup on a thread of its own.
            let t = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            });
            let _ = t.join();
        }
    }
}

/// Runs a test body against SQLite and against PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, setup = $tweak:expr, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some($app) = $crate::TestApp::spawn_with($crate::Backend::Sqlite, $tweak).await
                else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) =
                    $crate::TestApp::spawn_with($crate::Backend::Postgres, $tweak).await
                else {
                    return;
                };
                $body
            }
        }
    };
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some($app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = $crate::TestApp::spawn($crate::Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "t2"),
            "postgres://h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
