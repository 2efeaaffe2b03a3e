//! Unit tests of the volumetric detector on synthetic packet streams.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::config::{BaselineConfig, HostGroupConfig, ThresholdConfig};
use crate::decode::{tcp_flags, Fragment, Header};

fn pkt(src: IpAddr, dst: IpAddr, proto: u8, flags: u8, sport: u16, dport: u16) -> Header {
    Header {
        src,
        dst,
        proto,
        ttl: 64,
        src_port: sport,
        dst_port: dport,
        tcp_flags: flags,
        tcp_seq: 0,
        tcp_ack: 0,
        has_payload: false,
        fragment: Fragment::None,
        frag_id: 0,
    }
}

fn syn(src: IpAddr, dst: IpAddr) -> Header {
    pkt(src, dst, proto::TCP, tcp_flags::SYN, 1234, 80)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spoofed(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i))
}

/// A detector whose `default` group has `threshold` pps for every vector.
fn detector(threshold: u64) -> Volumetric {
    with_groups(
        threshold,
        vec![HostGroupConfig {
            name: "lab".into(),
            networks: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            pps: Some(threshold),
            mbps: None,
            vectors: Default::default(),
            baseline: None,
            prefix: None,
            network: None,
        }],
    )
}

fn with_groups(_threshold: u64, groups: Vec<HostGroupConfig>) -> Volumetric {
    let cfg = VolumetricConfig {
        hold_secs: 2,
        update_secs: 1,
        groups,
        ..VolumetricConfig::default()
    };
    Volumetric::new(cfg, NetSet::private_defaults(), "t".into())
}

/// Sends `pps` packets per second made by `make(i)` from `from_us` for
/// `dur_us`, `len` bytes each.
#[allow(clippy::too_many_arguments)]
fn stream(
    v: &mut Volumetric,
    out: &mut Vec<Incident>,
    pps: i64,
    from_us: i64,
    dur_us: i64,
    len: u32,
    make: impl Fn(u32) -> Header,
) {
    let gap = 1_000_000 / pps;
    let mut t = from_us;
    let mut i = 0u32;
    while t < from_us + dur_us {
        v.on_packet(Timestamp(t), &make(i), len, out);
        t += gap;
        i += 1;
    }
}

fn flood(v: &mut Volumetric, out: &mut Vec<Incident>, dst: &str, pps: i64, from: i64, dur: i64) {
    let dst = ip(dst);
    stream(v, out, pps, from, dur, 60, |i| syn(spoofed(i), dst));
}

fn events(out: &[Incident], e: Event) -> Vec<&Incident> {
    out.iter().filter(|i| i.event == e).collect()
}

#[test]
fn flood_over_threshold_starts_within_a_second_and_ends_after_hold() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 3_000_000);
    // Background keeps the clock moving after the flood.
    flood(&mut v, &mut out, "10.0.0.2", 10, 3_000_000, 5_000_000);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert!(started[0].ts.micros() < 1_000_000);
    assert_eq!(started[0].dst_ip, Some(ip("10.0.0.1")));
    assert_eq!(started[0].vector.as_deref(), Some("syn_flood"));
    assert_eq!(started[0].signature, "volumetric/syn_flood");
    let ended = events(&out, Event::AttackEnded);
    assert_eq!(ended.len(), 1);
    assert!(ended[0].ts.micros() >= 3_000_000 + 2_000_000);
    assert!(ended[0].ts.micros() <= 3_000_000 + 3_200_000);
    assert_eq!(ended[0].extra.get("end_reason").unwrap(), "hold_expired");
    assert!(out.iter().any(|i| i.event == Event::AttackUpdate));
    for i in &out {
        i.validate().unwrap();
        assert_eq!(i.attack_id, started[0].attack_id);
    }
}

#[test]
fn rate_under_threshold_gives_nothing() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "10.0.0.1", 900, 0, 5_000_000);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn unprotected_destinations_are_ignored() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "8.8.8.8", 5000, 0, 2_000_000);
    assert!(out.is_empty());
    assert_eq!(v.stats().hosts, 0);
}

