//! An HTTP server on 127.0.0.1 for declared HTTP tools to call: it counts the requests to each
//! path (and each path with its query) and answers `{"path", "n"}` as JSON, except on paths told to hang, where it never
//! answers (until told otherwise). Stops when dropped.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};

#[derive(Default)]
struct Shared {
    hits: Mutex<HashMap<String, usize>>,
    hang: Mutex<HashSet<String>>,
}

pub struct ToolServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(s): State<Arc<Shared>>, uri: Uri) -> axum::Json<Value> {
    let path = uri.path().to_string();
    let n = {
        let mut hits = s.hits.lock().unwrap();
        if let Some(q) = uri.query() {
            *hits.entry(format!("{path}?{q}")).or_default() += 1;
        }
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    if s.hang.lock().unwrap().contains(&path) {
        std::future::pending::<()>().await;
    }
    axum::Json(json!({"path": path, "n": n}))
}

impl ToolServer {
    pub async fn start() -> ToolServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ToolServer { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests reached `path` (or exactly `path?query`).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Makes requests to `path` hang (`true`) or answer again (`false`).
    pub fn hang(&self, path: &str, on: bool) {
        let mut h = self.shared.hang.lock().unwrap();
        if on {
            h.insert(path.to_string());
        } else {
            h.remove(path);
        }
    }

    /// A declared HTTP tool `name` that GETs `path` here.
    pub fn tool(&self, name: &str, path: &str) -> Value {
        json!({"type": "http", "name": name, "description": format!("Calls {path}."),
               "method": "GET", "url": self.url(path),
               "input_schema": {"type": "object", "properties": {}}})
    }
}
