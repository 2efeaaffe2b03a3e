//! Counters and gauges behind `GET /metrics` (Prometheus text format 0.0.4).
//!
//! Plain atomics, no registry: every metric the collector exports is a field
//! here, so the set is fixed and documented in one place.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a request was rejected (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// 401: missing or unknown token.
    Unauthorized,
    /// 403: a token of the wrong role.
    Forbidden,
    /// 400: malformed JSON or an invalid item.
    Invalid,
    /// 413: body or item count over the limits (also after decompression).
    TooLarge,
    /// 415: unsupported `Content-Encoding`.
    Encoding,
    /// 503: ClickHouse down and no WAL, WAL full, queue full, shutting down.
    Unavailable,
    /// 422: ClickHouse refused the data; it went to the dead-letter file.
    DeadLetter,
    /// 429: too many failed console logins from the client's address.
    RateLimited,
}

impl RejectReason {
    const ALL: [RejectReason; 8] = [
        RejectReason::Unauthorized,
        RejectReason::Forbidden,
        RejectReason::Invalid,
        RejectReason::TooLarge,
        RejectReason::Encoding,
        RejectReason::Unavailable,
        RejectReason::DeadLetter,
        RejectReason::RateLimited,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::Forbidden => "forbidden",
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::Encoding => "encoding",
            RejectReason::Unavailable => "unavailable",
            RejectReason::DeadLetter => "dead_letter",
            RejectReason::RateLimited => "rate_limited",
        }
    }
}

/// Upper bounds (seconds) of the batch-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Metrics a subsystem renders itself (alert routing, mitigation), with
/// labels known only from the config.
pub trait MetricsSection: Send + Sync {
    /// Appends the section in Prometheus text format.
    fn render(&self, out: &mut String);
}

/// The registered sections, rendered after the fixed metrics.
#[derive(Default)]
pub struct Sections(std::sync::RwLock<Vec<std::sync::Arc<dyn MetricsSection>>>);

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sections")
    }
}

/// Every metric of one collector process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Incidents acknowledged (stored in ClickHouse or in the WAL).
    pub ingested: AtomicU64,
    /// Incidents acknowledged via the WAL (subset of `ingested`).
    pub ingested_via_wal: AtomicU64,
    rejected: [AtomicU64; 8],
    /// Heartbeats stored.
    pub heartbeats: AtomicU64,
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// ClickHouse errors classified transient (retried / WAL).
    pub clickhouse_errors_transient: AtomicU64,
    /// ClickHouse errors classified permanent (dead-letter).
    pub clickhouse_errors_permanent: AtomicU64,
    /// Incidents written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Bytes in WAL segments not yet stored in ClickHouse.
    pub wal_bytes: AtomicU64,
    /// WAL segments on disk.
    pub wal_segments: AtomicU64,
    /// WAL records skipped as corrupt during replay.
    pub wal_corrupt_records: AtomicU64,
    /// Incidents replayed from the WAL into ClickHouse.
    pub wal_replayed: AtomicU64,
    /// Requests refused because the WAL was full.
    pub wal_full: AtomicU64,
    /// Partitions dropped by retention.
    pub retention_dropped_partitions: AtomicU64,
    /// Compaction passes ended ([`crate::retention::compact_once`]).
    pub compaction_passes: AtomicU64,
    /// Compaction passes that failed (retried at the next pass).
    pub compaction_failures: AtomicU64,
    /// Day partitions merged by compaction.
    pub compacted_partitions: AtomicU64,
    /// Days left to the next pass because merges of their parts kept
    /// running.
    pub compaction_deferred: AtomicU64,
    /// Parts whose pre-aggregates were built.
    pub pre_aggregates_built: AtomicU64,
    /// Passes that built nothing because another collector held the
    /// build lock.
    pub pre_aggregate_lock_busy: AtomicU64,
    /// Sections added at start-up.
    sections: Sections,
    /// HTTP connections open now.
    pub connections_open: AtomicU64,
    /// Times every connection slot (`limits.max_connections`) was taken
    /// and new clients had to wait.
    pub connections_capped: AtomicU64,
    /// Console logins refused for a wrong or non-analyst token.
    pub login_failures: AtomicU64,
    /// Console logins refused (429) because their address failed too
    /// often.
    pub login_throttled: AtomicU64,
    /// Addresses forgotten by the login limiter because its table was
    /// full (`console.login_tracked_addresses`).
    pub login_limiter_evicted: AtomicU64,
}

impl Metrics {
    /// Adds a section rendered at the end of [`Metrics::render`].
    pub fn add_section(&self, s: std::sync::Arc<dyn MetricsSection>) {
        if let Ok(mut v) = self.sections.0.write() {
            v.push(s);
        }
    }

