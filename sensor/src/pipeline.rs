//! The one packet path, used by `replay` and by every live worker alike:
//!
//! ```text
//!  RawPacket ─► decode (link, IP, tunnels, transport) ─► headers ─► volumetric stage
//!                                  │
//!                                  └─► defragment ─► leak detector (flows, streams, scanning)
//! ```
//!
//! Every packet is counted here, and every packet that cannot be decoded
//! is counted by reason, whatever the capture source. The volumetric
//! stage takes a packet's headers only ([`Header`]): in a replay it is the
//! [`Volumetric`] detector itself, in live mode a batcher that hands the
//! headers of every worker's packets to one volumetric thread
//! ([`crate::live`]). The leak detector sees whole datagrams: fragments go
//! through the defragmenter first. Data flows one way: no stage calls back
//! into an earlier one.

use std::sync::Arc;

use shaobing_signatures::SignatureSet;
use shaobing_wire::Timestamp;

use crate::capture::RawPacket;
use crate::config::Settings;
use crate::decode::tunnel::{self, DecapConfig};
use crate::decode::{decode_into, proto, Decoded, Fragment, Header, Skip};
use crate::defrag::{DatagramKey, Defrag, DefragLimits};
use crate::detect::leak::{Leak, LeakStats};
use crate::detect::volumetric::{Volumetric, VolumetricStats};
use crate::detect::IncidentSink;

/// Packet counters of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets seen.
    pub packets: u64,
    /// Captured bytes seen.
    pub bytes: u64,
    /// Packets that were not IP (ARP, LLDP...).
    pub not_ip: u64,
    /// Packets cut short by the snaplen or the capture.
    pub truncated: u64,
    /// Packets with impossible header fields.
    pub malformed: u64,
    /// Packets nested deeper than the decoder follows.
    pub too_many_layers: u64,
    /// Packets taken out of a tunnel, per kind ([`tunnel::Kind::ALL`]
    /// order; a packet inside two kinds counts for both).
    pub decapsulated: [u64; 8],
    /// Packets whose tunnel header did not validate, per kind: they were
    /// handled as the outer packet.
    pub tunnel_malformed: [u64; 8],
    /// Capture time of the last packet.
    pub last_ts: Timestamp,
}

impl Counters {
    /// Every counter under a stable name, as live heartbeats report them
    /// (`decode_counters`).
    pub fn named(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("packets", self.packets),
            ("bytes", self.bytes),
            ("not_ip", self.not_ip),
            ("truncated", self.truncated),
            ("malformed", self.malformed),
            ("too_many_layers", self.too_many_layers),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        for (k, (n, bad)) in tunnel::Kind::ALL
            .iter()
            .zip(self.decapsulated.iter().zip(&self.tunnel_malformed))
        {
            v.push((format!("decap_{}", k.name()), *n));
            v.push((format!("tunnel_malformed_{}", k.name()), *bad));
        }
        v
    }

    /// The tunnel counters for the end-of-replay summary: every kind
    /// opened, and the malformed headers by kind when there were any.
    pub fn tunnel_summary(&self) -> String {
        let mut parts: Vec<String> = tunnel::Kind::ALL
            .iter()
            .zip(&self.decapsulated)
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        let bad: u64 = self.tunnel_malformed.iter().sum();
        parts.push(format!("tunnel_malformed={bad}"));
        for (k, n) in tunnel::Kind::ALL.iter().zip(&self.tunnel_malformed) {
            if *n > 0 {
                parts.push(format!("tunnel_malformed_{}={n}", k.name()));
            }
        }
        parts.join(" ")
    }

    #[inline]
    fn tunnels(&mut self, d: &crate::decode::Decoded<'_>) {
        // One step per kind present: a kind's bit is its index in the
        // arrays (`Kind::ALL` order).
        let mut bits = d.tunnels.0;
        while bits != 0 {
            if let Some(n) = self.decapsulated.get_mut(bits.trailing_zeros() as usize) {
                *n += 1;
            }
            bits &= bits - 1;
        }
        let mut bits = d.malformed_tunnels.0;
        while bits != 0 {
            if let Some(n) = self
                .tunnel_malformed
                .get_mut(bits.trailing_zeros() as usize)
            {
                *n += 1;
            }
            bits &= bits - 1;
        }
    }

    fn skipped(&mut self, skip: Skip) {
        match skip {
            Skip::NotIp => self.not_ip += 1,
            Skip::Truncated => self.truncated += 1,
            Skip::Malformed => self.malformed += 1,
            Skip::TooManyLayers => self.too_many_layers += 1,
        }
    }
}

/// Where a packet's headers go for volumetric detection.
pub trait HeaderStage {
    /// Takes the headers of one packet of `wire_len` bytes captured at
    /// `ts` (never earlier than the previous packet's).
    fn header(&mut self, ts: Timestamp, h: &Header, wire_len: u32, sink: &mut impl IncidentSink);

