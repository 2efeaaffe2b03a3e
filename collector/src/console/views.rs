//! The API behind the console's views, usable with `curl` and an analyst
//! token like the rest of `/api/v1` (see `docs/collector.md`):
//!
//! * `GET /api/v1/overview`: the summary of a window (counts by kind,
//!   severity, vector and signature, incidents per hour by kind and
//!   severity, top targets and leaking hosts) plus the top targeted
//!   prefixes and the attacks seen in the window, those in progress first
//!   with their latest rate.
//! * `GET /api/v1/incidents/{id}`: one incident and the other incidents of
//!   its host (a leak's source, an attack's target).
//! * `GET /api/v1/sensors`: every sensor's last heartbeat (capture loss,
//!   kernel drops, spool depth, signature hits), its incidents in the
//!   window, and whether it is stale.
//!
//! Every value reaches ClickHouse as a bound parameter.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shaobing_wire::Timestamp;
use uuid::Uuid;

use crate::api::{filter_and_top, filter_from_params, parse_query};
use crate::auth::Role;
use crate::ingest::{authorize, reject, ApiError, AppState};
use crate::query::{
    self, where_clause, Arg, Dedup, Pre, QueryFilter, RawRead, SqlBuilder, TimeBound,
};
use crate::store::row::IncidentRow;
use crate::store::{with_timeout, StoreError};

/// Most attacks `GET /api/v1/overview` lists.
pub const MAX_ATTACKS: u64 = 200;
/// Most other incidents of the host `GET /api/v1/incidents/{id}` returns.
pub const HOST_INCIDENTS: u64 = 20;
/// `host_incidents` of `GET /api/v1/incidents/{id}` are within this long
/// of the incident (one day, in microseconds).
const HOST_WINDOW_US: i64 = 86_400 * 1_000_000;
/// How far back `GET /api/v1/sensors` looks for heartbeats (the default
/// heartbeat retention).
const HEARTBEAT_LOOKBACK_S: u32 = 30 * 86_400;

fn rfc3339(secs: u64, micros: u32) -> String {
    Timestamp::from_parts(i64::try_from(secs).unwrap_or(i64::MAX), micros).to_string()
}

fn rfc3339_us(us: u64) -> String {
    rfc3339(us / 1_000_000, (us % 1_000_000) as u32)
}

/// A targeted prefix (IPv4 /24, IPv6 /64).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PrefixCount {
    /// `a.b.c.0/24` or `x:x:x:x::/64`.
    pub prefix: String,
    /// Volumetric incidents against hosts in it.
    pub incidents: u64,
    /// Distinct attacks against hosts in it.
    pub attacks: u64,
}

#[derive(Debug, Row, Deserialize)]
struct AttackRow {
    attack_id: String,
    a_vector: String,
    a_dst: String,
    a_sensor: String,
    a_severity: String,
    first_us: u64,
    last_us: u64,
    cur_pps: u64,
    cur_bps: u64,
    max_peak_pps: u64,
    max_peak_bps: u64,
    ended: u8,
    events: u64,
}

/// One attack seen in the overview's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackBrief {
    /// Its id (`GET /api/v1/attacks/{attack_id}`).
    pub attack_id: String,
    /// Vector (`syn_flood`, `dns_amplification`, ...).
    pub vector: String,
    /// Target.
    pub dst_ip: String,
    /// Sensor that saw it.
    pub sensor: String,
    /// Latest severity.
    pub severity: String,
    /// First event in the window.
    pub first_seen: String,
    /// Last event in the window.
    pub last_seen: String,
    /// No `attack_ended` seen (yet).
    pub in_progress: bool,
    /// Rate of the latest event.
    pub pps: u64,
    /// Rate of the latest event.
    pub bps: u64,
    /// Highest peak reported.
    pub peak_pps: u64,
    /// Highest peak reported.
    pub peak_bps: u64,
    /// Events (start, updates, end) in the window.
    pub events: u64,
}

/// `GET /api/v1/overview`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    /// Window start (RFC 3339), `null` for all time.
    pub since: Option<String>,
    /// Window end, `null` for now.
    pub until: Option<String>,
    /// The summary of the window (`GET /api/v1/summary`).
    #[serde(flatten)]
    pub summary: query::Summary,
    /// Most targeted prefixes, by distinct attacks then incidents.
    pub top_prefixes: Vec<PrefixCount>,
    /// Attacks in the window: in progress first, then by last event,
    /// newest first (at most [`MAX_ATTACKS`]).
    pub attacks: Vec<AttackBrief>,
}

