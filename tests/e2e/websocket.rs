//! WebSockets through hostalb, with python `websockets` as the client and as the target
//! (tests/python/ws_peer.py): text and a 4 MiB binary message echoed, ping/pong, a close
//! from either side, the idle timeout closing both sides, a target killed mid-stream, the
//! access log entry written at close, a rule routing the upgrade, wss through an HTTPS
//! listener, and a drain that closes tunnels so that hostalb exits drained.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostalb_testkit::{HostAlb, scaled};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::access_log::{ATHENA, wait_lines};
use crate::common::start;

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs websockets from PyPI into target/pyenv)"
        )
    })
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ws_peer.py")
}

/// A python process whose stdout is JSON events, one a line.
struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python ws_peer.py");
        let out = child.stdout.take().expect("stdout");
        Peer {
            child,
            lines: BufReader::new(out).lines(),
        }
    }

    /// The next event, within `patience`.
    async fn event(&mut self, patience: Duration) -> Value {
        let line = tokio::time::timeout(patience, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no event within {patience:?}"))
            .expect("read")
            .unwrap_or_else(|| panic!("the peer exited without an event"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Events until one has `key`.
    async fn event_with(&mut self, key: &str, patience: Duration) -> Value {
        let until = Instant::now() + patience;
        for _ in 0..1000 {
            let left = until.saturating_duration_since(Instant::now());
            let e = self.event(left).await;
            if e.get(key).is_some() {
                return e;
            }
        }
        panic!("no `{key}` event");
    }
}

/// A ws_peer.py target server.
async fn target(tls: Option<&Cert>) -> (Peer, u16) {
    let mut args = vec!["serve"];
    if let Some(c) = tls {
        args.extend([
            "--cert",
            c.cert.to_str().expect("utf-8"),
            "--key",
            c.key.to_str().expect("utf-8"),
        ]);
    }
    let mut p = Peer::spawn(&args);
    let e = p.event(scaled(Duration::from_secs(20))).await;
    let port = e["listening"].as_u64().expect("listening") as u16;
    (p, port)
}

/// Runs a client scenario to its end; returns its events.
async fn client(scenario: &str, url: &str) -> Vec<Value> {
    let mut p = Peer::spawn(&["client", scenario, url]);
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(scaled(Duration::from_secs(30)), p.lines.next_line())
            .await
            .expect("client within 30 s")
            .expect("read");
        match next {
            Some(line) => events.push(serde_json::from_str(&line).expect("json")),
            None => break,
        }
    }
    let status = p.child.wait().await.expect("wait");
    assert!(status.success(), "client {scenario} failed: {events:?}");
    events
}

/// A self-signed ECDSA P-256 certificate made with the openssl command.
struct Cert {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn self_signed() -> Cert {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (Debian's openssl) makes the test certificate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Cert { _dir: dir, cert, key }
}

/// hostalb with `/ws*` and `/stream` routed to the WebSocket target and a 404 for the
/// rest; `extra` goes at the top (an access log).
async fn alb(port: u16, idle: f64, extra: &str, tls: Option<&Cert>) -> HostAlb {
    let listener = match tls {
        None => String::new(),
        Some(c) => format!(
            "protocol = \"HTTPS\"\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n",
            c.cert.display(),
            c.key.display()
        ),
    };
    start(&format!(
        r#"
{extra}
[[listener]]
name = "web"
address = "127.0.0.1:0"
{listener}idle_timeout_seconds = {idle}
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "none" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/ws*", "/stream"] }}]
action = {{ type = "forward", target_group = "sockets" }}

[target_group.sockets]
targets = ["127.0.0.1:{port}"]
health_check = {{ enabled = false }}
"#
    ))
    .await
}

fn url(alb: &HostAlb, scheme: &str, path: &str) -> String {
    format!("{scheme}://{}{path}", alb.listener("web"))
}

fn find<'a>(events: &'a [Value], key: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e.get(key).is_some())
        .unwrap_or_else(|| panic!("no `{key}` in {events:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_binary_ping_and_a_client_close_go_through() {
    let (mut server, port) = target(None).await;
    let alb = alb(port, 60.0, "", None).await;
    let events = client("echo", &url(&alb, "ws", "/ws")).await;
    assert_eq!(find(&events, "text")["text"], "hello");
    assert_eq!(find(&events, "binary_len")["binary_len"], 4 * 1024 * 1024);
    assert_eq!(find(&events, "binary_len")["binary_same"], true);
    assert_eq!(find(&events, "pong")["pong"], true);
    assert_eq!(find(&events, "closed")["closed"], 1000);
    // The target saw the client's close frame.
    let closed = server
        .event_with("server_closed", scaled(Duration::from_secs(10)))
        .await;
    assert_eq!(closed["code"], 1000, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_server_reaches_the_client() {
    let (mut server, port) = target(None).await;
    let alb = alb(port, 60.0, "", None).await;
    let events = client("server-close", &url(&alb, "ws", "/ws")).await;
    let closed = find(&events, "closed");
    assert_eq!(closed["closed"], 4000, "{events:?}");
    assert_eq!(closed["reason"], "bye");
    let seen = server
        .event_with("server_closed", scaled(Duration::from_secs(10)))
        .await;
    assert_eq!(seen["code"], 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_closes_both_sides() {
    let (mut server, port) = target(None).await;
    let alb = alb(port, 1.0, "", None).await;
    let mut c = Peer::spawn(&["client", "hold", &url(&alb, "ws", "/ws")]);
    c.event_with("open", scaled(Duration::from_secs(20))).await;
    let closed = c.event_with("closed", scaled(Duration::from_secs(10))).await;
    let after = closed["after"].as_f64().expect("after");
    // Idle for 1 s after the last message: not before, and not long after.
    assert!(after >= 0.9, "closed after {after} s, before the idle timeout");
    assert!(
        after < 1.0 + scaled(Duration::from_secs(3)).as_secs_f64(),
        "{after}"
    );
    // No close frame: the connection was cut (1006), and the target saw it end too.
    assert_eq!(closed["closed"], 1006);
    let seen = server
        .event_with("server_closed", scaled(Duration::from_secs(10)))
        .await;
    assert_eq!(seen["server_closed"], "/ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_stream_closes_the_client_side_at_once() {
    let (mut server, port) = target(None).await;
    let alb = alb(port, 60.0, "", None).await;
    let mut c = Peer::spawn(&["client", "stream", &url(&alb, "ws", "/stream")]);
    c.event_with("streaming", scaled(Duration::from_secs(20))).await;
    server.child.start_kill().expect("kill the target");
    let closed = c.event_with("closed", scaled(Duration::from_secs(10))).await;
    assert_eq!(closed["closed"], 1006, "cut, not closed by a frame: {closed}");
    // Far inside the 60 s idle timeout: the target's end was passed on at once.
    let after = closed["after"].as_f64().expect("after");
    assert!(after < scaled(Duration::from_secs(3)).as_secs_f64(), "{after} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_the_upgrade_request() {
    let (_server, port) = target(None).await;
    let alb = alb(port, 60.0, "", None).await;
    let events = client("refused", &url(&alb, "ws", "/elsewhere")).await;
    assert_eq!(
        find(&events, "refused")["refused"],
        404,
        "the default action answered"
    );
    let events = client("echo", &url(&alb, "ws", "/ws/chat")).await;
    assert_eq!(find(&events, "text")["text"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_entry_is_written_at_close_with_type_ws_and_the_connection_bytes() {
    let (_server, port) = target(None).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let extra = format!("[access_log]\npath = \"{}\"\nformat = \"alb\"\n", log.display());
    let alb = alb(port, 2.0, &extra, None).await;
    let ws_url = url(&alb, "ws", "/ws");
    let mut held = Peer::spawn(&["client", "hold", &ws_url]);
    held.event_with("open", scaled(Duration::from_secs(20))).await;
    // Open: no entry yet (the writer flushes every 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(before.is_empty(), "an entry before the close: {before}");
    // The idle timeout ends it; then a 4 MiB echo and a client close on another.
    held.event_with("closed", scaled(Duration::from_secs(10))).await;
    client("echo", &ws_url).await;
    let got = wait_lines(&log, 2).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    let re = regex::Regex::new(ATHENA).expect("regex");
    for line in &got {
        let f: Vec<&str> = re
            .captures(line)
            .unwrap_or_else(|| panic!("Athena's regex does not parse:\n{line}"))
            .iter()
            .map(|m| m.map(|m| m.as_str()).unwrap_or(""))
            .collect();
        assert_eq!(f[1], "ws", "{line}");
        assert_eq!((f[11], f[12]), ("101", "101"), "{line}");
        assert_eq!(f[15], "GET");
        assert_eq!(
            f[16],
            format!("http://127.0.0.1:{}/ws", alb.listener("web").port())
        );
        assert_eq!(f[27], "forward");
        // The handshake's times, as ALB logs them.
        for t in [f[8], f[9], f[10]] {
            assert!(t.parse::<f64>().expect("seconds") >= 0.0, "{line}");
        }
    }
    let bytes = |line: &str| -> (u64, u64, String, String) {
        let f: Vec<String> = re
            .captures(line)
            .expect("parsed")
            .iter()
            .map(|m| m.map(|m| m.as_str().to_owned()).unwrap_or_default())
            .collect();
        (
            f[13].parse().expect("received"),
            f[14].parse().expect("sent"),
            f[2].clone(),
            f[26].clone(),
        )
    };
    // The held connection: written when it closed, about 2 s (the idle timeout) after it
    // opened: `time` minus `request_creation_time` is the connection's duration.
    let (_, _, time, created) = bytes(&got[0]);
    let secs = |t: &str| -> f64 {
        // 2026-12-01T03:40:12.123456Z: the seconds of the day are enough here.
        let hms = &t[11..t.len() - 1];
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().expect("number")).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2]
    };
    // Across midnight the seconds of the day wrap.
    let lasted = (secs(&time) - secs(&created)).rem_euclid(86_400.0);
    assert!(lasted >= 1.9, "written {lasted} s after the request: {}", got[0]);
    // The echo: every byte of the connection both ways, 4 MiB and more.
    let (received, sent, _, _) = bytes(&got[1]);
    assert!(
        received > 4 * 1024 * 1024 && received < 5 * 1024 * 1024,
        "{received}"
    );
    assert!(sent > 4 * 1024 * 1024 && sent < 5 * 1024 * 1024, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_an_https_listener() {
    let cert = self_signed();
    let (_server, port) = target(None).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let extra = format!("[access_log]\npath = \"{}\"\nformat = \"alb\"\n", log.display());
    let alb = alb(port, 60.0, &extra, Some(&cert)).await;
    let events = client("echo", &url(&alb, "wss", "/ws")).await;
    assert_eq!(find(&events, "text")["text"], "hello");
    assert_eq!(find(&events, "binary_len")["binary_same"], true);
    assert_eq!(find(&events, "closed")["closed"], 1000);
    let got = wait_lines(&log, 1).await;
    assert!(got[0].starts_with("wss "), "{}", got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_closes_quiet_tunnels_and_hostalb_exits_drained() {
    let (_server, port) = target(None).await;
    let alb = alb(port, 30.0, "", None).await;
    let mut c = Peer::spawn(&["client", "hold", &url(&alb, "ws", "/ws")]);
    c.event_with("open", scaled(Duration::from_secs(20))).await;
    assert!(alb.sigterm());
    let closed = c.event_with("closed", scaled(Duration::from_secs(10))).await;
    // Quiet: closed soon after the drain began, long before the 30 s grace.
    assert!(closed["after"].as_f64().expect("after") < scaled(Duration::from_secs(5)).as_secs_f64());
    let status = alb
        .wait_exit(scaled(Duration::from_secs(10)))
        .await
        .expect("hostalb exits");
    assert!(status.success(), "drained, not cut by the grace: {status:?}");
}
