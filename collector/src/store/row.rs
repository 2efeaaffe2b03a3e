//! [`IncidentRow`]: one row of `incidents`, in RowBinary column order.
//!
//! Validation is off (18.16), so a field whose Rust type does not match its
//! column would go unnoticed: `tests/store.rs` round-trips a row through a
//! real server.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use shaobing_wire::{Incident, Timestamp};
use uuid::Uuid;

/// One stored incident. Field order and types follow
/// [`super::schema::INCIDENTS_V1`] exactly, then the columns later
/// migrations added ([`super::schema::INCIDENTS_DST_NET_V7`]).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct IncidentRow {
    /// `UUID`.
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    /// `UInt16`.
    pub schema: u16,
    /// Sensor name (from the token).
    pub sensor: String,
    /// `volumetric` or `leak`.
    pub kind: String,
    /// Wire event name.
    pub event: String,
    /// Signature / rule id.
    pub signature: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `DateTime('UTC')`: whole seconds of the capture time.
    pub ts: u32,
    /// Microseconds within `ts`.
    pub ts_us: u32,
    /// Source address or `''`.
    pub src_ip: String,
    /// Destination address or `''`.
    pub dst_ip: String,
    /// `Nullable(UInt16)`.
    pub src_port: Option<u16>,
    /// `Nullable(UInt16)`.
    pub dst_port: Option<u16>,
    /// IP protocol name.
    pub proto: String,
    /// Community ID or `''`.
    pub community_id: String,
    /// Direction or `''`.
    pub direction: String,
    /// Volumetric attack id (UUID text) or `''`.
    pub attack_id: String,
    /// Volumetric vector or `''`.
    pub vector: String,
    /// Volumetric pps or 0.
    pub pps: u64,
    /// Volumetric bps or 0.
    pub bps: u64,
    /// Volumetric peak pps or 0.
    pub peak_pps: u64,
    /// Volumetric peak bps or 0.
    pub peak_bps: u64,
    /// Volumetric packets or 0.
    pub packets: u64,
    /// Volumetric bytes or 0.
    pub bytes: u64,
    /// Volumetric top sources as JSON (`[{"ip":..,"packets":..}]`) or `''`.
    pub top_sources: String,
    /// Leak match count or 0.
    pub match_count: u64,
    /// Leak application protocol or `''`.
    pub app_proto: String,
    /// Leak masked excerpt or `''`.
    pub excerpt: String,
    /// The incident JSON as received (sensor overridden).
    pub raw: String,
    /// `DateTime('UTC')`: when the collector accepted it.
    pub received_at: u32,
    /// Attacked prefix of a network-level volumetric incident
    /// (`10.1.2.0/24`) or `''` (migration 7).
    pub dst_net: String,
}

/// Latest storable second: 2106-02-06T23:59:59Z. `DateTime` itself reaches
/// 2106-02-07T06:28:15Z, but on ClickHouse 18.16 the date functions wrap
/// after the last whole day (`toYYYYMMDD` of 2106-02-07T00:00:00Z is
/// 19700101), so such an incident would land in the 1970 partition and
/// retention would delete it.
pub const MAX_STORABLE_SECS: u32 = 4_294_943_999;

/// The capture time as stored (`DateTime` seconds), if the store can hold
/// it: 1970-01-01T00:00:00Z ..= 2106-02-06T23:59:59.999999Z.
pub fn storable_secs(ts: Timestamp) -> Option<u32> {
    u32::try_from(ts.secs())
        .ok()
        .filter(|s| *s <= MAX_STORABLE_SECS)
}

/// An incident whose time cannot be stored (see [`storable_secs`]).
#[derive(Debug, thiserror::Error)]
#[error("ts {0} is outside the storable range 1970-01-01T00:00:00Z..=2106-02-06T23:59:59.999999Z")]
pub struct TsOutOfRange(pub Timestamp);

