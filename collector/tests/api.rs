//! Roles, gzip, heartbeats, the analysts' API, metrics and retention,
//! against a real ClickHouse server and real sockets.

mod common;

use std::io::Write as _;

use common::*;
use serde_json::{json, Value};

const ATTACK_A: &str = "019c0c4e-1000-7000-8000-0000000000aa";
const ATTACK_B: &str = "019c0c4e-1000-7000-8000-0000000000bb";

/// A leak at `ts` from `src` with signature and severity.
fn leak_at(n: u32, ts: &str, src: &str, sig: &str, sev: &str) -> Value {
    let mut v = leak(n);
    v["ts"] = ts.into();
    v["src_ip"] = src.into();
    v["signature"] = sig.into();
    v["severity"] = sev.into();
    v
}

/// A volumetric event of an attack on `dst`.
fn attack_event(n: u32, ts: &str, dst: &str, event: &str, attack: &str) -> Value {
    let mut v = volumetric(n);
    v["ts"] = ts.into();
    v["dst_ip"] = dst.into();
    v["event"] = event.into();
    v["attack_id"] = attack.into();
    v
}

/// 12 incidents over two hours of 2026-11-29: 7 leaks, 5 volumetric events
/// of two attacks.
fn data_set() -> Vec<Value> {
    vec![
        attack_event(
            1,
            "2026-11-29T01:00:00.000001Z",
            "10.0.0.10",
            "attack_started",
            ATTACK_A,
        ),
        attack_event(
            2,
            "2026-11-29T01:00:01.000000Z",
            "10.0.0.10",
            "attack_update",
            ATTACK_A,
        ),
        attack_event(
            3,
            "2026-11-29T01:00:02.000000Z",
            "10.0.0.10",
            "attack_ended",
            ATTACK_A,
        ),
        attack_event(
            4,
            "2026-11-29T01:30:00.000000Z",
            "10.0.0.20",
            "attack_started",
            ATTACK_B,
        ),
        attack_event(
            5,
            "2026-11-29T01:30:05.000000Z",
            "10.0.0.20",
            "attack_ended",
            ATTACK_B,
        ),
        leak_at(
            6,
            "2026-11-29T01:10:00.000000Z",
            "10.1.2.3",
            "classification-marking",
            "critical",
        ),
        leak_at(
            7,
            "2026-11-29T01:11:00.000000Z",
            "10.1.2.3",
            "classification-marking",
            "critical",
        ),
        leak_at(
            8,
            "2026-11-29T01:12:00.000000Z",
            "10.1.2.3",
            "cn-national-id",
            "high",
        ),
        leak_at(
            9,
            "2026-11-29T02:10:00.000000Z",
            "10.1.2.4",
            "cn-national-id",
            "high",
        ),
        leak_at(
            10,
            "2026-11-29T02:11:00.000000Z",
            "10.1.2.4",
            "bank-card",
            "medium",
        ),
        leak_at(
            11,
            "2026-11-29T02:12:00.000000Z",
            "10.0.0.10",
            "bank-card",
            "low",
        ),
        leak_at(
            12,
            "2026-11-29T02:13:00.000000Z",
            "10.1.2.5",
            "bank-card",
            "medium",
        ),
    ]
}

async fn loaded() -> Harness {
    let h = Harness::start().await;
    let set = data_set();
    for chunk in set.chunks(6) {
        let (status, resp) = h.post(Some(TOKEN), &body(chunk)).await;
        assert_eq!(status, 200, "{resp}");
    }
    h
}

fn ids(v: &Value) -> Vec<String> {
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["id"].as_str().unwrap()[24..]
                .trim_start_matches('0')
                .to_string()
        })
        .collect()
}

const SINCE_ALL: &str = "/api/v1/summary?since=all";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_missing_wrong_and_wrong_role_tokens() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let incidents = body(&[leak(1)]);
    let hb = serde_json::to_vec(&heartbeat()).unwrap();
    let sensor_endpoints: [(&str, &[u8]); 2] = [
        ("/api/v1/incidents", &incidents),
        ("/api/v1/heartbeat", &hb),
    ];
    for (path, b) in sensor_endpoints {
        for (token, status) in [
            (None, 401),
            (Some("wrong"), 401),
            (Some(ANALYST_TOKEN), 403),
        ] {
            let r = request_to(h.addr, "POST", path, token, "application/json", b, &[]).await;
            assert_eq!(
                r.status,
                status,
                "POST {path} with {token:?}: {}",
                r.body_text()
            );
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
        }
    }
    let attack = format!("/api/v1/attacks/{ATTACK_A}");
    for path in ["/api/v1/incidents", SINCE_ALL, attack.as_str(), "/metrics"] {
        for (token, status) in [(None, 401), (Some("wrong"), 401), (Some(TOKEN), 403)] {
            let (got, v) = h.get(token, path).await;
            assert_eq!(got, status, "GET {path} with {token:?}: {v}");
        }
    }
    assert_eq!(h.raw_count().await, 0);
    assert_eq!(
        h.sql("SELECT count() FROM shaobing.sensor_heartbeats")
            .await
            .trim(),
        "0"
    );
    // The refusals are counted by reason.
    let (status, m) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    assert_eq!(status, 200);
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("rejected_requests_total{reason=\"unauthorized\"} 12"),
        "{m}"
    );
    assert!(
        m.contains("rejected_requests_total{reason=\"forbidden\"} 6"),
        "{m}"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_accepted_and_bombs_bad_gzip_and_unknown_encodings_refused() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let post = |b: Vec<u8>, enc: &'static str| {
        let addr = h.addr;
        async move {
            let r = request_to(
                addr,
                "POST",
                "/api/v1/incidents",
                Some(TOKEN),
                "application/json",
                &b,
                &[("Content-Encoding", enc)],
            )
            .await;
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v)
        }
    };
    let (status, v) = post(gzip(&body(&[leak(1), leak(2)])), "gzip").await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(2)), "{v}");

    // 60 KB of spaces compress ~1000x: over max_gzip_ratio (100).
    let mut bomb = b"[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 60_000));
    bomb.extend_from_slice(&serde_json::to_vec(&leak(3)).unwrap());
    bomb.push(b']');
    let (status, v) = post(gzip(&bomb), "gzip").await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_gzip_ratio"),
        "{v}"
    );

    // 200 KB of JSON compressing under 100x but over max_body_bytes (64 KiB).
    let big: Vec<Value> = (0..10)
        .map(|n| {
            let mut l = leak(10 + n);
            l["pad"] = "x".repeat(20_000).into();
            l
        })
        .collect();
    let (status, v) = post(gzip(&body(&big)), "gzip").await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("decompressed"), "{v}");

    let (status, v) = post(b"not gzip at all".to_vec(), "gzip").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("gzip"), "{v}");

    let (status, v) = post(body(&[leak(4)]), "br").await;
    assert_eq!(status, 415, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("Content-Encoding"),
        "{v}"
    );

    let rows = h.rows().await;
    assert_eq!(rows.len(), 2, "only the good gzip batch is stored");
}

