//! The importer on hand-written describe output; `tests/e2e/import.rs` runs it on the CLI's
//! output against moto.

use super::*;

fn input(origin: &str, text: &str) -> Input {
    Input {
        origin: origin.into(),
        name: None,
        text: text.into(),
    }
}

const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup";
const LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop/50dc6c495c0c9188";
const LISTENER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";

fn listeners(protocol: &str, port: u16) -> String {
    format!(
        r#"{{"Listeners":[{{"ListenerArn":"{LISTENER}","LoadBalancerArn":"{LB}","Port":{port},"Protocol":"{protocol}",
        "Certificates":[{{"CertificateArn":"arn:aws:acm:us-east-1:123456789012:certificate/3f1b"}}],
        "DefaultActions":[{{"Type":"fixed-response","FixedResponseConfig":{{"StatusCode":"404","ContentType":"text/plain","MessageBody":"none"}}}}]}}]}}"#
    )
}

fn groups() -> String {
    format!(
        r#"{{"TargetGroups":[
        {{"TargetGroupArn":"{TG}/api/1","TargetGroupName":"api","Protocol":"HTTP","Port":80,"HealthCheckProtocol":"HTTP",
          "HealthCheckPort":"traffic-port","HealthCheckEnabled":true,"HealthCheckIntervalSeconds":10,"HealthCheckTimeoutSeconds":3,
          "HealthyThresholdCount":2,"UnhealthyThresholdCount":3,"HealthCheckPath":"/health","Matcher":{{"HttpCode":"200-299"}},
          "TargetType":"instance","ProtocolVersion":"HTTP1"}},
        {{"TargetGroupArn":"{TG}/blue/2","TargetGroupName":"blue","Protocol":"HTTP","HealthCheckPort":"8081"}},
        {{"TargetGroupArn":"{TG}/green/3","TargetGroupName":"green","Protocol":"HTTP"}},
        {{"TargetGroupArn":"{TG}/tcp/4","TargetGroupName":"tcp","Protocol":"TCP"}}]}}"#
    )
}

fn rules() -> String {
    format!(
        r##"{{"Rules":[
        {{"RuleArn":"{RULE}/1","Priority":"10","IsDefault":false,
          "Conditions":[{{"Field":"path-pattern","Values":["/api/*"],"PathPatternConfig":{{"Values":["/api/*","/v2/*"]}}}},
                        {{"Field":"http-header","HttpHeaderConfig":{{"HttpHeaderName":"X-Env","Values":["canary*"],"RegexValues":["^c"]}}}}],
          "Actions":[{{"Type":"authenticate-oidc","Order":1,"AuthenticateOidcConfig":{{"Issuer":"https://idp"}}}},
                     {{"Type":"forward","Order":2,"TargetGroupArn":"{TG}/api/1",
                       "ForwardConfig":{{"TargetGroups":[{{"TargetGroupArn":"{TG}/api/1","Weight":1}}],"TargetGroupStickinessConfig":{{"Enabled":false}}}}}}]}},
        {{"RuleArn":"{RULE}/2","Priority":"20","IsDefault":false,
          "Conditions":[{{"Field":"host-header","HostHeaderConfig":{{"Values":["*.example.com"]}}}},
                        {{"Field":"http-request-method","HttpRequestMethodConfig":{{"Values":["GET","HEAD"]}}}},
                        {{"Field":"query-string","QueryStringConfig":{{"Values":[{{"Key":"v","Value":"2"}},{{"Value":"beta"}}]}}}},
                        {{"Field":"source-ip","SourceIpConfig":{{"Values":["10.0.0.0/8"]}}}}],
          "Actions":[{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"TargetGroupArn":"{TG}/blue/2","Weight":90}},{{"TargetGroupArn":"{TG}/green/3"}}],
                       "TargetGroupStickinessConfig":{{"Enabled":true,"DurationSeconds":600}}}}}}],
          "Transforms":[{{"Type":"url-rewrite","UrlRewriteConfig":{{"Rewrites":[{{"Regex":"^/v2/(.*)$","Replace":"/$1"}}]}}}}]}},
        {{"RuleArn":"{RULE}/3","Priority":"30","IsDefault":false,
          "Conditions":[{{"Field":"path-pattern","PathPatternConfig":{{"Values":["/old/*"]}}}}],
          "Actions":[{{"Type":"redirect","RedirectConfig":{{"Protocol":"HTTPS","Port":"443","Host":"#{{host}}","Path":"/new/#{{path}}","Query":"#{{query}}","StatusCode":"HTTP_301"}}}}]}},
        {{"RuleArn":"{RULE}/4","Priority":"40","IsDefault":false,
          "Conditions":[{{"Field":"path-pattern","PathPatternConfig":{{"Values":["/tcp/*"]}}}}],
          "Actions":[{{"Type":"forward","TargetGroupArn":"{TG}/tcp/4"}}]}},
        {{"RuleArn":"{RULE}/5","Priority":"default","IsDefault":true,"Conditions":[],
          "Actions":[{{"Type":"fixed-response","FixedResponseConfig":{{"StatusCode":"404"}}}}]}}]}}"##
    )
}

