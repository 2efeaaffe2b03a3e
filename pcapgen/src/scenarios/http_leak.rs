//! `http-leak`: a classified document POSTed to an outside server, with two
//! negatives (a benign GET and a marked document coming *in*).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::app::{http_request, http_response};
use crate::capture::Capture;
use crate::expected::{Expected, ExpectedIncident};
use crate::scenario::{at, ts, Generated};
use crate::session::{Side, TcpSession};

/// The classification marking the leak signature looks for.
pub const MARKING: &str = "绝密★";

/// The leaked document (UTF-8). Contains `绝密★一年` exactly once.
pub const SECRET_DOCUMENT: &str = "关于二〇二六年度网络安全专项检查工作的通知\n\
绝密★一年\n\
各部门、各单位：\n\
为进一步加强网络与信息安全管理，落实数据安全保护责任，经研究决定，于二〇二六年第一季度开展网络安全专项检查。现将有关事项通知如下：\n\
一、检查范围：各部门信息系统、办公终端及数据存储设备。\n\
二、检查内容：账号权限管理、数据备份情况、外部传输记录及安全日志留存情况。\n\
三、工作要求：各单位须于一月三十一日前完成自查，并将自查报告报送信息中心。\n\
信息中心\n\
二〇二六年一月一日\n";

/// The body of the inbound (negative) response; mentions the marking once.
pub const INBOUND_BODY: &str =
    "新闻稿：本公司注意到网上流传一份标注“绝密★”字样的所谓内部文件。经核实，该文件系伪造，\
请广大用户注意甄别，不信谣、不传谣。\n";

/// The body of the benign GET's response.
const BENIGN_BODY: &str = "天气预报：北京，晴，最高气温三度，最低气温零下八度。\nWeather: Beijing, sunny, high 3C, low -8C.\n";

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

/// Builds the scenario.
pub fn build() -> Generated {
    let mut capture = Capture::new();

    // Negative 1: an ordinary outbound GET at t=1 s.
    let mut get = TcpSession::new(
        v4(10, 1, 2, 4, 40002),
        v4(203, 0, 113, 81, 80),
        at(1_000_000),
    )
    .isns(0x1000_0000, 0x2000_0000)
    .timing(50, 8_000)
    .ttls(64, 53);
    get.handshake();
    get.send(
        Side::Client,
        &http_request(
            "GET",
            "/weather/beijing",
            "203.0.113.81",
            &[("User-Agent", "curl/8.5.0"), ("Accept", "*/*")],
            b"",
        ),
    );
    get.send(
        Side::Server,
        &http_response(
            200,
            "OK",
            "text/plain; charset=utf-8",
            BENIGN_BODY.as_bytes(),
        ),
    );
    get.close(Side::Client);
    capture.extend(get.into_frames());

    // The leak: POST of the marked document at t=2 s.
    let client = v4(10, 1, 2, 3, 40001);
    let server = v4(203, 0, 113, 80, 80);
    let mut post = TcpSession::new(client, server, at(2_000_000))
        .isns(0x3000_0000, 0x4000_0000)
        .timing(50, 10_000)
        .ttls(64, 51);
    post.handshake();
    let request = http_request(
        "POST",
        "/upload",
        "203.0.113.80",
        &[
            ("User-Agent", "curl/8.5.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        SECRET_DOCUMENT.as_bytes(),
    );
    let sent = post.send(Side::Client, &request);
    post.send(
        Side::Server,
        &http_response(200, "OK", "application/json", b"{\"status\":\"ok\"}"),
    );
    post.close(Side::Client);
    let post_frames = post.into_frames();
    let post_end = post_frames.last().map_or(sent.last_ts, |f| f.ts_micros);
    capture.extend(post_frames);

    // Negative 2: an inbound marked document (10.1.2.5 downloads it) at t=3 s.
    let mut inbound = TcpSession::new(
        v4(10, 1, 2, 5, 40003),
        v4(198, 51, 100, 7, 80),
        at(3_000_000),
    )
    .isns(0x5000_0000, 0x6000_0000)
    .timing(50, 12_000)
    .ttls(64, 49);
    inbound.handshake();
    inbound.send(
        Side::Client,
        &http_request(
            "GET",
            "/press/notice.txt",
            "198.51.100.7",
            &[("User-Agent", "curl/8.5.0"), ("Accept", "*/*")],
            b"",
        ),
    );
    inbound.send(
        Side::Server,
        &http_response(
            200,
            "OK",
            "text/plain; charset=utf-8",
            INBOUND_BODY.as_bytes(),
        ),
    );
    inbound.close(Side::Client);
    capture.extend(inbound.into_frames());

    let expected = Expected {
        capture: "http-leak.pcap".into(),
        description: "Three HTTP/1.1 sessions, each with handshake, one request, a 200 OK response and FIN teardown. \
             At t=2 s 10.1.2.3:40001 POSTs /upload to 203.0.113.80:80 with a UTF-8 (text/plain; charset=utf-8) \
             Chinese notice carrying the classification marking 绝密★一年 once: one outbound classification-marking \
             leak on that flow, reported between the POST segment and the end of the session. Negatives: at t=1 s \
             an ordinary GET from 10.1.2.4 to 203.0.113.81 (no marking anywhere), and at t=3 s 10.1.2.5 downloads \
             a document containing 绝密★ from 198.51.100.7:80 - the marked data flows INTO the protected network, so \
             an outbound-only signature must stay silent."
            .into(),
        allow_extra_events: vec![],
        incidents: vec![ExpectedIncident {
            kind: Some("leak".into()),
            event: Some("leak".into()),
            signature: Some("classification-marking".into()),
            src_ip: Some(client.ip()),
            dst_ip: Some(server.ip()),
            src_port: Some(client.port()),
            dst_port: Some(server.port()),
            proto: Some("tcp".into()),
            direction: Some("outbound".into()),
            app_proto: Some("http".into()),
            min_match_count: Some(1),
            ts_min: Some(ts(sent.first_ts)),
            ts_max: Some(ts(post_end)),
            ..Default::default()
        }],
    };
    Generated { capture, expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_document_carries_the_marking_exactly_once() {
        assert_eq!(SECRET_DOCUMENT.matches(MARKING).count(), 1);
        assert_eq!(SECRET_DOCUMENT.matches("绝密★一年").count(), 1);
        assert_eq!(INBOUND_BODY.matches(MARKING).count(), 1);
        assert!(!BENIGN_BODY.contains("绝密"));
        assert!(
            (300..1400).contains(&SECRET_DOCUMENT.len()),
            "{}",
            SECRET_DOCUMENT.len()
        );
    }
}
