//! Checked signatures → one immutable [`SignatureSet`] that scans.
//!
//! All literal patterns of all enabled signatures, in each of their
//! encodings, go into one Aho-Corasick automaton (plus a second one for
//! ASCII case-insensitive signatures, since that option is per automaton).
//!
//! Match semantics: the automata use [`MatchKind::LeftmostFirst`] with the
//! patterns ordered shortest first, which lets aho-corasick use its SIMD
//! prefilter (about ten times faster than [`MatchKind::Standard`] on the
//! default pack, see `docs/signatures.md`). To still see every signature's
//! matches, the scan restarts one byte after each match's *start* (not at
//! its end), so a match of one signature cannot hide an overlapping match
//! of another; a longer pattern that starts at the same byte as a shorter
//! one is checked directly (its "extensions"). Overlapping matches of the
//! *same* signature are counted once.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::packed;
use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, Match, MatchKind, StartKind};

use crate::error::{Diagnostic, LoadError};
use crate::mask::mask_excerpt;
use crate::signature::{Encoding, Signature, Validator};
use crate::validate;
use crate::validators::credentials::{self, Anchor};
use crate::validators::digits::{self, Found, Wanted};

/// The automaton kind: a full DFA. For the default pack it builds in well
/// under a millisecond and takes tens of kilobytes, and it is the fastest
/// kind to search (one table lookup per byte, no failure transitions);
/// see `docs/signatures.md` for measured figures.
const AUTOMATON_KIND: AhoCorasickKind = AhoCorasickKind::DFA;

/// Case variants of pattern prefixes this long (or shorter) feed the
/// candidate searcher of a case-insensitive automaton.
const CANDIDATE_PREFIX: [usize; 2] = [4, 3];
/// Most prefix variants the candidate searcher takes (Teddy's comfortable
/// range); beyond it aho-corasick's own prefilter is used.
const MAX_CANDIDATE_VARIANTS: usize = 64;

/// The candidate searcher for case-insensitive `patterns` (see
/// [`Automaton::candidates`]): every ASCII case variant of the first four
/// bytes of each pattern, or of three if that makes too many; `None` when
/// even three make more than [`MAX_CANDIDATE_VARIANTS`].
fn candidate_searcher(patterns: &[Vec<u8>]) -> Option<packed::Searcher> {
    for prefix in CANDIDATE_PREFIX {
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for p in patterns {
            let head = p.get(..prefix.min(p.len()))?;
            let mut these: Vec<Vec<u8>> = vec![Vec::new()];
            for &b in head {
                let cases: &[u8] = if b.is_ascii_alphabetic() {
                    &[b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                } else {
                    std::slice::from_ref(&b)
                };
                these = these
                    .iter()
                    .flat_map(|v| {
                        cases.iter().map(move |&c| {
                            let mut n = v.clone();
                            n.push(c);
                            n
                        })
                    })
                    .collect();
                if these.len() > MAX_CANDIDATE_VARIANTS {
                    break;
                }
            }
            variants.extend(these);
            variants.sort();
            variants.dedup();
            if variants.len() > MAX_CANDIDATE_VARIANTS {
                break;
            }
        }
        if variants.len() <= MAX_CANDIDATE_VARIANTS {
            return packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder()
                .extend(&variants)
                .build();
        }
    }
    None
}

/// One match of a signature in a haystack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`SignatureSet::signatures`].
    pub signature: usize,
    /// Byte offset of the first matched byte.
    pub start: usize,
    /// Byte offset just past the last matched byte.
    pub end: usize,
    /// Encoding the matched bytes are in (validator hits are ASCII and say
    /// UTF-8).
    pub encoding: Encoding,
}

/// Who a pattern of an automaton belongs to.
#[derive(Clone, Copy, Debug)]
enum Owner {
    /// A literal pattern of a signature.
    Literal {
        signature: usize,
        encoding: Encoding,
    },
    /// A credential anchor of a signature that uses that validator.
    Anchor { signature: usize, anchor: Anchor },
}