const ATTRIBUTES: &str = r#"{"Attributes":[
    {"Key":"deregistration_delay.timeout_seconds","Value":"30"},{"Key":"slow_start.duration_seconds","Value":"60"},
    {"Key":"load_balancing.algorithm.type","Value":"round_robin"},{"Key":"load_balancing.cross_zone.enabled","Value":"use_load_balancer_configuration"},
    {"Key":"stickiness.enabled","Value":"true"},{"Key":"stickiness.type","Value":"app_cookie"},
    {"Key":"stickiness.app_cookie.cookie_name","Value":"SESSIONID"},{"Key":"stickiness.app_cookie.duration_seconds","Value":"600"},
    {"Key":"stickiness.lb_cookie.duration_seconds","Value":"86400"},
    {"Key":"load_balancing.algorithm.anomaly_mitigation","Value":"on"},{"Key":"brand.new.attribute","Value":"x"}]}"#;

const SERVICES: &str = r#"{"services":[{"serviceName":"shop-api",
    "taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/shop-api:4",
    "loadBalancers":[{"targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/1","containerName":"app","containerPort":8080}]},
    {"serviceName":"worker","taskDefinition":"worker:1","loadBalancers":[]}],"failures":[]}"#;

const TASK_DEFINITION: &str = r#"{"taskDefinition":{"family":"shop-api","revision":4,"networkMode":"bridge",
    "containerDefinitions":[{"name":"app","portMappings":[{"containerPort":8080,"hostPort":0}]}]}}"#;

fn all() -> Vec<Input> {
    let mut attributes = input("api-attributes.json", ATTRIBUTES);
    attributes.name = Some(format!("{TG}/api/1"));
    vec![
        input("listeners.json", &listeners("HTTP", 80)),
        input("rules.json", &rules()),
        input("groups.json", &groups()),
        attributes,
        input("services.json", SERVICES),
        input("task-definition.json", TASK_DEFINITION),
    ]
}

fn check(toml: &str) -> hostalb_config::Loaded {
    hostalb_config::parse(toml, hostalb_config::Format::Toml, "imported")
        .unwrap_or_else(|e| panic!("{e}\n{:#?}\n{toml}", e.problems()))
}

