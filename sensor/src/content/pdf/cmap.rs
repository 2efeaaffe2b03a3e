//! `ToUnicode` CMaps (ISO 32000-1 §9.10.3): codes of 1 to 4 bytes, their
//! lengths from `begincodespacerange`, mapped to UTF-16BE by `bfchar`
//! entries and `bfrange` ranges (a start value incremented, or an array
//! of values). Ranges are kept as ranges (never expanded), so a CMap
//! takes memory in proportion to its own bytes.

use std::collections::HashMap;

use super::lex::{Lexer, Tok};

/// Most ranges and characters kept per CMap (a real one has at most a few
/// thousand; beyond this the entries are ignored).
const MAX_ENTRIES: usize = 100_000;

/// Most code space ranges kept (real CMaps have one to four; each code
/// read is checked against all of them).
const MAX_SPACES: usize = 16;

/// Where a range's codes go.
#[derive(Clone, Debug)]
enum Dst {
    /// The first code's UTF-16 units; later codes add to the last unit.
    Start(Vec<u16>),
    /// One string per code.
    Each(Vec<Vec<u16>>),
}

#[derive(Clone, Debug)]
struct Range {
    len: usize,
    lo: u32,
    hi: u32,
    dst: Dst,
}

/// A parsed `ToUnicode` CMap.
#[derive(Clone, Debug, Default)]
pub struct CMap {
    /// Code space ranges: byte length, low and high bytes.
    space: Vec<(Vec<u8>, Vec<u8>)>,
    /// The code length when every code space range has the same one (the
    /// usual case: `<0000> <FFFF>`), so codes need no range check.
    fixed: Option<usize>,
    /// Single codes, their text already UTF-8.
    chars: HashMap<(usize, u32), Box<[u8]>>,
    /// Sorted by (length, low code).
    ranges: Vec<Range>,
}

fn code(b: &[u8]) -> Option<(usize, u32)> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    Some((b.len(), b.iter().fold(0u32, |a, &x| a << 8 | u32::from(x))))
}

fn utf16(b: &[u8]) -> Vec<u16> {
    b.chunks(2)
        .map(|c| match c {
            [h, l] => u16::from_be_bytes([*h, *l]),
            [l] => u16::from(*l),
            _ => 0,
        })
        .collect()
}

impl CMap {
    /// Parses a CMap program; what cannot be read is skipped.
    pub fn parse(data: &[u8]) -> CMap {
        let mut m = CMap::default();
        let mut lex = Lexer::new(data);
        let mut entries = 0usize;
        // Strings gathered since the section began.
        let mut section: Option<&[u8]> = None;
        let mut items: Vec<Tok<'_>> = Vec::new();
        loop {
            let t = lex.next_tok();
            match t {
                Tok::Eof => break,
                Tok::Keyword(k @ (b"begincodespacerange" | b"beginbfchar" | b"beginbfrange")) => {
                    section = Some(k);
                    items.clear();
                }
                Tok::Keyword(b"endcodespacerange" | b"endbfchar" | b"endbfrange") => {
                    if entries < MAX_ENTRIES {
                        entries += m.section(section.unwrap_or_default(), &items);
                    }
                    section = None;
                    items.clear();
                }
                Tok::ArrOpen | Tok::ArrClose | Tok::Str(_)
                    if section.is_some() && items.len() < 3 * MAX_ENTRIES =>
                {
                    items.push(t);
                }
                _ => {}
            }
        }
        m.ranges.sort_by_key(|r| (r.len, r.lo));
        m.fixed = match m.space.first() {
            Some((lo, _)) if m.space.iter().all(|(l, _)| l.len() == lo.len()) => Some(lo.len()),
            _ => None,
        };
        m
    }

    /// Reads the items of one section; returns the entries added.
    fn section(&mut self, kind: &[u8], items: &[Tok<'_>]) -> usize {
        let mut added = 0;
        let mut it = items.iter();
        let next_str = |it: &mut std::slice::Iter<'_, Tok<'_>>| match it.next() {
            Some(Tok::Str(s)) => Some(s.clone()),
            _ => None,
        };
        match kind {
            b"begincodespacerange" => {
                while let (Some(lo), Some(hi)) = (next_str(&mut it), next_str(&mut it)) {
                    if lo.len() == hi.len()
                        && !lo.is_empty()
                        && lo.len() <= 4
                        && self.space.len() < MAX_SPACES
                    {
                        self.space.push((lo, hi));
                        added += 1;
                    }
                }
            }
            b"beginbfchar" => {
                while let (Some(src), Some(dst)) = (next_str(&mut it), next_str(&mut it)) {
                    if let Some(c) = code(&src) {
                        let mut text = Vec::new();
                        utf8(&utf16(&dst), &mut text);
                        self.chars.insert(c, text.into_boxed_slice());
                        added += 1;
                    }
                }
            }
            _ => {
                while let (Some(lo), Some(hi)) = (next_str(&mut it), next_str(&mut it)) {
                    let dst = match it.next() {
                        Some(Tok::Str(s)) => Dst::Start(utf16(s)),
                        Some(Tok::ArrOpen) => {
                            let mut each = Vec::new();
                            for t in it.by_ref() {
                                match t {
                                    Tok::Str(s) => each.push(utf16(s)),
                                    _ => break,
                                }
                            }
                            Dst::Each(each)
                        }
                        _ => break,
                    };
                    if let (Some((len, lo)), Some((hlen, hi))) = (code(&lo), code(&hi)) {
                        if len == hlen && lo <= hi {
                            self.ranges.push(Range { len, lo, hi, dst });
                            added += 1;
                        }
                    }
                }
            }
        }
        added
    }

    /// Whether the CMap maps anything.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty() && self.ranges.is_empty()
    }

