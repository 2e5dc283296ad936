//! A task's data volumes, as the ECS agent makes them on Docker: `host.sourcePath` a bind
//! mount; `dockerVolumeConfiguration` with scope `task` (or a volume with neither, the
//! agent's local volume) a Docker volume `ecs-FAMILY-REV-NAME-RANDOM` made for the task and
//! removed with it; scope `shared` a Docker volume named as the volume, made when absent
//! and `autoprovision` is set, and kept. Containers mount them by `mountPoints`, and take
//! another container's mounts by `volumesFrom` (the sidecar pattern).

use serde::{Deserialize, Serialize};

use crate::Inner;
use crate::model::{ContainerDefinition, TaskDefinition};

/// Docker's own volume driver, the agent's default.
pub const LOCAL_DRIVER: &str = "local";

/// What a task volume is on Docker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A host path, bind-mounted.
    #[default]
    Bind,
    /// A Docker volume of this task, removed when it stops.
    Task,
    /// A Docker volume outliving the task.
    Shared,
}

/// One volume of a task: its task definition name and its Docker source (host path or
/// Docker volume name). Kept in the task's record, so that a restarted hostalb removes
/// the task's volumes too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskVolume {
    pub name: String,
    pub source: String,
    pub kind: Kind,
}

/// The volumes a new task of `td` uses (those a mount point names, as the agent makes
/// only those), with the Docker names they get; `random` gives each task volume its
/// suffix.
pub fn plan(td: &TaskDefinition, mut random: impl FnMut() -> String) -> Vec<TaskVolume> {
    let revision = td.revision.unwrap_or(1);
    td.volumes
        .iter()
        .filter(|v| {
            td.container_definitions
                .iter()
                .any(|c| c.mount_points.iter().any(|m| m.source_volume == v.name))
        })
        .map(|v| {
            let (source, kind) = if let Some(path) = v.source_path() {
                (path.to_owned(), Kind::Bind)
            } else if v.is_shared() {
                (v.name.clone(), Kind::Shared)
            } else {
                (
                    format!("ecs-{}-{revision}-{}-{}", td.family, v.name, random()),
                    Kind::Task,
                )
            };
            TaskVolume {
                name: v.name.clone(),
                source,
                kind,
            }
        })
        .collect()
}

/// Docker's `Binds` of a container: `source:containerPath[:ro]` per mount point.
pub fn binds(c: &ContainerDefinition, volumes: &[TaskVolume]) -> Vec<String> {
    c.mount_points
        .iter()
        .filter_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.source_volume)?;
            let ro = if m.read_only.unwrap_or(false) { ":ro" } else { "" };
            Some(format!("{}:{}{ro}", v.source, m.container_path))
        })
        .collect()
}

/// Docker's `VolumesFrom` of a container: `docker-name[:ro]` per volumesFrom entry;
/// `docker_name` maps a container of the task to its Docker name.
pub fn volumes_from(c: &ContainerDefinition, docker_name: impl Fn(&str) -> Option<String>) -> Vec<String> {
    c.volumes_from
        .iter()
        .filter_map(|f| {
            let name = docker_name(&f.source_container)?;
            let ro = if f.read_only.unwrap_or(false) { ":ro" } else { "" };
            Some(format!("{name}{ro}"))
        })
        .collect()
}

/// Makes the task's Docker volumes: its own ones, and the shared ones it may provision.
pub(crate) async fn provision(
    inner: &Inner,
    arn: &str,
    td: &TaskDefinition,
    volumes: &[TaskVolume],
) -> Result<(), String> {
    for v in volumes {
        let config = td
            .volumes
            .iter()
            .find(|d| d.name == v.name)
            .and_then(|d| d.docker_volume_configuration.clone())
            .unwrap_or_default();
        let mut labels: std::collections::HashMap<String, String> =
            config.labels.clone().into_iter().collect();
        let request = |labels| bollard::models::VolumeCreateRequest {
            name: Some(v.source.clone()),
            driver: Some(config.driver.clone().unwrap_or_else(|| LOCAL_DRIVER.into())),
            driver_opts: (!config.driver_opts.is_empty())
                .then(|| config.driver_opts.clone().into_iter().collect()),
            labels: Some(labels),
            ..bollard::models::VolumeCreateRequest::default()
        };
        match v.kind {
            Kind::Bind => {}
            Kind::Task => {
                labels.insert(hostalb_aws::ecs::labels::TASK_ARN.into(), arn.to_owned());
                inner
                    .engine
                    .create_volume(request(labels))
                    .await
                    .map_err(|e| format!("volume {}: {e}", v.name))?;
            }
            Kind::Shared => {
                let exists = inner
                    .engine
                    .volume_exists(&v.source)
                    .await
                    .map_err(|e| format!("volume {}: {e}", v.name))?;
                if exists {
                    continue;
                }
                if config.autoprovision != Some(true) {
                    return Err(format!(
                        "volume {}: the shared Docker volume {} does not exist and autoprovision is not set",
                        v.name, v.source
                    ));
                }
                inner
                    .engine
                    .create_volume(request(labels))
                    .await
                    .map_err(|e| format!("volume {}: {e}", v.name))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volumes_become_binds_and_docker_volumes_named_as_the_agent_names_them() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "shop", "revision": 4,
            "volumes": [
                {"name": "conf", "host": {"sourcePath": "/srv/conf"}},
                {"name": "scratch"},
                {"name": "empty-host", "host": {}},
                {"name": "cache", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true}},
                {"name": "unused"}
            ],
            "containerDefinitions": [
                {"name": "web", "image": "i", "mountPoints": [
                    {"sourceVolume": "conf", "containerPath": "/etc/app", "readOnly": true},
                    {"sourceVolume": "scratch", "containerPath": "/tmp/s"},
                    {"sourceVolume": "empty-host", "containerPath": "/e"},
                    {"sourceVolume": "cache", "containerPath": "/cache"}
                ]},
                {"name": "side", "image": "i", "volumesFrom": [{"sourceContainer": "web", "readOnly": true}]}
            ]
        }))
        .unwrap();
        let plan = plan(&td, || "ab12".into());
        let names: Vec<(&str, &str, Kind)> = plan
            .iter()
            .map(|v| (v.name.as_str(), v.source.as_str(), v.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                ("conf", "/srv/conf", Kind::Bind),
                ("scratch", "ecs-shop-4-scratch-ab12", Kind::Task),
                ("empty-host", "ecs-shop-4-empty-host-ab12", Kind::Task),
                ("cache", "cache", Kind::Shared),
            ]
        );
        assert_eq!(
            binds(&td.container_definitions[0], &plan),
            vec![
                "/srv/conf:/etc/app:ro",
                "ecs-shop-4-scratch-ab12:/tmp/s",
                "ecs-shop-4-empty-host-ab12:/e",
                "cache:/cache"
            ]
        );
        let from = volumes_from(&td.container_definitions[1], |n| {
            (n == "web").then(|| "ecs-shop-4-web-99".to_owned())
        });
        assert_eq!(from, vec!["ecs-shop-4-web-99:ro"]);
    }
}
