//! The console's API (overview, incident detail, sensors, Community ID
//! pivot) and its sessions (login, roles, cookies, CSRF, expiry), against a
//! real ClickHouse server and real sockets.

mod common;

use common::*;
use serde_json::{json, Value};

const ATTACK_A: &str = "019c0c4e-1000-7000-8000-0000000000aa";
const ATTACK_B: &str = "019c0c4e-1000-7000-8000-0000000000bb";
const ATTACK_C: &str = "019c0c4e-1000-7000-8000-0000000000cc";

fn attack_event(n: u32, ts: &str, dst: &str, event: &str, attack: &str, pps: u64) -> Value {
    let mut v = volumetric(n);
    v["id"] = format!("019c0c4e-1000-7000-8000-{n:012}").into();
    v["ts"] = ts.into();
    v["dst_ip"] = dst.into();
    v["event"] = event.into();
    v["attack_id"] = attack.into();
    v["pps"] = pps.into();
    v["bps"] = (pps * 4000).into();
    v
}

fn leak_at(n: u32, ts: &str, src: &str, sig: &str, flow: &str) -> Value {
    let mut v = leak(n);
    v["ts"] = ts.into();
    v["src_ip"] = src.into();
    v["signature"] = sig.into();
    v["community_id"] = flow.into();
    v
}

/// Three attacks (A ended, B and C in progress; A and B hit 10.0.0.0/24)
/// and four leaks (three from 10.1.2.3) on 2026-11-29.
fn data_set() -> Vec<Value> {
    let t = |s: &str| format!("2026-11-29T{s}Z");
    vec![
        attack_event(
            1,
            &t("01:00:00"),
            "10.0.0.10",
            "attack_started",
            ATTACK_A,
            50_000,
        ),
        attack_event(
            2,
            &t("01:00:10"),
            "10.0.0.10",
            "attack_update",
            ATTACK_A,
            90_000,
        ),
        attack_event(
            3,
            &t("01:00:20"),
            "10.0.0.10",
            "attack_ended",
            ATTACK_A,
            1_000,
        ),
        attack_event(
            4,
            &t("02:30:00"),
            "10.0.0.20",
            "attack_started",
            ATTACK_B,
            30_000,
        ),
        attack_event(
            5,
            &t("02:30:10"),
            "10.0.0.20",
            "attack_update",
            ATTACK_B,
            70_000,
        ),
        attack_event(
            6,
            &t("02:40:00"),
            "10.0.1.5",
            "attack_started",
            ATTACK_C,
            20_000,
        ),
        leak_at(
            7,
            &t("01:10:00"),
            "10.1.2.3",
            "classification-marking",
            "1:flowA=",
        ),
        leak_at(
            8,
            &t("01:11:00"),
            "10.1.2.3",
            "classification-marking",
            "1:flowA=",
        ),
        leak_at(9, &t("02:12:00"), "10.1.2.3", "cn-national-id", "1:flowB="),
        leak_at(10, &t("02:13:00"), "10.1.2.9", "bank-card", "1:flowC="),
    ]
}

