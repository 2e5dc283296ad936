//! ECS's native blue/green deployments (`deploymentConfiguration.strategy` BLUE_GREEN,
//! LINEAR, CANARY) as ECS runs them with an Application Load Balancer:
//!
//! 1. SCALE_UP: the new revision's (green) tasks start, up to the desired count, and
//!    register in the group the blue tasks do not serve from (the alternate target group
//!    for the first blue/green deployment; the roles swap each time);
//! 2. TEST_TRAFFIC_SHIFT, once every green task is healthy: each load balancer's test
//!    listener rule forwards to green (its forward weights moved);
//! 3. PRODUCTION_TRAFFIC_SHIFT: the production rule's weights move to green, all at once
//!    (BLUE_GREEN), `stepPercent` more every `stepBakeTimeInMinutes` (LINEAR), or
//!    `canaryPercent` then the rest after `canaryBakeTimeInMinutes` (CANARY);
//! 4. BAKE_TIME: `bakeTimeInMinutes` with both revisions running;
//! 5. CLEAN_UP: the blue tasks are deregistered, drained and stopped; the deployment
//!    COMPLETED.
//!
//! Until CLEAN_UP, the circuit breaker (with rollback) moves test and production traffic
//! back to blue and stops the green tasks; the blue deployment is PRIMARY again.
//!
//! Weights change through the binary's [`crate::RuleWeights`] (ELBv2's own DescribeRules /
//! ModifyRule). Each scheduling round moves a deployment by at most one stage, from its
//! recorded stage and the time it began: a restart picks the deployment up where it was.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::deploy::breaker_threshold;
use crate::ops::{self, find_td_pub as find_td};
use crate::records::{
    AdvancedConfiguration, BlueGreen, CircuitBreaker, Deployment, DeploymentConfiguration, Service, Task,
};
use crate::services::{event, group, of_service, stop, stop_all, with_service};
use crate::{EcsError, Inner, RuleCall, now};

/// The strategies run here (ROLLING is `deploy`'s).
pub(crate) const STRATEGIES: &[&str] = &["BLUE_GREEN", "LINEAR", "CANARY"];
/// LINEAR's default step: 10 % of production traffic (ECS's).
const DEFAULT_STEP_PERCENT: f64 = 10.0;
/// LINEAR's default wait between steps: 6 minutes (ECS's).
const DEFAULT_STEP_BAKE_MINUTES: u32 = 6;
/// CANARY's default share: 5 % (ECS's).
const DEFAULT_CANARY_PERCENT: f64 = 5.0;
/// CANARY's default wait before the rest: 10 minutes (ECS's).
const DEFAULT_CANARY_BAKE_MINUTES: u32 = 10;
/// Bake times are at most 24 hours (ECS's bound).
const MAX_BAKE_MINUTES: u32 = 1440;
/// LINEAR's smallest step (ECS's bound).
const MIN_STEP_PERCENT: f64 = 3.0;
/// CANARY's smallest share (ECS's bound).
const MIN_CANARY_PERCENT: f64 = 0.1;
/// Seconds per ECS minute: 60 unless [`MINUTE_VAR`] says otherwise (tests and rehearsals
/// shorten bake times, which ECS's API counts in whole minutes).
const MINUTE_SECONDS: f64 = 60.0;
/// The environment variable that sets the seconds of an ECS minute.
pub(crate) const MINUTE_VAR: &str = "HOSTALB_ECS_MINUTE_SECONDS";

/// Stages, as ECS's `lifecycleStage` names them.
const SCALE_UP: &str = "SCALE_UP";
const TEST_TRAFFIC_SHIFT: &str = "TEST_TRAFFIC_SHIFT";
const PRODUCTION_TRAFFIC_SHIFT: &str = "PRODUCTION_TRAFFIC_SHIFT";
const BAKE_TIME: &str = "BAKE_TIME";
const CLEAN_UP: &str = "CLEAN_UP";
/// Not an ECS stage: the deployment is over (`status` says how).
const DONE: &str = "DONE";

/// Seconds per ECS minute (read once).
fn minute() -> f64 {
    static MINUTE: OnceLock<f64> = OnceLock::new();
    *MINUTE.get_or_init(|| {
        std::env::var(MINUTE_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|m| m.is_finite() && *m > 0.0)
            .unwrap_or(MINUTE_SECONDS)
    })
}

