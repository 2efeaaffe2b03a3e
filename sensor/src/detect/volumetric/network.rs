//! Network-level detection: carpet bombing and floods spread over many
//! hosts, none of which crosses its own threshold.
//!
//! Every packet to a protected host is also counted for that host's
//! automatic prefixes (an IPv4 /24, IPv6 /64 and /48 by default, never
//! wider than the protected network the host is in) and for its whole
//! group: per vector, per amplification port's requests (solicitation),
//! and in total. A packet costs a few additions into the aggregate's
//! current 100 ms step and one bit of a 64-bit "hosts hit" map; the step
//! is folded into the aggregate's one-second windows when capture time
//! moves to the next step, and the thresholds are checked then, so an
//! aggregate attack starts at most 100 ms later than a host attack would
//! have at the same rate.
//!
//! An aggregate counter over its threshold starts a network attack only
//! if its traffic is spread: at least `min_hosts` hosts received the
//! vector in the last one to two seconds, and no host took more than
//! `max_host_share_percent` of its packets. A flood on one host is that
//! host's attack (the host detector reports it), not its prefix's. Each
//! host attack inside an attacked prefix is still reported as itself; the
//! network attack names the prefix (`dst_net`), the hosts hit and the top
//! targets. Amplification vectors are judged reflected as for hosts
//! (distinct sources, mean frame size, not answers to the prefix's own
//! requests). Starts, updates every `update_secs` and ends after
//! `hold_secs` under the threshold follow the host lifecycle.
//!
//! Memory: the prefix table is capped (`max_prefixes`; idle prefixes are
//! evicted first, at most one sweep per second, otherwise new ones are not
//! tracked and counted); evidence sets (about 7 KiB each) are capped too
//! (`max_evidence`); past that cap an attack is still started, updated and
//! ended, with rates and hosts hit but without evidence.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};
use shaobing_wire::{
    incident_id, Direction, Event, Incident, Kind, Severity, Timestamp, TopSource, DST_NET,
};

use super::evidence::Evidence;
use super::groups::{Group, GroupTable, Limits};
use super::vector::{self, Vector, AMPLIFICATION_PORTS};
use super::{lifecycle_extra, query_id, Attack, NO_TIME, TOP_SOURCES_REPORTED};
use crate::config::{NetworksConfig, VolumetricConfig};
use crate::decode::Header;
use crate::detect::fasthash::{hash_key, ip_key, key_ip, FastMap, FastState};
use crate::detect::hll::HyperLogLog;
use crate::detect::sketch::SpaceSaving;
use crate::detect::window::RateWindow;
use crate::detect::IncidentSink;

/// Counter ids: the vectors, then requests to each amplification port.
const IDS: usize = vector::COUNT + AMPLIFICATION_PORTS.len();
/// Index of the total in the step arrays.
const TOTAL: usize = IDS;
const TOTAL_VOLUME: usize = Vector::TotalVolume as usize;
const IDLE_EVICT_MICROS: i64 = 60_000_000;
const TOTAL_GRACE_MICROS: i64 = 300_000;
const TOTAL_MAX_WAIT_MICROS: i64 = 1_000_000;
const JUDGE_MICROS: i64 = 1_000_000;
const HOST_BIT_SEED: u64 = 0x6e65_7462_6974_7321;

/// An aggregate: an automatic prefix (`len` > 0, in IPv4-mapped bits for
/// IPv4) or a whole group (`len` 0, `net` its index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct NetKey {
    net: u128,
    len: u8,
}

impl NetKey {
    fn is_group(self) -> bool {
        self.len == 0
    }

    /// The prefix as a network (IPv4 for mapped addresses).
    fn prefix(self) -> Option<IpNet> {
        match key_ip(self.net) {
            IpAddr::V4(a) => IpNet::new(IpAddr::V4(a), self.len.saturating_sub(96)).ok(),
            ip @ IpAddr::V6(_) => IpNet::new(ip, self.len).ok(),
        }
    }
}

/// Evidence of a network counter: the host evidence plus its targets.
#[derive(Debug)]
struct NetEvidence {
    ev: Evidence,
    targets: Targets,
}

/// The hosts a network attack hits.
#[derive(Debug)]
enum Targets {
    /// Prefixes of at most 256 addresses (an IPv4 /24): exact counts by
    /// the last byte.
    Exact(Box<[u32; 256]>),
    /// Wider prefixes and groups: heavy hitters and a distinct count.
    Sketch(SpaceSaving<u128>, HyperLogLog),
}

impl Targets {
    fn new(key: NetKey, top: usize) -> Targets {
        if !key.is_group() && key.len >= 120 {
            Targets::Exact(Box::new([0; 256]))
        } else {
            Targets::Sketch(SpaceSaving::new(top.max(16)), HyperLogLog::new())
        }
    }

