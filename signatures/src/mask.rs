//! Masked excerpts: what an incident may show of a match without carrying
//! the secret itself.

use crate::signature::Encoding;

/// Masks a matched byte string for display.
///
/// The bytes are decoded first (GBK and UTF-16 matches become valid UTF-8;
/// malformed bytes become U+FFFD), then:
///
/// * numbers (at least 11 digits, with only spaces, dashes, `+` or a
///   trailing `X` besides): digits are masked and separators kept; with 15
///   or more digits the first 6 and last 4 stay (`110101********1234`,
///   `6222 02** **** 7890`), with 11 to 14 the first 3 and last 4
///   (`138****5678`);
/// * other text of 16 or more characters keeps its first 6 and last 4
///   characters;
/// * shorter text keeps its first and last character (`绝*★`); one or two
///   characters are masked completely.
pub fn mask_excerpt(matched: &[u8], encoding: Encoding) -> String {
    let text = encoding.decode(matched);
    let is_secret_char = |c: char| c.is_ascii_digit() || c == 'X' || c == 'x';
    let numeric = text
        .chars()
        .all(|c| is_secret_char(c) || c == ' ' || c == '-' || c == '+');
    let digits = text.chars().filter(|c| is_secret_char(*c)).count();
    if numeric && digits >= 11 {
        let (first, last) = if digits >= 15 { (6, 4) } else { (3, 4) };
        let mut seen = 0;
        return text
            .chars()
            .map(|c| {
                if !is_secret_char(c) {
                    return c;
                }
                seen += 1;
                if seen <= first || seen > digits - last {
                    c
                } else {
                    '*'
                }
            })
            .collect();
    }
    let count = text.chars().count();
    let (first, last) = match count {
        0..=2 => (0, 0),
        3..=15 => (1, 1),
        _ => (6, 4),
    };
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < first || i >= count - last {
                c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_keeps_first_six_and_last_four() {
        assert_eq!(
            mask_excerpt(b"110101199003071234", Encoding::Utf8),
            "110101********1234"
        );
        assert_eq!(
            mask_excerpt(b"11010519491231002X", Encoding::Utf8),
            "110105********002X"
        );
    }

    #[test]
    fn grouped_card_keeps_separators_and_first_six_last_four_digits() {
        assert_eq!(
            mask_excerpt(b"6222 0212 3456 7890", Encoding::Utf8),
            "6222 02** **** 7890"
        );
        assert_eq!(
            mask_excerpt(b"6222021234567890128", Encoding::Utf8),
            "622202*********0128"
        );
    }

    #[test]
    fn mobile_keeps_first_three_and_last_four() {
        assert_eq!(mask_excerpt(b"13812345678", Encoding::Utf8), "138****5678");
        assert_eq!(
            mask_excerpt(b"138-1234-5678", Encoding::Utf8),
            "138-****-5678"
        );
    }

    #[test]
    fn short_markings_keep_first_and_last_character_in_every_encoding() {
        let marking = "绝密★";
        for enc in Encoding::ALL {
            let bytes = enc.encode(marking).unwrap_or_default();
            assert_eq!(mask_excerpt(&bytes, enc), "绝*★", "{enc}");
        }
        assert_eq!(
            mask_excerpt(b"TOP SECRET//", Encoding::Utf8),
            "T**********/"
        );
        assert_eq!(mask_excerpt(b"ab", Encoding::Utf8), "**");
        assert_eq!(mask_excerpt(b"", Encoding::Utf8), "");
    }

    #[test]
    fn long_text_keeps_first_six_and_last_four() {
        assert_eq!(
            mask_excerpt(b"-----BEGIN RSA PRIVATE KEY-----", Encoding::Utf8),
            "-----B*********************----"
        );
    }

    #[test]
    fn never_panics_on_malformed_bytes() {
        let out = mask_excerpt(&[0xff, 0xfe, 0x81], Encoding::Gbk);
        assert!(!out.is_empty());
        let out = mask_excerpt(&[0x41], Encoding::Utf16Le);
        assert!(!out.is_empty());
    }
}
