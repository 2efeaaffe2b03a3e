//! Shaobing collector: receives incidents from sensors over HTTP, stores
//! them in ClickHouse, and answers analysts' queries.
//!
//! * [`config`]: the TOML config ([`Config`]), validated once.
//! * [`auth`]: bearer tokens (sensor and analyst roles), stored as SHA-256
//!   hashes.
//! * [`ingest`]: the HTTP router and the ingest endpoints
//!   (`POST /api/v1/incidents`, `POST /api/v1/heartbeat`, `GET /healthz`).
//! * [`api`]: the analysts' endpoints (`GET /api/v1/incidents`, `summary`,
//!   `attacks/{id}`, `/metrics`).
//! * [`store`]: the ClickHouse schema and migrations, the row types, the
//!   batching writer that acknowledges a request only after its rows are
//!   stored or in the write-ahead log ([`store::wal`]), and WAL replay.
//! * [`query`]: the reads behind the API and `shaobing-collector query` /
//!   `summary`.
//! * [`retention`]: dropping day partitions older than the retention.
//! * [`metrics`]: the Prometheus counters.
//! * [`tls`]: optional HTTPS (rustls).
//! * [`console`]: the web console, its sessions and the API of its views.
//! * [`mitigation`]: RTBH / FlowSpec announcements through GoBGP, with
//!   their audit table and API.
//! * [`alerts`]: alert routing to webhooks, syslog and commands, fed after
//!   acknowledgement through [`alerts::hub`].
//!
//! [`serve`] runs the whole server on a listener the caller bound, until a
//! shutdown future completes; tests drive it in-process. See
//! `docs/collector.md` for the operator's view.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cert;
pub mod config;
pub mod console;
pub mod ingest;
pub mod metrics;
pub mod mitigation;
pub mod query;
pub mod retention;
pub mod server;
pub mod store;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use config::{Config, ConfigError};

/// How long [`serve`] waits for the writer to flush after the HTTP server
/// has stopped.
pub const WRITER_GRACE: Duration = Duration::from_secs(30);