pub(crate) fn is_blue_green(c: &DeploymentConfiguration) -> bool {
    c.strategy.as_deref().is_some_and(|s| STRATEGIES.contains(&s))
}

/// A multiple of 0.1 within `lo..=hi`.
fn tenths_within(p: f64, lo: f64, hi: f64) -> bool {
    p.is_finite() && p >= lo && p <= hi && ((p * 10.0).round() - p * 10.0).abs() < 1e-6
}

fn bake(name: &str, m: Option<u32>) -> Result<(), EcsError> {
    match m {
        Some(m) if m > MAX_BAKE_MINUTES => Err(EcsError::invalid(format!(
            "{name} must be between 0 and {MAX_BAKE_MINUTES} minutes: {m}"
        ))),
        _ => Ok(()),
    }
}

/// The blue/green members of a `deploymentConfiguration`, checked as ECS does; lifecycle
/// hooks are refused (hostalb runs none).
pub(crate) fn check_configuration(c: &DeploymentConfiguration) -> Result<(), EcsError> {
    let strategy = c.strategy.as_deref().unwrap_or("ROLLING");
    if strategy != "ROLLING" && !STRATEGIES.contains(&strategy) {
        return Err(EcsError::invalid(format!(
            "deploymentConfiguration.strategy {strategy} is invalid: ROLLING, BLUE_GREEN, LINEAR or CANARY"
        )));
    }
    if c.lifecycle_hooks
        .as_ref()
        .is_some_and(|h| !h.is_null() && h.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(EcsError::new(
            "UnsupportedFeatureException",
            "deploymentConfiguration.lifecycleHooks are not run by hostalb: a blue/green deployment here moves through its stages without hooks; remove lifecycleHooks",
        ));
    }
    if c.linear_configuration.is_some() && strategy != "LINEAR" {
        return Err(EcsError::invalid(
            "deploymentConfiguration.linearConfiguration is only valid when the deployment strategy is LINEAR",
        ));
    }
    if c.canary_configuration.is_some() && strategy != "CANARY" {
        return Err(EcsError::invalid(
            "deploymentConfiguration.canaryConfiguration is only valid when the deployment strategy is CANARY",
        ));
    }
    if c.bake_time_in_minutes.is_some() && strategy == "ROLLING" {
        return Err(EcsError::invalid(
            "deploymentConfiguration.bakeTimeInMinutes is only valid with the BLUE_GREEN, LINEAR or CANARY deployment strategy",
        ));
    }
    if strategy == "BLUE_GREEN" && c.bake_time_in_minutes.is_none() {
        return Err(EcsError::invalid(
            "deploymentConfiguration.bakeTimeInMinutes is required with the BLUE_GREEN deployment strategy",
        ));
    }
    bake(
        "deploymentConfiguration.bakeTimeInMinutes",
        c.bake_time_in_minutes,
    )?;
    if let Some(l) = &c.linear_configuration {
        if let Some(p) = l.step_percent
            && !tenths_within(p, MIN_STEP_PERCENT, 100.0)
        {
            return Err(EcsError::invalid(format!(
                "linearConfiguration.stepPercent must be a multiple of 0.1 from 3.0 to 100.0: {p}"
            )));
        }
        bake(
            "linearConfiguration.stepBakeTimeInMinutes",
            l.step_bake_time_in_minutes,
        )?;
    }
    if let Some(k) = &c.canary_configuration {
        if let Some(p) = k.canary_percent
            && !tenths_within(p, MIN_CANARY_PERCENT, 100.0)
        {
            return Err(EcsError::invalid(format!(
                "canaryConfiguration.canaryPercent must be a multiple of 0.1 from 0.1 to 100.0: {p}"
            )));
        }
        bake(
            "canaryConfiguration.canaryBakeTimeInMinutes",
            k.canary_bake_time_in_minutes,
        )?;
    }
    Ok(())
}

/// The production traffic share on green (percent) `elapsed` ECS minutes into the
/// production traffic shift.
pub(crate) fn production_percent(c: &DeploymentConfiguration, elapsed: f64) -> f64 {
    match c.strategy.as_deref() {
        Some("LINEAR") => {
            let l = c.linear_configuration.clone().unwrap_or_default();
            let step = l.step_percent.unwrap_or(DEFAULT_STEP_PERCENT);
            let every = f64::from(l.step_bake_time_in_minutes.unwrap_or(DEFAULT_STEP_BAKE_MINUTES));
            if every <= 0.0 {
                return 100.0;
            }
            let steps = (elapsed / every).floor() + 1.0;
            ((steps * step * 10.0).round() / 10.0).min(100.0)
        }
        Some("CANARY") => {
            let k = c.canary_configuration.clone().unwrap_or_default();
            let wait = f64::from(
                k.canary_bake_time_in_minutes
                    .unwrap_or(DEFAULT_CANARY_BAKE_MINUTES),
            );
            if elapsed >= wait {
                100.0
            } else {
                k.canary_percent.unwrap_or(DEFAULT_CANARY_PERCENT)
            }
        }
        _ => 100.0,
    }
}

