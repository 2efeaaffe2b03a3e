//! PDF text: the strings the content streams show, mapped to Unicode
//! through the fonts' `ToUnicode` CMaps.
//!
//! A PDF is buffered whole (up to [`ContentLimits::max_pdf_bytes`],
//! charged to the shared [`ContentLimits::max_memory_bytes`] budget) because
//! what a content stream means depends on objects anywhere in the file:
//! the page's font resources, the fonts' `ToUnicode` streams, objects in
//! object streams. At the unit's end the buffer is read once, front to
//! back, object by object (`N G obj`), without the cross-reference table,
//! so a truncated file, a broken `xref` or an incremental update loses
//! nothing that is there:
//!
//! * streams are decoded (no filter, or a chain of up to four of
//!   `FlateDecode`, `LZWDecode`, `ASCII85Decode` and `ASCIIHexDecode`,
//!   with PNG or TIFF predictors: [`filter`]) with an expansion-ratio cap
//!   per stream and a cap on all decoded bytes of the file; images, font
//!   programs and cross-reference streams are not decoded;
//! * object streams (`/Type /ObjStm`) give their objects as if they were
//!   in the file;
//! * a stream holding `beginbfchar` or `beginbfrange` is a CMap
//!   ([`cmap`]); any other decoded stream is read as a content stream
//!   ([`text`]): page contents and form XObjects alike;
//! * the strings of `Tj`, `TJ`, `'` and `"` are mapped through the
//!   `ToUnicode` CMap of the font selected by `Tf` (resources of the form
//!   itself, else of the page whose `/Contents` names the stream, with
//!   inheritance through `/Parent`, else of the first 64 pages); with no CMap the
//!   string's bytes are passed on as they are (a simple font's
//!   WinAnsi/ASCII text, or GBK codes of a Chinese font with a predefined
//!   encoding, which the signatures' encodings match);
//! * document information and form values (`/Title`, `/Author`,
//!   `/Subject`, `/Keywords`, an annotation's `/Contents`, a field's
//!   `/V`; UTF-16BE with a byte order mark decoded), XMP metadata (its
//!   XML text) and embedded files (as they are) are passed on after the
//!   page text.
//!
//! Not extracted: encrypted PDFs (counted `pdf_unsupported`, nothing
//! passed on), streams with other filters (`RunLengthDecode`, the image
//! filters `DCTDecode`, `JBIG2Decode`, ...; counted), text drawn as
//! images or Type 3 glyph procedures, and the reading order of a page
//! (strings come in content-stream order).
//!
//! Why by hand rather than `lopdf` or `pdf-extract`: those load the whole
//! document into an object tree first, follow the cross-reference table
//! (so a truncated capture yields nothing), inflate streams without an
//! output bound and give no hook to cap objects or memory; on untrusted
//! input from the wire the sensor needs every one of those bounds.

pub mod cmap;
mod filter;
pub mod lex;
pub mod text;

use std::collections::{BTreeMap, HashMap};

use lex::{Lexer, Obj, Parser, Tok};

use super::{ContentLimits, ContentStats, Out};

/// Nodes one object may have when parsed.
const OBJECT_NODES: usize = 1 << 18;

/// Nodes of non-stream objects kept per file, all together (a node is
/// about 64 bytes, so this is about 64 MiB at most).
const KEPT_NODES: usize = 1 << 20;

/// Fonts read per resource dictionary (a page uses a few dozen at most);
/// this bounds the font look-up work per content stream.
const MAX_FONTS: usize = 256;

/// Pages whose fonts serve content streams no page names (form XObjects
/// without resources, pages missing from a cut capture).
const ANY_PAGES: usize = 64;

/// Output of one stream decoded before its ratio is checked.
const RATIO_FLOOR: u64 = 64 * 1024;

/// Dictionary keys whose string values are passed on as text.
const TEXT_KEYS: [&[u8]; 6] = [
    b"Title",
    b"Author",
    b"Subject",
    b"Keywords",
    b"Contents",
    b"V",
];

/// A PDF being buffered.
#[derive(Debug, Default)]
pub struct Pdf {
    buf: Vec<u8>,
    /// Bytes of the memory budget held.
    reserved: usize,
    /// Whether a cap stopped buffering.
    capped: bool,
}

