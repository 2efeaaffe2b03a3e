//! Console sessions: an analyst's token exchanged for a random session
//! cookie, kept only in the collector's memory.
//!
//! * `POST /api/v1/session` with `{"token": "..."}` (JSON only): an
//!   analyst's token gets `Set-Cookie: sb_session=...; Path=/; HttpOnly;
//!   SameSite=Strict` (plus `Secure` under TLS) and `{"authenticated":
//!   true, "analyst", "csrf_token", "expires_at"}`; a sensor's token gets 403, an unknown one
//!   401. A cross-origin login (an `Origin` that is not this host, or
//!   `Sec-Fetch-Site: cross-site`) gets 403.
//! * `GET /api/v1/session`: the same body for the cookie's session, or
//!   `{"authenticated": false}` (the console keeps the CSRF token in memory
//!   only, never in storage).
//! * `DELETE /api/v1/session` (logout) ends the session and clears the
//!   cookie.
//!
//! A session ends `console.session_ttl_s` after login or
//! `console.session_idle_s` after its last use, whichever comes first; at
//! most `console.max_sessions` exist (a login beyond that ends the one
//! closest to expiry). The cookie carries 256 random bits; the table holds
//! only their SHA-256. Every request that is not GET/HEAD/OPTIONS and is
//! authenticated by the cookie (no `Authorization` header) must carry the
//! session's token in `X-CSRF-Token` ([`csrf_guard`]); `SameSite=Strict`
//! already keeps other sites' requests from carrying the cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use shaobing_wire::Timestamp;

use crate::auth::{Principal, Role};
use crate::ingest::{reject, ApiError, AppState};

/// Name of the session cookie.
pub const COOKIE: &str = "sb_session";
/// Header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest login body.
const MAX_LOGIN_BYTES: usize = 4096;

struct Session {
    analyst: Arc<str>,
    csrf: String,
    expires: Instant,
    idle_until: Instant,
    expires_at: SystemTime,
}

/// The live sessions (in memory: a restart logs everyone out).
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
    idle: Duration,
    max: usize,
    secure: bool,
}

/// What `GET /api/v1/session` reports.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The analyst's configured name.
    pub analyst: Arc<str>,
    /// The token state-changing requests carry in `X-CSRF-Token`.
    pub csrf: String,
    /// When the session ends at the latest.
    pub expires_at: SystemTime,
}

fn random_hex() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no randomness for a session: {e}"),
        )
    })?;
    Ok(hex::encode(b))
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// The value of the session cookie in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

impl Sessions {
    /// An empty table with the configured limits; `secure` marks cookies
    /// `Secure` (the collector serves HTTPS).
    pub fn new(cfg: &super::ConsoleConfig, secure: bool) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(cfg.session_ttl_s),
            idle: Duration::from_secs(cfg.session_idle_s),
            max: cfg.max_sessions,
            secure,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a consistent map.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a session for `analyst`; returns the cookie value and the
    /// session.
    fn create(&self, analyst: Arc<str>) -> Result<(String, SessionInfo), ApiError> {
        let cookie = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let s = Session {
            analyst: analyst.clone(),
            csrf: csrf.clone(),
            expires: now + self.ttl,
            idle_until: now + self.idle,
            expires_at: SystemTime::now() + self.ttl,
        };
        let info = SessionInfo {
            analyst,
            csrf,
            expires_at: s.expires_at,
        };
        let mut t = self.lock();
        t.retain(|_, s| s.expires > now && s.idle_until > now);
        while t.len() >= self.max {
            let Some(k) = t
                .iter()
                .min_by_key(|(_, s)| s.expires.min(s.idle_until))
                .map(|(k, _)| *k)
            else {
                break;
            };
            t.remove(&k);
        }
        t.insert(key(&cookie), s);
        Ok((cookie, info))
    }

    /// The live session of a cookie value (its idle timer restarts), or
    /// `None` for an unknown, forged or expired one (which is removed).
    pub fn lookup(&self, cookie: &str) -> Option<SessionInfo> {
        if cookie.len() != 64 {
            return None;
        }
        let k = key(cookie);
        let now = Instant::now();
        let mut t = self.lock();
        let s = t.get_mut(&k)?;
        if s.expires <= now || s.idle_until <= now {
            t.remove(&k);
            return None;
        }
        s.idle_until = (now + self.idle).min(s.expires);
        Some(SessionInfo {
            analyst: s.analyst.clone(),
            csrf: s.csrf.clone(),
            expires_at: s.expires_at,
        })
    }

    fn remove(&self, cookie: &str) {
        self.lock().remove(&key(cookie));
    }

