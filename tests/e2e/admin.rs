//! The admin API: health, the ELBv2-shaped descriptions of listeners, rules, target groups
//! and target health, and the Prometheus metrics with ALB's metric names.

use std::time::Duration;

use hostalb_testkit::{Backend, Client, HostAlb, try_eventually};
use serde_json::Value;

use crate::common::start;

/// One sample of the Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// Parses `name{k="v",...} value` lines; comments and malformed lines are skipped.
pub(crate) fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let Some(body) = rest.strip_suffix('}') else {
                    continue;
                };
                (name.to_owned(), parse_labels(body))
            }
        };
        out.push(Sample { name, labels, value });
    }
    out
}

fn parse_labels(body: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = body;
    // Each round consumes one `key="value"` pair; a label set has few pairs.
    for _ in 0..64 {
        let Some((key, after)) = rest.split_once("=\"") else {
            break;
        };
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end.min(after.len())..];
        if rest.is_empty() {
            break;
        }
    }
    labels
}

/// Panics unless `/metrics` text declares the family of sample name `name` (a `# TYPE`
/// line for it, or for the histogram it is the `_bucket`, `_count` or `_sum` of): a
/// renamed metric must fail a test, never read as 0.
pub(crate) fn assert_family(text: &str, name: &str) {
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let declared = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .any(|n| n == name || n == base);
    assert!(
        declared,
        "/metrics has no metric {name} (see the README's Metrics table):\n{text}"
    );
}

/// Label values a sample must start with, by label name.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

/// Sum of the samples of `name` whose labels start with the given values; `None` when no
/// sample of that name matches.
pub(crate) fn metric_sum(text: &str, name: &str, filter: Labels<'_>) -> Option<f64> {
    assert_family(text, name);
    let matching: Vec<f64> = parse_metrics(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv.starts_with(v)))
        })
        .map(|s| s.value)
        .collect();
    if matching.is_empty() {
        None
    } else {
        Some(matching.iter().sum())
    }
}

/// The current value of a load-balancer-wide counter (0 when absent).
pub(crate) async fn metric(alb: &HostAlb, name: &str) -> f64 {
    let (status, text) = alb.admin_get("/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {text}");
    metric_sum(&text, name, &[]).unwrap_or(0.0)
}

async fn get_json(alb: &HostAlb, path: &str) -> (u16, Value) {
    let (status, body) = alb.admin_get(path).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}):\n{body}"));
    (status, value)
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, found {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, found {v}"))
        .iter()
        .map(|x| str_of(x, "array element").to_owned())
        .collect()
}

/// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:KIND/...`: the resource part, split at `/`.
fn arn_resource<'a>(arn: &'a str, kind: &str) -> Vec<&'a str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    assert_eq!(parts.len(), 6, "not an ARN: {arn}");
    assert_eq!(
        &parts[..3],
        ["arn", "aws", "elasticloadbalancing"],
        "not an ELB ARN: {arn}"
    );
    let resource: Vec<&str> = parts[5].split('/').collect();
    assert_eq!(resource[0], kind, "ARN {arn} should name a {kind}");
    resource
}

fn is_hex16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn attribute<'a>(group: &'a Value, key: &str) -> &'a str {
    let attrs = group["Attributes"]
        .as_array()
        .unwrap_or_else(|| panic!("Attributes should be a list of {{Key, Value}}: {group}"));
    let found = attrs
        .iter()
        .find(|a| a["Key"] == key)
        .unwrap_or_else(|| panic!("attribute {key} missing from {}", group["Attributes"]));
    str_of(&found["Value"], key)
}