    /// Counts one rejected request.
    pub fn reject(&self, reason: RejectReason) {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.rejected.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Rejected requests for `reason` so far.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.rejected.get(i))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Records how long one ClickHouse batch insert took.
    pub fn observe_batch(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                b.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "shaobing_collector_ingested_incidents_total",
            "Incidents acknowledged to sensors (stored in ClickHouse or fsynced to the WAL).",
            self.ingested.load(Relaxed),
        );
        counter(
            "shaobing_collector_ingested_via_wal_total",
            "Incidents acknowledged after being written to the WAL.",
            self.ingested_via_wal.load(Relaxed),
        );
        counter(
            "shaobing_collector_heartbeats_total",
            "Sensor heartbeats stored.",
            self.heartbeats.load(Relaxed),
        );
        counter(
            "shaobing_collector_dead_lettered_incidents_total",
            "Incidents written to the dead-letter file.",
            self.dead_lettered.load(Relaxed),
        );
        counter(
            "shaobing_collector_wal_corrupt_records_total",
            "WAL records skipped because their length or CRC was wrong.",
            self.wal_corrupt_records.load(Relaxed),
        );
        counter(
            "shaobing_collector_wal_replayed_incidents_total",
            "Incidents replayed from the WAL into ClickHouse.",
            self.wal_replayed.load(Relaxed),
        );
        counter(
            "shaobing_collector_wal_full_total",
            "Requests answered 503 because the WAL was full.",
            self.wal_full.load(Relaxed),
        );
        counter(
            "shaobing_collector_retention_dropped_partitions_total",
            "Day partitions dropped by retention.",
            self.retention_dropped_partitions.load(Relaxed),
        );
        counter(
            "shaobing_collector_compaction_passes_total",
            "Compaction passes ended, failed ones included (every retention.compact_interval_s).",
            self.compaction_passes.load(Relaxed),
        );
        counter(
            "shaobing_collector_compaction_failures_total",
            "Compaction passes that failed; the next pass tries again.",
            self.compaction_failures.load(Relaxed),
        );
        counter(
            "shaobing_collector_compacted_partitions_total",
            "Day partitions merged by compaction (OPTIMIZE ... FINAL).",
            self.compacted_partitions.load(Relaxed),
        );
        counter(
            "shaobing_collector_compaction_deferred_total",
            "Days left to the next pass because merges of their parts kept running.",
            self.compaction_deferred.load(Relaxed),
        );
        counter(
            "shaobing_collector_pre_aggregates_built_total",
            "Merged parts whose summary pre-aggregates were built.",
            self.pre_aggregates_built.load(Relaxed),
        );
        counter(
            "shaobing_collector_pre_aggregate_lock_busy_total",
            "Passes that built no pre-aggregates because another collector held the build lock.",
            self.pre_aggregate_lock_busy.load(Relaxed),
        );
        counter(
            "shaobing_collector_connections_capped_total",
            "Times all limits.max_connections slots were taken, so new clients waited.",
            self.connections_capped.load(Relaxed),
        );
        counter(
            "shaobing_collector_console_login_failures_total",
            "Console logins refused for an unknown or non-analyst token.",
            self.login_failures.load(Relaxed),
        );
        counter(
            "shaobing_collector_console_login_throttled_total",
            "Console logins refused with 429: too many failures from the client's address.",
            self.login_throttled.load(Relaxed),
        );
        counter(
            "shaobing_collector_console_login_limiter_evicted_total",
            "Addresses the login limiter forgot because its table was full.",
            self.login_limiter_evicted.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_rejected_requests_total Requests rejected, by reason.\n# TYPE shaobing_collector_rejected_requests_total counter"
        );
        for (r, c) in RejectReason::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                o,
                "shaobing_collector_rejected_requests_total{{reason=\"{}\"}} {}",
                r.as_str(),
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_clickhouse_errors_total ClickHouse errors, by class.\n# TYPE shaobing_collector_clickhouse_errors_total counter\nshaobing_collector_clickhouse_errors_total{{class=\"transient\"}} {}\nshaobing_collector_clickhouse_errors_total{{class=\"permanent\"}} {}",
            self.clickhouse_errors_transient.load(Relaxed),
            self.clickhouse_errors_permanent.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_wal_bytes Bytes in the WAL not yet stored in ClickHouse.\n# TYPE shaobing_collector_wal_bytes gauge\nshaobing_collector_wal_bytes {}",
            self.wal_bytes.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_connections_open HTTP connections open now.\n# TYPE shaobing_collector_connections_open gauge\nshaobing_collector_connections_open {}",
            self.connections_open.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_wal_segments WAL segment files on disk.\n# TYPE shaobing_collector_wal_segments gauge\nshaobing_collector_wal_segments {}",
            self.wal_segments.load(Relaxed)
        );
        let name = "shaobing_collector_batch_insert_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Duration of successful ClickHouse batch inserts.\n# TYPE {name} histogram"
        );
        for (b, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {}", b.load(Relaxed));
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "{name}_count {count}");
        if let Ok(sections) = self.sections.0.read() {
            for s in sections.iter() {
                s.render(&mut o);
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_includes_every_reason_and_histogram_totals() {
        let m = Metrics::default();
        m.reject(RejectReason::Forbidden);
        m.reject(RejectReason::Forbidden);
        m.observe_batch(Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("shaobing_collector_rejected_requests_total{reason=\"forbidden\"} 2"));
        assert!(text.contains("shaobing_collector_rejected_requests_total{reason=\"invalid\"} 0"));
        assert!(text.contains("shaobing_collector_batch_insert_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("shaobing_collector_batch_insert_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("shaobing_collector_batch_insert_seconds_count 1"));
    }
}
