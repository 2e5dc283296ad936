//! The admin server's memory of the last minute: every [`SAMPLE_INTERVAL`] it reads the
//! counters (load balancer, target groups, targets) into a sample and keeps the last
//! [`HISTORY`] of them, so that the dashboard can show rates and windowed percentiles and
//! `/metrics` can estimate `ConsumedLCUs`. It also notes when each target's health state
//! last changed. All of it runs on the admin server's task, off the request path: the
//! request path only bumps its atomics.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::control::Proxy;
use crate::model::health::State;
use crate::model::metrics::{HistogramCounts, Metrics, Responses, get};
use crate::model::snapshot::Snapshot;
use crate::model::target::Target;
use crate::model::target_group::GroupRt;

/// How often counters are read: the dashboard refreshes every 2 s, so a 1 s sample keeps
/// its rates current without reading every counter more than needed.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: one minute, the period of ALB's CloudWatch metrics.
pub(crate) const HISTORY: usize = 61;
/// Rates (per second) are taken over this span: short enough to follow a change within
/// a few refreshes, long enough to smooth a bursty second.
pub(crate) const RATE_SPAN: Duration = Duration::from_secs(10);
/// Percentiles are taken over this span (a minute, as CloudWatch's period).
pub(crate) const PERCENTILE_SPAN: Duration = Duration::from_secs(60);

/// A target across samples: its group and address.
pub(crate) type TargetKey = (Arc<str>, SocketAddr);

/// What one group or target had counted at a sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    /// 2xx, 3xx, 4xx, 5xx from targets.
    pub(crate) classes: [u64; 4],
    pub(crate) time: HistogramCounts,
    pub(crate) connection_errors: u64,
}

impl Counts {
    fn read(requests: u64, connection_errors: u64, r: &Responses) -> Counts {
        Counts {
            requests,
            classes: r.classes(),
            time: r.time.read(),
            connection_errors,
        }
    }

    pub(crate) fn of_group(g: &GroupRt) -> Counts {
        let m = &g.state.metrics;
        Counts::read(
            get(&m.request_count),
            get(&m.target_connection_errors),
            &m.responses,
        )
    }

    pub(crate) fn of_target(t: &Target) -> Counts {
        Counts::read(get(&t.requests), get(&t.connection_errors), &t.metrics.responses)
    }
}

/// The load balancer's counters at a sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LbCounts {
    pub(crate) requests: u64,
    pub(crate) new_connections: u64,
    pub(crate) processed_bytes: u64,
    pub(crate) rule_evaluations: u64,
    pub(crate) elb_4xx: u64,
    pub(crate) elb_5xx: u64,
    pub(crate) target_4xx: u64,
    pub(crate) target_5xx: u64,
}

impl LbCounts {
    fn read(m: &Metrics, snap: &Snapshot) -> LbCounts {
        let (target_4xx, target_5xx) = snap.groups.iter().fold((0, 0), |(a, b), g| {
            let c = g.state.metrics.responses.classes();
            (a + c[2], b + c[3])
        });
        LbCounts {
            requests: get(&m.request_count),
            new_connections: get(&m.new_connections),
            processed_bytes: get(&m.processed_bytes),
            rule_evaluations: get(&m.rule_evaluations),
            elb_4xx: get(&m.elb_4xx),
            elb_5xx: get(&m.elb_5xx),
            target_4xx,
            target_5xx,
        }
    }
}

/// Every counter the dashboard follows, at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) lb: LbCounts,
    pub(crate) groups: HashMap<Arc<str>, Counts>,
    pub(crate) targets: HashMap<TargetKey, Counts>,
}

impl Sample {
    /// Reads the counters of `snap` now.
    pub(crate) fn take(m: &Metrics, snap: &Snapshot) -> Sample {
        let mut groups = HashMap::with_capacity(snap.groups.len());
        let mut targets = HashMap::new();
        for g in snap.groups.iter() {
            groups.insert(g.state.name.clone(), Counts::of_group(g));
            for t in g.registered.iter().chain(g.draining.iter()) {
                targets.insert((g.state.name.clone(), t.addr), Counts::of_target(t));
            }
        }
        Sample {
            at: Instant::now(),
            lb: LbCounts::read(m, snap),
            groups,
            targets,
        }
    }
}

/// A target's health state and since when the sampler has seen it so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub(crate) state: State,
    pub(crate) since: SystemTime,
    /// Whether the state was already there when the sampler started (so `since` is only
    /// "at least since").
    pub(crate) from_start: bool,
}

