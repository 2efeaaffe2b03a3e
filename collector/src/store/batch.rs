//! The batching writer: one task that turns accepted requests into
//! ClickHouse inserts and acknowledges each request once its rows are stored.
//!
//! Requests arrive on a bounded channel (capacity `batch.queue_batches`).
//! Full policy: [`WriterHandle::submit`] waits up to
//! `batch.enqueue_timeout_ms` for room, then gives up with
//! [`SubmitError::QueueFull`] (the HTTP layer answers 503 and the sensor
//! retries). The writer flushes when `batch.max_rows` rows are pending or
//! the oldest pending request has waited `batch.max_delay_ms`; all pending
//! requests go into one INSERT and all get the same outcome. There are no
//! retries here: a failed insert is reported to every request in it, and the
//! sensors retry (incident ids are deterministic, the table deduplicates).
//! When the drain signal turns `true` (shutdown began) the writer flushes
//! what is pending and from then on flushes every request as soon as it
//! arrives, so in-flight requests are answered without waiting for
//! `max_delay_ms`. When every handle is dropped it flushes and ends.

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::row::IncidentRow;
use super::{with_timeout, StoreError};
use crate::config::BatchConfig;

/// Why a request's rows were not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The queue stayed full for `enqueue_timeout_ms`.
    #[error("ingest queue full")]
    QueueFull,
    /// The writer has stopped (shutting down).
    #[error("writer stopped")]
    Stopped,
    /// The insert failed; the message is the ClickHouse error.
    #[error("clickhouse unavailable: {0}")]
    Insert(Arc<str>),
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

/// Starts the writer task; returns the handle and the task to await after
/// every handle has been dropped. Setting `drain` to `true` makes the writer
/// flush immediately from then on (see the module docs).
pub fn spawn_writer(
    target: WriterTarget,
    config: &BatchConfig,
    drain: watch::Receiver<bool>,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_batches);
    let task = tokio::spawn(run(target, rx, drain, config.max_rows, config.max_delay()));
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

async fn run(
    target: WriterTarget,
    mut rx: mpsc::Receiver<Pending>,
    mut drain: watch::Receiver<bool>,
    max_rows: usize,
    max_delay: Duration,
) {
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
                    draining || pending_rows >= max_rows
                }
                None => {
                    flush(&target, std::mem::take(&mut pending)).await;
                    return;
                }
            },
            _ = sleep_until(deadline) => true,
        };
        if flush_now {
            flush(&target, std::mem::take(&mut pending)).await;
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

async fn flush(target: &WriterTarget, batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    let rows: usize = batch.iter().map(|p| p.rows.len()).sum();
    let started = std::time::Instant::now();
    let result = insert(target, &batch).await;
    let outcome = match result {
        Ok(()) => {
            tracing::debug!(
                rows,
                requests = batch.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch stored"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(event = "insert_failed", rows, requests = batch.len(), error = %e, "batch not stored");
            Err(SubmitError::Insert(Arc::from(e.to_string())))
        }
    };
    for p in batch {
        // The request may have gone away (client disconnected); its rows
        // were handled all the same.
        let _ = p.ack.send(outcome.clone());
    }
}

async fn insert(target: &WriterTarget, batch: &[Pending]) -> Result<(), StoreError> {
    with_timeout("insert incidents", target.timeout, async {
        let what = "insert incidents";
        let mut insert = target
            .client
            .insert_unescaped::<IncidentRow>(&target.table)
            .await
            .map_err(StoreError::ch(what))?;
        for row in batch.iter().flat_map(|p| p.rows.iter()) {
            insert.write(row).await.map_err(StoreError::ch(what))?;
        }
        insert.end().await.map_err(StoreError::ch(what))
    })
    .await
}
