//! The control plane: what is configured, what is bound, what is registered. Every change
//! (a reload, new registrations) builds a fresh [`Snapshot`] off the request path and
//! publishes it with a single store; per-target state lives in `Arc`s carried from one
//! snapshot to the next, so a reload touches no connection on an unchanged route.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hostalb_config::{self as cfg, ConfigError, Loaded, Problem};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::control::health;
use crate::data::access_log::AccessLog;
use crate::data::budget::Budget;
use crate::data::listener;
use crate::data::tls::{self, TlsError};
use crate::data::upstream::TlsConnector;
use crate::model::health::{Reason, State as Health, Tracker};
use crate::model::metrics::inc;
use crate::model::rules::{RuleTable, name_hash};
use crate::model::shared::Shared;
use crate::model::snapshot::{ListenerId, ListenerRt, Snapshot};
use crate::model::target::{Target, TargetOrigin};
use crate::model::target_group::{GroupRt, GroupState};

/// How often idle upstream connections are checked and expired.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Where the configuration comes from (and is re-read from on reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded default (`hostalb run` without `--config`).
    Embedded,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        self.load_with(&cfg::Overlay::default())
    }

    /// Loads with the target groups and rules container labels add.
    pub fn load_with(&self, overlay: &cfg::Overlay) -> Result<Loaded, ConfigError> {
        self.load_with_api(overlay, None)
    }

    /// Loads with the label overlay and the resources the AWS API made (`api`, a document
    /// with `listener` and `target_group`), merged before validation.
    pub fn load_with_api(
        &self,
        overlay: &cfg::Overlay,
        api: Option<&serde_json::Value>,
    ) -> Result<Loaded, ConfigError> {
        match self {
            ConfigSource::File(path) => cfg::load_with_api(path, overlay, api),
            ConfigSource::Embedded => cfg::embedded_default_with_api(overlay, api),
        }
    }
}

/// What discovery reports, shown by `GET /api/discovery`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiscoveryReport {
    pub enabled: bool,
    pub endpoint: String,
    pub connected: bool,
    pub containers: usize,
    pub last_error: Option<String>,
    pub syncs: u64,
    pub connects: u64,
    pub events: u64,
    /// Selected containers that could not be registered, and why.
    pub not_registered: Vec<NotRegistered>,
    /// Container labels that are not understood, conflict, are invalid or do not apply:
    /// one entry per container and label, with what hostalb does meanwhile and the fix.
    pub label_problems: Vec<LabelProblem>,
    /// Target groups container labels declare (hostalb without a configuration file).
    pub label_groups: Vec<LabelGroupReport>,
}

impl DiscoveryReport {
    /// The report as of `now`: the time left before each empty label group goes.
    pub fn at(&self, now: std::time::Instant) -> DiscoveryReport {
        let mut r = self.clone();
        for g in &mut r.label_groups {
            g.removed_in_seconds = g
                .removal
                .map(|at| at.saturating_duration_since(now).as_secs_f64());
        }
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NotRegistered {
    pub container_id: String,
    pub container_name: String,
    pub target_group: String,
    pub reason: String,
    /// The label to fix, when a label is the cause.
    pub label: Option<String>,
}

/// One label of one container that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelProblem {
    pub container_id: String,
    pub container_name: String,
    pub target_group: Option<String>,
    /// The label to fix, as the container spells it.
    pub label: String,
    /// Its value; `None` when the problem is a label the container does not set.
    pub value: Option<String>,
    /// `error`: the label is not in effect; `warning`: it is, with a caveat.
    pub severity: String,
    /// An ALB limit (ALB would refuse the value; hostalb serves it).
    pub alb_limit: bool,
    pub problem: String,
    /// What hostalb does about it.
    pub effect: String,
    pub fix: String,
}

/// A target group declared by container labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelGroupReport {
    pub target_group: String,
    /// The container whose labels define it (the oldest that sets any).
    pub defined_by: String,
    /// Containers that declare it now, oldest first.
    pub containers: Vec<String>,
    /// Its rule's priority; `None`: it has no rule.
    pub priority: Option<u32>,
    /// While no container declares it: seconds until it is removed (its rule answers
    /// 503 meanwhile).
    pub removed_in_seconds: Option<f64>,
    /// When it is removed (no container declares it).
    #[serde(skip)]
    pub removal: Option<std::time::Instant>,
}

/// One registration of a target in a target group (from Docker discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub address: SocketAddr,
    pub origin: TargetOrigin,
    /// The container's Docker HEALTHCHECK reports unhealthy (used by target groups with
    /// `use_docker_health = true`, as an extra signal next to hostalb's own checks).
    pub docker_unhealthy: bool,
}