async fn loaded(extra: &str) -> Harness {
    let h = Harness::start_full("", extra).await;
    let set = data_set();
    for chunk in set.chunks(5) {
        let (status, resp) = h.post(Some(TOKEN), &body(chunk)).await;
        assert_eq!(status, 200, "{resp}");
        // Delivered twice: every view counts each incident once.
        let (status, resp) = h.post(Some(TOKEN), &body(chunk)).await;
        assert_eq!(status, 200, "{resp}");
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_reports_the_timeline_top_lists_and_attacks_in_progress() {
    if skip() {
        return;
    }
    let h = loaded("").await;
    let (status, o) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/overview?since=all")
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["total"], 10);
    assert_eq!(o["since"], Value::Null);

    // Per hour, kind and severity; adds up to the total.
    let timeline = o["timeline"].as_array().unwrap();
    let sum: u64 = timeline
        .iter()
        .map(|t| t["incidents"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 10);
    assert!(timeline.contains(&json!({
        "hour": "2026-11-29T01:00:00Z", "kind": "volumetric", "severity": "high", "incidents": 3
    })));
    assert!(timeline.contains(&json!({
        "hour": "2026-11-29T02:00:00Z", "kind": "leak", "severity": "critical", "incidents": 2
    })));

    // In progress first (newest last event first), then ended.
    let attacks = o["attacks"].as_array().unwrap();
    let order: Vec<(&str, bool)> = attacks
        .iter()
        .map(|a| {
            (
                a["attack_id"].as_str().unwrap(),
                a["in_progress"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [(ATTACK_C, true), (ATTACK_B, true), (ATTACK_A, false)]
    );
    let b = &attacks[1];
    assert_eq!(b["pps"], 70_000, "latest rate: {b}");
    assert_eq!(b["bps"], 280_000_000u64);
    assert_eq!(b["dst_ip"], "10.0.0.20");
    assert_eq!(b["events"], 2);
    assert_eq!(b["first_seen"], "2026-11-29T02:30:00.000000Z");
    assert_eq!(b["last_seen"], "2026-11-29T02:30:10.000000Z");

    assert_eq!(
        o["top_prefixes"],
        json!([
            {"prefix": "10.0.0.0/24", "incidents": 5, "attacks": 2},
            {"prefix": "10.0.1.0/24", "incidents": 1, "attacks": 1},
        ])
    );
    assert_eq!(o["top_leak_sources"][0]["ip"], "10.1.2.3");
    assert_eq!(o["top_leak_sources"][0]["incidents"], 3);
    assert_eq!(o["top_targets"][0]["ip"], "10.0.0.10");
    let sigs: Vec<&str> = o["by_signature"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert_eq!(sigs[0], "syn-flood");
    assert!(sigs.contains(&"classification-marking"));

    // A window that ends before attack B's update: B's rate is its start.
    let (_, o) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/overview?since=2026-11-29T02:00:00Z&until=2026-11-29T02:30:05Z&top=1",
        )
        .await;
    assert_eq!(o["total"], 3, "{o}");
    assert_eq!(o["attacks"][0]["attack_id"], ATTACK_B);
    assert_eq!(o["attacks"][0]["pps"], 30_000);
    assert_eq!(o["by_signature"].as_array().unwrap().len(), 1);
    assert_eq!(o["top_prefixes"].as_array().unwrap().len(), 1);

    // The default window is the last 24 hours: nothing of 2026-11-29.
    let (_, o) = h.get(Some(ANALYST_TOKEN), "/api/v1/overview").await;
    assert_eq!(o["total"], 0, "{o}");
    let (status, _) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/overview?cursor=x")
        .await;
    assert_eq!(status, 400);
    let (status, _) = h.get(Some(TOKEN), "/api/v1/overview").await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_detail_lists_the_other_incidents_of_its_host_and_community_id_pivots() {
    if skip() {
        return;
    }
    let h = loaded("").await;
    let id = "019c0c4e-5a00-7000-8000-000000000007";
    let (status, d) = h
        .get(Some(ANALYST_TOKEN), &format!("/api/v1/incidents/{id}"))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["incident"]["id"], id);
    assert_eq!(d["incident"]["excerpt"], "绝*★ \"quoted\" \\ back");
    assert_eq!(d["host"], "10.1.2.3");
    let others: Vec<&str> = d["host_incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        others,
        [
            "019c0c4e-5a00-7000-8000-000000000009",
            "019c0c4e-5a00-7000-8000-000000000008"
        ]
    );
    // An attack event's host is its target.
    let (_, d) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/incidents/019c0c4e-1000-7000-8000-000000000004",
        )
        .await;
    assert_eq!(d["host"], "10.0.0.20");
    assert_eq!(d["host_incidents"].as_array().unwrap().len(), 1);

    let (status, _) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/incidents/019c0c4e-5a00-7000-8000-000000000099",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/incidents/not-a-uuid")
        .await;
    assert_eq!(status, 400);

    // Pivot on a flow.
    let (status, v) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/incidents?community_id=1%3AflowA%3D",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let got: Vec<&str> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "019c0c4e-5a00-7000-8000-000000000008",
            "019c0c4e-5a00-7000-8000-000000000007"
        ]
    );
}

/// Random (v4) ids say nothing about their time: the detail pages find
/// them through `incident_lookup`, across days, and read nothing the
/// lookup does not point to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_pages_find_random_ids_through_the_id_lookup() {
    if skip() {
        return;
    }
    let h = loaded("").await;
    const LEAK: &str = "5f0c2f9e-8c1d-4e3b-9a7f-0123456789ab";
    const ATTACK: &str = "c0ffee00-1234-4abc-8def-00000000beef";
    let mut leak = leak_at(20, "2026-11-20T08:00:00Z", "10.7.7.7", "bank-card", "1:v4=");
    leak["id"] = LEAK.into();
    let mut start = attack_event(
        21,
        "2026-11-21T23:59:50Z",
        "10.0.9.9",
        "attack_started",
        ATTACK,
        10_000,
    );
    start["id"] = "a1a1a1a1-0000-4000-8000-000000000021".into();
    let mut end = attack_event(
        22,
        "2026-11-22T00:00:30Z",
        "10.0.9.9",
        "attack_ended",
        ATTACK,
        500,
    );
    end["id"] = "a1a1a1a1-0000-4000-8000-000000000022".into();
    // Delivered twice: each event is listed once.
    for _ in 0..2 {
        let items = [leak.clone(), start.clone(), end.clone()];
        let (status, resp) = h.post(Some(TOKEN), &body(&items)).await;
        assert_eq!(status, 200, "{resp}");
    }

    let (status, d) = h
        .get(Some(ANALYST_TOKEN), &format!("/api/v1/incidents/{LEAK}"))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["incident"]["id"], LEAK);
    assert_eq!(d["host"], "10.7.7.7");
    // The attack's two events, on two days.
    let (status, a) = h
        .get(Some(ANALYST_TOKEN), &format!("/api/v1/attacks/{ATTACK}"))
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["events"].as_array().unwrap().len(), 2, "{a}");
    assert_eq!(a["started_at"], "2026-11-21T23:59:50.000000Z");
    assert_eq!(a["ended_at"], "2026-11-22T00:00:30.000000Z");
    // The lookup was filled at insert time, one row per stored row.
    assert_eq!(
        h.sql(&format!(
            "SELECT count() FROM shaobing.incident_lookup WHERE attack = 1 AND key = cityHash64('{ATTACK}')"
        ))
        .await
        .trim(),
        "4"
    );
    // It is what is read: without its rows the incident is not found,
    // although it is still stored.
    h.sql("ALTER TABLE shaobing.incident_lookup DROP PARTITION 20261120")
        .await;
    let (status, _) = h
        .get(Some(ANALYST_TOKEN), &format!("/api/v1/incidents/{LEAK}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        h.sql(&format!(
            "SELECT count() > 0 FROM shaobing.incidents WHERE id = toUUID('{LEAK}')"
        ))
        .await
        .trim(),
        "1"
    );
    let (status, _) = h
        .get(
            Some(ANALYST_TOKEN),
            "/api/v1/attacks/c0ffee00-1234-4abc-8def-000000000000",
        )
        .await;
    assert_eq!(status, 404);
}

