//! The command line: `hostalb check` on valid and invalid files and without one, the
//! examples shipped in `examples/`, `--help`, `hostalb demo`, how `hostalb run` fails on a
//! bad file, and the embedded default's `--listen` / `--admin` (and their environment
//! variables).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hostalb_testkit::{Backend, Client, HostAlb, run_check, scaled, try_eventually};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::common::{bin, start};
use crate::labels::LabelModeAlb;

/// One problem as `hostalb check` prints it: `ORIGIN: KIND: PATH: MESSAGE` and, on the
/// next line, `  fix: ...`.
#[derive(Debug)]
struct Printed {
    kind: String,
    path: String,
    message: String,
    fix: Option<String>,
}

/// Splits `hostalb check` output into its problems and its summary line.
fn problems(stdout: &str) -> (Vec<Printed>, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    let mut out = Vec::new();
    let mut summary = String::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(' ') || line.trim().is_empty() {
            continue;
        }
        // `ORIGIN: ` is the file path, which has no `: ` in these tests.
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let kind_end = [
            "error (ALB limit, strict_alb = true): ",
            "warning (ALB limit): ",
            "warning: ",
            "error: ",
        ]
        .iter()
        .find(|k| rest.starts_with(**k));
        let Some(kind) = kind_end else {
            summary = rest.to_owned();
            continue;
        };
        let rest = &rest[kind.len()..];
        let (path, message) = rest.split_once(": ").unwrap_or((rest, ""));
        // The fix is the next line that starts with `  fix: ` before the next problem.
        let fix = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.trim().is_empty())
            .find_map(|l| l.trim_start().strip_prefix("fix: "))
            .map(str::to_owned);
        out.push(Printed {
            kind: kind.trim_end_matches(": ").to_owned(),
            path: path.to_owned(),
            message: message.to_owned(),
            fix,
        });
    }
    (out, summary)
}

fn find<'a>(printed: &'a [Printed], path: &str, stdout: &str) -> &'a Printed {
    printed
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no problem reported at {path}:\n{stdout}"))
}

/// Runs `hostalb ARGS` to completion (bounded); `(exit code, stdout, stderr)`.
async fn run_cli(args: &[&str]) -> (i32, String, String) {
    run_cli_env(args, &[]).await
}

