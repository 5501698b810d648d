//! Outbound HTTP for tools: every address is checked against the egress policy after DNS
//! (in the resolver, so the address checked is the address connected to), a URL naming an
//! address is checked before sending, every redirect is checked again, no proxy is used, and
//! the time and the size of a response are capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};

use crate::{Egress, ToolError};

/// Limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub timeout: Duration,
    /// The most bytes of a response body kept (the rest is cut, and the result says so).
    pub max_response_bytes: usize,
    pub max_redirects: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            timeout: Duration::from_secs(30),
            max_response_bytes: 256 * 1024,
            max_redirects: 5,
        }
    }
}

/// One request a tool makes.
#[derive(Clone, Debug, Default)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// The guarded client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    egress: Arc<Egress>,
    limits: HttpLimits,
}

/// A refusal raised inside the resolver or the redirect policy, found again in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

struct GuardedResolver {
    egress: Arc<Egress>,
}

/// Resolves `host` and keeps the addresses the egress policy allows; none left is a refusal.
pub(crate) async fn resolve_allowed(
    egress: &Egress,
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match egress.check(host, a.ip()) {
            Ok(()) => true,
            Err(why) => {
                refusal.get_or_insert(why);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        let why = refusal.unwrap_or_else(|| format!("{host} did not resolve"));
        return Err(Box::new(Refused(why)));
    }
    Ok(allowed)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress.clone();
        Box::pin(async move {
            let allowed = resolve_allowed(&egress, name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a URL before it is requested: http or https, a host, and (when the host is an
/// address, which no resolver sees) an allowed address.
pub fn check_url(egress: &Egress, url: &reqwest::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("only http and https URLs, not {}:", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        egress.check(host, ip)?;
    }
    Ok(())
}

impl HttpClient {
    pub fn new(egress: Arc<Egress>, limits: HttpLimits) -> Result<HttpClient, String> {
        let policy_egress = egress.clone();
        let max_redirects = limits.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max_redirects {
                return attempt.error(Refused(format!("more than {max_redirects} redirects")));
            }
            match check_url(&policy_egress, attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(Refused(format!("redirect refused: {why}"))),
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver {
                egress: egress.clone(),
            }))
            .connect_timeout(Duration::from_secs(10))
            .timeout(limits.timeout)
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpClient {
            http,
            egress,
            limits,
        })
    }

    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Makes the request; the result is `{status, headers, body, truncated}` (a text body, or
    /// JSON when the response is JSON). Refusals, timeouts and failures are [`ToolError`]s.
    pub async fn send(&self, call: &HttpCall) -> Result<Value, ToolError> {
        let url = reqwest::Url::parse(&call.url)
            .map_err(|e| ToolError::invalid(format!("invalid URL {}: {e}", call.url)))?;
        check_url(&self.egress, &url).map_err(ToolError::refused)?;
        let method = reqwest::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ToolError::invalid(format!("invalid method {}", call.method)))?;
        let mut rb = self.http.request(method, url);
        for (k, v) in &call.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = &call.body {
            rb = rb.body(b.clone());
        }
        let mut res = rb.send().await.map_err(transport)?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = res.chunk().await.map_err(transport)? {
            let room = self.limits.max_response_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let body = if content_type.contains("json") && !truncated {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        Ok(json!({
            "status": status,
            "headers": {"content-type": content_type},
            "body": body,
            "truncated": truncated,
        }))
    }
}

fn transport(e: reqwest::Error) -> ToolError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut last = e.to_string();
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return ToolError::refused(r.0.clone());
        }
        last = err.to_string();
        cur = err.source();
    }
    if e.is_timeout() {
        ToolError::new("timeout", "the request did not finish in time")
    } else {
        ToolError::new("request_failed", format!("the request failed: {last}"))
    }
}