/// What the control plane did, for whoever prints or records it.
#[derive(Debug, Clone)]
pub enum Event {
    ListenerBound { name: String, address: SocketAddr },
    ListenerClosed { name: String, address: SocketAddr },
    Reloaded { generation: u64, warnings: Vec<Problem> },
    ReloadFailed { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("listener `{name}`: cannot listen on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: io::Error,
    },
    #[error("listener `{name}`: {source}")]
    Tls { name: String, source: TlsError },
    #[error("admin API: cannot listen on {address}: {source}")]
    Admin { address: SocketAddr, source: io::Error },
    #[error("access_log.path: cannot open {path}: {source} (create its directory, or fix the path)")]
    AccessLog { path: String, source: io::Error },
}

/// A running hostalb: listeners, admin API and control plane. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// Serialises changes: one reload or registration update at a time.
    state: Mutex<State>,
    /// Serialises whole configuration changes (a reload, an AWS API change): each reads
    /// the file and the API's resources, validates, then applies, and no other change
    /// may start between its read and its apply, or a reload that read the API's old
    /// resources would undo an API change just answered, and an API change that then
    /// fails would have been served by a reload that read it. An async mutex: it is held
    /// across the apply's await; `state` is only ever taken inside it, never around it.
    changes: Mutex<()>,
    source: ConfigSource,
    admin: SocketAddr,
    events: broadcast::Sender<Event>,
    /// Target groups and rules from container labels, merged on every (re)load.
    overlay: std::sync::Mutex<cfg::Overlay>,
    pub(crate) discovery: std::sync::Mutex<DiscoveryReport>,
    /// The resources the AWS API made, merged into every (re)load (the API serialises its
    /// own changes).
    api: std::sync::Mutex<Option<Arc<serde_json::Value>>>,
    /// What answers `POST /` of the admin address (the AWS APIs), installed by the binary.
    pub(crate) aws_api: std::sync::OnceLock<Arc<dyn crate::admin::AwsApi>>,
}

#[derive(Debug)]
struct State {
    config: Arc<cfg::Config>,
    listeners: BTreeMap<String, Bound>,
    /// Listeners compiled for `config` (rebuilt only when the configuration changes).
    compiled: Box<[Arc<ListenerRt>]>,
    groups: HashMap<String, GroupEntry>,
    /// Targets of target groups that a reload removed, still draining.
    orphans: Vec<Draining>,
    /// Registrations from discovery, by target group name.
    discovered: BTreeMap<String, Vec<Registration>>,
    /// Registrations made through the AWS API (RegisterTargets), by target group name.
    api_registered: BTreeMap<String, Vec<Registration>>,
    next_listener_id: ListenerId,
    generation: u64,
    /// Health checkers report state changes here; the control loop republishes.
    events: mpsc::UnboundedSender<ControlEvent>,
    /// TLS for HTTPS health checks.
    tls: Option<TlsConnector>,
    /// The running access log (kept across reloads that do not change it).
    access_log: Option<Arc<AccessLog>>,
}

/// What wakes the control loop.
#[derive(Debug)]
enum ControlEvent {
    /// A target's health state changed.
    Health {
        group: Arc<str>,
        addr: SocketAddr,
        to: Health,
    },
    /// Draining targets were added: recompute the next deadline.
    Draining,
}

#[derive(Debug)]
struct Bound {
    id: ListenerId,
    configured: SocketAddr,
    local: SocketAddr,
    tls: Option<tls::Acceptor>,
    /// Stops the accept loop (the socket closes; accepted connections carry on).
    stop: watch::Sender<bool>,
}

/// A target group's lasting state: counters, its targets by address, the targets still
/// draining, and the health-check settings its checkers run with.
#[derive(Debug)]
struct GroupEntry {
    state: Arc<GroupState>,
    targets: BTreeMap<SocketAddr, Registered>,
    draining: Vec<Draining>,
    checks: Option<cfg::HealthCheck>,
}

/// A registered target and its health checker (stopped when this is dropped).
#[derive(Debug)]
struct Registered {
    target: Arc<Target>,
    checker: Option<Checker>,
}

/// A deregistered target finishing its in-flight requests until `until`, then cut.
#[derive(Debug)]
struct Draining {
    target: Arc<Target>,
    until: Instant,
}

/// A running health-check task; aborted on drop.
#[derive(Debug)]
struct Checker(tokio::task::JoinHandle<()>);

impl Drop for Checker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sockets to start accepting on, and listeners to stop, after a rebind.
type Rebound = (Vec<Pending>, Vec<(String, Bound)>);

/// A socket bound during a change, whose accept loop starts once the snapshot that
/// knows its listener is published.
struct Pending {
    id: ListenerId,
    socket: TcpListener,
    stop: watch::Receiver<bool>,
}

