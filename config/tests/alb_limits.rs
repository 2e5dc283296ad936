//! ALB's documented limits: each is a warning by default and an error with
//! `strict_alb = true`, reported at the exact path of the value that breaks it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const RULE: &str = "listener[0].rule[0]";
const COND0: &str = "listener[0].rule[0].conditions[0]";
const ACTION: &str = "listener[0].rule[0].action";
const GROUP: &str = "target_group.api";
const HC: &str = "target_group.api.health_check";

/// A TOML basic string holding `text` exactly.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_values(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    format!(
        r#"[{{ field = "path-pattern", values = [{}] }}]"#,
        quoted.join(", ")
    )
}

// ---------------------------------------------------------------- rules and conditions

#[test]
fn priority_outside_1_to_50000() {
    for priority in [0, 50_001] {
        let body = with_rules(&format!(
            r#"
[[listener.rule]]
priority = {priority}
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {{ type = "forward", target_group = "api" }}
"#
        ));
        let p = assert_limit(
            &body,
            &format!("{RULE}.priority"),
            &format!("1 to 50000, not {priority}"),
        );
        assert!(p.fix.contains("1 to 50000"), "{p}");
    }
    for priority in [1, 50_000] {
        let body = with_rules(&format!(
            r#"
[[listener.rule]]
priority = {priority}
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {{ type = "forward", target_group = "api" }}
"#
        ));
        let loaded = clean(&body);
        assert_eq!(loaded.config.listeners[0].rules[0].priority, priority);
    }
}

#[test]
fn more_than_three_values_in_a_condition() {
    clean(&with_conditions(&path_values(&["/a", "/b", "/c"])));
    assert_limit(
        &with_conditions(&path_values(&["/a", "/b", "/c", "/d"])),
        &format!("{COND0}.values"),
        "4 values; ALB allows 3 per path-pattern condition",
    );
}

#[test]
fn more_than_five_values_in_a_source_ip_condition() {
    clean(&with_conditions(
        r#"[{ field = "source-ip", values = ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16"] }]"#,
    ));
    // Six values break both the source-ip budget and the per-rule budget.
    assert_limits(
        &with_conditions(
            r#"[{ field = "source-ip", values = ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16", "10.5.0.0/16"] }]"#,
        ),
        &[
            (
                &format!("{COND0}.values"),
                "6 values; ALB allows 5 per source-ip condition",
            ),
            (
                &format!("{RULE}.conditions"),
                "6 condition values; ALB allows 5 per rule",
            ),
        ],
    );
}

#[test]
fn more_than_five_values_in_a_rule() {
    clean(&with_conditions(
        r#"[
  { field = "path-pattern", values = ["/a", "/b", "/c"] },
  { field = "http-request-method", values = ["GET", "PUT"] },
]"#,
    ));
    let p = assert_limit(
        &with_conditions(
            r#"[
  { field = "path-pattern", values = ["/a", "/b", "/c"] },
  { field = "http-request-method", values = ["GET", "PUT", "POST"] },
]"#,
        ),
        &format!("{RULE}.conditions"),
        "6 condition values; ALB allows 5 per rule",
    );
    assert!(p.fix.contains("split the rule"), "{p}");
}

#[test]
fn more_than_five_wildcards_in_a_rule() {
    clean(&with_conditions(
        r#"[
  { field = "path-pattern", values = ["/a*b*c*"] },
  { field = "host-header", values = ["*.x?.com"] },
]"#,
    ));
    assert_limit(
        &with_conditions(
            r#"[
  { field = "path-pattern", values = ["/a*b*c*"] },
  { field = "host-header", values = ["*.?x*.com"] },
]"#,
        ),
        &format!("{RULE}.conditions"),
        "6 wildcards (* and ?); ALB allows 5 per rule",
    );
}

