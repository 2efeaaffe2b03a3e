//! Decoding of one HTTP body after framing: its content codings, outermost
//! first, then the text decoding its type asks for (URL decoding of forms,
//! JSON string escapes, HTML/XML character references).
//!
//! Evasion hardening, after what libhtp lets through to a server:
//!
//! * A body labelled compressed that does not inflate (plain text sent as
//!   `Content-Encoding: gzip`) is scanned raw and counted
//!   (`encoding_not_compressed`): each layer holds its first input and
//!   output until it is sure ([`CONFIRM_BYTES`]), and hands on the raw
//!   bytes instead if inflation fails before then.
//! * A coding it does not know (`br`, `zstd`, made-up names) stops the
//!   layers there: what is left is scanned as it is (counted,
//!   `encoding_unknown`).
//! * Stacked codings (`Content-Encoding: gzip, deflate`, or a compressing
//!   `Transfer-Encoding`) are undone in reverse order, at most
//!   [`MAX_LAYERS`] deep (more: counted `encoding_layers_capped`, the
//!   inner ones left as they are).

use super::decode::{Compression, Inflater, UrlDecoder};
use super::escape::{Markup, Unescaper};
use super::multipart::Multipart;
use super::{Limits, NormalizeStats, Sink};

/// Most content-coding layers undone per body (libhtp's default is 2).
pub const MAX_LAYERS: usize = 3;

/// Input or output a layer sees before it trusts its inflation; until then
/// it holds both, and on failure passes the input on raw instead.
pub const CONFIRM_BYTES: usize = 4096;

/// Bytes a body's first part is held for to sniff JSON or HTML.
const SNIFF_BYTES: usize = 64;

/// One content coding named by a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `gzip`, `x-gzip`.
    Gzip,
    /// `deflate`, `x-deflate` (zlib or raw).
    Deflate,
    /// `identity` or empty: nothing to undo.
    Identity,
    /// Anything else (`br`, `zstd`, `compress`, unknown names).
    Unknown,
}

impl Coding {
    /// Reads one coding token.
    pub fn parse(token: &[u8]) -> Coding {
        let t = token.trim_ascii();
        let t = t
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if t.eq_ignore_ascii_case(b"gzip") || t.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else if t.eq_ignore_ascii_case(b"deflate") || t.eq_ignore_ascii_case(b"x-deflate") {
            Coding::Deflate
        } else if t.is_empty() || t.eq_ignore_ascii_case(b"identity") {
            Coding::Identity
        } else {
            Coding::Unknown
        }
    }

    /// Every coding of a comma-separated header value, in the order they
    /// were applied.
    pub fn list(value: &[u8]) -> impl Iterator<Item = Coding> + '_ {
        value
            .split(|&b| b == b',')
            .map(Coding::parse)
            .filter(|c| *c != Coding::Identity)
    }
}

/// How a body's text is decoded after its codings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// A type naming JSON, HTML or XML.
    Markup(Markup),
    /// Any other type, or none: JSON or HTML if the body's first bytes
    /// look like it, else as it is.
    Sniff,
    /// Passed on as it is (types that are never text, e.g. images).
    Plain,
    /// `multipart/*` with this boundary: split into its parts.
    Multipart(Vec<u8>),
}

/// One content-coding layer: an inflater with a raw fallback.
#[derive(Debug)]
struct Layer {
    inflater: Inflater,
    /// Until confirmed: the raw input so far.
    held_in: Vec<u8>,
    /// Until confirmed: the inflated output so far.
    held_out: Vec<u8>,
    confirmed: bool,
    /// Inflation failed before it was confirmed: input passes raw.
    raw: bool,
}

impl Layer {
    fn new(kind: Compression, limits: &Limits) -> Self {
        Layer {
            inflater: Inflater::new(kind, limits),
            held_in: Vec::new(),
            held_out: Vec::new(),
            confirmed: false,
            raw: false,
        }
    }
}

/// Collects a layer's output while it is unconfirmed.
struct Hold<'a>(&'a mut Vec<u8>);

impl Sink for Hold<'_> {
    fn data(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn boundary(&mut self) {}
}

/// The text stage at the end of the chain.
#[derive(Debug)]
enum TextStage {
    Plain,
    Url(UrlDecoder),
    Unescape(Unescaper),
    /// Holding the first bytes to choose.
    Sniffing(Vec<u8>),
    /// Split into parts.
    Multipart(Box<Multipart>),
}

