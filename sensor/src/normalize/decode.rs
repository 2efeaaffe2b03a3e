//! Content decoders shared by the normalizers: URL decoding, bounded
//! inflation (gzip, zlib, raw deflate), streaming base64 and
//! quoted-printable.

use base64::Engine as _;

use super::{Limits, NormalizeStats, Sink};

const fn hex_table() -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => 0xff,
        };
        i += 1;
    }
    t
}
static HEX: [u8; 256] = hex_table();

/// `HEX_PAIR[h << 8 | l]`: the byte `%hl` stands for, or 0x100 when `h` or
/// `l` is not a hex digit (128 KiB, built at compile time).
static HEX_PAIR: [u16; 65536] = hex_pair_table();

const fn hex_pair_table() -> [u16; 65536] {
    let mut t = [0x100u16; 65536];
    let mut i = 0;
    while i < 65536 {
        let (h, l) = (HEX[i >> 8], HEX[i & 0xff]);
        if h != 0xff && l != 0xff {
            t[i] = (h as u16) << 4 | l as u16;
        }
        i += 1;
    }
    t
}

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    let v = HEX[usize::from(b)];
    (v != 0xff).then_some(v)
}

/// Streaming `application/x-www-form-urlencoded` / percent decoder: `%XX`
/// becomes the byte, `+` a space; a `%` not followed by two hex digits is
/// kept as it is. Escapes split across calls are joined.
#[derive(Clone, Debug, Default)]
pub struct UrlDecoder {
    /// `None`: normal; `Some(None)`: after `%`; `Some(Some(h))`: after `%`
    /// and one hex digit `h`.
    escape: Option<Option<u8>>,
    out: Vec<u8>,
}

impl UrlDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        UrlDecoder::default()
    }

    /// Decodes `input` and pushes the result to `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        self.out.clear();
        let mut i = 0;
        // A pending escape from the last call: at most two more bytes.
        while self.escape.is_some() {
            let Some(&b) = input.get(i) else {
                return;
            };
            match self.escape {
                Some(None) if hex_value(b).is_some() => {
                    self.escape = Some(Some(b));
                    i += 1;
                }
                Some(Some(h)) => {
                    self.escape = None;
                    match (hex_value(h), hex_value(b)) {
                        (Some(hv), Some(lv)) => {
                            self.out.push(hv << 4 | lv);
                            i += 1;
                        }
                        _ => self.out.extend_from_slice(&[b'%', h]),
                    }
                }
                _ => {
                    self.escape = None;
                    self.out.push(b'%');
                }
            }
        }
        let rest = input.get(i..).unwrap_or_default();
        if self.out.is_empty() && memchr::memchr2(b'%', b'+', rest).is_none() {
            sink.data(rest);
            return;
        }
        self.out.reserve(rest.len());
        let mut i = 0;
        // Each round copies a run without `%` and `+`, then decodes the
        // escapes and pluses that follow it; it consumes at least one byte.
        while let Some(tail) = rest.get(i..).filter(|t| !t.is_empty()) {
            let run = memchr::memchr2(b'%', b'+', tail).unwrap_or(tail.len());
            self.out
                .extend_from_slice(tail.get(..run).unwrap_or_default());
            i += run;
            loop {
                // A run of valid escapes: sixteen at a time while they
                // last (text where every byte is escaped), then three
                // bytes at a time.
                let mut t = rest.get(i..).unwrap_or_default();
                while let Some(block) = t
                    .first_chunk::<{ escapes::BLOCK }>()
                    .filter(|b| escapes::looks_like_run(b))
                {
                    let Some(bytes) = escapes::decode16(block) else {
                        break;
                    };
                    self.out.extend_from_slice(&bytes);
                    t = t.get(escapes::BLOCK..).unwrap_or_default();
                }
                while let [b'%', h, l, more @ ..] = t {
                    let v = HEX_PAIR[usize::from(*h) << 8 | usize::from(*l)];
                    let Ok(byte) = u8::try_from(v) else {
                        break;
                    };
                    self.out.push(byte);
                    t = more;
                }
                i = rest.len() - t.len();
                match t {
                    [b'+', ..] => {
                        self.out.push(b' ');
                        i += 1;
                    }
                    [b'%', h] if hex_value(*h).is_some() => {
                        self.escape = Some(Some(*h));
                        i += 2;
                        break;
                    }
                    [b'%'] => {
                        self.escape = Some(None);
                        i += 1;
                        break;
                    }
                    [b'%', ..] => {
                        // Not an escape: the `%` stays as it is.
                        self.out.push(b'%');
                        i += 1;
                        break;
                    }
                    _ => break,
                }
            }
        }
        sink.data(&self.out);
    }

    /// Ends the input: a dangling `%` is passed on as it is.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        match self.escape.take() {
            Some(None) => sink.data(b"%"),
            Some(Some(h)) => sink.data(&[b'%', h]),
            None => {}
        }
    }
}

