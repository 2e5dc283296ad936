//! End-to-end tests of the built `hostalb` binary against real loopback backends.
//! One test binary; one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod access_log;
mod actions;
mod admin;
mod aws_api;
mod balancing;
mod bodies;
mod budget;
mod cli;
mod common;
mod connections;
mod dashboard;
mod desync;
mod docker;
mod drain_cut;
mod ecs;
mod ecs_bluegreen;
mod ecs_clients;
mod ecs_support;
mod ecs_tasks;
mod errors;
mod framing;
mod h2;
mod headers;
mod health;
mod idle;
mod import;
mod labels;
mod lifecycle;
mod metrics;
mod operator_logs;
mod retry;
mod routing;
mod smoke;
mod stickiness;
mod target_tls;
mod tls;
mod websocket;
