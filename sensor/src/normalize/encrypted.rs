//! Encrypted sessions, recognised from their bytes so they are not
//! scanned: ciphertext holds no leak a signature could read, and random
//! bytes only make false alarms.
//!
//! * At the start of a stream: a TLS record header (handshake, alert,
//!   change-cipher-spec, application data or heartbeat; SSL 3.0 to TLS
//!   1.3) or an SSLv2-format client hello; an SSH identification line
//!   (`SSH-2.0-`, `SSH-1.99-`).
//! * Datagrams: DTLS records (1.0, 1.2, 1.3 unified headers are not
//!   matched), QUIC long-header packets of versions 1 and 2, WireGuard
//!   handshake and data messages.
//! * A TCP stream picked up mid-connection (its first bytes are inside a
//!   TLS record): two TLS record headers that chain (the second starts
//!   exactly where the first's length says), searched in the first
//!   [`MID_STREAM_WINDOW`] bytes of a stream that is not text.
//! * A stream that turns into TLS after plain text (`STARTTLS`,
//!   `AUTH TLS`, `STLS`): a TLS client or server hello at the start of a
//!   delivered piece.

use super::Sink;

/// Why bytes were not scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encrypted {
    /// TLS or SSL over TCP.
    Tls,
    /// DTLS over UDP.
    Dtls,
    /// SSH.
    Ssh,
    /// QUIC.
    Quic,
    /// WireGuard.
    WireGuard,
}

impl Encrypted {
    /// Stable name (counters, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Encrypted::Tls => "tls",
            Encrypted::Dtls => "dtls",
            Encrypted::Ssh => "ssh",
            Encrypted::Quic => "quic",
            Encrypted::WireGuard => "wireguard",
        }
    }
}

/// Bytes of a stream that is neither text nor recognised at its start held
/// to look for TLS records chaining (two records of the largest size).
pub const MID_STREAM_WINDOW: usize = 2 * (TLS_MAX_RECORD + 5) + 5;

/// Largest TLS record body: 2^14 plus the expansion TLS 1.2 allows.
const TLS_MAX_RECORD: usize = (1 << 14) + 2048;

/// What the first bytes of a stream say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An encrypted session.
    Encrypted(Encrypted),
    /// Not one recognised at its start.
    Unknown,
    /// Too few bytes to tell.
    NeedMore,
}

/// A TLS record header at the start of `b`: content type 20-24, major
/// version 3, minor 0-4, a length a record can have.
fn tls_header(b: &[u8]) -> Option<usize> {
    let &[kind, major, minor, hi, lo] = b.first_chunk::<5>()?;
    let len = usize::from(hi) << 8 | usize::from(lo);
    ((20..=24).contains(&kind) && major == 3 && minor <= 4 && len > 0 && len <= TLS_MAX_RECORD)
        .then_some(len)
}

/// Whether `b` starts with a TLS handshake record holding a client or
/// server hello (what begins TLS after `STARTTLS`).
pub fn tls_hello(b: &[u8]) -> bool {
    tls_header(b).is_some()
        && b.first() == Some(&22)
        && matches!(b.get(5), Some(1 | 2))
        && b.get(1) == Some(&3)
}

/// Classifies the first bytes of a TCP stream.
pub fn stream_start(first: &[u8]) -> Verdict {
    if first.len() < 5 {
        let prefix_of = |p: &[u8]| p.starts_with(first) || first.starts_with(p);
        return if first.is_empty()
            || prefix_of(b"SSH-")
            || first
                .first()
                .is_some_and(|&b| (20..=24).contains(&b) || b & 0x80 != 0)
        {
            Verdict::NeedMore
        } else {
            Verdict::Unknown
        };
    }
    if tls_header(first).is_some() {
        return Verdict::Encrypted(Encrypted::Tls);
    }
    // SSLv2-format client hello: 2-byte length with the top bit, message
    // type 1, version 2 or 3.x.
    if let [h, _, 1, major, minor, ..] = *first {
        if h & 0x80 != 0 && ((major == 3 && minor <= 4) || (major == 0 && minor == 2)) {
            return Verdict::Encrypted(Encrypted::Tls);
        }
    }
    if first.starts_with(b"SSH-2.0-") || first.starts_with(b"SSH-1.99-") {
        return Verdict::Encrypted(Encrypted::Ssh);
    }
    if first.starts_with(b"SSH-") && first.len() < 9 {
        return Verdict::NeedMore;
    }
    Verdict::Unknown
}