/// Sixteen percent escapes decoded at once with SSSE3 shuffles, for text
/// where every byte is escaped (URL-encoded UTF-8 or GBK: `%E7%BB%9D…`).
#[allow(unsafe_code)]
mod escapes {
    /// Input bytes of one block: sixteen `%hl` escapes.
    pub const BLOCK: usize = 48;

    /// A cheap first look: escapes at the start, the second place and the
    /// end of the block (text with an escape here and there fails it
    /// without the vector work).
    #[inline]
    pub fn looks_like_run(block: &[u8; BLOCK]) -> bool {
        block[0] == b'%' && block[3] == b'%' && block[BLOCK - 3] == b'%'
    }

    /// The sixteen bytes `block` stands for, or `None` unless it is exactly
    /// sixteen valid escapes (then the caller decodes it byte by byte).
    #[inline]
    pub fn decode16(block: &[u8; BLOCK]) -> Option<[u8; 16]> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("ssse3") {
            // SAFETY: the CPU has SSSE3 (checked just above).
            return unsafe { x86::decode16(block) };
        }
        let _ = block;
        None
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_shuffle_epi8, _mm_slli_epi16,
            _mm_storeu_si128, _mm_sub_epi8,
        };

        use super::BLOCK;

        /// Bit `3k` for the `%` of escape `k`.
        const PERCENTS: u64 = {
            let mut m = 0u64;
            let mut k = 0;
            while k < 16 {
                m |= 1 << (3 * k);
                k += 1;
            }
            m
        };
        /// Bits of the hex digits: the rest of the 48.
        const DIGITS: u64 = ((1u64 << BLOCK) - 1) & !PERCENTS;

        /// Shuffle indices taking byte `3k + offset` of the block from its
        /// sixteen-byte vector `v` into lane `k` (0x80: zero).
        const fn gather(v: usize, offset: usize) -> [u8; 16] {
            let mut idx = [0x80u8; 16];
            let mut k = 0;
            while k < 16 {
                let pos = 3 * k + offset;
                if pos / 16 == v {
                    idx[k] = (pos % 16) as u8;
                }
                k += 1;
            }
            idx
        }
        const HI: [[u8; 16]; 3] = [gather(0, 1), gather(1, 1), gather(2, 1)];
        const LO: [[u8; 16]; 3] = [gather(0, 2), gather(1, 2), gather(2, 2)];

        fn load(bytes: &[u8; 16]) -> __m128i {
            // SAFETY: sixteen readable bytes; no alignment needed.
            unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
        }

        /// See [`super::decode16`].
        ///
        /// # Safety
        /// The CPU must have SSSE3.
        #[target_feature(enable = "ssse3")]
        pub unsafe fn decode16(block: &[u8; BLOCK]) -> Option<[u8; 16]> {
            let (a, rest) = block.split_first_chunk::<16>()?;
            let (b, c) = rest.split_first_chunk::<16>()?;
            let c: &[u8; 16] = c.try_into().ok()?;
            let v = [load(a), load(b), load(c)];
            let (mut percents, mut digits) = (0u64, 0u64);
            let mut nibble = [_mm_set1_epi8(0); 3];
            for (j, (&x, n)) in v.iter().zip(&mut nibble).enumerate() {
                // '0'..='9' → 0..=9; 'a'..='f' and 'A'..='F' → 10..=15.
                let dec = _mm_sub_epi8(x, _mm_set1_epi8(b'0' as i8));
                let is_dec = _mm_cmpeq_epi8(_mm_min_epu8(dec, _mm_set1_epi8(9)), dec);
                let alpha = _mm_sub_epi8(
                    _mm_or_si128(x, _mm_set1_epi8(0x20)),
                    _mm_set1_epi8(b'a' as i8),
                );
                let is_alpha = _mm_cmpeq_epi8(_mm_min_epu8(alpha, _mm_set1_epi8(5)), alpha);
                *n = _mm_or_si128(
                    _mm_and_si128(dec, is_dec),
                    _mm_and_si128(_mm_add_epi8(alpha, _mm_set1_epi8(10)), is_alpha),
                );
                let hex = _mm_movemask_epi8(_mm_or_si128(is_dec, is_alpha)) as u16;
                let pct = _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(b'%' as i8))) as u16;
                digits |= u64::from(hex) << (16 * j);
                percents |= u64::from(pct) << (16 * j);
            }
            if percents != PERCENTS || digits & DIGITS != DIGITS {
                return None;
            }
            let pick = |idx: &[[u8; 16]; 3]| {
                let mut out = _mm_set1_epi8(0);
                for (n, i) in nibble.iter().zip(idx) {
                    out = _mm_or_si128(out, _mm_shuffle_epi8(*n, load(i)));
                }
                out
            };
            // Nibbles are at most 15: shifting 16-bit lanes by four keeps
            // each byte's bits inside it.
            let bytes = _mm_or_si128(_mm_slli_epi16(pick(&HI), 4), pick(&LO));
            let mut out = [0u8; 16];
            // SAFETY: sixteen writable bytes; no alignment needed.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) };
            Some(out)
        }
    }
}

