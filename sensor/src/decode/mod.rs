//! Packet decoding: link layer → IP → transport, on untrusted bytes.
//!
//! [`decode`] never panics and never reads past the captured bytes: every
//! header is read through `pnet_packet` views that check the minimum size,
//! and every length taken from a header is checked against what was
//! captured. A packet that cannot be decoded gives a [`Skip`] reason, which
//! the pipeline counts; it is never an error that stops a capture.

use std::net::IpAddr;

use pnet_packet::ethernet::EtherTypes;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

/// IP protocol numbers the detectors care about.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;

    /// The wire name of a protocol number.
    pub fn name(p: u8) -> String {
        match p {
            ICMP => "icmp".into(),
            TCP => "tcp".into(),
            UDP => "udp".into(),
            ICMPV6 => "icmpv6".into(),
            other => other.to_string(),
        }
    }
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Link-layer framing of a capture (libpcap `DLT_*` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet (DLT_EN10MB = 1), with 802.1Q/802.1ad/QinQ tags.
    Ethernet,
    /// Linux cooked capture v1 (DLT_LINUX_SLL = 113).
    LinuxSll,
    /// Linux cooked capture v2 (DLT_LINUX_SLL2 = 276).
    LinuxSll2,
    /// Raw IPv4 or IPv6 (DLT_RAW = 12 or 14, LINKTYPE_RAW = 101,
    /// DLT_IPV4 = 228, DLT_IPV6 = 229).
    RawIp,
    /// BSD loopback (DLT_NULL = 0, DLT_LOOP = 108): a 4-byte family.
    Null,
}

impl LinkType {
    /// Maps a libpcap data-link type, or `None` if unsupported.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            12 | 14 | 101 | 228 | 229 => Some(LinkType::RawIp),
            0 | 108 => Some(LinkType::Null),
            _ => None,
        }
    }
}

/// Why a packet was not decoded to IP. Each is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IP (ARP, LLDP, ...): normal, not an error.
    NotIp,
    /// A header claims more bytes than were captured.
    Truncated,
    /// A header field is impossible (IP header length < 20, bad version...).
    Malformed,
    /// More nested VLAN tags or IPv6 extension headers than we follow.
    TooManyLayers,
}

impl Skip {
    /// A short name for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotIp => "not_ip",
            Skip::Truncated => "truncated",
            Skip::Malformed => "malformed",
            Skip::TooManyLayers => "too_many_layers",
        }
    }
}

/// Whether, and which part of, a fragmented IP datagram this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// The first fragment (offset 0, more fragments follow): has the
    /// transport header.
    First,
    /// A later fragment: no transport header.
    Later,
}

/// Where a fragment belongs in its datagram (all zero for a packet that
/// is not fragmented).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frag<'a> {
    /// IPv4 identification or IPv6 fragment identification.
    pub id: u32,
    /// Byte offset of `body` in the datagram's payload.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// The fragment's bytes after the IP header(s) (for the first
    /// fragment, starting with the transport header).
    pub body: &'a [u8],
}

/// What the detectors need to know about one packet.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (after IPv6 extension headers).
    pub proto: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP/UDP source port, ICMP type; 0 otherwise.
    pub src_port: u16,
    /// TCP/UDP destination port, ICMP code; 0 otherwise.
    pub dst_port: u16,
    /// TCP flags (see [`tcp_flags`]); 0 for other protocols.
    pub tcp_flags: u8,
    /// TCP sequence number; 0 for other protocols.
    pub tcp_seq: u32,
    /// Transport payload, as captured (may be shorter than on the wire).
    pub payload: &'a [u8],
    /// Fragmentation state.
    pub fragment: Fragment,
    /// For a fragment: its place in the datagram.
    pub frag: Frag<'a>,
}

/// The headers of one packet, without its payload: everything the
/// volumetric detector needs. Live workers send these (not packets) to the
/// volumetric thread; replay hands the same record over directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (after IPv6 extension headers).
    pub proto: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP/UDP source port, ICMP type; 0 otherwise.
    pub src_port: u16,
    /// TCP/UDP destination port, ICMP code; 0 otherwise.
    pub dst_port: u16,
    /// TCP flags (see [`tcp_flags`]); 0 for other protocols.
    pub tcp_flags: u8,
    /// Whether the transport carried payload bytes.
    pub has_payload: bool,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// IPv4 identification or IPv6 fragment identification of a fragment
    /// (0 otherwise): ties later fragments to their first.
    pub frag_id: u32,
}

