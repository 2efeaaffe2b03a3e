//! Space-Saving heavy hitters (Metwally, Agrawal, El Abbadi, 2005).

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

use super::fasthash::{FastMap, FastState};

/// The `k` heaviest keys (sources by default; also ports, TTLs) of a
/// stream in O(k) memory.
///
/// Any source with more than `n / k` of `n` packets is guaranteed to be
/// kept. Each slot records the count it inherited when it replaced another
/// source (its error), so [`SpaceSaving::top`] reports guaranteed lower
/// bounds: under a flood of spoofed one-packet sources those are zero and
/// the sources are left out, instead of reporting inflated counts. Memory stays fixed however many distinct
/// (spoofed) sources there are: an unknown source replaces the smallest
/// slot. Replacement is a linear scan of `k` slots, cheap for k ≤ 64.
#[derive(Clone, Debug)]
pub struct SpaceSaving<K = IpAddr> {
    k: usize,
    slots: Vec<(K, u64, u64)>, // (key, count, error)
    /// Keys of `slots`, contiguous, for a fast linear search when `k` is
    /// small (no hash map to update on every replacement).
    keys: Vec<K>,
    /// Key → slot, only for `k` over [`LINEAR_MAX`].
    index: Option<FastMap<K, usize>>,
    /// Counting filter over the keys (linear mode): how many keys hash to
    /// each of 256 buckets. A key whose bucket is empty is certainly not
    /// tracked, so most misses (a spoofed flood) skip the linear search.
    filter: Box<[u8; 256]>,
    hasher: FastState,
    /// Slot with the smallest count, or `usize::MAX` when unknown.
    min_hint: usize,
}

/// Up to this many slots, keys are found by a linear search.
const LINEAR_MAX: usize = 64;