/// Percent-decodes a whole string at once (query strings).
pub fn url_decode(input: &[u8]) -> Vec<u8> {
    let mut d = UrlDecoder::new();
    let mut c = super::Collect::default();
    d.push(input, &mut c);
    d.finish(&mut c);
    c.units.concat()
}

/// Which compressed format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `Content-Encoding: gzip` (or `x-gzip`).
    Gzip,
    /// `Content-Encoding: deflate`: zlib, or raw deflate as some servers
    /// send; told apart by the first two bytes.
    Deflate,
}

/// Where an [`Inflater`] is in its body.
#[derive(Debug)]
enum Stage {
    /// Gathering a gzip member header (it may arrive in pieces).
    GzipHeader(Vec<u8>),
    /// Waiting for the first two bytes to tell zlib from raw deflate.
    Sniff(Vec<u8>),
    /// Inflating.
    Inflate,
    /// Gathering the gzip trailer (CRC-32 and length) after the last block.
    GzipTrailer(Vec<u8>),
    /// The compressed stream ended, or stopped at a cap or on corrupt data:
    /// the rest is dropped.
    Done,
}

/// Longest gzip header taken (name, comment and extra field included).
const MAX_GZIP_HEADER: usize = 64 * 1024;
/// Output produced per decompression step.
const OUT_CHUNK: usize = 32 * 1024;
/// Output always allowed whatever the ratio: a tiny body compresses well.
const RATIO_FREE_BYTES: u64 = 64 * 1024;

/// A bounded streaming inflater: stops at [`Limits::max_decompressed_bytes`]
/// of output or [`Limits::max_ratio`] output per input byte (decompression
/// bombs), counting either in [`NormalizeStats::decompress_capped`].
///
/// It drives flate2's low-level [`flate2::Decompress`] with its own output
/// buffer and hands each step's output straight to the sink: the `write`
/// adaptors zero a 32 KiB buffer on every call and copy the output once
/// more. gzip headers and trailers are parsed here (RFC 1952); the trailer's
/// CRC-32 and length are checked, zlib's Adler-32 by flate2.
#[derive(Debug)]
pub struct Inflater {
    stage: Stage,
    gzip: bool,
    engine: Option<flate2::Decompress>,
    crc: crc32fast::Hasher,
    /// Output of the current gzip member (for its trailer).
    member_out: u64,
    out: Vec<u8>,
    /// Compressed bytes taken by every member so far (the ratio cap's
    /// base; a new member's engine counts from zero).
    total_in: u64,
    total_out: u64,
    max_out: u64,
    max_ratio: u64,
    /// Gzip members begun (the first may turn out to be zlib or raw
    /// deflate, as some servers label them).
    members: u64,
    corrupt: bool,
}

impl Inflater {
    /// An inflater for `kind` with the caps of `limits`.
    pub fn new(kind: Compression, limits: &Limits) -> Self {
        let (stage, gzip) = match kind {
            Compression::Gzip => (Stage::GzipHeader(Vec::new()), true),
            Compression::Deflate => (Stage::Sniff(Vec::new()), false),
        };
        Inflater {
            stage,
            gzip,
            engine: None,
            crc: crc32fast::Hasher::new(),
            member_out: 0,
            out: Vec::new(),
            total_in: 0,
            total_out: 0,
            max_out: limits.max_decompressed_bytes,
            max_ratio: limits.max_ratio,
            members: 0,
            corrupt: false,
        }
    }

    /// Inflates `input` and pushes the output to `sink`.
    pub fn push(&mut self, mut input: &[u8], stats: &mut NormalizeStats, sink: &mut impl Sink) {
        // One stage at a time: a gzip body may hold several members
        // (RFC 1952), and what follows one member's trailer is the next
        // member's header. Every round consumes input or changes stage.
        while !input.is_empty() {
            let stage = std::mem::discriminant(&self.stage);
            let used = self.push_once(input, stats, sink);
            input = input.get(used..).unwrap_or_default();
            if used == 0 && std::mem::discriminant(&self.stage) == stage {
                return;
            }
        }
    }

