//! Task definition members real ECS task definitions use, carried out on the real Docker
//! engine and driven by the AWS CLI (`python -m awscli`) against the real binary: a
//! task-scoped Docker volume shared by two containers (mountPoints + volumesFrom, one
//! writes, the other reads), a bind mount, a shared autoprovisioned volume that outlives
//! the task, environment files reaching the container's environment, log drivers as
//! Docker's LogConfig (awslogs on the engine's default), and awsvpc: a task with its own
//! address (its containers in one network namespace), and a service whose `ip` target
//! group gets `{task address, containerPort}` and is served through hostalb.

use std::time::{Duration, Instant};

use hostalb_testkit::docker::{TEST_IMAGE, docker_ok, http_get, require_docker};
use serde_json::{Value, json};

use crate::ecs_support::{self as support, container, endpoint, start, test_labels, unique};

/// How long one AWS CLI call gets.
const CLI_PATIENCE: Duration = Duration::from_secs(60);
/// Patience for a task or a service to reach a state (containers start in well under a
/// second; a target needs two health checks 5 s apart).
const STATUS_PATIENCE: Duration = Duration::from_secs(45);
/// Polls are this far apart.
const POLL: Duration = Duration::from_millis(300);
/// The Docker network awsvpc tasks get their addresses on (hostalb's `network::NETWORK`).
const AWSVPC_NETWORK: &str = "hostalb-awsvpc";

/// `aws --endpoint-url EP SERVICE ARGS...`: its JSON answer, or the error text.
async fn aws_result(ep: &str, args: &[&str]) -> Result<Value, String> {
    let out = support::run_python(
        &format!("aws {args:?}"),
        support::aws_args(ep, args),
        CLI_PATIENCE,
    )
    .await;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    })
}

async fn aws(ep: &str, args: &[&str]) -> Value {
    aws_result(ep, args)
        .await
        .unwrap_or_else(|e| panic!("aws {args:?} failed: {e}"))
}

/// `aws ecs register-task-definition --cli-input-json file://...`.
async fn register(ep: &str, td: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("td.json");
    std::fs::write(&path, td.to_string()).unwrap();
    aws(
        ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", path.display()),
        ],
    )
    .await
}

async fn describe(ep: &str, cluster: &str, arn: &str) -> Value {
    let d = aws(
        ep,
        &["ecs", "describe-tasks", "--cluster", cluster, "--tasks", arn],
    )
    .await;
    d["tasks"][0].clone()
}

/// Describes the task until `done` holds; the last description.
async fn until(ep: &str, cluster: &str, arn: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    support::poll(
        STATUS_PATIENCE,
        POLL,
        &format!("the task never reached {what}"),
        || describe(ep, cluster, arn),
        done,
    )
    .await
}

fn runtime_id(task: &Value, name: &str) -> String {
    container(task, name)["runtimeId"].as_str().unwrap().to_owned()
}

fn inspect(id: &str, format: &str) -> String {
    docker_ok(["inspect", "--format", format, id]).unwrap()
}

/// Docker volumes carrying the task's label (its own volumes).
fn task_volumes(arn: &str) -> Vec<String> {
    support::labelled(
        &["volume", "ls", "-q"],
        &format!("com.amazonaws.ecs.task-arn={arn}"),
    )
    .unwrap()
}

