//! ALB's listener/target protocol combinations (alb-spec §5) and the gRPC health-check
//! matcher: HTTP2 and GRPC groups only behind HTTPS listeners, one protocol version per
//! forward, `GrpcCode` 0-99 with `12` by default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hostalb_config::ProtocolVersion;

const HTTPS_LISTENER: &str = r#"
[[listener]]
name = "tls"
address = "127.0.0.1:8443"
protocol = "HTTPS"
certificates = [{ cert_file = "cert.pem", key_file = "key.pem" }]
"#;

fn https_forward_to(groups: &str, action: &str) -> String {
    format!("{HTTPS_LISTENER}default_action = {action}\n{groups}")
}

#[test]
fn grpc_and_http2_groups_are_refused_behind_an_http_listener() {
    for version in ["GRPC", "HTTP2"] {
        let p = assert_only_error(
            &with_group(&format!(
                "protocol_version = \"{version}\"\ntargets = [\"127.0.0.1:9001\"]"
            )),
            "listener[0].default_action.target_group",
            &format!("protocol_version = \"{version}\""),
        );
        assert!(p.message.contains("only behind HTTPS listeners"), "{p}");
        assert!(p.message.contains("464"), "{p}");
        assert!(p.fix.contains("protocol = \"HTTPS\""), "{p}");
        assert!(p.fix.contains("protocol_version = \"HTTP1\""), "{p}");
    }
}

#[test]
fn the_refusal_names_the_rule_and_the_weighted_entry() {
    let doc = with_rules(
        r#"
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/x"] }]
action = { type = "forward", target_groups = [{ name = "api", weight = 1 }, { name = "rpc", weight = 1 }] }

[target_group.rpc]
protocol_version = "GRPC"
"#,
    );
    let found = problems(&doc);
    let hits = at(&found, "listener[0].rule[0].action.target_groups[1]");
    assert!(
        hits.iter()
            .any(|p| p.message.contains("only behind HTTPS listeners")),
        "{found:#?}"
    );
    assert!(
        hits.iter()
            .any(|p| p.message.contains("one protocol version per forward")),
        "{found:#?}"
    );
}

#[test]
fn grpc_and_http2_groups_are_accepted_behind_an_https_listener() {
    for (version, expected) in [("GRPC", ProtocolVersion::Grpc), ("HTTP2", ProtocolVersion::Http2)] {
        let doc = https_forward_to(
            &format!("[target_group.rpc]\nprotocol = \"HTTPS\"\nprotocol_version = \"{version}\"\n"),
            r#"{ type = "forward", target_group = "rpc" }"#,
        );
        let loaded = clean(&doc);
        let tg = loaded
            .config
            .target_groups
            .iter()
            .find(|g| g.name == "rpc")
            .expect("the group");
        assert_eq!(tg.protocol_version, expected);
        assert_eq!(tg.health_check.protocol_version, expected);
    }
}

#[test]
fn a_forward_mixing_protocol_versions_is_refused() {
    let doc = https_forward_to(
        r#"
[target_group.rpc]
protocol_version = "GRPC"

[target_group.web]
protocol_version = "HTTP1"
"#,
        r#"{ type = "forward", target_groups = [{ name = "rpc", weight = 1 }, { name = "web", weight = 1 }] }"#,
    );
    let p = assert_only_error(
        &doc,
        "listener[0].default_action.target_groups[1]",
        "one protocol version per forward",
    );
    assert!(p.message.contains("`web`") && p.message.contains("`rpc`"), "{p}");
}

#[test]
fn grpc_health_checks_default_to_the_alb_path_and_code_12() {
    let doc = https_forward_to(
        "[target_group.rpc]\nprotocol_version = \"GRPC\"\n",
        r#"{ type = "forward", target_group = "rpc" }"#,
    );
    let loaded = clean(&doc);
    let hc = &loaded.config.target_groups[0].health_check;
    assert_eq!(hc.path, "/AWS.ALB/healthcheck");
    assert_eq!(hc.matcher.source, "12");
    assert!(hc.matcher.matches(12) && !hc.matcher.matches(0));
}

#[test]
fn grpc_matchers_take_codes_0_to_99() {
    let grpc_group = |matcher: &str| {
        https_forward_to(
            &format!(
                "[target_group.rpc]\nprotocol_version = \"GRPC\"\n[target_group.rpc.health_check]\nmatcher = \"{matcher}\"\n"
            ),
            r#"{ type = "forward", target_group = "rpc" }"#,
        )
    };
    for matcher in ["0", "0-99", "0,12", "99"] {
        clean(&grpc_group(matcher));
    }
    for matcher in ["200", "0-100"] {
        let p = assert_limit(
            &grpc_group(matcher),
            "target_group.rpc.health_check.matcher",
            "0-99",
        );
        assert!(p.fix.contains("gRPC status codes"), "{p}");
    }
    let p = assert_only_error(
        &grpc_group("x"),
        "target_group.rpc.health_check.matcher",
        "`x` is not a code",
    );
    assert!(p.fix.contains("\"12\""), "{p}");
}

#[test]
fn http_groups_keep_http_codes() {
    let p = assert_limit(
        &with_group("[target_group.api.health_check]\nmatcher = \"12\""),
        "target_group.api.health_check.matcher",
        "200-499",
    );
    assert!(p.fix.contains("200 to 499"), "{p}");
}
