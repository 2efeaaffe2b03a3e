//! Text escapes of structured bodies, undone as a stream: JSON string
//! escapes (`\u673a\u5bc6`, surrogate pairs, `\n`, `\/`, ...) and HTML/XML
//! character references (`&#26426;`, `&#x5BC6;`, `&amp;`, `&starf;`).
//!
//! Both decoders copy plain runs through untouched (found with `memchr`)
//! and hold at most one unfinished escape between calls, so a body split
//! anywhere decodes the same. What is not a valid escape is passed on as
//! it is: the decoders never lose bytes, they only replace escapes.

use super::Sink;

/// UTF-8 of U+FFFD, written for a lone surrogate.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// Which structured text a body holds, as far as escapes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Markup {
    /// JSON: string escapes.
    Json,
    /// HTML or XML: character references.
    Html,
}

impl Markup {
    /// The markup a `Content-Type` value names: `application/json`,
    /// `+json` suffixes, `text/json`; `text/html`, `application/xhtml+xml`,
    /// `text/xml`, `application/xml` and `+xml` suffixes.
    pub fn from_content_type(value: &[u8]) -> Option<Markup> {
        let mime = value.split(|&b| b == b';').next().unwrap_or_default();
        let mime = mime.trim_ascii().to_ascii_lowercase();
        if mime.ends_with(b"/json") || mime.ends_with(b"+json") || mime.ends_with(b"/x-json") {
            Some(Markup::Json)
        } else if mime.ends_with(b"/html")
            || mime.ends_with(b"/xml")
            || mime.ends_with(b"+xml")
            || mime.ends_with(b"/xhtml")
        {
            Some(Markup::Html)
        } else {
            None
        }
    }

    /// The markup a body's first bytes look like: after optional
    /// whitespace (and a UTF-8 byte-order mark), `{` or `[` followed by a
    /// JSON value start is JSON, and `<` followed by a letter, `!` or `?`
    /// is HTML/XML. `None` for anything else (or too few bytes to tell).
    pub fn sniff(first: &[u8]) -> Option<Markup> {
        let body = first.strip_prefix(b"\xef\xbb\xbf").unwrap_or(first);
        let mut rest = body.iter().skip_while(|b| b.is_ascii_whitespace()).copied();
        match rest.next()? {
            b'{' => match rest.find(|b| !b.is_ascii_whitespace())? {
                b'"' | b'}' => Some(Markup::Json),
                _ => None,
            },
            b'[' => match rest.find(|b| !b.is_ascii_whitespace())? {
                b'"' | b'{' | b'[' | b']' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                    Some(Markup::Json)
                }
                _ => None,
            },
            b'<' => match rest.next()? {
                b'!' | b'?' => Some(Markup::Html),
                b if b.is_ascii_alphabetic() => Some(Markup::Html),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A streaming decoder for one [`Markup`].
#[derive(Clone, Debug)]
pub enum Unescaper {
    /// JSON string escapes.
    Json(JsonUnescaper),
    /// HTML/XML character references.
    Html(HtmlUnescaper),
}

impl Unescaper {
    /// A decoder for `markup`.
    pub fn new(markup: Markup) -> Self {
        match markup {
            Markup::Json => Unescaper::Json(JsonUnescaper::default()),
            Markup::Html => Unescaper::Html(HtmlUnescaper::default()),
        }
    }

    /// Decodes the next bytes into `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        match self {
            Unescaper::Json(j) => j.push(input, sink),
            Unescaper::Html(h) => h.push(input, sink),
        }
    }

    /// Ends the text: an unfinished escape is passed on as it is.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        match self {
            Unescaper::Json(j) => j.finish(sink),
            Unescaper::Html(h) => h.finish(sink),
        }
    }
}

/// Streaming JSON string-escape decoder. `\uXXXX` becomes the character in
/// UTF-8 (a surrogate pair one character; a lone surrogate U+FFFD), `\n`
/// `\t` `\r` `\b` `\f` `\"` `\/` `\\` their characters. A backslash before
/// anything else, or a `\u` without four hex digits, is kept as it is.
/// Escapes are decoded wherever they are (JSON allows them only inside
/// strings, where they matter; outside they do not occur in valid JSON).
#[derive(Clone, Debug, Default)]
pub struct JsonUnescaper {
    /// The unfinished escape (starting with `\`), at most 12 bytes
    /// (`\uD83D\uDE00`): every escape is decided by then.
    pending: Vec<u8>,
    out: Vec<u8>,
}

/// What the bytes held by a [`JsonUnescaper`] are.
enum JsonStep {
    /// Need more bytes.
    More,
    /// Decoded: append these bytes, drop `used` held bytes.
    Done { used: usize },
    /// Not an escape: pass the first `used` held bytes on as they are.
    Literal { used: usize },
}

