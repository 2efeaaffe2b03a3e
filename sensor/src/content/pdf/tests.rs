//! PDF text extraction on PDFs built here (by pcapgen's writer and by
//! hand).

use std::io::Write;

use shaobing_pcapgen::pdf::{pdf, Layout};

use super::*;

fn run_with(buf: &[u8], limits: &ContentLimits) -> (String, ContentStats) {
    let mut stats = ContentStats::default();
    let mut out = Vec::new();
    extract(buf, limits, &mut stats, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), stats)
}

fn run(buf: &[u8]) -> (String, ContentStats) {
    run_with(buf, &ContentLimits::default())
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A PDF of the given objects (`(number, dictionary, stream data)`),
/// written as they come, with a table and `%%EOF`.
fn hand(objects: &[(u32, &str, Option<&[u8]>)]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    for (n, dict, data) in objects {
        out.extend_from_slice(format!("{n} 0 obj\n{dict}").as_bytes());
        if let Some(d) = data {
            out.extend_from_slice(b"\nstream\r\n");
            out.extend_from_slice(d);
            out.extend_from_slice(b"\r\nendstream");
        }
        out.extend_from_slice(b"\nendobj\n");
    }
    out.extend_from_slice(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n");
    out
}

#[test]
fn latin_literal_strings_are_text_with_their_escapes_undone() {
    let p = pdf(
        &["Employee (HR) file: id 11010519491231002X", "back\\slash"],
        &[],
        "roster",
        Layout::Plain,
    );
    let (t, s) = run(&p);
    assert!(
        t.contains("Employee (HR) file: id 11010519491231002X\nback\\slash"),
        "{t:?}"
    );
    assert!(t.contains("roster"), "{t:?}");
    assert_eq!((s.pdf_files, s.pdf_errors, s.pdf_unsupported), (1, 0, 0));
    assert_eq!(s.pdf_streams, 2);
}

#[test]
fn a_cid_font_is_mapped_through_its_to_unicode_cmap() {
    let lines = [
        "关于数据安全的通知",
        "机密★一年",
        "公民身份号码110105194912310021",
    ];
    for layout in [Layout::Plain, Layout::ObjectStream] {
        let p = pdf(&["Notice"], &lines, "内部文件", layout);
        let (t, s) = run(&p);
        for l in lines {
            assert!(t.contains(l), "{layout:?}: {l} not in {t:?}");
        }
        // Lines set with Tm at another height are broken apart.
        assert!(t.contains("机密★一年\n公民身份号码"), "{t:?}");
        // The information dictionary's UTF-16BE title.
        assert!(t.contains("内部文件"), "{t:?}");
        assert_eq!(s.pdf_cmaps, 1, "{layout:?}");
        assert_eq!(s.pdf_errors, 0, "{layout:?}");
    }
}

#[test]
fn the_codes_alone_do_not_spell_the_text() {
    // Without the CMap the CIDs are meaningless: the marking is found only
    // through the mapping (the test above is not passing by accident).
    let p = pdf(&[], &["机密★"], "", Layout::Plain);
    assert!(!p.windows("机密".len()).any(|w| w == "机密".as_bytes()));
}

#[test]
fn tj_kerning_joins_pieces_and_a_wide_gap_is_a_space() {
    let content = b"BT /F1 10 Tf [(Con) 15 (fiden) -30.5 (tial) -400 (report)] TJ ET";
    let p = hand(&[
        (
            1,
            "<< /Type /Page /Contents 2 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            None,
        ),
        (
            2,
            &format!("<< /Length {} /Filter /FlateDecode >>", zlib(content).len()),
            Some(&zlib(content)),
        ),
        (
            3,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            None,
        ),
    ]);
    let (t, _) = run(&p);
    assert!(t.contains("Confidential report"), "{t:?}");
}

#[test]
fn one_byte_cmap_codes_and_bfrange_arrays() {
    let cmap = b"begincmap 1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfrange <41> <43> [<7EDD> <5BC6> <2605>] endbfrange endcmap";
    let content = b"BT /T 9 Tf (ABC) Tj ET";
    let p = hand(&[
        (
            2,
            &format!("<< /Length {} >>", content.len()),
            Some(content),
        ),
        (
            4,
            "<< /Type /Font /Subtype /TrueType /ToUnicode 5 0 R >>",
            None,
        ),
        // /Length given indirectly: the data ends at endstream.
        (5, "<< /Length 6 0 R >>", Some(cmap)),
        (6, &cmap.len().to_string(), None),
        (
            1,
            "<< /Type /Page /Contents [2 0 R] /Resources 7 0 R >>",
            None,
        ),
        (7, "<< /Font << /T 4 0 R >> >>", None),
    ]);
    let (t, s) = run(&p);
    assert!(t.contains("绝密★"), "{t:?}");
    assert_eq!(s.pdf_cmaps, 1);
}

#[test]
fn a_font_without_cmap_gives_the_string_bytes_as_they_are() {
    // A Chinese font with a predefined GBK encoding: the codes are GBK.
    let gbk = shaobing_pcapgen::payload::gbk("机密★");
    let mut content = b"BT /F1 12 Tf <".to_vec();
    for b in gbk.iter() {
        content.extend_from_slice(format!("{b:02X}").as_bytes());
    }
    content.extend_from_slice(b"> Tj ET");
    let p = hand(&[
        (
            1,
            "<< /Type /Page /Contents 2 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            None,
        ),
        (
            2,
            &format!("<< /Length {} >>", content.len()),
            Some(&content),
        ),
        (
            3,
            "<< /Type /Font /Subtype /Type0 /Encoding /GBK-EUC-H >>",
            None,
        ),
    ]);
    let mut stats = ContentStats::default();
    let mut out = Vec::new();
    extract(&p, &ContentLimits::default(), &mut stats, &mut out);
    assert!(out.windows(gbk.len()).any(|w| w == &gbk[..]), "{out:?}");
}

#[test]
fn truncated_and_corrupted_pdfs_are_counted_and_never_panic() {
    let full = pdf(&["Latin line"], &["机密★"], "t", Layout::Plain);
    let mut errors = 0;
    for n in 0..full.len() {
        let (_, s) = run(&full[..n]);
        errors += s.pdf_errors;
        let mut m = full.clone();
        m[n] ^= 0x5a;
        run(&m);
        m[n] = b'(';
        run(&m);
    }
    assert!(errors >= full.len() as u64 - 10, "{errors}");
    // Cut after the two streams: the Latin text is kept, the error counted.
    let cut = memchr::memmem::find(&full, b"1 0 obj").unwrap();
    let (t, s) = run(&full[..cut]);
    assert!(t.contains("Latin line"), "{t:?}");
    assert_eq!(s.pdf_errors, 1);
    let objstm = pdf(&["x"], &["机密★"], "t", Layout::ObjectStream);
    for n in (0..objstm.len()).step_by(3) {
        run(&objstm[..n]);
    }
}

#[test]
fn corrupt_flate_data_keeps_what_inflated_before() {
    // A zlib header, a stored block holding the text, then a block of the
    // reserved type 3: an inflate error after the text.
    let text = b"BT (kept text) Tj ET";
    let mut data = vec![0x78, 0x01, 0x00];
    data.extend_from_slice(&(text.len() as u16).to_le_bytes());
    data.extend_from_slice(&(!(text.len() as u16)).to_le_bytes());
    data.extend_from_slice(text);
    data.push(0x07);
    let p = hand(&[(
        1,
        &format!("<< /Length {} /Filter /FlateDecode >>", data.len()),
        Some(&data),
    )]);
    let (t, s) = run(&p);
    assert!(t.contains("kept text"), "{t:?}");
    assert_eq!(s.pdf_errors, 1, "{s:?}");
}

#[test]
fn a_flate_bomb_stops_at_the_ratio_cap_and_the_decoded_cap() {
    let mut content = b"BT ".to_vec();
    content.extend(std::iter::repeat_n(b' ', 20 << 20));
    content.extend_from_slice(b"(never) Tj ET");
    let bomb = zlib(&content);
    let p = hand(&[(
        1,
        &format!("<< /Length {} /Filter /FlateDecode >>", bomb.len()),
        Some(&bomb),
    )]);
    let (t, s) = run(&p);
    assert!(!t.contains("never"));
    assert_eq!(s.ratio_capped, 1, "{s:?}");
    let limits = ContentLimits {
        max_ratio: 1 << 20,
        max_pdf_decoded_bytes: 1 << 20,
        ..ContentLimits::default()
    };
    let (_, s) = run_with(&p, &limits);
    assert_eq!((s.ratio_capped, s.pdf_decoded_capped), (0, 1), "{s:?}");
}

#[test]
fn object_count_is_capped() {
    let objs: Vec<(u32, String)> = (1..50).map(|n| (n, format!("<< /V (v{n}) >>"))).collect();
    let list: Vec<(u32, &str, Option<&[u8]>)> =
        objs.iter().map(|(n, d)| (*n, d.as_str(), None)).collect();
    let p = hand(&list);
    let limits = ContentLimits {
        max_pdf_objects: 10,
        ..ContentLimits::default()
    };
    let (t, s) = run_with(&p, &limits);
    assert_eq!(s.pdf_objects_capped, 1);
    assert!(t.contains("v10") && !t.contains("v11"), "{t:?}");
}

#[test]
fn encrypted_pdfs_and_other_filters_are_unsupported() {
    let mut p = pdf(&["secret"], &[], "t", Layout::Plain);
    let at = memchr::memmem::find(&p, b"/Root").unwrap();
    p.splice(at..at, b"/Encrypt 12 0 R ".iter().copied());
    let (t, s) = run(&p);
    assert!(t.is_empty(), "{t:?}");
    assert_eq!(s.pdf_unsupported, 1);
    let p = hand(&[
        (
            1,
            "<< /Length 8 /Filter /RunLengthDecode >>",
            Some(b"\x07(rl) Tj\x80"),
        ),
        (
            2,
            "<< /Length 4 /Filter [/FlateDecode /DCTDecode] >>",
            Some(b"abcd"),
        ),
        (
            3,
            "<< /Length 4 /Filter /FlateDecode /DecodeParms << /Predictor 7 >> >>",
            Some(b"abcd"),
        ),
    ]);
    let (_, s) = run(&p);
    assert_eq!(s.pdf_unsupported, 3);
}

/// `data` in ASCII85 (`~>` at the end).
fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        let mut v = u32::from_be_bytes(word);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = (v % 85) as u8 + b'!';
            v /= 85;
        }
        out.extend_from_slice(&digits[..chunk.len() + 1]);
    }
    out.extend_from_slice(b"~>");
    out
}

