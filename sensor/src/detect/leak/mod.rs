//! Leak detection: leak signatures over reassembled, normalized streams,
//! one incident per flow, direction and signature.
//!
//! # Path of the bytes
//!
//! 1. **Flows.** TCP and UDP packets are grouped by connection (both
//!    directions share one entry). A TCP flow is created by a SYN or a
//!    segment with payload; pure ACKs of unknown flows are ignored.
//! 2. **Reassembly** ([`crate::reassembly`]): each TCP direction is put
//!    back in order, retransmissions and overlaps resolved first-wins,
//!    with bounded out-of-order buffers and a global memory cap. UDP
//!    payloads are taken one datagram at a time.
//! 3. **Normalization** ([`crate::normalize`]): the first bytes of a
//!    direction choose its parser: HTTP/1.x (request or status line),
//!    SMTP (client side of port 25 or 587), or raw bytes.
//! 4. **Scanning**: normalized bytes are gathered per direction and
//!    scanned with the compiled [`SignatureSet`] in batches of
//!    `scan_batch_bytes`. The signatures crate scans one buffer at a time,
//!    so the scanner carries the last `2 × L` bytes of a batch over to the
//!    next (`L` = [`SignatureSet::max_match_len`]) and reports a hit only
//!    when it ends in the settled part of the buffer: after the bytes
//!    reported before, and at least `L` bytes before the end (the held-back
//!    tail is settled by the next batch, or at a unit boundary / end of
//!    stream). So a match straddling two segments or two batches is found
//!    exactly once, and a digit run or password value cut by a batch end
//!    is judged whole. Scanning restarts (no carry) at unit boundaries: a
//!    new HTTP message, body or MIME part, or a reassembly gap.
//! 5. **Hits** are kept per flow direction and signature: a count, the
//!    capture time of the first one and a masked excerpt of it (the
//!    matched bytes themselves are never stored). A signature counts only
//!    if the data moved in its direction (outbound by default) and its
//!    port scope (if any) includes either port.
//!
//! A flow's incidents are emitted when it ends: both directions finished
//! (FIN) or a RST, `flow_timeout_secs` of capture time without packets,
//! eviction when the table is full (the oldest tenth), or the end of the
//! capture; so `match_count` is the flow's total. A signature fires only if
//! the direction reached its `min_count`.

mod flows;
mod incident;
mod scan;
mod stats;
mod stream;

use std::sync::Arc;

use shaobing_signatures::SignatureSet;
use shaobing_wire::{Direction, Timestamp};

use super::fasthash::{random_seed, FastMap, FastState};
use super::window::slot_of;
use super::{direction, IncidentSink};
use crate::config::LeakConfig;
use crate::decode::{proto, tcp_flags, Decoded};
use crate::netset::NetSet;
use crate::normalize::{self, AppProto, NormalizeStats, Normalizer, Sink};
use crate::reassembly::{self, Budget, Chunk, Segment};
pub use flows::SYN_CACHE_SLOTS;
use flows::{Flow, FlowKey, Side, SynCache};
use scan::{ScanCtx, SideSink, SigHits};
pub use stats::LeakStats;
use stream::ParseCtx;

/// What scanning needs that stays the same while the detector runs.
#[derive(Clone, Copy, Debug)]
struct ScanLimits {
    /// Longest hit span (carry and hold-back size).
    span: usize,
    /// `scan_batch_bytes`.
    batch: usize,
    /// `scan_memory_bytes`.
    max_buffered: usize,
}

/// The scanning context of the flow direction `sender` (`sender.src`
/// sends the bytes): its direction and ports, and the counters it adds to.
fn scan_ctx<'a>(
    sigs: &'a SignatureSet,
    limits: ScanLimits,
    protected: &NetSet,
    sender: FlowKey,
    hits_by_signature: &'a mut [u64],
    stats: &'a mut LeakStats,
    buffered: &'a mut usize,
) -> ScanCtx<'a> {
    ScanCtx {
        sigs,
        span: limits.span,
        batch: limits.batch,
        dir: direction(protected, sender.src, sender.dst),
        sport: sender.sport,
        dport: sender.dport,
        hits_by_signature,
        bytes_scanned: &mut stats.bytes_scanned,
        raw_hits: &mut stats.raw_hits,
        buffered,
        max_buffered: limits.max_buffered,
        early_scans: &mut stats.early_scans,
    }
}