/// [`run_cli`] with environment variables.
async fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning hostalb {args:?}: {e}"));
    let out = tokio::time::timeout(scaled(Duration::from_secs(20)), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("hostalb {args:?} did not finish"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

const VALID_TOML: &str = r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404 }

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/api/*"] }]
action = { type = "forward", target_group = "api" }

[target_group.api]
targets = ["127.0.0.1:9001"]
"#;

const VALID_JSON: &str = r#"{
  "listener": [{
    "name": "web",
    "address": "127.0.0.1:0",
    "default_action": { "type": "fixed-response", "status_code": 404 },
    "rule": [{
      "priority": 10,
      "conditions": [{ "field": "path-pattern", "values": ["/api/*"] }],
      "action": { "type": "forward", "target_group": "api" }
    }]
  }],
  "target_group": { "api": { "targets": ["127.0.0.1:9001"] } }
}"#;

#[test]
fn check_accepts_valid_toml_and_json() {
    for (ext, text) in [("toml", VALID_TOML), ("json", VALID_JSON)] {
        let (code, stdout, stderr) = run_check(bin(), text, ext);
        assert_eq!(code, 0, "{ext}: exit 0 for a valid file\n{stdout}\n{stderr}");
        let (printed, summary) = problems(&stdout);
        assert!(printed.is_empty(), "{ext}: no problems expected:\n{stdout}");
        assert!(
            summary.starts_with("valid"),
            "{ext}: summary says valid:\n{stdout}"
        );
        assert!(summary.contains("0 warning"), "{ext}:\n{stdout}");
    }
}

#[test]
fn check_reports_every_problem_of_a_toml_file_with_its_path_and_a_fix() {
    let (code, stdout, stderr) = run_check(
        bin(),
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "forward", target_group = "nope" }
colour = "blue"

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "fixed-response", status_code = 200 }

[[listener.rule]]
priority = 10
conditions = [{ field = "colour", values = ["/b"] }]
action = { type = "fixed-response", status_code = 200 }

[target_group.app]
targets = ["127.0.0.1:9001"]
health_check = { interval_seconds = 5, timeout_seconds = 5 }
"#,
        "toml",
    );
    assert_eq!(code, 1, "exit 1 for an invalid file\n{stdout}\n{stderr}");
    let (printed, summary) = problems(&stdout);
    let expected = [
        ("listener[0].colour", "colour"),
        ("listener[0].default_action.target_group", "nope"),
        ("listener[0].rule[1].priority", "10"),
        ("listener[0].rule[1].conditions[0].field", "colour"),
        ("target_group.app.health_check.timeout_seconds", "interval"),
    ];
    for (path, mentions) in expected {
        let p = find(&printed, path, &stdout);
        assert_eq!(p.kind, "error", "{path}:\n{stdout}");
        assert!(
            p.message.contains(mentions),
            "{path} should mention {mentions}:\n{stdout}"
        );
        assert!(
            p.fix.as_deref().is_some_and(|f| !f.trim().is_empty()),
            "{path} has a `fix:` line:\n{stdout}"
        );
    }
    assert_eq!(printed.len(), expected.len(), "exactly these problems:\n{stdout}");
    assert!(
        summary.contains("invalid") && summary.contains(&format!("{} error(s)", expected.len())),
        "the summary counts the errors:\n{stdout}"
    );
}

#[test]
fn check_reports_every_problem_of_a_json_file_with_its_path_and_a_fix() {
    let (code, stdout, stderr) = run_check(
        bin(),
        r#"{
  "listener": [{
    "name": "web",
    "address": "localhost:80",
    "idle": 3,
    "default_action": { "type": "forward", "target_group": "nope" }
  }],
  "target_group": { "app": { "targets": ["127.0.0.1:9001"], "algorithm": "fastest" } }
}"#,
        "json",
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let (printed, _) = problems(&stdout);
    for (path, mentions) in [
        ("listener[0].address", "localhost:80"),
        ("listener[0].idle", "idle"),
        ("listener[0].default_action.target_group", "nope"),
        ("target_group.app.algorithm", "fastest"),
    ] {
        let p = find(&printed, path, &stdout);
        assert_eq!(p.kind, "error", "{path}:\n{stdout}");
        assert!(
            p.message.contains(mentions),
            "{path} should mention {mentions}:\n{stdout}"
        );
        assert!(p.fix.is_some(), "{path} has a `fix:` line:\n{stdout}");
    }
    assert_eq!(printed.len(), 4, "{stdout}");
    let algo = find(&printed, "target_group.app.algorithm", &stdout);
    assert!(
        algo.fix.as_deref().is_some_and(|f| f.contains("round_robin")),
        "the fix names the choices:\n{stdout}"
    );
}

#[test]
fn check_names_unknown_keys_at_every_level() {
    let (code, stdout, _) = run_check(
        bin(),
        r#"
listeners = 1

[[listener]]
name = "web"
address = "127.0.0.1:0"

[[listener.rule]]
priority = 1
conditions = [{ field = "path-pattern", values = ["/a"], case = "insensitive" }]
action = { type = "forward", target_group = "app", weight = 3 }

[target_group.app]
target = ["127.0.0.1:1"]

[target_group.app.health_check]
intervall_seconds = 5
"#,
        "toml",
    );
    assert_eq!(code, 1, "{stdout}");
    let (printed, _) = problems(&stdout);
    for (path, key) in [
        ("listeners", "listeners"),
        ("listener[0].rule[0].conditions[0].case", "case"),
        ("listener[0].rule[0].action.weight", "weight"),
        ("target_group.app.target", "target"),
        (
            "target_group.app.health_check.intervall_seconds",
            "intervall_seconds",
        ),
    ] {
        let p = find(&printed, path, &stdout);
        assert!(
            p.message.contains(&format!("`{key}`")),
            "{path} names the key:\n{stdout}"
        );
        assert!(p.fix.is_some(), "{path} has a fix:\n{stdout}");
    }
    // The known keys are listed, so a misspelling is easy to correct.
    let hc = find(
        &printed,
        "target_group.app.health_check.intervall_seconds",
        &stdout,
    );
    assert!(hc.message.contains("interval_seconds"), "{stdout}");
}

#[test]
fn check_warns_on_alb_limits_and_strict_alb_makes_them_errors() {
    let config = r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
idle_timeout_seconds = 5000
default_action = { type = "forward", target_group = "app" }

[[listener.rule]]
priority = 60000
conditions = [{ field = "host-header", values = ["localhost"] }]
action = { type = "forward", target_group = "app" }

[target_group.app]
targets = ["127.0.0.1:9001"]
"#;
    let limits = [
        "listener[0].idle_timeout_seconds",
        "listener[0].rule[0].priority",
        "listener[0].rule[0].conditions[0].values[0]",
    ];

    let (code, stdout, stderr) = run_check(bin(), config, "toml");
    assert_eq!(
        code, 0,
        "ALB limits alone are warnings: exit 0\n{stdout}\n{stderr}"
    );
    let (printed, summary) = problems(&stdout);
    for path in limits {
        let p = find(&printed, path, &stdout);
        assert_eq!(p.kind, "warning (ALB limit)", "{path}:\n{stdout}");
        assert!(p.fix.is_some(), "{path}:\n{stdout}");
    }
    assert_eq!(printed.len(), limits.len(), "{stdout}");
    assert!(
        summary.starts_with("valid") && summary.contains("3 warning"),
        "{stdout}"
    );

    let strict = format!("strict_alb = true\n{config}");
    let (code, stdout, stderr) = run_check(bin(), &strict, "toml");
    assert_eq!(
        code, 1,
        "strict_alb = true makes ALB limits errors: exit 1\n{stdout}\n{stderr}"
    );
    let (printed, summary) = problems(&stdout);
    for path in limits {
        let p = find(&printed, path, &stdout);
        assert_eq!(
            p.kind, "error (ALB limit, strict_alb = true)",
            "{path}:\n{stdout}"
        );
    }
    assert!(
        summary.contains("invalid") && summary.contains("3 error"),
        "{stdout}"
    );
}

#[test]
fn check_reports_syntax_errors_with_their_position() {
    let (code, stdout, _) = run_check(
        bin(),
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nname = \"web\nprotocol = \"HTTP\"\n",
        "toml",
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("TOML"), "names the format:\n{stdout}");
    assert!(
        stdout.contains("line 5"),
        "gives the line of the unterminated string:\n{stdout}"
    );
    assert!(stdout.contains("fix:"), "{stdout}");

    let (code, stdout, _) = run_check(
        bin(),
        "{\n  \"listener\": [\n    { \"name\": \"web\",, }\n  ]\n}\n",
        "json",
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("JSON"), "names the format:\n{stdout}");
    assert!(
        stdout.contains("line 3") && stdout.contains("column"),
        "gives line and column:\n{stdout}"
    );
    assert!(stdout.contains("fix:"), "{stdout}");

    // A TOML file given a .json name is read as JSON, and fails as JSON.
    let (code, stdout, _) = run_check(bin(), VALID_TOML, "json");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("JSON"), "{stdout}");
}

#[test]
fn check_of_a_top_level_that_is_not_a_table_points_to_the_basic_example() {
    let (code, stdout, _) = run_check(bin(), "[1, 2, 3]", "json");
    assert_eq!(code, 1, "{stdout}");
    let (printed, _) = problems(&stdout);
    let p = find(&printed, "(top level)", &stdout);
    let fix = p.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("examples/basic.toml"), "{stdout}");
    assert!(
        examples_dir().join("basic.toml").is_file(),
        "the example the message points to exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_of_a_missing_file_fails() {
    let missing = std::env::temp_dir().join("hostalb-no-such-dir/none.toml");
    let (code, stdout, stderr) = run_cli(&["check", "--config", missing.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("cannot read"), "{stdout}");
    assert!(stdout.contains("none.toml"), "names the file:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_valid() {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(examples_dir()).expect("examples/ exists");
    for entry in entries {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "toml" | "json") {
            continue;
        }
        let (code, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{}:\n{stdout}\n{stderr}", path.display());
        let (printed, summary) = problems(&stdout);
        assert!(
            printed.is_empty() && summary.contains("0 warning"),
            "{}: an example should be within ALB's limits:\n{stdout}",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for wanted in [
        "advanced.toml",
        "basic.json",
        "basic.toml",
        "ecs.toml",
        "redirects.toml",
        "weighted.toml",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "examples/{wanted} missing: {names:?}"
        );
    }
}

/// An example made runnable on free loopback ports.
fn local(example: &str) -> String {
    let text = std::fs::read_to_string(examples_dir().join(example)).unwrap();
    text.replace("0.0.0.0:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_json_describes_the_same_configuration_as_basic_toml() {
    let toml = HostAlb::builder(bin()).config(local("basic.toml")).start().await;
    let json = HostAlb::builder(bin())
        .config(local("basic.json"))
        .config_ext("json")
        .start()
        .await;
    for path in ["/api/rules?listener=web", "/api/target-groups"] {
        let (s1, a) = toml.admin_get(path).await;
        let (s2, b) = json.admin_get(path).await;
        assert_eq!((s1, s2), (200, 200), "{path}");
        let a: Value = serde_json::from_str(&a).unwrap();
        let b: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(a, b, "{path}: basic.json and basic.toml differ");
    }
    // And they route alike: the default action answers 404 on both.
    for alb in [&toml, &json] {
        let resp = Client::new().get(&alb.url("web", "/nothing")).await.unwrap();
        assert_eq!(resp.status, 404);
        assert_eq!(resp.text(), "no rule matched\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_mentions_the_commands_and_flags() {
    let (code, stdout, _) = run_cli(&["--help"]).await;
    assert_eq!(code, 0, "{stdout}");
    for word in ["run", "check", "demo"] {
        assert!(stdout.contains(word), "hostalb --help mentions {word}:\n{stdout}");
    }
    for (command, flags) in [
        (
            "run",
            &[
                "--config",
                "--workers",
                "--listen",
                "--admin",
                "--label-group-grace",
                "HOSTALB_LISTEN",
                "HOSTALB_ADMIN",
            ][..],
        ),
        ("check", &["--config", "--listen", "--admin"][..]),
        ("demo", &["--port", "--admin-port"][..]),
    ] {
        let (code, stdout, _) = run_cli(&[command, "--help"]).await;
        assert_eq!(code, 0, "{stdout}");
        for flag in flags {
            assert!(
                stdout.contains(flag),
                "hostalb {command} --help mentions {flag}:\n{stdout}"
            );
        }
    }
    let (code, _, stderr) = run_cli(&["run", "--no-such-flag"]).await;
    assert_ne!(code, 0, "an unknown flag is refused");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_prints_a_tour_and_routes_to_its_backends() {
    let mut child = Command::new(bin())
        .args(["demo", "--port", "0", "--admin-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().expect("running");
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let read = tokio::time::timeout(scaled(Duration::from_secs(15)), async {
        // Ends at the tour's last line, or when stdout closes.
        while let Ok(Some(line)) = lines.next_line().await {
            let last = line.contains("Ctrl-C");
            stdout.push(line);
            if last {
                break;
            }
        }
    })
    .await;
    let all = stdout.join("\n");
    assert!(read.is_ok(), "the demo did not print its tour in time:\n{all}");
    assert!(stdout.iter().any(|l| l == "ready"), "{all}");
    let addr_of = |prefix: &str| {
        stdout
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{prefix}` line:\n{all}"))
    };
    let web = addr_of("listening listener demo ");
    let admin = addr_of("listening admin ");
    assert!(
        all.contains(&format!("curl http://{web}/")),
        "the tour shows curl commands on the listener:\n{all}"
    );
    assert!(
        all.contains(&format!("http://{admin}/")),
        "and on the admin API:\n{all}"
    );

    let client = Client::new();
    // The demo's backends take traffic once hostalb considers them routable.
    let mut last = String::new();
    let routed = try_eventually(Duration::from_secs(15), async || {
        match client.get(&format!("http://{web}/api/hello")).await {
            Ok(r) => {
                last = format!("{} {}", r.status, r.text());
                r.status == 200 && r.text().starts_with("hello from ")
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    })
    .await;
    assert!(
        routed.is_ok(),
        "/api/hello should reach a demo backend; last answer: {last}"
    );
    let green = client
        .request(
            "GET",
            &format!("http://{web}/"),
            &[("host", "green.localhost")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(green.status, 200, "{green:?}");
    assert!(green.text().starts_with("hello from green"), "{}", green.text());
    let health = client.get(&format!("http://{web}/health")).await.unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let rules = client
        .get(&format!("http://{admin}/api/rules?listener=demo"))
        .await
        .unwrap();
    assert_eq!(rules.status, 200, "{rules:?}");

    // Ctrl-C stops it.
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(scaled(Duration::from_secs(5)), child.wait())
        .await
        .expect("the demo exits on SIGINT")
        .unwrap();
    let stderr = stderr_task.await.unwrap();
    assert!(
        status.code().is_some(),
        "it exits by itself, not killed by the signal: {status}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_missing_config_file_fails() {
    let missing = std::env::temp_dir().join("hostalb-no-such-dir/absent.toml");
    let (code, stdout, stderr) = run_cli(&["run", "--config", missing.to_str().unwrap()]).await;
    assert_ne!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("absent.toml") && stderr.contains("cannot read"),
        "the problem is on stderr:\n{stderr}"
    );
    assert!(!stdout.contains("ready"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_an_invalid_config_fails_with_every_problem_on_stderr() {
    let err = HostAlb::builder(bin())
        .config(
            r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "forward", target_group = "nope" }

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "fixed-response", status_code = 200 }

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/b"] }]
action = { type = "fixed-response", status_code = 200 }
"#,
        )
        .ready_timeout(Duration::from_secs(10))
        .try_start()
        .await
        .expect_err("an invalid configuration must not start");
    let status = err.status.expect("the process exited");
    assert!(!status.success(), "non-zero exit: {status}");
    for needle in [
        "listener[0].default_action.target_group",
        "listener[0].rule[1].priority",
        "fix:",
    ] {
        assert!(
            err.stderr.contains(needle),
            "stderr names {needle}:\n{}",
            err.stderr
        );
    }
    assert!(!err.stdout.iter().any(|l| l == "ready"), "{:?}", err.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_when_a_listener_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = HostAlb::builder(bin())
        .config(format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nname = \"web\"\naddress = \"{addr}\"\n"
        ))
        .ready_timeout(Duration::from_secs(10))
        .try_start()
        .await
        .expect_err("a listener that cannot bind must not start");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    assert!(
        err.stderr.contains("web") && err.stderr.contains(&addr.to_string()),
        "stderr names the listener and its address:\n{}",
        err.stderr
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_one_worker_serves_concurrent_requests() {
    let backend = Backend::start("a").await;
    let alb = HostAlb::builder(bin())
        .config(format!(
            r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "app" }}

[target_group.app]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
            backend.addr()
        ))
        .workers(1)
        .start()
        .await;
    let client = Client::new();
    let slow_url = alb.url("web", "/delay/300");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.get(&slow_url).await }
    });
    // While the slow request waits on its target, the one worker serves others.
    for i in 0..5 {
        let r = client.get(&alb.url("web", &format!("/fast/{i}"))).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend(), Some("a"));
    }
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status, 200);
    assert_eq!(backend.request_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reads_a_json_config() {
    let backend = Backend::start("j").await;
    let alb = HostAlb::builder(bin())
        .config(format!(
            r#"{{
  "admin": {{ "address": "127.0.0.1:0" }},
  "listener": [{{
    "name": "web",
    "address": "127.0.0.1:0",
    "default_action": {{ "type": "forward", "target_group": "app" }}
  }}],
  "target_group": {{ "app": {{ "targets": ["{}"], "health_check": {{ "enabled": false }} }} }}
}}"#,
            backend.addr()
        ))
        .config_ext("json")
        .start()
        .await;
    let r = Client::new().get(&alb.url("web", "/x")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.backend(), Some("j"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_every_listener_before_ready() {
    let alb = start(
        r#"
[[listener]]
name = "one"
address = "127.0.0.1:0"

[[listener]]
name = "two"
address = "127.0.0.1:0"
"#,
    )
    .await;
    let lines = alb.stdout_lines();
    let ready = lines.iter().position(|l| l == "ready").expect("ready");
    for prefix in [
        "listening admin ",
        "listening listener one ",
        "listening listener two ",
    ] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line: {lines:?}"));
        assert!(at < ready, "`{prefix}` comes before ready: {lines:?}");
    }
    assert_ne!(alb.listener("one").port(), 0, "the bound port is printed, not 0");
    assert_ne!(alb.listener("one"), alb.listener("two"));
    for name in ["one", "two"] {
        let r = Client::new().get(&alb.url(name, "/")).await.unwrap();
        assert_eq!(r.status, 404, "the default default action is a fixed 404");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_pipe_carry_no_terminal_colour_codes() {
    // Logs usually end up in files and journals; escape codes there are noise that
    // breaks grep and log parsers.
    let alb = start(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
"#,
    )
    .await;
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        alb.wait_stderr("configuration applied", Duration::from_secs(2))
            .await,
        "a reload is logged:\n{}",
        alb.stderr_text()
    );
    let stderr = alb.stderr_text();
    assert!(
        !stderr.contains('\u{1b}'),
        "stderr is a pipe, not a terminal: no ANSI escape codes expected:\n{}",
        stderr.escape_debug()
    );
}

/// No engine at this address: discovery retries in the background, hostalb serves.
const NO_DOCKER: (&str, &str) = ("DOCKER_HOST", "unix:///nonexistent/hostalb-cli-test.sock");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_a_file_listens_where_listen_and_admin_say_and_keeps_it_on_reload() {
    let alb = LabelModeAlb::start(
        &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        &[NO_DOCKER],
    )
    .await;
    assert!(alb.web.ip().is_loopback() && alb.web.port() != 0, "{:?}", alb.web);
    assert!(
        alb.admin.ip().is_loopback() && alb.admin.port() != 0,
        "{:?}",
        alb.admin
    );
    let client = Client::new();
    let miss = client.get(&alb.url("/anything")).await.unwrap();
    assert_eq!((miss.status, miss.text().as_str()), (404, "no rule matched"));
    let health = client.get(&alb.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status, 200);

    // A reload re-reads the embedded default with the same addresses.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(alb.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let applied = try_eventually(Duration::from_secs(10), async || {
        alb.stderr_text().contains("configuration applied")
    })
    .await;
    assert!(applied.is_ok(), "SIGHUP reloads:\n{}", alb.stderr_text());
    let again = client.get(&alb.url("/anything")).await.unwrap();
    assert_eq!(again.status, 404, "still served where it was");
    let lines = alb.stdout_lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("0.0.0.0:8080") || l.contains(":9901")),
        "the embedded addresses never come back: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_a_file_takes_its_addresses_from_the_environment() {
    let alb = LabelModeAlb::start(
        &[],
        &[
            NO_DOCKER,
            ("HOSTALB_LISTEN", "127.0.0.1:0"),
            ("HOSTALB_ADMIN", "127.0.0.1:0"),
        ],
    )
    .await;
    assert!(alb.web.ip().is_loopback() && alb.web.port() != 0, "{:?}", alb.web);
    let r = Client::new().get(&alb.admin_url("/healthz")).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_admin_are_refused_with_a_file_and_bad_values_are_named() {
    let file = std::env::temp_dir().join("hostalb-cli-refused.toml");
    let file = file.to_str().unwrap();
    for args in [
        &["run", "--config", file, "--listen", "127.0.0.1:1"][..],
        &["check", "--config", file, "--admin", "127.0.0.1:1"][..],
        &["run", "--config", file, "--label-group-grace", "5"][..],
    ] {
        let (code, stdout, stderr) = run_cli(args).await;
        assert_eq!(code, 2, "hostalb {args:?}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("only apply to the embedded default") && stderr.contains("[admin] `address`"),
            "hostalb {args:?} says why and what to do:\n{stderr}"
        );
    }
    let (code, _, stderr) = run_cli_env(&["run"], &[NO_DOCKER, ("HOSTALB_ADMIN", "localhost")]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("HOSTALB_ADMIN=localhost is not an address"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(&["run", "--listen", "nowhere"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_ignored_with_a_file_and_says_so() {
    let alb = HostAlb::builder(bin())
        .config(
            "[admin]\naddress = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n",
        )
        .env("HOSTALB_LISTEN", "127.0.0.1:1")
        .start()
        .await;
    assert_ne!(alb.listener("web").port(), 1, "the file's address");
    assert!(
        alb.wait_stderr("HOSTALB_LISTEN is ignored", Duration::from_secs(2))
            .await,
        "{}",
        alb.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_a_file_prints_and_checks_the_embedded_default() {
    let (code, stdout, stderr) = run_cli(&["check"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for needle in [
        "[[listener]]",
        "address = \"0.0.0.0:8080\"",
        "address = \"127.0.0.1:9901\"",
        "hostalb.target-group",
        "(embedded default): valid (0 warning(s))",
    ] {
        assert!(stdout.contains(needle), "`{needle}` in:\n{stdout}");
    }
    let (code, stdout, _) =
        run_cli(&["check", "--listen", "127.0.0.1:18080", "--admin", "[::1]:19901"]).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("address = \"127.0.0.1:18080\""), "{stdout}");
    assert!(stdout.contains("address = \"[::1]:19901\""), "{stdout}");
    assert!(!stdout.contains("0.0.0.0:8080"), "{stdout}");
    let (printed, summary) = problems(&stdout);
    assert!(printed.is_empty(), "{stdout}");
    assert_eq!(summary, "valid (0 warning(s))");
}
