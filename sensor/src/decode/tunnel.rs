//! Tunnel headers: what each encapsulation looks like on the wire, and
//! which of them the sensor opens (`[decap]`).
//!
//! Each parser takes the bytes after the outer header that announced the
//! tunnel (an IP protocol number, a UDP port, an ethertype) and returns
//! the inner frame and its framing, or `None` when the header does not
//! validate (a reserved bit set, a wrong version, a length that lies, too
//! few bytes). The decoder then treats the packet as the outer packet it
//! is (a flood of junk to the VXLAN port is still a UDP flood) and counts
//! the kind as malformed. Every length read from the header is checked
//! against what was captured; nothing here indexes into the input.

use serde::Deserialize;

/// The encapsulations the decoder opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// GRE (RFC 2784/2890) carrying IP, Ethernet or MPLS.
    Gre,
    /// ERSPAN types I, II and III (GRE protocol 0x88BE / 0x22EB).
    Erspan,
    /// VXLAN (RFC 7348), UDP 4789 and configured ports.
    Vxlan,
    /// Geneve (RFC 8926), UDP 6081 and configured ports.
    Geneve,
    /// MPLS label stacks, with IP or an Ethernet pseudowire (with or
    /// without a control word) below.
    Mpls,
    /// PPPoE sessions (ethertype 0x8864).
    Pppoe,
    /// GTP-U (UDP 2152) user-plane packets (G-PDU).
    Gtpu,
    /// IP in IP: IPv4 or IPv6 inside IPv4 or IPv6 (IPIP, 6in4, 4in6,
    /// IPv6-in-IPv6).
    IpInIp,
}

impl Kind {
    /// Every kind, in counter order.
    pub const ALL: [Kind; 8] = [
        Kind::Gre,
        Kind::Erspan,
        Kind::Vxlan,
        Kind::Geneve,
        Kind::Mpls,
        Kind::Pppoe,
        Kind::Gtpu,
        Kind::IpInIp,
    ];

    /// Name in counters and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gre => "gre",
            Kind::Erspan => "erspan",
            Kind::Vxlan => "vxlan",
            Kind::Geneve => "geneve",
            Kind::Mpls => "mpls",
            Kind::Pppoe => "pppoe",
            Kind::Gtpu => "gtpu",
            Kind::IpInIp => "ip_in_ip",
        }
    }

    /// The kind's bit in a [`Kinds`] set.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`Kind`]s, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(pub u16);

impl Kinds {
    /// Adds `k`.
    #[inline]
    pub fn add(&mut self, k: Kind) {
        self.0 |= k.bit();
    }

