//! Volumetric scenarios: one flood per attack vector, multi-attack and
//! outbound cases, and ordinary traffic that must give nothing.
//!
//! These captures are large (25,000 packets/s for two seconds each), so
//! they are not checked in: tests generate them at test time into a
//! temporary folder ([`write_dir`]), and only their expected-incident files
//! are kept under `pcaps/volumetric/` ([`write_expected_dir`],
//! [`check_expected_dir`]). Frames are cut to a [`SNAPLEN`]-byte snaplen
//! (headers only) with their full length on the wire in each record, so
//! bits per second are those of the full frames while a capture stays a
//! few megabytes.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::background::Background;
use crate::expected::{Expected, ExpectedIncident};
use crate::packet::{fold, ones_complement_add, MacAddr, Packet, TcpFlags};
use crate::pcap::PcapWriter;
use crate::rng::Rng;
use crate::scenario::{at, ts, OutputFile, Stale};
use crate::scenarios::random_public_v4;

/// Bytes kept of each frame: Ethernet, IPv6 and TCP headers fit.
pub const SNAPLEN: usize = 96;
/// The attacked host of single-host scenarios.
pub const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
/// A second attacked host.
pub const TARGET2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
/// The IPv6 attacked hosts (unique-local, protected by default).
pub const TARGET6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
/// A second IPv6 attacked host.
pub const TARGET6_2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11);
/// The compromised internal host of the outbound scenario.
pub const COMPROMISED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 66);
/// The outside victim of the outbound scenario.
pub const OUTSIDE_VICTIM: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
/// Flood start, µs from the base time.
pub const FLOOD_START: i64 = 1_000_000;
/// Flood end (exclusive), µs: two seconds of flood.
pub const FLOOD_END: i64 = 3_000_000;
/// Capture end, µs: long enough for the default 5 s hold time.
pub const CAPTURE_END: i64 = 10_000_000;
/// Flood rate, packets per second (over the 20,000 default).
pub const FLOOD_PPS: i64 = 25_000;

const ROUTER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]);

/// One frame cut to the snaplen, with its length on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnappedFrame {
    /// Capture time, µs since the Unix epoch.
    pub ts_micros: i64,
    /// Length on the wire.
    pub orig_len: u32,
    /// The first (at most [`SNAPLEN`]) bytes.
    pub data: Vec<u8>,
}

/// What a flood recipe returns.
#[derive(Debug, Default)]
pub struct FloodCapture {
    frames: Vec<SnappedFrame>,
}

impl FloodCapture {
    /// Adds a whole frame, keeping its first [`SNAPLEN`] bytes.
    pub fn push(&mut self, ts_micros: i64, mut frame: Vec<u8>) {
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        frame.truncate(SNAPLEN);
        self.frames.push(SnappedFrame {
            ts_micros,
            orig_len,
            data: frame,
        });
    }

    /// Adds a frame already cut to a snaplen (`data`), `orig_len` bytes
    /// long on the wire (used for frames wrapped in tunnels, whose records
    /// keep the outer headers in front of the cut inner frame).
    pub fn push_snapped(&mut self, frame: SnappedFrame) {
        self.frames.push(frame);
    }

    /// The frames, in the order added (sorted by time once written).
    pub fn frames(&self) -> &[SnappedFrame] {
        &self.frames
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Sorts by time (stable) and returns the pcap file's bytes.
    pub fn to_pcap_bytes(&mut self) -> io::Result<Vec<u8>> {
        self.frames.sort_by_key(|f| f.ts_micros);
        let size = 24 + self.frames.iter().map(|f| 16 + f.data.len()).sum::<usize>();
        let mut w = PcapWriter::new(Vec::with_capacity(size))?;
        for f in &self.frames {
            w.write_snapped(f.ts_micros, &f.data, f.orig_len)?;
        }
        w.finish()
    }
}

/// A flood recipe's frames and expected incidents.
#[derive(Debug)]
pub struct FloodGenerated {
    /// The frames.
    pub capture: FloodCapture,
    /// What a correct sensor reports with the default configuration.
    pub expected: Expected,
}

/// A named volumetric recipe.
#[derive(Clone, Copy, Debug)]
pub struct FloodScenario {
    /// File stem, e.g. `flood-syn_flood`.
    pub name: &'static str,
    /// One line for humans.
    pub summary: &'static str,
    /// The recipe.
    pub build: fn() -> FloodGenerated,
}

impl FloodScenario {
    /// The capture file name.
    pub fn pcap_name(&self) -> String {
        format!("{}.pcap", self.name)
    }

    /// The expected-incidents file name.
    pub fn expected_name(&self) -> String {
        format!("{}.expected.json", self.name)
    }

