//! Services, first part: CreateService / DescribeServices / ListServices / DeleteService,
//! and the scheduler that keeps `desiredCount` tasks running (a task that stops is
//! replaced) and registers each running task in its service's `loadBalancers` target
//! groups (ELBv2's RegisterTargets, as ECS's scheduler calls it), deregistering it before
//! its containers are stopped. After `healthCheckGracePeriodSeconds`, a task whose target
//! is `unhealthy` in one of its target groups, or whose essential container health check
//! fails, is stopped and replaced; within the grace period both are ignored. Deployments
//! and UpdateService are in `deploy`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::deploy::{self, DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT};
use crate::model::TaskDefinition;
use crate::ops::{self, find_td_pub as find_td};
use crate::records::{
    AdvancedConfiguration, DeploymentConfiguration, MAX_EVENTS, Service, ServiceEvent, ServiceLoadBalancer,
    Task,
};
use crate::{EcsError, Inner, Stop, TargetChange, driver, now, random_hex};

/// How often the scheduler compares running tasks with `desiredCount`.
const SCHEDULE_EVERY: Duration = Duration::from_secs(1);
/// First wait before a service starts tasks again after one failed to start; doubled per
/// failure in a row, as ECS's scheduler throttles a service that cannot start its tasks.
const FAILED_START_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait between attempts at starting a failing service's tasks.
const FAILED_START_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// ECS's bound on a service's load balancers.
const MAX_LOAD_BALANCERS: usize = 5;
/// `healthCheckGracePeriodSeconds` when a service gives none: ECS's default, 0.
const DEFAULT_GRACE_PERIOD: u32 = 0;
/// ECS's bound on `healthCheckGracePeriodSeconds` (a Java int's maximum).
const MAX_GRACE_PERIOD: i64 = 2_147_483_647;
/// The address services' tasks are registered with (bridge ports on this host).
const TASK_IP: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// ECS's stoppedReason prefix of a task its load balancer found unhealthy.
pub(crate) const ELB_FAILED: &str = "Task failed ELB health checks in";
/// ECS's stoppedReason of a task whose essential container health check failed.
pub(crate) const CONTAINER_FAILED: &str = "Task failed container health checks";

/// A `healthCheckGracePeriodSeconds` as given: within ECS's range.
pub(crate) fn grace_period(given: Option<i64>) -> Result<Option<u32>, EcsError> {
    match given {
        None => Ok(None),
        Some(g) if (0..=MAX_GRACE_PERIOD).contains(&g) => Ok(u32::try_from(g).ok()),
        Some(g) => Err(EcsError::invalid(format!(
            "healthCheckGracePeriodSeconds {g} is out of range: 0 to {MAX_GRACE_PERIOD}"
        ))),
    }
}

/// Whether a stopped task failed (counted in a deployment's failedTasks and by the
/// circuit breaker): it could not start, its essential container exited, or it failed
/// its health checks.
pub(crate) fn task_failed(t: &Task) -> bool {
    matches!(
        t.stop_code.as_deref(),
        Some("TaskFailedToStart" | "EssentialContainerExited")
    ) || (t.stop_code.as_deref() == Some("ServiceSchedulerInitiated")
        && t.stopped_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(ELB_FAILED) || r.starts_with(CONTAINER_FAILED)))
}

/// The `group` of a service's tasks, as ECS sets it.
pub(crate) fn group(service_name: &str) -> String {
    format!("service:{service_name}")
}

/// Whether the task belongs to the service (its cluster, its group).
pub(crate) fn of_service(t: &Task, s: &Service) -> bool {
    t.cluster_arn == s.cluster_arn && t.group == group(&s.service_name)
}

