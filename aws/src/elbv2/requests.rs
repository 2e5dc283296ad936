//! The ELBv2 actions hostalb serves, decoded from Query parameters into typed requests.
//!
//! Member names follow botocore's input shapes; a required member that is absent, or a
//! value that does not read as its type, is a `ValidationError` naming the member's path.
//! What a value means (a known protocol, a priority in range) is for the server to judge.

use serde::Serialize;

use super::API_VERSION;
use super::errors::{ElbError, ErrorCode};
use super::shapes::*;
use crate::query::{Members, Params, QueryError};

impl From<QueryError> for ElbError {
    fn from(e: QueryError) -> ElbError {
        match e {
            QueryError::Malformed(m) => ElbError::new(ErrorCode::ValidationError, m),
            QueryError::Missing(path) => ElbError::missing(&path),
            QueryError::Invalid {
                path,
                value,
                expected,
            } => ElbError::invalid(&path, &value, expected),
        }
    }
}

type R<T> = Result<T, ElbError>;

/// One decoded ELBv2 call. It serializes to the JSON of botocore's input shape (without
/// `Action` and `Version`), for logs and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged, rename_all_fields = "PascalCase")]
pub enum Request {
    CreateLoadBalancer(CreateLoadBalancer),
    DescribeLoadBalancers(DescribeLoadBalancers),
    DeleteLoadBalancer {
        load_balancer_arn: String,
    },
    DescribeLoadBalancerAttributes {
        load_balancer_arn: String,
    },
    ModifyLoadBalancerAttributes {
        load_balancer_arn: String,
        attributes: Vec<Attribute>,
    },
    CreateListener(CreateListener),
    DescribeListeners(DescribeListeners),
    ModifyListener(ModifyListener),
    DeleteListener {
        listener_arn: String,
    },
    CreateRule(CreateRule),
    DescribeRules(DescribeRules),
    ModifyRule(ModifyRule),
    DeleteRule {
        rule_arn: String,
    },
    SetRulePriorities {
        rule_priorities: Vec<RulePriorityPair>,
    },
    CreateTargetGroup(CreateTargetGroup),
    DescribeTargetGroups(DescribeTargetGroups),
    ModifyTargetGroup(ModifyTargetGroup),
    DeleteTargetGroup {
        target_group_arn: String,
    },
    DescribeTargetGroupAttributes {
        target_group_arn: String,
    },
    ModifyTargetGroupAttributes {
        target_group_arn: String,
        attributes: Vec<Attribute>,
    },
    RegisterTargets {
        target_group_arn: String,
        targets: Vec<TargetDescription>,
    },
    DeregisterTargets {
        target_group_arn: String,
        targets: Vec<TargetDescription>,
    },
    DescribeTargetHealth(DescribeTargetHealth),
    AddTags {
        resource_arns: Vec<String>,
        tags: Vec<Tag>,
    },
    RemoveTags {
        resource_arns: Vec<String>,
        tag_keys: Vec<String>,
    },
    DescribeTags {
        resource_arns: Vec<String>,
    },
    /// `DescribeSSLPolicies`.
    DescribeSslPolicies {
        names: Vec<String>,
        marker: Option<String>,
        page_size: Option<u32>,
        load_balancer_type: Option<String>,
    },
    AddListenerCertificates {
        listener_arn: String,
        certificates: Vec<Certificate>,
    },
    RemoveListenerCertificates {
        listener_arn: String,
        certificates: Vec<Certificate>,
    },
    DescribeListenerCertificates {
        listener_arn: String,
        marker: Option<String>,
        page_size: Option<u32>,
    },
}

/// The actions [`Request::decode`] reads, by name.
pub const ACTIONS: [&str; 30] = [
    "CreateLoadBalancer",
    "DescribeLoadBalancers",
    "DeleteLoadBalancer",
    "DescribeLoadBalancerAttributes",
    "ModifyLoadBalancerAttributes",
    "CreateListener",
    "DescribeListeners",
    "ModifyListener",
    "DeleteListener",
    "CreateRule",
    "DescribeRules",
    "ModifyRule",
    "DeleteRule",
    "SetRulePriorities",
    "CreateTargetGroup",
    "DescribeTargetGroups",
    "ModifyTargetGroup",
    "DeleteTargetGroup",
    "DescribeTargetGroupAttributes",
    "ModifyTargetGroupAttributes",
    "RegisterTargets",
    "DeregisterTargets",
    "DescribeTargetHealth",
    "AddTags",
    "RemoveTags",
    "DescribeTags",
    "DescribeSSLPolicies",
    "AddListenerCertificates",
    "RemoveListenerCertificates",
    "DescribeListenerCertificates",
];

