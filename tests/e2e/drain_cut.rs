//! A target deregistered with a deregistration delay of 0 (an ECS rolling update or a
//! scale-in): its requests in flight are cut at once, as ALB cuts them when the delay
//! ends; an idempotent one goes to another target of the group (data/retry.rs), a POST
//! gets ALB's 502.

use std::net::SocketAddr;
use std::time::Duration;

use hostalb_testkit::{Backend, Client, try_eventually};

use crate::common::start;
use crate::health::{group, reload, web};

fn in_progress(backend: &Backend, path: &str) -> usize {
    backend
        .requests()
        .iter()
        .filter(|r| r.path() == path && r.status.is_none())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_by_a_deregistration_delay_of_0_go_to_another_target_when_idempotent() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |targets: &[SocketAddr]| {
        format!(
            "{}{}",
            web("app", ""),
            group(
                "app",
                targets,
                "deregistration_delay_seconds = 0\nhealth_check = { enabled = false }\nalgorithm = \"round_robin\""
            )
        )
    };
    let alb = start(&config(&[a.addr(), b.addr()])).await;
    let client = Client::new();
    for (method, path, want) in [("GET", "/delay/1500", 200), ("POST", "/delay/1501", 502)] {
        reload(&alb, &config(&[a.addr(), b.addr()])).await;
        // Two slow requests: round robin gives one to each target.
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let client = client.clone();
                let url = alb.url("web", path);
                tokio::spawn(async move {
                    client
                        .request(method, &url, &[("content-type", "text/plain")], "x")
                        .await
                })
            })
            .collect();
        let both = try_eventually(Duration::from_secs(5), async || {
            in_progress(&a, path) == 1 && in_progress(&b, path) == 1
        })
        .await;
        assert!(both.is_ok(), "a: {:?}\nb: {:?}", a.requests(), b.requests());
        reload(&alb, &config(&[a.addr()])).await;
        let mut answers = Vec::new();
        for task in slow {
            let resp = task.await.expect("task").expect("answered");
            answers.push((resp.status, resp.backend().unwrap_or_default().to_owned()));
        }
        answers.sort();
        if want == 200 {
            assert_eq!(
                answers,
                [(200, "a".to_owned()), (200, "a".to_owned())],
                "the GET cut on b was answered by a"
            );
            assert_eq!(
                a.requests().iter().filter(|r| r.path() == path).count(),
                2,
                "sent once more, to a"
            );
        } else {
            assert_eq!(
                answers,
                [(200, "a".to_owned()), (502, String::new())],
                "the POST cut on b is never sent again"
            );
            assert_eq!(a.requests().iter().filter(|r| r.path() == path).count(), 1);
        }
    }
}
