//! `GET /metrics`: the one table of ALB's CloudWatch metrics (alb-spec §7) and their
//! Prometheus names, and the exposition of the counters in `model/metrics.rs`.
//!
//! Names: `hostalb_` and ALB's name in snake_case, with `Count` dropped and the noun made
//! plural (`HTTPCode_ELB_4XX_Count` -> `hostalb_httpcode_elb_4xx_total`, `RequestCount`
//! -> `hostalb_requests_total`); counters end in `_total`, times are in seconds, bytes in
//! bytes. Each counterpart's help text starts with `ALB <CloudWatch name>:`. Labels are
//! ALB's dimensions: `load_balancer` (`app/hostalb/<id>`), `target_group`
//! (`targetgroup/<name>/<id>`), and `target` (`ip:port`) on hostalb's per-target series.

use crate::admin::exposition::{Exposition, Family, Format, Kind};
use crate::admin::sampler::{Sample, Sampler, consumed_lcus};
use crate::admin::server::target_health;
use crate::control::Proxy;
use crate::model::arn::{group_dimension, lb_dimension};
use crate::model::health::State;
use crate::model::metrics::{CLASSES, get};
use crate::model::snapshot::Snapshot;
use crate::model::target::Target;
use crate::model::target_group::GroupRt;

/// A counter that is ALB's metric `$alb`.
macro_rules! alb_counter {
    ($name:literal, $alb:literal, $help:literal) => {
        Family {
            name: $name,
            kind: Kind::Counter,
            unit: None,
            help: concat!("ALB ", $alb, ": ", $help),
        }
    };
}

/// A gauge that is ALB's metric `$alb`.
macro_rules! alb_gauge {
    ($name:literal, $alb:literal, $help:literal) => {
        Family {
            name: $name,
            kind: Kind::Gauge,
            unit: None,
            help: concat!("ALB ", $alb, ": ", $help),
        }
    };
}

/// A metric of hostalb's own (no CloudWatch counterpart).
macro_rules! own {
    ($kind:ident, $name:literal, $help:literal) => {
        Family {
            name: $name,
            kind: Kind::$kind,
            unit: None,
            help: $help,
        }
    };
}