/// `CreateLoadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateLoadBalancer {
    pub name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub scheme: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub ip_address_type: Option<String>,
    pub tags: Vec<Tag>,
}

/// `DescribeLoadBalancers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLoadBalancers {
    pub load_balancer_arns: Vec<String>,
    pub names: Vec<String>,
    pub marker: Option<String>,
    pub page_size: Option<u32>,
}

/// `CreateListener`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateListener {
    pub load_balancer_arn: String,
    pub protocol: Option<String>,
    pub port: Option<u16>,
    pub ssl_policy: Option<String>,
    pub certificates: Vec<Certificate>,
    pub default_actions: Vec<Action>,
    pub alpn_policy: Vec<String>,
    pub tags: Vec<Tag>,
}

/// `DescribeListeners`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeListeners {
    pub load_balancer_arn: Option<String>,
    pub listener_arns: Vec<String>,
    pub marker: Option<String>,
    pub page_size: Option<u32>,
}

/// `ModifyListener`: absent members are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyListener {
    pub listener_arn: String,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub ssl_policy: Option<String>,
    pub certificates: Option<Vec<Certificate>>,
    pub default_actions: Option<Vec<Action>>,
    pub alpn_policy: Option<Vec<String>>,
}

/// `CreateRule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRule {
    pub listener_arn: String,
    pub conditions: Vec<RuleCondition>,
    pub priority: u32,
    pub actions: Vec<Action>,
    pub tags: Vec<Tag>,
    pub transforms: Vec<RuleTransform>,
}

/// `DescribeRules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRules {
    pub listener_arn: Option<String>,
    pub rule_arns: Vec<String>,
    pub marker: Option<String>,
    pub page_size: Option<u32>,
}

/// `ModifyRule`: absent members are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyRule {
    pub rule_arn: String,
    pub conditions: Option<Vec<RuleCondition>>,
    pub actions: Option<Vec<Action>>,
    pub transforms: Option<Vec<RuleTransform>>,
    pub reset_transforms: Option<bool>,
}

/// The health-check members `CreateTargetGroup` and `ModifyTargetGroup` share.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheckSettings {
    pub health_check_protocol: Option<String>,
    pub health_check_port: Option<String>,
    pub health_check_enabled: Option<bool>,
    pub health_check_path: Option<String>,
    pub health_check_interval_seconds: Option<u32>,
    pub health_check_timeout_seconds: Option<u32>,
    pub healthy_threshold_count: Option<u32>,
    pub unhealthy_threshold_count: Option<u32>,
    pub matcher: Option<Matcher>,
}

/// `CreateTargetGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTargetGroup {
    pub name: String,
    pub protocol: Option<String>,
    pub protocol_version: Option<String>,
    pub port: Option<u16>,
    pub vpc_id: Option<String>,
    #[serde(flatten)]
    pub health_check: HealthCheckSettings,
    pub target_type: Option<String>,
    pub ip_address_type: Option<String>,
    pub tags: Vec<Tag>,
}

/// `DescribeTargetGroups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetGroups {
    pub load_balancer_arn: Option<String>,
    pub target_group_arns: Vec<String>,
    pub names: Vec<String>,
    pub marker: Option<String>,
    pub page_size: Option<u32>,
}

/// `ModifyTargetGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyTargetGroup {
    pub target_group_arn: String,
    #[serde(flatten)]
    pub health_check: HealthCheckSettings,
}

/// `DescribeTargetHealth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetHealth {
    pub target_group_arn: String,
    pub targets: Vec<TargetDescription>,
    /// `AnomalyDetection` | `All`.
    pub include: Vec<String>,
}

