//! What is added to a configuration while hostalb runs: the command line's addresses for
//! the embedded default (`--listen`, `--admin`), and the target groups and rules that
//! container labels declare when hostalb runs without a configuration file.
//!
//! Label groups are merged into the configuration document *before* validation, so every
//! label value goes through the validation a file's value does (one way in). Each group is
//! first validated on its own against the document: a label whose value is invalid is left
//! out, its default applies, and it is reported ([`LabelNote`]) with the validator's message
//! and fix; the rest of the group and every other group keep serving. Rule priorities are
//! then settled so that no group vanishes over one: a group keeps the priority it asks for
//! unless an older group (by its defining container's creation time) asks for the same
//! one; it then runs at the next free priority above it, and the clash is reported.
//!
//! The vocabulary (which labels exist, where each lands in the document, how its text is
//! typed) is in [`attributes`].

mod attributes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde_json::{Map, Value, json};

use crate::problems::{Problem, Severity};

pub use attributes::{
    LABEL_ALIASES, LABEL_ATTRIBUTES, LabelAttribute, Place, label_attribute, label_attribute_like,
};

/// Priorities of label rules without `hostalb.priority` start here, leaving 1-999 for
/// the priorities people choose.
pub const AUTO_PRIORITY_START: u32 = 1000;

/// The embedded default's listener address line (`[[listener]]` "web").
const EMBEDDED_LISTEN_LINE: &str = "address = \"0.0.0.0:8080\"";
/// The embedded default's admin address line (`[admin]`).
const EMBEDDED_ADMIN_LINE: &str = "address = \"127.0.0.1:9901\"";

/// Addresses the command line gives the embedded default (`hostalb run --listen ADDR
/// --admin ADDR`); `None` keeps the embedded one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedAddresses {
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

impl EmbeddedAddresses {
    /// The embedded default's text with these addresses written in.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if let Some(a) = self.listen {
            out = out.replacen(EMBEDDED_LISTEN_LINE, &format!("address = \"{a}\""), 1);
        }
        if let Some(a) = self.admin {
            out = out.replacen(EMBEDDED_ADMIN_LINE, &format!("address = \"{a}\""), 1);
        }
        out
    }
}

/// One label value, with the label as the container spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValue {
    /// `hostalb.api.health-check.path` or `hostalb.health-check.path`.
    pub label: String,
    pub value: String,
}

/// One target group declared by container labels, as its defining container declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelGroup {
    pub name: String,
    /// The container whose labels define it (for messages).
    pub defined_by: String,
    /// When that container was created (Unix seconds): of two groups asking for the same
    /// priority, the older keeps it.
    pub since: i64,
    /// Values by attribute name (`health-check.path`, `priority`...); never
    /// `container-port`, which is each container's own.
    pub values: BTreeMap<String, LabelValue>,
}

/// Everything added to a configuration while hostalb runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// For the embedded default only; a configuration file keeps its own addresses.
    pub addresses: EmbeddedAddresses,
    pub label_groups: Vec<LabelGroup>,
}

/// Something wrong with the labels of a label group, and what hostalb does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelNote {
    pub target_group: String,
    /// The label at fault as written; `None`: the group as a whole.
    pub label: Option<String>,
    pub value: Option<String>,
    /// `Error`: the label is not used; `Warning`: it is used (an ALB limit, or a priority
    /// clash settled).
    pub severity: Severity,
    /// An ALB limit rather than something hostalb cannot do.
    pub alb_limit: bool,
    pub message: String,
    pub fix: String,
    /// What hostalb does instead.
    pub effect: String,
}

/// The outcome of merging label groups: what is wrong with their labels, and the priority
/// each group's rule runs at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelReport {
    pub notes: Vec<LabelNote>,
    /// Rule priority by target group (groups with a rule).
    pub priorities: BTreeMap<String, u32>,
}

/// The document with the label groups merged in, and the report.
pub(crate) struct Resolution {
    pub doc: Value,
    pub report: LabelReport,
}

