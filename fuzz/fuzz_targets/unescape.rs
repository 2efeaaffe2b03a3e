//! JSON and HTML/XML unescaping: any split of the input decodes the same
//! bytes as the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_sensor::normalize::escape::{Markup, Unescaper};
use shaobing_sensor::normalize::Collect;

fn run(markup: Markup, data: &[u8], piece: usize) -> Vec<u8> {
    let mut u = Unescaper::new(markup);
    let mut c = Collect::default();
    for p in data.chunks(piece.max(1)) {
        u.push(p, &mut c);
    }
    u.finish(&mut c);
    c.units.concat()
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    for m in [Markup::Json, Markup::Html] {
        let whole = run(m, rest, usize::MAX);
        assert_eq!(run(m, rest, usize::from(piece % 16)), whole);
    }
    let _ = Markup::sniff(rest);
    let _ = Markup::from_content_type(rest);
});
