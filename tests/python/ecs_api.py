"""Drives hostalb's ECS API with the real clients (boto3 and the AWS CLI v1), for
tests/e2e/ecs.rs. Each command prints one JSON object on stdout; a failure raises
(non-zero exit, traceback on stderr).

Usage: ecs_api.py COMMAND ENDPOINT [ARGS...]
"""

import json
import os
import subprocess
import sys

import boto3
import botocore.config
import botocore.exceptions


def client(endpoint):
    return boto3.client(
        "ecs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def cli(endpoint, *args):
    """The AWS CLI v1 (the awscli module of the same interpreter), JSON out."""
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", endpoint, "--output", "json", "ecs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"aws ecs {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def register(endpoint, path):
    """`aws ecs register-task-definition --cli-input-json file://PATH`."""
    return cli(endpoint, "register-task-definition", "--cli-input-json", f"file://{path}")


def run(endpoint, family, cluster, count="1"):
    """boto3 creates the cluster, checks it and runs COUNT tasks of FAMILY in it."""
    ecs = client(endpoint)
    ecs.create_cluster(clusterName=cluster)
    clusters = ecs.describe_clusters(clusters=[cluster, "nope"])
    td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    listed = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=int(count), startedBy="e2e")
    return {
        "clusters": [c["clusterName"] for c in clusters["clusters"]],
        "failures": [f["reason"] for f in clusters["failures"]],
        "revision": td["revision"],
        "listed": listed,
        "task": out["tasks"][0],
        "tasks": [t["taskArn"] for t in out["tasks"]],
    }


def describe(endpoint, cluster, task):
    """boto3 DescribeTasks and ListTasks."""
    ecs = client(endpoint)
    t = ecs.describe_tasks(cluster=cluster, tasks=[task])["tasks"][0]
    running = ecs.list_tasks(cluster=cluster)["taskArns"]
    stopped = ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]
    return {"task": json.loads(json.dumps(t, default=str)), "running": running, "stopped": stopped}


def stop(endpoint, cluster, task):
    """`aws ecs stop-task`."""
    return cli(endpoint, "stop-task", "--cluster", cluster, "--task", task, "--reason", "e2e says stop")


def errors(endpoint):
    """ECS's error shapes, as botocore's modelled exceptions."""
    ecs = client(endpoint)
    out = {}
    calls = {
        "unknown_cluster": lambda: ecs.list_tasks(cluster="no-such-cluster"),
        "unknown_td": lambda: ecs.run_task(taskDefinition="no-such-family"),
        "efs": lambda: ecs.register_task_definition(
            family="x",
            volumes=[{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
            containerDefinitions=[{"name": "a", "image": "i"}],
        ),
        "cycle": lambda: ecs.register_task_definition(
            family="x",
            containerDefinitions=[
                {"name": "a", "image": "i", "dependsOn": [{"containerName": "b", "condition": "START"}]},
                {"name": "b", "image": "i", "dependsOn": [{"containerName": "a", "condition": "START"}]},
            ],
        ),
        "service": lambda: ecs.update_service(cluster="default", service="s", desiredCount=1),
        "stop_unknown": lambda: ecs.stop_task(task="0123"),
    }
    for name, call in calls.items():
        try:
            call()
            out[name] = {"code": None}
        except botocore.exceptions.ClientError as e:
            out[name] = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
    return out


def mixed(endpoint, name, step):
    """ELBv2 and ECS resources side by side in one state file: `make` creates a target
    group and a task definition, alternating the APIs; `check` lists both."""
    elb = boto3.client(
        "elbv2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ecs = client(endpoint)
    if step == "make":
        ecs.register_task_definition(family=name, containerDefinitions=[{"name": "a", "image": "i"}])
        elb.create_target_group(Name=name, Protocol="HTTP", Port=80, TargetType="ip")
        ecs.create_cluster(clusterName=name)
    groups = [g["TargetGroupName"] for g in elb.describe_target_groups()["TargetGroups"]]
    families = ecs.list_task_definitions(familyPrefix=name)["taskDefinitionArns"]
    clusters = ecs.list_clusters()["clusterArns"]
    return {"groups": groups, "families": families, "clusters": clusters}


def elbv2(endpoint):
    return boto3.client(
        "elbv2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def service(endpoint, name, family, port, cluster, desired="2", breaker="no", grace=""):
    """A load balancer, target group and listener (ELBv2), then an ECS service of FAMILY
    with DESIRED tasks (2) in that target group (web:80); BREAKER `rollback` turns on the
    deployment circuit breaker with rollback; GRACE, when given, is the service's
    healthCheckGracePeriodSeconds."""
    elb = elbv2(endpoint)
    lb = elb.create_load_balancer(Name=name)["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=80, TargetType="ip", HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
    )["TargetGroups"][0]
    elb.modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}],
    )
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=int(port),
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ecs = client(endpoint)
    ecs.create_cluster(clusterName=cluster)
    extra = {}
    if breaker == "rollback":
        extra["deploymentConfiguration"] = {
            "maximumPercent": 200, "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        }
    if grace:
        extra["healthCheckGracePeriodSeconds"] = int(grace)
    svc = ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=int(desired),
        loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}],
        **extra,
    )["service"]
    return {"targetGroupArn": tg["TargetGroupArn"], "createdAtEpoch": svc["createdAt"].timestamp(),
            "service": json.loads(json.dumps(svc, default=str))}


