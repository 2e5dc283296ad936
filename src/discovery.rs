//! Connects Docker discovery to the proxy: desired registrations (and, without a
//! configuration file, label-declared groups and rules) flow into the proxy's control
//! API; configuration reloads flow back into discovery's selection; what discovery and the
//! label resolution found goes to `GET /api/discovery`.

use std::collections::BTreeMap;
use std::time::Duration;

use hostalb_config::{Config, EmbeddedAddresses, LabelNote, LabelReport, Overlay, Severity};
use hostalb_discovery::{Desired, Discovery, Retained, Settings, Status};
use hostalb_proxy::{
    DiscoveryReport, Event, LabelGroupReport, LabelProblem, NotRegistered, Proxy, Registration, TargetOrigin,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// Without a configuration file: labels declare target groups and rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelMode {
    /// The command line's addresses, kept in every overlay.
    pub addresses: EmbeddedAddresses,
    /// How long a group stays once no container declares it.
    pub grace: Duration,
}

/// Whether a configuration asks for discovery.
fn wanted(config: &Config) -> bool {
    config.docker.enabled
}

/// Starts discovery when the configuration asks for it, now or after a later reload.
/// The returned task owns discovery; it lives as long as the process.
pub(crate) fn start(proxy: &Proxy, labels: Option<LabelMode>) -> tokio::task::JoinHandle<()> {
    let proxy = proxy.clone();
    let label_groups = labels.is_some();
    tokio::spawn(async move {
        let mut events = proxy.subscribe();
        let mut running: Option<(Discovery, tokio::task::JoinHandle<()>)> = None;
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
                    let forwarder = tokio::spawn(forward(
                        proxy.clone(),
                        discovery.desired(),
                        discovery.status(),
                        labels,
                    ));
                    running = Some((discovery, forwarder));
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

/// Label-mode state: the groups served (declared now or in their grace), the overlay last
/// applied and what resolving it found.
struct Labels {
    mode: LabelMode,
    retained: Retained,
    applied: Option<Overlay>,
    report: LabelReport,
}

/// Applies each new desired state and status: label groups first (they create the target
/// groups), then the registrations, then the admin API's report. Wakes also when an empty
/// label group's grace ends.
async fn forward(
    proxy: Proxy,
    mut desired: watch::Receiver<Desired>,
    mut status: watch::Receiver<Status>,
    mode: Option<LabelMode>,
) {
    let mut labels = mode.map(|mode| Labels {
        mode,
        retained: Retained::new(mode.grace),
        applied: None,
        report: LabelReport::default(),
    });
    loop {
        let d = desired.borrow_and_update().clone();
        let s = status.borrow_and_update().clone();
        if let Some(l) = labels.as_mut() {
            l.retained.update(Instant::now(), &d.label_groups);
            let overlay = Overlay {
                addresses: l.mode.addresses,
                label_groups: l.retained.label_groups(),
            };
            if l.applied.as_ref() != Some(&overlay) {
                let report = hostalb_config::embedded_label_report(&overlay);
                for n in &report.notes {
                    if !l.report.notes.contains(n) {
                        log_note(n, defined_by(&l.retained, &n.target_group).1.as_str());
                    }
                }
                l.report = report;
                if let Err(e) = proxy.set_overlay(overlay.clone()).await {
                    tracing::warn!(error = %e, "label-declared target groups not applied");
                }
                l.applied = Some(overlay);
            }
        }
        proxy.set_registrations(registrations(&d)).await;
        proxy.set_discovery_report(report(&s, &d, labels.as_ref()));
        let expiry = labels.as_ref().and_then(|l| l.retained.next_expiry());
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { return },
            changed = status.changed() => if changed.is_err() { return },
            // Far enough to mean "never", near enough to stay a valid deadline.
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))) => {}
        }
    }
}

fn registrations(d: &Desired) -> BTreeMap<String, Vec<Registration>> {
    d.registrations
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
        .collect()
}

/// The container defining `group` (id, name), `-` when unknown.
fn defined_by(retained: &Retained, group: &str) -> (String, String) {
    retained
        .groups()
        .find(|g| g.declared.group.name == group)
        .map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |g| {
                (
                    g.declared.defined_by.id.clone(),
                    g.declared.defined_by.name.clone(),
                )
            },
        )
}

fn severity(s: Severity) -> String {
    match s {
        Severity::Error => "error".into(),
        Severity::Warning => "warning".into(),
    }
}

/// One line per label problem resolution found.
fn log_note(n: &LabelNote, container: &str) {
    tracing::warn!(
        container = %container,
        target_group = %n.target_group,
        label = n.label.as_deref().unwrap_or("-"),
        value = n.value.as_deref().unwrap_or("-"),
        alb_limit = n.alb_limit,
        problem = %n.message,
        effect = %n.effect,
        fix = %n.fix,
        "container label"
    );
}

fn report(s: &Status, d: &Desired, labels: Option<&Labels>) -> DiscoveryReport {
    let mut label_problems: Vec<LabelProblem> = d
        .label_problems
        .iter()
        .map(|p| LabelProblem {
            container_id: p.container_id.clone(),
            container_name: p.container_name.clone(),
            target_group: p.target_group.clone(),
            label: p.label.clone(),
            value: p.value.clone(),
            severity: severity(p.severity),
            alb_limit: p.alb_limit,
            problem: p.message.clone(),
            effect: p.effect.clone(),
            fix: p.fix.clone(),
        })
        .collect();
    let mut label_groups = Vec::new();
    if let Some(l) = labels {
        for n in &l.report.notes {
            let (id, name) = defined_by(&l.retained, &n.target_group);
            label_problems.push(LabelProblem {
                container_id: id,
                container_name: name,
                target_group: Some(n.target_group.clone()),
                // A problem with the group as a whole is fixed where it is named.
                label: n
                    .label
                    .clone()
                    .unwrap_or_else(|| hostalb_discovery::LABEL_TARGET_GROUP.to_owned()),
                value: n.value.clone().or_else(|| Some(n.target_group.clone())),
                severity: severity(n.severity),
                alb_limit: n.alb_limit,
                problem: n.message.clone(),
                effect: n.effect.clone(),
                fix: n.fix.clone(),
            });
        }
        for g in l.retained.groups() {
            let name = &g.declared.group.name;
            label_groups.push(LabelGroupReport {
                target_group: name.clone(),
                defined_by: g.declared.defined_by.name.clone(),
                containers: match g.empty_since {
                    Some(_) => Vec::new(),
                    None => g.declared.containers.iter().map(|c| c.name.clone()).collect(),
                },
                priority: l.report.priorities.get(name).copied(),
                removed_in_seconds: None,
                removal: g.empty_since.map(|since| (since + l.retained.grace()).into_std()),
            });
        }
    }
    DiscoveryReport {
        enabled: true,
        endpoint: s.endpoint.clone(),
        connected: s.connected,
        containers: s.containers,
        last_error: s.last_error.clone(),
        syncs: s.syncs,
        connects: s.connects,
        events: s.events,
        not_registered: d
            .reported
            .iter()
            .map(|r| NotRegistered {
                container_id: r.container_id.clone(),
                container_name: r.container_name.clone(),
                target_group: r.target_group.clone(),
                reason: r.reason.clone(),
                label: r.label.clone(),
            })
            .collect(),
        label_problems,
        label_groups,
    }
}