    #[inline]
    fn add(&mut self, host: u128) {
        match self {
            Targets::Exact(c) => {
                if let Some(n) = c.get_mut(usize::from(host as u8)) {
                    *n = n.saturating_add(1);
                }
            }
            Targets::Sketch(s, h) => {
                s.add(host);
                h.add_hash(hash_key(host, HOST_BIT_SEED));
            }
        }
    }

    /// Hosts hit (exact or estimated).
    fn hosts(&self) -> u64 {
        match self {
            Targets::Exact(c) => c.iter().filter(|&&n| n > 0).count() as u64,
            Targets::Sketch(_, h) => h.estimate(),
        }
    }

    /// The `n` most targeted hosts with their packets (exact, or
    /// guaranteed lower bounds), most first; `base` is the prefix.
    fn top(&self, base: u128, n: usize) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = match self {
            Targets::Exact(c) => c
                .iter()
                .enumerate()
                .filter(|(_, &p)| p > 0)
                .map(|(i, &p)| (key_ip(base | i as u128), u64::from(p)))
                .collect(),
            Targets::Sketch(s, _) => s.top(n).into_iter().map(|(k, p)| (key_ip(k), p)).collect(),
        };
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[derive(Debug)]
struct Counter {
    id: u8,
    win: RateWindow,
    /// Hosts hit in the second `bits_sec` and the one before (one bit per
    /// host hash).
    bits_sec: i64,
    bits_now: u64,
    bits_prev: u64,
    evidence: Option<Box<NetEvidence>>,
    /// Evidence was refused (`max_evidence` in use): start without it.
    capped: bool,
    attack: Option<Box<Attack>>,
}

impl Counter {
    fn hosts(&self) -> u32 {
        (self.bits_now | self.bits_prev).count_ones()
    }

    fn fold_bits(&mut self, step: i64, bits: u64) {
        let sec = step.div_euclid(10);
        if sec != self.bits_sec {
            self.bits_prev = if sec == self.bits_sec + 1 {
                self.bits_now
            } else {
                0
            };
            self.bits_now = 0;
            self.bits_sec = sec;
        }
        self.bits_now |= bits;
    }
}

#[derive(Debug)]
struct Net {
    key: NetKey,
    group: u16,
    last_seen: i64,
    /// Packets and bytes of the current step per counter id, and the
    /// total at [`TOTAL`].
    step_packets: [u32; IDS + 1],
    step_bytes: [u64; IDS + 1],
    /// Hosts hit in the current step, per vector.
    step_bits: [u64; vector::COUNT],
    touched: bool,
    /// Counter ids whose evidence is fed per packet (bit per id).
    feeding: u32,
    total: RateWindow,
    counters: Vec<Counter>,
    positions: [u8; IDS],
    total_pending: Option<i64>,
    open_attacks: u32,
    active: bool,
}

impl Net {
    fn new(key: NetKey, group: u16, now: i64) -> Net {
        Net {
            key,
            group,
            last_seen: now,
            step_packets: [0; IDS + 1],
            step_bytes: [0; IDS + 1],
            step_bits: [0; vector::COUNT],
            touched: false,
            feeding: 0,
            total: RateWindow::default(),
            counters: Vec::new(),
            positions: [u8::MAX; IDS],
            total_pending: None,
            open_attacks: 0,
            active: false,
        }
    }

    fn counter(&mut self, id: usize) -> Option<&mut Counter> {
        let pos = *self.positions.get(id)?;
        let i = if pos == u8::MAX {
            let i = self.counters.len();
            *self.positions.get_mut(id)? = u8::try_from(i).ok()?;
            self.counters.push(Counter {
                id: u8::try_from(id).ok()?,
                win: RateWindow::default(),
                bits_sec: i64::MIN,
                bits_now: 0,
                bits_prev: 0,
                evidence: None,
                capped: false,
                attack: None,
            });
            i
        } else {
            usize::from(pos)
        };
        self.counters.get_mut(i)
    }

    fn find(&self, id: usize) -> Option<&Counter> {
        let pos = *self.positions.get(id)?;
        self.counters.get(usize::from(pos))
    }

    fn busy(&self) -> bool {
        self.total_pending.is_some()
            || self
                .counters
                .iter()
                .any(|c| c.evidence.is_some() || c.attack.is_some())
    }
}

/// Counters the network detector keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Aggregates (prefixes and groups) in the table now.
    pub prefixes: u64,
    /// Prefixes evicted for being idle when the table was full.
    pub prefixes_evicted: u64,
    /// Packets whose prefix could not be tracked (table full, none idle).
    pub prefixes_untracked: u64,
    /// Network attacks started.
    pub attacks_started: u64,
    /// Evidence sets not allocated because `max_evidence` were in use.
    pub evidence_capped: u64,
}

