//! Application-layer payload helpers (HTTP/1.1, DNS).

use std::net::Ipv4Addr;

/// An HTTP/1.1 request: request line, `Host`, the given extra headers, a
/// correct `Content-Length` when there is a body, a blank line, the body.
pub fn http_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// An HTTP/1.1 response with `Content-Type`, a correct `Content-Length`
/// and the body.
pub fn http_response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: nginx\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn dns_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// A DNS query (RD set) for one name and type (1 = A, 28 = AAAA, ...).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// The answer to [`dns_query`] for an A record: the question echoed, one
/// answer pointing at it (TTL 300) with `addr`.
pub fn dns_response_a(id: u16, name: &str, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(34 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    dns_name(&mut m, name);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    m.extend_from_slice(&300u32.to_be_bytes());
    m.extend_from_slice(&4u16.to_be_bytes());
    m.extend_from_slice(&addr.octets());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_request_has_a_correct_content_length() {
        let r = http_request(
            "POST",
            "/upload",
            "h",
            &[("Content-Type", "text/plain")],
            "绝密".as_bytes(),
        );
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n")
        );
        assert!(text.contains("Content-Length: 6\r\n\r\n绝密"));
    }

    #[test]
    fn dns_query_encodes_labels() {
        let q = dns_query(0x1234, "www.example.com", 1);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    }
}
