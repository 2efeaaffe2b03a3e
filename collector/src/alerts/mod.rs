//! Alert routing: `[[alerts.rules]]` match acknowledged incidents (kind,
//! event, severity, signature, vector, group, prefix, sensor) and send them
//! to `[[alerts.destinations]]`: webhooks ([`webhook`]), syslog over
//! UDP/TCP/TLS as JSON or CEF ([`syslog`]), local commands ([`command`]).
//!
//! Flow: ingest acknowledges a request, then offers its alertable incidents
//! (never `attack_update`: one alert per attack start and end) to the
//! router's bounded queue through the [`hub`] without waiting. The router
//! drops duplicates (sensor retries resend the same ids), applies each
//! matching rule's rate limit and puts the alert on each destination's own
//! bounded queue; each destination delivers from its queue in order on its
//! own task or thread. Every drop is counted in `/metrics`.

pub mod command;
pub mod config;
pub mod hub;
pub mod matcher;
pub mod payload;
pub mod syslog;
pub mod webhook;

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use shaobing_wire::{Event, Incident};
use tokio::sync::mpsc;

use crate::metrics::MetricsSection;
use config::{AlertsConfig, DestinationConfig, Transport};
use matcher::Rule;

/// One alert on its way to a destination.
#[derive(Debug, Clone)]
pub struct Alert {
    /// The rule that matched.
    pub rule: Arc<str>,
    /// The incident.
    pub incident: Arc<Incident>,
    /// The incident as stored (wire JSON).
    pub json: Arc<str>,
}

/// Why alert routing could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A file named in the config could not be used.
    #[error("alerts.destinations ({dest}): {what} {path}: {reason}")]
    File {
        /// The destination.
        dest: String,
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Anything else about a destination.
    #[error("alerts.destinations ({dest}): {reason}")]
    Destination {
        /// The destination.
        dest: String,
        /// Why.
        reason: String,
    },
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestCounters {
    /// Delivered.
    pub sent: AtomicU64,
    /// Given up on (after retries, timeout, non-zero exit).
    pub failed: AtomicU64,
    /// Not queued: the destination's queue was full.
    pub dropped: AtomicU64,
}

impl DestCounters {
    /// Counts and logs one delivery's outcome.
    pub fn record(&self, dest: &str, alert: &Alert, r: Result<(), String>) {
        let inc = &alert.incident;
        match r {
            Ok(()) => {
                self.sent.fetch_add(1, Relaxed);
                tracing::debug!(destination = dest, rule = %alert.rule, id = %inc.id, "alert delivered");
            }
            Err(e) => {
                self.failed.fetch_add(1, Relaxed);
                tracing::warn!(
                    event = "alert_failed",
                    destination = dest,
                    rule = %alert.rule,
                    id = %inc.id,
                    incident_event = %inc.event,
                    error = %e,
                    "alert delivery failed"
                );
            }
        }
    }
}

/// Counters of one rule.
#[derive(Debug, Default)]
pub struct RuleCounters {
    /// Incidents matched.
    pub matched: AtomicU64,
    /// Matches not sent because of `max_per_minute`.
    pub rate_limited: AtomicU64,
}

/// One counter family: metric suffix, help text, how to read it.
type Family<C> = (&'static str, &'static str, fn(&C) -> u64);

/// What [`start`] returns: the router's queue and its counters.
pub type Started = (mpsc::Sender<Arc<str>>, Arc<AlertMetrics>);

/// Every alert-routing counter (a `/metrics` section).
#[derive(Debug, Default)]
pub struct AlertMetrics {
    /// Incidents the router skipped as already alerted on.
    pub duplicates: AtomicU64,
    /// Per rule, in config order.
    pub rules: Vec<(String, Arc<RuleCounters>)>,
    /// Per destination, in config order.
    pub destinations: Vec<(String, Arc<DestCounters>)>,
}

impl AlertMetrics {
    /// The counters of destination `name`.
    pub fn destination(&self, name: &str) -> Option<&DestCounters> {
        self.destinations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_ref())
    }
}

