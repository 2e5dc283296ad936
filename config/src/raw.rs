//! The configuration exactly as written (TOML or JSON), before validation.
//!
//! Every struct denies unknown keys. Enumerations are kept as strings and fields are
//! optional here so that validation, not serde, reports a bad or missing value: serde
//! stops at the first problem, validation reports them all with a fix.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A number of seconds: an integer or a fraction (`0.5` for fast checks in tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value ALB writes as a string that people also write as a number (`port = "443"`,
/// `status_code = 404`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for Scalar {
    /// As the user wrote it, without quotes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an [admin] table")]
pub(crate) struct RawAdmin {
    pub address: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub state_file: Option<String>,
    pub api_listener_address: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an [access_log] table")]
pub(crate) struct RawAccessLog {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [docker] table")]
pub(crate) struct RawDocker {
    pub endpoint: Option<String>,
    pub host_address: Option<String>,
    pub resync_seconds: Option<Seconds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
pub(crate) struct RawListener {
    pub name: Option<String>,
    pub address: Option<String>,
    pub protocol: Option<String>,
    pub certificates: Option<Vec<RawCertificate>>,
    pub idle_timeout_seconds: Option<Seconds>,
    pub header_timeout_seconds: Option<Seconds>,
    pub client_keep_alive_seconds: Option<Seconds>,
    pub xff_mode: Option<String>,
    pub xff_client_port: Option<bool>,
    pub preserve_host_header: Option<bool>,
    pub server_header: Option<bool>,
    pub desync_mitigation_mode: Option<String>,
    pub drop_invalid_header_fields: Option<bool>,
    pub ssl_policy: Option<String>,
    pub mutual_authentication: Option<RawMutualAuthentication>,
    pub http2: Option<bool>,
    pub default_action: Option<Value>,
    #[serde(default)]
    pub rule: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a { cert_file, key_file } table")]
pub(crate) struct RawCertificate {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a { mode, trust_store, ignore_client_certificate_expiry, advertise_trust_store_ca_names } table"
)]
pub(crate) struct RawMutualAuthentication {
    pub mode: Option<String>,
    pub trust_store: Option<String>,
    pub ignore_client_certificate_expiry: Option<bool>,
    pub advertise_trust_store_ca_names: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule table")]
pub(crate) struct RawRule {
    pub priority: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Value>,
    #[serde(default)]
    pub transforms: Vec<Value>,
    pub action: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a condition table { field, values }")]
pub(crate) struct RawCondition {
    pub field: Option<String>,
    pub name: Option<String>,
    pub values: Option<Vec<Value>>,
    pub regex_values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a { key, value } table")]
pub(crate) struct RawQueryPair {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a transform table { type, rewrites }")]
pub(crate) struct RawTransform {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub rewrites: Vec<RawRewrite>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a { regex, replace } table")]
pub(crate) struct RawRewrite {
    pub regex: String,
    pub replace: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an action table { type, ... }")]
pub(crate) struct RawAction {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    // forward
    pub target_group: Option<String>,
    pub target_groups: Option<Vec<RawWeightedTargetGroup>>,
    pub stickiness_seconds: Option<Seconds>,
    // redirect
    pub protocol: Option<String>,
    pub port: Option<Scalar>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    // redirect and fixed-response
    pub status_code: Option<Scalar>,
    // fixed-response
    pub content_type: Option<String>,
    pub message_body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a { name, weight } table")]
pub(crate) struct RawWeightedTargetGroup {
    pub name: String,
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a target group table")]
pub(crate) struct RawTargetGroup {
    pub protocol: Option<String>,
    pub protocol_version: Option<String>,
    pub target_type: Option<String>,
    pub algorithm: Option<String>,
    pub deregistration_delay_seconds: Option<Seconds>,
    pub slow_start_seconds: Option<Seconds>,
    pub stickiness: Option<RawStickiness>,
    pub targets: Option<Vec<String>>,
    pub health_check: Option<RawHealthCheck>,
    pub docker: Option<RawDockerSelector>,
    pub use_docker_health: Option<bool>,
    pub retry_idempotent: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a stickiness table { type, duration_seconds }"
)]
pub(crate) struct RawStickiness {
    pub enabled: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub duration_seconds: Option<Seconds>,
    pub cookie_name: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a health_check table")]
pub(crate) struct RawHealthCheck {
    pub enabled: Option<bool>,
    pub protocol: Option<String>,
    pub path: Option<String>,
    pub port: Option<Scalar>,
    pub interval_seconds: Option<Seconds>,
    pub timeout_seconds: Option<Seconds>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub matcher: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a docker selector table { labels, container_port }"
)]
pub(crate) struct RawDockerSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub container_port: Option<i64>,
}
