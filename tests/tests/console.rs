//! The web console in a real headless browser (Debian's chromium through
//! chromedriver), against a real collector and ClickHouse filled by
//! replaying `pcaps/` through the sensor: log in, open every page, filter,
//! pivot, open an attack and check its chart against the stored updates,
//! open a leak, render hostile text as text, switch language, log out, and
//! fail on any browser console error. Screenshots go to
//! `target/console-screenshots/` for a person to look at.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use shaobing_e2e::webdriver::{self, Browser};
use shaobing_e2e::{bin, bin_dir, hash_token, pcaps, Collector, SensorToken};
use shaobing_testkit::{clickhouse_available, http, ClickHouseServer};

const SENSOR: SensorToken = SensorToken {
    name: "console-sensor",
    token: "console-sensor-token-81c2",
};
const ANALYST: &str = "console-analyst-token-5e07";
/// A sensor configured but never heard from: stale on the sensors page.
const SILENT: SensorToken = SensorToken {
    name: "silent-sensor",
    token: "silent-sensor-token-0d4b",
};
/// Hostile text in fields a sensor controls.
const XSS_SIGNATURE: &str = "<img src=x onerror=\"window.__xss=1\">";
const XSS_EXCERPT: &str = "</pre><script>window.__xss=2</script><b>bold</b>";
const XSS_ID: &str = "019b76da-0000-7000-8000-00000000dead";

fn screenshots() -> PathBuf {
    // target/<profile>/ -> target/console-screenshots/
    bin_dir()
        .parent()
        .map(|t| t.join("console-screenshots"))
        .unwrap_or_else(|| PathBuf::from("console-screenshots"))
}

