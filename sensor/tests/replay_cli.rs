//! The `shaobing-sensor replay` command line, run as a process on real
//! capture files: the project's generated captures and hand-made bad ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
}

fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

fn run(args: &[&str]) -> Output {
    sensor().args(args).output().expect("run shaobing-sensor")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn incidents(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn replay_and_check(name: &str) -> Vec<serde_json::Value> {
    let pcap = pcaps().join(format!("{name}.pcap"));
    let o = run(&["replay", pcap.to_str().unwrap()]);
    assert!(o.status.success(), "replay failed: {}", stderr(&o));
    let got = incidents(&o);
    let expected = std::fs::read_to_string(pcaps().join(format!("{name}.expected.json"))).unwrap();
    if let Err(report) = shaobing_pcapgen::check_expected(&expected, &got) {
        panic!("{name}: {report}\nactual: {got:#?}");
    }
    for i in &got {
        let inc: shaobing_wire::Incident = serde_json::from_value(i.clone()).unwrap();
        inc.validate().unwrap();
    }
    got
}

#[test]
fn syn_flood_capture_gives_its_expected_incidents() {
    let got = replay_and_check("syn-flood");
    let started = got.iter().find(|i| i["event"] == "attack_started").unwrap();
    // An attack starts when the one-second rate reaches the threshold.
    assert!(started["pps"].as_u64().unwrap() >= 20_000);
    // Every spoofed source sent one SYN: none may be reported as a heavy hitter.
    assert_eq!(started["top_sources"], serde_json::json!([]));
}

#[test]
fn http_leak_capture_gives_its_expected_incidents() {
    let got = replay_and_check("http-leak");
    let leak = &got[0];
    assert!(leak["community_id"].as_str().unwrap().starts_with("1:"));
}

#[test]
fn leak_incidents_never_carry_the_marking_itself() {
    let pcap = pcaps().join("http-leak.pcap");
    let o = run(&["replay", pcap.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("\"excerpt\""), "{out}");
    assert!(
        !out.contains("绝密★"),
        "the secret leaked into the incident: {out}"
    );
}

#[test]
fn several_files_are_merged_in_capture_time_order() {
    let a = pcaps().join("syn-flood.pcap");
    let b = pcaps().join("http-leak.pcap");
    let both = run(&["replay", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(both.status.success(), "{}", stderr(&both));
    let mut got = incidents(&both);
    let mut separate = incidents(&run(&["replay", a.to_str().unwrap()]));
    separate.extend(incidents(&run(&["replay", b.to_str().unwrap()])));
    let key = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    got.sort_by_key(key);
    separate.sort_by_key(key);
    assert_eq!(got, separate);
    assert!(stderr(&both).contains("replayed 2 file(s)"));
}

#[test]
fn replaying_twice_gives_identical_output() {
    let a = pcaps().join("syn-flood.pcap");
    let one = run(&["replay", a.to_str().unwrap()]);
    let two = run(&["replay", a.to_str().unwrap()]);
    assert_eq!(one.stdout, two.stdout);
    assert!(!one.stdout.is_empty());
}

#[test]
fn summary_line_reports_packets_bytes_and_rates() {
    let a = pcaps().join("http-leak.pcap");
    let o = run(&["replay", a.to_str().unwrap()]);
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.contains("replayed"))
        .expect("summary line");
    for part in ["packets", "bytes in", "packets/s", "Gbit/s", "incidents"] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}

#[test]
fn no_detect_decodes_but_reports_nothing() {
    let a = pcaps().join("syn-flood.pcap");
    let o = run(&["replay", "--no-detect", a.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
}

// ---- bad input -------------------------------------------------------------

/// A classic pcap with `linktype` and the given (ts_usec, frame) records.
fn pcap_bytes(linktype: u32, frames: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&1_767_225_600u32.to_le_bytes());
        b.extend_from_slice(&(i as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

/// A raw IPv4 TCP segment 10.9.9.9:40000 -> 203.0.113.9:80 with `payload`.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let total = (40 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 9, 9, 9, 203, 0, 113, 9]);
    p.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    p.extend_from_slice(payload);
    p
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let o = run(&["replay", "/nonexistent/dir/x.pcap"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/dir/x.pcap"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_file_that_is_not_a_capture_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "notes.pcap",
        b"these are not packets, just some text\n",
    );
    let o = run(&["replay", p.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("notes.pcap") && err.contains("cannot open"),
        "{err}"
    );
}

#[test]
fn corruption_in_the_middle_is_an_error_naming_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let f = ipv4_tcp(b"hello");
    let mut b = pcap_bytes(101, &[&f, &f, &f]);
    // Record 2's caplen (after the 24-byte file header, one 16+45-byte
    // record, then ts_sec and ts_usec) becomes absurd.
    let at = 24 + 16 + f.len() + 8;
    b[at..at + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let p = write(dir.path(), "corrupt.pcap", &b);
    let o = run(&["replay", p.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("corrupt.pcap") && err.contains("corrupt capture after record 1"),
        "{err}"
    );
}

#[test]
fn truncated_last_record_is_a_warning_and_earlier_records_count() {
    let dir = tempfile::tempdir().unwrap();
    let f = ipv4_tcp(b"hello");
    let b = pcap_bytes(101, &[&f, &f, &f]);
    let p = write(dir.path(), "cut.pcap", &b[..b.len() - 10]);
    let o = run(&["replay", p.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("cut.pcap") && err.contains("truncated"),
        "{err}"
    );
    assert!(err.contains(": 2 packets"), "{err}");
}

#[test]
fn unsupported_link_type_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "usb.pcap", &pcap_bytes(189, &[b"\x00\x01"]));
    let o = run(&["replay", p.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("usb.pcap") && err.contains("unsupported link type 189"),
        "{err}"
    );
}

/// A leak payload under each supported link-layer framing.
#[test]
fn leak_is_found_under_every_supported_link_type() {
    let dir = tempfile::tempdir().unwrap();
    let ip = ipv4_tcp("POST /x HTTP/1.1\r\n\r\n文件 绝密★ 内容".as_bytes());
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]); // one VLAN tag
    eth.extend_from_slice(&ip);
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![0x08, 0x00];
    sll2.extend_from_slice(&[0u8; 18]);
    sll2.extend_from_slice(&ip);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ip);
    for (linktype, frame) in [
        (1u32, &eth),
        (113, &sll),
        (276, &sll2),
        (101, &ip),
        (0, &null),
    ] {
        let p = write(
            dir.path(),
            &format!("lt{linktype}.pcap"),
            &pcap_bytes(linktype, &[frame]),
        );
        let o = run(&["replay", p.to_str().unwrap()]);
        assert!(o.status.success(), "linktype {linktype}: {}", stderr(&o));
        let got = incidents(&o);
        assert_eq!(got.len(), 1, "linktype {linktype}: {got:?}");
        assert_eq!(got[0]["signature"], "classification-marking");
        assert_eq!(got[0]["direction"], "outbound");
    }
}

/// A minimal pcapng file: section header, one Ethernet interface, and one
/// enhanced packet block per frame (microsecond timestamps).
fn pcapng_bytes(frames: &[&[u8]]) -> Vec<u8> {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend(std::iter::repeat_n(0u8, pad));
        b.extend_from_slice(&len.to_le_bytes());
        b
    }
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    out.extend(block(1, &idb));
    for f in frames {
        let ts: u64 = 1_767_225_600_000_000;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        out.extend(block(6, &epb));
    }
    out
}

#[test]
fn pcapng_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x08, 0x00]);
    eth.extend_from_slice(&ipv4_tcp("TOP SECRET//NOFORN plans".as_bytes()));
    let p = write(dir.path(), "one.pcapng", &pcapng_bytes(&[&eth]));
    let o = run(&["replay", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = incidents(&o);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["ts"], "2026-01-01T00:00:00.000000Z");
}

/// Every capture checked in under `pcaps/` (`NAME.pcap` with its
/// `NAME.expected.json`), so a new generated scenario is replayed and
/// checked without a test of its own.
#[test]
fn every_checked_in_capture_gives_its_expected_incidents() {
    let mut names: Vec<String> = std::fs::read_dir(pcaps())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".pcap").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 5,
        "expected the generated captures in pcaps/: {names:?}"
    );
    for name in &names {
        replay_and_check(name);
    }
}
