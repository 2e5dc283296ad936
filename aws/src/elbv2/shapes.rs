//! The ELBv2 shapes, member for member as botocore's service model names them
//! (`botocore/data/elbv2/2015-12-01/service-2.json`). Optional members are `Option`s;
//! lists the CLI always prints are `Vec`s that default to empty.

use serde::{Deserialize, Serialize};

/// `LoadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoadBalancer {
    pub load_balancer_arn: String,
    #[serde(rename = "DNSName")]
    pub dns_name: Option<String>,
    pub canonical_hosted_zone_id: Option<String>,
    /// ISO 8601.
    pub created_time: Option<String>,
    pub load_balancer_name: String,
    pub scheme: Option<String>,
    pub vpc_id: Option<String>,
    pub state: Option<LoadBalancerState>,
    /// `application` | `network` | `gateway`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub availability_zones: Option<Vec<AvailabilityZone>>,
    pub security_groups: Option<Vec<String>>,
    pub ip_address_type: Option<String>,
}

/// `LoadBalancerState`: `Code` is `active` | `provisioning` | `active_impaired` | `failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoadBalancerState {
    pub code: Option<String>,
    pub reason: Option<String>,
}

/// `AvailabilityZone`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AvailabilityZone {
    pub zone_name: Option<String>,
    pub subnet_id: Option<String>,
}

/// `Listener`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Listener {
    pub listener_arn: String,
    pub load_balancer_arn: Option<String>,
    pub port: Option<u16>,
    /// `HTTP` | `HTTPS` (and the NLB protocols hostalb does not serve).
    pub protocol: Option<String>,
    pub certificates: Option<Vec<Certificate>>,
    pub ssl_policy: Option<String>,
    pub default_actions: Vec<Action>,
    pub alpn_policy: Option<Vec<String>>,
    /// `MutualAuthenticationAttributes`, kept as written (the importer reads `Mode`,
    /// `TrustStoreArn`, `IgnoreClientCertificateExpiry`, `AdvertiseTrustStoreCaNames`).
    pub mutual_authentication: Option<serde_json::Value>,
}

/// `Certificate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Certificate {
    pub certificate_arn: Option<String>,
    pub is_default: Option<bool>,
}

/// `Rule`. `Priority` is a string: `"10"`, or `"default"` for the listener's default rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Rule {
    pub rule_arn: String,
    pub priority: String,
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
    pub is_default: bool,
    pub transforms: Option<Vec<RuleTransform>>,
}

/// `RuleCondition`: `Field` names the type; the values sit in the `*Config` member of that
/// type, or (host-header and path-pattern, the legacy form) in `Values`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleCondition {
    pub field: String,
    pub values: Option<Vec<String>>,
    pub host_header_config: Option<ValuesConfig>,
    pub path_pattern_config: Option<ValuesConfig>,
    pub http_header_config: Option<HttpHeaderConditionConfig>,
    pub query_string_config: Option<QueryStringConditionConfig>,
    pub http_request_method_config: Option<ValuesConfig>,
    pub source_ip_config: Option<ValuesConfig>,
    pub regex_values: Option<Vec<String>>,
}

/// `HostHeaderConditionConfig`, `PathPatternConditionConfig`,
/// `HttpRequestMethodConditionConfig`, `SourceIpConditionConfig` (the last two never carry
/// `RegexValues`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ValuesConfig {
    pub values: Option<Vec<String>>,
    pub regex_values: Option<Vec<String>>,
}

/// `HttpHeaderConditionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HttpHeaderConditionConfig {
    pub http_header_name: Option<String>,
    pub values: Option<Vec<String>>,
    pub regex_values: Option<Vec<String>>,
}

/// `QueryStringConditionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueryStringConditionConfig {
    pub values: Vec<QueryStringKeyValuePair>,
}

/// `QueryStringKeyValuePair`: no `Key` matches any key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueryStringKeyValuePair {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// `RuleTransform`: `Type` is `host-header-rewrite` or `url-rewrite`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleTransform {
    #[serde(rename = "Type")]
    pub kind: String,
    pub host_header_rewrite_config: Option<RewriteConfigs>,
    pub url_rewrite_config: Option<RewriteConfigs>,
}

/// `HostHeaderRewriteConfig` and `UrlRewriteConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RewriteConfigs {
    pub rewrites: Vec<RewriteConfig>,
}

/// `RewriteConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RewriteConfig {
    pub regex: String,
    pub replace: String,
}

/// `Action`: `Type` is `forward`, `redirect`, `fixed-response`, `authenticate-oidc`,
/// `authenticate-cognito` or `jwt-validation`; `Order` sorts a rule's actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Action {
    #[serde(rename = "Type")]
    pub kind: String,
    pub order: Option<u32>,
    pub target_group_arn: Option<String>,
    pub forward_config: Option<ForwardActionConfig>,
    pub redirect_config: Option<RedirectActionConfig>,
    pub fixed_response_config: Option<FixedResponseActionConfig>,
    /// Authentication configurations are kept as written: hostalb does not authenticate.
    pub authenticate_oidc_config: Option<serde_json::Value>,
    pub authenticate_cognito_config: Option<serde_json::Value>,
    pub jwt_validation_config: Option<serde_json::Value>,
}

/// `ForwardActionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ForwardActionConfig {
    pub target_groups: Option<Vec<TargetGroupTuple>>,
    pub target_group_stickiness_config: Option<TargetGroupStickinessConfig>,
}

/// `TargetGroupTuple`: a missing `Weight` counts as 1 (moto's reading).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetGroupTuple {
    pub target_group_arn: Option<String>,
    pub weight: Option<u32>,
}

