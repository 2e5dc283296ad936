//! An ECS service behind a listener, driven end to end by the real clients against the
//! real binary and Docker engine: boto3 (tests/python/ecs_boto3.py, with its waiters) and
//! `aws ecs` / `aws elbv2` from the AWS CLI v1 (register-task-definition from a JSON file,
//! create-service with --load-balancers, update-service, describe-services, wait
//! services-stable, delete-service; a BLUE_GREEN service with advancedConfiguration over
//! rules made with `aws elbv2`, its deployments listed and described, a broken revision
//! rolled back by the circuit breaker). Each asserts what the listener answers and the
//! shapes the API answers with.

use std::time::Duration;

use hostalb_testkit::docker::{TEST_IMAGE, docker_host, require_docker};
use hostalb_testkit::{Client, HostAlb, LoadGen};
use serde_json::{Value, json};

use crate::common::{bin, free_port};
use crate::ecs_support::{self as support, endpoint, test_labels, unique};

/// How long one client run may take (waiters included: `aws ecs wait` polls every 15 s).
const CLIENT_PATIENCE: Duration = Duration::from_secs(240);
/// Patience for the listener to answer from the service's tasks after the waiter.
const ROUTED_PATIENCE: Duration = Duration::from_secs(30);

/// `aws --endpoint-url EP --output json ARGS...` (the CLI v1 of the venv).
async fn aws(ep: &str, args: &[&str]) -> Value {
    support::python_json(
        &format!("aws {}", args.join(" ")),
        support::aws_args(ep, args),
        CLIENT_PATIENCE,
    )
    .await
}

/// One step of tests/python/ecs_boto3.py.
async fn boto3(step: &str, ep: &str, args: &[&str]) -> Value {
    support::script("ecs_boto3.py", step, ep, args, CLIENT_PATIENCE).await
}

async fn start(state: &std::path::Path, docker: &str) -> HostAlb {
    HostAlb::start(bin(), &support::config(state, docker)).await
}

/// A task definition in RegisterTaskDefinition's JSON: one web container (dynamic host
/// port) answering `x-backend: <backend>`.
fn task_definition(family: &str, backend: &str) -> Value {
    json!({
        "family": family,
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "web", "image": TEST_IMAGE, "essential": true, "memory": 128, "stopTimeout": 5,
            "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            "environment": [{"name": "BACKEND_NAME", "value": backend}],
            "dockerLabels": test_labels(),
        }]
    })
}