    /// The pcap and expected file contents.
    pub fn files(&self) -> io::Result<[OutputFile; 2]> {
        let mut g = (self.build)();
        Ok([
            OutputFile {
                name: self.pcap_name(),
                bytes: g.capture.to_pcap_bytes()?,
            },
            OutputFile {
                name: self.expected_name(),
                bytes: g.expected.to_json_pretty().into_bytes(),
            },
        ])
    }
}

/// Writes `scenarios`' captures and expected files into `dir`.
pub fn write_dir(dir: &Path, scenarios: &[FloodScenario]) -> io::Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    for s in scenarios {
        for f in s.files()? {
            fs::write(dir.join(&f.name), &f.bytes)?;
            names.push(f.name);
        }
    }
    Ok(names)
}

/// Writes only the expected files of every scenario into `dir` (what is
/// checked in under `pcaps/volumetric/`).
pub fn write_expected_dir(dir: &Path) -> io::Result<Vec<String>> {
    write_expected_files(dir, &all())
}

/// Writes only the expected files of `scenarios` into `dir`.
pub fn write_expected_files(dir: &Path, scenarios: &[FloodScenario]) -> io::Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    for s in scenarios {
        let g = (s.build)();
        fs::write(dir.join(s.expected_name()), g.expected.to_json_pretty())?;
        names.push(s.expected_name());
    }
    Ok(names)
}

/// Compares the expected files in `dir` with what the recipes give now.
pub fn check_expected_dir(dir: &Path) -> io::Result<Vec<Stale>> {
    check_expected_files(dir, &all())
}

