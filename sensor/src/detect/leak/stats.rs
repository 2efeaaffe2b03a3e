//! The leak detector's counters and its one-line summary.

use crate::defrag::DefragStats;
use crate::normalize::NormalizeStats;
use crate::reassembly::ReassemblyStats;

/// Counters the detector keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeakStats {
    /// Normalized bytes scanned (carried-over bytes counted once).
    pub bytes_scanned: u64,
    /// Signature hits before direction/port/min_count filtering.
    pub raw_hits: u64,
    /// Flows tracked now.
    pub flows: u64,
    /// Flows closed early because the table was full.
    pub flows_evicted: u64,
    /// Flows closed by the idle timeout.
    pub flows_timed_out: u64,
    /// Scans done before a full batch because `scan_memory_bytes` was
    /// reached.
    pub early_scans: u64,
    /// Payload bytes of flow directions no enabled signature looks at
    /// (by direction and ports): counted, not reassembled or scanned.
    pub bytes_out_of_scope: u64,
    /// IP defragmentation counters.
    pub defrag: DefragStats,
    /// Reassembled datagrams whose transport header was not valid.
    pub defrag_undecodable: u64,
    /// TCP reassembly counters.
    pub reassembly: ReassemblyStats,
    /// Normalizer counters.
    pub normalize: NormalizeStats,
    /// Per signature id: hits that passed the direction and port filters.
    pub hits_by_signature: Vec<(String, u64)>,
    /// Per signature id: incidents emitted.
    pub incidents_by_signature: Vec<(String, u64)>,
}

impl LeakStats {
    /// Every counter under a stable name, as live heartbeats report them
    /// (`leak_counters`). All are totals since the detector started except
    /// [`GAUGES`](Self::GAUGES) (`flows`: open now).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let (d, r) = (&self.defrag, &self.reassembly);
        let mut all = vec![
            ("bytes_scanned", self.bytes_scanned),
            ("raw_hits", self.raw_hits),
            ("flows", self.flows),
            ("flows_evicted", self.flows_evicted),
            ("flows_timed_out", self.flows_timed_out),
            ("early_scans", self.early_scans),
            ("bytes_out_of_scope", self.bytes_out_of_scope),
            ("defrag_fragments", d.fragments),
            ("defrag_reassembled", d.reassembled),
            ("defrag_overlap_bytes", d.overlap_bytes),
            ("defrag_oversized", d.oversized),
            ("defrag_evicted", d.evicted),
            ("defrag_timed_out", d.timed_out),
            ("defrag_undecodable", self.defrag_undecodable),
            ("reassembly_bytes_delivered", r.bytes_delivered),
            ("reassembly_segments_out_of_order", r.segments_out_of_order),
            (
                "reassembly_segments_retransmitted",
                r.segments_retransmitted,
            ),
            ("reassembly_bytes_overlap_trimmed", r.bytes_overlap_trimmed),
            ("reassembly_per_stream_cap_hits", r.per_stream_cap_hits),
            ("reassembly_global_cap_hits", r.global_cap_hits),
            ("reassembly_beyond_window", r.beyond_window),
            ("reassembly_gaps", r.gaps),
            ("reassembly_gap_bytes", r.gap_bytes),
        ];
        all.extend(self.normalize.counters());
        all
    }

    /// The [`counters`](Self::counters) that are levels, not totals.
    pub const GAUGES: [&'static str; 1] = ["flows"];

    /// One line for the end of a replay: per-signature matches and
    /// incidents, then reassembly, normalizer and flow-table counters.
    /// Holds counts only, never payload bytes.
    pub fn summary(&self) -> String {
        let per: Vec<String> = self
            .hits_by_signature
            .iter()
            .zip(&self.incidents_by_signature)
            .map(|((id, hits), (_, incidents))| format!("{id}={hits}/{incidents}"))
            .collect();
        let r = &self.reassembly;
        let normalize: Vec<String> = self
            .normalize
            .counters()
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        format!(
            "leak: {} bytes scanned ({} early scans, {} bytes out of every signature's scope); matches/incidents by signature: {}; reassembly: delivered={} out_of_order={} retransmitted={} overlap_trimmed={} gaps={} gap_bytes={} stream_cap_hits={} global_cap_hits={} beyond_window={}; normalize: {}; flows: open={} evicted={} timed_out={}; defrag: fragments={} reassembled={} overlap_bytes={} oversized={} evicted={} timed_out={} undecodable={}",
            self.bytes_scanned,
            self.early_scans,
            self.bytes_out_of_scope,
            per.join(" "),
            r.bytes_delivered,
            r.segments_out_of_order,
            r.segments_retransmitted,
            r.bytes_overlap_trimmed,
            r.gaps,
            r.gap_bytes,
            r.per_stream_cap_hits,
            r.global_cap_hits,
            r.beyond_window,
            normalize.join(" "),
            self.flows,
            self.flows_evicted,
            self.flows_timed_out,
            self.defrag.fragments,
            self.defrag.reassembled,
            self.defrag.overlap_bytes,
            self.defrag.oversized,
            self.defrag.evicted,
            self.defrag.timed_out,
            self.defrag_undecodable,
        )
    }
}