impl Decoded<'_> {
    /// The packet's headers, without its payload.
    #[inline]
    pub fn header(&self) -> Header {
        Header {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            ttl: self.ttl,
            src_port: self.src_port,
            dst_port: self.dst_port,
            tcp_flags: self.tcp_flags,
            has_payload: !self.payload.is_empty(),
            fragment: self.fragment,
            frag_id: self.frag.id,
        }
    }
}

const MAX_VLAN_TAGS: usize = 8;
const MAX_IPV6_EXT: usize = 8;

/// Decodes one captured frame.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, Skip> {
    let ip = match link {
        LinkType::Ethernet => ethernet_payload(frame)?,
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(Skip::Truncated)?;
            ether_payload(proto, frame.get(16..).ok_or(Skip::Truncated)?)?
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(Skip::Truncated)?;
            ether_payload(proto, frame.get(20..).ok_or(Skip::Truncated)?)?
        }
        LinkType::RawIp => frame,
        LinkType::Null => frame.get(4..).ok_or(Skip::Truncated)?,
    };
    decode_ip(ip)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn ethernet_payload(frame: &[u8]) -> Result<&[u8], Skip> {
    let mut ethertype = be16(frame, 12).ok_or(Skip::Truncated)?;
    let mut rest = frame.get(14..).ok_or(Skip::Truncated)?;
    for _ in 0..MAX_VLAN_TAGS {
        match ethertype {
            0x8100 | 0x88a8 | 0x9100 => {
                ethertype = be16(rest, 2).ok_or(Skip::Truncated)?;
                rest = rest.get(4..).ok_or(Skip::Truncated)?;
            }
            _ => return ether_payload(ethertype, rest),
        }
    }
    Err(Skip::TooManyLayers)
}

fn ether_payload(ethertype: u16, rest: &[u8]) -> Result<&[u8], Skip> {
    if ethertype == EtherTypes::Ipv4.0 || ethertype == EtherTypes::Ipv6.0 {
        Ok(rest)
    } else {
        Err(Skip::NotIp)
    }
}

/// Decodes an IPv4 or IPv6 packet (by its version nibble).
pub fn decode_ip(ip: &[u8]) -> Result<Decoded<'_>, Skip> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(ip),
        Some(6) => decode_ipv6(ip),
        Some(_) => Err(Skip::Malformed),
        None => Err(Skip::Truncated),
    }
}

fn decode_ipv4(ip: &[u8]) -> Result<Decoded<'_>, Skip> {
    let h = Ipv4Packet::new(ip).ok_or(Skip::Truncated)?;
    let hlen = usize::from(h.get_header_length()) * 4;
    let total = usize::from(h.get_total_length());
    if hlen < 20 || total < hlen {
        return Err(Skip::Malformed);
    }
    if hlen > ip.len() {
        return Err(Skip::Truncated);
    }
    // Captured bytes may be fewer than total (snaplen) or more (Ethernet
    // padding): take the smaller.
    let end = total.min(ip.len());
    let body = ip.get(hlen..end).ok_or(Skip::Truncated)?;
    let more_fragments = h.get_flags() & 0b001 != 0;
    let offset = h.get_fragment_offset();
    let fragment = match (offset, more_fragments) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    let src = IpAddr::V4(h.get_source());
    let dst = IpAddr::V4(h.get_destination());
    let mut d = transport(
        src,
        dst,
        h.get_next_level_protocol().0,
        h.get_ttl(),
        body,
        fragment,
    )?;
    if fragment != Fragment::None {
        d.frag = Frag {
            id: u32::from(h.get_identification()),
            offset: u32::from(offset) * 8,
            more: more_fragments,
            body,
        };
    }
    Ok(d)
}

