//! Reading one container's `hostalb.*` labels: which target groups it declares, with which
//! values, and which of its labels are not understood.
//!
//! Two spellings, one vocabulary (`hostalb_config::LABEL_ATTRIBUTES`):
//!
//! - `hostalb.<group>.<attribute>`: any group; a container may declare several, each with
//!   its own `hostalb.<group>.container-port`.
//! - `hostalb.target-group=<group>` with `hostalb.<attribute>`: the same for one group.
//!
//! When both spell the same attribute of the same group, the `hostalb.<group>.` label
//! wins and the other is reported. Values are not checked here: the configuration's
//! validation does that (container ports excepted, which are discovery's own).

use std::collections::{BTreeMap, BTreeSet};

use hostalb_config::{LabelValue, Place, Severity, label_attribute, label_attribute_like};

use crate::container::Container;

/// Every hostalb label starts with this.
pub const LABEL_PREFIX: &str = "hostalb.";
/// Names the target group the unscoped `hostalb.<attribute>` labels are for.
pub const LABEL_TARGET_GROUP: &str = "hostalb.target-group";

/// Something wrong with one label of one container, and what hostalb does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelProblem {
    pub container_id: String,
    pub container_name: String,
    /// The group the label is about, when it names one.
    pub target_group: Option<String>,
    /// The label to fix, as the container spells it (or as it should be spelt when the
    /// problem is a label that is missing).
    pub label: String,
    /// Its value; `None` when the label is not set.
    pub value: Option<String>,
    /// `Error`: the label is not in effect; `Warning`: it is, with a caveat.
    pub severity: Severity,
    /// An ALB limit rather than something hostalb cannot do.
    pub alb_limit: bool,
    pub message: String,
    pub fix: String,
    /// What hostalb does instead.
    pub effect: String,
}

/// One group as one container declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Declaration {
    /// `hostalb.<group>.container-port` (or the unscoped one for the unscoped group).
    pub port: Option<LabelValue>,
    /// Every other attribute, by name.
    pub values: BTreeMap<String, LabelValue>,
}

/// What one container's labels declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    pub groups: BTreeMap<String, Declaration>,
    /// `hostalb.container-port`, which also picks the port for groups that select the
    /// container by a configured `[docker]` selector.
    pub unscoped_port: Option<LabelValue>,
    /// The group `hostalb.target-group` names.
    pub unscoped_group: Option<String>,
    pub problems: Vec<LabelProblem>,
}

