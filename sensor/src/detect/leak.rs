//! Leak detection: leak signatures over packet payloads, one incident per
//! flow and signature.
//!
//! Each TCP or UDP payload is scanned with the compiled signature set. Hits
//! are kept per directional flow (5-tuple, in the direction the data moved)
//! and signature, with a count and a masked excerpt of the first match: the
//! matched bytes themselves are never stored. A flow's incidents are emitted
//! when it closes (FIN or RST), after `flow_timeout_secs` of capture time
//! without packets, when the flow table is full and the flow is the oldest,
//! or at the end of the capture, so `match_count` is the flow's total.
//! A signature fires only if the flow reached its `min_count`, the data
//! moved in its direction (outbound by default), and its port scope (if
//! any) includes either port.
//!
//! This scans each packet on its own; TCP reassembly (patterns split across
//! segments) comes with the stream layer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use shaobing_signatures::SignatureSet;
use shaobing_wire::{community_id, incident_id, Direction, Event, Incident, Kind, Timestamp};

use super::window::slot_of;
use super::{direction, IncidentSink};
use crate::config::LeakConfig;
use crate::decode::{proto, tcp_flags, Decoded};
use crate::netset::NetSet;

/// Counters the detector keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeakStats {
    /// Payload bytes scanned.
    pub bytes_scanned: u64,
    /// Signature hits before direction/port/min_count filtering.
    pub raw_hits: u64,
    /// Flows closed early because the table was full.
    pub flows_evicted: u64,
    /// Incidents emitted per signature id.
    pub incidents_by_signature: Vec<(String, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
}

impl FlowKey {
    fn reversed(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

#[derive(Debug)]
struct SigHits {
    signature: usize,
    count: u64,
    first_ts: Timestamp,
    excerpt: String,
}

#[derive(Debug)]
struct Flow {
    last_seen: i64,
    direction: Direction,
    app_proto: &'static str,
    hits: Vec<SigHits>,
}

/// The leak detector.
pub struct Leak {
    cfg: LeakConfig,
    sigs: Arc<SignatureSet>,
    protected: NetSet,
    sensor: String,
    flows: HashMap<FlowKey, Flow>,
    hits_by_signature: Vec<u64>,
    slot: i64,
    stats: LeakStats,
}

/// Guesses the application protocol from ports and the first bytes.
fn app_proto(d: &Decoded<'_>) -> &'static str {
    let p = d.payload;
    const METHODS: [&[u8]; 8] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"PATCH ",
        b"DELETE ",
        b"OPTIONS ",
        b"HTTP/1.",
    ];
    if d.proto == proto::TCP {
        if METHODS.iter().any(|m| p.starts_with(m)) {
            return "http";
        }
        if matches!(d.dst_port, 25 | 587) || matches!(d.src_port, 25 | 587) {
            return "smtp";
        }
        "tcp"
    } else {
        "udp"
    }
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
        Leak {
            cfg,
            sigs,
            protected,
            sensor,
            flows: HashMap::new(),
            hits_by_signature: vec![0; n],
            slot: i64::MIN,
            stats: LeakStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> LeakStats {
        let mut s = self.stats.clone();
        s.incidents_by_signature = self
            .sigs
            .signatures()
            .iter()
            .zip(&self.hits_by_signature)
            .map(|(sig, n)| (sig.id.clone(), *n))
            .collect();
        s
    }

    /// Feeds one decoded packet captured at `ts`.
    pub fn on_packet(&mut self, ts: Timestamp, d: &Decoded<'_>, sink: &mut impl IncidentSink) {
        // Once a second of capture time: close idle flows.
        let slot = slot_of(ts.micros()) / 10;
        if slot > self.slot {
            self.slot = slot;
            self.expire(ts, sink);
        }
        if d.proto != proto::TCP && d.proto != proto::UDP {
            return;
        }
        let key = FlowKey {
            src: d.src,
            dst: d.dst,
            sport: d.src_port,
            dport: d.dst_port,
            proto: d.proto,
        };
        if !d.payload.is_empty() {
            self.scan(ts, key, d, sink);
        }
        if let Some(f) = self.flows.get_mut(&key) {
            f.last_seen = ts.micros();
        }
        if d.proto == proto::TCP && d.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            self.close(key, ts, sink);
            if d.tcp_flags & tcp_flags::RST != 0 {
                self.close(key.reversed(), ts, sink);
            }
        }
    }

    fn scan(&mut self, ts: Timestamp, key: FlowKey, d: &Decoded<'_>, sink: &mut impl IncidentSink) {
        self.stats.bytes_scanned += d.payload.len() as u64;
        let dir = direction(&self.protected, d.src, d.dst);
        let sigs = Arc::clone(&self.sigs);
        let mut found: Vec<(usize, String)> = Vec::new();
        let mut raw = 0u64;
        sigs.scan(d.payload, |hit| {
            raw += 1;
            let Some(sig) = sigs.signatures().get(hit.signature) else {
                return;
            };
            if !sig.direction.admits(dir) || !sig.applies_to_ports(d.src_port, d.dst_port) {
                return;
            }
            found.push((hit.signature, sigs.excerpt(d.payload, &hit)));
        });
        self.stats.raw_hits += raw;
        if found.is_empty() {
            return;
        }
        if !self.flows.contains_key(&key) && self.flows.len() >= self.cfg.max_flows {
            self.evict_oldest(ts, sink);
        }
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            last_seen: ts.micros(),
            direction: dir,
            app_proto: app_proto(d),
            hits: Vec::new(),
        });
        for (signature, excerpt) in found {
            match flow.hits.iter_mut().find(|h| h.signature == signature) {
                Some(h) => h.count += 1,
                None => flow.hits.push(SigHits {
                    signature,
                    count: 1,
                    first_ts: ts,
                    excerpt,
                }),
            }
        }
    }

