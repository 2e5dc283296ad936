"""Drives hostalb's ELBv2 API with the real clients (boto3 and the AWS CLI v1), for
tests/e2e/aws_api.rs. Each command prints one JSON object on stdout; a failure raises
(non-zero exit, traceback on stderr).

Usage: elbv2_api.py COMMAND ENDPOINT [ARGS...]
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy ones unless the admin
address requires a signature).
"""

import json
import os
import subprocess
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

# Bounds every waiter: hostalb answers at once; targets turn healthy after their checks.
WAITER = {"Delay": 1, "MaxAttempts": 30}


def client(endpoint):
    return boto3.client(
        "elbv2",
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
        [sys.executable, "-m", "awscli", "--endpoint-url", endpoint, "--output", "json", "elbv2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"aws elbv2 {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def build(endpoint, backend, port):
    """awscli makes the load balancer, target group and listener; boto3 the rule and the
    registration; the waiters confirm. BACKEND is IP:PORT."""
    ip, backend_port = backend.rsplit(":", 1)
    lb = cli(endpoint, "create-load-balancer", "--name", "shop")["LoadBalancers"][0]
    tg = cli(
        endpoint, "create-target-group", "--name", "shop-api", "--protocol", "HTTP",
        "--port", backend_port, "--target-type", "ip",
        "--health-check-interval-seconds", "5", "--health-check-timeout-seconds", "2",
        "--healthy-threshold-count", "2", "--health-check-path", "/health",
    )["TargetGroups"][0]
    listener = cli(
        endpoint, "create-listener", "--load-balancer-arn", lb["LoadBalancerArn"],
        "--protocol", "HTTP", "--port", port,
        "--default-actions", "Type=fixed-response,FixedResponseConfig={StatusCode=404,ContentType=text/plain,MessageBody=none}",
    )["Listeners"][0]
    elb = client(endpoint)
    rule = elb.create_rule(
        ListenerArn=listener["ListenerArn"],
        Priority=10,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )["Rules"][0]
    elb.modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}],
    )
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": ip, "Port": int(backend_port)}])
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]], WaiterConfig=WAITER)
    elb.get_waiter("target_in_service").wait(TargetGroupArn=tg["TargetGroupArn"], WaiterConfig=WAITER)
    health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    return {
        "LoadBalancerArn": lb["LoadBalancerArn"],
        "DNSName": lb["DNSName"],
        "TargetGroupArn": tg["TargetGroupArn"],
        "ListenerArn": listener["ListenerArn"],
        "RuleArn": rule["RuleArn"],
        "Health": health,
    }


def modify_rule(endpoint, rule_arn, path):
    """Moves the rule to another path pattern."""
    elb = client(endpoint)
    r = elb.modify_rule(
        RuleArn=rule_arn,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}}],
    )["Rules"][0]
    return {"Conditions": r["Conditions"]}


def deregister(endpoint, tg_arn, backend):
    ip, port = backend.rsplit(":", 1)
    elb = client(endpoint)
    targets = [{"Id": ip, "Port": int(port)}]
    elb.deregister_targets(TargetGroupArn=tg_arn, Targets=targets)
    elb.get_waiter("target_deregistered").wait(TargetGroupArn=tg_arn, Targets=targets, WaiterConfig=WAITER)
    health = elb.describe_target_health(TargetGroupArn=tg_arn, Targets=targets)["TargetHealthDescriptions"]
    return {"Health": health}


