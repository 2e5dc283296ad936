//! The admin address: the HTTP server and the describe output in ELBv2's shapes
//! (`server`), Prometheus metrics (`prometheus` over `exposition`), and the live
//! dashboard (`dashboard` builds the view, `page` renders it) with what it remembers of
//! the last minute (`sampler`) and of the configuration (`config_log`).

mod config_log;
mod dashboard;
mod exposition;
mod page;
mod prometheus;
mod sampler;
mod server;

pub(crate) use server::serve;
pub use server::{AwsAnswer, AwsApi, AwsCall};