fn heartbeat() -> Value {
    json!({
        "schema": 1,
        "sensor": "claims-to-be-someone-else",
        "ts": "2026-11-29T04:00:00.250000Z",
        "version": "0.1.0",
        "uptime_s": 3600,
        "packets": 1_000_000,
        "bytes": 800_000_000,
        "kernel_drops": 12,
        "pps": 25_000,
        "bps": 200_000_000,
        "spool_depth": 3,
        "signature_hits": {"classification-marking": 4, "bank-card": 1},
        "future_field": true
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_stored_under_the_token_sensor_and_bad_ones_refused() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let post = |v: Value| {
        let addr = h.addr;
        async move {
            let b = serde_json::to_vec(&v).unwrap();
            let r = request(
                addr,
                "POST",
                "/api/v1/heartbeat",
                Some(TOKEN),
                "application/json",
                &b,
            )
            .await;
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v)
        }
    };
    let (status, v) = post(heartbeat()).await;
    assert_eq!(status, 200, "{v}");
    let stored = h
        .sql(
            "SELECT sensor, ts, ts_us, kernel_drops, pps, spool_depth, signature_names, signature_hits \
             FROM shaobing.sensor_heartbeats FORMAT TSV",
        )
        .await;
    assert_eq!(
        stored.trim(),
        "sensor-1\t2026-11-29 04:00:00\t250000\t12\t25000\t3\t['bank-card','classification-marking']\t[1,4]"
    );
    let raw = h
        .sql("SELECT raw FROM shaobing.sensor_heartbeats FORMAT TSVRaw")
        .await;
    assert!(raw.contains("future_field"), "unknown fields kept: {raw}");

    let mut missing = heartbeat();
    missing.as_object_mut().unwrap().remove("kernel_drops");
    let mut wrong_type = heartbeat();
    wrong_type["packets"] = "many".into();
    let mut schema2 = heartbeat();
    schema2["schema"] = 2.into();
    for (bad, word) in [
        (missing, "kernel_drops"),
        (wrong_type, "invalid heartbeat"),
        (schema2, "schema"),
        (json!([1]), "object"),
    ] {
        let (status, v) = post(bad).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(word), "{word}: {v}");
    }
    assert_eq!(
        h.sql("SELECT count() FROM shaobing.sensor_heartbeats")
            .await
            .trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_filters_select_exactly_the_matching_incidents() {
    if skip() {
        return;
    }
    let h = loaded().await;
    let q = |query: &'static str| {
        let h = &h;
        async move {
            let (status, v) = h
                .get(Some(ANALYST_TOKEN), &format!("/api/v1/incidents?{query}"))
                .await;
            assert_eq!(status, 200, "{query}: {v}");
            ids(&v)
        }
    };
    // Newest first.
    assert_eq!(
        q("").await,
        ["12", "11", "10", "9", "5", "4", "8", "7", "6", "3", "2", "1"]
    );
    assert_eq!(q("kind=volumetric").await, ["5", "4", "3", "2", "1"]);
    assert_eq!(q("event=attack_started").await, ["4", "1"]);
    assert_eq!(q("vector=syn_flood&event=attack_ended").await, ["5", "3"]);
    assert_eq!(q("signature=cn-national-id").await, ["9", "8"]);
    assert_eq!(q("severity=low,medium").await, ["12", "11", "10"]);
    assert_eq!(q("sensor=sensor-1&limit=1").await, ["12"]);
    assert!(q("sensor=whatever-the-sensor-claims").await.is_empty());
    // ip matches source or destination.
    assert_eq!(q("ip=10.0.0.10").await, ["11", "3", "2", "1"]);
    assert_eq!(q("ip=10.1.2.4").await, ["10", "9"]);
    // Time bounds: since inclusive, until exclusive, microseconds honoured.
    assert_eq!(
        q("since=2026-11-29T02:00:00Z&until=2026-11-29T02:12:00Z").await,
        ["10", "9"]
    );
    assert_eq!(
        q("since=2026-11-29T01:00:00.000001Z&until=2026-11-29T01:00:01Z").await,
        ["1"]
    );
    assert!(
        q("since=2026-11-29T01:00:00.000002Z&until=2026-11-29T01:00:01Z")
            .await
            .is_empty()
    );

    // Bad values are 400 naming the parameter, not an empty result.
    for (query, word) in [
        ("kind=volcanic", "kind"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("ip=not-an-ip", "ip"),
        ("color=red", "color"),
    ] {
        let (status, v) = h
            .get(Some(ANALYST_TOKEN), &format!("/api/v1/incidents?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {v}");
        assert!(v["error"].as_str().unwrap().contains(word), "{query}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pagination_visits_every_incident_once_in_order() {
    if skip() {
        return;
    }
    let h = loaded().await;
    // Two incidents with the same timestamp: the id breaks the tie.
    let mut twin = leak_at(
        13,
        "2026-11-29T02:13:00.000000Z",
        "10.1.2.5",
        "bank-card",
        "medium",
    );
    twin["id"] = "019c0c4e-5a00-7000-8000-000000000013".into();
    assert_eq!(h.post(Some(TOKEN), &body(&[twin])).await.0, 200);

    let (_, all) = h.get(Some(ANALYST_TOKEN), "/api/v1/incidents").await;
    let all = ids(&all);
    assert_eq!(all.len(), 13);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/incidents?limit=5&cursor={c}"),
            None => "/api/v1/incidents?limit=5".to_string(),
        };
        let (status, v) = h.get(Some(ANALYST_TOKEN), &path).await;
        assert_eq!(status, 200, "{v}");
        let page = ids(&v);
        assert!(page.len() <= 5);
        seen.extend(page);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, all);
    // Filters and cursor combine.
    let (_, first) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/incidents?kind=leak&limit=2")
        .await;
    let c = first["next_cursor"].as_str().unwrap();
    let (_, second) = h
        .get(
            Some(ANALYST_TOKEN),
            &format!("/api/v1/incidents?kind=leak&limit=2&cursor={c}"),
        )
        .await;
    assert_eq!(ids(&second), ["11", "10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_attack_timeline_match_the_data_set() {
    if skip() {
        return;
    }
    let h = loaded().await;
    // Delivered twice: still counted once.
    assert_eq!(h.post(Some(TOKEN), &body(&data_set()[..6])).await.0, 200);
    let (status, s) = h.get(Some(ANALYST_TOKEN), SINCE_ALL).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 12);
    assert_eq!(
        s["by_kind"],
        json!([{"value": "leak", "incidents": 7}, {"value": "volumetric", "incidents": 5}])
    );
    assert_eq!(
        s["by_vector"],
        json!([{"value": "syn_flood", "incidents": 5}])
    );
    assert_eq!(
        s["by_signature"],
        json!([
            {"value": "syn-flood", "incidents": 5},
            {"value": "bank-card", "incidents": 3},
            {"value": "classification-marking", "incidents": 2},
            {"value": "cn-national-id", "incidents": 2}
        ])
    );
    assert_eq!(
        s["by_severity"],
        json!([
            {"value": "high", "incidents": 7},
            {"value": "critical", "incidents": 2},
            {"value": "medium", "incidents": 2},
            {"value": "low", "incidents": 1}
        ])
    );
    assert_eq!(
        s["top_targets"],
        json!([
            {"ip": "10.0.0.10", "incidents": 3, "score": 1},
            {"ip": "10.0.0.20", "incidents": 2, "score": 1}
        ])
    );
    assert_eq!(
        s["top_leak_sources"],
        json!([
            {"ip": "10.1.2.3", "incidents": 3, "score": 6},
            {"ip": "10.1.2.4", "incidents": 2, "score": 4},
            {"ip": "10.0.0.10", "incidents": 1, "score": 2},
            {"ip": "10.1.2.5", "incidents": 1, "score": 2}
        ])
    );
    assert_eq!(
        s["per_hour"],
        json!([
            {"hour": "2026-11-29T01:00:00Z", "incidents": 8},
            {"hour": "2026-11-29T02:00:00Z", "incidents": 4}
        ])
    );
    // Filters apply to the summary too.
    let (_, s) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/summary?since=all&kind=leak&top=1",
        )
        .await;
    assert_eq!(s["total"], 7);
    assert_eq!(s["top_leak_sources"].as_array().unwrap().len(), 1);
    // A window without incidents.
    let (_, s) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/summary?since=2030-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(s["total"], 0);

    let (status, a) = h
        .get(Some(ANALYST_TOKEN), &format!("/api/v1/attacks/{ATTACK_A}"))
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["started_at"], "2026-11-29T01:00:00.000001Z");
    assert_eq!(a["ended_at"], "2026-11-29T01:00:02.000000Z");
    let events: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["attack_started", "attack_update", "attack_ended"]);
    let (status, _) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/attacks/019c0c4e-1000-7000-8000-0000000000cc",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/attacks/x'%20OR%20'1'='1")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_in_every_filter_returns_nothing_unexpected_and_changes_nothing() {
    if skip() {
        return;
    }
    let h = loaded().await;
    let before = h
        .sql("SELECT count(), sum(cityHash64(raw)) FROM shaobing.incidents")
        .await;
    // The collector's own compaction pass may hold its transient build
    // lock table meanwhile (`retention::build_day_summaries`): not a change.
    let tables = "SELECT name FROM system.tables WHERE database = 'shaobing' \
                  AND name != 'summary_build_lock' ORDER BY name";
    let tables_before = h.sql(tables).await;
    assert!(tables_before.contains("incidents\n"), "{tables_before}");
    let payloads = [
        "x' OR '1'='1",
        "x') OR 1=1 --",
        "x\\' OR 1=1 --",
        "'; DROP TABLE shaobing.incidents; --",
        "x' UNION ALL SELECT * FROM system.tables --",
        "?",
        "`",
        "\\",
    ];
    for name in [
        "since",
        "until",
        "kind",
        "event",
        "vector",
        "signature",
        "severity",
        "sensor",
        "ip",
        "limit",
        "cursor",
    ] {
        for p in payloads {
            let enc: String = p.bytes().map(|b| format!("%{b:02X}")).collect();
            for path in ["/api/v1/incidents", "/api/v1/summary"] {
                if path.ends_with("summary") && (name == "limit" || name == "cursor") {
                    continue;
                }
                let (status, v) = h
                    .get(
                        Some(ANALYST_TOKEN),
                        &format!("{path}?since=all&{name}={enc}")
                            .replace("since=all&since=", "since="),
                    )
                    .await;
                match status {
                    400 => assert!(
                        v["error"].as_str().unwrap().contains(name),
                        "{name}={p}: {v}"
                    ),
                    200 if path.ends_with("incidents") => {
                        assert_eq!(v["incidents"], json!([]), "{name}={p}: {v}")
                    }
                    200 => assert_eq!(v["total"], 0, "{name}={p}: {v}"),
                    s => panic!("{name}={p}: status {s}: {v}"),
                }
            }
        }
    }
    assert_eq!(
        h.sql("SELECT count(), sum(cityHash64(raw)) FROM shaobing.incidents")
            .await,
        before
    );
    assert_eq!(h.sql(tables).await, tables_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingested_incidents_and_batch_latency() {
    if skip() {
        return;
    }
    let h = loaded().await;
    let (status, m) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    assert_eq!(status, 200);
    let m = m.as_str().unwrap();
    assert!(
        m.contains("shaobing_collector_ingested_incidents_total 12"),
        "{m}"
    );
    assert!(m.contains("shaobing_collector_wal_bytes 0"), "{m}");
    let count = m
        .lines()
        .find_map(|l| l.strip_prefix("shaobing_collector_batch_insert_seconds_count "))
        .unwrap();
    assert!(count.parse::<u64>().unwrap() >= 1, "{m}");
    // The collector's start-up compaction pass is counted once it ends.
    let value = |m: &str, name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {m}"))
            .parse()
            .unwrap()
    };
    let mut m = m.to_string();
    for _ in 0..300 {
        if value(&m, "shaobing_collector_compaction_passes_total") > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        m = h
            .get(Some(ANALYST_TOKEN), "/metrics")
            .await
            .1
            .as_str()
            .unwrap()
            .to_string();
    }
    let m = m.as_str();
    assert!(
        value(m, "shaobing_collector_compaction_passes_total") >= 1,
        "{m}"
    );
    assert_eq!(
        value(m, "shaobing_collector_compaction_failures_total"),
        0,
        "{m}"
    );
    for name in [
        "shaobing_collector_compacted_partitions_total",
        "shaobing_collector_compaction_deferred_total",
        "shaobing_collector_pre_aggregates_built_total",
        "shaobing_collector_pre_aggregate_lock_busy_total",
    ] {
        value(m, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_only_partitions_older_than_the_configured_days() {
    if skip() {
        return;
    }
    let h = loaded().await;
    let mut old = leak(50);
    old["ts"] = "2026-11-01T12:00:00Z".into();
    assert_eq!(h.post(Some(TOKEN), &body(&[old])).await.0, 200);
    let config = shaobing_collector::config::RetentionConfig {
        incidents_days: 14,
        heartbeats_days: 30,
        interval_s: 3600,
        compact_interval_s: 300,
    };
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let metrics = shaobing_collector::metrics::Metrics::default();
    // "Now" is 2026-11-30T00:00:00Z: keep 2026-11-16 and later.
    let dropped = shaobing_collector::retention::run_once(
        &client,
        "shaobing",
        std::time::Duration::from_secs(10),
        &config,
        1_795_996_800,
        &metrics,
    )
    .await
    .unwrap();
    // The day goes from `incidents` and from its id lookup.
    let dropped: Vec<(&str, &str)> = dropped
        .iter()
        .map(|d| (d.table, d.partition.as_str()))
        .collect();
    assert_eq!(
        dropped,
        [("incidents", "20261101"), ("incident_lookup", "20261101")]
    );
    assert_eq!(h.raw_count().await, 12);
    assert_eq!(
        h.sql("SELECT count() FROM shaobing.incident_lookup WHERE ts < '2026-11-16 00:00:00'")
            .await
            .trim(),
        "0"
    );
    // Nothing more to drop on the next pass.
    let again = shaobing_collector::retention::run_once(
        &client,
        "shaobing",
        std::time::Duration::from_secs(10),
        &config,
        1_795_996_800,
        &metrics,
    )
    .await
    .unwrap();
    assert!(again.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_counts_redelivered_incidents_once_before_and_after_compaction() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let old: Vec<Value> = (0..4)
        .map(|n| {
            leak_at(
                60 + n,
                "2026-11-01T12:00:00Z",
                "10.9.9.9",
                "bank-card",
                "low",
            )
        })
        .collect();
    for _ in 0..3 {
        assert_eq!(h.post(Some(TOKEN), &body(&old)).await.0, 200);
    }
    assert_eq!(summary_total(&h).await, (Some(4), Some(4)), "FINAL path");
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let db = "shaobing";
    // "Now" is 2026-11-30: the 1st is a closed day.
    let compacted = shaobing_collector::retention::compact_once(&client, db, 1_795_996_800)
        .await
        .unwrap();
    assert_eq!(compacted, [20261101]);
    let clean =
        shaobing_collector::query::clean_days(&client, db, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    assert!(clean.contains(&20261101), "{clean:?}");
    // The day's pre-aggregates exist and the unfiltered summary uses them:
    // a planted extra count shows up, and a rebuild removes it.
    assert_eq!(
        h.sql("SELECT sum(n) FROM shaobing.incidents_day_summary WHERE day = 20261101")
            .await
            .trim(),
        "4"
    );
    assert_eq!(
        summary_total(&h).await,
        (Some(4), Some(4)),
        "day-summary path"
    );
    let part = h
        .sql("SELECT any(part) FROM shaobing.incidents_day_summary WHERE day = 20261101")
        .await;
    h.sql(&format!(
        "INSERT INTO shaobing.incidents_day_summary VALUES (20261101, '{}', 0, 'leak', '', 'x', 'low', 100)",
        part.trim()
    ))
    .await;
    assert_eq!(
        summary_total(&h).await.0,
        Some(104),
        "the day summary is what is read"
    );
    h.sql("ALTER TABLE shaobing.incidents_day_summary DROP PARTITION 20261101")
        .await;
    let rebuilt = shaobing_collector::retention::build_day_summaries(&client, db)
        .await
        .unwrap();
    assert_eq!(rebuilt, [20261101]);
    assert_eq!(summary_total(&h).await, (Some(4), Some(4)), "rebuilt");
    let (_, full) = h.get(Some(ANALYST_TOKEN), SINCE_ALL).await;
    let (_, raw) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/summary?since=all&kind=leak")
        .await;
    assert_eq!(full, raw, "pre-aggregated and raw summaries agree");
    // A window that cuts the day reads the raw rows instead.
    let (_, cut) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/summary?since=2026-11-01T06:00:00Z&until=2026-11-02T00:00:00Z",
        )
        .await;
    assert_eq!(cut["total"], 4);
    // A late re-delivery makes the day unclean again: still counted once.
    assert_eq!(h.post(Some(TOKEN), &body(&old)).await.0, 200);
    assert_eq!(
        summary_total(&h).await,
        (Some(4), Some(4)),
        "after a late insert"
    );
    let (_, page) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/incidents?ip=10.9.9.9")
        .await;
    assert_eq!(page["incidents"].as_array().unwrap().len(), 4);
}

/// ClickHouse answers an `OPTIMIZE` that cannot start because a
/// background task holds the day's parts as if it had merged them (unless
/// told to throw); the compaction pass waits for the task and merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_a_day_whose_parts_a_background_task_holds() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    for batch in 0..2 {
        let day: Vec<Value> = (0..10)
            .map(|n| {
                leak_at(
                    400 + batch * 10 + n,
                    "2026-11-04T08:00:00Z",
                    "10.9.8.6",
                    "bank-card",
                    "low",
                )
            })
            .collect();
        assert_eq!(h.post(Some(TOKEN), &body(&day)).await.0, 200);
    }
    let parts = "SELECT count() FROM system.parts WHERE database = 'shaobing' \
                 AND table = 'incidents' AND active AND partition = '20261104'";
    assert_eq!(h.sql(parts).await.trim(), "2");
    // A mutation that takes about a second per part holds them meanwhile
    // (10 rows of 0.1 s each: under sleepEachRow's 3 s per block).
    h.sql(
        "ALTER TABLE shaobing.incidents UPDATE raw = raw \
         WHERE toYYYYMMDD(ts) = 20261104 AND sleepEachRow(0.1) = 0",
    )
    .await;
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let metrics = shaobing_collector::metrics::Metrics::default();
    let compacted = shaobing_collector::retention::compact_once_with(
        &client,
        "shaobing",
        1_795_996_800,
        &metrics,
    )
    .await
    .unwrap();
    assert!(compacted.contains(&20261104), "{compacted:?}");
    assert_eq!(h.sql(parts).await.trim(), "1", "the day was really merged");
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&metrics.compacted_partitions), 1);
    assert_eq!(count(&metrics.compaction_deferred), 0);
    assert_eq!(summary_total(&h).await, (Some(20), Some(20)));
}

/// Collectors sharing one ClickHouse server (sensor fallback URLs) run
/// their compaction passes independently: builders racing on the same
/// part build it once, a lock left by a stopped builder is taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pre_aggregate_builds_count_each_incident_once() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let old: Vec<Value> = (0..40)
        .map(|n| {
            leak_at(
                200 + n,
                "2026-11-03T08:00:00Z",
                "10.9.8.7",
                "bank-card",
                "low",
            )
        })
        .collect();
    // max_items = 10 in the test config.
    for batch in old.chunks(10) {
        assert_eq!(h.post(Some(TOKEN), &body(batch)).await.0, 200);
    }
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let db = "shaobing";
    let compacted = shaobing_collector::retention::compact_once(&client, db, 1_795_996_800)
        .await
        .unwrap();
    assert_eq!(compacted, [20261103]);
    let day_sum = "SELECT sum(n) FROM shaobing.incidents_day_summary WHERE day = 20261103";
    let drop_all = [
        "ALTER TABLE shaobing.incidents_day_summary DROP PARTITION 20261103",
        "ALTER TABLE shaobing.incidents_host_summary DROP PARTITION 20261103",
        "ALTER TABLE shaobing.incidents_attack_summary DROP PARTITION 20261103",
    ];
    for round in 0..5 {
        for sql in drop_all {
            h.sql(sql).await;
        }
        let build = || shaobing_collector::retention::build_day_summaries(&client, db);
        let built = tokio::join!(build(), build(), build(), build());
        let builders = [built.0, built.1, built.2, built.3]
            .into_iter()
            .map(|r| r.unwrap())
            .filter(|days| days.contains(&20261103))
            .count();
        assert!(builders <= 1, "round {round}: {builders} builders");
        if builders == 0 {
            // Every pass found the lock held by another: the next builds.
            shaobing_collector::retention::build_day_summaries(&client, db)
                .await
                .unwrap();
        }
        assert_eq!(h.sql(day_sum).await.trim(), "40", "round {round}");
        assert_eq!(
            h.sql("SELECT sum(n) FROM shaobing.incidents_host_summary WHERE day = 20261103 AND hour = 0")
                .await
                .trim(),
            "40",
            "round {round}"
        );
        assert_eq!(
            summary_total(&h).await,
            (Some(40), Some(40)),
            "round {round}"
        );
    }
    // A lock held by a live builder blocks; one left for over an hour is
    // dropped, and the pass after builds.
    for sql in drop_all {
        h.sql(sql).await;
    }
    h.sql("CREATE TABLE shaobing.summary_build_lock (since DateTime) ENGINE = Memory")
        .await;
    h.sql("INSERT INTO shaobing.summary_build_lock SELECT now()")
        .await;
    let metrics = shaobing_collector::metrics::Metrics::default();
    let none = shaobing_collector::retention::build_day_summaries_with(&client, db, &metrics)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(h.sql(day_sum).await.trim(), "0");
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&metrics.pre_aggregate_lock_busy), 1);
    assert_eq!(count(&metrics.pre_aggregates_built), 0);
    h.sql("DROP TABLE shaobing.summary_build_lock").await;
    h.sql("CREATE TABLE shaobing.summary_build_lock (since DateTime) ENGINE = Memory")
        .await;
    h.sql("INSERT INTO shaobing.summary_build_lock SELECT now() - 7200")
        .await;
    let none = shaobing_collector::retention::build_day_summaries(&client, db)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let built = shaobing_collector::retention::build_day_summaries_with(&client, db, &metrics)
        .await
        .unwrap();
    assert_eq!(built, [20261103]);
    assert_eq!(h.sql(day_sum).await.trim(), "40");
    assert_eq!(count(&metrics.pre_aggregates_built), 1);
}

