//! Leak scenarios: what the leak detector must find however the bytes are
//! encoded, wrapped or cut into segments, and what it must not report.
//!
//! * `leak-encodings`: classification markings in GBK, UTF-8 and UTF-16
//!   bodies, in a URL-encoded form, in a base64 mail attachment (SMTP);
//!   resident ids and bank cards in a gzip-compressed, chunked upload.
//!   Negatives: ids with a wrong check character, cards failing Luhn, 秘密
//!   in ordinary prose, personal data and markings flowing *into* the
//!   protected network.
//! * `leak-streams`: a marking split across two segments, segments out of
//!   order, retransmitted, and overlapping with different bytes (the first
//!   copy wins).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::app::{http_request, http_response};
use crate::capture::{Capture, TimedFrame};
use crate::expected::{Expected, ExpectedIncident};
use crate::payload::{
    card, card_bad_luhn, chunked, form, gbk, gzip, mime_mail, resident_id, resident_id_bad_check,
    utf16le,
};
use crate::scenario::{at, ts, Generated};
use crate::session::{Sent, Side, TcpSession};

pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

/// A session ready for data: handshake done, deterministic ISNs from `n`.
pub(crate) fn session(client: SocketAddr, server: SocketAddr, start_s: i64, n: u32) -> TcpSession {
    let mut s = TcpSession::new(client, server, at(start_s * 1_000_000))
        .isns(
            0x1000_0000u32.wrapping_mul(n),
            0x0800_0000u32.wrapping_mul(n + 1),
        )
        .timing(50, 2_000);
    s.handshake();
    s
}

/// An expected outbound leak of `signature` from `client` to `server`.
pub(crate) fn leak(
    signature: &str,
    client: SocketAddr,
    server: SocketAddr,
    app: &str,
    first: i64,
    last: i64,
) -> ExpectedIncident {
    ExpectedIncident {
        kind: Some("leak".into()),
        event: Some("leak".into()),
        signature: Some(signature.into()),
        src_ip: Some(client.ip()),
        dst_ip: Some(server.ip()),
        src_port: Some(client.port()),
        dst_port: Some(server.port()),
        proto: Some("tcp".into()),
        direction: Some("outbound".into()),
        app_proto: Some(app.into()),
        min_match_count: Some(1),
        ts_min: Some(ts(first)),
        ts_max: Some(ts(last)),
        ..Default::default()
    }
}

/// A POST of `body` with `headers`, a small answer, and teardown; returns
/// the frames, the request's segments and the last frame's time.
fn post(
    mut s: TcpSession,
    server: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Vec<TimedFrame>, Sent, i64) {
    let host = server.ip().to_string();
    let sent = s.send(
        Side::Client,
        &http_request("POST", path, &host, headers, body),
    );
    s.send(
        Side::Server,
        &http_response(200, "OK", "application/json", b"{\"ok\":true}"),
    );
    s.close(Side::Client);
    let frames = s.into_frames();
    let end = frames.last().map_or(sent.last_ts, |f| f.ts_micros);
    (frames, sent, end)
}

/// Document text with a marking; the marking appears exactly once.
fn document(marking: &str) -> String {
    format!(
        "关于加强数据安全管理的通知\n{marking}\n各处室：\n请于本月底前完成重要数据目录梳理工作，并将结果报送办公室。\n办公室\n"
    )
}

/// Prose that uses 秘密 as an ordinary word (no ★): must not match.
const PROSE: &str =
    "成功没有什么秘密，只有坚持。很多人问我们的秘密是什么，其实就是每天认真工作。\n";

