//! Ordered, bounded shutdown: the first SIGINT/SIGTERM asks the pipeline to
//! stop polling, flush and commit; a second one exits at once. Data that is
//! not durable is never committed either way, so a forced exit only costs a
//! replay.
//!
//! A signal within [`REPEAT_WINDOW`] of the first is the same request
//! delivered twice, not a second one: GNU `timeout` (without
//! `--foreground`) sends its signal to the command and then to the
//! command's whole process group, and a supervisor may do the same.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status of a forced (second-signal) exit: 128 + SIGINT.
const FORCED_EXIT_CODE: i32 = 130;
/// Signals this soon after the first one repeat it.
const REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// Flags set by signals.
pub struct Signals {
    /// Set by the first signal: stop and flush.
    pub graceful: Arc<AtomicBool>,
    /// Set by the second signal, just before the process exits.
    pub forced: Arc<AtomicBool>,
}

impl Signals {
    /// Starts a thread that waits for SIGINT and SIGTERM.
    pub fn install() -> anyhow::Result<Self> {
        let graceful = Arc::new(AtomicBool::new(false));
        let forced = Arc::new(AtomicBool::new(false));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (g, f) = (graceful.clone(), forced.clone());
        std::thread::Builder::new().name("logwarden-signals".into()).spawn(move || {
            rt.block_on(async move {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                    return;
                };
                let mut first: Option<Instant> = None;
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    if first.is_some_and(|t| t.elapsed() < REPEAT_WINDOW) {
                        continue;
                    }
                    first.get_or_insert_with(Instant::now);
                    if g.swap(true, Ordering::SeqCst) {
                        f.store(true, Ordering::SeqCst);
                        tracing::warn!("second signal: exiting now; uncommitted data will be replayed");
                        std::process::exit(FORCED_EXIT_CODE);
                    }
                    tracing::info!("shutting down: flushing open segments and committing (signal again to exit at once)");
                }
            });
        })?;
        Ok(Self { graceful, forced })
    }
}