fn decode_ipv6(ip: &[u8]) -> Result<Decoded<'_>, Skip> {
    let h = Ipv6Packet::new(ip).ok_or(Skip::Truncated)?;
    let plen = usize::from(h.get_payload_length());
    let end = (40 + plen).min(ip.len());
    let mut body = ip.get(40..end).ok_or(Skip::Truncated)?;
    let mut next = h.get_next_header().0;
    let mut fragment = Fragment::None;
    let mut frag = Frag::default();
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing, destination options, mobility: length in
            // 8-octet units, not counting the first 8.
            0 | 43 | 60 | 135 => {
                let len = (usize::from(*body.get(1).ok_or(Skip::Truncated)?) + 1) * 8;
                next = *body.first().ok_or(Skip::Truncated)?;
                body = body.get(len..).ok_or(Skip::Truncated)?;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let len = (usize::from(*body.get(1).ok_or(Skip::Truncated)?) + 2) * 4;
                next = *body.first().ok_or(Skip::Truncated)?;
                body = body.get(len..).ok_or(Skip::Truncated)?;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let off_flags = be16(body, 2).ok_or(Skip::Truncated)?;
                let id = body
                    .get(4..8)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .ok_or(Skip::Truncated)?;
                next = *body.first().ok_or(Skip::Truncated)?;
                body = body.get(8..).ok_or(Skip::Truncated)?;
                let offset = off_flags >> 3;
                let more = off_flags & 1 != 0;
                frag = Frag {
                    id,
                    offset: u32::from(offset) * 8,
                    more,
                    body: &[],
                };
                fragment = match (offset, more) {
                    (0, false) => Fragment::None, // atomic fragment
                    (0, true) => Fragment::First,
                    _ => Fragment::Later,
                };
            }
            _ => {
                let src = IpAddr::V6(h.get_source());
                let dst = IpAddr::V6(h.get_destination());
                let mut d = transport(src, dst, next, h.get_hop_limit(), body, fragment)?;
                if fragment != Fragment::None {
                    d.frag = Frag { body, ..frag };
                }
                return Ok(d);
            }
        }
    }
    Err(Skip::TooManyLayers)
}

/// The transport layer of a whole (reassembled) datagram's payload.
pub fn reassembled<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    body: &'a [u8],
) -> Result<Decoded<'a>, Skip> {
    transport(src, dst, proto, ttl, body, Fragment::None)
}

