//! Stream handling: the parser of each direction, chosen on its first
//! bytes (HTTP, SMTP or raw), fed with reassembled chunks and gaps.

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
}

/// What choosing and running a parser needs besides the bytes.
pub(super) struct ParseCtx<'a> {
    pub(super) app: &'a mut AppProto,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) limits: &'a normalize::Limits,
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
        if let Some(n) = &mut self.norm {
            n.push(data, cx.limits, cx.stats, cx.exchange, sink);
            return;
        }
        if self.sniff.is_empty() && data.len() >= SNIFF_BYTES {
            let mut n = Parser::choose(data, cx);
            n.push(data, cx.limits, cx.stats, cx.exchange, sink);
            self.norm = Some(n);
            return;
        }
        self.sniff.extend_from_slice(data);
        if self.sniff.len() >= SNIFF_BYTES {
            self.release_sniff(cx, sink);
        }
    }

    /// Chooses with what was held (at least `SNIFF_BYTES`, or the end of
    /// the stream or a gap came first) and parses it.
    pub(super) fn release_sniff(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        if self.norm.is_some() || self.sniff.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.sniff);
        let mut n = Parser::choose(&held, cx);
        n.push(&held, cx.limits, cx.stats, cx.exchange, sink);
        self.norm = Some(n);
    }

    pub(super) fn gap(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        self.release_sniff(cx, sink);
        match &mut self.norm {
            Some(n) => n.gap(cx.stats, sink),
            None => sink.boundary(),
        }
    }

    pub(super) fn finish(&mut self, cx: &mut ParseCtx<'_>, sink: &mut impl Sink) {
        self.release_sniff(cx, sink);
        match &mut self.norm {
            Some(n) => n.finish(cx.limits, cx.stats, sink),
            None => sink.boundary(),
        }
    }
}

pub(super) fn smtp_port(p: u16) -> bool {
    matches!(p, 25 | 587)
}
