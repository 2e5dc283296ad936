//! The admin address: the HTTP server, describe output in ELBv2's shapes, Prometheus
//! metrics and the dashboard.

mod server;

pub(crate) use server::serve;
