//! Content extraction: the stage between normalization and matching that
//! turns documents into the text a reader sees.
//!
//! It sits on a normalizer's output ([`ContentSink`]) and looks at the
//! first bytes of every unit (an HTTP body, a MIME part, a raw TCP
//! stream), by magic bytes only, never by name or `Content-Type`:
//!
//! * ZIP (`PK\x03\x04`): read as a stream from its local headers
//!   ([`zip`]); OOXML (`docx`, `xlsx`, `pptx`) and ODF parts are XML whose
//!   text is extracted ([`xml`]); nested archives are followed to
//!   [`ContentLimits::max_depth`]; PDF members as below; plain members
//!   (txt, csv, json, html, ...) are passed on as they are. The archive's own bytes are not.
//! * PDF (`%PDF-`): buffered to its end, then the text its content
//!   streams show, mapped through the fonts' `ToUnicode` CMaps, plus
//!   document information, XMP metadata and embedded files ([`pdf`]).
//!   The PDF's own bytes are not passed on.
//! * OLE2 compound files (legacy `.doc`, `.xls`, `.wps`): passed on as they
//!   are, so their UTF-16LE and GBK text runs meet the signatures' UTF-16LE
//!   and GBK encodings (counted `ole2_files`); the compound file's streams
//!   are not parsed.
//! * Anything else is passed on unchanged.
//!
//! Bounds ([`ContentLimits`]): output bytes per file and per flow
//! direction, the ratio of output to compressed input per member, members
//! per archive, nesting depth, a process-wide budget for buffered XML
//! parts and PDFs, and per PDF its input bytes, decoded stream bytes and
//! objects. Every cap hit is counted in [`ContentStats`] (the leak summary
//! and heartbeat show them); what a cap stops is not scanned.

pub mod pdf;
pub mod xml;
pub mod zip;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::normalize::Sink;

/// Bounds of content extraction (`[leak.content]` in the sensor's
/// configuration; every key optional, defaults below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentLimits {
    /// Most output bytes per extracted file (archive member). Default
    /// 16 MiB.
    pub max_file_bytes: u64,
    /// Most extracted bytes per flow direction. Default 64 MiB.
    pub max_flow_bytes: u64,
    /// Largest ratio of a member's output to its compressed bytes (past
    /// 64 KiB). Default 100.
    pub max_ratio: u64,
    /// Most members read per archive. Default 10,000.
    pub max_entries: usize,
    /// Deepest archive nesting read (1: no archive inside an archive).
    /// Default 3.
    pub max_depth: usize,
    /// Bytes of XML parts and PDFs buffered at once, all flows together.
    /// Default 256 MiB.
    pub max_memory_bytes: usize,
    /// Most bytes of one PDF buffered (a PDF is read at its end; the text
    /// of what lies past this is lost). Default 32 MiB.
    pub max_pdf_bytes: usize,
    /// Most bytes decoded from one PDF's streams, all together (each
    /// stream also stops at [`max_ratio`](Self::max_ratio) past 64 KiB).
    /// Default 64 MiB.
    pub max_pdf_decoded_bytes: u64,
    /// Most objects read per PDF (in the file and in object streams);
    /// each costs a parse and, for the font and page look-ups, memory.
    /// Default 200,000.
    pub max_pdf_objects: usize,
}

impl ContentLimits {
    /// The defaults.
    pub const DEFAULT: ContentLimits = ContentLimits {
        max_file_bytes: 16 << 20,
        max_flow_bytes: 64 << 20,
        max_ratio: 100,
        max_entries: 10_000,
        max_depth: 3,
        max_memory_bytes: 256 << 20,
        max_pdf_bytes: 32 << 20,
        max_pdf_decoded_bytes: 64 << 20,
        max_pdf_objects: 200_000,
    };
}

impl Default for ContentLimits {
    fn default() -> Self {
        ContentLimits::DEFAULT
    }
}

/// What content extraction did, summed over all flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentStats {
    /// ZIP archives read (nested ones included).
    pub zip_files: u64,
    /// Archive members read.
    pub zip_members: u64,
    /// XML parts whose text was extracted.
    pub xml_parts: u64,
    /// XML parts that did not parse to the end (text before kept).
    pub xml_errors: u64,
    /// Members that cannot be read (encrypted, unknown method, stored with
    /// a data descriptor).
    pub zip_unsupported: u64,
    /// Archives whose compressed data was corrupt.
    pub zip_errors: u64,
    /// OLE2 compound files passed on raw.
    pub ole2_files: u64,
    /// Bytes of extracted text passed on.
    pub bytes_extracted: u64,
    /// Members stopped at the per-file output cap.
    pub file_capped: u64,
    /// Flow directions stopped at the per-flow output cap.
    pub flow_capped: u64,
    /// Members stopped at the expansion-ratio cap.
    pub ratio_capped: u64,
    /// Archives stopped at the member cap.
    pub entries_capped: u64,
    /// Nested archives not read (too deep).
    pub depth_capped: u64,
    /// XML parts and PDFs not (wholly) read because the memory budget
    /// was spent.
    pub memory_capped: u64,
    /// PDFs read.
    pub pdf_files: u64,
    /// PDF streams decoded (content, CMap, object, metadata streams).
    pub pdf_streams: u64,
    /// `ToUnicode` CMaps read.
    pub pdf_cmaps: u64,
    /// PDFs cut short or with corrupt parts (text of the rest kept).
    pub pdf_errors: u64,
    /// Encrypted PDFs, and streams with a filter or predictor not decoded.
    pub pdf_unsupported: u64,
    /// PDFs longer than [`ContentLimits::max_pdf_bytes`].
    pub pdf_input_capped: u64,
    /// PDFs with more objects than [`ContentLimits::max_pdf_objects`] (or
    /// than the object memory holds).
    pub pdf_objects_capped: u64,
    /// PDFs whose streams decoded to more than
    /// [`ContentLimits::max_pdf_decoded_bytes`].
    pub pdf_decoded_capped: u64,
}