/// Compares the expected files of `scenarios` in `dir` with what the
/// recipes give now.
pub fn check_expected_files(dir: &Path, scenarios: &[FloodScenario]) -> io::Result<Vec<Stale>> {
    let mut stale = Vec::new();
    for s in scenarios {
        let want = (s.build)().expected.to_json_pretty().into_bytes();
        match fs::read(dir.join(s.expected_name())) {
            Ok(have) if have == want => {}
            Ok(_) => stale.push(Stale::Differs(s.expected_name())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stale.push(Stale::Missing(s.expected_name()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(stale)
}

/// The flood of one vector: how to make its `i`-th packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SYN from spoofed sources.
    Syn,
    /// Pure ACKs from spoofed sources.
    Ack,
    /// RSTs from spoofed sources.
    Rst,
    /// Xmas and null scans, alternating.
    FlagAbuse,
    /// UDP to random ports from random (non-amplification) ports.
    Udp,
    /// ICMP(v6) echo requests.
    Icmp,
    /// Non-first IPv4 fragments.
    Fragment,
    /// Responses from `port` of a pool of reflectors, `size` bytes of UDP
    /// payload.
    Reflection {
        /// Reflector source port.
        port: u16,
        /// UDP payload bytes.
        size: usize,
    },
}

/// A random source-port that is not an amplification port.
fn ephemeral(rng: &mut Rng) -> u16 {
    rng.range_u16(20_000, 60_000)
}

/// Turns an IPv4 frame into a non-first fragment (offset 1480 bytes) and
/// fixes the header checksum.
fn later_fragment(mut frame: Vec<u8>) -> Vec<u8> {
    const IP: usize = 14;
    if let Some(b) = frame.get_mut(IP + 6..IP + 8) {
        let off: u16 = 1480 / 8; // more-fragments clear: the last fragment
        b.copy_from_slice(&off.to_be_bytes());
    }
    if let Some(b) = frame.get_mut(IP + 10..IP + 12) {
        b.copy_from_slice(&[0, 0]);
    }
    let ihl = frame.get(IP).map_or(20, |b| usize::from(b & 0x0f) * 4);
    let sum = frame
        .get(IP..IP + ihl)
        .map_or(0, |h| fold(ones_complement_add(0, h)));
    // `fold` returns the complemented sum: the checksum itself.
    if let Some(b) = frame.get_mut(IP + 10..IP + 12) {
        b.copy_from_slice(&sum.to_be_bytes());
    }
    frame
}

/// One packet of `kind` to `dst`.
fn flood_packet(kind: Kind, dst: IpAddr, rng: &mut Rng, reflectors: &[IpAddr]) -> Vec<u8> {
    let spoofed = |rng: &mut Rng| -> IpAddr {
        if dst.is_ipv6() {
            let hi = 0x2001_0db8_0000_0000_u64 | u64::from(rng.next_u32() & 0xffff);
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(hi) << 64) | u128::from(rng.next_u64()),
            ))
        } else {
            IpAddr::V4(random_public_v4(rng))
        }
    };
    let ttl = rng.range_u8(240, 250);
    let p = match kind {
        Kind::Syn | Kind::Ack | Kind::Rst | Kind::FlagAbuse => {
            let flags = match kind {
                Kind::Syn => TcpFlags::SYN,
                Kind::Ack => TcpFlags::ACK,
                Kind::Rst => TcpFlags::RST,
                _ if rng.next_u32() & 1 == 0 => TcpFlags(0x29),
                _ => TcpFlags::NONE,
            };
            let src = spoofed(rng);
            let sport = ephemeral(rng);
            Packet::tcp(
                src,
                dst,
                sport,
                80,
                flags,
                rng.next_u32(),
                rng.next_u32(),
                b"",
            )
        }
        Kind::Udp => {
            let src = spoofed(rng);
            let sport = ephemeral(rng);
            let dport = rng.range_u16(1024, 65_000);
            Packet::udp(src, dst, sport, dport, &[0x55; 512])
        }
        Kind::Icmp => {
            let src = spoofed(rng);
            let id = rng.next_u32() as u16;
            Packet::icmp_echo(src, dst, id, 1, false, &[0x61; 56])
        }
        Kind::Fragment => {
            let src = spoofed(rng);
            let frame = Packet::udp(src, dst, 1, 1, &[0x46; 1200])
                .ttl(ttl)
                .ip_id(rng.next_u32() as u16)
                .dont_fragment(false)
                .macs(ROUTER_MAC, MacAddr::for_ip(dst))
                .build();
            return later_fragment(frame);
        }
        Kind::Reflection { port, size } => {
            let src = *rng.pick(reflectors);
            let payload = vec![0x52; size];
            Packet::udp(src, dst, port, 4444, &payload)
        }
    };
    p.ttl(ttl)
        .ip_id(rng.next_u32() as u16)
        .dont_fragment(false)
        .macs(ROUTER_MAC, MacAddr::for_ip(dst))
        .build()
}

/// Adds `pps` packets/s of `kind` to `dst` over `[start, end)` µs.
fn add_flood(
    c: &mut FloodCapture,
    kind: Kind,
    dst: IpAddr,
    pps: i64,
    (start, end): (i64, i64),
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let reflectors: Vec<IpAddr> = (0..300)
        .map(|_| IpAddr::V4(random_public_v4(&mut rng)))
        .collect();
    let gap = 1_000_000 / pps;
    let mut t = start;
    while t < end {
        c.push(at(t), flood_packet(kind, dst, &mut rng, &reflectors));
        t += gap;
    }
}

fn background(seed: u64) -> FloodCapture {
    let mut c = FloodCapture::default();
    for f in Background::new(seed).generate(at(0), at(CAPTURE_END)) {
        c.push(f.ts_micros, f.data);
    }
    c
}

/// The start and end of one attack, as expected entries.
fn attack(
    vector: &str,
    dst: IpAddr,
    direction: &str,
    src: Option<IpAddr>,
) -> Vec<ExpectedIncident> {
    let base = ExpectedIncident {
        kind: Some("volumetric".into()),
        signature: Some(format!("volumetric/{vector}")),
        vector: Some(vector.into()),
        dst_ip: Some(dst),
        src_ip: src,
        direction: Some(direction.into()),
        ..Default::default()
    };
    vec![
        ExpectedIncident {
            event: Some("attack_started".into()),
            ts_min: Some(ts(at(FLOOD_START))),
            ts_max: Some(ts(at(FLOOD_START + 1_000_000))),
            ..base.clone()
        },
        ExpectedIncident {
            event: Some("attack_ended".into()),
            end_reason: Some("hold_expired".into()),
            ts_min: Some(ts(at(FLOOD_END))),
            ts_max: Some(ts(at(CAPTURE_END))),
            ..base
        },
    ]
}

fn expected(name: &str, description: String, incidents: Vec<ExpectedIncident>) -> Expected {
    Expected {
        capture: format!("{name}.pcap"),
        description,
        allow_extra_events: vec!["attack_update".into()],
        incidents,
    }
}

/// A single-vector flood on [`TARGET`] amid background traffic.
fn single(name: &str, vector: &str, kind: Kind, what: &str) -> FloodGenerated {
    let mut capture = background(0x464c_4f4f_4442_4731);
    let dst = IpAddr::V4(TARGET);
    add_flood(
        &mut capture,
        kind,
        dst,
        FLOOD_PPS,
        (FLOOD_START, FLOOD_END),
        name.len() as u64 * 7919,
    );
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "Ten seconds of low-rate background traffic; from t=1 s to t=3 s {FLOOD_PPS} packets/s of {what} \
                 hit {TARGET}. With the default configuration a sensor reports one {vector} attack on {TARGET}, \
                 started within a second of the flood's first packet and ended after the hold time. Frames are \
                 cut to a {SNAPLEN}-byte snaplen; each record keeps the length on the wire."
            ),
            attack(vector, dst, "inbound", None),
        ),
    }
}

macro_rules! single_vector {
    ($($fn:ident, $name:literal, $vector:literal, $kind:expr, $what:literal;)*) => {
        $(
            fn $fn() -> FloodGenerated {
                single($name, $vector, $kind, $what)
            }
        )*
        const SINGLE: &[FloodScenario] = &[
            $(FloodScenario { name: $name, summary: $what, build: $fn },)*
        ];
    };
}