/// A green share as forward weights (green, blue): whole percents out of 100, tenths out
/// of 1000 (ELBv2's weights are 0 to 999).
pub(crate) fn weights(percent: f64) -> (u32, u32) {
    let tenths = (percent * 10.0).round().clamp(0.0, 1000.0) as u32;
    if tenths % 10 == 0 {
        (tenths / 10, 100 - tenths / 10)
    } else {
        (tenths, 1000 - tenths)
    }
}

/// Checks CreateService's and UpdateService's blue/green inputs that need ELBv2: each
/// load balancer's `advancedConfiguration` (its rules exist and forward to the primary
/// and alternate groups), and that a blue/green strategy has one on every load balancer.
/// Runs before the operation itself.
pub(crate) async fn check_input(inner: &Arc<Inner>, op: &str, input: &Value) -> Result<(), EcsError> {
    let given: Option<DeploymentConfiguration> = match input.get("deploymentConfiguration") {
        Some(v) if !v.is_null() => Some(ops::parse(v.clone())?),
        _ => None,
    };
    if let Some(c) = &given {
        crate::deploy::check_configuration(c)?;
    }
    let lbs: Vec<(String, Option<AdvancedConfiguration>)> = if op == "CreateService" {
        let raw = input
            .get("loadBalancers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for lb in raw {
            let tg = lb
                .get("targetGroupArn")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let advanced = match lb.get("advancedConfiguration") {
                Some(v) if !v.is_null() => Some(ops::parse::<AdvancedConfiguration>(v.clone())?),
                _ => None,
            };
            out.push((tg, advanced));
        }
        out
    } else {
        let Some(s) = updated_service(inner, input)? else {
            return Ok(()); // UpdateService answers ServiceNotFoundException itself.
        };
        check_update(&s, input, given.as_ref())?;
        if !given.as_ref().is_some_and(is_blue_green) {
            return Ok(());
        }
        s.load_balancers
            .iter()
            .map(|l| (l.target_group_arn.clone(), l.advanced_configuration.clone()))
            .collect()
    };
    let blue_green = given.as_ref().is_some_and(is_blue_green);
    for (i, (tg, advanced)) in lbs.iter().enumerate() {
        match advanced {
            Some(a) => check_advanced(inner, i, tg, a).await?,
            None if blue_green => {
                return Err(EcsError::invalid(format!(
                    "loadBalancers[{i}].advancedConfiguration is required with the {} deployment strategy: give alternateTargetGroupArn, productionListenerRule and roleArn",
                    given
                        .as_ref()
                        .and_then(|c| c.strategy.clone())
                        .unwrap_or_default()
                )));
            }
            None => {}
        }
    }
    Ok(())
}

/// The ACTIVE service an UpdateService names, if any.
fn updated_service(inner: &Inner, input: &Value) -> Result<Option<Service>, EcsError> {
    let cluster = input.get("cluster").and_then(Value::as_str);
    let cl = ops::cluster_pub(inner, cluster)?;
    let name = input.get("service").and_then(Value::as_str).unwrap_or_default();
    let name = name.rsplit('/').next().unwrap_or(name);
    Ok(inner
        .state
        .lock()
        .services
        .iter()
        .find(|s| s.cluster_arn == cl.cluster_arn && s.status == "ACTIVE" && s.service_name == name)
        .cloned())
}

