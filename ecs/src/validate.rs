//! RegisterTaskDefinition's checks: what ECS refuses, hostalb refuses with ECS's error
//! type; what hostalb cannot carry out yet is refused by name, never silently dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::EcsError;
use crate::envfiles;
use crate::model::{ContainerDefinition, TaskDefinition, Volume};

/// ECS's limit on containers in one task definition.
pub const MAX_CONTAINERS: usize = 10;
/// ECS's limit on a family's and a container's name length.
const MAX_NAME: usize = 255;
/// ECS's bounds on `stopTimeout` (seconds).
const MAX_STOP_TIMEOUT: u32 = 120;
/// Docker's log drivers a task may name (Docker carries them out as they are); `awslogs`
/// is accepted and runs on the engine's default driver (see [`AWSLOGS`]).
pub const LOG_DRIVERS: &[&str] = &[
    "json-file",
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "splunk",
    "none",
];
/// ECS's CloudWatch Logs driver: no CloudWatch is reachable here, so its containers log
/// through the engine's default driver (`docker logs` works), as the README says.
pub const AWSLOGS: &str = "awslogs";
/// The ulimit names ECS accepts (Docker's).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Task definition members accepted and without effect on one host (roles, placement and
/// sizing for other launch types, tags).
const IGNORED_TASK_MEMBERS: &[&str] = &[
    "tags",
    "placementConstraints",
    "pidMode",
    "ipcMode",
    "runtimePlatform",
    "enableFaultInjection",
];
/// Container members accepted and without effect on one host.
const IGNORED_CONTAINER_MEMBERS: &[&str] = &[
    "repositoryCredentials",
    "secrets",
    "disableNetworking",
    "interactive",
    "pseudoTerminal",
    "versionConsistency",
];

fn client(message: impl Into<String>) -> EcsError {
    EcsError::client(message)
}

/// An unsupported member given a value (an empty list or null counts as absent: the CLI's
/// skeletons carry `"volumes": []`).
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a task definition as RegisterTaskDefinition receives it.
pub fn task_definition(td: &TaskDefinition) -> Result<(), EcsError> {
    if !valid_name(&td.family) {
        return Err(client(format!(
            "Family `{}` is invalid: up to {MAX_NAME} letters, numbers, hyphens and underscores",
            td.family
        )));
    }
    match td.network_mode.as_deref() {
        None | Some("bridge") | Some("host") | Some("none") | Some("awsvpc") => {}
        Some(other) => {
            return Err(client(format!(
                "networkMode `{other}` is invalid: bridge, host, awsvpc or none"
            )));
        }
    }
    for (k, v) in &td.other {
        if present(v) && !IGNORED_TASK_MEMBERS.contains(&k.as_str()) {
            return Err(client(format!(
                "task definition member `{k}` is not supported by hostalb yet: remove it to run this task definition locally"
            )));
        }
    }
    if td.container_definitions.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if td.container_definitions.len() > MAX_CONTAINERS {
        return Err(client(format!(
            "a task definition holds at most {MAX_CONTAINERS} containers, this one {}",
            td.container_definitions.len()
        )));
    }
    let mut names = BTreeSet::new();
    for c in &td.container_definitions {
        if !valid_name(&c.name) {
            return Err(client(format!(
                "Container name `{}` is invalid: up to {MAX_NAME} letters, numbers, hyphens and underscores",
                c.name
            )));
        }
        if !names.insert(c.name.as_str()) {
            return Err(client(format!(
                "Container names must be unique: `{}` is used twice",
                c.name
            )));
        }
    }
    if !td
        .container_definitions
        .iter()
        .any(ContainerDefinition::is_essential)
    {
        return Err(client(
            "Task definition must have at least one essential container.",
        ));
    }
    let mut volume_names = BTreeSet::new();
    for v in &td.volumes {
        volume(v)?;
        if !volume_names.insert(v.name.as_str()) {
            return Err(client(format!(
                "volumes: the name `{}` is used twice: volume names must be unique",
                v.name
            )));
        }
    }
    let mode = td.network_mode.as_deref().unwrap_or("bridge");
    for c in &td.container_definitions {
        container(c, mode, &td.container_definitions)?;
        storage(c, td)?;
        extras(c, mode)?;
    }
    start_order(&td.container_definitions).map(|_| ())
}

