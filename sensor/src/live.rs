//! Live mode (`shaobing-sensor run`): capture workers, the volumetric
//! thread, delivery, heartbeats, signals.
//!
//! ```text
//!  NIC ─► worker 0 (own pcap handle) ─ decode ─ leak detector ──┐
//!     ╰─► worker N (PACKET_FANOUT)  ─ decode ─ leak detector ──┤ incidents
//!              │ header records (bounded, drop + count when full)  ├──► output
//!              ▼                                                    │  (forwarder+spool,
//!         volumetric thread ─ one host table for all workers ───────┘   or stdout)
//! ```
//!
//! * Flow-hash fanout sends both directions of a flow to one worker, so
//!   reassembly and leak state never cross threads.
//! * A flood is spread over all workers, so volumetric counting must see
//!   every packet in one place: workers send compact header records (no
//!   payload) in batches of up to 512, every 10 ms at the latest, through
//!   a bounded queue of 1,024 batches. When it is full the batch is dropped
//!   and counted (`volumetric_records_dropped`): capture never waits.
//! * Once a second the libpcap drop counters are checked; a sharp rise is
//!   itself an incident (`sensor_health` / `capture_loss`, see
//!   [`crate::detect::health`]): analysts must know when the sensor was
//!   blind.
//! * Time is packet time. When no packets arrive the volumetric clock is
//!   advanced by the wall clock, so attacks end on a link that went quiet.
//! * Signals: SIGTERM stops capture, flushes the detectors and delivers
//!   or spools everything within the grace time, then exits 0. SIGINT
//!   does the same without waiting for delivery (pending incidents are
//!   spooled). SIGHUP reloads the leak signatures: an invalid set keeps the
//!   old one running and logs why. Workers swap in the new set between
//!   packets; flows open at that moment are closed (their incidents
//!   emitted), so nothing is lost and no packet is dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use shaobing_signatures::SignatureSet;
use shaobing_wire::{Heartbeat, Incident, Timestamp};

use crate::capture::live::LiveHandle;
use crate::config::Settings;
use crate::decode::{decode, Header};
use crate::detect::health::LossMonitor;
use crate::detect::leak::{Leak, LeakStats};
use crate::detect::volumetric::Volumetric;
use crate::detect::IncidentSink;
use crate::forward::forwarder::{Forwarder, ForwarderReport};

const BATCH: usize = 512;
const BATCH_DELAY: Duration = Duration::from_millis(10);
const QUEUE_BATCHES: usize = 1024;
const RUNNING: u8 = 0;
/// Graceful stop (SIGTERM).
pub const STOP_GRACEFUL: u8 = 1;
/// Fast stop (SIGINT).
pub const STOP_FAST: u8 = 2;

/// Where live incidents go.
pub enum Output {
    /// Through the spool to the collector.
    Forward(Forwarder),
    /// JSON lines on stdout, flushed per incident.
    Stdout(Mutex<std::io::Stdout>),
}

impl Output {
    fn emit(&self, i: &Incident) {
        match self {
            Output::Forward(f) => f.send(i),
            Output::Stdout(out) => {
                if let (Ok(mut o), Ok(line)) = (out.lock(), serde_json::to_string(i)) {
                    // A closed stdout must not stop capture.
                    let _ = writeln!(o, "{line}").and_then(|()| o.flush());
                }
            }
        }
    }
}

/// Counters shared by all threads (read by heartbeats and at exit).
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Packets captured.
    pub packets: AtomicU64,
    /// Bytes captured.
    pub bytes: AtomicU64,
    /// Kernel + interface drops, per worker (pcap_stats), summed on read.
    pub drops: Mutex<Vec<u64>>,
    /// Header records the volumetric queue had no room for.
    pub volumetric_records_dropped: AtomicU64,
    /// Incidents emitted.
    pub incidents: AtomicU64,
    /// Leak incidents per signature id, per worker (summed on read).
    pub signature_hits: Mutex<Vec<BTreeMap<String, u64>>>,
    /// The leak detector's counters ([`LeakStats::counters`]), per worker
    /// (summed on read).
    pub leak_counters: Mutex<Vec<BTreeMap<String, u64>>>,
    /// Signature reloads applied.
    pub reloads: AtomicU64,
    /// Reloads refused because the new set was invalid.
    pub reloads_refused: AtomicU64,
}

