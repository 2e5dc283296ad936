//! Connects Docker discovery to the proxy: desired registrations (and, without a
//! configuration file, label-declared groups and rules) flow into the proxy's control
//! API; configuration reloads flow back into discovery's selection.

use std::collections::BTreeMap;

use hostalb_config::{Config, Overlay};
use hostalb_discovery::{Desired, Discovery, Settings, Status};
use hostalb_proxy::{DiscoveryReport, Event, NotRegistered, Proxy, Registration, TargetOrigin};

/// Whether a configuration asks for discovery.
fn wanted(config: &Config) -> bool {
    config.docker.enabled
}

/// Starts discovery when the configuration asks for it, now or after a later reload.
/// `label_groups`: labels may declare target groups and rules (no configuration file).
/// The returned task owns discovery; it lives as long as the process.
pub(crate) fn start(proxy: &Proxy, label_groups: bool) -> tokio::task::JoinHandle<()> {
    let proxy = proxy.clone();
    tokio::spawn(async move {
        let mut events = proxy.subscribe();
        let mut running: Option<(Discovery, Vec<tokio::task::JoinHandle<()>>)> = None;
        loop {
            // Label-declared groups are part of the served configuration, not of what
            // discovery selects by: in label mode discovery works from the embedded
            // default alone, or a label group would look configured and leave the overlay.
            let config = match label_groups {
                true => match hostalb_config::embedded_default() {
                    Ok(l) => std::sync::Arc::new(l.config),
                    Err(_) => proxy.config(),
                },
                false => proxy.config(),
            };
            match &running {
                Some((d, _)) => d.update(Settings::from_config(&config, label_groups)),
                None if wanted(&config) => {
                    let discovery = Discovery::spawn(Settings::from_config(&config, label_groups));
                    let forwarders = vec![
                        tokio::spawn(forward_desired(proxy.clone(), discovery.desired(), label_groups)),
                        tokio::spawn(forward_status(
                            proxy.clone(),
                            discovery.status(),
                            discovery.desired(),
                        )),
                    ];
                    running = Some((discovery, forwarders));
                }
                None => {}
            }
            // Wait for the next applied configuration.
            loop {
                match events.recv().await {
                    Ok(Event::Reloaded { .. }) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    })
}

/// Applies each new desired state: label groups first (they create the target groups),
/// then the registrations. A label-declared group outlives its last container, as an
/// ALB target group outlives its targets: during a redeploy its rule answers 503 rather
/// than disappearing; the latest labels seen define it.
async fn forward_desired(
    proxy: Proxy,
    mut desired: tokio::sync::watch::Receiver<Desired>,
    label_groups: bool,
) {
    let mut seen: BTreeMap<String, hostalb_config::LabelGroup> = BTreeMap::new();
    loop {
        let d = desired.borrow_and_update().clone();
        if label_groups {
            for g in &d.label_groups {
                seen.insert(g.name.clone(), g.clone());
            }
            let overlay = Overlay {
                label_groups: seen.values().cloned().collect(),
            };
            if let Err(e) = proxy.set_overlay(overlay).await {
                tracing::warn!(error = %e, "label-declared target groups not applied");
            }
        }
        let registrations: BTreeMap<String, Vec<Registration>> = d
            .registrations
            .iter()
            .map(|(group, found)| {
                let regs = found
                    .iter()
                    .map(|f| Registration {
                        address: f.address,
                        origin: TargetOrigin {
                            container_id: Some(f.container_id.clone()),
                            container_name: Some(f.container_name.clone()),
                        },
                        docker_unhealthy: f.unhealthy,
                    })
                    .collect();
                (group.clone(), regs)
            })
            .collect();
        proxy.set_registrations(registrations).await;
        if desired.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the admin API's discovery report current.
async fn forward_status(
    proxy: Proxy,
    mut status: tokio::sync::watch::Receiver<Status>,
    mut desired: tokio::sync::watch::Receiver<Desired>,
) {
    loop {
        let s = status.borrow_and_update().clone();
        let d = desired.borrow_and_update().clone();
        proxy.set_discovery_report(DiscoveryReport {
            enabled: true,
            endpoint: s.endpoint,
            connected: s.connected,
            containers: s.containers,
            last_error: s.last_error,
            syncs: s.syncs,
            connects: s.connects,
            events: s.events,
            not_registered: d
                .reported
                .into_iter()
                .map(|r| NotRegistered {
                    container_id: r.container_id,
                    container_name: r.container_name,
                    target_group: r.target_group,
                    reason: r.reason,
                })
                .collect(),
        });
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            changed = desired.changed() => if changed.is_err() { return },
        }
    }
}
