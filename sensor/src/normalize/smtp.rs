//! SMTP normalizer (client to server): commands are passed on as they
//! are; a message, after `DATA` up to the lone `.` line (dot-unstuffed)
//! or in `BDAT` chunks (RFC 3030 CHUNKING: each chunk exactly the size its
//! command gives, no dot-stuffing, lines running across chunks, the
//! message ending with the chunk marked `LAST`), is handed to [`Mime`] line
//! by line. Lines longer than [`Limits::max_line_bytes`] are processed in
//! pieces.
//!
//! The server's replies are not seen here (they flow the other way), so
//! `DATA` and `BDAT` are assumed accepted, as a server offering CHUNKING
//! accepts them. A command other than `BDAT` between the chunks of a
//! message (`RSET`, `QUIT`) ends that message with what it has.

use super::mime::Mime;
use super::{Limits, NormalizeStats, Sink};

#[derive(Debug)]
enum State {
    Command,
    Data(Box<Mime>),
    /// Inside a `BDAT` chunk: `left` more bytes of the message follow.
    Chunk {
        mime: Box<Mime>,
        left: u64,
        last: bool,
    },
    /// Between the chunks of a message whose `LAST` chunk has not come.
    Chunked(Box<Mime>),
}

/// The SMTP normalizer of the client's direction.
#[derive(Debug)]
pub struct Smtp {
    state: State,
    /// The unfinished command or `DATA` line.
    line: Vec<u8>,
    /// The unfinished line of a message sent in `BDAT` chunks (a chunk
    /// ends anywhere, a line may run on into the next chunk).
    chunk_line: Vec<u8>,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp::new()
    }
}

/// What [`split_lines`] hands its lines to.
trait Lines {
    /// Takes leading whole lines of `data` in bulk (base64 bodies) when it
    /// can; returns how many bytes it took.
    fn bulk(&mut self, data: &[u8]) -> usize;
    /// One line without its line break (`complete`), or a piece of an
    /// overlong one. Returns false to stop splitting after this line.
    fn line(&mut self, line: &[u8], complete: bool) -> bool;
}

/// Splits `data` into lines for `to`, keeping an unfinished line in `buf`
/// (at most `max_line` bytes: a longer one goes out in pieces). Returns
/// how many bytes of `data` it took: all of them unless `to` stopped it.
fn split_lines(buf: &mut Vec<u8>, data: &[u8], max_line: usize, to: &mut impl Lines) -> usize {
    let mut rest = data;
    while !rest.is_empty() {
        if buf.is_empty() {
            let n = to.bulk(rest);
            if n > 0 {
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
        }
        let room = max_line.saturating_sub(buf.len()).max(1);
        match memchr::memchr(b'\n', rest.get(..room).unwrap_or(rest)) {
            Some(i) => {
                let (now, later) = rest.split_at(i + 1);
                rest = later;
                let go_on = if buf.is_empty() {
                    // The whole line is here: no copy.
                    let line = now.strip_suffix(b"\n").unwrap_or(now);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    to.line(line, true)
                } else {
                    buf.extend_from_slice(now);
                    let mut line = std::mem::take(buf);
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let go_on = to.line(&line, true);
                    line.clear();
                    *buf = line;
                    go_on
                };
                if !go_on {
                    break;
                }
            }
            None => {
                let n = room.min(rest.len());
                let (now, later) = rest.split_at(n);
                buf.extend_from_slice(now);
                rest = later;
                if buf.len() >= max_line {
                    let piece = std::mem::take(buf);
                    if !to.line(&piece, false) {
                        break;
                    }
                }
            }
        }
    }
    data.len() - rest.len()
}

/// Where [`split_lines`] hands lines.
enum Target<'a> {
    /// Commands and `DATA` messages.
    Session(&'a mut State),
    /// The lines of a message sent in `BDAT` chunks.
    Message(&'a mut Mime),
}

/// A [`Target`] with what parsing its lines needs.
struct Feed<'a, S> {
    target: Target<'a>,
    limits: &'a Limits,
    stats: &'a mut NormalizeStats,
    sink: &'a mut S,
}

impl<S: Sink> Lines for Feed<'_, S> {
    fn bulk(&mut self, data: &[u8]) -> usize {
        let mime = match &mut self.target {
            Target::Session(State::Data(mime)) => &mut **mime,
            Target::Message(mime) => &mut **mime,
            Target::Session(_) => return 0,
        };
        if mime.in_base64_body() {
            mime.base64_plain_lines(data, self.sink)
        } else {
            0
        }
    }

    fn line(&mut self, line: &[u8], complete: bool) -> bool {
        match &mut self.target {
            Target::Session(state) => {
                on_line(state, line, complete, self.limits, self.stats, self.sink);
                // Bytes after a `BDAT` command are its chunk, not lines.
                !matches!(state, State::Chunk { .. })
            }
            Target::Message(mime) => {
                mime.line(line, complete, self.limits, self.stats, self.sink);
                true
            }
        }
    }
}