#[test]
fn open_attack_is_ended_at_capture_end() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 2_000_000);
    v.finish(Timestamp(2_000_000), &mut out);
    let ended = out.iter().find(|i| i.event == Event::AttackEnded).unwrap();
    assert_eq!(ended.extra.get("end_reason").unwrap(), "capture_end");
}

#[test]
fn host_table_cap_is_enforced_and_counted() {
    let mut v = Volumetric::new(
        VolumetricConfig {
            max_hosts: 2,
            ..VolumetricConfig::default()
        },
        NetSet::private_defaults(),
        "t".into(),
    );
    let mut out = Vec::new();
    for h in 1..=3 {
        let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, h));
        v.on_packet(Timestamp(1), &syn(ip("1.1.1.1"), dst), 60, &mut out);
    }
    assert_eq!(v.stats().hosts, 2);
    assert_eq!(v.stats().hosts_untracked, 1);
    // After 60 s idle the old hosts make room.
    let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
    v.on_packet(
        Timestamp(61_000_001),
        &syn(ip("1.1.1.1"), dst),
        60,
        &mut out,
    );
    assert_eq!(v.stats().hosts_evicted, 2);
    assert_eq!(v.stats().hosts, 1);
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut v = detector(1000);
        let mut out = Vec::new();
        flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 3_000_000);
        v.finish(Timestamp(3_000_000), &mut out);
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn spoofed_sources_do_not_grow_the_host_table_or_evidence() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "10.0.0.1", 50_000, 0, 2_000_000);
    assert_eq!(v.stats().hosts, 1);
    assert!(v.stats().evidence_allocated <= 2, "{:?}", v.stats());
    let started = events(&out, Event::AttackStarted);
    let distinct = started[0].extra["distinct_sources"].as_u64().unwrap();
    assert!(distinct > 0);
}

#[test]
fn evidence_names_heavy_sources_ports_sizes_and_distinct_sources() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let dst = ip("10.0.0.1");
    stream(&mut v, &mut out, 4000, 0, 2_000_000, 60, |i| {
        let mut p = syn(spoofed(i % 20), dst);
        p.dst_port = 443;
        p
    });
    v.finish(Timestamp(2_000_000), &mut out);
    let ended = events(&out, Event::AttackEnded)[0];
    let top = ended.top_sources.as_ref().unwrap();
    assert_eq!(top.len(), 10);
    assert!(top[0].packets > 100);
    let d = ended.extra["distinct_sources"].as_u64().unwrap();
    assert!((19..=21).contains(&d), "{d}");
    assert_eq!(ended.extra["top_dst_ports"][0]["port"], 443);
    assert_eq!(ended.extra["packet_size"]["mean"], 60);
    assert_eq!(ended.extra["ttl"]["max"], 64);
    assert_eq!(ended.extra["samples"].as_array().unwrap().len(), 5);
    assert_eq!(ended.extra["group"], "lab");
}

#[test]
fn each_vector_is_reported_under_its_own_name() {
    let dst = ip("10.0.0.1");
    type Make = fn(u32, IpAddr) -> Header;
    let cases: &[(&str, u32, Make)] = &[
        ("ack_flood", 60, |i, d| {
            pkt(spoofed(i), d, proto::TCP, 0x10, 1, 80)
        }),
        ("rst_flood", 60, |i, d| {
            pkt(spoofed(i), d, proto::TCP, 0x04, 1, 80)
        }),
        ("tcp_flag_abuse", 60, |i, d| {
            pkt(spoofed(i), d, proto::TCP, 0x29, 1, 80)
        }),
        ("udp_flood", 200, |i, d| {
            pkt(spoofed(i), d, proto::UDP, 0, 40_000, 9)
        }),
        ("icmp_flood", 98, |i, d| {
            pkt(spoofed(i), d, proto::ICMP, 0, 8, 0)
        }),
        ("ip_fragment_flood", 600, |i, d| {
            let mut p = pkt(spoofed(i), d, proto::UDP, 0, 0, 0);
            p.fragment = Fragment::Later;
            p
        }),
        ("ntp_amplification", 486, |i, d| {
            pkt(spoofed(i), d, proto::UDP, 0, 123, 80)
        }),
        ("memcached_amplification", 1400, |i, d| {
            pkt(spoofed(i), d, proto::UDP, 0, 11211, 80)
        }),
    ];
    for (name, len, make) in cases {
        let mut v = detector(1000);
        let mut out = Vec::new();
        stream(&mut v, &mut out, 2000, 0, 2_000_000, *len, |i| make(i, dst));
        let started = events(&out, Event::AttackStarted);
        assert_eq!(started.len(), 1, "{name}: {started:#?}");
        assert_eq!(started[0].vector.as_deref(), Some(*name));
        assert!(started[0].ts.micros() < 1_000_000, "{name}");
    }
}

