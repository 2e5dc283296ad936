//! `hostalb import`: the JSON `aws elbv2 describe-*` and `aws ecs describe-*` print, in; a
//! hostalb configuration (TOML text) and notes on what could not be carried over, out.
//!
//! Inputs are recognised by their top-level keys (`LoadBalancers`, `Listeners`, `Rules`,
//! `TargetGroups`, `Attributes`, `services`, `taskDefinition`). Attributes outputs do not
//! name their target group (or load balancer): the caller gives it (`NAME_OR_ARN=FILE`),
//! else the file name's last dot-separated part before `.json` is taken.
//!
//! What comes over: listeners (`127.0.0.1:<Port>`: a local stand-in; another load
//! balancer's listener on a port already taken binds `127.0.0.2`, ...), their rules (the
//! six condition types, forward, weighted forward with group stickiness, redirect,
//! fixed-response, transforms), target groups with their health checks and attributes
//! (deregistration delay, slow start, algorithm, stickiness), load balancer attributes
//! hostalb has (idle timeout, desync mitigation, X-Forwarded-For handling, ...), and for
//! each ECS service load balancer a Docker selector on the ECS agent's labels. What does
//! not (authenticate actions, mutual TLS revocation, WAF, attributes hostalb lacks, protocols other
//! than HTTP and HTTPS) is listed in the notes.

mod groups;
mod inputs;
mod listeners;
mod notes;
mod render;
mod toml_out;

use std::fmt;

use crate::elbv2;

use self::notes::Notes;
pub use self::notes::{Note, NoteKind};

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file's path, for messages and for the name an attributes file is for.
    pub origin: String,
    /// `NAME_OR_ARN` of a `NAME_OR_ARN=FILE` argument.
    pub name: Option<String>,
    pub text: String,
}

/// The result: the configuration and the notes on what was left out or changed.
#[derive(Debug, Clone)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<Note>,
}

