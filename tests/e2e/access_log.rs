//! ALB's access log written by the running binary: one line per request in ALB's
//! format (checked with the regular expression of AWS's Athena table for ALB logs) or as
//! JSON, and a fresh file after SIGUSR1 (logrotate).

use std::path::Path;
use std::time::Duration;

use hostalb_testkit::{Backend, Client, HostAlb, eventually, raw_exchange, scaled};

use crate::common::start;

/// The regular expression of AWS's Athena table for ALB access logs.
const ATHENA: &str = concat!(
    r#"^([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*):([0-9]*) ([^ ]*)[:-]([0-9]*) ([-.0-9]*) ([-.0-9]*) ([-.0-9]*) "#,
    r#"(|[-0-9]*) (-|[-0-9]*) ([-0-9]*) ([-0-9]*) "([^ ]*) (.*) (- |[^ ]*)" "([^"]*)" "#,
    r#"([A-Z0-9_-]+) ([A-Za-z0-9.-]*) ([^ ]*) "([^"]*)" "([^"]*)" "([^"]*)" ([-.0-9]*) ([^ ]*) "#,
    r#""([^"]*)" "([^"]*)" "([^ ]*)" "([^\s]+?)" "([^\s]+)" "([^ ]*)" "([^ ]*)" ?([^ ]*)?( .*)?$"#
);