#[test]
fn every_condition_and_action_comes_over_and_validates() {
    let out = import(&all()).unwrap();
    let loaded = check(&out.toml);
    let config = &loaded.config;
    let l = &config.listeners[0];
    assert_eq!(l.name, "shop-80");
    assert_eq!(l.address.to_string(), "127.0.0.1:80");
    assert_eq!(
        l.rules.len(),
        3,
        "the rule to a TCP group is left out:\n{}",
        out.toml
    );
    let text = &out.toml;
    assert!(
        text.contains(r#"{ field = "path-pattern", values = ["/api/*", "/v2/*"] }"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"{ field = "http-header", name = "X-Env", values = ["canary*"], regex_values = ["^c"] }"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"{ field = "query-string", values = [{ key = "v", value = "2" }, { value = "beta" }] }"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"{ field = "source-ip", values = ["10.0.0.0/8"] }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{ field = "http-request-method", values = ["GET", "HEAD"] }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"action = { type = "forward", target_group = "api" }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"target_groups = [{ name = "blue", weight = 90 }, { name = "green", weight = 1 }], stickiness_seconds = 600"#),
        "{text}"
    );
    assert!(
        text.contains(r##"{ type = "redirect", protocol = "HTTPS", port = "443", host = "#{host}", path = "/new/#{path}", query = "#{query}", status_code = "HTTP_301" }"##),
        "{text}"
    );
    assert!(
        text.contains(r#"{ type = "url-rewrite", rewrites = [{ regex = "^/v2/(.*)$", replace = "/$1" }] }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "none" }"#),
        "{text}"
    );
    let api = config.target_groups.iter().find(|g| g.name == "api").unwrap();
    assert_eq!(api.deregistration_delay.as_secs(), 30);
    assert_eq!(api.slow_start.as_secs(), 60);
    assert_eq!(api.health_check.interval.as_secs(), 10);
    assert_eq!(api.health_check.healthy_threshold, 2);
    assert!(
        matches!(api.stickiness, Some(hostalb_config::Stickiness::AppCookie { ref cookie_name, .. }) if cookie_name == "SESSIONID")
    );
    let docker = api.docker.as_ref().unwrap();
    assert_eq!(
        docker.labels["com.amazonaws.ecs.task-definition-family"],
        "shop-api"
    );
    assert_eq!(docker.labels["com.amazonaws.ecs.container-name"], "app");
    assert_eq!(docker.container_port, Some(8080));
    assert!(!text.contains("[target_group.tcp]"), "{text}");
    assert!(text.contains("port = 8081"), "{text}");
}

#[test]
fn what_cannot_come_over_is_noted() {
    let out = import(&all()).unwrap();
    let notes = out
        .notes
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for wanted in [
        "rule 10: authenticate-oidc action left out",
        "protocol TCP",
        "forwards to `arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tcp/4`, which is not imported",
        "anomaly_mitigation = on has no counterpart",
        "unknown attribute brand.new.attribute = x",
        "ECS service `worker` has no load balancer",
        "target group `blue` has no targets",
    ] {
        assert!(notes.contains(wanted), "missing `{wanted}` in:\n{notes}");
    }
    assert!(
        !notes.contains("cross_zone"),
        "irrelevant on one host and not noted:\n{notes}"
    );
    assert!(!notes.contains("target group `api` has no targets"), "{notes}");
    // Each note has its kind: what was left out is `NotCarried`, a group without targets
    // `NoTargets` (the ELBv2 API decides on these kinds).
    let kind_of = |text: &str| out.notes.iter().find(|n| n.text.contains(text)).map(|n| n.kind);
    assert_eq!(kind_of("authenticate-oidc"), Some(NoteKind::NotCarried));
    assert_eq!(kind_of("protocol TCP"), Some(NoteKind::NotCarried));
    assert_eq!(kind_of("anomaly_mitigation"), Some(NoteKind::NotCarried));
    assert_eq!(kind_of("`blue` has no targets"), Some(NoteKind::NoTargets));
}

#[test]
fn https_listeners_name_certificate_files() {
    let mut inputs = all();
    inputs[0] = input("listeners.json", &listeners("HTTPS", 443));
    let out = import(&inputs).unwrap();
    assert!(
        out.toml
            .contains(r#"certificates = [{ cert_file = "certs/3f1b.pem", key_file = "certs/3f1b.key" }]"#),
        "{}",
        out.toml
    );
    check(&out.toml);
    assert!(
        out.notes
            .iter()
            .any(|n| n.kind == NoteKind::CertificateFiles && n.text.contains("cannot be exported from ACM")),
        "{:?}",
        out.notes
    );
}

#[test]
fn load_balancer_attributes_set_the_listener() {
    let mut inputs = all();
    inputs.push(input(
        "describe-load-balancers.json",
        &format!(r#"{{"LoadBalancers":[{{"LoadBalancerArn":"{LB}","LoadBalancerName":"shop","Type":"application"}}]}}"#),
    ));
    let mut lb = input(
        "lb-attributes.json",
        r#"{"Attributes":[{"Key":"idle_timeout.timeout_seconds","Value":"120"},{"Key":"routing.http.desync_mitigation_mode","Value":"strictest"},
            {"Key":"routing.http.xff_header_processing.mode","Value":"preserve"},{"Key":"routing.http.drop_invalid_header_fields.enabled","Value":"true"},
            {"Key":"deletion_protection.enabled","Value":"false"},{"Key":"waf.fail_open.enabled","Value":"true"}]}"#,
    );
    lb.name = Some("shop".into());
    inputs.push(lb);
    let out = import(&inputs).unwrap();
    let loaded = check(&out.toml);
    let l = &loaded.config.listeners[0];
    assert_eq!(l.idle_timeout.as_secs(), 120);
    assert_eq!(
        l.desync_mitigation_mode,
        hostalb_config::DesyncMitigationMode::Strictest
    );
    assert_eq!(l.xff_mode, hostalb_config::XffMode::Preserve);
    assert!(l.drop_invalid_header_fields);
    assert!(
        out.notes.iter().any(|n| n.text.contains("WAF")),
        "{:?}",
        out.notes
    );
}

#[test]
fn rules_with_unknown_conditions_are_left_out_not_widened() {
    let text = format!(
        r#"{{"Rules":[{{"RuleArn":"{RULE}/9","Priority":"5","Conditions":[{{"Field":"path-pattern","Values":["/a"]}},{{"Field":"geo-country","Values":["FR"]}}],
            "Actions":[{{"Type":"fixed-response","FixedResponseConfig":{{"StatusCode":"200"}}}}]}}]}}"#
    );
    let out = import(&[input("l.json", &listeners("HTTP", 8080)), input("r.json", &text)]).unwrap();
    assert!(!out.toml.contains("priority = 5"), "{}", out.toml);
    assert!(
        out.notes.iter().any(|n| n.text.contains("geo-country")),
        "{:?}",
        out.notes
    );
    check(&out.toml);
}

