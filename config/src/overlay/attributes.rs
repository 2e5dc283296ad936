//! The label vocabulary: every attribute a container label may set, where it lands in the
//! configuration document, and how its text becomes a value there.
//!
//! The scheme is one rule: an attribute is the configuration file's key in kebab-case,
//! dotted where the file nests a table (`health_check.interval_seconds` is
//! `health-check.interval-seconds`), written after `hostalb.<group>.` (any group) or after
//! `hostalb.` (the group `hostalb.target-group` names). Values are text in a label; each is
//! turned into the type the file's key takes when it reads as one (`10` a number, `true` a
//! flag) and otherwise passed on as text, so that validation, not this table, says what is
//! wrong with it.

use serde_json::Value;

/// Where an attribute's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Which container port is the target (discovery reads it; no configuration key).
    ContainerPort,
    /// The group's rule: a `path-pattern` condition (comma-separated values).
    PathPattern,
    /// The group's rule: a `host-header` condition (comma-separated values).
    HostHeader,
    /// The group's rule: its priority.
    Priority,
    /// A key of the `[target_group.NAME]` table, by its path in that table.
    Group(&'static [&'static str]),
}

/// The type a value takes in the configuration document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Kept as text.
    Text,
    /// A number of seconds (fractions allowed).
    Seconds,
    /// A whole number.
    Count,
    /// `true` or `false`.
    Flag,
    /// A number when it reads as one, else text (`matcher`, `port`).
    NumberOrText,
    /// Comma-separated texts (rule conditions).
    List,
}

/// One attribute a label may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelAttribute {
    /// As written after `hostalb.<group>.` or `hostalb.`.
    pub name: &'static str,
    pub place: Place,
    kind: Kind,
    /// What applies without the label.
    pub default: &'static str,
    /// ALB's name for the same setting.
    pub alb: &'static str,
}

const fn attr(
    name: &'static str,
    place: Place,
    kind: Kind,
    default: &'static str,
    alb: &'static str,
) -> LabelAttribute {
    LabelAttribute {
        name,
        place,
        kind,
        default,
        alb,
    }
}

