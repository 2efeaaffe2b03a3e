//! `GET /api/v1/mitigations` (analysts: the active announcements and the
//! newest audit rows) and `POST /api/v1/mitigations/{id}/withdraw`
//! (analysts named in `mitigation.admins`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use shaobing_wire::Timestamp;
use uuid::Uuid;

use crate::auth::Role;
use crate::ingest::{authorize, reject, ApiError, AppState};

/// Default and largest `limit` of the audit rows.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 10_000;

fn parse_limit(raw: Option<&str>) -> Result<u64, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", v)) => {
                limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid limit {v:?}: expected 1..={MAX_LIMIT}"
                        ))
                    })?;
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {pair:?} (allowed: limit)"
                )))
            }
        }
    }
    Ok(limit)
}

/// `GET /api/v1/mitigations[?limit=N]`.
pub async fn get_mitigations(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = async {
        authorize(&state, &headers, Role::Analyst)?;
        let limit = parse_limit(raw.as_deref())?;
        let (mode, max_active, active) = match &state.mitigation {
            Some(h) => (
                h.mode.as_str(),
                Some(h.max_active),
                h.list().await.unwrap_or_default(),
            ),
            None => ("off", None, Vec::new()),
        };
        let rows =
            super::audit::recent(&state.client, &state.database, state.timeout, limit).await?;
        let audit: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|r| {
                let time = Timestamp::from_parts(i64::from(r.ts), r.ts_us).to_string();
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("ts");
                    o.remove("ts_us");
                    o.insert("time".into(), time.into());
                }
                v
            })
            .collect();
        Ok::<_, ApiError>(Json(json!({
            "mode": mode,
            "max_active": max_active,
            "active": active,
            "audit": audit,
        })))
    }
    .await;
    match r {
        Ok(j) => j.into_response(),
        Err(e) => reject(&state, e),
    }
}

/// `POST /api/v1/mitigations/{id}/withdraw`.
pub async fn post_withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let who = authorize(&state, &headers, Role::Analyst)?;
        let Some(h) = &state.mitigation else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "mitigation is off"));
        };
        if !h.admins.iter().any(|a| **a == *who.name) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only analysts listed in mitigation.admins may withdraw",
            ));
        }
        let id: Uuid = id
            .parse()
            .map_err(|_| ApiError::bad_request("the announcement id is not a UUID"))?;
        h.withdraw(id, &format!("analyst:{}", who.name))
            .await
            .map_err(|e| {
                if e.starts_with("no active") {
                    ApiError::new(StatusCode::NOT_FOUND, e)
                } else {
                    ApiError::new(StatusCode::BAD_GATEWAY, format!("withdrawal failed: {e}"))
                }
            })?;
        Ok(Json(json!({"withdrawn": id})))
    }
    .await;
    match r {
        Ok(j) => j.into_response(),
        Err(e) => reject(&state, e),
    }
}