// Load balancer (label `load_balancer`).
const REQUESTS: Family = alb_counter!(
    "hostalb_requests_total",
    "RequestCount",
    "requests for which a target was chosen (a retry is not counted again)"
);
const ACTIVE_CONNECTIONS: Family = alb_gauge!(
    "hostalb_active_connections",
    "ActiveConnectionCount",
    "open client connections (the client side only)"
);
const NEW_CONNECTIONS: Family = alb_counter!(
    "hostalb_new_connections_total",
    "NewConnectionCount",
    "client connections accepted (the client side only)"
);
const REJECTED_CONNECTIONS: Family = alb_counter!(
    "hostalb_rejected_connections_total",
    "RejectedConnectionCount",
    "client connections that could not be accepted"
);
const PROCESSED_BYTES: Family = Family {
    name: "hostalb_processed_bytes_total",
    kind: Kind::Counter,
    unit: Some("bytes"),
    help: "ALB ProcessedBytes: bytes received from and sent to clients",
};
const ELB_3XX: Family = alb_counter!(
    "hostalb_httpcode_elb_3xx_total",
    "HTTPCode_ELB_3XX_Count",
    "redirects answered by hostalb"
);
const ELB_4XX: Family = alb_counter!(
    "hostalb_httpcode_elb_4xx_total",
    "HTTPCode_ELB_4XX_Count",
    "4xx answered by hostalb, fixed responses included (460 is not: it is never sent)"
);
const ELB_5XX: Family = alb_counter!(
    "hostalb_httpcode_elb_5xx_total",
    "HTTPCode_ELB_5XX_Count",
    "5xx answered by hostalb, fixed responses included"
);
const ELB_500: Family = alb_counter!(
    "hostalb_httpcode_elb_500_total",
    "HTTPCode_ELB_500_Count",
    "500 answered by hostalb"
);
const ELB_502: Family = alb_counter!(
    "hostalb_httpcode_elb_502_total",
    "HTTPCode_ELB_502_Count",
    "502 answered by hostalb"
);
const ELB_503: Family = alb_counter!(
    "hostalb_httpcode_elb_503_total",
    "HTTPCode_ELB_503_Count",
    "503 answered by hostalb"
);
const ELB_504: Family = alb_counter!(
    "hostalb_httpcode_elb_504_total",
    "HTTPCode_ELB_504_Count",
    "504 answered by hostalb"
);
const FIXED_RESPONSES: Family = alb_counter!(
    "hostalb_http_fixed_responses_total",
    "HTTP_Fixed_Response_Count",
    "fixed-response actions answered"
);
const REDIRECTS: Family = alb_counter!(
    "hostalb_http_redirects_total",
    "HTTP_Redirect_Count",
    "redirect actions answered"
);
const REDIRECT_URL_LIMIT: Family = alb_counter!(
    "hostalb_http_redirect_url_limit_exceeded_total",
    "HTTP_Redirect_Url_Limit_Exceeded_Count",
    "redirects not made because the Location exceeded 8 KiB (answered 507)"
);
const RULE_EVALUATIONS: Family = alb_counter!(
    "hostalb_rule_evaluations_total",
    "RuleEvaluations",
    "evaluations of a listener's rule table (one per routed request)"
);
const NON_STICKY: Family = alb_counter!(
    "hostalb_non_sticky_requests_total",
    "NonStickyRequestCount",
    "requests whose stickiness cookie could not be honoured and got a new target"
);
const DESYNC_NON_COMPLIANT: Family = alb_counter!(
    "hostalb_desync_mitigation_mode_non_compliant_requests_total",
    "DesyncMitigationMode_NonCompliant_Request_Count",
    "requests desync mitigation did not classify Compliant"
);
const DROPPED_INVALID_HEADER: Family = alb_counter!(
    "hostalb_dropped_invalid_header_requests_total",
    "DroppedInvalidHeaderRequestCount",
    "requests whose invalid header fields were dropped (not counted yet: 0)"
);
const FORWARDED_INVALID_HEADER: Family = alb_counter!(
    "hostalb_forwarded_invalid_header_requests_total",
    "ForwardedInvalidHeaderRequestCount",
    "requests forwarded with invalid header fields (not counted yet: 0)"
);
const CLIENT_TLS_ERRORS: Family = alb_counter!(
    "hostalb_client_tls_negotiation_errors_total",
    "ClientTLSNegotiationErrorCount",
    "failed TLS handshakes with clients"
);
const GRPC_REQUESTS: Family = alb_counter!(
    "hostalb_grpc_requests_total",
    "GrpcRequestCount",
    "gRPC requests (the HTTP/1 front end takes none)"
);
const IPV6_REQUESTS: Family = alb_counter!(
    "hostalb_ipv6_requests_total",
    "IPv6RequestCount",
    "requests from IPv6 clients"
);
const CONSUMED_LCUS: Family = alb_gauge!(
    "hostalb_consumed_lcus",
    "ConsumedLCUs",
    "capacity units the last minute's traffic would consume on ALB (an estimate, see the README)"
);

// Target group (labels `load_balancer`, `target_group`).
const GROUP_REQUESTS: Family = alb_counter!(
    "hostalb_target_group_requests_total",
    "RequestCount by TargetGroup",
    "requests for which a target of the group was chosen"
);
const RESPONSE_TIME: Family = Family {
    name: "hostalb_target_response_time_seconds",
    kind: Kind::Histogram,
    unit: Some("seconds"),
    help: "ALB TargetResponseTime: seconds from the request sent to a target to its response head",
};
const TARGET_CLASSES: [Family; 4] = [
    alb_counter!(
        "hostalb_httpcode_target_2xx_total",
        "HTTPCode_Target_2XX_Count",
        "2xx responses from targets"
    ),
    alb_counter!(
        "hostalb_httpcode_target_3xx_total",
        "HTTPCode_Target_3XX_Count",
        "3xx responses from targets"
    ),
    alb_counter!(
        "hostalb_httpcode_target_4xx_total",
        "HTTPCode_Target_4XX_Count",
        "4xx responses from targets"
    ),
    alb_counter!(
        "hostalb_httpcode_target_5xx_total",
        "HTTPCode_Target_5XX_Count",
        "5xx responses from targets"
    ),
];
const HEALTHY_HOSTS: Family = alb_gauge!(
    "hostalb_healthy_hosts",
    "HealthyHostCount",
    "registered targets in state healthy"
);
const UNHEALTHY_HOSTS: Family = alb_gauge!(
    "hostalb_unhealthy_hosts",
    "UnHealthyHostCount",
    "registered targets in state unhealthy"
);
const TARGET_CONNECTION_ERRORS: Family = alb_counter!(
    "hostalb_target_connection_errors_total",
    "TargetConnectionErrorCount",
    "connections to targets that failed"
);
const TARGET_TLS_ERRORS: Family = alb_counter!(
    "hostalb_target_tls_negotiation_errors_total",
    "TargetTLSNegotiationErrorCount",
    "failed or timed-out TLS handshakes with HTTPS targets"
);
const UNHEALTHY_ROUTING: Family = alb_counter!(
    "hostalb_unhealthy_routing_requests_total",
    "UnhealthyRoutingRequestCount",
    "requests routed while no target was healthy (fail-open)"
);
const HEALTHY_STATE_ROUTING: Family = alb_gauge!(
    "hostalb_healthy_state_routing",
    "HealthyStateRouting",
    "1 when the group routes to its healthy targets (hostalb is one zone)"
);
const UNHEALTHY_STATE_ROUTING: Family = alb_gauge!(
    "hostalb_unhealthy_state_routing",
    "UnhealthyStateRouting",
    "1 when no target is healthy and the group routes to all of them (fail-open)"
);
const ANOMALOUS_HOSTS: Family = alb_gauge!(
    "hostalb_anomalous_hosts",
    "AnomalousHostCount",
    "targets found anomalous (hostalb does no anomaly detection: 0)"
);
const MITIGATED_HOSTS: Family = alb_gauge!(
    "hostalb_mitigated_hosts",
    "MitigatedHostCount",
    "targets under anomaly mitigation (none: 0)"
);

