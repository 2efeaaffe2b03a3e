//! The SMTP normalizer (DATA and BDAT chunks) and its MIME parser
//! (multipart, base64, quoted-printable, encoded words) on arbitrary
//! client streams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::normalize::{http, AppProto, Collect, Limits, NormalizeStats, Normalizer};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_line_bytes: 64,
        max_mime_depth: 3,
        ..Limits::default()
    };
    let mut x = http::Exchange::default();
    let mut stats = NormalizeStats::default();
    let mut sink = Collect::default();
    let mut n = Normalizer::new(AppProto::Smtp);
    // Start inside DATA or a BDAT chunk three times in four, so MIME is
    // reached at once.
    let start: &[u8] = match piece & 3 {
        1 => b"DATA\r\n",
        2 => b"BDAT 300\r\n",
        3 => b"BDAT 4000 LAST\r\n",
        _ => b"",
    };
    n.push(start, &limits, &mut stats, &mut x, &mut sink);
    for p in rest.chunks(usize::from(piece >> 2).max(1)) {
        n.push(p, &limits, &mut stats, &mut x, &mut sink);
    }
    n.finish(&limits, &mut stats, &mut sink);
});
