//! ECS on one host: the task side of ECS's API carried out on the local Docker engine, as
//! the ECS agent carries it out on an EC2 container instance.
//!
//! - [`model`]: task definitions in ECS's JSON; [`validate`]: RegisterTaskDefinition's
//!   checks and the containers' start order (dependsOn, links);
//! - [`records`]: clusters, task definitions and tasks as kept in the state file;
//! - [`docker`]: a container definition as Docker's create body (the agent's labels,
//!   `ecs-FAMILY-REV-NAME-RANDOM` names, port bindings, limits, health check);
//! - [`ports`]: dynamic host ports from the agent's range;
//! - [`volumes`]: bind mounts and Docker volumes (task-scoped or shared) and the
//!   containers' `mountPoints` / `volumesFrom`; [`envfiles`]: `environmentFiles` read
//!   from local files; [`network`]: awsvpc, each task its own address on a Docker bridge,
//!   held by its [`pause`] container;
//! - `driver`: one task's life: containers started in dependency order, watched (an
//!   essential container's exit stops the task), stopped (SIGTERM, SIGKILL after
//!   `stopTimeout`) and removed;
//! - `ops`: the API's operations (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.*`);
//! - `services`: Create/Describe/List/DeleteService and the scheduler that keeps
//!   `desiredCount` tasks, registered in their target groups through a [`Registrar`].
//!
//! - `service_deployments`: List/DescribeServiceDeployments over a service's current and
//!   past deployments.
//! - `deploy`: UpdateService and the rolling deployment (minimumHealthyPercent /
//!   maximumPercent, the circuit breaker with rollback).
//!
//! - `bluegreen`: ECS's native blue/green deployments (BLUE_GREEN, LINEAR, CANARY): green
//!   tasks in the alternate target group, test then production traffic moved by the
//!   listener rules' forward weights through a [`RuleWeights`], bake time, blue stopped;
//!   rollback to blue.

mod bluegreen;
mod deploy;
pub mod docker;
mod driver;
pub mod envfiles;
pub mod model;
pub mod network;
mod ops;
#[cfg(test)]
mod ops_tests;
pub mod pause;
pub mod ports;
pub mod records;
mod service_deployments;
mod services;
pub mod validate;
pub mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hostalb_aws::arn::Scope;
use tokio::sync::watch;

pub use records::{EcsState, Shared};

/// ECS's default `stopTimeout`: 30 s between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: u32 = 30;
/// How long a container may take to meet a dependsOn condition when its definition gives
/// no `startTimeout`: the agent's `ECS_CONTAINER_START_TIMEOUT` default, 3 minutes.
pub const DEFAULT_START_TIMEOUT: u32 = 180;
/// First retry of taking tasks back when the engine did not answer at start; doubled up to
/// [`RESUME_RETRY_MAX`].
const RESUME_RETRY_START: Duration = Duration::from_secs(1);
/// Retries of taking tasks back are never more than 30 s apart (discovery's bound too).
const RESUME_RETRY_MAX: Duration = Duration::from_secs(30);
/// Stopped tasks stay visible this long, as ECS keeps them for at least an hour.
pub const STOPPED_TASK_KEPT: Duration = Duration::from_secs(3600);

/// An ECS error answer: `__type` and message; HTTP 400, 500 for `ServerException`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsError {
    pub code: &'static str,
    pub message: String,
}

impl EcsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> EcsError {
        EcsError {
            code,
            message: message.into(),
        }
    }

    /// `ClientException`: the caller's mistake.
    pub fn client(message: impl Into<String>) -> EcsError {
        EcsError::new("ClientException", message)
    }

    /// `InvalidParameterException`.
    pub fn invalid(message: impl Into<String>) -> EcsError {
        EcsError::new("InvalidParameterException", message)
    }

    /// `ServerException`: hostalb's or the Docker engine's failure.
    pub fn server(message: impl Into<String>) -> EcsError {
        EcsError::new("ServerException", message)
    }

    pub fn http_status(&self) -> u16 {
        if self.code == "ServerException" { 500 } else { 400 }
    }
}

impl std::fmt::Display for EcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EcsError {}

/// Writes the state file (which serializes the [`Shared`] state); the binary provides it.
pub type Saver = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A change of a target group's registrations: a service's task in or out of its target
/// groups, made through ELBv2's RegisterTargets / DeregisterTargets as the ECS scheduler
/// makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChange {
    pub register: bool,
    pub target_group_arn: String,
    pub ip: std::net::IpAddr,
    pub port: u16,
}

