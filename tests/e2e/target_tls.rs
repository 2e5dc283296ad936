//! The target side of TLS, HTTP/2 and gRPC: HTTPS target groups (TLS to targets, no SNI,
//! any certificate, pooled TLS connections, handshake failures as 502 counted in
//! `TargetTLSNegotiationErrorCount`), HTTPS health checks, gRPC health checks against a
//! real grpcio server, ALB's 464 for HTTP/1.1 to a GRPC group, and the listener/target
//! protocol combinations `hostalb check` and reloads refuse.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hostalb_testkit::{Backend, Conn, HostAlb, SelfSigned, TlsBackend, run_check};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::admin::metric_sum;
use crate::common::{bin, start};
use crate::health::{group_metric, mismatch, wait_group_metric, wait_health, wait_state};

/// An HTTP listener `web` forwarding to `default_group`, then `groups`.
fn http_listener(default_group: &str, groups: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
idle_timeout_seconds = 5
default_action = {{ type = "forward", target_group = "{default_group}" }}
{groups}
"#
    )
}

/// An HTTPS listener `tls` (the certificate in `dir`) forwarding to `default_group`, with
/// `rules`, then `groups`.
fn https_listener(dir: &Path, default_group: &str, rules: &str, groups: &str) -> String {
    let (cert, key) = SelfSigned::new(&["localhost"]).write_to(dir);
    format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "tls"
address = "127.0.0.1:0"
protocol = "HTTPS"
idle_timeout_seconds = 5
certificates = [{{ cert_file = "{}", key_file = "{}" }}]
default_action = {{ type = "forward", target_group = "{default_group}" }}
{rules}
{groups}
"#,
        cert.display(),
        key.display()
    )
}

