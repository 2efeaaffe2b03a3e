//! A small W3C WebDriver client for the console's browser tests: starts
//! Debian's `chromedriver` with a headless `chromium` and speaks the
//! protocol's JSON over HTTP (the blocking client of `shaobing-testkit`).
//! Only the commands the tests need: navigate, find, click, type, read
//! text and attributes, run a script, screenshot, and the browser's
//! console log (`goog:loggingPrefs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use shaobing_testkit::http;

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long waits for the page poll before failing.
pub const WAIT: Duration = Duration::from_secs(15);

/// Where the browser and its driver are, or why the tests must skip.
pub fn browser() -> std::result::Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .map(Path::to_path_buf)
    };
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]))
        .ok_or("chromium is not installed (make deps installs Debian's chromium)")?;
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]))
        .ok_or("chromedriver is not installed (make deps installs Debian's chromium-driver)")?;
    Ok((chromium, driver))
}

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium session
    /// with a fresh profile and a `width`x`height` window.
    pub fn start(chromium: &Path, driver: &Path, width: u32, height: u32) -> Result<Browser> {
        let port = shaobing_testkit::free_port()?;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;
        let profile = tempfile::tempdir()?;
        let mut b = Browser {
            driver: child,
            addr: format!("127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = b.call("GET", "/status", None) {
                if v["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready on {}", b.addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = b.call("POST", "/session", Some(&caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = http::request(
            &self.addr,
            method,
            path,
            &[("Content-Type", "application/json; charset=utf-8")],
            body.as_bytes(),
            Duration::from_secs(60),
        )
        .with_context(|| format!("WebDriver {method} {path}"))?;
        let v: Value = serde_json::from_slice(&resp.body)
            .with_context(|| format!("WebDriver {method} {path}: not JSON"))?;
        if resp.status != 200 {
            bail!(
                "WebDriver {method} {path}: {} {}",
                resp.status,
                v["value"]["message"]
            );
        }
        Ok(v.get("value").cloned().unwrap_or(v))
    }

    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// The current URL.
    pub fn url(&self) -> Result<String> {
        Ok(self
            .cmd("GET", "/url", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Every element matching a CSS selector, now.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub fn wait_for(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_all(css)?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!(
                    "no element {css:?} after {WAIT:?} on {}; the page says: {}",
                    self.url()?,
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to [`WAIT`] until `script` (a function body) returns true.
    pub fn wait_until(&self, what: &str, script: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.run(script, &[])? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what} on {}; the page says: {}",
                    self.url()?,
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The start of the page's visible text (for error messages).
    pub fn page_text(&self) -> String {
        self.run("return document.body.innerText.slice(0, 800);", &[])
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and
    /// returns its result.
    pub fn run(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(&json!({})))
            .map(drop)
    }

    /// Types `text` into an element.
    pub fn type_into(&self, e: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// The rendered text of an element.
    pub fn text(&self, e: &Element) -> Result<String> {
        Ok(self
            .cmd("GET", &format!("/element/{}/text", e.0), None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// An attribute of an element.
    pub fn attr(&self, e: &Element, name: &str) -> Result<Option<String>> {
        Ok(self
            .cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None)?
            .as_str()
            .map(str::to_string))
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let v = self.cmd("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The browser console's entries since the last call
    /// (`{"level", "message", ...}`).
    pub fn console_log(&self) -> Result<Vec<Value>> {
        let v = self.cmd("POST", "/se/log", Some(&json!({"type": "browser"})))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
