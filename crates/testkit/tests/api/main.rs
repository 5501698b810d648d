//! End-to-end tests of the HTTP API: a real server on port 0 per test, over real HTTP, on
//! SQLite and on PostgreSQL.

mod conversations;
mod events;
mod executions;
mod http;
mod identity;
mod keys;
mod lists;
mod matrices;
mod mcp;
mod orgs;
mod ratelimit;
mod resources;
mod runtime;
mod scenario;
mod streams;
mod tokens;
mod tools;
mod websocket;

pub use agentry_testkit::{Backend, Resp, TestApp, User, both_backends};
pub use serde_json::{Value, json};
