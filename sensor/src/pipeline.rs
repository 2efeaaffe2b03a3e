//! Wires decoding and the detectors together and counts what happened.

use std::sync::Arc;

use shaobing_signatures::SignatureSet;
use shaobing_wire::Timestamp;

use crate::capture::RawPacket;
use crate::config::Settings;
use crate::decode::{decode, Skip};
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
    /// Capture time of the last packet.
    pub last_ts: Timestamp,
}

/// Decoding plus the enabled detectors.
pub struct Pipeline {
    volumetric: Option<Volumetric>,
    leak: Option<Leak>,
    counters: Counters,
}

impl Pipeline {
    /// Builds the detectors `settings` enables. With `detect` false nothing
    /// runs but decoding (the floor for benchmarks).
    pub fn new(settings: &Settings, sigs: Arc<SignatureSet>, detect: bool) -> Self {
        let volumetric = (detect && settings.volumetric.enabled).then(|| {
            Volumetric::new(
                settings.volumetric.clone(),
                settings.protected.clone(),
                settings.name.clone(),
            )
        });
        let leak = (detect && settings.leak.enabled).then(|| {
            Leak::new(
                settings.leak.clone(),
                sigs,
                settings.protected.clone(),
                settings.name.clone(),
            )
        });
        Pipeline {
            volumetric,
            leak,
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
        let d = match decode(p.link, p.data) {
            Ok(d) => d,
            Err(skip) => {
                match skip {
                    Skip::NotIp => c.not_ip += 1,
                    Skip::Truncated => c.truncated += 1,
                    Skip::Malformed => c.malformed += 1,
                    Skip::TooManyLayers => c.too_many_layers += 1,
                }
                return;
            }
        };
        if let Some(v) = &mut self.volumetric {
            v.on_packet(ts, &d.header(), p.wire_len, sink);
        }
        if let Some(l) = &mut self.leak {
            l.on_packet(ts, &d, sink);
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

    /// Packet counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Volumetric detector counters, if it runs.
    pub fn volumetric_stats(&self) -> Option<VolumetricStats> {
        self.volumetric.as_ref().map(Volumetric::stats)
    }

    /// Leak detector counters, if it runs.
    pub fn leak_stats(&self) -> Option<LeakStats> {
        self.leak.as_ref().map(Leak::stats)
    }
}
