//! Tunnel scenarios: the same attacks and leaks as elsewhere, seen through
//! every encapsulation the sensor opens (see [`crate::tunnel`]).
//!
//! Every outer endpoint is inside the default protected space
//! (10.255.0.0/16): a sensor that did not open the tunnel would report the
//! mirror or the tunnel routers instead of the hosts inside, and the
//! checker ([`crate::check_expected`]) fails on such an extra incident.
//!
//! * `tunnel-leaks` ([`leaks`], checked in under `pcaps/`): one HTTP POST
//!   of a 绝密★-marked document per tunnel kind, one inside VXLAN inside
//!   GRE, and two traps that must give nothing.
//! * `tunnel-<kind>-syn_flood` ([`all`], generated at test time like
//!   `volumetric/`, expected files under `pcaps/tunnels/`): every frame of
//!   `flood-syn_flood`, background included, wrapped in one tunnel kind
//!   (or two nested).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::app::{http_request, http_response};
use crate::capture::{Capture, TimedFrame};
use crate::expected::{Expected, ExpectedIncident};
use crate::scenario::{at, ts, Generated, Stale};
use crate::scenarios::floods::{self, FloodCapture, FloodGenerated, FloodScenario, SnappedFrame};
use crate::scenarios::http_leak::SECRET_DOCUMENT;
use crate::session::{Side, TcpSession};
use crate::tunnel::{fragment_ipv4, TunnelKind, TunnelPath};

/// Tunnels inside `tunnel-leaks`' deep trap: more than the sensor's
/// default `[decap] max_depth` of 8.
pub const DEEP_LAYERS: usize = 20;

/// MSS of tunnelled sessions: what an MSS-clamping tunnel router lets
/// through so the outer packet fits a 1500-byte link.
const TUNNEL_MSS: usize = 1300;

/// One leak of `tunnel-leaks`: the tunnel, the inner client and server.
struct Case {
    what: &'static str,
    layers: &'static [TunnelKind],
    /// Whether the (single) tunnel runs over IPv6.
    over_ipv6: bool,
    /// The MTU past which the outer IPv4 packets are fragmented.
    mtu: Option<usize>,
    client: SocketAddr,
    server: SocketAddr,
}

fn v4(c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 3, c, d)), port)
}

fn outside(d: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, d)), 80)
}

