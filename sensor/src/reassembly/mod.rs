//! TCP stream reassembly, one [`Stream`] per flow and direction.
//!
//! A [`Stream`] turns the segments of one direction of a TCP connection,
//! in whatever order and with whatever repetition they were captured, into
//! the byte stream the receiver saw, pushed as [`Chunk`]s to a callback.
//!
//! # Policy
//!
//! * **In order**: a segment that starts at the next expected byte is
//!   delivered at once, then every buffered segment it made contiguous.
//! * **Retransmissions and overlaps: first wins.** Bytes already delivered
//!   or already buffered are never replaced by a later copy: a segment is
//!   trimmed to the bytes nobody sent before. This is Suricata's default
//!   policy (`stream.reassembly` "first"/BSD-like for most targets); an
//!   attacker who sends two different versions of the same bytes gets the
//!   first one inspected. Trimmed and dropped bytes are counted.
//! * **Out of order**: a segment ahead of the next expected byte is kept in
//!   a bounded buffer (at most [`Limits::max_segments`] segments and
//!   [`Limits::per_stream_bytes`] bytes per stream, and a global byte
//!   budget shared by all streams, [`Budget`]). A segment further ahead
//!   than [`Limits::window`] bytes is dropped (counted).
//! * **Caps hit**: when a segment cannot be buffered because a cap is hit,
//!   the stream gives up waiting for the missing bytes: it reports a
//!   [`Chunk::Gap`] of the missing length and delivers what it buffered,
//!   then goes on (counted as `gaps`). Consumers treat a gap as the end of
//!   what they were parsing.
//! * **SYN** sets the initial sequence number; a stream picked up without
//!   its SYN starts at the first data segment seen (data before it is
//!   lost). **FIN** marks the end; the stream is finished when every byte
//!   before the FIN was delivered. **RST** and timeouts are handled by the
//!   owner of the flow table, which calls [`Stream::flush`] to deliver what
//!   is buffered (with gaps) before dropping the stream.
//!
//! Sequence numbers wrap at 2³²: positions are kept as 64-bit offsets from
//! the initial sequence number, and each segment's 32-bit sequence number
//! is placed relative to the next expected byte (within ±2 GiB).

use std::collections::BTreeMap;

/// Bounds of one stream's out-of-order buffer. Each knob trades memory for
/// tolerance of loss and reordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes buffered out of order per stream. Memory per stream is at
    /// most this plus bookkeeping. Default 256 KiB.
    pub per_stream_bytes: usize,
    /// Most segments buffered out of order per stream. Default 256.
    pub max_segments: usize,
    /// Furthest ahead of the next expected byte a segment may start and
    /// still be buffered. Default 1 MiB.
    pub window: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_stream_bytes: 256 * 1024,
            max_segments: 256,
            window: 1024 * 1024,
        }
    }
}

/// The global out-of-order byte budget shared by every stream, and the
/// counters of what reassembly did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Most bytes buffered out of order by all streams together.
    pub max_bytes: usize,
    /// Bytes buffered now.
    pub used_bytes: usize,
    /// Counters.
    pub stats: ReassemblyStats,
}

impl Budget {
    /// A budget of `max_bytes` for all streams.
    pub fn new(max_bytes: usize) -> Self {
        Budget {
            max_bytes,
            ..Budget::default()
        }
    }
}

/// What reassembly did, summed over all streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Bytes delivered in order.
    pub bytes_delivered: u64,
    /// Segments that arrived ahead of the next expected byte.
    pub segments_out_of_order: u64,
    /// Segments whose every byte had been seen before (retransmissions).
    pub segments_retransmitted: u64,
    /// Bytes dropped because an earlier copy of them won (overlaps).
    pub bytes_overlap_trimmed: u64,
    /// Segments not buffered because the per-stream cap was hit.
    pub per_stream_cap_hits: u64,
    /// Segments not buffered because the global cap was hit.
    pub global_cap_hits: u64,
    /// Segments dropped for starting beyond the window.
    pub beyond_window: u64,
    /// Holes given up on (missing bytes skipped).
    pub gaps: u64,
    /// Bytes skipped in holes.
    pub gap_bytes: u64,
}

