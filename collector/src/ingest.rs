//! The HTTP API: ingest (`POST /api/v1/incidents`, `POST /api/v1/heartbeat`,
//! sensor tokens), queries (`GET /api/v1/incidents`, `/api/v1/summary`,
//! `/api/v1/attacks/{attack_id}`, `/metrics`, analyst tokens) and
//! `GET /healthz` (open).
//!
//! Status codes of `POST /api/v1/incidents`:
//!
//! | status | body | when |
//! |---|---|---|
//! | 200 | `{"accepted": N}` | every item stored in ClickHouse, or fsynced to the WAL |
//! | 400 | `{"error": "...", "item": I}` | malformed JSON, bad gzip, or an invalid item (`item` is its 0-based index; absent when the body as a whole does not parse); nothing of the request is stored |
//! | 401 | `{"error": "..."}` | missing or unknown bearer token |
//! | 403 | `{"error": "..."}` | an analyst's token |
//! | 413 | `{"error": "..."}` | body (compressed or decompressed) over `limits.max_body_bytes`, compression ratio over `limits.max_gzip_ratio`, or more than `limits.max_items` items |
//! | 415 | `{"error": "..."}` | a `Content-Encoding` other than `gzip` / `identity` |
//! | 422 | `{"error": "..."}` | ClickHouse refused the data as malformed; it is in the dead-letter file |
//! | 503 | `{"error": "..."}` | ClickHouse unavailable (no WAL, or WAL full), queue full, or shutting down: retry later |
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clickhouse::Client;
use serde_json::{json, Value};
use shaobing_wire::{Incident, Timestamp};

use crate::auth::{Principal, Role, Tokens};
use crate::config::Limits;
use crate::metrics::{Metrics, RejectReason};
use crate::store::batch::{SubmitError, WriterHandle};
use crate::store::row::{storable_secs, HeartbeatRow, IncidentRow};
use crate::store::schema::now_secs;
use crate::store::{with_timeout, StoreError};
use crate::tls::PeerInfo;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Sensor and analyst tokens.
    pub tokens: Arc<Tokens>,
    /// Request limits.
    pub limits: Limits,
    /// The writer.
    pub writer: WriterHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// ClickHouse, for heartbeats and queries.
    pub client: Client,
    /// The database (a checked identifier).
    pub database: Arc<str>,
    /// Bound on one query or heartbeat insert.
    pub timeout: Duration,
    /// Sensor endpoints require a verified client certificate
    /// (`tls.client_ca`).
    pub require_client_cert: bool,
    /// Console sessions (analysts' session cookies).
    pub sessions: Arc<crate::console::session::Sessions>,
    /// A sensor whose last heartbeat is older is stale
    /// (`console.stale_after_s`).
    pub stale_after: Duration,
    /// Consumers of acknowledged incidents (alerts, mitigation), if any.
    pub events: Option<Arc<crate::alerts::hub::Hub>>,
    /// The mitigation engine, unless `mitigation.mode = "off"`.
    pub mitigation: Option<crate::mitigation::Handle>,
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/incidents",
            post(post_incidents).get(crate::api::get_incidents),
        )
        .route("/api/v1/heartbeat", post(post_heartbeat))
        .route("/api/v1/summary", get(crate::api::get_summary))
        .route("/api/v1/attacks/{attack_id}", get(crate::api::get_attack))
        .route("/metrics", get(crate::api::get_metrics))
        .route(
            "/api/v1/mitigations",
            get(crate::mitigation::http::get_mitigations),
        )
        .route(
            "/api/v1/mitigations/{id}/withdraw",
            post(crate::mitigation::http::post_withdraw),
        )
        .route("/healthz", get(healthz))
        .merge(crate::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::console::session::csrf_guard,
        ))
        // The body is read by hand below, after authentication, with the
        // configured limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

/// A rejected request: status and JSON body.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) error: String,
    pub(crate) item: Option<usize>,
}

/// Longest error message sent back: the rest is cut, so a request with a
/// megabyte-long bad value does not get it echoed back in full.
pub const MAX_ERROR_BYTES: usize = 512;

/// Most characters of a client's value quoted in an error message.
const SHOWN_CHARS: usize = 64;

/// `value` quoted for an error message, cut to 64 characters (with the
/// original length in bytes when cut).
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((i, _)) => format!("{:?}... ({} bytes)", &value[..i], value.len()),
        None => format!("{value:?}"),
    }
}

