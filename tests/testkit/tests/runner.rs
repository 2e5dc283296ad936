//! `HostAlb` and `run_check` follow the binary's stdout contract, exercised with a small
//! shell script standing in for the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use hostalb_testkit::{Backend, HostAlb, run_check};

const T: Duration = Duration::from_secs(10);

/// A stand-in for `hostalb`: prints the contract lines, reloads on SIGHUP by announcing a
/// new listener, exits 0 on SIGTERM and 130 on SIGINT. The admin address comes from
/// `FAKE_ADMIN`. `check` prints the file and fails when it contains `invalid`.
const SCRIPT: &str = r#"#!/bin/sh
echo "args: $*" >&2
echo "RUST_LOG=$RUST_LOG" >&2
case "$1" in
  check)
    cat "$3"
    if grep -q invalid "$3"; then echo "listener[0].name: invalid name" >&2; exit 1; fi
    exit 0 ;;
  run) ;;
  *) exit 2 ;;
esac
if grep -q fail_start "$3"; then echo "config error: fail_start" >&2; exit 1; fi
trap 'echo "listening listener api 127.0.0.1:40003"; echo "reloaded" >&2' HUP
trap 'echo "draining" >&2; exit 0' TERM
trap 'exit 130' INT
echo "listening admin ${FAKE_ADMIN:-127.0.0.1:40001}"
echo "listening listener web 127.0.0.1:40002"
if grep -q no_ready "$3"; then :; else echo "ready"; fi
i=0
while [ "$i" -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
exit 3
"#;

fn fake_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake-hostalb");
    std::fs::write(&path, SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reads_addresses_and_signals_work() {
    let (_dir, bin) = fake_binary();
    let admin = Backend::start("admin").await;
    let alb = HostAlb::builder(&bin)
        .config("[admin]\n")
        .workers(3)
        .arg("--extra")
        .env("FAKE_ADMIN", admin.addr().to_string())
        .start()
        .await;
    assert_eq!(alb.admin(), admin.addr());
    assert_eq!(alb.listener("web"), "127.0.0.1:40002".parse().unwrap());
    assert_eq!(alb.url("web", "/a?b"), "http://127.0.0.1:40002/a?b");
    assert_eq!(alb.try_listener("api"), None);
    assert!(alb.pid() > 0);
    assert_eq!(std::fs::read_to_string(alb.config_path()).unwrap(), "[admin]\n");
    assert!(alb.config_path().ends_with("hostalb.toml"));
    assert!(alb.stdout_lines().contains(&"ready".to_string()));

    assert!(alb.wait_stderr("args: run --config", T).await);
    let stderr = alb.stderr_text();
    assert!(
        stderr.contains("--workers 3 --extra"),
        "arguments passed: {stderr}"
    );
    assert!(!stderr.contains("RUST_LOG=\n"), "RUST_LOG is set: {stderr}");

    alb.write_config("[admin]\n# changed\n");
    assert_eq!(
        std::fs::read_to_string(alb.config_path()).unwrap(),
        "[admin]\n# changed\n"
    );

    assert!(alb.reload_sighup());
    let api = alb.wait_listener("api", T).await;
    assert_eq!(api, Some("127.0.0.1:40003".parse().unwrap()));
    assert_eq!(alb.listeners().len(), 2);
    assert!(alb.wait_stderr("reloaded", T).await);

    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"admin\""));
    let seen = admin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/api/reload")
    );
    let (status, _) = alb.admin_get("/status/404").await;
    assert_eq!(status, 404);

    assert_eq!(alb.wait_exit(Duration::from_millis(100)).await, None);
    assert!(alb.sigterm());
    let status = alb.wait_exit(T).await.expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(alb.wait_stderr("draining", T).await);
    assert!(!alb.sigterm(), "no signal to a process that has exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_at_once() {
    let (_dir, bin) = fake_binary();
    let alb = HostAlb::start(&bin, "").await;
    assert!(alb.sigint());
    let status = alb.wait_exit(T).await.expect("exits after SIGINT");
    assert_eq!(status.code(), Some(130));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_failure_reports_stderr_and_status() {
    let (_dir, bin) = fake_binary();
    let err = HostAlb::builder(&bin)
        .config("fail_start")
        .try_start()
        .await
        .unwrap_err();
    assert_eq!(err.status.and_then(|s| s.code()), Some(1));
    assert!(err.stderr.contains("config error: fail_start"), "{err}");
    assert!(err.to_string().contains("config error: fail_start"));

    let err = HostAlb::builder(&bin)
        .config("no_ready")
        .ready_timeout(Duration::from_millis(300))
        .try_start()
        .await
        .unwrap_err();
    assert!(err.reason.contains("no `ready`"), "{err}");
    assert_eq!(err.stdout.len(), 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "hostalb did not start")]
async fn start_panics_when_the_binary_fails() {
    let (_dir, bin) = fake_binary();
    HostAlb::start(&bin, "fail_start").await;
}

#[test]
fn run_check_returns_code_and_output() {
    let (_dir, bin) = fake_binary();
    let (code, stdout, stderr) = run_check(&bin, "strict_alb = false\n", "toml");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "strict_alb = false\n");
    assert!(stderr.contains("args: check --config"));
    assert!(stderr.contains("hostalb.toml"));

    let (code, _, stderr) = run_check(&bin, "{\"invalid\": true}", "json");
    assert_eq!(code, 1);
    assert!(stderr.contains("listener[0].name"));
    assert!(stderr.contains("hostalb.json"));
}
