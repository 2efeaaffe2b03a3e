//! Packet decoding: link layer → IP → transport, on untrusted bytes.
//!
//! [`decode`] never panics and never reads past the captured bytes: every
//! fixed header is taken as a fixed-size array (`slice.get(..N)` then
//! `try_into`, so constant offsets need no checks and cannot fail) or
//! through a `pnet_packet` view that checks the minimum size, and every
//! length taken from a header is checked against what was captured. A packet that cannot be decoded gives a [`Skip`] reason, which
//! the pipeline counts; it is never an error that stops a capture.
//!
//! Tunnels ([`tunnel`]) are opened recursively, up to `[decap] max_depth`:
//! GRE (with ERSPAN I/II/III), VXLAN, Geneve, MPLS (with IP or Ethernet
//! pseudowires), PPPoE, GTP-U and IP in IP. The detectors see the
//! innermost packet; [`Decoded::tunnels`] says which kinds were opened and
//! [`Decoded::outer_len`] how many bytes of encapsulation were taken off,
//! so outer endpoints (a mirror source, a tunnel router) are never
//! counted as a victim or an attacker. A tunnel header that does not
//! validate leaves the packet as the outer packet it is, counted in
//! [`Decoded::malformed_tunnels`].

pub mod tunnel;

use std::net::{IpAddr, Ipv4Addr};

use pnet_packet::ipv6::Ipv6Packet;

use tunnel::{DecapConfig, Inner, Kind, Kinds};

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
    /// IPv4 in IP (IPIP, 4in6).
    pub const IPIP: u8 = 4;
    /// IPv6 in IP (6in4, IPv6-in-IPv6).
    pub const IPV6_IN_IP: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;

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
    /// PPP (DLT_PPP = 9, DLT_PPP_SERIAL = 50): optional address and
    /// control bytes (0xFF 0x03), then the PPP protocol field.
    Ppp,
    /// PPPoE without an Ethernet header (DLT_PPP_ETHER = 51).
    PppEther,
    /// Cisco HDLC (DLT_C_HDLC = 104): address, control, an ethertype.
    CiscoHdlc,
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
            9 | 50 => Some(LinkType::Ppp),
            51 => Some(LinkType::PppEther),
            104 => Some(LinkType::CiscoHdlc),
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
    /// More nested VLAN tags, IPv6 extension headers or tunnels than we
    /// follow.
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
    /// TCP acknowledgement number; 0 for other protocols.
    pub tcp_ack: u32,
    /// Transport payload, as captured (may be shorter than on the wire).
    pub payload: &'a [u8],
    /// Fragmentation state.
    pub fragment: Fragment,
    /// For a fragment: its place in the datagram.
    pub frag: Frag<'a>,
    /// Tunnel kinds opened to reach this packet (empty for a packet that
    /// was not encapsulated).
    pub tunnels: Kinds,
    /// Tunnel kinds whose header did not validate: the packet is the
    /// outer one.
    pub malformed_tunnels: Kinds,
    /// Bytes of encapsulation taken off in front of the packet (outer IP
    /// and tunnel headers, and the link headers between them): the length
    /// on the wire less this is the inner packet's.
    pub outer_len: u32,
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
    /// TCP sequence number; 0 for other protocols.
    pub tcp_seq: u32,
    /// TCP acknowledgement number; 0 for other protocols.
    pub tcp_ack: u32,
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
            tcp_seq: self.tcp_seq,
            tcp_ack: self.tcp_ack,
            has_payload: !self.payload.is_empty(),
            fragment: self.fragment,
            frag_id: self.frag.id,
        }
    }
}

const MAX_VLAN_TAGS: usize = 8;
/// An Ethernet header without tags.
const ETHERNET_HEADER: usize = 14;
const MAX_IPV6_EXT: usize = 8;

