//! One pass over the digit runs of a payload, shared by the resident-id,
//! bank-card and mobile validators.
//!
//! The pass skips, 64 bytes at a time with SIMD bit masks, to where at
//! least 11 digits and single separators follow one another (shorter runs
//! cannot hold a hit), then reads a *token* there: digit groups joined
//! by one separator (a single space or dash, the same throughout). Tokens
//! touching an ASCII letter or digit, or a decimal point between digits,
//! are part of a longer word or number and are skipped: `a1381234567b`,
//! hex hashes and `3.14159...` fractions do not match.
//!
//! From each group of a token, the grouped shapes (`6222 0212 3456 7890`,
//! `138-1234-5678`, `+86 138 1234 5678`) are tried first, longest first;
//! if none fits, the group is tried on its own. So a list like
//! `13812345678 13912345678` finds both numbers and `x=1 6222 0212 3456
//! 7894` finds the card.

use super::{luhn_card, mobile, resident_id};

/// Most groups read into one token; longer sequences are split.
const MAX_GROUPS: usize = 6;
/// Longest digit string the validators look at.
const MAX_DIGITS: usize = 19;
/// Longest span of one digit hit: 19 digits with 4 separators, or `+86`,
/// a separator and a grouped mobile, with room to spare.
pub const MAX_SPAN: usize = 32;

/// Which validators a pass runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Chinese resident ids.
    pub resident_id: bool,
    /// Payment cards.
    pub bank_card: bool,
    /// Mainland mobiles.
    pub mobile: bool,
}

/// What a digit candidate turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A resident id.
    ResidentId,
    /// A payment card.
    BankCard,
    /// A mobile number.
    Mobile,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte lane that may be a digit; the lowest set lane
/// is exactly the first digit.
fn digit_mask(bytes: [u8; 8]) -> u64 {
    let x = u64::from_le_bytes(bytes) ^ (LO * 0x30);
    x.wrapping_sub(LO * 10) & !x & HI
}

/// Index of the first byte at or after `from` that `flag` marks, eight
/// bytes at a time: `flag` sets the high bit of a word's lanes that match,
/// exactly at least in the lowest matching lane; `is_match` decides the
/// last bytes one at a time.
#[inline(always)]
fn first_flagged(
    hay: &[u8],
    from: usize,
    flag: impl Fn([u8; 8]) -> u64,
    is_match: impl Fn(&u8) -> bool,
) -> Option<usize> {
    let rest = hay.get(from..)?;
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for w in words.by_ref() {
        let flagged = flag(<[u8; 8]>::try_from(w).unwrap_or([0; 8]));
        if flagged != 0 {
            return Some(at + (flagged.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(is_match).map(|p| at + p)
}

/// Index of the first ASCII digit at or after `from`.
pub fn next_digit(hay: &[u8], from: usize) -> Option<usize> {
    // A byte is a digit iff (b ^ 0x30) < 10; flag bytes below 10. The
    // lowest flagged byte is exact (borrows only disturb higher ones).
    first_flagged(hay, from, digit_mask, u8::is_ascii_digit)
}

/// High bit set in each byte lane that is *not* an ASCII digit; exact in
/// every lane (no borrow crosses lanes: the low seven bits plus 0x76 stay
/// below 0x100).
fn non_digit_mask(bytes: [u8; 8]) -> u64 {
    let x = u64::from_le_bytes(bytes) ^ (LO * 0x30);
    let ge10 = (x & (LO * 0x7f)) + LO * 0x76;
    (ge10 | x) & HI
}

/// Index of the first non-digit at or after `from` (or the length).
fn end_of_digits(hay: &[u8], from: usize) -> usize {
    first_flagged(hay, from, non_digit_mask, |b| !b.is_ascii_digit()).unwrap_or(hay.len())
}

/// Bytes one candidate window covers.
const WINDOW: usize = 64;
/// Fewest bytes a token with hits spans: a mobile's 11 digits.
const MIN_TOKEN: usize = 11;
/// Window starts advance by this much: a run starting at offset 52 or
/// before has its first 11 bytes, and the right neighbour of the 11th,
/// inside the window.
const STRIDE: usize = WINDOW - MIN_TOKEN - 1;

/// Index of the first byte at or after `from` that starts a run of at
/// least 11 *token bytes*: ASCII digits, and single spaces or dashes with
/// a digit on both sides. Every token with 11 or more digits is such a
/// run (its separators are single and between digits), so the positions
/// skipped hold only tokens too short to hit. Runs are found 64 bytes at
/// a time with bit masks, without a branch per digit; the last bytes go
/// to [`next_digit`] and the token reader, which are exact.
#[allow(unsafe_code)]
pub fn next_candidate(hay: &[u8], from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::next_candidate(hay, from) };
    }
    candidates(hay, from, classify)
}

/// The window loop of [`next_candidate`], with the classifier it is given
/// (inlined, so each caller gets its own copy built for its CPU features).
#[inline(always)]
fn candidates(
    hay: &[u8],
    from: usize,
    classify: impl Fn(&[u8; WINDOW]) -> (u64, u64),
) -> Option<usize> {
    let mut at = from;
    while let Some(window) = hay.get(at..).and_then(|r| r.first_chunk::<WINDOW>()) {
        let (digit, sep) = classify(window);
        // A separator needs digits on both sides (bit j-1 and j+1); at the
        // window's edges the unknown neighbour counts as no digit.
        let token = digit | (sep & (digit << 1) & (digit >> 1));
        // Bit j set iff bits j..j+10 are all set.
        let two = token & (token >> 1);
        let four = two & (two >> 2);
        let eight = four & (four >> 4);
        let eleven = eight & (four >> 7);
        // Starts past STRIDE may need a neighbour beyond the window.
        let starts = eleven & ((1u64 << (STRIDE + 1)) - 1);
        if starts != 0 {
            return Some(at + starts.trailing_zeros() as usize);
        }
        at += STRIDE + 1;
    }
    next_digit(hay, at)
}

/// Bit masks of a window's ASCII digits and of its spaces and dashes (bit
/// `j` for byte `j`), sixteen bytes per step with SSE2 (part of every
/// x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn classify(window: &[u8; WINDOW]) -> (u64, u64) {
    // SAFETY: SSE2 is part of the x86-64 baseline, so every CPU this
    // code is built for has it.
    unsafe { classify_sse2(window) }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "sse2")]
