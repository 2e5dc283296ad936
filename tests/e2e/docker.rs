//! Docker discovery against a real engine: containers published with `-p` become targets on
//! their host ports, labels select them, `container_port` picks among several ports,
//! unpublished ones are reported by GET /api/discovery, and the container lifecycle
//! (stop, kill, restart, pause, Docker health, an engine restart) moves targets in and out
//! of rotation. `target_type = "ip"` and label mode without a configuration file too.
//!
//! Every test selects only its own containers: a label with a value unique to the test,
//! and target group names unique to the test (containers of other tests may carry
//! `hostalb.target-group` labels, which every hostalb reads).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hostalb_testkit::docker::{
    ContainerReply, ContainerSpec, TestContainer, docker_host, require_docker, start_private_engine,
    stop_private_engine,
};
use hostalb_testkit::{Client, HostAlb, LoadGen, LoadReport, eventually, scaled, try_eventually};
use serde_json::Value;

use crate::common::{bin, start};

/// The label every test selects its containers by (value unique to the test).
const CASE_LABEL: &str = "hostalb.e2e.case";

/// Patience for a container to start and be registered, checked and routed to.
const ROUTABLE: Duration = Duration::from_secs(20);

/// Patience for a change hostalb makes on a Docker event (stop, kill, pause...).
const EVENT_PATIENCE: Duration = Duration::from_secs(10);

/// Health checks a fraction of a second apart, two passes / failures to change state.
const FAST_CHECKS: &str = "health_check = { path = \"/health\", interval_seconds = 0.5, timeout_seconds = 0.4, \
                           healthy_threshold = 2, unhealthy_threshold = 2 }";

/// Numbers the unique values of this process.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// `tag-<hex>`: unique to this test among every test running now, in any process.
fn unique(tag: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(std::process::id()) << 40) ^ (n << 32) ^ u64::from(nanos);
    format!("{tag}-{:x}", mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24)
}

/// The `[admin]`, `[docker]` and listener `web` part of a configuration: the listener's
/// default action forwards to `default_group`; each `(prefix, group)` of `rules` sends
/// `/{prefix}/*` to `group`.
fn config(default_group: &str, rules: &[(&str, &str)], docker_extra: &str, groups: &str) -> String {
    let endpoint = docker_host();
    let mut text = format!(
        r#"
[admin]
address = "127.0.0.1:0"

[docker]
endpoint = "{endpoint}"
{docker_extra}

[[listener]]
name = "web"
address = "127.0.0.1:0"
idle_timeout_seconds = 10
default_action = {{ type = "forward", target_group = "{default_group}" }}
"#
    );
    for (i, (prefix, group)) in rules.iter().enumerate() {
        text.push_str(&format!(
            r#"
[[listener.rule]]
priority = {priority}
conditions = [{{ field = "path-pattern", values = ["/{prefix}/*"] }}]
action = {{ type = "forward", target_group = "{group}" }}
"#,
            priority = 10 * (i + 1)
        ));
    }
    text.push_str(groups);
    text
}

/// A target group selecting the containers labelled `CASE_LABEL=case`, on `container_port`,
/// with fast health checks and `delay` seconds of deregistration delay.
fn docker_group(name: &str, case: &str, container_port: u16, delay: f64, extra: &str) -> String {
    format!(
        r#"
[target_group.{name}]
deregistration_delay_seconds = {delay}
{FAST_CHECKS}
{extra}

[target_group.{name}.docker]
labels = {{ "{CASE_LABEL}" = "{case}" }}
container_port = {container_port}
"#
    )
}

/// The test image, labelled for `case`, answering with `name`.
fn spec(name: &str, case: &str) -> ContainerSpec {
    ContainerSpec::new(name)
        .label(CASE_LABEL, case)
        .env("BACKEND_NAME", name)
}

/// Runs a blocking docker command off the async workers; a panic in it is the test's.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking docker command: {e}"),
    }
}

/// Starts these containers at the same time.
async fn run_all(specs: Vec<ContainerSpec>) -> Vec<Arc<TestContainer>> {
    let tasks: Vec<_> = specs
        .into_iter()
        .map(|s| tokio::task::spawn_blocking(move || Arc::new(TestContainer::run(s))))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(c) => out.push(c),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("docker run: {e}"),
        }
    }
    out
}

async fn run_one(spec: ContainerSpec) -> Arc<TestContainer> {
    run_all(vec![spec]).await.remove(0)
}

/// One entry of DescribeTargetHealth.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: String,
    port: u16,
    health_check_port: String,
    state: String,
    reason: Option<String>,
    description: Option<String>,
    container_id: Option<String>,
    container_name: Option<String>,
}

