//! From what Docker runs to what hostalb should register: pure, so every rule of
//! selection and port resolution is tested without an engine.
//!
//! A container is considered when it is running, not paused and not stopping. It
//! registers in every configured target group whose `[docker]` selector's labels it all
//! carries, and in the group its `hostalb.target-group` label names. The container port
//! is the selector's `container_port`, else the `hostalb.container-port` label, else the
//! container's only TCP port. `instance` targets are the host binding of that port (IPv4
//! preferred; `0.0.0.0` and `::` mean `host_address`); `ip` targets are the container's
//! own address and port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hostalb_config::{DockerSelector, LabelGroup, TargetType};

use crate::container::{Container, DockerHealth};

/// Names the target group a container registers in.
pub const LABEL_TARGET_GROUP: &str = "hostalb.target-group";
/// Which container port, when the container has several.
pub const LABEL_CONTAINER_PORT: &str = "hostalb.container-port";
/// Without a configuration file: the rule's path patterns (comma-separated).
pub const LABEL_PATH_PATTERN: &str = "hostalb.path-pattern";
/// Without a configuration file: the rule's host headers (comma-separated).
pub const LABEL_HOST_HEADER: &str = "hostalb.host-header";
/// Without a configuration file: the rule's priority.
pub const LABEL_PRIORITY: &str = "hostalb.priority";
/// Without a configuration file: the group's health-check path.
pub const LABEL_HEALTH_CHECK_PATH: &str = "hostalb.health-check-path";

/// A configured target group as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSelector {
    pub name: String,
    pub docker: Option<DockerSelector>,
    pub target_type: TargetType,
}

/// What decides selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub groups: Vec<GroupSelector>,
    /// Where ports published on `0.0.0.0` / `::` are reached.
    pub host_address: IpAddr,
    /// `hostalb.target-group` may name groups the configuration does not have; they are
    /// created from labels (hostalb without a configuration file).
    pub create_label_groups: bool,
}

/// A container to register in a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub address: SocketAddr,
    pub container_id: String,
    pub container_name: String,
    /// Its Docker HEALTHCHECK says unhealthy.
    pub unhealthy: bool,
}

/// A container that was selected but cannot be registered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub container_id: String,
    pub container_name: String,
    pub target_group: String,
    pub reason: String,
}

/// What discovery wants registered, computed from all known containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Registrations by target group name.
    pub registrations: BTreeMap<String, Vec<Found>>,
    /// Groups and rules declared by labels (only with `create_label_groups`).
    pub label_groups: Vec<LabelGroup>,
    pub reported: Vec<Reported>,
}

/// Computes the registrations of `containers`.
pub fn desired(containers: &BTreeMap<String, Container>, selection: &Selection) -> Desired {
    let mut out = Desired::default();
    let mut label_groups: BTreeMap<String, LabelGroup> = BTreeMap::new();
    let mut ordered: Vec<&Container> = containers.values().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    for c in ordered {
        if !c.running || c.paused || c.stopping {
            continue;
        }
        let mut joined: Vec<&str> = Vec::new();
        for g in &selection.groups {
            let Some(sel) = &g.docker else { continue };
            if sel.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)) {
                register(
                    &mut out,
                    c,
                    &g.name,
                    sel.container_port,
                    g.target_type,
                    selection.host_address,
                );
                joined.push(&g.name);
            }
        }
        let Some(named) = c
            .labels
            .get(LABEL_TARGET_GROUP)
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        if joined.contains(&named) {
            continue;
        }
        match selection.groups.iter().find(|g| g.name == named) {
            Some(g) => {
                let port = g.docker.as_ref().and_then(|d| d.container_port);
                register(&mut out, c, named, port, g.target_type, selection.host_address);
            }
            None if selection.create_label_groups => {
                let entry = label_groups.entry(named.to_owned()).or_insert_with(|| LabelGroup {
                    name: named.to_owned(),
                    ..Default::default()
                });
                merge_label_rule(entry, c);
                register(&mut out, c, named, None, TargetType::Instance, selection.host_address);
            }
            None => out.reported.push(Reported {
                container_id: c.id.clone(),
                container_name: c.name.clone(),
                target_group: named.to_owned(),
                reason: format!(
                    "labelled {LABEL_TARGET_GROUP}={named} but the configuration has no target group `{named}`"
                ),
            }),
        }
    }
    out.label_groups = label_groups.into_values().collect();
    out
}