async fn summary_total(h: &Harness) -> (Option<u64>, Option<u64>) {
    let (status, s) = h.get(Some(ANALYST_TOKEN), SINCE_ALL).await;
    assert_eq!(status, 200, "{s}");
    (
        s["total"].as_u64(),
        s["top_leak_sources"][0]["incidents"].as_u64(),
    )
}

/// A window that cuts compacted days: their whole hours come from the
/// per-hour pre-aggregates, the sub-hour fragments at the edges from raw
/// rows. Attacks and re-delivered incidents that straddle the boundary are
/// counted once, before and after a late re-delivery makes a day
/// uncompacted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_of_a_window_cutting_compacted_days_counts_across_the_hour_boundary_once() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    const X: &str = "019c0c4e-1000-7000-8000-0000000000cc";
    const Y: &str = "019c0c4e-1000-7000-8000-0000000000dd";
    let mc = |mut v: Value, m: u64| {
        v["match_count"] = m.into();
        v
    };
    let (a, b, c) = ("10.1.0.1", "10.1.0.2", "10.1.0.3");
    let set = vec![
        // 2026-11-01: before the window (06:30), in the raw fragment
        // [06:30, 07:00), in whole hours.
        mc(
            leak_at(80, "2026-11-01T06:10:00Z", a, "bank-card", "low"),
            1,
        ),
        mc(
            leak_at(81, "2026-11-01T06:40:00Z", a, "bank-card", "low"),
            2,
        ),
        mc(
            leak_at(82, "2026-11-01T06:50:00Z", a, "cn-national-id", "high"),
            3,
        ),
        mc(
            leak_at(83, "2026-11-01T07:05:00Z", b, "bank-card", "medium"),
            4,
        ),
        mc(
            leak_at(84, "2026-11-01T07:30:00Z", a, "bank-card", "low"),
            5,
        ),
        mc(
            leak_at(85, "2026-11-01T09:00:00Z", c, "cn-national-id", "high"),
            6,
        ),
        mc(
            leak_at(86, "2026-11-01T23:59:59.999999Z", b, "bank-card", "low"),
            7,
        ),
        // 2026-11-02: a whole hour [00:00, 01:00), the raw fragment
        // [01:00, 01:20), after the window.
        mc(
            leak_at(87, "2026-11-02T00:30:00Z", a, "bank-card", "low"),
            8,
        ),
        mc(
            leak_at(88, "2026-11-02T01:10:00Z", c, "bank-card", "low"),
            9,
        ),
        mc(
            leak_at(89, "2026-11-02T01:30:00Z", c, "bank-card", "low"),
            10,
        ),
        // Attack X straddles 07:00; attack Y started before the window.
        attack_event(90, "2026-11-01T06:45:00Z", "10.0.0.10", "attack_started", X),
        attack_event(91, "2026-11-01T07:15:00Z", "10.0.0.10", "attack_update", X),
        attack_event(92, "2026-11-01T08:00:00Z", "10.0.0.10", "attack_ended", X),
        attack_event(93, "2026-11-01T06:00:00Z", "10.0.0.10", "attack_started", Y),
        attack_event(94, "2026-11-01T06:35:00Z", "10.0.0.10", "attack_update", Y),
        attack_event(95, "2026-11-02T00:10:00Z", "10.0.0.20", "attack_started", Y),
    ];
    // Every incident delivered twice before compaction (max_items = 10).
    for _ in 0..2 {
        for chunk in set.chunks(8) {
            assert_eq!(h.post(Some(TOKEN), &body(chunk)).await.0, 200);
        }
    }
    let window = "since=2026-11-01T06:30:00Z&until=2026-11-02T01:20:00Z";
    let expected = json!({
        "total": 13,
        "top_targets": [
            {"ip": "10.0.0.10", "incidents": 4, "score": 2},
            {"ip": "10.0.0.20", "incidents": 1, "score": 1}
        ],
        "top_leak_sources": [
            {"ip": a, "incidents": 4, "score": 2 + 3 + 5 + 8},
            {"ip": c, "incidents": 2, "score": 6 + 9},
            {"ip": b, "incidents": 2, "score": 4 + 7}
        ],
        "per_hour": [
            {"hour": "2026-11-01T06:00:00Z", "incidents": 4},
            {"hour": "2026-11-01T07:00:00Z", "incidents": 3},
            {"hour": "2026-11-01T08:00:00Z", "incidents": 1},
            {"hour": "2026-11-01T09:00:00Z", "incidents": 1},
            {"hour": "2026-11-01T23:00:00Z", "incidents": 1},
            {"hour": "2026-11-02T00:00:00Z", "incidents": 2},
            {"hour": "2026-11-02T01:00:00Z", "incidents": 1}
        ]
    });
    let check = |s: &Value, what: &str| {
        for key in ["total", "top_targets", "top_leak_sources", "per_hour"] {
            assert_eq!(s[key], expected[key], "{what}: {key}");
        }
    };
    let summary = |extra: &'static str| {
        let h = &h;
        async move {
            let (status, s) = h
                .get(
                    Some(ANALYST_TOKEN),
                    &format!("/api/v1/summary?{window}{extra}"),
                )
                .await;
            assert_eq!(status, 200, "{s}");
            s
        }
    };
    // Not compacted yet: every day is read deduplicating by id.
    let before = summary("").await;
    check(&before, "uncompacted");
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let compacted = shaobing_collector::retention::compact_once(&client, "shaobing", 1_795_996_800)
        .await
        .unwrap();
    assert_eq!(compacted, [20261101, 20261102]);
    let hour_rows = h
        .sql(
            "SELECT count() FROM shaobing.incidents_host_summary WHERE day = 20261101 AND hour > 0",
        )
        .await;
    assert_ne!(hour_rows.trim(), "0");
    let pre = summary("").await;
    check(&pre, "pre-aggregated hours");
    assert_eq!(pre, before);
    // The raw path (a filter that keeps everything) agrees.
    let raw = summary("&severity=low,medium,high,critical").await;
    assert_eq!(raw, pre, "raw and pre-aggregated summaries agree");
    // The hours really come from the per-hour pre-aggregates: a planted
    // row in a whole hour shows up, one in the raw fragment's hour does not.
    let part = h
        .sql("SELECT any(part) FROM shaobing.incidents_host_summary WHERE day = 20261101")
        .await;
    let hour = |t: &str| shaobing_wire::Timestamp::parse(t).unwrap().secs();
    for (at, ip) in [
        ("2026-11-01T08:00:00Z", "10.7.7.7"),
        ("2026-11-01T06:00:00Z", "10.8.8.8"),
    ] {
        h.sql(&format!(
            "INSERT INTO shaobing.incidents_host_summary VALUES \
             (20261101, '{}', {}, 'leaker', '{ip}', 100, 0, [])",
            part.trim(),
            hour(at)
        ))
        .await;
    }
    let planted = summary("").await;
    assert_eq!(planted["top_leak_sources"][0]["ip"], "10.7.7.7");
    assert!(!planted.to_string().contains("10.8.8.8"));
    h.sql("ALTER TABLE shaobing.incidents_day_summary DROP PARTITION 20261101")
        .await;
    shaobing_collector::retention::build_day_summaries(&client, "shaobing")
        .await
        .unwrap();
    assert_eq!(summary("").await, pre, "rebuilt");
    // A late re-delivery into the raw fragment makes day 1 uncompacted:
    // still counted once.
    assert_eq!(h.post(Some(TOKEN), &body(&set[..6])).await.0, 200);
    let late = summary("").await;
    check(&late, "after a late re-delivery");
}

