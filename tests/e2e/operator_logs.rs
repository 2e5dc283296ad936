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
