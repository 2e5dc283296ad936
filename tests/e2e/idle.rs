//! Idle keep-alive client connections: a plain connection that waits longer than a moment
//! for its next request drops its serving state and keeps only a small idle state; these
//! tests check that nothing a client sees changes across that (the same connection
//! serves on, pipelined requests included, the idle timeout counts from the last answer,
//! the connection counts once).

use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, scaled};

use crate::common::start;
use crate::errors::{assert_open_after, expect_metric, forward_config, get, send};

/// Longer than hostalb keeps a waiting connection's serving state (20 ms).
const PAST_THE_HOT_WAIT: Duration = Duration::from_millis(400);
/// How long a test waits for an answer that should come at once.
const ANSWER: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_past_its_serving_state_serves_on_pipelined_requests_included() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let (mut conn, mut last) = send(alb.listener("web"), &get("/first")).await;
    assert_eq!(last.status, 200, "{last:?}");
    for i in 0..3 {
        let quiet = conn.read_for(PAST_THE_HOT_WAIT).await;
        assert!(quiet.is_empty(), "nothing may arrive while idle: {quiet:?}");
        assert!(!conn.is_closed(), "the idle connection stays open");
        last = assert_open_after(&mut conn, &last, &get(&format!("/again/{i}"))).await;
        assert_eq!(last.status, 200, "{last:?}");
    }
    // Two requests in one write after a pause: both answered, in order.
    let _ = conn.read_for(PAST_THE_HOT_WAIT).await;
    let mut two = get("/p/1");
    two.extend_from_slice(&get("/p/2"));
    conn.send(&two).await.expect("send");
    for want in ["/p/1", "/p/2"] {
        let resp = conn.read_response(scaled(ANSWER)).await.expect("an answer");
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(!resp.closes(), "{resp:?}");
        let seen = backend.requests().iter().any(|r| r.target == want);
        assert!(seen, "{want} reached the target");
    }
    assert_eq!(backend.request_count(), 6);
    // One connection, counted once, open.
    expect_metric(&alb, "hostalb_new_connections_total", &[], 1.0).await;
    expect_metric(&alb, "hostalb_active_connections", &[], 1.0).await;
    drop(conn);
    expect_metric(&alb, "hostalb_active_connections", &[], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_counts_from_the_last_answer_across_idle_pauses() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "idle_timeout_seconds = 1")).await;
    let (mut conn, first) = send(alb.listener("web"), &get("/one")).await;
    assert_eq!(first.status, 200, "{first:?}");
    // Idle past the serving state, not past the timeout: still open, and served.
    let _ = conn.read_for(Duration::from_millis(600)).await;
    assert!(!conn.is_closed(), "open before the idle timeout");
    let second = assert_open_after(&mut conn, &first, &get("/two")).await;
    assert_eq!(second.status, 200, "{second:?}");
    let answered = Instant::now();
    // Then closed by the idle timeout, a second after the last answer (not before).
    assert!(
        conn.wait_closed(scaled(ANSWER)).await,
        "closed by the idle timeout"
    );
    let after = answered.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed {after:?} after the last answer"
    );
    assert_eq!(backend.request_count(), 2);
    expect_metric(&alb, "hostalb_active_connections", &[], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_is_closed_at_the_idle_timeout() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "idle_timeout_seconds = 1")).await;
    let mut conn = hostalb_testkit::RawConn::connect(alb.listener("web"))
        .await
        .expect("connect");
    let opened = Instant::now();
    expect_metric(&alb, "hostalb_active_connections", &[], 1.0).await;
    assert!(
        conn.wait_closed(scaled(ANSWER)).await,
        "closed by the idle timeout"
    );
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed {after:?} after the connect"
    );
    assert!(
        conn.received().is_empty(),
        "closed quietly: {:?}",
        conn.received()
    );
    assert_eq!(backend.request_count(), 0);
    expect_metric(&alb, "hostalb_active_connections", &[], 0.0).await;
}
