//! Sensor configuration: a TOML file, parsed strictly and validated once.
//!
//! Every section and key is optional; an empty file (or no `--config`) gives
//! the defaults documented on each field and in the README.

use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

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
}

/// Volumetric detector settings (`[volumetric]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumetricConfig {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// SYN packets per second to one protected host that start a
    /// `syn_flood` attack. Default 20,000 (FastNetMon's per-host default).
    pub syn_flood_pps: u64,
    /// Seconds the rate must stay under the threshold before
    /// `attack_ended` (hysteresis). Default 5.
    pub hold_secs: u64,
    /// Seconds between `attack_update` events of an ongoing attack; 0
    /// turns updates off. Default 10.
    pub update_secs: u64,
    /// Most protected hosts tracked at once. Hosts beyond it are not
    /// tracked (counted as `hosts_untracked`); idle hosts are evicted
    /// first. Each costs about 200 bytes. Default 1,000,000.
    pub max_hosts: usize,
    /// Top sources kept per suspect host (Space-Saving sketch size). Each
    /// slot costs about 40 bytes, only on hosts above half the threshold.
    /// Default 32.
    pub top_sources: usize,
}

impl Default for VolumetricConfig {
    fn default() -> Self {
        VolumetricConfig {
            enabled: true,
            syn_flood_pps: 20_000,
            hold_secs: 5,
            update_secs: 10,
            max_hosts: 1_000_000,
            top_sources: 32,
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
    /// Most flows with matches tracked at once. When full the oldest flow
    /// is closed early (its incidents are emitted, not lost) and counted as
    /// `flows_evicted`. Default 100,000.
    pub max_flows: usize,
}

impl Default for LeakConfig {
    fn default() -> Self {
        LeakConfig {
            enabled: true,
            flow_timeout_secs: 60,
            max_flows: 100_000,
        }
    }
}

/// Where incidents go (`[collector]`); `--collector`/`--token` override.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Base URL of the collector, e.g. `http://127.0.0.1:9440`.
    pub url: String,
    /// Bearer token of this sensor.
    pub token: String,
    /// Incidents per HTTP request. Default 500.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Give up delivering a batch after this many seconds of retries.
    /// Default 60.
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
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
        let v = &self.volumetric;
        if v.syn_flood_pps == 0 {
            return Err(invalid("volumetric.syn_flood_pps", "must be at least 1"));
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
        if self.leak.max_flows == 0 {
            return Err(invalid("leak.max_flows", "must be at least 1"));
        }
        if self.leak.flow_timeout_secs == 0 {
            return Err(invalid("leak.flow_timeout_secs", "must be at least 1"));
        }
        if let Some(c) = &self.collector {
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return Err(invalid(
                    "collector.url",
                    "must start with http:// or https://",
                ));
            }
            if c.batch_size == 0 || c.batch_size > 10_000 {
                return Err(invalid("collector.batch_size", "must be 1 to 10000"));
            }
        }
        Ok(Settings {
            name,
            protected,
            volumetric: self.volumetric,
            leak: self.leak,
            collector: self.collector,
        })
    }
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
        assert_eq!(s.volumetric.syn_flood_pps, 20_000);
        assert!(s.protected.contains("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let err = Config::from_toml("t.toml", "[volumetric]\nsyn_flod_pps = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.toml"), "{msg}");
        assert!(msg.contains("syn_flod_pps"), "{msg}");
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
    fn bad_cidr_is_rejected() {
        assert!(Config::from_toml("t", "protected_networks = [\"10.0.0.0/33\"]").is_err());
    }

    #[test]
    fn zero_threshold_is_rejected() {
        let err = Config::from_toml("t", "[volumetric]\nsyn_flood_pps = 0")
            .unwrap()
            .validate("t")
            .unwrap_err();
        assert!(err.to_string().contains("syn_flood_pps"));
    }
}