/// `leak-encodings`.
pub fn encodings() -> Generated {
    let mut capture = Capture::new();
    let mut incidents = Vec::new();
    let server = |d: u8| v4(203, 0, 113, d, 80);

    // 1 s: GBK body with 机密★.
    let (c, srv) = (v4(10, 2, 0, 11, 41001), server(11));
    let (f, sent, end) = post(
        session(c, srv, 1, 1),
        srv,
        "/upload",
        &[("Content-Type", "text/plain; charset=gbk")],
        &gbk(&document("机密★五年")),
    );
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 2 s: UTF-8 body with 秘密★启用前.
    let (c, srv) = (v4(10, 2, 0, 12, 41002), server(12));
    let (f, sent, end) = post(
        session(c, srv, 2, 2),
        srv,
        "/upload",
        &[("Content-Type", "text/plain; charset=utf-8")],
        document("秘密★启用前").as_bytes(),
    );
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 3 s: UTF-16LE body with 绝密★.
    let (c, srv) = (v4(10, 2, 0, 13, 41003), server(13));
    let (f, sent, end) = post(
        session(c, srv, 3, 3),
        srv,
        "/upload",
        &[("Content-Type", "text/plain; charset=utf-16")],
        &utf16le(&document("绝密★十年")),
    );
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 4 s: URL-encoded form field with 机密★ (only visible once decoded).
    let (c, srv) = (v4(10, 2, 0, 14, 41004), server(14));
    let body = form(&[("title", "通知"), ("content", &document("机密★一年"))]);
    let (f, sent, end) = post(
        session(c, srv, 4, 4),
        srv,
        "/form",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 5 s: gzip-compressed, chunked upload of a staff list with resident
    // ids and UnionPay cards.
    let (c, srv) = (v4(10, 2, 0, 15, 41005), server(15));
    let mut table = String::from("姓名,身份证号,银行卡号\n");
    for (i, (id17, card15)) in [
        ("11010519491231002", "622202100012345"),
        ("44030419850615123", "622848001234567"),
        ("31011219900101234", "621700123456789"),
    ]
    .iter()
    .enumerate()
    {
        table.push_str(&format!("员工{i},{},{}\n", resident_id(id17), card(card15)));
    }
    let mut s = session(c, srv, 5, 5);
    let head = format!(
        "POST /sync HTTP/1.1\r\nHost: {}\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        srv.ip()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(&chunked(&gzip(table.as_bytes()), 64));
    let sent = s.send(Side::Client, &req);
    s.send(
        Side::Server,
        &http_response(204, "No Content", "text/plain", b""),
    );
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    incidents.push(leak("cn-resident-id", c, srv, "http", sent.first_ts, end));
    incidents.push(leak("bank-card", c, srv, "http", sent.first_ts, end));

    // 6 s: SMTP mail with a base64 attachment (a GBK text file) carrying
    // 绝密★.
    let (c, srv) = (v4(10, 2, 0, 16, 41006), v4(198, 51, 100, 25, 25));
    let mut s = session(c, srv, 6, 6);
    let mail = mime_mail(
        "staff@example.gov.cn",
        "someone@example.net",
        "materials",
        "请查收附件。",
        "notice.txt",
        &gbk(&document("绝密★二十年")),
    );
    s.send(Side::Server, b"220 mx.example.net ESMTP\r\n");
    s.send(Side::Client, b"EHLO pc16.example.gov.cn\r\n");
    s.send(Side::Server, b"250-mx.example.net\r\n250 8BITMIME\r\n");
    s.send(Side::Client, b"MAIL FROM:<staff@example.gov.cn>\r\n");
    s.send(Side::Server, b"250 OK\r\n");
    s.send(Side::Client, b"RCPT TO:<someone@example.net>\r\n");
    s.send(Side::Server, b"250 OK\r\n");
    s.send(Side::Client, b"DATA\r\n");
    s.send(Side::Server, b"354 Go ahead\r\n");
    let mut data = mail;
    data.extend_from_slice(b".\r\n");
    let sent = s.send(Side::Client, &data);
    s.send(Side::Server, b"250 Queued\r\n");
    s.send(Side::Client, b"QUIT\r\n");
    s.send(Side::Server, b"221 Bye\r\n");
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "smtp",
        sent.first_ts,
        end,
    ));

    // Negatives.
    // 7 s: ids with wrong check characters, cards failing Luhn.
    let (c, srv) = (v4(10, 2, 0, 17, 41007), server(17));
    let body = format!(
        "订单号 {} {} 流水 {} {}\n",
        resident_id_bad_check("11010519491231002"),
        resident_id_bad_check("44030419850615123"),
        card_bad_luhn("622202100012345"),
        card_bad_luhn("622848001234567"),
    );
    let (f, _, _) = post(
        session(c, srv, 7, 7),
        srv,
        "/orders",
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    );
    capture.extend(f);

    // 8 s: 秘密 in ordinary prose, UTF-8 and GBK.
    let (c, srv) = (v4(10, 2, 0, 18, 41008), server(18));
    let mut body = PROSE.as_bytes().to_vec();
    body.extend_from_slice(&gbk(PROSE));
    let (f, _, _) = post(
        session(c, srv, 8, 8),
        srv,
        "/blog",
        &[("Content-Type", "text/plain")],
        &body,
    );
    capture.extend(f);

    // 9 s: an outside client uploads ids, cards and a marked document to an
    // internal server: inbound, outbound-only signatures stay silent.
    let (c, srv) = (v4(198, 51, 100, 9, 41009), v4(10, 2, 0, 80, 80));
    let body = format!(
        "{} {} {}",
        resident_id("11010519491231002"),
        card("622202100012345"),
        document("绝密★"),
    );
    let (f, _, _) = post(
        session(c, srv, 9, 9),
        srv,
        "/inbox",
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    );
    capture.extend(f);

    // 10 s: an internal client downloads a gzip page with ids: the data
    // flows in (response), so nothing.
    let (c, srv) = (v4(10, 2, 0, 20, 41010), server(20));
    let mut s = session(c, srv, 10, 10);
    s.send(
        Side::Client,
        &http_request("GET", "/list", &srv.ip().to_string(), &[], b""),
    );
    let page = gzip(
        format!(
            "{} {}",
            resident_id("44030419850615123"),
            card("622848001234567")
        )
        .as_bytes(),
    );
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        page.len()
    )
    .into_bytes();
    resp.extend_from_slice(&page);
    s.send(Side::Server, &resp);
    s.close(Side::Client);
    capture.extend(s.into_frames());

    Generated {
        capture,
        expected: Expected {
            capture: "leak-encodings.pcap".into(),
            description: "Ten TCP sessions, one per second from t=1 s, each with handshake, request, answer and FIN teardown; \
protected network 10.0.0.0/8. Leaks (outbound, one incident per flow and signature): t=1 s HTTP POST from 10.2.0.11 of a GBK \
text/plain body with 机密★五年; t=2 s UTF-8 body with 秘密★启用前 (10.2.0.12); t=3 s UTF-16LE body with BOM and 绝密★十年 (10.2.0.13); \
t=4 s application/x-www-form-urlencoded form whose content field holds 机密★一年 percent-encoded (10.2.0.14); t=5 s a chunked \
(64-byte chunks), gzip-compressed CSV upload with three valid resident ids and three Luhn-valid UnionPay cards (10.2.0.15: one \
cn-resident-id and one bank-card incident, match_count 3 each); t=6 s an SMTP session to 198.51.100.25:25 whose DATA is a MIME \
multipart mail with a base64 attachment (a GBK text with 绝密★二十年). Negatives: t=7 s resident ids with wrong check characters \
and card numbers failing Luhn; t=8 s the word 秘密 in ordinary prose (UTF-8 and GBK), no star; t=9 s an outside client \
(198.51.100.9) uploads ids, a card and a marked document to internal server 10.2.0.80 (inbound); t=10 s an internal client \
downloads a gzip page with an id and a card (data flows in)."
                .into(),
            allow_extra_events: vec![],
            incidents,
        },
    }
}