/// Reads `c`'s labels. Labels in `selector_keys` (used by configured `[docker]`
/// selectors) are the user's own, not hostalb's, whatever their prefix.
pub(crate) fn declared(c: &Container, selector_keys: &BTreeSet<&str>) -> Declared {
    let mut out = Declared::default();
    let problem =
        |label: &str, value: Option<&str>, group: Option<&str>, message: String, fix: String| LabelProblem {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            target_group: group.map(str::to_owned),
            label: label.to_owned(),
            value: value.map(str::to_owned),
            severity: Severity::Error,
            alb_limit: false,
            message,
            fix,
            effect: "ignored".into(),
        };
    let unscoped_group = match c.labels.get(LABEL_TARGET_GROUP).map(|v| v.trim()) {
        Some("") => {
            out.problems.push(problem(
                LABEL_TARGET_GROUP,
                Some(""),
                None,
                "names no target group".into(),
                format!("write {LABEL_TARGET_GROUP}=NAME"),
            ));
            None
        }
        other => other.map(str::to_owned),
    };
    let mut unscoped: BTreeMap<String, LabelValue> = BTreeMap::new();
    let mut scoped: BTreeMap<String, Declaration> = BTreeMap::new();
    for (key, value) in &c.labels {
        let Some(rest) = key.strip_prefix(LABEL_PREFIX) else {
            continue;
        };
        if key == LABEL_TARGET_GROUP || selector_keys.contains(key.as_str()) {
            continue;
        }
        let v = LabelValue {
            label: key.clone(),
            value: value.clone(),
        };
        if let Some(a) = label_attribute(rest) {
            if let Some(earlier) = unscoped.get(a.name) {
                // An older spelling and the current one: the current one wins.
                let (kept, dropped) = if rest == a.name {
                    (v.clone(), earlier.clone())
                } else {
                    (earlier.clone(), v.clone())
                };
                if kept.value.trim() != dropped.value.trim() {
                    out.problems.push(problem(
                        &dropped.label,
                        Some(&dropped.value),
                        unscoped_group.as_deref(),
                        format!("{} also sets {}", kept.label, a.name),
                        format!("remove {}", dropped.label),
                    ));
                }
                unscoped.insert(a.name.to_owned(), kept);
            } else {
                unscoped.insert(a.name.to_owned(), v);
            }
            continue;
        }
        let scoped_attr = rest
            .split_once('.')
            .filter(|(g, _)| !g.is_empty())
            .and_then(|(g, attr)| label_attribute(attr).map(|a| (g, a)));
        match scoped_attr {
            Some((group, a)) => {
                let d = scoped.entry(group.to_owned()).or_default();
                if a.place == Place::ContainerPort {
                    d.port = Some(v);
                } else {
                    d.values.insert(a.name.to_owned(), v);
                }
            }
            None => {
                let (message, fix) = unknown(rest);
                out.problems.push(problem(key, Some(value), None, message, fix));
            }
        }
    }
    // The unscoped attributes belong to the unscoped group.
    let port = unscoped
        .iter()
        .find(|(name, _)| label_attribute(name).is_some_and(|a| a.place == Place::ContainerPort))
        .map(|(name, v)| (name.clone(), v.clone()));
    if let Some((name, v)) = &port {
        unscoped.remove(name);
        out.unscoped_port = Some(v.clone());
    }
    match &unscoped_group {
        Some(group) => {
            let d = scoped.entry(group.clone()).or_default();
            if d.port.is_none() {
                d.port = port.map(|(_, v)| v);
            }
            for (attr, v) in unscoped {
                match d.values.get(&attr) {
                    Some(kept) if kept.value.trim() != v.value.trim() => out.problems.push(problem(
                        &v.label,
                        Some(&v.value),
                        Some(group),
                        format!(
                            "{}={} sets the same for target group `{group}`",
                            kept.label, kept.value
                        ),
                        format!("remove one of {} and {}", v.label, kept.label),
                    )),
                    Some(_) => {}
                    None => {
                        d.values.insert(attr, v);
                    }
                }
            }
        }
        None => {
            for (attr, v) in unscoped {
                out.problems.push(problem(
                    &v.label,
                    Some(&v.value),
                    None,
                    format!(
                        "{} is set but {LABEL_TARGET_GROUP} is not: it applies to no target group",
                        v.label
                    ),
                    format!("add {LABEL_TARGET_GROUP}=NAME, or write hostalb.NAME.{attr}"),
                ));
            }
        }
    }
    out.groups = scoped;
    out.unscoped_group = unscoped_group;
    out
}