#[test]
fn answers_to_the_hosts_own_queries_are_not_amplification() {
    // UDP floods and totals are judged at 100,000 pps here, so only the amplification
    // judgement (at 1,000 pps) is under test.
    let mut group = HostGroupConfig {
        name: "resolvers".into(),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
        pps: Some(1000),
        mbps: None,
        vectors: Default::default(),
        baseline: None,
        prefix: None,
        network: None,
    };
    for name in ["udp_flood", "total_volume"] {
        group.vectors.insert(
            name.into(),
            ThresholdConfig {
                pps: Some(100_000),
                mbps: None,
            },
        );
    }
    let mut v = with_groups(0, vec![group]);
    let mut out = Vec::new();
    let host = ip("10.0.0.5");
    // 3,000 queries/s out, 3,000 large answers/s back from 20 resolvers.
    let mut t = 0;
    let mut i = 0u32;
    while t < 3_000_000 {
        let resolver = spoofed(i % 20);
        v.on_packet(
            Timestamp(t),
            &pkt(host, resolver, proto::UDP, 0, 30_000, 53),
            80,
            &mut out,
        );
        v.on_packet(
            Timestamp(t + 100),
            &pkt(resolver, host, proto::UDP, 0, 53, 30_000),
            900,
            &mut out,
        );
        t += 333;
        i += 1;
    }
    assert!(out.is_empty(), "{out:#?}");
    // The same answers without the queries are an attack.
    stream(&mut v, &mut out, 3000, 4_000_000, 2_000_000, 900, |i| {
        pkt(spoofed(i % 20), host, proto::UDP, 0, 53, 30_000)
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("dns_amplification"));
}

#[test]
fn unsolicited_answers_from_many_resolvers_are_dns_amplification() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let host = ip("10.0.0.5");
    stream(&mut v, &mut out, 3000, 0, 2_000_000, 1200, |i| {
        pkt(spoofed(i % 50), host, proto::UDP, 0, 53, 22)
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("dns_amplification"));
}

#[test]
fn small_packets_from_one_source_port_53_are_a_udp_flood_not_amplification() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let host = ip("10.0.0.5");
    stream(&mut v, &mut out, 3000, 0, 2_000_000, 60, |_| {
        pkt(ip("192.0.2.1"), host, proto::UDP, 0, 53, 22)
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("udp_flood"));
}

#[test]
fn large_packets_from_one_source_port_53_become_a_udp_flood_after_a_second() {
    // Too few sources is judged only once the evidence covers a second of
    // capture time (a young evidence set may just not have met them), and
    // that one attack is all: no total_volume while the verdict waits.
    let mut v = detector(1000);
    let mut out = Vec::new();
    let host = ip("10.0.0.5");
    stream(&mut v, &mut out, 3000, 0, 4_000_000, 1200, |_| {
        pkt(ip("192.0.2.1"), host, proto::UDP, 0, 53, 22)
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("udp_flood"));
    let at = started[0].ts.micros();
    assert!((1_000_000..1_200_000).contains(&at), "{at}");
}

/// A DNS response split in three fragments from `src`: the head (UDP
/// from port 53) and two later fragments without a transport header.
fn fragmented_response(src: IpAddr, dst: IpAddr, id: u32) -> [Header; 3] {
    let mut head = pkt(src, dst, proto::UDP, 0, 53, 22);
    head.fragment = Fragment::First;
    head.frag_id = id;
    let mut later = pkt(src, dst, proto::UDP, 0, 0, 0);
    later.fragment = Fragment::Later;
    later.frag_id = id;
    [head, later, later]
}

#[test]
fn later_fragments_of_reflected_responses_count_as_the_amplification() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let host = ip("10.0.0.5");
    // 1,000 fragmented responses per second from 50 resolvers: 3,000
    // frames per second, all of them one DNS amplification attack.
    stream(&mut v, &mut out, 3000, 0, 3_000_000, 1400, |i| {
        let n = i / 3;
        fragmented_response(spoofed(n % 50), host, n)[(i % 3) as usize]
    });
    v.finish(Timestamp(10_000_000), &mut out);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("dns_amplification"));
    let ended = events(&out, Event::AttackEnded);
    assert_eq!(ended.len(), 1, "{out:#?}");
    // Every frame from the start on, later fragments included (no
    // separate ip_fragment_flood).
    let packets = ended[0].packets.unwrap_or(0);
    assert!(packets > 6_000, "{packets}");
}

