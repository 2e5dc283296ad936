//! Task definitions in ECS's own JSON (botocore's member names): what
//! RegisterTaskDefinition reads, what DescribeTaskDefinition answers and what the state
//! file keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `TaskDefinition` (and RegisterTaskDefinition's input: the same members, less the ones
/// ECS sets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// `ACTIVE` or `INACTIVE` (deregistered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `bridge` (the default on EC2), `host` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires_compatibilities: Vec<String>,
    /// Task-level size (Fargate's); containers' own `cpu` / `memory` are the Docker limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
    /// Members hostalb does not carry out (checked by [`crate::validate`]).
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, Value>,
}

/// `ContainerDefinition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    /// CPU units (1024 = one core): Docker's CPU shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// Hard limit in MiB: Docker's memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Soft limit in MiB: Docker's memory reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Absent means essential, as in ECS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_labels: BTreeMap<String, String>,
    /// `name` or `name:alias` (bridge mode only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Seconds between SIGTERM and SIGKILL when the task stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    /// Seconds a dependency's condition may take before the task gives up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u32>,
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, Value>,
}

impl ContainerDefinition {
    /// ECS's default: a container is essential unless it says otherwise.
    pub fn is_essential(&self) -> bool {
        self.essential.unwrap_or(true)
    }
}

/// `PortMapping`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortMapping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// 0 or absent in bridge mode: a dynamic host port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `tcp` (default) or `udp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl PortMapping {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("tcp")
    }
}

/// `KeyValuePair` (environment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValuePair {
    pub name: String,
    pub value: String,
}

/// `ContainerDependency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerDependency {
    pub container_name: String,
    /// `START`, `COMPLETE`, `SUCCESS` or `HEALTHY`.
    pub condition: String,
}

/// `HealthCheck`: Docker's health check, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthCheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` (or `["NONE"]`).
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u32>,
}

/// Health check defaults, ECS's (seconds; retries a count).
pub mod health_defaults {
    /// ECS: 30 s between checks.
    pub const INTERVAL: u32 = 30;
    /// ECS: a check fails after 5 s.
    pub const TIMEOUT: u32 = 5;
    /// ECS: 3 failures in a row make the container unhealthy.
    pub const RETRIES: u32 = 3;
    /// ECS: no start period unless given.
    pub const START_PERIOD: u32 = 0;
}

/// A task's network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    None,
}

impl TaskDefinition {
    /// The network mode (validated at registration; bridge when absent, as on EC2).
    pub fn mode(&self) -> NetworkMode {
        match self.network_mode.as_deref() {
            Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            _ => NetworkMode::Bridge,
        }
    }
}
