//! `[alerts]`: destinations and the rules that route incidents to them.
//! Part of the collector's config (`deny_unknown_fields`), validated once
//! by [`AlertsConfig::validate`] when the config is loaded.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use shaobing_wire::{Event, Kind, Severity};

/// `[alerts]`. Absent or without rules: no alert is ever sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Incidents waiting for the router (1..=1000000). Full policy: the
    /// newest incident is not alerted on and
    /// `shaobing_collector_events_dropped_total{consumer="alerts"}` counts
    /// it; ingest never waits.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Alert keys (incident id, or attack id and event) remembered to
    /// suppress duplicates from sensor retries (1..=10000000).
    #[serde(default = "default_dedup")]
    pub dedup_window: usize,
    /// Where alerts go.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// Which incidents go where; an incident goes to every matching rule.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn default_queue() -> usize {
    10_000
}
fn default_dedup() -> usize {
    65_536
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            queue: default_queue(),
            dedup_window: default_dedup(),
            destinations: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `[[alerts.rules]]`: one routing rule. Every criterion given must hold
/// (lists match any of their values); a rule with no criteria matches every
/// alertable incident (`attack_started`, `attack_ended`, `leak`,
/// `capture_loss`; never `attack_update`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name, in logs and metrics (1..=64 bytes of `[A-Za-z0-9_.-]`, unique).
    pub name: String,
    /// Names of `[[alerts.destinations]]` to send matches to (at least one).
    pub destinations: Vec<String>,
    /// Incident kinds (`volumetric`, `leak`, `sensor_health`).
    #[serde(default)]
    pub kind: Vec<String>,
    /// Events (`attack_started`, `attack_ended`, `leak`, `capture_loss`).
    #[serde(default)]
    pub event: Vec<String>,
    /// Severities (`low`, `medium`, `high`, `critical`).
    #[serde(default)]
    pub severity: Vec<String>,
    /// Lowest severity matched (e.g. `high` matches high and critical).
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Signature ids.
    #[serde(default)]
    pub signature: Vec<String>,
    /// Attack vectors (volumetric), e.g. `dns_amplification`.
    #[serde(default)]
    pub vector: Vec<String>,
    /// Sensor host groups (the incident's `group` field).
    #[serde(default)]
    pub group: Vec<String>,
    /// CIDR prefixes: the incident's destination, source or `dst_net`
    /// must lie inside one.
    #[serde(default)]
    pub prefix: Vec<String>,
    /// Sensor names.
    #[serde(default)]
    pub sensor: Vec<String>,
    /// Most alerts this rule sends per minute (0 = unlimited), as a token
    /// bucket that holds a minute's worth: bursts up to the limit pass,
    /// then one alert per `60 / limit` seconds. Alerts over the limit are
    /// counted in `shaobing_collector_alerts_rate_limited_total{rule}` and
    /// logged, not queued.
    #[serde(default)]
    pub max_per_minute: u32,
}

/// `[[alerts.destinations]]`: where alerts are delivered; `type` picks
/// the transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DestinationConfig {
    /// JSON POST with an HMAC-SHA256 signature.
    Webhook(WebhookConfig),
    /// RFC 5424 syslog over UDP, TCP or TLS.
    Syslog(SyslogConfig),
    /// A local command with the incident JSON on stdin.
    Command(CommandConfig),
}

impl DestinationConfig {
    /// The name rules refer to.
    pub fn name(&self) -> &str {
        match self {
            DestinationConfig::Webhook(c) => &c.name,
            DestinationConfig::Syslog(c) => &c.name,
            DestinationConfig::Command(c) => &c.name,
        }
    }
    /// Capacity of its queue.
    pub fn queue(&self) -> usize {
        match self {
            DestinationConfig::Webhook(c) => c.queue,
            DestinationConfig::Syslog(c) => c.queue,
            DestinationConfig::Command(c) => c.queue,
        }
    }
}

fn default_dest_queue() -> usize {
    1000
}

