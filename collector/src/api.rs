//! The analysts' HTTP API (analyst tokens only): `GET /api/v1/incidents`,
//! `GET /api/v1/summary`, `GET /api/v1/attacks/{attack_id}`, `GET /metrics`.
//!
//! Query-string values are parsed into typed filters (unknown parameters,
//! repeated parameters and malformed values get 400) and reach ClickHouse
//! only as bound parameters.

use std::net::IpAddr;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use shaobing_wire::{Event, Kind, Severity, Timestamp};
use uuid::Uuid;

use crate::auth::Role;
use crate::ingest::{authorize, reject, ApiError, AppState};
use crate::query::{self, Cursor, QueryFilter, TimeBound};

/// Default and largest `limit` of `GET /api/v1/incidents`.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest `limit` of `GET /api/v1/incidents`.
pub const MAX_LIMIT: u64 = 10_000;
/// Longest accepted query string.
const MAX_QUERY_BYTES: usize = 8192;

/// Every incident kind, by wire name: what `kind` accepts.
pub const KINDS: [&str; 3] = kind_names([Kind::Volumetric, Kind::Leak, Kind::SensorHealth]);
/// Every incident event, by wire name: what `event` accepts.
pub const EVENTS: [&str; 5] = event_names([
    Event::AttackStarted,
    Event::AttackUpdate,
    Event::AttackEnded,
    Event::Leak,
    Event::CaptureLoss,
]);

const fn kind_names(all: [Kind; 3]) -> [&'static str; 3] {
    let mut names = [""; 3];
    let mut i = 0;
    while i < all.len() {
        // Exhaustive: a new kind fails to compile here until it is listed.
        names[i] = match all[i] {
            Kind::Volumetric => "volumetric",
            Kind::Leak => "leak",
            Kind::SensorHealth => "sensor_health",
        };
        i += 1;
    }
    names
}

const fn event_names(all: [Event; 5]) -> [&'static str; 5] {
    let mut names = [""; 5];
    let mut i = 0;
    while i < all.len() {
        // Exhaustive: a new event fails to compile here until it is listed.
        names[i] = match all[i] {
            Event::AttackStarted => "attack_started",
            Event::AttackUpdate => "attack_update",
            Event::AttackEnded => "attack_ended",
            Event::Leak => "leak",
            Event::CaptureLoss => "capture_loss",
        };
        i += 1;
    }
    names
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ApiError::bad_request("malformed percent-encoding in query"));
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("query is not UTF-8"))
}

/// Splits a query string into (name, value) pairs, refusing names not in
/// `allowed` and repeated names.
pub(crate) fn parse_query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request("query string too long"));
    }
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        let Some(name) = ALL_PARAMS.iter().find(|n| **n == k && allowed.contains(n)) else {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {} (allowed: {})",
                crate::ingest::shown(&k),
                allowed.join(", ")
            )));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name} given twice"
            )));
        }
        out.push((name, percent_decode(v)?));
    }
    Ok(out)
}

const ALL_PARAMS: &[&str] = &[
    "since",
    "until",
    "kind",
    "event",
    "vector",
    "signature",
    "severity",
    "sensor",
    "ip",
    "community_id",
    "dst_net",
    "limit",
    "cursor",
    "top",
];

/// The filter parameters every query endpoint accepts.
pub(crate) const FILTER_PARAMS: &[&str] = &[
    "since",
    "until",
    "kind",
    "event",
    "vector",
    "signature",
    "severity",
    "sensor",
    "ip",
    "community_id",
    "dst_net",
];

fn bad(name: &str, value: &str, expected: &str) -> String {
    format!(
        "invalid {name} {}: expected {expected}",
        crate::ingest::shown(value)
    )
}

