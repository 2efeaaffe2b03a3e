//! Collector configuration: a TOML file, `deny_unknown_fields`, validated once
//! by [`Config::parse`] / [`Config::load`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown/mistyped keys.
    #[error("invalid config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

pub(crate) fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on (`serve`), e.g. `127.0.0.1:9440`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where incidents are stored.
    pub clickhouse: ClickHouseConfig,
    /// Write batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Sensors allowed to post, each with the SHA-256 of its token.
    #[serde(default)]
    pub sensors: Vec<SensorConfig>,
    /// Analysts allowed to query (`GET /api/v1/...`, `/metrics`); they
    /// cannot ingest.
    #[serde(default)]
    pub analysts: Vec<AnalystConfig>,
    /// Retries of failed ClickHouse inserts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The write-ahead log (off unless `[wal]` is present).
    #[serde(default)]
    pub wal: Option<WalConfig>,
    /// Where batches ClickHouse refused as bad data are written.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Dropping old day partitions.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Serve HTTPS instead of HTTP (off unless `[tls]` is present).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The web console: sessions and sensor staleness.
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// Alert routing (`[alerts]`, `[[alerts.destinations]]`,
    /// `[[alerts.rules]]`); off without rules.
    #[serde(default)]
    pub alerts: crate::alerts::config::AlertsConfig,
    /// Mitigation over BGP (`[mitigation]`); off by default.
    #[serde(default)]
    pub mitigation: crate::mitigation::config::MitigationConfig,
}

/// `[tls]`: serve HTTPS (rustls) on `listen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificate(s) for client certificates. When set, sensors
    /// must present a certificate issued by it (in addition to their token)
    /// to use the ingest endpoints; analysts may connect without one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[[analysts]]`: one analyst (or dashboard) allowed to query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalystConfig {
    /// Name, for logs (1..=128 bytes, unique among analysts).
    pub name: String,
    /// Hex SHA-256 of the analyst's bearer token; must differ from every
    /// other sensor's and analyst's hash.
    pub token_sha256: String,
}

/// `[retry]`: capped, jittered exponential backoff for transient
/// ClickHouse errors.
///
/// A batch written directly is tried `max_attempts` times (the sensor waits
/// meanwhile); then it goes to the WAL if one is configured, else the
/// requests get 503. WAL replay retries forever with the same backoff.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts of a direct insert before giving up (1..=100).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First backoff in milliseconds (1..=60000); doubled each attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Backoff cap in milliseconds (initial..=600000). Each wait is drawn
    /// uniformly from [backoff/2, backoff] (jitter).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_max_attempts() -> u32 {
    3
}
fn default_initial_backoff_ms() -> u64 {
    100
}
fn default_max_backoff_ms() -> u64 {
    5000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl RetryConfig {
    /// The wait before attempt `attempt + 1` (attempt counts from 0):
    /// `min(initial * 2^attempt, max)`, jittered into its upper half.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(30))
            .min(self.max_backoff_ms);
        let low = exp / 2;
        Duration::from_millis(fastrand::u64(low..=exp))
    }
}

/// `[wal]`: the collector's write-ahead log (see `store::wal`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// Size cap in bytes (1 MiB..=1 TiB). Full policy: a batch that does not
    /// fit is not acknowledged (503), so sensors keep it in their spool;
    /// nothing is dropped.
    #[serde(default = "default_wal_max_bytes")]
    pub max_bytes: u64,
    /// Segment size in bytes (64 KiB..=1 GiB): a segment is deleted once all
    /// of it is stored. Replay holds one segment in memory.
    #[serde(default = "default_wal_segment_bytes")]
    pub segment_bytes: u64,
    /// fsync (`fdatasync`) every append before acknowledging (default
    /// true). Off trades durability on power loss for latency.
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_wal_max_bytes() -> u64 {
    1 << 30
}
fn default_wal_segment_bytes() -> u64 {
    16 << 20
}
fn default_true() -> bool {
    true
}

/// `[dead_letter]`: batches ClickHouse rejected as bad data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// NDJSON file, appended to: one line per incident with the reason.
    #[serde(default = "default_dead_letter_path")]
    pub path: PathBuf,
}

fn default_dead_letter_path() -> PathBuf {
    PathBuf::from("shaobing-dead-letter.ndjson")
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: default_dead_letter_path(),
        }
    }
}

