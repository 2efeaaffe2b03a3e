//! The stream filters besides `FlateDecode` that carry text in real PDFs:
//! `ASCII85Decode` and `ASCIIHexDecode` (content streams of PostScript
//! distillers, often before `FlateDecode`), `LZWDecode` (PDF 1.0–1.1
//! writers), and the PNG and TIFF predictors a `FlateDecode` or
//! `LZWDecode` stream may name in its `DecodeParms`. Each decoder stops at
//! `cap` output bytes and says how it ended, as `inflate` does.

use super::Inflated;

/// Decodes `ASCII85Decode` data (ends at `~>`; whitespace ignored; `z`
/// for four zero bytes; a final partial group padded as the filter
/// says).
pub(super) fn ascii85(raw: &[u8], cap: u64) -> (Vec<u8>, Inflated) {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(raw.len().min(cap) * 4 / 5 + 4);
    let mut group = [0u8; 5];
    let mut n = 0;
    let mut end = Inflated::Done;
    for &b in raw {
        match b {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                if let Some(slot) = group.get_mut(n) {
                    *slot = b - b'!';
                }
                n += 1;
                if n == 5 {
                    match base85_group(&group) {
                        Some(word) => out.extend_from_slice(&word),
                        None => {
                            end = Inflated::Corrupt;
                            n = 0;
                            break;
                        }
                    }
                    n = 0;
                }
            }
            b if b.is_ascii_whitespace() || b == 0 => {}
            _ => {
                end = Inflated::Corrupt;
                break;
            }
        }
        if out.len() > cap {
            out.truncate(cap);
            return (out, Inflated::Capped);
        }
    }
    // A final group of 2 to 4 characters gives 1 to 3 bytes.
    if n >= 2 {
        for slot in group.iter_mut().skip(n) {
            *slot = b'u' - b'!';
        }
        match base85_group(&group) {
            Some(word) => out.extend_from_slice(word.get(..n - 1).unwrap_or_default()),
            None => end = Inflated::Corrupt,
        }
    }
    if out.len() > cap {
        out.truncate(cap);
        return (out, Inflated::Capped);
    }
    (out, end)
}

/// Five base-85 digits as four bytes; `None` past 2^32 - 1.
fn base85_group(digits: &[u8; 5]) -> Option<[u8; 4]> {
    let v = digits
        .iter()
        .try_fold(0u64, |acc, d| Some(acc * 85 + u64::from(*d)))?;
    u32::try_from(v).ok().map(u32::to_be_bytes)
}

/// Decodes `ASCIIHexDecode` data (ends at `>`; whitespace ignored; an odd
/// final digit is followed by 0).
pub(super) fn ascii_hex(raw: &[u8], cap: u64) -> (Vec<u8>, Inflated) {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(raw.len().min(cap.saturating_mul(2)) / 2 + 1);
    let mut high: Option<u8> = None;
    let mut end = Inflated::Done;
    for &b in raw {
        let v = match b {
            b'>' => break,
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b if b.is_ascii_whitespace() || b == 0 => continue,
            _ => {
                end = Inflated::Corrupt;
                break;
            }
        };
        match high.take() {
            Some(h) => {
                if out.len() == cap {
                    return (out, Inflated::Capped);
                }
                out.push(h << 4 | v);
            }
            None => high = Some(v),
        }
    }
    if let Some(h) = high {
        if out.len() == cap {
            return (out, Inflated::Capped);
        }
        out.push(h << 4);
    }
    (out, end)
}

/// Longest LZW code.
const LZW_MAX_BITS: u32 = 12;
const LZW_CLEAR: u16 = 256;
const LZW_EOD: u16 = 257;