/// `BDAT <size> [LAST]` (case-insensitive, any blanks between): the
/// chunk's size and whether it is the last; `None` for any other line.
fn bdat(line: &[u8]) -> Option<(u64, bool)> {
    let mut words = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty());
    if !words.next()?.eq_ignore_ascii_case(b"BDAT") {
        return None;
    }
    let size = words.next()?;
    if !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(size).ok()?.parse::<u64>().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some((size, last))
}

fn on_line(
    state: &mut State,
    line: &[u8],
    complete: bool,
    limits: &Limits,
    stats: &mut NormalizeStats,
    sink: &mut impl Sink,
) {
    match state {
        State::Command | State::Chunked(_) => {
            if let Some((size, last)) = bdat(line).filter(|_| complete) {
                let mime = match std::mem::replace(state, State::Command) {
                    State::Chunked(mime) => mime,
                    _ => {
                        sink.data(line);
                        sink.data(b"\n");
                        sink.boundary();
                        stats.smtp_messages += 1;
                        Box::default()
                    }
                };
                *state = State::Chunk {
                    mime,
                    left: size,
                    last,
                };
                return;
            }
            if let State::Chunked(mime) = state {
                // Not the next chunk: the message ends with what it has.
                mime.finish(sink);
                *state = State::Command;
            }
            sink.data(line);
            sink.data(b"\n");
            if complete && line.trim_ascii().eq_ignore_ascii_case(b"DATA") {
                sink.boundary();
                stats.smtp_messages += 1;
                *state = State::Data(Box::default());
            }
        }
        State::Data(mime) => {
            if complete && line == b"." {
                mime.finish(sink);
                *state = State::Command;
                return;
            }
            let line = match line.strip_prefix(b".") {
                Some(unstuffed) if complete => unstuffed,
                _ => line,
            };
            mime.line(line, complete, limits, stats, sink);
        }
        // Chunk bytes never reach the line splitter of commands.
        State::Chunk { .. } => {}
    }
}

impl Smtp {
    /// A session expecting commands.
    pub fn new() -> Self {
        Smtp {
            state: State::Command,
            line: Vec::new(),
            chunk_line: Vec::new(),
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
        loop {
            if let State::Chunk { mime, left, last } = &mut self.state {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                let (now, later) = rest.split_at(n);
                rest = later;
                *left -= n as u64;
                let mut to = Feed {
                    target: Target::Message(mime),
                    limits,
                    stats,
                    sink,
                };
                split_lines(&mut self.chunk_line, now, limits.max_line_bytes, &mut to);
                if *left > 0 {
                    return;
                }
                let last = *last;
                self.end_chunk(last, limits, stats, sink);
                continue;
            }
            if rest.is_empty() {
                return;
            }
            let mut to = Feed {
                target: Target::Session(&mut self.state),
                limits,
                stats,
                sink,
            };
            let n = split_lines(&mut self.line, rest, limits.max_line_bytes, &mut to);
            rest = rest.get(n..).unwrap_or_default();
        }
    }

    /// A `BDAT` chunk ended: the message waits for the next one, or ends
    /// with its `LAST`.
    fn end_chunk(
        &mut self,
        last: bool,
        limits: &Limits,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) {
        let State::Chunk { mut mime, .. } = std::mem::replace(&mut self.state, State::Command)
        else {
            return;
        };
        if last {
            self.end_chunked(&mut mime, limits, stats, sink);
        } else {
            self.state = State::Chunked(mime);
        }
    }

    /// Ends a message sent in chunks: its unfinished last line, then the
    /// message.
    fn end_chunked(
        &mut self,
        mime: &mut Mime,
        limits: &Limits,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) {
        if !self.chunk_line.is_empty() {
            let line = std::mem::take(&mut self.chunk_line);
            mime.line(&line, true, limits, stats, sink);
        }
        mime.finish(sink);
        self.state = State::Command;
    }

    /// Bytes are missing: the current message is ended and the rest is
    /// parsed as commands again.
    pub fn gap(&mut self, sink: &mut impl Sink) {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Data(mut mime) | State::Chunk { mut mime, .. } | State::Chunked(mut mime) => {
                mime.finish(sink)
            }
            State::Command => {}
        }
        self.line.clear();
        self.chunk_line.clear();
        sink.boundary();
    }

