//! The ECS API's task side on the real Docker engine, driven by boto3 and `aws ecs`
//! (tests/python/ecs_api.py) against the real binary: a task definition of an essential
//! web container (dynamic host port) and a non-essential sidecar that depends on it runs
//! as ECS runs it (agent labels, dependsOn order, networkBindings that answer), survives a
//! hostalb restart without a second start, stops on StopTask and on its essential
//! container's exit with ECS's reasons; a task that cannot start leaves nothing behind.

use std::time::Duration;

use hostalb_testkit::HostAlb;
use hostalb_testkit::docker::{TEST_IMAGE, docker_ok, http_get, http_request, require_docker};
use serde_json::{Value, json};

use crate::ecs_support::{self as support, container, endpoint, start, test_labels, unique};

/// How long the clients get for one script run.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(90);
/// Patience for a task to reach a status (containers start in well under a second).
const STATUS_PATIENCE: Duration = Duration::from_secs(30);
/// Polls of a task's status are this far apart.
const POLL: Duration = Duration::from_millis(300);

async fn script(endpoint: &str, args: &[&str]) -> Value {
    support::script("ecs_api.py", args[0], endpoint, &args[1..], SCRIPT_PATIENCE).await
}

/// Web (essential, hostPort 0) and a sidecar that depends on it; `sidecar_env` decides
/// whether the sidecar keeps running.
fn task_definition(family: &str, sidecar_image: &str, sidecar_env: Value) -> Value {
    json!({
        "family": family,
        "networkMode": "bridge",
        "containerDefinitions": [
            {
                "name": "sidecar", "image": sidecar_image, "essential": false, "memory": 64,
                "environment": sidecar_env,
                "dependsOn": [{"containerName": "web", "condition": "START"}],
                "links": ["web:api"],
                "dockerLabels": test_labels(),
            },
            {
                "name": "web", "image": TEST_IMAGE, "essential": true, "cpu": 128, "memory": 128,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "BACKEND_NAME", "value": family}],
                "stopTimeout": 5,
                "dockerLabels": test_labels(),
            }
        ],
        "volumes": [],
    })
}

async fn register(endpoint: &str, td: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("td.json");
    std::fs::write(&path, td.to_string()).unwrap();
    script(endpoint, &["register", path.to_str().unwrap()]).await
}

/// Describes the task until `done` holds; the last description.
async fn until(
    endpoint: &str,
    cluster: &str,
    task: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    support::poll(
        STATUS_PATIENCE,
        POLL,
        &format!("the task never reached {what}"),
        || async move { script(endpoint, &["describe", cluster, task]).await },
        |d| done(&d["task"]),
    )
    .await
}

