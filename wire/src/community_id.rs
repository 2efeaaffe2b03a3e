//! Community ID v1 flow hashing (<https://github.com/corelight/community-id-spec>).
//!
//! The same flow gets the same id in Shaobing, Zeek and Suricata logs, so an
//! analyst can pivot between tools. The hash covers the seed, both addresses,
//! the IP protocol and, for TCP, UDP, SCTP, ICMP and ICMPv6, the ports (ICMP
//! type/code mapped as the spec says). The two endpoints are put in a fixed
//! order first, so both directions of a flow share one id.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// ICMP types that have a reply type; both map to each other (spec table).
fn icmp_counterpart(v6: bool, ty: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        &[
            (128, 129),
            (133, 134),
            (135, 136),
            (130, 131),
            (139, 140),
            (144, 145),
        ]
    } else {
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    };
    pairs.iter().find_map(|&(a, b)| {
        if a == ty {
            Some(b)
        } else if b == ty {
            Some(a)
        } else {
            None
        }
    })
}

fn addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Computes the Community ID v1 string (`1:` + base64 SHA-1) of a flow.
///
/// For ICMP and ICMPv6 pass the type as `src_port` and the code as
/// `dst_port`. Returns `None` when the two addresses are of different
/// families, which no real packet has.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> Option<String> {
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let mut sport = src_port;
    let mut dport = dst_port;
    let mut one_way = false;
    if proto == ICMP || proto == ICMPV6 {
        let ty = u8::try_from(src_port).unwrap_or(u8::MAX);
        match icmp_counterpart(proto == ICMPV6, ty) {
            Some(reply) => dport = u16::from(reply),
            None => one_way = true,
        }
        sport = u16::from(ty);
    }
    let (mut a, mut b) = (addr_bytes(&src), addr_bytes(&dst));
    let ordered = (a.as_slice(), sport) <= (b.as_slice(), dport);
    if !one_way && !ordered {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&a);
    h.update(&b);
    h.update([proto, 0]);
    if matches!(proto, TCP | UDP | SCTP | ICMP | ICMPV6) {
        h.update(sport.to_be_bytes());
        h.update(dport.to_be_bytes());
    }
    let digest = h.finalize();
    Some(format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(src: &str, dst: &str, proto: u8, sp: u16, dp: u16) -> String {
        community_id(0, src.parse().unwrap(), dst.parse().unwrap(), proto, sp, dp).unwrap()
    }

    // Expected values computed with the reference Python `communityid` package.
    #[test]
    fn matches_reference_implementation() {
        assert_eq!(
            cid("128.232.110.120", "66.35.250.204", TCP, 34855, 80),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            cid("10.0.0.1", "10.0.0.2", UDP, 53, 5353),
            "1:UtwpeWB9MeSPWL1sb3p0GyRkaWg="
        );
        assert_eq!(
            cid(
                "fe80::200:86ff:fe05:80da",
                "fe80::260:97ff:fe07:69ea",
                TCP,
                53,
                2000
            ),
            "1:xDr2tiONuOn+rSO5Yel7jgPpU9A="
        );
    }

    #[test]
    fn both_directions_share_an_id() {
        assert_eq!(
            cid("66.35.250.204", "128.232.110.120", TCP, 80, 34855),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
    }

    #[test]
    fn icmp_request_and_reply_share_an_id() {
        let req = cid("192.168.0.89", "192.168.0.1", ICMP, 8, 0);
        let rep = cid("192.168.0.1", "192.168.0.89", ICMP, 0, 0);
        assert_eq!(req, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
        assert_eq!(req, rep);
        assert_eq!(
            cid(
                "fe80::200:86ff:fe05:80da",
                "fe80::260:97ff:fe07:69ea",
                ICMPV6,
                135,
                0
            ),
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="
        );
    }

    #[test]
    fn mixed_families_have_no_id() {
        assert!(community_id(
            0,
            "1.2.3.4".parse().unwrap(),
            "::1".parse().unwrap(),
            TCP,
            1,
            2
        )
        .is_none());
    }
}