/// An automaton and, per pattern id, its owners and extensions.
#[derive(Debug)]
struct Automaton {
    ac: AhoCorasick,
    /// For a case-insensitive automaton: a SIMD (Teddy) searcher for every
    /// ASCII case variant of each pattern's first bytes. aho-corasick's
    /// own prefilter for case-insensitive patterns looks for two rare
    /// bytes in either case (`w` and `d` for `password`, `pwd`), which
    /// ordinary text is full of; the variants of `pass` and `pwd` are rare.
    /// Each candidate is confirmed by an anchored search of `ac`.
    candidates: Option<packed::Searcher>,
    case_insensitive: bool,
    /// Pattern bytes (ASCII-lowercased when case-insensitive), by id.
    patterns: Vec<Vec<u8>>,
    /// `owners[owner_ranges[pattern]]` are the owners of `pattern`.
    owner_ranges: Vec<(usize, usize)>,
    owners: Vec<Owner>,
    /// `extensions[extension_ranges[pattern]]` are the longer patterns
    /// that start with `pattern`.
    extension_ranges: Vec<(usize, usize)>,
    extensions: Vec<usize>,
}

impl Automaton {
    /// Builds from `(bytes, owner)` entries, merging identical byte
    /// strings (GBK and GB18030, or ASCII in any ASCII-compatible
    /// encoding) into one pattern with several owners.
    fn build(
        entries: Vec<(Vec<u8>, Owner)>,
        case_insensitive: bool,
    ) -> Result<Option<Automaton>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut grouped: Vec<Vec<Owner>> = Vec::new();
        for (bytes, owner) in entries {
            let key = if case_insensitive {
                bytes.to_ascii_lowercase()
            } else {
                bytes
            };
            let slot = *index.entry(key.clone()).or_insert_with(|| {
                patterns.push(key);
                grouped.push(Vec::new());
                grouped.len() - 1
            });
            if let Some(list) = grouped.get_mut(slot) {
                // One hit per signature per occurrence: keep the first
                // encoding a signature listed for these bytes.
                if !list.iter().any(|o| same_signature(o, &owner)) {
                    list.push(owner);
                }
            }
        }
        // Shortest first: at a given start, leftmost-first then reports
        // the shortest pattern, and longer ones are its extensions.
        let mut order: Vec<usize> = (0..patterns.len()).collect();
        order.sort_by_key(|&i| patterns.get(i).map_or(0, Vec::len));
        let mut sorted_patterns = Vec::with_capacity(order.len());
        let mut owner_ranges = Vec::with_capacity(order.len());
        let mut owners = Vec::new();
        for &i in &order {
            let list = std::mem::take(grouped.get_mut(i).ok_or("pattern table out of step")?);
            owner_ranges.push((owners.len(), owners.len() + list.len()));
            owners.extend(list);
            sorted_patterns.push(std::mem::take(
                patterns.get_mut(i).ok_or("pattern table out of step")?,
            ));
        }
        let mut extension_ranges = Vec::with_capacity(sorted_patterns.len());
        let mut extensions = Vec::new();
        for p in &sorted_patterns {
            let from = extensions.len();
            for (j, q) in sorted_patterns.iter().enumerate() {
                if q.len() > p.len() && q.starts_with(p) {
                    extensions.push(j);
                }
            }
            extension_ranges.push((from, extensions.len()));
        }
        let candidates = if case_insensitive {
            candidate_searcher(&sorted_patterns)
        } else {
            None
        };
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .ascii_case_insensitive(case_insensitive)
            .kind(Some(AUTOMATON_KIND))
            .start_kind(if candidates.is_some() {
                StartKind::Both
            } else {
                StartKind::Unanchored
            })
            .build(&sorted_patterns)
            .map_err(|e| format!("cannot build the pattern automaton: {e}"))?;
        Ok(Some(Automaton {
            ac,
            candidates,
            case_insensitive,
            patterns: sorted_patterns,
            owner_ranges,
            owners,
            extension_ranges,
            extensions,
        }))
    }

    /// The leftmost-first match starting at or after `at`.
    fn find(&self, hay: &[u8], at: usize) -> Option<Match> {
        let Some(candidates) = &self.candidates else {
            return self.ac.find(Input::new(hay).span(at..hay.len()));
        };
        // Every start of a match is a candidate (its first bytes are one
        // of the variants), so confirming candidates in order finds the
        // leftmost start, and the anchored search there picks the pattern
        // leftmost-first would.
        let mut from = at;
        while from < hay.len() {
            let c = candidates.find_in(hay, aho_corasick::Span::from(from..hay.len()))?;
            let anchored = Input::new(hay)
                .span(c.start()..hay.len())
                .anchored(Anchored::Yes);
            if let Ok(Some(m)) = self.ac.try_find(anchored) {
                return Some(m);
            }
            from = c.start() + 1;
        }
        None
    }

    fn owners_of(&self, pattern: usize) -> &[Owner] {
        self.owner_ranges
            .get(pattern)
            .and_then(|&(s, e)| self.owners.get(s..e))
            .unwrap_or_default()
    }

    fn extensions_of(&self, pattern: usize) -> &[usize] {
        self.extension_ranges
            .get(pattern)
            .and_then(|&(s, e)| self.extensions.get(s..e))
            .unwrap_or_default()
    }

    /// Whether pattern `id` occurs at `start`; returns its end.
    fn matches_at(&self, haystack: &[u8], id: usize, start: usize) -> Option<usize> {
        let pattern = self.patterns.get(id)?;
        let end = start.checked_add(pattern.len())?;
        let here = haystack.get(start..end)?;
        let same = if self.case_insensitive {
            here.eq_ignore_ascii_case(pattern)
        } else {
            here == pattern.as_slice()
        };
        same.then_some(end)
    }
}

