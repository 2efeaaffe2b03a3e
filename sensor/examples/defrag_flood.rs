//! Times the defragmenter under a fragment flood that exhausts its table:
//! N first fragments (8 bytes each, one microsecond apart), each with a
//! new identification, none ever completed, through the default limits
//! (4,096 datagrams). `cargo run --release -p shaobing-sensor --example
//! defrag_flood [N]` (default 1,000,000).

use std::time::Instant;

use shaobing_sensor::defrag::{DatagramKey, Defrag, DefragLimits};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut d = Defrag::new(DefragLimits::default());
    let src = "192.0.2.7".parse().expect("address");
    let dst = "198.51.100.1".parse().expect("address");
    let started = Instant::now();
    for id in 0..n {
        let key = DatagramKey {
            src,
            dst,
            proto: 17,
            id,
        };
        let _ = d.push(i64::from(id), key, 0, true, &[0; 8]);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} fragments in {secs:.3} s ({:.0} fragments/s); {} in progress, {} evicted",
        f64::from(n) / secs,
        d.in_progress(),
        d.stats().evicted
    );
}
