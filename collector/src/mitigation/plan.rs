//! Which routes an attack calls for, under the safety limits: only
//! volumetric `attack_started` incidents (never `sensor_health`), of an
//! allowed group and vector, on a target (the host, or the network of a
//! network attack) inside protected space and no shorter than the minimum
//! prefix length.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use shaobing_wire::{Event, Incident, Kind};

use super::config::{FlowAction, MitigationConfig};
use crate::alerts::matcher::{contains, incident_dst_net};

/// A prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// Network address (host bits clear).
    pub addr: IpAddr,
    /// Length.
    pub len: u8,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A black-hole route: `prefix` via `next_hop` with `communities`.
    Rtbh {
        /// The target.
        prefix: Prefix,
        /// The null-routed next hop.
        next_hop: IpAddr,
        /// `ASN:value` communities.
        communities: Vec<String>,
    },
    /// A FlowSpec rule (RFC 8955 / 8956).
    Flowspec {
        /// Destination prefix.
        prefix: Prefix,
        /// IP protocol name (`udp`, `tcp`, `icmp`), none for any.
        protocol: Option<String>,
        /// Source port (reflection vectors).
        source_port: Option<u16>,
        /// Packet length range (IP total length), inclusive.
        packet_length: Option<(u32, u32)>,
        /// What to do with matching traffic.
        action: FlowAction,
        /// Bytes/s for `rate-limit`.
        rate_limit_bytes: u64,
    },
}

/// How a route is announced: `rtbh` or `flowspec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Black hole.
    Rtbh,
    /// FlowSpec.
    Flowspec,
}

impl Method {
    /// The name in the audit table and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Rtbh => "rtbh",
            Method::Flowspec => "flowspec",
        }
    }
}

impl Route {
    /// The destination prefix.
    pub fn prefix(&self) -> Prefix {
        match self {
            Route::Rtbh { prefix, .. } | Route::Flowspec { prefix, .. } => *prefix,
        }
    }

    /// RTBH or FlowSpec.
    pub fn method(&self) -> Method {
        match self {
            Route::Rtbh { .. } => Method::Rtbh,
            Route::Flowspec { .. } => Method::Flowspec,
        }
    }

    /// The gobgp address family (`-a`).
    pub fn family(&self) -> &'static str {
        let v4 = self.prefix().addr.is_ipv4();
        match (self.method(), v4) {
            (Method::Rtbh, true) => "ipv4",
            (Method::Rtbh, false) => "ipv6",
            (Method::Flowspec, true) => "ipv4-flowspec",
            (Method::Flowspec, false) => "ipv6-flowspec",
        }
    }

    /// What identifies the route in the RIB (the NLRI): the prefix for
    /// RTBH, the match for FlowSpec. Two attacks that need the same key
    /// share one announcement.
    pub fn key(&self) -> String {
        format!("{} {}", self.method().as_str(), self.nlri_args().join(" "))
    }

    /// The NLRI arguments of `gobgp global rib -a FAMILY add|del ...`.
    pub fn nlri_args(&self) -> Vec<String> {
        match self {
            Route::Rtbh { prefix, .. } => vec![prefix.to_string()],
            Route::Flowspec {
                prefix,
                protocol,
                source_port,
                packet_length,
                ..
            } => {
                let mut a = vec!["match".into(), "destination".into(), prefix.to_string()];
                if let Some(p) = protocol {
                    a.push("protocol".into());
                    a.push(p.clone());
                }
                if let Some(p) = source_port {
                    a.push("source-port".into());
                    a.push(format!("=={p}"));
                }
                if let Some((lo, hi)) = packet_length {
                    a.push("packet-length".into());
                    a.push(format!(">={lo}&<={hi}"));
                }
                a
            }
        }
    }

    /// The attribute arguments after the NLRI when adding.
    pub fn attribute_args(&self) -> Vec<String> {
        match self {
            Route::Rtbh {
                next_hop,
                communities,
                ..
            } => vec![
                "nexthop".into(),
                next_hop.to_string(),
                "community".into(),
                communities.join(","),
            ],
            Route::Flowspec {
                action,
                rate_limit_bytes,
                ..
            } => match action {
                FlowAction::Discard => vec!["then".into(), "discard".into()],
                FlowAction::RateLimit => vec![
                    "then".into(),
                    "rate-limit".into(),
                    rate_limit_bytes.to_string(),
                ],
            },
        }
    }

    /// The whole route as text (the audit's `route` column).
    pub fn describe(&self) -> String {
        let mut a = self.nlri_args();
        a.extend(self.attribute_args());
        format!("{} {}", self.family(), a.join(" "))
    }
}

