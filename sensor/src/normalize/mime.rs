//! MIME (RFC 2045/2046) message normalizer, fed one line at a time: header
//! blocks are passed on as they are, multipart bodies are split at their
//! boundaries, and each leaf part's body is decoded from `base64` or
//! `quoted-printable`. Nesting is followed up to [`Limits::max_mime_depth`]
//! levels; deeper boundaries are treated as body text (counted).

use super::decode::{quoted_printable_line, Base64Stream};
use super::{Limits, NormalizeStats, Sink};

/// Most header bytes kept per part to find `Content-Type` and
/// `Content-Transfer-Encoding`; headers beyond are still passed on.
const MAX_PART_HEADER: usize = 16 * 1024;
/// Longest boundary (RFC 2046: 70).
const MAX_BOUNDARY: usize = 70;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cte {
    Plain,
    Base64,
    QuotedPrintable,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Reading a header block.
    Headers,
    /// Reading a leaf body.
    Body,
    /// Preamble or epilogue of a multipart: text, passed on.
    Between,
}

/// The MIME normalizer of one message.
#[derive(Debug)]
pub struct Mime {
    state: State,
    /// Boundaries of the enclosing multiparts, outermost first.
    boundaries: Vec<Vec<u8>>,
    /// Header bytes of the current part.
    header: Vec<u8>,
    cte: Cte,
    b64: Base64Stream,
    out: Vec<u8>,
}

impl Default for Mime {
    fn default() -> Self {
        Mime::new()
    }
}

impl Mime {
    /// A message starting with its header block.
    pub fn new() -> Self {
        Mime {
            state: State::Headers,
            boundaries: Vec::new(),
            header: Vec::new(),
            cte: Cte::Plain,
            b64: Base64Stream::new(),
            out: Vec::new(),
        }
    }

    /// Feeds one line without its line break; `complete` is false for a
    /// piece of an overlong line (more of it follows).
    pub fn line(
        &mut self,
        line: &[u8],
        complete: bool,
        limits: &Limits,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) {
        if complete && line.starts_with(b"--") {
            if let Some((level, closing)) = self.boundary_of(line) {
                self.end_part(sink);
                self.boundaries.truncate(level + 1);
                if closing {
                    self.boundaries.truncate(level);
                    self.state = State::Between;
                } else {
                    self.state = State::Headers;
                }
                return;
            }
        }
        match self.state {
            State::Headers => {
                if line.is_empty() && complete {
                    self.end_headers(limits, stats, sink);
                    return;
                }
                sink.data(line);
                sink.data(b"\n");
                if line.windows(2).any(|w| w == b"=?") {
                    // RFC 2047 encoded words (`Subject: =?UTF-8?B?...?=`):
                    // the decoded text as a unit of its own.
                    self.out.clear();
                    decode_encoded_words(line, &mut self.out);
                    if !self.out.is_empty() {
                        sink.boundary();
                        sink.data(&self.out);
                        sink.boundary();
                    }
                }
                if self.header.len() < MAX_PART_HEADER {
                    self.header.extend_from_slice(line);
                    if complete {
                        self.header.push(b'\n');
                    }
                }
            }
            State::Between => {
                sink.data(line);
                sink.data(b"\n");
            }
            State::Body => match self.cte {
                Cte::Base64 => self.b64.push(line, sink),
                Cte::QuotedPrintable => {
                    self.out.clear();
                    let soft = quoted_printable_line(line, &mut self.out);
                    if !soft && complete {
                        self.out.push(b'\n');
                    }
                    sink.data(&self.out);
                }
                Cte::Plain => {
                    sink.data(line);
                    if complete {
                        sink.data(b"\n");
                    }
                }
            },
        }
    }

    /// Whether the current part is a base64 body: its lines can then be
    /// fed in bulk with [`Mime::base64_plain_lines`] (the caller keeps lines that
    /// start with `-`, possible boundaries, for [`Mime::line`]).
    pub fn in_base64_body(&self) -> bool {
        self.state == State::Body && self.cte == Cte::Base64
    }