/// `TargetGroupStickinessConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetGroupStickinessConfig {
    pub enabled: Option<bool>,
    pub duration_seconds: Option<u32>,
}

/// `RedirectActionConfig`: `StatusCode` is `HTTP_301` or `HTTP_302`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RedirectActionConfig {
    pub protocol: Option<String>,
    pub port: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    pub status_code: String,
}

/// `FixedResponseActionConfig`: `StatusCode` is a string (`"404"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FixedResponseActionConfig {
    pub message_body: Option<String>,
    pub status_code: String,
    pub content_type: Option<String>,
}

/// `TargetGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetGroup {
    pub target_group_arn: String,
    pub target_group_name: String,
    pub protocol: Option<String>,
    pub port: Option<u16>,
    pub vpc_id: Option<String>,
    pub health_check_protocol: Option<String>,
    /// `"traffic-port"` or a port number as a string.
    pub health_check_port: Option<String>,
    pub health_check_enabled: Option<bool>,
    pub health_check_interval_seconds: Option<u32>,
    pub health_check_timeout_seconds: Option<u32>,
    pub healthy_threshold_count: Option<u32>,
    pub unhealthy_threshold_count: Option<u32>,
    pub health_check_path: Option<String>,
    pub matcher: Option<Matcher>,
    pub load_balancer_arns: Vec<String>,
    /// `instance` | `ip` | `lambda` | `alb`.
    pub target_type: Option<String>,
    /// `HTTP1` | `HTTP2` | `GRPC`.
    pub protocol_version: Option<String>,
    pub ip_address_type: Option<String>,
}

/// `Matcher`: HTTP codes (`"200"`, `"200,202"`, `"200-299"`) or gRPC codes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Matcher {
    pub http_code: Option<String>,
    pub grpc_code: Option<String>,
}

/// `TargetGroupAttribute` and `LoadBalancerAttribute`: values are always strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// `TargetDescription`: a target is identified by (`Id`, `Port`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetDescription {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
}

/// `TargetHealthDescription`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetHealthDescription {
    pub target: TargetDescription,
    pub health_check_port: Option<String>,
    pub target_health: TargetHealth,
}

/// `TargetHealth`: `State` is `initial` | `healthy` | `unhealthy` | `unused` | `draining` |
/// `unavailable`; a healthy target has no `Reason` nor `Description`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetHealth {
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// `Tag`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tag {
    pub key: String,
    pub value: Option<String>,
}

/// `TagDescription`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagDescription {
    pub resource_arn: String,
    pub tags: Vec<Tag>,
}

/// `RulePriorityPair` (SetRulePriorities).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RulePriorityPair {
    pub rule_arn: String,
    pub priority: u32,
}

/// `DescribeLoadBalancersOutput`: what `aws elbv2 describe-load-balancers` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeLoadBalancersOutput {
    pub load_balancers: Vec<LoadBalancer>,
    pub next_marker: Option<String>,
}

/// `DescribeListenersOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeListenersOutput {
    pub listeners: Vec<Listener>,
    pub next_marker: Option<String>,
}

/// `DescribeRulesOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeRulesOutput {
    pub rules: Vec<Rule>,
    pub next_marker: Option<String>,
}

/// `DescribeTargetGroupsOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTargetGroupsOutput {
    pub target_groups: Vec<TargetGroup>,
    pub next_marker: Option<String>,
}

/// `DescribeTargetGroupAttributesOutput` (and `DescribeLoadBalancerAttributesOutput`,
/// which has the same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AttributesOutput {
    pub attributes: Vec<Attribute>,
}

/// `DescribeTargetHealthOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTargetHealthOutput {
    pub target_health_descriptions: Vec<TargetHealthDescription>,
}

/// `DescribeTagsOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTagsOutput {
    pub tag_descriptions: Vec<TagDescription>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cli_json_and_writes_it_back_without_nulls() {
        let text = r#"{"RuleArn":"arn:r","Priority":"10","IsDefault":false,
            "Conditions":[{"Field":"http-header","HttpHeaderConfig":{"HttpHeaderName":"X-Env","Values":["canary*"]}}],
            "Actions":[{"Type":"forward","ForwardConfig":{"TargetGroups":[{"TargetGroupArn":"arn:g","Weight":3}],
              "TargetGroupStickinessConfig":{"Enabled":false}},"Unknown":1}]}"#;
        let rule: Rule = serde_json::from_str(text).unwrap();
        assert_eq!(rule.priority, "10");
        let header = rule.conditions[0].http_header_config.as_ref().unwrap();
        assert_eq!(header.http_header_name.as_deref(), Some("X-Env"));
        let fc = rule.actions[0].forward_config.as_ref().unwrap();
        assert_eq!(fc.target_groups.as_ref().unwrap()[0].weight, Some(3));
        let back = crate::elbv2::to_json(&rule);
        assert_eq!(back["Actions"][0]["Type"], "forward");
        assert!(back["Actions"][0].get("Order").is_none(), "{back}");
        assert!(back["Conditions"][0].get("Values").is_none(), "{back}");
        assert_eq!(back["Conditions"][0]["HttpHeaderConfig"]["Values"][0], "canary*");
    }

    #[test]
    fn load_balancer_members_keep_their_acronyms() {
        let lb = LoadBalancer {
            load_balancer_arn: "a".into(),
            dns_name: Some("d".into()),
            kind: Some("application".into()),
            ..Default::default()
        };
        let v = crate::elbv2::to_json(&lb);
        assert_eq!(v["DNSName"], "d");
        assert_eq!(v["Type"], "application");
        assert_eq!(v["LoadBalancerArn"], "a");
    }
}