/// Inputs that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    /// Not JSON, or not the shape its key announces.
    Json { origin: String, message: String },
    /// JSON of no describe command the import reads.
    Unrecognised { origin: String, keys: Vec<String> },
    /// An attributes output whose group cannot be told.
    AttributesFor { origin: String, name: Option<String> },
    /// Nothing to build a configuration from.
    Empty,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Json { origin, message } => write!(f, "{origin}: not describe output: {message}"),
            ImportError::Unrecognised { origin, keys } => write!(
                f,
                "{origin}: not the output of a describe command the import reads (top-level keys: {}); expected one of: {}",
                if keys.is_empty() { "none".to_owned() } else { keys.join(", ") },
                inputs::known_outputs()
            ),
            ImportError::AttributesFor { origin, name: None } => write!(
                f,
                "{origin}: attributes output does not name its target group: pass it as NAME_OR_ARN={origin}"
            ),
            ImportError::AttributesFor { origin, name: Some(name) } => write!(
                f,
                "{origin}: `{name}` is no target group or load balancer of the describe output given: pass it as NAME_OR_ARN={origin}, with the name or ARN of one"
            ),
            ImportError::Empty => f.write_str(
                "no listener and no target group in the inputs: give describe-listeners, describe-rules and describe-target-groups output",
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Everything read, merged (duplicates by ARN dropped).
#[derive(Debug, Default)]
pub(crate) struct Described {
    pub load_balancers: Vec<elbv2::LoadBalancer>,
    pub listeners: Vec<elbv2::Listener>,
    pub rules: Vec<elbv2::Rule>,
    pub target_groups: Vec<elbv2::TargetGroup>,
    /// (name or ARN, origin, attributes).
    pub attributes: Vec<(String, String, Vec<elbv2::Attribute>)>,
    pub services: Vec<crate::ecs::Service>,
    pub task_definitions: Vec<crate::ecs::TaskDefinition>,
    pub origins: Vec<String>,
    /// Target groups defined elsewhere (the configuration file), by ARN: actions may
    /// forward to them; they are not written.
    pub external_groups: Vec<(String, String)>,
}

/// The resources the ELBv2 API keeps, to be turned into configuration.
#[derive(Debug, Default)]
pub struct ApiResources {
    pub load_balancers: Vec<elbv2::LoadBalancer>,
    pub listeners: Vec<elbv2::Listener>,
    /// Rules other than the listeners' default rules.
    pub rules: Vec<elbv2::Rule>,
    pub target_groups: Vec<elbv2::TargetGroup>,
    /// (name or ARN of a target group or load balancer, its attributes).
    pub attributes: Vec<(String, Vec<elbv2::Attribute>)>,
    /// Target groups of the configuration file: (ARN, name).
    pub external_groups: Vec<(String, String)>,
}

/// The configuration document (`listener` and `target_group`, as a file would write them)
/// for the API's resources, by the importer's mapping; the notes say what could not be
/// carried. Listeners are named `LB-PORT` and bind `127.0.0.1:PORT`.
pub fn api_document(r: ApiResources) -> Result<(serde_json::Value, Vec<Note>), String> {
    let d = Described {
        load_balancers: r.load_balancers,
        listeners: r.listeners,
        rules: r.rules,
        target_groups: r.target_groups,
        attributes: r
            .attributes
            .into_iter()
            .map(|(of, a)| (of, "(API)".to_owned(), a))
            .collect(),
        external_groups: r.external_groups,
        ..Described::default()
    };
    let mut notes = Notes::default();
    let groups = groups::build(&d, &mut notes);
    let listeners = listeners::build(&d, &groups, &mut notes);
    let text = render::render(&d, &listeners, &groups);
    let doc: serde_json::Value = toml::from_str(&text).map_err(|e| format!("internal: {e}"))?;
    Ok((doc, notes.0))
}

/// Imports describe output: the configuration, and notes on what could not be carried.
pub fn import(inputs: &[Input]) -> Result<Imported, ImportError> {
    let mut d = Described::default();
    let mut pending_attributes = Vec::new();
    for input in inputs {
        d.origins.push(input.origin.clone());
        match inputs::read(input)? {
            inputs::Document::LoadBalancers(o) => {
                extend(&mut d.load_balancers, o.load_balancers, |x| &x.load_balancer_arn)
            }
            inputs::Document::Listeners(o) => extend(&mut d.listeners, o.listeners, |x| &x.listener_arn),
            inputs::Document::Rules(o) => extend(&mut d.rules, o.rules, |x| &x.rule_arn),
            inputs::Document::TargetGroups(o) => {
                extend(&mut d.target_groups, o.target_groups, |x| &x.target_group_arn)
            }
            inputs::Document::Attributes { of, output } => {
                pending_attributes.push((input.origin.clone(), of, output.attributes))
            }
            inputs::Document::Services(o) => extend(&mut d.services, o.services, |x| &x.service_name),
            inputs::Document::TaskDefinition(o) => d.task_definitions.push(o.task_definition),
        }
    }
    // Attributes are matched once every group and load balancer is known.
    for (origin, of, attributes) in pending_attributes {
        let known = of.as_deref().is_some_and(|n| {
            d.target_groups
                .iter()
                .any(|g| g.target_group_name == n || g.target_group_arn == n)
                || d.load_balancers
                    .iter()
                    .any(|l| l.load_balancer_name == n || l.load_balancer_arn == n)
                || (n.contains(":targetgroup/") || n.contains(":loadbalancer/app/"))
        });
        match of {
            Some(name) if known => d.attributes.push((name, origin, attributes)),
            name => return Err(ImportError::AttributesFor { origin, name }),
        }
    }
    if d.listeners.is_empty() && d.target_groups.is_empty() && d.services.is_empty() {
        return Err(ImportError::Empty);
    }
    let mut notes = Notes::default();
    let groups = groups::build(&d, &mut notes);
    let listeners = listeners::build(&d, &groups, &mut notes);
    let toml = render::render(&d, &listeners, &groups);
    Ok(Imported { toml, notes: notes.0 })
}

fn extend<T>(into: &mut Vec<T>, items: Vec<T>, id: impl Fn(&T) -> &String) {
    for item in items {
        if !into.iter().any(|x| id(x) == id(&item)) {
            into.push(item);
        }
    }
}

#[cfg(test)]
mod tests;
