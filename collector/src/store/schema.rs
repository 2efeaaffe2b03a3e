//! The schema, as a versioned list of migrations.
//!
//! Each [`Migration`] is a list of statements with `{db}` standing for the
//! configured database (an identifier checked by config validation). They
//! use `IF NOT EXISTS` so re-running one is harmless; applied versions are
//! recorded in `{db}.schema_migrations`, and [`migrate`] applies the missing
//! ones in order. To change the schema, append a migration; never edit one
//! that has shipped.
//!
//! Everything here runs on ClickHouse 18.16 and on current releases: no
//! DateTime64, IPv4/IPv6, Map, Bool, LowCardinality, CODEC or TTL.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::{with_timeout, StoreError};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version number.
    pub version: u32,
    /// What it does, recorded with it.
    pub description: &'static str,
    /// Statements, `{db}` replaced by the database name.
    pub statements: &'static [&'static str],
    /// A step that is more than statements, run after them.
    pub custom: Option<Custom>,
}

/// Migration steps written in Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    /// Rebuild `incidents` with the sensor in its deduplication key
    /// ([`super::rekey`]).
    RekeyIncidentsBySensor,
}

/// The columns of `incidents`, as migration 1 created them and migration 5
/// rebuilt them ([`super::rekey::INCIDENTS_V5`]).
macro_rules! incident_columns {
    () => {
        "id UUID, schema UInt16, sensor String, kind String, \
         event String, signature String, severity String, \
         ts DateTime('UTC'), ts_us UInt32, src_ip String, \
         dst_ip String, src_port Nullable(UInt16), \
         dst_port Nullable(UInt16), proto String, community_id String, \
         direction String, attack_id String, vector String, \
         pps UInt64, bps UInt64, peak_pps UInt64, peak_bps UInt64, \
         packets UInt64, bytes UInt64, top_sources String, \
         match_count UInt64, app_proto String, excerpt String, \
         raw String, received_at DateTime('UTC')"
    };
}
pub(crate) use incident_columns;

/// The `incidents` table.
///
/// * One column per wire field so analysts filter without parsing JSON;
///   absent optional fields are `''` / `0` (ports are `Nullable(UInt16)`
///   because port 0 is a real value). `severity`, `kind`, `event` and
///   `direction` are plain `String`s holding the wire names.
/// * `ts` is `DateTime('UTC')` (seconds) plus `ts_us` (microseconds within
///   the second): 18.16 has no DateTime64. Incidents outside 1970..2106
///   cannot be stored and are rejected at ingest.
/// * `raw` is the incident JSON as received, after the collector set
///   `sensor` from the token: the source for `query --json`.
/// * Deduplication: `ReplacingMergeTree(received_at)` collapses rows with the
///   same sorting key, which is built only from incident content
///   (`kind`, `ts`, `dst_ip`, `id`), so a re-delivered incident replaces its
///   earlier copy (the latest `received_at` wins). Merges are eventual: read
///   with `FINAL`. Migration 5 ([`super::rekey`]) adds `sensor` to the key.
pub const INCIDENTS_V1: &str = concat!(
    "CREATE TABLE IF NOT EXISTS `{db}`.incidents (",
    incident_columns!(),
    ") ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (kind, toStartOfHour(ts), dst_ip, id)"
);

/// The `sensor_heartbeats` table: one row per `POST /api/v1/heartbeat`.
///
/// Plain MergeTree (heartbeats are not retried by id), partitioned by the
/// day the collector received them so retention does not depend on sensor
/// clocks. Per-signature hit counts are two parallel arrays (no Map on
/// 18.16).
pub const HEARTBEATS_V2: &str = "CREATE TABLE IF NOT EXISTS `{db}`.sensor_heartbeats (
    sensor String,
    ts DateTime('UTC'),
    ts_us UInt32,
    received_at DateTime('UTC'),
    version String,
    uptime_s UInt64,
    packets UInt64,
    bytes UInt64,
    kernel_drops UInt64,
    pps UInt64,
    bps UInt64,
    spool_depth UInt64,
    signature_names Array(String),
    signature_hits Array(UInt64),
    raw String
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (sensor, received_at)";