    /// End of input at capture time `ts`.
    fn finish(&mut self, ts: Timestamp, sink: &mut impl IncidentSink);
}

impl HeaderStage for Volumetric {
    #[inline]
    fn header(&mut self, ts: Timestamp, h: &Header, wire_len: u32, sink: &mut impl IncidentSink) {
        self.on_packet(ts, h, wire_len, sink);
    }

    fn finish(&mut self, ts: Timestamp, sink: &mut impl IncidentSink) {
        Volumetric::finish(self, ts, sink);
    }
}

/// Decoding, defragmentation and the enabled detectors.
pub struct Pipeline<V = Volumetric> {
    /// Which tunnels are opened.
    decap: DecapConfig,
    volumetric: Option<V>,
    leak: Option<Leak>,
    /// Puts fragmented datagrams back together for the leak detector.
    defrag: Defrag,
    /// Reassembled datagrams whose transport header was not valid.
    defrag_undecodable: u64,
    counters: Counters,
}

impl Pipeline<Volumetric> {
    /// Builds the detectors `settings` enables, the volumetric one in
    /// process (a replay). With `detect` false nothing runs but decoding
    /// (the floor for benchmarks).
    pub fn new(settings: &Settings, sigs: Arc<SignatureSet>, detect: bool) -> Self {
        let volumetric = (detect && settings.volumetric.enabled).then(|| {
            Volumetric::new(
                settings.volumetric.clone(),
                settings.protected.clone(),
                settings.name.clone(),
            )
        });
        let leak = (detect).then(|| new_leak(settings, sigs)).flatten();
        Pipeline::with_stages(settings.decap.clone(), volumetric, leak)
    }
}

/// The leak detector `settings` asks for, with `sigs`, or `None` when it
/// is turned off.
pub fn new_leak(settings: &Settings, sigs: Arc<SignatureSet>) -> Option<Leak> {
    settings.leak.enabled.then(|| {
        Leak::new(
            settings.leak.clone(),
            sigs,
            settings.protected.clone(),
            settings.name.clone(),
        )
    })
}

impl<V: HeaderStage> Pipeline<V> {
    /// A pipeline opening the tunnels `decap` allows, over the given
    /// stages (either may be off).
    pub fn with_stages(decap: DecapConfig, volumetric: Option<V>, leak: Option<Leak>) -> Self {
        Pipeline {
            decap,
            volumetric,
            leak,
            defrag: Defrag::new(DefragLimits::default()),
            defrag_undecodable: 0,
            counters: Counters::default(),
        }
    }

    /// Processes one packet.
    #[inline]
    pub fn on_packet(&mut self, p: &RawPacket<'_>, sink: &mut impl IncidentSink) {
        let c = &mut self.counters;
        c.packets += 1;
        c.bytes += p.data.len() as u64;
        // Capture time never moves backwards for the detectors.
        let ts = p.ts.max(c.last_ts);
        c.last_ts = ts;
        // Filled in place: moving a decoded packet out of a `Result` costs
        // a copy of it per packet.
        let mut decoded = Decoded::default();
        if let Err(skip) = decode_into(p.link, p.data, &self.decap, &mut decoded) {
            c.skipped(skip);
            return;
        }
        let d = &decoded;
        c.tunnels(d);
        if let Some(v) = &mut self.volumetric {
            // Outer bytes are not traffic to the inner endpoints.
            let wire_len = p.wire_len.saturating_sub(d.outer_len);
            v.header(ts, &d.header(), wire_len, sink);
        }
        let Some(l) = &mut self.leak else {
            return;
        };
        if d.fragment == Fragment::None {
            l.on_packet(ts, d, sink);
            return;
        }
        // A fragment: the leak detector sees its datagram once whole
        // (TCP and UDP, and the tunnels that may carry them: a tunnel
        // packet fragmented on the way is opened once whole).
        l.advance(ts, sink);
        if !matches!(
            d.proto,
            proto::TCP | proto::UDP | proto::GRE | proto::IPIP | proto::IPV6_IN_IP
        ) {
            return;
        }
        let key = DatagramKey {
            src: d.src,
            dst: d.dst,
            proto: d.proto,
            id: d.frag.id,
        };
        let whole = self
            .defrag
            .push(ts.micros(), key, d.frag.offset, d.frag.more, d.frag.body);
        if let Some(whole) = whole {
            match crate::decode::reassembled(d.src, d.dst, d.proto, d.ttl, &whole, &self.decap) {
                Ok(full) => {
                    // A tunnel opened only once whole counts now.
                    self.counters.tunnels(&full);
                    if full.fragment == Fragment::None {
                        l.on_packet(ts, &full, sink);
                    }
                }
                Err(_) => self.defrag_undecodable += 1,
            }
        }
    }