pub(crate) fn event(s: &mut Service, message: String) {
    s.events.insert(
        0,
        ServiceEvent {
            id: random_hex(16),
            created_at: now(),
            message,
        },
    );
    s.events.truncate(MAX_EVENTS);
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CreateServiceInput {
    cluster: Option<String>,
    service_name: String,
    task_definition: Option<String>,
    desired_count: Option<u32>,
    load_balancers: Vec<LbInput>,
    launch_type: Option<String>,
    scheduling_strategy: Option<String>,
    health_check_grace_period_seconds: Option<i64>,
    deployment_controller: Option<Value>,
    deployment_configuration: Option<DeploymentConfiguration>,
    network_configuration: Option<Value>,
    service_registries: Vec<Value>,
    task_sets: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LbInput {
    target_group_arn: Option<String>,
    load_balancer_name: Option<String>,
    container_name: Option<String>,
    container_port: Option<u16>,
    advanced_configuration: Option<AdvancedConfiguration>,
}

pub(crate) fn create(inner: &Arc<Inner>, input: Value) -> Result<Value, EcsError> {
    let input: CreateServiceInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    let name = &input.service_name;
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EcsError::invalid(format!(
            "serviceName `{name}` is invalid: up to 255 letters, numbers, hyphens and underscores"
        )));
    }
    if input
        .scheduling_strategy
        .as_deref()
        .is_some_and(|s| s != "REPLICA")
    {
        return Err(EcsError::invalid(
            "schedulingStrategy DAEMON is not supported by hostalb yet: REPLICA is",
        ));
    }
    if let Some(c) = &input.deployment_controller
        && c.get("type").and_then(Value::as_str).is_some_and(|t| t != "ECS")
    {
        return Err(EcsError::invalid(
            "deploymentController other than ECS is not supported by hostalb yet",
        ));
    }
    if !input.service_registries.is_empty() || input.task_sets.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(EcsError::invalid(
            "serviceRegistries and task sets are not supported by hostalb yet",
        ));
    }
    if let Some(lt) = input.launch_type.as_deref()
        && lt != "EC2"
    {
        return Err(EcsError::invalid(format!(
            "launchType {lt} is not served here: tasks run on this host's Docker engine as EC2 tasks do"
        )));
    }
    let Some(reference) = input.task_definition.as_deref() else {
        return Err(EcsError::invalid("taskDefinition is required"));
    };
    let td = find_td(inner, reference)?;
    if td.status.as_deref() != Some("ACTIVE") {
        return Err(EcsError::client("TaskDefinition is inactive"));
    }
    let Some(desired) = input.desired_count else {
        return Err(EcsError::invalid(
            "desiredCount is required for a REPLICA service",
        ));
    };
    crate::network::check_configuration(td.mode(), input.network_configuration.as_ref())?;
    let load_balancers = load_balancers(&td, &input.load_balancers)?;
    let grace = grace_period(input.health_check_grace_period_seconds)?;
    let deployment_configuration = input.deployment_configuration.unwrap_or_default();
    deploy::check_configuration(&deployment_configuration)?;
    let mut state = inner.state.lock();
    if state
        .services
        .iter()
        .any(|s| s.cluster_arn == cl.cluster_arn && &s.service_name == name && s.status != "INACTIVE")
    {
        return Err(EcsError::invalid("Creation of service was not idempotent."));
    }
    let mut service = Service {
        service_arn: format!(
            "arn:aws:ecs:{}:{}:service/{}/{name}",
            inner.scope.region, inner.scope.account, cl.cluster_name
        ),
        service_name: name.clone(),
        cluster_arn: cl.cluster_arn.clone(),
        task_definition: td.task_definition_arn.clone().unwrap_or_default(),
        desired_count: desired,
        load_balancers,
        status: "ACTIVE".into(),
        created_at: now(),
        deployment_id: format!("ecs-svc/{}", random_hex(10)),
        health_check_grace_period_seconds: grace,
        events: Vec::new(),
        deployments: Vec::new(),
        deployment_configuration,
        stable_task_definition: None,
        past_deployments: Vec::new(),
        network_configuration: input.network_configuration.clone().filter(|v| !v.is_null()),
    };
    service.deployments = deploy::deployments(&service);
    crate::bluegreen::begin(&mut service);
    event(&mut service, format!("(service {name}) was created."));
    state
        .services
        .retain(|s| !(s.cluster_arn == cl.cluster_arn && &s.service_name == name));
    state.services.push(service.clone());
    let out = service_json(&state.tasks, &service);
    drop(state);
    inner.save();
    Ok(json!({ "service": out }))
}

