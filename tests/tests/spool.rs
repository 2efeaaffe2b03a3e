//! Durable delivery through the sensor's spool, with real processes: the
//! collector is down while a capture is replayed, a spooled record is
//! corrupted on disk, then the collector comes up and the spool is drained.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shaobing_e2e::{bin, pcaps, sensor, succeeded, Collector, SensorToken};
use shaobing_testkit::{clickhouse_available, free_port, ClickHouseServer};

const SENSOR: SensorToken = SensorToken {
    name: "spool-sensor",
    token: "spool-token-77c2e1",
};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn incidents_spooled_while_the_collector_is_down_are_delivered_later_minus_a_corrupt_record() {
    if !clickhouse_available() {
        eprintln!("SKIPPED: clickhouse-server is not installed (make deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let a = pcaps().join("syn-flood.pcap");
    let b = pcaps().join("http-leak.pcap");

    // 1. Nothing listens on the collector's port: everything is spooled.
    let out = Command::new(bin("shaobing-sensor"))
        .args([
            "replay",
            "--collector",
            &url,
            "--token",
            SENSOR.token,
            "--grace-secs",
            "1",
            "--spool",
        ])
        .arg(&spool)
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("incidents remain spooled"), "{err}");
    assert!(out.stdout.is_empty());
    let local: Vec<Value> = String::from_utf8_lossy(
        &Command::new(bin("shaobing-sensor"))
            .arg("replay")
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap()
            .stdout,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(local.len(), 3);

    // 2. Flip a bit inside the first spooled record's payload.
    let seg = segments(&spool).remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    assert!(bytes.len() > 40);
    bytes[30] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    // 3. The collector comes up on that port; drain the spool.
    let ch = ClickHouseServer::start().expect("start ClickHouse");
    let collector = Collector::start_on(dir.path(), &ch, &[SENSOR], port).expect("start collector");
    let out = Command::new(bin("shaobing-sensor"))
        .args([
            "deliver",
            "--collector",
            &collector.url,
            "--token",
            SENSOR.token,
            "--spool",
        ])
        .arg(&spool)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("delivered 2 incident(s)"), "{err}");
    assert!(err.contains("1 corrupt record(s) skipped"), "{err}");
    assert!(err.contains("0 bytes left"), "{err}");

    // 4. The two intact incidents are stored once; the spool is empty.
    let stored: Vec<Value> = collector
        .query(&["--since", "all", "--json"])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    for s in &stored {
        assert!(
            local.iter().any(|l| l["id"] == s["id"]),
            "unknown incident {s}"
        );
    }
    for seg in segments(&spool) {
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            0,
            "{} not drained",
            seg.display()
        );
    }

    // 5. Delivering again sends nothing new.
    let out = Command::new(bin("shaobing-sensor"))
        .args([
            "deliver",
            "--collector",
            &collector.url,
            "--token",
            SENSOR.token,
            "--spool",
        ])
        .arg(&spool)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("delivered 0 incident(s)"));
}

/// A capture with `n` leaking UDP flows, one second apart in capture time:
/// each is one `classification-marking` incident.
fn many_leaks(path: &Path, n: u16) {
    use shaobing_pcapgen::packet::Packet;
    let mut cap = shaobing_pcapgen::capture::Capture::new();
    let body = "报告 绝密★一年 内容".as_bytes();
    for i in 0..n {
        let src = std::net::Ipv4Addr::new(10, 20, (i >> 8) as u8, i as u8);
        let dst = std::net::Ipv4Addr::new(203, 0, 113, 9);
        let frame = Packet::udp(src, dst, 40_000 + i, 5_000, body).build();
        cap.push(1_700_000_000_000_000 + i64::from(i) * 1_000_000, frame);
    }
    let bytes = cap.to_pcap_bytes().unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_full_spool_refuses_the_newest_counts_them_and_delivers_the_rest() {
    if !clickhouse_available() {
        eprintln!("SKIPPED: clickhouse-server is not installed (make deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let pcap = dir.path().join("many-leaks.pcap");
    let total = 3_000u16;
    many_leaks(&pcap, total);
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        "protected_networks = [\"10.0.0.0/8\"]\n[run]\nspool_max_mib = 1\n",
    )
    .unwrap();
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");

    // 1. The collector is down and the spool holds 1 MiB: less than the
    //    capture's incidents.
    let mut args: Vec<std::ffi::OsString> = vec!["replay".into(), "--config".into()];
    args.push(config.into());
    for a in [
        "--collector",
        &url,
        "--token",
        SENSOR.token,
        "--grace-secs",
        "1",
    ] {
        args.push(a.into());
    }
    args.extend(["--spool".into(), spool.clone().into(), pcap.into()]);
    let err = succeeded(&sensor(args));
    let produced: u64 = err
        .split(" incidents;")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no incident count in {err}"));
    assert_eq!(produced, u64::from(total), "{err}");
    let dropped: u64 = err
        .split(" dropped (full)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in {err}"));
    assert!(dropped > 0 && dropped < produced, "{err}");
    let on_disk: u64 = segments(&spool)
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().len())
        .sum();
    assert!(on_disk <= 1 << 20, "spool holds {on_disk} bytes");

    // 2. The collector comes up: exactly the spooled ones arrive, and they
    //    are the oldest (drop-newest keeps what was spooled first).
    let ch = ClickHouseServer::start().expect("start ClickHouse");
    let collector = Collector::start_on(dir.path(), &ch, &[SENSOR], port).expect("start collector");
    let mut args: Vec<std::ffi::OsString> = vec!["deliver".into(), "--spool".into()];
    args.push(spool.clone().into());
    for a in ["--collector", &collector.url, "--token", SENSOR.token] {
        args.push(a.into());
    }
    let err = succeeded(&sensor(args));
    let kept = produced - dropped;
    assert!(
        err.contains(&format!("delivered {kept} incident(s)")),
        "{err}"
    );
    let stored: Vec<Value> = collector
        .query(&["--since", "all", "--json", "--limit", "10000"])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored.len() as u64, kept);
    let mut sources: Vec<u32> = stored
        .iter()
        .filter_map(|s| s["src_ip"].as_str()?.parse::<std::net::Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    sources.sort_unstable();
    let first = u32::from(std::net::Ipv4Addr::new(10, 20, 0, 0));
    let oldest: Vec<u32> = (0..kept as u32).map(|i| first + i).collect();
    assert!(
        sources == oldest,
        "the kept incidents must be the oldest {kept} (drop-newest)"
    );
}