const US: &str = "(toUInt64(ts) * 1000000 + ts_us)";

/// The prefix (IPv4 /24, IPv6 /64) of the address in column `col`.
fn prefix_of(col: &str) -> String {
    format!(
        "if(position({col}, ':') > 0, \
           concat(cutIPv6(IPv6StringToNum({col}), 8, 0), '/64'), \
           concat(IPv4NumToString(bitAnd(IPv4StringToNum({col}), 4294967040)), '/24'))"
    )
}

/// Reads the top targeted prefixes of the volumetric incidents matching
/// `filter`, split over the window as `plan` says: compacted days from
/// the per-host pre-aggregates of attacked hosts (`incidents_host_summary`,
/// whole days and whole hours; a host's prefix is a function of it), the
/// rest from raw rows.
pub async fn fetch_prefixes(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    top: u64,
    plan: &query::SummaryPlan,
) -> Result<Vec<PrefixCount>, StoreError> {
    let mut b = SqlBuilder::default();
    b.push("SELECT prefix, sum(pn) AS incidents, toUInt64(uniqExactArray(ph)) AS attacks FROM (");
    let host_prefix = prefix_of("ip");
    b.push(&format!(
        "SELECT {host_prefix} AS prefix, n AS pn, attacks AS ph \
         FROM `{db}`.incidents_host_summary WHERE role = 'target' AND hour = 0"
    ))
    .pre(plan, Pre::Days);
    if !plan.hours.is_empty() {
        b.push(&format!(
            " UNION ALL SELECT {host_prefix} AS prefix, n AS pn, attacks AS ph \
             FROM `{db}`.incidents_host_summary WHERE role = 'target' AND hour > 0"
        ))
        .pre(plan, Pre::Hours);
    }
    let raw_prefix = prefix_of("dst_ip");
    let cols = format!("{raw_prefix} AS prefix, toUInt64(1) AS pn, [cityHash64(attack_id)] AS ph");
    let inner = format!(
        "{raw_prefix} AS prefix, toUInt64(uniqExact(id)) AS pn, \
         groupUniqArray(cityHash64(attack_id)) AS ph"
    );
    let dedup = Dedup {
        outer: "prefix, pn, ph",
        inner: &inner,
        group: "prefix",
        outer_group: "",
    };
    let read = RawRead {
        cols: &cols,
        cond: " AND kind = 'volumetric' AND dst_ip != ''",
        dedup: &dedup,
    };
    query::union_raw(&mut b, plan, db, filter, false, &read);
    b.push(") GROUP BY prefix ORDER BY attacks DESC, incidents DESC, prefix LIMIT ?")
        .arg(Arg::U64(top));
    let q = b.query(client, filter);
    with_timeout("query prefixes", timeout, async {
        q.fetch_all()
            .await
            .map_err(StoreError::ch("query prefixes"))
    })
    .await
}

#[derive(Debug, Row, Deserialize)]
struct RankRow {
    a: u64,
    ended: u8,
}

/// How far back from the window's end the attack ranking looks first
/// (seconds; see [`fetch_attacks`]).
const RANK_SLICES_S: [i64; 2] = [3_600, 6 * 3_600];

