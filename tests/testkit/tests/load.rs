//! `LoadGen` counts answers, statuses and errors, and stops in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, LoadGen, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_successes_per_backend() {
    let b = Backend::start("load").await;
    let load = LoadGen::start(format!("http://{}/", b.addr()), 4, Duration::from_secs(30));
    eventually(Duration::from_secs(5), async || load.done() >= 50).await;
    let report = load.stop().await;
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.total, report.ok);
    assert_eq!(report.backends, vec![("load".to_string(), report.ok)]);
    assert!(report.p99() >= report.p50());
    assert!(report.rps() > 0.0);
    // Four keep-alive clients: four connections, each reused.
    assert!(b.connections() <= 4, "{} connections", b.connections());
    assert_eq!(b.request_count() as u64, report.total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_statuses_and_errors() {
    let b = Backend::start("err").await;
    let load = LoadGen::start(
        format!("http://{}/status/503", b.addr()),
        2,
        Duration::from_secs(30),
    );
    eventually(Duration::from_secs(5), async || load.done() >= 10).await;
    let report = load.stop().await;
    assert_eq!(report.ok, 0);
    assert_eq!(report.non_2xx.len(), 1);
    assert_eq!(report.non_2xx[0].0, 503);
    assert_eq!(report.non_2xx[0].1, report.total);

    let addr = b.addr();
    b.stop().await;
    let load = LoadGen::start(format!("http://{addr}/"), 2, Duration::from_secs(30));
    eventually(Duration::from_secs(5), async || load.done() >= 5).await;
    let report = load.stop().await;
    assert_eq!(report.ok, 0);
    assert!(report.error_count >= 5);
    assert_eq!(report.error_count, report.total);
    assert!(!report.errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_by_itself_after_max_duration() {
    let b = Backend::start("bounded").await;
    let start = Instant::now();
    let load = LoadGen::builder(format!("http://{}/", b.addr()))
        .concurrency(2)
        .max_duration(Duration::from_millis(300))
        .pause(Duration::from_millis(20))
        .start();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let done = load.done();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(load.done(), done, "clients must have stopped");
    let report = load.stop().await;
    assert!(report.all_ok(), "{report:?}");
    // About 300 ms / 20 ms per client, two clients.
    assert!(report.total <= 40, "{report:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}