/// Cuts `s` to [`MAX_ERROR_BYTES`] at a character boundary.
fn cap_message(mut s: String) -> String {
    if s.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("... (truncated)");
    }
    s
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: cap_message(error.into()),
            item: None,
        }
    }
    fn item(index: usize, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: cap_message(error.into()),
            item: Some(index),
        }
    }
    pub(crate) fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// The metrics label for this rejection.
    pub(crate) fn reason(&self) -> RejectReason {
        match self.status {
            StatusCode::UNAUTHORIZED => RejectReason::Unauthorized,
            StatusCode::FORBIDDEN => RejectReason::Forbidden,
            StatusCode::PAYLOAD_TOO_LARGE => RejectReason::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => RejectReason::Encoding,
            StatusCode::UNPROCESSABLE_ENTITY => RejectReason::DeadLetter,
            StatusCode::TOO_MANY_REQUESTS => RejectReason::RateLimited,
            s if s.is_server_error() => RejectReason::Unavailable,
            _ => RejectReason::Invalid,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(event = "query_failed", error = %e, "query failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("clickhouse unavailable: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.item {
            Some(i) => json!({"error": self.error, "item": i}),
            None => json!({"error": self.error}),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Authenticates the request and checks its role: 401 without a known
/// token, 403 with a token of the other role. Without an `Authorization`
/// header, a console session cookie authenticates its analyst.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<Principal, ApiError> {
    let p = match headers.get(header::AUTHORIZATION) {
        Some(v) => v.to_str().ok().and_then(|v| state.tokens.principal(v)),
        None => state.sessions.principal(headers),
    };
    let p = p.ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
    })?;
    if p.role != role {
        let msg = match role {
            Role::Sensor => "this endpoint is for sensors; an analyst token cannot ingest",
            Role::Analyst => "this endpoint is for analysts; a sensor token cannot query",
        };
        return Err(ApiError::new(StatusCode::FORBIDDEN, msg));
    }
    Ok(p)
}

/// Logs and counts a rejection, then renders it.
pub(crate) fn reject(state: &AppState, e: ApiError) -> Response {
    state.metrics.reject(e.reason());
    tracing::info!(event = "request_rejected", status = e.status.as_u16(), item = e.item, error = %e.error, "request rejected");
    e.into_response()
}

/// Sensor authentication: the token, and with `tls.client_ca` a verified
/// client certificate that carries the token's sensor's certificate name
/// (subject CN or DNS SAN): one sensor's certificate with another's token
/// gets 403.
fn authorize_sensor(
    state: &AppState,
    headers: &HeaderMap,
    peer: &PeerInfo,
) -> Result<Principal, ApiError> {
    let p = authorize(state, headers, Role::Sensor)?;
    if !state.require_client_cert {
        return Ok(p);
    }
    if !peer.client_cert {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate issued by tls.client_ca is required to ingest",
        ));
    }
    if !crate::cert::matches(&peer.client_names, &p.cert_name) {
        tracing::warn!(
            event = "client_certificate_mismatch",
            sensor = %p.name,
            expected = %p.cert_name,
            presented = ?peer.client_names,
            "a sensor token was used with another sensor's client certificate"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the client certificate does not belong to sensor {:?}: its subject CN or a DNS subject-alternative name must be {:?}",
                p.name, p.cert_name
            ),
        ));
    }
    Ok(p)
}

async fn post_incidents(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, &headers, peer, body).await {
        Ok(n) => {
            state
                .metrics
                .ingested
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            (StatusCode::OK, Json(json!({"accepted": n}))).into_response()
        }
        Err(e) => reject(&state, e),
    }
}

/// Reads the body (at most `max_body_bytes`), decompressing gzip with the
/// size and ratio caps.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.limits.max_body_bytes;
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().map(|s| s.trim().to_ascii_lowercase()))
    {
        None => false,
        Some(Ok(e)) if e == "gzip" || e == "x-gzip" => true,
        Some(Ok(e)) if e == "identity" || e.is_empty() => false,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Encoding: only gzip and identity are accepted",
            ))
        }
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large(limit));
        }
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))?;
    if !gzip {
        return Ok(bytes);
    }
    gunzip(&bytes, limit, state.limits.max_gzip_ratio).map(Bytes::from)
}

