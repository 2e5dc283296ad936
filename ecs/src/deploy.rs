//! UpdateService and the rolling deployment as ECS's scheduler runs it: a new task
//! definition (or forceNewDeployment) makes a new PRIMARY deployment, the previous ones
//! ACTIVE; new tasks start while RUNNING+PENDING stays within `maximumPercent` of the
//! desired count; old tasks stop (deregister, drain, SIGTERM) while the healthy ones stay
//! at least `minimumHealthyPercent`; a new task counts healthy only once its targets in
//! every load balancer's group are `healthy`. The circuit breaker fails a deployment
//! whose tasks keep failing and, with rollback, deploys the last COMPLETED revision.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::ops::{self, find_td_pub as find_td};
use crate::records::{CircuitBreaker, Deployment, DeploymentConfiguration, Service, Task};
use crate::services::{event, group, of_service, service_json, stop_all, with_service};
use crate::{EcsError, Inner, now, random_hex};

/// ECS's default `maximumPercent` for a rolling deployment.
pub(crate) const DEFAULT_MAXIMUM_PERCENT: u32 = 200;
/// ECS's default `minimumHealthyPercent` for a REPLICA service.
pub(crate) const DEFAULT_MINIMUM_HEALTHY_PERCENT: u32 = 100;
/// The circuit breaker's failure threshold is half the desired count, at least this...
const BREAKER_MIN_THRESHOLD: usize = 3;
/// ...and at most this (ECS's bounds).
const BREAKER_MAX_THRESHOLD: usize = 200;

/// A service's deployments, the PRIMARY last (one made up for a service recorded before
/// deployments were kept).
pub(crate) fn deployments(s: &Service) -> Vec<Deployment> {
    if s.deployments.is_empty() {
        return vec![Deployment {
            id: s.deployment_id.clone(),
            status: "PRIMARY".into(),
            task_definition: s.task_definition.clone(),
            created_at: s.created_at,
            updated_at: s.created_at,
            rollout_state: "IN_PROGRESS".into(),
            rollout_state_reason: None,
            blue_green: None,
        }];
    }
    s.deployments.clone()
}

/// A new PRIMARY deployment of `td`; the others turn ACTIVE.
pub(crate) fn start_deployment(s: &mut Service, td: String, reason: &str) {
    let mut all = deployments(s);
    for d in &mut all {
        d.status = "ACTIVE".into();
    }
    let t = now();
    let d = Deployment {
        id: format!("ecs-svc/{}", random_hex(10)),
        status: "PRIMARY".into(),
        task_definition: td.clone(),
        created_at: t,
        updated_at: t,
        rollout_state: "IN_PROGRESS".into(),
        rollout_state_reason: Some(reason.to_owned()),
        blue_green: None,
    };
    s.deployment_id = d.id.clone();
    s.task_definition = td;
    all.push(d);
    s.deployments = all;
}

