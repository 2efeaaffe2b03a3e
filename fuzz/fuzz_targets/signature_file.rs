//! The signature file parser and compiler on arbitrary text: an error,
//! never a panic; a set that loads scans its own source without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaobing_signatures::SignatureSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = SignatureSet::from_sources(&[("fuzz.toml", text)]) {
        set.scan(data, |_| {});
    }
});