/// Aggregates of protected space and their attacks.
pub struct Networks {
    cfg: NetworksConfig,
    hold: i64,
    update: i64,
    top_sources: usize,
    samples: usize,
    min_sources: u64,
    min_bytes: u64,
    /// Prefix length of IPv4 (in mapped bits) and IPv6 prefixes.
    v4_len: u8,
    v6_lens: Vec<u8>,
    nets: Vec<Net>,
    /// Group aggregates (never evicted) at the start of `nets`.
    groups: usize,
    index: FastMap<NetKey, u32>,
    /// The last aggregate found, to skip the hash for runs of packets to
    /// one prefix.
    last: Option<(NetKey, u32)>,
    /// The last host counted (address key and group) and its prefixes'
    /// slots: a flood on one host skips masks and lookups.
    last_host: Option<(u128, u16)>,
    last_prefixes: ([u32; 4], usize),
    /// Sweeps so far (a sweep moves slots).
    epoch: u64,
    /// Aggregates counted in the current step, then those with evidence,
    /// an attack or a pending total.
    touched: Vec<NetKey>,
    active: Vec<NetKey>,
    step: i64,
    last_sweep: i64,
    evidence_in_use: usize,
    stats: NetworkStats,
}

/// How a packet's host is placed: its group and the length of the
/// protected network it matched (in mapped bits for IPv4).
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// The host's group.
    pub group: u16,
    /// Prefix length of the group network that holds the host.
    pub net_len: u8,
}