    /// Feeds `input` to the current stage; returns how much of it the
    /// stage took (the rest belongs to the next stage).
    fn push_once(
        &mut self,
        input: &[u8],
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) -> usize {
        match &mut self.stage {
            Stage::GzipHeader(head)
                if self.members == 0 && head.is_empty() && input.first() != Some(&0x1f) =>
            {
                // Labelled gzip but not gzip (servers send zlib or raw
                // deflate as `gzip` too): read it as deflate.
                self.gzip = false;
                self.stage = Stage::Sniff(Vec::new());
                0
            }
            Stage::GzipHeader(head) => {
                let held = head.len();
                // Parse in place when the header is whole in this piece.
                let len = if held == 0 {
                    gzip_header_len(input)
                } else {
                    head.extend_from_slice(input);
                    gzip_header_len(head)
                };
                match len {
                    Ok(Some(n)) => {
                        self.members += 1;
                        self.engine = Some(flate2::Decompress::new(false));
                        self.crc = crc32fast::Hasher::new();
                        self.member_out = 0;
                        self.stage = Stage::Inflate;
                        // The header's bytes that came from this piece (the
                        // held ones were not a whole header: n > held).
                        n.saturating_sub(held)
                    }
                    Ok(None) if held + input.len() <= MAX_GZIP_HEADER => {
                        if held == 0 {
                            head.extend_from_slice(input);
                        }
                        input.len()
                    }
                    Ok(None) | Err(()) => {
                        self.corrupt(stats);
                        input.len()
                    }
                }
            }
            Stage::Sniff(head) if head.is_empty() && input.first() == Some(&0x1f) => {
                // Labelled deflate but gzip.
                self.gzip = true;
                self.stage = Stage::GzipHeader(Vec::new());
                0
            }
            Stage::Sniff(head) => {
                head.extend_from_slice(input);
                let (Some(&a), Some(&b)) = (head.first(), head.get(1)) else {
                    // Fewer than two bytes so far: keep sniffing.
                    return input.len();
                };
                let zlib = a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0;
                let all = std::mem::take(head);
                self.engine = Some(flate2::Decompress::new(zlib));
                self.stage = Stage::Inflate;
                self.inflate(&all, stats, sink);
                // Anything after a zlib or raw stream is dropped.
                input.len()
            }
            Stage::Inflate => self.inflate(input, stats, sink),
            Stage::GzipTrailer(_) => self.trailer(input, stats),
            Stage::Done => input.len(),
        }
    }

    /// Ends the body, flushing what the decompressor still holds. A body
    /// cut short (the connection closed mid-stream) is not an error.
    pub fn finish(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        if matches!(self.stage, Stage::Inflate) {
            self.step(&[], flate2::FlushDecompress::Finish, stats, sink);
        }
        self.stage = Stage::Done;
        self.engine = None;
    }

    /// Inflates from `input`; returns how much of it the compressed
    /// stream took (all of it unless the stream ended inside it).
    fn inflate(&mut self, input: &[u8], stats: &mut NormalizeStats, sink: &mut impl Sink) -> usize {
        let mut taken = 0;
        // Each step consumes input or produces output, or the stream
        // needs more input: the loop ends.
        while matches!(self.stage, Stage::Inflate) {
            let rest = input.get(taken..).unwrap_or_default();
            let Some((consumed, produced)) =
                self.step(rest, flate2::FlushDecompress::None, stats, sink)
            else {
                break;
            };
            taken += consumed;
            if consumed == 0 && produced == 0 {
                break;
            }
        }
        match self.stage {
            // Ended inside this piece: the trailer follows.
            Stage::GzipTrailer(_) => taken,
            _ => input.len(),
        }
    }

    /// One decompression step; returns the input consumed and the output
    /// produced, or `None` once the stream ended, was capped or is corrupt.
    fn step(
        &mut self,
        input: &[u8],
        flush: flate2::FlushDecompress,
        stats: &mut NormalizeStats,
        sink: &mut impl Sink,
    ) -> Option<(usize, usize)> {
        let engine = self.engine.as_mut()?;
        if self.out.is_empty() {
            self.out = vec![0; OUT_CHUNK];
        }
        let (in_before, out_before) = (engine.total_in(), engine.total_out());
        let result = engine.decompress(input, &mut self.out, flush);
        let consumed = usize::try_from(engine.total_in() - in_before).unwrap_or(0);
        let produced = usize::try_from(engine.total_out() - out_before).unwrap_or(0);
        self.total_in = self.total_in.saturating_add(consumed as u64);
        if produced > 0 {
            let total = self.total_out.saturating_add(produced as u64);
            let ratio_limit = self
                .total_in
                .saturating_mul(self.max_ratio)
                .max(RATIO_FREE_BYTES);
            if total > self.max_out || total > ratio_limit {
                stats.decompress_capped += 1;
                tracing::debug!(
                    event = "decompress_capped",
                    "HTTP body inflation stopped at the size or ratio cap"
                );
                self.stage = Stage::Done;
                self.engine = None;
                return None;
            }
            self.total_out = total;
            self.member_out += produced as u64;
            let chunk = self.out.get(..produced).unwrap_or_default();
            if self.gzip {
                self.crc.update(chunk);
            }
            sink.data(chunk);
        }
        match result {
            Ok(flate2::Status::StreamEnd) => {
                self.engine = None;
                self.stage = if self.gzip {
                    Stage::GzipTrailer(Vec::with_capacity(8))
                } else {
                    Stage::Done
                };
                Some((consumed, produced))
            }
            Ok(_) => Some((consumed, produced)),
            Err(_) => {
                self.corrupt(stats);
                None
            }
        }
    }