#[derive(Debug, Default)]
struct History {
    samples: VecDeque<Sample>,
    health: HashMap<TargetKey, Seen>,
}

/// The last minute of samples, shared by the sampling task and the admin handlers. The
/// mutex is held to push a sample or to copy what a page needs; never on the request path.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    history: Mutex<History>,
    started: Mutex<Option<SystemTime>>,
}

impl Sampler {
    /// Takes the first sample now (before the admin server answers anything, so that
    /// every request it reports on came after it), then samples every
    /// [`SAMPLE_INTERVAL`] on a task of its own for as long as the runtime runs.
    pub(crate) fn start(self: &Arc<Self>, proxy: Proxy) {
        if let Ok(mut s) = self.started.lock() {
            *s = Some(SystemTime::now());
        }
        self.sample(&proxy);
        let sampler = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick completes at once: that sample was just taken.
            every.tick().await;
            loop {
                every.tick().await;
                sampler.sample(&proxy);
            }
        });
    }

    fn sample(&self, proxy: &Proxy) {
        let snap = proxy.shared().snapshot.load_full();
        self.record(Sample::take(&proxy.shared().metrics, &snap), &snap);
    }

    /// Keeps `sample` (dropping the oldest beyond [`HISTORY`]) and notes health changes.
    pub(crate) fn record(&self, sample: Sample, snap: &Snapshot) {
        let Ok(mut h) = self.history.lock() else {
            return;
        };
        let first = h.samples.is_empty();
        let now = SystemTime::now();
        let mut seen_now = HashMap::with_capacity(h.health.len());
        for g in snap.groups.iter() {
            for (list, draining) in [(&g.registered, false), (&g.draining, true)] {
                for t in list.iter() {
                    let key = (g.state.name.clone(), t.addr);
                    let state = crate::admin::server::target_health(g, t, draining).0;
                    let seen = match h.health.get(&key) {
                        Some(s) if s.state == state => *s,
                        _ => Seen {
                            state,
                            since: now,
                            from_start: first,
                        },
                    };
                    seen_now.insert(key, seen);
                }
            }
        }
        h.health = seen_now;
        h.samples.push_back(sample);
        while h.samples.len() > HISTORY {
            h.samples.pop_front();
        }
    }

    /// When the sampler started (about when the process did).
    pub(crate) fn started(&self) -> Option<SystemTime> {
        self.started.lock().ok().and_then(|s| *s)
    }

    pub(crate) fn health_since(&self, key: &TargetKey) -> Option<Seen> {
        self.history.lock().ok()?.health.get(key).copied()
    }

    /// The sample taken at least `span` before `now`'s (or the oldest kept), to take
    /// differences against.
    pub(crate) fn baseline(&self, now: &Sample, span: Duration) -> Option<Sample> {
        let h = self.history.lock().ok()?;
        let cutoff = now.at.checked_sub(span);
        h.samples
            .iter()
            .rev()
            .find(|s| cutoff.is_some_and(|c| s.at <= c))
            .or_else(|| h.samples.front())
            .filter(|s| s.at < now.at)
            .cloned()
    }

    /// Requests per second between consecutive samples, oldest first, for the load
    /// balancer (`group` None) or one group: the last minute's shape.
    pub(crate) fn request_rates(&self, group: Option<&str>) -> Vec<f64> {
        let Ok(h) = self.history.lock() else {
            return Vec::new();
        };
        let count = |s: &Sample| match group {
            None => Some(s.lb.requests),
            Some(name) => s.groups.get(name).map(|c| c.requests),
        };
        h.samples
            .iter()
            .zip(h.samples.iter().skip(1))
            .map(|(a, b)| {
                let dt = b.at.duration_since(a.at).as_secs_f64();
                match (count(a), count(b)) {
                    (Some(x), Some(y)) if dt > 0.0 => y.saturating_sub(x) as f64 / dt,
                    _ => 0.0,
                }
            })
            .collect()
    }
}

/// Per-second rate of a counter between two readings.
pub(crate) fn rate(now: u64, then: u64, dt: Duration) -> f64 {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(then) as f64 / secs
}

/// ALB's capacity units: the largest of its four dimensions, per
/// <https://aws.amazon.com/elasticloadbalancing/pricing/>: 25 new connections a second,
/// 3,000 active connections, 1 GB processed an hour, 1,000 rule evaluations a second
/// beyond the first 10 rules of each request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Lcu {
    pub(crate) new_connections_per_second: f64,
    pub(crate) active_connections: f64,
    pub(crate) bytes_per_second: f64,
    /// Rules each request may be matched against beyond ALB's 10 free ones.
    pub(crate) rule_evaluations_per_second: f64,
}