def errors(endpoint, listener_arn, tg_arn):
    """Each refused call, as the exception botocore raises: class name and code."""
    elb = client(endpoint)
    missing_tg = tg_arn.rsplit("/", 2)[0] + "/nope/0123456789abcdef"
    calls = {
        "DescribeMissingGroup": lambda: elb.describe_target_groups(TargetGroupArns=[missing_tg]),
        "RegisterMissingGroup": lambda: elb.register_targets(TargetGroupArn=missing_tg, Targets=[{"Id": "127.0.0.1", "Port": 1}]),
        "PriorityTaken": lambda: elb.create_rule(
            ListenerArn=listener_arn, Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/other/*"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        ),
        "MissingListener": lambda: elb.describe_rules(ListenerArn=listener_arn[:-4] + "0000"),
        "MissingLoadBalancer": lambda: elb.describe_load_balancers(Names=["nope"]),
        "DuplicateTargetGroup": lambda: elb.create_target_group(Name="shop-api", Protocol="HTTP", Port=1),
        "GroupInUse": lambda: elb.delete_target_group(TargetGroupArn=tg_arn),
        "InvalidRule": lambda: elb.create_rule(
            ListenerArn=listener_arn, Priority=20,
            Conditions=[{"Field": "path-pattern", "Values": ["/a/*"]}],
            Actions=[{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_399"}}],
        ),
        "InstanceTarget": lambda: elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "i-0123456789", "Port": 80}]),
        "UnknownCondition": lambda: elb.create_rule(
            ListenerArn=listener_arn, Priority=30,
            Conditions=[{"Field": "cookie", "Values": ["a"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        ),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = {"Raised": None}
        except botocore.exceptions.ClientError as e:
            out[name] = {
                "Raised": type(e).__name__,
                "Code": e.response["Error"]["Code"],
                "Message": e.response["Error"]["Message"],
                "Status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            }
    return out


def paging(endpoint, count):
    """Makes COUNT target groups, then pages through them two at a time."""
    elb = client(endpoint)
    for i in range(int(count)):
        elb.create_target_group(Name=f"page-{i}", Protocol="HTTP", Port=8000 + i)
    pages = 0
    names = []
    for page in elb.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": 2}):
        pages += 1
        names += [g["TargetGroupName"] for g in page["TargetGroups"]]
        if pages > 100:
            raise RuntimeError("paging does not end")
    return {"Pages": pages, "Names": names}


def describe(endpoint):
    """What the API shows: load balancers, listeners, rules of each, target groups."""
    elb = client(endpoint)
    lbs = elb.describe_load_balancers()["LoadBalancers"]
    listeners = []
    for lb in lbs:
        listeners += elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    rules = {}
    for listener in listeners:
        rules[listener["ListenerArn"]] = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    groups = elb.describe_target_groups()["TargetGroups"]
    health = {
        g["TargetGroupName"]: elb.describe_target_health(TargetGroupArn=g["TargetGroupArn"])["TargetHealthDescriptions"]
        for g in groups
    }
    return {"LoadBalancers": lbs, "Listeners": listeners, "Rules": rules, "TargetGroups": groups, "Health": health}


def file_resources(endpoint, backend):
    """The configuration file's listener and group: read-only, but targets register."""
    elb = client(endpoint)
    groups = {g["TargetGroupName"]: g for g in elb.describe_target_groups()["TargetGroups"]}
    tg = groups["files"]
    listener = elb.describe_listeners()["Listeners"][0]
    out = {"ListenerPort": listener["Port"]}
    attempts = {
        "ModifyTargetGroup": lambda: elb.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/x"),
        "DeleteListener": lambda: elb.delete_listener(ListenerArn=listener["ListenerArn"]),
        "AddTags": lambda: elb.add_tags(ResourceArns=[tg["TargetGroupArn"]], Tags=[{"Key": "k", "Value": "v"}]),
    }
    for name, call in attempts.items():
        try:
            call()
            out[name] = None
        except botocore.exceptions.ClientError as e:
            out[name] = type(e).__name__
    ip, port = backend.rsplit(":", 1)
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": ip, "Port": int(port)}])
    elb.get_waiter("target_in_service").wait(TargetGroupArn=tg["TargetGroupArn"], WaiterConfig=WAITER)
    return out


def signed(endpoint):
    """A call signed with the credentials of the environment: its outcome."""
    elb = client(endpoint)
    try:
        n = len(elb.describe_load_balancers()["LoadBalancers"])
        return {"Ok": True, "LoadBalancers": n}
    except botocore.exceptions.ClientError as e:
        return {
            "Ok": False,
            "Code": e.response["Error"]["Code"],
            "Status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "Message": e.response["Error"]["Message"],
        }


def rate(endpoint, action, tg_arn, rule_arn, count):
    """COUNT calls of ACTION one after another: calls per second."""
    elb = client(endpoint)
    n = int(count)
    start = time.perf_counter()
    for i in range(n):
        if action == "DescribeTargetHealth":
            elb.describe_target_health(TargetGroupArn=tg_arn)
        else:
            path = "/api/*" if i % 2 == 0 else "/v2/*"
            elb.modify_rule(RuleArn=rule_arn, Conditions=[{"Field": "path-pattern", "Values": [path]}])
    took = time.perf_counter() - start
    return {"Calls": n, "Seconds": took, "PerSecond": n / took}


def switch(endpoint, rule_arn, port, count):
    """COUNT times: ModifyRule to a new path, then GETs on it until one is routed by the
    rule (at most 1000 tries each): the time from the answer to that first routed request,
    and how many tries were not yet routed."""
    import http.client

    elb = client(endpoint)
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    times = []
    misses = 0
    for i in range(int(count)):
        path = f"/switch{i}/"
        elb.modify_rule(RuleArn=rule_arn, Conditions=[{"Field": "path-pattern", "Values": [path + "*"]}])
        answered = time.perf_counter()
        for _ in range(1000):
            conn.request("GET", path + "x")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                break
            misses += 1
        times.append((time.perf_counter() - answered) * 1000)
    times.sort()
    return {"Switches": len(times), "MedianMs": times[len(times) // 2], "MaxMs": times[-1], "NotYetRouted": misses}


def bluegreen(endpoint, blue, green, port):
    """A load balancer whose listener forwards to `blue` (weight 100) and `green` (0), each
    group with its own backend (IP:PORT), both in service."""
    elb = client(endpoint)
    lb = elb.create_load_balancer(Name="bluegreen")["LoadBalancers"][0]["LoadBalancerArn"]
    arns = {}
    for name, backend in (("blue", blue), ("green", green)):
        ip, p = backend.rsplit(":", 1)
        arn = elb.create_target_group(
            Name=name, Protocol="HTTP", Port=int(p), TargetType="ip", HealthCheckPath="/health",
            HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": ip}])
        arns[name] = arn
    listener = elb.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=int(port),
        DefaultActions=[weighted(arns["blue"], 100, arns["green"], 0)],
    )["Listeners"][0]["ListenerArn"]
    for arn in arns.values():
        elb.get_waiter("target_in_service").wait(TargetGroupArn=arn, WaiterConfig=WAITER)
    default = [r for r in elb.describe_rules(ListenerArn=listener)["Rules"] if r["IsDefault"]][0]
    return {"DefaultRuleArn": default["RuleArn"], "Blue": arns["blue"], "Green": arns["green"]}


def weighted(blue, wblue, green, wgreen):
    return {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": blue, "Weight": int(wblue)},
            {"TargetGroupArn": green, "Weight": int(wgreen)},
        ]},
    }


def weights(endpoint, rule_arn, blue, wblue, green, wgreen):
    """ModifyRule: the forward's weights, as a blue/green deployment shifts them."""
    r = client(endpoint).modify_rule(RuleArn=rule_arn, Actions=[weighted(blue, wblue, green, wgreen)])["Rules"][0]
    return {"Actions": r["Actions"]}


def https(endpoint, port, cert_id, second_id):
    """An HTTPS listener whose certificate is `certificate/CERT_ID` (files beside the state
    file), a second certificate added and removed, SSL policies, and a certificate that has
    no files."""
    elb = client(endpoint)
    acm = "arn:aws:acm:us-east-1:000000000000:certificate/"
    lb = elb.create_load_balancer(Name="secure")["LoadBalancers"][0]["LoadBalancerArn"]
    fixed = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200", "MessageBody": "tls"}}]
    out = {}
    try:
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTPS", Port=int(port),
                            Certificates=[{"CertificateArn": acm + "missing"}], DefaultActions=fixed)
        out["Missing"] = None
    except botocore.exceptions.ClientError as e:
        out["Missing"] = type(e).__name__
        out["MissingMessage"] = e.response["Error"]["Message"]
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTPS", Port=int(port),
                                   Certificates=[{"CertificateArn": acm + cert_id}], DefaultActions=fixed)["Listeners"][0]
    out["Listener"] = listener
    elb.add_listener_certificates(ListenerArn=listener["ListenerArn"], Certificates=[{"CertificateArn": acm + second_id}])
    out["WithSecond"] = elb.describe_listener_certificates(ListenerArn=listener["ListenerArn"])["Certificates"]
    elb.remove_listener_certificates(ListenerArn=listener["ListenerArn"], Certificates=[{"CertificateArn": acm + second_id}])
    out["AfterRemove"] = elb.describe_listener_certificates(ListenerArn=listener["ListenerArn"])["Certificates"]
    out["Described"] = elb.describe_listeners(ListenerArns=[listener["ListenerArn"]])["Listeners"][0]
    out["Policies"] = [p["Name"] for p in elb.describe_ssl_policies()["SslPolicies"]]
    return out


def priorities(endpoint, listener_arn, rule_arn, tg_arn):
    """SetRulePriorities: the rule moves to 15; a second rule at 25; both asked for 30 is
    PriorityInUse; the priorities DescribeRules shows."""
    elb = client(endpoint)
    moved = elb.set_rule_priorities(RulePriorities=[{"RuleArn": rule_arn, "Priority": 15}])["Rules"]
    other = elb.create_rule(
        ListenerArn=listener_arn, Priority=25,
        Conditions=[{"Field": "host-header", "Values": ["other.example"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )["Rules"][0]
    try:
        elb.set_rule_priorities(RulePriorities=[
            {"RuleArn": rule_arn, "Priority": 30}, {"RuleArn": other["RuleArn"], "Priority": 30}])
        clash = None
    except botocore.exceptions.ClientError as e:
        clash = type(e).__name__
    shown = [r["Priority"] for r in elb.describe_rules(ListenerArn=listener_arn)["Rules"]]
    return {"Moved": moved[0]["Priority"], "Clash": clash, "Priorities": shown}


COMMANDS = {
    "build": build,
    "modify-rule": modify_rule,
    "deregister": deregister,
    "errors": errors,
    "paging": paging,
    "describe": describe,
    "file-resources": file_resources,
    "signed": signed,
    "rate": rate,
    "switch": switch,
    "bluegreen": bluegreen,
    "weights": weights,
    "https": https,
    "priorities": priorities,
}

if __name__ == "__main__":
    command, endpoint, *rest = sys.argv[1:]
    print(json.dumps(COMMANDS[command](endpoint, *rest), default=str))