/// Per-day pre-aggregates of compacted days, for unfiltered summaries
/// (`crate::retention::build_day_summaries`): counts by hour, kind,
/// vector, signature and severity. `part` names the `incidents` part the
/// day was summarised from; a summary is used only while that part is still
/// the day's only part.
pub const DAY_SUMMARY_V3: &str = "CREATE TABLE IF NOT EXISTS `{db}`.incidents_day_summary (
    day UInt32,
    part String,
    hour UInt32,
    kind String,
    vector String,
    signature String,
    severity String,
    n UInt64
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, hour)";

/// Per-day, per-host pre-aggregates of compacted days: attacked hosts
/// (`role = 'target'`, with the day's distinct attack ids) and leaking
/// sources (`role = 'leaker'`, `score` = signature matches).
pub const DAY_HOSTS_V3: &str = "CREATE TABLE IF NOT EXISTS `{db}`.incidents_day_hosts (
    day UInt32,
    part String,
    role String,
    ip String,
    n UInt64,
    score UInt64,
    attack_ids Array(String)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, role, ip)";

/// Per-host pre-aggregates of compacted days, replacing
/// `incidents_day_hosts` (no longer written): per day (`hour = 0`) and per
/// capture hour (`hour` = its start, Unix seconds), so that a summary whose
/// window cuts a compacted day reads that day's whole hours pre-aggregated
/// and only the sub-hour fragments raw. Attack ids are kept as their
/// `cityHash64` (distinct counts over 8-byte hashes instead of 36-byte
/// strings: the costliest part of a 7-day summary).
pub const HOST_SUMMARY_V4: &str = "CREATE TABLE IF NOT EXISTS `{db}`.incidents_host_summary (
    day UInt32,
    part String,
    hour UInt32,
    role String,
    ip String,
    n UInt64,
    score UInt64,
    attacks Array(UInt64)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, role, hour, ip)";

/// Day summaries built before migration 4 have no host summary rows:
/// forget them (derived data), so the next maintenance pass rebuilds every
/// day with both.
pub const FORGET_DAY_SUMMARIES_V4: &str = "TRUNCATE TABLE `{db}`.incidents_day_summary";

/// `dst_net` of network-level volumetric incidents (the attacked prefix,
/// `''` for every other incident), after the version 1 columns.
pub const INCIDENTS_DST_NET_V7: &str =
    "ALTER TABLE `{db}`.incidents ADD COLUMN dst_net String DEFAULT '' AFTER received_at";

