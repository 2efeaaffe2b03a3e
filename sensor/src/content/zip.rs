//! A ZIP archive read as a stream from its local file headers (the central
//! directory at the end is never needed, so an archive is read as it
//! passes, with bounded memory).
//!
//! Members stored or deflated are handed to [`Member`] handling as their
//! bytes come: OOXML/ODF XML parts are buffered (bounded) and their text
//! extracted ([`super::xml`]); nested archives are read by a nested reader
//! up to the depth cap; PDF members (by their first bytes) are buffered
//! and their text extracted ([`super::pdf`]); other members are passed on
//! as they are. A member
//! with a data descriptor (sizes after the data) is read to the end of its
//! deflate stream; a stored one with a data descriptor, an encrypted
//! member or another compression method cannot be delimited or read and
//! ends the archive (counted `zip_unsupported`).
//!
//! Why by hand: the `zip` crate reads from the central directory (it needs
//! `Seek`), and its streaming reader wants a blocking `Read`; the sensor
//! is pushed bytes one segment at a time.

use super::{xml, ContentLimits, ContentStats, Out};

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const DESCRIPTOR: &[u8; 4] = b"PK\x07\x08";
/// Longest file name plus extra field taken.
const MAX_HEADER: usize = 30 + 2 * 65_535;

/// What a member's bytes are for.
#[derive(Debug)]
enum Sink {
    /// An XML part: buffered, its text extracted at its end.
    Xml(Vec<u8>),
    /// A nested archive.
    Nested(Box<Zip>),
    /// A PDF, buffered ([`super::pdf`]).
    Pdf(Box<super::pdf::Pdf>),
    /// Passed on as it is.
    Plain,
    /// Not wanted (images, fonts, binary parts of Office files).
    Skip,
    /// Not yet known: the first bytes are held to sniff.
    Sniff(Vec<u8>),
}

#[derive(Debug)]
enum State {
    /// Gathering a local header (or the signature of what follows).
    Header(Vec<u8>),
    /// Stored data: bytes left.
    Stored(u64),
    /// Deflated data, inflated as it comes.
    Deflate(Box<flate2::Decompress>),
    /// After a deflate stream with a data descriptor: bytes to skip.
    Descriptor(Vec<u8>, bool),
    /// Compressed bytes of a member not read (encrypted with a known size).
    Skip(u64),
    /// The archive ended (central directory, or what cannot be read).
    Done,
}

/// One streaming ZIP reader.
#[derive(Debug)]
pub struct Zip {
    depth: usize,
    state: State,
    member: Sink,
    /// Member name (for routing).
    name: Vec<u8>,
    /// Output of the current member so far, and its compressed input.
    member_out: u64,
    member_in: u64,
    entries: usize,
    zip64: bool,
    /// Whether the current member's sizes follow its data.
    member_has_descriptor: bool,
    out_buf: Vec<u8>,
}

impl Zip {
    /// A reader for an archive at nesting `depth` (0: outermost).
    pub fn new(depth: usize) -> Self {
        Zip {
            depth,
            state: State::Header(Vec::new()),
            member: Sink::Plain,
            name: Vec::new(),
            member_out: 0,
            member_in: 0,
            entries: 0,
            zip64: false,
            member_has_descriptor: false,
            out_buf: Vec::new(),
        }
    }

