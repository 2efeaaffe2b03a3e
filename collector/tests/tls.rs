//! HTTPS (`[tls]`) with a self-signed certificate made by `openssl`, real
//! sockets, a rustls client.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use shaobing_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A test CA (`ca.pem`) and a leaf for 127.0.0.1 signed by it
/// (`server.pem`, `server.key`) in `dir`; `None` when openssl fails.
fn pki(dir: &Path) -> Option<TestPki> {
    TestPki::create(dir)
        .map_err(|e| eprintln!("skipping: openssl could not make test certificates: {e}"))
        .ok()
}

async fn https(addr: std::net::SocketAddr, ca: &Path, request: String) -> std::io::Result<String> {
    https_as(addr, ca, None, request).await
}

/// With `client`: (certificate PEM, key PEM) to present.
async fn https_as(
    addr: std::net::SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    request: String,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    // The server closes after answering (Connection: close); a missing
    // close_notify is not an error here.
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_sensors_and_analysts_and_plain_http_gets_nothing() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if pki(dir.path()).is_none() {
        return;
    }
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("server.pem").display(),
        dir.path().join("server.key").display()
    );
    let h = Harness::start_full("", &tls).await;
    let ca = dir.path().join("ca.pem");
    let b = String::from_utf8(body(&[leak(1)])).unwrap();
    let post = format!(
        "POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    let resp = https(h.addr, &ca, post).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("{\"accepted\":1}"), "{resp}");

    let get = format!(
        "GET /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ANALYST_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    let resp = https(h.addr, &ca, get).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("019c0c4e-5a00-7000-8000-000000000001"),
        "{resp}"
    );

    // Plain HTTP on the TLS port is not answered as HTTP.
    let addr = h.addr.to_string();
    let plain_body = body(&[leak(2)]);
    let plain = tokio::task::spawn_blocking(move || {
        shaobing_testkit::http::request(
            &addr,
            "POST",
            "/api/v1/incidents",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            &plain_body,
            std::time::Duration::from_secs(15),
        )
    })
    .await
    .unwrap();
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP must not be served: {:?}",
        plain.map(|r| r.status)
    );
    assert_eq!(h.rows().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_with_an_unreadable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("missing.pem").display(),
        dir.path().join("missing-key.pem").display()
    );
    let config = config_with("http://127.0.0.1:1", "", &tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = shaobing_collector::serve(config, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("certificate chain"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_ca_sensors_need_a_certificate_and_analysts_do_not() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(client) = pki(dir.path()).and_then(|p| p.client_as("client", "sensor-1", None).ok())
    else {
        return;
    };
    let d = dir.path();
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
        d.join("server.pem").display(),
        d.join("server.key").display(),
        d.join("ca.pem").display()
    );
    let h = Harness::start_full("", &tls).await;
    let ca = d.join("ca.pem");
    let b = String::from_utf8(body(&[leak(1)])).unwrap();
    let post = format!(
        "POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    // A valid token without a certificate is not enough.
    let resp = https(h.addr, &ca, post.clone()).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(resp.contains("client certificate"), "{resp}");
    assert!(h.rows().await.is_empty());
    // With the certificate it is.
    let resp = https_as(h.addr, &ca, Some((&client.cert, &client.key)), post)
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // Analysts query without a certificate.
    let get = format!(
        "GET /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ANALYST_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    let resp = https(h.addr, &ca, get).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(h.rows().await.len(), 1);
}

/// With `client_ca`, a sensor's token only works with that sensor's
/// certificate (subject CN = name, or a DNS SAN = `cert_name`): sensor A's
/// valid certificate with sensor B's token is refused (403), counted, and
/// stores nothing; so is the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_only_works_with_its_own_sensors_token() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(p) = pki(d) else {
        return;
    };
    p.client_as("a", "sensor-1", None).unwrap();
    p.client_as("b", "unrelated", Some("sensor-b.example.gov"))
        .unwrap();
    const TOKEN_B: &str = "token-of-sensor-b";
    let extra = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
         [[sensors]]\nname = \"sensor-b\"\ntoken_sha256 = \"{}\"\n\
         cert_name = \"Sensor-B.example.gov\"\n",
        d.join("server.pem").display(),
        d.join("server.key").display(),
        d.join("ca.pem").display(),
        shaobing_collector::auth::hash_token(TOKEN_B)
    );
    let h = Harness::start_full("", &extra).await;
    let ca = d.join("ca.pem");
    let post = |token: &str, n: u32| {
        let b = String::from_utf8(body(&[leak(n)])).unwrap();
        format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        )
    };
    let (a_pem, a_key) = (d.join("a.pem"), d.join("a.key"));
    let (b_pem, b_key) = (d.join("b.pem"), d.join("b.key"));
    let cert_a = Some((a_pem.as_path(), a_key.as_path()));
    let cert_b = Some((b_pem.as_path(), b_key.as_path()));

    // Sensor A's certificate with sensor B's token.
    let resp = https_as(h.addr, &ca, cert_a, post(TOKEN_B, 1))
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(
        resp.contains("does not belong to sensor \\\"sensor-b\\\""),
        "{resp}"
    );
    // Sensor B's certificate with sensor A's token.
    let resp = https_as(h.addr, &ca, cert_b, post(TOKEN, 2)).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(h.rows().await.is_empty());

    // Each with its own: accepted, stored under the token's sensor.
    let resp = https_as(h.addr, &ca, cert_a, post(TOKEN, 3)).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = https_as(h.addr, &ca, cert_b, post(TOKEN_B, 4))
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let mut sensors: Vec<String> = h.rows().await.into_iter().map(|r| r.sensor).collect();
    sensors.sort();
    assert_eq!(sensors, ["sensor-1", "sensor-b"]);

    // Both refusals were counted.
    let get = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ANALYST_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    let m = https(h.addr, &ca, get).await.unwrap();
    assert!(
        m.contains("shaobing_collector_rejected_requests_total{reason=\"forbidden\"} 2"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_over_https_with_a_secure_session_cookie() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if pki(dir.path()).is_none() {
        return;
    }
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("server.pem").display(),
        dir.path().join("server.key").display()
    );
    let h = Harness::start_full("", &tls).await;
    let ca = dir.path().join("ca.pem");
    let page = https(
        h.addr,
        &ca,
        "GET /console/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_string(),
    )
    .await
    .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'none'"),
        "{page}"
    );
    assert!(page.contains("/console/app.js"), "{page}");

    let login = format!("{{\"token\": \"{ANALYST_TOKEN}\"}}");
    let resp = https(
        h.addr,
        &ca,
        format!(
            "POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{login}",
            login.len()
        ),
    )
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let cookie = resp
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.ends_with("; Secure"),
        "{cookie}"
    );
}