/// Docker ids of containers (any state) of the task.
fn docker_ids(task_arn: &str) -> Vec<String> {
    support::labelled(
        &["ps", "-aq", "--no-trunc"],
        &format!("com.amazonaws.ecs.task-arn={task_arn}"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_answer_survive_a_restart_and_stop_as_ecs_says() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let family = unique("ecsweb");
    let cluster = unique("cl");

    // awscli registers; the sidecar exits at once (a bad PORT): it is not essential.
    let td = task_definition(
        &family,
        TEST_IMAGE,
        json!([{"name": "PORT", "value": "not-a-port"}]),
    );
    let reg = register(&ep, &td).await;
    assert_eq!(reg["taskDefinition"]["revision"], 1, "{reg:#}");
    assert_eq!(reg["taskDefinition"]["status"], "ACTIVE");

    // boto3 makes the cluster and runs one task.
    let run = script(&ep, &["run", &family, &cluster]).await;
    assert_eq!(run["clusters"], json!([cluster]), "{run:#}");
    assert_eq!(run["failures"], json!(["MISSING"]));
    assert_eq!(run["listed"].as_array().unwrap().len(), 1);
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    assert!(arn.contains(&format!(":task/{cluster}/")), "{arn}");
    assert_eq!(run["task"]["desiredStatus"], "RUNNING");

    let d = until(&ep, &cluster, &arn, "RUNNING with the sidecar exited", |t| {
        t["lastStatus"] == "RUNNING" && container(t, "sidecar")["lastStatus"] == "STOPPED"
    })
    .await;
    let t = &d["task"];
    assert_eq!(container(t, "sidecar")["exitCode"], 2, "{t:#}");
    let web = container(t, "web");
    assert_eq!(web["lastStatus"], "RUNNING");
    let binding = &web["networkBindings"][0];
    assert_eq!(binding["containerPort"], 80);
    let host_port = u16::try_from(binding["hostPort"].as_u64().unwrap()).unwrap();
    assert!(host_port >= 49153, "a port of ECS's dynamic range: {host_port}");
    assert_eq!(d["running"], json!([arn]));

    // The web answers on the dynamic host port.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host_port));
    let reply = tokio::task::spawn_blocking(move || http_get(addr, "/", Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the web container answers on its host port");
    assert_eq!(reply.header("x-backend"), Some(family.as_str()));

    // The agent's labels and name.
    let web_id = web["runtimeId"].as_str().unwrap().to_owned();
    let inspect = docker_ok([
        "inspect",
        "--format",
        "{{json .Config.Labels}} {{.Name}}",
        &web_id,
    ])
    .unwrap();
    let (labels, name) = inspect.trim().rsplit_once(' ').unwrap();
    let labels: Value = serde_json::from_str(labels).unwrap();
    assert_eq!(labels["com.amazonaws.ecs.task-arn"], arn.as_str());
    assert_eq!(labels["com.amazonaws.ecs.container-name"], "web");
    assert_eq!(
        labels["com.amazonaws.ecs.task-definition-family"],
        family.as_str()
    );
    assert_eq!(labels["com.amazonaws.ecs.task-definition-version"], "1");
    assert!(
        labels["com.amazonaws.ecs.cluster"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":cluster/{cluster}"))
    );
    assert!(name.starts_with(&format!("/ecs-{family}-1-web-")), "{name}");
    // dependsOn: the sidecar (defined first) started after web.
    let started = |id: &str| docker_ok(["inspect", "--format", "{{.State.StartedAt}}", id]).unwrap();
    let sidecar_id = container(t, "sidecar")["runtimeId"].as_str().unwrap().to_owned();
    assert!(
        started(&sidecar_id) > started(&web_id),
        "the sidecar started after web"
    );
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains(&arn) && saved.contains("\"Ecs\""),
        "the task is in the state file"
    );

    // kill -9 hostalb and start it again on the same state file: the task is found again
    // by its labels, nothing is started twice.
    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let d = script(&ep, &["describe", &cluster, &arn]).await;
    assert_eq!(d["task"]["lastStatus"], "RUNNING", "{d:#}");
    assert_eq!(container(&d["task"], "web")["runtimeId"], web_id.as_str());
    assert_eq!(docker_ids(&arn).len(), 2, "web and the exited sidecar, no more");

    // `aws ecs stop-task`: SIGTERM, the task STOPPED with the reason given, containers gone.
    let stopped = script(&ep, &["stop", &cluster, &arn]).await;
    assert_eq!(stopped["task"]["desiredStatus"], "STOPPED", "{stopped:#}");
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert_eq!(d["task"]["stoppedReason"], "e2e says stop");
    assert_eq!(d["task"]["stopCode"], "UserInitiated");
    assert_eq!(d["stopped"], json!([arn]));
    assert!(
        docker_ids(&arn).is_empty(),
        "the stopped task's containers are removed"
    );

    // The essential container's exit stops a task with ECS's reason.
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    let d = until(&ep, &cluster, &arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
    let web_id = container(&d["task"], "web")["runtimeId"]
        .as_str()
        .unwrap()
        .to_owned();
    docker_ok(["kill", &web_id]).unwrap();
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert_eq!(
        d["task"]["stoppedReason"], "Essential container in task exited",
        "{d:#}"
    );
    assert_eq!(d["task"]["stopCode"], "EssentialContainerExited");
    assert_eq!(container(&d["task"], "web")["exitCode"], 137);
    assert!(docker_ids(&arn).is_empty());

    // RunTask count 2: two tasks, each on its own dynamic host port, each answering.
    let run = script(&ep, &["run", &family, &cluster, "2"]).await;
    let arns: Vec<String> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arns.len(), 2, "{run:#}");
    let mut ports = Vec::new();
    for arn in &arns {
        let d = until(&ep, &cluster, arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
        let port = container(&d["task"], "web")["networkBindings"][0]["hostPort"]
            .as_u64()
            .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
        let reply = tokio::task::spawn_blocking(move || http_get(addr, "/", Duration::from_secs(5)))
            .await
            .unwrap()
            .expect("each task answers on its own port");
        assert_eq!(reply.header("x-backend"), Some(family.as_str()));
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
    for arn in &arns {
        script(&ep, &["stop", &cluster, arn]).await;
    }
    for arn in &arns {
        until(&ep, &cluster, arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
        assert!(docker_ids(arn).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_cannot_start_leaves_nothing_and_errors_are_ecs_shapes() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let family = unique("ecsbroken");
    let cluster = unique("cl");
    // The sidecar (started second) names an image the engine does not have.
    let td = task_definition(&family, "hostalb-no-such-image:never", json!([]));
    register(&ep, &td).await;
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    let reason = d["task"]["stoppedReason"].as_str().unwrap();
    assert!(
        reason.starts_with("CannotPullContainerError: container sidecar:")
            && reason.contains("hostalb-no-such-image"),
        "{reason}"
    );
    assert_eq!(d["task"]["stopCode"], "TaskFailedToStart");
    assert!(
        docker_ids(&arn).is_empty(),
        "the web container that started is removed"
    );

    // The second container's fixed host port is held: its start fails; the first one,
    // already running, is stopped and both are removed.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let family = unique("ecsblocked");
    let td = json!({
        "family": family,
        "containerDefinitions": [
            {"name": "web", "image": TEST_IMAGE, "portMappings": [{"containerPort": 80}],
             "dockerLabels": test_labels()},
            {"name": "blocked", "image": TEST_IMAGE, "essential": false,
             "portMappings": [{"containerPort": 80, "hostPort": held_port}],
             "dependsOn": [{"containerName": "web", "condition": "START"}], "dockerLabels": test_labels()}
        ]
    });
    register(&ep, &td).await;
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    let reason = d["task"]["stoppedReason"].as_str().unwrap();
    assert!(
        reason.starts_with("CannotStartContainerError: container blocked:")
            && reason.contains(&held_port.to_string()),
        "{reason}"
    );
    assert_eq!(d["task"]["stopCode"], "TaskFailedToStart");
    assert!(
        container(&d["task"], "web").get("runtimeId").is_some(),
        "web had started: {d:#}"
    );
    assert!(docker_ids(&arn).is_empty(), "both containers are removed");
    drop(held);

    let e = script(&ep, &["errors"]).await;
    assert_eq!(e["unknown_cluster"]["code"], "ClusterNotFoundException", "{e:#}");
    assert_eq!(e["unknown_td"]["code"], "ClientException");
    assert_eq!(e["efs"]["code"], "ClientException");
    assert!(
        e["efs"]["message"]
            .as_str()
            .unwrap()
            .contains("efsVolumeConfiguration is not supported")
    );
    assert_eq!(e["cycle"]["code"], "ClientException");
    assert!(e["cycle"]["message"].as_str().unwrap().contains("cycle"));
    assert_eq!(e["service"]["code"], "ServiceNotFoundException");
    assert_eq!(e["stop_unknown"]["code"], "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_conditions_stop_timeouts_and_containers_gone_while_down() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let cluster = unique("cl");

    // web waits for `init` to exit 0 (SUCCESS); init exits 2: the task fails to start,
    // web is never created.
    let family = unique("ecsinit");
    let td = json!({
        "family": family,
        "containerDefinitions": [
            {"name": "web", "image": TEST_IMAGE, "portMappings": [{"containerPort": 80}],
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}], "dockerLabels": test_labels()},
            {"name": "init", "image": TEST_IMAGE, "essential": false,
             "environment": [{"name": "PORT", "value": "bad"}], "dockerLabels": test_labels()}
        ]
    });
    register(&ep, &td).await;
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    let reason = d["task"]["stoppedReason"].as_str().unwrap();
    assert!(
        reason.starts_with("DependencyError: container web: init exited with code 2"),
        "{reason}"
    );
    assert!(
        container(&d["task"], "web").get("runtimeId").is_none(),
        "web was never created"
    );
    assert!(docker_ids(&arn).is_empty());

    // A container that ignores SIGTERM (it keeps serving for a minute) is killed after
    // its stopTimeout.
    let family = unique("ecsslow");
    let td = json!({
        "family": family,
        "containerDefinitions": [
            {"name": "web", "image": TEST_IMAGE, "stopTimeout": 2,
             "environment": [{"name": "STOP_GRACE_MS", "value": "60000"}], "dockerLabels": test_labels()}
        ]
    });
    register(&ep, &td).await;
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    until(&ep, &cluster, &arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
    script(&ep, &["stop", &cluster, &arn]).await;
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert_eq!(
        container(&d["task"], "web")["exitCode"],
        137,
        "SIGKILL after stopTimeout: {d:#}"
    );

    // While hostalb is down, the essential container dies: at start the task is reported
    // stopped with ECS's reason, and nothing is started again.
    let run = script(&ep, &["run", &family, &cluster]).await;
    let arn = run["task"]["taskArn"].as_str().unwrap().to_owned();
    let d = until(&ep, &cluster, &arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
    let web_id = container(&d["task"], "web")["runtimeId"]
        .as_str()
        .unwrap()
        .to_owned();
    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    docker_ok(["kill", &web_id]).unwrap();
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let d = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert_eq!(
        d["task"]["stoppedReason"], "Essential container in task exited",
        "{d:#}"
    );
    assert!(docker_ids(&arn).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_and_elbv2_resources_share_the_state_file_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let name = unique("mixed");
    let alb = start(&state).await;
    let made = script(&endpoint(&alb), &["mixed", &name, "make"]).await;
    assert!(
        made["groups"].as_array().unwrap().contains(&json!(name)),
        "{made:#}"
    );
    assert_eq!(made["families"].as_array().unwrap().len(), 1);
    assert_eq!(made["clusters"].as_array().unwrap().len(), 2);
    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    let alb = start(&state).await;
    let seen = script(&endpoint(&alb), &["mixed", &name, "check"]).await;
    assert_eq!(seen, made, "both APIs' resources are back");
}

/// Patience for a service to reach a state (tasks start in a second; targets turn healthy
/// after two checks 5 s apart).
const SERVICE_PATIENCE: Duration = Duration::from_secs(60);

/// The service's state until `done` holds; the last one.
async fn service_until(ep: &str, args: [&str; 3], what: &str, done: impl Fn(&Value) -> bool) -> Value {
    support::poll(
        SERVICE_PATIENCE,
        Duration::from_millis(500),
        &format!("the service never reached {what}"),
        || async move { script(ep, &["service_state", args[0], args[1], args[2]]).await },
        done,
    )
    .await
}

fn healthy_targets(s: &Value) -> usize {
    s["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t[1] == "healthy")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_keeps_its_desired_count_registered_in_its_target_group() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let family = unique("ecssvc");
    let cluster = unique("cl");
    let name = unique("svc");
    // The listener binds this port again after the restart below.
    let port = crate::common::free_port();
    let td = json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": TEST_IMAGE, "stopTimeout": 5,
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "environment": [{"name": "BACKEND_NAME", "value": family}],
            "dockerLabels": test_labels(),
        }]
    });
    register(&ep, &td).await;
    let made = script(&ep, &["service", &name, &family, &port.to_string(), &cluster]).await;
    assert_eq!(made["service"]["desiredCount"], 2, "{made:#}");
    let tg = made["targetGroupArn"].as_str().unwrap().to_owned();
    let args = [cluster.as_str(), name.as_str(), tg.as_str()];

    // Two tasks, each registered on its dynamic port, healthy, and served by the listener.
    let s = service_until(&ep, args, "2 healthy targets", |s| {
        s["runningCount"] == 2 && healthy_targets(s) == 2
    })
    .await;
    let mut task_ports: Vec<u64> = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ports"][0].as_u64().unwrap())
        .collect();
    task_ports.sort_unstable();
    let target_ports: Vec<u64> = s["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_u64().unwrap())
        .collect();
    assert_eq!(task_ports, target_ports, "{s:#}");
    assert!(
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["group"] == format!("service:{name}").as_str())
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let reply = tokio::task::spawn_blocking(move || http_get(addr, "/", Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the listener forwards to the service's tasks");
    assert_eq!(reply.header("x-backend"), Some(family.as_str()));
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("has started 2 tasks")),
        "{s:#}"
    );

    // An essential container dies: its task stops, leaves the target group, and a new
    // task takes its place.
    let killed = s["tasks"][0]["arn"].as_str().unwrap().to_owned();
    let killed_port = s["tasks"][0]["ports"][0].as_u64().unwrap();
    docker_ok(["kill", s["tasks"][0]["web"].as_str().unwrap()]).unwrap();
    let s = service_until(&ep, args, "a replacement, healthy", |s| {
        s["runningCount"] == 2
            && healthy_targets(s) == 2
            && s["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["arn"] != killed.as_str())
    })
    .await;
    assert!(
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t[0].as_u64() != Some(killed_port)),
        "the stopped task was deregistered: {s:#}"
    );

    // kill -9 and start again: the service's tasks are found again, none is added, the
    // targets stay registered.
    let before: Vec<Value> = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["arn"].clone())
        .collect();
    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let s = service_until(&ep, args, "its tasks again", |s| healthy_targets(s) == 2).await;
    let mut after: Vec<Value> = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["arn"].clone())
        .collect();
    after.sort_by_key(|a| a.to_string());
    let mut before = before;
    before.sort_by_key(|a| a.to_string());
    assert_eq!(after, before, "the same tasks, none started twice: {s:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
    assert_eq!(
        s["tasks"].as_array().unwrap().len(),
        2,
        "the scheduler added none: {s:#}"
    );

    // StopTask of a service's task with a deregistration delay of 3 s: the target leaves
    // the group first, the container keeps running while it drains, then it stops and a
    // new task takes its place.
    script(&ep, &["set_delay", &tg, "3"]).await;
    let victim = s["tasks"][0]["arn"].as_str().unwrap().to_owned();
    let victim_port = s["tasks"][0]["ports"][0].as_u64().unwrap();
    let victim_web = s["tasks"][0]["web"].as_str().unwrap().to_owned();
    script(&ep, &["stop", &cluster, &victim]).await;
    let d = until(&ep, &cluster, &victim, "STOPPING", |t| {
        t["lastStatus"] == "STOPPING"
    })
    .await;
    assert_eq!(d["task"]["desiredStatus"], "STOPPED");
    let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
    assert!(
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t[0].as_u64() != Some(victim_port) || t[1] == "draining"),
        "deregistered before the stop: {s:#}"
    );
    let running = docker_ok(["inspect", "--format", "{{.State.Running}}", &victim_web]).unwrap();
    assert_eq!(running.trim(), "true", "the container drains before SIGTERM");
    let d = until(&ep, &cluster, &victim, "STOPPED", |t| {
        t["lastStatus"] == "STOPPED"
    })
    .await;
    assert_eq!(
        container(&d["task"], "web")["exitCode"],
        0,
        "stopped by SIGTERM after the drain"
    );
    service_until(&ep, args, "a replacement of the stopped task", |s| {
        s["runningCount"] == 2 && healthy_targets(s) == 2
    })
    .await;
    script(&ep, &["set_delay", &tg, "0"]).await;

    // DeleteService: refused while scaled above 0; forced, every task stops and leaves
    // the target group.
    let refused = script(&ep, &["delete_service", &cluster, &name, "no"]).await;
    assert_eq!(refused["code"], "InvalidParameterException", "{refused:#}");
    let deleted = script(&ep, &["delete_service", &cluster, &name, "force"]).await;
    assert_eq!(deleted["status"], "DRAINING");
    let s = service_until(&ep, args, "INACTIVE with no task", |s| {
        s["status"] == "INACTIVE"
            && s["tasks"].as_array().unwrap().is_empty()
            && s["targets"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(s["desiredCount"], 0);
    let left = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.amazonaws.ecs.task-definition-family={family}"),
    ])
    .unwrap();
    assert!(
        left.trim().is_empty(),
        "no container of the service is left: {left}"
    );
}

/// Patience for a rolling deployment of 3 tasks (each batch: a start, two health checks
/// 5 s apart, a drain of 0 s).
const ROLLOUT_PATIENCE: Duration = Duration::from_secs(90);

/// A web-only task definition answering `x-backend: <backend>`; `port_env` breaks it.
fn web_td(family: &str, backend: &str, port_env: Option<&str>) -> Value {
    let mut env = vec![json!({"name": "BACKEND_NAME", "value": backend})];
    if let Some(p) = port_env {
        env.push(json!({"name": "PORT", "value": p}));
    }
    json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": TEST_IMAGE, "stopTimeout": 5,
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "environment": env,
            "dockerLabels": test_labels(),
        }]
    })
}

fn task_defs(s: &Value) -> Vec<String> {
    s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskDefinitionArn"].as_str().unwrap().to_owned())
        .collect()
}

/// The `x-backend` of `n` requests to the listener.
async fn answers(port: u16, n: usize) -> Vec<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|_| {
                let r = http_get(addr, "/", Duration::from_secs(5)).expect("the listener answers");
                r.header("x-backend").unwrap_or_default().to_owned()
            })
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_under_load_loses_nothing_and_the_breaker_rolls_back() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let family = unique("ecsroll");
    let cluster = unique("cl");
    let name = unique("svc");
    let port = crate::common::free_port();
    let rev1 = register(&ep, &web_td(&family, "rev1", None)).await;
    let rev1 = rev1["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = script(
        &ep,
        &[
            "service",
            &name,
            &family,
            &port.to_string(),
            &cluster,
            "3",
            "rollback",
        ],
    )
    .await;
    let tg = made["targetGroupArn"].as_str().unwrap().to_owned();
    let args = [cluster.as_str(), name.as_str(), tg.as_str()];
    // A deregistration delay of 0: the requests in flight to an old task are cut when it
    // leaves the group and go to another target (GET: idempotent), none is lost.
    script(&ep, &["set_delay", &tg, "0"]).await;
    service_until(&ep, args, "3 healthy targets of rev1", |s| {
        healthy_targets(s) == 3 && s["deployments"][0]["rolloutState"] == "COMPLETED"
    })
    .await;

    // Rolling update to rev2 under steady load: never fewer than 3 healthy targets
    // (minimumHealthyPercent 100), no failed request, the deployment COMPLETED.
    let rev2 = register(&ep, &web_td(&family, "rev2", None)).await;
    let rev2 = rev2["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let load = hostalb_testkit::LoadGen::start(
        format!("http://127.0.0.1:{port}/"),
        4,
        ROLLOUT_PATIENCE + Duration::from_secs(30),
    );
    let began = std::time::Instant::now();
    let up = script(
        &ep,
        &["update_service", &cluster, &name, "task-definition", &rev2],
    )
    .await;
    assert_eq!(up["taskDefinition"], rev2.as_str(), "{up:#}");
    assert_eq!(up["deployments"][0][0], "PRIMARY", "{up:#}");
    assert_eq!(up["deployments"][0][2], "IN_PROGRESS", "{up:#}");
    assert_eq!(up["deployments"][1][0], "ACTIVE", "{up:#}");
    let (mut samples, mut fewest, mut most_tasks) = (0, usize::MAX, 0);
    let done = loop {
        let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
        samples += 1;
        fewest = fewest.min(healthy_targets(&s));
        most_tasks = most_tasks.max(s["tasks"].as_array().unwrap().len());
        let ds = s["deployments"].as_array().unwrap();
        if ds.len() == 1
            && ds[0]["rolloutState"] == "COMPLETED"
            && ds[0]["taskDefinition"] == rev2.as_str()
            && healthy_targets(&s) == 3
        {
            break s;
        }
        assert!(
            began.elapsed() < ROLLOUT_PATIENCE,
            "the rollout never completed: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let rollout = began.elapsed();
    let report = load.stop().await;
    eprintln!(
        "rolling update of 3 tasks (deregistration delay 0 s): {:.1} s, {} requests, {} failed, backends {:?}",
        rollout.as_secs_f64(),
        report.total,
        report.error_count + report.non_2xx.iter().map(|(_, n)| n).sum::<u64>(),
        report.backends
    );
    assert!(samples >= 3, "sampled during the rollout: {samples}");
    assert!(fewest >= 3, "never fewer than 3 healthy targets: {fewest}");
    assert!(most_tasks <= 6, "never more than 200%: {most_tasks}");
    assert_eq!(report.error_count, 0, "no failed request: {:?}", report.errors);
    assert!(report.non_2xx.is_empty(), "{:?}", report.non_2xx);
    assert!(report.ok > 0);
    assert!(task_defs(&done).iter().all(|t| *t == rev2), "{done:#}");
    let events = done["events"].as_array().unwrap();
    for want in [
        "has started 3 tasks",
        "has stopped",
        "deployment completed",
        "has reached a steady state",
    ] {
        assert!(
            events.iter().any(|e| e.as_str().unwrap().contains(want)),
            "event `{want}`: {done:#}"
        );
    }
    assert!(
        answers(port, 6).await.iter().all(|b| b == "rev2"),
        "all traffic on rev2"
    );

    // Scale down by UpdateService: 1 task left, the others deregistered.
    script(&ep, &["update_service", &cluster, &name, "desired-count", "1"]).await;
    service_until(&ep, args, "1 task and 1 target", |s| {
        s["tasks"].as_array().unwrap().len() == 1
            && s["targets"].as_array().unwrap().len() == 1
            && healthy_targets(s) == 1
    })
    .await;

    // forceNewDeployment: the same revision, a new task in place of the old one.
    let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
    let before = s["tasks"][0]["arn"].as_str().unwrap().to_owned();
    let forced = script(&ep, &["update_service", &cluster, &name, "force", ""]).await;
    assert_eq!(forced["deployments"].as_array().unwrap().len(), 2, "{forced:#}");
    assert_eq!(forced["deployments"][0][1], rev2.as_str(), "{forced:#}");
    service_until(&ep, args, "a new task of the same revision", |s| {
        let ds = s["deployments"].as_array().unwrap();
        ds.len() == 1
            && ds[0]["rolloutState"] == "COMPLETED"
            && s["tasks"].as_array().unwrap().len() == 1
            && s["tasks"][0]["arn"] != before.as_str()
            && s["tasks"][0]["taskDefinitionArn"] == rev2.as_str()
            && healthy_targets(s) == 1
    })
    .await;

    // A broken revision (its web exits at once): the circuit breaker fails it after 3
    // failed tasks and rolls back to rev2, which keeps serving all along.
    let rev3 = register(&ep, &web_td(&family, "rev3", Some("not-a-port"))).await;
    let rev3 = rev3["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let load = hostalb_testkit::LoadGen::start(
        format!("http://127.0.0.1:{port}/"),
        2,
        ROLLOUT_PATIENCE + Duration::from_secs(30),
    );
    script(
        &ep,
        &["update_service", &cluster, &name, "task-definition", &rev3],
    )
    .await;
    let began = std::time::Instant::now();
    let back = loop {
        let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
        assert!(healthy_targets(&s) >= 1, "rev2 keeps serving: {s:#}");
        let ds = s["deployments"].as_array().unwrap();
        if ds.len() == 1 && ds[0]["rolloutState"] == "COMPLETED" && ds[0]["taskDefinition"] == rev2.as_str() {
            break s;
        }
        assert!(
            began.elapsed() < ROLLOUT_PATIENCE,
            "the breaker never rolled back: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let report = load.stop().await;
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert!(report.non_2xx.is_empty(), "{:?}", report.non_2xx);
    let events = back["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("deployment failed: tasks failed to start")),
        "{back:#}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.as_str().unwrap().contains("rolling back")),
        "{back:#}"
    );
    assert!(task_defs(&back).iter().all(|t| *t == rev2), "{back:#}");
    assert_ne!(rev1, rev2);

    let deleted = script(&ep, &["delete_service", &cluster, &name, "force"]).await;
    assert_eq!(deleted["status"], "DRAINING");
    service_until(&ep, args, "INACTIVE with no task", |s| {
        s["status"] == "INACTIVE" && s["tasks"].as_array().unwrap().is_empty()
    })
    .await;
}

/// The service's running tasks: ARN -> (task definition, web's Docker id).
fn running(s: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .map(|t| {
            (
                t["arn"].as_str().unwrap().to_owned(),
                (
                    t["taskDefinitionArn"].as_str().unwrap().to_owned(),
                    t["web"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elb_unhealthy_task_is_replaced_after_the_grace_period_and_not_before() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let family = unique("ecsunhealthy");
    let cluster = unique("cl");
    let name = unique("svc");
    let port = crate::common::free_port();
    register(&ep, &web_td(&family, "web", None)).await;
    // A grace period of 30 s: the target fails its checks well before it ends.
    let grace = Duration::from_secs(30);
    let created = std::time::Instant::now();
    let made = script(
        &ep,
        &[
            "service",
            &name,
            &family,
            &port.to_string(),
            &cluster,
            "2",
            "no",
            &grace.as_secs().to_string(),
        ],
    )
    .await;
    assert_eq!(made["service"]["healthCheckGracePeriodSeconds"], 30, "{made:#}");
    let tg = made["targetGroupArn"].as_str().unwrap().to_owned();
    let args = [cluster.as_str(), name.as_str(), tg.as_str()];
    let s = service_until(&ep, args, "2 healthy targets", |s| healthy_targets(s) == 2).await;
    let sick = s["tasks"][0]["arn"].as_str().unwrap().to_owned();
    let sick_port = u16::try_from(s["tasks"][0]["ports"][0].as_u64().unwrap()).unwrap();
    let kept = s["tasks"][1]["arn"].as_str().unwrap().to_owned();
    // The task's own /health answers 503 from now on; its container keeps running.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sick_port));
    let set = tokio::task::spawn_blocking(move || {
        http_request(addr, "POST", "/admin/health/503", Duration::from_secs(5))
    })
    .await
    .unwrap()
    .expect("the task's port answers");
    assert_eq!(set.status, 200);

    // Unhealthy in its target group, within the grace period: the task keeps running.
    let s = service_until(&ep, args, "the target unhealthy", |s| {
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t[0].as_u64() == Some(u64::from(sick_port)) && t[1] == "unhealthy")
    })
    .await;
    if created.elapsed() + Duration::from_secs(2) < grace {
        assert!(
            running(&s).contains_key(&sick),
            "an unhealthy task is kept within the grace period: {s:#}"
        );
    }

    // After it: stopped (deregistered first) with ECS's reason, and replaced.
    let d = until(&ep, &cluster, &sick, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert!(
        created.elapsed() >= grace,
        "stopped after the grace period, not before: {:?}",
        created.elapsed()
    );
    assert_eq!(
        d["task"]["stoppedReason"],
        format!("Task failed ELB health checks in (target-group {tg})").as_str(),
        "{d:#}"
    );
    assert_eq!(d["task"]["stopCode"], "ServiceSchedulerInitiated");
    assert_eq!(container(&d["task"], "web")["exitCode"], 0, "stopped by SIGTERM");
    let s = service_until(&ep, args, "a healthy replacement", |s| {
        s["runningCount"] == 2 && healthy_targets(s) == 2 && !running(s).contains_key(&sick)
    })
    .await;
    assert!(
        running(&s).contains_key(&kept),
        "the healthy task was left alone: {s:#}"
    );
    assert!(
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t[0].as_u64() != Some(u64::from(sick_port))),
        "deregistered: {s:#}"
    );
    let events = s["events"].as_array().unwrap();
    let id = sick.rsplit('/').next().unwrap();
    for want in [
        format!("(task {id}) (port {sick_port}) is unhealthy in (target-group {tg})"),
        format!("has stopped 1 running tasks: (task {id})."),
    ] {
        assert!(
            events.iter().any(|e| e.as_str().unwrap().contains(&want)),
            "event `{want}`: {s:#}"
        );
    }
    script(&ep, &["delete_service", &cluster, &name, "force"]).await;
    service_until(&ep, args, "INACTIVE with no task", |s| {
        s["status"] == "INACTIVE" && s["tasks"].as_array().unwrap().is_empty()
    })
    .await;
}

/// Starts a rolling update to `rev`, stops hostalb (`kill`: SIGKILL or SIGTERM) once the
/// new deployment has a running task, starts it again on the same state file and waits
/// for the deployment to complete. Tasks that ran before the stop run on with the same
/// container (none is started twice).
async fn restart_mid_rollout(
    alb: HostAlb,
    state: &std::path::Path,
    args: [&str; 3],
    rev: &str,
    kill: fn(&HostAlb) -> bool,
) -> HostAlb {
    let ep = endpoint(&alb);
    script(&ep, &["update_service", args[0], args[1], "task-definition", rev]).await;
    let before = service_until(&ep, args, "a task of the new revision running", |s| {
        running(s).values().any(|(td, _)| td == rev)
    })
    .await;
    let before = running(&before);
    assert!(kill(&alb));
    alb.wait_exit(Duration::from_secs(70))
        .await
        .expect("hostalb exited");
    let alb = start(state).await;
    let ep = endpoint(&alb);
    let began = std::time::Instant::now();
    let done = loop {
        let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
        let ds = s["deployments"].as_array().unwrap();
        if ds.len() == 1
            && ds[0]["rolloutState"] == "COMPLETED"
            && ds[0]["taskDefinition"] == rev
            && healthy_targets(&s) == 3
            && running(&s).len() == 3
        {
            break s;
        }
        assert!(
            began.elapsed() < ROLLOUT_PATIENCE,
            "the rollout never completed after the restart: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let after = running(&done);
    assert!(after.values().all(|(td, _)| td == rev), "{done:#}");
    for (arn, (td, web)) in &before {
        if td == rev {
            assert_eq!(
                after.get(arn).map(|(_, w)| w.as_str()),
                Some(web.as_str()),
                "a new task running before the restart runs on, same container: {done:#}"
            );
        }
    }
    for arn in after.keys() {
        assert_eq!(docker_ids(arn).len(), 1, "one container per task: {arn}");
    }
    alb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_resumes_after_hostalb_is_killed_or_terminated_midway() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let family = unique("ecsresume");
    let cluster = unique("cl");
    let name = unique("svc");
    let port = crate::common::free_port();
    let mut revs = Vec::new();
    for r in ["rev1", "rev2", "rev3"] {
        let td = register(&ep, &web_td(&family, r, None)).await;
        revs.push(
            td["taskDefinition"]["taskDefinitionArn"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let made = script(
        &ep,
        &["service", &name, &revs[0], &port.to_string(), &cluster, "3"],
    )
    .await;
    let tg = made["targetGroupArn"].as_str().unwrap().to_owned();
    let args = [cluster.as_str(), name.as_str(), tg.as_str()];
    // Old tasks drain 2 s: a stop is under way when hostalb goes.
    script(&ep, &["set_delay", &tg, "2"]).await;
    service_until(&ep, args, "3 healthy targets of rev1", |s| {
        healthy_targets(s) == 3 && s["deployments"][0]["rolloutState"] == "COMPLETED"
    })
    .await;
    let alb = restart_mid_rollout(alb, &state, args, &revs[1], HostAlb::sigkill).await;
    let alb = restart_mid_rollout(alb, &state, args, &revs[2], HostAlb::sigterm).await;
    let ep = endpoint(&alb);
    assert!(
        answers(port, 6).await.iter().all(|b| b == "rev3"),
        "all traffic on rev3"
    );
    script(&ep, &["delete_service", &cluster, &name, "force"]).await;
    service_until(&ep, args, "INACTIVE with no task", |s| {
        s["status"] == "INACTIVE" && s["tasks"].as_array().unwrap().is_empty()
    })
    .await;
}

/// Runs of the ECS figures (`HOSTALB_ECS_FIGURE_RUNS`, default 5).
const FIGURE_RUNS: usize = 5;

/// Healthy targets of target group `name` as the admin API reports them.
async fn healthy_in(alb: &HostAlb, name: &str) -> usize {
    let (status, body) = alb
        .admin_get(&format!("/api/target-health?target_group={name}"))
        .await;
    if status != 200 {
        return 0;
    }
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["TargetHealthDescriptions"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|t| t["TargetHealth"]["State"] == "healthy")
            .count()
    })
}

fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The figures of docs/performance.md's ECS section: from CreateService to 3 tasks
/// healthy and routed (health checks every 5 s, 2 to turn healthy: ALB's fastest), and a
/// rolling update of 3 tasks with a deregistration delay of 0 under steady load (4 keep-
/// alive clients): its time and failed requests. Prints one line per run and the medians.
/// `cargo nextest run -p hostalb --test e2e --run-ignored only -E 'test(/ecs::figures_/)' --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for docs/performance.md (about 30 s a run): run with --run-ignored only"]
async fn figures_service_start_and_rolling_update_with_delay_0() {
    require_docker();
    let runs = std::env::var("HOSTALB_ECS_FIGURE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(FIGURE_RUNS)
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let (mut starts, mut rollouts, mut failed_total, mut requests_total) = (Vec::new(), Vec::new(), 0, 0);
    for run in 1..=runs {
        let family = unique("ecsfig");
        let cluster = unique("cl");
        let name = unique("svc");
        let port = crate::common::free_port();
        register(&ep, &web_td(&family, "rev1", None)).await;
        let rev2 = register(&ep, &web_td(&family, "rev2", None)).await;
        let rev2 = rev2["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_owned();
        let rev1 = format!("{family}:1");
        let made = script(&ep, &["service", &name, &rev1, &port.to_string(), &cluster, "3"]).await;
        let created = made["createdAtEpoch"].as_f64().unwrap();
        let tg = made["targetGroupArn"].as_str().unwrap().to_owned();
        let args = [cluster.as_str(), name.as_str(), tg.as_str()];
        // Healthy (3 targets) and routed (the listener answers from the service).
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let began = std::time::Instant::now();
        let ready = loop {
            if healthy_in(&alb, &name).await == 3 {
                let r = tokio::task::spawn_blocking(move || http_get(addr, "/", Duration::from_secs(2)))
                    .await
                    .unwrap();
                if r.is_ok_and(|r| r.header("x-backend") == Some("rev1")) {
                    break epoch() - created;
                }
            }
            assert!(began.elapsed() < SERVICE_PATIENCE, "never healthy and routed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        service_until(&ep, args, "rev1 COMPLETED", |s| {
            s["deployments"][0]["rolloutState"] == "COMPLETED" && healthy_targets(s) == 3
        })
        .await;

        let load = hostalb_testkit::LoadGen::start(
            format!("http://127.0.0.1:{port}/"),
            4,
            ROLLOUT_PATIENCE + Duration::from_secs(30),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let began = std::time::Instant::now();
        script(
            &ep,
            &["update_service", &cluster, &name, "task-definition", &rev2],
        )
        .await;
        loop {
            let s = script(&ep, &["service_state", args[0], args[1], args[2]]).await;
            let ds = s["deployments"].as_array().unwrap();
            if ds.len() == 1
                && ds[0]["rolloutState"] == "COMPLETED"
                && ds[0]["taskDefinition"] == rev2.as_str()
                && healthy_targets(&s) == 3
            {
                break;
            }
            assert!(
                began.elapsed() < ROLLOUT_PATIENCE,
                "the rollout never completed: {s:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rollout = began.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = load.stop().await;
        let failed = report.error_count + report.non_2xx.iter().map(|(_, n)| n).sum::<u64>();
        println!(
            "run {run}: CreateService to 3 tasks healthy and routed {ready:.2} s; rolling update of 3 tasks (delay 0) {rollout:.1} s, {} requests, {failed} failed {:?}",
            report.total, report.non_2xx
        );
        starts.push(ready);
        rollouts.push(rollout);
        failed_total += failed;
        requests_total += report.total;
        script(&ep, &["delete_service", &cluster, &name, "force"]).await;
        service_until(&ep, args, "INACTIVE with no task", |s| {
            s["status"] == "INACTIVE" && s["tasks"].as_array().unwrap().is_empty()
        })
        .await;
    }
    println!(
        "ECS figures over {runs} runs: CreateService to 3 tasks healthy and routed, median {:.2} s; rolling update of 3 tasks with deregistration delay 0 under 4 keep-alive clients, median {:.1} s, {failed_total} failed of {requests_total} requests",
        median(starts),
        median(rollouts)
    );
    assert_eq!(failed_total, 0, "no request failed during the rolling updates");
}
