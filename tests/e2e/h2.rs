//! HTTP/2 on HTTPS listeners, with real clients: curl `--http2` (rules, answers, bodies
//! both ways, trailers, ALPN fallback), `h2load` (load, ALB's 10,000-stream GOAWAY), and
//! raw frames from python `h2`'s frame and HPACK libraries for what a well-behaved
//! client never sends (too many streams, floods). Certificates are made at test time
//! (rcgen); curl and h2load do not verify them (`-k`), as clients of a self-signed test
//! listener do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hostalb_testkit::{Backend, HostAlb, RawBackend, RawBehaviour, eventually, scaled};
use tokio::process::Command;

use crate::common::start;

/// Bound on one client run (curl, h2load, the python frame client).
const CLIENT_RUN: Duration = Duration::from_secs(120);

/// A listener's certificate and key, in a directory that lives as long as the test.
struct Cert {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn self_signed() -> Cert {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    Cert { _dir: dir, cert, key }
}

/// The test setup: one HTTPS listener `tls` with rules for each answer hostalb makes, a
/// recording backend (`app`, the default action), a group without targets (`/empty/*`)
/// and a raw backend (`/raw/*`) whose answer each test chooses.
struct Setup {
    alb: HostAlb,
    app: Backend,
    raw: RawBackend,
    _cert: Cert,
}

impl Setup {
    async fn start(raw_answer: &[u8], listener_extra: &str) -> Setup {
        Setup::start_with(raw_answer, "", listener_extra).await
    }

    /// As [`Setup::start`], with `prelude` (top-level configuration) before the listener.
    async fn start_with(raw_answer: &[u8], prelude: &str, listener_extra: &str) -> Setup {
        let app = Backend::start("app").await;
        let raw = RawBackend::start(RawBehaviour::Respond(raw_answer.to_vec())).await;
        let cert = self_signed();
        let config = format!(
            r#"
{prelude}

[[listener]]
name = "tls"
address = "127.0.0.1:0"
protocol = "HTTPS"
certificates = [{{ cert_file = "{cert}", key_file = "{key}" }}]
{listener_extra}
default_action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 1
conditions = [{{ field = "path-pattern", values = ["/fixed"] }}]
action = {{ type = "fixed-response", status_code = 418, content_type = "text/plain", message_body = "short and stout" }}

[[listener.rule]]
priority = 2
conditions = [{{ field = "path-pattern", values = ["/old/*"] }}]
action = {{ type = "redirect", path = "/new/#{{path}}", status_code = "HTTP_301" }}

[[listener.rule]]
priority = 3
conditions = [{{ field = "path-pattern", values = ["/empty/*"] }}]
action = {{ type = "forward", target_group = "empty" }}

[[listener.rule]]
priority = 4
conditions = [{{ field = "path-pattern", values = ["/raw/*"] }}]
action = {{ type = "forward", target_group = "raw" }}

[[listener.rule]]
priority = 5
conditions = [{{ field = "path-pattern", values = ["/grpc/*"] }}]
action = {{ type = "forward", target_group = "grpc" }}

[target_group.app]
targets = ["{app}"]
health_check = {{ enabled = false }}

[target_group.empty]
health_check = {{ enabled = false }}

[target_group.raw]
targets = ["{raw}"]
health_check = {{ enabled = false }}

[target_group.grpc]
protocol_version = "GRPC"
targets = ["{app}"]
health_check = {{ enabled = false }}
"#,
            cert = cert.cert.display(),
            key = cert.key.display(),
            app = app.addr(),
            raw = raw.addr(),
        );
        Setup {
            alb: start(&config).await,
            app,
            raw,
            _cert: cert,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.alb.listener("tls")
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr().port())
    }

    fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.addr().port())
    }

    /// Runs curl (`--http2` unless `args` says otherwise) against `path`.
    async fn curl(&self, path: &str, args: &[&str]) -> Curl {
        let dir = tempfile::tempdir().expect("temp dir");
        let headers = dir.path().join("headers");
        let body = dir.path().join("body");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-k", "--max-time", "60"]);
        if !args.iter().any(|a| a.starts_with("--http")) {
            cmd.arg("--http2");
        }
        cmd.args(args)
            .arg("--resolve")
            .arg(self.resolve())
            .arg("-D")
            .arg(&headers)
            .arg("-o")
            .arg(&body)
            .arg("-w")
            .arg("%{http_version}")
            .arg(self.url(path));
        let out = run(cmd).await;
        Curl::read(&out, &headers, &body)
    }
}

