//! Schema and row type against a real ClickHouse server.

mod common;

use common::*;
use shaobing_collector::store::row::IncidentRow;
use shaobing_collector::store::schema::{self, MIGRATIONS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_applies_each_migration_once() {
    if skip() {
        return;
    }
    let ch = tokio::task::spawn_blocking(shaobing_testkit::ClickHouseServer::start)
        .await
        .unwrap()
        .unwrap();
    let config = config_for(&ch.http_url(), "");
    let first = shaobing_collector::migrate(&config).await.unwrap();
    assert_eq!(
        first,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let second = shaobing_collector::migrate(&config).await.unwrap();
    assert!(second.is_empty());
    let client = shaobing_collector::store::client(&config.clickhouse);
    let applied = schema::applied_versions(&client, "shaobing", std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(applied, first);
    let engine = ch
        .query(
            "SELECT engine FROM system.tables WHERE database = 'shaobing' AND name = 'incidents'",
        )
        .unwrap();
    assert_eq!(engine.trim(), "ReplacingMergeTree");
    // The suite runs on the ClickHouse that SHAOBING_CLICKHOUSE named.
    let version = ch.query("SELECT version()").unwrap();
    assert!(
        version.starts_with(&format!("{}.", ch.flavor().version())),
        "{version}"
    );
}

fn sample_row(n: u8) -> IncidentRow {
    IncidentRow {
        id: uuid::Uuid::from_bytes([n; 16]),
        schema: 1,
        sensor: "sensor-é".into(),
        kind: "volumetric".into(),
        event: "attack_update".into(),
        signature: "udp-amp".into(),
        severity: "medium".into(),
        ts: 4_000_000_000, // past 2038: DateTime is unsigned
        ts_us: 999_999,
        src_ip: "198.51.100.7".into(),
        dst_ip: "2001:db8::1".into(),
        src_port: Some(65535),
        dst_port: None,
        proto: "udp".into(),
        community_id: "1:x+y/z=".into(),
        direction: "inbound".into(),
        attack_id: uuid::Uuid::from_bytes([9; 16]).to_string(),
        vector: "dns_amp".into(),
        pps: 1,
        bps: u64::MAX,
        peak_pps: 3,
        peak_bps: u64::MAX - 1,
        packets: 5,
        bytes: 6,
        top_sources: "[{\"ip\":\"198.51.100.7\",\"packets\":5}]".into(),
        match_count: 7,
        app_proto: "dns".into(),
        excerpt: "line1\nline2\t'quote' \\ 绝".into(),
        raw: "{}".into(),
        received_at: 1_700_000_000,
        dst_net: "2001:db8:1:2::/64".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_row_round_trips_through_clickhouse_unchanged() {
    if skip() {
        return;
    }
    let ch = tokio::task::spawn_blocking(shaobing_testkit::ClickHouseServer::start)
        .await
        .unwrap()
        .unwrap();
    let config = config_for(&ch.http_url(), "");
    shaobing_collector::migrate(&config).await.unwrap();
    let client = shaobing_collector::store::client(&config.clickhouse);
    let a = sample_row(1);
    let mut b = sample_row(2);
    b.src_port = None;
    b.dst_port = Some(0);
    b.ts = 0;
    b.ts_us = 0;
    b.kind = "leak".into();
    b.dst_net = String::new();
    let mut insert = client
        .insert_unescaped::<IncidentRow>("shaobing.incidents")
        .await
        .unwrap();
    insert.write(&a).await.unwrap();
    insert.write(&b).await.unwrap();
    insert.end().await.unwrap();

    let filter = shaobing_collector::query::QueryFilter {
        since: None,
        until: None,
        kind: None,
        limit: 10,
        ..Default::default()
    };
    let rows = shaobing_collector::fetch_incidents(&config, &filter)
        .await
        .unwrap();
    // Oldest first.
    assert_eq!(rows, vec![b.clone(), a.clone()]);
    // Only the network-level attack on the prefix.
    let on_net = shaobing_collector::query::QueryFilter {
        dst_net: shaobing_collector::query::canonical_net("2001:db8:1:2::/64"),
        ..filter.clone()
    };
    let rows = shaobing_collector::fetch_incidents(&config, &on_net)
        .await
        .unwrap();
    assert_eq!(rows, vec![a.clone()]);

    // The server sees the values we meant, not just the same bytes back.
    let check = ch
        .query(&format!(
            "SELECT toString(id), toString(ts), ts_us, bps, src_port, dst_port, severity \
             FROM shaobing.incidents WHERE id = toUUID('{}') FORMAT TSV",
            a.id
        ))
        .unwrap();
    assert_eq!(
        check.trim(),
        format!(
            "{}\t2096-10-02 07:06:40\t999999\t{}\t65535\t\\N\tmedium",
            a.id,
            u64::MAX
        )
    );
}
