//! Frame builders: Ethernet (optionally 802.1Q-tagged) carrying IPv4 or IPv6
//! with TCP, UDP, ICMP/ICMPv6 or a raw protocol payload, with correct IPv4
//! header, TCP, UDP and ICMP checksums.
//!
//! ```
//! use shaobing_pcapgen::packet::{Packet, TcpFlags};
//! use std::net::Ipv4Addr;
//!
//! let frame = Packet::tcp(
//!     Ipv4Addr::new(192, 0, 2, 1),
//!     Ipv4Addr::new(10, 0, 0, 10),
//!     40000,
//!     80,
//!     TcpFlags::SYN,
//!     1,
//!     0,
//!     b"",
//! )
//! .ttl(244)
//! .build();
//! assert_eq!(frame.len(), 54);
//! ```
//!
//! The address family is taken from the addresses: pass two `Ipv6Addr`s to
//! get IPv6 (and ICMPv6 for [`Packet::icmp_echo`]).

use std::net::IpAddr;
use std::ops::BitOr;

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;

/// TCP header flag bits; combine with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flags.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast address derived from an IP address
    /// (`02:00:` + its last four bytes), so each host has a stable MAC.
    pub fn for_ip(ip: IpAddr) -> MacAddr {
        let tail: [u8; 4] = match ip {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        MacAddr([0x02, 0x00, tail[0], tail[1], tail[2], tail[3]])
    }
}

/// The layer-4 part of a [`Packet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment with a 20-byte header (no options).
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number (sent as-is, whether or not ACK is set).
        ack: u32,
        /// Flags.
        flags: TcpFlags,
        /// Receive window.
        window: u16,
        /// Segment data.
        payload: Vec<u8>,
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Datagram data.
        payload: Vec<u8>,
    },
    /// An ICMP (IPv4) or ICMPv6 (IPv6) message.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// The four header bytes after the checksum (identifier and sequence
        /// for echo).
        rest: [u8; 4],
        /// Message data.
        payload: Vec<u8>,
    },
    /// Any other protocol: the bytes go after the IP header unchanged.
    Raw {
        /// IP protocol / next-header number.
        proto: u8,
        /// The bytes after the IP header.
        payload: Vec<u8>,
    },
}

impl Transport {
    fn proto(&self, v6: bool) -> u8 {
        match self {
            Transport::Tcp { .. } => PROTO_TCP,
            Transport::Udp { .. } => PROTO_UDP,
            Transport::Icmp { .. } if v6 => PROTO_ICMPV6,
            Transport::Icmp { .. } => PROTO_ICMP,
            Transport::Raw { proto, .. } => *proto,
        }
    }
}

/// A frame under construction. Start with [`Packet::tcp`], [`Packet::udp`],
/// [`Packet::icmp_echo`], [`Packet::icmp`] or [`Packet::raw`], adjust with
/// the chaining setters, finish with [`Packet::build`].
///
/// Defaults: MACs from [`MacAddr::for_ip`], no VLAN tag, TTL/hop limit 64,
/// IPv4 id 0 with DF set, TOS/traffic class 0, TCP window 64240.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    src: IpAddr,
    dst: IpAddr,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    vlan: Option<u16>,
    ttl: u8,
    ip_id: u16,
    dont_fragment: bool,
    tos: u8,
    transport: Transport,
}

impl Packet {
    /// A packet from `src` to `dst` carrying `transport`.
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn new(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, transport: Transport) -> Packet {
        let (src, dst) = (src.into(), dst.into());
        assert_eq!(
            src.is_ipv4(),
            dst.is_ipv4(),
            "Packet: {src} and {dst} are of different address families"
        );
        Packet {
            src,
            dst,
            src_mac: MacAddr::for_ip(src),
            dst_mac: MacAddr::for_ip(dst),
            vlan: None,
            ttl: 64,
            ip_id: 0,
            dont_fragment: true,
            tos: 0,
            transport,
        }
    }

