//! Decoding of Query bodies as botocore 1.44's `QuerySerializer` writes them (the bodies
//! below were printed by it; `aws/tests/botocore.rs` checks every action against the live
//! serializer).

use super::*;

fn decode(body: &str) -> R<Request> {
    Request::decode(&Params::parse(body).map_err(ElbError::from)?)
}

const CREATE_RULE: &str = "Action=CreateRule&Version=2015-12-01&ListenerArn=arn%3Al&Priority=10\
&Conditions.member.1.Field=path-pattern\
&Conditions.member.1.PathPatternConfig.Values.member.1=%2Fapi%2F%2A\
&Conditions.member.1.PathPatternConfig.Values.member.2=%2Fv2%2F%2A\
&Conditions.member.2.Field=http-header\
&Conditions.member.2.HttpHeaderConfig.HttpHeaderName=X-Env\
&Conditions.member.2.HttpHeaderConfig.Values.member.1=canary%2A\
&Conditions.member.3.Field=query-string\
&Conditions.member.3.QueryStringConfig.Values.member.1.Key=v\
&Conditions.member.3.QueryStringConfig.Values.member.1.Value=2\
&Conditions.member.3.QueryStringConfig.Values.member.2.Value=beta\
&Actions.member.1.Type=forward\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=arn%3Ablue\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=90\
&Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=arn%3Agreen\
&Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=10\
&Actions.member.1.ForwardConfig.TargetGroupStickinessConfig.Enabled=true\
&Actions.member.1.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds=600";

#[test]
fn create_rule_with_nested_conditions_and_a_weighted_forward() {
    let Request::CreateRule(r) = decode(CREATE_RULE).unwrap() else {
        panic!("not CreateRule")
    };
    assert_eq!(r.listener_arn, "arn:l");
    assert_eq!(r.priority, 10);
    assert_eq!(r.conditions.len(), 3);
    let path = r.conditions[0].path_pattern_config.as_ref().unwrap();
    assert_eq!(
        path.values.as_deref(),
        Some(&["/api/*".to_owned(), "/v2/*".to_owned()][..])
    );
    let header = r.conditions[1].http_header_config.as_ref().unwrap();
    assert_eq!(header.http_header_name.as_deref(), Some("X-Env"));
    assert_eq!(header.values.as_deref(), Some(&["canary*".to_owned()][..]));
    let query = &r.conditions[2].query_string_config.as_ref().unwrap().values;
    assert_eq!(query[0].key.as_deref(), Some("v"));
    assert_eq!(query[1].key, None);
    assert_eq!(query[1].value.as_deref(), Some("beta"));
    let forward = r.actions[0].forward_config.as_ref().unwrap();
    let groups = forward.target_groups.as_ref().unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| (g.target_group_arn.as_deref().unwrap(), g.weight))
            .collect::<Vec<_>>(),
        vec![("arn:blue", Some(90)), ("arn:green", Some(10))]
    );
    let sticky = forward.target_group_stickiness_config.as_ref().unwrap();
    assert_eq!((sticky.enabled, sticky.duration_seconds), (Some(true), Some(600)));
    assert!(r.tags.is_empty());
}

#[test]
fn modify_rule_tells_an_empty_list_from_an_absent_one() {
    let Request::ModifyRule(r) =
        decode("Action=ModifyRule&Version=2015-12-01&RuleArn=arn%3Ar&Conditions=").unwrap()
    else {
        panic!("not ModifyRule")
    };
    assert_eq!(r.conditions, Some(vec![]));
    assert_eq!(r.actions, None);
    assert_eq!(r.transforms, None);
}

