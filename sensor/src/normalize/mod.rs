//! Normalization before matching: turns a reassembled TCP stream (or a UDP
//! payload) into the bytes a person would read, so signatures match
//! however the data was wrapped.
//!
//! * [`http`]: HTTP/1.x requests and responses. Headers are parsed with
//!   bounds (a block past them is an anomaly, still read line by line);
//!   bodies are framed by `Content-Length`, chunked transfer or the end of
//!   the connection, as a server reads them; [`body`] undoes stacked
//!   content and transfer codings (gzip, zlib/raw deflate, bounded, see
//!   [`decode::Inflater`]; a body that does not inflate is scanned raw);
//!   request targets with a query string and
//!   `application/x-www-form-urlencoded` bodies are URL-decoded, JSON
//!   bodies have their string escapes and HTML/XML bodies their character
//!   references decoded ([`escape`]), by `Content-Type` or by sniffing.
//!   The header block is passed on as it is.
//! * [`smtp`]: SMTP commands as they are, and the message after `DATA`
//!   through [`mime`]: headers as they are, MIME multipart parts with
//!   `base64` and `quoted-printable` transfer encodings decoded.
//! * Anything else is passed on raw, unless [`encrypted`] recognises an
//!   encrypted session (TLS from its first record or mid-connection, SSH,
//!   TLS after `STARTTLS`): its bytes are counted by kind, not scanned.
//!
//! Normalizers push into a [`Sink`]: `data` for normalized bytes, and
//! `boundary` where one logical unit (a header block, a body, a MIME part)
//! ends, so a signature is never matched across two unrelated units.
//!
//! Every parser works on untrusted bytes: no indexing, every length is
//! checked against what remains and against a maximum ([`Limits`]), every
//! loop consumes input or stops. When input does not parse, the normalizer
//! falls back to passing the rest of the stream on raw (counted), so odd
//! traffic is still scanned.

pub mod body;
pub mod decode;
pub mod encrypted;
pub mod escape;
pub mod http;
pub mod mime;
pub mod multipart;
pub mod smtp;

/// Where normalized bytes go.
pub trait Sink {
    /// The next normalized bytes of the current unit.
    fn data(&mut self, bytes: &[u8]);
    /// The current unit ended; the next bytes are unrelated to it.
    fn boundary(&mut self);
}

/// Bounds of the normalizers. Each trades memory or CPU for how much odd
/// input is still understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest HTTP header block (start line and headers) parsed; a longer
    /// one is passed on raw and the stream is no longer parsed as HTTP.
    /// Buffered per stream while incomplete. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Longest SMTP/MIME line kept whole; longer lines are processed in
    /// pieces of this size. Buffered per stream. Default 8 KiB.
    pub max_line_bytes: usize,
    /// Most decompressed bytes per HTTP body; the rest of the body is not
    /// inflated (counted as `decompress_capped`). Default 16 MiB.
    pub max_decompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed bytes accepted (bombs
    /// reach 1000:1); beyond it decompression stops (counted). Default 100.
    pub max_ratio: u64,
    /// Deepest MIME multipart nesting followed. Default 8.
    pub max_mime_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_line_bytes: 8 * 1024,
            max_decompressed_bytes: 16 * 1024 * 1024,
            max_ratio: 100,
            max_mime_depth: 8,
        }
    }
}