/// The last few hits reported, to count overlapping matches of one
/// signature once (hits of one automaton arrive in order of start).
struct Recent {
    hits: [(usize, usize); 8],
    next: usize,
}

impl Recent {
    fn new() -> Recent {
        Recent {
            hits: [(usize::MAX, 0); 8],
            next: 0,
        }
    }

    /// Records `hit` unless it overlaps a recent hit of its signature.
    fn admit(&mut self, hit: &Hit) -> bool {
        let overlaps = self
            .hits
            .iter()
            .any(|&(sig, end)| sig == hit.signature && end > hit.start);
        if !overlaps {
            if let Some(slot) = self.hits.get_mut(self.next % 8) {
                *slot = (hit.signature, hit.end);
            }
            self.next = self.next.wrapping_add(1);
        }
        !overlaps
    }
}

fn same_signature(a: &Owner, b: &Owner) -> bool {
    match (a, b) {
        (Owner::Literal { signature: x, .. }, Owner::Literal { signature: y, .. }) => x == y,
        (
            Owner::Anchor {
                signature: x,
                anchor: p,
            },
            Owner::Anchor {
                signature: y,
                anchor: q,
            },
        ) => x == y && p == q,
        _ => false,
    }
}

/// A compiled context check: keywords in every encoding of the signature.
#[derive(Debug)]
struct ContextMatcher {
    ac: AhoCorasick,
    within: usize,
}

/// A loaded, compiled, immutable set of signatures.
///
/// Build it once ([`SignatureSet::load`], [`SignatureSet::from_sources`],
/// [`SignatureSet::default_pack`]) and share it (`Arc`) between threads;
/// [`SignatureSet::scan`] takes `&self` and allocates nothing.
#[derive(Debug)]
pub struct SignatureSet {
    signatures: Vec<Signature>,
    exact: Option<Automaton>,
    folded: Option<Automaton>,
    /// Per signature, its context check if it has one.
    contexts: Vec<Option<ContextMatcher>>,
    /// Enabled digit-validator signatures.
    digit_signatures: Vec<(usize, Found)>,
    wanted: Wanted,
}

const DEFAULT_PACK: [(&str, &str); 3] = [
    (
        "rules/classification.toml",
        include_str!("../rules/classification.toml"),
    ),
    (
        "rules/credentials.toml",
        include_str!("../rules/credentials.toml"),
    ),
    (
        "rules/personal-data.toml",
        include_str!("../rules/personal-data.toml"),
    ),
];

