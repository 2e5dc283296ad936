//! From what Docker runs to what hostalb should register: pure, so every rule of
//! selection, port resolution and label reading is tested without an engine.
//!
//! A container is considered when it is running, not paused and not stopping. It
//! registers in every configured target group whose `[docker]` selector's labels it all
//! carries, and in every group its `hostalb.*` labels declare (see [`crate::labels`]). The
//! container port is the selector's `container_port`, else the group's
//! `hostalb.<group>.container-port` label (or `hostalb.container-port`), else the
//! container's only TCP port. `instance` targets are the host binding of that port (IPv4
//! preferred; `0.0.0.0` and `::` mean `host_address`); `ip` targets are the container's
//! own address and port.
//!
//! Without a configuration file, groups the labels declare are created: the oldest
//! container that sets any of a group's attributes defines it (ties: by name, then id);
//! the others still serve in it, and each label of theirs that differs is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use hostalb_config::{DockerSelector, LabelGroup, LabelValue, Severity, TargetType, label_attribute};

use crate::container::{Container, DockerHealth};
use crate::labels::{self, Declaration, LABEL_PREFIX, LABEL_TARGET_GROUP, LabelProblem};

/// Which container port, when the container publishes several (for its
/// `hostalb.target-group` group and groups that select it by a `[docker]` selector).
pub const LABEL_CONTAINER_PORT: &str = "hostalb.container-port";

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
    /// Labels may declare groups the configuration does not have; they are created
    /// (hostalb without a configuration file).
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
    /// The label to fix, when a label is the cause.
    pub label: Option<String>,
}

/// A container, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
}

impl ContainerRef {
    fn of(c: &Container) -> ContainerRef {
        ContainerRef {
            id: c.id.clone(),
            name: c.name.clone(),
        }
    }
}

/// A target group declared by labels, and the containers that declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGroup {
    /// As its defining container declares it.
    pub group: LabelGroup,
    pub defined_by: ContainerRef,
    /// Every container that declares it, oldest first.
    pub containers: Vec<ContainerRef>,
}

/// What discovery wants registered, computed from all known containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Registrations by target group name.
    pub registrations: BTreeMap<String, Vec<Found>>,
    /// Groups and rules declared by labels (only with `create_label_groups`), by name.
    pub label_groups: Vec<DeclaredGroup>,
    pub reported: Vec<Reported>,
    /// Labels that are not understood, conflict, or do not apply.
    pub label_problems: Vec<LabelProblem>,
}

