//! Tool declarations on agents (API.md "Agents"): their shape, and the secret header values of
//! HTTP tools, which are sealed apart from the declarations so no view, version or log holds
//! them. A secret header is sent as `{"secret": "<value>"}` and shown as `{"secret": true}`;
//! sending `{"secret": true}` back keeps the value stored for that tool and header.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{ServiceResult, Services};

pub const BUILTINS: &[&str] = &["http_request", "current_time", "call_agent"];
pub const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Secret header values by tool name, then header name.
pub type ToolSecrets = BTreeMap<String, BTreeMap<String, String>>;

/// Whether `name` is a valid tool name (the vendors' rule: letters, digits, `_`, `-`).
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks declarations and takes the secrets out of them. `old` holds the values stored
/// before, for `{"secret": true}`. Returns the declarations to store and the secrets to seal.
pub fn prepare(v: &Value, old: &ToolSecrets) -> Result<(Value, ToolSecrets), String> {
    let list = v.as_array().ok_or("must be a list of tool declarations")?;
    if list.len() > 64 {
        return Err("at most 64 tools".into());
    }
    let mut names: Vec<String> = vec![];
    let mut out = vec![];
    let mut secrets = ToolSecrets::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let obj = t.as_object().ok_or(format!("{at}: must be an object"))?;
        let decl = match obj.get("type").and_then(Value::as_str) {
            Some("builtin") => {
                let name = t["name"].as_str().unwrap_or_default();
                if !BUILTINS.contains(&name) {
                    return Err(format!(
                        "{at}: builtin name must be http_request, current_time or call_agent"
                    ));
                }
                names.push(name.into());
                json!({"type": "builtin", "name": name})
            }
            Some("http") => {
                let (decl, hs) = http_tool(&at, t, old)?;
                let name = decl["name"].as_str().unwrap_or_default().to_string();
                if !hs.is_empty() {
                    secrets.insert(name.clone(), hs);
                }
                names.push(name);
                decl
            }
            Some("mcp") => {
                let id = t["server_id"]
                    .as_str()
                    .and_then(|s| s.parse::<uuid::Uuid>().ok())
                    .ok_or(format!(
                        "{at}: an mcp tool needs server_id (an MCP server's id)"
                    ))?;
                let mut d = json!({"type": "mcp", "server_id": id});
                match t.get("tools") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(a))
                        if a.len() <= 256
                            && a.iter().all(|n| n.as_str().is_some_and(valid_tool_name)) =>
                    {
                        d["tools"] = json!(a);
                    }
                    Some(_) => {
                        return Err(format!("{at}: tools must be a list of tool names"));
                    }
                }
                d
            }
            _ => return Err(format!("{at}: type must be builtin, http or mcp")),
        };
        out.push(decl);
    }
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two tools are named {}", w[0]));
    }
    Ok((Value::Array(out), secrets))
}

