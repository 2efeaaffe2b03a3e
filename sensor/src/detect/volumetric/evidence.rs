//! Evidence gathered about one suspect (host, direction, vector): heavy
//! hitters, distinct peers, ports, packet sizes, TTLs and sampled headers.
//! Everything here is fixed-size: a flood from ten million spoofed sources
//! costs the same as one from ten.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use shaobing_wire::Timestamp;

use crate::decode::{proto, Fragment, Header};
use crate::detect::fasthash::{hash_key, ip_key, key_ip};
use crate::detect::hll::HyperLogLog;
use crate::detect::sketch::{SketchKey, SpaceSaving};
use crate::detect::window::slot_of;

/// Seed of the distinct-peer hash.
const HLL_SEED: u64 = 0x6576_6964_656e_6365;
/// Ports and TTLs kept per sketch.
const PORT_SLOTS: usize = 16;
const TTL_SLOTS: usize = 8;
/// Ports and TTLs reported.
const REPORTED: usize = 5;
/// Packets per 100 ms step that feed the heavy-hitter sketches one by one
/// (40,960 packets/s).
pub const EXACT_PER_STEP: u32 = 4_096;
/// Beyond [`EXACT_PER_STEP`] in a step, one packet in this many feeds the
/// sketches, standing for this many.
pub const SAMPLE_ONE_IN: u32 = 16;

/// One sampled packet header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sample {
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    ttl: u8,
    wire_len: u32,
    fragment: Fragment,
}

/// Evidence about the traffic of one suspect vector.
#[derive(Debug)]
pub struct Evidence {
    /// Remote peers (sources when inbound, destinations when outbound), as
    /// [`ip_key`]s: 16-byte keys compare faster than `IpAddr`.
    peers: SpaceSaving<u128>,
    distinct: HyperLogLog,
    src_ports: SpaceSaving<u16>,
    dst_ports: SpaceSaving<u16>,
    ttls: SpaceSaving<u8>,
    ttl_min: u8,
    ttl_max: u8,
    size_min: u32,
    size_max: u32,
    size_sum: u64,
    packets: u64,
    first_seen: Option<Timestamp>,
    samples: Vec<Sample>,
    max_samples: usize,
    /// The 100 ms step being counted and its packets so far.
    step: i64,
    step_packets: u32,
    /// Packets that stood for [`SAMPLE_ONE_IN`] in the sketches.
    sampled: u64,
    /// Xorshift state choosing the sampled packets: a fixed period would
    /// alias with a sender that alternates sources.
    rng: u32,
}

impl Evidence {
    /// Empty evidence keeping `top` peers and up to `samples` headers.
    pub fn new(top: usize, samples: usize) -> Self {
        Evidence {
            peers: SpaceSaving::new(top),
            distinct: HyperLogLog::new(),
            src_ports: SpaceSaving::new(PORT_SLOTS),
            dst_ports: SpaceSaving::new(PORT_SLOTS),
            ttls: SpaceSaving::new(TTL_SLOTS),
            ttl_min: u8::MAX,
            ttl_max: 0,
            size_min: u32::MAX,
            size_max: 0,
            size_sum: 0,
            packets: 0,
            first_seen: None,
            samples: Vec::with_capacity(samples),
            max_samples: samples,
            step: i64::MIN,
            step_packets: 0,
            sampled: 0,
            rng: 0x9E37_79B9,
        }
    }

    /// Adds one packet; `peer` is its remote address.
    ///
    /// Counts, sizes, TTL range and distinct peers take every packet. The
    /// heavy-hitter sketches (peers, ports, TTLs) take every packet up to
    /// [`EXACT_PER_STEP`] per 100 ms step and then one in
    /// [`SAMPLE_ONE_IN`] (chosen pseudo-randomly, the same on every replay), weighted: at a million packets/s a spoofed flood
    /// would otherwise spend most of its cost replacing sketch entries.
    /// Counts reported past that rate are estimates, and the incident says
    /// so (`evidence_sampling`).
    #[inline]
    pub fn add(&mut self, ts: Timestamp, d: &Header, peer: IpAddr, wire_len: u32) {
        self.add_at(slot_of(ts.micros()), ts, d, peer, wire_len);
    }