/// Decompresses at most `min(limit, compressed * ratio)` bytes: a gzip bomb
/// costs at most that much memory and time.
pub(crate) fn gunzip(compressed: &[u8], limit: usize, ratio: u64) -> Result<Vec<u8>, ApiError> {
    let by_ratio = (compressed.len() as u64).saturating_mul(ratio);
    let cap = by_ratio.min(limit as u64);
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
    if out.len() as u64 > cap {
        return Err(if by_ratio < limit as u64 {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("gzip body expands more than {ratio} times (limits.max_gzip_ratio)"),
            )
        } else {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("decompressed body larger than {limit} bytes"),
            )
        });
    }
    Ok(out)
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    peer: PeerInfo,
    body: Body,
) -> Result<usize, ApiError> {
    let sensor = authorize_sensor(state, headers, &peer)?.name;
    let bytes = read_body(state, headers, body).await?;

    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-ndjson")
        });
    let items: Vec<(Option<usize>, &[u8])> = if ndjson {
        parse_ndjson(&bytes, state.limits.max_items)?
            .into_iter()
            .map(|(l, t)| (Some(l), t))
            .collect()
    } else {
        parse_array(&bytes, state.limits.max_items)?
            .into_iter()
            .map(|t| (None, t))
            .collect()
    };

    let received_at = now_secs();
    let mut rows = Vec::with_capacity(items.len());
    for (i, (line_no, text)) in items.into_iter().enumerate() {
        rows.push(item_to_row(i, text, line_no, &sensor, received_at)?);
    }
    let n = rows.len();
    if n == 0 {
        return Ok(0);
    }
    // Alertable incidents (not updates), offered only once durable.
    let notable: Vec<crate::alerts::hub::Offered> = match &state.events {
        Some(_) => rows
            .iter()
            .filter(|r| r.event != "attack_update")
            .map(|r| crate::alerts::hub::Offered {
                json: Arc::from(r.raw.as_str()),
                volumetric: r.kind == "volumetric",
            })
            .collect(),
        None => Vec::new(),
    };
    state.writer.submit(rows).await.map_err(|e| match e {
        SubmitError::DeadLetter(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        SubmitError::Insert(_)
        | SubmitError::WalFull(_)
        | SubmitError::QueueFull
        | SubmitError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    if let Some(hub) = &state.events {
        hub.offer(&notable);
    }
    tracing::debug!(sensor = %sensor, accepted = n, "batch accepted");
    Ok(n)
}

async fn post_heartbeat(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match heartbeat(&state, &headers, peer, body).await {
        Ok(()) => {
            state
                .metrics
                .heartbeats
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (StatusCode::OK, Json(json!({"accepted": 1}))).into_response()
        }
        Err(e) => reject(&state, e),
    }
}

/// The heartbeat body (see `docs/collector.md`). Unknown fields are kept in
/// `raw`.
#[derive(Debug, serde::Deserialize)]
struct Heartbeat {
    schema: u16,
    ts: Timestamp,
    version: String,
    uptime_s: u64,
    packets: u64,
    bytes: u64,
    kernel_drops: u64,
    pps: u64,
    #[serde(default)]
    bps: u64,
    spool_depth: u64,
    #[serde(default)]
    signature_hits: std::collections::BTreeMap<String, u64>,
}

/// Most signatures one heartbeat may report.
const MAX_HEARTBEAT_SIGNATURES: usize = 10_000;
/// Longest heartbeat `version`.
const MAX_HEARTBEAT_VERSION: usize = 64;
/// Longest signature name in `signature_hits`.
const MAX_HEARTBEAT_SIGNATURE_NAME: usize = 128;
/// Largest heartbeat as JSON (the `raw` column): room for 10,000
/// signatures with their counts.
pub const MAX_HEARTBEAT_BYTES: usize = 2 * 1024 * 1024;

async fn heartbeat(
    state: &AppState,
    headers: &HeaderMap,
    peer: PeerInfo,
    body: Body,
) -> Result<(), ApiError> {
    let sensor = authorize_sensor(state, headers, &peer)?.name;
    let bytes = read_body(state, headers, body).await?;
    let mut v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad_request("heartbeat is not a JSON object"));
    };
    obj.insert("sensor".to_string(), Value::String(sensor.to_string()));
    let raw = v.to_string();
    if raw.len() > MAX_HEARTBEAT_BYTES {
        return Err(ApiError::bad_request(format!(
            "invalid heartbeat: larger than {MAX_HEARTBEAT_BYTES} bytes as JSON"
        )));
    }
    let hb: Heartbeat = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid heartbeat: {e}")))?;
    if hb.schema != 1 {
        return Err(ApiError::bad_request(format!(
            "invalid heartbeat: unsupported schema version {} (expected 1)",
            hb.schema
        )));
    }
    if hb.signature_hits.len() > MAX_HEARTBEAT_SIGNATURES {
        return Err(ApiError::bad_request(format!(
            "invalid heartbeat: more than {MAX_HEARTBEAT_SIGNATURES} signatures"
        )));
    }
    if hb.version.len() > MAX_HEARTBEAT_VERSION {
        return Err(ApiError::bad_request(format!(
            "invalid heartbeat: version longer than {MAX_HEARTBEAT_VERSION} bytes"
        )));
    }
    if hb
        .signature_hits
        .keys()
        .any(|k| k.len() > MAX_HEARTBEAT_SIGNATURE_NAME)
    {
        return Err(ApiError::bad_request(format!(
            "invalid heartbeat: a signature name in signature_hits is longer than {MAX_HEARTBEAT_SIGNATURE_NAME} bytes"
        )));
    }
    let ts = storable_secs(hb.ts).ok_or_else(|| {
        ApiError::bad_request(
            "invalid heartbeat: ts outside 1970-01-01T00:00:00Z..=2106-02-06T23:59:59.999999Z",
        )
    })?;
    let (signature_names, signature_hits) = hb.signature_hits.into_iter().unzip();
    let row = HeartbeatRow {
        sensor: sensor.to_string(),
        ts,
        ts_us: hb.ts.subsec_micros(),
        received_at: now_secs(),
        version: hb.version,
        uptime_s: hb.uptime_s,
        packets: hb.packets,
        bytes: hb.bytes,
        kernel_drops: hb.kernel_drops,
        pps: hb.pps,
        bps: hb.bps,
        spool_depth: hb.spool_depth,
        signature_names,
        signature_hits,
        raw,
    };
    let table = format!("`{}`.sensor_heartbeats", state.database);
    let what = "insert heartbeat";
    with_timeout(what, state.timeout, async {
        let mut insert = state
            .client
            .insert_unescaped::<HeartbeatRow>(&table)
            .await
            .map_err(StoreError::ch(what))?;
        insert.write(&row).await.map_err(StoreError::ch(what))?;
        insert.end().await.map_err(StoreError::ch(what))
    })
    .await?;
    Ok(())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {limit} bytes"),
    )
}

