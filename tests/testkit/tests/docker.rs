//! The Docker test image and [`TestContainer`] against the real engine: every test here
//! needs Docker and the test image, and fails (never skips) without them, saying how to get
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hostalb_testkit::ParsedResponse;
use hostalb_testkit::docker::{
    ContainerReply, ContainerSpec, OWNER_LABEL, TEST_IMAGE, TEST_LABEL, TestContainer, docker_cli,
    docker_host, docker_ok, http_get, http_request, remove_leftover_containers, require_docker, wait_http,
};

/// Bound on one request.
const T: Duration = Duration::from_secs(5);

/// Bound on a container's first answer after `docker run` (or `restart`, `unpause`).
const READY: Duration = Duration::from_secs(20);

fn reply(r: &ParsedResponse) -> ContainerReply {
    r.container_reply()
        .unwrap_or_else(|| panic!("not a test backend answer: {r:?}"))
}

/// A backend container publishing port 80, answering once this returns.
fn backend(name: &str, env: &[(&str, &str)]) -> (TestContainer, SocketAddr) {
    require_docker();
    let mut spec = ContainerSpec::new(name).publish(80);
    for (k, v) in env {
        spec = spec.env(*k, *v);
    }
    let c = TestContainer::run(spec);
    let addr = c.wait_http(80, "/health", READY);
    (c, addr)
}

/// A request written before the test goes on; its response is read later.
struct Pending {
    stream: TcpStream,
}

impl Pending {
    fn send(addr: SocketAddr, target: &str) -> Pending {
        let mut stream = TcpStream::connect_timeout(&addr, T).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        Pending { stream }
    }

    /// Everything received until the peer closes or `patience` passes.
    fn read_all(mut self, patience: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(patience)).unwrap();
        let deadline = Instant::now() + patience;
        let mut received = Vec::new();
        let mut chunk = [0u8; 16384];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            if hostalb_testkit::parse_responses(&received)
                .first()
                .is_some_and(|r| r.complete)
            {
                break;
            }
        }
        received
    }
}

/// Runs in a child process with an engine that cannot answer (see
/// `without_docker_a_test_fails_with_instructions`); here it simply passes.
#[test]
fn require_docker_passes_here() {
    require_docker();
}

#[test]
fn without_docker_a_test_fails_with_instructions() {
    require_docker();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "require_docker_passes_here",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/hostalb/docker.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "it must fail, not pass or skip:\n{text}");
    for needle in [
        "no Docker engine answers at DOCKER_HOST=unix:///nonexistent/hostalb/docker.sock",
        "scripts/test",
        "eval \"$(scripts/docker-engine)\"",
        "scripts/docker-test-image",
        TEST_IMAGE,
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn image_answers_with_its_name_and_port() {
    let (named, addr) = backend("named", &[("BACKEND_NAME", "blue-1")]);
    let r = http_get(addr, "/some/path?x=1", T).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("blue-1"));
    let body = reply(&r);
    assert_eq!(body.backend, "blue-1");
    assert_eq!(body.port, 80, "the container port, not the host port");
    assert_eq!(body.target, "/some/path?x=1");
    assert_eq!(body.hostname, named.inspect("{{.Config.Hostname}}"));
    assert_eq!(body.header("host"), Some(addr.to_string().as_str()));

    // Without BACKEND_NAME the name is the hostname: the short container id.
    let (plain, addr) = backend("plain", &[]);
    let body = reply(&http_get(addr, "/", T).unwrap());
    assert_eq!(body.backend, body.hostname);
    assert!(
        plain.id().starts_with(&body.hostname),
        "{} vs {}",
        plain.id(),
        body.hostname
    );
    assert_ne!(named.host_port(80), plain.host_port(80));
}

#[test]
fn container_address_answers_on_the_container_port() {
    let (c, _) = backend("by-ip", &[("BACKEND_NAME", "ip-1")]);
    let ip = c.ip();
    assert!(ip.is_ipv4(), "{ip}");
    let r = http_get(SocketAddr::new(ip, 80), "/direct", T).unwrap();
    assert_eq!(reply(&r).backend, "ip-1");
    assert_eq!(reply(&r).port, 80);
}

#[test]
fn health_toggles_at_runtime() {
    let (_c, addr) = backend("health", &[("HEALTH_STATUS", "503")]);
    assert_eq!(http_get(addr, "/health", T).unwrap().status, 503);
    assert_eq!(
        http_get(addr, "/", T).unwrap().status,
        200,
        "only /health follows it"
    );
    let set = http_request(addr, "POST", "/admin/health/200", T).unwrap();
    assert_eq!((set.status, reply(&set).health), (200, 200));
    assert_eq!(http_get(addr, "/health", T).unwrap().status, 200);
    assert_eq!(
        http_request(addr, "POST", "/admin/health/500", T).unwrap().status,
        200
    );
    assert_eq!(http_get(addr, "/health", T).unwrap().status, 500);
    assert_eq!(http_get(addr, "/status/418", T).unwrap().status, 418);
}

