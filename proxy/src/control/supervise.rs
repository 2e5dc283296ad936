//! Running until told to stop: SIGHUP and changes of the configuration file reload;
//! SIGUSR1 reopens the access log;
//! SIGTERM drains (stop accepting, finish in-flight requests, close keep-alives) and
//! exits; a second SIGTERM, or SIGINT at any time, exits at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::control::{ConfigSource, Proxy};

/// File events arriving this close together are one change (editors write in steps).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// How the process should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained: every connection finished.
    Drained,
    /// The drain grace ran out with connections still open.
    GraceExpired,
    /// SIGINT, or a second SIGTERM: stop now.
    Immediate,
}

/// Signal handlers and the file watcher, installed before hostalb announces that it is
/// ready: a SIGHUP, SIGTERM or file change that follows `ready` is never missed.
#[derive(Debug)]
pub struct Supervisor {
    proxy: Proxy,
    grace: Duration,
    hangup: Signal,
    /// SIGUSR1: reopen the access log (logrotate moved it).
    user1: Signal,
    terminate: Signal,
    interrupt: Signal,
    changed: mpsc::Receiver<()>,
    /// Kept alive for as long as the supervisor runs; dropping it stops watching.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Supervisor {
    /// Installs the handlers and the watcher. `grace` bounds the drain after SIGTERM.
    pub fn install(proxy: Proxy, grace: Duration) -> std::io::Result<Supervisor> {
        let hangup = signal(SignalKind::hangup())?;
        let user1 = signal(SignalKind::user_defined1())?;
        let terminate = signal(SignalKind::terminate())?;
        let interrupt = signal(SignalKind::interrupt())?;
        let (changed_tx, changed) = mpsc::channel::<()>(16);
        let watcher = match proxy.config_source() {
            ConfigSource::File(path) => watch_file(path, changed_tx)
                .map_err(|e| {
                    tracing::warn!(
                        file = %path.display(),
                        error = %e,
                        "cannot watch the configuration file; SIGHUP and POST /api/reload still reload"
                    )
                })
                .ok(),
            ConfigSource::Embedded => None,
        };
        Ok(Supervisor {
            proxy,
            grace,
            hangup,
            user1,
            terminate,
            interrupt,
            changed,
            _watcher: watcher,
        })
    }

    /// Serves until a signal ends it.
    pub async fn run(mut self) -> Exit {
        let proxy = self.proxy.clone();
        loop {
            tokio::select! {
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = proxy.reload().await;
                }
                _ = self.user1.recv() => {
                    tracing::info!("SIGUSR1: reopening the access log");
                    proxy.reopen_logs();
                }
                Some(()) = self.changed.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while self.changed.try_recv().is_ok() {}
                    tracing::info!("configuration file changed: reloading");
                    let _ = proxy.reload().await;
                }
                _ = self.terminate.recv() => break,
                _ = self.interrupt.recv() => {
                    tracing::info!("SIGINT: exiting at once");
                    return Exit::Immediate;
                }
            }
        }
        tracing::info!(
            open_connections = proxy.open_connections(),
            grace_seconds = self.grace.as_secs_f64(),
            "SIGTERM: draining (a second SIGTERM or a SIGINT exits at once)"
        );
        tokio::select! {
            drained = proxy.shutdown(self.grace) => {
                if drained {
                    tracing::info!("drained: every connection finished");
                    Exit::Drained
                } else {
                    tracing::warn!(open_connections = proxy.open_connections(), "drain grace expired");
                    Exit::GraceExpired
                }
            }
            _ = self.terminate.recv() => Exit::Immediate,
            _ = self.interrupt.recv() => Exit::Immediate,
        }
    }
}

/// Watches the file's directory (editors and config managers replace files by rename)
/// and signals changes to the file itself.
fn watch_file(path: &Path, changed: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let file: PathBuf = path.file_name().map(PathBuf::from).unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
            && !matches!(
                event.kind,
                EventKind::Modify(notify::event::ModifyKind::Metadata(_))
            );
        if relevant
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file.as_os_str()))
        {
            let _ = changed.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
