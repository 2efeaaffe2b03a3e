//! The forwarder: incidents from the detectors, through the durable spool,
//! to the collector, on a thread of its own so the packet path never waits
//! for the network.
//!
//! ```text
//! detectors ──send()──► bounded queue ──► forwarder thread
//!                                           │ append batch (fsync) ──► spool on disk
//!                                           │ read batch ◄───────────── spool on disk
//!                                           └ POST /api/v1/incidents ─► collector
//!                                                 ack ──► spool deletes
//! ```
//!
//! * **Queue**: `queue` incidents (default 65,536). When it is full,
//!   [`Forwarder::send`] blocks until there is room and counts the wait in
//!   [`ForwarderStats::queue_full_waits`]: incidents are rare next to
//!   packets, so a full queue means the disk is stalled, and waiting is
//!   better than losing an incident.
//! * **Spool first**: every incident is written to the spool (fsync per
//!   batch) before delivery is tried, and deleted only after the collector
//!   acknowledged it. A collector outage just lets the spool grow (up to its
//!   cap, see [`crate::forward::spool`]).
//! * **Requests** carry up to [`DELIVERY_MAX_RECORDS`] incidents
//!   ([`DELIVERY_MAX_BYTES`]) from the spool, so a backlog drains in few
//!   round trips.
//! * **Retries**: network errors, 5xx, 408 and 429 are retried with capped,
//!   jittered exponential backoff (0.1 s to 5 s), forever while running.
//!   Any other 4xx is permanent: the batch is appended to `rejected.jsonl`
//!   in the spool folder with the collector's reason, acknowledged, and
//!   counted; it is never retried.
//! * **Several collectors** (`fallbacks`): a delivery that fails for a
//!   transient reason is tried at once on the next collector, in turn; the
//!   forwarder stays with the one that answers. Only when every collector
//!   failed in a row does it back off. The spool is the same whichever
//!   collector acknowledges: an incident is deleted only after one of them
//!   acknowledged it, and one that two collectors both received (a lost
//!   acknowledgement) is stored once, as collectors deduplicate by id.
//!   Switches are counted in [`ForwarderStats::failovers`].
//! * **Shutdown**: [`Forwarder::shutdown`] spools what is queued, keeps
//!   delivering until the spool is empty or the grace time is over, and
//!   leaves the rest in the spool for the next start.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shaobing_wire::Incident;

use super::client::{Attempt, Client, BACKOFF_CAP, BACKOFF_START};
use super::endpoint::Endpoint;
use super::spool::{Spool, SpoolConfig, SpoolError, SpoolStats};

/// Forwarder settings.
#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    /// The collector.
    pub endpoint: Endpoint,
    /// Further collectors, tried in turn when the current one fails.
    pub fallbacks: Vec<Endpoint>,
    /// Incidents per request (and per spool append).
    pub batch_size: usize,
    /// Longest an incident waits in memory before it is spooled.
    pub max_delay: Duration,
    /// Queue length between the detectors and the forwarder thread.
    pub queue: usize,
    /// The spool.
    pub spool: SpoolConfig,
}

/// Live counters (shared with the thread).
#[derive(Debug, Default)]
pub struct ForwarderStats {
    /// Incidents handed to [`Forwarder::send`].
    pub submitted: AtomicU64,
    /// Times `send` had to wait for room in the queue.
    pub queue_full_waits: AtomicU64,
    /// Incidents the collector acknowledged.
    pub delivered: AtomicU64,
    /// Incidents the collector rejected permanently (in `rejected.jsonl`).
    pub rejected: AtomicU64,
    /// Failed delivery attempts (each retried).
    pub failed_attempts: AtomicU64,
    /// Bytes waiting in the spool (updated after every append and ack).
    pub spool_depth_bytes: AtomicU64,
    /// Times delivery moved on to another collector after a failure.
    pub failovers: AtomicU64,
}

/// What the forwarder did, returned at shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderReport {
    /// Incidents acknowledged by the collector.
    pub delivered: u64,
    /// Incidents rejected permanently.
    pub rejected: u64,
    /// Bytes still in the spool (delivered at the next start).
    pub spool_depth_bytes: u64,
    /// The spool's own counters (drops when full, corruption skipped).
    pub spool: SpoolStats,
    /// The last delivery error, if the spool is not empty.
    pub last_error: Option<String>,
}

/// Most incidents per delivery request (the collector accepts 10,000).
pub const DELIVERY_MAX_RECORDS: usize = 5_000;
/// Most payload bytes per delivery request (the collector accepts 16 MiB).
pub const DELIVERY_MAX_BYTES: usize = 4 << 20;

