//! Support for the end-to-end tests in `tests/`: finding the workspace's
//! binaries and running a collector process against a private ClickHouse.
//!
//! The binaries are the ones `cargo build --workspace --bins` made next to
//! the test executable (`make test` builds them first).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shaobing_testkit::ClickHouseServer;

pub mod webdriver;

/// The folder with the workspace's binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A workspace binary, or a clear failure saying how to build it.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (`make test` does)",
        p.display()
    );
    p
}

/// Runs `shaobing-sensor ARGS` to completion.
pub fn sensor<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> std::process::Output {
    Command::new(bin("shaobing-sensor"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run shaobing-sensor: {e}"))
}

/// Asserts that a command exited 0 (showing its stderr if not) and returns
/// its stderr.
pub fn succeeded(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// The repository's `pcaps/` folder.
pub fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

/// A collector process (`shaobing-collector serve`) with its own config,
/// killed and reaped on drop.
pub struct Collector {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    /// The config file it runs with.
    pub config: PathBuf,
    log: PathBuf,
}

/// HTTPS settings for a test collector (`[tls]`).
pub struct TlsServer {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
    /// CA that must have issued sensors' client certificates.
    pub client_ca: Option<PathBuf>,
}

/// One sensor token known to a collector.
pub struct SensorToken {
    /// Sensor name bound to the token.
    pub name: &'static str,
    /// The secret token.
    pub token: &'static str,
}

/// `shaobing-collector hash-token TOKEN`.
pub fn hash_token(token: &str) -> Result<String> {
    let out = Command::new(bin("shaobing-collector"))
        .args(["hash-token", token])
        .output()
        .context("running shaobing-collector hash-token")?;
    if !out.status.success() {
        bail!(
            "hash-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

impl Collector {
    /// Writes a config into `dir`, migrates the schema and starts `serve`
    /// on a free port.
    pub fn start(
        dir: &Path,
        clickhouse: &ClickHouseServer,
        sensors: &[SensorToken],
    ) -> Result<Collector> {
        Collector::start_on(dir, clickhouse, sensors, shaobing_testkit::free_port()?)
    }

    /// Like [`Collector::start`], on a given port.
    pub fn start_on(
        dir: &Path,
        clickhouse: &ClickHouseServer,
        sensors: &[SensorToken],
        port: u16,
    ) -> Result<Collector> {
        Collector::start_with(dir, clickhouse, sensors, port, None, "")
    }

    /// Like [`Collector::start`], with `extra` TOML appended to the config
    /// (e.g. `[[analysts]]`).
    pub fn start_extra(
        dir: &Path,
        clickhouse: &ClickHouseServer,
        sensors: &[SensorToken],
        extra: &str,
    ) -> Result<Collector> {
        let port = shaobing_testkit::free_port()?;
        Collector::start_with(dir, clickhouse, sensors, port, None, extra)
    }

    /// Like [`Collector::start`], serving HTTPS with `tls`.
    pub fn start_tls(
        dir: &Path,
        clickhouse: &ClickHouseServer,
        sensors: &[SensorToken],
        tls: &TlsServer,
    ) -> Result<Collector> {
        let port = shaobing_testkit::free_port()?;
        Collector::start_with(dir, clickhouse, sensors, port, Some(tls), "")
    }

    fn start_with(
        dir: &Path,
        clickhouse: &ClickHouseServer,
        sensors: &[SensorToken],
        port: u16,
        tls: Option<&TlsServer>,
        extra: &str,
    ) -> Result<Collector> {
        let mut cfg = format!(
            "listen = \"127.0.0.1:{port}\"\n\n[clickhouse]\nurl = \"{}\"\ndatabase = \"shaobing\"\n\n[batch]\nmax_rows = 1000\nmax_delay_ms = 50\n",
            clickhouse.http_url()
        );
        if let Some(t) = tls {
            cfg.push_str(&format!(
                "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                t.cert.display(),
                t.key.display()
            ));
            if let Some(ca) = &t.client_ca {
                cfg.push_str(&format!("client_ca = \"{}\"\n", ca.display()));
            }
        }
        for s in sensors {
            cfg.push_str(&format!(
                "\n[[sensors]]\nname = \"{}\"\ntoken_sha256 = \"{}\"\n",
                s.name,
                hash_token(s.token)?
            ));
        }
        cfg.push_str(extra);
        let config = dir.join("collector.toml");
        std::fs::write(&config, cfg)?;
        let migrate = Command::new(bin("shaobing-collector"))
            .arg("migrate")
            .arg("--config")
            .arg(&config)
            .output()?;
        if !migrate.status.success() {
            bail!(
                "migrate failed: {}",
                String::from_utf8_lossy(&migrate.stderr)
            );
        }
        let log = dir.join("collector.log");
        let child = Command::new(bin("shaobing-collector"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.join("collector.err"))?)
            .spawn()
            .context("spawning shaobing-collector serve")?;
        let mut c = Collector {
            child,
            url: format!(
                "{}://127.0.0.1:{port}",
                if tls.is_some() { "https" } else { "http" }
            ),
            config,
            log,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = match tls {
                // The listener is bound once it accepts; requests wait in
                // its backlog until the server loop runs.
                Some(_) => TcpStream::connect(&addr).is_ok(),
                None => http_get(&addr, "/healthz").is_some_and(|r| {
                    r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200")
                }),
            };
            if up {
                return Ok(c);
            }
            if let Some(status) = c.child.try_wait()? {
                bail!("collector exited with {status}: {}", c.stderr());
            }
            if Instant::now() > deadline {
                bail!("collector did not become healthy: {}", c.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the collector wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let err = self.log.with_file_name("collector.err");
        std::fs::read_to_string(err).unwrap_or_default()
    }

    /// Runs `shaobing-collector query --config ... ARGS`.
    pub fn query(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(bin("shaobing-collector"))
            .arg("query")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("query failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