/// `[retention]`: day partitions older than this are dropped (ClickHouse
/// 18.16 has no TTL). 0 keeps data forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of `incidents` to keep, by capture day (0..=36500; 0 = forever).
    #[serde(default)]
    pub incidents_days: u32,
    /// Days of `sensor_heartbeats` to keep, by receive day (0..=36500).
    #[serde(default = "default_heartbeats_days")]
    pub heartbeats_days: u32,
    /// Seconds between retention passes (60..=86400); the first runs at
    /// start-up.
    #[serde(default = "default_retention_interval_s")]
    pub interval_s: u64,
    /// Seconds between compaction passes (60..=86400): today's partition
    /// (and any day with new parts) merged and its merged part
    /// pre-aggregated, so that summaries read raw only what arrived since
    /// the last pass. The first runs at start-up.
    #[serde(default = "default_compact_interval_s")]
    pub compact_interval_s: u64,
}

fn default_compact_interval_s() -> u64 {
    300
}

fn default_heartbeats_days() -> u32 {
    30
}
fn default_retention_interval_s() -> u64 {
    3600
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            incidents_days: 0,
            heartbeats_days: default_heartbeats_days(),
            interval_s: default_retention_interval_s(),
            compact_interval_s: default_compact_interval_s(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9440))
}

/// `[clickhouse]`: the server and database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL of the server, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding the `incidents` table (an identifier:
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes).
    #[serde(default = "default_database")]
    pub database: String,
    /// User name.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password (empty for none).
    #[serde(default)]
    pub password: String,
    /// Upper bound for one insert or query, in milliseconds (1..=600000).
    /// A flush that takes longer fails and its requests get 503.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Run pending migrations when `serve` starts (default false: run
    /// `shaobing-collector migrate`).
    #[serde(default)]
    pub migrate_on_start: bool,
    /// Compression of inserts and query results on the wire: `lz4`
    /// (default; less network, some CPU on both ends) or `none` (best when
    /// ClickHouse runs on the same host: saves CPU on both ends).
    #[serde(default)]
    pub compression: Compression,
    /// Cluster mode: the name of a cluster in the servers'
    /// `<remote_servers>` (an identifier). `migrate` then creates the
    /// schema `ON CLUSTER` as replicated tables under `Distributed` ones
    /// (`store::cluster`). Default: none (one server).
    #[serde(default)]
    pub cluster: Option<String>,
}

/// `clickhouse.compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// LZ4 blocks.
    #[default]
    Lz4,
    /// Plain RowBinary.
    None,
}

fn default_database() -> String {
    "shaobing".to_string()
}
fn default_user() -> String {
    "default".to_string()
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// `[batch]`: how the writer groups rows into inserts.
///
/// Larger batches mean fewer, more efficient ClickHouse parts but a longer
/// wait before a sensor's request is answered; memory held is at most
/// `queue_batches` requests (each at most `limits.max_body_bytes`) plus the
/// pending rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Flush when this many rows are pending (1..=1000000).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Flush when the oldest pending row has waited this long, in
    /// milliseconds (1..=60000). This is the added latency of a request.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Capacity of the queue of accepted requests waiting for the writer
    /// (1..=1000000). Full policy: a request waits up to `enqueue_timeout_ms`
    /// for room, then gets 503 (the sensor retries later).
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// How long a request waits for room in a full queue before 503, in
    /// milliseconds (0..=60000).
    #[serde(default = "default_enqueue_timeout_ms")]
    pub enqueue_timeout_ms: u64,
    /// Inserts in flight at once (1..=64). More overlaps request parsing,
    /// network and ClickHouse work (higher throughput) at the cost of more
    /// concurrent parts being written and up to this many batches in memory.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    /// Group commit: when no insert is running, flush what is pending at
    /// once instead of waiting for `max_rows` or `max_delay_ms`; requests
    /// that arrive during an insert are grouped into the next one. Sensors
    /// wait for their acknowledgement before sending more, so when fewer
    /// than `max_rows` rows can be outstanding, waiting for the deadline
    /// only adds latency and caps throughput. Costs more, smaller inserts
    /// (parts) under light load; `false` batches strictly by size and time.
    #[serde(default = "default_flush_when_idle")]
    pub flush_when_idle: bool,
}

fn default_max_inflight() -> usize {
    2
}

fn default_flush_when_idle() -> bool {
    true
}