#[test]
fn extra_ports_are_served_on_their_own_host_ports() {
    require_docker();
    let c = TestContainer::run(
        ContainerSpec::new("multi")
            .publish(80)
            .publish(8080)
            .publish(9090)
            .env("EXTRA_PORTS", "8080,9090")
            .env("BACKEND_NAME", "multi"),
    );
    let mut host_ports = Vec::new();
    for port in [80, 8080, 9090] {
        let addr = c.wait_http(port, "/", READY);
        let body = reply(&http_get(addr, "/", T).unwrap());
        assert_eq!((body.backend.as_str(), body.port), ("multi", port));
        host_ports.push(addr.port());
    }
    host_ports.sort_unstable();
    host_ports.dedup();
    assert_eq!(host_ports.len(), 3, "one host port per container port");
    assert!(c.try_host_port(7070).is_err(), "7070 is not published");
}

#[test]
fn stop_lets_the_request_in_flight_finish_and_exits_zero() {
    let (c, addr) = backend("stop", &[]);
    let pending = Pending::send(addr, "/delay/1500");
    // The request reaches the container well within the stop grace period (300 ms).
    let took = c.stop(10);
    let received = pending.read_all(T);
    let responses = hostalb_testkit::parse_responses(&received);
    assert_eq!(responses.len(), 1, "{}", String::from_utf8_lossy(&received));
    assert_eq!(responses[0].status, 200);
    assert!(responses[0].closes(), "answered with Connection: close");
    assert_eq!(reply(&responses[0]).target, "/delay/1500");
    let state = c.state();
    assert_eq!((state.status.as_str(), state.exit_code), ("exited", 0));
    assert!(
        took >= Duration::from_millis(1000),
        "waited for the request: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "not killed after the timeout: {took:?}"
    );
    assert!(c.logs().contains("received SIGTERM"), "{}", c.logs());
    assert!(
        c.try_host_port(80).is_err(),
        "a stopped container publishes nothing"
    );
}

#[test]
fn stop_of_an_idle_backend_is_prompt() {
    let (c, _) = backend("stop-idle", &[]);
    let took = c.stop(10);
    assert_eq!(c.state().exit_code, 0);
    assert!(took < Duration::from_secs(3), "{took:?}");
    eprintln!("docker stop of an idle test backend: {took:?}");
}

/// During the grace period after SIGTERM the backend still serves new connections, each
/// answer telling the client to close.
#[test]
fn new_connections_are_served_during_the_grace_period() {
    let (c, addr) = backend("grace", &[("STOP_GRACE_MS", "3000")]);
    let c = Arc::new(c);
    let stopper = {
        let c = Arc::clone(&c);
        thread::spawn(move || c.stop(10))
    };
    let deadline = Instant::now() + T;
    while !c.logs().contains("received SIGTERM") {
        assert!(Instant::now() < deadline, "no SIGTERM seen: {}", c.logs());
        thread::sleep(Duration::from_millis(20));
    }
    let r = http_get(addr, "/late", T).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.closes());
    let took = stopper.join().unwrap();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert_eq!(c.state().exit_code, 0);
}

