//! What an operator reads at INFO: registrations, deregistrations and health changes
//! naming the target and the reason, and the errors hostalb answers itself, at most one
//! line a second per class.

use std::time::Duration;

use hostalb_testkit::{Backend, raw_exchange, scaled};

use crate::common::start;
use crate::errors::{forward_config, forward_config_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_health_changes_are_logged_with_their_reason() {
    let backend = Backend::builder().name("a").health_status(500).start().await;
    let alb = start(&forward_config_with(
        &[backend.addr()],
        "",
        "health_check = { path = \"/health\", interval_seconds = 0.2, timeout_seconds = 0.1, unhealthy_threshold = 2, healthy_threshold = 2 }",
    ))
    .await;
    let patience = scaled(Duration::from_secs(5));
    assert!(
        alb.wait_stderr("target registered", patience).await,
        "{}",
        alb.stderr_text()
    );
    assert!(
        alb.wait_stderr("Health checks failed with these codes: [500]", patience)
            .await,
        "the failing code is named: {}",
        alb.stderr_text()
    );
    let line = alb
        .stderr_text()
        .lines()
        .find(|l| l.contains("target health changed"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains(&backend.addr().to_string()), "{line}");
    assert!(line.contains("unhealthy"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_errors_are_logged_at_most_once_a_second_per_class() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let alb = start(&forward_config(&[refused], "")).await;
    for _ in 0..40 {
        let resp = raw_exchange(
            alb.listener("web"),
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            scaled(Duration::from_secs(5)),
        )
        .await;
        assert!(
            resp.starts_with(b"HTTP/1.1 502"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    assert!(
        alb.wait_stderr("TargetConnectionError", scaled(Duration::from_secs(5)))
            .await,
        "{}",
        alb.stderr_text()
    );
    let lines = alb
        .stderr_text()
        .lines()
        .filter(|l| l.contains("hostalb answered a 5xx"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "40 errors in well under 5 s give a few lines, not 40: {lines}\n{}",
        alb.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let backend = hostalb_testkit::Backend::start("a").await;
    let alb = hostalb_testkit::HostAlb::builder(crate::common::bin())
        .config(forward_config(&[backend.addr()], ""))
        .arg("--log-format")
        .arg("json")
        .start()
        .await;
    assert!(
        alb.wait_stderr("target registered", scaled(Duration::from_secs(5)))
            .await,
        "{}",
        alb.stderr_text()
    );
    let text = alb.stderr_text();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let registered = events
        .iter()
        .find(|e| e["fields"]["message"] == "target registered")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(registered["fields"]["target"], backend.addr().to_string());
    assert_eq!(registered["level"], "INFO");
}
