//! hostalb's data plane and its control loop.
//!
//! Vocabulary (ALB's): a **listener** accepts client connections on an address; its
//! **rules** (conditions + action, by priority) choose what happens to each request; a
//! **forward** sends it to a **target group**, a set of **targets** (address:port) that
//! requests are balanced over; a **registration** puts a target in a group (statically in
//! the configuration, or from Docker discovery).
//!
//! Promises:
//! - ALB's behaviour wherever ALB defines it: rule matching, actions, the headers it adds
//!   (`X-Forwarded-*`, `X-Amzn-Trace-Id`, `Host`), the errors it answers itself and when.
//! - A request with ambiguous framing is refused before any byte of it reaches a target;
//!   every request is re-serialised, never forwarded byte for byte.
//! - One snapshot per request: rules and targets always come from the same configuration.
//!   A reload swaps the snapshot and touches no connection on an unchanged route.
//! - A request is sent again only when that cannot execute it twice: nothing of it reached
//!   a target, or it is idempotent and the target closed without answering
//!   (`data/retry.rs`); never more than once.
//! - Graceful shutdown finishes in-flight requests.
//!
//! Layout, by concern: `data/` is the request path (accept, read head, route, act, forward,
//! relay, log), `model/` what it reads (the snapshot, target groups, targets, counters),
//! `control/` what builds and swaps the snapshot and runs health checks and drains,
//! `admin/` the admin address. `http1/` (the codec), `clock` and `rng` are leaves.

mod admin;
mod clock;
mod control;
mod data;
mod http1;
mod model;
mod rng;

pub use admin::{AwsAnswer, AwsApi, AwsCall};
pub use control::supervise::{Exit, Supervisor};
pub use control::{
    ConfigSource, ControlError, DiscoveryReport, Event, LabelGroupReport, LabelProblem, NotRegistered, Proxy,
    Registration,
};
pub use data::budget::raise_descriptor_limit;
pub use data::tls::{TlsError, file_problems as tls_file_problems};
pub use model::rules;
pub use model::target::TargetOrigin;

impl Proxy {
    /// Binds every listener and the admin API and starts serving `loaded`.
    pub async fn start(loaded: hostalb_config::Loaded, source: ConfigSource) -> Result<Proxy, ControlError> {
        let (proxy, admin_socket) = Proxy::launch(loaded, source).await?;
        tokio::spawn(admin::serve(proxy.clone(), admin_socket));
        Ok(proxy)
    }
}
