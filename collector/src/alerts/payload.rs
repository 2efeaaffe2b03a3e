//! What an alert looks like on the wire: the webhook body and its HMAC,
//! RFC 5424 syslog messages with a JSON or CEF payload.

use sha2::{Digest, Sha256};
use shaobing_wire::{Incident, Severity, Timestamp};

/// The structured-data id of syslog messages (`shaobing@32473`: 32473 is
/// the private enterprise number RFC 5612 reserves for documentation;
/// receivers match on the name).
pub const SD_ID: &str = "shaobing@32473";

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        for (d, s) in k.iter_mut().zip(Sha256::digest(key)) {
            *d = s;
        }
    } else {
        for (d, s) in k.iter_mut().zip(key) {
            *d = *s;
        }
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The `X-Shaobing-Signature` header value: `sha256=` and the lower-case
/// hex HMAC of the exact body bytes.
pub fn signature_header(key: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(key, body)))
}

/// The webhook body: `{"rule": ..., "incident": {...}}` with the incident
/// as stored (wire format, `docs/incident.md`).
pub fn webhook_body(rule: &str, incident_json: &str) -> String {
    let rule = serde_json::Value::String(rule.to_string());
    format!("{{\"rule\":{rule},\"incident\":{incident_json}}}")
}

/// Syslog severity of an incident: critical 2 (crit), high 3 (err),
/// medium 4 (warning), low 5 (notice).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

/// CEF severity (0..=10): low 3, medium 5, high 8, critical 10.
pub fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// Escapes a structured-data parameter value (RFC 5424 6.3.3).
fn sd_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// Header fields of the syslog messages of one destination.
#[derive(Debug, Clone)]
pub struct SyslogHeader {
    /// Facility number (0..=23).
    pub facility: u8,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: u32,
}

/// One RFC 5424 message (without transport framing): the header, the
/// `[shaobing@32473 ...]` structured data (rule, id, kind, event,
/// severity, sensor, attack id) and the payload after a UTF-8 BOM.
pub fn syslog_message(
    h: &SyslogHeader,
    now: Timestamp,
    rule: &str,
    inc: &Incident,
    payload: &str,
) -> String {
    let pri = u16::from(h.facility) * 8 + u16::from(syslog_severity(inc.severity));
    let mut sd = format!(
        "[{SD_ID} rule=\"{}\" id=\"{}\" kind=\"{}\" event=\"{}\" severity=\"{}\" sensor=\"{}\"",
        sd_escape(rule),
        inc.id,
        inc.kind,
        inc.event,
        inc.severity,
        sd_escape(&inc.sensor)
    );
    if let Some(a) = inc.attack_id {
        sd.push_str(&format!(" attack_id=\"{a}\""));
    }
    sd.push(']');
    format!(
        "<{pri}>1 {now} {} {} {} {} {sd} \u{feff}{payload}",
        h.hostname, h.app_name, h.procid, inc.event
    )
}