/// What the normalizers did, summed over all streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NormalizeStats {
    /// HTTP messages (requests and responses) parsed.
    pub http_messages: u64,
    /// HTTP streams given up on (bad framing, oversized headers); the rest
    /// of each was scanned raw.
    pub http_errors: u64,
    /// Bodies inflated (gzip or deflate).
    pub bodies_inflated: u64,
    /// Bodies whose decompression stopped at the size or ratio cap.
    pub decompress_capped: u64,
    /// Bodies whose compressed data was corrupt.
    pub decompress_errors: u64,
    /// SMTP messages (`DATA` or `BDAT` chunks) parsed.
    pub smtp_messages: u64,
    /// MIME parts decoded from base64 or quoted-printable.
    pub mime_parts_decoded: u64,
    /// MIME boundaries not followed because nesting was too deep.
    pub mime_too_deep: u64,
    /// Bodies with a content coding the sensor cannot undo (`br`, `zstd`,
    /// unknown names): scanned as they are from that layer in.
    pub encoding_unknown: u64,
    /// Bodies labelled compressed that did not inflate: scanned raw.
    pub encoding_not_compressed: u64,
    /// Bodies with more stacked codings than are undone
    /// ([`body::MAX_LAYERS`]): the inner ones are scanned as they are.
    pub encoding_layers_capped: u64,
    /// HTTP messages whose header block broke a cap (bytes or lines):
    /// parsed on line by line without buffering, body still scanned.
    pub http_header_overflow: u64,
    /// HTTP messages framed ambiguously (`Content-Length` with chunked
    /// transfer, or conflicting lengths): framed as a server reads them.
    pub http_ambiguous_framing: u64,
    /// HTTP messages with a header folded over several lines (obs-fold,
    /// obsolete since RFC 7230 but accepted by some servers): read
    /// unfolded.
    pub http_folded_headers: u64,
    /// Bodies whose JSON string escapes were decoded.
    pub bodies_json_unescaped: u64,
    /// Bodies whose HTML/XML character references were decoded.
    pub bodies_html_unescaped: u64,
    /// `multipart/*` HTTP bodies split into their parts.
    pub multipart_bodies: u64,
    /// Encrypted sessions recognised and not scanned.
    pub encrypted: encrypted::SkipStats,
    /// Content extraction (documents and archives).
    pub content: crate::content::ContentStats,
}

impl NormalizeStats {
    /// Every counter under a stable name (as summaries and heartbeats
    /// report them).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut all = vec![
            ("http_messages", self.http_messages),
            ("http_errors", self.http_errors),
            ("bodies_inflated", self.bodies_inflated),
            ("decompress_capped", self.decompress_capped),
            ("decompress_errors", self.decompress_errors),
            ("smtp_messages", self.smtp_messages),
            ("mime_parts_decoded", self.mime_parts_decoded),
            ("mime_too_deep", self.mime_too_deep),
            ("encoding_unknown", self.encoding_unknown),
            ("encoding_not_compressed", self.encoding_not_compressed),
            ("encoding_layers_capped", self.encoding_layers_capped),
            ("http_header_overflow", self.http_header_overflow),
            ("http_ambiguous_framing", self.http_ambiguous_framing),
            ("http_folded_headers", self.http_folded_headers),
            ("bodies_json_unescaped", self.bodies_json_unescaped),
            ("bodies_html_unescaped", self.bodies_html_unescaped),
            ("multipart_bodies", self.multipart_bodies),
            ("encrypted_streams", self.encrypted.streams),
            ("skipped_tls_bytes", self.encrypted.tls_bytes),
            ("skipped_dtls_bytes", self.encrypted.dtls_bytes),
            ("skipped_ssh_bytes", self.encrypted.ssh_bytes),
            ("skipped_quic_bytes", self.encrypted.quic_bytes),
            ("skipped_wireguard_bytes", self.encrypted.wireguard_bytes),
        ];
        all.extend(self.content.counters());
        all
    }

    /// Adds every counter of `other` to this one.
    pub fn add(&mut self, other: &NormalizeStats) {
        let NormalizeStats {
            http_messages,
            http_errors,
            bodies_inflated,
            decompress_capped,
            decompress_errors,
            smtp_messages,
            mime_parts_decoded,
            mime_too_deep,
            encoding_unknown,
            encoding_not_compressed,
            encoding_layers_capped,
            http_header_overflow,
            http_ambiguous_framing,
            http_folded_headers,
            bodies_json_unescaped,
            bodies_html_unescaped,
            multipart_bodies,
            encrypted,
            content,
        } = other;
        self.content.add(content);
        self.http_messages += http_messages;
        self.http_errors += http_errors;
        self.bodies_inflated += bodies_inflated;
        self.decompress_capped += decompress_capped;
        self.decompress_errors += decompress_errors;
        self.smtp_messages += smtp_messages;
        self.mime_parts_decoded += mime_parts_decoded;
        self.mime_too_deep += mime_too_deep;
        self.encoding_unknown += encoding_unknown;
        self.encoding_not_compressed += encoding_not_compressed;
        self.encoding_layers_capped += encoding_layers_capped;
        self.http_header_overflow += http_header_overflow;
        self.http_ambiguous_framing += http_ambiguous_framing;
        self.http_folded_headers += http_folded_headers;
        self.bodies_json_unescaped += bodies_json_unescaped;
        self.bodies_html_unescaped += bodies_html_unescaped;
        self.multipart_bodies += multipart_bodies;
        let e = &mut self.encrypted;
        e.streams += encrypted.streams;
        e.tls_bytes += encrypted.tls_bytes;
        e.dtls_bytes += encrypted.dtls_bytes;
        e.ssh_bytes += encrypted.ssh_bytes;
        e.quic_bytes += encrypted.quic_bytes;
        e.wireguard_bytes += encrypted.wireguard_bytes;
    }
}