fn find_by<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list, found {list}"))
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no element with {key} = {value} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    let alb = start(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
"#,
    )
    .await;
    let resp = Client::new().get(&alb.admin_url("/healthz")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text().trim(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_are_refused() {
    let alb = start(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
"#,
    )
    .await;
    let (status, body) = get_json(&alb, "/api/nothing-here").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["Error"]["Code"], "NotFound", "{body}");

    let (status, body) = get_json(&alb, "/api/reload").await;
    assert_eq!(status, 405, "GET /api/reload must not reload: {body}");
    assert_eq!(metric(&alb, "hostalb_reloads_total").await, 0.0);

    let resp = Client::new().get(&alb.admin_url("/")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "the dashboard is an HTML page: {resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_described_with_their_bound_ports() {
    let alb = start(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404 }

[[listener]]
name = "internal"
address = "127.0.0.1:0"
default_action = { type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }
"#,
    )
    .await;
    let (status, body) = get_json(&alb, "/api/listeners").await;
    assert_eq!(status, 200, "{body}");
    let listeners = body["Listeners"].as_array().expect("Listeners array");
    assert_eq!(listeners.len(), 2, "{body}");
    let mut arns = Vec::new();
    for (name, action) in [("web", "fixed-response"), ("internal", "redirect")] {
        let l = find_by(&body["Listeners"], "Name", name);
        assert_eq!(
            l["Port"].as_u64(),
            Some(u64::from(alb.listener(name).port())),
            "Port is the bound port (an integer): {l}"
        );
        assert_eq!(l["Protocol"], "HTTP", "{l}");
        let arn = str_of(&l["ListenerArn"], "ListenerArn");
        let resource = arn_resource(arn, "listener");
        assert_eq!(resource.len(), 5, "listener/app/<lb>/<lbid>/<id>: {arn}");
        assert_eq!(resource[1], "app", "{arn}");
        assert!(is_hex16(resource[3]) && is_hex16(resource[4]), "{arn}");
        let lb = str_of(&l["LoadBalancerArn"], "LoadBalancerArn");
        let lb_resource = arn_resource(lb, "loadbalancer");
        assert_eq!(&lb_resource[1..3], &resource[1..3], "{lb} vs {arn}");
        assert_eq!(lb_resource[3], resource[3], "{lb} vs {arn}");
        assert_eq!(l["DefaultActions"][0]["Type"], action, "{l}");
        arns.push(arn.to_owned());
    }
    assert_ne!(arns[0], arns[1], "every listener has its own ARN");
}

const RULES_CONFIG: &str = r##"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no rule" }

[[listener.rule]]
priority = 30
conditions = [
  { field = "http-header", name = "X-Env", values = ["canary*"] },
  { field = "http-request-method", values = ["GET", "POST"] },
]
action = { type = "redirect", protocol = "HTTPS", port = "443", path = "/new/#{path}", status_code = "HTTP_301" }

[[listener.rule]]
priority = 10
conditions = [
  { field = "host-header", values = ["api.example.com"] },
  { field = "path-pattern", values = ["/api/*"] },
]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 20
conditions = [
  { field = "query-string", values = [{ key = "version", value = "v2" }, { value = "beta" }] },
  { field = "source-ip", values = ["10.0.0.0/8", "::1/128"] },
]
action = { type = "forward", target_groups = [{ name = "api", weight = 3 }, { name = "web", weight = 1 }], stickiness_seconds = 600 }

[[listener.rule]]
priority = 40
conditions = [{ field = "path-pattern", regex_values = ["^/r/[0-9]+$"] }]
transforms = [{ type = "url-rewrite", rewrites = [{ regex = "^/r/(.*)$", replace = "/s/$1" }] }]
action = { type = "fixed-response", status_code = 503, content_type = "application/json", message_body = "{\"down\":true}" }

[[listener]]
name = "other"
address = "127.0.0.1:0"

[target_group.api]
targets = ["127.0.0.1:9"]
health_check = { enabled = false }

[target_group.web]
targets = ["127.0.0.1:9"]
health_check = { enabled = false }
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_have_the_describe_rules_shape() {
    let alb = start(RULES_CONFIG).await;
    let (status, body) = get_json(&alb, "/api/rules?listener=web").await;
    assert_eq!(status, 200, "{body}");
    let rules = body["Rules"].as_array().expect("Rules array");
    let priorities: Vec<&str> = rules.iter().map(|r| str_of(&r["Priority"], "Priority")).collect();
    assert_eq!(
        priorities,
        ["10", "20", "30", "40", "default"],
        "Priority strings, lowest first, the default rule last"
    );

    // The target group ARNs, to check that forwards name the right groups.
    let (_, groups) = get_json(&alb, "/api/target-groups").await;
    let group_arn = |name: &str| {
        str_of(
            &find_by(&groups["TargetGroups"], "TargetGroupName", name)["TargetGroupArn"],
            "TargetGroupArn",
        )
        .to_owned()
    };

    // RuleArn: listener-rule/app/<lb>/<lbid>/<listener id>/<rule id>, one per rule.
    let (_, listeners) = get_json(&alb, "/api/listeners").await;
    let listener_arn = str_of(
        &find_by(&listeners["Listeners"], "Name", "web")["ListenerArn"],
        "ListenerArn",
    )
    .to_owned();
    let listener_resource = arn_resource(&listener_arn, "listener");
    let mut rule_arns = Vec::new();
    for r in rules {
        let arn = str_of(&r["RuleArn"], "RuleArn");
        let resource = arn_resource(arn, "listener-rule");
        assert_eq!(
            resource.len(),
            6,
            "listener-rule/app/<lb>/<lbid>/<lid>/<id>: {arn}"
        );
        assert_eq!(
            &resource[1..5],
            &listener_resource[1..5],
            "{arn} belongs to {listener_arn}"
        );
        assert!(is_hex16(resource[5]), "{arn}");
        rule_arns.push(arn.to_owned());
        let is_default = r["Priority"] == "default";
        assert_eq!(r["IsDefault"], is_default, "{r}");
        let actions = r["Actions"].as_array().expect("Actions array");
        assert_eq!(actions.len(), 1, "{r}");
    }
    rule_arns.sort();
    rule_arns.dedup();
    assert_eq!(rule_arns.len(), rules.len(), "every rule has its own RuleArn");

    // Priority 10: host-header and path-pattern, single forward.
    let r10 = &rules[0];
    let host = find_by(&r10["Conditions"], "Field", "host-header");
    assert_eq!(
        strings(&host["HostHeaderConfig"]["Values"]),
        ["api.example.com"],
        "{host}"
    );
    let path = find_by(&r10["Conditions"], "Field", "path-pattern");
    assert_eq!(
        strings(&path["PathPatternConfig"]["Values"]),
        ["/api/*"],
        "{path}"
    );
    let fwd = &r10["Actions"][0];
    assert_eq!(fwd["Type"], "forward", "{fwd}");
    assert_eq!(fwd["TargetGroupArn"], group_arn("api").as_str(), "{fwd}");
    let tgs = fwd["ForwardConfig"]["TargetGroups"]
        .as_array()
        .expect("ForwardConfig.TargetGroups");
    assert_eq!(tgs.len(), 1, "{fwd}");
    assert_eq!(tgs[0]["TargetGroupArn"], group_arn("api").as_str(), "{fwd}");

    // Priority 20: query-string and source-ip, weighted forward with group stickiness.
    let r20 = &rules[1];
    let qs = find_by(&r20["Conditions"], "Field", "query-string");
    let pairs = qs["QueryStringConfig"]["Values"]
        .as_array()
        .expect("QueryStringConfig.Values");
    assert_eq!(pairs.len(), 2, "{qs}");
    assert_eq!(pairs[0]["Key"], "version", "{qs}");
    assert_eq!(pairs[0]["Value"], "v2", "{qs}");
    assert!(
        pairs[1].get("Key").is_none_or(Value::is_null),
        "a pair without a key: {qs}"
    );
    assert_eq!(pairs[1]["Value"], "beta", "{qs}");
    let ip = find_by(&r20["Conditions"], "Field", "source-ip");
    assert_eq!(
        strings(&ip["SourceIpConfig"]["Values"]),
        ["10.0.0.0/8", "::1/128"],
        "{ip}"
    );
    let fwd = &r20["Actions"][0];
    assert_eq!(fwd["Type"], "forward", "{fwd}");
    let weights: Vec<(String, u64)> = fwd["ForwardConfig"]["TargetGroups"]
        .as_array()
        .expect("ForwardConfig.TargetGroups")
        .iter()
        .map(|g| {
            (
                str_of(&g["TargetGroupArn"], "TargetGroupArn").to_owned(),
                g["Weight"].as_u64().expect("Weight is an integer"),
            )
        })
        .collect();
    assert_eq!(weights, [(group_arn("api"), 3), (group_arn("web"), 1)], "{fwd}");
    let sticky = &fwd["ForwardConfig"]["TargetGroupStickinessConfig"];
    assert_eq!(sticky["Enabled"], true, "{fwd}");
    assert_eq!(sticky["DurationSeconds"].as_u64(), Some(600), "{fwd}");

    // Priority 30: http-header and http-request-method, redirect.
    let r30 = &rules[2];
    let header = find_by(&r30["Conditions"], "Field", "http-header");
    let name = str_of(&header["HttpHeaderConfig"]["HttpHeaderName"], "HttpHeaderName");
    assert!(name.eq_ignore_ascii_case("X-Env"), "{header}");
    assert_eq!(
        strings(&header["HttpHeaderConfig"]["Values"]),
        ["canary*"],
        "{header}"
    );
    let method = find_by(&r30["Conditions"], "Field", "http-request-method");
    assert_eq!(
        strings(&method["HttpRequestMethodConfig"]["Values"]),
        ["GET", "POST"],
        "{method}"
    );
    let redirect = &r30["Actions"][0];
    assert_eq!(redirect["Type"], "redirect", "{redirect}");
    let rc = &redirect["RedirectConfig"];
    assert_eq!(rc["Protocol"], "HTTPS", "{rc}");
    assert_eq!(rc["Port"], "443", "Port is a string: {rc}");
    assert_eq!(rc["Host"], "#{host}", "unset components keep the request's: {rc}");
    assert_eq!(rc["Path"], "/new/#{path}", "{rc}");
    assert_eq!(rc["Query"], "#{query}", "{rc}");
    assert_eq!(rc["StatusCode"], "HTTP_301", "{rc}");

    // Priority 40: regex values and a transform, fixed response.
    let r40 = &rules[3];
    let path = find_by(&r40["Conditions"], "Field", "path-pattern");
    assert_eq!(
        strings(&path["PathPatternConfig"]["RegexValues"]),
        ["^/r/[0-9]+$"],
        "{path}"
    );
    let transforms = r40["Transforms"].as_array().expect("Transforms array");
    assert_eq!(transforms.len(), 1, "{r40}");
    assert_eq!(transforms[0]["Type"], "url-rewrite", "{r40}");
    let rewrite = &transforms[0]["UrlRewriteConfig"]["Rewrites"][0];
    assert_eq!(rewrite["Regex"], "^/r/(.*)$", "{r40}");
    assert_eq!(rewrite["Replace"], "/s/$1", "{r40}");
    let fixed = &r40["Actions"][0];
    assert_eq!(fixed["Type"], "fixed-response", "{fixed}");
    let fc = &fixed["FixedResponseConfig"];
    assert_eq!(fc["StatusCode"], "503", "StatusCode is a string: {fc}");
    assert_eq!(fc["ContentType"], "application/json", "{fc}");
    assert_eq!(fc["MessageBody"], "{\"down\":true}", "{fc}");

    // The default rule: no conditions, the default action.
    let default = &rules[4];
    assert_eq!(default["IsDefault"], true, "{default}");
    assert_eq!(
        default["Conditions"].as_array().map(Vec::len),
        Some(0),
        "{default}"
    );
    let fc = &default["Actions"][0]["FixedResponseConfig"];
    assert_eq!(fc["StatusCode"], "404", "{default}");
    assert_eq!(fc["MessageBody"], "no rule", "{default}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_of_a_listener_without_rules_hold_only_the_default_rule() {
    let alb = start(RULES_CONFIG).await;
    let (status, body) = get_json(&alb, "/api/rules?listener=other").await;
    assert_eq!(status, 200, "{body}");
    let rules = body["Rules"].as_array().expect("Rules array");
    assert_eq!(rules.len(), 1, "{body}");
    assert_eq!(rules[0]["Priority"], "default", "{body}");
    assert_eq!(rules[0]["IsDefault"], true, "{body}");
    // No default_action written: hostalb's default is a fixed-response 404.
    assert_eq!(rules[0]["Actions"][0]["Type"], "fixed-response", "{body}");
    assert_eq!(
        rules[0]["Actions"][0]["FixedResponseConfig"]["StatusCode"], "404",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_of_an_unknown_listener_are_not_found() {
    let alb = start(RULES_CONFIG).await;
    let (status, body) = get_json(&alb, "/api/rules?listener=nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["Error"]["Code"], "ListenerNotFound", "{body}");
    let message = str_of(&body["Error"]["Message"], "Message");
    assert!(
        message.contains("web") && message.contains("other"),
        "the message names the listeners there are: {message}"
    );
    // Two listeners: the name is required.
    let (status, body) = get_json(&alb, "/api/rules").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_groups_have_the_describe_target_groups_shape_and_attributes() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "api" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/web/*"] }}]
action = {{ type = "forward", target_group = "web" }}

[target_group.api]
targets = ["{a}"]
algorithm = "least_outstanding_requests"
deregistration_delay_seconds = 30
stickiness = {{ type = "lb_cookie", duration_seconds = 3600 }}

[target_group.api.health_check]
path = "/health"
interval_seconds = 10
timeout_seconds = 4
healthy_threshold = 3
unhealthy_threshold = 4
matcher = "200-299"

[target_group.web]
targets = ["{b}"]
slow_start_seconds = 60
stickiness = {{ type = "app_cookie", cookie_name = "SESSION", duration_seconds = 120 }}
health_check = {{ enabled = false, port = 8081 }}

[target_group.spare]
"#,
        a = a.addr(),
        b = b.addr()
    ))
    .await;
    let (status, body) = get_json(&alb, "/api/target-groups").await;
    assert_eq!(status, 200, "{body}");
    let all = body["TargetGroups"].as_array().expect("TargetGroups array");
    assert_eq!(all.len(), 3, "{body}");

    let api = find_by(&body["TargetGroups"], "TargetGroupName", "api");
    let arn = str_of(&api["TargetGroupArn"], "TargetGroupArn");
    let resource = arn_resource(arn, "targetgroup");
    assert_eq!(resource.len(), 3, "targetgroup/<name>/<id>: {arn}");
    assert_eq!(resource[1], "api", "{arn}");
    assert!(is_hex16(resource[2]), "{arn}");
    assert_eq!(api["Protocol"], "HTTP", "{api}");
    assert_eq!(api["Port"].as_u64(), Some(u64::from(a.addr().port())), "{api}");
    assert_eq!(api["HealthCheckProtocol"], "HTTP", "{api}");
    assert_eq!(api["HealthCheckPort"], "traffic-port", "{api}");
    assert_eq!(api["HealthCheckEnabled"], true, "{api}");
    assert_eq!(api["HealthCheckPath"], "/health", "{api}");
    assert_eq!(api["HealthCheckIntervalSeconds"].as_f64(), Some(10.0), "{api}");
    assert_eq!(api["HealthCheckTimeoutSeconds"].as_f64(), Some(4.0), "{api}");
    assert_eq!(api["HealthyThresholdCount"].as_u64(), Some(3), "{api}");
    assert_eq!(api["UnhealthyThresholdCount"].as_u64(), Some(4), "{api}");
    assert_eq!(api["Matcher"]["HttpCode"], "200-299", "{api}");
    assert_eq!(api["ProtocolVersion"], "HTTP1", "{api}");
    assert_eq!(api["TargetType"], "instance", "{api}");
    assert_eq!(
        api["LoadBalancerArns"].as_array().map(Vec::len),
        Some(1),
        "a group a rule forwards to belongs to the load balancer: {api}"
    );
    for attr in api["Attributes"].as_array().expect("Attributes") {
        assert!(
            attr["Key"].is_string() && attr["Value"].is_string(),
            "attributes are Key/Value strings: {attr}"
        );
    }
    assert_eq!(attribute(api, "deregistration_delay.timeout_seconds"), "30");
    assert_eq!(attribute(api, "slow_start.duration_seconds"), "0");
    assert_eq!(
        attribute(api, "load_balancing.algorithm.type"),
        "least_outstanding_requests"
    );
    assert_eq!(attribute(api, "stickiness.enabled"), "true");
    assert_eq!(attribute(api, "stickiness.type"), "lb_cookie");
    assert_eq!(attribute(api, "stickiness.lb_cookie.duration_seconds"), "3600");

    let web = find_by(&body["TargetGroups"], "TargetGroupName", "web");
    assert_eq!(web["HealthCheckEnabled"], false, "{web}");
    assert_eq!(web["HealthCheckPort"], "8081", "a port is a string: {web}");
    // ALB's defaults where nothing was written.
    assert_eq!(web["HealthCheckPath"], "/", "{web}");
    assert_eq!(web["HealthCheckIntervalSeconds"].as_f64(), Some(30.0), "{web}");
    assert_eq!(web["HealthCheckTimeoutSeconds"].as_f64(), Some(5.0), "{web}");
    assert_eq!(web["HealthyThresholdCount"].as_u64(), Some(5), "{web}");
    assert_eq!(web["UnhealthyThresholdCount"].as_u64(), Some(2), "{web}");
    assert_eq!(web["Matcher"]["HttpCode"], "200", "{web}");
    assert_eq!(attribute(web, "deregistration_delay.timeout_seconds"), "300");
    assert_eq!(attribute(web, "slow_start.duration_seconds"), "60");
    assert_eq!(attribute(web, "load_balancing.algorithm.type"), "round_robin");
    assert_eq!(attribute(web, "stickiness.enabled"), "true");
    assert_eq!(attribute(web, "stickiness.type"), "app_cookie");
    assert_eq!(attribute(web, "stickiness.app_cookie.cookie_name"), "SESSION");
    assert_eq!(attribute(web, "stickiness.app_cookie.duration_seconds"), "120");

    let spare = find_by(&body["TargetGroups"], "TargetGroupName", "spare");
    assert_eq!(attribute(spare, "stickiness.enabled"), "false");
    assert_eq!(
        spare["LoadBalancerArns"].as_array().map(Vec::len),
        Some(0),
        "no rule forwards to it: {spare}"
    );

    // ELBv2 models HealthCheckIntervalSeconds and HealthCheckTimeoutSeconds as integers
    // (CLI output `"HealthCheckIntervalSeconds": 30`); whole seconds must be written so,
    // or tooling that decodes them as integers fails.
    let fractional: Vec<String> = [api, web]
        .iter()
        .flat_map(|g| {
            ["HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds"]
                .into_iter()
                .filter(|k| !g[*k].is_u64())
                .map(|k| {
                    format!(
                        "{}.{k} = {}",
                        str_of(&g["TargetGroupName"], "TargetGroupName"),
                        g[k]
                    )
                })
        })
        .collect();
    assert!(
        fractional.is_empty(),
        "whole seconds should be JSON integers: {}",
        fractional.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_health_lists_every_target_with_its_state() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "checked" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/plain/*"] }}]
action = {{ type = "forward", target_group = "plain" }}

[target_group.checked]
targets = ["{a}", "{b}"]
health_check = {{ path = "/health", interval_seconds = 0.5, timeout_seconds = 0.25, healthy_threshold = 2 }}

[target_group.plain]
targets = ["{c}"]
health_check = {{ enabled = false }}

[target_group.idle]
targets = ["{c}"]
health_check = {{ enabled = false }}
"#,
        a = a.addr(),
        b = b.addr(),
        c = c.addr(),
    ))
    .await;

    // Health checks pass: both targets end up healthy.
    let mut last = Value::Null;
    let state_of = |body: &Value, port: u16| {
        body["TargetHealthDescriptions"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|d| d["Target"]["Port"].as_u64() == Some(u64::from(port)))
            })
            .map(|d| d["TargetHealth"]["State"].clone())
    };
    let healthy = try_eventually(Duration::from_secs(5), async || {
        let (status, body) = get_json(&alb, "/api/target-health?target_group=checked").await;
        assert_eq!(status, 200, "{body}");
        last = body.clone();
        [a.addr().port(), b.addr().port()]
            .iter()
            .all(|p| state_of(&body, *p) == Some(Value::from("healthy")))
    })
    .await;
    assert!(healthy.is_ok(), "both targets should become healthy: {last}");
    let list = last["TargetHealthDescriptions"]
        .as_array()
        .expect("TargetHealthDescriptions");
    assert_eq!(list.len(), 2, "{last}");
    for d in list {
        assert_eq!(d["Target"]["Id"], "127.0.0.1", "{d}");
        let port = d["Target"]["Port"].as_u64().expect("Target.Port is an integer");
        assert_eq!(
            d["HealthCheckPort"],
            port.to_string().as_str(),
            "traffic-port: {d}"
        );
        assert!(
            d["TargetHealth"].get("Reason").is_none_or(Value::is_null),
            "a healthy target has no Reason: {d}"
        );
    }

    // Health checks disabled: `unavailable` / Target.HealthCheckDisabled.
    let (status, body) = get_json(&alb, "/api/target-health?target_group=plain").await;
    assert_eq!(status, 200, "{body}");
    let d = &body["TargetHealthDescriptions"][0];
    assert_eq!(d["Target"]["Id"], "127.0.0.1", "{body}");
    assert_eq!(
        d["Target"]["Port"].as_u64(),
        Some(u64::from(c.addr().port())),
        "{body}"
    );
    assert_eq!(d["TargetHealth"]["State"], "unavailable", "{body}");
    assert_eq!(
        d["TargetHealth"]["Reason"], "Target.HealthCheckDisabled",
        "{body}"
    );

    // A group no rule forwards to: `unused` / Target.NotInUse.
    let (status, body) = get_json(&alb, "/api/target-health?target_group=idle").await;
    assert_eq!(status, 200, "{body}");
    let d = &body["TargetHealthDescriptions"][0];
    assert_eq!(d["TargetHealth"]["State"], "unused", "{body}");
    assert_eq!(d["TargetHealth"]["Reason"], "Target.NotInUse", "{body}");

    // An unknown group, or none named.
    let (status, body) = get_json(&alb, "/api/target-health?target_group=nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["Error"]["Code"], "TargetGroupNotFound", "{body}");
    let (status, _) = get_json(&alb, "/api/target-health").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_alb_names_and_count_the_requests_made() {
    let app = Backend::start("app").await;
    // A port nothing listens on: connections are refused (502).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let alb = start(&format!(
        r##"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 200, message_body = "default" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/ok/*"] }}]
action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 20
conditions = [{{ field = "path-pattern", values = ["/dead/*"] }}]
action = {{ type = "forward", target_group = "dead" }}

[[listener.rule]]
priority = 30
conditions = [{{ field = "path-pattern", values = ["/empty/*"] }}]
action = {{ type = "forward", target_group = "empty" }}

[[listener.rule]]
priority = 40
conditions = [{{ field = "path-pattern", values = ["/moved/*"] }}]
action = {{ type = "redirect", path = "/new/#{{path}}", status_code = "HTTP_301" }}

[[listener.rule]]
priority = 50
conditions = [{{ field = "path-pattern", values = ["/fixed"] }}]
action = {{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "fixed" }}

[target_group.app]
targets = ["{app}"]
health_check = {{ enabled = false }}

[target_group.dead]
targets = ["{dead}"]
health_check = {{ enabled = false }}

[target_group.empty]
health_check = {{ enabled = false }}
"##,
        app = app.addr(),
    ))
    .await;

    let (status, before) = alb.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "hostalb_requests_total",
        "hostalb_active_connections",
        "hostalb_new_connections_total",
        "hostalb_httpcode_elb_3xx_total",
        "hostalb_httpcode_elb_4xx_total",
        "hostalb_httpcode_elb_5xx_total",
        "hostalb_httpcode_elb_502_total",
        "hostalb_httpcode_elb_503_total",
        "hostalb_http_fixed_responses_total",
        "hostalb_http_redirects_total",
        "hostalb_httpcode_target_2xx_total",
        "hostalb_target_response_time_seconds_count",
        "hostalb_healthy_hosts",
        "hostalb_reloads_total",
        "hostalb_reload_failures_total",
    ] {
        assert!(
            metric_sum(&before, name, &[]).is_some(),
            "metric {name} missing from /metrics:\n{before}"
        );
        let family = name.strip_suffix("_count").unwrap_or(name);
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "metric {family} has no TYPE line:\n{before}"
        );
    }
    let lb = parse_metrics(&before)
        .into_iter()
        .find(|s| s.name == "hostalb_requests_total")
        .and_then(|s| s.labels.into_iter().find(|(k, _)| k == "load_balancer"))
        .map(|(_, v)| v)
        .expect("RequestCount carries the LoadBalancer dimension");
    assert!(
        lb.starts_with("app/hostalb/"),
        "LoadBalancer = app/<name>/<id>: {lb}"
    );
    assert_eq!(
        metric_sum(&before, "hostalb_requests_total", &[]),
        Some(0.0),
        "{before}"
    );

    let client = Client::new();
    let url = |p: &str| alb.url("web", p);
    for i in 0..3 {
        let r = client.get(&url(&format!("/ok/{i}"))).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    for i in 0..2 {
        let r = client.get(&url(&format!("/dead/{i}"))).await.unwrap();
        assert_eq!(r.status, 502, "{r:?}");
    }
    let r = client.get(&url("/empty/x")).await.unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    let r = client.get(&url("/moved/x")).await.unwrap();
    assert_eq!(r.status, 301, "{r:?}");
    let r = client.get(&url("/fixed")).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "fixed");
    let r = client.request("TRACE", &url("/"), &[], Vec::new()).await.unwrap();
    assert_eq!(r.status, 405, "{r:?}");

    let expected: [(&str, Labels, f64); 12] = [
        (
            "hostalb_httpcode_target_2xx_total",
            &[("target_group", "targetgroup/app/")],
            3.0,
        ),
        (
            "hostalb_httpcode_target_5xx_total",
            &[("target_group", "targetgroup/app/")],
            0.0,
        ),
        ("hostalb_httpcode_elb_502_total", &[], 2.0),
        ("hostalb_httpcode_elb_503_total", &[], 1.0),
        ("hostalb_httpcode_elb_5xx_total", &[], 3.0),
        ("hostalb_httpcode_elb_3xx_total", &[], 1.0),
        ("hostalb_httpcode_elb_4xx_total", &[], 1.0),
        ("hostalb_http_redirects_total", &[], 1.0),
        ("hostalb_http_fixed_responses_total", &[], 1.0),
        ("hostalb_elb_answers_total", &[("code", "502")], 2.0),
        (
            "hostalb_elb_answers_total",
            &[("code", "503"), ("reason", "NoRegisteredTargets")],
            1.0,
        ),
        ("hostalb_elb_answers_total", &[("code", "405")], 1.0),
    ];
    let mut text = String::new();
    let settled = try_eventually(Duration::from_secs(3), async || {
        text = alb.admin_get("/metrics").await.1;
        expected
            .iter()
            .all(|(name, filter, want)| metric_sum(&text, name, filter) == Some(*want))
    })
    .await;
    if settled.is_err() {
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(name, filter, want)| metric_sum(&text, name, filter) != Some(*want))
            .map(|(name, filter, want)| {
                format!(
                    "{name}{filter:?}: want {want}, got {:?}",
                    metric_sum(&text, name, filter)
                )
            })
            .collect();
        panic!(
            "metrics do not count the requests made:\n{}\n\n{text}",
            wrong.join("\n")
        );
    }
    assert!(
        metric_sum(
            &text,
            "hostalb_target_connection_errors_total",
            &[("target_group", "targetgroup/dead/")]
        )
        .is_some_and(|n| n >= 2.0),
        "refused connections are target connection errors:\n{text}"
    );
    assert!(
        metric_sum(&text, "hostalb_new_connections_total", &[]).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // ALB counts a request in RequestCount once a target was chosen: the three answered
    // by `app` and the two whose target refused the connection; not the 503 (no
    // target), the redirect, the fixed response or the TRACE. ProcessedBytes counts the
    // bytes of every request and response.
    let mut wrong = Vec::new();
    let requests = metric_sum(&text, "hostalb_requests_total", &[]);
    if requests != Some(5.0) {
        wrong.push(format!(
            "RequestCount should count every request for which a target was chosen (5), got {requests:?}"
        ));
    }
    let bytes = metric_sum(&text, "hostalb_processed_bytes_total", &[]);
    if !bytes.is_some_and(|b| b > 0.0) {
        wrong.push(format!(
            "ProcessedBytes should count the bytes of the 10 requests and answers, got {bytes:?}"
        ));
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
}
