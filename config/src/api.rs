//! The resources the AWS API made, merged into the configuration document before
//! validation (one way in: they are validated as a file's would be).

use serde_json::{Map, Value};

use crate::problems::{Problem, Severity};

/// Appends `api`'s listeners to the document's and adds its target groups. A target group
/// name the document already has is a problem (the file's group stays).
pub(crate) fn merge(doc: &mut Value, api: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(map) = doc.as_object_mut() else {
        return problems;
    };
    if let Some(Value::Array(items)) = api.get("listener") {
        if !items.is_empty() {
            let entry = map.entry("listener").or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.extend(items.iter().cloned());
            }
        }
    }
    if let Some(Value::Object(groups)) = api.get("target_group") {
        if !groups.is_empty() {
            let entry = map
                .entry("target_group")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(existing) = entry {
                for (name, group) in groups {
                    if existing.contains_key(name) {
                        problems.push(Problem {
                            severity: Severity::Error,
                            path: format!("target_group.{name}"),
                            message: format!("target group `{name}` is defined in the configuration file"),
                            fix: "give the API's target group another name".to_owned(),
                            alb_limit: false,
                        });
                    } else {
                        existing.insert(name.clone(), group.clone());
                    }
                }
            }
        }
    }
    problems
}
