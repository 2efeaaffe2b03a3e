//! `shaobing-sensor`: the Shaobing packet-capture sensor.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use shaobing_sensor::capture::file::FileReplay;
use shaobing_sensor::config::{CollectorConfig, Config, Settings};
use shaobing_sensor::detect::IncidentSink;
use shaobing_sensor::forward::client::Client;
use shaobing_sensor::forward::endpoint::Endpoint;
use shaobing_sensor::forward::forwarder::{Forwarder, ForwarderConfig, ForwarderReport};
use shaobing_sensor::forward::spool::SpoolConfig;
use shaobing_sensor::pipeline::Pipeline;
use shaobing_signatures::SignatureSet;
use shaobing_wire::Incident;

/// Shaobing (哨兵) sensor: detects volumetric attacks and data leaks in
/// packet captures and forwards incidents to the Shaobing collector.
#[derive(Parser)]
#[command(name = "shaobing-sensor", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay capture files (pcap or pcapng) through the detectors.
    ///
    /// Files are merged in capture-time order. Without --collector every
    /// incident is printed to stdout as one JSON object per line; with it,
    /// incidents are sent to the collector. A one-line summary (packets,
    /// bytes, wall time, packets/s, Gbit/s) goes to stderr. Detection
    /// follows packet timestamps, so a replay gives the same incidents (and
    /// the same incident ids) every time.
    Replay(ReplayArgs),
    /// Capture live from an interface until SIGTERM (graceful) or SIGINT
    /// (fast); SIGHUP reloads the leak signatures.
    ///
    /// Opens one libpcap handle per worker (PACKET_FANOUT when several),
    /// then drops to [run] user if configured. Incidents go to the
    /// collector through the spool in [run] spool_dir, or to stdout as JSON
    /// lines when no collector is configured. Heartbeats every [run]
    /// heartbeat_secs (log line, and POST to the collector).
    Run(RunArgs),
    /// Deliver what a spool folder holds to the collector, then exit.
    ///
    /// For a spool left behind by `replay --spool` (or a stopped sensor)
    /// while the collector was unreachable. Incidents are deleted from the
    /// spool only after the collector acknowledged them.
    Deliver(DeliverArgs),
    /// Work with leak signature files.
    #[command(subcommand)]
    Signatures(SignaturesCommand),
}

#[derive(Args)]
struct ReplayArgs {
    /// Sensor configuration file (TOML). Default: built-in defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Leak signature file or folder of *.toml files. Default: the
    /// built-in pack.
    #[arg(long, value_name = "PATH")]
    signatures: Option<PathBuf>,
    #[command(flatten)]
    remote: CollectorArgs,
    /// Decode only; run no detector (the floor for benchmarks).
    #[arg(long)]
    no_detect: bool,
    /// Durable spool folder: incidents are written here (fsync per batch)
    /// before delivery and deleted only once the collector acknowledged
    /// them. What is not delivered within --grace-secs stays for the next
    /// run or `shaobing-sensor deliver`. Without it, undelivered incidents
    /// are printed to stdout.
    #[arg(long, value_name = "DIR", requires = "collector")]
    spool: Option<PathBuf>,
    /// With --spool: seconds to keep delivering after the capture ends.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    grace_secs: u64,
    /// Capture files to replay.
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,
}