    /// A TCP segment (20-byte header, no options, window 64240).
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        sport: u16,
        dport: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> Packet {
        Packet::new(
            src,
            dst,
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window: 64240,
                payload: payload.to_vec(),
            },
        )
    }

    /// A UDP datagram.
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn udp(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Packet {
        Packet::new(
            src,
            dst,
            Transport::Udp {
                sport,
                dport,
                payload: payload.to_vec(),
            },
        )
    }

    /// An ICMP message of any type (ICMPv6 when the addresses are IPv6).
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn icmp(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        payload: &[u8],
    ) -> Packet {
        Packet::new(
            src,
            dst,
            Transport::Icmp {
                ty,
                code,
                rest,
                payload: payload.to_vec(),
            },
        )
    }

    /// An echo request (`reply == false`) or reply: ICMP type 8/0, or
    /// ICMPv6 type 128/129 for IPv6 addresses.
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn icmp_echo(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        ident: u16,
        seq: u16,
        reply: bool,
        payload: &[u8],
    ) -> Packet {
        let (src, dst) = (src.into(), dst.into());
        let ty = match (src.is_ipv6(), reply) {
            (false, false) => 8,
            (false, true) => 0,
            (true, false) => 128,
            (true, true) => 129,
        };
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&ident.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Packet::icmp(src, dst, ty, 0, rest, payload)
    }

    /// An IP packet whose payload is `payload` verbatim under protocol
    /// number `proto` (for fragments, GRE, or deliberately broken L4).
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn raw(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        proto: u8,
        payload: &[u8],
    ) -> Packet {
        Packet::new(
            src,
            dst,
            Transport::Raw {
                proto,
                payload: payload.to_vec(),
            },
        )
    }

    /// Sets the IPv4 TTL / IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Packet {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 identification field (ignored for IPv6).
    pub fn ip_id(mut self, id: u16) -> Packet {
        self.ip_id = id;
        self
    }

    /// Sets or clears the IPv4 don't-fragment bit (ignored for IPv6).
    pub fn dont_fragment(mut self, df: bool) -> Packet {
        self.dont_fragment = df;
        self
    }

    /// Sets the IPv4 TOS / IPv6 traffic class byte.
    pub fn tos(mut self, tos: u8) -> Packet {
        self.tos = tos;
        self
    }

    /// Adds an 802.1Q tag with this VLAN id (12 bits; higher bits dropped).
    pub fn vlan(mut self, id: u16) -> Packet {
        self.vlan = Some(id & 0x0FFF);
        self
    }

    /// Overrides the Ethernet source and destination addresses.
    pub fn macs(mut self, src: MacAddr, dst: MacAddr) -> Packet {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Sets the TCP window (no effect on other transports).
    pub fn window(mut self, w: u16) -> Packet {
        if let Transport::Tcp { window, .. } = &mut self.transport {
            *window = w;
        }
        self
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        self.dst
    }

    /// The layer-4 part.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Serializes the frame: Ethernet, optional 802.1Q tag, IPv4/IPv6 header
    /// and layer 4, with every checksum filled in. No Ethernet padding or
    /// FCS is added (as a capture on the sending host shows it).
    ///
    /// # Panics
    /// If the IP payload exceeds 65,535 bytes (65,515 for IPv4).
    pub fn build(&self) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        let proto = self.transport.proto(v6);
        let mut l4 = self.l4_bytes();
        let limit = if v6 { 65_535 } else { 65_535 - 20 };
        assert!(
            l4.len() <= limit,
            "Packet: IP payload of {} bytes is too long",
            l4.len()
        );
        let csum_at = match self.transport {
            Transport::Tcp { .. } => Some(16),
            Transport::Udp { .. } => Some(6),
            Transport::Icmp { .. } => Some(2),
            Transport::Raw { .. } => None,
        };
        if let Some(at) = csum_at {
            let pseudo = proto != PROTO_ICMP;
            let mut sum = if pseudo {
                pseudo_header_sum(self.src, self.dst, proto, l4.len())
            } else {
                0
            };
            sum = ones_complement_add(sum, &l4);
            let mut c = fold(sum);
            // UDP transmits a computed 0 as 0xffff (0 means "no checksum").
            if c == 0 && proto == PROTO_UDP {
                c = 0xFFFF;
            }
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }

        let mut f = Vec::with_capacity(18 + 40 + l4.len());
        f.extend_from_slice(&self.dst_mac.0);
        f.extend_from_slice(&self.src_mac.0);
        if let Some(id) = self.vlan {
            f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[1] = self.tos;
                h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                h[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                if self.dont_fragment {
                    h[6] = 0x40;
                }
                h[8] = self.ttl;
                h[9] = proto;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let c = fold(ones_complement_add(0, &h));
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                let mut h = [0u8; 40];
                h[0] = 0x60 | (self.tos >> 4);
                h[1] = self.tos << 4;
                h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                h[6] = proto;
                h[7] = self.ttl;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
            }
            // `Packet::new` rejects mixed families.
            _ => unreachable!("mixed address families"),
        }
        f.extend_from_slice(&l4);
        f
    }

    fn l4_bytes(&self) -> Vec<u8> {
        match &self.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            } => {
                let mut b = Vec::with_capacity(20 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&ack.to_be_bytes());
                b.push(5 << 4);
                b.push(flags.0);
                b.extend_from_slice(&window.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                b.extend_from_slice(payload);
                b
            }
            Transport::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&((8 + payload.len()).min(0xFFFF) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                b
            }
            Transport::Icmp {
                ty,
                code,
                rest,
                payload,
            } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&[*ty, *code, 0, 0]);
                b.extend_from_slice(rest);
                b.extend_from_slice(payload);
                b
            }
            Transport::Raw { payload, .. } => payload.clone(),
        }
    }
}

