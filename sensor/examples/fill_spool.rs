//! Fills a spool folder with N realistic incidents (alternating leak and
//! volumetric, unique ids), for the delivery benchmark in
//! `scripts/bench-live.sh`:
//!
//! `cargo run --release -p shaobing-sensor --example fill_spool -- DIR N`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use shaobing_sensor::forward::spool::{Spool, SpoolConfig};
use shaobing_wire::{
    incident_id, Direction, Event, Incident, Kind, Severity, Timestamp, TopSource,
};

fn incident(i: u64) -> Incident {
    let ts = Timestamp::from_parts(1_767_225_600 + (i / 1000) as i64, (i % 1000) as u32 * 1000);
    let host = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 5000) as u32));
    let outside = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (i % 200) as u32));
    let leak = i.is_multiple_of(2);
    Incident {
        id: incident_id(ts, format!("bench|{i}").as_bytes()),
        schema: shaobing_wire::SCHEMA_VERSION,
        sensor: "bench".into(),
        kind: if leak { Kind::Leak } else { Kind::Volumetric },
        event: if leak {
            Event::Leak
        } else {
            Event::AttackUpdate
        },
        signature: if leak {
            "cn-resident-id".into()
        } else {
            "volumetric/syn_flood".into()
        },
        severity: if leak {
            Severity::High
        } else {
            Severity::Medium
        },
        ts,
        src_ip: Some(if leak { host } else { outside }),
        dst_ip: Some(if leak { outside } else { host }),
        src_port: leak.then_some(40_000 + (i % 20_000) as u16),
        dst_port: Some(if leak { 80 } else { 443 }),
        proto: "tcp".into(),
        community_id: Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into()),
        direction: Some(if leak {
            Direction::Outbound
        } else {
            Direction::Inbound
        }),
        attack_id: (!leak).then(|| incident_id(ts, b"attack")),
        vector: (!leak).then(|| "syn_flood".into()),
        pps: (!leak).then_some(25_000),
        bps: (!leak).then_some(10_800_000),
        peak_pps: (!leak).then_some(31_000),
        peak_bps: (!leak).then_some(13_392_000),
        packets: (!leak).then_some(250_000),
        bytes: (!leak).then_some(13_500_000),
        top_sources: (!leak).then(|| {
            vec![TopSource {
                ip: outside,
                packets: 1200,
            }]
        }),
        match_count: leak.then_some(3),
        app_proto: leak.then(|| "http".into()),
        excerpt: leak.then(|| "110101********123X".into()),
        extra: serde_json::Map::new(),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: fill_spool DIR N"))?;
    let n: u64 = args.next().unwrap_or_else(|| "1000000".into()).parse()?;
    let mut spool = Spool::open(SpoolConfig {
        max_bytes: 16 << 30,
        ..SpoolConfig::new(&dir)
    })?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(serde_json::to_vec(&incident(i))?);
        if batch.len() == 1000 {
            spool.append(&batch)?;
            batch.clear();
        }
    }
    spool.append(&batch)?;
    eprintln!(
        "fill_spool: {n} incidents, {} bytes in {dir} in {:.2} s",
        spool.depth_bytes(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
