//! The HTTP API: `POST /api/v1/incidents` and `GET /healthz`.
//!
//! Status codes of `POST /api/v1/incidents`:
//!
//! | status | body | when |
//! |---|---|---|
//! | 200 | `{"accepted": N}` | every item stored in ClickHouse |
//! | 400 | `{"error": "...", "item": I}` | malformed JSON or an invalid item (`item` is its 0-based index; absent when the body as a whole does not parse); nothing of the request is stored |
//! | 401 | `{"error": "..."}` | missing or unknown bearer token |
//! | 413 | `{"error": "..."}` | body over `limits.max_body_bytes` or more than `limits.max_items` items |
//! | 503 | `{"error": "..."}` | insert failed (`clickhouse unavailable: ...`), queue full, or shutting down: retry later |

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use shaobing_wire::Incident;

use crate::auth::Tokens;
use crate::config::Limits;
use crate::store::batch::{SubmitError, WriterHandle};
use crate::store::row::IncidentRow;
use crate::store::schema::now_secs;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Sensor tokens.
    pub tokens: Arc<Tokens>,
    /// Request limits.
    pub limits: Limits,
    /// The writer.
    pub writer: WriterHandle,
}

/// The router with both endpoints.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/incidents", post(post_incidents))
        .route("/healthz", get(healthz))
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
struct ApiError {
    status: StatusCode,
    error: String,
    item: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            item: None,
        }
    }
    fn item(index: usize, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            item: Some(index),
        }
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

async fn post_incidents(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match ingest(&state, &headers, body).await {
        Ok(n) => (StatusCode::OK, Json(json!({"accepted": n}))).into_response(),
        Err(e) => {
            tracing::info!(event = "ingest_rejected", status = e.status.as_u16(), item = e.item, error = %e.error, "request rejected");
            e.into_response()
        }
    }
}

async fn ingest(state: &AppState, headers: &HeaderMap, body: Body) -> Result<usize, ApiError> {
    let sensor = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| state.tokens.authenticate(v))
        .ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
        })?;

    let limit = state.limits.max_body_bytes;
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

    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-ndjson")
        });
    let items = if ndjson {
        parse_ndjson(&bytes, state.limits.max_items)?
    } else {
        parse_array(&bytes, state.limits.max_items)?
    };

    let received_at = now_secs();
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        rows.push(to_row(i, item, &sensor, received_at)?);
    }
    let n = rows.len();
    if n == 0 {
        return Ok(0);
    }
    state.writer.submit(rows).await.map_err(|e| match e {
        SubmitError::Insert(_) | SubmitError::QueueFull | SubmitError::Stopped => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    })?;
    tracing::debug!(sensor = %sensor, accepted = n, "batch accepted");
    Ok(n)
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

fn parse_array(bytes: &[u8], max_items: usize) -> Result<Vec<Value>, ApiError> {
    let items: Vec<Value> = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not a JSON array of incidents: {e}"),
        )
    })?;
    if items.len() > max_items {
        return Err(too_many(max_items));
    }
    Ok(items)
}

fn parse_ndjson(bytes: &[u8], max_items: usize) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for (line_no, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if items.len() == max_items {
            return Err(too_many(max_items));
        }
        let index = items.len();
        let v: Value = serde_json::from_slice(line).map_err(|e| {
            ApiError::item(index, format!("line {}: invalid JSON: {e}", line_no + 1))
        })?;
        items.push(v);
    }
    Ok(items)
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
    let incident: Incident = serde_json::from_value(item)
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))?;
    incident
        .validate()
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))?;
    IncidentRow::from_incident(&incident, raw, received_at)
        .map_err(|e| ApiError::item(index, format!("invalid incident: {e}")))
}