/// What UpdateService may not do to a blue/green service: start another deployment while
/// one is in progress, or go back to ROLLING while its tasks serve from the alternate
/// group (a rolling deployment registers in `targetGroupArn` only).
fn check_update(s: &Service, input: &Value, given: Option<&DeploymentConfiguration>) -> Result<(), EcsError> {
    let in_progress = s
        .deployments
        .last()
        .and_then(|d| d.blue_green.as_ref())
        .is_some_and(|b| b.stage != DONE);
    let new_deployment = input.get("forceNewDeployment").and_then(Value::as_bool) == Some(true)
        || input
            .get("taskDefinition")
            .and_then(Value::as_str)
            .is_some_and(|t| t != s.task_definition && !s.task_definition.ends_with(&format!("/{t}")));
    if in_progress && new_deployment {
        return Err(EcsError::invalid(
            "a blue/green deployment of this service is in progress: wait until it completes or rolls back before starting another one",
        ));
    }
    if in_progress && given.is_some_and(|c| c.strategy != s.deployment_configuration.strategy) {
        return Err(EcsError::invalid(
            "deploymentConfiguration.strategy cannot change while a blue/green deployment is in progress",
        ));
    }
    let to_rolling = given.is_some_and(|c| !is_blue_green(c));
    if to_rolling
        && serving_groups(s)
            .iter()
            .zip(&s.load_balancers)
            .any(|(g, l)| *g != l.target_group_arn)
    {
        return Err(EcsError::invalid(
            "deploymentConfiguration.strategy ROLLING: this service's tasks serve from the alternate target groups, and a rolling deployment registers in targetGroupArn; hostalb cannot move them back yet",
        ));
    }
    Ok(())
}

/// An `advancedConfiguration`: its members given, its rules forwarding to exactly the
/// primary and the alternate group.
async fn check_advanced(
    inner: &Inner,
    i: usize,
    tg: &str,
    a: &AdvancedConfiguration,
) -> Result<(), EcsError> {
    let field = |m: &str| format!("loadBalancers[{i}].advancedConfiguration.{m}");
    for (name, value) in [
        ("alternateTargetGroupArn", &a.alternate_target_group_arn),
        ("productionListenerRule", &a.production_listener_rule),
        ("roleArn", &a.role_arn),
    ] {
        if value.is_empty() {
            return Err(EcsError::invalid(format!("{} is required", field(name))));
        }
    }
    if !a.role_arn.starts_with("arn:") || !a.role_arn.contains(":iam::") || !a.role_arn.contains(":role/") {
        return Err(EcsError::invalid(format!(
            "{} `{}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            field("roleArn"),
            a.role_arn
        )));
    }
    if a.alternate_target_group_arn == tg {
        return Err(EcsError::invalid(format!(
            "{} must differ from loadBalancers[{i}].targetGroupArn",
            field("alternateTargetGroupArn")
        )));
    }
    let Some(rules) = &inner.rules else {
        return Err(EcsError::server(
            "listener rules cannot be read here: blue/green deployments need the ELBv2 API",
        ));
    };
    let mut named = vec![("productionListenerRule", a.production_listener_rule.clone())];
    if let Some(t) = a.test_listener_rule.as_ref().filter(|t| !t.is_empty()) {
        if *t == a.production_listener_rule {
            return Err(EcsError::invalid(format!(
                "{} must differ from productionListenerRule",
                field("testListenerRule")
            )));
        }
        named.push(("testListenerRule", t.clone()));
    }
    for (name, rule) in named {
        let groups = rules(RuleCall::Read(rule.clone()))
            .await
            .map_err(|e| EcsError::invalid(format!("{} `{rule}`: {e}", field(name))))?;
        let mut arns: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        arns.sort_unstable();
        let mut want = vec![tg, a.alternate_target_group_arn.as_str()];
        want.sort_unstable();
        if arns != want {
            return Err(EcsError::invalid(format!(
                "{} `{rule}` must forward to the target group {tg} and the alternate target group {}: it forwards to {arns:?}",
                field(name),
                a.alternate_target_group_arn
            )));
        }
    }
    Ok(())
}

/// Per load balancer, the group the service's PRIMARY tasks serve from.
fn serving_groups(s: &Service) -> Vec<String> {
    match s.deployments.last().and_then(|d| d.blue_green.as_ref()) {
        // A rolled-back deployment is gone: the PRIMARY's green groups serve.
        Some(b) if b.status != "ROLLBACK_SUCCESSFUL" => {
            if b.stage == DONE {
                b.green_groups.clone()
            } else {
                b.blue_groups.clone()
            }
        }
        _ => s
            .load_balancers
            .iter()
            .map(|l| l.target_group_arn.clone())
            .collect(),
    }
}

