//! The HTTP/1.x normalizer (framing, codings, JSON/HTML unescaping,
//! multipart) on arbitrary request and response streams sharing one
//! exchange, in pieces, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::normalize::{http, AppProto, Collect, Limits, NormalizeStats, Normalizer};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_header_bytes: 512,
        max_line_bytes: 64,
        max_decompressed_bytes: 1 << 18,
        ..Limits::default()
    };
    let half = rest.len() / 2;
    let (req, resp) = rest.split_at(half);
    let mut x = http::Exchange::default();
    let mut stats = NormalizeStats::default();
    let mut sink = Collect::default();
    let mut a = Normalizer::new(AppProto::Http);
    let mut b = Normalizer::new(AppProto::Http);
    let n = usize::from(piece % 64).max(1);
    for (i, (p, q)) in req.chunks(n).zip(resp.chunks(n)).enumerate() {
        a.push(p, &limits, &mut stats, &mut x, &mut sink);
        b.push(q, &limits, &mut stats, &mut x, &mut sink);
        if piece > 250 && i == 3 {
            a.gap(&mut stats, &mut sink);
        }
    }
    a.finish(&limits, &mut stats, &mut sink);
    b.finish(&limits, &mut stats, &mut sink);
});
