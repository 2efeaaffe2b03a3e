//! Counters shared by the live threads: read by heartbeats and at exit.
//! Each worker publishes its own pipeline's counters into its slot; reads
//! sum the slots.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use crate::detect::leak::LeakStats;
use crate::pipeline::Counters;

/// Counters shared by all threads (read by heartbeats and at exit).
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Each worker's pipeline counters (packets, bytes, and packets not
    /// decoded, by reason), summed on read.
    pub decode: Mutex<Vec<Counters>>,
    /// Kernel + interface drops, per worker (pcap_stats), summed on read.
    pub drops: Mutex<Vec<u64>>,
    /// Header records the volumetric queue had no room for.
    pub volumetric_records_dropped: AtomicU64,
    /// Incidents emitted.
    pub incidents: AtomicU64,
    /// Leak incidents per signature id, per worker (summed on read).
    pub signature_hits: Mutex<Vec<BTreeMap<String, u64>>>,
    /// The leak detector's counters ([`LeakStats::counters`]), per worker
    /// (summed on read).
    pub leak_counters: Mutex<Vec<BTreeMap<String, u64>>>,
    /// Signature reloads applied.
    pub reloads: AtomicU64,
    /// Reloads refused because the new set was invalid.
    pub reloads_refused: AtomicU64,
}

impl LiveStats {
    /// Packets captured, over all workers.
    pub fn packets(&self) -> u64 {
        self.decode
            .lock()
            .map(|d| d.iter().map(|c| c.packets).sum())
            .unwrap_or(0)
    }

    /// Bytes captured, over all workers.
    pub fn bytes(&self) -> u64 {
        self.decode
            .lock()
            .map(|d| d.iter().map(|c| c.bytes).sum())
            .unwrap_or(0)
    }

    /// The pipelines' counters over all workers, by name.
    pub fn decode_counters(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        if let Ok(all) = self.decode.lock() {
            for c in all.iter() {
                for (name, n) in c.named() {
                    *total.entry(name).or_insert(0) += n;
                }
            }
        }
        total
    }

    /// Stores worker `idx`'s pipeline counters.
    pub fn publish_decode(&self, idx: usize, c: &Counters) {
        if let Ok(mut all) = self.decode.lock() {
            if let Some(mine) = all.get_mut(idx) {
                mine.clone_from(c);
            }
        }
    }

    /// Leak incidents per signature over all workers.
    pub fn signature_hits(&self) -> BTreeMap<String, u64> {
        sum_per_worker(&self.signature_hits)
    }

    /// The leak detector's counters over all workers.
    pub fn leak_counters(&self) -> BTreeMap<String, u64> {
        sum_per_worker(&self.leak_counters)
    }

    /// Total drops over all workers.
    pub fn kernel_drops(&self) -> u64 {
        self.drops.lock().map(|d| d.iter().sum()).unwrap_or(0)
    }
}

fn sum_per_worker(per_worker: &Mutex<Vec<BTreeMap<String, u64>>>) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    if let Ok(all) = per_worker.lock() {
        for m in all.iter() {
            for (k, v) in m {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    total
}

/// Adds `s`'s incidents per signature into `m`.
fn add_hits(m: &mut BTreeMap<String, u64>, s: &LeakStats) {
    for (id, n) in &s.incidents_by_signature {
        *m.entry(id.clone()).or_insert(0) += n;
    }
}

/// One worker's leak counts since the sensor started. A signature reload
/// replaces the worker's detector, whose own counts start again from zero,
/// so the retired detectors' totals are kept here and added to the live
/// one's: heartbeat counters never go backwards.
#[derive(Debug, Default)]
pub(super) struct LeakTotals {
    retired_hits: BTreeMap<String, u64>,
    retired_counters: BTreeMap<&'static str, u64>,
}

impl LeakTotals {
    /// Keeps the counts of a detector about to be replaced (after its
    /// flows were closed).
    pub(super) fn retire(&mut self, s: &LeakStats) {
        add_hits(&mut self.retired_hits, s);
        for (name, n) in s.counters() {
            if !LeakStats::GAUGES.contains(&name) {
                *self.retired_counters.entry(name).or_insert(0) += n;
            }
        }
    }

    /// Incidents per signature: retired detectors plus `s`.
    fn hits(&self, s: &LeakStats) -> BTreeMap<String, u64> {
        let mut m = self.retired_hits.clone();
        add_hits(&mut m, s);
        m
    }

    /// Counters: retired detectors plus `s`.
    fn counters(&self, s: &LeakStats) -> BTreeMap<String, u64> {
        s.counters()
            .into_iter()
            .map(|(name, n)| {
                let before = self.retired_counters.get(name).copied().unwrap_or(0);
                (name.to_string(), before + n)
            })
            .collect()
    }

    /// Publishes this worker's totals into the shared stats.
    pub(super) fn publish(&self, idx: usize, s: &LeakStats, stats: &LiveStats) {
        if let Ok(mut all) = stats.signature_hits.lock() {
            if let Some(mine) = all.get_mut(idx) {
                *mine = self.hits(s);
            }
        }
        if let Ok(mut all) = stats.leak_counters.lock() {
            if let Some(mine) = all.get_mut(idx) {
                *mine = self.counters(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(alpha: u64, scanned: u64, flows: u64) -> LeakStats {
        LeakStats {
            bytes_scanned: scanned,
            flows,
            incidents_by_signature: vec![("alpha".into(), alpha)],
            ..LeakStats::default()
        }
    }

    #[test]
    fn leak_totals_survive_reloads_and_gauges_are_not_summed() {
        let live = LiveStats::default();
        *live.signature_hits.lock().unwrap() = vec![BTreeMap::new(); 2];
        *live.leak_counters.lock().unwrap() = vec![BTreeMap::new(); 2];
        let mut totals = LeakTotals::default();
        totals.publish(0, &stats(2, 100, 5), &live);
        // A reload: the old detector closed its flows, a new one starts.
        totals.retire(&stats(2, 150, 0));
        let mut fresh = stats(1, 40, 3);
        fresh.incidents_by_signature.push(("bravo".into(), 1));
        totals.publish(0, &fresh, &live);
        // Worker 1 reports too: the heartbeat sums both.
        LeakTotals::default().publish(1, &stats(4, 10, 1), &live);
        let hits = live.signature_hits();
        assert_eq!(hits.get("alpha"), Some(&7));
        assert_eq!(hits.get("bravo"), Some(&1));
        let counters = live.leak_counters();
        assert_eq!(counters.get("bytes_scanned"), Some(&200));
        assert_eq!(
            counters.get("flows"),
            Some(&4),
            "open flows now, not a total"
        );
        assert_eq!(counters.get("reassembly_gaps"), Some(&0));
        assert_eq!(counters.len(), LeakStats::default().counters().len());
    }
}