/// Migration 8 on a store that already holds incidents: the lookup gets a
/// row for each stored incident and attack event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_8_backfills_the_id_lookup_of_stored_incidents() {
    if skip() {
        return;
    }
    let h = loaded("").await;
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let t = std::time::Duration::from_secs(10);
    let schema = shaobing_collector::store::schema::migrate_up_to;
    schema(&client, "older", None, t, 7).await.unwrap();
    h.sql("INSERT INTO older.incidents SELECT * FROM shaobing.incidents FINAL")
        .await;
    let applied = shaobing_collector::store::schema::migrate(&client, "older", t)
        .await
        .unwrap();
    assert_eq!(applied, [8]);
    let stored = h
        .sql("SELECT count(), countIf(attack_id != '') FROM older.incidents")
        .await;
    let looked_up = h
        .sql("SELECT countIf(attack = 0), countIf(attack = 1) FROM older.incident_lookup")
        .await;
    assert_eq!(stored, looked_up);
    assert_eq!(stored.trim(), "10\t6");
    // Every stored id is found.
    let missing = h
        .sql(
            "SELECT count() FROM older.incidents WHERE cityHash64(toString(id)) NOT IN \
             (SELECT key FROM older.incident_lookup WHERE attack = 0)",
        )
        .await;
    assert_eq!(missing.trim(), "0");
}