/// Makes the service's new PRIMARY deployment (the last) a blue/green one when its
/// strategy says so: green in the groups the previous deployment does not serve from.
pub(crate) fn begin(s: &mut Service) {
    if !is_blue_green(&s.deployment_configuration) {
        return;
    }
    let n = s.deployments.len();
    let previous = n.checked_sub(2).map(|i| s.deployments[i].clone());
    let serving: Vec<String> = match &previous {
        Some(_) => {
            // What served before this deployment: the service as it was.
            let mut before = s.clone();
            before.deployments.truncate(n - 1);
            serving_groups(&before)
        }
        // The first deployment: nothing serves yet; green takes targetGroupArn.
        None => s
            .load_balancers
            .iter()
            .map(|l| {
                l.advanced_configuration.as_ref().map_or_else(
                    || l.target_group_arn.clone(),
                    |a| a.alternate_target_group_arn.clone(),
                )
            })
            .collect(),
    };
    let mut green = Vec::new();
    let mut blue = Vec::new();
    for (l, serves) in s.load_balancers.iter().zip(&serving) {
        let other = match &l.advanced_configuration {
            Some(a) if *serves == a.alternate_target_group_arn => l.target_group_arn.clone(),
            Some(a) => a.alternate_target_group_arn.clone(),
            None => l.target_group_arn.clone(),
        };
        green.push(other);
        blue.push(serves.clone());
    }
    let strategy = s.deployment_configuration.strategy.clone().unwrap_or_default();
    if let Some(d) = s.deployments.last_mut() {
        d.blue_green = Some(BlueGreen {
            stage: SCALE_UP.into(),
            stage_started_at: now(),
            green_groups: green,
            blue_groups: blue,
            production_percent: 0.0,
            strategy,
            blue_deployment: previous.map(|p| p.id),
            status: "IN_PROGRESS".into(),
            finished_at: None,
        });
    }
}

/// The group a task registers in for the service's load balancer `i`: its deployment's
/// green group, when that deployment is a blue/green one.
pub(crate) fn register_group(s: &Service, t: &Task, i: usize) -> Option<String> {
    s.deployments
        .iter()
        .find(|d| Some(d.id.as_str()) == t.started_by.as_deref())?
        .blue_green
        .as_ref()?
        .green_groups
        .get(i)
        .cloned()
}

/// Whether the service's PRIMARY deployment is a blue/green one still running its stages.
pub(crate) fn in_charge(s: &Service) -> bool {
    s.deployments
        .last()
        .and_then(|d| d.blue_green.as_ref())
        .is_some_and(|b| b.stage != DONE)
}

/// ECS's `lifecycleStage` of a blue/green deployment (an ended one stays in CLEAN_UP).
pub(crate) fn lifecycle_stage(b: &BlueGreen) -> &str {
    if b.stage == DONE { CLEAN_UP } else { &b.stage }
}

/// The blue/green members of the deployment configuration, as DescribeServices shows them.
pub(crate) fn describe_configuration(c: &DeploymentConfiguration, out: &mut Value) {
    if let Some(st) = &c.strategy {
        out["strategy"] = json!(st);
    }
    if let Some(b) = c.bake_time_in_minutes {
        out["bakeTimeInMinutes"] = json!(b);
    }
    if let Some(l) = &c.linear_configuration {
        out["linearConfiguration"] = json!({
            "stepPercent": l.step_percent.unwrap_or(DEFAULT_STEP_PERCENT),
            "stepBakeTimeInMinutes": l.step_bake_time_in_minutes.unwrap_or(DEFAULT_STEP_BAKE_MINUTES),
        });
    }
    if let Some(k) = &c.canary_configuration {
        out["canaryConfiguration"] = json!({
            "canaryPercent": k.canary_percent.unwrap_or(DEFAULT_CANARY_PERCENT),
            "canaryBakeTimeInMinutes": k.canary_bake_time_in_minutes.unwrap_or(DEFAULT_CANARY_BAKE_MINUTES),
        });
    }
}

/// Changes a blue/green deployment's record (by id) in the service.
fn with_deployment(inner: &Inner, s: &Service, id: &str, f: impl FnOnce(&mut Service, &mut BlueGreen)) {
    with_service(inner, s, |x| {
        let Some(i) = x.deployments.iter().position(|d| d.id == id) else {
            return;
        };
        let Some(mut b) = x.deployments[i].blue_green.clone() else {
            return;
        };
        f(x, &mut b);
        if let Some(d) = x.deployments.iter_mut().find(|d| d.id == id) {
            d.updated_at = now();
            d.blue_green = Some(b);
        }
    });
}

