//! Analysts' reads: time bounds, the filtered `incidents FINAL` query, and
//! the table / JSON-lines renderings used by `shaobing-collector query`.

use std::fmt::Write as _;
use std::time::Duration;

use std::net::IpAddr;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use shaobing_wire::{Event, Incident, Kind, Severity, Timestamp};
use uuid::Uuid;

use crate::store::row::IncidentRow;
use crate::store::{with_timeout, StoreError};

/// A `--since` / `--until` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// No bound (`all`).
    All,
    /// This long before now (`30s`, `15m`, `1h`, `7d`, `2w`).
    Ago(Duration),
    /// An absolute time (RFC 3339, or `now`).
    At(Timestamp),
}

/// A time argument that is neither a duration, `all`, `now` nor RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("invalid time {0:?}: expected `all`, `now`, a duration like 30s, 15m, 1h, 7d, 2w, or an RFC 3339 time like 2026-11-29T04:00:00Z")]
pub struct TimeBoundError(pub String);

impl std::str::FromStr for TimeBound {
    type Err = TimeBoundError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(TimeBound::All);
        }
        if s.eq_ignore_ascii_case("now") {
            return Ok(TimeBound::Ago(Duration::ZERO));
        }
        if let Some(d) = parse_duration(s) {
            return Ok(TimeBound::Ago(d));
        }
        Timestamp::parse(s)
            .map(TimeBound::At)
            .map_err(|_| TimeBoundError(s.to_string()))
    }
}

/// Parses `<digits><unit>` with unit `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(unit_at);
    let n: u64 = num.parse().ok()?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs_per).map(Duration::from_secs)
}

impl TimeBound {
    /// The absolute time this bound stands for, relative to `now`; `None`
    /// for [`TimeBound::All`].
    pub fn resolve(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            TimeBound::All => None,
            TimeBound::At(t) => Some(t),
            TimeBound::Ago(d) => {
                let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
                Some(Timestamp(now.micros().saturating_sub(micros)))
            }
        }
    }
}

/// What to read. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// Inclusive lower bound on capture time.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound on capture time.
    pub until: Option<Timestamp>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this event.
    pub event: Option<Event>,
    /// Only this attack vector (volumetric).
    pub vector: Option<String>,
    /// Only this signature id.
    pub signature: Option<String>,
    /// Only these severities (any of them); empty for all.
    pub severity: Vec<Severity>,
    /// Only from this sensor.
    pub sensor: Option<String>,
    /// Only incidents whose source or destination is this address.
    pub ip: Option<IpAddr>,
    /// Only incidents of this flow (Community ID).
    pub community_id: Option<String>,
    /// Only network-level attacks on this prefix (`dst_net`, canonical
    /// `address/length` as [`canonical_net`] writes it).
    pub dst_net: Option<String>,
    /// At most this many incidents: the most recent ones in the window.
    pub limit: u64,
    /// Continue after this position (from a previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
}

/// A position in the newest-first order `(ts, ts_us, id, sensor)`: where
/// the next page starts. Opaque to clients (hex of
/// `v2:MICROS:UUID:HEX(SENSOR)`; `v1:MICROS:UUID` from older collectors is
/// still read, as the position before every sensor's copy of that id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Capture time of the last incident returned, in microseconds.
    pub micros: u64,
    /// Its id.
    pub id: Uuid,
    /// Its sensor (`None` from a v1 cursor).
    pub sensor: Option<String>,
}

/// A cursor that did not come from this collector.
#[derive(Debug, thiserror::Error)]
#[error("invalid cursor")]
pub struct CursorError;

/// Longest cursor text: a v2 cursor with a 128-byte sensor name is 642.
const MAX_CURSOR_CHARS: usize = 700;

impl Cursor {
    /// The position after `row`.
    pub fn after(row: &IncidentRow) -> Cursor {
        Cursor {
            micros: u64::from(row.ts) * 1_000_000 + u64::from(row.ts_us),
            id: row.id,
            sensor: Some(row.sensor.clone()),
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        match &self.sensor {
            Some(s) => hex::encode(format!("v2:{}:{}:{}", self.micros, self.id, hex::encode(s))),
            None => hex::encode(format!("v1:{}:{}", self.micros, self.id)),
        }
    }

    /// Parses [`Cursor::encode`]'s output.
    pub fn decode(s: &str) -> Result<Cursor, CursorError> {
        if s.len() > MAX_CURSOR_CHARS {
            return Err(CursorError);
        }
        let bytes = hex::decode(s).map_err(|_| CursorError)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CursorError)?;
        let parts: Vec<&str> = text.split(':').collect();
        let (micros, id, sensor) = match parts.as_slice() {
            ["v1", micros, id] => (micros, id, None),
            ["v2", micros, id, sensor] => {
                let raw = hex::decode(sensor).map_err(|_| CursorError)?;
                let name = String::from_utf8(raw).map_err(|_| CursorError)?;
                (micros, id, Some(name))
            }
            _ => return Err(CursorError),
        };
        Ok(Cursor {
            micros: micros.parse().map_err(|_| CursorError)?,
            id: Uuid::parse_str(id).map_err(|_| CursorError)?,
            sensor,
        })
    }
}

/// Appends the filter's WHERE conditions (placeholders only);
/// [`bind_where`] binds their values in the same order.
pub(crate) fn where_clause(filter: &QueryFilter, sql: &mut String) {
    // The coarse `ts` condition lets ClickHouse prune partitions and use the
    // sorting key; the fine one applies microseconds.
    if filter.since.is_some() {
        sql.push_str(" AND ts >= toDateTime(?) AND toUInt64(ts) * 1000000 + ts_us >= ?");
    }
    if filter.until.is_some() {
        sql.push_str(" AND ts <= toDateTime(?) AND toUInt64(ts) * 1000000 + ts_us < ?");
    }
    if filter.kind.is_some() {
        sql.push_str(" AND kind = ?");
    }
    if filter.event.is_some() {
        sql.push_str(" AND event = ?");
    }
    if filter.vector.is_some() {
        sql.push_str(" AND vector = ?");
    }
    if filter.signature.is_some() {
        sql.push_str(" AND signature = ?");
    }
    if !filter.severity.is_empty() {
        sql.push_str(" AND has(?, severity)");
    }
    if filter.sensor.is_some() {
        sql.push_str(" AND sensor = ?");
    }
    if filter.ip.is_some() {
        sql.push_str(" AND (src_ip = ? OR dst_ip = ?)");
    }
    if filter.community_id.is_some() {
        sql.push_str(" AND community_id = ?");
    }
    if filter.dst_net.is_some() {
        sql.push_str(" AND dst_net = ?");
    }
}

pub(crate) fn bind_where(
    mut q: clickhouse::query::Query,
    filter: &QueryFilter,
) -> clickhouse::query::Query {
    if let Some(t) = filter.since {
        q = q.bind(clamp_secs(t.secs())).bind(clamp_micros(t.micros()));
    }
    if let Some(t) = filter.until {
        q = q.bind(clamp_secs(t.secs())).bind(clamp_micros(t.micros()));
    }
    if let Some(k) = filter.kind {
        q = q.bind(k.as_str());
    }
    if let Some(e) = filter.event {
        q = q.bind(e.as_str());
    }
    if let Some(v) = &filter.vector {
        q = q.bind(v.as_str());
    }
    if let Some(s) = &filter.signature {
        q = q.bind(s.as_str());
    }
    if !filter.severity.is_empty() {
        let sev: Vec<&str> = filter.severity.iter().map(|s| s.as_str()).collect();
        q = q.bind(sev);
    }
    if let Some(s) = &filter.sensor {
        q = q.bind(s.as_str());
    }
    if let Some(ip) = filter.ip {
        let ip = ip.to_string();
        q = q.bind(ip.as_str()).bind(ip.as_str());
    }
    if let Some(c) = &filter.community_id {
        q = q.bind(c.as_str());
    }
    if let Some(n) = &filter.dst_net {
        q = q.bind(n.as_str());
    }
    q
}

/// `text` as a network prefix in the form the collector stores `dst_net`
/// in (`198.51.100.0/24`, `2001:db8:1::/48`), or `None` when it is not
/// one: an address, a length within its family, and no host bits set.
pub fn canonical_net(text: &str) -> Option<String> {
    shaobing_wire::parse_prefix(text).map(|(addr, len)| format!("{addr}/{len}"))
}

/// One page of incidents, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The incidents, newest first.
    pub rows: Vec<IncidentRow>,
    /// Where the next page starts; `None` when this was the last.
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Row, Deserialize)]
struct KeyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    sensor: String,
    ts: u32,
    ts_us: u32,
}

impl KeyRow {
    fn micros(&self) -> u64 {
        u64::from(self.ts) * 1_000_000 + u64::from(self.ts_us)
    }
}

