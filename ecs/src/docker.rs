//! The Docker side: a container definition of a task as Docker's create body (labels,
//! name, ports, limits, health check), and the few engine calls a task needs.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig, HostConfigLogConfig,
    NetworkCreateRequest, PortBinding, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use hostalb_aws::ecs::labels;

use crate::model::{ContainerDefinition, NetworkMode, TaskDefinition, health_defaults};
use crate::records::NetworkBinding;

/// Docker API requests fail after this long: above ECS's largest `stopTimeout` (120 s),
/// since a stop request lasts as long as the container's stop timeout.
const REQUEST_TIMEOUT_SECONDS: u64 = 150;
/// Bytes in a MiB (ECS sizes memory in MiB, Docker in bytes).
const MIB: i64 = 1024 * 1024;
/// Nanoseconds in a second (Docker's health check durations).
const NANOS: i64 = 1_000_000_000;

/// Connects to `endpoint` (`unix://`, `tcp://`, `http://`), else `DOCKER_HOST`, else the
/// local socket. No request is made here.
pub fn connect(endpoint: Option<&str>) -> Result<Docker, bollard::errors::Error> {
    let target = endpoint
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.trim().is_empty()))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    if target.starts_with("unix://") {
        Docker::connect_with_unix(&target, REQUEST_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(&target, REQUEST_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
    }
}

/// Who a container belongs to: the ECS agent's labels.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub task_arn: &'a str,
    pub cluster_arn: &'a str,
    pub family: &'a str,
    pub revision: u32,
}

/// What a container is tied to, worked out when its task starts.
#[derive(Debug, Clone, Default)]
pub struct Wiring {
    /// The host ports chosen for its port mappings.
    pub bindings: Vec<NetworkBinding>,
    /// Docker names (`docker-name:alias`) of its links.
    pub links: Vec<String>,
    /// `KEY=VALUE`: `environment` merged with the environment files.
    pub env: Vec<String>,
    /// `source:containerPath[:ro]` of its mount points.
    pub binds: Vec<String>,
    /// `docker-name[:ro]` of its volumesFrom.
    pub volumes_from: Vec<String>,
    /// awsvpc: the Docker name of the container that holds the task's network namespace
    /// (its pause container); `None` when this container holds it (on
    /// [`crate::network::NETWORK`]).
    pub netns_holder: Option<String>,
}

/// Docker's `LogConfig` of a log configuration: the driver and its options as given;
/// none (the engine's default driver) for `awslogs`, which cannot reach CloudWatch here.
fn log_config(c: &ContainerDefinition) -> Option<HostConfigLogConfig> {
    let l = c.log_configuration.as_ref()?;
    if l.log_driver == crate::validate::AWSLOGS {
        return None;
    }
    Some(HostConfigLogConfig {
        typ: Some(l.log_driver.clone()),
        config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
    })
}