/// Reads the attacks with events matching `filter` (see
/// [`Overview::attacks`]), in two steps, so that a window with hundreds of
/// thousands of attacks does not build the full state of each:
///
/// 1. rank: every attack's `cityHash64(attack_id)`, last event and whether
///    it ended (three narrow columns), from the per-hour attack
///    pre-aggregates of compacted days (`incidents_attack_summary`) and the
///    raw rows of the rest of the window (copies of an incident do not
///    change a maximum, so no deduplication), keeping the first `limit`:
///    first among the attacks with an event in the window's last hour
///    (then 6 hours), which are the first `limit` of the whole window when
///    `limit` of them are in progress, else over the whole window;
/// 2. state: the other columns of those attacks only, from the same
///    sources (events in uncompacted days counted as distinct ids).
///
/// Attacks tied on (ended, last event) at the rank limit are chosen by
/// their hash, then listed by attack id.
pub async fn fetch_attacks(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    limit: u64,
    plan: &query::SummaryPlan,
) -> Result<Vec<AttackBrief>, StoreError> {
    let has_pre = plan.whole_days.len() > 1 || !plan.hours.is_empty();
    let has_raw = !(plan.raw.is_empty() && plan.fin.is_empty() && plan.part_raw.is_empty());
    let cond = " AND kind = 'volumetric' AND attack_id != ''";
    let mut wh = String::new();
    where_clause(filter, &mut wh);
    // Both steps read every raw range of the plan in one branch (copies of
    // an incident change no maximum, and events are counted as distinct
    // ids), and each `fresh` range in one of its own (for the events,
    // leaving out the ids of its pre-aggregated base part).
    if !has_raw && !has_pre && plan.fresh.is_empty() {
        return Ok(Vec::new());
    }
    // The rank's rows (attack hash `a`, last event `l`, ended `e`), all of
    // the window's or only those with their last event at or after
    // `from` (Unix seconds).
    let rows = |b: &mut SqlBuilder, from: Option<u32>| {
        if has_pre {
            b.push(&format!(
                "SELECT attack AS a, last_us AS l, ended AS e \
                 FROM `{db}`.incidents_attack_summary WHERE 1"
            ))
            .pre(plan, Pre::Both);
            if let Some(from) = from {
                b.push(" AND hour >= ? AND last_us >= ?")
                    .arg(Arg::U32(from - from % 3600))
                    .arg(Arg::U64(u64::from(from) * 1_000_000));
            }
        }
        let since = |b: &mut SqlBuilder| {
            if let Some(from) = from {
                b.push(" AND ts >= toDateTime(?)").arg(Arg::U32(from));
            }
        };
        let rank_cols =
            format!("cityHash64(attack_id) AS a, {US} AS l, toUInt8(event = 'attack_ended') AS e");
        let select = format!(" SELECT {rank_cols} FROM `{db}`.incidents WHERE 1{wh}{cond}");
        let mut first = !has_pre;
        if has_raw {
            b.branch(&mut first, &select).scope(plan, true, true);
            since(b);
        }
        for i in 0..plan.fresh.len() {
            b.branch(&mut first, &select).fresh(db, plan, i, false);
            since(b);
        }
    };
    // A window of hundreds of thousands of attacks (the synthetic
    // benchmark's: one per volumetric row) is ranked from its newest hours
    // first: the attacks with an event since `from` (their last event is
    // then at or after it, every other attack's before it) get their exact
    // state over the whole window; if `limit` of them are in progress,
    // they are the first `limit` of the whole window. Otherwise (fewer
    // attacks in progress) the whole window is ranked.
    let end = filter
        .until
        .unwrap_or_else(Timestamp::now)
        .secs()
        .clamp(0, i64::from(u32::MAX));
    let start = filter.since.map_or(0, |t| t.secs().max(0));
    let mut chosen: Vec<RankRow> = Vec::new();
    for back in RANK_SLICES_S.iter().map(|s| Some(*s)).chain([None]) {
        let from = match back {
            Some(back) if end - back > start => u32::try_from(end - back).ok(),
            Some(_) => continue,
            None => None,
        };
        let mut rank = SqlBuilder::default();
        rank.push("SELECT a, max(e) AS ended FROM (");
        rows(&mut rank, None);
        rank.push(")");
        if from.is_some() {
            rank.push(" WHERE a IN (SELECT a FROM (");
            rows(&mut rank, from);
            rank.push("))");
        }
        rank.push(" GROUP BY a ORDER BY ended ASC, max(l) DESC, a LIMIT ?")
            .arg(Arg::U64(limit));
        let q = rank.query(client, filter);
        chosen = with_timeout("query attacks", timeout, async {
            q.fetch_all().await.map_err(StoreError::ch("query attacks"))
        })
        .await?;
        let in_progress = chosen.iter().filter(|r| r.ended == 0).count();
        if from.is_none() || u64::try_from(in_progress).ok() == Some(limit) {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    // Numbers ClickHouse gave, written as a literal set: `IN` looks each
    // row up in a hash set, where `has(array, x)` would scan the array.
    let hashes = chosen
        .iter()
        .map(|r| r.a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut state = SqlBuilder::default();
    state.push(
        "SELECT attack_id, any(v) AS a_vector, any(d) AS a_dst, any(s) AS a_sensor, \
         argMax(sev, l) AS a_severity, min(f) AS first_us, max(l) AS last_us, \
         argMax(p, l) AS cur_pps, argMax(b, l) AS cur_bps, max(pp) AS max_peak_pps, \
         max(pb) AS max_peak_bps, max(e) AS ended, sum(ev) AS events FROM (",
    );
    if has_pre {
        state
            .push(&format!(
                "SELECT attack_id, vector AS v, dst_ip AS d, sensor AS s, severity AS sev, \
                 first_us AS f, last_us AS l, pps AS p, bps AS b, peak_pps AS pp, \
                 peak_bps AS pb, ended AS e, events AS ev \
                 FROM `{db}`.incidents_attack_summary WHERE attack IN ({hashes})"
            ))
            .pre(plan, Pre::Both);
    }
    let state_raw = format!(
        " SELECT attack_id, any(vector) AS v, any(dst_ip) AS d, any(sensor) AS s, \
         argMax(severity, {US}) AS sev, min({US}) AS f, max({US}) AS l, \
         argMax(pps, {US}) AS p, argMax(bps, {US}) AS b, max(peak_pps) AS pp, \
         max(peak_bps) AS pb, max(event = 'attack_ended') AS e, \
         toUInt64(uniqExact(id)) AS ev FROM `{db}`.incidents \
         WHERE cityHash64(attack_id) IN ({hashes}){wh}{cond}"
    );
    let mut first = !has_pre;
    if has_raw {
        state
            .branch(&mut first, &state_raw)
            .scope(plan, true, true)
            .push(" GROUP BY attack_id");
    }
    for i in 0..plan.fresh.len() {
        state
            .branch(&mut first, &state_raw)
            .fresh(db, plan, i, true)
            .push(" GROUP BY attack_id");
    }
    state.push(") GROUP BY attack_id ORDER BY ended ASC, last_us DESC, attack_id");
    let q = state.query(client, filter);
    let rows: Vec<AttackRow> = with_timeout("query attacks", timeout, async {
        q.fetch_all().await.map_err(StoreError::ch("query attacks"))
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AttackBrief {
            attack_id: r.attack_id,
            vector: r.a_vector,
            dst_ip: r.a_dst,
            sensor: r.a_sensor,
            severity: r.a_severity,
            first_seen: rfc3339_us(r.first_us),
            last_seen: rfc3339_us(r.last_us),
            in_progress: r.ended == 0,
            pps: r.cur_pps,
            bps: r.cur_bps,
            peak_pps: r.max_peak_pps,
            peak_bps: r.max_peak_bps,
            events: r.events,
        })
        .collect())
}

/// Reads the [`Overview`] of `filter`'s window: the summary, the prefixes
/// and the attacks, in parallel over one plan of the window
/// ([`query::plan_for`]); read again if a pre-aggregated base part was
/// merged meanwhile (as [`query::fetch_summary`]).
pub async fn fetch_overview(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    top: u64,
) -> Result<Overview, StoreError> {
    let mut attempt = 0;
    let (mut summary, top_prefixes, attacks) = loop {
        attempt += 1;
        let bases = attempt < query::PLAN_ATTEMPTS;
        let plan = query::plan_for(client, db, timeout, filter, bases).await?;
        let read = tokio::try_join!(
            query::fetch_summary_planned(client, db, timeout, filter, top, &plan),
            fetch_prefixes(client, db, timeout, filter, top, &plan),
            fetch_attacks(client, db, timeout, filter, MAX_ATTACKS, &plan),
        )?;
        if query::bases_active(client, db, timeout, &plan).await? {
            break read;
        }
    };
    summary
        .by_signature
        .truncate(usize::try_from(top).unwrap_or(usize::MAX));
    Ok(Overview {
        since: filter.since.map(|t| t.to_string()),
        until: filter.until.map(|t| t.to_string()),
        summary,
        top_prefixes,
        attacks,
    })
}

fn respond(state: &AppState, r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => reject(state, e),
    }
}

/// `GET /api/v1/overview?since=24h&top=10` (and every filter of
/// `/api/v1/incidents`; default window: the last 24 hours).
pub async fn get_overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = async {
        authorize(&state, &headers, Role::Analyst)?;
        let (filter, top) =
            filter_and_top(raw.as_deref(), TimeBound::Ago(Duration::from_secs(86_400)))?;
        let o = fetch_overview(&state.client, &state.database, state.timeout, &filter, top).await?;
        serde_json::to_value(o)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
    .await;
    respond(&state, r)
}

/// Reads one incident by id: `incident_lookup` gives its capture
/// second(s), and only those are read.
pub async fn fetch_incident(
    client: &Client,
    db: &str,
    timeout: Duration,
    id: Uuid,
) -> Result<Option<IncidentRow>, StoreError> {
    let Some((lo, hi)) =
        query::lookup_span(client, db, timeout, id, query::IdKind::Incident).await?
    else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT ?fields FROM `{db}`.incidents WHERE id = toUUID(?) \
         AND ts >= toDateTime(?) AND ts <= toDateTime(?) LIMIT 1"
    );
    let q = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(id.to_string())
        .bind(lo)
        .bind(hi);
    let rows: Vec<IncidentRow> = with_timeout("query incident", timeout, async {
        q.fetch_all()
            .await
            .map_err(StoreError::ch("query incident"))
    })
    .await?;
    Ok(rows.into_iter().next())
}

/// `GET /api/v1/incidents/{id}`: `{"incident", "host", "host_incidents"}`,
/// where `host` is a leak's source or an attack's target and
/// `host_incidents` the newest other incidents with that address within a
/// day of the incident (at most [`HOST_INCIDENTS`]); 404 if no incident
/// has this id.
pub async fn get_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        authorize(&state, &headers, Role::Analyst)?;
        let uuid = Uuid::parse_str(&id)
            .map_err(|_| ApiError::bad_request(format!("invalid id {id:?}: expected a UUID")))?;
        let row = fetch_incident(&state.client, &state.database, state.timeout, uuid)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such incident"))?;
        let host = match row.kind.as_str() {
            "leak" => row.src_ip.clone(),
            "volumetric" => row.dst_ip.clone(),
            _ => String::new(),
        };
        let mut others = Vec::new();
        if let Ok(ip) = host.parse() {
            // Within a day of the incident: bounded partitions, whatever
            // the store's size.
            let ts = row.timestamp();
            let filter = QueryFilter {
                ip: Some(ip),
                since: Some(Timestamp(ts.micros().saturating_sub(HOST_WINDOW_US))),
                until: Some(Timestamp(ts.micros().saturating_add(HOST_WINDOW_US))),
                limit: HOST_INCIDENTS + 1,
                ..QueryFilter::default()
            };
            let page =
                query::fetch_page(&state.client, &state.database, state.timeout, &filter).await?;
            others = page
                .rows
                .iter()
                .filter(|r| r.id != row.id)
                .take(HOST_INCIDENTS as usize)
                .map(query::incident_json)
                .collect();
        }
        Ok(json!({
            "incident": query::incident_json(&row),
            "host": if host.is_empty() { Value::Null } else { Value::String(host) },
            "host_incidents": others,
        }))
    }
    .await;
    respond(&state, r)
}