    /// Decodes the leading whole lines of `data` that start neither with
    /// `-` (a possible boundary) nor with `.` (end of data or a dot-stuffed
    /// line) in one pass; returns how many bytes it took (0: the caller
    /// handles the next line itself).
    pub fn base64_plain_lines(&mut self, data: &[u8], sink: &mut impl Sink) -> usize {
        self.b64.push_plain_lines(data, sink)
    }

    /// Which enclosing boundary `line` is (innermost first), and whether it
    /// is the closing one (`--b--`).
    fn boundary_of(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.get(2..)?.trim_ascii_end();
        for (level, b) in self.boundaries.iter().enumerate().rev() {
            if let Some(after) = rest.strip_prefix(b.as_slice()) {
                if after.is_empty() {
                    return Some((level, false));
                }
                if after == b"--" {
                    return Some((level, true));
                }
            }
        }
        None
    }

    fn end_headers(&mut self, limits: &Limits, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        sink.boundary();
        let header = std::mem::take(&mut self.header);
        let (boundary, cte) = parse_part_header(&header);
        self.cte = cte;
        match boundary {
            Some(b) if self.boundaries.len() < limits.max_mime_depth => {
                self.boundaries.push(b);
                self.state = State::Between;
            }
            Some(_) => {
                stats.mime_too_deep += 1;
                tracing::debug!(event = "mime_too_deep", "MIME nesting deeper than followed");
                self.state = State::Body;
            }
            None => {
                if cte != Cte::Plain {
                    stats.mime_parts_decoded += 1;
                }
                self.state = State::Body;
            }
        }
    }

    fn end_part(&mut self, sink: &mut impl Sink) {
        self.b64.finish(sink);
        self.header.clear();
        self.cte = Cte::Plain;
        sink.boundary();
    }

    /// The message ended.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        self.end_part(sink);
    }
}

/// Most encoded words decoded per header line.
const MAX_ENCODED_WORDS: usize = 64;

/// Appends the decoded text of every RFC 2047 encoded word
/// (`=?charset?B?base64?=` or `=?charset?Q?quoted?=`) of `line` to `out`,
/// in the charset's own bytes (signatures match GBK or UTF-8 bytes).
/// Malformed words are skipped.
fn decode_encoded_words(line: &[u8], out: &mut Vec<u8>) {
    let mut rest = line;
    for _ in 0..MAX_ENCODED_WORDS {
        let Some(start) = rest.windows(2).position(|w| w == b"=?") else {
            return;
        };
        let word = rest.get(start + 2..).unwrap_or_default();
        // charset ? encoding ? text ?=
        let mut parts = word.splitn(3, |&b| b == b'?');
        let (Some(_charset), Some(encoding), Some(tail)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Some(end) = tail.windows(2).position(|w| w == b"?=") else {
            return;
        };
        let text = tail.get(..end).unwrap_or_default();
        if encoding.eq_ignore_ascii_case(b"B") {
            use base64::Engine as _;
            let _ = base64::engine::general_purpose::STANDARD.decode_vec(text, out);
        } else if encoding.eq_ignore_ascii_case(b"Q") {
            let underscores: Vec<u8> = text
                .iter()
                .map(|&b| if b == b'_' { b' ' } else { b })
                .collect();
            quoted_printable_line(&underscores, out);
        }
        // Continue after this word's `?=`.
        let consumed = line.len() - rest.len() + start + 2 + (word.len() - tail.len()) + end + 2;
        rest = line.get(consumed..).unwrap_or_default();
    }
}

/// The multipart boundary (if a multipart) and the transfer encoding of a
/// part, from its header block (folded lines joined).
fn parse_part_header(header: &[u8]) -> (Option<Vec<u8>>, Cte) {
    let mut boundary = None;
    let mut cte = Cte::Plain;
    // Unfold: a line starting with white space continues the previous.
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (line.first(), fields.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => {
                last.push(b' ');
                last.extend_from_slice(line.trim_ascii());
            }
            _ => fields.push(line.to_vec()),
        }
    }
    for f in &fields {
        let Some(colon) = f.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = f.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if name.trim_ascii().eq_ignore_ascii_case(b"content-type") {
            if value.len() >= 10
                && value
                    .get(..10)
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"multipart/"))
            {
                boundary = param(value, b"boundary");
            }
        } else if name
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-transfer-encoding")
        {
            if value.eq_ignore_ascii_case(b"base64") {
                cte = Cte::Base64;
            } else if value.eq_ignore_ascii_case(b"quoted-printable") {
                cte = Cte::QuotedPrintable;
            }
        }
    }
    (
        boundary.filter(|b| !b.is_empty() && b.len() <= MAX_BOUNDARY),
        cte,
    )
}

