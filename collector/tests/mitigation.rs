//! Mitigation over a real BGP session on loopback: the collector drives a
//! gobgpd (its speaker, AS 64512 on 127.0.0.1) which peers with a second
//! gobgpd playing the border router (AS 64513 on 127.0.0.2). The tests read
//! the border router's RIB: routes and FlowSpec rules must arrive on attack
//! start, leave after the hold time or a manual withdrawal, never outside
//! protected space or above the maximum, and never in dry-run.
//! Skipped with a printed reason when gobgpd is not installed (`make deps`
//! installs it).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn gobgp_missing() -> bool {
    for bin in ["gobgpd", "gobgp"] {
        let found = Command::new(bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!(
                "skipping: {bin} not installed (Debian package gobgpd; `make deps` installs it)"
            );
            return true;
        }
    }
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One gobgpd child, killed on drop.
struct Gobgpd {
    child: Child,
    api: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Gobgpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FAMILIES: [&str; 4] = [
    "ipv4-unicast",
    "ipv6-unicast",
    "ipv4-flowspec",
    "ipv6-flowspec",
];

fn start_gobgpd(name: &str, config: String) -> Gobgpd {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let api = free_port();
    let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
    let child = Command::new("gobgpd")
        .arg("-f")
        .arg(&path)
        .arg(format!("--api-hosts=127.0.0.1:{api}"))
        .arg("--pprof-disable")
        .arg("-p")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Gobgpd {
        child,
        api,
        _dir: dir,
    }
}

fn neighbor(addr: &str, asn: u32, remote_port: Option<u16>, passive: bool) -> String {
    let mut s = format!(
        "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {asn}\n  [neighbors.timers.config]\n    connect-retry = 1\n  [neighbors.transport.config]\n"
    );
    if let Some(p) = remote_port {
        s.push_str(&format!(
            "    remote-port = {p}\n    local-address = \"127.0.0.1\"\n"
        ));
    }
    if passive {
        s.push_str("    passive-mode = true\n");
    }
    for f in FAMILIES {
        s.push_str(&format!(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n"
        ));
    }
    s
}

/// The collector's speaker and the border router, peered.
struct Pair {
    speaker: Gobgpd,
    router: Gobgpd,
}

fn gobgp(api: u16, args: &[&str]) -> String {
    let out = Command::new("gobgp")
        .args(["-p", &api.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start_pair() -> Pair {
    let bgp_speaker = free_port();
    let bgp_router = free_port();
    let speaker = start_gobgpd(
        "speaker",
        format!(
            "[global.config]\n  as = 64512\n  router-id = \"10.255.0.1\"\n  port = {bgp_speaker}\n  local-address-list = [\"127.0.0.1\"]\n{}",
            neighbor("127.0.0.2", 64513, Some(bgp_router), false)
        ),
    );
    let router = start_gobgpd(
        "router",
        format!(
            "[global.config]\n  as = 64513\n  router-id = \"10.255.0.2\"\n  port = {bgp_router}\n  local-address-list = [\"127.0.0.2\"]\n{}",
            neighbor("127.0.0.1", 64512, None, true)
        ),
    );
    let pair = Pair { speaker, router };
    let api = pair.router.api;
    wait_until(
        "the BGP session to be established",
        Duration::from_secs(60),
        || gobgp(api, &["neighbor"]).contains("Establ"),
    )
    .await;
    pair
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let done = tokio::task::block_in_place(&mut f);
        if done {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Pair {
    /// The border router's RIB for `family`, as JSON text.
    fn router_rib(&self, family: &str) -> String {
        gobgp(self.router.api, &["global", "rib", "-a", family, "-j"])
    }
}

fn attack(n: u32, event: &str, attack_n: u32, dst: &str, vector: &str) -> Value {
    let mut v = volumetric(n);
    v["event"] = event.into();
    v["attack_id"] = format!("019c0c4e-1000-7000-8000-{attack_n:012}").into();
    v["dst_ip"] = dst.into();
    v["vector"] = vector.into();
    v["proto"] = "udp".into();
    v["group"] = "dmz".into();
    v["packet_size"] = serde_json::json!({"min": 1100, "max": 1514, "mean": 1400, "packets": 5000});
    v
}

fn mitigation_config(mode: &str, api: u16, admins: &str) -> String {
    format!(
        r#"
[mitigation]
mode = "{mode}"
protected = ["198.51.100.0/24"]
groups = ["dmz"]
max_active = 3
hold_time_s = 3
admins = [{admins}]
[mitigation.gobgp]
api = "127.0.0.1:{api}"
[mitigation.rtbh]
next_hop = "192.0.2.1"
communities = ["65535:666"]
[mitigation.flowspec]
action = "discard"
"#
    )
}

async fn mitigations(h: &Harness) -> Value {
    let (status, v) = h.get(Some(ANALYST_TOKEN), "/api/v1/mitigations").await;
    assert_eq!(status, 200, "{v}");
    v
}

fn actions(v: &Value) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["prefix"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    a.sort();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_announced_to_the_border_router_and_withdrawn_after_the_hold_time() {
    if skip() || gobgp_missing() {
        return;
    }
    let pair = start_pair().await;
    let h = Harness::start_full(
        "",
        &mitigation_config("announce", pair.speaker.api, "\"soc\""),
    )
    .await;

    // Attack start → RTBH route and FlowSpec rule at the border router.
    let posted = Instant::now();
    let start = attack(1, "attack_started", 1, "198.51.100.20", "dns_amplification");
    assert_eq!(h.post(Some(TOKEN), &body(&[start])).await.0, 200);
    wait_until("the RTBH route", Duration::from_secs(20), || {
        pair.router_rib("ipv4").contains("198.51.100.20/32")
    })
    .await;
    let latency = posted.elapsed();
    eprintln!("attack_started POST to route received by the border router: {latency:?}");
    let rib = pair.router_rib("ipv4");
    assert!(rib.contains("\"nexthop\":\"192.0.2.1\""), "{rib}");
    assert!(rib.contains("4294902426"), "community 65535:666: {rib}");
    wait_until("the FlowSpec rule", Duration::from_secs(20), || {
        pair.router_rib("ipv4-flowspec")
            .contains("198.51.100.20/32")
    })
    .await;
    let fs = pair.router_rib("ipv4-flowspec");
    assert!(fs.contains("[source-port: ==53]"), "{fs}");
    assert!(fs.contains("[protocol: ==udp]"), "{fs}");
    assert!(
        fs.contains("packet-length: \\u003e=1078\\u0026\\u003c=1514"),
        "{fs}"
    );

    // Outside protected space, a sensor_health incident, and more than
    // max_active (3): .21 gets its RTBH route only, .22 nothing.
    let outside = attack(2, "attack_started", 2, "192.0.2.77", "ntp_amplification");
    let mut health = leak(3);
    health["kind"] = "sensor_health".into();
    health["event"] = "capture_loss".into();
    health["packets"] = 1000.into();
    assert_eq!(h.post(Some(TOKEN), &body(&[outside, health])).await.0, 200);
    let second = attack(4, "attack_started", 4, "198.51.100.21", "ntp_amplification");
    let third = attack(5, "attack_started", 5, "198.51.100.22", "ntp_amplification");
    assert_eq!(h.post(Some(TOKEN), &body(&[second, third])).await.0, 200);
    wait_until("the second RTBH route", Duration::from_secs(20), || {
        pair.router_rib("ipv4").contains("198.51.100.21/32")
    })
    .await;
    wait_until("the refusals in the audit", Duration::from_secs(20), || {
        let v = tokio::runtime::Handle::current().block_on(mitigations(&h));
        actions(&v).iter().filter(|(a, _)| a == "refused").count() == 4
    })
    .await;
    let v = mitigations(&h).await;
    assert_eq!(v["mode"], "announce");
    assert_eq!(v["active"].as_array().unwrap().len(), 3);
    assert_eq!(
        actions(&v),
        [
            ("announce", "198.51.100.20/32"),
            ("announce", "198.51.100.20/32"),
            ("announce", "198.51.100.21/32"),
            ("refused", "192.0.2.77/32"),
            ("refused", "198.51.100.21/32"),
            ("refused", "198.51.100.22/32"),
            ("refused", "198.51.100.22/32"),
        ]
        .map(|(a, p)| (a.to_string(), p.to_string()))
    );
    let ipv4 = pair.router_rib("ipv4");
    assert!(
        !ipv4.contains("192.0.2.77") && !ipv4.contains("198.51.100.22"),
        "{ipv4}"
    );
    let fs = pair.router_rib("ipv4-flowspec");
    assert!(
        !fs.contains("198.51.100.21") && !fs.contains("198.51.100.22"),
        "{fs}"
    );

    // Attack end: the route stays for the hold time (3 s), then goes.
    let end = attack(6, "attack_ended", 1, "198.51.100.20", "dns_amplification");
    assert_eq!(h.post(Some(TOKEN), &body(&[end])).await.0, 200);
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        pair.router_rib("ipv4").contains("198.51.100.20/32"),
        "withdrawn before the hold time"
    );
    wait_until("the withdrawal", Duration::from_secs(20), || {
        !pair.router_rib("ipv4").contains("198.51.100.20/32")
            && !pair
                .router_rib("ipv4-flowspec")
                .contains("198.51.100.20/32")
    })
    .await;
    assert!(
        ended.elapsed() >= Duration::from_secs(3),
        "withdrawn before the hold time"
    );
    assert!(
        pair.router_rib("ipv4").contains("198.51.100.21/32"),
        "the other attack's route stays"
    );

    // An admin analyst withdraws the other one by hand.
    let v = mitigations(&h).await;
    let active = v["active"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{v}");
    let id = active[0]["id"].as_str().unwrap().to_string();
    let resp = request_to(
        h.addr,
        "POST",
        &format!("/api/v1/mitigations/{id}/withdraw"),
        Some(ANALYST_TOKEN),
        "application/json",
        b"",
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    wait_until("the manual withdrawal", Duration::from_secs(20), || {
        !pair.router_rib("ipv4").contains("198.51.100.21/32")
    })
    .await;
    let again = request_to(
        h.addr,
        "POST",
        &format!("/api/v1/mitigations/{id}/withdraw"),
        Some(ANALYST_TOKEN),
        "application/json",
        b"",
        &[],
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.body_text());
    let v = mitigations(&h).await;
    assert!(v["active"].as_array().unwrap().is_empty());
    let audit = v["audit"].as_array().unwrap();
    let manual: Vec<&Value> = audit
        .iter()
        .filter(|r| r["actor"] == "analyst:soc")
        .collect();
    assert_eq!(manual.len(), 1);
    assert_eq!(manual[0]["action"], "withdraw");
    assert_eq!(manual[0]["prefix"], "198.51.100.21/32");
    let held: Vec<&Value> = audit
        .iter()
        .filter(|r| r["action"] == "withdraw" && r["actor"] == "collector")
        .collect();
    assert_eq!(held.len(), 2, "RTBH and FlowSpec of the ended attack");
    assert!(held
        .iter()
        .all(|r| r["reason"].as_str().unwrap().contains("hold time")));
    let (_, metrics) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    let m = metrics.as_str().unwrap();
    assert!(
        m.contains("shaobing_collector_mitigation_announced_total 3"),
        "{m}"
    );
    assert!(
        m.contains("shaobing_collector_mitigation_refused_total 4"),
        "{m}"
    );
    assert!(m.contains("shaobing_collector_mitigation_active 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_decides_and_audits_but_announces_nothing() {
    if skip() || gobgp_missing() {
        return;
    }
    let pair = start_pair().await;
    let h = Harness::start_full("", &mitigation_config("dry-run", pair.speaker.api, "")).await;
    let start = attack(1, "attack_started", 1, "198.51.100.20", "dns_amplification");
    assert_eq!(h.post(Some(TOKEN), &body(&[start])).await.0, 200);
    wait_until("the dry-run audit rows", Duration::from_secs(20), || {
        let v = tokio::runtime::Handle::current().block_on(mitigations(&h));
        actions(&v).len() == 2
    })
    .await;
    let v = mitigations(&h).await;
    assert_eq!(v["mode"], "dry-run");
    assert_eq!(
        actions(&v),
        [
            (
                "dry_run_announce".to_string(),
                "198.51.100.20/32".to_string()
            ),
            (
                "dry_run_announce".to_string(),
                "198.51.100.20/32".to_string()
            ),
        ]
    );
    // Give a wrongly sent route time to propagate, then check both RIBs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for family in ["ipv4", "ipv4-flowspec"] {
        for api in [pair.speaker.api, pair.router.api] {
            let rib = gobgp(api, &["global", "rib", "-a", family, "-j"]);
            assert!(!rib.contains("198.51.100.20"), "{family} on {api}: {rib}");
        }
    }
    // Nobody is an admin here: a manual withdrawal is refused.
    let id = v["active"][0]["id"].as_str().unwrap().to_string();
    let resp = request_to(
        h.addr,
        "POST",
        &format!("/api/v1/mitigations/{id}/withdraw"),
        Some(ANALYST_TOKEN),
        "application/json",
        b"",
        &[],
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body_text());

    // The CLI reads the same audit from ClickHouse.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("[clickhouse]\nurl = \"{}\"\n", h.ch.http_url()),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_shaobing-collector");
    let table = Command::new(bin)
        .args(["mitigations", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8(table.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "header and two rows:\n{text}");
    assert_eq!(text.matches("dry_run_announce").count(), 2, "{text}");
    assert!(text.contains("198.51.100.20/32"), "{text}");
    let json = Command::new(bin)
        .args(["mitigations", "--json", "--limit", "1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(json.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["mode"], "dry-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_collector_takes_over_and_withdraws_what_it_announced_before() {
    if skip() || gobgp_missing() {
        return;
    }
    let pair = start_pair().await;
    let mut h = Harness::start_full(
        "",
        &mitigation_config("announce", pair.speaker.api, "\"soc\""),
    )
    .await;
    let first = attack(1, "attack_started", 1, "198.51.100.20", "dns_amplification");
    let second = attack(2, "attack_started", 2, "198.51.100.21", "syn_flood");
    assert_eq!(h.post(Some(TOKEN), &body(&[first, second])).await.0, 200);
    wait_until("both RTBH routes", Duration::from_secs(20), || {
        let rib = pair.router_rib("ipv4");
        rib.contains("198.51.100.20/32") && rib.contains("198.51.100.21/32")
    })
    .await;
    // The first attack ends; the collector stops within the hold time.
    let end = attack(3, "attack_ended", 1, "198.51.100.20", "dns_amplification");
    assert_eq!(h.post(Some(TOKEN), &body(&[end])).await.0, 200);
    h.stop_collector().await.unwrap();
    assert!(pair.router_rib("ipv4").contains("198.51.100.20/32"));

    // A new collector process over the same store.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(shaobing_collector::serve(
        h.config.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    // The ended attack's routes go after the hold time; the running
    // attack's route stays until its end arrives.
    wait_until(
        "the ended attack's withdrawal",
        Duration::from_secs(20),
        || {
            !pair.router_rib("ipv4").contains("198.51.100.20/32")
                && !pair
                    .router_rib("ipv4-flowspec")
                    .contains("198.51.100.20/32")
        },
    )
    .await;
    assert!(pair.router_rib("ipv4").contains("198.51.100.21/32"));
    let list = request_to(
        addr,
        "GET",
        "/api/v1/mitigations",
        Some(ANALYST_TOKEN),
        "text/plain",
        b"",
        &[],
    )
    .await;
    let v: Value = serde_json::from_slice(&list.body).unwrap();
    let active = v["active"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{v}");
    assert_eq!(active[0]["prefix"], "198.51.100.21/32");
    let adopted = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "adopt")
        .count();
    assert_eq!(adopted, 3, "{v}");

    let end = attack(4, "attack_ended", 2, "198.51.100.21", "syn_flood");
    let resp = request_to(
        addr,
        "POST",
        "/api/v1/incidents",
        Some(TOKEN),
        "application/json",
        &body(&[end]),
        &[],
    )
    .await;
    assert_eq!(resp.status, 200);
    wait_until(
        "the running attack's withdrawal",
        Duration::from_secs(20),
        || !pair.router_rib("ipv4").contains("198.51.100.21/32"),
    )
    .await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
