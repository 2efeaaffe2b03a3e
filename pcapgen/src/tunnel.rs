//! Tunnel encapsulation: wraps a frame the generator built into each
//! tunnel kind the sensor opens (`docs/sensor.md`, "Encapsulations").
//!
//! An [`Encapsulator`] holds one tunnel's kind, its outer endpoints and
//! its running state (GRE and GTP-U sequence numbers, IPv4 ids). Each
//! [`Encapsulator::wrap`] takes an inner frame as captured (possibly cut
//! to a snaplen) and its length on the wire, and returns the outer frame
//! and *its* length on the wire: every length field (outer IPv4 total
//! length, UDP length, GTP-U length, PPPoE length) counts the whole inner
//! packet, as a tunnel router would have written it, even when only its
//! first bytes were captured.
//!
//! What the inner frame becomes depends on what the tunnel carries:
//!
//! | kind | outer | carries |
//! |---|---|---|
//! | [`TunnelKind::Vxlan`] | IPv4 / UDP 4789 / VXLAN (I flag, VNI) | the Ethernet frame |
//! | [`TunnelKind::Geneve`] | IPv4 / UDP 6081 / Geneve with one 8-byte option | the Ethernet frame |
//! | [`TunnelKind::Gre`] | IPv4 / GRE with key and sequence number | the IP packet |
//! | [`TunnelKind::ErspanII`] | IPv4 / GRE (sequence) / ERSPAN type II (version 1) | the Ethernet frame |
//! | [`TunnelKind::ErspanIII`] | IPv4 / GRE (sequence) / ERSPAN type III (version 2, frame type 0) | the Ethernet frame |
//! | [`TunnelKind::MplsIp`] | Ethernet 0x8847 / two labels | the IP packet |
//! | [`TunnelKind::MplsEthernet`] | Ethernet 0x8847 / two labels / control word | the Ethernet frame (pseudowire) |
//! | [`TunnelKind::Pppoe`] | Ethernet 0x8864 / PPPoE session / PPP 0x0021 or 0x0057 | the IP packet |
//! | [`TunnelKind::Gtpu`] | IPv4 / UDP 2152 / GTP-U G-PDU with a sequence number | the IP packet |
//! | [`TunnelKind::IpInIp`] | IPv4, protocol 4 (IPv4 inside) or 41 (6in4) | the IP packet |
//! | [`TunnelKind::VxlanWithoutIFlag`] | like VXLAN, I flag clear: **malformed** | the Ethernet frame |
//!
//! The outer IP header is IPv4, or IPv6 for an [`Encapsulator`] between
//! IPv6 endpoints ([`TunnelPath::over_ipv6`]: VXLAN over IPv6, 4in6).
//! Outer IPv4 headers have a correct checksum; a UDP checksum is computed
//! when the whole inner frame is present and sent as zero (no checksum,
//! allowed for UDP over IPv4 and recommended for VXLAN by RFC 7348) when
//! it was cut to a snaplen.
//!
//! ```
//! use shaobing_pcapgen::packet::Packet;
//! use shaobing_pcapgen::tunnel::{Encapsulator, TunnelKind};
//! use std::net::Ipv4Addr;
//!
//! let inner = Packet::udp(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(203, 0, 113, 1), 5000, 53, b"q")
//!     .build();
//! let mut vxlan = Encapsulator::new(TunnelKind::Vxlan);
//! let outer = vxlan.wrap_frame(&inner).unwrap();
//! assert_eq!(outer.len(), inner.len() + 50);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{fold, ones_complement_add, pseudo_header_sum, MacAddr, PROTO_UDP};

/// The default outer source: a mirror or tunnel router *inside* the
/// default protected space, so a sensor that failed to open the tunnel
/// would wrongly report it.
pub const OUTER_SRC: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
/// The default outer destination (the mirror's collector, the tunnel's
/// far end), also protected.
pub const OUTER_DST: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);

/// The outer source of tunnels over IPv6 (unique-local, protected by
/// default).
pub const OUTER_SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x255, 0, 0, 0, 0, 0, 1);
/// The outer destination of tunnels over IPv6.
pub const OUTER_DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x255, 0, 0, 0, 0, 0, 2);

/// VXLAN's UDP port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// Geneve's UDP port (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;
/// GTP-U's UDP port (3GPP TS 29.281).
pub const GTPU_PORT: u16 = 2152;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_TEB: u16 = 0x6558;
const GRE_ERSPAN_II: u16 = 0x88BE;
const GRE_ERSPAN_III: u16 = 0x22EB;
const PROTO_GRE: u8 = 47;
const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;

/// Which encapsulation an [`Encapsulator`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN (UDP 4789), I flag set, VNI 5001.
    Vxlan,
    /// Geneve (UDP 6081), version 0, VNI 7001, one 8-byte option, protocol
    /// type Ethernet.
    Geneve,
    /// GRE (RFC 2784/2890) with key 0x0000_2a2a and a sequence number,
    /// carrying IPv4 or IPv6.
    Gre,
    /// ERSPAN type II: GRE with the sequence bit, protocol 0x88BE, an
    /// 8-byte header of version 1, session 101.
    ErspanII,
    /// ERSPAN type III: GRE with the sequence bit, protocol 0x22EB, a
    /// 12-byte header of version 2, frame type 0 (Ethernet), session 102,
    /// a 100 µs timestamp.
    ErspanIII,
    /// MPLS: two labels (1001, then 2001 with bottom of stack), IP below.
    MplsIp,
    /// An MPLS Ethernet pseudowire: two labels (1002, 2002) and a control
    /// word (RFC 4385) with a sequence number, the Ethernet frame below.
    MplsEthernet,
    /// A PPPoE session (id 0x0101) carrying PPP IPv4 (0x0021) or IPv6
    /// (0x0057).
    Pppoe,
    /// GTP-U G-PDU (TEID 0x1000_0001) with the optional sequence number
    /// field (S flag), carrying IPv4 or IPv6.
    Gtpu,
    /// IP in IPv4: protocol 4 for an IPv4 packet, 41 (6in4) for IPv6.
    IpInIp,
    /// VXLAN whose header lacks the I flag: not a valid VXLAN packet, so a
    /// sensor must treat it as the outer UDP datagram it is.
    VxlanWithoutIFlag,
}

