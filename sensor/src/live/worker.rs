//! Capture workers and the volumetric thread.
//!
//! Each worker reads its own libpcap handle and runs the same
//! [`Pipeline`] as a replay, with one difference: its volumetric stage is
//! a [`Batcher`] that sends packet headers to the one volumetric thread,
//! since a flood spread over all workers must be counted in one place.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shaobing_signatures::SignatureSet;
use shaobing_wire::{Incident, Timestamp};

use super::control::{Control, RUNNING};
use super::stats::{LeakTotals, LiveStats};
use super::Output;
use crate::capture::live::LiveHandle;
use crate::config::Settings;
use crate::decode::Header;
use crate::detect::volumetric::Volumetric;
use crate::detect::IncidentSink;
use crate::pipeline::{new_leak, HeaderStage, Pipeline};

/// Header records per batch sent to the volumetric thread.
pub(super) const BATCH: usize = 512;
/// A batch that is not full is sent after this long at the latest.
pub(super) const BATCH_DELAY: Duration = Duration::from_millis(10);
/// Batches the queue to the volumetric thread holds; when it is full a
/// batch is dropped and counted (`volumetric_records_dropped`): capture
/// never waits.
pub(super) const QUEUE_BATCHES: usize = 1024;
/// Packets between two publications of a worker's pipeline counters.
const PUBLISH_EVERY: u64 = 4096;

/// A packet's headers as the volumetric thread gets them: capture time,
/// length on the wire and the decoded headers (no payload).
#[derive(Clone, Copy, Debug)]
pub(super) struct Record {
    ts: Timestamp,
    wire_len: u32,
    header: Header,
}

/// The volumetric stage of a live worker: gathers header records and
/// sends them in batches through the bounded queue.
pub(super) struct Batcher<'a> {
    tx: SyncSender<Vec<Record>>,
    batch: Vec<Record>,
    last_send: Instant,
    stats: &'a LiveStats,
}

impl<'a> Batcher<'a> {
    pub(super) fn new(tx: SyncSender<Vec<Record>>, stats: &'a LiveStats) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(BATCH),
            last_send: Instant::now(),
            stats,
        }
    }

    /// Sends the batch if it is full or has waited [`BATCH_DELAY`].
    fn send_if_due(&mut self) {
        let due = self.batch.len() >= BATCH
            || (!self.batch.is_empty() && self.last_send.elapsed() >= BATCH_DELAY);
        if due {
            self.send(false);
        }
    }

    /// Sends what is gathered; `block` waits for room (at shutdown only).
    fn send(&mut self, block: bool) {
        self.last_send = Instant::now();
        if self.batch.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let n = full.len() as u64;
        let sent = if block {
            self.tx.send(full).is_ok()
        } else {
            match self.tx.try_send(full) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !sent {
            self.stats
                .volumetric_records_dropped
                .fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl HeaderStage for Batcher<'_> {
    #[inline]
    fn header(&mut self, ts: Timestamp, h: &Header, wire_len: u32, _: &mut impl IncidentSink) {
        self.batch.push(Record {
            ts,
            wire_len,
            header: *h,
        });
        if self.batch.len() >= BATCH {
            self.send(false);
        }
    }

    fn finish(&mut self, _: Timestamp, _: &mut impl IncidentSink) {
        self.send(true);
    }
}

/// Where live detectors push incidents: counted, then to the output.
pub(super) struct Sink<'a> {
    pub(super) out: &'a Output,
    pub(super) stats: &'a LiveStats,
}

impl IncidentSink for Sink<'_> {
    fn emit(&mut self, incident: Incident) {
        self.stats.incidents.fetch_add(1, Ordering::Relaxed);
        self.out.emit(&incident);
    }
}