/// The id lookup: where (which capture second) each incident id and each
/// attack id is stored, so the console's detail pages read only those
/// partitions of `incidents` instead of every one (an id says nothing
/// about its time unless it is a sensor's UUIDv7, and attack ids are
/// not in the sorting key). `key` is `cityHash64` of the id's text
/// (18.16 cannot hash a UUID): a collision only widens the time range
/// read, whose rows are then matched on the id itself. `attack` is 1 for
/// an attack id. Filled by the two materialized views below on every
/// insert into `incidents`, whatever the writer; plain MergeTree (a
/// re-delivered incident adds a duplicate row, which the readers'
/// `min`/`max`/`DISTINCT` ignore), partitioned like `incidents` so
/// retention drops both together; small granules, since every read is a
/// point lookup in each partition.
pub const INCIDENT_LOOKUP_V8: &str = "CREATE TABLE IF NOT EXISTS `{db}`.incident_lookup (
    key UInt64,
    attack UInt8,
    ts DateTime('UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (key, attack, ts)
SETTINGS index_granularity = 1024";

/// Fills `incident_lookup` with each inserted incident's id.
pub const INCIDENT_IDS_MV_V8: &str =
    "CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.incident_lookup_ids \
TO `{db}`.incident_lookup AS SELECT cityHash64(toString(id)) AS key, toUInt8(0) AS attack, ts \
FROM `{db}`.incidents";

/// Fills `incident_lookup` with each inserted attack event's attack id.
pub const ATTACK_IDS_MV_V8: &str =
    "CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.incident_lookup_attacks \
TO `{db}`.incident_lookup AS SELECT cityHash64(attack_id) AS key, toUInt8(1) AS attack, ts \
FROM `{db}`.incidents WHERE attack_id != ''";

/// The incidents stored before migration 8 (run after the views exist:
/// a row inserted in between is looked up twice, which is harmless).
pub const BACKFILL_IDS_V8: &str = "INSERT INTO `{db}`.incident_lookup \
SELECT cityHash64(toString(id)) AS key, toUInt8(0) AS attack, ts FROM `{db}`.incidents";

/// The attack events stored before migration 8.
pub const BACKFILL_ATTACKS_V8: &str = "INSERT INTO `{db}`.incident_lookup \
SELECT cityHash64(attack_id) AS key, toUInt8(1) AS attack, ts FROM `{db}`.incidents \
WHERE attack_id != ''";

/// Per-hour state of each attack in compacted days, for the console's
/// attack list (`GET /api/v1/overview`): first and last event
/// (microseconds), severity and rate of the hour's latest event, highest
/// peaks, whether an `attack_ended` was seen, events. `attack` is
/// `cityHash64(attack_id)`, the overview ranks attacks by it before it
/// reads the other columns of the chosen few. Built with the day summary
/// ([`crate::retention::build_day_summaries`]), labelled with the same
/// part.
pub const ATTACK_SUMMARY_V8: &str = "CREATE TABLE IF NOT EXISTS `{db}`.incidents_attack_summary (
    day UInt32,
    part String,
    hour UInt32,
    attack UInt64,
    attack_id String,
    vector String,
    dst_ip String,
    sensor String,
    severity String,
    first_us UInt64,
    last_us UInt64,
    pps UInt64,
    bps UInt64,
    peak_pps UInt64,
    peak_bps UInt64,
    ended UInt8,
    events UInt64
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, hour, attack)";

/// All migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "incidents table",
        statements: &[INCIDENTS_V1],
        custom: None,
    },
    Migration {
        version: 2,
        description: "sensor_heartbeats table",
        statements: &[HEARTBEATS_V2],
        custom: None,
    },
    Migration {
        version: 3,
        description: "per-day summary tables",
        statements: &[DAY_SUMMARY_V3, DAY_HOSTS_V3],
        custom: None,
    },
    Migration {
        version: 4,
        description: "per-day and per-hour host summary table",
        statements: &[HOST_SUMMARY_V4, FORGET_DAY_SUMMARIES_V4],
        custom: None,
    },
    Migration {
        version: 5,
        description: "incidents deduplicated per sensor (rebuilt with sensor in the key)",
        statements: &[],
        custom: Some(Custom::RekeyIncidentsBySensor),
    },
    Migration {
        version: 6,
        description: "mitigation_audit table",
        statements: &[crate::mitigation::audit::AUDIT_V6],
        custom: None,
    },
    Migration {
        version: 7,
        description: "incidents.dst_net column (network-level attacks)",
        statements: &[INCIDENTS_DST_NET_V7],
        custom: None,
    },
    Migration {
        version: 8,
        description: "incident_lookup (ids to capture time) and per-hour attack summaries",
        statements: &[
            INCIDENT_LOOKUP_V8,
            INCIDENT_IDS_MV_V8,
            ATTACK_IDS_MV_V8,
            BACKFILL_IDS_V8,
            BACKFILL_ATTACKS_V8,
            ATTACK_SUMMARY_V8,
            // Day summaries built before have no attack rows: rebuilt at
            // the next maintenance pass.
            FORGET_DAY_SUMMARIES_V4,
        ],
        custom: None,
    },
];