/// Computes the registrations of `containers`.
pub fn desired(containers: &BTreeMap<String, Container>, selection: &Selection) -> Desired {
    let mut out = Desired::default();
    let selector_keys: BTreeSet<&str> = selection
        .groups
        .iter()
        .filter_map(|g| g.docker.as_ref())
        .flat_map(|d| d.labels.keys().map(String::as_str))
        .collect();
    let mut members: BTreeMap<String, Vec<(&Container, Declaration)>> = BTreeMap::new();
    let mut ordered: Vec<&Container> = containers.values().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    for c in ordered {
        if !c.running || c.paused || c.stopping {
            continue;
        }
        let declared = labels::declared(c, &selector_keys);
        out.label_problems.extend(declared.problems);
        let mut joined: Vec<&str> = Vec::new();
        for g in &selection.groups {
            let Some(sel) = &g.docker else { continue };
            if sel.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)) {
                let label = declared
                    .groups
                    .get(&g.name)
                    .and_then(|d| d.port.as_ref())
                    .or(declared.unscoped_port.as_ref());
                register(
                    &mut out,
                    c,
                    &g.name,
                    sel.container_port,
                    label,
                    g.target_type,
                    selection.host_address,
                );
                joined.push(&g.name);
            }
        }
        if let Some(port) = &declared.unscoped_port
            && declared.unscoped_group.is_none()
            && joined.is_empty()
        {
            out.label_problems.push(problem(
                c,
                None,
                port,
                Severity::Error,
                format!(
                    "{} is set but {LABEL_TARGET_GROUP} is not: it applies to no target group",
                    port.label
                ),
                format!("add {LABEL_TARGET_GROUP}=NAME, or write hostalb.NAME.container-port"),
                "ignored".into(),
            ));
        }
        for (name, d) in declared.groups {
            let configured = selection.groups.iter().find(|g| g.name == name);
            if configured.is_some() || joined.contains(&name.as_str()) {
                for v in d.values.values() {
                    out.label_problems.push(problem(
                        c,
                        Some(&name),
                        v,
                        Severity::Error,
                        format!(
                            "the configuration file defines target group `{name}`; labels do not change it"
                        ),
                        format!(
                            "set it in [target_group.{name}] of the configuration file, or remove {}",
                            v.label
                        ),
                        "ignored".into(),
                    ));
                }
            }
            if joined.contains(&name.as_str()) {
                continue;
            }
            match configured {
                Some(g) => {
                    let port = g.docker.as_ref().and_then(|d| d.container_port);
                    register(
                        &mut out,
                        c,
                        &name,
                        port,
                        d.port.as_ref(),
                        g.target_type,
                        selection.host_address,
                    );
                }
                None if selection.create_label_groups => {
                    register(
                        &mut out,
                        c,
                        &name,
                        None,
                        d.port.as_ref(),
                        TargetType::Instance,
                        selection.host_address,
                    );
                    members.entry(name).or_default().push((c, d));
                }
                None => {
                    let label = named_by(&name, &d, declared.unscoped_group.as_deref());
                    out.reported.push(Reported {
                        container_id: c.id.clone(),
                        container_name: c.name.clone(),
                        target_group: name.clone(),
                        reason: format!(
                            "labelled {label} but the configuration has no target group `{name}`"
                        ),
                        label: Some(label),
                    });
                }
            }
        }
    }
    for (name, list) in members {
        out.label_groups
            .push(define(&name, list, &mut out.label_problems));
    }
    out
}

/// The label that names `group` on a container, for messages.
fn named_by(group: &str, d: &Declaration, unscoped: Option<&str>) -> String {
    if unscoped == Some(group) {
        return format!("{LABEL_TARGET_GROUP}={group}");
    }
    d.port
        .iter()
        .chain(d.values.values())
        .map(|v| v.label.clone())
        .next()
        .unwrap_or_else(|| format!("{LABEL_PREFIX}{group}.*"))
}

fn problem(
    c: &Container,
    group: Option<&str>,
    v: &LabelValue,
    severity: Severity,
    message: String,
    fix: String,
    effect: String,
) -> LabelProblem {
    LabelProblem {
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        target_group: group.map(str::to_owned),
        label: v.label.clone(),
        value: Some(v.value.clone()),
        severity,
        alb_limit: false,
        message,
        fix,
        effect,
    }
}