/// What curl got.
#[derive(Debug)]
struct Curl {
    exit: Option<i32>,
    /// `2` for HTTP/2, `1.1` for HTTP/1.1.
    version: String,
    status: u16,
    /// Header lines as curl wrote them (names lower-case for HTTP/2), trailers after them.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    stderr: String,
}

impl Curl {
    fn read(out: &Output, headers: &Path, body: &Path) -> Curl {
        let text = std::fs::read_to_string(headers).unwrap_or_default();
        let mut status = 0;
        let mut fields = Vec::new();
        for line in text.lines() {
            if line.starts_with("HTTP/") {
                status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                fields.clear();
            } else if let Some((n, v)) = line.split_once(':') {
                fields.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Curl {
            exit: out.status.code(),
            version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            status,
            headers: fields,
            body: std::fs::read(body).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn run(mut cmd: Command) -> Output {
    cmd.kill_on_drop(true);
    match tokio::time::timeout(scaled(CLIENT_RUN), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!(
            "cannot run {cmd:?}: {e} (curl and h2load: Debian's curl and nghttp2-client; scripts/test installs them)"
        ),
        Err(_) => panic!("{cmd:?} did not finish in {CLIENT_RUN:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_answers_rules_fixed_responses_redirects_and_elb_errors() {
    let s = Setup::start(b"", "").await;
    let fwd = s.curl("/hello?x=1", &[]).await;
    assert_eq!(
        (fwd.exit, fwd.version.as_str(), fwd.status),
        (Some(0), "2", 200),
        "{fwd:?}"
    );
    assert_eq!(fwd.header("x-backend"), Some("app"), "{fwd:?}");

    let fixed = s.curl("/fixed", &[]).await;
    assert_eq!((fixed.version.as_str(), fixed.status), ("2", 418), "{fixed:?}");
    assert_eq!(fixed.text(), "short and stout");
    assert_eq!(fixed.header("content-type"), Some("text/plain"));
    assert_eq!(fixed.header("server"), Some("awselb/2.0"));

    let moved = s.curl("/old/page?q=2", &[]).await;
    assert_eq!(moved.status, 301, "{moved:?}");
    assert_eq!(
        moved.header("location"),
        Some(format!("https://localhost:{}/new/old/page?q=2", s.addr().port()).as_str())
    );

    let none = s.curl("/empty/x", &[]).await;
    assert_eq!(none.status, 503, "{none:?}");
    assert!(none.text().contains("503 Service Unavailable"), "{none:?}");
    assert_eq!(none.header("grpc-status"), None);

    let trace = s.curl("/hello", &["-X", "TRACE"]).await;
    assert_eq!(trace.status, 405, "{trace:?}");

    // Non-POST HTTP/2 to a GRPC group: ALB's 464.
    let mismatch = s.curl("/grpc/x", &[]).await;
    assert_eq!(mismatch.status, 464, "{mismatch:?}");
    assert_eq!(
        s.app.request_count(),
        1,
        "only the first request reached the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_elb_errors_on_grpc_requests_carry_grpc_status() {
    let s = Setup::start(b"", "").await;
    let grpc = [
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "--data-binary",
        "x",
    ];
    // gRPC to an HTTP1 group: 464, UNKNOWN, whether the group has targets or not (the
    // protocol is checked before a target is picked).
    for path in ["/pkg.Svc/Method", "/empty/Svc/Call"] {
        let http1 = s.curl(path, &grpc).await;
        assert_eq!(http1.status, 464, "{http1:?}");
        assert_eq!(http1.header("grpc-status"), Some("2"), "{http1:?}");
        assert_eq!(http1.header("content-type"), Some("application/grpc"));
        assert_eq!(http1.header("grpc-message"), Some("464 Incompatible Protocol"));
        assert!(http1.body.is_empty(), "trailers-only: {http1:?}");
    }
    assert_eq!(s.app.request_count(), 0);
    let (code, metrics) = s.alb.admin_get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hostalb_grpc_requests_total") && l.ends_with(" 2")),
        "GrpcRequestCount counts both: {}",
        metrics
            .lines()
            .filter(|l| l.contains("grpc"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_request_reaches_the_target_as_http1_with_albs_header_casing() {
    let s = Setup::start(b"", "").await;
    let got = s
        .curl(
            "/casing?a=b",
            &[
                "-H",
                "X-Custom-Thing: v1",
                "-H",
                "X-Forwarded-For: 203.0.113.9",
                "-H",
                "Cookie: a=1",
                "-H",
                "X-Amzn-Trace-Id: Root=1-00000000-000000000000000000000001",
            ],
        )
        .await;
    assert_eq!(got.status, 200, "{got:?}");
    let r = s.app.requests().pop().expect("a recorded request");
    assert_eq!(
        (r.method.as_str(), r.target.as_str(), r.version.as_str()),
        ("GET", "/casing?a=b", "HTTP/1.1")
    );
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    for recased in [
        "Host",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        "X-Amzn-Trace-Id",
    ] {
        assert!(names.contains(&recased), "{recased} re-cased: {names:?}");
    }
    for lower in ["x-custom-thing", "user-agent", "accept", "cookie"] {
        assert!(names.contains(&lower), "{lower} stays lower-case: {names:?}");
    }
    assert_eq!(
        r.header("host"),
        Some(format!("localhost:{}", s.addr().port()).as_str())
    );
    assert_eq!(r.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(r.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        r.header("x-forwarded-port"),
        Some(s.addr().port().to_string().as_str())
    );
    let trace = r.header("x-amzn-trace-id").expect("trace id");
    assert!(
        trace.starts_with("Self=1-") && trace.ends_with(";Root=1-00000000-000000000000000000000001"),
        "{trace}"
    );
    assert_eq!(r.header("x-custom-thing"), Some("v1"));
    assert_eq!(r.header("cookie"), Some("a=1"));
    for gone in ["transfer-encoding", "content-length", "connection", "te"] {
        assert_eq!(r.header(gone), None, "{gone}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_bodies_go_both_ways_large_and_streamed() {
    let s = Setup::start(b"", "").await;
    let dir = tempfile::tempdir().expect("dir");
    let upload = dir.path().join("upload");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&upload, &data).expect("write upload");
    let file = format!("@{}", upload.display());

    // With a length: Content-Length to the target.
    let echoed = s.curl("/echo", &["--data-binary", &file]).await;
    assert_eq!(
        (echoed.version.as_str(), echoed.status),
        ("2", 200),
        "{}",
        echoed.stderr
    );
    assert!(echoed.body == data, "echoed {} bytes", echoed.body.len());
    let r = s.app.requests().pop().expect("recorded");
    assert_eq!(r.header("content-length"), Some("3000000"));
    assert!(r.complete && r.body.len() == data.len());

    // With `Expect: 100-continue`: hostalb answers 100 itself and drops Expect.
    let expecting = s
        .curl("/echo", &["-H", "Expect: 100-continue", "--data-binary", &file])
        .await;
    assert_eq!(expecting.status, 200, "{}", expecting.stderr);
    assert!(expecting.body == data, "echoed {} bytes", expecting.body.len());
    let r = s.app.requests().pop().expect("recorded");
    assert_eq!(r.header("expect"), None, "{:?}", r.headers);

    // Streamed from stdin without a length: chunked to the target.
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "cat '{}' | curl -sS -k --http2 --max-time 60 --resolve {} -T - -o '{}' -w '%{{http_code}} %{{http_version}}' {}",
        upload.display(),
        s.resolve(),
        dir.path().join("streamed").display(),
        s.url("/echo")
    ));
    let out = run(cmd).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2", "{out:?}");
    let streamed = std::fs::read(dir.path().join("streamed")).expect("streamed body");
    assert!(streamed == data, "streamed echo {} bytes", streamed.len());
    let r = s.app.requests().pop().expect("recorded");
    assert_eq!(r.method, "PUT");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{:?}", r.headers);
    assert_eq!(r.header("content-length"), None);

    // A large response, with a length and chunked.
    for path in ["/bytes/5000000", "/chunked/5000000"] {
        let big = s.curl(path, &[]).await;
        assert_eq!(big.status, 200, "{path}: {}", big.stderr);
        assert_eq!(big.body.len(), 5_000_000, "{path}");
        assert!(big.body.starts_with(b"abcdefghijklmnopqrstuvwxyz"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_chunked_trailers_become_http2_trailers() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc123\r\n\r\n";
    let s = Setup::start(answer, "").await;
    let got = s.curl("/raw/t", &[]).await;
    assert_eq!((got.exit, got.status), (Some(0), 200), "{got:?}");
    assert_eq!(got.text(), "hello world");
    assert_eq!(
        got.header("x-checksum"),
        Some("abc123"),
        "trailer relayed: {got:?}"
    );
    for gone in ["transfer-encoding", "connection", "keep-alive", "trailer"] {
        assert_eq!(got.header(gone), None, "{gone}: {got:?}");
    }
    assert_eq!(s.raw.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_target_dying_mid_body_resets_the_stream() {
    let s = Setup::start(b"", "").await;
    s.raw.set_behaviour(RawBehaviour::RespondThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly this much".to_vec(),
    ));
    let cut = s.curl("/raw/cut", &[]).await;
    // RST_STREAM INTERNAL_ERROR (curl's 92), never a body that looks complete.
    assert_eq!(cut.exit, Some(92), "curl must see a broken stream: {cut:?}");
    assert!(cut.stderr.contains("INTERNAL_ERROR"), "{cut:?}");
    assert!(cut.body.len() < 100_000, "{cut:?}");
    // The connection and hostalb are fine: the next request is served.
    let ok = s.curl("/fine", &[]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_clients_offering_only_http1_get_http1() {
    let s = Setup::start(b"", "").await;
    let h1 = s.curl("/one", &["--http1.1"]).await;
    assert_eq!((h1.version.as_str(), h1.status), ("1.1", 200), "{h1:?}");
    let h2 = s.curl("/two", &[]).await;
    assert_eq!((h2.version.as_str(), h2.status), ("2", 200), "{h2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_off_on_the_listener_answers_a_client_offering_h2_with_http1() {
    // ALB's routing.http2.enabled = false: ALPN offers http/1.1 alone.
    let s = Setup::start(b"", "http2 = false").await;
    let r = s.curl("/off", &["--http2"]).await;
    assert_eq!((r.version.as_str(), r.status), ("1.1", 200), "{r:?}");
}

/// `h2load`'s summary line: (succeeded, failed, errored).
fn h2load_summary(out: &Output) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no summary: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let count = |what: &str| {
        line.split(',')
            .find(|p| p.trim().ends_with(what))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what} in {line}"))
    };
    (count("succeeded"), count("failed"), count("errored"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_20000_requests_over_4_connections_all_succeed() {
    let s = Setup::start(b"", "").await;
    let mut cmd = Command::new("h2load");
    cmd.args(["-n", "20000", "-c", "4", "-m", "64"])
        .arg(format!("https://127.0.0.1:{}/load", s.addr().port()));
    let out = run(cmd).await;
    assert_eq!(
        h2load_summary(&out),
        (20000, 0, 0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.app.request_count(), 20000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_gets_goaway_after_10000_streams() {
    let s = Setup::start(b"", "").await;
    // One connection, more requests than ALB serves on one: the first 10,000 are
    // answered, then GOAWAY; h2load does not reconnect, so the rest are not done.
    let mut cmd = Command::new("h2load");
    cmd.args(["-n", "10100", "-c", "1", "-m", "8"])
        .arg(format!("https://127.0.0.1:{}/g", s.addr().port()));
    let out = run(cmd).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let (succeeded, failed, _errored) = h2load_summary(&out);
    assert_eq!(succeeded, 10_000, "{text}");
    assert_eq!(failed, 100, "{text}");
    assert_eq!(s.app.request_count(), 10_000);
}

/// A cleartext HTTP/2 target (prior knowledge, as gRPC servers speak): answers every
/// stream with the request body, `x-got-*` fields saying what arrived, and trailers
/// (`grpc-status: 0`, and the request's trailers echoed as `x-req-*`).
async fn h2c_target() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use http_body_util::BodyExt;
    use hyper::body::{Frame, Incoming};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let collected = body.collect().await.map_err(|e| e.to_string())?;
                    let req_trailers = collected.trailers().cloned().unwrap_or_default();
                    let data = collected.to_bytes();
                    let mut resp = hyper::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .header("x-got-method", parts.method.as_str())
                        .header(
                            "x-got-authority",
                            parts.uri.authority().map(|a| a.as_str()).unwrap_or("-"),
                        )
                        .header("x-got-path", parts.uri.path());
                    for name in [
                        "x-forwarded-for",
                        "x-forwarded-proto",
                        "x-forwarded-port",
                        "x-amzn-trace-id",
                        "te",
                    ] {
                        if let Some(v) = parts.headers.get(name) {
                            resp = resp.header(format!("x-got-{name}"), v);
                        }
                    }
                    let mut trailers = hyper::HeaderMap::new();
                    trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
                    for (n, v) in &req_trailers {
                        if let Ok(name) =
                            hyper::header::HeaderName::from_bytes(format!("x-req-{n}").as_bytes())
                        {
                            trailers.insert(name, v.clone());
                        }
                    }
                    let frames = Frames([Frame::data(data), Frame::trailers(trailers)].into());
                    resp.body(frames).map_err(|e| e.to_string())
                });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A response body made of the given frames, in order.
struct Frames(std::collections::VecDeque<hyper::body::Frame<bytes::Bytes>>);

impl hyper::body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_grpc_and_http2_groups_reach_h2_targets_with_albs_headers() {
    let (target, _task) = h2c_target().await;
    let cert = self_signed();
    let config = format!(
        r#"
[[listener]]
name = "tls"
address = "127.0.0.1:0"
protocol = "HTTPS"
certificates = [{{ cert_file = "{cert}", key_file = "{key}" }}]
default_action = {{ type = "forward", target_group = "h2" }}

[[listener.rule]]
priority = 1
conditions = [{{ field = "path-pattern", values = ["/pkg.Svc/*"] }}]
action = {{ type = "forward", target_group = "grpc" }}

[[listener.rule]]
priority = 2
conditions = [{{ field = "path-pattern", values = ["/gone.Svc/*"] }}]
action = {{ type = "forward", target_group = "nobody" }}

[target_group.grpc]
protocol_version = "GRPC"
targets = ["{target}"]
health_check = {{ enabled = false }}

[target_group.h2]
protocol_version = "HTTP2"
targets = ["{target}"]
health_check = {{ enabled = false }}

[target_group.nobody]
protocol_version = "GRPC"
health_check = {{ enabled = false }}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let s = Setup {
        alb: start(&config).await,
        app: Backend::start("unused").await,
        raw: RawBackend::start(RawBehaviour::Blackhole).await,
        _cert: cert,
    };
    let port = s.addr().port().to_string();
    // One gRPC message: uncompressed, 3 bytes.
    let dir = tempfile::tempdir().expect("dir");
    let message = dir.path().join("message");
    std::fs::write(&message, b"\0\0\0\0\x03abc").expect("write");
    let message = format!("@{}", message.display());
    let call = s
        .curl(
            "/pkg.Svc/Call",
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "-H",
                "X-Forwarded-For: 198.51.100.7",
                "--data-binary",
                &message,
            ],
        )
        .await;
    assert_eq!(
        (call.exit, call.version.as_str(), call.status),
        (Some(0), "2", 200),
        "{call:?}"
    );
    assert_eq!(call.body, b"\0\0\0\0\x03abc", "{call:?}");
    assert_eq!(
        call.header("grpc-status"),
        Some("0"),
        "trailers relayed: {call:?}"
    );
    assert_eq!(call.header("x-got-method"), Some("POST"));
    assert_eq!(call.header("x-got-path"), Some("/pkg.Svc/Call"));
    assert_eq!(
        call.header("x-got-authority"),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(
        call.header("x-got-x-forwarded-for"),
        Some("198.51.100.7, 127.0.0.1")
    );
    assert_eq!(call.header("x-got-x-forwarded-proto"), Some("https"));
    assert_eq!(call.header("x-got-x-forwarded-port"), Some(port.as_str()));
    assert!(
        call.header("x-got-x-amzn-trace-id")
            .is_some_and(|t| t.starts_with("Root=1-")),
        "{call:?}"
    );
    assert_eq!(
        call.header("x-got-te"),
        Some("trailers"),
        "gRPC needs te: trailers"
    );

    // A plain HTTP/2 request to an HTTP2 group.
    let plain = s.curl("/page", &[]).await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(plain.header("x-got-method"), Some("GET"));

    // HTTP/1.1 to GRPC and HTTP2 groups: 464, as from ALB.
    for path in ["/pkg.Svc/Call", "/page"] {
        let h1 = s
            .curl(path, &["--http1.1", "-X", "POST", "--data-binary", "x"])
            .await;
        assert_eq!((h1.version.as_str(), h1.status), ("1.1", 464), "{h1:?}");
    }

    // Non-POST to a GRPC group: 464. A GRPC group without targets: 503, UNAVAILABLE.
    let get = s.curl("/pkg.Svc/Call", &[]).await;
    assert_eq!(get.status, 464, "{get:?}");
    let gone = s
        .curl(
            "/gone.Svc/Call",
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/grpc",
                "--data-binary",
                "x",
            ],
        )
        .await;
    assert_eq!(gone.status, 503, "{gone:?}");
    assert_eq!(gone.header("grpc-status"), Some("14"), "{gone:?}");
    assert_eq!(gone.header("grpc-message"), Some("503 Service Unavailable"));
}

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs h2 from PyPI into target/pyenv)"
        )
    })
}

/// Runs one scenario of tests/python/h2_frames.py against the listener; its report.
async fn frames(s: &Setup, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/h2_frames.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("127.0.0.1")
        .arg(s.addr().port().to_string())
        .args(args);
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// GOAWAY ENHANCE_YOUR_CALM.
const ENHANCE_YOUR_CALM: u64 = 0xb;
/// GOAWAY FLOW_CONTROL_ERROR.
const FLOW_CONTROL_ERROR: u64 = 0x3;
/// RST_STREAM REFUSED_STREAM.
const REFUSED_STREAM: u64 = 0x7;

/// A normal client on another connection is served.
async fn still_serves(s: &Setup) {
    let ok = s.curl("/still-there", &[]).await;
    assert_eq!((ok.version.as_str(), ok.status), ("2", 200), "{ok:?}");
}

/// hostalb's resident memory, in KiB.
fn rss_kib(alb: &HostAlb) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", alb.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("VmRSS of {}", alb.pid()))
}

/// Most an abuse scenario may add to hostalb's resident memory (reliability.md D1).
const MAX_RSS_GROWTH_KIB: u64 = 50 * 1024;

fn goaway_code(report: &serde_json::Value) -> Option<u64> {
    report["goaway"]["code"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_stream_129_of_129_concurrent_is_refused() {
    let s = Setup::start(b"", "").await;
    let r = frames(&s, &["streams", "129", "/delay/1500"]).await;
    let statuses = r["statuses"].as_array().expect("statuses");
    assert_eq!(statuses.len(), 128, "{r}");
    assert!(statuses.iter().all(|v| v == 200), "{r}");
    assert_eq!(r["resets"], serde_json::json!([REFUSED_STREAM]), "{r}");
    assert_eq!(r["goaway"], serde_json::Value::Null, "{r}");
    assert!(s.app.max_in_flight() <= 128, "{}", s.app.max_in_flight());
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset_gets_goaway_and_bounded_target_work() {
    let s = Setup::start(b"", "").await;
    let before = rss_kib(&s.alb);
    let r = frames(&s, &["rapid-reset", "10000", "/delay/2000"]).await;
    assert!(
        rss_kib(&s.alb) < before + MAX_RSS_GROWTH_KIB,
        "{before} KiB before"
    );
    assert_eq!(goaway_code(&r), Some(ENHANCE_YOUR_CALM), "{r}");
    assert_eq!(r["closed"], true, "{r}");
    // The target never had more than a connection's streams (plus a few) at once.
    assert!(
        s.app.max_in_flight() <= 138,
        "in flight {}: {r}",
        s.app.max_in_flight()
    );
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_continuation_flood_closes_the_connection_at_once() {
    let s = Setup::start(b"", "").await;
    let before = rss_kib(&s.alb);
    let r = frames(&s, &["continuation", "100000"]).await;
    assert!(
        rss_kib(&s.alb) < before + MAX_RSS_GROWTH_KIB,
        "{before} KiB before"
    );
    assert!(
        matches!(goaway_code(&r), Some(ENHANCE_YOUR_CALM) | Some(0x1)),
        "ENHANCE_YOUR_CALM (or PROTOCOL_ERROR): {r}"
    );
    assert_eq!(r["closed"], true, "{r}");
    assert!(r["elapsed"].as_f64().unwrap_or(99.0) < 5.0, "{r}");
    assert_eq!(s.app.request_count(), 0);
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_header_list_bomb_is_refused_and_the_connection_goes_on() {
    let s = Setup::start(b"", "").await;
    // 100 fields of 1000 bytes: past ALB's 64 K of request headers.
    let before = rss_kib(&s.alb);
    let r = frames(&s, &["header-bomb", "100", "1000"]).await;
    assert!(
        rss_kib(&s.alb) < before + MAX_RSS_GROWTH_KIB,
        "{before} KiB before"
    );
    assert!(
        r["bomb"] == 431 || r["bomb_reset"].is_u64(),
        "431 or a reset stream: {r}"
    );
    assert_eq!(r["after"], 200, "{r}");
    assert_eq!(
        s.app.request_count(),
        1,
        "only the request after the bomb arrived"
    );
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_ping_settings_and_empty_data_floods_get_goaway() {
    let s = Setup::start(b"", "").await;
    for kind in ["ping", "settings", "empty-data"] {
        let r = frames(&s, &[kind, "5000"]).await;
        assert_eq!(goaway_code(&r), Some(ENHANCE_YOUR_CALM), "{kind}: {r}");
        assert_eq!(r["closed"], true, "{kind}: {r}");
        still_serves(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_window_update_abuse_is_bounded() {
    let s = Setup::start(b"", "").await;
    // A flood of tiny increments costs O(1) each and no answer: the connection serves on.
    let r = frames(&s, &["window-updates", "20000", "/after-updates"]).await;
    assert_eq!(r["statuses"], serde_json::json!([200]), "{r}");
    assert_eq!(goaway_code(&r), None, "{r}");
    // Increments past 2^31-1 are a connection error, RFC 9113's FLOW_CONTROL_ERROR.
    let r = frames(&s, &["window-overflow"]).await;
    assert_eq!(goaway_code(&r), Some(FLOW_CONTROL_ERROR), "{r}");
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_zero_window_reader_loses_its_stream_at_the_idle_timeout() {
    let s = Setup::start(b"", "idle_timeout_seconds = 2").await;
    let r = frames(&s, &["zero-window", "/bytes/1000000"]).await;
    assert!(r["stream_reset"].is_u64() || r["closed"] == true, "{r}");
    let elapsed = r["elapsed"].as_f64().unwrap_or(99.0);
    assert!((1.5..15.0).contains(&elapsed), "{r}");
    // The request to the target is cancelled with it: its connection is closed, not
    // pooled.
    hostalb_testkit::eventually(Duration::from_secs(5), async || s.app.open_connections() == 0).await;
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_pings_do_not_keep_an_idle_connection_open() {
    let s = Setup::start(b"", "idle_timeout_seconds = 2").await;
    let r = frames(&s, &["ping-idle", "10", "0.3"]).await;
    assert_eq!(
        goaway_code(&r),
        Some(0),
        "GOAWAY NO_ERROR at the idle timeout: {r}"
    );
    let elapsed = r["elapsed"].as_f64().unwrap_or(99.0);
    assert!((1.5..6.0).contains(&elapsed), "{r}");
    assert!(r["pings"].as_u64().unwrap_or(0) >= 5, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_gets_goaway_when_it_outlives_client_keep_alive() {
    let s = Setup::start(b"", "client_keep_alive_seconds = 1").await;
    let r = frames(&s, &["ping-idle", "10", "0.2"]).await;
    assert_eq!(goaway_code(&r), Some(0), "{r}");
    let elapsed = r["elapsed"].as_f64().unwrap_or(99.0);
    assert!((0.5..5.0).contains(&elapsed), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_gets_goaway_on_shutdown() {
    let s = Setup::start(b"", "").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/h2_frames.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("127.0.0.1")
        .arg(s.addr().port().to_string())
        .args(["ping-idle", "20", "0.2"]);
    let client = tokio::spawn(run(cmd));
    // The shutdown comes once the client's connection is open (a slow interpreter start
    // on a loaded machine must not make it come first).
    eventually(scaled(Duration::from_secs(10)), async || {
        let (_, text) = s.alb.admin_get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("hostalb_active_connections"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .any(|v| v >= 1.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.alb.sigterm());
    let out = client.await.expect("client task");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(goaway_code(&r), Some(0), "{r}");
    assert!(r["elapsed"].as_f64().unwrap_or(99.0) < 10.0, "{r}");
    assert!(s.alb.wait_exit(scaled(Duration::from_secs(10))).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_requests_are_logged_as_h2_and_grpcs_with_http2_request_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let prelude = format!("[access_log]\npath = \"{}\"\nformat = \"alb\"\n", log.display());
    let s = Setup::start_with(b"", &prelude, "").await;
    let port = s.addr().port();
    assert_eq!(s.curl("/logged?q=1", &[]).await.status, 200);
    let grpc = [
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "--data-binary",
        "x",
    ];
    assert_eq!(s.curl("/pkg.Svc/M", &grpc).await.status, 464);
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("h2 "), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("\"GET https://localhost:{port}/logged?q=1 HTTP/2.0\"")),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(" 200 200 "), "{}", lines[0]);
    assert!(lines[1].starts_with("grpcs "), "{}", lines[1]);
    assert!(
        lines[1].contains(&format!("\"POST https://localhost:{port}/pkg.Svc/M HTTP/2.0\"")),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(" 464 - "), "{}", lines[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_stream_to_an_http2_group_is_retried_on_another_target_when_nothing_reached_one() {
    let (target, _task) = h2c_target().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let cert = self_signed();
    let config = format!(
        r#"
[[listener]]
name = "tls"
address = "127.0.0.1:0"
protocol = "HTTPS"
certificates = [{{ cert_file = "{cert}", key_file = "{key}" }}]
default_action = {{ type = "forward", target_group = "pair" }}

[target_group.pair]
protocol_version = "HTTP2"
targets = ["{dead}", "{target}"]
health_check = {{ enabled = false }}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let s = Setup {
        alb: start(&config).await,
        app: Backend::start("unused").await,
        raw: RawBackend::start(RawBehaviour::Blackhole).await,
        _cert: cert,
    };
    // Round robin sends every other request to the refusing target first; each goes to
    // the other one, its body whole.
    for i in 0..4 {
        let body = format!("body-{i}");
        let r = s.curl("/post", &["--data-binary", &body]).await;
        assert_eq!(r.status, 200, "{i}: {r:?}");
        assert_eq!(r.text(), body, "{i}");
    }
    let (_, metrics) = s.alb.admin_get("/metrics").await;
    let refused: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("hostalb_target_connection_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(refused >= 1, "the refusing target was tried: {metrics}");
}

/// Starts tests/python/grpc_server.py; its process (killed on drop) and address.
async fn grpc_server() -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/grpc_server.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--name", "echo"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start grpc_server.py");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(scaled(Duration::from_secs(30)), lines.next_line())
        .await
        .expect("grpc_server.py did not start in time")
        .expect("read")
        .expect("a line");
    let port: u16 = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_through_hostalb_with_a_real_client_and_server() {
    let (_server, target) = grpc_server().await;
    let cert = self_signed();
    let config = format!(
        r#"
[[listener]]
name = "tls"
address = "127.0.0.1:0"
protocol = "HTTPS"
certificates = [{{ cert_file = "{cert}", key_file = "{key}" }}]
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no route" }}

[[listener.rule]]
priority = 1
conditions = [{{ field = "path-pattern", values = ["/hostalb.test.Echo/*"] }}]
action = {{ type = "forward", target_group = "grpc" }}

[target_group.grpc]
protocol_version = "GRPC"
targets = ["{target}"]
health_check = {{ enabled = false }}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let alb = start(&config).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/grpc_client.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg(format!("127.0.0.1:{}", alb.listener("tls").port()))
        .arg(&cert.cert);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(r["unary"]["reply"], "ping", "{r}");
    assert_eq!(r["unary"]["code"], "OK", "{r}");
    assert_eq!(r["unary"]["initial"]["x-target"], "echo", "{r}");
    assert_eq!(
        r["unary"]["trailing"]["x-echo-trailer"], "e1",
        "trailers carried: {r}"
    );
    assert_eq!(
        r["server_stream"],
        serde_json::json!(["s#0", "s#1", "s#2", "s#3"]),
        "{r}"
    );
    assert_eq!(r["bidi"], serde_json::json!(["a", "b", "c"]), "{r}");
    assert_eq!(r["bidi_trailing"]["x-echo-trailer"], "e2", "{r}");
    assert_eq!(r["fail"], "PERMISSION_DENIED", "{r}");
    assert_eq!(r["fail_message"], "failed on purpose", "{r}");
    // No rule for it: the default fixed 404, which a gRPC client reads as UNIMPLEMENTED.
    assert_eq!(r["unrouted"], "UNIMPLEMENTED", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_requests_meet_the_same_limits_as_http1() {
    let s = Setup::start(b"", "").await;
    // One field over 16 K: ALB's 431, as for HTTP/1.
    let big = format!("x-big: {}", "a".repeat(17 * 1024));
    let r = s.curl("/limits", &["-H", &big]).await;
    assert_eq!(r.status, 431, "{r:?}");
    // More than 100 fields.
    let mut args = Vec::new();
    for i in 0..110 {
        args.push("-H".to_owned());
        args.push(format!("x-f{i}: v"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = s.curl("/limits", &args).await;
    assert_eq!(r.status, 431, "{r:?}");
    // X-Forwarded-For with more than 30 addresses: 463.
    let xff = format!(
        "X-Forwarded-For: {}",
        (0..31)
            .map(|i| format!("10.0.0.{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = s.curl("/limits", &["-H", &xff]).await;
    assert_eq!(r.status, 463, "{r:?}");
    assert_eq!(s.app.request_count(), 0, "none reached the target");
    still_serves(&s).await;
}