/// Decodes `LZWDecode` data: codes of 9 to 12 bits, most significant bit
/// first; `early_change` (the default, 1) widens codes one entry early.
pub(super) fn lzw(raw: &[u8], cap: u64, early_change: bool) -> (Vec<u8>, Inflated) {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    // Each table entry: (prefix entry, last byte, length); the first 258
    // are the single bytes and the two control codes.
    let mut table: Vec<(u16, u8, u32)> = Vec::with_capacity(1 << LZW_MAX_BITS);
    let reset = |t: &mut Vec<(u16, u8, u32)>| {
        t.clear();
        t.extend((0..=255u8).map(|b| (u16::MAX, b, 1)));
        t.push((u16::MAX, 0, 0));
        t.push((u16::MAX, 0, 0));
    };
    reset(&mut table);
    let mut out: Vec<u8> = Vec::new();
    let mut width = 9u32;
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut prev: Option<u16> = None;
    let mut scratch: Vec<u8> = Vec::new();
    for &b in raw {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= width {
            bits -= width;
            let code = u16::try_from((acc >> bits) & ((1 << width) - 1)).unwrap_or(LZW_EOD);
            acc &= (1 << bits) - 1;
            if code == LZW_CLEAR {
                reset(&mut table);
                width = 9;
                prev = None;
                continue;
            }
            if code == LZW_EOD {
                return (out, Inflated::Done);
            }
            let next = table.len();
            // The entry's bytes: a known code, or (KwKwK) the previous
            // entry plus its own first byte.
            let (entry, extra) = if usize::from(code) < next {
                (code, None)
            } else if usize::from(code) == next {
                match prev {
                    Some(p) => (p, Some(())),
                    None => return (out, Inflated::Corrupt),
                }
            } else {
                return (out, Inflated::Corrupt);
            };
            scratch.clear();
            let mut at = entry;
            while let Some(&(parent, byte, _)) = table.get(usize::from(at)) {
                scratch.push(byte);
                if parent == u16::MAX {
                    break;
                }
                at = parent;
            }
            scratch.reverse();
            let first = scratch.first().copied().unwrap_or(0);
            if extra.is_some() {
                scratch.push(first);
            }
            if let Some(p) = prev {
                if next < 1 << LZW_MAX_BITS {
                    let len = table.get(usize::from(p)).map_or(0, |e| e.2) + 1;
                    table.push((p, first, len));
                }
            }
            let room = cap.saturating_sub(out.len());
            if scratch.len() > room {
                out.extend_from_slice(scratch.get(..room).unwrap_or_default());
                return (out, Inflated::Capped);
            }
            out.extend_from_slice(&scratch);
            prev = Some(code);
            let size = table.len() + usize::from(early_change);
            if size >= 1 << width && width < LZW_MAX_BITS {
                width += 1;
            }
        }
    }
    (out, Inflated::Done)
}

/// What a `DecodeParms` dictionary says about prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Predictor {
    /// 1: none, 2: TIFF, 10–15: PNG.
    pub(super) kind: usize,
    pub(super) colors: usize,
    pub(super) bits: usize,
    pub(super) columns: usize,
}

/// Widest row a predictor undoes (bytes); wider is refused as corrupt.
const MAX_ROW: usize = 1 << 20;

