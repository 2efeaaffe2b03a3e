//! Retention: ClickHouse 18.16 has no TTL, so the collector drops day
//! partitions older than `[retention]` itself.
//!
//! Both tables are partitioned by `toYYYYMMDD(...)`: `incidents` by capture
//! day, `sensor_heartbeats` by receive day. A pass lists the active
//! partitions in `system.parts`, and drops (`ALTER TABLE ... DROP
//! PARTITION`) each whose day is before `today - days` (UTC). A partition
//! id is spliced into the statement only after checking it is exactly eight
//! digits. Every drop is logged and counted.
//!
//! The same task compacts closed days ([`compact_once`]) so that summaries
//! can read them without `FINAL`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::RetentionConfig;
use crate::metrics::Metrics;
use crate::store::{exec, with_timeout, StoreError};

#[derive(Debug, Row, Deserialize)]
struct PartitionRow {
    partition: String,
}

/// A partition dropped by a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Table name.
    pub table: &'static str,
    /// Partition id (`YYYYMMDD`).
    pub partition: String,
}

/// Attempts of one cluster partition drop that fails with a leader change.
const DROP_ATTEMPTS: u32 = 30;

/// ClickHouse's `LEADERSHIP_CHANGED`: a replicated drop answered while the
/// leader changes.
const LEADERSHIP_CHANGED: u32 = 292;

/// ClickHouse's `CANNOT_ASSIGN_OPTIMIZE`: with `optimize_throw_if_noop`, an
/// `OPTIMIZE` whose parts another merge holds.
const CANNOT_ASSIGN_OPTIMIZE: u32 = 388;

/// ClickHouse's `TABLE_ALREADY_EXISTS`.
const TABLE_ALREADY_EXISTS: u32 = 57;

/// `YYYYMMDD` of the UTC day `days` days before `now_secs`.
pub fn cutoff_day(now_secs: i64, days: u32) -> u32 {
    let day = now_secs.div_euclid(86_400) - i64::from(days);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    u32::try_from(y * 10_000 + m * 100 + d).unwrap_or(0)
}

