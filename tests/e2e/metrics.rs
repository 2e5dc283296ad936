//! `GET /metrics` against real traffic: the exposition is valid for `promtool` and for
//! both of `prometheus_client`'s parsers, every ALB CloudWatch metric has its counterpart
//! with ALB's dimensions as labels, the counters and the `TargetResponseTime` histogram
//! count exactly the requests made, 460 is no ELB 4XX, targets whose health checks are
//! disabled are neither healthy nor unhealthy, and the README's table and the Grafana
//! dashboard name only series that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hostalb_testkit::{Backend, Client, HostAlb, RawConn, eventually, try_eventually};
use serde_json::Value;

use crate::admin::{assert_family, metric_sum, parse_metrics};
use crate::common::start;

/// What Prometheus sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A listener `web` with a rule per kind of answer: `/api/*` forwards to `app`, `/empty/*`
/// to a group without targets (503), `/fixed` is a fixed response, `old.example.com`
/// redirects, anything else gets the default 404.
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
conditions = [{{ field = "path-pattern", values = ["/empty/*"] }}]
action = {{ type = "forward", target_group = "empty" }}

[[listener.rule]]
priority = 30
conditions = [{{ field = "path-pattern", values = ["/fixed"] }}]
action = {{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "fixed" }}

[[listener.rule]]
priority = 40
conditions = [{{ field = "host-header", values = ["old.example.com"] }}]
action = {{ type = "redirect", host = "new.example.com", status_code = "HTTP_301" }}

[target_group.app]
targets = [{targets}]
health_check = {{ interval_seconds = 0.2, timeout_seconds = 0.1, healthy_threshold = 2, unhealthy_threshold = 2 }}

[target_group.empty]
health_check = {{ enabled = false }}
"#,
        targets = targets.join(", ")
    )
}

/// Waits until every target of `group` is healthy (so no request fails open).
async fn wait_healthy(alb: &HostAlb, group: &str, n: usize) {
    let path = format!("/api/target-health?target_group={group}");
    let mut last = String::new();
    let ready = try_eventually(Duration::from_secs(10), async || {
        last = alb.admin_get(&path).await.1;
        last.matches("\"healthy\"").count() == n
    })
    .await;
    assert!(ready.is_ok(), "{n} healthy targets in {group} expected:\n{last}");
}

/// `GET path` on listener `web`; the status.
async fn status(client: &Client, alb: &HostAlb, path: &str, headers: &[(&str, &str)]) -> u16 {
    client
        .request("GET", &alb.url("web", path), headers, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .status
}

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs prometheus-client from PyPI into target/pyenv)"
        )
    })
}

/// Runs `program args` with `input` on stdin; (success, stdout, stderr).
fn run_with_input(program: &str, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e}; scripts/test installs it (promtool: Debian's \
                 prometheus package, `apt-get install prometheus`)"
            )
        });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `/metrics` as Prometheus scrapes it (OpenMetrics), with its content type.
async fn scrape_openmetrics(alb: &HostAlb) -> (String, String) {
    let r = Client::new()
        .request(
            "GET",
            &alb.admin_url("/metrics"),
            &[("accept", PROMETHEUS_ACCEPT)],
            Vec::new(),
        )
        .await
        .expect("scrape");
    assert_eq!(r.status, 200);
    (r.header("content-type").unwrap_or("").to_owned(), r.text())
}

