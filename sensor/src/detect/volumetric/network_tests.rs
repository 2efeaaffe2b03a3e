//! Network-level detection on synthetic packet streams.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use shaobing_wire::{Event, Incident, Timestamp};

use crate::config::{AggregateConfig, HostGroupConfig, NetworksConfig, VolumetricConfig};
use crate::decode::{proto, tcp_flags, Fragment, Header};
use crate::detect::volumetric::Volumetric;
use crate::netset::NetSet;

fn header(src: IpAddr, dst: IpAddr, proto: u8, flags: u8, sport: u16) -> Header {
    Header {
        src,
        dst,
        proto,
        ttl: 52,
        src_port: sport,
        dst_port: 40_000,
        tcp_flags: flags,
        tcp_seq: 0,
        tcp_ack: 0,
        has_payload: proto == self::proto::UDP,
        fragment: Fragment::None,
        frag_id: 0,
    }
}

fn group(prefix_pps: Option<u64>, network_pps: Option<u64>) -> HostGroupConfig {
    HostGroupConfig {
        name: "campus".into(),
        networks: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        pps: None,
        mbps: None,
        vectors: Default::default(),
        baseline: None,
        prefix: prefix_pps.map(|p| AggregateConfig {
            pps: Some(p),
            ..AggregateConfig::default()
        }),
        network: network_pps.map(|p| AggregateConfig {
            pps: Some(p),
            ..AggregateConfig::default()
        }),
    }
}

fn detector(g: HostGroupConfig, networks: NetworksConfig) -> Volumetric {
    let cfg = VolumetricConfig {
        hold_secs: 2,
        update_secs: 1,
        groups: vec![g],
        networks,
        ..VolumetricConfig::default()
    };
    Volumetric::new(cfg, NetSet::private_defaults(), "t".into())
}

/// `pps` packets/s for `dur_us` from `from_us`, packet `i` made by `make`.
fn stream(
    v: &mut Volumetric,
    out: &mut Vec<Incident>,
    pps: i64,
    from_us: i64,
    dur_us: i64,
    len: u32,
    make: impl Fn(u32) -> Header,
) {
    let mut i = 0u32;
    loop {
        let t = from_us + i64::from(i) * 1_000_000 / pps;
        if t >= from_us + dur_us {
            break;
        }
        v.on_packet(Timestamp(t), &make(i), len, out);
        i += 1;
    }
}

fn reflector(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 50) as u8 + 1))
}

fn net_incidents(out: &[Incident], e: Event) -> Vec<&Incident> {
    out.iter()
        .filter(|i| i.event == e && i.extra.contains_key("dst_net"))
        .collect()
}

/// The example: a DNS reflection of 200,000 packets/s spread
/// evenly over the 254 hosts of a /24, each host at about 790 packets/s.
#[test]
fn reflection_spread_over_a_slash_24_is_a_prefix_attack_and_no_host_attack() {
    let mut v = detector(group(None, None), NetworksConfig::default());
    let mut out = Vec::new();
    stream(&mut v, &mut out, 200_000, 0, 3_000_000, 1_200, |i| {
        let dst = IpAddr::V4(Ipv4Addr::new(10, 1, 2, (i % 254) as u8 + 1));
        header(reflector(i / 254), dst, proto::UDP, 0, 53)
    });
    // Quiet background elsewhere keeps capture time moving.
    stream(&mut v, &mut out, 100, 3_000_000, 4_000_000, 100, |i| {
        header(
            reflector(i),
            "10.9.9.9".parse().unwrap(),
            proto::UDP,
            0,
            4444,
        )
    });
    let started = net_incidents(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    let s = started[0];
    s.validate().unwrap();
    assert_eq!(s.extra["dst_net"], "10.1.2.0/24");
    assert_eq!(s.dst_net(), Some(("10.1.2.0".parse().unwrap(), 24)));
    assert_eq!(s.vector.as_deref(), Some("dns_amplification"));
    assert_eq!(s.extra["scope"], "prefix");
    assert!(s.ts.micros() <= 2_000_000, "started at {}", s.ts);
    let hosts = s.extra["hosts_hit"].as_u64().unwrap();
    assert!((240..=270).contains(&hosts), "{hosts}");
    assert!(!s.extra["top_targets"].as_array().unwrap().is_empty());
    assert!(!s.top_sources.as_ref().unwrap().is_empty());
    assert!(
        out.iter().all(|i| i.extra.contains_key("dst_net")),
        "no host crossed its threshold: {out:#?}"
    );
    let ended = net_incidents(&out, Event::AttackEnded);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].attack_id, s.attack_id);
    let end = ended[0].ts.micros();
    assert!((5_000_000..=6_200_000).contains(&end), "ended at {end}");
    assert!(v.stats().network_attacks_started == 1);
}