impl IncidentRow {
    /// Builds the row for a validated incident; `raw` is its JSON text.
    pub fn from_incident(
        inc: &Incident,
        raw: String,
        received_at: u32,
    ) -> Result<Self, TsOutOfRange> {
        let ts = storable_secs(inc.ts).ok_or(TsOutOfRange(inc.ts))?;
        let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        Ok(IncidentRow {
            id: inc.id,
            schema: inc.schema,
            sensor: inc.sensor.clone(),
            kind: inc.kind.as_str().to_string(),
            event: inc.event.as_str().to_string(),
            signature: inc.signature.clone(),
            severity: inc.severity.as_str().to_string(),
            ts,
            ts_us: inc.ts.subsec_micros(),
            src_ip: ip(inc.src_ip),
            dst_ip: ip(inc.dst_ip),
            src_port: inc.src_port,
            dst_port: inc.dst_port,
            proto: inc.proto.clone(),
            community_id: inc.community_id.clone().unwrap_or_default(),
            direction: inc
                .direction
                .map(|d| d.as_str().to_string())
                .unwrap_or_default(),
            attack_id: inc.attack_id.map(|a| a.to_string()).unwrap_or_default(),
            vector: inc.vector.clone().unwrap_or_default(),
            pps: inc.pps.unwrap_or(0),
            bps: inc.bps.unwrap_or(0),
            peak_pps: inc.peak_pps.unwrap_or(0),
            peak_bps: inc.peak_bps.unwrap_or(0),
            packets: inc.packets.unwrap_or(0),
            bytes: inc.bytes.unwrap_or(0),
            top_sources: match &inc.top_sources {
                Some(t) => serde_json::to_string(t).unwrap_or_default(),
                None => String::new(),
            },
            match_count: inc.match_count.unwrap_or(0),
            app_proto: inc.app_proto.clone().unwrap_or_default(),
            excerpt: inc.excerpt.clone().unwrap_or_default(),
            raw,
            received_at,
            dst_net: inc
                .dst_net()
                .map(|(addr, len)| format!("{addr}/{len}"))
                .unwrap_or_default(),
        })
    }

    /// The capture time with microseconds.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_parts(i64::from(self.ts), self.ts_us)
    }
}

/// A stored incident's `raw` JSON that no longer converts to a row.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// Not a wire incident.
    #[error("invalid incident: {0}")]
    Json(#[from] serde_json::Error),
    /// Fails `Incident::validate`.
    #[error("invalid incident: {0}")]
    Invalid(#[from] shaobing_wire::ValidationError),
    /// Time out of range.
    #[error(transparent)]
    Ts(#[from] TsOutOfRange),
}

impl IncidentRow {
    /// Rebuilds the row from its `raw` JSON (as kept in the write-ahead log).
    pub fn from_raw(raw: &str, received_at: u32) -> Result<Self, RawError> {
        let inc: Incident = serde_json::from_str(raw)?;
        inc.validate()?;
        Ok(IncidentRow::from_incident(
            &inc,
            raw.to_string(),
            received_at,
        )?)
    }
}

/// One row of `sensor_heartbeats`, in column order of
/// [`super::schema::HEARTBEATS_V2`].
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct HeartbeatRow {
    /// Sensor name (from the token).
    pub sensor: String,
    /// `DateTime('UTC')`: the sensor's clock when it sent the heartbeat.
    pub ts: u32,
    /// Microseconds within `ts`.
    pub ts_us: u32,
    /// `DateTime('UTC')`: when the collector received it.
    pub received_at: u32,
    /// Sensor software version.
    pub version: String,
    /// Seconds since the sensor started.
    pub uptime_s: u64,
    /// Packets captured since start.
    pub packets: u64,
    /// Bytes captured since start.
    pub bytes: u64,
    /// Packets the kernel dropped since start.
    pub kernel_drops: u64,
    /// Current packets per second.
    pub pps: u64,
    /// Current bits per second.
    pub bps: u64,
    /// Incidents waiting in the sensor's spool.
    pub spool_depth: u64,
    /// Signature ids, parallel to `signature_hits`.
    pub signature_names: Vec<String>,
    /// Hits per signature since start.
    pub signature_hits: Vec<u64>,
    /// The heartbeat JSON as received (sensor overridden).
    pub raw: String,
}
