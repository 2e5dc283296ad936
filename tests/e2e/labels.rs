//! Label mode (hostalb without a configuration file) against a real Docker engine: what a
//! new user meets. A priority clash keeps both services routed and is reported on the
//! container; containers of one group with different labels follow the oldest, and the
//! others' differences are reported; a mistyped group goes after its grace period; health
//! check and deregistration labels change probing and draining; one container serves two
//! groups on two ports; an invalid label is reported with its fix while the rest serves.
//!
//! hostalb runs with `--listen 127.0.0.1:0 --admin 127.0.0.1:0`, so these tests run side by
//! side. Every hostalb in label mode reads every container on the engine: each test uses
//! group names, paths and priorities unique to it, and looks only at those.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostalb_testkit::docker::{ContainerSpec, TestContainer, docker_host, require_docker};
use hostalb_testkit::{Client, scaled, try_eventually};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::common::bin;

/// Patience for a container to start and be registered, checked and routed to.
const ROUTABLE: Duration = Duration::from_secs(20);

/// Numbers the unique values of this process.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// `tag-<hex>`: unique among every test running now, in any process.
fn unique(tag: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(std::process::id()) << 40) ^ (n << 32) ^ u64::from(nanos);
    format!("{tag}-{:x}", mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 28)
}

/// A rule priority no other test asks for (ALB's range, above the automatic ones).
fn unique_priority() -> u32 {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(std::process::id()) << 20) ^ (n << 12) ^ u64::from(nanos);
    10_000 + (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u32 % 30_000
}

/// `hostalb run` without `--config`: the embedded default, moved to free loopback ports
/// with `--listen` / `--admin` (or the environment), Docker at [`docker_host`] unless the
/// environment says otherwise.
pub(crate) struct LabelModeAlb {
    child: Child,
    pub(crate) web: SocketAddr,
    pub(crate) admin: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl LabelModeAlb {
    /// Starts `hostalb run ARGS` with `env` and waits for `ready`.
    pub(crate) async fn start(args: &[&str], env: &[(&str, &str)]) -> LabelModeAlb {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !env.iter().any(|(k, _)| *k == "DOCKER_HOST") {
            cmd.env("DOCKER_HOST", docker_host());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning hostalb: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, mut ready) = watch::channel(false);
        let out = child.stdout.take().unwrap();
        let lines = Arc::clone(&stdout);
        // Reads stdout for as long as hostalb runs, so that it never writes to a closed pipe.
        tokio::spawn(async move {
            let mut out = BufReader::new(out).lines();
            while let Ok(Some(line)) = out.next_line().await {
                let is_ready = line == "ready";
                lines.lock().unwrap().push(line);
                if is_ready {
                    let _ = ready_tx.send(true);
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let text = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                text.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let waited = tokio::time::timeout(scaled(Duration::from_secs(15)), ready.wait_for(|r| *r)).await;
        let lines = stdout.lock().unwrap().clone();
        let find = |prefix: &str| -> Option<SocketAddr> {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|a| a.trim().parse().ok())
        };
        let (admin, web) = (find("listening admin "), find("listening listener web "));
        match (waited, admin, web) {
            (Ok(Ok(_)), Some(admin), Some(web)) => LabelModeAlb {
                child,
                web,
                admin,
                stdout,
                stderr,
            },
            _ => {
                let _ = child.kill().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "hostalb run {args:?}: no `ready` with both addresses\nstdout: {lines:?}\nstderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        }
    }

    /// Label mode on free ports, `grace` seconds of label-group grace.
    async fn labels(grace: &str) -> LabelModeAlb {
        LabelModeAlb::start(
            &[
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--label-group-grace",
                grace,
            ],
            &[],
        )
        .await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id().map_or(0, |p| p as i32)
    }

    /// `GET` on the admin API, as JSON.
    pub(crate) async fn admin_json(&self, path: &str) -> Value {
        let r = Client::new()
            .get(&self.admin_url(path))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
            .unwrap_or_else(|| panic!("GET {path}: not JSON: {}", r.text()))
    }
}

impl Drop for LabelModeAlb {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("hostalb (no --config) stderr:\n{}", self.stderr_text());
        }
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

/// Removes a container, off the async workers.
async fn remove(c: &Arc<TestContainer>) {
    let c = Arc::clone(c);
    tokio::task::spawn_blocking(move || c.rm()).await.unwrap();
}

/// The test image answering with `name`, published on port 80.
fn backend(name: &str) -> ContainerSpec {
    ContainerSpec::new(name).env("BACKEND_NAME", name).publish(80)
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(5)).build()
}

/// Waits until `GET path` (with `host`) is answered 200 by the container `name`.
async fn wait_served(alb: &LabelModeAlb, path: &str, host: Option<&str>, name: &str) {
    let client = client();
    let mut last = String::new();
    let done = try_eventually(ROUTABLE, async || {
        let headers: Vec<(&str, &str)> = host.map(|h| vec![("Host", h)]).unwrap_or_default();
        match client.request("GET", &alb.url(path), &headers, "").await {
            Ok(r) => {
                let by = r.container_reply().map(|c| c.backend);
                last = format!("{} from {by:?}", r.status);
                r.status == 200 && by.as_deref() == Some(name)
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "GET {path} (host {host:?}) should reach {name}; last: {last}\nstderr:\n{}",
        alb.stderr_text()
    );
}

/// Waits until `holds` is true of `GET /api/discovery`; returns that report.
async fn wait_discovery(alb: &LabelModeAlb, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let done = try_eventually(ROUTABLE, async || {
        last = alb.admin_json("/api/discovery").await;
        holds(&last)
    })
    .await;
    assert!(done.is_ok(), "/api/discovery: {what}; now: {last:#}");
    last
}

/// The `LabelProblems` entries of container `name` about target group `group` (every
/// test container also carries the test harness's own `hostalb.test*` labels, reported
/// as unknown without a group).
fn problems_of<'a>(report: &'a Value, name: &str, group: &str) -> Vec<&'a Value> {
    report["LabelProblems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["ContainerName"] == name && p["TargetGroup"] == group)
                .collect()
        })
        .unwrap_or_default()
}

/// The `LabelProblems` entries of container `name` about `label`.
fn problem_with<'a>(report: &'a Value, name: &str, label: &str) -> Option<&'a Value> {
    report["LabelProblems"]
        .as_array()?
        .iter()
        .find(|p| p["ContainerName"] == name && p["Label"] == label)
}

/// The `LabelGroups` entry of `group`.
fn label_group<'a>(report: &'a Value, group: &str) -> Option<&'a Value> {
    report["LabelGroups"]
        .as_array()
        .and_then(|a| a.iter().find(|g| g["TargetGroup"] == group))
}

/// The DescribeTargetGroups entry of `group`.
async fn target_group(alb: &LabelModeAlb, group: &str) -> Option<Value> {
    let all = alb.admin_json("/api/target-groups").await;
    all["TargetGroups"]
        .as_array()
        .and_then(|a| a.iter().find(|g| g["TargetGroupName"] == group).cloned())
}

/// The `Key` attribute of a DescribeTargetGroups entry.
fn attribute<'a>(group: &'a Value, key: &str) -> Option<&'a str> {
    group["Attributes"].as_array()?.iter().find(|a| a["Key"] == key)?["Value"].as_str()
}

