//! The names a client certificate carries: its subject common names (CN)
//! and its DNS subject-alternative names, read from the DER of a
//! certificate that rustls has already verified against `tls.client_ca`.
//!
//! A minimal DER walker, not a general X.509 parser: it follows
//! `Certificate -> TBSCertificate -> subject` and `-> extensions ->
//! subjectAltName`, checks every length against what remains, and gives up
//! with [`CertNameError`] on anything it does not expect (a certificate it
//! cannot read has no names, so it matches no sensor).

/// The certificate's DER is not what X.509 prescribes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct CertNameError(&'static str);

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;
/// `[0] EXPLICIT` version.
const VERSION: u8 = 0xa0;
/// `[3] EXPLICIT` extensions.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IMPLICIT IA5String` in GeneralNames.
const DNS_NAME: u8 = 0x82;
/// 2.5.4.3, commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// Most names collected from one certificate.
const MAX_NAMES: usize = 256;

/// One DER element: tag and contents; `rest` follows it.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and what follows.
fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), CertNameError> {
    let (&tag, rest) = input.split_first().ok_or(CertNameError("truncated tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(CertNameError("multi-byte tag"));
    }
    let (&first, mut rest) = rest
        .split_first()
        .ok_or(CertNameError("truncated length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(CertNameError("unsupported length form"));
        }
        let bytes = rest.get(..n).ok_or(CertNameError("truncated length"))?;
        rest = rest.get(n..).ok_or(CertNameError("truncated length"))?;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let value = rest
        .get(..len)
        .ok_or(CertNameError("length past the end"))?;
    let rest = rest
        .get(len..)
        .ok_or(CertNameError("length past the end"))?;
    Ok((Tlv { tag, value }, rest))
}

/// Reads an element that must have tag `tag`.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), CertNameError> {
    let (t, rest) = tlv(input)?;
    if t.tag != tag {
        return Err(CertNameError(what));
    }
    Ok((t.value, rest))
}

/// Every element of a SEQUENCE / SET body, in order (bounded by its size:
/// each element takes at least two bytes).
fn elements(mut body: &[u8]) -> impl Iterator<Item = Result<Tlv<'_>, CertNameError>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        match tlv(body) {
            Ok((t, rest)) => {
                body = rest;
                Some(Ok(t))
            }
            Err(e) => {
                body = &[];
                Some(Err(e))
            }
        }
    })
}

fn text(t: &Tlv<'_>) -> Option<String> {
    match t.tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING => {
            std::str::from_utf8(t.value).ok().map(str::to_string)
        }
        _ => None,
    }
}