    /// Whether `k` is in the set.
    #[inline]
    pub fn has(self, k: Kind) -> bool {
        self.0 & k.bit() != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Well-known VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// Well-known Geneve port (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;
/// GTP-U port (3GPP TS 29.281).
pub const GTPU_PORT: u16 = 2152;
/// Most extra ports per UDP tunnel kind.
pub const MAX_EXTRA_PORTS: usize = 16;

/// `[decap]`: which encapsulations are opened. All are on by default: a
/// sensor behind a remote SPAN or a cloud mirror sees nothing useful
/// otherwise, and a kind that is absent costs one comparison per packet.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DecapConfig {
    /// GRE (IP protocol 47).
    pub gre: bool,
    /// ERSPAN inside GRE (needs `gre`).
    pub erspan: bool,
    /// VXLAN on UDP 4789 and `vxlan_ports`.
    pub vxlan: bool,
    /// Extra UDP destination ports carrying VXLAN (e.g. 8472, Linux's old
    /// default).
    pub vxlan_ports: Vec<u16>,
    /// Geneve on UDP 6081 and `geneve_ports`.
    pub geneve: bool,
    /// Extra UDP destination ports carrying Geneve.
    pub geneve_ports: Vec<u16>,
    /// MPLS (ethertypes 0x8847, 0x8848, and MPLS in GRE).
    pub mpls: bool,
    /// PPPoE sessions (ethertype 0x8864).
    pub pppoe: bool,
    /// GTP-U on UDP 2152.
    pub gtpu: bool,
    /// IP in IP (IP protocols 4 and 41).
    pub ip_in_ip: bool,
    /// Most tunnels opened inside one another; a deeper packet is counted
    /// as `too_many_layers` and skipped (a tunnel loop cannot hang the
    /// decoder). 1 to 16; default 8.
    pub max_depth: u8,
}

impl Default for DecapConfig {
    fn default() -> Self {
        DecapConfig {
            gre: true,
            erspan: true,
            vxlan: true,
            vxlan_ports: Vec::new(),
            geneve: true,
            geneve_ports: Vec::new(),
            mpls: true,
            pppoe: true,
            gtpu: true,
            ip_in_ip: true,
            max_depth: 8,
        }
    }
}

impl DecapConfig {
    /// Checks ranges; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=16).contains(&self.max_depth) {
            return Err(("decap.max_depth", "must be 1 to 16"));
        }
        if self.vxlan_ports.len() > MAX_EXTRA_PORTS {
            return Err(("decap.vxlan_ports", "at most 16 ports"));
        }
        if self.geneve_ports.len() > MAX_EXTRA_PORTS {
            return Err(("decap.geneve_ports", "at most 16 ports"));
        }
        if self.vxlan_ports.contains(&0) || self.geneve_ports.contains(&0) {
            return Err(("decap.vxlan_ports", "port 0 is not a port"));
        }
        if self
            .vxlan_ports
            .iter()
            .any(|p| self.geneve_ports.contains(p) || *p == GENEVE_PORT || *p == GTPU_PORT)
        {
            return Err(("decap.vxlan_ports", "a port cannot carry two tunnel kinds"));
        }
        if self
            .geneve_ports
            .iter()
            .any(|p| *p == VXLAN_PORT || *p == GTPU_PORT)
        {
            return Err(("decap.geneve_ports", "a port cannot carry two tunnel kinds"));
        }
        Ok(())
    }

    /// The UDP tunnel on destination port `port`, if one is opened there.
    #[inline]
    pub fn udp_tunnel(&self, port: u16) -> Option<Kind> {
        match port {
            VXLAN_PORT if self.vxlan => Some(Kind::Vxlan),
            GENEVE_PORT if self.geneve => Some(Kind::Geneve),
            GTPU_PORT if self.gtpu => Some(Kind::Gtpu),
            _ if self.vxlan && self.vxlan_ports.contains(&port) => Some(Kind::Vxlan),
            _ if self.geneve && self.geneve_ports.contains(&port) => Some(Kind::Geneve),
            _ => None,
        }
    }
}

/// What follows a tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    /// An Ethernet frame.
    Ethernet,
    /// An IPv4 or IPv6 packet (by its version nibble).
    Ip,
    /// An MPLS label stack.
    Mpls,
    /// A PPP frame without address and control bytes: a protocol field,
    /// then the packet.
    Ppp,
}

/// The inner frame of a tunnel: framing, bytes, and the kind that was
/// opened (GRE carrying ERSPAN counts as ERSPAN).
#[derive(Clone, Copy, Debug)]
pub struct Opened<'a> {
    /// The tunnel kind.
    pub kind: Kind,
    /// Framing of `frame`.
    pub inner: Inner,
    /// The inner frame.
    pub frame: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

