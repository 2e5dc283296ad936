//! What the live dashboard shows, built once per request of the page (or of its JSON,
//! `GET /api/dashboard`) from the snapshot, the counters now and the sampler's history:
//! per listener and rule, per target group and target, the rates of the last
//! [`RATE_SPAN`], the percentiles of the last [`PERCENTILE_SPAN`], health with its reason
//! and since when, the container behind each target, Docker discovery, the configuration
//! and its last reload, and the warnings an operator should act on.

use std::time::{Duration, SystemTime};

use hostalb_config::{self as cfg, Action, Condition};
use serde::Serialize;

use crate::admin::config_log::ConfigLog;
use crate::admin::sampler::{
    Counts, PERCENTILE_SPAN, RATE_SPAN, Sample, Sampler, Seen, TargetKey, consumed_lcus, rate,
};
use crate::admin::server::target_health;
use crate::control::{DiscoveryReport, Proxy};
use crate::model::arn::{group_dimension, lb_dimension};
use crate::model::health::State;
use crate::model::metrics::get;
use crate::model::snapshot::Snapshot;
use crate::model::target_group::GroupRt;

/// Traffic of a group or a target: rates over [`RATE_SPAN`], percentiles over
/// [`PERCENTILE_SPAN`], totals since start.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Traffic {
    pub(crate) requests_per_second: f64,
    pub(crate) requests_total: u64,
    pub(crate) http_4xx_per_second: f64,
    pub(crate) http_5xx_per_second: f64,
    pub(crate) http_2xx_total: u64,
    pub(crate) http_4xx_total: u64,
    pub(crate) http_5xx_total: u64,
    /// Responses timed in the percentile window.
    pub(crate) responses_in_window: u64,
    /// Seconds; absent with no response in the window.
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
    pub(crate) p99: Option<f64>,
    pub(crate) connection_errors_total: u64,
}

