//! Sensor configuration: a TOML file, parsed strictly and validated once.
//!
//! Every section and key is optional; an empty file (or no `--config`) gives
//! the defaults documented on each field and in the README.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

pub use crate::capture::live::CaptureConfig;
use crate::decode::tunnel::DecapConfig;
use crate::netset::NetSet;

/// Problems with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, bad type...).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("{path}: invalid value for `{key}`: {reason}")]
    Invalid {
        /// The file (or `<defaults>`).
        path: String,
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The whole sensor configuration (`--config FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sensor name put in every incident. Default: the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Networks the sensor protects. Direction (inbound/outbound) is judged
    /// against them. Default: RFC 1918 and fc00::/7.
    #[serde(default)]
    pub protected_networks: Option<Vec<IpNet>>,
    /// Volumetric detector settings.
    #[serde(default)]
    pub volumetric: VolumetricConfig,
    /// Leak detector settings.
    #[serde(default)]
    pub leak: LeakConfig,
    /// Delivery to the collector.
    #[serde(default)]
    pub collector: Option<CollectorConfig>,
    /// Live capture (`shaobing-sensor run`).
    #[serde(default)]
    pub capture: CaptureConfig,
    /// Live-mode operation: spool, heartbeats, privileges.
    #[serde(default)]
    pub run: RunConfig,
    /// Which tunnels are opened (`[decap]`).
    #[serde(default)]
    pub decap: DecapConfig,
}

/// Live-mode operation (`[run]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// After opening the capture handles, switch to this user (and its
    /// group). Default: stay as started (then run with only CAP_NET_RAW,
    /// as the systemd unit in `deploy/` does).
    pub user: Option<String>,
    /// Spool folder for incidents on their way to the collector. Default
    /// `/var/lib/shaobing/spool`.
    pub spool_dir: PathBuf,
    /// Spool size cap in MiB. When full, new incidents are refused and
    /// counted (spooled ones are never deleted unacknowledged). Default 1024.
    pub spool_max_mib: u64,
    /// Seconds between heartbeats (log line, and POST to the collector when
    /// there is one); 0 turns them off. Default 10.
    pub heartbeat_secs: u64,
    /// Seconds SIGTERM waits for delivery before leaving the rest spooled.
    /// Default 30.
    pub grace_secs: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            user: None,
            spool_dir: "/var/lib/shaobing/spool".into(),
            spool_max_mib: 1024,
            heartbeat_secs: 10,
            grace_secs: 30,
        }
    }
}

/// Volumetric detector settings (`[volumetric]`).
///
/// Thresholds live in host groups (`[[volumetric.groups]]`). With no group
/// configured, one group called `default` covers `protected_networks` (by
/// default RFC 1918 and fc00::/7) with the default thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumetricConfig {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// Seconds the rate must stay under the threshold before
    /// `attack_ended` (hysteresis). Default 5.
    pub hold_secs: u64,
    /// Seconds between `attack_update` events of an ongoing attack; 0
    /// turns updates off. Default 10.
    pub update_secs: u64,
    /// Most protected hosts tracked at once. Hosts beyond it are not
    /// tracked (counted as `hosts_untracked`); idle hosts are evicted
    /// first. Each costs about 550 bytes plus about 180 bytes per vector
    /// it has seen. Default 1,000,000.
    pub max_hosts: usize,
    /// Top sources kept per suspect (host, direction, vector), in a
    /// Space-Saving sketch. Each slot costs about 50 bytes, only while the
    /// vector is above a quarter of its threshold. Default 32.
    pub top_sources: usize,
    /// Packet headers sampled into each incident (`samples`). Default 5.
    pub samples: usize,
    /// Fewest distinct sources (HyperLogLog estimate) for traffic from an
    /// amplification port to count as reflected. Default 5.
    pub amplification_min_sources: u64,
    /// Smallest mean frame size (bytes on the wire) for traffic from an
    /// amplification port to count as reflected. Default 128.
    pub amplification_min_bytes: u64,
    /// Protected host groups. Default: none (one `default` group).
    pub groups: Vec<HostGroupConfig>,
    /// Network-level (carpet-bombing) detection: aggregates per automatic
    /// prefix and per group (`[volumetric.networks]`).
    pub networks: NetworksConfig,
}