/// GRE (RFC 2784, key and sequence number of RFC 2890), with ERSPAN I,
/// II and III, Ethernet bridging, IP and MPLS inside. Version 0 only; the
/// RFC 1701 routing bit is refused.
pub fn gre<'a>(b: &'a [u8], cfg: &DecapConfig) -> Option<Opened<'a>> {
    let flags = be16(b, 0)?;
    let proto = be16(b, 2)?;
    let (checksum, routing, key, seq) = (
        flags & 0x8000 != 0,
        flags & 0x4000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    // Reserved0 (bits 4..12 after C, R, K, S) must be zero and the
    // version 0 (RFC 2784 §2.5); version 1 is PPTP's enhanced GRE.
    if routing || flags & 0x0ff8 != 0 || flags & 0x0007 != 0 {
        return None;
    }
    let len = 4 + 4 * (usize::from(checksum) + usize::from(key) + usize::from(seq));
    let rest = b.get(len..)?;
    let (kind, inner, frame) = match proto {
        0x0800 | 0x86dd => (Kind::Gre, Inner::Ip, rest),
        0x6558 => (Kind::Gre, Inner::Ethernet, rest),
        0x8847 | 0x8848 if cfg.mpls => (Kind::Gre, Inner::Mpls, rest),
        // ERSPAN type I has no sequence number and no header of its own;
        // type II has both (RFC draft-foschiano-erspan §4.1).
        0x88be if cfg.erspan && !seq => (Kind::Erspan, Inner::Ethernet, rest),
        0x88be if cfg.erspan => {
            let ver = rest.first()? >> 4;
            if ver != 1 {
                return None;
            }
            (Kind::Erspan, Inner::Ethernet, rest.get(8..)?)
        }
        // ERSPAN type III: 12 bytes, 8 more when the O bit is set; the
        // frame type says Ethernet (0) or IP (2).
        0x22eb if cfg.erspan => {
            let ver = rest.first()? >> 4;
            if ver != 2 {
                return None;
            }
            let last = *rest.get(11)?;
            let frame_type = (rest.get(10)? >> 2) & 0x1f;
            let hlen = if last & 1 != 0 { 20 } else { 12 };
            let inner = match frame_type {
                0 => Inner::Ethernet,
                2 => Inner::Ip,
                _ => return None,
            };
            (Kind::Erspan, inner, rest.get(hlen..)?)
        }
        _ => return None,
    };
    Some(Opened { kind, inner, frame })
}

/// VXLAN (RFC 7348): 8 bytes, the I flag set, an Ethernet frame inside.
/// Other flag bits are accepted as reserved (the Group Policy extension
/// sets some) but the I flag is required.
pub fn vxlan(b: &[u8]) -> Option<Opened<'_>> {
    let flags = *b.first()?;
    if flags & 0x08 == 0 {
        return None;
    }
    Some(Opened {
        kind: Kind::Vxlan,
        inner: Inner::Ethernet,
        frame: b.get(8..)?,
    })
}

/// Geneve (RFC 8926): version 0, options skipped, protocol type Ethernet
/// (0x6558) or IP.
pub fn geneve(b: &[u8]) -> Option<Opened<'_>> {
    let first = *b.first()?;
    if first >> 6 != 0 {
        return None;
    }
    let opt_len = usize::from(first & 0x3f) * 4;
    let inner = match be16(b, 2)? {
        0x6558 => Inner::Ethernet,
        0x0800 | 0x86dd => Inner::Ip,
        _ => return None,
    };
    Some(Opened {
        kind: Kind::Geneve,
        inner,
        frame: b.get(8 + opt_len..)?,
    })
}

/// Most GTP-U extension headers followed.
const MAX_GTP_EXTENSIONS: usize = 8;

/// GTP-U version 1 (3GPP TS 29.281): a G-PDU (message type 255) carries a
/// user IP packet after the 8-byte header, the optional 4 bytes and any
/// extension headers. Other messages (echo, error indication, end marker)
/// carry no user data: not a tunnel packet.
pub fn gtpu(b: &[u8]) -> Gtpu<'_> {
    match gtpu_user_data(b) {
        Ok(Some(o)) => Gtpu::Data(o),
        Ok(None) => Gtpu::Signalling,
        Err(Malformed) => Gtpu::Malformed,
    }
}

/// What a GTP-U packet is.
#[derive(Clone, Copy, Debug)]
pub enum Gtpu<'a> {
    /// A G-PDU: user data inside.
    Data(Opened<'a>),
    /// Signalling (echo, error indication, end marker): no user data.
    Signalling,
    /// The header does not validate.
    Malformed,
}

