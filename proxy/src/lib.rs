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
//! - A request is retried only when no byte of it reached a target.
//! - Graceful shutdown finishes in-flight requests.
//!
//! The request path is [`session`] then [`forward`]; the control plane is [`control`].

mod admin;
mod body;
mod buffers;
mod clock;
mod control;
mod cookies;
mod counted;
mod errors;
mod forward;
mod headers;
mod health;
mod http1;
mod listener;
mod metrics;
mod respond;
mod rng;
pub mod rules;
mod session;
mod shared;
mod snapshot;
mod supervise;
mod target;
mod target_group;
mod tls;
mod trace_id;
mod upstream;

pub use control::{ConfigSource, ControlError, DiscoveryReport, Event, NotRegistered, Proxy, Registration};
pub use supervise::{Exit, Supervisor};
pub use target::TargetOrigin;
pub use tls::TlsError;