/// The position of a row in the newest-first order, in SQL.
const POS: &str = "toUInt64(ts) * 1000000 + ts_us";

/// Reads one page of incidents matching `filter`, newest first, starting
/// after `filter.cursor`. All values are bound parameters.
///
/// An incident is identified by `(sensor, id)`: each appears once however
/// often it was delivered, and two sensors' incidents never hide each
/// other. Two steps, so the wide `raw` column is read only for the page:
///
/// 1. the page's keys: `(id, sensor, ts, ts_us)` of matching rows,
///    deduplicated with `GROUP BY` (copies of an incident share all four),
///    newest first, `limit + 1` of them. Without `FINAL`, ClickHouse moves
///    the filters to `PREWHERE` and reads few columns. The keys are
///    looked for in the newest hour of the window first, then the newest
///    6 and 48 hours, then the whole window ([`PAGE_SLICES_S`]): a slice
///    `ts >= X` that holds `limit + 1` keys holds the page, since every
///    key outside it is older than all of them;
/// 2. the rows: the same filter, restricted to the positions from the
///    page's last key to its first (`LIMIT 1 BY sensor, id`), put back in
///    the order of step 1. The SQL is the same size whatever `limit` is
///    (no inlined id list, which failed above ~6,500 ids with `Max query
///    size exceeded`); rows that arrived in that range between the two
///    steps are dropped by the matching against step 1's keys.
pub async fn fetch_page(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
) -> Result<Page, StoreError> {
    // The newest end of the window: the cursor, `until` or now, whichever
    // is first (rows after now, from a sensor clock ahead, are still read:
    // slices have no upper bound).
    let now = i64::from(crate::store::schema::now_secs());
    let top = [
        filter
            .cursor
            .as_ref()
            .map(|c| i64::try_from(c.micros / 1_000_000).unwrap_or(i64::MAX)),
        filter.until.map(|t| t.secs()),
        Some(now),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(now);
    let since = filter.since.map_or(i64::MIN, |t| t.secs());
    let mut keys = Vec::new();
    for slice in PAGE_SLICES_S.iter().map(Some).chain([None]) {
        let from = slice.map(|s| top.saturating_sub(*s)).filter(|f| *f > since);
        if slice.is_some() && from.is_none() {
            // This slice already covers the window: read it whole.
            continue;
        }
        keys = fetch_keys(client, db, timeout, filter, from).await?;
        if keys.len() as u64 > filter.limit || from.is_none() {
            break;
        }
    }
    fetch_rows(client, db, timeout, filter, keys).await
}

/// How far back from the newest end of the window [`fetch_page`] looks
/// for a page's keys before it reads the whole window, seconds.
pub const PAGE_SLICES_S: [i64; 3] = [3_600, 6 * 3_600, 48 * 3_600];

/// Step 1 of [`fetch_page`]: the newest `limit + 1` keys matching the
/// filter, only from `ts >= from` when given.
async fn fetch_keys(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    from: Option<i64>,
) -> Result<Vec<KeyRow>, StoreError> {
    // `db` is an identifier checked by config validation.
    let mut sql = format!("SELECT id, sensor, ts, ts_us FROM `{db}`.incidents WHERE 1");
    if from.is_some() {
        sql.push_str(" AND ts >= toDateTime(?)");
    }
    where_clause(filter, &mut sql);
    if let Some(c) = &filter.cursor {
        sql.push_str(&format!(
            " AND ts <= toDateTime(?) AND ({POS} < ? OR ({POS} = ? AND "
        ));
        if c.sensor.is_some() {
            sql.push_str("(id < toUUID(?) OR (id = toUUID(?) AND sensor < ?))))");
        } else {
            sql.push_str("id < toUUID(?)))");
        }
    }
    sql.push_str(
        " GROUP BY id, sensor, ts, ts_us \
         ORDER BY ts DESC, ts_us DESC, id DESC, sensor DESC LIMIT ?",
    );

    let mut q = client.query(&sql).with_setting("wait_end_of_query", "1");
    if let Some(f) = from {
        q = q.bind(clamp_secs(f));
    }
    q = bind_where(q, filter);
    if let Some(c) = &filter.cursor {
        let secs = u32::try_from(c.micros / 1_000_000).unwrap_or(u32::MAX);
        let id = c.id.to_string();
        q = q.bind(secs).bind(c.micros).bind(c.micros).bind(id.as_str());
        if let Some(sensor) = &c.sensor {
            q = q.bind(id.as_str()).bind(sensor.as_str());
        }
    }
    q = q.bind(filter.limit.saturating_add(1));
    with_timeout("query incidents", timeout, async {
        q.fetch_all()
            .await
            .map_err(StoreError::ch("query incidents"))
    })
    .await
}

/// Step 2 of [`fetch_page`]: the rows of the keys.
async fn fetch_rows(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    mut keys: Vec<KeyRow>,
) -> Result<Page, StoreError> {
    let more = keys.len() as u64 > filter.limit;
    keys.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Ok(Page {
            rows: Vec::new(),
            next_cursor: None,
        });
    };
    // Keys are newest first: `first` is the page's upper end, `last` its
    // lower end, both inclusive (ties on the position are cut by id).
    let mut sql = format!(
        "SELECT ?fields FROM `{db}`.incidents WHERE ts >= toDateTime(?) AND ts <= toDateTime(?) \
         AND ({POS} > ? OR ({POS} = ? AND id >= toUUID(?))) \
         AND ({POS} < ? OR ({POS} = ? AND id <= toUUID(?)))"
    );
    where_clause(filter, &mut sql);
    sql.push_str(" LIMIT 1 BY sensor, id");
    let (lo, hi) = (last.micros(), first.micros());
    let (lo_id, hi_id) = (last.id.to_string(), first.id.to_string());
    let mut q = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(last.ts)
        .bind(first.ts)
        .bind(lo)
        .bind(lo)
        .bind(lo_id.as_str())
        .bind(hi)
        .bind(hi)
        .bind(hi_id.as_str());
    q = bind_where(q, filter);
    let rows: Vec<IncidentRow> = with_timeout("query incidents", timeout, async {
        q.fetch_all()
            .await
            .map_err(StoreError::ch("query incidents"))
    })
    .await?;
    let mut by_key: std::collections::HashMap<(Uuid, String), IncidentRow> = rows
        .into_iter()
        .map(|r| ((r.id, r.sensor.clone()), r))
        .collect();
    let next_cursor = if more {
        keys.last().map(|k| Cursor {
            micros: k.micros(),
            id: k.id,
            sensor: Some(k.sensor.clone()),
        })
    } else {
        None
    };
    let rows: Vec<IncidentRow> = keys
        .into_iter()
        .filter_map(|k| by_key.remove(&(k.id, k.sensor)))
        .collect();
    Ok(Page { rows, next_cursor })
}

/// Reads incidents matching `filter` (see [`fetch_page`]): the most recent
/// `limit` of them, returned oldest first.
pub async fn fetch_incidents(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
) -> Result<Vec<IncidentRow>, StoreError> {
    let mut page = fetch_page(client, db, timeout, filter).await?;
    page.rows.reverse();
    Ok(page.rows)
}

/// Counts of one value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The value (`""` when absent, e.g. the vector of a leak).
    pub value: String,
    /// Incidents.
    pub incidents: u64,
}

/// A host in a top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopHost {
    /// Address.
    pub ip: String,
    /// Incidents.
    pub incidents: u64,
    /// Distinct attacks (targets) or total signature matches (leak sources).
    pub score: u64,
}

/// Incidents in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    /// Start of the hour, RFC 3339 UTC.
    pub hour: String,
    /// Incidents in it.
    pub incidents: u64,
}

/// `GET /api/v1/summary` and `shaobing-collector summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Incidents in the window (each once).
    pub total: u64,
    /// By kind, most first.
    pub by_kind: Vec<Count>,
    /// By attack vector (volumetric only), most first.
    pub by_vector: Vec<Count>,
    /// By signature, most first.
    pub by_signature: Vec<Count>,
    /// By severity, most first.
    pub by_severity: Vec<Count>,
    /// Most attacked hosts (volumetric `dst_ip`), by distinct attacks
    /// (`score`), then incidents.
    pub top_targets: Vec<TopHost>,
    /// Hosts leaking most (leak `src_ip`), by incidents; `score` is the
    /// total signature matches.
    pub top_leak_sources: Vec<TopHost>,
    /// Incidents per hour of capture time, oldest first (hours without
    /// incidents are left out).
    pub per_hour: Vec<HourCount>,
    /// Incidents per hour, kind and severity, oldest first (the console's
    /// chart).
    pub timeline: Vec<TimelineCount>,
}

/// Incidents of one kind and severity in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineCount {
    /// Start of the hour, RFC 3339 UTC.
    pub hour: String,
    /// Incident kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Incidents.
    pub incidents: u64,
}