impl Row {
    fn from_json(v: &Value) -> Row {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Row {
            id: text(&v["Target"]["Id"]).unwrap_or_else(|| panic!("Target.Id in {v}")),
            port: v["Target"]["Port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("Target.Port in {v}")),
            health_check_port: text(&v["HealthCheckPort"]).unwrap_or_default(),
            state: text(&v["TargetHealth"]["State"]).unwrap_or_else(|| panic!("TargetHealth.State in {v}")),
            reason: text(&v["TargetHealth"]["Reason"]),
            description: text(&v["TargetHealth"]["Description"]),
            container_id: text(&v["Target"]["ContainerId"]),
            container_name: text(&v["Target"]["ContainerName"]),
        }
    }
}

/// GET /api/target-health of `group`.
async fn target_health(alb: &HostAlb, group: &str) -> Vec<Row> {
    let (status, body) = alb
        .admin_get(&format!("/api/target-health?target_group={group}"))
        .await;
    assert_eq!(status, 200, "GET /api/target-health?target_group={group}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["TargetHealthDescriptions"]
        .as_array()
        .unwrap_or_else(|| panic!("TargetHealthDescriptions in {body}"))
        .iter()
        .map(Row::from_json)
        .collect()
}

/// Waits until `group`'s target health satisfies `holds`; returns the rows that did.
async fn wait_rows(alb: &HostAlb, group: &str, what: &str, holds: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    wait_rows_within(ROUTABLE, alb, group, what, holds).await
}

/// [`wait_rows`] with its own patience.
async fn wait_rows_within(
    patience: Duration,
    alb: &HostAlb,
    group: &str,
    what: &str,
    holds: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    let mut last = Vec::new();
    let done = try_eventually(patience, async || {
        last = target_health(alb, group).await;
        holds(&last)
    })
    .await;
    assert!(
        done.is_ok(),
        "target group {group}: {what}; target health now: {last:#?}\nhostalb stderr:\n{}",
        alb.stderr_text()
    );
    last
}

/// The row of the target at `id:port`, if listed.
fn row<'a>(rows: &'a [Row], id: &str, port: u16) -> Option<&'a Row> {
    rows.iter().find(|r| r.id == id && r.port == port)
}

/// The container ids of the targets listed.
fn container_ids(rows: &[Row]) -> Vec<&str> {
    rows.iter()
        .map(|r| r.container_id.as_deref().unwrap_or("(none)"))
        .collect()
}

/// Whether `id:port` is listed and not draining (it takes new requests when healthy).
fn registered(rows: &[Row], id: &str, port: u16) -> bool {
    row(rows, id, port).is_some_and(|r| r.state != "draining")
}

/// Waits until every container is a healthy target of `group` on its published `port`
/// (127.0.0.1:host port).
async fn wait_healthy(alb: &HostAlb, group: &str, containers: &[&TestContainer], port: u16) -> Vec<Row> {
    let want: Vec<u16> = containers.iter().map(|c| c.host_port(port)).collect();
    wait_rows(alb, group, &format!("host ports {want:?} healthy"), |rows| {
        want.iter()
            .all(|p| row(rows, "127.0.0.1", *p).is_some_and(|r| r.state == "healthy"))
    })
    .await
}

/// Waits until `id:port` is no longer registered in `group` (draining or gone).
async fn wait_deregistered(alb: &HostAlb, group: &str, id: &str, port: u16) -> Vec<Row> {
    wait_rows_within(
        EVENT_PATIENCE,
        alb,
        group,
        &format!("{id}:{port} out of rotation"),
        |rows| !registered(rows, id, port),
    )
    .await
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(5)).build()
}

/// `GET url`: the status and, for the test image's answers, its reply.
async fn hit(client: &Client, url: &str) -> Result<(u16, Option<ContainerReply>), String> {
    let resp = client.get(url).await.map_err(|e| e.to_string())?;
    Ok((resp.status, resp.container_reply()))
}

/// Sends `n` requests one after the other; every one must be answered 200 by a container.
/// Returns how many each backend answered.
async fn spread(client: &Client, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let resp = client
            .get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url} (#{i}): {e}"));
        assert_eq!(resp.status, 200, "GET {url} (#{i}): {resp:?}");
        let reply = resp
            .container_reply()
            .unwrap_or_else(|| panic!("GET {url} (#{i}) not answered by a container: {resp:?}"));
        *seen.entry(reply.backend).or_insert(0) += 1;
    }
    seen
}

/// Waits until each of `names` has answered `GET url` with 200.
async fn wait_seen(client: &Client, alb: &HostAlb, url: &str, names: &[&str]) {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut last = String::new();
    let done = try_eventually(ROUTABLE, async || {
        match hit(client, url).await {
            Ok((200, Some(reply))) => {
                seen.insert(reply.backend);
            }
            Ok((status, _)) => last = format!("status {status}"),
            Err(e) => last = e,
        }
        names.iter().all(|n| seen.contains(*n))
    })
    .await;
    assert!(
        done.is_ok(),
        "GET {url} should reach {names:?}; answered by {seen:?}, last other outcome: {last}\nhostalb stderr:\n{}",
        alb.stderr_text()
    );
}

/// Requests that did not get a 2xx.
fn failures(report: &LoadReport) -> u64 {
    report.error_count + report.non_2xx.iter().map(|(_, n)| n).sum::<u64>()
}

/// How many answers `name` gave in a load run.
fn answered_by(report: &LoadReport, name: &str) -> u64 {
    report
        .backends
        .iter()
        .find(|(b, _)| b == name)
        .map_or(0, |(_, n)| *n)
}

/// `clients` keep-alive clients sending requests one after another to `url` until stopped
/// (at most 15 s; a request gets 5 s).
fn steady_load(url: &str, clients: usize) -> LoadGen {
    LoadGen::builder(url)
        .concurrency(clients)
        .max_duration(Duration::from_secs(15))
        .request_timeout(Duration::from_secs(5))
        .start()
}

