//! Payload helpers for leak scenarios: text encodings (GBK, UTF-16),
//! HTTP body codings (gzip, chunked, URL-encoded forms), a MIME mail with
//! a base64 attachment, and valid or deliberately invalid personal numbers
//! (resident ids with their GB 11643 check character, Luhn card numbers).

use std::io::Write;

use base64::Engine as _;

/// `text` in GBK (Windows code page 936), as Chinese documents on
/// government networks often are.
pub fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, _) = encoding_rs::GBK.encode(text);
    bytes.into_owned()
}

/// `text` in UTF-16LE with a byte-order mark.
pub fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// `data` gzip-compressed (best compression, deterministic: no name, no
/// time stamp).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// `body` in HTTP/1.1 chunked transfer coding, `size` bytes per chunk
/// (the last may be shorter), then the zero chunk.
pub fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Percent-encodes every byte but unreserved ASCII (RFC 3986), spaces as
/// `+`, as browsers encode form fields.
pub fn urlencode(text: &[u8]) -> String {
    let mut out = String::new();
    for &b in text {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body from `(name, value)` pairs.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k.as_bytes()), urlencode(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// A MIME multipart/mixed mail: a plain-text part and one attachment in
/// base64 (76-column lines), CRLF line ends, ready for SMTP `DATA` (no
/// line starts with a dot).
pub fn mime_mail(
    from: &str,
    to: &str,
    subject: &str,
    text: &str,
    attachment_name: &str,
    attachment: &[u8],
) -> Vec<u8> {
    const BOUNDARY: &str = "=_shaobing_boundary_01";
    let b64 = base64::engine::general_purpose::STANDARD.encode(attachment);
    let mut lines = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        lines.push_str(&String::from_utf8_lossy(chunk));
        lines.push_str("\r\n");
    }
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\r\n\r\n\
This is a multi-part message in MIME format.\r\n\
--{BOUNDARY}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
{text}\r\n\
--{BOUNDARY}\r\nContent-Type: application/octet-stream; name=\"{attachment_name}\"\r\n\
Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{attachment_name}\"\r\n\r\n\
{lines}--{BOUNDARY}--\r\n"
    )
    .into_bytes()
}

/// The GB 11643 check character of the first 17 digits of a resident id
/// (ISO 7064 MOD 11-2), or `None` if `first17` is not 17 ASCII digits.
pub fn resident_id_check(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    CHECK.get((sum % 11) as usize).copied()
}

/// A valid resident id: `first17` and its check character.
pub fn resident_id(first17: &str) -> String {
    let check = resident_id_check(first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// The same id with a wrong check character.
pub fn resident_id_bad_check(first17: &str) -> String {
    let good = resident_id_check(first17).unwrap_or('0');
    let bad = if good == '1' { '2' } else { '1' };
    format!("{first17}{bad}")
}

/// The Luhn check digit that completes `prefix` (ASCII digits).
pub fn luhn_check_digit(prefix: &str) -> char {
    let mut sum = 0;
    for (i, c) in prefix.chars().rev().enumerate() {
        let mut d = c.to_digit(10).unwrap_or(0);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('0')
}

/// A Luhn-valid card number: `prefix` and its check digit.
pub fn card(prefix: &str) -> String {
    format!("{prefix}{}", luhn_check_digit(prefix))
}

/// The same number with a wrong (Luhn-failing) check digit.
pub fn card_bad_luhn(prefix: &str) -> String {
    let good = luhn_check_digit(prefix).to_digit(10).unwrap_or(0);
    format!("{prefix}{}", (good + 1) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_check_matches_the_published_example() {
        // GB 11643-1999 appendix example.
        assert_eq!(resident_id("11010519491231002"), "11010519491231002X");
        assert_ne!(
            resident_id_bad_check("11010519491231002"),
            "11010519491231002X"
        );
    }

    #[test]
    fn luhn_completion_gives_valid_numbers() {
        assert_eq!(card("7992739871"), "79927398713");
        assert_eq!(card_bad_luhn("7992739871"), "79927398714");
    }

    #[test]
    fn marking_bytes_differ_between_encodings() {
        assert_ne!(gbk("绝密★"), "绝密★".as_bytes());
        assert_eq!(utf16le("A"), [0xff, 0xfe, b'A', 0]);
        assert_eq!(chunked(b"abc", 2), b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
        assert_eq!(urlencode("a b★".as_bytes()), "a+b%E2%98%85");
    }
}