impl Proxy {
    /// Binds every listener and the admin socket and starts serving `loaded`; the caller
    /// serves the admin API on the returned socket ([`Proxy::start`] in the crate root).
    pub(crate) async fn launch(
        loaded: Loaded,
        source: ConfigSource,
    ) -> Result<(Proxy, TcpListener), ControlError> {
        log_warnings(&loaded.warnings);
        let config = Arc::new(loaded.config);
        let admin_address = config.admin.address;
        let admin_socket = listener::bind(admin_address).map_err(|source| ControlError::Admin {
            address: admin_address,
            source,
        })?;
        let admin = admin_socket.local_addr().unwrap_or(admin_address);
        let (events, events_rx) = mpsc::unbounded_channel();
        let mut state = State {
            config: config.clone(),
            listeners: BTreeMap::new(),
            compiled: Box::new([]),
            groups: HashMap::new(),
            orphans: Vec::new(),
            discovered: BTreeMap::new(),
            api_registered: BTreeMap::new(),
            next_listener_id: 1,
            generation: 0,
            events,
            tls: TlsConnector::new()
                .map_err(|e| tracing::warn!(error = %e, "no TLS for HTTPS health checks"))
                .ok(),
            access_log: None,
        };
        state.access_log = state.access_log_for(&config)?;
        let (pending, closing) = state.rebind(&config)?;
        debug_assert!(closing.is_empty());
        state.sync_groups();
        state.compile_listeners();
        let snapshot = state.build_snapshot();
        // The client connection budget, derived from the descriptor limit now unless the
        // configuration sets it; a reload may set it anew.
        let budget = Budget::new(config.max_client_connections);
        let shared = Shared::new(snapshot, budget);
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            shared,
            state: Mutex::new(state),
            changes: Mutex::new(()),
            source,
            admin,
            events,
            overlay: std::sync::Mutex::new(cfg::Overlay::default()),
            discovery: std::sync::Mutex::new(DiscoveryReport::default()),
            api: std::sync::Mutex::new(None),
            aws_api: std::sync::OnceLock::new(),
        });
        let proxy = Proxy { inner };
        proxy.start_accepting(pending);
        tokio::spawn(sweep_pools(Arc::downgrade(&proxy.inner)));
        tokio::spawn(control_loop(Arc::downgrade(&proxy.inner), events_rx));
        tokio::spawn(crate::clock::tick());
        Ok((proxy, admin_socket))
    }

    fn start_accepting(&self, pending: Vec<Pending>) {
        for p in pending {
            tokio::spawn(listener::accept_loop(
                self.inner.shared.clone(),
                p.id,
                p.socket,
                p.stop,
            ));
        }
    }

    /// The listeners being served, with the addresses actually bound.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let snap = self.inner.shared.snapshot.load();
        snap.listeners
            .iter()
            .map(|l| (l.cfg.name.clone(), l.bound))
            .collect()
    }

    /// Opens the access log file again before its next entry (SIGUSR1, after logrotate
    /// moved it away).
    pub fn reopen_logs(&self) {
        if let Some(log) = &self.inner.shared.snapshot.load().access_log {
            log.reopen();
        }
    }

    pub fn admin_address(&self) -> SocketAddr {
        self.inner.admin
    }

    pub fn config_source(&self) -> &ConfigSource {
        &self.inner.source
    }

    /// Control-plane events (listeners bound, reloads).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Re-reads the configuration source and applies it. A configuration with errors is
    /// logged with every problem and counted; the running one keeps serving.
    pub async fn reload(&self) -> Result<u64, ControlError> {
        let _changing = self.inner.changes.lock().await;
        let overlay = self.inner.overlay.lock().map(|o| o.clone()).unwrap_or_default();
        let api = self.inner.api.lock().ok().and_then(|a| a.clone());
        let result = match self.inner.source.load_with_api(&overlay, api.as_deref()) {
            Ok(loaded) => self.apply_changing(loaded).await,
            Err(e) => Err(ControlError::from(e)),
        };
        if let Err(e) = &result {
            inc(&self.inner.shared.metrics.reload_failures);
            tracing::error!("reload failed, the running configuration keeps serving:\n{e}");
            let _ = self.inner.events.send(Event::ReloadFailed {
                message: e.to_string(),
            });
        }
        result
    }

    /// Applies a validated configuration: binds new listeners, publishes the new
    /// snapshot, then stops listeners that are gone. Returns the new generation.
    pub async fn apply(&self, loaded: Loaded) -> Result<u64, ControlError> {
        let _changing = self.inner.changes.lock().await;
        self.apply_changing(loaded).await
    }

    /// [`Proxy::apply`] for a caller that holds `changes`.
    async fn apply_changing(&self, loaded: Loaded) -> Result<u64, ControlError> {
        let mut state = self.inner.state.lock().await;
        let config = Arc::new(loaded.config);
        let access_log = state.access_log_for(&config)?;
        let (pending, closing) = state.rebind(&config)?;
        state.access_log = access_log;
        self.inner.shared.budget.configure(config.max_client_connections);
        state.config = config;
        state.sync_groups();
        state.compile_listeners();
        let snapshot = state.build_snapshot();
        let generation = snapshot.generation;
        self.inner.shared.snapshot.store(Arc::new(snapshot));
        for (name, bound) in closing {
            let _ = bound.stop.send(true);
            let _ = self.inner.events.send(Event::ListenerClosed {
                name,
                address: bound.local,
            });
        }
        for p in &pending {
            if let Some((name, b)) = state.listeners.iter().find(|(_, b)| b.id == p.id) {
                let _ = self.inner.events.send(Event::ListenerBound {
                    name: name.clone(),
                    address: b.local,
                });
            }
        }
        drop(state);
        self.start_accepting(pending);
        inc(&self.inner.shared.metrics.reloads);
        log_warnings(&loaded.warnings);
        tracing::info!(generation, "configuration applied");
        let _ = self.inner.events.send(Event::Reloaded {
            generation,
            warnings: loaded.warnings,
        });
        Ok(generation)
    }

    /// Serves the configuration source with `api` (the AWS API's resources) merged in,
    /// validated and applied as a reload is; on success `api` is kept for later reloads.
    /// On any problem nothing changes and the error lists the problems.
    pub async fn apply_api(&self, api: serde_json::Value) -> Result<u64, ControlError> {
        let _changing = self.inner.changes.lock().await;
        let overlay = self.inner.overlay.lock().map(|o| o.clone()).unwrap_or_default();
        let loaded = self.inner.source.load_with_api(&overlay, Some(&api))?;
        let api = Arc::new(api);
        let previous = self
            .inner
            .api
            .lock()
            .ok()
            .and_then(|mut a| a.replace(api.clone()));
        match self.apply_changing(loaded).await {
            Ok(generation) => Ok(generation),
            Err(e) => {
                if let Ok(mut a) = self.inner.api.lock() {
                    *a = previous;
                }
                Err(e)
            }
        }
    }

    /// Replaces the registrations made through the AWS API (RegisterTargets), all groups
    /// at once; they add to the configured and discovered targets.
    pub async fn set_api_registrations(&self, registrations: BTreeMap<String, Vec<Registration>>) {
        let mut state = self.inner.state.lock().await;
        if state.api_registered == registrations {
            return;
        }
        state.api_registered = registrations;
        state.sync_groups();
        let snapshot = state.build_snapshot();
        self.inner.shared.snapshot.store(Arc::new(snapshot));
    }

    /// Installs what answers `POST /` of the admin address; only the first call counts.
    pub fn install_aws_api(&self, api: Arc<dyn crate::admin::AwsApi>) {
        let _ = self.inner.aws_api.set(api);
    }

    /// Replaces the registrations discovery found (all target groups at once; latest
    /// wins). Groups not named keep only their static targets.
    pub async fn set_registrations(&self, registrations: BTreeMap<String, Vec<Registration>>) {
        let mut state = self.inner.state.lock().await;
        if state.discovered == registrations {
            return;
        }
        state.discovered = registrations;
        state.sync_groups();
        let snapshot = state.build_snapshot();
        self.inner.shared.snapshot.store(Arc::new(snapshot));
    }

    /// Records the overlay the running configuration was loaded with (the command line's
    /// addresses), so that reloads keep it; no reload.
    pub fn record_overlay(&self, overlay: cfg::Overlay) {
        if let Ok(mut current) = self.inner.overlay.lock() {
            *current = overlay;
        }
    }

    /// Sets what is added to the configuration (the command line's addresses, the target
    /// groups and rules container labels declare), and reloads when it changed.
    pub async fn set_overlay(&self, overlay: cfg::Overlay) -> Result<(), ControlError> {
        {
            let Ok(mut current) = self.inner.overlay.lock() else {
                return Ok(());
            };
            if *current == overlay {
                return Ok(());
            }
            *current = overlay;
        }
        self.reload().await.map(|_| ())
    }

    /// The configuration being served.
    pub fn config(&self) -> Arc<cfg::Config> {
        self.inner.shared.snapshot.load().config.clone()
    }

    /// Records what discovery reports (for the admin API).
    pub fn set_discovery_report(&self, report: DiscoveryReport) {
        if let Ok(mut r) = self.inner.discovery.lock() {
            *r = report;
        }
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (answered with
    /// `Connection: close`), close idle keep-alive connections, and wait at most `grace`.
    /// Returns whether every connection finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        {
            let state = self.inner.state.lock().await;
            for bound in state.listeners.values() {
                let _ = bound.stop.send(true);
            }
        }
        self.inner.shared.start_draining();
        tokio::time::timeout(grace, self.inner.shared.all_connections_closed())
            .await
            .is_ok()
    }

    /// Client connections currently open.
    pub fn open_connections(&self) -> usize {
        self.inner.shared.open_connections()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

impl State {
    /// Binds what `config` adds and updates TLS acceptors; returns the sockets to start
    /// accepting on and the listeners to stop. Nothing changes if any bind fails.
    /// The access log `config` asks for: the running one when its settings are the same,
    /// else a new one (opened now, so a path that cannot be written fails the load).
    fn access_log_for(&self, config: &cfg::Config) -> Result<Option<Arc<AccessLog>>, ControlError> {
        let Some(wanted) = &config.access_log else {
            return Ok(None);
        };
        if let Some(running) = self.access_log.as_ref().filter(|l| l.config() == wanted) {
            return Ok(Some(running.clone()));
        }
        AccessLog::open(wanted)
            .map(Some)
            .map_err(|source| ControlError::AccessLog {
                path: wanted
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "standard output".into()),
                source,
            })
    }

    fn rebind(&mut self, config: &cfg::Config) -> Result<Rebound, ControlError> {
        let mut acceptors = HashMap::new();
        for l in &config.listeners {
            if l.protocol == cfg::ListenerProtocol::Https {
                let acceptor = tls::acceptor(l).map_err(|source| ControlError::Tls {
                    name: l.name.clone(),
                    source,
                })?;
                acceptors.insert(l.name.clone(), acceptor);
            }
        }
        let mut fresh: Vec<(String, Bound, Pending)> = Vec::new();
        for l in &config.listeners {
            let keep = self
                .listeners
                .get(&l.name)
                .is_some_and(|b| b.configured == l.address);
            if keep {
                continue;
            }
            let socket = listener::bind(l.address).map_err(|source| ControlError::Bind {
                name: l.name.clone(),
                address: l.address,
                source,
            })?;
            let local = socket.local_addr().unwrap_or(l.address);
            let id = match self.listeners.get(&l.name) {
                Some(old) => old.id,
                None => {
                    self.next_listener_id += 1;
                    self.next_listener_id
                }
            };
            let (stop, stop_rx) = watch::channel(false);
            fresh.push((
                l.name.clone(),
                Bound {
                    id,
                    configured: l.address,
                    local,
                    tls: None,
                    stop,
                },
                Pending {
                    id,
                    socket,
                    stop: stop_rx,
                },
            ));
        }
        // Every bind succeeded: commit.
        let mut closing = Vec::new();
        let wanted: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        let gone: Vec<String> = self
            .listeners
            .keys()
            .filter(|n| !wanted.contains(&n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(b) = self.listeners.remove(&name) {
                closing.push((name, b));
            }
        }
        let mut pending = Vec::new();
        for (name, bound, p) in fresh {
            if let Some(old) = self.listeners.insert(name.clone(), bound) {
                closing.push((name, old));
            }
            pending.push(p);
        }
        for (name, bound) in self.listeners.iter_mut() {
            bound.tls = acceptors.remove(name);
        }
        Ok((pending, closing))
    }

    /// Reconciles every target group with the configuration and the registrations:
    /// targets that stay keep their state; new ones start `initial` with a checker; gone
    /// ones start draining for the group's deregistration delay.
    fn sync_groups(&mut self) {
        let config = self.config.clone();
        let now = Instant::now();
        let mut kept: HashMap<String, GroupEntry> = HashMap::new();
        let mut woke = false;
        for tg in &config.target_groups {
            let mut entry = self.groups.remove(&tg.name).unwrap_or_else(|| GroupEntry {
                state: GroupState::new(&tg.name),
                targets: BTreeMap::new(),
                draining: Vec::new(),
                checks: None,
            });
            // Health checks run for groups that receive traffic; ALB reports the targets
            // of a group no rule forwards to as `unused` and does not check them.
            let checks = (tg.health_check.enabled && config.target_group_in_use(&tg.name))
                .then(|| tg.health_check.clone());
            let restart_checkers = checks != entry.checks;
            let mut wanted: Vec<Registration> = tg
                .targets
                .iter()
                .map(|a| Registration {
                    address: *a,
                    origin: TargetOrigin::default(),
                    docker_unhealthy: false,
                })
                .collect();
            let api = self.api_registered.get(&tg.name).into_iter().flatten();
            for r in self.discovered.get(&tg.name).into_iter().flatten().chain(api) {
                if !wanted.iter().any(|w| w.address == r.address) {
                    wanted.push(r.clone());
                }
            }
            // Whether the group already serves from a healthy, fully ramped target: only
            // targets registered now, into such a group, start slowly.
            let serving = entry.targets.values().any(|o| {
                o.target.health_state() == Health::Healthy && !o.target.in_slow_start(tg.slow_start)
            });
            let mut targets = BTreeMap::new();
            for r in wanted {
                let mut reg = match entry.targets.remove(&r.address) {
                    Some(reg) if reg.target.origin == r.origin => reg,
                    other => {
                        if let Some(old) = other {
                            self.drain(&tg.name, &mut entry.draining, old, tg.deregistration_delay, now);
                        }
                        // A target registered again while draining starts over as new.
                        let revived = entry.draining.iter().position(|d| {
                            d.target.addr == r.address && d.target.origin == r.origin && !d.target.is_cut()
                        });
                        let target = match revived {
                            Some(i) => {
                                let d = entry.draining.swap_remove(i);
                                if let Ok(mut t) = d.target.health.lock() {
                                    *t = Tracker::default();
                                }
                                d.target
                                    .admitted
                                    .store(false, std::sync::atomic::Ordering::Relaxed);
                                d.target
                            }
                            None => Target::new(r.address, r.origin.clone()),
                        };
                        tracing::info!(
                            target_group = %tg.name,
                            target = %r.address,
                            container = %container_of(&r.origin),
                            "target registered"
                        );
                        target
                            .slow_start_eligible
                            .store(serving, std::sync::atomic::Ordering::Relaxed);
                        Registered {
                            target,
                            checker: None,
                        }
                    }
                };
                reg.target.docker_unhealthy.store(
                    r.docker_unhealthy && tg.use_docker_health,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if restart_checkers || reg.checker.is_none() {
                    reg.checker = checks
                        .as_ref()
                        .map(|hc| self.spawn_checker(&entry.state.name, &reg.target, hc));
                }
                targets.insert(r.address, reg);
            }
            for (_, gone) in std::mem::take(&mut entry.targets) {
                self.drain(&tg.name, &mut entry.draining, gone, tg.deregistration_delay, now);
                woke = true;
            }
            entry.targets = targets;
            entry.checks = checks;
            kept.insert(tg.name.clone(), entry);
        }
        // Target groups a reload removed: their targets drain with the group's delay.
        for (name, removed) in self.groups.drain() {
            let delay = config
                .target_group(&name)
                .map(|t| t.deregistration_delay)
                .unwrap_or(cfg::defaults::DEREGISTRATION_DELAY);
            let mut orphans = removed.draining;
            for (_, reg) in removed.targets {
                tracing::info!(
                    target_group = %name,
                    target = %reg.target.addr,
                    container = %container_of(&reg.target.origin),
                    drain_seconds = delay.as_secs_f64(),
                    "target group removed: target deregistered, draining"
                );
                mark_draining(&reg.target);
                reg.target.pool.clear();
                orphans.push(Draining {
                    target: reg.target,
                    until: now + delay,
                });
            }
            self.orphans.extend(orphans);
            woke = true;
        }
        self.groups = kept;
        if woke {
            let _ = self.events.send(ControlEvent::Draining);
        }
    }

    /// Moves a registration to draining: no new requests, idle connections closed, the
    /// requests in flight finish until `delay` has passed.
    fn drain(
        &self,
        group: &str,
        draining: &mut Vec<Draining>,
        reg: Registered,
        delay: Duration,
        now: Instant,
    ) {
        tracing::info!(
            target_group = %group,
            target = %reg.target.addr,
            container = %container_of(&reg.target.origin),
            drain_seconds = delay.as_secs_f64(),
            "target deregistered, draining"
        );
        drop(reg.checker);
        mark_draining(&reg.target);
        reg.target.pool.clear();
        reg.target.end_slow_start();
        if delay.is_zero() {
            reg.target.cut();
            return;
        }
        draining.push(Draining {
            target: reg.target,
            until: now + delay,
        });
    }

    fn spawn_checker(&self, group: &Arc<str>, target: &Arc<Target>, hc: &cfg::HealthCheck) -> Checker {
        let task = run_checker(
            group.clone(),
            target.clone(),
            hc.clone(),
            self.tls.clone(),
            self.events.clone(),
        );
        Checker(tokio::spawn(task))
    }

    /// Cuts draining targets whose delay has run out; returns the next deadline.
    fn expire_draining(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut sweep = |list: &mut Vec<Draining>| {
            list.retain(|d| {
                if d.until <= now {
                    d.target.cut();
                    false
                } else {
                    next = Some(next.map_or(d.until, |n| n.min(d.until)));
                    true
                }
            });
        };
        for entry in self.groups.values_mut() {
            sweep(&mut entry.draining);
        }
        sweep(&mut self.orphans);
        next
    }

    /// Compiles every listener's rules against the current target group order.
    fn compile_listeners(&mut self) {
        let config = self.config.clone();
        let index = |name: &str| config.target_groups.iter().position(|g| g.name == name);
        self.compiled = config
            .listeners
            .iter()
            .filter_map(|l| {
                let bound = self.listeners.get(&l.name)?;
                Some(Arc::new(ListenerRt {
                    id: bound.id,
                    cfg: l.clone(),
                    table: RuleTable::compile(l, &index),
                    bound: bound.local,
                    tls: bound.tls.clone(),
                }))
            })
            .collect();
    }

    /// Builds the snapshot: compiled listeners and, per group, the targets that take new
    /// requests. Healthy targets only; when none is healthy, every registered one (ALB
    /// fails open). With health checks disabled every registered target is routable.
    fn build_snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        let config = self.config.clone();
        let mut groups = Vec::with_capacity(config.target_groups.len());
        for tg in &config.target_groups {
            let Some(entry) = self.groups.get(&tg.name) else {
                continue;
            };
            let registered: Box<[Arc<Target>]> = entry.targets.values().map(|r| r.target.clone()).collect();
            let (routable, fail_open) = if entry.checks.is_none() {
                (registered.clone(), false)
            } else {
                let healthy: Box<[Arc<Target>]> = registered
                    .iter()
                    .filter(|t| {
                        t.health_state() == Health::Healthy
                            && !t.docker_unhealthy.load(std::sync::atomic::Ordering::Relaxed)
                    })
                    .cloned()
                    .collect();
                if healthy.is_empty() {
                    (registered.clone(), !registered.is_empty())
                } else {
                    (healthy, false)
                }
            };
            groups.push(Arc::new(GroupRt {
                cfg: Arc::new(tg.clone()),
                state: entry.state.clone(),
                routable,
                registered,
                fail_open,
                draining: entry.draining.iter().map(|d| d.target.clone()).collect(),
                in_use: config.target_group_in_use(&tg.name),
                name_hash: name_hash(&tg.name),
            }));
        }
        Snapshot {
            generation: self.generation,
            config,
            listeners: self.compiled.clone(),
            groups: groups.into_boxed_slice(),
            access_log: self.access_log.clone(),
        }
    }

    /// A target became healthy or left healthy: slow start begins when it joins other
    /// healthy targets that are past their own slow start (never for the first targets of
    /// an empty group, never with least outstanding requests), and ends when it fails.
    fn on_health_change(&mut self, group: &str, addr: SocketAddr, to: Health) {
        let Some(entry) = self.groups.get(group) else {
            return;
        };
        let Some(reg) = entry.targets.get(&addr) else {
            return;
        };
        let Some(tg) = self.config.target_group(group) else {
            return;
        };
        if to != Health::Healthy
            || tg.slow_start.is_zero()
            || tg.algorithm == cfg::Algorithm::LeastOutstandingRequests
        {
            reg.target.end_slow_start();
            return;
        }
        let first_admission = !reg
            .target
            .admitted
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        let ramp = if first_admission {
            // Decided at registration: the first batch into an empty group does not
            // ramp, whatever order their first passes are handled in.
            reg.target
                .slow_start_eligible
                .load(std::sync::atomic::Ordering::Relaxed)
        } else {
            // Back from unhealthy: ramps again when others are serving.
            entry.targets.values().any(|o| {
                o.target.addr != addr
                    && o.target.health_state() == Health::Healthy
                    && !o.target.in_slow_start(tg.slow_start)
            })
        };
        if ramp {
            reg.target.start_slow_start();
        } else {
            reg.target.end_slow_start();
        }
    }
}

fn mark_draining(target: &Target) {
    if let Ok(mut t) = target.health.lock() {
        t.state = Health::Draining;
        t.reason = Some(Reason::DeregistrationInProgress);
    }
}

/// Probes one target for as long as it is registered: at once, then after a random
/// phase, then every interval (measured from probe start, whatever the response time).
async fn run_checker(
    group: Arc<str>,
    target: Arc<Target>,
    hc: cfg::HealthCheck,
    tls: Option<TlsConnector>,
    events: mpsc::UnboundedSender<ControlEvent>,
) {
    if let Ok(mut t) = target.health.lock() {
        t.checking();
    }
    let probe_addr = health::probe_address(target.addr, &hc);
    let mut next = Instant::now();
    let mut first = true;
    loop {
        let started = Instant::now();
        let outcome = health::probe(probe_addr, &hc, tls.as_ref()).await;
        let change = target.health.lock().ok().and_then(|mut t| {
            let before = t.state;
            t.record(&outcome, hc.healthy_threshold, hc.unhealthy_threshold)
                .then(|| (before, t.state, t.reason.clone()))
        });
        if let Some((from, to, reason)) = change {
            tracing::info!(
                target_group = %group,
                target = %target.addr,
                container = %container_of(&target.origin),
                from = from.as_str(),
                to = to.as_str(),
                reason = reason.as_ref().map(Reason::code).unwrap_or("-"),
                description = %reason.as_ref().map(Reason::description).unwrap_or_default(),
                "target health changed"
            );
            if events
                .send(ControlEvent::Health {
                    group: group.clone(),
                    addr: target.addr,
                    to,
                })
                .is_err()
            {
                return;
            }
        }
        next = if first {
            started + health::phase(hc.interval)
        } else {
            next.max(started) + hc.interval
        };
        first = false;
        tokio::time::sleep_until(next).await;
    }
}

/// Applies what checkers and timers report: republishes the snapshot when a target's
/// health changed, and cuts draining targets whose delay ran out.
async fn control_loop(inner: std::sync::Weak<Inner>, mut events: mpsc::UnboundedReceiver<ControlEvent>) {
    let mut deadline: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            e = events.recv() => match e {
                Some(e) => Some(e),
                None => return,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))) => None,
        };
        let Some(inner) = inner.upgrade() else { return };
        let mut state = inner.state.lock().await;
        if let Some(ControlEvent::Health { group, addr, to }) = &event {
            state.on_health_change(group, *addr, *to);
        }
        // Coalesce a burst of changes into one snapshot.
        while let Ok(more) = events.try_recv() {
            if let ControlEvent::Health { group, addr, to } = &more {
                state.on_health_change(group, *addr, *to);
            }
        }
        deadline = state.expire_draining(Instant::now());
        let snapshot = state.build_snapshot();
        inner.shared.snapshot.store(Arc::new(snapshot));
    }
}

