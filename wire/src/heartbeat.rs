//! Sensor heartbeats (`POST /api/v1/heartbeat`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A sensor's periodic health report. Counters are totals since the sensor
/// started; rates are over the last heartbeat interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Wire format version ([`crate::SCHEMA_VERSION`]).
    pub schema: u16,
    /// Wall-clock time the heartbeat was made.
    pub ts: Timestamp,
    /// Sensor version.
    pub version: String,
    /// Seconds since the sensor started.
    pub uptime_s: u64,
    /// Packets captured.
    pub packets: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// Packets the kernel or interface dropped (libpcap's `ps_drop` +
    /// `ps_ifdrop`): the sensor was blind to these.
    pub kernel_drops: u64,
    /// Packets per second over the last interval.
    pub pps: u64,
    /// Bits per second over the last interval.
    pub bps: u64,
    /// Bytes waiting in the delivery spool.
    pub spool_depth: u64,
    /// Leak incidents per signature id, since the sensor started (across
    /// signature reloads).
    #[serde(default)]
    pub signature_hits: BTreeMap<String, u64>,
    /// The leak detector's own counters, summed over capture workers and
    /// signature reloads: bytes scanned, flows, and every cap or limit hit
    /// (reassembly caps and gaps, defragmentation drops, decompression
    /// caps...). Totals since the sensor started, except `flows` (open
    /// now). Names in `docs/sensor.md`.
    #[serde(default)]
    pub leak_counters: BTreeMap<String, u64>,
    /// The packet path's counters, summed over capture workers: packets,
    /// bytes, and packets not decoded by reason (`not_ip`, `truncated`,
    /// `malformed`, `too_many_layers`, tunnel errors...). Totals since the
    /// sensor started. Names in `docs/sensor.md`.
    #[serde(default)]
    pub decode_counters: BTreeMap<String, u64>,
}