fn enter(b: &mut BlueGreen, stage: &str) {
    b.stage = stage.to_owned();
    b.stage_started_at = now();
}

/// Moves each load balancer's `rule` (production or test) to `percent` on green.
async fn shift(inner: &Inner, s: &Service, b: &BlueGreen, test: bool, percent: f64) -> Result<(), String> {
    let Some(rules) = &inner.rules else {
        return Err("listener rules cannot be changed here".into());
    };
    let (g, w) = weights(percent);
    for (i, l) in s.load_balancers.iter().enumerate() {
        let Some(a) = &l.advanced_configuration else {
            continue;
        };
        let rule = if test {
            match a.test_listener_rule.as_ref().filter(|t| !t.is_empty()) {
                Some(t) => t.clone(),
                None => continue,
            }
        } else {
            a.production_listener_rule.clone()
        };
        let (Some(green), Some(blue)) = (b.green_groups.get(i), b.blue_groups.get(i)) else {
            continue;
        };
        let current = rules(RuleCall::Read(rule.clone())).await?;
        let next: Vec<(String, u32)> = current
            .into_iter()
            .map(|(group, weight)| {
                let weight = if group == *green {
                    g
                } else if group == *blue {
                    w
                } else {
                    weight
                };
                (group, weight)
            })
            .collect();
        rules(RuleCall::Set(rule, next)).await?;
    }
    Ok(())
}

/// Whether a green task is healthy: RUNNING, its container health checks not failing
/// (passing, where its definition has them), its targets `healthy` in every green group.
async fn healthy(inner: &Inner, b: &BlueGreen, t: &Task) -> bool {
    if t.last_status != "RUNNING" || t.health_status == "UNHEALTHY" {
        return false;
    }
    if t.health_status != "HEALTHY"
        && find_td(inner, &t.task_definition_arn).is_ok_and(|td| {
            td.container_definitions
                .iter()
                .any(|c| c.is_essential() && c.health_check.is_some())
        })
    {
        return false;
    }
    for g in &b.green_groups {
        let Some((_, port)) = t.registered.iter().find(|(tg, _)| tg == g) else {
            return false;
        };
        if let Some(read) = &inner.health
            && read(g.clone(), t.target_ip(), *port).await.as_deref() != Some("healthy")
        {
            return false;
        }
    }
    true
}

/// Green tasks of the deployment that failed (stopped before anyone stopped them).
fn failed(inner: &Inner, s: &Service, id: &str) -> usize {
    inner
        .state
        .lock()
        .tasks
        .iter()
        .filter(|t| {
            of_service(t, s)
                && t.started_by.as_deref() == Some(id)
                && t.desired_status == "STOPPED"
                && matches!(
                    t.stop_code.as_deref(),
                    Some("TaskFailedToStart" | "EssentialContainerExited")
                )
        })
        .count()
}

fn say(inner: &Inner, s: &Service, text: String) {
    with_service(inner, s, |x| {
        event(x, format!("(service {}) {text}", x.service_name))
    });
}

/// A failure retried every round is said once, not once a second.
fn say_once(inner: &Inner, s: &Service, text: String) {
    with_service(inner, s, |x| {
        let text = format!("(service {}) {text}", x.service_name);
        if x.events.first().map(|e| &e.message) != Some(&text) {
            event(x, text);
        }
    });
}

