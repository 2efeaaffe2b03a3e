//! The leak detector on the generated leak captures (`pcaps/leak-*.pcap`):
//! expected incidents, exact match counts, and excerpts that never hold
//! the secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

fn replay(name: &str) -> Vec<Value> {
    replay_with_summary(name).0
}

/// The incidents of a replay and its stderr (the summary line).
fn replay_with_summary(name: &str) -> (Vec<Value>, String) {
    let pcap = pcaps().join(format!("{name}.pcap"));
    let o = Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
        .arg("replay")
        .arg(&pcap)
        .env("SHAOBING_LOG", "info")
        .output()
        .expect("run shaobing-sensor");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "replay failed: {stderr}");
    let got = incidents(&o.stdout);
    let expected = std::fs::read_to_string(pcaps().join(format!("{name}.expected.json"))).unwrap();
    if let Err(report) = shaobing_pcapgen::check_expected(&expected, &got) {
        panic!("{name}: {report}\nactual: {got:#?}");
    }
    // Per-signature counters are printed at exit.
    assert!(
        stderr.contains("matches/incidents by signature: classification-marking="),
        "{stderr}"
    );
    for i in &got {
        let inc: shaobing_wire::Incident = serde_json::from_value(i.clone()).unwrap();
        inc.validate().unwrap();
    }
    (got, stderr.into_owned())
}