impl Pdf {
    /// Buffers the next bytes, within the bounds (counted when hit).
    pub fn push(
        &mut self,
        bytes: &[u8],
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) {
        if self.capped || bytes.is_empty() {
            return;
        }
        let room = limits.max_pdf_bytes.saturating_sub(self.buf.len());
        let take = room.min(bytes.len());
        if take < bytes.len() {
            self.capped = true;
            stats.pdf_input_capped += 1;
        }
        let Some(now) = bytes.get(..take).filter(|b| !b.is_empty()) else {
            return;
        };
        if out.reserve(now.len(), stats) {
            self.reserved += now.len();
            self.buf.extend_from_slice(now);
        } else {
            self.capped = true;
        }
    }

    /// The unit ended: extracts the text of what was buffered.
    pub fn finish(&mut self, limits: &ContentLimits, stats: &mut ContentStats, out: &mut Out<'_>) {
        let buf = std::mem::take(&mut self.buf);
        let mut text = Vec::new();
        extract(&buf, limits, stats, &mut text);
        drop(buf);
        out.release(std::mem::take(&mut self.reserved));
        out.text(&text, stats);
        out.unit_end();
    }
}

impl Drop for Pdf {
    fn drop(&mut self) {
        super::release(self.reserved);
    }
}

/// A content stream's text operations.
struct Text {
    /// Its object number.
    obj: u32,
    /// Its own `/Resources` (a form XObject).
    resources: Option<Obj>,
    ops: Vec<u8>,
}

/// A font as text extraction needs it.
#[derive(Clone, Copy)]
struct Font<'d> {
    cmap: Option<&'d cmap::CMap>,
    /// Code bytes where the CMap's code space does not say (2 for a
    /// composite `Type0` font).
    width: usize,
}

/// What one pass over a file gathers.
struct Doc<'l> {
    limits: &'l ContentLimits,
    objs: HashMap<u32, Obj>,
    kept_nodes: usize,
    cmaps: HashMap<u32, cmap::CMap>,
    texts: Vec<Text>,
    /// Text from outside content streams (information, metadata, files).
    extra: Vec<u8>,
    /// Bytes of all text operations kept.
    ops_bytes: usize,
    decoded: u64,
    objects: usize,
    encrypted: bool,
    corrupt: bool,
    objects_capped: bool,
    decoded_capped: bool,
}

/// Appends the text of the PDF `buf` to `out` (at most
/// [`ContentLimits::max_file_bytes`]), counting what it meets.
pub fn extract(buf: &[u8], limits: &ContentLimits, stats: &mut ContentStats, out: &mut Vec<u8>) {
    stats.pdf_files += 1;
    let mut d = Doc {
        limits,
        objs: HashMap::new(),
        kept_nodes: 0,
        cmaps: HashMap::new(),
        texts: Vec::new(),
        extra: Vec::new(),
        ops_bytes: 0,
        decoded: 0,
        objects: 0,
        encrypted: false,
        corrupt: false,
        objects_capped: false,
        decoded_capped: false,
    };
    d.walk(buf, stats);
    if !buf.windows(5).rev().take(2048).any(|w| w == b"%%EOF") {
        // Cut short (a capture that lost the end, or a truncated upload).
        d.corrupt = true;
    }
    stats.pdf_errors += u64::from(d.corrupt);
    stats.pdf_objects_capped += u64::from(d.objects_capped);
    stats.pdf_decoded_capped += u64::from(d.decoded_capped);
    if d.encrypted {
        stats.pdf_unsupported += 1;
        return;
    }
    let max = usize::try_from(limits.max_file_bytes).unwrap_or(usize::MAX);
    d.emit(out, max);
    if out.len() > max {
        out.truncate(max);
        stats.file_capped += 1;
    }
}