/// `--collector URL --token TOKEN` and TLS files, shared by `replay` and
/// `run`.
#[derive(Args)]
struct CollectorArgs {
    /// Collector base URL, e.g. http://127.0.0.1:9440 or
    /// https://collector:9440. Several comma-separated URLs name
    /// collectors sharing one store: delivery fails over between them in
    /// turn (the first is preferred). Overrides [collector] url and
    /// fallback_urls in the config.
    #[arg(long, value_name = "URL[,URL...]", requires = "token")]
    collector: Option<String>,
    /// This sensor's bearer token for the collector; overrides [collector]
    /// token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHAOBING_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS files for an https:// collector.
#[derive(Args)]
struct TlsArgs {
    /// With an https:// collector: PEM file of the CA(s) to trust instead
    /// of the system store (takes precedence over a config's [collector]
    /// ca_file).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// PEM certificate to present to the collector (its [tls] client_ca
    /// must have issued it; takes precedence over a config's [collector]
    /// client_cert).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Command-line files over the config's.
    fn over(&self, c: &mut CollectorConfig) {
        if let Some(ca) = &self.ca_file {
            c.ca_file = Some(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            c.client_cert = Some(cert.clone());
            c.client_key = Some(key.clone());
        }
    }
}

/// The endpoint of a collector config, with its TLS files read.
fn endpoint(c: &CollectorConfig) -> Result<Endpoint> {
    Endpoint::new(&c.url, &c.token, &c.tls_files()).with_context(|| format!("collector {}", c.url))
}

/// The endpoints of the config's `fallback_urls`.
fn fallbacks(c: &CollectorConfig) -> Result<Vec<Endpoint>> {
    c.fallback_urls
        .iter()
        .map(|u| {
            Endpoint::new(u, &c.token, &c.tls_files()).with_context(|| format!("collector {u}"))
        })
        .collect()
}

/// `URL[,URL...]`: the first URL and the others.
fn split_urls(list: &str) -> Result<(String, Vec<String>)> {
    let mut urls = list.split(',').map(str::trim).filter(|u| !u.is_empty());
    let first = urls.next().context("--collector needs a URL")?.to_string();
    Ok((first, urls.map(str::to_string).collect()))
}

impl CollectorArgs {
    /// Puts a command-line collector into `s`, keeping the config's batch
    /// and retry settings.
    fn apply(&self, s: &mut Settings) -> Result<()> {
        if let Some(list) = &self.collector {
            let (url, fallback_urls) = split_urls(list)?;
            let url = &url;
            let token = self
                .token
                .clone()
                .context("--collector needs --token (or SHAOBING_TOKEN)")?;
            // Keeps the config's other [collector] keys.
            s.collector = Some(match s.collector.take() {
                Some(base) => CollectorConfig {
                    url: url.clone(),
                    fallback_urls,
                    token,
                    ..base
                },
                None => CollectorConfig {
                    fallback_urls,
                    ..CollectorConfig::new(url, &token)
                },
            });
        }
        match s.collector.as_mut() {
            Some(c) => self.tls.over(c),
            None if self.tls.ca_file.is_some() || self.tls.client_cert.is_some() => {
                bail!("--ca-file and --client-cert need a collector (--collector or [collector])")
            }
            None => {}
        }
        Ok(())
    }
}

#[derive(Args)]
struct RunArgs {
    /// Sensor configuration file (TOML); refused if world-writable.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Interface to capture on; overrides [capture] interface.
    #[arg(long, value_name = "IFACE")]
    interface: Option<String>,
    /// Leak signature file or folder (re-read on SIGHUP). Default: the
    /// built-in pack.
    #[arg(long, value_name = "PATH")]
    signatures: Option<PathBuf>,
    #[command(flatten)]
    remote: CollectorArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args)]
struct DeliverArgs {
    /// The spool folder.
    #[arg(long, value_name = "DIR")]
    spool: PathBuf,
    /// Collector base URL, e.g. http://127.0.0.1:9440 or
    /// https://collector:9440; several comma-separated URLs fail over in
    /// turn.
    #[arg(long, value_name = "URL[,URL...]")]
    collector: String,
    /// This sensor's bearer token for the collector.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHAOBING_TOKEN",
        hide_env_values = true
    )]
    token: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Give up after this many seconds; what is left stays spooled.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    grace_secs: u64,
}