impl JsonUnescaper {
    /// Decodes the next bytes into `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        if self.pending.is_empty() && memchr::memchr(b'\\', input).is_none() {
            sink.data(input);
            return;
        }
        self.out.clear();
        let mut rest = input;
        // Each round consumes at least one byte.
        while let Some((&b, later)) = rest.split_first() {
            if self.pending.is_empty() {
                match memchr::memchr(b'\\', rest) {
                    None => {
                        self.out.extend_from_slice(rest);
                        break;
                    }
                    Some(i) => {
                        let (plain, esc) = rest.split_at(i);
                        self.out.extend_from_slice(plain);
                        self.pending.push(b'\\');
                        rest = esc.get(1..).unwrap_or_default();
                        continue;
                    }
                }
            }
            self.feed(b);
            rest = later;
        }
        if !self.out.is_empty() {
            sink.data(&self.out);
        }
    }

    /// Reads one byte: plain, the start of an escape, or the next byte of
    /// the pending one. Bytes an escape turns out not to use are read
    /// again (at most 12 deep).
    fn feed(&mut self, b: u8) {
        if self.pending.is_empty() {
            if b == b'\\' {
                self.pending.push(b);
            } else {
                self.out.push(b);
            }
            return;
        }
        self.pending.push(b);
        let used = match self.decode_pending() {
            JsonStep::More => return,
            JsonStep::Done { used } | JsonStep::Literal { used } => used,
        };
        let held = std::mem::take(&mut self.pending);
        for &x in held.get(used..).unwrap_or_default() {
            self.feed(x);
        }
    }

    /// Looks at `pending` (starting with `\`): decodes what it can into
    /// `out`.
    fn decode_pending(&mut self) -> JsonStep {
        let p = &self.pending;
        let Some(&kind) = p.get(1) else {
            return JsonStep::More;
        };
        let simple = match kind {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'"' | b'/' | b'\\' | b'\'' => Some(kind),
            _ => None,
        };
        if let Some(c) = simple {
            self.out.push(c);
            return JsonStep::Done { used: 2 };
        }
        if kind != b'u' {
            // Keep the backslash; the next byte is read normally.
            self.out.push(b'\\');
            return JsonStep::Literal { used: 1 };
        }
        let first = match hex4(p.get(2..)) {
            Hex::More => return JsonStep::More,
            Hex::Bad => {
                self.out.extend_from_slice(b"\\u");
                return JsonStep::Literal { used: 2 };
            }
            Hex::Value(v) => v,
        };
        if (0xd800..0xdc00).contains(&first) {
            // A high surrogate: a `\uDC00`-`\uDFFF` should follow.
            match (p.get(6), p.get(7)) {
                (None, _) | (Some(b'\\'), None) => return JsonStep::More,
                (Some(b'\\'), Some(b'u')) => match hex4(p.get(8..)) {
                    Hex::More => return JsonStep::More,
                    Hex::Value(low) if (0xdc00..0xe000).contains(&low) => {
                        let c = 0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00);
                        push_char(&mut self.out, c);
                        return JsonStep::Done { used: 12 };
                    }
                    _ => {}
                },
                _ => {}
            }
            self.out.extend_from_slice(REPLACEMENT);
            return JsonStep::Done { used: 6 };
        }
        if (0xdc00..0xe000).contains(&first) {
            self.out.extend_from_slice(REPLACEMENT);
        } else {
            push_char(&mut self.out, first);
        }
        JsonStep::Done { used: 6 }
    }

    /// Ends the text: an unfinished escape is passed on as it is (a
    /// dangling high surrogate as U+FFFD).
    pub fn finish(&mut self, sink: &mut impl Sink) {
        if self.pending.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.pending);
        self.out.clear();
        match hex4(held.get(2..)) {
            Hex::Value(v) if held.get(1) == Some(&b'u') && (0xd800..0xdc00).contains(&v) => {
                self.out.extend_from_slice(REPLACEMENT);
                self.out
                    .extend_from_slice(held.get(6..).unwrap_or_default());
            }
            _ => self.out.extend_from_slice(&held),
        }
        sink.data(&self.out);
    }
}

enum Hex {
    More,
    Bad,
    Value(u32),
}

/// Four hex digits at the start of `b`.
fn hex4(b: Option<&[u8]>) -> Hex {
    let b = b.unwrap_or_default();
    let mut v = 0u32;
    for i in 0..4 {
        let Some(&c) = b.get(i) else {
            return Hex::More;
        };
        let Some(d) = char::from(c).to_digit(16) else {
            return Hex::Bad;
        };
        v = v << 4 | d;
    }
    Hex::Value(v)
}