impl Doc<'_> {
    /// Reads the file front to back, object by object.
    fn walk(&mut self, buf: &[u8], stats: &mut ContentStats) {
        let mut lex = Lexer::new(buf);
        let (mut a, mut b): (Option<i64>, Option<i64>) = (None, None);
        loop {
            match lex.next_tok() {
                Tok::Eof => return,
                Tok::Int(i) => {
                    (a, b) = (b, Some(i));
                    continue;
                }
                Tok::Keyword(b"obj") => {
                    if let (Some(n), Some(_)) = (a, b) {
                        if !self.count_object() {
                            return;
                        }
                        self.object(u32::try_from(n).unwrap_or(0), &mut lex, stats);
                    }
                }
                Tok::Keyword(b"trailer") => {
                    let mut p = Parser {
                        lex: &mut lex,
                        budget: OBJECT_NODES,
                    };
                    if let Ok(t) = p.value() {
                        self.encrypted |= t.get(b"Encrypt").is_some();
                    }
                }
                _ => {}
            }
            (a, b) = (None, None);
        }
    }

    /// Counts one more object; false at the cap.
    fn count_object(&mut self) -> bool {
        self.objects += 1;
        if self.objects > self.limits.max_pdf_objects {
            self.objects_capped = true;
            return false;
        }
        true
    }

    /// The object `n` after its `obj` keyword.
    fn object(&mut self, n: u32, lex: &mut Lexer<'_>, stats: &mut ContentStats) {
        let mut p = Parser {
            lex,
            budget: OBJECT_NODES,
        };
        let Ok(v) = p.value() else {
            self.corrupt = true;
            return;
        };
        let nodes = OBJECT_NODES - p.budget;
        let save = lex.pos;
        if let Tok::Keyword(b"stream") = lex.next_tok() {
            self.stream(n, &v, lex, stats);
        } else {
            lex.pos = save;
            self.plain(n, v, nodes);
        }
    }

    /// A non-stream object: kept for the font and page look-ups, its text
    /// strings passed on.
    fn plain(&mut self, n: u32, v: Obj, nodes: usize) {
        if let Obj::Dict(entries) = &v {
            for (k, val) in entries {
                if let (true, Obj::Str(s)) = (TEXT_KEYS.contains(&k.as_slice()), val) {
                    text_string(s, &mut self.extra);
                    self.extra.push(b'\n');
                }
            }
        }
        if self.kept_nodes + nodes > KEPT_NODES {
            self.objects_capped = true;
            return;
        }
        self.kept_nodes += nodes;
        self.objs.insert(n, v);
    }

    /// A stream object: its data located, decoded and used by type.
    fn stream(&mut self, n: u32, dict: &Obj, lex: &mut Lexer<'_>, stats: &mut ContentStats) {
        let buf = lex.buf();
        let mut start = lex.pos;
        if buf.get(start) == Some(&b'\r') {
            start += 1;
        }
        if buf.get(start) == Some(&b'\n') {
            start += 1;
        }
        let declared = dict
            .get(b"Length")
            .and_then(Obj::as_usize)
            .and_then(|l| start.checked_add(l))
            .filter(|&end| ends_stream(buf, end));
        let end = match declared {
            Some(end) => end,
            // An indirect or wrong /Length: the data ends at `endstream`.
            None => match buf
                .get(start..)
                .and_then(|r| memchr::memmem::find(r, b"endstream"))
            {
                Some(at) => {
                    let mut e = start + at;
                    if e > start && buf.get(e - 1) == Some(&b'\n') {
                        e -= 1;
                    }
                    if e > start && buf.get(e - 1) == Some(&b'\r') {
                        e -= 1;
                    }
                    e
                }
                None => {
                    self.corrupt = true;
                    buf.len()
                }
            },
        };
        lex.pos = end.max(start);
        let raw = buf.get(start..end).unwrap_or_default();
        let ty = dict.get(b"Type");
        let sub = dict.get(b"Subtype");
        if ty.is_some_and(|t| t.is_name(b"XRef")) {
            self.encrypted |= dict.get(b"Encrypt").is_some();
            return;
        }
        let binary = sub.is_some_and(|s| {
            [&b"Image"[..], b"Type1C", b"CIDFontType0C", b"OpenType"]
                .iter()
                .any(|x| s.is_name(x))
        }) || [&b"Length1"[..], b"Length2", b"Length3"]
            .iter()
            .any(|k| dict.get(k).is_some());
        if binary {
            return;
        }
        let Some(data) = self.decode(dict, raw, stats) else {
            return;
        };
        stats.pdf_streams += 1;
        if ty.is_some_and(|t| t.is_name(b"ObjStm")) {
            self.object_stream(dict, &data);
        } else if ty.is_some_and(|t| t.is_name(b"Metadata")) {
            let max = usize::try_from(self.limits.max_file_bytes).unwrap_or(usize::MAX);
            let _ = super::xml::text(&data, max, &mut self.extra);
            self.extra.push(b'\n');
        } else if ty.is_some_and(|t| t.is_name(b"EmbeddedFile")) {
            self.extra.extend_from_slice(&data);
            self.extra.push(b'\n');
        } else if memchr::memmem::find(&data, b"beginbfchar").is_some()
            || memchr::memmem::find(&data, b"beginbfrange").is_some()
        {
            stats.pdf_cmaps += 1;
            self.cmaps.insert(n, cmap::CMap::parse(&data));
        } else {
            let max = usize::try_from(self.limits.max_file_bytes)
                .unwrap_or(usize::MAX)
                .saturating_mul(2)
                .saturating_sub(self.ops_bytes);
            let mut ops = Vec::new();
            if !text::ops(&data, max, &mut ops) {
                stats.file_capped += 1;
            }
            if !ops.is_empty() {
                self.ops_bytes += ops.len();
                self.texts.push(Text {
                    obj: n,
                    resources: dict.get(b"Resources").cloned(),
                    ops,
                });
            }
        }
    }

    /// The decoded data of a stream, or None (counted) if it cannot be
    /// decoded: its filters applied in order (`FlateDecode`, `LZWDecode`,
    /// `ASCII85Decode`, `ASCIIHexDecode`, each with its `DecodeParms`
    /// predictor), each stage capped by what is left of the file's decoded
    /// bytes and by the expansion ratio over the stream's raw bytes.
    fn decode(&mut self, dict: &Obj, raw: &[u8], stats: &mut ContentStats) -> Option<Vec<u8>> {
        let filters: Vec<&Obj> = match dict.get(b"Filter") {
            None | Some(Obj::Null) => Vec::new(),
            Some(Obj::Array(a)) => a.iter().collect(),
            Some(f) => vec![f],
        };
        if filters.len() > MAX_FILTERS {
            stats.pdf_unsupported += 1;
            return None;
        }
        let parms = |i: usize| match dict.get(b"DecodeParms").or_else(|| dict.get(b"DP")) {
            Some(Obj::Array(a)) => a.get(i),
            p if i == 0 => p,
            _ => None,
        };
        let left = self
            .limits
            .max_pdf_decoded_bytes
            .saturating_sub(self.decoded);
        let ratio_cap = (raw.len() as u64)
            .saturating_mul(self.limits.max_ratio)
            .max(RATIO_FLOOR);
        let cap = left.min(ratio_cap);
        let mut data = std::borrow::Cow::Borrowed(raw);
        for (i, f) in filters.iter().enumerate() {
            let name = match f {
                Obj::Name(n) => n.as_slice(),
                _ => b"",
            };
            let (out, end) = match name {
                b"FlateDecode" | b"Fl" => inflate(&data, cap),
                b"LZWDecode" | b"LZW" => {
                    let early = parms(i)
                        .and_then(|p| p.get(b"EarlyChange"))
                        .and_then(Obj::as_usize)
                        != Some(0);
                    filter::lzw(&data, cap, early)
                }
                b"ASCII85Decode" | b"A85" => filter::ascii85(&data, cap),
                b"ASCIIHexDecode" | b"AHx" => filter::ascii_hex(&data, cap),
                _ => {
                    stats.pdf_unsupported += 1;
                    return None;
                }
            };
            match end {
                Inflated::Done => {}
                Inflated::Corrupt => self.corrupt = true,
                Inflated::Capped if ratio_cap < left => stats.ratio_capped += 1,
                Inflated::Capped => self.decoded_capped = true,
            }
            let out = match predictor(parms(i)) {
                None => {
                    stats.pdf_unsupported += 1;
                    return None;
                }
                Some(p)
                    if p.kind > 1
                        && matches!(name, b"FlateDecode" | b"Fl" | b"LZWDecode" | b"LZW") =>
                {
                    match filter::unpredict(&out, p) {
                        Some(o) => o,
                        None => {
                            stats.pdf_unsupported += 1;
                            return None;
                        }
                    }
                }
                Some(_) => out,
            };
            data = std::borrow::Cow::Owned(out);
        }
        let mut data = data.into_owned();
        if filters.is_empty() {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(raw.len());
            if n < raw.len() {
                self.decoded_capped = true;
            }
            data.truncate(n);
        }
        self.decoded += data.len() as u64;
        Some(data)
    }

    /// The objects of an object stream.
    fn object_stream(&mut self, dict: &Obj, data: &[u8]) {
        let (Some(count), Some(first)) = (
            dict.get(b"N").and_then(Obj::as_usize),
            dict.get(b"First").and_then(Obj::as_usize),
        ) else {
            self.corrupt = true;
            return;
        };
        let header = data.get(..first).unwrap_or_default();
        let mut lex = Lexer::new(header);
        for _ in 0..count {
            let (Tok::Int(n), Tok::Int(off)) = (lex.next_tok(), lex.next_tok()) else {
                break;
            };
            if !self.count_object() {
                return;
            }
            let (Ok(n), Ok(off)) = (u32::try_from(n), usize::try_from(off)) else {
                self.corrupt = true;
                continue;
            };
            let mut at = Lexer::at(data, first.saturating_add(off));
            let mut p = Parser {
                lex: &mut at,
                budget: OBJECT_NODES,
            };
            match p.value() {
                Ok(v) => {
                    let nodes = OBJECT_NODES - p.budget;
                    self.plain(n, v, nodes);
                }
                Err(_) => self.corrupt = true,
            }
        }
    }

    /// `o`, or the object it refers to.
    fn resolve<'o>(&'o self, mut o: &'o Obj) -> &'o Obj {
        for _ in 0..8 {
            match o {
                Obj::Ref(n) => match self.objs.get(n) {
                    Some(x) => o = x,
                    None => return &Obj::Null,
                },
                _ => return o,
            }
        }
        &Obj::Null
    }

    /// The fonts of a resource dictionary, by resource name.
    fn fonts<'d>(&'d self, resources: &Obj, into: &mut HashMap<Vec<u8>, Font<'d>>) {
        let res = self.resolve(resources);
        let Some(Obj::Dict(fonts)) = res.get(b"Font").map(|f| self.resolve(f)) else {
            return;
        };
        for (name, f) in fonts.iter().take(MAX_FONTS) {
            let fd = self.resolve(f);
            let cmap = match fd.get(b"ToUnicode") {
                Some(Obj::Ref(r)) => self.cmaps.get(r).filter(|c| !c.is_empty()),
                _ => None,
            };
            let width = if fd.get(b"Subtype").is_some_and(|s| s.is_name(b"Type0")) {
                2
            } else {
                1
            };
            into.entry(name.clone()).or_insert(Font { cmap, width });
        }
    }

    /// The resources of a page, inherited through `/Parent`.
    fn page_resources<'o>(&'o self, mut page: &'o Obj) -> Option<&'o Obj> {
        for _ in 0..32 {
            if let Some(r) = page.get(b"Resources") {
                return Some(r);
            }
            page = self.resolve(page.get(b"Parent")?);
        }
        None
    }

    /// Maps every content stream's text to `out`.
    fn emit(&self, out: &mut Vec<u8>, max: usize) {
        // Which page shows which content stream (the lowest-numbered page
        // if several name it, so the result does not depend on hashing).
        let mut numbers: Vec<&u32> = self.objs.keys().collect();
        numbers.sort_unstable();
        let mut page_of: BTreeMap<u32, &Obj> = BTreeMap::new();
        for o in numbers.into_iter().filter_map(|n| self.objs.get(n)) {
            if !o.get(b"Type").is_some_and(|t| t.is_name(b"Page")) {
                continue;
            }
            match o.get(b"Contents") {
                Some(Obj::Ref(r)) => {
                    page_of.entry(*r).or_insert(o);
                }
                Some(Obj::Array(a)) => {
                    for c in a {
                        if let Obj::Ref(r) = c {
                            page_of.entry(*r).or_insert(o);
                        }
                    }
                }
                _ => {}
            }
        }
        // Fonts of the first pages, for streams no page names (built
        // once, when first needed).
        let mut any_page: Option<HashMap<Vec<u8>, Font<'_>>> = None;
        for t in &self.texts {
            let mut own = HashMap::new();
            if let Some(r) = &t.resources {
                self.fonts(r, &mut own);
            }
            if let Some(r) = page_of.get(&t.obj).and_then(|p| self.page_resources(p)) {
                self.fonts(r, &mut own);
            }
            let fonts = if own.is_empty() {
                any_page.get_or_insert_with(|| {
                    let mut all = HashMap::new();
                    for p in page_of.values().take(ANY_PAGES) {
                        if let Some(r) = self.page_resources(p) {
                            self.fonts(r, &mut all);
                        }
                    }
                    all
                })
            } else {
                &own
            };
            let mut font: Option<Font<'_>> = None;
            for op in text::read(&t.ops) {
                if out.len() > max {
                    return;
                }
                match op {
                    text::Op::Font(name) => font = fonts.get(name).copied(),
                    text::Op::Show(s) => match font {
                        Some(Font {
                            cmap: Some(m),
                            width,
                        }) => m.decode(s, width, out),
                        _ => out.extend_from_slice(s),
                    },
                    text::Op::Space => out.push(b' '),
                    text::Op::Line => out.push(b'\n'),
                }
            }
            out.push(b'\n');
        }
        out.extend_from_slice(&self.extra);
    }
}