#[derive(Subcommand)]
enum SignaturesCommand {
    /// Check a signature file or folder; errors name file:line:column.
    Check {
        /// A *.toml file or a folder of them.
        path: PathBuf,
    },
    /// Replay captures through the leak detector with a signature file or
    /// folder and print what fired, per signature; with --baseline, also
    /// the incidents the change adds (+) and removes (-).
    Test {
        /// A *.toml file or a folder of them.
        path: PathBuf,
        /// Capture files (pcap or pcapng), each replayed on its own.
        #[arg(long = "pcap", value_name = "FILE", required = true, num_args = 1..)]
        pcaps: Vec<PathBuf>,
        /// Signatures to compare with (e.g. the file before the change).
        #[arg(long, value_name = "OTHER_PATH")]
        baseline: Option<PathBuf>,
        /// Sensor configuration file (protected networks, leak limits).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHAOBING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => init_logging(args.log_format, "info"),
        _ => init_logging(LogFormat::Text, "warn"),
    }
    let result = match cli.command {
        Command::Run(args) => run_live(args),
        Command::Replay(args) => replay(args),
        Command::Deliver(args) => deliver(args),
        Command::Signatures(SignaturesCommand::Check { path }) => check_signatures(&path),
        Command::Signatures(SignaturesCommand::Test {
            path,
            pcaps,
            baseline,
            config,
        }) => test_signatures(&path, &pcaps, baseline.as_deref(), config.as_deref()),
    };
    if let Err(e) = result {
        eprintln!("shaobing-sensor: error: {e:#}");
        std::process::exit(1);
    }
}

fn load_signatures(path: Option<&Path>) -> Result<SignatureSet> {
    match path {
        Some(p) => SignatureSet::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => SignatureSet::default_pack()
            .map_err(|e| anyhow::anyhow!("built-in signature pack: {e}")),
    }
}

fn check_signatures(path: &Path) -> Result<()> {
    let set = load_signatures(Some(path))?;
    let n = set.signatures().len();
    let enabled = set.signatures().iter().filter(|s| s.enabled).count();
    println!("{}: OK, {n} signatures ({enabled} enabled)", path.display());
    Ok(())
}

fn test_signatures(
    path: &Path,
    pcaps: &[PathBuf],
    baseline: Option<&Path>,
    config: Option<&Path>,
) -> Result<()> {
    let settings = match config {
        Some(p) => Config::from_file(p)?.validate(&p.display().to_string())?,
        None => Config::defaults().validate("<defaults>")?,
    };
    let sigs = Arc::new(load_signatures(Some(path))?);
    let base = match baseline {
        Some(b) => Some(Arc::new(
            load_signatures(Some(b)).with_context(|| format!("baseline {}", b.display()))?,
        )),
        None => None,
    };
    let run = shaobing_sensor::sigtest::run(&settings, sigs, pcaps)?;
    let base_run = match (&base, baseline) {
        (Some(set), Some(p)) => Some((
            p,
            shaobing_sensor::sigtest::run(&settings, Arc::clone(set), pcaps)?,
        )),
        _ => None,
    };
    let text =
        shaobing_sensor::sigtest::report(path, &run, base_run.as_ref().map(|(p, r)| (*p, r)));
    print!("{text}");
    Ok(())
}

/// A forwarder through the spool in `spool`, capped at `max_mib` MiB.
fn forwarder(
    endpoint: Endpoint,
    fallbacks: Vec<Endpoint>,
    batch_size: usize,
    spool: &Path,
    max_mib: u64,
) -> Result<Forwarder> {
    Forwarder::start(ForwarderConfig {
        endpoint,
        fallbacks,
        batch_size,
        max_delay: Duration::from_millis(200),
        queue: 65_536,
        spool: SpoolConfig {
            max_bytes: max_mib << 20,
            ..SpoolConfig::new(spool)
        },
    })
    .with_context(|| format!("opening spool {}", spool.display()))
}

/// Prints a forwarder's report; Ok when nothing is left behind.
fn report_forwarder(r: &ForwarderReport, spool: &Path) {
    eprintln!(
        "shaobing-sensor: delivered {} incident(s) to the collector; rejected {}; spool: {} bytes left, {} dropped (full), {} corrupt record(s) skipped",
        r.delivered, r.rejected, r.spool_depth_bytes, r.spool.dropped_full, r.spool.corrupt_records
    );
    if r.spool_depth_bytes > 0 {
        eprintln!(
            "shaobing-sensor: warning: incidents remain spooled in {} ({}); run `shaobing-sensor deliver --spool {}` or replay again with the same --spool when the collector is back",
            spool.display(),
            r.last_error.as_deref().unwrap_or("collector unreachable"),
            spool.display()
        );
    }
}

