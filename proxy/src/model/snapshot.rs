//! The one immutable view of everything a request needs: listeners with compiled rules,
//! and target groups with their routable targets. Published through a single `ArcSwap`,
//! so a request never sees rules of one version and targets of another.

use std::net::SocketAddr;
use std::sync::Arc;

use hostalb_config as cfg;

use crate::model::rules::RuleTable;
use crate::model::target_group::GroupRt;

/// A listener's identity across reloads (assigned by name when it is first bound).
pub(crate) type ListenerId = u64;

#[derive(Debug)]
pub(crate) struct ListenerRt {
    pub(crate) id: ListenerId,
    pub(crate) cfg: cfg::Listener,
    pub(crate) table: RuleTable,
    /// The address actually bound (the configured port may be 0).
    pub(crate) bound: SocketAddr,
    pub(crate) tls: Option<crate::data::tls::Acceptor>,
}

#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) config: Arc<cfg::Config>,
    pub(crate) listeners: Box<[Arc<ListenerRt>]>,
    pub(crate) groups: Box<[Arc<GroupRt>]>,
    /// Where each request's access log entry goes, when there is an access log.
    pub(crate) access_log: Option<Arc<crate::data::access_log::AccessLog>>,
}

impl Snapshot {
    #[inline]
    pub(crate) fn listener(&self, id: ListenerId) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.id == id)
    }

    pub(crate) fn listener_named(&self, name: &str) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.cfg.name == name)
    }

    pub(crate) fn group_named(&self, name: &str) -> Option<&Arc<GroupRt>> {
        self.groups.iter().find(|g| g.name() == name)
    }
}
