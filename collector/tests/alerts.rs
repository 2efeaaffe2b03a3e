//! Alert routing with real receivers started by the test: an HTTP server
//! that checks the HMAC, UDP and TCP syslog listeners that parse RFC 5424,
//! a command that writes what it got; and a dead destination that must not
//! slow ingest. Against a real ClickHouse (incidents are alerted on only
//! after they are durable).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::Value;
use shaobing_collector::alerts::payload::hmac_sha256;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

const KEY: &str = "webhook-key-0f1e2d";
const ATTACK: &str = "019c0c4e-1000-7000-8000-0000000000aa";

/// A volumetric event of `ATTACK`.
fn attack_event(n: u32, event: &str) -> Value {
    let mut v = volumetric(n);
    v["event"] = event.into();
    v["attack_id"] = ATTACK.into();
    v["dst_ip"] = "198.51.100.20".into();
    v["group"] = "dmz".into();
    v
}

fn leak_with(n: u32, severity: &str) -> Value {
    let mut v = leak(n);
    v["severity"] = severity.into();
    v
}

/// One parsed RFC 5424 message.
#[derive(Debug)]
struct Syslog {
    pri: u16,
    version: String,
    hostname: String,
    app: String,
    msgid: String,
    sd: String,
    msg: String,
}

/// Parses `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP
/// MSGID SP STRUCTURED-DATA [SP MSG]` (RFC 5424 section 6), with a UTF-8
/// BOM before MSG.
fn parse_5424(text: &str) -> Syslog {
    let rest = text.strip_prefix('<').expect("PRI starts with <");
    let (pri, rest) = rest.split_once('>').expect("PRI ends with >");
    let mut parts = rest.splitn(7, ' ');
    let version = parts.next().unwrap().to_string();
    let ts = parts.next().unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts}");
    let hostname = parts.next().unwrap().to_string();
    let app = parts.next().unwrap().to_string();
    let _procid: u32 = parts.next().unwrap().parse().expect("numeric PROCID");
    let msgid = parts.next().unwrap().to_string();
    let rest = parts.next().unwrap();
    assert!(rest.starts_with('['), "structured data: {rest}");
    // The SD element ends at the first ']' not escaped by '\'.
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ']' if !escaped => {
                end = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    let end = end.expect("SD element closed");
    let sd = rest[..=end].to_string();
    let msg = rest[end + 1..]
        .strip_prefix(' ')
        .expect("SP before MSG")
        .strip_prefix('\u{feff}')
        .expect("BOM before a UTF-8 MSG")
        .to_string();
    Syslog {
        pri: pri.parse().expect("numeric PRI"),
        version,
        hostname,
        app,
        msgid,
        sd,
        msg,
    }
}

#[derive(Default)]
struct WebhookLog {
    /// (signature header, body) of every request.
    requests: Vec<(String, Vec<u8>)>,
}

/// An HTTP receiver answering 503 to its first request and 200 after.
async fn start_webhook() -> (SocketAddr, Arc<Mutex<WebhookLog>>) {
    let log = Arc::new(Mutex::new(WebhookLog::default()));
    let l2 = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let log = l2.clone();
            async move {
                let sig = headers
                    .get("x-shaobing-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut log = log.lock().unwrap();
                log.requests.push((sig, body.to_vec()));
                if log.requests.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

/// The same receiver over HTTPS with the test PKI's server certificate.
async fn start_https_webhook(
    pki: &shaobing_testkit::pki::TestPki,
) -> (SocketAddr, Arc<Mutex<WebhookLog>>) {
    let log = Arc::new(Mutex::new(WebhookLog::default()));
    let l2 = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let log = l2.clone();
            async move {
                let sig = headers
                    .get("x-shaobing-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().requests.push((sig, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let server = pki.server();
    let cfg = shaobing_collector::tls::server_config(&server.cert, &server.key, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = shaobing_collector::tls::TlsListener::new(listener, cfg);
    tokio::spawn(async move { axum::serve(tls, app).await });
    (addr, log)
}

async fn start_udp_syslog() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf).await {
            g.lock()
                .unwrap()
                .push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
    });
    (addr, got)
}

/// Reads RFC 6587 octet-counted syslog frames (`LEN SP MSG`) until the
/// peer closes, into `got`.
async fn read_octet_counted<R>(mut r: R, got: &Mutex<Vec<String>>)
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
            return;
        }
        let n: usize = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse()
            .expect("octet count");
        let mut msg = vec![0u8; n];
        r.read_exact(&mut msg).await.unwrap();
        got.lock().unwrap().push(String::from_utf8(msg).unwrap());
    }
}

