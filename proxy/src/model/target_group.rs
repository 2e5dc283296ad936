//! Target groups as the request path sees them: the targets that take new requests, and
//! the pick among them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use hostalb_config as cfg;

use crate::model::metrics::GroupMetrics;
use crate::model::target::Target;
use crate::rng;

/// What survives reloads for a group of a given name: its counters and its round-robin
/// position.
#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) name: Arc<str>,
    /// Its ARN, formatted once (the access log writes it per request).
    pub(crate) arn: Arc<str>,
    cursor: AtomicUsize,
    pub(crate) metrics: GroupMetrics,
}

impl GroupState {
    pub(crate) fn new(name: &str) -> Arc<GroupState> {
        Arc::new(GroupState {
            name: Arc::from(name),
            arn: Arc::from(crate::model::arn::group_arn(name)),
            // Start each group at a different position so that groups sharing targets do
            // not all send their first request to the same one.
            cursor: AtomicUsize::new(rng::below(1 << 16) as usize),
            metrics: GroupMetrics::default(),
        })
    }
}

/// One target group inside a snapshot.
#[derive(Debug)]
pub(crate) struct GroupRt {
    pub(crate) cfg: Arc<cfg::TargetGroup>,
    pub(crate) state: Arc<GroupState>,
    /// Every registered target that is not draining.
    pub(crate) registered: Box<[Arc<Target>]>,
    /// The targets new requests go to: the healthy ones, or every registered one when
    /// none is healthy (ALB fails open).
    pub(crate) routable: Box<[Arc<Target>]>,
    /// No target is healthy and requests are spread over all of them.
    pub(crate) fail_open: bool,
    /// Deregistered targets still draining (reported until their delay ends).
    pub(crate) draining: Box<[Arc<Target>]>,
    /// Some rule or default action forwards to this group.
    pub(crate) in_use: bool,
    /// Stable identity sealed into target stickiness cookies.
    pub(crate) name_hash: u64,
}

impl GroupRt {
    pub(crate) fn name(&self) -> &str {
        &self.state.name
    }

    /// The routable target at `addr` (a stickiness cookie's target), if it still is one.
    pub(crate) fn routable_at(&self, addr: SocketAddr) -> Option<&Arc<Target>> {
        self.routable.iter().find(|t| t.addr == addr)
    }

    /// Picks a target for a new request by the group's algorithm, avoiding `avoid` when
    /// another target exists (a retry after a refused connection). Targets in slow start
    /// are taken with a probability equal to their current share, so their load ramps up
    /// linearly without any shared counter.
    pub(crate) fn pick(&self, avoid: Option<SocketAddr>) -> Option<&Arc<Target>> {
        let targets = &self.routable[..];
        let n = targets.len();
        if n == 0 {
            return None;
        }
        // A retry (`avoid` set) also passes over targets cut by their deregistration: the
        // request's snapshot may predate it. A first pick reads no extra atomic.
        let usable = |t: &Arc<Target>| match avoid {
            None => true,
            Some(a) => n == 1 || (t.addr != a && !t.is_cut()),
        };
        let ramp = self.cfg.slow_start;
        let start = match self.cfg.algorithm {
            cfg::Algorithm::LeastOutstandingRequests => {
                // Ties go round robin, so equal targets share the load.
                let start = self.state.cursor.fetch_add(1, Relaxed);
                return (0..n)
                    .map(|i| &targets[(start + i) % n])
                    .filter(|t| usable(t))
                    .min_by_key(|t| t.in_flight.load(Relaxed));
            }
            cfg::Algorithm::RoundRobin => self.state.cursor.fetch_add(1, Relaxed),
            cfg::Algorithm::WeightedRandom => rng::below(n as u64) as usize,
        };
        let mut fallback = None;
        for i in 0..n {
            let t = &targets[(start + i) % n];
            if !usable(t) {
                continue;
            }
            let weight = t.slow_start_weight(ramp);
            if weight >= 1.0 || rng::unit() < weight {
                return Some(t);
            }
            fallback.get_or_insert(t);
        }
        fallback
    }
}