fn write_json(dir: &std::path::Path, name: &str, v: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, v.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The `x-backend` of `n` requests to the listener on `port`, once it answers `want`.
async fn routed(port: u16, want: &str, n: usize) -> Vec<String> {
    let client = Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    let began = std::time::Instant::now();
    loop {
        let r = client.get(&url).await;
        if r.as_ref()
            .is_ok_and(|r| r.status == 200 && r.backend() == Some(want))
        {
            break;
        }
        assert!(
            began.elapsed() < ROUTED_PATIENCE,
            "the listener never answered from {want}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client.get(&url).await.expect("the listener answers");
        assert_eq!(r.status, 200, "{r:?}");
        out.push(r.backend().unwrap_or_default().to_owned());
    }
    out
}

fn no_container_left(family: &str) {
    let left = support::labelled(
        &["ps", "-aq"],
        &format!("com.amazonaws.ecs.task-definition-family={family}"),
    )
    .unwrap();
    assert!(left.is_empty(), "no container of {family} is left: {left:?}");
}

/// A service's shape as DescribeServices answers it, for 3 tasks of `td` in `tg`.
fn assert_stable_service(svc: &Value, name: &str, td: &str, tg: &str) {
    assert_eq!(svc["serviceName"], name, "{svc:#}");
    assert!(
        svc["serviceArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:000000000000:service/"),
        "{svc:#}"
    );
    assert_eq!(svc["status"], "ACTIVE");
    assert_eq!(svc["desiredCount"], 3);
    assert_eq!(svc["runningCount"], 3);
    assert_eq!(svc["pendingCount"], 0);
    assert_eq!(svc["taskDefinition"], td);
    assert_eq!(svc["launchType"], "EC2");
    assert_eq!(svc["schedulingStrategy"], "REPLICA");
    assert_eq!(
        svc["loadBalancers"],
        json!([{"targetGroupArn": tg, "containerName": "web", "containerPort": 80}])
    );
    let ds = svc["deployments"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{svc:#}");
    assert_eq!(ds[0]["status"], "PRIMARY");
    assert_eq!(ds[0]["taskDefinition"], td);
    assert_eq!(ds[0]["runningCount"], 3);
    assert!(ds[0]["id"].as_str().unwrap().starts_with("ecs-svc/"), "{svc:#}");
}

fn events(svc: &Value) -> Vec<String> {
    svc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_creates_rolls_and_deletes_a_service_behind_a_listener() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json"), &docker_host()).await;
    let ep = endpoint(&alb);
    let name = unique("boto");
    let port = free_port();
    let tg = boto3("setup", &ep, &[&name, &port.to_string()]).await["targetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();

    // CreateService of 3 tasks; the waiter services_stable returns.
    let rev1 = write_json(dir.path(), "rev1.json", &task_definition(&name, "rev1"));
    let made = boto3("create", &ep, &[&name, &rev1, &tg]).await;
    let td1 = made["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(made["taskDefinition"]["revision"], 1);
    assert_eq!(made["cluster"]["clusterName"], name.as_str());
    assert_eq!(made["created"]["status"], "ACTIVE", "{made:#}");
    assert_eq!(made["created"]["healthCheckGracePeriodSeconds"], 0);
    assert_eq!(
        made["created"]["deploymentConfiguration"],
        json!({"maximumPercent": 200, "minimumHealthyPercent": 100})
    );
    assert_stable_service(&made["service"], &name, &td1, &tg);
    let tasks = made["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3, "{made:#}");
    for t in tasks {
        assert_eq!(t["group"], format!("service:{name}").as_str());
        assert_eq!(t["lastStatus"], "RUNNING");
        let b = &t["containers"][0]["networkBindings"][0];
        assert_eq!(b["containerPort"], 80, "{t:#}");
        assert!(b["hostPort"].as_u64().unwrap() >= 49153, "{t:#}");
    }
    assert!(routed(port, "rev1", 6).await.iter().all(|b| b == "rev1"));

    // The errors ECS answers.
    let errors = boto3("errors", &ep, &[&name, &tg]).await;
    for (key, code) in [
        ("grace_negative", "InvalidParameterException"),
        ("grace_too_big", "InvalidParameterException"),
        ("unknown_container", "InvalidParameterException"),
        ("not_idempotent", "InvalidParameterException"),
        ("unknown_service", "ServiceNotFoundException"),
    ] {
        assert_eq!(errors[key]["code"], code, "{key}: {errors:#}");
        assert_eq!(errors[key]["status"], 400, "{key}: {errors:#}");
    }

    // UpdateService to a new revision under steady load: the waiter returns once the
    // old deployment is gone; no request failed.
    let load = LoadGen::start(format!("http://127.0.0.1:{port}/"), 4, CLIENT_PATIENCE);
    let rev2 = write_json(dir.path(), "rev2.json", &task_definition(&name, "rev2"));
    let rolled = boto3("update", &ep, &[&name, &rev2]).await;
    let report = load.stop().await;
    let td2 = rolled["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(rolled["taskDefinition"]["revision"], 2);
    let up = &rolled["updated"];
    assert_eq!(up["taskDefinition"], td2.as_str(), "{up:#}");
    assert_eq!(up["deployments"][0]["status"], "PRIMARY", "{up:#}");
    assert_eq!(up["deployments"][0]["rolloutState"], "IN_PROGRESS");
    assert_eq!(up["deployments"][1]["status"], "ACTIVE");
    assert_eq!(up["deployments"][1]["taskDefinition"], td1.as_str());
    assert_stable_service(&rolled["service"], &name, &td2, &tg);
    assert_eq!(rolled["service"]["deployments"][0]["rolloutState"], "COMPLETED");
    let ev = events(&rolled["service"]);
    assert!(ev.iter().any(|e| e.contains("deployment completed")), "{ev:#?}");
    assert!(
        ev.iter().any(|e| e.contains("has reached a steady state")),
        "{ev:#?}"
    );
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert!(report.non_2xx.is_empty(), "{:?}", report.non_2xx);
    assert!(routed(port, "rev2", 6).await.iter().all(|b| b == "rev2"));

    // desiredCount 0, DeleteService, the waiter services_inactive.
    let gone = boto3("delete", &ep, &[&name]).await;
    assert_eq!(gone["deleted"]["status"], "DRAINING", "{gone:#}");
    assert_eq!(gone["service"]["status"], "INACTIVE");
    assert_eq!(gone["tasks"], json!([]));
    no_container_left(&name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_registers_creates_waits_updates_and_deletes_a_service() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json"), &docker_host()).await;
    let ep = endpoint(&alb);
    let name = unique("cli");
    let port = free_port();

    // The load balancer side, with `aws elbv2`.
    let lb = aws(&ep, &["elbv2", "create-load-balancer", "--name", &name]).await;
    let lb = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let tg = aws(
        &ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            &name,
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--health-check-path",
            "/health",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
            "--healthy-threshold-count",
            "2",
        ],
    )
    .await;
    let tg = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    aws(
        &ep,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg,
            "--attributes",
            "Key=deregistration_delay.timeout_seconds,Value=0",
        ],
    )
    .await;
    aws(
        &ep,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb,
            "--protocol",
            "HTTP",
            "--port",
            &port.to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg}"),
        ],
    )
    .await;

    // register-task-definition from a JSON file, create-service with --load-balancers.
    let file = write_json(dir.path(), "td.json", &task_definition(&name, "rev1"));
    let td = aws(
        &ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{file}"),
        ],
    )
    .await;
    assert_eq!(td["taskDefinition"]["family"], name.as_str(), "{td:#}");
    assert_eq!(td["taskDefinition"]["revision"], 1);
    assert_eq!(td["taskDefinition"]["status"], "ACTIVE");
    assert_eq!(
        td["taskDefinition"]["containerDefinitions"][0]["portMappings"][0]["hostPort"],
        0
    );
    let td1 = td["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        td1,
        format!("arn:aws:ecs:us-east-1:000000000000:task-definition/{name}:1")
    );
    let made = aws(
        &ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            &name,
            "--task-definition",
            &name,
            "--desired-count",
            "3",
            "--load-balancers",
            &format!("targetGroupArn={tg},containerName=web,containerPort=80"),
        ],
    )
    .await;
    assert_eq!(made["service"]["status"], "ACTIVE", "{made:#}");
    assert_eq!(
        made["service"]["clusterArn"],
        "arn:aws:ecs:us-east-1:000000000000:cluster/default"
    );
    aws(&ep, &["ecs", "wait", "services-stable", "--services", &name]).await;
    let d = aws(&ep, &["ecs", "describe-services", "--services", &name]).await;
    assert_eq!(d["failures"], json!([]), "{d:#}");
    assert_stable_service(&d["services"][0], &name, &td1, &tg);
    assert!(routed(port, "rev1", 6).await.iter().all(|b| b == "rev1"));
    let health = aws(
        &ep,
        &["elbv2", "describe-target-health", "--target-group-arn", &tg],
    )
    .await;
    let targets = health["TargetHealthDescriptions"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "{health:#}");
    assert!(
        targets.iter().all(|t| t["Target"]["Id"] == "127.0.0.1"),
        "{health:#}"
    );

    // update-service to revision 2; wait services-stable returns once it is rolled.
    let file = write_json(dir.path(), "td2.json", &task_definition(&name, "rev2"));
    aws(
        &ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{file}"),
        ],
    )
    .await;
    let up = aws(
        &ep,
        &[
            "ecs",
            "update-service",
            "--service",
            &name,
            "--task-definition",
            &format!("{name}:2"),
        ],
    )
    .await;
    let td2 = format!("arn:aws:ecs:us-east-1:000000000000:task-definition/{name}:2");
    assert_eq!(up["service"]["taskDefinition"], td2.as_str(), "{up:#}");
    assert_eq!(up["service"]["deployments"].as_array().unwrap().len(), 2);
    aws(&ep, &["ecs", "wait", "services-stable", "--services", &name]).await;
    let d = aws(&ep, &["ecs", "describe-services", "--services", &name]).await;
    assert_stable_service(&d["services"][0], &name, &td2, &tg);
    assert!(routed(port, "rev2", 6).await.iter().all(|b| b == "rev2"));

    // delete-service --force, wait services-inactive.
    let del = aws(&ep, &["ecs", "delete-service", "--service", &name, "--force"]).await;
    assert_eq!(del["service"]["status"], "DRAINING", "{del:#}");
    aws(&ep, &["ecs", "wait", "services-inactive", "--services", &name]).await;
    let d = aws(&ep, &["ecs", "describe-services", "--services", &name]).await;
    assert_eq!(d["services"][0]["status"], "INACTIVE", "{d:#}");
    let left = aws(&ep, &["ecs", "list-tasks", "--service-name", &name]).await;
    assert_eq!(left["taskArns"], json!([]), "{left:#}");
    no_container_left(&name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operations_answer_400_even_without_a_docker_engine() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-docker.sock");
    let alb = start(
        &dir.path().join("s.json"),
        &format!("unix://{}", missing.display()),
    )
    .await;
    let client = Client::new();
    let call = |op: &str| {
        let client = client.clone();
        let url = format!("{}/", endpoint(&alb));
        let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
        async move {
            let r = client
                .request(
                    "POST",
                    &url,
                    &[
                        ("content-type", "application/x-amz-json-1.1"),
                        ("x-amz-target", target.as_str()),
                    ],
                    "{}",
                )
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, body["__type"].as_str().unwrap_or_default().to_owned())
        }
    };
    assert_eq!(
        call("FlyToTheMoon").await,
        (400, "UnknownOperationException".to_owned())
    );
    // A real operation that needs the engine says the engine is missing.
    assert_eq!(call("RunTask").await, (500, "ServerException".to_owned()));
}

/// Seconds per ECS minute in the blue/green test (bake and drain times stay short).
const MINUTE_SECONDS: &str = "1";
/// Patience for a blue/green deployment to fail and roll back (3 failed tasks, the
/// shift back, green drained).
const ROLLBACK_PATIENCE: Duration = Duration::from_secs(150);
/// The role ECS would assume to change the listener rules.
const BG_ROLE: &str = "arn:aws:iam::000000000000:role/ecs-bg";

/// The `ARN` of `key` in the first element of `v[list]`.
fn first_arn(v: &Value, list: &str, key: &str) -> String {
    v[list][0][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {list}[0].{key}: {v:#}"))
        .to_owned()
}

/// A target group made with `aws elbv2` (health checks 5 s apart, 2 to be healthy,
/// deregistration delay 1 s); its ARN.
async fn bg_group(ep: &str, name: &str) -> String {
    let tg = aws(
        ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            name,
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--target-type",
            "ip",
            "--health-check-path",
            "/health",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
            "--healthy-threshold-count",
            "2",
        ],
    )
    .await;
    let tg = first_arn(&tg, "TargetGroups", "TargetGroupArn");
    aws(
        ep,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg,
            "--attributes",
            "Key=deregistration_delay.timeout_seconds,Value=1",
        ],
    )
    .await;
    tg
}

/// The forward weights of the rule `rule` as `aws elbv2 describe-rules` answers them, in
/// the order of `groups`.
async fn rule_weights(ep: &str, rule: &str, groups: [&str; 2]) -> [u64; 2] {
    let r = aws(ep, &["elbv2", "describe-rules", "--rule-arns", rule]).await;
    let fwd = r["Rules"][0]["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Type"] == "forward")
        .unwrap_or_else(|| panic!("no forward action: {r:#}"))
        .clone();
    let weight = |g: &str| {
        fwd["ForwardConfig"]["TargetGroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["TargetGroupArn"] == g)
            .unwrap_or_else(|| panic!("{g} not in the rule: {r:#}"))["Weight"]
            .as_u64()
            .unwrap()
    };
    [weight(groups[0]), weight(groups[1])]
}

/// The service's deployments as `aws ecs list-service-deployments` lists them (newest
/// first), and `describe-service-deployments` of the newest.
async fn newest_deployment(ep: &str, name: &str) -> (Value, Value) {
    let listed = aws(ep, &["ecs", "list-service-deployments", "--service", name]).await;
    let arn = first_arn(&listed, "serviceDeployments", "serviceDeploymentArn");
    let d = aws(
        ep,
        &[
            "ecs",
            "describe-service-deployments",
            "--service-deployment-arns",
            &arn,
        ],
    )
    .await;
    assert_eq!(d["failures"], json!([]), "{d:#}");
    (listed, d["serviceDeployments"][0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_deploys_blue_green_and_the_breaker_rolls_a_broken_revision_back() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let _containers = support::OwnContainers;
    let alb = HostAlb::builder(bin())
        .env("HOSTALB_ECS_MINUTE_SECONDS", MINUTE_SECONDS)
        .config(support::config(&dir.path().join("s.json"), &docker_host()))
        .start()
        .await;
    let ep = endpoint(&alb);
    // Short enough for a target group's name with its suffix.
    let name = support::unique_from("clibg", std::process::id() % 100_000);
    let (prod_port, test_port) = (free_port(), free_port());

    // Two groups; a production rule and the test listener's default rule, each
    // forwarding 100/0 to A/B.
    let lb = aws(&ep, &["elbv2", "create-load-balancer", "--name", &name]).await;
    let lb = first_arn(&lb, "LoadBalancers", "LoadBalancerArn");
    let a = bg_group(&ep, &format!("{name}-a")).await;
    let b = bg_group(&ep, &format!("{name}-b")).await;
    let forward = json!([{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": a, "Weight": 100}, {"TargetGroupArn": b, "Weight": 0}]}}])
    .to_string();
    let prod = aws(
        &ep,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb,
            "--protocol",
            "HTTP",
            "--port",
            &prod_port.to_string(),
            "--default-actions",
            r#"[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]"#,
        ],
    )
    .await;
    let prod = first_arn(&prod, "Listeners", "ListenerArn");
    let prod_rule = aws(
        &ep,
        &[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &prod,
            "--priority",
            "1",
            "--conditions",
            r#"[{"Field": "path-pattern", "Values": ["/*"]}]"#,
            "--actions",
            &forward,
        ],
    )
    .await;
    let prod_rule = first_arn(&prod_rule, "Rules", "RuleArn");
    let test = aws(
        &ep,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb,
            "--protocol",
            "HTTP",
            "--port",
            &test_port.to_string(),
            "--default-actions",
            &forward,
        ],
    )
    .await;
    let test = first_arn(&test, "Listeners", "ListenerArn");
    let rules = aws(&ep, &["elbv2", "describe-rules", "--listener-arn", &test]).await;
    let test_rule = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["IsDefault"] == true)
        .and_then(|r| r["RuleArn"].as_str())
        .unwrap_or_else(|| panic!("no default rule: {rules:#}"))
        .to_owned();

    // create-service with advancedConfiguration and the BLUE_GREEN strategy.
    let register = |file: &str, td: Value| {
        let file = write_json(dir.path(), file, &td);
        let ep = ep.clone();
        async move {
            aws(
                &ep,
                &[
                    "ecs",
                    "register-task-definition",
                    "--cli-input-json",
                    &format!("file://{file}"),
                ],
            )
            .await["taskDefinition"]["taskDefinitionArn"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let td1 = register("td1.json", task_definition(&name, "rev1")).await;
    let lbs = json!([{
        "targetGroupArn": a, "containerName": "web", "containerPort": 80,
        "advancedConfiguration": {
            "alternateTargetGroupArn": b, "productionListenerRule": prod_rule,
            "testListenerRule": test_rule, "roleArn": BG_ROLE,
        },
    }]);
    let made = aws(
        &ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            &name,
            "--task-definition",
            &td1,
            "--desired-count",
            "2",
            "--load-balancers",
            &lbs.to_string(),
            "--deployment-configuration",
            "strategy=BLUE_GREEN,bakeTimeInMinutes=0",
        ],
    )
    .await;
    let svc = &made["service"];
    assert_eq!(svc["status"], "ACTIVE", "{made:#}");
    assert_eq!(svc["deploymentConfiguration"]["strategy"], "BLUE_GREEN");
    assert_eq!(svc["deploymentConfiguration"]["bakeTimeInMinutes"], 0);
    assert_eq!(svc["loadBalancers"], lbs, "{made:#}");
    aws(&ep, &["ecs", "wait", "services-stable", "--services", &name]).await;
    assert!(routed(prod_port, "rev1", 4).await.iter().all(|b| b == "rev1"));
    assert_eq!(rule_weights(&ep, &prod_rule, [&a, &b]).await, [100, 0]);

    // update-service to rev2: green is B; the waiter returns once it is done.
    let td2 = register("td2.json", task_definition(&name, "rev2")).await;
    let up = aws(
        &ep,
        &[
            "ecs",
            "update-service",
            "--service",
            &name,
            "--task-definition",
            &td2,
        ],
    )
    .await;
    assert_eq!(up["service"]["taskDefinition"], td2.as_str(), "{up:#}");
    aws(&ep, &["ecs", "wait", "services-stable", "--services", &name]).await;
    let d = aws(&ep, &["ecs", "describe-services", "--services", &name]).await;
    let svc = &d["services"][0];
    assert_eq!(svc["taskDefinition"], td2.as_str(), "{d:#}");
    assert_eq!(svc["runningCount"], 2, "{d:#}");
    let ds = svc["deployments"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{d:#}");
    assert_eq!(ds[0]["rolloutState"], "COMPLETED", "{d:#}");
    assert!(routed(prod_port, "rev2", 6).await.iter().all(|b| b == "rev2"));
    let (listed, newest) = newest_deployment(&ep, &name).await;
    assert_eq!(
        listed["serviceDeployments"][0]["status"], "SUCCESSFUL",
        "{listed:#}"
    );
    assert_eq!(newest["status"], "SUCCESSFUL", "{newest:#}");
    assert_eq!(
        newest["deploymentConfiguration"]["strategy"], "BLUE_GREEN",
        "{newest:#}"
    );
    assert_eq!(rule_weights(&ep, &prod_rule, [&a, &b]).await, [0, 100]);

    // A broken revision (its web exits at once: a bad PORT) with the circuit breaker:
    // it fails, rolls back to rev2, and production answers rev2 all along.
    let mut broken = task_definition(&name, "rev3");
    broken["containerDefinitions"][0]["environment"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "PORT", "value": "not-a-port"}));
    let td3 = register("td3.json", broken).await;
    let up = aws(
        &ep,
        &[
            "ecs",
            "update-service",
            "--service",
            &name,
            "--task-definition",
            &td3,
            "--deployment-configuration",
            "deploymentCircuitBreaker={enable=true,rollback=true},strategy=BLUE_GREEN,bakeTimeInMinutes=0",
        ],
    )
    .await;
    assert_eq!(up["service"]["taskDefinition"], td3.as_str(), "{up:#}");
    assert_eq!(
        up["service"]["deploymentConfiguration"]["deploymentCircuitBreaker"],
        json!({"enable": true, "rollback": true}),
        "{up:#}"
    );
    let back = support::poll(
        ROLLBACK_PATIENCE,
        Duration::from_secs(1),
        "the breaker never rolled back",
        || {
            let (ep, name) = (ep.clone(), name.clone());
            async move { aws(&ep, &["ecs", "describe-services", "--services", &name]).await }
        },
        |d| {
            let s = &d["services"][0];
            s["deployments"].as_array().is_some_and(|ds| {
                ds.len() == 1
                    && ds[0]["taskDefinition"] == td2.as_str()
                    && ds[0]["rolloutState"] == "COMPLETED"
            }) && events(s).iter().any(|e| e.contains("rollback completed"))
        },
    )
    .await;
    let svc = &back["services"][0];
    assert_eq!(svc["taskDefinition"], td2.as_str(), "{back:#}");
    let ev = events(svc);
    for want in ["deployment failed: tasks failed to start", "rolling back"] {
        assert!(ev.iter().any(|e| e.contains(want)), "event `{want}`: {ev:#?}");
    }
    let (listed, newest) = newest_deployment(&ep, &name).await;
    assert_eq!(
        listed["serviceDeployments"][0]["status"], "ROLLBACK_SUCCESSFUL",
        "{listed:#}"
    );
    assert!(
        newest["targetServiceRevision"]["arn"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{newest:#}"
    );
    assert_eq!(
        newest["deploymentCircuitBreaker"]["status"], "TRIGGERED",
        "{newest:#}"
    );
    assert!(newest["rollback"]["serviceRevisionArn"].is_string(), "{newest:#}");
    let rolled = aws(
        &ep,
        &[
            "ecs",
            "list-service-deployments",
            "--service",
            &name,
            "--status",
            "ROLLBACK_SUCCESSFUL",
        ],
    )
    .await;
    assert_eq!(
        rolled["serviceDeployments"].as_array().map(Vec::len),
        Some(1),
        "{rolled:#}"
    );
    assert!(routed(prod_port, "rev2", 6).await.iter().all(|b| b == "rev2"));
    assert_eq!(rule_weights(&ep, &prod_rule, [&a, &b]).await, [0, 100]);
}