/// A TCP syslog receiver reading RFC 6587 octet-counted frames.
async fn start_tcp_syslog() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                read_octet_counted(BufReader::new(stream), &g).await;
            });
        }
    });
    (addr, got)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(h: &Harness) -> String {
    let (status, v) = h.get(Some(ANALYST_TOKEN), "/metrics").await;
    assert_eq!(status, 200);
    v.as_str().unwrap().to_string()
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_webhook_syslog_and_command_once_per_attack_start_and_end() {
    if skip() {
        return;
    }
    let (hook, hook_log) = start_webhook().await;
    let (udp, udp_got) = start_udp_syslog().await;
    let (tcp, tcp_got) = start_tcp_syslog().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("command-stdin.ndjson");
    let env_out = dir.path().join("command-env.txt");
    let extra = format!(
        r#"
[alerts]
queue = 100

[[alerts.destinations]]
name = "hook"
type = "webhook"
url = "http://{hook}/hook"
secret = "{KEY}"
initial_backoff_ms = 10
max_backoff_ms = 50

[[alerts.destinations]]
name = "siem-udp"
type = "syslog"
transport = "udp"
address = "{udp}"
format = "json"
hostname = "collector-test"

[[alerts.destinations]]
name = "siem-tcp"
type = "syslog"
transport = "tcp"
address = "{tcp}"
format = "cef"
facility = "security"

[[alerts.destinations]]
name = "notify"
type = "command"
program = "/bin/sh"
args = ["-c", 'cat >> "$1"; echo "$SHAOBING_EVENT $SHAOBING_ATTACK_ID $SHAOBING_RULE" >> "$2"', "notify", "{}", "{}"]
timeout_ms = 10000

[[alerts.rules]]
name = "attacks"
kind = ["volumetric"]
group = ["dmz"]
prefix = ["198.51.100.0/24"]
destinations = ["hook", "siem-udp", "notify"]

[[alerts.rules]]
name = "leaks"
kind = ["leak"]
min_severity = "high"
max_per_minute = 2
destinations = ["siem-tcp"]
"#,
        out.display(),
        env_out.display()
    );
    let h = Harness::start_full("", &extra).await;

    // One attack: start, three updates, end; the start again (a sensor's
    // retry), and four leaks of which three are severe enough.
    let attack = [
        attack_event(1, "attack_started"),
        attack_event(2, "attack_update"),
        attack_event(3, "attack_update"),
    ];
    assert_eq!(h.post(Some(TOKEN), &body(&attack)).await.0, 200);
    let rest = [
        attack_event(4, "attack_update"),
        attack_event(5, "attack_ended"),
        attack_event(1, "attack_started"),
    ];
    assert_eq!(h.post(Some(TOKEN), &body(&rest)).await.0, 200);
    let leaks = [
        leak_with(11, "critical"),
        leak_with(12, "low"),
        leak_with(13, "high"),
        leak_with(14, "critical"),
    ];
    assert_eq!(h.post(Some(TOKEN), &body(&leaks)).await.0, 200);

    wait_for("webhook deliveries", || {
        hook_log.lock().unwrap().requests.len() >= 3
    })
    .await;
    wait_for("UDP syslog", || udp_got.lock().unwrap().len() >= 2).await;
    wait_for("TCP syslog", || tcp_got.lock().unwrap().len() >= 2).await;
    wait_for("the command", || {
        std::fs::read_to_string(&env_out).is_ok_and(|s| s.lines().count() >= 2)
    })
    .await;
    // Nothing more arrives (updates and the duplicate are not alerted).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Webhook: the first attempt got 503 and was retried with the same
    // body; two alerts in all, each signed over its exact body.
    let reqs = hook_log.lock().unwrap().requests.clone();
    assert_eq!(reqs.len(), 3, "start (503, retried), end");
    assert_eq!(reqs[0].1, reqs[1].1, "a retry resends the same body");
    let mut events = Vec::new();
    for (sig, body) in &reqs {
        let expected = format!("sha256={}", hex::encode(hmac_sha256(KEY.as_bytes(), body)));
        assert_eq!(sig, &expected, "HMAC over the body");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["rule"], "attacks");
        assert_eq!(v["incident"]["attack_id"], ATTACK);
        assert_eq!(v["incident"]["sensor"], SENSOR, "the stored incident");
        events.push(v["incident"]["event"].as_str().unwrap().to_string());
    }
    assert_eq!(events, ["attack_started", "attack_started", "attack_ended"]);
    let forged = hmac_sha256(b"another key", &reqs[2].1);
    assert_ne!(format!("sha256={}", hex::encode(forged)), reqs[2].0);

    // UDP syslog, JSON payload.
    let udp_msgs: Vec<Syslog> = udp_got
        .lock()
        .unwrap()
        .iter()
        .map(|m| parse_5424(m))
        .collect();
    assert_eq!(udp_msgs.len(), 2);
    for (m, event) in udp_msgs.iter().zip(["attack_started", "attack_ended"]) {
        assert_eq!(m.version, "1");
        assert_eq!(m.pri, 16 * 8 + 3, "local0, high = err");
        assert_eq!(m.hostname, "collector-test");
        assert_eq!(m.app, "shaobing");
        assert_eq!(m.msgid, event);
        assert!(
            m.sd.starts_with("[shaobing@32473 rule=\"attacks\""),
            "{}",
            m.sd
        );
        assert!(
            m.sd.contains(&format!("attack_id=\"{ATTACK}\"")),
            "{}",
            m.sd
        );
        let inc: Value = serde_json::from_str(&m.msg).unwrap();
        assert_eq!(inc["event"], event);
        assert_eq!(inc["vector"], "syn_flood");
    }

    // TCP syslog, CEF payload: the critical and high leaks within the
    // rule's limit of two per minute; the low one never matched.
    let tcp_msgs: Vec<Syslog> = tcp_got
        .lock()
        .unwrap()
        .iter()
        .map(|m| parse_5424(m))
        .collect();
    assert_eq!(tcp_msgs.len(), 2);
    assert_eq!(tcp_msgs[0].pri, 4 * 8 + 2, "security, critical = crit");
    assert_eq!(tcp_msgs[1].pri, 4 * 8 + 3, "security, high = err");
    for m in &tcp_msgs {
        assert_eq!(m.msgid, "leak");
        assert!(
            m.msg.starts_with("CEF:0|Shaobing|shaobing-collector|"),
            "{}",
            m.msg
        );
        assert!(
            m.msg.contains("|classification-marking|leak leak|"),
            "{}",
            m.msg
        );
        assert!(
            m.msg
                .contains("src=10.1.2.3 dst=203.0.113.80 spt=40000 dpt=80"),
            "{}",
            m.msg
        );
    }
    assert!(
        tcp_msgs[0].msg.contains("000000000011"),
        "{}",
        tcp_msgs[0].msg
    );
    assert!(
        tcp_msgs[1].msg.contains("000000000013"),
        "{}",
        tcp_msgs[1].msg
    );

    // The command got each incident's JSON on stdin, and its environment.
    let stdin = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = stdin
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "attack_started");
    assert_eq!(lines[1]["event"], "attack_ended");
    assert_eq!(
        std::fs::read_to_string(&env_out).unwrap(),
        format!("attack_started {ATTACK} attacks\nattack_ended {ATTACK} attacks\n")
    );

    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"hook\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"siem-tcp\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_failed_total{destination=\"hook\"} "
        ),
        0
    );
    assert_eq!(metric(&m, "shaobing_collector_alerts_duplicates_total "), 1);
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_matched_total{rule=\"leaks\"} "
        ),
        3
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_rate_limited_total{rule=\"leaks\"} "
        ),
        1
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_events_dropped_total{consumer=\"alerts\"} "
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destination_never_slows_ingest_and_its_drops_are_counted() {
    if skip() {
        return;
    }
    // A webhook that accepts connections and never answers, a syslog
    // receiver that is not there, a command that hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let extra = format!(
        r#"
[[alerts.destinations]]
name = "stuck-hook"
type = "webhook"
url = "http://{silent_addr}/hook"
secret = "k"
timeout_ms = 60000
queue = 2

[[alerts.destinations]]
name = "gone-siem"
type = "syslog"
transport = "tcp"
address = "{closed}"
max_attempts = 100
initial_backoff_ms = 1000
queue = 2

[[alerts.destinations]]
name = "hung-command"
type = "command"
program = "sleep"
args = ["120"]
timeout_ms = 120000
queue = 1

[[alerts.rules]]
name = "everything"
destinations = ["stuck-hook", "gone-siem", "hung-command"]
"#
    );
    let h = Harness::start_full("", &extra).await;
    const ATTACKS: u32 = 30;
    let started = Instant::now();
    for n in 0..ATTACKS {
        let mut v = volumetric(100 + n);
        v["attack_id"] = format!("019c0c4e-1000-7000-8000-{:012}", 500 + n).into();
        assert_eq!(h.post(Some(TOKEN), &body(&[v])).await.0, 200);
    }
    let took = started.elapsed();
    // One webhook attempt alone waits 60 s, the command 120 s: if delivery
    // were on the ingest path, ingest could not have finished before them.
    assert!(
        took < Duration::from_secs(30),
        "30 acknowledged requests took {took:?} with dead destinations"
    );
    // Every incident has been routed (the drops below are final).
    wait_for("the router to route every incident", || {
        let m =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(metrics(&h)));
        metric(
            &m,
            "shaobing_collector_alerts_matched_total{rule=\"everything\"} ",
        ) == u64::from(ATTACKS)
    })
    .await;
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"stuck-hook\"} "
        ),
        0
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"hung-command\"} "
        ),
        0
    );
    // Each full queue dropped the rest, and said so: at most one alert in
    // delivery plus the queue's capacity were kept.
    let kept_hook = ATTACKS as u64
        - metric(
            &m,
            "shaobing_collector_alerts_dropped_total{destination=\"stuck-hook\"} ",
        );
    let kept_cmd = ATTACKS as u64
        - metric(
            &m,
            "shaobing_collector_alerts_dropped_total{destination=\"hung-command\"} ",
        );
    let kept_siem = ATTACKS as u64
        - metric(
            &m,
            "shaobing_collector_alerts_dropped_total{destination=\"gone-siem\"} ",
        );
    assert!(kept_hook <= 3, "stuck-hook kept {kept_hook}");
    assert!(kept_cmd <= 2, "hung-command kept {kept_cmd}");
    assert!(kept_siem <= 3, "gone-siem kept {kept_siem}");
    assert_eq!(
        h.rows().await.len(),
        ATTACKS as usize,
        "every incident stored"
    );
}