impl Request {
    /// Decodes a call. `Action` names the action; `Version`, when given, must be
    /// `2015-12-01`.
    pub fn decode(params: &Params) -> R<Request> {
        let Some(action) = params.action() else {
            return Err(ElbError::new(
                ErrorCode::MissingAction,
                "The request must contain the parameter Action.",
            ));
        };
        if let Some(v) = params.version() {
            if v != API_VERSION {
                return Err(ElbError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Version `{v}` is not supported; Elastic Load Balancing v2 is {API_VERSION}"),
                ));
            }
        }
        let m = params.root();
        let req = match action {
            "CreateLoadBalancer" => Request::CreateLoadBalancer(CreateLoadBalancer {
                name: m.required("Name")?,
                subnets: m.strings_or_empty("Subnets")?,
                security_groups: m.strings_or_empty("SecurityGroups")?,
                scheme: m.string("Scheme"),
                kind: m.string("Type"),
                ip_address_type: m.string("IpAddressType"),
                tags: tags(&m)?,
            }),
            "DescribeLoadBalancers" => Request::DescribeLoadBalancers(DescribeLoadBalancers {
                load_balancer_arns: m.strings_or_empty("LoadBalancerArns")?,
                names: m.strings_or_empty("Names")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
            }),
            "DeleteLoadBalancer" => Request::DeleteLoadBalancer {
                load_balancer_arn: m.required("LoadBalancerArn")?,
            },
            "DescribeLoadBalancerAttributes" => Request::DescribeLoadBalancerAttributes {
                load_balancer_arn: m.required("LoadBalancerArn")?,
            },
            "ModifyLoadBalancerAttributes" => Request::ModifyLoadBalancerAttributes {
                load_balancer_arn: m.required("LoadBalancerArn")?,
                attributes: attributes(&m)?,
            },
            "CreateListener" => Request::CreateListener(CreateListener {
                load_balancer_arn: m.required("LoadBalancerArn")?,
                protocol: m.string("Protocol"),
                port: port(&m, "Port")?,
                ssl_policy: m.string("SslPolicy"),
                certificates: certificates(&m)?.unwrap_or_default(),
                default_actions: required_list(&m, "DefaultActions", action_of)?,
                alpn_policy: m.strings_or_empty("AlpnPolicy")?,
                tags: tags(&m)?,
            }),
            "DescribeListeners" => Request::DescribeListeners(DescribeListeners {
                load_balancer_arn: m.string("LoadBalancerArn"),
                listener_arns: m.strings_or_empty("ListenerArns")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
            }),
            "ModifyListener" => Request::ModifyListener(ModifyListener {
                listener_arn: m.required("ListenerArn")?,
                port: port(&m, "Port")?,
                protocol: m.string("Protocol"),
                ssl_policy: m.string("SslPolicy"),
                certificates: certificates(&m)?,
                default_actions: list(&m, "DefaultActions", action_of)?,
                alpn_policy: m.strings("AlpnPolicy")?,
            }),
            "DeleteListener" => Request::DeleteListener {
                listener_arn: m.required("ListenerArn")?,
            },
            "CreateRule" => Request::CreateRule(CreateRule {
                listener_arn: m.required("ListenerArn")?,
                conditions: required_list(&m, "Conditions", condition_of)?,
                priority: m
                    .integer("Priority", "a priority from 1 to 50000")?
                    .ok_or_else(|| ElbError::missing("Priority"))?,
                actions: required_list(&m, "Actions", action_of)?,
                tags: tags(&m)?,
                transforms: list(&m, "Transforms", transform_of)?.unwrap_or_default(),
            }),
            "DescribeRules" => Request::DescribeRules(DescribeRules {
                listener_arn: m.string("ListenerArn"),
                rule_arns: m.strings_or_empty("RuleArns")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
            }),
            "ModifyRule" => Request::ModifyRule(ModifyRule {
                rule_arn: m.required("RuleArn")?,
                conditions: list(&m, "Conditions", condition_of)?,
                actions: list(&m, "Actions", action_of)?,
                transforms: list(&m, "Transforms", transform_of)?,
                reset_transforms: m.boolean("ResetTransforms")?,
            }),
            "DeleteRule" => Request::DeleteRule {
                rule_arn: m.required("RuleArn")?,
            },
            "SetRulePriorities" => Request::SetRulePriorities {
                rule_priorities: required_list(&m, "RulePriorities", |p| {
                    Ok(RulePriorityPair {
                        rule_arn: p.required("RuleArn")?,
                        priority: p
                            .integer("Priority", "a priority from 1 to 50000")?
                            .ok_or_else(|| ElbError::missing(&p.path("Priority")))?,
                    })
                })?,
            },
            "CreateTargetGroup" => Request::CreateTargetGroup(CreateTargetGroup {
                name: m.required("Name")?,
                protocol: m.string("Protocol"),
                protocol_version: m.string("ProtocolVersion"),
                port: port(&m, "Port")?,
                vpc_id: m.string("VpcId"),
                health_check: health_check(&m)?,
                target_type: m.string("TargetType"),
                ip_address_type: m.string("IpAddressType"),
                tags: tags(&m)?,
            }),
            "DescribeTargetGroups" => Request::DescribeTargetGroups(DescribeTargetGroups {
                load_balancer_arn: m.string("LoadBalancerArn"),
                target_group_arns: m.strings_or_empty("TargetGroupArns")?,
                names: m.strings_or_empty("Names")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
            }),
            "ModifyTargetGroup" => Request::ModifyTargetGroup(ModifyTargetGroup {
                target_group_arn: m.required("TargetGroupArn")?,
                health_check: health_check(&m)?,
            }),
            "DeleteTargetGroup" => Request::DeleteTargetGroup {
                target_group_arn: m.required("TargetGroupArn")?,
            },
            "DescribeTargetGroupAttributes" => Request::DescribeTargetGroupAttributes {
                target_group_arn: m.required("TargetGroupArn")?,
            },
            "ModifyTargetGroupAttributes" => Request::ModifyTargetGroupAttributes {
                target_group_arn: m.required("TargetGroupArn")?,
                attributes: attributes(&m)?,
            },
            "RegisterTargets" => Request::RegisterTargets {
                target_group_arn: m.required("TargetGroupArn")?,
                targets: required_list(&m, "Targets", target_of)?,
            },
            "DeregisterTargets" => Request::DeregisterTargets {
                target_group_arn: m.required("TargetGroupArn")?,
                targets: required_list(&m, "Targets", target_of)?,
            },
            "DescribeTargetHealth" => Request::DescribeTargetHealth(DescribeTargetHealth {
                target_group_arn: m.required("TargetGroupArn")?,
                targets: list(&m, "Targets", target_of)?.unwrap_or_default(),
                include: m.strings_or_empty("Include")?,
            }),
            "AddTags" => Request::AddTags {
                resource_arns: required_strings(&m, "ResourceArns")?,
                tags: required_list(&m, "Tags", tag_of)?,
            },
            "RemoveTags" => Request::RemoveTags {
                resource_arns: required_strings(&m, "ResourceArns")?,
                tag_keys: required_strings(&m, "TagKeys")?,
            },
            "DescribeTags" => Request::DescribeTags {
                resource_arns: required_strings(&m, "ResourceArns")?,
            },
            "DescribeSSLPolicies" => Request::DescribeSslPolicies {
                names: m.strings_or_empty("Names")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
                load_balancer_type: m.string("LoadBalancerType"),
            },
            "AddListenerCertificates" => Request::AddListenerCertificates {
                listener_arn: m.required("ListenerArn")?,
                certificates: required_certificates(&m)?,
            },
            "RemoveListenerCertificates" => Request::RemoveListenerCertificates {
                listener_arn: m.required("ListenerArn")?,
                certificates: required_certificates(&m)?,
            },
            "DescribeListenerCertificates" => Request::DescribeListenerCertificates {
                listener_arn: m.required("ListenerArn")?,
                marker: m.string("Marker"),
                page_size: page_size(&m)?,
            },
            other => {
                return Err(ElbError::new(
                    ErrorCode::InvalidAction,
                    format!("The action {other} is not valid for this web service."),
                ));
            }
        };
        Ok(req)
    }

    /// The action's name (`CreateRule`), as the XML answer's elements spell it.
    pub fn action(&self) -> &'static str {
        match self {
            Request::CreateLoadBalancer(_) => "CreateLoadBalancer",
            Request::DescribeLoadBalancers(_) => "DescribeLoadBalancers",
            Request::DeleteLoadBalancer { .. } => "DeleteLoadBalancer",
            Request::DescribeLoadBalancerAttributes { .. } => "DescribeLoadBalancerAttributes",
            Request::ModifyLoadBalancerAttributes { .. } => "ModifyLoadBalancerAttributes",
            Request::CreateListener(_) => "CreateListener",
            Request::DescribeListeners(_) => "DescribeListeners",
            Request::ModifyListener(_) => "ModifyListener",
            Request::DeleteListener { .. } => "DeleteListener",
            Request::CreateRule(_) => "CreateRule",
            Request::DescribeRules(_) => "DescribeRules",
            Request::ModifyRule(_) => "ModifyRule",
            Request::DeleteRule { .. } => "DeleteRule",
            Request::SetRulePriorities { .. } => "SetRulePriorities",
            Request::CreateTargetGroup(_) => "CreateTargetGroup",
            Request::DescribeTargetGroups(_) => "DescribeTargetGroups",
            Request::ModifyTargetGroup(_) => "ModifyTargetGroup",
            Request::DeleteTargetGroup { .. } => "DeleteTargetGroup",
            Request::DescribeTargetGroupAttributes { .. } => "DescribeTargetGroupAttributes",
            Request::ModifyTargetGroupAttributes { .. } => "ModifyTargetGroupAttributes",
            Request::RegisterTargets { .. } => "RegisterTargets",
            Request::DeregisterTargets { .. } => "DeregisterTargets",
            Request::DescribeTargetHealth(_) => "DescribeTargetHealth",
            Request::AddTags { .. } => "AddTags",
            Request::RemoveTags { .. } => "RemoveTags",
            Request::DescribeTags { .. } => "DescribeTags",
            Request::DescribeSslPolicies { .. } => "DescribeSSLPolicies",
            Request::AddListenerCertificates { .. } => "AddListenerCertificates",
            Request::RemoveListenerCertificates { .. } => "RemoveListenerCertificates",
            Request::DescribeListenerCertificates { .. } => "DescribeListenerCertificates",
        }
    }
}

