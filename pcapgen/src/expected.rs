//! Expected incidents for a capture (`NAME.expected.json`) and the checker
//! that compares them with what a sensor reported.
//!
//! # Format
//!
//! ```json
//! {
//!   "capture": "syn-flood.pcap",
//!   "description": "...",
//!   "allow_extra_events": ["attack_update"],
//!   "incidents": [
//!     {"kind": "volumetric", "event": "attack_started", "dst_ip": "10.0.0.10",
//!      "ts_min": "2026-01-01T00:00:03.000000Z", "ts_max": "2026-01-01T00:00:04.000000Z"}
//!   ]
//! }
//! ```
//!
//! # Semantics (see [`check_expected`])
//!
//! * Each expected entry must match **exactly one** actual incident. An entry
//!   matches an incident when every field the entry names agrees:
//!   * `ts_min` / `ts_max`: inclusive bounds on the incident's `ts`
//!     (RFC 3339, compared as instants);
//!   * `min_match_count`: a lower bound on the incident's `match_count`;
//!   * any other field: equal to the incident's field of the same name
//!     (IP addresses are compared as addresses, so `2001:db8::1` equals
//!     `2001:0db8:0:0:0:0:0:1`; an expected `null` means absent or null).
//! * Fields the entry does not name are not checked.
//! * Every actual incident that no entry matched is unexpected, and fails
//!   the check unless its `event` is listed in `allow_extra_events`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shaobing_wire::Timestamp;

/// The contents of a `NAME.expected.json` file, as written by the generator.
///
/// Field order here is the key order in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// File name of the capture this describes (no directory).
    pub capture: String,
    /// What is in the capture, for humans.
    pub description: String,
    /// Events that may appear in addition to the listed incidents.
    #[serde(default)]
    pub allow_extra_events: Vec<String>,
    /// The incidents a correct sensor reports.
    pub incidents: Vec<ExpectedIncident>,
}

/// One expected incident. Every field is optional: only named fields are
/// checked. Field order here is the key order in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedIncident {
    /// `volumetric` or `leak`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `attack_started`, `attack_update`, `attack_ended` or `leak`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Signature / detector id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Volumetric attack vector, e.g. `syn_flood`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    /// Source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// Destination address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// Attacked prefix of a network-level volumetric attack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_net: Option<String>,
    /// Source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// IP protocol name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// `inbound`, `outbound`, `internal` or `external`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Application protocol of a leak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_proto: Option<String>,
    /// Why a volumetric attack ended: `hold_expired` or `capture_end`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Lower bound on `match_count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_match_count: Option<u64>,
    /// Earliest acceptable `ts` (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts_min: Option<Timestamp>,
    /// Latest acceptable `ts` (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts_max: Option<Timestamp>,
}

