//! pcap → sensor → collector → ClickHouse → query, with real processes.

use std::process::Command;

use serde_json::Value;
use shaobing_e2e::{bin, pcaps, Collector, SensorToken};
use shaobing_testkit::{clickhouse_available, ClickHouseServer};

const SENSOR: SensorToken = SensorToken {
    name: "e2e-sensor",
    token: "e2e-token-3f9a1c",
};

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn replay(args: &[&str]) -> std::process::Output {
    let out = Command::new(bin("shaobing-sensor"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sensor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The expected incidents of both captures as one expected file.
fn merged_expected() -> String {
    let mut incidents = Vec::new();
    let mut extra = Vec::new();
    for name in ["syn-flood", "http-leak"] {
        let text = std::fs::read_to_string(pcaps().join(format!("{name}.expected.json"))).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        incidents.extend(v["incidents"].as_array().unwrap().iter().cloned());
        extra.extend(v["allow_extra_events"].as_array().unwrap().iter().cloned());
    }
    serde_json::json!({
        "capture": "syn-flood.pcap + http-leak.pcap",
        "description": "both captures",
        "allow_extra_events": extra,
        "incidents": incidents,
    })
    .to_string()
}

/// ClickHouse and a collector for one test. Fields drop in order: the
/// collector stops before ClickHouse, which waits for open connections.
struct Stack {
    collector: Collector,
    _clickhouse: ClickHouseServer,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// `None` (with a printed reason) when clickhouse-server is missing.
    fn start() -> Option<Stack> {
        if !clickhouse_available() {
            eprintln!("SKIPPED: clickhouse-server is not installed (make deps installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ch = ClickHouseServer::start().expect("start ClickHouse");
        let collector = Collector::start(dir.path(), &ch, &[SENSOR]).expect("start collector");
        Some(Stack {
            collector,
            _clickhouse: ch,
            _dir: dir,
        })
    }
}

#[test]
fn captures_replayed_into_the_collector_are_stored_once_with_every_field() {
    let Some(stack) = Stack::start() else { return };
    let collector = &stack.collector;
    let a = pcaps().join("syn-flood.pcap");
    let b = pcaps().join("http-leak.pcap");
    let files = [a.to_str().unwrap(), b.to_str().unwrap()];

    // What the sensor reports on its own, for comparison.
    let mut local = json_lines(&String::from_utf8_lossy(&replay(&files).stdout));
    assert!(!local.is_empty());

    // Deliver twice: ids are deterministic, so the second delivery is a
    // duplicate and must not add rows.
    for round in 0..2 {
        let mut args = vec!["--collector", &collector.url, "--token", SENSOR.token];
        args.extend(files);
        let out = replay(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("delivered {} incident(s)", local.len())),
            "round {round}: {err}\ncollector: {}",
            collector.stderr()
        );
        assert!(
            out.stdout.is_empty(),
            "nothing goes to stdout when delivered"
        );
    }

    let stored = json_lines(&collector.query(&["--since", "all", "--json"]).unwrap());
    if let Err(report) = shaobing_pcapgen::check_expected(&merged_expected(), &stored) {
        panic!("{report}\nstored: {stored:#?}");
    }
    // Exactly once each, and every field as the sensor sent it, except the
    // sensor name, which the collector takes from the token.
    for i in &mut local {
        i["sensor"] = Value::String(SENSOR.name.into());
    }
    let key = |v: &Value| v["id"].as_str().unwrap().to_string();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort_by_key(key);
    local.sort_by_key(key);
    assert_eq!(stored_sorted, local);

    // The analysts' table view shows both kinds.
    let table = collector.query(&["--since", "all"]).unwrap();
    assert!(table.contains("syn_flood"), "{table}");
    assert!(table.contains("classification-marking"), "{table}");
    let leaks = json_lines(
        &collector
            .query(&["--since", "all", "--kind", "leak", "--json"])
            .unwrap(),
    );
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0]["excerpt"], "绝*★");
}

#[test]
fn a_wrong_token_is_refused_and_the_sensor_keeps_the_incidents() {
    let Some(stack) = Stack::start() else { return };
    let collector = &stack.collector;
    let b = pcaps().join("http-leak.pcap");
    let out = Command::new(bin("shaobing-sensor"))
        .args([
            "replay",
            "--collector",
            &collector.url,
            "--token",
            "not-the-token",
        ])
        .arg(&b)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("NOT delivered"),
        "{err}"
    );
    // Nothing is lost: the undelivered incident is on stdout.
    let kept = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["signature"], "classification-marking");
    let stored = collector.query(&["--since", "all", "--json"]).unwrap();
    assert!(stored.trim().is_empty(), "{stored}");
}

#[test]
fn sensor_health_incidents_are_stored_and_filtered_by_kind() {
    let Some(stack) = Stack::start() else { return };
    let collector = &stack.collector;
    let incident = serde_json::json!([{
        "id": "019b76da-0000-7000-8000-0000000000aa",
        "schema": 1,
        "sensor": "ignored",
        "kind": "sensor_health",
        "event": "capture_loss",
        "signature": "sensor/capture_loss",
        "severity": "high",
        "ts": "2026-01-01T00:00:05.000000Z",
        "src_ip": null, "dst_ip": null, "src_port": null, "dst_port": null,
        "proto": "any",
        "community_id": null,
        "packets": 5000,
        "pps": 5000,
        "captured": 50000,
        "drop_ratio": 0.0909
    }]);
    let addr = collector.url.trim_start_matches("http://").to_string();
    let body = incident.to_string();
    let auth = format!("Bearer {}", SENSOR.token);
    let resp = shaobing_testkit::http::request(
        &addr,
        "POST",
        "/api/v1/incidents",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let stored = json_lines(
        &collector
            .query(&["--since", "all", "--kind", "sensor_health", "--json"])
            .unwrap(),
    );
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["event"], "capture_loss");
    assert_eq!(stored[0]["sensor"], SENSOR.name);
    assert_eq!(stored[0]["drop_ratio"], 0.0909);
}
