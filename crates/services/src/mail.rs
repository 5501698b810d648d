//! Outgoing email, for password resets and invitations.
//!
//! With `AGENTRY_SMTP_URL` set (`smtp://user:password@host:port?from=agentry@example.com`),
//! messages go to that relay over plain SMTP with optional `AUTH PLAIN`: point it at a local
//! MTA or relay. Without it, a message is written to the server log, which is how a
//! self-hosted instance with no mail set up still lets an operator reset a password.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum Mailer {
    /// Writes messages to the server log.
    Log,
    Smtp(SmtpConfig),
}

impl Mailer {
    /// Parses `smtp://[user[:password]@]host[:port][?from=address]`.
    pub fn from_url(url: &str) -> Result<Mailer, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or("the SMTP url must start with smtp://")?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (creds, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (username, password) = match creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(c)?), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| "the SMTP port must be a number")?,
            ),
            None => (hostport.to_string(), 25),
        };
        if host.is_empty() {
            return Err("the SMTP url needs a host".into());
        }
        let from = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("from="))
            .map(percent_decode)
            .transpose()?
            .unwrap_or_else(|| format!("agentry@{host}"));
        Ok(Mailer::Smtp(SmtpConfig {
            host,
            port,
            username,
            password,
            from,
        }))
    }

    /// Sends a message. Failures are logged, not returned: callers answer the same way
    /// whether or not mail went out. `secret` is the token the message carries, logged only
    /// when there is no SMTP relay.
    pub async fn send(&self, to: &str, subject: &str, body: &str, secret: &str) {
        match self {
            Mailer::Log => {
                tracing::warn!(
                    mail.to = to,
                    mail.subject = subject,
                    mail.token = secret,
                    "no SMTP relay configured (AGENTRY_SMTP_URL); the message is logged instead"
                );
            }
            Mailer::Smtp(cfg) => {
                let sent = tokio::time::timeout(
                    Duration::from_secs(20),
                    send_smtp(cfg, to, subject, body),
                )
                .await;
                match sent {
                    Ok(Ok(())) => tracing::info!(mail.to = to, mail.subject = subject, "mail sent"),
                    Ok(Err(e)) => tracing::error!(mail.to = to, error = %e, "could not send mail"),
                    Err(_) => tracing::error!(mail.to = to, "timed out sending mail"),
                }
            }
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or("bad percent-encoding in SMTP url")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent-encoding in SMTP url")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "SMTP url is not UTF-8".to_string())
}

async fn send_smtp(cfg: &SmtpConfig, to: &str, subject: &str, body: &str) -> Result<(), String> {
    let stream = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, 220).await?;
    command(&mut write, &mut read, "EHLO agentry", 250).await?;
    if let Some(user) = &cfg.username {
        let plain = STANDARD.encode(format!(
            "\0{user}\0{}",
            cfg.password.as_deref().unwrap_or("")
        ));
        command(&mut write, &mut read, &format!("AUTH PLAIN {plain}"), 235).await?;
    }
    command(
        &mut write,
        &mut read,
        &format!("MAIL FROM:<{}>", cfg.from),
        250,
    )
    .await?;
    command(&mut write, &mut read, &format!("RCPT TO:<{to}>"), 250).await?;
    command(&mut write, &mut read, "DATA", 354).await?;
    let date = chrono::Utc::now().to_rfc2822();
    let mut msg = format!(
        "From: {}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        cfg.from
    );
    for line in body.split("\r\n") {
        // Dot-stuffing: a line starting with '.' gets another.
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    msg.push('.');
    command(&mut write, &mut read, &msg, 250).await?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(())
}

async fn command<W, R>(write: &mut W, read: &mut R, line: &str, code: u16) -> Result<(), String>
where
    W: AsyncWriteExt + Unpin,
    R: AsyncBufReadExt + Unpin,
{
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    write.write_all(b"\r\n").await.map_err(|e| e.to_string())?;
    expect(read, code).await
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<R: AsyncBufReadExt + Unpin>(read: &mut R, code: u16) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("SMTP server closed the connection".into());
        }
        let got: u16 = line
            .get(0..3)
            .and_then(|c| c.parse().ok())
            .ok_or("bad SMTP reply")?;
        if got != code {
            return Err(format!("SMTP server answered {}", line.trim_end()));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let Mailer::Smtp(c) =
            Mailer::from_url("smtp://me%40x.com:p%3Ass@mail.local:2525?from=bot@x.com").unwrap()
        else {
            panic!("expected smtp")
        };
        assert_eq!((c.host.as_str(), c.port), ("mail.local", 2525));
        assert_eq!(c.username.as_deref(), Some("me@x.com"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.from, "bot@x.com");
        assert!(!format!("{c:?}").contains("p:ss"));
        let Mailer::Smtp(c) = Mailer::from_url("smtp://localhost").unwrap() else {
            panic!("expected smtp")
        };
        assert_eq!((c.port, c.username), (25, None));
        assert!(Mailer::from_url("http://x").is_err());
        assert!(Mailer::from_url("smtp://:25").is_err());
        assert!(Mailer::from_url("smtp://h:notaport").is_err());
    }
}
