//! Where the collector is and how to reach it: base URL, bearer token and,
//! for `https://` URLs, the TLS settings (rustls).
//!
//! Without a CA file the system's trust store is used (Debian:
//! `/etc/ssl/certs`, via `rustls-native-certs`); with `ca_file` only the
//! certificates in that PEM file are trusted, which is what a private
//! government PKI wants. A client certificate (`client_cert` +
//! `client_key`) is presented when the collector asks for one
//! (`[tls] client_ca` on the collector).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS files for an `https://` collector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CA certificate(s) to trust instead of the system
    /// store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain to present to the collector.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// True when no file is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }
}

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or not PEM.
    #[error("{what} {}: {reason}", path.display())]
    File {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS files were given for an `http://` URL.
    #[error("TLS files (CA, client certificate) need an https:// collector URL, not {0}")]
    NotHttps(String),
    /// Only one of the client certificate and key was given.
    #[error("a client certificate needs both the certificate and its key")]
    HalfClientIdentity,
    /// rustls refused the configuration (e.g. key does not match).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A collector to deliver to.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `https://collector.example:9440`.
    pub url: String,
    token: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("custom_tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint; reads and checks the TLS files once, here, so a bad
    /// file is an error at start rather than on the first delivery.
    pub fn new(url: &str, token: &str, files: &TlsFiles) -> Result<Endpoint, TlsError> {
        let tls = if url.starts_with("https://") {
            Some(Arc::new(client_config(files)?))
        } else if files.is_empty() {
            None
        } else {
            return Err(TlsError::NotHttps(url.to_string()));
        };
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            tls,
        })
    }

    /// The `Authorization` header value.
    pub(crate) fn authorization(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// An HTTP agent for this endpoint.
    pub(crate) fn agent(&self) -> ureq::Agent {
        let mut b = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30));
        if let Some(tls) = &self.tls {
            b = b.tls_config(Arc::clone(tls));
        }
        b.build()
    }
}

fn file_error<'a>(what: &'static str, path: &'a Path) -> impl Fn(String) -> TlsError + 'a {
    move |reason| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = file_error(what, path);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".to_string()));
    }
    Ok(certs)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}

fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            for cert in read_certs("CA file", ca)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "CA file",
                    path: ca.clone(),
                    reason: format!("unusable CA certificate: {e}"),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs().map_err(|e| TlsError::File {
                what: "system trust store",
                path: PathBuf::from("/etc/ssl/certs"),
                reason: e.to_string(),
            })?;
            roots.add_parsable_certificates(native);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    match (&files.client_cert, &files.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("client key", key)(pem_reason(e)))?;
            Ok(builder.with_client_auth_cert(chain, key)?)
        }
        _ => Err(TlsError::HalfClientIdentity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_no_tls_files() {
        let e = Endpoint::new("http://127.0.0.1:9440/", "t", &TlsFiles::default()).unwrap();
        assert_eq!(e.url, "http://127.0.0.1:9440");
        assert!(
            !format!("{e:?}").contains("\"t\""),
            "token must not be logged"
        );
    }

    #[test]
    fn a_ca_file_for_an_http_url_is_refused() {
        let files = TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = Endpoint::new("http://127.0.0.1:9440", "t", &files).unwrap_err();
        assert!(matches!(err, TlsError::NotHttps(_)), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let files = TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = Endpoint::new("https://127.0.0.1:9440", "t", &files).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("CA file /nonexistent/ca.pem"), "{text}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let files = TlsFiles {
            ca_file: Some(ca),
            ..TlsFiles::default()
        };
        let err = Endpoint::new("https://127.0.0.1:9440", "t", &files).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let files = TlsFiles {
            client_cert: Some("/x/cert.pem".into()),
            ..TlsFiles::default()
        };
        let err = Endpoint::new("https://127.0.0.1:9440", "t", &files).unwrap_err();
        assert!(matches!(err, TlsError::HalfClientIdentity), "{err}");
    }
}
