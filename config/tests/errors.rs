//! Problems that are errors whatever `strict_alb` says: references to nothing, clashes,
//! values that do not parse, unknown keys and missing pieces. And the promise that every
//! problem is reported at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hostalb_config::{ConfigError, Severity};

const RULE: &str = "listener[0].rule[0]";
const COND0: &str = "listener[0].rule[0].conditions[0]";
const ACTION: &str = "listener[0].rule[0].action";
const HC: &str = "target_group.api.health_check";

const LISTENER: &str = "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n";

// ---------------------------------------------------------------- references and clashes

#[test]
fn unknown_target_group_lists_the_known_names() {
    let doc = with_rules(
        r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/x"] }]
action = { type = "forward", target_group = "nope" }

[target_group.web-v2]
"#,
    );
    let p = assert_only_error(&doc, &format!("{ACTION}.target_group"), "`nope`");
    assert_eq!(p.message, "unknown target group `nope`");
    assert_eq!(p.fix, "use one of: api, web-v2");
}

#[test]
fn unknown_target_group_without_any_group() {
    let doc = format!("{LISTENER}default_action = {{ type = \"forward\", target_group = \"api\" }}\n");
    let p = assert_only_error(
        &doc,
        "listener[0].default_action.target_group",
        "unknown target group `api`",
    );
    assert!(p.fix.contains("[target_group.NAME]"), "{p}");
}

#[test]
fn unknown_target_group_in_a_weighted_forward() {
    let p = assert_only_error(
        &with_action(
            r#"{ type = "forward", target_groups = [{ name = "api", weight = 1 }, { name = "gone", weight = 1 }] }"#,
        ),
        &format!("{ACTION}.target_groups[1].name"),
        "unknown target group `gone`",
    );
    assert_eq!(p.fix, "use one of: api");
}

#[test]
fn a_forward_to_an_invalid_group_is_not_also_unknown() {
    // The group exists but cannot be read: its own problem is the only one.
    let doc = format!(
        "{LISTENER}default_action = {{ type = \"forward\", target_group = \"api\" }}\n\
         [[listener.rule]]\npriority = 1\nconditions = [{{ field = \"path-pattern\", values = [\"/x\"] }}]\n\
         action = {{ type = \"forward\", target_groups = [{{ name = \"api\" }}] }}\n\
         [target_group.api]\nslow_start_seconds = \"soon\"\n"
    );
    let p = assert_only_error(
        &doc,
        "target_group.api.slow_start_seconds",
        "expected a number of seconds",
    );
    assert_eq!(p.fix, "write the value with the type named");
}

#[test]
fn duplicate_priority_names_the_other_rule() {
    let doc = with_rules(
        r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 20
conditions = [{ field = "path-pattern", values = ["/b"] }]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/c"] }]
action = { type = "forward", target_group = "api" }
"#,
    );
    let p = assert_only_error(
        &doc,
        "listener[0].rule[2].priority",
        "priority 10 is already used by listener[0].rule[0]",
    );
    assert!(p.message.contains("listener `web`"), "{p}");
    // The same priority on two listeners is fine.
    let loaded = clean(
        r#"
[[listener]]
name = "a"
address = "127.0.0.1:8080"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "fixed-response", status_code = 200 }
[[listener]]
name = "b"
address = "127.0.0.1:8081"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "fixed-response", status_code = 200 }
"#,
    );
    assert_eq!(loaded.config.listeners.len(), 2);
}

#[test]
fn duplicate_priority_is_an_error_even_with_strict_alb_off() {
    let doc = format!(
        "strict_alb = false\n{}",
        with_rules(
            r#"
[[listener.rule]]
priority = 5
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "forward", target_group = "api" }
[[listener.rule]]
priority = 5
conditions = [{ field = "path-pattern", values = ["/b"] }]
action = { type = "forward", target_group = "api" }
"#,
        )
    );
    let all = problems(&doc);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].severity, Severity::Error);
    assert!(!all[0].alb_limit);
}

