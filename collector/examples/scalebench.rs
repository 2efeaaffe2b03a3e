//! Sizing figures for `docs/scale.md` (`scripts/bench-scale.sh`, run by
//! `make bench`): the same realistic ingest (`examples/loadgen.rs`, run as
//! a child process) into
//!
//! 1. one ClickHouse 18.16 server (the default, single-node schema),
//! 2. cluster mode on 1 shard (1 replica, ZooKeeper),
//! 3. cluster mode on 2 shards (1 replica each),
//!
//! each time with one collector served in-process, then the stored size:
//! bytes on disk per incident after `OPTIMIZE ... FINAL` (every part
//! merged, LZ4), summed over the nodes, and the largest columns.
//!
//! ```text
//! cargo run --release -p shaobing-collector --example scalebench -- \
//!     LOADGEN_BINARY [TOTAL] [CONNECTIONS]
//! ```

use std::process::Command;
use std::time::Duration;

use shaobing_collector::{auth, Config};
use shaobing_testkit::cluster::Cluster;
use shaobing_testkit::ClickHouseServer;

const TOKEN: &str = "scale-sensor-token";

fn config(url: &str, cluster: Option<&str>, dead_letter: &std::path::Path) -> Config {
    let mut c = Config::parse(&format!(
        r#"
listen = "127.0.0.1:0"
[clickhouse]
url = "{url}"
timeout_ms = 120000
[batch]
max_rows = 20000
max_delay_ms = 200
queue_batches = 64
max_inflight = 4
[limits]
max_body_bytes = 16777216
max_items = 10000
[dead_letter]
path = "{}"
[[sensors]]
name = "bench"
token_sha256 = "{}"
"#,
        dead_letter.display(),
        auth::hash_token(TOKEN)
    ))
    .expect("config");
    c.clickhouse.cluster = cluster.map(str::to_string);
    c
}

fn sql(node: &ClickHouseServer, q: &str) -> String {
    node.query(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .trim()
        .to_string()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let loadgen = args
        .get(1)
        .cloned()
        .expect("usage: scalebench LOADGEN [TOTAL] [CONNS]");
    let total: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(300_000);
    let conns: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    for (label, shards) in [
        ("single node", 0usize),
        ("cluster, 1 shard", 1),
        ("cluster, 2 shards", 2),
    ] {
        let (single, cluster) = if shards == 0 {
            (Some(ClickHouseServer::start()?), None)
        } else {
            (None, Some(Cluster::start("scale", shards, 1)?))
        };
        let nodes: Vec<&ClickHouseServer> = match (&single, &cluster) {
            (Some(s), _) => vec![s],
            (_, Some(c)) => c.nodes.iter().collect(),
            _ => unreachable!(),
        };
        let cfg = config(
            &nodes[0].http_url(),
            cluster.as_ref().map(|_| "scale"),
            &tmp.path().join(format!("dl-{shards}")),
        );
        rt.block_on(shaobing_collector::migrate(&cfg))?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(shaobing_collector::serve(cfg, listener, async {
            let _ = rx.await;
        }));
        let out = Command::new(&loadgen)
            .args([
                addr.to_string(),
                TOKEN.to_string(),
                total.to_string(),
                "1000".into(),
                conns.to_string(),
            ])
            .output()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            anyhow::bail!("loadgen failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = tx.send(());
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), task).await });
        let table = if shards == 0 {
            "incidents"
        } else {
            "incidents_local"
        };
        let (mut bytes, mut rows) = (0u64, 0u64);
        let mut columns: Vec<(String, u64)> = Vec::new();
        for n in &nodes {
            // 18.16 refuses a whole-table `OPTIMIZE ... FINAL` on a
            // replicated table ("Unknown log entry type"): per partition.
            let parts = sql(
                n,
                &format!(
                    "SELECT DISTINCT partition FROM system.parts \
                     WHERE database = 'shaobing' AND table = '{table}' AND active"
                ),
            );
            for p in parts.lines() {
                let p = p.trim_matches('\'');
                if let Err(e) = n.query(&format!(
                    "OPTIMIZE TABLE shaobing.{table} PARTITION {p} FINAL"
                )) {
                    eprintln!("optimize {table} partition {p}: {e}");
                }
            }
            let r = sql(
                n,
                &format!(
                    "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts \
                     WHERE database = 'shaobing' AND table = '{table}' AND active"
                ),
            );
            let mut it = r.split('\t');
            bytes += it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            rows += it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            for l in sql(
                n,
                &format!(
                    "SELECT name, data_compressed_bytes FROM system.columns \
                     WHERE database = 'shaobing' AND table = '{table}'"
                ),
            )
            .lines()
            {
                if let Some((name, b)) = l.split_once('\t') {
                    let b: u64 = b.parse().unwrap_or(0);
                    match columns.iter_mut().find(|(c, _)| c == name) {
                        Some(e) => e.1 += b,
                        None => columns.push((name.to_string(), b)),
                    }
                }
            }
        }
        columns.sort_by_key(|c| std::cmp::Reverse(c.1));
        let top: Vec<String> = columns
            .iter()
            .take(6)
            .map(|(c, b)| format!("{c} {:.1}", *b as f64 / rows.max(1) as f64))
            .collect();
        println!(
            "{label}: {line}; stored {rows} rows, {:.1} bytes/incident on disk (largest columns, bytes/incident: {})",
            bytes as f64 / rows.max(1) as f64,
            top.join(", ")
        );
    }
    Ok(())
}
