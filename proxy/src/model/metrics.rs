//! The counters the request path bumps, next to what they count: load-balancer-wide
//! ([`Metrics`]), per target group ([`GroupMetrics`], in the group's state that survives
//! reloads) and per target ([`TargetMetrics`], in the target). They are named after ALB's
//! CloudWatch metrics (alb-spec §7); their Prometheus exposition, with the one table of
//! ALB names, is `admin/prometheus.rs`.
//!
//! Every counter is a relaxed atomic: it is read only for reporting, never to make a
//! decision, so no ordering between counters is promised. A scrape may see a response
//! counted in its status class and not yet in the histogram; it never sees a counter go
//! back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Load-balancer-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Requests for which a target was chosen (ALB's `RequestCount`).
    pub(crate) request_count: AtomicU64,
    pub(crate) active_connections: AtomicI64,
    pub(crate) new_connections: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) processed_bytes: AtomicU64,
    pub(crate) elb_3xx: AtomicU64,
    pub(crate) elb_4xx: AtomicU64,
    pub(crate) elb_5xx: AtomicU64,
    pub(crate) elb_500: AtomicU64,
    pub(crate) elb_502: AtomicU64,
    pub(crate) elb_503: AtomicU64,
    pub(crate) elb_504: AtomicU64,
    /// Requests whose client closed the connection before hostalb answered: ALB logs them
    /// with 460 and never sends it, and they are no `HTTPCode_ELB_4XX_Count`.
    pub(crate) client_closed: AtomicU64,
    pub(crate) fixed_responses: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) redirect_url_limit_exceeded: AtomicU64,
    pub(crate) rule_evaluations: AtomicU64,
    pub(crate) non_sticky_requests: AtomicU64,
    pub(crate) desync_non_compliant: AtomicU64,
    /// Requests whose invalid header fields were dropped (`drop_invalid_header_fields`).
    pub(crate) dropped_invalid_header_requests: AtomicU64,
    /// Requests forwarded with invalid header fields (`drop_invalid_header_fields` off).
    pub(crate) forwarded_invalid_header_requests: AtomicU64,
    /// gRPC requests (HTTP/2 requests with a `application/grpc*` content type).
    pub(crate) grpc_requests: AtomicU64,
    pub(crate) ipv6_requests: AtomicU64,
    pub(crate) client_tls_negotiation_errors: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) reload_failures: AtomicU64,
    /// Access log entries dropped because the writer could not keep up.
    pub(crate) access_log_dropped: AtomicU64,
    /// Idle client connections closed to make room under `max_client_connections`.
    pub(crate) budget_closed_connections: AtomicU64,
    /// Times accepting paused at `max_client_connections` with no idle connection to close
    /// (new connections waited in the backlog).
    pub(crate) budget_waits: AtomicU64,
    /// ELB-generated answers by status and reason (errors are rare: a lock is fine).
    pub(crate) elb_reasons: Mutex<BTreeMap<(u16, &'static str), u64>>,
}

/// The status ALB logs for a request whose client went away before the answer.
pub(crate) const CLIENT_CLOSED: u16 = 460;

impl Metrics {
    /// Counts an answer hostalb generated itself (errors, fixed responses, redirects), and
    /// a 460 (logged, never sent) apart from the answers.
    pub(crate) fn count_elb_answer(&self, status: u16, reason: &'static str) {
        if status == CLIENT_CLOSED {
            inc(&self.client_closed);
        } else {
            match status / 100 {
                3 => inc(&self.elb_3xx),
                4 => inc(&self.elb_4xx),
                5 => inc(&self.elb_5xx),
                _ => {}
            }
            match status {
                500 => inc(&self.elb_500),
                502 => inc(&self.elb_502),
                503 => inc(&self.elb_503),
                504 => inc(&self.elb_504),
                _ => {}
            }
        }
        if let Ok(mut m) = self.elb_reasons.lock() {
            *m.entry((status, reason)).or_default() += 1;
        }
    }
}

#[inline]
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

