//! HyperLogLog distinct counting (Flajolet, Fusy, Gandouet, Meunier 2007),
//! with the linear-counting correction for small cardinalities.

use super::fasthash::{hash_key, ip_key};
use std::net::IpAddr;

/// Index bits: 2^10 = 1,024 one-byte registers, standard error
/// 1.04 / √1024 ≈ 3.3 %.
const P: u32 = 10;
const M: usize = 1 << P;

/// An estimate of the number of distinct addresses added, in 1 KiB
/// whatever their number.
#[derive(Clone)]
pub struct HyperLogLog {
    registers: Box<[u8; M]>,
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HyperLogLog(~{})", self.estimate())
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: Box::new([0; M]),
        }
    }
}

impl HyperLogLog {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an address.
    #[inline]
    pub fn add_ip(&mut self, ip: IpAddr) {
        self.add_hash(hash_key(ip_key(ip), 0x484c_4c5f_7365_6564));
    }

    /// Adds a well-mixed 64-bit hash.
    #[inline]
    pub fn add_hash(&mut self, h: u64) {
        let idx = (h >> (64 - P)) as usize;
        // Rank of the first 1 bit in the remaining 54 bits (1-based); a
        // sentinel bit bounds it at 55.
        let rest = (h << P) | (1 << (P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(idx) {
            if rank > *r {
                *r = rank;
            }
        }
    }

    /// The estimated number of distinct items added.
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            sum += 1.0 / f64::from(1u32 << r.min(31));
            if r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn estimate_of(n: u32) -> u64 {
        let mut h = HyperLogLog::new();
        for i in 0..n {
            h.add_ip(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)));
        }
        h.estimate()
    }

    #[test]
    fn empty_sketch_estimates_zero() {
        assert_eq!(HyperLogLog::new().estimate(), 0);
    }

    #[test]
    fn small_counts_are_nearly_exact() {
        for n in [1u32, 5, 50] {
            let e = estimate_of(n) as f64;
            assert!(
                (e - f64::from(n)).abs() <= f64::from(n) * 0.05 + 1.0,
                "{n}: {e}"
            );
        }
    }

    #[test]
    fn large_counts_are_within_ten_percent() {
        for n in [10_000u32, 200_000] {
            let e = estimate_of(n) as f64;
            assert!((e / f64::from(n) - 1.0).abs() < 0.10, "{n}: {e}");
        }
    }

    #[test]
    fn repeated_items_count_once() {
        let mut h = HyperLogLog::new();
        for _ in 0..1000 {
            h.add_ip("10.0.0.1".parse().unwrap());
            h.add_ip("fd00::1".parse().unwrap());
        }
        assert_eq!(h.estimate(), 2);
    }
}
