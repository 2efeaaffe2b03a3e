//! Encrypted-session recognition on arbitrary streams and datagrams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::normalize::encrypted::{datagram, Datagrams, Opaque, SkipStats};
use shaobing_sensor::normalize::Collect;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let mut o = Opaque::new();
    let mut d = Datagrams::default();
    let mut s = SkipStats::default();
    let mut c = Collect::default();
    for p in rest.chunks(usize::from(piece).max(1)) {
        o.push(p, &mut s, &mut c);
        d.push(p, &mut s, &mut c);
        let _ = datagram(p);
    }
    o.finish(&mut s, &mut c);
});