/// Runs the collector on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (each still gets its
/// acknowledgement), flushes the writer and returns. Incidents still in the
/// WAL stay there for the next start.
///
/// The schema must exist (`shaobing-collector migrate`, or
/// `clickhouse.migrate_on_start`).
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate().context("invalid config")?;
    let tokens = auth::Tokens::with_analysts(&config.sensors, &config.analysts);
    if tokens.sensors() == 0 {
        anyhow::bail!("no [[sensors]] configured: every request would be rejected");
    }
    let tls = match &config.tls {
        Some(t) => Some(
            tls::server_config(&t.cert, &t.key, t.client_ca.as_deref()).context("loading [tls]")?,
        ),
        None => None,
    };
    if config.clickhouse.migrate_on_start {
        let applied = migrate(&config)
            .await
            .context("migrating schema at start")?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations at start");
        }
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let client = store::client(&config.clickhouse);
    let timeout = Duration::from_millis(config.clickhouse.timeout_ms);
    let wal = match &config.wal {
        Some(w) => Some(Arc::new(
            store::wal::Wal::open(w, metrics.clone()).context("opening the write-ahead log")?,
        )),
        None => None,
    };
    let sink = store::batch::Sink {
        target: store::batch::WriterTarget {
            client: client.clone(),
            table: format!("`{}`.incidents", config.clickhouse.database),
            timeout,
        },
        retry: config.retry.clone(),
        wal,
        dead_letter: Arc::new(store::batch::DeadLetter::new(
            config.dead_letter.path.clone(),
        )),
        metrics: metrics.clone(),
        wal_appended: Arc::new(tokio::sync::Notify::new()),
    };
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (writer, writer_task) = store::batch::spawn_writer(sink.clone(), &config.batch, drain_rx);
    let replayer = tokio::spawn(store::batch::run_replayer(
        sink,
        config.batch.max_rows,
        stop_rx.clone(),
    ));
    let retention = tokio::spawn(retention::run(
        client.clone(),
        config.clickhouse.database.clone(),
        config.clickhouse.cluster.clone(),
        timeout,
        config.retention.clone(),
        metrics.clone(),
        stop_rx,
    ));
    let mut hub = alerts::hub::Hub::default();
    if let Some((tx, alert_metrics)) =
        alerts::start(&config.alerts).context("starting alert routing")?
    {
        hub.add("alerts", alerts::hub::Wants::All, tx);
        metrics.add_section(alert_metrics);
    }
    let mitigation = mitigation::start(
        &config.mitigation,
        mitigation::AuditSink {
            client: client.clone(),
            database: config.clickhouse.database.clone(),
            timeout,
        },
    );
    let mitigation = match mitigation {
        Some((tx, handle, m)) => {
            hub.add("mitigation", alerts::hub::Wants::Volumetric, tx);
            metrics.add_section(m);
            Some(handle)
        }
        None => None,
    };
    let hub = Arc::new(hub);
    metrics.add_section(hub.clone());
    let server_metrics = metrics.clone();
    let app = ingest::router(ingest::AppState {
        events: (!hub.is_empty()).then_some(hub),
        mitigation,
        tokens: Arc::new(tokens),
        limits: config.limits.clone(),
        writer,
        metrics,
        client,
        database: Arc::from(config.clickhouse.database.as_str()),
        timeout,
        require_client_cert: config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        sessions: Arc::new(console::session::Sessions::new(
            &config.console,
            config.tls.is_some(),
        )),
        stale_after: Duration::from_secs(config.console.stale_after_s),
    });
    let addr = listener.local_addr().ok();
    tracing::info!(
        ?addr,
        sensors = config.sensors.len(),
        analysts = config.analysts.len(),
        wal = config.wal.is_some(),
        tls = tls.is_some(),
        "collector listening"
    );
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        // In-flight requests wait for their acknowledgement: flush now
        // rather than after `batch.max_delay_ms`.
        let _ = drain_tx.send(true);
    };
    let conn_limits = server::ConnLimits {
        max_connections: config.limits.max_connections,
        header_read_timeout: Duration::from_millis(config.limits.header_read_timeout_ms),
    };
    match tls {
        Some(cfg) => {
            server::run(
                tls::TlsListener::new(listener, cfg),
                app,
                conn_limits,
                server_metrics,
                graceful,
            )
            .await
        }
        None => server::run(listener, app, conn_limits, server_metrics, graceful).await,
    }
    // The router (and with it every writer handle) is dropped now, so the
    // writer flushes what is pending and ends.
    let writer_result = tokio::time::timeout(WRITER_GRACE, writer_task).await;
    let _ = stop_tx.send(true);
    for (name, task) in [("replayer", replayer), ("retention", retention)] {
        if tokio::time::timeout(WRITER_GRACE, task).await.is_err() {
            tracing::warn!(task = name, "task did not stop within the grace period");
        }
    }
    match writer_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("writer task failed: {e}"),
        Err(_) => anyhow::bail!("writer did not finish within {WRITER_GRACE:?}"),
    }
    tracing::info!("collector stopped");
    Ok(())
}

/// Creates the database and applies pending migrations; returns the
/// versions applied now (empty when the schema was up to date).
pub async fn migrate(config: &Config) -> Result<Vec<u32>, store::StoreError> {
    let client = store::client(&config.clickhouse);
    store::schema::migrate_up_to(
        &client,
        &config.clickhouse.database,
        config.clickhouse.cluster.as_deref(),
        Duration::from_millis(config.clickhouse.timeout_ms),
        u32::MAX,
    )
    .await
}

/// Reads the summary for `filter` (see [`query::fetch_summary`]).
pub async fn fetch_summary(
    config: &Config,
    filter: &query::QueryFilter,
    top: u64,
) -> Result<query::Summary, store::StoreError> {
    let client = store::client(&config.clickhouse);
    query::fetch_summary(
        &client,
        &config.clickhouse.database,
        Duration::from_millis(config.clickhouse.timeout_ms),
        filter,
        top,
    )
    .await
}

/// Reads one page of incidents, newest first (see [`query::fetch_page`]).
pub async fn fetch_page(
    config: &Config,
    filter: &query::QueryFilter,
) -> Result<query::Page, store::StoreError> {
    let client = store::client(&config.clickhouse);
    query::fetch_page(
        &client,
        &config.clickhouse.database,
        Duration::from_millis(config.clickhouse.timeout_ms),
        filter,
    )
    .await
}

/// Reads incidents for `filter` (see [`query::fetch_incidents`]).
pub async fn fetch_incidents(
    config: &Config,
    filter: &query::QueryFilter,
) -> Result<Vec<store::row::IncidentRow>, store::StoreError> {
    let client = store::client(&config.clickhouse);
    query::fetch_incidents(
        &client,
        &config.clickhouse.database,
        Duration::from_millis(config.clickhouse.timeout_ms),
        filter,
    )
    .await
}