/// Docker's create body for one container of a task.
pub fn create_body(
    td: &TaskDefinition,
    c: &ContainerDefinition,
    owner: &Owner<'_>,
    wiring: Wiring,
) -> ContainerCreateBody {
    let Wiring {
        bindings,
        links,
        env,
        binds,
        volumes_from,
        netns_holder,
    } = wiring;
    let mut labels_map: HashMap<String, String> = c.docker_labels.clone().into_iter().collect();
    labels_map.insert(labels::TASK_ARN.into(), owner.task_arn.into());
    labels_map.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    labels_map.insert(labels::TASK_DEFINITION_FAMILY.into(), owner.family.into());
    labels_map.insert(labels::TASK_DEFINITION_VERSION.into(), owner.revision.to_string());
    labels_map.insert(labels::CLUSTER.into(), owner.cluster_arn.into());
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for b in &bindings {
        let key = format!("{}/{}", b.container_port, b.protocol);
        exposed.push(key.clone());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: None,
                host_port: Some(b.host_port.to_string()),
            });
    }
    let network_mode = match (td.mode(), netns_holder) {
        (NetworkMode::Bridge, _) => "bridge".to_owned(),
        (NetworkMode::Host, _) => "host".to_owned(),
        (NetworkMode::None, _) => "none".to_owned(),
        (NetworkMode::Awsvpc, None) => crate::network::NETWORK.to_owned(),
        (NetworkMode::Awsvpc, Some(holder)) => format!("container:{holder}"),
    };
    let joins = network_mode.starts_with("container:");
    let host_config = HostConfig {
        network_mode: Some(network_mode),
        port_bindings: (td.mode() == NetworkMode::Bridge && !port_bindings.is_empty())
            .then_some(port_bindings),
        links: (!links.is_empty()).then_some(links),
        memory: c.memory.filter(|m| *m > 0).map(|m| m * MIB),
        memory_reservation: c.memory_reservation.filter(|m| *m > 0).map(|m| m * MIB),
        cpu_shares: c.cpu.filter(|c| *c > 0),
        binds: (!binds.is_empty()).then_some(binds),
        volumes_from: (!volumes_from.is_empty()).then_some(volumes_from),
        log_config: log_config(c),
        extra_hosts: (!c.extra_hosts.is_empty()).then(|| {
            c.extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.hostname, h.ip_address))
                .collect()
        }),
        dns: (!c.dns_servers.is_empty()).then(|| c.dns_servers.clone()),
        ulimits: (!c.ulimits.is_empty()).then(|| {
            c.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft_limit),
                    hard: Some(u.hard_limit),
                })
                .collect()
        }),
        privileged: c.privileged.filter(|p| *p),
        readonly_rootfs: c.readonly_root_filesystem.filter(|r| *r),
        init: c
            .linux_parameters
            .as_ref()
            .and_then(|p| p.init_process_enabled)
            .filter(|i| *i),
        ..HostConfig::default()
    };
    let healthcheck = c.health_check.as_ref().map(|h| HealthConfig {
        test: Some(h.command.clone()),
        interval: Some(i64::from(h.interval.unwrap_or(health_defaults::INTERVAL)) * NANOS),
        timeout: Some(i64::from(h.timeout.unwrap_or(health_defaults::TIMEOUT)) * NANOS),
        retries: Some(i64::from(h.retries.unwrap_or(health_defaults::RETRIES))),
        start_period: Some(i64::from(h.start_period.unwrap_or(health_defaults::START_PERIOD)) * NANOS),
        start_interval: None,
    });
    ContainerCreateBody {
        image: Some(c.image.clone()),
        hostname: c.hostname.clone(),
        env: (!env.is_empty()).then_some(env),
        cmd: c.command.clone(),
        entrypoint: c.entry_point.clone(),
        working_dir: c.working_directory.clone(),
        user: c.user.clone(),
        labels: Some(labels_map),
        // A container in another's network namespace exposes nothing of its own (Docker
        // refuses it).
        exposed_ports: (!exposed.is_empty() && !joins).then_some(exposed),
        healthcheck,
        stop_timeout: Some(i64::from(c.stop_timeout.unwrap_or(crate::DEFAULT_STOP_TIMEOUT))),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    }
}