/// Whether `endstream` follows `end` (after an optional end of line).
fn ends_stream(buf: &[u8], end: usize) -> bool {
    let mut at = end;
    while buf.get(at).is_some_and(|&b| b == b'\r' || b == b'\n') && at < end + 2 {
        at += 1;
    }
    buf.get(at..).is_some_and(|r| r.starts_with(b"endstream"))
}

/// How an inflate ended.
#[derive(Debug, PartialEq, Eq)]
enum Inflated {
    /// The stream ended (or its input did).
    Done,
    /// The output cap stopped it.
    Capped,
    /// The data was corrupt (output before the error kept).
    Corrupt,
}

/// Most filters applied to one stream (real files use one or two).
const MAX_FILTERS: usize = 4;

/// The predictor a filter's `DecodeParms` names (`Some` with kind 1 when
/// none); `None` for one that is not supported or out of range.
fn predictor(parms: Option<&Obj>) -> Option<filter::Predictor> {
    let get = |key: &[u8], default: usize| {
        parms
            .and_then(|p| p.get(key))
            .and_then(Obj::as_usize)
            .unwrap_or(default)
    };
    let p = filter::Predictor {
        kind: get(b"Predictor", 1),
        colors: get(b"Colors", 1),
        bits: get(b"BitsPerComponent", 8),
        columns: get(b"Columns", 1),
    };
    let known = matches!(p.kind, 1 | 2 | 10..=15);
    let sane = (1..=32).contains(&p.colors) && matches!(p.bits, 1 | 2 | 4 | 8 | 16);
    (known && sane).then_some(p)
}

