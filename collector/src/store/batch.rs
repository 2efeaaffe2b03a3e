//! The batching writer: one task that turns accepted requests into
//! ClickHouse inserts and acknowledges each request once its rows are
//! stored, or written to the write-ahead log; plus the WAL replayer.
//!
//! # Queue
//!
//! Requests arrive on a bounded channel (capacity `batch.queue_batches`).
//! Full policy: [`WriterHandle::submit`] waits up to
//! `batch.enqueue_timeout_ms` for room, then gives up with
//! [`SubmitError::QueueFull`] (503; the sensor retries). Counted in
//! `rejected_requests_total{reason="unavailable"}`.
//!
//! # Flushing
//!
//! The writer flushes when `batch.max_rows` rows are pending or the oldest
//! pending request has waited `batch.max_delay_ms`, or, with
//! `batch.flush_when_idle` (group commit), as soon as no insert is running;
//! all pending requests go into one INSERT. (Sensors wait for their
//! acknowledgement before sending more, so with fewer than `max_rows` rows
//! outstanding a deadline-only writer would idle for `max_delay_ms` every
//! round: group commit lets the insert time set the batch size instead.) Up to `batch.max_inflight` flushes run at once (each in
//! its own task); when all slots are busy the writer waits for one, and
//! requests queue meanwhile. When the drain signal turns `true` (shutdown began) it
//! flushes what is pending and from then on every request as soon as it
//! arrives. When every handle is dropped it flushes and ends.
//!
//! # Errors, retries, WAL
//!
//! ClickHouse errors are classified ([`is_permanent`]):
//!
//! * **transient** (network, timeout, server overloaded, missing table…):
//!   retried `retry.max_attempts` times with capped, jittered exponential
//!   backoff. Then, with a WAL, the requests are appended to it (fsynced)
//!   and acknowledged; without one they get 503.
//! * **permanent** (ClickHouse cannot parse the data): never retried. A
//!   batch of several requests is split and each request inserted alone, so
//!   one bad request cannot take the others down; a request that still
//!   fails permanently is written to the dead-letter file with the reason and
//!   answered 422.
//!
//! While the WAL holds anything, new batches are appended to it too (not
//! inserted directly), so incidents reach ClickHouse in acknowledgement
//! order. [`run_replayer`] drains the WAL oldest segment first, retrying
//! transient errors forever with the same backoff, and deletes a segment
//! only after all of it is stored.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickhouse::Client;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::time::Instant;

use super::row::IncidentRow;
use super::wal::{self, Wal, WalError};
use super::{with_timeout, StoreError};
use crate::config::{BatchConfig, RetryConfig};
use crate::metrics::Metrics;

/// Why a request's rows were not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The queue stayed full for `enqueue_timeout_ms`.
    #[error("ingest queue full")]
    QueueFull,
    /// The writer has stopped (shutting down).
    #[error("writer stopped")]
    Stopped,
    /// The insert failed after retries and there is no WAL (or writing to
    /// it failed); the message is the error.
    #[error("clickhouse unavailable: {0}")]
    Insert(Arc<str>),
    /// ClickHouse is unavailable and the WAL is full.
    #[error("clickhouse unavailable and {0}")]
    WalFull(Arc<str>),
    /// ClickHouse refused the data as malformed; it went to the dead-letter
    /// file.
    #[error("clickhouse rejected the data (written to the dead-letter file): {0}")]
    DeadLetter(Arc<str>),
}

/// Whether a ClickHouse error means "this data will never be accepted"
/// (parse and type errors) rather than "try again later".
pub fn is_permanent(e: &StoreError) -> bool {
    use clickhouse::error::Error as E;
    let StoreError::ClickHouse { source, .. } = e else {
        return false;
    };
    match source {
        E::BadResponse(msg) => error_code(msg).is_some_and(|c| PERMANENT_CODES.contains(&c)),
        E::Custom(_)
        | E::DataFormat(_)
        | E::InvalidUtf8Encoding(_)
        | E::SequenceMustHaveLength
        | E::InvalidTagEncoding(_) => true,
        _ => false,
    }
}

