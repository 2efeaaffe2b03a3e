//! Build time, automaton memory and scan throughput of a large operator
//! pack: 10,000 literal patterns (100 signatures of 100 patterns each:
//! project code names, Chinese and ASCII), compiled in UTF-8 only and in
//! UTF-8 + GBK, next to the default pack. The figures in
//! `docs/BENCHMARKS.md` ("Leak detector") come from this program:
//!
//! ```text
//! cargo run --release -p shaobing-signatures --example large_pack
//! ```

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use shaobing_signatures::SignatureSet;

#[path = "../benches/support/corpus.rs"]
mod corpus;

const CJK: [&str; 16] = [
    "天", "地", "玄", "黄", "宇", "宙", "洪", "荒", "日", "月", "盈", "昃", "辰", "宿", "列", "张",
];

/// Deterministic pseudo-random numbers (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn pack(patterns: usize, encodings: &str) -> String {
    let mut rng = Mix(7);
    let mut out = String::new();
    let per = 100;
    for s in 0..patterns.div_ceil(per) {
        let _ = writeln!(
            out,
            "[[signature]]\nid = \"project-{s}\"\nname = \"Project names {s}\"\ndescription = \"code names\"\ncategory = \"classified\"\nseverity = \"high\"\nencodings = [{encodings}]\npatterns = ["
        );
        for p in 0..per.min(patterns - s * per) {
            let word = if p % 2 == 0 {
                let mut w = String::from("工程");
                for _ in 0..4 {
                    w.push_str(CJK[(rng.next() % 16) as usize]);
                }
                w
            } else {
                format!("PRJ-{:08X}-{}", rng.next() as u32, s)
            };
            let _ = writeln!(out, "  \"{word}\",");
        }
        out.push_str("]\n");
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn measure(name: &str, text: &str, payload: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let mut builds = Vec::new();
    let mut set = None;
    for _ in 0..5 {
        let t = Instant::now();
        set = Some(SignatureSet::from_sources(&[("large.toml", text)])?);
        builds.push(t.elapsed());
    }
    let Some(set) = set else { return Ok(()) };
    let mut scans = Vec::new();
    let mut hits = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        hits = 0;
        set.scan(payload, |_| hits += 1);
        scans.push(t.elapsed());
    }
    println!(
        "{name}: build median {:?} (parse + check + compile), automata {:.1} MB, scan {:.0} MB/s ({hits} hits over {} bytes)",
        median(builds),
        set.automaton_memory_usage() as f64 / 1e6,
        payload.len() as f64 / median(scans).as_secs_f64() / 1e6,
        payload.len()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (payload, _) = corpus::build(16 << 20);
    let mut builds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let set = SignatureSet::default_pack()?;
        builds.push(t.elapsed());
        std::hint::black_box(set);
    }
    let set = SignatureSet::default_pack()?;
    println!(
        "default pack: build median {:?}, automata {} bytes",
        median(builds),
        set.automaton_memory_usage()
    );
    measure(
        "10,000 patterns, utf-8",
        &pack(10_000, "\"utf-8\""),
        &payload,
    )?;
    measure(
        "10,000 patterns, utf-8 + gbk (15,000 byte strings: ASCII ones coincide)",
        &pack(10_000, "\"utf-8\", \"gbk\""),
        &payload,
    )?;
    Ok(())
}