/// Upper bounds (inclusive, Prometheus' `le`) of the response-time buckets, in
/// microseconds: 1 ms to 10 s in 1-2.5-5 steps. A proxy's targets answer in about a
/// millisecond when healthy and its idle timeout cuts them at tens of seconds; finer steps
/// would cost scrape size on every group and target for little better quantiles.
pub(crate) const BUCKET_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// The bucket count, the last one unbounded (`+Inf`).
pub(crate) const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// A histogram of durations with fixed buckets. Observing is one bucket increment and one
/// addition to the sum: two relaxed atomics, no lock, no allocation. Counts are kept per
/// bucket (not cumulative), so the count of observations is the sum of the buckets and
/// always agrees with them.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// The bucket a duration falls in. A linear scan: healthy targets land in the first
/// bucket or two, so it usually ends at the first comparison.
#[inline]
fn bucket_of(us: u64) -> usize {
    BUCKET_BOUNDS_US
        .iter()
        .position(|&bound| us <= bound)
        .unwrap_or(BUCKETS - 1)
}

impl Histogram {
    #[inline]
    pub(crate) fn observe_us(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The counts now, for reporting.
    pub(crate) fn read(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's counts at one moment (or the difference of two moments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HistogramCounts {
    /// Per bucket, not cumulative; the last is `+Inf`.
    pub(crate) buckets: [u64; BUCKETS],
    pub(crate) sum_us: u64,
}

impl HistogramCounts {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Cumulative counts, as Prometheus' `_bucket` series carry them.
    pub(crate) fn cumulative(&self) -> [u64; BUCKETS] {
        let mut acc = 0;
        std::array::from_fn(|i| {
            acc += self.buckets[i];
            acc
        })
    }

    /// What was observed since `earlier` (a counter that went back, which a correct
    /// histogram never does, counts as nothing observed).
    pub(crate) fn since(&self, earlier: &HistogramCounts) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// The `q`-quantile (0..=1) in seconds, estimated as Prometheus' `histogram_quantile`
    /// does: linear within the bucket that holds it, the first bucket starting at 0, and
    /// the highest finite bound for what lies in `+Inf`. `None` with no observation.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper_us) = BUCKET_BOUNDS_US.get(i) else {
                    return Some(BUCKET_BOUNDS_US[BUCKETS - 2] as f64 / 1e6);
                };
                let lower_us = if i == 0 { 0 } else { BUCKET_BOUNDS_US[i - 1] };
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                let us = lower_us as f64 + (upper_us - lower_us) as f64 * within;
                return Some(us / 1e6);
            }
            below += n;
        }
        None
    }
}

/// Responses from targets: by status class (ALB's `HTTPCode_Target_{2,3,4,5}XX_Count`) and
/// the time from the request sent to the response head (`TargetResponseTime`).
#[derive(Debug, Default)]
pub(crate) struct Responses {
    /// 2xx, 3xx, 4xx, 5xx. A 1xx head (a 101 upgrade) is in the histogram only.
    classes: [AtomicU64; 4],
    pub(crate) time: Histogram,
}

/// Index of each status class in [`Responses`]' counts.
pub(crate) const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

impl Responses {
    /// Records a response head: its class, and its time in microseconds.
    #[inline]
    pub(crate) fn record(&self, status: u16, elapsed_us: u64) {
        if let Some(class) = (status / 100)
            .checked_sub(2)
            .and_then(|i| self.classes.get(usize::from(i)))
        {
            class.fetch_add(1, Relaxed);
        }
        self.time.observe_us(elapsed_us);
    }

    /// Counts by class, in [`CLASSES`]' order.
    pub(crate) fn classes(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.classes[i].load(Relaxed))
    }
}

/// Per target group counters; they survive reloads with the group.
#[derive(Debug, Default)]
pub(crate) struct GroupMetrics {
    pub(crate) request_count: AtomicU64,
    pub(crate) responses: Responses,
    pub(crate) target_connection_errors: AtomicU64,
    /// Failed TLS handshakes with HTTPS targets (ALB's `TargetTLSNegotiationErrorCount`).
    pub(crate) target_tls_negotiation_errors: AtomicU64,
    /// Requests routed while no target was healthy (ALB fails open).
    pub(crate) unhealthy_routing_requests: AtomicU64,
}

