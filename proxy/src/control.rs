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
use tokio::sync::{Mutex, broadcast, watch};

use crate::listener;
use crate::metrics::inc;
use crate::rules::RuleTable;
use crate::shared::Shared;
use crate::snapshot::{ListenerId, ListenerRt, Snapshot};
use crate::target::{Target, TargetOrigin};
use crate::target_group::{GroupRt, GroupState};
use crate::tls::{self, TlsError};

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
        match self {
            ConfigSource::File(path) => cfg::load(path),
            ConfigSource::Embedded => cfg::embedded_default(),
        }
    }
}

/// One registration of a target in a target group (from Docker discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub address: SocketAddr,
    pub origin: TargetOrigin,
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
    source: ConfigSource,
    admin: SocketAddr,
    events: broadcast::Sender<Event>,
}

#[derive(Debug)]
struct State {
    config: Arc<cfg::Config>,
    listeners: BTreeMap<String, Bound>,
    groups: HashMap<String, GroupEntry>,
    /// Registrations from discovery, by target group name.
    discovered: BTreeMap<String, Vec<Registration>>,
    next_listener_id: ListenerId,
    generation: u64,
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

/// A target group's lasting state: counters and its targets by address.
#[derive(Debug)]
struct GroupEntry {
    state: Arc<GroupState>,
    targets: BTreeMap<SocketAddr, Arc<Target>>,
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
    /// Binds every listener and the admin API and starts serving `loaded`.
    pub async fn start(loaded: Loaded, source: ConfigSource) -> Result<Proxy, ControlError> {
        log_warnings(&loaded.warnings);
        let config = Arc::new(loaded.config);
        let admin_address = config.admin.address;
        let admin_socket = listener::bind(admin_address).map_err(|source| ControlError::Admin {
            address: admin_address,
            source,
        })?;
        let admin = admin_socket.local_addr().unwrap_or(admin_address);
        let mut state = State {
            config: config.clone(),
            listeners: BTreeMap::new(),
            groups: HashMap::new(),
            discovered: BTreeMap::new(),
            next_listener_id: 1,
            generation: 0,
        };
        let (pending, closing) = state.rebind(&config)?;
        debug_assert!(closing.is_empty());
        let snapshot = state.build_snapshot();
        let shared = Shared::new(snapshot);
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            shared,
            state: Mutex::new(state),
            source,
            admin,
            events,
        });
        let proxy = Proxy { inner };
        proxy.start_accepting(pending);
        tokio::spawn(crate::admin::serve(proxy.clone(), admin_socket));
        tokio::spawn(sweep_pools(Arc::downgrade(&proxy.inner)));
        Ok(proxy)
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
        let result = match self.inner.source.load() {
            Ok(loaded) => self.apply(loaded).await,
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
        let mut state = self.inner.state.lock().await;
        let config = Arc::new(loaded.config);
        let (pending, closing) = state.rebind(&config)?;
        state.config = config;
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

    /// Replaces the registrations discovery found (all target groups at once; latest
    /// wins). Groups not named keep only their static targets.
    pub async fn set_registrations(&self, registrations: BTreeMap<String, Vec<Registration>>) {
        let mut state = self.inner.state.lock().await;
        if state.discovered == registrations {
            return;
        }
        state.discovered = registrations;
        let snapshot = state.build_snapshot();
        self.inner.shared.snapshot.store(Arc::new(snapshot));
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
    fn rebind(&mut self, config: &cfg::Config) -> Result<Rebound, ControlError> {
        let mut acceptors = HashMap::new();
        for l in &config.listeners {
            if l.protocol == cfg::ListenerProtocol::Https {
                let acceptor = tls::acceptor(&l.certificates).map_err(|source| ControlError::Tls {
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

    /// Builds the snapshot for the current configuration and registrations, reusing the
    /// target state of every target that stays.
    fn build_snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        let config = self.config.clone();
        let mut groups = Vec::with_capacity(config.target_groups.len());
        let mut kept: HashMap<String, GroupEntry> = HashMap::new();
        for tg in &config.target_groups {
            let mut entry = self.groups.remove(&tg.name).unwrap_or_else(|| GroupEntry {
                state: GroupState::new(&tg.name),
                targets: BTreeMap::new(),
            });
            let mut wanted: Vec<Registration> = tg
                .targets
                .iter()
                .map(|a| Registration {
                    address: *a,
                    origin: TargetOrigin::default(),
                })
                .collect();
            if let Some(found) = self.discovered.get(&tg.name) {
                for r in found {
                    if !wanted.iter().any(|w| w.address == r.address) {
                        wanted.push(r.clone());
                    }
                }
            }
            let mut targets = BTreeMap::new();
            for r in wanted {
                let target = match entry.targets.remove(&r.address) {
                    Some(t) if t.origin == r.origin => t,
                    _ => Target::new(r.address, r.origin),
                };
                targets.insert(r.address, target);
            }
            // Targets no longer registered: their idle connections close now; requests in
            // flight on them finish (they hold their own reference).
            for (_, gone) in std::mem::take(&mut entry.targets) {
                gone.pool.clear();
            }
            entry.targets = targets;
            let registered: Box<[Arc<Target>]> = entry.targets.values().cloned().collect();
            groups.push(Arc::new(GroupRt {
                cfg: Arc::new(tg.clone()),
                state: entry.state.clone(),
                routable: registered.clone(),
                registered,
                fail_open: false,
            }));
            kept.insert(tg.name.clone(), entry);
        }
        for (_, removed) in self.groups.drain() {
            for t in removed.targets.values() {
                t.pool.clear();
            }
        }
        self.groups = kept;
        let index = |name: &str| groups.iter().position(|g: &Arc<GroupRt>| g.name() == name);
        let listeners = config
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
        Snapshot {
            generation: self.generation,
            config,
            listeners,
            groups: groups.into_boxed_slice(),
        }
    }
}

fn log_warnings(warnings: &[Problem]) {
    for w in warnings {
        tracing::warn!("{w}");
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
