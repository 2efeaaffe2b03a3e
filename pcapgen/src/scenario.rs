//! Scenarios: named, deterministic recipes that produce a capture and its
//! expected incidents, and the files they are stored as.

use std::fs;
use std::io;
use std::path::Path;

use shaobing_wire::Timestamp;

use crate::capture::Capture;
use crate::expected::Expected;

/// Capture time 0 of every scenario: 2026-01-01T00:00:00Z, in µs.
pub const BASE_MICROS: i64 = 1_767_225_600_000_000;

/// `BASE_MICROS + offset_micros`.
pub fn at(offset_micros: i64) -> i64 {
    BASE_MICROS + offset_micros
}

/// A capture time as the [`Timestamp`] used in expected files.
pub fn ts(micros: i64) -> Timestamp {
    Timestamp(micros)
}

/// What a scenario's recipe returns.
#[derive(Debug)]
pub struct Generated {
    /// The frames.
    pub capture: Capture,
    /// The incidents a correct sensor reports for them.
    pub expected: Expected,
}

/// A named recipe. Add a scenario by writing a `fn() -> Generated` in
/// `scenarios/` and listing it in [`all`].
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// File stem, e.g. `syn-flood` (gives `syn-flood.pcap` and
    /// `syn-flood.expected.json`).
    pub name: &'static str,
    /// One line for `--list` and the README.
    pub summary: &'static str,
    /// The recipe.
    pub build: fn() -> Generated,
}

/// One output file's name and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// File name (no directory).
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

impl Scenario {
    /// The capture file name.
    pub fn pcap_name(&self) -> String {
        format!("{}.pcap", self.name)
    }

    /// The expected-incidents file name.
    pub fn expected_name(&self) -> String {
        format!("{}.expected.json", self.name)
    }

    /// Runs the recipe and returns the pcap and expected file contents.
    pub fn files(&self) -> io::Result<[OutputFile; 2]> {
        let mut g = (self.build)();
        let pcap = g.capture.to_pcap_bytes()?;
        Ok([
            OutputFile {
                name: self.pcap_name(),
                bytes: pcap,
            },
            OutputFile {
                name: self.expected_name(),
                bytes: g.expected.to_json_pretty().into_bytes(),
            },
        ])
    }
}

/// Every scenario, in `--list` order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "syn-flood",
            summary: "15 s of background; a 25k pps spoofed SYN flood on 10.0.0.10:80 from t=3 s to t=5 s",
            build: crate::scenarios::syn_flood::build,
        },
        Scenario {
            name: "http-leak",
            summary: "HTTP POST of a 绝密★-marked document to the outside, with a benign GET and an inbound marked response as negatives",
            build: crate::scenarios::http_leak::build,
        },
        Scenario {
            name: "leak-encodings",
            summary: "markings in GBK, UTF-8, UTF-16, URL-encoded and base64-mail bodies; ids and cards in a gzip chunked upload; wrong check digits, Luhn failures, 秘密 in prose and inbound data as negatives",
            build: crate::leaks::encodings,
        },
        Scenario {
            name: "leak-streams",
            summary: "a marking split across segments, reordered, retransmitted, and overlapped by different bytes (first copy wins)",
            build: crate::leaks::streams,
        },
        Scenario {
            name: "leak-documents",
            summary: "leaks in documents (xlsx in a multipart upload, docx mailed with DATA and in BDAT chunks, zipped over raw TCP), in JSON and HTML escapes, behind HTTP evasions, a grouped id; TLS, random binary and an inbound docx as traps",
            build: crate::documents::documents,
        },
        Scenario {
            name: "leak-pdf",
            summary: "PDFs whose text is only in FlateDecode content streams and CID fonts with ToUnicode CMaps: uploaded over HTTP, mailed (object stream), sent over raw TCP; an inbound PDF download as a trap",
            build: crate::documents::pdfs,
        },
        Scenario {
            name: "tunnel-leaks",
            summary: "a 绝密★-marked HTTP POST inside each tunnel kind (VXLAN, Geneve, GRE, ERSPAN II and III, MPLS with IP and an Ethernet pseudowire, PPPoE, GTP-U, IPv4 and IPv6 in IPv4, VXLAN in GRE, VXLAN over IPv6, IPv4 in IPv6, VXLAN fragmented at a 576-byte MTU) between protected tunnel endpoints; VXLAN without the I flag and 20 nested tunnels as negatives",
            build: crate::scenarios::tunnels::leaks,
        },
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// The file name of the generated README.
pub const README_NAME: &str = "README.md";