impl Lcu {
    pub(crate) fn consumed(&self) -> f64 {
        let dims = [
            self.new_connections_per_second / 25.0,
            self.active_connections / 3_000.0,
            self.bytes_per_second * 3_600.0 / 1e9,
            self.rule_evaluations_per_second / 1_000.0,
        ];
        dims.into_iter().fold(0.0, f64::max)
    }
}

/// ALB's free rule evaluations per request (LCU pricing).
const FREE_RULES: usize = 10;

/// LCUs the last minute's traffic would consume on ALB. Rule evaluations are counted as
/// if every request were matched against every rule of the largest listener (an upper
/// bound: hostalb counts rule-table evaluations, not rules tried).
pub(crate) fn consumed_lcus(sampler: &Sampler, now: &Sample, snap: &Snapshot, active: i64) -> f64 {
    let Some(then) = sampler.baseline(now, PERCENTILE_SPAN) else {
        return Lcu {
            active_connections: active.max(0) as f64,
            ..Lcu::default()
        }
        .consumed();
    };
    let dt = now.at.duration_since(then.at);
    let rules = snap.listeners.iter().map(|l| l.table.len()).max().unwrap_or(0);
    let paid_rules = rules.saturating_sub(FREE_RULES) as f64;
    Lcu {
        new_connections_per_second: rate(now.lb.new_connections, then.lb.new_connections, dt),
        active_connections: active.max(0) as f64,
        bytes_per_second: rate(now.lb.processed_bytes, then.lb.processed_bytes, dt),
        rule_evaluations_per_second: rate(now.lb.rule_evaluations, then.lb.rule_evaluations, dt) * paid_rules,
    }
    .consumed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcus_are_the_largest_dimension() {
        let lcu = Lcu {
            new_connections_per_second: 50.0,
            active_connections: 1_500.0,
            bytes_per_second: 1e9 / 3_600.0,
            rule_evaluations_per_second: 500.0,
        };
        assert!((lcu.consumed() - 2.0).abs() < 1e-9, "new connections dominate");
        assert_eq!(Lcu::default().consumed(), 0.0);
    }

    /// A sample `secs` after `t0` with `requests` counted by the load balancer and `app`.
    fn at(t0: Instant, secs: u64, requests: u64) -> Sample {
        let mut groups = HashMap::new();
        groups.insert(
            Arc::from("app"),
            Counts {
                requests,
                ..Counts::default()
            },
        );
        Sample {
            at: t0 + Duration::from_secs(secs),
            lb: LbCounts {
                requests,
                ..LbCounts::default()
            },
            groups,
            targets: HashMap::new(),
        }
    }

    fn push(sampler: &Sampler, sample: Sample) {
        if let Ok(mut h) = sampler.history.lock() {
            h.samples.push_back(sample);
            while h.samples.len() > HISTORY {
                h.samples.pop_front();
            }
        }
    }

    #[test]
    fn baselines_are_the_newest_sample_old_enough_and_history_keeps_a_minute() {
        let t0 = Instant::now();
        let sampler = Sampler::default();
        let now = at(t0, 100, 1_000);
        assert!(
            sampler.baseline(&now, RATE_SPAN).is_none(),
            "nothing to compare with"
        );
        for s in 0..100 {
            push(&sampler, at(t0, s, s * 10));
        }
        // 100 samples pushed, the last minute and one kept.
        assert_eq!(
            sampler.history.lock().map(|h| h.samples.len()).unwrap_or(0),
            HISTORY
        );
        let base = sampler.baseline(&now, RATE_SPAN).map(|b| b.lb.requests);
        assert_eq!(base, Some(900), "the sample 10 s before");
        // Older than what is kept: the oldest kept.
        let base = sampler
            .baseline(&now, Duration::from_secs(600))
            .map(|b| b.lb.requests);
        assert_eq!(base, Some(390));
        let rates = sampler.request_rates(Some("app"));
        assert_eq!(rates.len(), HISTORY - 1);
        assert!(rates.iter().all(|r| (*r - 10.0).abs() < 1e-9), "{rates:?}");
        assert!(sampler.request_rates(Some("other")).iter().all(|r| *r == 0.0));
    }

    #[test]
    fn rates_never_go_negative() {
        assert_eq!(rate(10, 20, Duration::from_secs(1)), 0.0);
        assert_eq!(rate(30, 10, Duration::from_secs(2)), 10.0);
        assert_eq!(rate(30, 10, Duration::ZERO), 0.0);
    }
}