#[derive(Debug, Row, Deserialize)]
struct DimRow {
    kind: String,
    vector: String,
    signature: String,
    severity: String,
    hour: u32,
    n: u64,
}

#[derive(Debug, Row, Deserialize)]
struct HostRow {
    ip: String,
    n: u64,
    score: u64,
}

fn sorted_counts(map: std::collections::HashMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = map
        .into_iter()
        .map(|(value, incidents)| Count { value, incidents })
        .collect();
    v.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.value.cmp(&b.value)));
    v
}

/// Where each part of a summary's window is read from (see
/// [`summary_plan`]). Time ranges are whole seconds, `[lo, hi)`; the
/// filter's exact (microsecond) bounds apply on top of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryPlan {
    /// Compacted days wholly inside the window, read from their per-day
    /// pre-aggregates. Always holds the sentinel 0 (`has([], x)` is a type
    /// error on 18.16).
    pub whole_days: Vec<u32>,
    /// `(day, first hour, end hour)` (hour starts, Unix seconds): whole
    /// hours of a compacted day the window cuts, read from the per-hour
    /// pre-aggregates.
    pub hours: Vec<(u32, u32, u32)>,
    /// Compacted (duplicate-free) time ranges read raw without `FINAL`.
    pub raw: Vec<(u32, u32)>,
    /// The other days' ranges (several copies of an incident possible),
    /// read counting distinct ids.
    pub fin: Vec<(u32, u32)>,
    /// `(lo, hi, part)`: the sub-hour fragments of a day whose merged base
    /// part `part` is pre-aggregated ([`DayStates::base_parts`]): that
    /// part's rows, read raw without `FINAL` (a merged part holds no
    /// duplicates).
    pub part_raw: Vec<(u32, u32, String)>,
    /// `(lo, hi, part)`: the window's range of such a day, read from its
    /// other (newer) parts counting distinct ids, less the ids `part`
    /// holds (counted by its pre-aggregates or by `part_raw`).
    pub fresh: Vec<(u32, u32, String)>,
    /// For each `fresh` range, the ids of the incidents both its base part
    /// and a newer part hold (re-delivered copies), listed by
    /// [`plan_for`]: left out of the newer parts' rows as literals. `None`
    /// (too many, or not listed): looked up by a subquery in every read.
    pub copies: Vec<Option<Vec<String>>>,
}

impl SummaryPlan {
    /// The same pieces with those read from pre-aggregates (`whole_days`,
    /// `hours`) read raw instead: a compacted day's as `raw`, the base
    /// part's of an uncompacted day (`states`) as `part_raw`.
    pub fn into_raw(mut self, states: &DayStates) -> SummaryPlan {
        let mut pieces: Vec<(u32, u32, u32)> = self
            .whole_days
            .drain(1..)
            .filter_map(|day| {
                let start = u32::try_from(crate::retention::day_start_secs(day)?).ok()?;
                Some((day, start, start.saturating_add(86_400)))
            })
            .collect();
        pieces.append(&mut self.hours);
        for (day, lo, hi) in pieces {
            // Base parts are listed for uncompacted days only.
            match states.base_parts.iter().find(|(d, _)| *d == day) {
                Some((_, part)) => self.part_raw.push((lo, hi, part.clone())),
                None => self.raw.push((lo, hi)),
            }
        }
        self
    }

    /// The parts the plan reads pre-aggregates of while other parts of
    /// the same day are read raw: the answer is right only if they were
    /// still active when read (see [`fetch_summary`]).
    pub fn bases(&self) -> Vec<String> {
        let mut v: Vec<String> = self.fresh.iter().map(|(_, _, p)| p.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Splits a summary's window over the days that hold data: each compacted
/// day whose pre-aggregates were built from its current part (`built`)
/// contributes its whole hours inside the window from the pre-aggregates
/// (the whole day at once when it lies inside the window) and the sub-hour
/// fragments at the window's edges raw; other compacted days are read raw,
/// the rest with `FINAL`. An uncompacted day whose merged base part has
/// pre-aggregates (today between two compactions, see
/// [`DayStates::base_parts`]) is read like a compacted day for that part's
/// rows, plus its newer parts' rows counting distinct ids and leaving out
/// the ids of the base part (`fresh`). Pre-aggregates are used only when
/// `unfiltered` (nothing but time filters). `since` / `until` are
/// microseconds (inclusive / exclusive). The pieces are disjoint, so an
/// incident is counted by exactly one of them.
pub fn summary_plan(
    states: &DayStates,
    built: &[(u32, String)],
    since: Option<i64>,
    until: Option<i64>,
    unfiltered: bool,
) -> SummaryPlan {
    const DAY: i64 = 86_400;
    const HOUR: i64 = 3_600;
    let mut plan = SummaryPlan {
        whole_days: vec![0],
        ..SummaryPlan::default()
    };
    let secs = |v: i64| u32::try_from(v.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX);
    // The window in whole seconds: every second holding a matching
    // incident.
    let lo_w = since.map_or(0, |s| s.div_euclid(1_000_000));
    let hi_w = until.map_or(i64::MAX, |u| {
        u.div_euclid(1_000_000) + i64::from(u.rem_euclid(1_000_000) != 0)
    });
    // Whole hours inside the window.
    let h_lo_w = since.map_or(0, |s| {
        s.div_euclid(1_000_000).div_euclid(HOUR) * HOUR
            + if s.rem_euclid(HOUR * 1_000_000) != 0 {
                HOUR
            } else {
                0
            }
    });
    let h_hi_w = until.map_or(i64::MAX, |u| u.div_euclid(HOUR * 1_000_000) * HOUR);
    // (day, its part, whether other parts hold newer rows).
    let days = states
        .clean_parts
        .iter()
        .map(|(d, p)| (*d, Some(p), false))
        .chain(states.unclean.iter().map(|d| {
            let base = states.base_parts.iter().find(|(b, _)| b == d);
            (*d, base.map(|(_, p)| p), true)
        }));
    for (day, part, newer) in days {
        let Some(start) = crate::retention::day_start_secs(day) else {
            continue;
        };
        let end = start + DAY;
        let (lo, hi) = (start.max(lo_w), end.min(hi_w));
        if lo >= hi {
            continue;
        }
        let summarized =
            part.filter(|part| unfiltered && built.iter().any(|(d, p)| *d == day && p == *part));
        let (h_lo, h_hi) = (start.max(h_lo_w), end.min(h_hi_w));
        let Some(part) = summarized.filter(|_| h_lo < h_hi) else {
            if newer {
                plan.fin.push((secs(lo), secs(hi)));
            } else {
                plan.raw.push((secs(lo), secs(hi)));
            }
            continue;
        };
        if h_lo == start && h_hi == end {
            plan.whole_days.push(day);
        } else {
            plan.hours.push((day, secs(h_lo), secs(h_hi)));
        }
        let mut edge = |a: i64, b: i64| {
            if a < b {
                if newer {
                    plan.part_raw.push((secs(a), secs(b), part.clone()));
                } else {
                    plan.raw.push((secs(a), secs(b)));
                }
            }
        };
        edge(lo, h_lo);
        edge(h_hi, hi);
        if newer {
            plan.fresh.push((secs(lo), secs(hi), part.clone()));
        }
    }
    plan
}

/// A time range condition on `incidents` (two bound Unix seconds).
const RANGE: &str = "ts >= toDateTime(?) AND ts < toDateTime(?)";

/// A bound value of [`SqlBuilder`].
pub(crate) enum Arg {
    U32(u32),
    U64(u64),
    Str(String),
    Days(Vec<u32>),
    /// The filter's values, in [`where_clause`] order.
    Filter,
}

/// What [`union_raw`] reads: `cols` of each matching row (with the extra
/// condition `cond`) in compacted ranges, `dedup` in the others.
pub(crate) struct RawRead<'a> {
    pub(crate) cols: &'a str,
    pub(crate) cond: &'a str,
    pub(crate) dedup: &'a Dedup<'a>,
}

/// How a summary branch over uncompacted days counts each incident once:
/// `SELECT {outer} FROM (SELECT {inner} ... GROUP BY {group}){outer_group}`.
pub(crate) struct Dedup<'a> {
    pub(crate) outer: &'a str,
    pub(crate) inner: &'a str,
    pub(crate) group: &'a str,
    pub(crate) outer_group: &'a str,
}

/// Which pre-aggregated rows a branch reads (see [`SqlBuilder::pre`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pre {
    /// Whole days only.
    Days,
    /// Whole hours of cut days only.
    Hours,
    /// Both (the per-hour day summary).
    Both,
}