impl Networks {
    /// Aggregates for `cfg.networks`, with the lifecycle settings of `cfg`.
    pub fn new(cfg: &VolumetricConfig, groups: &GroupTable) -> Networks {
        let n = cfg.networks.clone();
        let mut nets = Vec::new();
        let mut index = FastMap::with_hasher(FastState::new(0x6e65_7473_7461_626c));
        for g in 0..groups.len() {
            let key = NetKey {
                net: g as u128,
                len: 0,
            };
            index.insert(key, nets.len() as u32);
            nets.push(Net::new(key, u16::try_from(g).unwrap_or(u16::MAX), 0));
        }
        let mut v6_lens = n.ipv6_prefixes.clone();
        v6_lens.sort_unstable();
        v6_lens.dedup();
        v6_lens.reverse();
        Networks {
            v4_len: n.ipv4_prefix.saturating_add(96),
            v6_lens,
            hold: i64::try_from(cfg.hold_secs)
                .unwrap_or(3600)
                .saturating_mul(1_000_000),
            update: i64::try_from(cfg.update_secs)
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            top_sources: cfg.top_sources,
            samples: cfg.samples,
            min_sources: cfg.amplification_min_sources,
            min_bytes: cfg.amplification_min_bytes,
            cfg: n,
            groups: nets.len(),
            nets,
            index,
            last: None,
            last_host: None,
            last_prefixes: ([0; 4], 0),
            epoch: 0,
            touched: Vec::new(),
            active: Vec::new(),
            step: i64::MIN,
            last_sweep: NO_TIME,
            evidence_in_use: 0,
            stats: NetworkStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetworkStats {
        NetworkStats {
            prefixes: self.nets.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Counts one inbound packet to protected host `host` at step `step`
    /// (`vector` as classified for the host).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn count(
        &mut self,
        step: i64,
        ts: Timestamp,
        d: &Header,
        host: IpAddr,
        at: Placement,
        vector: Option<Vector>,
        wire_len: u32,
    ) {
        self.step = step;
        let key = ip_key(host);
        let p = Packet {
            ts,
            d,
            host: key,
            bit: host_bit(key),
            id: vector.map(|v| v as usize),
            wire_len,
        };
        // Group aggregates sit at the start of the table, by group number.
        let gi = usize::from(at.group);
        if gi < self.groups {
            if let Some(n) = self.nets.get_mut(gi) {
                add(n, &mut self.touched, &p);
            }
        }
        // A run of packets to one host (a flood) finds its prefixes again
        // without masks or lookups.
        if self.last_host == Some((key, at.group)) {
            for j in 0..self.last_prefixes.1 {
                let Some(&i) = self.last_prefixes.0.get(j) else {
                    break;
                };
                if let Some(n) = self.nets.get_mut(i as usize) {
                    add(n, &mut self.touched, &p);
                }
            }
            return;
        }
        let (first, more) = match host {
            IpAddr::V4(_) => (self.v4_len, 1),
            IpAddr::V6(_) => (
                self.v6_lens.first().copied().unwrap_or(128),
                self.v6_lens.len(),
            ),
        };
        let mut found = ([0u32; 4], 0usize);
        let mut complete = true;
        let epoch = self.epoch;
        let mut prev = None;
        for i in 0..more {
            let len = if i == 0 {
                first
            } else {
                match self.v6_lens.get(i) {
                    Some(&l) => l,
                    None => break,
                }
            };
            let len = len.max(at.net_len);
            if prev == Some(len) {
                continue; // clipped to the same protected network
            }
            prev = Some(len);
            let k = NetKey {
                net: key & mask(len),
                len,
            };
            let i = match self.last {
                Some((lk, li)) if lk == k => li as usize,
                _ => match self.slot(k, at.group, ts.micros()) {
                    Some(i) => i,
                    None => {
                        complete = false;
                        continue;
                    }
                },
            };
            if let Some(slot) = found.0.get_mut(found.1) {
                *slot = i as u32;
                found.1 += 1;
            }
            if let Some(n) = self.nets.get_mut(i) {
                add(n, &mut self.touched, &p);
            }
        }
        if complete && epoch == self.epoch {
            self.last_host = Some((key, at.group));
            self.last_prefixes = found;
        } else {
            self.last_host = None;
        }
    }

    /// Counts a request from protected host `host` to an amplification
    /// port (`id` its query counter): responses to it are solicited.
    pub fn count_query(&mut self, step: i64, ts: Timestamp, host: IpAddr, at: Placement, id: u8) {
        self.step = step;
        let key = ip_key(host);
        let group = NetKey {
            net: u128::from(at.group),
            len: 0,
        };
        let mut keys = vec![group];
        let lens: Vec<u8> = match host {
            IpAddr::V4(_) => vec![self.v4_len],
            IpAddr::V6(_) => self.v6_lens.clone(),
        };
        for len in lens {
            let len = len.max(at.net_len);
            keys.push(NetKey {
                net: key & mask(len),
                len,
            });
        }
        keys.dedup();
        for k in keys {
            if let Some(i) = self.slot(k, at.group, ts.micros()) {
                if let Some(n) = self.nets.get_mut(i) {
                    if let Some(p) = n.step_packets.get_mut(usize::from(id)) {
                        *p = p.saturating_add(1);
                    }
                    if !n.touched {
                        n.touched = true;
                        self.touched.push(k);
                    }
                }
            }
        }
    }

    /// The slot of aggregate `k`, made if there is room.
    #[inline]
    fn slot(&mut self, k: NetKey, group: u16, now: i64) -> Option<usize> {
        if let Some((lk, li)) = self.last {
            if lk == k {
                return Some(li as usize);
            }
        }
        if let Some(&i) = self.index.get(&k) {
            self.last = Some((k, i));
            return Some(i as usize);
        }
        if self.nets.len() >= self.cfg.max_prefixes.saturating_add(self.groups) {
            self.sweep(now);
            if self.nets.len() >= self.cfg.max_prefixes.saturating_add(self.groups) {
                self.stats.prefixes_untracked += 1;
                return None;
            }
        }
        let i = u32::try_from(self.nets.len()).ok()?;
        self.nets.push(Net::new(k, group, now));
        self.index.insert(k, i);
        self.last = Some((k, i));
        Some(i as usize)
    }

    /// Evicts prefixes idle for a minute of capture time (at most once a
    /// second); group aggregates stay.
    fn sweep(&mut self, now: i64) {
        if self.last_sweep != NO_TIME && now - self.last_sweep < 1_000_000 {
            return;
        }
        self.last_sweep = now;
        let cutoff = now - IDLE_EVICT_MICROS;
        let before = self.nets.len();
        self.nets
            .retain(|n| n.key.is_group() || n.active || n.touched || n.last_seen >= cutoff);
        self.stats.prefixes_evicted += (before - self.nets.len()) as u64;
        self.index.clear();
        for (i, n) in self.nets.iter().enumerate() {
            self.index.insert(n.key, i as u32);
        }
        self.last = None;
        self.last_host = None;
        self.epoch += 1;
    }

    /// Capture time reached step `now_step` (at `ts`): folds what was
    /// counted in earlier steps into the windows, checks thresholds,
    /// updates and ends.
    pub fn tick(
        &mut self,
        now_step: i64,
        groups: &GroupTable,
        sensor: &str,
        ts: Timestamp,
        sink: &mut impl IncidentSink,
    ) {
        if self.touched.is_empty() && self.active.is_empty() {
            return;
        }
        let counted = self.step;
        let closed = now_step - 1;
        let mut keys = std::mem::take(&mut self.touched);
        keys.append(&mut self.active);
        keys.sort_unstable_by_key(|k| (k.len, k.net));
        keys.dedup();
        let mut still_active = Vec::new();
        for k in keys {
            let Some(&i) = self.index.get(&k) else {
                continue;
            };
            let i = i as usize;
            let Some(g) = self.nets.get(i).and_then(|n| groups.get(n.group)) else {
                continue;
            };
            self.fold(i, counted, closed);
            self.check(i, g, sensor, ts, sink);
            if let Some(n) = self.nets.get_mut(i) {
                n.active = n.busy();
                if n.active {
                    still_active.push(k);
                }
            }
        }
        self.active = still_active;
    }

    /// Moves step counts of aggregate `i` into its windows.
    fn fold(&mut self, i: usize, step: i64, closed: i64) {
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        if n.touched {
            n.total
                .add_bulk(step, n.step_packets[TOTAL], n.step_bytes[TOTAL]);
            for id in 0..IDS {
                let (p, b) = (n.step_packets[id], n.step_bytes[id]);
                let bits = n.step_bits.get(id).copied().unwrap_or(0);
                if p == 0 {
                    continue;
                }
                if let Some(c) = n.counter(id) {
                    c.win.add_bulk(step, p, b);
                    c.fold_bits(step, bits);
                    if let Some(a) = &mut c.attack {
                        a.packets += u64::from(p);
                        a.bytes += b;
                    }
                }
            }
            if let Some(a) = n
                .positions
                .get(TOTAL_VOLUME)
                .filter(|&&p| p != u8::MAX)
                .and_then(|&p| n.counters.get_mut(usize::from(p)))
                .and_then(|c| c.attack.as_mut())
            {
                a.packets += u64::from(n.step_packets[TOTAL]);
                a.bytes += n.step_bytes[TOTAL];
            }
            n.step_packets = [0; IDS + 1];
            n.step_bytes = [0; IDS + 1];
            n.step_bits = [0; vector::COUNT];
            n.touched = false;
        }
        n.total.advance(closed);
        for c in &mut n.counters {
            c.win.advance(closed);
            if c.bits_sec != i64::MIN && closed.div_euclid(10) > c.bits_sec {
                c.fold_bits(closed, 0);
            }
        }
    }

    fn check(
        &mut self,
        i: usize,
        g: &Group,
        sensor: &str,
        ts: Timestamp,
        sink: &mut impl IncidentSink,
    ) {
        let now = ts.micros();
        let (hold, update) = (self.hold, self.update);
        let min_hosts = self.cfg.min_hosts;
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        let limits = if n.key.is_group() {
            &g.network
        } else {
            &g.prefix
        };
        let (tpps, tbps) = (n.total.pps(), n.total.bps());
        let all_bits = n
            .counters
            .iter()
            .filter(|c| usize::from(c.id) < vector::COUNT)
            .fold(0u64, |b, c| b | c.bits_now | c.bits_prev);
        let mut events: Vec<(usize, Event)> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        let mut want_evidence: Vec<usize> = Vec::new();
        let mut vector_near = false;
        for c in &mut n.counters {
            let Some(v) = vector::ALL.get(usize::from(c.id)).copied() else {
                continue;
            };
            let (tp, tb) = (limits.pps(v), limits.bps(v));
            let (pps, bps) = if v == Vector::TotalVolume {
                (tpps, tbps)
            } else {
                (c.win.pps(), c.win.bps())
            };
            let hosts = if v == Vector::TotalVolume {
                all_bits.count_ones()
            } else {
                c.hosts()
            };
            if v != Vector::TotalVolume
                && (pps.saturating_mul(2) >= tp || bps.saturating_mul(2) >= tb)
            {
                vector_near = true;
            }
            let over = pps >= tp || bps >= tb;
            if let Some(a) = &mut c.attack {
                a.peak_pps = a.peak_pps.max(pps);
                a.peak_bps = a.peak_bps.max(bps);
                if over {
                    a.below_since = NO_TIME;
                } else {
                    if a.below_since == NO_TIME {
                        a.below_since = now;
                    }
                    if now - a.below_since >= hold {
                        events.push((usize::from(c.id), Event::AttackEnded));
                        continue;
                    }
                }
                if update > 0 && now - a.last_update >= update {
                    a.last_update = now;
                    events.push((usize::from(c.id), Event::AttackUpdate));
                }
                continue;
            }
            let suspect = pps.saturating_mul(4) >= tp || bps.saturating_mul(4) >= tb;
            if c.evidence.is_some() && pps.saturating_mul(8) < tp && bps.saturating_mul(8) < tb {
                c.evidence = None;
                self.evidence_in_use = self.evidence_in_use.saturating_sub(1);
            }
            if suspect && hosts >= min_hosts && c.evidence.is_none() && v != Vector::TotalVolume {
                want_evidence.push(usize::from(c.id));
            }
            if over && hosts >= min_hosts && v != Vector::TotalVolume {
                starts.push(usize::from(c.id));
            }
        }
        // total_volume: over its threshold, spread, no vector attack open,
        // and no vector near its own threshold for a while.
        let total_over =
            tpps >= limits.pps(Vector::TotalVolume) || tbps >= limits.bps(Vector::TotalVolume);
        let total_open = n.find(TOTAL_VOLUME).is_some_and(|c| c.attack.is_some());
        let vector_starting = !starts.is_empty();
        if total_over
            && !total_open
            && n.open_attacks == 0
            && !vector_starting
            && all_bits.count_ones() >= min_hosts
        {
            match n.total_pending {
                None => {
                    n.total_pending = Some(now);
                    if !vector_near {
                        want_evidence.push(TOTAL_VOLUME);
                    }
                }
                Some(since) => {
                    if (now - since >= TOTAL_GRACE_MICROS && !vector_near)
                        || now - since >= TOTAL_MAX_WAIT_MICROS
                    {
                        n.total_pending = None;
                        starts.push(TOTAL_VOLUME);
                    }
                }
            }
        } else {
            n.total_pending = None;
            // A vector explains the volume: total_volume's evidence is not
            // kept while it cannot start (as for hosts).
            let total_evidence = n.find(TOTAL_VOLUME).is_some_and(|c| c.evidence.is_some());
            if !total_open && total_evidence && (n.open_attacks > 0 || vector_starting) {
                if let Some(c) = n.counter(TOTAL_VOLUME) {
                    if c.evidence.take().is_some() {
                        self.evidence_in_use = self.evidence_in_use.saturating_sub(1);
                    }
                }
                n.feeding &= !(1 << TOTAL_VOLUME);
            }
        }
        for id in want_evidence {
            self.allocate_evidence(i, id);
        }
        for id in starts {
            self.try_start(i, id, g, sensor, ts, sink);
        }
        for (id, event) in events {
            self.emit(i, id, event, g, sensor, ts, Some("hold_expired"), sink);
        }
    }

    fn allocate_evidence(&mut self, i: usize, id: usize) {
        let full = self.evidence_in_use >= self.cfg.max_evidence;
        let (top, samples, hosts) = (self.top_sources, self.samples, self.cfg.top_hosts);
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        let key = n.key;
        let Some(c) = n.counter(id) else {
            return;
        };
        if c.evidence.is_some() {
            return;
        }
        c.capped = full;
        if full {
            self.stats.evidence_capped += 1;
            return;
        }
        c.evidence = Some(Box::new(NetEvidence {
            ev: Evidence::new(top, samples),
            targets: Targets::new(key, hosts),
        }));
        n.feeding |= 1 << id;
        self.evidence_in_use += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn try_start(
        &mut self,
        i: usize,
        id: usize,
        g: &Group,
        sensor: &str,
        ts: Timestamp,
        sink: &mut impl IncidentSink,
    ) {
        let max_share = u64::from(self.cfg.max_host_share_percent);
        let (min_sources, min_bytes) = (self.min_sources, self.min_bytes);
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        let Some(v) = vector::ALL.get(id).copied() else {
            return;
        };
        let queries = if v.amplification_port().is_some() {
            n.find(usize::from(query_id(v))).map_or(0, |c| c.win.pps())
        } else {
            0
        };
        let udp_open = n.counters.iter().any(|c| {
            c.attack
                .as_ref()
                .is_some_and(|a| a.vector == Vector::UdpFlood)
        });
        let (tpps, tbps) = (n.total.pps(), n.total.bps());
        let key = n.key;
        let Some(c) = n.counter(id) else {
            return;
        };
        let (pps, bps) = if v == Vector::TotalVolume {
            (tpps, tbps)
        } else {
            (c.win.pps(), c.win.bps())
        };
        match &c.evidence {
            // Spread: no single host takes most of it. The evidence must
            // have seen traffic first (one step), so that the incident
            // names the targets.
            Some(e) => {
                let top = e.targets.top(key.net, 1).first().map_or(0, |t| t.1);
                let seen = e.ev.packets();
                if seen == 0 || top.saturating_mul(100) > seen.saturating_mul(max_share) {
                    return;
                }
            }
            None if c.capped => {}
            None => return,
        }
        let mut reported = v;
        if v.amplification_port().is_some() {
            if pps <= queries.saturating_mul(2) {
                return;
            }
            let sources = c.evidence.as_ref().map_or(0, |e| e.ev.distinct_peers());
            let mean = bps / 8 / pps.max(1);
            let young = c
                .evidence
                .as_ref()
                .and_then(|e| e.ev.first_seen())
                .is_some_and(|t| ts.micros() - t.micros() < JUDGE_MICROS);
            if sources < min_sources && young && mean >= min_bytes {
                return;
            }
            if sources < min_sources || mean < min_bytes {
                if udp_open {
                    return;
                }
                reported = Vector::UdpFlood;
            }
        }
        let identity = format!(
            "{}|volumetric-net|{}|{}/{}|{}",
            sensor,
            reported.name(),
            key_ip(key.net),
            key.len,
            ts.micros()
        );
        c.attack = Some(Attack::start(&identity, reported, ts, pps, bps));
        n.open_attacks += 1;
        if id != TOTAL_VOLUME {
            n.total_pending = None;
        }
        self.stats.attacks_started += 1;
        self.emit(i, id, Event::AttackStarted, g, sensor, ts, None, sink);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        i: usize,
        id: usize,
        event: Event,
        g: &Group,
        sensor: &str,
        ts: Timestamp,
        end_reason: Option<&str>,
        sink: &mut impl IncidentSink,
    ) {
        let Some(n) = self.nets.get_mut(i) else {
            return;
        };
        let key = n.key;
        let limits = limits_of(g, Some(key));
        let (tpps, tbps) = (n.total.pps(), n.total.bps());
        let all_bits = n
            .counters
            .iter()
            .filter(|c| usize::from(c.id) < vector::COUNT)
            .fold(0u64, |b, c| b | c.bits_now | c.bits_prev);
        let Some(c) = n.counter(id) else {
            return;
        };
        let Some(v) = vector::ALL.get(id).copied() else {
            return;
        };
        let (pps, bps) = if v == Vector::TotalVolume {
            (tpps, tbps)
        } else {
            (c.win.pps(), c.win.bps())
        };
        let bits = if v == Vector::TotalVolume {
            all_bits
        } else {
            c.bits_now | c.bits_prev
        };
        if let Some(a) = &mut c.attack {
            a.seq += 1;
        }
        let ctx = NetReport {
            sensor,
            group: g,
            key,
            pps,
            bps,
            threshold: (limits.pps(v), limits.bps(v)),
            hosts_bitmap: bits.count_ones(),
            top_hosts: self.cfg.top_hosts,
        };
        let incident = build_incident(&ctx, c, event, ts, end_reason);
        if event == Event::AttackEnded {
            c.attack = None;
            if c.evidence.take().is_some() {
                self.evidence_in_use = self.evidence_in_use.saturating_sub(1);
                n.feeding &= !(1 << id);
            }
            n.open_attacks = n.open_attacks.saturating_sub(1);
        }
        if let Some(inc) = incident {
            sink.emit(inc);
        }
    }

    /// Ends every open network attack at `ts`.
    pub fn finish(
        &mut self,
        groups: &GroupTable,
        sensor: &str,
        ts: Timestamp,
        sink: &mut impl IncidentSink,
    ) {
        let mut open = Vec::new();
        for (i, n) in self.nets.iter().enumerate() {
            for c in &n.counters {
                if c.attack.is_some() {
                    open.push((i, usize::from(c.id), n.group));
                }
            }
        }
        for (i, id, group) in open {
            if let Some(g) = groups.get(group) {
                self.emit(
                    i,
                    id,
                    Event::AttackEnded,
                    g,
                    sensor,
                    ts,
                    Some("capture_end"),
                    sink,
                );
            }
        }
    }
}

/// One packet as the aggregates count it.
struct Packet<'a> {
    ts: Timestamp,
    d: &'a Header,
    /// The host's address key.
    host: u128,
    /// The host's bit in the hosts-hit maps.
    bit: u64,
    /// The packet's counter id (its vector), if any.
    id: Option<usize>,
    wire_len: u32,
}

/// The bit of a host in a 64-bit hosts-hit map.
#[inline]
fn host_bit(key: u128) -> u64 {
    let x = (key as u64) ^ ((key >> 64) as u64);
    1u64 << (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Counts packet `p` in aggregate `n` (noting it in `touched` once per
/// step), and feeds its evidence when a counter has some.
#[inline(always)]
fn add(n: &mut Net, touched: &mut Vec<NetKey>, p: &Packet<'_>) {
    n.last_seen = p.ts.micros();
    if let Some(c) = n.step_packets.get_mut(TOTAL) {
        *c = c.saturating_add(1);
    }
    if let Some(b) = n.step_bytes.get_mut(TOTAL) {
        *b += u64::from(p.wire_len);
    }
    if let Some(id) = p.id {
        if let Some(c) = n.step_packets.get_mut(id) {
            *c = c.saturating_add(1);
        }
        if let Some(b) = n.step_bytes.get_mut(id) {
            *b += u64::from(p.wire_len);
        }
        if let Some(b) = n.step_bits.get_mut(id) {
            *b |= p.bit;
        }
    }
    if !n.touched {
        n.touched = true;
        touched.push(n.key);
    }
    if n.feeding != 0 {
        feed(n, p);
    }
}

/// Feeds `p` to the evidence of `n`'s counters that gather some (kept out
/// of [`add`], which every packet runs, so that one stays small).
#[cold]
#[inline(never)]
fn feed(n: &mut Net, p: &Packet<'_>) {
    let ids = [p.id, (p.id != Some(TOTAL_VOLUME)).then_some(TOTAL_VOLUME)];
    for fid in ids.into_iter().flatten() {
        if n.feeding & (1 << fid) == 0 {
            continue;
        }
        if let Some(e) = n.counter(fid).and_then(|c| c.evidence.as_mut()) {
            e.ev.add(p.ts, p.d, p.d.src, p.wire_len);
            e.targets.add(p.host);
        }
    }
}

fn limits_of(g: &Group, key: Option<NetKey>) -> &Limits {
    if key.is_some_and(NetKey::is_group) {
        &g.network
    } else {
        &g.prefix
    }
}

/// The mask of a `len`-bit prefix of a 128-bit key.
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

struct NetReport<'a> {
    sensor: &'a str,
    group: &'a Group,
    key: NetKey,
    pps: u64,
    bps: u64,
    threshold: (u64, u64),
    hosts_bitmap: u32,
    top_hosts: usize,
}

fn build_incident(
    r: &NetReport<'_>,
    c: &Counter,
    event: Event,
    ts: Timestamp,
    end_reason: Option<&str>,
) -> Option<Incident> {
    let a = c.attack.as_ref()?;
    let identity = format!("{}|{}|{}|{}", r.sensor, a.id, event.as_str(), a.seq);
    let mut extra = lifecycle_extra(a, r.group, r.threshold, event, ts, end_reason);
    extra.insert(
        "scope".into(),
        Value::String(if r.key.is_group() { "group" } else { "prefix" }.into()),
    );
    let mut top = Vec::new();
    let mut targets: Vec<(IpAddr, u64)> = Vec::new();
    let mut hosts_hit = u64::from(r.hosts_bitmap);
    if let Some(e) = &c.evidence {
        e.ev.report(false, &mut extra);
        top =
            e.ev.top_peers(TOP_SOURCES_REPORTED)
                .into_iter()
                .map(|(ip, packets)| TopSource { ip, packets })
                .collect();
        targets = e.targets.top(r.key.net, r.top_hosts);
        hosts_hit = hosts_hit.max(e.targets.hosts());
    } else {
        extra.insert("evidence".into(), Value::String("capped".into()));
    }
    let dst_net = if r.key.is_group() {
        // The group's network holding its most targeted host (or its first).
        let first = targets.first().map(|t| t.0);
        r.group
            .networks
            .iter()
            .find(|n| first.is_some_and(|ip| n.contains(&ip)))
            .or_else(|| r.group.networks.first())
            .map(|n| n.trunc())
    } else {
        r.key.prefix()
    };
    extra.insert("hosts_hit".into(), json!(hosts_hit));
    extra.insert(
        "top_targets".into(),
        Value::Array(
            targets
                .iter()
                .map(|(ip, packets)| json!({"ip": ip.to_string(), "packets": packets}))
                .collect(),
        ),
    );
    if let Some(net) = dst_net {
        extra.insert(DST_NET.into(), Value::String(net.to_string()));
    }
    let vector = a.vector;
    let proto = match (vector.proto(), dst_net.map(|n| n.addr())) {
        ("icmp", Some(IpAddr::V6(_))) => "icmpv6",
        (p, _) => p,
    };
    Some(Incident {
        id: incident_id(ts, identity.as_bytes()),
        schema: shaobing_wire::SCHEMA_VERSION,
        sensor: r.sensor.to_string(),
        kind: Kind::Volumetric,
        event,
        signature: format!("volumetric/{}", vector.name()),
        severity: Severity::High,
        ts,
        src_ip: None,
        dst_ip: None,
        src_port: None,
        dst_port: None,
        proto: proto.into(),
        community_id: None,
        direction: Some(Direction::Inbound),
        attack_id: Some(a.id),
        vector: Some(vector.name().into()),
        pps: Some(r.pps),
        bps: Some(r.bps),
        peak_pps: Some(a.peak_pps),
        peak_bps: Some(a.peak_bps),
        packets: Some(a.packets),
        bytes: Some(a.bytes),
        top_sources: Some(top),
        match_count: None,
        app_proto: None,
        excerpt: None,
        extra,
    })
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