#[test]
fn register_targets_keeps_targets_that_share_an_id() {
    let body = "Action=RegisterTargets&Version=2015-12-01&TargetGroupArn=arn%3Ag\
                &Targets.member.1.Id=i-1&Targets.member.1.Port=32768&Targets.member.2.Id=i-1&Targets.member.2.Port=32769";
    let Request::RegisterTargets {
        target_group_arn,
        targets,
    } = decode(body).unwrap()
    else {
        panic!("not RegisterTargets")
    };
    assert_eq!(target_group_arn, "arn:g");
    assert_eq!(
        targets.iter().map(|t| t.port).collect::<Vec<_>>(),
        vec![Some(32768), Some(32769)]
    );
}

#[test]
fn redirect_fixed_response_and_transforms() {
    let body = "Action=CreateRule&Version=2015-12-01&ListenerArn=l&Priority=5\
        &Conditions.member.1.Field=source-ip&Conditions.member.1.SourceIpConfig.Values.member.1=10.0.0.0%2F8\
        &Conditions.member.2.Field=http-request-method&Conditions.member.2.HttpRequestMethodConfig.Values.member.1=GET\
        &Conditions.member.3.Field=host-header&Conditions.member.3.HostHeaderConfig.RegexValues.member.1=%5Eapi%5C.\
        &Actions.member.1.Type=redirect&Actions.member.1.Order=2\
        &Actions.member.1.RedirectConfig.Protocol=HTTPS&Actions.member.1.RedirectConfig.Port=443\
        &Actions.member.1.RedirectConfig.Path=%2F%23%7Bpath%7D&Actions.member.1.RedirectConfig.StatusCode=HTTP_301\
        &Actions.member.2.Type=fixed-response&Actions.member.2.FixedResponseConfig.StatusCode=503\
        &Actions.member.2.FixedResponseConfig.ContentType=text%2Fplain&Actions.member.2.FixedResponseConfig.MessageBody=down\
        &Transforms.member.1.Type=url-rewrite\
        &Transforms.member.1.UrlRewriteConfig.Rewrites.member.1.Regex=%5E%2Fold%2F%28.%2A%29%24\
        &Transforms.member.1.UrlRewriteConfig.Rewrites.member.1.Replace=%2Fnew%2F%241";
    let Request::CreateRule(r) = decode(body).unwrap() else {
        panic!("not CreateRule")
    };
    assert_eq!(
        r.conditions[0]
            .source_ip_config
            .as_ref()
            .unwrap()
            .values
            .as_deref(),
        Some(&["10.0.0.0/8".to_owned()][..])
    );
    assert_eq!(
        r.conditions[1]
            .http_request_method_config
            .as_ref()
            .unwrap()
            .values
            .as_deref(),
        Some(&["GET".to_owned()][..])
    );
    assert_eq!(
        r.conditions[2]
            .host_header_config
            .as_ref()
            .unwrap()
            .regex_values
            .as_deref(),
        Some(&["^api\\.".to_owned()][..])
    );
    let redirect = r.actions[0].redirect_config.as_ref().unwrap();
    assert_eq!(r.actions[0].order, Some(2));
    assert_eq!(redirect.path.as_deref(), Some("/#{path}"));
    assert_eq!(redirect.status_code, "HTTP_301");
    let fixed = r.actions[1].fixed_response_config.as_ref().unwrap();
    assert_eq!(
        (fixed.status_code.as_str(), fixed.message_body.as_deref()),
        ("503", Some("down"))
    );
    let rewrite = &r.transforms[0].url_rewrite_config.as_ref().unwrap().rewrites[0];
    assert_eq!(
        (rewrite.regex.as_str(), rewrite.replace.as_str()),
        ("^/old/(.*)$", "/new/$1")
    );
}

