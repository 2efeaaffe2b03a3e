//! Payment card numbers: Luhn check and issuer prefixes.

/// Luhn (mod 10) check over ASCII digits; `false` on any non-digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn prefix(digits: &[u8], n: usize) -> Option<u32> {
    digits.get(..n)?.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Card networks recognised by their prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuer {
    /// China UnionPay, `62`.
    UnionPay,
    /// Visa, `4`.
    Visa,
    /// Mastercard, `51`-`55` and `2221`-`2720`.
    Mastercard,
    /// American Express, `34` and `37`.
    Amex,
    /// JCB, `3528`-`3589`.
    Jcb,
}

/// The issuer of a digit string, by prefix only.
pub fn issuer(digits: &[u8]) -> Option<Issuer> {
    let p1 = prefix(digits, 1)?;
    let p2 = prefix(digits, 2)?;
    let p4 = prefix(digits, 4).unwrap_or(0);
    match () {
        () if p2 == 62 => Some(Issuer::UnionPay),
        () if p1 == 4 => Some(Issuer::Visa),
        () if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Some(Issuer::Mastercard),
        () if p2 == 34 || p2 == 37 => Some(Issuer::Amex),
        () if (3528..=3589).contains(&p4) => Some(Issuer::Jcb),
        () => None,
    }
}

/// Whether `digits` (ASCII digits only, separators removed) is a card
/// number: 16 to 19 digits (15 for Amex), known issuer, Luhn valid.
pub fn is_valid(digits: &[u8]) -> bool {
    let Some(iss) = issuer(digits) else {
        return false;
    };
    let len_ok = (16..=19).contains(&digits.len()) || (iss == Issuer::Amex && digits.len() == 15);
    len_ok && luhn_valid(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_known_test_numbers() {
        assert!(is_valid(b"4111111111111111")); // Visa
        assert!(is_valid(b"5555555555554444")); // Mastercard
        assert!(is_valid(b"2223003122003222")); // Mastercard 2-series
        assert!(is_valid(b"378282246310005")); // Amex, 15 digits
        assert!(is_valid(b"3530111333300000")); // JCB
        assert!(is_valid(b"6222021234567890128")); // UnionPay, 19 digits
    }

    #[test]
    fn rejects_luhn_failures() {
        assert!(!is_valid(b"4111111111111112"));
        assert!(!is_valid(b"6222021234567890120"));
    }

    #[test]
    fn rejects_unknown_issuers_and_lengths() {
        assert!(!is_valid(b"1234567812345670")); // Luhn ok, no issuer
        assert!(!is_valid(b"411111111111116")); // 15 digits, not Amex
        assert!(!is_valid(b"41111111111111111113")); // 20 digits
    }

    #[test]
    fn luhn_rejects_non_digits_and_empty() {
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"4111 1111"));
        assert!(luhn_valid(b"0"));
    }
}
