//! hostalb-aws against botocore itself (the venv `scripts/python-tools` makes; its
//! interpreter is HOSTALB_PYTHON): Query bodies botocore's serializer writes decode into the
//! members it was given; the XML answers parse with botocore's `QueryParser` into the
//! output shapes; requests botocore's `SigV4Auth` signs now verify; JSON 1.1 errors parse
//! with its `JSONParser`; the error codes agree with its ELBv2 model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use hostalb_aws::elbv2::{self, ErrorCode, Request};
use hostalb_aws::query::{Params, xml};
use hostalb_aws::sigv4::{self, Authorization, Expect, SignedRequest};
use hostalb_aws::{json11, request_id};
use serde_json::{Value, json};

/// The interpreter of the venv `scripts/python-tools` makes (scripts/test sets it).
fn python() -> String {
    std::env::var("HOSTALB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HOSTALB_PYTHON is not set: run scripts/test, or eval \"$(scripts/python-tools)\" first \
             (it installs botocore from PyPI into target/pyenv)"
        )
    })
}

/// Runs `script` with `input` as JSON on stdin; its stdout, as JSON.
fn py(script: &str, input: &Value) -> Value {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Without nulls, empty arrays and empty objects: absent and empty read alike.
fn normal(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normal(v)))
                .filter(|(_, v)| !matches!(v, Value::Null) && v != &json!([]) && v != &json!({}))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normal).collect()),
        other => other.clone(),
    }
}

const SERIALIZE: &str = r#"
import json, sys, urllib.parse
import botocore.session, botocore.serialize
session = botocore.session.get_session()
model = session.get_service_model('elbv2')
examples = session.get_component('data_loader').load_service_model('elbv2', 'examples-1')['examples']
wanted = json.load(sys.stdin)
cases = [(op, ex['input']) for op in wanted['actions'] for ex in examples.get(op, []) if 'input' in ex]
cases += [(c['op'], c['params']) for c in wanted['extra']]
serializer = botocore.serialize.create_serializer('query')
out = []
for op, params in cases:
    body = serializer.serialize_to_request(params, model.operation_model(op))['body']
    out.append({'op': op, 'params': params, 'body': urllib.parse.urlencode(body)})
print(json.dumps(out))
"#;

