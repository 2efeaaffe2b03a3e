//! The HTTP/1.1 connection loop (plain TCP or TLS), with the two limits
//! `axum::serve` does not offer:
//!
//! * **header-read timeout** (`limits.header_read_timeout_ms`): a client
//!   must send a complete request head within this time after connecting,
//!   and again after each response on a kept-alive connection; otherwise
//!   the connection is closed. Silent or trickling connections therefore
//!   cost a slot for at most this long. Slow bodies are bounded by the
//!   sensors' own request timeouts and `limits.max_body_bytes`.
//! * **connection cap** (`limits.max_connections`): at most this many
//!   connections are open at once. When all slots are taken the server
//!   stops accepting: new clients wait in the kernel's listen backlog
//!   until a connection closes (at the latest when its header-read timeout
//!   expires), so `/healthz` and sensors get through after a delay instead
//!   of the process running out of file descriptors. Each time the cap is
//!   reached counts in `shaobing_collector_connections_capped_total`; open
//!   connections are `shaobing_collector_connections_open`.
//!
//! Shutdown: stop accepting, let every open connection finish its current
//! request (hyper's graceful shutdown closes idle ones at once), then
//! return.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::server::TlsStream;
use tower::ServiceExt as _;

use crate::metrics::Metrics;
use crate::tls::{PeerInfo, TlsListener};

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a complete request head.
    pub header_read_timeout: Duration,
}

/// A listener whose connections tell what the handlers may know of the
/// client.
pub trait Accept: Send + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Waits for the next connection (errors are handled inside).
    fn accept(&mut self) -> impl Future<Output = (Self::Io, SocketAddr)> + Send;
    /// What the handlers learn about it.
    fn peer(io: &Self::Io, addr: SocketAddr) -> PeerInfo;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        axum::serve::Listener::accept(self).await
    }
    fn peer(_io: &TcpStream, addr: SocketAddr) -> PeerInfo {
        PeerInfo {
            addr: Some(addr),
            ..PeerInfo::default()
        }
    }
}

impl Accept for TlsListener {
    type Io = TlsStream<TcpStream>;
    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        axum::serve::Listener::accept(self).await
    }
    fn peer(io: &Self::Io, addr: SocketAddr) -> PeerInfo {
        PeerInfo::of_tls(io, addr)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains the
/// open connections (see the module docs).
pub async fn run<L: Accept>(
    mut listener: L,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; `closed()` on the sender
    // completes when all of them are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                metrics.connections_capped.fetch_add(1, Relaxed);
                tracing::warn!(
                    event = "connection_cap_reached",
                    max_connections = limits.max_connections,
                    "all connection slots taken: new clients wait until one closes"
                );
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let peer = L::peer(&io, addr);
        let service = app
            .clone()
            .map_request(move |req: axum::http::Request<Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer.clone()));
                req
            });
        let service = TowerToHyperService::new(service);
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        metrics.connections_open.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let mut draining = *stop.borrow();
            if draining {
                conn.as_mut().graceful_shutdown();
            }
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%addr, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    changed = stop.changed(), if !draining => {
                        draining = true;
                        let _ = changed;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            metrics.connections_open.fetch_sub(1, Relaxed);
            drop(permit);
            drop(stop);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}
