//! Optional TLS for `serve` (rustls with the `ring` provider): a listener
//! that accepts TCP connections and completes TLS handshakes off the accept
//! path.
//!
//! Handshakes run in their own tasks, at most [`MAX_PENDING_HANDSHAKES`] at
//! once (full policy: a new connection is closed at once and counted in the
//! log) and each at most [`HANDSHAKE_TIMEOUT`], so slow or silent clients
//! cannot stall accepting others. Only HTTP/1.1 is offered (ALPN).
//! [`PeerInfo`] tells the handlers whether the client presented a verified
//! certificate (`tls.client_ca`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// The certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("tls: cannot read {what} from {path}: {message}")]
    Pem {
        /// `certificate chain`, `private key` or `client CA`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The client-certificate verifier could not be built.
    #[error("tls: invalid client_ca: {0}")]
    Verifier(String),
    /// rustls refused the certificate/key pair.
    #[error("tls: invalid certificate or key: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// What the handlers learn about a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The client presented a certificate that verified against
    /// `tls.client_ca` (always false without TLS or without `client_ca`).
    pub client_cert: bool,
    /// That certificate's subject CNs and DNS subject-alternative names
    /// ([`crate::cert::cert_names`]; empty when it has none or cannot be
    /// read).
    pub client_names: Arc<[String]>,
    /// The client's address (`None` where the listener does not tell).
    pub addr: Option<std::net::SocketAddr>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        PeerInfo::of_tls(stream.io(), *stream.remote_addr())
    }
}

impl PeerInfo {
    /// What a TLS connection tells about its client.
    pub fn of_tls(io: &TlsStream<TcpStream>, addr: SocketAddr) -> PeerInfo {
        let leaf = io.get_ref().1.peer_certificates().and_then(|c| c.first());
        let client_names = match leaf.map(|c| crate::cert::cert_names(c.as_ref())) {
            Some(Ok(names)) => names,
            Some(Err(e)) => {
                tracing::info!(event = "client_certificate_unreadable", %addr, error = %e, "cannot read the names of a verified client certificate");
                Vec::new()
            }
            None => Vec::new(),
        };
        PeerInfo {
            client_cert: leaf.is_some(),
            client_names: client_names.into(),
            addr: Some(addr),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        PeerInfo {
            addr: Some(*stream.remote_addr()),
            ..PeerInfo::default()
        }
    }
}

/// Builds the server config from PEM files: the certificate chain (leaf
/// first) and its private key (PKCS#8, PKCS#1 or SEC1). With `client_ca`,
/// clients may present a certificate, which must then verify against
/// those CA certificates (the handshake fails otherwise); clients without
/// one are let through to the HTTP layer, which requires a certificate for
/// the sensor endpoints only.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |what, path: &Path| {
        let path = path.display().to_string();
        move |e: tokio_rustls::rustls::pki_types::pem::Error| TlsError::Pem {
            what,
            path,
            message: e.to_string(),
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(pem_err("certificate chain", cert))?
        .collect::<Result<_, _>>()
        .map_err(pem_err("certificate chain", cert))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate chain",
            path: cert.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err("private key", key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(pem_err("client CA", ca))? {
                roots.add(c.map_err(pem_err("client CA", ca))?)?;
            }
            if roots.is_empty() {
                return Err(TlsError::Pem {
                    what: "client CA",
                    path: ca.display().to_string(),
                    message: "no CERTIFICATE block".into(),
                });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener that yields TLS streams (for `axum::serve`).
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    pending: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Wraps a bound listener.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            pending: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        if self.pending.len() >= MAX_PENDING_HANDSHAKES {
                            tracing::warn!(event = "tls_handshake_dropped", %addr, "too many TLS handshakes in progress: connection closed");
                            continue;
                        }
                        let acceptor = self.acceptor.clone();
                        self.pending.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, addr)),
                                Ok(Err(e)) => {
                                    tracing::info!(event = "tls_handshake_failed", %addr, error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::info!(event = "tls_handshake_failed", %addr, "TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
