//! Space-Saving heavy hitters (Metwally, Agrawal, El Abbadi, 2005).

use std::collections::HashMap;
use std::net::IpAddr;

/// The `k` heaviest sources of a stream in O(k) memory.
///
/// Any source with more than `n / k` of `n` packets is guaranteed to be
/// kept. Each slot records the count it inherited when it replaced another
/// source (its error), so [`SpaceSaving::top`] reports guaranteed lower
/// bounds: under a flood of spoofed one-packet sources those are zero and
/// the sources are left out, instead of reporting inflated counts. Memory stays fixed however many distinct
/// (spoofed) sources there are: an unknown source replaces the smallest
/// slot. Replacement is a linear scan of `k` slots, cheap for k ≤ 64.
#[derive(Clone, Debug)]
pub struct SpaceSaving {
    k: usize,
    slots: Vec<(IpAddr, u64, u64)>, // (source, count, error)
    index: HashMap<IpAddr, usize>,
}

impl SpaceSaving {
    /// A sketch keeping `k` (≥ 1) sources.
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        SpaceSaving {
            k,
            slots: Vec::with_capacity(k),
            index: HashMap::with_capacity(k),
        }
    }

    /// Counts one packet from `ip`.
    pub fn add(&mut self, ip: IpAddr) {
        if let Some(&i) = self.index.get(&ip) {
            if let Some(slot) = self.slots.get_mut(i) {
                slot.1 += 1;
            }
            return;
        }
        if self.slots.len() < self.k {
            self.index.insert(ip, self.slots.len());
            self.slots.push((ip, 1, 0));
            return;
        }
        let min = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, c, _))| *c)
            .map(|(i, _)| i);
        if let Some(i) = min {
            if let Some(slot) = self.slots.get_mut(i) {
                self.index.remove(&slot.0);
                *slot = (ip, slot.1 + 1, slot.1);
                self.index.insert(ip, i);
            }
        }
    }

    /// Up to `n` heaviest sources with their guaranteed packet counts
    /// (lower bounds), most first, ties by address so the order is
    /// deterministic. Sources not guaranteed at least two packets are left
    /// out: a single packet makes no heavy hitter, and under a spoofed flood
    /// the list would otherwise name whichever sources came last.
    pub fn top(&self, n: usize) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self
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
}
