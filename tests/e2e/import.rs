//! `hostalb import`: the describe output in examples/aws/ (made with the AWS CLI against
//! moto) imports into a configuration `hostalb check` accepts, whose rules route as the
//! originals describe when the real binary serves them; the ARNs hostalb shows are the ones
//! hostalb-aws computes; and output regenerated from moto still imports the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hostalb_aws::arn;
use hostalb_testkit::{Backend, Client, eventually, scaled};

use crate::common::{bin, start};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws")
}

/// `examples/aws/*`, as a shell would expand it (the moto/ directory included).
fn example_args() -> Vec<String> {
    let mut args: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| {
            !Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    args.sort();
    args
}

/// Runs `hostalb ARGS`: (exit code, stdout, stderr).
fn hostalb(args: &[String]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run hostalb");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hostalb import FILES... -o DIR/out.toml`, then `hostalb check` of it; the TOML and the
/// import's stderr.
fn import_and_check(files: Vec<String>, dir: &Path) -> (String, String) {
    let out = dir.join("out.toml");
    let mut args = vec!["import".to_owned()];
    args.extend(files);
    args.extend(["-o".to_owned(), out.display().to_string()]);
    let (code, _, stderr) = hostalb(&args);
    assert_eq!(code, 0, "import failed:\n{stderr}");
    let (code, stdout, stderr_check) =
        hostalb(&["check".into(), "--config".into(), out.display().to_string()]);
    assert_eq!(code, 0, "check failed:\n{stdout}\n{stderr_check}");
    assert!(stdout.contains("valid (0 warning(s))"), "{stdout}");
    (std::fs::read_to_string(&out).unwrap(), stderr)
}

#[test]
fn examples_import_into_a_configuration_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, stderr) = import_and_check(example_args(), dir.path());
    for wanted in [
        "name = \"shop-80\"",
        "address = \"127.0.0.1:80\"",
        "{ field = \"query-string\", values = [{ key = \"maintenance\", value = \"on\" }, { value = \"down\" }] }",
        "{ field = \"source-ip\", values = [\"127.0.0.0/8\", \"::1/128\"] }",
        "target_groups = [{ name = \"blue\", weight = 0 }, { name = \"green\", weight = 100 }], stickiness_seconds = 300",
        "stickiness = { type = \"app_cookie\", cookie_name = \"SESSIONID\", duration_seconds = 600 }",
        "algorithm = \"least_outstanding_requests\"",
        "labels = { \"com.amazonaws.ecs.task-definition-family\" = \"shop-api\", \"com.amazonaws.ecs.container-name\" = \"app\" }",
        "container_port = 8080",
    ] {
        assert!(toml.contains(wanted), "missing `{wanted}`:\n{toml}");
    }
    // What a user must add by hand is said on stderr.
    assert!(
        stderr.contains("note: target group `web` has no targets"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("note: target group `api` has no targets"),
        "{stderr}"
    );
}

#[test]
fn attributes_without_a_group_name_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let attrs = dir.path().join("attrs.json");
    std::fs::copy(
        examples().join("describe-target-group-attributes.web.json"),
        &attrs,
    )
    .unwrap();
    let groups = examples()
        .join("describe-target-groups.json")
        .display()
        .to_string();
    let (code, _, stderr) = hostalb(&["import".into(), groups.clone(), attrs.display().to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("NAME_OR_ARN="), "{stderr}");
    // Named, it imports, to standard output.
    let (code, stdout, stderr) = hostalb(&["import".into(), groups, format!("web={}", attrs.display())]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("[target_group.web]") && stdout.contains("deregistration_delay_seconds = 30"),
        "{stdout}"
    );
}

/// The imported configuration made runnable here: listeners on free ports, each group's
/// targets a local backend, the Docker selector left out (no ECS agent here), and the one
/// health check on another port pointed at the traffic port.
fn runnable(toml: &str, backends: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in toml.lines() {
        if line.starts_with('[') {
            skipping = line.ends_with(".docker]");
        }
        if skipping {
            continue;
        }
        let line = match line {
            "address = \"127.0.0.1:80\"" => "address = \"127.0.0.1:0\"",
            "port = 8081" => "port = \"traffic-port\"",
            l => l,
        };
        out.push_str(line);
        out.push('\n');
        if let Some(name) = line
            .strip_prefix("[target_group.")
            .and_then(|l| l.strip_suffix(']'))
        {
            if let Some((_, addr)) = backends.iter().find(|(n, _)| *n == name) {
                out.push_str(&format!("targets = [\"{addr}\"]\n"));
            }
        }
    }
    out
}

/// (method, path, headers, expected status, expected backend or body).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rules_route_as_the_originals_describe() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = import_and_check(example_args(), dir.path());
    let names = ["web", "api", "blue", "green", "admin"];
    let mut backends = Vec::new();
    for n in names {
        backends.push(Backend::start(n).await);
    }
    let addrs: Vec<(&str, String)> = names
        .iter()
        .zip(&backends)
        .map(|(n, b)| (*n, b.addr().to_string()))
        .collect();
    let alb = start(&runnable(&toml, &addrs)).await;
    let client = Client::new();
    let url = |path: &str| alb.url("shop-80", path);
    // Every target passes its first probe before the table below is run.
    for g in names {
        let health = alb.admin_url(&format!("/api/target-health?target_group={g}"));
        let c = &client;
        eventually(scaled(Duration::from_secs(10)), async || {
            c.get(&health)
                .await
                .is_ok_and(|r| r.text().contains("\"healthy\""))
        })
        .await;
    }

    let table: [Case; 9] = [
        ("GET", "/", &[], 200, "web"),
        ("GET", "/api/orders", &[], 200, "api"),
        (
            "GET",
            "/",
            &[("Host", "canary.example.com"), ("X-Canary", "yes-please")],
            200,
            "green",
        ),
        ("GET", "/", &[("Host", "canary.example.com")], 200, "web"),
        (
            "GET",
            "/?maintenance=on",
            &[],
            503,
            "{\"status\":\"maintenance\"}",
        ),
        ("GET", "/?state=down", &[], 503, "{\"status\":\"maintenance\"}"),
        ("DELETE", "/items/1", &[], 405, "read-only"),
        ("PATCH", "/items/1", &[], 405, "read-only"),
        ("GET", "/admin/users", &[], 200, "admin"),
    ];
    for (method, path, headers, status, expected) in table {
        let resp = client
            .request(method, &url(path), headers, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(
            resp.status,
            status,
            "{method} {path} {headers:?}: {}",
            resp.text()
        );
        if status == 200 {
            assert_eq!(resp.backend(), Some(expected), "{method} {path} {headers:?}");
        } else {
            assert_eq!(resp.text(), expected, "{method} {path}");
        }
    }

    // The redirect keeps protocol, host, port and query; `/new/#{path}` puts the whole
    // original path (#{path} has no leading slash) under /new.
    let resp = client.get(&url("/old/a/b?q=1")).await.unwrap();
    assert_eq!(resp.status, 301);
    let location = resp.header("location").unwrap_or_default();
    let port = alb.listener("shop-80").port();
    assert_eq!(location, format!("http://127.0.0.1:{port}/new/old/a/b?q=1"));

    // An even weighted split reaches both groups.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let resp = client
            .request("GET", &url("/"), &[("Host", "shop.example.com")], Vec::new())
            .await
            .unwrap();
        seen.insert(resp.backend().unwrap_or_default().to_owned());
    }
    assert_eq!(seen, BTreeSet::from(["blue".to_owned(), "green".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arns_hostalb_shows_are_the_ones_hostalb_aws_computes() {
    let backend = Backend::start("api").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "api" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {{ type = "forward", target_group = "api" }}

[target_group.api]
targets = ["{}"]
"#,
        backend.addr()
    ))
    .await;
    let client = Client::new();
    let scope = arn::Scope::default();
    let lb = arn::HOSTALB_LB_NAME;
    let groups = client
        .get(&alb.admin_url("/api/target-groups"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        groups["TargetGroups"][0]["TargetGroupArn"],
        arn::target_group_arn(&scope, "api")
    );
    let listeners = client
        .get(&alb.admin_url("/api/listeners"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listeners["Listeners"][0]["ListenerArn"],
        arn::listener_arn(&scope, lb, "web")
    );
    assert_eq!(
        listeners["Listeners"][0]["LoadBalancerArn"],
        arn::load_balancer_arn(&scope, lb)
    );
    let rules = client
        .get(&alb.admin_url("/api/rules?listener=web"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let arns: Vec<&str> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RuleArn"].as_str().unwrap())
        .collect();
    assert_eq!(
        arns,
        [
            arn::rule_arn(&scope, lb, "web", "10"),
            arn::rule_arn(&scope, lb, "web", "default")
        ]
    );
}

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs awscli and moto[server] from PyPI into target/pyenv)"
        )
    })
}

#[test]
fn describe_output_regenerated_from_moto_imports_as_the_examples_do() {
    let python = python();
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(examples().join("moto/generate"))
        .arg(fresh.path())
        .env("HOSTALB_PYTHON", &python)
        .output()
        .expect("run examples/aws/moto/generate");
    assert!(
        out.status.success(),
        "generate failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let regenerated: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(fresh.path())
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(regenerated.len(), 11, "{regenerated:#?}");
    let work = tempfile::tempdir().unwrap();
    let (fresh_toml, _) = import_and_check(regenerated, work.path());
    let (committed_toml, _) = import_and_check(example_args(), work.path());
    // ARNs (fresh ids each run) and input paths appear only in comments.
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(&fresh_toml),
        strip(&committed_toml),
        "examples/aws/ is not what examples/aws/moto/generate makes today: run it again"
    );
}
