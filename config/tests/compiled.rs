//! What a valid configuration compiles to: matchers with ALB's wildcard and case rules,
//! rules in priority order, actions and ALB's defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use hostalb_config::*;

/// The conditions of the only rule of `conditions` (a TOML array).
fn conditions(conditions: &str) -> Vec<Condition> {
    let loaded = toml(&with_conditions(conditions)).unwrap();
    loaded.config.listeners[0].rules[0].conditions.clone()
}

fn only(conditions_toml: &str) -> Condition {
    let mut all = conditions(conditions_toml);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn action(action: &str) -> Action {
    let loaded = toml(&with_action(action)).unwrap();
    loaded.config.listeners[0].rules[0].action.clone()
}

#[test]
fn host_header_matches_case_insensitively_and_anchored() {
    let Condition::HostHeader(m) = only(r#"[{ field = "host-header", values = ["*.Example.COM"] }]"#) else {
        panic!("expected a host-header condition");
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m.globs[0].as_str(), "*.Example.COM");
    assert!(m.matches(b"api.example.com"));
    assert!(m.matches(b"API.EXAMPLE.COM"));
    assert!(m.matches(b"a.b.example.com"));
    assert!(
        !m.matches(b"example.com"),
        "*.example.com needs a label before it"
    );
    assert!(!m.matches(b"api.example.com.evil.net"));
}

#[test]
fn path_pattern_matches_case_sensitively_and_anchored() {
    let Condition::PathPattern(m) = only(r#"[{ field = "path-pattern", values = ["/API/*", "/v?/x"] }]"#)
    else {
        panic!("expected a path-pattern condition");
    };
    assert!(m.matches(b"/API/users"));
    assert!(m.matches(b"/API/"));
    assert!(!m.matches(b"/api/users"), "paths are case-sensitive");
    assert!(!m.matches(b"/API"), "/API/* does not match /API");
    assert!(m.matches(b"/v1/x"));
    assert!(!m.matches(b"/v12/x"), "? is exactly one character");
}

#[test]
fn query_string_escapes_wildcards() {
    let Condition::QueryString(pairs) =
        only(r#"[{ field = "query-string", values = [{ key = "q", value = "a\\*b" }, { value = "x?z" }] }]"#)
    else {
        panic!("expected a query-string condition");
    };
    assert_eq!(pairs.len(), 2);
    let key = pairs[0].key.as_ref().unwrap();
    assert!(key.matches(b"Q"), "query strings are case-insensitive");
    assert!(pairs[0].value.matches(b"a*b"));
    assert!(pairs[0].value.matches(b"A*B"));
    assert!(!pairs[0].value.matches(b"axb"), "\\* is a literal star");
    assert_eq!(
        pairs[0].value.wildcard_count(),
        0,
        "an escaped star is no wildcard"
    );
    assert!(pairs[1].key.is_none(), "no key means any key");
    assert!(pairs[1].value.matches(b"xyz"));
    assert_eq!(pairs[1].value.wildcard_count(), 1);
}

#[test]
fn query_string_escaped_letters_still_ignore_case() {
    let Condition::QueryString(pairs) =
        only(r#"[{ field = "query-string", values = [{ value = "\\Abc" }] }]"#)
    else {
        panic!("expected a query-string condition");
    };
    assert!(pairs[0].value.matches(b"abc"));
    assert!(pairs[0].value.matches(b"ABC"));
    assert!(!pairs[0].value.matches(b"\\abc"));
}

#[test]
fn http_header_name_is_lower_cased_and_values_ignore_case() {
    let Condition::HttpHeader { name, matcher } =
        only(r#"[{ field = "http-header", name = "X-Env", values = ["Canary*"] }]"#)
    else {
        panic!("expected an http-header condition");
    };
    assert_eq!(name, "x-env");
    assert!(matcher.matches(b"canary-1"));
    assert!(matcher.matches(b"CANARY"));
    assert!(!matcher.matches(b"stable"));
}

#[test]
fn methods_are_kept_exactly() {
    let Condition::HttpRequestMethod(methods) =
        only(r#"[{ field = "http-request-method", values = ["GET", "PATCH"] }]"#)
    else {
        panic!("expected a method condition");
    };
    assert_eq!(methods, vec!["GET".to_owned(), "PATCH".to_owned()]);
}

#[test]
fn source_ip_blocks_are_normalised() {
    let Condition::SourceIp(nets) =
        only(r#"[{ field = "source-ip", values = ["10.1.2.3/8", "::1/128", "192.168.0.0/16"] }]"#)
    else {
        panic!("expected a source-ip condition");
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(nets[0].to_string(), "10.0.0.0/8");
    assert!(nets[0].contains(&ip("10.200.0.1")));
    assert!(!nets[0].contains(&ip("11.0.0.1")));
    assert!(nets[1].contains(&ip("::1")));
    assert!(nets[2].contains(&ip("192.168.44.5")));
}

#[test]
fn regex_values_search_unanchored_with_the_fields_case_rule() {
    let Condition::HostHeader(host) =
        only(r#"[{ field = "host-header", regex_values = ["^api\\.example\\.com(:\\d+)?$"] }]"#)
    else {
        panic!("expected a host-header condition");
    };
    assert_eq!(host.regexes[0].as_str(), r"^api\.example\.com(:\d+)?$");
    assert!(host.matches(b"API.example.com:8080"), "host regexes ignore case");
    assert!(!host.matches(b"xapi.example.com"));

    let Condition::PathPattern(path) = only(r#"[{ field = "path-pattern", regex_values = ["/v[0-9]+/"] }]"#)
    else {
        panic!("expected a path-pattern condition");
    };
    assert!(
        path.matches(b"/api/v2/users"),
        "unanchored: a search, not a whole match"
    );
    assert!(!path.matches(b"/api/V2/users"), "path regexes keep case");
}

#[test]
fn conditions_keep_their_order_and_fields() {
    let all = conditions(
        r#"[
  { field = "path-pattern", values = ["/api/*"] },
  { field = "host-header", values = ["*.example.com"] },
  { field = "http-header", name = "X-Env", values = ["canary*"] },
  { field = "query-string", values = [{ key = "version", value = "v2" }] },
]"#,
    );
    let fields: Vec<&str> = all.iter().map(Condition::field).collect();
    assert_eq!(
        fields,
        vec!["path-pattern", "host-header", "http-header", "query-string"]
    );
}

#[test]
fn rules_are_sorted_by_priority() {
    let loaded = clean(&with_rules(
        r#"
[[listener.rule]]
priority = 30
conditions = [{ field = "path-pattern", values = ["/c"] }]
action = { type = "forward", target_group = "api" }
[[listener.rule]]
priority = 5
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "fixed-response", status_code = 200 }
[[listener.rule]]
priority = 12
conditions = [{ field = "path-pattern", values = ["/b"] }]
action = { type = "redirect", protocol = "HTTPS", status_code = "HTTP_302" }
"#,
    ));
    let rules = &loaded.config.listeners[0].rules;
    let order: Vec<(u32, &str)> = rules.iter().map(|r| (r.priority, r.action.kind())).collect();
    assert_eq!(
        order,
        vec![(5, "fixed-response"), (12, "redirect"), (30, "forward")]
    );
}

#[test]
fn transforms_compile() {
    let loaded = clean(&with_rules(
        r#"
[[listener.rule]]
priority = 1
conditions = [{ field = "path-pattern", values = ["/old/*"] }]
transforms = [
  { type = "url-rewrite", rewrites = [{ regex = "^/old/(.*)$", replace = "/new/$1" }] },
  { type = "host-header-rewrite", rewrites = [{ regex = "^(.*)$", replace = "internal" }] },
]
action = { type = "forward", target_group = "api" }
"#,
    ));
    let transforms = &loaded.config.listeners[0].rules[0].transforms;
    let kinds: Vec<&str> = transforms.iter().map(Transform::kind).collect();
    assert_eq!(kinds, vec!["url-rewrite", "host-header-rewrite"]);
    let rewrite = &transforms[0].rewrites()[0];
    assert!(rewrite.regex.is_match(b"/old/x"));
    assert_eq!(rewrite.replace, "/new/$1");
}

#[test]
fn forward_actions() {
    let Action::Forward(f) = action(r#"{ type = "forward", target_group = "api" }"#) else {
        panic!("expected a forward");
    };
    assert_eq!(
        f.target_groups,
        vec![WeightedTargetGroup {
            name: "api".into(),
            weight: 1
        }]
    );
    assert_eq!(f.stickiness, None);

    let loaded = clean(&with_rules(
        r#"
[[listener.rule]]
priority = 1
conditions = [{ field = "path-pattern", values = ["/x"] }]
action = { type = "forward", target_groups = [{ name = "api", weight = 90 }, { name = "green" }], stickiness_seconds = 600 }

[target_group.green]
[target_group.unused]
"#,
    ));
    let Action::Forward(f) = &loaded.config.listeners[0].rules[0].action else {
        panic!("expected a forward");
    };
    let weights: Vec<(&str, u32)> = f
        .target_groups
        .iter()
        .map(|g| (g.name.as_str(), g.weight))
        .collect();
    assert_eq!(weights, vec![("api", 90), ("green", 1)], "a missing weight is 1");
    assert_eq!(f.stickiness, Some(Duration::from_secs(600)));
    assert!(loaded.config.target_group_in_use("green"));
    assert!(!loaded.config.target_group_in_use("unused"));
}

#[test]
fn redirect_actions() {
    let Action::Redirect(r) = action(
        r##"{ type = "redirect", protocol = "HTTPS", port = "443", host = "#{host}", path = "/v2/#{path}", query = "#{query}&from=v1", status_code = "HTTP_301" }"##,
    ) else {
        panic!("expected a redirect");
    };
    assert_eq!(r.protocol, RedirectProtocol::Https);
    assert_eq!(r.port, Some(443));
    assert_eq!(r.status_code, 301);
    assert_eq!(r.host.parts, vec![TemplatePart::Host]);
    assert_eq!(
        r.path.parts,
        vec![TemplatePart::Literal("/v2/".into()), TemplatePart::Path]
    );
    assert_eq!(
        r.query.parts,
        vec![TemplatePart::Query, TemplatePart::Literal("&from=v1".into())]
    );

    // Unset components keep the request's own values; 302 may be written as a number.
    let Action::Redirect(r) = action(r#"{ type = "redirect", host = "example.com", status_code = 302 }"#)
    else {
        panic!("expected a redirect");
    };
    assert_eq!(r.protocol, RedirectProtocol::Keep);
    assert_eq!(r.port, None);
    assert_eq!(r.path.source, "/#{path}");
    assert_eq!(r.query.source, "#{query}");
    assert_eq!(r.status_code, 302);
}

#[test]
fn fixed_response_actions() {
    let Action::FixedResponse(f) = action(
        r#"{ type = "fixed-response", status_code = "503", content_type = "application/json", message_body = "{}" }"#,
    ) else {
        panic!("expected a fixed response");
    };
    assert_eq!(
        f,
        FixedResponse {
            status_code: 503,
            content_type: Some("application/json".into()),
            message_body: "{}".into()
        }
    );
}

#[test]
fn listener_defaults_are_albs() {
    let loaded = clean("[[listener]]\nname = \"web\"\naddress = \"[::]:8080\"\n");
    let l = &loaded.config.listeners[0];
    assert_eq!(l.address, "[::]:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(l.protocol, ListenerProtocol::Http);
    assert_eq!(l.idle_timeout, defaults::IDLE_TIMEOUT);
    assert_eq!(l.header_timeout, defaults::HEADER_TIMEOUT);
    assert_eq!(l.client_keep_alive, defaults::CLIENT_KEEP_ALIVE);
    assert_eq!(l.xff_mode, XffMode::Append);
    assert_eq!(l.desync_mitigation_mode, DesyncMitigationMode::Defensive);
    assert!(!l.xff_client_port);
    assert!(!l.preserve_host_header);
    assert!(l.server_header);
    assert!(!l.drop_invalid_header_fields);
    let Action::FixedResponse(f) = &l.default_action else {
        panic!("the default action is a fixed response");
    };
    assert_eq!(f.status_code, 404);
    assert_eq!(f.message_body, defaults::DEFAULT_ACTION_BODY);
    assert!(l.rules.is_empty());
    assert_eq!(
        loaded.config.admin.address,
        defaults::ADMIN_ADDRESS.parse::<SocketAddr>().unwrap()
    );
    assert_eq!(loaded.config.docker.resync, defaults::DOCKER_RESYNC);
    assert_eq!(loaded.config.docker.endpoint, None);
    assert!(!loaded.config.strict_alb);
}

#[test]
fn target_group_defaults_are_albs() {
    let loaded = clean(&with_group(""));
    let g = loaded.config.target_group("api").unwrap();
    assert_eq!(g.protocol, TargetGroupProtocol::Http);
    assert_eq!(g.protocol_version, ProtocolVersion::Http1);
    assert_eq!(g.target_type, TargetType::Instance);
    assert_eq!(g.algorithm, Algorithm::RoundRobin);
    assert_eq!(g.deregistration_delay, defaults::DEREGISTRATION_DELAY);
    assert_eq!(g.slow_start, Duration::ZERO);
    assert_eq!(g.stickiness, None);
    assert!(g.targets.is_empty());
    assert_eq!(g.docker, None);
    let hc = &g.health_check;
    assert!(hc.enabled);
    assert_eq!(hc.protocol, TargetGroupProtocol::Http);
    assert_eq!(hc.path, "/");
    assert_eq!(hc.port, HealthCheckPort::TrafficPort);
    assert_eq!(hc.interval, Duration::from_secs(30));
    assert_eq!(hc.timeout, Duration::from_secs(5));
    assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (5, 2));
    assert_eq!(hc.matcher.ranges, vec![(200, 200)]);
}

#[test]
fn target_group_settings_compile() {
    let loaded = clean(&with_group(
        r#"protocol = "HTTPS"
target_type = "ip"
algorithm = "least_outstanding_requests"
deregistration_delay_seconds = 0.5
stickiness = { type = "app_cookie", cookie_name = "SESSIONID", duration_seconds = 60 }
targets = ["127.0.0.1:9001", "[::1]:9002"]
use_docker_health = true

[target_group.api.health_check]
protocol = "HTTP"
path = "/health?deep=1"
port = "8081"
interval_seconds = 10
timeout_seconds = 3
matcher = 204

[target_group.api.docker]
labels = { "com.amazonaws.ecs.container-name" = "app" }
container_port = 80
"#,
    ));
    let g = &loaded.config.target_groups[0];
    assert_eq!(g.protocol, TargetGroupProtocol::Https);
    assert_eq!(g.target_type, TargetType::Ip);
    assert_eq!(g.algorithm, Algorithm::LeastOutstandingRequests);
    assert_eq!(g.deregistration_delay, Duration::from_millis(500));
    assert_eq!(
        g.stickiness,
        Some(Stickiness::AppCookie {
            cookie_name: "SESSIONID".into(),
            duration: Duration::from_secs(60)
        })
    );
    assert_eq!(
        g.targets,
        vec![
            "127.0.0.1:9001".parse::<SocketAddr>().unwrap(),
            "[::1]:9002".parse::<SocketAddr>().unwrap()
        ]
    );
    assert!(g.use_docker_health);
    let hc = &g.health_check;
    assert_eq!(hc.protocol, TargetGroupProtocol::Http);
    assert_eq!(hc.path, "/health?deep=1");
    assert_eq!(hc.port, HealthCheckPort::Port(8081));
    assert_eq!(hc.matcher.ranges, vec![(204, 204)]);
    let docker = g.docker.as_ref().unwrap();
    assert_eq!(docker.container_port, Some(80));
    assert_eq!(
        docker
            .labels
            .get("com.amazonaws.ecs.container-name")
            .map(String::as_str),
        Some("app")
    );
}

#[test]
fn disabled_stickiness_is_off() {
    let loaded = clean(&with_group(
        "stickiness = { enabled = false, type = \"lb_cookie\" }",
    ));
    assert_eq!(loaded.config.target_groups[0].stickiness, None);
    let loaded = clean(&with_group("stickiness = { type = \"lb_cookie\" }"));
    assert_eq!(
        loaded.config.target_groups[0].stickiness,
        Some(Stickiness::LbCookie {
            duration: defaults::STICKINESS_DURATION
        })
    );
}

#[test]
fn target_groups_are_sorted_by_name() {
    let loaded = clean(&with_rules("[target_group.zeta]\n[target_group.alpha]\n"));
    let names: Vec<&str> = loaded
        .config
        .target_groups
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(names, vec!["alpha", "api", "zeta"]);
    assert!(loaded.config.listener("web").is_some());
    assert!(loaded.config.listener("nope").is_none());
}