#[test]
fn a_flood_on_one_host_is_that_hosts_attack_not_its_prefixs() {
    let mut v = detector(group(None, None), NetworksConfig::default());
    let mut out = Vec::new();
    let dst: IpAddr = "10.1.2.3".parse().unwrap();
    stream(&mut v, &mut out, 400_000, 0, 2_000_000, 60, |i| {
        let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        header(src, dst, proto::TCP, tcp_flags::SYN, 1234)
    });
    assert!(
        net_incidents(&out, Event::AttackStarted).is_empty(),
        "{out:#?}"
    );
    let host: Vec<_> = out
        .iter()
        .filter(|i| i.event == Event::AttackStarted)
        .collect();
    assert_eq!(host.len(), 1);
    assert_eq!(host[0].dst_ip, Some(dst));
}

#[test]
fn carpet_at_ten_times_the_threshold_starts_within_a_few_steps() {
    let mut v = detector(group(Some(10_000), None), NetworksConfig::default());
    let mut out = Vec::new();
    let onset = 5_000_000;
    stream(&mut v, &mut out, 100_000, onset, 1_000_000, 64, |i| {
        let dst = IpAddr::V4(Ipv4Addr::new(10, 7, 7, (i % 200) as u8 + 1));
        let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        header(src, dst, proto::TCP, tcp_flags::SYN, 1234)
    });
    let started = net_incidents(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].vector.as_deref(), Some("syn_flood"));
    let latency = started[0].ts.micros() - onset;
    assert!(latency <= 300_000, "latency {latency} us");
}

#[test]
fn ipv6_carpets_are_reported_per_slash_64_and_slash_48() {
    let mut v = detector(group(Some(20_000), None), NetworksConfig::default());
    let mut out = Vec::new();
    stream(&mut v, &mut out, 50_000, 0, 2_000_000, 90, |i| {
        let dst = IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            1,
            2,
            3,
            0,
            0,
            0,
            (i % 500) as u16 + 1,
        ));
        let src = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            (i % 7) as u16 + 1,
        ));
        header(src, dst, proto::ICMPV6, 0, 128)
    });
    let mut nets: Vec<String> = net_incidents(&out, Event::AttackStarted)
        .iter()
        .map(|i| i.extra["dst_net"].as_str().unwrap().to_string())
        .collect();
    nets.sort();
    assert_eq!(nets, vec!["fd00:1:2:3::/64", "fd00:1:2::/48"], "{out:#?}");
    for i in &out {
        assert_eq!(i.proto, "icmpv6");
        i.validate().unwrap();
    }
}

#[test]
fn a_carpet_over_the_whole_group_is_a_group_attack() {
    let cfg = NetworksConfig {
        min_hosts: 3,
        ..NetworksConfig::default()
    };
    let mut v = detector(group(Some(1_000_000), Some(50_000)), cfg);
    let mut out = Vec::new();
    stream(&mut v, &mut out, 100_000, 0, 2_000_000, 64, |i| {
        let dst = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 65_536) * 256 + 1));
        header(reflector(i), dst, proto::UDP, 0, 9999)
    });
    let started = net_incidents(&out, Event::AttackStarted);
    assert_eq!(started.len(), 1, "{out:#?}");
    assert_eq!(started[0].extra["scope"], "group");
    assert_eq!(started[0].extra["dst_net"], "10.0.0.0/8");
    assert_eq!(started[0].vector.as_deref(), Some("udp_flood"));
}

#[test]
fn the_prefix_table_is_capped_and_counts_what_it_cannot_track() {
    let cfg = NetworksConfig {
        max_prefixes: 100,
        ..NetworksConfig::default()
    };
    let mut v = detector(group(None, None), cfg);
    let mut out = Vec::new();
    stream(&mut v, &mut out, 10_000, 0, 1_000_000, 64, |i| {
        let dst = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 1_000) * 256 + 1));
        header(reflector(i), dst, proto::UDP, 0, 9999)
    });
    let s = v.stats();
    // One group aggregate and at most 100 prefixes.
    assert!(s.prefixes <= 101, "{s:?}");
    assert!(s.prefixes_untracked > 0, "{s:?}");
}