/// One volume of `volumes`.
fn volume(v: &Volume) -> Result<(), EcsError> {
    if !valid_name(&v.name) {
        return Err(client(format!(
            "volumes: name `{}` is invalid: up to {MAX_NAME} letters, numbers, hyphens and underscores",
            v.name
        )));
    }
    for (k, x) in &v.other {
        let refused = match k.as_str() {
            "configuredAtLaunch" => x.as_bool() == Some(true),
            _ => present(x),
        };
        if !refused {
            continue;
        }
        return Err(client(match k.as_str() {
            "efsVolumeConfiguration" | "fsxWindowsFileServerVolumeConfiguration" => format!(
                "volume `{}`: {k} is not supported by hostalb: there is no EFS or FSx here; mount the share on this host and give it as host.sourcePath",
                v.name
            ),
            "configuredAtLaunch" => format!(
                "volume `{}`: configuredAtLaunch (EBS volumes) is not supported by hostalb: use host.sourcePath or dockerVolumeConfiguration",
                v.name
            ),
            _ => format!(
                "volume `{}`: member `{k}` is not supported by hostalb yet",
                v.name
            ),
        }));
    }
    if v.host.is_some() && v.docker_volume_configuration.is_some() {
        return Err(client(format!(
            "volume `{}`: give host or dockerVolumeConfiguration, not both",
            v.name
        )));
    }
    if let Some(p) = v.source_path()
        && !p.starts_with('/')
    {
        return Err(client(format!(
            "volume `{}`: host.sourcePath `{p}` must be an absolute path",
            v.name
        )));
    }
    if let Some(d) = &v.docker_volume_configuration {
        let scope = d.scope.as_deref().unwrap_or("task");
        if !matches!(scope, "task" | "shared") {
            return Err(client(format!(
                "volume `{}`: dockerVolumeConfiguration.scope `{scope}` is invalid: task or shared",
                v.name
            )));
        }
        if d.autoprovision == Some(true) && scope != "shared" {
            return Err(client(format!(
                "volume `{}`: dockerVolumeConfiguration.autoprovision is only valid with scope shared",
                v.name
            )));
        }
    }
    Ok(())
}

/// A container's `mountPoints`, `volumesFrom` and `environmentFiles`.
fn storage(c: &ContainerDefinition, td: &TaskDefinition) -> Result<(), EcsError> {
    let who = &c.name;
    let mut paths = BTreeSet::new();
    for m in &c.mount_points {
        if !td.volumes.iter().any(|v| v.name == m.source_volume) {
            return Err(client(format!(
                "Container `{who}`: mountPoints sourceVolume `{}` names no volume of the task definition",
                m.source_volume
            )));
        }
        if !m.container_path.starts_with('/') {
            return Err(client(format!(
                "Container `{who}`: mountPoints containerPath `{}` must be an absolute path",
                m.container_path
            )));
        }
        if !paths.insert(m.container_path.as_str()) {
            return Err(client(format!(
                "Container `{who}`: mountPoints containerPath `{}` is mounted twice",
                m.container_path
            )));
        }
    }
    for f in &c.volumes_from {
        if f.source_container == c.name
            || !td
                .container_definitions
                .iter()
                .any(|o| o.name == f.source_container)
        {
            return Err(client(format!(
                "Container `{who}`: volumesFrom sourceContainer `{}` names no other container of the task definition",
                f.source_container
            )));
        }
    }
    if c.environment_files.len() > envfiles::MAX_FILES {
        return Err(client(format!(
            "Container `{who}`: environmentFiles holds at most {} files",
            envfiles::MAX_FILES
        )));
    }
    for f in &c.environment_files {
        if f.kind != envfiles::S3 {
            return Err(client(format!(
                "Container `{who}`: environmentFiles type `{}` is invalid: s3",
                f.kind
            )));
        }
        envfiles::local_path(&f.value).map_err(|m| client(format!("Container `{who}`: {m}")))?;
    }
    Ok(())
}

