//! Content extraction on archives built here byte by byte.

use std::io::Write;

use super::*;
use crate::normalize::Collect;

/// One archive member: name, content, deflated?, sizes in a data
/// descriptor?
struct M<'a>(&'a str, &'a [u8], bool, bool);

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A ZIP archive of `members`, local headers and a central directory.
fn zip(members: &[M<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for M(name, data, deflated, descriptor) in members {
        let body = if *deflated {
            deflate(data)
        } else {
            data.to_vec()
        };
        let crc = crc32fast::hash(data);
        let flags: u16 = if *descriptor { 8 } else { 0 };
        let method: u16 = if *deflated { 8 } else { 0 };
        let (c, u, crc_h) = if *descriptor {
            (0, 0, 0)
        } else {
            (body.len() as u32, data.len() as u32, crc)
        };
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // time, date
        out.extend_from_slice(&crc_h.to_le_bytes());
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&u.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        if *descriptor {
            out.extend_from_slice(b"PK\x07\x08");
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
    }
    // A central directory the reader stops at.
    out.extend_from_slice(b"PK\x01\x02 central directory follows");
    out
}

/// Runs `units` through a content stage in pieces of `piece` bytes;
/// returns the text units out and the counters.
fn extract_with(
    units: &[&[u8]],
    piece: usize,
    limits: &ContentLimits,
) -> (Vec<String>, ContentStats) {
    let mut content = Content::default();
    let mut stats = ContentStats::default();
    let mut c = Collect::default();
    {
        let mut s = ContentSink {
            content: &mut content,
            limits,
            stats: &mut stats,
            sink: &mut c,
        };
        for u in units {
            for p in u.chunks(piece.max(1)) {
                s.data(p);
            }
            s.boundary();
        }
    }
    let text = c
        .units
        .iter()
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .collect();
    (text, stats)
}

fn extract(units: &[&[u8]]) -> (Vec<String>, ContentStats) {
    let limits = ContentLimits::default();
    let (whole, stats) = extract_with(units, usize::MAX, &limits);
    for piece in [1, 7, 1460] {
        let (t, s) = extract_with(units, piece, &limits);
        assert_eq!(t, whole, "piece {piece}");
        assert_eq!(s, stats, "piece {piece}");
    }
    (whole, stats)
}

const DOCX_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>机</w:t></w:r><w:r><w:t>密★</w:t></w:r><w:r><w:t xml:space="preserve"> 一年</w:t></w:r></w:p></w:body></w:document>"#;

fn docx() -> Vec<u8> {
    zip(&[
        M("[Content_Types].xml", b"<Types/>", true, false),
        M("_rels/.rels", b"<Relationships/>", true, false),
        M("word/document.xml", DOCX_BODY.as_bytes(), true, true),
        M(
            "word/media/image1.png",
            b"\x89PNG\r\n\x1a\n binary",
            false,
            false,
        ),
        M(
            "word/footer1.xml",
            "<w:ftr xmlns:w=\"x\"><w:p><w:r><w:t>&#32477;&#23494;&#9733;</w:t></w:r></w:p></w:ftr>"
                .as_bytes(),
            false,
            false,
        ),
    ])
}

#[test]
fn docx_text_is_joined_across_runs_and_entities_decoded() {
    let (t, s) = extract(&[&docx()]);
    assert!(t.iter().any(|u| u.contains("机密★ 一年")), "{t:?}");
    assert!(t.iter().any(|u| u.contains("绝密★")), "{t:?}");
    assert!(
        !t.iter().any(|u| u.contains("PNG") || u.contains("PK")),
        "{t:?}"
    );
    assert_eq!((s.zip_files, s.zip_members, s.xml_parts), (1, 5, 2));
}

#[test]
fn xlsx_shared_strings_keep_cells_apart() {
    let x = zip(&[M(
        "xl/sharedStrings.xml",
        b"<sst><si><t>110101 19900307 1233</t></si><si><t>6222021234567890128</t></si></sst>",
        true,
        false,
    )]);
    let (t, _) = extract(&[&x]);
    assert!(
        t.iter()
            .any(|u| u == "110101 19900307 1233\n6222021234567890128\n"),
        "{t:?}"
    );
}

#[test]
fn nested_archives_are_read_to_the_depth_cap() {
    let inner = docx();
    let outer = zip(&[M("docs/report.docx", &inner, true, false)]);
    let (t, s) = extract(&[&outer]);
    assert!(t.iter().any(|u| u.contains("机密★ 一年")), "{t:?}");
    assert_eq!(s.zip_files, 2);
    // Three levels are read; a fourth is past the default cap of 3.
    let three = zip(&[M("a.zip", &outer, false, false)]);
    let (t, _) = extract(&[&three]);
    assert!(t.iter().any(|u| u.contains("机密★")), "{t:?}");
    let four = zip(&[M("b.zip", &three, true, false)]);
    let (t, s) = extract(&[&four]);
    assert!(!t.iter().any(|u| u.contains("机密★")), "{t:?}");
    assert_eq!(s.depth_capped, 1);
}

#[test]
fn plain_members_pass_and_other_units_are_untouched() {
    let z = zip(&[M("notes.txt", "绝密★ text".as_bytes(), true, true)]);
    let (t, s) = extract(&[b"HTTP/1.1 200 OK\r\n\r\n", &z, b"after"]);
    assert_eq!(t, ["HTTP/1.1 200 OK\r\n\r\n", "绝密★ text", "after"]);
    assert_eq!(s.bytes_extracted, "绝密★ text".len() as u64);
}

#[test]
fn a_deflate_bomb_stops_at_the_ratio_cap() {
    let zeros = vec![b'0'; 50 << 20];
    let z = zip(&[M("bomb.txt", &zeros, true, false)]);
    let (t, s) = extract_with(&[&z], 1460, &ContentLimits::default());
    assert_eq!(s.ratio_capped + s.file_capped, 1, "{s:?}");
    assert!(t.concat().len() < 20 << 20);
}

#[test]
fn flow_and_entry_caps_are_counted() {
    let many: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}.txt"), vec![b'a'; 1000]))
        .collect();
    let members: Vec<M<'_>> = many
        .iter()
        .map(|(n, d)| M(n.as_str(), d.as_slice(), true, false))
        .collect();
    let z = zip(&members);
    let limits = ContentLimits {
        max_entries: 5,
        max_flow_bytes: 3000,
        ..ContentLimits::default()
    };
    let (t, s) = extract_with(&[&z], 100, &limits);
    assert_eq!(t.concat().len(), 3000);
    assert_eq!((s.entries_capped, s.flow_capped), (1, 1));
}

#[test]
fn encrypted_and_truncated_archives_are_counted_not_panicked() {
    let mut z = zip(&[M("a.txt", b"secret", false, false)]);
    // Set the encryption flag.
    z[6] |= 1;
    let (t, s) = extract(&[&z]);
    assert!(!t.iter().any(|u| u.contains("secret")));
    assert_eq!(s.zip_unsupported, 1);
    let full = docx();
    for n in 0..full.len() {
        extract_with(&[&full[..n]], 13, &ContentLimits::default());
        let mut m = full.clone();
        m[n] ^= 0x5a;
        extract_with(&[&m], 13, &ContentLimits::default());
    }
}

#[test]
fn ole2_files_are_passed_on_raw_and_counted() {
    let mut doc = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
    doc.extend("机密★".encode_utf16().flat_map(u16::to_le_bytes));
    let (t, s) = extract(&[&doc]);
    assert_eq!(t.concat().len(), String::from_utf8_lossy(&doc).len());
    assert_eq!(s.ole2_files, 1);
}

#[test]
fn a_pdf_in_any_pieces_gives_its_text_not_its_bytes() {
    use shaobing_pcapgen::pdf::{pdf, Layout};
    let p = pdf(
        &["Quarterly report"],
        &["机密★一年"],
        "notice",
        Layout::ObjectStream,
    );
    let (t, s) = extract(&[b"before", &p, b"after"]);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[0], "before");
    assert!(
        t[1].contains("Quarterly report") && t[1].contains("机密★一年"),
        "{t:?}"
    );
    assert!(
        !t[1].contains("%PDF") && !t[1].contains("endstream"),
        "{t:?}"
    );
    assert_eq!(t[2], "after");
    assert_eq!((s.pdf_files, s.pdf_cmaps, s.pdf_errors), (1, 1, 0));
    assert_eq!(s.bytes_extracted, t[1].len() as u64);
}

