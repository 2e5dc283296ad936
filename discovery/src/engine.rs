//! Following the Docker engine: connect, subscribe to container events, list everything,
//! then apply events as they come and re-list every `resync` period; on any failure keep
//! the last known registrations and reconnect with capped exponential backoff, forever.
//!
//! Docker's event stream is lossy (the daemon keeps 256 events and skips a subscriber
//! that is slow to read; a daemon restart forgets history), so events only make changes
//! fast: the full list on every (re)connect and every `resync` is what makes discovery
//! correct. Events are subscribed to *before* listing, so nothing falls in between.
//!
//! Output is a `tokio::sync::watch` of [`Desired`]: the latest computation wins, a slow
//! consumer never holds discovery up, and nothing here ever touches the data plane.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;
use hostalb_config::Config;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::container::{Container, DockerHealth};
use crate::select::{self, Desired, GroupSelector, Selection};

/// First reconnect delay; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(250);
/// The bound: reconnect attempts are never more than 30 s apart.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Docker API requests (not the event stream) fail after this long.
const REQUEST_TIMEOUT_SECONDS: u64 = 30;
/// Events arriving this close together are applied as one change.
const COALESCE: Duration = Duration::from_millis(20);

/// Signals whose `kill` event means the container is being stopped. Others (HUP, USR1,
/// USR2, WINCH...) are sent to running services to reload or rotate logs.
const STOP_SIGNALS: [&str; 8] = ["2", "3", "9", "15", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM"];

/// What discovery needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `unix://`, `tcp://` or `http://`; `None`: `DOCKER_HOST`, else the local socket.
    pub endpoint: Option<String>,
    pub resync: Duration,
    pub selection: Selection,
}

impl Settings {
    /// Discovery settings of a configuration. `create_label_groups`: labels may create
    /// target groups (hostalb without a configuration file).
    pub fn from_config(config: &Config, create_label_groups: bool) -> Settings {
        Settings {
            endpoint: config.docker.endpoint.clone(),
            resync: config.docker.resync,
            selection: Selection {
                groups: config
                    .target_groups
                    .iter()
                    .map(|g| GroupSelector {
                        name: g.name.clone(),
                        docker: g.docker.clone(),
                        target_type: g.target_type,
                    })
                    .collect(),
                host_address: config.docker.host_address,
                create_label_groups,
            },
        }
    }
}

/// How discovery is doing, for the admin API and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The endpoint in use (`DOCKER_HOST` or the local socket when unset).
    pub endpoint: String,
    pub connected: bool,
    /// Running containers known.
    pub containers: usize,
    pub last_error: Option<String>,
    /// Full list-and-reconcile passes done.
    pub syncs: u64,
    /// Times the connection was (re)established.
    pub connects: u64,
    /// Container events applied.
    pub events: u64,
}

/// A running discovery task. Dropping it stops the task.
#[derive(Debug)]
pub struct Discovery {
    settings: watch::Sender<Settings>,
    desired: watch::Receiver<Desired>,
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Starts following Docker.
    pub fn spawn(settings: Settings) -> Discovery {
        let (settings_tx, settings_rx) = watch::channel(settings);
        let (desired_tx, desired) = watch::channel(Desired::default());
        let (status_tx, status) = watch::channel(Status::default());
        let task = tokio::spawn(run(settings_rx, desired_tx, status_tx));
        Discovery {
            settings: settings_tx,
            desired,
            status,
            task,
        }
    }

    /// The registrations wanted now, updated as containers come and go.
    pub fn desired(&self) -> watch::Receiver<Desired> {
        self.desired.clone()
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// New settings after a configuration reload: selection is recomputed at once; a new
    /// endpoint reconnects.
    pub fn update(&self, settings: Settings) {
        self.settings.send_if_modified(|s| {
            if *s == settings {
                return false;
            }
            *s = settings;
            true
        });
    }
}

fn endpoint_name(endpoint: &Option<String>) -> String {
    endpoint
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

async fn connect(endpoint: &Option<String>) -> Result<Docker, bollard::errors::Error> {
    let target = endpoint_name(endpoint);
    let docker = if target.starts_with("unix://") {
        Docker::connect_with_unix(&target, REQUEST_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)?
    } else {
        Docker::connect_with_http(&target, REQUEST_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)?
    };
    // Older engines (Debian's 20.10 speaks API 1.41) refuse newer client versions.
    let docker = docker.negotiate_version().await?;
    docker.ping().await?;
    Ok(docker)
}

/// Every running (or paused) container.
async fn list_all(docker: &Docker) -> Result<BTreeMap<String, Container>, bollard::errors::Error> {
    let list = docker
        .list_containers(Some(ListContainersOptions::default()))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(Container::from_summary)
        .map(|c| (c.id.clone(), c))
        .collect())
}

/// One container by id, when it is running.
async fn fetch(docker: &Docker, id: &str) -> Result<Option<Container>, bollard::errors::Error> {
    let filters = HashMap::from([("id".to_owned(), vec![id.to_owned()])]);
    let options = ListContainersOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let list = docker.list_containers(Some(options)).await?;
    Ok(list
        .into_iter()
        .filter_map(Container::from_summary)
        .find(|c| c.id == id && c.running))
}

/// A fresh listing replaces what is known, keeping the `stopping` mark of containers that
/// are still finishing after a stop signal.
fn reconcile(
    known: &BTreeMap<String, Container>,
    mut listed: BTreeMap<String, Container>,
) -> BTreeMap<String, Container> {
    for (id, c) in listed.iter_mut() {
        if known.get(id).is_some_and(|k| k.stopping) {
            c.stopping = true;
        }
    }
    listed
}

struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        // Up to 20 % earlier, so that many hostalb processes do not retry in lockstep.
        let jitter = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            % 1000) as f64
            / 5000.0;
        base.mul_f64(1.0 - jitter)
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_START;
    }
}

