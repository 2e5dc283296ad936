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
    /// `bridge` (the default on EC2), `host`, `awsvpc` (each task its own address) or
    /// `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    pub container_definitions: Vec<ContainerDefinition>,
    /// Data volumes the containers mount (`mountPoints`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<VolumeFrom>,
    /// Files of `VAR=VALUE` lines: local paths here (see [`crate::envfiles`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment_files: Vec<EnvironmentFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
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

/// `Volume` of a task definition: a bind mount of the host (`host.sourcePath`), a Docker
/// volume (`dockerVolumeConfiguration`), or, with neither, a Docker volume of the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_volume_configuration: Option<DockerVolumeConfiguration>,
    /// EFS, FSx and `configuredAtLaunch`: refused by [`crate::validate`].
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, Value>,
}

/// `HostVolumeProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostVolume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

/// `DockerVolumeConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DockerVolumeConfiguration {
    /// `task` (the default: made for the task, removed with it) or `shared` (kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Shared scope only: create the volume when it does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoprovision: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Volume {
    /// A bind mount of this host path.
    pub fn source_path(&self) -> Option<&str> {
        self.host
            .as_ref()
            .and_then(|h| h.source_path.as_deref())
            .filter(|p| !p.is_empty())
    }

    /// A Docker volume kept after the task (scope `shared`).
    pub fn is_shared(&self) -> bool {
        self.docker_volume_configuration
            .as_ref()
            .is_some_and(|d| d.scope.as_deref() == Some("shared"))
    }
}

/// `MountPoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// `VolumeFrom`: every mount of another container of the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeFrom {
    pub source_container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// `EnvironmentFile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvironmentFile {
    pub value: String,
    /// `s3`, the one type ECS has.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `LogConfiguration`: Docker's log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogConfiguration {
    pub log_driver: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Options from Secrets Manager or SSM: refused by [`crate::validate`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_options: Vec<Value>,
}

/// `HostEntry` (extraHosts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

/// `Ulimit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

/// `LinuxParameters`: `initProcessEnabled` is carried out; the other members are refused
/// by [`crate::validate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, Value>,
}

/// A task's network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    /// Each task its own network namespace and address (an `ip` target).
    Awsvpc,
    None,
}

impl TaskDefinition {
    /// The network mode (validated at registration; bridge when absent, as on EC2).
    pub fn mode(&self) -> NetworkMode {
        match self.network_mode.as_deref() {
            Some("host") => NetworkMode::Host,
            Some("awsvpc") => NetworkMode::Awsvpc,
            Some("none") => NetworkMode::None,
            _ => NetworkMode::Bridge,
        }
    }
}
