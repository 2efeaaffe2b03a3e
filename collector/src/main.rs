//! `shaobing-collector`: see `--help` and `docs/collector.md`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use shaobing_collector::api::filter_from_params;
use shaobing_collector::query::{render_json_lines, render_summary, render_table, TimeBound};
use shaobing_collector::{auth, Config};
use shaobing_wire::Timestamp;

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
    /// Run the HTTP server: ingest (POST /api/v1/incidents, /api/v1/heartbeat),
    /// the analysts' API (GET /api/v1/incidents, /incidents/ID, /summary,
    /// /overview, /attacks/ID, /sensors, /mitigations, /metrics), the web
    /// console (/console/, login with an analyst token) and GET /healthz.
    ///
    /// Each request is answered 200 only after its incidents are stored in
    /// ClickHouse or fsynced to the write-ahead log; 503 means "retry later". Stops gracefully on SIGTERM or
    /// SIGINT (in-flight requests finish, pending rows are flushed). Run
    /// `migrate` first. With [[alerts.rules]] it routes acknowledged
    /// incidents to webhooks, syslog and commands; with [mitigation] it
    /// announces RTBH/FlowSpec routes through gobgpd (docs/collector.md).
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
    /// Reads ClickHouse directly with the config's credentials (no analyst
    /// token needed). Times are capture times from the sensor. Incidents
    /// from a replayed capture carry the capture's timestamps, which can be
    /// far in the past or future: use `--since all` to see them. When more
    /// incidents match than --limit, the cursor of the next (older) page is
    /// printed on stderr.
    Query {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print at most this many incidents: the most recent ones in the
        /// time window (1..=10000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Continue after a previous page (the cursor it printed).
        #[arg(long)]
        cursor: Option<String>,
        /// Print one incident per line as wire-format JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print counts by kind, vector, signature and severity, the top
    /// targeted hosts and leaking sources, and incidents per hour.
    Summary {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// Length of the top lists.
        #[arg(long, default_value_t = 10)]
        top: u64,
        /// Print the summary as one JSON object (as the API returns it).
        #[arg(long)]
        json: bool,
    },
    /// Print the mitigation audit log (announce, withdraw, refused), oldest
    /// first.
    ///
    /// Reads the `mitigation_audit` table directly with the config's
    /// credentials. The active announcements live in the running collector:
    /// list and withdraw them with `GET /api/v1/mitigations` and
    /// `POST /api/v1/mitigations/ID/withdraw` (an admin analyst's token).
    Mitigations {
        /// Config file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The newest this many rows (1..=10000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// One JSON object per line instead of a table.
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

/// The filters shared by `query` and `summary` (same names and syntax as
/// the HTTP API's query parameters).
#[derive(Args)]
struct FilterArgs {
    /// Lower bound (inclusive) on capture time: a duration before now
    /// (30s, 15m, 1h, 7d, 2w), an RFC 3339 time (2026-11-29T04:00:00Z), or
    /// `all`. Default: 1h for query, 7d for summary.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Upper bound (exclusive) on capture time: same forms as --since.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// volumetric, leak or sensor_health.
    #[arg(long)]
    kind: Option<String>,
    /// attack_started, attack_update, attack_ended, leak or capture_loss.
    #[arg(long)]
    event: Option<String>,
    /// Attack vector, e.g. syn_flood.
    #[arg(long)]
    vector: Option<String>,
    /// Signature id, e.g. classification-marking.
    #[arg(long)]
    signature: Option<String>,
    /// Comma-separated severities, e.g. high,critical.
    #[arg(long)]
    severity: Option<String>,
    /// Sensor name.
    #[arg(long)]
    sensor: Option<String>,
    /// An address matching the source or the destination.
    #[arg(long)]
    ip: Option<String>,
    /// A flow's Community ID, e.g. 1:LQU9qZlK+B5F3KDmev6m5PMibrg=.
    #[arg(long, value_name = "ID")]
    community_id: Option<String>,
    /// Network-level attacks on this prefix (dst_net), e.g. 198.51.100.0/24.
    #[arg(long, value_name = "PREFIX")]
    dst_net: Option<String>,
}

impl FilterArgs {
    fn params(&self) -> Vec<(&'static str, String)> {
        [
            ("since", &self.since),
            ("until", &self.until),
            ("kind", &self.kind),
            ("event", &self.event),
            ("vector", &self.vector),
            ("signature", &self.signature),
            ("severity", &self.severity),
            ("sensor", &self.sensor),
            ("ip", &self.ip),
            ("community_id", &self.community_id),
            ("dst_net", &self.dst_net),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n, v)))
        .collect()
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
            filter,
            limit,
            cursor,
            json,
        } => {
            let config = load(&config)?;
            let mut params = filter.params();
            params.push(("limit", limit.to_string()));
            if let Some(c) = cursor {
                params.push(("cursor", c));
            }
            let one_hour = TimeBound::Ago(std::time::Duration::from_secs(3600));
            let (filter, _) = filter_from_params(&params, Timestamp::now(), one_hour)
                .map_err(anyhow::Error::msg)?;
            let page = shaobing_collector::fetch_page(&config, &filter)
                .await
                .context("querying incidents")?;
            let mut rows = page.rows;
            rows.reverse();
            let text = if json {
                render_json_lines(&rows)
            } else {
                render_table(&rows)
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing output")?;
            out.flush().context("writing output")?;
            if let Some(c) = page.next_cursor {
                eprintln!("more incidents match: --cursor {}", c.encode());
            }
            Ok(())
        }
        Command::Summary {
            config,
            filter,
            top,
            json,
        } => {
            let config = load(&config)?;
            let mut params = filter.params();
            params.push(("top", top.to_string()));
            let week = TimeBound::Ago(std::time::Duration::from_secs(7 * 86_400));
            let (filter, top) =
                filter_from_params(&params, Timestamp::now(), week).map_err(anyhow::Error::msg)?;
            let summary = shaobing_collector::fetch_summary(&config, &filter, top)
                .await
                .context("querying the summary")?;
            let text = if json {
                let mut t = serde_json::to_string(&summary).context("encoding the summary")?;
                t.push('\n');
                t
            } else {
                render_summary(&summary)
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing output")?;
            out.flush().context("writing output")?;
            Ok(())
        }
        Command::Mitigations {
            config,
            limit,
            json,
        } => {
            let config = load(&config)?;
            if !(1..=10_000).contains(&limit) {
                anyhow::bail!("--limit must be in 1..=10000");
            }
            let rows = shaobing_collector::mitigation::audit::recent(
                &shaobing_collector::store::client(&config.clickhouse),
                &config.clickhouse.database,
                std::time::Duration::from_millis(config.clickhouse.timeout_ms),
                limit,
            )
            .await
            .context("reading the mitigation audit")?;
            let text = if json {
                let mut t = String::new();
                for r in rows.iter().rev() {
                    t.push_str(&serde_json::to_string(r).context("encoding a row")?);
                    t.push('\n');
                }
                t
            } else {
                shaobing_collector::mitigation::audit::render_table(&rows)
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
