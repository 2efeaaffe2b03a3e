//! `leak-documents`: leaks inside documents and escaped text, the HTTP
//! evasions a server still accepts, and traps that must stay silent.
//!
//! Documents: an `xlsx` of grouped resident ids uploaded as
//! `multipart/form-data`; a `docx` whose marking is split across runs,
//! mailed as a base64 attachment over SMTP; a ZIP holding that `docx`
//! sent over a raw TCP connection. Escapes: a JSON body with `\uXXXX`
//! escapes, an HTML body with numeric character references. Evasions: a
//! plain body labelled `Content-Encoding: gzip`; 300 padding headers
//! before a real `Content-Encoding: gzip`; `Content-Length` with chunked
//! transfer. A plain grouped id (`110105-19491231-002X`). Traps: bulk TLS
//! records and random binary with `pwD=` in it (outbound), and the same
//! `docx` downloaded by an internal client (inbound).
//!
//! `leak-pdf` ([`pdfs`]): PDFs (written by [`crate::pdf`]) uploaded,
//! mailed and sent raw, and one downloaded as a trap.

use std::io::Write;
use std::net::SocketAddr;

use crate::app::{http_request, http_response};
use crate::capture::Capture;
use crate::expected::{Expected, ExpectedIncident};
use crate::leaks::{leak, session, v4};
use crate::payload::{chunked, gzip, mime_mail, resident_id};
use crate::rng::Rng;
use crate::scenario::Generated;
use crate::session::{Sent, Side, TcpSession};

/// A ZIP archive of `(name, content, deflated)` members, with local
/// headers, data descriptors for deflated members and a central
/// directory.
pub fn zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflated) in members {
        let body = if *deflated {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        } else {
            data.to_vec()
        };
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let (flags, method): (u16, u16) = if *deflated { (8, 8) } else { (0, 0) };
        let (c, u, h_crc) = if *deflated {
            (0, 0, 0)
        } else {
            (body.len() as u32, data.len() as u32, crc)
        };
        let mut header = Vec::new();
        header.extend_from_slice(&20u16.to_le_bytes());
        header.extend_from_slice(&flags.to_le_bytes());
        header.extend_from_slice(&method.to_le_bytes());
        header.extend_from_slice(&[0, 0, 0x21, 0x5b]);
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&header);
        out.extend_from_slice(&h_crc.to_le_bytes());
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&u.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        if *deflated {
            out.extend_from_slice(b"PK\x07\x08");
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        central.extend_from_slice(b"PK\x01\x02\x14\x00");
        central.extend_from_slice(&header);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(body.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let n = members.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A `docx` whose body has `marking` split across two runs.
pub fn docx(marking: &str) -> Vec<u8> {
    let mut chars = marking.chars();
    let first: String = chars.next().map(String::from).unwrap_or_default();
    let rest: String = chars.collect();
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>关于数据安全的通知</w:t></w:r></w:p><w:p><w:r><w:rPr><w:b/></w:rPr><w:t>{first}</w:t></w:r><w:r><w:t>{rest}</w:t></w:r></w:p><w:p><w:r><w:t>请各处室遵照执行。</w:t></w:r></w:p></w:body></w:document>"#
    );
    zip(&[
        ("[Content_Types].xml", b"<Types/>", true),
        ("_rels/.rels", b"<Relationships/>", true),
        ("word/document.xml", body.as_bytes(), true),
        (
            "docProps/app.xml",
            b"<Properties><Pages>1</Pages></Properties>",
            false,
        ),
    ])
}

/// An `xlsx` whose shared strings hold `cells`.
pub fn xlsx(cells: &[String]) -> Vec<u8> {
    let mut sst = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    );
    for c in cells {
        sst.push_str(&format!("<si><t>{c}</t></si>"));
    }
    sst.push_str("</sst>");
    zip(&[
        ("[Content_Types].xml", b"<Types/>", true),
        ("xl/sharedStrings.xml", sst.as_bytes(), true),
        (
            "xl/worksheets/sheet1.xml",
            b"<worksheet><sheetData/></worksheet>",
            true,
        ),
    ])
}