/// A group after its own validation: the values kept, and the priority it asks for.
struct Checked<'a> {
    group: &'a LabelGroup,
    values: BTreeMap<String, LabelValue>,
    has_rule: bool,
    /// `Some` when `priority` is set (and valid).
    asked: Option<u32>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.label_groups.is_empty()
    }

    /// Merges the label groups into `base` (a document that validates). Invalid label
    /// values are left out and reported; priority clashes are settled by age.
    pub(crate) fn resolve(&self, base: &Value) -> Resolution {
        let mut report = LabelReport::default();
        let mut groups: Vec<&LabelGroup> = self.label_groups.iter().collect();
        groups.sort_by(|a, b| a.since.cmp(&b.since).then(a.name.cmp(&b.name)));
        let mut checked = Vec::new();
        for g in groups {
            if base.get("target_group").and_then(|t| t.get(&g.name)).is_some() {
                report.notes.push(group_note(
                    g,
                    format!("the configuration defines target group `{}`", g.name),
                    format!(
                        "set its values in [target_group.{}] and remove its hostalb labels",
                        g.name
                    ),
                    "its labels are ignored".into(),
                ));
                continue;
            }
            if let Some(c) = check_group(base, g, &mut report.notes) {
                checked.push(c);
            }
        }
        let priorities = settle_priorities(base, &checked, &mut report.notes);
        let mut doc = base.clone();
        for c in &checked {
            let built = build(&c.values);
            let priority = priorities.get(&c.group.name).copied();
            if let Err(why) = merge(&mut doc, &c.group.name, built, priority.map(Value::from)) {
                report.notes.push(group_note(
                    c.group,
                    why,
                    "run hostalb with the embedded default or add a [[listener]]".into(),
                    "the group has no rule".into(),
                ));
            }
        }
        report.priorities = priorities;
        Resolution { doc, report }
    }
}