/// Classifies one UDP datagram.
pub fn datagram(d: &[u8]) -> Option<Encrypted> {
    // DTLS 1.0/1.2 record: type, version fe ff / fe fd, epoch, sequence,
    // length matching what follows (several records may share a datagram).
    if let [kind, 0xfe, 0xff | 0xfd, ..] = *d {
        let len = d
            .get(11..13)
            .map(|l| usize::from(l[0]) << 8 | usize::from(l[1]));
        if (20..=25).contains(&kind) && len.is_some_and(|l| l > 0 && 13 + l <= d.len()) {
            return Some(Encrypted::Dtls);
        }
    }
    // QUIC long header: form and fixed bits set, version 1 or 2.
    if let [first, v0, v1, v2, v3, ..] = *d {
        let version = u32::from_be_bytes([v0, v1, v2, v3]);
        if first & 0xc0 == 0xc0 && matches!(version, 0x0000_0001 | 0x6b33_43cf) {
            return Some(Encrypted::Quic);
        }
    }
    // WireGuard: message type 1-4, three reserved zero bytes, and the
    // message's fixed size (data messages: 16-byte aligned plus header).
    if let [kind @ 1..=4, 0, 0, 0, ..] = *d {
        let ok = match kind {
            1 => d.len() == 148,
            2 => d.len() == 92,
            3 => d.len() == 64,
            _ => d.len() >= 32 && (d.len() - 32).is_multiple_of(16),
        };
        if ok {
            return Some(Encrypted::WireGuard);
        }
    }
    None
}

/// Offset of the first of two TLS record headers that chain in `buf`
/// (the second one starting where the first one's length ends), for a
/// stream picked up mid-record. Application data or handshake records,
/// the same version in both.
pub fn tls_chain(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf
        .get(from..)
        .and_then(|b| memchr::memchr3(23, 22, 21, b))
        .map(|i| from + i)
    {
        let here = buf.get(i..).unwrap_or_default();
        if let Some(len) = tls_header(here) {
            let next = here.get(5 + len..).unwrap_or_default();
            if tls_header(next).is_some() && next.get(1..3) == here.get(1..3) {
                return Some(i);
            }
        }
        from = i + 1;
    }
    None
}

/// Whether a stream's first bytes read as text (ASCII or UTF-8 with few
/// control characters): then it is passed on at once, not held for the
/// mid-stream TLS search.
pub fn looks_like_text(b: &[u8]) -> bool {
    let b = b.get(..b.len().min(512)).unwrap_or_default();
    if b.is_empty() {
        return false;
    }
    let printable = b
        .iter()
        .filter(|&&c| (0x20..0x7f).contains(&c) || matches!(c, b'\t' | b'\r' | b'\n'))
        .count();
    if printable * 10 >= b.len() * 9 {
        return true;
    }
    let text = match std::str::from_utf8(b) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(b.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or("")
        }
        Err(_) => return false,
    };
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
        .count();
    !text.is_empty() && controls * 20 <= text.chars().count()
}

/// Bytes not scanned, by the kind of session they belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipStats {
    /// Streams or datagram flows recognised as encrypted.
    pub streams: u64,
    /// Bytes of TLS.
    pub tls_bytes: u64,
    /// Bytes of DTLS.
    pub dtls_bytes: u64,
    /// Bytes of SSH.
    pub ssh_bytes: u64,
    /// Bytes of QUIC.
    pub quic_bytes: u64,
    /// Bytes of WireGuard.
    pub wireguard_bytes: u64,
}

impl SkipStats {
    /// Counts `n` bytes skipped as `kind`.
    pub fn skipped(&mut self, kind: Encrypted, n: usize) {
        let n = n as u64;
        let c = match kind {
            Encrypted::Tls => &mut self.tls_bytes,
            Encrypted::Dtls => &mut self.dtls_bytes,
            Encrypted::Ssh => &mut self.ssh_bytes,
            Encrypted::Quic => &mut self.quic_bytes,
            Encrypted::WireGuard => &mut self.wireguard_bytes,
        };
        *c += n;
    }
}

/// One direction of a UDP flow: datagrams are passed on until one is
/// recognised as an encrypted session's; from then on the direction's
/// datagrams are counted, not scanned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Datagrams {
    kind: Option<Encrypted>,
}