single_vector! {
    syn, "flood-syn_flood", "syn_flood", Kind::Syn, "TCP SYNs from spoofed sources (54-byte frames)";
    ack, "flood-ack_flood", "ack_flood", Kind::Ack, "pure TCP ACKs from spoofed sources";
    rst, "flood-rst_flood", "rst_flood", Kind::Rst, "TCP RSTs from spoofed sources";
    flags, "flood-tcp_flag_abuse", "tcp_flag_abuse", Kind::FlagAbuse, "TCP Xmas (FIN+PSH+URG) and null-flag segments";
    udp, "flood-udp_flood", "udp_flood", Kind::Udp, "512-byte UDP datagrams to random ports from random high ports";
    icmp, "flood-icmp_flood", "icmp_flood", Kind::Icmp, "ICMP echo requests from spoofed sources";
    frag, "flood-ip_fragment_flood", "ip_fragment_flood", Kind::Fragment, "non-first IPv4 fragments of 1,234 bytes";
    dns, "flood-dns_amplification", "dns_amplification", Kind::Reflection { port: 53, size: 1200 }, "1,200-byte DNS responses (UDP source port 53) from 300 reflectors";
    ntp, "flood-ntp_amplification", "ntp_amplification", Kind::Reflection { port: 123, size: 440 }, "440-byte NTP monlist responses (source port 123) from 300 reflectors";
    ssdp, "flood-ssdp_amplification", "ssdp_amplification", Kind::Reflection { port: 1900, size: 300 }, "300-byte SSDP responses (source port 1900) from 300 reflectors";
    memcached, "flood-memcached_amplification", "memcached_amplification", Kind::Reflection { port: 11211, size: 1400 }, "1,400-byte memcached responses (source port 11211) from 300 reflectors";
    cldap, "flood-cldap_amplification", "cldap_amplification", Kind::Reflection { port: 389, size: 1400 }, "1,400-byte CLDAP responses (source port 389) from 300 reflectors";
    chargen, "flood-chargen_amplification", "chargen_amplification", Kind::Reflection { port: 19, size: 500 }, "500-byte chargen responses (source port 19) from 300 reflectors";
    snmp, "flood-snmp_amplification", "snmp_amplification", Kind::Reflection { port: 161, size: 1000 }, "1,000-byte SNMP GetBulk responses (source port 161) from 300 reflectors";
    wsd, "flood-wsd_amplification", "wsd_amplification", Kind::Reflection { port: 3702, size: 700 }, "700-byte WS-Discovery responses (source port 3702) from 300 reflectors";
    coap, "flood-coap_amplification", "coap_amplification", Kind::Reflection { port: 5683, size: 300 }, "300-byte CoAP responses (source port 5683) from 300 reflectors";
}

/// Six vectors at 7,000 packets/s each: 42,000 packets/s in all, none
/// near its own threshold.
fn total_volume() -> FloodGenerated {
    let name = "flood-total_volume";
    let mut capture = background(0x544f_5441_4c56);
    let dst = IpAddr::V4(TARGET);
    let kinds = [
        Kind::Syn,
        Kind::Ack,
        Kind::Rst,
        Kind::Udp,
        Kind::Icmp,
        Kind::FlagAbuse,
    ];
    for (i, k) in kinds.iter().enumerate() {
        // Offset each stream a little so they interleave.
        let off = i as i64 * 7;
        add_flood(
            &mut capture,
            *k,
            dst,
            7_000,
            (FLOOD_START + off, FLOOD_END),
            100 + i as u64,
        );
    }
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "From t=1 s to t=3 s six vectors (SYN, ACK, RST, UDP, ICMP, Xmas/null) at 7,000 packets/s each \
                 (42,000 in all) hit {TARGET}. No vector reaches its 20,000 threshold, the total does: one \
                 total_volume attack."
            ),
            attack("total_volume", dst, "inbound", None),
        ),
    }
}

/// A SYN flood on one host and a UDP flood on another at the same time.
fn two_hosts() -> FloodGenerated {
    let name = "flood-two-hosts";
    let mut capture = background(0x3248_4f53_5453);
    let (a, b) = (IpAddr::V4(TARGET), IpAddr::V4(TARGET2));
    add_flood(
        &mut capture,
        Kind::Syn,
        a,
        FLOOD_PPS,
        (FLOOD_START, FLOOD_END),
        11,
    );
    add_flood(
        &mut capture,
        Kind::Udp,
        b,
        FLOOD_PPS,
        (FLOOD_START, FLOOD_END),
        12,
    );
    let mut incidents = attack("syn_flood", a, "inbound", None);
    incidents.extend(attack("udp_flood", b, "inbound", None));
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "From t=1 s to t=3 s a SYN flood hits {TARGET} and a UDP flood hits {TARGET2}, both at \
                 {FLOOD_PPS} packets/s: two attacks with their own ids."
            ),
            incidents,
        ),
    }
}