/// Each load balancer names a target group and a container port of the task definition.
fn load_balancers(td: &TaskDefinition, given: &[LbInput]) -> Result<Vec<ServiceLoadBalancer>, EcsError> {
    if given.len() > MAX_LOAD_BALANCERS {
        return Err(EcsError::invalid(format!(
            "a service has at most {MAX_LOAD_BALANCERS} load balancers"
        )));
    }
    given
        .iter()
        .map(|lb| {
            if lb.load_balancer_name.is_some() {
                return Err(EcsError::invalid(
                    "loadBalancerName (Classic Load Balancers) is not served: give targetGroupArn",
                ));
            }
            let tg = lb
                .target_group_arn
                .clone()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| EcsError::invalid("a load balancer needs targetGroupArn"))?;
            let name = lb
                .container_name
                .clone()
                .ok_or_else(|| EcsError::invalid("a load balancer needs containerName"))?;
            let port = lb
                .container_port
                .ok_or_else(|| EcsError::invalid("a load balancer needs containerPort"))?;
            let Some(c) = td.container_definitions.iter().find(|c| c.name == name) else {
                return Err(EcsError::invalid(format!(
                    "The container {name} does not exist in the task definition."
                )));
            };
            if !c.port_mappings.iter().any(|m| m.container_port == Some(port)) {
                return Err(EcsError::invalid(format!(
                    "The container {name} did not have a container port {port} defined."
                )));
            }
            Ok(ServiceLoadBalancer {
                target_group_arn: tg,
                container_name: name,
                container_port: port,
                advanced_configuration: lb.advanced_configuration.clone(),
            })
        })
        .collect()
}