#[test]
fn internal_host_flooding_outside_is_outbound() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    stream(&mut v, &mut out, 3000, 0, 2_000_000, 60, |i| {
        let mut p = syn(ip("10.0.0.7"), ip("198.51.100.9"));
        p.src_port = (i % 60_000) as u16;
        p
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    let s = started[0];
    assert_eq!(s.direction, Some(Direction::Outbound));
    assert_eq!(s.src_ip, Some(ip("10.0.0.7")));
    assert_eq!(s.dst_ip, Some(ip("198.51.100.9")));
    assert_eq!(s.vector.as_deref(), Some("syn_flood"));
}

#[test]
fn two_vectors_on_one_host_are_two_attacks_and_no_total_volume() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let dst = ip("10.0.0.1");
    stream(&mut v, &mut out, 4000, 0, 2_000_000, 100, |i| {
        if i % 2 == 0 {
            syn(spoofed(i), dst)
        } else {
            pkt(spoofed(i), dst, proto::UDP, 0, 40_000, 9)
        }
    });
    let mut names: Vec<_> = events(&out, Event::AttackStarted)
        .iter()
        .map(|i| i.vector.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["syn_flood", "udp_flood"]);
    let ids: std::collections::BTreeSet<_> = out.iter().map(|i| i.attack_id).collect();
    assert_eq!(ids.len(), 2);
}

#[test]
fn mixed_traffic_with_no_dominant_vector_is_total_volume() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    let dst = ip("10.0.0.1");
    // Five vectors at 300 pps each: 1,500 pps in all, none over 1,000.
    stream(&mut v, &mut out, 1500, 0, 3_000_000, 100, |i| match i % 5 {
        0 => syn(spoofed(i), dst),
        1 => pkt(spoofed(i), dst, proto::TCP, 0x04, 1, 80),
        2 => pkt(spoofed(i), dst, proto::UDP, 0, 40_000, 9),
        3 => pkt(spoofed(i), dst, proto::ICMP, 0, 8, 0),
        _ => pkt(spoofed(i), dst, proto::TCP, 0x10, 1, 80),
    });
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("total_volume"));
    assert!(started[0].ts.micros() < 1_700_000, "{}", started[0].ts);
}

#[test]
fn ipv6_floods_are_detected_like_ipv4() {
    let mut v = detector(1000);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "fd00::10", 2000, 0, 2_000_000);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].dst_ip, Some(ip("fd00::10")));
}

