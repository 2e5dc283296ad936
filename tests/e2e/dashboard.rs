//! The live dashboard on the admin address (`GET /`): rendered by the server, so that a
//! client without script (curl) sees the numbers, the targets and their health; refreshed
//! by its script, which headless Chromium runs; the same view as JSON; and what needs
//! attention (an unhealthy target with its reason, a group without targets, a refused
//! reload, configuration warnings).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, Client, HostAlb, scaled, try_eventually};
use serde_json::Value;

use crate::common::start;

/// How long one headless Chromium run may take (start-up included) before it is killed.
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(90);

/// Virtual time Chromium gives the page: long enough for two of its 2 s refreshes.
const VIRTUAL_TIME_MS: u32 = 5_000;

/// `web` forwards `/api/*` to `app` (one live target, or more) and `/none/*` to `none`,
/// a group without targets; probes every 0.2 s.
fn config(app: &[SocketAddr]) -> String {
    let targets: Vec<String> = app.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 404 }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/api/*"] }}]
action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 20
conditions = [{{ field = "path-pattern", values = ["/none/*"] }}]
action = {{ type = "forward", target_group = "none" }}

[target_group.app]
targets = [{targets}]
health_check = {{ interval_seconds = 0.2, timeout_seconds = 0.1, healthy_threshold = 2, unhealthy_threshold = 2 }}

[target_group.none]
health_check = {{ enabled = false }}
"#,
        targets = targets.join(", ")
    )
}

/// Starts hostalb before `backend`, waits for it to be healthy, and sends 12 requests
/// through it: 10 answered 200, one 404 and one 503 by the target.
async fn with_traffic(backend: &Backend) -> HostAlb {
    let alb = start(&config(&[backend.addr()])).await;
    let health = "/api/target-health?target_group=app";
    let healthy = try_eventually(Duration::from_secs(10), async || {
        alb.admin_get(health).await.1.contains("\"healthy\"")
    })
    .await;
    assert!(healthy.is_ok(), "{}", alb.admin_get(health).await.1);
    let client = Client::new();
    for i in 0..10 {
        let r = client
            .get(&alb.url("web", &format!("/api/{i}")))
            .await
            .expect("get");
        assert_eq!(r.status, 200);
    }
    for code in [404, 503] {
        let r = client
            .get(&alb.url("web", &format!("/api/status/{code}")))
            .await
            .expect("get");
        assert_eq!(r.status, code);
    }
    alb
}

/// The table row of target `addr` in the page.
fn target_row(page: &str, addr: SocketAddr) -> &str {
    let start = page
        .find(&format!("<tr data-target=\"{addr}\""))
        .unwrap_or_else(|| panic!("no row for target {addr} in:\n{page}"));
    let row = &page[start..];
    &row[..row.find("</tr>").unwrap_or(row.len())]
}

/// The text of the element marked `data-field="field"` inside `html` (the first one).
fn field<'a>(html: &'a str, field: &str) -> &'a str {
    let marker = format!("data-field=\"{field}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in:\n{html}"));
    let after = &html[at..];
    let text = &after[after.find('>').map_or(0, |i| i + 1)..];
    &text[..text.find('<').unwrap_or(text.len())]
}

/// What the page must show after [`with_traffic`], with or without script.
fn assert_shows_traffic(page: &str, backend: &Backend) {
    assert_eq!(field(page, "lb-requests-total"), "12", "requests since start");
    assert_eq!(field(page, "lb-target-4xx-total"), "1");
    assert_eq!(field(page, "lb-target-5xx-total"), "1");
    assert!(
        page.contains("<div class=\"panel\" data-listener=\"web\">"),
        "listener web"
    );
    assert!(
        page.contains("<code class=\"cond\">path-pattern /api/*</code>"),
        "rule 10's condition"
    );
    assert!(page.contains("<tr data-rule=\"default\">"), "the default rule");
    assert!(page.contains("data-group=\"app\""), "group app");
    let row = target_row(page, backend.addr());
    assert_eq!(field(row, "state"), "healthy", "{row}");
    assert_eq!(field(row, "requests-total"), "12", "{row}");
    assert_eq!(field(row, "4xx-total"), "1", "{row}");
    assert_eq!(field(row, "5xx-total"), "1", "{row}");
    assert_ne!(field(row, "rps"), "0", "a rate over the last seconds: {row}");
    let p50 = field(row, "p50");
    assert!(
        p50.ends_with(" ms") || p50.ends_with(" s"),
        "a latency, not {p50:?}: {row}"
    );
    assert!(
        ["ago<", "(since start)", "just now"]
            .iter()
            .any(|s| row.contains(s)),
        "since when: {row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_traffic_targets_and_health_without_script() {
    let backend = Backend::start("app-1").await;
    let alb = with_traffic(&backend).await;
    let r = Client::new().get(&alb.admin_url("/")).await.expect("get /");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert_shows_traffic(&page, &backend);
    // Static targets have no container; Docker discovery is off here.
    assert!(target_row(&page, backend.addr()).contains(">static<"));
    assert!(
        page.contains("no target group selects Docker containers"),
        "{page}"
    );
    // The group nobody registered in: flagged, with ALB's consequence.
    assert!(
        page.contains("target group none: no registered target, requests get 503"),
        "{page}"
    );
    // The fragment the script fetches is the same view.
    let (status, fragment) = alb.admin_get("/dashboard/view").await;
    assert_eq!(status, 200);
    assert!(!fragment.contains("<html"), "a fragment: {fragment}");
    assert_shows_traffic(&fragment, &backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_json_is_the_same_view() {
    let backend = Backend::start("app-1").await;
    let alb = with_traffic(&backend).await;
    let (status, body) = alb.admin_get("/api/dashboard").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["LoadBalancer"]["RequestsTotal"], 12, "{v:#}");
    assert!(
        v["LoadBalancer"]["Name"]
            .as_str()
            .is_some_and(|n| n.starts_with("app/hostalb/"))
    );
    let app = v["TargetGroups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["Name"] == "app"))
        .expect("group app");
    assert!(
        app["Dimension"]
            .as_str()
            .is_some_and(|d| d.starts_with("targetgroup/app/"))
    );
    assert_eq!(app["Healthy"], 1);
    let t = &app["Targets"][0];
    assert_eq!(t["Address"], backend.addr().to_string());
    assert_eq!(t["State"], "healthy");
    assert_eq!(t["Traffic"]["RequestsTotal"], 12);
    assert_eq!(t["Traffic"]["Http4xxTotal"], 1);
    assert_eq!(t["Traffic"]["Http5xxTotal"], 1);
    assert_eq!(t["Traffic"]["ResponsesInWindow"], 12);
    let (p50, p99) = (&t["Traffic"]["P50"], &t["Traffic"]["P99"]);
    assert!(
        p50.as_f64().is_some_and(|p| p > 0.0) && p99.as_f64() >= p50.as_f64(),
        "{t:#}"
    );
    assert!(t["Since"].as_str().is_some_and(|s| s.ends_with('Z')), "{t:#}");
    let rules = &v["Listeners"][0]["Rules"];
    assert_eq!(rules[0]["Priority"], "10");
    assert_eq!(rules[0]["Action"], "forward app");
    assert_eq!(rules[0]["TargetGroups"][0], "app");
    assert_eq!(rules[2]["Priority"], "default");
    assert_eq!(v["Discovery"]["Enabled"], false);
    assert!(
        v["Configuration"]["Generation"].is_null(),
        "the start's configuration: {v:#}"
    );
    assert!(
        v["Configuration"]["SnapshotGeneration"].as_u64() >= Some(1),
        "{v:#}"
    );
    assert_eq!(v["Configuration"]["AppliedByReload"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_targets_refused_reloads_and_warnings_need_attention() {
    let live = Backend::start("live").await;
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let alb = start(&config(&[live.addr(), dead])).await;
    let mut page = String::new();
    let shown = try_eventually(Duration::from_secs(10), async || {
        page = alb.admin_get("/").await.1;
        page.contains(&format!("<tr data-target=\"{dead}\""))
            && field(target_row(&page, dead), "state") == "unhealthy"
    })
    .await;
    assert!(shown.is_ok(), "{dead} should be shown unhealthy:\n{page}");
    let row = target_row(&page, dead);
    assert!(row.contains("Target.FailedHealthChecks"), "the reason: {row}");
    // Since when: the change seen by the sampler, or (when the first sample came after
    // it) at least since the sampler started.
    assert!(
        [" ago<", "just now", "(since start)"]
            .iter()
            .any(|s| row.contains(s)),
        "since when it is unhealthy: {row}"
    );
    assert_eq!(field(&page, "lb-unhealthy"), "1");
    // hostalb's short probe intervals are below ALB's range: a configuration warning.
    assert!(
        page.contains("warning (ALB limit): target_group.app.health_check.interval_seconds"),
        "{page}"
    );

    // A reload that is refused: shown with its reason, the old generation serving.
    let generation = field(&page, "generation").trim().to_owned();
    alb.write_config(&format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n{}\n[target_group.app.bogus]\n",
        config(&[live.addr(), dead])
    ));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 400, "{body}");
    // The dashboard's record follows the reload's event, a moment after the answer.
    let mut page = String::new();
    let recorded = try_eventually(Duration::from_secs(5), async || {
        page = alb.admin_get("/").await.1;
        page.contains("the last reload was refused")
    })
    .await;
    assert!(recorded.is_ok(), "{page}");
    let failure = field(&page, "last-failure");
    assert!(failure.contains("bogus"), "{failure}");
    assert_eq!(field(&page, "generation").trim(), generation);

    // A reload that is applied: its generation shown, the refusal kept as history only.
    alb.write_config(&format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n{}",
        config(&[live.addr(), dead])
    ));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "{body}");
    let applied = serde_json::from_str::<Value>(&body).expect("json")["Generation"]
        .as_u64()
        .expect("a generation");
    let mut page = String::new();
    let recorded = try_eventually(Duration::from_secs(5), async || {
        page = alb.admin_get("/").await.1;
        !page.contains("the last reload was refused")
    })
    .await;
    assert!(recorded.is_ok(), "{page}");
    let shown: u64 = field(&page, "generation").trim().parse().unwrap_or(0);
    // The file watcher may have applied the same file once more since.
    assert!(
        shown >= applied,
        "generation {shown} shown, {applied} applied:\n{page}"
    );
    assert!(field(&page, "last-failure").contains("bogus"), "kept as history");
}

/// Headless Chromium (Debian's `chromium`; scripts/test installs it when missing).
fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!(
        "no headless Chromium: run scripts/test (it installs Debian's chromium), or apt-get install chromium"
    );
}

/// Runs Chromium headless on `url` with `args`; its stdout. Killed after
/// [`CHROMIUM_PATIENCE`].
fn run_chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + scaled(CHROMIUM_PATIENCE);
    // Polled every 100 ms until it exits or the deadline passes.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within {CHROMIUM_PATIENCE:?} on {url}");
            }
        }
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where a screenshot is kept after the test, to look at.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_shows_the_numbers_and_the_script_keeps_them_live() {
    let backend = Backend::start("app-1").await;
    let alb = with_traffic(&backend).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let url = alb.admin_url("/");
    let dom = {
        let (profile, url) = (profile.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || run_chromium(&profile, &url, &["--dump-dom"]))
            .await
            .expect("chromium task")
    };
    assert_shows_traffic(&dom, &backend);
    // The script ran, fetched a fresh view and swapped it in, without error.
    let updates: u32 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        updates >= 1,
        "the page refreshed itself: data-updates={updates}\n{dom}"
    );
    assert!(dom.contains("class=\"status live\""), "{dom}");

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    {
        let (profile, url, arg) = (
            profile.path().to_owned(),
            url.clone(),
            format!("--screenshot={}", shot.display()),
        );
        tokio::task::spawn_blocking(move || run_chromium(&profile, &url, &[&arg, "--window-size=1400,1500"]))
            .await
            .expect("chromium task");
    }
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 20_000, "a page, not a blank: {} bytes", png.len());
    println!("dashboard screenshot: {}", shot.display());
}