/// Whether an event takes a container out of rotation: applied and published at once,
/// never held back to coalesce with what follows (requests sent to a killed container in
/// the meantime would fail).
fn takes_out(event: &EventMessage) -> bool {
    let action = event.action.as_deref().unwrap_or_default();
    matches!(
        action.split(':').next().unwrap_or_default().trim(),
        "kill" | "stop" | "pause" | "die" | "destroy"
    )
}

/// Applies one event to what is known. Returns whether anything changed.
async fn apply_event(
    docker: &Docker,
    known: &mut BTreeMap<String, Container>,
    event: EventMessage,
) -> Result<bool, bollard::errors::Error> {
    let Some(actor) = event.actor else {
        return Ok(false);
    };
    let Some(id) = actor.id else { return Ok(false) };
    let action = event.action.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let verb = action.split(':').next().unwrap_or_default().trim();
    match verb {
        // Unpaused: the event itself says so (a listing right after it may still show the
        // container paused).
        "unpause" if known.contains_key(&id) => Ok(mark(known, &id, |c| c.paused = false)),
        "start" | "restart" | "unpause" | "rename" | "update" | "health_status" => {
            let mut fresh = fetch(docker, &id).await?;
            if let Some(c) = fresh.as_mut() {
                if verb == "unpause" {
                    c.paused = false;
                }
                // The event's own health word is newer than the summary's status text.
                if verb == "health_status" {
                    let word = action.split(':').nth(1).map(str::trim).unwrap_or_default();
                    c.health = match word {
                        "healthy" => DockerHealth::Healthy,
                        "unhealthy" => DockerHealth::Unhealthy,
                        "starting" => DockerHealth::Starting,
                        _ => c.health,
                    };
                }
                // Still stopping after a stop signal, unless it was started again.
                if matches!(verb, "health_status" | "rename" | "update")
                    && known.get(&id).is_some_and(|k| k.stopping)
                {
                    c.stopping = true;
                }
            }
            let before = known.get(&id).cloned();
            match fresh {
                Some(c) => {
                    known.insert(id, c.clone());
                    Ok(before.as_ref() != Some(&c))
                }
                None => Ok(known.remove(&id).is_some()),
            }
        }
        "kill" => {
            let signal = attributes.get("signal").map(String::as_str).unwrap_or("15");
            if !STOP_SIGNALS.contains(&signal) {
                return Ok(false);
            }
            Ok(mark(known, &id, |c| c.stopping = true))
        }
        "stop" => Ok(mark(known, &id, |c| c.stopping = true)),
        "pause" => Ok(mark(known, &id, |c| c.paused = true)),
        "die" | "destroy" => Ok(known.remove(&id).is_some()),
        _ => Ok(false),
    }
}

fn mark(known: &mut BTreeMap<String, Container>, id: &str, f: impl FnOnce(&mut Container)) -> bool {
    match known.get_mut(id) {
        Some(c) => {
            let before = c.clone();
            f(c);
            *c != before
        }
        None => false,
    }
}

fn publish(desired: &watch::Sender<Desired>, known: &BTreeMap<String, Container>, settings: &Settings) {
    let next = select::desired(known, &settings.selection);
    desired.send_if_modified(|d| {
        if *d == next {
            return false;
        }
        for r in &next.reported {
            if !d.reported.contains(r) {
                tracing::warn!(
                    container = %r.container_name,
                    target_group = %r.target_group,
                    reason = %r.reason,
                    "container not registered"
                );
            }
        }
        for p in &next.label_problems {
            if !d.label_problems.contains(p) {
                tracing::warn!(
                    container = %p.container_name,
                    target_group = p.target_group.as_deref().unwrap_or("-"),
                    label = %p.label,
                    problem = %p.message,
                    effect = %p.effect,
                    fix = %p.fix,
                    "container label"
                );
            }
        }
        *d = next;
        true
    });
}