    /// [`Evidence::add`] for a packet of the 100 ms step `step` (the
    /// detector knows it already: `slot_of(ts)`).
    #[inline(always)]
    pub fn add_at(&mut self, step: i64, ts: Timestamp, d: &Header, peer: IpAddr, wire_len: u32) {
        let key = ip_key(peer);
        let h = hash_key(key, HLL_SEED);
        self.distinct.add_hash(h);
        if step != self.step {
            self.step = step;
            self.step_packets = 0;
        }
        self.step_packets = self.step_packets.saturating_add(1);
        let weight = if self.step_packets <= EXACT_PER_STEP {
            1
        } else if self.sample() {
            self.sampled += 1;
            u64::from(SAMPLE_ONE_IN)
        } else {
            0
        };
        if weight > 0 {
            // One hash serves both: its low byte is the peer sketch's
            // filter bucket, its high bits the HyperLogLog register.
            self.peers.add_weighted(key, h as u8, weight);
            if d.fragment != Fragment::Later && matches!(d.proto, proto::TCP | proto::UDP) {
                self.src_ports
                    .add_weighted(d.src_port, d.src_port.bucket(), weight);
                self.dst_ports
                    .add_weighted(d.dst_port, d.dst_port.bucket(), weight);
            }
            self.ttls.add_weighted(d.ttl, d.ttl, weight);
        }
        self.ttl_min = self.ttl_min.min(d.ttl);
        self.ttl_max = self.ttl_max.max(d.ttl);
        self.size_min = self.size_min.min(wire_len);
        self.size_max = self.size_max.max(wire_len);
        self.size_sum += u64::from(wire_len);
        self.packets += 1;
        self.first_seen.get_or_insert(ts);
        if self.samples.len() < self.max_samples {
            self.samples.push(Sample {
                ts,
                src: d.src,
                dst: d.dst,
                proto: d.proto,
                src_port: d.src_port,
                dst_port: d.dst_port,
                tcp_flags: d.tcp_flags,
                ttl: d.ttl,
                wire_len,
                fragment: d.fragment,
            });
        }
    }