#[derive(Debug, Row, Deserialize)]
struct HeartbeatAgg {
    sensor: String,
    last_rx: u32,
    h_ts: u32,
    h_version: String,
    h_uptime: u64,
    h_packets: u64,
    h_bytes: u64,
    h_drops: u64,
    h_pps: u64,
    h_bps: u64,
    h_spool: u64,
    h_sig_names: Vec<String>,
    h_sig_hits: Vec<u64>,
    h_raw: String,
    beats: u64,
}

#[derive(Debug, Row, Deserialize)]
struct LastBeat {
    sensor: String,
    last_rx: u32,
    beats: u64,
}

/// Each sensor's incidents in `filter`'s window, counted once: rows of
/// merged parts (compacted days, today's merged part) counted as they are,
/// the other parts' counting distinct ids ([`query::raw_plan_for`]; a
/// distinct count of every id of a 3.3-million-incident day took 350 ms).
/// Planned and read again if a merge replaced a base part meanwhile, as
/// summaries are ([`query::fetch_summary`]).
async fn sensor_incidents(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
) -> Result<Vec<SensorIncidents>, StoreError> {
    let what = "query sensors";
    let mut attempt = 0;
    loop {
        attempt += 1;
        let plan = query::raw_plan_for(client, db, timeout, filter, attempt < query::PLAN_ATTEMPTS)
            .await?;
        if plan.raw.is_empty()
            && plan.part_raw.is_empty()
            && plan.fin.is_empty()
            && plan.fresh.is_empty()
        {
            return Ok(Vec::new());
        }
        let mut b = SqlBuilder::default();
        b.push(
            "SELECT sensor, sum(n) AS n, sum(loss) AS loss, toUInt32(max(last_ts)) AS last_ts FROM (",
        );
        let read = RawRead {
            cols: "sensor, toUInt64(1) AS n, toUInt64(kind = 'sensor_health') AS loss, \
                   toUInt32(ts) AS last_ts",
            cond: "",
            dedup: &Dedup {
                outer: "sensor, n, loss, last_ts",
                inner: "sensor, toUInt64(uniqExact(id)) AS n, \
                        toUInt64(uniqExactIf(id, kind = 'sensor_health')) AS loss, \
                        toUInt32(max(ts)) AS last_ts",
                group: "sensor",
                outer_group: "",
            },
        };
        query::union_raw(&mut b, &plan, db, filter, true, &read);
        b.push(") GROUP BY sensor");
        let q = b.query(client, filter);
        let rows: Vec<SensorIncidents> = with_timeout(what, timeout, async {
            q.fetch_all().await.map_err(StoreError::ch(what))
        })
        .await?;
        if query::bases_active(client, db, timeout, &plan).await? {
            return Ok(rows);
        }
    }
}

