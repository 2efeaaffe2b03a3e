//! IP defragmentation for the leak detector: fragments of one datagram
//! (IPv4 or IPv6, keyed by addresses, protocol and identification) are
//! put back together so a secret split across fragments is found.
//!
//! Overlaps are resolved first-wins (bytes already held are kept), as in
//! TCP reassembly. Everything is bounded and counted:
//! - a datagram is at most [`MAX_DATAGRAM`] bytes (the IPv4 maximum);
//!   a fragment reaching past it drops the datagram (`oversized`);
//! - at most `max_datagrams` are in progress and at most `max_bytes` are
//!   held in all; beyond either the oldest datagram (the one whose first
//!   fragment came first) is dropped (`evicted`);
//! - a datagram not complete within `timeout_micros` of capture time after
//!   its first fragment is dropped (`timed_out`).
//!
//! Datagrams are kept in a queue in arrival order as well as in the map,
//! so evicting the oldest and finding those timed out cost O(1) amortized
//! per fragment: a flood of never-completed fragments (table exhaustion)
//! makes every fragment evict one datagram, and must not make each scan
//! the whole table.
//!
//! Time is packet time (never going backwards: the pipeline clamps it), so
//! arrival order is first-fragment time order, and a replay gives the same
//! result at any speed.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::detect::fasthash::{random_seed, FastMap, FastState};

/// Largest datagram payload put back together (IPv4's limit).
pub const MAX_DATAGRAM: usize = 65_535;

/// Bounds of a [`Defrag`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragLimits {
    /// Datagrams in progress at once.
    pub max_datagrams: usize,
    /// Fragment bytes held in all.
    pub max_bytes: usize,
    /// Capture time a datagram may take to complete.
    pub timeout_micros: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_datagrams: 4096,
            max_bytes: 16 << 20,
            timeout_micros: 30_000_000,
        }
    }
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments taken.
    pub fragments: u64,
    /// Datagrams put back together.
    pub reassembled: u64,
    /// Fragment bytes already held from an earlier fragment (kept as first
    /// seen).
    pub overlap_bytes: u64,
    /// Datagrams dropped because a fragment reached past [`MAX_DATAGRAM`].
    pub oversized: u64,
    /// Datagrams dropped to stay within the count or byte bounds.
    pub evicted: u64,
    /// Datagrams dropped incomplete at the timeout.
    pub timed_out: u64,
}

/// Which datagram a fragment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Identification.
    pub id: u32,
}

#[derive(Debug, Default)]
struct Datagram {
    /// Arrival number, matching this datagram's entry in the queue.
    seq: u64,
    first_ts: i64,
    buf: Vec<u8>,
    /// Byte ranges of `buf` held, sorted and disjoint.
    held: Vec<(usize, usize)>,
    /// Payload length, once the last fragment was seen.
    total: Option<usize>,
}

impl Datagram {
    /// Copies the bytes of `[start, start + data.len())` not held yet;
    /// returns how many were already held.
    fn fill(&mut self, start: usize, data: &[u8]) -> usize {
        let end = start + data.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let mut overlap = 0;
        let mut at = start;
        // The gaps of `held` inside [start, end), in order.
        let mut new_ranges = Vec::new();
        for &(s, e) in &self.held {
            if e <= at {
                continue;
            }
            if s >= end {
                break;
            }
            if s > at {
                new_ranges.push((at, s));
            }
            overlap += e.min(end) - s.max(at);
            at = at.max(e);
        }
        if at < end {
            new_ranges.push((at, end));
        }
        for (s, e) in new_ranges {
            if let (Some(dst), Some(src)) = (self.buf.get_mut(s..e), data.get(s - start..e - start))
            {
                dst.copy_from_slice(src);
            }
            self.held.push((s, e));
        }
        self.held.sort_unstable();
        // Merge touching ranges.
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.held.len());
        for &(s, e) in &self.held {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.held = merged;
        overlap
    }

    fn complete(&self) -> bool {
        self.total
            .is_some_and(|t| self.held.first() == Some(&(0, t)) && self.held.len() == 1)
    }
}

/// The datagram a queue entry stands for, unless the entry is stale (the
/// datagram is gone, or its key was reused by a later datagram).
fn current<'a>(
    datagrams: &'a FastMap<DatagramKey, Datagram>,
    seq: u64,
    key: &DatagramKey,
) -> Option<&'a Datagram> {
    datagrams.get(key).filter(|d| d.seq == seq)
}

/// Fragments in progress.
#[derive(Debug)]
pub struct Defrag {
    limits: DefragLimits,
    datagrams: FastMap<DatagramKey, Datagram>,
    /// Datagrams in arrival order, by arrival number. Entries of datagrams
    /// already gone (complete or dropped) are skipped when met, and
    /// compacted away when they outnumber the live ones.
    order: VecDeque<(u64, DatagramKey)>,
    next_seq: u64,
    bytes: usize,
    stats: DefragStats,
}