impl Traffic {
    fn from(now: &Counts, rate_base: Option<(&Counts, Duration)>, pct_base: Option<&Counts>) -> Traffic {
        let (requests_per_second, http_4xx_per_second, http_5xx_per_second) = match rate_base {
            Some((then, dt)) => (
                rate(now.requests, then.requests, dt),
                rate(now.classes[2], then.classes[2], dt),
                rate(now.classes[3], then.classes[3], dt),
            ),
            None => (0.0, 0.0, 0.0),
        };
        let window = match pct_base {
            Some(then) => now.time.since(&then.time),
            None => now.time,
        };
        Traffic {
            requests_per_second,
            requests_total: now.requests,
            http_4xx_per_second,
            http_5xx_per_second,
            http_2xx_total: now.classes[0],
            http_4xx_total: now.classes[2],
            http_5xx_total: now.classes[3],
            responses_in_window: window.count(),
            p50: window.quantile(0.5),
            p90: window.quantile(0.9),
            p99: window.quantile(0.99),
            connection_errors_total: now.connection_errors,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LoadBalancerView {
    pub(crate) name: String,
    pub(crate) requests_per_second: f64,
    pub(crate) requests_total: u64,
    pub(crate) active_connections: i64,
    pub(crate) new_connections_per_second: f64,
    pub(crate) processed_bytes_per_second: f64,
    pub(crate) elb_4xx_per_second: f64,
    pub(crate) elb_5xx_per_second: f64,
    pub(crate) elb_4xx_total: u64,
    pub(crate) elb_5xx_total: u64,
    pub(crate) target_4xx_per_second: f64,
    pub(crate) target_5xx_per_second: f64,
    pub(crate) target_4xx_total: u64,
    pub(crate) target_5xx_total: u64,
    pub(crate) healthy_hosts: u64,
    pub(crate) unhealthy_hosts: u64,
    pub(crate) consumed_lcus: f64,
    /// Requests per second over the last minute, oldest first.
    pub(crate) request_rates: Vec<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RuleView {
    /// `"10"`, or `"default"` for the default rule.
    pub(crate) priority: String,
    pub(crate) conditions: Vec<String>,
    pub(crate) action: String,
    /// The target groups a forward sends to.
    pub(crate) target_groups: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListenerView {
    pub(crate) name: String,
    pub(crate) protocol: String,
    pub(crate) address: String,
    pub(crate) rules: Vec<RuleView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetView {
    pub(crate) address: String,
    pub(crate) container_name: Option<String>,
    pub(crate) container_id: Option<String>,
    pub(crate) state: &'static str,
    pub(crate) reason: Option<&'static str>,
    pub(crate) description: Option<String>,
    /// When the state was first seen (`SinceStart`: it already was at start).
    pub(crate) since: String,
    pub(crate) since_seconds: u64,
    pub(crate) since_start: bool,
    pub(crate) in_flight: u64,
    pub(crate) traffic: Traffic,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GroupView {
    pub(crate) name: String,
    pub(crate) dimension: String,
    pub(crate) protocol: &'static str,
    pub(crate) algorithm: &'static str,
    pub(crate) health_check: String,
    pub(crate) in_use: bool,
    pub(crate) fail_open: bool,
    pub(crate) healthy: u64,
    pub(crate) unhealthy: u64,
    pub(crate) traffic: Traffic,
    pub(crate) request_rates: Vec<f64>,
    pub(crate) targets: Vec<TargetView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConfigView {
    pub(crate) source: String,
    /// The generation the last reload applied (what `POST /api/reload` answered); `None`
    /// while the start's configuration serves.
    pub(crate) generation: Option<u64>,
    /// The snapshot's generation: configuration, registrations and health changes each
    /// publish a new one.
    pub(crate) snapshot_generation: u64,
    pub(crate) applied_at: Option<String>,
    pub(crate) applied_by_reload: bool,
    pub(crate) reloads: u64,
    pub(crate) reload_failures: u64,
    pub(crate) warnings: Vec<String>,
    pub(crate) last_failure_at: Option<String>,
    pub(crate) last_failure: Option<String>,
    /// The last reload was refused (a failure after the configuration being served).
    pub(crate) last_reload_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Error,
    Warning,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Warning {
    pub(crate) level: Level,
    pub(crate) text: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct View {
    pub(crate) generated_at: String,
    pub(crate) uptime_seconds: u64,
    pub(crate) load_balancer: LoadBalancerView,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) listeners: Vec<ListenerView>,
    pub(crate) target_groups: Vec<GroupView>,
    pub(crate) discovery: DiscoveryReport,
    pub(crate) configuration: ConfigView,
}

/// Builds the dashboard's view now.
pub(crate) fn build(proxy: &Proxy, snap: &Snapshot, sampler: &Sampler, config: &ConfigLog) -> View {
    let m = &proxy.shared().metrics;
    let now = Sample::take(m, snap);
    let rate_base = sampler.baseline(&now, RATE_SPAN);
    let pct_base = sampler.baseline(&now, PERCENTILE_SPAN);
    let dt = rate_base.as_ref().map(|b| now.at.duration_since(b.at));
    let wall = SystemTime::now();

    let target_groups: Vec<GroupView> = snap
        .groups
        .iter()
        .map(|g| {
            group_view(
                g,
                &now,
                rate_base.as_ref().zip(dt),
                pct_base.as_ref(),
                sampler,
                wall,
            )
        })
        .collect();

    let active = m.active_connections.load(std::sync::atomic::Ordering::Relaxed);
    let lb_rate = |f: fn(&crate::admin::sampler::LbCounts) -> u64| match (&rate_base, dt) {
        (Some(b), Some(dt)) => rate(f(&now.lb), f(&b.lb), dt),
        _ => 0.0,
    };
    let load_balancer = LoadBalancerView {
        name: lb_dimension(),
        requests_per_second: lb_rate(|c| c.requests),
        requests_total: now.lb.requests,
        active_connections: active,
        new_connections_per_second: lb_rate(|c| c.new_connections),
        processed_bytes_per_second: lb_rate(|c| c.processed_bytes),
        elb_4xx_per_second: lb_rate(|c| c.elb_4xx),
        elb_5xx_per_second: lb_rate(|c| c.elb_5xx),
        elb_4xx_total: now.lb.elb_4xx,
        elb_5xx_total: now.lb.elb_5xx,
        target_4xx_per_second: lb_rate(|c| c.target_4xx),
        target_5xx_per_second: lb_rate(|c| c.target_5xx),
        target_4xx_total: now.lb.target_4xx,
        target_5xx_total: now.lb.target_5xx,
        healthy_hosts: target_groups.iter().map(|g| g.healthy).sum(),
        unhealthy_hosts: target_groups.iter().map(|g| g.unhealthy).sum(),
        consumed_lcus: consumed_lcus(sampler, &now, snap, active),
        request_rates: sampler.request_rates(None),
    };

    let discovery = proxy
        .inner
        .discovery
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let configuration = config_view(proxy, snap, config);
    let warnings = warnings(proxy, snap, &target_groups, &discovery, &configuration);
    View {
        generated_at: iso(wall),
        uptime_seconds: sampler
            .started()
            .and_then(|s| wall.duration_since(s).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0),
        load_balancer,
        warnings,
        listeners: snap
            .listeners
            .iter()
            .map(|l| listener_view(&l.cfg, l.bound))
            .collect(),
        target_groups,
        discovery,
        configuration,
    }
}

fn group_view(
    g: &GroupRt,
    now: &Sample,
    rate_base: Option<(&Sample, Duration)>,
    pct_base: Option<&Sample>,
    sampler: &Sampler,
    wall: SystemTime,
) -> GroupView {
    let name = g.name().to_owned();
    let counts = now.groups.get(g.name()).copied().unwrap_or_default();
    let traffic = Traffic::from(
        &counts,
        rate_base.and_then(|(b, dt)| b.groups.get(g.name()).map(|c| (c, dt))),
        pct_base.and_then(|b| b.groups.get(g.name())),
    );
    let mut targets = Vec::with_capacity(g.registered.len() + g.draining.len());
    let (mut healthy, mut unhealthy) = (0, 0);
    for (list, draining) in [(&g.registered, false), (&g.draining, true)] {
        for t in list.iter() {
            let (state, reason, description) = target_health(g, t, draining);
            if !draining {
                healthy += u64::from(state == State::Healthy);
                unhealthy += u64::from(state == State::Unhealthy);
            }
            let key: TargetKey = (g.state.name.clone(), t.addr);
            let counts = now.targets.get(&key).copied().unwrap_or_default();
            let traffic = Traffic::from(
                &counts,
                rate_base.and_then(|(b, dt)| b.targets.get(&key).map(|c| (c, dt))),
                pct_base.and_then(|b| b.targets.get(&key)),
            );
            // A state the sampler has not seen yet began since its last sample: now,
            // to within a sample interval.
            let seen = sampler
                .health_since(&key)
                .filter(|s| s.state == state)
                .unwrap_or(Seen {
                    state,
                    since: wall,
                    from_start: false,
                });
            targets.push(TargetView {
                address: t.addr.to_string(),
                container_name: t.origin.container_name.clone(),
                container_id: t.origin.container_id.clone(),
                state: state.as_str(),
                reason: reason.as_ref().map(|r| r.code()),
                description: description.or_else(|| reason.as_ref().map(|r| r.description())),
                since: iso(seen.since),
                since_seconds: wall.duration_since(seen.since).map(|d| d.as_secs()).unwrap_or(0),
                since_start: seen.from_start,
                in_flight: get(&t.in_flight),
                traffic,
            });
        }
    }
    let hc = &g.cfg.health_check;
    let health_check = if hc.enabled {
        format!(
            "{} {} every {}s, healthy after {}, unhealthy after {}",
            hc.protocol.as_str(),
            hc.path,
            trim_float(hc.interval.as_secs_f64()),
            hc.healthy_threshold,
            hc.unhealthy_threshold
        )
    } else {
        "disabled".to_owned()
    };
    GroupView {
        dimension: group_dimension(&name),
        request_rates: sampler.request_rates(Some(&name)),
        name,
        protocol: g.cfg.protocol.as_str(),
        algorithm: g.cfg.algorithm.as_str(),
        health_check,
        in_use: g.in_use,
        fail_open: g.fail_open && !g.registered.is_empty(),
        healthy,
        unhealthy,
        traffic,
        targets,
    }
}

fn listener_view(l: &cfg::Listener, bound: std::net::SocketAddr) -> ListenerView {
    let mut rules: Vec<RuleView> = l
        .rules
        .iter()
        .map(|r| RuleView {
            priority: r.priority.to_string(),
            conditions: r.conditions.iter().map(condition_text).collect(),
            action: action_text(&r.action),
            target_groups: forwarded_groups(&r.action),
        })
        .collect();
    rules.push(RuleView {
        priority: "default".into(),
        conditions: Vec::new(),
        action: action_text(&l.default_action),
        target_groups: forwarded_groups(&l.default_action),
    });
    ListenerView {
        name: l.name.clone(),
        protocol: l.protocol.as_str().to_owned(),
        address: bound.to_string(),
        rules,
    }
}

fn forwarded_groups(a: &Action) -> Vec<String> {
    match a {
        Action::Forward(f) => f.target_groups.iter().map(|g| g.name.clone()).collect(),
        _ => Vec::new(),
    }
}

/// A condition as one line: `path-pattern /api/* | /v2/*`.
fn condition_text(c: &Condition) -> String {
    let matcher = |m: &cfg::ValueMatcher| {
        m.globs
            .iter()
            .map(|g| g.as_str().to_owned())
            .chain(m.regexes.iter().map(|r| format!("~/{}/", r.as_str())))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let values = match c {
        Condition::HostHeader(m) | Condition::PathPattern(m) => matcher(m),
        Condition::HttpHeader { name, matcher: m } => format!("{name}: {}", matcher(m)),
        Condition::HttpRequestMethod(methods) => methods.join(" | "),
        Condition::QueryString(pairs) => pairs
            .iter()
            .map(|p| match &p.key {
                Some(k) => format!("{}={}", k.as_str(), p.value.as_str()),
                None => format!("*={}", p.value.as_str()),
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Condition::SourceIp(nets) => nets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" | "),
    };
    format!("{} {values}", c.field())
}

/// An action as one line: `forward api`, `forward blue 90, green 10`, `redirect 301 ...`.
fn action_text(a: &Action) -> String {
    match a {
        Action::Forward(f) => {
            let groups: Vec<String> = match f.target_groups.as_slice() {
                [one] => vec![one.name.clone()],
                many => many.iter().map(|g| format!("{} {}", g.name, g.weight)).collect(),
            };
            let sticky = f
                .stickiness
                .map(|d| format!(" (sticky {}s)", d.as_secs()))
                .unwrap_or_default();
            format!("forward {}{sticky}", groups.join(", "))
        }
        Action::Redirect(r) => {
            let protocol = match r.protocol {
                cfg::RedirectProtocol::Keep => "#{protocol}",
                cfg::RedirectProtocol::Http => "http",
                cfg::RedirectProtocol::Https => "https",
            };
            let port = r.port.map(|p| p.to_string()).unwrap_or_else(|| "#{port}".into());
            let query = if r.query.source.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query.source)
            };
            format!(
                "redirect {} {protocol}://{}:{port}{}{query}",
                r.status_code, r.host.source, r.path.source
            )
        }
        Action::FixedResponse(f) => format!("fixed-response {}", f.status_code),
    }
}

fn config_view(proxy: &Proxy, snap: &Snapshot, log: &ConfigLog) -> ConfigView {
    let applied = log.applied();
    let failure = log.last_failure();
    let last_reload_failed = match (&failure, &applied) {
        (Some(f), Some(a)) => f.at >= a.at,
        (Some(_), None) => true,
        _ => false,
    };
    ConfigView {
        source: match proxy.config_source() {
            crate::control::ConfigSource::File(path) => path.display().to_string(),
            crate::control::ConfigSource::Embedded => "embedded default".into(),
        },
        generation: applied.as_ref().and_then(|a| a.generation),
        snapshot_generation: snap.generation,
        applied_at: applied.as_ref().map(|a| iso(a.at)),
        applied_by_reload: applied.as_ref().is_some_and(|a| a.reload),
        reloads: log.reloads(),
        reload_failures: get(&proxy.shared().metrics.reload_failures),
        warnings: applied.map(|a| a.warnings).unwrap_or_default(),
        last_failure_at: failure.as_ref().map(|f| iso(f.at)),
        last_failure: failure.map(|f| f.message),
        last_reload_failed,
    }
}

/// What an operator should act on, errors first.
fn warnings(
    proxy: &Proxy,
    snap: &Snapshot,
    groups: &[GroupView],
    discovery: &DiscoveryReport,
    config: &ConfigView,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut push = |level, text: String| out.push(Warning { level, text });
    if config.last_reload_failed {
        push(
            Level::Error,
            format!(
                "the last reload was refused ({}); {} keeps serving: {} (all of it under Configuration)",
                config.last_failure_at.as_deref().unwrap_or("-"),
                match config.generation {
                    Some(g) => format!("generation {g}"),
                    None => "the start's configuration".to_owned(),
                },
                first_error(config.last_failure.as_deref().unwrap_or(""))
            ),
        );
    }
    if discovery.enabled && !discovery.connected {
        push(
            Level::Error,
            format!(
                "Docker: not connected to {}{}",
                discovery.endpoint,
                discovery
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    for g in groups {
        if g.in_use && g.targets.iter().all(|t| t.state == State::Draining.as_str()) {
            push(
                Level::Error,
                format!("target group {}: no registered target, requests get 503", g.name),
            );
        } else if g.fail_open {
            push(
                Level::Warning,
                format!(
                    "target group {}: no healthy target, requests go to all {} registered (fail-open)",
                    g.name,
                    g.targets.len()
                ),
            );
        }
    }
    for n in &discovery.not_registered {
        push(
            Level::Warning,
            format!(
                "container {} ({}) not registered in {}: {}",
                n.container_name,
                short_id(&n.container_id),
                n.target_group,
                n.reason
            ),
        );
    }
    for w in &config.warnings {
        push(
            Level::Warning,
            w.replace("\n  fix: ", "; fix: ").replace('\n', " "),
        );
    }
    let dropped = get(&proxy.shared().metrics.access_log_dropped);
    if dropped > 0 && snap.access_log.is_some() {
        push(
            Level::Warning,
            format!("access log: {dropped} entries dropped (the writer could not keep up)"),
        );
    }
    out.sort_by_key(|w| w.level != Level::Error);
    out
}

/// The first error of a refused reload's message (which lists every problem, warnings
/// included), and how many more there are.
fn first_error(message: &str) -> String {
    let errors: Vec<&str> = message.lines().filter(|l| l.starts_with("error")).collect();
    match errors.as_slice() {
        [] => message.lines().next().unwrap_or("").to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// A container id as Docker prints it (12 hex digits).
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Seconds as short text: `30`, `0.5`.
fn trim_float(s: f64) -> String {
    let text = format!("{s:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A time in UTC to the second: `2026-12-01T01:52:10Z`.
pub(crate) fn iso(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(27);
    crate::clock::write_iso8601_micros(&mut out, t);
    let text = String::from_utf8_lossy(&out);
    match text.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reload_is_summed_up_by_its_first_error() {
        let message =
            "/etc/hostalb.toml: 2 error(s):\nerror: a: bad\n  fix: x\nwarning (ALB limit): w\nerror: b: bad";
        assert_eq!(first_error(message), "error: a: bad (and 1 more)");
        assert_eq!(first_error("error: only"), "error: only");
        assert_eq!(
            first_error("listener `web`: cannot listen"),
            "listener `web`: cannot listen"
        );
    }
}
