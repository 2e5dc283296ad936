//! How a target group spreads requests over its targets: round robin, least outstanding
//! requests (a slow target gets fewer), weighted random, and slow start (a newly healthy
//! target's share ramps up over the slow-start duration).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, Client, HostAlb, LoadGen, scaled, try_eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::common::start;
use crate::health::{
    STATE_PATIENCE, describe, fast_checks, group, health_in, reload, routed, wait_state, web,
};

/// Counts per backend name.
fn tally(names: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in names {
        *counts.entry(n.clone()).or_insert(0) += 1;
    }
    counts
}

/// `n` requests one after the other; the backend that answered each.
async fn sequence(client: &Client, alb: &HostAlb, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(routed(client, alb, &format!("/seq/{i}")).await);
    }
    out
}

/// A target that answers every request after `delay`, over keep-alive connections, and
/// counts what it served.
struct SlowTarget {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for SlowTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowTarget {
    async fn start(delay: Duration) -> SlowTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            // Owning the connections here means that aborting this task closes them all.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            conns.spawn(serve_slowly(stream, delay, counter.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        SlowTarget { addr, served, task }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Answers each request head (requests here have no body) after `delay`.
async fn serve_slowly(mut stream: TcpStream, delay: Duration, served: Arc<AtomicUsize>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        let Some(end) = end else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        buf.drain(..end + 4);
        tokio::time::sleep(delay).await;
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nx-backend: slow\r\n\r\nslow";
        // Counted before the write: the client may read the answer (and the test the
        // count) before this task runs again after the write.
        served.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_takes_the_targets_in_turn() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let targets: Vec<SocketAddr> = backends.iter().map(Backend::addr).collect();
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group(
            "app",
            &targets,
            "algorithm = \"round_robin\"\nhealth_check = { enabled = false }"
        )
    ))
    .await;
    let seq = sequence(&Client::new(), &alb, 30).await;
    let counts = tally(&seq);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 10), "even: {counts:?}");
    assert!(
        (3..seq.len()).all(|i| seq[i] == seq[i - 3]),
        "the targets come in a fixed turn: {seq:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_random_spreads_requests_uniformly_at_random() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let targets: Vec<SocketAddr> = backends.iter().map(Backend::addr).collect();
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group(
            "app",
            &targets,
            "algorithm = \"weighted_random\"\nhealth_check = { enabled = false }"
        )
    ))
    .await;
    // 450 picks among 3: 150 each on average, standard deviation 10; 90..=210 is six
    // deviations either side.
    let seq = sequence(&Client::new(), &alb, 450).await;
    let counts = tally(&seq);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|n| (90..=210).contains(n)),
        "roughly even: {counts:?}"
    );
    // A random pick repeats the previous target a third of the time; a turn never does
    // (449 transitions without a repeat: probability (2/3)^449).
    assert!(
        seq.windows(2).any(|w| w[0] == w[1]),
        "picks look like a fixed turn, not random: {:?}",
        &seq[..30]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_requests_gives_a_slow_target_far_fewer_requests() {
    let fast = Backend::start("fast").await;
    let slow = SlowTarget::start(Duration::from_millis(500)).await;
    let alb = start(&format!(
        "{}{}",
        web("app", ""),
        group(
            "app",
            &[fast.addr(), slow.addr],
            "algorithm = \"least_outstanding_requests\"\nhealth_check = { enabled = false }"
        )
    ))
    .await;
    let load = LoadGen::builder(alb.url("web", "/lor"))
        .concurrency(6)
        .max_duration(scaled(Duration::from_secs(20)))
        .start();
    let enough = try_eventually(Duration::from_secs(15), async || load.done() >= 200).await;
    let report = load.stop().await;
    assert!(enough.is_ok(), "the load made too few requests: {report:?}");
    assert!(report.all_ok(), "{report:?}");
    // Round robin would give the slow target half. Least outstanding requests sends it a
    // request only while it has no more in flight than the fast one: with 6 clients at most
    // about 3 at a time, each taking 0.5 s, against hundreds answered by the fast target.
    let slow_share = slow.served() as f64 / report.total as f64;
    assert!(
        slow_share < 0.25,
        "the slow target got {} of {} requests: {report:?}",
        slow.served(),
        report.total
    );
    assert!(
        fast.request_count() as u64 + slow.served() as u64 >= report.total,
        "{report:?}"
    );
}

/// The share of `who` among `picks` whose time falls in `window` (seconds), and how many
/// picks fell in it.
fn share(picks: &[(f64, String)], window: (f64, f64), who: &str) -> (f64, usize) {
    let inside: Vec<&String> = picks
        .iter()
        .filter(|(t, _)| *t >= window.0 && *t < window.1)
        .map(|(_, n)| n)
        .collect();
    let hits = inside.iter().filter(|n| n.as_str() == who).count();
    let n = inside.len();
    (if n == 0 { f64::NAN } else { hits as f64 / n as f64 }, n)
}

/// Requests one after the other until `until` seconds after `t0`; (seconds after `t0`,
/// backend) for each.
async fn picks_until(client: &Client, alb: &HostAlb, t0: Instant, until: f64) -> Vec<(f64, String)> {
    let mut picks = Vec::new();
    // Bounded by time, and by count in case requests become very fast.
    for i in 0..100_000 {
        let t = t0.elapsed().as_secs_f64();
        if t >= until {
            break;
        }
        let who = routed(client, alb, &format!("/ramp/{i}")).await;
        picks.push((t, who));
    }
    picks
}

/// Waits until the target at `addr` of `group` is healthy; returns the latest instant it is
/// known not to have been healthy yet (no earlier than `since`). Slow start begins after it.
async fn healthy_after(alb: &HostAlb, group: &str, addr: SocketAddr, since: Instant) -> Instant {
    let mut not_yet = since;
    let mut last = serde_json::Value::Null;
    let reached = try_eventually(STATE_PATIENCE, async || {
        let asked = Instant::now();
        last = describe(alb, group).await;
        let healthy = health_in(&last, addr).is_some_and(|h| h.state == "healthy");
        if !healthy {
            not_yet = asked;
        }
        healthy
    })
    .await;
    assert!(reached.is_ok(), "{addr} never became healthy: {last:#}");
    not_yet
}

/// The highest share a target in slow start may show over `n` requests whose weight was at
/// most `weight` (round robin gives it at most half of that): four standard deviations
/// above, and never as high as the even half of round robin without slow start.
fn ramp_bound(weight: f64, n: usize) -> f64 {
    let p = weight / 2.0;
    (p + 4.0 * (p * (1.0 - p) / n as f64).sqrt()).min(0.42)
}

/// A listener and group `app` with round robin, 3 s slow start and fast checks.
fn slow_start_config(targets: &[SocketAddr], algorithm: &str) -> String {
    format!(
        "{}{}",
        web("app", ""),
        group(
            "app",
            targets,
            &format!(
                "algorithm = \"{algorithm}\"\nslow_start_seconds = 3\n{}",
                fast_checks(2, 2)
            )
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_newly_healthy_targets_share_and_restarts_after_a_failure() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&slow_start_config(&[a.addr()], "round_robin")).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    let client = Client::new();

    // b joins while a is serving: its share starts near 0 and reaches a full half after 3 s.
    let asked = Instant::now();
    reload(&alb, &slow_start_config(&[a.addr(), b.addr()], "round_robin")).await;
    let t0 = healthy_after(&alb, "app", b.addr(), asked).await;
    let picks = picks_until(&client, &alb, t0, 4.6).await;
    let (early, n_early) = share(&picks, (0.0, 1.2), "b");
    let (late, n_late) = share(&picks, (3.6, 4.6), "b");
    assert!(
        n_early >= 30 && n_late >= 20,
        "too few requests to measure: {n_early} in the first 1.2 s, {n_late} after the ramp"
    );
    // In its first 1.2 s b's weight is at most 0.4 (its share half of that); with no slow
    // start, round robin would give it exactly half.
    assert!(
        early < ramp_bound(0.4, n_early),
        "b's share in its first 1.2 s of slow start: {early:.2} of {n_early}"
    );
    assert!(
        (0.4..=0.6).contains(&late),
        "b's share once the ramp is over: {late:.2} of {n_late}"
    );

    // b fails and recovers: it ramps up again from the start.
    b.set_health_status(503);
    wait_state(&alb, "app", b.addr(), "unhealthy").await;
    let asked = Instant::now();
    b.set_health_status(200);
    let t1 = healthy_after(&alb, "app", b.addr(), asked).await;
    let picks = picks_until(&client, &alb, t1, 1.2).await;
    let (again, n_again) = share(&picks, (0.0, 1.2), "b");
    assert!(n_again >= 30, "too few requests to measure: {n_again}");
    assert!(
        again < ramp_bound(0.4, n_again),
        "after recovering, b's share in its first 1.2 s: {again:.2} of {n_again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_targets_of_an_empty_group_get_no_slow_start() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&slow_start_config(&[a.addr(), b.addr()], "round_robin")).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_state(&alb, "app", b.addr(), "healthy").await;
    let t0 = Instant::now();
    let picks = picks_until(&Client::new(), &alb, t0, 1.0).await;
    let (share_a, n) = share(&picks, (0.0, 1.0), "a");
    assert!(n >= 20, "too few requests to measure: {n}");
    // Registered together into an empty group, neither enters slow start: round robin
    // alternates from the first request.
    assert!(
        (0.4..=0.6).contains(&share_a),
        "a's share in the first second: {share_a:.2} of {n}; b's: {:.2}",
        1.0 - share_a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_requests_has_no_slow_start() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |targets: &[SocketAddr]| slow_start_config(targets, "least_outstanding_requests");
    let alb = start(&config(&[a.addr()])).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    reload(&alb, &config(&[a.addr(), b.addr()])).await;
    wait_state(&alb, "app", b.addr(), "healthy").await;
    let t0 = Instant::now();
    let picks = picks_until(&Client::new(), &alb, t0, 1.0).await;
    let (share_b, n) = share(&picks, (0.0, 1.0), "b");
    assert!(n >= 20, "too few requests to measure: {n}");
    // One request at a time: both targets always have none outstanding, and ties take
    // turns.
    assert!(
        (0.4..=0.6).contains(&share_b),
        "b's share in its first second: {share_b:.2} of {n}"
    );
}
