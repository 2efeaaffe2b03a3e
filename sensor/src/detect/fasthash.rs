//! A fast, non-cryptographic hasher for the detectors' hot tables.
//!
//! The standard library's SipHash resists hash flooding but costs tens of
//! nanoseconds per key; per-packet tables (hosts, heavy hitters) need
//! something cheaper. Keys here are addresses and ports chosen by the
//! sender, so the hasher is seeded per table ([`FastState::new`] takes a
//! seed) and every table is capped, which bounds the damage a crafted
//! collision set can do to one slow table, never unbounded memory.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Finalises 64 bits (the SplitMix64 / Murmur3 mixer): every input bit
/// affects every output bit, as HyperLogLog and hash tables need.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An address as one 128-bit key: IPv4 as its IPv4-mapped IPv6 form.
#[inline]
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address back from [`ip_key`] (mapped IPv6 becomes IPv4).
#[inline]
pub fn key_ip(key: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// A 64-bit hash of an address key, well mixed.
#[inline]
pub fn hash_key(key: u128, seed: u64) -> u64 {
    let hi = (key >> 64) as u64;
    // IPv4 keys (mapped) have no high half: with a constant seed the inner
    // mix is then a constant too, and the compiler folds it.
    let inner = if hi == 0 {
        mix64(seed)
    } else {
        mix64(hi ^ seed)
    };
    mix64((key as u64) ^ inner)
}

/// Multiply-rotate hasher (FxHash style) with a final mix.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.h = (self.h.rotate_left(5) ^ x).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.h)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            for (d, s) in b.iter_mut().zip(rest) {
                *d = *s;
            }
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// Builds [`FastHasher`]s starting from a seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastState {
    seed: u64,
}

impl FastState {
    /// A state whose hashers start from `seed`.
    pub fn new(seed: u64) -> Self {
        FastState { seed }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// A seed that differs per process (drawn from the standard library's
/// random hash keys), for tables whose keys a sender chooses: a collision
/// set crafted against one run does not carry over to the next.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_round_trip_for_both_families() {
        for s in ["10.0.0.1", "255.255.255.255", "fd00::1", "2001:db8::ffff"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(key_ip(ip_key(ip)), ip);
        }
    }

    #[test]
    fn neighbouring_addresses_hash_far_apart() {
        let a = hash_key(ip_key("10.0.0.1".parse().unwrap()), 0);
        let b = hash_key(ip_key("10.0.0.2".parse().unwrap()), 0);
        assert!((a ^ b).count_ones() > 16, "{a:x} {b:x}");
    }
}