/// One line per warning (log shippers read a line as an event): where, what, and the fix.
fn log_warnings(warnings: &[Problem]) {
    for w in warnings {
        let kind = if w.alb_limit { "ALB limit" } else { "warning" };
        tracing::warn!(path = %w.path, fix = %w.fix, kind, "{}", w.message);
    }
}

/// Expires idle upstream connections every few seconds, until the proxy is gone.
async fn sweep_pools(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(POOL_SWEEP_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        let snap = inner.shared.snapshot.load_full();
        let max_idle = snap
            .listeners
            .iter()
            .map(|l| l.cfg.idle_timeout)
            .max()
            .unwrap_or(hostalb_config::defaults::IDLE_TIMEOUT);
        for g in snap.groups.iter() {
            for t in g.registered.iter() {
                t.pool.sweep(max_idle);
            }
        }
    }
}

/// The container behind a target, for operators' logs: its name, else its short id, else
/// `-` (a static registration).
fn container_of(origin: &TargetOrigin) -> String {
    match (&origin.container_name, &origin.container_id) {
        (Some(name), _) => name.trim_start_matches('/').to_owned(),
        (None, Some(id)) => id.chars().take(12).collect(),
        (None, None) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404 }
"#;

    /// The API's resources of change `n`: one target group named after it.
    fn api_doc(n: usize) -> serde_json::Value {
        serde_json::json!({ "target_group": { format!("api{n}"): { "targets": ["127.0.0.1:9"] } } })
    }

    fn served_groups(proxy: &Proxy) -> Vec<String> {
        proxy
            .config()
            .target_groups
            .iter()
            .map(|g| g.name.clone())
            .collect()
    }

    /// A reload racing with an API change never undoes it: whichever runs second reads
    /// what the first applied. Without `changes`, a reload that read the API's previous
    /// resources before the change and applied after it served the file without them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reloads_and_api_changes_are_serialised() {
        const ROUNDS: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostalb.toml");
        std::fs::write(&path, FILE).unwrap();
        let loaded = cfg::load(&path).unwrap();
        let proxy = Proxy::start(loaded, ConfigSource::File(path)).await.unwrap();
        for n in 0..ROUNDS {
            // Tasks of their own, so that they run at once on both threads.
            let (p1, p2, p3) = (proxy.clone(), proxy.clone(), proxy.clone());
            let a = tokio::spawn(async move { p1.reload().await });
            let b = tokio::spawn(async move { p2.apply_api(api_doc(n)).await });
            let c = tokio::spawn(async move { p3.reload().await });
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            c.await.unwrap().unwrap();
            assert_eq!(served_groups(&proxy), [format!("api{n}")], "round {n}");
        }
        // A change that fails leaves nothing behind for the next reload.
        let bad = serde_json::json!({ "target_group": { "bad": { "targets": ["not an address"] } } });
        let p1 = proxy.clone();
        let a = tokio::spawn(async move { p1.apply_api(bad).await });
        proxy.reload().await.unwrap();
        assert!(a.await.unwrap().is_err());
        proxy.reload().await.unwrap();
        assert_eq!(served_groups(&proxy), [format!("api{}", ROUNDS - 1)]);
        proxy.shutdown(Duration::from_millis(100)).await;
    }
}
