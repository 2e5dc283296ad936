"""An ECS service behind a load balancer, driven by boto3 alone against hostalb's admin
endpoint, for tests/e2e/ecs_clients.rs: each step prints one JSON object on stdout (the
API shapes the test asserts); a failure raises (non-zero exit, traceback on stderr).

Usage: ecs_boto3.py STEP ENDPOINT [ARGS...]

  setup ENDPOINT NAME PORT                  load balancer, target group (delay 0), listener
  create ENDPOINT NAME TD_FILE TG_ARN       RegisterTaskDefinition, CreateCluster, CreateService (3 tasks), waiter
  update ENDPOINT NAME TD_FILE              RegisterTaskDefinition (a new revision), UpdateService, waiter
  delete ENDPOINT NAME                      UpdateService desiredCount 0, DeleteService, waiter services_inactive
  errors ENDPOINT NAME TG_ARN               the errors ECS answers to bad CreateService/UpdateService calls
"""

import json
import os
import sys

import boto3
import botocore.config
import botocore.exceptions

# The waiters poll every second (botocore's ECS default is 15 s), at most this often.
WAITER = {"Delay": 1, "MaxAttempts": 90}


def client(kind, endpoint):
    return boto3.client(
        kind,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def plain(value):
    """botocore's datetimes as text."""
    return json.loads(json.dumps(value, default=str))


def setup(endpoint, name, port):
    elb = client("elbv2", endpoint)
    lb = elb.create_load_balancer(Name=name)["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=80, TargetType="instance", HealthCheckPath="/health",
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
    return {"targetGroupArn": tg["TargetGroupArn"]}


def register(ecs, td_file):
    with open(td_file, encoding="utf-8") as f:
        td = json.load(f)
    return ecs.register_task_definition(**td)["taskDefinition"]


def service_view(ecs, name):
    svc = ecs.describe_services(cluster=name, services=[name])["services"][0]
    arns = ecs.list_tasks(cluster=name, serviceName=name)["taskArns"]
    tasks = ecs.describe_tasks(cluster=name, tasks=arns)["tasks"] if arns else []
    return {"service": plain(svc), "tasks": plain(tasks)}


def create(endpoint, name, td_file, tg_arn):
    ecs = client("ecs", endpoint)
    td = register(ecs, td_file)
    cluster = ecs.create_cluster(clusterName=name)["cluster"]
    made = ecs.create_service(
        cluster=name, serviceName=name, taskDefinition=td["family"], desiredCount=3,
        loadBalancers=[{"targetGroupArn": tg_arn, "containerName": "web", "containerPort": 80}],
        healthCheckGracePeriodSeconds=0,
        deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100},
    )["service"]
    ecs.get_waiter("services_stable").wait(cluster=name, services=[name], WaiterConfig=WAITER)
    out = service_view(ecs, name)
    out.update({"created": plain(made), "cluster": plain(cluster), "taskDefinition": plain(td)})
    return out


def update(endpoint, name, td_file):
    ecs = client("ecs", endpoint)
    td = register(ecs, td_file)
    updated = ecs.update_service(cluster=name, service=name, taskDefinition=td["taskDefinitionArn"])["service"]
    ecs.get_waiter("services_stable").wait(cluster=name, services=[name], WaiterConfig=WAITER)
    out = service_view(ecs, name)
    out.update({"updated": plain(updated), "taskDefinition": plain(td)})
    return out


def delete(endpoint, name):
    ecs = client("ecs", endpoint)
    ecs.update_service(cluster=name, service=name, desiredCount=0)
    deleted = ecs.delete_service(cluster=name, service=name)["service"]
    ecs.get_waiter("services_inactive").wait(cluster=name, services=[name], WaiterConfig=WAITER)
    svc = ecs.describe_services(cluster=name, services=[name])["services"][0]
    left = ecs.list_tasks(cluster=name, serviceName=name)["taskArns"]
    return {"deleted": plain(deleted), "service": plain(svc), "tasks": left}


def errors(endpoint, name, tg_arn):
    ecs = client("ecs", endpoint)
    calls = {
        "grace_negative": lambda: ecs.create_service(
            cluster=name, serviceName=name + "-x", taskDefinition=name, desiredCount=1,
            healthCheckGracePeriodSeconds=-1,
        ),
        "grace_too_big": lambda: ecs.update_service(
            cluster=name, service=name, healthCheckGracePeriodSeconds=2147483648,
        ),
        "unknown_container": lambda: ecs.create_service(
            cluster=name, serviceName=name + "-y", taskDefinition=name, desiredCount=1,
            loadBalancers=[{"targetGroupArn": tg_arn, "containerName": "nope", "containerPort": 80}],
        ),
        "not_idempotent": lambda: ecs.create_service(
            cluster=name, serviceName=name, taskDefinition=name, desiredCount=1,
        ),
        "unknown_service": lambda: ecs.update_service(cluster=name, service="no-such", desiredCount=1),
    }
    out = {}
    for key, call in calls.items():
        try:
            call()
            out[key] = {"code": None}
        except botocore.exceptions.ClientError as e:
            out[key] = {
                "code": e.response["Error"]["Code"],
                "message": e.response["Error"]["Message"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            }
    return out


def main():
    step, endpoint, *args = sys.argv[1:]
    fn = {"setup": setup, "create": create, "update": update, "delete": delete, "errors": errors}[step]
    print(json.dumps(fn(endpoint, *args), default=str))


if __name__ == "__main__":
    main()
