//! One task's life, as the ECS agent drives it: containers created and started in
//! dependency order (each after its dependsOn conditions hold), then watched (an essential
//! container's exit stops the task, a non-essential one's does not), then stopped in
//! reverse order (SIGTERM, SIGKILL after `stopTimeout`) and removed. A task that cannot
//! start is stopped the same way: nothing of it is left running.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::docker::{self, Owner, Wiring};
use crate::model::{NetworkMode, TaskDefinition};
use crate::records::{NetworkBinding, Task};
use crate::volumes::Kind;
use crate::{Inner, Stop, envfiles, network, now, pause, ports, validate};

/// How often a running task's containers are inspected: an essential container's exit
/// stops its task within this.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// Attempts at starting a container whose dynamic host port another process took between
/// the pick and Docker's bind.
const PORT_ATTEMPTS: u32 = 3;
/// How often a dependsOn condition is checked while a container waits for it.
const DEPENDENCY_EVERY: Duration = Duration::from_millis(250);
/// Where a driver begins.
#[derive(Debug)]
pub(crate) enum Phase {
    Start,
    Watch,
    Stop(Stop),
}

/// Starts the driver of task `arn`.
pub(crate) fn spawn(inner: &Arc<Inner>, arn: String, td: TaskDefinition, phase: Phase) {
    let (tx, rx) = watch::channel(None);
    if let Ok(mut stops) = inner.stops.lock() {
        stops.insert(arn.clone(), tx);
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move { drive(inner, arn, td, phase, rx).await });
}

/// Asks task `arn`'s driver to stop it; false when no driver runs it.
pub(crate) fn request_stop(inner: &Inner, arn: &str, stop: Stop) -> bool {
    let stops = inner
        .stops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match stops.get(arn) {
        Some(tx) => {
            tx.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(stop);
                    true
                } else {
                    false
                }
            });
            true
        }
        None => false,
    }
}

pub(crate) fn update(inner: &Inner, arn: &str, f: impl FnOnce(&mut Task)) {
    {
        let mut state = inner.state.lock();
        if let Some(t) = state.tasks.iter_mut().find(|t| t.task_arn == arn) {
            f(t);
            t.version += 1;
        }
    }
    inner.save();
}

pub(crate) fn task(inner: &Inner, arn: &str) -> Option<Task> {
    inner
        .state
        .lock()
        .tasks
        .iter()
        .find(|t| t.task_arn == arn)
        .cloned()
}

async fn drive(
    inner: Arc<Inner>,
    arn: String,
    td: TaskDefinition,
    phase: Phase,
    mut rx: watch::Receiver<Option<Stop>>,
) {
    let stop = match phase {
        Phase::Start => match start(&inner, &arn, &td, &mut rx).await {
            Err(stop) => stop,
            Ok(()) => {
                update(&inner, &arn, |t| {
                    t.last_status = "RUNNING".into();
                    t.started_at = Some(now());
                });
                crate::services::register(&inner, &arn).await;
                watch_task(&inner, &arn, &mut rx).await
            }
        },
        Phase::Watch => {
            // Taken back after a restart: the target groups it missed (hostalb stopped
            // between its start and its registration), then watched as before.
            crate::services::register(&inner, &arn).await;
            watch_task(&inner, &arn, &mut rx).await
        }
        Phase::Stop(stop) => stop,
    };
    finish(&inner, &arn, &td, stop).await;
    if let Ok(mut stops) = inner.stops.lock() {
        stops.remove(&arn);
    }
}

fn requested(rx: &watch::Receiver<Option<Stop>>) -> Option<Stop> {
    rx.borrow().clone()
}

