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
//!
//! Token guessing is slowed per client address ([`LoginLimiter`]): after
//! `console.login_failures` refused logins within `console.login_window_s`,
//! every login from that address (an IPv4 address, or an IPv6 /64) gets 429
//! with `Retry-After` until the window ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use shaobing_wire::Timestamp;

use crate::auth::{Principal, Role};
use crate::ingest::{reject, ApiError, AppState};
use crate::tls::PeerInfo;

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

/// Refused logins of one client address in the current window.
struct Failures {
    count: u32,
    since: Instant,
}

/// Failed console logins per client address, in memory, bounded (see the
/// module docs). The key is an IPv4 address or the /64 of an IPv6 one (a
/// single host usually holds a whole /64).
pub struct LoginLimiter {
    table: Mutex<HashMap<IpAddr, Failures>>,
    max_failures: u32,
    window: Duration,
    capacity: usize,
}

impl LoginLimiter {
    /// An empty limiter with the configured limits.
    pub fn new(cfg: &super::ConsoleConfig) -> LoginLimiter {
        LoginLimiter {
            table: Mutex::new(HashMap::new()),
            max_failures: cfg.login_failures,
            window: Duration::from_secs(cfg.login_window_s),
            capacity: cfg.login_tracked_addresses,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of a client address.
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }

    /// How long `ip` must wait before its next login, or `None` when it may
    /// try now.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let t = self.lock();
        let f = t.get(&Self::key(ip))?;
        let end = f.since + self.window;
        (f.count >= self.max_failures && now < end).then(|| end - now)
    }

    /// Counts a refused login of `ip`; returns whether another address
    /// was forgotten to make room for it.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> bool {
        let key = Self::key(ip);
        let window = self.window;
        let mut t = self.lock();
        let mut evicted = false;
        if !t.contains_key(&key) && t.len() >= self.capacity {
            t.retain(|_, f| now < f.since + window);
            if t.len() >= self.capacity {
                let oldest = t.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    t.remove(&k);
                    evicted = true;
                }
            }
        }
        let f = t.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= f.since + window {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count = f.count.saturating_add(1);
        evicted
    }

    /// Forgets `ip`'s failures (it logged in).
    pub fn succeed(&self, ip: IpAddr) {
        self.lock().remove(&Self::key(ip));
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The live sessions (in memory: a restart logs everyone out).
pub struct Sessions {
    /// Failed logins per client address.
    pub limiter: LoginLimiter,
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
            limiter: LoginLimiter::new(cfg),
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
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Without an address (not on this server's listeners), all such
    // clients share one budget.
    let ip = peer
        .addr
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if let Some(wait) = state.sessions.limiter.wait(ip, Instant::now()) {
        state.metrics.login_throttled.fetch_add(1, Relaxed);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(event = "console_login_throttled", %ip, retry_after_s = secs, "login refused: too many failures from this address");
        let mut resp = reject(
            &state,
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins from this address: retry in {secs} s"),
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return resp;
    }
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
        state.sessions.limiter.succeed(ip);
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
            let guess = e.status == StatusCode::UNAUTHORIZED
                || (e.status == StatusCode::FORBIDDEN && e.error.starts_with("a sensor token"));
            if guess {
                state.metrics.login_failures.fetch_add(1, Relaxed);
                if state.sessions.limiter.fail(ip, Instant::now()) {
                    state.metrics.login_limiter_evicted.fetch_add(1, Relaxed);
                }
            }
            if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN {
                tracing::warn!(event = "console_login_refused", %ip, error = %e.error, "login refused");
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

    fn limiter(failures: u32, window_s: u64, tracked: usize) -> LoginLimiter {
        LoginLimiter::new(&ConsoleConfig {
            login_failures: failures,
            login_window_s: window_s,
            login_tracked_addresses: tracked,
            ..ConsoleConfig::default()
        })
    }

    #[test]
    fn an_address_that_fails_too_often_waits_until_its_window_ends() {
        let l = limiter(3, 60, 100);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..3 {
            assert_eq!(l.wait(a, t0), None, "failure {i}");
            assert!(!l.fail(a, t0 + Duration::from_secs(i)));
        }
        assert_eq!(
            l.wait(a, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        // Other addresses are not affected; the window's end frees it.
        assert_eq!(l.wait(b, t0), None);
        assert_eq!(l.wait(a, t0 + Duration::from_secs(60)), None);
        // A failure after the window starts a new one.
        assert!(!l.fail(a, t0 + Duration::from_secs(61)));
        assert_eq!(l.wait(a, t0 + Duration::from_secs(62)), None);
        // A login clears the count.
        l.fail(b, t0);
        l.fail(b, t0);
        l.succeed(b);
        l.fail(b, t0);
        assert_eq!(l.wait(b, t0), None);
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let l = limiter(2, 60, 100);
        let t0 = Instant::now();
        l.fail("2001:db8:1:2::1".parse().unwrap(), t0);
        l.fail("2001:db8:1:2:ffff::9".parse().unwrap(), t0);
        assert!(l.wait("2001:db8:1:2::77".parse().unwrap(), t0).is_some());
        assert!(l.wait("2001:db8:1:3::1".parse().unwrap(), t0).is_none());
        l.fail("::ffff:192.0.2.9".parse().unwrap(), t0);
        l.fail("192.0.2.9".parse().unwrap(), t0);
        assert!(l.wait("192.0.2.9".parse().unwrap(), t0).is_some());
    }

    #[test]
    fn the_limiter_table_is_bounded_and_forgets_the_oldest_window_first() {
        let l = limiter(1, 60, 2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n));
        assert!(!l.fail(ip(1), t0));
        assert!(!l.fail(ip(2), t0 + Duration::from_secs(1)));
        assert!(l.fail(ip(3), t0 + Duration::from_secs(2)));
        assert_eq!(l.len(), 2);
        assert!(l.wait(ip(1), t0 + Duration::from_secs(3)).is_none());
        assert!(l.wait(ip(2), t0 + Duration::from_secs(3)).is_some());
        // Expired windows make room without forgetting a live one.
        assert!(!l.fail(ip(4), t0 + Duration::from_secs(70)));
        assert_eq!(l.len(), 1);
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