#[test]
fn target_group_settings_and_attributes() {
    let body = "Action=CreateTargetGroup&Version=2015-12-01&Name=api&Protocol=HTTP&Port=80\
        &HealthCheckPort=traffic-port&HealthCheckEnabled=true&HealthCheckPath=%2Fhealth\
        &HealthCheckIntervalSeconds=10&HealthyThresholdCount=2&Matcher.HttpCode=200-299&TargetType=instance\
        &Tags.member.1.Key=team&Tags.member.1.Value=shop";
    let Request::CreateTargetGroup(g) = decode(body).unwrap() else {
        panic!("not CreateTargetGroup")
    };
    assert_eq!(g.name, "api");
    assert_eq!(g.port, Some(80));
    assert_eq!(g.health_check.health_check_interval_seconds, Some(10));
    assert_eq!(
        g.health_check.matcher.as_ref().unwrap().http_code.as_deref(),
        Some("200-299")
    );
    assert_eq!(
        g.tags,
        vec![Tag {
            key: "team".into(),
            value: Some("shop".into())
        }]
    );
    let json = crate::elbv2::to_json(&Request::CreateTargetGroup(g));
    assert_eq!(
        json["HealthCheckPath"], "/health",
        "flattened into the input shape: {json}"
    );
    assert_eq!(json["Matcher"]["HttpCode"], "200-299");

    let body = "Action=ModifyTargetGroupAttributes&Version=2015-12-01&TargetGroupArn=g\
        &Attributes.member.1.Key=deregistration_delay.timeout_seconds&Attributes.member.1.Value=30\
        &Attributes.member.2.Key=stickiness.enabled&Attributes.member.2.Value=true";
    let Request::ModifyTargetGroupAttributes { attributes, .. } = decode(body).unwrap() else {
        panic!("not ModifyTargetGroupAttributes")
    };
    assert_eq!(
        attributes[1],
        Attribute {
            key: "stickiness.enabled".into(),
            value: "true".into()
        }
    );
}

#[test]
fn describe_calls_take_optional_filters() {
    let Request::DescribeTargetGroups(d) = decode(
        "Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=api&Names.member.2=web&PageSize=10",
    )
    .unwrap() else {
        panic!("not DescribeTargetGroups")
    };
    assert_eq!(d.names, vec!["api", "web"]);
    assert_eq!(d.page_size, Some(10));
    assert!(d.target_group_arns.is_empty());
    let Request::DescribeRules(d) = decode("Action=DescribeRules&Version=2015-12-01&ListenerArn=l").unwrap()
    else {
        panic!("not DescribeRules")
    };
    assert_eq!(d.listener_arn.as_deref(), Some("l"));
    let r = decode("Action=SetRulePriorities&Version=2015-12-01&RulePriorities.member.1.RuleArn=r1&RulePriorities.member.1.Priority=7")
        .unwrap();
    assert_eq!(
        r,
        Request::SetRulePriorities {
            rule_priorities: vec![RulePriorityPair {
                rule_arn: "r1".into(),
                priority: 7
            }]
        }
    );
    assert_eq!(r.action(), "SetRulePriorities");
}

#[test]
fn every_listed_action_decodes_with_its_required_members() {
    // The smallest valid call of each action: required members only.
    let minimal = |action: &str| -> String {
        let required = match action {
            "CreateLoadBalancer" | "CreateTargetGroup" => "&Name=n",
            "DeleteLoadBalancer" | "DescribeLoadBalancerAttributes" => "&LoadBalancerArn=a",
            "ModifyLoadBalancerAttributes" => "&LoadBalancerArn=a&Attributes=",
            "CreateListener" => {
                "&LoadBalancerArn=a&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn=g"
            }
            "ModifyListener" | "DeleteListener" => "&ListenerArn=l",
            "CreateRule" => "&ListenerArn=l&Priority=1&Conditions=&Actions=",
            "ModifyRule" | "DeleteRule" => "&RuleArn=r",
            "SetRulePriorities" => "&RulePriorities=",
            "ModifyTargetGroup"
            | "DeleteTargetGroup"
            | "DescribeTargetGroupAttributes"
            | "DescribeTargetHealth" => "&TargetGroupArn=g",
            "ModifyTargetGroupAttributes" => "&TargetGroupArn=g&Attributes=",
            "RegisterTargets" | "DeregisterTargets" => "&TargetGroupArn=g&Targets.member.1.Id=i-1",
            "AddTags" => "&ResourceArns.member.1=a&Tags.member.1.Key=k",
            "RemoveTags" => "&ResourceArns.member.1=a&TagKeys.member.1=k",
            "DescribeTags" => "&ResourceArns.member.1=a",
            "AddListenerCertificates" | "RemoveListenerCertificates" => {
                "&ListenerArn=l&Certificates.member.1.CertificateArn=c"
            }
            "DescribeListenerCertificates" => "&ListenerArn=l",
            _ => "",
        };
        format!("Action={action}&Version=2015-12-01{required}")
    };
    for action in ACTIONS {
        let req = decode(&minimal(action)).unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_eq!(req.action(), action);
    }
}