/// The leak detector.
pub struct Leak {
    cfg: LeakConfig,
    sigs: Arc<SignatureSet>,
    limits: ScanLimits,
    protected: NetSet,
    sensor: String,
    flows: FastMap<FlowKey, Flow>,
    /// ISNs of bare SYNs whose flows have no state yet.
    syn_cache: SynCache,
    hits_by_signature: Vec<u64>,
    incidents_by_signature: Vec<u64>,
    budget: Budget,
    reassembly_limits: reassembly::Limits,
    normalize_limits: normalize::Limits,
    normalize_stats: NormalizeStats,
    /// Bytes waiting in all scan buffers.
    scan_buffered: usize,
    slot: i64,
    stats: LeakStats,
}

impl Leak {
    /// A detector with compiled `sigs` for `protected` networks.
    pub fn new(
        cfg: LeakConfig,
        sigs: Arc<SignatureSet>,
        protected: NetSet,
        sensor: String,
    ) -> Self {
        let n = sigs.signatures().len();
        let limits = ScanLimits {
            span: sigs.max_match_len(),
            batch: cfg.scan_batch_bytes,
            max_buffered: cfg.scan_memory_bytes,
        };
        let reassembly_limits = reassembly::Limits {
            per_stream_bytes: cfg.reassembly_stream_bytes,
            max_segments: cfg.reassembly_max_segments,
            window: reassembly::Limits::default().window,
        };
        let normalize_limits = normalize::Limits {
            max_header_bytes: cfg.max_header_bytes,
            max_decompressed_bytes: cfg.max_decompressed_bytes,
            max_ratio: cfg.max_decompression_ratio,
            ..normalize::Limits::default()
        };
        Leak {
            budget: Budget::new(cfg.reassembly_memory_bytes),
            cfg,
            sigs,
            limits,
            protected,
            sensor,
            flows: FastMap::with_hasher(FastState::new(random_seed())),
            hits_by_signature: vec![0; n],
            syn_cache: SynCache::new(),
            incidents_by_signature: vec![0; n],
            reassembly_limits,
            normalize_limits,
            normalize_stats: NormalizeStats::default(),
            scan_buffered: 0,
            slot: i64::MIN,
            stats: LeakStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> LeakStats {
        let mut s = self.stats.clone();
        s.flows = self.flows.len() as u64;
        s.reassembly = self.budget.stats.clone();
        s.normalize = self.normalize_stats.clone();
        let per = |v: &[u64]| {
            self.sigs
                .signatures()
                .iter()
                .zip(v)
                .map(|(sig, n)| (sig.id.clone(), *n))
                .collect()
        };
        s.hits_by_signature = per(&self.hits_by_signature);
        s.incidents_by_signature = per(&self.incidents_by_signature);
        s
    }

    /// Moves capture time to `ts`: once a second of capture time, flows
    /// idle for `flow_timeout_secs` are closed. [`on_packet`](Self::on_packet)
    /// does this itself; the pipeline also calls it for packets that do
    /// not reach the detector (fragments still being reassembled).
    #[inline]
    pub fn advance(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        let slot = slot_of(ts.micros()) / 10;
        if slot > self.slot {
            self.slot = slot;
            self.expire(ts, sink);
        }
    }

    /// Feeds one decoded packet captured at `ts`: a whole datagram (the
    /// pipeline defragments before the detector).
    pub fn on_packet(&mut self, ts: Timestamp, d: &Decoded<'_>, sink: &mut impl IncidentSink) {
        self.advance(ts, sink);
        let tcp = d.proto == proto::TCP;
        if !tcp && d.proto != proto::UDP {
            return;
        }
        if d.fragment != crate::decode::Fragment::None {
            // Fragments reach the detector only once the pipeline's
            // defragmenter has made their datagram whole again.
            return;
        }
        let syn = tcp && d.tcp_flags & tcp_flags::SYN != 0;
        let fin = tcp && d.tcp_flags & tcp_flags::FIN != 0;
        let rst = tcp && d.tcp_flags & tcp_flags::RST != 0;
        let (key, side_ix) = FlowKey {
            src: d.src,
            dst: d.dst,
            sport: d.src_port,
            dport: d.dst_port,
            proto: d.proto,
        }
        .canonical();
        if !self.flows.contains_key(&key) {
            if d.payload.is_empty() {
                if syn && !fin && !rst {
                    self.syn_cache.remember(key, side_ix, d.tcp_seq);
                }
                return;
            }
            let wanted = [key, key.reversed()].map(|k| {
                self.sigs
                    .wants(direction(&self.protected, k.src, k.dst), k.sport, k.dport)
            });
            if !wanted.get(side_ix).copied().unwrap_or(false) {
                // No signature looks at this packet's direction (e.g. an
                // inbound flood with payload): no flow, no memory, until
                // the other direction sends bytes a signature wants.
                self.stats.bytes_out_of_scope += d.payload.len() as u64;
                return;
            }
            if self.flows.len() >= self.cfg.max_flows {
                self.evict_oldest(ts, sink);
            }
            let app = if tcp { AppProto::Tcp } else { AppProto::Udp };
            let mut flow = Flow {
                last_seen: ts.micros(),
                sides: wanted.map(|w| Side::new(app, w)),
                exchange: normalize::http::Exchange::default(),
            };
            if tcp {
                // Start each direction at its SYN, if it was seen.
                for (ix, side) in flow.sides.iter_mut().enumerate() {
                    if let Some(isn) = self.syn_cache.take(&key, ix) {
                        let syn = Segment {
                            seq: isn,
                            syn: true,
                            fin: false,
                            payload: &[],
                        };
                        side.stream.segment(
                            syn,
                            &self.reassembly_limits,
                            &mut self.budget,
                            &mut |_| {},
                        );
                    }
                }
            }
            self.flows.insert(key, flow);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen = ts.micros();
        let Flow {
            sides, exchange, ..
        } = flow;
        let Some(side) = sides.get_mut(side_ix) else {
            return;
        };
        if side.wanted {
            let sender = FlowKey {
                src: d.src,
                dst: d.dst,
                sport: d.src_port,
                dport: d.dst_port,
                proto: d.proto,
            };
            let mut ctx = scan_ctx(
                &self.sigs,
                self.limits,
                &self.protected,
                sender,
                &mut self.hits_by_signature,
                &mut self.stats,
                &mut self.scan_buffered,
            );
            if !tcp {
                // One datagram, one unit, unless the flow is an encrypted
                // session's (DTLS, QUIC, WireGuard).
                side.scan.ts = ts;
                let mut s = SideSink {
                    ctx: &mut ctx,
                    scan: &mut side.scan,
                    hits: &mut side.hits,
                };
                side.parser
                    .norm
                    .get_or_insert_with(|| Normalizer::new(AppProto::Udp))
                    .push(
                        d.payload,
                        &self.normalize_limits,
                        &mut self.normalize_stats,
                        exchange,
                        &mut s,
                    );
                return;
            }
            let Side {
                stream,
                parser,
                app,
                scan,
                hits,
                closed,
                ..
            } = side;
            scan.ts = ts;
            let mut cx = ParseCtx {
                app,
                sport: d.src_port,
                dport: d.dst_port,
                limits: &self.normalize_limits,
                content: &self.cfg.content,
                stats: &mut self.normalize_stats,
                exchange,
            };
            let mut s = SideSink {
                ctx: &mut ctx,
                scan,
                hits,
            };
            stream.segment(
                Segment {
                    seq: d.tcp_seq,
                    syn,
                    fin,
                    payload: d.payload,
                },
                &self.reassembly_limits,
                &mut self.budget,
                &mut |chunk| match chunk {
                    Chunk::Data(data) => parser.data(data, &mut cx, &mut s),
                    Chunk::Gap(_) => parser.gap(&mut cx, &mut s),
                },
            );
            if stream.finished() || rst {
                *closed = true;
            }
        } else {
            self.stats.bytes_out_of_scope += d.payload.len() as u64;
            side.closed |= fin || rst;
        }
        if rst || sides.iter().all(|s| s.closed) {
            self.close(key, sink);
        }
    }

    /// Closes the oldest tenth of the table (amortizes the scan).
    fn evict_oldest(&mut self, _ts: Timestamp, sink: &mut impl IncidentSink) {
        let mut ages: Vec<(i64, FlowKey)> =
            self.flows.iter().map(|(k, f)| (f.last_seen, *k)).collect();
        ages.sort_unstable_by_key(|(t, k)| (*t, k.sort_key()));
        let n = (ages.len() / 10).max(1);
        for (_, key) in ages.into_iter().take(n) {
            self.stats.flows_evicted += 1;
            self.close(key, sink);
        }
    }

    fn expire(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        let timeout = i64::try_from(self.cfg.flow_timeout_secs).unwrap_or(i64::MAX / 2) * 1_000_000;
        let cutoff = ts.micros().saturating_sub(timeout);
        let mut idle: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| f.last_seen < cutoff)
            .map(|(k, _)| *k)
            .collect();
        idle.sort_unstable_by_key(FlowKey::sort_key);
        for key in idle {
            self.stats.flows_timed_out += 1;
            self.close(key, sink);
        }
    }

    /// Emits every flow's incidents (end of capture or shutdown).
    pub fn finish(&mut self, _ts: Timestamp, sink: &mut impl IncidentSink) {
        let mut keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        keys.sort_unstable_by_key(FlowKey::sort_key);
        for key in keys {
            self.close(key, sink);
        }
    }

    /// Flushes a flow's streams, normalizers and scanners, and emits its
    /// incidents.
    fn close(&mut self, key: FlowKey, sink: &mut impl IncidentSink) {
        let Some(mut flow) = self.flows.remove(&key) else {
            return;
        };
        let Flow {
            sides, exchange, ..
        } = &mut flow;
        for (ix, side) in sides.iter_mut().enumerate() {
            let dkey = if ix == 0 { key } else { key.reversed() };
            let mut ctx = scan_ctx(
                &self.sigs,
                self.limits,
                &self.protected,
                dkey,
                &mut self.hits_by_signature,
                &mut self.stats,
                &mut self.scan_buffered,
            );
            let Side {
                stream,
                parser,
                app,
                scan,
                hits,
                ..
            } = side;
            let mut cx = ParseCtx {
                app,
                sport: dkey.sport,
                dport: dkey.dport,
                limits: &self.normalize_limits,
                content: &self.cfg.content,
                stats: &mut self.normalize_stats,
                exchange,
            };
            let mut s = SideSink {
                ctx: &mut ctx,
                scan,
                hits,
            };
            stream.flush(&mut self.budget, &mut |chunk| match chunk {
                Chunk::Data(data) => parser.data(data, &mut cx, &mut s),
                Chunk::Gap(_) => parser.gap(&mut cx, &mut s),
            });
            stream.release(&mut self.budget);
            parser.finish(&mut cx, &mut s);
            s.boundary();
        }
        for (ix, side) in flow.sides.iter_mut().enumerate() {
            let dkey = if ix == 0 { key } else { key.reversed() };
            let dir = direction(&self.protected, dkey.src, dkey.dst);
            for h in std::mem::take(&mut side.hits) {
                self.emit(dkey, dir, side.app, h, sink);
            }
        }
    }

    fn emit(
        &mut self,
        key: FlowKey,
        dir: Direction,
        app: AppProto,
        h: SigHits,
        sink: &mut impl IncidentSink,
    ) {
        let Some(sig) = self.sigs.signatures().get(h.signature) else {
            return;
        };
        if h.count < u64::from(sig.min_count) {
            return;
        }
        if let Some(n) = self.incidents_by_signature.get_mut(h.signature) {
            *n += 1;
        }
        sink.emit(incident::build(&self.sensor, sig, key, dir, app, h));
    }
}

#[cfg(test)]
mod tests {
    use super::scan::ScanBuf;
    use super::stream::SNIFF_BYTES;
    use super::*;
    use shaobing_wire::Incident;

    /// Scans `data` fed in pieces of `piece` bytes with batches of `batch`
    /// bytes; returns (signature id, count) pairs.
    fn stream_hits(
        sigs: &SignatureSet,
        data: &[u8],
        piece: usize,
        batch: usize,
    ) -> Vec<(String, u64)> {
        let mut counters = vec![0u64; sigs.signatures().len()];
        let (mut scanned, mut raw, mut early) = (0u64, 0u64, 0u64);
        let mut buffered = 0usize;
        let mut ctx = ScanCtx {
            sigs,
            span: sigs.max_match_len(),
            batch,
            dir: Direction::Outbound,
            sport: 40000,
            dport: 80,
            hits_by_signature: &mut counters,
            bytes_scanned: &mut scanned,
            raw_hits: &mut raw,
            buffered: &mut buffered,
            max_buffered: usize::MAX,
            early_scans: &mut early,
        };
        let mut scan = ScanBuf::default();
        let mut hits = Vec::new();
        let mut sink = SideSink {
            ctx: &mut ctx,
            scan: &mut scan,
            hits: &mut hits,
        };
        for p in data.chunks(piece) {
            sink.data(p);
        }
        sink.boundary();
        assert_eq!(scanned, data.len() as u64, "every byte settled once");
        assert_eq!(buffered, 0, "the buffer accounting returns to zero");
        let mut out: Vec<(String, u64)> = hits
            .iter()
            .map(|h| (sigs.signatures()[h.signature].id.clone(), h.count))
            .collect();
        out.sort();
        out
    }

    fn tcp_packet<'a>(
        src: &str,
        dst: &str,
        sport: u16,
        flags: u8,
        seq: u32,
        payload: &'a [u8],
    ) -> Decoded<'a> {
        Decoded {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: proto::TCP,
            ttl: 64,
            src_port: sport,
            dst_port: 80,
            tcp_flags: flags,
            tcp_seq: seq,
            tcp_ack: 0,
            payload,
            fragment: crate::decode::Fragment::None,
            frag: crate::decode::Frag::default(),
            tunnels: Default::default(),
            malformed_tunnels: Default::default(),
            outer_len: 0,
        }
    }