/// Builds a filter (and the `top` size) from parameters named as in the
/// API (`since`, `kind`, `ip`, ...; the CLI uses it too). `default_since`
/// applies when `since` is absent. The error says which value is wrong.
pub fn filter_from_params(
    params: &[(&'static str, String)],
    now: Timestamp,
    default_since: TimeBound,
) -> Result<(QueryFilter, u64), String> {
    let mut f = QueryFilter {
        since: default_since.resolve(now),
        limit: DEFAULT_LIMIT,
        ..QueryFilter::default()
    };
    let mut top = 10;
    let text = |v: &str, name: &str| -> Result<String, String> {
        if v.is_empty() || v.len() > 256 {
            return Err(bad(name, v, "1..=256 bytes"));
        }
        Ok(v.to_string())
    };
    for (name, v) in params {
        match *name {
            "since" | "until" => {
                let b: TimeBound = v.parse().map_err(|_| {
                    bad(
                        name,
                        v,
                        "all, now, a duration (30s, 15m, 1h, 7d, 2w) or RFC 3339",
                    )
                })?;
                if *name == "since" {
                    f.since = b.resolve(now);
                } else {
                    f.until = b.resolve(now);
                }
            }
            "kind" => f.kind = Some(Kind::parse(v).ok_or_else(|| bad(name, v, &KINDS.join(", ")))?),
            "event" => {
                f.event = Some(Event::parse(v).ok_or_else(|| bad(name, v, &EVENTS.join(", ")))?)
            }
            "vector" => f.vector = Some(text(v, name)?),
            "signature" => f.signature = Some(text(v, name)?),
            "sensor" => f.sensor = Some(text(v, name)?),
            "community_id" => f.community_id = Some(text(v, name)?),
            "dst_net" => {
                f.dst_net = Some(crate::query::canonical_net(v).ok_or_else(|| {
                    bad(
                        name,
                        v,
                        "a network prefix such as 198.51.100.0/24 or 2001:db8:1::/48",
                    )
                })?)
            }
            "severity" => {
                for s in v.split(',') {
                    f.severity.push(Severity::parse(s.trim()).ok_or_else(|| {
                        bad(name, v, "comma-separated low, medium, high, critical")
                    })?);
                }
            }
            "ip" => {
                f.ip = Some(
                    v.parse::<IpAddr>()
                        .map_err(|_| bad(name, v, "an IPv4 or IPv6 address"))?,
                )
            }
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| bad(name, v, "1..=10000"))?
            }
            "top" => {
                top = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| bad(name, v, "1..=1000"))?
            }
            "cursor" => {
                f.cursor = Some(
                    Cursor::decode(v)
                        .map_err(|_| bad(name, v, "a next_cursor from a previous page"))?,
                )
            }
            _ => {}
        }
    }
    Ok((f, top))
}

/// `GET /api/v1/incidents`: newest first, `{"incidents": [...],
/// "next_cursor": "..." | null}`.
pub async fn get_incidents(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        authorize(&state, &headers, Role::Analyst)?;
        let mut allowed = FILTER_PARAMS.to_vec();
        allowed.extend(["limit", "cursor"]);
        let params = parse_query(raw.as_deref(), &allowed)?;
        let (filter, _) = filter_from_params(&params, Timestamp::now(), TimeBound::All)
            .map_err(ApiError::bad_request)?;
        let page =
            query::fetch_page(&state.client, &state.database, state.timeout, &filter).await?;
        let incidents: Vec<_> = page.rows.iter().map(query::incident_json).collect();
        Ok::<_, ApiError>(json!({
            "incidents": incidents,
            "next_cursor": page.next_cursor.map(|c| c.encode()),
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => reject(&state, e),
    }
}

/// The filter parameters and `top` of an aggregate endpoint (summary,
/// overview), with `default_since` when `since` is absent.
pub(crate) fn filter_and_top(
    raw: Option<&str>,
    default_since: TimeBound,
) -> Result<(QueryFilter, u64), ApiError> {
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.push("top");
    let params = parse_query(raw, &allowed)?;
    filter_from_params(&params, Timestamp::now(), default_since).map_err(ApiError::bad_request)
}

/// `GET /api/v1/summary`: the [`query::Summary`] of the window (default:
/// the last 7 days).
pub async fn get_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        authorize(&state, &headers, Role::Analyst)?;
        let (filter, top) = filter_and_top(
            raw.as_deref(),
            TimeBound::Ago(std::time::Duration::from_secs(7 * 86_400)),
        )?;
        let s = query::fetch_summary(&state.client, &state.database, state.timeout, &filter, top)
            .await?;
        Ok::<_, ApiError>(s)
    }
    .await;
    match result {
        Ok(s) => Json(s).into_response(),
        Err(e) => reject(&state, e),
    }
}

