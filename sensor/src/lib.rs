//! The Shaobing sensor as a library: capture, decoding, detection and
//! forwarding. The `shaobing-sensor` binary is a thin command line over it.
//!
//! Data flows one way through small parts with one job each:
//!
//! * [`capture`]: reads packets (capture files now; live interfaces later)
//!   and hands out [`capture::RawPacket`]s in capture-time order.
//! * [`decode`]: turns link-layer bytes into a [`decode::Decoded`] summary
//!   (addresses, ports, flags, payload) without panicking on any input.
//! * [`detect`]: the volumetric and leak detectors. They keep their own
//!   state, follow packet timestamps only, and push incidents into an
//!   [`detect::IncidentSink`].
//! * [`reassembly`] and [`normalize`]: TCP streams put back in order, then
//!   HTTP, SMTP/MIME and compressed or encoded content decoded, for the
//!   leak detector.
//! * [`pipeline`]: wires the above together for a replay and counts what
//!   happened.
//! * [`forward`]: delivers incidents to the collector.
#![deny(unsafe_code)]

pub mod capture;
pub mod config;
pub mod decode;
pub mod defrag;
pub mod detect;
pub mod forward;
pub mod live;
pub mod netset;
pub mod normalize;
pub mod pipeline;
pub mod reassembly;
pub mod sigtest;