/// Logging and the members Docker takes as they are.
fn extras(c: &ContainerDefinition, mode: &str) -> Result<(), EcsError> {
    let who = &c.name;
    if let Some(l) = &c.log_configuration {
        let d = l.log_driver.as_str();
        if d == "awsfirelens" {
            return Err(client(format!(
                "Container `{who}`: logDriver awsfirelens is not supported by hostalb: FireLens needs its log router sidecar; use fluentd (Docker's driver) towards your own Fluent Bit"
            )));
        }
        if d != AWSLOGS && !LOG_DRIVERS.contains(&d) {
            return Err(client(format!(
                "Container `{who}`: logDriver `{d}` is invalid: {}, {AWSLOGS}",
                LOG_DRIVERS.join(", ")
            )));
        }
        if !l.secret_options.is_empty() {
            return Err(client(format!(
                "Container `{who}`: logConfiguration secretOptions are not supported by hostalb: there is no Secrets Manager or SSM here; give the values in options"
            )));
        }
    }
    if mode == "awsvpc" {
        for (given, what) in [
            (c.hostname.is_some(), "hostname"),
            (!c.extra_hosts.is_empty(), "extraHosts"),
            (!c.dns_servers.is_empty(), "dnsServers"),
        ] {
            if given {
                return Err(client(format!(
                    "Container `{who}`: {what} is not supported in the awsvpc network mode"
                )));
            }
        }
    }
    for h in &c.extra_hosts {
        if h.hostname.is_empty() || h.ip_address.parse::<std::net::IpAddr>().is_err() {
            return Err(client(format!(
                "Container `{who}`: extraHosts needs a hostname and an IP address, not `{}` `{}`",
                h.hostname, h.ip_address
            )));
        }
    }
    for d in &c.dns_servers {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(client(format!(
                "Container `{who}`: dnsServers `{d}` is not an IP address"
            )));
        }
    }
    for u in &c.ulimits {
        if !ULIMITS.contains(&u.name.as_str()) {
            return Err(client(format!(
                "Container `{who}`: ulimit `{}` is invalid: {}",
                u.name,
                ULIMITS.join(", ")
            )));
        }
        if u.soft_limit > u.hard_limit {
            return Err(client(format!(
                "Container `{who}`: ulimit `{}` has a softLimit above its hardLimit",
                u.name
            )));
        }
    }
    if let Some(p) = &c.linux_parameters
        && let Some((k, _)) = p.other.iter().find(|(_, v)| present(v))
    {
        return Err(client(format!(
            "Container `{who}`: linuxParameters member `{k}` is not supported by hostalb yet (initProcessEnabled is): remove it to run this task definition locally"
        )));
    }
    Ok(())
}

