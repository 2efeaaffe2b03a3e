//! The text-showing operators of a content stream (ISO 32000-1 §9.4):
//! `Tf` (font), `Tj`, `TJ` (pieces and kerning numbers), `'` and `"`;
//! line moves (`Td`/`TD` with a vertical move, `T*`, a `Tm` to another
//! line) become line breaks. Inline images (`BI` .. `ID` .. `EI`) are
//! skipped. The result is a compact list of operations, mapped to text
//! once the fonts are known ([`super::Doc`]).

use super::lex::{Lexer, Obj, Parser, Tok};

/// An operation in the list [`ops`] builds: a tag byte, then for
/// [`FONT`] and [`SHOW`] a 4-byte little-endian length and the bytes.
pub const FONT: u8 = 0;
/// A string shown with the current font.
pub const SHOW: u8 = 1;
/// A gap wide enough to be a word space.
pub const SPACE: u8 = 2;
/// A new line.
pub const LINE: u8 = 3;

/// A `TJ` adjustment at or below this (thousandths of a text space unit,
/// negative moves right) is a word gap; smaller ones are kerning.
const WORD_GAP: f64 = -200.0;

/// Operands kept before an operator (more are dropped).
const MAX_OPERANDS: usize = 32;

/// Nodes per operand (a `TJ` array of pieces and numbers).
const OPERAND_NODES: usize = 1 << 16;

fn push(ops: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    ops.push(tag);
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    ops.extend_from_slice(&len.to_le_bytes());
    ops.extend_from_slice(bytes.get(..len as usize).unwrap_or_default());
}

/// One operation read back from an [`ops`] list.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Select the font of this resource name.
    Font(&'a [u8]),
    /// Show this string.
    Show(&'a [u8]),
    /// A word space.
    Space,
    /// A new line.
    Line,
}

/// Reads back the operations of `ops`.
pub fn read(mut ops: &[u8]) -> impl Iterator<Item = Op<'_>> {
    std::iter::from_fn(move || {
        let (&tag, rest) = ops.split_first()?;
        ops = rest;
        match tag {
            SPACE => Some(Op::Space),
            LINE => Some(Op::Line),
            _ => {
                let len = ops
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)?;
                let end = 4usize.checked_add(usize::try_from(len).ok()?)?;
                let body = ops.get(4..end)?;
                ops = ops.get(end..).unwrap_or_default();
                Some(if tag == FONT {
                    Op::Font(body)
                } else {
                    Op::Show(body)
                })
            }
        }
    })
}

fn num(o: Option<&Obj>) -> Option<f64> {
    match o {
        Some(Obj::Num(v)) => Some(*v),
        _ => None,
    }
}

/// Appends the text operations of the content stream `data` to `ops`,
/// stopping when `ops` reaches `max` bytes (returns false then).
pub fn ops(data: &[u8], max: usize, ops: &mut Vec<u8>) -> bool {
    let mut lex = Lexer::new(data);
    let mut operands: Vec<Obj> = Vec::new();
    let mut last_y: Option<f64> = None;
    loop {
        if ops.len() >= max {
            return false;
        }
        let t = lex.next_tok();
        let op = match t {
            Tok::Eof => return true,
            Tok::Keyword(k) => k,
            t => {
                let mut p = Parser {
                    lex: &mut lex,
                    budget: OPERAND_NODES,
                };
                match p.value_from(t, 0) {
                    Ok(v) if operands.len() < MAX_OPERANDS => operands.push(v),
                    _ => operands.clear(),
                }
                continue;
            }
        };
        match op {
            b"Tf" => {
                if let Some(Obj::Name(n)) = operands.first() {
                    push(ops, FONT, n);
                }
            }
            b"Tj" => {
                if let Some(Obj::Str(s)) = operands.last() {
                    push(ops, SHOW, s);
                }
            }
            b"'" | b"\"" => {
                ops.push(LINE);
                if let Some(Obj::Str(s)) = operands.last() {
                    push(ops, SHOW, s);
                }
            }
            b"TJ" => {
                if let Some(Obj::Array(items)) = operands.last() {
                    for i in items {
                        match i {
                            Obj::Str(s) => push(ops, SHOW, s),
                            Obj::Num(n) if *n <= WORD_GAP => ops.push(SPACE),
                            _ => {}
                        }
                    }
                }
            }
            b"Td" | b"TD" if num(operands.get(1)).is_some_and(|ty| ty != 0.0) => ops.push(LINE),
            b"T*" => ops.push(LINE),
            b"Tm" => {
                let y = num(operands.get(5));
                if last_y.is_some() && y != last_y {
                    ops.push(LINE);
                }
                last_y = y;
            }
            b"BI" => skip_inline_image(&mut lex),
            _ => {}
        }
        operands.clear();
    }
}

/// Skips an inline image from after `BI` to after its `EI`.
fn skip_inline_image(lex: &mut Lexer<'_>) {
    loop {
        match lex.next_tok() {
            Tok::Eof => return,
            Tok::Keyword(b"ID") => break,
            _ => {}
        }
    }
    let buf = lex.buf();
    let mut from = lex.pos;
    // `EI` between white space (or at the end) ends the image data.
    while let Some(at) = buf
        .get(from..)
        .and_then(|rest| memchr::memmem::find(rest, b"EI"))
    {
        let i = from + at;
        let before = i.checked_sub(1).and_then(|j| buf.get(j)).copied();
        let after = buf.get(i + 2).copied();
        if before.is_some_and(super::lex::is_white) && after.is_none_or(super::lex::is_white) {
            lex.pos = i + 2;
            return;
        }
        from = i + 2;
    }
    lex.pos = buf.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &[u8]) -> Vec<String> {
        let mut o = Vec::new();
        assert!(ops(s, 1 << 20, &mut o));
        read(&o)
            .map(|op| match op {
                Op::Font(f) => format!("F:{}", String::from_utf8_lossy(f)),
                Op::Show(s) => format!("S:{}", String::from_utf8_lossy(s)),
                Op::Space => " ".into(),
                Op::Line => "/".into(),
            })
            .collect()
    }

    #[test]
    fn show_operators_and_line_moves() {
        let got = run(b"BT /F1 12 Tf 72 0 Td (Hello) Tj 0 -14 Td [(Wo) 120 (rld) -300 (again)] TJ T* (x) ' 1 2 (y) \" ET");
        assert_eq!(
            got,
            [
                "F:F1", "S:Hello", "/", "S:Wo", "S:rld", " ", "S:again", "/", "/", "S:x", "/",
                "S:y"
            ]
        );
    }

    #[test]
    fn a_text_matrix_on_the_same_line_joins_and_on_another_breaks() {
        let got = run(
            b"BT 1 0 0 1 10 700 Tm (a) Tj 1 0 0 1 20 700 Tm (b) Tj 1 0 0 1 10 680 Tm (c) Tj ET",
        );
        assert_eq!(got, ["S:a", "S:b", "/", "S:c"]);
    }

    #[test]
    fn inline_images_are_skipped() {
        let got = run(b"BI /W 2 /H 2 /BPC 8 /CS /G ID (\x00Tj)Tj EIx EI\n(after) Tj");
        assert_eq!(got, ["S:after"]);
    }

    #[test]
    fn output_stops_at_the_cap() {
        let s = b"(abcdefgh) Tj ".repeat(100);
        let mut o = Vec::new();
        assert!(!ops(&s, 100, &mut o));
        assert!(o.len() < 120);
    }
}