/// A label group from the containers that declare it: the oldest that sets any attribute
/// defines it; each attribute another container sets differently is reported on that
/// container.
fn define(
    name: &str,
    mut list: Vec<(&Container, Declaration)>,
    problems: &mut Vec<LabelProblem>,
) -> DeclaredGroup {
    list.sort_by(|(a, _), (b, _)| {
        a.created
            .cmp(&b.created)
            .then(a.name.cmp(&b.name))
            .then(a.id.cmp(&b.id))
    });
    let definer = list.iter().position(|(_, d)| !d.values.is_empty()).unwrap_or(0);
    let (dc, dd) = &list[definer];
    let fix = format!(
        "give every container of target group `{name}` the same hostalb labels, or set them on one container only"
    );
    let follows = format!(
        "ignored: target group `{name}` follows the labels of container {}",
        dc.name
    );
    for (i, (c, d)) in list.iter().enumerate() {
        if i == definer || d.values.is_empty() {
            continue;
        }
        let attrs: BTreeSet<&String> = d.values.keys().chain(dd.values.keys()).collect();
        for attr in attrs {
            let same = |a: &LabelValue, b: &LabelValue| {
                label_attribute(attr).map_or(a.value == b.value, |x| {
                    x.normalized(&a.value) == x.normalized(&b.value)
                })
            };
            match (d.values.get(attr), dd.values.get(attr)) {
                (Some(mine), Some(theirs)) if !same(mine, theirs) => problems.push(problem(
                    c,
                    Some(name),
                    mine,
                    Severity::Error,
                    format!(
                        "container {} (the oldest that labels target group `{name}`) sets {}={}",
                        dc.name, theirs.label, theirs.value
                    ),
                    fix.clone(),
                    follows.clone(),
                )),
                (Some(mine), None) => problems.push(problem(
                    c,
                    Some(name),
                    mine,
                    Severity::Error,
                    format!(
                        "container {} (the oldest that labels target group `{name}`) does not set it",
                        dc.name
                    ),
                    fix.clone(),
                    follows.clone(),
                )),
                (None, Some(theirs)) => problems.push(LabelProblem {
                    container_id: c.id.clone(),
                    container_name: c.name.clone(),
                    target_group: Some(name.to_owned()),
                    label: format!("{LABEL_PREFIX}{name}.{attr}"),
                    value: None,
                    severity: Severity::Warning,
                    alb_limit: false,
                    message: format!(
                        "not set here, but container {} (the oldest that labels target group `{name}`) sets {}={}",
                        dc.name, theirs.label, theirs.value
                    ),
                    fix: fix.clone(),
                    effect: format!("target group `{name}` uses {}={}", theirs.label, theirs.value),
                }),
                _ => {}
            }
        }
    }
    DeclaredGroup {
        group: LabelGroup {
            name: name.to_owned(),
            defined_by: dc.name.clone(),
            since: dc.created,
            values: dd.values.clone(),
        },
        defined_by: ContainerRef::of(dc),
        containers: list.iter().map(|(c, _)| ContainerRef::of(c)).collect(),
    }
}

fn register(
    out: &mut Desired,
    c: &Container,
    group: &str,
    configured_port: Option<u16>,
    label_port: Option<&LabelValue>,
    target_type: TargetType,
    host_address: IpAddr,
) {
    let port = match (configured_port, label_port) {
        (Some(p), _) => Port::Configured(p),
        (None, Some(v)) => Port::Label(v),
        (None, None) => Port::Only,
    };
    match address_for(c, &port, target_type, host_address) {
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
            label: match port {
                Port::Label(v) => Some(v.label.clone()),
                _ => None,
            },
        }),
    }
}

/// Where the container port comes from.
enum Port<'a> {
    /// The target group's `[docker].container_port`.
    Configured(u16),
    /// A `container-port` label.
    Label(&'a LabelValue),
    /// The container's only port.
    Only,
}

/// The container port to use: configured, labelled, or the only one. For an `instance`
/// target the only *published* one counts when some are published: an image may declare
/// (`EXPOSE`) more ports than it is run with.
fn container_port(c: &Container, port: &Port<'_>, target_type: TargetType) -> Result<u16, String> {
    match port {
        Port::Configured(p) => return Ok(*p),
        Port::Label(v) => {
            return v
                .value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    format!(
                        "{}={} is not a port: use the port the container listens on, 1 to 65535",
                        v.label, v.value
                    )
                });
        }
        Port::Only => {}
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
            "has several ports ({}); set container_port in the target group's [docker] table or the hostalb.GROUP.container-port label",
            several.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Where the target is reached: on `configured_port`, else the `hostalb.container-port`
/// label's port, else the container's only port.
pub fn address(
    c: &Container,
    configured_port: Option<u16>,
    target_type: TargetType,
    host_address: IpAddr,
) -> Result<SocketAddr, String> {
    let label = c.labels.get(LABEL_CONTAINER_PORT).map(|v| LabelValue {
        label: LABEL_CONTAINER_PORT.to_owned(),
        value: v.clone(),
    });
    let port = match (configured_port, &label) {
        (Some(p), _) => Port::Configured(p),
        (None, Some(v)) => Port::Label(v),
        (None, None) => Port::Only,
    };
    address_for(c, &port, target_type, host_address)
}

