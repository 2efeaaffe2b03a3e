//! Regression tests for the defects found by attacking the single-node
//! collector (issue 15): unbounded fields, `limit` over ~6,500, silent
//! connections, one sensor overwriting another's incident, timestamps
//! past what the store holds, leap seconds and echoed values.

mod common;

use std::io::Read as _;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use shaobing_collector::auth;
use shaobing_collector::store::row::IncidentRow;

const TOKEN_2: &str = "s3cret-token-2";

fn second_sensor() -> String {
    format!(
        "[[sensors]]\nname = \"sensor-2\"\ntoken_sha256 = \"{}\"\n",
        auth::hash_token(TOKEN_2)
    )
}

fn error_of(v: &Value) -> String {
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_fields_are_refused_with_a_short_error_and_nothing_stored() {
    if skip() {
        return;
    }
    let h = Harness::start_tweaked("", "", |c| c.limits.max_body_bytes = 1 << 20).await;
    let long_name = "n".repeat(65);
    let cases: Vec<(&str, Value)> = vec![
        ("excerpt", json!("*".repeat(1025))),
        ("app_proto", json!("h".repeat(33))),
        ("community_id", json!("1:".repeat(33))),
        ("future_field", json!("x".repeat(70_000))),
        (&long_name, json!(1)),
    ];
    for (field, value) in cases {
        let mut inc = leak(1);
        inc[field] = value;
        let (status, v) = h.post(Some(TOKEN), &body(&[leak(2), inc])).await;
        assert_eq!(status, 400, "{field}: {v}");
        assert_eq!(v["item"], 1, "{field}");
        assert!(error_of(&v).len() < 200, "{field}: {v}");
    }
    let mut inc = volumetric(1);
    inc["vector"] = json!("v".repeat(65));
    let (status, v) = h.post(Some(TOKEN), &body(&[inc])).await;
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("vector"), "{v}");
    // A huge bad value is not echoed back in full.
    let mut inc = leak(3);
    inc["severity"] = json!("z".repeat(500_000));
    let (status, v) = h.post(Some(TOKEN), &body(&[inc])).await;
    assert_eq!(status, 400);
    assert!(error_of(&v).len() <= 600, "{} bytes", error_of(&v).len());
    let (status, v) = h
        .get(
            Some(ANALYST_TOKEN),
            &format!("/api/v1/incidents?kind={}", "k".repeat(3000)),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&v).len() < 300, "{v}");
    // Heartbeat version.
    let hb = json!({"schema": 1, "ts": "2026-11-29T04:19:24Z", "version": "9".repeat(65),
        "uptime_s": 1, "packets": 1, "bytes": 1, "kernel_drops": 0, "pps": 1, "spool_depth": 0});
    let resp = request(
        h.addr,
        "POST",
        "/api/v1/heartbeat",
        Some(TOKEN),
        "application/json",
        &serde_json::to_vec(&hb).unwrap(),
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body_text());
    assert!(resp.body_text().contains("version"));
    assert_eq!(h.raw_count().await, 0);
    // The limits themselves are accepted.
    let mut inc = leak(4);
    inc["excerpt"] = json!("*".repeat(1024));
    inc["future_field"] = json!("x".repeat(60_000));
    let (status, v) = h.post(Some(TOKEN), &body(&[inc])).await;
    assert_eq!(status, 200, "{v}");
}

