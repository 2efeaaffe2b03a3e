//! The `mitigation_audit` table: one row per decision (announce, withdraw,
//! refused; `dry_run_*` in dry-run mode), written as it happens.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::store::{with_timeout, StoreError};

/// One audit row, in column order of migration 6.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AuditRow {
    /// `DateTime('UTC')`: when the collector acted.
    pub ts: u32,
    /// Microseconds within `ts`.
    pub ts_us: u32,
    /// The announcement's id (UUID text; `''` for refusals).
    pub id: String,
    /// `announce`, `withdraw`, `refused`, `adopt` (taken over after a
    /// restart), and in dry-run `dry_run_announce`, `dry_run_withdraw`,
    /// `dry_run_adopt`.
    pub action: String,
    /// `announce` or `dry-run`.
    pub mode: String,
    /// `rtbh`, `flowspec` or `''` (refusals).
    pub method: String,
    /// The destination prefix.
    pub prefix: String,
    /// The whole route as given to the speaker.
    pub route: String,
    /// The attack that caused it.
    pub attack_id: String,
    /// The incident that caused it (attack_started / attack_ended).
    pub incident_id: String,
    /// Its sensor.
    pub sensor: String,
    /// Its vector.
    pub vector: String,
    /// `collector` or `analyst:NAME` (manual withdrawals).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The speaker's error, `''` when it succeeded.
    pub error: String,
}

/// Migration 6.
pub const AUDIT_V6: &str = "CREATE TABLE IF NOT EXISTS `{db}`.mitigation_audit (
    ts DateTime('UTC'),
    ts_us UInt32,
    id String,
    action String,
    mode String,
    method String,
    prefix String,
    route String,
    attack_id String,
    incident_id String,
    sensor String,
    vector String,
    actor String,
    reason String,
    error String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, id)";

/// Appends one row.
pub async fn insert(
    client: &Client,
    db: &str,
    timeout: Duration,
    row: &AuditRow,
) -> Result<(), StoreError> {
    let table = format!("`{db}`.mitigation_audit");
    let what = "insert mitigation audit row";
    with_timeout(what, timeout, async {
        let mut insert = client
            .insert_unescaped::<AuditRow>(&table)
            .await
            .map_err(StoreError::ch(what))?;
        insert.write(row).await.map_err(StoreError::ch(what))?;
        insert.end().await.map_err(StoreError::ch(what))
    })
    .await
}

/// The newest `limit` rows, newest first.
pub async fn recent(
    client: &Client,
    db: &str,
    timeout: Duration,
    limit: u64,
) -> Result<Vec<AuditRow>, StoreError> {
    let what = "read mitigation audit";
    let sql = format!(
        "SELECT ts, ts_us, id, action, mode, method, prefix, route, attack_id, incident_id, sensor, vector, actor, reason, error FROM `{db}`.mitigation_audit ORDER BY ts DESC, ts_us DESC LIMIT {limit}"
    );
    with_timeout(what, timeout, async {
        client
            .query(&sql)
            .fetch_all::<AuditRow>()
            .await
            .map_err(StoreError::ch(what))
    })
    .await
}

/// An announcement whose latest audit row is an announcement (no
/// withdrawal yet), as [`still_announced`] returns it.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct Outstanding {
    /// Announcement id.
    pub id: String,
    /// When it was announced (seconds).
    pub ts: u32,
    /// The route text.
    pub route: String,
    /// The attack.
    pub attack_id: String,
    /// The incident that started it.
    pub incident_id: String,
    /// Its sensor.
    pub sensor: String,
    /// Its vector.
    pub vector: String,
    /// Whether the attack's `attack_ended` is stored.
    pub ended: u8,
}

/// Announcements of a mode (`announce_action` is `announce` or
/// `dry_run_announce`; taken over after an earlier restart: `adopt` or
/// `dry_run_adopt`) never withdrawn, with whether their attack's end is
/// already stored: what a restarted collector takes over.
pub async fn still_announced(
    client: &Client,
    db: &str,
    timeout: Duration,
    announce_action: &str,
) -> Result<Vec<Outstanding>, StoreError> {
    let what = "read outstanding mitigations";
    let sql = format!(
        "SELECT id, first_ts AS ts, a_route AS route, a_attack AS attack_id, \
         a_incident AS incident_id, a_sensor AS sensor, a_vector AS vector, \
         a_attack IN (SELECT attack_id FROM `{db}`.incidents WHERE event = 'attack_ended' AND attack_id != '') AS ended \
         FROM (SELECT id, \
                 argMax(action, toUInt64(ts) * 1000000 + ts_us) AS last, min(ts) AS first_ts, \
                 any(route) AS a_route, any(attack_id) AS a_attack, any(incident_id) AS a_incident, \
                 any(sensor) AS a_sensor, any(vector) AS a_vector \
               FROM `{db}`.mitigation_audit WHERE id != '' GROUP BY id) \
         WHERE last IN (?, ?) ORDER BY ts"
    );

    with_timeout(what, timeout, async {
        client
            .query(&sql)
            .bind(announce_action)
            .bind(format!(
                "{}adopt",
                announce_action.strip_suffix("announce").unwrap_or("")
            ))
            .fetch_all::<Outstanding>()
            .await
            .map_err(StoreError::ch(what))
    })
    .await
}

/// The audit rows as a table for the CLI, oldest first.
pub fn render_table(rows: &[AuditRow]) -> String {
    let mut o = String::from("TIME                        ACTION            METHOD    PREFIX                 ATTACK                                ACTOR                REASON / ERROR\n");
    for r in rows.iter().rev() {
        let ts = shaobing_wire::Timestamp::from_parts(i64::from(r.ts), r.ts_us);
        let why = if r.error.is_empty() {
            r.reason.clone()
        } else {
            format!("{} (error: {})", r.reason, r.error)
        };
        o.push_str(&format!(
            "{:<27} {:<17} {:<9} {:<22} {:<37} {:<20} {}\n",
            ts.to_string(),
            r.action,
            r.method,
            r.prefix,
            r.attack_id,
            r.actor,
            why
        ));
    }
    o
}
