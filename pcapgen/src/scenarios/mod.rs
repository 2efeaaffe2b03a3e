//! The scenario recipes, one per file, and helpers they share.

use std::net::Ipv4Addr;

use crate::rng::Rng;

pub mod floods;
pub mod http_leak;
pub mod syn_flood;
pub mod tunnels;

/// Whether `ip` is globally routable unicast: not in any private, shared,
/// loopback, link-local, documentation, benchmarking, multicast or
/// reserved range (RFC 6890), so spoofed sources never collide with the
/// protected 10.0.0.0/8 or the documentation ranges used for named hosts.
pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    const RESERVED: &[([u8; 4], u8)] = &[
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    let x = u32::from(ip);
    !RESERVED.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - u32::from(*len));
        x & mask == u32::from_be_bytes(*net) & mask
    })
}

/// A uniformly random public IPv4 address (see [`is_public_v4`]).
pub fn random_public_v4(rng: &mut Rng) -> Ipv4Addr {
    loop {
        let ip = Ipv4Addr::from(rng.next_u32());
        if is_public_v4(ip) {
            return ip;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_not_public() {
        for ip in [
            "10.0.0.10",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "100.100.0.1",
            "203.0.113.80",
            "198.51.100.7",
            "198.19.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            "169.254.1.1",
        ] {
            assert!(!is_public_v4(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(is_public_v4(ip.parse().unwrap()), "{ip}");
        }
    }
}