/// The subject CNs, then the DNS SANs, of a DER certificate.
pub fn cert_names(der: &[u8]) -> Result<Vec<String>, CertNameError> {
    let (cert, _) = expect(der, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs;
    let (first, after) = tlv(rest)?;
    if first.tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer, validity.
    for _ in 0..4 {
        rest = tlv(rest)?.1;
    }
    let (subject, mut rest) = expect(rest, SEQUENCE, "subject is not a SEQUENCE")?;
    let mut names = Vec::new();
    for rdn in elements(subject) {
        let rdn = rdn?;
        if rdn.tag != SET {
            return Err(CertNameError("subject RDN is not a SET"));
        }
        for atv in elements(rdn.value) {
            let atv = atv?;
            if atv.tag != SEQUENCE {
                return Err(CertNameError("subject attribute is not a SEQUENCE"));
            }
            let (oid, value) = expect(atv.value, OID, "attribute type is not an OID")?;
            if oid == OID_CN {
                if let Some(cn) = tlv(value).ok().and_then(|(v, _)| text(&v)) {
                    names.push(cn);
                }
            }
        }
    }
    // subjectPublicKeyInfo, then optional issuer/subject unique ids, then
    // `[3]` extensions.
    rest = tlv(rest)?.1;
    while !rest.is_empty() {
        let (t, after) = tlv(rest)?;
        rest = after;
        if t.tag != EXTENSIONS {
            continue;
        }
        let (exts, _) = expect(t.value, SEQUENCE, "extensions are not a SEQUENCE")?;
        for ext in elements(exts) {
            let ext = ext?;
            let (oid, mut body) = expect(ext.value, OID, "extension id is not an OID")?;
            if oid != OID_SAN {
                continue;
            }
            let (maybe_critical, after) = tlv(body)?;
            if maybe_critical.tag == BOOLEAN {
                body = after;
            }
            let (octets, _) = expect(body, OCTET_STRING, "extension value is not an OCTET STRING")?;
            let (general_names, _) = expect(octets, SEQUENCE, "subjectAltName is not a SEQUENCE")?;
            for gn in elements(general_names) {
                let gn = gn?;
                if gn.tag == DNS_NAME {
                    if let Ok(dns) = std::str::from_utf8(gn.value) {
                        names.push(dns.to_string());
                    }
                }
                if names.len() >= MAX_NAMES {
                    break;
                }
            }
        }
    }
    names.truncate(MAX_NAMES);
    Ok(names)
}

/// Whether `expected` (a sensor's certificate name) is one of `names`:
/// exact, except that ASCII case is ignored (DNS names are
/// case-insensitive).
pub fn matches(names: &[String], expected: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match value.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(value);
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// A certificate with the given subject CNs and DNS SANs (signature
    /// and key are placeholders: only the structure matters here).
    fn cert(cns: &[&str], sans: &[&str]) -> Vec<u8> {
        let rdn = |oid: &[u8], v: &str| {
            der(
                SET,
                &der(
                    SEQUENCE,
                    &cat(&[der(OID, oid), der(UTF8_STRING, v.as_bytes())]),
                ),
            )
        };
        let mut subject = vec![rdn(&[0x55, 0x04, 0x0a], "Shaobing")];
        subject.extend(cns.iter().map(|cn| rdn(OID_CN, cn)));
        let san = der(
            SEQUENCE,
            &cat(&sans
                .iter()
                .map(|s| der(DNS_NAME, s.as_bytes()))
                .collect::<Vec<_>>()),
        );
        let exts = der(
            EXTENSIONS,
            &der(
                SEQUENCE,
                &cat(&[
                    der(
                        SEQUENCE,
                        &cat(&[
                            der(OID, &[0x55, 0x1d, 0x13]),
                            der(OCTET_STRING, &der(SEQUENCE, &[])),
                        ]),
                    ),
                    der(
                        SEQUENCE,
                        &cat(&[
                            der(OID, OID_SAN),
                            der(BOOLEAN, &[0]),
                            der(OCTET_STRING, &san),
                        ]),
                    ),
                ]),
            ),
        );
        let alg = der(SEQUENCE, &der(OID, &[0x2a, 0x86, 0x48]));
        let tbs = der(
            SEQUENCE,
            &cat(&[
                der(VERSION, &der(0x02, &[2])),
                der(0x02, &[1, 2, 3]),
                alg.clone(),
                der(SEQUENCE, &rdn(OID_CN, "Shaobing CA")),
                der(
                    SEQUENCE,
                    &cat(&[der(0x17, b"260101000000Z"), der(0x17, b"360101000000Z")]),
                ),
                der(SEQUENCE, &cat(&subject)),
                der(SEQUENCE, &cat(&[alg.clone(), der(0x03, &[0, 1, 2])])),
                exts,
            ]),
        );
        der(SEQUENCE, &cat(&[tbs, alg, der(0x03, &[0, 9, 9])]))
    }

    #[test]
    fn subject_cns_and_dns_sans_are_read() {
        let c = cert(&["sensor-a"], &["sensor-a.example.gov", "sb-a"]);
        assert_eq!(
            cert_names(&c).unwrap(),
            ["sensor-a", "sensor-a.example.gov", "sb-a"]
        );
        assert!(matches(&cert_names(&c).unwrap(), "SENSOR-A.example.gov"));
        assert!(!matches(&cert_names(&c).unwrap(), "sensor-b"));
        // The issuer's CN is not a name of the subject.
        assert!(!matches(&cert_names(&c).unwrap(), "Shaobing CA"));
        assert_eq!(cert_names(&cert(&[], &[])).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let c = cert(&["sensor-a"], &["x"]);
        for n in 0..c.len() {
            // Every prefix either fails or yields no more than the whole.
            if let Ok(names) = cert_names(&c[..n]) {
                assert!(names.len() <= 2);
            }
        }
        assert!(cert_names(&[]).is_err());
        assert!(cert_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(cert_names(&[0x1f, 0x01, 0x00]).is_err());
        let mut flipped = c.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = cert_names(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
