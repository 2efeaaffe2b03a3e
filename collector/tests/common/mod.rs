//! Shared test harness: a private ClickHouse (testkit), the collector served
//! in-process on 127.0.0.1:0, and a real HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use shaobing_collector::query::QueryFilter;
use shaobing_collector::store::row::IncidentRow;
use shaobing_collector::{auth, Config};
use shaobing_testkit::{clickhouse_available, http, ClickHouseServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "s3cret-token-1";
pub const SENSOR: &str = "sensor-1";
pub const ANALYST_TOKEN: &str = "analyst-token-9";

/// Prints why and returns true when no ClickHouse server is installed.
pub fn skip() -> bool {
    if clickhouse_available() {
        return false;
    }
    eprintln!("skipping: clickhouse-server not installed (install it or set CLICKHOUSE_SERVER)");
    true
}

pub fn config_for(url: &str, extra_batch: &str) -> Config {
    config_with(url, extra_batch, "")
}

/// A unique file in the temp dir (dead-letter files of tests).
pub fn temp_file(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("shaobing-test-{}-{n}-{name}", std::process::id()))
}

/// The test config plus `extra` TOML sections at the end.
pub fn config_with(url: &str, extra_batch: &str, extra: &str) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
[clickhouse]
url = "{url}"
database = "shaobing"
timeout_ms = 5000
[batch]
max_rows = 5000
max_delay_ms = 50
queue_batches = 16
{extra_batch}
[limits]
max_body_bytes = 65536
max_items = 10
[retry]
max_attempts = 2
initial_backoff_ms = 20
max_backoff_ms = 200
[dead_letter]
path = "{}"
[[sensors]]
name = "{SENSOR}"
token_sha256 = "{}"
[[analysts]]
name = "soc"
token_sha256 = "{}"
{extra}
"#,
        temp_file("dead-letter.ndjson").display(),
        auth::hash_token(TOKEN),
        auth::hash_token(ANALYST_TOKEN)
    );
    Config::parse(&text).unwrap()
}

pub struct Harness {
    pub config: Config,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Last: dropped after the collector has stopped.
    pub ch: ClickHouseServer,
}

impl Drop for Harness {
    /// Stops the collector first: ClickHouse waits for open (keep-alive)
    /// HTTP connections before it exits on SIGTERM, and the collector's
    /// client holds some.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
                })
            });
        }
    }
}

impl Harness {
    /// ClickHouse + migrated schema + collector.
    pub async fn start() -> Harness {
        Self::start_with("").await
    }

    pub async fn start_with(extra_batch: &str) -> Harness {
        Self::start_full(extra_batch, "").await
    }

    /// With extra config sections (e.g. `[wal]`).
    pub async fn start_full(extra_batch: &str, extra: &str) -> Harness {
        Self::start_tweaked(extra_batch, extra, |_| {}).await
    }

