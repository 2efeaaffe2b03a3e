//! Webhook destination: a JSON POST of `{"rule", "incident"}` signed with
//! HMAC-SHA256 in `X-Shaobing-Signature: sha256=<hex>`, retried with capped
//! jittered backoff. Runs on its own thread (blocking HTTP client), so a
//! slow receiver holds only its own queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::config::WebhookConfig;
use super::payload::{signature_header, webhook_body};
use super::{Alert, DestCounters};
use crate::config::RetryConfig;

/// The outcome of one attempt.
enum Attempt {
    Ok,
    Retry(String),
    Permanent(String),
}

/// A webhook ready to deliver.
pub struct Webhook {
    name: String,
    url: String,
    key: Vec<u8>,
    agent: ureq::Agent,
    retry: RetryConfig,
}

impl Webhook {
    /// Builds the client; `key` is the HMAC key, `tls` the client config
    /// for `https` URLs.
    pub fn new(
        name: &str,
        c: &WebhookConfig,
        key: Vec<u8>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Webhook {
        let timeout = Duration::from_millis(c.timeout_ms);
        let mut b = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(0);
        if let Some(tls) = tls {
            b = b.tls_config(tls);
        }
        Webhook {
            name: name.to_string(),
            url: c.url.clone(),
            key,
            agent: b.build(),
            retry: RetryConfig {
                max_attempts: c.max_attempts,
                initial_backoff_ms: c.initial_backoff_ms,
                max_backoff_ms: c.max_backoff_ms,
            },
        }
    }

    fn attempt(&self, alert: &Alert, body: &str, signature: &str) -> Attempt {
        let resp = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set(
                "User-Agent",
                concat!("shaobing-collector/", env!("CARGO_PKG_VERSION")),
            )
            .set("X-Shaobing-Signature", signature)
            .set("X-Shaobing-Event", alert.incident.event.as_str())
            .set("X-Shaobing-Delivery", &alert.incident.id.to_string())
            .send_string(body);
        match resp {
            Ok(r) if (200..300).contains(&r.status()) => Attempt::Ok,
            Ok(r) => Attempt::Permanent(format!("HTTP {}", r.status())),
            Err(ureq::Error::Status(s, _)) if s == 408 || s == 429 || s >= 500 => {
                Attempt::Retry(format!("HTTP {s}"))
            }
            Err(ureq::Error::Status(s, _)) => Attempt::Permanent(format!("HTTP {s}")),
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }

    /// Delivers one alert with retries; true when the receiver took it.
    pub fn deliver(&self, alert: &Alert) -> Result<(), String> {
        let body = webhook_body(&alert.rule, &alert.json);
        let signature = signature_header(&self.key, body.as_bytes());
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                std::thread::sleep(self.retry.backoff(attempt - 1));
            }
            match self.attempt(alert, &body, &signature) {
                Attempt::Ok => return Ok(()),
                Attempt::Permanent(e) => return Err(format!("{e} (not retried)")),
                Attempt::Retry(e) => {
                    tracing::debug!(destination = %self.name, attempt, error = %e, "webhook attempt failed");
                    last = e;
                }
            }
        }
        Err(format!(
            "{last} (after {} attempts)",
            self.retry.max_attempts
        ))
    }

    /// Runs the delivery loop on a new thread until the queue closes.
    pub fn spawn(
        self,
        mut rx: mpsc::Receiver<Alert>,
        counters: Arc<DestCounters>,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(format!("alert-{}", self.name))
            .spawn(move || {
                while let Some(alert) = rx.blocking_recv() {
                    let r = self.deliver(&alert);
                    counters.record(&self.name, &alert, r);
                }
            })
            .map(|_| ())
    }
}
