//! What discovery knows of one container: enough to decide where it registers and at
//! which address, taken from Docker's container summary (one `GET /containers/json`
//! answers a full resync without one inspect per container).

use std::collections::BTreeMap;
use std::net::IpAddr;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, PortSummaryTypeEnum};

/// A published TCP port: `container_port` reachable at `host_ip:host_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub container_port: u16,
    /// `None` when the port is only exposed, not published (`EXPOSE` without `-p`).
    pub host: Option<(Option<IpAddr>, u16)>,
}

/// The container's Docker HEALTHCHECK status, when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerHealth {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// When it was created (Unix seconds; 0 when the engine does not say): the oldest
    /// container of a label-declared target group defines it.
    pub created: i64,
    pub running: bool,
    pub paused: bool,
    /// A stop signal was sent (a `kill` or `stop` event): out of rotation before the
    /// process exits, as ECS deregisters before SIGTERM.
    pub stopping: bool,
    pub health: DockerHealth,
    /// TCP ports, published or only exposed.
    pub ports: Vec<Binding>,
    /// The container's own addresses by network name (for `target_type = "ip"`).
    pub networks: BTreeMap<String, IpAddr>,
}

impl Container {
    /// Reads a container summary; `None` when it has no id.
    pub fn from_summary(s: ContainerSummary) -> Option<Container> {
        let id = s.id?;
        let name = s
            .names
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| id.chars().take(12).collect());
        let state = s.state.unwrap_or(ContainerSummaryStateEnum::EMPTY);
        let status = s.status.unwrap_or_default();
        let ports = s
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter(|p| matches!(p.typ, Some(PortSummaryTypeEnum::TCP) | None))
            .map(|p| Binding {
                container_port: p.private_port,
                host: p
                    .public_port
                    .map(|port| (p.ip.as_deref().and_then(|ip| ip.parse().ok()), port)),
            })
            .collect();
        let networks = s
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, ep)| {
                let ip: IpAddr = ep.ip_address.filter(|a| !a.is_empty())?.parse().ok()?;
                Some((name, ip))
            })
            .collect();
        Some(Container {
            id,
            name,
            labels: s.labels.unwrap_or_default().into_iter().collect(),
            created: s.created.unwrap_or(0),
            running: matches!(
                state,
                ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED
            ),
            paused: state == ContainerSummaryStateEnum::PAUSED,
            stopping: false,
            health: health_from_status(&status),
            ports,
            networks,
        })
    }
}

/// Docker writes the health into the status text: `Up 5 minutes (healthy)`,
/// `(unhealthy)`, `(health: starting)`.
pub(crate) fn health_from_status(status: &str) -> DockerHealth {
    if status.contains("(unhealthy)") {
        DockerHealth::Unhealthy
    } else if status.contains("(healthy)") {
        DockerHealth::Healthy
    } else if status.contains("(health: starting)") {
        DockerHealth::Starting
    } else {
        DockerHealth::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerSummaryNetworkSettings, EndpointSettings, PortSummary};
    use std::collections::HashMap;

    #[test]
    fn summary_conversion() {
        let summary = ContainerSummary {
            id: Some("abc123".into()),
            names: Some(vec!["/web-1".into()]),
            labels: Some(HashMap::from([("hostalb.target-group".into(), "web".into())])),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            created: Some(1_700_000_000),
            status: Some("Up 3 seconds (healthy)".into()),
            ports: Some(vec![
                PortSummary {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(32769),
                    typ: Some(PortSummaryTypeEnum::TCP),
                },
                PortSummary {
                    ip: None,
                    private_port: 9000,
                    public_port: None,
                    typ: Some(PortSummaryTypeEnum::TCP),
                },
                PortSummary {
                    ip: Some("0.0.0.0".into()),
                    private_port: 53,
                    public_port: Some(5353),
                    typ: Some(PortSummaryTypeEnum::UDP),
                },
            ]),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(HashMap::from([(
                    "bridge".into(),
                    EndpointSettings {
                        ip_address: Some("172.17.0.2".into()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let c = Container::from_summary(summary).unwrap();
        assert_eq!(c.name, "web-1");
        assert_eq!(c.created, 1_700_000_000);
        assert!(c.running && !c.paused && !c.stopping);
        assert_eq!(c.health, DockerHealth::Healthy);
        assert_eq!(
            c.ports,
            vec![
                Binding {
                    container_port: 80,
                    host: Some((Some("0.0.0.0".parse().unwrap()), 32769))
                },
                Binding {
                    container_port: 9000,
                    host: None
                },
            ]
        );
        assert_eq!(c.networks.get("bridge"), Some(&"172.17.0.2".parse().unwrap()));
    }

    #[test]
    fn health_status_text() {
        assert_eq!(
            health_from_status("Up 1 second (health: starting)"),
            DockerHealth::Starting
        );
        assert_eq!(
            health_from_status("Up 2 minutes (unhealthy)"),
            DockerHealth::Unhealthy
        );
        assert_eq!(health_from_status("Up 2 minutes"), DockerHealth::None);
    }
}
