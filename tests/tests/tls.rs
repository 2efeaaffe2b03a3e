//! Sensor → collector over HTTPS: the sensor trusts only the configured CA,
//! presents a client certificate when the collector asks for one, and keeps
//! what it could not deliver in its spool.

use std::ffi::OsString;
use std::path::Path;

use shaobing_e2e::{pcaps, sensor, succeeded, Collector, SensorToken, TlsServer};
use shaobing_testkit::pki::TestPki;
use shaobing_testkit::{clickhouse_available, ClickHouseServer};

const SENSOR: SensorToken = SensorToken {
    name: "sensor-1",
    token: "tls-token-71c2e0",
};

fn stored(c: &Collector) -> usize {
    c.query(&["--since", "all", "--json"])
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Incidents the offline replay of `http-leak.pcap` gives.
fn expected_count() -> usize {
    let out = sensor([
        OsString::from("replay"),
        pcaps().join("http-leak.pcap").into(),
    ]);
    succeeded(&out);
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(n > 0, "the capture must give incidents");
    n
}

/// `shaobing-sensor COMMAND --collector URL --token T ARGS...`.
fn to_collector(command: &str, c: &Collector, args: &[&Path]) -> std::process::Output {
    let mut all: Vec<OsString> = vec![
        command.into(),
        "--collector".into(),
        c.url.clone().into(),
        "--token".into(),
        SENSOR.token.into(),
    ];
    all.extend(args.iter().map(|a| a.as_os_str().to_owned()));
    sensor(all)
}

fn setup(dir: &Path, client_ca: bool) -> Option<(ClickHouseServer, Collector, TestPki)> {
    if !clickhouse_available() {
        eprintln!("skipping: clickhouse-server not installed (make deps)");
        return None;
    }
    let pki = match TestPki::create(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skipping: cannot make test certificates: {e}");
            return None;
        }
    };
    let ch = ClickHouseServer::start().expect("start ClickHouse");
    let server = pki.server();
    let tls = TlsServer {
        cert: server.cert,
        key: server.key,
        client_ca: client_ca.then(|| pki.ca()),
    };
    let collector = Collector::start_tls(dir, &ch, &[SENSOR], &tls).expect("start collector");
    Some((ch, collector, pki))
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn sensor_delivers_over_https_trusting_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_ch, collector, pki)) = setup(dir.path(), false) else {
        return;
    };
    assert!(collector.url.starts_with("https://"));
    let pcap = pcaps().join("http-leak.pcap");
    let out = to_collector("replay", &collector, &[p("--ca-file"), &pki.ca(), &pcap]);
    succeeded(&out);
    assert_eq!(stored(&collector), expected_count());
}

#[test]
fn the_config_file_alone_sets_the_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_ch, collector, pki)) = setup(dir.path(), true) else {
        return;
    };
    let id = pki.client(SENSOR.name).unwrap();
    // What `run` reads: the [collector] section, no command-line overrides.
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\nurl = \"{}\"\ntoken = \"{}\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            collector.url,
            SENSOR.token,
            pki.ca().display(),
            id.cert.display(),
            id.key.display()
        ),
    )
    .unwrap();
    let out = sensor([
        OsString::from("replay"),
        "--config".into(),
        config.into(),
        pcaps().join("http-leak.pcap").into(),
    ]);
    succeeded(&out);
    assert_eq!(stored(&collector), expected_count());
}

#[test]
fn a_collector_outside_the_configured_ca_gets_nothing_and_the_spool_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_ch, collector, pki)) = setup(dir.path(), false) else {
        return;
    };
    // A second, unrelated CA: the collector's certificate does not chain to it.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = TestPki::create(&other_dir).unwrap();
    let spool = dir.path().join("spool");
    let pcap = pcaps().join("http-leak.pcap");
    let out = to_collector(
        "replay",
        &collector,
        &[
            p("--grace-secs"),
            p("2"),
            p("--spool"),
            &spool,
            p("--ca-file"),
            &other.ca(),
            &pcap,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("remain spooled") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(stored(&collector), 0, "nothing may cross an untrusted link");

    // With the right CA, `deliver` drains the spool: nothing was lost.
    let out = to_collector(
        "deliver",
        &collector,
        &[p("--spool"), &spool, p("--ca-file"), &pki.ca()],
    );
    succeeded(&out);
    assert_eq!(stored(&collector), expected_count());
}

#[test]
fn with_client_ca_the_sensor_needs_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_ch, collector, pki)) = setup(dir.path(), true) else {
        return;
    };
    let ca = pki.ca();
    let pcap = pcaps().join("http-leak.pcap");

    // Without a certificate the collector refuses to take incidents.
    let out = to_collector("replay", &collector, &[p("--ca-file"), &ca, &pcap]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client certificate"), "{err}");
    assert_eq!(stored(&collector), 0);

    // With the sensor's certificate (issued by the collector's client CA)
    // everything is stored.
    let id = pki.client(SENSOR.name).unwrap();
    let out = to_collector(
        "replay",
        &collector,
        &[
            p("--ca-file"),
            &ca,
            p("--client-cert"),
            &id.cert,
            p("--client-key"),
            &id.key,
            &pcap,
        ],
    );
    succeeded(&out);
    assert_eq!(stored(&collector), expected_count());
}

#[test]
fn a_bad_ca_file_stops_the_sensor_before_it_reads_a_packet() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "garbage\n").unwrap();
    let out = sensor([
        OsString::from("replay"),
        "--collector".into(),
        "https://127.0.0.1:9".into(),
        "--token".into(),
        "t".into(),
        "--ca-file".into(),
        bad.into(),
        pcaps().join("http-leak.pcap").into(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CA file") && err.contains("ca.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no incident may be printed");
}