    /// Takes the gzip trailer's bytes and checks its CRC-32 and length
    /// once all eight are here; returns how many it took. Another member
    /// may follow.
    fn trailer(&mut self, input: &[u8], stats: &mut NormalizeStats) -> usize {
        let Stage::GzipTrailer(t) = &mut self.stage else {
            return 0;
        };
        let take = 8usize.saturating_sub(t.len()).min(input.len());
        t.extend_from_slice(input.get(..take).unwrap_or_default());
        let (Some((crc, len)), true) = (t.split_first_chunk::<4>(), t.len() == 8) else {
            return take;
        };
        let Ok(len) = <[u8; 4]>::try_from(len) else {
            return take;
        };
        // ISIZE is the member's length modulo 2^32.
        let ok = u32::from_le_bytes(*crc) == self.crc.clone().finalize()
            && u32::from_le_bytes(len) == self.member_out as u32;
        if ok {
            self.stage = Stage::GzipHeader(Vec::new());
        } else {
            self.corrupt(stats);
        }
        take
    }

    /// Whether the compressed data turned out corrupt (or not compressed
    /// at all); the inflater takes no more input.
    pub fn failed(&self) -> bool {
        self.corrupt
    }

    fn corrupt(&mut self, stats: &mut NormalizeStats) {
        self.corrupt = true;
        stats.decompress_errors += 1;
        tracing::debug!(event = "decompress_error", "corrupt compressed HTTP body");
        self.stage = Stage::Done;
        self.engine = None;
    }
}

/// Length of the gzip member header (RFC 1952) at the start of `b`:
/// `Ok(None)` while more bytes are needed, `Err` if it is not one.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, ()> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let magic: &[u8] = &[0x1f, 0x8b, 8];
    let Some(&flags) = b.get(3) else {
        return if magic.starts_with(b) {
            Ok(None)
        } else {
            Err(())
        };
    };
    if !b.starts_with(magic) || flags & 0xe0 != 0 {
        return Err(());
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(&[lo, hi]) = b.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(end) = b.get(at..).and_then(|r| memchr::memchr(0, r)) else {
                return Ok(None);
            };
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((b.len() >= at).then_some(at))
}

/// Whether a byte belongs to the base64 alphabet (padding included).
const fn base64_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        i += 1;
    }
    t
}
static BASE64_ALPHABET: [bool; 256] = base64_table();

/// Base64 characters gathered before one bulk decode.
const BASE64_BATCH: usize = 8192;

/// Streaming base64 decoder for MIME bodies: characters outside the
/// alphabet (line breaks, spaces) are skipped; groups split across lines
/// are joined. Characters are gathered and decoded in bulk (a few KiB at a
/// time); a batch with padding inside (concatenated encodings) is decoded
/// group by group instead.
#[derive(Clone, Debug, Default)]
pub struct Base64Stream {
    clean: Vec<u8>,
    out: Vec<u8>,
}

