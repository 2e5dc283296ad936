//! Reloads (SIGHUP, the file watcher, POST /api/reload), invalid reloads, listeners added
//! and removed by a reload, and shutdown (SIGTERM drains, a second SIGTERM or SIGINT exits
//! at once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, Client, Conn, HostAlb, HttpResponse, LoadGen, eventually, try_eventually};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::admin::{metric, metric_sum};
use crate::common::start;

/// A configuration with one listener `web` whose rule for `/x/*` forwards to `group`
/// (`a` or `b`, one backend each). `rules` are added to `web`, `listeners` after it.
fn config(group: &str, a: &Backend, b: &Backend, rules: &str, listeners: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
idle_timeout_seconds = 10
default_action = {{ type = "fixed-response", status_code = 404, message_body = "no rule" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/x/*"] }}]
action = {{ type = "forward", target_group = "{group}" }}
{rules}

[target_group.a]
targets = ["{a}"]
health_check = {{ enabled = false }}

[target_group.b]
targets = ["{b}"]
health_check = {{ enabled = false }}
{listeners}
"#,
        a = a.addr(),
        b = b.addr(),
    )
}

async fn backends() -> (Backend, Backend) {
    (Backend::start("a").await, Backend::start("b").await)
}

/// Which backend answers `GET path` on listener `web` (panics on a failed request).
async fn routed_to(client: &Client, alb: &HostAlb, path: &str) -> String {
    let resp = client.get(&alb.url("web", path)).await.unwrap();
    assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
    resp.backend().unwrap_or("(none)").to_owned()
}

/// Waits until `GET path` on `web` is answered by `backend`.
async fn wait_routed(client: &Client, alb: &HostAlb, path: &str, backend: &str) {
    let mut last = String::new();
    let done = try_eventually(Duration::from_secs(5), async || {
        last = routed_to(client, alb, path).await;
        last == backend
    })
    .await;
    assert!(
        done.is_ok(),
        "{path} should be routed to {backend}, still {last}; stderr:\n{}",
        alb.stderr_text()
    );
}

/// Waits until hostalb's signal handlers and file watcher are running. hostalb installs
/// them just after it prints `ready` (a bug, see `ready_means_signals_are_handled`);
/// tests about other things must not depend on that race. Rewrites the file unchanged,
/// a bounded number of times, until the watcher reloads it (the handlers are installed
/// before the watcher).
async fn supervised(alb: &HostAlb) {
    let text = std::fs::read_to_string(alb.config_path()).unwrap();
    let before = metric(alb, "hostalb_reloads_total").await;
    for _ in 0..10 {
        write(alb.config_path(), &text);
        let reloaded = try_eventually(Duration::from_millis(500), async || {
            metric(alb, "hostalb_reloads_total").await > before
        })
        .await;
        if reloaded.is_ok() {
            return;
        }
    }
    panic!(
        "rewriting the configuration file never made hostalb reload it; stderr:\n{}",
        alb.stderr_text()
    );
}

/// Makes the file hostalb reads a symlink to a file in a directory hostalb does not
/// watch, so that edits to that file reach hostalb only through SIGHUP or
/// POST /api/reload. Replacing the file by rename is itself a change the watcher reloads
/// on; this waits for that reload. Returns the directory (keep it alive) and the file.
async fn detach(alb: &HostAlb) -> (tempfile::TempDir, PathBuf) {
    supervised(alb).await;
    let before = metric(alb, "hostalb_reloads_total").await;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    std::fs::copy(alb.config_path(), &real).unwrap();
    let link = alb.dir().join("link.tmp");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::fs::rename(&link, alb.config_path()).unwrap();
    let mut now = before;
    let reloaded = try_eventually(Duration::from_secs(5), async || {
        now = metric(alb, "hostalb_reloads_total").await;
        now > before
    })
    .await;
    assert!(
        reloaded.is_ok(),
        "replacing the configuration file by rename should reload it (reloads {before} -> {now}); stderr:\n{}",
        alb.stderr_text()
    );
    (dir, real)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// POST /api/reload, expecting success; returns the new generation.
async fn reload_ok(alb: &HostAlb) -> u64 {
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "POST /api/reload: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["Reloaded"], true, "{body}");
    v["Generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("Generation: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_and_changes_routing() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");

    let (_dir, real) = detach(&alb).await;
    write(&real, &config("b", &a, &b, "", ""));
    assert_eq!(
        routed_to(&client, &alb, "/x/2").await,
        "a",
        "nothing reloads before the signal"
    );
    assert!(alb.reload_sighup());
    wait_routed(&client, &alb, "/x/3", "b").await;
    assert!(
        alb.stderr_text().contains("SIGHUP"),
        "the reload is logged:\n{}",
        alb.stderr_text()
    );
    let unmatched = client.get(&alb.url("web", "/other")).await.unwrap();
    assert_eq!(
        unmatched.status, 404,
        "unmatched requests still get the default action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_file_reloads_it() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");
    supervised(&alb).await;
    let before = metric(&alb, "hostalb_reloads_total").await;

    alb.write_config(&config("b", &a, &b, "", ""));
    wait_routed(&client, &alb, "/x/2", "b").await;
    assert!(
        metric(&alb, "hostalb_reloads_total").await > before,
        "the reload is counted"
    );
    assert_eq!(metric(&alb, "hostalb_reload_failures_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_means_signals_are_handled() {
    // `ready` tells scripts and supervisors that hostalb serves; a SIGHUP right after it
    // must reload, not kill hostalb (SIGHUP's default action). The race is short, so it
    // is tried a few times.
    let (a, b) = backends().await;
    for attempt in 0..8 {
        let alb = start(&config("a", &a, &b, "", "")).await;
        assert!(alb.reload_sighup());
        let mut exited = None;
        let reloaded = try_eventually(Duration::from_secs(3), async || {
            exited = alb.wait_exit(Duration::ZERO).await;
            if exited.is_some() {
                return false;
            }
            match Client::new().get(&alb.admin_url("/metrics")).await {
                Ok(r) => metric_sum(&r.text(), "hostalb_reloads_total", &[]).is_some_and(|n| n >= 1.0),
                Err(_) => false,
            }
        })
        .await;
        assert!(
            reloaded.is_ok(),
            "attempt {attempt}: SIGHUP sent right after `ready` should reload; hostalb exited: {exited:?}\n{}",
            alb.stderr_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_means_file_changes_are_noticed() {
    // `ready` promises that a change of the file reloads it: an edit made right after it
    // must not go unnoticed. The race is short, so it is tried a few times.
    let (a, b) = backends().await;
    let client = Client::new();
    for attempt in 0..4 {
        let alb = start(&config("a", &a, &b, "", "")).await;
        alb.write_config(&config("b", &a, &b, "", ""));
        let mut last = String::new();
        let reloaded = try_eventually(Duration::from_secs(3), async || {
            last = routed_to(&client, &alb, "/x/1").await;
            last == "b"
        })
        .await;
        assert!(
            reloaded.is_ok(),
            "attempt {attempt}: an edit of the file right after `ready` should be reloaded; still routed to {last}\n{}",
            alb.stderr_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_file_by_rename_reloads_it() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");
    supervised(&alb).await;

    // What editors and configuration managers do: write a new file, rename it over.
    let fresh = alb.dir().join("hostalb.toml.new");
    write(&fresh, &config("b", &a, &b, "", ""));
    std::fs::rename(&fresh, alb.config_path()).unwrap();
    wait_routed(&client, &alb, "/x/2", "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_applies_the_file_before_answering() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");

    let (_dir, real) = detach(&alb).await;
    let (_, rules) = alb.admin_get("/api/rules?listener=web").await;
    let before: Value = serde_json::from_str(&rules).unwrap();
    // A reload of the unchanged file: a new generation, same routing.
    let generation = reload_ok(&alb).await;
    assert_eq!(routed_to(&client, &alb, "/x/0").await, "a");

    write(&real, &config("b", &a, &b, "", ""));
    let next = reload_ok(&alb).await;
    assert!(
        next > generation,
        "each reload is a new generation: {generation} -> {next}"
    );
    // The answer comes once the new configuration serves: no waiting needed.
    for i in 0..3 {
        assert_eq!(routed_to(&client, &alb, &format!("/x/{i}")).await, "b");
    }
    let (_, rules) = alb.admin_get("/api/rules?listener=web").await;
    let after: Value = serde_json::from_str(&rules).unwrap();
    let arn = |v: &Value| v["Rules"][0]["Actions"][0]["TargetGroupArn"].clone();
    assert_ne!(arn(&before), arn(&after), "the rule now names group b");
    assert!(
        arn(&after).as_str().is_some_and(|s| s.contains("targetgroup/b/")),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_steady_load_lose_no_request() {
    let (a, b) = backends().await;
    let other = |i: usize| {
        format!(
            r#"
[[listener.rule]]
priority = {p}
conditions = [{{ field = "path-pattern", values = ["/other-{i}/*"] }}]
action = {{ type = "forward", target_group = "b" }}
"#,
            p = 100 + i
        )
    };
    let alb = start(&config("a", &a, &b, &other(0), "")).await;
    let (_dir, real) = detach(&alb).await;
    let reloads_before = metric(&alb, "hostalb_reloads_total").await;

    let load = LoadGen::builder(alb.url("web", "/x/steady"))
        .concurrency(4)
        .max_duration(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(5))
        .start();
    eventually(Duration::from_secs(5), async || load.done() >= 20).await;
    for i in 1..=20 {
        write(&real, &config("a", &a, &b, &other(i), ""));
        reload_ok(&alb).await;
        // Let some requests run on each configuration.
        let seen = load.done();
        eventually(Duration::from_secs(5), async || load.done() >= seen + 4).await;
    }
    let report = load.stop().await;
    assert!(
        report.total > 0 && report.ok == report.total && report.error_count == 0,
        "20 reloads of unrelated rules under load: {} requests, {} 2xx, non-2xx {:?}, {} connection errors {:?}",
        report.total,
        report.ok,
        report.non_2xx,
        report.error_count,
        report.errors.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        report.backends,
        [("a".to_owned(), report.total)],
        "every request went to a"
    );
    let reloads = metric(&alb, "hostalb_reloads_total").await - reloads_before;
    assert!(reloads >= 20.0, "20 reloads counted, got {reloads}");
    assert_eq!(b.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_survive_a_reload_and_follow_the_new_rules() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let (_dir, real) = detach(&alb).await;

    let mut conn = Conn::connect(alb.listener("web")).await.unwrap();
    let local = conn.local_addr();
    let first = conn.get("/x/1").await.unwrap();
    assert_eq!((first.status, first.backend()), (200, Some("a")));

    write(&real, &config("b", &a, &b, "", ""));
    reload_ok(&alb).await;

    assert!(!conn.is_closed(), "the reload left the client connection open");
    let second = conn.get("/x/2").await.unwrap();
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.backend(),
        Some("b"),
        "the next request on the same connection uses the new rules"
    );
    assert_eq!(conn.local_addr(), local);
    let third = conn.get("/x/3").await.unwrap();
    assert_eq!((third.status, third.backend()), (200, Some("b")));
    assert_eq!(
        metric(&alb, "hostalb_new_connections_total").await,
        1.0,
        "all three requests came over one client connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_listeners() {
    let (a, b) = backends().await;
    let extra = r#"
[[listener]]
name = "extra"
address = "127.0.0.1:0"
default_action = { type = "forward", target_group = "b" }
"#;
    let alb = start(&config("a", &a, &b, "", "")).await;
    assert!(alb.try_listener("extra").is_none());
    let (_dir, real) = detach(&alb).await;

    write(&real, &config("a", &a, &b, "", extra));
    reload_ok(&alb).await;
    let addr = alb
        .wait_listener("extra", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no `listening listener extra` line: {:?}", alb.stdout_lines()));
    assert!(
        alb.stdout_lines()
            .iter()
            .any(|l| *l == format!("listening listener extra {addr}")),
        "{:?}",
        alb.stdout_lines()
    );
    let client = Client::new();
    let resp = client.get(&format!("http://{addr}/y")).await.unwrap();
    assert_eq!((resp.status, resp.backend()), (200, Some("b")), "{resp:?}");
    // The listener that was already there is untouched.
    let web = alb.listener("web");
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");

    write(&real, &config("a", &a, &b, "", ""));
    reload_ok(&alb).await;
    let mut last = String::new();
    let refused = try_eventually(Duration::from_secs(5), async || {
        match TcpStream::connect(addr).await {
            Ok(_) => {
                last = "accepted".into();
                false
            }
            Err(e) => {
                last = e.to_string();
                e.kind() == std::io::ErrorKind::ConnectionRefused
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the removed listener {addr} should refuse connections: {last}"
    );
    assert_eq!(alb.listener("web"), web);
    assert_eq!(routed_to(&client, &alb, "/x/2").await, "a");
}

/// The problems of a 400 answer to POST /api/reload, as (Severity, Path, Message, Fix).
fn reload_problems(body: &str) -> Vec<(String, String, String, String)> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["Reloaded"], false, "{body}");
    v["Problems"]
        .as_array()
        .unwrap_or_else(|| panic!("Problems array: {body}"))
        .iter()
        .map(|p| {
            let s = |k: &str| {
                p[k].as_str()
                    .unwrap_or_else(|| panic!("{k} string in {p}"))
                    .to_owned()
            };
            (s("Severity"), s("Path"), s("Message"), s("Fix"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reloads_are_rejected_and_the_old_configuration_keeps_serving() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let (_dir, real) = detach(&alb).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/0").await, "a");

    let duplicate = r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/dup/*"] }]
action = { type = "forward", target_group = "b" }
"#;
    // (what, file, the Path of every problem, what stderr must show)
    let both = [
        "listener[0].rule[0].action.target_group",
        "listener[0].rule[1].priority",
    ];
    let cases: [(&str, String, &[&str], &[&str]); 3] = [
        (
            "syntax error",
            config("b", &a, &b, "", "").replace("[[listener.rule]]", "[[listener.rule]"),
            &["(syntax)"],
            &["TOML parse error at line 11"],
        ),
        (
            "duplicate priority",
            config("b", &a, &b, duplicate, ""),
            &both[1..],
            &both[1..],
        ),
        (
            "unknown target group",
            config("c", &a, &b, "", ""),
            &both[..1],
            &both[..1],
        ),
    ];
    for (i, (what, text, paths, logged)) in cases.iter().enumerate() {
        write(&real, text);
        let (status, body) = alb.reload_api().await;
        assert_eq!(status, 400, "{what}: {body}");
        let problems = reload_problems(&body);
        for path in *paths {
            let p = problems
                .iter()
                .find(|p| p.1 == *path)
                .unwrap_or_else(|| panic!("{what}: no problem at {path}: {body}"));
            assert_eq!(p.0, "Error", "{what}: {body}");
            assert!(
                !p.2.is_empty() && !p.3.is_empty(),
                "{what}: Message and Fix: {body}"
            );
        }
        assert_eq!(
            problems.len(),
            paths.len(),
            "{what}: every problem, no other: {body}"
        );
        if *what == "syntax error" {
            assert!(problems[0].2.contains("line 11"), "the position is given: {body}");
        }
        // The running configuration keeps serving.
        assert_eq!(routed_to(&client, &alb, &format!("/x/{i}")).await, "a", "{what}");
        assert_eq!(
            metric(&alb, "hostalb_reload_failures_total").await,
            (i + 1) as f64,
            "{what}: the failure is counted"
        );
        for needle in *logged {
            let found = alb.wait_stderr(needle, Duration::from_secs(2)).await;
            assert!(found, "{what}: stderr logs {needle}:\n{}", alb.stderr_text());
        }
    }
    let (_, rules) = alb.admin_get("/api/rules?listener=web").await;
    assert!(
        rules.contains("targetgroup/a/"),
        "the old rules are still described: {rules}"
    );

    // SIGHUP with an invalid file: logged, counted, and nothing changes either.
    write(&real, &config("c", &a, &b, "", ""));
    assert!(alb.reload_sighup());
    eventually(Duration::from_secs(5), async || {
        metric(&alb, "hostalb_reload_failures_total").await == 4.0
    })
    .await;
    assert_eq!(routed_to(&client, &alb, "/x/9").await, "a");

    // A valid file is accepted again afterwards.
    write(&real, &config("b", &a, &b, "", ""));
    reload_ok(&alb).await;
    assert_eq!(routed_to(&client, &alb, "/x/10").await, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_reload_lists_every_problem_at_once() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let (_dir, real) = detach(&alb).await;
    // Rule 0 forwards to a group that does not exist; rule 1 repeats rule 0's priority.
    let duplicate = r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/dup/*"] }]
action = { type = "forward", target_group = "b" }
"#;
    write(&real, &config("c", &a, &b, duplicate, ""));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 400, "{body}");
    let paths: Vec<String> = reload_problems(&body).into_iter().map(|p| p.1).collect();
    for path in [
        "listener[0].rule[0].action.target_group",
        "listener[0].rule[1].priority",
    ] {
        assert!(
            paths.iter().any(|p| p == path),
            "both problems are reported at once; {path} is missing from {paths:?}"
        );
    }
    assert_eq!(routed_to(&Client::new(), &alb, "/x/1").await, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_of_the_file_is_logged_and_ignored() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/0").await, "a");
    supervised(&alb).await;

    alb.write_config(&config("nope", &a, &b, "", ""));
    let logged = alb
        .wait_stderr("listener[0].rule[0].action.target_group", Duration::from_secs(5))
        .await;
    assert!(
        logged,
        "the problem is logged with its path:\n{}",
        alb.stderr_text()
    );
    eventually(Duration::from_secs(2), async || {
        metric(&alb, "hostalb_reload_failures_total").await >= 1.0
    })
    .await;
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");
}

async fn slow_request(addr: std::net::SocketAddr, path: &'static str) -> Result<HttpResponse, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    conn.set_timeout(Duration::from_secs(15));
    conn.get(path).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    supervised(&alb).await;
    let addr = alb.listener("web");

    let mut idle = Vec::new();
    for i in 0..2 {
        let mut conn = Conn::connect(addr).await.unwrap();
        let r = conn.get(&format!("/x/idle-{i}")).await.unwrap();
        assert_eq!(r.status, 200);
        idle.push(conn);
    }
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(slow_request(addr, "/x/delay/1500")))
        .collect();
    eventually(Duration::from_secs(5), async || a.in_flight() == 4).await;

    let sent = Instant::now();
    assert!(alb.sigterm());
    let mut last = String::new();
    let refused = try_eventually(Duration::from_secs(1), async || {
        match TcpStream::connect(addr).await {
            Ok(_) => false,
            Err(e) => {
                last = e.to_string();
                true
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "new connections should be refused soon after SIGTERM"
    );
    assert!(
        slow.iter().all(|t| !t.is_finished()),
        "connections were refused while requests were still in flight ({:?} after SIGTERM: {last})",
        sent.elapsed()
    );
    for (i, conn) in idle.iter_mut().enumerate() {
        assert!(
            conn.wait_closed(Duration::from_secs(2)).await,
            "idle keep-alive connection {i} should be closed by the drain"
        );
    }
    for (i, task) in slow.into_iter().enumerate() {
        let resp = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("in-flight request {i} was cut: {e}"));
        assert_eq!(resp.status, 200, "in-flight request {i}: {resp:?}");
        assert_eq!(resp.backend(), Some("a"));
        assert!(
            resp.header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close")),
            "in-flight request {i} is answered with Connection: close: {resp:?}"
        );
    }
    let status = alb.wait_exit(Duration::from_secs(5)).await;
    let status =
        status.unwrap_or_else(|| panic!("hostalb did not exit after draining:\n{}", alb.stderr_text()));
    assert!(
        status.success(),
        "a complete drain exits 0: {status}\n{}",
        alb.stderr_text()
    );
    assert_eq!(
        a.requests()
            .iter()
            .filter(|r| r.path().ends_with("/delay/1500"))
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nothing_in_flight_exits_0_promptly() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    supervised(&alb).await;
    let client = Client::new();
    assert_eq!(routed_to(&client, &alb, "/x/1").await, "a");
    drop(client);
    assert!(alb.sigterm());
    let status = alb.wait_exit(Duration::from_secs(5)).await;
    let status = status.unwrap_or_else(|| panic!("hostalb did not exit:\n{}", alb.stderr_text()));
    assert!(status.success(), "{status}\n{}", alb.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_a_long_drain_exits_at_once() {
    let (a, b) = backends().await;
    // The drain may last as long as the listener idle timeout (30 s here).
    let alb =
        start(&config("a", &a, &b, "", "").replace("idle_timeout_seconds = 10", "idle_timeout_seconds = 30"))
            .await;
    supervised(&alb).await;
    let addr = alb.listener("web");
    let slow = tokio::spawn(slow_request(addr, "/x/delay/5000"));
    eventually(Duration::from_secs(5), async || a.in_flight() == 1).await;

    assert!(alb.sigterm());
    assert!(
        alb.wait_stderr("draining", Duration::from_secs(2)).await,
        "the drain is logged:\n{}",
        alb.stderr_text()
    );
    assert!(
        alb.wait_exit(Duration::from_millis(200)).await.is_none(),
        "still draining"
    );
    let second = Instant::now();
    assert!(alb.sigterm());
    let status = alb.wait_exit(Duration::from_secs(2)).await;
    let status =
        status.unwrap_or_else(|| panic!("a second SIGTERM should exit at once:\n{}", alb.stderr_text()));
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "exited {:?} after the second SIGTERM, before the 5 s request could finish",
        second.elapsed()
    );
    assert!(
        !status.success(),
        "an interrupted drain does not report success: {status}"
    );
    let cut = slow.await.unwrap();
    assert!(
        cut.as_ref().map(|r| r.status != 200).unwrap_or(true),
        "the request in flight could not finish: {cut:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_at_once() {
    let (a, b) = backends().await;
    let alb = start(&config("a", &a, &b, "", "")).await;
    supervised(&alb).await;
    let addr = alb.listener("web");
    let slow = tokio::spawn(slow_request(addr, "/x/delay/5000"));
    eventually(Duration::from_secs(5), async || a.in_flight() == 1).await;

    assert!(alb.sigint());
    let status = alb.wait_exit(Duration::from_secs(2)).await;
    let status = status.unwrap_or_else(|| panic!("SIGINT should exit at once:\n{}", alb.stderr_text()));
    assert!(!status.success(), "{status}");
    let cut = slow.await.unwrap();
    assert!(
        cut.as_ref().map(|r| r.status != 200).unwrap_or(true),
        "the request in flight was not waited for: {cut:?}"
    );
}