    /// Reads the next archive bytes.
    pub fn push(
        &mut self,
        mut input: &[u8],
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) {
        // Every round consumes input or moves to another state.
        let mut rounds = 0;
        while !input.is_empty() && rounds < 2 * input.len() + 16 {
            rounds += 1;
            let used = self.step(input, limits, stats, out);
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// The archive ended: flushes the current member.
    pub fn finish(&mut self, limits: &ContentLimits, stats: &mut ContentStats, out: &mut Out<'_>) {
        if !matches!(self.state, State::Header(_) | State::Done) {
            self.end_member(limits, stats, out);
        }
        self.state = State::Done;
    }

    fn step(
        &mut self,
        input: &[u8],
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) -> usize {
        match &mut self.state {
            State::Done => input.len(),
            State::Header(held) => {
                let before = held.len();
                let take = (MAX_HEADER - before).min(input.len());
                held.extend_from_slice(input.get(..take).unwrap_or_default());
                match parse_local(held) {
                    Parsed::More if held.len() < MAX_HEADER => take,
                    Parsed::More | Parsed::Not => {
                        // The central directory or anything else: the
                        // archive's members are over.
                        self.state = State::Done;
                        input.len()
                    }
                    Parsed::Header(h) => {
                        let used = h.len - before;
                        self.start_member(h, limits, stats, out);
                        used
                    }
                }
            }
            State::Stored(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= n as u64;
                let done = *left == 0;
                let (now, _) = input.split_at(n);
                self.member_in += n as u64;
                self.member_bytes(now, limits, stats, out);
                if done {
                    self.end_member(limits, stats, out);
                    self.state = State::Header(Vec::new());
                }
                n
            }
            State::Skip(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Header(Vec::new());
                }
                n
            }
            State::Deflate(engine) => {
                let mut buf = std::mem::take(&mut self.out_buf);
                buf.resize(32 * 1024, 0);
                let (in0, out0) = (engine.total_in(), engine.total_out());
                let r = engine.decompress(input, &mut buf, flate2::FlushDecompress::None);
                let used = usize::try_from(engine.total_in() - in0).unwrap_or(0);
                let made = usize::try_from(engine.total_out() - out0).unwrap_or(0);
                self.member_in += used as u64;
                let chunk = buf.get(..made).unwrap_or_default().to_vec();
                self.out_buf = buf;
                self.member_bytes(&chunk, limits, stats, out);
                match r {
                    Ok(flate2::Status::StreamEnd) => {
                        self.end_member(limits, stats, out);
                        self.state = if self.member_has_descriptor {
                            State::Descriptor(Vec::new(), self.zip64)
                        } else {
                            State::Header(Vec::new())
                        };
                        used
                    }
                    Ok(_) if used == 0 && made == 0 => {
                        // No progress on this input: corrupt.
                        stats.zip_errors += 1;
                        self.end_member(limits, stats, out);
                        self.state = State::Done;
                        input.len()
                    }
                    Ok(_) => used,
                    Err(_) => {
                        stats.zip_errors += 1;
                        self.end_member(limits, stats, out);
                        self.state = State::Done;
                        input.len()
                    }
                }
            }
            State::Descriptor(held, zip64) => {
                // Optional signature, CRC-32, and two sizes (4 or 8 bytes).
                let size = if *zip64 { 20 } else { 12 };
                let want = if held.len() >= 4 && held.starts_with(DESCRIPTOR) {
                    size + 4
                } else if held.len() >= 4 {
                    size
                } else {
                    4
                };
                let take = (want - held.len()).min(input.len());
                held.extend_from_slice(input.get(..take).unwrap_or_default());
                if held.len() >= 4 {
                    let full = if held.starts_with(DESCRIPTOR) {
                        size + 4
                    } else {
                        size
                    };
                    if held.len() >= full {
                        // Bytes past the descriptor belong to what follows.
                        let extra = held.split_off(full);
                        self.state = State::Header(extra);
                    }
                }
                take
            }
        }
    }

    fn start_member(
        &mut self,
        h: Local,
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) {
        self.entries += 1;
        if self.entries > limits.max_entries {
            stats.entries_capped += 1;
            self.state = State::Done;
            return;
        }
        stats.zip_members += 1;
        self.name = h.name.clone();
        self.member_out = 0;
        self.member_in = 0;
        self.zip64 = h.zip64;
        self.member_has_descriptor = h.descriptor;
        self.member = route(&h.name);
        let _ = out;
        self.state = match (h.method, h.encrypted, h.descriptor) {
            (_, true, false) => {
                stats.zip_unsupported += 1;
                self.member = Sink::Skip;
                State::Skip(h.compressed)
            }
            (0, false, false) if h.compressed == 0 => {
                self.end_member(limits, stats, out);
                State::Header(Vec::new())
            }
            (0, false, false) => State::Stored(h.compressed),
            (8, false, _) => State::Deflate(Box::new(flate2::Decompress::new(false))),
            (_, _, false) => {
                stats.zip_unsupported += 1;
                self.member = Sink::Skip;
                State::Skip(h.compressed)
            }
            _ => {
                stats.zip_unsupported += 1;
                State::Done
            }
        };
    }

    /// Bytes of the current member's content.
    fn member_bytes(
        &mut self,
        bytes: &[u8],
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) {
        if bytes.is_empty() {
            return;
        }
        let total = self.member_out + bytes.len() as u64;
        let ratio_cap = self
            .member_in
            .saturating_mul(limits.max_ratio)
            .max(64 * 1024);
        if total > limits.max_file_bytes || total > ratio_cap {
            if !matches!(self.member, Sink::Skip) {
                if total > limits.max_file_bytes {
                    stats.file_capped += 1;
                } else {
                    stats.ratio_capped += 1;
                }
                self.end_member(limits, stats, out);
                self.member = Sink::Skip;
            }
            return;
        }
        self.member_out = total;
        let depth = self.depth;
        match &mut self.member {
            Sink::Skip => {}
            Sink::Plain => out.text(bytes, stats),
            Sink::Xml(buf) => {
                if out.reserve(bytes.len(), stats) {
                    buf.extend_from_slice(bytes);
                } else {
                    self.member = Sink::Skip;
                }
            }
            Sink::Nested(z) => z.push(bytes, limits, stats, out),
            Sink::Pdf(p) => p.push(bytes, limits, stats, out),
            Sink::Sniff(held) => {
                held.extend_from_slice(bytes);
                if held.len() >= 8 {
                    let held = std::mem::take(held);
                    self.member = if held.starts_with(LOCAL) {
                        if depth + 1 >= limits.max_depth {
                            stats.depth_capped += 1;
                            Sink::Skip
                        } else {
                            stats.zip_files += 1;
                            Sink::Nested(Box::new(Zip::new(depth + 1)))
                        }
                    } else if held.starts_with(b"%PDF-") {
                        Sink::Pdf(Box::default())
                    } else {
                        Sink::Plain
                    };
                    self.member_bytes_again(&held, limits, stats, out);
                }
            }
        }
    }

    /// Routes bytes already counted (the held sniff) to the chosen sink.
    fn member_bytes_again(
        &mut self,
        bytes: &[u8],
        limits: &ContentLimits,
        stats: &mut ContentStats,
        out: &mut Out<'_>,
    ) {
        match &mut self.member {
            Sink::Plain => out.text(bytes, stats),
            Sink::Nested(z) => z.push(bytes, limits, stats, out),
            Sink::Pdf(p) => p.push(bytes, limits, stats, out),
            _ => {}
        }
    }

    fn end_member(&mut self, limits: &ContentLimits, stats: &mut ContentStats, out: &mut Out<'_>) {
        match std::mem::replace(&mut self.member, Sink::Skip) {
            Sink::Xml(buf) => {
                let mut text = Vec::new();
                if !xml::text(&buf, limits.max_file_bytes as usize, &mut text) {
                    stats.xml_errors += 1;
                }
                out.release(buf.len());
                stats.xml_parts += 1;
                out.text(&text, stats);
                out.unit_end();
            }
            Sink::Nested(mut z) => z.finish(limits, stats, out),
            Sink::Pdf(mut p) => p.finish(limits, stats, out),
            Sink::Sniff(held) => {
                out.text(&held, stats);
                out.unit_end();
            }
            Sink::Plain => out.unit_end(),
            Sink::Skip => {}
        }
    }
}

/// How a member's content is handled, by its name: XML parts of Office
/// and ODF documents are parsed; images, media, fonts and binary parts
/// skipped; everything else sniffed (a nested archive) or passed on.
fn route(name: &[u8]) -> Sink {
    let lower = name.to_ascii_lowercase();
    let ends = |s: &[u8]| lower.ends_with(s);
    if ends(b".rels") || lower == b"[content_types].xml" || lower == b"mimetype" {
        Sink::Skip
    } else if ends(b".xml") {
        Sink::Xml(Vec::new())
    } else if [
        &b".png"[..],
        b".jpg",
        b".jpeg",
        b".gif",
        b".bmp",
        b".emf",
        b".wmf",
        b".ttf",
        b".odttf",
        b".mp3",
        b".mp4",
        b".wav",
        b".bin",
        b".vml",
    ]
    .iter()
    .any(|e| ends(e))
    {
        Sink::Skip
    } else {
        Sink::Sniff(Vec::new())
    }
}

impl Drop for Zip {
    fn drop(&mut self) {
        if let Sink::Xml(buf) = &self.member {
            super::release(buf.len());
        }
    }
}

/// A parsed local file header.
#[derive(Debug)]
struct Local {
    /// Header length (fixed part, name, extra).
    len: usize,
    method: u16,
    encrypted: bool,
    descriptor: bool,
    compressed: u64,
    zip64: bool,
    name: Vec<u8>,
}

enum Parsed {
    More,
    Not,
    Header(Local),
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn parse_local(b: &[u8]) -> Parsed {
    if b.len() < 4 {
        return if LOCAL.starts_with(b) {
            Parsed::More
        } else {
            Parsed::Not
        };
    }
    if !b.starts_with(LOCAL) {
        return Parsed::Not;
    }
    let (Some(flags), Some(method), Some(csize), Some(name_len), Some(extra_len)) = (
        u16_at(b, 6),
        u16_at(b, 8),
        u32_at(b, 18),
        u16_at(b, 26),
        u16_at(b, 28),
    ) else {
        return Parsed::More;
    };
    let len = 30 + usize::from(name_len) + usize::from(extra_len);
    let (Some(name), Some(extra)) = (
        b.get(30..30 + usize::from(name_len)),
        b.get(30 + usize::from(name_len)..len),
    ) else {
        return Parsed::More;
    };
    // A ZIP64 extra field (id 1) holds the real sizes.
    let mut compressed = u64::from(csize);
    let mut zip64 = false;
    let mut at = 0;
    while let (Some(id), Some(size)) = (u16_at(extra, at), u16_at(extra, at + 2)) {
        if id == 1 {
            zip64 = true;
            if let Some(c) = extra
                .get(at + 12..at + 20)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
            {
                if csize == u32::MAX {
                    compressed = c;
                }
            }
        }
        at += 4 + usize::from(size);
    }
    Parsed::Header(Local {
        len,
        method,
        encrypted: flags & 1 != 0,
        descriptor: flags & 8 != 0,
        compressed,
        zip64,
        name: name.to_vec(),
    })
}
