//! One validation pass: raw document -> typed [`Config`], reporting every problem with its
//! path and a fix.
//!
//! Two kinds of problem: *impossible* ones (an unknown target group, a duplicate priority,
//! a health-check timeout not shorter than its interval, a value that does not parse) are
//! always errors; *ALB limits* (ranges, budgets and character sets ALB's API enforces) are
//! warnings unless `strict_alb = true`, because hostalb can serve them and a local stand-in
//! is often used beyond them (a `localhost` host-header, say).
//!
//! The pass is split by concern: this module holds the shared context, the top-level
//! document, admin, docker and listeners; [`rules`] the rules, conditions and
//! transforms; [`actions`] forward, redirect and fixed-response; [`target_group`]
//! target groups, stickiness, health checks and code matchers.

mod actions;
mod rules;
mod target_group;
mod tls;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::defaults;
use crate::model::*;
use crate::problems::{Problem, Severity};
use crate::raw::*;

use self::actions::validate_action;
use self::rules::validate_rule;
use self::target_group::validate_target_group;

/// ALB: every condition value is at most 128 characters.
const VALUE_MAX_LEN: usize = 128;
/// ALB: rules per load balancer, default rules excluded.
const RULES_PER_ALB: usize = 100;
/// ALB: stickiness durations run from 1 s to 7 days.
const STICKINESS_MAX_SECONDS: f64 = 604_800.0;

/// Problems are collected here; `alb_limit` problems get their severity at the end, once
/// `strict_alb` is known.
struct Ctx {
    problems: Vec<Problem>,
    /// Paths of keys already reported as unreadable and dropped: a later problem at or
    /// under one of them (the value is now missing) would say nothing new.
    dropped: Vec<String>,
}

impl Ctx {
    fn error(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(path, message, fix, false);
    }

    fn limit(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(path, message, fix, true);
    }

    /// A warning that `strict_alb` does not promote: hostalb serves the value, but not all
    /// of what it means on ALB.
    fn warning(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        let before = self.problems.len();
        self.push(path, message, fix, false);
        if self.problems.len() > before {
            if let Some(p) = self.problems.last_mut() {
                p.severity = Severity::Warning;
            }
        }
    }