impl LiveStats {
    /// Leak incidents per signature over all workers.
    pub fn signature_hits(&self) -> BTreeMap<String, u64> {
        sum_per_worker(&self.signature_hits)
    }

    /// The leak detector's counters over all workers.
    pub fn leak_counters(&self) -> BTreeMap<String, u64> {
        sum_per_worker(&self.leak_counters)
    }

    /// Total drops over all workers.
    pub fn kernel_drops(&self) -> u64 {
        self.drops.lock().map(|d| d.iter().sum()).unwrap_or(0)
    }
}

fn sum_per_worker(per_worker: &Mutex<Vec<BTreeMap<String, u64>>>) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    if let Ok(all) = per_worker.lock() {
        for m in all.iter() {
            for (k, v) in m {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    total
}

/// Adds `s`'s incidents per signature into `m`.
fn add_hits(m: &mut BTreeMap<String, u64>, s: &LeakStats) {
    for (id, n) in &s.incidents_by_signature {
        *m.entry(id.clone()).or_insert(0) += n;
    }
}

/// One worker's leak counts since the sensor started. A signature reload
/// replaces the worker's detector, whose own counts start again from zero,
/// so the retired detectors' totals are kept here and added to the live
/// one's: heartbeat counters never go backwards.
#[derive(Debug, Default)]
struct LeakTotals {
    retired_hits: BTreeMap<String, u64>,
    retired_counters: BTreeMap<&'static str, u64>,
}

impl LeakTotals {
    /// Keeps the counts of a detector about to be replaced (after its
    /// flows were closed).
    fn retire(&mut self, s: &LeakStats) {
        add_hits(&mut self.retired_hits, s);
        for (name, n) in s.counters() {
            if !LeakStats::GAUGES.contains(&name) {
                *self.retired_counters.entry(name).or_insert(0) += n;
            }
        }
    }

    /// Incidents per signature: retired detectors plus `s`.
    fn hits(&self, s: &LeakStats) -> BTreeMap<String, u64> {
        let mut m = self.retired_hits.clone();
        add_hits(&mut m, s);
        m
    }

    /// Counters: retired detectors plus `s`.
    fn counters(&self, s: &LeakStats) -> BTreeMap<String, u64> {
        s.counters()
            .into_iter()
            .map(|(name, n)| {
                let before = self.retired_counters.get(name).copied().unwrap_or(0);
                (name.to_string(), before + n)
            })
            .collect()
    }

    /// Publishes this worker's totals into the shared stats.
    fn publish(&self, idx: usize, s: &LeakStats, stats: &LiveStats) {
        if let Ok(mut all) = stats.signature_hits.lock() {
            if let Some(mine) = all.get_mut(idx) {
                *mine = self.hits(s);
            }
        }
        if let Ok(mut all) = stats.leak_counters.lock() {
            if let Some(mine) = all.get_mut(idx) {
                *mine = self.counters(s);
            }
        }
    }
}

/// State the main thread shares with the workers.
pub struct Control {
    /// `RUNNING`, [`STOP_GRACEFUL`] or [`STOP_FAST`].
    pub stop: AtomicU8,
    /// The signature set in force and its generation.
    pub signatures: RwLock<(u64, Arc<SignatureSet>)>,
    /// Counters.
    pub stats: LiveStats,
}

impl Control {
    /// A control block running with `sigs`.
    pub fn new(sigs: Arc<SignatureSet>) -> Self {
        Control {
            stop: AtomicU8::new(RUNNING),
            signatures: RwLock::new((0, sigs)),
            stats: LiveStats::default(),
        }
    }

    fn generation(&self) -> u64 {
        self.signatures.read().map(|g| g.0).unwrap_or(0)
    }

    fn current(&self) -> Option<(u64, Arc<SignatureSet>)> {
        self.signatures.read().ok().map(|g| (g.0, Arc::clone(&g.1)))
    }

    /// Loads signatures from `path` (or the built-in pack) and installs
    /// them; on error the running set stays and the error is returned.
    pub fn reload(&self, path: Option<&PathBuf>) -> Result<usize, String> {
        let set = match path {
            Some(p) => SignatureSet::load(p),
            None => SignatureSet::default_pack(),
        };
        match set {
            Ok(set) => {
                let n = set.signatures().len();
                if let Ok(mut g) = self.signatures.write() {
                    *g = (g.0 + 1, Arc::new(set));
                }
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.stats.reloads_refused.fetch_add(1, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }
}

/// A packet's headers as the volumetric thread gets them: capture time,
/// length on the wire and the decoded headers (no payload).
#[derive(Clone, Copy, Debug)]
struct Record {
    ts: Timestamp,
    wire_len: u32,
    header: Header,
}

struct Sink<'a> {
    out: &'a Output,
    stats: &'a LiveStats,
}

impl IncidentSink for Sink<'_> {
    fn emit(&mut self, incident: Incident) {
        self.stats.incidents.fetch_add(1, Ordering::Relaxed);
        self.out.emit(&incident);
    }
}

fn worker(
    idx: usize,
    mut h: LiveHandle,
    settings: &Settings,
    control: &Control,
    out: &Output,
    tx: Option<SyncSender<Vec<Record>>>,
) {
    let stats = &control.stats;
    let new_leak = |sigs: Arc<SignatureSet>| {
        settings.leak.enabled.then(|| {
            Leak::new(
                settings.leak.clone(),
                sigs,
                settings.protected.clone(),
                settings.name.clone(),
            )
        })
    };
    let Some((mut generation, sigs)) = control.current() else {
        tracing::error!(worker = idx, "signature lock poisoned; worker stops");
        return;
    };
    let mut leak = new_leak(sigs);
    let mut totals = LeakTotals::default();
    let mut sink = Sink { out, stats };
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut last_send = Instant::now();
    let mut last_check = Instant::now();
    let mut last_ts = Timestamp::default();
    let send = |batch: &mut Vec<Record>, block: bool| {
        let Some(tx) = &tx else {
            batch.clear();
            return;
        };
        if batch.is_empty() {
            return;
        }
        let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
        let n = full.len() as u64;
        let sent = if block {
            tx.send(full).is_ok()
        } else {
            match tx.try_send(full) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !sent {
            stats
                .volumetric_records_dropped
                .fetch_add(n, Ordering::Relaxed);
        }
    };
    while control.stop.load(Ordering::Relaxed) == RUNNING {
        match h.cap.next_packet() {
            Ok(p) => {
                let usec = u32::try_from(p.header.ts.tv_usec.clamp(0, 999_999)).unwrap_or(0);
                let ts = Timestamp::from_parts(p.header.ts.tv_sec, usec).max(last_ts);
                last_ts = ts;
                stats.packets.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes
                    .fetch_add(p.data.len() as u64, Ordering::Relaxed);
                if let Ok(d) = decode(h.link, p.data) {
                    if let Some(l) = &mut leak {
                        l.on_packet(ts, &d, &mut sink);
                    }
                    if tx.is_some() {
                        batch.push(Record {
                            ts,
                            wire_len: p.header.len,
                            header: d.header(),
                        });
                    }
                }
            }
            // Non-blocking handle: nothing queued, wait for the socket.
            Err(pcap::Error::TimeoutExpired) => h.wait(100),
            Err(e) => {
                tracing::error!(worker = idx, error = %e, "capture failed; worker stops");
                break;
            }
        }
        if batch.len() >= BATCH || (!batch.is_empty() && last_send.elapsed() >= BATCH_DELAY) {
            send(&mut batch, false);
            last_send = Instant::now();
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Ok(st) = h.cap.stats() {
                if let Ok(mut d) = stats.drops.lock() {
                    if let Some(slot) = d.get_mut(idx) {
                        *slot = u64::from(st.dropped) + u64::from(st.if_dropped);
                    }
                }
            }
            if let Some(l) = &leak {
                totals.publish(idx, &l.stats(), stats);
            }
            if control.generation() != generation {
                if let Some((g, sigs)) = control.current() {
                    // Close open flows under the old set, keep its counts,
                    // then switch.
                    if let Some(l) = &mut leak {
                        l.finish(last_ts, &mut sink);
                        totals.retire(&l.stats());
                    }
                    leak = new_leak(sigs);
                    generation = g;
                    tracing::info!(worker = idx, generation = g, "signatures reloaded");
                }
            }
        }
    }
    send(&mut batch, true);
    if let Some(l) = &mut leak {
        l.finish(last_ts, &mut sink);
        totals.publish(idx, &l.stats(), stats);
    }
}

fn volumetric(rx: Receiver<Vec<Record>>, settings: &Settings, control: &Control, out: &Output) {
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
                for h in batch {
                    let ts = h.ts.max(last);
                    last = ts;
                    vol.on_packet(ts, &h.header, h.wire_len, &mut sink);
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

/// Called with each heartbeat (to send it to the collector).
pub type HeartbeatHook<'a> = Box<dyn FnMut(&Heartbeat) + Send + 'a>;

/// Everything `run` needs besides the opened handles.
pub struct LiveRun<'a> {
    /// Validated settings.
    pub settings: &'a Settings,
    /// Shared control block (signals, signature reloads, counters).
    pub control: &'a Control,
    /// Where incidents go.
    pub output: Output,
    /// How long SIGTERM waits for delivery.
    pub grace: Duration,
    /// Heartbeat interval (0: none).
    pub heartbeat: Duration,
    /// Called every heartbeat with the current heartbeat (to send it).
    pub on_heartbeat: Option<HeartbeatHook<'a>>,
    /// Signature path for SIGHUP reloads (None: built-in pack).
    pub signatures: Option<PathBuf>,
}

/// Runs capture until a stop is requested through `control.stop`.
/// Returns the forwarder's report when delivering to a collector.
pub fn run(handles: Vec<LiveHandle>, mut r: LiveRun<'_>) -> Option<ForwarderReport> {
    let settings = r.settings;
    let control = r.control;
    if let Ok(mut d) = control.stats.drops.lock() {
        *d = vec![0; handles.len()];
    }
    if let Ok(mut h) = control.stats.signature_hits.lock() {
        *h = vec![Default::default(); handles.len()];
    }
    if let Ok(mut c) = control.stats.leak_counters.lock() {
        *c = vec![Default::default(); handles.len()];
    }
    let started = Instant::now();
    let output = &r.output;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<Record>>(QUEUE_BATCHES);
        let vol_enabled = settings.volumetric.enabled;
        let vol =
            vol_enabled.then(|| scope.spawn(move || volumetric(rx, settings, control, output)));
        let mut workers = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            let tx = vol_enabled.then(|| tx.clone());
            workers.push(scope.spawn(move || worker(i, h, settings, control, output, tx)));
        }
        drop(tx);
        // The main thread: capture-loss checks and heartbeats until stopped.
        let mut loss = LossMonitor::new(settings.name.clone());
        let mut last_loss_check = Instant::now();
        let mut last_hb = Instant::now();
        let mut last_packets = 0u64;
        let mut last_bytes = 0u64;
        while control.stop.load(Ordering::Relaxed) == RUNNING {
            std::thread::sleep(Duration::from_millis(100));
            if last_loss_check.elapsed() >= Duration::from_secs(1) {
                last_loss_check = Instant::now();
                let s = &control.stats;
                let captured = s.packets.load(Ordering::Relaxed);
                if let Some(i) = loss.observe(Timestamp::now(), captured, s.kernel_drops()) {
                    tracing::warn!(
                        dropped = i.packets,
                        "capture loss: the sensor is missing packets"
                    );
                    s.incidents.fetch_add(1, Ordering::Relaxed);
                    output.emit(&i);
                }
            }
            if r.heartbeat.is_zero() || last_hb.elapsed() < r.heartbeat {
                continue;
            }
            let secs = last_hb.elapsed().as_secs_f64().max(1e-3);
            last_hb = Instant::now();
            let s = &control.stats;
            let packets = s.packets.load(Ordering::Relaxed);
            let bytes = s.bytes.load(Ordering::Relaxed);
            let hb = Heartbeat {
                schema: shaobing_wire::SCHEMA_VERSION,
                ts: Timestamp::now(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_s: started.elapsed().as_secs(),
                packets,
                bytes,
                kernel_drops: s.kernel_drops(),
                pps: ((packets - last_packets) as f64 / secs) as u64,
                bps: ((bytes - last_bytes) as f64 * 8.0 / secs) as u64,
                spool_depth: match output {
                    Output::Forward(f) => f.stats().spool_depth_bytes.load(Ordering::Relaxed),
                    Output::Stdout(_) => 0,
                },
                signature_hits: s.signature_hits(),
                leak_counters: s.leak_counters(),
            };
            last_packets = packets;
            last_bytes = bytes;
            let leak = |name: &str| hb.leak_counters.get(name).copied().unwrap_or(0);
            tracing::info!(
                packets = hb.packets,
                kernel_drops = hb.kernel_drops,
                pps = hb.pps,
                volumetric_records_dropped = s.volumetric_records_dropped.load(Ordering::Relaxed),
                incidents = s.incidents.load(Ordering::Relaxed),
                leak_flows = leak("flows"),
                leak_bytes_scanned = leak("bytes_scanned"),
                leak_flows_evicted = leak("flows_evicted"),
                reassembly_cap_hits =
                    leak("reassembly_per_stream_cap_hits") + leak("reassembly_global_cap_hits"),
                reassembly_gaps = leak("reassembly_gaps"),
                decompress_capped = leak("decompress_capped"),
                "heartbeat"
            );
            if let Some(f) = &mut r.on_heartbeat {
                f(&hb);
            }
        }
        for w in workers {
            let _ = w.join();
        }
        if let Some(v) = vol {
            let _ = v.join();
        }
    });
    match r.output {
        Output::Forward(f) => {
            let grace = if control.stop.load(Ordering::Relaxed) == STOP_FAST {
                Duration::ZERO
            } else {
                r.grace
            };
            match f.shutdown(grace) {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::error!(error = %e, "forwarder failed at shutdown");
                    None
                }
            }
        }
        Output::Stdout(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(alpha: u64, scanned: u64, flows: u64) -> LeakStats {
        LeakStats {
            bytes_scanned: scanned,
            flows,
            incidents_by_signature: vec![("alpha".into(), alpha)],
            ..LeakStats::default()
        }
    }

    #[test]
    fn leak_totals_survive_reloads_and_gauges_are_not_summed() {
        let live = LiveStats::default();
        *live.signature_hits.lock().unwrap() = vec![BTreeMap::new(); 2];
        *live.leak_counters.lock().unwrap() = vec![BTreeMap::new(); 2];
        let mut totals = LeakTotals::default();
        totals.publish(0, &stats(2, 100, 5), &live);
        // A reload: the old detector closed its flows, a new one starts.
        totals.retire(&stats(2, 150, 0));
        let mut fresh = stats(1, 40, 3);
        fresh.incidents_by_signature.push(("bravo".into(), 1));
        totals.publish(0, &fresh, &live);
        // Worker 1 reports too: the heartbeat sums both.
        LeakTotals::default().publish(1, &stats(4, 10, 1), &live);
        let hits = live.signature_hits();
        assert_eq!(hits.get("alpha"), Some(&7));
        assert_eq!(hits.get("bravo"), Some(&1));
        let counters = live.leak_counters();
        assert_eq!(counters.get("bytes_scanned"), Some(&200));
        assert_eq!(
            counters.get("flows"),
            Some(&4),
            "open flows now, not a total"
        );
        assert_eq!(counters.get("reassembly_gaps"), Some(&0));
        assert_eq!(counters.len(), LeakStats::default().counters().len());
    }
}
