//! A sensor with two collectors on one store (`--collector A,B`): the first
//! is killed between two deliveries of the same sensor stream (same spool);
//! delivery fails over to the second, and every incident is stored once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use shaobing_e2e::{bin, pcaps, Collector, SensorToken};
use shaobing_testkit::{clickhouse_available, ClickHouseServer};

const SENSOR: SensorToken = SensorToken {
    name: "failover-sensor",
    token: "failover-token-5d1e",
};

fn local_ids(captures: &[&Path]) -> Vec<String> {
    let out = Command::new(bin("shaobing-sensor"))
        .arg("replay")
        .args(captures)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn replay_to(collectors: &str, spool: &Path, captures: &[&Path]) -> String {
    let out = Command::new(bin("shaobing-sensor"))
        .args([
            "replay",
            "--collector",
            collectors,
            "--token",
            SENSOR.token,
            "--grace-secs",
            "20",
            "--spool",
        ])
        .arg(spool)
        .args(captures)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(" 0 bytes left"), "{err}");
    err
}

#[test]
fn a_killed_collector_fails_over_to_the_next_and_every_incident_is_stored_once() {
    if !clickhouse_available() {
        eprintln!("SKIPPED: clickhouse-server is not installed (make deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let spool = dir.path().join("spool");
    let ch = ClickHouseServer::start().expect("start ClickHouse");
    let a = Collector::start(&dir_a, &ch, &[SENSOR]).expect("collector A");
    let b = Collector::start(&dir_b, &ch, &[SENSOR]).expect("collector B");
    let both = format!("{},{}", a.url, b.url);

    let first = pcaps().join("http-leak.pcap");
    let rest = [
        pcaps().join("syn-flood.pcap"),
        pcaps().join("leak-encodings.pcap"),
        pcaps().join("tunnel-leaks.pcap"),
    ];
    let rest: Vec<&Path> = rest.iter().map(|p| p.as_path()).collect();
    let mut want = local_ids(&[&first]);
    want.extend(local_ids(&rest));
    assert!(want.len() > 5, "{want:?}");

    // 1. Both up: the sensor delivers to A, the first URL.
    replay_to(&both, &spool, &[&first]);
    // 2. A dies (SIGKILL); the same sensor spool goes on, and everything
    //    reaches B.
    drop(a);
    let err = replay_to(&both, &spool, &rest);
    assert!(
        err.contains(&format!(
            "delivered {} incident(s)",
            want.len() - local_ids(&[&first]).len()
        )),
        "{err}"
    );

    // 3. Every incident is stored exactly once.
    let stored: Vec<String> = b
        .query(&["--since", "all", "--json", "--limit", "10000"])
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want_set: BTreeSet<&String> = want.iter().collect();
    let stored_set: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), stored_set.len(), "a duplicate was listed");
    assert_eq!(stored_set, want_set);
    let n = ch
        .query("SELECT count() FROM shaobing.incidents FINAL")
        .unwrap();
    assert_eq!(n.trim(), want.len().to_string());
}