/// Which parser a stream gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProto {
    /// HTTP/1.x.
    Http,
    /// SMTP, client to server.
    Smtp,
    /// Any other TCP stream.
    Tcp,
    /// A UDP payload.
    Udp,
}

impl AppProto {
    /// The `app_proto` name of incidents.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProto::Http => "http",
            AppProto::Smtp => "smtp",
            AppProto::Tcp => "tcp",
            AppProto::Udp => "udp",
        }
    }
}

/// Whether the first bytes of a stream look like an HTTP/1.x request or
/// response.
pub fn looks_like_http(first: &[u8]) -> bool {
    const STARTS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"PATCH ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"HTTP/1.",
    ];
    STARTS.iter().any(|m| first.starts_with(m))
}

/// One direction's normalizer, chosen on its first bytes.
#[derive(Debug)]
pub enum Normalizer {
    /// HTTP/1.x.
    Http(Box<http::Http>),
    /// SMTP client stream.
    Smtp(smtp::Smtp),
    /// Raw bytes, unless an encrypted session (then skipped, counted).
    Opaque(encrypted::Opaque),
    /// UDP datagrams, each its own unit, unless an encrypted session's.
    Datagrams(encrypted::Datagrams),
    /// Raw bytes.
    Raw,
}

impl Normalizer {
    /// A normalizer for `proto`.
    pub fn new(proto: AppProto) -> Self {
        match proto {
            AppProto::Http => Normalizer::Http(Box::default()),
            AppProto::Smtp => Normalizer::Smtp(smtp::Smtp::new()),
            AppProto::Tcp => Normalizer::Opaque(encrypted::Opaque::new()),
            AppProto::Udp => Normalizer::Datagrams(encrypted::Datagrams::default()),
        }
    }

    /// Feeds the next bytes of the stream; `exchange` is the connection's
    /// HTTP request queue, shared by both directions.
    pub fn push(
        &mut self,
        data: &[u8],
        limits: &Limits,
        stats: &mut NormalizeStats,
        exchange: &mut http::Exchange,
        sink: &mut impl Sink,
    ) {
        match self {
            Normalizer::Http(h) => h.push(data, limits, stats, exchange, sink),
            Normalizer::Smtp(s) => s.push(data, limits, stats, sink),
            Normalizer::Opaque(o) => o.push(data, &mut stats.encrypted, sink),
            Normalizer::Datagrams(d) => d.push(data, &mut stats.encrypted, sink),
            Normalizer::Raw => sink.data(data),
        }
    }