fn deliver(args: DeliverArgs) -> Result<()> {
    let (url, fallback_urls) = split_urls(&args.collector)?;
    let mut c = CollectorConfig {
        fallback_urls,
        ..CollectorConfig::new(&url, &args.token)
    };
    args.tls.over(&mut c);
    // `deliver` appends nothing, so the cap does not matter here.
    let fwd = forwarder(
        endpoint(&c)?,
        fallbacks(&c)?,
        c.batch_size,
        &args.spool,
        u64::MAX >> 20,
    )?;
    let r = fwd
        .shutdown(Duration::from_secs(args.grace_secs))
        .context("delivering the spool")?;
    report_forwarder(&r, &args.spool);
    if r.spool_depth_bytes > 0 {
        bail!("the spool is not empty");
    }
    Ok(())
}

fn run_live(args: RunArgs) -> Result<()> {
    use shaobing_sensor::live::{self, Control, LiveRun, SignalThread};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::Ordering;

    let meta = std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read config {}", args.config.display()))?;
    if meta.permissions().mode() & 0o002 != 0 {
        bail!(
            "{}: refusing a world-writable config (anyone could redirect this sensor); chmod o-w it",
            args.config.display()
        );
    }
    let origin = args.config.display().to_string();
    let mut settings = Config::from_file(&args.config)?.validate(&origin)?;
    args.remote.apply(&mut settings)?;
    let interface = args
        .interface
        .clone()
        .or_else(|| settings.capture.interface.clone())
        .context("no interface: set [capture] interface or pass --interface")?;
    let sigs = Arc::new(load_signatures(args.signatures.as_deref())?);
    let handles = shaobing_sensor::capture::live::open(&interface, &settings.capture)?;
    tracing::info!(interface = %interface, workers = handles.len(), "capture open");

    // TLS files are read here, once, before privileges are dropped (a
    // client key is often readable by root only).
    let remote = settings.collector.as_ref().map(endpoint).transpose()?;
    let output = match (&settings.collector, &remote) {
        (Some(c), Some(remote)) => {
            let spool = &settings.run.spool_dir;
            std::fs::create_dir_all(spool)
                .with_context(|| format!("creating spool {}", spool.display()))?;
            if let Some(user) = &settings.run.user {
                privileges::chown_to(spool, user)?;
            }
            live::Output::Forward(forwarder(
                remote.clone(),
                fallbacks(c)?,
                c.batch_size,
                spool,
                settings.run.spool_max_mib,
            )?)
        }
        _ => live::Output::Stdout(std::sync::Mutex::new(std::io::stdout())),
    };
    if let Some(user) = &settings.run.user {
        privileges::drop_to(user)?;
        tracing::info!(user = %user, "dropped privileges");
    }

    let control = Arc::new(Control::new(sigs));
    let signals = SignalThread::spawn(Arc::clone(&control), args.signatures.clone())
        .context("installing signal handlers")?;

    let on_heartbeat: Option<live::HeartbeatHook> = remote.map(|remote| {
        let mut client = Client::new(&remote, Duration::ZERO);
        Box::new(move |hb: &shaobing_wire::Heartbeat| {
            if let Err(e) = client.post_heartbeat(hb) {
                tracing::warn!(error = ?e, "heartbeat not delivered");
            }
        }) as live::HeartbeatHook
    });
    let report = live::run(
        handles,
        LiveRun {
            settings: &settings,
            control: &control,
            output,
            grace: Duration::from_secs(settings.run.grace_secs),
            heartbeat: Duration::from_secs(settings.run.heartbeat_secs),
            on_heartbeat,
            signatures: args.signatures.clone(),
        },
    );
    signals.close();
    let s = &control.stats;
    eprintln!(
        "shaobing-sensor: stopped: {} packets, {} bytes, {} kernel drops, {} incidents, {} volumetric records dropped",
        s.packets(),
        s.bytes(),
        s.kernel_drops(),
        s.incidents.load(Ordering::Relaxed),
        s.volumetric_records_dropped.load(Ordering::Relaxed),
    );
    let join = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "shaobing-sensor: decode: counters: {}",
        join(&s.decode_counters())
    );
    let hits = s.signature_hits();
    let counters = s.leak_counters();
    if !counters.is_empty() {
        eprintln!(
            "shaobing-sensor: leak: incidents by signature: {}; counters: {}",
            join(&hits),
            join(&counters)
        );
    }
    if let Some(r) = report {
        report_forwarder(&r, &settings.run.spool_dir);
    }
    Ok(())
}

