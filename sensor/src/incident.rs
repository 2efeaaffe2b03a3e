//! The one constructor of the sensor's incidents. Every detector (leak,
//! volumetric, capture health) starts from [`new`] and fills in what it
//! knows with struct-update syntax, so the identity rule (a deterministic
//! id from capture time and an identity string) and the defaults of the
//! optional fields live in one place.

use shaobing_wire::{incident_id, Event, Incident, Kind, Severity, Timestamp};

/// What every incident has.
#[derive(Clone, Copy, Debug)]
pub struct Base<'a> {
    /// The sensor's name.
    pub sensor: &'a str,
    /// Incident kind.
    pub kind: Kind,
    /// Lifecycle event.
    pub event: Event,
    /// Severity.
    pub severity: Severity,
    /// Capture time the incident is about.
    pub ts: Timestamp,
    /// A string that names this incident uniquely (sensor, detector,
    /// endpoints, start time...): the id is derived from it and `ts`, so
    /// the same capture gives the same ids on every replay and a
    /// re-delivery is stored once.
    pub identity: &'a str,
}

/// An incident with `base` and `signature` set, protocol `any` and every
/// optional field empty.
pub fn new(base: Base<'_>, signature: String) -> Incident {
    Incident {
        id: incident_id(base.ts, base.identity.as_bytes()),
        schema: shaobing_wire::SCHEMA_VERSION,
        sensor: base.sensor.to_string(),
        kind: base.kind,
        event: base.event,
        signature,
        severity: base.severity,
        ts: base.ts,
        src_ip: None,
        dst_ip: None,
        src_port: None,
        dst_port: None,
        proto: "any".into(),
        community_id: None,
        direction: None,
        attack_id: None,
        vector: None,
        pps: None,
        bps: None,
        peak_pps: None,
        peak_bps: None,
        packets: None,
        bytes: None,
        top_sources: None,
        match_count: None,
        app_proto: None,
        excerpt: None,
        extra: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_identity_and_time_give_the_same_id_and_others_differ() {
        let base = Base {
            sensor: "s1",
            kind: Kind::Leak,
            event: Event::Leak,
            severity: Severity::High,
            ts: Timestamp(1_700_000_000_000_000),
            identity: "s1|leak|x",
        };
        let a = new(base, "x".into());
        let b = new(base, "x".into());
        assert_eq!(a.id, b.id);
        assert_eq!(a.proto, "any");
        let c = new(
            Base {
                identity: "s1|leak|y",
                ..base
            },
            "x".into(),
        );
        assert_ne!(a.id, c.id);
    }
}
