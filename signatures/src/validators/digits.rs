//! One pass over the digit runs of a payload, shared by the resident-id,
//! bank-card and mobile validators.
//!
//! The pass skips to the next ASCII digit eight bytes at a time (a SWAR
//! test, no per-byte branching), then reads a *token*: digit groups joined
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
pub fn scan(hay: &[u8], wanted: Wanted, mut found: impl FnMut(Found, usize, usize)) {
    if wanted == Wanted::default() {
        return;
    }
    let mut groups = [(0usize, 0usize); MAX_GROUPS];
    let mut at = 0;
    while let Some(start) = next_digit(hay, at) {
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

    #[test]
    fn long_digit_runs_and_separator_chains_are_bounded() {
        let long = "7".repeat(100_000);
        assert!(hits(&long).is_empty());
        let chain = "1 ".repeat(50_000);
        assert!(hits(&chain).is_empty());
    }
}