impl SignatureSet {
    /// Loads a rule file, or every `*.toml` file of a directory (sorted by
    /// name, not recursive). Reports every problem of every file.
    pub fn load(path: impl AsRef<Path>) -> Result<SignatureSet, LoadError> {
        let path = path.as_ref();
        let io_error = |p: &Path, e: std::io::Error| {
            LoadError::new(vec![Diagnostic {
                file: p.display().to_string(),
                position: None,
                message: format!("cannot read: {e}"),
            }])
        };
        let files = if path.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(|e| io_error(path, e))? {
                let p = entry.map_err(|e| io_error(path, e))?.path();
                if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut texts = Vec::with_capacity(files.len());
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| io_error(f, e))?;
            texts.push((f.display().to_string(), text));
        }
        let sources: Vec<(&str, &str)> = texts
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        SignatureSet::from_sources(&sources)
    }

    /// Loads rule texts given as `(name, text)`; `name` is used in error
    /// messages. Ids must be unique across all sources.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<SignatureSet, LoadError> {
        let (signatures, diagnostics) = validate::check_sources(sources);
        if !diagnostics.is_empty() {
            return Err(LoadError::new(diagnostics));
        }
        SignatureSet::compile(signatures).map_err(|message| {
            LoadError::new(vec![Diagnostic {
                file: sources
                    .first()
                    .map_or_else(String::new, |(n, _)| (*n).to_owned()),
                position: None,
                message,
            }])
        })
    }

    /// The built-in pack (`signatures/rules/*.toml`, compiled in).
    pub fn default_pack() -> Result<SignatureSet, LoadError> {
        SignatureSet::from_sources(&DEFAULT_PACK)
    }

    fn compile(signatures: Vec<Signature>) -> Result<SignatureSet, String> {
        let mut exact = Vec::new();
        let mut folded = Vec::new();
        let mut contexts = Vec::with_capacity(signatures.len());
        let mut digit_signatures = Vec::new();
        let mut wanted = Wanted::default();
        for (index, sig) in signatures.iter().enumerate() {
            contexts.push(match (&sig.context, sig.enabled) {
                (Some(ctx), true) => Some(context_matcher(sig, &ctx.keywords, ctx.within)?),
                _ => None,
            });
            if !sig.enabled {
                continue;
            }
            match sig.validator {
                None => {
                    let target = if sig.case_insensitive {
                        &mut folded
                    } else {
                        &mut exact
                    };
                    target.extend(literal_entries(sig, index));
                }
                Some(Validator::Credentials) => {
                    for (bytes, ci, anchor) in Anchor::LITERALS {
                        let target = if ci { &mut folded } else { &mut exact };
                        target.push((
                            bytes.to_vec(),
                            Owner::Anchor {
                                signature: index,
                                anchor,
                            },
                        ));
                    }
                }
                Some(v) => {
                    let found = match v {
                        Validator::CnResidentId => {
                            wanted.resident_id = true;
                            Found::ResidentId
                        }
                        Validator::BankCard => {
                            wanted.bank_card = true;
                            Found::BankCard
                        }
                        _ => {
                            wanted.mobile = true;
                            Found::Mobile
                        }
                    };
                    digit_signatures.push((index, found));
                }
            }
        }
        Ok(SignatureSet {
            exact: Automaton::build(exact, false)?,
            folded: Automaton::build(folded, true)?,
            signatures,
            contexts,
            digit_signatures,
            wanted,
        })
    }

    /// Every loaded signature, enabled or not; [`Hit::signature`] indexes
    /// this slice.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// Whether any enabled signature looks at traffic moving in
    /// `direction` between these ports. The sensor neither reassembles
    /// nor scans a flow direction for which this is false (with the
    /// default pack: everything but outbound traffic).
    pub fn wants(&self, direction: shaobing_wire::Direction, src_port: u16, dst_port: u16) -> bool {
        self.signatures.iter().any(|s| {
            s.enabled && s.direction.admits(direction) && s.applies_to_ports(src_port, dst_port)
        })
    }

    /// Looks a signature up by id.
    pub fn get(&self, id: &str) -> Option<(usize, &Signature)> {
        self.signatures.iter().enumerate().find(|(_, s)| s.id == id)
    }

    /// The longest span, in bytes, one hit of this set can cover: the
    /// longest literal pattern in any encoding, the longest credential
    /// (anchor, look-back and value) and the longest grouped number. A
    /// stream scanner that carries this many bytes of one chunk over to the
    /// next (and holds back as many at the end) sees every hit that
    /// straddles two chunks.
    pub fn max_match_len(&self) -> usize {
        let literal = [&self.exact, &self.folded]
            .into_iter()
            .flatten()
            .flat_map(|a| a.patterns.iter().map(Vec::len))
            .max()
            .unwrap_or(0);
        let validators = self
            .signatures
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.validator)
            .map(|v| match v {
                Validator::Credentials => credentials::MAX_SPAN,
                _ => digits::MAX_SPAN,
            })
            .max()
            .unwrap_or(0);
        literal.max(validators).max(1)
    }

    /// Heap bytes used by the pattern automata (context matchers
    /// excluded).
    pub fn automaton_memory_usage(&self) -> usize {
        [&self.exact, &self.folded]
            .into_iter()
            .flatten()
            .map(|a| a.ac.memory_usage())
            .sum()
    }

    /// Scans one payload chunk and calls `on_hit` for every match of every
    /// enabled signature: literal and credential matches first, then digit
    /// validator matches, each in order of their start. Overlapping matches
    /// of different signatures are all reported; overlapping matches of one
    /// signature count once. Allocation-free.
    ///
    /// Matches spanning two chunks are not seen; the caller decides how
    /// much of the previous chunk to carry over.
    pub fn scan(&self, haystack: &[u8], mut on_hit: impl FnMut(Hit)) {
        for automaton in [&self.exact, &self.folded].into_iter().flatten() {
            let mut recent = Recent::new();
            let mut at = 0;
            // `at` grows by at least one per round: bounded by the length.
            while at < haystack.len() {
                let Some(m) = automaton.find(haystack, at) else {
                    break;
                };
                let pattern = m.pattern().as_usize();
                self.report(
                    haystack,
                    automaton,
                    pattern,
                    m.start(),
                    m.end(),
                    &mut recent,
                    &mut on_hit,
                );
                for &longer in automaton.extensions_of(pattern) {
                    if let Some(end) = automaton.matches_at(haystack, longer, m.start()) {
                        self.report(
                            haystack,
                            automaton,
                            longer,
                            m.start(),
                            end,
                            &mut recent,
                            &mut on_hit,
                        );
                    }
                }
                at = m.start() + 1;
            }
        }
        if self.digit_signatures.is_empty() {
            return;
        }
        digits::scan(haystack, self.wanted, |found, start, end| {
            for &(signature, kind) in &self.digit_signatures {
                if kind != found {
                    continue;
                }
                let hit = Hit {
                    signature,
                    start,
                    end,
                    encoding: Encoding::Utf8,
                };
                if self.context_ok(haystack, &hit) {
                    on_hit(hit);
                }
            }
        });
    }

    /// Turns a pattern match into hits for its owners.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        haystack: &[u8],
        automaton: &Automaton,
        pattern: usize,
        start: usize,
        end: usize,
        recent: &mut Recent,
        on_hit: &mut impl FnMut(Hit),
    ) {
        for owner in automaton.owners_of(pattern) {
            let hit = match *owner {
                Owner::Literal {
                    signature,
                    encoding,
                } => Hit {
                    signature,
                    start,
                    end,
                    encoding,
                },
                Owner::Anchor { signature, anchor } => {
                    match credentials::confirm(anchor, haystack, start, end) {
                        Some((start, end)) => Hit {
                            signature,
                            start,
                            end,
                            encoding: Encoding::Utf8,
                        },
                        None => continue,
                    }
                }
            };
            if self.context_ok(haystack, &hit) && recent.admit(&hit) {
                on_hit(hit);
            }
        }
    }

    fn context_ok(&self, haystack: &[u8], hit: &Hit) -> bool {
        let Some(Some(ctx)) = self.contexts.get(hit.signature) else {
            return true;
        };
        let from = hit.start.saturating_sub(ctx.within);
        let to = hit.end.saturating_add(ctx.within).min(haystack.len());
        haystack.get(from..to).is_some_and(|w| ctx.ac.is_match(w))
    }

    /// The masked excerpt of `hit` in `haystack` (see [`mask_excerpt`]);
    /// password values are replaced by `********`. Never contains the
    /// secret; an out-of-range hit gives an empty string.
    pub fn excerpt(&self, haystack: &[u8], hit: &Hit) -> String {
        let bytes = haystack.get(hit.start..hit.end).unwrap_or_default();
        let validator = self.signatures.get(hit.signature).and_then(|s| s.validator);
        if validator == Some(Validator::Credentials) {
            let text = hit.encoding.decode(bytes);
            if let Some(masked) = credentials::mask_password(&text) {
                return masked;
            }
        }
        mask_excerpt(bytes, hit.encoding)
    }
}

