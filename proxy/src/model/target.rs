//! A target: one address:port registered in one target group, with the state that must
//! survive configuration reloads (its keep-alive pool, in-flight count, health, counters).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::health::{State, Tracker};
use crate::model::metrics::{TargetMetrics, inc};
use crate::model::pool::Pool;

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
    /// Its HTTP/2 connections (`HTTP2` and `GRPC` target groups).
    pub(crate) h2: crate::model::h2pool::H2Pool,
    /// Requests currently being served by this target.
    pub(crate) in_flight: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
    /// Responses by status class and their times (the admin API's per-target view).
    pub(crate) metrics: TargetMetrics,
    /// Health-check state, written by the target's checker and the control plane; never
    /// read on the request path.
    pub(crate) health: Mutex<Tracker>,
    /// When slow start began (microseconds since [`epoch`]); 0 when not in slow start.
    slow_start_from: AtomicU64,
    /// Set when the deregistration delay ran out: requests still in flight are cut.
    cut: AtomicBool,
    cut_notify: Notify,
    /// The registration's Docker HEALTHCHECK says unhealthy (`use_docker_health`).
    pub(crate) docker_unhealthy: AtomicBool,
    /// Registered while its group already had a healthy target past slow start: its
    /// first admission ramps up. The first targets of an empty group never do (ALB).
    pub(crate) slow_start_eligible: AtomicBool,
    /// Has been healthy at least once since it was registered.
    pub(crate) admitted: AtomicBool,
}

fn micros_since_epoch() -> u64 {
    // Never 0, so that 0 can mean "not set".
    (crate::clock::epoch().elapsed().as_micros() as u64).max(1)
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, origin: TargetOrigin) -> Arc<Target> {
        Arc::new(Target {
            addr,
            origin,
            pool: Pool::default(),
            h2: Default::default(),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
            metrics: TargetMetrics::default(),
            health: Mutex::new(Tracker::default()),
            slow_start_from: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            cut_notify: Notify::new(),
            docker_unhealthy: AtomicBool::new(false),
            slow_start_eligible: AtomicBool::new(false),
            admitted: AtomicBool::new(false),
        })
    }

    /// Marks a request as in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        inc(&self.requests);
        InFlight(self.clone())
    }

    /// The health state (control plane and admin API).
    pub(crate) fn health_state(&self) -> State {
        self.health.lock().map(|t| t.state).unwrap_or(State::Initial)
    }

    pub(crate) fn tracker(&self) -> Tracker {
        self.health.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub(crate) fn start_slow_start(&self) {
        self.slow_start_from.store(micros_since_epoch(), Relaxed);
    }

    pub(crate) fn end_slow_start(&self) {
        self.slow_start_from.store(0, Relaxed);
    }

    /// Whether the target is still ramping up within `duration`.
    pub(crate) fn in_slow_start(&self, duration: Duration) -> bool {
        self.slow_start_weight(duration) < 1.0
    }

    /// Share of a full target this one takes now: ramps linearly from near 0 to 1 over
    /// `duration` after slow start began.
    #[inline]
    pub(crate) fn slow_start_weight(&self, duration: Duration) -> f64 {
        let from = self.slow_start_from.load(Relaxed);
        if from == 0 || duration.is_zero() {
            return 1.0;
        }
        let elapsed = micros_since_epoch().saturating_sub(from) as f64;
        (elapsed / duration.as_micros() as f64).clamp(0.0, 1.0)
    }

    /// Cuts the requests still in flight (the deregistration delay ran out).
    pub(crate) fn cut(&self) {
        self.cut.store(true, Relaxed);
        self.cut_notify.notify_waiters();
        self.pool.clear();
        self.h2.clear();
    }

    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Relaxed)
    }

    /// Completes when the target is cut.
    pub(crate) async fn cut_signal(&self) {
        loop {
            let notified = self.cut_notify.notified();
            if self.is_cut() {
                return;
            }
            notified.await;
        }
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
