//! Sensor authentication: bearer tokens checked against configured SHA-256
//! hashes in constant time.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::{decode_token_hash, SensorConfig};

/// Hex SHA-256 of a token, as `[[sensors]] token_sha256` expects it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The configured sensors, ready for lookups.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<([u8; 32], Arc<str>)>,
}

impl Tokens {
    /// Builds the table from validated sensor configs (entries whose hash
    /// does not decode are skipped; [`crate::Config::validate`] rejects them).
    pub fn new(sensors: &[SensorConfig]) -> Tokens {
        let entries = sensors
            .iter()
            .filter_map(|s| {
                Some((
                    decode_token_hash(&s.token_sha256)?,
                    Arc::from(s.name.as_str()),
                ))
            })
            .collect();
        Tokens { entries }
    }

    /// How many sensors are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no sensor is configured (every request is then rejected).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sensor name for an `Authorization` header value
    /// (`Bearer TOKEN`), or `None`.
    ///
    /// The token's hash is compared with every configured hash without
    /// early exit, so the time taken does not depend on which (if any)
    /// entry matches or on how many leading bytes agree.
    pub fn authenticate(&self, authorization: &str) -> Option<Arc<str>> {
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
        for (hash, name) in &self.entries {
            if constant_time_eq(hash, &digest) {
                found = Some(name.clone());
            }
        }
        found
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
            },
            SensorConfig {
                name: "b".into(),
                token_sha256: hash_token("beta").to_uppercase(),
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
    fn wrong_token_or_scheme_is_rejected() {
        let t = tokens();
        assert!(t.authenticate("Bearer gamma").is_none());
        assert!(t.authenticate("Basic alpha").is_none());
        assert!(t.authenticate("Bearer ").is_none());
        assert!(t.authenticate("alpha").is_none());
    }
}