#[test]
fn escaped_query_string_wildcards_are_not_counted() {
    // Six literal stars, written escaped: no wildcard at all.
    clean(&with_conditions(
        r#"[{ field = "query-string", values = [{ key = "a\\*\\*\\*", value = "\\*\\*\\*" }] }]"#,
    ));
    // Three real wildcards in the key and three in the value.
    assert_limit(
        &with_conditions(r#"[{ field = "query-string", values = [{ key = "a*?*", value = "?*?" }] }]"#),
        &format!("{RULE}.conditions"),
        "6 wildcards",
    );
}

#[test]
fn values_longer_than_128_characters() {
    let at_limit = format!("/{}", "a".repeat(127));
    clean(&with_conditions(&path_values(&[&at_limit])));
    let too_long = format!("/{}", "a".repeat(128));
    assert_limit(
        &with_conditions(&path_values(&[&too_long])),
        &format!("{COND0}.values[0]"),
        "at most 128 characters",
    );
    let long_header = "b".repeat(129);
    assert_limit(
        &with_conditions(&format!(
            r#"[{{ field = "http-header", name = "X-Env", values = ["{long_header}"] }}]"#
        )),
        &format!("{COND0}.values[0]"),
        "at most 128 characters",
    );
}

#[test]
fn empty_values() {
    assert_limit(
        &with_conditions(&path_values(&[""])),
        &format!("{COND0}.values[0]"),
        "cannot be empty",
    );
    assert_limit(
        &with_conditions(r#"[{ field = "query-string", values = [{ key = "", value = "v" }] }]"#),
        &format!("{COND0}.values[0].key"),
        "cannot be empty",
    );
}

#[test]
fn characters_that_are_not_visible_ascii() {
    for value in ["/a\tb", "/caf\u{e9}", "/bell\u{7}"] {
        assert_limit(
            &with_conditions(&path_values(&[value])),
            &format!("{COND0}.values[0]"),
            "visible ASCII",
        );
    }
    assert_limit(
        &with_conditions(r#"[{ field = "http-header", name = "X-Env", values = ["caf\u00e9"] }]"#),
        &format!("{COND0}.values[0]"),
        "visible ASCII",
    );
    // A space is visible ASCII for ALB.
    clean(&with_conditions(
        r#"[{ field = "http-header", name = "User-Agent", values = ["Mozilla/5.0 (X11*"] }]"#,
    ));
}

#[test]
fn host_header_character_set() {
    let p = assert_limit(
        &with_conditions(r#"[{ field = "host-header", values = ["api_v1.example.com"] }]"#),
        &format!("{COND0}.values[0]"),
        "not `_`",
    );
    assert!(p.fix.contains("regex_values"), "{p}");
    assert_limit(
        &with_conditions(r#"[{ field = "host-header", values = ["api.example.com:8080"] }]"#),
        &format!("{COND0}.values[0]"),
        "not `:`",
    );
}

#[test]
fn host_header_needs_a_dot() {
    let p = assert_limit(
        &with_conditions(r#"[{ field = "host-header", values = ["localhost"] }]"#),
        &format!("{COND0}.values[0]"),
        "need a `.`",
    );
    assert!(p.fix.contains("api.localhost"), "{p}");
    clean(&with_conditions(
        r#"[{ field = "host-header", values = ["api.localhost"] }]"#,
    ));
}

#[test]
fn host_header_ends_in_letters() {
    assert_limit(
        &with_conditions(r#"[{ field = "host-header", values = ["10.0.0.1"] }]"#),
        &format!("{COND0}.values[0]"),
        "letters after the last `.`",
    );
    assert_limit(
        &with_conditions(r#"[{ field = "host-header", values = ["api.example.c0m"] }]"#),
        &format!("{COND0}.values[0]"),
        "letters after the last `.`",
    );
    // Wildcards count as letters there.
    clean(&with_conditions(
        r#"[{ field = "host-header", values = ["www.example.*"] }]"#,
    ));
}

#[test]
fn path_pattern_character_set() {
    let p = assert_limit(
        &with_conditions(&path_values(&["/a%20b"])),
        &format!("{COND0}.values[0]"),
        "not `%`",
    );
    assert!(p.fix.contains("regex_values"), "{p}");
    assert_limit(
        &with_conditions(&path_values(&["/a b"])),
        &format!("{COND0}.values[0]"),
        "not ` `",
    );
    clean(&with_conditions(&path_values(&["/a_b-c.d$e/~f\"g'h@i:j+k&l*?"])));
}

#[test]
fn http_header_name_rules() {
    let long = format!("X-{}", "n".repeat(39));
    assert_limit(
        &with_conditions(&format!(
            r#"[{{ field = "http-header", name = "{long}", values = ["v"] }}]"#
        )),
        &format!("{COND0}.name"),
        "at most 40 characters",
    );
    let p = assert_limit(
        &with_conditions(r#"[{ field = "http-header", name = "Host", values = ["a.example.com"] }]"#),
        &format!("{COND0}.name"),
        "Host",
    );
    assert!(p.fix.contains("host-header"), "{p}");
    assert_limit(
        &with_conditions(r#"[{ field = "http-header", name = "X-Env*", values = ["v"] }]"#),
        &format!("{COND0}.name"),
        "no wildcards",
    );
}

#[test]
fn method_character_set() {
    let p = assert_limit(
        &with_conditions(r#"[{ field = "http-request-method", values = ["get"] }]"#),
        &format!("{COND0}.values[0]"),
        "A-Z, '-' and '_', not `get`",
    );
    assert!(p.fix.contains("upper case"), "{p}");
    let long = "M".repeat(41);
    assert_limit(
        &with_conditions(&format!(
            r#"[{{ field = "http-request-method", values = ["{long}"] }}]"#
        )),
        &format!("{COND0}.values[0]"),
        "up to 40",
    );
    // Custom methods are fine in A-Z, '-' and '_'.
    clean(&with_conditions(
        r#"[{ field = "http-request-method", values = ["CUSTOM_METHOD-X"] }]"#,
    ));
}

#[test]
fn source_ip_broadcast_and_bare_addresses() {
    assert_limit(
        &with_conditions(r#"[{ field = "source-ip", values = ["255.255.255.255/32"] }]"#),
        &format!("{COND0}.values[0]"),
        "255.255.255.255/32",
    );
    let p = assert_limit(
        &with_conditions(r#"[{ field = "source-ip", values = ["10.1.2.3"] }]"#),
        &format!("{COND0}.values[0]"),
        "CIDR notation",
    );
    assert_eq!(p.fix, "write 10.1.2.3/32");
    let p = assert_limit(
        &with_conditions(r#"[{ field = "source-ip", values = ["::1"] }]"#),
        &format!("{COND0}.values[0]"),
        "CIDR notation",
    );
    assert_eq!(p.fix, "write ::1/128");
}

#[test]
fn one_condition_per_field_except_headers_and_query_strings() {
    let cases = [
        (
            "host-header",
            r#"{ field = "host-header", values = ["a.example.com"] }"#,
        ),
        ("path-pattern", r#"{ field = "path-pattern", values = ["/a"] }"#),
        (
            "http-request-method",
            r#"{ field = "http-request-method", values = ["GET"] }"#,
        ),
        ("source-ip", r#"{ field = "source-ip", values = ["10.0.0.0/8"] }"#),
    ];
    for (field, condition) in cases {
        let p = assert_limit(
            &with_conditions(&format!("[{condition}, {condition}]")),
            &format!("{RULE}.conditions"),
            &format!("2 `{field}` conditions; ALB allows one per rule"),
        );
        assert!(p.fix.contains(&format!("one `{field}` condition")), "{p}");
    }
    // Several http-header and query-string conditions are fine.
    clean(&with_conditions(
        r#"[
  { field = "http-header", name = "X-A", values = ["1"] },
  { field = "http-header", name = "X-B", values = ["2"] },
  { field = "query-string", values = [{ key = "a", value = "1" }] },
  { field = "query-string", values = [{ value = "2" }] },
]"#,
    ));
}

#[test]
fn rule_without_conditions() {
    let p = assert_limit(
        &with_rules(
            r#"
[[listener.rule]]
priority = 10
action = { type = "forward", target_group = "api" }
"#,
        ),
        &format!("{RULE}.conditions"),
        "ALB requires at least one",
    );
    assert!(p.fix.contains("default_action"), "{p}");
}

fn many_rules(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| {
            format!(
                "[[listener.rule]]\npriority = {}\nconditions = [{{ field = \"path-pattern\", values = [\"/r{i}\"] }}]\naction = {{ type = \"forward\", target_group = \"api\" }}\n",
                i + 1
            )
        })
        .collect()
}

fn two_listeners(first: usize, second: usize) -> String {
    format!(
        r#"
[[listener]]
name = "a"
address = "127.0.0.1:8080"
{}
[[listener]]
name = "b"
address = "127.0.0.1:8081"
{}
[target_group.api]
"#,
        many_rules(0, first),
        many_rules(0, second)
    )
}

#[test]
fn more_than_100_rules_over_all_listeners() {
    let loaded = clean(&two_listeners(60, 40));
    let total: usize = loaded.config.listeners.iter().map(|l| l.rules.len()).sum();
    assert_eq!(total, 100);
    assert_limit(
        &two_listeners(60, 41),
        "listener",
        "101 rules; ALB allows 100 per load balancer",
    );
}

#[test]
fn transforms_of_the_same_type_twice() {
    assert_limit(
        &with_rules(
            r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/x"] }]
transforms = [
  { type = "url-rewrite", rewrites = [{ regex = "^/x$", replace = "/y" }] },
  { type = "url-rewrite", rewrites = [{ regex = "^/y$", replace = "/z" }] },
]
action = { type = "forward", target_group = "api" }
"#,
        ),
        &format!("{RULE}.transforms[1]"),
        "a second `url-rewrite` transform",
    );
}

#[test]
fn regex_values_limits() {
    let long = format!("^/{}$", "a".repeat(126));
    assert_limit(
        &with_conditions(&format!(
            r#"[{{ field = "path-pattern", regex_values = ["{long}"] }}]"#
        )),
        &format!("{COND0}.regex_values[0]"),
        "at most 128 characters",
    );
    assert_limit(
        &with_conditions(r#"[{ field = "path-pattern", regex_values = ["^/\\p{L}+$"] }]"#),
        &format!("{COND0}.regex_values[0]"),
        "\\p{..}",
    );
}

// ---------------------------------------------------------------- actions

#[test]
fn fixed_response_status_outside_2xx_4xx_5xx() {
    let p = assert_limit(
        &with_action(r#"{ type = "fixed-response", status_code = 302 }"#),
        &format!("{ACTION}.status_code"),
        "2xx, 4xx or 5xx, not 302",
    );
    assert!(p.fix.contains("redirect"), "{p}");
    // A 1xx cannot end an exchange: always an error, not a limit.
    let p = assert_error(
        &with_action(r#"{ type = "fixed-response", status_code = 100 }"#),
        &format!("{ACTION}.status_code"),
        "not a final HTTP status code",
    );
    assert!(p.fix.contains("1xx"), "{p}");
    for code in ["200", "\"404\"", "503"] {
        let loaded = clean(&with_action(&format!(
            r#"{{ type = "fixed-response", status_code = {code} }}"#
        )));
        let action = &loaded.config.listeners[0].rules[0].action;
        assert_eq!(action.kind(), "fixed-response");
    }
}

#[test]
fn fixed_response_content_type_not_one_of_albs_five() {
    let p = assert_limit(
        &with_action(r#"{ type = "fixed-response", status_code = 200, content_type = "text/xml" }"#),
        &format!("{ACTION}.content_type"),
        "not `text/xml`",
    );
    assert!(p.message.contains("application/json"), "{p}");
    for ct in [
        "text/plain",
        "text/css",
        "text/html",
        "application/javascript",
        "application/json",
    ] {
        clean(&with_action(&format!(
            r#"{{ type = "fixed-response", status_code = 200, content_type = "{ct}" }}"#
        )));
    }
}

#[test]
fn fixed_response_body_over_1024_characters() {
    let at_limit = "b".repeat(1024);
    clean(&with_action(&format!(
        r#"{{ type = "fixed-response", status_code = 200, message_body = "{at_limit}" }}"#
    )));
    // Characters, not bytes: 1024 two-byte characters are within the limit.
    let wide = "\u{e9}".repeat(1024);
    clean(&with_action(&format!(
        r#"{{ type = "fixed-response", status_code = 200, message_body = "{wide}" }}"#
    )));
    let over = "b".repeat(1025);
    assert_limit(
        &with_action(&format!(
            r#"{{ type = "fixed-response", status_code = 200, message_body = "{over}" }}"#
        )),
        &format!("{ACTION}.message_body"),
        "at most 1024 characters",
    );
}

const HTTPS_LISTENER: &str = r#"
[[listener]]
name = "secure"
address = "127.0.0.1:8443"
protocol = "HTTPS"
certificates = [{ cert_file = "cert.pem", key_file = "key.pem" }]
"#;

#[test]
fn redirect_from_https_to_http() {
    let body = format!(
        r#"{HTTPS_LISTENER}
[[listener.rule]]
priority = 1
conditions = [{{ field = "path-pattern", values = ["/old"] }}]
action = {{ type = "redirect", protocol = "HTTP", port = 80, status_code = "HTTP_301" }}
"#
    );
    assert_limit(&body, "listener[0].rule[0].action.protocol", "from HTTPS to HTTP");
    // HTTP -> HTTPS is the usual redirect and is fine.
    clean(&with_action(
        r#"{ type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }"#,
    ));
}

#[test]
fn redirect_that_changes_nothing() {
    let p = assert_limit(
        &with_action(r#"{ type = "redirect", status_code = "HTTP_302" }"#),
        ACTION,
        "changes none of protocol, host, port and path",
    );
    assert!(p.fix.contains("change at least one"), "{p}");
    // Spelling out the listener's own protocol, port, host and path changes nothing either.
    assert_limit(
        &with_action(
            r##"{ type = "redirect", protocol = "HTTP", port = 8080, host = "#{host}", path = "/#{path}", query = "changed", status_code = "HTTP_301" }"##,
        ),
        ACTION,
        "changes none",
    );
    for changed in [
        r#"protocol = "HTTPS""#,
        "port = 9090",
        r#"host = "example.com""#,
        r##"path = "/new/#{path}""##,
    ] {
        clean(&with_action(&format!(
            r#"{{ type = "redirect", {changed}, status_code = "HTTP_301" }}"#
        )));
    }
}

#[test]
fn redirect_query_with_a_leading_question_mark() {
    let body =
        with_action(r#"{ type = "redirect", protocol = "HTTPS", query = "?a=1", status_code = "HTTP_301" }"#);
    let p = assert_limit(&body, &format!("{ACTION}.query"), "no leading `?`");
    assert!(p.fix.contains("remove"), "{p}");
    // Without strict_alb the `?` is dropped, so Location does not get two.
    let loaded = toml(&body).unwrap();
    let hostalb_config::Action::Redirect(r) = &loaded.config.listeners[0].rules[0].action else {
        panic!("expected a redirect");
    };
    assert_eq!(r.query.source, "a=1");
}

#[test]
fn redirect_status_other_than_301_and_302() {
    for code in ["HTTP_307", "HTTP_308", "HTTP_303"] {
        let p = assert_limit(
            &with_action(&format!(
                r#"{{ type = "redirect", protocol = "HTTPS", status_code = "{code}" }}"#
            )),
            &format!("{ACTION}.status_code"),
            "HTTP_301 or HTTP_302 only",
        );
        assert!(p.message.contains(&code[5..]), "{p}");
    }
}

#[test]
fn redirect_components_longer_than_128() {
    let long = "h".repeat(125);
    assert_limit(
        &with_action(&format!(
            r#"{{ type = "redirect", host = "{long}.com", status_code = "HTTP_301" }}"#
        )),
        &format!("{ACTION}.host"),
        "at most 128 characters",
    );
    assert_limit(
        &with_action(&format!(
            r#"{{ type = "redirect", path = "/{long}/abc", status_code = "HTTP_301" }}"#
        )),
        &format!("{ACTION}.path"),
        "at most 128 characters",
    );
}

fn weighted_groups(n: usize, weight: &str) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| format!(r#"{{ name = "g{i}", weight = {weight} }}"#))
        .collect();
    let groups: String = (0..n).map(|i| format!("[target_group.g{i}]\n")).collect();
    format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {{ type = "forward", target_groups = [{}] }}

{groups}"#,
        list.join(", ")
    )
}

#[test]
fn weights_above_999() {
    clean(&weighted_groups(2, "999"));
    let p = assert_limit(
        &weighted_groups(1, "1000"),
        &format!("{ACTION}.target_groups[0].weight"),
        "0 to 999, not 1000",
    );
    assert!(p.fix.contains("scale"), "{p}");
}

#[test]
fn more_than_five_target_groups_in_a_forward() {
    let loaded = clean(&weighted_groups(5, "1"));
    let hostalb_config::Action::Forward(f) = &loaded.config.listeners[0].rules[0].action else {
        panic!("expected a forward");
    };
    assert_eq!(f.target_groups.len(), 5);
    assert_limit(
        &weighted_groups(6, "1"),
        &format!("{ACTION}.target_groups"),
        "6 target groups; ALB allows 5 per forward",
    );
}

#[test]
fn all_zero_weights() {
    let p = assert_limit(
        &weighted_groups(3, "0"),
        &format!("{ACTION}.target_groups"),
        "every weight is 0",
    );
    assert!(p.fix.contains("above 0"), "{p}");
    // One zero among others is an ordinary way to drain a group.
    let loaded = clean(&with_rules(
        r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/x"] }]
action = { type = "forward", target_groups = [{ name = "api", weight = 0 }, { name = "other", weight = 5 }] }

[target_group.other]
"#,
    ));
    let hostalb_config::Action::Forward(f) = &loaded.config.listeners[0].rules[0].action else {
        panic!("expected a forward");
    };
    let weights: Vec<u32> = f.target_groups.iter().map(|g| g.weight).collect();
    assert_eq!(weights, vec![0, 5]);
}

#[test]
fn group_stickiness_duration_out_of_range() {
    for seconds in ["604801", "0.5"] {
        assert_limit(
            &with_action(&format!(
                r#"{{ type = "forward", target_group = "api", stickiness_seconds = {seconds} }}"#
            )),
            &format!("{ACTION}.stickiness_seconds"),
            "1 to 604800 seconds",
        );
    }
    let p = assert_limit(
        &with_action(r#"{ type = "forward", target_group = "api", stickiness_seconds = 0 }"#),
        &format!("{ACTION}.stickiness_seconds"),
        "0 turns it off",
    );
    assert!(p.fix.contains("remove stickiness_seconds"), "{p}");
}

#[test]
fn weighted_forward_and_target_group_stickiness() {
    let doc = |stickiness: &str, action_extra: &str| {
        with_rules(&format!(
            r#"
[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {{ type = "forward", target_groups = [{{ name = "api", weight = 1 }}, {{ name = "sticky", weight = 1 }}]{action_extra} }}

[target_group.sticky]
stickiness = {stickiness}
"#
        ))
    };
    assert_limit(
        &doc(
            r#"{ type = "app_cookie", cookie_name = "SESSION" }"#,
            ", stickiness_seconds = 60",
        ),
        ACTION,
        "app_cookie",
    );
    let p = assert_limit(
        &doc(r#"{ type = "lb_cookie" }"#, ""),
        ACTION,
        "requires group stickiness",
    );
    assert!(p.fix.contains("stickiness_seconds"), "{p}");
    clean(&doc(r#"{ type = "lb_cookie" }"#, ", stickiness_seconds = 60"));
}

// ---------------------------------------------------------------- target groups

#[test]
fn stickiness_duration_out_of_range() {
    for seconds in ["604801", "0.5"] {
        assert_limit(
            &with_group(&format!(
                r#"stickiness = {{ type = "lb_cookie", duration_seconds = {seconds} }}"#
            )),
            &format!("{GROUP}.stickiness.duration_seconds"),
            "1 to 604800 seconds",
        );
    }
    assert_limit(
        &with_group(
            r#"stickiness = { type = "app_cookie", cookie_name = "SID", duration_seconds = 700000 }"#,
        ),
        &format!("{GROUP}.stickiness.duration_seconds"),
        "not 700000",
    );
    clean(&with_group(
        r#"stickiness = { type = "lb_cookie", duration_seconds = 604800 }"#,
    ));
}

#[test]
fn slow_start_outside_30_to_900() {
    for seconds in ["10", "901"] {
        let p = assert_limit(
            &with_group(&format!("slow_start_seconds = {seconds}")),
            &format!("{GROUP}.slow_start_seconds"),
            "from 30 to 900 seconds",
        );
        assert!(p.message.contains(&format!("not {seconds}")), "{p}");
    }
    for seconds in ["0", "30", "900"] {
        clean(&with_group(&format!("slow_start_seconds = {seconds}")));
    }
}

#[test]
fn slow_start_with_least_outstanding_requests() {
    let p = assert_limit(
        &with_group("algorithm = \"least_outstanding_requests\"\nslow_start_seconds = 60"),
        &format!("{GROUP}.slow_start_seconds"),
        "least_outstanding_requests",
    );
    assert!(p.fix.contains("round_robin"), "{p}");
    clean(&with_group(
        "algorithm = \"least_outstanding_requests\"\nslow_start_seconds = 0",
    ));
}

#[test]
fn health_check_interval_range() {
    for (interval, timeout) in [("4", "2"), ("301", "5")] {
        assert_limit(
            &with_group(&format!(
                "[target_group.api.health_check]\ninterval_seconds = {interval}\ntimeout_seconds = {timeout}"
            )),
            &format!("{HC}.interval_seconds"),
            &format!("from 5 to 300 seconds, not {interval}"),
        );
    }
    clean(&with_group(
        "[target_group.api.health_check]\ninterval_seconds = 5\ntimeout_seconds = 2",
    ));
    clean(&with_group(
        "[target_group.api.health_check]\ninterval_seconds = 300\ntimeout_seconds = 120",
    ));
}

#[test]
fn health_check_timeout_range() {
    for (interval, timeout) in [("30", "1"), ("300", "121")] {
        assert_limit(
            &with_group(&format!(
                "[target_group.api.health_check]\ninterval_seconds = {interval}\ntimeout_seconds = {timeout}"
            )),
            &format!("{HC}.timeout_seconds"),
            &format!("from 2 to 120 seconds, not {timeout}"),
        );
    }
}

#[test]
fn fractional_health_check_seconds_are_only_alb_limits() {
    // Fast checks for tests: beyond ALB's ranges, but hostalb runs them.
    assert_limits(
        &with_group("[target_group.api.health_check]\ninterval_seconds = 0.5\ntimeout_seconds = 0.25"),
        &[
            (&format!("{HC}.interval_seconds"), "not 0.5"),
            (&format!("{HC}.timeout_seconds"), "not 0.25"),
        ],
    );
    let loaded = toml(&with_group(
        "[target_group.api.health_check]\ninterval_seconds = 0.5\ntimeout_seconds = 0.25",
    ))
    .unwrap();
    let hc = &loaded.config.target_groups[0].health_check;
    assert_eq!(hc.interval, std::time::Duration::from_millis(500));
    assert_eq!(hc.timeout, std::time::Duration::from_millis(250));
}

#[test]
fn health_check_threshold_ranges() {
    for key in ["healthy_threshold", "unhealthy_threshold"] {
        for n in [1, 11] {
            assert_limit(
                &with_group(&format!("[target_group.api.health_check]\n{key} = {n}")),
                &format!("{HC}.{key}"),
                &format!("from 2 to 10, not {n}"),
            );
        }
        for n in [2, 10] {
            clean(&with_group(&format!(
                "[target_group.api.health_check]\n{key} = {n}"
            )));
        }
    }
}

#[test]
fn matcher_codes_outside_200_to_499() {
    for matcher in ["100", "200-500", "200,503"] {
        assert_limit(
            &with_group(&format!(
                "[target_group.api.health_check]\nmatcher = \"{matcher}\""
            )),
            &format!("{HC}.matcher"),
            "ALB matches codes 200-499",
        );
    }
    let loaded = clean(&with_group(
        "[target_group.api.health_check]\nmatcher = \"200-299, 404\"",
    ));
    let m = &loaded.config.target_groups[0].health_check.matcher;
    assert_eq!(m.ranges, vec![(200, 299), (404, 404)]);
    assert!(m.matches(404) && m.matches(250) && !m.matches(300));
}

#[test]
fn target_group_name_rules() {
    for name in ["api_v2", "-api", "api-", "a23456789012345678901234567890123"] {
        let doc = format!(
            r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
default_action = {{ type = "forward", target_group = "{name}" }}

[target_group."{name}"]
"#
        );
        let p = assert_limit(
            &doc,
            &format!("target_group.{name}"),
            "1-32 letters, digits and inner hyphens",
        );
        assert!(p.message.contains(&format!("`{name}`")), "{p}");
    }
    let ok = "a2345678901234567890123456789-32";
    clean(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
default_action = {{ type = "forward", target_group = "{ok}" }}

[target_group.{ok}]
"#
    ));
}

#[test]
fn duplicate_static_target() {
    let p = assert_limit(
        &with_group(r#"targets = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9001"]"#),
        &format!("{GROUP}.targets[2]"),
        "registered twice",
    );
    assert!(p.fix.contains("once"), "{p}");
    let loaded = toml(&with_group(
        r#"targets = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9001"]"#,
    ))
    .unwrap();
    assert_eq!(loaded.config.target_groups[0].targets.len(), 2);
}

#[test]
fn deregistration_delay_over_3600() {
    assert_limit(
        &with_group("deregistration_delay_seconds = 3601"),
        &format!("{GROUP}.deregistration_delay_seconds"),
        "from 0 to 3600 seconds",
    );
    clean(&with_group("deregistration_delay_seconds = 0"));
}

// ---------------------------------------------------------------- listeners

#[test]
fn listener_timeouts_outside_albs_ranges() {
    let doc = |line: &str| format!("[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n{line}\n");
    assert_limit(
        &doc("idle_timeout_seconds = 4001"),
        "listener[0].idle_timeout_seconds",
        "from 1 to 4000 seconds",
    );
    assert_limit(
        &doc("client_keep_alive_seconds = 59"),
        "listener[0].client_keep_alive_seconds",
        "from 60 to 604800 seconds",
    );
}

#[test]
fn enum_values_spelled_in_another_case() {
    let p = assert_limit(
        "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\nprotocol = \"http\"\n",
        "listener[0].protocol",
        "`http` is spelled `HTTP` by ALB",
    );
    assert_eq!(p.fix, "use the exact spelling");
    let p = assert_limit(
        "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\nxff_mode = \"PRESERVE\"\n",
        "listener[0].xff_mode",
        "`PRESERVE` is spelled `preserve` by ALB",
    );
    assert!(
        !p.message.contains("append"),
        "names only the matching spelling: {p}"
    );
    let loaded =
        toml("[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\nxff_mode = \"PRESERVE\"\n")
            .unwrap();
    assert_eq!(
        loaded.config.listeners[0].xff_mode,
        hostalb_config::XffMode::Preserve
    );
}