/// Adds `data` as big-endian 16-bit words (odd length padded with a zero
/// byte) to a running one's-complement sum.
pub fn ones_complement_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

/// Folds a running sum to 16 bits and complements it: the Internet
/// checksum (RFC 1071).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The one's-complement sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793,
/// RFC 8200 section 8.1).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> u32 {
    let mut sum = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = ones_complement_add(sum, &s.octets());
            sum = ones_complement_add(sum, &d.octets());
            sum = ones_complement_add(sum, &[0, proto]);
            sum = ones_complement_add(sum, &(l4_len as u16).to_be_bytes());
        }
        _ => {
            let oct = |a: IpAddr| match a {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            sum = ones_complement_add(sum, &oct(src));
            sum = ones_complement_add(sum, &oct(dst));
            sum = ones_complement_add(sum, &(l4_len as u32).to_be_bytes());
            sum = ones_complement_add(sum, &[0, 0, 0, proto]);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn verify(sum: u32) -> bool {
        fold(sum) == 0
    }

    #[test]
    fn syn_without_options_is_54_bytes_with_valid_checksums() {
        let f = Packet::tcp(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(10, 0, 0, 10),
            1234,
            80,
            TcpFlags::SYN,
            7,
            0,
            b"",
        )
        .build();
        assert_eq!(f.len(), 54);
        assert!(verify(ones_complement_add(0, &f[14..34])));
        let s = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let d = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
        let sum = ones_complement_add(pseudo_header_sum(s, d, PROTO_TCP, 20), &f[34..]);
        assert!(verify(sum));
        assert_eq!(f[47], 0x02);
    }

    #[test]
    fn rfc1071_example_checksum() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let sum = ones_complement_add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(fold(sum), !0xddf2);
    }

    #[test]
    fn ipv6_udp_and_icmpv6_checksums_verify() {
        let s = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let d = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let u = Packet::udp(s, d, 53, 5353, b"abc").build();
        assert_eq!(&u[12..14], &[0x86, 0xdd]);
        let sum = ones_complement_add(
            pseudo_header_sum(s.into(), d.into(), PROTO_UDP, 11),
            &u[54..],
        );
        assert!(verify(sum));
        let i = Packet::icmp_echo(s, d, 1, 2, false, b"ping").build();
        assert_eq!(i[54], 128);
        let sum = ones_complement_add(
            pseudo_header_sum(s.into(), d.into(), PROTO_ICMPV6, 12),
            &i[54..],
        );
        assert!(verify(sum));
    }

    #[test]
    fn vlan_tag_is_inserted_before_the_ethertype() {
        let f = Packet::icmp_echo(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            1,
            1,
            false,
            b"x",
        )
        .vlan(100)
        .build();
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
        assert!(verify(ones_complement_add(0, &f[18..38])));
        assert!(verify(ones_complement_add(0, &f[38..])));
    }

    #[test]
    #[should_panic(expected = "different address families")]
    fn mixed_families_are_rejected() {
        let _ = Packet::udp(Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 1, 2, b"");
    }
}