/// SYN, DNS reflection and ICMP at one host at the same time.
fn multi_vector() -> FloodGenerated {
    let name = "flood-multi-vector";
    let mut capture = background(0x4d55_4c54_4956);
    let dst = IpAddr::V4(TARGET);
    add_flood(
        &mut capture,
        Kind::Syn,
        dst,
        FLOOD_PPS,
        (FLOOD_START, FLOOD_END),
        21,
    );
    let dns = Kind::Reflection {
        port: 53,
        size: 1200,
    };
    add_flood(
        &mut capture,
        dns,
        dst,
        FLOOD_PPS,
        (FLOOD_START + 13, FLOOD_END),
        22,
    );
    add_flood(
        &mut capture,
        Kind::Icmp,
        dst,
        FLOOD_PPS,
        (FLOOD_START + 27, FLOOD_END),
        23,
    );
    let mut incidents = attack("syn_flood", dst, "inbound", None);
    incidents.extend(attack("dns_amplification", dst, "inbound", None));
    incidents.extend(attack("icmp_flood", dst, "inbound", None));
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "From t=1 s to t=3 s {TARGET} gets a SYN flood, a DNS reflection flood and an ICMP echo flood, \
                 each at {FLOOD_PPS} packets/s: three attacks, reported separately (no total_volume)."
            ),
            incidents,
        ),
    }
}

/// An internal host floods an outside address with UDP.
fn outbound() -> FloodGenerated {
    let name = "flood-outbound";
    let mut capture = background(0x4f55_5442_4e44);
    let mut rng = Rng::new(0x004f_5554);
    let mut t = FLOOD_START;
    while t < FLOOD_END {
        let frame = Packet::udp(
            COMPROMISED,
            OUTSIDE_VICTIM,
            ephemeral(&mut rng),
            80,
            &[0x4f; 512],
        )
        .ttl(64)
        .ip_id(rng.next_u32() as u16)
        .macs(MacAddr::for_ip(COMPROMISED.into()), ROUTER_MAC)
        .build();
        capture.push(at(t), frame);
        t += 1_000_000 / FLOOD_PPS;
    }
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "From t=1 s to t=3 s the internal host {COMPROMISED} sends {FLOOD_PPS} packets/s of 512-byte UDP \
                 to {OUTSIDE_VICTIM}:80: one outbound udp_flood naming {COMPROMISED} as source."
            ),
            attack(
                "udp_flood",
                IpAddr::V4(OUTSIDE_VICTIM),
                "outbound",
                Some(IpAddr::V4(COMPROMISED)),
            ),
        ),
    }
}

/// A SYN flood and an ICMPv6 echo flood on two IPv6 hosts.
fn ipv6() -> FloodGenerated {
    let name = "flood-ipv6";
    let mut capture = background(0x4950_5636);
    let (a, b) = (IpAddr::V6(TARGET6), IpAddr::V6(TARGET6_2));
    add_flood(
        &mut capture,
        Kind::Syn,
        a,
        FLOOD_PPS,
        (FLOOD_START, FLOOD_END),
        61,
    );
    add_flood(
        &mut capture,
        Kind::Icmp,
        b,
        FLOOD_PPS,
        (FLOOD_START + 19, FLOOD_END),
        62,
    );
    let mut incidents = attack("syn_flood", a, "inbound", None);
    incidents.extend(attack("icmp_flood", b, "inbound", None));
    FloodGenerated {
        capture,
        expected: expected(
            name,
            format!(
                "From t=1 s to t=3 s a SYN flood hits {TARGET6} and an ICMPv6 echo flood hits {TARGET6_2} from \
                 spoofed 2001:db8::/32 sources, {FLOOD_PPS} packets/s each: two attacks, as for IPv4."
            ),
            incidents,
        ),
    }
}

/// Ordinary traffic at the limits: nothing may be reported.
fn benign(name: &str, description: String, capture: FloodCapture) -> FloodGenerated {
    FloodGenerated {
        capture,
        expected: Expected {
            capture: format!("{name}.pcap"),
            description,
            allow_extra_events: Vec::new(),
            incidents: Vec::new(),
        },
    }
}

/// Two busy hosts at 4,900 packets/s each (one mixing vectors, one at
/// 58 Mbit/s of 1,500-byte UDP).
fn busy_hosts() -> FloodGenerated {
    let mut capture = background(0x4255_5359);
    let mut rng = Rng::new(0x4255_5359);
    let (a, b) = (IpAddr::V4(TARGET), IpAddr::V4(TARGET2));
    let server = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
    let mut t = 0;
    let mut i = 0u32;
    while t < 6_000_000 {
        let kind = [Kind::Syn, Kind::Udp, Kind::Icmp, Kind::Ack][(i % 4) as usize];
        capture.push(at(t), flood_packet(kind, a, &mut rng, &[]));
        let frame = Packet::udp(server, b, 5004, 5004, &[0x56; 1458])
            .macs(ROUTER_MAC, MacAddr::for_ip(b))
            .build();
        capture.push(at(t + 100), frame);
        t += 1_000_000 / 4_900;
        i += 1;
    }
    benign(
        "ordinary-busy-hosts",
        format!(
            "Six seconds in which {TARGET} receives 4,900 packets/s mixing SYN, UDP, ICMP and ACK from random \
             sources, and {TARGET2} receives a 4,900 packets/s stream of 1,500-byte UDP (58 Mbit/s): per-host \
             rates under 5,000 packets/s and 100 Mbit/s give nothing."
        ),
        capture,
    )
}

