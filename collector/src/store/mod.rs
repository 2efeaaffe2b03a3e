//! ClickHouse storage: the client, the schema and its migrations, the row
//! types, the batching writer with its write-ahead log.

pub mod batch;
pub mod cluster;
pub mod rekey;
pub mod row;
pub mod schema;
pub mod wal;

use std::time::Duration;

use clickhouse::Client;

use crate::config::ClickHouseConfig;

/// A ClickHouse operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server answered with an error or could not be reached.
    #[error("{what}: {source}")]
    ClickHouse {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// A check of the stored data failed (the message says which and what
    /// to do).
    #[error("{0}")]
    Check(String),
    /// The operation took longer than `clickhouse.timeout_ms`.
    #[error("{what}: timed out after {timeout:?}")]
    Timeout {
        /// What was being done.
        what: String,
        /// The limit.
        timeout: Duration,
    },
}

impl StoreError {
    pub(crate) fn ch(
        what: impl Into<String>,
    ) -> impl FnOnce(clickhouse::error::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::ClickHouse { what, source }
    }

    /// The ClickHouse error code the server answered with (`Code: N`), if
    /// it answered with one.
    pub fn server_code(&self) -> Option<u32> {
        match self {
            StoreError::ClickHouse {
                source: clickhouse::error::Error::BadResponse(msg),
                ..
            } => batch::error_code(msg),
            _ => None,
        }
    }
}

/// Runs `fut` with the configured timeout.
pub(crate) async fn with_timeout<T>(
    what: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout {
            what: what.to_string(),
            timeout,
        }),
    }
}

/// Runs one statement that returns nothing (DDL, `INSERT ... SELECT`),
/// bounded by `timeout`.
pub(crate) async fn exec(
    client: &Client,
    timeout: Duration,
    what: &str,
    sql: &str,
) -> Result<(), StoreError> {
    with_timeout(what, timeout, async {
        client
            .query(sql)
            .execute()
            .await
            .map_err(StoreError::ch(what))
    })
    .await
}

/// A client for the configured server, without a default database (every
/// statement names `database.table`), validation off (required on 18.16).
pub fn client(config: &ClickHouseConfig) -> Client {
    let mut c = Client::default()
        .with_url(config.url.as_str())
        .with_user(config.user.as_str())
        .with_validation(false);
    if config.cluster.is_some() {
        // Through a Distributed table, acknowledge only what every shard
        // stored (see `cluster`).
        c = c.with_setting("insert_distributed_sync", "1");
    }
    if config.compression == crate::config::Compression::None {
        c = c.with_compression(clickhouse::Compression::None);
    }
    if !config.password.is_empty() {
        c = c.with_password(config.password.as_str());
    }
    c
}
