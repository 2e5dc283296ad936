//! The operations that need no Docker engine: clusters, task definitions, the refusals of
//! RunTask and StopTask before anything is made, and the unsupported ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::{Ecs, EcsError, Shared};

/// An API whose engine is never asked (nothing listens there) and which counts its saves.
fn ecs() -> (Ecs, Shared, Arc<AtomicUsize>) {
    let shared = Shared::default();
    let saves = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&saves);
    // Port 9 (discard): no engine; the operations tested here never reach it.
    let docker = crate::docker::connect(Some("tcp://127.0.0.1:9")).unwrap();
    let saver = Box::new(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let registrar: crate::Registrar =
        Arc::new(|_| Box::pin(async { Err::<std::time::Duration, _>("no load balancer here".to_owned()) }));
    (Ecs::new(shared.clone(), docker, saver, registrar), shared, saves)
}

async fn call(ecs: &Ecs, op: &str, input: Value) -> Result<Value, EcsError> {
    ecs.call(op, input.to_string().as_bytes()).await
}

fn td(family: &str) -> Value {
    json!({"family": family, "containerDefinitions": [{"name": "web", "image": "img"}]})
}

#[tokio::test]
async fn task_definitions_get_revisions_and_are_found_by_family_revision_or_arn() {
    let (ecs, shared, saves) = ecs();
    let one = call(&ecs, "RegisterTaskDefinition", td("shop")).await.unwrap();
    let arn1 = one["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(arn1, "arn:aws:ecs:us-east-1:000000000000:task-definition/shop:1");
    assert_eq!(one["taskDefinition"]["networkMode"], "bridge");
    let two = call(&ecs, "RegisterTaskDefinition", td("shop")).await.unwrap();
    assert_eq!(two["taskDefinition"]["revision"], 2);
    call(&ecs, "RegisterTaskDefinition", td("other")).await.unwrap();
    assert_eq!(saves.load(Ordering::Relaxed), 3);
    assert_eq!(shared.lock().task_definitions.len(), 3);

    let latest = call(&ecs, "DescribeTaskDefinition", json!({"taskDefinition": "shop"}))
        .await
        .unwrap();
    assert_eq!(latest["taskDefinition"]["revision"], 2);
    let by_arn = call(&ecs, "DescribeTaskDefinition", json!({"taskDefinition": arn1}))
        .await
        .unwrap();
    assert_eq!(by_arn["taskDefinition"]["revision"], 1);

    let e = call(
        &ecs,
        "DeregisterTaskDefinition",
        json!({"taskDefinition": "shop"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "ClientException");
    let gone = call(
        &ecs,
        "DeregisterTaskDefinition",
        json!({"taskDefinition": "shop:2"}),
    )
    .await
    .unwrap();
    assert_eq!(gone["taskDefinition"]["status"], "INACTIVE");
    let latest = call(&ecs, "DescribeTaskDefinition", json!({"taskDefinition": "shop"}))
        .await
        .unwrap();
    assert_eq!(
        latest["taskDefinition"]["revision"], 1,
        "the latest ACTIVE revision"
    );
    let e = call(&ecs, "RunTask", json!({"taskDefinition": "shop:2"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.contains("inactive")),
        ("ClientException", true)
    );

    let active = call(&ecs, "ListTaskDefinitions", json!({})).await.unwrap();
    assert_eq!(active["taskDefinitionArns"].as_array().unwrap().len(), 2);
    let all = call(
        &ecs,
        "ListTaskDefinitions",
        json!({"status": "ALL", "familyPrefix": "sh", "sort": "DESC"}),
    )
    .await
    .unwrap();
    let arns: Vec<&str> = all["taskDefinitionArns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        arns[0].ends_with("shop:2") && arns[1].ends_with("shop:1"),
        "{arns:?}"
    );
    let page = call(
        &ecs,
        "ListTaskDefinitions",
        json!({"status": "ALL", "maxResults": 2}),
    )
    .await
    .unwrap();
    assert_eq!(page["nextToken"], "2");
    let rest = call(
        &ecs,
        "ListTaskDefinitions",
        json!({"status": "ALL", "nextToken": "2"}),
    )
    .await
    .unwrap();
    assert_eq!(rest["taskDefinitionArns"].as_array().unwrap().len(), 1);
    assert!(rest["nextToken"].is_null());
}

#[tokio::test]
async fn clusters_default_always_exists_and_create_is_idempotent() {
    let (ecs, shared, _) = ecs();
    let d = call(&ecs, "DescribeClusters", json!({})).await.unwrap();
    assert_eq!(d["clusters"][0]["clusterName"], "default");
    let c = call(&ecs, "CreateCluster", json!({"clusterName": "shop"}))
        .await
        .unwrap();
    assert_eq!(
        c["cluster"]["clusterArn"],
        "arn:aws:ecs:us-east-1:000000000000:cluster/shop"
    );
    call(&ecs, "CreateCluster", json!({"clusterName": "shop"}))
        .await
        .unwrap();
    assert_eq!(shared.lock().clusters.len(), 1);
    let d = call(&ecs, "DescribeClusters", json!({"clusters": ["shop", "nope"]}))
        .await
        .unwrap();
    assert_eq!(d["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let l = call(&ecs, "ListClusters", json!({})).await.unwrap();
    assert_eq!(l["clusterArns"].as_array().unwrap().len(), 2);
    let e = call(&ecs, "CreateCluster", json!({"clusterName": "a b"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn refused_calls_make_nothing() {
    let (ecs, shared, saves) = ecs();
    call(&ecs, "RegisterTaskDefinition", td("shop")).await.unwrap();
    let before = saves.load(Ordering::Relaxed);
    let cases = [
        (
            "RunTask",
            json!({"cluster": "nope", "taskDefinition": "shop"}),
            "ClusterNotFoundException",
        ),
        ("RunTask", json!({"taskDefinition": "none"}), "ClientException"),
        (
            "RunTask",
            json!({"taskDefinition": "shop", "count": 11}),
            "InvalidParameterException",
        ),
        (
            "RunTask",
            json!({"taskDefinition": "shop", "launchType": "FARGATE"}),
            "InvalidParameterException",
        ),
        (
            "RunTask",
            json!({"taskDefinition": "shop", "overrides": {"containerOverrides": [{"name": "web"}]}}),
            "ClientException",
        ),
        ("StopTask", json!({"task": "abc"}), "InvalidParameterException"),
        ("DescribeTasks", json!({"tasks": []}), "InvalidParameterException"),
        (
            "RegisterTaskDefinition",
            json!({"family": "x", "volumes": [{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
            "containerDefinitions": [{"name": "a", "image": "i"}]}),
            "ClientException",
        ),
        (
            "RunTask",
            json!({"taskDefinition": "shop", "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["s"]}}}),
            "InvalidParameterException",
        ),
        (
            "UpdateService",
            json!({"service": "s"}),
            "ServiceNotFoundException",
        ),
        (
            "UpdateService",
            json!({"service": "s", "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
                "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]}}),
            "UnsupportedFeatureException",
        ),
        (
            "UpdateService",
            json!({"service": "s", "deploymentConfiguration": {"strategy": "BLUE_GREEN"}}),
            "InvalidParameterException",
        ),
        (
            "CreateService",
            json!({"serviceName": "s", "taskDefinition": "shop", "desiredCount": 1,
                "deploymentConfiguration": {"strategy": "CANARY"},
                "loadBalancers": [{"targetGroupArn": "tg", "containerName": "web", "containerPort": 80}]}),
            "InvalidParameterException",
        ),
        (
            "CreateService",
            json!({"serviceName": "s", "taskDefinition": "shop", "desiredCount": 1,
                "loadBalancers": [{"targetGroupArn": "tg", "containerName": "web", "containerPort": 80,
                    "advancedConfiguration": {"alternateTargetGroupArn": "tg2", "productionListenerRule": "r",
                        "roleArn": "not-a-role"}}]}),
            "InvalidParameterException",
        ),
        (
            "UpdateService",
            json!({"service": "s", "loadBalancers": []}),
            "InvalidParameterException",
        ),
        (
            "CreateService",
            json!({"serviceName": "s", "taskDefinition": "shop"}),
            "InvalidParameterException",
        ),
        (
            "CreateService",
            json!({"serviceName": "s", "taskDefinition": "shop", "desiredCount": 1,
                "loadBalancers": [{"targetGroupArn": "tg", "containerName": "web", "containerPort": 80}]}),
            "InvalidParameterException",
        ),
        (
            "CreateService",
            json!({"serviceName": "s", "taskDefinition": "shop", "desiredCount": 1,
                "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["s"]}}}),
            "InvalidParameterException",
        ),
        (
            "DeleteService",
            json!({"service": "s"}),
            "ServiceNotFoundException",
        ),
        (
            "DescribeServices",
            json!({"services": []}),
            "InvalidParameterException",
        ),
        ("FlyToTheMoon", json!({}), "UnknownOperationException"),
        (
            "ListTasks",
            json!({"maxResults": "ten"}),
            "SerializationException",
        ),
    ];
    for (op, input, code) in cases {
        let e = call(&ecs, op, input.clone()).await.unwrap_err();
        assert_eq!(e.code, code, "{op} {input}: {e}");
        assert_eq!(e.http_status(), 400);
    }
    assert!(shared.lock().tasks.is_empty());
    assert_eq!(saves.load(Ordering::Relaxed), before, "nothing was written");
    let e = ecs.call("ListTasks", b"{not json").await.unwrap_err();
    assert_eq!(e.code, "SerializationException");
    let empty = ecs.call("ListTasks", b"").await.unwrap();
    assert_eq!(empty["taskArns"], json!([]));
}

#[tokio::test]
async fn services_are_made_described_listed_and_deleted_only_when_scaled_to_zero_or_forced() {
    let (ecs, shared, _) = ecs();
    call(
        &ecs,
        "RegisterTaskDefinition",
        json!({"family": "shop", "containerDefinitions": [{"name": "web", "image": "img",
            "portMappings": [{"containerPort": 80}]}]}),
    )
    .await
    .unwrap();
    let lb = json!([{"targetGroupArn": "arn:tg", "containerName": "web", "containerPort": 80}]);
    let made = call(
        &ecs,
        "CreateService",
        json!({"serviceName": "api", "taskDefinition": "shop", "desiredCount": 0, "loadBalancers": lb}),
    )
    .await
    .unwrap();
    let s = &made["service"];
    assert_eq!(
        s["serviceArn"],
        "arn:aws:ecs:us-east-1:000000000000:service/default/api"
    );
    assert_eq!(s["desiredCount"], 0);
    assert_eq!(s["deployments"][0]["status"], "PRIMARY");
    assert_eq!(s["loadBalancers"][0]["containerPort"], 80);
    let again = call(
        &ecs,
        "CreateService",
        json!({"serviceName": "api", "taskDefinition": "shop", "desiredCount": 0}),
    )
    .await
    .unwrap_err();
    assert_eq!(again.code, "InvalidParameterException");
    let listed = call(&ecs, "ListServices", json!({})).await.unwrap();
    assert_eq!(listed["serviceArns"].as_array().unwrap().len(), 1);
    let d = call(&ecs, "DescribeServices", json!({"services": ["api", "nope"]}))
        .await
        .unwrap();
    assert_eq!(d["services"][0]["serviceName"], "api");
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    // Scaled to 0: deleted without force; DRAINING until the scheduler sees no task.
    let gone = call(&ecs, "DeleteService", json!({"service": "api"}))
        .await
        .unwrap();
    assert_eq!(gone["service"]["status"], "DRAINING");
    assert_eq!(shared.lock().services[0].status, "DRAINING");
    let listed = call(&ecs, "ListServices", json!({})).await.unwrap();
    assert_eq!(
        listed["serviceArns"].as_array().unwrap().len(),
        1,
        "draining services are listed"
    );

    call(
        &ecs,
        "CreateService",
        json!({"serviceName": "big", "taskDefinition": "shop", "desiredCount": 0}),
    )
    .await
    .unwrap();
    shared
        .lock()
        .services
        .iter_mut()
        .find(|s| s.service_name == "big")
        .unwrap()
        .desired_count = 3;
    let e = call(&ecs, "DeleteService", json!({"service": "big"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("scaled above 0"), "{e}");
    let forced = call(&ecs, "DeleteService", json!({"service": "big", "force": true}))
        .await
        .unwrap();
    assert_eq!(forced["service"]["desiredCount"], 0);
}

#[tokio::test]
async fn awsvpc_task_definitions_fill_host_ports_and_need_ip_target_groups() {
    let (ecs, shared, _) = ecs();
    let types: crate::TargetTypeReader = Arc::new(|tg: String| {
        Box::pin(async move { Some(if tg.ends_with("/inst") { "instance" } else { "ip" }.to_owned()) })
    });
    let ecs = ecs.with_target_types(types);
    let reg = call(
        &ecs,
        "RegisterTaskDefinition",
        json!({"family": "vpc", "networkMode": "awsvpc",
               "containerDefinitions": [{"name": "web", "image": "img", "portMappings": [{"containerPort": 80}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        reg["taskDefinition"]["containerDefinitions"][0]["portMappings"][0]["hostPort"],
        80
    );
    let service = |tg: &str| {
        json!({"serviceName": "s", "taskDefinition": "vpc", "desiredCount": 0,
               "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
               "loadBalancers": [{"targetGroupArn": tg, "containerName": "web", "containerPort": 80}]})
    };
    let e = call(&ecs, "CreateService", service("arn:tg/inst"))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert!(e.message.contains("target type instance"), "{e}");
    assert!(shared.lock().services.is_empty());
    let made = call(&ecs, "CreateService", service("arn:tg/ip")).await.unwrap();
    assert_eq!(
        made["service"]["networkConfiguration"]["awsvpcConfiguration"]["subnets"],
        json!(["subnet-1"])
    );
}