fn transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    body: &'a [u8],
    fragment: Fragment,
) -> Result<Decoded<'a>, Skip> {
    let mut d = Decoded {
        src,
        dst,
        proto,
        ttl,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        payload: body,
        fragment,
        frag: Frag::default(),
    };
    if fragment == Fragment::Later {
        return Ok(d);
    }
    match proto {
        proto::TCP => {
            let t = TcpPacket::new(body).ok_or(Skip::Truncated)?;
            let off = usize::from(t.get_data_offset()) * 4;
            if off < 20 {
                return Err(Skip::Malformed);
            }
            d.payload = body.get(off..).ok_or(Skip::Truncated)?;
            d.src_port = t.get_source();
            d.dst_port = t.get_destination();
            d.tcp_flags = t.get_flags();
            d.tcp_seq = t.get_sequence();
        }
        proto::UDP => {
            let u = UdpPacket::new(body).ok_or(Skip::Truncated)?;
            let len = usize::from(u.get_length());
            if len < 8 {
                return Err(Skip::Malformed);
            }
            d.src_port = u.get_source();
            d.dst_port = u.get_destination();
            // The UDP length bounds the payload; capture may be shorter.
            let end = len.min(body.len());
            d.payload = body.get(8..end).unwrap_or_default();
        }
        proto::ICMP | proto::ICMPV6 => {
            d.src_port = u16::from(*body.first().ok_or(Skip::Truncated)?);
            d.dst_port = u16::from(*body.get(1).ok_or(Skip::Truncated)?);
            d.payload = body.get(4..).unwrap_or_default();
        }
        _ => {}
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(flags: u8, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            8,
            8,
            8,
            8,
        ];
        p.extend_from_slice(&[
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(payload);
        p
    }

    fn ethernet(ethertype: &[u8], ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(ethertype);
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn decodes_ethernet_ipv4_tcp() {
        let f = ethernet(&[8, 0], &ipv4_tcp(0x02, b"hi"));
        let d = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(d.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(d.dst_port, 80);
        assert_eq!(d.src_port, 40000);
        assert_eq!(d.tcp_flags, tcp_flags::SYN);
        assert_eq!(d.payload, b"hi");
    }

    #[test]
    fn follows_qinq_vlan_tags() {
        let mut tagged = vec![0x00, 0x01, 0x81, 0x00, 0x00, 0x02, 0x08, 0x00];
        // outer 802.1ad tag (TCI 1) carrying an 802.1Q tag (TCI 2), then IPv4
        tagged.extend_from_slice(&ipv4_tcp(0x10, b""));
        let f = ethernet(&[0x88, 0xa8], &tagged);
        let d = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(d.tcp_flags, tcp_flags::ACK);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut ip = ipv4_tcp(0x02, b"");
        ip.extend_from_slice(&[0; 6]);
        let f = ethernet(&[8, 0], &ip);
        let d = decode(LinkType::Ethernet, &f).unwrap();
        assert!(d.payload.is_empty());
    }

    #[test]
    fn linux_sll_and_raw_ip_decode() {
        let ip = ipv4_tcp(0x02, b"x");
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[8, 0]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll, &sll).unwrap().payload, b"x");
        let mut sll2 = vec![8u8, 0];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll2, &sll2).unwrap().payload, b"x");
        assert_eq!(decode(LinkType::RawIp, &ip).unwrap().payload, b"x");
    }

    #[test]
    fn every_truncation_of_a_packet_is_skipped_not_panicked() {
        let f = ethernet(&[8, 0], &ipv4_tcp(0x18, b"payload"));
        for n in 0..f.len() {
            let _ = decode(LinkType::Ethernet, &f[..n]);
        }
    }

    #[test]
    fn bogus_ip_header_length_is_malformed() {
        let mut ip = ipv4_tcp(0x02, b"");
        ip[0] = 0x43; // IHL 3 words
        assert_eq!(decode(LinkType::RawIp, &ip).unwrap_err(), Skip::Malformed);
        let mut ip = ipv4_tcp(0x02, b"");
        ip[2] = 0;
        ip[3] = 0; // total length 0
        assert_eq!(decode(LinkType::RawIp, &ip).unwrap_err(), Skip::Malformed);
    }

    #[test]
    fn arp_is_not_ip() {
        let f = ethernet(&[0x08, 0x06], &[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, &f).unwrap_err(), Skip::NotIp);
    }

    /// Random frames built to get past the first checks (plausible
    /// ethertypes, IP versions, protocols and lengths, then random bytes)
    /// never panic and never yield a payload outside the frame.
    #[test]
    fn random_frames_never_panic_or_escape_the_frame() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let links = [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Null,
        ];
        for i in 0..200_000u32 {
            let len = (next() % 160) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let link = links[(i as usize) % links.len()];
            // Steer toward deeper layers most of the time.
            let ip_at = match link {
                LinkType::Ethernet => {
                    if f.len() > 14 {
                        let et: [u8; 2] = match next() % 4 {
                            0 => [0x81, 0x00],
                            1 => [0x86, 0xdd],
                            _ => [0x08, 0x00],
                        };
                        f[12..14].copy_from_slice(&et);
                    }
                    14
                }
                LinkType::LinuxSll => 16,
                LinkType::LinuxSll2 => 20,
                LinkType::RawIp => 0,
                LinkType::Null => 4,
            };
            if let Some(b) = f.get_mut(ip_at) {
                *b = if next() % 2 == 0 { 0x45 } else { 0x60 };
            }
            if let Some(p) = f.get_mut(ip_at + 9) {
                *p = [6u8, 17, 1, 58, 44, 0][(next() % 6) as usize];
            }
            if let Some(p) = f.get_mut(ip_at + 6) {
                *p = [6u8, 17, 58, 0, 44, 51][(next() % 6) as usize];
            }
            if let Ok(d) = decode(link, &f) {
                if d.payload.is_empty() {
                    continue; // may be a static empty slice
                }
                let start = d.payload.as_ptr() as usize;
                let base = f.as_ptr() as usize;
                assert!(start >= base && start + d.payload.len() <= base + f.len());
            }
        }
    }

    #[test]
    fn ipv6_fragment_and_hop_by_hop_headers_are_followed() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]); // HBH -> fragment
        ip.extend_from_slice(&[58, 0, 0, 1, 0, 0, 0, 7]); // fragment, offset 0, M=1 -> ICMPv6
        ip.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        let d = decode(LinkType::RawIp, &ip).unwrap();
        assert_eq!(d.proto, proto::ICMPV6);
        assert_eq!(d.fragment, Fragment::First);
        assert_eq!((d.frag.id, d.frag.offset, d.frag.more), (7, 0, true));
        assert_eq!(d.src_port, 128);
    }
}