#[test]
fn group_thresholds_apply_only_to_their_group() {
    let mut strict = HostGroupConfig {
        name: "strict".into(),
        networks: vec!["10.1.0.0/16".parse().unwrap()],
        pps: None,
        mbps: None,
        vectors: Default::default(),
        baseline: None,
        prefix: None,
        network: None,
    };
    strict.vectors.insert(
        "syn_flood".into(),
        ThresholdConfig {
            pps: Some(500),
            mbps: None,
        },
    );
    let loose = HostGroupConfig {
        name: "loose".into(),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
        pps: None,
        mbps: None,
        vectors: Default::default(),
        baseline: None,
        prefix: None,
        network: None,
    };
    let mut v = with_groups(0, vec![loose, strict]);
    let mut out = Vec::new();
    flood(&mut v, &mut out, "10.1.0.1", 1000, 0, 2_000_000);
    flood(&mut v, &mut out, "10.2.0.1", 1000, 2_000_000, 2_000_000);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0].dst_ip, Some(ip("10.1.0.1")));
    assert_eq!(started[0].extra["group"], "strict");
}

#[test]
fn learned_baseline_alerts_at_k_times_normal() {
    let group = HostGroupConfig {
        name: "busy".into(),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
        pps: None,
        mbps: None,
        vectors: Default::default(),
        baseline: Some(BaselineConfig {
            factor: 3.0,
            half_life_secs: 10,
            warmup_secs: 20,
            min_pps: 100,
            min_mbps: 1,
        }),
        prefix: None,
        network: None,
    };
    let mut v = with_groups(0, vec![group]);
    let mut out = Vec::new();
    let dst = ip("10.0.0.1");
    let mixed = move |i: u32| match i % 4 {
        0 => syn(spoofed(i), dst),
        1 => pkt(spoofed(i), dst, proto::UDP, 0, 40_000, 9),
        2 => pkt(spoofed(i), dst, proto::ICMP, 0, 8, 0),
        _ => pkt(spoofed(i), dst, proto::TCP, 0x04, 1, 80),
    };
    // 40 s of a normal 1,000 pps, then 2,000 pps (2x): nothing.
    stream(&mut v, &mut out, 1000, 0, 40_000_000, 100, mixed);
    stream(&mut v, &mut out, 2000, 40_000_000, 3_000_000, 100, mixed);
    assert!(out.is_empty(), "{out:#?}");
    // 5,000 pps (5x normal, far below the static 20,000): total_volume.
    stream(&mut v, &mut out, 5000, 43_000_000, 2_000_000, 100, mixed);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("total_volume"));
}

#[test]
fn documented_per_host_and_per_vector_costs_hold() {
    // docs/sensor.md and the config docs promise about 550 bytes per host
    // (table key and entry) and 180 per vector counter.
    let host = std::mem::size_of::<Host>() + std::mem::size_of::<u128>();
    assert!(host <= 560, "host entry is {host} bytes");
    let counter = std::mem::size_of::<Counter>();
    assert!(counter <= 184, "counter is {counter} bytes");
}

#[test]
fn spoofed_internal_sources_fill_the_capped_table_without_growing_it() {
    // 100,000 distinct spoofed *internal* sources flood an outside address:
    // each would be an outbound host. The table stays at its cap, the
    // overflow is counted, and memory does not follow the sources.
    let mut v = Volumetric::new(
        VolumetricConfig {
            max_hosts: 1_000,
            ..VolumetricConfig::default()
        },
        NetSet::private_defaults(),
        "t".into(),
    );
    let mut out = Vec::new();
    let victim = ip("198.51.100.9");
    stream(&mut v, &mut out, 50_000, 0, 2_000_000, 60, |i| {
        syn(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), victim)
    });
    let s = v.stats();
    assert_eq!(s.hosts, 1_000);
    assert_eq!(s.hosts_untracked, 100_000 - 1_000);
    assert_eq!(s.hosts_evicted, 0, "none was idle for a minute");
    assert!(out.is_empty(), "no single host floods: {out:?}");
}