/// `type = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name the rules refer to (1..=64 bytes of `[A-Za-z0-9_.-]`, unique).
    pub name: String,
    /// Alerts waiting for this destination (1..=1000000). Full policy: the
    /// newest alert is dropped and counted in
    /// `shaobing_collector_alerts_dropped_total{destination}`.
    #[serde(default = "default_dest_queue")]
    pub queue: usize,
    /// `http://` or `https://` URL.
    pub url: String,
    /// File holding the HMAC key (first line, trimmed). Preferred over
    /// `secret`: it keeps the key out of the config file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The HMAC key inline.
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM CA file for an `https` URL (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeout of one attempt (connect + response), in ms (1..=300000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per alert (1..=100). 2xx is success; 408, 429, 5xx and
    /// network errors are retried; other statuses are not.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff in ms (1..=60000), doubled each attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Backoff cap in ms (initial..=600000); each wait is drawn uniformly
    /// from [backoff/2, backoff].
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// `type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Name the rules refer to (1..=64 bytes of `[A-Za-z0-9_.-]`, unique).
    pub name: String,
    /// Alerts waiting for this destination (1..=1000000). Full policy: the
    /// newest alert is dropped and counted in
    /// `shaobing_collector_alerts_dropped_total{destination}`.
    #[serde(default = "default_dest_queue")]
    pub queue: usize,
    /// `host:port` of the receiver (an IP address or a name).
    pub address: String,
    /// `udp` (RFC 5426, one datagram per message), `tcp` (RFC 6587
    /// octet-counting) or `tls` (RFC 5425).
    #[serde(default)]
    pub transport: Transport,
    /// `json` (the incident) or `cef` (ArcSight Common Event Format).
    #[serde(default)]
    pub format: Format,
    /// Facility name: `kern`, `user`, `daemon`, `auth`, `authpriv`,
    /// `security` (= auth), `local0`..`local7` (default `local0`).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// HOSTNAME field (default: this machine's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// APP-NAME field (default `shaobing`).
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// PEM CA file for `tls` (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TLS server name to verify (default: the host part of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Timeout of one connect or send, in ms (1..=300000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per message over TCP/TLS, reconnecting between them
    /// (1..=100); UDP sends once.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff in ms (1..=60000).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Backoff cap in ms (initial..=600000).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// `type = "command"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Name the rules refer to (1..=64 bytes of `[A-Za-z0-9_.-]`, unique).
    pub name: String,
    /// Alerts waiting for this destination (1..=1000000). Full policy: the
    /// newest alert is dropped and counted in
    /// `shaobing_collector_alerts_dropped_total{destination}`.
    #[serde(default = "default_dest_queue")]
    pub queue: usize,
    /// The program (absolute path, or looked up on `PATH`). Not run
    /// through a shell.
    pub program: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Kill it (SIGKILL) after this many ms (1..=3600000); counted as a
    /// failure.
    #[serde(default = "default_command_timeout_ms")]
    pub timeout_ms: u64,
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RFC 5426.
    #[default]
    Udp,
    /// RFC 6587, octet-counting.
    Tcp,
    /// RFC 5425.
    Tls,
}

/// Syslog payload format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The incident JSON.
    #[default]
    Json,
    /// Common Event Format.
    Cef,
}

fn default_timeout_ms() -> u64 {
    5000
}
fn default_command_timeout_ms() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_facility() -> String {
    "local0".to_string()
}
fn default_app_name() -> String {
    "shaobing".to_string()
}

/// Facility names and numbers (RFC 5424 section 6.2.1).
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" | "security" => 4,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Rule and destination names: 1..=64 bytes of `[A-Za-z0-9_.-]`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn range(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("{name} must be in {lo}..={hi}, got {v}"));
    }
    Ok(())
}

/// Parses `a.b.c.d/n` or `x::/n` (host bits must be zero).
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR prefix (address/length)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{s:?}: {len:?} is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("{s:?}: prefix length over {max}"));
    }
    if crate::alerts::matcher::mask(addr, len) != addr {
        return Err(format!("{s:?}: host bits are set"));
    }
    Ok((addr, len))
}

