//! Target groups and rules that come from container labels (`hostalb.target-group`,
//! `hostalb.path-pattern`, `hostalb.host-header`, `hostalb.priority`,
//! `hostalb.health-check-path`) when hostalb runs without a configuration file.
//!
//! The overlay is merged into the configuration document *before* validation, so label
//! groups are checked exactly like written ones. A label group that would make the
//! configuration invalid is left out and reported as a warning: one badly labelled
//! container never takes the others down.

use serde_json::{Map, Value, json};

use crate::problems::{Problem, Severity};

/// Priorities of label rules without `hostalb.priority` start here, leaving 1-999 for
/// rules people write.
const AUTO_PRIORITY_START: u64 = 1000;

/// One target group declared by container labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelGroup {
    pub name: String,
    /// `hostalb.path-pattern` values (comma-separated in the label).
    pub path_patterns: Vec<String>,
    /// `hostalb.host-header` values.
    pub host_headers: Vec<String>,
    /// `hostalb.priority`; without it the next free priority from 1000 is used.
    pub priority: Option<u32>,
    /// `hostalb.health-check-path`.
    pub health_check_path: Option<String>,
}

/// Everything container labels add to a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub label_groups: Vec<LabelGroup>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.label_groups.is_empty()
    }

    /// Merges the label groups into `doc`: a `[target_group.NAME]` for each group the
    /// document does not define, and a rule on the first listener for each group with a
    /// path or host label. Returns warnings for groups left out.
    pub(crate) fn merge(&self, doc: &mut Value, validate: impl Fn(&Value) -> bool) -> Vec<Problem> {
        let mut notes = Vec::new();
        let mut groups: Vec<&LabelGroup> = self.label_groups.iter().collect();
        groups.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
        for g in groups {
            let mut candidate = doc.clone();
            if let Err(why) = merge_one(&mut candidate, g) {
                notes.push(note(g, why));
                continue;
            }
            if validate(&candidate) {
                *doc = candidate;
            } else {
                notes.push(note(
                    g,
                    "its labels do not make a valid target group and rule (run `hostalb check` on an equivalent file to see why)".into(),
                ));
            }
        }
        notes
    }
}

fn note(g: &LabelGroup, message: String) -> Problem {
    Problem {
        severity: Severity::Warning,
        path: format!("labels of target group `{}`", g.name),
        message: format!("left out: {message}"),
        fix: "correct the hostalb.* labels of its containers".into(),
        alb_limit: false,
    }
}

fn merge_one(doc: &mut Value, g: &LabelGroup) -> Result<(), String> {
    let Value::Object(root) = doc else {
        return Err("the configuration is not a table".into());
    };
    let groups = root
        .entry("target_group")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(groups) = groups else {
        return Err("`target_group` is not a table".into());
    };
    if !groups.contains_key(&g.name) {
        let mut table = Map::new();
        if let Some(path) = &g.health_check_path {
            table.insert("health_check".into(), json!({ "path": path }));
        }
        groups.insert(g.name.clone(), Value::Object(table));
    }
    if g.path_patterns.is_empty() && g.host_headers.is_empty() {
        return Ok(());
    }
    let Some(Value::Array(listeners)) = root.get_mut("listener") else {
        return Err("there is no listener to add its rule to".into());
    };
    let Some(Value::Object(listener)) = listeners.first_mut() else {
        return Err("there is no listener to add its rule to".into());
    };
    let rules = listener.entry("rule").or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(rules) = rules else {
        return Err("the listener's `rule` is not a list".into());
    };
    let used: Vec<u64> = rules
        .iter()
        .filter_map(|r| r.get("priority").and_then(Value::as_u64))
        .collect();
    let priority = match g.priority {
        Some(p) if used.contains(&u64::from(p)) => return Err(format!("priority {p} is already taken")),
        Some(p) => u64::from(p),
        None => (AUTO_PRIORITY_START..)
            .find(|p| !used.contains(p))
            .unwrap_or(AUTO_PRIORITY_START),
    };
    let mut conditions = Vec::new();
    if !g.path_patterns.is_empty() {
        conditions.push(json!({ "field": "path-pattern", "values": g.path_patterns }));
    }
    if !g.host_headers.is_empty() {
        conditions.push(json!({ "field": "host-header", "values": g.host_headers }));
    }
    rules.push(json!({
        "priority": priority,
        "conditions": conditions,
        "action": { "type": "forward", "target_group": g.name },
    }));
    Ok(())
}