fn config(log: &Path, format: &str, target: std::net::SocketAddr) -> String {
    format!(
        r#"
[access_log]
path = "{}"
format = "{format}"

[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "none" }}

[[listener.rule]]
priority = 5
conditions = [{{ field = "path-pattern", values = ["/old"] }}]
action = {{ type = "redirect", path = "/new", status_code = "HTTP_301" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/api/*"] }}]
action = {{ type = "forward", target_group = "api" }}

[target_group.api]
targets = ["{target}"]
health_check = {{ enabled = false }}
"#,
        log.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    eventually(scaled(Duration::from_secs(5)), async || lines(path).len() >= n).await;
    lines(path)
}

async fn traffic(alb: &HostAlb) {
    let client = Client::new();
    let ok = client
        .get(&alb.url("web", "/api/items?x=1"))
        .await
        .expect("forward");
    assert_eq!(ok.status, 200);
    let moved = client.get(&alb.url("web", "/old")).await.expect("redirect");
    assert_eq!(moved.status, 301);
    let none = client.get(&alb.url("web", "/nothing")).await.expect("fixed");
    assert_eq!(none.status, 404);
    let bad = raw_exchange(
        alb.listener("web"),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        scaled(Duration::from_secs(5)),
    )
    .await;
    assert!(
        bad.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_one_line_that_athena_parses() {
    let backend = Backend::start("api").await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let alb = start(&config(&log, "alb", backend.addr())).await;
    traffic(&alb).await;
    let got = wait_lines(&log, 4).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let re = regex::Regex::new(ATHENA).expect("regex");
    let parsed: Vec<Vec<String>> = got
        .iter()
        .map(|l| {
            let caps = re
                .captures(l)
                .unwrap_or_else(|| panic!("Athena's regex does not parse:\n{l}"));
            caps.iter()
                .map(|m| m.map(|m| m.as_str().to_owned()).unwrap_or_default())
                .collect()
        })
        .collect();
    let by_status = |s: &str| {
        parsed
            .iter()
            .find(|f| f[11] == s)
            .unwrap_or_else(|| panic!("no {s} line in {got:#?}"))
    };
    let fwd = by_status("200");
    assert_eq!(fwd[1], "http");
    assert_eq!(fwd[6], backend.addr().ip().to_string());
    assert_eq!(fwd[7], backend.addr().port().to_string());
    assert_eq!(fwd[12], "200", "target status");
    assert_eq!(fwd[15], "GET");
    assert_eq!(
        fwd[16],
        format!("http://127.0.0.1:{}/api/items?x=1", alb.listener("web").port())
    );
    assert!(fwd[21].contains(":targetgroup/api/"), "{fwd:?}");
    assert!(fwd[22].starts_with("Root=1-"), "the trace id sent: {fwd:?}");
    assert_eq!((fwd[25].as_str(), fwd[27].as_str()), ("10", "forward"));
    assert!(fwd[13].parse::<u64>().expect("received") > 0);
    assert!(fwd[14].parse::<u64>().expect("sent") > 0);
    for t in [&fwd[8], &fwd[9], &fwd[10]] {
        assert!(t.parse::<f64>().expect("seconds") >= 0.0, "{fwd:?}");
    }
    // The trace id the target received is the one logged.
    let sent = backend.requests()[0].header("x-amzn-trace-id").map(str::to_owned);
    assert_eq!(sent.as_deref(), Some(fwd[22].as_str()));

    let redirect = by_status("301");
    assert_eq!((redirect[8].as_str(), redirect[12].as_str()), ("-1", "-"));
    assert_eq!((redirect[25].as_str(), redirect[27].as_str()), ("5", "redirect"));
    assert!(redirect[28].ends_with("/new"), "{redirect:?}");

    let fixed = by_status("404");
    assert_eq!((fixed[25].as_str(), fixed[27].as_str()), ("0", "fixed-response"));

    let refused = by_status("400");
    assert_eq!((refused[25].as_str(), refused[27].as_str()), ("-1", "-"));
    assert_eq!(
        refused[29], "-",
        "ALB's error_reason names apply to actions hostalb has not"
    );
    assert_eq!(
        (refused[32].as_str(), refused[33].as_str()),
        ("Severe", "BadContentLength"),
        "desync classification: {refused:?}"
    );
    assert_eq!((fwd[32].as_str(), fwd[33].as_str()), ("-", "-"), "compliant");
    // One connection id per connection; four connections here.
    let mut ids: Vec<&String> = parsed.iter().map(|f| &f[34]).collect();
    ids.dedup();
    assert!(
        ids.iter().all(|id| id.starts_with("TID_") && id.len() == 36),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_name_the_fields() {
    let backend = Backend::start("api").await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.json");
    let alb = start(&config(&log, "json", backend.addr())).await;
    traffic(&alb).await;
    let got = wait_lines(&log, 4).await;
    let values: Vec<serde_json::Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let fwd = values
        .iter()
        .find(|v| v["elb_status_code"] == 200)
        .expect("the forwarded request");
    assert_eq!(fwd["actions_executed"], "forward");
    assert_eq!(fwd["matched_rule_priority"], 10);
    assert_eq!(fwd["target:port"], backend.addr().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_after_logrotate_moved_it() {
    let backend = Backend::start("api").await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let alb = start(&config(&log, "alb", backend.addr())).await;
    let client = Client::new();
    client.get(&alb.url("web", "/api/one")).await.expect("first");
    wait_lines(&log, 1).await;
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(alb.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
    assert!(
        alb.wait_stderr("reopening the access log", scaled(Duration::from_secs(5)))
            .await,
        "{}",
        alb.stderr_text()
    );
    client.get(&alb.url("web", "/api/two")).await.expect("second");
    let fresh = wait_lines(&log, 1).await;
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    assert!(fresh[0].contains("/api/two"), "{fresh:#?}");
    assert_eq!(lines(&rotated).len(), 1, "the old file keeps its entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_log_path_that_cannot_be_opened_is_refused_with_the_fix() {
    let backend = Backend::start("api").await;
    let log = Path::new("/nonexistent-dir-for-hostalb/access.log");
    let result = HostAlb::builder(crate::common::bin())
        .config(config(log, "alb", backend.addr()))
        .try_start()
        .await;
    let err = result.expect_err("a log that cannot be opened stops the start");
    let text = format!("{err:?}");
    assert!(text.contains("access_log.path"), "{text}");
}

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs aws-log-parser from PyPI into target/pyenv)"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_log_parser_reads_every_line() {
    let backend = Backend::start("api").await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let alb = start(&config(&log, "alb", backend.addr())).await;
    traffic(&alb).await;
    wait_lines(&log, 4).await;
    let script = r#"
import json, sys
from aws_log_parser import AwsLogParser, LogType
parser = AwsLogParser(log_type=LogType.LoadBalancer)
with open(sys.argv[1]) as f:
    lines = f.read().splitlines()
out = []
for e in parser.parse(lines):
    out.append({
        "status": e.elb_status_code,
        "target_status": e.target_status_code,
        "method": e.http_request.method,
        "path": e.http_request.path,
        "rule": e.matched_rule_priority,
        "actions": e.actions_executed,
        "trace": e.trace_id,
    })
print(json.dumps(out))
"#;
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&log)
        .output()
        .expect("run the venv's python");
    assert!(
        output.status.success(),
        "aws-log-parser failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        lines(&log).join("\n")
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(parsed.len(), 4, "{parsed:#?}");
    let fwd = parsed
        .iter()
        .find(|e| e["status"] == 200)
        .expect("the forwarded request");
    assert_eq!(fwd["target_status"], 200);
    assert_eq!(
        (&fwd["method"], &fwd["path"]),
        (&"GET".into(), &"/api/items".into())
    );
    assert_eq!(fwd["rule"], 10);
    assert_eq!(fwd["actions"], serde_json::json!(["forward"]));
    assert!(
        fwd["trace"].as_str().is_some_and(|t| t.starts_with("Root=1-")),
        "{fwd}"
    );
    assert!(parsed.iter().any(|e| e["status"] == 400), "{parsed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_entries_name_the_cipher_protocol_sni_and_certificate() {
    let backend = Backend::start("api").await;
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
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
            "/CN=shop.example",
            "-addext",
            "subjectAltName=DNS:shop.example",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let log = dir.path().join("access.log");
    let text = config(&log, "alb", backend.addr()).replace(
        "address = \"127.0.0.1:0\"\n",
        &format!(
            "address = \"127.0.0.1:0\"\nprotocol = \"HTTPS\"\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n",
            cert.display(),
            key.display()
        ),
    );
    let alb = start(&text).await;
    let port = alb.listener("web").port();
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "--tlsv1.3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("shop.example:{port}:127.0.0.1"))
        .arg(format!("https://shop.example:{port}/api/tls"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    let got = wait_lines(&log, 1).await;
    let re = regex::Regex::new(ATHENA).expect("regex");
    let caps = re
        .captures(&got[0])
        .unwrap_or_else(|| panic!("not parsed: {}", got[0]));
    let field = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
    assert_eq!(field(1), "https");
    assert_eq!(field(16), format!("https://shop.example:{port}/api/tls"));
    assert!(
        field(19).starts_with("TLS_"),
        "a TLS 1.3 suite in OpenSSL's naming: {}",
        got[0]
    );
    assert_eq!(field(20), "TLSv1.3");
    assert_eq!(field(23), "shop.example", "domain_name is the SNI");
    assert!(
        field(24).starts_with("arn:aws:acm:us-east-1:000000000000:certificate/"),
        "{}",
        got[0]
    );
}
