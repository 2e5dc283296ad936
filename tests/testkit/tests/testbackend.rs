//! `hostalb-testbackend`, the program of the Docker test image, run here as a plain process
//! on ports the kernel picks: its answers, its handling of bad input, and its stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hostalb_testkit::docker::{ContainerReply, http_get, http_request};
use hostalb_testkit::{ParsedResponse, parse_responses, scaled};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_hostalb-testbackend");
const T: Duration = Duration::from_secs(5);

/// The backend running as a child process; killed when dropped.
struct Running {
    child: Child,
    ports: Vec<u16>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    /// Starts it with `PORT=0` and `env`, and reads the ports it listens on.
    fn start(env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(BIN);
        command
            .env("PORT", "0")
            .env_remove("EXTRA_PORTS")
            .env_remove("BACKEND_NAME")
            .env_remove("HEALTH_STATUS")
            .env_remove("STOP_GRACE_MS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Running {
            child,
            ports: Vec::new(),
            stderr: rx,
        };
        let line = running.wait_line("listening on 0.0.0.0 ports");
        let list = line.rsplit(' ').next().unwrap();
        running.ports = list.split(',').map(|p| p.parse().unwrap()).collect();
        running
    }

    fn addr(&self) -> SocketAddr {
        self.addr_of(0)
    }

