//! Volumetric detection: floods and reflection/amplification attacks per
//! protected host, inbound and outbound.
//!
//! # Model
//!
//! Every packet to a protected host (inbound) or from one to an address
//! outside the protected networks (outbound) is counted for that host and
//! direction in a one-second [`RateWindow`] of its total and in the window
//! of its [vector](vector::Vector) (see [`vector::classify`]). Windows move
//! in 100 ms steps of capture time, so a replay gives the same incidents.
//! Only the packet's own vector and the total are checked per packet.
//!
//! A vector over its threshold (packets/s **or** bits/s, per host group)
//! starts an attack at the packet that crossed it: always within a second
//! of the rate first exceeding the threshold. Traffic from an
//! amplification port (DNS 53, NTP 123, ...) is an amplification attack
//! only if it looks reflected: at least `amplification_min_sources`
//! distinct sources, mean frame of at least `amplification_min_bytes`, and
//! not solicited (more than twice the rate of the host's own requests to
//! that port). Solicited traffic (a resolver's answers) starts nothing;
//! unsolicited traffic that does not look reflected is reported as
//! `udp_flood`. `total_volume` starts when the host's total is over its
//! threshold, no vector attack is open on it, and for 300 ms no single
//! vector was at half its own threshold (or for a full second in any case).
//!
//! Every 100 ms the hosts with an open attack or a suspect vector are
//! visited: updates every `update_secs`, and `attack_ended` once the rate
//! has stayed under the threshold for `hold_secs`. Start, updates and end
//! share one `attack_id`.
//!
//! # Memory
//!
//! A host costs one table entry (about 550 bytes plus 180 per vector it has
//! seen). Evidence ([`evidence::Evidence`]: Space-Saving top peers and
//! ports, a 1 KiB HyperLogLog, size/TTL summaries, a few headers, about
//! 4 KiB in all) is kept only for vectors above a quarter of their
//! threshold, so ten million spoofed sources cost what ten do. The host
//! table is capped (`max_hosts`); when full, hosts idle for 60 s of capture
//! time are evicted (at most one sweep per second) and new hosts are
//! otherwise not tracked; both are counted.

pub mod evidence;
pub mod fragments;
pub mod groups;
pub mod handshake;
pub mod network;
pub mod vector;

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use shaobing_wire::{
    incident_id, Direction, Event, Incident, Kind, Severity, Timestamp, TopSource,
};
use uuid::Uuid;

use self::evidence::Evidence;
use self::fragments::FragmentVectors;
use self::groups::{Group, GroupTable};
use self::handshake::Handshakes;
use self::network::{Networks, Placement};
use self::vector::{amplification_for_port, Vector, AMPLIFICATION_PORTS};
use super::fasthash::{ip_key, key_ip, FastMap, FastState};
use super::window::{slot_of, RateWindow};
use super::IncidentSink;
use crate::config::VolumetricConfig;
use crate::decode::{proto, Fragment, Header};
use crate::incident::{self, Base};
use crate::netset::NetSet;

const IDLE_EVICT_MICROS: i64 = 60_000_000;
const TOP_SOURCES_REPORTED: usize = 10;
/// `total_volume` waits this long for a vector to explain the volume.
const TOTAL_GRACE_MICROS: i64 = 300_000;
/// ... and never longer than this.
const TOTAL_MAX_WAIT_MICROS: i64 = 1_000_000;
/// Internal counter ids after the vectors: requests sent to amplification
/// port `i` (solicitation of responses), `QUERY_BASE + i`.
const QUERY_BASE: u8 = vector::COUNT as u8;
/// Internal counter id of handshakes completed with the host as server
/// (after the query counters): `syn_flood` counts half-open connections.
const COMPLETED: u8 = QUERY_BASE + AMPLIFICATION_PORTS.len() as u8;
const NO_TIME: i64 = i64::MIN;

/// Counters the detector keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumetricStats {
    /// Hosts in the table now.
    pub hosts: u64,
    /// Hosts evicted for being idle when the table was full.
    pub hosts_evicted: u64,
    /// Packets to hosts that could not be tracked (table full, none idle).
    pub hosts_untracked: u64,
    /// Attacks started.
    pub attacks_started: u64,
    /// Evidence sets allocated for suspect vectors.
    pub evidence_allocated: u64,
    /// Network-level aggregates (prefixes and groups) in the table now.
    pub prefixes: u64,
    /// Prefixes evicted for being idle when their table was full.
    pub prefixes_evicted: u64,
    /// Packets whose prefix could not be tracked (table full).
    pub prefixes_untracked: u64,
    /// Network-level attacks started.
    pub network_attacks_started: u64,
    /// Network evidence sets refused (`networks.max_evidence` in use).
    pub network_evidence_capped: u64,
}

