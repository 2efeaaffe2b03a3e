//! Ingest load generator for `make bench` (see docs/BENCHMARKS.md,
//! "Collector"): posts realistic incidents to a running collector over
//! several keep-alive HTTP/1.1 connections and reports acknowledged
//! incidents per second (an acknowledgement means "stored in ClickHouse").
//!
//! ```text
//! cargo run --release -p shaobing-collector --example loadgen -- \
//!     ADDR TOKEN [TOTAL] [BATCH] [CONNECTIONS] [gzip]
//! ```
//!
//! Every incident has a unique id; the bodies are generated before the clock
//! starts, so the figure measures the collector and ClickHouse, not JSON
//! generation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A leak (4 in 5) or a volumetric update (1 in 5), as a sensor sends them.
fn incident(n: u64, now_ms: u64) -> Value {
    let ms = now_ms - (n * 7919) % 86_400_000;
    let id = format!(
        "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        (n >> 48) & 0xfff,
        (n >> 36) & 0xfff,
        n & 0xffff_ffff_ffff
    );
    let secs = ms / 1000;
    let ts = time_rfc3339(secs, (ms % 1000) * 1000 + n % 1000);
    let host = format!("10.{}.{}.{}", n % 4, (n / 4) % 250, (n / 1000) % 250 + 1);
    if n.is_multiple_of(5) {
        json!({
            "id": id, "schema": 1, "sensor": "bench", "kind": "volumetric",
            "event": "attack_update", "signature": "volumetric/syn_flood", "severity": "high",
            "ts": ts, "src_ip": null, "dst_ip": host, "src_port": null, "dst_port": 443,
            "proto": "tcp", "community_id": null, "direction": "inbound",
            "attack_id": format!("{:08x}-0000-7000-8000-{:012x}", ms >> 16, (n / 100) & 0xffff_ffff_ffff),
            "vector": "syn_flood", "pps": 120_000 + n % 1000, "bps": 61_440_000,
            "peak_pps": 150_000, "peak_bps": 76_800_000, "packets": 1_200_000 + n, "bytes": 64_800_000,
            "top_sources": [{"ip": "198.51.100.7", "packets": 5000}, {"ip": "203.0.113.9", "packets": 4100}],
            "started_at": ts
        })
    } else {
        let sigs = [
            "classification-marking",
            "cn-national-id",
            "bank-card",
            "credential-password",
        ];
        json!({
            "id": id, "schema": 1, "sensor": "bench", "kind": "leak", "event": "leak",
            "signature": sigs[(n % 4) as usize], "severity": "critical",
            "ts": ts, "src_ip": host, "dst_ip": format!("203.0.113.{}", n % 200 + 1),
            "src_port": 40000 + n % 20000, "dst_port": 80, "proto": "tcp",
            "community_id": "1:UyVFQeW/psmHy+7cH56975gg3/o=", "direction": "outbound",
            "match_count": 1 + n % 3, "app_proto": "http", "excerpt": "110101********123X"
        })
    }
}

fn time_rfc3339(secs: u64, micros: u64) -> String {
    let t = shaobing_wire::Timestamp::from_parts(secs as i64, (micros % 1_000_000) as u32);
    t.to_string()
}

async fn post(
    stream: &mut BufReader<TcpStream>,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let s = stream.get_mut();
    s.write_all(head).await?;
    s.write_all(body).await?;
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9440".into());
    let token = args.get(2).cloned().unwrap_or_default();
    let total: u64 = arg(&args, 3, 600_000);
    let batch: u64 = arg(&args, 4, 1000);
    let conns: usize = arg(&args, 5, 4);
    let gzip = args.get(6).is_some_and(|s| s == "gzip");
    let now_ms = shaobing_wire::Timestamp::now().millis() as u64;
    let seed = now_ms << 20;

    eprintln!("generating {total} incidents in batches of {batch} (gzip: {gzip})");
    let mut bodies = Vec::new();
    let mut json_bytes = 0usize;
    for b in 0..total.div_ceil(batch) {
        let items: Vec<Value> = (b * batch..((b + 1) * batch).min(total))
            .map(|n| incident(seed + n, now_ms))
            .collect();
        let body = serde_json::to_vec(&items)?;
        json_bytes += body.len();
        let body = if gzip {
            use std::io::Write as _;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body)?;
            e.finish()?
        } else {
            body
        };
        bodies.push((items.len(), body));
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    eprintln!(
        "{} requests, {:.0} bytes of JSON per incident; posting over {conns} connections",
        bodies.len(),
        json_bytes as f64 / total as f64
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let bodies = bodies.clone();
        let next = next.clone();
        let addr = addr.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = BufReader::new(TcpStream::connect(&addr).await?);
            let mut acked = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((n, body)) = bodies.get(i) else {
                    break;
                };
                let head = format!(
                    "POST /api/v1/incidents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\n{}Content-Length: {}\r\n\r\n",
                    if gzip { "Content-Encoding: gzip\r\n" } else { "" },
                    body.len()
                );
                let (status, text) = post(&mut stream, head.as_bytes(), body).await?;
                if status != 200 {
                    anyhow::bail!("HTTP {status}: {text}");
                }
                acked += *n as u64;
            }
            Ok::<u64, anyhow::Error>(acked)
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "acknowledged {acked} incidents in {secs:.2} s: {:.0} incidents/s ({:.1} MB/s of JSON)",
        acked as f64 / secs,
        json_bytes as f64 / secs / 1e6
    );
    Ok(())
}