/// The decoders of one body.
#[derive(Debug)]
pub struct BodyDecoder {
    /// Outermost (last applied) first.
    layers: Vec<Layer>,
    text: TextStage,
}

impl BodyDecoder {
    /// Decoders for a body whose codings (in the order applied) and text
    /// kind are given; counts what it sets up.
    pub fn new(
        codings: &[Coding],
        text: Text,
        limits: &Limits,
        stats: &mut NormalizeStats,
    ) -> Self {
        let mut layers = Vec::new();
        // Undo the last-applied coding first; an unknown coding ends the
        // layers (what is inside it cannot be read).
        for (n, c) in codings.iter().rev().enumerate() {
            let kind = match c {
                Coding::Gzip => Compression::Gzip,
                Coding::Deflate => Compression::Deflate,
                Coding::Identity => continue,
                Coding::Unknown => {
                    stats.encoding_unknown += 1;
                    break;
                }
            };
            if n >= MAX_LAYERS {
                stats.encoding_layers_capped += 1;
                break;
            }
            layers.push(Layer::new(kind, limits));
        }
        if !layers.is_empty() {
            stats.bodies_inflated += 1;
        }
        let text = match text {
            Text::Form => TextStage::Url(UrlDecoder::new()),
            Text::Markup(m) => {
                count_markup(m, stats);
                TextStage::Unescape(Unescaper::new(m))
            }
            Text::Sniff => TextStage::Sniffing(Vec::new()),
            Text::Plain => TextStage::Plain,
            Text::Multipart(b) => {
                stats.multipart_bodies += 1;
                TextStage::Multipart(Box::new(Multipart::new(&b)))
            }
        };
        BodyDecoder { layers, text }
    }

    /// Decodes the next body bytes into `sink`.
    pub fn push(&mut self, bytes: &[u8], stats: &mut NormalizeStats, sink: &mut impl Sink) {
        let mut tail = TextSink {
            text: &mut self.text,
            stats: NormalizeStats::default(),
            sink,
        };
        push_layers(&mut self.layers, bytes, stats, &mut tail);
        let local = std::mem::take(&mut tail.stats);
        stats.add(&local);
    }

    /// The body ended: flushes every stage.
    pub fn finish(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        let mut tail = TextSink {
            text: &mut self.text,
            stats: NormalizeStats::default(),
            sink,
        };
        finish_layers(&mut self.layers, stats, &mut tail);
        tail.finish();
        let local = std::mem::take(&mut tail.stats);
        stats.add(&local);
    }
}

fn count_markup(m: Markup, stats: &mut NormalizeStats) {
    match m {
        Markup::Json => stats.bodies_json_unescaped += 1,
        Markup::Html => stats.bodies_html_unescaped += 1,
    }
}

/// Output of the innermost layer: through the text stage to the sink.
struct TextSink<'a, S: Sink> {
    text: &'a mut TextStage,
    stats: NormalizeStats,
    sink: &'a mut S,
}

impl<S: Sink> TextSink<'_, S> {
    fn finish(&mut self) {
        match self.text {
            TextStage::Plain => {}
            TextStage::Url(u) => u.finish(self.sink),
            TextStage::Unescape(u) => u.finish(self.sink),
            TextStage::Multipart(m) => m.finish(self.sink),
            TextStage::Sniffing(_) => {
                self.choose();
                self.finish();
            }
        }
    }

    /// Chooses the text stage on the held first bytes and passes them on.
    fn choose(&mut self) {
        let TextStage::Sniffing(held) = self.text else {
            return;
        };
        let held = std::mem::take(held);
        *self.text = match Markup::sniff(&held) {
            Some(m) => {
                count_markup(m, &mut self.stats);
                TextStage::Unescape(Unescaper::new(m))
            }
            None => TextStage::Plain,
        };
        self.data(&held);
    }
}

impl<S: Sink> Sink for TextSink<'_, S> {
    fn data(&mut self, bytes: &[u8]) {
        match self.text {
            TextStage::Plain => self.sink.data(bytes),
            TextStage::Url(u) => u.push(bytes, self.sink),
            TextStage::Unescape(u) => u.push(bytes, self.sink),
            TextStage::Multipart(m) => m.push(bytes, self.sink),
            TextStage::Sniffing(held) => {
                if held.is_empty() && bytes.len() >= SNIFF_BYTES {
                    *self.text = match Markup::sniff(bytes) {
                        Some(m) => {
                            count_markup(m, &mut self.stats);
                            TextStage::Unescape(Unescaper::new(m))
                        }
                        None => TextStage::Plain,
                    };
                    self.data(bytes);
                    return;
                }
                held.extend_from_slice(bytes);
                if held.len() >= SNIFF_BYTES {
                    self.choose();
                }
            }
        }
    }

    fn boundary(&mut self) {
        self.sink.boundary();
    }
}

