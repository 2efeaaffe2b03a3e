//! Content-extraction throughput per format (release build):
//! `cargo run --release -p shaobing-sensor --example content_throughput [MB]`.
//!
//! Builds documents of about MB megabytes each (default 64) with
//! pcapgen's writers, then runs each through a content stage in 1,460-byte
//! pieces, as reassembled TCP delivers them, five times; prints input MB/s
//! and output (extracted text) MiB/s of the best run. PDFs are one page
//! whose FlateDecode content stream holds all the text.

use std::time::Instant;

use shaobing_pcapgen::documents::{xlsx, zip};
use shaobing_pcapgen::pdf::{pdf, Layout};
use shaobing_sensor::content::{Content, ContentLimits, ContentSink, ContentStats};
use shaobing_sensor::normalize::Sink;

/// Counts what comes out.
#[derive(Default)]
struct Count(u64);

impl Sink for Count {
    fn data(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
    fn boundary(&mut self) {}
}

fn prose(bytes: usize) -> String {
    let line = "关于加强数据安全管理的通知，请各处室于本月底前完成重要数据目录梳理工作。The quarterly report covers procurement. ";
    line.repeat(bytes / line.len() + 1)
}

fn docx_of(bytes: usize) -> Vec<u8> {
    let mut body =
        String::from(r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="x"><w:body>"#);
    let para = prose(200);
    while body.len() < bytes {
        body.push_str("<w:p><w:r><w:t>");
        body.push_str(&para);
        body.push_str("</w:t></w:r></w:p>");
    }
    body.push_str("</w:body></w:document>");
    zip(&[("word/document.xml", body.as_bytes(), true)])
}

/// A PDF whose text is about `bytes` long: Latin lines as literal strings
/// in a standard font, or Chinese lines as CID hex strings in a composite
/// font with a `ToUnicode` CMap (object-stream layout).
fn pdf_of(bytes: usize, cjk: bool) -> Vec<u8> {
    if cjk {
        let line = "关于加强数据安全管理的通知请各处室于本月底前完成重要数据目录梳理工作";
        let lines = vec![line; bytes / line.len() + 1];
        pdf(&[], &lines, "通知", Layout::ObjectStream)
    } else {
        let line = "The quarterly report covers procurement, staffing and the (draft) budget.";
        let lines = vec![line; bytes / line.len() + 1];
        pdf(&lines, &[], "report", Layout::Plain)
    }
}

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let bytes = mb << 20;
    let limits = ContentLimits {
        max_file_bytes: 1 << 40,
        max_flow_bytes: 1 << 40,
        max_ratio: 1 << 40,
        max_pdf_bytes: 1 << 40,
        max_pdf_decoded_bytes: 1 << 40,
        ..ContentLimits::default()
    };
    let text = prose(bytes);
    let cells: Vec<String> = (0..bytes / 40)
        .map(|i| format!("110101 19900307 {i:04} 机密"))
        .collect();
    let docx = docx_of(bytes);
    let inner = docx_of(bytes / 4);
    let nested = zip(&[
        ("a/1.docx", inner.as_slice(), false),
        ("a/2.docx", inner.as_slice(), true),
    ]);
    let mut ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
    ole2.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    ole2.truncate(bytes);
    let formats: Vec<(&str, Vec<u8>)> = vec![
        ("docx (deflated XML)", docx),
        ("xlsx (shared strings)", xlsx(&cells)),
        ("zip, stored txt", zip(&[("a.txt", text.as_bytes(), false)])),
        (
            "zip, deflated txt",
            zip(&[("a.txt", text.as_bytes(), true)]),
        ),
        ("zip of docx (nested)", nested),
        ("PDF, Latin literal strings", pdf_of(bytes, false)),
        ("PDF, CID font + ToUnicode (ObjStm)", pdf_of(bytes, true)),
        ("OLE2 (passed raw)", ole2),
        ("plain text (passed)", text.clone().into_bytes()),
    ];
    println!("| format | input MiB | text out MiB | best of 5 | input MiB/s | text out MiB/s |");
    println!("|---|---|---|---|---|---|");
    for (name, input) in formats {
        let mut best = f64::MAX;
        let mut out = 0;
        for _ in 0..5 {
            let mut content = Content::default();
            let mut stats = ContentStats::default();
            let mut sink = Count::default();
            let start = Instant::now();
            {
                let mut s = ContentSink {
                    content: &mut content,
                    limits: &limits,
                    stats: &mut stats,
                    sink: &mut sink,
                };
                for p in input.chunks(1460) {
                    s.data(p);
                }
                s.boundary();
            }
            best = best.min(start.elapsed().as_secs_f64());
            out = sink.0;
        }
        let mib = input.len() as f64 / f64::from(1 << 20);
        let out_mib = out as f64 / f64::from(1 << 20);
        println!(
            "| {name} | {mib:.1} | {out_mib:.1} | {:.1} ms | {:.0} | {:.0} |",
            best * 1000.0,
            mib / best,
            out_mib / best
        );
    }
}