    /// With extra config sections and a last change to the parsed config.
    pub async fn start_tweaked(
        extra_batch: &str,
        extra: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Harness {
        let ch = tokio::task::spawn_blocking(ClickHouseServer::start)
            .await
            .unwrap()
            .unwrap();
        let mut config = config_with(&ch.http_url(), extra_batch, extra);
        tweak(&mut config);
        shaobing_collector::migrate(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(shaobing_collector::serve(config.clone(), listener, async {
            let _ = rx.await;
        }));
        let h = Harness {
            ch,
            config,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        };
        // Plain HTTP only (the TLS tests run no compaction of their own).
        if h.config.tls.is_none() {
            h.wait_for_compaction_pass().await;
        }
        h
    }

    /// Waits until the collector's start-up compaction pass has ended, so
    /// that a test's own passes and its checks of the tables never race
    /// it (the next comes `retention.compact_interval_s`, 300 s, later).
    async fn wait_for_compaction_pass(&self) {
        const PASSES: &str = "shaobing_collector_compaction_passes_total ";
        for _ in 0..600 {
            let (_, m) = self.get(Some(ANALYST_TOKEN), "/metrics").await;
            let passes = m
                .as_str()
                .and_then(|m| m.lines().find_map(|l| l.strip_prefix(PASSES)))
                .and_then(|n| n.parse::<u64>().ok());
            if passes.is_some_and(|n| n > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the collector's start-up compaction pass did not end within 60 s");
    }

    /// Stops the collector gracefully and returns what `serve` returned.
    pub async fn stop_collector(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap(),
            None => Ok(()),
        }
    }

    pub async fn post(&self, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        self.post_as(token, "application/json", body).await
    }

    pub async fn post_as(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let resp = request(
            self.addr,
            "POST",
            "/api/v1/incidents",
            token,
            content_type,
            body,
        )
        .await;
        let v =
            serde_json::from_slice(&resp.body).unwrap_or_else(|_| Value::String(resp.body_text()));
        (resp.status, v)
    }

    /// `GET path` with a bearer token; the body as JSON (or a string).
    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let resp = request_to(self.addr, "GET", path, token, "text/plain", b"", &[]).await;
        let v =
            serde_json::from_slice(&resp.body).unwrap_or_else(|_| Value::String(resp.body_text()));
        (resp.status, v)
    }

    /// Runs SQL on the test ClickHouse and returns the text answer.
    pub async fn sql(&self, sql: &str) -> String {
        let ch = self.ch.addr();
        let sql = sql.to_string();
        let out = tokio::task::spawn_blocking(move || {
            http::request(
                &ch,
                "POST",
                "/",
                &[],
                sql.as_bytes(),
                Duration::from_secs(30),
            )
            .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(out.status, 200, "{}", out.body_text());
        out.body_text()
    }

    pub async fn rows(&self) -> Vec<IncidentRow> {
        let filter = QueryFilter {
            since: None,
            until: None,
            kind: None,
            limit: 1000,
            ..Default::default()
        };
        shaobing_collector::fetch_incidents(&self.config, &filter)
            .await
            .unwrap()
    }

    /// All stored rows including duplicates not yet merged (no FINAL).
    pub async fn raw_count(&self) -> u64 {
        let ch = self.ch.addr();
        let out = tokio::task::spawn_blocking(move || {
            http::request(
                &ch,
                "POST",
                "/",
                &[],
                b"SELECT count() FROM shaobing.incidents",
                Duration::from_secs(10),
            )
            .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(out.status, 200, "{}", out.body_text());
        out.body_text().trim().parse().unwrap()
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> http::Response {
    request_to(addr, method, path, token, content_type, body, &[]).await
}

/// A request with extra headers.
pub async fn request_to(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
    extra_headers: &[(&'static str, &str)],
) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let content_type = content_type.to_string();
    let body = body.to_vec();
    let path = path.to_string();
    let extra: Vec<(&'static str, String)> = extra_headers
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut headers = vec![("Content-Type", content_type.as_str())];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        for (k, v) in &extra {
            headers.push((k, v.as_str()));
        }
        http::request(
            &addr.to_string(),
            method,
            &path,
            &headers,
            &body,
            Duration::from_secs(30),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

/// A valid leak incident (wire JSON) with id suffix `n`.
pub fn leak(n: u32) -> Value {
    json!({
        "id": format!("019c0c4e-5a00-7000-8000-{n:012}"),
        "schema": 1,
        "sensor": "whatever-the-sensor-claims",
        "kind": "leak",
        "event": "leak",
        "signature": "classification-marking",
        "severity": "critical",
        "ts": format!("2026-11-29T04:19:{:02}.123456Z", n % 60),
        "src_ip": "10.1.2.3",
        "dst_ip": "203.0.113.80",
        "src_port": 40000,
        "dst_port": 80,
        "proto": "tcp",
        "community_id": "1:abc=",
        "direction": "outbound",
        "match_count": 2,
        "app_proto": "http",
        "excerpt": "绝*★ \"quoted\" \\ back"
    })
}

/// A valid volumetric incident with id suffix `n`.
pub fn volumetric(n: u32) -> Value {
    json!({
        "id": format!("018bd0c4-2000-7000-8000-{n:012}"),
        "schema": 1,
        "sensor": "s",
        "kind": "volumetric",
        "event": "attack_started",
        "signature": "syn-flood",
        "severity": "high",
        "ts": "2023-11-14T22:13:20.000042Z",
        "src_ip": "198.51.100.7",
        "dst_ip": "2001:db8::1",
        "src_port": null,
        "dst_port": null,
        "proto": "tcp",
        "community_id": null,
        "attack_id": "018bd0c4-2000-7000-8000-0000000000aa",
        "vector": "syn_flood",
        "pps": 120000,
        "bps": 61440000,
        "peak_pps": 150000,
        "peak_bps": 76800000,
        "packets": 1200000,
        "bytes": u64::MAX,
        "top_sources": [{"ip": "198.51.100.7", "packets": 5000}, {"ip": "2001:db8::99", "packets": 10}]
    })
}

pub fn body(items: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&Value::Array(items.to_vec())).unwrap()
}
