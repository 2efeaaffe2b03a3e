//! `syn-flood`: a spoofed SYN flood against one web server amid background
//! traffic.

use std::net::Ipv4Addr;

use crate::background::Background;
use crate::capture::Capture;
use crate::expected::{Expected, ExpectedIncident};
use crate::packet::{MacAddr, Packet, TcpFlags};
use crate::rng::Rng;
use crate::scenario::{at, ts, Generated};
use crate::scenarios::random_public_v4;

/// The flood's target.
pub const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
/// The flood's destination port.
pub const TARGET_PORT: u16 = 80;
/// Capture length, µs.
pub const DURATION_MICROS: i64 = 15_000_000;
/// Flood start (offset from the base time), µs.
pub const FLOOD_START_MICROS: i64 = 3_000_000;
/// Flood end (exclusive), µs.
pub const FLOOD_END_MICROS: i64 = 5_000_000;
/// Time between flood packets, µs (25,000 packets/s).
pub const FLOOD_INTERVAL_MICROS: i64 = 40;
/// Number of flood packets.
pub const FLOOD_PACKETS: i64 = (FLOOD_END_MICROS - FLOOD_START_MICROS) / FLOOD_INTERVAL_MICROS;

/// The MAC of the upstream router that delivers the flood.
const ROUTER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]);

/// Builds the scenario.
pub fn build() -> Generated {
    let mut capture = Capture::new();
    capture.extend(Background::new(0x5359_4E46).generate(at(0), at(DURATION_MICROS)));

    let mut rng = Rng::new(0x0046_4C4F_4F44);
    const WINDOWS: &[u16] = &[512, 1024, 8192, 16384, 64240, 65535];
    for i in 0..FLOOD_PACKETS {
        let src = random_public_v4(&mut rng);
        let frame = Packet::tcp(
            src,
            TARGET,
            rng.range_u16(1024, 65_535),
            TARGET_PORT,
            TcpFlags::SYN,
            rng.next_u32(),
            0,
            b"",
        )
        .ttl(rng.range_u8(240, 250))
        .ip_id(rng.next_u32() as u16)
        .dont_fragment(false)
        .window(*rng.pick(WINDOWS))
        .macs(ROUTER_MAC, MacAddr::for_ip(TARGET.into()))
        .build();
        capture.push(at(FLOOD_START_MICROS + i * FLOOD_INTERVAL_MICROS), frame);
    }

    let incident = |event: &str, min: i64, max: i64| ExpectedIncident {
        kind: Some("volumetric".into()),
        event: Some(event.into()),
        signature: Some("volumetric/syn_flood".into()),
        vector: Some("syn_flood".into()),
        dst_ip: Some(TARGET.into()),
        direction: Some("inbound".into()),
        ts_min: Some(ts(at(min))),
        ts_max: Some(ts(at(max))),
        ..Default::default()
    };
    let expected = Expected {
        capture: "syn-flood.pcap".into(),
        description: format!(
            "Fifteen seconds of low-rate background traffic (five internal hosts in 10.0.1.0/24 doing small HTTP \
             sessions and DNS lookups to 198.51.100.0/24 and 203.0.113.0/24, under 200 packets/s). From t=3.000 s \
             to t=5.000 s (exclusive) {FLOOD_PACKETS} TCP SYN packets, one every {FLOOD_INTERVAL_MICROS} us \
             (25,000 packets/s), hit {TARGET}:{TARGET_PORT} from random spoofed public source addresses and \
             ports: flags exactly SYN, no options, 54-byte frames, TTL 240-250. A sensor must report one \
             syn_flood attack on {TARGET} that starts within the first second of the flood and ends once the \
             rate has stayed under the threshold for the hold time (5 s by default), before the capture ends; \
             periodic updates are allowed."
        ),
        allow_extra_events: vec!["attack_update".into()],
        incidents: vec![
            incident("attack_started", FLOOD_START_MICROS, FLOOD_START_MICROS + 1_000_000),
            ExpectedIncident {
                end_reason: Some("hold_expired".into()),
                ..incident("attack_ended", FLOOD_END_MICROS, DURATION_MICROS)
            },
        ],
    };
    Generated { capture, expected }
}