fn register(
    out: &mut Desired,
    c: &Container,
    group: &str,
    container_port: Option<u16>,
    target_type: TargetType,
    host_address: IpAddr,
) {
    match address(c, container_port, target_type, host_address) {
        Ok(address) => {
            let list = out.registrations.entry(group.to_owned()).or_default();
            if !list.iter().any(|f| f.address == address) {
                list.push(Found {
                    address,
                    container_id: c.id.clone(),
                    container_name: c.name.clone(),
                    unhealthy: c.health == DockerHealth::Unhealthy,
                });
            }
        }
        Err(reason) => out.reported.push(Reported {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            target_group: group.to_owned(),
            reason,
        }),
    }
}

/// The container port to use: configured, labelled, or the only one. For an `instance`
/// target the only *published* one counts when some are published: an image may declare
/// (`EXPOSE`) more ports than it is run with.
fn container_port(c: &Container, configured: Option<u16>, target_type: TargetType) -> Result<u16, String> {
    if let Some(p) = configured {
        return Ok(p);
    }
    if let Some(label) = c.labels.get(LABEL_CONTAINER_PORT) {
        return label
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{LABEL_CONTAINER_PORT}={label} is not a port"));
    }
    let published = target_type == TargetType::Instance && c.ports.iter().any(|b| b.host.is_some());
    let mut ports: Vec<u16> = c
        .ports
        .iter()
        .filter(|b| !published || b.host.is_some())
        .map(|b| b.container_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    match ports.as_slice() {
        [one] => Ok(*one),
        [] => Err("exposes no TCP port; publish one (docker run -p PORT) or set container_port".into()),
        several => Err(format!(
            "has several ports ({}); set container_port in the target group's [docker] table or the {LABEL_CONTAINER_PORT} label",
            several.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Where the target is reached.
pub fn address(
    c: &Container,
    configured_port: Option<u16>,
    target_type: TargetType,
    host_address: IpAddr,
) -> Result<SocketAddr, String> {
    let port = container_port(c, configured_port, target_type)?;
    match target_type {
        TargetType::Ip => {
            let ip = c
                .networks
                .get("bridge")
                .or_else(|| c.networks.values().next())
                .ok_or_else(|| "has no IP address on any network (target_type = \"ip\")".to_owned())?;
            Ok(SocketAddr::new(*ip, port))
        }
        TargetType::Instance => {
            let published: Vec<(Option<IpAddr>, u16)> = c
                .ports
                .iter()
                .filter(|b| b.container_port == port)
                .filter_map(|b| b.host)
                .collect();
            // IPv4 first: Docker 20.10 gives the IPv4 and IPv6 bindings different host ports.
            let pick = published
                .iter()
                .find(|(ip, _)| ip.is_none_or(|ip| ip.is_ipv4()))
                .or_else(|| published.first());
            let Some((ip, host_port)) = pick else {
                return Err(format!(
                    "does not publish container port {port} (run it with -p {port})"
                ));
            };
            let ip = match ip {
                Some(ip) if !ip.is_unspecified() => *ip,
                _ => host_address,
            };
            Ok(SocketAddr::new(ip, *host_port))
        }
    }
}

/// Adds a container's rule labels to its label group (values from several containers are
/// merged; the lowest priority wins).
fn merge_label_rule(g: &mut LabelGroup, c: &Container) {
    let values = |key: &str| -> Vec<String> {
        c.labels
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    for p in values(LABEL_PATH_PATTERN) {
        if !g.path_patterns.contains(&p) {
            g.path_patterns.push(p);
        }
    }
    for h in values(LABEL_HOST_HEADER) {
        if !g.host_headers.contains(&h) {
            g.host_headers.push(h);
        }
    }
    if let Some(p) = c
        .labels
        .get(LABEL_PRIORITY)
        .and_then(|p| p.trim().parse::<u32>().ok())
    {
        g.priority = Some(g.priority.map_or(p, |q| q.min(p)));
    }
    if g.health_check_path.is_none() {
        g.health_check_path = c.labels.get(LABEL_HEALTH_CHECK_PATH).map(|p| p.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Binding;

    fn container(name: &str, labels: &[(&str, &str)], ports: &[(u16, Option<(&str, u16)>)]) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            running: true,
            paused: false,
            stopping: false,
            health: DockerHealth::None,
            ports: ports
                .iter()
                .map(|(cp, host)| Binding {
                    container_port: *cp,
                    host: host.map(|(ip, p)| (ip.parse().ok(), p)),
                })
                .collect(),
            networks: BTreeMap::from([("bridge".to_owned(), "172.17.0.5".parse().unwrap())]),
        }
    }

    fn all(cs: Vec<Container>) -> BTreeMap<String, Container> {
        cs.into_iter().map(|c| (c.id.clone(), c)).collect()
    }

    fn selection(groups: Vec<GroupSelector>, create: bool) -> Selection {
        Selection {
            groups,
            host_address: "127.0.0.1".parse().unwrap(),
            create_label_groups: create,
        }
    }

    fn ecs_group(port: Option<u16>) -> GroupSelector {
        GroupSelector {
            name: "api".into(),
            docker: Some(DockerSelector {
                labels: BTreeMap::from([("com.amazonaws.ecs.task-definition-family".into(), "api".into())]),
                container_port: port,
            }),
            target_type: TargetType::Instance,
        }
    }

    fn addresses(d: &Desired, group: &str) -> Vec<String> {
        d.registrations
            .get(group)
            .map(|v| v.iter().map(|f| f.address.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn ecs_labels_select_and_the_host_port_is_registered() {
        let cs = all(vec![
            container(
                "api-1",
                &[("com.amazonaws.ecs.task-definition-family", "api")],
                &[(80, Some(("0.0.0.0", 32768)))],
            ),
            container(
                "other",
                &[("com.amazonaws.ecs.task-definition-family", "web")],
                &[(80, Some(("0.0.0.0", 32769)))],
            ),
        ]);
        let d = desired(&cs, &selection(vec![ecs_group(Some(80))], false));
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:32768"]);
        assert!(d.reported.is_empty());
    }

    #[test]
    fn container_port_picks_among_several_and_ipv4_is_preferred() {
        let c = container(
            "multi",
            &[("com.amazonaws.ecs.task-definition-family", "api")],
            &[
                (80, Some(("::", 40001))),
                (80, Some(("0.0.0.0", 40000))),
                (9090, Some(("0.0.0.0", 40002))),
            ],
        );
        let d = desired(
            &all(vec![c.clone()]),
            &selection(vec![ecs_group(Some(80))], false),
        );
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:40000"]);
        let d = desired(&all(vec![c]), &selection(vec![ecs_group(None)], false));
        assert!(d.registrations.is_empty());
        assert!(
            d.reported[0].reason.contains("several ports (80, 9090)"),
            "{:?}",
            d.reported
        );
    }

    #[test]
    fn the_one_published_port_wins_over_ports_only_exposed() {
        let c = container(
            "exposes-two",
            &[("com.amazonaws.ecs.task-definition-family", "api")],
            &[(80, None), (8081, Some(("0.0.0.0", 40100)))],
        );
        let d = desired(&all(vec![c]), &selection(vec![ecs_group(None)], false));
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:40100"]);
        assert!(d.reported.is_empty(), "{:?}", d.reported);
    }

    #[test]
    fn a_specific_host_ip_is_kept_and_unpublished_ports_are_reported() {
        let cs = all(vec![
            container(
                "bound",
                &[(LABEL_TARGET_GROUP, "web")],
                &[(8080, Some(("127.0.0.2", 41000)))],
            ),
            container("exposed", &[(LABEL_TARGET_GROUP, "web")], &[(8080, None)]),
        ]);
        let web = GroupSelector {
            name: "web".into(),
            docker: None,
            target_type: TargetType::Instance,
        };
        let d = desired(&cs, &selection(vec![web], false));
        assert_eq!(addresses(&d, "web"), vec!["127.0.0.2:41000"]);
        assert_eq!(d.reported.len(), 1);
        assert_eq!(d.reported[0].container_name, "exposed");
        assert!(
            d.reported[0]
                .reason
                .contains("does not publish container port 8080 (run it with -p 8080)")
        );
    }

    #[test]
    fn stopping_paused_and_stopped_containers_are_not_registered() {
        let mut a = container("a", &[(LABEL_TARGET_GROUP, "web")], &[(80, Some(("0.0.0.0", 1)))]);
        a.stopping = true;
        let mut b = container("b", &[(LABEL_TARGET_GROUP, "web")], &[(80, Some(("0.0.0.0", 2)))]);
        b.paused = true;
        let mut c = container("c", &[(LABEL_TARGET_GROUP, "web")], &[(80, Some(("0.0.0.0", 3)))]);
        c.running = false;
        let d_ = container("d", &[(LABEL_TARGET_GROUP, "web")], &[(80, Some(("0.0.0.0", 4)))]);
        let web = GroupSelector {
            name: "web".into(),
            docker: None,
            target_type: TargetType::Instance,
        };
        let d = desired(&all(vec![a, b, c, d_]), &selection(vec![web], false));
        assert_eq!(addresses(&d, "web"), vec!["127.0.0.1:4"]);
    }

    #[test]
    fn label_convention_with_port_label_and_unknown_group() {
        let cs = all(vec![
            container(
                "w",
                &[(LABEL_TARGET_GROUP, "web"), (LABEL_CONTAINER_PORT, "8080")],
                &[(8080, Some(("0.0.0.0", 50000))), (9000, Some(("0.0.0.0", 50001)))],
            ),
            container(
                "x",
                &[(LABEL_TARGET_GROUP, "nope")],
                &[(80, Some(("0.0.0.0", 50002)))],
            ),
        ]);
        let web = GroupSelector {
            name: "web".into(),
            docker: None,
            target_type: TargetType::Instance,
        };
        let d = desired(&cs, &selection(vec![web], false));
        assert_eq!(addresses(&d, "web"), vec!["127.0.0.1:50000"]);
        assert_eq!(d.reported.len(), 1);
        assert!(d.reported[0].reason.contains("no target group `nope`"));
    }

    #[test]
    fn ip_targets_use_the_container_address() {
        let c = container("ipt", &[(LABEL_TARGET_GROUP, "ipg")], &[(80, None)]);
        let g = GroupSelector {
            name: "ipg".into(),
            docker: None,
            target_type: TargetType::Ip,
        };
        let d = desired(&all(vec![c]), &selection(vec![g], false));
        assert_eq!(addresses(&d, "ipg"), vec!["172.17.0.5:80"]);
    }

    #[test]
    fn label_groups_are_created_without_a_configuration() {
        let cs = all(vec![
            container(
                "a1",
                &[
                    (LABEL_TARGET_GROUP, "api"),
                    (LABEL_PATH_PATTERN, "/api/*, /v2/*"),
                    (LABEL_PRIORITY, "20"),
                ],
                &[(80, Some(("0.0.0.0", 1000)))],
            ),
            container(
                "a2",
                &[
                    (LABEL_TARGET_GROUP, "api"),
                    (LABEL_HOST_HEADER, "api.localhost"),
                    (LABEL_PRIORITY, "10"),
                ],
                &[(80, Some(("0.0.0.0", 1001)))],
            ),
        ]);
        let d = desired(&cs, &selection(vec![], true));
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:1000", "127.0.0.1:1001"]);
        assert_eq!(
            d.label_groups,
            vec![LabelGroup {
                name: "api".into(),
                path_patterns: vec!["/api/*".into(), "/v2/*".into()],
                host_headers: vec!["api.localhost".into()],
                priority: Some(10),
                health_check_path: None,
            }]
        );
    }

    #[test]
    fn docker_health_is_carried() {
        let mut c = container("h", &[(LABEL_TARGET_GROUP, "web")], &[(80, Some(("0.0.0.0", 7)))]);
        c.health = DockerHealth::Unhealthy;
        let web = GroupSelector {
            name: "web".into(),
            docker: None,
            target_type: TargetType::Instance,
        };
        let d = desired(&all(vec![c]), &selection(vec![web], false));
        assert!(d.registrations["web"][0].unhealthy);
    }
}
