//! What the request path reads: the immutable snapshot (compiled rules per listener,
//! target groups) and the live per-target state that survives a swap, with the counters
//! the request path bumps.

pub(crate) mod arn;
pub(crate) mod h2pool;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod pool;
pub mod rules;
pub(crate) mod shared;
pub(crate) mod snapshot;
pub(crate) mod target;
pub(crate) mod target_group;
