//! Cluster mode against a real 2 shards x 2 replicas ClickHouse 18.16
//! cluster with ZooKeeper (skipped with a reason when `zookeeper` or
//! `java` is missing; `make deps` installs them).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use shaobing_collector::Config;
use shaobing_testkit::cluster::{cluster_available, Cluster};
use tokio::sync::oneshot;

fn cluster_config(url: &str, cluster: &str) -> Config {
    let wal = temp_file("cluster-wal");
    let mut c = config_with(
        url,
        "",
        &format!("[wal]\ndir = \"{}\"\nfsync = false\n", wal.display()),
    );
    c.clickhouse.cluster = Some(cluster.to_string());
    c.clickhouse.timeout_ms = 20_000;
    c
}

/// A collector serving `config` on a free loopback port.
struct Collector {
    addr: std::net::SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Collector {
    async fn start(config: &Config) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(shaobing_collector::serve(config.clone(), listener, async {
            let _ = rx.await;
        }));
        Collector {
            addr,
            shutdown,
            task,
        }
    }

    /// `POST /api/v1/incidents` with the sensor token.
    async fn post(&self, items: Vec<Value>) -> shaobing_testkit::http::Response {
        request(
            self.addr,
            "POST",
            "/api/v1/incidents",
            Some(TOKEN),
            "application/json",
            &body(&items),
        )
        .await
    }

