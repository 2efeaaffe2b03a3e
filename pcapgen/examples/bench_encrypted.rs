//! Writes outbound encrypted and random traffic for the leak detector's
//! false-positive benchmark (never checked in):
//! `bench_encrypted OUT.pcap MEGABYTES` (OUT may be a FIFO: the capture
//! is streamed, its size does not bound memory).
//!
//! Sessions from internal clients (10.0.0.0/8) to outside servers, each
//! 50 KB to 2 MB outbound, in this mix:
//!
//! * 30 % TLS seen from the SYN: client hello, server hello and
//!   certificate-sized records, then application-data records of random
//!   bytes (1-16 KiB) both ways;
//! * 20 % TLS picked up mid-connection: no handshake, the first segment
//!   starts inside a record;
//! * 10 % SSH: identification lines, then random binary packets;
//! * 20 % random bytes over TCP from the SYN (an unknown protocol, e.g.
//!   a VPN or compressed archive), 10 % picked up mid-connection;
//! * 10 % UDP: QUIC long- then short-header packets to port 443, and
//!   random datagrams to high ports.
//!
//! None of it carries a leak: every incident a replay reports is a false
//! positive. Deterministic: the same arguments give the same file.

use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use shaobing_pcapgen::packet::Packet;
use shaobing_pcapgen::rng::Rng;
use shaobing_pcapgen::scenario::at;
use shaobing_pcapgen::session::{Side, TcpSession};
use shaobing_pcapgen::PcapWriter;

fn random(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(n);
    v
}

/// TLS records of `kind` holding `total` random bytes, 1-16 KiB each.
fn records(rng: &mut Rng, kind: u8, total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / 1000 + 16);
    let mut left = total;
    while left > 0 {
        let n = (rng.range(1024, 16_384) as usize).min(left);
        out.extend_from_slice(&[kind, 3, 3, (n >> 8) as u8, n as u8]);
        out.extend(random(rng, n));
        left -= n;
    }
    out
}

fn hello(rng: &mut Rng, kind: u8) -> Vec<u8> {
    let n = rng.range(200, 600) as usize;
    let mut out = vec![22, 3, 1, (n >> 8) as u8, n as u8, kind];
    out.extend(random(rng, n - 1));
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(mb)) = (
        args.first(),
        args.get(1).and_then(|m| m.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bench_encrypted OUT.pcap MEGABYTES");
        return ExitCode::from(2);
    };
    match write(out, mb) {
        Ok((sessions, bytes)) => {
            eprintln!("bench_encrypted: {sessions} sessions, {bytes} bytes of frames");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_encrypted: {out}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &str, mb: u64) -> std::io::Result<(u64, u64)> {
    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut rng = Rng::new(0x5eed_e9c4);
    let target = mb * 1_000_000;
    let (mut bytes, mut sessions, mut now) = (0u64, 0u64, at(0));
    while bytes < target {
        sessions += 1;
        let client_ip = IpAddr::V4(Ipv4Addr::new(
            10,
            rng.range_u8(0, 255),
            rng.range_u8(0, 255),
            rng.range_u8(1, 254),
        ));
        let server_ip = IpAddr::V4(Ipv4Addr::new(
            rng.range_u8(11, 220),
            rng.range_u8(0, 255),
            rng.range_u8(0, 255),
            rng.range_u8(1, 254),
        ));
        let cport = rng.range_u16(1024, 65_000);
        let outbound = rng.range(50_000, 2_000_000) as usize;
        let kind = rng.range(0, 100);
        if kind >= 90 {
            // UDP: QUIC to 443 or random datagrams to a high port.
            let quic = kind < 95;
            let sport = if quic {
                443
            } else {
                rng.range_u16(1024, 65_000)
            };
            let mut sent = 0;
            let mut first = true;
            while sent < outbound {
                let n = rng.range(100, 1350) as usize;
                let mut d = random(&mut rng, n);
                if quic {
                    if let Some(b) = d.first_mut() {
                        *b = if first { 0xc3 } else { 0x40 | (*b & 0x3f) };
                    }
                    if first {
                        if let Some(v) = d.get_mut(1..5) {
                            v.copy_from_slice(&[0, 0, 0, 1]);
                        }
                    }
                }
                first = false;
                let frame = Packet::udp(client_ip, server_ip, cport, sport, &d).build();
                bytes += frame.len() as u64;
                w.write_frame(now, &frame)?;
                now += 50;
                sent += n;
            }
            now += 100;
            continue;
        }
        let (port, mid, tls, ssh) = match kind {
            0..=29 => (443, false, true, false),
            30..=49 => (443, true, true, false),
            50..=59 => (22, false, false, true),
            60..=79 => (rng.range_u16(1024, 65_000), false, false, false),
            _ => (rng.range_u16(1024, 65_000), true, false, false),
        };
        let client = SocketAddr::new(client_ip, cport);
        let server = SocketAddr::new(server_ip, port);
        let mut s = TcpSession::new(client, server, now)
            .isns(rng.next_u32(), rng.next_u32())
            .timing(10, 200);
        if !mid {
            s.handshake();
        }
        if tls {
            let mut up = records(&mut rng, 23, outbound);
            if mid {
                // Start inside the first record.
                let cut = rng.range(1, 1000) as usize;
                up.drain(..cut.min(up.len()));
            } else {
                let h = hello(&mut rng, 1);
                s.send(Side::Client, &h);
                let mut back = hello(&mut rng, 2);
                back.extend(records(&mut rng, 22, 3000));
                s.send(Side::Server, &back);
                let fin = records(&mut rng, 20, 1);
                s.send(Side::Client, &fin);
            }
            for piece in up.chunks(64 * 1024) {
                s.send(Side::Client, piece);
                let n = rng.range(100, 2000) as usize;
                let back = records(&mut rng, 23, n);
                s.send(Side::Server, &back);
            }
        } else if ssh {
            s.send(Side::Client, b"SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n");
            s.send(Side::Server, b"SSH-2.0-OpenSSH_9.2p1\r\n");
            let up = random(&mut rng, outbound);
            for piece in up.chunks(32 * 1024) {
                s.send(Side::Client, piece);
                let n = rng.range(36, 500) as usize;
                let back = random(&mut rng, n);
                s.send(Side::Server, &back);
            }
        } else {
            let up = random(&mut rng, outbound);
            for piece in up.chunks(64 * 1024) {
                s.send(Side::Client, piece);
                let n = rng.range(10, 400) as usize;
                let back = random(&mut rng, n);
                s.send(Side::Server, &back);
            }
        }
        s.close(Side::Client);
        let end = s.now();
        for f in s.frames() {
            bytes += f.data.len() as u64;
            w.write_frame(f.ts_micros, &f.data)?;
        }
        now = end + 100;
    }
    w.finish()?;
    Ok((sessions, bytes))
}
