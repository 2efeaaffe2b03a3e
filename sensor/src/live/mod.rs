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
//!   [`health`]): analysts must know when the sensor was
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
//!
//! The pieces: `worker` (capture workers and the volumetric thread),
//! [`control`] (stop flag, signature reloads, signals), [`stats`] (shared
//! counters), [`health`] (capture loss and heartbeats).

pub mod control;
pub mod health;
pub mod stats;
mod worker;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shaobing_wire::{Heartbeat, Incident, Timestamp};

use crate::capture::live::LiveHandle;
use crate::config::Settings;
use crate::forward::forwarder::{Forwarder, ForwarderReport};
use control::RUNNING;
pub use control::{Control, SignalThread, STOP_FAST, STOP_GRACEFUL};
use health::LossMonitor;
pub use stats::LiveStats;
use worker::{volumetric, worker, Record, QUEUE_BATCHES};

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
    if let Ok(mut c) = control.stats.decode.lock() {
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
        let mut beats = health::Heartbeats::new(started);
        while control.stop.load(Ordering::Relaxed) == RUNNING {
            std::thread::sleep(Duration::from_millis(100));
            if last_loss_check.elapsed() >= Duration::from_secs(1) {
                last_loss_check = Instant::now();
                let s = &control.stats;
                let captured = s.packets();
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
            last_hb = Instant::now();
            let spool_depth = match output {
                Output::Forward(f) => f.stats().spool_depth_bytes.load(Ordering::Relaxed),
                Output::Stdout(_) => 0,
            };
            let hb = beats.next(&control.stats, spool_depth);
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