    #[test]
    fn a_spoofed_syn_flood_allocates_no_flow_state() {
        let mut l = detector();
        let mut out: Vec<Incident> = Vec::new();
        for i in 0u32..200_000 {
            let src = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
            let d = tcp_packet(
                &src,
                "10.0.0.10",
                1024 + (i % 60_000) as u16,
                tcp_flags::SYN,
                i,
                b"",
            );
            l.on_packet(Timestamp(i64::from(i)), &d, &mut out);
        }
        assert_eq!(l.stats().flows, 0, "bare SYNs open no flow");
        assert_eq!(l.stats().flows_evicted, 0);
        assert!(out.is_empty());
    }

    #[test]
    fn data_arriving_out_of_order_after_a_cached_syn_is_reassembled() {
        let mut l = detector();
        let mut out: Vec<Incident> = Vec::new();
        let body = "POST /x HTTP/1.1\r\nContent-Length: 20\r\n\r\n文件 绝密★ 内容".as_bytes();
        let (first, second) = body.split_at(body.len() - 9); // cut inside the marking
        let isn = 1_000u32;
        let (c, srv) = ("10.1.2.3", "203.0.113.80");
        l.on_packet(
            Timestamp(0),
            &tcp_packet(c, srv, 40000, tcp_flags::SYN, isn, b""),
            &mut out,
        );
        // The second half arrives before the first: only the SYN says where
        // the stream starts.
        let seq2 = isn + 1 + first.len() as u32;
        l.on_packet(
            Timestamp(1),
            &tcp_packet(c, srv, 40000, tcp_flags::ACK, seq2, second),
            &mut out,
        );
        l.on_packet(
            Timestamp(2),
            &tcp_packet(c, srv, 40000, tcp_flags::ACK, isn + 1, first),
            &mut out,
        );
        let end = isn + 1 + body.len() as u32;
        l.on_packet(
            Timestamp(3),
            &tcp_packet(c, srv, 40000, tcp_flags::FIN | tcp_flags::ACK, end, b""),
            &mut out,
        );
        l.finish(Timestamp(4), &mut out);
        let marks: Vec<_> = out
            .iter()
            .filter(|i| i.signature == "classification-marking")
            .collect();
        assert_eq!(marks.len(), 1, "{out:?}");
        assert_eq!(marks[0].match_count, Some(1));
    }

