//! What the ECS end-to-end tests (ecs, ecs_tasks, ecs_clients, ecs_bluegreen) share:
//! hostalb started with a state file and the Docker engine, the Python clients of
//! tests/python run with test credentials, polling until a state holds, unique names,
//! the labels that let a test find (and remove) the containers it made.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hostalb_testkit::HostAlb;
use hostalb_testkit::docker::{OWNER_LABEL, TEST_LABEL, docker_host, docker_ok};
use serde_json::{Value, json};

use crate::common::bin;

/// The interpreter of the venv with boto3 and awscli (`HOSTALB_PYTHON`); a missing one
/// fails the test loudly.
pub(crate) fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs awscli and boto3 from PyPI into target/pyenv)"
        )
    })
}

/// Runs the interpreter with `args` and the test credentials, within `patience`; its
/// output, whatever its exit status (`what` names the run when it overstays).
pub(crate) async fn run_python(what: &str, args: Vec<String>, patience: Duration) -> Output {
    let mut cmd = Command::new(python());
    cmd.args(&args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    tokio::time::timeout(patience, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .unwrap_or_else(|_| panic!("{what} finished in time"))
        .unwrap()
        .expect("run python")
}

/// [`run_python`] that must succeed; its stdout as JSON (`{}` when empty).
pub(crate) async fn python_json(what: &str, args: Vec<String>, patience: Duration) -> Value {
    let out = run_python(what, args, patience).await;
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// One command of tests/python/`file` (`file COMMAND ENDPOINT ARGS...`); its JSON.
pub(crate) async fn script(
    file: &str,
    command: &str,
    endpoint: &str,
    args: &[&str],
    patience: Duration,
) -> Value {
    let mut all = vec![
        format!("{}/tests/python/{file}", env!("CARGO_MANIFEST_DIR")),
        command.to_owned(),
        endpoint.to_owned(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    python_json(&format!("{file} {command} {args:?}"), all, patience).await
}

/// The interpreter's arguments for `aws --endpoint-url EP --output json ARGS...` (the
/// CLI v1 of the venv).
pub(crate) fn aws_args(ep: &str, args: &[&str]) -> Vec<String> {
    ["-m", "awscli", "--endpoint-url", ep, "--output", "json"]
        .iter()
        .chain(args)
        .map(|s| (*s).to_owned())
        .collect()
}

/// hostalb's configuration: the admin API on a free port, `state` as its state file,
/// `docker` as the engine's endpoint.
pub(crate) fn config(state: &Path, docker: &str) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\nstate_file = \"{}\"\n\n[docker]\nendpoint = \"{docker}\"\n",
        state.display()
    )
}

/// hostalb with `state` as its state file, on the test Docker engine.
pub(crate) async fn start(state: &Path) -> HostAlb {
    HostAlb::start(bin(), &config(state, &docker_host())).await
}

/// The admin API's URL (the AWS APIs' endpoint).
pub(crate) fn endpoint(alb: &HostAlb) -> String {
    format!("http://127.0.0.1:{}", alb.admin().port())
}

/// A unique name for this test's family, cluster or service.
pub(crate) fn unique(tag: &str) -> String {
    unique_from(tag, std::process::id())
}

/// `tag`, `id` and the clock's nanoseconds: unique across the tests of one run.
pub(crate) fn unique_from(tag: &str, id: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{tag}-{id}-{nanos:x}")
}

/// The labels that let the test cleanup find the task's containers.
pub(crate) fn test_labels() -> Value {
    json!({ TEST_LABEL: "1", OWNER_LABEL: std::process::id().to_string() })
}

/// The task's container `name` as DescribeTasks answers it.
pub(crate) fn container<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}: {task:#}"))
}

/// Fetches until `done` holds, `every` apart; the last fetch. After `patience` the test
/// fails with `never` and the last fetch.
pub(crate) async fn poll<F, Fut>(
    patience: Duration,
    every: Duration,
    never: &str,
    mut fetch: F,
    done: impl Fn(&Value) -> bool,
) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Value>,
{
    let began = Instant::now();
    loop {
        let v = fetch().await;
        if done(&v) {
            return v;
        }
        assert!(began.elapsed() < patience, "{never}: {v:#}");
        tokio::time::sleep(every).await;
    }
}

/// The ids `docker CMD... --filter label=LABEL` lists (containers with `ps -aq`, volumes
/// with `volume ls -q`).
pub(crate) fn labelled(cmd: &[&str], label: &str) -> Result<Vec<String>, String> {
    let filter = format!("label={label}");
    let ids = docker_ok(cmd.iter().copied().chain(["--filter", filter.as_str()]))?;
    Ok(ids.split_whitespace().map(str::to_owned).collect())
}

/// Removes, when dropped, every container this test process labelled as its own: the
/// tasks of services a test leaves behind when it ends (hostalb stops with the test, the
/// containers it started would run on). nextest runs each test in a process of its own,
/// so no other test's containers carry this owner.
pub(crate) struct OwnContainers;

impl Drop for OwnContainers {
    fn drop(&mut self) {
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        // Cleanup never fails a test: an engine that does not answer leaves the
        // containers to the next run's sweep of dead owners.
        if let Ok(ids) = labelled(&["ps", "-aq"], &owner) {
            for id in ids {
                let _ = docker_ok(["rm", "-f", "-v", id.as_str()]);
            }
        }
    }
}