enum Msg {
    Incident(Vec<u8>),
    Stop(Duration),
}

/// Handle to the forwarder thread.
pub struct Forwarder {
    tx: SyncSender<Msg>,
    thread: JoinHandle<Result<ForwarderReport, SpoolError>>,
    stats: Arc<ForwarderStats>,
}

impl Forwarder {
    /// Opens the spool (so a bad folder fails here, at start-up) and
    /// starts the thread. Whatever an earlier run left in the spool is
    /// delivered first.
    pub fn start(cfg: ForwarderConfig) -> Result<Forwarder, SpoolError> {
        let spool = Spool::open(cfg.spool.clone())?;
        let (tx, rx) = sync_channel(cfg.queue.max(1));
        let stats = Arc::new(ForwarderStats::default());
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("forwarder".into())
            .spawn(move || run(cfg, spool, rx, st))
            .map_err(|source| SpoolError::Io {
                path: "forwarder thread".into(),
                op: "spawn",
                source,
            })?;
        Ok(Forwarder { tx, thread, stats })
    }

    /// Queues one incident; blocks while the queue is full.
    pub fn send(&self, incident: &Incident) {
        let Ok(json) = serde_json::to_vec(incident) else {
            return; // serializing our own struct cannot fail
        };
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Incident(json)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                self.stats.queue_full_waits.fetch_add(1, Ordering::Relaxed);
                let _ = self.tx.send(msg);
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("forwarder thread is gone; incident not forwarded");
            }
        }
    }

    /// Live counters.
    pub fn stats(&self) -> &ForwarderStats {
        &self.stats
    }

    /// Spools everything queued, delivers for at most `grace`, and stops.
    pub fn shutdown(self, grace: Duration) -> Result<ForwarderReport, SpoolError> {
        let _ = self.tx.send(Msg::Stop(grace));
        drop(self.tx);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(SpoolError::Io {
                path: "forwarder thread".into(),
                op: "join",
                source: std::io::Error::other("forwarder thread panicked"),
            }),
        }
    }
}

fn json_array(records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(r);
    }
    body.push(b']');
    body
}

struct Delivery {
    /// One client per collector, the configured one first.
    clients: Vec<Client>,
    /// The collector in use.
    current: usize,
    /// Collectors that failed in a row since the last success.
    failed_in_row: usize,
    backoff: Duration,
    next_attempt: Instant,
    last_error: Option<String>,
}

impl Delivery {
    /// Tries to deliver one batch from the spool. Returns whether anything
    /// was delivered (or dead-lettered), i.e. whether to try again at once.
    fn step(
        &mut self,
        spool: &mut Spool,
        cfg: &ForwarderConfig,
        stats: &ForwarderStats,
    ) -> Result<bool, SpoolError> {
        if Instant::now() < self.next_attempt || spool.is_empty() {
            return Ok(false);
        }
        // A backlog goes in large requests: the collector flushes a request
        // of its `max_rows` at once instead of waiting for its batch timer,
        // and one round trip carries thousands of incidents.
        let batch =
            spool.read_batch(DELIVERY_MAX_RECORDS.max(cfg.batch_size), DELIVERY_MAX_BYTES)?;
        if batch.records.is_empty() {
            spool.ack(&batch)?; // only corrupt records were left
            return Ok(false);
        }
        let n = batch.records.len() as u64;
        let Some(client) = self.clients.get_mut(self.current) else {
            return Ok(false);
        };
        match client.post_once(&json_array(&batch.records)) {
            Ok(()) => {
                spool.ack(&batch)?;
                stats.delivered.fetch_add(n, Ordering::Relaxed);
                self.backoff = BACKOFF_START;
                self.failed_in_row = 0;
                self.last_error = None;
                Ok(true)
            }
            Err(Attempt::Permanent { status, body }) => {
                tracing::error!(status, reason = %body, incidents = n, "collector rejected a batch; moved to rejected.jsonl");
                dead_letter(&cfg.spool.dir, &batch.records, status, &body)?;
                spool.ack(&batch)?;
                stats.rejected.fetch_add(n, Ordering::Relaxed);
                self.last_error = Some(format!("HTTP {status}: {body}"));
                Ok(true)
            }
            Err(Attempt::Transient(e)) => {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                self.failed_in_row += 1;
                let failed = client.url().to_string();
                if self.clients.len() > 1 {
                    self.current = (self.current + 1) % self.clients.len();
                    stats.failovers.fetch_add(1, Ordering::Relaxed);
                }
                let next = self
                    .clients
                    .get(self.current)
                    .map(|c| c.url().to_string())
                    .unwrap_or_default();
                if self.failed_in_row < self.clients.len() {
                    // Another collector has not been tried yet: at once.
                    tracing::warn!(error = %e, collector = %failed, next = %next, "delivery failed; trying the next collector");
                    self.last_error = Some(e);
                    return Ok(true);
                }
                self.failed_in_row = 0;
                tracing::warn!(error = %e, collector = %failed, retry_in_ms = self.backoff.as_millis() as u64, "delivery failed on every collector; incidents stay spooled");
                let wait = match self.clients.get_mut(self.current) {
                    Some(c) => c.jitter(self.backoff),
                    None => self.backoff,
                };
                self.next_attempt = Instant::now() + wait;
                self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
                self.last_error = Some(e);
                Ok(false)
            }
        }
    }
}