fn http_tool(
    at: &str,
    t: &Value,
    old: &ToolSecrets,
) -> Result<(Value, BTreeMap<String, String>), String> {
    let name = t["name"].as_str().unwrap_or_default();
    if !valid_tool_name(name) {
        return Err(format!(
            "{at}: name must be 1 to 64 letters, digits, _ or -"
        ));
    }
    if BUILTINS.contains(&name) {
        return Err(format!("{at}: {name} is the name of a built-in tool"));
    }
    let description = match &t["description"] {
        Value::Null => "",
        Value::String(s) if s.len() <= 4096 => s,
        _ => {
            return Err(format!(
                "{at}: description must be text of at most 4096 bytes"
            ));
        }
    };
    let schema = match &t["input_schema"] {
        Value::Null => json!({"type": "object", "properties": {}}),
        s => s.clone(),
    };
    agentry_core::schema::check(&schema).map_err(|e| format!("{at}: input_schema {e}"))?;
    if schema["type"] != "object" {
        return Err(format!("{at}: input_schema must be of type object"));
    }
    let method = t["method"].as_str().unwrap_or("GET").to_ascii_uppercase();
    if !HTTP_METHODS.contains(&method.as_str()) {
        return Err(format!(
            "{at}: method must be one of {}",
            HTTP_METHODS.join(", ")
        ));
    }
    let url = t["url"].as_str().unwrap_or_default();
    // Placeholders `{arg}` are filled at call time; the rest must already be a URL.
    let probe = placeholders_filled(url);
    match reqwest_url_ok(&probe) {
        true if url.len() <= 2048 => {}
        _ => return Err(format!("{at}: url must be an http or https URL")),
    }
    let mut headers = serde_json::Map::new();
    let mut secret = BTreeMap::new();
    match &t["headers"] {
        Value::Null => {}
        Value::Object(h) if h.len() <= 32 => {
            for (k, v) in h {
                if k.is_empty()
                    || k.len() > 256
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                {
                    return Err(format!("{at}: {k:?} is not a header name"));
                }
                match v {
                    Value::String(s) if s.len() <= 8192 => {
                        headers.insert(k.clone(), json!(s));
                    }
                    Value::Object(o) if o.len() == 1 => match o.get("secret") {
                        Some(Value::String(s)) if s.len() <= 8192 => {
                            secret.insert(k.clone(), s.clone());
                            headers.insert(k.clone(), json!({"secret": true}));
                        }
                        Some(Value::Bool(true)) => {
                            let kept = old
                                .get(name)
                                .and_then(|m| m.get(k))
                                .ok_or(format!("{at}: no secret is stored for header {k}"))?;
                            secret.insert(k.clone(), kept.clone());
                            headers.insert(k.clone(), json!({"secret": true}));
                        }
                        _ => {
                            return Err(format!(
                                "{at}: header {k} must be text or {{\"secret\": \"…\"}}"
                            ));
                        }
                    },
                    _ => {
                        return Err(format!(
                            "{at}: header {k} must be text or {{\"secret\": \"…\"}}"
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(format!(
                "{at}: headers must be an object of at most 32 headers"
            ));
        }
    }
    Ok((
        json!({"type": "http", "name": name, "description": description, "input_schema": schema,
               "method": method, "url": url, "headers": headers}),
        secret,
    ))
}

/// The URL with each `{name}` placeholder replaced by `x`.
fn placeholders_filled(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push('x');
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn reqwest_url_ok(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > "https://".len()
        && !s.chars().any(char::is_whitespace)
}

impl Services {
    /// The agent's sealed tool secrets, opened.
    pub fn open_tool_secrets(&self, sealed: Option<&[u8]>) -> ServiceResult<ToolSecrets> {
        self.open_json(sealed)
    }

    /// Seals tool secrets (`None` when there are none).
    pub fn seal_tool_secrets(&self, s: &ToolSecrets) -> ServiceResult<Option<Vec<u8>>> {
        self.seal_json(s, s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_taken_out_and_kept_on_round_trip() {
        let decl = json!([{"type": "http", "name": "weather", "url": "https://api.example.com/w/{city}",
            "headers": {"Authorization": {"secret": "Bearer s3cret"}, "Accept": "application/json"}}]);
        let (stored, secrets) = prepare(&decl, &ToolSecrets::new()).unwrap_or_default();
        assert_eq!(
            stored[0]["headers"]["Authorization"],
            json!({"secret": true})
        );
        assert!(!stored.to_string().contains("s3cret"));
        assert_eq!(secrets["weather"]["Authorization"], "Bearer s3cret");
        // The stored declaration sent back keeps the secret.
        let (again, kept) = prepare(&stored, &secrets).unwrap_or_default();
        assert_eq!(again, stored);
        assert_eq!(kept, secrets);
        // Without a stored value, `true` is an error.
        assert!(prepare(&stored, &ToolSecrets::new()).is_err());
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            json!([{"type": "builtin", "name": "shell"}]),
            json!([{"type": "http", "name": "a b", "url": "https://x"}]),
            json!([{"type": "http", "name": "call_agent", "url": "https://x"}]),
            json!([{"type": "http", "name": "t", "url": "ftp://x"}]),
            json!([{"type": "http", "name": "t", "url": "https://x", "method": "TRACE"}]),
            json!([{"type": "http", "name": "t", "url": "https://x", "input_schema": {"type": "string"}}]),
            json!([{"type": "http", "name": "t", "url": "https://x", "headers": {"X": 1}}]),
            json!([{"type": "builtin", "name": "current_time"}, {"type": "builtin", "name": "current_time"}]),
            json!([{"type": "mcp", "server_id": "nope"}]),
            json!({"type": "builtin"}),
        ] {
            assert!(prepare(&bad, &ToolSecrets::new()).is_err(), "{bad}");
        }
    }
}
