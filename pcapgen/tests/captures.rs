//! Properties of the generated captures, checked by decoding the pcap bytes
//! independently of the builders that wrote them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use shaobing_pcapgen::pcap::read_pcap;
use shaobing_pcapgen::scenario::{self, check_dir, Stale, BASE_MICROS};
use shaobing_pcapgen::scenarios::is_public_v4;
use shaobing_pcapgen::{check_expected, Expected};

/// A decoded frame, enough to check the scenarios.
#[derive(Debug)]
struct Decoded {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    payload: Vec<u8>,
}

/// RFC 1071 sum written independently of the generator's.
fn sum16(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut s: u64 = bytes
        .chunks(2)
        .map(|c| u64::from(c[0]) << 8 | u64::from(c[1]))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Decodes a frame and verifies every checksum; Err says which failed.
fn decode(frame: &[u8]) -> Result<Decoded, String> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if ethertype == 0x8100 {
        at += 4;
        ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    }
    at += 2;
    let ip = &frame[at..];
    let (src, dst, proto, ttl, l4, pseudo): (IpAddr, IpAddr, u8, u8, &[u8], Vec<u8>) =
        match ethertype {
            0x0800 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                if total != ip.len() {
                    return Err(format!("IPv4 total length {total} != {}", ip.len()));
                }
                if sum16(&[&ip[..ihl]]) != 0xffff {
                    return Err("bad IPv4 header checksum".into());
                }
                let l4 = &ip[ihl..];
                let mut pseudo = ip[12..20].to_vec();
                pseudo.extend_from_slice(&[0, ip[9]]);
                pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let d = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                (s.into(), d.into(), ip[9], ip[8], l4, pseudo)
            }
            0x86dd => {
                let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                if plen + 40 != ip.len() {
                    return Err("IPv6 payload length mismatch".into());
                }
                let l4 = &ip[40..];
                let mut pseudo = ip[8..40].to_vec();
                pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, ip[6]]);
                let s: [u8; 16] = ip[8..24].try_into().unwrap();
                let d: [u8; 16] = ip[24..40].try_into().unwrap();
                (
                    Ipv6Addr::from(s).into(),
                    Ipv6Addr::from(d).into(),
                    ip[6],
                    ip[7],
                    l4,
                    pseudo,
                )
            }
            other => return Err(format!("unexpected ethertype {other:#06x}")),
        };
    let (sport, dport, tcp_flags, payload) = match proto {
        6 => {
            if sum16(&[&pseudo, l4]) != 0xffff {
                return Err("bad TCP checksum".into());
            }
            let off = usize::from(l4[12] >> 4) * 4;
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4[13],
                l4[off..].to_vec(),
            )
        }
        17 => {
            if usize::from(u16::from_be_bytes([l4[4], l4[5]])) != l4.len() {
                return Err("UDP length mismatch".into());
            }
            if sum16(&[&pseudo, l4]) != 0xffff {
                return Err("bad UDP checksum".into());
            }
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                0,
                l4[8..].to_vec(),
            )
        }
        1 => {
            if sum16(&[l4]) != 0xffff {
                return Err("bad ICMP checksum".into());
            }
            (0, 0, 0, l4[8..].to_vec())
        }
        58 => {
            if sum16(&[&pseudo, l4]) != 0xffff {
                return Err("bad ICMPv6 checksum".into());
            }
            (0, 0, 0, l4[8..].to_vec())
        }
        p => return Err(format!("unexpected protocol {p}")),
    };
    Ok(Decoded {
        src,
        dst,
        proto,
        ttl,
        sport,
        dport,
        tcp_flags,
        payload,
    })
}

fn generated(name: &str) -> (Vec<u8>, Expected) {
    let files = scenario::find(name)
        .expect("scenario exists")
        .files()
        .unwrap();
    let expected: Expected = serde_json::from_slice(&files[1].bytes).unwrap();
    (files[0].bytes.clone(), expected)
}

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("pcaps")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shaobing-pcapgen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn generation_is_byte_identical_across_runs() {
    let all = scenario::all();
    let a = scenario::generate_files(&all).unwrap();
    let b = scenario::generate_files(&all).unwrap();
    assert_eq!(a.len(), all.len() * 2 + 1);
    assert!(a == b, "two generations differ");
}

#[test]
fn checked_in_captures_are_current() {
    let stale = check_dir(&pcaps_dir(), &scenario::all()).unwrap();
    assert!(
        stale.is_empty(),
        "stale files in pcaps/: {stale:?}; run `cargo run -p shaobing-pcapgen -- --out pcaps`"
    );
}

#[test]
fn every_frame_decodes_with_correct_checksums() {
    // Tunnelled captures are checked layer by layer by the tunnel module's
    // tests and below (`tunnel_leaks_...`).
    for s in scenario::all()
        .into_iter()
        .filter(|s| !s.name.starts_with("tunnel-"))
    {
        let (pcap, _) = generated(s.name);
        let records = read_pcap(&pcap).unwrap();
        assert!(!records.is_empty());
        let mut last = i64::MIN;
        for (i, r) in records.iter().enumerate() {
            assert!(
                r.ts_micros >= last,
                "{}: record {} goes back in time",
                s.name,
                i + 1
            );
            last = r.ts_micros;
            assert_eq!(r.orig_len as usize, r.data.len());
            if let Err(e) = decode(r.data) {
                panic!("{}: record {}: {e}", s.name, i + 1);
            }
        }
    }
}

