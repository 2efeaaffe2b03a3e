//! Analysts' query benchmark for `make bench` (see docs/BENCHMARKS.md,
//! "Collector"): fills `incidents` with ROWS synthetic incidents over the
//! last 30 days (INSERT ... SELECT FROM numbers() inside ClickHouse),
//! compacts the closed days as the collector's maintenance does, adds 30
//! days of heartbeats from 8 sensors (one every 10 s), then times the
//! common queries and the web console's queries through the collector's
//! HTTP API with an analyst token and prints median and p95.
//!
//! ```text
//! cargo run --release -p shaobing-collector --example querybench -- \
//!     COLLECTOR_ADDR ANALYST_TOKEN CLICKHOUSE_URL [ROWS] [RUNS]
//! ```

use std::time::{Duration, Instant};

use shaobing_testkit::http;

/// Rows per `INSERT ... SELECT` of the fill: 10 million take 2-4 minutes
/// here, well inside the 600 s HTTP timeout; larger sets are filled in
/// several statements.
const FILL_CHUNK: u64 = 10_000_000;

/// The data set: 1 in 5 incidents volumetric (attacks on 2000 internal
/// hosts), the rest leaks from the same hosts; capture times spread evenly
/// over the 30 days before now (`ts` [`SPREAD_30_DAYS`]; [`SPREAD_TODAY`]
/// and [`SPREAD_5_MIN`] put them into today or its last 5 minutes). Rows
/// `first .. first + rows` of it.
fn fill_sql(first: u64, rows: u64, ts: &str) -> String {
    format!(
        "INSERT INTO shaobing.incidents SELECT
    generateUUIDv4() AS id,
    1 AS schema,
    concat('sensor-', toString(number % 8)) AS sensor,
    if(number % 5 = 0, 'volumetric', 'leak') AS kind,
    if(number % 5 = 0, ['attack_started', 'attack_update', 'attack_update', 'attack_ended'][intDiv(number % 20, 5) + 1], 'leak') AS event,
    if(number % 5 = 0, 'volumetric/syn_flood', ['classification-marking', 'cn-national-id', 'bank-card', 'credential-password'][number % 4 + 1]) AS signature,
    ['low', 'medium', 'high', 'critical'][number % 7 % 4 + 1] AS severity,
    {ts} AS ts,
    toUInt32(number % 1000000) AS ts_us,
    if(number % 5 = 0, '', concat('10.', toString(intDiv(number % 2000, 250)), '.', toString(number % 250), '.1')) AS src_ip,
    if(number % 5 = 0, concat('10.', toString(intDiv(number % 2000, 250)), '.', toString(number % 250), '.1'), concat('203.0.113.', toString(number % 200 + 1))) AS dst_ip,
    if(number % 5 = 0, CAST(NULL AS Nullable(UInt16)), CAST(40000 + number % 20000 AS Nullable(UInt16))) AS src_port,
    CAST(if(number % 5 = 0, 443, 80) AS Nullable(UInt16)) AS dst_port,
    'tcp' AS proto,
    '1:UyVFQeW/psmHy+7cH56975gg3/o=' AS community_id,
    if(number % 5 = 0, 'inbound', 'outbound') AS direction,
    if(number % 5 = 0, toString(generateUUIDv4()), '') AS attack_id,
    if(number % 5 = 0, 'syn_flood', '') AS vector,
    number % 100000 AS pps, number % 100000 * 4320 AS bps, 150000 AS peak_pps, 64800000 AS peak_bps,
    number % 1000000 AS packets, number % 1000000 * 54 AS bytes,
    if(number % 5 = 0, '[]', '') AS top_sources,
    if(number % 5 = 0, 0, number % 3 + 1) AS match_count,
    if(number % 5 = 0, '', 'http') AS app_proto,
    if(number % 5 = 0, '', '110101********123X') AS excerpt,
    concat('{{\"id\":\"', toString(id), '\",\"schema\":1,\"sensor\":\"', sensor, '\",\"kind\":\"', kind,
           '\",\"event\":\"', event, '\",\"signature\":\"', signature, '\",\"severity\":\"', severity,
           '\",\"ts\":\"', formatDateTime(ts, '%Y-%m-%dT%H:%M:%S'), '.000000Z\",\"src_ip\":\"', src_ip,
           '\",\"dst_ip\":\"', dst_ip, '\",\"proto\":\"tcp\"}}') AS raw,
    now() AS received_at,
    '' AS dst_net
FROM (SELECT number + {first} AS number FROM numbers({rows}))"
    )
}