/// The leaks, one per tunnel kind (and 6in4, and nesting), each from its
/// own client to its own server.
fn cases() -> Vec<Case> {
    use TunnelKind::*;
    let six = |last: u16| -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 3, 0, 0, 0, last)),
                43000 + last,
            ),
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 3, 0, 0, 0, last)),
                80,
            ),
        )
    };
    let (c6, s6) = six(11);
    vec![
        Case {
            what: "VXLAN (UDP 4789, VNI 5001)",
            over_ipv6: false,
            mtu: None,
            layers: &[Vxlan],
            client: v4(0, 1, 42001),
            server: outside(101),
        },
        Case {
            what: "Geneve (UDP 6081, one option)",
            over_ipv6: false,
            mtu: None,
            layers: &[Geneve],
            client: v4(0, 2, 42002),
            server: outside(102),
        },
        Case {
            what: "GRE with key and sequence number",
            over_ipv6: false,
            mtu: None,
            layers: &[Gre],
            client: v4(0, 3, 42003),
            server: outside(103),
        },
        Case {
            what: "ERSPAN type II",
            over_ipv6: false,
            mtu: None,
            layers: &[ErspanII],
            client: v4(0, 4, 42004),
            server: outside(104),
        },
        Case {
            what: "ERSPAN type III",
            over_ipv6: false,
            mtu: None,
            layers: &[ErspanIII],
            client: v4(0, 5, 42005),
            server: outside(105),
        },
        Case {
            what: "MPLS (two labels, IPv4 below)",
            over_ipv6: false,
            mtu: None,
            layers: &[MplsIp],
            client: v4(0, 6, 42006),
            server: outside(106),
        },
        Case {
            what: "an MPLS Ethernet pseudowire with a control word",
            over_ipv6: false,
            mtu: None,
            layers: &[MplsEthernet],
            client: v4(0, 7, 42007),
            server: outside(107),
        },
        Case {
            what: "a PPPoE session (PPP IPv4)",
            over_ipv6: false,
            mtu: None,
            layers: &[Pppoe],
            client: v4(0, 8, 42008),
            server: outside(108),
        },
        Case {
            what: "GTP-U G-PDUs with sequence numbers",
            over_ipv6: false,
            mtu: None,
            layers: &[Gtpu],
            client: v4(0, 9, 42009),
            server: outside(109),
        },
        Case {
            what: "IPv4 in IPv4 (IP protocol 4)",
            over_ipv6: false,
            mtu: None,
            layers: &[IpInIp],
            client: v4(0, 10, 42010),
            server: outside(110),
        },
        Case {
            what: "IPv6 in IPv4 (6in4, IP protocol 41)",
            over_ipv6: false,
            mtu: None,
            layers: &[IpInIp],
            client: c6,
            server: s6,
        },
        Case {
            what: "VXLAN inside GRE",
            over_ipv6: false,
            mtu: None,
            layers: &[Vxlan, Gre],
            client: v4(0, 12, 42012),
            server: outside(112),
        },
        Case {
            what: "VXLAN over IPv6 (fd00:255::1 -> fd00:255::2)",
            over_ipv6: true,
            mtu: None,
            layers: &[Vxlan],
            client: v4(0, 13, 42013),
            server: outside(113),
        },
        Case {
            what: "IPv4 in IPv6 (4in6, next header 4)",
            over_ipv6: true,
            mtu: None,
            layers: &[IpInIp],
            client: v4(0, 14, 42014),
            server: outside(114),
        },
        Case {
            what: "VXLAN whose outer packets are fragmented at a 576-byte MTU",
            over_ipv6: false,
            mtu: Some(576),
            layers: &[Vxlan],
            client: v4(0, 15, 42015),
            server: outside(115),
        },
    ]
}

/// The POST of the secret document from `client` to `server`, starting at
/// `start_s` seconds: its frames, the request's first segment time and
/// the session's last frame time.
fn post(
    client: SocketAddr,
    server: SocketAddr,
    start_s: i64,
    n: u32,
) -> (Vec<TimedFrame>, i64, i64) {
    let mut s = TcpSession::new(client, server, at(start_s * 1_000_000))
        .isns(
            0x1100_0000u32.wrapping_mul(n),
            0x0900_0000u32.wrapping_mul(n + 1),
        )
        .timing(50, 2_000)
        .mss(TUNNEL_MSS);
    s.handshake();
    let host = server.ip().to_string();
    let sent = s.send(
        Side::Client,
        &http_request(
            "POST",
            "/upload",
            &host,
            &[
                ("User-Agent", "curl/8.5.0"),
                ("Content-Type", "text/plain; charset=utf-8"),
            ],
            SECRET_DOCUMENT.as_bytes(),
        ),
    );
    s.send(
        Side::Server,
        &http_response(200, "OK", "application/json", b"{\"ok\":true}"),
    );
    s.close(Side::Client);
    let frames = s.into_frames();
    let end = frames.last().map_or(sent.last_ts, |f| f.ts_micros);
    (frames, sent.first_ts, end)
}

/// Wraps every frame of a session in `path`.
fn wrap_all(frames: Vec<TimedFrame>, path: &mut TunnelPath) -> Vec<TimedFrame> {
    frames
        .into_iter()
        .map(|f| {
            let w = path
                .wrap(&f.data, f.data.len(), f.ts_micros)
                .unwrap_or_else(|e| panic!("tunnel-leaks: a session frame: {e}"));
            TimedFrame {
                ts_micros: f.ts_micros,
                data: w.data,
            }
        })
        .collect()
}

