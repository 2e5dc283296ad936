//! Target groups: their settings and health checks, their attributes, and the Docker
//! selectors ECS services give them.

use std::collections::HashMap;

use super::Described;
use super::notes::{NoteKind, Notes};
use super::toml_out::Tv;
use crate::arn::ElbResource;
use crate::ecs::{self, labels};
use crate::elbv2::{self, Attribute};

/// A target group as it will be written.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutGroup {
    pub name: String,
    /// Where it came from (an ARN), for a comment.
    pub source: String,
    pub members: Vec<(String, Tv)>,
    pub health_check: Vec<(String, Tv)>,
    pub docker: Option<Selector>,
}

/// `[target_group.NAME.docker]`.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub labels: Vec<(String, String)>,
    pub container_port: u16,
    /// The ECS service it comes from, for a comment.
    pub service: String,
}

/// The groups written, and how ARNs map to their names.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    pub list: Vec<OutGroup>,
    /// Target group ARN -> name, for every group written.
    pub names: HashMap<String, String>,
}

impl Groups {
    /// The name of the group an ARN names, when that group is written.
    pub(crate) fn name_of(&self, arn: &str) -> Option<&str> {
        self.names.get(arn).map(String::as_str)
    }
}

pub(crate) fn build(d: &Described, notes: &mut Notes) -> Groups {
    let mut groups = Groups::default();
    for (arn, name) in &d.external_groups {
        groups.names.insert(arn.clone(), name.clone());
    }
    for g in &d.target_groups {
        if let Some(out) = described_group(d, g, notes) {
            groups.names.insert(g.target_group_arn.clone(), out.name.clone());
            groups.list.push(out);
        }
    }
    let skipped: Vec<&str> = d
        .target_groups
        .iter()
        .filter(|g| !groups.names.contains_key(&g.target_group_arn))
        .map(|g| g.target_group_arn.as_str())
        .collect();
    // Groups named by rules or services but absent from describe-target-groups: written
    // with ALB's defaults.
    for arn in referenced_groups(d) {
        if groups.names.contains_key(&arn) || skipped.contains(&arn.as_str()) {
            continue;
        }
        let Some(ElbResource::TargetGroup { name, .. }) = ElbResource::parse(&arn) else {
            notes.push(format!(
                "`{arn}` is not a target group ARN; what names it is left out"
            ));
            continue;
        };
        if groups.list.iter().any(|g| g.name == name) {
            notes.push(format!(
                "`{arn}`: another target group is also named `{name}`; what names this one is left out"
            ));
            continue;
        }
        notes.push(format!(
            "target group `{name}` is not in the describe-target-groups output given: written with ALB's defaults (give its describe-target-groups output for its health check)"
        ));
        groups.names.insert(arn.clone(), name.to_owned());
        groups.list.push(OutGroup {
            name: name.to_owned(),
            source: arn.clone(),
            ..OutGroup::default()
        });
    }
    for (of, origin, attributes) in &d.attributes {
        if is_load_balancer(d, of) {
            continue;
        }
        let index = groups.list.iter().position(|g| &g.name == of || g.source == *of);
        match index {
            Some(i) => apply_attributes(&mut groups.list[i], attributes, notes),
            None => notes.push(format!(
                "{origin}: attributes of `{of}`, a target group that is not imported: left out"
            )),
        }
    }
    ecs_selectors(d, &mut groups, notes);
    for g in &groups.list {
        if g.docker.is_none() {
            notes.push_as(NoteKind::NoTargets, format!(
                "target group `{}` has no targets: add targets = [\"IP:PORT\"] or a [target_group.{}.docker] selector (describe-services output of the ECS service that uses it gives one)",
                g.name, g.name
            ));
        }
    }
    groups
}

