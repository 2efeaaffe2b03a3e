//! Writes a carpet-bombing capture for benchmarks (never checked in):
//! `bench_carpet OUT.pcap SECONDS PPS_PER_PREFIX`.
//!
//! Every /24 of 10.0.0.0/8 (65,536 prefixes) receives `PPS_PER_PREFIX`
//! 60-byte SYNs per second (64 bytes on the wire), spread over hosts .1 to
//! .4 of the prefix, from spoofed sources in 11.0.0.0/8, for `SECONDS`
//! seconds after one second of quiet (a packet to 10.255.255.254 every
//! 10 ms, so the onset is at t = 1 s). Prefixes are visited in a scrambled
//! order within each round. Header checksums are the template's.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use shaobing_pcapgen::packet::{MacAddr, Packet, TcpFlags};
use shaobing_pcapgen::scenario::at;
use shaobing_pcapgen::PcapWriter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(secs), Some(pps)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bench_carpet OUT.pcap SECONDS PPS_PER_PREFIX");
        return ExitCode::FAILURE;
    };
    if pps == 0 || secs == 0 {
        eprintln!("SECONDS and PPS_PER_PREFIX must be at least 1");
        return ExitCode::FAILURE;
    }
    match write(out, secs, pps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_carpet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &str, secs: u64, pps: u64) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let dst = std::net::Ipv4Addr::new(10, 0, 0, 1);
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
    template.resize(60, 0);
    let frame = |src: u32, dst: u32, sport: u16| {
        let mut f = template.clone();
        if let Some(b) = f.get_mut(26..30) {
            b.copy_from_slice(&src.to_be_bytes());
        }
        if let Some(b) = f.get_mut(30..34) {
            b.copy_from_slice(&dst.to_be_bytes());
        }
        if let Some(b) = f.get_mut(34..36) {
            b.copy_from_slice(&sport.to_be_bytes());
        }
        f
    };
    // One quiet second.
    for i in 0..100i64 {
        w.write_frame(at(i * 10_000), &frame(0x0b00_0001, 0x0aff_fffe, 1024))?;
    }
    let prefixes: u64 = 65_536;
    let total = secs * pps * prefixes;
    let start = 1_000_000i64;
    for i in 0..total {
        let round = i / prefixes;
        let p = ((i % prefixes).wrapping_mul(0x9E37) & 0xffff) as u32;
        let host = 1 + (round % 4) as u32;
        let dst = 0x0a00_0000 | (p << 8) | host;
        let src = 0x0b00_0000 | ((i.wrapping_mul(0x9E37_79B1)) & 0x00ff_ffff) as u32;
        let t = start + (i as i128 * 1_000_000 / (pps * prefixes) as i128) as i64;
        w.write_frame(at(t), &frame(src, dst, (i as u16) | 1024))?;
    }
    w.finish()?.flush()
}
