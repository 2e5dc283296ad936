//! What the dashboard says about the configuration: the generation being served, when it
//! was applied and with which warnings, and the last reload that failed. Kept from the
//! control plane's events by a task of the admin server.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast::error::RecvError;

use crate::control::{Event, Proxy};

/// The configuration being served.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// The generation a reload answered with; `None` for the start's configuration (the
    /// snapshot's generation also moves with registrations and health, so the number it
    /// had at start is not kept).
    pub(crate) generation: Option<u64>,
    pub(crate) at: SystemTime,
    /// By a reload (false: at start).
    pub(crate) reload: bool,
    /// Warnings of its validation (ALB limits), one line each.
    pub(crate) warnings: Vec<String>,
}

/// A reload that was refused (the configuration before it kept serving).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) at: SystemTime,
    pub(crate) message: String,
}

#[derive(Debug, Default)]
struct Log {
    applied: Option<Applied>,
    last_failure: Option<Failure>,
    reloads: u64,
}

/// Shared by the recording task and the dashboard; the mutex is held to copy or replace
/// a few fields.
#[derive(Debug, Default)]
pub(crate) struct ConfigLog {
    log: Mutex<Log>,
}

impl ConfigLog {
    /// Records the start's configuration, then every reload, for as long as the control
    /// plane sends events.
    pub(crate) async fn run(self: Arc<Self>, proxy: Proxy) {
        // Subscribe first, so that no reload between the two steps is missed.
        let mut events = proxy.subscribe();
        // The start's warnings were logged and not kept: validating the same source again
        // gives them back (the file is read once more, nothing is applied).
        let warnings = proxy
            .config_source()
            .load()
            .map(|l| l.warnings.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        self.set_applied(Applied {
            generation: None,
            at: SystemTime::now(),
            reload: false,
            warnings,
        });
        loop {
            match events.recv().await {
                Ok(Event::Reloaded { generation, warnings }) => self.set_applied(Applied {
                    generation: Some(generation),
                    at: SystemTime::now(),
                    reload: true,
                    warnings: warnings.iter().map(ToString::to_string).collect(),
                }),
                Ok(Event::ReloadFailed { message }) => {
                    if let Ok(mut log) = self.log.lock() {
                        log.last_failure = Some(Failure {
                            at: SystemTime::now(),
                            message,
                        });
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn set_applied(&self, applied: Applied) {
        if let Ok(mut log) = self.log.lock() {
            if applied.reload {
                log.reloads += 1;
            }
            log.applied = Some(applied);
        }
    }

    pub(crate) fn applied(&self) -> Option<Applied> {
        self.log.lock().ok()?.applied.clone()
    }

    pub(crate) fn last_failure(&self) -> Option<Failure> {
        self.log.lock().ok()?.last_failure.clone()
    }

    /// Reloads applied since start.
    pub(crate) fn reloads(&self) -> u64 {
        self.log.lock().map(|l| l.reloads).unwrap_or(0)
    }
}