/// Output of one layer: into the layers inside it.
struct LayerSink<'a, 'b, S: Sink> {
    rest: &'a mut [Layer],
    stats: NormalizeStats,
    tail: &'a mut TextSink<'b, S>,
}

impl<S: Sink> Sink for LayerSink<'_, '_, S> {
    fn data(&mut self, bytes: &[u8]) {
        push_layers(self.rest, bytes, &mut self.stats, self.tail);
    }
    fn boundary(&mut self) {
        self.tail.boundary();
    }
}

fn push_layers<S: Sink>(
    layers: &mut [Layer],
    bytes: &[u8],
    stats: &mut NormalizeStats,
    tail: &mut TextSink<'_, S>,
) {
    let Some((layer, rest)) = layers.split_first_mut() else {
        tail.data(bytes);
        return;
    };
    let mut next = LayerSink {
        rest,
        stats: NormalizeStats::default(),
        tail,
    };
    if layer.raw {
        next.data(bytes);
    } else if layer.confirmed {
        layer.inflater.push(bytes, stats, &mut next);
        if layer.inflater.failed() {
            // Corrupt after a good start: the rest of the body is passed
            // on raw (the inflated part was real).
            layer.raw = true;
        }
    } else {
        layer.held_in.extend_from_slice(bytes);
        layer
            .inflater
            .push(bytes, stats, &mut Hold(&mut layer.held_out));
        if layer.inflater.failed() {
            stats.encoding_not_compressed += 1;
            tracing::debug!(
                event = "encoding_not_compressed",
                "HTTP body labelled compressed does not inflate; scanned raw"
            );
            layer.raw = true;
            layer.held_out = Vec::new();
            let held = std::mem::take(&mut layer.held_in);
            next.data(&held);
        } else if layer.held_in.len() >= CONFIRM_BYTES || layer.held_out.len() >= CONFIRM_BYTES {
            confirm(layer, &mut next);
        }
    }
    let local = std::mem::take(&mut next.stats);
    stats.add(&local);
}

/// Trusts a layer's inflation: its held output goes on.
fn confirm(layer: &mut Layer, next: &mut impl Sink) {
    layer.confirmed = true;
    layer.held_in = Vec::new();
    let out = std::mem::take(&mut layer.held_out);
    next.data(&out);
}