/// Checks a `deploymentConfiguration` as ECS does (the blue/green members in `bluegreen`).
pub(crate) fn check_configuration(c: &DeploymentConfiguration) -> Result<(), EcsError> {
    crate::bluegreen::check_configuration(c)?;
    let max = c.maximum_percent.unwrap_or(DEFAULT_MAXIMUM_PERCENT);
    let min = c
        .minimum_healthy_percent
        .unwrap_or(DEFAULT_MINIMUM_HEALTHY_PERCENT);
    if min > 100 {
        return Err(EcsError::invalid(
            "minimumHealthyPercent must be between 0 and 100",
        ));
    }
    if max < 100 || (min == 100 && max == 100) {
        return Err(EcsError::invalid(format!(
            "maximumPercent {max} with minimumHealthyPercent {min} leaves no room for a rolling deployment: maximumPercent must be at least 100 and above minimumHealthyPercent when both are 100"
        )));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UpdateServiceInput {
    cluster: Option<String>,
    service: String,
    desired_count: Option<u32>,
    task_definition: Option<String>,
    deployment_configuration: Option<DeploymentConfiguration>,
    force_new_deployment: bool,
    health_check_grace_period_seconds: Option<i64>,
    load_balancers: Option<Vec<Value>>,
    network_configuration: Option<Value>,
    capacity_provider_strategy: Option<Value>,
    placement_constraints: Option<Value>,
    placement_strategy: Option<Value>,
    service_registries: Option<Value>,
    deployment_controller: Option<Value>,
}

pub(crate) fn update(inner: &Arc<Inner>, input: Value) -> Result<Value, EcsError> {
    let input: UpdateServiceInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    for (given, name) in [
        (&input.network_configuration, "networkConfiguration"),
        (&input.capacity_provider_strategy, "capacityProviderStrategy"),
        (&input.placement_constraints, "placementConstraints"),
        (&input.placement_strategy, "placementStrategy"),
        (&input.service_registries, "serviceRegistries"),
        (&input.deployment_controller, "deploymentController"),
    ] {
        if given.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(EcsError::invalid(format!(
                "{name} cannot be changed by UpdateService in hostalb yet"
            )));
        }
    }
    if input.load_balancers.is_some() {
        return Err(EcsError::invalid(
            "loadBalancers cannot be changed by UpdateService in hostalb yet: create a new service",
        ));
    }
    if let Some(c) = &input.deployment_configuration {
        check_configuration(c)?;
    }
    let grace = crate::services::grace_period(input.health_check_grace_period_seconds)?;
    let td = match input.task_definition.as_deref() {
        Some(r) => {
            let td = find_td(inner, r)?;
            if td.status.as_deref() != Some("ACTIVE") {
                return Err(EcsError::client("TaskDefinition is inactive"));
            }
            Some(td)
        }
        None => None,
    };
    let mut state = inner.state.lock();
    let Some(s) = state.services.iter_mut().find(|s| {
        s.cluster_arn == cl.cluster_arn
            && s.status == "ACTIVE"
            && (s.service_name == input.service || s.service_arn == input.service)
    }) else {
        return Err(EcsError::new(
            "ServiceNotFoundException",
            format!("Service not found: {}", input.service),
        ));
    };
    if let Some(td) = &td {
        for lb in &s.load_balancers {
            let ok = td.container_definitions.iter().any(|c| {
                c.name == lb.container_name
                    && c.port_mappings
                        .iter()
                        .any(|m| m.container_port == Some(lb.container_port))
            });
            if !ok {
                return Err(EcsError::invalid(format!(
                    "The container {} with port {} does not exist in the task definition {}",
                    lb.container_name,
                    lb.container_port,
                    td.task_definition_arn.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    if let Some(n) = input.desired_count {
        s.desired_count = n;
    }
    if let Some(c) = input.deployment_configuration {
        s.deployment_configuration = c;
    }
    if let Some(g) = grace {
        s.health_check_grace_period_seconds = Some(g);
    }
    let new_td = td.and_then(|t| t.task_definition_arn);
    let changed = new_td.as_ref().is_some_and(|t| *t != s.task_definition);
    if changed || input.force_new_deployment {
        let arn = new_td.unwrap_or_else(|| s.task_definition.clone());
        let reason = if changed {
            "ECS deployment in progress."
        } else {
            "ECS deployment in progress: forceNewDeployment."
        };
        start_deployment(s, arn, reason);
        crate::bluegreen::begin(s);
    } else if input.desired_count.is_some() {
        // A new desired count is no new deployment: the primary's rollout state stays.
        if let Some(d) = s.deployments.last_mut() {
            d.updated_at = now();
        }
    }
    let s = s.clone();
    let out = service_json(&state.tasks, &s);
    drop(state);
    inner.save();
    Ok(json!({ "service": out }))
}

/// A task's health for a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// RUNNING, its container health checks passing (where the task definition has
    /// them), its targets `healthy` in every load balancer's target group.
    Healthy,
    /// Not known yet: a health check still in its `initial` state (a new target, or
    /// every target just after hostalb restarted).
    Pending,
    /// Not running, or a check that fails.
    Unhealthy,
}

/// Whether a task counts as healthy for a deployment.
async fn healthy(inner: &Inner, s: &Service, t: &Task) -> bool {
    verdict(inner, s, t).await == Verdict::Healthy
}

async fn verdict(inner: &Inner, s: &Service, t: &Task) -> Verdict {
    if t.last_status != "RUNNING" || t.health_status == "UNHEALTHY" {
        return Verdict::Unhealthy;
    }
    let mut verdict = Verdict::Healthy;
    if t.health_status != "HEALTHY"
        && find_td(inner, &t.task_definition_arn).is_ok_and(|td| {
            td.container_definitions
                .iter()
                .any(|c| c.is_essential() && c.health_check.is_some())
        })
    {
        verdict = Verdict::Pending;
    }
    for lb in &s.load_balancers {
        let Some((_, port)) = t.registered.iter().find(|(tg, _)| *tg == lb.target_group_arn) else {
            return Verdict::Unhealthy;
        };
        if let Some(read) = &inner.health {
            let state = read(lb.target_group_arn.clone(), t.target_ip(), *port).await;
            match state.as_deref() {
                Some("healthy") => {}
                Some("initial") => verdict = Verdict::Pending,
                _ => return Verdict::Unhealthy,
            }
        }
    }
    verdict
}

/// The most tasks RUNNING+PENDING (`maximumPercent` of `want`, rounded down, never below
/// `want`) and the fewest healthy (`minimumHealthyPercent`, rounded up), as ECS rounds them.
pub(crate) fn bounds(want: usize, cfg: &DeploymentConfiguration) -> (usize, usize) {
    let max = cfg.maximum_percent.unwrap_or(DEFAULT_MAXIMUM_PERCENT) as usize;
    let min = cfg
        .minimum_healthy_percent
        .unwrap_or(DEFAULT_MINIMUM_HEALTHY_PERCENT) as usize;
    ((want * max / 100).max(want), (want * min).div_ceil(100))
}

/// ECS's circuit breaker threshold: half the desired count, within its bounds.
pub(crate) fn breaker_threshold(desired: u32) -> usize {
    (desired as usize)
        .div_ceil(2)
        .clamp(BREAKER_MIN_THRESHOLD, BREAKER_MAX_THRESHOLD)
}

/// Tasks of a deployment that failed: stopped before the scheduler or a user stopped them.
fn failed_tasks(tasks: &[Task], s: &Service, id: &str) -> usize {
    tasks
        .iter()
        .filter(|t| {
            of_service(t, s)
                && t.started_by.as_deref() == Some(id)
                && t.desired_status == "STOPPED"
                && crate::services::task_failed(t)
        })
        .count()
}

/// One scheduling round of an ACTIVE service: starts and stops tasks toward its PRIMARY
/// deployment within the configuration's bounds, completes or fails the deployment.
/// `live` are the service's tasks whose desired status is RUNNING.
pub(crate) async fn roll(inner: &Arc<Inner>, s: &Service, live: &[Task], may_start: bool) {
    if crate::bluegreen::in_charge(s) {
        return crate::bluegreen::run(inner, s, live, may_start).await;
    }
    let all = deployments(s);
    let Some(primary) = all.last().cloned() else {
        return;
    };
    let want = s.desired_count as usize;
    let cfg = &s.deployment_configuration;
    let (max_total, min_healthy) = bounds(want, cfg);
    let (new, old): (Vec<&Task>, Vec<&Task>) = live
        .iter()
        .partition(|t| t.started_by.as_deref() == Some(primary.id.as_str()));

    // The circuit breaker.
    if primary.rollout_state == "IN_PROGRESS"
        && let Some(CircuitBreaker {
            enable: true,
            rollback,
        }) = cfg.deployment_circuit_breaker
    {
        let failed = failed_tasks(&inner.state.lock().tasks, s, &primary.id);
        if failed >= breaker_threshold(s.desired_count) {
            trip(inner, s, &primary, rollback);
            return;
        }
    }

    let mut healthy_new = 0;
    for t in &new {
        if healthy(inner, s, t).await {
            healthy_new += 1;
        }
    }
    // Old tasks whose health is not known yet (after a restart, every target starts
    // `initial` again) are neither stopped as unhealthy nor counted as healthy.
    let mut healthy_old = Vec::new();
    let mut unhealthy_old = Vec::new();
    for t in &old {
        match verdict(inner, s, t).await {
            Verdict::Healthy => healthy_old.push(*t),
            Verdict::Unhealthy => unhealthy_old.push(*t),
            Verdict::Pending => {}
        }
    }

    // Start new tasks up to the desired count, within maximumPercent.
    let room = max_total.saturating_sub(live.len());
    let start = want.saturating_sub(new.len()).min(room);
    if start > 0 && may_start {
        let Ok(td) = find_td(inner, &primary.task_definition) else {
            return;
        };
        let Ok(cl) = ops::cluster_pub(inner, Some(&s.cluster_arn)) else {
            return;
        };
        let started = ops::launch(
            inner,
            &cl,
            &td,
            u32::try_from(start).unwrap_or(0),
            group(&s.service_name),
            Some(primary.id.clone()),
        );
        let ids: Vec<String> = started
            .iter()
            .map(|t| format!("(task {})", t.task_arn.rsplit('/').next().unwrap_or_default()))
            .collect();
        with_service(inner, s, |x| {
            event(
                x,
                format!(
                    "(service {}) has started {} tasks: {}.",
                    x.service_name,
                    ids.len(),
                    ids.join(" ")
                ),
            )
        });
    }

    // Stop tasks: extra new ones (a scale down), old ones that are not healthy, then
    // healthy old ones while the healthy stay at least minimumHealthyPercent.
    let mut stopping: Vec<&Task> = Vec::new();
    if new.len() > want {
        let mut extra = new.clone();
        // The newest go first; not healthy ones before healthy ones would need health
        // per task: ECS picks by placement, the newest is as good.
        extra.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        stopping.extend(extra.into_iter().take(new.len() - want));
    }
    if !old.is_empty() {
        stopping.extend(unhealthy_old.iter().copied());
        let healthy_now = healthy_new.min(want) + healthy_old.len();
        let may_stop = healthy_now.saturating_sub(min_healthy);
        // Old tasks beyond what the desired count needs go regardless of health's floor
        // only once the new ones cover the floor.
        let mut oldest_first = healthy_old.clone();
        oldest_first.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        stopping.extend(oldest_first.into_iter().take(may_stop));
    }
    if !stopping.is_empty() {
        stop_all(inner, s, stopping, &primary.id);
        return;
    }

    // Steady: only the primary's tasks, as many as desired, all healthy.
    if start == 0 && old.is_empty() && new.len() == want && healthy_new == want {
        let t = now();
        let completed = primary.rollout_state != "COMPLETED";
        with_service(inner, s, |x| {
            let mut ds = deployments(x);
            let before = ds.len();
            ds.retain(|d| d.status == "PRIMARY");
            if let Some(d) = ds.last_mut()
                && d.rollout_state != "COMPLETED"
            {
                d.rollout_state = "COMPLETED".into();
                d.rollout_state_reason = Some("ECS deployment completed.".into());
                d.updated_at = t;
            }
            x.stable_task_definition = Some(x.task_definition.clone());
            x.deployments = ds;
            if completed || before > 1 {
                event(
                    x,
                    format!(
                        "(service {}) (deployment {}) deployment completed.",
                        x.service_name, primary.id
                    ),
                );
            }
            let steady = format!("(service {}) has reached a steady state.", x.service_name);
            if x.events.first().map(|e| &e.message) != Some(&steady) {
                event(x, steady);
            }
        });
    }
}

/// The circuit breaker trips: the deployment FAILED and, with rollback, a new deployment
/// of the last COMPLETED task definition.
fn trip(inner: &Inner, s: &Service, primary: &Deployment, rollback: bool) {
    let t = now();
    with_service(inner, s, |x| {
        let stable = x.stable_task_definition.clone();
        if let Some(d) = x.deployments.iter_mut().find(|d| d.id == primary.id) {
            d.rollout_state = "FAILED".into();
            d.rollout_state_reason = Some(format!(
                "ECS deployment circuit breaker: tasks failed to start.{}",
                if rollback && stable.is_some() {
                    " Rolling back to the last completed deployment."
                } else {
                    ""
                }
            ));
            d.updated_at = t;
        }
        event(
            x,
            format!(
                "(service {}) (deployment {}) deployment failed: tasks failed to start.",
                x.service_name, primary.id
            ),
        );
        if rollback && let Some(td) = stable {
            start_deployment(x, td.clone(), "ECS deployment circuit breaker: rolling back.");
            let id = x.deployment_id.clone();
            event(
                x,
                format!(
                    "(service {}) rolling back to deployment {id} ({td}).",
                    x.service_name
                ),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_threshold_is_half_the_desired_count_within_bounds() {
        assert_eq!(breaker_threshold(1), 3);
        assert_eq!(breaker_threshold(7), 4);
        assert_eq!(breaker_threshold(10), 5);
        assert_eq!(breaker_threshold(1000), 200);
    }

    #[test]
    fn maximum_rounds_down_and_minimum_rounds_up() {
        let c = |min, max| DeploymentConfiguration {
            minimum_healthy_percent: Some(min),
            maximum_percent: Some(max),
            ..DeploymentConfiguration::default()
        };
        assert_eq!(bounds(3, &DeploymentConfiguration::default()), (6, 3));
        assert_eq!(bounds(3, &c(50, 150)), (4, 2), "4.5 down, 1.5 up");
        assert_eq!(bounds(1, &c(0, 100)), (1, 0));
        assert_eq!(bounds(0, &c(100, 200)), (0, 0));
    }

    #[test]
    fn a_new_deployment_turns_the_others_active() {
        let mut s = Service {
            deployment_id: "ecs-svc/1".into(),
            task_definition: "td:1".into(),
            ..Service::default()
        };
        start_deployment(&mut s, "td:2".into(), "r");
        assert_eq!(s.deployments.len(), 2);
        assert_eq!(s.deployments[0].status, "ACTIVE");
        assert_eq!(s.deployments[1].status, "PRIMARY");
        assert_eq!(s.task_definition, "td:2");
        assert_eq!(s.deployment_id, s.deployments[1].id);
    }

    #[test]
    fn unknown_strategies_and_impossible_bounds_are_refused() {
        let c = |st: Option<&str>, min, max| DeploymentConfiguration {
            strategy: st.map(str::to_owned),
            minimum_healthy_percent: min,
            maximum_percent: max,
            ..DeploymentConfiguration::default()
        };
        assert!(check_configuration(&c(None, None, None)).is_ok());
        assert!(check_configuration(&c(Some("ROLLING"), Some(50), Some(100))).is_ok());
        assert_eq!(
            check_configuration(&c(Some("SHADOW"), None, None))
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
        assert!(check_configuration(&c(None, Some(100), Some(100))).is_err());
        assert!(check_configuration(&c(None, Some(101), None)).is_err());
    }
}