/// A header that does not validate.
#[derive(Clone, Copy, Debug)]
struct Malformed;

fn gtpu_user_data(b: &[u8]) -> Result<Option<Opened<'_>>, Malformed> {
    let flags = *b.first().ok_or(Malformed)?;
    if flags >> 5 != 1 || flags & 0x10 == 0 {
        return Err(Malformed);
    }
    let msg = *b.get(1).ok_or(Malformed)?;
    let len = usize::from(be16(b, 2).ok_or(Malformed)?);
    let body = b.get(8..).ok_or(Malformed)?;
    // The length counts the bytes after the mandatory header; the capture
    // may hold fewer (snaplen), so the inner frame ends at whichever comes
    // first.
    let body = body.get(..len.min(body.len())).ok_or(Malformed)?;
    if msg != 0xff {
        return Ok(None);
    }
    let mut at = 0usize;
    if flags & 0x07 != 0 {
        // Sequence number (2), N-PDU number (1), next extension type (1).
        let mut next = *body.get(3).ok_or(Malformed)?;
        at = 4;
        let mut n = 0;
        while next != 0 {
            n += 1;
            if n > MAX_GTP_EXTENSIONS {
                return Err(Malformed);
            }
            // Length in 4-byte units, including itself and the next type.
            let units = usize::from(*body.get(at).ok_or(Malformed)?);
            if units == 0 {
                return Err(Malformed);
            }
            let end = at + units * 4;
            next = *body.get(end - 1).ok_or(Malformed)?;
            at = end;
        }
    }
    Ok(Some(Opened {
        kind: Kind::Gtpu,
        inner: Inner::Ip,
        frame: body.get(at..).ok_or(Malformed)?,
    }))
}

/// Most MPLS labels followed in one stack.
pub const MAX_MPLS_LABELS: usize = 16;

/// An MPLS label stack: what follows the bottom label. IPv4 or IPv6 by
/// their version nibble; otherwise an Ethernet pseudowire, with a control
/// word (RFC 4385: first nibble 0) or without one. A first nibble of 0 is
/// also the start of many MAC addresses (00:1b:21:...), so when it is 0
/// the reading that finds a known ethertype (IPv4, IPv6, VLAN, MPLS, PPPoE)
/// wins, the control word when both or neither do. `None` when the stack
/// has no bottom within [`MAX_MPLS_LABELS`] or the bytes run out.
pub fn mpls(b: &[u8]) -> Option<Opened<'_>> {
    let mut at = 0usize;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = b.get(at..at + 4)?;
        at += 4;
        if entry.get(2)? & 0x01 != 0 {
            let rest = b.get(at..)?;
            let (inner, frame) = match rest.first()? >> 4 {
                4 | 6 => (Inner::Ip, rest),
                0 => {
                    let known = |off: usize| {
                        matches!(
                            be16(rest, off),
                            Some(0x0800 | 0x86dd | 0x8100 | 0x88a8 | 0x8847 | 0x8848 | 0x8864)
                        )
                    };
                    if !known(16) && known(12) {
                        (Inner::Ethernet, rest)
                    } else {
                        (Inner::Ethernet, rest.get(4..)?)
                    }
                }
                _ => (Inner::Ethernet, rest),
            };
            return Some(Opened {
                kind: Kind::Mpls,
                inner,
                frame,
            });
        }
    }
    None
}

/// A PPPoE session header (RFC 2516): version and type 1, code 0; the
/// PPP frame follows, bounded by the header's length.
pub fn pppoe(b: &[u8]) -> Option<Opened<'_>> {
    if *b.first()? != 0x11 || *b.get(1)? != 0 {
        return None;
    }
    let len = usize::from(be16(b, 4)?);
    let body = b.get(6..)?;
    if len < 2 {
        return None;
    }
    Some(Opened {
        kind: Kind::Pppoe,
        inner: Inner::Ppp,
        frame: body.get(..len.min(body.len()))?,
    })
}

