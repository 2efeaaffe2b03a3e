//! Background traffic: a few internal hosts browsing and resolving names at
//! a low rate, so detectors see realistic noise around an attack or leak.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::app::{dns_query, dns_response_a, http_request, http_response};
use crate::capture::TimedFrame;
use crate::packet::Packet;
use crate::rng::Rng;
use crate::session::{Side, TcpSession};

/// Names the background hosts look up and fetch.
const SITES: &[&str] = &[
    "www.example.com",
    "news.example.net",
    "cdn.example.org",
    "updates.example.com",
    "mail.example.net",
    "intranet-mirror.example.org",
];

/// Paths the background hosts fetch.
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/news/today",
    "/static/app.js",
    "/api/v1/status",
    "/favicon.ico",
];

/// Configuration of the background generator. The defaults (5 hosts, one
/// HTTP session every ~2 s and one DNS lookup every ~1 s per host) give
/// about 35 packets/s in total, far below any flood threshold.
#[derive(Clone, Debug)]
pub struct Background {
    /// Seed for all choices and jitter.
    pub seed: u64,
    /// Internal client hosts (10.0.0.0/8).
    pub hosts: Vec<Ipv4Addr>,
    /// Outside web servers (documentation ranges).
    pub web_servers: Vec<Ipv4Addr>,
    /// Outside DNS resolver.
    pub resolver: Ipv4Addr,
    /// Mean time between HTTP sessions of one host, µs (jitter ±50 %).
    pub http_every_micros: i64,
    /// Mean time between DNS lookups of one host, µs (jitter ±50 %).
    pub dns_every_micros: i64,
}

impl Background {
    /// The default configuration with this seed.
    pub fn new(seed: u64) -> Self {
        Background {
            seed,
            hosts: (11..=15).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect(),
            web_servers: vec![
                Ipv4Addr::new(203, 0, 113, 10),
                Ipv4Addr::new(203, 0, 113, 20),
                Ipv4Addr::new(198, 51, 100, 30),
            ],
            resolver: Ipv4Addr::new(198, 51, 100, 53),
            http_every_micros: 2_000_000,
            dns_every_micros: 1_000_000,
        }
    }

    /// Frames in `[start_micros, end_micros)`. Every session that starts is
    /// complete (handshake to teardown) before `end_micros`.
    pub fn generate(&self, start_micros: i64, end_micros: i64) -> Vec<TimedFrame> {
        let mut root = Rng::new(self.seed);
        let mut out = Vec::new();
        for (h, &host) in self.hosts.iter().enumerate() {
            let mut rng = root.fork(h as u64);
            let mut sport: u16 = rng.range_u16(32_768, 40_000);
            // HTTP sessions.
            let mut t = start_micros + rng.range(0, self.http_every_micros as u64) as i64;
            while t < end_micros {
                sport = sport.wrapping_add(1).max(32_768);
                let server = *rng.pick(&self.web_servers);
                let site = *rng.pick(SITES);
                let path = *rng.pick(PATHS);
                let body_len = rng.range(200, 1800) as usize;
                let session =
                    self.http_session(&mut rng, host, sport, server, site, path, body_len, t);
                if session.last().is_some_and(|f| f.ts_micros < end_micros) {
                    out.extend(session);
                }
                t += jitter(&mut rng, self.http_every_micros);
            }
            // DNS lookups.
            let mut t = start_micros + rng.range(0, self.dns_every_micros as u64) as i64;
            while t < end_micros {
                let id = rng.next_u32() as u16;
                let name = *rng.pick(SITES);
                let qport = rng.range_u16(49_152, 65_535);
                let answer = Ipv4Addr::new(203, 0, 113, rng.range_u8(1, 254));
                let rtt = rng.range(2_000, 30_000) as i64;
                if t + rtt < end_micros {
                    out.push(TimedFrame {
                        ts_micros: t,
                        data: Packet::udp(host, self.resolver, qport, 53, &dns_query(id, name, 1))
                            .build(),
                    });
                    out.push(TimedFrame {
                        ts_micros: t + rtt,
                        data: Packet::udp(
                            self.resolver,
                            host,
                            53,
                            qport,
                            &dns_response_a(id, name, answer),
                        )
                        .ttl(57)
                        .build(),
                    });
                }
                t += jitter(&mut rng, self.dns_every_micros);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn http_session(
        &self,
        rng: &mut Rng,
        host: Ipv4Addr,
        sport: u16,
        server: Ipv4Addr,
        site: &str,
        path: &str,
        body_len: usize,
        t: i64,
    ) -> Vec<TimedFrame> {
        let client = SocketAddr::new(IpAddr::V4(host), sport);
        let srv = SocketAddr::new(IpAddr::V4(server), 80);
        let delay = rng.range(5_000, 40_000) as i64;
        let mut s = TcpSession::new(client, srv, t)
            .isns(rng.next_u32(), rng.next_u32())
            .timing(30, delay)
            .ttls(64, 52);
        s.handshake();
        let req = http_request(
            "GET",
            path,
            site,
            &[
                ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
                ("Accept", "*/*"),
            ],
            b"",
        );
        s.send(Side::Client, &req);
        let body = filler_html(rng, body_len);
        s.send(
            Side::Server,
            &http_response(200, "OK", "text/html; charset=utf-8", &body),
        );
        s.close(Side::Client);
        s.into_frames()
    }
}

/// `mean` ± 50 %, at least 1 µs.
fn jitter(rng: &mut Rng, mean: i64) -> i64 {
    let half = (mean / 2).max(1) as u64;
    (rng.range(half, half * 3) as i64).max(1)
}

/// An HTML-looking body of exactly `len` bytes (ASCII).
fn filler_html(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "lorem", "ipsum", "dolor", "sit", "amet", "network", "status", "weather", "update",
        "report",
    ];
    let mut s = String::from("<html><body><p>");
    while s.len() < len {
        let word: &&str = rng.pick(WORDS);
        s.push_str(word);
        s.push(' ');
    }
    let mut b = s.into_bytes();
    b.truncate(len.saturating_sub(18));
    b.extend_from_slice(b"</p></body></html>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_rate_is_low_and_stays_in_the_window() {
        let frames = Background::new(1).generate(0, 10_000_000);
        assert!(!frames.is_empty());
        assert!(frames
            .iter()
            .all(|f| (0..10_000_000).contains(&f.ts_micros)));
        let mut per_sec = [0u32; 10];
        for f in &frames {
            per_sec[(f.ts_micros / 1_000_000) as usize] += 1;
        }
        assert!(per_sec.iter().all(|&n| n < 200), "{per_sec:?}");
    }
}