/// Sends `request`, answers 200, closes; returns the frames, the
/// request's segments and the last frame's time.
fn exchange(mut s: TcpSession, request: &[u8]) -> (Vec<crate::TimedFrame>, Sent, i64) {
    let sent = s.send(Side::Client, request);
    s.send(
        Side::Server,
        &http_response(200, "OK", "application/json", b"{\"ok\":true}"),
    );
    s.close(Side::Client);
    let frames = s.into_frames();
    let end = frames.last().map_or(sent.last_ts, |f| f.ts_micros);
    (frames, sent, end)
}

/// An SMTP client's greeting, sender and recipient, then `more`
/// commands, each answered `250 OK`; returns the first one's time.
fn smtp_commands(s: &mut TcpSession, more: &[&str]) -> i64 {
    let mut first = 0;
    let envelope = [
        "EHLO pc.example.gov.cn\r\n",
        "MAIL FROM:<a@example.gov.cn>\r\n",
        "RCPT TO:<b@example.net>\r\n",
    ];
    for line in envelope.iter().chain(more) {
        let sent = s.send(Side::Client, line.as_bytes());
        if first == 0 {
            first = sent.first_ts;
        }
        s.send(Side::Server, b"250 OK\r\n");
    }
    first
}

/// `leak-documents`.
pub fn documents() -> Generated {
    let mut capture = Capture::new();
    let mut incidents: Vec<ExpectedIncident> = Vec::new();
    let server = |d: u8| v4(203, 0, 113, d, 80);
    let host = |s: SocketAddr| s.ip().to_string();
    let mut push = |frames, inc: Option<ExpectedIncident>| {
        capture.extend(frames);
        if let Some(i) = inc {
            incidents.push(i);
        }
    };

    // 1 s: multipart upload of an xlsx with grouped resident ids.
    let (c, srv) = (v4(10, 4, 0, 1, 43001), server(41));
    let ids: Vec<String> = ["11010519491231002", "44030419850615123"]
        .iter()
        .map(|p| {
            let id = resident_id(p);
            format!("{} {} {}", &id[..6], &id[6..14], &id[14..])
        })
        .collect();
    let file = xlsx(&ids);
    let mut body = b"------ShaobingForm\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3 roster\r\n------ShaobingForm\r\nContent-Disposition: form-data; name=\"file\"; filename=\"roster.xlsx\"\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n".to_vec();
    body.extend_from_slice(&file);
    body.extend_from_slice(b"\r\n------ShaobingForm--\r\n");
    let req = http_request(
        "POST",
        "/upload",
        &host(srv),
        &[(
            "Content-Type",
            "multipart/form-data; boundary=----ShaobingForm",
        )],
        &body,
    );
    let (f, sent, end) = exchange(session(c, srv, 1, 41), &req);
    let mut inc = leak("cn-resident-id", c, srv, "http", sent.first_ts, end);
    inc.min_match_count = Some(2);
    push(f, Some(inc));

    // 2 s: a docx with 机密★ split across runs, mailed as an attachment.
    let (c, srv) = (v4(10, 4, 0, 2, 43002), v4(198, 51, 100, 42, 25));
    let mut s = session(c, srv, 2, 42);
    let first = smtp_commands(&mut s, &["DATA\r\n"]);
    let mut mail = mime_mail(
        "a@example.gov.cn",
        "b@example.net",
        "notice",
        "见附件。",
        "notice.docx",
        &docx("机密★一年"),
    );
    mail.extend_from_slice(b".\r\n");
    s.send(Side::Client, &mail);
    s.send(Side::Server, b"250 Queued\r\n");
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    push(
        f,
        Some(leak("classification-marking", c, srv, "smtp", first, end)),
    );

    // 3 s: a ZIP holding the docx over a raw TCP connection.
    let (c, srv) = (v4(10, 4, 0, 3, 43003), v4(203, 0, 113, 43, 9000));
    let mut s = session(c, srv, 3, 43);
    let archive = zip(&[("out/notice.docx", &docx("绝密★十年"), true)]);
    let sent = s.send(Side::Client, &archive);
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    push(
        f,
        Some(leak(
            "classification-marking",
            c,
            srv,
            "tcp",
            sent.first_ts,
            end,
        )),
    );

    // 4 s: JSON with \u escapes; 5 s: HTML with character references.
    let escaped = [
        (
            4u8,
            "application/json",
            br#"{"title":"\u673a\u5bc6\u2605\u4e00\u5e74","body":"..."}"#.to_vec(),
        ),
        (
            5,
            "text/html; charset=utf-8",
            b"<html><body><p>&#x7EDD;&#23494;&starf;&#x5341;&#24180;</p></body></html>".to_vec(),
        ),
    ];
    for (n, ct, body) in escaped {
        let (c, srv) = (v4(10, 4, 0, n, 43000 + u16::from(n)), server(40 + n));
        let req = http_request("POST", "/api", &host(srv), &[("Content-Type", ct)], &body);
        let (f, sent, end) = exchange(session(c, srv, i64::from(n), 40 + u32::from(n)), &req);
        push(
            f,
            Some(leak(
                "classification-marking",
                c,
                srv,
                "http",
                sent.first_ts,
                end,
            )),
        );
    }

    // 6 s: a plain body labelled gzip (scanned raw).
    let (c, srv) = (v4(10, 4, 0, 6, 43006), server(46));
    let req = http_request(
        "POST",
        "/u",
        &host(srv),
        &[("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
        "通知\n秘密★五年\n".as_bytes(),
    );
    let (f, sent, end) = exchange(session(c, srv, 6, 46), &req);
    push(
        f,
        Some(leak(
            "classification-marking",
            c,
            srv,
            "http",
            sent.first_ts,
            end,
        )),
    );

    // 7 s: 300 padding headers before a real gzip body.
    let (c, srv) = (v4(10, 4, 0, 7, 43007), server(47));
    let pads: Vec<(String, String)> = (0..300)
        .map(|i| (format!("X-Pad-{i}"), "p".repeat(60)))
        .collect();
    let mut headers: Vec<(&str, &str)> =
        pads.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("Content-Encoding", "gzip"));
    let req = http_request(
        "POST",
        "/u",
        &host(srv),
        &headers,
        &gzip("正文\n绝密★二十年\n".as_bytes()),
    );
    let (f, sent, end) = exchange(session(c, srv, 7, 47), &req);
    push(
        f,
        Some(leak(
            "classification-marking",
            c,
            srv,
            "http",
            sent.first_ts,
            end,
        )),
    );

    // 8 s: Content-Length and chunked: the server reads chunks.
    let (c, srv) = (v4(10, 4, 0, 8, 43008), server(48));
    let mut req = format!(
        "POST /u HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        host(srv)
    )
    .into_bytes();
    req.extend_from_slice(&chunked("正文 机密★三年 正文".as_bytes(), 7));
    let (f, sent, end) = exchange(session(c, srv, 8, 48), &req);
    push(
        f,
        Some(leak(
            "classification-marking",
            c,
            srv,
            "http",
            sent.first_ts,
            end,
        )),
    );

    // 9 s: a grouped id in plain text.
    let (c, srv) = (v4(10, 4, 0, 9, 43009), server(49));
    let id = resident_id("11010519491231002");
    let text = format!("身份证号 {}-{}-{}\n", &id[..6], &id[6..14], &id[14..]);
    let req = http_request(
        "POST",
        "/u",
        &host(srv),
        &[("Content-Type", "text/plain")],
        text.as_bytes(),
    );
    let (f, sent, end) = exchange(session(c, srv, 9, 49), &req);
    push(
        f,
        Some(leak("cn-resident-id", c, srv, "http", sent.first_ts, end)),
    );

    // Traps. 10 s: bulk TLS application data to 443.
    let mut rng = Rng::new(12);
    let (c, srv) = (v4(10, 4, 0, 10, 43010), v4(203, 0, 113, 50, 443));
    let mut s = session(c, srv, 10, 50);
    let mut hello = vec![22, 3, 1, 0, 64, 1];
    hello.extend((0..63).map(|_| rng.next_u32() as u8));
    s.send(Side::Client, &hello);
    let mut records = Vec::new();
    for _ in 0..20 {
        records.extend_from_slice(&[23, 3, 3, 0x40, 0x00]);
        let mut r: Vec<u8> = (0..0x4000).map(|_| rng.next_u32() as u8).collect();
        // Ciphertext that happens to spell a password field.
        r.splice(100..100, b"pwD=k3y&".iter().copied());
        r.truncate(0x4000);
        records.extend(r);
    }
    s.send(Side::Client, &records);
    s.close(Side::Client);
    push(s.into_frames(), None);

    // 11 s: random binary with a password-looking field inside.
    let (c, srv) = (v4(10, 4, 0, 11, 43011), v4(203, 0, 113, 51, 9001));
    let mut s = session(c, srv, 11, 51);
    let mut blob: Vec<u8> = (0..200_000).map(|_| rng.next_u32() as u8).collect();
    blob.splice(5000..5000, b"\x8f\x02pwD=\x13q".iter().copied());
    s.send(Side::Client, &blob);
    s.close(Side::Client);
    push(s.into_frames(), None);

    // 12 s: the marked docx downloaded by an internal client (inbound).
    let (c, srv) = (v4(10, 4, 0, 12, 43012), server(52));
    let mut s = session(c, srv, 12, 52);
    s.send(
        Side::Client,
        &http_request("GET", "/files/notice.docx", &host(srv), &[], b""),
    );
    s.send(
        Side::Server,
        &http_response(
            200,
            "OK",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            &docx("机密★一年"),
        ),
    );
    s.close(Side::Client);
    push(s.into_frames(), None);

    // 13 s: a docx mailed in BDAT chunks (CHUNKING) cut mid-line.
    let (c, srv) = (v4(10, 4, 0, 13, 43013), v4(198, 51, 100, 53, 25));
    let mut s = session(c, srv, 13, 53);
    let first = smtp_commands(&mut s, &[]);
    let mail = mime_mail(
        "a@example.gov.cn",
        "b@example.net",
        "notice",
        "见附件。",
        "notice.docx",
        &docx("秘密★十年"),
    );
    let mut rest = mail.as_slice();
    for size in [1000, 777, usize::MAX] {
        let (now, later) = rest.split_at(size.min(rest.len()));
        rest = later;
        let last = if rest.is_empty() { " LAST" } else { "" };
        let mut chunk = format!("BDAT {}{last}\r\n", now.len()).into_bytes();
        chunk.extend_from_slice(now);
        s.send(Side::Client, &chunk);
        s.send(Side::Server, b"250 OK\r\n");
    }
    s.send(Side::Client, b"QUIT\r\n");
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    push(
        f,
        Some(leak("classification-marking", c, srv, "smtp", first, end)),
    );

    Generated {
        capture,
        expected: Expected {
            capture: "leak-documents.pcap".into(),
            description: "Thirteen TCP sessions, one per second from t=1 s; protected network 10.0.0.0/8. Leaks (outbound, one \
incident per flow and signature): t=1 s a multipart/form-data upload of an xlsx whose shared strings hold two resident ids \
grouped 6-8-4 with spaces (10.4.0.1, cn-resident-id, match_count 2); t=2 s SMTP to 198.51.100.42:25, a base64 docx attachment \
whose 机密★一年 is split across two runs; t=3 s a ZIP holding that kind of docx (绝密★十年) over raw TCP to port 9000; t=4 s a \
JSON body with 机密★一年 as \\u escapes; t=5 s an HTML body with 绝密★十年 as character references; t=6 s a plain body \
labelled Content-Encoding: gzip (秘密★五年); t=7 s 300 padding headers before Content-Encoding: gzip (绝密★二十年); t=8 s \
Content-Length with chunked transfer (机密★三年 cut across 7-byte chunks); t=9 s a resident id grouped 6-8-4 with dashes. \
Traps, no incident: t=10 s 320 KB of TLS records to 443 with pwD=k3y inside; t=11 s 200 KB of random binary with pwD= inside \
(port 9001); t=12 s the docx downloaded by an internal client (inbound). Leak after the traps: t=13 s SMTP to 198.51.100.53:25 \
with the message in three BDAT chunks (CHUNKING) cut mid-line, a base64 docx attachment marked 秘密★十年."
                .into(),
            allow_extra_events: vec![],
            incidents,
        },
    }
}

/// `leak-pdf`: PDFs leaving the network by HTTP upload, mail and raw TCP,
/// their text reachable only through the content streams (and, for the
/// Chinese text, only through the fonts' `ToUnicode` CMaps); the same kind
/// of PDF downloaded by an internal client as a trap.
pub fn pdfs() -> Generated {
    use crate::pdf::{pdf, Layout};
    let mut capture = Capture::new();
    let mut incidents: Vec<ExpectedIncident> = Vec::new();
    let host = |s: SocketAddr| s.ip().to_string();
    let notice = |marking: &str, layout| {
        pdf(
            &["Data security notice", "Distribution: internal"],
            &["关于数据安全的通知", marking, "请各处室遵照执行。"],
            "通知",
            layout,
        )
    };

    // 1 s: a CID-font PDF marked 机密★一年 in a multipart upload.
    let (c, srv) = (v4(10, 5, 0, 1, 44001), v4(203, 0, 113, 61, 80));
    let mut body = b"------ShaobingForm\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notice.pdf\"\r\nContent-Type: application/pdf\r\n\r\n".to_vec();
    body.extend_from_slice(&notice("机密★一年", Layout::Plain));
    body.extend_from_slice(b"\r\n------ShaobingForm--\r\n");
    let req = http_request(
        "POST",
        "/upload",
        &host(srv),
        &[(
            "Content-Type",
            "multipart/form-data; boundary=----ShaobingForm",
        )],
        &body,
    );
    let (f, sent, end) = exchange(session(c, srv, 1, 61), &req);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 2 s: a PDF with two resident ids (one in a Latin literal string, one
    // in CID-font text) mailed as an attachment; objects in an object
    // stream.
    let (c, srv) = (v4(10, 5, 0, 2, 44002), v4(198, 51, 100, 62, 25));
    let mut s = session(c, srv, 2, 62);
    let first = smtp_commands(&mut s, &["DATA\r\n"]);
    let latin = format!("Applicant ID {}", resident_id("11010519491231002"));
    let cjk = format!("公民身份号码{}", resident_id("44030419850615123"));
    let roster = pdf(&[&latin], &["人员名单", &cjk], "名单", Layout::ObjectStream);
    let mut mail = mime_mail(
        "a@example.gov.cn",
        "b@example.net",
        "roster",
        "见附件。",
        "roster.pdf",
        &roster,
    );
    mail.extend_from_slice(b".\r\n");
    s.send(Side::Client, &mail);
    s.send(Side::Server, b"250 Queued\r\n");
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    let mut inc = leak("cn-resident-id", c, srv, "smtp", first, end);
    inc.min_match_count = Some(2);
    incidents.push(inc);

    // 3 s: a PDF marked 绝密★十年 over a raw TCP connection.
    let (c, srv) = (v4(10, 5, 0, 3, 44003), v4(203, 0, 113, 63, 9000));
    let mut s = session(c, srv, 3, 63);
    let sent = s.send(Side::Client, &notice("绝密★十年", Layout::ObjectStream));
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "tcp",
        sent.first_ts,
        end,
    ));

    // 4 s (trap): the marked PDF downloaded by an internal client.
    let (c, srv) = (v4(10, 5, 0, 4, 44004), v4(203, 0, 113, 64, 80));
    let mut s = session(c, srv, 4, 64);
    s.send(
        Side::Client,
        &http_request("GET", "/files/notice.pdf", &host(srv), &[], b""),
    );
    s.send(
        Side::Server,
        &http_response(
            200,
            "OK",
            "application/pdf",
            &notice("机密★一年", Layout::Plain),
        ),
    );
    s.close(Side::Client);
    capture.extend(s.into_frames());

    Generated {
        capture,
        expected: Expected {
            capture: "leak-pdf.pcap".into(),
            description: "Four TCP sessions, one per second from t=1 s; protected network 10.0.0.0/8. Every PDF's \
page text is in a FlateDecode content stream; its Chinese lines are hex strings of 2-byte CIDs in an Identity-H font \
that only the font's ToUnicode CMap maps to characters. Leaks (outbound, one incident per flow and signature): t=1 s a \
multipart/form-data upload of a PDF marked 机密★一年 (10.5.0.1, http); t=2 s SMTP to 198.51.100.62:25, a base64 PDF \
attachment whose objects sit in an object stream, with two resident ids, one in a Latin literal string and one in CID \
text (10.5.0.2, cn-resident-id, match_count 2); t=3 s a PDF marked 绝密★十年 (object-stream layout) over raw TCP to \
port 9000 (10.5.0.3). Trap, no incident: t=4 s the marked PDF downloaded by an internal client (inbound, 10.5.0.4)."
                .into(),
            allow_extra_events: vec![],
            incidents,
        },
    }
}