#[test]
fn query_bodies_botocore_writes_decode_into_the_members_it_was_given() {
    let extra = json!([
        {"op": "CreateRule", "params": {
            "ListenerArn": "arn:l", "Priority": 7,
            "Conditions": [
                {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"], "RegexValues": ["^a"]}},
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
                {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["canary*"]}},
                {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET", "POST"]}},
                {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}, {"Value": "beta"}]}},
                {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8", "::1/128"]}}],
            "Actions": [
                {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {
                    "Issuer": "https://idp", "AuthorizationEndpoint": "https://idp/a", "TokenEndpoint": "https://idp/t",
                    "UserInfoEndpoint": "https://idp/u", "ClientId": "c",
                    "AuthenticationRequestExtraParams": {"prompt": "login", "display": "page"}}},
                {"Type": "forward", "Order": 2, "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": "arn:blue", "Weight": 90}, {"TargetGroupArn": "arn:green", "Weight": 10}],
                    "TargetGroupStickinessConfig": {"Enabled": true, "DurationSeconds": 600}}}],
            "Transforms": [{"Type": "url-rewrite", "UrlRewriteConfig": {"Rewrites": [{"Regex": "^/v2/(.*)$", "Replace": "/$1"}]}}],
            "Tags": [{"Key": "team", "Value": "shop"}]}},
        {"op": "ModifyRule", "params": {"RuleArn": "arn:r", "Conditions": [], "Actions": [
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "a=b&c=d é", "StatusCode": "HTTP_302"}},
            {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "503", "ContentType": "application/json", "MessageBody": "{\"a\": \"&=+\"}"}}]}},
        {"op": "CreateTargetGroup", "params": {
            "Name": "api", "Protocol": "HTTP", "ProtocolVersion": "HTTP1", "Port": 80, "VpcId": "vpc-1",
            "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckEnabled": true,
            "HealthCheckPath": "/health?deep=1", "HealthCheckIntervalSeconds": 10, "HealthCheckTimeoutSeconds": 3,
            "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3, "Matcher": {"HttpCode": "200-299"},
            "TargetType": "instance", "IpAddressType": "ipv4"}},
        {"op": "ModifyListener", "params": {"ListenerArn": "arn:l", "Port": 8443, "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-2016-08", "Certificates": [{"CertificateArn": "arn:c"}], "AlpnPolicy": ["HTTP2Preferred"]}},
        {"op": "DescribeTargetHealth", "params": {"TargetGroupArn": "arn:g", "Targets": [{"Id": "i-1", "Port": 32768}], "Include": ["All"]}},
        {"op": "DescribeSSLPolicies", "params": {"Names": ["ELBSecurityPolicy-2016-08"], "PageSize": 10, "LoadBalancerType": "application"}},
        {"op": "AddListenerCertificates", "params": {"ListenerArn": "arn:l", "Certificates": [{"CertificateArn": "arn:c1"}, {"CertificateArn": "arn:c2"}]}},
        {"op": "RemoveListenerCertificates", "params": {"ListenerArn": "arn:l", "Certificates": [{"CertificateArn": "arn:c1"}]}},
        {"op": "DescribeListenerCertificates", "params": {"ListenerArn": "arn:l", "Marker": "2", "PageSize": 5}},
    ]);
    let cases = py(SERIALIZE, &json!({"actions": elbv2::ACTIONS, "extra": extra}));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() > elbv2::ACTIONS.len(), "{} cases", cases.len());
    let mut seen = std::collections::BTreeSet::new();
    for case in cases {
        let op = case["op"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let params = Params::parse(body).unwrap_or_else(|e| panic!("{op}: {e}\n{body}"));
        let request = Request::decode(&params).unwrap_or_else(|e| panic!("{op}: {e}\n{body}"));
        assert_eq!(request.action(), op);
        assert_eq!(
            normal(&elbv2::to_json(&request)),
            normal(&case["params"]),
            "{op}: decoded members differ from what botocore was given\n{body}"
        );
        seen.insert(op.to_owned());
    }
    for action in elbv2::ACTIONS {
        assert!(seen.contains(action), "no botocore example decoded for {action}");
    }
}

const PARSE_XML: &str = r#"
import json, sys
import botocore.session, botocore.parsers
model = botocore.session.get_session().get_service_model('elbv2')
parser = botocore.parsers.QueryParser()
out = []
for case in json.load(sys.stdin):
    op = model.operation_model(case['op'])
    parsed = parser.parse({'body': case['xml'].encode(), 'headers': {}, 'status_code': case['status']}, op.output_shape)
    out.append(parsed)
print(json.dumps(out, default=str))
"#;

