//! Every volumetric scenario of the generator, replayed through the
//! `shaobing-sensor replay` command line with the default configuration.
//!
//! The captures are generated at test time into a temporary folder (they
//! are tens of megabytes in all, so they are not checked in); the expected
//! incidents come from the recipe and are the files checked in under
//! `pcaps/volumetric/` (a pcapgen test keeps those current).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use shaobing_pcapgen::scenarios::floods::{self, FLOOD_START};

/// Generates scenario `name`, replays it and checks its expected incidents;
/// returns the incidents.
fn replay_scenario(name: &str) -> Vec<Value> {
    let s = floods::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let dir = tempfile::tempdir().unwrap();
    floods::write_dir(dir.path(), &[s]).unwrap();
    let pcap = dir.path().join(s.pcap_name());
    let out = Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
        .arg("replay")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = std::fs::read_to_string(dir.path().join(s.expected_name())).unwrap();
    if let Err(report) = shaobing_pcapgen::check_expected(&expected, &got) {
        panic!("{name}: {report}\nactual: {got:#?}");
    }
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps/volumetric")
        .join(s.expected_name());
    assert_eq!(
        std::fs::read_to_string(&checked_in).unwrap_or_default(),
        expected,
        "{} is stale: regenerate with `cargo run -p shaobing-pcapgen -- --out pcaps`",
        checked_in.display()
    );
    for i in &got {
        let inc: shaobing_wire::Incident = serde_json::from_value(i.clone()).unwrap();
        inc.validate().unwrap();
        if i["event"] == "attack_started" {
            let t: shaobing_wire::Timestamp = serde_json::from_value(i["ts"].clone()).unwrap();
            let latency = t.micros() - shaobing_pcapgen::scenario::at(FLOOD_START);
            eprintln!(
                "{name}: {} on {} started {latency} us after the flood's first packet",
                i["vector"], i["dst_ip"]
            );
        }
    }
    got
}

/// Attack ids of the attacks started, one per (host, vector).
fn attack_ids(got: &[Value]) -> std::collections::BTreeSet<String> {
    got.iter()
        .filter(|i| i["event"] == "attack_started")
        .map(|i| i["attack_id"].as_str().unwrap().to_string())
        .collect()
}

macro_rules! vector_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                let got = replay_scenario($name);
                assert_eq!(attack_ids(&got).len(), 1);
                let started = got.iter().find(|i| i["event"] == "attack_started").unwrap();
                // Evidence an analyst can act on.
                for key in ["distinct_sources", "top_dst_ports", "packet_size", "ttl", "samples"] {
                    assert!(!started[key].is_null(), "{key} missing: {started:#}");
                }
                assert!(!started["samples"].as_array().unwrap().is_empty());
                let ended = got.iter().find(|i| i["event"] == "attack_ended").unwrap();
                assert!(ended["packets"].as_u64().unwrap() >= 40_000, "{ended:#}");
                assert!(ended["duration_s"].as_f64().unwrap() >= 2.0);
            }
        )*
    };
}

vector_tests! {
    syn_flood_is_detected => "flood-syn_flood",
    ack_flood_is_detected => "flood-ack_flood",
    rst_flood_is_detected => "flood-rst_flood",
    tcp_flag_abuse_is_detected => "flood-tcp_flag_abuse",
    udp_flood_is_detected => "flood-udp_flood",
    icmp_flood_is_detected => "flood-icmp_flood",
    ip_fragment_flood_is_detected => "flood-ip_fragment_flood",
    dns_amplification_is_detected => "flood-dns_amplification",
    ntp_amplification_is_detected => "flood-ntp_amplification",
    ssdp_amplification_is_detected => "flood-ssdp_amplification",
    memcached_amplification_is_detected => "flood-memcached_amplification",
    cldap_amplification_is_detected => "flood-cldap_amplification",
    chargen_amplification_is_detected => "flood-chargen_amplification",
    snmp_amplification_is_detected => "flood-snmp_amplification",
    wsd_amplification_is_detected => "flood-wsd_amplification",
    coap_amplification_is_detected => "flood-coap_amplification",
    total_volume_is_detected_when_no_vector_dominates => "flood-total_volume",
}

#[test]
fn amplification_evidence_shows_many_reflectors_and_large_packets() {
    let got = replay_scenario("flood-dns_amplification");
    let started = got.iter().find(|i| i["event"] == "attack_started").unwrap();
    let d = started["distinct_sources"].as_u64().unwrap();
    assert!((270..=330).contains(&d), "about 300 reflectors, got {d}");
    assert_eq!(started["top_src_ports"][0]["port"], 53);
    assert_eq!(started["packet_size"]["min"], 1242);
    assert_eq!(started["proto"], "udp");
    assert!(!started["top_sources"].as_array().unwrap().is_empty());
}

#[test]
fn simultaneous_attacks_on_two_hosts_are_reported_separately() {
    let got = replay_scenario("flood-two-hosts");
    assert_eq!(attack_ids(&got).len(), 2);
}

#[test]
fn multi_vector_attack_on_one_host_is_one_attack_per_vector() {
    let got = replay_scenario("flood-multi-vector");
    assert_eq!(attack_ids(&got).len(), 3);
}

#[test]
fn internal_host_flooding_outside_is_reported_outbound() {
    let got = replay_scenario("flood-outbound");
    let started = got.iter().find(|i| i["event"] == "attack_started").unwrap();
    assert_eq!(started["direction"], "outbound");
    assert_eq!(started["src_ip"], "10.0.0.66");
}