impl Route {
    /// Parses [`Route::describe`]'s text back (the audit's `route`
    /// column), to take over announcements made before a restart.
    pub fn parse_described(text: &str) -> Option<Route> {
        let t: Vec<&str> = text.split_whitespace().collect();
        let (&family, rest) = t.split_first()?;
        let prefix = |s: &str| {
            crate::alerts::config::parse_prefix(s)
                .ok()
                .map(|(addr, len)| Prefix { addr, len })
        };
        match (family, rest) {
            ("ipv4" | "ipv6", [p, "nexthop", nh, "community", c]) => Some(Route::Rtbh {
                prefix: prefix(p)?,
                next_hop: nh.parse().ok()?,
                communities: c.split(',').map(str::to_string).collect(),
            }),
            ("ipv4-flowspec" | "ipv6-flowspec", ["match", "destination", p, more @ ..]) => {
                let mut protocol = None;
                let mut source_port = None;
                let mut packet_length = None;
                let mut i = 0;
                let (action, rate_limit_bytes) = loop {
                    match (more.get(i).copied(), more.get(i + 1).copied()) {
                        (Some("protocol"), Some(v)) => protocol = Some(v.to_string()),
                        (Some("source-port"), Some(v)) => {
                            source_port = Some(v.strip_prefix("==")?.parse().ok()?)
                        }
                        (Some("packet-length"), Some(v)) => {
                            let (lo, hi) = v.split_once('&')?;
                            packet_length = Some((
                                lo.strip_prefix(">=")?.parse().ok()?,
                                hi.strip_prefix("<=")?.parse().ok()?,
                            ));
                        }
                        (Some("then"), Some("discard")) if i + 2 == more.len() => {
                            break (FlowAction::Discard, 0)
                        }
                        (Some("then"), Some("rate-limit")) if i + 3 == more.len() => {
                            break (FlowAction::RateLimit, more.get(i + 2)?.parse().ok()?)
                        }
                        _ => return None,
                    }
                    i += 2;
                };
                Some(Route::Flowspec {
                    prefix: prefix(p)?,
                    protocol,
                    source_port,
                    packet_length,
                    action,
                    rate_limit_bytes,
                })
            }
            _ => None,
        }
    }
}

/// The UDP source port of a reflection/amplification vector.
pub fn reflection_port(vector: &str) -> Option<u16> {
    Some(match vector {
        "dns_amplification" => 53,
        "ntp_amplification" => 123,
        "ssdp_amplification" => 1900,
        "memcached_amplification" => 11211,
        "cldap_amplification" => 389,
        "chargen_amplification" => 19,
        "snmp_amplification" => 161,
        "wsd_amplification" => 3702,
        "coap_amplification" => 5683,
        _ => return None,
    })
}

/// Why an attack gets no announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not a volumetric `attack_started` (e.g. `sensor_health`): silently
    /// ignored.
    NotAnAttackStart,
    /// Its group or vector is not configured for mitigation.
    NotSelected(String),
    /// Refused by a safety limit (audited as `refused`).
    Refused {
        /// The target, when known.
        prefix: Option<Prefix>,
        /// Why.
        reason: String,
    },
}

/// Frame bytes a link layer may add to an IP packet (Ethernet with two
/// VLAN tags): packet-length lower bounds are widened by this much.
const LINK_OVERHEAD: u64 = 22;