/// One capture worker: its handle through the shared pipeline until a
/// stop is requested; swaps in a new leak detector when the signatures
/// are reloaded (closing open flows first, so nothing is lost).
pub(super) fn worker(
    idx: usize,
    mut h: LiveHandle,
    settings: &Settings,
    control: &Control,
    out: &Output,
    tx: Option<SyncSender<Vec<Record>>>,
) {
    let stats = &control.stats;
    let Some((mut generation, sigs)) = control.current() else {
        tracing::error!(worker = idx, "signature lock poisoned; worker stops");
        return;
    };
    let batcher = tx.map(|tx| Batcher::new(tx, stats));
    let mut pipeline =
        Pipeline::with_stages(settings.decap.clone(), batcher, new_leak(settings, sigs));
    let mut totals = LeakTotals::default();
    let mut sink = Sink { out, stats };
    let mut last_check = Instant::now();
    let mut unpublished = 0u64;
    while control.stop.load(Ordering::Relaxed) == RUNNING {
        match h.next_packet() {
            Ok(p) => {
                pipeline.on_packet(&p, &mut sink);
                unpublished += 1;
                if unpublished >= PUBLISH_EVERY {
                    unpublished = 0;
                    stats.publish_decode(idx, pipeline.counters());
                }
            }
            // Non-blocking handle: nothing queued, wait for the socket.
            Err(pcap::Error::TimeoutExpired) => {
                stats.publish_decode(idx, pipeline.counters());
                h.wait(100)
            }
            Err(e) => {
                tracing::error!(worker = idx, error = %e, "capture failed; worker stops");
                break;
            }
        }
        if let Some(b) = pipeline.volumetric_mut() {
            b.send_if_due();
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            stats.publish_decode(idx, pipeline.counters());
            if let Ok(st) = h.cap.stats() {
                if let Ok(mut d) = stats.drops.lock() {
                    if let Some(slot) = d.get_mut(idx) {
                        *slot = u64::from(st.dropped) + u64::from(st.if_dropped);
                    }
                }
            }
            if let Some(l) = pipeline.leak_stats() {
                totals.publish(idx, &l, stats);
            }
            if control.generation() != generation {
                if let Some((g, sigs)) = control.current() {
                    reload(&mut pipeline, &mut totals, settings, sigs, &mut sink);
                    generation = g;
                    tracing::info!(worker = idx, generation = g, "signatures reloaded");
                }
            }
        }
    }
    pipeline.finish(&mut sink);
    stats.publish_decode(idx, pipeline.counters());
    if let Some(l) = pipeline.leak_stats() {
        totals.publish(idx, &l, stats);
    }
}

/// Closes open flows under the old signature set, keeps its counts, then
/// switches to `sigs`.
fn reload(
    pipeline: &mut Pipeline<Batcher<'_>>,
    totals: &mut LeakTotals,
    settings: &Settings,
    sigs: Arc<SignatureSet>,
    sink: &mut Sink<'_>,
) {
    if let Some(old) = pipeline.replace_leak(new_leak(settings, sigs), sink) {
        totals.retire(&old);
    }
}

/// The volumetric thread: one host table for the headers of every
/// worker's packets. When no packets arrive, capture time is advanced by
/// the wall clock so attacks end on a link that went quiet.
pub(super) fn volumetric(
    rx: Receiver<Vec<Record>>,
    settings: &Settings,
    control: &Control,
    out: &Output,
) {
    let mut vol = Volumetric::new(
        settings.volumetric.clone(),
        settings.protected.clone(),
        settings.name.clone(),
    );
    let mut sink = Sink {
        out,
        stats: &control.stats,
    };
    let mut last = Timestamp::default();
    let mut last_wall = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => {
                for r in batch {
                    let ts = r.ts.max(last);
                    last = ts;
                    vol.on_packet(ts, &r.header, r.wire_len, &mut sink);
                }
                last_wall = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {
                if last != Timestamp::default() {
                    let idle = i64::try_from(last_wall.elapsed().as_micros()).unwrap_or(0);
                    vol.advance(Timestamp(last.micros() + idle), &mut sink);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let idle = i64::try_from(last_wall.elapsed().as_micros()).unwrap_or(0);
    vol.finish(Timestamp(last.micros() + idle), &mut sink);
}
