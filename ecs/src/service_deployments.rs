//! ListServiceDeployments and DescribeServiceDeployments: a service's deployments, the
//! current ones and the past ones its record keeps, as ECS's `ServiceDeployment` shape
//! (status, blue/green `lifecycleStage`, the source and target service revisions with
//! their traffic weights, rollback, circuit breaker).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::records::{Deployment, Service, Task};
use crate::services::of_service;
use crate::{EcsError, Inner, ops};

/// Past deployments a service keeps (the oldest forgotten first).
pub(crate) const MAX_PAST_DEPLOYMENTS: usize = 50;
/// DescribeServiceDeployments' bound on ARNs (ECS's).
const MAX_DESCRIBED: usize = 20;

/// Keeps, in `after.past_deployments`, the deployments `before` had that `after` no
/// longer has (completed, replaced, rolled back).
pub(crate) fn keep_past(before: &Service, after: &mut Service) {
    for d in &before.deployments {
        if !after.deployments.iter().any(|x| x.id == d.id)
            && !after.past_deployments.iter().any(|x| x.id == d.id)
        {
            after.past_deployments.push(d.clone());
        }
    }
    let extra = after.past_deployments.len().saturating_sub(MAX_PAST_DEPLOYMENTS);
    after.past_deployments.drain(..extra);
}

fn short_id(d: &Deployment) -> &str {
    d.id.rsplit('/').next().unwrap_or(&d.id)
}

fn names(s: &Service) -> (&str, &str) {
    (
        s.cluster_arn.rsplit('/').next().unwrap_or_default(),
        s.service_name.as_str(),
    )
}

fn deployment_arn(inner: &Inner, s: &Service, d: &Deployment) -> String {
    let (cluster, service) = names(s);
    format!(
        "arn:aws:ecs:{}:{}:service-deployment/{cluster}/{service}/{}",
        inner.scope.region,
        inner.scope.account,
        short_id(d)
    )
}

fn revision_arn(inner: &Inner, s: &Service, id: &str) -> String {
    let (cluster, service) = names(s);
    format!(
        "arn:aws:ecs:{}:{}:service-revision/{cluster}/{service}/{}",
        inner.scope.region,
        inner.scope.account,
        id.rsplit('/').next().unwrap_or(id)
    )
}

/// ECS's `ServiceDeploymentStatus` of a deployment; `past` when the service no longer
/// runs it.
fn status(d: &Deployment, past: bool) -> String {
    if let Some(b) = &d.blue_green {
        return if past && b.status == "IN_PROGRESS" {
            "STOPPED".into()
        } else {
            b.status.clone()
        };
    }
    match d.rollout_state.as_str() {
        "COMPLETED" => "SUCCESSFUL".into(),
        "FAILED"
            if d.rollout_state_reason
                .as_deref()
                .is_some_and(|r| r.contains("Rolling back")) =>
        {
            "ROLLBACK_SUCCESSFUL".into()
        }
        "FAILED" => "STOPPED".into(),
        _ if past => "STOPPED".into(),
        _ => "IN_PROGRESS".into(),
    }
}

/// Every deployment of the service with whether it is past, newest first.
fn all(s: &Service) -> Vec<(&Deployment, bool)> {
    let mut out: Vec<(&Deployment, bool)> = s
        .past_deployments
        .iter()
        .map(|d| (d, true))
        .chain(s.deployments.iter().map(|d| (d, false)))
        .collect();
    out.sort_by(|a, b| b.0.created_at.total_cmp(&a.0.created_at));
    out
}

fn finished_at(d: &Deployment, past: bool) -> Option<f64> {
    match &d.blue_green {
        Some(b) => b.finished_at,
        None => (past || d.rollout_state != "IN_PROGRESS").then_some(d.updated_at),
    }
}

fn brief(inner: &Inner, s: &Service, d: &Deployment, past: bool) -> Value {
    json!({
        "serviceDeploymentArn": deployment_arn(inner, s, d),
        "serviceArn": s.service_arn, "clusterArn": s.cluster_arn,
        "createdAt": d.created_at, "startedAt": d.created_at,
        "finishedAt": finished_at(d, past),
        "targetServiceRevisionArn": revision_arn(inner, s, &d.id),
        "status": status(d, past), "statusReason": d.rollout_state_reason,
    })
}

/// One revision's task counts and requested weights.
fn revision(
    inner: &Inner,
    s: &Service,
    tasks: &[Task],
    id: &str,
    requested: u32,
    weights: Option<(f64, f64)>,
) -> Value {
    let mine = tasks
        .iter()
        .filter(|t| of_service(t, s) && t.started_by.as_deref() == Some(id) && t.desired_status == "RUNNING");
    let (running, pending) = ops::running_pending(mine);
    let mut out = json!({
        "arn": revision_arn(inner, s, id), "requestedTaskCount": requested,
        "runningTaskCount": running, "pendingTaskCount": pending,
    });
    if let Some((test, production)) = weights {
        out["requestedTestTrafficWeight"] = json!(test);
        out["requestedProductionTrafficWeight"] = json!(production);
    }
    out
}

