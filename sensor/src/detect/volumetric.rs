//! Volumetric detection: SYN floods per protected destination host.
//!
//! Each protected host that receives SYNs (SYN set, ACK clear) gets a
//! one-second [`RateWindow`]. When its SYN rate goes over the threshold an
//! attack starts (`attack_started`, at the capture time of the packet that
//! crossed it, so always within one second of the flood's first packet);
//! every `update_secs` an `attack_update` reports current and peak rates;
//! when the rate has stayed under the threshold for `hold_secs` the attack
//! ends (`attack_ended` with totals). All three share one `attack_id`.
//! Attacks still open when the capture ends are ended then, with
//! `end_reason = "capture_end"`.
//!
//! Memory: a host costs one table entry (~200 bytes). Top sources are kept
//! in a fixed-size Space-Saving sketch only while a host is above half its
//! threshold, so a flood from millions of spoofed sources costs the same as
//! one from ten. The host table is capped (`max_hosts`): idle hosts (no
//! packet for 60 s of capture time) are evicted first; when none is idle,
//! new hosts are not tracked and counted as `hosts_untracked`.

use std::collections::HashMap;
use std::net::IpAddr;

use shaobing_wire::{
    incident_id, Direction, Event, Incident, Kind, Severity, Timestamp, TopSource,
};
use uuid::Uuid;

use super::sketch::SpaceSaving;
use super::window::{slot_of, RateWindow};
use super::IncidentSink;
use crate::config::VolumetricConfig;
use crate::decode::{proto, tcp_flags, Decoded};
use crate::netset::NetSet;

const IDLE_EVICT_MICROS: i64 = 60_000_000;
const TOP_SOURCES_REPORTED: usize = 10;

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
}

#[derive(Debug)]
struct Attack {
    id: Uuid,
    started: Timestamp,
    seq: u32,
    peak_pps: u64,
    peak_bps: u64,
    packets: u64,
    bytes: u64,
    below_since: Option<Timestamp>,
    last_update: Timestamp,
}

#[derive(Debug, Default)]
struct Host {
    syn: RateWindow,
    last_seen: i64,
    sources: Option<SpaceSaving>,
    attack: Option<Attack>,
}

/// The volumetric detector.
pub struct Volumetric {
    cfg: VolumetricConfig,
    protected: NetSet,
    sensor: String,
    hosts: HashMap<IpAddr, Host>,
    /// Hosts with an open attack: the only ones the clock tick visits.
    active: Vec<IpAddr>,
    slot: i64,
    stats: VolumetricStats,
}

