//! The descriptor budget (`max_client_connections`): a flood of client connections is held
//! at the budget while descriptors stay for target connections, idle keep-alive clients
//! are closed first (oldest idle first) to admit new ones, a client mid-request keeps being
//! served, the default is derived from the raised descriptor limit, a reload applies to new
//! accepts, and accept errors are logged at most once a second.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, Conn, HostAlb, RawConn, eventually, scaled, try_eventually};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::bin;
use crate::errors::{forward_config, get, metric};

/// How long a test waits for an answer that should come at once.
const ANSWER: Duration = Duration::from_secs(5);

/// How long a test waits for the process to reach a state it should reach at once.
const SETTLE: Duration = Duration::from_secs(5);

/// Connections of a flood.
const FLOOD: usize = 200;

/// The configuration: a budget of `max` client connections, listener `web` forwarding to
/// `backend`.
fn config(max: Option<u32>, backend: SocketAddr) -> String {
    let key = max
        .map(|n| format!("max_client_connections = {n}\n"))
        .unwrap_or_default();
    format!(
        "{key}[admin]\naddress = \"127.0.0.1:0\"\n{}",
        forward_config(&[backend], "")
    )
}

/// A script that starts hostalb with its descriptor limits set by `ulimit`, one call per
/// item (`-n N` sets both limits), so a test controls the limits hostalb starts with.
fn limited_binary(dir: &Path, ulimits: &[&str]) -> PathBuf {
    let path = dir.join("hostalb-limited");
    let calls: String = ulimits.iter().map(|u| format!("ulimit {u}\n")).collect();
    let script = format!("#!/bin/sh\nset -e\n{calls}exec {} \"$@\"\n", bin());
    std::fs::write(&path, script).expect("write the wrapper script");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    path
}

/// Descriptors the process holds now.
fn fd_count(alb: &HostAlb) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", alb.pid()))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("reading /proc/{}/fd: {e}", alb.pid()))
}

/// CPU seconds the process has used (user + system).
fn cpu_seconds(alb: &HostAlb) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", alb.pid())).expect("stat");
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let after = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks / hz
}

async fn metric_value(alb: &HostAlb, name: &str) -> f64 {
    let (status, text) = alb.admin_get("/metrics").await;
    assert_eq!(status, 200, "{text}");
    metric(&text, name, &[])
}

/// Waits until `pred` holds for metric `name`; panics with its value otherwise.
async fn wait_metric(alb: &HostAlb, name: &str, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let waited = try_eventually(SETTLE, async || pred(metric_value(alb, name).await)).await;
    let value = metric_value(alb, name).await;
    assert!(waited.is_ok(), "{name} should be {what}, is {value}");
    value
}

/// Opens `n` connections that each send the start of a request head and no more: each is
/// mid-request for hostalb (never idle) until the header timeout.
async fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("flood connection {i}: {e}"));
        s.write_all(b"GET /flood HTTP/1.1\r\n")
            .await
            .expect("send a partial head");
        conns.push(s);
    }
    conns
}