/// A `; name=value` or `; name="value"` parameter of a header value.
fn param(value: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    for p in value.split(|&b| b == b';').skip(1) {
        let p = p.trim_ascii();
        let Some(eq) = p.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (n, v) = p.split_at(eq);
        if !n.trim_ascii().eq_ignore_ascii_case(name) {
            continue;
        }
        let v = v.get(1..).unwrap_or_default().trim_ascii();
        let v = v
            .strip_prefix(b"\"")
            .and_then(|x| x.strip_suffix(b"\""))
            .unwrap_or(v);
        return Some(v.to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Collect;

    fn run(message: &str) -> (String, NormalizeStats) {
        let mut m = Mime::new();
        let mut c = Collect::default();
        let mut s = NormalizeStats::default();
        for line in message.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            m.line(line.as_bytes(), true, &Limits::default(), &mut s, &mut c);
        }
        m.finish(&mut c);
        (String::from_utf8_lossy(&c.joined()).into_owned(), s)
    }

    #[test]
    fn base64_attachment_of_a_multipart_message_is_decoded() {
        let msg = "From: a@b\r\nContent-Type: multipart/mixed;\r\n boundary=\"XyZ\"\r\n\r\npreamble\r\n--XyZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n5py65a+G\r\n4piF5LiJ5bm0\r\n--XyZ--\r\nepilogue";
        let (out, stats) = run(msg);
        assert!(out.contains("机密★三年"), "{out}");
        assert!(out.contains("hello"));
        assert_eq!(stats.mime_parts_decoded, 1);
    }

    #[test]
    fn encoded_word_subjects_are_decoded() {
        let msg =
            "Subject: =?UTF-8?B?57ud5a+G4piF?= and =?gbk?Q?=BB=FA=C3=DC=A1=EF_x?=\r\n\r\nbody";
        let (out, _) = run(msg);
        assert!(out.contains("绝密★"), "{out}");
        let gbk_marking = [0xbb, 0xfa, 0xc3, 0xdc, 0xa1, 0xef, b' ', b'x'];
        let mut m = Mime::new();
        let mut c = Collect::default();
        m.line(
            b"Subject: =?gbk?Q?=BB=FA=C3=DC=A1=EF_x?=",
            true,
            &Limits::default(),
            &mut NormalizeStats::default(),
            &mut c,
        );
        assert!(c.units.iter().any(|u| u == &gbk_marking), "{:?}", c.units);
        // Malformed words are skipped without panicking.
        for bad in [
            "=?",
            "=?x",
            "=?x?B",
            "=?x?B?",
            "=?x?B?abc",
            "=?x?Z?abc?= =?",
        ] {
            let mut out = Vec::new();
            decode_encoded_words(bad.as_bytes(), &mut out);
        }
    }

    #[test]
    fn quoted_printable_part_is_decoded() {
        let msg =
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E7=BB=9D=E5=AF=86=\r\n=E2=98=85 x";
        let (out, _) = run(msg);
        assert!(out.contains("绝密★ x"), "{out}");
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_counted() {
        let mut msg = String::new();
        for i in 0..10 {
            msg.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        msg.push_str("\r\nbody\r\n");
        let (out, stats) = run(&msg);
        assert_eq!(stats.mime_too_deep, 1);
        assert!(out.contains("body"));
    }
}
