//! Durable delivery through the sensor's spool, with real processes: the
//! collector is down while a capture is replayed, a spooled record is
//! corrupted on disk, then the collector comes up and the spool is drained.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shaobing_e2e::{bin, pcaps, Collector, SensorToken};
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