/// Creates and starts every container in dependency order.
async fn start(
    inner: &Inner,
    arn: &str,
    td: &TaskDefinition,
    rx: &mut watch::Receiver<Option<Stop>>,
) -> Result<(), Stop> {
    let order = validate::start_order(&td.container_definitions)
        .unwrap_or_else(|_| (0..td.container_definitions.len()).collect());
    let Some(snapshot) = task(inner, arn) else {
        return Err(Stop {
            code: "TaskFailedToStart",
            reason: "the task was forgotten while starting".into(),
        });
    };
    let revision = td.revision.unwrap_or(1);
    let owner = Owner {
        task_arn: arn,
        cluster_arn: &snapshot.cluster_arn,
        family: &td.family,
        revision,
    };
    let init_failed = |reason: String| Stop {
        code: "TaskFailedToStart",
        reason: format!("ResourceInitializationError: {reason}"),
    };
    crate::volumes::provision(inner, arn, td, &snapshot.volumes)
        .await
        .map_err(init_failed)?;
    let awsvpc = td.mode() == NetworkMode::Awsvpc;
    if awsvpc {
        inner
            .engine
            .ensure_network(network::NETWORK, network::labels())
            .await
            .map_err(|e| init_failed(format!("the awsvpc network {}: {e}", network::NETWORK)))?;
    }
    // awsvpc: the pause container holds the task's network namespace (the first
    // container, where there is no pause program for this architecture).
    let pause = if awsvpc && let Some(root) = pause::root_filesystem() {
        Some(
            network::start_pause(inner, arn, td, &owner, root)
                .await
                .map_err(init_failed)?,
        )
    } else {
        None
    };
    let first_holds = awsvpc && pause.is_none();
    let holder = if first_holds {
        order
            .first()
            .map(|&i| docker_name(&snapshot, &td.container_definitions[i].name))
    } else {
        pause
    };
    for c in &td.container_definitions {
        if let Some(l) = &c.log_configuration
            && l.log_driver == validate::AWSLOGS
        {
            tracing::info!(task = %arn, container = %c.name, group = l.options.get("awslogs-group").map_or("", String::as_str),
                "ECS: logDriver awslogs has no CloudWatch here: the container logs through the engine's default driver (docker logs)");
        }
    }
    for (position, i) in order.into_iter().enumerate() {
        if let Some(stop) = requested(rx) {
            return Err(stop);
        }
        let c = &td.container_definitions[i];
        wait_dependencies(inner, arn, td, i, rx).await?;
        let failed = |kind: &str, message: String| {
            let reason = format!("{kind}: container {}: {message}", c.name);
            update(inner, arn, |t| {
                if let Some(rec) = t.containers.iter_mut().find(|r| r.name == c.name) {
                    rec.last_status = "STOPPED".into();
                    rec.reason = Some(reason.clone());
                }
            });
            Stop {
                code: "TaskFailedToStart",
                reason,
            }
        };
        let env = match envfiles::read(c).await {
            Ok(texts) => envfiles::merge(c, &texts),
            Err(m) => return Err(failed("ResourceInitializationError", m)),
        };
        let dynamic = td.mode() == crate::model::NetworkMode::Bridge
            && c.port_mappings.iter().any(|m| m.host_port.unwrap_or(0) == 0);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let bindings = match bind_ports(inner, td, i) {
                Ok(b) => b,
                Err(m) => return Err(failed("ResourceInitializationError", m)),
            };
            let links = {
                let state = inner.state.lock();
                let t = state.tasks.iter().find(|t| t.task_arn == arn);
                c.links
                    .iter()
                    .filter_map(|l| {
                        let (name, alias) = l.split_once(':').unwrap_or((l, l));
                        let rec = t?.containers.iter().find(|r| r.name == name)?;
                        Some(format!("{}:{alias}", rec.docker_name))
                    })
                    .collect()
            };
            let wiring = Wiring {
                bindings: bindings.clone(),
                links,
                env: env.clone(),
                binds: crate::volumes::binds(c, &snapshot.volumes),
                volumes_from: crate::volumes::volumes_from(c, |n| {
                    snapshot
                        .containers
                        .iter()
                        .find(|r| r.name == n)
                        .map(|r| r.docker_name.clone())
                }),
                netns_holder: if awsvpc && (position > 0 || !first_holds) {
                    holder.clone()
                } else {
                    None
                },
            };
            let body = docker::create_body(td, c, &owner, wiring);
            let docker_name = docker_name(&snapshot, &c.name);
            let id = match inner.engine.create(&docker_name, body).await {
                Ok(id) => id,
                Err(m) if m.contains("No such image") => {
                    return Err(failed(
                        "CannotPullContainerError",
                        format!(
                            "image {} is not on the local Docker engine (hostalb pulls nothing: build it, or docker load / docker pull it first): {m}",
                            c.image
                        ),
                    ));
                }
                Err(m) => return Err(failed("CannotCreateContainerError", m)),
            };
            update(inner, arn, |t| {
                if let Some(rec) = t.containers.iter_mut().find(|r| r.name == c.name) {
                    rec.runtime_id = Some(id.clone());
                    rec.network_bindings = bindings.clone();
                }
            });
            match inner.engine.start(&id).await {
                Ok(()) => break,
                // A dynamic port taken between the pick and Docker's bind: new ports.
                Err(m) if dynamic && attempt < PORT_ATTEMPTS && port_taken(&m) => {
                    tracing::info!(task = %arn, container = %c.name, error = %m, "ECS: a dynamic host port was taken meanwhile: another one");
                    if let Err(e) = inner.engine.remove(&id).await {
                        return Err(failed("CannotStartContainerError", format!("{m}; then: {e}")));
                    }
                    update(inner, arn, |t| {
                        if let Some(rec) = t.containers.iter_mut().find(|r| r.name == c.name) {
                            rec.runtime_id = None;
                            rec.network_bindings.clear();
                        }
                    });
                }
                Err(m) => return Err(failed("CannotStartContainerError", m)),
            }
        }
        if first_holds && position == 0 {
            let id = task(inner, arn)
                .and_then(|t| t.containers.into_iter().find(|r| r.name == c.name))
                .and_then(|r| r.runtime_id)
                .unwrap_or_default();
            network::record_address(inner, arn, &id)
                .await
                .map_err(|m| failed("ResourceInitializationError", m))?;
        }
        update(inner, arn, |t| {
            if let Some(rec) = t.containers.iter_mut().find(|r| r.name == c.name) {
                rec.last_status = "RUNNING".into();
            }
        });
    }
    Ok(())
}