/// Carries out a [`TargetChange`]; the binary provides it (ELBv2's own actions). A
/// deregistration answers the target group's deregistration delay: how long the target
/// drains before its task may be stopped.
pub type Registrar = Arc<
    dyn Fn(
            TargetChange,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Duration, String>> + Send>>
        + Send
        + Sync,
>;

/// Reads a target's state in a target group (`healthy`, `initial`, `unhealthy`...), as
/// ELBv2's DescribeTargetHealth answers it; the binary provides it. `None` when it cannot
/// be read. The scheduler counts a new task healthy only once its targets are `healthy`.
pub type HealthReader = Arc<
    dyn Fn(
            String,
            std::net::IpAddr,
            u16,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
        + Send
        + Sync,
>;

/// A call on a listener rule's forward weights, made through ELBv2's own DescribeRules and
/// ModifyRule (a listener's default rule is its default actions), as ECS moves traffic in a
/// blue/green deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleCall {
    /// The rule's forward action: its target groups and weights.
    Read(String),
    /// Sets the weights of the rule's forward action to these (target group, weight),
    /// every other part of the rule kept.
    Set(String, Vec<(String, u32)>),
}

/// Carries out a [`RuleCall`]; the binary provides it. Answers the rule's forward target
/// groups and weights (after the change, for a `Set`); an error names what failed.
pub type RuleWeights = Arc<
    dyn Fn(
            RuleCall,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<(String, u32)>, String>> + Send>>
        + Send
        + Sync,
>;

/// Reads a target group's `TargetType` (`instance`, `ip`...), as ELBv2's
/// DescribeTargetGroups answers it; the binary provides it. `None` when it cannot be read.
/// CreateService refuses an `instance` group for an awsvpc task definition, as ECS does.
pub type TargetTypeReader = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
        + Send
        + Sync,
>;

/// Why a task stops: ECS's `stopCode` and `stoppedReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stop {
    pub code: &'static str,
    pub reason: String,
}

/// The ECS API of one hostalb.
#[derive(Clone)]
pub struct Ecs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ecs").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub state: Shared,
    pub engine: docker::Engine,
    pub saver: Saver,
    pub registrar: Registrar,
    /// Target health, for deployments; without one, a registered target counts healthy.
    pub health: Option<HealthReader>,
    /// Listener rules' weights, for blue/green deployments; without one, blue/green
    /// strategies are refused.
    pub rules: Option<RuleWeights>,
    /// Target groups' types, for awsvpc services; without one, any group is taken.
    pub target_types: Option<TargetTypeReader>,
    pub scope: Scope,
    /// Each live task's stop request channel, by task ARN: its driver watches it. A plain
    /// mutex: held only to insert, look up or remove.
    pub stops: Mutex<HashMap<String, watch::Sender<Option<Stop>>>>,
    /// Orders operations that read then change the state (RunTask, Register...), so that
    /// two calls never take the same revision or host port. The drivers' own changes are
    /// small read-modify-writes under the state's lock.
    pub calls: tokio::sync::Mutex<()>,
}

impl Inner {
    /// Writes the state file; a failure is logged (the state in memory stays the truth).
    pub(crate) fn save(&self) {
        if let Err(e) = (self.saver)() {
            tracing::error!(error = %e, "ECS: the state file could not be written");
        }
    }
}

impl Ecs {
    /// The ECS API over `state` (as loaded from the state file), running tasks on `docker`.
    pub fn new(state: Shared, docker: bollard::Docker, saver: Saver, registrar: Registrar) -> Ecs {
        Ecs {
            inner: Arc::new(Inner {
                state,
                engine: docker::Engine::new(docker),
                saver,
                registrar,
                health: None,
                rules: None,
                target_types: None,
                scope: Scope::default(),
                stops: Mutex::new(HashMap::new()),
                calls: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The same API, reading target health through `health` (before [`Ecs::start`]).
    #[must_use]
    pub fn with_health(mut self, health: HealthReader) -> Ecs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.health = Some(health);
        }
        self
    }

    /// The same API, moving listener rules' weights through `rules` (before [`Ecs::start`]).
    #[must_use]
    pub fn with_rules(mut self, rules: RuleWeights) -> Ecs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.rules = Some(rules);
        }
        self
    }

    /// The same API, reading target groups' types through `read` (before [`Ecs::start`]).
    #[must_use]
    pub fn with_target_types(mut self, read: TargetTypeReader) -> Ecs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.target_types = Some(read);
        }
        self
    }

    /// Takes the tasks of the state file back: the ones whose containers still run are
    /// watched again (nothing is started twice), the others are stopped and reported so.
    /// An engine that does not answer yet is retried in the background (the tasks keep
    /// their recorded status meanwhile): hostalb's start never waits for Docker.
    pub async fn start(&self) -> Result<(), String> {
        services::spawn_scheduler(Arc::clone(&self.inner));
        if let Err(e) = driver::resume(&self.inner).await {
            tracing::warn!(error = %e, "ECS: tasks will be taken back once the Docker engine answers");
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let mut delay = RESUME_RETRY_START;
                loop {
                    tokio::time::sleep(delay).await;
                    match driver::resume(&inner).await {
                        Ok(()) => break,
                        Err(e) => tracing::debug!(error = %e, "ECS: the Docker engine still does not answer"),
                    }
                    delay = (delay * 2).min(RESUME_RETRY_MAX);
                }
            });
        }
        Ok(())
    }

    /// One operation (`X-Amz-Target`'s part after the dot) with its JSON body; the output
    /// shape as JSON.
    pub async fn call(&self, operation: &str, body: &[u8]) -> Result<serde_json::Value, EcsError> {
        ops::call(&self.inner, operation, body).await
    }
}

/// `UnknownOperationException` when `operation` is no ECS operation (served or not),
/// whether or not a Docker engine can be reached.
pub fn unknown_operation(operation: &str) -> Option<EcsError> {
    ops::unknown(operation)
}

/// Seconds since the epoch (JSON 1.1's timestamps).
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `n` random bytes as hex (task ids, Docker name suffixes).
pub(crate) fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    // The system's random source; on the impossible failure, the clock keeps ids apart.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let t = now().to_bits().to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = t[i % t.len()] ^ u8::try_from(i % 256).unwrap_or(0);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
