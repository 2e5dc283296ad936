//! The control plane: the public [`Proxy`] handle, building and swapping the snapshot,
//! reconciling registrations, health checks and draining, and the process supervisor.

mod handle;
pub(crate) mod health;
pub(crate) mod health_h2;
pub(crate) mod supervise;

pub use handle::{
    ConfigSource, ControlError, DiscoveryReport, Event, LabelGroupReport, LabelProblem, NotRegistered, Proxy,
    Registration,
};