fn container(c: &ContainerDefinition, mode: &str, all: &[ContainerDefinition]) -> Result<(), EcsError> {
    let who = &c.name;
    if c.image.trim().is_empty() {
        return Err(client(format!("Container `{who}`: image is required")));
    }
    for (k, v) in &c.other {
        if present(v) && !IGNORED_CONTAINER_MEMBERS.contains(&k.as_str()) {
            return Err(client(format!(
                "Container `{who}`: member `{k}` is not supported by hostalb yet: remove it to run this task definition locally"
            )));
        }
    }
    for m in &c.port_mappings {
        let Some(cp) = m.container_port.filter(|p| *p != 0) else {
            return Err(client(format!(
                "Container `{who}`: a port mapping needs containerPort"
            )));
        };
        if !matches!(m.protocol(), "tcp" | "udp") {
            return Err(client(format!(
                "Container `{who}`: protocol `{}` is invalid: tcp or udp",
                m.protocol()
            )));
        }
        if matches!(mode, "host" | "awsvpc") && m.host_port.is_some_and(|h| h != 0 && h != cp) {
            return Err(client(format!(
                "Container `{who}`: in {mode} network mode hostPort must be containerPort ({cp}) or absent"
            )));
        }
        if mode == "none" {
            return Err(client(format!(
                "Container `{who}`: port mappings are invalid in network mode none"
            )));
        }
    }
    for e in &c.environment {
        if e.name.is_empty() {
            return Err(client(format!(
                "Container `{who}`: an environment variable has no name"
            )));
        }
    }
    if !c.links.is_empty() && mode != "bridge" {
        return Err(client(format!(
            "Container `{who}`: links are only valid in bridge network mode"
        )));
    }
    for link in &c.links {
        let target = link.split_once(':').map_or(link.as_str(), |(n, _)| n);
        if target == c.name || !all.iter().any(|o| o.name == target) {
            return Err(client(format!(
                "Container `{who}`: link `{link}` names no other container of the task definition"
            )));
        }
    }
    for d in &c.depends_on {
        let Some(dep) = all
            .iter()
            .find(|o| o.name == d.container_name && o.name != c.name)
        else {
            return Err(client(format!(
                "Container `{who}`: dependsOn names `{}`, no other container of the task definition",
                d.container_name
            )));
        };
        match d.condition.as_str() {
            "START" | "COMPLETE" | "SUCCESS" => {}
            "HEALTHY" if dep.health_check.is_some() => {}
            "HEALTHY" => {
                return Err(client(format!(
                    "Container `{who}`: dependsOn `{}` with condition HEALTHY needs a healthCheck on `{}`",
                    d.container_name, d.container_name
                )));
            }
            other => {
                return Err(client(format!(
                    "Container `{who}`: dependsOn condition `{other}` is invalid: START, COMPLETE, SUCCESS or HEALTHY"
                )));
            }
        }
        if matches!(d.condition.as_str(), "COMPLETE" | "SUCCESS") && dep.is_essential() {
            return Err(client(format!(
                "Container `{who}`: dependsOn `{}` with condition {} needs `{}` to be non-essential (its exit would stop the task)",
                d.container_name, d.condition, d.container_name
            )));
        }
    }
    if let Some(t) = c.stop_timeout
        && t > MAX_STOP_TIMEOUT
    {
        return Err(client(format!(
            "Container `{who}`: stopTimeout {t} is above ECS's maximum of {MAX_STOP_TIMEOUT} seconds"
        )));
    }
    for (what, v) in [
        ("cpu", c.cpu),
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(client(format!("Container `{who}`: {what} cannot be negative")));
        }
    }
    if let Some(m) = c.memory
        && m > 0
        && m < 6
    {
        return Err(client(format!(
            "Container `{who}`: memory {m} MiB is below Docker's minimum of 6 MiB"
        )));
    }
    if let Some(h) = &c.health_check
        && !matches!(
            h.command.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL" | "NONE")
        )
    {
        return Err(client(format!(
            "Container `{who}`: healthCheck command must start with CMD, CMD-SHELL or NONE"
        )));
    }
    Ok(())
}