#[test]
fn missing_and_malformed_members_are_validation_errors() {
    let e = decode("Action=CreateRule&Version=2015-12-01&Priority=1&Conditions=&Actions=").unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert!(e.message.contains("'listenerArn'"), "{e}");
    let e = decode("Action=CreateRule&Version=2015-12-01&ListenerArn=l&Priority=ten&Conditions=&Actions=")
        .unwrap_err();
    assert!(
        e.message.contains("'ten'") && e.message.contains("'priority'"),
        "{e}"
    );
    let e = decode("Action=RegisterTargets&Version=2015-12-01&TargetGroupArn=g&Targets.member.1.Port=80")
        .unwrap_err();
    assert!(e.message.contains("'targets.member.1.id'"), "{e}");
    let e = decode("Action=CreateListener&Version=2015-12-01&LoadBalancerArn=a&Port=99999&DefaultActions=")
        .unwrap_err();
    assert!(e.message.contains("'port'"), "{e}");
    let e = decode("Action=CreateRule&Version=2015-12-01&ListenerArn=l&Priority=1&Conditions=&Actions.member.1.Type=redirect&Actions.member.1.RedirectConfig.Host=h").unwrap_err();
    assert!(
        e.message.contains("'actions.member.1.redirectConfig.statusCode'"),
        "{e}"
    );
    let e = decode("Action=CreateRule&A=%zz").unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
}

#[test]
fn unknown_actions_and_versions_are_refused() {
    assert_eq!(
        decode("Version=2015-12-01").unwrap_err().code,
        ErrorCode::MissingAction
    );
    assert_eq!(
        decode("Action=DescribeInstances&Version=2015-12-01")
            .unwrap_err()
            .code,
        ErrorCode::InvalidAction
    );
    assert_eq!(
        decode("Action=DescribeRules&Version=2012-06-01")
            .unwrap_err()
            .code,
        ErrorCode::InvalidParameterValue
    );
    assert!(decode("Action=DescribeRules").is_ok(), "Version may be left out");
}

#[test]
fn authentication_configs_are_kept_as_written() {
    let body = "Action=CreateRule&Version=2015-12-01&ListenerArn=l&Priority=1&Conditions=\
        &Actions.member.1.Type=authenticate-oidc&Actions.member.1.Order=1\
        &Actions.member.1.AuthenticateOidcConfig.Issuer=https%3A%2F%2Fidp\
        &Actions.member.1.AuthenticateOidcConfig.AuthenticationRequestExtraParams.entry.1.key=prompt\
        &Actions.member.1.AuthenticateOidcConfig.AuthenticationRequestExtraParams.entry.1.value=login\
        &Actions.member.2.Type=fixed-response&Actions.member.2.Order=2&Actions.member.2.FixedResponseConfig.StatusCode=200";
    let Request::CreateRule(r) = decode(body).unwrap() else {
        panic!("not CreateRule")
    };
    assert_eq!(
        r.actions[0].authenticate_oidc_config,
        Some(
            serde_json::json!({"Issuer": "https://idp", "AuthenticationRequestExtraParams": {"prompt": "login"}})
        )
    );
}
