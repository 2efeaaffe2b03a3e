//! Throughput of `SignatureSet::scan` with the default pack over ~16 MB of
//! mixed payload. The expected hit count is checked first, so a fast wrong
//! answer fails the benchmark.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shaobing_signatures::SignatureSet;

#[path = "support/corpus.rs"]
mod corpus;

const SIZE: usize = 16 << 20;
/// Chunk size the sensor hands to `scan` (a reassembled payload chunk).
const CHUNK: usize = 64 << 10;

fn count(set: &SignatureSet, payload: &[u8]) -> usize {
    let mut hits = 0;
    for chunk in payload.chunks(CHUNK) {
        set.scan(chunk, |_| hits += 1);
    }
    hits
}

fn bench(c: &mut Criterion) {
    let set = match SignatureSet::default_pack() {
        Ok(set) => set,
        Err(e) => panic!("default pack does not load: {e}"),
    };
    let (payload, expected) = corpus::build(SIZE);
    // Planted secrets are never split: count per whole payload, then check
    // the chunked count agrees (a plant cut by a chunk edge would differ).
    let mut per_sig = vec![0usize; set.signatures().len()];
    set.scan(&payload, |hit| {
        if let Some(n) = per_sig.get_mut(hit.signature) {
            *n += 1;
        }
    });
    let mut got: Vec<(&str, usize)> = set
        .signatures()
        .iter()
        .zip(&per_sig)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (s.id.as_str(), *n))
        .collect();
    got.sort();
    assert_eq!(got, expected, "wrong hits on the benchmark payload");
    let total: usize = expected.iter().map(|(_, n)| n).sum();

    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.sample_size(10);
    group.bench_function("default_pack_16MiB_whole", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            set.scan(std::hint::black_box(&payload), |_| hits += 1);
            assert_eq!(hits, total);
            hits
        })
    });
    group.bench_function("default_pack_16MiB_64KiB_chunks", |b| {
        b.iter(|| {
            let hits = count(&set, std::hint::black_box(&payload));
            // Chunk edges may cut a few plants; never invent hits.
            assert!(hits <= total && hits + 16 >= total, "{hits} vs {total}");
            hits
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