impl TunnelKind {
    /// Every valid kind (not [`TunnelKind::VxlanWithoutIFlag`]).
    pub const VALID: [TunnelKind; 10] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::ErspanII,
        TunnelKind::ErspanIII,
        TunnelKind::MplsIp,
        TunnelKind::MplsEthernet,
        TunnelKind::Pppoe,
        TunnelKind::Gtpu,
        TunnelKind::IpInIp,
    ];

    /// A short name for file names and descriptions, e.g. `erspan2`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::ErspanII => "erspan2",
            TunnelKind::ErspanIII => "erspan3",
            TunnelKind::MplsIp => "mpls",
            TunnelKind::MplsEthernet => "mpls-pw",
            TunnelKind::Pppoe => "pppoe",
            TunnelKind::Gtpu => "gtpu",
            TunnelKind::IpInIp => "ipip",
            TunnelKind::VxlanWithoutIFlag => "vxlan-no-i-flag",
        }
    }

    /// The sensor's decap counter this kind increments (`decap: gre=N
    /// erspan=N ...` in the replay summary), `None` for the malformed
    /// VXLAN header.
    pub fn counter(self) -> Option<&'static str> {
        Some(match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::ErspanII | TunnelKind::ErspanIII => "erspan",
            TunnelKind::MplsIp | TunnelKind::MplsEthernet => "mpls",
            TunnelKind::Pppoe => "pppoe",
            TunnelKind::Gtpu => "gtpu",
            TunnelKind::IpInIp => "ip_in_ip",
            TunnelKind::VxlanWithoutIFlag => return None,
        })
    }

    /// Whether the tunnel carries the inner Ethernet frame (else only the
    /// IP packet inside it).
    pub fn carries_ethernet(self) -> bool {
        matches!(
            self,
            TunnelKind::Vxlan
                | TunnelKind::VxlanWithoutIFlag
                | TunnelKind::Geneve
                | TunnelKind::ErspanII
                | TunnelKind::ErspanIII
                | TunnelKind::MplsEthernet
        )
    }

    /// Bytes the tunnel adds in front of what it carries, including the
    /// outer Ethernet header, over IPv4 (20 more over IPv6 for the kinds
    /// with an outer IP header).
    pub fn overhead(self) -> usize {
        match self {
            TunnelKind::Vxlan | TunnelKind::VxlanWithoutIFlag => 14 + 20 + 8 + 8,
            TunnelKind::Geneve => 14 + 20 + 8 + 8 + 8,
            TunnelKind::Gre => 14 + 20 + 12,
            TunnelKind::ErspanII => 14 + 20 + 8 + 8,
            TunnelKind::ErspanIII => 14 + 20 + 8 + 12,
            TunnelKind::MplsIp => 14 + 8,
            TunnelKind::MplsEthernet => 14 + 8 + 4,
            TunnelKind::Pppoe => 14 + 6 + 2,
            TunnelKind::Gtpu => 14 + 20 + 8 + 12,
            TunnelKind::IpInIp => 14 + 20,
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a frame cannot be wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrapError {
    /// An IP-carrying tunnel was given a frame that is not Ethernet with
    /// IPv4 or IPv6 (after any 802.1Q tags).
    NotIp,
    /// The outer packet would exceed what its length fields can say.
    TooLong(usize),
    /// The captured bytes are longer than the wire length given.
    LongerThanWire,
}

impl fmt::Display for WrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WrapError::NotIp => f.write_str("the inner frame is not Ethernet carrying IP"),
            WrapError::TooLong(n) => write!(f, "the outer packet would be {n} bytes long"),
            WrapError::LongerThanWire => {
                f.write_str("captured bytes exceed the frame's length on the wire")
            }
        }
    }
}

impl std::error::Error for WrapError {}

/// A wrapped frame: the captured bytes and the length on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapped {
    /// The outer frame as captured (outer headers and the captured part of
    /// the inner frame).
    pub data: Vec<u8>,
    /// The outer frame's length on the wire.
    pub wire_len: usize,
}

/// One tunnel: kind, outer endpoints and running sequence numbers.
#[derive(Clone, Debug)]
pub struct Encapsulator {
    kind: TunnelKind,
    src: IpAddr,
    dst: IpAddr,
    packets: u32,
}

impl Encapsulator {
    /// A tunnel of `kind` from [`OUTER_SRC`] to [`OUTER_DST`].
    pub fn new(kind: TunnelKind) -> Self {
        Encapsulator::between(kind, OUTER_SRC, OUTER_DST)
    }