impl MetricsSection for AlertMetrics {
    fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_alerts_duplicates_total Incidents already alerted on (sensor retries), not sent again.\n# TYPE shaobing_collector_alerts_duplicates_total counter\nshaobing_collector_alerts_duplicates_total {}",
            self.duplicates.load(Relaxed)
        );
        let rule_metrics: [Family<RuleCounters>; 2] = [
            ("matched", "Incidents matched by a rule.", |c| {
                c.matched.load(Relaxed)
            }),
            (
                "rate_limited",
                "Matches not sent because of the rule's max_per_minute.",
                |c| c.rate_limited.load(Relaxed),
            ),
        ];
        for (m, help, get) in rule_metrics {
            let name = format!("shaobing_collector_alerts_{m}_total");
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (r, c) in &self.rules {
                let _ = writeln!(o, "{name}{{rule=\"{r}\"}} {}", get(c));
            }
        }
        let dest_metrics: [Family<DestCounters>; 3] = [
            ("sent", "Alerts delivered.", |c| c.sent.load(Relaxed)),
            (
                "failed",
                "Alerts given up on after retries, a timeout or a failed command.",
                |c| c.failed.load(Relaxed),
            ),
            (
                "dropped",
                "Alerts dropped because the destination's queue was full.",
                |c| c.dropped.load(Relaxed),
            ),
        ];
        for (m, help, get) in dest_metrics {
            let name = format!("shaobing_collector_alerts_{m}_total");
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (d, c) in &self.destinations {
                let _ = writeln!(o, "{name}{{destination=\"{d}\"}} {}", get(c));
            }
        }
    }
}