/// Whether attributes given for `of` are a load balancer's (a target group of the same
/// name wins: describe-target-group-attributes is the usual one).
pub(crate) fn is_load_balancer(d: &Described, of: &str) -> bool {
    let group = d
        .target_groups
        .iter()
        .any(|g| g.target_group_name == of || g.target_group_arn == of)
        || of.contains(":targetgroup/");
    let lb = d
        .load_balancers
        .iter()
        .any(|l| l.load_balancer_name == of || l.load_balancer_arn == of)
        || of.contains(":loadbalancer/app/");
    lb && !group
}

fn referenced_groups(d: &Described) -> Vec<String> {
    let mut arns: Vec<String> = Vec::new();
    let actions = d
        .listeners
        .iter()
        .flat_map(|l| l.default_actions.iter())
        .chain(d.rules.iter().flat_map(|r| r.actions.iter()));
    for a in actions {
        arns.extend(a.target_group_arn.iter().cloned());
        if let Some(fc) = &a.forward_config {
            arns.extend(
                fc.target_groups
                    .iter()
                    .flatten()
                    .filter_map(|t| t.target_group_arn.clone()),
            );
        }
    }
    arns.extend(
        d.services
            .iter()
            .flat_map(|s| s.load_balancers.iter())
            .filter_map(|lb| lb.target_group_arn.clone()),
    );
    let mut seen = Vec::new();
    for a in arns {
        if !seen.contains(&a) {
            seen.push(a);
        }
    }
    seen
}

fn described_group(d: &Described, g: &elbv2::TargetGroup, notes: &mut Notes) -> Option<OutGroup> {
    let name = g.target_group_name.clone();
    let first = d.target_groups.iter().find(|x| x.target_group_name == name);
    if first.is_some_and(|x| x.target_group_arn != g.target_group_arn) {
        notes.push(format!(
            "`{}`: another target group is also named `{name}`: left out",
            g.target_group_arn
        ));
        return None;
    }
    let mut members = Vec::new();
    match g.protocol.as_deref() {
        None => {}
        Some(p @ ("HTTP" | "HTTPS")) => members.push(("protocol".to_owned(), Tv::str(p))),
        Some(other) => {
            notes.push(format!(
                "target group `{name}`: protocol {other} (a network load balancer's) is not served by hostalb: left out, with what forwards to it"
            ));
            return None;
        }
    }
    if let Some(v) = &g.protocol_version {
        members.push(("protocol_version".to_owned(), Tv::str(v)));
    }
    match g.target_type.as_deref() {
        None => {}
        Some(t @ ("instance" | "ip")) => members.push(("target_type".to_owned(), Tv::str(t))),
        Some(other) => {
            notes.push(format!(
                "target group `{name}`: {other} targets are not served by hostalb: left out, with what forwards to it"
            ));
            return None;
        }
    }
    let mut hc = Vec::new();
    if g.health_check_enabled == Some(false) {
        hc.push(("enabled".to_owned(), Tv::Bool(false)));
    }
    match g.health_check_protocol.as_deref() {
        Some(p @ ("HTTP" | "HTTPS")) if Some(p) != g.protocol.as_deref() => {
            hc.push(("protocol".to_owned(), Tv::str(p)))
        }
        Some("HTTP" | "HTTPS") | None => {}
        Some(other) => notes.push_as(NoteKind::HealthCheckProtocol, format!(
            "target group `{name}`: health checks over {other} are not done by hostalb: it checks with {}",
            g.protocol.as_deref().unwrap_or("HTTP")
        )),
    }
    if let Some(path) = &g.health_check_path {
        hc.push(("path".to_owned(), Tv::str(path)));
    }
    match g.health_check_port.as_deref() {
        None => {}
        Some("traffic-port") => hc.push(("port".to_owned(), Tv::str("traffic-port"))),
        Some(p) => match p.parse::<i64>() {
            Ok(n) => hc.push(("port".to_owned(), Tv::Int(n))),
            Err(_) => notes.push(format!(
                "target group `{name}`: health-check port `{p}` is not a port: left out"
            )),
        },
    }
    for (key, value) in [
        ("interval_seconds", g.health_check_interval_seconds),
        ("timeout_seconds", g.health_check_timeout_seconds),
        ("healthy_threshold", g.healthy_threshold_count),
        ("unhealthy_threshold", g.unhealthy_threshold_count),
    ] {
        if let Some(v) = value {
            hc.push((key.to_owned(), Tv::Int(i64::from(v))));
        }
    }
    if let Some(m) = &g.matcher {
        if let Some(code) = m.http_code.as_ref().or(m.grpc_code.as_ref()) {
            hc.push(("matcher".to_owned(), Tv::str(code)));
        }
    }
    Some(OutGroup {
        name,
        source: g.target_group_arn.clone(),
        members,
        health_check: hc,
        docker: None,
    })
}