/// One scheduling round of a service whose PRIMARY deployment is a blue/green one in
/// progress (see the module's stages). `live`: the service's tasks meant to run.
pub(crate) async fn run(inner: &Arc<Inner>, s: &Service, live: &[Task], may_start: bool) {
    let Some(d) = s.deployments.last().cloned() else {
        return;
    };
    let Some(b) = d.blue_green.clone() else { return };
    let (green, blue): (Vec<&Task>, Vec<&Task>) = live
        .iter()
        .partition(|t| t.started_by.as_deref() == Some(d.id.as_str()));
    let cfg = &s.deployment_configuration;

    if b.status == "ROLLBACK_IN_PROGRESS" {
        finish_rollback(inner, s, &d, &b, &green);
        return;
    }
    // The circuit breaker, until the blue tasks are being stopped.
    if b.stage != CLEAN_UP
        && let Some(CircuitBreaker {
            enable: true,
            rollback,
        }) = cfg.deployment_circuit_breaker
        && failed(inner, s, &d.id) >= breaker_threshold(s.desired_count)
    {
        trip(inner, s, &d, &b, rollback).await;
        return;
    }
    let want = s.desired_count as usize;
    if b.stage != CLEAN_UP {
        keep_green(inner, s, &d, &green, want, may_start);
    }
    match b.stage.as_str() {
        SCALE_UP => {
            let mut ready = 0;
            for t in &green {
                if healthy(inner, &b, t).await {
                    ready += 1;
                }
            }
            if green.len() != want || ready != want {
                return;
            }
            if let Err(e) = shift(inner, s, &b, true, 100.0).await {
                say_once(
                    inner,
                    s,
                    format!("(deployment {}) could not shift test traffic: {e}", d.id),
                );
                return;
            }
            say(
                inner,
                s,
                format!(
                    "(deployment {}) test traffic shifted to the new service revision.",
                    d.id
                ),
            );
            with_deployment(inner, s, &d.id, |_, b| enter(b, TEST_TRAFFIC_SHIFT));
        }
        TEST_TRAFFIC_SHIFT => {
            with_deployment(inner, s, &d.id, |_, b| enter(b, PRODUCTION_TRAFFIC_SHIFT));
        }
        PRODUCTION_TRAFFIC_SHIFT => {
            let elapsed = (now() - b.stage_started_at).max(0.0) / minute();
            // A first deployment has no blue to share production with: all at once.
            let p = if b.blue_deployment.is_some() {
                production_percent(cfg, elapsed)
            } else {
                100.0
            };
            if (p - b.production_percent).abs() > f64::EPSILON {
                if let Err(e) = shift(inner, s, &b, false, p).await {
                    say_once(
                        inner,
                        s,
                        format!("(deployment {}) could not shift production traffic: {e}", d.id),
                    );
                    return;
                }
                say(
                    inner,
                    s,
                    format!(
                        "(deployment {}) production traffic shifted: {p}% on the new service revision.",
                        d.id
                    ),
                );
            }
            with_deployment(inner, s, &d.id, |_, b| {
                b.production_percent = p;
                if p >= 100.0 {
                    enter(b, BAKE_TIME);
                }
            });
        }
        BAKE_TIME => {
            let elapsed = (now() - b.stage_started_at).max(0.0) / minute();
            if elapsed >= f64::from(cfg.bake_time_in_minutes.unwrap_or(0)) {
                with_deployment(inner, s, &d.id, |_, b| enter(b, CLEAN_UP));
            }
        }
        CLEAN_UP => {
            if !blue.is_empty() {
                stop_all(inner, s, blue.iter().copied(), &d.id);
                return;
            }
            // Completed once the blue tasks have drained and stopped.
            if !stopped(inner, s, |t| t.started_by.as_deref() != Some(d.id.as_str())) {
                return;
            }
            complete(inner, s, &d);
        }
        _ => {}
    }
}

/// Whether every task of the service that `which` picks and that was asked to stop has
/// stopped (deregistered, drained, its containers stopped).
fn stopped(inner: &Inner, s: &Service, which: impl Fn(&Task) -> bool) -> bool {
    !inner
        .state
        .lock()
        .tasks
        .iter()
        .any(|t| of_service(t, s) && t.desired_status == "STOPPED" && t.last_status != "STOPPED" && which(t))
}

/// Green up to the desired count (replacing failed ones), extra green stopped.
fn keep_green(
    inner: &Arc<Inner>,
    s: &Service,
    d: &Deployment,
    green: &[&Task],
    want: usize,
    may_start: bool,
) {
    if green.len() < want && may_start {
        let (Ok(td), Ok(cl)) = (
            find_td(inner, &d.task_definition),
            ops::cluster_pub(inner, Some(&s.cluster_arn)),
        ) else {
            return;
        };
        let n = u32::try_from(want - green.len()).unwrap_or(0);
        let started = ops::launch(inner, &cl, &td, n, group(&s.service_name), Some(d.id.clone()));
        let ids: Vec<String> = started
            .iter()
            .map(|t| format!("(task {})", t.task_arn.rsplit('/').next().unwrap_or_default()))
            .collect();
        say(
            inner,
            s,
            format!("has started {} tasks: {}.", ids.len(), ids.join(" ")),
        );
    } else if green.len() > want {
        let mut extra = green.to_vec();
        extra.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        for t in extra.into_iter().take(green.len() - want) {
            stop(
                inner,
                t,
                &format!("Scaling activity initiated by (deployment {})", d.id),
            );
        }
    }
}

