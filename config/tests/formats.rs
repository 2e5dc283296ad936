//! The two spellings (TOML and JSON) of one structure, the example of the design, the
//! embedded default and reading files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use hostalb_config::*;

const FULL_TOML: &str = r##"
strict_alb = true

[admin]
address = "127.0.0.1:9901"

[docker]
endpoint = "unix:///var/run/docker.sock"
host_address = "127.0.0.1"
resync_seconds = 15

[[listener]]
name = "web"
address = "0.0.0.0:8080"
protocol = "HTTP"
idle_timeout_seconds = 60
xff_mode = "preserve"
xff_client_port = true
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no rule matched" }

[[listener.rule]]
priority = 10
conditions = [
  { field = "path-pattern", values = ["/api/*"] },
  { field = "host-header", values = ["*.example.com"] },
  { field = "http-header", name = "X-Env", values = ["canary*"] },
]
transforms = [{ type = "url-rewrite", rewrites = [{ regex = "^/api/(.*)$", replace = "/$1" }] }]
action = { type = "forward", target_groups = [{ name = "blue", weight = 90 }, { name = "green", weight = 10 }], stickiness_seconds = 600 }

[[listener.rule]]
priority = 20
conditions = [
  { field = "http-request-method", values = ["GET", "HEAD"] },
  { field = "query-string", values = [{ key = "version", value = "v2" }, { value = "beta" }] },
]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 30
conditions = [{ field = "source-ip", values = ["10.0.0.0/8", "::1/128"] }]
action = { type = "redirect", protocol = "HTTPS", port = "443", host = "#{host}", path = "/#{path}", query = "#{query}", status_code = "HTTP_301" }

[[listener]]
name = "secure"
address = "0.0.0.0:8443"
protocol = "HTTPS"
certificates = [{ cert_file = "cert.pem", key_file = "key.pem" }]
default_action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 1
conditions = [{ field = "path-pattern", regex_values = ["^/admin(/.*)?$"] }]
action = { type = "fixed-response", status_code = 403, content_type = "application/json", message_body = "{\"error\":\"forbidden\"}" }

[target_group.api]
protocol = "HTTP"
protocol_version = "HTTP1"
algorithm = "round_robin"
deregistration_delay_seconds = 30
slow_start_seconds = 60
stickiness = { type = "lb_cookie", duration_seconds = 86400 }
targets = ["127.0.0.1:9001", "127.0.0.1:9002"]

[target_group.api.health_check]
path = "/health"
interval_seconds = 10
timeout_seconds = 2
healthy_threshold = 3
unhealthy_threshold = 2
matcher = "200-299"

[target_group.api.docker]
labels = { "com.amazonaws.ecs.task-definition-family" = "api", "com.amazonaws.ecs.container-name" = "app" }
container_port = 80

[target_group.blue]
algorithm = "least_outstanding_requests"
targets = ["127.0.0.1:9101"]

[target_group.green]
targets = ["127.0.0.1:9201"]
"##;

const FULL_JSON: &str = r##"{
  "strict_alb": true,
  "admin": { "address": "127.0.0.1:9901" },
  "docker": {
    "endpoint": "unix:///var/run/docker.sock",
    "host_address": "127.0.0.1",
    "resync_seconds": 15
  },
  "listener": [
    {
      "name": "web",
      "address": "0.0.0.0:8080",
      "protocol": "HTTP",
      "idle_timeout_seconds": 60,
      "xff_mode": "preserve",
      "xff_client_port": true,
      "default_action": { "type": "fixed-response", "status_code": 404, "content_type": "text/plain", "message_body": "no rule matched" },
      "rule": [
        {
          "priority": 10,
          "conditions": [
            { "field": "path-pattern", "values": ["/api/*"] },
            { "field": "host-header", "values": ["*.example.com"] },
            { "field": "http-header", "name": "X-Env", "values": ["canary*"] }
          ],
          "transforms": [{ "type": "url-rewrite", "rewrites": [{ "regex": "^/api/(.*)$", "replace": "/$1" }] }],
          "action": {
            "type": "forward",
            "target_groups": [{ "name": "blue", "weight": 90 }, { "name": "green", "weight": 10 }],
            "stickiness_seconds": 600
          }
        },
        {
          "priority": 20,
          "conditions": [
            { "field": "http-request-method", "values": ["GET", "HEAD"] },
            { "field": "query-string", "values": [{ "key": "version", "value": "v2" }, { "value": "beta" }] }
          ],
          "action": { "type": "forward", "target_group": "api" }
        },
        {
          "priority": 30,
          "conditions": [{ "field": "source-ip", "values": ["10.0.0.0/8", "::1/128"] }],
          "action": { "type": "redirect", "protocol": "HTTPS", "port": "443", "host": "#{host}", "path": "/#{path}", "query": "#{query}", "status_code": "HTTP_301" }
        }
      ]
    },
    {
      "name": "secure",
      "address": "0.0.0.0:8443",
      "protocol": "HTTPS",
      "certificates": [{ "cert_file": "cert.pem", "key_file": "key.pem" }],
      "default_action": { "type": "forward", "target_group": "api" },
      "rule": [
        {
          "priority": 1,
          "conditions": [{ "field": "path-pattern", "regex_values": ["^/admin(/.*)?$"] }],
          "action": { "type": "fixed-response", "status_code": 403, "content_type": "application/json", "message_body": "{\"error\":\"forbidden\"}" }
        }
      ]
    }
  ],
  "target_group": {
    "api": {
      "protocol": "HTTP",
      "protocol_version": "HTTP1",
      "algorithm": "round_robin",
      "deregistration_delay_seconds": 30,
      "slow_start_seconds": 60,
      "stickiness": { "type": "lb_cookie", "duration_seconds": 86400 },
      "targets": ["127.0.0.1:9001", "127.0.0.1:9002"],
      "health_check": {
        "path": "/health",
        "interval_seconds": 10,
        "timeout_seconds": 2,
        "healthy_threshold": 3,
        "unhealthy_threshold": 2,
        "matcher": "200-299"
      },
      "docker": {
        "labels": { "com.amazonaws.ecs.task-definition-family": "api", "com.amazonaws.ecs.container-name": "app" },
        "container_port": 80
      }
    },
    "blue": { "algorithm": "least_outstanding_requests", "targets": ["127.0.0.1:9101"] },
    "green": { "targets": ["127.0.0.1:9201"] }
  }
}"##;