def service_state(endpoint, cluster, name, tg_arn):
    """The service, its running tasks (with the web's host port) and its target group's health."""
    ecs = client(endpoint)
    svc = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    health = elbv2(endpoint).describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    return {
        "status": svc["status"],
        "runningCount": svc["runningCount"],
        "desiredCount": svc["desiredCount"],
        "events": [e["message"] for e in svc["events"]],
        "deployments": [
            {k: d.get(k) for k in ("id", "status", "taskDefinition", "desiredCount", "pendingCount",
                                   "runningCount", "failedTasks", "rolloutState", "rolloutStateReason")}
            for d in svc.get("deployments", [])
        ],
        "tasks": [
            {
                "arn": t["taskArn"],
                "lastStatus": t["lastStatus"],
                "taskDefinitionArn": t["taskDefinitionArn"],
                "group": t["group"],
                "web": next(c for c in t["containers"] if c["name"] == "web").get("runtimeId"),
                "ports": [b["hostPort"] for c in t["containers"] for b in c.get("networkBindings", [])],
            }
            for t in tasks
        ],
        "targets": sorted(
            (h["Target"]["Port"], h["TargetHealth"]["State"]) for h in health
        ),
    }


def update_service(endpoint, cluster, name, how, value):
    """`aws ecs update-service`: HOW is `task-definition`, `desired-count` or `force`."""
    args = ["update-service", "--cluster", cluster, "--service", name]
    if how == "force":
        args.append("--force-new-deployment")
    else:
        args += [f"--{how}", value]
    out = cli(endpoint, *args)["service"]
    return {"taskDefinition": out["taskDefinition"], "desiredCount": out["desiredCount"],
            "deployments": [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in out["deployments"]]}


def set_delay(endpoint, tg_arn, seconds):
    """The target group's deregistration delay."""
    elbv2(endpoint).modify_target_group_attributes(
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": seconds}],
    )
    return {}


def delete_service(endpoint, cluster, name, force):
    """DeleteService; the error code when it is refused."""
    try:
        out = client(endpoint).delete_service(cluster=cluster, service=name, force=force == "force")
        return {"status": out["service"]["status"]}
    except botocore.exceptions.ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}


def main():
    command, endpoint, *args = sys.argv[1:]
    fn = {"register": register, "run": run, "describe": describe, "stop": stop, "errors": errors, "mixed": mixed,
          "service": service, "service_state": service_state, "delete_service": delete_service,
          "set_delay": set_delay, "update_service": update_service}[command]
    print(json.dumps(fn(endpoint, *args), default=str))


if __name__ == "__main__":
    main()
