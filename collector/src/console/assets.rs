//! The console's files, embedded in the binary (`include_str!`): no file
//! is read from disk and nothing is fetched from the internet.
//!
//! `/` and `/console` redirect to `/console/`; the page, its script, style
//! sheet and icon are served with a strict Content-Security-Policy
//! (scripts and styles from this origin only, no inline script, no
//! framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//! no-referrer`. The pages need no authentication (they hold no data); the
//! data comes from the API with the session cookie.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::ingest::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("static/index.html");
/// The application (plain JavaScript, no dependencies).
pub const APP_JS: &str = include_str!("static/app.js");
/// The style sheet.
pub const APP_CSS: &str = include_str!("static/app.css");
/// The icon.
pub const FAVICON_SVG: &str = include_str!("static/favicon.svg");

/// The Content-Security-Policy of every console file.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidate on every load: a new collector version takes effect at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `/`, `/console`, `/console/` and the console's files.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { file("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/console/favicon.svg",
            get(|| async { file("image/svg+xml", FAVICON_SVG) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        for r in [
            "/console/app.js",
            "/console/app.css",
            "/console/favicon.svg",
        ] {
            assert!(INDEX_HTML.contains(r), "{r}");
        }
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(!INDEX_HTML.contains("<script>"), "no inline script");
    }

    #[test]
    fn the_script_never_writes_html() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(forbidden), "{forbidden}");
        }
    }
}
