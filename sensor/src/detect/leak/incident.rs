//! Incident building: one leak incident per flow direction and signature,
//! with the masked excerpt of the first hit (never the secret itself).

use shaobing_signatures::Signature;
use shaobing_wire::{community_id, Direction, Event, Incident, Kind};

use super::flows::FlowKey;
use super::scan::SigHits;
use crate::decode::proto;
use crate::incident::{self, Base};
use crate::normalize::AppProto;

/// The incident for `h`, the hits of `sig` in the direction `key` of a
/// flow (`key.src` sent the bytes).
pub(super) fn build(
    sensor: &str,
    sig: &Signature,
    key: FlowKey,
    dir: Direction,
    app: AppProto,
    h: SigHits,
) -> Incident {
    let identity = format!(
        "{}|leak|{}|{}|{}|{}|{}|{}|{}",
        sensor,
        sig.id,
        key.src,
        key.sport,
        key.dst,
        key.dport,
        key.proto,
        h.first_ts.micros()
    );
    let base = Base {
        sensor,
        kind: Kind::Leak,
        event: Event::Leak,
        severity: sig.severity,
        ts: h.first_ts,
        identity: &identity,
    };
    Incident {
        src_ip: Some(key.src),
        dst_ip: Some(key.dst),
        src_port: Some(key.sport),
        dst_port: Some(key.dport),
        proto: proto::name(key.proto),
        community_id: community_id::community_id(
            0, key.src, key.dst, key.proto, key.sport, key.dport,
        ),
        direction: Some(dir),
        match_count: Some(h.count),
        app_proto: Some(app.as_str().to_string()),
        excerpt: Some(h.excerpt),
        ..incident::new(base, sig.id.clone())
    }
}
