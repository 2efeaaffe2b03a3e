//! Credentials: PEM private keys, password form fields, AWS access key ids.
//!
//! Each kind has an *anchor* literal that goes into the shared
//! Aho-Corasick automaton; the checks here run only where an anchor
//! matched, so credentials cost no extra pass over the payload.

/// Longest password value reported (the hit is cut there).
pub const MAX_VALUE_LEN: usize = 128;
/// How far before `PRIVATE KEY-----` the `-----BEGIN ` may start.
const PEM_LOOKBACK: usize = 48;
/// Longest span of one credential hit: a password key (8), quotes and up
/// to 4 spaces on both sides of the separator, and the value; longer than
/// a PEM header (look-back plus anchor) and an AWS key id.
pub const MAX_SPAN: usize = 8 + 1 + 4 + 1 + 4 + 1 + MAX_VALUE_LEN;

/// What an anchor stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// `PRIVATE KEY-----` (case-sensitive), confirmed by `-----BEGIN `.
    PemPrivateKey,
    /// `password`, `passwd`, `pwd` (ASCII case-insensitive).
    PasswordField,
    /// `AKIA` (case-sensitive) then 16 of `[0-9A-Z]`.
    AwsAccessKey,
}

impl Anchor {
    /// The anchor literals and whether they match case-insensitively.
    pub const LITERALS: [(&'static [u8], bool, Anchor); 5] = [
        (b"PRIVATE KEY-----", false, Anchor::PemPrivateKey),
        (b"AKIA", false, Anchor::AwsAccessKey),
        (b"password", true, Anchor::PasswordField),
        (b"passwd", true, Anchor::PasswordField),
        (b"pwd", true, Anchor::PasswordField),
    ];
}

/// Confirms an anchor match at `hay[start..end]`; returns the span of the
/// whole credential.
pub fn confirm(anchor: Anchor, hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    match anchor {
        Anchor::PemPrivateKey => pem(hay, start, end),
        Anchor::PasswordField => password(hay, start, end),
        Anchor::AwsAccessKey => aws(hay, start, end),
    }
}

fn pem(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let from = start.saturating_sub(PEM_LOOKBACK);
    let window = hay.get(from..start)?;
    let at = window.windows(BEGIN.len()).rposition(|w| w == BEGIN)?;
    let between = window.get(at + BEGIN.len()..)?;
    // Same line, and only the key type (`RSA `, `OPENSSH `, ...) between.
    between
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
        .then_some((from + at, end))
}

fn is_value_byte(b: u8) -> bool {
    !(b.is_ascii_whitespace() || b.is_ascii_control() || b"&\"',;}])<>".contains(&b))
}

/// Bytes of context before a password key that must read as text.
const TEXT_CONTEXT: usize = 8;

/// Whether `b` may end a password value: whitespace or the punctuation
/// that closes a form field, JSON string or attribute (not a control or
/// stray binary byte).
fn ends_value(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n') || b"&\"',;}])<>".contains(&b)
}

/// Whether `bytes` read as text: UTF-8 without control characters other
/// than tab and line breaks. A window cut inside a character at its start
/// (up to three continuation bytes) or its end is still text.
fn is_text(bytes: &[u8]) -> bool {
    let lead = bytes
        .iter()
        .take(3)
        .take_while(|&&b| (0x80..0xc0).contains(&b))
        .count();
    let bytes = bytes.get(lead..).unwrap_or_default();
    let valid = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        // Cut at the end inside a character: the part before it.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or("")
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
}

/// The key at `hay[start..]` starts a word (after no ASCII letter or digit,
/// except at a camelCase step like `userPassword`) and the bytes before it
/// are text: no password field is read out of binary or ciphertext.
fn key_in_text(hay: &[u8], start: usize) -> bool {
    let boundary = match start.checked_sub(1).and_then(|p| hay.get(p)) {
        None => true,
        Some(&b) if b.is_ascii_alphanumeric() => {
            b.is_ascii_lowercase() && hay.get(start).is_some_and(u8::is_ascii_uppercase)
        }
        Some(_) => true,
    };
    let from = start.saturating_sub(TEXT_CONTEXT);
    boundary && hay.get(from..start).is_some_and(is_text)
}