/// The data frames of `sent`, by index into `frames`.
fn data_frames(frames: &[TimedFrame], sent: &Sent) -> Vec<usize> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, f)| (sent.first_ts..=sent.last_ts).contains(&f.ts_micros))
        .map(|(i, _)| i)
        .collect()
}

/// `leak-streams`.
pub fn streams() -> Generated {
    let mut capture = Capture::new();
    let mut incidents = Vec::new();
    let server = |d: u8| v4(203, 0, 113, d, 8080);
    let doc = document("绝密★三十年");
    let marking_at = doc.find("绝密★").unwrap_or(0);

    // 1 s: the marking split across two segments (cut after its first
    // byte of 密).
    let (c, srv) = (v4(10, 3, 0, 1, 42001), server(31));
    let mut s = session(c, srv, 1, 21);
    let req = http_request(
        "POST",
        "/u",
        &srv.ip().to_string(),
        &[("Content-Type", "text/plain")],
        doc.as_bytes(),
    );
    let head_len = req.len() - doc.len();
    let sent = s.send_split(Side::Client, &req, &[head_len + marking_at + 4]);
    s.send(Side::Server, &http_response(200, "OK", "text/plain", b"ok"));
    s.close(Side::Client);
    let f = s.into_frames();
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 2 s: small segments (MSS 16), the two around the marking swapped.
    let (c, srv) = (v4(10, 3, 0, 2, 42002), server(32));
    let mut s = session(c, srv, 2, 22).mss(16);
    let sent = s.send(Side::Client, &req);
    s.send(Side::Server, &http_response(200, "OK", "text/plain", b"ok"));
    s.close(Side::Client);
    let mut f = s.into_frames();
    let idx = data_frames(&f, &sent);
    let k = (head_len + marking_at) / 16;
    if let (Some(&a), Some(&b)) = (idx.get(k), idx.get(k + 1)) {
        let ta = f.get(a).map_or(0, |x| x.ts_micros);
        let tb = f.get(b).map_or(0, |x| x.ts_micros);
        if let Some(x) = f.get_mut(a) {
            x.ts_micros = tb;
        }
        if let Some(x) = f.get_mut(b) {
            x.ts_micros = ta;
        }
        // Stable sort by time puts b first now: swap them in the vector too.
        f.swap(a, b);
    }
    let end = f.last().map_or(0, |x| x.ts_micros);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 3 s: every segment of the request retransmitted once (25 µs later).
    let (c, srv) = (v4(10, 3, 0, 3, 42003), server(33));
    let mut s = session(c, srv, 3, 23).mss(100);
    let sent = s.send(Side::Client, &req);
    s.send(Side::Server, &http_response(200, "OK", "text/plain", b"ok"));
    s.close(Side::Client);
    let mut f = s.into_frames();
    let copies: Vec<TimedFrame> = data_frames(&f, &sent)
        .into_iter()
        .filter_map(|i| f.get(i).cloned())
        .map(|mut x| {
            x.ts_micros += 25;
            x
        })
        .collect();
    f.extend(copies);
    let end = f.iter().map(|x| x.ts_micros).max().unwrap_or(0);
    capture.extend(f);
    incidents.push(leak(
        "classification-marking",
        c,
        srv,
        "http",
        sent.first_ts,
        end,
    ));

    // 4 s and 5 s: a segment and a later copy of it with different bytes
    // at the same sequence numbers. First wins: at 4 s the first copy has
    // the marking (found); at 5 s the first copy is benign and the marked
    // copy comes second (not found).
    let benign = doc.replace("绝密★", "一二三");
    let benign_req = http_request(
        "POST",
        "/u",
        &srv.ip().to_string(),
        &[("Content-Type", "text/plain")],
        benign.as_bytes(),
    );
    for (second, first_req, later_req, port) in [
        (4, &req, &benign_req, 42004u16),
        (5, &benign_req, &req, 42005),
    ] {
        let (c, srv) = (v4(10, 3, 0, second as u8, port), server(30 + second as u8));
        let build = |r: &[u8]| {
            let mut s = session(c, srv, second, 20 + second as u32).mss(200);
            let sent = s.send(Side::Client, r);
            s.send(Side::Server, &http_response(200, "OK", "text/plain", b"ok"));
            s.close(Side::Client);
            (s.into_frames(), sent)
        };
        let (mut f, sent) = build(first_req);
        let (shadow, _) = build(later_req);
        let k = (head_len + marking_at) / 200;
        if let Some(&i) = data_frames(&f, &sent).get(k) {
            if let Some(mut x) = shadow.get(i).cloned() {
                x.ts_micros += 25;
                f.push(x);
            }
        }
        let end = f.iter().map(|x| x.ts_micros).max().unwrap_or(0);
        capture.extend(f);
        if second == 4 {
            incidents.push(leak(
                "classification-marking",
                c,
                srv,
                "http",
                sent.first_ts,
                end,
            ));
        }
    }

    Generated {
        capture,
        expected: Expected {
            capture: "leak-streams.pcap".into(),
            description: "Five HTTP POSTs to 203.0.113.31-35:8080 of the same UTF-8 document carrying 绝密★三十年 once, one per \
second from t=1 s. t=1 s: the request is cut in two segments inside the marking (after the first byte of 密): found once. \
t=2 s: MSS 16, the two segments holding the marking's start captured in swapped order: found once. t=3 s: MSS 100, every data \
segment retransmitted 25 µs later: found once (match_count 1). t=4 s: MSS 200; the segment with the marking is followed by a \
copy at the same sequence numbers where the marking is replaced by 一二三: first copy wins, found. t=5 s: the reverse - the \
benign copy comes first and the marked copy second: first copy wins, nothing reported."
                .into(),
            allow_extra_events: vec![],
            incidents,
        },
    }
}