#[test]
fn syn_flood_has_the_specified_rate_window_and_shape() {
    let (pcap, expected) = generated("syn-flood");
    assert!(
        pcap.len() < 4_000_000,
        "syn-flood.pcap is {} bytes",
        pcap.len()
    );
    let records = read_pcap(&pcap).unwrap();
    let target: IpAddr = Ipv4Addr::new(10, 0, 0, 10).into();
    let mut flood = Vec::new();
    let mut other_per_sec = [0u32; 15];
    for r in &records {
        let d = decode(r.data).unwrap();
        let rel = r.ts_micros - BASE_MICROS;
        assert!(
            (0..15_000_000).contains(&rel),
            "frame outside the 15 s capture at +{rel} us"
        );
        if d.dst == target && d.dport == 80 && d.proto == 6 {
            assert_eq!(d.tcp_flags, 0x02, "flood flags must be exactly SYN");
            assert_eq!(r.data.len(), 54);
            assert!((240..=250).contains(&d.ttl), "ttl {}", d.ttl);
            assert!(d.payload.is_empty());
            match d.src {
                IpAddr::V4(v4) => assert!(is_public_v4(v4), "spoofed source {v4} is not public"),
                IpAddr::V6(_) => panic!("IPv6 flood source"),
            }
            flood.push((rel, d.src, d.sport));
        } else {
            other_per_sec[(rel / 1_000_000) as usize] += 1;
        }
    }
    assert_eq!(flood.len(), 50_000);
    assert_eq!(flood[0].0, 3_000_000);
    assert_eq!(flood[flood.len() - 1].0, 4_999_960);
    assert!(
        flood.windows(2).all(|w| w[1].0 - w[0].0 == 40),
        "flood packets are not 40 us apart"
    );
    let sources: std::collections::HashSet<_> = flood.iter().map(|f| f.1).collect();
    assert!(
        sources.len() > 49_000,
        "only {} distinct sources",
        sources.len()
    );
    let ports: std::collections::HashSet<_> = flood.iter().map(|f| f.2).collect();
    assert!(
        ports.len() > 30_000,
        "only {} distinct source ports",
        ports.len()
    );
    assert!(
        other_per_sec.iter().all(|&n| n > 0 && n < 200),
        "background per second: {other_per_sec:?}"
    );

    assert_eq!(expected.incidents.len(), 2);
    assert_eq!(
        expected.incidents[0].ts_min.unwrap().micros(),
        BASE_MICROS + 3_000_000
    );
    assert_eq!(
        expected.incidents[1].ts_max.unwrap().micros(),
        BASE_MICROS + 15_000_000
    );
}