impl ContentStats {
    /// Every counter under a stable name.
    pub fn counters(&self) -> [(&'static str, u64); 22] {
        [
            ("content_zip_files", self.zip_files),
            ("content_zip_members", self.zip_members),
            ("content_xml_parts", self.xml_parts),
            ("content_xml_errors", self.xml_errors),
            ("content_zip_unsupported", self.zip_unsupported),
            ("content_zip_errors", self.zip_errors),
            ("content_ole2_files", self.ole2_files),
            ("content_bytes_extracted", self.bytes_extracted),
            ("content_file_capped", self.file_capped),
            ("content_flow_capped", self.flow_capped),
            ("content_ratio_capped", self.ratio_capped),
            ("content_entries_capped", self.entries_capped),
            ("content_depth_capped", self.depth_capped),
            ("content_memory_capped", self.memory_capped),
            ("content_pdf_files", self.pdf_files),
            ("content_pdf_streams", self.pdf_streams),
            ("content_pdf_cmaps", self.pdf_cmaps),
            ("content_pdf_errors", self.pdf_errors),
            ("content_pdf_unsupported", self.pdf_unsupported),
            ("content_pdf_input_capped", self.pdf_input_capped),
            ("content_pdf_objects_capped", self.pdf_objects_capped),
            ("content_pdf_decoded_capped", self.pdf_decoded_capped),
        ]
    }

    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &ContentStats) {
        self.zip_files += o.zip_files;
        self.zip_members += o.zip_members;
        self.xml_parts += o.xml_parts;
        self.xml_errors += o.xml_errors;
        self.zip_unsupported += o.zip_unsupported;
        self.zip_errors += o.zip_errors;
        self.ole2_files += o.ole2_files;
        self.bytes_extracted += o.bytes_extracted;
        self.file_capped += o.file_capped;
        self.flow_capped += o.flow_capped;
        self.ratio_capped += o.ratio_capped;
        self.entries_capped += o.entries_capped;
        self.depth_capped += o.depth_capped;
        self.memory_capped += o.memory_capped;
        self.pdf_files += o.pdf_files;
        self.pdf_streams += o.pdf_streams;
        self.pdf_cmaps += o.pdf_cmaps;
        self.pdf_errors += o.pdf_errors;
        self.pdf_unsupported += o.pdf_unsupported;
        self.pdf_input_capped += o.pdf_input_capped;
        self.pdf_objects_capped += o.pdf_objects_capped;
        self.pdf_decoded_capped += o.pdf_decoded_capped;
    }
}

/// Buffered XML bytes of all flows (the [`ContentLimits::max_memory_bytes`]
/// budget).
static BUFFERED: AtomicUsize = AtomicUsize::new(0);

/// Where extracted text goes: the sink, within the flow's output cap.
pub struct Out<'a> {
    sink: &'a mut dyn Sink,
    /// Extracted bytes of this flow direction so far.
    flow_out: &'a mut u64,
    /// Whether this direction hit its cap (counted once).
    flow_capped: &'a mut bool,
    /// Buffered bytes this reader holds (released at the end).
    limits: ContentLimits,
}

impl Out<'_> {
    /// Passes extracted text on.
    pub fn text(&mut self, bytes: &[u8], stats: &mut ContentStats) {
        if bytes.is_empty() {
            return;
        }
        let room = self.limits.max_flow_bytes.saturating_sub(*self.flow_out);
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        if n < bytes.len() && !*self.flow_capped {
            *self.flow_capped = true;
            stats.flow_capped += 1;
        }
        if let Some(now) = bytes.get(..n).filter(|b| !b.is_empty()) {
            *self.flow_out += n as u64;
            stats.bytes_extracted += n as u64;
            self.sink.data(now);
        }
    }

    /// One extracted file ended: the next text is unrelated.
    pub fn unit_end(&mut self) {
        self.sink.boundary();
    }

    /// Takes `n` bytes of the memory budget; false (counted) if spent.
    pub fn reserve(&mut self, n: usize, stats: &mut ContentStats) -> bool {
        let before = BUFFERED.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limits.max_memory_bytes {
            BUFFERED.fetch_sub(n, Ordering::Relaxed);
            stats.memory_capped += 1;
            return false;
        }
        true
    }

    /// Gives `n` bytes back to the memory budget.
    pub fn release(&mut self, n: usize) {
        release(n);
    }
}