#[test]
fn kill_ends_it_at_once_and_loses_the_request_in_flight() {
    let (c, addr) = backend("kill", &[]);
    let pending = Pending::send(addr, "/delay/3000");
    // The request is in the container before the kill (its own answer comes much later).
    assert_eq!(http_get(addr, "/", T).unwrap().status, 200);
    let start = Instant::now();
    c.kill();
    let received = pending.read_all(T);
    assert!(
        hostalb_testkit::parse_responses(&received).is_empty(),
        "no answer from a killed container: {}",
        String::from_utf8_lossy(&received)
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    let state = c.state();
    assert!(!state.running);
    assert_eq!(state.exit_code, 137, "SIGKILL");
    assert!(c.try_host_port(80).is_err());
}

#[test]
fn restart_answers_again_on_its_published_port() {
    let (c, addr) = backend("restart", &[("BACKEND_NAME", "phoenix")]);
    let before = reply(&http_get(addr, "/", T).unwrap());
    c.restart();
    let state = c.state();
    assert!(state.running && !state.paused, "{state:?}");
    // The host port may or may not change: whichever it is now answers.
    let after_port = c.host_port(80);
    let addr = c.wait_http(80, "/", READY);
    assert_eq!(addr.port(), after_port);
    let after = reply(&http_get(addr, "/", T).unwrap());
    assert_eq!(after.backend, "phoenix");
    assert_eq!(after.hostname, before.hostname, "the same container");
    eprintln!(
        "docker restart: host port {} -> {after_port}",
        before.header("host").unwrap_or_default()
    );
}

#[test]
fn pause_holds_requests_until_unpause() {
    let (c, addr) = backend("pause", &[]);
    c.pause();
    let state = c.state();
    assert!(state.paused && state.running, "{state:?}");
    let err = http_get(addr, "/", Duration::from_millis(500));
    assert!(err.is_err(), "a paused container does not answer: {err:?}");
    // A request sent while paused is answered once unpaused.
    let held = Pending::send(addr, "/held");
    c.unpause();
    let received = held.read_all(T);
    let responses = hostalb_testkit::parse_responses(&received);
    assert_eq!(responses.len(), 1, "{}", String::from_utf8_lossy(&received));
    assert_eq!(reply(&responses[0]).target, "/held");
    assert!(!c.state().paused);
    assert_eq!(http_get(addr, "/", T).unwrap().status, 200);
}

#[test]
fn names_are_unique_labelled_and_removed_on_drop() {
    require_docker();
    let spec = ContainerSpec::new("same name").label("hostalb.target-group", "blue");
    let a = TestContainer::run(spec.clone());
    let b = TestContainer::run(spec);
    assert_ne!(a.name(), b.name());
    for c in [&a, &b] {
        assert!(c.name().starts_with("hostalb-test-same-name-"), "{}", c.name());
        assert_eq!(c.inspect("{{.Name}}"), format!("/{}", c.name()));
        assert_eq!(
            c.inspect(&format!("{{{{index .Config.Labels \"{TEST_LABEL}\"}}}}")),
            "1"
        );
        assert_eq!(
            c.inspect(&format!("{{{{index .Config.Labels \"{OWNER_LABEL}\"}}}}")),
            std::process::id().to_string()
        );
        assert_eq!(
            c.inspect("{{index .Config.Labels \"hostalb.target-group\"}}"),
            "blue"
        );
    }
    let id = a.id().to_owned();
    drop(a);
    assert!(docker_ok(["inspect", id.as_str()]).is_err(), "removed on drop");
    b.rm();
    assert!(docker_ok(["inspect", b.id()]).is_err(), "removed by rm");
    drop(b);
}

#[test]
fn leftovers_of_dead_test_processes_are_swept() {
    require_docker();
    let mine = TestContainer::run(ContainerSpec::new("kept"));
    // A pid that has exited: its containers are leftovers.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let name = format!("hostalb-test-leftover-{}-{dead_pid}", std::process::id());
    let owner = format!("{OWNER_LABEL}={dead_pid}");
    let test = format!("{TEST_LABEL}=1");
    docker_ok([
        "create", "--name", &name, "--label", &test, "--label", &owner, TEST_IMAGE,
    ])
    .unwrap();
    let removed = remove_leftover_containers();
    assert!(removed >= 1, "{removed}");
    assert!(
        docker_ok(["inspect", name.as_str()]).is_err(),
        "the leftover is gone"
    );
    assert!(
        docker_ok(["inspect", mine.id()]).is_ok(),
        "a live test's container stays"
    );
}

#[test]
fn failed_run_leaves_nothing_behind() {
    require_docker();
    let err =
        TestContainer::try_run(ContainerSpec::new("broken").arg("--entrypoint=/nonexistent")).unwrap_err();
    assert!(err.contains("docker run"), "{err}");
    let leftovers = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label={OWNER_LABEL}={}", std::process::id()),
        "--filter",
        "name=hostalb-test-broken-",
    ])
    .unwrap();
    assert_eq!(leftovers, "", "the created container was removed");
}

#[test]
fn docker_cli_reaches_the_engine_of_docker_host() {
    require_docker();
    let out = docker_cli(["version", "--format", "{{.Server.Version}}"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(!docker_host().is_empty());
    let missing = docker_cli(["inspect", "hostalb-test-no-such-container"]);
    assert!(!missing.status.success());
}

/// From `docker run` returning to the first HTTP answer through the published port.
#[test]
fn start_to_first_answer_is_prompt() {
    require_docker();
    let mut runs = Vec::new();
    let mut answers = Vec::new();
    for i in 0..5 {
        let start = Instant::now();
        let c = TestContainer::run(ContainerSpec::new(format!("timing-{i}")).publish(80));
        let ran = start.elapsed();
        let addr = c.host_addr(80);
        let answered = wait_http(addr, "/health", READY).unwrap();
        runs.push(ran);
        answers.push(answered);
    }
    runs.sort_unstable();
    answers.sort_unstable();
    eprintln!(
        "docker run: median {:?}, worst {:?}; run-to-first-answer: median {:?}, worst {:?}",
        runs[2], runs[4], answers[2], answers[4]
    );
    assert!(answers[4] < Duration::from_secs(5), "{answers:?}");
}