async fn run(
    mut settings: watch::Receiver<Settings>,
    desired: watch::Sender<Desired>,
    status: watch::Sender<Status>,
) {
    let mut known: BTreeMap<String, Container> = BTreeMap::new();
    let mut backoff = Backoff(BACKOFF_START);
    let mut was_connected = true;
    loop {
        let current = settings.borrow_and_update().clone();
        let endpoint = endpoint_name(&current.endpoint);
        status.send_modify(|s| s.endpoint = endpoint.clone());
        let session = follow(
            &current,
            &mut settings,
            &mut known,
            &desired,
            &status,
            &mut backoff,
        )
        .await;
        let message = match session {
            Ok(()) => "the event stream ended".to_owned(),
            Err(e) => e.to_string(),
        };
        status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(message.clone());
        });
        let wait = backoff.next();
        if was_connected || wait >= BACKOFF_MAX {
            tracing::warn!(
                endpoint = %endpoint,
                error = %message,
                kept_registrations = desired.borrow().registrations.values().map(Vec::len).sum::<usize>(),
                retry_in_ms = wait.as_millis() as u64,
                "Docker unreachable; keeping the last known registrations"
            );
        }
        was_connected = false;
        // A settings change (a new endpoint after a reload) retries at once.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = settings.changed() => if changed.is_err() { return },
        }
        if status.borrow().connected {
            was_connected = true;
        }
    }
}

/// One connection's life: subscribe, list, then follow events and resync until something
/// fails or the endpoint changes (`Ok(())`).
async fn follow(
    current: &Settings,
    settings: &mut watch::Receiver<Settings>,
    known: &mut BTreeMap<String, Container>,
    desired: &watch::Sender<Desired>,
    status: &watch::Sender<Status>,
    backoff: &mut Backoff,
) -> Result<(), bollard::errors::Error> {
    let docker = connect(&current.endpoint).await?;
    let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    let mut events = docker.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    *known = reconcile(known, list_all(&docker).await?);
    let mut current = current.clone();
    publish(desired, known, &current);
    backoff.reset();
    tracing::info!(endpoint = %endpoint_name(&current.endpoint), containers = known.len(), "following Docker");
    status.send_modify(|s| {
        s.connected = true;
        s.last_error = None;
        s.connects += 1;
        s.syncs += 1;
        s.containers = known.len();
    });
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + current.resync, current.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                let event = event?;
                let urgent = takes_out(&event);
                let mut changed = apply_event(&docker, known, event).await?;
                if urgent && changed {
                    publish(desired, known, &current);
                    changed = false;
                }
                let mut applied = 1;
                // Coalesce a burst (a restart is kill, die, stop, start, restart): take
                // what arrives within a short window, then publish once. What takes a
                // container out is published at once.
                let window = tokio::time::Instant::now() + COALESCE;
                loop {
                    match tokio::time::timeout_at(window, events.next()).await {
                        Err(_) => break,
                        Ok(None) => return Ok(()),
                        Ok(Some(more)) => {
                            let more = more?;
                            let urgent = takes_out(&more);
                            changed |= apply_event(&docker, known, more).await?;
                            applied += 1;
                            if urgent && changed {
                                publish(desired, known, &current);
                                changed = false;
                            }
                        }
                    }
                }
                if changed {
                    publish(desired, known, &current);
                }
                status.send_modify(|s| {
                    s.events += applied;
                    s.containers = known.len();
                });
            }
            _ = resync.tick() => {
                *known = reconcile(known, list_all(&docker).await?);
                publish(desired, known, &current);
                status.send_modify(|s| {
                    s.syncs += 1;
                    s.containers = known.len();
                });
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let next = settings.borrow_and_update().clone();
                if next.endpoint != current.endpoint {
                    return Ok(());
                }
                if next.resync != current.resync {
                    resync = tokio::time::interval_at(tokio::time::Instant::now() + next.resync, next.resync);
                }
                current = next;
                publish(desired, known, &current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_thirty_seconds() {
        let mut b = Backoff(BACKOFF_START);
        let waits: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert!(waits[0] <= BACKOFF_START && waits[0] >= BACKOFF_START.mul_f64(0.8));
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
        assert!(waits[11] >= BACKOFF_MAX.mul_f64(0.8), "{waits:?}");
        b.reset();
        assert!(b.next() <= BACKOFF_START);
    }

    #[test]
    fn reconcile_keeps_stopping_marks() {
        let c = |id: &str, stopping: bool| Container {
            id: id.into(),
            name: id.into(),
            labels: Default::default(),
            created: 0,
            running: true,
            paused: false,
            stopping,
            health: DockerHealth::None,
            ports: vec![],
            networks: Default::default(),
        };
        let known = BTreeMap::from([("a".to_owned(), c("a", true)), ("b".to_owned(), c("b", false))]);
        let listed = BTreeMap::from([("a".to_owned(), c("a", false)), ("c".to_owned(), c("c", false))]);
        let merged = reconcile(&known, listed);
        assert!(merged["a"].stopping);
        assert!(!merged["c"].stopping);
        assert!(!merged.contains_key("b"));
    }
}
