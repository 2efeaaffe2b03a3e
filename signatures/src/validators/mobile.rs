//! Mainland China mobile numbers: 11 digits, `1[3-9]` then 9 digits.

/// Whether `digits` (separators removed, no country code) is a mainland
/// mobile number.
pub fn is_valid(digits: &[u8]) -> bool {
    digits.len() == 11
        && digits.iter().all(u8::is_ascii_digit)
        && digits.first() == Some(&b'1')
        && digits.get(1).is_some_and(|b| (b'3'..=b'9').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_starting_13_to_19() {
        assert!(is_valid(b"13812345678"));
        assert!(is_valid(b"19912345678"));
    }

    #[test]
    fn rejects_other_prefixes_and_lengths() {
        assert!(!is_valid(b"12812345678"));
        assert!(!is_valid(b"23812345678"));
        assert!(!is_valid(b"1381234567"));
        assert!(!is_valid(b"138123456789"));
        assert!(!is_valid(b"1381234567a"));
    }
}