// Per target (labels `load_balancer`, `target_group`, `target`).
const PER_TARGET_REQUESTS: Family = alb_counter!(
    "hostalb_per_target_requests_total",
    "RequestCountPerTarget",
    "requests sent to each target, retries included"
);
const PER_TARGET_RESPONSES: Family = own!(
    Counter,
    "hostalb_per_target_responses_total",
    "Responses from each target by status class (code: 2xx, 3xx, 4xx, 5xx)"
);
const PER_TARGET_RESPONSE_TIME: Family = Family {
    name: "hostalb_per_target_response_time_seconds",
    kind: Kind::Histogram,
    unit: Some("seconds"),
    help: "TargetResponseTime of each target: seconds from the request sent to its response head",
};
const PER_TARGET_CONNECTION_ERRORS: Family = own!(
    Counter,
    "hostalb_per_target_connection_errors_total",
    "Connections to each target that failed"
);
const PER_TARGET_IN_FLIGHT: Family = own!(
    Gauge,
    "hostalb_per_target_in_flight",
    "Requests each target is serving now"
);
const PER_TARGET_HEALTH: Family = own!(
    Gauge,
    "hostalb_per_target_health",
    "1 for each target's health state as DescribeTargetHealth reports it, 0 for the others"
);

// hostalb's own (label `load_balancer`).
const CLIENT_CLOSED: Family = own!(
    Counter,
    "hostalb_httpcode_elb_460_total",
    "Requests whose client closed the connection before hostalb answered (ALB logs 460 and never sends it: not in HTTPCode_ELB_4XX_Count)"
);
const ELB_ANSWERS: Family = own!(
    Counter,
    "hostalb_elb_answers_total",
    "Status codes hostalb produced itself, by code and reason (460 included)"
);
const RELOADS: Family = own!(
    Counter,
    "hostalb_reloads_total",
    "Configurations applied by a reload"
);
const RELOAD_FAILURES: Family = own!(
    Counter,
    "hostalb_reload_failures_total",
    "Reloads refused (the running configuration kept serving)"
);
const ACCESS_LOG_DROPPED: Family = own!(
    Counter,
    "hostalb_access_log_dropped_total",
    "Access log entries dropped because the writer could not keep up"
);
const BUDGET_CLOSED: Family = own!(
    Counter,
    "hostalb_budget_closed_connections_total",
    "Idle client connections closed to make room under max_client_connections"
);
const BUDGET_WAITS: Family = own!(
    Counter,
    "hostalb_budget_waits_total",
    "Times accepting paused at max_client_connections with no idle connection to close"
);
const MAX_CLIENT_CONNECTIONS: Family = own!(
    Gauge,
    "hostalb_max_client_connections",
    "Client connections held at most (max_client_connections, or derived from the descriptor limit)"
);

/// The health states a target can report, each a series of `hostalb_per_target_health`.
const STATES: [State; 6] = [
    State::Initial,
    State::Healthy,
    State::Unhealthy,
    State::Draining,
    State::Unused,
    State::Unavailable,
];