/// Gives `n` buffered bytes back to the memory budget (also when a reader
/// is dropped mid-part).
fn release(n: usize) {
    BUFFERED.fetch_sub(n, Ordering::Relaxed);
}

/// What the current unit turned out to be.
#[derive(Debug, Default)]
enum Unit {
    /// No byte of it yet.
    #[default]
    Start,
    /// Its first bytes, too few to tell yet.
    Sniff(Vec<u8>),
    /// Passed on as it is.
    Pass,
    /// A ZIP archive.
    Zip(Box<zip::Zip>),
    /// A PDF, buffered.
    Pdf(Box<pdf::Pdf>),
}

/// The content stage of one flow direction.
#[derive(Debug, Default)]
pub struct Content {
    unit: Unit,
    flow_out: u64,
    flow_capped: bool,
}

/// OLE2 compound file signature.
const OLE2: &[u8; 8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";

impl Content {
    /// Whether an archive or PDF is being read now (its memory is in
    /// use).
    pub fn busy(&self) -> bool {
        matches!(self.unit, Unit::Zip(_) | Unit::Pdf(_))
    }
}

/// A [`Sink`] adapter running a flow direction's content stage in front of
/// the real sink.
pub struct ContentSink<'a, S: Sink> {
    /// The direction's state.
    pub content: &'a mut Content,
    /// Bounds.
    pub limits: &'a ContentLimits,
    /// Counters.
    pub stats: &'a mut ContentStats,
    /// Where bytes go.
    pub sink: &'a mut S,
}

/// Bytes a unit's start is held for to tell its type.
const SNIFF: usize = 8;

impl<S: Sink> ContentSink<'_, S> {
    /// The unit type the first bytes say (counted).
    fn choose(&mut self, first: &[u8]) -> Unit {
        if first.starts_with(b"PK\x03\x04") {
            self.stats.zip_files += 1;
            Unit::Zip(Box::new(zip::Zip::new(0)))
        } else if first.starts_with(b"%PDF-") {
            Unit::Pdf(Box::default())
        } else {
            if first.starts_with(OLE2) {
                self.stats.ole2_files += 1;
            }
            Unit::Pass
        }
    }

    fn out(&mut self) -> (Out<'_>, &mut ContentStats) {
        (
            Out {
                sink: &mut *self.sink,
                flow_out: &mut self.content.flow_out,
                flow_capped: &mut self.content.flow_capped,
                limits: *self.limits,
            },
            &mut *self.stats,
        )
    }
}

impl<S: Sink> Sink for ContentSink<'_, S> {
    fn data(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Unit::Start | Unit::Sniff(_) = self.content.unit {
            let mut held = match std::mem::take(&mut self.content.unit) {
                Unit::Sniff(h) => h,
                _ => Vec::new(),
            };
            if held.is_empty() && bytes.len() >= SNIFF {
                self.content.unit = self.choose(bytes);
            } else {
                held.extend_from_slice(bytes);
                if held.len() < SNIFF {
                    self.content.unit = Unit::Sniff(held);
                    return;
                }
                self.content.unit = self.choose(&held);
                return self.data(&held);
            }
        }
        match std::mem::take(&mut self.content.unit) {
            Unit::Zip(mut z) => {
                let limits = *self.limits;
                {
                    let (mut out, stats) = self.out();
                    z.push(bytes, &limits, stats, &mut out);
                }
                self.content.unit = Unit::Zip(z);
            }
            Unit::Pdf(mut p) => {
                let limits = *self.limits;
                {
                    let (mut out, stats) = self.out();
                    p.push(bytes, &limits, stats, &mut out);
                }
                self.content.unit = Unit::Pdf(p);
            }
            other => {
                self.content.unit = other;
                self.sink.data(bytes);
            }
        }
    }

    fn boundary(&mut self) {
        if let Unit::Sniff(held) = &mut self.content.unit {
            // A unit shorter than a signature: passed on as it is.
            let held = std::mem::take(held);
            self.content.unit = Unit::Pass;
            self.sink.data(&held);
        }
        let limits = *self.limits;
        match std::mem::take(&mut self.content.unit) {
            Unit::Zip(mut z) => {
                let (mut out, stats) = self.out();
                z.finish(&limits, stats, &mut out);
            }
            Unit::Pdf(mut p) => {
                let (mut out, stats) = self.out();
                p.finish(&limits, stats, &mut out);
            }
            _ => {}
        }
        self.content.unit = Unit::Start;
        self.sink.boundary();
    }
}

#[cfg(test)]
mod tests;
