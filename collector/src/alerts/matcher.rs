//! Compiled routing rules: which incidents a rule matches, and its rate
//! limit.

use std::net::IpAddr;
use std::time::Instant;

use shaobing_wire::{Event, Incident, Kind, Severity};

use super::config::{parse_prefix, RuleConfig};

/// `addr` with every bit after the first `len` cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Whether `addr` lies in `net/len` (same family only).
pub fn contains(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    net.is_ipv4() == addr.is_ipv4() && mask(addr, len) == net
}

/// A network prefix named by an incident's `dst_net` (network attacks).
pub fn incident_dst_net(inc: &Incident) -> Option<(IpAddr, u8)> {
    inc.extra
        .get("dst_net")
        .and_then(|v| v.as_str())
        .and_then(|s| parse_prefix(s).ok())
}

/// One rule, parsed.
#[derive(Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Indexes into the router's destinations.
    pub destinations: Vec<usize>,
    kind: Vec<Kind>,
    event: Vec<Event>,
    severity: Vec<Severity>,
    min_severity: Option<Severity>,
    signature: Vec<String>,
    vector: Vec<String>,
    group: Vec<String>,
    prefix: Vec<(IpAddr, u8)>,
    sensor: Vec<String>,
    bucket: Option<TokenBucket>,
}

impl Rule {
    /// Compiles a validated rule; `dest_index` maps destination names to
    /// indexes (validation guarantees every name is there).
    pub fn new(c: &RuleConfig, dest_index: impl Fn(&str) -> Option<usize>) -> Rule {
        Rule {
            name: c.name.clone(),
            destinations: c
                .destinations
                .iter()
                .filter_map(|d| dest_index(d))
                .collect(),
            kind: c.kind.iter().filter_map(|k| Kind::parse(k)).collect(),
            event: c.event.iter().filter_map(|e| Event::parse(e)).collect(),
            severity: c
                .severity
                .iter()
                .filter_map(|s| Severity::parse(s))
                .collect(),
            min_severity: c.min_severity.as_deref().and_then(Severity::parse),
            signature: c.signature.clone(),
            vector: c.vector.clone(),
            group: c.group.clone(),
            prefix: c
                .prefix
                .iter()
                .filter_map(|p| parse_prefix(p).ok())
                .collect(),
            sensor: c.sensor.clone(),
            bucket: (c.max_per_minute > 0).then(|| TokenBucket::per_minute(c.max_per_minute)),
        }
    }

    /// Whether every criterion of the rule holds for `inc`.
    pub fn matches(&self, inc: &Incident) -> bool {
        fn any<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        fn any_str(list: &[String], v: Option<&str>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        }
        any(&self.kind, &inc.kind)
            && any(&self.event, &inc.event)
            && any(&self.severity, &inc.severity)
            && self.min_severity.is_none_or(|m| inc.severity >= m)
            && any_str(&self.signature, Some(&inc.signature))
            && any_str(&self.vector, inc.vector.as_deref())
            && any_str(&self.group, inc.extra.get("group").and_then(|g| g.as_str()))
            && any_str(&self.sensor, Some(&inc.sensor))
            && (self.prefix.is_empty() || self.prefix_matches(inc))
    }

    fn prefix_matches(&self, inc: &Incident) -> bool {
        let net = incident_dst_net(inc);
        self.prefix.iter().any(|&(p, len)| {
            inc.dst_ip.is_some_and(|a| contains(p, len, a))
                || inc.src_ip.is_some_and(|a| contains(p, len, a))
                || net.is_some_and(|(n, nl)| nl >= len && contains(p, len, n))
        })
    }

    /// Takes one token from the rule's rate limit; false when over it.
    pub fn admit(&mut self, now: Instant) -> bool {
        match &mut self.bucket {
            Some(b) => b.take(now),
            None => true,
        }
    }
}

