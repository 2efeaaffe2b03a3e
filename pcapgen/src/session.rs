//! [`TcpSession`]: a whole TCP conversation with consistent sequence and
//! acknowledgement numbers.

use std::net::SocketAddr;

use crate::capture::TimedFrame;
use crate::packet::{Packet, TcpFlags};

/// Which end of a [`TcpSession`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end that sent the SYN.
    Client,
    /// The end that answered it.
    Server,
}

/// Timestamps of the segments one [`TcpSession::send`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Capture time of the first data segment.
    pub first_ts: i64,
    /// Capture time of the last data segment.
    pub last_ts: i64,
    /// Number of data segments.
    pub segments: usize,
}

/// Emits a TCP conversation as seen by a sensor on the path: three-way
/// handshake, data in either direction (each burst acknowledged by the
/// peer), and FIN teardown, with sequence/ack numbers that a reassembler
/// will accept.
///
/// Time starts at `start_micros` and advances by `gap` between back-to-back
/// segments of one burst and by `delay` between a segment and the peer's
/// answer. Payloads are cut into segments of at most `mss` bytes, and
/// additionally at any offsets given to [`TcpSession::send_split`] (to put
/// a pattern across a segment boundary).
///
/// ```
/// use shaobing_pcapgen::session::{Side, TcpSession};
///
/// let mut s = TcpSession::new("10.1.2.3:40001".parse().unwrap(), "203.0.113.80:80".parse().unwrap(), 0);
/// s.handshake();
/// s.send(Side::Client, b"GET / HTTP/1.1\r\n\r\n");
/// s.send(Side::Server, b"HTTP/1.1 204 No Content\r\n\r\n");
/// s.close(Side::Client);
/// assert_eq!(s.frames().len(), 3 + 2 + 2 + 3);
/// ```
#[derive(Clone, Debug)]
pub struct TcpSession {
    client: SocketAddr,
    server: SocketAddr,
    now: i64,
    gap: i64,
    delay: i64,
    mss: usize,
    client_next: u32,
    server_next: u32,
    client_ttl: u8,
    server_ttl: u8,
    vlan: Option<u16>,
    frames: Vec<TimedFrame>,
}

impl TcpSession {
    /// A session between `client` and `server` starting at `start_micros`.
    /// Defaults: ISNs 1000 (client) and 5000 (server), MSS 1460, gap 50 µs,
    /// delay 1000 µs, TTL 64 both ways, no VLAN.
    ///
    /// # Panics
    /// When frames are built, if the two addresses are of different families.
    pub fn new(client: SocketAddr, server: SocketAddr, start_micros: i64) -> Self {
        TcpSession {
            client,
            server,
            now: start_micros,
            gap: 50,
            delay: 1000,
            mss: 1460,
            client_next: 1000,
            server_next: 5000,
            client_ttl: 64,
            server_ttl: 64,
            vlan: None,
            frames: Vec::new(),
        }
    }

    /// Sets the initial sequence numbers (before the handshake).
    pub fn isns(mut self, client: u32, server: u32) -> Self {
        self.client_next = client;
        self.server_next = server;
        self
    }

    /// Sets the maximum segment size (at least 1).
    pub fn mss(mut self, mss: usize) -> Self {
        self.mss = mss.max(1);
        self
    }

    /// Sets the time between back-to-back segments and the time between a
    /// segment and the peer's answer, in microseconds.
    pub fn timing(mut self, gap_micros: i64, delay_micros: i64) -> Self {
        self.gap = gap_micros;
        self.delay = delay_micros;
        self
    }

    /// Sets the TTLs of the client's and the server's packets.
    pub fn ttls(mut self, client: u8, server: u8) -> Self {
        self.client_ttl = client;
        self.server_ttl = server;
        self
    }

    /// Tags every frame with this VLAN id.
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    /// The time the next segment will get.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Lets `micros` pass with no traffic (think time).
    pub fn idle(&mut self, micros: i64) -> &mut Self {
        self.now += micros;
        self
    }

    /// The frames so far, in time order.
    pub fn frames(&self) -> &[TimedFrame] {
        &self.frames
    }

    /// Consumes the session, returning its frames.
    pub fn into_frames(self) -> Vec<TimedFrame> {
        self.frames
    }

