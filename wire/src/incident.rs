//! The incident record.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// The wire format version this crate writes and accepts.
pub const SCHEMA_VERSION: u16 = 1;

/// Largest incident, as JSON text (the collector's `raw` column): 64 KiB.
/// The collector rejects bigger items (400); [`Incident::validate`] cannot
/// check it because it does not serialize.
pub const MAX_INCIDENT_BYTES: usize = 64 * 1024;

/// Byte limits of the string fields, checked by [`Incident::validate`]
/// (`docs/incident.md`, "Limits"). Required fields must also be non-empty.
pub mod limits {
    /// `sensor` (the collector overwrites it with the token's name).
    pub const SENSOR: usize = 128;
    /// `signature`.
    pub const SIGNATURE: usize = 128;
    /// `proto`.
    pub const PROTO: usize = 16;
    /// `community_id` (a v1 id is 30 bytes).
    pub const COMMUNITY_ID: usize = 64;
    /// `vector`.
    pub const VECTOR: usize = 64;
    /// `app_proto`.
    pub const APP_PROTO: usize = 32;
    /// `excerpt` (a masked match; the sensor's are far shorter).
    pub const EXCERPT: usize = 1024;
    /// Entries of `top_sources` (the sensor sends at most 10).
    pub const TOP_SOURCES: usize = 100;
    /// Unknown (extra) fields in one incident.
    pub const EXTRA_FIELDS: usize = 64;
    /// Name of an unknown field.
    pub const EXTRA_FIELD_NAME: usize = 64;
}

/// What family of detector produced an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A flood or reflection/amplification attack (per host and vector).
    Volumetric,
    /// Sensitive data seen leaving (or entering) the protected networks.
    Leak,
    /// The sensor itself: it was blind to part of the traffic.
    SensorHealth,
}

/// Where in its life an incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A volumetric attack crossed its threshold.
    AttackStarted,
    /// Periodic progress of an ongoing attack.
    AttackUpdate,
    /// The attack stayed under its threshold for the hold time (or the
    /// capture ended).
    AttackEnded,
    /// A leak signature fired on a flow.
    Leak,
    /// The kernel or the interface dropped packets before the sensor saw
    /// them (`sensor_health`).
    CaptureLoss,
}

/// How urgent an incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Needs attention today.
    Medium,
    /// Needs attention now.
    High,
    /// Wake someone up.
    Critical,
}

/// Traffic direction relative to the protected networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From elsewhere into a protected network.
    Inbound,
    /// From a protected network to elsewhere.
    Outbound,
    /// Both ends are protected.
    Internal,
    /// Neither end is protected.
    External,
}

/// One heavy-hitter source of an attack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopSource {
    /// The source address.
    pub ip: IpAddr,
    /// Packets guaranteed to have come from it (a lower bound from the
    /// heavy-hitter sketch).
    pub packets: u64,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name used on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            /// Parses the wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
names!(Kind {
    Volumetric => "volumetric",
    Leak => "leak",
    SensorHealth => "sensor_health",
});
names!(Event {
    AttackStarted => "attack_started",
    AttackUpdate => "attack_update",
    AttackEnded => "attack_ended",
    Leak => "leak",
    CaptureLoss => "capture_loss",
});
names!(Severity { Low => "low", Medium => "medium", High => "high", Critical => "critical" });
names!(Direction {
    Inbound => "inbound",
    Outbound => "outbound",
    Internal => "internal",
    External => "external",
});