/// Today between two compactions: its merged (base) part is read from its
/// pre-aggregates and only the newer parts raw, counting distinct ids and
/// leaving out the ids the base part holds. Re-delivered copies of
/// incidents of the base part, and an incident delivered twice into the
/// newer parts, are counted once: the summary and the overview equal the
/// raw answers (a filter that keeps everything reads no pre-aggregates)
/// and a plain `FINAL` count, for the whole day and for a window that cuts
/// its hours. When a merge replaces the base part, a plan made before it
/// is seen to be stale, and the day is read without pre-aggregates until
/// the next compaction builds them for the new part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_of_today_reads_its_merged_part_pre_aggregated_and_newer_parts_raw_counting_each_incident_once(
) {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    const X: &str = "019c0c4e-1000-7000-8000-0000000000e1";
    const Y: &str = "019c0c4e-1000-7000-8000-0000000000e2";
    const Z: &str = "019c0c4e-1000-7000-8000-0000000000e3";
    let mc = |mut v: Value, m: u64| {
        v["match_count"] = m.into();
        v
    };
    let (a, b) = ("10.2.0.1", "10.2.0.2");
    let first = vec![
        mc(
            leak_at(100, "2026-11-01T01:10:00Z", a, "bank-card", "low"),
            1,
        ),
        mc(
            leak_at(101, "2026-11-01T05:30:00Z", a, "bank-card", "high"),
            2,
        ),
        mc(
            leak_at(102, "2026-11-01T05:40:00Z", b, "cn-national-id", "low"),
            3,
        ),
        mc(
            leak_at(103, "2026-11-01T06:15:00Z", b, "bank-card", "medium"),
            4,
        ),
        mc(
            leak_at(104, "2026-11-01T07:10:00Z", a, "bank-card", "critical"),
            5,
        ),
        mc(
            leak_at(105, "2026-11-01T09:00:00Z", b, "bank-card", "low"),
            6,
        ),
        attack_event(
            110,
            "2026-11-01T05:10:00Z",
            "10.0.0.30",
            "attack_started",
            X,
        ),
        attack_event(111, "2026-11-01T06:50:00Z", "10.0.0.30", "attack_update", X),
        attack_event(
            112,
            "2026-11-01T06:40:00Z",
            "10.0.0.31",
            "attack_started",
            Y,
        ),
    ];
    // Delivered twice before the compaction.
    for _ in 0..2 {
        assert_eq!(h.post(Some(TOKEN), &body(&first)).await.0, 200);
    }
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let db = "shaobing";
    let t = std::time::Duration::from_secs(10);
    // "Now" is 2026-11-01T23:00:00Z: the 1st is today.
    let day = 20261101;
    let now = shaobing_collector::retention::day_start_secs(day).unwrap() + 23 * 3600;
    let compacted = shaobing_collector::retention::compact_once(&client, db, now)
        .await
        .unwrap();
    assert_eq!(compacted, [day], "today is compacted too");
    // After the compaction: re-delivered copies of incidents of the merged
    // part (two leaks, an attack event), new incidents (one delivered
    // twice), in newer parts.
    let newer = vec![
        mc(
            leak_at(100, "2026-11-01T01:10:00Z", a, "bank-card", "low"),
            1,
        ),
        mc(
            leak_at(101, "2026-11-01T05:30:00Z", a, "bank-card", "high"),
            2,
        ),
        attack_event(
            110,
            "2026-11-01T05:10:00Z",
            "10.0.0.30",
            "attack_started",
            X,
        ),
        mc(
            leak_at(120, "2026-11-01T05:50:00Z", b, "bank-card", "high"),
            7,
        ),
        mc(
            leak_at(121, "2026-11-01T06:20:00Z", a, "cn-national-id", "low"),
            8,
        ),
        attack_event(113, "2026-11-01T07:20:00Z", "10.0.0.30", "attack_ended", X),
        attack_event(
            114,
            "2026-11-01T06:05:00Z",
            "10.0.0.32",
            "attack_started",
            Z,
        ),
    ];
    assert_eq!(h.post(Some(TOKEN), &body(&newer)).await.0, 200);
    assert_eq!(h.post(Some(TOKEN), &body(&newer[4..5])).await.0, 200);
    // The day has its merged part (pre-aggregated) and newer parts.
    let states = shaobing_collector::query::day_states(&client, db, t)
        .await
        .unwrap();
    assert!(states.unclean.contains(&day), "{states:?}");
    let base = states
        .base_parts
        .iter()
        .find(|(d, _)| *d == day)
        .map(|(_, p)| p.clone())
        .expect("a base part");
    let built = shaobing_collector::query::day_summary_keys(&client, db, t)
        .await
        .unwrap();
    assert!(built.contains(&(day, base.clone())), "{built:?}");
    // The first deliveries merged into 9 rows, 8 rows since.
    assert_eq!(h.raw_count().await, 9 + 8);
    let windows = [
        ("since=all", "", 13),
        (
            "since=2026-11-01T05:20:00Z&until=2026-11-01T07:15:00Z",
            "ts >= toDateTime('2026-11-01 05:20:00') AND ts < toDateTime('2026-11-01 07:15:00')",
            9,
        ),
    ];
    let every_severity = "&severity=low,medium,high,critical";
    let check = |label: &'static str| {
        let h = &h;
        async move {
            for (window, cond, total) in windows {
                let final_count = h
                    .sql(&format!(
                        "SELECT count() FROM shaobing.incidents FINAL WHERE 1 {}",
                        if cond.is_empty() {
                            String::new()
                        } else {
                            format!("AND {cond}")
                        }
                    ))
                    .await;
                assert_eq!(final_count.trim(), total.to_string(), "{label} {window}");
                for what in ["summary", "overview"] {
                    let path = format!("/api/v1/{what}?{window}");
                    let (status, pre) = h.get(Some(ANALYST_TOKEN), &path).await;
                    assert_eq!(status, 200, "{pre}");
                    let (_, raw) = h
                        .get(Some(ANALYST_TOKEN), &format!("{path}{every_severity}"))
                        .await;
                    assert_eq!(pre["total"], total, "{label} {path}: {pre}");
                    assert_eq!(pre, raw, "{label} {path}: pre-aggregated and raw agree");
                }
                // Per sensor: the merged part's rows counted as they are,
                // the newer parts' once each.
                let (status, s) = h
                    .get(Some(ANALYST_TOKEN), &format!("/api/v1/sensors?{window}"))
                    .await;
                assert_eq!(status, 200, "{s}");
                let per_sensor: u64 = s["sensors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["incidents"].as_u64().unwrap())
                    .sum();
                assert_eq!(per_sensor, total, "{label} {window}: {s}");
            }
        }
    };
    check("base part and newer parts").await;
    // The plan lists the three re-delivered copies once; looking them up
    // in every read instead (more than 10,000 copies) gives the same
    // answer.
    let all = shaobing_collector::query::QueryFilter {
        limit: 100,
        ..Default::default()
    };
    let mut plan = shaobing_collector::query::plan_for(&client, db, t, &all, true)
        .await
        .unwrap();
    assert_eq!(plan.copies.len(), 1);
    assert_eq!(plan.copies[0].as_ref().map(Vec::len), Some(3), "{plan:?}");
    let summary = |plan: shaobing_collector::query::SummaryPlan| {
        let (client, all) = (&client, &all);
        async move {
            shaobing_collector::query::fetch_summary_planned(client, db, t, all, 10, &plan)
                .await
                .unwrap()
        }
    };
    let listed = summary(plan.clone()).await;
    plan.copies = vec![None];
    let looked_up = summary(plan).await;
    assert_eq!(listed.total, 13);
    assert_eq!(format!("{listed:?}"), format!("{looked_up:?}"));
    let (_, o) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/overview?since=all")
        .await;
    let x = o["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["attack_id"] == X)
        .cloned()
        .unwrap();
    assert_eq!(
        (x["events"].as_u64(), x["in_progress"].as_bool()),
        (Some(3), Some(false)),
        "{x}"
    );
    assert_eq!(
        o["top_leak_sources"],
        json!([
            {"ip": b, "incidents": 4, "score": 3 + 4 + 6 + 7},
            {"ip": a, "incidents": 4, "score": 1 + 2 + 5 + 8}
        ])
    );

    // The base part's pre-aggregates are what is read: a planted count
    // shows up.
    h.sql(&format!(
        "INSERT INTO shaobing.incidents_day_summary VALUES ({day}, '{base}', 0, 'leak', '', 'x', 'low', 100)"
    ))
    .await;
    let (_, s) = h.get(Some(ANALYST_TOKEN), SINCE_ALL).await;
    assert_eq!(s["total"], 113);
    // A plan made now is stale once a merge replaces the base part.
    let plan = shaobing_collector::query::plan_for(&client, db, t, &all, true)
        .await
        .unwrap();
    assert_eq!(plan.bases(), std::slice::from_ref(&base));
    assert!(
        shaobing_collector::query::bases_active(&client, db, t, &plan)
            .await
            .unwrap()
    );
    h.sql(&format!(
        "OPTIMIZE TABLE shaobing.incidents PARTITION {day} FINAL"
    ))
    .await;
    assert!(
        !shaobing_collector::query::bases_active(&client, db, t, &plan)
            .await
            .unwrap()
    );
    // The new merged part has no pre-aggregates yet: read raw.
    let (_, s) = h.get(Some(ANALYST_TOKEN), SINCE_ALL).await;
    assert_eq!(s["total"], 13);
    // The next compaction builds them (dropping the old part's), and
    // another re-delivery puts a copy into a newer part again.
    let compacted = shaobing_collector::retention::compact_once(&client, db, now)
        .await
        .unwrap();
    assert!(compacted.is_empty(), "{compacted:?}");
    assert_eq!(
        h.sql(&format!(
            "SELECT sum(n), uniqExact(part) FROM shaobing.incidents_day_summary WHERE day = {day}"
        ))
        .await
        .trim(),
        "13\t1"
    );
    assert_eq!(h.post(Some(TOKEN), &body(&newer[..4])).await.0, 200);
    check("rebuilt base part and a newer part").await;
}