/// `tunnel-leaks`.
pub fn leaks() -> Generated {
    let mut capture = Capture::new();
    let mut incidents = Vec::new();
    let mut lines = Vec::new();
    let cases = cases();
    for (i, c) in cases.iter().enumerate() {
        let n = i as u32 + 1;
        let (frames, first, end) = post(c.client, c.server, i64::from(n), n);
        let mut path = match (c.over_ipv6, c.layers) {
            (true, [kind]) => TunnelPath::over_ipv6(*kind),
            _ => TunnelPath::nested(c.layers),
        };
        let mut wrapped = wrap_all(frames, &mut path);
        if let Some(mtu) = c.mtu {
            wrapped = wrapped
                .into_iter()
                .flat_map(|f| {
                    fragment_ipv4(&f.data, mtu)
                        .into_iter()
                        .map(move |data| TimedFrame {
                            ts_micros: f.ts_micros,
                            data,
                        })
                })
                .collect();
        }
        capture.extend(wrapped);
        lines.push(format!(
            "t={n} s {} -> {} in {}",
            c.client, c.server, c.what
        ));
        incidents.push(ExpectedIncident {
            kind: Some("leak".into()),
            event: Some("leak".into()),
            signature: Some("classification-marking".into()),
            src_ip: Some(c.client.ip()),
            dst_ip: Some(c.server.ip()),
            src_port: Some(c.client.port()),
            dst_port: Some(c.server.port()),
            proto: Some("tcp".into()),
            direction: Some("outbound".into()),
            app_proto: Some("http".into()),
            min_match_count: Some(1),
            ts_min: Some(ts(first)),
            ts_max: Some(ts(end)),
            ..Default::default()
        });
    }

    // Trap 1: VXLAN whose header lacks the I flag.
    let n = cases.len() as u32 + 1;
    let (client, server) = (v4(1, 1, 42101), outside(121));
    let (frames, _, _) = post(client, server, i64::from(n), n);
    capture.extend(wrap_all(
        frames,
        &mut TunnelPath::new(TunnelKind::VxlanWithoutIFlag),
    ));
    // Trap 2: IP in IP, DEEP_LAYERS deep.
    let n = n + 1;
    let (deep_client, deep_server) = (v4(1, 2, 42102), outside(122));
    let (frames, _, _) = post(deep_client, deep_server, i64::from(n), n);
    capture.extend(wrap_all(
        frames,
        &mut TunnelPath::nested(&[TunnelKind::IpInIp; DEEP_LAYERS]),
    ));

    let expected = Expected {
        capture: "tunnel-leaks.pcap".into(),
        description: format!(
            "One HTTP/1.1 session a second, each a POST of a UTF-8 notice carrying the marking 绝密★一年 from a \
             protected host to an outside server, seen inside a tunnel whose endpoints are themselves protected \
             (10.255.0.1 <-> 10.255.0.2, or fd00:255::1 <-> fd00:255::2 over IPv6; the tunnel inside a nested one runs 10.255.1.1 <-> 10.255.1.2): {}. \
             Each gives one outbound classification-marking leak naming the INNER endpoints; an incident naming \
             a tunnel endpoint means a tunnel was not opened. Traps that must give nothing: at t={} s the same \
             POST ({client} -> {server}) inside VXLAN packets whose header lacks the I flag (not VXLAN: a UDP \
             datagram between two protected hosts, internal, counted as tunnel_malformed), and at t={} s \
             ({deep_client} -> {deep_server}) inside {DEEP_LAYERS} nested IPv4-in-IPv4 tunnels, past the default \
             [decap] max_depth of 8 (skipped as too_many_layers). Tunnelled sessions use a 1300-byte MSS.",
            lines.join("; "),
            n - 1,
            n
        ),
        allow_extra_events: vec![],
        incidents,
    };
    Generated { capture, expected }
}

/// Volumetric tunnel scenarios: where their expected files are kept,
/// relative to the captures directory.
pub const EXPECTED_SUBDIR: &str = "tunnels";

