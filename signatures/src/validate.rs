//! Raw tables → checked [`Signature`]s, collecting every problem.

use std::collections::HashMap;
use std::ops::Range;

use shaobing_wire::Severity;
use toml::Spanned;

use crate::error::{Diagnostic, SourceMap};
use crate::signature::{Context, DirectionScope, Encoding, Signature, Validator};
use crate::syntax::{self, RawSignature};

/// Default `context.within` in bytes.
pub const DEFAULT_CONTEXT_WITHIN: usize = 64;
/// Largest accepted `context.within`: the context check scans up to twice
/// this many bytes per hit.
pub const MAX_CONTEXT_WITHIN: usize = 4096;
/// Longest accepted pattern or keyword, in bytes of UTF-8.
pub const MAX_PATTERN_LEN: usize = 256;

const SEVERITIES: [(&str, Severity); 4] = [
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];

/// Checks a set of sources; ids must be unique across all of them.
pub(crate) fn check_sources(sources: &[(&str, &str)]) -> (Vec<Signature>, Vec<Diagnostic>) {
    let mut checker = Checker::default();
    for (name, text) in sources {
        checker.file(name, text);
    }
    (checker.signatures, checker.diagnostics)
}

#[derive(Default)]
struct Checker {
    signatures: Vec<Signature>,
    diagnostics: Vec<Diagnostic>,
    /// id → where it was first defined.
    ids: HashMap<String, String>,
}

struct FileCtx<'a> {
    name: &'a str,
    map: SourceMap<'a>,
}

impl FileCtx<'_> {
    fn at(&self, span: &Range<usize>) -> String {
        let (line, column) = self.map.position(span.start);
        format!("{}:{line}:{column}", self.name)
    }

    fn diag(&self, span: &Range<usize>, message: String) -> Diagnostic {
        Diagnostic {
            file: self.name.to_owned(),
            position: Some(self.map.position(span.start)),
            message,
        }
    }
}

fn one_of<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", ")
}

impl Checker {
    fn file(&mut self, name: &str, text: &str) {
        let f = FileCtx {
            name,
            map: SourceMap::new(text),
        };
        let file_start = self.diagnostics.len();
        let to_diag = |(span, message): syntax::ParseError| Diagnostic {
            file: name.to_owned(),
            position: span.map(|s| f.map.position(s.start)),
            message,
        };
        match syntax::parse(text) {
            Ok(raw) => {
                for table in raw.signature {
                    let span = table.span();
                    if let Some(sig) = self.signature(&f, span, table.into_inner()) {
                        self.signatures.push(sig);
                    }
                }
            }
            Err(first) => {
                // Check each table alone to report every broken one, and
                // the meaning of the good ones; the file is rejected anyway.
                let first = to_diag(first);
                let before = self.diagnostics.len();
                for table in syntax::parse_each_table(text).unwrap_or_default() {
                    match table {
                        Ok(table) => {
                            let span = table.span();
                            let _rejected_with_file = self.signature(&f, span, table.into_inner());
                        }
                        Err(e) => self.diagnostics.push(to_diag(e)),
                    }
                }
                let seen = self
                    .diagnostics
                    .get(before..)
                    .unwrap_or_default()
                    .contains(&first);
                if !seen {
                    self.diagnostics.insert(before, first);
                }
            }
        }
        if let Some(these) = self.diagnostics.get_mut(file_start..) {
            these.sort_by_key(|d| d.position);
        }
    }

    fn err(&mut self, f: &FileCtx<'_>, span: &Range<usize>, message: String) {
        self.diagnostics.push(f.diag(span, message));
    }

    /// Checks one table; returns it only when it has no problem.
    fn signature(
        &mut self,
        f: &FileCtx<'_>,
        table: Range<usize>,
        raw: RawSignature,
    ) -> Option<Signature> {
        let before = self.diagnostics.len();

        let id_span = raw.id.span();
        let id = raw.id.into_inner();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.err(
                f,
                &id_span,
                format!("invalid id {id:?} (use 1 to 64 of a-z, 0-9 and -)"),
            );
        } else if let Some(first) = self.ids.get(&id) {
            let msg = format!("duplicate id {id:?} (first defined at {first})");
            self.err(f, &id_span, msg);
        } else {
            self.ids.insert(id.clone(), f.at(&id_span));
        }

        let name = self.non_empty(f, raw.name, "name");
        let category = self.non_empty(f, raw.category, "category");

        let severity = SEVERITIES
            .iter()
            .find(|(n, _)| *n == raw.severity.get_ref())
            .map(|&(_, s)| s);
        if severity.is_none() {
            self.err(
                f,
                &raw.severity.span(),
                format!(
                    "unknown severity {:?} (expected one of low, medium, high, critical)",
                    raw.severity.get_ref()
                ),
            );
        }

        let direction = match raw.direction {
            None => Some(DirectionScope::Outbound),
            Some(d) => {
                let parsed = DirectionScope::parse(d.get_ref());
                if parsed.is_none() {
                    self.err(
                        f,
                        &d.span(),
                        format!(
                            "unknown direction {:?} (expected one of outbound, inbound, any)",
                            d.get_ref()
                        ),
                    );
                }
                parsed
            }
        };

        let validator = match raw.validator {
            None => None,
            Some(v) => {
                let parsed = Validator::parse(v.get_ref());
                if parsed.is_none() {
                    self.err(
                        f,
                        &v.span(),
                        format!(
                            "unknown validator {:?} (expected one of {})",
                            v.get_ref(),
                            one_of(&Validator::ALL, Validator::as_str)
                        ),
                    );
                }
                parsed
            }
        };

        let encodings = self.encodings(f, raw.encodings);