/// The incidents a replay printed, one JSON object a line.
fn incidents(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn excerpts(got: &[Value]) -> Vec<String> {
    got.iter()
        .map(|i| i["excerpt"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn markings_ids_and_cards_are_found_through_every_encoding() {
    let got = replay("leak-encodings");
    let by_sig = |sig: &str| got.iter().filter(|i| i["signature"] == sig).count();
    assert_eq!(by_sig("classification-marking"), 5);
    let ids = got
        .iter()
        .find(|i| i["signature"] == "cn-resident-id")
        .unwrap();
    let cards = got.iter().find(|i| i["signature"] == "bank-card").unwrap();
    // Three rows in the gzip upload: one incident each, counting all three.
    assert_eq!(ids["match_count"], 3);
    assert_eq!(cards["match_count"], 3);
    let smtp = got.iter().find(|i| i["app_proto"] == "smtp").unwrap();
    assert_eq!(smtp["dst_port"], 25);
}

#[test]
fn excerpts_never_hold_the_secret() {
    let got = replay("leak-encodings");
    for e in excerpts(&got) {
        assert!(!e.contains("11010519491231002X"), "{e}");
        assert!(
            !e.contains("绝密") && !e.contains("机密") && !e.contains("秘密"),
            "{e}"
        );
        // No run of 8 or more digits survives masking.
        let mut run = 0;
        for c in e.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            assert!(run < 8, "{e}");
        }
    }
}

#[test]
fn split_reordered_and_retransmitted_markings_are_counted_once() {
    let got = replay("leak-streams");
    assert_eq!(got.len(), 4);
    for i in &got {
        assert_eq!(i["match_count"], 1, "{i}");
    }
}

#[test]
fn an_overlapping_copy_never_replaces_the_first_bytes() {
    let got = replay("leak-streams");
    // 10.3.0.5 sent benign bytes first and the marking in a later copy.
    assert!(got.iter().all(|i| i["src_ip"] != "10.3.0.5"));
    assert!(got.iter().any(|i| i["src_ip"] == "10.3.0.4"));
}

fn sensor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
        .args(args)
        .output()
        .expect("run shaobing-sensor")
}

#[test]
fn signatures_check_names_file_line_and_column_of_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[signature]]\nid = \"x\"\nname = \"X\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"loud\"\npatterns = [\"\"]\nencodings = [\"ebcdic\"]\n",
    )
    .unwrap();
    let o = sensor(&["signatures", "check", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let at = format!("{}:", bad.display());
    let located: Vec<&str> = err.lines().filter(|l| l.contains(&at)).collect();
    assert!(located.len() >= 2, "{err}");
    for l in located {
        let rest = &l[l.find(&at).unwrap() + at.len()..];
        let mut parts = rest.splitn(3, ':');
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{l}");
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{l}");
    }
}

#[test]
fn signatures_test_reports_per_signature_and_the_baseline_difference() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.toml");
    let old = dir.path().join("old.toml");
    let sig = |id: &str, pattern: &str| {
        format!(
            "[[signature]]\nid = \"{id}\"\nname = \"{id}\"\ndescription = \"t\"\ncategory = \"classified\"\nseverity = \"high\"\npatterns = [\"{pattern}\"]\nencodings = [\"utf-8\", \"gbk\", \"utf-16le\"]\n"
        )
    };
    std::fs::write(&old, sig("marking-old", "机密★")).unwrap();
    std::fs::write(&new, sig("marking-new", "绝密★")).unwrap();
    let pcap = pcaps().join("leak-encodings.pcap");
    let o = sensor(&[
        "signatures",
        "test",
        new.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--baseline",
        old.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 绝密★: the UTF-16 body (10.2.0.13) and the mail attachment (10.2.0.16).
    assert!(out.contains("marking-new          2"), "{out}");
    // 机密★: the GBK body (10.2.0.11) and the form (10.2.0.14).
    assert!(out.contains("2 added, 2 removed"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("+ ") && l.contains("10.2.0.16:41006")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("- ") && l.contains("10.2.0.14:41004")),
        "{out}"
    );
}

#[test]
fn documents_escapes_and_evasions_are_found_and_traps_stay_silent() {
    let got = replay("leak-documents");
    let from = |ip: &str| got.iter().filter(|i| i["src_ip"] == ip).count();
    // Ten leaks, one per flow; no incident from the TLS, random-binary or
    // inbound-download traps (10.4.0.10-12).
    assert_eq!(got.len(), 10, "{got:#?}");
    for trap in ["10.4.0.10", "10.4.0.11", "10.4.0.12"] {
        assert_eq!(from(trap), 0, "{trap}");
    }
    let upload = got.iter().find(|i| i["src_ip"] == "10.4.0.1").unwrap();
    assert_eq!(upload["signature"], "cn-resident-id");
    assert_eq!(upload["match_count"], 2);
    let zipped = got.iter().find(|i| i["src_ip"] == "10.4.0.3").unwrap();
    assert_eq!(zipped["app_proto"], "tcp");
    // The docx mailed in BDAT chunks cut mid-line (CHUNKING).
    let chunked = got.iter().find(|i| i["src_ip"] == "10.4.0.13").unwrap();
    assert_eq!(chunked["signature"], "classification-marking");
    assert_eq!(chunked["app_proto"], "smtp");
    for e in excerpts(&got) {
        assert!(!e.contains("19491231") && !e.contains("机密"), "{e}");
    }
}

#[test]
fn pdf_text_is_found_through_content_streams_and_to_unicode_cmaps() {
    let (got, summary) = replay_with_summary("leak-pdf");
    // Three outbound PDFs read, each with one ToUnicode CMap, none cut
    // short (the inbound download is out of every signature's scope).
    for counter in [
        "content_pdf_files=3 ",
        "content_pdf_cmaps=3 ",
        "content_pdf_errors=0 ",
    ] {
        assert!(summary.contains(counter), "{counter}: {summary}");
    }
    let from = |ip: &str| got.iter().filter(|i| i["src_ip"] == ip).count();
    // Three leaks, one per flow; no incident from the inbound download.
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(from("10.5.0.4"), 0);
    let upload = got.iter().find(|i| i["src_ip"] == "10.5.0.1").unwrap();
    assert_eq!(upload["signature"], "classification-marking");
    assert_eq!(upload["app_proto"], "http");
    let mailed = got.iter().find(|i| i["src_ip"] == "10.5.0.2").unwrap();
    assert_eq!(mailed["signature"], "cn-resident-id");
    assert_eq!(mailed["match_count"], 2);
    let raw = got.iter().find(|i| i["src_ip"] == "10.5.0.3").unwrap();
    assert_eq!(raw["app_proto"], "tcp");
    for e in excerpts(&got) {
        assert!(
            !e.contains("19491231") && !e.contains("机密") && !e.contains("绝密"),
            "{e}"
        );
    }
}

#[test]
fn content_limits_from_the_config_file_apply_and_are_counted() {
    let dir = std::env::temp_dir().join(format!("shaobing-content-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sensor.toml");
    // Depth 1: the docx inside a ZIP (10.4.0.3) is a member not opened;
    // documents sent as they are (the mailed docx) are still read.
    let run = |toml: &str| {
        std::fs::write(&cfg, toml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
            .arg("replay")
            .arg("--config")
            .arg(&cfg)
            .arg(pcaps().join("leak-documents.pcap"))
            .output()
            .expect("run shaobing-sensor")
    };
    let o = run("[leak.content]\nmax_depth = 1\n");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "replay failed: {stderr}");
    let got = incidents(&o.stdout);
    let from = |ip: &str| got.iter().filter(|i| i["src_ip"] == ip).count();
    assert_eq!(from("10.4.0.3"), 0, "{got:#?}");
    assert_eq!(from("10.4.0.2"), 1, "{got:#?}");
    assert_eq!(got.len(), 9, "{got:#?}");
    assert!(stderr.contains("content_depth_capped=1 "), "{stderr}");
    // A bad value is refused with the file and the key.
    let o = run("[leak.content]\nmax_depth = 0\n");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("sensor.toml") && stderr.contains("leak.content.max_depth"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
