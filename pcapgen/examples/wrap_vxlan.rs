//! Wraps every frame of a capture in VXLAN for benchmarks (never checked
//! in): `wrap_vxlan IN.pcap OUT.pcap`.
//!
//! Each Ethernet frame becomes the payload of an Ethernet/IPv4/UDP/VXLAN
//! frame (VNI 42, UDP 4789) from the mirror 10.255.0.1 to the sensor's
//! tunnel endpoint 10.255.0.2, 50 bytes longer on the wire and in the
//! capture; times are kept. The outer endpoints are inside the default
//! protected space, so a sensor that did not open the tunnel would report
//! them. Used by `scripts/bench-decap.sh` to measure what decapsulation
//! costs on the flood path.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use shaobing_pcapgen::pcap::read_pcap;
use shaobing_pcapgen::PcapWriter;

/// Outer headers: Ethernet (14), IPv4 (20), UDP (8), VXLAN (8).
const OVERHEAD: usize = 50;

fn wrap(inner: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let ip_len = (20 + 8 + 8 + inner.len()) as u16;
    let mut ip = [
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 255, 0, 1, 10, 255, 0, 2,
    ];
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    out.extend_from_slice(&ip);
    let udp_len = (8 + 8 + inner.len()) as u16;
    // Source port from the inner frame's length, as VTEPs hash flows.
    let sport = 49152 + (inner.len() as u16 % 16384);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&4789u16.to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]);
    out.extend_from_slice(inner);
}

fn run(input: &str, output: &str) -> Result<u64, String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let records = read_pcap(&bytes)?;
    let file = std::fs::File::create(output).map_err(|e| format!("{output}: {e}"))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| format!("{output}: {e}"))?;
    let mut frame = Vec::with_capacity(2048);
    let mut n = 0u64;
    for r in records {
        wrap(r.data, &mut frame);
        let orig = r.orig_len.saturating_add(OVERHEAD as u32);
        w.write_snapped(r.ts_micros, &frame, orig)
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
