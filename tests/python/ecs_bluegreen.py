"""Drives hostalb's ECS blue/green deployments with boto3, for tests/e2e/ecs_bluegreen.rs.
Each command prints one JSON object on stdout; a failure raises (non-zero exit).

Usage: ecs_bluegreen.py COMMAND ENDPOINT [ARGS...]
"""

import json
import os
import sys

import boto3
import botocore.config
import botocore.exceptions

ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"


def client(kind, endpoint):
    return boto3.client(
        kind,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def setup(endpoint, name, prod_port, test_port):
    """A load balancer with two target groups (A and B, deregistration delay 1 s), a
    production listener on PROD_PORT whose rule (priority 1, path /*) forwards 100/0 to
    A/B, and a test listener on TEST_PORT whose default rule does the same."""
    elb = client("elbv2", endpoint)
    lb = elb.create_load_balancer(Name=name)["LoadBalancers"][0]
    groups = []
    for suffix in ("a", "b"):
        tg = elb.create_target_group(
            Name=f"{name}-{suffix}", Protocol="HTTP", Port=80, TargetType="ip", HealthCheckPath="/health",
            HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "1"}],
        )
        groups.append(tg)
    forward = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": groups[0], "Weight": 100}, {"TargetGroupArn": groups[1], "Weight": 0}]}}
    prod = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=int(prod_port),
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    rule = elb.create_rule(
        ListenerArn=prod, Priority=1, Conditions=[{"Field": "path-pattern", "Values": ["/*"]}], Actions=[forward],
    )["Rules"][0]["RuleArn"]
    test = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=int(test_port), DefaultActions=[forward],
    )["Listeners"][0]["ListenerArn"]
    test_rule = next(r["RuleArn"] for r in elb.describe_rules(ListenerArn=test)["Rules"] if r["IsDefault"])
    return {"a": groups[0], "b": groups[1], "prod": rule, "test": test_rule, "prodListener": prod}


def lbs(ctx, a_primary=True):
    primary, alternate = (ctx["a"], ctx["b"]) if a_primary else (ctx["b"], ctx["a"])
    return [{
        "targetGroupArn": primary, "containerName": "web", "containerPort": 80,
        "advancedConfiguration": {
            "alternateTargetGroupArn": alternate, "productionListenerRule": ctx["prod"],
            "testListenerRule": ctx["test"], "roleArn": ROLE,
        },
    }]


def answer(fn):
    try:
        return {"ok": json.loads(json.dumps(fn(), default=str))}
    except botocore.exceptions.ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}


def create(endpoint, ctx, cluster, name, family, desired, config):
    """CreateService with the setup's advancedConfiguration and deploymentConfiguration CONFIG."""
    ctx = json.loads(ctx)
    ecs = client("ecs", endpoint)
    ecs.create_cluster(clusterName=cluster)
    return answer(lambda: ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=int(desired),
        loadBalancers=lbs(ctx), deploymentConfiguration=json.loads(config),
    )["service"])


def update(endpoint, cluster, name, task_definition, config):
    """UpdateService to TASK_DEFINITION (if not empty) with deploymentConfiguration CONFIG (if not empty)."""
    extra = {}
    if task_definition:
        extra["taskDefinition"] = task_definition
    if config:
        extra["deploymentConfiguration"] = json.loads(config)
    ecs = client("ecs", endpoint)
    return answer(lambda: ecs.update_service(cluster=cluster, service=name, **extra)["service"])


def weights(elb, rule):
    r = elb.describe_rules(RuleArns=[rule])["Rules"][0]
    fwd = next(a for a in r["Actions"] if a["Type"] == "forward")
    return {t["TargetGroupArn"]: t.get("Weight", 1) for t in fwd["ForwardConfig"]["TargetGroups"]}


def state(endpoint, ctx, cluster, name):
    """The service's deployments, events and tasks, both groups' targets, both rules' weights."""
    ctx = json.loads(ctx)
    ecs = client("ecs", endpoint)
    elb = client("elbv2", endpoint)
    svc = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    gone = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="STOPPED")["taskArns"]
    gone = ecs.describe_tasks(cluster=cluster, tasks=gone)["tasks"] if gone else []
    targets = {}
    for g in ("a", "b"):
        health = elb.describe_target_health(TargetGroupArn=ctx[g])["TargetHealthDescriptions"]
        targets[g] = sorted([h["Target"]["Port"], h["TargetHealth"]["State"]] for h in health)
    prod, test = weights(elb, ctx["prod"]), weights(elb, ctx["test"])
    return {
        "taskDefinition": svc["taskDefinition"],
        "deploymentConfiguration": svc["deploymentConfiguration"],
        "loadBalancers": svc["loadBalancers"],
        "events": [e["message"] for e in svc["events"]],
        "deployments": [
            {k: d.get(k) for k in ("id", "status", "taskDefinition", "desiredCount", "runningCount",
                                   "failedTasks", "rolloutState", "rolloutStateReason")}
            for d in svc.get("deployments", [])
        ],
        "tasks": [
            {
                "arn": t["taskArn"], "lastStatus": t["lastStatus"], "taskDefinitionArn": t["taskDefinitionArn"],
                "web": next(c for c in t["containers"] if c["name"] == "web").get("runtimeId"),
            }
            for t in tasks
        ],
        "stopped": [[t["taskArn"], t["lastStatus"]] for t in gone],
        "targets": targets,
        "prod": [prod.get(ctx["a"]), prod.get(ctx["b"])],
        "test": [test.get(ctx["a"]), test.get(ctx["b"])],
    }