/// Fast probes (0.5 s apart) with thresholds of 2 and these extra health-check keys.
fn fast(extra: &str) -> String {
    format!(
        "health_check = {{ interval_seconds = 0.5, timeout_seconds = 0.4, healthy_threshold = 2, \
         unhealthy_threshold = 2{extra} }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_groups_speak_tls_without_sni_and_reuse_the_connection() {
    let backend = TlsBackend::start("secure-a").await;
    let alb = start(&http_listener(
        "secure",
        &format!(
            "[target_group.secure]\nprotocol = \"HTTPS\"\ntargets = [\"{}\"]\nhealth_check = {{ enabled = false }}\n",
            backend.addr()
        ),
    ))
    .await;
    let mut conn = Conn::connect(alb.listener("web")).await.expect("connect");
    for i in 0..5 {
        let resp = conn.get(&format!("/r/{i}")).await.expect("response");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.text(), "secure-a", "request {i}");
    }
    // A body larger than any TLS record and socket buffer, on the same connection.
    let body = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let resp = conn
        .request(
            "POST",
            "/upload",
            &[("content-type", "application/octet-stream")],
            body,
        )
        .await
        .expect("POST response");
    assert_eq!(resp.status, 200, "{}", resp.text());

    let traffic = backend.traffic();
    assert_eq!(traffic.len(), 6, "{traffic:#?}");
    assert_eq!(traffic[5].body_len, 3 * 1024 * 1024);
    assert!(
        traffic.iter().all(|r| r.connection == 1),
        "every request went over the one pooled TLS connection: {traffic:#?}"
    );
    assert_eq!(backend.handshakes(), 1, "one TLS handshake for six requests");
    assert_eq!(backend.server_names(), vec![None], "ALB sends no SNI to targets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_target_handshake_is_a_502_counted_as_a_tls_negotiation_error() {
    // A target that speaks plain HTTP where TLS is expected.
    let plain = Backend::start("plain").await;
    let alb = start(&http_listener(
        "secure",
        &format!(
            "[target_group.secure]\nprotocol = \"HTTPS\"\ntargets = [\"{}\"]\nhealth_check = {{ enabled = false }}\n",
            plain.addr()
        ),
    ))
    .await;
    let mut conn = Conn::connect(alb.listener("web")).await.expect("connect");
    for i in 0..2 {
        let resp = conn.get(&format!("/x/{i}")).await.expect("response");
        assert_eq!(resp.status, 502, "request {i}: {}", resp.text());
    }
    wait_group_metric(&alb, "hostalb_target_tls_negotiation_errors_total", "secure", 2.0).await;
    assert_eq!(
        group_metric(&alb, "hostalb_target_connection_errors_total", "secure").await,
        0.0,
        "a TLS failure is not also a connection error"
    );
    assert_eq!(
        plain.request_count(),
        0,
        "no request reached the target in clear text"
    );
    // The client connection survives a 502: the next request on it is answered too.
    let resp = conn.get("/after").await.expect("response");
    assert_eq!(resp.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_health_checks_probe_over_tls() {
    let good = TlsBackend::start("good").await;
    let sick = TlsBackend::start("sick").await;
    sick.set_health_status(503);
    let plain = Backend::start("plain").await;
    // An HTTP group whose checks say protocol = "HTTPS" probes over TLS too.
    let explicit = TlsBackend::start("explicit").await;
    let groups = format!(
        r#"
[target_group.secure]
protocol = "HTTPS"
targets = ["{}", "{}", "{}"]
{}

[target_group.mixed]
targets = ["{}"]
{}
"#,
        good.addr(),
        sick.addr(),
        plain.addr(),
        fast(", path = \"/health\""),
        explicit.addr(),
        fast(", path = \"/health\", protocol = \"HTTPS\""),
    );
    let rules = r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/mixed/*"] }]
action = { type = "forward", target_group = "mixed" }
"#;
    let alb = start(&http_listener("secure", &format!("{rules}{groups}"))).await;
    wait_state(&alb, "secure", good.addr(), "healthy").await;
    wait_health(&alb, "secure", sick.addr(), &mismatch(503)).await;
    let failed = wait_state(&alb, "secure", plain.addr(), "unhealthy").await;
    assert_eq!(
        failed.reason.as_deref(),
        Some("Target.FailedHealthChecks"),
        "{failed:?}"
    );
    wait_state(&alb, "mixed", explicit.addr(), "healthy").await;

    let probe = good
        .requests()
        .into_iter()
        .find(|r| r.target == "/health")
        .expect("a probe reached the TLS target");
    assert_eq!(probe.method, "GET");
    assert_eq!(probe.user_agent.as_deref(), Some("ELB-HealthChecker/2.0"));
    assert_eq!(probe.host, Some(format!("127.0.0.1:{}", good.addr().port())));
    assert!(
        good.server_names().iter().all(Option::is_none),
        "no SNI on probes either"
    );

    // A target that turns unhealthy is seen as such.
    good.set_health_status(500);
    wait_health(&alb, "secure", good.addr(), &mismatch(500)).await;
}

/// A grpcio server on 127.0.0.1 (cleartext HTTP/2), killed when dropped. With
/// `implements_alb_check`, it answers `/AWS.ALB/healthcheck` with OK; every other method is
/// UNIMPLEMENTED (12), as gRPC servers answer unknown methods.
struct GrpcServer {
    addr: SocketAddr,
    _child: tokio::process::Child,
}

const GRPC_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc

implements = sys.argv[1] == "1"

class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if implements and details.method == "/AWS.ALB/healthcheck":
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
        return None

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[Handler()])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

impl GrpcServer {
    async fn start(implements_alb_check: bool) -> GrpcServer {
        let python = std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
            panic!(
                "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
                 (it installs grpcio from PyPI into target/pyenv)"
            )
        });
        let mut child = tokio::process::Command::new(python)
            .arg("-c")
            .arg(GRPC_SERVER)
            .arg(if implements_alb_check { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the grpcio server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(n)) if n > 0),
            "the grpcio server printed no port (is grpcio installed in HOSTALB_PYTHON's venv?)"
        );
        let port: u16 = line.trim().parse().expect("a port");
        GrpcServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _child: child,
        }
    }
}

fn grpc_group(name: &str, target: SocketAddr, matcher: Option<&str>) -> String {
    let matcher = matcher
        .map(|m| format!(", matcher = \"{m}\""))
        .unwrap_or_default();
    format!(
        "\n[target_group.{name}]\nprotocol_version = \"GRPC\"\ntargets = [\"{target}\"]\n{}\n",
        fast(&matcher)
    )
}

fn grpc_rule(priority: u32, service: &str, group: &str) -> String {
    format!(
        r#"
[[listener.rule]]
priority = {priority}
conditions = [{{ field = "path-pattern", values = ["/{service}/*"] }}]
action = {{ type = "forward", target_group = "{group}" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_checks_match_grpc_status_codes_of_a_real_grpc_server() {
    let plain = GrpcServer::start(false).await;
    let implementing = GrpcServer::start(true).await;
    let dir = tempfile::tempdir().expect("dir");
    let groups = [
        // Default path and matcher 12: a server without the method answers UNIMPLEMENTED.
        grpc_group("rpc-default", plain.addr, None),
        // Matcher 0 against the same server: 12 is a mismatch.
        grpc_group("rpc-zero", plain.addr, Some("0")),
        // A server implementing /AWS.ALB/healthcheck answers OK (0).
        grpc_group("rpc-impl", implementing.addr, Some("0")),
    ]
    .concat();
    let rules = [
        grpc_rule(10, "zero.Svc", "rpc-zero"),
        grpc_rule(20, "impl.Svc", "rpc-impl"),
    ]
    .concat();
    let alb = start(&https_listener(dir.path(), "rpc-default", &rules, &groups)).await;
    wait_state(&alb, "rpc-default", plain.addr, "healthy").await;
    wait_health(&alb, "rpc-zero", plain.addr, &mismatch(12)).await;
    wait_state(&alb, "rpc-impl", implementing.addr, "healthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_to_a_grpc_group_get_464() {
    let server = GrpcServer::start(false).await;
    let dir = tempfile::tempdir().expect("dir");
    let alb = start(&https_listener(
        dir.path(),
        "rpc",
        "",
        &grpc_group("rpc", server.addr, None),
    ))
    .await;
    wait_state(&alb, "rpc", server.addr, "healthy").await;
    let url = format!("https://127.0.0.1:{}/pkg.Svc/Method", alb.listener("tls").port());
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", "content-type: application/grpc", "--max-time", "10", &url])
        .output()
        .await
        .expect("curl (Debian's curl package)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "464",
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, metrics) = alb.admin_get("/metrics").await;
    assert_eq!(
        metric_sum(&metrics, "hostalb_httpcode_elb_4xx_total", &[]),
        Some(1.0),
        "the 464 counts as an ELB 4XX: {metrics}"
    );
}

#[test]
fn check_refuses_grpc_and_http2_groups_behind_http_listeners() {
    for version in ["GRPC", "HTTP2"] {
        let text = http_listener(
            "rpc",
            &format!(
                "[target_group.rpc]\nprotocol_version = \"{version}\"\ntargets = [\"127.0.0.1:9001\"]\n"
            ),
        );
        let (code, stdout, stderr) = run_check(bin(), &text, "toml");
        assert_eq!(code, 1, "{version}: exit 1\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("listener[0].default_action.target_group"),
            "{version}: the field path is given:\n{stdout}"
        );
        assert!(
            stdout.contains("only behind HTTPS listeners") && stdout.contains("protocol = \"HTTPS\""),
            "{version}: the problem and the fix:\n{stdout}"
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let text = https_listener(
        dir.path(),
        "rpc",
        "",
        "[target_group.rpc]\nprotocol_version = \"GRPC\"\ntargets = [\"127.0.0.1:9001\"]\n",
    );
    let (code, stdout, stderr) = run_check(bin(), &text, "toml");
    assert_eq!(
        code, 0,
        "a GRPC group behind an HTTPS listener is fine\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_a_grpc_group_behind_an_http_listener_is_refused() {
    let backend = Backend::start("api").await;
    let group = |version: &str| {
        http_listener(
            "api",
            &format!(
                "[target_group.api]\nprotocol_version = \"{version}\"\ntargets = [\"{}\"]\nhealth_check = {{ enabled = false }}\n",
                backend.addr()
            ),
        )
    };
    let alb: HostAlb = start(&group("HTTP1")).await;
    let mut conn = Conn::connect(alb.listener("web")).await.expect("connect");
    assert_eq!(conn.get("/before").await.expect("response").status, 200);
    alb.write_config(&group("GRPC"));
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("listener[0].default_action.target_group") && body.contains("HTTPS"),
        "the reload names the field and the fix: {body}"
    );
    let resp = conn.get("/after").await.expect("response");
    assert_eq!(resp.status, 200, "the old configuration keeps serving");
}
