//! HTTP/1.x normalizer: one direction of a connection (requests or
//! responses), pipelined messages in sequence.
//!
//! For each message it passes on the header block as it is, the request
//! target URL-decoded (when it has escapes), and the body after framing
//! (`Content-Length`, `Transfer-Encoding: chunked`, or until the
//! connection closes for a response without either) and decoding
//! ([`super::body`]: content codings with a raw fallback, then URL
//! decoding of forms, JSON string escapes, HTML/XML character references).
//!
//! A response is framed by the request it answers ([`Exchange`]): the
//! answer to a `HEAD` has no body whatever its `Content-Length` says, and
//! a 2xx answer to `CONNECT` starts a tunnel (passed on raw).
//!
//! Bounds: the header block is buffered up to [`Limits::max_header_bytes`];
//! a longer one (or one of more than [`MAX_HEADERS`] lines) is an anomaly
//! (`http_header_overflow`), not a reason to stop: its lines are read on
//! one at a time, unbuffered (each kept up to [`MAX_OVERFLOW_LINE`] bytes
//! for parsing), so headers past the cap still frame and decode the body.
//! Only a header block past [`MAX_OVERFLOW_HEAD`] bytes, a chunk-size or
//! trailer line past [`MAX_CHUNK_LINE`] bytes, or a start line that is not
//! HTTP ends HTTP parsing for the stream: what is buffered and everything
//! after is passed on raw (counted as `http_errors`).
//!
//! Ambiguous framing (`http_ambiguous_framing`) is read as a server reads
//! it (RFC 9112 §6.3): chunked transfer wins over `Content-Length`;
//! conflicting `Content-Length` values frame by the first.

use std::collections::VecDeque;

use super::body::{BodyDecoder, Coding, Text};
use super::decode::url_decode;
use super::escape::Markup;
use super::{Limits, NormalizeStats, Sink};

/// Requests one connection may have outstanding (pipelined) before the
/// oldest is forgotten.
pub const MAX_PENDING_REQUESTS: usize = 64;

/// What a response needs to know about the request it answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Method {
    #[default]
    Other,
    Head,
    Connect,
}

/// The requests of one HTTP connection still waiting for an answer,
/// oldest first, shared by its two directions. Bounded by
/// [`MAX_PENDING_REQUESTS`]; when more are pipelined the oldest is
/// dropped, and a response without a known request is framed by its own
/// headers alone.
#[derive(Debug, Default)]
pub struct Exchange {
    pending: VecDeque<Method>,
}

impl Exchange {
    fn request(&mut self, m: Method) {
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            self.pending.pop_front();
        }
        self.pending.push_back(m);
    }

    /// The request a final (non-1xx) response answers.
    fn answer(&mut self, status: u16) -> Method {
        if status < 200 {
            return Method::Other;
        }
        self.pending.pop_front().unwrap_or_default()
    }
}

/// Header lines per message past which the message is counted as an
/// overflow (all of them are still read).
pub const MAX_HEADERS: usize = 256;
/// Longest header block followed line by line after an overflow; past it
/// the stream is scanned raw.
pub const MAX_OVERFLOW_HEAD: u64 = 1024 * 1024;
/// Bytes of each header line kept for parsing after an overflow (the rest
/// of a longer line is passed on, not parsed).
pub const MAX_OVERFLOW_LINE: usize = 8 * 1024;
/// Longest chunk-size or trailer line.
pub const MAX_CHUNK_LINE: usize = 1024;

#[derive(Debug)]
enum State {
    Head,
    /// A header block past the buffer cap, read line by line.
    LongHead(Box<LongHead>),
    Length(u64),
    UntilClose,
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkEnd,
    Trailer(Vec<u8>),
    Raw,
}

/// A header block being read line by line after it passed the buffer cap.
#[derive(Debug)]
struct LongHead {
    head: Head,
    /// The current line (at most [`MAX_OVERFLOW_LINE`] bytes kept).
    line: Vec<u8>,
    /// Whether the current line was longer than what is kept.
    line_cut: bool,
    /// Header bytes so far.
    total: u64,
}