impl Base64Stream {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Base64Stream::default()
    }

    /// Decodes `input` and pushes the bytes to `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl Sink) {
        let taken = self.gather_lines(input, |_| false);
        self.clean
            .extend_from_slice(input.get(taken..).unwrap_or_default());
        self.decode_full_batches(sink);
    }

    /// Takes the leading whole lines of `data` that start neither with `-`
    /// nor with `.`, line breaks dropped, in one pass over the line ends;
    /// returns how many bytes it took.
    pub fn push_plain_lines(&mut self, data: &[u8], sink: &mut impl Sink) -> usize {
        let taken = self.gather_lines(data, |first| matches!(first, b'-' | b'.'));
        self.decode_full_batches(sink);
        taken
    }

    /// Gathers the whole lines of `data` without their line breaks, up to
    /// the first line whose first byte `stops` it; returns the bytes taken.
    /// Line breaks are cut out here; any other byte outside the alphabet
    /// (rare) makes the bulk decode fail and is filtered out then.
    fn gather_lines(&mut self, data: &[u8], stops: impl Fn(u8) -> bool) -> usize {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            if data.get(start).copied().is_some_and(&stops) {
                break;
            }
            let line = data.get(start..nl).unwrap_or_default();
            self.clean
                .extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            start = nl + 1;
        }
        start
    }

    fn decode_full_batches(&mut self, sink: &mut impl Sink) {
        if self.clean.len() >= BASE64_BATCH {
            self.decode(false, sink);
        }
    }

    fn decode(&mut self, all: bool, sink: &mut impl Sink) {
        let whole = if all {
            self.clean.len()
        } else {
            self.clean.len() / 4 * 4
        };
        self.out.clear();
        let engine = &base64::engine::general_purpose::STANDARD;
        let batch = self.clean.get(..whole).unwrap_or_default();
        // SIMD bulk decode (SSSE3/AVX2 picked at run time).
        if base64_simd::STANDARD
            .decode_append(batch, &mut self.out)
            .is_err()
        {
            self.out.clear();
            if self.clean.iter().any(|&b| !BASE64_ALPHABET[usize::from(b)]) {
                // Spaces or stray characters: drop them and decode again
                // (once: what is left is all alphabet).
                self.clean.retain(|&b| BASE64_ALPHABET[usize::from(b)]);
                return self.decode(all, sink);
            }
            // Padding inside, or a bad last group: group by group.
            for quad in batch.chunks(4) {
                let mut buf = [0u8; 3];
                if let Ok(n) = engine.decode_slice(quad, &mut buf) {
                    self.out.extend_from_slice(buf.get(..n).unwrap_or_default());
                }
            }
        }
        self.clean.drain(..whole);
        sink.data(&self.out);
    }

    /// Ends the input: decodes what is gathered (an incomplete last group
    /// is dropped).
    pub fn finish(&mut self, sink: &mut impl Sink) {
        self.clean.retain(|&b| BASE64_ALPHABET[usize::from(b)]);
        let whole = self.clean.len() / 4 * 4;
        self.clean.truncate(whole);
        self.decode(true, sink);
        self.clean.clear();
    }
}