impl Defrag {
    /// An empty table.
    pub fn new(limits: DefragLimits) -> Self {
        Defrag {
            limits,
            datagrams: FastMap::with_hasher(FastState::new(random_seed())),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            stats: DefragStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.datagrams.len()
    }

    /// Takes one fragment captured at `ts` (µs); returns the datagram's
    /// whole payload once every byte of it is here.
    pub fn push(
        &mut self,
        ts: i64,
        key: DatagramKey,
        offset: u32,
        more: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        self.stats.fragments += 1;
        self.expire(ts);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(data.len());
        if end > MAX_DATAGRAM {
            self.remove(&key);
            self.compact();
            self.stats.oversized += 1;
            return None;
        }
        if !self.datagrams.contains_key(&key) {
            while self.datagrams.len() >= self.limits.max_datagrams.max(1) {
                if !self.evict_oldest() {
                    break;
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.push_back((seq, key));
            self.datagrams.insert(
                key,
                Datagram {
                    seq,
                    first_ts: ts,
                    ..Datagram::default()
                },
            );
        }
        let d = self.datagrams.get_mut(&key)?;
        let before = d.buf.len();
        self.stats.overlap_bytes += d.fill(start, data) as u64;
        if !more {
            // The first last fragment fixes the length (first wins).
            d.total.get_or_insert(end);
        }
        self.bytes += d.buf.len() - before;
        if d.complete() {
            let d = self.datagrams.remove(&key)?;
            self.bytes -= d.buf.len();
            self.stats.reassembled += 1;
            self.compact();
            let total = d.total.unwrap_or(d.buf.len());
            let mut buf = d.buf;
            buf.truncate(total);
            return Some(buf);
        }
        while self.bytes > self.limits.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        None
    }

    /// The oldest datagram still held and its first fragment's time; the
    /// stale queue entries before it are dropped, its own stays.
    fn oldest(&mut self) -> Option<(DatagramKey, i64)> {
        while let Some(&(seq, key)) = self.order.front() {
            if let Some(d) = current(&self.datagrams, seq, &key) {
                return Some((key, d.first_ts));
            }
            self.order.pop_front();
        }
        None
    }

    /// Drops the oldest datagram (queue entry and table entry).
    fn drop_oldest(&mut self, key: &DatagramKey) {
        self.order.pop_front();
        self.remove(key);
    }

    fn remove(&mut self, key: &DatagramKey) {
        if let Some(d) = self.datagrams.remove(key) {
            self.bytes -= d.buf.len();
        }
    }

    /// Drops the oldest datagram; false if none is held.
    fn evict_oldest(&mut self) -> bool {
        let Some((key, _)) = self.oldest() else {
            return false;
        };
        self.drop_oldest(&key);
        self.stats.evicted += 1;
        true
    }

    /// Drops the datagrams whose first fragment came `timeout_micros`
    /// or longer before `ts`: the oldest first, stopping at the first one
    /// still in time.
    fn expire(&mut self, ts: i64) {
        let cutoff = ts.saturating_sub(self.limits.timeout_micros);
        while let Some((key, first_ts)) = self.oldest() {
            if first_ts >= cutoff {
                break;
            }
            self.drop_oldest(&key);
            self.stats.timed_out += 1;
        }
    }

    /// Drops stale queue entries once they outnumber the live ones, so the
    /// queue stays within twice the table (plus a little).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.datagrams.len() + 64 {
            let datagrams = &self.datagrams;
            self.order
                .retain(|(seq, key)| current(datagrams, *seq, key).is_some());
        }
    }

    /// Queue entries, live and stale (for tests of the bound).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> DatagramKey {
        DatagramKey {
            src: "10.0.0.5".parse().unwrap(),
            dst: "198.51.100.1".parse().unwrap(),
            proto: 17,
            id,
        }
    }

    /// `data` cut into `pieces` of `size` (multiples of 8) pushed in `order`.
    fn run(d: &mut Defrag, data: &[u8], size: usize, order: &[usize]) -> Option<Vec<u8>> {
        let chunks: Vec<&[u8]> = data.chunks(size).collect();
        let mut out = None;
        for &i in order {
            let more = i + 1 < chunks.len();
            out = d.push(0, key(1), (i * size) as u32, more, chunks[i]);
        }
        out
    }