fn address_for(
    c: &Container,
    port: &Port<'_>,
    target_type: TargetType,
    host_address: IpAddr,
) -> Result<SocketAddr, String> {
    let port = container_port(c, port, target_type)?;
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
            created: 0,
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

    fn aged(mut c: Container, created: i64) -> Container {
        c.created = created;
        c
    }

    fn problems_of<'a>(d: &'a Desired, container: &str) -> Vec<(&'a str, Severity)> {
        d.label_problems
            .iter()
            .filter(|p| p.container_name == container)
            .map(|p| (p.label.as_str(), p.severity))
            .collect()
    }

    #[test]
    fn the_oldest_container_defines_a_label_group_and_the_others_differences_are_reported() {
        let cs = all(vec![
            aged(
                container(
                    "a-young",
                    &[
                        (LABEL_TARGET_GROUP, "api"),
                        ("hostalb.host-header", "api.localhost"),
                        ("hostalb.priority", "10"),
                    ],
                    &[(80, Some(("0.0.0.0", 1001)))],
                ),
                200,
            ),
            aged(
                container(
                    "z-old",
                    &[
                        (LABEL_TARGET_GROUP, "api"),
                        ("hostalb.path-pattern", "/api/*, /v2/*"),
                        ("hostalb.priority", "20"),
                    ],
                    &[(80, Some(("0.0.0.0", 1000)))],
                ),
                100,
            ),
            aged(
                container(
                    "plain",
                    &[(LABEL_TARGET_GROUP, "api")],
                    &[(80, Some(("0.0.0.0", 1002)))],
                ),
                50,
            ),
        ]);
        let d = desired(&cs, &selection(vec![], true));
        assert_eq!(
            addresses(&d, "api"),
            vec!["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1000"],
            "every container serves"
        );
        assert_eq!(d.label_groups.len(), 1);
        let g = &d.label_groups[0];
        assert_eq!(g.defined_by.name, "z-old", "the oldest that sets attributes");
        assert_eq!(g.group.since, 100);
        let names: Vec<&str> = g.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["plain", "z-old", "a-young"]);
        let values: Vec<(&str, &str)> = g
            .group
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            values,
            vec![("path-pattern", "/api/*, /v2/*"), ("priority", "20")]
        );
        assert_eq!(
            problems_of(&d, "a-young"),
            vec![
                ("hostalb.host-header", Severity::Error),
                ("hostalb.api.path-pattern", Severity::Warning),
                ("hostalb.priority", Severity::Error),
            ],
            "{:#?}",
            d.label_problems
        );
        let priority = d
            .label_problems
            .iter()
            .find(|p| p.label == "hostalb.priority")
            .unwrap();
        assert!(priority.message.contains("container z-old"), "{priority:?}");
        assert!(priority.effect.contains("follows the labels of container z-old"));
        assert!(
            problems_of(&d, "plain").is_empty(),
            "joining without attributes is fine"
        );
        assert!(problems_of(&d, "z-old").is_empty());
    }

    #[test]
    fn the_same_values_spelt_differently_are_no_conflict() {
        let cs = all(vec![
            aged(
                container(
                    "a",
                    &[(LABEL_TARGET_GROUP, "api"), ("hostalb.path-pattern", "/a/*,/b/*")],
                    &[(80, Some(("0.0.0.0", 1)))],
                ),
                1,
            ),
            aged(
                container(
                    "b",
                    &[("hostalb.api.path-pattern", "/b/*, /a/*")],
                    &[(80, Some(("0.0.0.0", 2)))],
                ),
                2,
            ),
        ]);
        let d = desired(&cs, &selection(vec![], true));
        assert!(d.label_problems.is_empty(), "{:#?}", d.label_problems);
        assert_eq!(addresses(&d, "api").len(), 2);
    }

    #[test]
    fn a_container_declares_several_groups_each_on_its_own_port() {
        let c = container(
            "multi",
            &[
                ("hostalb.api.container-port", "80"),
                ("hostalb.api.path-pattern", "/api/*"),
                ("hostalb.admin.container-port", "8081"),
                ("hostalb.admin.health-check.path", "/health"),
            ],
            &[(80, Some(("0.0.0.0", 2000))), (8081, Some(("0.0.0.0", 2001)))],
        );
        let d = desired(&all(vec![c]), &selection(vec![], true));
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:2000"]);
        assert_eq!(addresses(&d, "admin"), vec!["127.0.0.1:2001"]);
        let names: Vec<&str> = d.label_groups.iter().map(|g| g.group.name.as_str()).collect();
        assert_eq!(names, vec!["admin", "api"]);
        assert!(d.label_problems.is_empty(), "{:#?}", d.label_problems);
        assert!(d.reported.is_empty(), "{:#?}", d.reported);
    }

    #[test]
    fn a_bad_container_port_label_is_reported_with_the_label() {
        let c = container(
            "bad",
            &[("hostalb.api.container-port", "http")],
            &[(80, Some(("0.0.0.0", 1)))],
        );
        let d = desired(&all(vec![c]), &selection(vec![], true));
        assert!(d.registrations.is_empty());
        assert_eq!(d.reported.len(), 1);
        assert_eq!(d.reported[0].label.as_deref(), Some("hostalb.api.container-port"));
        assert!(d.reported[0].reason.contains("1 to 65535"), "{:?}", d.reported);
        assert_eq!(d.label_groups.len(), 1, "the group exists (its rule answers 503)");
    }

    #[test]
    fn with_a_file_scoped_ports_register_in_configured_groups_and_other_labels_are_reported() {
        let web = GroupSelector {
            name: "web".into(),
            docker: None,
            target_type: TargetType::Instance,
        };
        let c = container(
            "w",
            &[
                ("hostalb.web.container-port", "8080"),
                ("hostalb.web.health-check.path", "/h"),
                ("hostalb.other.container-port", "80"),
            ],
            &[(8080, Some(("0.0.0.0", 3000))), (80, Some(("0.0.0.0", 3001)))],
        );
        let d = desired(&all(vec![c]), &selection(vec![web], false));
        assert_eq!(addresses(&d, "web"), vec!["127.0.0.1:3000"]);
        assert!(d.label_groups.is_empty());
        assert_eq!(
            problems_of(&d, "w"),
            vec![("hostalb.web.health-check.path", Severity::Error)]
        );
        assert!(d.label_problems[0].fix.contains("[target_group.web]"));
        assert_eq!(d.reported.len(), 1);
        assert_eq!(d.reported[0].target_group, "other");
        assert_eq!(
            d.reported[0].label.as_deref(),
            Some("hostalb.other.container-port")
        );
    }

    #[test]
    fn the_unscoped_port_serves_selector_groups_and_is_reported_when_it_serves_none() {
        let c = container(
            "ecs",
            &[
                ("com.amazonaws.ecs.task-definition-family", "api"),
                (LABEL_CONTAINER_PORT, "9090"),
            ],
            &[(80, Some(("0.0.0.0", 4000))), (9090, Some(("0.0.0.0", 4001)))],
        );
        let d = desired(&all(vec![c.clone()]), &selection(vec![ecs_group(None)], false));
        assert_eq!(addresses(&d, "api"), vec!["127.0.0.1:4001"]);
        assert!(d.label_problems.is_empty(), "{:#?}", d.label_problems);
        let d = desired(&all(vec![c]), &selection(vec![], true));
        assert_eq!(
            problems_of(&d, "ecs"),
            vec![(LABEL_CONTAINER_PORT, Severity::Error)]
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