/// What a stream delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes of the stream, in order.
    Data(&'a [u8]),
    /// This many bytes are missing here and will not come.
    Gap(u64),
}

/// One TCP segment, as far as reassembly cares.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Sequence number.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// Payload (may be empty).
    pub payload: &'a [u8],
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of offset 0 (the byte after the SYN).
    base: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Out-of-order segments by offset; never overlapping each other.
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    /// Offset of the FIN, once seen.
    fin: Option<u64>,
}

impl Stream {
    /// A stream that has seen nothing yet.
    pub fn new() -> Self {
        Stream::default()
    }

    /// Bytes buffered out of order now.
    pub fn buffered_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// Whether every byte up to the FIN was delivered.
    pub fn finished(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// Offset of the next byte to deliver (bytes delivered plus gaps).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Places a 32-bit sequence number as an offset from the start,
    /// relative to the next expected byte. `None` before any anchor.
    fn offset_of(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let next32 = base.wrapping_add(self.next as u32);
        let delta = i64::from(seq.wrapping_sub(next32) as i32);
        let off = i64::try_from(self.next).ok()?.checked_add(delta)?;
        u64::try_from(off).ok()
    }

    /// Feeds one segment. Delivered bytes go to `out`.
    pub fn segment(
        &mut self,
        seg: Segment<'_>,
        limits: &Limits,
        budget: &mut Budget,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        let Segment {
            seq,
            syn,
            fin,
            payload,
        } = seg;
        let data_seq = if syn {
            if self.base.is_none() {
                self.base = Some(seq.wrapping_add(1));
            }
            seq.wrapping_add(1)
        } else {
            seq
        };
        if self.base.is_none() {
            if payload.is_empty() && !fin {
                return;
            }
            // Picked up mid-stream: start here.
            self.base = Some(data_seq);
        }
        let Some(start) = self.offset_of(data_seq) else {
            return;
        };
        let end = start.saturating_add(payload.len() as u64);
        if fin && self.fin.is_none() {
            self.fin = Some(end);
        }
        if payload.is_empty() {
            return;
        }
        if end <= self.next {
            budget.stats.segments_retransmitted += 1;
            return;
        }
        if start > self.next {
            budget.stats.segments_out_of_order += 1;
            self.buffer(start, payload, limits, budget, out);
            return;
        }
        self.deliver_from(start, payload, budget, out);
    }

    /// Delivers a segment that starts at or before the next byte, without
    /// replacing bytes already delivered or buffered (first wins).
    fn deliver_from(
        &mut self,
        start: u64,
        payload: &[u8],
        budget: &mut Budget,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        let mut at = start;
        let mut rest = payload;
        // Each round delivers at least one byte or drains one buffered
        // segment, or stops: bounded by the payload and the buffer.
        loop {
            let end = at + rest.len() as u64;
            if end <= self.next {
                budget.stats.bytes_overlap_trimmed += rest.len() as u64;
                return;
            }
            if at < self.next {
                let skip = usize::try_from(self.next - at).unwrap_or(usize::MAX);
                budget.stats.bytes_overlap_trimmed += skip as u64;
                rest = rest.get(skip..).unwrap_or_default();
                at = self.next;
            }
            let room = self
                .ooo
                .first_key_value()
                .map_or(u64::MAX, |(s, _)| s.saturating_sub(self.next));
            let n = usize::try_from(room.min(rest.len() as u64)).unwrap_or(rest.len());
            let (now, later) = rest.split_at(n.min(rest.len()));
            self.deliver(now, budget, out);
            at += now.len() as u64;
            rest = later;
            let before = self.ooo.len();
            self.drain(budget, out);
            if rest.is_empty() || (now.is_empty() && self.ooo.len() == before) {
                return;
            }
        }
    }

    fn deliver(&mut self, data: &[u8], budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        if data.is_empty() {
            return;
        }
        self.next += data.len() as u64;
        budget.stats.bytes_delivered += data.len() as u64;
        out(Chunk::Data(data));
    }

    /// Delivers buffered segments made contiguous (trimming what was
    /// already delivered: first wins).
    fn drain(&mut self, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        // Each round removes one entry: bounded by the buffer's size.
        while let Some(entry) = self.ooo.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let data = entry.remove();
            self.ooo_bytes -= data.len();
            budget.used_bytes = budget.used_bytes.saturating_sub(data.len());
            let end = start + data.len() as u64;
            if end <= self.next {
                budget.stats.bytes_overlap_trimmed += data.len() as u64;
                continue;
            }
            let skip = usize::try_from(self.next - start).unwrap_or(usize::MAX);
            budget.stats.bytes_overlap_trimmed += skip as u64;
            self.deliver(data.get(skip..).unwrap_or_default(), budget, out);
        }
    }

