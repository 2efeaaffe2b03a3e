//! Authentication: bearer tokens checked against configured SHA-256 hashes
//! in constant time. Each token has one [`Role`]: sensors ingest, analysts
//! query; neither can do the other's job.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::{decode_token_hash, AnalystConfig, SensorConfig};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `POST /api/v1/incidents`, `POST /api/v1/heartbeat`.
    Sensor,
    /// `GET /api/v1/incidents`, `/summary`, `/attacks/..`, `/metrics`.
    Analyst,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Configured name (for sensors: stored with each incident).
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// Sensors: the name their client certificate must carry
    /// ([`SensorConfig::cert_name`]); analysts: their name (unused).
    pub cert_name: Arc<str>,
}

/// Hex SHA-256 of a token, as `[[sensors]] token_sha256` expects it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The configured sensors and analysts, ready for lookups.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<([u8; 32], Principal)>,
}

impl Tokens {
    /// Builds the table from validated sensor configs (entries whose hash
    /// does not decode are skipped; [`crate::Config::validate`] rejects them).
    pub fn new(sensors: &[SensorConfig]) -> Tokens {
        Tokens::with_analysts(sensors, &[])
    }

    /// Builds the table of sensors and analysts.
    pub fn with_analysts(sensors: &[SensorConfig], analysts: &[AnalystConfig]) -> Tokens {
        let s = sensors
            .iter()
            .map(|s| (&s.token_sha256, &s.name, s.cert_name(), Role::Sensor));
        let a = analysts
            .iter()
            .map(|a| (&a.token_sha256, &a.name, a.name.as_str(), Role::Analyst));
        let entries = s
            .chain(a)
            .filter_map(|(hash, name, cert_name, role)| {
                Some((
                    decode_token_hash(hash)?,
                    Principal {
                        name: Arc::from(name.as_str()),
                        role,
                        cert_name: Arc::from(cert_name),
                    },
                ))
            })
            .collect();
        Tokens { entries }
    }

    /// How many sensors are configured.
    pub fn sensors(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, p)| p.role == Role::Sensor)
            .count()
    }

    /// The configured sensors' names, in configuration order.
    pub fn sensor_names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, p)| p.role == Role::Sensor)
            .map(|(_, p)| p.name.to_string())
            .collect()
    }

    /// The caller for an `Authorization` header value, any role.
    pub fn principal(&self, authorization: &str) -> Option<Principal> {
        let (scheme, token) = authorization.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, p) in &self.entries {
            if constant_time_eq(hash, &digest) {
                found = Some(p.clone());
            }
        }
        found
    }

    /// How many sensors are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no sensor is configured (every request is then rejected).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sensor name for an `Authorization` header value (analysts' tokens
    /// give `None`)
    /// (`Bearer TOKEN`), or `None`.
    ///
    /// The token's hash is compared with every configured hash without
    /// early exit, so the time taken does not depend on which (if any)
    /// entry matches or on how many leading bytes agree.
    pub fn authenticate(&self, authorization: &str) -> Option<Arc<str>> {
        self.principal(authorization)
            .filter(|p| p.role == Role::Sensor)
            .map(|p| p.name)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            SensorConfig {
                name: "a".into(),
                token_sha256: hash_token("alpha"),
                cert_name: None,
            },
            SensorConfig {
                name: "b".into(),
                token_sha256: hash_token("beta").to_uppercase(),
                cert_name: None,
            },
        ])
    }

    #[test]
    fn hash_token_is_hex_sha256() {
        assert_eq!(
            hash_token("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn bearer_token_maps_to_its_sensor() {
        let t = tokens();
        assert_eq!(t.authenticate("Bearer alpha").as_deref(), Some("a"));
        assert_eq!(t.authenticate("bearer beta").as_deref(), Some("b"));
    }

    #[test]
    fn analyst_tokens_have_the_analyst_role_and_are_not_sensors() {
        let t = Tokens::with_analysts(
            &[SensorConfig {
                name: "a".into(),
                token_sha256: hash_token("alpha"),
                cert_name: None,
            }],
            &[AnalystConfig {
                name: "soc".into(),
                token_sha256: hash_token("omega"),
            }],
        );
        assert_eq!(
            t.principal("Bearer omega").map(|p| p.role),
            Some(Role::Analyst)
        );
        assert_eq!(
            t.principal("Bearer alpha").map(|p| p.role),
            Some(Role::Sensor)
        );
        assert!(t.authenticate("Bearer omega").is_none());
        assert_eq!(t.sensors(), 1);
    }

    #[test]
    fn wrong_token_or_scheme_is_rejected() {
        let t = tokens();
        assert!(t.authenticate("Bearer gamma").is_none());
        assert!(t.authenticate("Basic alpha").is_none());
        assert!(t.authenticate("Bearer ").is_none());
        assert!(t.authenticate("alpha").is_none());
    }
}