/// `data` in rows of `columns` bytes, each PNG-predicted with Up (2).
fn png_up(data: &[u8], columns: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prior = vec![0u8; columns];
    for row in data.chunks(columns) {
        out.push(2);
        for (i, b) in row.iter().enumerate() {
            out.push(b.wrapping_sub(prior[i]));
            prior[i] = *b;
        }
    }
    out
}

#[test]
fn content_streams_behind_other_filters_and_predictors_are_read() {
    let a85 = ascii85(&zlib(b"BT /F1 9 Tf (alpha) Tj ET"));
    let hex: Vec<u8> = b"BT (beta) Tj ET"
        .iter()
        .flat_map(|b| format!("{b:02X} ").into_bytes())
        .chain(*b">")
        .collect();
    let lzw = super::filter::tests::lzw_encode(b"BT (gamma gamma gamma) Tj ET", true);
    let lzw_late = super::filter::tests::lzw_encode(b"BT (delta) Tj ET", false);
    let predicted = zlib(&png_up(b"BT (epsilon) Tj ET", 5));
    let dict = |n: usize, rest: &str| format!("<< /Length {n} {rest} >>");
    let p = hand(&[
        (
            1,
            &dict(a85.len(), "/Filter [/ASCII85Decode /FlateDecode]"),
            Some(&a85),
        ),
        (2, &dict(hex.len(), "/Filter /AHx"), Some(&hex)),
        (3, &dict(lzw.len(), "/Filter /LZWDecode"), Some(&lzw)),
        (
            4,
            &dict(
                lzw_late.len(),
                "/Filter [/LZWDecode] /DecodeParms [<< /EarlyChange 0 >>]",
            ),
            Some(&lzw_late),
        ),
        (
            5,
            &dict(
                predicted.len(),
                "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 5 >>",
            ),
            Some(&predicted),
        ),
    ]);
    let (t, s) = run(&p);
    for word in ["alpha", "beta", "gamma gamma gamma", "delta", "epsilon"] {
        assert!(t.contains(word), "{word}: {t:?}");
    }
    assert_eq!(s.pdf_unsupported, 0);
    assert_eq!(s.pdf_errors, 0);
    assert_eq!(s.pdf_streams, 5);
}

#[test]
fn images_and_font_programs_are_not_read_as_text() {
    let p = hand(&[
        (
            1,
            "<< /Type /XObject /Subtype /Image /Length 16 >>",
            Some(b"(image) Tj xxxxx"),
        ),
        (2, "<< /Length1 16 /Length 16 >>", Some(b"(fontpg) Tj xxxx")),
        (3, "<< /Length 13 >>", Some(b"(page) Tj    ")),
    ]);
    let (t, s) = run(&p);
    assert_eq!(t.trim(), "page");
    assert_eq!(s.pdf_streams, 1);
}
