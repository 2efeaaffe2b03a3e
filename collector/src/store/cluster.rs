//! Cluster mode (`[clickhouse] cluster = "NAME"`): the schema on a
//! replicated, sharded ClickHouse cluster.
//!
//! Every table `T` of the single-node schema becomes two, both created
//! `ON CLUSTER`:
//!
//! * `T_local` on every node: the same columns, key and partitioning, with
//!   the replicated engine (`ReplicatedReplacingMergeTree` /
//!   `ReplicatedMergeTree`, ZooKeeper path `/clickhouse/tables/{shard}/DB/T`,
//!   replica `{replica}`, from each server's `<macros>`);
//! * `T` itself: a `Distributed` table over `T_local`. `incidents` is
//!   sharded by `cityHash64(toString(id))` (18.16 cannot hash a UUID), so every delivery of an incident lands on
//!   the same shard, where `ReplacingMergeTree` deduplicates it and `FINAL`
//!   through the `Distributed` table is exact; the other tables by `rand()`.
//!
//! Because the `Distributed` tables keep the single-node names, ingest,
//! heartbeats, queries, summaries and the console read and write them
//! unchanged. Inserts carry `insert_distributed_sync = 1` (see
//! [`super::client`]): the collector acknowledges only after every shard
//! stored its rows (otherwise the entry node queues them on its disk and
//! sends them later).
//!
//! `schema_migrations` is one replicated table shared by every node
//! (ZooKeeper path `/clickhouse/tables/global/DB/schema_migrations`).
//! Materialized views (`CREATE MATERIALIZED VIEW ... TO T2 AS SELECT ...
//! FROM T1`) are created `ON CLUSTER` from `T1_local` into `T2_local`: an
//! insert fires the view on the node that stores the rows, and `T2_local`
//! replicates. `INSERT INTO ... SELECT` (backfills) runs once, through the
//! Distributed tables. Other statements cannot be translated and fail the
//! whole `migrate` before anything is created. `TRUNCATE` of derived tables is skipped (a new cluster has
//! nothing to forget), and so is migration 5's table rebuild: cluster
//! tables are created with the sensor in the key from the start.
//!
//! Before any DDL, [`preflight`] checks the cluster exists in
//! `remote_servers`, and that every node of it is reachable, reaches
//! ZooKeeper and has the `shard` and `replica` macros, and says which of
//! these is wrong (and where): a misconfigured cluster gets no database and
//! no table.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{with_timeout, StoreError};

/// The old (single-node, before migration 5) sorting key of `incidents`.
const OLD_INCIDENTS_KEY: &str = "ORDER BY (kind, toStartOfHour(ts), dst_ip, id)";
/// The sorting key with the sensor (migration 5).
const INCIDENTS_KEY: &str = "ORDER BY (kind, toStartOfHour(ts), dst_ip, sensor, id)";