fn cef_header_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_ext_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// The incident in ArcSight Common Event Format (CEF:0).
///
/// Signature id: the incident's signature; name: kind, event and vector;
/// extensions: `rt` (capture time, ms), `src`/`dst`, `spt`/`dpt`, `proto`,
/// `cat` (kind), `act` (event), `externalId` (incident id), `dvchost`
/// (sensor), `cs1` rule, `cs2` vector, `cs3` attack id, `cn1` pps,
/// `cn2` bps, `cs4` masked excerpt (leaks), `cs5` destination network.
pub fn cef(inc: &Incident, rule: &str) -> String {
    let name = match &inc.vector {
        Some(v) => format!("{} {} {v}", inc.kind, inc.event),
        None => format!("{} {}", inc.kind, inc.event),
    };
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", inc.ts.millis().to_string()),
        ("cat", inc.kind.to_string()),
        ("act", inc.event.to_string()),
        ("externalId", inc.id.to_string()),
        ("dvchost", inc.sensor.clone()),
        ("proto", inc.proto.clone()),
        ("cs1Label", "rule".into()),
        ("cs1", rule.to_string()),
    ];
    if let Some(a) = inc.src_ip {
        ext.push(("src", a.to_string()));
    }
    if let Some(a) = inc.dst_ip {
        ext.push(("dst", a.to_string()));
    }
    if let Some(p) = inc.src_port {
        ext.push(("spt", p.to_string()));
    }
    if let Some(p) = inc.dst_port {
        ext.push(("dpt", p.to_string()));
    }
    if let Some(v) = &inc.vector {
        ext.push(("cs2Label", "vector".into()));
        ext.push(("cs2", v.clone()));
    }
    if let Some(a) = inc.attack_id {
        ext.push(("cs3Label", "attackId".into()));
        ext.push(("cs3", a.to_string()));
    }
    if let Some(p) = inc.pps {
        ext.push(("cn1Label", "pps".into()));
        ext.push(("cn1", p.to_string()));
    }
    if let Some(b) = inc.bps {
        ext.push(("cn2Label", "bps".into()));
        ext.push(("cn2", b.to_string()));
    }
    if let Some(e) = &inc.excerpt {
        ext.push(("cs4Label", "excerpt".into()));
        ext.push(("cs4", e.clone()));
    }
    if let Some(n) = inc.extra.get("dst_net").and_then(|v| v.as_str()) {
        ext.push(("cs5Label", "dstNet".into()));
        ext.push(("cs5", n.to_string()));
    }
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_ext_escape(&v)))
        .collect();
    format!(
        "CEF:0|Shaobing|shaobing-collector|{}|{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header_escape(&inc.signature),
        cef_header_escape(&name),
        cef_severity(inc.severity),
        ext.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_cases() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn leak() -> Incident {
        serde_json::from_value(serde_json::json!({
            "id": "019c0c4e-5a00-7000-8000-000000000001", "schema": 1, "sensor": "s]1\"",
            "kind": "leak", "event": "leak", "signature": "id|card", "severity": "critical",
            "ts": "2026-11-29T04:19:24.123456Z", "src_ip": "10.1.2.3", "dst_ip": "203.0.113.80",
            "src_port": 40000, "dst_port": 80, "proto": "tcp", "community_id": null,
            "direction": "outbound", "match_count": 2, "app_proto": "http",
            "excerpt": "a=b\\c\n"
        }))
        .unwrap()
    }

    #[test]
    fn syslog_message_has_rfc_5424_header_and_escaped_structured_data() {
        let h = SyslogHeader {
            facility: 16,
            hostname: "collector-1".into(),
            app_name: "shaobing".into(),
            procid: 42,
        };
        let now = Timestamp::parse("2026-11-29T04:19:25Z").unwrap();
        let m = syslog_message(&h, now, "leaks", &leak(), "{}");
        assert!(m.starts_with("<130>1 2026-11-29T04:19:25"), "{m}");
        assert!(m.contains(" collector-1 shaobing 42 leak [shaobing@32473 rule=\"leaks\" id=\"019c0c4e-5a00-7000-8000-000000000001\" kind=\"leak\" event=\"leak\" severity=\"critical\" sensor=\"s\\]1\\\"\"] \u{feff}{}"), "{m}");
    }

    #[test]
    fn cef_escapes_header_pipes_and_extension_equals() {
        let c = cef(&leak(), "leaks");
        assert!(c.starts_with("CEF:0|Shaobing|shaobing-collector|"), "{c}");
        assert!(c.contains("|id\\|card|leak leak|10|"), "{c}");
        assert!(c.contains("cs4=a\\=b\\\\c\\n"), "{c}");
        assert!(
            c.contains("src=10.1.2.3 dst=203.0.113.80 spt=40000 dpt=80"),
            "{c}"
        );
        assert!(c.contains("rt=1795925964123"), "{c}");
    }
}