fn finish_layers<S: Sink>(
    layers: &mut [Layer],
    stats: &mut NormalizeStats,
    tail: &mut TextSink<'_, S>,
) {
    let Some((layer, rest)) = layers.split_first_mut() else {
        return;
    };
    {
        let mut next = LayerSink {
            rest: &mut *rest,
            stats: NormalizeStats::default(),
            tail: &mut *tail,
        };
        if !layer.raw {
            if layer.confirmed {
                layer.inflater.finish(stats, &mut next);
            } else {
                layer.inflater.finish(stats, &mut Hold(&mut layer.held_out));
                if layer.inflater.failed() || layer.held_out.is_empty() {
                    // Nothing came out of it: what came in is the body.
                    if !layer.held_in.is_empty() {
                        stats.encoding_not_compressed += 1;
                    }
                    let held = std::mem::take(&mut layer.held_in);
                    next.data(&held);
                } else {
                    confirm(layer, &mut next);
                }
            }
        }
        let local = std::mem::take(&mut next.stats);
        stats.add(&local);
    }
    finish_layers(rest, stats, tail);
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::normalize::Collect;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `body` whole and in pieces; all agree. Returns the text and
    /// the counters of the whole run.
    fn decode(codings: &[Coding], text: Text, body: &[u8]) -> (String, NormalizeStats) {
        let run = |piece: usize| {
            let mut stats = NormalizeStats::default();
            let mut d = BodyDecoder::new(codings, text.clone(), &Limits::default(), &mut stats);
            let mut c = Collect::default();
            for p in body.chunks(piece) {
                d.push(p, &mut stats, &mut c);
            }
            d.finish(&mut stats, &mut c);
            (c.units.concat(), stats)
        };
        let (whole, stats) = run(usize::MAX);
        for piece in [1, 7, 100, 5000] {
            let (c, s) = run(piece);
            assert_eq!(c, whole, "piece {piece}");
            assert_eq!(s, stats, "piece {piece}");
        }
        (String::from_utf8_lossy(&whole).into_owned(), stats)
    }

    #[test]
    fn a_plain_body_labelled_gzip_is_scanned_raw_and_counted() {
        let (t, s) = decode(&[Coding::Gzip], Text::Sniff, "note: 绝密★ plain".as_bytes());
        assert_eq!(t, "note: 绝密★ plain");
        assert_eq!(s.encoding_not_compressed, 1);
        // A long one too (past the confirmation window).
        let long = "绝密★ 正文 ".repeat(2000);
        let (t, s) = decode(&[Coding::Deflate], Text::Sniff, long.as_bytes());
        assert_eq!(t, long);
        assert_eq!(s.encoding_not_compressed, 1);
    }

    #[test]
    fn an_unknown_coding_is_scanned_as_it_is_and_counted() {
        let (t, s) = decode(&[Coding::Unknown], Text::Sniff, "机密 text".as_bytes());
        assert_eq!(t, "机密 text");
        assert_eq!(s.encoding_unknown, 1);
        assert_eq!(s.bodies_inflated, 0);
        // Inside an unknown coding nothing is undone; outside it is.
        let (t, s) = decode(
            &[Coding::Unknown, Coding::Gzip],
            Text::Sniff,
            &gzip("机密 inner".as_bytes()),
        );
        assert_eq!(t, "机密 inner");
        assert_eq!((s.encoding_unknown, s.bodies_inflated), (1, 1));
    }

    #[test]
    fn zlib_raw_deflate_and_mislabelled_gzip_all_inflate() {
        let text = "正文 绝密★ 正文".repeat(50);
        for (label, body) in [
            (Coding::Deflate, zlib(text.as_bytes())),
            (Coding::Deflate, raw_deflate(text.as_bytes())),
            (Coding::Deflate, gzip(text.as_bytes())),
            (Coding::Gzip, zlib(text.as_bytes())),
            (Coding::Gzip, raw_deflate(text.as_bytes())),
        ] {
            let (t, s) = decode(&[label], Text::Plain, &body);
            assert_eq!(t, text, "{label:?}");
            assert_eq!((s.encoding_not_compressed, s.decompress_errors), (0, 0));
        }
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse_order() {
        // `Content-Encoding: gzip, deflate`: gzip applied first.
        let body = zlib(&gzip("机密 stacked".as_bytes()));
        let (t, s) = decode(&[Coding::Gzip, Coding::Deflate], Text::Plain, &body);
        assert_eq!(t, "机密 stacked");
        assert_eq!(s.encoding_not_compressed, 0);
        // Four layers: three are undone, the innermost is left (counted).
        let four = gzip(&gzip(&gzip(&gzip(b"deep"))));
        let (t, s) = decode(&[Coding::Gzip; 4], Text::Plain, &four);
        assert_eq!(t, String::from_utf8_lossy(&gzip(b"deep")));
        assert_eq!(s.encoding_layers_capped, 1);
    }

    #[test]
    fn json_and_html_bodies_are_unescaped_by_type_or_by_sniffing() {
        let json = r#"{"note":"\u673a\u5bc6\u2605"}"#;
        let (t, s) = decode(&[], Text::Markup(Markup::Json), json.as_bytes());
        assert_eq!(t, r#"{"note":"机密★"}"#);
        assert_eq!(s.bodies_json_unescaped, 1);
        let (t, s) = decode(&[Coding::Gzip], Text::Sniff, &gzip(json.as_bytes()));
        assert_eq!(t, r#"{"note":"机密★"}"#);
        assert_eq!(s.bodies_json_unescaped, 1);
        let html = "<html><p>&#26426;&#23494;&starf;</p></html>";
        let (t, s) = decode(&[], Text::Sniff, html.as_bytes());
        assert_eq!(t, "<html><p>机密★</p></html>");
        assert_eq!(s.bodies_html_unescaped, 1);
        // Not markup: left alone.
        let (t, s) = decode(&[], Text::Sniff, br"id=1&x=\u673a");
        assert_eq!(t, r"id=1&x=\u673a");
        assert_eq!(s.bodies_json_unescaped + s.bodies_html_unescaped, 0);
    }

    #[test]
    fn coding_tokens_are_read_leniently() {
        let v: Vec<Coding> = Coding::list(b" X-GZIP , identity,deflate;q=1, br").collect();
        assert_eq!(v, [Coding::Gzip, Coding::Deflate, Coding::Unknown]);
    }
}
