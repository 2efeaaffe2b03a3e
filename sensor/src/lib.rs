//! The Shaobing sensor as a library: capture, decoding, detection and
//! forwarding. The `shaobing-sensor` binary is a thin command line over it.
//!
//! Data flows one way through small parts with one job each; a later
//! stage never calls back into an earlier one:
//!
//! * [`capture`]: reads packets from capture files or live interfaces;
//!   both hand out the same [`capture::RawPacket`].
//! * [`decode`]: turns link-layer bytes into a [`decode::Decoded`] summary
//!   (addresses, ports, flags, payload) without panicking on any input;
//!   [`decode::Header`] is the same without the payload.
//! * [`pipeline`]: the one packet path, for replay and every live worker:
//!   decode, then the volumetric stage (headers only), then [`defrag`]
//!   and the leak detector; counts every packet and every skip by reason.
//! * [`detect`]: the volumetric and leak detectors. They keep their own
//!   state, follow packet timestamps only, and push incidents into an
//!   [`detect::IncidentSink`]; [`incident`] is their one constructor.
//! * [`reassembly`] and [`normalize`]: TCP streams put back in order, then
//!   HTTP, SMTP/MIME and compressed or encoded content decoded, for the
//!   leak detector.
//! * [`live`]: live mode: capture workers, the volumetric thread,
//!   signals, shared counters, capture-loss incidents and heartbeats.
//! * [`forward`]: delivers incidents to the collector through the spool.
#![deny(unsafe_code)]

pub mod capture;
pub mod config;
pub mod content;
pub mod decode;
pub mod defrag;
pub mod detect;
pub mod forward;
pub mod incident;
pub mod live;
pub mod netset;
pub mod normalize;
pub mod pipeline;
pub mod reassembly;
pub mod sigtest;