/// `flood-syn_flood` with every frame wrapped in `layers` (innermost
/// first).
fn wrapped_flood(name: &str, layers: &[TunnelKind], what: &str) -> FloodGenerated {
    let base = floods::find("flood-syn_flood")
        .map(|s| (s.build)())
        .unwrap_or_else(|| panic!("flood-syn_flood is a flood scenario"));
    let mut path = TunnelPath::nested(layers);
    let mut capture = FloodCapture::default();
    for f in base.capture.frames() {
        let w = path
            .wrap(&f.data, f.orig_len as usize, f.ts_micros)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        capture.push_snapped(SnappedFrame {
            ts_micros: f.ts_micros,
            orig_len: u32::try_from(w.wire_len).unwrap_or(u32::MAX),
            data: w.data,
        });
    }
    let mut expected = base.expected;
    expected.capture = format!("{name}.pcap");
    expected.description = format!(
        "Every frame of flood-syn_flood (ten seconds of background, and from t=1 s to t=3 s {} packets/s of \
         TCP SYNs from spoofed sources to {}), background included, inside {what} between protected tunnel \
         endpoints (10.255.0.1 <-> 10.255.0.2). Expected: exactly the incidents of flood-syn_flood, on the INNER \
         host; an incident on a 10.255.x.x address means the tunnel was not opened. Inner frames are cut to \
         flood-syn_flood's {}-byte snaplen; each record keeps the outer headers in front of them, and every \
         outer length field and the record's length on the wire count the whole inner frame.",
        floods::FLOOD_PPS,
        floods::TARGET,
        floods::SNAPLEN,
    );
    FloodGenerated { capture, expected }
}

macro_rules! tunnel_floods {
    ($($fn:ident, $name:literal, [$($kind:ident),+], $what:literal;)*) => {
        $(
            fn $fn() -> FloodGenerated {
                wrapped_flood($name, &[$(TunnelKind::$kind),+], $what)
            }
        )*
        const TUNNEL_FLOODS: &[FloodScenario] = &[
            $(FloodScenario { name: $name, summary: $what, build: $fn },)*
        ];
        /// The tunnel kinds of each volumetric tunnel scenario, innermost
        /// first.
        pub const LAYERS: &[(&str, &[TunnelKind])] = &[
            $(($name, &[$(TunnelKind::$kind),+]),)*
        ];
    };
}

tunnel_floods! {
    vxlan, "tunnel-vxlan-syn_flood", [Vxlan], "VXLAN (UDP 4789)";
    geneve, "tunnel-geneve-syn_flood", [Geneve], "Geneve (UDP 6081) with one option";
    gre, "tunnel-gre-syn_flood", [Gre], "GRE with key and sequence number carrying IPv4";
    erspan, "tunnel-erspan2-syn_flood", [ErspanII], "ERSPAN type II";
    mpls, "tunnel-mpls-syn_flood", [MplsIp], "MPLS with two labels and IPv4 below";
    pppoe, "tunnel-pppoe-syn_flood", [Pppoe], "a PPPoE session";
    gtpu, "tunnel-gtpu-syn_flood", [Gtpu], "GTP-U G-PDUs with sequence numbers";
    ipip, "tunnel-ipip-syn_flood", [IpInIp], "IPv4 in IPv4";
    nested, "tunnel-vxlan-in-gre-syn_flood", [Vxlan, Gre], "VXLAN inside GRE";
}

/// Every volumetric tunnel scenario.
pub fn all() -> Vec<FloodScenario> {
    TUNNEL_FLOODS.to_vec()
}

/// The volumetric tunnel scenario called `name`.
pub fn find(name: &str) -> Option<FloodScenario> {
    all().into_iter().find(|s| s.name == name)
}

/// Writes the expected files of every volumetric tunnel scenario into
/// `dir` (what is checked in under `pcaps/tunnels/`).
pub fn write_expected_dir(dir: &Path) -> io::Result<Vec<String>> {
    floods::write_expected_files(dir, &all())
}

/// Compares the expected files in `dir` with what the recipes give now.
pub fn check_expected_dir(dir: &Path) -> io::Result<Vec<Stale>> {
    floods::check_expected_files(dir, &all())
}
