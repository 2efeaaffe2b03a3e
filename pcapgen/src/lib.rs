//! Deterministic generator of Shaobing's test captures.
//!
//! Each [scenario](scenario::Scenario) produces a classic pcap and an
//! expected-incidents file (`NAME.pcap`, `NAME.expected.json`); the same
//! source always gives byte-identical files, so they are checked in under
//! `pcaps/` and a test proves they are current.
//!
//! Building blocks, lowest first:
//!
//! * [`rng::Rng`]: seeded SplitMix64, no `rand` dependency.
//! * [`packet::Packet`]: Ethernet (+ optional 802.1Q) / IPv4 or IPv6 /
//!   TCP, UDP, ICMP(v6) or raw frames with correct checksums.
//! * [`session::TcpSession`]: handshake, data (split at an MSS or chosen
//!   offsets), responses and FIN teardown with consistent seq/ack.
//! * [`app`]: HTTP/1.1 and DNS payloads; [`payload`]: encodings (GBK,
//!   UTF-16), gzip, chunked, URL-encoded forms, MIME mail, valid and
//!   invalid personal numbers for the [`leaks`] scenarios; [`documents`]
//!   and [`pdf`]: ZIP, OOXML and PDF files.
//! * [`tunnel`]: wraps frames in VXLAN, Geneve, GRE, ERSPAN II/III, MPLS,
//!   PPPoE, GTP-U and IP in IP (nested too), keeping lengths on the wire.
//! * [`background::Background`]: low-rate internal browsing and DNS noise.
//! * [`capture::Capture`]: timed frames from many generators, sorted when
//!   written by [`pcap::PcapWriter`].
//! * [`expected`]: the expected-file format and [`check_expected`], which
//!   sensor and end-to-end tests use to compare reported incidents.
//! * [`scenario`]: the registry ([`scenario::all`]), file generation and
//!   the `--check` comparison ([`scenario::check_dir`]).
//!
//! Generating into a temporary directory from another crate's test:
//!
//! ```no_run
//! let dir = std::env::temp_dir().join("shaobing-captures");
//! let s = shaobing_pcapgen::scenario::find("syn-flood").unwrap();
//! shaobing_pcapgen::scenario::write_dir(&dir, &[s]).unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod background;
pub mod capture;
pub mod documents;
pub mod expected;
pub mod leaks;
pub mod packet;
pub mod payload;
pub mod pcap;
pub mod pdf;
pub mod rng;
pub mod scenario;
pub mod scenarios;
pub mod session;
pub mod tunnel;

pub use capture::{Capture, TimedFrame};
pub use expected::{check_expected, Expected, ExpectedIncident};
pub use packet::{MacAddr, Packet, TcpFlags, Transport};
pub use pcap::PcapWriter;
pub use scenario::{Generated, Scenario};
pub use session::{Side, TcpSession};