    /// Flushes every detector at the end of input.
    pub fn finish(&mut self, sink: &mut impl IncidentSink) {
        let ts = self.counters.last_ts;
        if let Some(v) = &mut self.volumetric {
            v.finish(ts, sink);
        }
        if let Some(l) = &mut self.leak {
            l.finish(ts, sink);
        }
    }

    /// Closes the running leak detector's flows (emitting their
    /// incidents), puts `next` in its place, and returns the counters of
    /// the one retired (a signature reload). Defragmentation state and
    /// counters belong to the pipeline and carry on.
    pub fn replace_leak(
        &mut self,
        next: Option<Leak>,
        sink: &mut impl IncidentSink,
    ) -> Option<LeakStats> {
        let ts = self.counters.last_ts;
        let old = std::mem::replace(&mut self.leak, next);
        old.map(|mut l| {
            l.finish(ts, sink);
            l.stats()
        })
    }

    /// Packet counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The volumetric stage, if it runs.
    pub fn volumetric_mut(&mut self) -> Option<&mut V> {
        self.volumetric.as_mut()
    }

    /// Leak detector counters, with the pipeline's defragmentation
    /// counters, if it runs.
    pub fn leak_stats(&self) -> Option<LeakStats> {
        self.leak.as_ref().map(|l| {
            let mut s = l.stats();
            s.defrag = self.defrag.stats().clone();
            s.defrag_undecodable = self.defrag_undecodable;
            s
        })
    }
}

impl Pipeline<Volumetric> {
    /// Volumetric detector counters, if it runs.
    pub fn volumetric_stats(&self) -> Option<VolumetricStats> {
        self.volumetric.as_ref().map(Volumetric::stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::decode::LinkType;
    use shaobing_wire::Incident;

    fn ipv4_fragment(id: u16, offset: u16, more: bool, body: &[u8]) -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 5, 198, 51, 100, 1,
        ];
        ip[2..4].copy_from_slice(&(20 + body.len() as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = (offset / 8) | if more { 0x2000 } else { 0 };
        ip[6..8].copy_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(body);
        ip
    }

    fn pipeline() -> Pipeline {
        let settings = Config::defaults().validate("<test>").unwrap();
        let sigs = Arc::new(SignatureSet::default_pack().unwrap());
        Pipeline::new(&settings, sigs, true)
    }

    #[test]
    fn a_marking_split_across_ip_fragments_is_found_in_any_order() {
        let payload = "正文 绝密★ 正文".as_bytes();
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&5353u16.to_be_bytes());
        datagram.extend_from_slice(&514u16.to_be_bytes());
        datagram.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        datagram.extend_from_slice(&[0, 0]);
        datagram.extend_from_slice(payload);
        // 16 bytes: the UDP header and "正文 " plus two bytes of 绝.
        let (a, b) = datagram.split_at(16);
        let frags = [
            ipv4_fragment(77, 0, true, a),
            ipv4_fragment(77, 16, false, b),
        ];
        for order in [[0, 1], [1, 0]] {
            let mut p = pipeline();
            let mut out: Vec<Incident> = Vec::new();
            let ts = Timestamp::from_parts(1_767_225_600, 0);
            for i in order {
                let raw = RawPacket {
                    ts,
                    wire_len: frags[i].len() as u32,
                    data: &frags[i],
                    link: LinkType::RawIp,
                };
                p.on_packet(&raw, &mut out);
            }
            p.finish(&mut out);
            let leaks: Vec<&Incident> = out
                .iter()
                .filter(|i| i.signature == "classification-marking")
                .collect();
            assert_eq!(leaks.len(), 1, "order {order:?}: {out:?}");
            assert_eq!(leaks[0].app_proto.as_deref(), Some("udp"));
            let st = p.leak_stats().unwrap();
            assert_eq!((st.defrag.fragments, st.defrag.reassembled), (2, 1));
            assert_eq!(p.counters().packets, 2);
        }
    }

    #[test]
    fn undecodable_packets_are_counted_by_reason() {
        let mut p = pipeline();
        let mut out: Vec<Incident> = Vec::new();
        let ts = Timestamp::from_parts(1_767_225_600, 0);
        let arp = [0u8; 12]
            .iter()
            .chain(&[0x08, 0x06])
            .chain(&[0u8; 28])
            .copied()
            .collect::<Vec<u8>>();
        let short = [0x45u8, 0, 0];
        for (data, link) in [
            (&arp[..], LinkType::Ethernet),
            (&short[..], LinkType::RawIp),
        ] {
            let raw = RawPacket {
                ts,
                wire_len: data.len() as u32,
                data,
                link,
            };
            p.on_packet(&raw, &mut out);
        }
        let c = p.counters();
        assert_eq!((c.packets, c.not_ip, c.truncated), (2, 1, 1));
    }
}