/// Waits until the load has made `more` requests past `from`.
async fn wait_load(load: &LoadGen, from: u64, more: u64) {
    eventually(Duration::from_secs(10), async || load.done() >= from + more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_containers_are_routed_on_their_host_ports() {
    require_docker();
    let case = unique("pub");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, ""),
    ))
    .await;
    let names = [format!("{case}-a"), format!("{case}-b")];
    let cs = run_all(names.iter().map(|n| spec(n, &case).publish(80)).collect()).await;

    let rows = wait_healthy(&alb, &group, &[&cs[0], &cs[1]], 80).await;
    assert_eq!(rows.len(), 2, "only this test's two containers: {rows:#?}");
    for c in &cs {
        let port = c.host_port(80);
        let r = row(&rows, "127.0.0.1", port).unwrap();
        assert_eq!(r.health_check_port, port.to_string(), "{r:?}");
        assert_eq!(r.container_id.as_deref(), Some(c.id()), "{r:?}");
        assert_eq!(r.container_name.as_deref(), Some(c.name()), "{r:?}");
    }

    let client = client();
    let url = alb.url("web", "/hello");
    let seen = spread(&client, &url, 20).await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        names.to_vec(),
        "both containers answer through the listener: {seen:?}"
    );
    let resp = client.get(&url).await.unwrap();
    let reply = resp.container_reply().unwrap();
    assert_eq!(reply.port, 80, "reached the container port: {reply:?}");
    assert_eq!(reply.target, "/hello", "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_select_only_matching_containers() {
    require_docker();
    let case = unique("sel");
    let selected = unique("tg");
    let named = unique("tg");
    let groups = format!(
        "{}\n[target_group.{named}]\nderegistration_delay_seconds = 1\n{FAST_CHECKS}\n",
        docker_group(&selected, &case, 80, 1.0, "")
    );
    let alb = start(&config(&selected, &[("named", &named)], "", &groups)).await;
    let [matching, other_value, unlabelled, by_name] =
        ["match", "other", "none", "named"].map(|t| format!("{case}-{t}"));
    let cs = run_all(vec![
        spec(&matching, &case).publish(80),
        spec(&other_value, &format!("{case}-x")).publish(80),
        ContainerSpec::new(&unlabelled)
            .env("BACKEND_NAME", &unlabelled)
            .publish(80),
        ContainerSpec::new(&by_name)
            .label("hostalb.target-group", &named)
            .env("BACKEND_NAME", &by_name)
            .publish(80),
    ])
    .await;

    let sel_rows = wait_healthy(&alb, &selected, &[&cs[0]], 80).await;
    let named_rows = wait_healthy(&alb, &named, &[&cs[3]], 80).await;
    let client = client();
    let seen = spread(&client, &alb.url("web", "/any"), 30).await;
    assert_eq!(
        seen,
        BTreeMap::from([(matching.clone(), 30)]),
        "only the container whose label value matches: {seen:?}"
    );
    let seen = spread(&client, &alb.url("web", "/named/x"), 10).await;
    assert_eq!(
        seen,
        BTreeMap::from([(by_name.clone(), 10)]),
        "the hostalb.target-group label registers in the group it names: {seen:?}"
    );
    // Asked after the selected ones were checked and routed to: the others had every chance.
    assert_eq!(
        container_ids(&target_health(&alb, &selected).await),
        vec![cs[0].id()],
        "{sel_rows:#?}"
    );
    assert_eq!(
        container_ids(&target_health(&alb, &named).await),
        vec![cs[3].id()],
        "{named_rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_port_picks_one_of_several_published_ports() {
    require_docker();
    let case = unique("multi");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "host_address = \"127.0.0.2\"",
        &docker_group(&group, &case, 8080, 1.0, ""),
    ))
    .await;
    let name = format!("{case}-a");
    let c = run_one(
        spec(&name, &case)
            .env("PORT", "80")
            .env("EXTRA_PORTS", "8080")
            .publish(80)
            .publish(8080),
    )
    .await;
    let port = c.host_port(8080);
    let rows = wait_rows(&alb, &group, "the 8080 binding healthy at host_address", |rows| {
        row(rows, "127.0.0.2", port).is_some_and(|r| r.state == "healthy")
    })
    .await;
    assert_eq!(
        rows.len(),
        1,
        "one target, on the host port of 8080/tcp: {rows:#?}"
    );

    let client = client();
    for _ in 0..5 {
        let (status, reply) = hit(&client, &alb.url("web", "/p")).await.unwrap();
        assert_eq!(status, 200);
        let reply = reply.unwrap();
        assert_eq!(reply.port, 8080, "routed to container port 8080: {reply:?}");
        assert_eq!(reply.backend, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_container_is_reported_by_the_discovery_api() {
    require_docker();
    let case = unique("unpub");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, ""),
    ))
    .await;
    let (hidden, shown) = (format!("{case}-hidden"), format!("{case}-shown"));
    let cs = run_all(vec![spec(&hidden, &case), spec(&shown, &case).publish(80)]).await;
    let (unpublished, published) = (&cs[0], &cs[1]);

    let mut last = Value::Null;
    let done = try_eventually(ROUTABLE, async || {
        let (status, body) = alb.admin_get("/api/discovery").await;
        assert_eq!(status, 200, "GET /api/discovery: {body}");
        last = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        last["NotRegistered"]
            .as_array()
            .is_some_and(|list| list.iter().any(|e| e["ContainerId"] == unpublished.id()))
    })
    .await;
    assert!(
        done.is_ok(),
        "GET /api/discovery should list {} as not registered: {last:#}\nstderr:\n{}",
        unpublished.name(),
        alb.stderr_text()
    );
    assert_eq!(last["Enabled"], true, "{last:#}");
    assert_eq!(last["Connected"], true, "{last:#}");
    assert_eq!(last["Endpoint"], docker_host().as_str(), "{last:#}");
    let entries: Vec<&Value> = last["NotRegistered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ContainerId"] == unpublished.id())
        .collect();
    assert_eq!(entries.len(), 1, "{last:#}");
    let entry = entries[0];
    assert_eq!(entry["ContainerName"], unpublished.name(), "{entry:#}");
    assert_eq!(entry["TargetGroup"], group.as_str(), "{entry:#}");
    let reason = entry["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("does not publish container port 80"),
        "the reason says what is wrong: {reason:?}"
    );
    assert!(
        last["NotRegistered"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ContainerId"] != published.id()),
        "{last:#}"
    );

    let rows = wait_healthy(&alb, &group, &[published], 80).await;
    assert_eq!(
        rows.len(),
        1,
        "only the published container is a target: {rows:#?}"
    );
    let seen = spread(&client(), &alb.url("web", "/"), 10).await;
    assert_eq!(seen, BTreeMap::from([(shown, 10)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_stop_under_load_loses_no_request() {
    require_docker();
    let case = unique("stop");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 3.0, ""),
    ))
    .await;
    let names = ["a", "b", "c"].map(|t| format!("{case}-{t}"));
    let cs = run_all(
        names
            .iter()
            .map(|n| spec(n, &case).publish(80).env("STOP_GRACE_MS", "2000"))
            .collect(),
    )
    .await;
    wait_healthy(&alb, &group, &[&cs[0], &cs[1], &cs[2]], 80).await;
    let client = client();
    let url = alb.url("web", "/work");
    wait_seen(&client, &alb, &url, &[&names[0], &names[1], &names[2]]).await;

    let load = steady_load(&url, 6);
    wait_load(&load, 0, 200).await;

    let victim = Arc::clone(&cs[2]);
    let victim_port = victim.host_port(80);
    let stopping = Arc::clone(&victim);
    let stop = tokio::spawn(blocking(move || stopping.stop(10)));
    wait_deregistered(&alb, &group, "127.0.0.1", victim_port).await;
    // The container keeps serving for 2 s after SIGTERM; hostalb must not send it more.
    let after = spread(&client, &url, 20).await;
    let still_running = victim.state().running;
    assert!(
        !after.contains_key(&names[2]),
        "a target out of rotation still got requests (container running: {still_running}): {after:?}"
    );
    let took = stop.await.unwrap();
    let from = load.done();
    wait_load(&load, from, 200).await;
    let report = load.stop().await;
    println!("docker stop took {took:?}; load: {report:?}");
    assert!(
        report.all_ok(),
        "every request under load is answered 200 across docker stop: {report:?}\nstderr:\n{}",
        alb.stderr_text()
    );
    assert!(answered_by(&report, &names[2]) > 0, "{report:?}");
    let after = spread(&client, &url, 20).await;
    assert!(!after.contains_key(&names[2]), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_kill_takes_the_target_out_at_once() {
    require_docker();
    let case = unique("kill");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, ""),
    ))
    .await;
    let names = ["a", "b", "c"].map(|t| format!("{case}-{t}"));
    let cs = run_all(names.iter().map(|n| spec(n, &case).publish(80)).collect()).await;
    wait_healthy(&alb, &group, &[&cs[0], &cs[1], &cs[2]], 80).await;
    let client = client();
    let url = alb.url("web", "/work");
    wait_seen(&client, &alb, &url, &[&names[0], &names[1], &names[2]]).await;

    // GETs on their way to the container when it dies, and those sent before the engine
    // reports the kill, meet a refused or reset connection: the retry policy sends each
    // once more on a new connection to another replica, so none fails, before or after
    // the target is out of rotation.
    const CLIENTS: usize = 4;
    let across = steady_load(&url, CLIENTS);
    wait_load(&across, 0, 200).await;
    let victim = Arc::clone(&cs[0]);
    let victim_port = victim.host_port(80);
    let killing = Arc::clone(&victim);
    let killed_at = Instant::now();
    blocking(move || killing.kill()).await;
    wait_deregistered(&alb, &group, "127.0.0.1", victim_port).await;
    let out_after = killed_at.elapsed();
    let across = across.stop().await;
    println!(
        "docker kill: out of rotation {out_after:?} after the kill was asked; load across it: {across:?}"
    );
    assert_eq!(
        failures(&across),
        0,
        "no GET fails across the kill: {across:?}\nstderr:\n{}",
        alb.stderr_text()
    );
    assert!(
        out_after < Duration::from_secs(5),
        "a kill takes the target out as soon as the engine reports it, took {out_after:?}\nstderr:\n{}",
        alb.stderr_text()
    );

    let after_out = steady_load(&url, CLIENTS);
    wait_load(&after_out, 0, 300).await;
    let after_out = after_out.stop().await;
    assert_eq!(
        failures(&after_out),
        0,
        "no request fails once the killed target is out: {after_out:?}\nstderr:\n{}",
        alb.stderr_text()
    );
    assert_eq!(answered_by(&after_out, &names[0]), 0, "{after_out:?}");
    let after = spread(&client, &url, 30).await;
    assert!(!after.contains_key(&names[0]), "{after:?}");
    assert_eq!(after.len(), 2, "the two others share the requests: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restart_is_routed_on_its_new_host_port() {
    require_docker();
    let case = unique("restart");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, ""),
    ))
    .await;
    let name = format!("{case}-a");
    let c = run_one(spec(&name, &case).publish(80).env("STOP_GRACE_MS", "100")).await;
    wait_healthy(&alb, &group, &[&c], 80).await;
    let old = c.host_port(80);

    let restarting = Arc::clone(&c);
    blocking(move || restarting.restart()).await;
    let new = c.host_port(80);
    println!("docker restart moved the host port {old} -> {new}");
    let rows = wait_rows(
        &alb,
        &group,
        &format!("the new host port {new} healthy"),
        |rows| {
            row(rows, "127.0.0.1", new).is_some_and(|r| r.state == "healthy")
                && rows.iter().filter(|r| r.state != "draining").count() == 1
        },
    )
    .await;
    let r = row(&rows, "127.0.0.1", new).unwrap();
    assert_eq!(r.container_id.as_deref(), Some(c.id()), "{r:?}");
    if old != new {
        assert!(
            !registered(&rows, "127.0.0.1", old),
            "the old host port left: {rows:#?}"
        );
    }
    let seen = spread(&client(), &alb.url("web", "/again"), 10).await;
    assert_eq!(seen, BTreeMap::from([(name, 10)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pause_takes_the_target_out_until_unpause() {
    require_docker();
    let case = unique("pause");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, ""),
    ))
    .await;
    let names = ["a", "b"].map(|t| format!("{case}-{t}"));
    let cs = run_all(names.iter().map(|n| spec(n, &case).publish(80)).collect()).await;
    wait_healthy(&alb, &group, &[&cs[0], &cs[1]], 80).await;
    let client = client();
    let url = alb.url("web", "/p");
    wait_seen(&client, &alb, &url, &[&names[0], &names[1]]).await;

    let paused = Arc::clone(&cs[0]);
    let port = paused.host_port(80);
    let pausing = Arc::clone(&paused);
    blocking(move || pausing.pause()).await;
    wait_deregistered(&alb, &group, "127.0.0.1", port).await;
    let seen = spread(&client, &url, 20).await;
    assert_eq!(
        seen,
        BTreeMap::from([(names[1].clone(), 20)]),
        "a paused container gets no requests"
    );

    let unpausing = Arc::clone(&paused);
    blocking(move || unpausing.unpause()).await;
    wait_healthy(&alb, &group, &[&cs[0], &cs[1]], 80).await;
    wait_seen(&client, &alb, &url, &[&names[0]]).await;
    let seen = spread(&client, &url, 20).await;
    assert_eq!(seen.len(), 2, "both take requests again after unpause: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_container_drains_for_the_deregistration_delay() {
    require_docker();
    const DELAY: f64 = 3.0;
    let case = unique("drain");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, DELAY, ""),
    ))
    .await;
    let names = ["a", "b"].map(|t| format!("{case}-{t}"));
    let cs = run_all(
        names
            .iter()
            .map(|n| spec(n, &case).publish(80).env("STOP_GRACE_MS", "100"))
            .collect(),
    )
    .await;
    wait_healthy(&alb, &group, &[&cs[0], &cs[1]], 80).await;
    let port = cs[0].host_port(80);
    let id = cs[0].id().to_owned();

    let stopping = Arc::clone(&cs[0]);
    let stop = tokio::spawn(blocking(move || stopping.stop(10)));
    let rows = wait_rows(&alb, &group, "the stopped container draining", |rows| {
        row(rows, "127.0.0.1", port).is_some_and(|r| r.state == "draining")
    })
    .await;
    let first_draining = Instant::now();
    let r = row(&rows, "127.0.0.1", port).unwrap();
    assert_eq!(
        r.reason.as_deref(),
        Some("Target.DeregistrationInProgress"),
        "{r:?}"
    );
    assert_eq!(r.container_id.as_deref(), Some(id.as_str()), "{r:?}");
    stop.await.unwrap();

    // Draining until the delay ends, then gone; never anything else in between.
    let deadline = first_draining + scaled(Duration::from_secs_f64(DELAY + 10.0));
    let mut observed = Vec::new();
    let gone_after = loop {
        let now = target_health(&alb, &group).await;
        match row(&now, "127.0.0.1", port) {
            None => break first_draining.elapsed(),
            Some(r) => {
                assert_eq!(r.state, "draining", "until it leaves: {now:#?}");
                observed.push(first_draining.elapsed());
            }
        }
        assert!(
            Instant::now() < deadline,
            "still listed {:?} after it began draining (delay {DELAY} s): {now:#?}",
            first_draining.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "draining seen for {gone_after:?} ({} looks), delay {DELAY} s",
        observed.len()
    );
    assert!(
        gone_after >= Duration::from_secs_f64(DELAY / 3.0),
        "the target left {gone_after:?} after it was first seen draining; the delay is {DELAY} s"
    );
    let others = target_health(&alb, &group).await;
    assert!(
        registered(&others, "127.0.0.1", cs[1].host_port(80)),
        "{others:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_docker_health_takes_an_unhealthy_container_out() {
    require_docker();
    let case = unique("dhealth");
    let strict = unique("tg");
    let plain = unique("tg");
    let groups = format!(
        "{}{}",
        docker_group(&strict, &case, 80, 1.0, "use_docker_health = true"),
        docker_group(&plain, &case, 80, 1.0, "")
    );
    let alb = start(&config(&strict, &[("plain", &plain)], "", &groups)).await;
    let (sick, well) = (format!("{case}-sick"), format!("{case}-well"));
    // The test image has no shell, so Docker cannot run any --health-cmd in it (it runs
    // commands through /bin/sh): the check fails, and Docker reports the container
    // unhealthy. The command itself is one that fails anyway.
    let cs = run_all(vec![
        spec(&sick, &case)
            .publish(80)
            .arg("--health-cmd")
            .arg("exit 1")
            .arg("--health-interval")
            .arg("200ms")
            .arg("--health-timeout")
            .arg("1s")
            .arg("--health-retries")
            .arg("1"),
        spec(&well, &case).publish(80),
    ])
    .await;
    let unhealthy = Arc::clone(&cs[0]);
    let docker_says = blocking(move || {
        let deadline = Instant::now() + scaled(ROUTABLE);
        loop {
            let status = unhealthy.inspect("{{.State.Health.Status}}");
            if status == "unhealthy" || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
    assert_eq!(docker_says, "unhealthy", "Docker's own verdict on the container");

    let sick_port = cs[0].host_port(80);
    let rows = wait_rows(
        &alb,
        &strict,
        "the Docker-unhealthy container unhealthy",
        |rows| {
            row(rows, "127.0.0.1", sick_port).is_some_and(|r| r.state == "unhealthy")
                && row(rows, "127.0.0.1", cs[1].host_port(80)).is_some_and(|r| r.state == "healthy")
        },
    )
    .await;
    let r = row(&rows, "127.0.0.1", sick_port).unwrap();
    assert!(
        r.description
            .as_deref()
            .unwrap_or_default()
            .contains("Docker HEALTHCHECK"),
        "{r:?}"
    );
    let client = client();
    let seen = spread(&client, &alb.url("web", "/strict"), 20).await;
    assert_eq!(
        seen,
        BTreeMap::from([(well.clone(), 20)]),
        "with use_docker_health, the container Docker calls unhealthy gets no requests"
    );
    // Without use_docker_health, hostalb's own checks alone decide: both take requests.
    wait_healthy(&alb, &plain, &[&cs[0], &cs[1]], 80).await;
    let seen = spread(&client, &alb.url("web", "/plain/x"), 20).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_targets_are_the_container_address_and_port() {
    require_docker();
    let case = unique("ip");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, "target_type = \"ip\""),
    ))
    .await;
    let name = format!("{case}-a");
    // Nothing published: an ip target is reached on the container's own address.
    let c = run_one(spec(&name, &case)).await;
    let ip = c.ip().to_string();
    let rows = wait_rows(&alb, &group, &format!("{ip}:80 healthy"), |rows| {
        row(rows, &ip, 80).is_some_and(|r| r.state == "healthy")
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].container_id.as_deref(), Some(c.id()));
    assert_eq!(rows[0].health_check_port, "80");
    let resp = client().get(&alb.url("web", "/ip")).await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let reply = resp.container_reply().unwrap();
    assert_eq!((reply.backend.as_str(), reply.port), (name.as_str(), 80));
}

/// The README: `hostalb.container-port` is needed "when the container publishes several"
/// ports. The test image also exposes 80 (`EXPOSE 80`), which this container does not
/// publish: the one port it publishes is the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_published_port_is_used_when_others_are_only_exposed() {
    require_docker();
    let case = unique("onepub");
    let group = unique("tg");
    let groups = format!("\n[target_group.{group}]\nderegistration_delay_seconds = 1\n{FAST_CHECKS}\n");
    let alb = start(&config(&group, &[], "", &groups)).await;
    let name = format!("{case}-a");
    let c = run_one(
        ContainerSpec::new(&name)
            .label("hostalb.target-group", &group)
            .env("BACKEND_NAME", &name)
            .env("PORT", "8081")
            .publish(8081),
    )
    .await;
    let port = c.host_port(8081);
    let mut discovery = String::new();
    let registered_ok = try_eventually(ROUTABLE, async || {
        discovery = alb.admin_get("/api/discovery").await.1;
        row(&target_health(&alb, &group).await, "127.0.0.1", port).is_some_and(|r| r.state == "healthy")
    })
    .await;
    assert!(
        registered_ok.is_ok(),
        "{} publishes only 8081/tcp (on host port {port}) and should be a target of {group}; \
         GET /api/discovery: {discovery}",
        c.name()
    );
    let resp = client().get(&alb.url("web", "/one")).await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.container_reply().unwrap().port, 8081);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_to_routable_is_reported() {
    require_docker();
    const STARTS: usize = 20;
    let case = unique("s2r");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 0.0, ""),
    ))
    .await;
    let client = Client::builder().timeout(Duration::from_secs(2)).build();
    let url = alb.url("web", "/");
    let bound = Duration::from_secs(10);
    let mut took = Vec::with_capacity(STARTS);
    let mut misses = Vec::with_capacity(STARTS);
    for i in 0..STARTS {
        let name = format!("{case}-{i}");
        let c = run_one(spec(&name, &case).publish(80)).await;
        let started = Instant::now();
        let mut other = BTreeMap::<String, usize>::new();
        let routable = loop {
            match hit(&client, &url).await {
                Ok((200, Some(r))) if r.backend == name => break Some(started.elapsed()),
                Ok((status, r)) => {
                    let what =
                        r.map_or_else(|| format!("{status}"), |r| format!("{status} from {}", r.backend));
                    *other.entry(what).or_insert(0) += 1;
                }
                Err(e) => *other.entry(format!("error: {e}")).or_insert(0) += 1,
            }
            if started.elapsed() >= bound {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let Some(routable) = routable else {
            panic!(
                "start #{i}: {} not routable {bound:?} after docker run returned; answers meanwhile: {other:?}\nstderr:\n{}",
                c.name(),
                alb.stderr_text()
            );
        };
        took.push(routable);
        misses.push(other);
        let removing = Arc::clone(&c);
        blocking(move || removing.rm()).await;
        wait_rows(&alb, &group, "no target left", <[Row]>::is_empty).await;
    }
    let mut sorted = took.clone();
    sorted.sort_unstable();
    println!(
        "start to routable over {STARTS} starts: median {:?}, worst {:?}, best {:?}",
        sorted[STARTS / 2],
        sorted[STARTS - 1],
        sorted[0]
    );
    for (i, (t, m)) in took.iter().zip(&misses).enumerate() {
        println!("  start #{i}: {t:?}; answers before: {m:?}");
    }
}

/// hostalb started without `--config` (label mode): the embedded default's fixed
/// addresses, Docker at [`docker_host`].
struct Unconfigured {
    child: Child,
    admin: SocketAddr,
    web: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Unconfigured {
    fn start() -> Unconfigured {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(bin())
            .arg("run")
            .env("DOCKER_HOST", docker_host())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Reads stdout for as long as hostalb runs, so that it never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + scaled(Duration::from_secs(15));
        let (mut admin, mut web) = (None, None);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["listening", "admin", a] => admin = a.parse().ok(),
                        ["listening", "listener", "web", a] => web = a.parse().ok(),
                        _ => {}
                    }
                }
                Err(_) => give_up(&mut child, &stderr, "no `ready` line within 15 s"),
            }
        }
        let (Some(admin), Some(web)) = (admin, web) else {
            give_up(
                &mut child,
                &stderr,
                &format!("addresses missing (admin {admin:?}, web {web:?})"),
            )
        };
        Unconfigured {
            child,
            admin,
            web,
            stderr,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web.port())
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn give_up(child: &mut Child, stderr: &Path, why: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "hostalb run (no --config): {why}\nstderr:\n{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    )
}

