//! Writes a large payload-heavy capture for the leak detector benchmark
//! (never checked in): `bench_leak OUT.pcap MEGABYTES`.
//!
//! Mostly HTTP and SMTP, as a government network's egress carries:
//! form posts (URL-encoded), JSON API calls, text uploads in UTF-8 and GBK,
//! HTML pages (half gzip-compressed, some chunked) coming back, and mails
//! with base64 attachments; about one session in fifty plants a marking,
//! an id or a card. Every session is a full TCP conversation (handshake,
//! MSS-sized segments, ACKs, FIN teardown) from an internal client to an
//! outside server. Sessions follow each other in capture time, so the file
//! is streamed and its size does not bound memory. Deterministic: the same
//! arguments give the same file.

use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use shaobing_pcapgen::app::{http_request, http_response};
use shaobing_pcapgen::payload::{card, chunked, form, gbk, gzip, mime_mail, resident_id};
use shaobing_pcapgen::rng::Rng;
use shaobing_pcapgen::scenario::at;
use shaobing_pcapgen::session::{Side, TcpSession};
use shaobing_pcapgen::PcapWriter;

const PROSE: [&str; 6] = [
    "各部门要高度重视网络安全工作，切实落实主体责任，定期开展风险评估和隐患排查。",
    "会议听取了关于第三季度信息化建设进展情况的汇报，并对下一阶段重点任务作出部署。",
    "请各单位于本周五前将统计报表报送综合处，联系电话见附件通讯录。",
    "The quarterly report covers procurement, budget execution and staffing in all departments.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.",
    "成功没有什么秘密，只有坚持。今年共完成项目一百二十个，同比增长百分之十五。",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 256);
    while s.len() < bytes {
        let p: &&str = rng.pick(&PROSE);
        s.push_str(p);
        // Ordinary numbers: dates, amounts, order numbers.
        s.push_str(&format!(
            " 编号{} 金额{}.{:02} {}-{:02}-{:02}\n",
            rng.range(100_000, 999_999_999),
            rng.range(1, 100_000),
            rng.range(0, 99),
            rng.range(2000, 2026),
            rng.range(1, 12),
            rng.range(1, 28)
        ));
    }
    s
}

fn html(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>门户</title></head><body>\n",
    );
    while s.len() < bytes {
        s.push_str(&format!(
            "<div class=\"item\"><a href=\"/news/{}.html\">{}</a><span>{}</span></div>\n",
            rng.range(1, 1_000_000),
            *rng.pick(&PROSE[..]),
            rng.range(1, 9999)
        ));
    }
    s.push_str("</body></html>\n");
    s
}

fn plant(rng: &mut Rng) -> String {
    match rng.range(0, 3) {
        0 => "\n机密★一年\n".to_string(),
        1 => format!(" 身份证 {} ", resident_id("11010519491231002")),
        _ => format!(" 卡号 {} ", card("622202100012345")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(mb)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bench_leak OUT.pcap MEGABYTES");
        return ExitCode::FAILURE;
    };
    match write(out, mb * 1_000_000) {
        Ok((sessions, bytes)) => {
            eprintln!("bench_leak: wrote {out}: {sessions} sessions, {bytes} bytes of frames");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_leak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &str, target: u64) -> std::io::Result<(u64, u64)> {
    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut rng = Rng::new(0x1ea4);
    let mut now = at(0);
    let mut bytes = 0u64;
    let mut sessions = 0u64;
    while bytes < target {
        sessions += 1;
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(
                10,
                rng.range_u8(1, 250),
                rng.range_u8(1, 250),
                rng.range_u8(1, 250),
            )),
            rng.range_u16(20_000, 60_000),
        );
        let server_ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.range_u8(1, 250)));
        let planted = rng.range(0, 50) == 0;
        let kind = rng.range(0, 10);
        let smtp = kind >= 8;
        let server = SocketAddr::new(server_ip, if smtp { 25 } else { 80 });
        let mut s = TcpSession::new(client, server, now)
            .isns(rng.next_u32(), rng.next_u32())
            .timing(10, 200);
        s.handshake();
        let host = server_ip.to_string();
        if smtp {
            let mut body = {
                let n = rng.range(20_000, 120_000) as usize;
                text(&mut rng, n)
            };
            if planted {
                body.push_str(&plant(&mut rng));
            }
            let attachment = gbk(&body);
            let mail = mime_mail(
                "a@example.gov.cn",
                "b@example.net",
                "report",
                "请查收。",
                "report.txt",
                &attachment,
            );
            for line in [
                "EHLO pc.example.gov.cn\r\n",
                "MAIL FROM:<a@example.gov.cn>\r\n",
                "RCPT TO:<b@example.net>\r\n",
                "DATA\r\n",
            ] {
                s.send(Side::Client, line.as_bytes());
                s.send(Side::Server, b"250 OK\r\n");
            }
            let mut data = mail;
            data.extend_from_slice(b".\r\n");
            s.send(Side::Client, &data);
            s.send(Side::Server, b"250 Queued\r\n");
        } else {
            // Request: form post, JSON, or text upload (UTF-8 or GBK).
            let mut payload = {
                let n = rng.range(2_000, 30_000) as usize;
                text(&mut rng, n)
            };
            if planted {
                payload.push_str(&plant(&mut rng));
            }
            let req = match kind {
                0..=2 => http_request(
                    "POST",
                    "/submit",
                    &host,
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    &form(&[("title", "周报"), ("content", &payload)]),
                ),
                3 | 4 => http_request(
                    "POST",
                    "/api/v1/records",
                    &host,
                    &[("Content-Type", "application/json")],
                    serde_json::json!({"content": payload, "id": rng.next_u32()})
                        .to_string()
                        .as_bytes(),
                ),
                5 => http_request(
                    "POST",
                    "/upload",
                    &host,
                    &[("Content-Type", "text/plain; charset=gbk")],
                    &gbk(&payload),
                ),
                _ => http_request(
                    "GET",
                    &format!("/news/{}.html?q=%E9%80%9A%E7%9F%A5", rng.next_u32()),
                    &host,
                    &[],
                    b"",
                ),
            };
            s.send(Side::Client, &req);
            let page = {
                let n = rng.range(10_000, 80_000) as usize;
                html(&mut rng, n)
            };
            let resp = match rng.range(0, 3) {
                0 => {
                    let z = gzip(page.as_bytes());
                    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", z.len()).into_bytes();
                    r.extend_from_slice(&z);
                    r
                }
                1 => {
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    r.extend_from_slice(&chunked(page.as_bytes(), 8192));
                    r
                }
                _ => http_response(200, "OK", "text/html; charset=utf-8", page.as_bytes()),
            };
            s.send(Side::Server, &resp);
        }
        s.close(Side::Client);
        let end = s.now();
        for f in s.frames() {
            bytes += f.data.len() as u64;
            w.write_frame(f.ts_micros, &f.data)?;
        }
        now = end + 100;
    }
    w.finish()?;
    Ok((sessions, bytes))
}