/// Every family, in the order `/metrics` writes them.
#[cfg(test)]
pub(crate) fn families() -> Vec<&'static Family> {
    let mut all: Vec<&'static Family> = vec![
        &REQUESTS,
        &ACTIVE_CONNECTIONS,
        &NEW_CONNECTIONS,
        &REJECTED_CONNECTIONS,
        &PROCESSED_BYTES,
        &ELB_3XX,
        &ELB_4XX,
        &ELB_5XX,
        &ELB_500,
        &ELB_502,
        &ELB_503,
        &ELB_504,
        &FIXED_RESPONSES,
        &REDIRECTS,
        &REDIRECT_URL_LIMIT,
        &RULE_EVALUATIONS,
        &NON_STICKY,
        &DESYNC_NON_COMPLIANT,
        &DROPPED_INVALID_HEADER,
        &FORWARDED_INVALID_HEADER,
        &CLIENT_TLS_ERRORS,
        &GRPC_REQUESTS,
        &IPV6_REQUESTS,
        &CONSUMED_LCUS,
        &GROUP_REQUESTS,
        &RESPONSE_TIME,
    ];
    all.extend(TARGET_CLASSES.iter());
    all.extend([
        &HEALTHY_HOSTS,
        &UNHEALTHY_HOSTS,
        &TARGET_CONNECTION_ERRORS,
        &TARGET_TLS_ERRORS,
        &UNHEALTHY_ROUTING,
        &HEALTHY_STATE_ROUTING,
        &UNHEALTHY_STATE_ROUTING,
        &ANOMALOUS_HOSTS,
        &MITIGATED_HOSTS,
        &PER_TARGET_REQUESTS,
        &PER_TARGET_RESPONSES,
        &PER_TARGET_RESPONSE_TIME,
        &PER_TARGET_CONNECTION_ERRORS,
        &PER_TARGET_IN_FLIGHT,
        &PER_TARGET_HEALTH,
        &CLIENT_CLOSED,
        &ELB_ANSWERS,
        &RELOADS,
        &RELOAD_FAILURES,
        &ACCESS_LOG_DROPPED,
        &BUDGET_CLOSED,
        &BUDGET_WAITS,
        &MAX_CLIENT_CONNECTIONS,
    ]);
    all
}

