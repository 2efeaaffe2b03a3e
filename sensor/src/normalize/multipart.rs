//! `multipart/form-data` (and other multipart) HTTP bodies, split into
//! their parts byte-exactly: each part's header block and each part's
//! content become units of their own, so the content stage sees an
//! uploaded file from its first byte (a spreadsheet of ID numbers posted
//! through a web form is read as the spreadsheet it is).
//!
//! Unlike the line-based MIME reader used for mail, nothing is changed in
//! a part's bytes (binary uploads keep their CR LF pairs). The delimiter
//! (`CRLF--boundary`) may be split across calls: at most its length minus
//! one byte is held back. Part headers are passed on and kept up to
//! [`MAX_PART_HEAD`] bytes; a longer header block is passed on as content.

use super::Sink;

/// Longest part header block looked for.
pub const MAX_PART_HEAD: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// After a delimiter line's boundary: `--` (the end) or the line's end.
    AfterDelimiter,
    /// Reading a part's header block.
    Head,
    /// Inside a part's content.
    Content,
    /// After the closing delimiter.
    Epilogue,
}

/// The splitter of one multipart body.
#[derive(Debug)]
pub struct Multipart {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    state: State,
    held: Vec<u8>,
    /// The synthetic CR LF put before the body is still at the start of
    /// `held`.
    fresh: bool,
}

/// The boundary parameter of a `multipart/*` `Content-Type` value.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_ascii_start().starts_with(b"multipart/") {
        return None;
    }
    let at = lower.windows(9).position(|w| w == b"boundary=")? + 9;
    let rest = content_type.get(at..)?;
    let value: Vec<u8> = match rest.strip_prefix(b"\"") {
        Some(q) => q.iter().take_while(|&&b| b != b'"').copied().collect(),
        None => rest
            .iter()
            .take_while(|&&b| b != b';' && !b.is_ascii_whitespace())
            .copied()
            .collect(),
    };
    (!value.is_empty() && value.len() <= 200).then_some(value)
}

impl Multipart {
    /// A splitter for `boundary`.
    pub fn new(boundary: &[u8]) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        Multipart {
            delimiter,
            state: State::Preamble,
            // The body's start counts as a line start: a first delimiter
            // without a CR LF before it is still found.
            held: b"\r\n".to_vec(),
            fresh: true,
        }
    }

    /// Splits the next body bytes into `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        self.held.extend_from_slice(input);
        let buf = std::mem::take(&mut self.held);
        let used = self.run(&buf, false, sink);
        self.held = buf.get(used..).unwrap_or_default().to_vec();
    }

    /// The body ended.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        let buf = std::mem::take(&mut self.held);
        let used = self.run(&buf, true, sink);
        let rest = buf.get(used..).unwrap_or_default();
        let rest = if self.fresh {
            rest.strip_prefix(b"\r\n").unwrap_or(rest)
        } else {
            rest
        };
        self.fresh = false;
        sink.data(rest);
        sink.boundary();
    }

    /// Processes `buf`; returns how much of it was used (the rest is held
    /// for the next call). With `last`, nothing more comes.
    fn run(&mut self, buf: &[u8], last: bool, sink: &mut impl Sink) -> usize {
        let mut at = 0;
        // Every round consumes bytes or changes state, or returns.
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            match self.state {
                State::Preamble | State::Content => {
                    let finder = memchr::memmem::Finder::new(&self.delimiter);
                    match finder.find(rest) {
                        Some(i) => {
                            let before = rest.get(..i).unwrap_or_default();
                            let before = if std::mem::take(&mut self.fresh) {
                                // The synthetic CR LF at the start.
                                before.strip_prefix(b"\r\n").unwrap_or(before)
                            } else {
                                before
                            };
                            sink.data(before);
                            sink.boundary();
                            at += i + self.delimiter.len();
                            self.state = State::AfterDelimiter;
                        }
                        None => {
                            let keep = if last {
                                0
                            } else {
                                (self.delimiter.len() - 1).min(rest.len())
                            };
                            let pass = rest.len() - keep;
                            let now = rest.get(..pass).unwrap_or_default();
                            let now = if self.fresh {
                                if now.len() < 2 {
                                    return at;
                                }
                                self.fresh = false;
                                now.strip_prefix(b"\r\n").unwrap_or(now)
                            } else {
                                now
                            };
                            sink.data(now);
                            return at + pass;
                        }
                    }
                }
                State::AfterDelimiter => {
                    if rest.len() < 2 && !last {
                        return at;
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Epilogue;
                        at += 2;
                        continue;
                    }
                    // Transport padding, then the line's end.
                    match memchr::memchr(b'\n', rest) {
                        Some(i) if i <= 256 => {
                            at += i + 1;
                            self.state = State::Head;
                        }
                        Some(_) => self.state = State::Content,
                        None if rest.len() > 256 || last => self.state = State::Content,
                        None => return at,
                    }
                }
                State::Head => {
                    let end = memchr::memmem::find(rest, b"\r\n\r\n")
                        .map(|i| i + 4)
                        .or_else(|| (rest.starts_with(b"\r\n")).then_some(2));
                    match end {
                        Some(n) => {
                            sink.data(rest.get(..n).unwrap_or_default());
                            sink.boundary();
                            at += n;
                            self.state = State::Content;
                        }
                        None if rest.len() >= MAX_PART_HEAD || last => {
                            self.state = State::Content;
                        }
                        None => return at,
                    }
                }
                State::Epilogue => {
                    sink.data(rest);
                    return buf.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Collect;

    fn split(body: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut m = Multipart::new(b"----XyZ");
        let mut c = Collect::default();
        for p in body.chunks(piece.max(1)) {
            m.push(p, &mut c);
        }
        m.finish(&mut c);
        c.units
    }

    #[test]
    fn parts_are_split_byte_exactly_in_any_pieces() {
        let file = b"PK\x03\x04 binary\r\nwith CR LF\r\n--not-the-boundary\r\n";
        let mut body = b"------XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue 1\r\n------XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.zip\"\r\nContent-Type: application/zip\r\n\r\n".to_vec();
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n------XyZ--\r\nepilogue");
        let whole = split(&body, usize::MAX);
        assert!(whole.iter().any(|u| u == b"value 1"), "{whole:?}");
        assert!(whole.iter().any(|u| u == file), "{whole:?}");
        for piece in [1, 2, 3, 5, 8, 13, 100] {
            let units = split(&body, piece);
            assert!(units.iter().any(|u| u == file), "piece {piece}: {units:?}");
            assert_eq!(units.concat(), whole.concat(), "piece {piece}");
        }
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary(b"multipart/form-data; boundary=----WebKitFormBoundary7MA4"),
            Some(b"----WebKitFormBoundary7MA4".to_vec())
        );
        assert_eq!(
            boundary(b"Multipart/Mixed; boundary=\"a b\"; x=1"),
            Some(b"a b".to_vec())
        );
        assert_eq!(boundary(b"text/plain; boundary=x"), None);
        assert_eq!(boundary(b"multipart/form-data"), None);
    }

    #[test]
    fn a_body_without_delimiters_is_passed_on_whole() {
        let units = split(b"no parts here at all", 3);
        assert_eq!(units.concat(), b"no parts here at all");
    }
}
