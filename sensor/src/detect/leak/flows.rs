//! The flow table's entries: flow keys (both directions share one), the
//! SYN cache that lets a flow start at its first byte without allocating
//! state for every SYN, and the per-direction state of a flow.

use std::net::IpAddr;

use super::scan::{ScanBuf, SigHits};
use super::stream::Parser;
use crate::detect::fasthash::FastState;
use crate::normalize::{self, AppProto};
use crate::reassembly::Stream;

/// One direction of a connection: addresses, ports, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FlowKey {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) proto: u8,
}

impl FlowKey {
    pub(super) fn reversed(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }

    /// The key both directions share, and which side `self` is (0: from
    /// the canonical key's `src`).
    pub(super) fn canonical(self) -> (FlowKey, usize) {
        if (self.src, self.sport) <= (self.dst, self.dport) {
            (self, 0)
        } else {
            (self.reversed(), 1)
        }
    }

    pub(super) fn sort_key(&self) -> (IpAddr, u16, IpAddr, u16, u8) {
        (self.src, self.sport, self.dst, self.dport, self.proto)
    }
}

/// Initial sequence numbers of bare SYNs and SYN-ACKs, in a fixed-size
/// direct-mapped table: a flow's state is allocated only when its first
/// payload arrives, so a spoofed SYN flood costs a table write per packet
/// instead of a flow each. The flow then starts at the cached ISN, so data
/// that arrives out of order from its first byte is still reassembled. A
/// slot overwritten before the data arrived (a flood, a collision) only
/// means the stream starts at its first data, as for a flow seen mid-way.
/// Memory: [`SYN_CACHE_SLOTS`] × about 48 bytes, allocated once.
pub(super) struct SynCache {
    pub(super) slots: Vec<Option<(FlowKey, usize, u32)>>,
    pub(super) hasher: FastState,
}

/// Slots in the SYN cache (a power of two).
pub const SYN_CACHE_SLOTS: usize = 1 << 16;

impl SynCache {
    pub(super) fn new() -> Self {
        SynCache {
            slots: vec![None; SYN_CACHE_SLOTS],
            hasher: FastState::new(0x5359_4e43_4143_4845),
        }
    }

    pub(super) fn slot(&self, key: &FlowKey, side: usize) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one((key, side)) as usize) & (SYN_CACHE_SLOTS - 1)
    }

    pub(super) fn remember(&mut self, key: FlowKey, side: usize, isn: u32) {
        let i = self.slot(&key, side);
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some((key, side, isn));
        }
    }

    pub(super) fn take(&mut self, key: &FlowKey, side: usize) -> Option<u32> {
        let i = self.slot(key, side);
        let slot = self.slots.get_mut(i)?;
        match slot {
            Some((k, s, isn)) if k == key && *s == side => {
                let isn = *isn;
                *slot = None;
                Some(isn)
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for SynCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynCache")
            .field("slots", &SYN_CACHE_SLOTS)
            .finish()
    }
}

/// One direction of a flow.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) stream: Stream,
    pub(super) parser: Parser,
    pub(super) app: AppProto,
    pub(super) scan: ScanBuf,
    pub(super) hits: Vec<SigHits>,
    /// Whether a FIN or RST ended this direction.
    pub(super) closed: bool,
    /// Whether any signature looks at this direction; if not, its bytes
    /// are neither reassembled nor scanned.
    pub(super) wanted: bool,
}

impl Side {
    pub(super) fn new(app: AppProto, wanted: bool) -> Self {
        Side {
            wanted,
            stream: Stream::new(),
            parser: Parser::default(),
            app,
            scan: ScanBuf::default(),
            hits: Vec::new(),
            closed: false,
        }
    }
}

#[derive(Debug)]
pub(super) struct Flow {
    pub(super) last_seen: i64,
    pub(super) sides: [Side; 2],
    /// HTTP requests waiting for their response (both directions' parsers
    /// share it).
    pub(super) exchange: normalize::http::Exchange,
}