/// The exposition of everything `proxy` counts, in `format`.
pub(crate) fn render(proxy: &Proxy, snap: &Snapshot, sampler: &Sampler, format: Format) -> String {
    let m = &proxy.shared().metrics;
    let lb = lb_dimension();
    let lb_labels: [(&str, &str); 1] = [("load_balancer", &lb)];
    let mut e = Exposition::new(format);

    let active = m.active_connections.load(std::sync::atomic::Ordering::Relaxed);
    // ALB's metrics in alb-spec §7's order.
    let lb_values: [(&Family, u64); 23] = [
        (&REQUESTS, get(&m.request_count)),
        (&ACTIVE_CONNECTIONS, active.max(0) as u64),
        (&NEW_CONNECTIONS, get(&m.new_connections)),
        (&REJECTED_CONNECTIONS, get(&m.rejected_connections)),
        (&PROCESSED_BYTES, get(&m.processed_bytes)),
        (&ELB_3XX, get(&m.elb_3xx)),
        (&ELB_4XX, get(&m.elb_4xx)),
        (&ELB_5XX, get(&m.elb_5xx)),
        (&ELB_500, get(&m.elb_500)),
        (&ELB_502, get(&m.elb_502)),
        (&ELB_503, get(&m.elb_503)),
        (&ELB_504, get(&m.elb_504)),
        (&FIXED_RESPONSES, get(&m.fixed_responses)),
        (&REDIRECTS, get(&m.redirects)),
        (&REDIRECT_URL_LIMIT, get(&m.redirect_url_limit_exceeded)),
        (&RULE_EVALUATIONS, get(&m.rule_evaluations)),
        (&NON_STICKY, get(&m.non_sticky_requests)),
        (&DESYNC_NON_COMPLIANT, get(&m.desync_non_compliant)),
        (&DROPPED_INVALID_HEADER, get(&m.dropped_invalid_header_requests)),
        (
            &FORWARDED_INVALID_HEADER,
            get(&m.forwarded_invalid_header_requests),
        ),
        (&CLIENT_TLS_ERRORS, get(&m.client_tls_negotiation_errors)),
        (&GRPC_REQUESTS, get(&m.grpc_requests)),
        (&IPV6_REQUESTS, get(&m.ipv6_requests)),
    ];
    for (family, value) in lb_values {
        e.family(family);
        e.int(&lb_labels, value);
    }
    e.family(&CONSUMED_LCUS);
    let now = Sample::take(m, snap);
    e.float(&lb_labels, consumed_lcus(sampler, &now, snap, active));

    // Target groups.
    let groups: Vec<(&GroupRt, String)> = snap
        .groups
        .iter()
        .map(|g| (&**g, group_dimension(g.name())))
        .collect();
    let per_group = |e: &mut Exposition, family: &Family, value: &dyn Fn(&GroupRt) -> u64| {
        e.family(family);
        for (g, tg) in &groups {
            e.int(&[("load_balancer", &lb), ("target_group", tg)], value(g));
        }
    };
    per_group(&mut e, &GROUP_REQUESTS, &|g| get(&g.state.metrics.request_count));
    e.family(&RESPONSE_TIME);
    for (g, tg) in &groups {
        e.histogram(
            &[("load_balancer", &lb), ("target_group", tg)],
            &g.state.metrics.responses.time.read(),
        );
    }
    for (i, family) in TARGET_CLASSES.iter().enumerate() {
        per_group(&mut e, family, &|g| g.state.metrics.responses.classes()[i]);
    }
    per_group(&mut e, &HEALTHY_HOSTS, &|g| hosts_in(g, State::Healthy));
    per_group(&mut e, &UNHEALTHY_HOSTS, &|g| hosts_in(g, State::Unhealthy));
    per_group(&mut e, &TARGET_CONNECTION_ERRORS, &|g| {
        get(&g.state.metrics.target_connection_errors)
    });
    per_group(&mut e, &TARGET_TLS_ERRORS, &|g| {
        get(&g.state.metrics.target_tls_negotiation_errors)
    });
    per_group(&mut e, &UNHEALTHY_ROUTING, &|g| {
        get(&g.state.metrics.unhealthy_routing_requests)
    });
    per_group(&mut e, &HEALTHY_STATE_ROUTING, &|g| {
        u64::from(!g.registered.is_empty() && !g.fail_open)
    });
    per_group(&mut e, &UNHEALTHY_STATE_ROUTING, &|g| {
        u64::from(!g.registered.is_empty() && g.fail_open)
    });
    per_group(&mut e, &ANOMALOUS_HOSTS, &|_| 0);
    per_group(&mut e, &MITIGATED_HOSTS, &|_| 0);

    // Targets: registered and draining ones.
    let targets: Vec<(&GroupRt, &str, &Target, bool, String)> = groups
        .iter()
        .flat_map(|(g, tg)| {
            let registered = g.registered.iter().map(|t| (&**t, false));
            let draining = g.draining.iter().map(|t| (&**t, true));
            registered
                .chain(draining)
                .map(move |(t, d)| (*g, tg.as_str(), t, d, t.addr.to_string()))
        })
        .collect();
    let per_target = |e: &mut Exposition, family: &Family, value: &dyn Fn(&Target) -> u64| {
        e.family(family);
        for (_, tg, t, _, addr) in &targets {
            e.int(
                &[("load_balancer", &lb), ("target_group", tg), ("target", addr)],
                value(t),
            );
        }
    };
    per_target(&mut e, &PER_TARGET_REQUESTS, &|t| get(&t.requests));
    e.family(&PER_TARGET_RESPONSES);
    for (_, tg, t, _, addr) in &targets {
        for (class, n) in CLASSES.iter().zip(t.metrics.responses.classes()) {
            e.int(
                &[
                    ("load_balancer", &lb),
                    ("target_group", tg),
                    ("target", addr),
                    ("code", class),
                ],
                n,
            );
        }
    }
    e.family(&PER_TARGET_RESPONSE_TIME);
    for (_, tg, t, _, addr) in &targets {
        e.histogram(
            &[("load_balancer", &lb), ("target_group", tg), ("target", addr)],
            &t.metrics.responses.time.read(),
        );
    }
    per_target(&mut e, &PER_TARGET_CONNECTION_ERRORS, &|t| {
        get(&t.connection_errors)
    });
    per_target(&mut e, &PER_TARGET_IN_FLIGHT, &|t| get(&t.in_flight));
    e.family(&PER_TARGET_HEALTH);
    for (g, tg, t, draining, addr) in &targets {
        let state = target_health(g, t, *draining).0;
        for s in STATES {
            e.int(
                &[
                    ("load_balancer", &lb),
                    ("target_group", tg),
                    ("target", addr),
                    ("state", s.as_str()),
                ],
                u64::from(s == state),
            );
        }
    }

    // hostalb's own.
    e.family(&CLIENT_CLOSED);
    e.int(&lb_labels, get(&m.client_closed));
    e.family(&ELB_ANSWERS);
    if let Ok(reasons) = m.elb_reasons.lock() {
        for ((status, reason), count) in reasons.iter() {
            let code = status.to_string();
            e.int(
                &[("load_balancer", &lb), ("code", &code), ("reason", reason)],
                *count,
            );
        }
    }
    for (family, value) in [
        (&RELOADS, get(&m.reloads)),
        (&RELOAD_FAILURES, get(&m.reload_failures)),
        (&ACCESS_LOG_DROPPED, get(&m.access_log_dropped)),
        (&BUDGET_CLOSED, get(&m.budget_closed_connections)),
        (&BUDGET_WAITS, get(&m.budget_waits)),
        (&MAX_CLIENT_CONNECTIONS, proxy.shared().budget.limit() as u64),
    ] {
        e.family(family);
        e.int(&lb_labels, value);
    }
    e.finish()
}

