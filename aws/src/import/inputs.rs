//! Which describe command printed a file: recognised by its top-level keys.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ImportError, Input};
use crate::ecs;
use crate::elbv2;

/// One input, read.
#[derive(Debug)]
pub(crate) enum Document {
    LoadBalancers(elbv2::DescribeLoadBalancersOutput),
    Listeners(elbv2::DescribeListenersOutput),
    Rules(elbv2::DescribeRulesOutput),
    TargetGroups(elbv2::DescribeTargetGroupsOutput),
    /// `describe-target-group-attributes` or `describe-load-balancer-attributes`, with the
    /// name or ARN it is for (given as `NAME_OR_ARN=FILE`, else read from the file name).
    Attributes {
        of: Option<String>,
        output: elbv2::AttributesOutput,
    },
    Services(ecs::DescribeServicesOutput),
    TaskDefinition(ecs::DescribeTaskDefinitionOutput),
}

/// The top-level key of each describe command's output.
const KEYS: [(&str, &str); 7] = [
    ("LoadBalancers", "aws elbv2 describe-load-balancers"),
    ("Listeners", "aws elbv2 describe-listeners"),
    ("Rules", "aws elbv2 describe-rules"),
    ("TargetGroups", "aws elbv2 describe-target-groups"),
    ("Attributes", "aws elbv2 describe-target-group-attributes"),
    ("services", "aws ecs describe-services"),
    ("taskDefinition", "aws ecs describe-task-definition"),
];

/// Reads one input.
pub(crate) fn read(input: &Input) -> Result<Document, ImportError> {
    let value: Value = serde_json::from_str(&input.text).map_err(|e| ImportError::Json {
        origin: input.origin.clone(),
        message: e.to_string(),
    })?;
    let Value::Object(map) = &value else {
        return Err(ImportError::Unrecognised {
            origin: input.origin.clone(),
            keys: Vec::new(),
        });
    };
    let Some((key, _)) = KEYS.iter().find(|(k, _)| map.contains_key(*k)) else {
        return Err(ImportError::Unrecognised {
            origin: input.origin.clone(),
            keys: map.keys().cloned().collect(),
        });
    };
    let doc = match *key {
        "LoadBalancers" => Document::LoadBalancers(shape(input, value)?),
        "Listeners" => Document::Listeners(shape(input, value)?),
        "Rules" => Document::Rules(shape(input, value)?),
        "TargetGroups" => Document::TargetGroups(shape(input, value)?),
        "Attributes" => Document::Attributes {
            of: input.name.clone().or_else(|| name_from_file(&input.origin)),
            output: shape(input, value)?,
        },
        "services" => Document::Services(shape(input, value)?),
        _ => Document::TaskDefinition(shape(input, value)?),
    };
    Ok(doc)
}

/// What each recognised key comes from, for messages.
pub(crate) fn known_outputs() -> String {
    KEYS.iter()
        .map(|(k, cmd)| format!("{k} ({cmd})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape<T: DeserializeOwned>(input: &Input, value: Value) -> Result<T, ImportError> {
    serde_json::from_value(value).map_err(|e| ImportError::Json {
        origin: input.origin.clone(),
        message: e.to_string(),
    })
}

/// The group an attributes file is for, from its name: the last dot-separated part before
/// `.json` (`describe-target-group-attributes.api.json` and `api.json` are for `api`).
fn name_from_file(origin: &str) -> Option<String> {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    let stem = file.strip_suffix(".json").unwrap_or(file);
    let last = stem.rsplit('.').next().unwrap_or(stem);
    (!last.is_empty()).then(|| last.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(origin: &str, text: &str) -> Input {
        Input {
            origin: origin.into(),
            name: None,
            text: text.into(),
        }
    }

    #[test]
    fn recognises_each_output_by_its_key() {
        let cases = [
            (r#"{"LoadBalancers":[]}"#, "LoadBalancers"),
            (r#"{"Listeners":[]}"#, "Listeners"),
            (r#"{"Rules":[],"NextMarker":null}"#, "Rules"),
            (r#"{"TargetGroups":[]}"#, "TargetGroups"),
            (r#"{"Attributes":[]}"#, "Attributes"),
            (r#"{"services":[],"failures":[]}"#, "Services"),
            (
                r#"{"taskDefinition":{"family":"f","containerDefinitions":[]}}"#,
                "TaskDefinition",
            ),
        ];
        for (text, want) in cases {
            let doc = read(&input("x.json", text)).unwrap();
            assert!(format!("{doc:?}").starts_with(want), "{text}: {doc:?}");
        }
    }

    #[test]
    fn attributes_take_their_group_from_the_argument_or_the_file_name() {
        let mut i = input(
            "dir/describe-target-group-attributes.api.json",
            r#"{"Attributes":[]}"#,
        );
        assert!(matches!(read(&i).unwrap(), Document::Attributes { of: Some(ref n), .. } if n == "api"));
        i.name = Some("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/1".into());
        assert!(
            matches!(read(&i).unwrap(), Document::Attributes { of: Some(ref n), .. } if n.ends_with("web/1"))
        );
        assert_eq!(name_from_file("web.json").as_deref(), Some("web"));
    }

    #[test]
    fn unknown_and_broken_inputs_are_errors() {
        assert!(matches!(read(&input("a", "{")), Err(ImportError::Json { .. })));
        assert!(matches!(
            read(&input("a", r#"{"Reservations":[]}"#)),
            Err(ImportError::Unrecognised { ref keys, .. }) if keys == &["Reservations".to_owned()]
        ));
        assert!(matches!(
            read(&input("a", "[]")),
            Err(ImportError::Unrecognised { .. })
        ));
        assert!(matches!(
            read(&input("a", r#"{"Rules":[{"Priority":5}]}"#)),
            Err(ImportError::Json { .. })
        ));
    }
}