#[test]
fn the_same_config_in_toml_and_json_gives_the_same_result() {
    let from_toml = parse(FULL_TOML, Format::Toml, "full.toml").unwrap();
    let from_json = parse(FULL_JSON, Format::Json, "full.json").unwrap();
    // strict_alb = true and still valid: the config is within every ALB limit.
    assert!(from_toml.warnings.is_empty(), "{:#?}", from_toml.warnings);
    assert!(from_json.warnings.is_empty(), "{:#?}", from_json.warnings);

    let (t, j) = (&from_toml.config, &from_json.config);
    assert!(t.strict_alb && j.strict_alb);
    assert_eq!(t.admin, j.admin);
    assert_eq!(t.docker, j.docker);
    assert_eq!(t.target_groups, j.target_groups);
    assert_eq!(t.listeners.len(), j.listeners.len());
    for (lt, lj) in t.listeners.iter().zip(&j.listeners) {
        assert_eq!(lt.name, lj.name);
        assert_eq!(lt.address, lj.address);
        assert_eq!(lt.protocol, lj.protocol);
        assert_eq!(lt.certificates, lj.certificates);
        assert_eq!(lt.idle_timeout, lj.idle_timeout);
        assert_eq!(lt.xff_mode, lj.xff_mode);
        assert_eq!(lt.xff_client_port, lj.xff_client_port);
        assert_eq!(
            format!("{:?}", lt.default_action),
            format!("{:?}", lj.default_action)
        );
        assert_eq!(lt.rules.len(), lj.rules.len());
        for (rt, rj) in lt.rules.iter().zip(&lj.rules) {
            assert_eq!(rt.priority, rj.priority);
            // Compiled matchers compare by their source patterns and case rules.
            assert_eq!(format!("{:?}", rt.conditions), format!("{:?}", rj.conditions));
            assert_eq!(format!("{:?}", rt.transforms), format!("{:?}", rj.transforms));
            assert_eq!(format!("{:?}", rt.action), format!("{:?}", rj.action));
        }
    }

    // And the shared result is what was written.
    assert_eq!(t.listeners[0].rules.len(), 3);
    assert_eq!(t.listeners[1].rules.len(), 1);
    let names: Vec<&str> = t.target_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec!["api", "blue", "green"]);
    assert_eq!(t.docker.resync, std::time::Duration::from_secs(15));
    let Action::Forward(f) = &t.listeners[0].rules[0].action else {
        panic!("expected a forward");
    };
    assert_eq!(f.target_groups[1].name, "green");
    assert_eq!(f.target_groups[1].weight, 10);
    let Condition::QueryString(pairs) = &t.listeners[0].rules[1].conditions[1] else {
        panic!("expected a query-string condition");
    };
    assert!(pairs[1].value.matches(b"BETA"));
}