def refused(endpoint, ctx, cluster, family):
    """CreateService and UpdateService inputs ECS refuses: [label, code, message] each."""
    ctx = json.loads(ctx)
    ecs = client("ecs", endpoint)
    elb = client("elbv2", endpoint)
    ecs.create_cluster(clusterName=cluster)
    bg = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}

    def lb_with(**changes):
        out = lbs(ctx)
        out[0]["advancedConfiguration"].update(changes)
        out[0]["advancedConfiguration"] = {k: v for k, v in out[0]["advancedConfiguration"].items() if v is not None}
        return out

    # A rule forwarding to A only.
    other = elb.create_rule(
        ListenerArn=ctx["prodListener"], Priority=7, Conditions=[{"Field": "path-pattern", "Values": ["/other"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": ctx["a"]}],
    )["Rules"][0]["RuleArn"]
    missing = ctx["prod"][:-8] + "00000000"
    cases = {
        "no bake time": (lbs(ctx), {"strategy": "BLUE_GREEN"}),
        "linear step 2": (lbs(ctx), {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}}),
        "linear bake 1441": (lbs(ctx), {"strategy": "LINEAR", "linearConfiguration": {"stepBakeTimeInMinutes": 1441}}),
        "canary 0.05": (lbs(ctx), {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.05}}),
        "canary config with linear": (lbs(ctx), {"strategy": "LINEAR", "canaryConfiguration": {"canaryPercent": 5}}),
        "lifecycle hooks": (lbs(ctx), dict(bg, lifecycleHooks=[{
            "targetType": "AWS_LAMBDA", "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "roleArn": ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}])),
        "no advancedConfiguration": ([{"targetGroupArn": ctx["a"], "containerName": "web", "containerPort": 80}], bg),
        "no alternate": (lb_with(alternateTargetGroupArn=None), bg),
        "alternate is primary": (lb_with(alternateTargetGroupArn=ctx["a"]), bg),
        "no role": (lb_with(roleArn=None), bg),
        "bad role": (lb_with(roleArn="admin"), bg),
        "missing rule": (lb_with(productionListenerRule=missing), bg),
        "rule forwards to A only": (lb_with(productionListenerRule=other), bg),
        "test rule forwards to A only": (lb_with(testListenerRule=other), bg),
    }
    out = []
    for label, (balancers, config) in cases.items():
        got = answer(lambda: ecs.create_service(
            cluster=cluster, serviceName="refused", taskDefinition=family, desiredCount=1,
            loadBalancers=balancers, deploymentConfiguration=config,
        ))
        out.append([label, got.get("code"), got.get("message")])
    services = ecs.list_services(cluster=cluster)["serviceArns"]
    return {"cases": out, "services": services}


def deployments(endpoint, cluster, name):
    """ListServiceDeployments (all, then ROLLBACK_SUCCESSFUL only) and DescribeServiceDeployments of all."""
    ecs = client("ecs", endpoint)
    listed = ecs.list_service_deployments(cluster=cluster, service=name)["serviceDeployments"]
    rolled = ecs.list_service_deployments(cluster=cluster, service=name, status=["ROLLBACK_SUCCESSFUL"])
    arns = [d["serviceDeploymentArn"] for d in listed]
    described = ecs.describe_service_deployments(serviceDeploymentArns=arns + [arns[0] + "0"]) if arns else {}
    return {
        "listed": [[d["status"], d["serviceDeploymentArn"]] for d in listed],
        "rolledBack": len(rolled["serviceDeployments"]),
        "described": [
            {k: d.get(k) for k in ("status", "lifecycleStage", "targetServiceRevision", "sourceServiceRevisions",
                                   "rollback", "deploymentCircuitBreaker", "deploymentConfiguration")}
            for d in described.get("serviceDeployments", [])
        ],
        "failures": [f["reason"] for f in described.get("failures", [])],
    }


def main():
    command, endpoint, *args = sys.argv[1:]
    fn = {"setup": setup, "create": create, "update": update, "state": state, "refused": refused,
          "deployments": deployments}[command]
    print(json.dumps(fn(endpoint, *args), default=str))


if __name__ == "__main__":
    main()