    /// Bytes are missing here: parsing state is no longer trustworthy.
    pub fn gap(&mut self, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        match self {
            Normalizer::Http(h) => h.gap(stats, sink),
            Normalizer::Smtp(s) => s.gap(sink),
            Normalizer::Opaque(o) => o.gap(&mut stats.encrypted, sink),
            Normalizer::Datagrams(_) => sink.boundary(),
            Normalizer::Raw => sink.boundary(),
        }
    }

    /// The stream ended: flush what is pending.
    pub fn finish(&mut self, limits: &Limits, stats: &mut NormalizeStats, sink: &mut impl Sink) {
        match self {
            Normalizer::Http(h) => h.finish(limits, stats, sink),
            Normalizer::Smtp(s) => s.finish(limits, stats, sink),
            Normalizer::Opaque(o) => o.finish(&mut stats.encrypted, sink),
            Normalizer::Datagrams(_) => sink.boundary(),
            Normalizer::Raw => sink.boundary(),
        }
    }
}

/// Collects normalized output (tests and the `signatures test` tooling).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collect {
    /// Units, each ended by a boundary (the last may be open).
    pub units: Vec<Vec<u8>>,
    open: bool,
}

impl Collect {
    /// All output joined, units separated by `|`.
    pub fn joined(&self) -> Vec<u8> {
        self.units.join(&b"|"[..])
    }
}

impl Sink for Collect {
    fn data(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.open {
            self.units.push(Vec::new());
            self.open = true;
        }
        if let Some(u) = self.units.last_mut() {
            u.extend_from_slice(bytes);
        }
    }

    fn boundary(&mut self) {
        self.open = false;
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// SplitMix64, for deterministic noise without a dependency.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Protocol fragments glued together at random with random bytes.
    fn noise(rng: &mut Mix, len: usize) -> Vec<u8> {
        const PIECES: [&[u8]; 16] = [
            b"POST / HTTP/1.1\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"Content-Length: 5\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Content-Encoding: gzip\r\n",
            b"Content-Encoding: deflate\r\n",
            b"Content-Type: application/x-www-form-urlencoded\r\n",
            b"\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"%E7%",
            b"DATA\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"\r\n--b\r\n",
            b"\r\n.\r\n",
            b"=?utf-8?B?5py6?= =?x?Q?=E7_?=",
        ];
        let mut out = Vec::new();
        while out.len() < len {
            let r = rng.next();
            if r.is_multiple_of(3) {
                out.extend_from_slice(PIECES[(r >> 8) as usize % PIECES.len()]);
            } else {
                out.extend((0..(r >> 16) % 40).map(|i| (rng.next() >> (i % 7)) as u8));
            }
        }
        out
    }

    #[test]
    fn random_input_in_random_pieces_never_panics() {
        let limits = Limits {
            max_header_bytes: 1024,
            max_line_bytes: 64,
            ..Limits::default()
        };
        for seed in 0..300u64 {
            let mut rng = Mix(seed);
            let input = noise(&mut rng, 3000);
            for proto in [AppProto::Http, AppProto::Smtp, AppProto::Tcp] {
                let mut n = Normalizer::new(proto);
                let mut exchange = http::Exchange::default();
                let mut stats = NormalizeStats::default();
                let mut sink = Collect::default();
                let mut at = 0;
                while at < input.len() {
                    let len = 1 + (rng.next() % 200) as usize;
                    let end = (at + len).min(input.len());
                    n.push(
                        &input[at..end],
                        &limits,
                        &mut stats,
                        &mut exchange,
                        &mut sink,
                    );
                    if rng.next().is_multiple_of(50) {
                        n.gap(&mut stats, &mut sink);
                    }
                    at = end;
                }
                n.finish(&limits, &mut stats, &mut sink);
            }
        }
    }
}
