//! Command destination (and the notify hook): runs a local program with the
//! incident JSON (one line) on stdin, one alert at a time, killing it after
//! the timeout. Not run through a shell. The environment carries
//! `SHAOBING_RULE`, `SHAOBING_KIND`, `SHAOBING_EVENT`, `SHAOBING_SEVERITY`,
//! `SHAOBING_INCIDENT_ID`, and for attacks `SHAOBING_ATTACK_ID`,
//! `SHAOBING_VECTOR`, `SHAOBING_DST_IP` / `SHAOBING_DST_NET`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use super::config::CommandConfig;
use super::{Alert, DestCounters};

/// Bytes of the program's stderr quoted in a failure.
const STDERR_QUOTE: usize = 512;

/// A command destination.
pub struct CommandDest {
    name: String,
    config: CommandConfig,
}

impl CommandDest {
    /// For a validated config.
    pub fn new(name: &str, config: &CommandConfig) -> CommandDest {
        CommandDest {
            name: name.to_string(),
            config: config.clone(),
        }
    }

    /// Runs the program once for `alert`.
    pub async fn run(&self, alert: &Alert) -> Result<(), String> {
        let inc = &alert.incident;
        let mut cmd = tokio::process::Command::new(&self.config.program);
        cmd.args(&self.config.args)
            .env("SHAOBING_RULE", alert.rule.as_ref())
            .env("SHAOBING_KIND", inc.kind.as_str())
            .env("SHAOBING_EVENT", inc.event.as_str())
            .env("SHAOBING_SEVERITY", inc.severity.as_str())
            .env("SHAOBING_INCIDENT_ID", inc.id.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(a) = inc.attack_id {
            cmd.env("SHAOBING_ATTACK_ID", a.to_string());
        }
        if let Some(v) = &inc.vector {
            cmd.env("SHAOBING_VECTOR", v);
        }
        if let Some(d) = inc.dst_ip {
            cmd.env("SHAOBING_DST_IP", d.to_string());
        }
        if let Some(n) = inc.extra.get("dst_net").and_then(|v| v.as_str()) {
            cmd.env("SHAOBING_DST_NET", n);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.config.program.display()))?;
        let stdin = child.stdin.take();
        let mut payload = alert.json.as_bytes().to_vec();
        payload.push(b'\n');
        let run = async move {
            if let Some(mut s) = stdin {
                // A program that does not read its input is not an error.
                let _ = s.write_all(&payload).await;
                drop(s);
            }
            child.wait_with_output().await
        };
        let limit = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(limit, run).await {
            Err(_) => Err(format!(
                "killed after {} ms (timeout_ms)",
                self.config.timeout_ms
            )),
            Ok(Err(e)) => Err(format!("waiting for the program: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let end = out.stderr.len().min(STDERR_QUOTE);
                let quote = String::from_utf8_lossy(out.stderr.get(..end).unwrap_or_default());
                Err(format!("{}; stderr: {}", out.status, quote.trim()))
            }
        }
    }

    /// Runs the loop (one program at a time) until the queue closes.
    pub async fn serve(self, mut rx: mpsc::Receiver<Alert>, counters: Arc<DestCounters>) {
        while let Some(alert) = rx.recv().await {
            let r = self.run(&alert).await;
            counters.record(&self.name, &alert, r);
        }
    }
}