/// `(bytes, owner)` of every pattern of `sig` in every encoding, without
/// patterns that contain another pattern of the same signature: where the
/// longer one matches the shorter one does too, so it adds no detection
/// and only makes the automaton bigger.
fn literal_entries(sig: &Signature, index: usize) -> Vec<(Vec<u8>, Owner)> {
    let mut all: Vec<(Vec<u8>, Encoding)> = Vec::new();
    for pattern in &sig.patterns {
        for &encoding in &sig.encodings {
            if let Some(bytes) = encoding.encode(pattern) {
                all.push((bytes, encoding));
            }
        }
    }
    let fold = |b: &[u8]| {
        if sig.case_insensitive {
            b.to_ascii_lowercase()
        } else {
            b.to_vec()
        }
    };
    let keys: Vec<Vec<u8>> = all.iter().map(|(b, _)| fold(b)).collect();
    let contains = |hay: &[u8], needle: &[u8]| {
        needle.len() < hay.len() && hay.windows(needle.len()).any(|w| w == needle)
    };
    all.iter()
        .zip(&keys)
        .filter(|(_, key)| {
            !keys
                .iter()
                .any(|other| !other.is_empty() && contains(key, other))
        })
        .map(|((bytes, encoding), _)| {
            (
                bytes.clone(),
                Owner::Literal {
                    signature: index,
                    encoding: *encoding,
                },
            )
        })
        .collect()
}