#[test]
fn health_check_timeout_not_shorter_than_interval() {
    for (interval, timeout) in [("10", "10"), ("10", "20"), ("0.5", "0.5")] {
        let doc = with_group(&format!(
            "[target_group.api.health_check]\ninterval_seconds = {interval}\ntimeout_seconds = {timeout}"
        ));
        let p = assert_error(
            &doc,
            &format!("{HC}.timeout_seconds"),
            "is not shorter than interval",
        );
        assert!(p.message.contains(&format!("timeout {timeout}s")), "{p}");
        assert!(p.message.contains(&format!("interval {interval}s")), "{p}");
        assert!(p.fix.contains("smaller than interval_seconds"), "{p}");
    }
    // The default timeout (5 s) against a shorter interval is caught too.
    assert_error(
        &with_group("[target_group.api.health_check]\ninterval_seconds = 4"),
        &format!("{HC}.timeout_seconds"),
        "timeout 5s is not shorter than interval 4s",
    );
}

#[test]
fn duplicate_listener_names_and_addresses() {
    let doc = r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
[[listener]]
name = "web"
address = "127.0.0.1:8081"
[[listener]]
name = "other"
address = "127.0.0.1:8080"
"#;
    let all = problems(doc);
    assert_eq!(all.len(), 2, "{all:#?}");
    let p = assert_error(doc, "listener[1].name", "`web` is also used by listener[0]");
    assert!(p.fix.contains("its own name"), "{p}");
    let p = assert_error(
        doc,
        "listener[2].address",
        "127.0.0.1:8080 is also the address of listener[0]",
    );
    assert!(p.fix.contains("its own port"), "{p}");
    // Port 0 asks the system for a free port each time: never a clash.
    clean(
        r#"
[[listener]]
name = "a"
address = "127.0.0.1:0"
[[listener]]
name = "b"
address = "127.0.0.1:0"
"#,
    );
}