impl AlertsConfig {
    /// Checks names, references, values and ranges.
    pub fn validate(&self) -> Result<(), String> {
        range("alerts.queue", self.queue as u64, 1, 1_000_000)?;
        range(
            "alerts.dedup_window",
            self.dedup_window as u64,
            1,
            10_000_000,
        )?;
        let mut dests = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let at = format!("alerts.destinations[{i}]");
            if !is_name(d.name()) {
                return Err(format!(
                    "{at}.name must be 1..=64 bytes of [A-Za-z0-9_.-], got {:?}",
                    d.name()
                ));
            }
            if !dests.insert(d.name()) {
                return Err(format!("{at}: duplicate name {:?}", d.name()));
            }
            let at = format!("alerts.destinations[{i}] ({})", d.name());
            range(&format!("{at}.queue"), d.queue() as u64, 1, 1_000_000)?;
            match d {
                DestinationConfig::Webhook(w) => {
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                        return Err(format!("{at}.url must start with http:// or https://"));
                    }
                    match (&w.secret, &w.secret_file) {
                        (Some(s), None) if !s.is_empty() => {}
                        (None, Some(p)) if !p.as_os_str().is_empty() => {}
                        _ => {
                            return Err(format!(
                                "{at}: exactly one of secret and secret_file is required (the HMAC key)"
                            ))
                        }
                    }
                    range(&format!("{at}.timeout_ms"), w.timeout_ms, 1, 300_000)?;
                    retry_ranges(&at, w.max_attempts, w.initial_backoff_ms, w.max_backoff_ms)?;
                }
                DestinationConfig::Syslog(s) => {
                    if s.address.rsplit_once(':').is_none_or(|(h, p)| {
                        h.is_empty() || p.parse::<u16>().map_or(true, |p| p == 0)
                    }) {
                        return Err(format!(
                            "{at}.address must be host:port, got {:?}",
                            s.address
                        ));
                    }
                    if facility_code(&s.facility).is_none() {
                        return Err(format!("{at}.facility: unknown facility {:?}", s.facility));
                    }
                    let printable = |v: &str| {
                        !v.is_empty() && v.len() <= 48 && v.bytes().all(|b| (33..=126).contains(&b))
                    };
                    if !printable(&s.app_name) {
                        return Err(format!("{at}.app_name must be 1..=48 printable ASCII characters without spaces"));
                    }
                    if let Some(h) = &s.hostname {
                        if !printable(h) {
                            return Err(format!("{at}.hostname must be 1..=48 printable ASCII characters without spaces"));
                        }
                    }
                    if s.transport != Transport::Tls
                        && (s.ca_file.is_some() || s.server_name.is_some())
                    {
                        return Err(format!(
                            "{at}: ca_file and server_name need transport = \"tls\""
                        ));
                    }
                    range(&format!("{at}.timeout_ms"), s.timeout_ms, 1, 300_000)?;
                    retry_ranges(&at, s.max_attempts, s.initial_backoff_ms, s.max_backoff_ms)?;
                }
                DestinationConfig::Command(c) => {
                    if c.program.as_os_str().is_empty() {
                        return Err(format!("{at}.program must not be empty"));
                    }
                    range(&format!("{at}.timeout_ms"), c.timeout_ms, 1, 3_600_000)?;
                }
            }
        }
        let mut rules = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("alerts.rules[{i}]");
            if !is_name(&r.name) {
                return Err(format!(
                    "{at}.name must be 1..=64 bytes of [A-Za-z0-9_.-], got {:?}",
                    r.name
                ));
            }
            if !rules.insert(r.name.as_str()) {
                return Err(format!("{at}: duplicate name {:?}", r.name));
            }
            let at = format!("alerts.rules[{i}] ({})", r.name);
            if r.destinations.is_empty() {
                return Err(format!(
                    "{at}.destinations must name at least one destination"
                ));
            }
            for d in &r.destinations {
                if !dests.contains(d.as_str()) {
                    return Err(format!("{at}.destinations: no destination named {d:?}"));
                }
            }
            for k in &r.kind {
                if Kind::parse(k).is_none() {
                    return Err(format!("{at}.kind: unknown kind {k:?}"));
                }
            }
            for e in &r.event {
                match Event::parse(e) {
                    None => return Err(format!("{at}.event: unknown event {e:?}")),
                    Some(Event::AttackUpdate) => {
                        return Err(format!(
                            "{at}.event: attack_update is never alerted (one alert per attack start and end)"
                        ))
                    }
                    Some(_) => {}
                }
            }
            for s in r.severity.iter().chain(r.min_severity.iter()) {
                if Severity::parse(s).is_none() {
                    return Err(format!("{at}: unknown severity {s:?}"));
                }
            }
            for p in &r.prefix {
                parse_prefix(p).map_err(|e| format!("{at}.prefix: {e}"))?;
            }
            for (field, list) in [
                ("signature", &r.signature),
                ("vector", &r.vector),
                ("group", &r.group),
                ("sensor", &r.sensor),
            ] {
                if list.iter().any(|v| v.is_empty() || v.len() > 128) {
                    return Err(format!("{at}.{field}: values must be 1..=128 bytes"));
                }
            }
            range(
                &format!("{at}.max_per_minute"),
                u64::from(r.max_per_minute),
                0,
                1_000_000,
            )?;
        }
        Ok(())
    }
}

