//! The mock MCP server over stdio: one JSON-RPC message a line in, one answer a line out.

use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str(&line) else {
            continue;
        };
        if let Some(answer) = agentry_testkit::mcp::handle(&msg)
            && writeln!(out, "{answer}")
                .and_then(|()| out.flush())
                .is_err()
        {
            return;
        }
    }
}