    /// Shuts it down, waiting up to 30 s.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

fn q(node: &shaobing_testkit::ClickHouseServer, sql: &str) -> String {
    node.query(sql).unwrap().trim().to_string()
}

/// Retries `sql` until it answers `want` (replication and distributed DDL
/// are asynchronous) or 60 s pass; returns the last answer.
fn eventually(node: &shaobing_testkit::ClickHouseServer, sql: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let got = node
            .query(sql)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether the cluster test can run here (prints why not).
fn cluster_runs_here() -> bool {
    if shaobing_testkit::Flavor::from_env() != shaobing_testkit::Flavor::Debian18 {
        eprintln!("skipping: the cluster runs on 18.16 only (chdb has no replicated engines)");
        return false;
    }
    if !cluster_available() {
        eprintln!("skipping: cluster test needs clickhouse-server, java and zookeeper (make deps)");
        return false;
    }
    true
}

/// Asserts that no node has the `shaobing` database (nothing was created).
fn nothing_created(cluster: &Cluster) {
    for node in &cluster.nodes {
        assert_eq!(
            q(
                node,
                "SELECT count() FROM system.databases WHERE name = 'shaobing'"
            ),
            "0"
        );
        assert_eq!(
            q(
                node,
                "SELECT count() FROM system.tables WHERE database = 'shaobing'"
            ),
            "0"
        );
    }
}

/// A value of the collector's `/metrics`.
async fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    let resp = request_to(
        addr,
        "GET",
        "/metrics",
        Some(ANALYST_TOKEN),
        "text/plain",
        b"",
        &[],
    )
    .await;
    assert_eq!(resp.status, 200);
    resp.body_text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_cluster_fails_migrate_naming_the_fault_and_creates_nothing() {
    if !cluster_runs_here() {
        return;
    }
    // 1 shard x 2 replicas; the second replica has no <macros>.
    let mut cluster =
        tokio::task::spawn_blocking(|| Cluster::start_with("shaobing_m", 1, 2, |node| node == 0))
            .await
            .unwrap()
            .unwrap();
    let url = cluster.nodes[0].http_url();
    let migrate_err = |config: Config| async move {
        shaobing_collector::migrate(&config)
            .await
            .unwrap_err()
            .to_string()
    };

    // A cluster name the server does not know.
    let e = migrate_err(cluster_config(&url, "no_such_cluster")).await;
    assert!(e.contains("no cluster named \"no_such_cluster\""), "{e}");
    nothing_created(&cluster);

    // A node without the shard and replica macros: named, with both.
    let e = migrate_err(cluster_config(&url, "shaobing_m")).await;
    assert!(
        e.contains("does not define the macro(s) shard and replica"),
        "{e}"
    );
    assert!(e.contains("of cluster \"shaobing_m\""), "{e}");
    // The entry node (s1r1) is fine: the message names the other one.
    let ports = q(
        &cluster.nodes[0],
        "SELECT port FROM system.clusters WHERE cluster = 'shaobing_m' ORDER BY replica_num",
    );
    let ports: Vec<&str> = ports.lines().collect();
    assert_eq!(ports.len(), 2);
    assert!(e.contains(&format!("node 127.0.0.1:{} ", ports[1])), "{e}");
    nothing_created(&cluster);

    // ZooKeeper down: said so, within the configured timeout.
    tokio::task::block_in_place(|| cluster.zookeeper.stop());
    let mut config = cluster_config(&url, "shaobing_m");
    config.clickhouse.timeout_ms = 15_000;
    let e = migrate_err(config).await;
    assert!(
        e.contains("ZooKeeper is not configured or not reachable"),
        "{e}"
    );
    nothing_created(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_by_two_cluster_stores_reads_and_expires_every_acknowledged_incident_once() {
    if !cluster_runs_here() {
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start("shaobing_c", 2, 2))
        .await
        .unwrap()
        .unwrap();
    let url = cluster.nodes[0].http_url();

    let config = cluster_config(&url, "shaobing_c");
    let applied = shaobing_collector::migrate(&config).await.unwrap();
    assert_eq!(
        applied,
        shaobing_collector::store::schema::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
    assert!(shaobing_collector::migrate(&config)
        .await
        .unwrap()
        .is_empty());
    for node in &cluster.nodes {
        assert_eq!(
            eventually(
                node,
                "SELECT engine FROM system.tables WHERE database = 'shaobing' AND name = 'incidents_local'",
                "ReplicatedReplacingMergeTree"
            ),
            "ReplicatedReplacingMergeTree"
        );
        assert_eq!(
            q(node, "SELECT engine FROM system.tables WHERE database = 'shaobing' AND name = 'incidents'"),
            "Distributed"
        );
    }

    // A collector on node s1r1.
    let collector = Collector::start(&config).await;
    let addr = collector.addr;
    let post = |items: Vec<Value>| collector.post(items);

    // 400 incidents in batches of 10; replica s2r2 is killed half-way.
    let mut acked = 0u32;
    for batch in 0..40u32 {
        if batch == 20 {
            let node = &mut cluster.nodes[3];
            tokio::task::block_in_place(|| node.kill_in_place());
        }
        let items: Vec<Value> = (0..10).map(|i| leak(batch * 10 + i)).collect();
        let resp = post(items).await;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        acked += 10;
    }
    // A re-delivery of 50 of them is stored once.
    let resp = post((0..10).map(leak).collect()).await;
    assert_eq!(resp.status, 200);

    // Reads keep working with the replica down.
    let resp = request_to(
        addr,
        "GET",
        "/api/v1/incidents?since=all&limit=10",
        Some(ANALYST_TOKEN),
        "text/plain",
        b"",
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // The killed replica comes back. Rows it had taken and not yet
    // replicated when it died become visible again (nothing acknowledged
    // is lost); ON CLUSTER DDL below also waits for every node.
    {
        let node = &mut cluster.nodes[3];
        tokio::task::block_in_place(|| node.restart()).unwrap();
    }
    // Every acknowledged incident, once, from every node.
    for node in &cluster.nodes {
        let n = tokio::task::block_in_place(|| {
            eventually(
                node,
                "SELECT count() FROM shaobing.incidents FINAL",
                &acked.to_string(),
            )
        });
        assert_eq!(n, acked.to_string());
    }
    // Both shards hold some.
    for node in [&cluster.nodes[0], &cluster.nodes[2]] {
        let local: u64 = q(node, "SELECT count() FROM shaobing.incidents_local FINAL")
            .parse()
            .unwrap();
        assert!(local > 50 && local < u64::from(acked), "{local}");
    }
    let (status, v) = {
        let resp = request_to(
            addr,
            "GET",
            "/api/v1/incidents?since=all&limit=1000",
            Some(ANALYST_TOKEN),
            "text/plain",
            b"",
            &[],
        )
        .await;
        (
            resp.status,
            serde_json::from_slice::<Value>(&resp.body).unwrap(),
        )
    };
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["incidents"].as_array().unwrap().len(), acked as usize);
    let resp = request_to(
        addr,
        "GET",
        "/api/v1/summary?since=all",
        Some(ANALYST_TOKEN),
        "text/plain",
        b"",
        &[],
    )
    .await;
    let s: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(s["total"], json!(acked), "{s}");

    // Retention drops an old day on every shard and replica.
    let old: Vec<Value> = (1000..1010)
        .map(|n| {
            let mut v = leak(n);
            v["ts"] = json!("2026-10-01T12:00:00.000001Z");
            v
        })
        .collect();
    assert_eq!(post(old).await.status, 200);
    let client = shaobing_collector::store::client(&config.clickhouse);
    let mut retention = config.retention.clone();
    retention.incidents_days = 30;
    let metrics = shaobing_collector::metrics::Metrics::default();
    // "Now" is 2026-11-30.
    let dropped = shaobing_collector::retention::run_once_on(
        &client,
        "shaobing",
        Some("shaobing_c"),
        Duration::from_secs(170),
        &retention,
        1_795_996_800,
        &metrics,
    )
    .await
    .unwrap();
    assert!(
        dropped
            .iter()
            .any(|d| d.table == "incidents" && d.partition == "20261001"),
        "{dropped:?}"
    );
    for node in &cluster.nodes {
        let n = tokio::task::block_in_place(|| {
            eventually(
                node,
                "SELECT count() FROM shaobing.incidents_local WHERE toYYYYMMDD(ts) = 20261001",
                "0",
            )
        });
        assert_eq!(n, "0");
    }
    assert_eq!(
        q(
            &cluster.nodes[0],
            "SELECT count() FROM shaobing.incidents FINAL"
        ),
        acked.to_string()
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_down_during_ingest_acknowledges_through_the_wal_and_stores_everything_once_after(
) {
    if !cluster_runs_here() {
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start("shaobing_z", 2, 2))
        .await
        .unwrap()
        .unwrap();
    let url = cluster.nodes[0].http_url();
    let mut config = cluster_config(&url, "shaobing_z");
    shaobing_collector::migrate(&config).await.unwrap();
    // Every insert is bounded well inside the outage.
    config.clickhouse.timeout_ms = 5_000;
    let collector = Collector::start(&config).await;
    let addr = collector.addr;
    let post = |items: Vec<Value>| collector.post(items);
    let readonly = "SELECT min(is_readonly) FROM system.replicas WHERE database = 'shaobing'";

    // 400 incidents in batches of 10: 100 before ZooKeeper stops, 200 while
    // it is down, 100 after it is back.
    let mut acked = 0u32;
    for batch in 0..40u32 {
        if batch == 10 {
            tokio::task::block_in_place(|| {
                cluster.zookeeper.stop();
                // Every replicated table of every node has noticed.
                for node in &cluster.nodes {
                    assert_eq!(eventually(node, readonly, "1"), "1");
                }
            });
        }
        if batch == 30 {
            assert!(metric(addr, "shaobing_collector_ingested_via_wal_total").await > 0);
            tokio::task::block_in_place(|| cluster.zookeeper.restart()).unwrap();
        }
        let items: Vec<Value> = (0..10).map(|i| leak(batch * 10 + i)).collect();
        let resp = post(items).await;
        assert_eq!(resp.status, 200, "batch {batch}: {}", resp.body_text());
        acked += 10;
        if batch == 20 {
            // A re-delivery of a batch acknowledged during the outage.
            let resp = post((100..110).map(leak).collect()).await;
            assert_eq!(resp.status, 200, "{}", resp.body_text());
        }
    }
    assert!(metric(addr, "shaobing_collector_ingested_via_wal_total").await >= 200);

    // The WAL drains into the cluster once ZooKeeper is back: every
    // acknowledged incident, once, read from every node.
    let want = format!("{acked}\t{acked}");
    for node in &cluster.nodes {
        let got = tokio::task::block_in_place(|| {
            eventually(
                node,
                "SELECT count(), uniqExact(id) FROM shaobing.incidents FINAL",
                &want,
            )
        });
        assert_eq!(got, want);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(addr, "shaobing_collector_wal_bytes").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL never drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metric(addr, "shaobing_collector_wal_replayed_incidents_total").await
            >= metric(addr, "shaobing_collector_ingested_via_wal_total").await
    );
    for node in &cluster.nodes {
        let got = tokio::task::block_in_place(|| eventually(node, readonly, "0"));
        assert_eq!(got, "0", "replicas writable again");
    }
    let resp = request_to(
        addr,
        "GET",
        "/api/v1/incidents?since=all&limit=1000",
        Some(ANALYST_TOKEN),
        "text/plain",
        b"",
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["incidents"].as_array().unwrap().len(), acked as usize);
    collector.stop().await;
}
