//! Counters named after ALB's CloudWatch metrics (alb-spec §7), exported by the admin
//! API in Prometheus text format. Every counter is a relaxed atomic: it is read only for
//! reporting, never to make a decision.

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
    pub(crate) fixed_responses: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) redirect_url_limit_exceeded: AtomicU64,
    pub(crate) rule_evaluations: AtomicU64,
    pub(crate) non_sticky_requests: AtomicU64,
    pub(crate) desync_non_compliant: AtomicU64,
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

impl Metrics {
    /// Counts an answer hostalb generated itself (errors, fixed responses, redirects).
    pub(crate) fn count_elb_answer(&self, status: u16, reason: &'static str) {
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
        if let Ok(mut m) = self.elb_reasons.lock() {
            *m.entry((status, reason)).or_default() += 1;
        }
    }
}

#[inline]
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Per target group counters; they survive reloads with the group.
#[derive(Debug, Default)]
pub(crate) struct GroupMetrics {
    pub(crate) request_count: AtomicU64,
    pub(crate) target_2xx: AtomicU64,
    pub(crate) target_3xx: AtomicU64,
    pub(crate) target_4xx: AtomicU64,
    pub(crate) target_5xx: AtomicU64,
    pub(crate) target_connection_errors: AtomicU64,
    /// Requests routed while no target was healthy (ALB fails open).
    pub(crate) unhealthy_routing_requests: AtomicU64,
    /// Sum of target response times in microseconds, and their count.
    pub(crate) response_time_us: AtomicU64,
    pub(crate) responses: AtomicU64,
}

impl GroupMetrics {
    pub(crate) fn count_target_status(&self, status: u16) {
        match status / 100 {
            2 => inc(&self.target_2xx),
            3 => inc(&self.target_3xx),
            4 => inc(&self.target_4xx),
            5 => inc(&self.target_5xx),
            _ => {}
        }
    }
}

/// Prometheus text exposition, written line by line.
pub(crate) struct Exposition {
    out: String,
    declared: std::collections::HashSet<&'static str>,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(8192),
            declared: Default::default(),
        }
    }

    pub(crate) fn sample(
        &mut self,
        name: &'static str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if self.declared.insert(name) {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

pub(crate) fn get(c: &AtomicU64) -> f64 {
    c.load(Relaxed) as f64
}