#[derive(Debug, Row, Deserialize)]
struct SensorIncidents {
    sensor: String,
    n: u64,
    loss: u64,
    last_ts: u32,
}

/// Reads every sensor's state: configured sensors (`names`) and any other
/// that sent a heartbeat or incidents. Incident counts cover `filter`'s
/// window; a sensor is stale when its last heartbeat is older than
/// `stale_after` (or it never sent one).
pub async fn fetch_sensors(
    client: &Client,
    db: &str,
    timeout: Duration,
    names: &[String],
    filter: &QueryFilter,
    stale_after: Duration,
) -> Result<Vec<Value>, StoreError> {
    let now = crate::store::schema::now_secs();
    let lookback = now.saturating_sub(HEARTBEAT_LOOKBACK_S);
    // Two steps, so that the last heartbeat's columns are read from the
    // last seconds, not 30 days: each sensor's last receive time and
    // count (two narrow columns), then the latest row of each among the
    // rows since the oldest of those last times.
    let sql = format!(
        "SELECT sensor, toUInt32(max(received_at)) AS last_rx, count() AS beats \
         FROM `{db}`.sensor_heartbeats WHERE received_at >= toDateTime(?) GROUP BY sensor"
    );
    let q = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(lookback);
    let what = "query sensors";
    let lasts: Vec<LastBeat> = with_timeout(what, timeout, async {
        q.fetch_all().await.map_err(StoreError::ch(what))
    })
    .await?;
    let since = lasts
        .iter()
        .map(|l| l.last_rx)
        .min()
        .unwrap_or(now)
        .max(lookback);
    // Ties of `received_at` (one second) are broken by the sensor's `ts`.
    let key = "toUInt64(received_at) * 4294967296 + toUInt64(ts)";
    let sql = format!(
        "SELECT sensor, toUInt32(max(received_at)) AS last_rx, toUInt32(argMax(ts, {key})) AS h_ts, \
         argMax(version, {key}) AS h_version, argMax(uptime_s, {key}) AS h_uptime, \
         argMax(packets, {key}) AS h_packets, argMax(bytes, {key}) AS h_bytes, \
         argMax(kernel_drops, {key}) AS h_drops, argMax(pps, {key}) AS h_pps, \
         argMax(bps, {key}) AS h_bps, argMax(spool_depth, {key}) AS h_spool, \
         argMax(signature_names, {key}) AS h_sig_names, argMax(signature_hits, {key}) AS h_sig_hits, \
         argMax(raw, {key}) AS h_raw, count() AS beats \
         FROM `{db}`.sensor_heartbeats WHERE received_at >= toDateTime(?) GROUP BY sensor"
    );
    let hb = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(since);
    let (mut beats, incidents): (Vec<HeartbeatAgg>, Vec<SensorIncidents>) =
        with_timeout(what, timeout, async {
            tokio::try_join!(
                async { hb.fetch_all().await.map_err(StoreError::ch(what)) },
                sensor_incidents(client, db, timeout, filter),
            )
        })
        .await?;
    for b in &mut beats {
        // Heartbeats of the whole lookback, not only the second step's.
        b.beats = lasts
            .iter()
            .find(|l| l.sensor == b.sensor)
            .map_or(b.beats, |l| l.beats);
    }
    let mut all: Vec<String> = names.to_vec();
    for s in beats
        .iter()
        .map(|b| &b.sensor)
        .chain(incidents.iter().map(|i| &i.sensor))
    {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    let beats: HashMap<&str, &HeartbeatAgg> =
        beats.iter().map(|b| (b.sensor.as_str(), b)).collect();
    let incidents: HashMap<&str, &SensorIncidents> =
        incidents.iter().map(|i| (i.sensor.as_str(), i)).collect();
    let mut out: Vec<(bool, String, Value)> = all
        .into_iter()
        .map(|name| {
            let configured = names.contains(&name);
            let inc = incidents.get(name.as_str());
            let mut v = json!({
                "name": name,
                "configured": configured,
                "incidents": inc.map_or(0, |i| i.n),
                "capture_loss_incidents": inc.map_or(0, |i| i.loss),
                "last_incident_at": inc.map(|i| rfc3339(u64::from(i.last_ts), 0)),
            });
            let stale = match beats.get(name.as_str()) {
                None => {
                    v["last_heartbeat"] = Value::Null;
                    true
                }
                Some(b) => {
                    let age = now.saturating_sub(b.last_rx);
                    let seen = b.h_packets.saturating_add(b.h_drops);
                    let mut hits: Vec<(&String, &u64)> =
                        b.h_sig_names.iter().zip(&b.h_sig_hits).collect();
                    hits.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                    let heartbeat: Value = serde_json::from_str(&b.h_raw).unwrap_or(Value::Null);
                    let m = v.as_object_mut();
                    if let Some(m) = m {
                        m.insert(
                            "last_heartbeat".into(),
                            json!(rfc3339(u64::from(b.last_rx), 0)),
                        );
                        m.insert("heartbeat_age_s".into(), json!(age));
                        m.insert("sensor_time".into(), json!(rfc3339(u64::from(b.h_ts), 0)));
                        m.insert("version".into(), json!(b.h_version));
                        m.insert("uptime_s".into(), json!(b.h_uptime));
                        m.insert("packets".into(), json!(b.h_packets));
                        m.insert("bytes".into(), json!(b.h_bytes));
                        m.insert("kernel_drops".into(), json!(b.h_drops));
                        m.insert(
                            "capture_loss_ratio".into(),
                            json!(if seen == 0 {
                                0.0
                            } else {
                                b.h_drops as f64 / seen as f64
                            }),
                        );
                        m.insert("pps".into(), json!(b.h_pps));
                        m.insert("bps".into(), json!(b.h_bps));
                        m.insert("spool_depth".into(), json!(b.h_spool));
                        m.insert(
                            "signature_hits".into(),
                            Value::Array(
                                hits.iter()
                                    .map(|(s, n)| json!({"signature": s, "hits": n}))
                                    .collect(),
                            ),
                        );
                        m.insert("heartbeats".into(), json!(b.beats));
                        m.insert("heartbeat".into(), heartbeat);
                    }
                    u64::from(age) > stale_after.as_secs()
                }
            };
            v["stale"] = json!(stale);
            (stale, name, v)
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(out.into_iter().map(|(_, _, v)| v).collect())
}

/// `GET /api/v1/sensors?since=24h`: `{"stale_after_s", "sensors": [...]}`,
/// stale sensors first.
pub async fn get_sensors(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = async {
        authorize(&state, &headers, Role::Analyst)?;
        let params = parse_query(raw.as_deref(), &["since", "until"])?;
        let (filter, _) = filter_from_params(
            &params,
            Timestamp::now(),
            TimeBound::Ago(Duration::from_secs(86_400)),
        )
        .map_err(ApiError::bad_request)?;
        let names: Vec<String> = state.tokens.sensor_names();
        let sensors = fetch_sensors(
            &state.client,
            &state.database,
            state.timeout,
            &names,
            &filter,
            state.stale_after,
        )
        .await?;
        Ok(json!({
            "stale_after_s": state.stale_after.as_secs(),
            "sensors": sensors,
        }))
    }
    .await;
    respond(&state, r)
}