/// A group's labels as document parts.
struct Built {
    table: Map<String, Value>,
    /// The rule's conditions, and the attribute each came from.
    conditions: Vec<(Value, &'static str)>,
    priority: Option<Value>,
}

fn build(values: &BTreeMap<String, LabelValue>) -> Built {
    let mut built = Built {
        table: Map::new(),
        conditions: Vec::new(),
        priority: None,
    };
    for (attr, v) in values {
        let Some(a) = label_attribute(attr) else { continue };
        match a.place {
            Place::ContainerPort => {}
            Place::Priority => built.priority = Some(a.value(&v.value)),
            Place::PathPattern => built.conditions.push((
                json!({ "field": "path-pattern", "values": a.value(&v.value) }),
                a.name,
            )),
            Place::HostHeader => built.conditions.push((
                json!({ "field": "host-header", "values": a.value(&v.value) }),
                a.name,
            )),
            Place::Group(path) => insert_at(&mut built.table, path, a.value(&v.value)),
        }
    }
    // Path before host, as a person would write the rule.
    built.conditions.sort_by_key(|(_, attr)| *attr != "path-pattern");
    built
}

fn insert_at(table: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = table;
    for p in parents {
        let next = here
            .entry((*p).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(map) = next else { return };
        here = map;
    }
    here.insert((*last).to_owned(), value);
}

/// Adds a group's table and, when it has conditions, its rule on the first listener.
fn merge(doc: &mut Value, name: &str, built: Built, priority: Option<Value>) -> Result<(), String> {
    let Value::Object(root) = doc else {
        return Err("the configuration is not a table".into());
    };
    let groups = root
        .entry("target_group")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(groups) = groups else {
        return Err("`target_group` is not a table".into());
    };
    groups.insert(name.to_owned(), Value::Object(built.table));
    if built.conditions.is_empty() {
        return Ok(());
    }
    let rules = first_listener_rules(root).ok_or("there is no listener to add its rule to")?;
    let mut rule = json!({
        "conditions": built.conditions.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        "action": { "type": "forward", "target_group": name },
    });
    if let (Some(p), Value::Object(r)) = (priority, &mut rule) {
        r.insert("priority".into(), p);
    }
    rules.push(rule);
    Ok(())
}

fn first_listener_rules(root: &mut Map<String, Value>) -> Option<&mut Vec<Value>> {
    let Some(Value::Array(listeners)) = root.get_mut("listener") else {
        return None;
    };
    let Some(Value::Object(listener)) = listeners.first_mut() else {
        return None;
    };
    let rules = listener.entry("rule").or_insert_with(|| Value::Array(Vec::new()));
    match rules {
        Value::Array(rules) => Some(rules),
        _ => None,
    }
}

/// Priorities the document's first listener already uses.
fn base_priorities(base: &Value) -> BTreeSet<u32> {
    base.get("listener")
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("rule"))
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("priority").and_then(Value::as_u64))
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Validates `g` alone against `base`, leaving out each label validation refuses (and
/// noting why) until what is left validates. `None`: nothing of it can be served.
fn check_group<'a>(base: &Value, g: &'a LabelGroup, notes: &mut Vec<LabelNote>) -> Option<Checked<'a>> {
    let mut values: BTreeMap<String, LabelValue> = g
        .values
        .iter()
        .filter(|(attr, _)| label_attribute(attr).is_some_and(|a| a.place != Place::ContainerPort))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let base_rules = base
        .get("listener")
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("rule"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let free = first_free(&base_priorities(base), AUTO_PRIORITY_START);
    let group_path = format!("target_group.{}", g.name);
    let rule_path = format!("listener[0].rule[{base_rules}]");
    // Each pass leaves out at least one label, so this ends.
    for _ in 0..=values.len() + 1 {
        let built = build(&values);
        let conditions: Vec<&'static str> = built.conditions.iter().map(|(_, a)| *a).collect();
        let has_rule = !conditions.is_empty();
        let priority = built.priority.clone().unwrap_or_else(|| Value::from(free));
        let mut doc = base.clone();
        if let Err(why) = merge(&mut doc, &g.name, built, Some(priority)) {
            notes.push(group_note(
                g,
                why,
                "add a [[listener]]".into(),
                "the group has no rule".into(),
            ));
        }
        let (_, problems) = crate::validate::validate(doc);
        let mine: Vec<(&Problem, Vec<String>)> = problems
            .iter()
            .filter_map(|p| {
                if let Some(rest) = under(&p.path, &group_path) {
                    Some((p, group_attrs(&values, rest)))
                } else if has_rule {
                    under(&p.path, &rule_path).map(|rest| (p, rule_attrs(&values, &conditions, rest)))
                } else {
                    None
                }
            })
            .collect();
        let errors: Vec<&(&Problem, Vec<String>)> = mine
            .iter()
            .filter(|(p, _)| p.severity == Severity::Error)
            .collect();
        if errors.is_empty() {
            for (p, attrs) in &mine {
                let label = attrs.first().and_then(|a| values.get(a));
                notes.push(LabelNote {
                    target_group: g.name.clone(),
                    label: label.map(|v| v.label.clone()),
                    value: label.map(|v| v.value.clone()),
                    severity: Severity::Warning,
                    alb_limit: p.alb_limit,
                    message: p.message.clone(),
                    fix: attributes::in_label_words(&p.fix),
                    effect: "used as written".into(),
                });
            }
            let asked = values
                .get("priority")
                .and_then(|v| v.value.trim().parse::<u32>().ok());
            if asked.is_some() && !has_rule {
                let v = &values["priority"];
                notes.push(LabelNote {
                    target_group: g.name.clone(),
                    label: Some(v.label.clone()),
                    value: Some(v.value.clone()),
                    severity: Severity::Error,
                    alb_limit: false,
                    message: "a priority without a path-pattern or host-header label: the group has no rule"
                        .into(),
                    fix: "add a path-pattern or host-header label, or remove the priority label".into(),
                    effect: "ignored".into(),
                });
            }
            return Some(Checked {
                group: g,
                has_rule,
                asked: asked.filter(|_| has_rule),
                values,
            });
        }
        let mut dropped = false;
        for (p, attrs) in errors {
            for attr in attrs {
                let Some(v) = values.remove(attr) else { continue };
                dropped = true;
                notes.push(LabelNote {
                    target_group: g.name.clone(),
                    label: Some(v.label),
                    value: Some(v.value),
                    severity: Severity::Error,
                    alb_limit: false,
                    message: p.message.clone(),
                    fix: attributes::in_label_words(&p.fix),
                    effect: effect_of_leaving_out(attr),
                });
            }
        }
        if !dropped {
            let first = mine
                .iter()
                .find(|(p, _)| p.severity == Severity::Error)
                .map(|(p, _)| (*p).clone());
            let (message, fix) = first.map_or_else(
                || {
                    (
                        "its labels do not make a valid target group".to_owned(),
                        String::new(),
                    )
                },
                |p| (format!("{}: {}", p.path, p.message), p.fix),
            );
            notes.push(group_note(g, message, fix, "the group is left out".into()));
            return None;
        }
    }
    notes.push(group_note(
        g,
        "its labels do not make a valid target group".into(),
        "correct its hostalb labels".into(),
        "the group is left out".into(),
    ));
    None
}

/// What leaving `attr` out means for the group.
fn effect_of_leaving_out(attr: &str) -> String {
    match label_attribute(attr) {
        Some(a) if a.place == Place::Priority => {
            format!("ignored: the rule takes the next free priority from {AUTO_PRIORITY_START}")
        }
        Some(a) if matches!(a.place, Place::PathPattern | Place::HostHeader) => {
            format!("ignored: the rule has no {} condition", a.name)
        }
        Some(a) => format!("ignored: the default ({}) applies", a.default),
        None => "ignored".into(),
    }
}

/// `rest` of `path` after `prefix`, when `path` is `prefix` or under it.
fn under<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The attributes a problem at `rest` (under the group's table) is about: those at or
/// under the nearest table on its path that holds any (a problem about a pair, such as a
/// timeout not shorter than the interval, names one key of the pair).
fn group_attrs(values: &BTreeMap<String, LabelValue>, rest: &str) -> Vec<String> {
    let segments: Vec<&str> = rest.split('.').filter(|s| !s.is_empty()).collect();
    for n in (0..=segments.len()).rev() {
        let prefix = &segments[..n];
        let hits: Vec<String> = values
            .keys()
            .filter(|attr| {
                label_attribute(attr)
                    .is_some_and(|a| matches!(a.place, Place::Group(path) if path.starts_with(prefix)))
            })
            .cloned()
            .collect();
        if !hits.is_empty() {
            return hits;
        }
    }
    Vec::new()
}

/// The attributes a problem at `rest` (under the group's rule) is about.
fn rule_attrs(values: &BTreeMap<String, LabelValue>, conditions: &[&'static str], rest: &str) -> Vec<String> {
    let set = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter(|n| values.contains_key(**n))
            .map(|n| (*n).to_owned())
            .collect()
    };
    if rest == ".priority" {
        return set(&["priority"]);
    }
    if let Some(index) = rest
        .strip_prefix(".conditions[")
        .and_then(|r| r.split(']').next())
        .and_then(|i| i.parse::<usize>().ok())
        && let Some(attr) = conditions.get(index)
    {
        return set(&[attr]);
    }
    set(&["path-pattern", "host-header", "priority"])
}

fn first_free(used: &BTreeSet<u32>, from: u32) -> u32 {
    (from..=u32::MAX).find(|p| !used.contains(p)).unwrap_or(from)
}

/// Gives every group with a rule its priority: the one it asks for unless the document or
/// an older group holds it (then the next free one above it, noted); groups that ask for
/// none take the next free from [`AUTO_PRIORITY_START`], oldest first.
fn settle_priorities(
    base: &Value,
    checked: &[Checked<'_>],
    notes: &mut Vec<LabelNote>,
) -> BTreeMap<String, u32> {
    let mut holders: BTreeMap<u32, Option<&LabelGroup>> =
        base_priorities(base).into_iter().map(|p| (p, None)).collect();
    let mut out = BTreeMap::new();
    let mut clashed = Vec::new();
    // `checked` is in age order (oldest first): the older group keeps a contested value.
    for c in checked.iter().filter(|c| c.has_rule) {
        let Some(p) = c.asked else { continue };
        match holders.entry(p) {
            std::collections::btree_map::Entry::Occupied(_) => clashed.push((c, p)),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Some(c.group));
                out.insert(c.group.name.clone(), p);
            }
        }
    }
    for (c, p) in clashed {
        let used: BTreeSet<u32> = holders.keys().copied().collect();
        let q = first_free(&used, p.saturating_add(1));
        let by = match holders.get(&p) {
            Some(Some(other)) => format!(
                "target group `{}` (container {}, older) has priority {p}",
                other.name, other.defined_by
            ),
            _ => format!("a rule of the configuration has priority {p}"),
        };
        let v = &c.values["priority"];
        notes.push(LabelNote {
            target_group: c.group.name.clone(),
            label: Some(v.label.clone()),
            value: Some(v.value.clone()),
            severity: Severity::Warning,
            alb_limit: false,
            message: format!("priority {p} is taken: {by}"),
            fix: format!("give {} a priority no other target group uses", v.label),
            effect: format!("its rule runs at priority {q}, after the older group's"),
        });
        holders.insert(q, Some(c.group));
        out.insert(c.group.name.clone(), q);
    }
    for c in checked.iter().filter(|c| c.has_rule && c.asked.is_none()) {
        let used: BTreeSet<u32> = holders.keys().copied().collect();
        let q = first_free(&used, AUTO_PRIORITY_START);
        holders.insert(q, Some(c.group));
        out.insert(c.group.name.clone(), q);
    }
    out
}

fn group_note(g: &LabelGroup, message: String, fix: String, effect: String) -> LabelNote {
    LabelNote {
        target_group: g.name.clone(),
        label: None,
        value: None,
        severity: Severity::Error,
        alb_limit: false,
        message,
        fix,
        effect,
    }
}

/// The problem a failed merge is reported as (a safety net: resolution leaves out what
/// validation refuses, so the merged document validates).
pub(crate) fn left_out(problems: &[Problem]) -> Problem {
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    Problem {
        severity: Severity::Warning,
        path: "container labels".into(),
        message: format!(
            "target groups from container labels left out: {}",
            errors.join("; ")
        ),
        fix: "correct the hostalb labels of their containers (GET /api/discovery lists them)".into(),
        alb_limit: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EMBEDDED_DEFAULT, Format, embedded_default_with_overlay, parse_with_overlay};

    fn group(name: &str, by: &str, since: i64, values: &[(&str, &str)]) -> LabelGroup {
        LabelGroup {
            name: name.into(),
            defined_by: by.into(),
            since,
            values: values
                .iter()
                .map(|(attr, value)| {
                    (
                        (*attr).to_owned(),
                        LabelValue {
                            label: format!("hostalb.{name}.{attr}"),
                            value: (*value).to_owned(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn overlay(groups: Vec<LabelGroup>) -> Overlay {
        Overlay {
            addresses: EmbeddedAddresses::default(),
            label_groups: groups,
        }
    }

    fn report(o: &Overlay) -> LabelReport {
        crate::embedded_label_report(o)
    }

    #[test]
    fn the_address_lines_are_in_the_embedded_default_once() {
        assert_eq!(EMBEDDED_DEFAULT.matches(EMBEDDED_LISTEN_LINE).count(), 1);
        assert_eq!(EMBEDDED_DEFAULT.matches(EMBEDDED_ADMIN_LINE).count(), 1);
        let o = Overlay {
            addresses: EmbeddedAddresses {
                listen: Some("127.0.0.1:18080".parse().unwrap()),
                admin: Some("127.0.0.1:0".parse().unwrap()),
            },
            label_groups: vec![],
        };
        let loaded = embedded_default_with_overlay(&o).unwrap();
        assert_eq!(loaded.config.listeners[0].address.to_string(), "127.0.0.1:18080");
        assert_eq!(loaded.config.admin.address.to_string(), "127.0.0.1:0");
    }

    #[test]
    fn every_attribute_lands_on_a_key_the_file_accepts() {
        let samples: &[(&str, &str)] = &[
            ("path-pattern", "/a/*"),
            ("host-header", "a.example.com"),
            ("priority", "7"),
            ("protocol", "HTTP"),
            ("protocol-version", "HTTP1"),
            ("algorithm", "least_outstanding_requests"),
            ("deregistration-delay-seconds", "5"),
            ("slow-start-seconds", "0"),
            ("stickiness.type", "app_cookie"),
            ("stickiness.duration-seconds", "60"),
            ("stickiness.cookie-name", "SESSION"),
            ("stickiness.enabled", "true"),
            ("health-check.enabled", "true"),
            ("health-check.protocol", "HTTP"),
            ("health-check.path", "/health"),
            ("health-check.port", "8080"),
            ("health-check.interval-seconds", "10"),
            ("health-check.timeout-seconds", "3"),
            ("health-check.healthy-threshold", "3"),
            ("health-check.unhealthy-threshold", "4"),
            ("health-check.matcher", "200-299"),
            ("use-docker-health", "true"),
            ("retry-idempotent", "false"),
        ];
        let covered: BTreeSet<&str> = samples.iter().map(|(a, _)| *a).collect();
        for a in LABEL_ATTRIBUTES {
            assert!(
                a.place == Place::ContainerPort || covered.contains(a.name),
                "no sample for {}",
                a.name
            );
        }
        let o = overlay(vec![group("api", "c1", 1, samples)]);
        let r = report(&o);
        assert!(r.notes.is_empty(), "{:#?}", r.notes);
        let loaded = embedded_default_with_overlay(&o).unwrap();
        let tg = loaded.config.target_group("api").unwrap();
        assert_eq!(tg.health_check.path, "/health");
        assert_eq!(tg.health_check.interval.as_secs(), 10);
        assert_eq!(tg.health_check.healthy_threshold, 3);
        assert_eq!(tg.health_check.matcher.ranges, vec![(200, 299)]);
        assert_eq!(tg.deregistration_delay.as_secs(), 5);
        assert_eq!(tg.algorithm, crate::Algorithm::LeastOutstandingRequests);
        assert!(!tg.retry_idempotent && tg.use_docker_health);
        assert_eq!(
            tg.stickiness,
            Some(crate::Stickiness::AppCookie {
                cookie_name: "SESSION".into(),
                duration: std::time::Duration::from_secs(60)
            })
        );
        let rule = &loaded.config.listeners[0].rules[0];
        assert_eq!(rule.priority, 7);
        assert_eq!(rule.conditions.len(), 2);
    }

    #[test]
    fn an_invalid_value_is_left_out_with_the_validators_reason_and_the_rest_serves() {
        let o = overlay(vec![
            group(
                "api",
                "c1",
                1,
                &[
                    ("path-pattern", "/api/*"),
                    ("health-check.path", "/health"),
                    ("health-check.interval-seconds", "ten"),
                    ("health-check.matcher", "abc"),
                ],
            ),
            group("web", "c2", 2, &[("host-header", "web.example.com")]),
        ]);
        let r = report(&o);
        let labels: Vec<&str> = r
            .notes
            .iter()
            .filter(|n| n.severity == Severity::Error)
            .filter_map(|n| n.label.as_deref())
            .collect();
        assert_eq!(
            labels,
            vec![
                "hostalb.api.health-check.interval-seconds",
                "hostalb.api.health-check.matcher"
            ],
            "{:#?}",
            r.notes
        );
        let interval = &r.notes[0];
        assert!(interval.message.contains("number of seconds"), "{interval:?}");
        assert_eq!(interval.effect, "ignored: the default (30) applies");
        assert!(r.notes[1].fix.contains("200-299"), "{:?}", r.notes[1]);
        let loaded = embedded_default_with_overlay(&o).unwrap();
        let api = loaded.config.target_group("api").unwrap();
        assert_eq!(api.health_check.path, "/health");
        assert_eq!(api.health_check.interval.as_secs(), 30);
        assert!(loaded.config.target_group("web").is_some());
        assert_eq!(loaded.config.listeners[0].rules.len(), 2);
    }

    #[test]
    fn a_pair_that_does_not_fit_drops_the_label_that_was_set() {
        // Only the interval is labelled; the default timeout (5 s) is not shorter.
        let o = overlay(vec![group(
            "api",
            "c1",
            1,
            &[("health-check.interval-seconds", "3")],
        )]);
        let r = report(&o);
        let errors: Vec<&LabelNote> = r.notes.iter().filter(|n| n.severity == Severity::Error).collect();
        assert_eq!(errors.len(), 1, "{:#?}", r.notes);
        assert_eq!(
            errors[0].label.as_deref(),
            Some("hostalb.api.health-check.interval-seconds")
        );
        assert!(errors[0].fix.contains("timeout-seconds"), "{:?}", errors[0]);
        assert!(embedded_default_with_overlay(&o).is_ok());
    }

    #[test]
    fn alb_limits_are_warnings_marked_as_such_and_the_value_is_used() {
        let o = overlay(vec![group(
            "api",
            "c1",
            1,
            &[
                ("health-check.interval-seconds", "1"),
                ("health-check.timeout-seconds", "0.5"),
            ],
        )]);
        let r = report(&o);
        assert!(!r.notes.is_empty());
        assert!(
            r.notes
                .iter()
                .all(|n| n.severity == Severity::Warning && n.alb_limit && n.effect == "used as written"),
            "{:#?}",
            r.notes
        );
        let loaded = embedded_default_with_overlay(&o).unwrap();
        assert_eq!(
            loaded
                .config
                .target_group("api")
                .unwrap()
                .health_check
                .interval
                .as_secs(),
            1
        );
    }

    #[test]
    fn a_priority_clash_keeps_both_rules_and_the_older_group_keeps_the_priority() {
        let o = overlay(vec![
            group(
                "young",
                "c-young",
                20,
                &[("path-pattern", "/y/*"), ("priority", "10")],
            ),
            group(
                "old",
                "c-old",
                10,
                &[("path-pattern", "/o/*"), ("priority", "10")],
            ),
            group(
                "next",
                "c-next",
                30,
                &[("path-pattern", "/n/*"), ("priority", "11")],
            ),
            group("auto", "c-auto", 5, &[("path-pattern", "/a/*")]),
        ]);
        let r = report(&o);
        assert_eq!(r.priorities["old"], 10);
        assert_eq!(r.priorities["next"], 11, "an unclashed priority is kept as asked");
        assert_eq!(r.priorities["young"], 12);
        assert_eq!(r.priorities["auto"], AUTO_PRIORITY_START);
        assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
        let n = &r.notes[0];
        assert_eq!(n.target_group, "young");
        assert_eq!(n.label.as_deref(), Some("hostalb.young.priority"));
        assert_eq!(n.severity, Severity::Warning);
        assert!(!n.alb_limit);
        assert!(n.message.contains("`old` (container c-old, older)"), "{n:?}");
        assert!(n.effect.contains("priority 12"), "{n:?}");
        let loaded = embedded_default_with_overlay(&o).unwrap();
        let priorities: Vec<u32> = loaded.config.listeners[0]
            .rules
            .iter()
            .map(|r| r.priority)
            .collect();
        assert_eq!(priorities, vec![10, 11, 12, AUTO_PRIORITY_START]);
        assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    }

    #[test]
    fn a_bad_priority_falls_back_to_the_next_free_one() {
        let o = overlay(vec![group(
            "api",
            "c1",
            1,
            &[("path-pattern", "/api/*"), ("priority", "first")],
        )]);
        let r = report(&o);
        assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
        assert_eq!(r.notes[0].label.as_deref(), Some("hostalb.api.priority"));
        assert_eq!(r.priorities["api"], AUTO_PRIORITY_START);
    }

    #[test]
    fn a_priority_without_a_condition_is_reported() {
        let o = overlay(vec![group("api", "c1", 1, &[("priority", "5")])]);
        let r = report(&o);
        assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
        assert!(r.notes[0].message.contains("no rule"));
        assert!(r.priorities.is_empty());
        let loaded = embedded_default_with_overlay(&o).unwrap();
        assert!(loaded.config.target_group("api").is_some());
        assert!(loaded.config.listeners[0].rules.is_empty());
    }

    #[test]
    fn a_bad_condition_value_leaves_out_that_condition_only() {
        let o = overlay(vec![group(
            "api",
            "c1",
            1,
            &[("path-pattern", ","), ("host-header", "api.example.com")],
        )]);
        let r = report(&o);
        assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
        assert_eq!(r.notes[0].label.as_deref(), Some("hostalb.api.path-pattern"));
        assert_eq!(
            r.notes[0].effect,
            "ignored: the rule has no path-pattern condition"
        );
        let loaded = embedded_default_with_overlay(&o).unwrap();
        assert_eq!(loaded.config.listeners[0].rules[0].conditions.len(), 1);
    }

    #[test]
    fn a_group_the_file_defines_keeps_the_files_values() {
        let text = r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
[target_group.api]
health_check = { path = "/file" }
"#;
        let o = overlay(vec![group("api", "c1", 1, &[("health-check.path", "/label")])]);
        let loaded = parse_with_overlay(text, Format::Toml, "t.toml", &o).unwrap();
        assert_eq!(
            loaded.config.target_group("api").unwrap().health_check.path,
            "/file"
        );
    }
}