/// One incident, wire format v1 (`docs/incident.md`).
///
/// Fields common to every kind come first; fields that belong to one kind
/// are `Option`s, required for that kind by [`Incident::validate`] and left
/// out of the JSON when absent. Unknown fields are kept in `extra` so that a
/// newer sensor's additions survive an older collector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique id (UUIDv7, see [`crate::incident_id`]).
    pub id: Uuid,
    /// Wire format version; always [`SCHEMA_VERSION`] today.
    pub schema: u16,
    /// Name of the sensor that saw it.
    pub sensor: String,
    /// Detector family.
    pub kind: Kind,
    /// Lifecycle event.
    pub event: Event,
    /// Stable id of the signature or detector rule that fired.
    pub signature: String,
    /// Urgency.
    pub severity: Severity,
    /// Capture time of the packet that triggered the event.
    pub ts: Timestamp,
    /// Source address (for volumetric attacks: the top source, if any).
    pub src_ip: Option<IpAddr>,
    /// Destination address (for volumetric attacks: the target host).
    pub dst_ip: Option<IpAddr>,
    /// Source port (TCP/UDP), or ICMP type.
    pub src_port: Option<u16>,
    /// Destination port (TCP/UDP), or ICMP code.
    pub dst_port: Option<u16>,
    /// IP protocol name: `tcp`, `udp`, `icmp`, `icmpv6`, or the number.
    pub proto: String,
    /// Community ID v1 of the flow, when there is one flow.
    pub community_id: Option<String>,
    /// Direction relative to the protected networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,

    /// Volumetric: the attack this event belongs to (shared by start,
    /// updates and end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_id: Option<Uuid>,
    /// Volumetric: attack vector, e.g. `syn_flood`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    /// Volumetric: current packets per second (1 s window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pps: Option<u64>,
    /// Volumetric: current bits per second (1 s window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps: Option<u64>,
    /// Volumetric: highest pps seen so far in this attack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_pps: Option<u64>,
    /// Volumetric: highest bps seen so far in this attack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bps: Option<u64>,
    /// Volumetric: packets of this vector since the attack started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Volumetric: bytes (wire length) since the attack started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Volumetric: heaviest sources, most packets first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_sources: Option<Vec<TopSource>>,

    /// Leak: how many matches of the signature the flow had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_count: Option<u64>,
    /// Leak: application protocol of the flow (`http`, `smtp`, `tcp`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_proto: Option<String>,
    /// Leak: masked excerpt of the first match; never the secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,

    /// Fields this version does not know, kept for forward compatibility.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Name of the optional top-level field a network-level volumetric attack
/// names its target prefix in (`"10.1.2.0/24"`, `"2001:db8:1:2::/64"`).
/// It travels as a top-level JSON field like any other; older readers keep
/// it in [`Incident::extra`], and this build reads it from there too, so
/// every reader sees the same thing. [`Incident::validate`] checks it.
pub const DST_NET: &str = "dst_net";

/// What [`Incident::validate`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `schema` is not a version this build understands.
    #[error("unsupported schema version {0} (this build accepts {SCHEMA_VERSION})")]
    UnsupportedSchema(u16),
    /// A field required for this kind is missing.
    #[error("{kind} incident is missing required field `{field}`")]
    MissingField {
        /// The incident's kind.
        kind: Kind,
        /// The missing field.
        field: &'static str,
    },
    /// `event` does not belong to `kind`.
    #[error("event `{event}` is not valid for kind `{kind}`")]
    EventKindMismatch {
        /// The incident's kind.
        kind: Kind,
        /// The incident's event.
        event: Event,
    },
    /// A required string field is empty or too long.
    #[error("field `{field}` must be 1..={max} bytes")]
    BadLength {
        /// The field.
        field: &'static str,
        /// Its maximum length.
        max: usize,
    },
    /// An optional string field (or list) is longer than its limit.
    #[error("field `{field}` is longer than {max} {unit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
        /// `bytes` or `entries`.
        unit: &'static str,
    },
    /// `dst_net` is not a string `address/length` with its host bits zero.
    #[error("field `dst_net` must be a network prefix such as 10.1.2.0/24")]
    BadDstNet,
    /// Too many unknown fields, or one with an over-long name.
    #[error("more than {max} unknown fields, or an unknown field name longer than {name_max} bytes", max = limits::EXTRA_FIELDS, name_max = limits::EXTRA_FIELD_NAME)]
    TooManyExtraFields,
}

/// A network prefix written `address/length` (`198.51.100.0/24`,
/// `2001:db8:1::/48`): the address and length, when the length fits the
/// family and no host bit is set; `None` otherwise.
pub fn parse_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let (bits, max) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if len > max {
        return None;
    }
    let host_bits = if len == 0 {
        u128::MAX
    } else {
        !(u128::MAX << (128 - u32::from(len)))
    };
    let host_bits = match addr {
        IpAddr::V4(_) => host_bits & (u128::from(u32::MAX) << 96),
        IpAddr::V6(_) => host_bits,
    };
    (bits & host_bits == 0).then_some((addr, len))
}