/// Dropping root after the capture handles are open.
mod privileges {
    use anyhow::{Context, Result};
    use nix::unistd::{chown, setgid, setgroups, setuid, User};
    use std::path::Path;

    fn lookup(name: &str) -> Result<User> {
        User::from_name(name)
            .with_context(|| format!("looking up user {name}"))?
            .with_context(|| format!("no such user {name} ([run] user)"))
    }

    /// Gives `dir` to `user` so the spool stays writable after the drop.
    pub fn chown_to(dir: &Path, user: &str) -> Result<()> {
        let u = lookup(user)?;
        chown(dir, Some(u.uid), Some(u.gid))
            .with_context(|| format!("chown {} to {user}", dir.display()))
    }

    /// Switches to `user` and its primary group, for good.
    pub fn drop_to(user: &str) -> Result<()> {
        let u = lookup(user)?;
        setgroups(&[u.gid]).context("setgroups")?;
        setgid(u.gid).context("setgid")?;
        setuid(u.uid).context("setuid")?;
        if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
            anyhow::bail!("privilege drop to {user} did not stick");
        }
        Ok(())
    }
}

/// Where incidents go during a replay.
enum Output {
    Stdout {
        out: BufWriter<std::io::Stdout>,
        error: Option<std::io::Error>,
    },
    /// Through the durable spool (`--spool`).
    Spooled(Forwarder),
    Collector {
        client: Client,
        batch: Vec<Incident>,
        batch_size: usize,
        delivered: usize,
        undelivered: Vec<Incident>,
        error: Option<String>,
    },
}

impl Output {
    fn failed(&self) -> bool {
        match self {
            Output::Stdout { error, .. } => error.is_some(),
            Output::Collector { .. } | Output::Spooled(_) => false,
        }
    }

    fn flush_batch(&mut self) {
        if let Output::Collector {
            client,
            batch,
            delivered,
            undelivered,
            error,
            ..
        } = self
        {
            if batch.is_empty() {
                return;
            }
            let pending = std::mem::take(batch);
            if error.is_some() {
                // The collector already failed: keep everything for the user.
                undelivered.extend(pending);
                return;
            }
            match client.send(&pending) {
                Ok(n) => *delivered += n,
                Err(e) => {
                    *error = Some(e.to_string());
                    undelivered.extend(pending);
                }
            }
        }
    }
}

impl IncidentSink for Output {
    fn emit(&mut self, incident: Incident) {
        match self {
            Output::Stdout { out, error } => {
                if error.is_some() {
                    return;
                }
                let r = serde_json::to_writer(&mut *out, &incident)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(e) = r {
                    *error = Some(e);
                }
            }
            Output::Spooled(fwd) => fwd.send(&incident),
            Output::Collector {
                batch, batch_size, ..
            } => {
                batch.push(incident);
                if batch.len() >= *batch_size {
                    self.flush_batch();
                }
            }
        }
    }
}

fn settings(args: &ReplayArgs) -> Result<Settings> {
    let (config, origin) = match &args.config {
        Some(p) => (Config::from_file(p)?, p.display().to_string()),
        None => (Config::defaults(), "<defaults>".to_string()),
    };
    let mut s = config.validate(&origin)?;
    args.remote.apply(&mut s)?;
    Ok(s)
}