fn default_max_rows() -> usize {
    5000
}
fn default_max_delay_ms() -> u64 {
    200
}
fn default_queue_batches() -> usize {
    1024
}
fn default_enqueue_timeout_ms() -> u64 {
    1000
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: default_max_rows(),
            max_delay_ms: default_max_delay_ms(),
            queue_batches: default_queue_batches(),
            enqueue_timeout_ms: default_enqueue_timeout_ms(),
            max_inflight: default_max_inflight(),
            flush_when_idle: default_flush_when_idle(),
        }
    }
}

impl BatchConfig {
    /// `max_delay_ms` as a duration.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
    /// `enqueue_timeout_ms` as a duration.
    pub fn enqueue_timeout(&self) -> Duration {
        Duration::from_millis(self.enqueue_timeout_ms)
    }
}

/// `[limits]`: what one request may carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes (1..=1 GiB); larger gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most incidents in one request (1..=1000000); more gets 413.
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// Largest expansion of a gzip body (1..=10000): decompression stops at
    /// `min(max_body_bytes, compressed size * max_gzip_ratio)` bytes and the
    /// request gets 413. Realistic incident batches compress 10-30x.
    #[serde(default = "default_max_gzip_ratio")]
    pub max_gzip_ratio: u64,
    /// Most HTTP connections open at once (1..=1000000); further clients
    /// wait in the listen backlog. Keep it under the open-file limit
    /// (`ulimit -n`) minus what the WAL and ClickHouse client need.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest wait, in milliseconds, for a complete request head after
    /// connecting or after the previous response (100..=600000); the
    /// connection is closed after it.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
}

fn default_max_connections() -> usize {
    512
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

fn default_max_gzip_ratio() -> u64 {
    100
}

fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_max_items() -> usize {
    10_000
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: default_max_body_bytes(),
            max_items: default_max_items(),
            max_gzip_ratio: default_max_gzip_ratio(),
            max_connections: default_max_connections(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
        }
    }
}

/// `[[sensors]]`: one sensor allowed to post.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Name stored in each incident's `sensor` field (1..=128 bytes).
    pub name: String,
    /// Lower- or upper-case hex SHA-256 of the sensor's bearer token
    /// (`shaobing-collector hash-token`).
    pub token_sha256: String,
    /// With `tls.client_ca`: the name the sensor's client certificate must
    /// carry as its subject CN or a DNS subject-alternative name (ASCII
    /// case ignored). Default: `name`.
    #[serde(default)]
    pub cert_name: Option<String>,
}