/// SQL text with its bound values in placeholder order.
#[derive(Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    pub(crate) fn arg(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        self
    }

    /// Starts a branch of a `UNION ALL`: ` UNION ALL` unless `first` (then
    /// no longer `first`), and `select`, which ends in the filter's `WHERE`
    /// conditions ([`where_clause`]), whose arguments it takes.
    pub(crate) fn branch(&mut self, first: &mut bool, select: &str) -> &mut Self {
        if !std::mem::replace(first, false) {
            self.push(" UNION ALL");
        }
        self.push(select).arg(Arg::Filter)
    }

    /// ` AND (0 OR ...)`: the plan's ranges read raw without
    /// deduplication (`raw`, `part_raw`) when `dup_free`, its `fin` ranges
    /// when `dup_prone` (`fresh` ranges are read by branches of their own,
    /// [`SqlBuilder::fresh`]).
    pub(crate) fn scope(
        &mut self,
        plan: &SummaryPlan,
        dup_free: bool,
        dup_prone: bool,
    ) -> &mut Self {
        self.push(" AND (0");
        let simple = |b: &mut Self, ranges: &[(u32, u32)]| {
            for (lo, hi) in ranges {
                b.push(&format!(" OR ({RANGE})"));
                b.arg(Arg::U32(*lo)).arg(Arg::U32(*hi));
            }
        };
        if dup_free {
            simple(self, &plan.raw);
            for (lo, hi, part) in &plan.part_raw {
                self.push(&format!(" OR ({RANGE} AND _part = ?)"));
                self.arg(Arg::U32(*lo))
                    .arg(Arg::U32(*hi))
                    .arg(Arg::Str(part.clone()));
            }
        }
        if dup_prone {
            simple(self, &plan.fin);
        }
        self.push(")")
    }

    /// ` AND _part != part AND ts in [lo, hi)` (the plan's `fresh` range
    /// `i`: the rows of the day's parts newer than its base part) and,
    /// with `exclude`, ` AND id NOT IN (...)`: the ids the base part holds,
    /// as listed in the plan's `copies`, or else looked up by a subquery
    /// (reading the base part's ids only for the ids of the newer parts).
    /// The `_part` condition stands alone in the `AND` chain, where
    /// ClickHouse uses it to skip the base part (inside an `OR` it would
    /// read every part).
    pub(crate) fn fresh(
        &mut self,
        db: &str,
        plan: &SummaryPlan,
        i: usize,
        exclude: bool,
    ) -> &mut Self {
        let Some((lo, hi, part)) = plan.fresh.get(i) else {
            return self.push(" AND 0");
        };
        let bind = |b: &mut Self| {
            b.arg(Arg::Str(part.clone()))
                .arg(Arg::U32(*lo))
                .arg(Arg::U32(*hi));
        };
        self.push(&format!(" AND _part != ? AND {RANGE}"));
        bind(self);
        if !exclude {
            return self;
        }
        match plan.copies.get(i) {
            Some(Some(ids)) if ids.is_empty() => {}
            Some(Some(ids)) => {
                // Checked UUID texts (see `list_copies`), spliced as
                // literals: a literal set is hashed once per read.
                let list = ids
                    .iter()
                    .map(|id| format!("'{id}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                self.push(&format!(" AND id NOT IN ({list})"));
            }
            _ => {
                self.push(&format!(
                    " AND id NOT IN (SELECT id FROM `{db}`.incidents WHERE _part = ? AND {RANGE} \
                     AND id IN (SELECT id FROM `{db}`.incidents WHERE _part != ? AND {RANGE}))"
                ));
                bind(self);
                bind(self);
            }
        }
        self
    }

    /// ` AND day >= first AND day <= last AND (has(days, day) OR (day = d
    /// AND hour >= lo AND hour < hi) ...)` with the plan's whole days
    /// (`Pre::Days`), cut days' hours (`Pre::Hours`) or both. The range of
    /// days (the partition key of every pre-aggregate table) lets
    /// ClickHouse skip the other days' partitions.
    pub(crate) fn pre(&mut self, plan: &SummaryPlan, pre: Pre) -> &mut Self {
        let days = plan
            .whole_days
            .iter()
            .filter(|d| **d != 0 && pre != Pre::Hours)
            .chain(
                plan.hours
                    .iter()
                    .filter(|_| pre != Pre::Days)
                    .map(|(d, _, _)| d),
            );
        let (lo, hi) = days.fold((u32::MAX, 0), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
        self.push(" AND day >= ? AND day <= ?")
            .arg(Arg::U32(lo))
            .arg(Arg::U32(hi));
        if pre == Pre::Hours {
            self.push(" AND (0");
        } else {
            self.push(" AND (has(?, day)")
                .arg(Arg::Days(plan.whole_days.clone()));
        }
        if pre != Pre::Days {
            for (day, lo, hi) in &plan.hours {
                self.push(" OR (day = ? AND hour >= ? AND hour < ?)");
                self.arg(Arg::U32(*day))
                    .arg(Arg::U32(*lo))
                    .arg(Arg::U32(*hi));
            }
        }
        self.push(")")
    }

    pub(crate) fn query(&self, client: &Client, filter: &QueryFilter) -> clickhouse::query::Query {
        let mut q = client
            .query(&self.sql)
            .with_setting("wait_end_of_query", "1");
        for a in &self.args {
            q = match a {
                Arg::U32(v) => q.bind(*v),
                Arg::U64(v) => q.bind(*v),
                Arg::Str(v) => q.bind(v.as_str()),
                Arg::Days(v) => q.bind(v.clone()),
                Arg::Filter => bind_where(q, filter),
            };
        }
        q
    }
}

/// Computes the [`Summary`] of incidents matching `filter` (its `limit`
/// and `cursor` are ignored; `top` bounds the top lists), counting each
/// incident once. The window is split by [`summary_plan`]: pre-aggregates
/// of compacted days (whole days, or the whole hours of a day the window
/// cuts) for unfiltered summaries, other compacted days raw without
/// `FINAL`, the rest with `FINAL`. A partition that gains a part between
/// the listing and the read (a late insert into an old day) can count that
/// part's re-delivered incidents twice in this one answer; so can a copy
/// of an incident of a day's base part re-delivered after the plan listed
/// the copies ([`SummaryPlan::copies`]).
///
/// A plan that reads a day's base part from its pre-aggregates and the
/// day's other parts raw (`fresh`) is right only while that part is
/// active: a merge that replaces it puts its rows into a part the raw read
/// takes. So the parts are listed again after the reads, and if one is
/// gone (a part never becomes active again, so one still listed was active
/// throughout), the summary is planned and read again; the last of
/// [`PLAN_ATTEMPTS`] reads such days without their pre-aggregates.
pub async fn fetch_summary(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    top: u64,
) -> Result<Summary, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let plan = plan_for(client, db, timeout, filter, attempt < PLAN_ATTEMPTS).await?;
        let s = fetch_summary_planned(client, db, timeout, filter, top, &plan).await?;
        if bases_active(client, db, timeout, &plan).await? {
            return Ok(s);
        }
    }
}

/// Reads of a summary or overview before its plan leaves out the base
/// parts of uncompacted days (see [`fetch_summary`]).
pub const PLAN_ATTEMPTS: u32 = 3;

