//! Health checks and the target lifecycle: the probe ALB sends, every state and reason
//! DescribeTargetHealth reports (initial, healthy, unhealthy with each reason, draining,
//! unused, unavailable), one-pass admission against threshold recovery, routing by health
//! (fail open, 503 only without targets), the host-count metrics, and draining of a
//! deregistered target (in-flight requests finish, what outlives the delay is cut).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hostalb_testkit::{
    Backend, Client, HostAlb, RawBackend, RawBehaviour, RawConn, RecordedRequest, parse_responses, scaled,
    try_eventually,
};
use serde_json::Value;

use crate::admin::metric_sum;
use crate::common::start;

/// Patience for a state change driven by probes a fraction of a second apart.
pub(crate) const STATE_PATIENCE: Duration = Duration::from_secs(10);

/// A `[[listener]]` named `web` forwarding to `default_group`, with `rules` after it.
pub(crate) fn web(default_group: &str, rules: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
idle_timeout_seconds = 5
default_action = {{ type = "forward", target_group = "{default_group}" }}
{rules}
"#
    )
}

/// A rule sending paths under `/{prefix}/` to `group`.
pub(crate) fn rule(priority: u32, prefix: &str, group: &str) -> String {
    format!(
        r#"
[[listener.rule]]
priority = {priority}
conditions = [{{ field = "path-pattern", values = ["/{prefix}/*"] }}]
action = {{ type = "forward", target_group = "{group}" }}
"#
    )
}

/// A `[target_group.NAME]` table with these targets and extra keys.
pub(crate) fn group(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("\n[target_group.{name}]\ntargets = [{list}]\n{extra}\n")
}

/// Fast health checks on `/health` (0.5 s apart, 0.4 s timeout) with these thresholds.
pub(crate) fn fast_checks(healthy: u32, unhealthy: u32) -> String {
    format!(
        "health_check = {{ path = \"/health\", interval_seconds = 0.5, timeout_seconds = 0.4, \
         healthy_threshold = {healthy}, unhealthy_threshold = {unhealthy} }}"
    )
}

/// One target's `TargetHealth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) description: Option<String>,
}