/// ClickHouse error codes that mean malformed data: CANNOT_PARSE_TEXT (6),
/// CANNOT_PARSE_QUOTED_STRING (26), CANNOT_PARSE_INPUT_ASSERTION_FAILED
/// (27), ATTEMPT_TO_READ_AFTER_EOF (32), CANNOT_READ_ALL_DATA (33),
/// CANNOT_PARSE_DATE (38), CANNOT_PARSE_DATETIME (41), TYPE_MISMATCH (53),
/// ARGUMENT_OUT_OF_BOUND (69), CANNOT_CONVERT_TYPE (70),
/// CANNOT_PARSE_NUMBER (72), INCORRECT_DATA (117), TOO_LARGE_STRING_SIZE
/// (131), CANNOT_PARSE_UUID (376).
pub const PERMANENT_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 376];

/// The `Code: N` of a ClickHouse error message.
pub fn error_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

struct Pending {
    rows: Vec<IncidentRow>,
    ack: oneshot::Sender<Result<(), SubmitError>>,
}

/// Hands batches to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Pending>,
    enqueue_timeout: Duration,
}

/// Where the writer inserts.
#[derive(Clone)]
pub struct WriterTarget {
    /// The client.
    pub client: Client,
    /// `` `db`.incidents ``, already quoted.
    pub table: String,
    /// Upper bound for one INSERT.
    pub timeout: Duration,
}

/// Everything the writer and the replayer share.
#[derive(Clone)]
pub struct Sink {
    /// Where to insert.
    pub target: WriterTarget,
    /// Backoff policy.
    pub retry: RetryConfig,
    /// The WAL, when configured.
    pub wal: Option<Arc<Wal>>,
    /// The dead-letter file.
    pub dead_letter: Arc<DeadLetter>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Wakes the replayer when the writer appended to the WAL.
    pub wal_appended: Arc<Notify>,
}

/// The dead-letter file: NDJSON, one line per incident ClickHouse refused,
/// `{"at": UNIX_SECS, "reason": "...", "incident": {...}}`, appended and
/// fsynced.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    lock: Mutex<()>,
}

impl DeadLetter {
    /// A dead-letter file at `path` (created on first use).
    pub fn new(path: PathBuf) -> DeadLetter {
        DeadLetter {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Appends `raws` with `reason`.
    pub fn write<'a>(
        &self,
        raws: impl Iterator<Item = &'a str>,
        reason: &str,
    ) -> std::io::Result<u64> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let at = super::schema::now_secs();
        let mut buf = Vec::new();
        let mut n = 0;
        for raw in raws {
            let incident = serde_json::from_str::<serde_json::Value>(raw)
                .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
            let line = serde_json::json!({"at": at, "reason": reason, "incident": incident});
            buf.extend_from_slice(line.to_string().as_bytes());
            buf.push(b'\n');
            n += 1;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        Ok(n)
    }
}

impl Sink {
    fn dead_letter(&self, rows: &[&IncidentRow], reason: &str) {
        self.metrics
            .dead_lettered
            .fetch_add(rows.len() as u64, Relaxed);
        match self
            .dead_letter
            .write(rows.iter().map(|r| r.raw.as_str()), reason)
        {
            Ok(n) => tracing::error!(
                event = "dead_letter",
                incidents = n,
                reason,
                path = %self.dead_letter.path.display(),
                "ClickHouse refused incidents as bad data: written to the dead-letter file"
            ),
            Err(e) => tracing::error!(
                event = "dead_letter_failed",
                incidents = rows.len(),
                reason,
                error = %e,
                "ClickHouse refused incidents as bad data and the dead-letter file could not be written"
            ),
        }
    }

    fn count_error(&self, e: &StoreError) -> bool {
        let permanent = is_permanent(e);
        if permanent {
            self.metrics
                .clickhouse_errors_permanent
                .fetch_add(1, Relaxed);
        } else {
            self.metrics
                .clickhouse_errors_transient
                .fetch_add(1, Relaxed);
        }
        permanent
    }

    async fn insert_once(&self, rows: &[&IncidentRow]) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        insert(&self.target, rows).await?;
        self.metrics.observe_batch(started.elapsed());
        Ok(())
    }
}

/// Starts the writer task; returns the handle and the task to await after
/// every handle has been dropped. Setting `drain` to `true` makes the writer
/// flush immediately from then on (see the module docs).
pub fn spawn_writer(
    sink: Sink,
    config: &BatchConfig,
    drain: watch::Receiver<bool>,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_batches);
    let task = tokio::spawn(run(
        sink,
        rx,
        drain,
        Flush {
            max_rows: config.max_rows,
            max_delay: config.max_delay(),
            max_inflight: config.max_inflight,
            when_idle: config.flush_when_idle,
        },
    ));
    (
        WriterHandle {
            tx,
            enqueue_timeout: config.enqueue_timeout(),
        },
        task,
    )
}