/// Whether `p` lies entirely inside one of `protected`.
pub fn inside(protected: &[(IpAddr, u8)], p: Prefix) -> bool {
    protected
        .iter()
        .any(|&(net, len)| p.len >= len && contains(net, len, p.addr))
}

/// The routes `inc` calls for under `c`.
pub fn plan(
    c: &MitigationConfig,
    protected: &[(IpAddr, u8)],
    inc: &Incident,
) -> Result<Vec<Route>, Skip> {
    if inc.kind != Kind::Volumetric || inc.event != Event::AttackStarted {
        return Err(Skip::NotAnAttackStart);
    }
    let group = inc.extra.get("group").and_then(|g| g.as_str());
    if !c.groups.is_empty() && !group.is_some_and(|g| c.groups.iter().any(|x| x == g)) {
        return Err(Skip::NotSelected(format!(
            "group {:?} is not in mitigation.groups",
            group.unwrap_or("")
        )));
    }
    let vector = inc.vector.as_deref().unwrap_or("");
    if !c.vectors.is_empty() && !c.vectors.iter().any(|v| v == vector) {
        return Err(Skip::NotSelected(format!(
            "vector {vector:?} is not in mitigation.vectors"
        )));
    }
    let target = match (incident_dst_net(inc), inc.dst_ip) {
        (Some((addr, len)), _) => Prefix { addr, len },
        (None, Some(addr)) => Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        },
        (None, None) => {
            return Err(Skip::Refused {
                prefix: None,
                reason: "the incident names no target (dst_ip or dst_net)".into(),
            })
        }
    };
    let min = if target.addr.is_ipv4() {
        c.min_prefix_len_v4
    } else {
        c.min_prefix_len_v6
    };
    if target.len < min {
        return Err(Skip::Refused {
            prefix: Some(target),
            reason: format!(
                "/{} is shorter than the minimum prefix length /{min}",
                target.len
            ),
        });
    }
    if !inside(protected, target) {
        return Err(Skip::Refused {
            prefix: Some(target),
            reason: "outside protected space (mitigation.protected)".into(),
        });
    }
    let mut routes = Vec::new();
    if let Some(r) = &c.rtbh {
        let next_hop = if target.addr.is_ipv4() {
            Some(r.next_hop)
        } else {
            r.next_hop_v6
        };
        if let Some(next_hop) = next_hop {
            routes.push(Route::Rtbh {
                prefix: target,
                next_hop,
                communities: r.communities.clone(),
            });
        }
    }
    if let Some(f) = &c.flowspec {
        let protocol = match inc.proto.as_str() {
            p @ ("tcp" | "udp" | "icmp") => Some(p.to_string()),
            _ => None,
        };
        let source_port = if f.source_port {
            reflection_port(vector)
        } else {
            None
        };
        let packet_length = if f.packet_length {
            inc.extra.get("packet_size").and_then(|s| {
                let min = s.get("min")?.as_u64()?;
                let max = s.get("max")?.as_u64()?;
                (min <= max && max > 0 && max <= 65_535 + LINK_OVERHEAD).then(|| {
                    (
                        u32::try_from(min.saturating_sub(LINK_OVERHEAD)).unwrap_or(0),
                        u32::try_from(max.min(65_535)).unwrap_or(65_535),
                    )
                })
            })
        } else {
            None
        };
        routes.push(Route::Flowspec {
            prefix: target,
            protocol,
            source_port,
            packet_length,
            action: f.action,
            rate_limit_bytes: f.rate_limit_bytes,
        });
    }
    if routes.is_empty() {
        return Err(Skip::Refused {
            prefix: Some(target),
            reason: "no method applies (IPv6 target without rtbh.next_hop_v6 and no flowspec)"
                .into(),
        });
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> MitigationConfig {
        let c: MitigationConfig = toml::from_str(&format!(
            "mode = \"announce\"\nprotected = [\"198.51.100.0/24\", \"2001:db8:100::/48\"]\n{extra}\n[rtbh]\nnext_hop = \"192.0.2.1\"\n[flowspec]\n"
        ))
        .unwrap();
        c.validate(&[]).unwrap();
        c
    }

    fn attack(dst: &str) -> Incident {
        serde_json::from_value(serde_json::json!({
            "id": "018bd0c4-2000-7000-8000-000000000001", "schema": 1, "sensor": "edge-1",
            "kind": "volumetric", "event": "attack_started", "signature": "dns-amplification",
            "severity": "high", "ts": "2026-11-29T04:19:24Z", "src_ip": "203.0.113.9",
            "dst_ip": dst, "src_port": 53, "dst_port": null, "proto": "udp",
            "community_id": null, "attack_id": "018bd0c4-2000-7000-8000-0000000000aa",
            "vector": "dns_amplification", "pps": 1, "bps": 1, "peak_pps": 1, "peak_bps": 1,
            "packets": 1, "bytes": 1, "top_sources": [], "group": "dmz",
            "packet_size": {"min": 1100, "max": 1514, "mean": 1400, "packets": 1000}
        }))
        .unwrap()
    }

    fn run(c: &MitigationConfig, inc: &Incident) -> Result<Vec<Route>, Skip> {
        plan(c, &c.protected_prefixes(), inc)
    }

    #[test]
    fn a_reflection_attack_gets_rtbh_and_a_flowspec_rule_from_its_evidence() {
        let routes = run(&config(""), &attack("198.51.100.20")).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(
            routes[0].describe(),
            "ipv4 198.51.100.20/32 nexthop 192.0.2.1 community 65535:666"
        );
        assert_eq!(
            routes[1].describe(),
            "ipv4-flowspec match destination 198.51.100.20/32 protocol udp source-port ==53 packet-length >=1078&<=1514 then discard"
        );
    }

    #[test]
    fn nothing_outside_protected_space_or_shorter_than_the_minimum() {
        let c = config("");
        match run(&c, &attack("192.0.2.77")) {
            Err(Skip::Refused { reason, .. }) => assert!(reason.contains("outside"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut wide = attack("198.51.100.20");
        wide.extra.insert("dst_net".into(), "198.51.0.0/16".into());
        match run(&c, &wide) {
            Err(Skip::Refused { reason, .. }) => assert!(reason.contains("minimum"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A protected /24 network attack is fine.
        let mut net = attack("198.51.100.20");
        net.extra.insert("dst_net".into(), "198.51.100.0/24".into());
        assert_eq!(
            run(&c, &net).unwrap()[0].prefix().to_string(),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn sensor_health_updates_and_unselected_groups_are_never_mitigated() {
        let c = config("groups = [\"core\"]");
        assert!(matches!(
            run(&c, &attack("198.51.100.20")),
            Err(Skip::NotSelected(_))
        ));
        let c = config("");
        let mut upd = attack("198.51.100.20");
        upd.event = Event::AttackUpdate;
        assert_eq!(run(&c, &upd), Err(Skip::NotAnAttackStart));
        let mut health = attack("198.51.100.20");
        health.kind = Kind::SensorHealth;
        assert_eq!(run(&c, &health), Err(Skip::NotAnAttackStart));
    }

    #[test]
    fn described_routes_parse_back() {
        let mut c = config("");
        let routes = run(&c, &attack("198.51.100.20")).unwrap();
        c.flowspec = Some(crate::mitigation::config::FlowspecConfig {
            action: FlowAction::RateLimit,
            rate_limit_bytes: 125_000,
            source_port: false,
            packet_length: false,
        });
        let more = run(&c, &attack("198.51.100.21")).unwrap();
        for r in routes.iter().chain(&more) {
            assert_eq!(Route::parse_described(&r.describe()).as_ref(), Some(r));
        }
        assert_eq!(
            Route::parse_described("ipv4 198.51.100.20/32 nexthop"),
            None
        );
        assert_eq!(
            Route::parse_described("ipv4-flowspec match destination 198.51.100.20/32 then"),
            None
        );
    }

    #[test]
    fn ipv6_without_a_v6_next_hop_gets_flowspec_only() {
        let routes = run(&config(""), &attack("2001:db8:100::5")).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].family(), "ipv6-flowspec");
    }
}