/// The blue tasks are gone: the deployment COMPLETED, the only one.
fn complete(inner: &Inner, s: &Service, d: &Deployment) {
    let t = now();
    with_service(inner, s, |x| {
        x.deployments.retain(|y| y.id == d.id);
        if let Some(y) = x.deployments.last_mut()
            && let Some(b) = y.blue_green.as_mut()
        {
            b.stage = DONE.into();
            b.stage_started_at = t;
            b.status = "SUCCESSFUL".into();
            b.finished_at = Some(t);
            y.rollout_state = "COMPLETED".into();
            y.rollout_state_reason = Some("ECS deployment completed.".into());
            y.updated_at = t;
        }
        x.stable_task_definition = Some(x.task_definition.clone());
        event(
            x,
            format!(
                "(service {}) (deployment {}) deployment completed.",
                x.service_name, d.id
            ),
        );
        event(
            x,
            format!("(service {}) has reached a steady state.", x.service_name),
        );
    });
}

/// The circuit breaker trips: the deployment FAILED; with rollback (and a blue deployment
/// to go back to), traffic returns to blue and the green tasks stop.
async fn trip(inner: &Arc<Inner>, s: &Service, d: &Deployment, b: &BlueGreen, rollback: bool) {
    let back = rollback && b.blue_deployment.is_some();
    if back {
        // Production first: it is what users see.
        let moved = match shift(inner, s, b, false, 0.0).await {
            Ok(()) => shift(inner, s, b, true, 0.0).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            say_once(
                inner,
                s,
                format!("(deployment {}) could not shift traffic back: {e}", d.id),
            );
            return;
        }
    }
    with_deployment(inner, s, &d.id, |x, b| {
        event(
            x,
            format!(
                "(service {}) (deployment {}) deployment failed: tasks failed to start.",
                x.service_name, d.id
            ),
        );
        b.production_percent = 0.0;
        if back {
            b.status = "ROLLBACK_IN_PROGRESS".into();
            event(
                x,
                format!(
                    "(service {}) (deployment {}) rolling back: traffic shifted back to (deployment {}).",
                    x.service_name,
                    d.id,
                    b.blue_deployment.clone().unwrap_or_default()
                ),
            );
        } else {
            b.status = "STOPPED".into();
            b.stage = DONE.into();
            b.finished_at = Some(now());
        }
        if let Some(y) = x.deployments.iter_mut().find(|y| y.id == d.id) {
            y.rollout_state = "FAILED".into();
            y.rollout_state_reason = Some(format!(
                "ECS deployment circuit breaker: tasks failed to start.{}",
                if back {
                    " Rolling back to the blue service revision."
                } else {
                    ""
                }
            ));
        }
    });
}

/// Rolling back: green tasks stop; once none is left, the blue deployment is PRIMARY
/// again and the failed one is gone.
fn finish_rollback(inner: &Inner, s: &Service, d: &Deployment, b: &BlueGreen, green: &[&Task]) {
    if !green.is_empty() {
        stop_all(inner, s, green.iter().copied(), &d.id);
        return;
    }
    // Rolled back once the green tasks have drained and stopped.
    if !stopped(inner, s, |t| t.started_by.as_deref() == Some(d.id.as_str())) {
        return;
    }
    let Some(blue) = b.blue_deployment.clone() else {
        return;
    };
    let t = now();
    // First the rolled-back deployment's end, so that it is kept as it ended.
    with_deployment(inner, s, &d.id, |_, b| {
        b.status = "ROLLBACK_SUCCESSFUL".into();
        b.finished_at = Some(t);
    });
    with_service(inner, s, |x| {
        x.deployments.retain(|y| y.id != d.id);
        if let Some(y) = x.deployments.iter_mut().find(|y| y.id == blue) {
            y.status = "PRIMARY".into();
            y.rollout_state = "COMPLETED".into();
            y.updated_at = t;
            x.task_definition = y.task_definition.clone();
            x.deployment_id = y.id.clone();
        }
        // The blue deployment serves again: it alone is kept, as after its completion.
        x.deployments.retain(|y| y.id == blue);
        event(
            x,
            format!(
                "(service {}) (deployment {}) rollback completed: (deployment {blue}) serves.",
                x.service_name, d.id
            ),
        );
    });
}

#[cfg(test)]
#[path = "bluegreen_tests.rs"]
mod tests;
