//! What the ECS API made: clusters, task definitions and tasks, in ECS's shapes, kept in
//! the state file under `Ecs`. [`Shared`] is the one copy: the ECS API changes it, and
//! whoever writes the state file serializes its current content.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::TaskDefinition;

/// Everything the ECS API made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcsState {
    /// Clusters other than `default` (which always exists).
    pub clusters: Vec<Cluster>,
    pub task_definitions: Vec<TaskDefinition>,
    /// Tasks not yet forgotten (stopped ones are kept for [`crate::STOPPED_TASK_KEPT`]).
    pub tasks: Vec<Task>,
    pub services: Vec<Service>,
}

impl EcsState {
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
            && self.task_definitions.is_empty()
            && self.tasks.is_empty()
            && self.services.is_empty()
    }
}

/// A service: ECS's `Service` shape, less what is computed when it is described.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub load_balancers: Vec<ServiceLoadBalancer>,
    /// `ACTIVE`, `DRAINING` (deleted, tasks stopping), `INACTIVE`.
    pub status: String,
    pub created_at: f64,
    /// The one deployment's id (`ecs-svc/...`), the tasks' `startedBy`.
    pub deployment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<u32>,
    /// Newest first, as ECS lists them; bounded by [`MAX_EVENTS`].
    pub events: Vec<ServiceEvent>,
    /// The deployments, the PRIMARY one last (empty in a state file written before
    /// deployments: then `deployment_id` and `task_definition` are the one PRIMARY).
    pub deployments: Vec<Deployment>,
    pub deployment_configuration: DeploymentConfiguration,
    /// The task definition of the last deployment that COMPLETED: what the circuit
    /// breaker rolls back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_task_definition: Option<String>,
    /// Deployments that ended (completed, replaced, rolled back), oldest first: what
    /// ListServiceDeployments lists besides the current ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub past_deployments: Vec<Deployment>,
    /// `awsvpcConfiguration` as given (subnets and security groups mean nothing on one
    /// host: kept and shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<serde_json::Value>,
}

/// ECS's `Deployment`, less the counts computed from the tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` or `ACTIVE`.
    pub status: String,
    pub task_definition: String,
    pub created_at: f64,
    pub updated_at: f64,
    /// `IN_PROGRESS`, `COMPLETED`, `FAILED`.
    pub rollout_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
    /// A blue/green (BLUE_GREEN, LINEAR, CANARY) deployment's progress; `None` for a
    /// rolling one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreen>,
}

/// Where a blue/green deployment is: its lifecycle stage, the target groups its (green)
/// tasks register in and the ones the blue tasks serve from, one per load balancer, and
/// the production traffic share moved to green so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlueGreen {
    /// ECS's `lifecycleStage`: SCALE_UP, TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT,
    /// BAKE_TIME, CLEAN_UP; then the deployment is COMPLETED (or rolled back).
    pub stage: String,
    /// When the current stage began (seconds since the epoch).
    pub stage_started_at: f64,
    /// Per load balancer: the group green tasks register in.
    pub green_groups: Vec<String>,
    /// Per load balancer: the group the previous deployment's tasks serve from.
    pub blue_groups: Vec<String>,
    /// Production traffic on green, in percent.
    pub production_percent: f64,
    /// The strategy this deployment runs (the configuration's at its start).
    pub strategy: String,
    /// The deployment that was PRIMARY before this one (the blue one), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_deployment: Option<String>,
    /// ECS's ServiceDeployment `status` (IN_PROGRESS, SUCCESSFUL, ROLLBACK_IN_PROGRESS,
    /// ROLLBACK_SUCCESSFUL).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
}

/// ECS's `DeploymentConfiguration` (the rolling part).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<CircuitBreaker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake_time_in_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_configuration: Option<LinearConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_configuration: Option<CanaryConfiguration>,
    /// Read only to be refused: hostalb runs no lifecycle hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_hooks: Option<serde_json::Value>,
}

/// `LinearConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinearConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_bake_time_in_minutes: Option<u32>,
}

/// `CanaryConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CanaryConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_bake_time_in_minutes: Option<u32>,
}

/// `DeploymentCircuitBreaker`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// Events a service keeps (ECS shows the latest 100).
pub const MAX_EVENTS: usize = 100;

/// `LoadBalancer` of a service: the target group its tasks register in, for which
/// container and port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceLoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    /// Blue/green deployments' alternate group and listener rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced_configuration: Option<AdvancedConfiguration>,
}

/// `AdvancedConfiguration` of a service's load balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdvancedConfiguration {
    pub alternate_target_group_arn: String,
    pub production_listener_rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    pub role_arn: String,
}

/// `ServiceEvent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: f64,
    pub message: String,
}

/// A cluster made by CreateCluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cluster {
    pub cluster_name: String,
    pub cluster_arn: String,
}

/// A task: ECS's `Task` shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    pub task_arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    pub containers: Vec<Container>,
    /// `PROVISIONING`, `PENDING`, `RUNNING`, `DEACTIVATING`, `STOPPING`, `STOPPED`.
    pub last_status: String,
    /// `RUNNING` or `STOPPED`.
    pub desired_status: String,
    pub launch_type: String,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    pub created_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// `TaskFailedToStart`, `EssentialContainerExited`, `UserInitiated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    /// `HEALTHY`, `UNHEALTHY`, `UNKNOWN`.
    pub health_status: String,
    /// Bumped on every change, as ECS's `version`.
    pub version: u64,
    /// Targets this task was registered as (a service's load balancers): target group
    /// ARN, host port. Not an ECS member: DescribeTasks leaves it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<(String, u16)>,
    /// awsvpc: the task's network interface (ECS's `ElasticNetworkInterface` attachment,
    /// here the address of its network namespace on the Docker host).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// awsvpc: the Docker name of the task's pause container. Not an ECS member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_container: Option<String>,
    /// The task's volumes on Docker. Not an ECS member: DescribeTasks leaves it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::volumes::TaskVolume>,
}