/// A TLS syslog receiver (RFC 5425) with the test PKI's server certificate.
async fn start_tls_syslog(
    pki: &shaobing_testkit::pki::TestPki,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let server = pki.server();
    let cfg = shaobing_collector::tls::server_config(&server.cert, &server.key, None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let g = g.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                read_octet_counted(BufReader::new(tls), &g).await;
            });
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_and_an_https_webhook_reach_verified_receivers_only() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good_dir = dir.path().join("good");
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&good_dir).unwrap();
    std::fs::create_dir_all(&other_dir).unwrap();
    let (Ok(pki), Ok(other)) = (
        shaobing_testkit::pki::TestPki::create(&good_dir),
        shaobing_testkit::pki::TestPki::create(&other_dir),
    ) else {
        eprintln!("skipping: openssl could not make test certificates");
        return;
    };
    let (addr, got) = start_tls_syslog(&pki).await;
    let key_file = dir.path().join("webhook.key");
    std::fs::write(&key_file, "file-key\n").unwrap();
    let extra = format!(
        r#"
[[alerts.destinations]]
name = "siem-tls"
type = "syslog"
transport = "tls"
address = "{addr}"
format = "cef"
ca_file = "{}"

[[alerts.destinations]]
name = "impostor-check"
type = "syslog"
transport = "tls"
address = "{addr}"
ca_file = "{}"
max_attempts = 2
initial_backoff_ms = 10

[[alerts.rules]]
name = "leaks"
kind = ["leak"]
destinations = ["siem-tls", "impostor-check"]
"#,
        pki.ca().display(),
        other.ca().display()
    );
    let (hook, hook_log) = start_https_webhook(&pki).await;
    let extra = format!(
        "{extra}\n[[alerts.destinations]]\nname = \"https-hook\"\ntype = \"webhook\"\nurl = \"https://{hook}/hook\"\nsecret_file = \"{}\"\nca_file = \"{}\"\n\n[[alerts.rules]]\nname = \"leaks-to-hook\"\nkind = [\"leak\"]\ndestinations = [\"https-hook\"]\n",
        key_file.display(),
        pki.ca().display()
    );
    let h = Harness::start_full("", &extra).await;
    assert_eq!(
        h.post(Some(TOKEN), &body(&[leak(21), leak(22)])).await.0,
        200
    );
    wait_for("HTTPS webhook", || {
        hook_log.lock().unwrap().requests.len() >= 2
    })
    .await;
    for (sig, body) in hook_log.lock().unwrap().requests.iter() {
        let expected = format!("sha256={}", hex::encode(hmac_sha256(b"file-key", body)));
        assert_eq!(sig, &expected, "signed with the key from secret_file");
    }
    wait_for("TLS syslog", || got.lock().unwrap().len() >= 2).await;
    wait_for("the impostor check to give up", || {
        let m =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(metrics(&h)));
        metric(
            &m,
            "shaobing_collector_alerts_failed_total{destination=\"impostor-check\"} ",
        ) == 2
    })
    .await;
    let msgs: Vec<Syslog> = got.lock().unwrap().iter().map(|m| parse_5424(m)).collect();
    assert_eq!(msgs.len(), 2, "only the verified destination delivered");
    for m in &msgs {
        assert_eq!(m.msgid, "leak");
        assert!(m.msg.starts_with("CEF:0|Shaobing|"), "{}", m.msg);
    }
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"siem-tls\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "shaobing_collector_alerts_sent_total{destination=\"impostor-check\"} "
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_hook_failures_and_timeouts_are_counted() {
    if skip() {
        return;
    }
    let extra = r#"
[[alerts.destinations]]
name = "exits-1"
type = "command"
program = "false"

[[alerts.destinations]]
name = "hangs"
type = "command"
program = "sleep"
args = ["30"]
timeout_ms = 200

[[alerts.destinations]]
name = "missing"
type = "command"
program = "/nonexistent/shaobing-notify"

[[alerts.rules]]
name = "notify-attacks"
kind = ["volumetric"]
destinations = ["exits-1", "hangs", "missing"]
"#;
    let h = Harness::start_full("", extra).await;
    let start = attack_event(1, "attack_started");
    let end = attack_event(2, "attack_ended");
    assert_eq!(h.post(Some(TOKEN), &body(&[start, end])).await.0, 200);
    wait_for("both alerts to fail everywhere", || {
        let m =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(metrics(&h)));
        ["exits-1", "hangs", "missing"].iter().all(|d| {
            metric(
                &m,
                &format!("shaobing_collector_alerts_failed_total{{destination=\"{d}\"}} "),
            ) == 2
        })
    })
    .await;
    let m = metrics(&h).await;
    for d in ["exits-1", "hangs", "missing"] {
        assert_eq!(
            metric(
                &m,
                &format!("shaobing_collector_alerts_sent_total{{destination=\"{d}\"}} ")
            ),
            0
        );
    }
}