#[test]
fn https_listener_needs_certificates_and_http_takes_none() {
    let p = assert_only_error(
        "[[listener]]\nname = \"s\"\naddress = \"127.0.0.1:8443\"\nprotocol = \"HTTPS\"\n",
        "listener[0].certificates",
        "needs a certificate",
    );
    assert!(p.fix.contains("cert_file"), "{p}");
    assert_only_error(
        "[[listener]]\nname = \"s\"\naddress = \"127.0.0.1:8080\"\ncertificates = [{ cert_file = \"c.pem\", key_file = \"k.pem\" }]\n",
        "listener[0].certificates",
        "only used by HTTPS listeners",
    );
    let loaded = clean(
        "[[listener]]\nname = \"s\"\naddress = \"127.0.0.1:8443\"\nprotocol = \"HTTPS\"\ncertificates = [{ cert_file = \"c.pem\", key_file = \"k.pem\" }]\n",
    );
    let l = &loaded.config.listeners[0];
    assert_eq!(l.protocol, hostalb_config::ListenerProtocol::Https);
    assert_eq!(l.certificates[0].cert_file, std::path::PathBuf::from("c.pem"));
    assert_eq!(l.certificates[0].key_file, std::path::PathBuf::from("k.pem"));
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn unknown_keys_at_every_level_with_their_full_path() {
    let cases: &[(&str, &str)] = &[
        (
            "colour = 1\n[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n",
            "colour",
        ),
        ("[admin]\ncolour = 1\n", "admin.colour"),
        ("[docker]\ncolour = 1\n", "docker.colour"),
        (&format!("{LISTENER}colour = 1\n"), "listener[0].colour"),
        (
            &with_rules(
                "[[listener.rule]]\npriority = 1\ncolour = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
            ),
            "listener[0].rule[0].colour",
        ),
        (
            &with_conditions(r#"[{ field = "path-pattern", values = ["/x"], colour = 1 }]"#),
            "listener[0].rule[0].conditions[0].colour",
        ),
        (
            &with_conditions(
                r#"[{ field = "query-string", values = [{ key = "a", value = "b", colour = 1 }] }]"#,
            ),
            "listener[0].rule[0].conditions[0].values[0].colour",
        ),
        (
            &with_action(r#"{ type = "forward", target_group = "api", colour = 1 }"#),
            "listener[0].rule[0].action.colour",
        ),
        (
            &with_action(r#"{ type = "forward", target_groups = [{ name = "api", colour = 1 }] }"#),
            "listener[0].rule[0].action.target_groups[0].colour",
        ),
        (
            &format!(
                "{LISTENER}default_action = {{ type = \"fixed-response\", status_code = 404, colour = 1 }}\n"
            ),
            "listener[0].default_action.colour",
        ),
        (
            &format!(
                "{LISTENER}certificates = [{{ cert_file = \"c\", key_file = \"k\", colour = 1 }}]\nprotocol = \"HTTPS\"\n"
            ),
            "listener[0].certificates[0].colour",
        ),
        (
            &with_rules(
                "[[listener.rule]]\npriority = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\ntransforms = [{ type = \"url-rewrite\", rewrites = [{ regex = \"a\", replace = \"b\", colour = 1 }] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
            ),
            "listener[0].rule[0].transforms[0].rewrites[0].colour",
        ),
        (&with_group("colour = 1"), "target_group.api.colour"),
        (
            &with_group("[target_group.api.health_check]\ncolour = 1"),
            "target_group.api.health_check.colour",
        ),
        (
            &with_group("[target_group.api.docker]\ncolour = 1"),
            "target_group.api.docker.colour",
        ),
        (
            &with_group("stickiness = { type = \"lb_cookie\", colour = 1 }"),
            "target_group.api.stickiness.colour",
        ),
    ];
    for (doc, path) in cases {
        let p = assert_only_error(doc, path, "colour");
        assert!(p.message.starts_with("unknown"), "{p}");
        if *path != "colour" {
            assert!(p.message.contains("expected"), "the known keys are listed: {p}");
            assert!(p.fix.contains("spelling"), "{p}");
        } else {
            assert!(
                p.fix.contains(
                    "strict_alb, max_client_connections, admin, access_log, docker, listener and target_group"
                ),
                "{p}"
            );
        }
    }
}

#[test]
fn an_unknown_key_does_not_hide_the_rest_of_its_table() {
    // The misspelt key is reported, and the listener's rules are still checked.
    let doc = format!(
        "{LISTENER}xff_mod = \"append\"\n\
         [[listener.rule]]\npriority = 1\nconditions = [{{ field = \"path-pattern\", values = [\"/x\"] }}]\n\
         action = {{ type = \"forward\", target_group = \"nope\" }}\n"
    );
    let all = problems(&doc);
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["listener[0].xff_mod", "listener[0].rule[0].action.target_group"]
    );
}

#[test]
fn a_value_of_the_wrong_type_does_not_hide_the_rest_of_its_table() {
    let doc = r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
idle_timeout_seconds = "sixty"

[[listener.rule]]
priority = "high"
conditions = [{ field = "path-pattern", values = ["/x"] }]
action = { type = "forward", target_group = "nope" }
"#;
    let all = problems(doc);
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    // No second "missing rule priority": the type error already covers that key.
    assert_eq!(
        paths,
        vec![
            "listener[0].idle_timeout_seconds",
            "listener[0].rule[0].priority",
            "listener[0].rule[0].action.target_group",
        ],
        "{all:#?}"
    );
    assert!(all[0].message.contains("expected a number of seconds"));
    assert!(all[1].message.contains("invalid type: string \"high\""));
}

// ---------------------------------------------------------------- missing pieces

#[test]
fn missing_required_pieces() {
    let cases: &[(String, &str, &str)] = &[
        (
            "[[listener]]\naddress = \"127.0.0.1:8080\"\n".into(),
            "listener[0].name",
            "missing listener name",
        ),
        (
            "[[listener]]\nname = \" \"\naddress = \"127.0.0.1:8080\"\n".into(),
            "listener[0].name",
            "cannot be empty",
        ),
        (
            "[[listener]]\nname = \"web\"\n".into(),
            "listener[0].address",
            "missing listener address",
        ),
        (
            with_rules(
                "[[listener.rule]]\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
            ),
            "listener[0].rule[0].priority",
            "missing rule priority",
        ),
        (
            with_rules(
                "[[listener.rule]]\npriority = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\n",
            ),
            "listener[0].rule[0].action",
            "missing rule action",
        ),
        (
            with_action(r#"{ target_group = "api" }"#),
            "listener[0].rule[0].action.type",
            "missing action type",
        ),
        (
            with_action(r#"{ type = "forward" }"#),
            ACTION,
            "needs a target group",
        ),
        (
            with_action(r#"{ type = "redirect", protocol = "HTTPS" }"#),
            "listener[0].rule[0].action.status_code",
            "a redirect needs a status code",
        ),
        (
            with_action(r#"{ type = "fixed-response", message_body = "x" }"#),
            "listener[0].rule[0].action.status_code",
            "a fixed response needs a status code",
        ),
        (
            with_conditions(r#"[{ field = "http-header", values = ["v"] }]"#),
            "listener[0].rule[0].conditions[0].name",
            "needs the header name",
        ),
        (
            with_conditions(r#"[{ field = "query-string", values = [{ key = "k" }] }]"#),
            "listener[0].rule[0].conditions[0].values[0]",
            "needs a value",
        ),
        (
            with_conditions(r#"[{ values = ["/x"] }]"#),
            "listener[0].rule[0].conditions[0].field",
            "missing condition field",
        ),
        (
            with_conditions(r#"[{ field = "path-pattern", values = [] }]"#),
            "listener[0].rule[0].conditions[0].values",
            "at least one value",
        ),
        (
            with_group("stickiness = { duration_seconds = 60 }"),
            "target_group.api.stickiness.type",
            "missing stickiness type",
        ),
        (
            with_group("stickiness = { type = \"app_cookie\" }"),
            "target_group.api.stickiness.cookie_name",
            "needs the application's cookie name",
        ),
        (
            format!("{LISTENER}protocol = \"HTTPS\"\ncertificates = [{{ cert_file = \"c.pem\" }}]\n"),
            "listener[0].certificates[0]",
            "missing field `key_file`",
        ),
        (
            with_rules(
                "[[listener.rule]]\npriority = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\ntransforms = [{ type = \"url-rewrite\" }]\naction = { type = \"forward\", target_group = \"api\" }\n",
            ),
            "listener[0].rule[0].transforms[0].rewrites",
            "at least one rewrite",
        ),
    ];
    for (doc, path, fragment) in cases {
        let p = assert_only_error(doc, path, fragment);
        assert_eq!(p.severity, Severity::Error);
    }
}

// ---------------------------------------------------------------- values that do not parse

#[test]
fn bad_addresses() {
    let p = assert_only_error(
        "[[listener]]\nname = \"web\"\naddress = \"localhost:8080\"\n",
        "listener[0].address",
        "`localhost:8080` is not an address:port",
    );
    assert!(p.fix.contains("no host names"), "{p}");
    assert_only_error(
        "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1\"\n",
        "listener[0].address",
        "is not an address:port",
    );
    assert_only_error(
        "[admin]\naddress = \"everywhere\"\n",
        "admin.address",
        "`everywhere` is not an address:port",
    );
    assert_only_error(
        "[docker]\nhost_address = \"host.docker.internal\"\n",
        "docker.host_address",
        "is not an IP address",
    );
    assert_only_error(
        "[docker]\nendpoint = \"npipe:////./pipe/docker_engine\"\n",
        "docker.endpoint",
        "is not a Docker endpoint",
    );
    assert_only_error(
        &with_group(r#"targets = ["127.0.0.1:9001", "backend:9001"]"#),
        "target_group.api.targets[1]",
        "`backend:9001` is not an IP:port",
    );
    assert_only_error(
        &with_group(r#"targets = ["127.0.0.1:0"]"#),
        "target_group.api.targets[0]",
        "has port 0",
    );
    assert_only_error(
        &with_group("[target_group.api.docker]\ncontainer_port = 70000"),
        "target_group.api.docker.container_port",
        "70000 is not a port",
    );
    assert_only_error(
        &with_group("[target_group.api.health_check]\nport = 0"),
        "target_group.api.health_check.port",
        "is not a port",
    );
    // Only the port is reported: the redirect is not also judged a loop on the
    // listener's own port.
    assert_only_error(
        &with_action(r#"{ type = "redirect", port = "https", status_code = "HTTP_301" }"#),
        "listener[0].rule[0].action.port",
        "`https` is not a port",
    );
}

#[test]
fn bad_cidr_blocks() {
    for value in ["10.0.0.0/33", "ten/8", "10.0.0.0/"] {
        let p = assert_only_error(
            &with_conditions(&format!(r#"[{{ field = "source-ip", values = ["{value}"] }}]"#)),
            &format!("{COND0}.values[0]"),
            &format!("`{value}` is not a CIDR block"),
        );
        assert!(p.fix.contains("10.0.0.0/8"), "{p}");
    }
    assert_only_error(
        &with_conditions(r#"[{ field = "source-ip", values = [10] }]"#),
        &format!("{COND0}.values[0]"),
        "expected a string",
    );
}

#[test]
fn bad_regexes() {
    for regex in ["(", "a{2,1}", "(?=x)"] {
        let p = assert_only_error(
            &with_conditions(&format!(
                r#"[{{ field = "path-pattern", regex_values = ['{regex}'] }}]"#
            )),
            &format!("{COND0}.regex_values[0]"),
            "not a valid regex",
        );
        assert!(p.fix.contains("fix the expression"), "{p}");
    }
    assert_only_error(
        &with_rules(
            "[[listener.rule]]\npriority = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\ntransforms = [{ type = \"url-rewrite\", rewrites = [{ regex = \"(\", replace = \"b\" }] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
        ),
        "listener[0].rule[0].transforms[0].rewrites[0].regex",
        "not a valid regex",
    );
    // regex_values on a field that takes none: reported, and the condition has no values.
    let doc = with_conditions(r#"[{ field = "source-ip", regex_values = ["^10\\."] }]"#);
    assert_error(
        &doc,
        &format!("{COND0}.regex_values"),
        "source-ip conditions take no regex_values",
    );
    assert_error(&doc, &format!("{COND0}.values"), "at least one value");
    assert_eq!(problems(&doc).len(), 2);
}

#[test]
fn bad_matchers() {
    for matcher in ["abc", "299-200", "200-600", "", "200,,204"] {
        let p = assert_only_error(
            &with_group(&format!(
                "[target_group.api.health_check]\nmatcher = \"{matcher}\""
            )),
            &format!("{HC}.matcher"),
            "is not a code or a range",
        );
        assert!(p.fix.contains("200-299"), "{p}");
    }
}

#[test]
fn bad_numbers_and_counts() {
    assert_only_error(
        &format!("{LISTENER}idle_timeout_seconds = -1\n"),
        "listener[0].idle_timeout_seconds",
        "-1 is not a number of seconds",
    );
    assert_only_error(
        &format!("{LISTENER}idle_timeout_seconds = 0\n"),
        "listener[0].idle_timeout_seconds",
        "must be more than 0",
    );
    assert_only_error(
        "[docker]\nresync_seconds = 0\n",
        "docker.resync_seconds",
        "must be more than 0",
    );
    assert_only_error(
        &with_group("[target_group.api.health_check]\nhealthy_threshold = 0"),
        &format!("{HC}.healthy_threshold"),
        "0 is not a usable count",
    );
    assert_only_error(
        &with_group("[target_group.api.health_check]\ninterval_seconds = 0"),
        &format!("{HC}.interval_seconds"),
        "must be more than 0",
    );
    assert_only_error(
        &with_group("stickiness = { type = \"lb_cookie\", duration_seconds = 0 }"),
        "target_group.api.stickiness.duration_seconds",
        "stickiness for 0 seconds",
    );
    assert_only_error(
        &with_rules(
            "[[listener.rule]]\npriority = -1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
        ),
        &format!("{RULE}.priority"),
        "priority -1 is out of range",
    );
    assert_only_error(
        &with_action(r#"{ type = "forward", target_groups = [{ name = "api", weight = -1 }] }"#),
        &format!("{ACTION}.target_groups[0].weight"),
        "weight -1 is negative",
    );
    assert_only_error(
        &with_action(r#"{ type = "fixed-response", status_code = 600 }"#),
        &format!("{ACTION}.status_code"),
        "`600` is not a final HTTP status code",
    );
    assert_only_error(
        &with_action(r#"{ type = "redirect", protocol = "HTTPS", status_code = "HTTP_200" }"#),
        &format!("{ACTION}.status_code"),
        "`HTTP_200` is not a redirect status",
    );
    let all = problems("strict_alb = \"yes\"\n[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].path, "strict_alb");
    assert!(all[0].message.contains("expected a boolean"), "{}", all[0]);
}

#[test]
fn bad_http_names() {
    assert_only_error(
        &with_conditions(r#"[{ field = "http-header", name = "X Env", values = ["v"] }]"#),
        &format!("{COND0}.name"),
        "`X Env` is not a header name",
    );
    assert_only_error(
        &with_conditions(r#"[{ field = "http-request-method", values = ["GET POST"] }]"#),
        &format!("{COND0}.values[0]"),
        "`GET POST` is not an HTTP method",
    );
    assert_only_error(
        &with_conditions(r#"[{ field = "path-pattern", name = "X-Env", values = ["/x"] }]"#),
        &format!("{COND0}.name"),
        "only for http-header conditions",
    );
    for cookie in ["AWSALBTG", "AWSALB-mine", "bad cookie"] {
        assert_error(
            &with_group(&format!(
                "stickiness = {{ type = \"app_cookie\", cookie_name = \"{cookie}\" }}"
            )),
            "target_group.api.stickiness.cookie_name",
            &format!("`{cookie}`"),
        );
    }
    assert_only_error(
        &with_group("stickiness = { type = \"lb_cookie\", cookie_name = \"SID\" }"),
        "target_group.api.stickiness.cookie_name",
        "for app_cookie stickiness",
    );
    assert_only_error(
        &with_group("[target_group.api.health_check]\npath = \"health\""),
        &format!("{HC}.path"),
        "must start with `/`",
    );
    assert_only_error(
        &with_action(r#"{ type = "redirect", path = "new", status_code = "HTTP_301" }"#),
        &format!("{ACTION}.path"),
        "must start with `/`",
    );
    assert_only_error(
        &with_action(r#"{ type = "redirect", host = "", status_code = "HTTP_301" }"#),
        &format!("{ACTION}.host"),
        "the redirect host is empty",
    );
}

#[test]
fn unknown_enum_values() {
    let cases: &[(String, &str, &str)] = &[
        (
            format!("{LISTENER}xff_mode = \"sometimes\"\n"),
            "listener[0].xff_mode",
            "append, preserve, remove",
        ),
        (
            format!("{LISTENER}protocol = \"TCP\"\n"),
            "listener[0].protocol",
            "HTTP, HTTPS",
        ),
        (
            format!("{LISTENER}desync_mitigation_mode = \"off\"\n"),
            "listener[0].desync_mitigation_mode",
            "monitor, defensive, strictest",
        ),
        (
            with_group("algorithm = \"random\""),
            "target_group.api.algorithm",
            "round_robin, least_outstanding_requests, weighted_random",
        ),
        (
            with_group("protocol = \"TCP\""),
            "target_group.api.protocol",
            "HTTP, HTTPS",
        ),
        (
            with_group("protocol_version = \"HTTP3\""),
            "target_group.api.protocol_version",
            "HTTP1, HTTP2, GRPC",
        ),
        (
            with_group("target_type = \"container\""),
            "target_group.api.target_type",
            "instance, ip",
        ),
        (
            with_group("[target_group.api.health_check]\nprotocol = \"TCP\""),
            "target_group.api.health_check.protocol",
            "HTTP, HTTPS",
        ),
    ];
    for (doc, path, choices) in cases {
        let p = assert_only_error(doc, path, "unknown value");
        assert_eq!(p.fix, format!("use one of: {choices}"));
    }
    let others: &[(String, &str, &str)] = &[
        (
            with_group("target_type = \"lambda\""),
            "target_group.api.target_type",
            "does not route to lambda targets",
        ),
        (
            with_group("stickiness = { type = \"source_ip\" }"),
            "target_group.api.stickiness.type",
            "unknown stickiness type `source_ip`",
        ),
        (
            with_conditions(r#"[{ field = "cookie", values = ["a"] }]"#),
            "listener[0].rule[0].conditions[0].field",
            "unknown condition field `cookie`",
        ),
        (
            with_action(r#"{ type = "bounce" }"#),
            "listener[0].rule[0].action.type",
            "unknown action type `bounce`",
        ),
        (
            with_action(r#"{ type = "authenticate-oidc" }"#),
            "listener[0].rule[0].action.type",
            "does not implement authenticate-oidc",
        ),
        (
            with_action(r#"{ type = "redirect", protocol = "FTP", status_code = "HTTP_301" }"#),
            "listener[0].rule[0].action.protocol",
            "unknown protocol `FTP`",
        ),
        (
            with_rules(
                "[[listener.rule]]\npriority = 1\nconditions = [{ field = \"path-pattern\", values = [\"/x\"] }]\ntransforms = [{ type = \"path-rewrite\", rewrites = [{ regex = \"a\", replace = \"b\" }] }]\naction = { type = \"forward\", target_group = \"api\" }\n",
            ),
            "listener[0].rule[0].transforms[0].type",
            "unknown transform type `path-rewrite`",
        ),
    ];
    for (doc, path, fragment) in others {
        assert_only_error(doc, path, fragment);
    }
}

#[test]
fn action_keys_of_another_action_type() {
    let cases = [
        (
            r#"{ type = "forward", target_group = "api", message_body = "x" }"#,
            "message_body",
            "`message_body` belongs to fixed-response actions, not forward",
        ),
        (
            r#"{ type = "forward", target_group = "api", status_code = 200 }"#,
            "status_code",
            "`status_code` belongs to redirect or fixed-response actions, not forward",
        ),
        (
            r#"{ type = "redirect", protocol = "HTTPS", target_group = "api", status_code = "HTTP_301" }"#,
            "target_group",
            "`target_group` belongs to forward actions, not redirect",
        ),
        (
            r#"{ type = "redirect", protocol = "HTTPS", content_type = "text/plain", status_code = "HTTP_301" }"#,
            "content_type",
            "`content_type` belongs to fixed-response actions, not redirect",
        ),
        (
            r#"{ type = "fixed-response", status_code = 200, host = "example.com" }"#,
            "host",
            "`host` belongs to redirect actions, not fixed-response",
        ),
        (
            r#"{ type = "fixed-response", status_code = 200, stickiness_seconds = 60 }"#,
            "stickiness_seconds",
            "`stickiness_seconds` belongs to forward actions, not fixed-response",
        ),
    ];
    for (action, key, message) in cases {
        let p = assert_only_error(&with_action(action), &format!("{ACTION}.{key}"), message);
        assert_eq!(p.fix, format!("remove {key}"));
    }
}

#[test]
fn forward_shapes_that_make_no_sense() {
    assert_only_error(
        &with_action(r#"{ type = "forward", target_group = "api", target_groups = [{ name = "api" }] }"#),
        ACTION,
        "either target_group or target_groups, not both",
    );
    assert_only_error(
        &with_action(r#"{ type = "forward", target_groups = [] }"#),
        &format!("{ACTION}.target_groups"),
        "target_groups is empty",
    );
    assert_only_error(
        &with_action(r#"{ type = "forward", target_groups = [{ name = "api" }, { name = "api" }] }"#),
        &format!("{ACTION}.target_groups[1].name"),
        "target group `api` is listed twice",
    );
}

#[test]
fn a_configuration_without_listeners_is_valid() {
    // The AWS API may create the listeners.
    for text in ["", "[admin]\naddress = \"127.0.0.1:9901\"\n", "listener = []\n"] {
        let loaded = hostalb_config::parse(text, hostalb_config::Format::Toml, "x.toml").unwrap();
        assert!(loaded.config.listeners.is_empty());
    }
    // A malformed `listener` key is still reported.
    let all = problems("[listener]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n");
    assert_eq!(all.len(), 1, "{all:?}");
}

#[test]
fn admin_keys_for_the_aws_api() {
    let loaded = hostalb_config::parse(
        "[admin]\naccess_key_id = \"AKID\"\nsecret_access_key = \"s\"\nstate_file = \"/tmp/s.json\"\napi_listener_address = \"127.0.0.3\"\n",
        hostalb_config::Format::Toml,
        "x.toml",
    )
    .unwrap();
    let admin = &loaded.config.admin;
    assert_eq!(admin.credentials.as_ref().unwrap().access_key_id, "AKID");
    assert!(
        !format!("{admin:?}").contains("\"s\""),
        "the secret is not printed"
    );
    assert_eq!(
        admin.state_file.as_deref(),
        Some(std::path::Path::new("/tmp/s.json"))
    );
    assert_eq!(admin.api_listener_address.to_string(), "127.0.0.3");
    assert_error(
        "[admin]\naccess_key_id = \"AKID\"\n",
        "admin.access_key_id",
        "go together",
    );
    assert_error(
        "[admin]\napi_listener_address = \"nope\"\n",
        "admin.api_listener_address",
        "not an IP",
    );
}

#[test]
fn document_shapes() {
    let all = match hostalb_config::parse("[1, 2]", hostalb_config::Format::Json, "x.json") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].path, "(top level)");
    assert!(all[0].message.contains("must be a table"));

    let p = assert_only_error(
        "[listener]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n",
        "listener",
        "must be a list of listeners",
    );
    assert!(p.fix.contains("[[listener]]"), "{p}");
    assert_only_error(
        "target_group = [\"api\"]\n",
        "target_group",
        "must be a table of named target groups",
    );
}

#[test]
fn syntax_errors_are_reported_with_their_position() {
    let e = toml("[[listener]\nname = \"web\"\n").unwrap_err();
    let ConfigError::Syntax { origin, message } = &e else {
        panic!("expected a syntax error, got {e:?}");
    };
    assert_eq!(origin, "test.toml");
    assert!(message.starts_with("TOML syntax:"), "{message}");
    assert!(message.contains("line 1"), "{message}");
    let problems = e.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "(syntax)");
    assert_eq!(problems[0].severity, Severity::Error);

    let e = hostalb_config::parse("{\"listener\": [", hostalb_config::Format::Json, "c.json").unwrap_err();
    let ConfigError::Syntax { message, .. } = &e else {
        panic!("expected a syntax error, got {e:?}");
    };
    assert!(message.starts_with("JSON syntax:"), "{message}");
}

// ---------------------------------------------------------------- every problem at once

#[test]
fn every_problem_is_reported_in_one_error() {
    let doc = r#"
strict_alb = false

[admin]
address = "nowhere"

[[listener]]
name = "web"
address = "127.0.0.1:8080"

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/a"] }]
action = { type = "forward", target_group = "missing" }

[[listener.rule]]
priority = 10
conditions = [{ field = "source-ip", values = ["10.0.0.0/40"] }]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 30
conditions = [{ field = "host-header", values = ["localhost"] }]
action = { type = "fixed-response", status_code = 200, colour = "red" }

[[listener]]
name = "web"
address = "127.0.0.1:8081"

[target_group.api.health_check]
interval_seconds = 5
timeout_seconds = 6
"#;
    let e = toml(doc).unwrap_err();
    let ConfigError::Invalid { origin, problems } = &e else {
        panic!("expected Invalid, got {e:?}");
    };
    assert_eq!(origin, "test.toml");
    let mut found: Vec<(&str, Severity)> = problems.iter().map(|p| (p.path.as_str(), p.severity)).collect();
    found.sort();
    let mut expected = vec![
        ("admin.address", Severity::Error),
        ("listener[0].rule[0].action.target_group", Severity::Error),
        ("listener[0].rule[1].conditions[0].values[0]", Severity::Error),
        // The duplicate priority is reported although rule 0 has another problem.
        ("listener[0].rule[1].priority", Severity::Error),
        ("listener[0].rule[2].conditions[0].values[0]", Severity::Warning),
        ("listener[0].rule[2].action.colour", Severity::Error),
        ("listener[1].name", Severity::Error),
        ("target_group.api.health_check.timeout_seconds", Severity::Error),
    ];
    expected.sort();
    assert_eq!(found, expected, "{problems:#?}");
    assert_eq!(problems.len(), 8);

    // The rendered error counts the errors (not the warning) and shows each fix.
    let text = e.to_string();
    assert!(text.starts_with("test.toml: 7 error(s):"), "{text}");
    assert!(
        text.contains("warning (ALB limit): listener[0].rule[2].conditions[0].values[0]"),
        "{text}"
    );
    assert!(text.contains("error: admin.address:"), "{text}");
    assert_eq!(text.matches("\n  fix: ").count(), 8, "{text}");
}

#[test]
fn strict_alb_turns_every_warning_into_an_error() {
    let body = with_conditions(
        r#"[{ field = "host-header", values = ["localhost"] }, { field = "http-request-method", values = ["get"] }]"#,
    );
    let lenient = warnings(&format!("strict_alb = false\n{body}"));
    assert_eq!(lenient.len(), 2);
    let strict = problems(&format!("strict_alb = true\n{body}"));
    assert_eq!(strict.len(), 2);
    for (w, e) in lenient.iter().zip(&strict) {
        assert_eq!(w.path, e.path);
        assert_eq!(w.message, e.message);
        assert_eq!((w.severity, e.severity), (Severity::Warning, Severity::Error));
        assert!(w.alb_limit && e.alb_limit);
    }
    let text = toml(&format!("strict_alb = true\n{body}"))
        .unwrap_err()
        .to_string();
    assert!(text.contains("error (ALB limit, strict_alb = true)"), "{text}");
}
