//! State every connection task shares: the published snapshot, counters, the cookie key,
//! the client connection budget and the drain signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use crate::data::budget::Budget;
use crate::data::cookies::CookieKey;
use crate::model::metrics::Metrics;
use crate::model::snapshot::Snapshot;

#[derive(Debug)]
pub(crate) struct Shared {
    /// The one root of everything a request reads. Swapped whole by the control loop;
    /// each request loads it once.
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) metrics: Metrics,
    pub(crate) cookie_key: CookieKey,
    /// Client connections held against `max_client_connections` (the accept loops').
    pub(crate) budget: Arc<Budget>,
    /// Set once at shutdown. An atomic for the per-response check, and a watch channel so
    /// that idle connections waiting for a request wake up and close.
    draining: AtomicBool,
    drain_tx: watch::Sender<bool>,
    /// Open client connections, so shutdown can wait for the last one.
    open: AtomicUsize,
    all_closed: Notify,
}

impl Shared {
    pub(crate) fn new(snapshot: Snapshot, budget: Arc<Budget>) -> Arc<Shared> {
        let (drain_tx, _) = watch::channel(false);
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics: Metrics::default(),
            cookie_key: CookieKey::random(),
            budget,
            draining: AtomicBool::new(false),
            drain_tx,
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
        })
    }

    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn drain_signal(&self) -> watch::Receiver<bool> {
        self.drain_tx.subscribe()
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.drain_tx.send_replace(true);
        // Idle connections wait without the drain signal's receiver (data::idle).
        self.budget.wake_all();
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a client connection as open until the guard drops.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        crate::model::metrics::inc(&self.metrics.new_connections);
        ConnectionGuard(self.clone())
    }

    /// Waits until no client connection is open.
    pub(crate) async fn all_connections_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
pub(crate) struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}
