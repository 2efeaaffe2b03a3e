//! Test support: a private `clickhouse-server` as a child process.
//!
//! [`ClickHouseServer::start`] runs a throwaway server in a temporary
//! directory on a free port with the static config in
//! `deploy/clickhouse/dev-config.xml` (the same file the demo scripts use),
//! waits until `GET /ping` answers `Ok.`, and stops it again (SIGTERM, then
//! `wait()`, SIGKILL after 10 s) when dropped. [`ClickHouseServer::start_in`]
//! uses a directory the caller keeps, so a test can stop a server and start
//! another one over the same data.
//!
//! Tests that need a server should call [`clickhouse_available`] first and
//! skip with a printed reason when it is `false`.
//!
//! Two servers can be started ([`Flavor`], chosen by the environment
//! variable `SHAOBING_CLICKHOUSE`):
//!
//! * `18.16` (the default): Debian's `clickhouse-server`, as above;
//! * `26.9`: current ClickHouse from the `chdb-core` 26.9.0 PyPI wheel
//!   (`scripts/chdb.sh` installs it in `var/chdb-venv`; another Python
//!   with the wheel can be named by `SHAOBING_CHDB_PYTHON`). Its embedded
//!   engine runs the server's HTTP handler while one keep-alive query
//!   blocks (see `../shared/CLICKHOUSE.md`): the same HTTP interface, with a
//!   `users.xml` whose profile sets `network_compression_method = LZ4`
//!   (the Rust client's compression). It has no replicated engines.
//!
//! [`http`] holds a tiny blocking HTTP/1.1 client (enough for `/ping`,
//! ClickHouse's HTTP interface and a collector under test) so this crate has
//! no HTTP dependency.
#![warn(missing_docs)]

pub mod cluster;
pub mod http;
pub mod pki;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The static server config (`deploy/clickhouse/dev-config.xml`).
pub const DEV_CONFIG_XML: &str = include_str!("../../deploy/clickhouse/dev-config.xml");

/// Environment variable that overrides the server binary's path.
pub const BINARY_ENV: &str = "CLICKHOUSE_SERVER";

/// Environment variable that picks the server: `18.16` (default) or
/// `26.9`.
pub const FLAVOR_ENV: &str = "SHAOBING_CLICKHOUSE";

/// Environment variable naming the Python interpreter that has the
/// `chdb-core` wheel (default: `var/chdb-venv/bin/python` in the
/// repository).
pub const CHDB_PYTHON_ENV: &str = "SHAOBING_CHDB_PYTHON";

/// Which ClickHouse a [`ClickHouseServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Debian's `clickhouse-server` 18.16.
    Debian18,
    /// ClickHouse 26.9 from the `chdb-core` wheel.
    Chdb26,
}

impl Flavor {
    /// The flavor `SHAOBING_CLICKHOUSE` asks for (`18.16` when unset).
    pub fn from_env() -> Flavor {
        match std::env::var(FLAVOR_ENV).as_deref() {
            Ok("26.9") | Ok("chdb") => Flavor::Chdb26,
            _ => Flavor::Debian18,
        }
    }

    /// The version it runs, for messages.
    pub fn version(self) -> &'static str {
        match self {
            Flavor::Debian18 => "18.16",
            Flavor::Chdb26 => "26.9",
        }
    }
}

/// The Python interpreter with the `chdb-core` wheel, if it exists.
pub fn chdb_python() -> Option<PathBuf> {
    let p = match std::env::var_os(CHDB_PYTHON_ENV) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../var/chdb-venv/bin/python"),
    };
    is_executable(&p).then_some(p)
}

/// The 26.9 server: the HTTP listener of chdb's embedded engine, alive
/// while the keep-alive query blocks. Returning means it failed.
const CHDB_SERVER_PY: &str = r#"
import sys
from chdb import _chdb
try:
    _chdb.query(
        "SYSTEM START LISTEN HTTP; SELECT sleepEachRow(1) FROM numbers(1000000000) "
        "FORMAT Null SETTINGS max_block_size=1, max_execution_time=0",
        "TabSeparated",
        path=sys.argv[1],
    )
except Exception as e:
    sys.stderr.write("chdb server failed: %s\n" % e)
sys.exit(70)
"#;

fn chdb_config(port: u16) -> String {
    format!(
        "<clickhouse><listen_host>127.0.0.1</listen_host><http_port>{port}</http_port>\
         <users_config>users.xml</users_config><timezone>UTC</timezone></clickhouse>\n"
    )
}

const CHDB_USERS_XML: &str = "<clickhouse>
  <profiles><default>
    <network_compression_method>LZ4</network_compression_method>
    <implicit_select>0</implicit_select>
  </default></profiles>
  <users><default><password/><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default/></quotas>
</clickhouse>
";

/// How long [`ClickHouseServer::start`] waits for `/ping` to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stop waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many ports a start tries when the server reports "address in use".
const PORT_ATTEMPTS: usize = 5;

