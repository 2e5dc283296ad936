//! ECS's native blue/green deployments on the real Docker engine, driven by boto3
//! (tests/python/ecs_bluegreen.py) against the real binary: two target groups, a
//! production listener rule and a test listener's default rule forwarding to both; a
//! BLUE_GREEN deployment under load (test traffic on green first, then production, blue
//! stopped, nothing lost), a LINEAR one with its intermediate weights (the groups' roles
//! swapped), a CANARY one rolled back by the circuit breaker, a CANARY one taken up again
//! after hostalb is killed, and the inputs ECS refuses.
//! An ECS minute lasts 1 s here (`HOSTALB_ECS_MINUTE_SECONDS`).

use std::time::{Duration, Instant};

use hostalb_testkit::HostAlb;
use hostalb_testkit::docker::{TEST_IMAGE, docker_host, docker_ok, http_get, require_docker};
use serde_json::{Value, json};

use crate::common::{bin, free_port};
use crate::ecs_support::{self as support, endpoint, test_labels};

/// How long the clients get for one script run.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(90);
/// Patience for a deployment (green tasks start, two health checks 5 s apart, the shift,
/// blue drained for 1 s and stopped).
const DEPLOY_PATIENCE: Duration = Duration::from_secs(120);
/// Seconds per ECS minute in these tests.
const MINUTE_SECONDS: &str = "1";

/// Runs tests/python/`file` with `args` (the endpoint second); its JSON output.
async fn py(file: &str, command: &str, endpoint: &str, args: &[&str]) -> Value {
    support::script(file, command, endpoint, args, SCRIPT_PATIENCE).await
}

async fn bg(command: &str, endpoint: &str, args: &[&str]) -> Value {
    py("ecs_bluegreen.py", command, endpoint, args).await
}

async fn start(state: &std::path::Path) -> HostAlb {
    HostAlb::builder(bin())
        .env("HOSTALB_ECS_MINUTE_SECONDS", MINUTE_SECONDS)
        .config(support::config(state, &docker_host()))
        .start()
        .await
}

/// A unique name, short enough for a target group's (the process id cut to 5 digits).
fn unique(tag: &str) -> String {
    support::unique_from(tag, std::process::id() % 100_000)
}

/// A web-only task definition answering `x-backend: <backend>`.
fn web_td(family: &str, backend: &str) -> Value {
    json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": TEST_IMAGE, "stopTimeout": 5,
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "environment": [{"name": "BACKEND_NAME", "value": backend}],
            "dockerLabels": test_labels(),
        }]
    })
}

/// Registers a revision (the AWS CLI, through tests/python/ecs_api.py); its ARN.
async fn register(ep: &str, family: &str, backend: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("td.json");
    std::fs::write(&path, web_td(family, backend).to_string()).unwrap();
    let out = py("ecs_api.py", "register", ep, &[path.to_str().unwrap()]).await;
    out["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A test's resources: the load balancer's listeners, groups and rules, the service.
struct Setup {
    ep: String,
    ctx: String,
    cluster: String,
    name: String,
    prod: u16,
    test: u16,
}

impl Setup {
    async fn new(alb: &HostAlb, tag: &str) -> Setup {
        let ep = endpoint(alb);
        let name = unique(tag);
        let (prod, test) = (free_port(), free_port());
        let ctx = bg("setup", &ep, &[&name, &prod.to_string(), &test.to_string()]).await;
        Setup {
            ep,
            ctx: ctx.to_string(),
            cluster: unique("cl"),
            name,
            prod,
            test,
        }
    }

    async fn state(&self) -> Value {
        bg("state", &self.ep, &[&self.ctx, &self.cluster, &self.name]).await
    }

    async fn update(&self, td: &str, config: &str) -> Value {
        bg("update", &self.ep, &[&self.cluster, &self.name, td, config]).await
    }

    /// The service's state once `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        support::poll(
            DEPLOY_PATIENCE,
            Duration::from_millis(300),
            &format!("never {what}"),
            || self.state(),
            done,
        )
        .await
    }
}

/// One deployment, COMPLETED, of `td`, every task of it, and `prod` weights (A, B).
fn settled(s: &Value, td: &str, prod: [u64; 2]) -> bool {
    let ds = s["deployments"].as_array().unwrap();
    ds.len() == 1
        && ds[0]["rolloutState"] == "COMPLETED"
        && ds[0]["taskDefinition"] == td
        && s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["taskDefinitionArn"] == td)
        && s["prod"] == json!(prod)
}

