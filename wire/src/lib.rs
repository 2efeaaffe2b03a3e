//! Incident wire format v1, shared by the Shaobing sensor and collector.
//!
//! An [`Incident`] is one JSON object. The sensor writes it (to stdout as
//! JSON lines, or in batches to the collector) and the collector stores it.
//! The format is documented for humans in `docs/incident.md`; this crate is
//! the single definition both sides compile against, so they cannot drift.
//!
//! * [`Incident`]: the record, with [`Incident::validate`] for what serde
//!   cannot check (kind-specific required fields, schema version).
//! * [`Timestamp`]: capture time in microseconds, RFC 3339 on the wire.
//! * [`community_id`]: Community ID v1 flow hashes, as Zeek and Suricata
//!   compute them.
//! * [`incident_id`]: deterministic UUIDv7 ids, so a replayed capture gives
//!   the same ids and a duplicate delivery stays one incident.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod community_id;
mod heartbeat;
mod id;
mod incident;
mod ts;

pub use heartbeat::Heartbeat;
pub use id::incident_id;
pub use incident::{
    limits, parse_prefix, Direction, Event, Incident, Kind, Severity, TopSource, ValidationError,
    DST_NET, MAX_INCIDENT_BYTES, SCHEMA_VERSION,
};
pub use ts::{Timestamp, TimestampError};