#[test]
fn ipv6_floods_are_detected_like_ipv4() {
    let got = replay_scenario("flood-ipv6");
    assert_eq!(attack_ids(&got).len(), 2);
    assert!(got.iter().any(|i| i["proto"] == "icmpv6"));
}

#[test]
fn busy_hosts_under_the_thresholds_give_nothing() {
    assert!(replay_scenario("ordinary-busy-hosts").is_empty());
}

#[test]
fn bulk_download_gives_nothing() {
    assert!(replay_scenario("ordinary-bulk-download").is_empty());
}

#[test]
fn flash_crowd_of_complete_handshakes_gives_nothing() {
    assert!(replay_scenario("ordinary-flash-crowd").is_empty());
}

#[test]
fn dns_answers_to_the_hosts_own_queries_give_nothing() {
    assert!(replay_scenario("ordinary-dns-own-queries").is_empty());
}

#[test]
fn carpet_bombing_of_a_slash_24_is_one_prefix_attack_and_no_host_attack() {
    let got = replay_scenario("flood-carpet");
    assert_eq!(attack_ids(&got).len(), 1, "{got:#?}");
    for i in &got {
        assert_eq!(i["dst_net"], "10.0.2.0/24", "{i}");
        assert!(i["dst_ip"].is_null());
    }
    let started = got.iter().find(|i| i["event"] == "attack_started").unwrap();
    let hosts = started["hosts_hit"].as_u64().unwrap();
    assert_eq!(hosts, 254, "every host of the /24 is hit");
    assert_eq!(started["scope"], "prefix");
    assert_eq!(started["top_targets"].as_array().unwrap().len(), 10);
    let d = started["distinct_sources"].as_u64().unwrap();
    assert!((270..=330).contains(&d), "about 300 reflectors, got {d}");
    assert!(started["pps"].as_u64().unwrap() >= 100_000);
}

/// Writes a capture of `conns` new HTTPS connections per second to
/// 10.0.0.80 for three seconds (SYN, SYN-ACK, the client's ACK carrying
/// its request); with `ack_ok` false every ACK misses the server's number.
fn flash_crowd_capture(path: &Path, conns: i64, ack_ok: bool) {
    use shaobing_pcapgen::packet::{MacAddr, Packet, TcpFlags};
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = shaobing_pcapgen::PcapWriter::new(file).unwrap();
    let server = std::net::Ipv4Addr::new(10, 0, 0, 80);
    let (smac, rmac) = (
        MacAddr::for_ip(server.into()),
        MacAddr([2, 0, 0x5e, 0, 0, 1]),
    );
    let client = |i: i64| std::net::Ipv4Addr::from(0xc633_0000u32 + (i as u32 % 60_000));
    let cport = |i: i64| 1024 + (i % 60_000) as u16;
    let isn = |i: i64| (i as u32).wrapping_mul(2_654_435_761);
    let request = b"GET / HTTP/1.1\r\nHost: portal.example\r\n\r\n";
    for i in 0..conns * 3 {
        let t = shaobing_pcapgen::scenario::at(i * 1_000_000 / conns);
        let syn = Packet::tcp(client(i), server, cport(i), 443, TcpFlags::SYN, 7, 0, b"");
        w.write_frame(t, &syn.macs(rmac, smac).build()).unwrap();
        if i >= 1 {
            let j = i - 1;
            let sa = Packet::tcp(
                server,
                client(j),
                443,
                cport(j),
                TcpFlags(0x12),
                isn(j),
                8,
                b"",
            );
            w.write_frame(t, &sa.macs(smac, rmac).build()).unwrap();
        }
        if i >= 2 {
            let j = i - 2;
            let ack = if ack_ok {
                isn(j).wrapping_add(1)
            } else {
                isn(j) ^ 0x5555
            };
            let a = Packet::tcp(
                client(j),
                server,
                cport(j),
                443,
                TcpFlags(0x18),
                8,
                ack,
                request,
            );
            w.write_frame(t, &a.macs(rmac, smac).build()).unwrap();
        }
    }
    std::io::Write::flush(&mut w.finish().unwrap()).unwrap();
}

/// Replays `pcap` with a syn_flood threshold of 10,000 packets/s (every
/// other vector and the total at 50,000).
fn replay_with_syn_threshold(dir: &Path, pcap: &Path) -> Vec<Value> {
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        "[leak]\nenabled = false\n[[volumetric.groups]]\nname = \"web\"\nnetworks = [\"10.0.0.0/8\"]\n\
         pps = 50000\n[volumetric.groups.vectors]\nsyn_flood = { pps = 10000 }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shaobing-sensor"))
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg(pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn flash_crowd_over_the_syn_threshold_with_completed_handshakes_is_not_a_syn_flood() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("crowd.pcap");
    // 15,000 connections/s: SYNs in and SYN-ACKs out at 1.5x the threshold.
    flash_crowd_capture(&pcap, 15_000, true);
    let got = replay_with_syn_threshold(dir.path(), &pcap);
    assert!(got.is_empty(), "{got:#?}");
    // The same packets with ACKs that do not acknowledge the server's
    // sequence numbers (what a spoofer can send) are half open: syn_flood.
    flash_crowd_capture(&pcap, 15_000, false);
    let got = replay_with_syn_threshold(dir.path(), &pcap);
    assert!(
        got.iter().any(|i| i["event"] == "attack_started"
            && i["vector"] == "syn_flood"
            && i["dst_ip"] == "10.0.0.80"),
        "{got:#?}"
    );
}