/// Appends `c` in UTF-8 (U+FFFD if it is no character).
fn push_char(out: &mut Vec<u8>, c: u32) {
    let ch = char::from_u32(c).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

/// Longest character reference held between calls (`&#x0010FFFF;` and the
/// longest HTML5 entity names fit).
const MAX_REFERENCE: usize = 40;

/// Streaming HTML/XML character-reference decoder: `&#26426;` and
/// `&#x5BC6;` (the `;` may be missing, as browsers accept), the XML
/// entities and every HTML5 named reference (`&amp;`, `&nbsp;`, `&starf;`;
/// with their `;`). Anything else after `&` is kept as it is. Invalid code
/// points (0, surrogates, past U+10FFFF) become U+FFFD, as in browsers.
#[derive(Clone, Debug, Default)]
pub struct HtmlUnescaper {
    /// The unfinished reference (starting with `&`).
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl HtmlUnescaper {
    /// Decodes the next bytes into `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        if self.pending.is_empty() && memchr::memchr(b'&', input).is_none() {
            sink.data(input);
            return;
        }
        self.out.clear();
        let mut rest = input;
        // Each round consumes at least one byte.
        while let Some((&b, later)) = rest.split_first() {
            if self.pending.is_empty() {
                match memchr::memchr(b'&', rest) {
                    None => {
                        self.out.extend_from_slice(rest);
                        break;
                    }
                    Some(i) => {
                        let (plain, amp) = rest.split_at(i);
                        self.out.extend_from_slice(plain);
                        self.pending.push(b'&');
                        rest = amp.get(1..).unwrap_or_default();
                        continue;
                    }
                }
            }
            if self.reference_byte(b) {
                rest = later;
            }
            // Otherwise the byte ended the reference and is read again
            // with nothing pending.
        }
        if !self.out.is_empty() {
            sink.data(&self.out);
        }
    }

    /// Adds `b` to the pending reference; returns whether `b` was taken
    /// (false: the reference ended before it, `b` is to be read again).
    fn reference_byte(&mut self, b: u8) -> bool {
        let numeric = self.pending.get(1) == Some(&b'#');
        let hex = numeric && matches!(self.pending.get(2), Some(b'x' | b'X'));
        let body_len = self.pending.len() - 1 - usize::from(numeric) - usize::from(hex);
        let fits = self.pending.len() < MAX_REFERENCE;
        let part = if numeric {
            (hex && b.is_ascii_hexdigit()) || (!hex && b.is_ascii_digit())
        } else {
            b.is_ascii_alphanumeric()
        };
        if b == b'#' && self.pending.len() == 1 {
            self.pending.push(b);
            return true;
        }
        if numeric && !hex && body_len == 0 && matches!(b, b'x' | b'X') && self.pending.len() == 2 {
            self.pending.push(b);
            return true;
        }
        if part && fits {
            self.pending.push(b);
            return true;
        }
        if b == b';' {
            self.pending.push(b);
            self.resolve(true);
            return true;
        }
        self.resolve(false);
        false
    }

    /// Ends the pending reference (`closed`: by its `;`) and writes its
    /// character, or its bytes as they are if it is none.
    fn resolve(&mut self, closed: bool) {
        let held = std::mem::take(&mut self.pending);
        let name = held
            .get(1..held.len() - usize::from(closed))
            .unwrap_or_default();
        if let Some(digits) = name.strip_prefix(b"#") {
            let (digits, radix) = match digits.split_first() {
                Some((b'x' | b'X', d)) => (d, 16),
                _ => (digits, 10),
            };
            if !digits.is_empty() {
                let value = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| u32::from_str_radix(d, radix).ok())
                    .unwrap_or(u32::MAX);
                let c = if value == 0 { 0xfffd } else { value };
                push_char(&mut self.out, c);
                return;
            }
        } else if closed {
            if let Some(text) = std::str::from_utf8(name)
                .ok()
                .and_then(quick_xml::escape::resolve_html5_entity)
            {
                self.out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        self.out.extend_from_slice(&held);
    }

    /// Ends the text: an unfinished numeric reference is decoded (browsers
    /// do), anything else pending passed on as it is.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        if self.pending.is_empty() {
            return;
        }
        self.out.clear();
        self.resolve(false);
        sink.data(&self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Collect;

    fn run(markup: Markup, input: &[u8], piece: usize) -> Vec<u8> {
        let mut u = Unescaper::new(markup);
        let mut c = Collect::default();
        for p in input.chunks(piece.max(1)) {
            u.push(p, &mut c);
        }
        u.finish(&mut c);
        c.units.concat()
    }

    /// Decodes `input` whole and in pieces of every small size; all agree.
    fn decode(markup: Markup, input: &str) -> String {
        let whole = run(markup, input.as_bytes(), usize::MAX);
        for piece in 1..=13 {
            assert_eq!(
                run(markup, input.as_bytes(), piece),
                whole,
                "{input:?} in pieces of {piece}"
            );
        }
        String::from_utf8_lossy(&whole).into_owned()
    }

    #[test]
    fn json_unicode_escapes_become_utf8() {
        assert_eq!(
            decode(Markup::Json, r#"{"note":"\u673a\u5bc6\u2605","n":1}"#),
            r#"{"note":"机密★","n":1}"#
        );
        assert_eq!(decode(Markup::Json, r#"\u7EDD\u5BC6"#), "绝密");
    }

    #[test]
    fn json_surrogate_pairs_join_and_lone_surrogates_are_replaced() {
        assert_eq!(decode(Markup::Json, r#"a\ud83d\ude00b"#), "a😀b");
        assert_eq!(decode(Markup::Json, r#"a\ud83dxb"#), "a\u{fffd}xb");
        assert_eq!(decode(Markup::Json, r#"a\ude00b"#), "a\u{fffd}b");
        assert_eq!(decode(Markup::Json, r#"a\ud83d\u0041b"#), "a\u{fffd}Ab");
        assert_eq!(decode(Markup::Json, r#"end\ud83d"#), "end\u{fffd}");
    }

    #[test]
    fn json_short_escapes_are_decoded_and_unknown_ones_kept() {
        assert_eq!(
            decode(Markup::Json, r#"a\nb\tc\/d\\e\"f\rg\q"#),
            "a\nb\tc/d\\e\"f\rg\\q"
        );
        // An escaped backslash is not the start of `\u`.
        assert_eq!(decode(Markup::Json, r#"\\u673a"#), r"\u673a");
        assert_eq!(decode(Markup::Json, r#"\u67zz \u12"#), r"\u67zz \u12");
        assert_eq!(decode(Markup::Json, "tail\\"), "tail\\");
    }

    #[test]
    fn json_without_escapes_passes_through_unchanged() {
        let body = r#"{"id":"110101199003071233","v":[1,2,3]}"#;
        assert_eq!(decode(Markup::Json, body), body);
    }

    #[test]
    fn html_numeric_references_become_utf8() {
        assert_eq!(
            decode(Markup::Html, "<p>&#26426;&#23494;&#x2605;</p>"),
            "<p>机密★</p>"
        );
        assert_eq!(decode(Markup::Html, "&#X7EDD;&#x5bc6"), "绝密");
        assert_eq!(decode(Markup::Html, "&#26426&#23494 x"), "机密 x");
        assert_eq!(
            decode(Markup::Html, "&#0; &#xD800; &#99999999999;"),
            "\u{fffd} \u{fffd} \u{fffd}"
        );
    }

    #[test]
    fn html_named_references_are_decoded_and_unknown_ones_kept() {
        assert_eq!(
            decode(
                Markup::Html,
                "机密&starf; a&amp;b &lt;x&gt; &quot;q&quot; &nbsp;&apos;"
            ),
            "机密★ a&b <x> \"q\" \u{a0}'"
        );
        assert_eq!(
            decode(Markup::Html, "&nosuch; & &; &#; &#x; AT&T"),
            "&nosuch; & &; &#; &#x; AT&T"
        );
        let long = format!("&{};", "a".repeat(80));
        assert_eq!(decode(Markup::Html, &long), long);
    }

    #[test]
    fn content_types_and_first_bytes_name_the_markup() {
        for (ct, m) in [
            (&b"application/json; charset=utf-8"[..], Some(Markup::Json)),
            (b"application/vnd.api+json", Some(Markup::Json)),
            (b"Text/HTML", Some(Markup::Html)),
            (b"application/xml", Some(Markup::Html)),
            (b"image/svg+xml", Some(Markup::Html)),
            (b"text/plain", None),
            (b"application/x-www-form-urlencoded", None),
        ] {
            assert_eq!(Markup::from_content_type(ct), m, "{ct:?}");
        }
        for (body, m) in [
            (&b"  {\"a\":1}"[..], Some(Markup::Json)),
            (b"\xef\xbb\xbf[1,2]", Some(Markup::Json)),
            (b"[\"x\"]", Some(Markup::Json)),
            (b"<!DOCTYPE html>", Some(Markup::Html)),
            (b"<?xml version", Some(Markup::Html)),
            (b"<html>", Some(Markup::Html)),
            (b"{x", None),
            (b"[Section]", None),
            (b"< 3", None),
            (b"id=1&a=2", None),
            (b"\x16\x03\x01", None),
        ] {
            assert_eq!(Markup::sniff(body), m, "{body:?}");
        }
    }
}