#[test]
fn a_pdf_past_the_input_cap_is_read_up_to_it_and_counted() {
    use shaobing_pcapgen::pdf::{pdf, Layout};
    let p = pdf(&["Latin text first"], &["机密★"], "t", Layout::Plain);
    // The cap falls after the content stream, before the fonts.
    let cut = p.windows(7).position(|w| w == b"8 0 obj").unwrap();
    let limits = ContentLimits {
        max_pdf_bytes: cut,
        ..ContentLimits::default()
    };
    let (t, s) = extract_with(&[&p], 100, &limits);
    assert!(t.concat().contains("Latin text first"), "{t:?}");
    assert_eq!((s.pdf_input_capped, s.pdf_errors), (1, 1), "{s:?}");
    // The buffered bytes went back to the memory budget.
    assert_eq!(BUFFERED.load(Ordering::Relaxed), 0);
}

#[test]
fn a_pdf_inside_an_archive_gives_its_text() {
    use shaobing_pcapgen::pdf::{pdf, Layout};
    let p = pdf(&["Annex"], &["绝密★十年"], "t", Layout::Plain);
    let z = zip(&[
        M("docs/annex.pdf", &p, true, true),
        M("readme.txt", b"plain", false, false),
    ]);
    let (t, s) = extract(&[&z]);
    assert!(t.iter().any(|u| u.contains("绝密★十年")), "{t:?}");
    assert!(!t.iter().any(|u| u.contains("%PDF")), "{t:?}");
    assert!(t.iter().any(|u| u == "plain"), "{t:?}");
    assert_eq!((s.zip_members, s.pdf_files, s.pdf_cmaps), (2, 1, 1));
}