/// What the parser needs from a header block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Head {
    response: bool,
    method: Method,
    status: u16,
    target: Vec<u8>,
    content_length: Option<u64>,
    chunked: bool,
    /// Content codings then compressing transfer codings, in the order
    /// they were applied.
    content_codings: Vec<Coding>,
    transfer_codings: Vec<Coding>,
    text: Option<Text>,
    /// Conflicting lengths, or a length with chunked transfer.
    ambiguous: bool,
    /// Header lines read.
    lines: usize,
    /// The last header line, held until the next one shows it is not
    /// folded onto (obs-fold: a line starting with a space or a tab
    /// continues the header before it, as servers that accept folding
    /// and libhtp read it).
    held: Vec<u8>,
    /// Continuation lines folded onto a header.
    folded: usize,
}

/// Longest header line kept with its folded continuations.
const MAX_FOLDED_LINE: usize = 8 * 1024;

/// The HTTP/1.x normalizer of one direction.
#[derive(Debug)]
pub struct Http {
    state: State,
    head: Vec<u8>,
    body: Option<BodyDecoder>,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// A parser expecting a message start.
    pub fn new() -> Self {
        Http {
            state: State::Head,
            head: Vec::new(),
            body: None,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(
        &mut self,
        data: &[u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut Exchange,
        sink: &mut impl Sink,
    ) {
        let mut rest = data;
        // Every round consumes at least one byte or ends: bounded by the
        // input length (plus one state change per round).
        let mut rounds = 0usize;
        while !rest.is_empty() && rounds <= 2 * data.len() + 2 {
            rounds += 1;
            rest = match &mut self.state {
                State::Raw => {
                    sink.data(rest);
                    return;
                }
                State::Head => self.head_bytes(rest, limits, stats, exchange, sink),
                State::LongHead(_) => self.long_head_bytes(rest, limits, stats, exchange, sink),
                State::Length(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                    let (now, later) = rest.split_at(n);
                    *left -= n as u64;
                    let done = *left == 0;
                    self.body_bytes(now, stats, sink);
                    if done {
                        self.end_body(stats, sink);
                    }
                    later
                }
                State::UntilClose => {
                    self.body_bytes(rest, stats, sink);
                    return;
                }
                State::ChunkData(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                    let (now, later) = rest.split_at(n);
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::ChunkEnd;
                    }
                    self.body_bytes(now, stats, sink);
                    later
                }
                State::ChunkEnd => match rest.split_first() {
                    Some((b'\r', later)) => later,
                    Some((b'\n', later)) => {
                        self.state = State::ChunkSize(Vec::new());
                        later
                    }
                    // Lenient: a missing CRLF after chunk data.
                    _ => {
                        self.state = State::ChunkSize(Vec::new());
                        rest
                    }
                },
                State::ChunkSize(line) => {
                    let (complete, later) = take_line(line, rest);
                    if line.len() > MAX_CHUNK_LINE {
                        self.fail(stats, sink);
                        return;
                    }
                    if complete {
                        match parse_chunk_size(line) {
                            Some(0) => self.state = State::Trailer(Vec::new()),
                            Some(n) => self.state = State::ChunkData(n),
                            None => {
                                let line = std::mem::take(line);
                                self.fail(stats, sink);
                                sink.data(&line);
                                sink.data(later);
                                return;
                            }
                        }
                    }
                    later
                }
                State::Trailer(line) => {
                    let (complete, later) = take_line(line, rest);
                    if line.len() > MAX_CHUNK_LINE {
                        self.fail(stats, sink);
                        return;
                    }
                    if complete {
                        if trim_crlf(line).is_empty() {
                            self.end_body(stats, sink);
                        } else {
                            line.clear();
                        }
                    }
                    later
                }
            };
        }
    }

    /// Header bytes: buffered until the blank line, then parsed.
    fn head_bytes<'a>(
        &mut self,
        mut rest: &'a [u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut Exchange,
        sink: &mut impl Sink,
    ) -> &'a [u8] {
        if self.head.is_empty() {
            // Blank lines between messages are allowed (RFC 9112 §2.2).
            while let Some((b'\r' | b'\n', later)) = rest.split_first() {
                rest = later;
            }
            if rest.is_empty() {
                return rest;
            }
        }
        let old = self.head.len();
        let room = limits.max_header_bytes.saturating_sub(old);
        let take = room.min(rest.len());
        let (now, later) = rest.split_at(take);
        self.head.extend_from_slice(now);
        if let Some(end) = head_end(&self.head, old.saturating_sub(3)) {
            let consumed = end.saturating_sub(old).min(rest.len());
            self.head.truncate(end);
            let head = std::mem::take(&mut self.head);
            self.on_head(&head, limits, stats, exchange, sink);
            return rest.get(consumed..).unwrap_or_default();
        }
        if self.head.len() >= limits.max_header_bytes {
            return self.overflow(later, stats, sink);
        }
        later
    }