/// Exit code of `clickhouse-server` when its port is taken (EX_SOFTWARE).
const EXIT_ADDRESS_IN_USE: i32 = 70;

/// Bytes of the server log quoted in start errors.
const LOG_TAIL_BYTES: u64 = 4096;

/// Why a server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `clickhouse-server` binary was found.
    #[error("clickhouse-server not found (set {BINARY_ENV}, install it at /usr/sbin/clickhouse-server, or put it on PATH)")]
    NotFound,
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server exited before it answered `/ping`.
    #[error("clickhouse-server exited with {status} before it was ready; log tail:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// The server did not answer `/ping` in time.
    #[error("clickhouse-server did not answer /ping within {timeout:?}; log tail:\n{log_tail}")]
    Timeout {
        /// How long we waited.
        timeout: Duration,
        /// The end of its log.
        log_tail: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Finds the server binary: `$CLICKHOUSE_SERVER`, else
/// `/usr/sbin/clickhouse-server`, else `clickhouse-server` on `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BINARY_ENV) {
        let p = PathBuf::from(p);
        return is_executable(&p).then_some(p);
    }
    let default = PathBuf::from("/usr/sbin/clickhouse-server");
    if is_executable(&default) {
        return Some(default);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("clickhouse-server"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether the server of [`Flavor::from_env`] can be started: a
/// `clickhouse-server` binary ([`find_binary`]) or the chdb Python
/// ([`chdb_python`]). Panics when 26.9 was asked for and is missing, so a
/// test run meant for it cannot pass by skipping.
pub fn clickhouse_available() -> bool {
    match Flavor::from_env() {
        Flavor::Debian18 => find_binary().is_some(),
        // Asked for explicitly: a missing wheel must fail, not skip.
        Flavor::Chdb26 => {
            assert!(
                chdb_python().is_some(),
                "{FLAVOR_ENV}=26.9 but the chdb-core Python is missing: run scripts/chdb.sh \
                 (or set {CHDB_PYTHON_ENV})"
            );
            true
        }
    }
}

/// Asks the kernel for a free TCP port on 127.0.0.1 (bind to port 0, read it,
/// release it), never one this process was given before: the kernel may
/// hand a released port out again at once, and two servers of tests running
/// side by side given the same port would see one of them fail to start
/// while the other answered its readiness checks. Another process may take
/// it before we use it; callers retry.
pub fn free_port() -> Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
        let port = l.local_addr().map_err(io("local_addr"))?.port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Io {
        what: "free_port: every port the kernel offered was given out before".to_string(),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    })
}

enum Dir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Kept(p) => p,
        }
    }
}

/// A running private ClickHouse server (HTTP interface only).
///
/// Dropping it stops the server (SIGTERM, wait, SIGKILL after
/// [`STOP_GRACE`]) and, for [`ClickHouseServer::start`], deletes its data.
pub struct ClickHouseServer {
    // Declared before `dir` so the process is gone before the dir is removed
    // (Drop also stops it explicitly).
    child: Option<Child>,
    dir: Dir,
    port: u16,
    binary: PathBuf,
    flavor: Flavor,
}

impl std::fmt::Debug for ClickHouseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseServer")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("flavor", &self.flavor)
            .field("pid", &self.pid())
            .finish()
    }
}