fn full(inner: &Inner, s: &Service, tasks: &[Task], d: &Deployment, past: bool) -> Value {
    let mut out = brief(inner, s, d, past);
    out["updatedAt"] = json!(d.updated_at);
    let live = !past && d.status == "PRIMARY";
    let requested = if live { s.desired_count } else { 0 };
    let mut configuration = json!({});
    crate::bluegreen::describe_configuration(&s.deployment_configuration, &mut configuration);
    out["deploymentConfiguration"] = configuration;
    match &d.blue_green {
        Some(b) => {
            let test = if b.stage == "SCALE_UP" { 0.0 } else { 100.0 };
            let test = if b.status.starts_with("ROLLBACK") {
                0.0
            } else {
                test
            };
            let production = b.production_percent;
            out["lifecycleStage"] = json!(crate::bluegreen::lifecycle_stage(b));
            out["targetServiceRevision"] =
                revision(inner, s, tasks, &d.id, requested, Some((test, production)));
            out["sourceServiceRevisions"] = json!(
                b.blue_deployment
                    .iter()
                    .map(|blue| {
                        let count = if past || b.stage == "DONE" {
                            0
                        } else {
                            s.desired_count
                        };
                        revision(
                            inner,
                            s,
                            tasks,
                            blue,
                            count,
                            Some((100.0 - test, 100.0 - production)),
                        )
                    })
                    .collect::<Vec<_>>()
            );
        }
        None => {
            out["targetServiceRevision"] = revision(inner, s, tasks, &d.id, requested, None);
            let sources: Vec<Value> = if live {
                s.deployments
                    .iter()
                    .filter(|x| x.id != d.id)
                    .map(|x| revision(inner, s, tasks, &x.id, 0, None))
                    .collect()
            } else {
                Vec::new()
            };
            out["sourceServiceRevisions"] = json!(sources);
        }
    }
    let st = status(d, past);
    if st.starts_with("ROLLBACK") {
        out["rollback"] = json!({
            "reason": d.rollout_state_reason, "startedAt": d.updated_at,
            "serviceRevisionArn": d.blue_green.as_ref().and_then(|b| b.blue_deployment.as_deref())
                .map(|b| revision_arn(inner, s, b)),
        });
    }
    out["deploymentCircuitBreaker"] = match &s.deployment_configuration.deployment_circuit_breaker {
        Some(c) if c.enable => json!({
            "status": if d.rollout_state == "FAILED" { "TRIGGERED" } else if finished_at(d, past).is_some() { "MONITORING_COMPLETE" } else { "MONITORING" },
            "threshold": crate::deploy::breaker_threshold(s.desired_count),
        }),
        _ => json!({ "status": "DISABLED" }),
    };
    out
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListInput {
    cluster: Option<String>,
    service: String,
    status: Vec<String>,
    created_at: Option<CreatedAt>,
    #[serde(flatten)]
    page: ops::Page,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CreatedAt {
    before: Option<f64>,
    after: Option<f64>,
}

pub(crate) fn list(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: ListInput = ops::parse(input)?;
    let cl = ops::cluster_pub(inner, input.cluster.as_deref())?;
    let name = input.service.rsplit('/').next().unwrap_or(&input.service);
    let state = inner.state.lock();
    let Some(s) = state
        .services
        .iter()
        .find(|s| s.cluster_arn == cl.cluster_arn && s.service_name == name && s.status != "INACTIVE")
    else {
        return Err(EcsError::new(
            "ServiceNotFoundException",
            format!("Service not found: {}", input.service),
        ));
    };
    let when = input.created_at.unwrap_or_default();
    let chosen: Vec<(&Deployment, bool)> = all(s)
        .into_iter()
        .filter(|(d, past)| input.status.is_empty() || input.status.contains(&status(d, *past)))
        .filter(|(d, _)| {
            when.before.is_none_or(|b| d.created_at < b) && when.after.is_none_or(|a| d.created_at > a)
        })
        .collect();
    let arns: Vec<String> = chosen.iter().map(|(d, _)| deployment_arn(inner, s, d)).collect();
    let (arns, next) = ops::page(arns, &input.page)?;
    let out: Vec<Value> = chosen
        .iter()
        .filter(|(d, _)| arns.contains(&deployment_arn(inner, s, d)))
        .map(|(d, past)| brief(inner, s, d, *past))
        .collect();
    Ok(json!({ "serviceDeployments": out, "nextToken": next }))
}

pub(crate) fn describe(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct DescribeInput {
        service_deployment_arns: Vec<String>,
    }
    let input: DescribeInput = ops::parse(input)?;
    if input.service_deployment_arns.is_empty() || input.service_deployment_arns.len() > MAX_DESCRIBED {
        return Err(EcsError::invalid(format!(
            "serviceDeploymentArns must name 1 to {MAX_DESCRIBED} service deployments"
        )));
    }
    let state = inner.state.lock();
    Ok(ops::described(
        "serviceDeployments",
        &input.service_deployment_arns,
        |arn| {
            state.services.iter().find_map(|s| {
                all(s)
                    .into_iter()
                    .find(|(d, _)| deployment_arn(inner, s, d) == arn)
                    .map(|(d, past)| full(inner, s, &state.tasks, d, past))
            })
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_that_leave_are_kept_and_bounded() {
        let d = |id: &str| Deployment {
            id: id.into(),
            rollout_state: "COMPLETED".into(),
            ..Deployment::default()
        };
        let before = Service {
            deployments: vec![d("a"), d("b")],
            ..Service::default()
        };
        let mut after = Service {
            deployments: vec![d("b")],
            ..Service::default()
        };
        keep_past(&before, &mut after);
        assert_eq!(after.past_deployments.len(), 1);
        keep_past(&before, &mut after);
        assert_eq!(after.past_deployments.len(), 1, "kept once");
        for i in 0..MAX_PAST_DEPLOYMENTS + 5 {
            let b = Service {
                deployments: vec![d(&format!("x{i}"))],
                ..Service::default()
            };
            keep_past(&b, &mut after);
        }
        assert_eq!(after.past_deployments.len(), MAX_PAST_DEPLOYMENTS);
        assert_eq!(status(&d("a"), true), "SUCCESSFUL");
        let mut running = d("r");
        running.rollout_state = "IN_PROGRESS".into();
        assert_eq!(status(&running, false), "IN_PROGRESS");
        assert_eq!(status(&running, true), "STOPPED", "replaced before it completed");
    }
}