    /// Buffers a segment that starts after the next byte, keeping only the
    /// bytes no buffered segment already holds.
    fn buffer(
        &mut self,
        start: u64,
        payload: &[u8],
        limits: &Limits,
        budget: &mut Budget,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        if start - self.next > limits.window {
            budget.stats.beyond_window += 1;
            tracing::debug!(event = "tcp_beyond_window", "segment too far ahead dropped");
            return;
        }
        // The parts of [start, end) not covered by buffered segments.
        let end = start + payload.len() as u64;
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut at = start;
        let earlier = self
            .ooo
            .range(..start)
            .next_back()
            .map(|(s, d)| (*s, *s + d.len() as u64));
        if let Some((_, e)) = earlier {
            at = at.max(e);
        }
        for (s, d) in self.ooo.range(start..end) {
            if *s > at {
                pieces.push((at, *s));
            }
            at = at.max(*s + d.len() as u64);
        }
        if at < end {
            pieces.push((at, end));
        }
        let fresh: u64 = pieces.iter().map(|(s, e)| e - s).sum();
        budget.stats.bytes_overlap_trimmed += payload.len() as u64 - fresh;
        if fresh == 0 {
            budget.stats.segments_retransmitted += 1;
            return;
        }
        let fresh = usize::try_from(fresh).unwrap_or(usize::MAX);
        let stream_full = self.ooo_bytes.saturating_add(fresh) > limits.per_stream_bytes
            || self.ooo.len() + pieces.len() > limits.max_segments;
        let global_full = budget.used_bytes.saturating_add(fresh) > budget.max_bytes;
        if stream_full || global_full {
            if stream_full {
                budget.stats.per_stream_cap_hits += 1;
            } else {
                budget.stats.global_cap_hits += 1;
            }
            if self.ooo.is_empty() {
                // The segment alone is over a cap: nothing to give up.
                return;
            }
            // Give up on the hole: deliver what is buffered, then place
            // this segment again (the buffer is empty now).
            self.skip_hole(budget, out);
            if start <= self.next {
                self.deliver_from(start, payload, budget, out);
            } else {
                self.buffer(start, payload, limits, budget, out);
            }
            return;
        }
        for (s, e) in pieces {
            let from = usize::try_from(s - start).unwrap_or(usize::MAX);
            let to = usize::try_from(e - start).unwrap_or(usize::MAX);
            if let Some(bytes) = payload.get(from..to) {
                self.ooo_bytes += bytes.len();
                budget.used_bytes += bytes.len();
                self.ooo.insert(s, bytes.to_vec());
            }
        }
    }

    /// Skips the hole before the first buffered segment and delivers from
    /// there.
    fn skip_hole(&mut self, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        let Some((&first, _)) = self.ooo.first_key_value() else {
            return;
        };
        if first > self.next {
            let missing = first - self.next;
            budget.stats.gaps += 1;
            tracing::debug!(
                event = "tcp_gap",
                missing,
                "reassembly skipped missing bytes"
            );
            budget.stats.gap_bytes += missing;
            self.next = first;
            out(Chunk::Gap(missing));
        }
        self.drain(budget, out);
    }

    /// Delivers everything still buffered, skipping holes (the connection
    /// closed, reset or timed out), and frees the buffer.
    pub fn flush(&mut self, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        // Each round delivers at least the first buffered segment.
        while !self.ooo.is_empty() {
            self.skip_hole(budget, out);
        }
    }

