//! A blocking HTTP client for `POST /api/v1/incidents`.
//!
//! Incidents are sent in batches as a gzip-compressed JSON array with the
//! sensor's bearer token. A batch is retried with capped, jittered exponential backoff on
//! network errors, 5xx, 408 and 429, for up to `retry_secs`; any other 4xx
//! is permanent (the collector said the batch is wrong, and sending it again
//! will not change that). Incident ids are deterministic, so a retry after a
//! lost acknowledgement stores nothing twice.

use std::time::{Duration, Instant};

use shaobing_wire::Incident;

use super::endpoint::Endpoint;

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The collector rejected the batch (4xx other than 408/429).
    #[error("collector rejected the batch with HTTP {status}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The collector's JSON error.
        body: String,
    },
    /// Retries ran out.
    #[error("collector unreachable after {attempts} attempts over {secs} s: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Seconds spent.
        secs: u64,
        /// The last error.
        last: String,
    },
    /// The batch could not be serialized (a bug).
    #[error("cannot serialize batch: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Sends batches to one collector.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    heartbeat_url: String,
    auth: String,
    retry: Duration,
    rng: u64,
}

/// First retry delay.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

impl Client {
    /// A client for the collector at `endpoint`; [`Client::send`] retries
    /// a batch for up to `retry`.
    pub fn new(endpoint: &Endpoint, retry: Duration) -> Client {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Client {
            agent: endpoint.agent(),
            url: format!("{}/api/v1/incidents", endpoint.url),
            heartbeat_url: format!("{}/api/v1/heartbeat", endpoint.url),
            auth: endpoint.authorization(),
            retry,
            rng: seed | 1,
        }
    }

    /// The incidents URL this client posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `d` scaled by a random factor in [0.5, 1.0): decorrelates sensors
    /// retrying after the same outage.
    pub fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: jitter only needs to decorrelate sensors.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng % 1000) as u32; // 0..1000
        d / 2 + d * frac / 2000
    }

    /// POSTs a heartbeat to `/api/v1/heartbeat` once (no retry: the next
    /// heartbeat supersedes it).
    pub fn post_heartbeat(&mut self, hb: &shaobing_wire::Heartbeat) -> Result<(), Attempt> {
        let body = serde_json::to_vec(hb).map_err(|e| Attempt::Transient(e.to_string()))?;
        match self
            .agent
            .post(&self.heartbeat_url)
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/json")
            .send_bytes(&body)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, resp)) => Err(Attempt::Permanent {
                status,
                body: resp.into_string().unwrap_or_default(),
            }),
            Err(e) => Err(Attempt::Transient(e.to_string())),
        }
    }

    /// One POST of a ready JSON array body, gzip-compressed, no retry.
    pub fn post_once(&mut self, body: &[u8]) -> Result<(), Attempt> {
        let gz = gzip(body).map_err(|e| Attempt::Transient(format!("gzip: {e}")))?;
        match self
            .agent
            .post(&self.url)
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/json")
            .set("Content-Encoding", "gzip")
            .send_bytes(&gz)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                if (400..500).contains(&status) && status != 408 && status != 429 {
                    Err(Attempt::Permanent { status, body: text })
                } else {
                    Err(Attempt::Transient(format!("HTTP {status}: {text}")))
                }
            }
            Err(e) => Err(Attempt::Transient(e.to_string())),
        }
    }

    /// Delivers one batch with retries, returning how many the collector
    /// accepted.
    pub fn send(&mut self, batch: &[Incident]) -> Result<usize, DeliveryError> {
        let body = serde_json::to_vec(batch)?;
        let started = Instant::now();
        let mut backoff = BACKOFF_START;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let last = match self.post_once(&body) {
                Ok(()) => return Ok(batch.len()),
                Err(Attempt::Permanent { status, body }) => {
                    return Err(DeliveryError::Rejected { status, body })
                }
                Err(Attempt::Transient(e)) => e,
            };
            if started.elapsed() >= self.retry {
                return Err(DeliveryError::GaveUp {
                    attempts,
                    secs: started.elapsed().as_secs(),
                    last,
                });
            }
            tracing::warn!(attempt = attempts, error = %last, "delivery failed, retrying");
            std::thread::sleep(self.jitter(backoff));
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }
}

/// Gzip at the fastest level: incident JSON shrinks about tenfold, at a
/// few hundred MB/s of one core.
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// How one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Worth retrying: network error, 5xx, 408, 429.
    Transient(String),
    /// The collector rejected the batch (other 4xx): retrying cannot help.
    Permanent {
        /// HTTP status.
        status: u16,
        /// The collector's JSON error.
        body: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bodies_decode_to_the_original() {
        use std::io::Read;
        let body = br#"[{"id":"x","pad":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]"#.repeat(50);
        let gz = gzip(&body).unwrap();
        assert!(gz.len() < body.len() / 5, "{} vs {}", gz.len(), body.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }
}
