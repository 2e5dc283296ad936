//! The ECS shapes `hostalb import` reads, in botocore's member names (camelCase): what
//! `aws ecs describe-services` and `aws ecs describe-task-definition` print. Only the
//! members the import uses are typed; the rest is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `DescribeServicesResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribeServicesOutput {
    pub services: Vec<Service>,
    pub failures: Vec<Failure>,
}

/// `Failure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Failure {
    pub arn: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// `Service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub service_arn: Option<String>,
    pub service_name: String,
    pub cluster_arn: Option<String>,
    pub load_balancers: Vec<LoadBalancer>,
    pub status: Option<String>,
    pub desired_count: Option<u32>,
    pub launch_type: Option<String>,
    /// `arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION`, or `FAMILY:REVISION`.
    pub task_definition: Option<String>,
    pub health_check_grace_period_seconds: Option<u32>,
}

/// `LoadBalancer` (of a service): the target group its tasks register in, and which
/// container's port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancer {
    pub target_group_arn: Option<String>,
    /// Classic load balancers only.
    pub load_balancer_name: Option<String>,
    pub container_name: Option<String>,
    pub container_port: Option<u16>,
}

/// `DescribeTaskDefinitionResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribeTaskDefinitionOutput {
    pub task_definition: TaskDefinition,
}

/// `TaskDefinition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDefinition {
    pub task_definition_arn: Option<String>,
    pub family: String,
    pub revision: Option<u32>,
    /// `bridge` | `host` | `awsvpc` | `none`.
    pub network_mode: Option<String>,
    pub container_definitions: Vec<ContainerDefinition>,
}

/// `ContainerDefinition` (the members the import reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: Option<String>,
    pub port_mappings: Vec<PortMapping>,
    pub essential: Option<bool>,
    pub docker_labels: BTreeMap<String, String>,
}

/// `PortMapping`: `hostPort` 0 or absent in bridge mode is a dynamic host port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortMapping {
    pub container_port: Option<u16>,
    pub host_port: Option<u16>,
    pub protocol: Option<String>,
}

/// The Docker labels the ECS agent sets on every container of a task (alb-spec §9).
pub mod labels {
    /// The task definition's family.
    pub const TASK_DEFINITION_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    /// The task definition's revision.
    pub const TASK_DEFINITION_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
    /// The container's name in the task definition.
    pub const CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
    /// The cluster's ARN.
    pub const CLUSTER: &str = "com.amazonaws.ecs.cluster";
    /// The task's ARN.
    pub const TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
}

/// The family of a task definition reference: `arn:…:task-definition/FAMILY:REV`,
/// `FAMILY:REV` or `FAMILY`.
pub fn task_definition_family(reference: &str) -> &str {
    let tail = reference
        .rsplit_once(":task-definition/")
        .map(|(_, t)| t)
        .unwrap_or(reference);
    tail.split_once(':').map(|(f, _)| f).unwrap_or(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_task_definition_references() {
        assert_eq!(
            task_definition_family("arn:aws:ecs:us-east-1:1:task-definition/shop-api:3"),
            "shop-api"
        );
        assert_eq!(task_definition_family("shop-api:3"), "shop-api");
        assert_eq!(task_definition_family("shop-api"), "shop-api");
    }

    #[test]
    fn reads_describe_services_output() {
        let text = r#"{"services":[{"serviceName":"api","taskDefinition":"arn:aws:ecs:us-east-1:1:task-definition/api:2",
            "loadBalancers":[{"targetGroupArn":"arn:tg","containerName":"app","containerPort":8080}],"events":[]}],"failures":[]}"#;
        let out: DescribeServicesOutput = serde_json::from_str(text).unwrap();
        assert_eq!(out.services[0].load_balancers[0].container_port, Some(8080));
    }
}
