//! The ELBv2 API on the admin address, driven by the real clients (boto3 and the AWS CLI
//! v1, tests/python/elbv2_api.py) against the real binary: what they create really routes,
//! health is the health checks', errors are botocore's modelled exceptions, paging ends,
//! waiters complete, state survives `kill -9`, file resources are read-only, and an admin
//! address off loopback needs a signature.

use std::process::Command;
use std::time::Duration;

use hostalb_testkit::{Backend, Client, HostAlb, LoadGen, eventually};
use serde_json::Value;

use crate::common::{bin, free_port};

/// How long the clients get for one script run (waiters included).
const SCRIPT_PATIENCE: Duration = Duration::from_secs(90);

fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs awscli and boto3 from PyPI into target/pyenv)"
        )
    })
}

fn script() -> String {
    format!("{}/tests/python/elbv2_api.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs one command of the script; its JSON output.
async fn run(endpoint: &str, args: &[&str], creds: Option<(&str, &str)>) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(script()).arg(args[0]).arg(endpoint).args(&args[1..]);
    let (key, secret) = creds.unwrap_or(("testing", "testing"));
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    let out = tokio::time::timeout(SCRIPT_PATIENCE, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the script finished in time")
        .unwrap()
        .expect("run python");
    assert!(
        out.status.success(),
        "elbv2_api.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn endpoint(alb: &HostAlb) -> String {
    format!("http://127.0.0.1:{}", alb.admin().port())
}

async fn start_with_state(state: &std::path::Path, extra: &str) -> HostAlb {
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\nstate_file = \"{}\"\n{extra}",
        state.display()
    );
    HostAlb::start(bin(), &config).await
}

async fn get(url: &str) -> (u16, String) {
    match Client::new().get(url).await {
        Ok(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
async fn clients_build_a_load_balancer_that_routes_and_survives_kill_9() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("api.state.json");
    let backend = Backend::start("api").await;
    let alb = start_with_state(&state, "").await;
    let port = free_port();
    let ep = endpoint(&alb);
    let built = run(
        &ep,
        &["build", &backend.addr().to_string(), &port.to_string()],
        None,
    )
    .await;
    assert_eq!(built["Health"][0]["TargetHealth"]["State"], "healthy", "{built}");
    assert_eq!(
        built["Health"][0]["Target"]["Port"],
        backend.addr().port(),
        "{built}"
    );
    assert_eq!(built["DNSName"], "127.0.0.1");

    // The listener made by CreateListener binds 127.0.0.1:<Port> and its rule routes.
    let url = format!("http://127.0.0.1:{port}/api/items");
    let (status, _) = get(&url).await;
    assert_eq!(status, 200);
    assert!(backend.requests().iter().any(|r| r.path() == "/api/items"));
    let (status, body) = get(&format!("http://127.0.0.1:{port}/other")).await;
    assert_eq!((status, body.as_str()), (404, "none"));

    // ModifyRule moves the route: the old path falls to the default action.
    let rule = built["RuleArn"].as_str().unwrap();
    run(&ep, &["modify-rule", rule, "/v2/*"], None).await;
    assert_eq!(get(&url).await.0, 404);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/v2/x")).await.0, 200);

    // kill -9 between calls, start again on the same state file: everything is there.
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\"FormatVersion\": 1"), "{text}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(alb.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(alb);
    let alb = start_with_state(&state, "").await;
    let ep = endpoint(&alb);
    let shown = run(&ep, &["describe"], None).await;
    assert_eq!(shown["LoadBalancers"][0]["LoadBalancerName"], "shop", "{shown}");
    assert_eq!(shown["Listeners"][0]["Port"], port, "{shown}");
    let rules = shown["Rules"][built["ListenerArn"].as_str().unwrap()]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 2, "{shown}");
    assert_eq!(
        rules[0]["Conditions"][0]["PathPatternConfig"]["Values"][0],
        "/v2/*"
    );
    assert_eq!(rules[1]["IsDefault"], true);
    eventually(Duration::from_secs(20), async || {
        get(&format!("http://127.0.0.1:{port}/v2/again")).await.0 == 200
    })
    .await;
    assert!(backend.requests().iter().any(|r| r.path() == "/v2/again"));

    // Deregistration: the waiter sees the target unused.
    let tg = built["TargetGroupArn"].as_str().unwrap();
    let gone = run(&ep, &["deregister", tg, &backend.addr().to_string()], None).await;
    assert_eq!(gone["Health"][0]["TargetHealth"]["State"], "unused", "{gone}");
    assert_eq!(
        gone["Health"][0]["TargetHealth"]["Reason"], "Target.NotRegistered",
        "{gone}"
    );
}

#[tokio::test]
async fn a_blue_green_switch_by_modify_rule_weights_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let blue = Backend::start("blue").await;
    let green = Backend::start("green").await;
    let alb = start_with_state(&dir.path().join("s.json"), "").await;
    let ep = endpoint(&alb);
    let port = free_port();
    let made = run(
        &ep,
        &[
            "bluegreen",
            &blue.addr().to_string(),
            &green.addr().to_string(),
            &port.to_string(),
        ],
        None,
    )
    .await;
    let rule = made["DefaultRuleArn"].as_str().unwrap();
    let (b, g) = (made["Blue"].as_str().unwrap(), made["Green"].as_str().unwrap());
    let url = format!("http://127.0.0.1:{port}/shift");
    let load = LoadGen::builder(&url)
        .concurrency(4)
        .max_duration(Duration::from_secs(60))
        .start();
    for (wb, wg) in [("100", "0"), ("50", "50"), ("0", "100")] {
        let before = load.done();
        run(&ep, &["weights", rule, b, wb, g, wg], None).await;
        eventually(Duration::from_secs(10), async || load.done() > before + 50).await;
    }
    let report = load.stop().await;
    assert_eq!(
        report.error_count,
        0,
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert!(report.non_2xx.is_empty(), "{:?}", report.non_2xx);
    assert!(report.ok > 150, "{}", report.ok);
    // After the last shift every request goes to green.
    let green_before = green.request_count();
    let blue_before = blue.request_count();
    for _ in 0..20 {
        assert_eq!(get(&url).await.0, 200);
    }
    assert_eq!(green.request_count() - green_before, 20);
    assert_eq!(blue.request_count(), blue_before);
}

#[tokio::test]
async fn errors_are_botocores_modelled_exceptions_and_paging_ends() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("s.json");
    let backend = Backend::start("api").await;
    let alb = start_with_state(&state, "").await;
    let ep = endpoint(&alb);
    let port = free_port();
    let built = run(
        &ep,
        &["build", &backend.addr().to_string(), &port.to_string()],
        None,
    )
    .await;
    let listener = built["ListenerArn"].as_str().unwrap();
    let tg = built["TargetGroupArn"].as_str().unwrap();
    let before = std::fs::read_to_string(&state).unwrap();
    let e = run(&ep, &["errors", listener, tg], None).await;
    let raised = |name: &str| {
        (
            e[name]["Raised"].as_str().unwrap_or("none").to_owned(),
            e[name]["Code"].clone(),
        )
    };
    assert_eq!(
        raised("DescribeMissingGroup").0,
        "TargetGroupNotFoundException",
        "{e}"
    );
    assert_eq!(
        raised("RegisterMissingGroup").0,
        "TargetGroupNotFoundException",
        "{e}"
    );
    assert_eq!(raised("PriorityTaken").0, "PriorityInUseException", "{e}");
    assert_eq!(raised("MissingListener").0, "ListenerNotFoundException", "{e}");
    assert_eq!(
        raised("MissingLoadBalancer").0,
        "LoadBalancerNotFoundException",
        "{e}"
    );
    assert_eq!(
        raised("DuplicateTargetGroup").0,
        "DuplicateTargetGroupNameException",
        "{e}"
    );
    assert_eq!(raised("GroupInUse").0, "ResourceInUseException", "{e}");
    assert_eq!(raised("InstanceTarget").0, "InvalidTargetException", "{e}");
    // The validator's problem, path and fix, as the message; nothing changed.
    assert_eq!(e["InvalidRule"]["Code"], "ValidationError", "{e}");
    assert_eq!(e["InvalidRule"]["Status"], 400, "{e}");
    let message = e["InvalidRule"]["Message"].as_str().unwrap();
    assert!(
        message.contains("listener[0].rule[1]") && message.contains("fix:"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/api/x")).await.0, 200);

    let rule = built["RuleArn"].as_str().unwrap();
    let p = run(&ep, &["priorities", listener, rule, tg], None).await;
    assert_eq!(p["Moved"], "15", "{p}");
    assert_eq!(p["Clash"], "PriorityInUseException", "{p}");
    assert_eq!(p["Priorities"], serde_json::json!(["15", "25", "default"]), "{p}");

    let paged = run(&ep, &["paging", "5"], None).await;
    assert_eq!(paged["Pages"], 3, "{paged}");
    let names: Vec<&str> = paged["Names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["shop-api", "page-0", "page-1", "page-2", "page-3", "page-4"]
    );
}

#[tokio::test]
async fn file_resources_are_read_only_but_take_registrations() {
    let state_dir = tempfile::tempdir().unwrap();
    let backend = Backend::start("files").await;
    let extra = "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\ndefault_action = { type = \"forward\", target_group = \"files\" }\n\n[target_group.files]\n[target_group.files.health_check]\npath = \"/health\"\ninterval_seconds = 5\ntimeout_seconds = 2\nhealthy_threshold = 2\n";
    let alb = start_with_state(&state_dir.path().join("s.json"), extra).await;
    let ep = endpoint(&alb);
    let out = run(&ep, &["file-resources", &backend.addr().to_string()], None).await;
    assert_eq!(
        out["ModifyTargetGroup"], "OperationNotPermittedException",
        "{out}"
    );
    assert_eq!(out["DeleteListener"], "OperationNotPermittedException", "{out}");
    assert_eq!(out["AddTags"], "OperationNotPermittedException", "{out}");
    let (status, _) = get(&alb.url("web", "/registered")).await;
    assert_eq!(status, 200);
    assert!(backend.requests().iter().any(|r| r.path() == "/registered"));
}

#[tokio::test]
async fn an_admin_address_off_loopback_needs_a_valid_signature() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[admin]\naddress = \"0.0.0.0:0\"\naccess_key_id = \"AKIDHOSTALB\"\nsecret_access_key = \"s3cret\"\nstate_file = \"{}\"\n",
        dir.path().join("s.json").display()
    );
    let alb = HostAlb::start(bin(), &config).await;
    let ep = endpoint(&alb);
    let good = run(&ep, &["signed"], Some(("AKIDHOSTALB", "s3cret"))).await;
    assert_eq!(good["Ok"], true, "{good}");
    let wrong = run(&ep, &["signed"], Some(("AKIDHOSTALB", "wrong"))).await;
    assert_eq!(
        (wrong["Status"].as_u64(), wrong["Code"].as_str()),
        (Some(403), Some("InvalidSignature")),
        "{wrong}"
    );
    let unknown = run(&ep, &["signed"], Some(("OTHER", "s3cret"))).await;
    assert_eq!(unknown["Status"], 403, "{unknown}");
    // Unsigned: refused too.
    let r = Client::new()
        .request(
            "POST",
            &format!("{ep}/"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=DescribeLoadBalancers&Version=2015-12-01",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("<Code>InvalidSignature</Code>"));
}

#[tokio::test]
async fn loopback_calls_route_by_service_and_ecs_is_not_served_yet() {
    let dir = tempfile::tempdir().unwrap();
    let alb = start_with_state(&dir.path().join("s.json"), "").await;
    let ep = endpoint(&alb);
    let client = Client::new();
    let r = client
        .request(
            "POST",
            &format!("{ep}/"),
            &[
                ("content-type", "application/x-amz-json-1.1"),
                (
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.NoSuchOperation",
                ),
            ],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        body["__type"]
            .as_str()
            .unwrap()
            .contains("UnknownOperationException"),
        "{body}"
    );
    let r = client
        .request(
            "POST",
            &format!("{ep}/"),
            &[],
            "Action=DescribeLoadBalancers&Version=2012-06-01",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("InvalidParameterValue"));
    let r = client
        .request(
            "POST",
            &format!("{ep}/"),
            &[],
            "Action=DescribeLoadBalancers&Version=2015-12-01",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("<DescribeLoadBalancersResult>") && text.contains("<RequestId>"),
        "{text}"
    );
}

#[tokio::test]
async fn a_corrupt_or_newer_state_file_is_refused_and_kept() {
    for (text, expect) in [
        ("{\"FormatVersion\": 1,", "cannot be read"),
        ("{\"FormatVersion\": 9}", "newer hostalb"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.json");
        std::fs::write(&state, text).unwrap();
        let config = format!(
            "[admin]\naddress = \"127.0.0.1:0\"\nstate_file = \"{}\"\n",
            state.display()
        );
        let err = HostAlb::builder(bin())
            .config(config)
            .try_start()
            .await
            .expect_err("a bad state file stops the start");
        assert!(
            err.stderr.contains(&state.display().to_string()),
            "{}",
            err.stderr
        );
        assert!(
            err.stderr.contains(expect) && err.stderr.contains("fix:"),
            "{}",
            err.stderr
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), text);
    }
}

/// One Query call, unsigned (the admin address is loopback): status and XML.
async fn query(ep: &str, form: &str) -> (u16, String) {
    let r = Client::new()
        .request(
            "POST",
            &format!("{ep}/"),
            &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
            form.to_owned(),
        )
        .await
        .unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no {name} in {xml}"));
    let end = xml[start..].find('<').map(|i| start + i).unwrap();
    &xml[start..end]
}

#[tokio::test]
async fn api_listeners_bind_the_configured_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\napi_listener_address = \"127.0.0.2\"\nstate_file = \"{}\"\n",
        dir.path().join("t.json").display()
    );
    let alb = HostAlb::start(bin(), &config).await;
    let ep = endpoint(&alb);
    let (status, xml) = query(&ep, "Action=CreateLoadBalancer&Version=2015-12-01&Name=local").await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "DNSName"), "127.0.0.2");
    let lb = element(&xml, "LoadBalancerArn").to_owned();
    let port = free_port();
    let form = format!(
        "Action=CreateListener&Version=2015-12-01&LoadBalancerArn={}&Protocol=HTTP&Port={port}\
         &DefaultActions.member.1.Type=fixed-response\
         &DefaultActions.member.1.FixedResponseConfig.StatusCode=200\
         &DefaultActions.member.1.FixedResponseConfig.MessageBody=here",
        hostalb_aws::query::encode_component(&lb)
    );
    let (status, xml) = query(&ep, &form).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<CreateListenerResult>") && xml.contains("<RequestId>"),
        "{xml}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.2:{port}/")).await,
        (200, "here".to_owned())
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/")).await.0,
        0,
        "nothing on 127.0.0.1"
    );
}