/// A 95 Mbit/s download over one TCP connection.
fn bulk_download() -> FloodGenerated {
    let mut capture = background(0x4255_4c4b);
    let client = Ipv4Addr::new(10, 0, 0, 30);
    let server = Ipv4Addr::new(203, 0, 113, 50);
    let (cmac, smac) = (MacAddr::for_ip(client.into()), ROUTER_MAC);
    let tcp = |src: Ipv4Addr, dst: Ipv4Addr, sport, dport, flags, seq, ack, payload: &[u8]| {
        let macs = if src == client {
            (cmac, smac)
        } else {
            (smac, cmac)
        };
        Packet::tcp(src, dst, sport, dport, flags, seq, ack, payload)
            .macs(macs.0, macs.1)
            .build()
    };
    let (cp, sp) = (51_000u16, 443u16);
    let (mut cseq, mut sseq) = (1_000u32, 50_000u32);
    let t0 = 500_000;
    capture.push(
        at(t0),
        tcp(client, server, cp, sp, TcpFlags::SYN, cseq, 0, b""),
    );
    capture.push(
        at(t0 + 20_000),
        tcp(server, client, sp, cp, TcpFlags(0x12), sseq, cseq + 1, b""),
    );
    cseq += 1;
    sseq += 1;
    capture.push(
        at(t0 + 20_100),
        tcp(client, server, cp, sp, TcpFlags::ACK, cseq, sseq, b""),
    );
    let get = b"GET /images/debian.iso HTTP/1.1\r\nHost: mirror.example\r\n\r\n";
    capture.push(
        at(t0 + 20_200),
        tcp(client, server, cp, sp, TcpFlags(0x18), cseq, sseq, get),
    );
    cseq += get.len() as u32;
    let data = [0x44u8; 1460];
    let mut t = t0 + 40_000;
    let mut n = 0u32;
    // 7,900 segments/s of 1,514 bytes = 95.7 Mbit/s, one ACK per two.
    while t < 7_000_000 {
        capture.push(
            at(t),
            tcp(server, client, sp, cp, TcpFlags(0x18), sseq, cseq, &data),
        );
        sseq = sseq.wrapping_add(1460);
        n += 1;
        if n.is_multiple_of(2) {
            capture.push(
                at(t + 60),
                tcp(client, server, cp, sp, TcpFlags::ACK, cseq, sseq, b""),
            );
        }
        t += 1_000_000 / 7_900;
    }
    capture.push(
        at(t),
        tcp(server, client, sp, cp, TcpFlags(0x11), sseq, cseq, b""),
    );
    capture.push(
        at(t + 100),
        tcp(client, server, cp, sp, TcpFlags(0x11), cseq, sseq + 1, b""),
    );
    benign(
        "ordinary-bulk-download",
        "10.0.0.30 downloads a file from 203.0.113.50:443 over one TCP connection for six and a half seconds: \
         7,900 full-size segments/s (95.7 Mbit/s) in, an ACK per two segments out. Legitimate: nothing."
            .into(),
        capture,
    )
}