/// ECS's `Attachment` (an awsvpc task's network interface).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attachment {
    pub id: String,
    /// `ElasticNetworkInterface`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `PRECREATED`, `ATTACHED`, `DELETED`.
    pub status: String,
    pub details: Vec<KeyValue>,
}

/// ECS's `KeyValuePair` of an attachment's details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValue {
    pub name: String,
    pub value: String,
}

/// The detail of an awsvpc attachment that holds the task's address (ECS's spelling).
pub const PRIVATE_IPV4: &str = "privateIPv4Address";

impl Task {
    /// The awsvpc task's own address, once its network namespace exists.
    pub fn private_ip(&self) -> Option<std::net::IpAddr> {
        self.attachments
            .iter()
            .flat_map(|a| a.details.iter())
            .find(|d| d.name == PRIVATE_IPV4)
            .and_then(|d| d.value.parse().ok())
    }

    /// Where a load balancer reaches `container`'s `container_port`: the task's own
    /// address and the container port (awsvpc, an `ip` target), else this host and the
    /// bound host port.
    pub fn target(&self, container: &str, container_port: u16) -> Option<(std::net::IpAddr, u16)> {
        let c = self.containers.iter().find(|c| c.name == container)?;
        if let Some(ip) = self.private_ip() {
            return Some((ip, container_port));
        }
        c.network_bindings
            .iter()
            .find(|b| b.container_port == container_port)
            .map(|b| (std::net::IpAddr::from([127, 0, 0, 1]), b.host_port))
    }

    /// The address its targets were registered with (see [`Task::target`]).
    pub fn target_ip(&self) -> std::net::IpAddr {
        self.private_ip()
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
    }
}

/// A container of a task: ECS's `Container` shape, plus the Docker name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub container_arn: String,
    pub task_arn: String,
    pub name: String,
    pub image: String,
    /// The Docker container id, once created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// `PENDING`, `RUNNING`, `STOPPED`.
    pub last_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub network_bindings: Vec<NetworkBinding>,
    /// `HEALTHY`, `UNHEALTHY`, `UNKNOWN`.
    pub health_status: String,
    pub essential: bool,
    /// The Docker name (`ecs-FAMILY-REV-NAME-RANDOM`), not an ECS member: DescribeTasks
    /// leaves it out.
    pub docker_name: String,
    /// awsvpc: the task's interface, as ECS shows it on each container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}

/// ECS's `NetworkInterface` of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    pub attachment_id: String,
    pub private_ipv4_address: String,
}

/// `NetworkBinding`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkBinding {
    #[serde(rename = "bindIP")]
    pub bind_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: String,
}

/// The one copy of [`EcsState`], shared by the ECS API and the state file's writer.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<EcsState>>);

impl Shared {
    pub fn new(state: EcsState) -> Shared {
        Shared(Arc::new(Mutex::new(state)))
    }

    /// The state, locked. Held only for plain reads and changes: never across an await,
    /// never while the state file is written (writing serializes through this lock).
    pub fn lock(&self) -> MutexGuard<'_, EcsState> {
        // A panic while locked leaves plain data; the state stays usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.lock() == *other.lock()
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.lock().clone().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shared, D::Error> {
        EcsState::deserialize(d).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_state_serializes_its_current_content_and_reads_back() {
        let shared = Shared::default();
        assert!(shared.is_empty());
        let copy = shared.clone();
        copy.lock().clusters.push(Cluster {
            cluster_name: "c".into(),
            cluster_arn: "arn:c".into(),
        });
        assert!(!shared.is_empty(), "clones share one state");
        let text = serde_json::to_string(&shared).unwrap();
        assert!(text.contains("\"clusterName\":\"c\""), "{text}");
        let back: Shared = serde_json::from_str(&text).unwrap();
        assert_eq!(back, shared);
        let binding = NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port: 80,
            host_port: 49153,
            protocol: "tcp".into(),
        };
        assert!(serde_json::to_string(&binding).unwrap().contains("\"bindIP\""));
    }

    #[test]
    fn a_task_is_reached_at_its_own_address_in_awsvpc_else_at_its_host_port() {
        let mut t = Task {
            containers: vec![Container {
                name: "web".into(),
                network_bindings: vec![NetworkBinding {
                    bind_ip: "0.0.0.0".into(),
                    container_port: 80,
                    host_port: 49200,
                    protocol: "tcp".into(),
                }],
                ..Container::default()
            }],
            ..Task::default()
        };
        let local = std::net::IpAddr::from([127, 0, 0, 1]);
        assert_eq!(t.target("web", 80), Some((local, 49200)));
        assert_eq!(t.target("web", 81), None);
        assert_eq!(t.target("other", 80), None);
        assert_eq!(t.target_ip(), local);
        t.containers[0].network_bindings.clear();
        t.attachments = vec![crate::network::attachment("a", "eni-1", "172.18.0.5", None)];
        let own: std::net::IpAddr = "172.18.0.5".parse().unwrap();
        assert_eq!(t.target("web", 80), Some((own, 80)));
        assert_eq!(t.target_ip(), own);
        let text = serde_json::to_string(&t).unwrap();
        assert!(text.contains("\"privateIPv4Address\""), "{text}");
        assert!(text.contains("\"type\":\"ElasticNetworkInterface\""), "{text}");
    }
}