    /// The buffered header block reached its cap: parse its complete
    /// lines, pass it on, and read the rest of the block line by line.
    fn overflow<'a>(
        &mut self,
        later: &'a [u8],
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) -> &'a [u8] {
        let buffered = std::mem::take(&mut self.head);
        let complete = buffered
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let (lines, partial) = buffered.split_at(complete);
        let mut split = lines.split(|&b| b == b'\n').map(trim_crlf);
        let Some(mut head) = split.next().and_then(start_line) else {
            self.head = buffered;
            self.fail(stats, sink);
            sink.data(later);
            return &[];
        };
        for line in split {
            head.header(line);
        }
        sink.data(&buffered);
        let mut line = partial.to_vec();
        line.truncate(MAX_OVERFLOW_LINE);
        self.state = State::LongHead(Box::new(LongHead {
            head,
            line_cut: partial.len() > MAX_OVERFLOW_LINE,
            line,
            total: buffered.len() as u64,
        }));
        later
    }

    /// Header bytes after an overflow: passed on as they come, each line
    /// parsed when complete, the body set up at the blank line.
    fn long_head_bytes<'a>(
        &mut self,
        rest: &'a [u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut Exchange,
        sink: &mut impl Sink,
    ) -> &'a [u8] {
        let State::LongHead(long) = &mut self.state else {
            return rest;
        };
        let (now, later, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let (now, later) = rest.split_at(i + 1);
                (now, later, true)
            }
            None => (rest, &[][..], false),
        };
        sink.data(now);
        long.total += now.len() as u64;
        let room = MAX_OVERFLOW_LINE.saturating_sub(long.line.len());
        long.line
            .extend_from_slice(now.get(..room.min(now.len())).unwrap_or_default());
        long.line_cut |= now.len() > room;
        if long.total > MAX_OVERFLOW_HEAD {
            self.fail(stats, sink);
            sink.data(later);
            return &[];
        }
        if !complete {
            return later;
        }
        let line = std::mem::take(&mut long.line);
        let cut = std::mem::replace(&mut long.line_cut, false);
        let line = trim_crlf(&line);
        if !line.is_empty() {
            if !cut {
                long.head.header(line);
            }
            return later;
        }
        let State::LongHead(mut long) = std::mem::replace(&mut self.state, State::Head) else {
            return later;
        };
        long.head.end_headers();
        stats.http_header_overflow += 1;
        tracing::debug!(
            event = "http_header_overflow",
            "HTTP header block past the buffer cap; read line by line"
        );
        sink.boundary();
        self.start_message(long.head, limits, stats, exchange, sink);
        later
    }

    fn on_head(
        &mut self,
        head: &[u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut Exchange,
        sink: &mut impl Sink,
    ) {
        let Some(h) = parse_head(head) else {
            self.head = head.to_vec();
            self.fail(stats, sink);
            return;
        };
        sink.data(head);
        sink.boundary();
        if h.lines > MAX_HEADERS {
            stats.http_header_overflow += 1;
        }
        self.start_message(h, limits, stats, exchange, sink);
    }

    /// Frames and sets up the body of a message whose header block was
    /// read (and passed on).
    fn start_message(
        &mut self,
        h: Head,
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut Exchange,
        sink: &mut impl Sink,
    ) {
        stats.http_messages += 1;
        if h.folded > 0 {
            stats.http_folded_headers += 1;
        }
        if h.ambiguous {
            stats.http_ambiguous_framing += 1;
            tracing::debug!(
                event = "http_ambiguous_framing",
                "HTTP message framed ambiguously; read as a server would"
            );
        }
        if h.target.iter().any(|&b| b == b'%' || b == b'+') {
            sink.data(&url_decode(&h.target));
            sink.boundary();
        }
        let answers = if h.response {
            exchange.answer(h.status)
        } else {
            exchange.request(h.method);
            Method::Other
        };
        if answers == Method::Connect && (200..300).contains(&h.status) {
            // A tunnel: whatever follows is not HTTP.
            self.state = State::Raw;
            return;
        }
        let no_body = h.response
            && (h.status < 200 || h.status == 204 || h.status == 304 || answers == Method::Head);
        self.state = if no_body {
            State::Head
        } else if h.chunked {
            State::ChunkSize(Vec::new())
        } else if let Some(n) = h.content_length {
            if n == 0 {
                State::Head
            } else {
                State::Length(n)
            }
        } else if h.response {
            State::UntilClose
        } else {
            State::Head
        };
        if matches!(self.state, State::Head) {
            return;
        }
        let mut codings = h.content_codings;
        codings.extend_from_slice(&h.transfer_codings);
        self.body = Some(BodyDecoder::new(
            &codings,
            h.text.clone().unwrap_or(Text::Sniff),
            limits,
            stats,
        ));
    }

    fn body_bytes(&mut self, bytes: &[u8], stats: &mut NormalizeStats, sink: &mut impl Sink) {
        match &mut self.body {
            Some(d) => d.push(bytes, stats, sink),
            None => sink.data(bytes),
        }
    }

    fn end_body(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if let Some(mut d) = self.body.take() {
            d.finish(stats, sink);
        }
        sink.boundary();
        self.state = State::Head;
    }

    /// Gives up parsing: what is buffered and the rest go out raw.
    fn fail(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        stats.http_errors += 1;
        tracing::debug!(
            event = "http_error",
            "HTTP framing not understood; rest of the stream scanned raw"
        );
        if !matches!(self.state, State::Head | State::LongHead(_) | State::Raw) {
            self.end_body(stats, sink);
        }
        let head = std::mem::take(&mut self.head);
        sink.data(&head);
        self.state = State::Raw;
    }

    /// Bytes are missing: the rest of the stream is scanned raw.
    pub fn gap(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if !matches!(self.state, State::Head | State::LongHead(_) | State::Raw) {
            self.end_body(stats, sink);
        }
        let head = std::mem::take(&mut self.head);
        sink.data(&head);
        sink.boundary();
        self.state = State::Raw;
    }

    /// The stream ended: flushes a body read until close, or a partial
    /// message.
    pub fn finish(&mut self, _limits: &Limits, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if !matches!(self.state, State::Head | State::LongHead(_) | State::Raw) {
            self.end_body(stats, sink);
        }
        let head = std::mem::take(&mut self.head);
        sink.data(&head);
        sink.boundary();
    }
}

