//! `[mitigation]`: automatic RTBH / FlowSpec announcements through GoBGP,
//! off by default. Validated once with the rest of the config.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::alerts::config::parse_prefix;

/// What the mitigation engine does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing (the default).
    #[default]
    Off,
    /// Decides and audits as `announce` would, but never talks to BGP.
    DryRun,
    /// Announces and withdraws through the speaker.
    Announce,
}

impl Mode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::DryRun => "dry-run",
            Mode::Announce => "announce",
        }
    }
}

/// `[mitigation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationConfig {
    /// `off` (default), `dry-run` or `announce`.
    #[serde(default)]
    pub mode: Mode,
    /// Protected space: CIDR prefixes that may be mitigated. Nothing
    /// outside them is ever announced. Required unless `off`.
    #[serde(default)]
    pub protected: Vec<String>,
    /// Sensor host groups that may be mitigated (the incident's `group`);
    /// empty: any group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attack vectors that may be mitigated; empty: any vector.
    #[serde(default)]
    pub vectors: Vec<String>,
    /// Shortest IPv4 prefix ever announced (0..=32, default 24).
    #[serde(default = "default_min_v4")]
    pub min_prefix_len_v4: u8,
    /// Shortest IPv6 prefix ever announced (0..=128, default 48).
    #[serde(default = "default_min_v6")]
    pub min_prefix_len_v6: u8,
    /// Most announcements (RTBH routes plus FlowSpec rules) active at once
    /// (1..=100000, default 10). Beyond it, new ones are refused and
    /// audited as `refused`.
    #[serde(default = "default_max_active")]
    pub max_active: usize,
    /// Seconds an announcement stays after the last of its attacks ended
    /// (0..=604800, default 300); a new start within it keeps it.
    #[serde(default = "default_hold")]
    pub hold_time_s: u64,
    /// Longest an announcement stays, in seconds, even if its attack never
    /// ends (a sensor that died, an end that was lost): then it is
    /// withdrawn (0..=2592000, default 86400; 0 = no limit).
    #[serde(default = "default_max_duration")]
    pub max_duration_s: u64,
    /// Analysts (`[[analysts]]` names) who may withdraw by hand.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Incidents waiting for the engine (1..=1000000, default 10000).
    /// Full: the incident is not considered, and
    /// `shaobing_collector_events_dropped_total{consumer="mitigation"}`
    /// counts it.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// The BGP speaker.
    #[serde(default)]
    pub gobgp: GobgpConfig,
    /// Remotely triggered black hole routes (off unless present).
    #[serde(default)]
    pub rtbh: Option<RtbhConfig>,
    /// FlowSpec rules (off unless present).
    #[serde(default)]
    pub flowspec: Option<FlowspecConfig>,
}

/// `[mitigation.gobgp]`: the local gobgpd that peers with the border
/// routers, driven through its `gobgp` CLI (gRPC API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GobgpConfig {
    /// The `gobgp` program (default `gobgp`, looked up on `PATH`).
    #[serde(default = "default_cli")]
    pub cli: PathBuf,
    /// gobgpd's gRPC API, `host:port` (default `127.0.0.1:50051`).
    #[serde(default = "default_api")]
    pub api: String,
    /// Bound on one CLI call in ms (1..=60000, default 5000).
    #[serde(default = "default_gobgp_timeout")]
    pub timeout_ms: u64,
}

impl Default for GobgpConfig {
    fn default() -> Self {
        GobgpConfig {
            cli: default_cli(),
            api: default_api(),
            timeout_ms: default_gobgp_timeout(),
        }
    }
}

/// `[mitigation.rtbh]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtbhConfig {
    /// IPv4 next hop the border routers null-route (e.g. `192.0.2.1`).
    pub next_hop: IpAddr,
    /// IPv6 next hop; without it IPv6 targets get no RTBH route.
    #[serde(default)]
    pub next_hop_v6: Option<IpAddr>,
    /// Communities, `ASN:value` (default `["65535:666"]`, RFC 7999
    /// BLACKHOLE).
    #[serde(default = "default_communities")]
    pub communities: Vec<String>,
}

/// FlowSpec action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowAction {
    /// Drop matching traffic (traffic-rate 0).
    #[default]
    Discard,
    /// Police matching traffic to `rate_limit_bytes` per second.
    RateLimit,
}

/// `[mitigation.flowspec]` (RFC 8955 / 8956).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowspecConfig {
    /// `discard` (default) or `rate-limit`.
    #[serde(default)]
    pub action: FlowAction,
    /// Bytes per second for `rate-limit` (1..=10^12).
    #[serde(default)]
    pub rate_limit_bytes: u64,
    /// Match the reflection vector's source port (default true).
    #[serde(default = "default_true")]
    pub source_port: bool,
    /// Match the packet length range seen in the evidence (default true).
    #[serde(default = "default_true")]
    pub packet_length: bool,
}

fn default_min_v4() -> u8 {
    24
}
fn default_min_v6() -> u8 {
    48
}
fn default_max_active() -> usize {
    10
}
fn default_hold() -> u64 {
    300
}
fn default_max_duration() -> u64 {
    86_400
}
fn default_queue() -> usize {
    10_000
}
fn default_cli() -> PathBuf {
    PathBuf::from("gobgp")
}
fn default_api() -> String {
    "127.0.0.1:50051".to_string()
}
fn default_gobgp_timeout() -> u64 {
    5000
}
fn default_communities() -> Vec<String> {
    vec!["65535:666".to_string()]
}
fn default_true() -> bool {
    true
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            mode: Mode::Off,
            protected: Vec::new(),
            groups: Vec::new(),
            vectors: Vec::new(),
            min_prefix_len_v4: default_min_v4(),
            min_prefix_len_v6: default_min_v6(),
            max_active: default_max_active(),
            hold_time_s: default_hold(),
            max_duration_s: default_max_duration(),
            admins: Vec::new(),
            queue: default_queue(),
            gobgp: GobgpConfig::default(),
            rtbh: None,
            flowspec: None,
        }
    }
}

