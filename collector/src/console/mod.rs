//! The web console served by the collector (same port, same TLS) and the
//! analysts' API endpoints behind its views.
//!
//! * [`session`]: logging in with an analyst token for a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS), logging out,
//!   expiry, and the CSRF guard on state-changing requests.
//! * [`views`]: `GET /api/v1/overview`, `/api/v1/incidents/{id}`,
//!   `/api/v1/sensors` (the attack view uses `/api/v1/attacks/{id}`, the
//!   incident list `/api/v1/incidents`).
//! * [`assets`]: the single-page console (`/console/`), every file embedded
//!   in the binary.

pub mod assets;
pub mod session;
pub mod views;

use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::config::{range, ConfigError};
use crate::ingest::AppState;

/// `[console]`: sessions of the web console and when a sensor counts as
/// stale. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Longest life of a session from login, seconds (60..=604800;
    /// default 28800, 8 hours).
    #[serde(default = "default_session_ttl_s")]
    pub session_ttl_s: u64,
    /// A session unused this long ends, seconds (60..=604800; default
    /// 3600).
    #[serde(default = "default_session_idle_s")]
    pub session_idle_s: u64,
    /// Most sessions at once (1..=100000; default 1000); a login beyond it
    /// ends the session closest to its expiry.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A sensor whose last heartbeat is older than this is stale, seconds
    /// (1..=86400; default 60: six missed heartbeats at the sensor's
    /// default 10 s).
    #[serde(default = "default_stale_after_s")]
    pub stale_after_s: u64,
    /// Failed logins (unknown or non-analyst token) one client address may
    /// make per `login_window_s` (1..=10000; default 10); past them its
    /// logins get 429 with `Retry-After` until the window ends, whatever
    /// the token. Behind a reverse proxy every analyst shares its address.
    #[serde(default = "default_login_failures")]
    pub login_failures: u32,
    /// The window of `login_failures`, seconds (1..=86400; default 300).
    #[serde(default = "default_login_window_s")]
    pub login_window_s: u64,
    /// Most client addresses the login limiter remembers (1..=1000000;
    /// default 10000, about 100 bytes each); when full, the address whose
    /// window started first is forgotten (counted in
    /// `console_login_limiter_evicted_total`).
    #[serde(default = "default_login_tracked_addresses")]
    pub login_tracked_addresses: usize,
}

fn default_session_ttl_s() -> u64 {
    8 * 3600
}
fn default_session_idle_s() -> u64 {
    3600
}
fn default_max_sessions() -> usize {
    1000
}
fn default_stale_after_s() -> u64 {
    60
}
fn default_login_failures() -> u32 {
    10
}
fn default_login_window_s() -> u64 {
    300
}
fn default_login_tracked_addresses() -> usize {
    10_000
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_ttl_s: default_session_ttl_s(),
            session_idle_s: default_session_idle_s(),
            max_sessions: default_max_sessions(),
            stale_after_s: default_stale_after_s(),
            login_failures: default_login_failures(),
            login_window_s: default_login_window_s(),
            login_tracked_addresses: default_login_tracked_addresses(),
        }
    }
}

impl ConsoleConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Tests use 1 s sessions; a deployment should not.
        range("console.session_ttl_s", self.session_ttl_s, 1, 604_800)?;
        range("console.session_idle_s", self.session_idle_s, 1, 604_800)?;
        range("console.max_sessions", self.max_sessions as u64, 1, 100_000)?;
        range("console.stale_after_s", self.stale_after_s, 1, 86_400)?;
        range(
            "console.login_failures",
            u64::from(self.login_failures),
            1,
            10_000,
        )?;
        range("console.login_window_s", self.login_window_s, 1, 86_400)?;
        range(
            "console.login_tracked_addresses",
            self.login_tracked_addresses as u64,
            1,
            1_000_000,
        )?;
        Ok(())
    }
}

/// The console's routes: the session endpoints, the views' API and the
/// embedded pages (`/` redirects to `/console/`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/session",
            get(session::get_session)
                .post(session::login)
                .delete(session::logout),
        )
        .route("/api/v1/overview", get(views::get_overview))
        .route("/api/v1/sensors", get(views::get_sensors))
        .route("/api/v1/incidents/{id}", get(views::get_incident))
        .merge(assets::routes())
}