fn too_many(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("more than {max} items in one request"),
    )
}

/// The items of a JSON array body, each still unparsed (only checked to be
/// well-formed JSON).
fn parse_array(bytes: &[u8], max_items: usize) -> Result<Vec<&[u8]>, ApiError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not a JSON array of incidents: {e}"),
        )
    })?;
    if items.len() > max_items {
        return Err(too_many(max_items));
    }
    Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
}

/// The non-blank lines of an NDJSON body (with their 1-based line numbers).
fn parse_ndjson(bytes: &[u8], max_items: usize) -> Result<Vec<(usize, &[u8])>, ApiError> {
    let mut items = Vec::new();
    for (line_no, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if items.len() == max_items {
            return Err(too_many(max_items));
        }
        items.push((line_no + 1, line));
    }
    Ok(items)
}

/// Converts one item. The fast path deserializes the wire `Incident`
/// straight from the text and re-serializes it with `sensor` overridden
/// (unknown fields are kept in `extra`); anything it cannot take (malformed
/// JSON, a missing `sensor`, a wrong type) goes through [`to_row`], which
/// gives the precise error.
fn item_to_row(
    index: usize,
    text: &[u8],
    line_no: Option<usize>,
    sensor: &str,
    received_at: u32,
) -> Result<IncidentRow, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::item(index, format!("invalid incident: {e}"));
    if let Ok(mut inc) = serde_json::from_slice::<Incident>(text) {
        inc.sensor = sensor.to_string();
        inc.validate().map_err(|e| bad(&e))?;
        let raw = serde_json::to_string(&inc).map_err(|e| bad(&e))?;
        check_raw_size(index, &raw)?;
        return IncidentRow::from_incident(&inc, raw, received_at).map_err(|e| bad(&e));
    }
    let item: Value = serde_json::from_slice(text).map_err(|e| match line_no {
        Some(l) => ApiError::item(index, format!("line {l}: invalid JSON: {e}")),
        None => ApiError::item(index, format!("invalid JSON: {e}")),
    })?;
    to_row(index, item, sensor, received_at)
}

/// Overrides `sensor`, deserializes, validates and converts one item.
fn to_row(
    index: usize,
    mut item: Value,
    sensor: &str,
    received_at: u32,
) -> Result<IncidentRow, ApiError> {
    let Some(obj) = item.as_object_mut() else {
        return Err(ApiError::item(index, "item is not a JSON object"));
    };
    obj.insert("sensor".to_string(), Value::String(sensor.to_string()));
    let raw = item.to_string();
    check_raw_size(index, &raw)?;
    let incident: Incident = serde_json::from_value(item)
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))?;
    incident
        .validate()
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))?;
    IncidentRow::from_incident(&incident, raw, received_at)
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))
}

/// Refuses an incident whose stored JSON would exceed
/// [`shaobing_wire::MAX_INCIDENT_BYTES`].
fn check_raw_size(index: usize, raw: &str) -> Result<(), ApiError> {
    if raw.len() > shaobing_wire::MAX_INCIDENT_BYTES {
        return Err(ApiError::item(
            index,
            format!(
                "invalid incident: larger than {} bytes as JSON",
                shaobing_wire::MAX_INCIDENT_BYTES
            ),
        ));
    }
    Ok(())
}
