//! `shaobing-collector`: see `--help` and `docs/collector.md`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use shaobing_collector::query::{render_json_lines, render_table, QueryFilter, TimeBound};
use shaobing_collector::{auth, Config};
use shaobing_wire::{Kind, Timestamp};

/// Shaobing collector: receives incidents from sensors, stores them in
/// ClickHouse, answers analysts' queries.
#[derive(Parser)]
#[command(name = "shaobing-collector", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP ingest server (POST /api/v1/incidents, GET /healthz).
    ///
    /// Each request is answered 200 only after its incidents are stored in
    /// ClickHouse; 503 means "retry later". Stops gracefully on SIGTERM or
    /// SIGINT (in-flight requests finish, pending rows are flushed). Run
    /// `migrate` first.
    Serve {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Create the database and tables (idempotent).
    ///
    /// Creates the configured database, then applies every schema migration
    /// not yet recorded in `schema_migrations`. Safe to run repeatedly.
    Migrate {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print stored incidents (deduplicated), oldest first.
    ///
    /// Times are capture times from the sensor. Incidents from a replayed
    /// capture carry the capture's timestamps, which can be far in the past
    /// or future: use `--since all` to see them.
    Query {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Lower bound (inclusive) on capture time: a duration before now
        /// (30s, 15m, 1h, 7d, 2w), an RFC 3339 time
        /// (2026-11-29T04:00:00Z), or `all` for no lower bound.
        #[arg(long, default_value = "1h", value_name = "WHEN")]
        since: TimeBound,
        /// Upper bound (exclusive) on capture time: same forms as --since
        /// (`now`, a duration before now, RFC 3339); `all` or absent for none.
        #[arg(long, value_name = "WHEN")]
        until: Option<TimeBound>,
        /// Only incidents of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Print at most this many incidents: the most recent ones in the
        /// time window.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print one incident per line as wire-format JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the SHA-256 hex of a sensor token (for `token_sha256`).
    ///
    /// Reads the token from stdin (first line) when TOKEN is absent or `-`,
    /// which keeps it out of the shell history.
    HashToken {
        /// The token.
        token: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Volumetric,
    Leak,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Volumetric => Kind::Volumetric,
            KindArg::Leak => Kind::Leak,
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("loading config {}", path.display()))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`| head`) is not an error worth reporting.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::HashToken { token } = &cli.command {
        let token = match token.as_deref() {
            Some(t) if t != "-" => t.to_string(),
            _ => {
                let mut s = String::new();
                std::io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut s)
                    .context("reading token from stdin")?;
                s.lines().next().unwrap_or("").trim().to_string()
            }
        };
        if token.is_empty() {
            anyhow::bail!("empty token");
        }
        println!("{}", auth::hash_token(&token));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio runtime")?;
    rt.block_on(run_async(cli))
}

async fn run_async(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = load(&config)?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            shaobing_collector::serve(config, listener, shutdown_signal()).await
        }
        Command::Migrate { config } => {
            let config = load(&config)?;
            let applied = shaobing_collector::migrate(&config)
                .await
                .context("migrating schema")?;
            if applied.is_empty() {
                eprintln!("schema up to date");
            } else {
                eprintln!("applied migrations {applied:?}");
            }
            Ok(())
        }
        Command::Query {
            config,
            since,
            until,
            kind,
            limit,
            json,
        } => {
            let config = load(&config)?;
            let now = Timestamp::now();
            let filter = QueryFilter {
                since: since.resolve(now),
                until: until.and_then(|u| u.resolve(now)),
                kind: kind.map(Kind::from),
                limit,
            };
            let rows = shaobing_collector::fetch_incidents(&config, &filter)
                .await
                .context("querying incidents")?;
            let text = if json {
                render_json_lines(&rows)
            } else {
                render_table(&rows)
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing output")?;
            out.flush().context("writing output")?;
            Ok(())
        }
        Command::HashToken { .. } => Ok(()),
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