fn list<T>(m: &Members<'_>, name: &str, f: impl Fn(&Members<'_>) -> R<T>) -> R<Option<Vec<T>>> {
    match m.list(name)? {
        None => Ok(None),
        Some(items) => items.iter().map(f).collect::<R<Vec<T>>>().map(Some),
    }
}

fn required_list<T>(m: &Members<'_>, name: &str, f: impl Fn(&Members<'_>) -> R<T>) -> R<Vec<T>> {
    list(m, name, f)?.ok_or_else(|| ElbError::missing(&m.path(name)))
}

fn required_strings(m: &Members<'_>, name: &str) -> R<Vec<String>> {
    m.strings(name)?.ok_or_else(|| ElbError::missing(&m.path(name)))
}

fn port(m: &Members<'_>, name: &str) -> R<Option<u16>> {
    Ok(m.integer(name, "a port from 1 to 65535")?)
}

fn page_size(m: &Members<'_>) -> R<Option<u32>> {
    Ok(m.integer("PageSize", "a page size from 1 to 400")?)
}

fn tags(m: &Members<'_>) -> R<Vec<Tag>> {
    Ok(list(m, "Tags", tag_of)?.unwrap_or_default())
}

fn tag_of(p: &Members<'_>) -> R<Tag> {
    Ok(Tag {
        key: p.required("Key")?,
        value: p.string("Value"),
    })
}

