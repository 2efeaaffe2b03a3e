//! Analysts' reads: time bounds, the filtered `incidents FINAL` query, and
//! the table / JSON-lines renderings used by `shaobing-collector query`.

use std::fmt::Write as _;
use std::time::Duration;

use clickhouse::Client;
use shaobing_wire::{Incident, Kind, Timestamp};

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

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFilter {
    /// Inclusive lower bound on capture time.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound on capture time.
    pub until: Option<Timestamp>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// At most this many incidents: the most recent ones in the window.
    pub limit: u64,
}

/// Reads incidents matching `filter` from `` `db`.incidents FINAL `` (so
/// re-delivered incidents appear once), the most recent `limit` of them,
/// returned oldest first. All values are bound parameters.
pub async fn fetch_incidents(
    client: &Client,
    db: &str,
    timeout: Duration,
    filter: &QueryFilter,
) -> Result<Vec<IncidentRow>, StoreError> {
    // `db` is an identifier checked by config validation.
    let mut sql = format!("SELECT ?fields FROM `{db}`.incidents FINAL WHERE 1");
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
    sql.push_str(" ORDER BY ts DESC, ts_us DESC, id DESC LIMIT ?");

    let mut q = client.query(&sql).with_setting("wait_end_of_query", "1");
    if let Some(t) = filter.since {
        q = q.bind(clamp_secs(t.secs())).bind(clamp_micros(t.micros()));
    }
    if let Some(t) = filter.until {
        q = q.bind(clamp_secs(t.secs())).bind(clamp_micros(t.micros()));
    }
    if let Some(k) = filter.kind {
        q = q.bind(k.as_str());
    }
    q = q.bind(filter.limit);
    let mut rows: Vec<IncidentRow> = with_timeout("query incidents", timeout, async {
        q.fetch_all()
            .await
            .map_err(StoreError::ch("query incidents"))
    })
    .await?;
    rows.reverse();
    Ok(rows)
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
    use super::*;

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