/// Families in order of their `# TYPE` lines, and the family each sample line belongs to,
/// in order: a family's samples must all follow its TYPE line, before the next one.
fn assert_grouped(text: &str) {
    let mut declared: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                declared.iter().all(|(n, _)| n != name),
                "family {name} declared twice"
            );
            declared.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        let (family, kind) = declared
            .last()
            .unwrap_or_else(|| panic!("{line} before any TYPE"));
        let suffixes: &[&str] = match kind.as_str() {
            "histogram" => &["_bucket", "_count", "_sum"],
            "counter" => &["_total", ""],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|s| sample == format!("{family}{s}") || sample == family.as_str()),
            "sample {sample} is not of the family declared before it ({family}): series split apart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_passes_promtool_and_the_openmetrics_parser() {
    let a = Backend::start("a").await;
    let alb = start(&config(&[a.addr()])).await;
    wait_healthy(&alb, "app", 1).await;
    let client = Client::new();
    for i in 0..5 {
        assert_eq!(status(&client, &alb, &format!("/api/{i}"), &[]).await, 200);
    }
    assert_eq!(status(&client, &alb, "/api/status/503", &[]).await, 503);
    assert_eq!(status(&client, &alb, "/empty/x", &[]).await, 503);
    assert_eq!(status(&client, &alb, "/fixed", &[]).await, 200);
    assert_eq!(status(&client, &alb, "/", &[]).await, 404);
    assert_eq!(
        status(&client, &alb, "/x", &[("host", "old.example.com")]).await,
        301
    );

    // The text format, as promtool reads it: no error and no lint complaint.
    let text_response = client.get(&alb.admin_url("/metrics")).await.expect("scrape");
    assert_eq!(
        text_response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = text_response.text();
    assert_grouped(&text);
    let (ok, out, err) = run_with_input("promtool", &["check", "metrics"], &text);
    assert!(
        ok && out.trim().is_empty() && err.trim().is_empty(),
        "promtool check metrics:\n{out}{err}\n--- exposition ---\n{text}"
    );

    // OpenMetrics, as Prometheus asks for it.
    let (content_type, om) = scrape_openmetrics(&alb).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE hostalb_requests counter\n"), "{om}");
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as text
om, plain = sys.stdin.read().split("\n#####\n")
def families(parse, source):
    out = {}
    for f in parse(source):
        if f.name in out:
            raise SystemExit("family %s split apart" % f.name)
        out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
    return out
print(json.dumps({"openmetrics": families(openmetrics, om), "text": families(text, plain)}))
"#;
    let (ok, out, err) = run_with_input(&python(), &["-c", script], &format!("{om}\n#####\n{text}"));
    assert!(
        ok,
        "prometheus_client could not parse /metrics:\n{err}\n--- openmetrics ---\n{om}"
    );
    let parsed: Value = serde_json::from_str(&out).expect("json");
    let om_families = parsed["openmetrics"].as_object().expect("families");
    let text_families = parsed["text"].as_object().expect("families");
    assert_eq!(
        om_families.keys().collect::<BTreeSet<_>>(),
        text_families.keys().collect::<BTreeSet<_>>(),
        "both formats carry the same families"
    );
    let family = |name: &str| &om_families[name];
    assert_eq!(family("hostalb_requests")["type"], "counter");
    assert_eq!(
        family("hostalb_target_response_time_seconds")["type"],
        "histogram"
    );
    assert_eq!(family("hostalb_healthy_hosts")["type"], "gauge");
    // The requests counted (6 forwarded to app, 1 to the empty group: a target was chosen
    // for 6), with ALB's dimension as the label.
    let requests = &family("hostalb_requests")["samples"][0];
    assert_eq!(requests[0], "hostalb_requests_total");
    assert_eq!(requests[2], 6.0);
    let lb = requests[1]["load_balancer"]
        .as_str()
        .expect("load_balancer label");
    assert!(
        lb.starts_with("app/hostalb/") && lb.len() == "app/hostalb/".len() + 16,
        "{lb}"
    );
    // Every family carries load_balancer; the group and target ones their dimensions.
    for (name, f) in om_families {
        for s in f["samples"].as_array().expect("samples") {
            let labels = s[1].as_object().expect("labels");
            assert!(labels.contains_key("load_balancer"), "{name}: {s}");
            if let Some(tg) = labels.get("target_group") {
                let tg = tg.as_str().unwrap_or("");
                assert!(tg.starts_with("targetgroup/"), "{name}: {tg}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_the_response_time_histogram_count_the_requests_made() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let alb = start(&config(&[a.addr(), b.addr()])).await;
    wait_healthy(&alb, "app", 2).await;
    let client = Client::new();
    for i in 0..10 {
        assert_eq!(status(&client, &alb, &format!("/api/ok/{i}"), &[]).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(status(&client, &alb, "/api/status/503", &[]).await, 503);
        assert_eq!(status(&client, &alb, "/api/status/404", &[]).await, 404);
    }
    // One slow answer: at least 300 ms, so above the 250 ms bucket for certain.
    assert_eq!(status(&client, &alb, "/api/delay/300", &[]).await, 200);
    assert_eq!(status(&client, &alb, "/fixed", &[]).await, 200);

    let (_, text) = alb.admin_get("/metrics").await;
    let app = [("target_group", "targetgroup/app/")];
    let value = |name: &str, filter: &[(&str, &str)]| {
        metric_sum(&text, name, filter).unwrap_or_else(|| panic!("no {name} {filter:?}:\n{text}"))
    };
    assert_eq!(value("hostalb_requests_total", &[]), 15.0);
    assert_eq!(value("hostalb_target_group_requests_total", &app), 15.0);
    assert_eq!(value("hostalb_httpcode_target_2xx_total", &app), 11.0);
    assert_eq!(value("hostalb_httpcode_target_4xx_total", &app), 2.0);
    assert_eq!(value("hostalb_httpcode_target_5xx_total", &app), 2.0);
    assert_eq!(value("hostalb_httpcode_target_3xx_total", &app), 0.0);
    assert_eq!(
        value("hostalb_httpcode_elb_4xx_total", &[]),
        0.0,
        "targets' 4xx are not ELB 4xx"
    );
    assert_eq!(value("hostalb_httpcode_elb_5xx_total", &[]), 0.0);
    assert_eq!(value("hostalb_http_fixed_responses_total", &[]), 1.0);
    assert_eq!(value("hostalb_rule_evaluations_total", &[]), 16.0);

    // The group's histogram: one observation per response, cumulative buckets.
    let hist = "hostalb_target_response_time_seconds";
    assert_eq!(value(&format!("{hist}_count"), &app), 15.0);
    assert!(
        value(&format!("{hist}_sum"), &app) >= 0.3,
        "the slow answer is in the sum"
    );
    let buckets: BTreeMap<String, f64> = parse_metrics(&text)
        .into_iter()
        .filter(|s| s.name == format!("{hist}_bucket"))
        .filter(|s| {
            s.labels
                .iter()
                .any(|(k, v)| k == "target_group" && v.starts_with("targetgroup/app/"))
        })
        .map(|s| {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (le, s.value)
        })
        .collect();
    let bounds = [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
        "10.0", "+Inf",
    ];
    assert_eq!(
        buckets.keys().cloned().collect::<BTreeSet<_>>(),
        bounds.iter().map(|b| b.to_string()).collect::<BTreeSet<_>>(),
        "1 ms to 10 s"
    );
    let counts: Vec<f64> = bounds.iter().map(|b| buckets[*b]).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative: {counts:?}");
    assert_eq!(buckets["+Inf"], 15.0);
    assert!(
        buckets["0.25"] <= 14.0,
        "the 300 ms answer is above 0.25 s: {buckets:?}"
    );

    // Per target: the two targets share the requests, each counted once.
    let per_target = |name: &str, extra: &[(&str, &str)]| {
        let mut filter = app.to_vec();
        filter.extend_from_slice(extra);
        value(name, &filter)
    };
    assert_eq!(per_target("hostalb_per_target_requests_total", &[]), 15.0);
    assert_eq!(
        per_target("hostalb_per_target_response_time_seconds_count", &[]),
        15.0
    );
    assert_eq!(
        per_target("hostalb_per_target_responses_total", &[("code", "5xx")]),
        2.0
    );
    assert_eq!(
        per_target("hostalb_per_target_responses_total", &[("code", "2xx")]),
        11.0
    );
    for backend in [&a, &b] {
        let addr = backend.addr().to_string();
        // Health probes (to `/`) are not requests.
        let received = backend
            .requests()
            .iter()
            .filter(|r| r.path().starts_with("/api/"))
            .count();
        assert_eq!(
            per_target("hostalb_per_target_requests_total", &[("target", &addr)]),
            received as f64,
            "{addr} counted as many requests as it received"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_before_the_answer_is_a_460_and_no_elb_4xx() {
    let a = Backend::start("a").await;
    let alb = start(&config(&[a.addr()])).await;
    wait_healthy(&alb, "app", 1).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
    conn.send(b"GET /api/delay/3000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .expect("send");
    eventually(Duration::from_secs(3), async || a.in_flight() == 1).await;
    drop(conn);
    let mut text = String::new();
    let counted = try_eventually(Duration::from_secs(3), async || {
        text = alb.admin_get("/metrics").await.1;
        metric_sum(&text, "hostalb_httpcode_elb_460_total", &[]) == Some(1.0)
    })
    .await;
    assert!(counted.is_ok(), "one 460 expected:\n{text}");
    assert_eq!(
        metric_sum(&text, "hostalb_httpcode_elb_4xx_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric_sum(&text, "hostalb_elb_answers_total", &[("code", "460")]),
        Some(1.0),
        "the reason breakdown still lists it"
    );
    assert_eq!(metric_sum(&text, "hostalb_requests_total", &[]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_counts_are_alb_s_healthy_and_unhealthy_only() {
    let live = Backend::start("live").await;
    let unchecked = Backend::start("unchecked").await;
    // An address nothing listens on: its probes are refused.
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "checked" }}

[[listener.rule]]
priority = 1
conditions = [{{ field = "path-pattern", values = ["/u/*"] }}]
action = {{ type = "forward", target_group = "unchecked" }}

[target_group.checked]
targets = ["{live}", "{dead}"]
health_check = {{ interval_seconds = 0.2, timeout_seconds = 0.1, healthy_threshold = 2, unhealthy_threshold = 2 }}

[target_group.unchecked]
targets = ["{unchecked}"]
health_check = {{ enabled = false }}
"#,
        live = live.addr(),
        unchecked = unchecked.addr(),
    ))
    .await;
    let checked = [("target_group", "targetgroup/checked/")];
    let unchecked_tg = [("target_group", "targetgroup/unchecked/")];
    let mut text = String::new();
    let settled = try_eventually(Duration::from_secs(10), async || {
        text = alb.admin_get("/metrics").await.1;
        metric_sum(&text, "hostalb_healthy_hosts", &checked) == Some(1.0)
            && metric_sum(&text, "hostalb_unhealthy_hosts", &checked) == Some(1.0)
    })
    .await;
    assert!(
        settled.is_ok(),
        "checked: 1 healthy, 1 unhealthy expected:\n{text}"
    );
    // Health checks disabled: the target is `unavailable`, which is neither.
    assert_eq!(
        metric_sum(&text, "hostalb_healthy_hosts", &unchecked_tg),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "hostalb_unhealthy_hosts", &unchecked_tg),
        Some(0.0)
    );
    let unchecked_addr = unchecked.addr().to_string();
    let state = |s: &'static str| {
        metric_sum(
            &text,
            "hostalb_per_target_health",
            &[("target", &unchecked_addr), ("state", s)],
        )
    };
    assert_eq!(state("unavailable"), Some(1.0));
    assert_eq!(state("healthy"), Some(0.0));
    // One zone routing to its healthy target: HealthyStateRouting 1.
    assert_eq!(
        metric_sum(&text, "hostalb_healthy_state_routing", &checked),
        Some(1.0)
    );
    assert_eq!(
        metric_sum(&text, "hostalb_unhealthy_state_routing", &checked),
        Some(0.0)
    );
    // The unavailable target still takes requests.
    let r = Client::new().get(&alb.url("web", "/u/x")).await.expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.backend(), Some("unchecked"));
}

/// The repository's root (the e2e tests' manifest directory).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `expr` of the dashboard, however deep.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_series_that_exist() {
    let path = repo().join("dashboards/hostalb.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    let mut queries = Vec::new();
    exprs(&dashboard["panels"], &mut queries);
    let all = queries.join("\n");
    // What the dashboard is for.
    for needed in [
        "rate(hostalb_requests_total",
        "hostalb_httpcode_elb_4xx_total",
        "hostalb_httpcode_elb_5xx_total",
        "hostalb_httpcode_target_4xx_total",
        "hostalb_httpcode_target_5xx_total",
        "histogram_quantile(0.5, sum by (le, target_group) (rate(hostalb_target_response_time_seconds_bucket",
        "histogram_quantile(0.9, sum by (le, target_group) (rate(hostalb_target_response_time_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, target_group) (rate(hostalb_target_response_time_seconds_bucket",
        "hostalb_healthy_hosts",
        "hostalb_unhealthy_hosts",
        "hostalb_active_connections",
    ] {
        assert!(all.contains(needed), "the dashboard should query {needed}");
    }
    // Every series it names exists in a real /metrics.
    let a = Backend::start("a").await;
    let alb = start(&config(&[a.addr()])).await;
    let (_, metrics) = alb.admin_get("/metrics").await;
    let mut names = BTreeSet::new();
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("hostalb_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert_family(&metrics, name);
    }
    // The template variables read labels that exist.
    let variables = dashboard["templating"]["list"].as_array().expect("variables");
    let names_of: Vec<&str> = variables.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names_of, ["datasource", "load_balancer", "target_group"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_table_maps_each_alb_metric_as_metrics_does() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section in the README");
    // `| `AlbName` ... | `series` | ...`: the first cell without backticks, the second's name.
    let mut documented = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let alb = cells[1].replace('`', "");
        let series = cells[2].trim_matches('`').to_owned();
        assert!(documented.insert(alb.clone(), series).is_none(), "{alb} twice");
    }
    let a = Backend::start("a").await;
    let alb = start(&config(&[a.addr()])).await;
    let (_, metrics) = alb.admin_get("/metrics").await;
    let mut exposed = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# HELP ") else {
            continue;
        };
        let Some((name, help)) = rest.split_once(' ') else {
            continue;
        };
        if let Some((alb_name, _)) = help.strip_prefix("ALB ").and_then(|h| h.split_once(':')) {
            exposed.insert(alb_name.to_owned(), name.to_owned());
        }
    }
    assert_eq!(documented, exposed, "README table against the HELP of /metrics");
    assert_eq!(exposed.len(), 40, "alb-spec §7's 39 metrics, RequestCount twice");
}