impl<K: Copy + Eq + Hash + Ord> SpaceSaving<K> {
    /// A sketch keeping `k` (≥ 1) sources.
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        SpaceSaving {
            k,
            slots: Vec::with_capacity(k),
            keys: Vec::with_capacity(k),
            index: (k > LINEAR_MAX).then(|| {
                FastMap::with_capacity_and_hasher(k, FastState::new(0x5353_6b65_7463_6821))
            }),
            min_hint: usize::MAX,
            filter: Box::new([0; 256]),
            hasher: FastState::new(0x6669_6c74_6572_2121),
        }
    }

    #[inline]
    fn bucket(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) >> 56) as usize
    }

    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(m) => m.get(key).copied(),
            None => {
                if self.filter.get(self.bucket(key)).is_none_or(|&n| n == 0) {
                    return None;
                }
                self.keys.iter().position(|k| k == key)
            }
        }
    }

    /// Counts `key` in (`up`) or out of the filter.
    #[inline]
    fn filter_update(&mut self, key: &K, up: bool) {
        if self.index.is_some() {
            return;
        }
        let b = self.bucket(key);
        if let Some(n) = self.filter.get_mut(b) {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
        }
    }

    /// Counts one packet from `ip`.
    #[inline]
    pub fn add(&mut self, ip: K) {
        if let Some(i) = self.find(&ip) {
            if let Some(slot) = self.slots.get_mut(i) {
                slot.1 += 1;
            }
            if i == self.min_hint {
                self.min_hint = usize::MAX;
            }
            return;
        }
        if self.slots.len() < self.k {
            if let Some(m) = &mut self.index {
                m.insert(ip, self.slots.len());
            }
            self.slots.push((ip, 1, 0));
            self.keys.push(ip);
            self.filter_update(&ip, true);
            return;
        }
        let i = if self.min_hint < self.slots.len() {
            self.min_hint
        } else {
            self.min_slot()
        };
        let old = self.slots.get(i).map(|s| s.0);
        if let Some(old) = old {
            self.filter_update(&old, false);
            self.filter_update(&ip, true);
        }
        if let Some(slot) = self.slots.get_mut(i) {
            if let Some(m) = &mut self.index {
                m.remove(&slot.0);
                m.insert(ip, i);
            }
            *slot = (ip, slot.1 + 1, slot.1);
        }
        if let Some(k) = self.keys.get_mut(i) {
            *k = ip;
        }
        // The replaced slot grew by one: another slot with the old minimum
        // is the next minimum. A scan from the next slot finds one with
        // count <= the new count cheaply in a spoofed flood (all equal).
        self.min_hint = usize::MAX;
        if let Some(&(_, c, _)) = self.slots.get(i) {
            let n = self.slots.len();
            for step in 1..n {
                let j = if i + step >= n {
                    i + step - n
                } else {
                    i + step
                };
                if let Some(&(_, cj, _)) = self.slots.get(j) {
                    // Every count is >= the old minimum (c - 1), so a
                    // smaller one is a minimum.
                    if cj < c {
                        self.min_hint = j;
                        break;
                    }
                }
            }
        }
    }

    /// Index of a slot with the smallest count (full scan).
    fn min_slot(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, c, _))| *c)
            .map_or(0, |(i, _)| i)
    }

    /// Number of keys tracked (at most `k`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Up to `n` heaviest sources with their guaranteed packet counts
    /// (lower bounds), most first, ties by address so the order is
    /// deterministic. Sources not guaranteed at least two packets are left
    /// out: a single packet makes no heavy hitter, and under a spoofed flood
    /// the list would otherwise name whichever sources came last.
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self
            .slots
            .iter()
            .map(|&(ip, count, err)| (ip, count - err))
            .filter(|&(_, guaranteed)| guaranteed > 1)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitter_survives_a_flood_of_distinct_sources() {
        let mut s = SpaceSaving::new(8);
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0u32..100_000 {
            s.add(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)));
            if i % 4 == 0 {
                s.add(heavy);
            }
        }
        let top = s.top(3);
        assert_eq!(top[0].0, heavy);
        assert!(top[0].1 >= 20_000 && top[0].1 <= 25_000, "{top:?}");
        assert_eq!(
            top.len(),
            1,
            "one-packet spoofed sources have no guaranteed count: {top:?}"
        );
        assert_eq!(s.slots.len(), 8, "memory is fixed");
    }

    #[test]
    fn large_sketches_use_the_index_and_agree_with_small_ones() {
        let mut small = SpaceSaving::new(64);
        let mut large = SpaceSaving::new(65);
        for i in 0u32..10_000 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(
                i % 70 + u32::from(i % 7 == 0) * (i % 3),
            ));
            small.add(ip);
            large.add(ip);
        }
        assert!(small.index.is_none() && large.index.is_some());
        assert_eq!(small.top(3), large.top(3));
    }

    #[test]
    fn exact_counts_while_there_is_room() {
        let mut s = SpaceSaving::new(4);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            s.add(a);
        }
        s.add(b);
        s.add(b);
        assert_eq!(s.top(10), vec![(a, 3), (b, 2)]);
    }

    #[test]
    fn counts_match_a_full_scan_implementation() {
        // The cached minimum must pick the same kind of slot as a scan:
        // compare guaranteed counts with an exact count on a skewed stream.
        let mut s: SpaceSaving<u16> = SpaceSaving::new(16);
        let mut exact = std::collections::HashMap::new();
        let mut x = 7u32;
        for _ in 0..50_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let port = if x.is_multiple_of(3) {
                (x >> 16) as u16 % 4
            } else {
                (x >> 16) as u16
            };
            s.add(port);
            *exact.entry(port).or_insert(0u64) += 1;
        }
        for (port, lower) in s.top(8) {
            assert!(lower <= exact[&port], "{port}: {lower} > {}", exact[&port]);
        }
        let top: Vec<u16> = s.top(4).into_iter().map(|(p, _)| p).collect();
        for heavy in 0..4u16 {
            assert!(top.contains(&heavy), "{heavy} missing from {top:?}");
        }
    }
}