/// The packet inside a PPP frame (protocol field first, 1 or 2 bytes):
/// `Some(ip)` for IPv4 (0x0021) and IPv6 (0x0057), `None` for anything
/// else (LCP, IPCP...: not IP).
pub fn ppp_ip(b: &[u8]) -> Option<&[u8]> {
    // A protocol field whose first byte is odd is one byte long
    // (protocol-field compression, RFC 1661 §6.5).
    let first = *b.first()?;
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), b.get(1..)?)
    } else {
        (be16(b, 0)?, b.get(2..)?)
    };
    matches!(proto, 0x0021 | 0x0057).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bits_follow_the_counter_order() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.bit(), 1 << i, "{k:?}");
        }
    }

    #[test]
    fn gre_with_key_and_sequence_skips_both() {
        let mut b = vec![0x30, 0x00, 0x08, 0x00, 0, 0, 0, 7, 0, 0, 0, 9];
        b.extend_from_slice(&[0x45, 0]);
        let o = gre(&b, &DecapConfig::default()).unwrap();
        assert_eq!((o.kind, o.inner), (Kind::Gre, Inner::Ip));
        assert_eq!(o.frame, &[0x45, 0]);
    }

    #[test]
    fn gre_with_routing_or_a_version_is_refused() {
        let cfg = DecapConfig::default();
        assert!(gre(&[0x40, 0, 0x08, 0, 0, 0, 0, 0], &cfg).is_none());
        assert!(gre(&[0x00, 1, 0x08, 0, 0x45], &cfg).is_none());
        assert!(gre(&[0x00, 0, 0x08], &cfg).is_none());
    }

    #[test]
    fn erspan_types_one_two_and_three_find_the_frame() {
        let cfg = DecapConfig::default();
        let mut one = vec![0x00, 0x00, 0x88, 0xbe];
        one.extend_from_slice(b"ETH");
        assert_eq!(gre(&one, &cfg).unwrap().frame, b"ETH");
        let mut two = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        two.extend_from_slice(&[0x10, 0, 0, 5, 0, 0, 0, 0]);
        two.extend_from_slice(b"ETH");
        let o = gre(&two, &cfg).unwrap();
        assert_eq!((o.kind, o.frame), (Kind::Erspan, &b"ETH"[..]));
        let mut three = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        three.extend_from_slice(&[0x20, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1]);
        three.extend_from_slice(&[0; 8]); // optional subheader (O bit)
        three.extend_from_slice(b"ETH");
        assert_eq!(gre(&three, &cfg).unwrap().frame, b"ETH");
        // A type II header claiming version 2 is malformed.
        two[8] = 0x20;
        assert!(gre(&two, &cfg).is_none());
    }

    #[test]
    fn vxlan_needs_the_i_flag() {
        assert!(vxlan(&[0x08, 0, 0, 0, 0, 0, 1, 0, 0xaa]).is_some());
        assert!(vxlan(&[0x00, 0, 0, 0, 0, 0, 1, 0, 0xaa]).is_none());
        assert!(vxlan(&[0x08, 0, 0]).is_none());
    }

    #[test]
    fn geneve_skips_options() {
        let mut b = vec![0x02, 0, 0x65, 0x58, 0, 0, 1, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(b"ETH");
        assert_eq!(geneve(&b).unwrap().frame, b"ETH");
        b[0] = 0x42; // version 1
        assert!(geneve(&b).is_none());
    }

    #[test]
    fn gtpu_follows_extension_headers_and_ignores_signalling() {
        let mut b = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[0, 1, 0, 0x85]); // seq, N-PDU, next = PDU session
        b.extend_from_slice(&[1, 0x10, 0x05, 0]); // one unit, next 0
        b.extend_from_slice(&[0x45, 0, 0, 0]);
        let n = (b.len() - 8) as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        let Gtpu::Data(o) = gtpu(&b) else { panic!() };
        assert_eq!(o.frame, &[0x45, 0, 0, 0]);
        let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(gtpu(&echo), Gtpu::Signalling));
        // An extension header of length 0 would loop: malformed.
        let mut bad = b.clone();
        bad[12] = 0;
        assert!(matches!(gtpu(&bad), Gtpu::Malformed));
        // A length past the captured bytes reads as a capture cut short:
        // the inner frame ends with the capture.
        let mut long = b.clone();
        long[2..4].copy_from_slice(&500u16.to_be_bytes());
        let Gtpu::Data(o) = gtpu(&long) else { panic!() };
        assert_eq!(o.frame, &[0x45, 0, 0, 0]);
        // A length shorter than the extension headers is malformed.
        let mut short = b.clone();
        short[2..4].copy_from_slice(&6u16.to_be_bytes());
        assert!(matches!(gtpu(&short), Gtpu::Malformed));
    }

    #[test]
    fn mpls_finds_ip_control_word_and_bare_ethernet_pseudowires() {
        // Two labels: the first without, the second with bottom of stack.
        let ip = [0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64, 0x45, 0];
        let o = mpls(&ip).unwrap();
        assert_eq!((o.inner, o.frame), (Inner::Ip, &[0x45, 0][..]));
        let cw = [0, 0, 0x01, 64, 0, 0, 0, 0, 0xaa];
        assert_eq!(mpls(&cw).unwrap().frame, &[0xaa]);
        // No control word, to a MAC starting with 0 (00:1b:21:...): the
        // ethertype at its place says so.
        let mut mac0 = vec![0, 0, 0x01, 64];
        let eth = [
            0x00, 0x1b, 0x21, 1, 2, 3, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x00, 0x45,
        ];
        mac0.extend_from_slice(&eth);
        assert_eq!(mpls(&mac0).unwrap().frame, &eth[..]);
        // The same frame behind a control word keeps the control word.
        let mut with_cw = vec![0, 0, 0x01, 64, 0, 0, 0, 0];
        with_cw.extend_from_slice(&eth);
        assert_eq!(mpls(&with_cw).unwrap().frame, &eth[..]);
        let bare = [0, 0, 0x01, 64, 0x52, 0x11];
        let o = mpls(&bare).unwrap();
        assert_eq!((o.inner, o.frame), (Inner::Ethernet, &[0x52, 0x11][..]));
        // No bottom of stack within the limit.
        assert!(mpls(&[0u8; 4 * MAX_MPLS_LABELS + 4]).is_none());
    }

    #[test]
    fn pppoe_session_and_ppp_protocols() {
        let b = [0x11, 0, 0, 1, 0, 4, 0x00, 0x21, 0x45, 0];
        let o = pppoe(&b).unwrap();
        assert_eq!(ppp_ip(o.frame), Some(&[0x45, 0][..]));
        assert_eq!(ppp_ip(&[0x21, 0x45]), Some(&[0x45][..]));
        assert_eq!(ppp_ip(&[0xc0, 0x21, 1]), None); // LCP
        assert!(pppoe(&[0x11, 0x09, 0, 1, 0, 4, 0, 0x21, 0x45, 0]).is_none());
    }

    #[test]
    fn config_refuses_a_port_shared_by_two_kinds_and_bad_depths() {
        let cfg = DecapConfig {
            vxlan_ports: vec![6081],
            ..DecapConfig::default()
        };
        assert!(cfg.check().is_err());
        let cfg = DecapConfig {
            max_depth: 0,
            ..DecapConfig::default()
        };
        assert!(cfg.check().is_err());
        let cfg = DecapConfig {
            vxlan_ports: vec![8472],
            ..DecapConfig::default()
        };
        assert!(cfg.check().is_ok());
        assert_eq!(cfg.udp_tunnel(8472), Some(Kind::Vxlan));
        assert_eq!(cfg.udp_tunnel(53), None);
    }
}