/// Reads a PEM CA file (or the system roots) into a TLS client config.
pub fn tls_client_config(
    dest: &str,
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, AlertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(ca) => {
            let err = |reason: String| AlertError::File {
                dest: dest.to_string(),
                what: "CA file",
                path: ca.to_path_buf(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| err(format!("{e:?}")))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("not valid PEM ({e:?})")))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in the file".into()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| err(format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let native =
                rustls_native_certs::load_native_certs().map_err(|e| AlertError::Destination {
                    dest: dest.to_string(),
                    reason: format!("loading the system trust store: {e}"),
                })?;
            roots.add_parsable_certificates(native);
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AlertError::Destination {
            dest: dest.to_string(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn read_secret(dest: &str, path: &Path) -> Result<Vec<u8>, AlertError> {
    let text = std::fs::read_to_string(path).map_err(|e| AlertError::File {
        dest: dest.to_string(),
        what: "secret_file",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let key = text.lines().next().unwrap_or("").trim().to_string();
    if key.is_empty() {
        return Err(AlertError::File {
            dest: dest.to_string(),
            what: "secret_file",
            path: path.to_path_buf(),
            reason: "empty key".into(),
        });
    }
    Ok(key.into_bytes())
}

/// A bounded set of the most recent keys (FIFO eviction).
#[derive(Debug)]
pub struct RecentKeys {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentKeys {
    /// Remembers at most `cap` keys.
    pub fn new(cap: usize) -> RecentKeys {
        RecentKeys {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Inserts `key`; false when it was already there.
    pub fn insert(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.set.insert(key);
        true
    }
}

/// The alert key of an incident: attacks alert once per attack and event,
/// everything else once per incident id.
pub fn alert_key(inc: &Incident) -> String {
    match inc.attack_id {
        Some(a) => format!("{a}/{}", inc.event),
        None => inc.id.to_string(),
    }
}

struct Router {
    rules: Vec<Rule>,
    destinations: Vec<(mpsc::Sender<Alert>, Arc<DestCounters>, String)>,
    recent: RecentKeys,
    metrics: Arc<AlertMetrics>,
}

impl Router {
    fn route(&mut self, json: Arc<str>) {
        let inc: Incident = match serde_json::from_str(&json) {
            Ok(i) => i,
            Err(e) => {
                // Ingest validated it; this would be a bug.
                tracing::error!(error = %e, "alert router got an unparsable incident");
                return;
            }
        };
        if inc.event == Event::AttackUpdate {
            return;
        }
        if !self.recent.insert(alert_key(&inc)) {
            self.metrics.duplicates.fetch_add(1, Relaxed);
            return;
        }
        let inc = Arc::new(inc);
        let now = Instant::now();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if !rule.matches(&inc) {
                continue;
            }
            let counters = self.metrics.rules.get(i).map(|(_, c)| c.clone());
            if let Some(c) = &counters {
                c.matched.fetch_add(1, Relaxed);
            }
            if !rule.admit(now) {
                if let Some(c) = &counters {
                    let n = c.rate_limited.fetch_add(1, Relaxed);
                    if n % 100 == 0 {
                        tracing::warn!(event = "alert_rate_limited", rule = %rule.name, limited = n + 1, "rule over its max_per_minute: alert not sent");
                    }
                }
                continue;
            }
            let rule_name: Arc<str> = Arc::from(rule.name.as_str());
            for &d in &rule.destinations {
                let Some((tx, counters, name)) = self.destinations.get(d) else {
                    continue;
                };
                let alert = Alert {
                    rule: rule_name.clone(),
                    incident: inc.clone(),
                    json: json.clone(),
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(alert) {
                    let n = counters.dropped.fetch_add(1, Relaxed);
                    if n % 100 == 0 {
                        tracing::warn!(event = "alert_dropped", destination = %name, dropped = n + 1, "destination queue full: alert dropped");
                    }
                }
            }
        }
    }
}

/// Starts routing for `config` (destination workers and the router task);
/// `None` when there are no rules. Returns the router's queue (to add to
/// the [`hub::Hub`]) and its counters (to add to `/metrics`). Must run
/// inside a tokio runtime.
pub fn start(config: &AlertsConfig) -> Result<Option<Started>, AlertError> {
    if config.rules.is_empty() {
        return Ok(None);
    }
    let mut metrics = AlertMetrics::default();
    let mut workers: Vec<Box<dyn FnOnce() -> Result<(), AlertError>>> = Vec::new();
    let mut destinations = Vec::new();
    for d in &config.destinations {
        let name = d.name().to_string();
        let counters = Arc::new(DestCounters::default());
        let (tx, rx) = mpsc::channel::<Alert>(d.queue());
        match d {
            DestinationConfig::Webhook(w) => {
                let key = match (&w.secret, &w.secret_file) {
                    (_, Some(p)) => read_secret(&name, p)?,
                    (Some(s), None) => s.clone().into_bytes(),
                    (None, None) => {
                        return Err(AlertError::Destination {
                            dest: name,
                            reason: "no HMAC key".into(),
                        })
                    }
                };
                let tls = if w.url.starts_with("https://") {
                    Some(tls_client_config(&name, w.ca_file.as_deref())?)
                } else {
                    None
                };
                let hook = webhook::Webhook::new(&name, w, key, tls);
                let c = counters.clone();
                let n = name.clone();
                workers.push(Box::new(move || {
                    hook.spawn(rx, c).map_err(|e| AlertError::Destination {
                        dest: n,
                        reason: format!("starting its thread: {e}"),
                    })
                }));
            }
            DestinationConfig::Syslog(s) => {
                let tls = if s.transport == Transport::Tls {
                    Some(tls_client_config(&name, s.ca_file.as_deref())?)
                } else {
                    None
                };
                let sys = syslog::Syslog::new(&name, s, tls).map_err(|reason| {
                    AlertError::Destination {
                        dest: name.clone(),
                        reason,
                    }
                })?;
                let c = counters.clone();
                workers.push(Box::new(move || {
                    tokio::spawn(sys.serve(rx, c));
                    Ok(())
                }));
            }
            DestinationConfig::Command(cmd) => {
                let dest = command::CommandDest::new(&name, cmd);
                let c = counters.clone();
                workers.push(Box::new(move || {
                    tokio::spawn(dest.serve(rx, c));
                    Ok(())
                }));
            }
        }
        metrics.destinations.push((name.clone(), counters.clone()));
        destinations.push((tx, counters, name));
    }
    let index = |n: &str| config.destinations.iter().position(|d| d.name() == n);
    let rules: Vec<Rule> = config.rules.iter().map(|r| Rule::new(r, index)).collect();
    metrics.rules = rules
        .iter()
        .map(|r| (r.name.clone(), Arc::new(RuleCounters::default())))
        .collect();
    for w in workers {
        w()?;
    }
    let metrics = Arc::new(metrics);
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(config.queue);
    let mut router = Router {
        rules,
        destinations,
        recent: RecentKeys::new(config.dedup_window),
        metrics: metrics.clone(),
    };
    tokio::spawn(async move {
        while let Some(json) = rx.recv().await {
            router.route(json);
        }
    });
    tracing::info!(
        rules = config.rules.len(),
        destinations = config.destinations.len(),
        "alert routing started"
    );
    Ok(Some((tx, metrics)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keys_forget_the_oldest_beyond_capacity() {
        let mut r = RecentKeys::new(2);
        assert!(r.insert("a".into()));
        assert!(!r.insert("a".into()));
        assert!(r.insert("b".into()));
        assert!(r.insert("c".into()));
        assert!(r.insert("a".into()), "a was evicted");
        assert!(!r.insert("c".into()));
    }
}