/// Network-level detection (`[volumetric.networks]`): every protected
/// host's inbound traffic is also counted for its automatic prefixes (an
/// IPv4 /24, IPv6 /64 and /48 by default) and for its whole group, per
/// vector and in total, with the same one-second windows and lifecycle as
/// a host. Thresholds are per group (`[volumetric.groups.prefix]`,
/// `[volumetric.groups.network]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksConfig {
    /// Whether aggregates are counted at all. Default true.
    pub enabled: bool,
    /// Prefix length of the automatic IPv4 prefixes (8 to 32). Default 24.
    pub ipv4_prefix: u8,
    /// Prefix lengths of the automatic IPv6 prefixes (16 to 128 each, at
    /// most 4). Default [64, 48].
    pub ipv6_prefixes: Vec<u8>,
    /// Fewest distinct hosts that must receive a vector's traffic (last
    /// one to two seconds) for a network attack of it to start: a flood
    /// on one host is that host's attack, not its prefix's. Default 3.
    pub min_hosts: u32,
    /// Largest share (percent) of a network attack's packets one host may
    /// take; above it the traffic is a host attack. Default 50.
    pub max_host_share_percent: u8,
    /// Most prefixes tracked at once (each about 700 bytes plus 180 per
    /// vector seen); idle ones are evicted first, then new ones are not
    /// tracked (counted). Default 262,144.
    pub max_prefixes: usize,
    /// Most evidence sets (about 7 KiB each) kept for suspect network
    /// counters at once; past it a network attack is still detected and
    /// reported, with rates and hosts hit but no evidence. Default 16,384.
    pub max_evidence: usize,
    /// Top targeted hosts reported per network attack. Default 10.
    pub top_hosts: usize,
}

impl Default for NetworksConfig {
    fn default() -> Self {
        NetworksConfig {
            enabled: true,
            ipv4_prefix: 24,
            ipv6_prefixes: vec![64, 48],
            min_hosts: 3,
            max_host_share_percent: 50,
            max_prefixes: 262_144,
            max_evidence: 16_384,
            top_hosts: 10,
        }
    }
}

/// Thresholds of an aggregate (`[volumetric.groups.prefix]` for each
/// automatic prefix of the group, `[volumetric.groups.network]` for the
/// whole group): every vector and the total, with per-vector overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Packets/s of any vector (and of the total).
    #[serde(default)]
    pub pps: Option<u64>,
    /// Mbit/s of any vector (and of the total).
    #[serde(default)]
    pub mbps: Option<u64>,
    /// Per-vector overrides, keyed by vector name.
    #[serde(default)]
    pub vectors: std::collections::BTreeMap<String, ThresholdConfig>,
}

/// Default threshold of every vector of an automatic prefix, packets/s.
pub const DEFAULT_PREFIX_PPS: u64 = 100_000;
/// Default threshold of every vector of an automatic prefix, Mbit/s.
pub const DEFAULT_PREFIX_MBPS: u64 = 2_000;
/// Default threshold of every vector of a whole group, packets/s.
pub const DEFAULT_NETWORK_PPS: u64 = 500_000;
/// Default threshold of every vector of a whole group, Mbit/s.
pub const DEFAULT_NETWORK_MBPS: u64 = 5_000;

impl Default for VolumetricConfig {
    fn default() -> Self {
        VolumetricConfig {
            enabled: true,
            hold_secs: 5,
            update_secs: 10,
            max_hosts: 1_000_000,
            top_sources: 32,
            samples: 5,
            amplification_min_sources: 5,
            amplification_min_bytes: 128,
            groups: Vec::new(),
            networks: NetworksConfig::default(),
        }
    }
}