/// Once a day is compacted, the overview reads its whole hours from the
/// pre-aggregates (hosts for the prefixes, per-hour attack state for the
/// attack list) and the window's edges raw: the same answer as before
/// compaction, for windows that cut hours and an attack whose events fall
/// on both sides of an hour boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_of_compacted_days_reads_pre_aggregates_and_agrees_with_raw_rows() {
    if skip() {
        return;
    }
    let h = loaded("").await;
    // Attack C goes on into the next hour.
    let late = attack_event(
        11,
        "2026-11-29T03:10:00Z",
        "10.0.1.5",
        "attack_update",
        ATTACK_C,
        99_000,
    );
    assert_eq!(h.post(Some(TOKEN), &body(&[late])).await.0, 200);
    let windows = [
        "/api/v1/overview?since=all",
        "/api/v1/overview?since=2026-11-29T01:00:05Z&until=2026-11-29T03:30:00Z",
        "/api/v1/overview?since=2026-11-29T02:00:00Z&until=2026-11-29T03:00:00Z",
        "/api/v1/overview?since=2026-11-29T02:00:00Z&until=2026-11-29T02:30:05Z&top=1",
    ];
    let mut before = Vec::new();
    for w in windows {
        let (status, o) = h.get(Some(ANALYST_TOKEN), w).await;
        assert_eq!(status, 200, "{o}");
        before.push(o);
    }
    let c = &before[1]["attacks"][0];
    assert_eq!(c["attack_id"], ATTACK_C, "{c}");
    assert_eq!(
        (c["pps"].as_u64(), c["events"].as_u64()),
        (Some(99_000), Some(2))
    );

    let client = shaobing_collector::store::client(&h.config.clickhouse);
    // "Now" is 2026-11-30: the 29th is a closed day.
    let compacted = shaobing_collector::retention::compact_once(&client, "shaobing", 1_795_996_800)
        .await
        .unwrap();
    assert_eq!(compacted, [20261129]);
    assert_eq!(
        h.sql("SELECT count(), sum(events) FROM shaobing.incidents_attack_summary WHERE day = 20261129")
            .await
            .trim(),
        // A in hour 1; B and C in hour 2; C in hour 3.
        "4\t7"
    );
    for (w, b) in windows.iter().zip(&before) {
        let (status, o) = h.get(Some(ANALYST_TOKEN), w).await;
        assert_eq!(status, 200, "{o}");
        assert_eq!(&o, b, "{w}");
    }
    // The pre-aggregates are what is read: a planted attack shows up.
    let part = h
        .sql("SELECT any(part) FROM shaobing.incidents_attack_summary WHERE day = 20261129")
        .await;
    h.sql(&format!(
        "INSERT INTO shaobing.incidents_attack_summary VALUES (20261129, '{}', {}, \
         cityHash64('planted'), 'planted', 'udp_flood', '10.0.0.99', 's', 'low', \
         1795924200000000, 1795924200000000, 1, 2, 3, 4, 0, 1)",
        part.trim(),
        1_795_917_600u32 + 3600,
    ))
    .await;
    let (_, o) = h.get(Some(ANALYST_TOKEN), windows[0]).await;
    assert_eq!(o["attacks"][0]["attack_id"], "planted", "{o}");
    assert_eq!(o["attacks"][1]["attack_id"], ATTACK_C);
}