    /// A tunnel of `kind` between two outer endpoints, IPv4 or IPv6 (for
    /// MPLS and PPPoE, which have no outer IP header, the endpoints give
    /// the MACs). Over IPv6 the outer header is 40 bytes and the next
    /// header is the same protocol number (IP in IPv6: 4 for IPv4, 41 for
    /// IPv6 inside).
    ///
    /// # Panics
    /// If `src` and `dst` are of different address families.
    pub fn between(kind: TunnelKind, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Self {
        let (src, dst) = (src.into(), dst.into());
        assert_eq!(
            src.is_ipv4(),
            dst.is_ipv4(),
            "Encapsulator: {src} and {dst} are of different address families"
        );
        Encapsulator {
            kind,
            src,
            dst,
            packets: 0,
        }
    }

    /// The kind.
    pub fn kind(&self) -> TunnelKind {
        self.kind
    }

    /// Packets wrapped so far.
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Wraps a whole frame (captured length = wire length).
    pub fn wrap_frame(&mut self, frame: &[u8]) -> Result<Vec<u8>, WrapError> {
        Ok(self.wrap(frame, frame.len(), 0)?.data)
    }

    /// Wraps `frame`, the first bytes of an Ethernet frame `wire_len` bytes
    /// long on the wire, captured at `ts_micros` (used by ERSPAN III's
    /// timestamp). Returns the outer frame's captured bytes and its length
    /// on the wire.
    pub fn wrap(
        &mut self,
        frame: &[u8],
        wire_len: usize,
        ts_micros: i64,
    ) -> Result<Wrapped, WrapError> {
        if frame.len() > wire_len {
            return Err(WrapError::LongerThanWire);
        }
        self.packets = self.packets.wrapping_add(1);
        let seq = self.packets;
        let (ethertype, payload, payload_wire) = if self.kind.carries_ethernet() {
            (0, frame, wire_len)
        } else {
            let (ethertype, at) = ip_in_ethernet(frame).ok_or(WrapError::NotIp)?;
            let ip = frame.get(at..).ok_or(WrapError::NotIp)?;
            (ethertype, ip, wire_len - at)
        };
        let complete = payload.len() == payload_wire;
        let v6 = ethertype == ETHERTYPE_IPV6;
        let ip_ethertype = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };

        let mut head = Vec::with_capacity(self.kind.overhead());
        let (outer_ethertype, outer_ip) = match self.kind {
            TunnelKind::Vxlan | TunnelKind::VxlanWithoutIFlag => {
                let flags = if self.kind == TunnelKind::Vxlan {
                    0x08
                } else {
                    0x00
                };
                let mut h = vec![flags, 0, 0, 0];
                h.extend_from_slice(&(5001u32 << 8).to_be_bytes());
                (
                    ETHERTYPE_IPV4,
                    Some(Outer::Udp(flow_port(payload), VXLAN_PORT, h)),
                )
            }
            TunnelKind::Geneve => {
                // Version 0, options length 2 (x 4 bytes), protocol Ethernet,
                // VNI 7001; one option: class 0x0103, type 0x80, 4 bytes of
                // data.
                let mut h = vec![0x02, 0x00];
                h.extend_from_slice(&ETHERTYPE_TEB.to_be_bytes());
                h.extend_from_slice(&(7001u32 << 8).to_be_bytes());
                h.extend_from_slice(&[0x01, 0x03, 0x80, 0x01]);
                h.extend_from_slice(&seq.to_be_bytes());
                (
                    ETHERTYPE_IPV4,
                    Some(Outer::Udp(flow_port(payload), GENEVE_PORT, h)),
                )
            }
            TunnelKind::Gre => {
                let mut h = vec![0x30, 0x00];
                h.extend_from_slice(&ip_ethertype.to_be_bytes());
                h.extend_from_slice(&0x0000_2a2au32.to_be_bytes());
                h.extend_from_slice(&seq.to_be_bytes());
                (ETHERTYPE_IPV4, Some(Outer::Ip(PROTO_GRE, h)))
            }
            TunnelKind::ErspanII => {
                let mut h = vec![0x10, 0x00];
                h.extend_from_slice(&GRE_ERSPAN_II.to_be_bytes());
                h.extend_from_slice(&seq.to_be_bytes());
                // Version 1, VLAN 0; COS 0, En 0, T 0, session 101;
                // reserved, index 7.
                let session: u16 = 101;
                h.extend_from_slice(&[0x10, 0x00]);
                h.extend_from_slice(&session.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 7]);
                (ETHERTYPE_IPV4, Some(Outer::Ip(PROTO_GRE, h)))
            }
            TunnelKind::ErspanIII => {
                let mut h = vec![0x10, 0x00];
                h.extend_from_slice(&GRE_ERSPAN_III.to_be_bytes());
                h.extend_from_slice(&seq.to_be_bytes());
                // Version 2, VLAN 0; COS 0, BSO 0, T 0, session 102;
                // timestamp in 100 µs units (granularity 00); SGT 0;
                // P 0, frame type 0 (Ethernet), hardware id 1, D 0,
                // granularity 0, O 0 (no optional subheader).
                let session: u16 = 102;
                h.extend_from_slice(&[0x20, 0x00]);
                h.extend_from_slice(&session.to_be_bytes());
                let stamp = (ts_micros.rem_euclid(1 << 40) / 100) as u32;
                h.extend_from_slice(&stamp.to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&[0x00, 0x10]);
                (ETHERTYPE_IPV4, Some(Outer::Ip(PROTO_GRE, h)))
            }
            TunnelKind::MplsIp => {
                let mut h = mpls_entry(1001, false).to_vec();
                h.extend_from_slice(&mpls_entry(2001, true));
                head_extra(&mut head, &h);
                (ETHERTYPE_MPLS, None)
            }
            TunnelKind::MplsEthernet => {
                let mut h = mpls_entry(1002, false).to_vec();
                h.extend_from_slice(&mpls_entry(2002, true));
                // Control word: first nibble 0, flags 0, length 0 (the
                // frame is longer than 64 bytes or padding is not used),
                // 16-bit sequence number (never 0 when used).
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&((seq % 0xFFFF) as u16 + 1).to_be_bytes());
                head_extra(&mut head, &h);
                (ETHERTYPE_MPLS, None)
            }
            TunnelKind::Pppoe => {
                let ppp_len = payload_wire + 2;
                let len = u16::try_from(ppp_len).map_err(|_| WrapError::TooLong(ppp_len))?;
                let mut h = vec![0x11, 0x00];
                h.extend_from_slice(&0x0101u16.to_be_bytes());
                h.extend_from_slice(&len.to_be_bytes());
                h.extend_from_slice(if v6 { &[0x00, 0x57] } else { &[0x00, 0x21] });
                head_extra(&mut head, &h);
                (ETHERTYPE_PPPOE_SESSION, None)
            }
            TunnelKind::Gtpu => {
                // Version 1, PT 1, S 1; G-PDU; length = the 4 optional
                // bytes + the user packet; TEID; sequence, N-PDU 0, no
                // extension header.
                let len = 4 + payload_wire;
                let len16 = u16::try_from(len).map_err(|_| WrapError::TooLong(len))?;
                let mut h = vec![0x32, 0xFF];
                h.extend_from_slice(&len16.to_be_bytes());
                h.extend_from_slice(&0x1000_0001u32.to_be_bytes());
                h.extend_from_slice(&((seq & 0xFFFF) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                (ETHERTYPE_IPV4, Some(Outer::Udp(GTPU_PORT, GTPU_PORT, h)))
            }
            TunnelKind::IpInIp => (
                ETHERTYPE_IPV4,
                Some(Outer::Ip(
                    if v6 { PROTO_IPV6 } else { PROTO_IPIP },
                    Vec::new(),
                )),
            ),
        };

        // `head` holds any non-IP tunnel header (MPLS, PPPoE) so far.
        let mut out = Vec::with_capacity(self.kind.overhead() + payload.len());
        let outer_ethertype = if outer_ip.is_some() && self.src.is_ipv6() {
            ETHERTYPE_IPV6
        } else {
            outer_ethertype
        };
        out.extend_from_slice(&MacAddr::for_ip(self.dst).0);
        out.extend_from_slice(&MacAddr::for_ip(self.src).0);
        out.extend_from_slice(&outer_ethertype.to_be_bytes());
        match outer_ip {
            None => out.extend_from_slice(&head),
            Some(Outer::Ip(proto, h)) => {
                out.extend_from_slice(&self.ip_header(proto, h.len() + payload_wire, seq)?);
                out.extend_from_slice(&h);
            }
            Some(Outer::Udp(sport, dport, h)) => {
                let udp_len = 8 + h.len() + payload_wire;
                let udp_len16 = u16::try_from(udp_len).map_err(|_| WrapError::TooLong(udp_len))?;
                out.extend_from_slice(&self.ip_header(PROTO_UDP, udp_len, seq)?);
                let mut udp = Vec::with_capacity(udp_len);
                udp.extend_from_slice(&sport.to_be_bytes());
                udp.extend_from_slice(&dport.to_be_bytes());
                udp.extend_from_slice(&udp_len16.to_be_bytes());
                udp.extend_from_slice(&[0, 0]);
                udp.extend_from_slice(&h);
                if complete {
                    let mut sum = pseudo_header_sum(self.src, self.dst, PROTO_UDP, udp_len);
                    sum = ones_complement_add(sum, &udp);
                    // Every UDP tunnel header here is of even length, so the
                    // payload starts on a 16-bit boundary of the sum.
                    sum = ones_complement_add(sum, payload);
                    let c = match fold(sum) {
                        0 => 0xFFFF,
                        c => c,
                    };
                    udp[6..8].copy_from_slice(&c.to_be_bytes());
                }
                out.extend_from_slice(&udp);
            }
        }
        let overhead = out.len();
        out.extend_from_slice(payload);
        Ok(Wrapped {
            data: out,
            wire_len: overhead + payload_wire,
        })
    }

