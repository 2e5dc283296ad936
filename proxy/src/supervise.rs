//! Running until told to stop: SIGHUP and changes of the configuration file reload;
//! SIGTERM drains (stop accepting, finish in-flight requests, close keep-alives) and
//! exits; a second SIGTERM, or SIGINT at any time, exits at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
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

/// Serves until a signal ends it. `grace` bounds the drain after SIGTERM.
pub async fn supervise(proxy: Proxy, grace: Duration) -> std::io::Result<Exit> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (changed_tx, mut changed) = mpsc::channel::<()>(16);
    // The watcher lives as long as this function; dropping it stops watching.
    let _watcher = match proxy.config_source() {
        ConfigSource::File(path) => watch_file(path, changed_tx)
            .map_err(|e| tracing::warn!(file = %path.display(), error = %e, "cannot watch the configuration file; SIGHUP and POST /api/reload still reload"))
            .ok(),
        ConfigSource::Embedded => None,
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = proxy.reload().await;
            }
            Some(()) = changed.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while changed.try_recv().is_ok() {}
                tracing::info!("configuration file changed: reloading");
                let _ = proxy.reload().await;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: exiting at once");
                return Ok(Exit::Immediate);
            }
        }
    }
    tracing::info!(
        open_connections = proxy.open_connections(),
        grace_seconds = grace.as_secs_f64(),
        "SIGTERM: draining (a second SIGTERM or a SIGINT exits at once)"
    );
    tokio::select! {
        drained = proxy.shutdown(grace) => {
            if drained {
                tracing::info!("drained: every connection finished");
                Ok(Exit::Drained)
            } else {
                tracing::warn!(open_connections = proxy.open_connections(), "drain grace expired");
                Ok(Exit::GraceExpired)
            }
        }
        _ = terminate.recv() => Ok(Exit::Immediate),
        _ = interrupt.recv() => Ok(Exit::Immediate),
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