/// Keep-alive clients that made one request each and now wait idle.
async fn idle_clients(addr: SocketAddr, n: usize, tag: &str) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Conn::connect(addr).await.expect("connect");
        let resp = c.get(&format!("/{tag}/{i}")).await.expect("answer");
        assert_eq!(resp.status, 200, "{resp:?}");
        conns.push(c);
    }
    conns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_held_at_the_budget_while_targets_still_get_connections() {
    let backend = Backend::start("a").await;
    // 160 descriptors: 200 flooding clients would exhaust them without the budget.
    let dir = tempfile::tempdir().expect("temp dir");
    let alb = HostAlb::builder(limited_binary(dir.path(), &["-n 160"]))
        .config(config(Some(50), backend.addr()))
        .start()
        .await;
    let addr = alb.listener("web");
    assert_eq!(metric_value(&alb, "hostalb_max_client_connections").await, 50.0);

    // Baseline: one exchange done (a pooled target connection), no client connected.
    let (warm, resp) = crate::errors::send(addr, &get("/warm")).await;
    assert_eq!(resp.status, 200);
    drop(warm);
    wait_metric(&alb, "hostalb_active_connections", "0", |v| v == 0.0).await;
    let baseline = fd_count(&alb);

    // Five idle keep-alive clients, a client mid-use (its target answers in 6 s, and its
    // next request is already sent), and a client whose head has begun.
    let mut idle = idle_clients(addr, 5, "idle").await;
    let mut slow = RawConn::connect(addr).await.expect("connect");
    let delay = scaled(Duration::from_secs(6)).as_millis();
    slow.send(&[get(&format!("/delay/{delay}")), get("/after")].concat())
        .await
        .expect("send");
    let mut partial = RawConn::connect(addr).await.expect("connect");
    partial
        .send(b"GET /fresh HTTP/1.1\r\nHost: example.com\r\n")
        .await
        .expect("send");
    wait_metric(&alb, "hostalb_active_connections", "7", |v| v == 7.0).await;
    let target_connections = backend.connections();

    let flooding = flood(addr, FLOOD).await;
    // The budget fills: the idle clients are closed to make room, the rest of the flood
    // waits in the backlog.
    wait_metric(&alb, "hostalb_active_connections", "50", |v| v == 50.0).await;
    for (i, c) in idle.iter_mut().enumerate() {
        assert!(
            c.wait_closed(scaled(SETTLE)).await,
            "idle client {i} should be closed"
        );
    }
    wait_metric(&alb, "hostalb_budget_closed_connections_total", ">= 5", |v| {
        v >= 5.0
    })
    .await;
    wait_metric(&alb, "hostalb_budget_waits_total", ">= 1", |v| v >= 1.0).await;
    // Bounded: 50 clients, the one waiting for room, target connections, a margin.
    for _ in 0..5 {
        let fds = fd_count(&alb);
        assert!(fds <= baseline + 60, "{fds} descriptors, baseline {baseline}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric_value(&alb, "hostalb_active_connections").await, 50.0);

    // A request that needs a new target connection (the pooled one is busy with the slow
    // request) gets one: the budget left descriptors for it.
    assert_eq!(backend.in_flight(), 1, "the slow request is still at the target");
    partial.send(b"\r\n").await.expect("send");
    let fresh = partial.read_response(scaled(ANSWER)).await.expect("an answer");
    assert_eq!(fresh.status, 200, "{fresh:?}");
    assert!(
        backend.connections() > target_connections,
        "the target got a new connection ({} before, {} now)",
        target_connections,
        backend.connections()
    );
    assert!(backend.requests().iter().any(|r| r.target == "/fresh"));

    // The client mid-use is answered, and its next request too.
    let first = slow
        .read_response(scaled(ANSWER) + scaled(Duration::from_secs(6)))
        .await
        .expect("the slow answer");
    assert_eq!(first.status, 200, "{first:?}");
    let second = slow.read_response(scaled(ANSWER)).await.expect("the next answer");
    assert_eq!(second.status, 200, "{second:?}");

    // The flood ends: everything it held is given back.
    drop(flooding);
    drop((slow, partial, idle));
    wait_metric(&alb, "hostalb_active_connections", "0", |v| v == 0.0).await;
    let settled = try_eventually(SETTLE, async || fd_count(&alb).abs_diff(baseline) <= 5).await;
    assert!(
        settled.is_ok(),
        "descriptors back to {baseline} ± 5, are {}",
        fd_count(&alb)
    );
    // And hostalb serves as before.
    let (_, resp) = crate::errors::send(addr, &get("/after-flood")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_clients_are_closed_oldest_first_to_admit_new_ones() {
    let backend = Backend::start("a").await;
    let alb = HostAlb::start(bin(), &config(Some(50), backend.addr())).await;
    let addr = alb.listener("web");
    // Five generations of ten idle clients, each generation idle since a later instant.
    let mut old: Vec<(usize, Conn)> = Vec::new();
    for generation in 0..5 {
        for c in idle_clients(addr, 10, &format!("gen{generation}")).await {
            old.push((generation, c));
        }
        // Well apart on hostalb's coarse clock (50 ms ticks).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_metric(&alb, "hostalb_active_connections", "50", |v| v == 50.0).await;

    // Twenty new clients, each served at once.
    let mut new = Vec::new();
    for i in 0..20 {
        let mut c = Conn::connect(addr).await.expect("connect");
        let resp = c.get(&format!("/new/{i}")).await.expect("answer");
        assert_eq!(resp.status, 200, "{resp:?}");
        new.push(c);
    }
    let closed_count = wait_metric(&alb, "hostalb_budget_closed_connections_total", ">= 20", |v| {
        v >= 20.0
    })
    .await as usize;
    // In nginx's batches: a few more than needed, never many.
    assert!(closed_count <= 20 + 7, "{closed_count} closed");
    assert_eq!(metric_value(&alb, "hostalb_budget_waits_total").await, 0.0);
    eventually(SETTLE, async || {
        old.iter().filter(|(_, c)| c.is_closed()).count() == closed_count
    })
    .await;
    assert!(new.iter().all(|c| !c.is_closed()), "the new clients stay");
    // Oldest first: no closed client is younger than an open one.
    let youngest_closed = old.iter().filter(|(_, c)| c.is_closed()).map(|(g, _)| *g).max();
    let oldest_open = old.iter().filter(|(_, c)| !c.is_closed()).map(|(g, _)| *g).min();
    assert!(
        youngest_closed <= oldest_open,
        "closed up to generation {youngest_closed:?}, open from {oldest_open:?}"
    );
    assert!(metric_value(&alb, "hostalb_active_connections").await <= 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_budget_for_new_accepts() {
    let backend = Backend::start("a").await;
    let alb = HostAlb::start(bin(), &config(Some(5), backend.addr())).await;
    let addr = alb.listener("web");
    let first = idle_clients(addr, 5, "first").await;
    alb.write_config(&config(Some(10), backend.addr()));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(metric_value(&alb, "hostalb_max_client_connections").await, 10.0);
    let second = idle_clients(addr, 5, "second").await;
    assert_eq!(metric_value(&alb, "hostalb_active_connections").await, 10.0);
    assert_eq!(
        metric_value(&alb, "hostalb_budget_closed_connections_total").await,
        0.0
    );
    assert!(first.iter().chain(&second).all(|c| !c.is_closed()));

    // Lowered: held connections stay; a new one gets room from the oldest idle.
    alb.write_config(&config(Some(8), backend.addr()));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(metric_value(&alb, "hostalb_active_connections").await, 10.0);
    let third = idle_clients(addr, 1, "third").await;
    assert!(third.iter().all(|c| !c.is_closed()));
    let held = wait_metric(&alb, "hostalb_active_connections", "<= 8", |v| v <= 8.0).await;
    assert!(held >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_budget_comes_from_the_raised_descriptor_limit() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Soft 512, hard 1000: hostalb raises the soft limit to 1000 and derives
    // (1000 - 256) / 2 = 372 (from 512 unraised it would be 128).
    let alb = HostAlb::builder(limited_binary(dir.path(), &["-S -n 512", "-H -n 1000"]))
        .config(config(None, backend.addr()))
        .start()
        .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", alb.pid())).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let words: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(&words[3..5], ["1000", "1000"], "{open_files}");
    assert_eq!(metric_value(&alb, "hostalb_max_client_connections").await, 372.0);
    let (_, resp) = crate::errors::send(alb.listener("web"), &get("/")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_are_logged_at_most_once_a_second_and_hostalb_keeps_answering() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A budget far above the 64 descriptors: the flood runs the process out of them.
    let alb = HostAlb::builder(limited_binary(dir.path(), &["-n 64"]))
        .config(config(Some(1000), backend.addr()))
        .start()
        .await;
    let addr = alb.listener("web");
    assert!(
        alb.wait_stderr("leaves target connections too few descriptors", SETTLE)
            .await,
        "a budget beyond the descriptor limit is warned about"
    );
    // A client with a pooled target connection behind it.
    let mut existing = Conn::connect(addr).await.expect("connect");
    assert_eq!(existing.get("/before").await.expect("answer").status, 200);

    let started = Instant::now();
    let mut flooding = Vec::new();
    for _ in 0..100 {
        flooding.push(TcpStream::connect(addr).await.expect("connect"));
    }
    assert!(
        alb.wait_stderr("accept failed", SETTLE).await,
        "hostalb ran out of descriptors"
    );
    // Out of descriptors for 3 s: the accept loop waits instead of spinning (a spinning loop
    // would use about as much CPU time as the wall time).
    let cpu_before = cpu_seconds(&alb);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_seconds(&alb) - cpu_before;
    assert!(cpu < 1.5, "{cpu:.2} s of CPU in 3 s out of descriptors");
    // The client already connected is still served.
    let during = existing.get("/during").await.expect("answer");
    assert_eq!(during.status, 200, "{during:?}");
    let elapsed = started.elapsed().as_secs_f64();
    let logged = alb
        .stderr_text()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (logged as f64) <= elapsed + 2.0,
        "{logged} accept error lines in {elapsed:.1} s"
    );

    // The flood ends: hostalb accepts again.
    drop(flooding);
    let recovered = try_eventually(SETTLE, async || {
        let Ok(mut c) = Conn::connect(addr).await else {
            return false;
        };
        matches!(c.get("/after").await, Ok(r) if r.status == 200)
    })
    .await;
    assert!(recovered.is_ok(), "hostalb answers new clients after the flood");
    assert!(metric_value(&alb, "hostalb_rejected_connections_total").await >= 1.0);
}
