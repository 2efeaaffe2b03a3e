//! Scans the criterion bench payload (16 MiB of mixed traffic, see
//! `benches/support/corpus.rs`) N times with the default pack, for
//! measuring CPU time on a busy machine, where criterion's wall-clock
//! figures suffer from other processes:
//!
//! ```text
//! cargo build --release -p shaobing-signatures --example scan_loop
//! perf stat -e task-clock target/release/examples/scan_loop 0    # payload build only
//! perf stat -e task-clock target/release/examples/scan_loop 40   # + 40 scans (671 MB)
//! ```
//!
//! Throughput = 40 × 16 MiB / (difference of the two task-clock times).

use shaobing_signatures::SignatureSet;

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let set = SignatureSet::default_pack()?;
    let (payload, _) = corpus::build(16 << 20);
    let mut hits = 0usize;
    for _ in 0..n {
        set.scan(std::hint::black_box(&payload), |_| hits += 1);
    }
    println!("{n} scans of {} bytes: {hits} hits", payload.len());
    Ok(())
}