impl WriterHandle {
    /// Queues `rows` and waits until they are stored (or failed).
    pub async fn submit(&self, rows: Vec<IncidentRow>) -> Result<(), SubmitError> {
        let (ack, done) = oneshot::channel();
        match self
            .tx
            .send_timeout(Pending { rows, ack }, self.enqueue_timeout)
            .await
        {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::warn!(
                    event = "ingest_queue_full",
                    "request rejected: writer queue full"
                );
                return Err(SubmitError::QueueFull);
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(SubmitError::Stopped),
        }
        done.await.unwrap_or(Err(SubmitError::Stopped))
    }
}

/// When the writer flushes (see the module docs).
struct Flush {
    max_rows: usize,
    max_delay: Duration,
    max_inflight: usize,
    when_idle: bool,
}

async fn run(
    sink: Sink,
    mut rx: mpsc::Receiver<Pending>,
    mut drain: watch::Receiver<bool>,
    policy: Flush,
) {
    let Flush {
        max_rows,
        max_delay,
        max_inflight,
        when_idle,
    } = policy;
    let inflight = Arc::new(Semaphore::new(max_inflight));
    let permits = u32::try_from(max_inflight).unwrap_or(u32::MAX);
    // Signalled by every finished flush (a stored permit when nobody waits,
    // so a completion is never missed).
    let finished = Arc::new(Notify::new());
    let idle = || inflight.available_permits() == max_inflight;
    // Runs a flush as its own task once one of `max_inflight` slots is free.
    let start_flush = |batch: Vec<Pending>| {
        let sink = sink.clone();
        let inflight = inflight.clone();
        let finished = finished.clone();
        async move {
            let Ok(permit) = inflight.acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                flush(&sink, batch).await;
                drop(permit);
                finished.notify_one();
            });
        }
    };
    let mut pending: Vec<Pending> = Vec::new();
    let mut pending_rows = 0usize;
    let mut deadline: Option<Instant> = None;
    let mut draining = *drain.borrow();
    loop {
        let flush_now = tokio::select! {
            changed = drain.changed(), if !draining => {
                // A dropped sender also means "stop waiting".
                draining = changed.is_err() || *drain.borrow();
                draining
            }
            msg = rx.recv() => match msg {
                Some(p) => {
                    pending_rows += p.rows.len();
                    pending.push(p);
                    deadline.get_or_insert_with(|| Instant::now() + max_delay);
                    draining || pending_rows >= max_rows || (when_idle && idle())
                }
                None => {
                    start_flush(std::mem::take(&mut pending)).await;
                    // Wait for every flush in flight.
                    let _ = inflight.acquire_many(permits).await;
                    return;
                }
            },
            _ = sleep_until(deadline) => true,
            // An insert finished: with group commit, flush what queued
            // meanwhile once nothing is running.
            _ = finished.notified(), if when_idle => !pending.is_empty() && idle(),
        };
        if flush_now {
            start_flush(std::mem::take(&mut pending)).await;
            pending_rows = 0;
            deadline = None;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn ack_all(batch: Vec<Pending>, outcome: &Result<(), SubmitError>) {
    for p in batch {
        // The request may have gone away (client disconnected); its rows
        // were handled all the same.
        let _ = p.ack.send(outcome.clone());
    }
}

async fn flush(sink: &Sink, batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    if let Some(wal) = &sink.wal {
        if !wal.is_empty() {
            // Keep acknowledgement order: the WAL is replayed first.
            to_wal(sink, wal, batch).await;
            return;
        }
    }
    let rows: Vec<&IncidentRow> = batch.iter().flat_map(|p| p.rows.iter()).collect();
    let mut last_error = String::new();
    for attempt in 0..sink.retry.max_attempts {
        match sink.insert_once(&rows).await {
            Ok(()) => {
                tracing::debug!(rows = rows.len(), requests = batch.len(), "batch stored");
                drop(rows);
                ack_all(batch, &Ok(()));
                return;
            }
            Err(e) => {
                let permanent = sink.count_error(&e);
                tracing::warn!(event = "insert_failed", permanent, attempt, rows = rows.len(), error = %e, "batch insert failed");
                if permanent {
                    drop(rows);
                    split_permanent(sink, batch, &e).await;
                    return;
                }
                last_error = e.to_string();
                if attempt + 1 < sink.retry.max_attempts {
                    tokio::time::sleep(sink.retry.backoff(attempt)).await;
                }
            }
        }
    }
    drop(rows);
    match &sink.wal {
        Some(wal) => to_wal(sink, wal, batch).await,
        None => ack_all(batch, &Err(SubmitError::Insert(Arc::from(last_error)))),
    }
}

/// A permanent error on a combined batch: insert each request alone so only
/// the bad ones are dead-lettered.
async fn split_permanent(sink: &Sink, batch: Vec<Pending>, e: &StoreError) {
    if batch.len() == 1 {
        let reason = e.to_string();
        for p in batch {
            sink.dead_letter(&p.rows.iter().collect::<Vec<_>>(), &reason);
            let _ = p
                .ack
                .send(Err(SubmitError::DeadLetter(Arc::from(reason.as_str()))));
        }
        return;
    }
    for p in batch {
        let rows: Vec<&IncidentRow> = p.rows.iter().collect();
        match sink.insert_once(&rows).await {
            Ok(()) => {
                let _ = p.ack.send(Ok(()));
            }
            Err(e) if sink.count_error(&e) => {
                let reason = e.to_string();
                sink.dead_letter(&rows, &reason);
                let _ = p.ack.send(Err(SubmitError::DeadLetter(Arc::from(reason))));
            }
            Err(e) => {
                drop(rows);
                match &sink.wal {
                    Some(wal) => to_wal(sink, wal, vec![p]).await,
                    None => {
                        let _ = p
                            .ack
                            .send(Err(SubmitError::Insert(Arc::from(e.to_string()))));
                    }
                }
            }
        }
    }
}

async fn to_wal(sink: &Sink, wal: &Arc<Wal>, batch: Vec<Pending>) {
    let mut buf = Vec::new();
    let mut n = 0u64;
    for p in &batch {
        let received_at = p.rows.first().map_or(0, |r| r.received_at);
        let payload = wal::encode_batch(received_at, p.rows.iter().map(|r| r.raw.as_str()));
        buf.extend_from_slice(&wal::encode_record(&payload));
        n += p.rows.len() as u64;
    }
    let w = wal.clone();
    let result = tokio::task::spawn_blocking(move || w.append(&buf))
        .await
        .unwrap_or_else(|e| {
            Err(WalError::Io {
                what: "append (task failed)",
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })
        });
    let outcome = match result {
        Ok(()) => {
            sink.metrics.ingested_via_wal.fetch_add(n, Relaxed);
            sink.wal_appended.notify_one();
            tracing::debug!(incidents = n, "batch acknowledged via the write-ahead log");
            Ok(())
        }
        Err(e @ WalError::Full { .. }) => {
            tracing::warn!(event = "wal_full", incidents = n, error = %e, "batch refused: write-ahead log full");
            Err(SubmitError::WalFull(Arc::from(e.to_string())))
        }
        Err(e) => {
            tracing::error!(event = "wal_append_failed", incidents = n, error = %e, "batch refused: write-ahead log append failed");
            Err(SubmitError::Insert(Arc::from(e.to_string())))
        }
    };
    ack_all(batch, &outcome);
}

async fn insert(target: &WriterTarget, rows: &[&IncidentRow]) -> Result<(), StoreError> {
    with_timeout("insert incidents", target.timeout, async {
        let what = "insert incidents";
        let mut insert = target
            .client
            .insert_unescaped::<IncidentRow>(&target.table)
            .await
            .map_err(StoreError::ch(what))?;
        for row in rows {
            insert.write(row).await.map_err(StoreError::ch(what))?;
        }
        insert.end().await.map_err(StoreError::ch(what))
    })
    .await
}

/// Drains the WAL into ClickHouse until `shutdown` turns `true` (what is
/// left stays on disk for the next start). Wakes on every append and at
/// least once a second.
pub async fn run_replayer(sink: Sink, max_rows: usize, mut shutdown: watch::Receiver<bool>) {
    let Some(wal) = sink.wal.clone() else {
        return;
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        while let Some((seq, path)) = wal.oldest() {
            let w = wal.clone();
            let p = path.clone();
            let records = match tokio::task::spawn_blocking(move || w.read(&p)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(event = "wal_read_failed", error = %e, "cannot read write-ahead log segment; retrying");
                    if wait_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            };
            let mut rows = Vec::new();
            for payload in &records {
                let Some((received_at, raws)) = wal::decode_batch(payload) else {
                    sink.metrics.wal_corrupt_records.fetch_add(1, Relaxed);
                    continue;
                };
                for raw in raws {
                    match IncidentRow::from_raw(raw, received_at) {
                        Ok(r) => rows.push(r),
                        Err(e) => {
                            let reason = format!("undecodable write-ahead log entry: {e}");
                            let _ = sink.dead_letter.write(std::iter::once(raw), &reason);
                            sink.metrics.dead_lettered.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            for chunk in rows.chunks(max_rows.max(1)) {
                let chunk: Vec<&IncidentRow> = chunk.iter().collect();
                let mut attempt = 0u32;
                loop {
                    match sink.insert_once(&chunk).await {
                        Ok(()) => {
                            sink.metrics
                                .wal_replayed
                                .fetch_add(chunk.len() as u64, Relaxed);
                            break;
                        }
                        Err(e) => {
                            if sink.count_error(&e) {
                                sink.dead_letter(&chunk, &e.to_string());
                                break;
                            }
                            tracing::warn!(event = "wal_replay_failed", attempt, error = %e, "write-ahead log replay failed; retrying");
                            if wait_or_stop(&mut shutdown, sink.retry.backoff(attempt)).await {
                                return;
                            }
                            attempt = attempt.saturating_add(1);
                        }
                    }
                }
            }
            if let Err(e) = wal.remove(seq) {
                tracing::error!(event = "wal_remove_failed", error = %e, "cannot delete a replayed write-ahead log segment");
                if wait_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                    return;
                }
            } else {
                tracing::info!(
                    segment = %path.display(),
                    incidents = rows.len(),
                    "write-ahead log segment replayed into ClickHouse"
                );
            }
        }
        tokio::select! {
            _ = sink.wal_appended.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Sleeps `d`; returns true if shutdown began meanwhile.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_response(msg: &str) -> StoreError {
        StoreError::ClickHouse {
            what: "insert".into(),
            source: clickhouse::error::Error::BadResponse(msg.into()),
        }
    }

    #[test]
    fn parse_errors_are_permanent_and_outages_are_transient() {
        assert!(is_permanent(&bad_response(
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input"
        )));
        assert!(is_permanent(&bad_response(
            "Code: 53. DB::Exception: Type mismatch"
        )));
        assert!(!is_permanent(&bad_response(
            "Code: 60, e.displayText() = DB::Exception: Table shaobing.incidents doesn't exist"
        )));
        assert!(!is_permanent(&bad_response("Code: 252. Too many parts")));
        assert!(!is_permanent(&bad_response("502 Bad Gateway")));
        assert!(!is_permanent(&StoreError::Timeout {
            what: "insert".into(),
            timeout: Duration::from_secs(1)
        }));
        assert!(!is_permanent(&StoreError::ClickHouse {
            what: "insert".into(),
            source: clickhouse::error::Error::Network("refused".into()),
        }));
    }

    #[test]
    fn error_codes_are_read_from_messages() {
        assert_eq!(error_code("Code: 6, e.displayText()"), Some(6));
        assert_eq!(error_code("bad response: Code: 117. DB"), Some(117));
        assert_eq!(error_code("no code"), None);
    }

    #[test]
    fn dead_letter_lines_carry_reason_and_incident() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetter::new(dir.path().join("dl.ndjson"));
        assert_eq!(
            dl.write(["{\"id\":1}", "not json"].into_iter(), "Code: 27")
                .unwrap(),
            2
        );
        let text = std::fs::read_to_string(dir.path().join("dl.ndjson")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["reason"], "Code: 27");
        assert_eq!(lines[0]["incident"]["id"], 1);
        assert_eq!(lines[1]["incident"], "not json");
    }

    #[test]
    fn backoff_is_capped_and_jittered_into_its_upper_half() {
        let r = RetryConfig {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        for _ in 0..100 {
            let b0 = r.backoff(0).as_millis();
            assert!((50..=100).contains(&b0), "{b0}");
            let b10 = r.backoff(10).as_millis();
            assert!((500..=1000).contains(&b10), "{b10}");
        }
    }
}