    fn push(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>, alb_limit: bool) {
        let under = |d: &String| {
            path.strip_prefix(d.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        if self.dropped.iter().any(under) {
            return;
        }
        self.problems.push(Problem {
            severity: if alb_limit {
                Severity::Warning
            } else {
                Severity::Error
            },
            path: path.to_owned(),
            message: message.into(),
            fix: fix.into(),
            alb_limit,
        });
    }

    /// Deserializes one element, reporting a serde failure (unknown key, wrong type) at
    /// its exact path. The key at fault is then dropped and the element read again, so
    /// that one bad key does not hide the problems in the rest of the element.
    fn de<T: DeserializeOwned>(&mut self, mut value: Value, path: &str) -> Option<T> {
        loop {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let segments: Vec<&Segment> = e.path().iter().collect();
            let message = e.inner().to_string();
            let fix = if message.starts_with("unknown field") {
                "remove the key or correct its spelling (the known keys are listed)"
            } else if message.starts_with("missing field") {
                "add the missing key"
            } else {
                "write the value with the type named"
            };
            self.error(&join_path(path, &segments), message, fix);
            // The innermost key on the way to the fault: an unknown key itself, or the
            // key holding the value of the wrong type.
            let k = segments.iter().rposition(|s| matches!(s, Segment::Map { .. }))?;
            if !remove_key(&mut value, &segments[..=k]) {
                return None;
            }
            self.dropped.push(join_path(path, &segments[..=k]));
        }
    }

    fn seconds(&mut self, value: Option<Seconds>, default: Duration, path: &str) -> Duration {
        match value {
            None => default,
            Some(Seconds(s)) if (0.0..1e9).contains(&s) => Duration::from_secs_f64(s),
            Some(Seconds(s)) => {
                self.error(
                    path,
                    format!("{s} is not a number of seconds"),
                    "use a number >= 0",
                );
                default
            }
        }
    }

    /// Checks an ALB range on a duration in seconds.
    fn seconds_range(&mut self, d: Duration, min: f64, max: f64, path: &str, what: &str) {
        let s = d.as_secs_f64();
        if s < min || s > max {
            self.limit(
                path,
                format!("ALB allows {what} from {min} to {max} seconds, not {s}"),
                format!("use a value from {min} to {max}"),
            );
        }
    }

    fn choice<T: Copy>(&mut self, value: Option<&str>, choices: &[(&str, T)], default: T, path: &str) -> T {
        let Some(value) = value else { return default };
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == value) {
            return *v;
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        if let Some((name, v)) = choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(value)) {
            self.limit(
                path,
                format!("`{value}` is spelled `{name}` by ALB"),
                "use the exact spelling",
            );
            return *v;
        }
        self.error(
            path,
            format!("unknown value `{value}`"),
            format!("use one of: {}", names.join(", ")),
        );
        default
    }
}

/// `path` followed by serde's segments, spelt as problem paths are (`a.b[0].c`).
fn join_path(path: &str, segments: &[&Segment]) -> String {
    let mut out = path.to_owned();
    for segment in segments {
        match segment {
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// Removes the key `segments` lead to from `value`; false when they do not lead to a key
/// of a table.
fn remove_key(value: &mut Value, segments: &[&Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut here = value;
    for segment in parents {
        let next = match (segment, here) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return false };
        here = next;
    }
    match here {
        Value::Object(map) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// Validates a parsed document. Returns the config (when no error was found) and every
/// problem, with ALB-limit problems promoted to errors under `strict_alb`.
pub(crate) fn validate(doc: Value) -> (Option<Config>, Vec<Problem>) {
    let mut cx = Ctx {
        problems: Vec::new(),
        dropped: Vec::new(),
    };
    let config = validate_document(&mut cx, doc);
    let strict = config.as_ref().map(|c| c.strict_alb).unwrap_or(false);
    for p in &mut cx.problems {
        if p.alb_limit && strict {
            p.severity = Severity::Error;
        }
    }
    let failed = cx.problems.iter().any(|p| p.severity == Severity::Error);
    (if failed { None } else { config }, cx.problems)
}

fn validate_document(cx: &mut Ctx, doc: Value) -> Option<Config> {
    let Value::Object(map) = doc else {
        cx.error(
            "(top level)",
            "the configuration must be a table",
            "start from examples/basic.toml",
        );
        return None;
    };
    let mut strict_alb = false;
    let mut max_client_connections = None;
    let mut access_log = None;
    let mut admin = RawAdmin::default();
    let mut docker = RawDocker::default();
    let mut docker_table = false;
    let mut listeners_raw: Vec<Value> = Vec::new();
    let mut groups_raw: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in map {
        match key.as_str() {
            "strict_alb" => strict_alb = cx.de(value, "strict_alb").unwrap_or(false),
            "max_client_connections" => {
                max_client_connections = match cx.de::<u32>(value, "max_client_connections") {
                    Some(0) => {
                        cx.error(
                            "max_client_connections",
                            "max_client_connections must be at least 1",
                            "leave it out for a budget derived from the descriptor limit, or give a positive number",
                        );
                        None
                    }
                    n => n,
                }
            }
            "admin" => admin = cx.de(value, "admin").unwrap_or_default(),
            "access_log" => {
                access_log = cx
                    .de::<RawAccessLog>(value, "access_log")
                    .and_then(|raw| validate_access_log(cx, raw))
            }
            "docker" => {
                docker_table = true;
                docker = cx.de(value, "docker").unwrap_or_default();
            }
            "listener" => match value {
                Value::Array(items) => listeners_raw = items,
                Value::Object(_) => {
                    cx.error(
                        "listener",
                        "`listener` must be a list of listeners",
                        "write [[listener]] (two brackets) in TOML, or \"listener\": [ ... ] in JSON",
                    )
                }
                _ => {
                    cx.error(
                        "listener",
                        "`listener` must be a list of listeners",
                        "write [[listener]] tables",
                    )
                }
            },
            "target_group" => match value {
                Value::Object(groups) => groups_raw = groups.into_iter().collect(),
                _ => cx.error(
                    "target_group",
                    "`target_group` must be a table of named target groups",
                    "write [target_group.NAME] tables",
                ),
            },
            other => cx.error(
                other,
                format!("unknown key `{other}`"),
                "the top-level keys are strict_alb, max_client_connections, admin, access_log, docker, listener and target_group",
            ),
        }
    }

    let admin = validate_admin(cx, admin);
    let docker = validate_docker(cx, docker);
    // Groups that are written but invalid: a forward to one is not also reported as a
    // forward to an unknown group (the group's own problem already fails the config).
    let declared_groups: HashSet<String> = groups_raw.keys().cloned().collect();
    let target_groups: Vec<TargetGroup> = groups_raw
        .into_iter()
        .filter_map(|(name, value)| validate_target_group(cx, name, value))
        .collect();
    let group_names: HashMap<&str, &TargetGroup> =
        target_groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let mut docker = docker;
    docker.enabled = docker_table || target_groups.iter().any(|g| g.docker.is_some());

    // No `[[listener]]` is valid: the AWS API may create the listeners.
    let mut listeners = Vec::new();
    for (i, value) in listeners_raw.into_iter().enumerate() {
        if let Some(l) = validate_listener(cx, i, value, &group_names, &declared_groups) {
            listeners.push(l);
        }
    }
    check_listener_set(cx, &listeners);

    let total_rules: usize = listeners.iter().map(|l| l.rules.len()).sum();
    if total_rules > RULES_PER_ALB {
        cx.limit(
            "listener",
            format!("{total_rules} rules; ALB allows {RULES_PER_ALB} per load balancer (default rules not counted)"),
            "merge rules, or accept that ALB would need a quota increase",
        );
    }

    Some(Config {
        strict_alb,
        admin,
        docker,
        listeners,
        target_groups,
        max_client_connections,
        access_log,
    })
}

fn validate_access_log(cx: &mut Ctx, raw: RawAccessLog) -> Option<AccessLog> {
    let format = match raw.format.as_deref().unwrap_or("alb") {
        "alb" => AccessLogFormat::Alb,
        "json" => AccessLogFormat::Json,
        other => {
            cx.error(
                "access_log.format",
                format!("unknown access log format `{other}`"),
                "use \"alb\" (ALB's line format) or \"json\" (the same fields, named)",
            );
            AccessLogFormat::Alb
        }
    };
    let path = match raw.path.as_deref() {
        None | Some("") => {
            if raw.enabled != Some(false) {
                cx.error(
                    "access_log.path",
                    "the access log needs a path",
                    "give path = \"/var/log/hostalb/access.log\", or \"-\" for standard output",
                );
            }
            None
        }
        Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    if raw.enabled == Some(false) {
        return None;
    }
    Some(AccessLog { path, format })
}

fn validate_admin(cx: &mut Ctx, raw: RawAdmin) -> Admin {
    let text = raw.address.unwrap_or_else(|| defaults::ADMIN_ADDRESS.to_owned());
    let address = parse_socket_addr(cx, &text, "admin.address")
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9901)));
    let credentials = match (raw.access_key_id, raw.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Some(Credentials {
                access_key_id,
                secret_access_key,
            })
        }
        (None, None) => None,
        _ => {
            cx.error(
                "admin.access_key_id",
                "access_key_id and secret_access_key go together, neither empty",
                "set both (the key AWS clients sign API calls with), or neither",
            );
            None
        }
    };
    let state_file = match raw.state_file {
        Some(p) if p.is_empty() => {
            cx.error(
                "admin.state_file",
                "state_file is empty",
                "name a file (default: hostalb.state.json beside the configuration file), or remove the key",
            );
            None
        }
        p => p.map(std::path::PathBuf::from),
    };
    let api_listener_address = match raw.api_listener_address {
        None => defaults::API_LISTENER_ADDRESS,
        Some(text) => text.parse().unwrap_or_else(|_| {
            cx.error(
                "admin.api_listener_address",
                format!("`{text}` is not an IP address"),
                "write an address without port, such as \"127.0.0.1\" or \"0.0.0.0\"",
            );
            defaults::API_LISTENER_ADDRESS
        }),
    };
    Admin {
        address,
        credentials,
        state_file,
        api_listener_address,
    }
}

fn validate_docker(cx: &mut Ctx, raw: RawDocker) -> Docker {
    if let Some(endpoint) = &raw.endpoint {
        let known = ["unix://", "tcp://", "http://", "https://"];
        if !known.iter().any(|s| endpoint.starts_with(s)) {
            cx.error(
                "docker.endpoint",
                format!("`{endpoint}` is not a Docker endpoint"),
                "use unix:///var/run/docker.sock, tcp://HOST:PORT or http://HOST:PORT",
            );
        }
    }
    let host_address = match raw.host_address.as_deref() {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(text) => text.parse().unwrap_or_else(|_| {
            cx.error(
                "docker.host_address",
                format!("`{text}` is not an IP address"),
                "use an address such as 127.0.0.1",
            );
            IpAddr::from([127, 0, 0, 1])
        }),
    };
    let resync = cx.seconds(
        raw.resync_seconds,
        defaults::DOCKER_RESYNC,
        "docker.resync_seconds",
    );
    if resync.is_zero() {
        cx.error("docker.resync_seconds", "must be more than 0", "use e.g. 30");
    }
    Docker {
        enabled: false,
        endpoint: raw.endpoint,
        host_address,
        resync,
    }
}

fn parse_socket_addr(cx: &mut Ctx, text: &str, path: &str) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.error(
                path,
                format!("`{text}` is not an address:port"),
                "write an IP and a port, e.g. 0.0.0.0:8080, 127.0.0.1:8080 or [::]:8080 (no host names)",
            );
            None
        }
    }
}

