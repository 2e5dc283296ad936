//! `eventually` waits, succeeds, and gives up within its patience.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hostalb_testkit::{eventually, patience_factor, try_eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeds_once_the_condition_holds() {
    let n = Arc::new(AtomicU32::new(0));
    let took = eventually(Duration::from_secs(5), async || {
        n.fetch_add(1, Ordering::SeqCst) >= 3
    })
    .await;
    assert!(took < Duration::from_secs(5));
    assert!(n.load(Ordering::SeqCst) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_its_patience() {
    let start = Instant::now();
    let err = try_eventually(Duration::from_millis(200), async || false)
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    let expected = Duration::from_millis(200).mul_f64(patience_factor());
    assert_eq!(err.waited, expected);
    assert!(elapsed >= expected, "{elapsed:?}");
    assert!(elapsed < expected + Duration::from_secs(1), "{elapsed:?}");
    assert!(err.checks >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_condition_is_cut_at_the_deadline() {
    let start = Instant::now();
    let r = try_eventually(Duration::from_millis(100), async || {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        true
    })
    .await;
    assert!(r.is_err());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "eventually at")]
async fn eventually_panics_naming_the_caller() {
    eventually(Duration::from_millis(50), async || false).await;
}