/// The DescribeTargetHealth states of `group`.
async fn states(alb: &LabelModeAlb, group: &str) -> Vec<(String, Option<String>)> {
    let Ok(r) = Client::new()
        .get(&alb.admin_url(&format!("/api/target-health?target_group={group}")))
        .await
    else {
        return Vec::new();
    };
    let th = r.json().unwrap_or_default();
    th["TargetHealthDescriptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["TargetHealth"]["State"].as_str().unwrap_or("?").to_owned(),
                        d["TargetHealth"]["Reason"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_clash_keeps_both_services_routed_and_is_reported_on_the_younger_container() {
    require_docker();
    let alb = LabelModeAlb::labels("60").await;
    let case = unique("clash");
    let (ga, gb) = (unique("ga"), unique("gb"));
    let priority = unique_priority().to_string();
    // `-a` sorts before `-b`: it is the older even when both are created in one second.
    let a_name = format!("{case}-a");
    let b_name = format!("{case}-b");
    let a = run_one(
        backend(&a_name)
            .label("hostalb.target-group", &ga)
            .label("hostalb.path-pattern", format!("/{ga}/*"))
            .label("hostalb.priority", &priority),
    )
    .await;
    wait_served(&alb, &format!("/{ga}/x"), None, &a_name).await;
    let b = run_one(
        backend(&b_name)
            .label("hostalb.target-group", &gb)
            .label("hostalb.path-pattern", format!("/{gb}/*"))
            .label("hostalb.priority", &priority),
    )
    .await;
    // Both keep a route: the older at its priority, the younger just after.
    wait_served(&alb, &format!("/{gb}/x"), None, &b_name).await;
    wait_served(&alb, &format!("/{ga}/x"), None, &a_name).await;

    let report = wait_discovery(&alb, "the clash reported on the younger container", |r| {
        !problems_of(r, b.name(), &gb).is_empty()
    })
    .await;
    let mine = problems_of(&report, b.name(), &gb);
    assert_eq!(mine.len(), 1, "{report:#}");
    let p = mine[0];
    let p_num: u32 = priority.parse().unwrap();
    assert_eq!(p["Label"], "hostalb.priority", "{p:#}");
    assert_eq!(p["Value"], priority.as_str(), "{p:#}");
    assert_eq!(p["TargetGroup"], gb.as_str(), "{p:#}");
    assert_eq!(p["Severity"], "warning", "{p:#}");
    assert_eq!(p["AlbLimit"], false, "{p:#}");
    let problem = p["Problem"].as_str().unwrap();
    assert!(
        problem.contains(&format!("priority {priority} is taken")) && problem.contains(&ga),
        "{p:#}"
    );
    assert!(
        p["Effect"]
            .as_str()
            .unwrap()
            .contains(&format!("priority {}", p_num + 1)),
        "{p:#}"
    );
    assert!(p["Fix"].as_str().unwrap().contains("hostalb.priority"), "{p:#}");
    assert!(problems_of(&report, a.name(), &ga).is_empty(), "{report:#}");
    assert_eq!(
        label_group(&report, &ga).unwrap()["Priority"],
        p_num,
        "{report:#}"
    );
    assert_eq!(
        label_group(&report, &gb).unwrap()["Priority"],
        p_num + 1,
        "{report:#}"
    );

    assert!(target_group(&alb, &ga).await.is_some());
    assert!(target_group(&alb, &gb).await.is_some());
    let stderr = alb.stderr_text();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("container label") && l.contains(&format!("priority {priority} is taken")))
        .collect();
    assert_eq!(lines.len(), 1, "one warning line for the clash:\n{stderr}");
    assert!(
        lines[0].contains("WARN") && !lines[0].contains("ALB limit"),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_one_group_with_different_labels_follow_the_oldest() {
    require_docker();
    let alb = LabelModeAlb::labels("60").await;
    let case = unique("merge");
    let group = unique("mg");
    let old_name = format!("{case}-a");
    let new_name = format!("{case}-b");
    let old = run_one(
        backend(&old_name)
            .label("hostalb.target-group", &group)
            .label("hostalb.path-pattern", format!("/{group}-one/*"))
            .label(format!("hostalb.{group}.health-check.path"), "/health"),
    )
    .await;
    wait_served(&alb, &format!("/{group}-one/x"), None, &old_name).await;
    let new = run_one(
        backend(&new_name)
            .label("hostalb.target-group", &group)
            .label("hostalb.path-pattern", format!("/{group}-two/*")),
    )
    .await;
    // The younger container serves, under the oldest's rule.
    wait_served(&alb, &format!("/{group}-one/x"), None, &new_name).await;
    let miss = client().get(&alb.url(&format!("/{group}-two/x"))).await.unwrap();
    assert_eq!(miss.status, 404, "the younger container's path is not a rule");

    let report = wait_discovery(&alb, "the younger container's differences", |r| {
        problems_of(r, new.name(), &group).len() >= 2
    })
    .await;
    let mine = problems_of(&report, new.name(), &group);
    assert!(problems_of(&report, old.name(), &group).is_empty(), "{report:#}");
    let labels: Vec<&str> = mine.iter().filter_map(|p| p["Label"].as_str()).collect();
    assert_eq!(
        labels,
        vec![
            format!("hostalb.{group}.health-check.path").as_str(),
            "hostalb.path-pattern"
        ],
        "{report:#}"
    );
    let path = mine[1];
    assert_eq!(path["Severity"], "error", "{path:#}");
    assert!(
        path["Effect"]
            .as_str()
            .unwrap()
            .contains(&format!("follows the labels of container {}", old.name())),
        "{path:#}"
    );
    assert!(
        path["Fix"].as_str().unwrap().contains("same hostalb labels"),
        "{path:#}"
    );
    let hc = mine[0];
    assert_eq!(hc["Value"], Value::Null, "not set on the younger: {hc:#}");
    assert_eq!(hc["Severity"], "warning", "{hc:#}");
    let g = label_group(&report, &group).unwrap();
    assert_eq!(g["DefinedBy"], old.name(), "{g:#}");
    assert_eq!(g["Containers"].as_array().unwrap().len(), 2, "{g:#}");
    let tg = target_group(&alb, &group).await.unwrap();
    assert_eq!(tg["HealthCheckPath"], "/health", "{tg:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_group_answers_503_for_its_grace_then_goes() {
    require_docker();
    const GRACE_SECONDS: f64 = 3.0;
    let alb = LabelModeAlb::labels(&GRACE_SECONDS.to_string()).await;
    let case = unique("typo");
    let group = unique("tpo");
    let name = format!("{case}-a");
    let c = run_one(
        backend(&name)
            .label("hostalb.target-group", &group)
            .label("hostalb.path-pattern", format!("/{group}/*")),
    )
    .await;
    let url = alb.url(&format!("/{group}/x"));
    wait_served(&alb, &format!("/{group}/x"), None, &name).await;
    remove(&c).await;

    // No container left: the rule stays and answers ALB's 503 for a group without targets.
    let client = client();
    let mut last = 0;
    let answered_503 = try_eventually(Duration::from_secs(10), async || {
        last = client.get(&url).await.map_or(0, |r| r.status);
        last == 503
    })
    .await;
    assert!(
        answered_503.is_ok(),
        "the rule of a group without containers answers 503 during its grace; last {last}\n{}",
        alb.stderr_text()
    );
    let report = alb.admin_json("/api/discovery").await;
    let g = label_group(&report, &group).unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(g["Containers"], serde_json::json!([]), "{g:#}");
    let left = g["RemovedInSeconds"].as_f64().unwrap_or_else(|| panic!("{g:#}"));
    assert!(left > 0.0 && left <= GRACE_SECONDS, "{g:#}");
    assert!(
        target_group(&alb, &group).await.is_some(),
        "listed during its grace"
    );

    // Then it goes: the listener's default action answers, and the group is gone.
    let gone = try_eventually(Duration::from_secs(15), async || {
        last = client.get(&url).await.map_or(0, |r| r.status);
        last == 404
    })
    .await;
    assert!(gone.is_ok(), "after the grace the rule is gone; last {last}");
    assert!(target_group(&alb, &group).await.is_none());
    let report = alb.admin_json("/api/discovery").await;
    assert!(label_group(&report, &group).is_none(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_and_deregistration_labels_change_probing_and_draining() {
    require_docker();
    let alb = LabelModeAlb::labels("60").await;
    let case = unique("hc");
    let (strict, lenient) = (unique("hcs"), unique("hcl"));
    let name = format!("{case}-a");
    // `/health` answers 503: the strict group probes it and expects 200; the lenient one
    // probes it and accepts 503. Both check fast and drain for one second.
    let mut spec = backend(&name).env("HEALTH_STATUS", "503");
    for (group, matcher) in [(&strict, "200"), (&lenient, "200,503")] {
        for (attr, value) in [
            ("container-port", "80"),
            ("path-pattern", &format!("/{group}/*") as &str),
            ("health-check.path", "/health"),
            ("health-check.interval-seconds", "1"),
            ("health-check.timeout-seconds", "0.5"),
            ("health-check.healthy-threshold", "2"),
            ("health-check.unhealthy-threshold", "2"),
            ("health-check.matcher", matcher),
            ("deregistration-delay-seconds", "1"),
        ] {
            spec = spec.label(format!("hostalb.{group}.{attr}"), value);
        }
    }
    let c = run_one(spec).await;

    let mut last = (Vec::new(), Vec::new());
    let probed = try_eventually(ROUTABLE, async || {
        last = (states(&alb, &strict).await, states(&alb, &lenient).await);
        last.0
            == [(
                "unhealthy".to_owned(),
                Some("Target.ResponseCodeMismatch".to_owned()),
            )]
            && last.1 == [("healthy".to_owned(), None)]
    })
    .await;
    assert!(
        probed.is_ok(),
        "strict: unhealthy on /health's 503, lenient: healthy; now {last:?}\n{}",
        alb.stderr_text()
    );
    let tg = target_group(&alb, &strict).await.unwrap();
    assert_eq!(tg["HealthCheckPath"], "/health", "{tg:#}");
    assert_eq!(tg["HealthCheckIntervalSeconds"], 1, "{tg:#}");
    assert_eq!(tg["HealthCheckTimeoutSeconds"], 0.5, "{tg:#}");
    assert_eq!(tg["HealthyThresholdCount"], 2, "{tg:#}");
    assert_eq!(tg["UnhealthyThresholdCount"], 2, "{tg:#}");
    assert_eq!(tg["Matcher"]["HttpCode"], "200", "{tg:#}");
    assert_eq!(
        attribute(&tg, "deregistration_delay.timeout_seconds"),
        Some("1"),
        "{tg:#}"
    );
    // Fast checks are below ALB's 5 s minimum: used, and reported as an ALB limit.
    let report = alb.admin_json("/api/discovery").await;
    let interval = problem_with(
        &report,
        c.name(),
        &format!("hostalb.{strict}.health-check.interval-seconds"),
    )
    .unwrap_or_else(|| panic!("{report:#}"))
    .clone();
    assert_eq!(interval["AlbLimit"], true, "{interval:#}");
    assert_eq!(interval["Severity"], "warning", "{interval:#}");

    // Gone: it drains for the labelled second, not ALB's default 300.
    remove(&c).await;
    let drained = try_eventually(Duration::from_secs(10), async || {
        last.1 = states(&alb, &lenient).await;
        last.1.is_empty()
    })
    .await;
    assert!(
        drained.is_ok(),
        "the target leaves after 1 s of draining; now {:?}",
        last.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_container_serves_two_groups_on_two_ports() {
    require_docker();
    let alb = LabelModeAlb::labels("60").await;
    let case = unique("two");
    let (api, admin) = (unique("twa"), unique("twb"));
    let host = format!("{}.localhost", unique("adm"));
    let name = format!("{case}-a");
    let c = run_one(
        backend(&name)
            .env("EXTRA_PORTS", "8081")
            .publish(8081)
            .label(format!("hostalb.{api}.container-port"), "80")
            .label(format!("hostalb.{api}.path-pattern"), format!("/{api}/*"))
            .label(format!("hostalb.{admin}.container-port"), "8081")
            .label(format!("hostalb.{admin}.host-header"), &host),
    )
    .await;
    wait_served(&alb, &format!("/{api}/x"), None, &name).await;
    wait_served(&alb, "/", Some(&host), &name).await;
    let client = client();
    let a = client.get(&alb.url(&format!("/{api}/x"))).await.unwrap();
    assert_eq!(a.container_reply().unwrap().port, 80);
    let b = client
        .request("GET", &alb.url("/"), &[("Host", host.as_str())], "")
        .await
        .unwrap();
    assert_eq!(b.container_reply().unwrap().port, 8081);
    let rows_api = alb
        .admin_json(&format!("/api/target-health?target_group={api}"))
        .await;
    let rows_admin = alb
        .admin_json(&format!("/api/target-health?target_group={admin}"))
        .await;
    assert_eq!(
        rows_api["TargetHealthDescriptions"][0]["Target"]["Port"],
        c.host_port(80)
    );
    assert_eq!(
        rows_admin["TargetHealthDescriptions"][0]["Target"]["Port"],
        c.host_port(8081)
    );
    let report = alb.admin_json("/api/discovery").await;
    assert!(problems_of(&report, c.name(), &api).is_empty(), "{report:#}");
    assert!(problems_of(&report, c.name(), &admin).is_empty(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_label_is_reported_with_its_fix_and_the_rest_serves() {
    require_docker();
    let alb = LabelModeAlb::labels("60").await;
    let case = unique("bad");
    let group = unique("bg");
    let name = format!("{case}-a");
    let c = run_one(
        backend(&name)
            .label(format!("hostalb.{group}.path-pattern"), format!("/{group}/*"))
            .label(format!("hostalb.{group}.health-check.path"), "/health")
            .label(format!("hostalb.{group}.health-check.interval-seconds"), "ten")
            .label(format!("hostalb.{group}.health_check.timeout-seconds"), "2"),
    )
    .await;
    wait_served(&alb, &format!("/{group}/x"), None, &name).await;
    let interval_label = format!("hostalb.{group}.health-check.interval-seconds");
    let typo_label = format!("hostalb.{group}.health_check.timeout-seconds");
    let report = wait_discovery(&alb, "both bad labels reported", |r| {
        problem_with(r, c.name(), &interval_label).is_some()
            && problem_with(r, c.name(), &typo_label).is_some()
    })
    .await;
    let interval = problem_with(&report, c.name(), &interval_label).unwrap();
    assert_eq!(interval["Value"], "ten");
    assert_eq!(interval["Severity"], "error");
    assert!(
        interval["Problem"]
            .as_str()
            .unwrap()
            .contains("expected a number of seconds"),
        "the validator's message: {interval:#}"
    );
    assert_eq!(interval["Effect"], "ignored: the default (30) applies");
    let typo = problem_with(&report, c.name(), &typo_label).unwrap();
    assert!(
        typo["Fix"].as_str().unwrap().contains(&format!(
            "did you mean hostalb.{group}.health-check.timeout-seconds?"
        )),
        "{typo:#}"
    );
    let tg = target_group(&alb, &group).await.unwrap();
    assert_eq!(tg["HealthCheckPath"], "/health", "the valid labels apply: {tg:#}");
    assert_eq!(tg["HealthCheckIntervalSeconds"], 30, "{tg:#}");
}