/// Attribute keys hostalb has no use for on one host, with the value that means "nothing
/// to carry": a different value is noted.
const IRRELEVANT: [(&str, &str); 9] = [
    ("load_balancing.cross_zone.enabled", ""),
    ("lambda.multi_value_headers.enabled", "false"),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        "",
    ),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        "",
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        "1",
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
        "off",
    ),
    ("load_balancing.algorithm.anomaly_mitigation", "off"),
    ("waf.fail_open.enabled", "false"),
    ("stickiness.enabled", ""),
];

fn apply_attributes(g: &mut OutGroup, attributes: &[Attribute], notes: &mut Notes) {
    let get = |k: &str| attributes.iter().find(|a| a.key == k).map(|a| a.value.as_str());
    let name = g.name.clone();
    let mut seconds = |key: &str, member: &str, g: &mut OutGroup| {
        if let Some(v) = get(key) {
            match v.trim().parse::<i64>() {
                Ok(n) => g.members.push((member.to_owned(), Tv::Int(n))),
                Err(_) => notes.push(format!(
                    "target group `{name}`: {key} = `{v}` is not a number of seconds: left out"
                )),
            }
        }
    };
    seconds(
        "deregistration_delay.timeout_seconds",
        "deregistration_delay_seconds",
        g,
    );
    seconds("slow_start.duration_seconds", "slow_start_seconds", g);
    if let Some(a) = get("load_balancing.algorithm.type") {
        g.members.push(("algorithm".to_owned(), Tv::str(a)));
    }
    if get("stickiness.enabled") == Some("true") {
        match stickiness(attributes) {
            Ok(s) => g.members.push(("stickiness".to_owned(), s)),
            Err(why) => notes.push(format!("target group `{}`: stickiness {why}: left out", g.name)),
        }
    }
    let carried = [
        "deregistration_delay.timeout_seconds",
        "slow_start.duration_seconds",
        "load_balancing.algorithm.type",
        "stickiness.type",
        "stickiness.lb_cookie.duration_seconds",
        "stickiness.app_cookie.cookie_name",
        "stickiness.app_cookie.duration_seconds",
    ];
    for a in attributes {
        if carried.contains(&a.key.as_str()) {
            continue;
        }
        match IRRELEVANT.iter().find(|(k, _)| *k == a.key) {
            Some((_, neutral)) if neutral.is_empty() || *neutral == a.value => {}
            Some(_) => notes.push(format!(
                "target group `{}`: attribute {} = {} has no counterpart in hostalb: left out",
                g.name, a.key, a.value
            )),
            None => notes.push(format!(
                "target group `{}`: unknown attribute {} = {}: left out",
                g.name, a.key, a.value
            )),
        }
    }
}