/// `schema_migrations` in cluster mode.
pub const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS `{db}`.schema_migrations ON CLUSTER `{cluster}` (
    version UInt32,
    description String,
    applied_at DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/global/{db}/schema_migrations', '{replica}', applied_at)
ORDER BY version";

/// A single-node statement that has no cluster translation.
#[derive(Debug, thiserror::Error)]
#[error("statement cannot run in cluster mode (only CREATE TABLE, CREATE MATERIALIZED VIEW, ALTER TABLE, INSERT INTO and TRUNCATE are translated): {0}")]
pub struct Untranslatable(pub String);

/// The name after `prefix` `{db}`. in `stmt`, up to a space or `(`.
fn table_after<'a>(stmt: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = stmt.strip_prefix(prefix)?.strip_prefix("`{db}`.")?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let name = rest.get(..end)?.trim_matches('`');
    Some((name, rest.get(end..)?.trim_start()))
}

/// The statements (with `{db}` still in them) that do on a cluster what
/// `stmt` does on one node.
pub fn translate(stmt: &str, cluster: &str) -> Result<Vec<String>, Untranslatable> {
    let stmt = stmt.trim();
    let on = format!("ON CLUSTER `{cluster}`");
    if let Some((name, rest)) = table_after(stmt, "CREATE TABLE IF NOT EXISTS ") {
        let path = format!("'/clickhouse/tables/{{shard}}/{{db}}/{name}', '{{replica}}'");
        let mut local = format!("CREATE TABLE IF NOT EXISTS `{{db}}`.{name}_local {on} {rest}");
        if let Some(i) = local.find("ENGINE = ReplacingMergeTree(") {
            let at = i + "ENGINE = ReplacingMergeTree(".len();
            local.replace_range(
                i..at,
                &format!("ENGINE = ReplicatedReplacingMergeTree({path}, "),
            );
        } else if let Some(i) = local.find("ENGINE = MergeTree") {
            let at = i + "ENGINE = MergeTree".len();
            local.replace_range(i..at, &format!("ENGINE = ReplicatedMergeTree({path})"));
        } else {
            return Err(Untranslatable(stmt.to_string()));
        }
        if name == "incidents" {
            local = local.replace(OLD_INCIDENTS_KEY, INCIDENTS_KEY);
        }
        return Ok(vec![local, distributed(name, cluster)]);
    }
    if let Some((name, rest)) = table_after(stmt, "ALTER TABLE ") {
        // 18.16 refuses `ALTER ... ON CLUSTER` on the (not replicated)
        // Distributed table of a replicated cluster: it is dropped and
        // created again over the altered local table (it holds no data:
        // inserts are synchronous).
        return Ok(vec![
            format!("ALTER TABLE `{{db}}`.{name}_local {on} {rest}"),
            format!("DROP TABLE IF EXISTS `{{db}}`.{name} {on}"),
            distributed(name, cluster),
        ]);
    }
    if let Some((name, rest)) = table_after(stmt, "CREATE MATERIALIZED VIEW IF NOT EXISTS ") {
        // On every node, from its local table into its local table: an
        // insert fires the view on the node that stores the rows, and the
        // target replicates like any other table.
        let Some((target, select)) = rest
            .strip_prefix("TO `{db}`.")
            .and_then(|r| r.split_once(" AS SELECT "))
        else {
            return Err(Untranslatable(stmt.to_string()));
        };
        let Some((cols, source)) = select.split_once(" FROM `{db}`.") else {
            return Err(Untranslatable(stmt.to_string()));
        };
        let (source, tail) = source.split_once(' ').unwrap_or((source, ""));
        return Ok(vec![format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `{{db}}`.{name} {on} TO `{{db}}`.{target}_local \
             AS SELECT {cols} FROM `{{db}}`.{source}_local {tail}"
        )
        .trim_end()
        .to_string()]);
    }
    if stmt.starts_with("INSERT INTO `{db}`.") {
        // Through the Distributed tables, from one node.
        return Ok(vec![stmt.to_string()]);
    }
    if stmt.starts_with("TRUNCATE TABLE ") {
        return Ok(Vec::new());
    }
    Err(Untranslatable(stmt.to_string()))
}

/// The `Distributed` table `name` over `name_local`.
fn distributed(name: &str, cluster: &str) -> String {
    let key = if name == "incidents" {
        "cityHash64(toString(id))"
    } else {
        "rand()"
    };
    format!(
        "CREATE TABLE IF NOT EXISTS `{{db}}`.{name} ON CLUSTER `{cluster}` AS `{{db}}`.{name}_local \
         ENGINE = Distributed(`{cluster}`, `{{db}}`, {name}_local, {key})"
    )
}

#[derive(Debug, Row, Deserialize)]
struct Count {
    n: u64,
}

#[derive(Debug, Row, Deserialize)]
struct Node {
    host_address: String,
    port: u16,
}

#[derive(Debug, Row, Deserialize)]
struct Macro {
    name: String,
}

/// The macros every node needs (the replicated tables' ZooKeeper path and
/// replica name).
const MACROS: [&str; 2] = ["shard", "replica"];

/// What is wrong with the cluster, before anything is created: the
/// cluster must be in the entry node's `system.clusters`, ZooKeeper must
/// answer on the entry node, and every node of the cluster must be
/// reachable, answer ZooKeeper too and define the `shard` and `replica`
/// macros. Each check is bounded by `timeout`; the first failure is a
/// [`StoreError::Check`] naming the node and what to fix.
pub async fn preflight(
    client: &Client,
    cluster: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let what = "cluster check: read system.clusters";
    let nodes: Vec<Node> = with_timeout(what, timeout, async {
        client
            .query("SELECT host_address, toUInt16(port) AS port FROM system.clusters WHERE cluster = ?")
            .bind(cluster)
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    if nodes.is_empty() {
        return Err(StoreError::Check(format!(
            "cluster mode: the server has no cluster named {cluster:?} in <remote_servers> \
             (clickhouse.cluster must name one of system.clusters)"
        )));
    }
    let zk = zookeeper_answers(client, "system.zookeeper", timeout).await;
    if let Err(e) = zk {
        return Err(StoreError::Check(format!(
            "cluster mode: ZooKeeper is not configured or not reachable from the server \
             (replicated tables and ON CLUSTER need it): {e}"
        )));
    }
    for n in &nodes {
        // An address is an IP or a host name; anything else cannot be
        // quoted into remote() and is refused rather than skipped.
        if !n
            .host_address
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b))
        {
            return Err(StoreError::Check(format!(
                "cluster mode: node address {:?} of cluster {cluster:?} is not a host name or IP",
                n.host_address
            )));
        }
        let node = if n.host_address.contains(':') {
            format!("[{}]:{}", n.host_address, n.port)
        } else {
            format!("{}:{}", n.host_address, n.port)
        };
        let what = "cluster check: macros";
        let sql = format!(
            "SELECT macro AS name FROM remote('{node}', system, macros) \
             WHERE macro IN ('shard', 'replica')"
        );
        let got = with_timeout(what, timeout, async {
            client
                .query(&sql)
                .with_setting("wait_end_of_query", "1")
                .fetch_all::<Macro>()
                .await
                .map_err(StoreError::ch(what))
        })
        .await;
        let defined = match got {
            Ok(m) => m,
            Err(e) => {
                return Err(StoreError::Check(format!(
                    "cluster mode: node {node} of cluster {cluster:?} cannot be reached: {e}"
                )))
            }
        };
        let missing: Vec<&str> = MACROS
            .into_iter()
            .filter(|m| !defined.iter().any(|d| d.name == *m))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Check(format!(
                "cluster mode: node {node} of cluster {cluster:?} does not define the macro(s) {} \
                 (add <macros><shard>..</shard><replica>..</replica></macros> to its config: \
                 the replicated tables' ZooKeeper path and replica name come from them)",
                missing.join(" and ")
            )));
        }
        let remote = format!("remote('{node}', system, zookeeper)");
        if let Err(e) = zookeeper_answers(client, &remote, timeout).await {
            return Err(StoreError::Check(format!(
                "cluster mode: ZooKeeper is not configured or not reachable from node {node} \
                 of cluster {cluster:?} (replicated tables and ON CLUSTER need it): {e}"
            )));
        }
    }
    Ok(())
}

/// Whether ZooKeeper answers a read of its root through `table`
/// (`system.zookeeper` or a `remote()` of it); the number of nodes under
/// the root.
async fn zookeeper_answers(
    client: &Client,
    table: &str,
    timeout: Duration,
) -> Result<u64, StoreError> {
    let what = "cluster check: ZooKeeper";
    let sql = format!("SELECT count() AS n FROM {table} WHERE path = '/'");
    with_timeout(what, timeout, async {
        client
            .query(&sql)
            .with_setting("wait_end_of_query", "1")
            .fetch_one::<Count>()
            .await
            .map(|c| c.n)
            .map_err(StoreError::ch(what))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_node_migration_translates() {
        for m in super::super::schema::MIGRATIONS {
            for s in m.statements {
                translate(s, "c").unwrap();
            }
        }
    }

    #[test]
    fn tables_become_replicated_locals_under_distributed_tables() {
        let out = translate(super::super::schema::INCIDENTS_V1, "prod").unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0]
            .starts_with("CREATE TABLE IF NOT EXISTS `{db}`.incidents_local ON CLUSTER `prod` ("));
        assert!(out[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db}/incidents', '{replica}', received_at)"
        ));
        assert!(out[0].contains(INCIDENTS_KEY));
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS `{db}`.incidents ON CLUSTER `prod` AS `{db}`.incidents_local \
             ENGINE = Distributed(`prod`, `{db}`, incidents_local, cityHash64(toString(id)))"
        );
        let hb = translate(super::super::schema::HEARTBEATS_V2, "prod").unwrap();
        assert!(hb[0].contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{db}/sensor_heartbeats', '{replica}')"
        ));
        assert!(hb[1].ends_with("rand())"));
        let alter = translate("ALTER TABLE `{db}`.incidents ADD COLUMN x String", "prod").unwrap();
        assert_eq!(alter.len(), 3);
        assert_eq!(
            alter[0],
            "ALTER TABLE `{db}`.incidents_local ON CLUSTER `prod` ADD COLUMN x String"
        );
        assert_eq!(alter[2], out[1]);
        assert!(translate("DROP TABLE `{db}`.x", "prod").is_err());
        let mv = translate(super::super::schema::ATTACK_IDS_MV_V8, "prod").unwrap();
        assert_eq!(
            mv,
            ["CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.incident_lookup_attacks ON CLUSTER `prod` \
              TO `{db}`.incident_lookup_local AS SELECT cityHash64(attack_id) AS key, \
              toUInt8(1) AS attack, ts FROM `{db}`.incidents_local WHERE attack_id != ''"]
        );
        let fill = translate(super::super::schema::BACKFILL_IDS_V8, "prod").unwrap();
        assert_eq!(fill, [super::super::schema::BACKFILL_IDS_V8]);
        assert!(
            translate("TRUNCATE TABLE `{db}`.incidents_day_summary", "prod")
                .unwrap()
                .is_empty()
        );
    }
}
