//! Space-Saving heavy hitters (Metwally, Agrawal, El Abbadi, 2005).

use std::hash::Hash;
use std::net::IpAddr;

use super::fasthash::{FastMap, FastState};

/// A key a [`SpaceSaving`] sketch can count: hashable for the index of
/// large sketches, and with a cheap one-byte bucket for the counting
/// filter of small ones. The bucket only decides how often a linear search
/// is skipped, never what the sketch counts, so a sender who crafts keys
/// into one bucket only makes its own misses cost a search of `k` keys.
pub trait SketchKey: Copy + Eq + Hash + Ord {
    /// A well-spread byte of the key.
    fn bucket(&self) -> u8;
}

impl SketchKey for u8 {
    #[inline]
    fn bucket(&self) -> u8 {
        *self
    }
}

impl SketchKey for u16 {
    #[inline]
    fn bucket(&self) -> u8 {
        (u32::from(*self).wrapping_mul(0x9E37_79B1) >> 24) as u8
    }
}

impl SketchKey for u128 {
    #[inline]
    fn bucket(&self) -> u8 {
        ((*self as u64 ^ (*self >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    }
}

impl SketchKey for IpAddr {
    #[inline]
    fn bucket(&self) -> u8 {
        super::fasthash::ip_key(*self).bucket()
    }
}

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
    /// Filter bucket of each key of `keys` (linear mode), so replacing a
    /// key does not hash it again.
    buckets: Vec<u8>,
    /// Key → slot, only for `k` over [`LINEAR_MAX`].
    index: Option<FastMap<K, usize>>,
    /// Counting filter over the keys (linear mode): how many keys fall in
    /// each of 256 buckets. A key whose bucket is empty is certainly not
    /// tracked, so most misses (a spoofed flood) skip the linear search.
    filter: Box<[u8; 256]>,
    /// Slot with the smallest count, or `usize::MAX` when unknown.
    min_hint: usize,
    /// Slot of the last key counted: floods repeat a destination port, a
    /// TTL or a reflector many times in a row, and a repeat costs one
    /// comparison.
    last: usize,
}

/// Up to this many slots, keys are found by a linear search.
const LINEAR_MAX: usize = 64;

impl<K: SketchKey> SpaceSaving<K> {
    /// A sketch keeping `k` (≥ 1) sources.
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        let linear = k <= LINEAR_MAX;
        SpaceSaving {
            k,
            slots: Vec::with_capacity(k),
            keys: Vec::with_capacity(k),
            buckets: Vec::with_capacity(if linear { k } else { 0 }),
            index: (!linear).then(|| {
                FastMap::with_capacity_and_hasher(k, FastState::new(0x5353_6b65_7463_6821))
            }),
            min_hint: usize::MAX,
            last: 0,
            filter: Box::new([0; 256]),
        }
    }

    /// Counts one packet from `key`.
    #[inline]
    pub fn add(&mut self, key: K) {
        self.add_in_bucket(key, key.bucket());
    }

    /// Counts one packet from `key`, whose filter bucket the caller already
    /// knows (a byte of a hash it computed anyway). The same key must
    /// always come with the same bucket.
    #[inline]
    pub fn add_in_bucket(&mut self, key: K, bucket: u8) {
        self.add_weighted(key, bucket, 1);
    }

    /// Counts `weight` packets from `key` (one sampled packet standing for
    /// `weight`), whose filter bucket is `bucket` as in
    /// [`SpaceSaving::add_in_bucket`].
    #[inline]
    pub fn add_weighted(&mut self, key: K, bucket: u8, weight: u64) {
        if self.keys.get(self.last) == Some(&key) {
            self.hit(self.last, weight);
            return;
        }
        if self.index.is_some() {
            self.add_indexed(key, weight);
            return;
        }
        let b = usize::from(bucket);
        let seen = self.filter.get(b).is_some_and(|&n| n != 0);
        if seen {
            if let Some(i) = self.keys.iter().position(|k| *k == key) {
                self.hit(i, weight);
                return;
            }
        }
        if let Some(n) = self.filter.get_mut(b) {
            *n = n.saturating_add(1);
        }
        if self.slots.len() < self.k {
            self.last = self.slots.len();
            self.slots.push((key, weight, 0));
            self.keys.push(key);
            self.buckets.push(bucket);
            return;
        }
        let i = self.victim();
        if let Some(old) = self.buckets.get_mut(i) {
            if let Some(n) = self.filter.get_mut(usize::from(*old)) {
                *n = n.saturating_sub(1);
            }
            *old = bucket;
        }
        if let Some(k) = self.keys.get_mut(i) {
            *k = key;
        }
        self.replace(i, key, weight);
    }

    /// Large sketches: the key's slot through the index.
    fn add_indexed(&mut self, key: K, weight: u64) {
        let found = self.index.as_ref().and_then(|m| m.get(&key).copied());
        if let Some(i) = found {
            self.hit(i, weight);
            return;
        }
        if self.slots.len() < self.k {
            self.last = self.slots.len();
            if let Some(m) = &mut self.index {
                m.insert(key, self.slots.len());
            }
            self.slots.push((key, weight, 0));
            self.keys.push(key);
            return;
        }
        let i = self.victim();
        if let (Some(m), Some(slot)) = (&mut self.index, self.slots.get(i)) {
            m.remove(&slot.0);
            m.insert(key, i);
        }
        if let Some(k) = self.keys.get_mut(i) {
            *k = key;
        }
        self.replace(i, key, weight);
    }

    /// Counts `weight` more packets of the key in slot `i`.
    #[inline]
    fn hit(&mut self, i: usize, weight: u64) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.1 += weight;
        }
        if i == self.min_hint {
            self.min_hint = usize::MAX;
        }
        self.last = i;
    }

    /// The slot an unknown key replaces: one with the smallest count.
    #[inline]
    fn victim(&self) -> usize {
        if self.min_hint < self.slots.len() {
            self.min_hint
        } else {
            self.min_slot()
        }
    }

    /// Puts `key` in slot `i` with the slot's count plus `weight` (the
    /// old count becomes its error) and finds the next minimum.
    #[inline]
    fn replace(&mut self, i: usize, key: K, weight: u64) {
        self.last = i;
        let mut old = 0;
        if let Some(slot) = self.slots.get_mut(i) {
            old = slot.1;
            *slot = (key, slot.1 + weight, slot.1);
        }
        // The replaced slot held the minimum and grew: another slot with
        // the old minimum is the next minimum. A scan from the next slot
        // finds one cheaply in a spoofed flood (all equal).
        self.min_hint = usize::MAX;
        if self.slots.get(i).is_some() {
            let c = old + 1;
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

    #[test]
    fn weighted_counts_add_up_and_repeats_hit_the_last_slot() {
        let mut s: SpaceSaving<u16> = SpaceSaving::new(4);
        for _ in 0..10 {
            s.add(80);
        }
        s.add_weighted(443, 443u16.bucket(), 16);
        s.add_weighted(80, 80u16.bucket(), 16);
        assert_eq!(s.top(2), vec![(80, 26), (443, 16)]);
        // A full sketch: a new key takes the smallest slot's count as error.
        for p in [1u16, 2] {
            s.add(p);
        }
        s.add_weighted(9, 9u16.bucket(), 16);
        let nine = s.slots.iter().find(|sl| sl.0 == 9).copied().unwrap();
        assert_eq!((nine.1, nine.2), (17, 1));
    }
}