/// What decoding carries down the layers: the tunnel settings, how deep
/// it is, and what was opened on the way.
struct Ctx<'c, 'o, 'a> {
    cfg: &'c DecapConfig,
    depth: u8,
    tunnels: Kinds,
    malformed: Kinds,
    outer_len: usize,
    /// The summary being filled in: the innermost packet's once decoding
    /// is done (written in place, not returned through every layer).
    out: &'o mut Decoded<'a>,
}

impl<'c, 'o, 'a> Ctx<'c, 'o, 'a> {
    fn new(cfg: &'c DecapConfig, out: &'o mut Decoded<'a>) -> Self {
        Ctx {
            cfg,
            depth: 0,
            tunnels: Kinds::default(),
            malformed: Kinds::default(),
            outer_len: 0,
            out,
        }
    }

    /// Writes the tunnel facts gathered on the way into the summary.
    fn finish(self) {
        self.out.tunnels = self.tunnels;
        self.out.malformed_tunnels = self.malformed;
        self.out.outer_len = u32::try_from(self.outer_len).unwrap_or(u32::MAX);
    }
}

impl Default for Decoded<'_> {
    /// An empty summary: no addresses, no transport, nothing opened.
    fn default() -> Self {
        Decoded {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            ttl: 0,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            payload: &[],
            fragment: Fragment::None,
            frag: Frag::default(),
            tunnels: Kinds::default(),
            malformed_tunnels: Kinds::default(),
            outer_len: 0,
        }
    }
}

/// Decodes one captured frame, opening tunnels as `cfg` allows.
pub fn decode<'a>(link: LinkType, frame: &'a [u8], cfg: &DecapConfig) -> Result<Decoded<'a>, Skip> {
    let mut d = Decoded::default();
    decode_into(link, frame, cfg, &mut d)?;
    Ok(d)
}

/// [`decode`] into `out`, which must start as [`Decoded::default`] (the
/// fields a packet's protocols do not set are left as they are):
/// the per-packet path fills one summary in place instead of copying it
/// out of a `Result`. On an error `out` holds a partial summary.
#[inline(never)]
pub fn decode_into<'a>(
    link: LinkType,
    frame: &'a [u8],
    cfg: &DecapConfig,
    out: &mut Decoded<'a>,
) -> Result<(), Skip> {
    let mut cx = Ctx::new(cfg, out);
    match link {
        LinkType::Ethernet => ethernet(frame, &mut cx),
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(Skip::Truncated)?;
            ether_payload(proto, frame.get(16..).ok_or(Skip::Truncated)?, &mut cx)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(Skip::Truncated)?;
            ether_payload(proto, frame.get(20..).ok_or(Skip::Truncated)?, &mut cx)
        }
        LinkType::RawIp => decode_ip(frame, &mut cx),
        LinkType::Null => decode_ip(frame.get(4..).ok_or(Skip::Truncated)?, &mut cx),
        LinkType::Ppp => {
            let rest = match frame {
                [0xff, 0x03, rest @ ..] => rest,
                _ => frame,
            };
            decode_ip(tunnel::ppp_ip(rest).ok_or(Skip::NotIp)?, &mut cx)
        }
        LinkType::PppEther => pppoe(frame, &mut cx),
        LinkType::CiscoHdlc => {
            let proto = be16(frame, 2).ok_or(Skip::Truncated)?;
            ether_payload(proto, frame.get(4..).ok_or(Skip::Truncated)?, &mut cx)
        }
    }?;
    cx.finish();
    Ok(())
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

#[inline]
fn ethernet<'a>(frame: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    let mut ethertype = be16(frame, 12).ok_or(Skip::Truncated)?;
    let mut rest = frame.get(14..).ok_or(Skip::Truncated)?;
    for _ in 0..MAX_VLAN_TAGS {
        match ethertype {
            0x8100 | 0x88a8 | 0x9100 => {
                ethertype = be16(rest, 2).ok_or(Skip::Truncated)?;
                rest = rest.get(4..).ok_or(Skip::Truncated)?;
            }
            _ => return ether_payload(ethertype, rest, cx),
        }
    }
    Err(Skip::TooManyLayers)
}