const CREATE_DATABASE: &str = "CREATE DATABASE IF NOT EXISTS `{db}`";

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS `{db}`.schema_migrations (
    version UInt32,
    description String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version";

#[derive(Debug, Row, Serialize, Deserialize)]
struct MigrationRow {
    version: u32,
    description: String,
    applied_at: u32,
}

#[derive(Debug, Row, Deserialize)]
struct VersionRow {
    version: u32,
}

fn sql(template: &str, db: &str) -> String {
    template.replace("{db}", db)
}

/// Creates the database and applies every migration not yet recorded.
/// Idempotent; returns the versions it applied now.
pub async fn migrate(client: &Client, db: &str, timeout: Duration) -> Result<Vec<u32>, StoreError> {
    migrate_up_to(client, db, None, timeout, u32::MAX).await
}

/// [`migrate`] on one node (`cluster` `None`) or on a cluster
/// ([`super::cluster`]), but only the migrations up to version `last`
/// (tests build an older schema with it to check an upgrade).
pub async fn migrate_up_to(
    client: &Client,
    db: &str,
    cluster: Option<&str>,
    timeout: Duration,
    last: u32,
) -> Result<Vec<u32>, StoreError> {
    let exec = |s: String, what: String| async move {
        with_timeout(&what, timeout, async {
            client
                .query(&s)
                .execute()
                .await
                .map_err(StoreError::ch(what.clone()))
        })
        .await
    };
    match cluster {
        None => {
            for stmt in [CREATE_DATABASE, CREATE_MIGRATIONS_TABLE] {
                exec(sql(stmt, db), "create schema_migrations".to_string()).await?;
            }
        }
        Some(c) => {
            super::cluster::preflight(client, c, timeout).await?;
            let create_db = format!("CREATE DATABASE IF NOT EXISTS `{db}` ON CLUSTER `{c}`");
            exec(create_db, "create database on cluster".to_string()).await?;
            let create = sql(super::cluster::CREATE_MIGRATIONS_TABLE, db).replace("{cluster}", c);
            exec(create, "create schema_migrations on cluster".to_string()).await?;
        }
    }
    let applied = applied_versions(client, db, timeout).await?;
    let pending: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| m.version <= last && !applied.contains(&m.version))
        .collect();
    // Every statement is translated before any runs: a migration that
    // cannot run on a cluster creates nothing.
    let mut plans: Vec<Vec<String>> = Vec::new();
    for m in &pending {
        let mut plan = Vec::new();
        for stmt in m.statements {
            match cluster {
                None => plan.push(sql(stmt, db)),
                Some(c) => {
                    let out = super::cluster::translate(stmt, c)
                        .map_err(|e| StoreError::Check(format!("migration {}: {e}", m.version)))?;
                    plan.extend(out.iter().map(|s| sql(s, db)));
                }
            }
        }
        plans.push(plan);
    }
    let mut now_applied = Vec::new();
    for (m, plan) in pending.into_iter().zip(plans) {
        let what = format!("migration {} ({})", m.version, m.description);
        for s in plan {
            exec(s, what.clone()).await?;
        }
        match (m.custom, cluster) {
            (Some(Custom::RekeyIncidentsBySensor), None) => {
                super::rekey::rekey_incidents(client, db, timeout).await?
            }
            // Cluster tables have the sensor in the key from the start.
            (Some(Custom::RekeyIncidentsBySensor), Some(_)) | (None, _) => {}
        }
        let row = MigrationRow {
            version: m.version,
            description: m.description.to_string(),
            applied_at: now_secs(),
        };
        let table = format!("`{db}`.schema_migrations");
        with_timeout(&what, timeout, async {
            let mut insert = client
                .insert_unescaped::<MigrationRow>(&table)
                .await
                .map_err(StoreError::ch(what.clone()))?;
            insert
                .write(&row)
                .await
                .map_err(StoreError::ch(what.clone()))?;
            insert.end().await.map_err(StoreError::ch(what.clone()))
        })
        .await?;
        tracing::info!(
            version = m.version,
            description = m.description,
            "migration applied"
        );
        now_applied.push(m.version);
    }
    Ok(now_applied)
}

/// Versions recorded in `{db}.schema_migrations`, ascending.
pub async fn applied_versions(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<Vec<u32>, StoreError> {
    let s = format!("SELECT DISTINCT version FROM `{db}`.schema_migrations ORDER BY version");
    with_timeout("read schema_migrations", timeout, async {
        let rows: Vec<VersionRow> = client
            .query(&s)
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch("read schema_migrations"))?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    })
    .await
}

pub(crate) fn now_secs() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_versions_strictly_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert!(MIGRATIONS
            .iter()
            .all(|m| m.version > 0 && (!m.statements.is_empty() || m.custom.is_some())));
    }
}