/// GET /api/target-health for `group` (and `extra` query parameters), as JSON.
pub(crate) async fn describe_with(alb: &HostAlb, group: &str, extra: &str) -> Value {
    let path = format!("/api/target-health?target_group={group}{extra}");
    let (status, body) = alb.admin_get(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// GET /api/target-health?target_group=`group`.
pub(crate) async fn describe(alb: &HostAlb, group: &str) -> Value {
    describe_with(alb, group, "").await
}

/// The description of the target at `addr` in a DescribeTargetHealth answer.
pub(crate) fn entry(body: &Value, addr: SocketAddr) -> Option<&Value> {
    body["TargetHealthDescriptions"].as_array()?.iter().find(|d| {
        d["Target"]["Id"] == addr.ip().to_string().as_str()
            && d["Target"]["Port"].as_u64() == Some(u64::from(addr.port()))
    })
}

/// The health of the target at `addr` in a DescribeTargetHealth answer.
pub(crate) fn health_in(body: &Value, addr: SocketAddr) -> Option<Health> {
    let th = &entry(body, addr)?["TargetHealth"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Some(Health {
        state: text(&th["State"])?,
        reason: text(&th["Reason"]),
        description: text(&th["Description"]),
    })
}

/// The health of the target at `addr` in `group` now (`None` when it is not listed).
pub(crate) async fn health(alb: &HostAlb, group: &str, addr: SocketAddr) -> Option<Health> {
    health_in(&describe(alb, group).await, addr)
}

/// Waits until the target at `addr` in `group` is in `state`; returns its health then.
pub(crate) async fn wait_state(alb: &HostAlb, group: &str, addr: SocketAddr, state: &str) -> Health {
    let mut last = Value::Null;
    let reached = try_eventually(STATE_PATIENCE, async || {
        last = describe(alb, group).await;
        health_in(&last, addr).is_some_and(|h| h.state == state)
    })
    .await;
    assert!(
        reached.is_ok(),
        "target {addr} of {group} never became {state}; last DescribeTargetHealth: {last:#}"
    );
    health_in(&last, addr).expect("listed")
}

/// Waits until the target at `addr` in `group` has exactly this state, reason and
/// description. (A probe that times out on a loaded machine may show another reason for a
/// moment; the next probe corrects it.)
pub(crate) async fn wait_health(alb: &HostAlb, group: &str, addr: SocketAddr, want: &Health) {
    let mut last = Value::Null;
    let reached = try_eventually(STATE_PATIENCE, async || {
        last = describe(alb, group).await;
        health_in(&last, addr).as_ref() == Some(want)
    })
    .await;
    assert!(
        reached.is_ok(),
        "target {addr} of {group} never showed {want:?}; last DescribeTargetHealth: {last:#}"
    );
}

/// An `unhealthy` health with this reason and description.
pub(crate) fn unhealthy(reason: &str, description: &str) -> Health {
    Health {
        state: "unhealthy".into(),
        reason: Some(reason.into()),
        description: Some(description.into()),
    }
}

/// The `unhealthy` health a probe answered with `code` leaves.
pub(crate) fn mismatch(code: u16) -> Health {
    unhealthy(
        "Target.ResponseCodeMismatch",
        &format!("Health checks failed with these codes: [{code}]"),
    )
}

/// Waits until the target at `addr` is no longer listed in `group`.
pub(crate) async fn wait_gone(alb: &HostAlb, group: &str, addr: SocketAddr) {
    let mut last = Value::Null;
    let gone = try_eventually(STATE_PATIENCE, async || {
        last = describe(alb, group).await;
        entry(&last, addr).is_none()
    })
    .await;
    assert!(gone.is_ok(), "target {addr} of {group} is still listed: {last:#}");
}

/// The value of a per-target-group metric for `group`.
pub(crate) async fn group_metric(alb: &HostAlb, name: &str, group: &str) -> f64 {
    let (status, text) = alb.admin_get("/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {text}");
    let dimension = format!("targetgroup/{group}/");
    metric_sum(&text, name, &[("target_group", &dimension)])
        .unwrap_or_else(|| panic!("no {name} sample for {dimension} in:\n{text}"))
}

/// Waits until a per-target-group metric of `group` has the value `want`.
pub(crate) async fn wait_group_metric(alb: &HostAlb, name: &str, group: &str, want: f64) {
    let mut last = f64::NAN;
    let reached = try_eventually(STATE_PATIENCE, async || {
        last = group_metric(alb, name, group).await;
        last == want
    })
    .await;
    assert!(
        reached.is_ok(),
        "{name} of {group} should be {want}, stays {last}"
    );
}

/// Reloads `config` through the admin API (the file watcher may reload it as well).
pub(crate) async fn reload(alb: &HostAlb, config: &str) {
    alb.write_config(config);
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "POST /api/reload: {body}");
}

/// Which backend answered a request on listener `web` (panics unless it is a 200).
pub(crate) async fn routed(client: &Client, alb: &HostAlb, path: &str) -> String {
    let resp = client
        .get(&alb.url("web", path))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
    resp.backend()
        .unwrap_or_else(|| panic!("GET {path}: no x-backend in {resp:?}"))
        .to_owned()
}

/// Probes that `backend` received and did not answer 200 (answered otherwise, or given
/// up on by hostalb before the answer).
fn probes_failed(backend: &Backend) -> usize {
    backend
        .health_probes()
        .iter()
        .filter(|p| p.status != Some(200))
        .count()
}

/// Completed probes answered 200 since the last one answered otherwise.
fn trailing_passes(backend: &Backend) -> usize {
    backend
        .health_probes()
        .iter()
        .filter(|p| p.status.is_some())
        .rev()
        .take_while(|p| p.status == Some(200))
        .count()
}

/// A port on which nothing listens (connections are refused).
fn refused_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local address")
}

fn assert_probe_shape(p: &RecordedRequest, target: &str, host: &str) {
    assert_eq!(p.method, "GET", "{p:?}");
    assert_eq!(p.target, target, "{p:?}");
    assert_eq!(p.version, "HTTP/1.1", "{p:?}");
    assert_eq!(p.header("host"), Some(host), "{p:?}");
    assert_eq!(p.header("user-agent"), Some("ELB-HealthChecker/2.0"), "{p:?}");
    assert_eq!(p.header("accept"), Some("*/*"), "{p:?}");
    assert_eq!(
        p.header("connection").map(str::to_ascii_lowercase).as_deref(),
        Some("close"),
        "{p:?}"
    );
    let mut names: Vec<String> = p.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    names.sort();
    assert_eq!(
        names,
        ["accept", "connection", "host", "user-agent"],
        "a probe carries exactly these fields: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_is_albs_get_on_a_fresh_connection_each_time() {
    let a = Backend::start("a").await;
    let d = Backend::start("d").await;
    let config = format!(
        "{}{}{}",
        web("app", &rule(10, "dflt", "dflt")),
        group(
            "app",
            &[a.addr()],
            "health_check = { path = \"/deep/health?verbose=1&x=%2F\", interval_seconds = 0.3, timeout_seconds = 0.2 }",
        ),
        group(
            "dflt",
            &[d.addr()],
            "health_check = { interval_seconds = 0.3, timeout_seconds = 0.2 }",
        ),
    );
    let started = Instant::now();
    let alb = start(&config).await;
    let got = try_eventually(STATE_PATIENCE, async || {
        a.health_probe_count() >= 3 && d.request_count() >= 2
    })
    .await;
    let probed = a.health_probe_count();
    // The first probe comes at once and the second within one interval; every later one
    // waits a whole interval.
    let least = Duration::from_millis(300) * u32::try_from(probed.saturating_sub(2)).unwrap_or(0);
    assert!(
        started.elapsed() >= least,
        "{probed} probes within {:?}: faster than every 0.3 s",
        started.elapsed()
    );
    assert!(
        got.is_ok(),
        "probes should arrive every 0.3 s: a got {:?}, d got {:?}",
        a.health_probes(),
        d.requests()
    );

    let probes = a.health_probes();
    let host = format!("127.0.0.1:{}", a.addr().port());
    for p in &probes {
        assert_probe_shape(p, "/deep/health?verbose=1&x=%2F", &host);
    }
    let mut conns: Vec<usize> = probes.iter().map(|p| p.connection).collect();
    conns.sort_unstable();
    conns.dedup();
    assert_eq!(
        conns.len(),
        probes.len(),
        "every probe comes on a new connection: {probes:?}"
    );
    assert!(
        probes.iter().all(|p| p.index == 0),
        "no connection carries a second probe: {probes:?}"
    );
    assert!(
        a.requests().is_empty(),
        "only probes reached a: {:?}",
        a.requests()
    );

    // Without a path, ALB probes `/`.
    let host_d = format!("127.0.0.1:{}", d.addr().port());
    for p in d.requests() {
        assert_probe_shape(&p, "/", &host_d);
    }

    // Probes are not requests: no metric counts them.
    let (_, text) = alb.admin_get("/metrics").await;
    assert_eq!(
        metric_sum(&text, "hostalb_requests_total", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "hostalb_httpcode_target_2xx_total", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_probes_are_spread_over_the_interval_not_fired_in_lockstep() {
    let mut backends = Vec::new();
    for i in 0..6 {
        backends.push(Backend::start(&format!("t{i}")).await);
    }
    let targets: Vec<SocketAddr> = backends.iter().map(Backend::addr).collect();
    let checks = "health_check = { path = \"/health\", interval_seconds = 2, timeout_seconds = 1 }";
    let _alb = start(&format!("{}{}", web("app", ""), group("app", &targets, checks))).await;

    // When each target's second probe arrives (each at its own random phase within 2 s).
    let started = Instant::now();
    let mut second: Vec<Option<Instant>> = vec![None; backends.len()];
    while second.iter().any(Option::is_none) && started.elapsed() < scaled(Duration::from_secs(8)) {
        for (i, b) in backends.iter().enumerate() {
            if second[i].is_none() && b.health_probe_count() >= 2 {
                second[i] = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen: Vec<Instant> = second.iter().flatten().copied().collect();
    assert_eq!(
        seen.len(),
        backends.len(),
        "every target gets a second probe within 8 s"
    );
    let first = seen.iter().min().copied().unwrap_or(started);
    let last = seen.iter().max().copied().unwrap_or(started);
    // Six phases uniform over 2 s all fall within 0.1 s with probability about 2e-6.
    assert!(
        last - first >= Duration::from_millis(100),
        "the second probes of six targets came within {:?} of each other",
        last - first
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_health_check_port_is_probed_instead_of_the_traffic_port() {
    let a = Backend::start("a").await;
    let h = Backend::start("h").await;
    let checks = format!(
        "health_check = {{ path = \"/health\", port = {}, interval_seconds = 0.5, timeout_seconds = 0.4, \
         healthy_threshold = 2, unhealthy_threshold = 2 }}",
        h.addr().port()
    );
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr()], &checks)
    ))
    .await;

    let healthy = wait_state(&alb, "app", a.addr(), "healthy").await;
    assert_eq!(healthy.reason, None);
    let got = try_eventually(STATE_PATIENCE, async || h.health_probe_count() >= 2).await;
    assert!(got.is_ok(), "the health-check port gets the probes");
    let host = format!("127.0.0.1:{}", h.addr().port());
    for p in h.health_probes() {
        assert_probe_shape(&p, "/health", &host);
    }
    assert_eq!(a.health_probe_count(), 0, "the traffic port is not probed");
    assert!(a.requests().is_empty(), "{:?}", a.requests());

    let body = describe(&alb, "app").await;
    let d = entry(&body, a.addr()).expect("a is listed");
    assert_eq!(
        d["Target"]["Port"].as_u64(),
        Some(u64::from(a.addr().port())),
        "{d}"
    );
    assert_eq!(
        d["HealthCheckPort"],
        h.addr().port().to_string().as_str(),
        "HealthCheckPort is the fixed port, as a string: {d}"
    );

    // Traffic still goes to the traffic port.
    let client = Client::new();
    assert_eq!(routed(&client, &alb, "/x").await, "a");

    // The health-check port decides the target's health.
    h.set_health_status(503);
    wait_health(&alb, "app", a.addr(), &mismatch(503)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_target_is_probed_at_once_and_one_pass_makes_it_healthy() {
    let a = Backend::start("a").await;
    // A 20 s interval and a healthy threshold of 5: healthy within the patience means the
    // first probe came at once and one pass was enough.
    let checks = "health_check = { path = \"/health\", interval_seconds = 20, timeout_seconds = 2, \
                  healthy_threshold = 5, unhealthy_threshold = 2 }";
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr()], checks)
    ))
    .await;
    let healthy = wait_state(&alb, "app", a.addr(), "healthy").await;
    assert_eq!(
        (healthy.reason.as_deref(), healthy.description.as_deref()),
        (None, None),
        "a healthy target has no reason: {healthy:?}"
    );
    let passes = a.health_probe_count();
    assert!(
        (1..5).contains(&passes),
        "healthy after {passes} probes: one pass admits a new target"
    );
    let body = describe(&alb, "app").await;
    let th = &entry(&body, a.addr()).expect("listed")["TargetHealth"];
    assert!(
        th.get("Reason").is_none() && th.get("Description").is_none(),
        "no Reason or Description members for a healthy target: {body:#}"
    );
    assert_eq!(routed(&Client::new(), &alb, "/x").await, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_target_failing_its_checks_turns_unhealthy_after_the_unhealthy_threshold() {
    let a = Backend::builder().name("a").health_status(503).start().await;
    let checks = "health_check = { path = \"/health\", interval_seconds = 0.5, timeout_seconds = 0.45, \
                  healthy_threshold = 2, unhealthy_threshold = 3 }";
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr()], checks)
    ))
    .await;

    // Watch the state: `initial` with an initial reason until the third failed probe.
    let mut seen: Vec<(Health, usize)> = Vec::new();
    let started = Instant::now();
    loop {
        let h = health(&alb, "app", a.addr()).await.expect("a is listed");
        let failed = probes_failed(&a);
        seen.push((h.clone(), failed));
        if h.state == "unhealthy" {
            break;
        }
        assert!(
            started.elapsed() < scaled(STATE_PATIENCE),
            "a never became unhealthy: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (h, _) in &seen[..seen.len() - 1] {
        assert_eq!(h.state, "initial", "before unhealthy: {seen:?}");
        match h.reason.as_deref() {
            Some("Elb.InitialHealthChecking") => {
                assert_eq!(
                    h.description.as_deref(),
                    Some("Initial health checks in progress"),
                    "{h:?}"
                );
            }
            Some("Elb.RegistrationInProgress") => {
                assert_eq!(
                    h.description.as_deref(),
                    Some("Target registration is in progress"),
                    "{h:?}"
                );
            }
            other => panic!("initial with reason {other:?}: {seen:?}"),
        }
    }
    let failed = seen.last().map(|(_, f)| *f).unwrap_or_default();
    assert!(
        failed >= 3,
        "unhealthy after {failed} failed probes; unhealthy_threshold is 3: {seen:?}"
    );
    wait_health(&alb, "app", a.addr(), &mismatch(503)).await;
    wait_group_metric(&alb, "hostalb_unhealthy_hosts", "app", 1.0).await;
    assert_eq!(group_metric(&alb, "hostalb_healthy_hosts", "app").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_target_needs_the_unhealthy_threshold_to_fail_and_the_healthy_threshold_to_recover() {
    let a = Backend::start("a").await;
    let checks = "health_check = { path = \"/health\", interval_seconds = 0.5, timeout_seconds = 0.45, \
                  healthy_threshold = 3, unhealthy_threshold = 2 }";
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr()], checks)
    ))
    .await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_group_metric(&alb, "hostalb_healthy_hosts", "app", 1.0).await;
    assert_eq!(group_metric(&alb, "hostalb_unhealthy_hosts", "app").await, 0.0);

    // Failing: unhealthy only after two failed probes.
    a.set_health_status(503);
    let started = Instant::now();
    let mut seen: Vec<(Health, usize)> = Vec::new();
    loop {
        let h = health(&alb, "app", a.addr()).await.expect("listed");
        let failed = probes_failed(&a);
        seen.push((h.clone(), failed));
        if h.state == "unhealthy" {
            assert!(failed >= 2, "unhealthy after {failed} failed probes: {seen:?}");
            break;
        }
        assert_eq!(h.state, "healthy", "between healthy and unhealthy: {seen:?}");
        assert!(
            started.elapsed() < scaled(STATE_PATIENCE),
            "never unhealthy: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_health(&alb, "app", a.addr(), &mismatch(503)).await;
    wait_group_metric(&alb, "hostalb_unhealthy_hosts", "app", 1.0).await;
    assert_eq!(group_metric(&alb, "hostalb_healthy_hosts", "app").await, 0.0);

    // Recovering: one pass is not enough; three consecutive passes are.
    a.set_health_status(200);
    let started = Instant::now();
    let mut seen: Vec<(Health, usize)> = Vec::new();
    loop {
        let h = health(&alb, "app", a.addr()).await.expect("listed");
        let passes = trailing_passes(&a);
        seen.push((h.clone(), passes));
        if h.state == "healthy" {
            assert!(
                passes >= 3,
                "healthy again after {passes} passes; healthy_threshold is 3: {seen:?}"
            );
            assert_eq!(h.reason, None, "{h:?}");
            break;
        }
        assert_eq!(h.state, "unhealthy", "while recovering: {seen:?}");
        assert!(
            started.elapsed() < scaled(STATE_PATIENCE),
            "never healthy again: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_group_metric(&alb, "hostalb_healthy_hosts", "app", 1.0).await;
    assert_eq!(group_metric(&alb, "hostalb_unhealthy_hosts", "app").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failed_check_has_its_reason() {
    let mismatch = Backend::builder().name("m").health_status(500).start().await;
    let silent = RawBackend::start(RawBehaviour::Blackhole).await;
    let garbage = RawBackend::start(RawBehaviour::RespondThenClose(b"garbage\r\n\r\n".to_vec())).await;
    let refused = refused_port();
    let checks = "health_check = { path = \"/health\", interval_seconds = 0.4, timeout_seconds = 0.2, \
                  healthy_threshold = 2, unhealthy_threshold = 2 }";
    let targets = [mismatch.addr(), silent.addr(), garbage.addr(), refused];
    let alb = start(&format!("{}{}", web("app", ""), group("app", &targets, checks))).await;

    let expected = [
        (
            mismatch.addr(),
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [500]",
        ),
        (silent.addr(), "Target.Timeout", "Request timed out"),
        (
            garbage.addr(),
            "Target.FailedHealthChecks",
            "Health checks failed",
        ),
        (refused, "Target.FailedHealthChecks", "Health checks failed"),
    ];
    for (addr, reason, description) in expected {
        wait_health(&alb, "app", addr, &unhealthy(reason, description)).await;
    }
    wait_group_metric(&alb, "hostalb_unhealthy_hosts", "app", 4.0).await;
    assert_eq!(group_metric(&alb, "hostalb_healthy_hosts", "app").await, 0.0);
    assert!(
        silent.connections() >= 2 && garbage.connections() >= 2,
        "each probe opens a connection: silent {}, garbage {}",
        silent.connections(),
        garbage.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matcher_takes_lists_and_ranges_of_codes() {
    let list_ok = Backend::builder().name("l").health_status(202).start().await;
    let range_ok = Backend::builder().name("r").health_status(204).start().await;
    let single_bad = Backend::builder().name("s").health_status(202).start().await;
    let list_bad = Backend::builder().name("b").health_status(201).start().await;
    let hc = |matcher: &str| {
        format!(
            "health_check = {{ path = \"/health\", interval_seconds = 0.5, timeout_seconds = 0.4, \
             unhealthy_threshold = 2, matcher = \"{matcher}\" }}"
        )
    };
    let rules = format!(
        "{}{}{}{}",
        rule(10, "r", "range"),
        rule(20, "s", "single"),
        rule(30, "b", "listbad"),
        rule(40, "o", "other"),
    );
    // `other` registers list_ok's address too: health is kept per target group.
    let config = format!(
        "{}{}{}{}{}{}",
        web("list", &rules),
        group("list", &[list_ok.addr()], &hc("200,202")),
        group("range", &[range_ok.addr()], &hc("200-299")),
        group("single", &[single_bad.addr()], &hc("200")),
        group("listbad", &[list_bad.addr()], &hc("200,202")),
        group("other", &[list_ok.addr()], &hc("200")),
    );
    let alb = start(&config).await;
    wait_state(&alb, "list", list_ok.addr(), "healthy").await;
    wait_state(&alb, "range", range_ok.addr(), "healthy").await;
    wait_health(&alb, "single", single_bad.addr(), &mismatch(202)).await;
    wait_health(&alb, "listbad", list_bad.addr(), &mismatch(201)).await;
    wait_health(&alb, "other", list_ok.addr(), &mismatch(202)).await;
    assert_eq!(
        health(&alb, "list", list_ok.addr()).await.map(|h| h.state),
        Some("healthy".to_owned()),
        "the same address stays healthy in the group whose matcher it passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_target_unhealthy_requests_fail_open_and_are_counted() {
    let a = Backend::builder().name("a").health_status(503).start().await;
    let b = Backend::builder().name("b").health_status(503).start().await;
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr(), b.addr()], &fast_checks(2, 2))
    ))
    .await;
    wait_state(&alb, "app", a.addr(), "unhealthy").await;
    wait_state(&alb, "app", b.addr(), "unhealthy").await;
    wait_group_metric(&alb, "hostalb_unhealthy_hosts", "app", 2.0).await;
    assert_eq!(group_metric(&alb, "hostalb_healthy_hosts", "app").await, 0.0);

    // No target is healthy: every registered target still takes requests.
    let client = Client::new();
    let mut to_a = 0;
    for i in 0..20 {
        if routed(&client, &alb, &format!("/open/{i}")).await == "a" {
            to_a += 1;
        }
    }
    assert!(
        (1..20).contains(&to_a),
        "fail open spreads over all targets: {to_a} of 20 went to a"
    );
    assert_eq!(
        group_metric(&alb, "hostalb_unhealthy_routing_requests_total", "app").await,
        20.0
    );

    // One target recovers: it takes everything, and nothing more is counted.
    a.set_health_status(200);
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_group_metric(&alb, "hostalb_healthy_hosts", "app", 1.0).await;
    assert_eq!(group_metric(&alb, "hostalb_unhealthy_hosts", "app").await, 1.0);
    let before_b = b.request_count();
    for i in 0..10 {
        assert_eq!(routed(&client, &alb, &format!("/healthy/{i}")).await, "a");
    }
    assert_eq!(b.request_count(), before_b, "the unhealthy target gets nothing");
    assert_eq!(
        group_metric(&alb, "hostalb_unhealthy_routing_requests_total", "app").await,
        20.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_targets_take_requests_only_while_none_is_healthy() {
    // `fresh`: its only target stays `initial` (the probes go to a silent port).
    let fresh = Backend::start("fresh").await;
    let silent = RawBackend::start(RawBehaviour::Blackhole).await;
    // `mixed`: one target answers its probes, the other never does.
    let b = Backend::start("b").await;
    let mute = RawBackend::start(RawBehaviour::Blackhole).await;
    let slow_checks = |port: String| {
        format!(
            "health_check = {{ path = \"/health\", {port}interval_seconds = 2, timeout_seconds = 1.5, \
             unhealthy_threshold = 3 }}"
        )
    };
    let config = format!(
        "{}{}{}",
        web("mixed", &rule(10, "fresh", "fresh")),
        group(
            "fresh",
            &[fresh.addr()],
            &slow_checks(format!("port = {}, ", silent.addr().port()))
        ),
        group("mixed", &[mute.addr(), b.addr()], &slow_checks(String::new())),
    );
    let alb = start(&config).await;
    let client = Client::new();

    let before = health(&alb, "fresh", fresh.addr()).await.expect("listed");
    assert_eq!(before.state, "initial", "{before:?}");
    for i in 0..4 {
        assert_eq!(
            routed(&client, &alb, &format!("/fresh/{i}")).await,
            "fresh",
            "an initial-only group is routed to"
        );
    }
    let after = health(&alb, "fresh", fresh.addr()).await.expect("listed");
    assert_eq!(after.state, "initial", "{after:?}");
    assert_eq!(
        after.reason.as_deref(),
        Some("Elb.InitialHealthChecking"),
        "{after:?}"
    );

    wait_state(&alb, "mixed", b.addr(), "healthy").await;
    let mute_state = health(&alb, "mixed", mute.addr()).await.expect("listed");
    assert_eq!(mute_state.state, "initial", "{mute_state:?}");
    for i in 0..10 {
        assert_eq!(
            routed(&client, &alb, &format!("/mixed/{i}")).await,
            "b",
            "with a healthy target, initial ones get no requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_targets_answers_503_and_an_unused_group_is_not_probed() {
    let a = Backend::start("a").await;
    let idle = Backend::start("idle").await;
    let off = Backend::start("off").await;
    let rules = format!("{}{}", rule(10, "empty", "empty"), rule(20, "off", "off"));
    let config = format!(
        "{}{}{}{}{}",
        web("app", &rules),
        group("app", &[a.addr()], &fast_checks(2, 2)),
        group("empty", &[], &fast_checks(2, 2)),
        group("idle", &[idle.addr()], &fast_checks(2, 2)),
        group("off", &[off.addr()], "health_check = { enabled = false }"),
    );
    let alb = start(&config).await;

    let resp = Client::new().get(&alb.url("web", "/empty/x")).await.unwrap();
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    let body = describe(&alb, "empty").await;
    assert_eq!(
        body["TargetHealthDescriptions"].as_array().map(Vec::len),
        Some(0),
        "{body}"
    );

    // A used group is probed; a group no rule forwards to and one with checks off are not.
    let h = wait_state(&alb, "app", a.addr(), "healthy").await;
    assert_eq!(h.reason, None);
    let probed = try_eventually(STATE_PATIENCE, async || a.health_probe_count() >= 3).await;
    assert!(probed.is_ok());
    assert_eq!(idle.health_probe_count() + idle.request_count(), 0);
    assert_eq!(off.health_probe_count() + off.request_count(), 0);

    let h = health(&alb, "idle", idle.addr()).await.expect("listed");
    assert_eq!(
        (h.state.as_str(), h.reason.as_deref(), h.description.as_deref()),
        (
            "unused",
            Some("Target.NotInUse"),
            Some("Target group is not configured to receive traffic from the load balancer")
        )
    );
    let h = health(&alb, "off", off.addr()).await.expect("listed");
    assert_eq!(
        (h.state.as_str(), h.reason.as_deref(), h.description.as_deref()),
        (
            "unavailable",
            Some("Target.HealthCheckDisabled"),
            Some("Health checks disabled")
        )
    );
    assert_eq!(routed(&Client::new(), &alb, "/off/x").await, "off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_health_has_the_describe_target_health_shape_and_filters_by_target() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let unregistered = refused_port();
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group("app", &[a.addr(), b.addr()], &fast_checks(2, 2))
    ))
    .await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_state(&alb, "app", b.addr(), "healthy").await;

    let body = describe(&alb, "app").await;
    let list = body["TargetHealthDescriptions"]
        .as_array()
        .expect("TargetHealthDescriptions is a list");
    assert_eq!(list.len(), 2, "{body:#}");
    for d in list {
        assert_eq!(d["Target"]["Id"], "127.0.0.1", "{d}");
        let port = d["Target"]["Port"].as_u64().expect("Target.Port is a number");
        assert_eq!(d["HealthCheckPort"], port.to_string().as_str(), "{d}");
        assert_eq!(d["TargetHealth"]["State"], "healthy", "{d}");
    }

    // `targets=` limits the answer; an address that is not registered is reported so.
    let extra = format!("&targets={},{unregistered}", a.addr());
    let body = describe_with(&alb, "app", &extra).await;
    let list = body["TargetHealthDescriptions"]
        .as_array()
        .expect("TargetHealthDescriptions is a list");
    assert_eq!(list.len(), 2, "only the targets asked for: {body:#}");
    assert!(entry(&body, b.addr()).is_none(), "{body:#}");
    assert_eq!(
        health_in(&body, a.addr()).map(|h| h.state),
        Some("healthy".to_owned())
    );
    let d = entry(&body, unregistered).expect("the unregistered address is listed");
    assert_eq!(
        d["HealthCheckPort"],
        unregistered.port().to_string().as_str(),
        "{d}"
    );
    assert_eq!(
        health_in(&body, unregistered),
        Some(Health {
            state: "unused".into(),
            reason: Some("Target.NotRegistered".into()),
            description: Some("Target is not registered to the target group".into()),
        })
    );
}

/// Requests to `path` that `backend` has received and not answered yet.
fn in_progress(backend: &Backend, path: &str) -> usize {
    backend
        .requests()
        .iter()
        .filter(|r| r.path() == path && r.status.is_none())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_target_drains_its_requests_in_flight_while_new_ones_go_elsewhere() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |targets: &[SocketAddr]| {
        format!(
            "{}{}",
            web("app", ""),
            group(
                "app",
                targets,
                &format!("deregistration_delay_seconds = 2.5\n{}", fast_checks(2, 2))
            )
        )
    };
    let alb = start(&config(&[a.addr(), b.addr()])).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_state(&alb, "app", b.addr(), "healthy").await;

    // Two slow requests: round robin gives one to each target.
    let client = Client::new();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            let url = alb.url("web", "/delay/2000");
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    let both = try_eventually(Duration::from_secs(5), async || {
        in_progress(&a, "/delay/2000") == 1 && in_progress(&b, "/delay/2000") == 1
    })
    .await;
    assert!(both.is_ok(), "a: {:?}\nb: {:?}", a.requests(), b.requests());

    reload(&alb, &config(&[a.addr()])).await;
    assert_eq!(
        in_progress(&b, "/delay/2000"),
        1,
        "the reload should be done while b's request is still running"
    );
    let h = health(&alb, "app", b.addr())
        .await
        .expect("b is listed while draining");
    assert_eq!(
        h,
        Health {
            state: "draining".into(),
            reason: Some("Target.DeregistrationInProgress".into()),
            description: Some("Target deregistration is in progress".into()),
        }
    );
    assert_eq!(
        group_metric(&alb, "hostalb_healthy_hosts", "app").await,
        1.0,
        "a draining target is not counted healthy"
    );
    let before_b = b.request_count();
    for i in 0..10 {
        assert_eq!(routed(&client, &alb, &format!("/new/{i}")).await, "a");
    }
    assert_eq!(
        b.request_count(),
        before_b,
        "a draining target takes no new request"
    );

    let mut answered: Vec<String> = Vec::new();
    for task in slow {
        let resp = task.await.expect("task").expect("the slow request is answered");
        assert_eq!(resp.status, 200, "{resp:?}");
        answered.push(resp.backend().unwrap_or_default().to_owned());
    }
    answered.sort();
    assert_eq!(answered, ["a", "b"], "the request in flight on b finished on b");

    // Reported as draining until the delay ends, then gone; its checks stopped.
    wait_gone(&alb, "app", b.addr()).await;
    wait_group_metric(&alb, "hostalb_healthy_hosts", "app", 1.0).await;
    let b_probes = b.health_probe_count();
    let a_probes = a.health_probe_count();
    let more = try_eventually(STATE_PATIENCE, async || a.health_probe_count() >= a_probes + 3).await;
    assert!(more.is_ok());
    assert_eq!(
        b.health_probe_count(),
        b_probes,
        "a deregistered target is not probed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_running_when_the_deregistration_delay_ends_are_cut() {
    let slow = Backend::start("slow").await;
    // A target that sends a head and 10 of the 100 body bytes it announces, then stalls.
    let stalled = RawBackend::start(RawBehaviour::Respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nx-backend: stalled\r\n\r\n0123456789".to_vec(),
    ))
    .await;
    let config = |slow_targets: &[SocketAddr], stalled_targets: &[SocketAddr]| {
        let extra = "deregistration_delay_seconds = 0.5\nhealth_check = { enabled = false }";
        format!(
            "{}{}{}",
            web("slow", &rule(10, "stream", "stream")),
            group("slow", slow_targets, extra),
            group("stream", stalled_targets, extra),
        )
    };
    let alb = start(&config(&[slow.addr()], &[stalled.addr()])).await;
    let client = Client::new();

    let url = alb.url("web", "/delay/8000");
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.get(&url).await })
    };
    let mut streaming = RawConn::connect(alb.listener("web")).await.expect("connect");
    streaming
        .send(b"GET /stream/x HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .expect("send");
    let head_arrived = try_eventually(Duration::from_secs(5), async || {
        streaming.read_for(Duration::from_millis(50)).await;
        streaming.received().ends_with(b"0123456789")
    })
    .await;
    assert!(
        head_arrived.is_ok(),
        "the head and the first bytes are relayed: {:?}",
        String::from_utf8_lossy(streaming.received())
    );
    let running = try_eventually(Duration::from_secs(5), async || {
        in_progress(&slow, "/delay/8000") == 1
    })
    .await;
    assert!(running.is_ok(), "{:?}", slow.requests());

    reload(&alb, &config(&[], &[])).await;

    // No response head yet: the client gets a 502 when the delay ends (the target itself
    // would have answered 200 after 8 s).
    let resp = pending.await.expect("task").expect("the cut request is answered");
    assert_eq!(resp.status, 502, "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");

    // The head was out: the connection is closed and the body stays short.
    assert!(
        streaming.wait_closed(scaled(Duration::from_secs(5))).await,
        "the client connection is closed when the delay ends"
    );
    let responses = parse_responses(streaming.received());
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 200);
    assert!(
        !responses[0].complete && responses[0].body.len() < 100,
        "a cut body is visibly truncated: {:?}",
        responses[0]
    );

    // Nothing registered any more: 503.
    let resp = client.get(&alb.url("web", "/after")).await.unwrap();
    assert_eq!(resp.status, 503, "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_registered_again_while_draining_starts_over_as_new() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |targets: &[SocketAddr]| {
        format!(
            "{}{}",
            web("app", ""),
            group(
                "app",
                targets,
                &format!("deregistration_delay_seconds = 30\n{}", fast_checks(2, 2))
            )
        )
    };
    let alb = start(&config(&[a.addr(), b.addr()])).await;
    wait_state(&alb, "app", b.addr(), "healthy").await;
    reload(&alb, &config(&[a.addr()])).await;
    wait_state(&alb, "app", b.addr(), "draining").await;

    let probes = b.health_probe_count();
    reload(&alb, &config(&[a.addr(), b.addr()])).await;
    let body = describe(&alb, "app").await;
    let listed = body["TargetHealthDescriptions"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|d| d["Target"]["Port"].as_u64() == Some(u64::from(b.addr().port())))
                .count()
        })
        .unwrap_or_default();
    assert_eq!(listed, 1, "listed once: {body:#}");
    let h = health_in(&body, b.addr()).expect("listed");
    assert!(
        h.state == "initial" || h.state == "healthy",
        "registered again, b is checked afresh: {h:?}"
    );
    wait_state(&alb, "app", b.addr(), "healthy").await;
    assert!(b.health_probe_count() > probes, "b is probed again");
    let client = Client::new();
    let mut to_b = 0;
    for i in 0..6 {
        if routed(&client, &alb, &format!("/back/{i}")).await == "b" {
            to_b += 1;
        }
    }
    assert_eq!(to_b, 3, "b takes its turn again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_target_health_and_applies_new_check_settings() {
    let a = Backend::start("a").await;
    let c = Backend::start("c").await;
    let config = |targets: &[SocketAddr], path: &str| {
        format!(
            "{}{}",
            web("app", ""),
            group(
                "app",
                targets,
                &format!(
                    "health_check = {{ path = \"{path}\", interval_seconds = 0.5, timeout_seconds = 0.4, \
                     healthy_threshold = 3, unhealthy_threshold = 2 }}"
                )
            )
        )
    };
    let alb = start(&config(&[a.addr()], "/v1/health")).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;

    reload(&alb, &config(&[a.addr(), c.addr()], "/v2/health")).await;
    let on_new_path = try_eventually(STATE_PATIENCE, async || {
        a.health_probes()
            .iter()
            .filter(|p| p.target == "/v2/health")
            .count()
            >= 2
            && c.health_probe_count() >= 1
    })
    .await;
    assert!(
        on_new_path.is_ok(),
        "probes follow the new path: a {:?}, c {:?}",
        a.health_probes(),
        c.health_probes()
    );
    assert!(
        c.health_probes().iter().all(|p| p.target == "/v2/health"),
        "{:?}",
        c.health_probes()
    );
    let h = health(&alb, "app", a.addr()).await.expect("listed");
    assert_eq!(
        h.state, "healthy",
        "a target kept by a reload keeps its state: {h:?}"
    );
    wait_state(&alb, "app", c.addr(), "healthy").await;
}