fn replay(collector: &Collector, config: &std::path::Path, pcap: &str) -> Result<()> {
    let out = Command::new(bin("shaobing-sensor"))
        .arg("replay")
        .arg("--config")
        .arg(config)
        .args(["--collector", &collector.url, "--token", SENSOR.token])
        .arg(pcaps().join(pcap))
        .output()?;
    ensure!(
        out.status.success(),
        "replay {pcap}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn addr(c: &Collector) -> String {
    c.url.trim_start_matches("http://").to_string()
}

fn api(c: &Collector, method: &str, path: &str, token: &str, body: &[u8]) -> Result<Value> {
    let auth = format!("Bearer {token}");
    let r = http::request(
        &addr(c),
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
        Duration::from_secs(30),
    )?;
    ensure!(
        r.status == 200,
        "{method} {path}: {} {}",
        r.status,
        r.body_text()
    );
    Ok(serde_json::from_slice(&r.body)?)
}

/// Fails on any console entry at level SEVERE (errors, CSP violations,
/// failed loads).
fn no_console_errors(b: &Browser, page: &str) -> Result<()> {
    let errors: Vec<Value> = b
        .console_log()?
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    if !errors.is_empty() {
        bail!("browser console errors on {page}: {errors:#?}");
    }
    Ok(())
}

fn texts(b: &Browser, css: &str) -> Result<Vec<String>> {
    b.find_all(css)?.iter().map(|e| b.text(e)).collect()
}

#[test]
fn an_analyst_works_through_every_console_page_in_a_real_browser() {
    let (chromium, driver) = match webdriver::browser() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    if !clickhouse_available() {
        eprintln!("SKIPPED: clickhouse-server is not installed (make deps installs it)");
        return;
    }
    if let Err(e) = run(&chromium, &driver) {
        panic!("{e:#}");
    }
}

fn run(chromium: &std::path::Path, driver: &std::path::Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ch = ClickHouseServer::start().context("start ClickHouse")?;
    let extra = format!(
        "\n[[analysts]]\nname = \"soc-analyst\"\ntoken_sha256 = \"{}\"\n",
        hash_token(ANALYST)?
    );
    let c = Collector::start_extra(dir.path(), &ch, &[SENSOR, SILENT], &extra)?;

    // Fill the store: a SYN flood with an update every second (so the
    // attack's curve has several points) and the leak captures.
    let sensor_cfg = dir.path().join("sensor.toml");
    std::fs::write(&sensor_cfg, "name = \"x\"\n[volumetric]\nupdate_secs = 1\n")?;
    for p in ["syn-flood.pcap", "http-leak.pcap", "leak-encodings.pcap"] {
        replay(&c, &sensor_cfg, p)?;
    }
    // A heartbeat, and a leak whose signature and excerpt carry markup.
    let hb = json!({"schema": 1, "ts": "2026-01-01T00:00:20Z", "version": "test", "uptime_s": 20,
        "packets": 99_000, "bytes": 9_000_000, "kernel_drops": 1000, "pps": 5000, "bps": 4_000_000,
        "spool_depth": 2, "signature_hits": {"classification-marking": 3}});
    api(
        &c,
        "POST",
        "/api/v1/heartbeat",
        SENSOR.token,
        hb.to_string().as_bytes(),
    )?;
    let xss = json!([{"id": XSS_ID, "schema": 1, "sensor": "x", "kind": "leak", "event": "leak",
        "signature": XSS_SIGNATURE, "severity": "high", "ts": "2026-01-01T00:00:30Z",
        "src_ip": "10.9.9.9", "dst_ip": "203.0.113.9", "src_port": 5555, "dst_port": 80, "proto": "tcp",
        "community_id": "1:xss=", "direction": "outbound", "match_count": 1, "app_proto": "http",
        "excerpt": XSS_EXCERPT}]);
    api(
        &c,
        "POST",
        "/api/v1/incidents",
        SENSOR.token,
        xss.to_string().as_bytes(),
    )?;

    let shots = screenshots();
    let b = Browser::start(chromium, driver, 1366, 900)?;

    // Not logged in: the root redirects to the console's login form.
    b.goto(&format!("{}/", c.url))?;
    let token = b.wait_for("#login-form #token")?;
    ensure!(b.url()?.contains("/console/"), "redirected to {}", b.url()?);
    ensure!(
        b.text(&b.wait_for("#login-submit")?)? == "登录",
        "Chinese by default"
    );
    b.screenshot(&shots.join("login.png"))?;
    // A sensor token is refused.
    b.type_into(&token, SENSOR.token)?;
    b.click(&b.wait_for("#login-submit")?)?;
    b.wait_until(
        "the sensor-token refusal",
        "return document.getElementById('login-error').textContent.includes('传感器令牌');",
    )?;
    // The browser console logs the refused request (403) as an error:
    // expected here, so read and drop it.
    let _ = b.console_log()?;

    // The analyst logs in.
    b.type_into(&b.wait_for("#token")?, ANALYST)?;
    b.click(&b.wait_for("#login-submit")?)?;
    b.wait_for("#overview")?;
    // The session is an HttpOnly cookie: nothing secret is visible to
    // scripts or kept in storage.
    let visible = b.run(
        "return document.cookie + '|' + JSON.stringify(window.localStorage) + '|' + JSON.stringify(window.sessionStorage);",
        &[],
    )?;
    let visible = visible.as_str().unwrap_or("");
    ensure!(
        !visible.contains("sb_session") && !visible.contains(ANALYST),
        "secrets visible to scripts: {visible}"
    );
    ensure!(!b.url()?.contains(ANALYST), "token in the URL");

    // Overview over all time: counts, both charts, the attack, top lists.
    b.click(&b.wait_for("#ranges a:last-child")?)?;
    b.wait_until(
        "the all-time overview",
        "return location.hash.includes('since=all') && !!document.querySelector('#overview #chart-kind rect.bar');",
    )?;
    let total = b.text(&b.wait_for("#kpi-total")?)?;
    let stored = api(&c, "GET", "/api/v1/summary?since=all", ANALYST, b"")?;
    ensure!(
        total.parse::<u64>().ok() == stored["total"].as_u64(),
        "overview total {total} vs stored {}",
        stored["total"]
    );
    let bars: i64 = b
        .run(
            "return [...document.querySelectorAll('#chart-kind rect.bar')].reduce((a, r) => a + Number(r.dataset.n), 0);",
            &[],
        )?
        .as_i64()
        .unwrap_or(-1);
    ensure!(
        bars == stored["total"].as_i64().unwrap_or(-2),
        "chart bars add up to {bars}"
    );
    ensure!(!b.find_all("#chart-severity rect.bar")?.is_empty());
    ensure!(texts(&b, "#top-targets td a")?.contains(&"10.0.0.10".to_string()));
    ensure!(texts(&b, "#top-prefixes td")?.contains(&"10.0.0.0/24".to_string()));
    ensure!(texts(&b, "#top-leakers td a")?.contains(&"10.1.2.3".to_string()));
    ensure!(texts(&b, "#top-signatures td a")?.contains(&XSS_SIGNATURE.to_string()));
    b.screenshot(&shots.join("overview.png"))?;
    no_console_errors(&b, "overview")?;

    // The open page follows new incidents by itself.
    let mut late = xss[0].clone();
    late["id"] = "019b76da-0000-7000-8000-00000000beef".into();
    late["signature"] = "classification-marking".into();
    late["excerpt"] = "机*".into();
    api(
        &c,
        "POST",
        "/api/v1/incidents",
        SENSOR.token,
        json!([late]).to_string().as_bytes(),
    )?;
    let want = stored["total"].as_u64().unwrap_or(0) + 1;
    b.wait_until(
        "the overview to show the new incident",
        &format!("return document.getElementById('kpi-total').textContent === '{want}';"),
    )?;

    // The attack: its chart is drawn from the stored events.
    b.click(&b.wait_for("#attacks-ended a.attack-link")?)?;
    b.wait_for("#attack #attack-chart")?;
    let attack_id = b
        .attr(&b.wait_for("#attack")?, "data-attack")?
        .unwrap_or_default();
    let stored = api(
        &c,
        "GET",
        &format!("/api/v1/attacks/{attack_id}"),
        ANALYST,
        b"",
    )?;
    let events = stored["events"].as_array().cloned().unwrap_or_default();
    ensure!(
        events.len() >= 3,
        "start, updates and end: {}",
        events.len()
    );
    let drawn = b.run(
        "return [...document.querySelectorAll('#attack-chart circle.pt-pps')].map(c => [c.dataset.id, Number(c.dataset.value)]);",
        &[],
    )?;
    let want: Vec<Value> = events.iter().map(|e| json!([e["id"], e["pps"]])).collect();
    ensure!(
        drawn == Value::Array(want.clone()),
        "chart points {drawn} vs stored {want:?}"
    );
    let bps_points = b.find_all("#attack-chart circle.pt-bps")?.len();
    ensure!(bps_points == events.len());
    ensure!(texts(&b, "#attack-events tbody tr")?.len() == events.len());
    b.screenshot(&shots.join("attack.png"))?;
    no_console_errors(&b, "attack")?;

    // Incidents: filter on leaks, then pivot on a source address.
    b.click(&b.wait_for("#nav a:nth-child(2)")?)?;
    b.wait_for("#incidents #filters")?;
    b.run(
        "document.getElementById('f-since').value = 'all'; document.getElementById('f-kind').value = 'leak';",
        &[],
    )?;
    b.click(&b.wait_for("#apply")?)?;
    b.wait_until(
        "the leak filter",
        "return location.hash.includes('kind=leak') && document.querySelectorAll('#incident-table tbody tr').length > 0;",
    )?;
    let kinds = texts(&b, "#incident-table tbody td:nth-child(3)")?;
    ensure!(
        !kinds.is_empty() && kinds.iter().all(|k| k == "数据泄露"),
        "{kinds:?}"
    );
    b.screenshot(&shots.join("incidents.png"))?;
    // The oldest leak's source (the newest is the hostile one below).
    let pivot = b.wait_for("#incident-table tbody tr:last-child a.pivot-ip")?;
    let ip = b.text(&pivot)?;
    b.click(&pivot)?;
    b.wait_until(
        "the IP pivot",
        "return location.hash.includes('ip=') && !!document.querySelector('#incident-table tbody tr');",
    )?;
    let ip_field = b.run("return document.getElementById('f-ip').value;", &[])?;
    ensure!(
        ip_field == Value::String(ip.clone()),
        "pivot on {ip}: {ip_field}"
    );
    for row in texts(&b, "#incident-table tbody tr")? {
        ensure!(row.contains(&ip), "row without {ip}: {row}");
    }
    no_console_errors(&b, "incidents")?;

    // A leak's detail: the masked excerpt and its host's other incidents.
    b.click(&b.wait_for("#incident-table a.detail-link")?)?;
    b.wait_for("#incident #excerpt")?;
    let id = b
        .attr(&b.wait_for("#incident")?, "data-id")?
        .unwrap_or_default();
    let stored = api(&c, "GET", &format!("/api/v1/incidents/{id}"), ANALYST, b"")?;
    ensure!(
        b.text(&b.wait_for("#excerpt")?)? == stored["incident"]["excerpt"].as_str().unwrap_or("?"),
        "excerpt shown as stored"
    );
    b.screenshot(&shots.join("leak.png"))?;
    no_console_errors(&b, "leak")?;

    // Hostile fields are text: no element is made from them, no script runs.
    b.goto(&format!("{}/console/#/incident/{XSS_ID}", c.url))?;
    b.wait_for("#incident #excerpt")?;
    ensure!(b.text(&b.wait_for("#excerpt")?)? == XSS_EXCERPT);
    let sig = b.wait_for("#incident a.pivot-signature")?;
    ensure!(b.text(&sig)? == XSS_SIGNATURE);
    let injected = b.run(
        "return [window.__xss === undefined, document.querySelectorAll('img[src=x], #incident script, #incident b').length];",
        &[],
    )?;
    ensure!(
        injected == json!([true, 0]),
        "markup became elements: {injected}"
    );
    b.click(&sig)?;
    b.wait_until(
        "the signature pivot",
        "return location.hash.includes('signature=') && document.querySelectorAll('#incident-table tbody tr').length === 1;",
    )?;
    ensure!(
        b.run(
            "return window.__xss === undefined && !document.querySelector('img[src=x]');",
            &[]
        )? == Value::Bool(true)
    );
    no_console_errors(&b, "hostile text")?;

    // Sensors: the silent sensor is stale and listed first.
    b.click(&b.wait_for("#nav a:nth-child(3)")?)?;
    b.wait_for("#sensors #sensor-table")?;
    let rows = texts(&b, "#sensor-table tbody tr")?;
    ensure!(rows.len() == 2, "{rows:?}");
    ensure!(
        rows[0].contains(SILENT.name) && rows[0].contains("失联"),
        "{rows:?}"
    );
    ensure!(
        rows[1].contains(SENSOR.name) && rows[1].contains("1.000 %"),
        "loss of the last heartbeat: {rows:?}"
    );
    ensure!(b.find_all("#sensor-table tr.stale")?.len() == 1);
    b.screenshot(&shots.join("sensors.png"))?;
    no_console_errors(&b, "sensors")?;

    // English.
    b.click(&b.wait_for("#lang")?)?;
    b.wait_until(
        "English",
        "return document.querySelector('#nav a').textContent === 'Overview' && document.getElementById('lang').textContent === '中文' && !!document.querySelector('#sensors');",
    )?;
    ensure!(texts(&b, "#sensor-table tbody tr")?[0].contains("stale"));
    b.click(&b.wait_for("#nav a:nth-child(1)")?)?;
    b.wait_for("#overview #chart-kind")?;
    b.screenshot(&shots.join("overview-en.png"))?;
    no_console_errors(&b, "english")?;

    // Log out: back to the login form, and the session is gone.
    b.click(&b.wait_for("#logout")?)?;
    b.wait_for("#login-form")?;
    let status = b.run(
        "const x = new XMLHttpRequest(); x.open('GET', '/api/v1/overview', false); x.send(); return x.status;",
        &[],
    )?;
    ensure!(status == json!(401), "after logout: {status}");
    // The 401 above is logged by the browser: expected.
    let _ = b.console_log()?;
    b.goto(&format!("{}/console/#/sensors", c.url))?;
    b.wait_for("#login-form")?;
    no_console_errors(&b, "logout")?;
    eprintln!("screenshots in {}", shots.display());
    Ok(())
}