fn attributes(m: &Members<'_>) -> R<Vec<Attribute>> {
    required_list(m, "Attributes", |p| {
        Ok(Attribute {
            key: p.required("Key")?,
            value: p.string("Value").unwrap_or_default(),
        })
    })
}

fn required_certificates(m: &Members<'_>) -> R<Vec<Certificate>> {
    certificates(m)?.ok_or_else(|| ElbError::missing("Certificates"))
}

fn certificates(m: &Members<'_>) -> R<Option<Vec<Certificate>>> {
    list(m, "Certificates", |p| {
        Ok(Certificate {
            certificate_arn: p.string("CertificateArn"),
            is_default: p.boolean("IsDefault")?,
        })
    })
}

fn target_of(p: &Members<'_>) -> R<TargetDescription> {
    Ok(TargetDescription {
        id: p.required("Id")?,
        port: port(p, "Port")?,
        availability_zone: p.string("AvailabilityZone"),
    })
}

fn health_check(m: &Members<'_>) -> R<HealthCheckSettings> {
    Ok(HealthCheckSettings {
        health_check_protocol: m.string("HealthCheckProtocol"),
        health_check_port: m.string("HealthCheckPort"),
        health_check_enabled: m.boolean("HealthCheckEnabled")?,
        health_check_path: m.string("HealthCheckPath"),
        health_check_interval_seconds: m.integer("HealthCheckIntervalSeconds", "a number of seconds")?,
        health_check_timeout_seconds: m.integer("HealthCheckTimeoutSeconds", "a number of seconds")?,
        healthy_threshold_count: m.integer("HealthyThresholdCount", "a count")?,
        unhealthy_threshold_count: m.integer("UnhealthyThresholdCount", "a count")?,
        matcher: m.structure("Matcher").map(|x| Matcher {
            http_code: x.string("HttpCode"),
            grpc_code: x.string("GrpcCode"),
        }),
    })
}

