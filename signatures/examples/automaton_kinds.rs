//! Measures the Aho-Corasick automaton kinds on the default pack: build
//! time, `memory_usage()` and overlapping search throughput. The figures
//! in `docs/signatures.md` come from this program:
//!
//! ```text
//! cargo run --release -p shaobing-signatures --example automaton_kinds
//! ```

use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use shaobing_signatures::validators::credentials::Anchor;
use shaobing_signatures::{SignatureSet, Validator};

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = 25;
    let mut builds = Vec::new();
    let mut set = SignatureSet::default_pack()?;
    for _ in 0..runs {
        let t = Instant::now();
        set = SignatureSet::default_pack()?;
        builds.push(t.elapsed());
    }
    println!(
        "default pack: {} signatures, SignatureSet::default_pack() median {:?} (parse + check + compile), automata {} bytes",
        set.signatures().len(),
        median(builds),
        set.automaton_memory_usage()
    );

    // The case-sensitive automaton's patterns, as the compiler builds them
    // (before merging identical byte strings).
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for sig in set
        .signatures()
        .iter()
        .filter(|s| s.enabled && !s.case_insensitive)
    {
        match sig.validator {
            None => {
                for p in &sig.patterns {
                    for enc in &sig.encodings {
                        if let Some(b) = enc.encode(p) {
                            if !patterns.contains(&b) {
                                patterns.push(b);
                            }
                        }
                    }
                }
            }
            Some(Validator::Credentials) => {
                for (lit, ci, _) in Anchor::LITERALS {
                    if !ci {
                        patterns.push(lit.to_vec());
                    }
                }
            }
            Some(_) => {}
        }
    }
    println!("case-sensitive automaton: {} patterns", patterns.len());

    let (payload, _) = corpus::build(16 << 20);
    patterns.sort_by_key(Vec::len);
    for kind in [
        AhoCorasickKind::NoncontiguousNFA,
        AhoCorasickKind::ContiguousNFA,
        AhoCorasickKind::DFA,
    ] {
        for semantics in [MatchKind::LeftmostFirst, MatchKind::Standard] {
            let mut times = Vec::new();
            let mut ac = None;
            for _ in 0..runs {
                let t = Instant::now();
                let built = AhoCorasick::builder()
                    .match_kind(semantics)
                    .kind(Some(kind))
                    .build(&patterns)?;
                times.push(t.elapsed());
                ac = Some(built);
            }
            let Some(ac) = ac else { continue };
            let mut scans = Vec::new();
            let mut count = 0;
            for _ in 0..5 {
                let t = Instant::now();
                count = if semantics == MatchKind::Standard {
                    ac.find_overlapping_iter(&payload).count()
                } else {
                    // What `scan` does: restart one byte after each start.
                    let mut n = 0;
                    let mut at = 0;
                    while let Some(m) = ac.find(Input::new(&payload).span(at..payload.len())) {
                        n += 1;
                        at = m.start() + 1;
                    }
                    n
                };
                scans.push(t.elapsed());
            }
            println!(
                "{kind:?} {semantics:?}: build median {:?}, memory_usage {} bytes, search {:.0} MB/s ({count} matches)",
                median(times),
                ac.memory_usage(),
                payload.len() as f64 / median(scans).as_secs_f64() / 1e6
            );
        }
    }

    let mut scans = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut hits = 0usize;
        set.scan(&payload, |_| hits += 1);
        scans.push(t.elapsed());
    }
    println!(
        "SignatureSet::scan (both automata + validators): {:.0} MB/s over {} bytes",
        payload.len() as f64 / median(scans).as_secs_f64() / 1e6,
        payload.len()
    );
    Ok(())
}
