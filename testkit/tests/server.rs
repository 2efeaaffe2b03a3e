use std::time::Duration;

use shaobing_testkit::{clickhouse_available, ClickHouseServer};

fn skip() -> bool {
    if !clickhouse_available() {
        eprintln!("skipping: clickhouse-server not installed (set CLICKHOUSE_SERVER)");
        return true;
    }
    false
}

fn process_exists(pid: u32) -> bool {
    // A zombie still has /proc/PID; a reaped process does not.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn starts_answers_queries_and_stops_without_leaving_a_zombie() {
    if skip() {
        return;
    }
    let server = ClickHouseServer::start().unwrap();
    assert!(server.ping());
    assert_eq!(server.query("SELECT 1 + 1").unwrap().trim(), "2");
    let version = server.query("SELECT version()").unwrap();
    let want = format!("{}.", server.flavor().version());
    assert!(
        version.trim().starts_with(&want),
        "{version} is not the {want} SHAOBING_CLICKHOUSE asked for"
    );
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    let url = server.http_url();
    assert!(url.starts_with("http://127.0.0.1:"));
    server.stop();
    assert!(
        !process_exists(pid),
        "process {pid} still exists after stop"
    );
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}

#[test]
fn dropping_the_handle_stops_the_server() {
    if skip() {
        return;
    }
    let server = ClickHouseServer::start().unwrap();
    let pid = server.pid().unwrap();
    drop(server);
    assert!(!process_exists(pid));
}

#[test]
fn restart_over_the_same_directory_keeps_data_and_port() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = ClickHouseServer::start_in(dir.path(), None).unwrap();
    let port = server.port();
    server
        .query("CREATE TABLE default.t (x UInt32) ENGINE = MergeTree ORDER BY x")
        .unwrap();
    server.query("INSERT INTO default.t VALUES (7)").unwrap();
    server.stop_in_place();
    assert!(!server.is_running());
    assert!(!server.ping());
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.query("SELECT x FROM default.t").unwrap().trim(), "7");
    server.stop();
    // A second, independent handle over the same data works too.
    let again = ClickHouseServer::start_in(dir.path(), None).unwrap();
    assert_eq!(
        again.query("SELECT count() FROM default.t").unwrap().trim(),
        "1"
    );
}

#[test]
fn two_servers_run_side_by_side() {
    if skip() {
        return;
    }
    let a = ClickHouseServer::start().unwrap();
    let b = ClickHouseServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    a.query("CREATE DATABASE only_a").unwrap();
    let dbs = b.query("SHOW DATABASES").unwrap();
    assert!(!dbs.contains("only_a"));
    assert!(shaobing_testkit::http::get(&a.addr(), "/ping", Duration::from_secs(2)).is_ok());
}
