//! A small PDF writer for captures, tests and benchmarks: one page whose
//! FlateDecode content stream shows Latin lines as literal strings in a
//! standard font (no `ToUnicode`, so the string bytes are the text) and
//! Chinese lines as hex strings of 2-byte CIDs in a composite font
//! (`Type0`, `Identity-H`) whose `ToUnicode` CMap is the only way from the
//! codes to the characters. CJK lines are `TJ` arrays with kerning
//! numbers between their pieces. Optionally the non-stream objects go
//! into a compressed object stream with a cross-reference stream, as
//! PDF 1.5+ writers do.

use std::collections::BTreeMap;
use std::io::Write;

/// How [`pdf`] lays out its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every object in the file, a classic `xref` table.
    Plain,
    /// Non-stream objects in a FlateDecode object stream, an `XRef`
    /// stream instead of the table.
    ObjectStream,
}

fn deflate_zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// A PDF literal string: `( ) \` escaped, bytes outside ASCII as octal.
pub fn literal(s: &[u8]) -> String {
    let mut out = String::from("(");
    for &b in s {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push(')');
    out
}

/// The CIDs given to the characters of `lines` (from 3 up, in order of
/// first use).
fn cids(lines: &[&str]) -> BTreeMap<char, u16> {
    let mut m = BTreeMap::new();
    let mut next = 3u16;
    for c in lines.iter().flat_map(|l| l.chars()) {
        m.entry(c).or_insert_with(|| {
            next += 1;
            next - 1
        });
    }
    m
}

/// A `ToUnicode` CMap for `cids` (bfchar entries, UTF-16BE values).
fn to_unicode(cids: &BTreeMap<char, u16>) -> String {
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(u16, char)> = cids.iter().map(|(c, n)| (*n, *c)).collect();
    for chunk in entries.chunks(100) {
        s.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (cid, c) in chunk {
            let mut units = [0u16; 2];
            let hex: String = c
                .encode_utf16(&mut units)
                .iter()
                .map(|u| format!("{u:04X}"))
                .collect();
            s.push_str(&format!("<{cid:04X}> <{hex}>\n"));
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s
}

/// The page's content stream.
fn content(latin: &[&str], cjk: &[&str], cids: &BTreeMap<char, u16>) -> String {
    let mut s = String::from("BT\n/F1 11 Tf\n14 TL\n72 770 Td\n");
    for l in latin {
        s.push_str(&format!("{} Tj\nT*\n", literal(l.as_bytes())));
    }
    s.push_str("ET\nBT\n/F2 12 Tf\n");
    let mut y = 600;
    for l in cjk {
        s.push_str(&format!("1 0 0 1 72 {y} Tm\n["));
        let chars: Vec<char> = l.chars().collect();
        // Pieces of up to two characters with a kerning number between.
        for (i, piece) in chars.chunks(2).enumerate() {
            if i > 0 {
                s.push_str(" -12 ");
            }
            s.push('<');
            for c in piece {
                s.push_str(&format!("{:04X}", cids.get(c).copied().unwrap_or(0)));
            }
            s.push('>');
        }
        s.push_str("] TJ\n");
        y -= 18;
    }
    s.push_str("ET\n");
    s
}

/// A one-page PDF showing `latin` lines (standard font, literal strings)
/// and `cjk` lines (composite font with a `ToUnicode` CMap), with `title`
/// in its document information, laid out as `layout` says.
pub fn pdf(latin: &[&str], cjk: &[&str], title: &str, layout: Layout) -> Vec<u8> {
    let cids = cids(cjk);
    let body = deflate_zlib(content(latin, cjk, &cids).as_bytes());
    let cmap = deflate_zlib(to_unicode(&cids).as_bytes());
    let title_utf16: String = std::iter::once("<FEFF".to_string())
        .chain(title.encode_utf16().map(|u| format!("{u:04X}")))
        .chain(std::iter::once(">".to_string()))
        .collect();
    // Non-stream objects, numbered 1, 2, 3, 5, 6, 7, 9.
    let plain: Vec<(u32, String)> = vec![
        (1, "<< /Type /Catalog /Pages 2 0 R >>".into()),
        (
            2,
            "<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>"
                .into(),
        ),
        (
            3,
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>".into(),
        ),
        (
            5,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
        ),
        (
            6,
            "<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [7 0 R] /ToUnicode 8 0 R >>"
                .into(),
        ),
        (
            7,
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>"
                .into(),
        ),
        (
            9,
            format!("<< /Title {title_utf16} /Producer (shaobing-pcapgen) >>"),
        ),
    ];
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    // Object number -> (type, field 2, field 3) of its xref entry.
    let mut xref: BTreeMap<u32, (u8, u64, u16)> = BTreeMap::new();
    let stream = |out: &mut Vec<u8>, n: u32, dict: &str, data: &[u8]| {
        out.extend_from_slice(
            format!("{n} 0 obj\n<< {dict} /Length {} >>\nstream\n", data.len()).as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    };
    xref.insert(4, (1, out.len() as u64, 0));
    stream(&mut out, 4, "/Filter /FlateDecode", &body);
    xref.insert(8, (1, out.len() as u64, 0));
    stream(&mut out, 8, "/Filter /FlateDecode", &cmap);
    match layout {
        Layout::Plain => {
            for (n, o) in &plain {
                xref.insert(*n, (1, out.len() as u64, 0));
                out.extend_from_slice(format!("{n} 0 obj\n{o}\nendobj\n").as_bytes());
            }
            let start = out.len();
            let mut table = format!("xref\n0 10\n{:010} 65535 f \n", 0);
            for n in 1..10u32 {
                let off = xref.get(&n).map_or(0, |e| e.1);
                table.push_str(&format!("{off:010} 00000 n \n"));
            }
            out.extend_from_slice(table.as_bytes());
            out.extend_from_slice(
                format!(
                    "trailer\n<< /Size 10 /Root 1 0 R /Info 9 0 R >>\nstartxref\n{start}\n%%EOF\n"
                )
                .as_bytes(),
            );
        }
        Layout::ObjectStream => {
            let mut header = String::new();
            let mut objects = String::new();
            for (i, (n, o)) in plain.iter().enumerate() {
                header.push_str(&format!("{n} {} ", objects.len()));
                objects.push_str(o);
                objects.push('\n');
                xref.insert(*n, (2, 10, i as u16));
            }
            let first = header.len();
            let data = deflate_zlib(format!("{header}{objects}").as_bytes());
            xref.insert(10, (1, out.len() as u64, 0));
            stream(
                &mut out,
                10,
                &format!(
                    "/Type /ObjStm /N {} /First {first} /Filter /FlateDecode",
                    plain.len()
                ),
                &data,
            );
            let start = out.len();
            xref.insert(11, (1, start as u64, 0));
            let mut rows = vec![0u8, 0, 0, 0, 0, 0xff, 0xff];
            for n in 1..12u32 {
                let (t, f2, f3) = xref.get(&n).copied().unwrap_or((0, 0, 0));
                rows.push(t);
                rows.extend_from_slice(&(f2 as u32).to_be_bytes());
                rows.extend_from_slice(&f3.to_be_bytes());
            }
            stream(
                &mut out,
                11,
                "/Type /XRef /Size 12 /W [1 4 2] /Root 1 0 R /Info 9 0 R /Filter /FlateDecode",
                &deflate_zlib(&rows),
            );
            out.extend_from_slice(format!("startxref\n{start}\n%%EOF\n").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xref_table_points_at_each_object() {
        let p = pdf(&["Hello (world)"], &["机密★"], "t", Layout::Plain);
        let s = String::from_utf8_lossy(&p);
        let table = s.split("xref\n0 10\n").nth(1).unwrap();
        for (i, line) in table.lines().skip(1).take(9).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                p[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "{line}"
            );
        }
        let c = content(&["Hello (world)"], &["机密★"], &cids(&["机密★"]));
        assert!(c.contains("(Hello \\(world\\)) Tj"), "{c}");
        assert!(c.contains("[<00030004> -12 <0005>] TJ"), "{c}");
    }

    #[test]
    fn characters_get_their_own_cids_and_cmap_entries() {
        let c = cids(&["机密★", "密一"]);
        assert_eq!(c.len(), 4);
        let m = to_unicode(&c);
        assert!(m.contains("<673A>") && m.contains("<2605>"), "{m}");
    }
}
