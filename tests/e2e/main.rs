//! End-to-end tests of the built `hostalb` binary against real loopback backends.
//! One test binary; one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod actions;
mod admin;
mod balancing;
mod bodies;
mod cli;
mod common;
mod connections;
mod docker;
mod errors;
mod framing;
mod headers;
mod health;
mod lifecycle;
mod routing;
mod smoke;
mod stickiness;
