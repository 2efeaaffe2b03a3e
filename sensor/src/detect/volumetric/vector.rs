//! Attack vectors and the per-packet classifier.

use crate::decode::{proto, tcp_flags, Fragment, Header};

/// An attack vector, as reported in `vector` and `volumetric/<vector>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Vector {
    /// TCP with SYN set (SYN or SYN-ACK), no FIN/RST.
    SynFlood,
    /// Pure TCP ACKs (ACK, maybe PSH; no payload on the wire).
    AckFlood,
    /// TCP with RST set (no SYN/FIN).
    RstFlood,
    /// Impossible TCP flag sets: null, Xmas (FIN+PSH+URG), SYN+FIN,
    /// SYN+RST, RST+FIN, FIN/PSH/URG without ACK.
    TcpFlagAbuse,
    /// UDP not from an amplification source port (or not judged reflected).
    UdpFlood,
    /// ICMP and ICMPv6.
    IcmpFlood,
    /// Non-first IP fragments, and first fragments of anything but an
    /// amplification response.
    IpFragmentFlood,
    /// UDP from port 53, judged reflected.
    DnsAmplification,
    /// UDP from port 123, judged reflected.
    NtpAmplification,
    /// UDP from port 1900, judged reflected.
    SsdpAmplification,
    /// UDP from port 11211, judged reflected.
    MemcachedAmplification,
    /// UDP from port 389, judged reflected.
    CldapAmplification,
    /// UDP from port 19, judged reflected.
    ChargenAmplification,
    /// UDP from port 161, judged reflected.
    SnmpAmplification,
    /// UDP from port 3702, judged reflected.
    WsdAmplification,
    /// UDP from port 5683, judged reflected.
    CoapAmplification,
    /// All traffic to (or from) the host, when no single vector dominates.
    TotalVolume,
}

/// Number of vectors.
pub const COUNT: usize = 17;

/// Every vector, in `repr` order.
pub const ALL: [Vector; COUNT] = [
    Vector::SynFlood,
    Vector::AckFlood,
    Vector::RstFlood,
    Vector::TcpFlagAbuse,
    Vector::UdpFlood,
    Vector::IcmpFlood,
    Vector::IpFragmentFlood,
    Vector::DnsAmplification,
    Vector::NtpAmplification,
    Vector::SsdpAmplification,
    Vector::MemcachedAmplification,
    Vector::CldapAmplification,
    Vector::ChargenAmplification,
    Vector::SnmpAmplification,
    Vector::WsdAmplification,
    Vector::CoapAmplification,
    Vector::TotalVolume,
];

/// Amplification vectors and the UDP source port of their reflectors.
pub const AMPLIFICATION_PORTS: [(Vector, u16); 9] = [
    (Vector::DnsAmplification, 53),
    (Vector::NtpAmplification, 123),
    (Vector::SsdpAmplification, 1900),
    (Vector::MemcachedAmplification, 11211),
    (Vector::CldapAmplification, 389),
    (Vector::ChargenAmplification, 19),
    (Vector::SnmpAmplification, 161),
    (Vector::WsdAmplification, 3702),
    (Vector::CoapAmplification, 5683),
];

impl Vector {
    /// The wire name, e.g. `syn_flood`.
    pub fn name(self) -> &'static str {
        match self {
            Vector::SynFlood => "syn_flood",
            Vector::AckFlood => "ack_flood",
            Vector::RstFlood => "rst_flood",
            Vector::TcpFlagAbuse => "tcp_flag_abuse",
            Vector::UdpFlood => "udp_flood",
            Vector::IcmpFlood => "icmp_flood",
            Vector::IpFragmentFlood => "ip_fragment_flood",
            Vector::DnsAmplification => "dns_amplification",
            Vector::NtpAmplification => "ntp_amplification",
            Vector::SsdpAmplification => "ssdp_amplification",
            Vector::MemcachedAmplification => "memcached_amplification",
            Vector::CldapAmplification => "cldap_amplification",
            Vector::ChargenAmplification => "chargen_amplification",
            Vector::SnmpAmplification => "snmp_amplification",
            Vector::WsdAmplification => "wsd_amplification",
            Vector::CoapAmplification => "coap_amplification",
            Vector::TotalVolume => "total_volume",
        }
    }

    /// The vector called `name`.
    pub fn from_name(name: &str) -> Option<Vector> {
        ALL.iter().copied().find(|v| v.name() == name)
    }

    /// Index in [`ALL`].
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reflector source port of an amplification vector.
    pub fn amplification_port(self) -> Option<u16> {
        AMPLIFICATION_PORTS
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, p)| *p)
    }

    /// The wire protocol name of the vector's traffic, when it has one.
    pub fn proto(self) -> &'static str {
        match self {
            Vector::SynFlood | Vector::AckFlood | Vector::RstFlood | Vector::TcpFlagAbuse => "tcp",
            Vector::IcmpFlood => "icmp",
            Vector::IpFragmentFlood | Vector::TotalVolume => "ip",
            _ => "udp",
        }
    }
}

/// The amplification vector whose reflectors answer from UDP `port`.
#[inline]
pub fn amplification_for_port(port: u16) -> Option<Vector> {
    match port {
        53 => Some(Vector::DnsAmplification),
        123 => Some(Vector::NtpAmplification),
        1900 => Some(Vector::SsdpAmplification),
        11211 => Some(Vector::MemcachedAmplification),
        389 => Some(Vector::CldapAmplification),
        19 => Some(Vector::ChargenAmplification),
        161 => Some(Vector::SnmpAmplification),
        3702 => Some(Vector::WsdAmplification),
        5683 => Some(Vector::CoapAmplification),
        _ => None,
    }
}