#[test]
fn a_json_problem_has_the_same_path_as_in_toml() {
    let toml_text = FULL_TOML.replace("\"X-Env\"", "\"Host\"");
    let json_text = FULL_JSON.replace("\"X-Env\"", "\"Host\"");
    let a = parse(&toml_text, Format::Toml, "a.toml").unwrap_err().problems();
    let b = parse(&json_text, Format::Json, "b.json").unwrap_err().problems();
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].path, "listener[0].rule[0].conditions[2].name");
    assert_eq!(a[0].severity, Severity::Error, "strict_alb = true");
}

/// The example of design.md, as written there.
const DESIGN_EXAMPLE: &str = r##"
strict_alb = false

[admin]                       # admin API, metrics, dashboard
address = "127.0.0.1:9901"

[docker]                      # Docker discovery; used when a target group has a selector
endpoint = "unix:///var/run/docker.sock"   # default: DOCKER_HOST, else the local socket
host_address = "127.0.0.1"    # where ports published on 0.0.0.0 / :: are reached
resync_seconds = 30

[[listener]]
name = "web"
address = "0.0.0.0:8080"
protocol = "HTTP"             # HTTP | HTTPS (certificates = [{ cert_file, key_file }])
idle_timeout_seconds = 60
xff_mode = "append"           # append | preserve | remove
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no rule matched" }

[[listener.rule]]
priority = 10
conditions = [
  { field = "path-pattern", values = ["/api/*"] },
  { field = "host-header", values = ["*.example.com"] },
  { field = "http-header", name = "X-Env", values = ["canary*"] },
  { field = "http-request-method", values = ["GET", "POST"] },
  { field = "query-string", values = [{ key = "version", value = "v2" }, { value = "beta" }] },
  { field = "source-ip", values = ["10.0.0.0/8", "::1/128"] },
  # host-header, http-header and path-pattern also take regex_values = ["..."]
]
action = { type = "forward", target_group = "api" }
# ACTION

[target_group.api]
protocol = "HTTP"                      # HTTP | HTTPS
protocol_version = "HTTP1"             # HTTP1 | HTTP2 | GRPC
algorithm = "round_robin"              # round_robin | least_outstanding_requests | weighted_random
deregistration_delay_seconds = 300
slow_start_seconds = 0
stickiness = { type = "lb_cookie", duration_seconds = 86400 }   # or app_cookie + cookie_name
targets = ["127.0.0.1:9001"]           # static registrations (optional)

[target_group.api.health_check]        # ALB defaults when omitted
enabled = true
path = "/"
port = "traffic-port"
interval_seconds = 30
timeout_seconds = 5
healthy_threshold = 5
unhealthy_threshold = 2
matcher = "200"                        # "200,202" or "200-299"

[target_group.api.docker]              # which containers register here, and on which port
labels = { "com.amazonaws.ecs.task-definition-family" = "api", "com.amazonaws.ecs.container-name" = "app" }
container_port = 80
"##;

#[test]
fn the_design_example_parses() {
    let loaded = toml(DESIGN_EXAMPLE).unwrap();
    // Its one rule shows every condition type at once: nine values, more than the five
    // ALB allows in one rule, which is a warning here.
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.path, "listener[0].rule[0].conditions");
    assert_eq!(w.severity, Severity::Warning);
    assert!(w.message.contains("9 condition values"), "{w}");

    let c = &loaded.config;
    let rule = &c.listeners[0].rules[0];
    let fields: Vec<&str> = rule.conditions.iter().map(Condition::field).collect();
    assert_eq!(
        fields,
        vec![
            "path-pattern",
            "host-header",
            "http-header",
            "http-request-method",
            "query-string",
            "source-ip"
        ]
    );
    assert!(rule.action.forwards_to("api"));
    let g = c.target_group("api").unwrap();
    assert_eq!(
        g.stickiness,
        Some(Stickiness::LbCookie {
            duration: std::time::Duration::from_secs(86_400)
        })
    );
    assert_eq!(g.docker.as_ref().unwrap().labels.len(), 2);
    assert_eq!(g.health_check.port, HealthCheckPort::TrafficPort);

    // The same document with strict_alb = true is refused for that one limit.
    let strict = DESIGN_EXAMPLE.replace("strict_alb = false", "strict_alb = true");
    let problems = toml(&strict).unwrap_err().problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "listener[0].rule[0].conditions");
    assert_eq!(problems[0].severity, Severity::Error);
}