/// Default per-host threshold of every vector, packets/s (FastNetMon's).
pub const DEFAULT_PPS: u64 = 20_000;
/// Default per-host threshold of every vector, Mbit/s: half of
/// FastNetMon's 1,000, so a flood that fills a 1 Gbit/s uplink is caught
/// at half its capacity, before it is full.
pub const DEFAULT_MBPS: u64 = 500;

/// One protected host group (`[[volumetric.groups]]`). Every value not set
/// here comes from the built-in defaults, never from another group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostGroupConfig {
    /// Group name, reported in incidents as `group`.
    pub name: String,
    /// The group's networks, IPv4 and IPv6. A host belongs to the group
    /// with its longest matching prefix.
    pub networks: Vec<IpNet>,
    /// Packets/s per host of any vector (and of the total) that start an
    /// attack. Default 20,000.
    #[serde(default)]
    pub pps: Option<u64>,
    /// Mbit/s per host of any vector (and of the total) that start an
    /// attack. Default 500.
    #[serde(default)]
    pub mbps: Option<u64>,
    /// Per-vector overrides, keyed by vector name (`syn_flood = { pps =
    /// 5000 }`).
    #[serde(default)]
    pub vectors: std::collections::BTreeMap<String, ThresholdConfig>,
    /// Learned per-host baseline of the total rate; off by default.
    #[serde(default)]
    pub baseline: Option<BaselineConfig>,
    /// Thresholds of each automatic prefix of the group (network-level
    /// detection). Default 100,000 packets/s and 2,000 Mbit/s.
    #[serde(default)]
    pub prefix: Option<AggregateConfig>,
    /// Thresholds of the group's traffic as a whole. Default 500,000
    /// packets/s and 5,000 Mbit/s.
    #[serde(default)]
    pub network: Option<AggregateConfig>,
}

/// A threshold override: either value may be left out (then the group's).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Packets per second.
    #[serde(default)]
    pub pps: Option<u64>,
    /// Megabits per second.
    #[serde(default)]
    pub mbps: Option<u64>,
}

/// "k times normal": an exponentially weighted moving average of each
/// host's total rate per direction, learned from one-second samples while
/// no attack is open on it. Once warmed up, the host's `total_volume`
/// threshold becomes `factor` times its average (never below `min_pps` /
/// `min_mbps`) instead of the static one. Costs 24 bytes per host and
/// direction.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Multiple of the normal rate that starts an attack. Default 5.
    pub factor: f64,
    /// Half-life of the average, seconds. Default 300.
    pub half_life_secs: u64,
    /// Seconds of samples before the baseline is used. Default 60.
    pub warmup_secs: u64,
    /// Floor of the learned packet threshold. Default 1,000.
    pub min_pps: u64,
    /// Floor of the learned bit-rate threshold, Mbit/s. Default 10.
    pub min_mbps: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            factor: 5.0,
            half_life_secs: 300,
            warmup_secs: 60,
            min_pps: 1_000,
            min_mbps: 10,
        }
    }
}