/// Every attribute, in the order the README's reference lists them.
pub const LABEL_ATTRIBUTES: &[LabelAttribute] = &[
    attr(
        "container-port",
        Place::ContainerPort,
        Kind::Count,
        "the container's only published TCP port",
        "RegisterTargets Port (ECS containerPort)",
    ),
    attr(
        "path-pattern",
        Place::PathPattern,
        Kind::List,
        "no path condition",
        "rule condition path-pattern",
    ),
    attr(
        "host-header",
        Place::HostHeader,
        Kind::List,
        "no host condition",
        "rule condition host-header",
    ),
    attr(
        "priority",
        Place::Priority,
        Kind::Count,
        "the next free from 1000, oldest group first",
        "rule Priority",
    ),
    attr(
        "protocol",
        Place::Group(&["protocol"]),
        Kind::Text,
        "HTTP",
        "Protocol",
    ),
    attr(
        "protocol-version",
        Place::Group(&["protocol_version"]),
        Kind::Text,
        "HTTP1",
        "ProtocolVersion",
    ),
    attr(
        "algorithm",
        Place::Group(&["algorithm"]),
        Kind::Text,
        "round_robin",
        "load_balancing.algorithm.type",
    ),
    attr(
        "deregistration-delay-seconds",
        Place::Group(&["deregistration_delay_seconds"]),
        Kind::Seconds,
        "300",
        "deregistration_delay.timeout_seconds",
    ),
    attr(
        "slow-start-seconds",
        Place::Group(&["slow_start_seconds"]),
        Kind::Seconds,
        "0 (off)",
        "slow_start.duration_seconds",
    ),
    attr(
        "stickiness.type",
        Place::Group(&["stickiness", "type"]),
        Kind::Text,
        "off",
        "stickiness.enabled + stickiness.type",
    ),
    attr(
        "stickiness.duration-seconds",
        Place::Group(&["stickiness", "duration_seconds"]),
        Kind::Seconds,
        "86400",
        "stickiness.lb_cookie.duration_seconds / stickiness.app_cookie.duration_seconds",
    ),
    attr(
        "stickiness.cookie-name",
        Place::Group(&["stickiness", "cookie_name"]),
        Kind::Text,
        "none (app_cookie needs it)",
        "stickiness.app_cookie.cookie_name",
    ),
    attr(
        "stickiness.enabled",
        Place::Group(&["stickiness", "enabled"]),
        Kind::Flag,
        "true when stickiness.type is set",
        "stickiness.enabled",
    ),
    attr(
        "health-check.enabled",
        Place::Group(&["health_check", "enabled"]),
        Kind::Flag,
        "true",
        "HealthCheckEnabled",
    ),
    attr(
        "health-check.protocol",
        Place::Group(&["health_check", "protocol"]),
        Kind::Text,
        "the group's protocol",
        "HealthCheckProtocol",
    ),
    attr(
        "health-check.path",
        Place::Group(&["health_check", "path"]),
        Kind::Text,
        "/",
        "HealthCheckPath",
    ),
    attr(
        "health-check.port",
        Place::Group(&["health_check", "port"]),
        Kind::NumberOrText,
        "traffic-port",
        "HealthCheckPort",
    ),
    attr(
        "health-check.interval-seconds",
        Place::Group(&["health_check", "interval_seconds"]),
        Kind::Seconds,
        "30",
        "HealthCheckIntervalSeconds",
    ),
    attr(
        "health-check.timeout-seconds",
        Place::Group(&["health_check", "timeout_seconds"]),
        Kind::Seconds,
        "5",
        "HealthCheckTimeoutSeconds",
    ),
    attr(
        "health-check.healthy-threshold",
        Place::Group(&["health_check", "healthy_threshold"]),
        Kind::Count,
        "5",
        "HealthyThresholdCount",
    ),
    attr(
        "health-check.unhealthy-threshold",
        Place::Group(&["health_check", "unhealthy_threshold"]),
        Kind::Count,
        "2",
        "UnhealthyThresholdCount",
    ),
    attr(
        "health-check.matcher",
        Place::Group(&["health_check", "matcher"]),
        Kind::NumberOrText,
        "200",
        "Matcher HttpCode",
    ),
    attr(
        "use-docker-health",
        Place::Group(&["use_docker_health"]),
        Kind::Flag,
        "false",
        "(none: hostalb also takes the container's Docker HEALTHCHECK)",
    ),
    attr(
        "retry-idempotent",
        Place::Group(&["retry_idempotent"]),
        Kind::Flag,
        "true",
        "(none: false is exactly ALB)",
    ),
];

/// Older spellings still read, and the attribute each means.
pub const LABEL_ALIASES: &[(&str, &str)] = &[("health-check-path", "health-check.path")];

/// The attribute `name` sets (an older spelling gives the attribute it stands for).
pub fn label_attribute(name: &str) -> Option<&'static LabelAttribute> {
    let name = LABEL_ALIASES
        .iter()
        .find(|(old, _)| *old == name)
        .map_or(name, |(_, new)| new);
    LABEL_ATTRIBUTES.iter().find(|a| a.name == name)
}

/// The attribute an unknown `name` was probably meant to be: the same letters once case,
/// `-` and `_` are set aside (`health_check.path`, `healthcheck.path`, `Priority`).
pub fn label_attribute_like(name: &str) -> Option<&'static LabelAttribute> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(name);
    LABEL_ATTRIBUTES.iter().find(|a| squash(a.name) == wanted)
}

