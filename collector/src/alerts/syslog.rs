//! Syslog destination: RFC 5424 messages over UDP (RFC 5426, one datagram
//! each), TCP (RFC 6587 octet-counting: `LEN SP MSG`) or TLS (RFC 5425,
//! the same framing). TCP/TLS connections are kept open and re-opened
//! after an error, with capped jittered backoff between attempts.

use std::sync::Arc;
use std::time::Duration;

use shaobing_wire::Timestamp;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::config::{facility_code, Format, SyslogConfig, Transport};
use super::payload::{cef, syslog_message, SyslogHeader};
use super::{Alert, DestCounters};
use crate::config::RetryConfig;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A syslog destination.
pub struct Syslog {
    name: String,
    config: SyslogConfig,
    header: SyslogHeader,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    retry: RetryConfig,
    conn: Option<Conn>,
}

/// This machine's host name, or `-` (the RFC 5424 nil value).
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (33..=126).contains(&b)))
        .unwrap_or_else(|| "-".to_string())
}

impl Syslog {
    /// For a validated config; `tls` is the client config for `tls`.
    pub fn new(
        name: &str,
        c: &SyslogConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Syslog, String> {
        let tls = match (c.transport, tls) {
            (Transport::Tls, Some(cfg)) => {
                let host = c
                    .server_name
                    .clone()
                    .or_else(|| {
                        c.address
                            .rsplit_once(':')
                            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                    })
                    .unwrap_or_default();
                let sn = ServerName::try_from(host.clone())
                    .map_err(|e| format!("server name {host:?}: {e}"))?;
                Some((TlsConnector::from(cfg), sn))
            }
            (Transport::Tls, None) => return Err("tls transport without a TLS config".into()),
            _ => None,
        };
        Ok(Syslog {
            name: name.to_string(),
            header: SyslogHeader {
                facility: facility_code(&c.facility).unwrap_or(16),
                hostname: c.hostname.clone().unwrap_or_else(local_hostname),
                app_name: c.app_name.clone(),
                procid: std::process::id(),
            },
            config: c.clone(),
            tls,
            retry: RetryConfig {
                max_attempts: c.max_attempts,
                initial_backoff_ms: c.initial_backoff_ms,
                max_backoff_ms: c.max_backoff_ms,
            },
            conn: None,
        })
    }

    /// The message for `alert` (without framing).
    pub fn message(&self, alert: &Alert) -> String {
        let payload = match self.config.format {
            Format::Json => alert.json.to_string(),
            Format::Cef => cef(&alert.incident, &alert.rule),
        };
        syslog_message(
            &self.header,
            Timestamp::now(),
            &alert.rule,
            &alert.incident,
            &payload,
        )
    }

    async fn connect(&self) -> Result<Conn, String> {
        let addr = tokio::net::lookup_host(&self.config.address)
            .await
            .map_err(|e| format!("resolving {}: {e}", self.config.address))?
            .next()
            .ok_or_else(|| format!("{} resolves to nothing", self.config.address))?;
        match self.config.transport {
            Transport::Udp => {
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
                s.connect(addr).await.map_err(|e| e.to_string())?;
                Ok(Conn::Udp(s))
            }
            Transport::Tcp | Transport::Tls => {
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connecting to {addr}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Conn::Tcp(tcp)),
                    Some((connector, sn)) => connector
                        .connect(sn.clone(), tcp)
                        .await
                        .map(|s| Conn::Tls(Box::new(s)))
                        .map_err(|e| format!("TLS handshake with {addr}: {e}")),
                }
            }
        }
    }

    async fn send_once(&mut self, msg: &str) -> Result<(), String> {
        let limit = Duration::from_millis(self.config.timeout_ms);
        if self.conn.is_none() {
            let c = tokio::time::timeout(limit, self.connect())
                .await
                .map_err(|_| "connect timed out".to_string())??;
            self.conn = Some(c);
        }
        let framed;
        let res = match &mut self.conn {
            Some(Conn::Udp(s)) => tokio::time::timeout(limit, s.send(msg.as_bytes()))
                .await
                .map(|r| r.map(|_| ())),
            Some(Conn::Tcp(s)) => {
                framed = format!("{} {msg}", msg.len());
                tokio::time::timeout(limit, s.write_all(framed.as_bytes())).await
            }
            Some(Conn::Tls(s)) => {
                framed = format!("{} {msg}", msg.len());
                tokio::time::timeout(limit, async {
                    s.write_all(framed.as_bytes()).await?;
                    s.flush().await
                })
                .await
            }
            None => return Err("not connected".into()),
        };
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.conn = None;
                Err("send timed out".into())
            }
        }
    }

    /// Sends one alert, reconnecting and retrying (TCP/TLS).
    pub async fn send(&mut self, alert: &Alert) -> Result<(), String> {
        let msg = self.message(alert);
        let attempts = match self.config.transport {
            Transport::Udp => 1,
            _ => self.retry.max_attempts,
        };
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.backoff(attempt - 1)).await;
            }
            match self.send_once(&msg).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(destination = %self.name, attempt, error = %e, "syslog attempt failed");
                    last = e;
                }
            }
        }
        Err(format!("{last} (after {attempts} attempts)"))
    }

    /// Runs the loop until the queue closes.
    pub async fn serve(mut self, mut rx: mpsc::Receiver<Alert>, counters: Arc<DestCounters>) {
        while let Some(alert) = rx.recv().await {
            let r = self.send(&alert).await;
            counters.record(&self.name.clone(), &alert, r);
        }
    }
}