/// A service as ECS describes it: counts from its tasks, one PRIMARY deployment.
pub(crate) fn service_json(tasks: &[Task], s: &Service) -> Value {
    let mine: Vec<&Task> = tasks
        .iter()
        .filter(|t| of_service(t, s) && t.desired_status == "RUNNING")
        .collect();
    let running = mine.iter().filter(|t| t.last_status == "RUNNING").count();
    let pending = mine.iter().filter(|t| t.last_status == "PENDING").count();
    let lbs: Vec<Value> = s
        .load_balancers
        .iter()
        .map(|l| json!({"targetGroupArn": l.target_group_arn, "containerName": l.container_name, "containerPort": l.container_port, "advancedConfiguration": l.advanced_configuration}))
        .collect();
    let deployments: Vec<Value> = if s.status == "ACTIVE" {
        let all = deploy::deployments(s);
        let primary = all.last().map(|d| d.id.clone()).unwrap_or_default();
        all.iter()
            .rev()
            .map(|d| {
                let of: Vec<&&Task> = mine
                    .iter()
                    .filter(|t| t.started_by.as_deref() == Some(d.id.as_str()))
                    .collect();
                let running = of.iter().filter(|t| t.last_status == "RUNNING").count();
                let pending = of.iter().filter(|t| t.last_status == "PENDING").count();
                let failed = tasks
                    .iter()
                    .filter(|t| {
                        t.started_by.as_deref() == Some(d.id.as_str())
                            && t.group == group(&s.service_name)
                            && task_failed(t)
                    })
                    .count();
                let desired = if d.id == primary {
                    s.desired_count as usize
                } else {
                    of.len()
                };
                json!({
                    "id": d.id, "status": d.status, "taskDefinition": d.task_definition,
                    "desiredCount": desired, "runningCount": running, "pendingCount": pending,
                    "failedTasks": failed, "createdAt": d.created_at, "updatedAt": d.updated_at,
                    "launchType": "EC2", "rolloutState": d.rollout_state,
                    "rolloutStateReason": d.rollout_state_reason,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let cfg = &s.deployment_configuration;
    let mut configuration = json!({
        "maximumPercent": cfg.maximum_percent.unwrap_or(DEFAULT_MAXIMUM_PERCENT),
        "minimumHealthyPercent": cfg.minimum_healthy_percent.unwrap_or(DEFAULT_MINIMUM_HEALTHY_PERCENT),
    });
    if let Some(b) = &cfg.deployment_circuit_breaker {
        configuration["deploymentCircuitBreaker"] = json!({"enable": b.enable, "rollback": b.rollback});
    }
    crate::bluegreen::describe_configuration(cfg, &mut configuration);
    json!({
        "serviceArn": s.service_arn, "serviceName": s.service_name, "clusterArn": s.cluster_arn,
        "loadBalancers": lbs, "serviceRegistries": [], "status": s.status,
        "desiredCount": s.desired_count, "runningCount": running, "pendingCount": pending,
        "launchType": "EC2", "taskDefinition": s.task_definition,
        "deploymentConfiguration": configuration,
        "deployments": deployments, "events": s.events, "createdAt": s.created_at,
        "schedulingStrategy": "REPLICA", "deploymentController": {"type": "ECS"},
        "healthCheckGracePeriodSeconds": s.health_check_grace_period_seconds,
        "networkConfiguration": s.network_configuration,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeServicesInput {
    cluster: Option<String>,
    services: Vec<String>,
}

/// A service a reference (name or ARN) names in a cluster: the live one, else the latest.
fn find<'a>(services: &'a [Service], cluster_arn: &str, reference: &str) -> Option<&'a Service> {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    let mut matching = services
        .iter()
        .filter(|s| s.cluster_arn == cluster_arn && s.service_name == name);
    let all: Vec<&Service> = matching.by_ref().collect();
    all.iter()
        .find(|s| s.status != "INACTIVE")
        .or(all.last())
        .copied()
}

pub(crate) fn describe(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: DescribeServicesInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    if input.services.is_empty() {
        return Err(EcsError::invalid("Services cannot be empty."));
    }
    let state = inner.state.lock();
    Ok(ops::described("services", &input.services, |r| {
        find(&state.services, &cl.cluster_arn, r).map(|s| service_json(&state.tasks, s))
    }))
}

pub(crate) fn list(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct ListInput {
        cluster: Option<String>,
        #[serde(flatten)]
        page: ops::Page,
    }
    let input: ListInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    let arns: Vec<String> = inner
        .state
        .lock()
        .services
        .iter()
        .filter(|s| s.cluster_arn == cl.cluster_arn && s.status != "INACTIVE")
        .map(|s| s.service_arn.clone())
        .collect();
    let (arns, next) = ops::page(arns, &input.page)?;
    Ok(json!({ "serviceArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DeleteServiceInput {
    cluster: Option<String>,
    service: String,
    force: Option<bool>,
}

pub(crate) fn delete(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: DeleteServiceInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    let mut state = inner.state.lock();
    let name = find(&state.services, &cl.cluster_arn, &input.service)
        .filter(|s| s.status == "ACTIVE")
        .map(|s| s.service_name.clone())
        .ok_or_else(|| {
            EcsError::new(
                "ServiceNotFoundException",
                format!("Service not found: {}", input.service),
            )
        })?;
    let Some(s) = state
        .services
        .iter_mut()
        .find(|s| s.cluster_arn == cl.cluster_arn && s.service_name == name && s.status == "ACTIVE")
    else {
        return Err(EcsError::new("ServiceNotFoundException", "Service not found."));
    };
    if s.desired_count > 0 && !input.force.unwrap_or(false) {
        return Err(EcsError::invalid(
            "The service cannot be stopped while it is scaled above 0: set desiredCount 0 first, or pass force",
        ));
    }
    s.desired_count = 0;
    s.status = "DRAINING".into();
    event(
        s,
        format!("(service {name}) was deleted: its tasks are stopping."),
    );
    let s = s.clone();
    let out = service_json(&state.tasks, &s);
    drop(state);
    inner.save();
    Ok(json!({ "service": out }))
}

/// Starts the scheduler: every [`SCHEDULE_EVERY`], each live service's tasks are brought
/// to its desired count.
pub(crate) fn spawn_scheduler(inner: Arc<Inner>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SCHEDULE_EVERY).await;
            schedule(&inner).await;
        }
    });
}

async fn schedule(inner: &Arc<Inner>) {
    // Under the operations' lock: a CreateService or DeleteService is never half seen.
    let _one = inner.calls.lock().await;
    let services: Vec<Service> = inner
        .state
        .lock()
        .services
        .iter()
        .filter(|s| s.status != "INACTIVE")
        .cloned()
        .collect();
    for s in services {
        let live: Vec<Task> = inner
            .state
            .lock()
            .tasks
            .iter()
            .filter(|t| of_service(t, &s) && t.desired_status == "RUNNING")
            .cloned()
            .collect();
        let want = s.desired_count as usize;
        let mut may_start = true;
        if live.len() < want
            && let Some(wait) = throttled(inner, &s)
        {
            tracing::debug!(service = %s.service_name, seconds = wait.as_secs(), "ECS: a failing service waits");
            with_service(inner, &s, |x| {
                let unable = format!(
                    "(service {}) is unable to consistently start tasks successfully: see the stopped tasks' stoppedReason.",
                    x.service_name
                );
                if x.events.first().map(|e| &e.message) != Some(&unable) {
                    event(x, unable);
                }
            });
            may_start = false;
        }
        if s.status == "ACTIVE" {
            let replaced = replace_unhealthy(inner, &s, &live).await;
            let live: Vec<Task> = live
                .into_iter()
                .filter(|t| !replaced.contains(&t.task_arn))
                .collect();
            deploy::roll(inner, &s, &live, may_start).await;
        } else if !live.is_empty() {
            stop_all(inner, &s, &live, &s.deployment_id);
        } else if !stopping(inner, &s) {
            // INACTIVE once its last task is STOPPED (drained, containers gone), as ECS
            // keeps a deleted service DRAINING until then.
            with_service(inner, &s, |x| x.status = "INACTIVE".into());
        }
    }
}

/// Why a running task must be replaced, past its grace period: its essential container
/// health check fails, or its target is `unhealthy` in one of the service's target
/// groups (the group and port).
async fn failing_health(
    inner: &Inner,
    s: &Service,
    t: &Task,
    at: f64,
) -> Option<(String, Option<(String, u16)>)> {
    if t.last_status != "RUNNING" {
        return None;
    }
    let grace = f64::from(
        s.health_check_grace_period_seconds
            .unwrap_or(DEFAULT_GRACE_PERIOD),
    );
    // Within the grace period ELB and container health results are ignored.
    if at - t.started_at? < grace {
        return None;
    }
    if t.health_status == "UNHEALTHY" {
        return Some((CONTAINER_FAILED.to_owned(), None));
    }
    let read = inner.health.as_ref()?;
    for (tg, port) in &t.registered {
        // The service's groups, a blue/green alternate included.
        let ours = s.load_balancers.iter().any(|lb| {
            &lb.target_group_arn == tg
                || lb
                    .advanced_configuration
                    .as_ref()
                    .is_some_and(|a| &a.alternate_target_group_arn == tg)
        });
        if !ours {
            continue;
        }
        if read(tg.clone(), t.target_ip(), *port).await.as_deref() == Some("unhealthy") {
            return Some((
                format!("{ELB_FAILED} (target-group {tg})"),
                Some((tg.clone(), *port)),
            ));
        }
    }
    None
}

/// Stops (deregister, drain, SIGTERM, SIGKILL after stopTimeout) the service's tasks that
/// fail their health checks past the grace period, with ECS's events and stoppedReason;
/// the scheduling round that follows starts their replacements. Returns their ARNs.
async fn replace_unhealthy(inner: &Arc<Inner>, s: &Service, live: &[Task]) -> Vec<String> {
    let at = now();
    let mut replaced = Vec::new();
    for t in live {
        let Some((reason, target)) = failing_health(inner, s, t, at).await else {
            continue;
        };
        let id = t.task_arn.rsplit('/').next().unwrap_or_default().to_owned();
        tracing::info!(service = %s.service_name, task = %t.task_arn, reason = %reason, "ECS: a task failed its health checks: it is replaced");
        stop(inner, t, &reason);
        with_service(inner, s, |x| {
            let why = match &target {
                Some((tg, port)) => format!(
                    "(service {}) (task {id}) (port {port}) is unhealthy in (target-group {tg}) due to (reason Health checks failed).",
                    x.service_name
                ),
                None => format!(
                    "(service {}) (task {id}) failed container health checks.",
                    x.service_name
                ),
            };
            event(x, why);
            event(
                x,
                format!(
                    "(service {}) has stopped 1 running tasks: (task {id}).",
                    x.service_name
                ),
            );
        });
        replaced.push(t.task_arn.clone());
    }
    replaced
}

/// Whether some task of the service is still on its way to STOPPED.
fn stopping(inner: &Inner, s: &Service) -> bool {
    inner
        .state
        .lock()
        .tasks
        .iter()
        .any(|t| of_service(t, s) && t.last_status != "STOPPED")
}

/// How long a service still waits before starting tasks, when its latest tasks failed to
/// start: [`FAILED_START_BACKOFF`] doubled per failure in a row, from the last failure.
fn throttled(inner: &Inner, s: &Service) -> Option<Duration> {
    let state = inner.state.lock();
    let mut mine: Vec<&Task> = state.tasks.iter().filter(|t| of_service(t, s)).collect();
    mine.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
    let failures = mine
        .iter()
        .take_while(|t| t.stop_code.as_deref() == Some("TaskFailedToStart"))
        .count();
    let last = mine.first().filter(|_| failures > 0)?.stopped_at?;
    let exponent = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(16);
    let wait = FAILED_START_BACKOFF
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(FAILED_START_BACKOFF_MAX);
    let since = Duration::from_secs_f64((now() - last).max(0.0));
    wait.checked_sub(since).filter(|w| !w.is_zero())
}

/// Stops `tasks` for the deployment `id` and says so in the service's events, as ECS's
/// scheduler does when it scales in.
pub(crate) fn stop_all<'a>(inner: &Inner, s: &Service, tasks: impl IntoIterator<Item = &'a Task>, id: &str) {
    let mut n = 0;
    for t in tasks {
        stop(
            inner,
            t,
            &format!("Scaling activity initiated by (deployment {id})"),
        );
        n += 1;
    }
    with_service(inner, s, |x| {
        event(
            x,
            format!("(service {}) has stopped {n} running tasks.", x.service_name),
        )
    });
}

pub(crate) fn stop(inner: &Inner, t: &Task, reason: &str) {
    {
        let mut state = inner.state.lock();
        if let Some(x) = state.tasks.iter_mut().find(|x| x.task_arn == t.task_arn) {
            x.desired_status = "STOPPED".into();
            x.stopped_reason.get_or_insert_with(|| reason.to_owned());
            x.stop_code
                .get_or_insert_with(|| "ServiceSchedulerInitiated".into());
            x.version += 1;
        }
    }
    inner.save();
    driver::request_stop(
        inner,
        &t.task_arn,
        Stop {
            code: "ServiceSchedulerInitiated",
            reason: reason.to_owned(),
        },
    );
}

pub(crate) fn with_service(inner: &Inner, s: &Service, f: impl FnOnce(&mut Service)) {
    let changed = {
        let mut state = inner.state.lock();
        match state
            .services
            .iter_mut()
            .find(|x| x.service_arn == s.service_arn && x.created_at.to_bits() == s.created_at.to_bits())
        {
            Some(x) => {
                let before = x.clone();
                f(x);
                crate::service_deployments::keep_past(&before, x);
                *x != before
            }
            None => false,
        }
    };
    if changed {
        inner.save();
    }
}

/// Registers a task that just started running in its service's target groups (those it
/// is not registered in yet: a task taken back after a restart gets what it missed).
pub(crate) async fn register(inner: &Inner, arn: &str) {
    let Some((task, service)) = ({
        let state = inner.state.lock();
        state.tasks.iter().find(|t| t.task_arn == arn).and_then(|t| {
            let s = state.services.iter().find(|s| {
                s.cluster_arn == t.cluster_arn && group(&s.service_name) == t.group && s.status == "ACTIVE"
            })?;
            Some((t.clone(), s.clone()))
        })
    }) else {
        return;
    };
    for (i, lb) in service.load_balancers.iter().enumerate() {
        // awsvpc: {task address, containerPort}; else {this host, host port}.
        let Some((ip, port)) = task.target(&lb.container_name, lb.container_port) else {
            continue;
        };
        // A blue/green deployment's tasks register in its green group.
        let tg = crate::bluegreen::register_group(&service, &task, i)
            .unwrap_or_else(|| lb.target_group_arn.clone());
        if task.registered.iter().any(|(g, p)| *g == tg && *p == port) {
            continue;
        }
        let change = TargetChange {
            register: true,
            target_group_arn: tg.clone(),
            ip,
            port,
        };
        let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
        match (inner.registrar)(change).await {
            Ok(_) => {
                {
                    let mut state = inner.state.lock();
                    if let Some(t) = state.tasks.iter_mut().find(|t| t.task_arn == arn) {
                        t.registered.push((tg.clone(), port));
                    }
                }
                with_service(inner, &service, |x| {
                    event(
                        x,
                        format!(
                            "(service {}) registered 1 targets in (target-group {})",
                            x.service_name, tg
                        ),
                    )
                });
            }
            Err(e) => with_service(inner, &service, |x| {
                event(
                    x,
                    format!(
                        "(service {}) failed to register targets in (target-group {}) for (task {id}): {e}",
                        x.service_name, tg
                    ),
                )
            }),
        }
    }
    inner.save();
}

/// Deregisters a stopping task from the target groups it was registered in, then waits
/// for the longest of their deregistration delays.
pub(crate) async fn deregister(inner: &Inner, arn: &str) {
    // Each registration leaves the task's record once its deregistration is done: a
    // hostalb stopped midway deregisters the rest when it takes the task back.
    let (registered, ip) = task_registrations(inner, arn);
    if registered.is_empty() {
        return;
    }
    let mut drain = Duration::ZERO;
    for (tg, port) in registered {
        let change = TargetChange {
            register: false,
            target_group_arn: tg.clone(),
            ip,
            port,
        };
        match (inner.registrar)(change).await {
            Ok(delay) => drain = drain.max(delay),
            Err(e) => {
                tracing::warn!(task = %arn, target_group = %tg, error = %e, "ECS: a stopping task could not be deregistered")
            }
        }
        {
            let mut state = inner.state.lock();
            if let Some(t) = state.tasks.iter_mut().find(|t| t.task_arn == arn) {
                t.registered.retain(|r| !(r.0 == tg && r.1 == port));
            }
        }
        inner.save();
    }
    // The requests in flight finish before SIGTERM, as ECS waits for the target group's
    // deregistration delay.
    if !drain.is_zero() {
        tracing::info!(task = %arn, seconds = drain.as_secs(), "ECS: waiting for the targets to drain");
        tokio::time::sleep(drain).await;
    }
}

/// The targets a task is registered as.
/// A task's registrations and the address they name (its own in awsvpc, else this host).
fn task_registrations(inner: &Inner, arn: &str) -> (Vec<(String, u16)>, std::net::IpAddr) {
    driver::task(inner, arn).map_or((Vec::new(), TASK_IP), |t| {
        let ip = t.target_ip();
        (t.registered, ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(created_at: f64) -> Task {
        Task {
            cluster_arn: "c".into(),
            group: group("api"),
            created_at,
            stopped_at: Some(created_at),
            stop_code: Some("TaskFailedToStart".into()),
            last_status: "STOPPED".into(),
            ..Task::default()
        }
    }

    #[test]
    fn the_grace_period_is_checked_and_health_failures_count_as_failed_tasks() {
        assert_eq!(grace_period(None), Ok(None));
        assert_eq!(grace_period(Some(0)), Ok(Some(0)));
        assert_eq!(grace_period(Some(MAX_GRACE_PERIOD)), Ok(Some(2_147_483_647)));
        for bad in [-1, MAX_GRACE_PERIOD + 1] {
            assert_eq!(
                grace_period(Some(bad)).unwrap_err().code,
                "InvalidParameterException"
            );
        }
        let stopped = |code: &str, reason: &str| Task {
            stop_code: Some(code.into()),
            stopped_reason: Some(reason.into()),
            ..Task::default()
        };
        assert!(task_failed(&stopped(
            "ServiceSchedulerInitiated",
            "Task failed ELB health checks in (target-group arn:x)"
        )));
        assert!(task_failed(&stopped(
            "ServiceSchedulerInitiated",
            CONTAINER_FAILED
        )));
        assert!(task_failed(&stopped("EssentialContainerExited", "x")));
        assert!(!task_failed(&stopped(
            "ServiceSchedulerInitiated",
            "Scaling activity initiated by (deployment ecs-svc/1)"
        )));
    }

    #[test]
    fn a_service_whose_tasks_fail_to_start_waits_longer_each_time() {
        let shared = crate::Shared::default();
        let docker = crate::docker::connect(Some("tcp://127.0.0.1:9")).unwrap();
        let registrar: crate::Registrar = Arc::new(|_| Box::pin(async { Ok(Duration::ZERO) }));
        let ecs = crate::Ecs::new(shared.clone(), docker, Box::new(|| Ok(())), registrar);
        let s = Service {
            cluster_arn: "c".into(),
            service_name: "api".into(),
            ..Service::default()
        };
        assert_eq!(throttled(&ecs.inner, &s), None, "no task yet");
        let t = now();
        shared.lock().tasks.push(failed(t));
        let one = throttled(&ecs.inner, &s).unwrap();
        assert!(one <= FAILED_START_BACKOFF && one > Duration::ZERO, "{one:?}");
        shared.lock().tasks.push(failed(t + 0.001));
        shared.lock().tasks.push(failed(t + 0.002));
        let three = throttled(&ecs.inner, &s).unwrap();
        assert!(three > FAILED_START_BACKOFF * 3, "doubled per failure: {three:?}");
        // A task that ran since: no wait.
        shared.lock().tasks.push(Task {
            cluster_arn: "c".into(),
            group: group("api"),
            created_at: t + 1.0,
            last_status: "RUNNING".into(),
            ..Task::default()
        });
        assert_eq!(throttled(&ecs.inner, &s), None);
        // Long ago: no wait either.
        let old = crate::Shared::default();
        let ecs = crate::Ecs::new(
            old.clone(),
            crate::docker::connect(Some("tcp://127.0.0.1:9")).unwrap(),
            Box::new(|| Ok(())),
            Arc::new(|_| Box::pin(async { Ok(Duration::ZERO) })),
        );
        old.lock().tasks.push(failed(t - 1000.0));
        assert_eq!(throttled(&ecs.inner, &s), None);
    }
}
