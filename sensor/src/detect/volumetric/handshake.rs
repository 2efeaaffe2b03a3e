//! Completed TCP handshakes, so that a busy server's flash crowd is not a
//! `syn_flood`.
//!
//! A SYN flood leaves connections half open: the server answers each SYN
//! with a SYN-ACK that nobody acknowledges (the sources are spoofed). A
//! flash crowd completes them: the client's ACK acknowledges the server's
//! initial sequence number plus one, a number a spoofing sender never
//! sees. So every SYN-ACK from a protected host leaves the number that
//! completes it here, and a client ACK carrying exactly that number counts
//! as a completed handshake for the server. The detector subtracts the
//! completions of the last second from the SYN rate (`syn_flood` is about
//! half-open connections) before comparing it with the threshold.
//!
//! The table is direct-mapped, [`SLOTS`] entries of 16 bytes allocated
//! once: a newer SYN-ACK landing in the same slot replaces the older one,
//! whose ACK then completes nothing (the handshake counts as half open, as
//! every handshake did before). An entry serves for [`MAX_AGE_MICROS`] of
//! capture time. The slot hash has a fixed seed, so a replay counts the
//! same; an attacker cannot forge completions without the server's
//! sequence numbers.

use crate::decode::{tcp_flags, Header};
use crate::detect::fasthash::{ip_key, mix64};

/// Entries of the table.
pub const SLOTS: usize = 1 << 16;
/// Capture time within which the ACK must follow its SYN-ACK.
pub const MAX_AGE_MICROS: i64 = 30_000_000;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// High bits of the connection's hash (0: empty).
    tag: u32,
    /// The acknowledgement number that completes the handshake.
    ack: u32,
    /// Capture time of the SYN-ACK.
    ts: i64,
}

/// Pending handshakes of protected servers.
#[derive(Debug)]
pub struct Handshakes {
    slots: Vec<Slot>,
}

impl Default for Handshakes {
    fn default() -> Self {
        Handshakes::new()
    }
}

/// The hash of a connection seen from its server: (server, server port,
/// client, client port).
#[inline]
fn conn_hash(server: u128, sport: u16, client: u128, cport: u16) -> u64 {
    let ports = (u64::from(sport) << 16) | u64::from(cport);
    mix64(
        (server as u64)
            ^ mix64((server >> 64) as u64 ^ 0x6861_6e64_7368_616b)
            ^ mix64((client as u64) ^ mix64((client >> 64) as u64 ^ ports)),
    )
}

impl Handshakes {
    /// An empty table (1 MiB).
    pub fn new() -> Self {
        Handshakes {
            slots: vec![Slot::default(); SLOTS],
        }
    }

    /// Whether `d` is a SYN-ACK (SYN and ACK, no RST/FIN).
    #[inline]
    pub fn is_syn_ack(d: &Header) -> bool {
        use tcp_flags::{ACK, FIN, RST, SYN};
        d.tcp_flags & (SYN | ACK | RST | FIN) == SYN | ACK
    }

    /// Whether `d` can complete a handshake: ACK without SYN, RST or FIN.
    #[inline]
    pub fn is_ack(d: &Header) -> bool {
        use tcp_flags::{ACK, FIN, RST, SYN};
        d.tcp_flags & (SYN | ACK | RST | FIN) == ACK
    }

    /// A SYN-ACK from server `d.src`: remembers the number that completes it.
    #[inline]
    pub fn syn_ack(&mut self, d: &Header, ts: i64) {
        let h = conn_hash(ip_key(d.src), d.src_port, ip_key(d.dst), d.dst_port);
        if let Some(s) = self.slots.get_mut(h as usize & (SLOTS - 1)) {
            *s = Slot {
                tag: ((h >> 32) as u32) | 1,
                ack: d.tcp_seq.wrapping_add(1),
                ts,
            };
        }
    }

    /// A client's ACK to server `d.dst`: whether it completes a remembered
    /// handshake (each completes once).
    #[inline]
    pub fn completes(&mut self, d: &Header, ts: i64) -> bool {
        let h = conn_hash(ip_key(d.dst), d.dst_port, ip_key(d.src), d.src_port);
        let Some(s) = self.slots.get_mut(h as usize & (SLOTS - 1)) else {
            return false;
        };
        let done = s.tag == (((h >> 32) as u32) | 1)
            && s.ack == d.tcp_ack
            && ts.saturating_sub(s.ts) <= MAX_AGE_MICROS;
        if done {
            *s = Slot::default();
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{proto, Fragment};
    use std::net::IpAddr;

    fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Header {
        Header {
            src: src.parse::<IpAddr>().unwrap(),
            dst: dst.parse::<IpAddr>().unwrap(),
            proto: proto::TCP,
            ttl: 64,
            src_port: sport,
            dst_port: dport,
            tcp_flags: flags,
            tcp_seq: seq,
            tcp_ack: ack,
            has_payload: false,
            fragment: Fragment::None,
            frag_id: 0,
        }
    }

    #[test]
    fn only_the_ack_of_the_servers_sequence_number_completes_once() {
        let mut t = Handshakes::new();
        let synack = tcp("10.0.0.1", "198.51.100.7", 443, 50_000, 0x12, 7_000, 1_001);
        assert!(Handshakes::is_syn_ack(&synack));
        t.syn_ack(&synack, 0);
        let guess = tcp("198.51.100.7", "10.0.0.1", 50_000, 443, 0x10, 1_001, 1_234);
        assert!(Handshakes::is_ack(&guess));
        assert!(
            !t.completes(&guess, 10),
            "a spoofer's guess completes nothing"
        );
        let other = tcp("198.51.100.8", "10.0.0.1", 50_000, 443, 0x10, 1_001, 7_001);
        assert!(!t.completes(&other, 10), "another client");
        let ack = tcp("198.51.100.7", "10.0.0.1", 50_000, 443, 0x10, 1_001, 7_001);
        assert!(t.completes(&ack, 20));
        assert!(!t.completes(&ack, 30), "a handshake completes once");
        t.syn_ack(&synack, 0);
        assert!(!t.completes(&ack, MAX_AGE_MICROS + 1), "too late");
    }
}
