//! hostalb's Docker discovery: which containers are targets, in which target groups, at
//! which address.
//!
//! On an EC2 or any Docker host, services run as containers whose container port is
//! published on a random host port (ECS bridge mode with dynamic host ports, or
//! `docker run -p 80`). Discovery follows the Docker engine and computes the desired
//! registrations per target group: a container selected by a group's `[docker]` labels
//! (for ECS, the agent's `com.amazonaws.ecs.*` labels) or naming a group with the
//! `hostalb.target-group` label (or any `hostalb.<group>.` label) registers its published
//! host port for the group's `container_port`. Without a configuration file the labels
//! also define the groups and their rules ([`labels`], [`select`]), and a group whose
//! last container left stays for a grace period ([`retain`]). A container leaves the registrations as soon as a stop signal is sent
//! to it (`kill`/`stop` events), before its process exits.
//!
//! Discovery knows Docker and nothing of HTTP: its output is a `tokio::sync::watch` of
//! [`Desired`] that the hostalb binary connects to the proxy.

mod container;
mod engine;
pub mod labels;
pub mod retain;
pub mod select;

pub use container::{Binding, Container, DockerHealth};
pub use engine::{Discovery, Settings, Status};
pub use labels::{LABEL_PREFIX, LABEL_TARGET_GROUP, LabelProblem};
pub use retain::{LABEL_GROUP_GRACE, Retained, RetainedGroup};
pub use select::{
    ContainerRef, DeclaredGroup, Desired, Found, GroupSelector, LABEL_CONTAINER_PORT, Reported, Selection,
    address, desired,
};