/// The two directions counted per host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Inbound = 0,
    Outbound = 1,
}

impl Dir {
    fn wire(self) -> Direction {
        match self {
            Dir::Inbound => Direction::Inbound,
            Dir::Outbound => Direction::Outbound,
        }
    }
}

#[derive(Debug)]
struct Attack {
    id: Uuid,
    /// The vector reported (may be `udp_flood` for an amplification
    /// counter whose traffic was not judged reflected).
    vector: Vector,
    started: Timestamp,
    seq: u32,
    peak_pps: u64,
    peak_bps: u64,
    packets: u64,
    bytes: u64,
    below_since: i64,
    last_update: i64,
}

impl Attack {
    /// An attack of `vector` starting at `ts` at the rates `pps`/`bps` (its
    /// first second's packets and bytes), with the id made from `identity`.
    fn start(identity: &str, vector: Vector, ts: Timestamp, pps: u64, bps: u64) -> Box<Attack> {
        Box::new(Attack {
            id: incident_id(ts, identity.as_bytes()),
            vector,
            started: ts,
            seq: 0,
            peak_pps: pps,
            peak_bps: bps,
            packets: pps,
            bytes: bps / 8,
            below_since: NO_TIME,
            last_update: ts.micros(),
        })
    }
}

/// A counter of one vector (or internal id) in one direction of a host.
#[derive(Debug)]
struct Counter {
    id: u8,
    win: RateWindow,
    evidence: Option<Box<Evidence>>,
    attack: Option<Box<Attack>>,
    /// Step of the last reflection judgement (amplification counters).
    judged_slot: i64,
}

impl Counter {
    fn new(id: u8) -> Self {
        Counter {
            id,
            win: RateWindow::default(),
            evidence: None,
            attack: None,
            judged_slot: NO_TIME,
        }
    }
}

#[derive(Debug, Default)]
struct Baseline {
    sec: i64,
    packets: u64,
    bytes: u64,
    pps: f64,
    bps: f64,
    samples: u64,
}

#[derive(Debug)]
struct Side {
    total: RateWindow,
    counters: Vec<Counter>,
    /// Position in `counters` of each counter id ([`NO_COUNTER`] when it
    /// has none): a packet finds its counter without a search.
    positions: [u8; COUNTER_IDS],
    baseline: Baseline,
    total_pending: Option<i64>,
    open_attacks: u32,
}

/// Counter ids: the vectors, one per amplification port's requests, and
/// completed handshakes.
const COUNTER_IDS: usize = vector::COUNT + AMPLIFICATION_PORTS.len() + 1;
const NO_COUNTER: u8 = u8::MAX;

impl Default for Side {
    fn default() -> Self {
        Side {
            total: RateWindow::default(),
            counters: Vec::new(),
            positions: [NO_COUNTER; COUNTER_IDS],
            baseline: Baseline::default(),
            total_pending: None,
            open_attacks: 0,
        }
    }
}

impl Side {
    /// The counter `id`, made on first use (counters are never removed).
    #[inline]
    fn counter(&mut self, id: u8) -> &mut Counter {
        let at = self.positions.get(usize::from(id)).copied();
        let i = match at {
            Some(i) if i != NO_COUNTER => usize::from(i),
            _ => {
                if let Some(p) = self.positions.get_mut(usize::from(id)) {
                    *p = u8::try_from(self.counters.len()).unwrap_or(NO_COUNTER);
                }
                self.counters.push(Counter::new(id));
                self.counters.len() - 1
            }
        };
        // `i` is in range: recorded when pushed, or just pushed.
        &mut self.counters[i]
    }

    /// Handshakes completed with the host as server in the last second
    /// (at step `slot`).
    #[inline]
    fn completed(&mut self, slot: i64) -> u64 {
        match self.find_mut(COMPLETED) {
            Some(c) => {
                c.win.advance(slot);
                c.win.pps()
            }
            None => 0,
        }
    }

    /// The counter `id`, if it exists.
    #[inline]
    fn find(&self, id: u8) -> Option<&Counter> {
        let i = *self.positions.get(usize::from(id))?;
        self.counters.get(usize::from(i))
    }