fn range(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("{name} must be in {lo}..={hi}, got {v}"));
    }
    Ok(())
}

/// Parses `ASN:value` (both 0..=65535).
pub fn parse_community(s: &str) -> Option<(u16, u16)> {
    let (a, v) = s.split_once(':')?;
    Some((a.parse().ok()?, v.parse().ok()?))
}

impl MitigationConfig {
    /// The protected prefixes, parsed (validation guarantees they parse).
    pub fn protected_prefixes(&self) -> Vec<(IpAddr, u8)> {
        self.protected
            .iter()
            .filter_map(|p| parse_prefix(p).ok())
            .collect()
    }

    /// Checks values, ranges and consistency; `analysts` are the
    /// configured analyst names (for `admins`).
    pub fn validate(&self, analysts: &[&str]) -> Result<(), String> {
        range(
            "mitigation.min_prefix_len_v4",
            self.min_prefix_len_v4.into(),
            0,
            32,
        )?;
        range(
            "mitigation.min_prefix_len_v6",
            self.min_prefix_len_v6.into(),
            0,
            128,
        )?;
        range("mitigation.max_active", self.max_active as u64, 1, 100_000)?;
        range("mitigation.hold_time_s", self.hold_time_s, 0, 604_800)?;
        range("mitigation.queue", self.queue as u64, 1, 1_000_000)?;
        range(
            "mitigation.max_duration_s",
            self.max_duration_s,
            0,
            2_592_000,
        )?;
        range(
            "mitigation.gobgp.timeout_ms",
            self.gobgp.timeout_ms,
            1,
            60_000,
        )?;
        for p in &self.protected {
            parse_prefix(p).map_err(|e| format!("mitigation.protected: {e}"))?;
        }
        for a in &self.admins {
            if !analysts.contains(&a.as_str()) {
                return Err(format!("mitigation.admins: no [[analysts]] named {a:?}"));
            }
        }
        if self
            .gobgp
            .api
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!(
                "mitigation.gobgp.api must be host:port, got {:?}",
                self.gobgp.api
            ));
        }
        if let Some(r) = &self.rtbh {
            if !r.next_hop.is_ipv4() {
                return Err("mitigation.rtbh.next_hop must be an IPv4 address".into());
            }
            if r.next_hop_v6.is_some_and(|a| !a.is_ipv6()) {
                return Err("mitigation.rtbh.next_hop_v6 must be an IPv6 address".into());
            }
            if r.communities.is_empty() {
                return Err("mitigation.rtbh.communities must not be empty".into());
            }
            for c in &r.communities {
                if parse_community(c).is_none() {
                    return Err(format!(
                        "mitigation.rtbh.communities: {c:?} is not ASN:value (0..=65535 each)"
                    ));
                }
            }
        }
        if let Some(f) = &self.flowspec {
            if f.action == FlowAction::RateLimit {
                range(
                    "mitigation.flowspec.rate_limit_bytes",
                    f.rate_limit_bytes,
                    1,
                    1_000_000_000_000,
                )?;
            } else if f.rate_limit_bytes != 0 {
                return Err(
                    "mitigation.flowspec.rate_limit_bytes needs action = \"rate-limit\"".into(),
                );
            }
        }
        if self.mode != Mode::Off {
            if self.protected.is_empty() {
                return Err(format!(
                    "mitigation.protected must list the prefixes that may be mitigated (mode = {:?})",
                    self.mode.as_str()
                ));
            }
            if self.rtbh.is_none() && self.flowspec.is_none() {
                return Err(
                    "mitigation: mode is not off but neither [mitigation.rtbh] nor [mitigation.flowspec] is configured".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MitigationConfig, String> {
        let c: MitigationConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate(&["soc-lead"])?;
        Ok(c)
    }

    const BASE: &str = "mode = \"announce\"\nprotected = [\"198.51.100.0/24\"]\n";

    #[test]
    fn off_by_default_and_needs_nothing() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.max_active, 10);
        assert_eq!(c.hold_time_s, 300);
    }

    #[test]
    fn announcing_needs_protected_space_and_a_method() {
        let e = parse("mode = \"announce\"\n[rtbh]\nnext_hop = \"192.0.2.1\"").unwrap_err();
        assert!(e.contains("mitigation.protected"), "{e}");
        let e = parse(BASE).unwrap_err();
        assert!(e.contains("neither"), "{e}");
        parse(&format!("{BASE}[flowspec]\n")).unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("max_active = 0", "max_active"),
            ("admins = [\"mallory\"]", "no [[analysts]]"),
            ("unknown = 1", "unknown"),
        ];
        for (extra, want) in cases {
            let text = format!("{BASE}{extra}\n[flowspec]\n");
            let e = parse(&text).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = parse(&format!(
            "{BASE}[rtbh]\nnext_hop = \"192.0.2.1\"\ncommunities = [\"65535:70000\"]"
        ))
        .unwrap_err();
        assert!(e.contains("communities"), "{e}");
        let e = parse(&format!("{BASE}[rtbh]\nnext_hop = \"2001:db8::1\"")).unwrap_err();
        assert!(e.contains("IPv4"), "{e}");
        let e = parse("mode = \"announce\"\nprotected = [\"198.51.100.1/24\"]\n[flowspec]\n")
            .unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        let e = parse(&format!("{BASE}[flowspec]\nrate_limit_bytes = 5")).unwrap_err();
        assert!(e.contains("rate-limit"), "{e}");
    }
}
