//! Sending notices: a hook command and/or a webhook POST.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::alerts::{Event, Notice};
use super::status::rfc3339;
use crate::config::{Alerts, WebhookFormat};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Timestamp;

fn event_name(n: &Notice) -> &'static str {
    match n.event {
        Event::Alert => "alert",
        Event::Recovery => "recovery",
    }
}

/// One line for people: what the chat message and hook logs show.
pub fn text(n: &Notice, host: &str) -> String {
    let head = match n.event {
        Event::Alert => "vault ALERT",
        Event::Recovery => "vault RECOVERED",
    };
    format!("{head} [{host}] {} {}: {}", n.source, n.kind, n.message)
}

pub fn payload(n: &Notice, host: &str, format: WebhookFormat, now: Timestamp) -> serde_json::Value {
    match format {
        WebhookFormat::Slack => json!({ "text": text(n, host) }),
        WebhookFormat::Json => json!({
            "event": event_name(n),
            "source": n.source,
            "kind": n.kind,
            "message": n.message,
            "host": host,
            "since": rfc3339(Timestamp { secs: n.since, nanos: 0 }),
            "time": rfc3339(now),
            "text": text(n, host),
        }),
    }
}

/// Deliver one notice by every configured means; it counts as sent only
/// when all of them took it, so a failed delivery is tried again next run.
pub fn deliver(alerts: &Alerts, n: &Notice, host: &str, now: Timestamp) -> Result<()> {
    if let Some(cmd) = &alerts.command {
        let body = payload(n, host, WebhookFormat::Json, now).to_string();
        run_hook(cmd, n, &body)?;
    }
    let url = match (&alerts.webhook, &alerts.webhook_file) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("webhook file {}", file.display()), e))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(url) = url {
        let body = payload(n, host, alerts.format, now).to_string();
        post(&url, &body)?;
    }
    Ok(())
}

fn run_hook(cmd: &str, n: &Notice, body: &str) -> Result<()> {
    let failed = |e: String| {
        Error::new(
            ErrorKind::SourceFailed,
            format!("alert command '{cmd}': {e}"),
        )
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("VAULT_ALERT_EVENT", event_name(n))
        .env("VAULT_ALERT_SOURCE", &n.source)
        .env("VAULT_ALERT_KIND", &n.kind)
        .env("VAULT_ALERT_MESSAGE", &n.message)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its input is fine.
        let _ = stdin.write_all(body.as_bytes());
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(format!("exited with {status}")));
    }
    Ok(())
}

fn post(url: &str, body: &str) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map(|_| ())
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("webhook {}: {e}", redact(url)),
            )
        })
}

/// A webhook URL is itself a credential (Slack's are): errors show only
/// its scheme and host.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            format!("{scheme}://{host}/...")
        }
        None => "(invalid URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_urls_are_redacted() {
        assert_eq!(
            super::redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/..."
        );
        assert_eq!(super::redact("nonsense"), "(invalid URL)");
    }
}
