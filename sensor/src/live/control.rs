//! What the main thread shares with the capture workers: the stop flag
//! (set by signals), the signature set in force, and the counters; plus
//! the signal thread that turns SIGTERM, SIGINT and SIGHUP into those.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use shaobing_signatures::SignatureSet;

use super::stats::LiveStats;

/// Running (no stop requested).
pub const RUNNING: u8 = 0;
/// Graceful stop (SIGTERM).
pub const STOP_GRACEFUL: u8 = 1;
/// Fast stop (SIGINT).
pub const STOP_FAST: u8 = 2;

/// State the main thread shares with the workers.
pub struct Control {
    /// `RUNNING`, [`STOP_GRACEFUL`] or [`STOP_FAST`].
    pub stop: AtomicU8,
    /// The signature set in force and its generation.
    pub signatures: RwLock<(u64, Arc<SignatureSet>)>,
    /// Counters.
    pub stats: LiveStats,
}

impl Control {
    /// A control block running with `sigs`.
    pub fn new(sigs: Arc<SignatureSet>) -> Self {
        Control {
            stop: AtomicU8::new(RUNNING),
            signatures: RwLock::new((0, sigs)),
            stats: LiveStats::default(),
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.signatures.read().map(|g| g.0).unwrap_or(0)
    }

    pub(super) fn current(&self) -> Option<(u64, Arc<SignatureSet>)> {
        self.signatures.read().ok().map(|g| (g.0, Arc::clone(&g.1)))
    }

    /// Loads signatures from `path` (or the built-in pack) and installs
    /// them; on error the running set stays and the error is returned.
    pub fn reload(&self, path: Option<&PathBuf>) -> Result<usize, String> {
        let set = match path {
            Some(p) => SignatureSet::load(p),
            None => SignatureSet::default_pack(),
        };
        match set {
            Ok(set) => {
                let n = set.signatures().len();
                if let Ok(mut g) = self.signatures.write() {
                    *g = (g.0 + 1, Arc::new(set));
                }
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.stats.reloads_refused.fetch_add(1, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }
}

/// The thread that turns signals into requests on a [`Control`]: SIGTERM
/// a graceful stop, SIGINT a fast one, SIGHUP a signature reload (from
/// `signatures`, or the built-in pack; an invalid set keeps the running
/// one and logs why).
pub struct SignalThread {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl SignalThread {
    /// Installs the handlers and starts the thread.
    pub fn spawn(control: Arc<Control>, signatures: Option<PathBuf>) -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGTERM => {
                        tracing::info!("SIGTERM: stopping, delivering what is pending");
                        control.stop.store(STOP_GRACEFUL, Ordering::Relaxed);
                    }
                    SIGINT => {
                        tracing::info!("SIGINT: fast stop, spooling what is pending");
                        control.stop.store(STOP_FAST, Ordering::Relaxed);
                    }
                    _ => match control.reload(signatures.as_ref()) {
                        Ok(n) => tracing::info!(signatures = n, "SIGHUP: signatures reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "SIGHUP: invalid signatures; keeping the running set")
                        }
                    },
                }
            }
        });
        Ok(SignalThread { handle, thread })
    }

    /// Stops listening and joins the thread.
    pub fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}