/// The order containers start in: every container after the ones it depends on, links
/// to or takes volumes from, otherwise in definition order. A cycle is refused.
pub fn start_order(containers: &[ContainerDefinition]) -> Result<Vec<usize>, EcsError> {
    let index: BTreeMap<&str, usize> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let before = |c: &ContainerDefinition| -> Vec<usize> {
        let links = c
            .links
            .iter()
            .map(|l| l.split_once(':').map_or(l.as_str(), |(n, _)| n));
        // A volumesFrom source exists before the container that takes its mounts.
        let volumes_from = c.volumes_from.iter().map(|f| f.source_container.as_str());
        c.depends_on
            .iter()
            .map(|d| d.container_name.as_str())
            .chain(links)
            .chain(volumes_from)
            .filter_map(|n| index.get(n).copied())
            .collect()
    };
    let mut order = Vec::with_capacity(containers.len());
    let mut placed = vec![false; containers.len()];
    while order.len() < containers.len() {
        let next =
            (0..containers.len()).find(|&i| !placed[i] && before(&containers[i]).iter().all(|&b| placed[b]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                let stuck: Vec<&str> = (0..containers.len())
                    .filter(|&i| !placed[i])
                    .map(|i| containers[i].name.as_str())
                    .collect();
                return Err(client(format!(
                    "dependsOn and links form a cycle among containers {}",
                    stuck.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn td(v: Value) -> TaskDefinition {
        serde_json::from_value(v).unwrap()
    }

    fn refused(v: Value) -> String {
        let e = task_definition(&td(v)).unwrap_err();
        assert_eq!(e.code, "ClientException");
        e.message
    }

    #[test]
    fn accepts_the_real_json_with_empty_unsupported_lists() {
        let t = td(json!({
            "family": "shop", "networkMode": "bridge", "volumes": [], "placementConstraints": [],
            "requiresCompatibilities": ["EC2"], "tags": [{"key": "a", "value": "b"}],
            "containerDefinitions": [
                {"name": "web", "image": "i", "portMappings": [{"containerPort": 80, "hostPort": 0}],
                 "healthCheck": {"command": ["CMD", "/backend", "--check"]}, "mountPoints": [], "logConfiguration": {"logDriver": "json-file"}},
                {"name": "side", "image": "i", "essential": false, "links": ["web:api"],
                 "dependsOn": [{"containerName": "web", "condition": "HEALTHY"}]}
            ]
        }));
        task_definition(&t).unwrap();
        assert_eq!(start_order(&t.container_definitions).unwrap(), vec![0, 1]);
    }

    #[test]
    fn refuses_what_ecs_refuses_and_what_hostalb_cannot_do_yet() {
        let one = |extra: Value| {
            let mut v = json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        assert!(refused(one(json!({"family": "bad name"}))).contains("Family"));
        assert!(
            refused(one(json!({"ephemeralStorage": {"sizeInGiB": 30}})))
                .contains("`ephemeralStorage` is not supported")
        );
        assert!(refused(one(json!({"containerDefinitions": []}))).contains("cannot be empty"));
        let c = |c: Value| one(json!({"containerDefinitions": [c]}));
        assert!(refused(c(json!({"name": "a", "image": "i", "essential": false}))).contains("essential"));
        assert!(refused(c(json!({"name": "a", "image": ""}))).contains("image is required"));
        assert!(
            refused(c(
                json!({"name": "a", "image": "i", "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}]})
            ))
            .contains("mountPoints sourceVolume `v` names no volume")
        );
        assert!(refused(c(json!({"name": "a", "image": "i", "stopTimeout": 121}))).contains("120"));
        assert!(refused(c(json!({"name": "a", "image": "i", "memory": 4}))).contains("6 MiB"));
        assert!(
            refused(c(json!({"name": "a", "image": "i", "portMappings": [{"containerPort": 80, "protocol": "sctp"}]})))
                .contains("protocol")
        );
        let host = json!({"family": "f", "networkMode": "host", "containerDefinitions": [
            {"name": "a", "image": "i", "portMappings": [{"containerPort": 80, "hostPort": 8080}]}]});
        assert!(refused(host).contains("host network mode"));
        let two = |a: Value, b: Value| json!({"family": "f", "containerDefinitions": [a, b]});
        let healthy = two(
            json!({"name": "a", "image": "i", "dependsOn": [{"containerName": "b", "condition": "HEALTHY"}]}),
            json!({"name": "b", "image": "i"}),
        );
        assert!(refused(healthy).contains("needs a healthCheck"));
        let success_on_essential = two(
            json!({"name": "a", "image": "i", "dependsOn": [{"containerName": "b", "condition": "SUCCESS"}]}),
            json!({"name": "b", "image": "i"}),
        );
        assert!(refused(success_on_essential).contains("non-essential"));
        let unknown = two(
            json!({"name": "a", "image": "i", "dependsOn": [{"containerName": "c", "condition": "START"}]}),
            json!({"name": "b", "image": "i"}),
        );
        assert!(refused(unknown).contains("`c`"));
        let cycle = two(
            json!({"name": "a", "image": "i", "links": ["b"]}),
            json!({"name": "b", "image": "i", "dependsOn": [{"containerName": "a", "condition": "START"}]}),
        );
        assert!(refused(cycle).contains("cycle among containers a, b"));
        let twice = two(
            json!({"name": "a", "image": "i"}),
            json!({"name": "a", "image": "i"}),
        );
        assert!(refused(twice).contains("unique"));
    }

    #[test]
    fn containers_start_after_their_dependencies_and_links() {
        let t = td(json!({"family": "f", "containerDefinitions": [
            {"name": "app", "image": "i", "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}], "links": ["db"]},
            {"name": "db", "image": "i"},
            {"name": "init", "image": "i", "essential": false, "dependsOn": [{"containerName": "db", "condition": "START"}]}
        ]}));
        task_definition(&t).unwrap();
        assert_eq!(start_order(&t.container_definitions).unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn volumes_mounts_and_volumes_from_are_checked_as_ecs_checks_them() {
        let base = |volumes: Value, a: Value| json!({"family": "f", "volumes": volumes, "containerDefinitions": [a, {"name": "b", "image": "i"}]});
        let ok = td(base(
            json!([{"name": "data"}, {"name": "conf", "host": {"sourcePath": "/srv"}},
                   {"name": "cache", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "local"}}]),
            json!({"name": "a", "image": "i", "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
                   "volumesFrom": [{"sourceContainer": "b", "readOnly": true}]}),
        ));
        task_definition(&ok).unwrap();
        assert_eq!(
            start_order(&ok.container_definitions).unwrap(),
            vec![1, 0],
            "volumesFrom's source first"
        );
        let plain = json!({"name": "a", "image": "i"});
        assert!(refused(base(json!([{"name": "v"}, {"name": "v"}]), plain.clone())).contains("used twice"));
        assert!(
            refused(base(
                json!([{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
                plain.clone()
            ))
            .contains("efsVolumeConfiguration is not supported by hostalb")
        );
        assert!(
            refused(base(
                json!([{"name": "v", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
                plain.clone()
            ))
            .contains("fsxWindowsFileServerVolumeConfiguration")
        );
        task_definition(&td(base(
            json!([{"name": "v", "configuredAtLaunch": false}]),
            plain.clone(),
        )))
        .unwrap();
        assert!(
            refused(base(
                json!([{"name": "v", "host": {"sourcePath": "rel"}}]),
                plain.clone()
            ))
            .contains("absolute")
        );
        assert!(
            refused(base(
                json!([{"name": "v", "dockerVolumeConfiguration": {"scope": "task", "autoprovision": true}}]),
                plain.clone()
            ))
            .contains("autoprovision")
        );
        assert!(
            refused(base(
                json!([]),
                json!({"name": "a", "image": "i", "volumesFrom": [{"sourceContainer": "c"}]})
            ))
            .contains("volumesFrom sourceContainer `c`")
        );
        assert!(
            refused(base(
                json!([]),
                json!({"name": "a", "image": "i", "volumesFrom": [{"sourceContainer": "a"}]})
            ))
            .contains("volumesFrom sourceContainer `a`")
        );
    }

    #[test]
    fn environment_files_log_drivers_and_docker_members_are_checked() {
        let c = |c: Value| json!({"family": "f", "containerDefinitions": [c]});
        let envf =
            |v: &str| c(json!({"name": "a", "image": "i", "environmentFiles": [{"value": v, "type": "s3"}]}));
        task_definition(&td(envf("/etc/app.env"))).unwrap();
        task_definition(&td(envf("file:///etc/app.env"))).unwrap();
        assert!(refused(envf("arn:aws:s3:::bucket/app.env")).contains("local path"));
        let log = |d: &str| c(json!({"name": "a", "image": "i", "logConfiguration": {"logDriver": d}}));
        for d in LOG_DRIVERS.iter().chain([&AWSLOGS]) {
            task_definition(&td(log(d))).unwrap();
        }
        assert!(refused(log("awsfirelens")).contains("awsfirelens is not supported"));
        assert!(refused(log("carrier-pigeon")).contains("invalid"));
        let awsvpc = |c: Value| json!({"family": "f", "networkMode": "awsvpc", "containerDefinitions": [c]});
        task_definition(&td(awsvpc(
            json!({"name": "a", "image": "i", "portMappings": [{"containerPort": 80}]}),
        )))
        .unwrap();
        assert!(
            refused(awsvpc(json!({"name": "a", "image": "i", "hostname": "h"})))
                .contains("hostname is not supported in the awsvpc")
        );
        assert!(
            refused(awsvpc(
                json!({"name": "a", "image": "i", "portMappings": [{"containerPort": 80, "hostPort": 81}]})
            ))
            .contains("awsvpc network mode hostPort")
        );
        assert!(refused(c(json!({"name": "a", "image": "i", "ulimits": [{"name": "bogus", "softLimit": 1, "hardLimit": 1}]}))).contains("ulimit"));
        assert!(
            refused(c(json!({"name": "a", "image": "i", "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"]}}})))
                .contains("linuxParameters member `capabilities`")
        );
        task_definition(&td(c(json!({"name": "a", "image": "i", "linuxParameters": {"initProcessEnabled": true},
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}], "dnsServers": ["10.0.0.2"], "privileged": false}))))
        .unwrap();
    }
}