    /// Frees the buffer without delivering it (returns its bytes to the
    /// global budget).
    pub fn release(&mut self, budget: &mut Budget) {
        budget.used_bytes = budget.used_bytes.saturating_sub(self.ooo_bytes);
        self.ooo.clear();
        self.ooo_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(seq, payload)` segments after a SYN at seq 999 and returns
    /// the stream as text, with `<gap N>` markers.
    fn run(segments: &[(u32, &[u8])], limits: Limits, budget: &mut Budget) -> String {
        let mut s = Stream::new();
        let mut got = String::new();
        let mut out = |c: Chunk<'_>| match c {
            Chunk::Data(d) => got.push_str(&String::from_utf8_lossy(d)),
            Chunk::Gap(n) => got.push_str(&format!("<gap {n}>")),
        };
        s.segment(
            Segment {
                seq: 999,
                syn: true,
                fin: false,
                payload: b"",
            },
            &limits,
            budget,
            &mut out,
        );
        for (seq, p) in segments {
            s.segment(
                Segment {
                    seq: *seq,
                    syn: false,
                    fin: false,
                    payload: p,
                },
                &limits,
                budget,
                &mut out,
            );
        }
        s.flush(budget, &mut out);
        got
    }

    fn budget() -> Budget {
        Budget::new(1 << 20)
    }

    #[test]
    fn in_order_segments_are_delivered_as_they_come() {
        let mut b = budget();
        let got = run(
            &[(1000, b"hello "), (1006, b"world")],
            Limits::default(),
            &mut b,
        );
        assert_eq!(got, "hello world");
        assert_eq!(b.stats.bytes_delivered, 11);
    }

    #[test]
    fn out_of_order_segments_are_put_back_in_order() {
        let mut b = budget();
        let got = run(
            &[(1006, b"world"), (1011, b"!"), (1000, b"hello ")],
            Limits::default(),
            &mut b,
        );
        assert_eq!(got, "hello world!");
        assert_eq!(b.stats.segments_out_of_order, 2);
        assert_eq!(b.used_bytes, 0);
    }

    #[test]
    fn retransmissions_are_delivered_once() {
        let mut b = budget();
        let got = run(
            &[
                (1000, b"abc"),
                (1000, b"abc"),
                (1003, b"def"),
                (1000, b"abcdef"),
            ],
            Limits::default(),
            &mut b,
        );
        assert_eq!(got, "abcdef");
        assert_eq!(b.stats.segments_retransmitted, 2);
    }

    #[test]
    fn overlapping_segments_keep_the_first_copy() {
        let mut b = budget();
        // "XX" overlaps delivered "cd": the first copy wins.
        let got = run(
            &[(1000, b"abcd"), (1002, b"XXef")],
            Limits::default(),
            &mut b,
        );
        assert_eq!(got, "abcdef");
        assert_eq!(b.stats.bytes_overlap_trimmed, 2);
        // Buffered copy wins over a later one too.
        let got = run(
            &[(1004, b"efgh"), (1002, b"cdXXXXij"), (1000, b"ab")],
            Limits::default(),
            &mut budget(),
        );
        assert_eq!(got, "abcdefghij");
    }

    #[test]
    fn a_hole_is_skipped_when_the_per_stream_cap_is_hit() {
        let mut b = budget();
        let limits = Limits {
            per_stream_bytes: 8,
            ..Limits::default()
        };
        let got = run(
            &[(1000, b"ab"), (1004, b"efgh"), (1008, b"ijklmn")],
            limits,
            &mut b,
        );
        assert_eq!(got, "ab<gap 2>efghijklmn");
        assert_eq!(b.stats.per_stream_cap_hits, 1);
        assert_eq!(b.stats.gaps, 1);
    }

    #[test]
    fn the_global_cap_is_counted_separately() {
        let mut b = Budget::new(3);
        let got = run(&[(1002, b"cd"), (1005, b"fg")], Limits::default(), &mut b);
        assert_eq!(got, "<gap 2>cd<gap 1>fg");
        assert_eq!(b.stats.global_cap_hits, 1);
        assert_eq!(b.used_bytes, 0);
    }

    #[test]
    fn segments_beyond_the_window_are_dropped() {
        let mut b = budget();
        let limits = Limits {
            window: 100,
            ..Limits::default()
        };
        let got = run(&[(5000, b"far"), (1000, b"near")], limits, &mut b);
        assert_eq!(got, "near");
        assert_eq!(b.stats.beyond_window, 1);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut s = Stream::new();
        let mut b = budget();
        let mut got = Vec::new();
        let mut out = |c: Chunk<'_>| {
            if let Chunk::Data(d) = c {
                got.extend_from_slice(d);
            }
        };
        let l = Limits::default();
        s.segment(
            Segment {
                seq: u32::MAX - 2,
                syn: true,
                fin: false,
                payload: b"",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: u32::MAX - 1,
                syn: false,
                fin: false,
                payload: b"ab",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: 1,
                syn: false,
                fin: false,
                payload: b"de",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: 0,
                syn: false,
                fin: true,
                payload: b"c",
            },
            &l,
            &mut b,
            &mut out,
        );
        assert_eq!(got, b"abcde");
        assert!(s.finished());
    }

    #[test]
    fn a_stream_picked_up_mid_way_starts_at_its_first_data() {
        let mut s = Stream::new();
        let mut b = budget();
        let mut got = Vec::new();
        let l = Limits::default();
        let mut out = |c: Chunk<'_>| {
            if let Chunk::Data(d) = c {
                got.extend_from_slice(d);
            }
        };
        s.segment(
            Segment {
                seq: 777,
                syn: false,
                fin: false,
                payload: b"",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: 500,
                syn: false,
                fin: false,
                payload: b"xy",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: 502,
                syn: false,
                fin: false,
                payload: b"z",
            },
            &l,
            &mut b,
            &mut out,
        );
        assert_eq!(got, b"xyz");
    }

    #[test]
    fn release_returns_buffered_bytes_to_the_global_budget() {
        let mut s = Stream::new();
        let mut b = budget();
        let l = Limits::default();
        let mut out = |_: Chunk<'_>| {};
        s.segment(
            Segment {
                seq: 0,
                syn: true,
                fin: false,
                payload: b"",
            },
            &l,
            &mut b,
            &mut out,
        );
        s.segment(
            Segment {
                seq: 10,
                syn: false,
                fin: false,
                payload: b"later",
            },
            &l,
            &mut b,
            &mut out,
        );
        assert_eq!(b.used_bytes, 5);
        s.release(&mut b);
        assert_eq!(b.used_bytes, 0);
        assert_eq!(s.buffered_bytes(), 0);
    }
}

#[cfg(test)]
mod shuffled {
    use super::*;

    /// SplitMix64, for deterministic shuffles without a dependency.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn any_segmentation_order_and_duplication_gives_back_the_stream() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for seed in 0..200u64 {
            let mut rng = Mix(seed);
            let isn = rng.next() as u32;
            // Cut into random segments, some duplicated with overlap.
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < data.len() {
                let len = 1 + rng.below(300);
                let end = (at + len).min(data.len());
                segs.push((at, end));
                if rng.below(4) == 0 {
                    let back = rng.below(at + 1);
                    segs.push((at - back.min(at), (end + rng.below(50)).min(data.len())));
                }
                at = end;
            }
            // Shuffle within a window of 16 segments (bounded reordering).
            for i in 0..segs.len() {
                let j = (i + rng.below(16)).min(segs.len() - 1);
                segs.swap(i, j);
            }
            let mut s = Stream::new();
            let mut b = Budget::new(1 << 20);
            let l = Limits::default();
            let mut got = Vec::new();
            let mut gaps = 0;
            let mut out = |c: Chunk<'_>| match c {
                Chunk::Data(d) => got.extend_from_slice(d),
                Chunk::Gap(_) => gaps += 1,
            };
            let syn = Segment {
                seq: isn,
                syn: true,
                fin: false,
                payload: b"",
            };
            s.segment(syn, &l, &mut b, &mut out);
            for (from, to) in &segs {
                let seg = Segment {
                    seq: isn.wrapping_add(1).wrapping_add(*from as u32),
                    syn: false,
                    fin: false,
                    payload: &data[*from..*to],
                };
                s.segment(seg, &l, &mut b, &mut out);
            }
            s.flush(&mut b, &mut out);
            assert_eq!(gaps, 0, "seed {seed}");
            assert!(
                got == data,
                "seed {seed}: {} of {} bytes",
                got.len(),
                data.len()
            );
            assert_eq!(b.used_bytes, 0, "seed {seed}");
        }
    }
}