/// `GET /api/v1/attacks/{attack_id}`: `{"attack_id", "started_at",
/// "ended_at", "events": [...]}`, 404 if no incident has this id.
pub async fn get_attack(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(attack_id): Path<String>,
) -> Response {
    let result = async {
        authorize(&state, &headers, Role::Analyst)?;
        let id = Uuid::parse_str(&attack_id)
            .map_err(|_| ApiError::bad_request(bad("attack_id", &attack_id, "a UUID")))?;
        let rows = query::fetch_attack(&state.client, &state.database, state.timeout, id).await?;
        if rows.is_empty() {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no such attack"));
        }
        let started = rows
            .iter()
            .find(|r| r.event == "attack_started")
            .map(|r| r.timestamp().to_string());
        let ended = rows
            .iter()
            .find(|r| r.event == "attack_ended")
            .map(|r| r.timestamp().to_string());
        let events: Vec<_> = rows.iter().map(query::incident_json).collect();
        Ok(json!({
            "attack_id": id.to_string(),
            "started_at": started,
            "ended_at": ended,
            "events": events,
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => reject(&state, e),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn get_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorize(&state, &headers, Role::Analyst) {
        Ok(_) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(),
        )
            .into_response(),
        Err(e) => reject(&state, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_unknown_or_repeated_names_are_refused() {
        let p = parse_query(Some("ip=10.0.0.1&sensor=a+b%27c"), FILTER_PARAMS).unwrap();
        assert_eq!(p[1], ("sensor", "a b'c".to_string()));
        assert!(parse_query(Some("bogus=1"), FILTER_PARAMS).is_err());
        assert!(parse_query(Some("ip=1&ip=2"), FILTER_PARAMS).is_err());
        assert!(parse_query(Some("ip=%zz"), FILTER_PARAMS).is_err());
        assert!(parse_query(Some("limit=5"), FILTER_PARAMS).is_err());
    }

    #[test]
    fn filters_parse_into_typed_values() {
        let now = Timestamp::from_parts(1_700_000_000, 0);
        let params = parse_query(
            Some("since=1h&kind=leak&severity=high,critical&ip=2001:db8::1&limit=5"),
            &["since", "kind", "severity", "ip", "limit"],
        )
        .unwrap();
        let (f, _) = filter_from_params(&params, now, TimeBound::All).unwrap();
        assert_eq!(f.since, Some(Timestamp::from_parts(1_699_996_400, 0)));
        assert_eq!(f.kind, Some(Kind::Leak));
        assert_eq!(f.severity, vec![Severity::High, Severity::Critical]);
        assert_eq!(f.ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.limit, 5);
        let p = parse_query(Some("dst_net=2001:0db8:1::/48"), ALL_PARAMS).unwrap();
        let (f, _) = filter_from_params(&p, now, TimeBound::All).unwrap();
        assert_eq!(f.dst_net.as_deref(), Some("2001:db8:1::/48"));
        for bad in [
            "kind=x",
            "ip=1.2.3",
            "limit=0",
            "limit=10001",
            "severity=high,x",
            "cursor=zz",
            "dst_net=198.51.100.7/24",
        ] {
            let p = parse_query(Some(bad), ALL_PARAMS).unwrap();
            assert!(
                filter_from_params(&p, now, TimeBound::All).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn kind_and_event_errors_list_every_accepted_name() {
        let now = Timestamp::from_parts(1_700_000_000, 0);
        let err = |q: &str| {
            let p = parse_query(Some(q), ALL_PARAMS).unwrap();
            filter_from_params(&p, now, TimeBound::All).unwrap_err()
        };
        assert_eq!(
            err("kind=x"),
            "invalid kind \"x\": expected volumetric, leak, sensor_health"
        );
        assert_eq!(
            err("event=x"),
            "invalid event \"x\": expected attack_started, attack_update, attack_ended, leak, capture_loss"
        );
        for k in KINDS {
            assert_eq!(Kind::parse(k).map(Kind::as_str), Some(k));
            let p = parse_query(Some(&format!("kind={k}")), ALL_PARAMS).unwrap();
            assert!(filter_from_params(&p, now, TimeBound::All).is_ok(), "{k}");
        }
        for e in EVENTS {
            assert_eq!(Event::parse(e).map(Event::as_str), Some(e));
        }
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let c = Cursor {
            micros: 1_700_000_000_123_456,
            id: Uuid::from_u128(42),
            sensor: Some("sensor:1 \u{54e8}".repeat(10)),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let v1 = Cursor { sensor: None, ..c };
        assert_eq!(Cursor::decode(&v1.encode()).unwrap(), v1);
        let long = Cursor {
            sensor: Some("s".repeat(128)),
            ..v1
        };
        assert_eq!(Cursor::decode(&long.encode()).unwrap(), long);
        assert!(Cursor::decode("").is_err());
        assert!(Cursor::decode(&hex::encode("v1:1' OR 1=1:x")).is_err());
    }
}