fn classify_sse2(window: &[u8; WINDOW]) -> (u64, u64) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };
    let zero = _mm_set1_epi8(b'0' as i8);
    let nine = _mm_set1_epi8(9);
    let space = _mm_set1_epi8(b' ' as i8);
    let dash = _mm_set1_epi8(b'-' as i8);
    let (mut digit, mut sep) = (0u64, 0u64);
    for (k, chunk) in window.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` is 16 readable bytes, and the load has no
        // alignment requirement.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        // Digits are the bytes with (b - '0') wrapping into 0..=9.
        let t = _mm_sub_epi8(v, zero);
        let d = _mm_cmpeq_epi8(_mm_min_epu8(t, nine), t);
        let s = _mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, dash));
        // movemask fills the low 16 bits only.
        digit |= u64::from(_mm_movemask_epi8(d) as u16) << (16 * k);
        sep |= u64::from(_mm_movemask_epi8(s) as u16) << (16 * k);
    }
    (digit, sep)
}

/// [`next_candidate`] with AVX2: 32 bytes per compare.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_sub_epi8,
    };

    use super::{candidates, WINDOW};

    /// See [`super::next_candidate`].
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn next_candidate(hay: &[u8], from: usize) -> Option<usize> {
        candidates(hay, from, |w| classify(w))
    }

    #[target_feature(enable = "avx2")]
    fn classify(window: &[u8; WINDOW]) -> (u64, u64) {
        let zero = _mm256_set1_epi8(b'0' as i8);
        let nine = _mm256_set1_epi8(9);
        let space = _mm256_set1_epi8(b' ' as i8);
        let dash = _mm256_set1_epi8(b'-' as i8);
        let (mut digit, mut sep) = (0u64, 0u64);
        for (k, chunk) in window.chunks_exact(32).enumerate() {
            // SAFETY: `chunk` is 32 readable bytes, and the load has no
            // alignment requirement.
            let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
            let t = _mm256_sub_epi8(v, zero);
            let d = _mm256_cmpeq_epi8(_mm256_min_epu8(t, nine), t);
            let s = _mm256_or_si256(_mm256_cmpeq_epi8(v, space), _mm256_cmpeq_epi8(v, dash));
            digit |= u64::from(_mm256_movemask_epi8(d) as u32) << (32 * k);
            sep |= u64::from(_mm256_movemask_epi8(s) as u32) << (32 * k);
        }
        (digit, sep)
    }

    #[cfg(test)]
    pub fn classify_checked(window: &[u8; WINDOW]) -> Option<(u64, u64)> {
        // SAFETY: called only when the CPU has AVX2.
        std::is_x86_feature_detected!("avx2").then(|| unsafe { classify(window) })
    }
}

/// Bit masks of a window's ASCII digits and of its spaces and dashes (bit
/// `j` for byte `j`), one byte at a time.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn classify_portable(window: &[u8; WINDOW]) -> (u64, u64) {
    let (mut digit, mut sep) = (0u64, 0u64);
    for (j, &b) in window.iter().enumerate() {
        digit |= u64::from(b.is_ascii_digit()) << j;
        sep |= u64::from(b == b' ' || b == b'-') << j;
    }
    (digit, sep)
}

#[cfg(not(target_arch = "x86_64"))]
fn classify(window: &[u8; WINDOW]) -> (u64, u64) {
    classify_portable(window)
}

fn is_digit_at(hay: &[u8], i: usize) -> bool {
    hay.get(i).is_some_and(u8::is_ascii_digit)
}

/// Nothing word-like directly before `start`.
fn left_clear(hay: &[u8], start: usize) -> bool {
    let Some(prev) = start.checked_sub(1) else {
        return true;
    };
    match hay.get(prev) {
        Some(b) if b.is_ascii_alphanumeric() => false,
        Some(b'.') => !prev.checked_sub(1).is_some_and(|p| is_digit_at(hay, p)),
        _ => true,
    }
}

/// Nothing word-like directly at `end`.
fn right_clear(hay: &[u8], end: usize) -> bool {
    match hay.get(end) {
        Some(b) if b.is_ascii_alphanumeric() => false,
        Some(b'.') => !is_digit_at(hay, end + 1),
        _ => true,
    }
}

/// Copies the digits of `groups` into `buf`; `None` if there are too many.
fn collect(hay: &[u8], groups: &[(usize, usize)], buf: &mut [u8; MAX_DIGITS]) -> Option<usize> {
    let mut n = 0;
    for &(s, e) in groups {
        for &b in hay.get(s..e)? {
            *buf.get_mut(n)? = b;
            n += 1;
        }
    }
    Some(n)
}

fn lens_match(groups: &[(usize, usize)], shape: &[usize]) -> bool {
    groups.len() == shape.len() && groups.iter().zip(shape).all(|(&(s, e), &l)| e - s == l)
}

/// Runs the wanted validators over every digit token of `hay`, calling
/// `found(kind, start, end)` for each hit. Allocation-free.
pub fn scan(hay: &[u8], wanted: Wanted, found: impl FnMut(Found, usize, usize)) {
    scan_from(hay, wanted, next_candidate, found);
}

/// [`scan`] with the function that finds where the next token may start
/// (the candidate skipper, or [`next_digit`] for reading every token).
fn scan_from(
    hay: &[u8],
    wanted: Wanted,
    skip: impl Fn(&[u8], usize) -> Option<usize>,
    mut found: impl FnMut(Found, usize, usize),
) {
    if wanted == Wanted::default() {
        return;
    }
    let mut groups = [(0usize, 0usize); MAX_GROUPS];
    let mut at = 0;
    while let Some(start) = skip(hay, at).and_then(|c| next_digit(hay, c)) {
        // Fast path: most runs in text are short numbers on their own
        // (not followed by a separator and another digit group, which
        // could make them the first group of a grouped card or mobile).
        // Alone, nothing shorter than 11 digits is a hit.
        let run_end = end_of_digits(hay, start);
        if run_end - start < 11
            && !(matches!(hay.get(run_end), Some(b' ' | b'-')) && is_digit_at(hay, run_end + 1))
        {
            at = run_end;
            continue;
        }
        // Read the token: groups joined by one repeated separator.
        let mut n = 0;
        let mut sep: Option<u8> = None;
        let mut pos = start;
        let end = loop {
            let e = end_of_digits(hay, pos);
            if let Some(slot) = groups.get_mut(n) {
                *slot = (pos, e);
                n += 1;
            }
            match hay.get(e) {
                Some(&c)
                    if (c == b' ' || c == b'-')
                        && sep.is_none_or(|s| s == c)
                        && is_digit_at(hay, e + 1)
                        && n < MAX_GROUPS =>
                {
                    sep = Some(c);
                    pos = e + 1;
                }
                _ => break e,
            }
        };
        at = end.max(start + 1);
        let toks = groups.get(..n).unwrap_or_default();
        // Every shape needs at least 11 digits (a mobile): dates such as
        // `2024-05-12` and short grouped numbers end here.
        if toks.iter().map(|&(s, e)| e - s).sum::<usize>() < 11 {
            continue;
        }
        let first_clear = left_clear(hay, start);
        let last_clear = right_clear(hay, end);
        let mut i = 0;
        while let Some(rest) = toks.get(i..).filter(|r| !r.is_empty()) {
            // Inner groups are bounded by separators; only the first one
            // can touch a word on its left.
            if i > 0 || first_clear {
                if let Some(used) = grouped(hay, rest, last_clear, wanted, &mut found) {
                    i += used;
                    continue;
                }
                if let Some(&(s, e)) = rest.first() {
                    single(hay, s, e, wanted, &mut found);
                }
            }
            i += 1;
        }
    }
}

/// Card layouts, longest first: 4-4-4-4-3/2/1, 4-4-4-4, Amex 4-6-5.
const CARD_SHAPES: [&[usize]; 5] = [
    &[4, 4, 4, 4, 3],
    &[4, 4, 4, 4, 2],
    &[4, 4, 4, 4, 1],
    &[4, 4, 4, 4],
    &[4, 6, 5],
];
/// Mobile layouts after an optional `86` group: 3-4-4 or 11.
const MOBILE_SHAPES: [&[usize]; 2] = [&[3, 4, 4], &[11]];

/// Tries the grouped shapes on the first groups of `toks` (at least two
/// groups); returns how many groups the hit used. `last_clear` says
/// whether the token's last group is clear on its right.
fn grouped(
    hay: &[u8],
    toks: &[(usize, usize)],
    last_clear: bool,
    wanted: Wanted,
    found: &mut impl FnMut(Found, usize, usize),
) -> Option<usize> {
    let mut buf = [0u8; MAX_DIGITS];
    let start = toks.first()?.0;
    // A shape of `len` groups ends at the token's end or at a separator.
    let fits = |len: usize| len >= 2 && len <= toks.len() && (len < toks.len() || last_clear);
    if let Some(used) = grouped_id(hay, toks, fits(3), wanted, found) {
        return Some(used);
    }
    if wanted.bank_card {
        for shape in CARD_SHAPES {
            let len = shape.len();
            let Some(part) = toks
                .get(..len)
                .filter(|p| fits(len) && lens_match(p, shape))
            else {
                continue;
            };
            let n = collect(hay, part, &mut buf)?;
            if luhn_card::is_valid(buf.get(..n).unwrap_or_default()) {
                found(Found::BankCard, start, part.last()?.1);
                return Some(len);
            }
        }
    }
    if wanted.mobile {
        let (skip, from) = match toks.first() {
            Some(&(s, e)) if hay.get(s..e) == Some(b"86") => {
                let plus = s.checked_sub(1).filter(|&p| hay.get(p) == Some(&b'+'));
                (1, plus.unwrap_or(s))
            }
            _ => (0, start),
        };
        for shape in MOBILE_SHAPES {
            let len = skip + shape.len();
            let Some(part) = toks
                .get(skip..len)
                .filter(|p| fits(len) && lens_match(p, shape))
            else {
                continue;
            };
            let n = collect(hay, part, &mut buf)?;
            if mobile::is_valid(buf.get(..n).unwrap_or_default()) {
                found(Found::Mobile, from, part.last()?.1);
                return Some(len);
            }
        }
    }
    None
}

/// A resident id written in groups 6-8-4 (`110101 19900307 123X`,
/// `110101-19900307-1234`): the first three groups of `toks`, the last one
/// three digits and an `X` when the check character is `X`. Returns the
/// groups used (3). `fits3` says whether three groups end at a separator
/// or a clear right edge. A valid id is never also tried as a card, as for
/// the plain form.
fn grouped_id(
    hay: &[u8],
    toks: &[(usize, usize)],
    fits3: bool,
    wanted: Wanted,
    found: &mut impl FnMut(Found, usize, usize),
) -> Option<usize> {
    let part = toks.get(..3)?;
    let (start, last_end) = (part.first()?.0, part.last()?.1);
    let mut buf = [0u8; MAX_DIGITS];
    let end = if fits3 && lens_match(part, &[6, 8, 4]) {
        last_end
    } else if toks.len() == 3
        && lens_match(part, &[6, 8, 3])
        && matches!(hay.get(last_end), Some(b'X' | b'x'))
        && right_clear(hay, last_end + 1)
    {
        last_end + 1
    } else {
        return None;
    };
    let mut n = collect(hay, part, &mut buf)?;
    if end > last_end {
        *buf.get_mut(n)? = b'X';
        n += 1;
    }
    if !resident_id::is_valid(buf.get(..n)?) {
        return None;
    }
    if wanted.resident_id {
        found(Found::ResidentId, start, end);
    }
    Some(3)
}

/// Tries one digit run `hay[s..e]` (already clear on the left).
fn single(
    hay: &[u8],
    s: usize,
    e: usize,
    wanted: Wanted,
    found: &mut impl FnMut(Found, usize, usize),
) {
    let len = e - s;
    if !(11..=MAX_DIGITS).contains(&len) {
        return;
    }
    let Some(run) = hay.get(s..e) else {
        return;
    };
    // Resident id: 18 digits, or 17 digits and X.
    let x_end = (len == 17 && matches!(hay.get(e), Some(b'X' | b'x'))).then_some(e + 1);
    let id_end = if len == 18 { Some(e) } else { x_end };
    if let Some(id_end) = id_end {
        if right_clear(hay, id_end) && hay.get(s..id_end).is_some_and(resident_id::is_valid) {
            if wanted.resident_id {
                found(Found::ResidentId, s, id_end);
            }
            // A valid resident id is not also reported as a card.
            return;
        }
    }
    if !right_clear(hay, e) {
        return;
    }
    if wanted.bank_card && luhn_card::is_valid(run) {
        found(Found::BankCard, s, e);
        return;
    }
    if wanted.mobile {
        if len == 11
            && mobile::is_valid(run)
            && s.checked_sub(1).and_then(|p| hay.get(p)) != Some(&b'+')
        {
            found(Found::Mobile, s, e);
        } else if len == 13 && run.starts_with(b"86") && run.get(2..).is_some_and(mobile::is_valid)
        {
            let plus = s.checked_sub(1).filter(|&p| hay.get(p) == Some(&b'+'));
            found(Found::Mobile, plus.unwrap_or(s), e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    const ALL: Wanted = Wanted {
        resident_id: true,
        bank_card: true,
        mobile: true,
    };

    fn hits(hay: &str) -> Vec<(Found, String)> {
        let mut out = Vec::new();
        scan(hay.as_bytes(), ALL, |kind, s, e| {
            out.push((kind, hay.get(s..e).unwrap_or("?").to_owned()));
        });
        out
    }

    #[test]
    fn next_digit_finds_first_digit_at_every_offset() {
        let hay = b"abcdefghijklmnopqrstuvwxyz/:;@ABCDEFGHIJKLMNOPQRSTUVWXYZ\xff\x80";
        for pos in 0..hay.len() {
            for d in b'0'..=b'9' {
                let mut h = hay.to_vec();
                if let Some(slot) = h.get_mut(pos) {
                    *slot = d;
                }
                assert_eq!(next_digit(&h, 0), Some(pos));
                assert_eq!(next_digit(&h, pos + 1), None);
            }
        }
        assert_eq!(next_digit(b"", 0), None);
        assert_eq!(next_digit(b"12", 5), None);
    }

    #[test]
    fn finds_each_kind_in_plain_text() {
        assert_eq!(
            hits("id=11010519491231002X card 6222021234567890128 tel 13812345678."),
            vec![
                (Found::ResidentId, "11010519491231002X".into()),
                (Found::BankCard, "6222021234567890128".into()),
                (Found::Mobile, "13812345678".into()),
            ]
        );
    }

    #[test]
    fn finds_grouped_cards_and_mobiles() {
        assert_eq!(
            hits("卡号 6222 0212 3456 7894，手机 +86 138 1234 5678 或 138-1234-5678"),
            vec![
                (Found::BankCard, "6222 0212 3456 7894".into()),
                (Found::Mobile, "+86 138 1234 5678".into()),
                (Found::Mobile, "138-1234-5678".into()),
            ]
        );
        assert_eq!(
            hits("amex 3782-822463-10005"),
            vec![(Found::BankCard, "3782-822463-10005".into())]
        );
        assert_eq!(
            hits("x=1 6222 0212 3456 7894 2024"),
            vec![(Found::BankCard, "6222 0212 3456 7894".into())]
        );
        assert_eq!(
            hits("6222 0212 3456 7890 123"),
            Vec::<(Found, String)>::new(),
            "Luhn fails for both the 19- and the 16-digit reading"
        );
    }

    #[test]
    fn finds_resident_ids_grouped_six_eight_four() {
        assert_eq!(
            hits("身份证 110101 19900307 1233，或 110105-19491231-002X。"),
            vec![
                (Found::ResidentId, "110101 19900307 1233".into()),
                (Found::ResidentId, "110105-19491231-002X".into()),
            ]
        );
        assert_eq!(
            hits("id:110105 19491231 002x;"),
            vec![(Found::ResidentId, "110105 19491231 002x".into())]
        );
        // A grouped id in a list, followed by a mobile.
        assert_eq!(
            hits("110101 19900307 1233 13812345678"),
            vec![
                (Found::ResidentId, "110101 19900307 1233".into()),
                (Found::Mobile, "13812345678".into()),
            ]
        );
    }

    #[test]
    fn grouped_resident_ids_need_one_separator_and_a_valid_check() {
        // Wrong check character, mixed separators, double spaces, glued
        // to a word, or a fourth group of digits after the X.
        for hay in [
            "110101 19900307 1234",
            "110101-19900307 1233",
            "110101  19900307  1233",
            "a110101 19900307 1233",
            "110101 19900307 1233b",
            "110105 19491231 002XY",
            "110105 19491231 002X1",
            "110101 1990030 71233",
        ] {
            assert!(
                hits(hay).iter().all(|(k, _)| *k != Found::ResidentId),
                "{hay}: {:?}",
                hits(hay)
            );
        }
    }

    #[test]
    fn end_of_digits_is_exact_for_every_byte_value_and_offset() {
        for b in 0..=255u8 {
            for pos in 0..20 {
                let mut h = vec![b'7'; 24];
                h[pos] = b;
                let want = if b.is_ascii_digit() { 24 } else { pos };
                assert_eq!(end_of_digits(&h, 0), want, "byte {b:#x} at {pos}");
                let from3 = if pos >= 3 { want } else { 24 };
                assert_eq!(end_of_digits(&h, 3), from3, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(end_of_digits(b"12", 5), 2);
    }

    #[test]
    fn grouped_tokens_under_eleven_digits_are_never_hits() {
        assert!(hits("日期 2024-05-12，电话 138-1234-567，编号 12 34 56 78 90").is_empty());
        // The same shapes with one digit more still count.
        assert_eq!(
            hits("日期 2024-05-12，电话 138-1234-5678"),
            vec![(Found::Mobile, "138-1234-5678".into())]
        );
    }

    #[test]
    fn finds_mobiles_with_country_code() {
        assert_eq!(
            hits("a +8613812345678 b 8613912345678"),
            vec![
                (Found::Mobile, "+8613812345678".into()),
                (Found::Mobile, "8613912345678".into())
            ]
        );
    }

    #[test]
    fn finds_each_number_of_a_separated_list() {
        assert_eq!(
            hits("13812345678 13912345678"),
            vec![
                (Found::Mobile, "13812345678".into()),
                (Found::Mobile, "13912345678".into())
            ]
        );
    }

    #[test]
    fn ignores_numbers_embedded_in_longer_runs_or_words() {
        assert!(hits("1381234567890").is_empty());
        assert!(hits("913812345678").is_empty());
        assert!(hits("x13812345678").is_empty());
        assert!(hits("13812345678y").is_empty());
        assert!(hits("0x4111111111111111").is_empty());
        assert!(hits("3.4111111111111111").is_empty());
        assert!(hits("4111111111111111.5").is_empty());
        assert!(hits("111010519491231002X").is_empty());
        assert!(hits("11010519491231002XA").is_empty());
    }

    #[test]
    fn ignores_checksum_failures() {
        assert!(hits("110105194912310021").is_empty());
        assert!(hits("4111111111111112").is_empty());
        assert!(hits("6222 0212 3456 7890").is_empty());
    }

    #[test]
    fn valid_resident_id_is_not_also_a_card() {
        // 62 is Gansu; this id also passes Luhn with the UnionPay prefix.
        assert!(luhn_card::luhn_valid(b"620102199003070069"));
        assert_eq!(
            hits("620102199003070069"),
            vec![(Found::ResidentId, "620102199003070069".into())]
        );
    }

    #[test]
    fn honours_the_wanted_set() {
        let mut n = 0;
        scan(
            b"13812345678 4111111111111111",
            Wanted {
                mobile: true,
                ..Wanted::default()
            },
            |kind, _, _| {
                assert_eq!(kind, Found::Mobile);
                n += 1;
            },
        );
        assert_eq!(n, 1);
    }

    /// Text dense in digit tokens, separators and the bytes the token
    /// rules look at (`X`, `+`, `.`, letters), with real ids, cards and
    /// mobiles (plain and grouped) planted at random offsets.
    fn digit_soup(rng: &mut Rng, len: usize) -> Vec<u8> {
        const PLANTS: [&[u8]; 8] = [
            b"11010519491231002X",
            b"620102199003070069",
            b"6222021234567890128",
            b"6222 0212 3456 7894",
            b"3782-822463-10005",
            b"13812345678",
            b"+86 138 1234 5678",
            b"138-1234-5678",
        ];
        const OTHER: &[u8] = b" - X+.a,\n";
        // From sparse to dense: a planted number one draw in 30 to one in
        // 9, loose digits a third to most of the rest.
        let dense = rng.below(8);
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            if rng.below(30 - 3 * dense) == 0 {
                out.extend_from_slice(PLANTS[rng.below(PLANTS.len())]);
            } else if rng.below(12) < 4 + dense {
                out.push(b'0' + rng.below(10) as u8);
            } else {
                out.push(OTHER[rng.below(OTHER.len())]);
            }
        }
        out
    }

    fn all_hits(
        hay: &[u8],
        skip: impl Fn(&[u8], usize) -> Option<usize>,
    ) -> Vec<(Found, usize, usize)> {
        let mut out = Vec::new();
        scan_from(hay, ALL, skip, |kind, s, e| out.push((kind, s, e)));
        out
    }

    #[test]
    fn candidate_skipping_finds_exactly_what_reading_every_token_finds() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut planted = 0;
        for round in 0..5_000 {
            let hay = digit_soup(&mut rng, 1 + round % 500);
            let want = all_hits(&hay, next_digit);
            planted += want.len();
            assert_eq!(
                all_hits(&hay, next_candidate),
                want,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
            // The SSE2 build of the loop, which CPUs without AVX2 run.
            assert_eq!(all_hits(&hay, |h, f| candidates(h, f, classify)), want);
        }
        assert!(planted > 1_000, "the soup must hold hits: {planted}");
    }

    #[test]
    fn candidate_windows_find_runs_at_every_offset() {
        // An 11-digit run alone is a candidate wherever it sits, including
        // across every window boundary; 10 digits never are (the last
        // bytes, past the last whole window, go to the exact reader).
        for pos in 0..200 {
            let mut hay = vec![b'a'; 400];
            hay[pos..pos + 11].copy_from_slice(b"13812345678");
            assert_eq!(next_candidate(&hay, 0), Some(pos), "at {pos}");
            hay[pos + 10] = b'a';
            assert_eq!(next_candidate(&hay, 0), None, "10 digits at {pos}");
            hay[pos + 5] = b'-';
            hay[pos + 10] = b'8';
            hay[pos + 11] = b'9';
            assert_eq!(next_candidate(&hay, 0), Some(pos), "grouped at {pos}");
        }
    }

    #[test]
    fn simd_and_portable_classifiers_agree_on_every_byte() {
        let mut window = [0u8; WINDOW];
        for base in (0..=255u8).step_by(WINDOW) {
            for (j, b) in window.iter_mut().enumerate() {
                *b = base.wrapping_add(j as u8);
            }
            let want = classify_portable(&window);
            assert_eq!(classify(&window), want);
            if let Some(got) = avx2::classify_checked(&window) {
                assert_eq!(got, want);
            }
        }
        let mut rng = Rng(7);
        for _ in 0..1_000 {
            for b in &mut window {
                *b = rng.next() as u8;
            }
            let want = classify_portable(&window);
            assert_eq!(classify(&window), want);
            if let Some(got) = avx2::classify_checked(&window) {
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn long_digit_runs_and_separator_chains_are_bounded() {
        let long = "7".repeat(100_000);
        assert!(hits(&long).is_empty());
        let chain = "1 ".repeat(50_000);
        assert!(hits(&chain).is_empty());
    }
}
