//! SMTP normalizer (client to server): commands are passed on as they
//! are; after `DATA`, the message up to the lone `.` line is
//! dot-unstuffed and handed to [`Mime`] line by line. Lines longer than
//! [`Limits::max_line_bytes`] are processed in pieces.
//!
//! The server's replies are not seen here (they flow the other way), so
//! `DATA` is assumed accepted; `BDAT` (CHUNKING) is not decoded and its
//! data is passed on raw as command text.

use super::mime::Mime;
use super::{Limits, NormalizeStats, Sink};

#[derive(Debug)]
enum State {
    Command,
    Data(Box<Mime>),
}

/// The SMTP normalizer of the client's direction.
#[derive(Debug)]
pub struct Smtp {
    state: State,
    line: Vec<u8>,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp::new()
    }
}

impl Smtp {
    /// A session expecting commands.
    pub fn new() -> Self {
        Smtp {
            state: State::Command,
            line: Vec::new(),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(
        &mut self,
        data: &[u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) {
        let mut rest = data;
        // Each round consumes up to and including one line break, or all,
        // or a run of whole base64 lines.
        while !rest.is_empty() {
            if self.line.is_empty() {
                if let State::Data(mime) = &mut self.state {
                    if mime.in_base64_body() {
                        let n = mime.base64_plain_lines(rest, sink);
                        if n > 0 {
                            rest = rest.get(n..).unwrap_or_default();
                            continue;
                        }
                    }
                }
            }
            let room = limits.max_line_bytes.saturating_sub(self.line.len()).max(1);
            match memchr::memchr(b'\n', rest.get(..room).unwrap_or(rest)) {
                Some(i) => {
                    let (now, later) = rest.split_at(i + 1);
                    rest = later;
                    if self.line.is_empty() {
                        // The whole line is here: no copy.
                        let line = now.strip_suffix(b"\n").unwrap_or(now);
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        self.on_line(line, true, limits, stats, sink);
                        continue;
                    }
                    self.line.extend_from_slice(now);
                    let mut line = std::mem::take(&mut self.line);
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.on_line(&line, true, limits, stats, sink);
                    line.clear();
                    self.line = line;
                }
                None => {
                    let n = room.min(rest.len());
                    let (now, later) = rest.split_at(n);
                    self.line.extend_from_slice(now);
                    rest = later;
                    if self.line.len() >= limits.max_line_bytes {
                        let piece = std::mem::take(&mut self.line);
                        self.on_line(&piece, false, limits, stats, sink);
                    }
                }
            }
        }
    }

    fn on_line(
        &mut self,
        line: &[u8],
        complete: bool,
        limits: &Limits,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) {
        match &mut self.state {
            State::Command => {
                sink.data(line);
                sink.data(b"\n");
                if complete && line.trim_ascii().eq_ignore_ascii_case(b"DATA") {
                    sink.boundary();
                    stats.smtp_messages += 1;
                    self.state = State::Data(Box::default());
                }
            }
            State::Data(mime) => {
                if complete && line == b"." {
                    mime.finish(sink);
                    self.state = State::Command;
                    return;
                }
                let line = match line.strip_prefix(b".") {
                    Some(unstuffed) if complete => unstuffed,
                    _ => line,
                };
                mime.line(line, complete, limits, stats, sink);
            }
        }
    }

    /// Bytes are missing: the current message is ended and the rest is
    /// parsed as commands again.
    pub fn gap(&mut self, sink: &mut impl Sink) {
        if let State::Data(mime) = &mut self.state {
            mime.finish(sink);
        }
        self.line.clear();
        self.state = State::Command;
        sink.boundary();
    }

    /// The stream ended.
    pub fn finish(&mut self, limits: &Limits, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if !self.line.is_empty() {
            let piece = std::mem::take(&mut self.line);
            self.on_line(&piece, false, limits, stats, sink);
        }
        if let State::Data(mime) = &mut self.state {
            mime.finish(sink);
        }
        self.state = State::Command;
        sink.boundary();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Collect;

    #[test]
    fn message_after_data_is_mime_decoded_in_any_pieces() {
        let session = "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: hi\r\nContent-Transfer-Encoding: base64\r\n\r\n57ud5a+G4piF\r\n..\r\n.\r\nQUIT\r\n";
        for piece in [1, 3, 1000] {
            let mut s = Smtp::new();
            let mut c = Collect::default();
            let mut st = NormalizeStats::default();
            for p in session.as_bytes().chunks(piece) {
                s.push(p, &Limits::default(), &mut st, &mut c);
            }
            s.finish(&Limits::default(), &mut st, &mut c);
            let out = String::from_utf8_lossy(&c.joined()).into_owned();
            assert!(out.contains("绝密★"), "{out}");
            assert!(out.contains("QUIT"));
            assert_eq!(st.smtp_messages, 1);
        }
    }

    fn normalized(session: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut s = Smtp::new();
        let mut c = Collect::default();
        let mut st = NormalizeStats::default();
        for p in session.chunks(piece) {
            s.push(p, &Limits::default(), &mut st, &mut c);
        }
        s.finish(&Limits::default(), &mut st, &mut c);
        // Unit edges depend on where pieces end; the bytes do not.
        vec![c.units.concat()]
    }

    #[test]
    fn base64_lines_in_bulk_stop_at_boundaries_and_dots() {
        use base64::Engine as _;
        let attachment: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&attachment);
        let mut lines = String::new();
        for chunk in b64.as_bytes().chunks(76) {
            lines.push_str(std::str::from_utf8(chunk).unwrap());
            lines.push_str("\r\n");
        }
        let session = format!(
            "DATA\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Transfer-Encoding: base64\r\n\r\n{lines}--zz\r\n\r\n..dot-stuffed\r\n--zz--\r\n.\r\nQUIT\r\n"
        );
        let whole = normalized(session.as_bytes(), session.len());
        let out = &whole[0];
        assert!(out
            .windows(attachment.len())
            .any(|w| w == attachment.as_slice()));
        assert!(out.windows(12).any(|w| w == b".dot-stuffed"));
        assert!(out.ends_with(b"QUIT\n"));
        for piece in [1, 2, 3, 5, 77, 78, 500] {
            assert_eq!(
                normalized(session.as_bytes(), piece),
                whole,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn overlong_lines_are_processed_in_pieces() {
        let limits = Limits {
            max_line_bytes: 16,
            ..Limits::default()
        };
        let mut s = Smtp::new();
        let mut c = Collect::default();
        let mut st = NormalizeStats::default();
        let long = "x".repeat(100);
        s.push(long.as_bytes(), &limits, &mut st, &mut c);
        s.finish(&limits, &mut st, &mut c);
        assert_eq!(c.units.concat().iter().filter(|&&b| b == b'x').count(), 100);
    }
}