#[inline]
fn ether_payload<'a>(ethertype: u16, rest: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    match ethertype {
        0x0800 | 0x86dd => decode_ip(rest, cx),
        0x8847 | 0x8848 if cx.cfg.mpls => {
            let o = tunnel::mpls(rest).ok_or(Skip::Truncated)?;
            enter(o.kind, cx)?;
            cx.outer_len += o.frame.as_ptr() as usize - rest.as_ptr() as usize;
            inner(o.inner, o.frame, cx)
        }
        0x8864 if cx.cfg.pppoe => pppoe(rest, cx),
        _ => Err(Skip::NotIp),
    }
}

fn pppoe<'a>(rest: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    let o = tunnel::pppoe(rest).ok_or(Skip::Truncated)?;
    enter(o.kind, cx)?;
    let ip = tunnel::ppp_ip(o.frame).ok_or(Skip::NotIp)?;
    cx.outer_len += ip.as_ptr() as usize - rest.as_ptr() as usize;
    decode_ip(ip, cx)
}

/// Counts one more level of tunnels; past the cap the packet is skipped.
#[inline]
fn enter(kind: Kind, cx: &mut Ctx<'_, '_, '_>) -> Result<(), Skip> {
    cx.depth += 1;
    if cx.depth > cx.cfg.max_depth {
        return Err(Skip::TooManyLayers);
    }
    cx.tunnels.add(kind);
    Ok(())
}

/// Decodes the frame inside a tunnel.
#[inline]
fn inner<'a>(framing: Inner, frame: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    match framing {
        // The outer frame's link header is still counted in the length on
        // the wire: the inner Ethernet header is encapsulation too.
        Inner::Ethernet => {
            cx.outer_len += ETHERNET_HEADER;
            ethernet(frame, cx)
        }
        Inner::Ip => decode_ip(frame, cx),
        Inner::Mpls => {
            let o = tunnel::mpls(frame).ok_or(Skip::Truncated)?;
            enter(o.kind, cx)?;
            cx.outer_len += o.frame.as_ptr() as usize - frame.as_ptr() as usize;
            inner(o.inner, o.frame, cx)
        }
        Inner::Ppp => decode_ip(tunnel::ppp_ip(frame).ok_or(Skip::NotIp)?, cx),
    }
}

#[inline]
fn decode_ip<'a>(ip: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(ip, cx),
        Some(6) => decode_ipv6(ip, cx),
        Some(_) => Err(Skip::Malformed),
        None => Err(Skip::Truncated),
    }
}

fn decode_ipv4<'a>(ip: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    // The fixed header, read through a 20-byte array: constant offsets
    // into an array cannot go out of bounds, and cost no checks.
    let h: &[u8; 20] = ip
        .get(..20)
        .and_then(|b| b.try_into().ok())
        .ok_or(Skip::Truncated)?;
    let hlen = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
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
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    let more_fragments = flags_offset & 0x2000 != 0;
    let offset = flags_offset & 0x1fff;
    let fragment = match (offset, more_fragments) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    transport(
        Ip {
            src,
            dst,
            proto: h[9],
            ttl: h[8],
            start: ip,
        },
        body,
        fragment,
        cx,
    )?;
    if fragment != Fragment::None {
        cx.out.frag = Frag {
            id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            offset: u32::from(offset) * 8,
            more: more_fragments,
            body,
        };
    }
    Ok(())
}

fn decode_ipv6<'a>(ip: &'a [u8], cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
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
                let ip = Ip {
                    src,
                    dst,
                    proto: next,
                    ttl: h.get_hop_limit(),
                    start: ip,
                };
                transport(ip, body, fragment, cx)?;
                if fragment != Fragment::None {
                    cx.out.frag = Frag { body, ..frag };
                }
                return Ok(());
            }
        }
    }
    Err(Skip::TooManyLayers)
}

