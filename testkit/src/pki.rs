//! A throwaway certificate authority for TLS tests, made with the `openssl`
//! command-line tool (installed with Debian's base system).
//!
//! [`TestPki::create`] writes, into a folder:
//! - `ca.pem`, `ca.key`: a self-signed CA;
//! - `server.pem`, `server.key`: a server certificate for `127.0.0.1`
//!   signed by the CA;
//!
//! and [`TestPki::client`] / [`TestPki::client_as`] add client certificates (extended key usage
//! `clientAuth`, the name as subject CN and DNS subject alternative name).
//! All keys are P-256 and valid for one day.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why test certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// `openssl` could not be run.
    #[error("cannot run openssl: {0}")]
    Spawn(#[from] std::io::Error),
    /// `openssl` failed.
    #[error("openssl {args} failed: {stderr}")]
    Openssl {
        /// The arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
}

/// A test CA in a folder.
#[derive(Debug, Clone)]
pub struct TestPki {
    dir: PathBuf,
}

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl TestPki {
    /// A CA and a `127.0.0.1` server certificate in `dir`, which must exist.
    pub fn create(dir: &Path) -> Result<TestPki, PkiError> {
        let pki = TestPki {
            dir: dir.to_path_buf(),
        };
        pki.openssl(
            &[
                &["req", "-x509"][..],
                &EC,
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=shaobing-test-ca",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ],
            ]
            .concat(),
        )?;
        pki.sign(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        Ok(pki)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server certificate and key (for `127.0.0.1`).
    pub fn server(&self) -> CertPair {
        CertPair {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
        }
    }

    /// A client certificate for `name` (CN and DNS SAN), signed by the CA
    /// (`client-NAME.pem`, `client-NAME.key`).
    pub fn client(&self, name: &str) -> Result<CertPair, PkiError> {
        self.client_as(&format!("client-{name}"), name, Some(name))
    }

    /// A client certificate with subject CN `cn` and, optionally, a DNS
    /// subject alternative name, signed by the CA (`STEM.pem`, `STEM.key`).
    pub fn client_as(&self, stem: &str, cn: &str, dns: Option<&str>) -> Result<CertPair, PkiError> {
        let san = dns.map_or(String::new(), |d| format!("subjectAltName=DNS:{d}\n"));
        let ext = format!("{san}basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
        self.sign(stem, &format!("/CN={cn}"), &ext)
    }

    fn sign(&self, stem: &str, subject: &str, ext: &str) -> Result<CertPair, PkiError> {
        let ext_file = format!("{stem}.cnf");
        std::fs::write(self.dir.join(&ext_file), ext)?;
        let (key, csr, cert) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        self.openssl(
            &[
                &["req"][..],
                &EC,
                &["-subj", subject, "-keyout", &key, "-out", &csr],
            ]
            .concat(),
        )?;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext_file,
            "-out",
            &cert,
        ])?;
        Ok(CertPair {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        })
    }

    fn openssl(&self, args: &[&str]) -> Result<(), PkiError> {
        let out = Command::new("openssl")
            .current_dir(&self.dir)
            .args(args)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PkiError::Openssl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_a_server_and_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::create(dir.path()).unwrap();
        let client = pki.client("sensor-1").unwrap();
        for f in [
            pki.ca(),
            pki.server().cert,
            pki.server().key,
            client.cert.clone(),
        ] {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.contains("-----BEGIN"), "{}", f.display());
        }
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(pki.ca())
            .arg(&client.cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