/// Inflates the zlib stream `raw` (or raw deflate, if it has no zlib
/// header) to at most `cap` bytes.
fn inflate(raw: &[u8], cap: u64) -> (Vec<u8>, Inflated) {
    let zlib = match raw {
        [cmf, flg, ..] => cmf & 0x0f == 8 && u16::from_be_bytes([*cmf, *flg]) % 31 == 0,
        _ => false,
    };
    let mut engine = flate2::Decompress::new(zlib);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    // Every round makes progress or returns.
    loop {
        let room = cap.saturating_sub(out.len() as u64);
        let want = usize::try_from(room.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let (in0, out0) = (engine.total_in(), engine.total_out());
        let input = usize::try_from(in0)
            .ok()
            .and_then(|i| raw.get(i..))
            .unwrap_or_default();
        let Some(dst) = chunk.get_mut(..want) else {
            return (out, Inflated::Corrupt);
        };
        let r = engine.decompress(input, dst, flate2::FlushDecompress::None);
        let made = engine.total_out() - out0;
        let used = engine.total_in() - in0;
        let keep = usize::try_from(made.min(room)).unwrap_or(0);
        out.extend_from_slice(chunk.get(..keep).unwrap_or_default());
        if made > room {
            return (out, Inflated::Capped);
        }
        match r {
            Ok(flate2::Status::StreamEnd) => return (out, Inflated::Done),
            // The input ended before the stream did.
            Ok(_) if used == 0 && made == 0 => return (out, Inflated::Done),
            Ok(_) => {}
            Err(_) => return (out, Inflated::Corrupt),
        }
    }
}

/// Appends a PDF text string: UTF-16BE after a byte order mark decoded to
/// UTF-8, otherwise its bytes (PDFDocEncoding is ASCII in its lower half).
fn text_string(s: &[u8], out: &mut Vec<u8>) {
    match s.strip_prefix(b"\xfe\xff") {
        Some(u) => {
            let units = u.chunks_exact(2).map(|c| match c {
                [h, l] => u16::from_be_bytes([*h, *l]),
                _ => 0,
            });
            for ch in char::decode_utf16(units) {
                let mut b = [0; 4];
                let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
        }
        None => out.extend_from_slice(s),
    }
}

#[cfg(test)]
mod tests;