impl Drop for Unconfigured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("hostalb (no --config) stderr:\n{}", self.stderr_text());
        }
    }
}

/// This test runs the embedded default on its fixed ports (listener 0.0.0.0:8080, admin
/// 127.0.0.1:9901), as a user without flags does, so it runs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_label_mode_without_config_builds_rules_from_labels() {
    require_docker();
    let alb = blocking(Unconfigured::start).await;
    assert_eq!(alb.web.port(), 8080, "the embedded default listener");
    let case = unique("lm");
    let (api, web) = (unique("lmapi"), unique("lmweb"));
    let prefix = unique("api");
    let host = format!("{}.localhost", unique("site"));
    let cs = run_all(vec![
        ContainerSpec::new(format!("{case}-api"))
            .label("hostalb.target-group", &api)
            .label("hostalb.path-pattern", format!("/{prefix}/*"))
            .label("hostalb.priority", "10")
            .label("hostalb.health-check-path", "/health")
            .env("BACKEND_NAME", format!("{case}-api"))
            .publish(80),
        ContainerSpec::new(format!("{case}-web"))
            .label("hostalb.target-group", &web)
            .label("hostalb.host-header", &host)
            .label("hostalb.container-port", "8081")
            .env("EXTRA_PORTS", "8081")
            .env("BACKEND_NAME", format!("{case}-web"))
            .publish(80)
            .publish(8081),
    ])
    .await;
    let client = client();
    let mut last = String::new();
    let routed = try_eventually(ROUTABLE, async || {
        let a = hit(&client, &alb.url(&format!("/{prefix}/items"))).await;
        let b = client
            .request("GET", &alb.url("/"), &[("Host", host.as_str())], "")
            .await;
        last = format!(
            "{a:?} / {:?}",
            b.as_ref().map(|r| (r.status, r.backend().map(str::to_owned)))
        );
        matches!(&a, Ok((200, Some(r))) if r.backend == format!("{case}-api"))
            && b.is_ok_and(|r| r.status == 200 && r.backend() == Some(format!("{case}-web").as_str()))
    })
    .await;
    assert!(
        routed.is_ok(),
        "label rules should route /{prefix}/* and Host {host}: last {last}\nstderr:\n{}",
        alb.stderr_text()
    );
    let reply = hit(&client, &alb.url(&format!("/{prefix}/x")))
        .await
        .unwrap()
        .1
        .unwrap();
    assert_eq!(reply.port, 80);
    let b = client
        .request("GET", &alb.url("/"), &[("Host", host.as_str())], "")
        .await
        .unwrap();
    assert_eq!(
        b.container_reply().unwrap().port,
        8081,
        "the hostalb.container-port label"
    );

    let miss = client.get(&alb.url("/elsewhere")).await.unwrap();
    assert_eq!((miss.status, miss.text().as_str()), (404, "no rule matched"));

    let rules = client
        .get(&alb.admin_url("/api/rules?listener=web"))
        .await
        .unwrap();
    let rules = rules.json().unwrap_or_else(|| panic!("{rules:?}"));
    let list = rules["Rules"].as_array().unwrap();
    let path_rule = list
        .iter()
        .find(|r| r["Conditions"][0]["PathPatternConfig"]["Values"][0] == format!("/{prefix}/*").as_str())
        .unwrap_or_else(|| panic!("no path rule from labels: {rules:#}"));
    assert_eq!(path_rule["Priority"], "10", "{path_rule:#}");
    let host_rule = list
        .iter()
        .find(|r| r["Conditions"][0]["HostHeaderConfig"]["Values"][0] == host.as_str())
        .unwrap_or_else(|| panic!("no host rule from labels: {rules:#}"));
    let priority: u32 = host_rule["Priority"].as_str().unwrap().parse().unwrap();
    assert!(
        priority >= 1000,
        "without hostalb.priority: the next free from 1000: {host_rule:#}"
    );

    let th = client
        .get(&alb.admin_url(&format!("/api/target-health?target_group={api}")))
        .await
        .unwrap();
    let th = th.json().unwrap();
    let targets = th["TargetHealthDescriptions"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{th:#}");
    assert_eq!(targets[0]["Target"]["Port"], cs[0].host_port(80), "{th:#}");
    assert_eq!(targets[0]["Target"]["ContainerId"], cs[0].id(), "{th:#}");
}

/// Starts the private engine again (with live-restore) when dropped while it is stopped.
struct EngineDown(bool);

impl Drop for EngineDown {
    fn drop(&mut self) {
        if self.0
            && let Err(e) = start_private_engine("--live-restore")
        {
            eprintln!("could not start the Docker engine again: {e}");
        }
    }
}

/// Stops dockerd (live-restore keeps the containers running): hostalb keeps its routes,
/// reconnects when the engine is back and registers what started meanwhile. Container
/// addresses (`target_type = "ip"`) keep answering while dockerd is down; published host
/// ports do not (their docker-proxy dies with the daemon).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_docker_daemon_restart_keeps_routes_and_resyncs() {
    require_docker();
    let case = unique("daemon");
    let group = unique("tg");
    let alb = start(&config(
        &group,
        &[],
        "",
        &docker_group(&group, &case, 80, 1.0, "target_type = \"ip\""),
    ))
    .await;
    let (first, second) = (format!("{case}-first"), format!("{case}-second"));
    let a = run_one(spec(&first, &case)).await;
    let a_ip = a.ip().to_string();
    let client = client();
    let url = alb.url("web", "/d");
    wait_seen(&client, &alb, &url, &[&first]).await;

    let mut down = EngineDown(true);
    blocking(|| stop_private_engine().unwrap_or_else(|e| panic!("stopping the engine: {e}"))).await;
    let stopped_at = Instant::now();
    let (_, body) = alb.admin_get("/api/discovery").await;
    println!("discovery with the engine stopped: {body}");
    // Requests keep succeeding on the known route while Docker is unreachable.
    for i in 0..20 {
        let (status, reply) = hit(&client, &url)
            .await
            .unwrap_or_else(|e| panic!("request #{i} with the engine down: {e}"));
        assert_eq!(status, 200, "request #{i} with the engine down");
        assert_eq!(reply.unwrap().backend, first);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows_down = target_health(&alb, &group).await;
    assert!(
        registered(&rows_down, &a_ip, 80),
        "kept while Docker is unreachable: {rows_down:#?}"
    );

    blocking(|| {
        start_private_engine("--live-restore").unwrap_or_else(|e| panic!("starting the engine: {e}"))
    })
    .await;
    down.0 = false;
    println!("engine down for {:?}", stopped_at.elapsed());
    assert!(a.state().running, "live-restore kept the container running");

    let b = run_one(spec(&second, &case)).await;
    let started = Instant::now();
    let mut last = String::new();
    let done = try_eventually(Duration::from_secs(60), async || {
        match hit(&client, &url).await {
            Ok((200, Some(r))) if r.backend == second => return true,
            other => last = format!("{other:?}"),
        }
        false
    })
    .await;
    let (_, discovery) = alb.admin_get("/api/discovery").await;
    assert!(
        done.is_ok(),
        "a container started after the engine came back should be routed to; last {last}\ndiscovery: {discovery}\nstderr:\n{}",
        alb.stderr_text()
    );
    println!(
        "new container routable {:?} after docker run returned",
        started.elapsed()
    );
    let v: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(v["Connected"], true, "{v:#}");
    assert!(v["Connects"].as_u64().unwrap_or(0) >= 2, "reconnected: {v:#}");
    let names = [first.as_str(), second.as_str()];
    wait_seen(&client, &alb, &url, &names).await;
    let rows = target_health(&alb, &group).await;
    for c in [&a, &b] {
        assert!(registered(&rows, &c.ip().to_string(), 80), "{rows:#?}");
    }
}