    /// The analyst behind a request's session cookie.
    pub fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let info = self.lookup(cookie_value(headers)?)?;
        Some(Principal {
            cert_name: info.analyst.clone(),
            name: info.analyst,
            role: Role::Analyst,
        })
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        );
        // Hex and fixed text only: always a valid header value.
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn info_json(i: &SessionInfo) -> serde_json::Value {
    let secs = i
        .expires_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "authenticated": true,
        "analyst": &*i.analyst,
        "csrf_token": i.csrf,
        "expires_at": Timestamp::from_parts(i64::try_from(secs).unwrap_or(i64::MAX), 0).to_string(),
    })
}

/// Refuses a login posted from another origin: an `Origin` header must be
/// this request's own `Host` (scheme ignored: the listener has only one),
/// and `Sec-Fetch-Site` must not be `cross-site` / `same-site`.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// `POST /api/v1/session`: logs in.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json_body {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "login takes a JSON body {\"token\": \"...\"} (Content-Type: application/json)",
            ));
        }
        if !same_origin(&headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin login refused",
            ));
        }
        let bytes = axum::body::to_bytes(body, MAX_LOGIN_BYTES)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "login body too large"))?;
        let login: Login = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid login body: {e}")))?;
        let p = state
            .tokens
            .principal(&format!("Bearer {}", login.token))
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"))?;
        if p.role != Role::Analyst {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a sensor token cannot log in to the console; use an analyst token",
            ));
        }
        let (cookie, info) = state.sessions.create(p.name.clone())?;
        tracing::info!(event = "console_login", analyst = %p.name, "analyst logged in");
        let mut resp = Json(info_json(&info)).into_response();
        resp.headers_mut().insert(
            header::SET_COOKIE,
            state
                .sessions
                .set_cookie(&cookie, state.sessions.ttl.as_secs()),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN {
                tracing::warn!(event = "console_login_refused", error = %e.error, "login refused");
            }
            reject(&state, e)
        }
    }
}

fn no_session() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "no session: log in")
}

/// `GET /api/v1/session`: the current session, or `{"authenticated":
/// false}` (200, so that a console opened before login logs no failed
/// request).
pub async fn get_session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let body = match cookie_value(&headers).and_then(|c| state.sessions.lookup(c)) {
        Some(info) => info_json(&info),
        None => json!({"authenticated": false}),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `DELETE /api/v1/session`: logs out (the CSRF guard has checked the
/// token).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match cookie_value(&headers) {
        Some(c) if state.sessions.lookup(c).is_some() => {
            state.sessions.remove(c);
            let mut resp = StatusCode::NO_CONTENT.into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, state.sessions.set_cookie("", 0));
            resp
        }
        _ => reject(&state, no_session()),
    }
}

/// Middleware: a state-changing request (not GET, HEAD or OPTIONS)
/// authenticated by the session cookie (no `Authorization` header) must
/// carry the session's CSRF token in `X-CSRF-Token`, else 403. Login is
/// exempt (it checks its origin instead).
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let login = req.method() == Method::POST && req.uri().path() == "/api/v1/session";
    let headers = req.headers();
    if safe || login || headers.contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    if let Some(info) = cookie_value(headers).and_then(|c| state.sessions.lookup(c)) {
        let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes());
        let ok = sent.is_some_and(|s| {
            s.len() == info.csrf.len()
                && s.iter()
                    .zip(info.csrf.as_bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return reject(
                &state,
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token for this session",
                ),
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::ConsoleConfig;

    fn sessions(ttl: u64, idle: u64, max: usize) -> Sessions {
        Sessions::new(
            &ConsoleConfig {
                session_ttl_s: ttl,
                session_idle_s: idle,
                max_sessions: max,
                ..ConsoleConfig::default()
            },
            false,
        )
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_forgeries_are_not() {
        let s = sessions(60, 60, 10);
        let (cookie, info) = s.create(Arc::from("soc")).unwrap();
        assert_eq!(cookie.len(), 64);
        assert_eq!(s.lookup(&cookie).unwrap().csrf, info.csrf);
        assert!(s.lookup(&info.csrf).is_none());
        assert!(s.lookup("x").is_none());
        let mut forged = cookie.clone().into_bytes();
        forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
        assert!(s.lookup(std::str::from_utf8(&forged).unwrap()).is_none());
    }

    #[test]
    fn the_oldest_session_ends_when_the_table_is_full() {
        let s = sessions(60, 60, 2);
        let (a, _) = s.create(Arc::from("a")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let (b, _) = s.create(Arc::from("b")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let (c, _) = s.create(Arc::from("c")).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.lookup(&a).is_none());
        assert!(s.lookup(&b).is_some() && s.lookup(&c).is_some());
    }

    #[test]
    fn cookies_are_httponly_strict_and_secure_only_under_tls() {
        let plain = sessions(60, 60, 2).set_cookie("ab", 60);
        assert_eq!(
            plain.to_str().unwrap(),
            "sb_session=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let tls = Sessions::new(&ConsoleConfig::default(), true).set_cookie("ab", 60);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn cross_origin_logins_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9440"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9440"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9440"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