fn heartbeat(drops: u64, spool: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": 1,
        "ts": "2026-11-29T04:00:00.250000Z",
        "version": "0.1.0",
        "uptime_s": 3600,
        "packets": 999_000,
        "bytes": 800_000_000,
        "kernel_drops": drops,
        "pps": 25_000,
        "bps": 200_000_000,
        "spool_depth": spool,
        "signature_hits": {"classification-marking": 4, "bank-card": 9},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_report_the_last_heartbeat_and_stale_sensors_come_first() {
    if skip() {
        return;
    }
    let extra = format!(
        "[[sensors]]\nname = \"sensor-2\"\ntoken_sha256 = \"{}\"\n[console]\nstale_after_s = 3\n",
        shaobing_collector::auth::hash_token("second-sensor-token")
    );
    let h = loaded(&extra).await;
    for (drops, spool) in [(10, 7), (1000, 5)] {
        let resp = request_to(
            h.addr,
            "POST",
            "/api/v1/heartbeat",
            Some(TOKEN),
            "application/json",
            &heartbeat(drops, spool),
            &[],
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        // A later receive second for the second one.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let (status, v) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/sensors?since=all")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stale_after_s"], 3);
    let s = v["sensors"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{v}");
    // Never heard from: stale, listed first.
    assert_eq!(s[0]["name"], "sensor-2");
    assert_eq!(s[0]["stale"], true);
    assert_eq!(s[0]["last_heartbeat"], Value::Null);
    let one = &s[1];
    assert_eq!(one["name"], SENSOR);
    assert_eq!(one["stale"], false, "{one}");
    assert_eq!(one["kernel_drops"], 1000);
    assert_eq!(one["spool_depth"], 5);
    assert_eq!(one["capture_loss_ratio"], 0.001);
    assert_eq!(one["heartbeats"], 2);
    assert_eq!(one["incidents"], 10);
    assert_eq!(
        one["signature_hits"],
        json!([
            {"signature": "bank-card", "hits": 9},
            {"signature": "classification-marking", "hits": 4},
        ])
    );
    // Silence past stale_after_s makes it stale.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (_, v) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/sensors?since=all")
        .await;
    assert_eq!(v["sensors"][0]["stale"], true);
    assert_eq!(v["sensors"][1]["stale"], true, "{v}");
}

/// `(status, headers, body)` of a request with the given headers.
async fn call(
    h: &Harness,
    method: &'static str,
    path: &str,
    headers: &[(&'static str, &str)],
    body: &[u8],
) -> (u16, shaobing_testkit::http::Response, Value) {
    let resp = request_to(
        h.addr,
        method,
        path,
        None,
        "application/json",
        body,
        headers,
    )
    .await;
    let v = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    (resp.status, resp, v)
}

fn cookie_of(resp: &shaobing_testkit::http::Response) -> String {
    let set = resp.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_log_in_for_a_strict_httponly_cookie_and_log_out_with_the_csrf_token() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let login = |t: &str| serde_json::to_vec(&json!({ "token": t })).unwrap();

    // A sensor token cannot log in; an unknown one neither.
    let (status, _, v) = call(&h, "POST", "/api/v1/session", &[], &login(TOKEN)).await;
    assert_eq!(status, 403, "{v}");
    let (status, _, _) = call(&h, "POST", "/api/v1/session", &[], &login("nope")).await;
    assert_eq!(status, 401);
    // Not JSON (a cross-site form could send this), or from another origin.
    let resp = request_to(
        h.addr,
        "POST",
        "/api/v1/session",
        None,
        "application/x-www-form-urlencoded",
        format!("token={ANALYST_TOKEN}").as_bytes(),
        &[],
    )
    .await;
    assert_eq!(resp.status, 415);
    let (status, _, _) = call(
        &h,
        "POST",
        "/api/v1/session",
        &[("Origin", "http://evil.example")],
        &login(ANALYST_TOKEN),
    )
    .await;
    assert_eq!(status, 403);

    let (status, resp, v) = call(&h, "POST", "/api/v1/session", &[], &login(ANALYST_TOKEN)).await;
    assert_eq!(status, 200, "{v}");
    let set = resp.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert_eq!(v["analyst"], "soc");
    assert_eq!(v["authenticated"], true);
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    let cookie = cookie_of(&resp);
    assert!(!set.contains(&csrf));

    // The cookie queries like an analyst's token, and cannot ingest.
    let (status, _, v) = call(&h, "GET", "/api/v1/incidents", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = call(&h, "GET", "/api/v1/session", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200);
    assert_eq!(v["csrf_token"], csrf.as_str());
    let incident = body(&[leak(1)]);
    let (status, _, _) = call(
        &h,
        "POST",
        "/api/v1/incidents",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        &incident,
    )
    .await;
    assert_eq!(status, 403);

    // A forged cookie is nobody.
    let forged = format!("sb_session={}", "ab".repeat(32));
    let (status, _, _) = call(&h, "GET", "/api/v1/incidents", &[("Cookie", &forged)], b"").await;
    assert_eq!(status, 401);

    // Logging out is state-changing: refused without the CSRF token or
    // with a wrong one.
    let (status, _, _) = call(&h, "DELETE", "/api/v1/session", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        &h,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &"0".repeat(64))],
        b"",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(&h, "GET", "/api/v1/summary", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200, "still logged in");
    let (status, resp, _) = call(
        &h,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    )
    .await;
    assert_eq!(status, 204);
    assert!(resp.header("set-cookie").unwrap().contains("Max-Age=0"));
    let (status, _, _) = call(&h, "GET", "/api/v1/incidents", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 401, "the session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_after_their_lifetime() {
    if skip() {
        return;
    }
    let h = Harness::start_full("", "[console]\nsession_ttl_s = 2\n").await;
    let login = serde_json::to_vec(&json!({ "token": ANALYST_TOKEN })).unwrap();
    let (status, resp, _) = call(&h, "POST", "/api/v1/session", &[], &login).await;
    assert_eq!(status, 200);
    assert!(resp.header("set-cookie").unwrap().contains("Max-Age=2"));
    let cookie = cookie_of(&resp);
    let (status, _, _) = call(&h, "GET", "/api/v1/summary", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _, _) = call(&h, "GET", "/api/v1/summary", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 401, "expired");
    let (status, _, v) = call(&h, "GET", "/api/v1/session", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"authenticated": false}));
}

/// Token guessing is slowed: past `console.login_failures` refused logins
/// an address gets 429 with Retry-After, even with the right token, and
/// /metrics counts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_from_one_address_get_429_with_retry_after() {
    if skip() {
        return;
    }
    let h = Harness::start_full("", "[console]\nlogin_failures = 3\nlogin_window_s = 600\n").await;
    let login = |t: &str| serde_json::to_vec(&json!({ "token": t })).unwrap();
    // A sensor's token is a failed login too.
    for token in ["nope-1", "nope-2", TOKEN] {
        let (status, _, _) = call(&h, "POST", "/api/v1/session", &[], &login(token)).await;
        assert!(status == 401 || status == 403, "{status}");
    }
    let (status, resp, v) = call(&h, "POST", "/api/v1/session", &[], &login(ANALYST_TOKEN)).await;
    assert_eq!(status, 429, "{v}");
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    // The API's bearer tokens are not throttled.
    let (status, _) = h.get(Some(ANALYST_TOKEN), "/api/v1/session").await;
    assert_eq!(status, 200);
    let (_, m) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("shaobing_collector_console_login_failures_total 3"),
        "{m}"
    );
    assert!(
        m.contains("shaobing_collector_console_login_throttled_total 1"),
        "{m}"
    );
    assert!(
        m.contains("shaobing_collector_rejected_requests_total{reason=\"rate_limited\"} 1"),
        "{m}"
    );
}

/// Pages are looked for in the newest hour first, then wider slices: a
/// page that the first slice fills, the next pages across the slices'
/// edges and the last one from the whole window list every incident once,
/// newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_pages_across_time_slices_list_every_incident_once_newest_first() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let now = shaobing_wire::Timestamp::now().secs();
    // Minutes ago: 3 in the last hour, 3 within 6 hours, 2 within 48
    // hours, 2 older.
    let ago_min = [5, 20, 50, 90, 200, 330, 600, 2000, 4000, 9000];
    let items: Vec<Value> = ago_min
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut v = leak(200 + i as u32);
            v["id"] = format!("6d6d6d6d-0000-4000-8000-{:012}", 200 + i).into();
            v["ts"] = shaobing_wire::Timestamp::from_parts(now - m * 60, 0)
                .to_string()
                .into();
            v
        })
        .collect();
    assert_eq!(h.post(Some(TOKEN), &body(&items)).await.0, 200);
    let mut got = Vec::new();
    let mut path = "/api/v1/incidents?limit=2".to_string();
    loop {
        let (status, v) = h.get(Some(ANALYST_TOKEN), &path).await;
        assert_eq!(status, 200, "{v}");
        for i in v["incidents"].as_array().unwrap() {
            got.push(i["id"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/incidents?limit=2&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..10)
        .map(|i| format!("6d6d6d6d-0000-4000-8000-{:012}", 200 + i))
        .collect();
    assert_eq!(got, want);
    // A window that starts inside the first slice, and one page of all.
    let (_, v) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/incidents?since=30m&limit=5")
        .await;
    assert_eq!(v["incidents"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = h
        .get(Some(ANALYST_TOKEN), "/api/v1/incidents?limit=100")
        .await;
    assert_eq!(v["incidents"].as_array().unwrap().len(), 10);
}

/// The attack ranking looks at the window's last hour (then 6 hours)
/// first, and answers from there only when enough of those attacks are in
/// progress: the answer is the whole window's first attacks in every case,
/// including an attack that ended before the last hour and had an event
/// after its end (ended over the window, not in the last hour), before and
/// after compaction (raw rows, then the per-hour pre-aggregates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_ranking_from_the_newest_hours_equals_the_whole_window_ranking() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let id = |n: u32| format!("019c0c4e-1000-7000-8000-0000000001{n:02}");
    let (p1, p2, p3, p4, q, e1) = (id(1), id(2), id(3), id(4), id(5), id(6));
    let t = |s: &str| format!("2026-11-29T{s}Z");
    let events = [
        (201, "11:10:00", "attack_started", &p1),
        (202, "11:30:00", "attack_update", &p1),
        (203, "11:20:00", "attack_started", &p2),
        (204, "11:05:00", "attack_started", &e1),
        (205, "11:40:00", "attack_ended", &e1),
        (206, "09:00:00", "attack_started", &q),
        (207, "10:00:00", "attack_ended", &q),
        (208, "11:50:00", "attack_update", &q),
        (209, "08:00:00", "attack_started", &p3),
        (210, "03:00:00", "attack_started", &p4),
        // After the window.
        (211, "12:30:00", "attack_update", &p4),
    ];
    let set: Vec<Value> = events
        .iter()
        .map(|(n, at, event, attack)| attack_event(*n, &t(at), "10.0.0.40", event, attack, 1000))
        .collect();
    for _ in 0..2 {
        for chunk in set.chunks(5) {
            assert_eq!(h.post(Some(TOKEN), &body(chunk)).await.0, 200);
        }
    }
    let client = shaobing_collector::store::client(&h.config.clickhouse);
    let timeout = std::time::Duration::from_secs(10);
    let filter = shaobing_collector::query::QueryFilter {
        since: Some(shaobing_wire::Timestamp::parse(&t("00:00:00")).unwrap()),
        until: Some(shaobing_wire::Timestamp::parse(&t("12:00:00")).unwrap()),
        limit: 100,
        ..Default::default()
    };
    // The whole window: in progress by last event, then ended.
    let whole = [&p1, &p2, &p3, &p4, &q, &e1];
    for stage in ["raw rows", "pre-aggregated hours"] {
        let plan = shaobing_collector::query::plan_for(&client, "shaobing", timeout, &filter, true)
            .await
            .unwrap();
        for limit in 1..=6 {
            let attacks = shaobing_collector::console::views::fetch_attacks(
                &client, "shaobing", timeout, &filter, limit, &plan,
            )
            .await
            .unwrap();
            let got: Vec<&str> = attacks.iter().map(|a| a.attack_id.as_str()).collect();
            let want: Vec<&str> = whole[..limit as usize].iter().map(|s| s.as_str()).collect();
            assert_eq!(got, want, "{stage}, limit {limit}");
            let q_row = attacks.iter().find(|a| a.attack_id == q);
            if let Some(q_row) = q_row {
                assert!(!q_row.in_progress, "{q_row:?}");
                assert_eq!(q_row.events, 3);
            }
        }
        // "Now" is 2026-11-30: the 29th is a closed day (compacted here,
        // unless a background merge did it already) and pre-aggregated.
        shaobing_collector::retention::compact_once(&client, "shaobing", 1_795_996_800)
            .await
            .unwrap();
        let rows = h
            .sql("SELECT count() FROM shaobing.incidents_attack_summary WHERE day = 20261129")
            .await;
        assert_ne!(rows.trim(), "0");
    }
}