/// An IP header's fields that the transport layer needs.
struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    /// The IP header's first byte in the frame (for `outer_len`).
    start: &'a [u8],
}

/// The transport layer of a whole (reassembled) datagram's payload,
/// opening a tunnel it carries as `cfg` allows (a fragmented tunnel
/// packet is opened once whole).
pub fn reassembled<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    body: &'a [u8],
    cfg: &DecapConfig,
) -> Result<Decoded<'a>, Skip> {
    let mut d = Decoded::default();
    let mut cx = Ctx::new(cfg, &mut d);
    let ip = Ip {
        src,
        dst,
        proto,
        ttl,
        start: body,
    };
    transport(ip, body, Fragment::None, &mut cx)?;
    cx.finish();
    Ok(d)
}

/// Opens the tunnel `o` found in the payload of the IP packet `ip`: the
/// inner packet, with the outer headers counted in `outer_len`.
#[inline]
fn open<'a>(ip: &Ip<'a>, o: tunnel::Opened<'a>, cx: &mut Ctx<'_, '_, 'a>) -> Result<(), Skip> {
    enter(o.kind, cx)?;
    cx.outer_len += (o.frame.as_ptr() as usize).saturating_sub(ip.start.as_ptr() as usize);
    inner(o.inner, o.frame, cx)
}