/// Whether every base part `plan` reads pre-aggregates of
/// ([`SummaryPlan::bases`]) is active now.
pub async fn bases_active(
    client: &Client,
    db: &str,
    timeout: Duration,
    plan: &SummaryPlan,
) -> Result<bool, StoreError> {
    let bases = plan.bases();
    if bases.is_empty() {
        return Ok(true);
    }
    let what = "list parts";
    let active: Vec<DayRow> = with_timeout(what, timeout, async {
        client
            .query(
                "SELECT toUInt32(count()) AS day FROM system.parts \
                 WHERE database = ? AND table = 'incidents' AND active AND has(?, name)",
            )
            .bind(db)
            .bind(bases.clone())
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    let n = active.first().map_or(0, |r| r.day);
    if usize::try_from(n).ok() == Some(bases.len()) {
        return Ok(true);
    }
    tracing::info!(
        event = "summary_replanned",
        "a pre-aggregated part was merged during a summary; reading it again"
    );
    Ok(false)
}

/// Whether `filter` has nothing but time bounds (pre-aggregates apply).
fn time_only(filter: &QueryFilter) -> bool {
    filter.kind.is_none()
        && filter.event.is_none()
        && filter.vector.is_none()
        && filter.signature.is_none()
        && filter.severity.is_empty()
        && filter.sensor.is_none()
        && filter.ip.is_none()
        && filter.community_id.is_none()
        && filter.dst_net.is_none()
}

/// The [`summary_plan`] of `filter`'s window over the days stored now;
/// with `bases` false, uncompacted days are read without their base
/// parts' pre-aggregates.
pub async fn plan_for(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    bases: bool,
) -> Result<SummaryPlan, StoreError> {
    let unfiltered = time_only(filter);
    let (mut states, built) = if unfiltered {
        tokio::try_join!(
            day_states(client, db, timeout),
            day_summary_keys(client, db, timeout)
        )?
    } else {
        (day_states(client, db, timeout).await?, Vec::new())
    };
    if !bases {
        states.base_parts.clear();
    }
    let plan = summary_plan(
        &states,
        &built,
        filter.since.map(|t| t.micros()),
        filter.until.map(|t| t.micros()),
        unfiltered,
    );
    with_copies(client, db, timeout, plan).await
}

/// The plan of a count that the pre-aggregates do not hold (incidents per
/// sensor, say): [`plan_for`]'s pieces with none read from pre-aggregates
/// ([`SummaryPlan::into_raw`]): compacted days and the merged base parts
/// of uncompacted days are read raw without counting distinct ids (they
/// hold no duplicates), only the rest counting them. With `bases` false,
/// uncompacted days are read counting distinct ids throughout. Like
/// [`plan_for`]'s, the plan is right only while its base parts are active
/// ([`bases_active`]).
pub async fn raw_plan_for(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    bases: bool,
) -> Result<SummaryPlan, StoreError> {
    let mut states = day_states(client, db, timeout).await?;
    if !bases {
        states.base_parts.clear();
    }
    // As if every part were pre-aggregated: the plan's split of each day
    // into that part's rows and the rest, whatever the filter.
    let parts: Vec<(u32, String)> = states
        .clean_parts
        .iter()
        .chain(&states.base_parts)
        .cloned()
        .collect();
    let plan = summary_plan(
        &states,
        &parts,
        filter.since.map(|t| t.micros()),
        filter.until.map(|t| t.micros()),
        true,
    )
    .into_raw(&states);
    with_copies(client, db, timeout, plan).await
}

/// `plan` with the re-delivered copies of each `fresh` range listed
/// ([`SummaryPlan::copies`]).
async fn with_copies(
    client: &Client,
    db: &str,
    timeout: Duration,
    mut plan: SummaryPlan,
) -> Result<SummaryPlan, StoreError> {
    for range in &plan.fresh {
        let copies = list_copies(client, db, timeout, range).await?;
        plan.copies.push(copies);
    }
    Ok(plan)
}

/// Most re-delivered copies [`plan_for`] lists as literals.
const MAX_COPIES: usize = 10_000;

#[derive(Debug, Row, Deserialize)]
struct IdRow {
    copy: String,
}

/// The ids of incidents in the `fresh` range `(lo, hi, part)` that both
/// the base part `part` and a newer part hold; `None` when there are more
/// than [`MAX_COPIES`] or one is not a UUID's text.
async fn list_copies(
    client: &Client,
    db: &str,
    timeout: Duration,
    (lo, hi, part): &(u32, u32, String),
) -> Result<Option<Vec<String>>, StoreError> {
    let what = "list copies";
    let rows: Vec<IdRow> = with_timeout(what, timeout, async {
        client
            .query(&format!(
                "SELECT DISTINCT toString(id) AS copy FROM `{db}`.incidents \
                 WHERE _part = ? AND {RANGE} AND id IN (SELECT id FROM `{db}`.incidents \
                 WHERE _part != ? AND {RANGE}) LIMIT ?"
            ))
            .bind(part.as_str())
            .bind(*lo)
            .bind(*hi)
            .bind(part.as_str())
            .bind(*lo)
            .bind(*hi)
            .bind(u64::try_from(MAX_COPIES).unwrap_or(u64::MAX) + 1)
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    let uuid = |s: &str| s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if rows.len() > MAX_COPIES || !rows.iter().all(|r| uuid(&r.copy)) {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().map(|r| r.copy).collect()))
}

/// Appends ` UNION ALL` branches reading the plan's raw ranges (`raw`,
/// `part_raw`; without `FINAL`: `cols` per row) and its uncompacted ranges
/// (`fin`, `fresh`; `dedup`: counting copies of an incident once) of `incidents` rows matching the filter
/// and `cond`. A branch with no range is left out; `first` says whether
/// nothing precedes (no `UNION ALL` before the first branch).
pub(crate) fn union_raw(
    b: &mut SqlBuilder,
    plan: &SummaryPlan,
    db: &str,
    filter: &QueryFilter,
    mut first: bool,
    read: &RawRead<'_>,
) {
    let RawRead { cols, cond, dedup } = read;
    let mut wh = String::new();
    where_clause(filter, &mut wh);
    if !plan.raw.is_empty() || !plan.part_raw.is_empty() {
        let select = format!(" SELECT {cols} FROM `{db}`.incidents WHERE 1{wh}{cond}");
        b.branch(&mut first, &select).scope(plan, true, false);
    }
    let deduped = format!(
        " SELECT {} FROM (SELECT {} FROM `{db}`.incidents WHERE 1{wh}{cond}",
        dedup.outer, dedup.inner
    );
    let group = format!(" GROUP BY {}){}", dedup.group, dedup.outer_group);
    if !plan.fin.is_empty() {
        b.branch(&mut first, &deduped)
            .scope(plan, false, true)
            .push(&group);
    }
    for i in 0..plan.fresh.len() {
        b.branch(&mut first, &deduped)
            .fresh(db, plan, i, true)
            .push(&group);
    }
}

/// [`fetch_summary`] with the plan already made.
pub async fn fetch_summary_planned(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
    top: u64,
    plan: &SummaryPlan,
) -> Result<Summary, StoreError> {
    // Each read is the union of the pre-aggregates (`pre`: whole days,
    // then, for hosts, the whole hours of cut days), the raw compacted
    // ranges and the FINAL ranges; a branch with nothing to read is left
    // out (the first always stays, so the union is never empty). Ranges
    // are time conditions, so ClickHouse prunes partitions before reading
    // (and before FINAL merges).
    // The uncompacted days may hold several copies of an incident (until
    // ClickHouse merges them). Instead of `FINAL` (a single-threaded
    // merge of every column read, the slowest part of a summary that
    // includes today), each such branch counts distinct ids per group,
    // `uniqExact(id)`: copies of an incident are the same delivery (same
    // id, same content), so they fall in the same group and count once.
    // A leak source's matches are summed per (source, match count) group
    // as distinct ids times the count.
    let union = |b: &mut SqlBuilder, pre: &[(&str, Pre)], cols: &str, cond: &str, dedup: &Dedup| {
        for (i, (sql, which)) in pre.iter().enumerate() {
            if i > 0 {
                if *which == Pre::Hours && plan.hours.is_empty() {
                    continue;
                }
                b.push(" UNION ALL ");
            }
            b.push(sql).pre(plan, *which);
        }
        union_raw(b, plan, db, filter, false, &RawRead { cols, cond, dedup });
    };
    let mut dims = SqlBuilder::default();
    dims.push("SELECT kind, vector, signature, severity, hour, sum(n) AS n FROM (");
    union(
        &mut dims,
        &[(
            &format!(
                "SELECT kind, vector, signature, severity, hour, n \
                 FROM `{db}`.incidents_day_summary WHERE 1"
            ),
            Pre::Both,
        )],
        "kind, vector, signature, severity, toUInt32(toStartOfHour(ts)) AS hour, toUInt64(1) AS n",
        "",
        &Dedup {
            outer: "kind, vector, signature, severity, hour, n",
            inner: "kind, vector, signature, severity, toUInt32(toStartOfHour(ts)) AS hour, \
                    toUInt64(uniqExact(id)) AS n",
            group: "kind, vector, signature, severity, hour",
            outer_group: "",
        },
    );
    dims.push(") GROUP BY kind, vector, signature, severity, hour");
    let hosts = |role: &str, cols: &str, cond: &str, dedup: &Dedup, agg: &str, order: &str| {
        let mut b = SqlBuilder::default();
        b.push(&format!("SELECT ip, sum(n) AS n, {agg} AS score FROM ("));
        union(
            &mut b,
            &[
                (
                    &format!(
                        "SELECT ip, n, score, attacks FROM `{db}`.incidents_host_summary \
                         WHERE role = '{role}' AND hour = 0"
                    ),
                    Pre::Days,
                ),
                (
                    &format!(
                        "SELECT ip, n, score, attacks FROM `{db}`.incidents_host_summary \
                         WHERE role = '{role}' AND hour > 0"
                    ),
                    Pre::Hours,
                ),
            ],
            cols,
            cond,
            dedup,
        );
        b.push(&format!(") GROUP BY ip ORDER BY {order}, ip LIMIT ?"))
            .arg(Arg::U64(top));
        b
    };
    let targets = hosts(
        "target",
        "dst_ip AS ip, toUInt64(1) AS n, toUInt64(0) AS score, [cityHash64(attack_id)] AS attacks",
        " AND kind = 'volumetric' AND dst_ip != ''",
        &Dedup {
            outer: "ip, n, score, attacks",
            inner: "dst_ip AS ip, toUInt64(uniqExact(id)) AS n, toUInt64(0) AS score, \
                    groupUniqArray(cityHash64(attack_id)) AS attacks",
            group: "ip",
            outer_group: "",
        },
        "uniqExactArray(attacks)",
        "score DESC, n DESC",
    );
    let leakers = hosts(
        "leaker",
        "src_ip AS ip, toUInt64(1) AS n, match_count AS score, emptyArrayUInt64() AS attacks",
        " AND kind = 'leak' AND src_ip != ''",
        &Dedup {
            outer: "ip, sum(u) AS n, sum(u * mc) AS score, emptyArrayUInt64() AS attacks",
            inner: "src_ip AS ip, match_count AS mc, toUInt64(uniqExact(id)) AS u",
            group: "ip, mc",
            outer_group: " GROUP BY ip",
        },
        "sum(score)",
        "n DESC, score DESC",
    );
    let q_dims = dims.query(client, filter);
    let q_targets = targets.query(client, filter);
    let q_leakers = leakers.query(client, filter);
    let what = "summary";
    let (dims, targets, leakers) = with_timeout(what, timeout, async {
        tokio::try_join!(
            async {
                q_dims
                    .fetch_all::<DimRow>()
                    .await
                    .map_err(StoreError::ch(what))
            },
            async {
                q_targets
                    .fetch_all::<HostRow>()
                    .await
                    .map_err(StoreError::ch(what))
            },
            async {
                q_leakers
                    .fetch_all::<HostRow>()
                    .await
                    .map_err(StoreError::ch(what))
            },
        )
    })
    .await?;
    let mut s = Summary::default();
    let (mut kinds, mut vectors, mut sigs, mut sevs) = Default::default();
    let mut hours: std::collections::BTreeMap<u32, u64> = Default::default();
    let mut timeline: std::collections::BTreeMap<(u32, &str, &str), u64> = Default::default();
    let add = |m: &mut std::collections::HashMap<String, u64>, k: &str, n: u64| {
        *m.entry(k.to_string()).or_insert(0) += n;
    };
    for r in &dims {
        s.total += r.n;
        add(&mut kinds, &r.kind, r.n);
        if !r.vector.is_empty() {
            add(&mut vectors, &r.vector, r.n);
        }
        add(&mut sigs, &r.signature, r.n);
        add(&mut sevs, &r.severity, r.n);
        *hours.entry(r.hour).or_insert(0) += r.n;
        *timeline
            .entry((r.hour, r.kind.as_str(), r.severity.as_str()))
            .or_insert(0) += r.n;
    }
    s.by_kind = sorted_counts(kinds);
    s.by_vector = sorted_counts(vectors);
    s.by_signature = sorted_counts(sigs);
    s.by_severity = sorted_counts(sevs);
    let hour_text = |h: u32| {
        Timestamp::from_parts(i64::from(h), 0)
            .to_string()
            .replace(".000000Z", "Z")
    };
    s.per_hour = hours
        .into_iter()
        .map(|(h, incidents)| HourCount {
            hour: hour_text(h),
            incidents,
        })
        .collect();
    s.timeline = timeline
        .into_iter()
        .map(|((h, kind, severity), incidents)| TimelineCount {
            hour: hour_text(h),
            kind: kind.to_string(),
            severity: severity.to_string(),
            incidents,
        })
        .collect();
    let host = |r: HostRow| TopHost {
        ip: r.ip,
        incidents: r.n,
        score: r.score,
    };
    s.top_targets = targets.into_iter().map(host).collect();
    s.top_leak_sources = leakers.into_iter().map(host).collect();
    Ok(s)
}

#[derive(Debug, Row, Deserialize)]
struct PartitionRow {
    partition: String,
    parts: u64,
    min_level: u32,
    part: String,
    base: String,
    base_level: u32,
}

#[derive(Debug, Row, Deserialize)]
struct SummaryKeyRow {
    day: u32,
    part: String,
}

/// `(day, part)` of every day summary built.
pub async fn day_summary_keys(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<Vec<(u32, String)>, StoreError> {
    let what = "list day summaries";
    let rows: Vec<SummaryKeyRow> = with_timeout(what, timeout, async {
        client
            .query(&format!(
                "SELECT DISTINCT day, part FROM `{db}`.incidents_day_summary"
            ))
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    Ok(rows.into_iter().map(|r| (r.day, r.part)).collect())
}

/// Which days of `incidents` need `FINAL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStates {
    /// Compacted days (`YYYYMMDD`): one active part produced by a merge, so
    /// ReplacingMergeTree has removed every duplicate and they can be read
    /// without `FINAL`. Always holds the sentinel 0, so the array is never
    /// empty (`has([], x)` is a type error on 18.16).
    pub clean: Vec<u32>,
    /// The other days: read with `FINAL`.
    pub unclean: Vec<u32>,
    /// Each compacted day with the name of its one part.
    pub clean_parts: Vec<(u32, String)>,
    /// Each uncompacted day whose oldest part (lowest block numbers) was
    /// produced by a merge (level > 0), with that part's name: the part
    /// holds no duplicates, and every newer part of the day came after
    /// it, so its pre-aggregates plus the newer parts read raw (less the
    /// ids the part holds) count each incident once. Today after its
    /// compaction ([`crate::retention::compact_once`]) is such a day until
    /// the next compaction.
    pub base_parts: Vec<(u32, String)>,
}

/// Lists the partitions of `incidents` (see [`DayStates`] and
/// [`crate::retention::compact_once`]).
pub async fn day_states(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<DayStates, StoreError> {
    let what = "list partitions";
    let rows: Vec<PartitionRow> = with_timeout(what, timeout, async {
        client
            .query(
                "SELECT partition, count() AS parts, min(level) AS min_level, any(name) AS part, \
                 argMin(name, min_block_number) AS base, \
                 toUInt32(argMin(level, min_block_number)) AS base_level \
                 FROM system.parts WHERE database = ? AND table = 'incidents' AND active \
                 GROUP BY partition",
            )
            .with_setting("wait_end_of_query", "1")
            .bind(db)
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    let mut states = DayStates::default();
    for r in rows {
        let Ok(day) = r.partition.trim_matches('\'').parse::<u32>() else {
            continue;
        };
        if r.parts == 1 && r.min_level > 0 {
            states.clean.push(day);
            states.clean_parts.push((day, r.part));
        } else {
            states.unclean.push(day);
            if r.base_level > 0 {
                states.base_parts.push((day, r.base));
            }
        }
    }
    if states.clean_parts.is_empty() && states.unclean.is_empty() {
        // No parts here: an empty table, or cluster mode, where
        // `incidents` is a Distributed table and its parts live in
        // `incidents_local` on every shard. There every day is read with
        // `FINAL` (no compaction), found through the Distributed table.
        states.unclean = distributed_days(client, db, timeout).await?;
    }
    states.clean.push(0);
    Ok(states)
}

#[derive(Debug, Row, Deserialize)]
struct DayRow {
    day: u32,
}

/// The capture days holding incidents when `incidents` is a `Distributed`
/// table (cluster mode); empty otherwise.
async fn distributed_days(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<Vec<u32>, StoreError> {
    let what = "list days";
    let distributed: Vec<DayRow> = with_timeout(what, timeout, async {
        client
            .query(
                "SELECT toUInt32(count()) AS day FROM system.tables \
                 WHERE database = ? AND name = 'incidents' AND engine = 'Distributed'",
            )
            .bind(db)
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    if distributed.first().is_none_or(|r| r.day == 0) {
        return Ok(Vec::new());
    }
    let rows: Vec<DayRow> = with_timeout(what, timeout, async {
        client
            .query(&format!(
                "SELECT DISTINCT toYYYYMMDD(ts) AS day FROM `{db}`.incidents"
            ))
            .with_setting("wait_end_of_query", "1")
            .fetch_all()
            .await
            .map_err(StoreError::ch(what))
    })
    .await?;
    Ok(rows.into_iter().map(|r| r.day).collect())
}

/// Compacted days (see [`DayStates::clean`]).
pub async fn clean_days(
    client: &Client,
    db: &str,
    timeout: Duration,
) -> Result<Vec<u32>, StoreError> {
    Ok(day_states(client, db, timeout).await?.clean)
}

/// Most events returned for one attack.
pub const MAX_ATTACK_EVENTS: u64 = 100_000;

#[derive(Debug, Row, Deserialize)]
struct SpanRow {
    lo: u32,
    hi: u32,
    n: u64,
}

/// What an id is in `incident_lookup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An incident's id.
    Incident,
    /// An attack's id (`attack_id`).
    Attack,
}

/// The capture seconds `[first, last]` of the rows with this id, from
/// `incident_lookup` (a point read in each day's partition); `None` when
/// no row has it.
pub async fn lookup_span(
    client: &Client,
    db: &str,
    timeout: Duration,
    id: Uuid,
    kind: IdKind,
) -> Result<Option<(u32, u32)>, StoreError> {
    let sql = format!(
        "SELECT toUInt32(min(ts)) AS lo, toUInt32(max(ts)) AS hi, count() AS n \
         FROM `{db}`.incident_lookup WHERE key = cityHash64(?) AND attack = ?"
    );
    let q = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(id.to_string())
        .bind(u8::from(kind == IdKind::Attack));
    let row: SpanRow = with_timeout("look up id", timeout, async {
        q.fetch_one().await.map_err(StoreError::ch("look up id"))
    })
    .await?;
    Ok((row.n > 0).then_some((row.lo, row.hi)))
}

/// The life of one volumetric attack: every incident with this
/// `attack_id`, oldest first (start, updates, end). `incident_lookup`
/// gives the time span of its events, so only that span is read. Each
/// event once (`LIMIT 1 BY sensor, id`: copies of an incident are the
/// same delivery), without `FINAL`, which would merge every column of the
/// span's parts on one thread.
pub async fn fetch_attack(
    client: &Client,
    db: &str,
    timeout: Duration,
    attack_id: Uuid,
) -> Result<Vec<IncidentRow>, StoreError> {
    let Some((lo, hi)) = lookup_span(client, db, timeout, attack_id, IdKind::Attack).await? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT ?fields FROM `{db}`.incidents WHERE kind = 'volumetric' AND attack_id = ? \
         AND ts >= toDateTime(?) AND ts <= toDateTime(?) ORDER BY ts, ts_us, id, sensor \
         LIMIT 1 BY sensor, id LIMIT ?"
    );
    let q = client
        .query(&sql)
        .with_setting("wait_end_of_query", "1")
        .bind(attack_id.to_string())
        .bind(lo)
        .bind(hi)
        .bind(MAX_ATTACK_EVENTS);
    with_timeout("query attack", timeout, async {
        q.fetch_all().await.map_err(StoreError::ch("query attack"))
    })
    .await
}

/// One incident as wire JSON (from `raw`; a row whose `raw` no longer
/// parses is returned as stored, or as a string).
pub fn incident_json(r: &IncidentRow) -> serde_json::Value {
    match serde_json::from_str::<Incident>(&r.raw).and_then(serde_json::to_value) {
        Ok(v) => v,
        Err(_) => serde_json::from_str(&r.raw)
            .unwrap_or_else(|_| serde_json::Value::String(r.raw.clone())),
    }
}

/// The summary as aligned text for the terminal.
pub fn render_summary(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "incidents: {}", s.total);
    for (title, counts) in [
        ("by kind", &s.by_kind),
        ("by vector", &s.by_vector),
        ("by signature", &s.by_signature),
        ("by severity", &s.by_severity),
    ] {
        let _ = writeln!(o, "\n{title}:");
        let w = counts
            .iter()
            .map(|c| c.value.chars().count())
            .max()
            .unwrap_or(0);
        for c in counts {
            let v = printable(&c.value);
            let pad = w.saturating_sub(c.value.chars().count());
            let _ = writeln!(o, "  {v}{}  {}", " ".repeat(pad), c.incidents);
        }
    }
    for (title, hosts, score) in [
        ("top targeted hosts", &s.top_targets, "attacks"),
        ("top leaking sources", &s.top_leak_sources, "matches"),
    ] {
        let _ = writeln!(o, "\n{title}:");
        for h in hosts {
            let _ = writeln!(
                o,
                "  {:<39}  incidents={} {score}={}",
                printable(&h.ip),
                h.incidents,
                h.score
            );
        }
    }
    let _ = writeln!(o, "\nper hour:");
    for h in &s.per_hour {
        let _ = writeln!(o, "  {}  {}", h.hour, h.incidents);
    }
    o
}

fn clamp_secs(s: i64) -> u32 {
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

fn clamp_micros(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0)
}

/// One incident per line, exactly as the wire format writes it (rebuilt
/// from the stored `raw` JSON; a row whose `raw` no longer parses is printed
/// as stored).
pub fn render_json_lines(rows: &[IncidentRow]) -> String {
    let mut out = String::new();
    for r in rows {
        match serde_json::from_str::<Incident>(&r.raw).and_then(|i| serde_json::to_string(&i)) {
            Ok(line) => out.push_str(&line),
            Err(_) => out.push_str(&r.raw),
        }
        out.push('\n');
    }
    out
}

const HEADERS: [&str; 9] = [
    "TS",
    "KIND",
    "EVENT",
    "SIGNATURE",
    "VECTOR",
    "SEVERITY",
    "SRC",
    "DST",
    "DETAIL",
];

/// An aligned text table, one incident per line, with a header.
pub fn render_table(rows: &[IncidentRow]) -> String {
    let cells: Vec<[String; 9]> = rows.iter().map(table_row).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADERS.map(String::from);
    for line in std::iter::once(&header).chain(cells.iter()) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn endpoint(ip: &str, port: Option<u16>) -> String {
    match (ip.is_empty(), port) {
        (true, _) => "-".to_string(),
        (false, None) => ip.to_string(),
        (false, Some(p)) if ip.contains(':') => format!("[{ip}]:{p}"),
        (false, Some(p)) => format!("{ip}:{p}"),
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        printable(s)
    }
}

/// Escapes control characters so stored text cannot drive the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn table_row(r: &IncidentRow) -> [String; 9] {
    let detail = match r.kind.as_str() {
        "volumetric" => format!(
            "pps={} bps={} peak_pps={} packets={} bytes={}",
            r.pps, r.bps, r.peak_pps, r.packets, r.bytes
        ),
        "leak" => format!(
            "matches={} app={} excerpt={}",
            r.match_count,
            dash(&r.app_proto),
            printable(&r.excerpt)
        ),
        _ => String::new(),
    };
    [
        r.timestamp().to_string(),
        printable(&r.kind),
        printable(&r.event),
        printable(&r.signature),
        dash(&r.vector),
        printable(&r.severity),
        endpoint(&r.src_ip, r.src_port),
        endpoint(&r.dst_ip, r.dst_port),
        detail,
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn network_prefixes_are_checked_and_written_canonically() {
        assert_eq!(
            canonical_net("198.51.100.0/24").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(
            canonical_net("2001:0db8:0001::/48").as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(canonical_net("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        for bad in [
            "198.51.100.7/24",
            "198.51.100.0/33",
            "198.51.100.0",
            "x/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "2001:db8::1/64",
        ] {
            assert_eq!(canonical_net(bad), None, "{bad}");
        }
    }

    use super::*;

    fn states(clean: &[(u32, &str)], unclean: &[u32]) -> DayStates {
        DayStates {
            clean: clean.iter().map(|(d, _)| *d).chain([0]).collect(),
            unclean: unclean.to_vec(),
            clean_parts: clean.iter().map(|(d, p)| (*d, p.to_string())).collect(),
            base_parts: Vec::new(),
        }
    }

    /// 2026-11-01T00:00:00Z and 2026-11-02T00:00:00Z.
    const D1: u32 = 1_793_491_200;
    const D2: u32 = D1 + 86_400;
    const US: i64 = 1_000_000;

    #[test]
    fn a_raw_plan_reads_every_piece_from_incidents_merged_parts_without_distinct_counts() {
        // Day 1 compacted, day 2 uncompacted without a merged part, day 3
        // today with its merged base part "b3" and newer parts.
        let mut st = states(&[(20261101, "p1")], &[20261102, 20261103]);
        st.base_parts = vec![(20261103, "b3".to_string())];
        let parts = vec![(20261101, "p1".to_string()), (20261103, "b3".to_string())];
        let d3 = D2 + 86_400;
        // From 06:30:00.5 on day 1 to 03:15 on day 3.
        let since = i64::from(D1 + 6 * 3600 + 1800) * US + 500_000;
        let until = i64::from(d3 + 3 * 3600 + 900) * US;
        let p = summary_plan(&st, &parts, Some(since), Some(until), true).into_raw(&st);
        assert_eq!(p.whole_days, [0]);
        assert!(p.hours.is_empty());
        let mut raw = p.raw.clone();
        raw.sort_unstable();
        assert_eq!(
            raw,
            [(D1 + 6 * 3600 + 1800, D1 + 7 * 3600), (D1 + 7 * 3600, D2)]
        );
        assert_eq!(p.fin, [(D2, d3)]);
        let mut part_raw = p.part_raw.clone();
        part_raw.sort_unstable();
        let b3 = "b3".to_string();
        assert_eq!(
            part_raw,
            [
                (d3, d3 + 3 * 3600, b3.clone()),
                (d3 + 3 * 3600, d3 + 3 * 3600 + 900, b3.clone())
            ]
        );
        assert_eq!(p.fresh, [(d3, d3 + 3 * 3600 + 900, b3)]);
        // A whole compacted day inside the window is one raw range.
        let p = summary_plan(&st, &parts, None, Some(i64::from(D2) * US), true).into_raw(&st);
        assert_eq!((p.whole_days, p.raw), (vec![0], vec![(D1, D2)]));
    }

    #[test]
    fn summary_plan_reads_whole_days_and_whole_hours_pre_aggregated() {
        let st = states(&[(20261101, "p1"), (20261102, "p2")], &[20261103]);
        let built = vec![(20261101, "p1".to_string()), (20261102, "p2".to_string())];
        // The window starts at 06:30:00.5 on day 1 and ends at 03:15 on day 3.
        let since = i64::from(D1 + 6 * 3600 + 1800) * US + 500_000;
        let until = i64::from(D2 + 86_400 + 3 * 3600 + 900) * US;
        let p = summary_plan(&st, &built, Some(since), Some(until), true);
        assert_eq!(p.whole_days, [0, 20261102]);
        assert_eq!(p.hours, [(20261101, D1 + 7 * 3600, D2)]);
        assert_eq!(p.raw, [(D1 + 6 * 3600 + 1800, D1 + 7 * 3600)]);
        assert_eq!(p.fin, [(D2 + 86_400, D2 + 86_400 + 3 * 3600 + 900)]);
        // A window on hour boundaries needs no raw fragment; one that ends
        // inside a day reads its last whole hours pre-aggregated too.
        let since = i64::from(D1 + 7 * 3600) * US;
        let until = i64::from(D2 + 5 * 3600 + 10) * US + 1;
        let p = summary_plan(&st, &built, Some(since), Some(until), true);
        assert_eq!(p.whole_days, [0]);
        assert_eq!(
            p.hours,
            [(20261101, D1 + 7 * 3600, D2), (20261102, D2, D2 + 5 * 3600)]
        );
        assert_eq!(p.raw, [(D2 + 5 * 3600, D2 + 5 * 3600 + 11)]);
        assert!(p.fin.is_empty());
    }

    #[test]
    fn summary_plan_falls_back_to_raw_reads() {
        let st = states(&[(20261101, "p1"), (20261102, "p2")], &[20261103]);
        // Day 2's summary was built from an older part.
        let built = vec![(20261101, "p1".to_string()), (20261102, "old".to_string())];
        let p = summary_plan(&st, &built, None, None, true);
        assert_eq!(p.whole_days, [0, 20261101]);
        assert!(p.hours.is_empty());
        assert_eq!(p.raw, [(D2, D2 + 86_400)]);
        assert_eq!(p.fin, [(D2 + 86_400, D2 + 2 * 86_400)]);
        // Filters other than time: no pre-aggregates at all.
        let p = summary_plan(&st, &built, None, None, false);
        assert_eq!(p.whole_days, [0]);
        assert_eq!(p.raw, [(D1, D2), (D2, D2 + 86_400)]);
        // A window inside one hour: raw only; days outside it: nothing.
        let since = i64::from(D1 + 600) * US;
        let until = i64::from(D1 + 1200) * US;
        let p = summary_plan(&st, &built, Some(since), Some(until), true);
        assert_eq!(p.whole_days, [0]);
        assert!(p.hours.is_empty() && p.fin.is_empty());
        assert_eq!(p.raw, [(D1 + 600, D1 + 1200)]);
    }

    #[test]
    fn summary_plan_reads_a_pre_aggregated_base_part_and_the_newer_parts_raw() {
        // Day 3 is today: merged part "b3" (pre-aggregated) plus newer
        // parts; day 2 is uncompacted with an unsummarized base part.
        let mut st = states(&[(20261101, "p1")], &[20261102, 20261103]);
        st.base_parts = vec![(20261102, "b2".to_string()), (20261103, "b3".to_string())];
        let built = vec![(20261101, "p1".to_string()), (20261103, "b3".to_string())];
        let d3 = D2 + 86_400;
        let p = summary_plan(&st, &built, None, None, true);
        assert_eq!(p.whole_days, [0, 20261101, 20261103]);
        assert_eq!(p.fin, [(D2, d3)]);
        assert!(p.part_raw.is_empty() && p.raw.is_empty());
        assert_eq!(p.fresh, [(d3, d3 + 86_400, "b3".to_string())]);
        assert_eq!(p.bases(), ["b3"]);
        // A window cutting day 3's hours: whole hours pre-aggregated, the
        // edges from the base part raw, the newer parts over the window.
        let since = i64::from(d3 + 3600 + 60) * US;
        let until = i64::from(d3 + 5 * 3600 + 120) * US;
        let p = summary_plan(&st, &built, Some(since), Some(until), true);
        assert_eq!(p.whole_days, [0]);
        assert_eq!(p.hours, [(20261103, d3 + 2 * 3600, d3 + 5 * 3600)]);
        assert_eq!(
            p.part_raw,
            [
                (d3 + 3600 + 60, d3 + 2 * 3600, "b3".to_string()),
                (d3 + 5 * 3600, d3 + 5 * 3600 + 120, "b3".to_string())
            ]
        );
        assert_eq!(
            p.fresh,
            [(d3 + 3600 + 60, d3 + 5 * 3600 + 120, "b3".to_string())]
        );
        assert!(p.raw.is_empty() && p.fin.is_empty());
        // Filtered, or a window inside one hour: the day is read counting
        // distinct ids, with no base part.
        for (since, until, unfiltered) in [
            (None, None, false),
            (
                Some(i64::from(d3 + 60) * US),
                Some(i64::from(d3 + 120) * US),
                true,
            ),
        ] {
            let p = summary_plan(&st, &built, since, until, unfiltered);
            assert!(p.fresh.is_empty() && p.part_raw.is_empty(), "{p:?}");
            assert!(p.bases().is_empty());
            assert!(p.fin.contains(&(
                d3.max(since.map_or(0, |s| (s / US) as u32)),
                until.map_or(d3 + 86_400, |u| (u / US) as u32)
            )));
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for s in [
            "",
            "h",
            "10",
            "1.5h",
            "-1h",
            "1y",
            "1hh",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(s), None, "{s}");
        }
    }

    #[test]
    fn time_bounds_accept_all_now_durations_and_rfc3339() {
        assert_eq!("all".parse::<TimeBound>().unwrap(), TimeBound::All);
        assert_eq!("ALL".parse::<TimeBound>().unwrap(), TimeBound::All);
        assert_eq!(
            "now".parse::<TimeBound>().unwrap(),
            TimeBound::Ago(Duration::ZERO)
        );
        assert_eq!(
            "1h".parse::<TimeBound>().unwrap(),
            TimeBound::Ago(Duration::from_secs(3600))
        );
        assert_eq!(
            "2023-11-14T22:13:20Z".parse::<TimeBound>().unwrap(),
            TimeBound::At(Timestamp::from_parts(1_700_000_000, 0))
        );
        assert!("yesterday".parse::<TimeBound>().is_err());
    }

    #[test]
    fn relative_bounds_resolve_against_now() {
        let now = Timestamp::from_parts(1_700_000_000, 0);
        assert_eq!(TimeBound::All.resolve(now), None);
        assert_eq!(
            TimeBound::Ago(Duration::from_secs(3600)).resolve(now),
            Some(Timestamp::from_parts(1_699_996_400, 0))
        );
    }

    #[test]
    fn table_is_aligned_and_escapes_control_characters() {
        let row = IncidentRow {
            id: uuid::Uuid::nil(),
            schema: 1,
            sensor: "s".into(),
            kind: "leak".into(),
            event: "leak".into(),
            signature: "sig".into(),
            severity: "high".into(),
            ts: 1_700_000_000,
            ts_us: 5,
            src_ip: "10.0.0.1".into(),
            dst_ip: "::1".into(),
            src_port: Some(1234),
            dst_port: Some(80),
            proto: "tcp".into(),
            community_id: String::new(),
            direction: "outbound".into(),
            attack_id: String::new(),
            vector: String::new(),
            pps: 0,
            bps: 0,
            peak_pps: 0,
            peak_bps: 0,
            packets: 0,
            bytes: 0,
            top_sources: String::new(),
            match_count: 2,
            app_proto: "http".into(),
            excerpt: "a\x1b[2Jb".into(),
            raw: String::new(),
            received_at: 0,
            dst_net: String::new(),
        };
        let t = render_table(&[row]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("KIND"), lines[1].find("leak"));
        assert!(lines[1].contains("2023-11-14T22:13:20.000005Z"));
        assert!(lines[1].contains("10.0.0.1:1234"));
        assert!(lines[1].contains("[::1]:80"));
        assert!(lines[1].contains("excerpt=a\\u{1b}[2Jb"));
        assert!(!t.contains('\x1b'));
    }
}