#[test]
fn http_leak_post_carries_the_marking_outbound_within_the_expected_window() {
    let (pcap, expected) = generated("http-leak");
    let records = read_pcap(&pcap).unwrap();
    let leak = &expected.incidents[0];
    let (lo, hi) = (leak.ts_min.unwrap().micros(), leak.ts_max.unwrap().micros());
    let marking = "绝密★".as_bytes();
    let has = |p: &[u8]| p.windows(marking.len()).any(|w| w == marking);
    let mut marked = Vec::new();
    for r in &records {
        let d = decode(r.data).unwrap();
        if has(&d.payload) {
            marked.push((r.ts_micros, d));
        }
    }
    assert_eq!(
        marked.len(),
        2,
        "one outbound POST and one inbound response carry the marking"
    );
    let (post_ts, post) = &marked[0];
    assert_eq!(post.src, leak.src_ip.unwrap());
    assert_eq!((post.sport, post.dport), (40001, 80));
    assert!(
        (lo..=hi).contains(post_ts),
        "POST at {post_ts} outside [{lo}, {hi}]"
    );
    let text = String::from_utf8(post.payload.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /upload HTTP/1.1\r\n"));
    assert!(head.contains("Content-Type: text/plain; charset=utf-8"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    assert_eq!(body.matches("绝密★一年").count(), 1);
    let (_, inbound) = &marked[1];
    assert_eq!(inbound.src, "198.51.100.7".parse::<IpAddr>().unwrap());
    assert_eq!(inbound.dst, "10.1.2.5".parse::<IpAddr>().unwrap());
}

#[test]
fn an_ideal_sensor_output_passes_the_checked_in_expectations() {
    // Build the incidents a perfect sensor would emit from each expected
    // entry (ts at the lower bound), add an allowed extra, and check.
    for s in scenario::all() {
        let text = std::fs::read_to_string(pcaps_dir().join(s.expected_name())).unwrap();
        let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut actual = Vec::new();
        for e in exp["incidents"].as_array().unwrap() {
            let mut inc = e.as_object().unwrap().clone();
            let ts = inc.remove("ts_min").unwrap();
            inc.remove("ts_max");
            if let Some(n) = inc.remove("min_match_count") {
                inc.insert("match_count".into(), n);
            }
            inc.insert("ts".into(), ts);
            inc.insert("severity".into(), "high".into());
            actual.push(serde_json::Value::Object(inc));
        }
        for extra in exp["allow_extra_events"].as_array().unwrap() {
            let mut inc = actual[0].clone();
            inc["event"] = extra.clone();
            actual.push(inc);
        }
        assert_eq!(check_expected(&text, &actual), Ok(()), "{}", s.name);
        actual.pop();
        if actual.len() > 1 {
            actual.pop();
            assert!(
                check_expected(&text, &actual).is_err(),
                "{}: a missing incident passed",
                s.name
            );
        }
    }
}

#[test]
fn cli_check_names_missing_and_changed_files() {
    let exe = env!("CARGO_BIN_EXE_shaobing-pcapgen");
    let dir = temp_dir("cli");
    let run = |args: &[&str]| Command::new(exe).args(args).output().unwrap();
    let dir_s = dir.to_str().unwrap();

    let out = run(&["--check", "--out", dir_s, "http-leak"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http-leak.pcap: missing"), "{err}");

    assert!(run(&["--out", dir_s, "http-leak"]).status.success());
    assert!(run(&["--check", "--out", dir_s, "http-leak"])
        .status
        .success());

    std::fs::write(dir.join("http-leak.expected.json"), "{}").unwrap();
    let out = run(&["--check", "--out", dir_s, "http-leak"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http-leak.expected.json: differs"), "{err}");
    assert!(!err.contains("http-leak.pcap"), "{err}");

    let out = run(&["--out", dir_s, "no-such-scenario"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));

    let list = run(&["--list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("syn-flood"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_dir_reports_a_missing_directory_as_missing_files() {
    let dir = temp_dir("missing");
    let s = scenario::find("http-leak").unwrap();
    let stale = check_dir(&dir, &[s]).unwrap();
    assert_eq!(stale[0], Stale::Missing("http-leak.pcap".into()));
    assert_eq!(stale.len(), 3);
}

#[test]
fn tunnel_leaks_frames_all_run_between_protected_tunnel_endpoints() {
    let (pcap, expected) = generated("tunnel-leaks");
    let records = read_pcap(&pcap).unwrap();
    let marking = "绝密★".as_bytes();
    let mut marked = 0;
    for (i, r) in records.iter().enumerate() {
        let f = r.data;
        assert_eq!(r.orig_len as usize, f.len());
        match u16::from_be_bytes([f[12], f[13]]) {
            // MPLS and PPPoE: no outer IP header.
            0x8847 | 0x8864 => {}
            0x86dd => {
                let ip = &f[14..];
                assert_eq!(
                    usize::from(u16::from_be_bytes([ip[4], ip[5]])) + 40,
                    ip.len()
                );
                assert_eq!(
                    &ip[8..12],
                    &[0xfd, 0, 0x02, 0x55],
                    "record {}: outer source",
                    i + 1
                );
                assert_eq!(
                    &ip[24..28],
                    &[0xfd, 0, 0x02, 0x55],
                    "record {}: outer destination",
                    i + 1
                );
                assert!(matches!(ip[6], 4 | 17), "next header {}", ip[6]);
            }
            0x0800 => {
                let ip = &f[14..];
                assert_eq!(
                    sum16(&[&ip[..20]]),
                    0xffff,
                    "record {}: IPv4 checksum",
                    i + 1
                );
                assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
                assert_eq!(&ip[12..14], &[10, 255], "record {}: outer source", i + 1);
                assert_eq!(
                    &ip[16..18],
                    &[10, 255],
                    "record {}: outer destination",
                    i + 1
                );
                assert!(matches!(ip[9], 4 | 17 | 41 | 47), "protocol {}", ip[9]);
            }
            other => panic!("record {}: outer ethertype {other:#06x}", i + 1),
        }
        if f.windows(marking.len()).any(|w| w == marking) {
            marked += 1;
        }
    }
    // One POST segment per leak and per trap.
    assert_eq!(marked, expected.incidents.len() + 2);
    assert_eq!(expected.incidents.len(), 15);
    for inc in &expected.incidents {
        let src = inc.src_ip.unwrap().to_string();
        assert!(!src.starts_with("10.255."), "{src}");
    }
}

#[test]
fn checked_in_tunnel_flood_expected_files_are_current() {
    let dir = pcaps_dir().join(shaobing_pcapgen::scenarios::tunnels::EXPECTED_SUBDIR);
    let stale = shaobing_pcapgen::scenarios::tunnels::check_expected_dir(&dir).unwrap();
    assert!(
        stale.is_empty(),
        "stale files in {}: {stale:?}; run `cargo run -p shaobing-pcapgen -- --out pcaps`",
        dir.display()
    );
}