    /// The counter `id`, if it exists.
    #[inline]
    fn find_mut(&mut self, id: u8) -> Option<&mut Counter> {
        let i = *self.positions.get(usize::from(id))?;
        self.counters.get_mut(usize::from(i))
    }

    fn busy(&self) -> bool {
        self.total_pending.is_some()
            || self
                .counters
                .iter()
                .any(|c| c.evidence.is_some() || c.attack.is_some())
    }

    /// The (pps, bps) thresholds of the total, learned or static.
    fn total_thresholds(&self, g: &Group) -> (u64, u64) {
        let t = Vector::TotalVolume;
        match &g.baseline {
            Some(b) if self.baseline.samples >= b.warmup_secs => (
                ((self.baseline.pps * b.factor) as u64).max(b.min_pps),
                ((self.baseline.bps * b.factor) as u64).max(b.min_mbps.saturating_mul(1_000_000)),
            ),
            _ => (g.pps(t), g.bps(t)),
        }
    }

    /// Folds finished seconds into the baseline (only while no attack is
    /// open, so an attack never teaches the baseline that it is normal).
    #[inline]
    fn learn(&mut self, g: &Group, ts: i64, wire_len: u32) {
        if g.baseline.is_none() {
            return;
        }
        let sec = ts.div_euclid(1_000_000);
        let b = &mut self.baseline;
        if sec != b.sec {
            if b.samples == 0 && b.packets == 0 {
                b.sec = sec;
            } else if sec > b.sec {
                if self.open_attacks == 0 {
                    let keep = g.decay;
                    b.pps = b.pps * keep + b.packets as f64 * (1.0 - keep);
                    b.bps = b.bps * keep + (b.bytes * 8) as f64 * (1.0 - keep);
                    let idle = (sec - b.sec - 1).min(100_000);
                    let decay = keep.powi(i32::try_from(idle).unwrap_or(i32::MAX));
                    b.pps *= decay;
                    b.bps *= decay;
                    b.samples += u64::try_from(sec - b.sec).unwrap_or(0);
                }
                b.sec = sec;
                b.packets = 0;
                b.bytes = 0;
            }
        }
        b.packets += 1;
        b.bytes += u64::from(wire_len);
    }
}

#[derive(Debug)]
struct Host {
    group: u16,
    last_seen: i64,
    active: bool,
    sides: [Side; 2],
}

/// The volumetric detector.
pub struct Volumetric {
    cfg: VolumetricConfig,
    groups: GroupTable,
    sensor: String,
    hosts: FastMap<u128, Host>,
    /// Hosts with an open attack, a pending total or a suspect vector: the
    /// only ones the clock tick visits.
    active: Vec<u128>,
    /// The vectors of recent amplification responses' first fragments, for
    /// their later fragments.
    fragments: FragmentVectors,
    /// Network-level aggregates, when on.
    networks: Option<Networks>,
    /// SYN-ACKs of protected servers awaiting their client's ACK.
    handshakes: Handshakes,
    /// The last destination looked up and its group and matched prefix
    /// length (groups never change while the detector runs).
    last_dst: (IpAddr, Option<(u16, u8)>),
    slot: i64,
    last_sweep: i64,
    stats: VolumetricStats,
}

/// Capture time the evidence of an amplification counter must cover
/// before too few sources make it a `udp_flood`. Not longer than
/// [`TOTAL_MAX_WAIT_MICROS`]: the evidence starts at a quarter of the
/// vector's threshold, before the total can be pending, so the verdict
/// comes before `total_volume` would stop waiting for one.
const JUDGE_MICROS: i64 = 1_000_000;

/// Everything an incident is built from, borrowed from the detector.
struct Report<'a> {
    sensor: &'a str,
    group: &'a Group,
    host: IpAddr,
    dir: Dir,
    pps: u64,
    bps: u64,
    threshold: (u64, u64),
}

