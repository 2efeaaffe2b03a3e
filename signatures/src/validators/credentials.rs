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

fn password(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
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