impl Incident {
    /// The prefix a network-level attack targets ([`DST_NET`]): its
    /// network address and length, when present and well formed.
    pub fn dst_net(&self) -> Option<(IpAddr, u8)> {
        parse_prefix(self.extra.get(DST_NET)?.as_str()?)
    }

    /// Checks what serde cannot: schema version, event/kind agreement,
    /// `dst_net`, and the fields each kind requires.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.schema != SCHEMA_VERSION {
            return Err(ValidationError::UnsupportedSchema(self.schema));
        }
        for (field, value, max) in [
            ("sensor", &self.sensor, limits::SENSOR),
            ("signature", &self.signature, limits::SIGNATURE),
            ("proto", &self.proto, limits::PROTO),
        ] {
            if value.is_empty() || value.len() > max {
                return Err(ValidationError::BadLength { field, max });
            }
        }
        for (field, value, max) in [
            ("community_id", &self.community_id, limits::COMMUNITY_ID),
            ("vector", &self.vector, limits::VECTOR),
            ("app_proto", &self.app_proto, limits::APP_PROTO),
            ("excerpt", &self.excerpt, limits::EXCERPT),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > max) {
                return Err(ValidationError::TooLong {
                    field,
                    max,
                    unit: "bytes",
                });
            }
        }
        if self
            .top_sources
            .as_ref()
            .is_some_and(|t| t.len() > limits::TOP_SOURCES)
        {
            return Err(ValidationError::TooLong {
                field: "top_sources",
                max: limits::TOP_SOURCES,
                unit: "entries",
            });
        }
        if self.extra.len() > limits::EXTRA_FIELDS
            || self
                .extra
                .keys()
                .any(|k| k.len() > limits::EXTRA_FIELD_NAME)
        {
            return Err(ValidationError::TooManyExtraFields);
        }
        if self.extra.contains_key(DST_NET) && self.dst_net().is_none() {
            return Err(ValidationError::BadDstNet);
        }
        let missing = |field| ValidationError::MissingField {
            kind: self.kind,
            field,
        };
        match self.kind {
            Kind::Volumetric => {
                if matches!(self.event, Event::Leak | Event::CaptureLoss) {
                    return Err(ValidationError::EventKindMismatch {
                        kind: self.kind,
                        event: self.event,
                    });
                }
                let required: [(&'static str, bool); 9] = [
                    ("attack_id", self.attack_id.is_some()),
                    ("vector", self.vector.is_some()),
                    ("pps", self.pps.is_some()),
                    ("bps", self.bps.is_some()),
                    ("peak_pps", self.peak_pps.is_some()),
                    ("peak_bps", self.peak_bps.is_some()),
                    ("packets", self.packets.is_some()),
                    ("bytes", self.bytes.is_some()),
                    ("top_sources", self.top_sources.is_some()),
                ];
                if let Some((field, _)) = required.iter().find(|(_, present)| !present) {
                    return Err(missing(field));
                }
            }
            Kind::SensorHealth => {
                if self.event != Event::CaptureLoss {
                    return Err(ValidationError::EventKindMismatch {
                        kind: self.kind,
                        event: self.event,
                    });
                }
                if self.packets.is_none() {
                    return Err(missing("packets"));
                }
            }
            Kind::Leak => {
                if self.event != Event::Leak {
                    return Err(ValidationError::EventKindMismatch {
                        kind: self.kind,
                        event: self.event,
                    });
                }
                let required: [(&'static str, bool); 4] = [
                    ("match_count", self.match_count.is_some()),
                    ("direction", self.direction.is_some()),
                    ("app_proto", self.app_proto.is_some()),
                    ("excerpt", self.excerpt.is_some()),
                ];
                if let Some((field, _)) = required.iter().find(|(_, present)| !present) {
                    return Err(missing(field));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak_json() -> serde_json::Value {
        serde_json::json!({
            "id": "019c0c4e-5a00-7000-8000-000000000001",
            "schema": 1,
            "sensor": "s1",
            "kind": "leak",
            "event": "leak",
            "signature": "classification-marking",
            "severity": "critical",
            "ts": "2026-11-29T04:19:24.123456Z",
            "src_ip": "10.1.2.3",
            "dst_ip": "203.0.113.80",
            "src_port": 40000,
            "dst_port": 80,
            "proto": "tcp",
            "community_id": "1:abc=",
            "direction": "outbound",
            "match_count": 2,
            "app_proto": "http",
            "excerpt": "绝*★"
        })
    }

    #[test]
    fn leak_round_trips_and_validates() {
        let inc: Incident = serde_json::from_value(leak_json()).unwrap();
        inc.validate().unwrap();
        let back = serde_json::to_value(&inc).unwrap();
        assert_eq!(back, leak_json());
    }

    #[test]
    fn dst_net_is_read_and_checked() {
        for (text, want) in [
            ("10.1.2.0/24", Some(("10.1.2.0", 24))),
            ("fd00:1:2:3::/64", Some(("fd00:1:2:3::", 64))),
            ("0.0.0.0/0", Some(("0.0.0.0", 0))),
            ("10.1.2.3/32", Some(("10.1.2.3", 32))),
            ("10.1.2.1/24", None), // host bits set
            ("10.1.2.0/33", None),
            ("10.1.2.0", None),
            ("10.1.2.0/+8", None),
            ("fd00::1/64", None),
            ("not/24", None),
        ] {
            let mut v = leak_json();
            v[DST_NET] = serde_json::json!(text);
            let inc: Incident = serde_json::from_value(v).unwrap();
            let want = want.map(|(a, l)| (a.parse::<IpAddr>().unwrap(), l));
            assert_eq!(inc.dst_net(), want, "{text}");
            assert_eq!(
                inc.validate().is_ok(),
                want.is_some(),
                "{text}: {:?}",
                inc.validate()
            );
            // It travels as a top-level field.
            assert_eq!(serde_json::to_value(&inc).unwrap()[DST_NET], text);
        }
        let mut v = leak_json();
        v[DST_NET] = serde_json::json!(24);
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(inc.validate(), Err(ValidationError::BadDstNet));
        let plain: Incident = serde_json::from_value(leak_json()).unwrap();
        assert_eq!(plain.dst_net(), None);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let mut v = leak_json();
        v["future_field"] = serde_json::json!({"a": 1});
        let inc: Incident = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            inc.extra.get("future_field"),
            Some(&serde_json::json!({"a": 1}))
        );
        assert_eq!(serde_json::to_value(&inc).unwrap(), v);
    }

    #[test]
    fn leak_without_excerpt_is_invalid() {
        let mut v = leak_json();
        v.as_object_mut().unwrap().remove("excerpt");
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(
            inc.validate(),
            Err(ValidationError::MissingField {
                kind: Kind::Leak,
                field: "excerpt"
            })
        );
    }

    #[test]
    fn unknown_schema_is_invalid() {
        let mut v = leak_json();
        v["schema"] = serde_json::json!(2);
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(inc.validate(), Err(ValidationError::UnsupportedSchema(2)));
    }

    #[test]
    fn over_long_optional_fields_are_invalid() {
        for (field, max) in [
            ("community_id", limits::COMMUNITY_ID),
            ("app_proto", limits::APP_PROTO),
            ("excerpt", limits::EXCERPT),
        ] {
            let mut v = leak_json();
            v[field] = serde_json::json!("x".repeat(max));
            let inc: Incident = serde_json::from_value(v.clone()).unwrap();
            inc.validate().unwrap();
            v[field] = serde_json::json!("x".repeat(max + 1));
            let inc: Incident = serde_json::from_value(v).unwrap();
            assert!(
                matches!(inc.validate(), Err(ValidationError::TooLong { field: f, .. }) if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn too_many_or_over_long_unknown_fields_are_invalid() {
        let mut v = leak_json();
        for i in 0..=limits::EXTRA_FIELDS {
            v[format!("f{i}")] = serde_json::json!(1);
        }
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(inc.validate(), Err(ValidationError::TooManyExtraFields));
        let mut v = leak_json();
        v["y".repeat(limits::EXTRA_FIELD_NAME + 1)] = serde_json::json!(1);
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(inc.validate(), Err(ValidationError::TooManyExtraFields));
    }

    #[test]
    fn bad_enum_value_is_a_serde_error() {
        let mut v = leak_json();
        v["severity"] = serde_json::json!("apocalyptic");
        assert!(serde_json::from_value::<Incident>(v).is_err());
    }
}