/// Unix seconds at the start (00:00 UTC) of day `YYYYMMDD`; `None` for
/// an impossible date.
pub fn day_start_secs(yyyymmdd: u32) -> Option<i64> {
    let y = i64::from(yyyymmdd / 10_000);
    let m = i64::from(yyyymmdd / 100 % 100);
    let d = i64::from(yyyymmdd % 100);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

/// One retention pass over both tables at time `now_secs`; returns what it
/// dropped.
pub async fn run_once(
    client: &Client,
    db: &str,
    timeout: Duration,
    config: &RetentionConfig,
    now_secs: i64,
    metrics: &Metrics,
) -> Result<Vec<Dropped>, StoreError> {
    run_once_on(client, db, None, timeout, config, now_secs, metrics).await
}

/// [`run_once`] on one server (`cluster` `None`) or on a cluster: there
/// the old days are found through the `Distributed` tables (every shard's
/// data; `system.parts` only shows one node's) and dropped with
/// `ALTER TABLE T_local ON CLUSTER ... DROP PARTITION`, on every shard and
/// replica.
pub async fn run_once_on(
    client: &Client,
    db: &str,
    cluster: Option<&str>,
    timeout: Duration,
    config: &RetentionConfig,
    now_secs: i64,
    metrics: &Metrics,
) -> Result<Vec<Dropped>, StoreError> {
    let mut dropped = Vec::new();
    for (table, days, day_expr) in [
        ("incidents", config.incidents_days, "toYYYYMMDD(ts)"),
        ("incidents_day_summary", config.incidents_days, "day"),
        ("incidents_day_hosts", config.incidents_days, "day"),
        ("incidents_host_summary", config.incidents_days, "day"),
        ("incidents_attack_summary", config.incidents_days, "day"),
        ("incident_lookup", config.incidents_days, "toYYYYMMDD(ts)"),
        (
            "sensor_heartbeats",
            config.heartbeats_days,
            "toYYYYMMDD(received_at)",
        ),
    ] {
        if days == 0 {
            continue;
        }
        let cutoff = cutoff_day(now_secs, days);
        let what = "retention: list partitions";
        let parts: Vec<PartitionRow> = with_timeout(what, timeout, async {
            let q = match cluster {
                None => client
                    .query(
                        "SELECT DISTINCT partition FROM system.parts \
                         WHERE database = ? AND table = ? AND active ORDER BY partition",
                    )
                    .bind(db)
                    .bind(table),
                Some(_) => client
                    .query(&format!(
                        "SELECT DISTINCT toString({day_expr}) AS partition FROM `{db}`.`{table}` \
                         WHERE {day_expr} < ? ORDER BY partition"
                    ))
                    .bind(cutoff),
            };
            q.with_setting("wait_end_of_query", "1")
                .fetch_all()
                .await
                .map_err(StoreError::ch(what))
        })
        .await?;
        for p in parts {
            let id = p.partition.trim_matches('\'');
            if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(day) = id.parse::<u32>() else {
                continue;
            };
            if day >= cutoff {
                continue;
            }
            let what = "retention: drop partition";
            let sql = match cluster {
                None => format!("ALTER TABLE `{db}`.`{table}` DROP PARTITION {day}"),
                Some(c) => format!(
                    "ALTER TABLE `{db}`.`{table}_local` ON CLUSTER `{c}` DROP PARTITION {day}"
                ),
            };
            // On a cluster, 18.16 answers `Code: 292 ... Leader was
            // suddenly changed` for a while after a replica or ZooKeeper
            // restart: retried, a bounded number of times.
            let retry = Retry {
                code: LEADERSHIP_CHANGED,
                tries: if cluster.is_some() { DROP_ATTEMPTS } else { 1 },
                wait: Duration::from_secs(2),
            };
            exec_retrying(what, timeout, || client.query(&sql), &retry, |e| {
                tracing::info!(table, partition = day, error = %e, "retrying a partition drop after a leader change");
            })
            .await?;
            metrics.retention_dropped_partitions.fetch_add(1, Relaxed);
            tracing::info!(
                event = "retention_drop",
                table,
                partition = day,
                keep_days = days,
                "dropped partition older than the retention"
            );
            dropped.push(Dropped {
                table,
                partition: day.to_string(),
            });
        }
    }
    Ok(dropped)
}

#[derive(Debug, Row, Deserialize)]
struct PartStats {
    partition: String,
    parts: u64,
    min_level: u32,
}

/// When [`exec_retrying`] runs a statement again: while ClickHouse answers
/// with the error `code`, up to `tries` times in all, `wait` apart.
struct Retry {
    code: u32,
    tries: u32,
    wait: Duration,
}

/// Runs the statement `query` builds (one that returns nothing), bounded by
/// `timeout` each time, again as `retry` says, calling `on_retry` with the
/// error before each wait; the last answer.
async fn exec_retrying(
    what: &str,
    timeout: Duration,
    query: impl Fn() -> clickhouse::query::Query,
    retry: &Retry,
    on_retry: impl Fn(&StoreError),
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let q = query();
        let r = with_timeout(what, timeout, async {
            q.execute().await.map_err(StoreError::ch(what))
        })
        .await;
        match r {
            Err(e) if e.server_code() == Some(retry.code) && attempt < retry.tries => {
                on_retry(&e);
                tokio::time::sleep(retry.wait).await;
            }
            r => return r,
        }
    }
}

/// How long one `OPTIMIZE ... FINAL` may take.
pub const COMPACT_TIMEOUT: Duration = Duration::from_secs(600);

/// How often a pass asks to merge a day whose parts a background merge
/// holds, [`OPTIMIZE_RETRY`] apart, before leaving it to the next pass.
const OPTIMIZE_TRIES: u32 = 20;

/// The wait between two such tries.
const OPTIMIZE_RETRY: Duration = Duration::from_millis(500);