/// A self-signed certificate for `name` at `cert` and `key` (openssl, Debian's package).
fn certificate(cert: &std::path::Path, key: &std::path::Path, name: &str) {
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

#[tokio::test]
async fn https_listeners_read_their_certificates_beside_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    certificate(
        &certs.join("local-1.pem"),
        &certs.join("local-1.key"),
        "shop.example",
    );
    certificate(
        &certs.join("local-2.pem"),
        &certs.join("local-2.key"),
        "api.example",
    );
    let alb = start_with_state(&dir.path().join("s.json"), "").await;
    let ep = endpoint(&alb);
    let port = free_port();
    let out = run(&ep, &["https", &port.to_string(), "local-1", "local-2"], None).await;
    assert_eq!(out["Missing"], "CertificateNotFoundException", "{out}");
    assert!(
        out["MissingMessage"].as_str().unwrap().contains("missing.pem"),
        "{out}"
    );
    assert_eq!(out["Listener"]["Protocol"], "HTTPS");
    assert_eq!(out["Listener"]["SslPolicy"], "ELBSecurityPolicy-2016-08");
    assert_eq!(out["WithSecond"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(out["AfterRemove"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["AfterRemove"][0]["IsDefault"], true, "{out}");
    assert_eq!(
        out["Described"]["Certificates"].as_array().unwrap().len(),
        1,
        "{out}"
    );
    assert!(
        out["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "ELBSecurityPolicy-2016-08")
    );
    let curl = Command::new("curl")
        .args(["-sk", "-w", " %{http_code}"])
        .arg("--resolve")
        .arg(format!("shop.example:{port}:127.0.0.1"))
        .arg(format!("https://shop.example:{port}/"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "tls 200", "{curl:?}");
}

/// `hostalb check --config FILE` reads the state file the run would use and names it.
#[tokio::test]
async fn check_reports_the_state_file_problems() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hostalb.toml");
    let state = dir.path().join("s.json");
    std::fs::write(
        &config,
        "[admin]\naddress = \"127.0.0.1:0\"\nstate_file = \"s.json\"\n",
    )
    .unwrap();
    let check = || {
        let out = Command::new(bin())
            .args(["check", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // No state file: nothing to say of it.
    let (code, stdout) = check();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("s.json"), "{stdout}");
    for (text, expect) in [
        ("{\"FormatVersion\": 1,", "cannot be read"),
        ("{\"FormatVersion\": 9}", "newer hostalb"),
    ] {
        std::fs::write(&state, text).unwrap();
        let (code, stdout) = check();
        assert_eq!(code, Some(1), "{stdout}");
        let shown = state.display().to_string();
        assert!(
            stdout.contains(&format!("{shown}: error: state file {shown}: ")) && stdout.contains(expect),
            "{stdout}"
        );
        assert!(stdout.contains("state file invalid"), "{stdout}");
        assert_eq!(std::fs::read_to_string(&state).unwrap(), text, "left as it was");
    }
    std::fs::write(
        &state,
        r#"{"FormatVersion": 1, "LoadBalancers": [], "Listeners": [], "Rules": [], "TargetGroups": [],
            "Attributes": {}, "Tags": {}, "Registrations": {}}"#,
    )
    .unwrap();
    let (code, stdout) = check();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("state file valid"), "{stdout}");
}

/// One scenario (every action, each condition type, weighted forwards, the modelled
/// errors) run by boto3 against hostalb and against moto's server: the parsed answers
/// agree but for the differences tests/python/elbv2_moto_diff.py lists with their reasons.
#[tokio::test]
async fn answers_agree_with_moto_but_for_the_known_differences() {
    let dir = tempfile::tempdir().unwrap();
    let alb = start_with_state(&dir.path().join("s.json"), "").await;
    let script = format!("{}/tests/python/elbv2_moto_diff.py", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(endpoint(&alb)).arg(free_port().to_string());
    let out = tokio::time::timeout(SCRIPT_PATIENCE, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the script finished in time")
        .unwrap()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(report["unexpected"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["uncalled"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["stale"], serde_json::json!([]), "{report:#}");
    assert!(out.status.success(), "{report:#}");
    // The modelled errors were answered (and moto answered the same, else unexpected).
    for (step, code) in [
        ("CreateTargetGroup.duplicate", "DuplicateTargetGroupName"),
        ("DescribeTargetGroups.missing", "TargetGroupNotFound"),
        ("CreateRule.PriorityInUse", "PriorityInUse"),
        ("CreateRule.TargetGroupNotFound", "TargetGroupNotFound"),
        ("SetRulePriorities.PriorityInUse", "PriorityInUse"),
        ("DescribeLoadBalancers.missing", "LoadBalancerNotFound"),
        ("DeleteTargetGroup.in-use", "ResourceInUse"),
        ("DeleteListener.missing", "ListenerNotFound"),
    ] {
        assert_eq!(report["errors"][step], code, "{report:#}");
    }
    assert!(report["calls"].as_u64().unwrap() >= 50, "{report:#}");
}