/// Why `hostalb.<rest>` is not understood, and the label probably meant.
fn unknown(rest: &str) -> (String, String) {
    let message = format!("unknown label {LABEL_PREFIX}{rest}");
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let meant = if squash(rest) == squash("target-group") {
        Some(LABEL_TARGET_GROUP.to_owned())
    } else if let Some(a) = label_attribute_like(rest) {
        Some(format!("{LABEL_PREFIX}{}", a.name))
    } else {
        rest.split_once('.').and_then(|(group, attr)| {
            label_attribute_like(attr).map(|a| format!("{LABEL_PREFIX}{group}.{}", a.name))
        })
    };
    let fix = match meant {
        Some(m) => format!("did you mean {m}? (labels are the file's keys in kebab-case)"),
        None => format!(
            "hostalb reads {LABEL_TARGET_GROUP}, hostalb.ATTRIBUTE and hostalb.GROUP.ATTRIBUTE labels (README, \"Label reference\")"
        ),
    };
    (message, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::DockerHealth;

    fn container(labels: &[(&str, &str)]) -> Container {
        Container {
            id: "id-c".into(),
            name: "c".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            created: 0,
            running: true,
            paused: false,
            stopping: false,
            health: DockerHealth::None,
            ports: vec![],
            networks: BTreeMap::new(),
        }
    }

    fn read(labels: &[(&str, &str)]) -> Declared {
        declared(&container(labels), &BTreeSet::new())
    }

    fn values(d: &Declaration) -> Vec<(&str, &str)> {
        d.values
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect()
    }

    #[test]
    fn the_unscoped_spelling_declares_one_group() {
        let d = read(&[
            ("hostalb.target-group", " api "),
            ("hostalb.container-port", "8080"),
            ("hostalb.path-pattern", "/api/*"),
            ("hostalb.health-check-path", "/health"),
            ("other.label", "x"),
        ]);
        assert!(d.problems.is_empty(), "{:#?}", d.problems);
        let api = &d.groups["api"];
        assert_eq!(api.port.as_ref().unwrap().value, "8080");
        assert_eq!(
            values(api),
            vec![("health-check.path", "/health"), ("path-pattern", "/api/*")]
        );
        assert_eq!(api.values["health-check.path"].label, "hostalb.health-check-path");
    }

    #[test]
    fn scoped_labels_declare_several_groups_with_a_port_each() {
        let d = read(&[
            ("hostalb.api.container-port", "80"),
            ("hostalb.api.health-check.interval-seconds", "10"),
            ("hostalb.admin.container-port", "8081"),
            ("hostalb.admin.host-header", "admin.example.com"),
        ]);
        assert!(d.problems.is_empty(), "{:#?}", d.problems);
        assert_eq!(d.groups.len(), 2);
        assert_eq!(d.groups["api"].port.as_ref().unwrap().value, "80");
        assert_eq!(d.groups["admin"].port.as_ref().unwrap().value, "8081");
        assert_eq!(
            values(&d.groups["api"]),
            vec![("health-check.interval-seconds", "10")]
        );
    }

    #[test]
    fn the_scoped_label_wins_over_the_unscoped_one_and_the_other_is_reported() {
        let d = read(&[
            ("hostalb.target-group", "api"),
            ("hostalb.priority", "7"),
            ("hostalb.api.priority", "5"),
        ]);
        assert_eq!(values(&d.groups["api"]), vec![("priority", "5")]);
        assert_eq!(d.problems.len(), 1);
        assert_eq!(d.problems[0].label, "hostalb.priority");
        assert!(d.problems[0].message.contains("hostalb.api.priority=5"));
    }

    #[test]
    fn unknown_labels_are_reported_with_the_label_probably_meant() {
        let d = read(&[
            ("hostalb.target_group", "api"),
            ("hostalb.api.health_check.path", "/h"),
            ("hostalb.api.healthcheck.interval", "5"),
            ("hostalb.e2e.case", "x"),
        ]);
        let by_label: BTreeMap<&str, &LabelProblem> =
            d.problems.iter().map(|p| (p.label.as_str(), p)).collect();
        assert_eq!(by_label.len(), 4, "{:#?}", d.problems);
        assert!(
            by_label["hostalb.target_group"]
                .fix
                .contains("did you mean hostalb.target-group?")
        );
        assert!(
            by_label["hostalb.api.health_check.path"]
                .fix
                .contains("did you mean hostalb.api.health-check.path?")
        );
        assert!(
            by_label["hostalb.api.healthcheck.interval"]
                .fix
                .contains("README")
        );
        assert!(by_label["hostalb.e2e.case"].message.contains("unknown label"));
        assert!(d.groups.is_empty());
    }

    #[test]
    fn labels_a_selector_uses_are_not_hostalbs() {
        let c = container(&[("hostalb.e2e.case", "x")]);
        let d = declared(&c, &BTreeSet::from(["hostalb.e2e.case"]));
        assert!(d.problems.is_empty());
    }

    #[test]
    fn unscoped_attributes_without_a_group_are_reported_but_the_port_is_kept() {
        let d = read(&[("hostalb.container-port", "80"), ("hostalb.priority", "3")]);
        assert_eq!(d.unscoped_port.as_ref().unwrap().value, "80");
        assert_eq!(d.problems.len(), 1, "{:#?}", d.problems);
        assert_eq!(d.problems[0].label, "hostalb.priority");
        assert!(d.problems[0].fix.contains("hostalb.NAME.priority"));
    }

    #[test]
    fn both_spellings_of_one_attribute_keep_the_current_one() {
        let d = read(&[
            ("hostalb.target-group", "api"),
            ("hostalb.health-check-path", "/old"),
            ("hostalb.health-check.path", "/new"),
        ]);
        assert_eq!(values(&d.groups["api"]), vec![("health-check.path", "/new")]);
        assert_eq!(d.problems.len(), 1);
        assert_eq!(d.problems[0].label, "hostalb.health-check-path");
    }
}
