//! Shaobing collector: receives incidents from sensors over HTTP, stores
//! them in ClickHouse, and answers analysts' queries.
//!
//! * [`config`]: the TOML config ([`Config`]), validated once.
//! * [`auth`]: bearer tokens, stored as SHA-256 hashes.
//! * [`ingest`]: the HTTP API (`POST /api/v1/incidents`, `GET /healthz`).
//! * [`store`]: the ClickHouse schema and migrations, the row type and the
//!   batching writer that acknowledges a request only after its rows are
//!   stored.
//! * [`query`]: the reads behind `shaobing-collector query`.
//!
//! [`serve`] runs the whole server on a listener the caller bound, until a
//! shutdown future completes; tests drive it in-process. See
//! `docs/collector.md` for the operator's view.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod ingest;
pub mod query;
pub mod store;

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
/// acknowledgement), flushes the writer and returns.
///
/// The schema must exist (`shaobing-collector migrate`).
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate().context("invalid config")?;
    let tokens = auth::Tokens::new(&config.sensors);
    if tokens.is_empty() {
        anyhow::bail!("no [[sensors]] configured: every request would be rejected");
    }
    let target = store::batch::WriterTarget {
        client: store::client(&config.clickhouse),
        table: format!("`{}`.incidents", config.clickhouse.database),
        timeout: Duration::from_millis(config.clickhouse.timeout_ms),
    };
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (writer, writer_task) = store::batch::spawn_writer(target, &config.batch, drain_rx);
    let app = ingest::router(ingest::AppState {
        tokens: Arc::new(tokens),
        limits: config.limits.clone(),
        writer,
    });
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, sensors = config.sensors.len(), "collector listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            // In-flight requests wait for their acknowledgement: flush now
            // rather than after `batch.max_delay_ms`.
            let _ = drain_tx.send(true);
        })
        .await
        .context("HTTP server failed")?;
    // The router (and with it every writer handle) is dropped now, so the
    // writer flushes what is pending and ends.
    match tokio::time::timeout(WRITER_GRACE, writer_task).await {
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
    store::schema::migrate(
        &client,
        &config.clickhouse.database,
        Duration::from_millis(config.clickhouse.timeout_ms),
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
