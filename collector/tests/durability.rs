//! Durability: ClickHouse outages and collector crashes with the
//! write-ahead log on, against a real ClickHouse and (for the crash) the
//! real `shaobing-collector` binary.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use shaobing_testkit::{free_port, http};

fn wal_section(dir: &Path) -> String {
    format!(
        "[wal]\ndir = \"{}\"\nmax_bytes = 16777216\nsegment_bytes = 65536\nfsync = true\n",
        dir.display()
    )
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
                .count()
        })
        .unwrap_or(0)
}

async fn metric(h: &Harness, name: &str) -> u64 {
    let (_, m) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    m.as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap()
        .parse()
        .unwrap()
}

/// `SELECT count(), uniqExact(id) FROM incidents FINAL`.
async fn stored(h: &Harness) -> (u64, u64) {
    let t = h
        .sql("SELECT count(), uniqExact(id) FROM shaobing.incidents FINAL FORMAT TSV")
        .await;
    let mut it = t.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_mid_stream_loses_and_duplicates_nothing_acknowledged() {
    if skip() {
        return;
    }
    let wal = tempfile::tempdir().unwrap();
    let mut h = Harness::start_full("", &wal_section(wal.path())).await;
    let mut acked = BTreeSet::new();
    let mut n = 0u32;
    for i in 0..45 {
        if i == 15 {
            // A crash: also the fastest stop while the collector holds
            // keep-alive connections.
            tokio::task::block_in_place(|| h.ch.kill_in_place());
        }
        if i == 30 {
            tokio::task::block_in_place(|| h.ch.restart().unwrap());
        }
        let items: Vec<Value> = (0..5)
            .map(|_| {
                n += 1;
                leak(n)
            })
            .collect();
        let (status, resp) = h.post(Some(TOKEN), &body(&items)).await;
        assert_eq!(status, 200, "batch {i}: {resp}");
        for it in &items {
            acked.insert(it["id"].as_str().unwrap().to_string());
        }
    }
    assert!(metric(&h, "shaobing_collector_ingested_via_wal_total").await >= 75);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&h, "shaobing_collector_wal_bytes").await > 0 {
        assert!(Instant::now() < deadline, "WAL not drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(segments(wal.path()), 0, "replayed segments are deleted");
    assert_eq!(stored(&h).await, (acked.len() as u64, acked.len() as u64));
    let ids: BTreeSet<String> = h
        .sql("SELECT toString(id) FROM shaobing.incidents FINAL FORMAT TSV")
        .await
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ids, acked);
}

struct Collector(Child);

impl Collector {
    fn start(config: &Path, port: u16) -> Collector {
        let child = Command::new(env!("CARGO_BIN_EXE_shaobing-collector"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let c = Collector(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let addr = format!("127.0.0.1:{port}");
            if http::get(&addr, "/healthz", Duration::from_secs(1)).is_ok_and(|r| r.status == 200) {
                return c;
            }
            assert!(Instant::now() < deadline, "collector did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&mut self, sig: i32) {
        let pid = libc::pid_t::try_from(self.0.id()).unwrap();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(pid, sig);
        }
        let _ = self.0.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_after_acknowledging_replays_its_wal_on_restart() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let mut h = Harness::start().await;
    h.stop_collector().await.unwrap();
    let port = free_port().unwrap();
    let text = format!(
        r#"listen = "127.0.0.1:{port}"
[clickhouse]
url = "{}"
timeout_ms = 2000
[retry]
max_attempts = 1
initial_backoff_ms = 20
max_backoff_ms = 200
[dead_letter]
path = "{}"
[[sensors]]
name = "{SENSOR}"
token_sha256 = "{}"
{}"#,
        h.ch.http_url(),
        dir.path().join("dead-letter.ndjson").display(),
        shaobing_collector::auth::hash_token(TOKEN),
        wal_section(&wal)
    );
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, text).unwrap();

    // ClickHouse is down: every acknowledgement comes from the WAL.
    tokio::task::block_in_place(|| h.ch.kill_in_place());
    let mut collector = tokio::task::block_in_place(|| Collector::start(&config, port));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut acked = 0;
    for b in 0..20u32 {
        let items: Vec<Value> = (0..5).map(|k| leak(b * 5 + k + 1)).collect();
        let r = request(
            addr,
            "POST",
            "/api/v1/incidents",
            Some(TOKEN),
            "application/json",
            &body(&items),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body_text());
        acked += items.len() as u64;
    }
    collector.signal(libc::SIGKILL);
    assert!(segments(&wal) > 0, "acknowledged incidents are in the WAL");

    tokio::task::block_in_place(|| h.ch.restart().unwrap());
    let mut collector = tokio::task::block_in_place(|| Collector::start(&config, port));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (count, distinct) = stored(&h).await;
        if count == acked {
            assert_eq!(distinct, acked);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {acked} replayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while segments(&wal) > 0 {
        assert!(Instant::now() < deadline, "WAL segments not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    collector.signal(libc::SIGTERM);
    assert_eq!(
        collector.0.try_wait().unwrap().map(|s| s.success()),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_clickhouse_refuses_goes_to_the_dead_letter_file_with_the_reason_and_is_not_retried() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    // A schema drift ClickHouse cannot parse our rows against: `schema` is
    // one byte narrower than the two the collector sends.
    h.sql("ALTER TABLE shaobing.incidents MODIFY COLUMN schema UInt8")
        .await;
    let (status, resp) = h.post(Some(TOKEN), &body(&[leak(1), leak(2)])).await;
    assert_eq!(status, 422, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("dead-letter"),
        "{resp}"
    );
    let text = std::fs::read_to_string(&h.config.dead_letter.path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("Code:"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["incident"]["id"], leak(2)["id"]);
    assert_eq!(lines[1]["incident"]["sensor"], SENSOR);
    // Permanent: one attempt, not `retry.max_attempts` (2).
    assert_eq!(
        metric(
            &h,
            "shaobing_collector_clickhouse_errors_total{class=\"permanent\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &h,
            "shaobing_collector_clickhouse_errors_total{class=\"transient\"}"
        )
        .await,
        0
    );
    assert_eq!(
        metric(&h, "shaobing_collector_dead_lettered_incidents_total").await,
        2
    );
    let _ = std::fs::remove_file(&h.config.dead_letter.path);
}