    #[test]
    fn fragments_in_any_order_give_the_datagram_once() {
        let data: Vec<u8> = (0..100u8).collect();
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let mut d = Defrag::new(DefragLimits::default());
            assert_eq!(run(&mut d, &data, 32, &order).as_deref(), Some(&data[..]));
            assert_eq!(d.in_progress(), 0);
            assert_eq!(d.stats().reassembled, 1);
        }
    }

    #[test]
    fn overlapping_fragments_keep_the_first_bytes() {
        let mut d = Defrag::new(DefragLimits::default());
        assert!(d.push(0, key(1), 0, true, &[1; 16]).is_none());
        // Overlaps the first 8 bytes with other values, then ends it.
        let whole = d.push(0, key(1), 8, false, &[2; 16]).unwrap();
        assert_eq!(&whole[..16], &[1; 16]);
        assert_eq!(&whole[16..], &[2; 8]);
        assert_eq!(d.stats().overlap_bytes, 8);
    }

    #[test]
    fn incomplete_datagrams_time_out_and_free_their_bytes() {
        let mut d = Defrag::new(DefragLimits::default());
        assert!(d.push(0, key(1), 0, true, &[1; 64]).is_none());
        assert!(d.push(31_000_000, key(2), 0, true, &[1; 8]).is_none());
        assert_eq!(d.stats().timed_out, 1);
        assert_eq!(d.in_progress(), 1);
        assert_eq!(d.bytes, 8);
    }

    #[test]
    fn bounds_evict_the_oldest_and_oversized_datagrams_are_dropped() {
        let limits = DefragLimits {
            max_datagrams: 2,
            max_bytes: 100,
            timeout_micros: 30_000_000,
        };
        let mut d = Defrag::new(limits);
        for id in 0..3 {
            d.push(i64::from(id), key(id), 0, true, &[0; 8]);
        }
        assert_eq!((d.in_progress(), d.stats().evicted), (2, 1));
        d.push(5, key(9), 0, true, &[0; 96]);
        assert!(d.bytes <= 100, "{}", d.bytes);
        assert!(d.stats().evicted >= 2);
        assert!(d.push(6, key(7), 65_528, false, &[0; 16]).is_none());
        assert_eq!(d.stats().oversized, 1);
    }

    #[test]
    fn a_never_completed_fragment_flood_evicts_in_arrival_order() {
        // Table exhaustion: every first fragment has a new id and no second
        // fragment ever comes. The table stays full and each new datagram
        // evicts exactly the one that came first (same capture time for
        // all, so only arrival order can decide).
        let limits = DefragLimits {
            max_datagrams: 4,
            ..DefragLimits::default()
        };
        let mut d = Defrag::new(limits);
        for id in 0..10_000 {
            assert!(d.push(7, key(id), 0, true, &[0; 8]).is_none());
            assert_eq!(d.in_progress(), (id as usize + 1).min(4));
        }
        assert_eq!(d.stats().evicted, 10_000 - 4);
        assert!(d.queued() <= 2 * 4 + 64, "queue {}", d.queued());
        // The four survivors are the last four: completing one of them
        // gives its datagram, completing an evicted one does not.
        assert_eq!(
            d.push(8, key(9_999), 8, false, &[1; 8]).map(|v| v.len()),
            Some(16)
        );
        assert!(d.push(8, key(9_995), 8, false, &[1; 8]).is_none());
    }

    #[test]
    fn completed_datagrams_leave_the_queue_bounded() {
        let mut d = Defrag::new(DefragLimits::default());
        // One datagram always pending, many completing around it.
        assert!(d.push(0, key(u32::MAX), 0, true, &[0; 8]).is_none());
        for id in 0..10_000 {
            assert!(d.push(1, key(id), 0, true, &[0; 8]).is_none());
            assert!(d.push(1, key(id), 8, false, &[0; 8]).is_some());
        }
        assert_eq!(d.in_progress(), 1);
        assert!(d.queued() <= 2 + 64, "queue {}", d.queued());
        // The pending one still times out, after the stale entries.
        assert!(d.push(40_000_000, key(5), 0, true, &[0; 8]).is_none());
        assert_eq!(d.stats().timed_out, 1);
        assert_eq!(d.in_progress(), 1);
    }

    #[test]
    fn timeouts_take_the_oldest_and_stop_at_the_first_in_time() {
        let mut d = Defrag::new(DefragLimits::default());
        for (i, ts) in [0, 10_000_000, 20_000_000].into_iter().enumerate() {
            assert!(d.push(ts, key(i as u32), 0, true, &[0; 8]).is_none());
        }
        // 45 s: the first two are over 30 s old, the third is not.
        assert!(d.push(45_000_000, key(3), 0, true, &[0; 8]).is_none());
        assert_eq!(d.stats().timed_out, 2);
        assert_eq!(d.in_progress(), 2);
        assert_eq!(d.bytes, 16);
    }
}
