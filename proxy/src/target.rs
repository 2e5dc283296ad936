//! A target: one address:port registered in one target group, with the state that must
//! survive configuration reloads (its keep-alive pool, in-flight count and counters).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::inc;
use crate::upstream::Pool;

/// Where a registration came from, shown by the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOrigin {
    /// Docker container id, when Docker discovery registered it.
    pub container_id: Option<String>,
    pub container_name: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) origin: TargetOrigin,
    pub(crate) pool: Pool,
    /// Requests currently being served by this target.
    pub(crate) in_flight: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, origin: TargetOrigin) -> Arc<Target> {
        Arc::new(Target {
            addr,
            origin,
            pool: Pool::default(),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
        })
    }

    /// Marks a request as in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        inc(&self.requests);
        InFlight(self.clone())
    }
}

/// Holds a target's in-flight count up for the life of one exchange.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Target>);

impl InFlight {
    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}