fn stickiness(attributes: &[Attribute]) -> Result<Tv, String> {
    let get = |k: &str| attributes.iter().find(|a| a.key == k).map(|a| a.value.as_str());
    let duration = |key: &str| -> Result<Option<Tv>, String> {
        match get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(|n| Some(Tv::Int(n)))
                .map_err(|_| format!("{key} = `{v}` is not a number of seconds")),
        }
    };
    let mut members = Vec::new();
    match get("stickiness.type") {
        Some("lb_cookie") | None => {
            members.push(("type".to_owned(), Tv::str("lb_cookie")));
            members.extend(
                duration("stickiness.lb_cookie.duration_seconds")?
                    .map(|d| ("duration_seconds".to_owned(), d)),
            );
        }
        Some("app_cookie") => {
            let Some(cookie) = get("stickiness.app_cookie.cookie_name") else {
                return Err("of type app_cookie has no stickiness.app_cookie.cookie_name".into());
            };
            members.push(("type".to_owned(), Tv::str("app_cookie")));
            members.push(("cookie_name".to_owned(), Tv::str(cookie)));
            members.extend(
                duration("stickiness.app_cookie.duration_seconds")?
                    .map(|d| ("duration_seconds".to_owned(), d)),
            );
        }
        Some(other) => {
            return Err(format!(
                "of type {other} (a network load balancer's) is not served by hostalb"
            ));
        }
    }
    Ok(Tv::Table(members))
}

fn ecs_selectors(d: &Described, groups: &mut Groups, notes: &mut Notes) {
    for service in &d.services {
        if service.load_balancers.is_empty() {
            notes.push(format!(
                "ECS service `{}` has no load balancer: nothing of it to carry",
                service.service_name
            ));
            continue;
        }
        let Some(reference) = service.task_definition.as_deref() else {
            notes.push(format!(
                "ECS service `{}` names no task definition: its containers cannot be selected",
                service.service_name
            ));
            continue;
        };
        let family = ecs::task_definition_family(reference);
        let definition = d.task_definitions.iter().find(|t| t.family == family);
        for lb in &service.load_balancers {
            let (Some(arn), Some(container), Some(port)) =
                (&lb.target_group_arn, &lb.container_name, lb.container_port)
            else {
                notes.push(format!(
                    "ECS service `{}`: a load balancer entry without targetGroupArn, containerName and containerPort (a classic load balancer's?) is left out",
                    service.service_name
                ));
                continue;
            };
            let Some(name) = groups.name_of(arn).map(str::to_owned) else {
                notes.push(format!(
                    "ECS service `{}`: target group `{arn}` is not imported: its selector is left out",
                    service.service_name
                ));
                continue;
            };
            if let Some(td) = definition {
                check_container(td, &service.service_name, container, port, notes);
            }
            let Some(group) = groups.list.iter_mut().find(|g| g.name == name) else {
                continue;
            };
            if let Some(existing) = &group.docker {
                notes.push(format!(
                    "target group `{name}` is used by ECS services `{}` and `{}`: hostalb selects one set of containers per group; `{}` is kept",
                    existing.service, service.service_name, existing.service
                ));
                continue;
            }
            group.docker = Some(Selector {
                labels: vec![
                    (labels::TASK_DEFINITION_FAMILY.to_owned(), family.to_owned()),
                    (labels::CONTAINER_NAME.to_owned(), container.clone()),
                ],
                container_port: port,
                service: service.service_name.clone(),
            });
        }
    }
}

fn check_container(td: &ecs::TaskDefinition, service: &str, container: &str, port: u16, notes: &mut Notes) {
    let Some(c) = td.container_definitions.iter().find(|c| c.name == container) else {
        notes.push(format!(
            "ECS service `{service}`: task definition `{}` has no container `{container}`",
            td.family
        ));
        return;
    };
    if !c.port_mappings.iter().any(|m| m.container_port == Some(port)) {
        notes.push(format!(
            "ECS service `{service}`: container `{container}` of `{}` maps no containerPort {port}: hostalb finds its targets only on a published port",
            td.family
        ));
    }
    if td.network_mode.as_deref() == Some("awsvpc") {
        notes.push(format!(
            "ECS service `{service}`: task definition `{}` uses awsvpc networking; on one host hostalb registers the host port Docker publishes for containerPort {port}",
            td.family
        ));
    }
}