/// The `x-backend` of one request to the port; `None` when it failed.
fn backend(port: u16) -> Option<String> {
    let r = http_get(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        "/",
        Duration::from_secs(5),
    )
    .ok()?;
    (r.status == 200).then(|| r.header("x-backend").unwrap_or_default().to_owned())
}

async fn answers(port: u16, n: usize) -> Vec<Option<String>> {
    tokio::task::spawn_blocking(move || (0..n).map(|_| backend(port)).collect())
        .await
        .unwrap()
}

fn events_have(s: &Value, want: &str) -> bool {
    s["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains(want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_blue_green_inputs_name_their_field_and_make_nothing() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let _containers = support::OwnContainers;
    let alb = start(&dir.path().join("s.json")).await;
    let s = Setup::new(&alb, "bgno").await;
    let family = unique("bgno");
    register(&s.ep, &family, "rev1").await;
    let out = bg("refused", &s.ep, &[&s.ctx, &s.cluster, &family]).await;
    let want = [
        (
            "no bake time",
            "InvalidParameterException",
            "bakeTimeInMinutes is required",
        ),
        ("linear step 2", "InvalidParameterException", "stepPercent"),
        (
            "linear bake 1441",
            "InvalidParameterException",
            "stepBakeTimeInMinutes",
        ),
        ("canary 0.05", "InvalidParameterException", "canaryPercent"),
        (
            "canary config with linear",
            "InvalidParameterException",
            "canaryConfiguration",
        ),
        ("lifecycle hooks", "UnsupportedFeatureException", "lifecycleHooks"),
        (
            "no advancedConfiguration",
            "InvalidParameterException",
            "advancedConfiguration is required",
        ),
        (
            "no alternate",
            "InvalidParameterException",
            "alternateTargetGroupArn is required",
        ),
        (
            "alternate is primary",
            "InvalidParameterException",
            "alternateTargetGroupArn must differ",
        ),
        ("no role", "InvalidParameterException", "roleArn is required"),
        ("bad role", "InvalidParameterException", "roleArn `admin`"),
        (
            "missing rule",
            "InvalidParameterException",
            "productionListenerRule",
        ),
        (
            "rule forwards to A only",
            "InvalidParameterException",
            "productionListenerRule",
        ),
        (
            "test rule forwards to A only",
            "InvalidParameterException",
            "testListenerRule",
        ),
    ];
    let cases = out["cases"].as_array().unwrap();
    for c in cases {
        eprintln!("refused: {c}");
    }
    assert_eq!(cases.len(), want.len(), "{out:#}");
    for ((label, code, text), got) in want.iter().zip(cases) {
        assert_eq!(got[0], *label);
        assert_eq!(got[1], *code, "{label}: {got}");
        assert!(got[2].as_str().unwrap().contains(text), "{label}: {got}");
    }
    assert!(
        cases[12][2]
            .as_str()
            .unwrap()
            .contains("must forward to the target group"),
        "{out:#}"
    );
    assert_eq!(out["services"], json!([]), "nothing was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_shifts_test_then_production_traffic_under_load_and_linear_steps() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let _containers = support::OwnContainers;
    let alb = start(&dir.path().join("s.json")).await;
    let s = Setup::new(&alb, "bgbg").await;
    let family = unique("bgbg");
    let rev1 = register(&s.ep, &family, "rev1").await;
    let made = bg(
        "create",
        &s.ep,
        &[
            &s.ctx,
            &s.cluster,
            &s.name,
            &family,
            "2",
            r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}"#,
        ],
    )
    .await;
    let made = &made["ok"];
    assert_eq!(
        made["deploymentConfiguration"]["strategy"], "BLUE_GREEN",
        "{made:#}"
    );
    assert_eq!(
        made["deploymentConfiguration"]["bakeTimeInMinutes"], 0,
        "{made:#}"
    );
    assert!(
        made["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"].is_string(),
        "{made:#}"
    );
    // The first deployment: green is targetGroupArn (A), production already forwards there.
    let first = s.until("rev1 serving", |x| settled(x, &rev1, [100, 0])).await;
    assert_eq!(first["test"], json!([100, 0]), "{first:#}");
    assert_eq!(first["targets"]["a"].as_array().unwrap().len(), 2, "{first:#}");
    assert!(
        answers(s.prod, 4)
            .await
            .iter()
            .all(|b| b.as_deref() == Some("rev1"))
    );

    // BLUE_GREEN to rev2 under steady load.
    let rev2 = register(&s.ep, &family, "rev2").await;
    let blue: Vec<String> = first["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["arn"].as_str().unwrap().to_owned())
        .collect();
    let load = hostalb_testkit::LoadGen::start(
        format!("http://127.0.0.1:{}/", s.prod),
        4,
        DEPLOY_PATIENCE + Duration::from_secs(30),
    );
    // Which of test and production answered rev2 first (polled every 50 ms).
    let (prod_port, test_port) = (s.prod, s.test);
    let watcher = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let (mut test_at, mut prod_at, mut test_only) = (None, None, 0u32);
        while began.elapsed() < DEPLOY_PATIENCE && (test_at.is_none() || prod_at.is_none()) {
            let t = backend(test_port);
            let p = backend(prod_port);
            if t.as_deref() == Some("rev2") {
                test_at.get_or_insert(began.elapsed());
                if p.as_deref() == Some("rev1") {
                    test_only += 1;
                }
            }
            if p.as_deref() == Some("rev2") {
                prod_at.get_or_insert(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (test_at, prod_at, test_only)
    });
    let began = Instant::now();
    let up = s.update(&rev2, "").await;
    assert_eq!(up["ok"]["taskDefinition"], rev2.as_str(), "{up:#}");
    // Another deployment while this one runs is refused.
    let again = s.update(&rev1, "").await;
    assert_eq!(again["code"], "InvalidParameterException", "{again:#}");
    assert!(
        again["message"].as_str().unwrap().contains("in progress"),
        "{again:#}"
    );
    let done = loop {
        let x = s.state().await;
        let stopped = x["stopped"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| blue.contains(&t[0].as_str().unwrap().to_owned()) && t[1] == "STOPPED")
            .count();
        if stopped == blue.len() && settled(&x, &rev2, [0, 100]) {
            break x;
        }
        assert!(
            began.elapsed() < DEPLOY_PATIENCE,
            "the deployment never completed: {x:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = began.elapsed();
    let report = load.stop().await;
    let (test_at, prod_at, test_only) = watcher.await.unwrap();
    let failed = report.error_count + report.non_2xx.iter().map(|(_, n)| n).sum::<u64>();
    eprintln!(
        "BLUE_GREEN deployment of 2 tasks (bake 0, deregistration delay 1 s): UpdateService to blue STOPPED {:.1} s; \
         {} requests, {failed} failed, backends {:?}; test answered rev2 at {test_at:?}, production at {prod_at:?}",
        took.as_secs_f64(),
        report.total,
        report.backends
    );
    assert_eq!(report.error_count, 0, "no failed request: {:?}", report.errors);
    assert!(report.non_2xx.is_empty(), "{:?}", report.non_2xx);
    let (test_at, prod_at) = (
        test_at.expect("test traffic reached rev2"),
        prod_at.expect("production reached rev2"),
    );
    assert!(test_at < prod_at, "test traffic first: {test_at:?} {prod_at:?}");
    assert!(test_only >= 1, "seen: test on rev2 while production on rev1");
    assert_eq!(done["test"], json!([0, 100]), "{done:#}");
    assert_eq!(done["targets"]["a"], json!([]), "blue deregistered: {done:#}");
    assert_eq!(done["targets"]["b"].as_array().unwrap().len(), 2, "{done:#}");
    for want in [
        "test traffic shifted to the new service revision",
        "production traffic shifted: 100% on the new service revision",
        "has stopped 2 running tasks",
        "deployment completed",
    ] {
        assert!(events_have(&done, want), "event `{want}`: {done:#}");
    }
    assert!(
        answers(s.prod, 4)
            .await
            .iter()
            .all(|b| b.as_deref() == Some("rev2"))
    );

    // LINEAR to rev3, 25 % every 3 minutes (3 s here): back into A, the weights in steps.
    let rev3 = register(&s.ep, &family, "rev3").await;
    let linear = r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 0,
        "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 3}}"#;
    let up = s.update(&rev3, linear).await;
    assert_eq!(
        up["ok"]["deploymentConfiguration"]["linearConfiguration"]["stepPercent"], 25.0,
        "{up:#}"
    );
    let began = Instant::now();
    let mut seen: Vec<Value> = Vec::new();
    let done = loop {
        let x = s.state().await;
        if seen.last() != Some(&x["prod"]) {
            seen.push(x["prod"].clone());
        }
        if settled(&x, &rev3, [100, 0]) && x["tasks"].as_array().unwrap().len() == 2 {
            break x;
        }
        assert!(
            began.elapsed() < DEPLOY_PATIENCE,
            "LINEAR never completed: {x:#} {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("LINEAR production weights (A, B) seen: {seen:?}");
    let allowed = [
        json!([0, 100]),
        json!([25, 75]),
        json!([50, 50]),
        json!([75, 25]),
        json!([100, 0]),
    ];
    assert!(seen.iter().all(|w| allowed.contains(w)), "{seen:?}");
    let intermediate = seen.iter().filter(|w| allowed[1..4].contains(w)).count();
    // A state read takes about a second (more on a loaded machine): at least one of the
    // three 3 s steps is seen.
    assert!(intermediate >= 1, "intermediate weights seen: {seen:?}");
    let order: Vec<usize> = seen
        .iter()
        .map(|w| allowed.iter().position(|a| a == w).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "only toward green: {seen:?}"
    );
    assert!(
        events_have(
            &done,
            "production traffic shifted: 25% on the new service revision"
        ),
        "{done:#}"
    );
    assert_eq!(done["test"], json!([100, 0]), "{done:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_green_tasks_fail_rolls_traffic_back_to_blue() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let _containers = support::OwnContainers;
    let alb = start(&dir.path().join("s.json")).await;
    let s = Setup::new(&alb, "bgcan").await;
    let family = unique("bgcan");
    let rev1 = register(&s.ep, &family, "rev1").await;
    // The canary bakes for 600 minutes (600 s here): long enough to fail green tasks in.
    let canary = r#"{"strategy": "CANARY", "bakeTimeInMinutes": 0,
        "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 600},
        "deploymentCircuitBreaker": {"enable": true, "rollback": true}}"#;
    let made = bg(
        "create",
        &s.ep,
        &[&s.ctx, &s.cluster, &s.name, &family, "2", canary],
    )
    .await;
    assert_eq!(
        made["ok"]["deploymentConfiguration"]["strategy"], "CANARY",
        "{made:#}"
    );
    s.until("rev1 serving", |x| settled(x, &rev1, [100, 0])).await;

    let rev2 = register(&s.ep, &family, "rev2").await;
    s.update(&rev2, "").await;
    let canary = s
        .until("the canary's weights", |x| x["prod"] == json!([80, 20]))
        .await;
    assert_eq!(
        canary["test"],
        json!([0, 100]),
        "test traffic on green: {canary:#}"
    );
    let ds = bg("deployments", &s.ep, &[&s.cluster, &s.name]).await;
    assert_eq!(ds["listed"][0][0], "IN_PROGRESS", "{ds:#}");
    assert_eq!(ds["listed"][1][0], "SUCCESSFUL", "{ds:#}");
    let now = &ds["described"][0];
    assert_eq!(now["lifecycleStage"], "PRODUCTION_TRAFFIC_SHIFT", "{ds:#}");
    assert_eq!(
        now["targetServiceRevision"]["requestedProductionTrafficWeight"], 20.0,
        "{ds:#}"
    );
    assert_eq!(
        now["targetServiceRevision"]["requestedTestTrafficWeight"], 100.0,
        "{ds:#}"
    );
    assert_eq!(
        now["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"], 80.0,
        "{ds:#}"
    );
    assert_eq!(now["deploymentCircuitBreaker"]["status"], "MONITORING", "{ds:#}");
    assert_eq!(ds["failures"], json!(["MISSING"]), "{ds:#}");
    let mixed = answers(s.prod, 40).await;
    assert!(mixed.iter().any(|b| b.as_deref() == Some("rev2")), "{mixed:?}");
    assert!(mixed.iter().any(|b| b.as_deref() == Some("rev1")), "{mixed:?}");

    // Green tasks fail (their web killed) until the breaker trips: 3 failures.
    let began = Instant::now();
    let mut killed: Vec<String> = Vec::new();
    let back = loop {
        let x = s.state().await;
        if x["deployments"].as_array().unwrap().len() == 1 && settled(&x, &rev1, [100, 0]) {
            break x;
        }
        for t in x["tasks"].as_array().unwrap() {
            let web = t["web"].as_str().unwrap_or_default().to_owned();
            if t["taskDefinitionArn"] == rev2.as_str()
                && t["lastStatus"] == "RUNNING"
                && !killed.contains(&web)
            {
                let _ = docker_ok(["kill", web.as_str()]);
                killed.push(web);
            }
        }
        assert!(began.elapsed() < DEPLOY_PATIENCE, "never rolled back: {x:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(killed.len() >= 3, "{killed:?}");
    assert_eq!(
        back["test"],
        json!([100, 0]),
        "test traffic back on blue: {back:#}"
    );
    assert_eq!(back["taskDefinition"], rev1.as_str(), "{back:#}");
    assert_eq!(back["deployments"][0]["status"], "PRIMARY", "{back:#}");
    for want in [
        "deployment failed: tasks failed to start",
        "rolling back",
        "rollback completed",
    ] {
        assert!(events_have(&back, want), "event `{want}`: {back:#}");
    }
    assert_eq!(back["targets"]["b"], json!([]), "green deregistered: {back:#}");
    assert!(
        answers(s.prod, 6)
            .await
            .iter()
            .all(|b| b.as_deref() == Some("rev1"))
    );
    let ds = bg("deployments", &s.ep, &[&s.cluster, &s.name]).await;
    assert_eq!(ds["listed"][0][0], "ROLLBACK_SUCCESSFUL", "{ds:#}");
    assert_eq!(ds["rolledBack"], 1, "{ds:#}");
    let failed = &ds["described"][0];
    assert_eq!(
        failed["deploymentCircuitBreaker"]["status"], "TRIGGERED",
        "{ds:#}"
    );
    assert!(failed["rollback"]["serviceRevisionArn"].is_string(), "{ds:#}");
    assert_eq!(
        failed["targetServiceRevision"]["requestedProductionTrafficWeight"], 0.0,
        "{ds:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_taken_up_again_after_a_restart_completes() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let _containers = support::OwnContainers;
    let mut alb = start(&state).await;
    let mut s = Setup::new(&alb, "bgre").await;
    let family = unique("bgre");
    let rev1 = register(&s.ep, &family, "rev1").await;
    // 20 % for 15 minutes (15 s here, room for slow state reads): hostalb is killed during
    // the canary.
    let canary = r#"{"strategy": "CANARY", "bakeTimeInMinutes": 0,
        "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 15}}"#;
    bg(
        "create",
        &s.ep,
        &[&s.ctx, &s.cluster, &s.name, &family, "2", canary],
    )
    .await;
    s.until("rev1 serving", |x| settled(x, &rev1, [100, 0])).await;
    let rev2 = register(&s.ep, &family, "rev2").await;
    s.update(&rev2, "").await;
    let during = s
        .until("the canary's weights", |x| x["prod"] == json!([80, 20]))
        .await;
    let mut green: Vec<String> = during["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["taskDefinitionArn"] == rev2.as_str())
        .map(|t| t["arn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(green.len(), 2, "{during:#}");
    green.sort();

    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    alb = start(&state).await;
    s.ep = endpoint(&alb);
    let done = s
        .until("rev2 serving after the restart", |x| settled(x, &rev2, [0, 100]))
        .await;
    let mut now: Vec<String> = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["arn"].as_str().unwrap().to_owned())
        .collect();
    now.sort();
    assert_eq!(now, green, "the same green tasks, none started again: {done:#}");
    assert!(
        events_have(
            &done,
            "production traffic shifted: 20% on the new service revision"
        ),
        "{done:#}"
    );
    assert!(
        events_have(
            &done,
            "production traffic shifted: 100% on the new service revision"
        ),
        "{done:#}"
    );
    assert!(
        answers(s.prod, 4)
            .await
            .iter()
            .all(|b| b.as_deref() == Some("rev2"))
    );
}