fn transport<'a>(
    ip: Ip<'a>,
    body: &'a [u8],
    fragment: Fragment,
    cx: &mut Ctx<'_, '_, 'a>,
) -> Result<(), Skip> {
    // Tunnels first, so the outer packet's summary is never built for a
    // packet that is opened. A first fragment is opened once its datagram
    // is whole (the defragmenter hands it to `reassembled`).
    if fragment == Fragment::None {
        if let Some(o) = tunnel_in(&ip, body, cx) {
            return open(&ip, o, cx);
        }
    }
    let Ip {
        src,
        dst,
        proto,
        ttl,
        ..
    } = ip;
    // The summary starts empty (`Decoded::default`) and one decode reaches
    // this point once, so the fields a protocol does not set stay zero.
    let d = &mut cx.out;
    d.src = src;
    d.dst = dst;
    d.proto = proto;
    d.ttl = ttl;
    d.payload = body;
    d.fragment = fragment;
    if fragment == Fragment::Later {
        return Ok(());
    }
    match proto {
        proto::TCP => {
            let t: &[u8; 20] = body
                .get(..20)
                .and_then(|b| b.try_into().ok())
                .ok_or(Skip::Truncated)?;
            let off = usize::from(t[12] >> 4) * 4;
            if off < 20 {
                return Err(Skip::Malformed);
            }
            d.payload = body.get(off..).ok_or(Skip::Truncated)?;
            d.src_port = u16::from_be_bytes([t[0], t[1]]);
            d.dst_port = u16::from_be_bytes([t[2], t[3]]);
            d.tcp_flags = t[13];
            d.tcp_seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            d.tcp_ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        }
        proto::UDP => {
            let u: &[u8; 8] = body
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or(Skip::Truncated)?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if len < 8 {
                return Err(Skip::Malformed);
            }
            d.src_port = u16::from_be_bytes([u[0], u[1]]);
            d.dst_port = u16::from_be_bytes([u[2], u[3]]);
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
    Ok(())
}

/// The tunnel the payload `body` of the (whole) IP packet `ip` carries,
/// if `[decap]` opens it. A tunnel header that does not validate is
/// counted as malformed and gives `None`: the packet stays the outer one.
#[inline]
fn tunnel_in<'a>(
    ip: &Ip<'a>,
    body: &'a [u8],
    cx: &mut Ctx<'_, '_, '_>,
) -> Option<tunnel::Opened<'a>> {
    match ip.proto {
        proto::UDP => {
            let u: &[u8; 8] = body.get(..8).and_then(|b| b.try_into().ok())?;
            let kind = cx.cfg.udp_tunnel(u16::from_be_bytes([u[2], u[3]]))?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            // An impossible UDP length is the outer packet's problem.
            let payload = body.get(8..len.min(body.len()))?;
            let opened = match kind {
                Kind::Vxlan => tunnel::vxlan(payload),
                Kind::Geneve => tunnel::geneve(payload),
                _ => match tunnel::gtpu(payload) {
                    tunnel::Gtpu::Data(o) => Some(o),
                    // Signalling (echo...): an ordinary packet.
                    tunnel::Gtpu::Signalling => return None,
                    tunnel::Gtpu::Malformed => None,
                },
            };
            if opened.is_none() {
                cx.malformed.add(kind);
            }
            opened
        }
        proto::GRE if cx.cfg.gre => {
            let opened = tunnel::gre(body, cx.cfg);
            if opened.is_none() {
                cx.malformed.add(Kind::Gre);
            }
            opened
        }
        proto::IPIP | proto::IPV6_IN_IP if cx.cfg.ip_in_ip => Some(tunnel::Opened {
            kind: Kind::IpInIp,
            inner: Inner::Ip,
            frame: body,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DecapConfig {
        DecapConfig::default()
    }

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
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
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
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
        assert_eq!(d.tcp_flags, tcp_flags::ACK);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut ip = ipv4_tcp(0x02, b"");
        ip.extend_from_slice(&[0; 6]);
        let f = ethernet(&[8, 0], &ip);
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
        assert!(d.payload.is_empty());
    }

    #[test]
    fn linux_sll_and_raw_ip_decode() {
        let ip = ipv4_tcp(0x02, b"x");
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[8, 0]);
        sll.extend_from_slice(&ip);
        assert_eq!(
            decode(LinkType::LinuxSll, &sll, &cfg()).unwrap().payload,
            b"x"
        );
        let mut sll2 = vec![8u8, 0];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(
            decode(LinkType::LinuxSll2, &sll2, &cfg()).unwrap().payload,
            b"x"
        );
        assert_eq!(decode(LinkType::RawIp, &ip, &cfg()).unwrap().payload, b"x");
    }

    #[test]
    fn every_truncation_of_a_packet_is_skipped_not_panicked() {
        let f = ethernet(&[8, 0], &ipv4_tcp(0x18, b"payload"));
        for n in 0..f.len() {
            let _ = decode(LinkType::Ethernet, &f[..n], &cfg());
        }
    }

    #[test]
    fn bogus_ip_header_length_is_malformed() {
        let mut ip = ipv4_tcp(0x02, b"");
        ip[0] = 0x43; // IHL 3 words
        assert_eq!(
            decode(LinkType::RawIp, &ip, &cfg()).unwrap_err(),
            Skip::Malformed
        );
        let mut ip = ipv4_tcp(0x02, b"");
        ip[2] = 0;
        ip[3] = 0; // total length 0
        assert_eq!(
            decode(LinkType::RawIp, &ip, &cfg()).unwrap_err(),
            Skip::Malformed
        );
    }

    #[test]
    fn arp_is_not_ip() {
        let f = ethernet(&[0x08, 0x06], &[0; 28]);
        assert_eq!(
            decode(LinkType::Ethernet, &f, &cfg()).unwrap_err(),
            Skip::NotIp
        );
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
            LinkType::Ppp,
            LinkType::PppEther,
            LinkType::CiscoHdlc,
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
                LinkType::Null | LinkType::Ppp | LinkType::CiscoHdlc => 4,
                LinkType::PppEther => 8,
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
            if let Ok(d) = decode(link, &f, &cfg()) {
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
        let d = decode(LinkType::RawIp, &ip, &cfg()).unwrap();
        assert_eq!(d.proto, proto::ICMPV6);
        assert_eq!(d.fragment, Fragment::First);
        assert_eq!((d.frag.id, d.frag.offset, d.frag.more), (7, 0, true));
        assert_eq!(d.src_port, 128);
    }

    /// An IPv4 header around `body` (protocol `proto`, from `src` to `dst`).
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
        let total = 20 + body.len();
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
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(body);
        p
    }

    fn udp(dport: u16, body: &[u8]) -> Vec<u8> {
        let len = 8 + body.len();
        let mut u = vec![
            0x30,
            0x39,
            (dport >> 8) as u8,
            dport as u8,
            (len >> 8) as u8,
            len as u8,
            0,
            0,
        ];
        u.extend_from_slice(body);
        u
    }

    /// The inner packet every tunnel test carries: 10.0.0.1 -> 8.8.8.8,
    /// TCP SYN with payload "hi".
    fn inner_ip() -> Vec<u8> {
        ipv4_tcp(0x02, b"hi")
    }

    fn mirror(payload: &[u8]) -> Vec<u8> {
        // Outer: 192.0.2.1 (mirror source) -> 192.0.2.2 (sensor's VTEP).
        ethernet(&[8, 0], &ipv4(17, [192, 0, 2, 1], [192, 0, 2, 2], payload))
    }

    fn assert_inner(d: &Decoded<'_>, kind: Kind) {
        assert_eq!(d.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(d.dst, "8.8.8.8".parse::<IpAddr>().unwrap());
        assert_eq!((d.dst_port, d.payload), (80, &b"hi"[..]));
        assert!(d.tunnels.has(kind), "{kind:?} opened");
        assert!(d.outer_len > 0);
    }

    #[test]
    fn vxlan_geneve_and_gtpu_are_opened_on_their_ports() {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        vx.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let f = mirror(&udp(4789, &vx));
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
        assert_inner(&d, Kind::Vxlan);
        // 20 (outer IP) + 8 (UDP) + 8 (VXLAN) + 14 (the inner Ethernet
        // header, in place of the outer one) taken off: the inner frame
        // counts as it would on the wire.
        assert_eq!(d.outer_len, 50);
        assert_eq!(f.len() - d.outer_len as usize, 14 + inner_ip().len());
        // A configured extra port works too; a port not configured does not.
        let f8472 = mirror(&udp(8472, &vx));
        assert!(decode(LinkType::Ethernet, &f8472, &cfg())
            .unwrap()
            .tunnels
            .is_empty());
        let extra = DecapConfig {
            vxlan_ports: vec![8472],
            ..cfg()
        };
        assert_inner(
            &decode(LinkType::Ethernet, &f8472, &extra).unwrap(),
            Kind::Vxlan,
        );

        let mut gn = vec![0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 0, 0, 0];
        gn.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let f = mirror(&udp(6081, &gn));
        assert_inner(
            &decode(LinkType::Ethernet, &f, &cfg()).unwrap(),
            Kind::Geneve,
        );

        let ip = inner_ip();
        let mut gtp = vec![0x30, 0xff, 0, ip.len() as u8, 0, 0, 0, 7];
        gtp.extend_from_slice(&ip);
        let f = mirror(&udp(2152, &gtp));
        assert_inner(&decode(LinkType::Ethernet, &f, &cfg()).unwrap(), Kind::Gtpu);
    }

    #[test]
    fn gre_erspan_and_ip_in_ip_are_opened() {
        let mut gre = vec![0x20, 0, 0x08, 0, 0, 0, 0, 9]; // key 9
        gre.extend_from_slice(&inner_ip());
        let f = ethernet(&[8, 0], &ipv4(47, [192, 0, 2, 1], [192, 0, 2, 2], &gre));
        assert_inner(&decode(LinkType::Ethernet, &f, &cfg()).unwrap(), Kind::Gre);

        let mut erspan = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0];
        erspan.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let f = ethernet(&[8, 0], &ipv4(47, [192, 0, 2, 1], [192, 0, 2, 2], &erspan));
        assert_inner(
            &decode(LinkType::Ethernet, &f, &cfg()).unwrap(),
            Kind::Erspan,
        );

        let f = ipv4(4, [192, 0, 2, 1], [192, 0, 2, 2], &inner_ip());
        assert_inner(&decode(LinkType::RawIp, &f, &cfg()).unwrap(), Kind::IpInIp);
        // 4in6: an IPv6 outer header with next header 4.
        let inner = inner_ip();
        let mut v6 = vec![0x60, 0, 0, 0, 0, inner.len() as u8, 4, 64];
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&inner);
        assert_inner(&decode(LinkType::RawIp, &v6, &cfg()).unwrap(), Kind::IpInIp);
        // Turned off: the outer packet, nothing opened.
        let off = DecapConfig {
            ip_in_ip: false,
            ..cfg()
        };
        assert!(decode(LinkType::RawIp, &f, &off)
            .unwrap()
            .tunnels
            .is_empty());
    }

    #[test]
    fn mpls_pppoe_ppp_and_cisco_hdlc_reach_ip() {
        let mut mpls = vec![0, 0x10, 0x01, 64];
        mpls.extend_from_slice(&inner_ip());
        let f = ethernet(&[0x88, 0x47], &mpls);
        assert_inner(&decode(LinkType::Ethernet, &f, &cfg()).unwrap(), Kind::Mpls);
        // An Ethernet pseudowire with a control word.
        let mut pw = vec![0, 0x10, 0x01, 64, 0, 0, 0, 0];
        pw.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let f = ethernet(&[0x88, 0x47], &pw);
        assert_inner(&decode(LinkType::Ethernet, &f, &cfg()).unwrap(), Kind::Mpls);

        let ip = inner_ip();
        let mut pppoe = vec![0x11, 0, 0, 7, 0, (ip.len() + 2) as u8, 0, 0x21];
        pppoe.extend_from_slice(&ip);
        let f = ethernet(&[0x88, 0x64], &pppoe);
        assert_inner(
            &decode(LinkType::Ethernet, &f, &cfg()).unwrap(),
            Kind::Pppoe,
        );
        assert!(decode(LinkType::PppEther, &pppoe, &cfg()).is_ok());

        let mut ppp = vec![0xff, 0x03, 0x00, 0x21];
        ppp.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::Ppp, &ppp, &cfg()).unwrap().payload, b"hi");
        let mut hdlc = vec![0x0f, 0x00, 0x08, 0x00];
        hdlc.extend_from_slice(&ip);
        assert_eq!(
            decode(LinkType::CiscoHdlc, &hdlc, &cfg()).unwrap().payload,
            b"hi"
        );
        assert_eq!(LinkType::from_dlt(9), Some(LinkType::Ppp));
        assert_eq!(LinkType::from_dlt(104), Some(LinkType::CiscoHdlc));
    }

    #[test]
    fn nested_tunnels_are_opened_to_the_innermost_packet() {
        // Ethernet / IPv4 / GRE / IPv4 / UDP / VXLAN / Ethernet / IPv4 / TCP.
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        vx.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let vxlan_pkt = ipv4(17, [172, 16, 0, 1], [172, 16, 0, 2], &udp(4789, &vx));
        let mut gre = vec![0, 0, 0x08, 0];
        gre.extend_from_slice(&vxlan_pkt);
        let f = ethernet(&[8, 0], &ipv4(47, [192, 0, 2, 1], [192, 0, 2, 2], &gre));
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
        assert_inner(&d, Kind::Vxlan);
        assert!(d.tunnels.has(Kind::Gre));
    }

    #[test]
    fn a_tunnel_loop_stops_at_the_depth_cap() {
        let mut p = inner_ip();
        for _ in 0..20 {
            p = ipv4(4, [192, 0, 2, 1], [192, 0, 2, 2], &p);
        }
        assert_eq!(
            decode(LinkType::RawIp, &p, &cfg()).unwrap_err(),
            Skip::TooManyLayers
        );
        let deep = DecapConfig {
            max_depth: 16,
            ..cfg()
        };
        assert_eq!(
            decode(LinkType::RawIp, &p, &deep).unwrap_err(),
            Skip::TooManyLayers
        );
        let mut p = inner_ip();
        for _ in 0..8 {
            p = ipv4(4, [192, 0, 2, 1], [192, 0, 2, 2], &p);
        }
        assert_inner(&decode(LinkType::RawIp, &p, &cfg()).unwrap(), Kind::IpInIp);
    }

    #[test]
    fn a_malformed_tunnel_header_leaves_the_outer_packet_and_is_flagged() {
        // VXLAN without the I flag: the outer UDP packet to port 4789.
        let mut vx = vec![0x00, 0, 0, 0, 0, 0, 42, 0];
        vx.extend_from_slice(&ethernet(&[8, 0], &inner_ip()));
        let f = mirror(&udp(4789, &vx));
        let d = decode(LinkType::Ethernet, &f, &cfg()).unwrap();
        assert_eq!((d.proto, d.dst_port), (proto::UDP, 4789));
        assert!(d.tunnels.is_empty());
        assert!(d.malformed_tunnels.has(Kind::Vxlan));
        assert_eq!(d.outer_len, 0);
        // GRE with the routing bit: the outer GRE packet.
        let mut gre = vec![0x40, 0, 0x08, 0, 0, 0, 0, 0];
        gre.extend_from_slice(&inner_ip());
        let f = ipv4(47, [192, 0, 2, 1], [192, 0, 2, 2], &gre);
        let d = decode(LinkType::RawIp, &f, &cfg()).unwrap();
        assert!(d.malformed_tunnels.has(Kind::Gre));
        // A valid tunnel header around a truncated inner packet is skipped
        // as truncated, never panicking.
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        vx.extend_from_slice(&ethernet(&[8, 0], &inner_ip()[..10]));
        let f = mirror(&udp(4789, &vx));
        assert_eq!(
            decode(LinkType::Ethernet, &f, &cfg()).unwrap_err(),
            Skip::Truncated
        );
    }

    /// Random bytes behind every tunnel header never panic and never yield
    /// a payload outside the frame.
    #[test]
    fn random_tunnel_payloads_never_panic_or_escape_the_frame() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let prefixes: [&[u8]; 8] = [
            &[0x08, 0, 0, 0, 0, 0, 1, 0],
            &[0x00, 0, 0x65, 0x58, 0, 0, 1, 0],
            &[0x34, 0xff, 0, 40, 0, 0, 0, 1, 0, 0, 0, 0x85],
            &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0],
            &[
                0x10, 0, 0x22, 0xeb, 0, 0, 0, 1, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
            &[0x30, 0, 0x88, 0x47, 0, 0, 0, 1, 0, 0, 0, 1],
            &[0x45],
            &[0x60],
        ];
        for i in 0..100_000u32 {
            let pre = prefixes[(i as usize) % prefixes.len()];
            let len = (next() % 120) as usize;
            let mut body = pre.to_vec();
            body.extend((0..len).map(|_| next() as u8));
            let f = match i % 8 {
                0 => mirror(&udp(4789, &body)),
                1 => mirror(&udp(6081, &body)),
                2 => mirror(&udp(2152, &body)),
                3..=5 => ethernet(&[8, 0], &ipv4(47, [1, 1, 1, 1], [2, 2, 2, 2], &body)),
                6 => ipv4(4, [1, 1, 1, 1], [2, 2, 2, 2], &body),
                _ => ethernet(&[0x88, 0x47], &body),
            };
            let cut = (next() as usize) % (f.len() + 1);
            let f = &f[..cut.max(f.len() / 2)];
            if let Ok(d) = decode(LinkType::Ethernet, f, &cfg())
                .or_else(|_| decode(LinkType::RawIp, f, &cfg()))
            {
                if d.payload.is_empty() {
                    continue;
                }
                let start = d.payload.as_ptr() as usize;
                let base = f.as_ptr() as usize;
                assert!(start >= base && start + d.payload.len() <= base + f.len());
                assert!((d.outer_len as usize) < f.len());
            }
        }
    }
}