/// `conns` handshakes per second to 10.0.0.80:443 for `secs` seconds:
/// SYN, the server's SYN-ACK and the client's ACK (with its request), one
/// step apart; `ack_ok` false makes every ACK miss the server's number
/// (a spoofer's guess). Plus `spoofed` bare SYNs per second.
fn crowd(
    v: &mut Volumetric,
    out: &mut Vec<Incident>,
    conns: i64,
    secs: i64,
    ack_ok: bool,
    spoofed: i64,
) {
    let server = ip("10.0.0.80");
    let client = |i: i64| IpAddr::V4(Ipv4Addr::from(0xc633_0000u32 + (i as u32 % 60_000)));
    let cport = |i: i64| 1024 + (i % 60_000) as u16;
    let isn = |i: i64| (i as u32).wrapping_mul(2_654_435_761);
    let tcp = |src, dst, sport, dport, flags, seq, ack, payload| Header {
        tcp_seq: seq,
        tcp_ack: ack,
        has_payload: payload,
        ..pkt(src, dst, proto::TCP, flags, sport, dport)
    };
    let total = conns * secs;
    let every = if spoofed > 0 { conns / spoofed } else { 0 };
    for i in 0..total {
        let t = i * 1_000_000 / conns;
        v.on_packet(
            Timestamp(t),
            &tcp(client(i), server, cport(i), 443, 0x02, 7, 0, false),
            60,
            out,
        );
        if i >= 1 {
            let j = i - 1;
            v.on_packet(
                Timestamp(t),
                &tcp(server, client(j), 443, cport(j), 0x12, isn(j), 8, false),
                60,
                out,
            );
        }
        if i >= 2 {
            let j = i - 2;
            let ack = if ack_ok {
                isn(j).wrapping_add(1)
            } else {
                isn(j) ^ 0x5555
            };
            v.on_packet(
                Timestamp(t),
                &tcp(client(j), server, cport(j), 443, 0x18, 8, ack, true),
                300,
                out,
            );
        }
        if every > 0 && i % every == 0 {
            v.on_packet(Timestamp(t), &syn(spoofed_src(i), server), 60, out);
        }
    }
}

fn spoofed_src(i: i64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i as u32))
}

fn crowd_detector() -> Volumetric {
    let mut g = HostGroupConfig {
        name: "web".into(),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
        pps: Some(50_000),
        mbps: None,
        vectors: Default::default(),
        baseline: None,
        prefix: None,
        network: None,
    };
    g.vectors.insert(
        "syn_flood".into(),
        ThresholdConfig {
            pps: Some(10_000),
            mbps: None,
        },
    );
    with_groups(0, vec![g])
}

#[test]
fn flash_crowd_of_completed_handshakes_is_not_a_syn_flood() {
    let mut v = crowd_detector();
    let mut out = Vec::new();
    // 15,000 new connections/s: SYNs in and SYN-ACKs out at 1.5x the
    // syn_flood threshold, every one completed.
    crowd(&mut v, &mut out, 15_000, 3, true, 0);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn half_open_handshakes_at_the_same_rate_are_a_syn_flood() {
    let mut v = crowd_detector();
    let mut out = Vec::new();
    // Same packets, but the ACKs do not acknowledge the server's number.
    crowd(&mut v, &mut out, 15_000, 3, false, 0);
    let started = events(&out, Event::AttackStarted);
    assert!(
        started
            .iter()
            .any(|i| i.vector.as_deref() == Some("syn_flood")
                && i.direction == Some(shaobing_wire::Direction::Inbound)),
        "{out:#?}"
    );
}

#[test]
fn a_syn_flood_hidden_in_a_flash_crowd_is_still_found() {
    let mut v = crowd_detector();
    let mut out = Vec::new();
    // 15,000 completed connections/s plus 15,000 spoofed SYNs/s: 15,000
    // half-open per second, over the 10,000 threshold.
    crowd(&mut v, &mut out, 15_000, 3, true, 15_000);
    let started = events(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("syn_flood"));
    assert_eq!(started[0].dst_ip, Some(ip("10.0.0.80")));
}
