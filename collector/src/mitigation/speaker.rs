//! The BGP speaker: a local gobgpd, driven through its `gobgp` CLI (which
//! talks to gobgpd's gRPC API). Routes added to gobgpd's global RIB are
//! advertised to every configured peer (the border routers) and withdrawn
//! when deleted.

use std::time::Duration;

use super::config::GobgpConfig;
use super::plan::Route;

/// A failed speaker call.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpeakerError(pub String);

/// gobgpd through its CLI.
#[derive(Debug, Clone)]
pub struct Gobgp {
    config: GobgpConfig,
}

impl Gobgp {
    /// For a validated config.
    pub fn new(config: &GobgpConfig) -> Gobgp {
        Gobgp {
            config: config.clone(),
        }
    }

    fn base_args(&self) -> Vec<String> {
        let (host, port) = self
            .config
            .api
            .rsplit_once(':')
            .unwrap_or(("127.0.0.1", "50051"));
        vec![
            "-u".into(),
            host.trim_matches(['[', ']']).into(),
            "-p".into(),
            port.into(),
        ]
    }

    async fn run(&self, args: Vec<String>) -> Result<String, SpeakerError> {
        let mut cmd = tokio::process::Command::new(&self.config.cli);
        cmd.args(self.base_args())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let limit = Duration::from_millis(self.config.timeout_ms);
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| SpeakerError(format!("gobgp {} timed out", args.join(" "))))?
            .map_err(|e| SpeakerError(format!("cannot run {}: {e}", self.config.cli.display())))?;
        if !out.status.success() {
            let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if msg.is_empty() {
                msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            msg.truncate(512);
            return Err(SpeakerError(format!(
                "gobgp {} failed ({}): {msg}",
                args.join(" "),
                out.status
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds `route` to gobgpd's RIB (advertised to its peers).
    pub async fn announce(&self, route: &Route) -> Result<(), SpeakerError> {
        let mut args = vec![
            "global".to_string(),
            "rib".into(),
            "-a".into(),
            route.family().into(),
            "add".into(),
        ];
        args.extend(route.nlri_args());
        args.extend(route.attribute_args());
        self.run(args).await.map(|_| ())
    }

    /// Deletes `route` from gobgpd's RIB (withdrawn from its peers).
    pub async fn withdraw(&self, route: &Route) -> Result<(), SpeakerError> {
        let mut args = vec![
            "global".to_string(),
            "rib".into(),
            "-a".into(),
            route.family().into(),
            "del".into(),
        ];
        args.extend(route.nlri_args());
        self.run(args).await.map(|_| ())
    }
}
