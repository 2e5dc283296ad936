"""Differential test of hostalb's ELBv2 API against moto's server (the reference ELBv2
emulator), for tests/e2e/aws_api.rs: one scenario, run by boto3 against both; the parsed
answers are normalised (what must differ: ARNs' random ids, DNS names, timestamps,
VPC and subnet ids, health states) and compared. Every difference is either a
bug (the test fails) or listed in KNOWN below with the reason.

boto3 parses every answer with botocore's query parser; the scenario calls every action
hostalb serves (ACTIONS) at least once, and the run fails if one was not called.

Usage: elbv2_moto_diff.py HOSTALB_ENDPOINT LISTENER_PORT
Prints one JSON object: {"calls": N, "known": [...], "unexpected": [...], "uncalled": [...],
"errors": {step: code}, "stale": [...]}; exits 1 when anything is unexpected, uncalled, or a
KNOWN entry matched no difference (stale).
"""

import json
import re
import socket
import sys

import boto3
import botocore.config
import botocore.exceptions

# Every action hostalb's ELBv2 API serves (README, "ELBv2 API").
ACTIONS = {
    "CreateLoadBalancer", "DescribeLoadBalancers", "DeleteLoadBalancer",
    "DescribeLoadBalancerAttributes", "ModifyLoadBalancerAttributes",
    "CreateTargetGroup", "DescribeTargetGroups", "ModifyTargetGroup", "DeleteTargetGroup",
    "DescribeTargetGroupAttributes", "ModifyTargetGroupAttributes",
    "RegisterTargets", "DeregisterTargets", "DescribeTargetHealth",
    "CreateListener", "DescribeListeners", "ModifyListener", "DeleteListener",
    "CreateRule", "DescribeRules", "ModifyRule", "SetRulePriorities", "DeleteRule",
    "AddTags", "RemoveTags", "DescribeTags", "DescribeSSLPolicies",
    "AddListenerCertificates", "DescribeListenerCertificates", "RemoveListenerCertificates",
}