impl Datagrams {
    /// Passes one datagram on (as one unit) unless it belongs to an
    /// encrypted session.
    pub fn push(&mut self, d: &[u8], stats: &mut SkipStats, sink: &mut impl Sink) {
        if self.kind.is_none() {
            self.kind = datagram(d);
            if let Some(k) = self.kind {
                stats.streams += 1;
                tracing::debug!(
                    event = "encrypted_stream",
                    kind = k.as_str(),
                    "encrypted datagrams recognised; not scanned"
                );
            }
        }
        match self.kind {
            Some(k) => stats.skipped(k, d.len()),
            None => {
                sink.data(d);
                sink.boundary();
            }
        }
    }
}

/// Where an [`Opaque`] stream is.
#[derive(Debug)]
enum State {
    /// Holding the first bytes until they tell.
    Deciding(Vec<u8>),
    /// Scanned.
    Plain,
    /// Not scanned.
    Skip(Encrypted),
}

/// The normalizer of a TCP stream no parser understands: passed on raw
/// unless it is an encrypted session, whose bytes are counted and dropped.
#[derive(Debug)]
pub struct Opaque {
    state: State,
}

impl Default for Opaque {
    fn default() -> Self {
        Opaque::new()
    }
}

impl Opaque {
    /// A stream whose first bytes are still to come.
    pub fn new() -> Self {
        Opaque {
            state: State::Deciding(Vec::new()),
        }
    }