fn replay(args: ReplayArgs) -> Result<()> {
    let settings = settings(&args)?;
    let sigs = Arc::new(load_signatures(args.signatures.as_deref())?);
    let mut replay = FileReplay::open(&args.pcaps)?;
    let mut pipeline = Pipeline::new(&settings, sigs, !args.no_detect);
    let mut output = match (&settings.collector, &args.spool) {
        (Some(c), Some(dir)) => Output::Spooled(forwarder(
            endpoint(c)?,
            fallbacks(c)?,
            c.batch_size,
            dir,
            settings.run.spool_max_mib,
        )?),
        (Some(c), None) => Output::Collector {
            client: Client::new(&endpoint(c)?, Duration::from_secs(c.retry_secs)),
            batch: Vec::new(),
            batch_size: c.batch_size,
            delivered: 0,
            undelivered: Vec::new(),
            error: None,
        },
        (None, _) => Output::Stdout {
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            error: None,
        },
    };
    let mut emitted = 0u64;
    let started = Instant::now();
    let mut counting = Counting {
        inner: &mut output,
        n: &mut emitted,
    };
    replay.for_each(|p| {
        pipeline.on_packet(p, &mut counting);
        if counting.inner.failed() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    pipeline.finish(&mut counting);
    let wall = started.elapsed();
    output.flush_batch();
    for w in replay.warnings() {
        eprintln!("shaobing-sensor: warning: {w}");
    }
    let c = pipeline.counters();
    let secs = wall.as_secs_f64().max(1e-9);
    eprintln!(
        "shaobing-sensor: replayed {} file(s): {} packets, {} bytes in {:.3} s ({:.0} packets/s, {:.3} Gbit/s); {} incidents; skipped: not_ip={} truncated={} malformed={} too_many_layers={}; decap: {}",
        args.pcaps.len(),
        c.packets,
        c.bytes,
        secs,
        c.packets as f64 / secs,
        c.bytes as f64 * 8.0 / secs / 1e9,
        emitted,
        c.not_ip,
        c.truncated,
        c.malformed,
        c.too_many_layers,
        c.tunnel_summary(),
    );
    if let Some(v) = pipeline.volumetric_stats() {
        tracing::info!(
            hosts = v.hosts,
            hosts_evicted = v.hosts_evicted,
            hosts_untracked = v.hosts_untracked,
            attacks = v.attacks_started,
            prefixes = v.prefixes,
            prefixes_evicted = v.prefixes_evicted,
            prefixes_untracked = v.prefixes_untracked,
            network_attacks = v.network_attacks_started,
            network_evidence_capped = v.network_evidence_capped,
            "volumetric detector"
        );
    }
    if let Some(l) = pipeline.leak_stats() {
        eprintln!("shaobing-sensor: {}", l.summary());
        tracing::info!(
            bytes_scanned = l.bytes_scanned,
            flows_evicted = l.flows_evicted,
            "leak detector"
        );
    }
    match output {
        Output::Spooled(fwd) => {
            let r = fwd
                .shutdown(Duration::from_secs(args.grace_secs))
                .context("forwarding incidents")?;
            if let Some(dir) = &args.spool {
                report_forwarder(&r, dir);
            }
            Ok(())
        }
        Output::Stdout { mut out, error } => {
            let r = match error {
                Some(e) => Err(e),
                None => out.flush(),
            };
            match r {
                Ok(()) => Ok(()),
                // Like `head` closing the pipe: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e).context("writing incidents to stdout"),
            }
        }
        Output::Collector {
            delivered,
            undelivered,
            error,
            ..
        } => {
            if let Some(e) = error {
                // Nothing is lost: what could not be delivered goes to stdout.
                let mut out = std::io::stdout().lock();
                for i in &undelivered {
                    serde_json::to_writer(&mut out, i)?;
                    out.write_all(b"\n")?;
                }
                bail!(
                    "{} incident(s) delivered, {} NOT delivered (printed to stdout as JSON lines): {e}",
                    delivered,
                    undelivered.len()
                );
            }
            eprintln!("shaobing-sensor: delivered {delivered} incident(s) to the collector");
            Ok(())
        }
    }
}

/// Counts incidents on their way to the output.
struct Counting<'a> {
    inner: &'a mut Output,
    n: &'a mut u64,
}

impl IncidentSink for Counting<'_> {
    fn emit(&mut self, incident: Incident) {
        *self.n += 1;
        self.inner.emit(incident);
    }
}