#[test]
fn the_design_examples_other_actions_parse() {
    let weighted = DESIGN_EXAMPLE
        .replace(
            "action = { type = \"forward\", target_group = \"api\" }\n# ACTION",
            "action = { type = \"forward\", target_groups = [{ name = \"blue\", weight = 90 }, { name = \"green\", weight = 10 }], stickiness_seconds = 600 }",
        )
        + "\n[target_group.blue]\n[target_group.green]\n";
    let loaded = toml(&weighted).unwrap();
    let Action::Forward(f) = &loaded.config.listeners[0].rules[0].action else {
        panic!("expected a forward");
    };
    assert_eq!(f.target_groups.len(), 2);
    assert_eq!(f.stickiness, Some(std::time::Duration::from_secs(600)));

    let redirect = DESIGN_EXAMPLE.replace(
        "action = { type = \"forward\", target_group = \"api\" }\n# ACTION",
        "action = { type = \"redirect\", protocol = \"HTTPS\", port = \"443\", host = \"#{host}\", path = \"/#{path}\", query = \"#{query}\", status_code = \"HTTP_301\" }",
    );
    let loaded = toml(&redirect).unwrap();
    assert_eq!(loaded.config.listeners[0].rules[0].action.kind(), "redirect");
    assert_eq!(loaded.warnings.len(), 1, "only the rule's value budget");

    let fixed = DESIGN_EXAMPLE.replace(
        "action = { type = \"forward\", target_group = \"api\" }\n# ACTION",
        "action = { type = \"fixed-response\", status_code = 503, content_type = \"application/json\", message_body = \"{}\" }",
    );
    let loaded = toml(&fixed).unwrap();
    assert_eq!(
        loaded.config.listeners[0].rules[0].action.kind(),
        "fixed-response"
    );
    // No rule forwards to api any more: its targets would be reported unused.
    assert!(!loaded.config.target_group_in_use("api"));
}

#[test]
fn the_embedded_default_is_valid() {
    let loaded = embedded_default().unwrap();
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.listeners.len(), 1);
    let web = c.listener("web").unwrap();
    assert_eq!(web.address, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(web.protocol, ListenerProtocol::Http);
    assert!(web.rules.is_empty());
    let Action::FixedResponse(f) = &web.default_action else {
        panic!("expected a fixed response");
    };
    assert_eq!(f.status_code, 404);
    assert_eq!(f.content_type.as_deref(), Some("text/plain"));
    assert_eq!(f.message_body, defaults::DEFAULT_ACTION_BODY);
    assert_eq!(c.admin.address, defaults::ADMIN_ADDRESS.parse().unwrap());
    assert!(c.target_groups.is_empty());
    // The constant and the function agree.
    let again = parse(EMBEDDED_DEFAULT, Format::Toml, "x").unwrap();
    assert_eq!(again.config.listeners[0].address, web.address);
}

#[test]
fn format_follows_the_file_extension() {
    assert_eq!(Format::from_path(Path::new("hostalb.json")), Format::Json);
    assert_eq!(Format::from_path(Path::new("/etc/hostalb/A.JSON")), Format::Json);
    assert_eq!(Format::from_path(Path::new("hostalb.toml")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("hostalb")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("hostalb.conf")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("json")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("dir.json/hostalb")), Format::Toml);
}

#[test]
fn load_reads_either_format_from_a_file() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostalb-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("full.toml");
    let json_path = dir.join("full.json");
    std::fs::write(&toml_path, FULL_TOML).unwrap();
    std::fs::write(&json_path, FULL_JSON).unwrap();

    let a = load(&toml_path).unwrap();
    let b = load(&json_path).unwrap();
    assert_eq!(a.config.target_groups, b.config.target_groups);
    assert_eq!(a.config.listeners.len(), 2);

    // A JSON file named .toml is read as TOML, and the error names the file.
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, FULL_JSON).unwrap();
    let e = load(&wrong).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&wrong.display().to_string()), "{e}");

    let missing = dir.join("missing.toml");
    let e = load(&missing).unwrap_err();
    let ConfigError::Read { origin, .. } = &e else {
        panic!("expected a read error, got {e:?}");
    };
    assert_eq!(origin, &missing.display().to_string());
    let problems = e.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "(file)");
    assert!(problems[0].message.starts_with("cannot read"), "{}", problems[0]);

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_specific_shapes() {
    let e = parse(
        r#"{ "listener": { "name": "web", "address": "127.0.0.1:8080" } }"#,
        Format::Json,
        "c.json",
    )
    .unwrap_err();
    let problems = e.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "listener");
    assert!(
        problems[0].fix.contains("\"listener\": [ ... ]"),
        "{}",
        problems[0]
    );

    // Numbers where ALB writes strings (and the reverse) are accepted in both formats.
    let loaded = parse(
        r#"{ "listener": [{ "name": "web", "address": "127.0.0.1:8080",
             "default_action": { "type": "redirect", "protocol": "HTTPS", "port": 443, "status_code": 301 } }] }"#,
        Format::Json,
        "c.json",
    )
    .unwrap();
    let Action::Redirect(r) = &loaded.config.listeners[0].default_action else {
        panic!("expected a redirect");
    };
    assert_eq!((r.port, r.status_code), (Some(443), 301));
}