/// A flash crowd: 1,000 new clients per second complete handshakes and
/// fetch a page.
fn flash_crowd() -> FloodGenerated {
    let mut capture = background(0x0046_4c41_5348);
    let mut rng = Rng::new(0x0046_4c41_5348);
    let server = Ipv4Addr::new(10, 0, 0, 40);
    let smac = MacAddr::for_ip(server.into());
    let mut t = 500_000;
    let req = b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n";
    let page = [0x3cu8; 1460];
    while t < 6_500_000 {
        let client = random_public_v4(&mut rng);
        let cp = ephemeral(&mut rng);
        let (c_isn, s_isn) = (rng.next_u32(), rng.next_u32());
        let rtt = i64::from(rng.range_u16(5_000, 40_000));
        let mut push = |dt: i64,
                        src: Ipv4Addr,
                        dst: Ipv4Addr,
                        sport,
                        dport,
                        flags,
                        seq,
                        ack,
                        payload: &[u8]| {
            let macs = if src == server {
                (smac, ROUTER_MAC)
            } else {
                (ROUTER_MAC, smac)
            };
            let f = Packet::tcp(src, dst, sport, dport, flags, seq, ack, payload)
                .ttl(if src == server { 64 } else { 52 })
                .macs(macs.0, macs.1)
                .build();
            capture.push(at(t + dt), f);
        };
        let (c1, s1) = (c_isn.wrapping_add(1), s_isn.wrapping_add(1));
        push(0, client, server, cp, 443, TcpFlags::SYN, c_isn, 0, b"");
        push(100, server, client, 443, cp, TcpFlags(0x12), s_isn, c1, b"");
        push(rtt, client, server, cp, 443, TcpFlags::ACK, c1, s1, b"");
        push(
            rtt + 10,
            client,
            server,
            cp,
            443,
            TcpFlags(0x18),
            c1,
            s1,
            req,
        );
        let c2 = c1.wrapping_add(req.len() as u32);
        push(
            rtt + 300,
            server,
            client,
            443,
            cp,
            TcpFlags(0x18),
            s1,
            c2,
            &page,
        );
        let s2 = s1.wrapping_add(1460);
        push(
            rtt + 400,
            server,
            client,
            443,
            cp,
            TcpFlags(0x19),
            s2,
            c2,
            &page,
        );
        let s3 = s2.wrapping_add(1461);
        push(
            2 * rtt + 400,
            client,
            server,
            cp,
            443,
            TcpFlags(0x11),
            c2,
            s3,
            b"",
        );
        push(
            2 * rtt + 500,
            server,
            client,
            443,
            cp,
            TcpFlags::ACK,
            s3,
            c2.wrapping_add(1),
            b"",
        );
        t += 1_000;
    }
    benign(
        "ordinary-flash-crowd",
        "A flash crowd on the web server 10.0.0.40:443: for six seconds 1,000 new clients per second (each a \
         different public address) complete a handshake, fetch a two-segment page and close. About 4,000 \
         packets/s in and 4,000 out, thousands of distinct sources: nothing."
            .into(),
        capture,
    )
}

/// A busy internal resolver: 3,000 queries/s out, 3,000 answers/s back.
fn dns_own_queries() -> FloodGenerated {
    let mut capture = background(0x444e_5351);
    let mut rng = Rng::new(0x444e_5351);
    let host = Ipv4Addr::new(10, 0, 0, 53);
    let hmac = MacAddr::for_ip(host.into());
    let upstream: Vec<Ipv4Addr> = (1..=8)
        .map(|i| Ipv4Addr::new(198, 51, 100, 200 + i))
        .collect();
    let mut t = 500_000;
    while t < 6_500_000 {
        let up = *rng.pick(&upstream);
        let port = ephemeral(&mut rng);
        let id = rng.next_u32() as u16;
        let q = crate::app::dns_query(id, "www.example.org", 1);
        let mut a = crate::app::dns_response_a(id, "www.example.org", Ipv4Addr::new(192, 0, 2, 80));
        a.resize(560, 0); // a large answer (DNSSEC records, say)
        capture.push(
            at(t),
            Packet::udp(host, up, port, 53, &q)
                .macs(hmac, ROUTER_MAC)
                .build(),
        );
        let rtt = i64::from(rng.range_u16(2_000, 30_000));
        capture.push(
            at(t + rtt),
            Packet::udp(up, host, 53, port, &a)
                .ttl(55)
                .macs(ROUTER_MAC, hmac)
                .build(),
        );
        t += 1_000_000 / 3_000;
    }
    benign(
        "ordinary-dns-own-queries",
        "The internal resolver 10.0.0.53 sends 3,000 DNS queries/s to eight upstream resolvers for six seconds \
         and gets 3,000 answers/s of 600 bytes back from source port 53: answers to its own queries are not \
         DNS amplification."
            .into(),
        capture,
    )
}

/// The protected /24 of the carpet-bombing scenario.
pub const CARPET_NET: &str = "10.0.2.0/24";
/// Packets/s of the carpet-bombing scenario, over the whole /24.
pub const CARPET_PPS: i64 = 200_000;