impl Expected {
    /// Pretty-printed JSON with a trailing newline (the file's contents).
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain strings, numbers and options cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Why one expected entry did not match one incident: (field, expected,
/// actual).
type Mismatch = (String, String, String);

fn field_str(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn values_equal(want: &Value, got: Option<&Value>) -> bool {
    let got = got.unwrap_or(&Value::Null);
    if want == got {
        return true;
    }
    match (want, got) {
        (Value::String(a), Value::String(b)) => match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

fn parse_ts(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .and_then(|s| Timestamp::parse(s).ok())
}

/// Compares one expected entry with one incident; empty means a match.
fn mismatches(want: &serde_json::Map<String, Value>, got: &Value) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let ts = parse_ts(got.get("ts"));
    for (key, w) in want {
        let ok = match key.as_str() {
            "ts_min" => match (parse_ts(Some(w)), ts) {
                (Some(min), Some(t)) => t >= min,
                _ => false,
            },
            "ts_max" => match (parse_ts(Some(w)), ts) {
                (Some(max), Some(t)) => t <= max,
                _ => false,
            },
            "min_match_count" => match (w.as_u64(), got.get("match_count").and_then(Value::as_u64))
            {
                (Some(min), Some(n)) => n >= min,
                _ => false,
            },
            _ => values_equal(w, got.get(key)),
        };
        if !ok {
            let actual_key = match key.as_str() {
                "ts_min" | "ts_max" => "ts",
                "min_match_count" => "match_count",
                k => k,
            };
            out.push((
                key.clone(),
                field_str(Some(w)),
                field_str(got.get(actual_key)),
            ));
        }
    }
    out
}

fn summary(inc: &Value) -> String {
    let keys = [
        "kind",
        "event",
        "signature",
        "vector",
        "src_ip",
        "dst_ip",
        "dst_net",
        "src_port",
        "dst_port",
        "proto",
        "direction",
        "ts",
    ];
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| inc.get(*k).map(|v| format!("{k}={}", field_str(Some(v)))))
        .collect();
    format!("{{{}}}", parts.join(" "))
}

fn entry_summary(want: &serde_json::Map<String, Value>) -> String {
    let parts: Vec<String> = want
        .iter()
        .map(|(k, v)| format!("{k}={}", field_str(Some(v))))
        .collect();
    format!("{{{}}}", parts.join(" "))
}

/// Checks actual incidents (JSON objects as the sensor emits them) against
/// an expected file's contents, with the semantics in the
/// [module docs](self).
///
/// Returns `Err` with a report listing every expected entry that matched
/// no incident (with the nearest incidents and the fields that differ),
/// every entry that matched more than one, and every unexpected incident.
pub fn check_expected(expected_json: &str, actual_incidents: &[Value]) -> Result<(), String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        capture: String,
        #[allow(dead_code)]
        description: Option<String>,
        #[serde(default)]
        allow_extra_events: Vec<String>,
        incidents: Vec<serde_json::Map<String, Value>>,
    }
    let raw: Raw =
        serde_json::from_str(expected_json).map_err(|e| format!("invalid expected file: {e}"))?;
    for (i, want) in raw.incidents.iter().enumerate() {
        for key in ["ts_min", "ts_max"] {
            if let Some(v) = want.get(key) {
                if parse_ts(Some(v)).is_none() {
                    return Err(format!(
                        "invalid expected file: incidents[{i}].{key} is not an RFC 3339 time: {v}"
                    ));
                }
            }
        }
    }

    let mut problems = Vec::new();
    // claimed[j] = expected entries that matched actual incident j.
    let mut claimed: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, want) in raw.incidents.iter().enumerate() {
        let matches: Vec<usize> = actual_incidents
            .iter()
            .enumerate()
            .filter(|(_, got)| mismatches(want, got).is_empty())
            .map(|(j, _)| j)
            .collect();
        match matches.len() {
            1 => claimed.entry(matches[0]).or_default().push(i),
            0 => {
                let mut p = format!("MISSING expected incident #{i} {}", entry_summary(want));
                let mut near: Vec<(usize, Vec<Mismatch>)> = actual_incidents
                    .iter()
                    .enumerate()
                    .map(|(j, got)| (j, mismatches(want, got)))
                    .collect();
                near.sort_by_key(|(j, m)| (m.len(), *j));
                if near.is_empty() {
                    p.push_str("\n    (no incidents were reported at all)");
                }
                for (j, m) in near.iter().take(3) {
                    let diffs: Vec<String> = m
                        .iter()
                        .map(|(k, w, g)| format!("{k}: expected {w}, got {g}"))
                        .collect();
                    p.push_str(&format!(
                        "\n    nearest actual #{j} {} differs in: {}",
                        summary(&actual_incidents[*j]),
                        diffs.join("; ")
                    ));
                }
                problems.push(p);
            }
            n => {
                let list: Vec<String> = matches
                    .iter()
                    .map(|&j| format!("\n    actual #{j} {}", summary(&actual_incidents[j])))
                    .collect();
                problems.push(format!(
                    "AMBIGUOUS expected incident #{i} {} matched {n} incidents (expected exactly one):{}",
                    entry_summary(want),
                    list.concat()
                ));
                for j in matches {
                    claimed.entry(j).or_default().push(i);
                }
            }
        }
    }
    for (j, entries) in &claimed {
        if entries.len() > 1 {
            problems.push(format!(
                "OVERLAPPING expected incidents {entries:?} all matched actual #{j} {}",
                summary(&actual_incidents[*j])
            ));
        }
    }
    for (j, got) in actual_incidents.iter().enumerate() {
        if claimed.contains_key(&j) {
            continue;
        }
        let event = got.get("event").and_then(Value::as_str).unwrap_or("");
        if raw.allow_extra_events.iter().any(|e| e == event) {
            continue;
        }
        problems.push(format!("UNEXPECTED actual incident #{j} {}", summary(got)));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {} problem(s) comparing {} expected with {} actual incident(s):\n  {}",
            raw.capture,
            problems.len(),
            raw.incidents.len(),
            actual_incidents.len(),
            problems.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> String {
        json!({
            "capture": "x.pcap",
            "description": "d",
            "allow_extra_events": ["attack_update"],
            "incidents": [
                {"kind": "volumetric", "event": "attack_started", "dst_ip": "10.0.0.10",
                 "ts_min": "2026-01-01T00:00:03.000000Z", "ts_max": "2026-01-01T00:00:04.000000Z"},
                {"kind": "leak", "event": "leak", "src_port": 40001, "min_match_count": 2}
            ]
        })
        .to_string()
    }

    fn started(ts: &str) -> Value {
        json!({"kind": "volumetric", "event": "attack_started", "dst_ip": "10.0.0.10", "ts": ts, "pps": 25000})
    }

    fn leak(count: u64) -> Value {
        json!({"kind": "leak", "event": "leak", "src_port": 40001, "match_count": count,
               "ts": "2026-01-01T00:00:01.000000Z"})
    }

    #[test]
    fn exact_matches_with_unnamed_extra_fields_pass() {
        let actual = [started("2026-01-01T00:00:03.500000Z"), leak(2)];
        assert_eq!(check_expected(&expected(), &actual), Ok(()));
    }

    #[test]
    fn ts_bounds_are_inclusive() {
        for ts in [
            "2026-01-01T00:00:03.000000Z",
            "2026-01-01T00:00:04Z",
            "2026-01-01T08:00:04+08:00",
        ] {
            assert_eq!(
                check_expected(&expected(), &[started(ts), leak(2)]),
                Ok(()),
                "{ts}"
            );
        }
        let err = check_expected(
            &expected(),
            &[started("2026-01-01T00:00:04.000001Z"), leak(2)],
        )
        .unwrap_err();
        assert!(err.contains("MISSING expected incident #0"), "{err}");
        assert!(
            err.contains(
                "ts_max: expected 2026-01-01T00:00:04.000000Z, got 2026-01-01T00:00:04.000001Z"
            ),
            "{err}"
        );
    }

    #[test]
    fn match_count_below_the_minimum_is_missing() {
        let err =
            check_expected(&expected(), &[started("2026-01-01T00:00:03.5Z"), leak(1)]).unwrap_err();
        assert!(err.contains("MISSING expected incident #1"), "{err}");
        assert!(err.contains("min_match_count: expected 2, got 1"), "{err}");
        // The unmatched leak is also reported as unexpected.
        assert!(err.contains("UNEXPECTED actual incident #1"), "{err}");
    }

    #[test]
    fn missing_with_no_incidents_says_so() {
        let err = check_expected(&expected(), &[]).unwrap_err();
        assert!(err.contains("no incidents were reported at all"), "{err}");
        assert!(err.contains("2 problem(s)"), "{err}");
    }

    #[test]
    fn extra_incidents_fail_unless_their_event_is_allowed() {
        let update = json!({"kind": "volumetric", "event": "attack_update", "dst_ip": "10.0.0.10",
                            "ts": "2026-01-01T00:00:04.000000Z"});
        let ok = [
            started("2026-01-01T00:00:03.5Z"),
            update.clone(),
            update,
            leak(3),
        ];
        assert_eq!(check_expected(&expected(), &ok), Ok(()));
        let stray = json!({"kind": "leak", "event": "leak", "src_ip": "10.1.2.5", "ts": "2026-01-01T00:00:02Z"});
        let err = check_expected(
            &expected(),
            &[started("2026-01-01T00:00:03.5Z"), leak(3), stray],
        )
        .unwrap_err();
        assert!(err.contains("UNEXPECTED actual incident #2"), "{err}");
        assert!(err.contains("src_ip=10.1.2.5"), "{err}");
    }

    #[test]
    fn an_entry_matching_two_incidents_is_ambiguous() {
        let actual = [
            started("2026-01-01T00:00:03.1Z"),
            started("2026-01-01T00:00:03.2Z"),
            leak(2),
        ];
        let err = check_expected(&expected(), &actual).unwrap_err();
        assert!(err.contains("AMBIGUOUS expected incident #0"), "{err}");
        assert!(err.contains("matched 2 incidents"), "{err}");
    }

    #[test]
    fn ip_addresses_compare_as_addresses() {
        let exp = json!({"capture": "c", "incidents": [{"dst_ip": "2001:db8::1"}]}).to_string();
        assert_eq!(
            check_expected(&exp, &[json!({"dst_ip": "2001:0db8:0:0:0:0:0:1"})]),
            Ok(())
        );
        assert!(check_expected(&exp, &[json!({"dst_ip": "2001:db8::2"})]).is_err());
    }

    #[test]
    fn wrong_field_value_is_reported_with_expected_and_actual() {
        let exp =
            json!({"capture": "c", "incidents": [{"direction": "outbound", "src_ip": "10.1.2.3"}]})
                .to_string();
        let err = check_expected(
            &exp,
            &[json!({"direction": "inbound", "src_ip": "10.1.2.3"})],
        )
        .unwrap_err();
        assert!(
            err.contains("direction: expected outbound, got inbound"),
            "{err}"
        );
    }

    #[test]
    fn malformed_expected_files_are_errors_not_panics() {
        assert!(check_expected("{", &[])
            .unwrap_err()
            .contains("invalid expected file"));
        let bad_ts = json!({"capture": "c", "incidents": [{"ts_min": "soon"}]}).to_string();
        assert!(check_expected(&bad_ts, &[])
            .unwrap_err()
            .contains("not an RFC 3339 time"));
        let unknown = json!({"capture": "c", "incidents": [], "surprise": 1}).to_string();
        assert!(check_expected(&unknown, &[]).is_err());
    }

    #[test]
    fn generated_file_round_trips_through_the_checker() {
        let e = Expected {
            capture: "c.pcap".into(),
            description: "d".into(),
            allow_extra_events: vec![],
            incidents: vec![ExpectedIncident {
                kind: Some("leak".into()),
                src_ip: Some("10.1.2.3".parse().unwrap()),
                ts_min: Some(Timestamp::from_parts(1_767_225_601, 0)),
                ..Default::default()
            }],
        };
        let text = e.to_json_pretty();
        assert_eq!(serde_json::from_str::<Expected>(&text).unwrap(), e);
        let actual = json!({"kind": "leak", "src_ip": "10.1.2.3", "ts": "2026-01-01T00:00:01.5Z"});
        assert_eq!(check_expected(&text, &[actual]), Ok(()));
    }
}