fn docker_name(t: &Task, container: &str) -> String {
    t.containers
        .iter()
        .find(|r| r.name == container)
        .map(|r| r.docker_name.clone())
        .unwrap_or_default()
}

/// Whether Docker refused a start because a host port is in use.
fn port_taken(message: &str) -> bool {
    message.contains("address already in use") || message.contains("port is already allocated")
}

/// Host ports for container `i`'s port mappings: dynamic ones picked from the agent's
/// range, away from every port a live task holds.
fn bind_ports(inner: &Inner, td: &TaskDefinition, i: usize) -> Result<Vec<NetworkBinding>, String> {
    let c = &td.container_definitions[i];
    // awsvpc: the task has its own address; no host port is bound.
    if td.mode() == NetworkMode::Awsvpc {
        return Ok(Vec::new());
    }
    let state = inner.state.lock();
    let mut taken: BTreeSet<u16> = state
        .tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED")
        .flat_map(|t| {
            t.containers
                .iter()
                .flat_map(|c| c.network_bindings.iter().map(|b| b.host_port))
        })
        .collect();
    let mut out = Vec::new();
    for m in &c.port_mappings {
        let container_port = m.container_port.unwrap_or(0);
        let host_port = match (td.mode(), m.host_port) {
            (crate::model::NetworkMode::Host, _) => container_port,
            (_, Some(h)) if h != 0 => h,
            _ => {
                let seed = u32::from_str_radix(&crate::random_hex(4), 16).unwrap_or(0);
                ports::pick(m.protocol(), &taken, seed).ok_or_else(|| {
                    format!(
                        "no free host port left in the dynamic range {}-{}",
                        ports::DYNAMIC_RANGE.0,
                        ports::DYNAMIC_RANGE.1
                    )
                })?
            }
        };
        taken.insert(host_port);
        out.push(NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port,
            host_port,
            protocol: m.protocol().to_owned(),
        });
    }
    Ok(out)
}