/// Carpet bombing: a DNS reflection of 200,000 packets/s spread evenly over
/// the 254 hosts of 10.0.2.0/24, each host at about 790 packets/s.
fn carpet() -> FloodGenerated {
    let mut capture = background(0x4341_5250);
    let mut rng = Rng::new(0x4341_5250);
    let reflectors: Vec<IpAddr> = (0..300)
        .map(|_| IpAddr::V4(random_public_v4(&mut rng)))
        .collect();
    let kind = Kind::Reflection {
        port: 53,
        size: 1_150,
    };
    let mut i = 0i64;
    loop {
        let t = FLOOD_START + i * 1_000_000 / CARPET_PPS;
        if t >= FLOOD_END {
            break;
        }
        let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 2, (i % 254) as u8 + 1));
        capture.push(at(t), flood_packet(kind, dst, &mut rng, &reflectors));
        i += 1;
    }
    let base = ExpectedIncident {
        kind: Some("volumetric".into()),
        signature: Some("volumetric/dns_amplification".into()),
        vector: Some("dns_amplification".into()),
        dst_net: Some(CARPET_NET.into()),
        direction: Some("inbound".into()),
        ..Default::default()
    };
    FloodGenerated {
        capture,
        expected: expected(
            "flood-carpet",
            format!(
                "Carpet bombing: ten seconds of background; from t=1 s to t=3 s a DNS reflection of {CARPET_PPS} \
                 packets/s (1,192-byte frames from 300 reflectors) spread evenly over the 254 hosts of {CARPET_NET}, \
                 about 790 packets/s per host, far under the per-host threshold. With the default configuration \
                 a sensor reports one network-level dns_amplification attack on {CARPET_NET} (dst_net, over the \
                 100,000 packets/s prefix default), started within two seconds of the flood's first packet and \
                 ended after the hold time, and no host attack."
            ),
            vec![
                ExpectedIncident {
                    event: Some("attack_started".into()),
                    ts_min: Some(ts(at(FLOOD_START))),
                    ts_max: Some(ts(at(FLOOD_START + 2_000_000))),
                    ..base.clone()
                },
                ExpectedIncident {
                    event: Some("attack_ended".into()),
                    end_reason: Some("hold_expired".into()),
                    ts_min: Some(ts(at(FLOOD_END))),
                    ts_max: Some(ts(at(CAPTURE_END))),
                    ..base
                },
            ],
        ),
    }
}

/// Every volumetric scenario.
pub fn all() -> Vec<FloodScenario> {
    let mut v = SINGLE.to_vec();
    v.extend([
        FloodScenario {
            name: "flood-total_volume",
            summary: "six vectors at 7,000 packets/s each on one host: total_volume",
            build: total_volume,
        },
        FloodScenario {
            name: "flood-two-hosts",
            summary: "SYN flood on one host and UDP flood on another at the same time",
            build: two_hosts,
        },
        FloodScenario {
            name: "flood-multi-vector",
            summary: "SYN, DNS reflection and ICMP floods on one host at the same time",
            build: multi_vector,
        },
        FloodScenario {
            name: "flood-outbound",
            summary: "an internal host floods an outside address with UDP",
            build: outbound,
        },
        FloodScenario {
            name: "flood-ipv6",
            summary: "SYN and ICMPv6 floods on two IPv6 hosts",
            build: ipv6,
        },
        FloodScenario {
            name: "flood-carpet",
            summary: "200,000 packets/s of DNS reflection spread over the 254 hosts of a /24: a prefix attack",
            build: carpet,
        },
        FloodScenario {
            name: "ordinary-busy-hosts",
            summary: "two hosts at 4,900 packets/s (one at 58 Mbit/s): nothing",
            build: busy_hosts,
        },
        FloodScenario {
            name: "ordinary-bulk-download",
            summary: "a 95 Mbit/s TCP download: nothing",
            build: bulk_download,
        },
        FloodScenario {
            name: "ordinary-flash-crowd",
            summary: "1,000 new complete HTTPS connections per second to one server: nothing",
            build: flash_crowd,
        },
        FloodScenario {
            name: "ordinary-dns-own-queries",
            summary: "a resolver's 3,000 answers/s to its own queries: nothing",
            build: dns_own_queries,
        },
    ]);
    v
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<FloodScenario> {
    all().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::read_pcap;

    #[test]
    fn flood_captures_are_deterministic_and_snapped() {
        let s = find("flood-syn_flood").unwrap();
        let a = s.files().unwrap();
        assert_eq!(a, s.files().unwrap());
        let recs = read_pcap(&a[0].bytes).unwrap();
        assert!(recs.len() >= 50_000);
        assert!(recs.iter().all(|r| r.data.len() <= SNAPLEN));
    }

    #[test]
    fn fragment_packets_are_non_first_fragments_with_a_valid_checksum() {
        let mut rng = Rng::new(1);
        let f = flood_packet(Kind::Fragment, IpAddr::V4(TARGET), &mut rng, &[]);
        let ip = &f[14..34];
        assert_eq!(u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff, 185);
        // A valid header sums to 0xffff, whose complement is 0.
        assert_eq!(fold(ones_complement_add(0, ip)), 0);
    }

    #[test]
    fn every_vector_has_a_scenario() {
        let names: Vec<&str> = all().iter().map(|s| s.name).collect();
        for v in [
            "syn_flood",
            "ack_flood",
            "rst_flood",
            "tcp_flag_abuse",
            "udp_flood",
            "icmp_flood",
            "ip_fragment_flood",
            "dns_amplification",
            "ntp_amplification",
            "ssdp_amplification",
            "memcached_amplification",
            "cldap_amplification",
            "chargen_amplification",
            "snmp_amplification",
            "wsd_amplification",
            "coap_amplification",
            "total_volume",
        ] {
            assert!(names.contains(&format!("flood-{v}").as_str()), "{v}");
        }
    }
}