fn check_listener_set(cx: &mut Ctx, listeners: &[Listener]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addrs: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if let Some(first) = names.insert(&l.name, i) {
            cx.error(
                &format!("listener[{i}].name"),
                format!("listener name `{}` is also used by listener[{first}]", l.name),
                "give every listener its own name",
            );
        }
        if l.address.port() != 0 {
            if let Some(first) = addrs.insert(l.address, i) {
                cx.error(
                    &format!("listener[{i}].address"),
                    format!("{} is also the address of listener[{first}]", l.address),
                    "give every listener its own port",
                );
            }
        }
    }
}

fn validate_listener(
    cx: &mut Ctx,
    index: usize,
    value: Value,
    groups: &HashMap<&str, &TargetGroup>,
    declared_groups: &HashSet<String>,
) -> Option<Listener> {
    let path = format!("listener[{index}]");
    let raw: RawListener = cx.de(value, &path)?;
    let name = match raw.name {
        Some(n) if !n.trim().is_empty() => n,
        Some(_) => {
            cx.error(
                &format!("{path}.name"),
                "a listener name cannot be empty",
                "name it, e.g. name = \"web\"",
            );
            format!("listener-{index}")
        }
        None => {
            cx.error(
                &format!("{path}.name"),
                "missing listener name",
                "add name = \"web\"",
            );
            format!("listener-{index}")
        }
    };
    let address = match raw.address {
        Some(a) => parse_socket_addr(cx, &a, &format!("{path}.address")),
        None => {
            cx.error(
                &format!("{path}.address"),
                "missing listener address",
                "add address = \"0.0.0.0:8080\"",
            );
            None
        }
    };
    let protocol = cx.choice(
        raw.protocol.as_deref(),
        &[
            ("HTTP", ListenerProtocol::Http),
            ("HTTPS", ListenerProtocol::Https),
        ],
        ListenerProtocol::Http,
        &format!("{path}.protocol"),
    );
    let certificates: Vec<Certificate> = raw
        .certificates
        .unwrap_or_default()
        .into_iter()
        .map(|c| Certificate {
            cert_file: PathBuf::from(c.cert_file),
            key_file: PathBuf::from(c.key_file),
        })
        .collect();
    match protocol {
        ListenerProtocol::Https if certificates.is_empty() => cx.error(
            &format!("{path}.certificates"),
            "an HTTPS listener needs a certificate",
            "add certificates = [{ cert_file = \"cert.pem\", key_file = \"key.pem\" }]",
        ),
        ListenerProtocol::Http if !certificates.is_empty() => cx.error(
            &format!("{path}.certificates"),
            "certificates are only used by HTTPS listeners",
            "set protocol = \"HTTPS\" or remove certificates",
        ),
        _ => {}
    }

    let idle_timeout = cx.seconds(
        raw.idle_timeout_seconds,
        defaults::IDLE_TIMEOUT,
        &format!("{path}.idle_timeout_seconds"),
    );
    if idle_timeout.is_zero() {
        cx.error(
            &format!("{path}.idle_timeout_seconds"),
            "must be more than 0",
            "ALB's default is 60",
        );
    } else {
        cx.seconds_range(
            idle_timeout,
            1.0,
            4000.0,
            &format!("{path}.idle_timeout_seconds"),
            "idle timeouts",
        );
    }
    let header_timeout = cx.seconds(
        raw.header_timeout_seconds,
        defaults::HEADER_TIMEOUT,
        &format!("{path}.header_timeout_seconds"),
    );
    if header_timeout.is_zero() {
        cx.error(
            &format!("{path}.header_timeout_seconds"),
            "must be more than 0",
            "the default is 30",
        );
    }
    let client_keep_alive = cx.seconds(
        raw.client_keep_alive_seconds,
        defaults::CLIENT_KEEP_ALIVE,
        &format!("{path}.client_keep_alive_seconds"),
    );
    if client_keep_alive.is_zero() {
        cx.error(
            &format!("{path}.client_keep_alive_seconds"),
            "must be more than 0",
            "ALB's default is 3600",
        );
    } else {
        cx.seconds_range(
            client_keep_alive,
            60.0,
            604_800.0,
            &format!("{path}.client_keep_alive_seconds"),
            "client keep-alive durations",
        );
    }
    let xff_mode = cx.choice(
        raw.xff_mode.as_deref(),
        &[
            ("append", XffMode::Append),
            ("preserve", XffMode::Preserve),
            ("remove", XffMode::Remove),
        ],
        XffMode::Append,
        &format!("{path}.xff_mode"),
    );
    let desync_mitigation_mode = cx.choice(
        raw.desync_mitigation_mode.as_deref(),
        &[
            ("monitor", DesyncMitigationMode::Monitor),
            ("defensive", DesyncMitigationMode::Defensive),
            ("strictest", DesyncMitigationMode::Strictest),
        ],
        DesyncMitigationMode::Defensive,
        &format!("{path}.desync_mitigation_mode"),
    );

    let tls = tls::validate_listener_tls(
        cx,
        tls::RawTls {
            ssl_policy: raw.ssl_policy,
            mutual_authentication: raw.mutual_authentication,
            http2: raw.http2,
        },
        protocol,
        &path,
    );

    let listener_port = address.map(|a| a.port()).unwrap_or(0);
    let lx = ListenerCtx {
        protocol,
        port: listener_port,
        groups,
        declared_groups,
    };
    let default_action = match raw.default_action {
        Some(v) => validate_action(cx, v, &format!("{path}.default_action"), &lx),
        None => Some(Action::FixedResponse(FixedResponse {
            status_code: 404,
            content_type: Some("text/plain".into()),
            message_body: defaults::DEFAULT_ACTION_BODY.into(),
        })),
    };

    let mut rules: Vec<Rule> = Vec::new();
    let mut priorities: HashMap<u32, usize> = HashMap::new();
    for (r, value) in raw.rule.into_iter().enumerate() {
        let rpath = format!("{path}.rule[{r}]");
        // Duplicate priorities are checked on the raw value, so that a rule with another
        // problem still takes part (every problem is reported at once).
        let raw_priority = value
            .get("priority")
            .and_then(serde_json::Value::as_i64)
            .and_then(|p| u32::try_from(p).ok());
        let duplicate = match raw_priority {
            Some(p) => match priorities.get(&p) {
                Some(first) => {
                    cx.error(
                        &format!("{rpath}.priority"),
                        format!("priority {p} is already used by {path}.rule[{first}] of listener `{name}`"),
                        "give every rule of a listener its own priority",
                    );
                    true
                }
                None => {
                    priorities.insert(p, r);
                    false
                }
            },
            None => false,
        };
        let Some(rule) = validate_rule(cx, value, &rpath, &lx) else {
            continue;
        };
        if !duplicate {
            rules.push(rule);
        }
    }
    rules.sort_by_key(|r| r.priority);

    Some(Listener {
        name,
        address: address?,
        protocol,
        certificates,
        idle_timeout,
        header_timeout,
        client_keep_alive,
        xff_mode,
        xff_client_port: raw.xff_client_port.unwrap_or(false),
        preserve_host_header: raw.preserve_host_header.unwrap_or(false),
        server_header: raw.server_header.unwrap_or(true),
        desync_mitigation_mode,
        drop_invalid_header_fields: raw.drop_invalid_header_fields.unwrap_or(false),
        ssl_policy: tls.ssl_policy,
        mutual_authentication: tls.mutual_authentication,
        http2: tls.http2,
        default_action: default_action?,
        rules,
    })
}

/// What rule and action validation need to know of their listener.
struct ListenerCtx<'a> {
    protocol: ListenerProtocol,
    port: u16,
    groups: &'a HashMap<&'a str, &'a TargetGroup>,
    /// Every target group written, valid or not.
    declared_groups: &'a HashSet<String>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