# The differences that are expected, by (step, JSON path of the normalised answer): each
# says why. A path ending in `*` covers everything below it. "moto" means moto deviates
# from ELBv2 (botocore's service model, AWS's API reference); "hostalb" that hostalb
# deviates on purpose (README, "ELBv2 API", Deviations).
KNOWN = {
    # --- load balancers -------------------------------------------------------------------
    # hostalb keeps and shows the subnets given (it uses none), but cannot know their
    # zones: its AvailabilityZones have no ZoneName.
    ("CreateLoadBalancer", "LoadBalancers[0].AvailabilityZones[*].ZoneName"): "hostalb: subnets kept, zones unknown on one host",
    ("DescribeLoadBalancers", "LoadBalancers[0].AvailabilityZones[*].ZoneName"): "hostalb: subnets kept, zones unknown on one host",
    # moto answers a new load balancer `provisioning` (as AWS does; it is `active` by the
    # next Describe); hostalb's listeners serve when the call returns: `active` at once.
    ("CreateLoadBalancer", "LoadBalancers[0].State.Code"): "hostalb: active at once (the listener is bound when the call returns)",
    # --- target groups --------------------------------------------------------------------
    # moto has no health checks: its targets are `healthy` or `unused` by its own rules;
    # hostalb's health comes from real checks (normalised away, the reasons remain).
    # ELBv2's Scheme defaults to internet-facing (API reference, CreateLoadBalancer); moto
    # leaves it out of its answers.
    ("CreateLoadBalancer", "LoadBalancers[0].Scheme"): "moto: leaves out Scheme (default internet-facing)",
    ("DescribeLoadBalancers", "LoadBalancers[0].Scheme"): "moto: leaves out Scheme (default internet-facing)",
    # moto makes a second load balancer for a second CreateLoadBalancer with the same name
    # and settings; ELBv2 answers the existing one (the call is idempotent), as hostalb
    # does, so after DeleteLoadBalancer moto still lists the second.
    ("DescribeLoadBalancers.after", "LoadBalancers"): "moto: a repeated CreateLoadBalancer made a second load balancer",
    # A group no load balancer uses has LoadBalancerArns [] in ELBv2's answers; moto
    # leaves the member out.
    ("CreateTargetGroup", "TargetGroups[0].LoadBalancerArns"): "moto: leaves out an empty LoadBalancerArns",
    # DescribeTargetGroups with PageSize 2 of 3 groups: ELBv2 answers 2 and a NextMarker
    # (PageSize is in botocore's model); moto ignores PageSize and answers all 3.
    ("DescribeTargetGroups.page", "TargetGroups"): "moto: ignores PageSize",
    ("DescribeTargetGroups.page", "NextMarker"): "moto: ignores PageSize",
    # moto keeps one registration per target Id (registering 127.0.0.1:9 and :10 keeps
    # :10, deregistering :10 leaves none); in ELBv2 a target is its Id and Port.
    ("DescribeTargetHealth", "TargetHealthDescriptions"): "moto: one registration per Id, whatever the Port",
    # SslPolicy and AlpnPolicy are HTTPS/TLS listeners' (API reference, Listener); moto
    # answers them for HTTP listeners too.
    ("CreateListener", "Listeners[0].SslPolicy"): "moto: SslPolicy on an HTTP listener",
    ("CreateListener", "Listeners[0].AlpnPolicy"): "moto: AlpnPolicy on an HTTP listener",
    ("DescribeListeners", "Listeners[0].SslPolicy"): "moto: SslPolicy on an HTTP listener",
    ("DescribeListeners", "Listeners[0].AlpnPolicy"): "moto: AlpnPolicy on an HTTP listener",
    ("ModifyListener", "Listeners[0].SslPolicy"): "moto: SslPolicy on an HTTP listener",
    ("ModifyListener", "Listeners[0].AlpnPolicy"): "moto: AlpnPolicy on an HTTP listener",
    # --- policies and certificates ----------------------------------------------------------
    # hostalb's policies list the TLS versions and suites it serves (rustls: TLS 1.2 and
    # 1.3, AEAD suites only), not the OpenSSL names of AWS's; moto leaves out
    # SupportedLoadBalancerTypes, which ELBv2 answers.
    ("DescribeSSLPolicies", "SslPolicies[0].Ciphers"): "hostalb: the suites it serves (README)",
    ("DescribeSSLPolicies", "SslPolicies[0].SslProtocols"): "hostalb: TLS 1.2 and 1.3 only (README)",
    ("DescribeSSLPolicies", "SslPolicies[0].SupportedLoadBalancerTypes"): "moto: leaves out SupportedLoadBalancerTypes",
    # hostalb refuses certificates on an HTTP listener (ValidationError: it serves none
    # there); moto adds them.
    ("AddListenerCertificates", "Certificates"): "hostalb: certificates go on HTTPS listeners (README)",
    ("AddListenerCertificates", "Error"): "hostalb: certificates go on HTTPS listeners (README)",
    # --- errors ---------------------------------------------------------------------------
    # DeleteRule of a rule that does not exist: RuleNotFound (botocore's model lists it for
    # DeleteRule); moto answers success.
    ("DeleteRule.missing", "Error"): "moto: no RuleNotFound for a missing rule",
}


# Attributes are compared by key: a value both answer must agree; a key only one answers
# is expected, for this reason. hostalb lists the attributes it carries (README, the
# deviations table: idle timeout, desync mitigation, X-Forwarded-For handling, ...; for
# groups deregistration delay, slow start, algorithm, stickiness), moto its own fixed
# list, with ones hostalb cannot carry (access logs to S3, WAF fail-open, ...), and for a
# target group after ModifyTargetGroupAttributes only the keys given.
ONE_SIDED_ATTRIBUTES = "hostalb: only the attributes it carries (README); moto's lists differ"