/// Registered targets (draining ones are not) whose reported state is `state`.
fn hosts_in(g: &GroupRt, state: State) -> u64 {
    g.registered
        .iter()
        .filter(|t| target_health(g, t, false).0 == state)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_scheme() {
        let all = families();
        let mut names: Vec<&str> = all.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a family name is used twice");
        for f in all {
            assert!(f.name.starts_with("hostalb_"), "{}", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                f.name
            );
            assert_eq!(f.kind == Kind::Counter, f.name.ends_with("_total"), "{}", f.name);
            for reserved in ["_count", "_sum", "_bucket"] {
                assert!(!f.name.ends_with(reserved), "{} ends in {reserved}", f.name);
            }
            if let Some(unit) = f.unit {
                let base = f.name.strip_suffix("_total").unwrap_or(f.name);
                assert!(base.ends_with(unit), "{} and unit {unit}", f.name);
            }
        }
    }

    #[test]
    fn every_alb_metric_of_the_spec_has_one_counterpart() {
        // alb-spec §7, in its order.
        let spec = [
            "RequestCount",
            "ActiveConnectionCount",
            "NewConnectionCount",
            "RejectedConnectionCount",
            "ProcessedBytes",
            "HTTPCode_ELB_3XX_Count",
            "HTTPCode_ELB_4XX_Count",
            "HTTPCode_ELB_5XX_Count",
            "HTTPCode_ELB_500_Count",
            "HTTPCode_ELB_502_Count",
            "HTTPCode_ELB_503_Count",
            "HTTPCode_ELB_504_Count",
            "HTTP_Fixed_Response_Count",
            "HTTP_Redirect_Count",
            "HTTP_Redirect_Url_Limit_Exceeded_Count",
            "RuleEvaluations",
            "NonStickyRequestCount",
            "DesyncMitigationMode_NonCompliant_Request_Count",
            "DroppedInvalidHeaderRequestCount",
            "ForwardedInvalidHeaderRequestCount",
            "ClientTLSNegotiationErrorCount",
            "GrpcRequestCount",
            "IPv6RequestCount",
            "ConsumedLCUs",
            "TargetResponseTime",
            "HTTPCode_Target_2XX_Count",
            "HTTPCode_Target_3XX_Count",
            "HTTPCode_Target_4XX_Count",
            "HTTPCode_Target_5XX_Count",
            "HealthyHostCount",
            "UnHealthyHostCount",
            "RequestCountPerTarget",
            "TargetConnectionErrorCount",
            "TargetTLSNegotiationErrorCount",
            "UnhealthyRoutingRequestCount",
            "HealthyStateRouting",
            "UnhealthyStateRouting",
            "AnomalousHostCount",
            "MitigatedHostCount",
        ];
        let counterparts: Vec<&str> = families()
            .iter()
            .filter_map(|f| f.help.strip_prefix("ALB "))
            .filter_map(|h| h.split_once(':').map(|(alb, _)| alb))
            .collect();
        for alb in spec {
            let n = counterparts.iter().filter(|c| **c == alb).count();
            assert_eq!(n, 1, "{alb} has {n} counterparts");
        }
    }
}