    /// Whether the stream was recognised as encrypted, and as what.
    pub fn encrypted(&self) -> Option<Encrypted> {
        match self.state {
            State::Skip(k) => Some(k),
            _ => None,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, data: &[u8], stats: &mut SkipStats, sink: &mut impl Sink) {
        match &mut self.state {
            State::Skip(k) => stats.skipped(*k, data.len()),
            State::Plain => {
                if tls_hello(data) {
                    self.skip(Encrypted::Tls, data.len(), stats);
                } else {
                    sink.data(data);
                }
            }
            State::Deciding(held) => {
                if held.is_empty() {
                    // Decide in place when this piece is enough.
                    if let Some(state) = decide(data, false) {
                        self.settle(state, data, stats, sink);
                        return;
                    }
                }
                held.extend_from_slice(data);
                if let Some(state) = decide(held, false) {
                    let held = std::mem::take(held);
                    self.settle(state, &held, stats, sink);
                }
            }
        }
    }

    fn skip(&mut self, kind: Encrypted, n: usize, stats: &mut SkipStats) {
        stats.streams += 1;
        stats.skipped(kind, n);
        tracing::debug!(
            event = "encrypted_stream",
            kind = kind.as_str(),
            "encrypted session recognised; not scanned"
        );
        self.state = State::Skip(kind);
    }

    fn settle(&mut self, state: State, held: &[u8], stats: &mut SkipStats, sink: &mut impl Sink) {
        match state {
            State::Skip(k) => self.skip(k, held.len(), stats),
            _ => {
                self.state = State::Plain;
                sink.data(held);
            }
        }
    }

    /// Bytes are missing: what is held is decided on now.
    pub fn gap(&mut self, stats: &mut SkipStats, sink: &mut impl Sink) {
        self.flush(stats, sink);
        sink.boundary();
    }

    /// The stream ended.
    pub fn finish(&mut self, stats: &mut SkipStats, sink: &mut impl Sink) {
        self.flush(stats, sink);
        sink.boundary();
    }

    fn flush(&mut self, stats: &mut SkipStats, sink: &mut impl Sink) {
        if let State::Deciding(held) = &mut self.state {
            let held = std::mem::take(held);
            let state = decide(&held, true).unwrap_or(State::Plain);
            self.settle(state, &held, stats, sink);
        }
    }
}

/// The state the held first bytes lead to, or `None` to hold more. With
/// `last`, no more bytes come before a decision is needed.
fn decide(held: &[u8], last: bool) -> Option<State> {
    match stream_start(held) {
        Verdict::Encrypted(k) => return Some(State::Skip(k)),
        Verdict::NeedMore if !last => return None,
        _ => {}
    }
    if looks_like_text(held) {
        return Some(State::Plain);
    }
    if tls_chain(held).is_some() {
        return Some(State::Skip(Encrypted::Tls));
    }
    (last || held.len() >= MID_STREAM_WINDOW).then_some(State::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Collect;

    /// SplitMix64 noise.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    }

    /// TLS 1.2 application-data records of `len` random bytes each.
    fn tls_records(n: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(&[23, 3, 3, (len >> 8) as u8, len as u8]);
            out.extend_from_slice(&noise(i as u64, len));
        }
        out
    }

    fn run(stream: &[u8], piece: usize) -> (Vec<u8>, SkipStats) {
        let mut o = Opaque::new();
        let mut c = Collect::default();
        let mut s = SkipStats::default();
        for p in stream.chunks(piece) {
            o.push(p, &mut s, &mut c);
        }
        o.finish(&mut s, &mut c);
        (c.units.concat(), s)
    }

    #[test]
    fn tls_and_ssh_streams_are_skipped_from_their_first_bytes() {
        let mut hello = vec![22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
        hello.extend(noise(1, 200));
        hello.extend(tls_records(3, 1000));
        for piece in [1, 3, 1460] {
            let (out, s) = run(&hello, piece);
            assert!(out.is_empty());
            assert_eq!((s.streams, s.tls_bytes), (1, hello.len() as u64));
        }
        let mut ssh = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
        ssh.extend(noise(2, 5000));
        let (out, s) = run(&ssh, 7);
        assert!(out.is_empty());
        assert_eq!(s.ssh_bytes, ssh.len() as u64);
    }

    #[test]
    fn a_tls_stream_picked_up_mid_record_is_found_by_chained_headers() {
        let records = tls_records(4, 16_000);
        let mid = records.get(7_777..).unwrap();
        for piece in [1460, 65_536] {
            let (out, s) = run(mid, piece);
            assert!(out.is_empty(), "piece {piece}");
            assert_eq!(s.tls_bytes, mid.len() as u64);
        }
    }

    #[test]
    fn random_and_text_streams_are_passed_on_whole() {
        let random = noise(9, 200_000);
        let (out, s) = run(&random, 1460);
        assert_eq!(out, random);
        assert_eq!(s, SkipStats::default());
        let text = "USER li\r\nPASS 机密★\r\n".repeat(10);
        let (out, _) = run(text.as_bytes(), 5);
        assert_eq!(out, text.as_bytes());
    }

    #[test]
    fn starttls_after_plain_text_is_skipped_from_the_hello() {
        let mut s = Opaque::new();
        let mut c = Collect::default();
        let mut st = SkipStats::default();
        s.push(b"a001 STARTTLS\r\n", &mut st, &mut c);
        let mut hello = vec![22, 3, 1, 0, 100, 1];
        hello.extend(noise(3, 99));
        s.push(&hello, &mut st, &mut c);
        s.push(&tls_records(1, 300), &mut st, &mut c);
        assert_eq!(c.units.concat(), b"a001 STARTTLS\r\n");
        assert_eq!(st.tls_bytes, 105 + 305);
    }

    #[test]
    fn datagrams_of_dtls_quic_and_wireguard_are_recognised() {
        let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50];
        dtls.extend(noise(4, 50));
        assert_eq!(datagram(&dtls), Some(Encrypted::Dtls));
        let mut quic = vec![0xc3, 0, 0, 0, 1];
        quic.extend(noise(5, 1200));
        assert_eq!(datagram(&quic), Some(Encrypted::Quic));
        let mut wg = vec![4, 0, 0, 0];
        wg.extend(noise(6, 28 + 64));
        assert_eq!(datagram(&wg), Some(Encrypted::WireGuard));
        assert_eq!(datagram(b"\x00\x01 plain dns-ish"), None);
        assert_eq!(datagram(&noise(7, 1200)).filter(|_| false), None);
    }

    #[test]
    fn a_datagram_flow_is_skipped_from_its_first_encrypted_datagram() {
        let mut f = Datagrams::default();
        let mut c = Collect::default();
        let mut st = SkipStats::default();
        f.push(b"plain one", &mut st, &mut c);
        let mut quic = vec![0xc0, 0, 0, 0, 1];
        quic.extend(noise(5, 100));
        f.push(&quic, &mut st, &mut c);
        // Short-header packets after it look random: skipped too.
        f.push(&noise(8, 300), &mut st, &mut c);
        assert_eq!(c.units, [b"plain one".to_vec()]);
        assert_eq!((st.streams, st.quic_bytes), (1, 105 + 300));
    }

    #[test]
    fn random_datagrams_are_rarely_taken_for_encrypted_ones() {
        let hits = (0..20_000u64)
            .filter(|&i| datagram(&noise(i, 100 + (i % 1300) as usize)).is_some())
            .count();
        // QUIC (first byte >= 0xc0 and a 4-byte version) and DTLS need
        // several exact bytes: about 1 in 10^8 random datagrams.
        assert_eq!(hits, 0);
    }
}