fn values_config(m: &Members<'_>, name: &str) -> R<Option<ValuesConfig>> {
    let Some(c) = m.structure(name) else {
        return Ok(None);
    };
    Ok(Some(ValuesConfig {
        values: c.strings("Values")?,
        regex_values: c.strings("RegexValues")?,
    }))
}

/// `RuleCondition`.
pub(crate) fn condition_of(p: &Members<'_>) -> R<RuleCondition> {
    Ok(RuleCondition {
        field: p.string("Field").unwrap_or_default(),
        values: p.strings("Values")?,
        host_header_config: values_config(p, "HostHeaderConfig")?,
        path_pattern_config: values_config(p, "PathPatternConfig")?,
        http_header_config: match p.structure("HttpHeaderConfig") {
            None => None,
            Some(c) => Some(HttpHeaderConditionConfig {
                http_header_name: c.string("HttpHeaderName"),
                values: c.strings("Values")?,
                regex_values: c.strings("RegexValues")?,
            }),
        },
        query_string_config: match p.structure("QueryStringConfig") {
            None => None,
            Some(c) => Some(QueryStringConditionConfig {
                values: list(&c, "Values", |kv| {
                    Ok(QueryStringKeyValuePair {
                        key: kv.string("Key"),
                        value: kv.string("Value"),
                    })
                })?
                .unwrap_or_default(),
            }),
        },
        http_request_method_config: values_config(p, "HttpRequestMethodConfig")?,
        source_ip_config: values_config(p, "SourceIpConfig")?,
        regex_values: p.strings("RegexValues")?,
    })
}

/// `Action`.
pub(crate) fn action_of(p: &Members<'_>) -> R<Action> {
    Ok(Action {
        kind: p.required("Type")?,
        order: p.integer("Order", "an order from 1 to 50000")?,
        target_group_arn: p.string("TargetGroupArn"),
        forward_config: match p.structure("ForwardConfig") {
            None => None,
            Some(c) => Some(ForwardActionConfig {
                target_groups: list(&c, "TargetGroups", |t| {
                    Ok(TargetGroupTuple {
                        target_group_arn: t.string("TargetGroupArn"),
                        weight: t.integer("Weight", "a weight from 0 to 999")?,
                    })
                })?,
                target_group_stickiness_config: match c.structure("TargetGroupStickinessConfig") {
                    None => None,
                    Some(s) => Some(TargetGroupStickinessConfig {
                        enabled: s.boolean("Enabled")?,
                        duration_seconds: s.integer("DurationSeconds", "a number of seconds")?,
                    }),
                },
            }),
        },
        redirect_config: match p.structure("RedirectConfig") {
            None => None,
            Some(c) => Some(RedirectActionConfig {
                protocol: c.string("Protocol"),
                port: c.string("Port"),
                host: c.string("Host"),
                path: c.string("Path"),
                query: c.string("Query"),
                status_code: c.required("StatusCode")?,
            }),
        },
        fixed_response_config: match p.structure("FixedResponseConfig") {
            None => None,
            Some(c) => Some(FixedResponseActionConfig {
                message_body: c.string("MessageBody"),
                status_code: c.required("StatusCode")?,
                content_type: c.string("ContentType"),
            }),
        },
        authenticate_oidc_config: p.json("AuthenticateOidcConfig")?,
        authenticate_cognito_config: p.json("AuthenticateCognitoConfig")?,
        jwt_validation_config: p.json("JwtValidationConfig")?,
    })
}

/// `RuleTransform`.
pub(crate) fn transform_of(p: &Members<'_>) -> R<RuleTransform> {
    let rewrites = |name: &str| -> R<Option<RewriteConfigs>> {
        let Some(c) = p.structure(name) else {
            return Ok(None);
        };
        Ok(Some(RewriteConfigs {
            rewrites: list(&c, "Rewrites", |r| {
                Ok(RewriteConfig {
                    regex: r.required("Regex")?,
                    replace: r.required("Replace")?,
                })
            })?
            .unwrap_or_default(),
        }))
    };
    Ok(RuleTransform {
        kind: p.required("Type")?,
        host_header_rewrite_config: rewrites("HostHeaderRewriteConfig")?,
        url_rewrite_config: rewrites("UrlRewriteConfig")?,
    })
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