def client(endpoint):
    return boto3.client(
        "elbv2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


class Recorder:
    """Runs the steps, keeping each parsed answer (or the error code) by step name."""

    def __init__(self, elb):
        self.elb = elb
        self.steps = []
        self.called = set()

    def __call__(self, name, action, **kwargs):
        self.called.add(action)
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower().replace("s_s_l", "ssl")
        try:
            out = getattr(self.elb, method)(**kwargs)
            out.pop("ResponseMetadata", None)
        except botocore.exceptions.ClientError as e:
            out = {"Error": e.response["Error"]["Code"]}
        self.steps.append((name, out))
        return out


def scenario(elb, port, vpc, subnets):
    """The scenario: every action, each condition type, weighted forwards, errors."""
    r = Recorder(elb)
    where = {"Subnets": subnets}
    lb = r("CreateLoadBalancer", "CreateLoadBalancer", Name="shop", **where)["LoadBalancers"][0]
    lb_arn = lb["LoadBalancerArn"]
    r("CreateLoadBalancer.duplicate", "CreateLoadBalancer", Name="shop", **where)
    r("DescribeLoadBalancers", "DescribeLoadBalancers", Names=["shop"])
    r("DescribeLoadBalancers.missing", "DescribeLoadBalancers", Names=["nope"])
    r("ModifyLoadBalancerAttributes", "ModifyLoadBalancerAttributes", LoadBalancerArn=lb_arn,
      Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "30"}])
    r("DescribeLoadBalancerAttributes", "DescribeLoadBalancerAttributes", LoadBalancerArn=lb_arn)
    groups = {}
    for name in ["blue", "green", "spare"]:
        kwargs = {"Name": name, "Protocol": "HTTP", "Port": 8080, "TargetType": "ip", "HealthCheckPath": "/health",
                  "VpcId": vpc}
        groups[name] = r("CreateTargetGroup", "CreateTargetGroup", **kwargs)["TargetGroups"][0]["TargetGroupArn"]
    dup = {"Name": "blue", "Protocol": "HTTP", "Port": 9090, "TargetType": "ip", "VpcId": vpc}
    r("CreateTargetGroup.duplicate", "CreateTargetGroup", **dup)
    r("DescribeTargetGroups", "DescribeTargetGroups", Names=["blue", "green"])
    r("DescribeTargetGroups.page", "DescribeTargetGroups", PageSize=2)
    r("DescribeTargetGroups.missing", "DescribeTargetGroups", TargetGroupArns=[groups["blue"].replace("blue", "nope")])
    r("ModifyTargetGroup", "ModifyTargetGroup", TargetGroupArn=groups["spare"], HealthCheckPath="/ready",
      HealthCheckIntervalSeconds=10)
    r("ModifyTargetGroupAttributes", "ModifyTargetGroupAttributes", TargetGroupArn=groups["blue"],
      Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])
    r("DescribeTargetGroupAttributes", "DescribeTargetGroupAttributes", TargetGroupArn=groups["blue"])
    r("RegisterTargets", "RegisterTargets", TargetGroupArn=groups["blue"],
      Targets=[{"Id": "127.0.0.1", "Port": 9}, {"Id": "127.0.0.1", "Port": 10}])
    r("DeregisterTargets", "DeregisterTargets", TargetGroupArn=groups["blue"], Targets=[{"Id": "127.0.0.1", "Port": 10}])
    r("DescribeTargetHealth", "DescribeTargetHealth", TargetGroupArn=groups["blue"])
    listener = r("CreateListener", "CreateListener", LoadBalancerArn=lb_arn, Protocol="HTTP", Port=port,
                 DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
                     "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "none"}}])["Listeners"][0]
    l_arn = listener["ListenerArn"]
    r("CreateListener.missing-group", "CreateListener", LoadBalancerArn=lb_arn, Protocol="HTTP", Port=port + 1,
      DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["blue"].replace("blue", "nope")}])
    r("DescribeListeners", "DescribeListeners", LoadBalancerArn=lb_arn)
    r("ModifyListener", "ModifyListener", ListenerArn=l_arn,
      DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["spare"]}])
    conditions = {
        "path-pattern": {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
        "host-header": {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.com"]}},
        "http-header": {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["blue"]}},
        "http-request-method": {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}},
        "query-string": {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}]}},
        "source-ip": {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}},
    }
    rules = {}
    for i, (field, condition) in enumerate(conditions.items()):
        out = r(f"CreateRule.{field}", "CreateRule", ListenerArn=l_arn, Priority=10 + i, Conditions=[condition],
                Actions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}])
        rules[field] = out["Rules"][0]["RuleArn"]
    weighted = r("CreateRule.weighted", "CreateRule", ListenerArn=l_arn, Priority=50,
                 Conditions=[conditions["path-pattern"] | {"PathPatternConfig": {"Values": ["/shop/*"]}}],
                 Actions=[{"Type": "forward", "ForwardConfig": {
                     "TargetGroups": [{"TargetGroupArn": groups["blue"], "Weight": 90},
                                      {"TargetGroupArn": groups["green"], "Weight": 10}],
                     "TargetGroupStickinessConfig": {"Enabled": False}}}])["Rules"][0]["RuleArn"]
    r("CreateRule.redirect", "CreateRule", ListenerArn=l_arn, Priority=70,
      Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/old/*"]}}],
      Actions=[{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "Path": "/new/#{path}",
                                                         "StatusCode": "HTTP_301"}}])
    r("CreateRule.fixed-response", "CreateRule", ListenerArn=l_arn, Priority=71,
      Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/gone"]}}],
      Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "410", "ContentType": "text/plain",
                                                                  "MessageBody": "gone"}}])
    r("CreateRule.two-conditions", "CreateRule", ListenerArn=l_arn, Priority=72,
      Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["a.example.com", "b.example.com"]}},
                  {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/x/*", "/y/*"]}}],
      Actions=[{"Type": "forward", "TargetGroupArn": groups["green"]}])
    r("CreateRule.PriorityInUse", "CreateRule", ListenerArn=l_arn, Priority=10,
      Conditions=[conditions["host-header"]], Actions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}])
    r("CreateRule.TargetGroupNotFound", "CreateRule", ListenerArn=l_arn, Priority=99,
      Conditions=[conditions["host-header"]],
      Actions=[{"Type": "forward", "TargetGroupArn": groups["blue"].replace("blue", "nope")}])
    r("ModifyRule.weights", "ModifyRule", RuleArn=weighted, Actions=[{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": groups["blue"], "Weight": 0},
                         {"TargetGroupArn": groups["green"], "Weight": 100}]}}])
    r("ModifyRule.conditions", "ModifyRule", RuleArn=rules["host-header"],
      Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["www.example.com"]}}])
    r("SetRulePriorities", "SetRulePriorities", RulePriorities=[
        {"RuleArn": rules["path-pattern"], "Priority": 60}, {"RuleArn": rules["source-ip"], "Priority": 61}])
    r("SetRulePriorities.PriorityInUse", "SetRulePriorities", RulePriorities=[
        {"RuleArn": rules["path-pattern"], "Priority": 11}])
    r("DescribeRules", "DescribeRules", ListenerArn=l_arn)
    r("DescribeRules.one", "DescribeRules", RuleArns=[weighted])
    r("DeleteRule", "DeleteRule", RuleArn=rules["query-string"])
    r("DeleteRule.missing", "DeleteRule", RuleArn=rules["query-string"])
    r("AddTags", "AddTags", ResourceArns=[lb_arn, groups["blue"]], Tags=[{"Key": "env", "Value": "dev"},
                                                                            {"Key": "team", "Value": "shop"}])
    r("AddTags.listener", "AddTags", ResourceArns=[l_arn], Tags=[{"Key": "tier", "Value": "front"}])
    r("DescribeTags.listener", "DescribeTags", ResourceArns=[l_arn])
    r("RemoveTags", "RemoveTags", ResourceArns=[groups["blue"]], TagKeys=["team"])
    r("DescribeTags", "DescribeTags", ResourceArns=[lb_arn, groups["blue"]])
    r("DescribeSSLPolicies", "DescribeSSLPolicies", Names=["ELBSecurityPolicy-2016-08"])
    r("DescribeListenerCertificates", "DescribeListenerCertificates", ListenerArn=l_arn)
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000001"
    r("AddListenerCertificates", "AddListenerCertificates", ListenerArn=l_arn, Certificates=[{"CertificateArn": cert}])
    r("RemoveListenerCertificates", "RemoveListenerCertificates", ListenerArn=l_arn,
      Certificates=[{"CertificateArn": cert}])
    r("DeleteTargetGroup.in-use", "DeleteTargetGroup", TargetGroupArn=groups["green"])
    r("DeleteListener", "DeleteListener", ListenerArn=l_arn)
    r("DeleteListener.missing", "DeleteListener", ListenerArn=l_arn)
    r("DeleteTargetGroup", "DeleteTargetGroup", TargetGroupArn=groups["spare"])
    r("DeleteLoadBalancer", "DeleteLoadBalancer", LoadBalancerArn=lb_arn)
    r("DescribeLoadBalancers.after", "DescribeLoadBalancers")
    return r


# What must differ between two emulators, replaced by placeholders before comparing.
ARN_ID = re.compile(r"(arn:aws:elasticloadbalancing:[^:]*:)\d{12}(:[a-z-]+/(?:app/)?[^/\"]+)(/[0-9a-zA-Z-]+)+")
NORMALISED = {
    "DNSName": "<dns>",
    "CreatedTime": "<time>",
    "VpcId": "<vpc>",
    "SubnetId": "<subnet>",
    # Paging markers are opaque: only whether there is one is compared.
    "NextMarker": "<marker>",
    "CanonicalHostedZoneId": "<zone>",
    # moto has no health checks: states, reasons and descriptions are its own.
    "TargetHealth": "<health>",
}


def rule_order(rule):
    return (rule["Priority"] == "default", int(rule["Priority"]) if rule["Priority"].isdigit() else 0)


def normalise(value):
    if isinstance(value, dict) and isinstance(value.get("Rules"), list):
        # ELBv2 does not document the order of DescribeRules; hostalb answers by priority
        # (the default rule last), moto in creation order: both are compared by priority.
        value = value | {"Rules": sorted(value["Rules"], key=rule_order)}
    if isinstance(value, dict) and isinstance(value.get("Attributes"), list):
        value = value | {"Attributes": {a["Key"]: a.get("Value") for a in value["Attributes"]}}
    if isinstance(value, dict):
        return {k: NORMALISED.get(k, normalise(v)) if k in NORMALISED else normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return ARN_ID.sub(lambda m: f"{m.group(1)}<account>{m.group(2)}/<id>", value)
    if hasattr(value, "isoformat"):
        return "<time>"
    return value


def diff(path, a, b, out):
    """Paths where `a` (hostalb) and `b` (moto) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff(f"{path}.{k}" if path else k, a.get(k), b.get(k), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append((path, a, b))


USED = set()


def known(step, path):
    for (s, p), why in KNOWN.items():
        # `CreateLoadBalancer` covers `CreateLoadBalancer.duplicate` too.
        if step != s and not step.startswith(s + "."):
            continue
        pattern = re.escape(p).replace(r"\[\*\]", r"\[\d+\]").replace(r"\*", ".*")
        if re.fullmatch(pattern + r"(\..*|\[.*)?", path):
            USED.add((s, p))
            return why
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    hostalb, port = sys.argv[1], int(sys.argv[2])
    from moto.server import ThreadedMotoServer

    moto_port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    try:
        moto = f"http://127.0.0.1:{moto_port}"
        ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        # moto wants a VPC and subnets that its EC2 emulation knows.
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
                   ["Subnet"]["SubnetId"] for i, z in [(1, "a"), (2, "b")]]
        theirs = scenario(client(moto), port, vpc, subnets)
        # hostalb keeps and shows the VPC and subnets it is given (it uses none): the same
        # ids, which normalising replaces anyway.
        ours = scenario(client(hostalb), port, vpc, subnets)
    finally:
        server.stop()
    report = {"calls": len(ours.steps), "known": [], "unexpected": [],
              "uncalled": sorted(ACTIONS - ours.called),
              # The error codes hostalb answered, by step (the test checks the expected ones).
              "errors": {step: out["Error"] for step, out in ours.steps if "Error" in out}}
    if [s for s, _ in ours.steps] != [s for s, _ in theirs.steps]:
        report["unexpected"].append({"steps": "the scenarios took different steps"})
    for (step, a), (_, b) in zip(ours.steps, theirs.steps):
        found = []
        diff("", normalise(a), normalise(b), found)
        for path, x, y in found:
            entry = {"step": step, "path": path, "hostalb": x, "moto": y}
            one_sided = path.startswith("Attributes.") and (x is None or y is None)
            why = ONE_SIDED_ATTRIBUTES if one_sided else known(step, path)
            if why:
                report["known"].append(entry | {"why": why})
            else:
                report["unexpected"].append(entry)
    # An entry no difference needs any more is stale: the table stays exact.
    report["stale"] = [f"{s} {p}" for s, p in KNOWN if (s, p) not in USED]
    print(json.dumps(report, indent=1, default=str))
    return 1 if report["unexpected"] or report["uncalled"] or report["stale"] else 0


if __name__ == "__main__":
    sys.exit(main())