/// The generated `README.md` of the captures directory: what each file is
/// and how expected files are checked.
pub fn readme() -> String {
    let mut table = String::new();
    for s in all() {
        table.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            s.pcap_name(),
            s.expected_name(),
            s.summary
        ));
    }
    format!(
        r#"# Shaobing test captures

Generated by `shaobing-pcapgen` (crate `pcapgen/`); **do not edit by hand**.
Regenerate with

    cargo run -p shaobing-pcapgen -- --out pcaps

and check that the files here are current with

    cargo run -p shaobing-pcapgen -- --out pcaps --check

Generation is deterministic (seeded SplitMix64, fixed base time
2026-01-01T00:00:00Z = 1767225600 s), so the same source gives
byte-identical files. Captures are classic little-endian microsecond pcap,
snaplen 65535, Ethernet. Internal (protected) hosts are in 10.0.0.0/8;
outside hosts are in the documentation ranges 198.51.100.0/24 and
203.0.113.0/24 (flood sources are random public addresses).

| capture | expected incidents | what it contains |
|---|---|---|
{table}
Run `shaobing-pcapgen --list` for the same list.

## Volumetric scenarios (`volumetric/`)

One flood per attack vector (`flood-<vector>`), simultaneous attacks on two
hosts, a multi-vector attack, an outbound flood, IPv6 floods, and ordinary
traffic that must give nothing (`ordinary-*`), from
`pcapgen/src/scenarios/floods.rs`. Each flood runs at 25,000 packets/s for
two seconds, so the captures are tens of megabytes in all even with frames
cut to a 96-byte snaplen (each record keeps the length on the wire, so bits
per second are right). To keep this folder small **only their expected
files are checked in**, under `volumetric/`; the sensor's tests
(`sensor/tests/volumetric_vectors.rs`) generate the captures
deterministically into a temporary folder with
`shaobing_pcapgen::scenarios::floods::write_dir`, replay them, and check
them against these files. `--out pcaps` rewrites the expected files and
`--check` compares them.

## Tunnel scenarios (`tunnel-leaks.pcap`, `tunnels/`)

From `pcapgen/src/scenarios/tunnels.rs`, with the encapsulations of
`pcapgen/src/tunnel.rs`: VXLAN, Geneve (with an option), GRE with key and
sequence number, ERSPAN types II and III, MPLS (two labels with IPv4 below,
and an Ethernet pseudowire with a control word), PPPoE sessions, GTP-U
G-PDUs with sequence numbers, IPv4 in IPv4 and 6in4, VXLAN inside GRE, and
VXLAN and IPv4 over IPv6, and VXLAN whose outer packets are fragmented.
Every tunnel endpoint is itself protected
(10.255.0.1 <-> 10.255.0.2, fd00:255::1 <-> fd00:255::2), so a
sensor that failed to open a tunnel would report the tunnel's endpoints:
the checker fails on such an incident as UNEXPECTED, and on the inner one
as MISSING.

* `tunnel-leaks.pcap` (checked in): one marked HTTP POST per tunnel kind,
  expected as a leak with the inner endpoints; a VXLAN packet without the
  I flag (malformed: an internal UDP datagram between the two endpoints)
  and a POST inside 20 nested IP-in-IP tunnels (past the sensor's default
  `[decap] max_depth` of 8) must give nothing.
* `tunnel-<kind>-syn_flood` (only the expected files, under `tunnels/`):
  every frame of `flood-syn_flood`, background included, wrapped in one
  tunnel kind or VXLAN inside GRE. Inner frames keep the 96-byte snaplen;
  records keep the outer headers in front of them, and every outer length
  field and each record's length on the wire count the whole frame. The
  sensor's tests (`sensor/tests/tunnels.rs`) generate the captures with
  `shaobing_pcapgen::scenarios::floods::write_dir(dir,
  &shaobing_pcapgen::scenarios::tunnels::all())`, replay them and check
  them against these files and the summary line's `decap:` counters.

## `NAME.expected.json`

```json
{{
  "capture": "syn-flood.pcap",
  "description": "one paragraph for humans",
  "allow_extra_events": ["attack_update"],
  "incidents": [
    {{"kind": "volumetric", "event": "attack_started", "signature": "volumetric/syn_flood",
     "vector": "syn_flood", "dst_ip": "10.0.0.10", "direction": "inbound",
     "ts_min": "2026-01-01T00:00:03.000000Z", "ts_max": "2026-01-01T00:00:04.000000Z"}}
  ]
}}
```

Fields an entry may name: `kind`, `event`, `signature`, `vector`, `src_ip`,
`dst_ip`, `src_port`, `dst_port`, `proto`, `direction`, `app_proto` (compared
for equality with the incident's field of the same name; addresses compare as
addresses), `min_match_count` (lower bound on `match_count`), and
`ts_min` / `ts_max` (inclusive bounds on `ts`).

## Check semantics

Implemented by `shaobing_pcapgen::check_expected(expected_json, actual_incidents)`:

1. Each expected entry must match **exactly one** actual incident, on every
   field it names. Fields it does not name are not checked. No match is
   reported as MISSING (with the nearest incidents and the fields that
   differ); more than one as AMBIGUOUS.
2. Two entries may not match the same incident (OVERLAPPING).
3. Any actual incident that no entry matched is UNEXPECTED and fails the
   check, unless its `event` is listed in `allow_extra_events` (e.g.
   periodic `attack_update` events, whose number depends on the sensor's
   update interval).
"#
    )
}