/// Rows `0..n` one microsecond apart, written straight to ClickHouse.
async fn insert_rows(h: &Harness, n: u32, sensor: &str) {
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let mut insert = client
        .insert_unescaped::<IncidentRow>("`shaobing`.incidents")
        .await
        .unwrap();
    for i in 0..n {
        let mut inc: shaobing_wire::Incident = serde_json::from_value(leak(i)).unwrap();
        inc.sensor = sensor.to_string();
        inc.ts = shaobing_wire::Timestamp::from_parts(1_764_389_964, i);
        let raw = serde_json::to_string(&inc).unwrap();
        insert
            .write(&IncidentRow::from_incident(&inc, raw, 1_764_389_964).unwrap())
            .await
            .unwrap();
    }
    insert.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_ten_thousand_incidents_is_served() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    insert_rows(&h, 10_001, SENSOR).await;
    let (status, v) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/incidents?since=all&limit=10000",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let items = v["incidents"].as_array().unwrap();
    assert_eq!(items.len(), 10_000);
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let (status, v) = h
        .get(
            Some(ANALYST_TOKEN),
            &format!("/api/v1/incidents?since=all&limit=10000&cursor={cursor}"),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1);
    assert!(v["next_cursor"].is_null());
    // The CLI's path (`query --limit 10000`).
    let filter = shaobing_collector::query::QueryFilter {
        limit: 10_000,
        ..Default::default()
    };
    let page = shaobing_collector::fetch_page(&h.config, &filter)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 10_000);
    assert!(page.next_cursor.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sensor_cannot_overwrite_another_sensors_incident() {
    if skip() {
        return;
    }
    let h = Harness::start_full("", &second_sensor()).await;
    let (s1, v) = h.post(Some(TOKEN), &body(&[leak(7)])).await;
    assert_eq!(s1, 200, "{v}");
    let mut forged = leak(7);
    forged["excerpt"] = json!("forged");
    let (s2, v) = h.post(Some(TOKEN_2), &body(&[forged])).await;
    assert_eq!(s2, 200, "{v}");
    h.sql("OPTIMIZE TABLE shaobing.incidents FINAL").await;
    assert_eq!(h.raw_count().await, 2);
    for (sensor, excerpt) in [(SENSOR, "绝*★ \"quoted\" \\ back"), ("sensor-2", "forged")] {
        let (status, v) = h
            .get(
                Some(ANALYST_TOKEN),
                &format!("/api/v1/incidents?since=all&sensor={sensor}"),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let items = v["incidents"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{v}");
        assert_eq!(items[0]["sensor"], sensor);
        assert_eq!(items[0]["excerpt"], excerpt);
    }
    // Both are listed, and paging one at a time visits each once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/incidents?since=all&limit=1".to_string();
    loop {
        let (_, v) = h.get(Some(ANALYST_TOKEN), &path).await;
        for i in v["incidents"].as_array().unwrap() {
            seen.push(i["sensor"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/incidents?since=all&limit=1&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec![SENSOR.to_string(), "sensor-2".to_string()]);
}

/// A row of `incidents` as migrations 1-4 left it (no later columns).
#[derive(clickhouse::Row, serde::Serialize)]
struct OldRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: uuid::Uuid,
    schema: u16,
    sensor: String,
    kind: String,
    event: String,
    signature: String,
    severity: String,
    ts: u32,
    ts_us: u32,
    src_ip: String,
    dst_ip: String,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    proto: String,
    community_id: String,
    direction: String,
    attack_id: String,
    vector: String,
    pps: u64,
    bps: u64,
    peak_pps: u64,
    peak_bps: u64,
    packets: u64,
    bytes: u64,
    top_sources: String,
    match_count: u64,
    app_proto: String,
    excerpt: String,
    raw: String,
    received_at: u32,
}

impl From<IncidentRow> for OldRow {
    fn from(r: IncidentRow) -> OldRow {
        OldRow {
            id: r.id,
            schema: r.schema,
            sensor: r.sensor,
            kind: r.kind,
            event: r.event,
            signature: r.signature,
            severity: r.severity,
            ts: r.ts,
            ts_us: r.ts_us,
            src_ip: r.src_ip,
            dst_ip: r.dst_ip,
            src_port: r.src_port,
            dst_port: r.dst_port,
            proto: r.proto,
            community_id: r.community_id,
            direction: r.direction,
            attack_id: r.attack_id,
            vector: r.vector,
            pps: r.pps,
            bps: r.bps,
            peak_pps: r.peak_pps,
            peak_bps: r.peak_bps,
            packets: r.packets,
            bytes: r.bytes,
            top_sources: r.top_sources,
            match_count: r.match_count,
            app_proto: r.app_proto,
            excerpt: r.excerpt,
            raw: r.raw,
            received_at: r.received_at,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_5_keeps_every_incident_and_separates_sensors() {
    if skip() {
        return;
    }
    let ch = tokio::task::spawn_blocking(shaobing_testkit::ClickHouseServer::start)
        .await
        .unwrap()
        .unwrap();
    let config = config_with(&ch.http_url(), "", "");
    let client = shaobing_collector::store::client(&config.clickhouse);
    let t = Duration::from_secs(10);
    let applied = shaobing_collector::store::schema::migrate_up_to(&client, "shaobing", None, t, 4)
        .await
        .unwrap();
    assert_eq!(applied, vec![1, 2, 3, 4]);
    // Old schema: 300 incidents in several inserts (parts), one of them
    // twice.
    let mut rows = Vec::new();
    for i in 0..300u32 {
        let mut inc: shaobing_wire::Incident = serde_json::from_value(leak(i)).unwrap();
        inc.sensor = format!("s{}", i % 3);
        let raw = serde_json::to_string(&inc).unwrap();
        rows.push(IncidentRow::from_incident(&inc, raw, 1_764_389_964).unwrap());
    }
    rows.push(rows[5].clone());
    // Written as `OldRow`s: the columns of migrations 1-4 only.
    for chunk in rows.chunks(50) {
        let mut insert = client
            .insert_unescaped::<OldRow>("`shaobing`.incidents")
            .await
            .unwrap();
        for r in chunk {
            insert.write(&OldRow::from(r.clone())).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    let applied = shaobing_collector::migrate(&config).await.unwrap();
    assert_eq!(applied.first(), Some(&5), "{applied:?}");
    let q = |sql: &str| ch.query(sql).unwrap().trim().to_string();
    assert_eq!(q("SELECT count() FROM shaobing.incidents FINAL"), "300");
    assert_eq!(
        q("SELECT count() FROM system.tables WHERE database = 'shaobing' AND name IN ('incidents_pre5', 'incidents_v5')"),
        "0"
    );
    let key = q("SELECT create_table_query FROM system.tables WHERE database = 'shaobing' AND name = 'incidents'");
    assert!(key.contains("dst_ip, sensor, id"), "{key}");
    let stored: Vec<IncidentRow> = shaobing_collector::fetch_incidents(
        &config,
        &shaobing_collector::query::QueryFilter {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut want = rows[..300].to_vec();
    let key = |r: &IncidentRow| (r.id, r.sensor.clone());
    want.sort_by_key(key);
    let mut got = stored;
    got.sort_by_key(key);
    assert_eq!(got, want);
    // Again: nothing to do.
    assert!(shaobing_collector::migrate(&config)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_the_store_cannot_hold_and_leap_seconds_are_refused() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    for ts in [
        "2106-02-07T00:00:00Z",
        "2106-02-07T06:28:15Z",
        "2106-02-07T06:28:16Z",
        "1969-12-31T23:59:59Z",
        "2016-12-31T23:59:60Z",
    ] {
        let mut inc = leak(1);
        inc["ts"] = json!(ts);
        let (status, v) = h.post(Some(TOKEN), &body(&[inc])).await;
        assert_eq!(status, 400, "{ts}: {v}");
    }
    assert_eq!(h.raw_count().await, 0);
    let mut inc = leak(1);
    inc["ts"] = json!("2106-02-06T23:59:59.999999Z");
    let (status, v) = h.post(Some(TOKEN), &body(&[inc])).await;
    assert_eq!(status, 200, "{v}");
    let part = h
        .sql("SELECT DISTINCT partition FROM system.parts WHERE database = 'shaobing' AND table = 'incidents' AND active")
        .await;
    assert_eq!(part.trim(), "21060206");
}

fn healthz_ok(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    shaobing_testkit::http::get(&addr.to_string(), "/healthz", timeout)
        .map(|r| r.status == 200)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_capped_while_healthz_keeps_answering() {
    if skip() {
        return;
    }
    let h = Harness::start_tweaked("", "", |c| {
        c.limits.max_connections = 16;
        c.limits.header_read_timeout_ms = 700;
    })
    .await;
    let addr = h.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        // 200 silent connections: 16 take every slot, the rest wait.
        let mut silent: Vec<std::net::TcpStream> = (0..200)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let ok = healthz_ok(addr, Duration::from_secs(20));
        let waited = start.elapsed();
        // Every silent connection is closed by the server within a few
        // header-read timeouts (200 / 16 rounds of 0.7 s at most).
        let mut closed = 0;
        for s in &mut silent {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut b = [0u8; 1];
            if matches!(s.read(&mut b), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        (ok, waited, closed)
    })
    .await
    .unwrap();
    let (ok, waited, closed) = outcome;
    assert!(
        ok,
        "/healthz did not answer while silent connections held the slots"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "{waited:?}: the cap did not hold"
    );
    assert_eq!(closed, 200);
    assert!(healthz_ok(addr, Duration::from_secs(5)));
    let (_, m) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    let m = m.as_str().unwrap_or_default().to_string();
    let capped: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("shaobing_collector_connections_capped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(capped >= 1, "{m}");
    assert!(m.contains("shaobing_collector_connections_open "), "{m}");
}