fn password(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !key_in_text(hay, start) {
        return None;
    }
    let mut i = end;
    // Closing quote of a JSON / quoted key.
    if matches!(hay.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let skip_spaces = |mut i: usize| {
        let limit = i + 4;
        while i < limit && hay.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    };
    i = skip_spaces(i);
    if !matches!(hay.get(i), Some(b'=' | b':')) {
        return None;
    }
    i = skip_spaces(i + 1);
    if matches!(hay.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let rest = hay.get(i..)?;
    let len = rest
        .iter()
        .take(MAX_VALUE_LEN)
        .position(|&b| !is_value_byte(b))
        .unwrap_or(rest.len().min(MAX_VALUE_LEN));
    let value = rest.get(..len)?;
    // Empty, or already masked by the application.
    if value.is_empty() || value.iter().all(|&b| b == b'*') {
        return None;
    }
    // A printable value that ends where a field ends (or at the length
    // cap, or where the data ends).
    let closed = len == MAX_VALUE_LEN || rest.get(len).is_none_or(|&b| ends_value(b));
    if !closed || !is_text(value) {
        return None;
    }
    Some((start, i + len))
}

fn aws(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let key_end = end + 16;
    let tail = hay.get(end..key_end)?;
    let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let ok = tail
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !word(start.checked_sub(1).and_then(|p| hay.get(p)))
        && !word(hay.get(key_end));
    ok.then_some((start, key_end))
}

/// Masks a credential excerpt: the key name and separator of a password
/// field are kept and the value becomes `********`; other credentials
/// (PEM headers, key ids) return `None` for the generic mask.
pub fn mask_password(text: &str) -> Option<String> {
    let sep = text.find(['=', ':'])?;
    let head = text.get(..=sep)?;
    let after = text.get(sep + 1..)?;
    let spaces = after.len() - after.trim_start_matches(' ').len();
    let quote = after
        .trim_start_matches(' ')
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')
        .map_or(0, char::len_utf8);
    let kept = text.get(..sep + 1 + spaces + quote).unwrap_or(head);
    Some(format!("{kept}********"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(anchor: Anchor, hay: &str) -> Option<String> {
        let lower = hay.to_ascii_lowercase();
        Anchor::LITERALS
            .iter()
            .filter(|(_, _, a)| *a == anchor)
            .find_map(|(lit, ci, _)| {
                let text = if *ci { lower.as_str() } else { hay };
                let start = text.find(std::str::from_utf8(lit).ok()?)?;
                let (s, e) = confirm(anchor, hay.as_bytes(), start, start + lit.len())?;
                hay.get(s..e).map(str::to_owned)
            })
    }

    #[test]
    fn pem_private_key_headers_are_found_but_not_public_keys_or_footers() {
        assert_eq!(
            find(
                Anchor::PemPrivateKey,
                "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIE"
            ),
            Some("-----BEGIN RSA PRIVATE KEY-----".into())
        );
        assert_eq!(
            find(Anchor::PemPrivateKey, "-----BEGIN PRIVATE KEY-----"),
            Some("-----BEGIN PRIVATE KEY-----".into())
        );
        assert_eq!(
            find(Anchor::PemPrivateKey, "-----END RSA PRIVATE KEY-----"),
            None
        );
        assert_eq!(
            find(Anchor::PemPrivateKey, "-----BEGIN x\n PRIVATE KEY-----"),
            None
        );
    }

    #[test]
    fn password_fields_need_a_non_empty_value() {
        assert_eq!(
            find(Anchor::PasswordField, "user=a&password=hunter2&x=1"),
            Some("password=hunter2".into())
        );
        assert_eq!(
            find(Anchor::PasswordField, "{\"Passwd\": \"s3cr3t\"}"),
            Some("Passwd\": \"s3cr3t".into())
        );
        assert_eq!(
            find(Anchor::PasswordField, "pwd=abc"),
            Some("pwd=abc".into())
        );
        assert_eq!(find(Anchor::PasswordField, "password=&x=1"), None);
        assert_eq!(find(Anchor::PasswordField, "password=\"\""), None);
        assert_eq!(find(Anchor::PasswordField, "password=****"), None);
        assert_eq!(find(Anchor::PasswordField, "password"), None);
        assert_eq!(
            find(Anchor::PasswordField, "forgot your password? click"),
            None
        );
    }

    #[test]
    fn password_keys_need_a_word_boundary_and_text_around() {
        assert_eq!(
            find(Anchor::PasswordField, "userPassword=hunter2&x"),
            Some("Password=hunter2".into())
        );
        assert_eq!(
            find(Anchor::PasswordField, "db_passwd: hunter2\n"),
            Some("passwd: hunter2".into())
        );
        assert_eq!(
            find(Anchor::PasswordField, "用户 password=密码123 "),
            Some("password=密码123".into())
        );
        // Inside a word, after binary, or with a binary value: ciphertext
        // that happens to spell `pwD=`.
        for hay in [
            &b"xpwd=hunter2 "[..],
            b"newpassword=hunter2 ",
            b"\x8f\x03\xc1\x00\x9a\x11\xfe\x07pwD=k3y ",
            b"a b c d pwd=ab\x01cd",
            b"a b c d pwd=ab\xffcd ",
            b"a b c d pwd=abc\x9e",
        ] {
            let at = hay
                .windows(3)
                .position(|w| w.eq_ignore_ascii_case(b"pwd"))
                .map(|p| (p, p + 3))
                .or_else(|| {
                    hay.windows(8)
                        .position(|w| w.eq_ignore_ascii_case(b"password"))
                        .map(|p| (p, p + 8))
                });
            let (s, e) = at.unwrap();
            assert_eq!(
                confirm(Anchor::PasswordField, hay, s, e),
                None,
                "{:?}",
                String::from_utf8_lossy(hay)
            );
        }
    }

    #[test]
    fn password_values_are_cut_at_the_maximum_length() {
        let hay = format!("password={}", "a".repeat(1000));
        assert_eq!(
            find(Anchor::PasswordField, &hay).map(|s| s.len()),
            Some(9 + MAX_VALUE_LEN)
        );
    }

    #[test]
    fn aws_access_key_ids_need_sixteen_upper_alphanumerics_and_word_bounds() {
        assert_eq!(
            find(Anchor::AwsAccessKey, "key=AKIAIOSFODNN7EXAMPLE;"),
            Some("AKIAIOSFODNN7EXAMPLE".into())
        );
        assert_eq!(find(Anchor::AwsAccessKey, "AKIAIOSFODNN7EXAMPL"), None);
        assert_eq!(find(Anchor::AwsAccessKey, "AKIAIOSFODNN7EXAMPLEX"), None);
        assert_eq!(find(Anchor::AwsAccessKey, "XAKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(find(Anchor::AwsAccessKey, "AKIAiosfodnn7example"), None);
    }

    #[test]
    fn password_mask_keeps_key_and_hides_value() {
        assert_eq!(
            mask_password("password=hunter2").as_deref(),
            Some("password=********")
        );
        assert_eq!(
            mask_password("Passwd\": \"s3cr3t").as_deref(),
            Some("Passwd\": \"********")
        );
        assert_eq!(mask_password("AKIAIOSFODNN7EXAMPLE"), None);
    }
}
