//! Wraps every frame of a capture in VXLAN for benchmarks (never checked
//! in): `wrap_vxlan IN.pcap OUT.pcap`.
//!
//! Each Ethernet frame becomes the payload of an Ethernet/IPv4/UDP/VXLAN
//! frame (pcapgen's [`Encapsulator`], UDP 4789) from the mirror 10.255.0.1
//! to the sensor's tunnel endpoint 10.255.0.2, 50 bytes longer on the wire
//! and in the capture; times are kept. The outer endpoints are inside the
//! default protected space, so a sensor that did not open the tunnel would
//! report them. Used to measure what decapsulation costs on the flood path
//! (`docs/BENCHMARKS.md`).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use shaobing_pcapgen::pcap::read_pcap;
use shaobing_pcapgen::tunnel::{Encapsulator, TunnelKind};
use shaobing_pcapgen::PcapWriter;

fn run(input: &str, output: &str) -> Result<u64, String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let records = read_pcap(&bytes)?;
    let file = std::fs::File::create(output).map_err(|e| format!("{output}: {e}"))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| format!("{output}: {e}"))?;
    let mut mirror = Encapsulator::new(TunnelKind::Vxlan);
    let mut n = 0u64;
    for r in records {
        let wire = usize::try_from(r.orig_len).unwrap_or(usize::MAX);
        let outer = mirror
            .wrap(r.data, wire, r.ts_micros)
            .map_err(|e| format!("record {}: {e}", n + 1))?;
        let orig = u32::try_from(outer.wire_len).unwrap_or(u32::MAX);
        w.write_snapped(r.ts_micros, &outer.data, orig)
            .map_err(|e| format!("{output}: {e}"))?;
        n += 1;
    }
    w.finish()
        .and_then(|mut f| f.flush())
        .map_err(|e| format!("{output}: {e}"))?;
    Ok(n)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: wrap_vxlan IN.pcap OUT.pcap");
        return ExitCode::FAILURE;
    };
    match run(input, output) {
        Ok(n) => {
            eprintln!("wrap_vxlan: {n} frames wrapped into {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wrap_vxlan: {e}");
            ExitCode::FAILURE
        }
    }
}