/// Decodes one quoted-printable line (without its line break) into `out`;
/// returns whether the line ended with a soft line break (`=`), in which
/// case no newline follows it.
pub fn quoted_printable_line(line: &[u8], out: &mut Vec<u8>) -> bool {
    let line = trim_end_ws(line);
    let (body, soft) = match line.strip_suffix(b"=") {
        Some(b) => (b, true),
        None => (line, false),
    };
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if b == b'=' {
            if let (Some(h), Some(l)) = (
                body.get(i + 1).copied().and_then(hex_value),
                body.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    soft
}

fn trim_end_ws(mut s: &[u8]) -> &[u8] {
    while let Some((last, rest)) = s.split_last() {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::normalize::Collect;

    fn url_in_pieces(pieces: &[&[u8]]) -> Vec<u8> {
        let mut d = UrlDecoder::new();
        let mut c = Collect::default();
        for p in pieces {
            d.push(p, &mut c);
        }
        d.finish(&mut c);
        c.units.concat()
    }

    #[test]
    fn url_decoding_joins_escapes_split_across_chunks() {
        let whole = "doc=%E7%BB%9D%E5%AF%86%E2%98%85+x".as_bytes();
        let want = "doc=绝密★ x".as_bytes();
        assert_eq!(url_decode(whole), want);
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(url_in_pieces(&[a, b]), want, "cut at {cut}");
        }
        assert_eq!(url_in_pieces(&[b"a%", b"4", b"1b"]), b"aAb");
    }

    /// The decoding rule, one byte at a time, on the whole input.
    fn url_reference(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            let esc = (b == b'%')
                .then(|| {
                    Some((
                        hex_value(*input.get(i + 1)?)?,
                        hex_value(*input.get(i + 2)?)?,
                    ))
                })
                .flatten();
            match (b, esc) {
                (_, Some((h, l))) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn url_decoding_matches_the_rule_on_noise_in_any_pieces() {
        // SplitMix64 noise over an alphabet rich in `%`, `+` and hex digits.
        let mut z = 0x1234_5678u64;
        let mut next = move || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        let alphabet = b"%%%++aF09zG x";
        for round in 0..300 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let want = url_reference(&input);
            let mut pieces = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 5) as usize;
                let (a, b) = rest.split_at(n.min(rest.len()));
                pieces.push(a);
                rest = b;
            }
            assert_eq!(
                url_in_pieces(&pieces),
                want,
                "round {round}: {:?}",
                String::from_utf8_lossy(&input)
            );
            assert_eq!(url_decode(&input), want);
        }
    }

    #[test]
    fn long_escape_runs_decode_like_the_rule_with_any_flaw_anywhere() {
        // Text where every byte is escaped goes sixteen escapes at a time;
        // one bad byte anywhere in a block must send it back to the
        // byte-by-byte path with the same result.
        let text = "绝密★文件，秘密★10年，机密 Confidential//NOFORN 0123456789".repeat(3);
        let mut escaped = Vec::new();
        for (k, b) in text.bytes().enumerate() {
            let hex = if k % 3 == 0 {
                b"0123456789abcdef"
            } else {
                b"0123456789ABCDEF"
            };
            escaped.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
        assert_eq!(url_decode(&escaped), text.as_bytes());
        let flaws: &[u8] = b"%+Gg/:@`\x00\xff z";
        for at in 0..escaped.len().min(200) {
            for &flaw in flaws {
                let mut input = escaped.clone();
                input[at] = flaw;
                let want = url_reference(&input);
                assert_eq!(url_decode(&input), want, "{flaw:#x} at {at}");
                let (a, b) = input.split_at(at / 2);
                assert_eq!(url_in_pieces(&[a, b]), want, "{flaw:#x} at {at}, cut");
            }
        }
    }

    #[test]
    fn malformed_percent_escapes_are_kept_literally() {
        assert_eq!(url_decode(b"100%zz%4"), b"100%zz%4");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate(
        kind: Compression,
        data: &[u8],
        limits: &Limits,
        piece: usize,
    ) -> (Vec<u8>, NormalizeStats) {
        let mut i = Inflater::new(kind, limits);
        let mut c = Collect::default();
        let mut stats = NormalizeStats::default();
        for p in data.chunks(piece.max(1)) {
            i.push(p, &mut stats, &mut c);
        }
        i.finish(&mut stats, &mut c);
        (c.units.concat(), stats)
    }

    #[test]
    fn gzip_and_both_deflate_flavours_inflate_in_any_pieces() {
        let text = "身份证 110101199003077777 机密★".repeat(20);
        let gz = gzip(text.as_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text.as_bytes()).unwrap();
        let zlib = z.finish().unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(text.as_bytes()).unwrap();
        let raw = r.finish().unwrap();
        for piece in [1, 7, 4096] {
            let l = Limits::default();
            assert_eq!(
                inflate(Compression::Gzip, &gz, &l, piece).0,
                text.as_bytes()
            );
            assert_eq!(
                inflate(Compression::Deflate, &zlib, &l, piece).0,
                text.as_bytes()
            );
            assert_eq!(
                inflate(Compression::Deflate, &raw, &l, piece).0,
                text.as_bytes()
            );
        }
    }

    #[test]
    fn gzip_headers_with_every_optional_field_inflate_in_any_pieces() {
        let text = "卡号 6222021234567890128 CONFIDENTIAL//".repeat(50);
        let mut e = flate2::GzBuilder::new()
            .filename("report.txt")
            .comment("quarterly")
            .extra(vec![7u8; 300])
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        let full = e.finish().unwrap();
        // The same member with FHCRC set: two header-CRC bytes after the
        // comment's NUL (not checked, skipped).
        let name_end = 10 + 2 + 300 + "report.txt".len() + 1 + "quarterly".len() + 1;
        let mut hcrc = full.clone();
        hcrc[3] |= 0x02;
        hcrc.splice(name_end..name_end, [0xab, 0xcd]);
        for gz in [&full, &hcrc] {
            for piece in [1, 5, 311, 4096] {
                let (out, stats) = inflate(Compression::Gzip, gz, &Limits::default(), piece);
                assert_eq!(out, text.as_bytes(), "piece {piece}");
                assert_eq!(stats.decompress_errors, 0, "piece {piece}");
            }
        }
    }

    #[test]
    fn every_member_of_a_multi_member_gzip_body_is_inflated() {
        // Decoders such as Go's and Python's read every member, so a
        // secret in the second one must be found too.
        let first = "季度报告 ".repeat(200);
        let second = "机密★一年 110101199003077777";
        let mut body = gzip(first.as_bytes());
        body.extend(gzip(second.as_bytes()));
        let want = format!("{first}{second}");
        for piece in [1, 2, 9, 17, 4096] {
            let (out, stats) = inflate(Compression::Gzip, &body, &Limits::default(), piece);
            assert_eq!(out, want.as_bytes(), "piece {piece}");
            assert_eq!(stats.decompress_errors, 0, "piece {piece}");
        }
        // The ratio cap counts every member's input: a large first member
        // (text at a modest ratio) does not make the second one look like
        // a bomb.
        let mut seed = 7u32;
        let big: String = (0..600_000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'a' + (seed >> 16) as u8 % 26)
            })
            .collect();
        let mut two = gzip(big.as_bytes());
        two.extend(gzip(second.as_bytes()));
        let (out, stats) = inflate(Compression::Gzip, &two, &Limits::default(), 4096);
        assert_eq!(stats.decompress_capped, 0);
        assert_eq!(out, format!("{big}{second}").as_bytes());
        // Bytes after the last member that are no gzip header are counted
        // as corrupt; what came before is kept.
        body.extend_from_slice(b"\r\n");
        let (out, stats) = inflate(Compression::Gzip, &body, &Limits::default(), 4096);
        assert_eq!(out, want.as_bytes());
        assert_eq!(stats.decompress_errors, 1);
    }

    #[test]
    fn a_gzip_trailer_that_does_not_match_is_counted() {
        let text = b"secret secret secret";
        let good = gzip(text);
        for at in [good.len() - 8, good.len() - 1] {
            // A wrong CRC-32 (first trailer byte) or length (last byte).
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            for piece in [1, 3, 4096] {
                let (out, stats) = inflate(Compression::Gzip, &bad, &Limits::default(), piece);
                assert_eq!(out, text, "the body is still scanned");
                assert_eq!(stats.decompress_errors, 1, "byte {at}, piece {piece}");
            }
        }
        // A body cut short inside the data or the trailer is not an error.
        for cut in [good.len() - 4, good.len() - 12] {
            let (_, stats) = inflate(Compression::Gzip, &good[..cut], &Limits::default(), 4096);
            assert_eq!(stats.decompress_errors, 0, "cut at {cut}");
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_ratio_cap() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        let (out, stats) = inflate(Compression::Gzip, &bomb, &Limits::default(), 4096);
        assert_eq!(stats.decompress_capped, 1);
        assert!(out.len() < 16 * 1024 * 1024, "{}", out.len());
    }

    #[test]
    fn output_stops_at_the_size_cap() {
        let limits = Limits {
            max_decompressed_bytes: 1000,
            max_ratio: 1_000_000,
            ..Limits::default()
        };
        let (out, stats) = inflate(Compression::Gzip, &gzip(&[b'a'; 5000]), &limits, 100);
        assert!(out.len() <= 1000);
        assert_eq!(stats.decompress_capped, 1);
    }

    #[test]
    fn corrupt_compressed_data_is_counted_not_panicked() {
        let mut gz = gzip(b"hello hello hello");
        if let Some(b) = gz.get_mut(12) {
            *b ^= 0xff;
        }
        let (_, stats) = inflate(Compression::Gzip, &gz, &Limits::default(), 3);
        assert_eq!(stats.decompress_errors, 1);
        let (_, stats) = inflate(Compression::Gzip, b"not gzip at all", &Limits::default(), 3);
        assert_eq!(stats.decompress_errors, 1);
    }

    #[test]
    fn base64_groups_split_across_lines_are_joined() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("秘密★十年 attachment".as_bytes());
        let (a, b) = encoded.split_at(5);
        let mut d = Base64Stream::new();
        let mut c = Collect::default();
        d.push(a.as_bytes(), &mut c);
        d.push(b"\r\n", &mut c);
        d.push(b.as_bytes(), &mut c);
        d.finish(&mut c);
        assert_eq!(c.units.concat(), "秘密★十年 attachment".as_bytes());
    }

    #[test]
    fn base64_with_stray_bytes_and_inner_padding_decodes_in_any_pieces() {
        use base64::Engine as _;
        let e = &base64::engine::general_purpose::STANDARD;
        let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut text = String::new();
        for line in e.encode(&big).as_bytes().chunks(76) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push_str("\r\n");
        }
        // Spaces and tabs inside a line, a lone CR, then a second encoding
        // after the first one's padding.
        text.insert_str(100, " \t ");
        text.insert(2000, '\r');
        text.push_str(&e.encode("绝密★"));
        let mut want = big.clone();
        want.extend_from_slice("绝密★".as_bytes());
        for piece in [1, 3, 77, 4096, text.len()] {
            let mut d = Base64Stream::new();
            let mut c = Collect::default();
            for p in text.as_bytes().chunks(piece) {
                d.push(p, &mut c);
            }
            d.finish(&mut c);
            assert!(c.units.concat() == want, "piece {piece}");
        }
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes_decode() {
        let mut out = Vec::new();
        assert!(quoted_printable_line(b"=E7=BB=9D=E5=AF=86=", &mut out));
        assert!(!quoted_printable_line(b"=E2=98=85 ok=3D", &mut out));
        assert_eq!(out, "绝密★ ok=".as_bytes());
    }
}