impl ClickHouseServer {
    /// Starts a server in a fresh temporary directory on a free port.
    pub fn start() -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("shaobing-clickhouse-")
            .tempdir()
            .map_err(io("create temp dir"))?;
        Self::launch(Dir::Temp(tmp), None)
    }

    /// Starts a server whose data lives in `dir` (created if missing, kept
    /// after the server stops). With `port` given it listens there (useful to
    /// restart over the same data at the same URL); otherwise on a free port.
    pub fn start_in(dir: &Path, port: Option<u16>) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        Self::launch(Dir::Kept(dir.to_path_buf()), port)
    }

    /// Starts Debian's 18.16 server in `dir` (kept) with the complete
    /// `config_xml` (ports other than HTTP, macros, clusters...) on HTTP
    /// port `http_port`.
    pub fn start_with_config(dir: &Path, config_xml: &str, http_port: u16) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let config = dir.join("config.xml");
        fs::write(&config, config_xml).map_err(io(format!("write {}", config.display())))?;
        let mut server = ClickHouseServer {
            child: None,
            dir: Dir::Kept(dir.to_path_buf()),
            port: http_port,
            binary: find_binary().ok_or(Error::NotFound)?,
            flavor: Flavor::Debian18,
        };
        server.spawn_until_ready(Some(http_port))?;
        Ok(server)
    }

    fn launch(dir: Dir, port: Option<u16>) -> Result<Self> {
        let flavor = Flavor::from_env();
        let binary = match flavor {
            Flavor::Debian18 => find_binary(),
            Flavor::Chdb26 => chdb_python(),
        }
        .ok_or(Error::NotFound)?;
        if flavor == Flavor::Debian18 {
            let config = dir.path().join("config.xml");
            fs::write(&config, DEV_CONFIG_XML)
                .map_err(io(format!("write {}", config.display())))?;
        } else {
            let users = dir.path().join("users.xml");
            fs::write(&users, CHDB_USERS_XML).map_err(io(format!("write {}", users.display())))?;
        }
        let mut server = ClickHouseServer {
            child: None,
            dir,
            port: port.unwrap_or(0),
            binary,
            flavor,
        };
        server.spawn_until_ready(port)?;
        Ok(server)
    }

    /// Spawns the server and waits for `/ping`, retrying on "address in
    /// use" with a new free port (or, for a fixed port, the same one after a
    /// short pause).
    fn spawn_until_ready(&mut self, fixed_port: Option<u16>) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = match fixed_port {
                Some(p) => p,
                None => free_port()?,
            };
            match self.spawn_once() {
                Err(Error::Exited { status, .. })
                    if status.code() == Some(EXIT_ADDRESS_IN_USE) && attempt < PORT_ATTEMPTS =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                other => return other,
            }
        }
    }

    fn spawn_once(&mut self) -> Result<()> {
        let dir = self.dir.path().to_path_buf();
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log.try_clone().map_err(io("dup log file"))?;
        let mut cmd = Command::new(&self.binary);
        match self.flavor {
            Flavor::Debian18 => {
                cmd.arg(format!(
                    "--config-file={}",
                    dir.join("config.xml").display()
                ))
                .arg("--")
                .arg(format!("--http_port={}", self.port));
            }
            Flavor::Chdb26 => {
                // The engine reads `config.xml` from its working directory.
                let config = dir.join("config.xml");
                fs::write(&config, chdb_config(self.port))
                    .map_err(io(format!("write {}", config.display())))?;
                cmd.arg("-c")
                    .arg(CHDB_SERVER_PY)
                    .arg(dir.join("data"))
                    .env("TZ", "UTC");
            }
        }
        let child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("spawn {}", self.binary.display())))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().map_err(io("wait for clickhouse-server"))? {
                    self.child = None;
                    return Err(Error::Exited {
                        status,
                        log_tail: log_tail(&log_path, log_start),
                    });
                }
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop_in_place();
                return Err(Error::Timeout {
                    timeout: READY_TIMEOUT,
                    log_tail: log_tail(&log_path, log_start),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers `GET /ping` with `Ok.` right now.
    pub fn ping(&self) -> bool {
        matches!(
            http::get(&self.addr(), "/ping", Duration::from_secs(2)),
            Ok(r) if r.status == 200 && r.body_text().trim() == "Ok."
        )
    }

    /// `http://127.0.0.1:PORT`, the URL for the `clickhouse` crate.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Which server this is.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (config, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("clickhouse-server.log")
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running (started and not yet stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs one SQL statement over HTTP (POST body) and returns the response
    /// text; a non-200 answer is an error carrying ClickHouse's message.
    pub fn query(&self, sql: &str) -> Result<String> {
        let resp = http::request(
            &self.addr(),
            "POST",
            "/?wait_end_of_query=1",
            &[],
            sql.as_bytes(),
            Duration::from_secs(30),
        )
        .map_err(io(format!("query {sql:?}")))?;
        if resp.status != 200 {
            return Err(Error::Io {
                what: format!("query {sql:?}"),
                source: std::io::Error::other(format!(
                    "HTTP {}: {}",
                    resp.status,
                    resp.body_text()
                )),
            });
        }
        Ok(resp.body_text())
    }

    /// Stops the server and, for [`ClickHouseServer::start`], removes its
    /// directory.
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    /// Stops the server but keeps this handle (and its directory), so
    /// [`ClickHouseServer::restart`] can start it again on the same port and
    /// data. Does nothing if it is not running.
    pub fn stop_in_place(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with a pid we spawned and have not yet reaped,
            // so it cannot have been reused by another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    /// Kills the server at once (SIGKILL, then `wait()`): a crash, or a stop
    /// that must not wait for clients' open connections. Keeps the handle
    /// and directory like [`ClickHouseServer::stop_in_place`].
    pub fn kill_in_place(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (same directory, same port) after
    /// [`ClickHouseServer::stop_in_place`]; stops it first if it runs.
    pub fn restart(&mut self) -> Result<()> {
        self.stop_in_place();
        let port = self.port;
        self.spawn_until_ready(Some(port))
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}

/// The log written since `start`, at most [`LOG_TAIL_BYTES`] of its end.
fn log_tail(path: &Path, start: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = start.max(len.saturating_sub(LOG_TAIL_BYTES));
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::from("(log unreadable)");
    }
    let mut buf = Vec::new();
    let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