    /// The stream ended.
    pub fn finish(&mut self, limits: &Limits, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if !self.line.is_empty() {
            let piece = std::mem::take(&mut self.line);
            on_line(&mut self.state, &piece, false, limits, stats, sink);
        }
        match std::mem::replace(&mut self.state, State::Command) {
            State::Data(mut mime) => mime.finish(sink),
            State::Chunk { mut mime, .. } | State::Chunked(mut mime) => {
                self.end_chunked(&mut mime, limits, stats, sink)
            }
            State::Command => {}
        }
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
            let (c, st) = feed(session.as_bytes(), piece);
            let out = String::from_utf8_lossy(&c.joined()).into_owned();
            assert!(out.contains("绝密★"), "{out}");
            assert!(out.contains("QUIT"));
            assert_eq!(st.smtp_messages, 1);
        }
    }

    /// A whole session fed in pieces of `piece` bytes, with default limits.
    fn feed(session: &[u8], piece: usize) -> (Collect, NormalizeStats) {
        let mut s = Smtp::new();
        let mut c = Collect::default();
        let mut st = NormalizeStats::default();
        for p in session.chunks(piece) {
            s.push(p, &Limits::default(), &mut st, &mut c);
        }
        s.finish(&Limits::default(), &mut st, &mut c);
        (c, st)
    }

    fn normalized(session: &[u8], piece: usize) -> Vec<Vec<u8>> {
        // Unit edges depend on where pieces end; the bytes do not.
        vec![feed(session, piece).0.units.concat()]
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

    /// A session sending `message` in `BDAT` chunks of the given sizes
    /// (the last marked `LAST`), then `QUIT`.
    fn chunked(message: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut session = b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n".to_vec();
        let mut rest = message;
        for (i, &n) in sizes.iter().enumerate() {
            let n = if i + 1 == sizes.len() { rest.len() } else { n };
            let (now, later) = rest.split_at(n);
            let last = if i + 1 == sizes.len() { " LAST" } else { "" };
            session.extend_from_slice(format!("BDAT {n}{last}\r\n").as_bytes());
            session.extend_from_slice(now);
            rest = later;
        }
        session.extend_from_slice(b"QUIT\r\n");
        session
    }

    #[test]
    fn bdat_chunks_make_one_mime_message_whatever_their_sizes() {
        use base64::Engine as _;
        let secret = "见附件。绝密★十年".repeat(40);
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
        let mut message = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        for line in b64.as_bytes().chunks(76) {
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
        // In chunks a lone dot is text, not the end of the message.
        message.extend_from_slice(b"--zz\r\n\r\n.\r\n..two dots\r\n--zz--\r\n");
        for sizes in [&[7, 100, 1][..], &[1, 1, 1, 1, 1], &[90, 61], &[10_000]] {
            let session = chunked(&message, sizes);
            for piece in [1, 3, 1000] {
                let (c, st) = feed(&session, piece);
                let out = String::from_utf8_lossy(&c.units.concat()).into_owned();
                assert!(
                    out.contains(&secret),
                    "sizes {sizes:?} piece {piece}: {out}"
                );
                assert!(out.contains("\n..two dots\n"), "{out}");
                assert!(out.ends_with("QUIT\n"), "{out}");
                assert_eq!(
                    out.matches("BDAT").count(),
                    1,
                    "later BDAT commands stay out of the message"
                );
                assert_eq!(st.smtp_messages, 1);
                assert_eq!(st.mime_parts_decoded, 1);
            }
        }
    }

    #[test]
    fn a_command_between_chunks_ends_the_message_with_what_it_has() {
        let session = b"BDAT 23\r\nSubject: x\r\n\r\n\xe7\xbb\x9d\xe5\xaf\x86\xe2\x98\x85RSET\r\nBDAT 0 LAST\r\nNOOP\r\n";
        let (c, st) = feed(session, session.len());
        let out = String::from_utf8_lossy(&c.units.concat()).into_owned();
        assert!(out.contains("绝密★"), "{out}");
        assert!(out.contains("RSET\n"), "{out}");
        assert!(out.ends_with("NOOP\n"), "{out}");
        assert_eq!(
            st.smtp_messages, 2,
            "RSET ended one message, BDAT 0 LAST was another"
        );
    }

    #[test]
    fn only_well_formed_bdat_commands_start_a_chunk() {
        assert_eq!(bdat(b"BDAT 10"), Some((10, false)));
        assert_eq!(bdat(b"bdat  10 last"), Some((10, true)));
        assert_eq!(bdat(b"BDAT 0 LAST"), Some((0, true)));
        for bad in [
            &b"BDAT"[..],
            b"BDAT x",
            b"BDAT -1",
            b"BDAT 10 LAST x",
            b"BDAT 10 FIRST",
            b"BDAT 99999999999999999999999",
            b"BDATA 10",
        ] {
            assert_eq!(bdat(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // Not a chunk: the bytes after it are commands.
        let mut s = Smtp::new();
        let mut c = Collect::default();
        let mut st = NormalizeStats::default();
        s.push(b"BDAT x\r\nNOOP\r\n", &Limits::default(), &mut st, &mut c);
        assert_eq!(c.units.concat(), b"BDAT x\nNOOP\n");
        assert_eq!(st.smtp_messages, 0);
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