/// Appends bytes up to and including the next `\n` to `line`; returns
/// whether the line is complete and the bytes after it.
fn take_line<'a>(line: &mut Vec<u8>, rest: &'a [u8]) -> (bool, &'a [u8]) {
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let (now, later) = rest.split_at(i + 1);
            line.extend_from_slice(now);
            (true, later)
        }
        None => {
            line.extend_from_slice(rest);
            (false, &[])
        }
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Hex chunk size before any `;extension`; `None` if not hex or too big.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = trim_crlf(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &b in digits {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        n = n.checked_mul(16)?.checked_add(u64::from(v))?;
    }
    Some(n)
}

/// Index just past the blank line ending a header block, searching from
/// `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    let mut i = 0;
    while let Some(&b) = tail.get(i) {
        if b == b'\n' {
            match (tail.get(i + 1), tail.get(i + 2)) {
                (Some(b'\n'), _) => return Some(from + i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(from + i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Parses a header block; `None` if the start line is not HTTP/1.x.
fn parse_head(head: &[u8]) -> Option<Head> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_crlf);
    let mut h = start_line(lines.next()?)?;
    for line in lines {
        h.header(line);
    }
    h.end_headers();
    Some(h)
}

/// Reads a start line; `None` if it is not HTTP/1.x.
fn start_line(start: &[u8]) -> Option<Head> {
    let mut h = Head::default();
    if let Some(after) = start.strip_prefix(b"HTTP/1.") {
        h.response = true;
        let code = after.get(2..5)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        h.status = std::str::from_utf8(code).ok()?.parse().ok()?;
    } else {
        let mut parts = start.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let method = parts.next()?;
        let target = parts.next()?;
        let version = parts.next()?;
        if !method.iter().all(|b| b.is_ascii_uppercase()) || !version.starts_with(b"HTTP/1.") {
            return None;
        }
        h.target = target.to_vec();
        h.method = match method {
            b"HEAD" => Method::Head,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        };
    }
    Some(h)
}

impl Head {
    /// Takes one header line (the blank line ending the block excluded),
    /// joining folded continuation lines onto the header they continue.
    fn header(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) && !self.held.is_empty() {
            self.folded += 1;
            let room = MAX_FOLDED_LINE.saturating_sub(self.held.len() + 1);
            let more = line.trim_ascii();
            self.held.push(b' ');
            self.held
                .extend_from_slice(more.get(..room.min(more.len())).unwrap_or_default());
            return;
        }
        let held = std::mem::replace(&mut self.held, line.to_vec());
        self.apply(&held);
    }

    /// The header block ended: reads the last header held.
    fn end_headers(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.apply(&held);
    }

    /// Reads one (unfolded) header.
    fn apply(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        self.lines += 1;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            // `5, 5` (a list of equal values) is one length (RFC 9110
            // §8.6); an unreadable or conflicting value is ambiguous.
            for v in value.split(|&b| b == b',') {
                let n = std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                match (n, self.content_length) {
                    (Some(n), None) => self.content_length = Some(n),
                    (Some(n), Some(old)) if n == old => {}
                    _ => self.ambiguous = true,
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Servers take a transfer coding list that has `chunked`
            // anywhere as chunked (libhtp does the same).
            self.chunked |= contains_ci(value, b"chunked");
            self.transfer_codings.extend(
                value
                    .split(|&b| b == b',')
                    .filter(|t| !contains_ci(t, b"chunked"))
                    .map(Coding::parse)
                    .filter(|c| *c != Coding::Identity),
            );
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            self.content_codings.extend(Coding::list(value));
        } else if name.eq_ignore_ascii_case(b"content-type") && self.text.is_none() {
            self.text = Some(
                if contains_ci(value, b"application/x-www-form-urlencoded") {
                    Text::Form
                } else if let Some(b) = super::multipart::boundary(value) {
                    Text::Multipart(b)
                } else if let Some(m) = Markup::from_content_type(value) {
                    Text::Markup(m)
                } else {
                    Text::Sniff
                },
            );
        }
        if self.chunked && self.content_length.is_some() {
            self.ambiguous = true;
        }
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::normalize::Collect;

    fn run_in_pieces(stream: &[u8], piece: usize) -> (Collect, NormalizeStats) {
        let mut h = Http::new();
        let mut c = Collect::default();
        let mut s = NormalizeStats::default();
        let l = Limits::default();
        for p in stream.chunks(piece.max(1)) {
            h.push(p, &l, &mut s, &mut Exchange::default(), &mut c);
        }
        h.finish(&l, &mut s, &mut c);
        (c, s)
    }

    fn units(stream: &[u8]) -> Vec<String> {
        let (whole, _) = run_in_pieces(stream, usize::MAX);
        // Any split gives the same bytes.
        for piece in [1, 2, 3, 7, 64] {
            let (c, _) = run_in_pieces(stream, piece);
            assert_eq!(c.units.concat(), whole.units.concat(), "piece {piece}");
        }
        whole
            .units
            .iter()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect()
    }

    /// Requests then responses of one connection through one exchange.
    fn exchange(requests: &[u8], responses: &[u8]) -> (Vec<String>, NormalizeStats) {
        let (mut req, mut resp) = (Http::new(), Http::new());
        let mut x = Exchange::default();
        let (mut c, mut s, l) = (
            Collect::default(),
            NormalizeStats::default(),
            Limits::default(),
        );
        req.push(requests, &l, &mut s, &mut x, &mut Collect::default());
        for p in responses.chunks(5) {
            resp.push(p, &l, &mut s, &mut x, &mut c);
        }
        resp.finish(&l, &mut s, &mut c);
        let u = c
            .units
            .iter()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect();
        (u, s)
    }

    #[test]
    fn the_answer_to_head_has_no_body_whatever_its_length_says() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all("正文 绝密★ 正文".as_bytes()).unwrap();
        let body = gz.finish().unwrap();
        let mut responses =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                .to_vec();
        responses.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        responses.extend_from_slice(&body);
        let (u, s) = exchange(
            b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            &responses,
        );
        assert!(u.iter().any(|u| u.contains("绝密★")), "{u:?}");
        assert_eq!(
            (s.http_messages, s.http_errors, s.bodies_inflated),
            (4, 0, 1)
        );
        // Without the HEAD, the second response would be the first's body.
        let (u, _) = exchange(
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            &responses,
        );
        assert!(!u.iter().any(|u| u.contains("绝密★")));
    }

    #[test]
    fn an_interim_response_does_not_answer_the_request() {
        let (u, s) = exchange(
            b"HEAD /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        );
        assert_eq!(s.http_errors, 0, "{u:?}");
        assert_eq!(s.http_messages, 4);
    }

    #[test]
    fn a_connect_tunnel_is_passed_on_raw() {
        let (u, s) = exchange(
            b"CONNECT db.example:5432 HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 Connection established\r\n\r\nGET /not-http-framing HTTP/1.1\r\n\r\n",
        );
        assert_eq!(
            s.http_messages, 2,
            "the tunnel's bytes are not parsed: {u:?}"
        );
        assert!(u.iter().any(|u| u.contains("GET /not-http-framing")));
    }

    #[test]
    fn content_length_body_follows_the_header_block() {
        let u = units(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n");
        assert_eq!(u.len(), 3);
        assert_eq!(u[1], "hello");
        assert!(u[2].starts_with("GET /b"));
    }

    #[test]
    fn chunked_bodies_are_joined_without_chunk_sizes() {
        let u = units(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n\xe7\xbb\x9d\xe5\r\n5\r\n\xaf\x86\xe2\x98\x85\r\n0\r\nX-T: 1\r\n\r\n",
        );
        assert_eq!(u[1], "绝密★");
    }

    #[test]
    fn gzip_body_is_inflated_and_form_body_url_decoded() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"id=110101199003077777&note=%E7%BB%9D%E5%AF%86%E2%98%85")
            .unwrap();
        let gz = e.finish().unwrap();
        let mut req = format!(
            "POST /f?q=%E6%9C%BA%E5%AF%86 HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        req.extend_from_slice(&gz);
        let u = units(&req);
        assert_eq!(u[1], "/f?q=机密");
        assert_eq!(u[2], "id=110101199003077777&note=绝密★");
    }

    #[test]
    fn response_without_length_runs_until_close() {
        let u = units(b"HTTP/1.0 200 OK\r\n\r\nall of it");
        assert_eq!(u[1], "all of it");
    }

    #[test]
    fn non_http_and_oversized_heads_fall_back_to_raw() {
        let (c, s) = run_in_pieces(b"HELLO THERE\r\n\r\nsecret", 4);
        assert_eq!(c.units.concat(), b"HELLO THERE\r\n\r\nsecret");
        assert_eq!(s.http_errors, 1);
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2 * MAX_OVERFLOW_HEAD as usize));
        let (c, s) = run_in_pieces(&big, 1000);
        assert_eq!(c.units.concat(), big);
        assert_eq!(s.http_errors, 1);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A POST whose header block is `padding` headers, then the given
    /// headers, then `body`.
    fn padded_post(padding: usize, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut m = b"POST /up HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..padding {
            m.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(40)).as_bytes());
        }
        m.extend_from_slice(headers.as_bytes());
        m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn headers_past_the_caps_still_frame_and_decode_the_body() {
        let body = gzip("正文 绝密★ 正文".as_bytes());
        // Past the byte cap (16 KiB) and past the line cap (256).
        for padding in [300, 2000] {
            let mut msg = padded_post(padding, "Content-Encoding: gzip\r\n", &body);
            msg.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
            for piece in [1, 100, 4096, usize::MAX] {
                let (c, s) = run_in_pieces(&msg, piece);
                let u: Vec<String> = c
                    .units
                    .iter()
                    .map(|u| String::from_utf8_lossy(u).into_owned())
                    .collect();
                assert!(
                    u.iter().any(|u| u == "正文 绝密★ 正文"),
                    "{padding} {piece}"
                );
                assert!(u.last().unwrap().starts_with("GET /next"));
                assert_eq!(
                    (s.http_messages, s.http_errors, s.http_header_overflow),
                    (2, 0, 1),
                    "{padding} {piece}"
                );
            }
        }
    }

    #[test]
    fn a_plain_body_labelled_gzip_is_scanned_raw() {
        let msg = padded_post(0, "Content-Encoding: gzip\r\n", "绝密★ plain".as_bytes());
        let (c, s) = run_in_pieces(&msg, 3);
        assert!(c.units.iter().any(|u| u == "绝密★ plain".as_bytes()));
        assert_eq!(s.encoding_not_compressed, 1);
        let msg = padded_post(0, "Content-Encoding: br\r\n", "绝密★ plain".as_bytes());
        let (c, s) = run_in_pieces(&msg, 3);
        assert!(c.units.iter().any(|u| u == "绝密★ plain".as_bytes()));
        assert_eq!(s.encoding_unknown, 1);
    }

    #[test]
    fn stacked_and_transfer_codings_are_undone() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&gzip("机密 stacked".as_bytes())).unwrap();
        let body = z.finish().unwrap();
        let msg = padded_post(
            0,
            "Content-Encoding: x-gzip\r\nContent-Encoding: deflate\r\n",
            &body,
        );
        let (c, _) = run_in_pieces(&msg, 5);
        assert!(c.units.iter().any(|u| u == "机密 stacked".as_bytes()));
        // gzip as a transfer coding before chunked.
        let gz = gzip("机密 te".as_bytes());
        let mut msg = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n",
            gz.len()
        )
        .into_bytes();
        msg.extend_from_slice(&gz);
        msg.extend_from_slice(b"\r\n0\r\n\r\n");
        let (c, _) = run_in_pieces(&msg, 5);
        assert!(c.units.iter().any(|u| u == "机密 te".as_bytes()), "{c:?}");
    }

    #[test]
    fn length_with_chunked_is_read_chunked_and_counted() {
        // A client reading the length would see `5\r\nsecr`; the server
        // reads chunks.
        let msg = b"POST /a HTTP/1.1\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nsecre\r\n2\r\nt!\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let (c, s) = run_in_pieces(msg, 4);
        assert!(c.units.iter().any(|u| u == b"secret!"), "{c:?}");
        assert_eq!(
            (s.http_messages, s.http_errors, s.http_ambiguous_framing),
            (2, 0, 1)
        );
    }

    #[test]
    fn conflicting_lengths_frame_by_the_first_and_are_counted() {
        let msg = b"POST /a HTTP/1.1\r\nContent-Length: 6\r\nContent-Length: 3\r\n\r\nsecretGET /b HTTP/1.1\r\n\r\n";
        let (c, s) = run_in_pieces(msg, 4);
        assert!(c.units.iter().any(|u| u == b"secret"), "{c:?}");
        assert_eq!((s.http_messages, s.http_ambiguous_framing), (2, 1));
        // Equal values in a list are one length.
        let msg = b"POST /a HTTP/1.1\r\nContent-Length: 6, 6\r\n\r\nsecret";
        let (_, s) = run_in_pieces(msg, 4);
        assert_eq!(s.http_ambiguous_framing, 0);
    }

    #[test]
    fn json_and_html_bodies_are_unescaped() {
        let msg = padded_post(
            0,
            "Content-Type: application/json\r\n",
            br#"{"n":"\u673a\u5bc6\u2605"}"#,
        );
        let (c, s) = run_in_pieces(&msg, 3);
        assert!(c.units.iter().any(|u| u == r#"{"n":"机密★"}"#.as_bytes()));
        assert_eq!(s.bodies_json_unescaped, 1);
        let msg = b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n<p>&#26426;&#23494;</p>\n";
        let (c, s) = run_in_pieces(msg, 3);
        assert!(
            c.units.iter().any(|u| u == "<p>机密</p>\n".as_bytes()),
            "{c:?}"
        );
        assert_eq!(s.bodies_html_unescaped, 1);
    }

    #[test]
    fn bad_chunk_size_is_an_error_not_a_panic() {
        let (c, s) = run_in_pieces(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nrest",
            3,
        );
        assert_eq!(s.http_errors, 1);
        assert!(c.joined().ends_with(b"zz\r\nrest"));
    }

    #[test]
    fn every_truncation_and_mutation_of_a_message_is_handled() {
        let msg = b"POST /x%41 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Encoding: deflate\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for n in 0..msg.len() {
            run_in_pieces(&msg[..n], 5);
            let mut m = msg.to_vec();
            m[n] = m[n].wrapping_add(0x55);
            run_in_pieces(&m, 3);
        }
    }

    /// `head` with `{len}` replaced by the body's length, then `body`.
    fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
        let mut m = head.replace("{len}", &body.len().to_string()).into_bytes();
        m.extend_from_slice(body);
        m
    }

    /// Framings a server accepts (chunk extensions, odd case and spacing,
    /// bare LF, folded headers, trailers, leading blank lines, gzip header
    /// fields): the gzip body behind each is still inflated.
    #[test]
    fn odd_framings_servers_accept_still_inflate_the_body() {
        let gz = gzip("机密 probe".as_bytes());
        let want = "机密 probe".as_bytes();
        let found = |msg: &[u8]| {
            let (c, _) = run_in_pieces(msg, 3);
            c.units
                .iter()
                .any(|u| memchr::memmem::find(u, want).is_some())
        };
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        // One chunk of the whole body after `size` (its size line), then
        // the last chunk.
        let one_chunk = |te: &str, size: String| {
            let mut m = format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nTransfer-Encoding: {te}\r\n\r\n{size}"
            )
            .into_bytes();
            m.extend_from_slice(&gz);
            m.extend_from_slice(b"\r\n0\r\n\r\n");
            m
        };
        // chunk extension and uppercase hex, leading zeros
        cases.push((
            "chunk ext + uppercase hex + leading zeros",
            one_chunk("chunked", format!("{:04X};ext=1\r\n", gz.len())),
        ));
        // uppercase coding name
        cases.push(("GZIP uppercase", with_body("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: GZIP\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // header name case and no space after colon
        cases.push(("lowercase names, no space", with_body("POST / HTTP/1.1\r\nHost: a\r\ncontent-encoding:gzip\r\ncontent-length:{len}\r\n\r\n", &gz)));
        // bare LF line endings
        cases.push((
            "bare LF",
            with_body(
                "POST / HTTP/1.1\nHost: a\nContent-Encoding: gzip\nContent-Length: {len}\n\n",
                &gz,
            ),
        ));
        // obs-fold continuation
        cases.push(("obs-fold value", with_body("POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\nContent-Encoding:\r\n gzip\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // whitespace around value, tab
        cases.push(("tabs around value", with_body("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding:\t gzip \t\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // identity, gzip list
        cases.push(("identity, gzip", with_body("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: identity, gzip\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // Transfer-Encoding: Chunked capitalised
        cases.push((
            "Chunked capitalised",
            one_chunk("Chunked", format!("{:x}\r\n", gz.len())),
        ));
        // chunked with trailers
        let mut m = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in gz.chunks(3) {
            m.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            m.extend_from_slice(piece);
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(b"0\r\nX-T: y\r\n\r\n");
        cases.push(("3-byte chunks + trailer", m));
        // chunk size with trailing whitespace
        cases.push((
            "chunk size trailing space",
            one_chunk("chunked", format!("{:x} \r\n", gz.len())),
        ));
        // second request on keep-alive after a first plain request
        cases.push(("pipelined after GET", with_body("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // HTTP/1.0 request with Content-Length
        cases.push((
            "HTTP/1.0",
            with_body(
                "POST / HTTP/1.0\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n",
                &gz,
            ),
        ));
        // leading CRLFs before request line (RFC 7230 says ignore)
        cases.push(("leading CRLFs", with_body("\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n", &gz)));
        // Content-Length with leading zeros / plus
        cases.push(("CL leading zeros", with_body("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: 000{len}\r\n\r\n", &gz)));
        // gzip with FEXTRA/FNAME header fields
        let mut g = flate2::GzBuilder::new()
            .filename("a.txt")
            .extra(vec![1, 2, 3, 4])
            .comment("c")
            .write(Vec::new(), flate2::Compression::default());
        g.write_all(want).unwrap();
        let gz2 = g.finish().unwrap();
        cases.push(("gzip FNAME FEXTRA FCOMMENT", with_body("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n", &gz2)));
        let mut failed = Vec::new();
        for (name, m) in &cases {
            if !found(m) {
                failed.push(*name);
            }
        }
        assert!(failed.is_empty(), "missed: {failed:?}");
        let folded = &cases.iter().find(|c| c.0 == "obs-fold value").unwrap().1;
        let (_, st) = run_in_pieces(folded, 2);
        assert_eq!((st.http_folded_headers, st.encoding_not_compressed), (1, 0));
        // Folded past the block's cap, in the line-by-line path.
        let mut m = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..600 {
            m.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(40)).as_bytes());
        }
        m.extend_from_slice(
            format!(
                "Content-Encoding:\r\n\tgzip\r\nContent-Length: {}\r\n\r\n",
                gz.len()
            )
            .as_bytes(),
        );
        m.extend_from_slice(&gz);
        let (c, st) = run_in_pieces(&m, 1000);
        assert!(c
            .units
            .iter()
            .any(|u| memchr::memmem::find(u, want).is_some()));
        assert_eq!((st.http_header_overflow, st.http_folded_headers), (1, 1));
    }
}