/// Per target counters (beyond the request and connection-error counts the target keeps
/// for balancing): they live as long as the target's registration.
#[derive(Debug, Default)]
pub(crate) struct TargetMetrics {
    pub(crate) responses: Responses,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(durations_us: &[u64]) -> HistogramCounts {
        let h = Histogram::default();
        for &us in durations_us {
            h.observe_us(us);
        }
        h.read()
    }

    #[test]
    fn each_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        // Bounds are inclusive (`le`): exactly 1 ms is in the first bucket.
        let cases: [(u64, usize); 9] = [
            (0, 0),
            (999, 0),
            (1_000, 0),
            (1_001, 1),
            (2_500, 1),
            (9_999, 3),
            (1_000_000, 9),
            (10_000_000, 12),
            (10_000_001, 13),
        ];
        for (us, bucket) in cases {
            assert_eq!(bucket_of(us), bucket, "{us} µs");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn counts_sum_and_cumulative_buckets_agree() {
        let h = observed(&[200, 800, 1_500, 40_000, 3_000_000, 60_000_000]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum_us, 200 + 800 + 1_500 + 40_000 + 3_000_000 + 60_000_000);
        assert!((h.sum_seconds() - 63.0425).abs() < 1e-9);
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], 2, "<= 1 ms");
        assert_eq!(cumulative[1], 3, "<= 2.5 ms");
        assert_eq!(cumulative[5], 4, "<= 50 ms");
        assert_eq!(cumulative[11], 5, "<= 5 s");
        assert_eq!(cumulative[12], 5, "<= 10 s");
        assert_eq!(cumulative[BUCKETS - 1], 6, "+Inf holds everything");
        assert!(cumulative.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_as_prometheus_does() {
        assert_eq!(observed(&[]).quantile(0.5), None);
        // 100 observations in (1 ms, 2.5 ms]: the median is halfway through that bucket.
        let h = observed(&[2_000; 100]);
        let p50 = h.quantile(0.5).unwrap_or_default();
        assert!((p50 - 0.00175).abs() < 1e-9, "{p50}");
        assert!((h.quantile(1.0).unwrap_or_default() - 0.0025).abs() < 1e-9);
        // 90 fast, 10 slow: p50 stays in the first bucket, p99 in the slow one.
        let mut mixed = vec![500; 90];
        mixed.extend([300_000; 10]);
        let h = observed(&mixed);
        assert!(h.quantile(0.5).unwrap_or_default() <= 0.001);
        let p99 = h.quantile(0.99).unwrap_or_default();
        assert!(p99 > 0.25 && p99 <= 0.5, "{p99}");
        // Beyond the last bound: the last finite bound, as histogram_quantile answers.
        assert_eq!(observed(&[20_000_000]).quantile(0.5), Some(10.0));
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let h = Histogram::default();
        h.observe_us(500);
        let before = h.read();
        h.observe_us(700);
        h.observe_us(30_000);
        let window = h.read().since(&before);
        assert_eq!(window.count(), 2);
        assert_eq!(window.sum_us, 30_700);
        assert_eq!(window.buckets[0], 1);
        assert_eq!(window.buckets[5], 1, "30 ms is in (25 ms, 50 ms]");
        assert_eq!(before.since(&h.read()).count(), 0, "never negative");
    }

    #[test]
    fn responses_count_status_classes_and_time_every_head() {
        let r = Responses::default();
        for status in [200, 204, 301, 404, 503, 101, 600] {
            r.record(status, 1_000);
        }
        assert_eq!(r.classes(), [2, 1, 1, 1]);
        assert_eq!(r.time.read().count(), 7, "1xx and odd codes are timed too");
    }

    #[test]
    fn a_460_is_counted_apart_from_the_elb_4xx() {
        let m = Metrics::default();
        m.count_elb_answer(CLIENT_CLOSED, "ClientClosed");
        m.count_elb_answer(400, "BadRequest");
        m.count_elb_answer(502, "TargetClosed");
        assert_eq!(get(&m.client_closed), 1);
        assert_eq!(get(&m.elb_4xx), 1);
        assert_eq!((get(&m.elb_5xx), get(&m.elb_502)), (1, 1));
        let reasons = m.elb_reasons.lock().map(|r| r.clone()).unwrap_or_default();
        assert_eq!(reasons.get(&(460, "ClientClosed")), Some(&1));
    }
}