/// Waits until container `i`'s dependsOn conditions hold.
async fn wait_dependencies(
    inner: &Inner,
    arn: &str,
    td: &TaskDefinition,
    i: usize,
    rx: &mut watch::Receiver<Option<Stop>>,
) -> Result<(), Stop> {
    let c = &td.container_definitions[i];
    let patience = Duration::from_secs(u64::from(c.start_timeout.unwrap_or(crate::DEFAULT_START_TIMEOUT)));
    let fail = |reason: String| Stop {
        code: "TaskFailedToStart",
        reason: format!("DependencyError: container {}: {reason}", c.name),
    };
    for dep in &c.depends_on {
        let id = task(inner, arn)
            .and_then(|t| t.containers.into_iter().find(|r| r.name == dep.container_name))
            .and_then(|r| r.runtime_id);
        let Some(id) = id else {
            return Err(fail(format!("{} was not started", dep.container_name)));
        };
        let began = Instant::now();
        loop {
            if let Some(stop) = requested(rx) {
                return Err(stop);
            }
            let seen = inner.engine.observe(&id).await;
            let met = match (&seen, dep.condition.as_str()) {
                (Err(_), _) => false,
                (Ok(_), "START") => true,
                (Ok(o), "COMPLETE") => o.exited,
                (Ok(o), "SUCCESS") if o.exited => {
                    if o.exit_code == Some(0) {
                        true
                    } else {
                        return Err(fail(format!(
                            "{} exited with code {}, condition SUCCESS needs 0",
                            dep.container_name,
                            o.exit_code.map_or("(none)".into(), |c| c.to_string())
                        )));
                    }
                }
                (Ok(o), "HEALTHY") if o.exited => {
                    return Err(fail(format!(
                        "{} exited before it was healthy (condition HEALTHY)",
                        dep.container_name
                    )));
                }
                (Ok(o), "HEALTHY") => o.health == "HEALTHY",
                _ => false,
            };
            if met {
                break;
            }
            if began.elapsed() >= patience {
                return Err(fail(format!(
                    "{} did not meet condition {} within {} s (startTimeout)",
                    dep.container_name,
                    dep.condition,
                    patience.as_secs()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(DEPENDENCY_EVERY) => {}
                _ = rx.changed() => {}
            }
        }
    }
    Ok(())
}

/// Watches a running task until a stop is requested or an essential container exits.
async fn watch_task(inner: &Inner, arn: &str, rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = requested(rx) {
            return stop;
        }
        if let Some(t) = task(inner, arn) {
            let mut changed = Vec::new();
            for c in t.containers.iter().filter(|c| c.last_status == "RUNNING") {
                let Some(id) = &c.runtime_id else { continue };
                match inner.engine.observe(id).await {
                    Ok(o) if o.exited || o.health != c.health_status => changed.push((c.name.clone(), o)),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(task = %arn, container = %c.name, error = %e, "ECS: cannot inspect a task's container")
                    }
                }
            }
            if !changed.is_empty() {
                let mut essential_exit = None;
                update(inner, arn, |t| {
                    for (name, o) in &changed {
                        let Some(rec) = t.containers.iter_mut().find(|r| &r.name == name) else {
                            continue;
                        };
                        rec.health_status = o.health.into();
                        if o.exited {
                            rec.last_status = "STOPPED".into();
                            rec.exit_code = o.exit_code;
                            rec.reason = o.error.clone();
                            if rec.essential && essential_exit.is_none() {
                                essential_exit = Some(rec.name.clone());
                            }
                        }
                    }
                    t.health_status = task_health(t);
                });
                if let Some(name) = essential_exit {
                    tracing::info!(task = %arn, container = %name, "ECS: an essential container exited: the task stops");
                    return Stop {
                        code: "EssentialContainerExited",
                        reason: "Essential container in task exited".into(),
                    };
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = rx.changed() => {}
        }
    }
}

/// A task's health: its essential containers' (those with a health check decide).
fn task_health(t: &Task) -> String {
    let essential: Vec<&str> = t
        .containers
        .iter()
        .filter(|c| c.essential && c.health_status != "UNKNOWN")
        .map(|c| c.health_status.as_str())
        .collect();
    if essential.contains(&"UNHEALTHY") {
        "UNHEALTHY".into()
    } else if !essential.is_empty() && essential.iter().all(|h| *h == "HEALTHY") {
        "HEALTHY".into()
    } else {
        "UNKNOWN".into()
    }
}

/// Stops the task's containers in reverse start order, removes them, and reports the task
/// STOPPED with the reason.
async fn finish(inner: &Inner, arn: &str, td: &TaskDefinition, stop: Stop) {
    tracing::info!(task = %arn, reason = %stop.reason, "ECS: stopping a task");
    update(inner, arn, |t| {
        t.desired_status = "STOPPED".into();
        t.last_status = "STOPPING".into();
        t.stopping_at.get_or_insert_with(now);
        t.stopped_reason.get_or_insert_with(|| stop.reason.clone());
        t.stop_code.get_or_insert_with(|| stop.code.to_owned());
    });
    // Out of the target groups first, as ECS's scheduler does, then the containers.
    crate::services::deregister(inner, arn).await;
    let mut order = validate::start_order(&td.container_definitions)
        .unwrap_or_else(|_| (0..td.container_definitions.len()).collect());
    order.reverse();
    let Some(t) = task(inner, arn) else { return };
    for i in order {
        let c = &td.container_definitions[i];
        let Some(rec) = t.containers.iter().find(|r| r.name == c.name) else {
            continue;
        };
        let Some(id) = &rec.runtime_id else { continue };
        let timeout = c.stop_timeout.unwrap_or(crate::DEFAULT_STOP_TIMEOUT);
        if let Err(e) = inner.engine.stop(id, timeout).await {
            tracing::warn!(task = %arn, container = %c.name, error = %e, "ECS: cannot stop a task's container");
        }
        let seen = inner.engine.observe(id).await.ok();
        if let Err(e) = inner.engine.remove(id).await {
            tracing::warn!(task = %arn, container = %c.name, error = %e, "ECS: cannot remove a task's container");
        }
        update(inner, arn, |t| {
            if let Some(r) = t.containers.iter_mut().find(|r| r.name == c.name) {
                if r.last_status != "STOPPED" {
                    r.last_status = "STOPPED".into();
                    r.exit_code = seen.as_ref().and_then(|o| o.exit_code);
                }
            }
        });
    }
    // The pause container last: the task's address goes with it.
    if let Some(name) = &t.pause_container
        && let Err(e) = inner.engine.remove(name).await
    {
        tracing::warn!(task = %arn, container = %name, error = %e, "ECS: cannot remove a task's pause container");
    }
    // The task's own Docker volumes go with it; shared ones and bind mounts stay.
    for v in t.volumes.iter().filter(|v| v.kind == Kind::Task) {
        if let Err(e) = inner.engine.remove_volume(&v.source).await {
            tracing::warn!(task = %arn, volume = %v.source, error = %e, "ECS: cannot remove a task's volume");
        }
    }
    update(inner, arn, |t| {
        t.last_status = "STOPPED".into();
        t.stopped_at = Some(now());
        for r in &mut t.containers {
            r.last_status = "STOPPED".into();
        }
        for a in &mut t.attachments {
            a.status = "DELETED".into();
        }
    });
}

/// At start: tasks of the state file that were not stopped get a driver again.
pub(crate) async fn resume(inner: &Arc<Inner>) -> Result<(), String> {
    let live: Vec<Task> = inner
        .state
        .lock()
        .tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED")
        .cloned()
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let found = inner.engine.task_containers().await.map_err(|e| {
        format!("ECS: the state file holds running tasks and the Docker engine cannot list containers: {e}")
    })?;
    for t in live {
        let td = inner
            .state
            .lock()
            .task_definitions
            .iter()
            .find(|d| d.task_definition_arn.as_deref() == Some(t.task_definition_arn.as_str()))
            .cloned()
            .unwrap_or_default();
        let mine: Vec<&(String, String, String, bool)> = found.iter().filter(|f| f.1 == t.task_arn).collect();
        // Containers are found again by their labels: ids from Docker, not from the file.
        {
            let mut state = inner.state.lock();
            if let Some(rec) = state.tasks.iter_mut().find(|x| x.task_arn == t.task_arn) {
                for c in &mut rec.containers {
                    if let Some(f) = mine.iter().find(|f| f.2 == c.name) {
                        c.runtime_id = Some(f.0.clone());
                    }
                }
            }
        }
        let essential_running = t
            .containers
            .iter()
            .filter(|c| c.essential)
            .all(|c| mine.iter().any(|f| f.2 == c.name && f.3));
        // Every container started before hostalb stopped: the task runs, it is not
        // started again.
        let all_running = !t.containers.is_empty()
            && t.containers.iter().all(|c| c.runtime_id.is_some())
            && t.containers
                .iter()
                .all(|c| mine.iter().any(|f| f.2 == c.name && f.3));
        let service_task = t.group.starts_with("service:");
        if t.last_status == "PENDING" && t.desired_status == "RUNNING" && all_running {
            update(inner, &t.task_arn, |x| {
                x.last_status = "RUNNING".into();
                x.started_at.get_or_insert_with(now);
                for c in &mut x.containers {
                    c.last_status = "RUNNING".into();
                }
            });
            tracing::info!(task = %t.task_arn, "ECS: a task that was starting runs: taken back");
            spawn(inner, t.task_arn.clone(), td, Phase::Watch);
            continue;
        }
        let phase = match t.last_status.as_str() {
            // StopTask was called while no driver ran the task (the engine was away).
            "RUNNING" if t.desired_status == "STOPPED" => Phase::Stop(Stop {
                code: "UserInitiated",
                reason: t
                    .stopped_reason
                    .clone()
                    .unwrap_or_else(|| "Task stopped by user".into()),
            }),
            "RUNNING" if essential_running => Phase::Watch,
            "RUNNING" => Phase::Stop(Stop {
                code: "EssentialContainerExited",
                reason: "Essential container in task exited".into(),
            }),
            "STOPPING" | "DEACTIVATING" => Phase::Stop(Stop {
                code: "UserInitiated",
                reason: t
                    .stopped_reason
                    .clone()
                    .unwrap_or_else(|| "Task stopped by user".into()),
            }),
            // Half started: stopped and, for a service, replaced. Not the task's failure
            // (the circuit breaker does not count it).
            _ if service_task => Phase::Stop(Stop {
                code: "ServiceSchedulerInitiated",
                reason: "hostalb restarted while the task was starting".into(),
            }),
            _ => Phase::Stop(Stop {
                code: "TaskFailedToStart",
                reason: "hostalb restarted while the task was starting".into(),
            }),
        };
        tracing::info!(task = %t.task_arn, containers = mine.len(), resumed = matches!(phase, Phase::Watch), "ECS: task found again");
        spawn(inner, t.task_arn.clone(), td, phase);
    }
    inner.save();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_port_conflicts_are_recognised() {
        assert!(port_taken(
            "Docker answered 500: driver failed programming external connectivity on endpoint x: Error starting userland proxy: listen tcp4 0.0.0.0:44649: bind: address already in use"
        ));
        assert!(port_taken(
            "Bind for 0.0.0.0:49200 failed: port is already allocated"
        ));
        assert!(!port_taken("Docker answered 404: No such image: x"));
    }
}