/// Appends a rejected batch to `rejected.jsonl` with the reason.
fn dead_letter(
    dir: &std::path::Path,
    records: &[Vec<u8>],
    status: u16,
    reason: &str,
) -> Result<(), SpoolError> {
    let path = dir.join("rejected.jsonl");
    let io = |op| {
        let path = path.clone();
        move |source| SpoolError::Io { path, op, source }
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io("open dead-letter file"))?;
    for r in records {
        let line = serde_json::json!({
            "status": status,
            "reason": reason,
            "incident": serde_json::from_slice::<serde_json::Value>(r).unwrap_or(serde_json::Value::Null),
        });
        writeln!(f, "{line}").map_err(io("write dead-letter file"))?;
    }
    f.sync_data().map_err(io("fsync dead-letter file"))
}

fn run(
    cfg: ForwarderConfig,
    mut spool: Spool,
    rx: Receiver<Msg>,
    stats: Arc<ForwarderStats>,
) -> Result<ForwarderReport, SpoolError> {
    let mut d = Delivery {
        clients: std::iter::once(&cfg.endpoint)
            .chain(&cfg.fallbacks)
            .map(|e| Client::new(e, Duration::ZERO))
            .collect(),
        current: 0,
        failed_in_row: 0,
        backoff: BACKOFF_START,
        next_attempt: Instant::now(),
        last_error: None,
    };
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut stop: Option<Instant> = None;
    let flush = |spool: &mut Spool, pending: &mut Vec<Vec<u8>>| -> Result<(), SpoolError> {
        if pending.is_empty() {
            return Ok(());
        }
        let n = pending.len();
        let written = spool.append(pending)?;
        if written < n {
            tracing::error!(dropped = n - written, "spool full: incidents dropped");
        }
        pending.clear();
        Ok(())
    };
    loop {
        // How long to wait for the next incident: until the pending batch
        // is due, the next delivery attempt, or a short poll.
        let now = Instant::now();
        let mut wait = Duration::from_millis(200);
        if let Some(t) = oldest {
            wait = wait.min((t + cfg.max_delay).saturating_duration_since(now));
        }
        if !spool.is_empty() {
            wait = wait.min(d.next_attempt.saturating_duration_since(now));
        }
        if stop.is_none() {
            match rx.recv_timeout(wait) {
                Ok(Msg::Incident(json)) => {
                    oldest.get_or_insert_with(Instant::now);
                    pending.push(json);
                    // Drain what is already queued without waiting.
                    while pending.len() < cfg.batch_size {
                        match rx.try_recv() {
                            Ok(Msg::Incident(j)) => pending.push(j),
                            Ok(Msg::Stop(grace)) => {
                                stop = Some(Instant::now() + grace);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(Msg::Stop(grace)) => stop = Some(Instant::now() + grace),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = Some(Instant::now()),
            }
        }
        stats
            .spool_depth_bytes
            .store(spool.depth_bytes(), Ordering::Relaxed);
        let due = oldest.is_some_and(|t| t.elapsed() >= cfg.max_delay);
        if pending.len() >= cfg.batch_size || due || stop.is_some() {
            flush(&mut spool, &mut pending)?;
            oldest = None;
        }
        while d.step(&mut spool, &cfg, &stats)? {
            if stop.is_none() && pending.len() < cfg.batch_size {
                break; // go back to accepting incidents between batches
            }
        }
        if let Some(deadline) = stop {
            if spool.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(
                d.next_attempt
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
    }
    let depth = spool.depth_bytes();
    Ok(ForwarderReport {
        delivered: stats.delivered.load(Ordering::Relaxed),
        rejected: stats.rejected.load(Ordering::Relaxed),
        spool_depth_bytes: depth,
        spool: spool.stats().clone(),
        last_error: if depth > 0 { d.last_error } else { None },
    })
}