impl Volumetric {
    /// A detector for `protected` networks (used when `cfg.groups` is
    /// empty), naming `sensor` in incidents.
    pub fn new(cfg: VolumetricConfig, protected: NetSet, sensor: String) -> Self {
        let groups = GroupTable::new(&cfg, &protected);
        Volumetric {
            networks: cfg.networks.enabled.then(|| Networks::new(&cfg, &groups)),
            handshakes: Handshakes::new(),
            last_dst: {
                let ip = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
                (ip, groups.lookup_len(ip))
            },
            groups,
            cfg,
            sensor,
            hosts: FastMap::with_hasher(FastState::new(0x686f_7374_7461_626c)),
            active: Vec::new(),
            fragments: FragmentVectors::new(),
            slot: i64::MIN,
            last_sweep: NO_TIME,
            stats: VolumetricStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> VolumetricStats {
        let n = self
            .networks
            .as_ref()
            .map(Networks::stats)
            .unwrap_or_default();
        VolumetricStats {
            hosts: self.hosts.len() as u64,
            prefixes: n.prefixes,
            prefixes_evicted: n.prefixes_evicted,
            prefixes_untracked: n.prefixes_untracked,
            network_attacks_started: n.attacks_started,
            network_evidence_capped: n.evidence_capped,
            ..self.stats.clone()
        }
    }

    /// Moves capture time forward to `ts` without a packet, so open attacks
    /// update and end on a link that went quiet (live capture feeds it an
    /// estimate of capture time from the wall clock).
    pub fn advance(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        let slot = slot_of(ts.micros());
        if slot > self.slot {
            self.slot = slot;
            self.tick_networks(ts, sink);
            self.tick(ts, sink);
        }
    }

    /// The network aggregates' step ended (capture time is in a new one).
    fn tick_networks(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        if let Some(n) = &mut self.networks {
            n.tick(self.slot, &self.groups, &self.sensor, ts, sink);
        }
    }

    /// Feeds one decoded packet of `wire_len` bytes captured at `ts`.
    #[inline]
    pub fn on_packet(
        &mut self,
        ts: Timestamp,
        d: &Header,
        wire_len: u32,
        sink: &mut impl IncidentSink,
    ) {
        let slot = slot_of(ts.micros());
        if slot > self.slot {
            self.slot = slot;
            self.tick_networks(ts, sink);
            self.tick(ts, sink);
        }
        // A flood repeats its victim: the last destination's group is kept.
        let dst_place = match self.last_dst {
            (ip, place) if ip == d.dst => place,
            _ => {
                let place = self.groups.lookup_len(d.dst);
                self.last_dst = (d.dst, place);
                place
            }
        };
        let dst_group = dst_place.map(|p| p.0);
        let src_group = self.groups.lookup(d.src);
        if dst_group.is_none() && src_group.is_none() {
            return;
        }
        let vector = self.fragments.classify(d, wire_len, ts.micros());
        if let Some((g, net_len)) = dst_place {
            self.count(ts, d, wire_len, vector, d.dst, g, Dir::Inbound, d.src, sink);
            if let Some(n) = &mut self.networks {
                let at = Placement { group: g, net_len };
                n.count(self.slot, ts, d, d.dst, at, vector, wire_len);
            }
        }
        if let Some(g) = src_group {
            if dst_group.is_none() {
                self.count(
                    ts,
                    d,
                    wire_len,
                    vector,
                    d.src,
                    g,
                    Dir::Outbound,
                    d.dst,
                    sink,
                );
            }
        }
        // Handshakes of protected servers: a client's ACK of the server's
        // SYN-ACK completes one (not a half-open connection).
        if d.proto == proto::TCP && d.fragment == Fragment::None {
            let now = ts.micros();
            if Handshakes::is_syn_ack(d) {
                if src_group.is_some() {
                    self.handshakes.syn_ack(d, now);
                }
            } else if let Some(g) = dst_group {
                if Handshakes::is_ack(d) && self.handshakes.completes(d, now) {
                    self.count_query(ts, d.dst, g, Dir::Inbound, COMPLETED, wire_len);
                    self.count_query(ts, d.dst, g, Dir::Outbound, COMPLETED, wire_len);
                }
            }
        }
        // Requests to an amplification port solicit responses: count them
        // on the side where the responses will arrive.
        if d.proto == proto::UDP {
            if let Some(amp) = amplification_for_port(d.dst_port) {
                let id = query_id(amp);
                if let Some(g) = src_group {
                    self.count_query(ts, d.src, g, Dir::Inbound, id, wire_len);
                    let place = self.groups.lookup_len(d.src);
                    if let (Some(n), Some((group, net_len))) = (&mut self.networks, place) {
                        let at = Placement { group, net_len };
                        n.count_query(self.slot, ts, d.src, at, id);
                    }
                }
                if let Some(g) = dst_group {
                    self.count_query(ts, d.dst, g, Dir::Outbound, id, wire_len);
                }
            }
        }
    }

    fn count_query(&mut self, ts: Timestamp, host: IpAddr, group: u16, dir: Dir, id: u8, len: u32) {
        let slot = self.slot;
        let max = self.cfg.max_hosts;
        let (hosts, stats, sweep) = (&mut self.hosts, &mut self.stats, &mut self.last_sweep);
        if let Some(h) = host_entry(hosts, stats, sweep, max, ip_key(host), group, ts) {
            h.sides[dir as usize].counter(id).win.add(slot, len);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn count(
        &mut self,
        ts: Timestamp,
        d: &Header,
        wire_len: u32,
        vector: Option<Vector>,
        host_ip: IpAddr,
        group: u16,
        dir: Dir,
        peer: IpAddr,
        sink: &mut impl IncidentSink,
    ) {
        let slot = self.slot;
        let key = ip_key(host_ip);
        let (top_sources, samples) = (self.cfg.top_sources, self.cfg.samples);
        let max = self.cfg.max_hosts;
        let Volumetric {
            hosts,
            stats,
            last_sweep,
            groups,
            active,
            ..
        } = self;
        let Some(host) = host_entry(hosts, stats, last_sweep, max, key, group, ts) else {
            return;
        };
        let Some(g) = groups.get(group) else {
            return;
        };
        let side = &mut host.sides[dir as usize];
        side.total.add(slot, wire_len);
        side.learn(g, ts.micros(), wire_len);
        let mut activate = false;
        let mut start: Option<(Vector, u8)> = None;

        if let Some(v) = vector {
            let completed = if v == Vector::SynFlood {
                side.completed(slot)
            } else {
                0
            };
            let c = side.counter(v as u8);
            c.win.add(slot, wire_len);
            let (pps, bps) = (c.win.pps(), c.win.bps());
            if let Some(e) = &mut c.evidence {
                e.add_at(slot, ts, d, peer, wire_len);
            }
            if let Some(a) = &mut c.attack {
                a.packets += 1;
                a.bytes += u64::from(wire_len);
                a.peak_pps = a.peak_pps.max(pps);
                a.peak_bps = a.peak_bps.max(bps);
            } else {
                let (tp, tb) = (g.pps(v), g.bps(v));
                // syn_flood: half-open connections (SYNs less completions).
                if pps.saturating_sub(completed) >= tp || bps >= tb {
                    if v.amplification_port().is_some() {
                        if c.judged_slot != slot {
                            c.judged_slot = slot;
                            start = Some((v, v as u8));
                        }
                    } else {
                        start = Some((v, v as u8));
                    }
                }
                if start.is_none()
                    && c.evidence.is_none()
                    && (pps.saturating_mul(4) >= tp || bps.saturating_mul(4) >= tb)
                {
                    let mut e = Evidence::new(top_sources, samples);
                    e.add_at(slot, ts, d, peer, wire_len);
                    c.evidence = Some(Box::new(e));
                    stats.evidence_allocated += 1;
                    activate = true;
                }
            }
        }

        // The total, and its total_volume counter.
        let (tp, tb) = side.total_thresholds(g);
        let (pps, bps) = (side.total.pps(), side.total.bps());
        let total_suspect = pps.saturating_mul(4) >= tp || bps.saturating_mul(4) >= tb;
        let over = pps >= tp || bps >= tb;
        let total = side.find(Vector::TotalVolume as u8);
        let has_total = total.is_some();
        // While a vector attack is open total_volume cannot start, so its
        // evidence is not kept (each packet feeds one evidence set, not two).
        let total_open = side.open_attacks > 0 && total.is_some_and(|c| c.attack.is_some());
        let vector_attack = side.open_attacks > 0 && !total_open;
        if total_suspect || has_total {
            let c = side.counter(Vector::TotalVolume as u8);
            if vector_attack {
                if c.evidence.is_some() {
                    c.evidence = None;
                }
            } else if let Some(e) = &mut c.evidence {
                e.add_at(slot, ts, d, peer, wire_len);
            } else if total_suspect {
                let mut e = Evidence::new(top_sources, samples);
                e.add_at(slot, ts, d, peer, wire_len);
                c.evidence = Some(Box::new(e));
                stats.evidence_allocated += 1;
                activate = true;
            }
            if let Some(a) = &mut c.attack {
                a.packets += 1;
                a.bytes += u64::from(wire_len);
                a.peak_pps = a.peak_pps.max(pps);
                a.peak_bps = a.peak_bps.max(bps);
            } else if over && side.total_pending.is_none() && side.open_attacks == 0 {
                side.total_pending = Some(ts.micros());
                activate = true;
            }
        }

        if activate && !host.active {
            host.active = true;
            active.push(key);
        }
        if let Some((v, id)) = start {
            self.try_start(key, dir, v, id, ts, sink);
        }
    }

    /// Starts an attack of counter `id` (vector `v`) unless an
    /// amplification counter's traffic is solicited.
    fn try_start(
        &mut self,
        key: u128,
        dir: Dir,
        v: Vector,
        id: u8,
        ts: Timestamp,
        sink: &mut impl IncidentSink,
    ) {
        let min_sources = self.cfg.amplification_min_sources;
        let min_bytes = self.cfg.amplification_min_bytes;
        let Some(host) = self.hosts.get_mut(&key) else {
            return;
        };
        let side = &mut host.sides[dir as usize];
        let mut reported = v;
        if v.amplification_port().is_some() {
            let queries = side.find(query_id(v)).map_or(0, |c| c.win.pps());
            let Some(c) = side.find(id) else {
                return;
            };
            let pps = c.win.pps();
            if pps <= queries.saturating_mul(2) {
                return; // answers to the host's own requests
            }
            let sources = c.evidence.as_ref().map_or(0, |e| e.distinct_peers());
            let mean = c.win.bps() / 8 / pps.max(1);
            // Few sources may only mean the evidence is young (fragmented
            // responses reach a threshold in a third of the responses):
            // judge again each slot until it covers JUDGE_MICROS.
            let young = c
                .evidence
                .as_ref()
                .and_then(|e| e.first_seen())
                .is_some_and(|t| ts.micros() - t.micros() < JUDGE_MICROS);
            if sources < min_sources && young && mean >= min_bytes {
                return;
            }
            if sources < min_sources || mean < min_bytes {
                reported = Vector::UdpFlood;
                let udp_open = side.counters.iter().any(|c| {
                    c.attack
                        .as_ref()
                        .is_some_and(|a| a.vector == Vector::UdpFlood)
                });
                if udp_open {
                    return;
                }
            }
        }
        let (total_pps, total_bps) = (side.total.pps(), side.total.bps());
        let c = side.counter(id);
        let (pps, bps) = if v == Vector::TotalVolume {
            (total_pps, total_bps)
        } else {
            (c.win.pps(), c.win.bps())
        };
        let identity = format!(
            "{}|volumetric|{}|{}|{:?}|{}",
            self.sensor,
            reported.name(),
            key_ip(key),
            dir,
            ts.micros()
        );
        c.attack = Some(Attack::start(&identity, reported, ts, pps, bps));
        if c.evidence.is_none() {
            c.evidence = Some(Box::new(Evidence::new(
                self.cfg.top_sources,
                self.cfg.samples,
            )));
            self.stats.evidence_allocated += 1;
        }
        side.open_attacks += 1;
        if id != Vector::TotalVolume as u8 {
            side.total_pending = None;
        }
        self.stats.attacks_started += 1;
        if !host.active {
            host.active = true;
            self.active.push(key);
        }
        self.emit(key, dir, id, Event::AttackStarted, ts, None, sink);
    }

    /// Every 100 ms of capture time: pending totals, updates and ends.
    fn tick(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        if self.active.is_empty() {
            return;
        }
        let now = ts.micros();
        let hold = i64::try_from(self.cfg.hold_secs)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        let update = i64::try_from(self.cfg.update_secs)
            .unwrap_or(0)
            .saturating_mul(1_000_000);
        let mut events: Vec<(u128, Dir, u8, Event)> = Vec::new();
        let mut starts: Vec<(u128, Dir)> = Vec::new();
        for &key in &self.active {
            let Some(host) = self.hosts.get_mut(&key) else {
                continue;
            };
            let Some(g) = self.groups.get(host.group) else {
                continue;
            };
            for dir in [Dir::Inbound, Dir::Outbound] {
                let side = &mut host.sides[dir as usize];
                side.total.advance(self.slot);
                let (ttp, ttb) = side.total_thresholds(g);
                let (tpps, tbps) = (side.total.pps(), side.total.bps());
                let mut vector_near = false;
                for c in &mut side.counters {
                    c.win.advance(self.slot);
                    let Some(v) = vector::ALL.get(usize::from(c.id)).copied() else {
                        continue;
                    };
                    let (tp, tb) = if v == Vector::TotalVolume {
                        (ttp, ttb)
                    } else {
                        (g.pps(v), g.bps(v))
                    };
                    let (pps, bps) = if v == Vector::TotalVolume {
                        (tpps, tbps)
                    } else {
                        (c.win.pps(), c.win.bps())
                    };
                    if v != Vector::TotalVolume
                        && (pps.saturating_mul(2) >= tp || bps.saturating_mul(2) >= tb)
                    {
                        vector_near = true;
                    }
                    let Some(a) = &mut c.attack else {
                        if c.evidence.is_some()
                            && pps.saturating_mul(8) < tp
                            && bps.saturating_mul(8) < tb
                        {
                            c.evidence = None;
                        }
                        continue;
                    };
                    if pps >= tp || bps >= tb {
                        a.below_since = NO_TIME;
                    } else {
                        if a.below_since == NO_TIME {
                            a.below_since = now;
                        }
                        if now - a.below_since >= hold {
                            events.push((key, dir, c.id, Event::AttackEnded));
                            continue;
                        }
                    }
                    if update > 0 && now - a.last_update >= update {
                        a.last_update = now;
                        events.push((key, dir, c.id, Event::AttackUpdate));
                    }
                }
                if let Some(since) = side.total_pending {
                    let over = tpps >= ttp || tbps >= ttb;
                    if !over || side.open_attacks > 0 {
                        side.total_pending = None;
                    } else if (now - since >= TOTAL_GRACE_MICROS && !vector_near)
                        || now - since >= TOTAL_MAX_WAIT_MICROS
                    {
                        side.total_pending = None;
                        starts.push((key, dir));
                    }
                }
            }
        }
        for (key, dir) in starts {
            let id = Vector::TotalVolume as u8;
            self.try_start(key, dir, Vector::TotalVolume, id, ts, sink);
        }
        for (key, dir, id, event) in events {
            self.emit(key, dir, id, event, ts, Some("hold_expired"), sink);
        }
        // Hosts with nothing left to watch leave the active list.
        let hosts = &mut self.hosts;
        self.active.retain(|key| match hosts.get_mut(key) {
            Some(h) if h.sides.iter().any(Side::busy) => true,
            Some(h) => {
                h.active = false;
                false
            }
            None => false,
        });
    }

    /// Ends every open attack at `ts` (end of capture or shutdown).
    pub fn finish(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        if let Some(n) = &mut self.networks {
            n.tick(
                self.slot.saturating_add(1),
                &self.groups,
                &self.sensor,
                ts,
                sink,
            );
            n.finish(&self.groups, &self.sensor, ts, sink);
        }
        let mut open = Vec::new();
        for &key in &self.active {
            if let Some(h) = self.hosts.get(&key) {
                for dir in [Dir::Inbound, Dir::Outbound] {
                    for c in &h.sides[dir as usize].counters {
                        if c.attack.is_some() {
                            open.push((key, dir, c.id));
                        }
                    }
                }
            }
        }
        for (key, dir, id) in open {
            self.emit(
                key,
                dir,
                id,
                Event::AttackEnded,
                ts,
                Some("capture_end"),
                sink,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        key: u128,
        dir: Dir,
        id: u8,
        event: Event,
        ts: Timestamp,
        end_reason: Option<&str>,
        sink: &mut impl IncidentSink,
    ) {
        let Some(host) = self.hosts.get_mut(&key) else {
            return;
        };
        let Some(group) = self.groups.get(host.group) else {
            return;
        };
        let side = &mut host.sides[dir as usize];
        let threshold_total = side.total_thresholds(group);
        let (total_pps, total_bps) = (side.total.pps(), side.total.bps());
        let Some(c) = side.find_mut(id) else {
            return;
        };
        let Some(v) = c.attack.as_ref().map(|a| a.vector) else {
            return;
        };
        let counted = vector::ALL.get(usize::from(id)).copied().unwrap_or(v);
        let (pps, bps) = if counted == Vector::TotalVolume {
            (total_pps, total_bps)
        } else {
            (c.win.pps(), c.win.bps())
        };
        let threshold = if counted == Vector::TotalVolume {
            threshold_total
        } else {
            (group.pps(counted), group.bps(counted))
        };
        let r = Report {
            sensor: &self.sensor,
            group,
            host: key_ip(key),
            dir,
            pps,
            bps,
            threshold,
        };
        if let Some(a) = &mut c.attack {
            a.seq += 1;
        }
        let incident = build_incident(&r, c, event, ts, end_reason);
        if event == Event::AttackEnded {
            c.attack = None;
            c.evidence = None;
            side.open_attacks = side.open_attacks.saturating_sub(1);
        }
        if let Some(i) = incident {
            sink.emit(i);
        }
    }
}

/// The entry for the host of [`ip_key`] `key` (group `group`), making
/// room if the table is full;
/// `None` (counted) when it cannot be tracked.
#[inline]
fn host_entry<'a>(
    hosts: &'a mut FastMap<u128, Host>,
    stats: &mut VolumetricStats,
    last_sweep: &mut i64,
    max_hosts: usize,
    key: u128,
    group: u16,
    ts: Timestamp,
) -> Option<&'a mut Host> {
    if hosts.len() >= max_hosts && !hosts.contains_key(&key) {
        // One sweep per second of capture time at most: a flood of new
        // hosts must not make every packet scan the table.
        let now = ts.micros();
        if *last_sweep == NO_TIME || now - *last_sweep >= 1_000_000 {
            *last_sweep = now;
            let cutoff = now - IDLE_EVICT_MICROS;
            let before = hosts.len();
            hosts.retain(|_, h| h.active || h.last_seen >= cutoff);
            stats.hosts_evicted += (before - hosts.len()) as u64;
        }
        if hosts.len() >= max_hosts {
            stats.hosts_untracked += 1;
            return None;
        }
    }
    let h = hosts.entry(key).or_insert_with(|| Host {
        group,
        last_seen: ts.micros(),
        active: false,
        sides: [Side::default(), Side::default()],
    });
    h.last_seen = ts.micros();
    Some(h)
}

/// The internal counter id of requests to `amp`'s port.
fn query_id(amp: Vector) -> u8 {
    let i = AMPLIFICATION_PORTS
        .iter()
        .position(|(v, _)| *v == amp)
        .unwrap_or(0);
    QUERY_BASE + i as u8
}

/// The lifecycle fields every attack incident carries in `extra`, host
/// or network: when it started, its group and threshold, and at its end
/// how long it lasted and why it ended.
fn lifecycle_extra(
    a: &Attack,
    group: &Group,
    threshold: (u64, u64),
    event: Event,
    ts: Timestamp,
    end_reason: Option<&str>,
) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("started_at".into(), Value::String(a.started.to_string()));
    extra.insert("group".into(), Value::String(group.name.clone()));
    extra.insert(
        "threshold".into(),
        json!({"pps": threshold.0, "bps": threshold.1}),
    );
    if event == Event::AttackEnded {
        let secs = (ts.micros() - a.started.micros()) as f64 / 1e6;
        extra.insert("duration_s".into(), json!(secs));
        if let Some(reason) = end_reason {
            extra.insert("end_reason".into(), Value::String(reason.into()));
        }
    }
    extra
}

fn build_incident(
    r: &Report<'_>,
    c: &Counter,
    event: Event,
    ts: Timestamp,
    end_reason: Option<&str>,
) -> Option<Incident> {
    let a = c.attack.as_ref()?;
    let identity = format!("{}|{}|{}|{}", r.sensor, a.id, event.as_str(), a.seq);
    let outbound = r.dir == Dir::Outbound;
    let mut extra = lifecycle_extra(a, r.group, r.threshold, event, ts, end_reason);
    let mut top = Vec::new();
    let mut dst_ip = Some(r.host);
    let mut src_ip = None;
    if let Some(e) = &c.evidence {
        e.report(outbound, &mut extra);
        if outbound {
            src_ip = Some(r.host);
            dst_ip = e.top_peers(1).first().map(|(ip, _)| *ip);
            top.push(TopSource {
                ip: r.host,
                packets: a.packets,
            });
        } else {
            top = e
                .top_peers(TOP_SOURCES_REPORTED)
                .into_iter()
                .map(|(ip, packets)| TopSource { ip, packets })
                .collect();
        }
    } else if outbound {
        src_ip = Some(r.host);
        dst_ip = None;
    }
    let vector = a.vector;
    let proto = match (vector.proto(), r.host) {
        ("icmp", IpAddr::V6(_)) => "icmpv6",
        (p, _) => p,
    };
    let base = Base {
        sensor: r.sensor,
        kind: Kind::Volumetric,
        event,
        severity: Severity::High,
        ts,
        identity: &identity,
    };
    Some(Incident {
        src_ip,
        dst_ip,
        proto: proto.into(),
        direction: Some(r.dir.wire()),
        attack_id: Some(a.id),
        vector: Some(vector.name().into()),
        pps: Some(r.pps),
        bps: Some(r.bps),
        peak_pps: Some(a.peak_pps),
        peak_bps: Some(a.peak_bps),
        packets: Some(a.packets),
        bytes: Some(a.bytes),
        top_sources: Some(top),
        extra,
        ..incident::new(base, format!("volumetric/{}", vector.name()))
    })
}

#[cfg(test)]
mod tests;
