//! Content extraction (ZIP, OOXML/ODF XML, nested archives, PDF) on arbitrary
//! bytes, delivered in pieces whose sizes the first byte chooses; every
//! cap small so the fuzzer reaches them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::content::{Content, ContentLimits, ContentSink, ContentStats};
use shaobing_sensor::normalize::Collect;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let limits = ContentLimits {
        max_file_bytes: 1 << 16,
        max_flow_bytes: 1 << 18,
        max_ratio: 50,
        max_entries: 64,
        max_depth: 3,
        max_memory_bytes: 1 << 20,
        max_pdf_bytes: 1 << 16,
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
    use shaobing_sensor::normalize::Sink;
    for (i, p) in rest.chunks(usize::from(piece).max(1)).enumerate() {
        s.data(p);
        if i % 7 == 6 {
            s.boundary();
        }
    }
    s.boundary();
});