/// Removes what a test made on the engine when it ends, passed or not.
struct Cleanup {
    volumes: Vec<String>,
    tasks: Vec<String>,
    network: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for arn in &self.tasks {
            let label = format!("com.amazonaws.ecs.task-arn={arn}");
            for id in support::labelled(&["ps", "-aq"], &label).unwrap_or_default() {
                let _ = docker_ok(["rm", "-f", "-v", id.as_str()]);
            }
            for v in task_volumes(arn) {
                let _ = docker_ok(["volume", "rm", v.as_str()]);
            }
        }
        for v in &self.volumes {
            let _ = docker_ok(["volume", "rm", v.as_str()]);
        }
        // The awsvpc network is kept by hostalb (a subnet); removed here when no other
        // test's task is on it (`docker network rm` refuses a network in use).
        if self.network {
            let _ = docker_ok(["network", "rm", AWSVPC_NETWORK]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_bind_mounts_environment_files_and_log_drivers_reach_docker() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let alb = start(&dir.path().join("s.json")).await;
    let ep = endpoint(&alb);
    let family = unique("ecsvol");
    let cluster = unique("cl");
    let shared_volume = unique("ecsshared");
    let mut cleanup = Cleanup {
        volumes: vec![shared_volume.clone()],
        tasks: Vec::new(),
        network: false,
    };

    // A host directory to bind, and two environment files (a path and a file:// URL).
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("app.conf"), "bound-from-the-host\n").unwrap();
    let first = dir.path().join("first.env");
    std::fs::write(&first, "# settings\nA=from-file\nB=first\n\nSHARED=1\n").unwrap();
    let second = dir.path().join("second.env");
    std::fs::write(&second, "B=second\nC=second\n").unwrap();

    let td = json!({
        "family": family,
        "networkMode": "bridge",
        "volumes": [
            {"name": "scratch"},
            {"name": "conf", "host": {"sourcePath": conf.to_str().unwrap()}},
            {"name": shared_volume, "dockerVolumeConfiguration": {
                "scope": "shared", "autoprovision": true, "driver": "local", "labels": test_labels()}},
        ],
        "containerDefinitions": [
            {
                "name": "web", "image": TEST_IMAGE, "essential": true, "memory": 64,
                "mountPoints": [
                    {"sourceVolume": "scratch", "containerPath": "/data"},
                    {"sourceVolume": "conf", "containerPath": "/conf", "readOnly": true},
                    {"sourceVolume": shared_volume, "containerPath": "/cache"},
                ],
                "environment": [{"name": "A", "value": "from-environment"}],
                "environmentFiles": [
                    {"value": first.to_str().unwrap(), "type": "s3"},
                    {"value": format!("file://{}", second.display()), "type": "s3"},
                ],
                "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m", "max-file": "2"}},
                "ulimits": [{"name": "nofile", "softLimit": 2048, "hardLimit": 4096}],
                "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.1.2.3"}],
                "linuxParameters": {"initProcessEnabled": true},
                "stopTimeout": 5,
                "dockerLabels": test_labels(),
            },
            {
                "name": "reader", "image": TEST_IMAGE, "essential": true, "memory": 64,
                "volumesFrom": [{"sourceContainer": "web", "readOnly": true}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/e2e", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "e2e"}},
                "stopTimeout": 5,
                "dockerLabels": test_labels(),
            },
        ],
    });
    let reg = register(&ep, &td).await;
    assert_eq!(
        reg["taskDefinition"]["volumes"][2]["dockerVolumeConfiguration"]["scope"], "shared",
        "{reg:#}"
    );
    aws(&ep, &["ecs", "create-cluster", "--cluster-name", &cluster]).await;
    let run = aws(
        &ep,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            &family,
        ],
    )
    .await;
    let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    cleanup.tasks.push(arn.clone());
    let t = until(&ep, &cluster, &arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
    let web = runtime_id(&t, "web");
    let reader = runtime_id(&t, "reader");

    // The task's own volume: made as the agent names it, labelled with the task.
    let own = task_volumes(&arn);
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].starts_with(&format!("ecs-{family}-1-scratch-")), "{own:?}");

    // web writes into the task volume; reader (volumesFrom web) reads the same file.
    let note = dir.path().join("note.txt");
    std::fs::write(&note, "written-by-web\n").unwrap();
    docker_ok(["cp", note.to_str().unwrap(), &format!("{web}:/data/note.txt")]).unwrap();
    let read = docker_ok(["cp", &format!("{reader}:/data/note.txt"), "-"]).unwrap();
    assert!(
        read.contains("written-by-web"),
        "reader sees web's file: {read:?}"
    );
    // ... read-only for the reader, as volumesFrom readOnly says; all of web's mounts.
    let mounts: Value = serde_json::from_str(&inspect(&reader, "{{json .Mounts}}")).unwrap();
    let destinations: Vec<(&str, bool)> = mounts
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Destination"].as_str().unwrap(), m["RW"].as_bool().unwrap()))
        .collect();
    for path in ["/data", "/conf", "/cache"] {
        assert!(
            destinations.contains(&(path, false)),
            "{path} read-only in reader: {destinations:?}"
        );
    }
    // The bind mount shows the host's file, read-only.
    let bound = docker_ok(["cp", &format!("{web}:/conf/app.conf"), "-"]).unwrap();
    assert!(bound.contains("bound-from-the-host"), "{bound:?}");
    // The shared volume is the Docker volume of its own name, made (autoprovision).
    let web_mounts = inspect(&web, "{{json .Mounts}}");
    assert!(
        web_mounts.contains(&format!("\"Name\":\"{shared_volume}\"")),
        "the shared volume is mounted: {web_mounts}"
    );

    // environment wins over the files, the first file over the second.
    let env: Vec<String> = serde_json::from_str(&inspect(&web, "{{json .Config.Env}}")).unwrap();
    for want in ["A=from-environment", "B=first", "C=second", "SHARED=1"] {
        assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e == "A=from-file" || e == "B=second"),
        "{env:?}"
    );

    // Log drivers: json-file with its options; awslogs on the engine's default driver.
    let log: Value = serde_json::from_str(&inspect(&web, "{{json .HostConfig.LogConfig}}")).unwrap();
    assert_eq!(log["Type"], "json-file", "{log}");
    assert_eq!(log["Config"]["max-size"], "1m");
    assert_eq!(log["Config"]["max-file"], "2");
    let default_driver = docker_ok(["info", "--format", "{{.LoggingDriver}}"]).unwrap();
    let reader_log: Value =
        serde_json::from_str(&inspect(&reader, "{{json .HostConfig.LogConfig}}")).unwrap();
    assert_eq!(reader_log["Type"], default_driver.as_str(), "{reader_log}");
    assert!(
        docker_ok(["logs", &reader]).is_ok(),
        "docker logs works on awslogs containers"
    );

    // Docker's direct members.
    let host: Value = serde_json::from_str(&inspect(&web, "{{json .HostConfig}}")).unwrap();
    assert_eq!(host["ExtraHosts"], json!(["db.internal:10.1.2.3"]));
    assert_eq!(host["Init"], true);
    assert_eq!(
        host["Ulimits"],
        json!([{"Name": "nofile", "Soft": 2048, "Hard": 4096}])
    );

    // StopTask: the task's own volume goes with it; the shared one and the host's
    // directory stay.
    aws(&ep, &["ecs", "stop-task", "--cluster", &cluster, "--task", &arn]).await;
    until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert!(task_volumes(&arn).is_empty(), "the task-scoped volume is removed");
    assert!(docker_ok(["volume", "inspect", &own[0]]).is_err());
    assert!(
        docker_ok(["volume", "inspect", &shared_volume]).is_ok(),
        "the shared volume is kept"
    );
    assert!(conf.join("app.conf").exists());

    // An environment file in S3 is refused at registration with the way to run it here;
    // a local one missing when the task starts fails the task.
    let envfile_td = |value: &str| {
        json!({"family": format!("{family}-env"), "containerDefinitions": [{
            "name": "web", "image": TEST_IMAGE, "dockerLabels": test_labels(),
            "environmentFiles": [{"value": value, "type": "s3"}]}]})
    };
    let path = dir.path().join("s3.json");
    std::fs::write(&path, envfile_td("arn:aws:s3:::bucket/app.env").to_string()).unwrap();
    let e = aws_result(
        &ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", path.display()),
        ],
    )
    .await
    .unwrap_err();
    assert!(e.contains("ClientException") && e.contains("aws s3 cp"), "{e}");
    let missing = dir.path().join("missing.env");
    register(&ep, &envfile_td(missing.to_str().unwrap())).await;
    let run = aws(
        &ep,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            &format!("{family}-env"),
        ],
    )
    .await;
    let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    cleanup.tasks.push(arn.clone());
    let t = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    let reason = t["stoppedReason"].as_str().unwrap();
    assert!(
        reason.starts_with("ResourceInitializationError: container web: environment file")
            && reason.contains("missing.env"),
        "{reason}"
    );
    assert_eq!(t["stopCode"], "TaskFailedToStart");
}