    /// The length of the code at the start of `b`: the code space range
    /// it falls in, else `default`.
    fn code_len(&self, b: &[u8], default: usize) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        for (lo, hi) in &self.space {
            if let Some(c) = b.get(..lo.len()) {
                if c.iter()
                    .zip(lo.iter().zip(hi))
                    .all(|(x, (l, h))| l <= x && x <= h)
                {
                    return lo.len();
                }
            }
        }
        default
    }

    /// Appends the text of code `c` of `len` bytes; false if unmapped.
    fn lookup(&self, len: usize, c: u32, out: &mut Vec<u8>) -> bool {
        if let Some(t) = self.chars.get(&(len, c)) {
            out.extend_from_slice(t);
            return true;
        }
        let i = self.ranges.partition_point(|r| (r.len, r.lo) <= (len, c));
        // The range starting at or below `c` with the highest start; an
        // earlier, wider range may cover it too.
        let Some(r) = self
            .ranges
            .get(..i)
            .unwrap_or_default()
            .iter()
            .rev()
            .take(64)
            .find(|r| r.len == len && r.lo <= c && c <= r.hi)
        else {
            return false;
        };
        let off = c - r.lo;
        match &r.dst {
            Dst::Start(units) => {
                let Ok(off) = u16::try_from(off) else {
                    return false;
                };
                let (last, init) = match units.split_last() {
                    Some((l, i)) => (l.wrapping_add(off), i),
                    None => return false,
                };
                utf8_units(init.iter().copied().chain([last]), out);
                true
            }
            Dst::Each(all) => match usize::try_from(off).ok().and_then(|o| all.get(o)) {
                Some(u) => {
                    utf8(u, out);
                    true
                }
                None => false,
            },
        }
    }

    /// Appends the UTF-8 text of the string `s` (codes of `default` bytes
    /// where the code space does not say); unmapped codes are dropped.
    pub fn decode(&self, s: &[u8], default: usize, out: &mut Vec<u8>) {
        let mut at = 0;
        while at < s.len() {
            let rest = s.get(at..).unwrap_or_default();
            let len = self.code_len(rest, default).clamp(1, 4).min(rest.len());
            let c = code(rest.get(..len).unwrap_or_default());
            at += len;
            if let Some((l, c)) = c {
                self.lookup(l, c, out);
            }
        }
    }
}

/// Appends UTF-16 `units` as UTF-8 (see [`utf8_units`]).
fn utf8(units: &[u16], out: &mut Vec<u8>) {
    utf8_units(units.iter().copied(), out);
}

/// Appends UTF-16 units as UTF-8; a mapping to NUL or a control character
/// carries no text and is dropped, a lone surrogate becomes U+FFFD.
fn utf8_units(units: impl Iterator<Item = u16>, out: &mut Vec<u8>) {
    for ch in char::decode_utf16(units) {
        let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
        if ch >= ' ' || ch == '\n' || ch == '\t' {
            let mut b = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMAP: &str = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CMapName /Adobe-Identity-UCS def /CMapType 2 def
1 begincodespacerange <0000> <FFFF> endcodespacerange
3 beginbfchar <0003> <673A> <0004> <5BC6> <0005> <2605> endbfchar
2 beginbfrange <0010> <0019> <0030> <0020> <0022> [<4E00> <5E74> <D83DDE00>] endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end";

    fn decode(m: &CMap, s: &[u8], default: usize) -> String {
        let mut out = Vec::new();
        m.decode(s, default, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn two_byte_codes_map_through_chars_and_ranges() {
        let m = CMap::parse(CMAP.as_bytes());
        assert_eq!(
            decode(
                &m,
                b"\x00\x03\x00\x04\x00\x05\x00\x11\x00\x19\x00\x20\x00\x21\x00\x22",
                1
            ),
            "机密★19一年😀"
        );
    }

    #[test]
    fn one_byte_code_space_and_unmapped_codes() {
        let m = CMap::parse(
            b"1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfrange <41> <5A> <0061> endbfrange",
        );
        assert_eq!(decode(&m, b"HI!", 2), "hi");
    }

    #[test]
    fn code_space_ranges_past_the_cap_are_ignored() {
        let mut src = String::from("100 begincodespacerange\n");
        for i in 0..100 {
            src.push_str(&format!("<{i:02X}00> <{i:02X}FF>\n"));
        }
        src.push_str("endcodespacerange 1 beginbfchar <0101> <0041> endbfchar");
        let m = CMap::parse(src.as_bytes());
        assert_eq!(m.space.len(), MAX_SPACES);
        assert_eq!(decode(&m, b"\x01\x01", 1), "A");
    }
}
