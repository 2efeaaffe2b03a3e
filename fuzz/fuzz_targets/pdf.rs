//! PDF text extraction on arbitrary bytes. The first byte chooses the
//! piece size and the layout: the rest of the input is either the body of
//! a PDF after its header, or split at the first `0xff` into a content
//! stream and a `ToUnicode` CMap that are deflated and wrapped in a
//! well-formed PDF (page, resources, composite font), so the fuzzer
//! reaches the lexer, the content-stream operators, the CMap parser and
//! the font look-up, not only the object scan. Caps are small so the
//! fuzzer reaches them.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::content::{Content, ContentLimits, ContentSink, ContentStats};
use shaobing_sensor::normalize::{Collect, Sink};

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn wrapped(content: &[u8], cmap: &[u8]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    out.extend_from_slice(b"1 0 obj\n<< /Type /Page /Contents 2 0 R /Resources << /Font << /F1 3 0 R >> >> >>\nendobj\n");
    for (n, data) in [(2, zlib(content)), (4, zlib(cmap))] {
        out.extend_from_slice(
            format!(
                "{n} 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\n",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    }
    out.extend_from_slice(
        b"3 0 obj\n<< /Type /Font /Subtype /Type0 /ToUnicode 4 0 R >>\nendobj\n%%EOF\n",
    );
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let pdf = if mode & 1 == 0 {
        let mut p = b"%PDF-1.4\n".to_vec();
        p.extend_from_slice(rest);
        p
    } else {
        let at = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        let (content, cmap) = rest.split_at(at);
        wrapped(content, cmap)
    };
    let limits = ContentLimits {
        max_file_bytes: 1 << 16,
        max_flow_bytes: 1 << 18,
        max_ratio: 50,
        max_entries: 64,
        max_depth: 3,
        max_memory_bytes: 1 << 20,
        max_pdf_bytes: 1 << 17,
        max_pdf_decoded_bytes: 1 << 18,
        max_pdf_objects: 256,
    };
    let mut content = Content::default();
    let mut stats = ContentStats::default();
    let mut sink = Collect::default();
    let mut s = ContentSink {
        content: &mut content,
        limits: &limits,
        stats: &mut stats,
        sink: &mut sink,
    };
    for p in pdf.chunks(usize::from(mode >> 1).max(1) * 97) {
        s.data(p);
    }
    s.boundary();
});