/// GET `path` at `addr`: the `x-backend` header of the answer.
async fn backend_at(addr: std::net::SocketAddr, path: &'static str) -> Result<String, String> {
    tokio::task::spawn_blocking(move || http_get(addr, path, Duration::from_secs(5)))
        .await
        .unwrap()
        .map(|r| r.header("x-backend").unwrap_or_default().to_owned())
}

/// The task's address as DescribeTasks shows it in its ENI attachment.
fn attachment_ip(task: &Value) -> String {
    let a = &task["attachments"][0];
    assert_eq!(a["type"], "ElasticNetworkInterface", "{task:#}");
    a["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "privateIPv4Address")
        .and_then(|d| d["value"].as_str())
        .unwrap_or_else(|| panic!("no privateIPv4Address: {task:#}"))
        .to_owned()
}

fn awsvpc_td(family: &str) -> Value {
    json!({
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [
            // Exits at once (a bad PORT): the namespace is the pause container's, so the
            // containers started after it still join it.
            {
                "name": "init", "image": TEST_IMAGE, "essential": false, "memory": 64,
                "environment": [{"name": "PORT", "value": "not-a-port"}],
                "dockerLabels": test_labels(),
            },
            {
                "name": "web", "image": TEST_IMAGE, "essential": true, "memory": 64,
                "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}],
                "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                "environment": [{"name": "BACKEND_NAME", "value": family}],
                "stopTimeout": 5, "dockerLabels": test_labels(),
            },
            {
                "name": "side", "image": TEST_IMAGE, "essential": true, "memory": 64,
                "portMappings": [{"containerPort": 8081}],
                "environment": [{"name": "PORT", "value": "8081"}, {"name": "BACKEND_NAME", "value": "side"}],
                "stopTimeout": 5, "dockerLabels": test_labels(),
            },
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awsvpc_tasks_get_their_own_address_and_services_register_it_as_ip_targets() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let family = unique("ecsvpc");
    let cluster = unique("cl");
    let mut cleanup = Cleanup {
        volumes: Vec::new(),
        tasks: Vec::new(),
        network: true,
    };
    register(&ep, &awsvpc_td(&family)).await;
    aws(&ep, &["ecs", "create-cluster", "--cluster-name", &cluster]).await;
    let vpc = "awsvpcConfiguration={subnets=[subnet-0abc],securityGroups=[sg-0abc],assignPublicIp=DISABLED}";

    // RunTask with a networkConfiguration: one address for the task, both containers in
    // its namespace, no host port bound.
    let run = aws(
        &ep,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            &family,
            "--network-configuration",
            vpc,
        ],
    )
    .await;
    let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    cleanup.tasks.push(arn.clone());
    let t = until(&ep, &cluster, &arn, "RUNNING", |t| t["lastStatus"] == "RUNNING").await;
    let ip = attachment_ip(&t);
    for c in ["web", "side"] {
        assert_eq!(
            container(&t, c)["networkInterfaces"][0]["privateIpv4Address"],
            ip.as_str(),
            "{t:#}"
        );
        assert_eq!(container(&t, c)["networkBindings"], json!([]), "{t:#}");
    }
    assert_eq!(container(&t, "init")["lastStatus"], "STOPPED", "{t:#}");
    // The pause container (the agent's labels, hostalb's pause image) holds the address;
    // the task's containers are in its namespace.
    let pause = docker_ok([
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.amazonaws.ecs.task-arn={arn}"),
        "--filter",
        "label=com.amazonaws.ecs.container-name=~internal~ecs~pause",
    ])
    .unwrap();
    assert_eq!(pause.lines().count(), 1, "one pause container: {pause:?}");
    assert_eq!(inspect(&pause, "{{.Config.Image}}"), "hostalb-ecs-pause:1");
    assert!(inspect(&pause, "{{.Name}}").starts_with(&format!("/ecs-{family}-1-internalecspause-")));
    assert_eq!(inspect(&pause, "{{.HostConfig.NetworkMode}}"), AWSVPC_NETWORK);
    assert_eq!(
        inspect(
            &pause,
            &format!("{{{{(index .NetworkSettings.Networks \"{AWSVPC_NETWORK}\").IPAddress}}}}")
        ),
        ip
    );
    for c in ["web", "side", "init"] {
        let id = runtime_id(&t, c);
        assert_eq!(
            inspect(&id, "{{.HostConfig.NetworkMode}}"),
            format!("container:{pause}"),
            "{c}"
        );
        let ports = inspect(&id, "{{json .NetworkSettings.Ports}}");
        assert!(!ports.contains("HostPort"), "no host port bound: {ports}");
    }
    let addr: std::net::IpAddr = ip.parse().unwrap();
    assert_eq!(backend_at((addr, 80).into(), "/").await.unwrap(), family);
    assert_eq!(backend_at((addr, 8081).into(), "/").await.unwrap(), "side");
    // kill -9 and start again on the same state file: the task keeps its address and
    // its pause container; stopping it then removes everything it had.
    alb.sigkill();
    alb.wait_exit(Duration::from_secs(10))
        .await
        .expect("hostalb exited");
    let alb = start(&state).await;
    let ep = endpoint(&alb);
    let t = describe(&ep, &cluster, &arn).await;
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");
    assert_eq!(attachment_ip(&t), ip);
    aws(&ep, &["ecs", "stop-task", "--cluster", &cluster, "--task", &arn]).await;
    let t = until(&ep, &cluster, &arn, "STOPPED", |t| t["lastStatus"] == "STOPPED").await;
    assert_eq!(t["attachments"][0]["status"], "DELETED", "{t:#}");
    let left = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.amazonaws.ecs.task-arn={arn}"),
    ])
    .unwrap();
    assert!(
        left.is_empty(),
        "the containers and the pause container are removed: {left}"
    );

    // networkConfiguration on a bridge task definition: refused as ECS refuses it.
    let bridge = unique("ecsbridge");
    register(
        &ep,
        &json!({"family": bridge, "containerDefinitions": [{"name": "web", "image": TEST_IMAGE, "dockerLabels": test_labels()}]}),
    )
    .await;
    let e = aws_result(
        &ep,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            &bridge,
            "--network-configuration",
            vpc,
        ],
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("InvalidParameterException") && e.contains("networkMode"),
        "{e}"
    );

    // A service in an `ip` target group: {task address, 80} registered, served through
    // hostalb's listener.
    let name = unique("svc");
    let port = crate::common::free_port();
    let lb = aws(&ep, &["elbv2", "create-load-balancer", "--name", &name]).await;
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
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
    let tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    aws(
        &ep,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg_arn,
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
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            &port.to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ],
    )
    .await;
    // An `instance` target group cannot take an awsvpc task: refused as ECS refuses it.
    let instance_tg = aws(
        &ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            &unique("inst"),
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--target-type",
            "instance",
        ],
    )
    .await;
    let instance_arn = instance_tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = aws_result(
        &ep,
        &[
            "ecs",
            "create-service",
            "--cluster",
            &cluster,
            "--service-name",
            &name,
            "--task-definition",
            &family,
            "--desired-count",
            "1",
            "--load-balancers",
            &format!("targetGroupArn={instance_arn},containerName=web,containerPort=80"),
        ],
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("InvalidParameterException")
            && e.contains("target type instance, which is incompatible with the awsvpc"),
        "{e}"
    );
    let made = aws(
        &ep,
        &[
            "ecs",
            "create-service",
            "--cluster",
            &cluster,
            "--service-name",
            &name,
            "--task-definition",
            &family,
            "--desired-count",
            "1",
            "--network-configuration",
            vpc,
            "--load-balancers",
            &format!("targetGroupArn={tg_arn},containerName=web,containerPort=80"),
        ],
    )
    .await;
    assert_eq!(
        made["service"]["networkConfiguration"]["awsvpcConfiguration"]["subnets"],
        json!(["subnet-0abc"]),
        "{made:#}"
    );
    let began = Instant::now();
    let (task_arn, target) = loop {
        let listed = aws(
            &ep,
            &[
                "ecs",
                "list-tasks",
                "--cluster",
                &cluster,
                "--service-name",
                &name,
            ],
        )
        .await;
        let health = aws(
            &ep,
            &["elbv2", "describe-target-health", "--target-group-arn", &tg_arn],
        )
        .await;
        let healthy: Vec<&Value> = health["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["TargetHealth"]["State"] == "healthy")
            .collect();
        if let (Some(arn), [one]) = (listed["taskArns"][0].as_str(), healthy.as_slice()) {
            break (arn.to_owned(), one["Target"].clone());
        }
        assert!(
            began.elapsed() < STATUS_PATIENCE,
            "no healthy ip target: {health:#}"
        );
        tokio::time::sleep(POLL).await;
    };
    cleanup.tasks.push(task_arn.clone());
    let t = describe(&ep, &cluster, &task_arn).await;
    assert_eq!(target["Id"], attachment_ip(&t).as_str(), "{target:#} {t:#}");
    assert_eq!(target["Port"], 80);
    let served = backend_at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "/")
        .await
        .unwrap();
    assert_eq!(served, family, "the listener forwards to the task's address");

    // Scaled to zero and deleted: the task leaves the target group and stops.
    aws(
        &ep,
        &[
            "ecs",
            "update-service",
            "--cluster",
            &cluster,
            "--service",
            &name,
            "--desired-count",
            "0",
        ],
    )
    .await;
    let t = until(&ep, &cluster, &task_arn, "STOPPED", |t| {
        t["lastStatus"] == "STOPPED"
    })
    .await;
    assert_eq!(t["attachments"][0]["status"], "DELETED");
    let health = aws(
        &ep,
        &["elbv2", "describe-target-health", "--target-group-arn", &tg_arn],
    )
    .await;
    assert!(
        health["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["TargetHealth"]["State"] != "healthy"),
        "{health:#}"
    );
    aws(
        &ep,
        &[
            "ecs",
            "delete-service",
            "--cluster",
            &cluster,
            "--service",
            &name,
            "--force",
        ],
    )
    .await;
}
