//! Writes a large header-only SYN-flood capture for benchmarks (never
//! checked in): `bench_flood OUT.pcap PACKETS SOURCES [vxlan]`.
//!
//! Every frame is a 60-byte Ethernet/IPv4/TCP SYN (64 bytes on the wire
//! with the FCS) to 10.0.0.10:80, one per microsecond (1 M packets/s of
//! capture time), from `SOURCES` distinct addresses in 11.0.0.0/8 taken in
//! a scrambled order (packet `i` comes from source `i % SOURCES`). The file
//! is streamed, so its size does not bound memory. Header checksums are
//! the template's (the sensor does not verify checksums).
//!
//! With `vxlan`, every frame is the same SYN inside VXLAN (UDP 4789, VNI
//! 5001) from a mirror at 10.255.0.1 to its collector at 10.255.0.2: 110
//! bytes (114 on the wire), for the cost of decapsulation on the same
//! flood (the inner packet and its sources are identical).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use shaobing_pcapgen::packet::{MacAddr, Packet, TcpFlags};
use shaobing_pcapgen::scenario::at;
use shaobing_pcapgen::tunnel::{Encapsulator, TunnelKind};
use shaobing_pcapgen::PcapWriter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(packets), Some(sources)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bench_flood OUT.pcap PACKETS SOURCES [vxlan] (SOURCES <= 16777216)");
        return ExitCode::FAILURE;
    };
    let vxlan = match args.get(3).map(String::as_str) {
        None => false,
        Some("vxlan") => true,
        Some(other) => {
            eprintln!("bench_flood: unknown wrapping {other:?} (known: vxlan)");
            return ExitCode::FAILURE;
        }
    };
    if sources == 0 || sources > 1 << 24 {
        eprintln!("SOURCES must be 1 to 16777216");
        return ExitCode::FAILURE;
    }
    match write(out, packets, sources, vxlan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_flood: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &str, packets: u64, sources: u64, vxlan: bool) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let dst = std::net::Ipv4Addr::new(10, 0, 0, 10);
    let mut template = Packet::tcp(
        std::net::Ipv4Addr::new(11, 0, 0, 1),
        dst,
        40_000,
        80,
        TcpFlags::SYN,
        1,
        0,
        b"",
    )
    .ttl(244)
    .macs(
        MacAddr([0x02, 0, 0x5e, 0, 0, 1]),
        MacAddr::for_ip(dst.into()),
    )
    .build();
    template.resize(60, 0); // Ethernet minimum: 64 bytes with the FCS
    let mut mirror = Encapsulator::new(TunnelKind::Vxlan);
    for i in 0..packets {
        // Multiplying by an odd constant permutes 24-bit values: distinct
        // sources, scrambled order.
        let s = ((i % sources).wrapping_mul(0x9E37_79B1) & 0x00ff_ffff) as u32;
        let src = (0x0b00_0000 | s).to_be_bytes();
        let mut f = template.clone();
        if let Some(b) = f.get_mut(26..30) {
            b.copy_from_slice(&src);
        }
        if let Some(b) = f.get_mut(34..36) {
            b.copy_from_slice(&((i as u16) | 1024).to_be_bytes());
        }
        if vxlan {
            let outer = mirror
                .wrap_frame(&f)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            w.write_frame(at(i as i64), &outer)?;
        } else {
            w.write_frame(at(i as i64), &f)?;
        }
    }
    w.finish()?.flush()
}