/// Every file for `scenarios` plus the README, as generated now.
pub fn generate_files(scenarios: &[Scenario]) -> io::Result<Vec<OutputFile>> {
    let mut out = Vec::new();
    for s in scenarios {
        out.extend(s.files()?);
    }
    out.push(OutputFile {
        name: README_NAME.to_string(),
        bytes: readme().into_bytes(),
    });
    Ok(out)
}

/// Generates `scenarios` (and the README) into `dir`, creating it if
/// needed. Returns the files written.
pub fn write_dir(dir: &Path, scenarios: &[Scenario]) -> io::Result<Vec<OutputFile>> {
    fs::create_dir_all(dir)?;
    let files = generate_files(scenarios)?;
    for f in &files {
        fs::write(dir.join(&f.name), &f.bytes)?;
    }
    Ok(files)
}

/// How a file in the directory differs from what generation gives now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The file does not exist.
    Missing(String),
    /// The file exists with other contents.
    Differs(String),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Missing(n) => write!(f, "{n}: missing"),
            Stale::Differs(n) => write!(f, "{n}: differs from what the generator produces"),
        }
    }
}

/// Regenerates `scenarios` (and the README) in memory and compares them
/// with the files in `dir`. An empty result means everything is current.
pub fn check_dir(dir: &Path, scenarios: &[Scenario]) -> io::Result<Vec<Stale>> {
    let mut stale = Vec::new();
    for f in generate_files(scenarios)? {
        match fs::read(dir.join(&f.name)) {
            Ok(on_disk) if on_disk == f.bytes => {}
            Ok(_) => stale.push(Stale::Differs(f.name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => stale.push(Stale::Missing(f.name)),
            Err(e) => return Err(e),
        }
    }
    Ok(stale)
}