/// A token bucket holding at most `capacity` tokens, refilled at
/// `capacity` per minute.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Full bucket allowing `n` per minute.
    pub fn per_minute(n: u32) -> TokenBucket {
        TokenBucket {
            capacity: f64::from(n),
            tokens: f64::from(n),
            per_sec: f64::from(n) / 60.0,
            last: None,
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn incident(v: serde_json::Value) -> Incident {
        serde_json::from_value(v).unwrap()
    }

    fn attack() -> serde_json::Value {
        serde_json::json!({
            "id": "018bd0c4-2000-7000-8000-000000000001", "schema": 1, "sensor": "edge-1",
            "kind": "volumetric", "event": "attack_started", "signature": "dns-amplification",
            "severity": "high", "ts": "2026-11-29T04:19:24Z", "src_ip": "203.0.113.9",
            "dst_ip": "198.51.100.20", "src_port": 53, "dst_port": null, "proto": "udp",
            "community_id": null, "attack_id": "018bd0c4-2000-7000-8000-0000000000aa",
            "vector": "dns_amplification", "pps": 1, "bps": 1, "peak_pps": 1, "peak_bps": 1,
            "packets": 1, "bytes": 1, "top_sources": [], "group": "dmz"
        })
    }

    fn rule(toml_text: &str) -> Rule {
        let c: RuleConfig = toml::from_str(&format!(
            "name = \"r\"\ndestinations = [\"d\"]\n{toml_text}"
        ))
        .unwrap();
        Rule::new(&c, |_| Some(0))
    }

    #[test]
    fn empty_rule_matches_everything() {
        assert!(rule("").matches(&incident(attack())));
    }

    #[test]
    fn every_criterion_must_hold() {
        let inc = incident(attack());
        assert!(rule("kind = [\"volumetric\"]\nvector = [\"dns_amplification\"]\ngroup = [\"dmz\"]\nsensor = [\"edge-1\"]").matches(&inc));
        assert!(!rule("kind = [\"volumetric\"]\nvector = [\"syn_flood\"]").matches(&inc));
        assert!(!rule("group = [\"core\"]").matches(&inc));
        assert!(!rule("event = [\"attack_ended\"]").matches(&inc));
        assert!(!rule("signature = [\"syn-flood\"]").matches(&inc));
    }

    #[test]
    fn min_severity_is_inclusive() {
        let inc = incident(attack());
        assert!(rule("min_severity = \"high\"").matches(&inc));
        assert!(rule("min_severity = \"low\"").matches(&inc));
        assert!(!rule("min_severity = \"critical\"").matches(&inc));
        assert!(!rule("severity = [\"low\", \"critical\"]").matches(&inc));
    }

    #[test]
    fn prefix_matches_destination_source_or_dst_net() {
        let inc = incident(attack());
        assert!(rule("prefix = [\"198.51.100.0/24\"]").matches(&inc));
        assert!(rule("prefix = [\"203.0.113.0/24\"]").matches(&inc));
        assert!(!rule("prefix = [\"192.0.2.0/24\", \"2001:db8::/32\"]").matches(&inc));
        let mut v = attack();
        v["dst_ip"] = serde_json::Value::Null;
        v["src_ip"] = serde_json::Value::Null;
        v["dst_net"] = serde_json::json!("192.0.2.0/24");
        let net = incident(v);
        assert!(rule("prefix = [\"192.0.0.0/16\"]").matches(&net));
        assert!(!rule("prefix = [\"192.0.2.128/25\"]").matches(&net));
    }

    #[test]
    fn bucket_allows_a_minutes_burst_then_refills() {
        let mut b = TokenBucket::per_minute(3);
        let t = Instant::now();
        assert!(b.take(t) && b.take(t) && b.take(t));
        assert!(!b.take(t));
        assert!(!b.take(t + Duration::from_secs(10)));
        assert!(b.take(t + Duration::from_secs(21)));
        assert!(!b.take(t + Duration::from_secs(21)));
    }
}