fn retry_ranges(at: &str, attempts: u32, initial: u64, max: u64) -> Result<(), String> {
    range(&format!("{at}.max_attempts"), u64::from(attempts), 1, 100)?;
    range(&format!("{at}.initial_backoff_ms"), initial, 1, 60_000)?;
    range(&format!("{at}.max_backoff_ms"), max, initial, 600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let c: AlertsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    const DEST: &str =
        "[[destinations]]\nname = \"siem\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\n";

    #[test]
    fn the_example_shapes_parse() {
        let c = parse(&format!(
            "{DEST}[[destinations]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\nsecret = \"k\"\n[[destinations]]\nname = \"cmd\"\ntype = \"command\"\nprogram = \"/bin/true\"\n[[rules]]\nname = \"all\"\ndestinations = [\"siem\", \"hook\", \"cmd\"]\nmin_severity = \"high\"\nprefix = [\"10.0.0.0/8\"]\n"
        ))
        .unwrap();
        assert_eq!(c.destinations.len(), 3);
        assert_eq!(c.destinations[0].queue(), 1000);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("[[rules]]\nname = \"r\"\ndestinations = [\"nowhere\"]\n", "no destination named"),
            ("[[rules]]\nname = \"r\"\ndestinations = [\"siem\"]\nevent = [\"attack_update\"]\n", "never alerted"),
            ("[[rules]]\nname = \"r\"\ndestinations = [\"siem\"]\nseverity = [\"dire\"]\n", "unknown severity"),
            ("[[rules]]\nname = \"r\"\ndestinations = [\"siem\"]\nprefix = [\"10.0.0.1/8\"]\n", "host bits"),
            ("[[rules]]\nname = \"r r\"\ndestinations = [\"siem\"]\n", "name must be"),
            ("[[rules]]\nname = \"r\"\ndestinations = [\"siem\"]\ncolour = \"red\"\n", "unknown field"),
            ("[[destinations]]\nname = \"siem\"\ntype = \"command\"\nprogram = \"x\"\n", "duplicate name"),
            ("[[destinations]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"ftp://x\"\nsecret = \"k\"\n", "http://"),
            ("[[destinations]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://x\"\n", "exactly one of secret"),
            ("[[destinations]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"h:1\"\nfacility = \"mail\"\n", "unknown facility"),
            ("[[destinations]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"h:1\"\nca_file = \"ca.pem\"\n", "need transport"),
            ("[[destinations]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"nohost\"\n", "host:port"),
            ("[[destinations]]\nname = \"p\"\ntype = \"pager\"\n", "unknown variant"),
            ("[[destinations]]\nname = \"c\"\ntype = \"command\"\nprogram = \"x\"\ntimeout = 5\n", "unknown field"),
        ];
        for (extra, want) in cases {
            let e = parse(&format!("{DEST}{extra}")).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