impl LabelAttribute {
    /// The value as the configuration document holds it: typed when the text reads as
    /// the key's type, else the text itself (validation then says what is wrong).
    pub(crate) fn value(&self, text: &str) -> Value {
        let text = text.trim();
        let as_text = || Value::String(text.to_owned());
        match self.kind {
            Kind::Text => as_text(),
            Kind::List => Value::Array(list(text).into_iter().map(Value::String).collect()),
            Kind::Count | Kind::NumberOrText => text.parse::<i64>().map_or_else(|_| as_text(), Value::from),
            Kind::Seconds => match text.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map_or_else(as_text, Value::from),
            },
            Kind::Flag => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => as_text(),
            },
        }
    }

    /// The value in a form where two spellings of the same setting compare equal
    /// (condition values in any order, spaces around commas).
    pub fn normalized(&self, text: &str) -> String {
        match self.kind {
            Kind::List => {
                let mut values = list(text);
                values.sort();
                values.dedup();
                values.join(",")
            }
            _ => text.trim().to_owned(),
        }
    }

    /// The key of the configuration file it stands for, dotted (`health_check.path`);
    /// `None` for the container port.
    pub fn file_key(&self) -> Option<String> {
        match self.place {
            Place::ContainerPort => None,
            Place::PathPattern => Some("rule conditions path-pattern".into()),
            Place::HostHeader => Some("rule conditions host-header".into()),
            Place::Priority => Some("rule priority".into()),
            Place::Group(path) => Some(path.join(".")),
        }
    }
}

/// Comma-separated values, trimmed, empty ones left out.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A fix written for the file, in label spelling: every file key with an underscore that
/// an attribute stands for is written as the attribute's last word
/// (`timeout_seconds` -> `timeout-seconds`).
pub(crate) fn in_label_words(fix: &str) -> String {
    let mut out = fix.to_owned();
    for a in LABEL_ATTRIBUTES {
        if let Place::Group(path) = a.place
            && let Some(leaf) = path.last()
            && leaf.contains('_')
        {
            out = out.replace(leaf, &leaf.replace('_', "-"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_type_of_the_file_key_when_they_read_as_it() {
        let a = |n| label_attribute(n).unwrap();
        assert_eq!(a("health-check.interval-seconds").value(" 10 "), Value::from(10));
        assert_eq!(a("health-check.interval-seconds").value("0.5"), Value::from(0.5));
        assert_eq!(
            a("health-check.interval-seconds").value("ten"),
            Value::from("ten")
        );
        assert_eq!(
            a("health-check.interval-seconds").value("inf"),
            Value::from("inf")
        );
        assert_eq!(a("health-check.healthy-threshold").value("3"), Value::from(3));
        assert_eq!(a("health-check.matcher").value("200"), Value::from(200));
        assert_eq!(a("health-check.matcher").value("200-299"), Value::from("200-299"));
        assert_eq!(a("health-check.enabled").value("false"), Value::Bool(false));
        assert_eq!(a("health-check.enabled").value("no"), Value::from("no"));
        assert_eq!(a("health-check.path").value("/health"), Value::from("/health"));
        assert_eq!(
            a("path-pattern").value("/a/*, /b/*,"),
            serde_json::json!(["/a/*", "/b/*"])
        );
    }

    #[test]
    fn older_spellings_and_near_misses_are_found() {
        assert_eq!(
            label_attribute("health-check-path").unwrap().name,
            "health-check.path"
        );
        assert!(label_attribute("health_check.path").is_none());
        assert_eq!(
            label_attribute_like("health_check.path").unwrap().name,
            "health-check.path"
        );
        assert_eq!(
            label_attribute_like("healthcheck.Path").unwrap().name,
            "health-check.path"
        );
        assert!(label_attribute_like("nothing").is_none());
    }

    #[test]
    fn condition_lists_compare_as_sets() {
        let p = label_attribute("path-pattern").unwrap();
        assert_eq!(p.normalized("/b/*, /a/*"), p.normalized("/a/*,/b/*"));
        let h = label_attribute("health-check.path").unwrap();
        assert_ne!(h.normalized("/a"), h.normalized("/b"));
    }

    #[test]
    fn fixes_are_rewritten_in_label_words() {
        assert_eq!(
            in_label_words("make timeout_seconds smaller than interval_seconds"),
            "make timeout-seconds smaller than interval-seconds"
        );
    }
}