/// Leak detector settings (`[leak]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeakConfig {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// Seconds of capture time without packets after which a flow is
    /// closed and its pending incidents emitted. Default 60.
    pub flow_timeout_secs: u64,
    /// Most TCP/UDP flows tracked at once (each costs about 400 bytes
    /// plus its buffers). When full the oldest tenth is closed early
    /// (incidents are emitted, not lost) and counted as `flows_evicted`.
    /// Default 100,000.
    pub max_flows: usize,
    /// Most bytes buffered out of order per TCP direction while waiting
    /// for a missing segment; when hit the hole is skipped (counted as a
    /// gap). More tolerates more loss and reordering at more memory.
    /// Default 262,144 (256 KiB).
    pub reassembly_stream_bytes: usize,
    /// Most out-of-order segments buffered per TCP direction. Default 256.
    pub reassembly_max_segments: usize,
    /// Most bytes buffered out of order by all flows together; when hit
    /// the stream that needs more skips its hole (counted). Default
    /// 67,108,864 (64 MiB).
    pub reassembly_memory_bytes: usize,
    /// Longest HTTP header block parsed; longer streams are scanned raw.
    /// Default 16,384.
    pub max_header_bytes: usize,
    /// Most bytes inflated per HTTP body (gzip/deflate); the rest of the
    /// body is not inflated (counted). Default 16,777,216 (16 MiB).
    pub max_decompressed_bytes: u64,
    /// Largest inflated/compressed ratio accepted before decompression
    /// stops (bomb guard, counted). Default 100.
    pub max_decompression_ratio: u64,
    /// Normalized bytes gathered per direction before a scan. Larger
    /// batches rescan the carried-over tail less often (faster) but hold
    /// more memory per flow. Default 16,384.
    pub scan_batch_bytes: usize,
    /// Most normalized bytes waiting to be scanned in all flows together.
    /// Above it a direction is scanned as soon as it gets new bytes
    /// instead of waiting for a full batch (counted as `early_scans`), so
    /// memory stays bounded however many flows are open. Default
    /// 67,108,864 (64 MiB).
    pub scan_memory_bytes: usize,
    /// Bounds of content extraction (`[leak.content]`): documents,
    /// archives and PDFs. Each cap hit is counted (`content_*_capped`).
    pub content: crate::content::ContentLimits,
}

impl Default for LeakConfig {
    fn default() -> Self {
        LeakConfig {
            enabled: true,
            flow_timeout_secs: 60,
            max_flows: 100_000,
            reassembly_stream_bytes: 256 * 1024,
            reassembly_max_segments: 256,
            reassembly_memory_bytes: 64 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_decompressed_bytes: 16 * 1024 * 1024,
            max_decompression_ratio: 100,
            scan_batch_bytes: 16 * 1024,
            scan_memory_bytes: 64 * 1024 * 1024,
            content: crate::content::ContentLimits::DEFAULT,
        }
    }
}