    /// The outer IPv4 header (id from the packet count, DF, TTL 64,
    /// checksum) or IPv6 header (hop limit 64) in front of `payload_len`
    /// bytes of protocol `proto`.
    fn ip_header(&self, proto: u8, payload_len: usize, seq: u32) -> Result<Vec<u8>, WrapError> {
        match (self.src, self.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let len16 =
                    u16::try_from(payload_len).map_err(|_| WrapError::TooLong(payload_len + 40))?;
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&len16.to_be_bytes());
                h[6] = proto;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                Ok(h)
            }
            _ => {
                let oct = |a: IpAddr| match a {
                    IpAddr::V4(v4) => v4.octets(),
                    IpAddr::V6(_) => [0; 4], // `between` refuses mixed families
                };
                let total = 20 + payload_len;
                let total16 = u16::try_from(total).map_err(|_| WrapError::TooLong(total))?;
                let mut h = vec![0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&total16.to_be_bytes());
                h[4..6].copy_from_slice(&((seq & 0xFFFF) as u16).to_be_bytes());
                h[6] = 0x40; // DF: tunnel routers do not fragment here
                h[8] = 64;
                h[9] = proto;
                h[12..16].copy_from_slice(&oct(self.src));
                h[16..20].copy_from_slice(&oct(self.dst));
                let c = fold(ones_complement_add(0, &h));
                h[10..12].copy_from_slice(&c.to_be_bytes());
                Ok(h)
            }
        }
    }
}