const URG: u8 = 0x20;
/// Frames up to this size on the wire can be a pure ACK (Ethernet, two
/// VLAN tags, IPv6, TCP with 40 bytes of options is 122).
const PURE_ACK_MAX_WIRE: u32 = 128;

/// The vector a packet counts towards, or `None` when it only counts in the
/// host's total (TCP data and FIN segments of ordinary connections,
/// protocols other than TCP/UDP/ICMP). `wire_len` is the frame's length on
/// the wire, so a capture cut by its snaplen classifies the same.
#[inline]
pub fn classify(d: &Header, wire_len: u32) -> Option<Vector> {
    if d.fragment == Fragment::Later {
        return Some(Vector::IpFragmentFlood);
    }
    let first_fragment = d.fragment == Fragment::First;
    match d.proto {
        proto::UDP => match amplification_for_port(d.src_port) {
            Some(v) => Some(v),
            None if first_fragment => Some(Vector::IpFragmentFlood),
            None => Some(Vector::UdpFlood),
        },
        _ if first_fragment => Some(Vector::IpFragmentFlood),
        proto::TCP => Some(classify_tcp(d.tcp_flags, !d.has_payload, wire_len)?),
        proto::ICMP | proto::ICMPV6 => Some(Vector::IcmpFlood),
        _ => None,
    }
}

#[inline]
fn classify_tcp(flags: u8, no_payload: bool, wire_len: u32) -> Option<Vector> {
    use tcp_flags::{ACK, FIN, PSH, RST, SYN};
    let f = flags & 0x3f;
    if f == 0 || f & (FIN | PSH | URG) == FIN | PSH | URG {
        return Some(Vector::TcpFlagAbuse);
    }
    if f & SYN != 0 {
        return Some(if f & (FIN | RST) != 0 {
            Vector::TcpFlagAbuse
        } else {
            Vector::SynFlood
        });
    }
    if f & RST != 0 {
        return Some(if f & FIN != 0 {
            Vector::TcpFlagAbuse
        } else {
            Vector::RstFlood
        });
    }
    if f & ACK == 0 {
        return Some(Vector::TcpFlagAbuse);
    }
    if f & FIN == 0 && no_payload && wire_len <= PURE_ACK_MAX_WIRE {
        return Some(Vector::AckFlood);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn pkt(proto: u8, flags: u8, src_port: u16, fragment: Fragment) -> Header {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        Header {
            src: a,
            dst: a,
            proto,
            ttl: 64,
            src_port,
            dst_port: 80,
            tcp_flags: flags,
            tcp_seq: 0,
            tcp_ack: 0,
            has_payload: false,
            fragment,
            frag_id: 0,
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for v in ALL {
            assert_eq!(Vector::from_name(v.name()), Some(v));
            assert_eq!(ALL[v.index()], v);
        }
        assert_eq!(Vector::from_name("syn"), None);
    }

    #[test]
    fn tcp_flag_sets_map_to_vectors() {
        let n = Fragment::None;
        let cases = [
            (0x02, Some(Vector::SynFlood)),
            (0x12, Some(Vector::SynFlood)),
            (0xc2, Some(Vector::SynFlood)), // SYN+ECE+CWR
            (0x10, Some(Vector::AckFlood)),
            (0x18, Some(Vector::AckFlood)),
            (0x04, Some(Vector::RstFlood)),
            (0x14, Some(Vector::RstFlood)),
            (0x00, Some(Vector::TcpFlagAbuse)),
            (0x29, Some(Vector::TcpFlagAbuse)), // Xmas
            (0x03, Some(Vector::TcpFlagAbuse)), // SYN+FIN
            (0x06, Some(Vector::TcpFlagAbuse)), // SYN+RST
            (0x01, Some(Vector::TcpFlagAbuse)), // FIN scan
            (0x11, None),                       // FIN+ACK: a normal close
        ];
        for (flags, want) in cases {
            assert_eq!(
                classify(&pkt(proto::TCP, flags, 1, n), 60),
                want,
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn ack_with_data_on_the_wire_is_not_an_ack_flood() {
        // Payload cut by the snaplen, but 1514 bytes on the wire.
        let d = pkt(proto::TCP, 0x10, 1, Fragment::None);
        assert_eq!(classify(&d, 1514), None);
    }

    #[test]
    fn udp_by_source_port_and_fragments() {
        assert_eq!(
            classify(&pkt(proto::UDP, 0, 53, Fragment::None), 600),
            Some(Vector::DnsAmplification)
        );
        assert_eq!(
            classify(&pkt(proto::UDP, 0, 11211, Fragment::First), 1500),
            Some(Vector::MemcachedAmplification)
        );
        assert_eq!(
            classify(&pkt(proto::UDP, 0, 4444, Fragment::None), 600),
            Some(Vector::UdpFlood)
        );
        assert_eq!(
            classify(&pkt(proto::UDP, 0, 53, Fragment::Later), 600),
            Some(Vector::IpFragmentFlood)
        );
        assert_eq!(
            classify(&pkt(proto::ICMPV6, 0, 128, Fragment::First), 90),
            Some(Vector::IpFragmentFlood)
        );
        assert_eq!(
            classify(&pkt(proto::ICMP, 0, 8, Fragment::None), 98),
            Some(Vector::IcmpFlood)
        );
        assert_eq!(classify(&pkt(47, 0, 0, Fragment::None), 98), None);
    }

    #[test]
    fn every_amplification_vector_has_its_port() {
        for (v, port) in AMPLIFICATION_PORTS {
            assert_eq!(amplification_for_port(port), Some(v));
            assert_eq!(v.amplification_port(), Some(port));
        }
    }
}