/// Compacts the days of `incidents` up to today: every partition up to
/// today (UTC, at `now_secs`) with more than one active part, or with an
/// unmerged one, gets `OPTIMIZE TABLE ... PARTITION day FINAL`, which
/// merges it into one part without duplicates. Summaries then read closed
/// days without `FINAL` (see [`crate::query::clean_days`]); today keeps
/// receiving new parts, and its merged part becomes the base part its
/// pre-aggregates are built from ([`crate::query::DayStates::base_parts`]),
/// so that summaries read raw only what arrived since. Then builds the
/// missing pre-aggregates ([`build_day_summaries`]). Returns the days
/// compacted.
pub async fn compact_once(
    client: &Client,
    db: &str,
    now_secs: i64,
) -> Result<Vec<u32>, StoreError> {
    compact_once_with(client, db, now_secs, &Metrics::default()).await
}

/// [`compact_once`], counting what it does in `metrics` (days merged and
/// deferred, pre-aggregates built, passes that found the build lock held).
pub async fn compact_once_with(
    client: &Client,
    db: &str,
    now_secs: i64,
    metrics: &Metrics,
) -> Result<Vec<u32>, StoreError> {
    let today = cutoff_day(now_secs, 0);
    let what = "compaction: list partitions";
    let parts: Vec<PartStats> = with_timeout(what, COMPACT_TIMEOUT, async {
        client
            .query(
                "SELECT partition, count() AS parts, min(level) AS min_level FROM system.parts \
                 WHERE database = ? AND table = 'incidents' AND active \
                 GROUP BY partition ORDER BY partition",
            )
            .with_setting("wait_end_of_query", "1")
            .bind(db)
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    let mut done = Vec::new();
    for p in parts {
        let id = p.partition.trim_matches('\'');
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(day) = id.parse::<u32>() else {
            continue;
        };
        if day > today || (p.parts == 1 && p.min_level > 0) {
            continue;
        }
        let what = "compaction: optimize partition";
        let sql = format!("OPTIMIZE TABLE `{db}`.incidents PARTITION {day} FINAL");
        let started = std::time::Instant::now();
        // Without `optimize_throw_if_noop`, an OPTIMIZE that cannot start
        // (a background merge holds some of the day's parts) returns as if
        // it had merged; with it, the pass waits for the running merge.
        let optimize = || {
            client
                .query(&sql)
                .with_setting("optimize_throw_if_noop", "1")
        };
        let retry = Retry {
            code: CANNOT_ASSIGN_OPTIMIZE,
            tries: OPTIMIZE_TRIES,
            wait: OPTIMIZE_RETRY,
        };
        match exec_retrying(what, COMPACT_TIMEOUT, optimize, &retry, |_| {}).await {
            Ok(()) => {}
            // Still merging: the next pass tries again; summaries read the
            // day's parts as they are meanwhile.
            Err(e) if e.server_code() == Some(CANNOT_ASSIGN_OPTIMIZE) => {
                tracing::info!(
                    event = "compaction_deferred",
                    partition = day,
                    parts = p.parts,
                    error = %e,
                    "ClickHouse could not merge the day (merges of its parts kept running); the next pass tries again"
                );
                metrics.compaction_deferred.fetch_add(1, Relaxed);
                continue;
            }
            Err(e) => return Err(e),
        }
        tracing::info!(
            event = "compacted",
            partition = day,
            parts = p.parts,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "compacted a day of incidents"
        );
        metrics.compacted_partitions.fetch_add(1, Relaxed);
        done.push(day);
    }
    build_day_summaries_with(client, db, metrics).await?;
    Ok(done)
}

/// Builds the pre-aggregates (`incidents_day_summary`,
/// `incidents_host_summary` per day and per hour, `incidents_attack_summary`
/// per hour) of every compacted day, and of every uncompacted day's merged
/// base part ([`crate::query::DayStates::base_parts`]), that has none, or
/// one built from another part: from the rows of that part only (`_part`).
/// Hosts and attacks are written first, so a day summary row implies its
/// host and attack rows. A part that is merged away meanwhile gets a
/// summary labelled with a part that is no longer active, which is never
/// used and is rebuilt at the next pass. A day's old pre-aggregates are
/// dropped only once their part is no longer active (its day's oldest part
/// changes only when a merge replaces it), which the summaries' check after
/// reading relies on ([`crate::query::fetch_summary`]). Collectors on one
/// server build one at a time ([`BUILD_LOCK`]); a pass that finds another
/// building builds nothing (the next pass builds what is still missing).
/// Returns the days built.
pub async fn build_day_summaries(client: &Client, db: &str) -> Result<Vec<u32>, StoreError> {
    build_day_summaries_with(client, db, &Metrics::default()).await
}

/// [`build_day_summaries`], counting the parts built and a lock found held
/// in `metrics`.
pub async fn build_day_summaries_with(
    client: &Client,
    db: &str,
    metrics: &Metrics,
) -> Result<Vec<u32>, StoreError> {
    // Most passes have nothing to build: no lock taken then.
    if missing_summaries(client, db).await?.is_empty() {
        return Ok(Vec::new());
    }
    if !take_build_lock(client, db).await? {
        tracing::debug!(
            event = "day_summary_locked",
            "another collector is building pre-aggregates; this pass builds none"
        );
        metrics.pre_aggregate_lock_busy.fetch_add(1, Relaxed);
        return Ok(Vec::new());
    }
    let built = build_unlocked(client, db, metrics).await;
    let released = drop_build_lock(client, db, "pre-aggregates: release lock").await;
    let built = built?;
    released?;
    Ok(built)
}

/// The table whose existence says that a collector is building
/// pre-aggregates: ClickHouse creates a table name once, so `CREATE TABLE`
/// without `IF NOT EXISTS` is a lock between the collectors of one server
/// (without it, two collectors building the same part at once would both
/// insert its rows, doubling its counts in every summary).
const BUILD_LOCK: &str = "summary_build_lock";

/// A lock held longer than this was left by a collector that stopped
/// while building (a build takes seconds): it is dropped, and the next
/// pass builds.
const STALE_LOCK_S: u32 = 3600;

#[derive(Debug, Row, Deserialize)]
struct LockRow {
    held: u64,
    age: u32,
}

/// Takes the pre-aggregate build lock ([`BUILD_LOCK`]); false if another
/// collector holds it (a stale one is dropped first, for the next pass).
async fn take_build_lock(client: &Client, db: &str) -> Result<bool, StoreError> {
    let what = "pre-aggregates: take lock";
    let create = format!("CREATE TABLE `{db}`.`{BUILD_LOCK}` (since DateTime) ENGINE = Memory");
    let created = exec(client, COMPACT_TIMEOUT, what, &create).await;
    let mark = format!("INSERT INTO `{db}`.`{BUILD_LOCK}` SELECT now()");
    match created {
        Ok(()) => {
            // Held from its creation; the mark only dates it (a lock with
            // no mark is dated by the next collector that sees it).
            if let Err(e) = exec(client, COMPACT_TIMEOUT, what, &mark).await {
                tracing::debug!(error = %e, "could not date the pre-aggregate build lock");
            }
            return Ok(true);
        }
        // TABLE_ALREADY_EXISTS: another collector builds.
        Err(e) if e.server_code() == Some(TABLE_ALREADY_EXISTS) => {}
        // Anything else (the table being dropped by its holder, say): not
        // taken; the next pass tries again.
        Err(e) => {
            tracing::warn!(
                event = "day_summary_lock_failed",
                error = %e,
                "could not take the pre-aggregate build lock; building at the next pass"
            );
            return Ok(false);
        }
    }
    let q = client
        .query(&format!(
            "SELECT count() AS held, toUInt32(if(count() = 0, 0, greatest(toInt64(now()) - toInt64(min(since)), 0))) AS age \
             FROM `{db}`.`{BUILD_LOCK}`"
        ))
        .with_setting("wait_end_of_query", "1");
    let state: Result<Vec<LockRow>, StoreError> = with_timeout(what, COMPACT_TIMEOUT, async {
        q.fetch_all().await.map_err(StoreError::ch(what))
    })
    .await;
    let Ok(state) = state else {
        // Released between the two statements.
        return Ok(false);
    };
    match state.first() {
        // Created but not yet marked, or its holder stopped in between:
        // marked now, so that it turns stale in time.
        Some(LockRow { held: 0, .. }) | None => {
            let _ = exec(client, COMPACT_TIMEOUT, what, &mark).await;
        }
        Some(LockRow { age, .. }) if *age > STALE_LOCK_S => {
            tracing::warn!(
                event = "day_summary_lock_stale",
                age_s = age,
                "dropping a pre-aggregate build lock left by a collector that stopped"
            );
            drop_build_lock(client, db, what).await?;
        }
        Some(_) => {}
    }
    Ok(false)
}

/// Drops the build lock ([`BUILD_LOCK`]): released by its holder, or
/// found stale.
async fn drop_build_lock(client: &Client, db: &str, what: &str) -> Result<(), StoreError> {
    let sql = format!("DROP TABLE IF EXISTS `{db}`.`{BUILD_LOCK}`");
    exec(client, COMPACT_TIMEOUT, what, &sql).await
}

/// The `(day, part)` of every compacted day and uncompacted day's merged
/// base part without pre-aggregates of that part.
async fn missing_summaries(client: &Client, db: &str) -> Result<Vec<(u32, String)>, StoreError> {
    let states = crate::query::day_states(client, db, COMPACT_TIMEOUT).await?;
    let built = crate::query::day_summary_keys(client, db, COMPACT_TIMEOUT).await?;
    Ok(states
        .clean_parts
        .into_iter()
        .chain(states.base_parts)
        .filter(|(day, part)| !built.iter().any(|(d, p)| d == day && p == part))
        .collect())
}

/// [`build_day_summaries`] with the lock held.
async fn build_unlocked(
    client: &Client,
    db: &str,
    metrics: &Metrics,
) -> Result<Vec<u32>, StoreError> {
    let mut done = Vec::new();
    for (day, part) in &missing_summaries(client, db).await? {
        let Some(start) = day_start_secs(*day) else {
            continue;
        };
        let start = u32::try_from(start).unwrap_or(0);
        let end = start.saturating_add(86_400);
        let range = "ts >= toDateTime(?) AND ts < toDateTime(?) AND _part = ?";
        // Every statement but the drops binds (day, part, start, end,
        // part).
        let drops = [
            format!("ALTER TABLE `{db}`.incidents_day_summary DROP PARTITION {day}"),
            // Written before migration 4; no longer read.
            format!("ALTER TABLE `{db}`.incidents_day_hosts DROP PARTITION {day}"),
            format!("ALTER TABLE `{db}`.incidents_host_summary DROP PARTITION {day}"),
            format!("ALTER TABLE `{db}`.incidents_attack_summary DROP PARTITION {day}"),
        ];
        // Per day (`hour = 0`), then per hour.
        let hosts = |hour: &str, group: &str| {
            [
                format!(
                    "INSERT INTO `{db}`.incidents_host_summary SELECT toUInt32(?), ?, {hour} AS h, \
                     'target', dst_ip, count(), toUInt64(0), groupUniqArray(cityHash64(attack_id)) \
                     FROM `{db}`.incidents WHERE {range} AND kind = 'volumetric' AND dst_ip != '' \
                     GROUP BY {group}dst_ip"
                ),
                format!(
                    "INSERT INTO `{db}`.incidents_host_summary SELECT toUInt32(?), ?, {hour} AS h, \
                     'leaker', src_ip, count(), sum(match_count), emptyArrayUInt64() \
                     FROM `{db}`.incidents WHERE {range} AND kind = 'leak' AND src_ip != '' \
                     GROUP BY {group}src_ip"
                ),
            ]
        };
        let mut inserts = Vec::new();
        inserts.extend(hosts("toUInt32(0)", ""));
        inserts.extend(hosts("toUInt32(toStartOfHour(ts))", "h, "));
        // Each attack's state per hour (see `crate::store::schema::ATTACK_SUMMARY_V8`).
        let us = "(toUInt64(ts) * 1000000 + ts_us)";
        inserts.push(format!(
            "INSERT INTO `{db}`.incidents_attack_summary SELECT toUInt32(?), ?, \
             toUInt32(toStartOfHour(ts)) AS h, cityHash64(attack_id), attack_id, any(vector), \
             any(dst_ip), any(sensor), argMax(severity, {us}), min({us}), max({us}), \
             argMax(pps, {us}), argMax(bps, {us}), max(peak_pps), max(peak_bps), \
             max(event = 'attack_ended'), count() \
             FROM `{db}`.incidents WHERE {range} AND kind = 'volumetric' AND attack_id != '' \
             GROUP BY h, attack_id"
        ));
        // Last: a day summary row implies the host and attack rows.
        inserts.push(format!(
            "INSERT INTO `{db}`.incidents_day_summary SELECT toUInt32(?), ?, \
             toUInt32(toStartOfHour(ts)) AS hour, kind, vector, signature, severity, count() \
             FROM `{db}`.incidents WHERE {range} \
             GROUP BY hour, kind, vector, signature, severity"
        ));
        let what = "day summary";
        let started = std::time::Instant::now();
        for sql in &drops {
            exec(client, COMPACT_TIMEOUT, what, sql).await?;
        }
        for sql in &inserts {
            let q = client
                .query(sql)
                .bind(*day)
                .bind(part.as_str())
                .bind(start)
                .bind(end)
                .bind(part.as_str());
            with_timeout(what, COMPACT_TIMEOUT, async {
                q.execute().await.map_err(StoreError::ch(what))
            })
            .await?;
        }
        tracing::info!(
            event = "day_summary_built",
            partition = day,
            part = part.as_str(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "built the pre-aggregates of a day's merged part"
        );
        metrics.pre_aggregates_built.fetch_add(1, Relaxed);
        done.push(*day);
    }
    Ok(done)
}

/// Runs a retention pass and a compaction pass ([`compact_once`]) at start,
/// then a retention pass every `interval_s` and a compaction pass every
/// `compact_interval_s`, until `shutdown` turns `true`. Failures are
/// logged and retried at the next pass.
pub async fn run(
    client: Client,
    db: String,
    cluster: Option<String>,
    timeout: Duration,
    config: RetentionConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_retention: Option<i64> = None;
    loop {
        let now = i64::from(crate::store::schema::now_secs());
        let on = cluster.as_deref();
        let due = last_retention.is_none_or(|t| {
            now.saturating_sub(t) >= i64::try_from(config.interval_s).unwrap_or(i64::MAX)
        });
        if due {
            last_retention = Some(now);
            if let Err(e) = run_once_on(&client, &db, on, timeout, &config, now, &metrics).await {
                tracing::warn!(event = "retention_failed", error = %e, "retention pass failed; retrying at the next pass");
            }
        }
        let compacted = compact_once_with(&client, &db, now, &metrics).await;
        metrics.compaction_passes.fetch_add(1, Relaxed);
        if let Err(e) = compacted {
            metrics.compaction_failures.fetch_add(1, Relaxed);
            tracing::warn!(event = "compaction_failed", error = %e, "compaction failed; retrying at the next pass");
        }
        let next_retention = last_retention.map_or(0, |t| {
            (t + i64::try_from(config.interval_s).unwrap_or(i64::MAX))
                .saturating_sub(i64::from(crate::store::schema::now_secs()))
        });
        let sleep_s = config
            .compact_interval_s
            .min(u64::try_from(next_retention.max(1)).unwrap_or(1));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(sleep_s)) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_day_is_the_utc_calendar_day() {
        // 2023-11-14T22:13:20Z
        assert_eq!(cutoff_day(1_700_000_000, 0), 20231114);
        assert_eq!(cutoff_day(1_700_000_000, 14), 20231031);
        assert_eq!(cutoff_day(1_700_000_000, 365), 20221114);
        assert_eq!(cutoff_day(0, 0), 19700101);
        // 2024-03-01 minus one day is a leap day.
        assert_eq!(cutoff_day(1_709_251_200, 1), 20240229);
    }

    #[test]
    fn day_start_is_midnight_utc_and_inverts_cutoff_day() {
        assert_eq!(day_start_secs(19700101), Some(0));
        assert_eq!(day_start_secs(20231114), Some(1_699_920_000));
        assert_eq!(day_start_secs(20240229), Some(1_709_164_800));
        assert_eq!(day_start_secs(20241399), None);
        for secs in [0i64, 1_700_000_000, 1_795_996_800, 4_000_000_000] {
            let day = cutoff_day(secs, 0);
            let start = day_start_secs(day).unwrap();
            assert!(start <= secs && secs < start + 86_400, "{day}");
        }
    }
}