    fn addr_of(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// The next stderr line that contains `needle` (bounded).
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + scaled(T);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with {needle:?}: {e}"),
            }
        }
    }

    /// Waits for the exit (bounded).
    fn wait_exit(&mut self, patience: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let deadline = start + scaled(patience);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(Instant::now() < deadline, "still running after {patience:?}");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection with bounded reads.
struct Raw {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, T).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        Raw {
            stream,
            received: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until `n` whole responses arrived in total, or the peer closed, or `patience`.
    fn read_responses(&mut self, n: usize, patience: Duration) -> Vec<ParsedResponse> {
        let deadline = Instant::now() + scaled(patience);
        let mut chunk = [0u8; 16384];
        while Instant::now() < deadline {
            let got = parse_responses(&self.received);
            if got.len() >= n && got.iter().all(|r| r.complete) {
                return got;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => self.received.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        parse_responses(&self.received)
    }

    /// Whether the peer closes within `patience`.
    fn closed_within(&mut self, patience: Duration) -> bool {
        let deadline = Instant::now() + scaled(patience);
        let mut chunk = [0u8; 16384];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(k) => self.received.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn reply(r: &ParsedResponse) -> ContainerReply {
    r.container_reply()
        .unwrap_or_else(|| panic!("not a test backend answer: {r:?}"))
}

#[test]
fn answers_json_with_its_name_port_and_request() {
    let b = Running::start(&[("BACKEND_NAME", "alpha")]);
    let mut c = Raw::connect(b.addr());
    c.send(b"POST /some/path?q=1 HTTP/1.1\r\nHost: example\r\nX-Test: yes\r\nContent-Length: 5\r\n\r\nhello");
    let r = &c.read_responses(1, T)[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("alpha"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(!r.closes());
    let body = reply(r);
    assert_eq!(body.backend, "alpha");
    assert!(!body.hostname.is_empty());
    assert_eq!(body.port, b.ports[0]);
    assert_eq!(body.method, "POST");
    assert_eq!(body.target, "/some/path?q=1");
    assert_eq!(body.version, "HTTP/1.1");
    assert_eq!(body.body_len, 5);
    assert_eq!(body.health, 200);
    assert_eq!(
        body.headers,
        vec![
            ("Host".to_owned(), "example".to_owned()),
            ("X-Test".to_owned(), "yes".to_owned()),
            ("Content-Length".to_owned(), "5".to_owned()),
        ]
    );
    assert_eq!(body.header("x-test"), Some("yes"));
}

#[test]
fn name_defaults_to_the_hostname() {
    let b = Running::start(&[]);
    let r = http_get(b.addr(), "/", T).unwrap();
    let body = reply(&r);
    assert_eq!(body.backend, body.hostname);
    assert_eq!(r.header("x-backend"), Some(body.hostname.as_str()));
}

#[test]
fn keep_alive_pipelining_and_bodies() {
    let b = Running::start(&[("BACKEND_NAME", "ka")]);
    let mut c = Raw::connect(b.addr());
    // Two pipelined requests in one write, the first with a chunked body.
    c.send(
        b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let got = c.read_responses(2, T);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(reply(&got[0]).target, "/a");
    assert_eq!(reply(&got[0]).body_len, 8);
    assert_eq!(reply(&got[1]).target, "/b");
    // The same connection serves a third request.
    c.send(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    let got = c.read_responses(3, T);
    assert_eq!(got.len(), 3);
    assert_eq!(reply(&got[2]).target, "/c");
    // Connection: close is honoured.
    c.send(b"GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let got = c.read_responses(4, T);
    assert!(got[3].closes());
    assert!(c.closed_within(T));
}

#[test]
fn http10_closes_unless_keep_alive() {
    let b = Running::start(&[]);
    let mut c = Raw::connect(b.addr());
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let got = c.read_responses(1, T);
    assert!(got[0].closes());
    assert_eq!(reply(&got[0]).version, "HTTP/1.0");
    assert!(c.closed_within(T));

    let mut c = Raw::connect(b.addr());
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let got = c.read_responses(1, T);
    assert_eq!(got[0].header("connection"), Some("keep-alive"));
    c.send(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(reply(&c.read_responses(2, T)[1]).target, "/again");
}

#[test]
fn health_status_and_delay() {
    let b = Running::start(&[("HEALTH_STATUS", "503")]);
    assert_eq!(http_get(b.addr(), "/health", T).unwrap().status, 503);
    let set = http_request(b.addr(), "POST", "/admin/health/200", T).unwrap();
    assert_eq!((set.status, reply(&set).health), (200, 200));
    assert_eq!(http_get(b.addr(), "/health", T).unwrap().status, 200);
    assert_eq!(http_get(b.addr(), "/any/prefix/health", T).unwrap().status, 200);
    let set = http_request(b.addr(), "PUT", "/admin/health/500", T).unwrap();
    assert_eq!(set.status, 200);
    assert_eq!(http_get(b.addr(), "/health", T).unwrap().status, 500);
    // Ordinary requests are still 200 whatever the health.
    assert_eq!(http_get(b.addr(), "/", T).unwrap().status, 200);

    assert_eq!(http_get(b.addr(), "/status/418", T).unwrap().status, 418);
    assert_eq!(http_get(b.addr(), "/api/status/503", T).unwrap().status, 503);
    let no_content = http_get(b.addr(), "/status/204", T).unwrap();
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("content-length"), None);
    assert!(no_content.body.is_empty());

    let start = Instant::now();
    let delayed = http_get(b.addr(), "/delay/300", T).unwrap();
    assert_eq!(delayed.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn head_has_no_body() {
    let b = Running::start(&[]);
    let mut c = Raw::connect(b.addr());
    c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert!(c.closed_within(T));
    let text = String::from_utf8_lossy(&c.received).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "a HEAD answer has no body: {text}");
}

/// Each bad request gets its status and a closed connection; the backend keeps serving.
#[test]
fn bad_input_is_refused_never_fatal() {
    let b = Running::start(&[]);
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(300));
    // (what, request, status, whether the connection is closed: framing errors close it, a
    // well-framed request with a bad parameter does not)
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        ("garbage", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(), 400, true),
        ("no version", b"GET /\r\n\r\n".to_vec(), 400, true),
        ("bad version", b"GET / HTTP/9.9\r\n\r\n".to_vec(), 400, true),
        (
            "CL and TE",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            true,
        ),
        (
            "two CL",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
            true,
        ),
        (
            "CL not a number",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na".to_vec(),
            400,
            true,
        ),
        (
            "TE not chunked",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            400,
            true,
        ),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            400,
            true,
        ),
        (
            "chunk longer than its size",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n".to_vec(),
            400,
            true,
        ),
        ("head too large", huge_header.into_bytes(), 431, true),
        ("too many headers", many_headers.into_bytes(), 431, true),
        (
            "status not a code",
            b"GET /status/abc HTTP/1.1\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "status out of range",
            b"GET /status/1000 HTTP/1.1\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "delay not a number",
            b"GET /delay/-5 HTTP/1.1\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "health by GET",
            b"GET /admin/health/500 HTTP/1.1\r\n\r\n".to_vec(),
            405,
            false,
        ),
        (
            "health out of range",
            b"POST /admin/health/42 HTTP/1.1\r\n\r\n".to_vec(),
            400,
            false,
        ),
    ];
    for (what, request, status, closes) in cases {
        let mut c = Raw::connect(b.addr());
        c.send(&request);
        let got = c.read_responses(1, T);
        assert_eq!(got.len(), 1, "{what}: {} responses", got.len());
        assert_eq!(got[0].status, status, "{what}: {:.300}", got[0].text());
        assert_eq!(got[0].closes(), closes, "{what}: Connection: close");
        assert_eq!(
            c.closed_within(Duration::from_millis(300)),
            closes,
            "{what}: closed"
        );
        assert!(reply(&got[0]).error.is_some(), "{what}: the reason is given");
        // The health status was not changed by a refused request.
        assert_eq!(http_get(b.addr(), "/health", T).unwrap().status, 200, "{what}");
    }
    // A client that sends half a request and goes away, another that closes at once.
    let mut c = Raw::connect(b.addr());
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
    drop(c);
    drop(Raw::connect(b.addr()));
    assert_eq!(http_get(b.addr(), "/", T).unwrap().status, 200);
    let mut b = b;
    assert!(b.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn extra_ports_each_answer_with_their_port() {
    let b = Running::start(&[("EXTRA_PORTS", "0, 0"), ("BACKEND_NAME", "multi")]);
    assert_eq!(b.ports.len(), 3);
    for i in 0..3 {
        let r = http_get(b.addr_of(i), "/", T).unwrap();
        assert_eq!(reply(&r).port, b.ports[i]);
        assert_eq!(reply(&r).backend, "multi");
    }
}

#[test]
fn bad_environment_exits_2_with_the_reason() {
    for (var, value, says) in [
        ("PORT", "http", "PORT"),
        ("EXTRA_PORTS", "80,x", "EXTRA_PORTS"),
        ("HEALTH_STATUS", "42", "HEALTH_STATUS"),
        ("STOP_GRACE_MS", "soon", "STOP_GRACE_MS"),
    ] {
        let out = Command::new(BIN)
            .env("PORT", "0")
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{var}={value}: {stderr}");
    }
}

/// SIGTERM: in-flight requests finish (answered with `Connection: close`), new
/// connections are still served during the grace period, then the listener closes, idle
/// connections close, and it exits 0.
#[test]
fn sigterm_drains_then_exits_zero() {
    let mut b = Running::start(&[("STOP_GRACE_MS", "400"), ("BACKEND_NAME", "drain")]);
    let mut idle = Raw::connect(b.addr());
    idle.send(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(idle.read_responses(1, T).len(), 1);
    let mut busy = Raw::connect(b.addr());
    busy.send(b"GET /delay/1000 HTTP/1.1\r\nHost: h\r\n\r\n");
    // The delayed request has reached the backend once the idle connection's next
    // request, sent after it, is answered (each connection has its own thread).
    idle.send(b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(idle.read_responses(2, T).len(), 2);

    let signalled = Instant::now();
    kill(b.pid(), Signal::SIGTERM).unwrap();
    b.wait_line("received SIGTERM");
    // Within the grace period a new connection is served, told to close.
    let during = http_get(b.addr(), "/during", T).unwrap();
    assert_eq!(during.status, 200);
    assert!(during.closes());
    // The idle keep-alive connection is closed once the grace period is over.
    assert!(idle.closed_within(Duration::from_secs(3)));
    assert!(signalled.elapsed() >= Duration::from_millis(400));
    // The in-flight request completes.
    let got = busy.read_responses(1, T);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 200);
    assert!(got[0].closes());
    assert_eq!(reply(&got[0]).target, "/delay/1000");
    let (status, _) = b.wait_exit(Duration::from_secs(6));
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
    assert!(
        TcpStream::connect_timeout(&b.addr(), T).is_err(),
        "no longer listening"
    );
}

#[test]
fn sigint_stops_the_same_way() {
    let mut b = Running::start(&[("STOP_GRACE_MS", "0")]);
    let mut c = Raw::connect(b.addr());
    c.send(b"GET /delay/300 HTTP/1.1\r\nHost: h\r\n\r\n");
    // Let the request reach its connection thread before the signal.
    assert!(!c.closed_within(Duration::from_millis(100)));
    kill(b.pid(), Signal::SIGINT).unwrap();
    let got = c.read_responses(1, T);
    assert_eq!(got[0].status, 200);
    assert!(got[0].closes());
    let (status, took) = b.wait_exit(Duration::from_secs(6));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// An idle backend stops at once after its grace period; a client that never finishes its
/// request does not hold it past the drain bound.
#[test]
fn stop_is_bounded() {
    let mut b = Running::start(&[("STOP_GRACE_MS", "100")]);
    let mut stuck = Raw::connect(b.addr());
    stuck.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
    assert!(!stuck.closed_within(Duration::from_millis(50)));
    kill(b.pid(), Signal::SIGTERM).unwrap();
    let (status, took) = b.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(5),
        "waited for the stuck request: {took:?}"
    );
    assert!(took < Duration::from_secs(7), "{took:?}");

    let mut idle = Running::start(&[("STOP_GRACE_MS", "100")]);
    kill(idle.pid(), Signal::SIGTERM).unwrap();
    let (status, took) = idle.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}