impl Volumetric {
    /// A detector for `protected` networks, naming `sensor` in incidents.
    pub fn new(cfg: VolumetricConfig, protected: NetSet, sensor: String) -> Self {
        Volumetric {
            cfg,
            protected,
            sensor,
            hosts: HashMap::new(),
            active: Vec::new(),
            slot: i64::MIN,
            stats: VolumetricStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> VolumetricStats {
        VolumetricStats {
            hosts: self.hosts.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Feeds one decoded packet of `wire_len` bytes captured at `ts`.
    #[inline]
    pub fn on_packet(
        &mut self,
        ts: Timestamp,
        d: &Decoded<'_>,
        wire_len: u32,
        sink: &mut impl IncidentSink,
    ) {
        let slot = slot_of(ts.micros());
        if slot > self.slot {
            self.slot = slot;
            self.tick(ts, sink);
        }
        let is_syn = d.proto == proto::TCP
            && d.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN;
        if !is_syn || !self.protected.contains(d.dst) {
            return;
        }
        let threshold = self.cfg.syn_flood_pps;
        let k = self.cfg.top_sources;
        let slot = self.slot;
        let Some(host) = host_entry(
            &mut self.hosts,
            &mut self.stats,
            self.cfg.max_hosts,
            d.dst,
            ts,
        ) else {
            self.stats.hosts_untracked += 1;
            return;
        };
        host.last_seen = ts.micros();
        host.syn.add(slot, wire_len);
        let pps = host.syn.pps();
        if pps * 2 > threshold || host.attack.is_some() {
            host.sources
                .get_or_insert_with(|| SpaceSaving::new(k))
                .add(d.src);
        }
        if let Some(a) = &mut host.attack {
            a.packets += 1;
            a.bytes += u64::from(wire_len);
            a.peak_pps = a.peak_pps.max(pps);
            a.peak_bps = a.peak_bps.max(host.syn.bps());
            return;
        }
        if pps > threshold {
            let identity = format!(
                "{}|volumetric|syn_flood|{}|{}",
                self.sensor,
                d.dst,
                ts.micros()
            );
            host.attack = Some(Attack {
                id: incident_id(ts, identity.as_bytes()),
                started: ts,
                seq: 0,
                peak_pps: pps,
                peak_bps: host.syn.bps(),
                packets: pps,
                bytes: host.syn.bps() / 8,
                below_since: None,
                last_update: ts,
            });
            self.stats.attacks_started += 1;
            self.active.push(d.dst);
            self.emit(d.dst, Event::AttackStarted, ts, None, sink);
        }
    }

    /// Every 100 ms of capture time: updates and ends of open attacks.
    fn tick(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        if self.active.is_empty() {
            return;
        }
        let hold = i64::try_from(self.cfg.hold_secs).unwrap_or(i64::MAX) * 1_000_000;
        let update = i64::try_from(self.cfg.update_secs).unwrap_or(0) * 1_000_000;
        let threshold = self.cfg.syn_flood_pps;
        let mut events = Vec::new();
        for ip in &self.active {
            let Some(host) = self.hosts.get_mut(ip) else {
                continue;
            };
            host.syn.advance(self.slot);
            let pps = host.syn.pps();
            let Some(a) = &mut host.attack else { continue };
            if pps > threshold {
                a.below_since = None;
            } else {
                let since = *a.below_since.get_or_insert(ts);
                if ts.micros() - since.micros() >= hold {
                    events.push((*ip, Event::AttackEnded));
                    continue;
                }
            }
            if update > 0 && ts.micros() - a.last_update.micros() >= update {
                a.last_update = ts;
                events.push((*ip, Event::AttackUpdate));
            }
        }
        for (ip, event) in events {
            self.emit(ip, event, ts, Some("hold_expired"), sink);
        }
    }

    /// Ends every open attack at `ts` (end of capture or shutdown).
    pub fn finish(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        for ip in self.active.clone() {
            self.emit(ip, Event::AttackEnded, ts, Some("capture_end"), sink);
        }
    }

    fn emit(
        &mut self,
        ip: IpAddr,
        event: Event,
        ts: Timestamp,
        end_reason: Option<&str>,
        sink: &mut impl IncidentSink,
    ) {
        let Some(host) = self.hosts.get_mut(&ip) else {
            return;
        };
        let Some(a) = &mut host.attack else { return };
        a.seq += 1;
        let top: Vec<TopSource> = host
            .sources
            .as_ref()
            .map(|s| s.top(TOP_SOURCES_REPORTED))
            .unwrap_or_default()
            .into_iter()
            .map(|(ip, packets)| TopSource { ip, packets })
            .collect();
        let identity = format!("{}|{}|{}|{}", self.sensor, a.id, event.as_str(), a.seq);
        let mut extra = serde_json::Map::new();
        extra.insert(
            "started_at".into(),
            serde_json::Value::String(a.started.to_string()),
        );
        if event == Event::AttackEnded {
            let secs = (ts.micros() - a.started.micros()) as f64 / 1e6;
            extra.insert("duration_s".into(), serde_json::json!(secs));
            if let Some(r) = end_reason {
                extra.insert("end_reason".into(), serde_json::Value::String(r.into()));
            }
        }
        let incident = Incident {
            id: incident_id(ts, identity.as_bytes()),
            schema: shaobing_wire::SCHEMA_VERSION,
            sensor: self.sensor.clone(),
            kind: Kind::Volumetric,
            event,
            signature: "volumetric/syn_flood".into(),
            severity: Severity::High,
            ts,
            src_ip: None,
            dst_ip: Some(ip),
            src_port: None,
            dst_port: None,
            proto: "tcp".into(),
            community_id: None,
            direction: Some(Direction::Inbound),
            attack_id: Some(a.id),
            vector: Some("syn_flood".into()),
            pps: Some(host.syn.pps()),
            bps: Some(host.syn.bps()),
            peak_pps: Some(a.peak_pps),
            peak_bps: Some(a.peak_bps),
            packets: Some(a.packets),
            bytes: Some(a.bytes),
            top_sources: Some(top),
            match_count: None,
            app_proto: None,
            excerpt: None,
            extra,
        };
        if event == Event::AttackEnded {
            host.attack = None;
            host.sources = None;
            self.active.retain(|h| *h != ip);
        }
        sink.emit(incident);
    }
}

/// The entry for `ip`, making room if the table is full: idle hosts (no
/// packet for a minute of capture time, no open attack) are evicted first;
/// `None` when none is idle.
fn host_entry<'a>(
    hosts: &'a mut HashMap<IpAddr, Host>,
    stats: &mut VolumetricStats,
    max_hosts: usize,
    ip: IpAddr,
    ts: Timestamp,
) -> Option<&'a mut Host> {
    if !hosts.contains_key(&ip) && hosts.len() >= max_hosts {
        let cutoff = ts.micros() - IDLE_EVICT_MICROS;
        let before = hosts.len();
        hosts.retain(|_, h| h.attack.is_some() || h.last_seen >= cutoff);
        stats.hosts_evicted += (before - hosts.len()) as u64;
        if hosts.len() >= max_hosts {
            return None;
        }
    }
    Some(hosts.entry(ip).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Fragment;

    fn syn(src: IpAddr, dst: IpAddr) -> Decoded<'static> {
        Decoded {
            src,
            dst,
            proto: proto::TCP,
            ttl: 64,
            src_port: 1234,
            dst_port: 80,
            tcp_flags: tcp_flags::SYN,
            tcp_seq: 0,
            payload: b"",
            fragment: Fragment::None,
        }
    }

    fn detector(threshold: u64) -> Volumetric {
        let cfg = VolumetricConfig {
            syn_flood_pps: threshold,
            hold_secs: 2,
            update_secs: 1,
            ..VolumetricConfig::default()
        };
        Volumetric::new(cfg, NetSet::private_defaults(), "t".into())
    }

    /// Sends `pps` SYNs per second to `dst` from `from_us` for `dur_us`.
    fn flood(
        v: &mut Volumetric,
        out: &mut Vec<Incident>,
        dst: &str,
        pps: i64,
        from_us: i64,
        dur_us: i64,
    ) {
        let dst: IpAddr = dst.parse().unwrap();
        let gap = 1_000_000 / pps;
        let mut t = from_us;
        let mut i = 0u32;
        while t < from_us + dur_us {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            v.on_packet(Timestamp(t), &syn(src, dst), 60, out);
            t += gap;
            i += 1;
        }
    }

    #[test]
    fn flood_over_threshold_starts_within_a_second_and_ends_after_hold() {
        let mut v = detector(1000);
        let mut out = Vec::new();
        flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 3_000_000);
        // Background keeps the clock moving after the flood.
        flood(&mut v, &mut out, "10.0.0.2", 10, 3_000_000, 5_000_000);
        let started: Vec<_> = out
            .iter()
            .filter(|i| i.event == Event::AttackStarted)
            .collect();
        assert_eq!(started.len(), 1);
        assert!(started[0].ts.micros() < 1_000_000);
        assert_eq!(started[0].dst_ip, Some("10.0.0.1".parse().unwrap()));
        let ended: Vec<_> = out
            .iter()
            .filter(|i| i.event == Event::AttackEnded)
            .collect();
        assert_eq!(ended.len(), 1);
        assert!(ended[0].ts.micros() >= 3_000_000 + 2_000_000);
        assert!(ended[0].ts.micros() <= 3_000_000 + 3_200_000);
        assert_eq!(ended[0].extra.get("end_reason").unwrap(), "hold_expired");
        assert!(out.iter().any(|i| i.event == Event::AttackUpdate));
        for i in &out {
            i.validate().unwrap();
            assert_eq!(i.attack_id, started[0].attack_id);
        }
    }

    #[test]
    fn rate_under_threshold_gives_nothing() {
        let mut v = detector(1000);
        let mut out = Vec::new();
        flood(&mut v, &mut out, "10.0.0.1", 900, 0, 5_000_000);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn unprotected_destinations_are_ignored() {
        let mut v = detector(1000);
        let mut out = Vec::new();
        flood(&mut v, &mut out, "8.8.8.8", 5000, 0, 2_000_000);
        assert!(out.is_empty());
        assert_eq!(v.stats().hosts, 0);
    }

    #[test]
    fn open_attack_is_ended_at_capture_end() {
        let mut v = detector(1000);
        let mut out = Vec::new();
        flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 2_000_000);
        v.finish(Timestamp(2_000_000), &mut out);
        let ended = out.iter().find(|i| i.event == Event::AttackEnded).unwrap();
        assert_eq!(ended.extra.get("end_reason").unwrap(), "capture_end");
    }

    #[test]
    fn host_table_cap_is_enforced_and_counted() {
        let mut v = Volumetric::new(
            VolumetricConfig {
                max_hosts: 2,
                ..VolumetricConfig::default()
            },
            NetSet::private_defaults(),
            "t".into(),
        );
        let mut out = Vec::new();
        for h in 1..=3 {
            let dst = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, h));
            v.on_packet(
                Timestamp(1),
                &syn("1.1.1.1".parse().unwrap(), dst),
                60,
                &mut out,
            );
        }
        assert_eq!(v.stats().hosts, 2);
        assert_eq!(v.stats().hosts_untracked, 1);
        // After 60 s idle the old hosts make room.
        let dst = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));
        v.on_packet(
            Timestamp(61_000_001),
            &syn("1.1.1.1".parse().unwrap(), dst),
            60,
            &mut out,
        );
        assert_eq!(v.stats().hosts_evicted, 2);
        assert_eq!(v.stats().hosts, 1);
    }

    #[test]
    fn replay_is_deterministic() {
        let run = || {
            let mut v = detector(1000);
            let mut out = Vec::new();
            flood(&mut v, &mut out, "10.0.0.1", 2000, 0, 3_000_000);
            v.finish(Timestamp(3_000_000), &mut out);
            out
        };
        assert_eq!(run(), run());
    }
}
