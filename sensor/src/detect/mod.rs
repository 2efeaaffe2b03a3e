//! Detectors. Each follows packet timestamps only (never the wall clock),
//! so replaying a capture gives the same incidents at any speed, and pushes
//! what it finds into an [`IncidentSink`], which keeps detectors free of I/O.

pub mod fasthash;
pub mod hll;
pub mod leak;
pub mod sketch;
pub mod volumetric;
pub mod window;

use std::net::IpAddr;

use shaobing_wire::{Direction, Incident};

use crate::netset::NetSet;

/// Where detectors push incidents.
pub trait IncidentSink {
    /// Takes one incident.
    fn emit(&mut self, incident: Incident);
}

impl IncidentSink for Vec<Incident> {
    fn emit(&mut self, incident: Incident) {
        self.push(incident);
    }
}

/// The direction of a packet from `src` to `dst` relative to `protected`.
#[inline]
pub fn direction(protected: &NetSet, src: IpAddr, dst: IpAddr) -> Direction {
    match (protected.contains(src), protected.contains(dst)) {
        (true, false) => Direction::Outbound,
        (false, true) => Direction::Inbound,
        (true, true) => Direction::Internal,
        (false, false) => Direction::External,
    }
}