/// Docker's create body for an awsvpc task's pause container: the agent's labels (its
/// container name `~internal~ecs~pause`), on the awsvpc network, running `/pause`.
pub fn pause_body(owner: &Owner<'_>) -> ContainerCreateBody {
    let labels_map: HashMap<String, String> = HashMap::from([
        (labels::TASK_ARN.into(), owner.task_arn.into()),
        (labels::CONTAINER_NAME.into(), crate::pause::CONTAINER_NAME.into()),
        (labels::TASK_DEFINITION_FAMILY.into(), owner.family.into()),
        (labels::TASK_DEFINITION_VERSION.into(), owner.revision.to_string()),
        (labels::CLUSTER.into(), owner.cluster_arn.into()),
    ]);
    ContainerCreateBody {
        image: Some(crate::pause::IMAGE.into()),
        entrypoint: Some(vec![crate::pause::PROGRAM.into()]),
        labels: Some(labels_map),
        host_config: Some(HostConfig {
            network_mode: Some(crate::network::NETWORK.into()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// What a container is doing, as a task needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub running: bool,
    /// Exited (or dead, or gone).
    pub exited: bool,
    pub exit_code: Option<i64>,
    /// `HEALTHY`, `UNHEALTHY`, `UNKNOWN`.
    pub health: &'static str,
    /// Docker's error text, when it gave one.
    pub error: Option<String>,
}

/// The engine calls of a task.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// Makes one image import at a time: two tasks starting at once would otherwise both
    /// import the pause image, leaving the first one untagged. Held across the inspect
    /// and the import only.
    imports: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    pub fn new(docker: Docker) -> Engine {
        Engine {
            docker,
            imports: std::sync::Arc::default(),
        }
    }

    /// Creates a container; its id.
    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String> {
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..CreateContainerOptions::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|r| r.id)
            .map_err(|e| describe(&e))
    }

    pub async fn start(&self, id: &str) -> Result<(), String> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| describe(&e))
    }

    /// What the container does now; a container that is gone counts as exited.
    pub async fn observe(&self, id: &str) -> Result<Observed, String> {
        match self.docker.inspect_container(id, None).await {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                let running = state.running.unwrap_or(false) || state.restarting.unwrap_or(false);
                let health = match state.health.and_then(|h| h.status) {
                    Some(HealthStatusEnum::HEALTHY) => "HEALTHY",
                    Some(HealthStatusEnum::UNHEALTHY) => "UNHEALTHY",
                    _ => "UNKNOWN",
                };
                let created = matches!(
                    state.status,
                    Some(bollard::models::ContainerStateStatusEnum::CREATED)
                );
                Ok(Observed {
                    running,
                    exited: !running && !created,
                    exit_code: (!running && !created).then_some(state.exit_code.unwrap_or(0)),
                    health,
                    error: state.error.filter(|e| !e.is_empty()),
                })
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(Observed {
                running: false,
                exited: true,
                exit_code: None,
                health: "UNKNOWN",
                error: Some("the container was removed".into()),
            }),
            Err(e) => Err(describe(&e)),
        }
    }

    /// SIGTERM, then SIGKILL after `timeout` seconds (Docker's stop).
    pub async fn stop(&self, id: &str, timeout: u32) -> Result<(), String> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(timeout).unwrap_or(i32::MAX)),
            signal: None,
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped; 404: already gone.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Removes the container (and its anonymous volumes).
    pub async fn remove(&self, id: &str) -> Result<(), String> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Makes image `repository:tag` from `root` (a tar archive of its root filesystem, as
    /// `docker import` does) unless the engine has it already.
    pub async fn import_image(&self, repository: &str, tag: &str, root: Vec<u8>) -> Result<(), String> {
        let _one = self.imports.lock().await;
        match self.docker.inspect_image(&format!("{repository}:{tag}")).await {
            Ok(_) => return Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(describe(&e)),
        }
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repository.into()),
            tag: Some(tag.into()),
            ..CreateImageOptions::default()
        };
        let mut progress =
            self.docker
                .create_image(Some(options), Some(bollard::body_full(root.into())), None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| describe(&e))?;
        }
        Ok(())
    }

    /// Creates a Docker volume; one that exists already is taken as it is.
    pub async fn create_volume(&self, request: VolumeCreateRequest) -> Result<(), String> {
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    /// Whether a Docker volume of this name exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, String> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Removes a Docker volume; one already gone is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<(), String> {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Makes sure the bridge network `name` exists (made with `labels` when absent; two
    /// hostalbs making it at once both succeed).
    pub async fn ensure_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), String> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => return Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(describe(&e)),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..NetworkCreateRequest::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// The container's IPv4 address on network `network`, once it has one.
    pub async fn address_on(&self, id: &str, network: &str) -> Result<Option<String>, String> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| describe(&e))?;
        Ok(info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty()))
    }

    /// Containers (running or not) carrying the task-arn label: (id, task ARN, container
    /// name, running).
    pub async fn task_containers(&self) -> Result<Vec<(String, String, String, bool)>, String> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![labels::TASK_ARN.to_owned()],
            )])),
            ..ListContainersOptions::default()
        };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| describe(&e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let l = c.labels.unwrap_or_default();
                let arn = l.get(labels::TASK_ARN)?.clone();
                let name = l.get(labels::CONTAINER_NAME)?.clone();
                let running = c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
                Some((c.id?, arn, name, running))
            })
            .collect())
    }
}