/// Capture times spread over the 30 days before now.
const SPREAD_30_DAYS: &str = "toDateTime(toUInt32(now()) - (number * 7919) % 2592000)";
/// Capture times spread over today (UTC) until now.
const SPREAD_TODAY: &str = "toDateTime(toUInt32(toStartOfDay(now())) + (number * 7919) % \
     greatest(1, toUInt32(now()) - toUInt32(toStartOfDay(now()))))";
/// Capture times spread over the last 5 minutes.
const SPREAD_5_MIN: &str = "toDateTime(toUInt32(now()) - (number * 7919) % 300)";

/// A number from the environment (0 when unset).
fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// 8 sensors, one heartbeat every 10 s for 30 days.
const HEARTBEATS_SQL: &str = "INSERT INTO shaobing.sensor_heartbeats SELECT
    concat('sensor-', toString(number % 8)) AS sensor,
    toDateTime(toUInt32(now()) - intDiv(number, 8) * 10) AS ts,
    toUInt32(0) AS ts_us,
    ts AS received_at,
    'bench' AS version,
    toUInt64(2592000 - intDiv(number, 8) * 10) AS uptime_s,
    toUInt64(number * 1000) AS packets, toUInt64(number * 800000) AS bytes,
    toUInt64(number % 1000) AS kernel_drops,
    toUInt64(25000) AS pps, toUInt64(200000000) AS bps, toUInt64(number % 50) AS spool_depth,
    ['classification-marking', 'cn-national-id', 'bank-card'] AS signature_names,
    [toUInt64(number % 100), toUInt64(number % 10), toUInt64(number % 7)] AS signature_hits,
    '{}' AS raw
FROM numbers(207360)";