/// Undoes `p` on `data`; `None` for a predictor or a bit depth that is not
/// supported (TIFF with other than 8 bits per component) or a row wider
/// than [`MAX_ROW`].
pub(super) fn unpredict(data: &[u8], p: Predictor) -> Option<Vec<u8>> {
    let bits_per_pixel = p.colors.checked_mul(p.bits)?;
    let row = bits_per_pixel.checked_mul(p.columns)?.div_ceil(8);
    let bpp = bits_per_pixel.div_ceil(8).max(1);
    if row == 0 || row > MAX_ROW {
        return None;
    }
    match p.kind {
        1 => Some(data.to_vec()),
        2 if p.bits == 8 => {
            let mut out = data.to_vec();
            for line in out.chunks_mut(row) {
                for i in bpp..line.len() {
                    let left = line.get(i - bpp).copied().unwrap_or(0);
                    if let Some(v) = line.get_mut(i) {
                        *v = v.wrapping_add(left);
                    }
                }
            }
            Some(out)
        }
        10..=15 => {
            let mut out: Vec<u8> = Vec::with_capacity(data.len());
            let mut prior = vec![0u8; row];
            for line in data.chunks(row + 1) {
                let Some((&kind, bytes)) = line.split_first() else {
                    break;
                };
                let mut cur = bytes.to_vec();
                for i in 0..cur.len() {
                    let a = if i >= bpp {
                        cur.get(i - bpp).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    let b = prior.get(i).copied().unwrap_or(0);
                    let c = if i >= bpp {
                        prior.get(i - bpp).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    let add = match kind {
                        0 => 0,
                        1 => a,
                        2 => b,
                        3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                        4 => paeth(a, b, c),
                        _ => return None,
                    };
                    if let Some(v) = cur.get_mut(i) {
                        *v = v.wrapping_add(add);
                    }
                }
                out.extend_from_slice(&cur);
                prior.iter_mut().zip(&cur).for_each(|(p, c)| *p = *c);
            }
            Some(out)
        }
        _ => None,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn ascii85_decodes_groups_z_and_a_short_last_group() {
        // "Man is distinguished" from the Adobe reference, plus `z`.
        let (out, end) = ascii85(b"9jqo^BlbD-BleB1DJ+*+F(f,q z/c~>", 1 << 20);
        assert_eq!(end, Inflated::Done);
        assert_eq!(out, b"Man is distinguished\0\0\0\0.");
        let (out, end) = ascii85(b"87cURD]i,\"Ebo80~>", 1 << 20);
        assert_eq!(
            (out.as_slice(), end),
            (&b"Hello World!"[..], Inflated::Done)
        );
        let (_, end) = ascii85(b"9jqo^{~>", 1 << 20);
        assert_eq!(end, Inflated::Corrupt);
        // Five `u`s exceed 2^32: corrupt, not a panic or a wrap.
        let (_, end) = ascii85(b"uuuuu~>", 1 << 20);
        assert_eq!(end, Inflated::Corrupt);
        let (out, end) = ascii85(b"9jqo^BlbD-BleB1DJ+*+F(f,q~>", 5);
        assert_eq!((out.as_slice(), end), (&b"Man i"[..], Inflated::Capped));
    }

    #[test]
    fn ascii_hex_ignores_blanks_and_pads_an_odd_digit() {
        let (out, end) = ascii_hex(b"48 65 6c\n6C 6f 7>", 100);
        assert_eq!((out.as_slice(), end), (&b"Hello\x70"[..], Inflated::Done));
        let (_, end) = ascii_hex(b"48zz>", 100);
        assert_eq!(end, Inflated::Corrupt);
        let (out, end) = ascii_hex(b"414243>", 2);
        assert_eq!((out.as_slice(), end), (&b"AB"[..], Inflated::Capped));
    }

    /// An LZW encoder as the PDF reference describes it, for round trips.
    pub(in crate::content::pdf) fn lzw_encode(data: &[u8], early_change: bool) -> Vec<u8> {
        use std::collections::HashMap;
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        let mut put = |code: u32, width: u32, out: &mut Vec<u8>| {
            acc = (acc << width) | u64::from(code);
            bits += width;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        };
        let mut dict: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut next = 258u32;
        let mut width = 9;
        put(256, width, &mut out);
        let mut w: Vec<u8> = Vec::new();
        for &b in data {
            let mut wb = w.clone();
            wb.push(b);
            if wb.len() == 1 || dict.contains_key(&wb) {
                w = wb;
                continue;
            }
            let code = if w.len() == 1 {
                u32::from(w[0])
            } else {
                dict[&w]
            };
            put(code, width, &mut out);
            dict.insert(wb, next);
            next += 1;
            if next + u32::from(early_change) > (1 << width) && width < 12 {
                width += 1;
            }
            if next == 4094 {
                put(256, width, &mut out);
                dict.clear();
                next = 258;
                width = 9;
            }
            w = vec![b];
        }
        if !w.is_empty() {
            let code = if w.len() == 1 {
                u32::from(w[0])
            } else {
                dict[&w]
            };
            put(code, width, &mut out);
            next += 1;
            if next + u32::from(early_change) > (1 << width) && width < 12 {
                width += 1;
            }
        }
        put(257, width, &mut out);
        put(0, 7, &mut out);
        out
    }

    #[test]
    fn lzw_round_trips_through_code_width_changes_and_clears() {
        // The example of the PDF reference (7.4.4.2).
        let (out, end) = lzw(
            &[0x80, 0x0b, 0x60, 0x50, 0x22, 0x0c, 0x0c, 0x85, 0x01],
            100,
            true,
        );
        assert_eq!((out.as_slice(), end), (&b"-----A---B"[..], Inflated::Done));
        let text: Vec<u8> = (0..40_000u32)
            .map(|i| {
                let src = "(绝密) Tj T* (secret text) Tj ".as_bytes();
                src[(i as usize * 7) % src.len()]
            })
            .collect();
        for early in [true, false] {
            let coded = lzw_encode(&text, early);
            let (out, end) = lzw(&coded, 1 << 20, early);
            assert_eq!(end, Inflated::Done, "early_change {early}");
            assert!(out == text, "early_change {early}");
            let (out, end) = lzw(&coded, 1000, early);
            assert_eq!((out.len(), end), (1000, Inflated::Capped));
        }
        // A code past the table is corrupt; output before it is kept.
        let (_, end) = lzw(&[0x80, 0x0b, 0xff, 0xff], 100, true);
        assert_eq!(end, Inflated::Corrupt);
    }

    #[test]
    fn png_and_tiff_predictors_are_undone() {
        let p = |kind| Predictor {
            kind,
            colors: 1,
            bits: 8,
            columns: 4,
        };
        // Rows: none, sub, up, average, paeth.
        let data = [
            0, 1, 2, 3, 4, //
            1, 1, 1, 1, 1, //
            2, 1, 1, 1, 1, //
            3, 0, 0, 0, 0, //
            4, 1, 0, 0, 0,
        ];
        let out = unpredict(&data, p(12)).unwrap();
        assert_eq!(
            out,
            [1, 2, 3, 4, 1, 2, 3, 4, 2, 3, 4, 5, 1, 2, 3, 4, 2, 2, 3, 4]
        );
        assert_eq!(unpredict(&[1, 1, 1, 1], p(2)).unwrap(), [1, 2, 3, 4]);
        assert_eq!(unpredict(&[9, 1, 2, 3, 4], p(10)), None);
        let wide = Predictor {
            columns: usize::MAX,
            ..p(12)
        };
        assert_eq!(unpredict(&[0, 1], wide), None);
    }
}