/// Where incidents go (`[collector]`); `--collector`/`--token` override.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Base URL of the collector, e.g. `http://127.0.0.1:9440`.
    pub url: String,
    /// Further collectors (same token and TLS files), tried in turn when
    /// the current one fails; they must share one ClickHouse store (or
    /// cluster). Default: none.
    #[serde(default)]
    pub fallback_urls: Vec<String>,
    /// Bearer token of this sensor.
    pub token: String,
    /// Incidents per HTTP request. Default 500.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Give up delivering a batch after this many seconds of retries.
    /// Default 60.
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
    /// For an `https://` URL: PEM file of the CA(s) to trust instead of the
    /// system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain to present when the collector asks for a
    /// client certificate.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl CollectorConfig {
    /// A collector at `url` with `token` and every other key at its
    /// default (as a `[collector]` section with only those two keys).
    pub fn new(url: &str, token: &str) -> Self {
        CollectorConfig {
            url: url.to_string(),
            fallback_urls: Vec::new(),
            token: token.to_string(),
            batch_size: default_batch(),
            retry_secs: default_retry_secs(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// The TLS files of this collector.
    pub fn tls_files(&self) -> crate::forward::endpoint::TlsFiles {
        crate::forward::endpoint::TlsFiles {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

fn default_batch() -> usize {
    500
}
fn default_retry_secs() -> u64 {
    60
}

/// A validated configuration, ready for the pipeline.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sensor name.
    pub name: String,
    /// Protected networks.
    pub protected: NetSet,
    /// Volumetric settings.
    pub volumetric: VolumetricConfig,
    /// Leak settings.
    pub leak: LeakConfig,
    /// Collector settings, if any.
    pub collector: Option<CollectorConfig>,
    /// Live capture settings.
    pub capture: CaptureConfig,
    /// Live-mode operation.
    pub run: RunConfig,
    /// Which tunnels are opened.
    pub decap: DecapConfig,
}

impl Config {
    /// Reads and parses a file (no validation yet).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&path.display().to_string(), &text)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// The built-in defaults (same as an empty file).
    pub fn defaults() -> Config {
        Config {
            name: None,
            protected_networks: None,
            volumetric: VolumetricConfig::default(),
            leak: LeakConfig::default(),
            collector: None,
            capture: CaptureConfig::default(),
            run: RunConfig::default(),
            decap: DecapConfig::default(),
        }
    }

    /// Checks ranges and resolves defaults. `origin` names the file in errors.
    pub fn validate(self, origin: &str) -> Result<Settings, ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            reason: reason.to_string(),
        };
        let name = match self.name {
            Some(n) => n,
            None => default_sensor_name(),
        };
        if name.is_empty() || name.len() > 128 {
            return Err(invalid("name", "must be 1 to 128 bytes"));
        }
        let protected = match &self.protected_networks {
            Some(nets) if nets.is_empty() => {
                return Err(invalid(
                    "protected_networks",
                    "must list at least one network",
                ))
            }
            Some(nets) => NetSet::new(nets),
            None => NetSet::private_defaults(),
        };
        self.decap
            .check()
            .map_err(|(key, reason)| invalid(key, reason))?;
        let v = &self.volumetric;
        validate_groups(&v.groups).map_err(|(key, reason)| invalid(key, &reason))?;
        if v.samples > 64 {
            return Err(invalid("volumetric.samples", "must be 0 to 64"));
        }
        if v.hold_secs == 0 || v.hold_secs > 3600 {
            return Err(invalid("volumetric.hold_secs", "must be 1 to 3600"));
        }
        if v.max_hosts == 0 {
            return Err(invalid("volumetric.max_hosts", "must be at least 1"));
        }
        if v.top_sources == 0 || v.top_sources > 1024 {
            return Err(invalid("volumetric.top_sources", "must be 1 to 1024"));
        }
        let n = &v.networks;
        if !(8..=32).contains(&n.ipv4_prefix) {
            return Err(invalid(
                "volumetric.networks.ipv4_prefix",
                "must be 8 to 32",
            ));
        }
        if n.ipv6_prefixes.len() > 4 || n.ipv6_prefixes.iter().any(|l| !(16..=128).contains(l)) {
            return Err(invalid(
                "volumetric.networks.ipv6_prefixes",
                "at most 4 lengths, each 16 to 128",
            ));
        }
        if n.min_hosts == 0 {
            return Err(invalid(
                "volumetric.networks.min_hosts",
                "must be at least 1",
            ));
        }
        if n.max_host_share_percent == 0 || n.max_host_share_percent > 100 {
            return Err(invalid(
                "volumetric.networks.max_host_share_percent",
                "must be 1 to 100",
            ));
        }
        if n.max_prefixes == 0 {
            return Err(invalid(
                "volumetric.networks.max_prefixes",
                "must be at least 1",
            ));
        }
        if n.top_hosts == 0 || n.top_hosts > 64 {
            return Err(invalid("volumetric.networks.top_hosts", "must be 1 to 64"));
        }
        if self.leak.max_flows == 0 {
            return Err(invalid("leak.max_flows", "must be at least 1"));
        }
        if self.leak.flow_timeout_secs == 0 {
            return Err(invalid("leak.flow_timeout_secs", "must be at least 1"));
        }
        let l = &self.leak;
        if l.reassembly_max_segments == 0 || l.reassembly_max_segments > 65_536 {
            return Err(invalid(
                "leak.reassembly_max_segments",
                "must be 1 to 65536",
            ));
        }
        if l.reassembly_stream_bytes > l.reassembly_memory_bytes {
            return Err(invalid(
                "leak.reassembly_stream_bytes",
                "must not exceed leak.reassembly_memory_bytes",
            ));
        }
        if !(1024..=1024 * 1024).contains(&l.max_header_bytes) {
            return Err(invalid("leak.max_header_bytes", "must be 1024 to 1048576"));
        }
        if l.max_decompression_ratio == 0 {
            return Err(invalid(
                "leak.max_decompression_ratio",
                "must be at least 1",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&l.scan_batch_bytes) {
            return Err(invalid("leak.scan_batch_bytes", "must be 1024 to 16777216"));
        }
        if l.scan_memory_bytes < l.scan_batch_bytes {
            return Err(invalid(
                "leak.scan_memory_bytes",
                "must be at least leak.scan_batch_bytes",
            ));
        }
        validate_content(&l.content).map_err(|(key, why)| invalid(key, why))?;
        if let Some(c) = &self.collector {
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return Err(invalid(
                    "collector.url",
                    "must start with http:// or https://",
                ));
            }
            if c.fallback_urls.len() > 16
                || c.fallback_urls
                    .iter()
                    .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                return Err(invalid(
                    "collector.fallback_urls",
                    "at most 16 URLs, each starting with http:// or https://",
                ));
            }
            if c.fallback_urls.iter().any(|u| !u.starts_with("https://"))
                && !c.tls_files().is_empty()
            {
                return Err(invalid(
                    "collector.fallback_urls",
                    "TLS files need https:// urls",
                ));
            }
            if c.batch_size == 0 || c.batch_size > 10_000 {
                return Err(invalid("collector.batch_size", "must be 1 to 10000"));
            }
            if !c.url.starts_with("https://") && !c.tls_files().is_empty() {
                return Err(invalid(
                    "collector.ca_file",
                    "TLS files need an https:// url",
                ));
            }
            if c.client_cert.is_some() != c.client_key.is_some() {
                return Err(invalid(
                    "collector.client_cert",
                    "client_cert and client_key go together",
                ));
            }
        }
        let cap = &self.capture;
        if cap.workers == 0 || cap.workers > 64 {
            return Err(invalid("capture.workers", "must be 1 to 64"));
        }
        if cap.snaplen < 64 || cap.snaplen > 262_144 {
            return Err(invalid("capture.snaplen", "must be 64 to 262144"));
        }
        if cap.buffer_mib == 0 || cap.buffer_mib > 4096 {
            return Err(invalid("capture.buffer_mib", "must be 1 to 4096"));
        }
        if self.run.spool_max_mib == 0 {
            return Err(invalid("run.spool_max_mib", "must be at least 1"));
        }
        Ok(Settings {
            name,
            protected,
            volumetric: self.volumetric,
            leak: self.leak,
            collector: self.collector,
            capture: self.capture,
            run: self.run,
            decap: self.decap,
        })
    }
}

/// Checks `[[volumetric.groups]]`; the error names the key and why.
/// Checks `[leak.content]`: every bound at least 1 (0 would turn a kind
/// of extraction off without saying so), nesting at most 16 levels, and a
/// PDF no larger than the memory all flows share.
fn validate_content(c: &crate::content::ContentLimits) -> Result<(), (&'static str, &'static str)> {
    let positive: [(&'static str, u64); 8] = [
        ("leak.content.max_file_bytes", c.max_file_bytes),
        ("leak.content.max_flow_bytes", c.max_flow_bytes),
        ("leak.content.max_ratio", c.max_ratio),
        ("leak.content.max_entries", c.max_entries as u64),
        ("leak.content.max_memory_bytes", c.max_memory_bytes as u64),
        ("leak.content.max_pdf_bytes", c.max_pdf_bytes as u64),
        (
            "leak.content.max_pdf_decoded_bytes",
            c.max_pdf_decoded_bytes,
        ),
        ("leak.content.max_pdf_objects", c.max_pdf_objects as u64),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err((key, "must be at least 1"));
    }
    if !(1..=16).contains(&c.max_depth) {
        return Err(("leak.content.max_depth", "must be 1 to 16"));
    }
    if c.max_pdf_bytes > c.max_memory_bytes {
        return Err((
            "leak.content.max_pdf_bytes",
            "must not exceed leak.content.max_memory_bytes",
        ));
    }
    Ok(())
}

fn validate_groups(groups: &[HostGroupConfig]) -> Result<(), (&'static str, String)> {
    use crate::detect::volumetric::vector::Vector;
    let mut names = std::collections::BTreeSet::new();
    for g in groups {
        if g.name.is_empty() || g.name.len() > 64 {
            return Err(("volumetric.groups.name", "must be 1 to 64 bytes".into()));
        }
        if !names.insert(g.name.as_str()) {
            return Err((
                "volumetric.groups.name",
                format!("`{}` is listed twice", g.name),
            ));
        }
        if g.networks.is_empty() {
            return Err((
                "volumetric.groups.networks",
                format!("group `{}` must list at least one network", g.name),
            ));
        }
        let positive = |v: Option<u64>| v.is_none_or(|x| x > 0);
        if !positive(g.pps) || !positive(g.mbps) {
            return Err((
                "volumetric.groups.pps",
                format!("group `{}`: thresholds must be at least 1", g.name),
            ));
        }
        let aggregates = [("prefix", &g.prefix), ("network", &g.network)];
        for (what, a) in aggregates {
            let Some(a) = a else { continue };
            let bad_vector = a.vectors.keys().find(|n| Vector::from_name(n).is_none());
            if let Some(name) = bad_vector {
                return Err((
                    "volumetric.groups.vectors",
                    format!("group `{}`, {what}: unknown vector `{name}`", g.name),
                ));
            }
            let all_positive = positive(a.pps)
                && positive(a.mbps)
                && a.vectors
                    .values()
                    .all(|t| positive(t.pps) && positive(t.mbps));
            if !all_positive {
                return Err((
                    "volumetric.groups.pps",
                    format!("group `{}`, {what}: thresholds must be at least 1", g.name),
                ));
            }
        }
        for (name, t) in &g.vectors {
            if Vector::from_name(name).is_none() {
                return Err((
                    "volumetric.groups.vectors",
                    format!("group `{}`: unknown vector `{name}`", g.name),
                ));
            }
            if !positive(t.pps) || !positive(t.mbps) {
                return Err((
                    "volumetric.groups.vectors",
                    format!(
                        "group `{}`, `{name}`: thresholds must be at least 1",
                        g.name
                    ),
                ));
            }
        }
        if let Some(b) = &g.baseline {
            if !(b.factor.is_finite() && b.factor > 1.0 && b.factor <= 1000.0) {
                return Err((
                    "volumetric.groups.baseline.factor",
                    format!("group `{}`: must be over 1 and at most 1000", g.name),
                ));
            }
            if b.half_life_secs == 0 || b.min_pps == 0 || b.min_mbps == 0 {
                return Err((
                    "volumetric.groups.baseline",
                    format!(
                        "group `{}`: half_life_secs, min_pps and min_mbps must be at least 1",
                        g.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn default_sensor_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sensor".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let s = Config::from_toml("t", "").unwrap().validate("t").unwrap();
        assert!(s.volumetric.groups.is_empty());
        assert_eq!(DEFAULT_PPS, 20_000);
        assert!(s.protected.contains("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let err = Config::from_toml("t.toml", "[volumetric]\nhold_sec = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.toml"), "{msg}");
        assert!(msg.contains("hold_sec"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../../deploy/sensor.example.toml");
        let s = Config::from_toml("sensor.example.toml", text)
            .unwrap()
            .validate("sensor.example.toml")
            .unwrap();
        assert_eq!(s.name, "sensor-1");
        assert_eq!(
            s.volumetric.hold_secs,
            VolumetricConfig::default().hold_secs
        );
    }

    #[test]
    fn content_limits_are_read_from_leak_content_and_checked() {
        let s = Config::from_toml(
            "t",
            "[leak.content]\nmax_depth = 1\nmax_pdf_bytes = 1048576\n",
        )
        .unwrap()
        .validate("t")
        .unwrap();
        assert_eq!(s.leak.content.max_depth, 1);
        assert_eq!(s.leak.content.max_pdf_bytes, 1 << 20);
        assert_eq!(
            s.leak.content.max_entries,
            crate::content::ContentLimits::DEFAULT.max_entries
        );
        for (toml, key) in [
            ("max_depth = 0", "leak.content.max_depth"),
            ("max_depth = 17", "leak.content.max_depth"),
            ("max_entries = 0", "leak.content.max_entries"),
            ("max_ratio = 0", "leak.content.max_ratio"),
            (
                "max_pdf_bytes = 2000\nmax_memory_bytes = 1000",
                "leak.content.max_pdf_bytes",
            ),
        ] {
            let msg = group_error(&format!("[leak.content]\n{toml}\n"));
            assert!(msg.contains(key), "{toml}: {msg}");
        }
        let err = Config::from_toml("t.toml", "[leak.content]\nmax_members = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_members"), "{err}");
    }

    #[test]
    fn bad_cidr_is_rejected() {
        assert!(Config::from_toml("t", "protected_networks = [\"10.0.0.0/33\"]").is_err());
    }

    fn group_error(toml: &str) -> String {
        Config::from_toml("t", toml)
            .and_then(|c| c.validate("t"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn zero_threshold_is_rejected() {
        let msg = group_error(
            "[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n[volumetric.groups.vectors]\nsyn_flood = { pps = 0 }",
        );
        assert!(msg.contains("syn_flood"), "{msg}");
    }

    #[test]
    fn unknown_vector_name_is_rejected() {
        let msg = group_error(
            "[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n[volumetric.groups.vectors]\nsyn_flod = { pps = 10 }",
        );
        assert!(msg.contains("unknown vector `syn_flod`"), "{msg}");
    }

    #[test]
    fn unknown_threshold_key_is_rejected_at_parse() {
        let msg = group_error(
            "[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n[volumetric.groups.vectors]\nsyn_flood = { kpps = 10 }",
        );
        assert!(msg.contains("kpps"), "{msg}");
    }

    #[test]
    fn duplicate_group_names_and_empty_networks_are_rejected() {
        let dup = "[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"fd00::/8\"]\n";
        assert!(group_error(dup).contains("listed twice"));
        let empty = "[[volumetric.groups]]\nname = \"a\"\nnetworks = []\n";
        assert!(group_error(empty).contains("at least one network"));
    }

    #[test]
    fn collector_tls_files_need_https_and_come_in_pairs() {
        let base = "[collector]\ntoken = \"t\"\n";
        let https = format!(
            "{base}url = \"https://c:9440\"\nca_file = \"/etc/shaobing/ca.pem\"\nclient_cert = \"c.pem\"\nclient_key = \"c.key\"\n"
        );
        let s = Config::from_toml("t", &https)
            .unwrap()
            .validate("t")
            .unwrap();
        let files = s.collector.unwrap().tls_files();
        assert_eq!(
            files.ca_file.as_deref(),
            Some(Path::new("/etc/shaobing/ca.pem"))
        );
        assert_eq!(files.client_key.as_deref(), Some(Path::new("c.key")));

        let http = format!("{base}url = \"http://c:9440\"\nca_file = \"ca.pem\"\n");
        assert!(group_error(&http).contains("need an https:// url"));
        let half = format!("{base}url = \"https://c:9440\"\nclient_cert = \"c.pem\"\n");
        assert!(group_error(&half).contains("client_cert and client_key go together"));
    }

    #[test]
    fn readme_tuning_example_is_valid() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Tuning volumetric thresholds")
            .nth(1)
            .unwrap();
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|t| t.split("```").next())
            .unwrap();
        let s = Config::from_toml("README.md", toml)
            .unwrap()
            .validate("README.md")
            .unwrap();
        let g = &s.volumetric.groups[0];
        assert_eq!(g.name, "web");
        assert_eq!(g.vectors["syn_flood"].pps, Some(10_000));
        let b = g.baseline.unwrap();
        assert_eq!((b.factor, b.min_pps), (5.0, 5_000));
        assert_eq!(b.warmup_secs, BaselineConfig::default().warmup_secs);
    }

    #[test]
    fn baseline_factor_must_exceed_one() {
        let msg = group_error(
            "[[volumetric.groups]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nbaseline = { factor = 1.0 }",
        );
        assert!(msg.contains("baseline.factor"), "{msg}");
    }
}