/// One timed `GET`: its time and response size, or why it failed (a
/// status other than 200, or no answer within 120 s; the collector's own
/// limit is `clickhouse.timeout_ms`).
fn get(addr: &str, token: &str, path: &str) -> Result<(Duration, usize), String> {
    let auth = format!("Bearer {token}");
    let started = Instant::now();
    let r = http::request(
        addr,
        "GET",
        path,
        &[("Authorization", auth.as_str())],
        b"",
        Duration::from_secs(120),
    )
    .map_err(|e| {
        format!(
            "no answer after {:.0} s: {e}",
            started.elapsed().as_secs_f64()
        )
    })?;
    let took = started.elapsed();
    if r.status != 200 {
        let text = r.body_text();
        return Err(format!(
            "status {} after {:.1} s: {}",
            r.status,
            took.as_secs_f64(),
            text.chars().take(160).collect::<String>()
        ));
    }
    Ok((took, r.body.len()))
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    (p(0.5), p(0.95))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9440".into());
    let token = args.get(2).cloned().unwrap_or_default();
    let ch = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8123".into());
    let ch = ch.trim_start_matches("http://").to_string();
    let rows: u64 = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let runs: usize = args
        .get(5)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .max(1);

    let sql = |q: &str| {
        let r = http::request(
            &ch,
            "POST",
            "/",
            &[],
            q.as_bytes(),
            Duration::from_secs(600),
        )
        .expect("clickhouse");
        assert_eq!(r.status, 200, "{q}: {}", r.body_text());
        r.body_text()
    };
    let have: u64 = sql("SELECT count() FROM shaobing.incidents")
        .trim()
        .parse()
        .unwrap_or(0);
    if have < rows {
        let started = Instant::now();
        let mut first = have;
        while first < rows {
            let n = (rows - first).min(FILL_CHUNK);
            sql(&fill_sql(first, n, SPREAD_30_DAYS));
            first += n;
            eprintln!(
                "inserted {} of {} rows, {:.1} s",
                first - have,
                rows - have,
                started.elapsed().as_secs_f64()
            );
        }
        // What the collector's hourly maintenance does on a long-running
        // server: compact the closed days.
        let started = Instant::now();
        let client = clickhouse::Client::default()
            .with_url(format!("http://{ch}"))
            .with_validation(false);
        let now = shaobing_wire::Timestamp::now().secs();
        let days = tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(shaobing_collector::retention::compact_once(
                &client, "shaobing", now,
            ))
            .expect("compaction");
        eprintln!(
            "compacted {} closed days in {:.1} s",
            days.len(),
            started.elapsed().as_secs_f64()
        );
    }
    // The worst case of a summary that includes today: TODAY_ROWS more
    // rows in today (a full day of the 10-million set is about 333,000),
    // added once; then the collector's compaction of today (since the
    // pre-aggregates of today's merged part); then, on every run,
    // TODAY_NEW_ROWS rows in the last 5 minutes plus a tenth as many
    // re-delivered copies of older rows of today, in new parts (what
    // arrives between two compactions of today).
    let today_rows = env_u64("TODAY_ROWS");
    if today_rows > 0 {
        let today: u64 =
            sql("SELECT count() FROM shaobing.incidents WHERE ts >= toStartOfDay(now())")
                .trim()
                .parse()
                .unwrap_or(0);
        let base = rows.max(have) + 1_000_000_000;
        if today < today_rows {
            sql(&fill_sql(base, today_rows - today, SPREAD_TODAY));
        }
        // What the collector's compaction pass (at its start, then every
        // `retention.compact_interval_s`) does: merge today and build the
        // pre-aggregates of its merged part. Run once from here and timed
        // (a pass of the collector at the same time holds the build lock:
        // this one then only merges, and the wait below waits for it).
        let client = clickhouse::Client::default()
            .with_url(format!("http://{ch}"))
            .with_validation(false);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let started = Instant::now();
        let days = rt
            .block_on(shaobing_collector::retention::compact_once(
                &client,
                "shaobing",
                shaobing_wire::Timestamp::now().secs(),
            ))
            .expect("compaction");
        eprintln!(
            "compaction pass ({} days merged, then pre-aggregates built): {:.1} s",
            days.len(),
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let day =
            shaobing_collector::retention::cutoff_day(shaobing_wire::Timestamp::now().secs(), 0);
        let t = Duration::from_secs(60);
        let mut ready = false;
        while !ready && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(500));
            let (states, built) = rt.block_on(async {
                (
                    shaobing_collector::query::day_states(&client, "shaobing", t).await,
                    shaobing_collector::query::day_summary_keys(&client, "shaobing", t).await,
                )
            });
            let (Ok(states), Ok(built)) = (states, built) else {
                continue;
            };
            ready = states
                .clean_parts
                .iter()
                .chain(&states.base_parts)
                .any(|k| k.0 == day && built.contains(k));
        }
        eprintln!(
            "today: {} rows added; its merged part pre-aggregated: {ready} (after {:.1} s)",
            today_rows.saturating_sub(today),
            started.elapsed().as_secs_f64()
        );
        let new_rows = env_u64("TODAY_NEW_ROWS");
        if new_rows > 0 {
            let salt = u64::try_from(shaobing_wire::Timestamp::now().micros()).unwrap_or(0)
                % 1_000_000_000;
            sql(&fill_sql(
                base + 2_000_000_000 + salt,
                new_rows,
                SPREAD_5_MIN,
            ));
            sql(&format!(
                "INSERT INTO shaobing.incidents SELECT * FROM shaobing.incidents \
                 WHERE ts >= toStartOfDay(now()) AND ts < now() - 600 LIMIT {}",
                new_rows / 10
            ));
        }
        eprintln!(
            "today: {} rows (FINAL {}) in {} active parts",
            sql("SELECT count() FROM shaobing.incidents WHERE ts >= toStartOfDay(now())").trim(),
            sql("SELECT count() FROM shaobing.incidents FINAL WHERE ts >= toStartOfDay(now())").trim(),
            sql("SELECT count() FROM system.parts WHERE database = 'shaobing' AND table = 'incidents' \
                 AND active AND partition = toString(toYYYYMMDD(now()))")
            .trim()
        );
    }
    if sql("SELECT count() FROM shaobing.sensor_heartbeats").trim() == "0" {
        sql(HEARTBEATS_SQL);
    }
    // An incident of the last hour and an attack of the last day, for the
    // detail pages. The synthetic ids are random (v4), not the sensor's
    // time-ordered v7: their lookups cannot be bounded by time, the worst
    // case.
    let incident_id = sql(
        "SELECT toString(id) FROM shaobing.incidents WHERE ts >= now() - 3600 AND kind = 'leak' LIMIT 1",
    )
    .trim()
    .to_string();
    let attack_id = sql(
        "SELECT attack_id FROM shaobing.incidents WHERE ts >= now() - 86400 AND kind = 'volumetric' LIMIT 1",
    )
    .trim()
    .to_string();
    eprintln!(
        "{} rows, {} active parts",
        sql("SELECT count() FROM shaobing.incidents").trim(),
        sql("SELECT count() FROM system.parts WHERE database = 'shaobing' AND table = 'incidents' AND active").trim()
    );

    let incident_path = format!("/api/v1/incidents/{incident_id}");
    let attack_path = format!("/api/v1/attacks/{attack_id}");
    let queries = [
        (
            "last 24 h for one host (ip=10.3.7.1)",
            "/api/v1/incidents?since=24h&ip=10.3.7.1&limit=100",
        ),
        (
            "last 24 h of one host's attacks (kind=volumetric, ip)",
            "/api/v1/incidents?since=24h&kind=volumetric&ip=10.3.7.1",
        ),
        (
            "last 24 h, critical leaks, first page",
            "/api/v1/incidents?since=24h&kind=leak&severity=critical&limit=100",
        ),
        ("summary of the last 7 days", "/api/v1/summary?since=7d"),
        ("summary of the last 24 h", "/api/v1/summary?since=24h"),
        ("console: overview of the last 24 h", "/api/v1/overview?since=24h"),
        ("console: overview of the last 7 days", "/api/v1/overview?since=7d"),
        (
            "console: incident list, last 24 h, first page of 50",
            "/api/v1/incidents?since=24h&limit=50",
        ),
        (
            "console: Community ID pivot, last 24 h",
            "/api/v1/incidents?since=24h&community_id=1%3AUyVFQeW%2FpsmHy%2B7cH56975gg3%2Fo%3D&limit=50",
        ),
        ("console: leak detail (random v4 id)", incident_path.as_str()),
        ("console: attack detail (random v4 id)", attack_path.as_str()),
        ("console: sensors", "/api/v1/sensors"),
    ];
    println!("| query | runs | median ms | p95 ms | response bytes |");
    println!("|---|---|---|---|---|");
    for (name, path) in queries {
        // A query that fails its warm-up is reported once and not repeated
        // (at 100 million rows some exceed the collector's time limit).
        if let Err(e) = get(&addr, &token, path) {
            println!("| {name} | 0 | failed: {e} | | |");
            continue;
        }
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut failed = None;
        for _ in 0..runs {
            match get(&addr, &token, path) {
                Ok((t, b)) => {
                    times.push(t);
                    bytes = b;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            println!("| {name} | {} | failed: {e} | | |", times.len());
            continue;
        }
        let (median, p95) = stats(times);
        println!("| {name} | {runs} | {median:.1} | {p95:.1} | {bytes} |");
    }
}