/// What goes between the outer Ethernet header and the carried bytes.
enum Outer {
    /// An IPv4 header of this protocol, then the tunnel header.
    Ip(u8, Vec<u8>),
    /// IPv4 / UDP (source port, destination port), then the tunnel header.
    Udp(u16, u16, Vec<u8>),
}

fn head_extra(head: &mut Vec<u8>, h: &[u8]) {
    head.extend_from_slice(h);
}

/// One MPLS label stack entry: label, TC 0, bottom-of-stack bit, TTL 64.
fn mpls_entry(label: u32, bottom: bool) -> [u8; 4] {
    ((label << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes()
}

/// The ethertype and offset of the IP packet in an Ethernet frame, after
/// any 802.1Q tags; `None` when it is not IPv4 or IPv6.
fn ip_in_ethernet(frame: &[u8]) -> Option<(u16, usize)> {
    let mut at = 12;
    loop {
        let b = frame.get(at..at + 2)?;
        let ethertype = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
        match ethertype {
            0x8100 | 0x88A8 => at += 4,
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return Some((ethertype, at + 2)),
            _ => return None,
        }
    }
}

/// A UDP source port from the inner packet's first bytes (entropy for
/// ECMP, as VXLAN and Geneve endpoints do): 49152 to 65535.
fn flow_port(inner: &[u8]) -> u16 {
    let mut h: u32 = 0x811C_9DC5;
    for b in inner.iter().skip(14).take(40) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    49152 + (h % 16384) as u16
}

/// Wraps `frame` in each of `layers`, innermost first: `[Vxlan, Gre]`
/// gives VXLAN inside GRE.
pub fn nest(
    frame: &[u8],
    wire_len: usize,
    ts_micros: i64,
    layers: &mut [Encapsulator],
) -> Result<Wrapped, WrapError> {
    let mut w = Wrapped {
        data: frame.to_vec(),
        wire_len,
    };
    for e in layers.iter_mut() {
        w = e.wrap(&w.data, w.wire_len, ts_micros)?;
    }
    Ok(w)
}

/// Both directions of a (possibly nested) tunnel: frames sent from the
/// protected side (source in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16
/// or fc00::/7) go from the outer source to the outer destination, the
/// answers come back the other way. Mirror kinds (VXLAN, Geneve, ERSPAN)
/// send both directions of the mirrored traffic the same way, from the
/// mirror to its collector.
#[derive(Clone, Debug)]
pub struct TunnelPath {
    out: Vec<Encapsulator>,
    back: Vec<Encapsulator>,
}

impl TunnelPath {
    /// One tunnel of `kind` between [`OUTER_SRC`] and [`OUTER_DST`].
    pub fn new(kind: TunnelKind) -> Self {
        TunnelPath::nested(&[kind])
    }

    /// Tunnels inside one another, innermost first (`[Vxlan, Gre]` is VXLAN
    /// inside GRE). The outermost runs between [`OUTER_SRC`] and
    /// [`OUTER_DST`]; the one inside it between 10.255.1.1 and 10.255.1.2,
    /// and so on (at most 256 layers).
    pub fn nested(kinds: &[TunnelKind]) -> Self {
        let n = kinds.len();
        let mut out = Vec::with_capacity(n);
        let mut back = Vec::with_capacity(n);
        for (j, &kind) in kinds.iter().enumerate() {
            let level = ((n - 1 - j) & 0xFF) as u8;
            let a = Ipv4Addr::new(10, 255, level, 1);
            let b = Ipv4Addr::new(10, 255, level, 2);
            out.push(Encapsulator::between(kind, a, b));
            back.push(if kind.is_mirror() {
                Encapsulator::between(kind, a, b)
            } else {
                Encapsulator::between(kind, b, a)
            });
        }
        TunnelPath { out, back }
    }

    /// One tunnel of `kind` over IPv6, between [`OUTER_SRC6`] and
    /// [`OUTER_DST6`].
    pub fn over_ipv6(kind: TunnelKind) -> Self {
        let back = if kind.is_mirror() {
            Encapsulator::between(kind, OUTER_SRC6, OUTER_DST6)
        } else {
            Encapsulator::between(kind, OUTER_DST6, OUTER_SRC6)
        };
        TunnelPath {
            out: vec![Encapsulator::between(kind, OUTER_SRC6, OUTER_DST6)],
            back: vec![back],
        }
    }

    /// Wraps one frame (see [`Encapsulator::wrap`]) in every layer.
    pub fn wrap(
        &mut self,
        frame: &[u8],
        wire_len: usize,
        ts_micros: i64,
    ) -> Result<Wrapped, WrapError> {
        let layers = if from_protected(frame) {
            &mut self.out
        } else {
            &mut self.back
        };
        nest(frame, wire_len, ts_micros, layers)
    }
}

impl TunnelKind {
    /// Whether the kind is a traffic mirror (both directions of the
    /// mirrored traffic travel from the mirror to its collector).
    pub fn is_mirror(self) -> bool {
        matches!(
            self,
            TunnelKind::Vxlan
                | TunnelKind::VxlanWithoutIFlag
                | TunnelKind::Geneve
                | TunnelKind::ErspanII
                | TunnelKind::ErspanIII
        )
    }
}

/// Whether the frame's IP source is a private (RFC 1918) or unique-local
/// address.
fn from_protected(frame: &[u8]) -> bool {
    let Some((ethertype, at)) = ip_in_ethernet(frame) else {
        return false;
    };
    if ethertype == ETHERTYPE_IPV4 {
        match frame.get(at + 12..at + 14) {
            Some([10, _]) => true,
            Some([172, b]) => (16..32).contains(b),
            Some([192, 168]) => true,
            _ => false,
        }
    } else {
        frame.get(at + 8).is_some_and(|b| b & 0xFE == 0xFC)
    }
}

/// Cuts an Ethernet frame carrying IPv4 (no 802.1Q tag) into fragments
/// whose IP packets are at most `mtu` bytes, as a router on a smaller link
/// would (DF cleared, offsets in 8-byte units, MF on all but the last,
/// header checksums recomputed). A packet that fits, or a frame that is
/// not IPv4, is returned whole.
pub fn fragment_ipv4(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let whole = || vec![frame.to_vec()];
    let (Some(eth), Some(ip)) = (frame.get(..14), frame.get(14..)) else {
        return whole();
    };
    if eth.get(12..14) != Some(&[0x08, 0x00][..]) {
        return whole();
    }
    let Some(&vihl) = ip.first() else {
        return whole();
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(header), Some(data)) = (ip.get(..ihl), ip.get(ihl..)) else {
        return whole();
    };
    let chunk = mtu.saturating_sub(ihl) & !7;
    if ip.len() <= mtu || chunk == 0 {
        return whole();
    }
    let mut out = Vec::new();
    for (i, piece) in data.chunks(chunk).enumerate() {
        let offset = i * chunk / 8;
        let last = (i + 1) * chunk >= data.len();
        let mut h = header.to_vec();
        let total = (ihl + piece.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let flags_offset = (offset as u16 & 0x1fff) | if last { 0 } else { 0x2000 };
        h[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = fold(ones_complement_add(0, &h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = eth.to_vec();
        f.extend_from_slice(&h);
        f.extend_from_slice(piece);
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Packet, TcpFlags};
    use std::net::Ipv6Addr;

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn inner_v4() -> Vec<u8> {
        Packet::tcp(
            Ipv4Addr::new(10, 0, 9, 1),
            Ipv4Addr::new(203, 0, 113, 9),
            40000,
            80,
            TcpFlags::PSH | TcpFlags::ACK,
            1,
            1,
            b"POST / HTTP/1.1\r\n\r\n",
        )
        .vlan(42)
        .build()
    }

    fn inner_v6() -> Vec<u8> {
        Packet::udp(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            5353,
            53,
            b"odd",
        )
        .build()
    }

    /// Checks the outer headers of `f` (written independently of the
    /// builder) and returns what the tunnel carries.
    fn open(kind: TunnelKind, f: &[u8], complete: bool) -> Vec<u8> {
        assert_eq!(&f[6..12], &MacAddr::for_ip(OUTER_SRC.into()).0);
        let ethertype = be16(f, 12);
        let body = &f[14..];
        match kind {
            TunnelKind::MplsIp | TunnelKind::MplsEthernet => {
                assert_eq!(ethertype, 0x8847);
                assert_eq!(body[2] & 1, 0, "first label is not bottom of stack");
                assert_eq!(body[6] & 1, 1, "second label is bottom of stack");
                if kind == TunnelKind::MplsIp {
                    return body[8..].to_vec();
                }
                assert_eq!(body[8] >> 4, 0, "control word first nibble");
                assert_ne!(be16(body, 10), 0, "control word sequence number");
                return body[12..].to_vec();
            }
            TunnelKind::Pppoe => {
                assert_eq!(ethertype, 0x8864);
                assert_eq!(&body[..2], &[0x11, 0x00]);
                if complete {
                    assert_eq!(usize::from(be16(body, 4)), body.len() - 6);
                }
                assert!(matches!(be16(body, 6), 0x0021 | 0x0057));
                return body[8..].to_vec();
            }
            _ => {}
        }
        assert_eq!(ethertype, 0x0800);
        let ip = body;
        assert_eq!(fold(ones_complement_add(0, &ip[..20])), 0, "IPv4 checksum");
        if complete {
            assert_eq!(usize::from(be16(ip, 2)), ip.len(), "IPv4 total length");
        }
        assert_eq!(&ip[12..20], &[10, 255, 0, 1, 10, 255, 0, 2]);
        let l4 = &ip[20..];
        let udp = |port: u16| -> &[u8] {
            assert_eq!(ip[9], 17);
            assert_eq!(be16(l4, 2), port);
            if complete {
                assert_eq!(usize::from(be16(l4, 4)), l4.len(), "UDP length");
                let sum = ones_complement_add(
                    pseudo_header_sum(OUTER_SRC.into(), OUTER_DST.into(), 17, l4.len()),
                    l4,
                );
                assert_eq!(fold(sum), 0, "UDP checksum");
            } else {
                assert_eq!(be16(l4, 6), 0, "no UDP checksum over a cut frame");
            }
            &l4[8..]
        };
        match kind {
            TunnelKind::Vxlan | TunnelKind::VxlanWithoutIFlag => {
                let v = udp(4789);
                assert_eq!(v[0] & 0x08 != 0, kind == TunnelKind::Vxlan, "I flag");
                assert_eq!(&v[4..8], &[0x00, 0x13, 0x89, 0x00]); // VNI 5001
                v[8..].to_vec()
            }
            TunnelKind::Geneve => {
                let g = udp(6081);
                assert_eq!(g[0] >> 6, 0, "version 0");
                let opt = usize::from(g[0] & 0x3f) * 4;
                assert_eq!(opt, 8);
                assert_eq!(be16(g, 2), 0x6558);
                // The option's own length (low 5 bits, x 4) fills the space.
                assert_eq!(4 + usize::from(g[8 + 3] & 0x1f) * 4, opt);
                g[8 + opt..].to_vec()
            }
            TunnelKind::Gtpu => {
                let g = udp(2152);
                assert_eq!(g[0], 0x32, "version 1, PT, S");
                assert_eq!(g[1], 0xFF, "G-PDU");
                if complete {
                    assert_eq!(usize::from(be16(g, 2)), g.len() - 8);
                }
                assert_eq!(g[11], 0, "no extension header");
                g[12..].to_vec()
            }
            TunnelKind::Gre => {
                assert_eq!(ip[9], 47);
                assert_eq!(be16(l4, 0), 0x3000, "key and sequence, version 0");
                assert!(matches!(be16(l4, 2), 0x0800 | 0x86DD));
                l4[12..].to_vec()
            }
            TunnelKind::ErspanII => {
                assert_eq!(ip[9], 47);
                assert_eq!(be16(l4, 0), 0x1000, "sequence bit");
                assert_eq!(be16(l4, 2), 0x88BE);
                assert_eq!(l4[8] >> 4, 1, "ERSPAN version 1");
                assert_eq!(be16(l4, 10) & 0x3ff, 101, "session");
                l4[16..].to_vec()
            }
            TunnelKind::ErspanIII => {
                assert_eq!(ip[9], 47);
                assert_eq!(be16(l4, 0), 0x1000);
                assert_eq!(be16(l4, 2), 0x22EB);
                let e = &l4[8..];
                assert_eq!(e[0] >> 4, 2, "ERSPAN version 2");
                assert_eq!((e[10] >> 2) & 0x1f, 0, "frame type Ethernet");
                assert_eq!(e[11] & 1, 0, "no optional subheader");
                e[12..].to_vec()
            }
            TunnelKind::IpInIp => {
                assert!(matches!(ip[9], 4 | 41));
                l4.to_vec()
            }
            TunnelKind::MplsIp | TunnelKind::MplsEthernet | TunnelKind::Pppoe => unreachable!(),
        }
    }

    #[test]
    fn every_kind_carries_the_frame_or_its_ip_packet_with_valid_headers() {
        let inner = inner_v4();
        let ip = inner[18..].to_vec(); // after the 802.1Q tag
        let mut all = TunnelKind::VALID.to_vec();
        all.push(TunnelKind::VxlanWithoutIFlag);
        for kind in all {
            let mut e = Encapsulator::new(kind);
            let w = e.wrap(&inner, inner.len(), 1_000).unwrap();
            assert_eq!(w.wire_len, w.data.len(), "{kind}");
            let carried = open(kind, &w.data, true);
            if kind.carries_ethernet() {
                assert_eq!(carried, inner, "{kind}");
                assert_eq!(w.data.len(), inner.len() + kind.overhead(), "{kind}");
            } else {
                assert_eq!(carried, ip, "{kind}");
                assert_eq!(w.data.len(), ip.len() + kind.overhead(), "{kind}");
            }
        }
    }

    #[test]
    fn ipv6_inner_packets_get_their_own_protocol_numbers() {
        let inner = inner_v6();
        let ip = &inner[14..];
        let w = Encapsulator::new(TunnelKind::IpInIp)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!(w[14 + 9], 41, "6in4");
        assert_eq!(open(TunnelKind::IpInIp, &w, true), ip);
        let w = Encapsulator::new(TunnelKind::Gre)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!(be16(&w, 34 + 2), 0x86DD);
        let w = Encapsulator::new(TunnelKind::Pppoe)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!(be16(&w, 14 + 6), 0x0057);
        assert_eq!(open(TunnelKind::Pppoe, &w, true), ip);
        let w = Encapsulator::new(TunnelKind::Gtpu)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!(open(TunnelKind::Gtpu, &w, true), ip);
    }

    #[test]
    fn a_cut_frame_keeps_lengths_on_the_wire_and_sends_no_udp_checksum() {
        let inner = Packet::udp(
            Ipv4Addr::new(203, 0, 113, 5),
            Ipv4Addr::new(10, 0, 0, 10),
            53,
            4444,
            &[0x55; 1200],
        )
        .build();
        let wire = inner.len();
        let cut = &inner[..96];
        for kind in TunnelKind::VALID {
            let w = Encapsulator::new(kind).wrap(cut, wire, 0).unwrap();
            let strip = if kind.carries_ethernet() { 0 } else { 14 };
            assert_eq!(w.wire_len, wire - strip + kind.overhead(), "{kind}");
            assert_eq!(w.data.len(), 96 - strip + kind.overhead(), "{kind}");
            let carried = open(kind, &w.data, false);
            assert_eq!(carried, cut[strip..], "{kind}");
            match kind {
                TunnelKind::MplsIp | TunnelKind::MplsEthernet => {}
                TunnelKind::Pppoe => {
                    assert_eq!(usize::from(be16(&w.data, 18)), wire - 14 + 2)
                }
                _ => assert_eq!(usize::from(be16(&w.data, 16)), w.wire_len - 14, "{kind}"),
            }
        }
        assert_eq!(
            Encapsulator::new(TunnelKind::Gre).wrap(&inner, 10, 0),
            Err(WrapError::LongerThanWire)
        );
    }

    #[test]
    fn sequence_numbers_and_ip_ids_advance_per_packet() {
        let inner = inner_v4();
        let mut e = Encapsulator::new(TunnelKind::Gre);
        let a = e.wrap_frame(&inner).unwrap();
        let b = e.wrap_frame(&inner).unwrap();
        assert_eq!(&a[34 + 8..34 + 12], &1u32.to_be_bytes());
        assert_eq!(&b[34 + 8..34 + 12], &2u32.to_be_bytes());
        assert_eq!(be16(&b, 18), 2);
        assert_eq!(e.packets(), 2);
        let mut g = Encapsulator::new(TunnelKind::Gtpu);
        g.wrap_frame(&inner).unwrap();
        let w = g.wrap_frame(&inner).unwrap();
        assert_eq!(be16(&w, 42 + 8), 2, "GTP-U sequence number");
    }

    #[test]
    fn nesting_puts_vxlan_inside_gre() {
        let inner = inner_v4();
        let mut layers = [
            Encapsulator::between(
                TunnelKind::Vxlan,
                Ipv4Addr::new(10, 255, 1, 1),
                Ipv4Addr::new(10, 255, 1, 2),
            ),
            Encapsulator::new(TunnelKind::Gre),
        ];
        let w = nest(&inner, inner.len(), 0, &mut layers).unwrap();
        let vxlan_ip = open(TunnelKind::Gre, &w.data, true);
        assert_eq!(vxlan_ip[9], 17);
        assert_eq!(&vxlan_ip[12..20], &[10, 255, 1, 1, 10, 255, 1, 2]);
        assert_eq!(be16(&vxlan_ip, 22), 4789);
        assert_eq!(&vxlan_ip[36..], &inner[..]);
        assert_eq!(
            w.data.len(),
            inner.len() + TunnelKind::Vxlan.overhead() + TunnelKind::Gre.overhead() - 14
        );
    }

    #[test]
    fn tunnels_over_ipv6_have_a_40_byte_header_and_a_udp_checksum() {
        let inner = inner_v4();
        let w = Encapsulator::between(TunnelKind::Vxlan, OUTER_SRC6, OUTER_DST6)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!(be16(&w, 12), 0x86DD);
        let ip = &w[14..];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(usize::from(be16(ip, 4)), ip.len() - 40, "payload length");
        assert_eq!(ip[6], 17);
        let udp = &ip[40..];
        assert_eq!(be16(udp, 2), 4789);
        assert_eq!(usize::from(be16(udp, 4)), udp.len());
        let sum = ones_complement_add(
            pseudo_header_sum(OUTER_SRC6.into(), OUTER_DST6.into(), 17, udp.len()),
            udp,
        );
        assert_eq!(fold(sum), 0, "UDP checksum over IPv6");
        assert_eq!(&udp[16..], &inner[..]);
        // 4in6: next header 4, the IPv4 packet right after.
        let w = Encapsulator::between(TunnelKind::IpInIp, OUTER_SRC6, OUTER_DST6)
            .wrap_frame(&inner)
            .unwrap();
        assert_eq!((be16(&w, 12), w[14 + 6]), (0x86DD, 4));
        assert_eq!(&w[54..], &inner[18..]);
        assert_eq!(
            w.len(),
            TunnelKind::IpInIp.overhead() + 20 + inner.len() - 18
        );
    }

    #[test]
    #[should_panic(expected = "different address families")]
    fn mixed_outer_families_are_refused() {
        let _ = Encapsulator::between(TunnelKind::Gre, OUTER_SRC, OUTER_DST6);
    }

    #[test]
    fn fragments_carry_the_packet_in_8_byte_units_with_valid_headers() {
        let inner = Packet::udp(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(203, 0, 113, 1),
            1,
            2,
            &[7; 1000],
        )
        .build();
        let outer = Encapsulator::new(TunnelKind::Gre)
            .wrap_frame(&inner)
            .unwrap();
        let frags = fragment_ipv4(&outer, 576);
        assert_eq!(frags.len(), 2);
        let mut data = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let ip = &f[14..];
            assert!(ip.len() <= 576);
            assert_eq!(fold(ones_complement_add(0, &ip[..20])), 0);
            assert_eq!(usize::from(be16(ip, 2)), ip.len());
            let fo = be16(ip, 6);
            assert_eq!(fo & 0x4000, 0, "DF cleared");
            assert_eq!(fo & 0x2000 != 0, i == 0, "MF on all but the last");
            assert_eq!(usize::from(fo & 0x1fff) * 8, data.len());
            data.extend_from_slice(&ip[20..]);
        }
        assert_eq!(data, outer[34..]);
        assert_eq!(fragment_ipv4(&inner, 1500), vec![inner.clone()]);
    }

    #[test]
    fn a_frame_without_ip_cannot_go_into_an_ip_tunnel() {
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        for kind in TunnelKind::VALID {
            let r = Encapsulator::new(kind).wrap_frame(&arp);
            assert_eq!(r.is_ok(), kind.carries_ethernet(), "{kind}");
        }
    }
}