/// Docker's message, without bollard's wrapping.
fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => {
            format!("Docker answered {status_code}: {message}")
        }
        other => format!("Docker engine: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_container_definition_becomes_the_agents_docker_container() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "shop", "revision": 3, "containerDefinitions": [{
                "name": "web", "image": "shop:2", "cpu": 256, "memory": 512, "memoryReservation": 128,
                "environment": [{"name": "A", "value": "1"}], "command": ["serve"], "entryPoint": ["/bin/app"],
                "dockerLabels": {"team": "x"}, "stopTimeout": 7,
                "portMappings": [{"containerPort": 80}],
                "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 10, "retries": 2}
            }]
        }))
        .unwrap();
        let owner = Owner {
            task_arn: "arn:task",
            cluster_arn: "arn:cluster",
            family: "shop",
            revision: 3,
        };
        let binding = NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port: 80,
            host_port: 49200,
            protocol: "tcp".into(),
        };
        let c = &td.container_definitions[0];
        let wiring = Wiring {
            bindings: vec![binding],
            links: vec!["ecs-shop-3-db-1:db".into()],
            env: crate::envfiles::merge(c, &[]),
            ..Wiring::default()
        };
        let body = create_body(&td, c, &owner, wiring);
        let labels = body.labels.clone().unwrap();
        assert_eq!(labels[labels::TASK_ARN], "arn:task");
        assert_eq!(labels[labels::CONTAINER_NAME], "web");
        assert_eq!(labels[labels::TASK_DEFINITION_FAMILY], "shop");
        assert_eq!(labels[labels::TASK_DEFINITION_VERSION], "3");
        assert_eq!(labels[labels::CLUSTER], "arn:cluster");
        assert_eq!(labels["team"], "x");
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        assert_eq!(body.cmd, Some(vec!["serve".into()]));
        assert_eq!(body.entrypoint, Some(vec!["/bin/app".into()]));
        assert_eq!(body.stop_timeout, Some(7));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".into()]));
        let health = body.healthcheck.unwrap();
        assert_eq!(health.test, Some(vec!["CMD-SHELL".into(), "true".into()]));
        assert_eq!(health.interval, Some(10 * NANOS));
        assert_eq!(health.timeout, Some(i64::from(health_defaults::TIMEOUT) * NANOS));
        assert_eq!(health.retries, Some(2));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.memory, Some(512 * MIB));
        assert_eq!(host.memory_reservation, Some(128 * MIB));
        assert_eq!(host.cpu_shares, Some(256));
        assert_eq!(host.links, Some(vec!["ecs-shop-3-db-1:db".into()]));
        let ports = host.port_bindings.unwrap();
        assert_eq!(
            ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("49200")
        );
    }

    #[test]
    fn host_mode_publishes_nothing_and_the_stop_timeout_defaults_to_ecs() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "f", "networkMode": "host",
            "containerDefinitions": [{"name": "a", "image": "i", "portMappings": [{"containerPort": 80}]}]
        }))
        .unwrap();
        let owner = Owner {
            task_arn: "t",
            cluster_arn: "c",
            family: "f",
            revision: 1,
        };
        let b = NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port: 80,
            host_port: 80,
            protocol: "tcp".into(),
        };
        let wiring = Wiring {
            bindings: vec![b],
            ..Wiring::default()
        };
        let body = create_body(&td, &td.container_definitions[0], &owner, wiring);
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert!(host.port_bindings.is_none());
        assert_eq!(body.stop_timeout, Some(i64::from(crate::DEFAULT_STOP_TIMEOUT)));
        assert!(body.healthcheck.is_none() && host.memory.is_none());
    }

    fn owner() -> Owner<'static> {
        Owner {
            task_arn: "t",
            cluster_arn: "c",
            family: "f",
            revision: 1,
        }
    }

    #[test]
    fn mounts_logging_and_dockers_direct_members_reach_the_host_config() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "f", "containerDefinitions": [{
                "name": "a", "image": "i", "hostname": "api.local",
                "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}},
                "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}],
                "dnsServers": ["10.0.0.2"],
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
                "privileged": true, "readonlyRootFilesystem": true,
                "linuxParameters": {"initProcessEnabled": true}
            }]
        }))
        .unwrap();
        let wiring = Wiring {
            env: vec!["A=1".into()],
            binds: vec!["/srv:/data:ro".into(), "ecs-f-1-v-ab:/v".into()],
            volumes_from: vec!["ecs-f-1-b-cd:ro".into()],
            ..Wiring::default()
        };
        let body = create_body(&td, &td.container_definitions[0], &owner(), wiring);
        assert_eq!(body.hostname.as_deref(), Some("api.local"));
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        let host = body.host_config.unwrap();
        assert_eq!(
            host.binds,
            Some(vec!["/srv:/data:ro".into(), "ecs-f-1-v-ab:/v".into()])
        );
        assert_eq!(host.volumes_from, Some(vec!["ecs-f-1-b-cd:ro".into()]));
        let log = host.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap()["max-size"], "1m");
        assert_eq!(host.extra_hosts, Some(vec!["db:10.0.0.5".into()]));
        assert_eq!(host.dns, Some(vec!["10.0.0.2".into()]));
        let u = &host.ulimits.unwrap()[0];
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(1024), Some(4096))
        );
        assert_eq!(
            (host.privileged, host.readonly_rootfs, host.init),
            (Some(true), Some(true), Some(true))
        );
    }

    #[test]
    fn awslogs_runs_on_the_engines_default_driver() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "f", "containerDefinitions": [{"name": "a", "image": "i",
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/f", "awslogs-region": "us-east-1"}}}]
        }))
        .unwrap();
        let body = create_body(&td, &td.container_definitions[0], &owner(), Wiring::default());
        assert!(body.host_config.unwrap().log_config.is_none());
    }

    #[test]
    fn awsvpc_puts_the_first_container_on_the_network_and_the_others_in_its_namespace() {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "f", "networkMode": "awsvpc", "containerDefinitions": [
                {"name": "web", "image": "i", "portMappings": [{"containerPort": 80}]},
                {"name": "side", "image": "i", "portMappings": [{"containerPort": 9000}]}
            ]
        }))
        .unwrap();
        let first = create_body(&td, &td.container_definitions[0], &owner(), Wiring::default());
        let host = first.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some(crate::network::NETWORK));
        assert!(host.port_bindings.is_none());
        let wiring = Wiring {
            netns_holder: Some("ecs-f-1-web-ab".into()),
            ..Wiring::default()
        };
        let second = create_body(&td, &td.container_definitions[1], &owner(), wiring);
        assert!(second.exposed_ports.is_none());
        let host = second.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:ecs-f-1-web-ab"));
        assert!(host.port_bindings.is_none());
    }

    #[test]
    fn the_pause_container_carries_the_agents_labels_on_the_awsvpc_network() {
        let body = pause_body(&owner());
        assert_eq!(body.image.as_deref(), Some(crate::pause::IMAGE));
        assert_eq!(body.entrypoint, Some(vec![crate::pause::PROGRAM.to_owned()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::CONTAINER_NAME], "~internal~ecs~pause");
        assert_eq!(labels[labels::TASK_ARN], "t");
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some(crate::network::NETWORK));
    }
}