#[test]
fn groups_named_only_by_arn_are_written_with_defaults() {
    let text = format!(
        r#"{{"Listeners":[{{"ListenerArn":"{LISTENER}","Port":80,"Protocol":"HTTP","DefaultActions":[{{"Type":"forward","TargetGroupArn":"{TG}/web/9"}}]}}]}}"#
    );
    let out = import(&[input("l.json", &text)]).unwrap();
    assert!(out.toml.contains("[target_group.web]"), "{}", out.toml);
    assert!(
        out.notes
            .iter()
            .any(|n| n.text.contains("not in the describe-target-groups output")),
        "{:?}",
        out.notes
    );
    check(&out.toml);
}

#[test]
fn two_load_balancers_on_one_port_bind_two_loopback_addresses() {
    let other = LISTENER.replace("shop/50dc6c495c0c9188", "admin/1111111111111111");
    let text = format!(
        r#"{{"Listeners":[{{"ListenerArn":"{LISTENER}","Port":80,"Protocol":"HTTP","DefaultActions":[]}},
            {{"ListenerArn":"{other}","Port":80,"Protocol":"HTTP","DefaultActions":[]}}]}}"#
    );
    let out = import(&[input("l.json", &text)]).unwrap();
    let loaded = check(&out.toml);
    let addresses: Vec<String> = loaded
        .config
        .listeners
        .iter()
        .map(|l| format!("{} {}", l.name, l.address))
        .collect();
    assert_eq!(addresses, ["shop-80 127.0.0.1:80", "admin-80 127.0.0.2:80"]);
    assert!(
        out.notes
            .iter()
            .any(|n| n.kind == NoteKind::AddressMoved && n.text.contains("binds 127.0.0.2:80")),
        "{:?}",
        out.notes
    );
    assert!(
        out.notes.iter().any(|n| n.text.contains("no default action")),
        "{:?}",
        out.notes
    );
}