impl SensorConfig {
    /// The name this sensor's client certificate must carry.
    pub fn cert_name(&self) -> &str {
        self.cert_name.as_deref().unwrap_or(&self.name)
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency. [`Config::parse`] calls it; call it
    /// yourself only for a config built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ch = &self.clickhouse;
        if !(ch.url.starts_with("http://") || ch.url.starts_with("https://")) {
            return Err(invalid(format!(
                "clickhouse.url must start with http:// or https://, got {:?}",
                ch.url
            )));
        }
        if ch.url.starts_with("https://") {
            return Err(invalid(
                "clickhouse.url: https is not supported by this build (no TLS); use http:// on a trusted network",
            ));
        }
        if !is_identifier(&ch.database) {
            return Err(invalid(format!(
                "clickhouse.database must match [A-Za-z_][A-Za-z0-9_]* (at most 64 bytes), got {:?}",
                ch.database
            )));
        }
        if let Some(c) = &ch.cluster {
            if !is_identifier(c) {
                return Err(invalid(format!(
                    "clickhouse.cluster must match [A-Za-z_][A-Za-z0-9_]* (at most 64 bytes), got {c:?}"
                )));
            }
        }
        if ch.user.is_empty() {
            return Err(invalid("clickhouse.user must not be empty"));
        }
        range("clickhouse.timeout_ms", ch.timeout_ms, 1, 600_000)?;
        let b = &self.batch;
        range("batch.max_rows", b.max_rows as u64, 1, 1_000_000)?;
        range("batch.max_delay_ms", b.max_delay_ms, 1, 60_000)?;
        range("batch.queue_batches", b.queue_batches as u64, 1, 1_000_000)?;
        range("batch.enqueue_timeout_ms", b.enqueue_timeout_ms, 0, 60_000)?;
        range("batch.max_inflight", b.max_inflight as u64, 1, 64)?;
        let l = &self.limits;
        range("limits.max_body_bytes", l.max_body_bytes as u64, 1, 1 << 30)?;
        range("limits.max_items", l.max_items as u64, 1, 1_000_000)?;
        range("limits.max_gzip_ratio", l.max_gzip_ratio, 1, 10_000)?;
        range(
            "limits.max_connections",
            l.max_connections as u64,
            1,
            1_000_000,
        )?;
        range(
            "limits.header_read_timeout_ms",
            l.header_read_timeout_ms,
            100,
            600_000,
        )?;

        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for (i, s) in self.sensors.iter().enumerate() {
            if s.name.is_empty() || s.name.len() > 128 {
                return Err(invalid(format!("sensors[{i}].name must be 1..=128 bytes")));
            }
            if !names.insert(s.name.as_str()) {
                return Err(invalid(format!(
                    "sensors[{i}]: duplicate name {:?}",
                    s.name
                )));
            }
            let hash = decode_token_hash(&s.token_sha256).ok_or_else(|| {
                invalid(format!(
                    "sensors[{i}] ({}): token_sha256 must be 64 hex digits (see `shaobing-collector hash-token`)",
                    s.name
                ))
            })?;
            if !hashes.insert(hash) {
                return Err(invalid(format!(
                    "sensors[{i}] ({}): token_sha256 is used by another sensor",
                    s.name
                )));
            }
            if let Some(c) = &s.cert_name {
                if c.is_empty() || c.len() > 255 || c.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "sensors[{i}] ({}): cert_name must be 1..=255 bytes without control characters",
                        s.name
                    )));
                }
                if self.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
                    return Err(invalid(format!(
                        "sensors[{i}] ({}): cert_name needs tls.client_ca (client certificates)",
                        s.name
                    )));
                }
            }
        }
        let mut analyst_names = HashSet::new();
        for (i, a) in self.analysts.iter().enumerate() {
            if a.name.is_empty() || a.name.len() > 128 {
                return Err(invalid(format!("analysts[{i}].name must be 1..=128 bytes")));
            }
            if !analyst_names.insert(a.name.as_str()) {
                return Err(invalid(format!(
                    "analysts[{i}]: duplicate name {:?}",
                    a.name
                )));
            }
            let hash = decode_token_hash(&a.token_sha256).ok_or_else(|| {
                invalid(format!(
                    "analysts[{i}] ({}): token_sha256 must be 64 hex digits (see `shaobing-collector hash-token`)",
                    a.name
                ))
            })?;
            if !hashes.insert(hash) {
                return Err(invalid(format!(
                    "analysts[{i}] ({}): token_sha256 is used by another sensor or analyst",
                    a.name
                )));
            }
        }
        let r = &self.retry;
        range("retry.max_attempts", u64::from(r.max_attempts), 1, 100)?;
        range("retry.initial_backoff_ms", r.initial_backoff_ms, 1, 60_000)?;
        range(
            "retry.max_backoff_ms",
            r.max_backoff_ms,
            r.initial_backoff_ms,
            600_000,
        )?;
        if let Some(w) = &self.wal {
            if w.dir.as_os_str().is_empty() {
                return Err(invalid("wal.dir must not be empty"));
            }
            range("wal.max_bytes", w.max_bytes, 1 << 20, 1 << 40)?;
            range("wal.segment_bytes", w.segment_bytes, 64 << 10, 1 << 30)?;
            if w.segment_bytes > w.max_bytes {
                return Err(invalid("wal.segment_bytes must not exceed wal.max_bytes"));
            }
        }
        if let Some(t) = &self.tls {
            if t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty() {
                return Err(invalid("tls.cert and tls.key must not be empty"));
            }
        }
        if self.dead_letter.path.as_os_str().is_empty() {
            return Err(invalid("dead_letter.path must not be empty"));
        }
        let ret = &self.retention;
        range(
            "retention.incidents_days",
            u64::from(ret.incidents_days),
            0,
            36_500,
        )?;
        range(
            "retention.heartbeats_days",
            u64::from(ret.heartbeats_days),
            0,
            36_500,
        )?;
        range("retention.interval_s", ret.interval_s, 60, 86_400)?;
        range(
            "retention.compact_interval_s",
            ret.compact_interval_s,
            60,
            86_400,
        )?;
        self.console.validate()?;
        self.alerts.validate().map_err(invalid)?;
        let analyst_names: Vec<&str> = self.analysts.iter().map(|a| a.name.as_str()).collect();
        self.mitigation.validate(&analyst_names).map_err(invalid)?;
        Ok(())
    }
}