fn example(name: &str) -> Value {
    let path = format!("{}/../examples/aws/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn xml_answers_parse_with_botocores_query_parser() {
    // Outputs in botocore's shapes: the examples' describe output, read into hostalb-aws's
    // shapes and written back.
    let rules: elbv2::DescribeRulesOutput = serde_json::from_value(example("describe-rules")).unwrap();
    let groups: elbv2::DescribeTargetGroupsOutput =
        serde_json::from_value(example("describe-target-groups")).unwrap();
    let listeners: elbv2::DescribeListenersOutput =
        serde_json::from_value(example("describe-listeners")).unwrap();
    let mut lbs: elbv2::DescribeLoadBalancersOutput =
        serde_json::from_value(example("describe-load-balancers")).unwrap();
    lbs.load_balancers[0].created_time = None; // botocore reads it as a datetime
    let attributes: elbv2::AttributesOutput =
        serde_json::from_value(example("describe-target-group-attributes.web")).unwrap();
    let health = elbv2::DescribeTargetHealthOutput {
        target_health_descriptions: vec![
            elbv2::TargetHealthDescription {
                target: elbv2::TargetDescription {
                    id: "i-0123".into(),
                    port: Some(32768),
                    availability_zone: None,
                },
                health_check_port: Some("32768".into()),
                target_health: elbv2::TargetHealth {
                    state: "healthy".into(),
                    ..Default::default()
                },
            },
            elbv2::TargetHealthDescription {
                target: elbv2::TargetDescription {
                    id: "i-0123".into(),
                    port: Some(32769),
                    availability_zone: None,
                },
                health_check_port: Some("32769".into()),
                target_health: elbv2::TargetHealth {
                    state: "unhealthy".into(),
                    reason: Some("Target.ResponseCodeMismatch".into()),
                    description: Some("Health checks failed with these codes: [502] <&>".into()),
                },
            },
        ],
    };
    let tags = elbv2::DescribeTagsOutput {
        tag_descriptions: vec![elbv2::TagDescription {
            resource_arn: "arn:g".into(),
            tags: vec![elbv2::Tag {
                key: "team".into(),
                value: Some("shop & co".into()),
            }],
        }],
    };
    let outputs: Vec<(&str, Value)> = vec![
        ("DescribeRules", elbv2::to_json(&rules)),
        ("CreateRule", json!({"Rules": [elbv2::to_json(&rules.rules[1])]})),
        ("DescribeTargetGroups", elbv2::to_json(&groups)),
        ("DescribeListeners", elbv2::to_json(&listeners)),
        ("DescribeLoadBalancers", elbv2::to_json(&lbs)),
        ("DescribeTargetGroupAttributes", elbv2::to_json(&attributes)),
        ("DescribeTargetHealth", elbv2::to_json(&health)),
        ("DescribeTags", elbv2::to_json(&tags)),
        ("DeleteRule", json!({})),
    ];
    let rid = request_id(0x1234);
    let mut cases: Vec<Value> = outputs
        .iter()
        .map(|(op, result)| {
            json!({"op": op, "status": 200, "xml": xml::response(op, elbv2::XML_NAMESPACE, Some(result), &rid)})
        })
        .collect();
    let error = elbv2::ElbError::new(
        ErrorCode::TargetGroupNotFound,
        "One or more target groups not found",
    );
    cases.push(
        json!({"op": "DescribeTargetGroups", "status": error.http_status(), "xml": error.to_xml(&rid)}),
    );
    let parsed = py(PARSE_XML, &Value::Array(cases));
    let parsed = parsed.as_array().unwrap();
    for ((op, result), got) in outputs.iter().zip(parsed) {
        assert_eq!(got["ResponseMetadata"]["RequestId"], rid.as_str(), "{op}");
        let mut got = got.clone();
        got.as_object_mut().unwrap().remove("ResponseMetadata");
        assert_eq!(normal(&got), normal(result), "{op}: botocore read something else");
    }
    let err = &parsed[outputs.len()];
    assert_eq!(
        err["Error"],
        json!({"Type": "Sender", "Code": "TargetGroupNotFound", "Message": "One or more target groups not found"})
    );
    assert_eq!(err["ResponseMetadata"]["RequestId"], rid.as_str());
}

const SIGN: &str = r#"
import json, sys
from urllib.parse import urlsplit
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
out = []
for c in json.load(sys.stdin):
    r = AWSRequest(method=c['method'], url=c['url'], data=c['body'].encode(), headers=c['headers'])
    SigV4Auth(creds, c['service'], c['region']).add_auth(r)
    u = urlsplit(r.url)
    headers = [[k, v] for k, v in r.headers.items()] + [['Host', u.netloc], ['User-Agent', 'botocore']]
    out.append({'method': c['method'], 'path': u.path, 'query': u.query, 'headers': headers, 'body': c['body']})
print(json.dumps(out))
"#;

#[test]
fn requests_botocore_signs_now_verify() {
    let form = "application/x-www-form-urlencoded; charset=utf-8";
    let cases = json!([
        {"method": "POST", "url": "http://127.0.0.1:9901/", "service": "elasticloadbalancing", "region": "us-east-1",
         "headers": {"Content-Type": form}, "body": "Action=DescribeRules&Version=2015-12-01&ListenerArn=arn%3Aaws%3Ax"},
        {"method": "POST", "url": "http://localhost:9901/", "service": "ecs", "region": "eu-west-1",
         "headers": {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.RunTask"},
         "body": "{\"cluster\": \"d\u{e9}faut\", \"count\": 2}"},
        {"method": "GET", "url": "http://127.0.0.1:9901/?Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=a%20b",
         "service": "elasticloadbalancing", "region": "us-east-1", "headers": {}, "body": ""},
        {"method": "POST", "url": "http://[::1]:9901/", "service": "elasticloadbalancing", "region": "us-east-1",
         "headers": {"Content-Type": form, "X-Amz-Security-Token": "  token  with   spaces "}, "body": ""},
    ]);
    let signed = py(SIGN, &cases);
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    for (case, s) in cases.as_array().unwrap().iter().zip(signed.as_array().unwrap()) {
        let headers: Vec<(&str, &str)> = s["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))
            .collect();
        let req = SignedRequest {
            method: s["method"].as_str().unwrap(),
            path: s["path"].as_str().unwrap(),
            query: s["query"].as_str().unwrap(),
            headers: &headers,
            body: s["body"].as_str().unwrap().as_bytes(),
        };
        let auth = Authorization::of(&req).unwrap();
        let expect = Expect {
            region: case["region"].as_str(),
            service: case["service"].as_str(),
            now: SystemTime::now(),
            max_skew: sigv4::MAX_CLOCK_SKEW,
        };
        sigv4::verify(&req, &auth, secret, &expect).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            sigv4::verify(&req, &auth, "another-secret", &expect),
            Err(sigv4::SigError::Mismatch)
        );
    }
}

const PARSE_JSON_ERROR: &str = r#"
import json, sys
import botocore.session, botocore.parsers
model = botocore.session.get_session().get_service_model('ecs')
parser = botocore.parsers.JSONParser()
out = []
for c in json.load(sys.stdin):
    op = model.operation_model(c['op'])
    out.append(parser.parse({'body': c['body'].encode(), 'headers': {'x-amzn-requestid': 'r'}, 'status_code': c['status']}, op.output_shape))
print(json.dumps(out, default=str))
"#;

#[test]
fn json_errors_parse_with_botocores_json_parser() {
    let errors = [
        json11::JsonError::new(json11::ErrorType::ClusterNotFoundException, "Cluster not found."),
        json11::JsonError::new(
            json11::ErrorType::InvalidParameterException,
            "desiredCount \"x\" <bad>",
        ),
        json11::JsonError::new(json11::ErrorType::ServerException, "internal"),
    ];
    let cases: Vec<Value> = errors
        .iter()
        .map(|e| json!({"op": "DescribeServices", "status": e.http_status(), "body": String::from_utf8(e.to_body()).unwrap()}))
        .collect();
    let parsed = py(PARSE_JSON_ERROR, &Value::Array(cases));
    for (e, got) in errors.iter().zip(parsed.as_array().unwrap()) {
        assert_eq!(got["Error"]["Code"], e.kind.name());
        assert_eq!(got["Error"]["Message"], e.message.as_str());
    }
}

const ERROR_TABLE: &str = r#"
import json, sys
import botocore.session
model = botocore.session.get_session().get_service_model('elbv2')
out = {}
for shape in model.error_shapes:
    e = shape.metadata.get('error', {})
    out[e.get('code', shape.name)] = e.get('httpStatusCode')
print(json.dumps(out))
"#;

#[test]
fn elbv2_error_codes_agree_with_the_model() {
    let table = py(ERROR_TABLE, &json!(null));
    let mut checked = 0;
    for code in ErrorCode::ALL {
        if let Some(status) = table.get(code.code()) {
            assert_eq!(
                status.as_u64(),
                Some(u64::from(code.http_status())),
                "{}",
                code.code()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 26, "every ELBv2-specific code is in the model");
}