    fn emit(&mut self, side: Side, flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]) {
        let (src, dst, ttl) = match side {
            Side::Client => (self.client, self.server, self.client_ttl),
            Side::Server => (self.server, self.client, self.server_ttl),
        };
        let mut p = Packet::tcp(
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port(),
            flags,
            seq,
            ack,
            payload,
        )
        .ttl(ttl);
        if let Some(v) = self.vlan {
            p = p.vlan(v);
        }
        self.frames.push(TimedFrame {
            ts_micros: self.now,
            data: p.build(),
        });
    }

    fn next_of(&self, side: Side) -> (u32, u32) {
        match side {
            Side::Client => (self.client_next, self.server_next),
            Side::Server => (self.server_next, self.client_next),
        }
    }

    fn advance_seq(&mut self, side: Side, by: u32) {
        match side {
            Side::Client => self.client_next = self.client_next.wrapping_add(by),
            Side::Server => self.server_next = self.server_next.wrapping_add(by),
        }
    }

    fn peer(side: Side) -> Side {
        match side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        let (c, _) = self.next_of(Side::Client);
        self.emit(Side::Client, TcpFlags::SYN, c, 0, b"");
        self.advance_seq(Side::Client, 1);
        self.now += self.delay;
        let (s, c1) = self.next_of(Side::Server);
        self.emit(Side::Server, TcpFlags::SYN | TcpFlags::ACK, s, c1, b"");
        self.advance_seq(Side::Server, 1);
        self.now += self.delay;
        let (c, s1) = self.next_of(Side::Client);
        self.emit(Side::Client, TcpFlags::ACK, c, s1, b"");
        self.now += self.delay;
        self
    }

    /// Sends `data` from `side` in MSS-sized segments (the last with PSH),
    /// then the peer acknowledges everything.
    pub fn send(&mut self, side: Side, data: &[u8]) -> Sent {
        self.send_split(side, data, &[])
    }

    /// Like [`TcpSession::send`], but also cuts the data at each byte
    /// offset in `cuts` (offsets outside `1..data.len()` are ignored), so a
    /// pattern can be placed across a segment boundary.
    pub fn send_split(&mut self, side: Side, data: &[u8], cuts: &[usize]) -> Sent {
        let mut cuts: Vec<usize> = cuts
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < data.len())
            .collect();
        cuts.sort_unstable();
        let mut segs = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let next_cut = cuts
                .iter()
                .copied()
                .find(|&c| c > start)
                .unwrap_or(data.len());
            let end = next_cut.min(start + self.mss);
            segs.push((start, end));
            start = end;
        }
        let first_ts = self.now;
        let mut last_ts = self.now;
        let n = segs.len();
        for (i, (a, b)) in segs.into_iter().enumerate() {
            let flags = if i + 1 == n {
                TcpFlags::PSH | TcpFlags::ACK
            } else {
                TcpFlags::ACK
            };
            let (seq, ack) = self.next_of(side);
            last_ts = self.now;
            self.emit(side, flags, seq, ack, &data[a..b]);
            self.advance_seq(side, (b - a) as u32);
            self.now += self.gap;
        }
        self.now = last_ts + self.delay;
        let peer = Self::peer(side);
        let (seq, ack) = self.next_of(peer);
        self.emit(peer, TcpFlags::ACK, seq, ack, b"");
        self.now += self.delay;
        Sent {
            first_ts,
            last_ts,
            segments: n,
        }
    }

    /// Teardown started by `side`: FIN-ACK, the peer's FIN-ACK, final ACK.
    pub fn close(&mut self, side: Side) -> &mut Self {
        let peer = Self::peer(side);
        let (seq, ack) = self.next_of(side);
        self.emit(side, TcpFlags::FIN | TcpFlags::ACK, seq, ack, b"");
        self.advance_seq(side, 1);
        self.now += self.delay;
        let (seq, ack) = self.next_of(peer);
        self.emit(peer, TcpFlags::FIN | TcpFlags::ACK, seq, ack, b"");
        self.advance_seq(peer, 1);
        self.now += self.delay;
        let (seq, ack) = self.next_of(side);
        self.emit(side, TcpFlags::ACK, seq, ack, b"");
        self.now += self.delay;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_fields(f: &[u8]) -> (u32, u32, u8, usize) {
        let t = &f[34..];
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        (seq, ack, t[13], t.len() - 20)
    }

    fn session() -> TcpSession {
        TcpSession::new(
            "10.1.2.3:40001".parse().unwrap(),
            "203.0.113.80:80".parse().unwrap(),
            1_000_000,
        )
    }

    #[test]
    fn sequence_numbers_follow_the_bytes_sent() {
        let mut s = session();
        s.handshake();
        s.send(Side::Client, b"hello");
        s.send(Side::Server, b"world!");
        s.close(Side::Client);
        let f: Vec<_> = s.frames().iter().map(|f| tcp_fields(&f.data)).collect();
        assert_eq!(f[0], (1000, 0, 0x02, 0));
        assert_eq!(f[1], (5000, 1001, 0x12, 0));
        assert_eq!(f[2], (1001, 5001, 0x10, 0));
        assert_eq!(f[3], (1001, 5001, 0x18, 5));
        assert_eq!(f[4], (5001, 1006, 0x10, 0));
        assert_eq!(f[5], (5001, 1006, 0x18, 6));
        assert_eq!(f[6], (1006, 5007, 0x10, 0));
        assert_eq!(f[7], (1006, 5007, 0x11, 0));
        assert_eq!(f[8], (5007, 1007, 0x11, 0));
        assert_eq!(f[9], (1007, 5008, 0x10, 0));
        let ts: Vec<i64> = s.frames().iter().map(|f| f.ts_micros).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    }

    #[test]
    fn payload_is_cut_at_the_mss_and_at_requested_offsets() {
        let mut s = session().mss(4);
        s.handshake();
        let sent = s.send_split(Side::Client, b"abcdefghij", &[6]);
        assert_eq!(sent.segments, 3);
        let lens: Vec<usize> = s.frames()[3..7]
            .iter()
            .map(|f| tcp_fields(&f.data).3)
            .collect();
        assert_eq!(lens, vec![4, 2, 4, 0]); // abcd | ef | ghij, then the ACK
        let seqs: Vec<u32> = s.frames()[3..6]
            .iter()
            .map(|f| tcp_fields(&f.data).0)
            .collect();
        assert_eq!(seqs, vec![1001, 1005, 1007]);
    }
}