#[test]
fn nothing_to_import_is_an_error() {
    assert_eq!(
        import(&[input("lb.json", r#"{"LoadBalancers":[]}"#)]).unwrap_err(),
        ImportError::Empty
    );
}

#[test]
fn attributes_must_name_a_known_group() {
    let err = import(&[input("groups.json", &groups()), input("attrs.json", ATTRIBUTES)]).unwrap_err();
    assert_eq!(
        err,
        ImportError::AttributesFor {
            origin: "attrs.json".into(),
            name: Some("attrs".into())
        }
    );
    assert!(err.to_string().contains("NAME_OR_ARN=attrs.json"), "{err}");
    let ok = import(&[
        input("groups.json", &groups()),
        input("describe-target-group-attributes.api.json", ATTRIBUTES),
    ])
    .unwrap();
    assert!(
        ok.toml.contains("deregistration_delay_seconds = 30"),
        "{}",
        ok.toml
    );
}

fn listener_with(extra: &str) -> String {
    format!(
        r#"{{"Listeners":[{{"ListenerArn":"{LISTENER}","LoadBalancerArn":"{LB}","Port":443,"Protocol":"HTTPS",
        "Certificates":[{{"CertificateArn":"arn:aws:acm:us-east-1:123456789012:certificate/3f1b"}}],{extra}
        "DefaultActions":[{{"Type":"fixed-response","FixedResponseConfig":{{"StatusCode":"404","ContentType":"text/plain","MessageBody":"none"}}}}]}}]}}"#
    )
}

#[test]
fn ssl_policy_mutual_tls_and_http2_come_over() {
    let mut inputs = all();
    inputs[0] = input(
        "listeners.json",
        &listener_with(
            r#""SslPolicy":"ELBSecurityPolicy-TLS13-1-3-2021-06",
            "MutualAuthentication":{"Mode":"verify","TrustStoreArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:truststore/partners/0a1b2c","IgnoreClientCertificateExpiry":true,"AdvertiseTrustStoreCaNames":"on"},"#,
        ),
    );
    inputs.push(input(
        "describe-load-balancers.json",
        &format!(r#"{{"LoadBalancers":[{{"LoadBalancerArn":"{LB}","LoadBalancerName":"shop","Type":"application"}}]}}"#),
    ));
    let mut lb = input(
        "lb-attributes.json",
        r#"{"Attributes":[{"Key":"routing.http2.enabled","Value":"false"}]}"#,
    );
    lb.name = Some("shop".into());
    inputs.push(lb);
    let out = import(&inputs).unwrap();
    let loaded = check(&out.toml);
    let l = &loaded.config.listeners[0];
    assert_eq!(l.ssl_policy.name, "ELBSecurityPolicy-TLS13-1-3-2021-06");
    assert_eq!(l.mutual_authentication.mode, hostalb_config::MtlsMode::Verify);
    assert_eq!(
        l.mutual_authentication.trust_store.as_deref(),
        Some(std::path::Path::new("certs/truststore-partners.pem"))
    );
    assert!(l.mutual_authentication.ignore_client_certificate_expiry);
    assert!(l.mutual_authentication.advertise_trust_store_ca_names);
    assert!(!l.http2);
    let notes = out
        .notes
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(notes.contains("certs/truststore-partners.pem"), "{notes}");
    assert!(!notes.contains("routing.http2"), "{notes}");
}

#[test]
fn passthrough_comes_over_and_unknown_policies_are_noted() {
    let mut inputs = all();
    inputs[0] = input(
        "listeners.json",
        &listener_with(
            r#""SslPolicy":"ELBSecurityPolicy-Future-2031-01","MutualAuthentication":{"Mode":"passthrough"},"#,
        ),
    );
    let out = import(&inputs).unwrap();
    let loaded = check(&out.toml);
    let l = &loaded.config.listeners[0];
    assert_eq!(
        l.mutual_authentication.mode,
        hostalb_config::MtlsMode::Passthrough
    );
    assert_eq!(l.ssl_policy.name, hostalb_config::DEFAULT_SSL_POLICY);
    let notes = out
        .notes
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        notes.contains("ELBSecurityPolicy-Future-2031-01 is not known"),
        "{notes}"
    );
}