    /// Closes the oldest tenth of the table (amortizes the scan).
    fn evict_oldest(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        let mut ages: Vec<(i64, FlowKey)> =
            self.flows.iter().map(|(k, f)| (f.last_seen, *k)).collect();
        ages.sort_unstable_by_key(|(t, _)| *t);
        let n = (ages.len() / 10).max(1);
        for (_, key) in ages.into_iter().take(n) {
            self.stats.flows_evicted += 1;
            self.close(key, ts, sink);
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
        idle.sort_unstable_by_key(|k| (k.src, k.sport, k.dst, k.dport, k.proto));
        for key in idle {
            self.close(key, ts, sink);
        }
    }

    /// Emits every flow's incidents (end of capture or shutdown).
    pub fn finish(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        let mut keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        keys.sort_unstable_by_key(|k| (k.src, k.sport, k.dst, k.dport, k.proto));
        for key in keys {
            self.close(key, ts, sink);
        }
    }

    fn close(&mut self, key: FlowKey, _ts: Timestamp, sink: &mut impl IncidentSink) {
        let Some(flow) = self.flows.remove(&key) else {
            return;
        };
        for h in flow.hits {
            let Some(sig) = self.sigs.signatures().get(h.signature) else {
                continue;
            };
            if h.count < u64::from(sig.min_count) {
                continue;
            }
            if let Some(n) = self.hits_by_signature.get_mut(h.signature) {
                *n += 1;
            }
            let identity = format!(
                "{}|leak|{}|{}|{}|{}|{}|{}|{}",
                self.sensor,
                sig.id,
                key.src,
                key.sport,
                key.dst,
                key.dport,
                key.proto,
                h.first_ts.micros()
            );
            sink.emit(Incident {
                id: incident_id(h.first_ts, identity.as_bytes()),
                schema: shaobing_wire::SCHEMA_VERSION,
                sensor: self.sensor.clone(),
                kind: Kind::Leak,
                event: Event::Leak,
                signature: sig.id.clone(),
                severity: sig.severity,
                ts: h.first_ts,
                src_ip: Some(key.src),
                dst_ip: Some(key.dst),
                src_port: Some(key.sport),
                dst_port: Some(key.dport),
                proto: proto::name(key.proto),
                community_id: community_id::community_id(
                    0, key.src, key.dst, key.proto, key.sport, key.dport,
                ),
                direction: Some(flow.direction),
                attack_id: None,
                vector: None,
                pps: None,
                bps: None,
                peak_pps: None,
                peak_bps: None,
                packets: None,
                bytes: None,
                top_sources: None,
                match_count: Some(h.count),
                app_proto: Some(flow.app_proto.to_string()),
                excerpt: Some(h.excerpt),
                extra: serde_json::Map::new(),
            });
        }
    }
}
