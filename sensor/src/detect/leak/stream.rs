//! Stream handling: the parser of each direction, chosen on its first
//! bytes (HTTP, SMTP or raw), fed with reassembled chunks and gaps; its
//! output goes through the direction's content-extraction stage.

use crate::content::{Content, ContentLimits, ContentSink, ContentStats};
use crate::normalize::{self, looks_like_http, AppProto, NormalizeStats, Normalizer, Sink};

/// Bytes a direction must have delivered before its parser is chosen, so
/// a request line cut into tiny first segments (`P`, `OST /`) still
/// selects HTTP.
pub(super) const SNIFF_BYTES: usize = 8;

/// The normalizer of one direction, chosen on its first bytes.
#[derive(Debug, Default)]
pub(super) struct Parser {
    pub(super) norm: Option<Normalizer>,
    /// First bytes, held (at most one chunk) until there are enough.
    pub(super) sniff: Vec<u8>,
    /// Content extraction on the normalizer's output.
    pub(super) content: Content,
}

/// What choosing and running a parser needs besides the bytes.
pub(super) struct ParseCtx<'a> {
    pub(super) app: &'a mut AppProto,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) limits: &'a normalize::Limits,
    pub(super) content: &'a ContentLimits,
    pub(super) stats: &'a mut NormalizeStats,
    pub(super) exchange: &'a mut normalize::http::Exchange,
}

impl Parser {
    pub(super) fn choose(first: &[u8], cx: &mut ParseCtx<'_>) -> Normalizer {
        let chosen = if looks_like_http(first) {
            AppProto::Http
        } else if smtp_port(cx.sport) || smtp_port(cx.dport) {
            AppProto::Smtp
        } else {
            AppProto::Tcp
        };
        *cx.app = chosen;
        // Only the client side of SMTP carries DATA.
        if chosen == AppProto::Smtp && !smtp_port(cx.dport) {
            Normalizer::Raw
        } else {
            Normalizer::new(chosen)
        }
    }

    pub(super) fn data(&mut self, data: &[u8], cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        let mut cs = ContentStats::default();
        {
            let mut sink = ContentSink {
                content: &mut self.content,
                limits: cx.content,
                stats: &mut cs,
                sink,
            };
            Parser::data_to(&mut self.norm, &mut self.sniff, data, cx, &mut sink);
        }
        cx.stats.content.add(&cs);
    }

    fn data_to(
        norm: &mut Option<Normalizer>,
        sniff: &mut Vec<u8>,
        data: &[u8],
        cx: &mut ParseCtx<'_>,
        sink: &mut impl Sink,
    ) {
        if let Some(n) = norm {
            n.push(data, cx.limits, cx.stats, cx.exchange, sink);
            return;
        }
        if sniff.is_empty() && data.len() >= SNIFF_BYTES {
            let mut n = Parser::choose(data, cx);
            n.push(data, cx.limits, cx.stats, cx.exchange, sink);
            *norm = Some(n);
            return;
        }
        sniff.extend_from_slice(data);
        if sniff.len() >= SNIFF_BYTES {
            Parser::release_sniff(norm, sniff, cx, sink);
        }
    }

    /// Chooses with what was held (at least `SNIFF_BYTES`, or the end of
    /// the stream or a gap came first) and parses it.
    fn release_sniff(
        norm: &mut Option<Normalizer>,
        sniff: &mut Vec<u8>,
        cx: &mut ParseCtx<'_>,
        sink: &mut impl Sink,
    ) {
        if norm.is_some() || sniff.is_empty() {
            return;
        }
        let held = std::mem::take(sniff);
        let mut n = Parser::choose(&held, cx);
        n.push(&held, cx.limits, cx.stats, cx.exchange, sink);
        *norm = Some(n);
    }

    pub(super) fn gap(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        self.end(cx, sink, false);
    }

    pub(super) fn finish(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        self.end(cx, sink, true);
    }

    /// A gap (`finish` false) or the end of the stream.
    fn end(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink, finish: bool) {
        let mut cs = ContentStats::default();
        {
            let mut sink = ContentSink {
                content: &mut self.content,
                limits: cx.content,
                stats: &mut cs,
                sink,
            };
            Parser::release_sniff(&mut self.norm, &mut self.sniff, cx, &mut sink);
            match &mut self.norm {
                Some(n) if finish => n.finish(cx.limits, cx.stats, &mut sink),
                Some(n) => n.gap(cx.stats, &mut sink),
                None => sink.boundary(),
            }
        }
        cx.stats.content.add(&cs);
    }
}

pub(super) fn smtp_port(p: u16) -> bool {
    matches!(p, 25 | 587)
}
