//! Migration 5: the `incidents` deduplication key gains the sensor.
//!
//! Before it, `ReplacingMergeTree` collapsed rows sharing
//! `(kind, hour, dst_ip, id)`, so a second sensor posting another sensor's
//! incident id (same `ts` hour and `dst_ip`) replaced the first sensor's
//! row after merges. ClickHouse cannot change a sorting key in place, so
//! the table is rebuilt, keeping every stored incident:
//!
//! 1. `incidents_v5` is created with the new key (after dropping a
//!    leftover from an interrupted run, which is only ever a partial copy);
//! 2. every row is copied (`INSERT ... SELECT`), remembering the highest
//!    block number of `incidents` before the copy began;
//! 3. `RENAME incidents TO incidents_pre5, incidents_v5 TO incidents`:
//!    writers that name `incidents` now write the new table;
//! 4. rows that reached the old table during the copy (parts with a higher
//!    block number; merged parts may repeat copied rows, which the new key
//!    deduplicates) are copied again;
//! 5. the copy is checked: the new table must hold at least as many
//!    distinct incidents (`FINAL` counts) as the old one did; only then is
//!    `incidents_pre5` dropped. A failed check leaves it in place and fails
//!    the migration, naming the table.
//!
//! An interrupted run is resumed by running `migrate` again: if
//! `incidents_pre5` exists the rename happened, so the old table is copied
//! again in full (duplicates are harmless) and steps 5 follow.
//!
//! The copy takes time and space proportional to the table (both tables
//! exist until step 5). Stop the collectors while it runs, or run it
//! through `migrate_on_start` on one collector first: a collector still
//! writing the old table during step 2 loses nothing (step 4), but a WAL
//! replay into it after step 4 would leave rows in `incidents_pre5`, which
//! step 5 then refuses to drop.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::schema::incident_columns;
use super::{exec, with_timeout, StoreError};

/// The rebuilt table: `INCIDENTS_V1`'s columns, deduplicated per sensor.
pub const INCIDENTS_V5: &str = concat!(
    "CREATE TABLE IF NOT EXISTS `{db}`.{table} (",
    incident_columns!(),
    ") ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (kind, toStartOfHour(ts), dst_ip, sensor, id)"
);

#[derive(Debug, Row, Deserialize)]
struct Count {
    n: u64,
}

async fn count(
    client: &Client,
    timeout: Duration,
    what: &str,
    sql: &str,
) -> Result<u64, StoreError> {
    with_timeout(what, timeout, async {
        client
            .query(sql)
            .with_setting("wait_end_of_query", "1")
            .fetch_one::<Count>()
            .await
            .map(|c| c.n)
            .map_err(StoreError::ch(what))
    })
    .await
}

async fn table_exists(
    client: &Client,
    timeout: Duration,
    db: &str,
    table: &str,
) -> Result<bool, StoreError> {
    let what = "look up table";
    let n = with_timeout(what, timeout, async {
        client
            .query("SELECT count() AS n FROM system.tables WHERE database = ? AND name = ?")
            .bind(db)
            .bind(table)
            .with_setting("wait_end_of_query", "1")
            .fetch_one::<Count>()
            .await
            .map(|c| c.n)
            .map_err(StoreError::ch(what))
    })
    .await?;
    Ok(n > 0)
}

/// The copies take as long as the table is big: each gets this long at
/// least, whatever `clickhouse.timeout_ms` says.
const COPY_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Runs (or resumes) the rebuild described in the module docs.
pub async fn rekey_incidents(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let copy_timeout = timeout.max(COPY_TIMEOUT);
    let old = format!("`{db}`.incidents_pre5");
    let new = format!("`{db}`.incidents_v5");
    let live = format!("`{db}`.incidents");
    if !table_exists(client, timeout, db, "incidents_pre5").await? {
        exec(
            client,
            timeout,
            "drop a partial incidents_v5",
            &format!("DROP TABLE IF EXISTS {new}"),
        )
        .await?;
        let create = INCIDENTS_V5
            .replace("{db}", db)
            .replace("{table}", "incidents_v5");
        exec(client, timeout, "create incidents_v5", &create).await?;
        let max_block = count(
            client,
            timeout,
            "read incidents block numbers",
            &format!(
                "SELECT toUInt64(max(max_block_number)) AS n FROM system.parts \
                 WHERE database = '{db}' AND table = 'incidents'"
            ),
        )
        .await?;
        exec(
            client,
            copy_timeout,
            "copy incidents into incidents_v5",
            &format!("INSERT INTO {new} SELECT * FROM {live}"),
        )
        .await?;
        exec(
            client,
            timeout,
            "rename incidents",
            &format!("RENAME TABLE {live} TO {old}, {new} TO {live}"),
        )
        .await?;
        exec(
            client,
            copy_timeout,
            "copy incidents written during the copy",
            &format!(
                "INSERT INTO {live} SELECT * FROM {old} \
                 WHERE toUInt64(splitByChar('_', _part)[3]) > {max_block}"
            ),
        )
        .await?;
    } else {
        tracing::warn!(
            table = %old,
            "resuming an interrupted rebuild of incidents: copying the old table again"
        );
        exec(
            client,
            copy_timeout,
            "copy incidents_pre5 into incidents",
            &format!("INSERT INTO {live} SELECT * FROM {old}"),
        )
        .await?;
    }
    // Every incident of the old table under the old key is at least one
    // incident under the new one.
    let before = count(
        client,
        copy_timeout,
        "count incidents_pre5",
        &format!("SELECT count() AS n FROM {old} FINAL"),
    )
    .await?;
    let after = count(
        client,
        copy_timeout,
        "count incidents",
        &format!("SELECT count() AS n FROM {live} FINAL"),
    )
    .await?;
    if after < before {
        return Err(StoreError::Check(format!(
            "migration 5: the rebuilt incidents table holds {after} incidents but the old one \
             ({old}) {before}; the old table is kept: run migrate again to retry the copy"
        )));
    }
    exec(
        client,
        timeout,
        "drop incidents_pre5",
        &format!("DROP TABLE {old}"),
    )
    .await?;
    tracing::info!(
        incidents = after,
        "incidents rebuilt with the sensor in the deduplication key"
    );
    Ok(())
}
