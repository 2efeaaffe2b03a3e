//! Chinese resident identity numbers (GB 11643-1999).
//!
//! 18 characters: a 6-digit region code, an 8-digit birth date
//! `YYYYMMDD`, a 3-digit sequence number and an ISO 7064 MOD 11-2 check
//! character (`0`-`9` or `X`).

/// First two digits of the region code: provinces, autonomous regions,
/// municipalities, Taiwan (71), Hong Kong (81) and Macao (82).
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// MOD 11-2 weights, `2^(17-i) mod 11`.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check character for each `sum mod 11`.
const CHECK: [u8; 11] = *b"10X98765432";

fn digit(b: Option<&u8>) -> Option<u32> {
    b.filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
}

fn number(bytes: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    bytes
        .get(range)?
        .iter()
        .try_fold(0u32, |acc, b| digit(Some(b)).map(|d| acc * 10 + d))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Whether `id` (exactly 18 bytes) is a plausible resident id: known
/// province, a real date between 1900 and 2100, and a correct check
/// character (`x` accepted for `X`).
pub fn is_valid(id: &[u8]) -> bool {
    if id.len() != 18 {
        return false;
    }
    let Some(province) = number(id, 0..2) else {
        return false;
    };
    if !PROVINCES.iter().any(|&p| u32::from(p) == province) {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (number(id, 6..10), number(id, 10..12), number(id, 12..14))
    else {
        return false;
    };
    if !(1900..=2100).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    let mut sum = 0u32;
    for (b, w) in id.iter().zip(WEIGHTS) {
        match digit(Some(b)) {
            Some(d) => sum += d * w,
            None => return false,
        }
    }
    let expected = CHECK.get((sum % 11) as usize).copied();
    let actual = id.get(17).map(u8::to_ascii_uppercase);
    expected.is_some() && expected == actual
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids_including_x_check_character() {
        assert!(is_valid(b"11010519491231002X"));
        assert!(is_valid(b"11010519491231002x"));
        assert!(is_valid(b"110101199003070134"));
        assert!(is_valid(b"44030820000229001X")); // 29 Feb 2000
        assert!(is_valid(b"110101199003071233"));
    }

    #[test]
    fn rejects_wrong_check_digit() {
        assert!(!is_valid(b"110105194912310021"));
        assert!(!is_valid(b"110101199003070135"));
    }

    #[test]
    fn rejects_unknown_province() {
        // 99 is no province; check digit recomputed for it would not help.
        assert!(!is_valid(b"991011199003071230"));
        assert!(!is_valid(b"001011199003071230"));
    }

    #[test]
    fn rejects_impossible_birth_dates() {
        assert!(!is_valid(b"110101199002301234")); // 30 February
        assert!(!is_valid(b"110101190002290011")); // 1900 is no leap year
        assert!(!is_valid(b"11010118991231001X")); // before 1900
        assert!(!is_valid(b"110101199013011234")); // month 13
    }

    #[test]
    fn rejects_wrong_length_and_non_digits() {
        assert!(!is_valid(b"11010519491231002"));
        assert!(!is_valid(b"11010519491231002XX"));
        assert!(!is_valid(b"1101051949123100AX"));
    }
}