    /// Whether this packet is the one in [`SAMPLE_ONE_IN`] that feeds the
    /// sketches (xorshift32).
    #[inline]
    fn sample(&mut self) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        self.rng.is_multiple_of(SAMPLE_ONE_IN)
    }

    /// Packets added.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Capture time of the first packet added.
    pub fn first_seen(&self) -> Option<Timestamp> {
        self.first_seen
    }

    /// Estimated number of distinct peers.
    pub fn distinct_peers(&self) -> u64 {
        self.distinct.estimate()
    }

    /// Heaviest peers with guaranteed (lower-bound) packet counts.
    pub fn top_peers(&self, n: usize) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self
            .peers
            .top(n)
            .into_iter()
            .map(|(k, c)| (key_ip(k), c))
            .collect();
        // Same order as `SpaceSaving::top` on addresses: count, then address.
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Adds the evidence fields to an incident's `extra` map. `outbound`
    /// names peers as destinations instead of sources.
    pub fn report(&self, outbound: bool, extra: &mut Map<String, Value>) {
        let ports = |s: &SpaceSaving<u16>| -> Value {
            Value::Array(
                s.top(REPORTED)
                    .into_iter()
                    .map(|(port, packets)| json!({"port": port, "packets": packets}))
                    .collect(),
            )
        };
        let distinct = self.distinct_peers();
        if outbound {
            extra.insert("distinct_destinations".into(), json!(distinct));
            let top: Vec<Value> = self
                .top_peers(10)
                .into_iter()
                .map(|(ip, packets)| json!({"ip": ip.to_string(), "packets": packets}))
                .collect();
            extra.insert("top_destinations".into(), Value::Array(top));
        } else {
            extra.insert("distinct_sources".into(), json!(distinct));
        }
        extra.insert("top_src_ports".into(), ports(&self.src_ports));
        extra.insert("top_dst_ports".into(), ports(&self.dst_ports));
        if let Some(mean) = self.size_sum.checked_div(self.packets) {
            extra.insert(
                "packet_size".into(),
                json!({
                    "min": self.size_min,
                    "max": self.size_max,
                    "mean": mean,
                    "packets": self.packets,
                }),
            );
            let top: Vec<Value> = self
                .ttls
                .top(REPORTED)
                .into_iter()
                .map(|(ttl, packets)| json!({"ttl": ttl, "packets": packets}))
                .collect();
            extra.insert(
                "ttl".into(),
                json!({"min": self.ttl_min, "max": self.ttl_max, "top": top}),
            );
        }
        let samples: Vec<Value> = self
            .samples
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("ts".into(), json!(s.ts.to_string()));
                m.insert("src_ip".into(), json!(s.src.to_string()));
                m.insert("dst_ip".into(), json!(s.dst.to_string()));
                m.insert("proto".into(), json!(proto::name(s.proto)));
                if s.fragment != Fragment::Later {
                    m.insert("src_port".into(), json!(s.src_port));
                    m.insert("dst_port".into(), json!(s.dst_port));
                }
                if s.proto == proto::TCP && s.fragment != Fragment::Later {
                    m.insert("tcp_flags".into(), json!(format!("{:#04x}", s.tcp_flags)));
                }
                m.insert("ttl".into(), json!(s.ttl));
                m.insert("wire_len".into(), json!(s.wire_len));
                let frag = match s.fragment {
                    Fragment::None => None,
                    Fragment::First => Some("first"),
                    Fragment::Later => Some("later"),
                };
                if let Some(f) = frag {
                    m.insert("fragment".into(), json!(f));
                }
                Value::Object(m)
            })
            .collect();
        extra.insert("samples".into(), Value::Array(samples));
        if self.sampled > 0 {
            extra.insert(
                "evidence_sampling".into(),
                json!({
                    "exact_per_100ms": EXACT_PER_STEP,
                    "then_one_in": SAMPLE_ONE_IN,
                    "sampled_packets": self.sampled,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_summarises_sizes_ttls_ports_and_samples() {
        let mut e = Evidence::new(8, 2);
        let dst: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..100u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i % 5));
            let d = Header {
                src,
                dst,
                proto: proto::UDP,
                ttl: if i % 2 == 0 { 50 } else { 60 },
                src_port: 53,
                dst_port: 4444,
                tcp_flags: 0,
                tcp_seq: 0,
                tcp_ack: 0,
                has_payload: false,
                fragment: Fragment::None,
                frag_id: 0,
            };
            e.add(Timestamp(i64::from(i)), &d, src, 500 + i);
        }
        let mut extra = Map::new();
        e.report(false, &mut extra);
        assert_eq!(extra["distinct_sources"], json!(5));
        assert_eq!(
            extra["top_src_ports"][0],
            json!({"port": 53, "packets": 100})
        );
        assert_eq!(extra["packet_size"]["min"], json!(500));
        assert_eq!(extra["packet_size"]["max"], json!(599));
        assert_eq!(extra["ttl"]["min"], json!(50));
        assert_eq!(extra["ttl"]["max"], json!(60));
        assert_eq!(extra["samples"].as_array().unwrap().len(), 2);
        assert_eq!(e.top_peers(1)[0].1, 20);
    }

    #[test]
    fn past_the_exact_rate_sketches_sample_and_the_report_says_so() {
        let dst: IpAddr = "10.0.0.1".parse().unwrap();
        let heavy: IpAddr = "192.0.2.7".parse().unwrap();
        let header = |src: IpAddr| Header {
            src,
            dst,
            proto: proto::TCP,
            ttl: 50,
            src_port: 1234,
            dst_port: 80,
            tcp_flags: 0x02,
            tcp_seq: 0,
            tcp_ack: 0,
            has_payload: false,
            fragment: Fragment::None,
            frag_id: 0,
        };
        // 100,000 packets in one 100 ms step: a quarter from one source.
        let mut e = Evidence::new(8, 2);
        for i in 0..100_000u32 {
            let src = if i % 4 == 0 {
                heavy
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i))
            };
            e.add(Timestamp(i64::from(i)), &header(src), src, 64);
        }
        let (ip, packets) = e.top_peers(1)[0];
        assert_eq!(ip, heavy);
        assert!((20_000..=30_000).contains(&packets), "{packets}");
        let mut extra = Map::new();
        e.report(false, &mut extra);
        assert_eq!(extra["packet_size"]["packets"], json!(100_000));
        assert_eq!(extra["evidence_sampling"]["then_one_in"], json!(16));
        let distinct = extra["distinct_sources"].as_u64().unwrap();
        assert!((67_500..=82_500).contains(&distinct), "{distinct}");
        // Below the rate nothing is sampled and nothing says so.
        let mut e = Evidence::new(8, 2);
        for i in 0..1_000u32 {
            e.add(Timestamp(i64::from(i) * 1_000), &header(heavy), heavy, 64);
        }
        let mut extra = Map::new();
        e.report(false, &mut extra);
        assert!(extra.get("evidence_sampling").is_none());
        assert_eq!(e.top_peers(1)[0].1, 1_000);
    }
}