        let min_count = match raw.min_count {
            None => 1,
            Some(m) => match u32::try_from(*m.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.err(
                        f,
                        &m.span(),
                        format!(
                            "min_count must be between 1 and {}, not {}",
                            u32::MAX,
                            m.get_ref()
                        ),
                    );
                    1
                }
            },
        };

        let mut ports = Vec::new();
        for p in raw.ports.unwrap_or_default() {
            match u16::try_from(*p.get_ref()) {
                Ok(port) if port != 0 => ports.push(port),
                _ => self.err(
                    f,
                    &p.span(),
                    format!("port must be between 1 and 65535, not {}", p.get_ref()),
                ),
            }
        }

        // Patterns (checked against every encoding).
        let mut patterns = Vec::new();
        let has_patterns = match raw.patterns {
            None => false,
            Some(list) => {
                let list_span = list.span();
                let list = list.into_inner();
                if list.is_empty() && validator.is_none() {
                    self.err(
                        f,
                        &list_span,
                        "empty pattern list and no validator: the signature could never match"
                            .into(),
                    );
                }
                for p in list {
                    if let Some(text) = self.pattern(f, p, &encodings, "pattern") {
                        patterns.push(text);
                    }
                }
                true
            }
        };
        if !has_patterns && validator.is_none() {
            self.err(
                f,
                &table,
                "signature has neither `patterns` nor a `validator`: it could never match".into(),
            );
        }

        let mut context = None;
        if let Some(ctx) = raw.context {
            let ctx = ctx.into_inner();
            let within = match ctx.within {
                None => DEFAULT_CONTEXT_WITHIN,
                Some(w) => match usize::try_from(*w.get_ref()) {
                    Ok(n) if (1..=MAX_CONTEXT_WITHIN).contains(&n) => n,
                    _ => {
                        self.err(
                            f,
                            &w.span(),
                            format!("context.within must be between 1 and {MAX_CONTEXT_WITHIN} bytes, not {}", w.get_ref()),
                        );
                        DEFAULT_CONTEXT_WITHIN
                    }
                },
            };
            let kw_span = ctx.keywords.span();
            let mut keywords = Vec::new();
            for k in ctx.keywords.into_inner() {
                if let Some(text) = self.pattern(f, k, &encodings, "context keyword") {
                    keywords.push(text);
                }
            }
            if keywords.is_empty() && self.diagnostics.len() == before {
                self.err(f, &kw_span, "context.keywords is empty".into());
            }
            context = Some(Context { keywords, within });
        }
        // With a validator, patterns are anchors: they join the context
        // keywords instead of matching on their own.
        if validator.is_some() && !patterns.is_empty() {
            let ctx = context.get_or_insert_with(|| Context {
                keywords: Vec::new(),
                within: DEFAULT_CONTEXT_WITHIN,
            });
            for p in &patterns {
                if !ctx.keywords.contains(p) {
                    ctx.keywords.push(p.clone());
                }
            }
        }

        if self.diagnostics.len() != before {
            return None;
        }
        Some(Signature {
            id,
            name: name?,
            description: raw.description.unwrap_or_default(),
            category: category?,
            severity: severity?,
            enabled: raw.enabled.unwrap_or(true),
            patterns,
            case_insensitive: raw.case_insensitive.unwrap_or(false),
            encodings,
            min_count,
            direction: direction?,
            ports,
            validator,
            context,
            origin: f.at(&table),
        })
    }

    fn non_empty(&mut self, f: &FileCtx<'_>, value: Spanned<String>, key: &str) -> Option<String> {
        if value.get_ref().trim().is_empty() {
            self.err(f, &value.span(), format!("`{key}` must not be empty"));
            None
        } else {
            Some(value.into_inner())
        }
    }

    fn encodings(
        &mut self,
        f: &FileCtx<'_>,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<Encoding> {
        let Some(raw) = raw else {
            return vec![Encoding::Utf8];
        };
        let list_span = raw.span();
        let listed = raw.get_ref().len();
        let mut out: Vec<Encoding> = Vec::new();
        for e in raw.into_inner() {
            match Encoding::parse(e.get_ref()) {
                Some(enc) if out.contains(&enc) => {
                    self.err(
                        f,
                        &e.span(),
                        format!("encoding {:?} listed twice", e.get_ref()),
                    );
                }
                Some(enc) => out.push(enc),
                None => self.err(
                    f,
                    &e.span(),
                    format!(
                        "unknown encoding {:?} (expected one of {})",
                        e.get_ref(),
                        one_of(&Encoding::ALL, Encoding::as_str)
                    ),
                ),
            }
        }
        if listed == 0 {
            self.err(
                f,
                &list_span,
                "`encodings` must list at least one encoding".into(),
            );
        }
        out
    }

    /// Checks a pattern or keyword: not empty, not too long, representable
    /// in every listed encoding.
    fn pattern(
        &mut self,
        f: &FileCtx<'_>,
        p: Spanned<String>,
        encodings: &[Encoding],
        what: &str,
    ) -> Option<String> {
        let span = p.span();
        let text = p.into_inner();
        if text.is_empty() {
            self.err(f, &span, format!("empty {what}"));
            return None;
        }
        if text.len() > MAX_PATTERN_LEN {
            self.err(
                f,
                &span,
                format!(
                    "{what} is {} bytes long (at most {MAX_PATTERN_LEN})",
                    text.len()
                ),
            );
            return None;
        }
        let mut ok = true;
        for enc in encodings {
            if enc.encode(&text).is_none() {
                let bad: String = text
                    .chars()
                    .filter(|c| enc.encode(c.encode_utf8(&mut [0; 4])).is_none())
                    .collect();
                self.err(
                    f,
                    &span,
                    format!(
                        "{what} {text:?} cannot be encoded in {} (characters {bad:?})",
                        enc.as_str().to_uppercase()
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(text)
    }
}