    #[test]
    fn carried_over_scanning_finds_every_match_once_whatever_the_cuts() {
        let sigs = SignatureSet::default_pack().unwrap();
        let mut data = Vec::new();
        for i in 0..40 {
            data.extend_from_slice("正文内容，".repeat(i % 7).as_bytes());
            data.extend_from_slice("绝密★一年 ".as_bytes());
            data.extend_from_slice(b"id 11010519491231002X, card 6222 0210 0012 3450; ");
            data.extend_from_slice(&[b'x'; 37]);
        }
        let whole = stream_hits(&sigs, &data, data.len(), 1 << 20);
        assert_eq!(
            whole,
            [
                ("bank-card".to_string(), 40),
                ("classification-marking".to_string(), 40),
                ("cn-resident-id".to_string(), 40)
            ]
        );
        for (piece, batch) in [(1, 64), (7, 100), (13, 1024), (1500, 300), (4096, 16384)] {
            assert_eq!(
                stream_hits(&sigs, &data, piece, batch),
                whole,
                "piece {piece} batch {batch}"
            );
        }
    }

    #[test]
    fn a_digit_run_cut_by_a_batch_end_is_judged_whole() {
        let sigs = SignatureSet::default_pack().unwrap();
        // A valid all-digit id, then one more digit: 19 digits are not an
        // id, even though the first 18 are one.
        let id = [
            "44030419850615123",
            "31011219900101234",
            "11010119900307123",
        ]
        .iter()
        .map(|p| shaobing_pcapgen::payload::resident_id(p))
        .find(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .unwrap();
        let mut data = vec![b' '; 200];
        data.extend_from_slice(format!("{id} ").as_bytes());
        assert_eq!(stream_hits(&sigs, &data, data.len(), 1 << 20).len(), 1);
        // One more digit that makes no 19-digit card either (Luhn).
        let longer = (b'0'..=b'9')
            .map(|extra| {
                let mut v = vec![b' '; 200];
                v.extend_from_slice(id.as_bytes());
                v.extend_from_slice(&[extra, b' ']);
                v
            })
            .find(|v| stream_hits(&sigs, v, v.len(), 1 << 20).is_empty())
            .unwrap();
        for piece in [1, 5, 201, 210, 218, 219] {
            assert!(
                stream_hits(&sigs, &longer, piece, 64).is_empty(),
                "piece {piece}"
            );
            assert_eq!(
                stream_hits(&sigs, &data, piece, 64).len(),
                1,
                "piece {piece}"
            );
        }
    }

    fn packet<'a>(
        src: &str,
        dst: &str,
        proto: u8,
        flags: u8,
        seq: u32,
        payload: &'a [u8],
    ) -> Decoded<'a> {
        let (src, sport) = src.rsplit_once(':').unwrap();
        let (dst, dport) = dst.rsplit_once(':').unwrap();
        Decoded {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            ttl: 64,
            src_port: sport.parse().unwrap(),
            dst_port: dport.parse().unwrap(),
            tcp_flags: flags,
            tcp_seq: seq,
            tcp_ack: 0,
            payload,
            fragment: crate::decode::Fragment::None,
            frag: crate::decode::Frag::default(),
            tunnels: Default::default(),
            malformed_tunnels: Default::default(),
            outer_len: 0,
        }
    }

    fn detector() -> Leak {
        Leak::new(
            LeakConfig::default(),
            Arc::new(SignatureSet::default_pack().unwrap()),
            NetSet::private_defaults(),
            "test".into(),
        )
    }

    #[test]
    fn a_udp_datagram_is_scanned_as_udp_and_reported_at_the_end() {
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let d = packet(
            "10.0.0.5:5353",
            "198.51.100.1:514",
            proto::UDP,
            0,
            0,
            "log 机密★ x".as_bytes(),
        );
        leak.on_packet(ts, &d, &mut out);
        assert!(
            out.is_empty(),
            "reported when the flow ends, not per packet"
        );
        leak.finish(ts, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].app_proto.as_deref(), Some("udp"));
        assert_eq!(out[0].match_count, Some(1));
    }

    /// An inbound UDP datagram and an inbound TCP segment, both carrying a
    /// marking, into `leak`.
    fn inbound_markings(leak: &mut Leak, out: &mut Vec<Incident>) {
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let doc = "正文 绝密★ 正文".as_bytes();
        for d in [
            packet("198.51.100.1:514", "10.0.0.5:5353", proto::UDP, 0, 0, doc),
            packet(
                "198.51.100.1:80",
                "10.0.0.5:40000",
                proto::TCP,
                tcp_flags::ACK,
                7,
                doc,
            ),
        ] {
            leak.on_packet(ts, &d, out);
        }
    }

    #[test]
    fn directions_no_signature_looks_at_open_no_flow_and_are_counted() {
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        inbound_markings(&mut leak, &mut out);
        let st = leak.stats();
        assert_eq!(st.flows, 0, "the default pack is outbound only");
        assert_eq!(st.bytes_out_of_scope, 2 * "正文 绝密★ 正文".len() as u64);
        assert_eq!(st.bytes_scanned, 0);
        leak.finish(Timestamp(0), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_inbound_signature_brings_inbound_traffic_into_scope() {
        let sigs = SignatureSet::from_sources(&[(
            "inbound.toml",
            "[[signature]]\nid = \"in-mark\"\nname = \"n\"\ndescription = \"d\"\ncategory = \"classified\"\nseverity = \"high\"\npatterns = [\"绝密★\"]\ndirection = \"inbound\"\n",
        )])
        .unwrap();
        let mut leak = Leak::new(
            LeakConfig::default(),
            Arc::new(sigs),
            NetSet::private_defaults(),
            "test".into(),
        );
        let mut out: Vec<Incident> = Vec::new();
        inbound_markings(&mut leak, &mut out);
        assert_eq!(leak.stats().bytes_out_of_scope, 0);
        leak.finish(Timestamp(0), &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().all(|i| i.direction == Some(Direction::Inbound)));
    }

    #[test]
    fn a_flow_whose_reply_is_out_of_scope_still_closes_on_fin() {
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let (c, s) = ("10.0.0.5:40000", "198.51.100.1:9000");
        let doc = "正文 绝密★ 正文".as_bytes();
        let fin_ack = tcp_flags::FIN | tcp_flags::ACK;
        for d in [
            packet(c, s, proto::TCP, tcp_flags::ACK, 100, doc),
            packet(s, c, proto::TCP, tcp_flags::ACK, 500, b"reply bytes"),
            packet(c, s, proto::TCP, fin_ack, 100 + doc.len() as u32, b""),
            packet(s, c, proto::TCP, fin_ack, 511, b""),
        ] {
            leak.on_packet(ts, &d, &mut out);
        }
        assert_eq!(out.len(), 1, "closed by the two FINs: {out:?}");
        assert_eq!(leak.stats().flows, 0);
        assert_eq!(leak.stats().bytes_out_of_scope, 11);
    }

    /// An IPv4 fragment from 10.0.0.5 to 198.51.100.1 (UDP).
    #[test]
    fn a_reset_ends_the_flow_and_flushes_out_of_order_bytes() {
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let (c, s) = ("10.0.0.5:40000", "198.51.100.1:9000");
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::SYN, 99, b""),
            &mut out,
        );
        let doc = "正文 绝密★ 正文".as_bytes();
        let (a, b) = doc.split_at(9);
        // The second half arrives first, the first half never: a hole.
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::ACK, 100 + 9 + 4, b),
            &mut out,
        );
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::ACK, 100, &a[..5]),
            &mut out,
        );
        assert!(out.is_empty());
        leak.on_packet(
            ts,
            &packet(s, c, proto::TCP, tcp_flags::RST, 1, b""),
            &mut out,
        );
        // The bytes after the hole were scanned at the reset; the marking
        // straddled the hole, so nothing is reported, and nothing is left.
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(leak.stats().flows, 0);
        assert_eq!(leak.stats().reassembly.gaps, 1);
        // Same without the hole: found.
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::SYN, 99, b""),
            &mut out,
        );
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::ACK, 109, b),
            &mut out,
        );
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::ACK, 100, a),
            &mut out,
        );
        leak.on_packet(
            ts,
            &packet(
                c,
                s,
                proto::TCP,
                tcp_flags::RST,
                100 + doc.len() as u32,
                b"",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].app_proto.as_deref(), Some("tcp"));
    }

    #[test]
    fn the_global_scan_memory_cap_scans_early_and_still_finds_everything() {
        let cfg = LeakConfig {
            scan_batch_bytes: 1024,
            scan_memory_bytes: 1024,
            ..LeakConfig::default()
        };
        let mut leak = Leak::new(
            cfg,
            Arc::new(SignatureSet::default_pack().unwrap()),
            NetSet::private_defaults(),
            "test".into(),
        );
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let mut body = "x".repeat(600).into_bytes();
        body.extend_from_slice("绝密★".as_bytes());
        for port in 40000..40008u16 {
            let c = format!("10.0.0.5:{port}");
            let s = "198.51.100.1:9000";
            leak.on_packet(
                ts,
                &packet(&c, s, proto::TCP, tcp_flags::SYN, 0, b""),
                &mut out,
            );
            leak.on_packet(
                ts,
                &packet(&c, s, proto::TCP, tcp_flags::ACK, 1, &body),
                &mut out,
            );
        }
        assert!(leak.stats().early_scans > 0);
        leak.finish(ts, &mut out);
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|i| i.match_count == Some(1)));
    }

    #[test]
    fn a_request_line_cut_into_tiny_segments_still_selects_http() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all("正文 绝密★ 正文".as_bytes()).unwrap();
        let body = gz.finish().unwrap();
        let mut req = format!(
            "POST /u HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let (c, s) = ("10.0.0.5:40000", "198.51.100.1:80");
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::SYN, 99, b""),
            &mut out,
        );
        let mut seq = 100u32;
        for piece in [&req[..1], &req[1..3], &req[3..]] {
            leak.on_packet(
                ts,
                &packet(c, s, proto::TCP, tcp_flags::ACK, seq, piece),
                &mut out,
            );
            seq += piece.len() as u32;
        }
        leak.finish(ts, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].app_proto.as_deref(), Some("http"));
        // A stream shorter than the sniff size is still scanned.
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        // 绝密★ in GBK: 6 bytes.
        let short: &[u8] = &[0xbe, 0xf8, 0xc3, 0xdc, 0xa1, 0xef];
        assert!(short.len() < SNIFF_BYTES);
        leak.on_packet(
            ts,
            &packet(c, s, proto::TCP, tcp_flags::ACK, 5, short),
            &mut out,
        );
        leak.finish(ts, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn ole2_files_are_scanned_raw_so_utf16le_and_gbk_text_runs_match() {
        use shaobing_pcapgen::payload::{gbk, utf16le};
        // A legacy .doc keeps its text in UTF-16LE (Word 97+) or in the
        // ANSI code page (GBK on Chinese systems) inside the compound
        // file's sectors: a 512-byte header, then a text run among binary.
        let ole2 = |run: &[u8]| {
            let mut f = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
            f.resize(512, 0xff);
            f.extend_from_slice(&[0x13, 0x00, 0x8e, 0x01]);
            f.extend_from_slice(run);
            f.extend_from_slice(&[0u8; 300]);
            f
        };
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let mut leak = detector();
        let mut out: Vec<Incident> = Vec::new();
        let files = [
            ole2(&utf16le("关于数据安全的通知 机密★一年 正文")),
            ole2(&gbk("关于数据安全的通知 绝密★十年 正文")),
            ole2(&utf16le("关于数据安全的通知 正文")),
        ];
        for (i, f) in files.iter().enumerate() {
            let c = format!("10.0.0.{}:40000", i + 5);
            let s = "198.51.100.1:9000";
            leak.on_packet(
                ts,
                &packet(&c, s, proto::TCP, tcp_flags::SYN, 99, b""),
                &mut out,
            );
            let mut seq = 100u32;
            for piece in f.chunks(200) {
                leak.on_packet(
                    ts,
                    &packet(&c, s, proto::TCP, tcp_flags::ACK, seq, piece),
                    &mut out,
                );
                seq += piece.len() as u32;
            }
        }
        leak.finish(ts, &mut out);
        let mut from: Vec<String> = out
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.src_ip.map(|a| a.to_string()).unwrap_or_default(),
                    i.signature
                )
            })
            .collect();
        from.sort();
        assert_eq!(
            from,
            [
                "10.0.0.5 classification-marking",
                "10.0.0.6 classification-marking"
            ],
            "{out:?}"
        );
        assert_eq!(leak.stats().normalize.content.ole2_files, 3);
    }
}
