//! Scanning: normalized bytes of one direction gathered in batches and
//! matched against the compiled signatures, with the carry-over that
//! finds a match across batch ends exactly once (see the module docs of
//! [`super`]).

use shaobing_signatures::{Hit, SignatureSet};
use shaobing_wire::{Direction, Timestamp};

use crate::normalize::Sink;

#[derive(Debug)]
pub(super) struct SigHits {
    pub(super) signature: usize,
    pub(super) count: u64,
    pub(super) first_ts: Timestamp,
    pub(super) excerpt: String,
}

/// Normalized bytes of one direction waiting to be scanned, with the
/// carry-over from the previous batch.
#[derive(Debug, Default)]
pub(super) struct ScanBuf {
    pub(super) buf: Vec<u8>,
    /// Hits ending at or before this index of `buf` were already judged.
    pub(super) settled: usize,
    /// Capture time of the newest bytes in `buf`.
    pub(super) ts: Timestamp,
}

/// What scanning needs besides a side: the compiled set and the scope of
/// the direction being scanned.
pub(super) struct ScanCtx<'a> {
    pub(super) sigs: &'a SignatureSet,
    /// Longest hit span (carry and hold-back size).
    pub(super) span: usize,
    pub(super) batch: usize,
    pub(super) dir: Direction,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) hits_by_signature: &'a mut [u64],
    pub(super) bytes_scanned: &'a mut u64,
    pub(super) raw_hits: &'a mut u64,
    /// Bytes waiting in every scan buffer, and the most allowed.
    pub(super) buffered: &'a mut usize,
    pub(super) max_buffered: usize,
    pub(super) early_scans: &'a mut u64,
}

impl ScanCtx<'_> {
    /// Scans `scan.buf`; `last` settles everything (end of a unit).
    pub(super) fn scan(&mut self, scan: &mut ScanBuf, hits: &mut Vec<SigHits>, last: bool) {
        let len = scan.buf.len();
        let settle_to = if last {
            len
        } else {
            len.saturating_sub(self.span)
        };
        if settle_to <= scan.settled && !last {
            return;
        }
        *self.bytes_scanned += settle_to.saturating_sub(scan.settled) as u64;
        let sigs = self.sigs;
        let from = scan.settled;
        let buf = &scan.buf;
        let ts = scan.ts;
        let dir = self.dir;
        let (sport, dport) = (self.sport, self.dport);
        let counters = &mut *self.hits_by_signature;
        let mut raw = 0u64;
        sigs.scan(buf, |hit: Hit| {
            if hit.end <= from || hit.end > settle_to {
                return;
            }
            raw += 1;
            let Some(sig) = sigs.signatures().get(hit.signature) else {
                return;
            };
            if !sig.direction.admits(dir) || !sig.applies_to_ports(sport, dport) {
                return;
            }
            if let Some(n) = counters.get_mut(hit.signature) {
                *n += 1;
            }
            match hits.iter_mut().find(|h| h.signature == hit.signature) {
                Some(h) => h.count += 1,
                None => hits.push(SigHits {
                    signature: hit.signature,
                    count: 1,
                    first_ts: ts,
                    excerpt: sigs.excerpt(buf, &hit),
                }),
            }
        });
        *self.raw_hits += raw;
        if last {
            *self.buffered = self.buffered.saturating_sub(scan.buf.len());
            scan.buf.clear();
            scan.settled = 0;
            return;
        }
        // Keep what a hit ending after `settle_to` can start in.
        let drop = settle_to.saturating_sub(self.span);
        scan.buf.drain(..drop);
        *self.buffered = self.buffered.saturating_sub(drop);
        scan.settled = settle_to - drop;
    }
}

/// Feeds normalized bytes of one side to its scan buffer.
pub(super) struct SideSink<'a, 'c> {
    pub(super) ctx: &'a mut ScanCtx<'c>,
    pub(super) scan: &'a mut ScanBuf,
    pub(super) hits: &'a mut Vec<SigHits>,
}

impl Sink for SideSink<'_, '_> {
    fn data(&mut self, bytes: &[u8]) {
        // In pieces of at most one batch, so the buffer stays bounded.
        for piece in bytes.chunks(self.ctx.batch.max(1)) {
            self.scan.buf.extend_from_slice(piece);
            *self.ctx.buffered += piece.len();
            let full = self.scan.buf.len() >= self.scan.settled + self.ctx.span + self.ctx.batch;
            let crowded = *self.ctx.buffered > self.ctx.max_buffered;
            if full || crowded {
                if !full {
                    *self.ctx.early_scans += 1;
                }
                self.ctx.scan(self.scan, self.hits, false);
            }
        }
    }

    fn boundary(&mut self) {
        if !self.scan.buf.is_empty() {
            self.ctx.scan(self.scan, self.hits, true);
        }
    }
}