fn context_matcher(
    sig: &Signature,
    keywords: &[String],
    within: usize,
) -> Result<ContextMatcher, String> {
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for keyword in keywords {
        for encoding in &sig.encodings {
            if let Some(bytes) = encoding.encode(keyword) {
                if !patterns.contains(&bytes) {
                    patterns.push(bytes);
                }
            }
        }
    }
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(sig.case_insensitive)
        .build(&patterns)
        .map_err(|e| format!("{}: cannot build the context automaton: {e}", sig.origin))?;
    Ok(ContextMatcher { ac, within })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default pack plus an operator's case-insensitive signature whose
    /// patterns start with digits, punctuation and Chinese text.
    const OPERATOR: &str = r#"
[[signature]]
id = "project-apollo"
name = "Project Apollo"
category = "project"
severity = "high"
case_insensitive = true
patterns = ["project apollo", "阿波罗计划", "x-apollo", "42-Apollo"]
encodings = ["utf-8", "gbk"]
"#;

    fn sets() -> (SignatureSet, SignatureSet) {
        let mut sources = DEFAULT_PACK.to_vec();
        sources.push(("operator.toml", OPERATOR));
        let with = SignatureSet::from_sources(&sources).unwrap();
        let mut without = SignatureSet::from_sources(&sources).unwrap();
        let folded = without.folded.as_mut().unwrap();
        assert!(
            folded.candidates.is_some(),
            "the pack gets a candidate searcher"
        );
        folded.candidates = None;
        (with, without)
    }

    fn hits(set: &SignatureSet, hay: &[u8]) -> Vec<Hit> {
        let mut out = Vec::new();
        set.scan(hay, |h| out.push(h));
        out
    }

    #[test]
    fn candidate_search_finds_exactly_what_the_automaton_finds() {
        let (with, without) = sets();
        let words: [&[u8]; 16] = [
            b"PaSsWoRd=hunter22 ",
            b"pwd:",
            b"PASSWD",
            b"passw",
            b"pwx",
            b"Project Apollo",
            b"PROJECT APOLLO ",
            b"\xe9\x98\xbf\xe6\xb3\xa2\xe7\xbd\x97\xe8\xae\xa1\xe5\x88\x92",
            b"X-APOLLO",
            b"42-apollo",
            b"password",
            b" the quick brown fox ",
            b"<input name=\"pwd\" value=\"s3cret\">",
            b"w",
            b"d",
            b"P",
        ];
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut found = 0;
        for _ in 0..2_000 {
            let n = rng.below(60);
            let hay: Vec<u8> = (0..n)
                .flat_map(|_| words[rng.below(words.len())].iter().copied())
                .collect();
            let want = hits(&without, &hay);
            found += want.len();
            assert_eq!(
                hits(&with, &hay),
                want,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
        }
        assert!(found > 1_000, "the texts must hold matches: {found}");
    }

    #[test]
    fn too_many_case_variants_fall_back_to_the_automatons_own_prefilter() {
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("abcd{i}").into_bytes()).collect();
        // 16 variants of `abcd` and 8 of `abc`, whatever the pattern count.
        assert!(candidate_searcher(&many).is_some());
        let wide: Vec<Vec<u8>> = [
            "abcd", "efgh", "ijkl", "mnop", "qrst", "uvwx", "yzab", "cdef", "ghij",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        // 9 x 16 > 64 with four bytes, 9 x 8 > 64 with three.
        assert!(candidate_searcher(&wide).is_none());
    }
}