/// Decodes a 64-hex-digit SHA-256.
pub(crate) fn decode_token_hash(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

pub(crate) fn range(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(format!("{name} must be in {lo}..={hi}, got {v}")));
    }
    Ok(())
}

/// Whether `s` is a plain SQL identifier (safe to splice into DDL).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn full() -> String {
        format!(
            r#"
listen = "127.0.0.1:9440"
[clickhouse]
url = "http://127.0.0.1:8123"
database = "shaobing"
user = "default"
password = ""
[batch]
max_rows = 5000
max_delay_ms = 200
queue_batches = 1024
[limits]
max_body_bytes = 16777216
max_items = 10000
[[sensors]]
name = "sensor-1"
token_sha256 = "{HASH}"
"#
        )
    }

    #[test]
    fn documented_example_parses() {
        let c = Config::parse(&full()).unwrap();
        assert_eq!(c.listen.port(), 9440);
        assert_eq!(c.batch.max_rows, 5000);
        assert_eq!(c.batch.enqueue_timeout_ms, 1000);
        assert_eq!(c.sensors[0].name, "sensor-1");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse("[clickhouse]\nurl = \"http://localhost:8123\"\n").unwrap();
        assert_eq!(c.clickhouse.database, "shaobing");
        assert_eq!(c.clickhouse.user, "default");
        assert_eq!(c.limits.max_items, 10_000);
        assert_eq!(c.batch.max_delay_ms, 200);
        assert!(c.sensors.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = full().replace("max_rows = 5000", "max_rows = 5000\nmax_rowz = 1");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("max_rowz"), "{err}");
    }

    #[test]
    fn database_name_must_be_an_identifier() {
        let text = full().replace("database = \"shaobing\"", "database = \"x; DROP\"");
        assert!(Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("database"));
    }

    #[test]
    fn zero_batch_rows_is_rejected() {
        let text = full().replace("max_rows = 5000", "max_rows = 0");
        assert!(Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("batch.max_rows"));
    }

    #[test]
    fn malformed_token_hash_is_rejected() {
        let text = full().replace(HASH, "abc");
        assert!(Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("token_sha256"));
    }

    #[test]
    fn duplicate_sensor_names_and_hashes_are_rejected() {
        let dup_name = format!(
            "{}\n[[sensors]]\nname = \"sensor-1\"\ntoken_sha256 = \"{}\"\n",
            full(),
            "0".repeat(64)
        );
        assert!(Config::parse(&dup_name)
            .unwrap_err()
            .to_string()
            .contains("duplicate name"));
        let dup_hash = format!(
            "{}\n[[sensors]]\nname = \"sensor-2\"\ntoken_sha256 = \"{}\"\n",
            full(),
            HASH.to_uppercase()
        );
        assert!(Config::parse(&dup_hash)
            .unwrap_err()
            .to_string()
            .contains("another sensor"));
    }

    #[test]
    fn non_http_url_is_rejected() {
        let text = full().replace("http://127.0.0.1:8123", "tcp://127.0.0.1:9000");
        assert!(Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("clickhouse.url"));
    }

    #[test]
    fn cert_name_defaults_to_the_name_and_needs_client_ca() {
        let c = Config::parse(&full()).unwrap();
        assert_eq!(c.sensors[0].cert_name(), "sensor-1");
        let sensor = |cert_name: &str| {
            format!(
                "\n[[sensors]]\nname = \"sensor-2\"\ntoken_sha256 = \"{}\"\ncert_name = \"{cert_name}\"\n",
                "0".repeat(64)
            )
        };
        let without_ca = format!("{}{}", full(), sensor("s2.example.gov"));
        assert!(Config::parse(&without_ca)
            .unwrap_err()
            .to_string()
            .contains("cert_name needs tls.client_ca"));
        let tls = "\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n";
        let with_ca = format!("{}{tls}{}", full(), sensor("s2.example.gov"));
        let c = Config::parse(&with_ca).unwrap();
        assert_eq!(c.sensors[1].cert_name(), "s2.example.gov");
        let empty = format!("{}{tls}{}", full(), sensor(""));
        assert!(Config::parse(&empty)
            .unwrap_err()
            .to_string()
            .contains("cert_name must be"));
    }
}
