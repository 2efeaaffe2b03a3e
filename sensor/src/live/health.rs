//! `sensor_health` incidents: the sensor tells analysts when it was blind.
//!
//! Live capture reads libpcap's drop counters (`ps_drop` + `ps_ifdrop`,
//! packets the kernel ring or the NIC had no room for) once a second. A
//! second with at least [`MIN_DROPS`] drops that are at least
//! [`MIN_RATIO`] of the packets seen starts a capture-loss episode and
//! emits one `capture_loss` incident (`packets` = drops that second, `pps`
//! = the same per second, and `captured`, `drop_ratio` and the episode's
//! totals in the extra fields). Further lossy seconds belong to the same
//! episode; it ends after [`QUIET_SECS`] seconds without drops, so a
//! sustained overload is one incident, not one per second.

use shaobing_wire::{Event, Incident, Kind, Severity, Timestamp};

use std::sync::atomic::Ordering;
use std::time::Instant;

use shaobing_wire::Heartbeat;

use super::stats::LiveStats;
use crate::incident::{self, Base};

/// Drops in one second that count as a sharp rise.
pub const MIN_DROPS: u64 = 100;
/// ... and the share of that second's packets they must be.
pub const MIN_RATIO: f64 = 0.001;
/// Seconds without drops that end an episode.
pub const QUIET_SECS: i64 = 10;

/// Watches cumulative capture and drop counters.
#[derive(Debug)]
pub struct LossMonitor {
    sensor: String,
    last_captured: Option<u64>,
    last_dropped: u64,
    episode: Option<i64>, // micros of the last lossy second
    episodes: u64,
}

impl LossMonitor {
    /// A monitor for `sensor`.
    pub fn new(sensor: String) -> Self {
        LossMonitor {
            sensor,
            last_captured: None,
            last_dropped: 0,
            episode: None,
            episodes: 0,
        }
    }

    /// Capture-loss episodes so far.
    pub fn episodes(&self) -> u64 {
        self.episodes
    }

    /// Feeds the cumulative counters read at `now` (about once a second);
    /// returns an incident when a capture-loss episode starts.
    pub fn observe(&mut self, now: Timestamp, captured: u64, dropped: u64) -> Option<Incident> {
        let Some(last_captured) = self.last_captured.replace(captured) else {
            self.last_dropped = dropped;
            return None;
        };
        let got = captured.saturating_sub(last_captured);
        let lost = dropped.saturating_sub(self.last_dropped);
        self.last_dropped = dropped;
        if let Some(last) = self.episode {
            if lost > 0 {
                self.episode = Some(now.micros());
            } else if now.micros() - last >= QUIET_SECS * 1_000_000 {
                self.episode = None;
            }
            return None;
        }
        let ratio = lost as f64 / (lost + got).max(1) as f64;
        if lost < MIN_DROPS || ratio < MIN_RATIO {
            return None;
        }
        self.episode = Some(now.micros());
        self.episodes += 1;
        let identity = format!(
            "{}|sensor_health|capture_loss|{}",
            self.sensor,
            now.micros()
        );
        let mut extra = serde_json::Map::new();
        extra.insert("captured".into(), got.into());
        extra.insert(
            "drop_ratio".into(),
            serde_json::json!((ratio * 10_000.0).round() / 10_000.0),
        );
        extra.insert("dropped_total".into(), dropped.into());
        let base = Base {
            sensor: &self.sensor,
            kind: Kind::SensorHealth,
            event: Event::CaptureLoss,
            severity: Severity::High,
            ts: now,
            identity: &identity,
        };
        Some(Incident {
            pps: Some(lost),
            packets: Some(lost),
            extra,
            ..incident::new(base, "sensor/capture_loss".into())
        })
    }
}

/// Makes heartbeats from the shared counters: rates over the interval
/// since the previous one.
#[derive(Debug)]
pub struct Heartbeats {
    started: Instant,
    last: Instant,
    last_packets: u64,
    last_bytes: u64,
}

impl Heartbeats {
    /// Heartbeats of a sensor that started at `started`.
    pub fn new(started: Instant) -> Self {
        Heartbeats {
            started,
            last: started,
            last_packets: 0,
            last_bytes: 0,
        }
    }

    /// The heartbeat for now (also logged as one `heartbeat` line).
    pub fn next(&mut self, s: &LiveStats, spool_depth: u64) -> Heartbeat {
        let secs = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();
        let packets = s.packets();
        let bytes = s.bytes();
        let hb = Heartbeat {
            schema: shaobing_wire::SCHEMA_VERSION,
            ts: Timestamp::now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            packets,
            bytes,
            kernel_drops: s.kernel_drops(),
            pps: (packets.saturating_sub(self.last_packets) as f64 / secs) as u64,
            bps: (bytes.saturating_sub(self.last_bytes) as f64 * 8.0 / secs) as u64,
            spool_depth,
            signature_hits: s.signature_hits(),
            leak_counters: s.leak_counters(),
            decode_counters: s.decode_counters(),
        };
        self.last_packets = packets;
        self.last_bytes = bytes;
        let leak = |name: &str| hb.leak_counters.get(name).copied().unwrap_or(0);
        let skipped = |name: &str| hb.decode_counters.get(name).copied().unwrap_or(0);
        tracing::info!(
            packets = hb.packets,
            kernel_drops = hb.kernel_drops,
            pps = hb.pps,
            volumetric_records_dropped = s.volumetric_records_dropped.load(Ordering::Relaxed),
            incidents = s.incidents.load(Ordering::Relaxed),
            not_ip = skipped("not_ip"),
            undecodable = skipped("truncated") + skipped("malformed") + skipped("too_many_layers"),
            leak_flows = leak("flows"),
            leak_bytes_scanned = leak("bytes_scanned"),
            leak_flows_evicted = leak("flows_evicted"),
            reassembly_cap_hits =
                leak("reassembly_per_stream_cap_hits") + leak("reassembly_global_cap_hits"),
            reassembly_gaps = leak("reassembly_gaps"),
            decompress_capped = leak("decompress_capped"),
            "heartbeat"
        );
        hb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_parts(1_767_225_600 + s, 0)
    }

    #[test]
    fn a_sharp_rise_in_drops_is_one_incident_per_episode() {
        let mut m = LossMonitor::new("s".into());
        assert!(
            m.observe(at(0), 0, 0).is_none(),
            "the first reading is a baseline"
        );
        assert!(m.observe(at(1), 100_000, 0).is_none());
        let inc = m
            .observe(at(2), 150_000, 5_000)
            .expect("5,000 drops in a second");
        inc.validate().unwrap();
        assert_eq!(inc.kind, Kind::SensorHealth);
        assert_eq!(inc.packets, Some(5_000));
        assert_eq!(inc.extra["captured"], 50_000);
        // The overload goes on: same episode.
        assert!(m.observe(at(3), 200_000, 9_000).is_none());
        // Ten quiet seconds end it; the next loss is a new episode.
        for s in 4..=13 {
            assert!(m.observe(at(s), 200_000 + s as u64, 9_000).is_none());
        }
        assert!(m.observe(at(14), 300_000, 20_000).is_some());
        assert_eq!(m.episodes(), 2);
    }

    #[test]
    fn a_trickle_of_drops_is_not_a_sharp_rise() {
        let mut m = LossMonitor::new("s".into());
        m.observe(at(0), 0, 0);
        // 99 drops: under the count.
        assert!(m.observe(at(1), 1_000, 99).is_none());
        // 500 drops among 10 million packets: under the ratio.
        assert!(m.observe(at(2), 10_001_000, 599).is_none());
    }
}
