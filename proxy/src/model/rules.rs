//! A listener's rules, compiled once per configuration and evaluated per request without
//! allocating or looking anything up by name.
//!
//! ALB's semantics: rules in ascending priority, the first whose conditions all hold wins,
//! the default action when none does. Within a condition the values are alternatives.
//! Within a rule, conditions are evaluated cheapest first (the result is an AND, so order
//! only changes cost).

use std::net::IpAddr;
use std::time::Duration;

use hostalb_config as cfg;
use ipnet::IpNet;

/// What a request exposes to rule conditions.
#[derive(Debug)]
pub struct RequestView<'a, H: ?Sized> {
    pub method: &'a [u8],
    /// The raw path, never the query.
    pub path: &'a [u8],
    /// The raw query without `?`.
    pub query: Option<&'a [u8]>,
    /// The Host value as sent (possibly with `:port`).
    pub host: Option<&'a [u8]>,
    pub headers: &'a H,
    /// The TCP peer (IPv4-mapped IPv6 already unmapped).
    pub peer: IpAddr,
}

/// The header fields of a request, for `http-header` conditions.
pub trait HeaderSource {
    /// Calls `test` on each value of the field `name` (lower-case), in order, until one
    /// returns true; returns whether one did.
    fn any_value(&self, name: &[u8], test: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

/// Header fields as `(name, value)` pairs (benches, tests, HTTP/2 requests).
impl HeaderSource for [(&[u8], &[u8])] {
    fn any_value(&self, name: &[u8], test: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| test(v))
    }
}

/// One listener's compiled rules and default action.
#[derive(Debug)]
pub struct RuleTable {
    rules: Box<[Rule]>,
    default: Action,
}

#[derive(Debug)]
pub struct Rule {
    pub priority: u32,
    conditions: Box<[Cond]>,
    pub transforms: Box<[cfg::Transform]>,
    pub action: Action,
}

/// A condition in its evaluation form, ordered cheapest first by `cost`.
#[derive(Debug)]
enum Cond {
    Method(Box<[Box<[u8]>]>),
    SourceIp(Box<[IpNet]>),
    Path(cfg::ValueMatcher),
    Host(cfg::ValueMatcher),
    Header(Box<[u8]>, cfg::ValueMatcher),
    Query(Box<[cfg::QueryPair]>),
}

impl Cond {
    fn cost(&self) -> u8 {
        match self {
            Cond::Method(_) => 0,
            Cond::SourceIp(_) => 1,
            Cond::Path(_) => 2,
            Cond::Host(_) => 3,
            Cond::Header(..) => 4,
            Cond::Query(_) => 5,
        }
    }
}

/// A rule's action with target groups resolved to indices of the snapshot.
#[derive(Debug)]
pub enum Action {
    Forward(Forward),
    Redirect(cfg::Redirect),
    FixedResponse(cfg::FixedResponse),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Forward(_) => "forward",
            Action::Redirect(_) => "redirect",
            Action::FixedResponse(_) => "fixed-response",
        }
    }
}

#[derive(Debug)]
pub struct Forward {
    pub groups: Box<[WeightedGroup]>,
    pub total_weight: u64,
    /// Group stickiness (`AWSALBTG`).
    pub stickiness: Option<Duration>,
}

#[derive(Debug)]
pub struct WeightedGroup {
    /// Index into the snapshot's target groups.
    pub index: usize,
    pub weight: u32,
    /// Stable identity of the group across reloads, sealed into `AWSALBTG`.
    pub name_hash: u64,
}

/// The outcome of rule evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Match<'t> {
    /// The matching rule's priority; `None` for the default action.
    pub priority: Option<u32>,
    pub action: &'t Action,
    pub transforms: &'t [cfg::Transform],
}

/// Index a forward uses for a group name the snapshot does not have (only possible if a
/// caller compiles rules against a different group list); such a forward answers 503.
pub const MISSING_GROUP: usize = usize::MAX;

impl RuleTable {
    /// Compiles `listener`'s rules; `group_index` maps a target group name to its index.
    pub fn compile(listener: &cfg::Listener, group_index: &dyn Fn(&str) -> Option<usize>) -> RuleTable {
        let rules = listener
            .rules
            .iter()
            .map(|r| {
                let mut conditions: Vec<Cond> = r.conditions.iter().map(compile_condition).collect();
                conditions.sort_by_key(Cond::cost);
                Rule {
                    priority: r.priority,
                    conditions: conditions.into_boxed_slice(),
                    transforms: r.transforms.clone().into_boxed_slice(),
                    action: compile_action(&r.action, group_index),
                }
            })
            .collect();
        RuleTable {
            rules,
            default: compile_action(&listener.default_action, group_index),
        }
    }

    /// Number of rules, the default rule not counted.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_action(&self) -> &Action {
        &self.default
    }

    /// Finds the action for a request.
    pub fn evaluate<H: HeaderSource + ?Sized>(&self, req: &RequestView<'_, H>) -> Match<'_> {
        let host_name = req.host.map(host_without_port);
        for rule in self.rules.iter() {
            if rule.conditions.iter().all(|c| holds(c, req, host_name)) {
                return Match {
                    priority: Some(rule.priority),
                    action: &rule.action,
                    transforms: &rule.transforms,
                };
            }
        }
        Match {
            priority: None,
            action: &self.default,
            transforms: &[],
        }
    }
}

#[inline]
fn holds<H: HeaderSource + ?Sized>(c: &Cond, req: &RequestView<'_, H>, host_name: Option<&[u8]>) -> bool {
    match c {
        Cond::Method(methods) => methods.iter().any(|m| **m == *req.method),
        Cond::SourceIp(nets) => nets.iter().any(|n| n.contains(&req.peer)),
        Cond::Path(m) => m.matches(req.path),
        Cond::Host(m) => match (req.host, host_name) {
            // Wildcard values never see the port (ALB's values cannot express one);
            // regexes see the whole value, so they can.
            (Some(full), Some(name)) => {
                m.globs.iter().any(|g| g.matches(name)) || m.regexes.iter().any(|r| r.is_match(full))
            }
            _ => false,
        },
        Cond::Header(name, m) => req.headers.any_value(name, &mut |v| m.matches(v)),
        Cond::Query(pairs) => req.query.is_some_and(|q| query_matches(pairs, q)),
    }
}

/// The host part of a Host value: `[v6]:port` -> `[v6]`, `name:port` -> `name`.
pub fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match memchr::memchr(b']', host) {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match memchr::memrchr(b':', host) {
        Some(colon) if host[colon + 1..].iter().all(u8::is_ascii_digit) => &host[..colon],
        _ => host,
    }
}

/// Whether any `key=value` pair of the query matches any listed pair. A pair is tried as
/// sent and, when it has `%xx` escapes, decoded as well (ALB allows any character to be
/// percent-encoded).
fn query_matches(pairs: &[cfg::QueryPair], query: &[u8]) -> bool {
    query.split(|b| *b == b'&').filter(|p| !p.is_empty()).any(|part| {
        let (key, value) = match memchr::memchr(b'=', part) {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let pair_matches = |k: &[u8], v: &[u8]| {
            pairs
                .iter()
                .any(|p| p.key.as_ref().is_none_or(|g| g.matches(k)) && p.value.matches(v))
        };
        if pair_matches(key, value) {
            return true;
        }
        if memchr::memchr(b'%', part).is_none() {
            return false;
        }
        let mut kbuf = [0u8; 256];
        let mut vbuf = [0u8; 256];
        match (percent_decode(key, &mut kbuf), percent_decode(value, &mut vbuf)) {
            (Some(k), Some(v)) => pair_matches(k, v),
            _ => false,
        }
    })
}

/// Decodes `%xx` escapes into `buf`; `None` if it does not fit or an escape is broken.
fn percent_decode<'b>(input: &[u8], buf: &'b mut [u8; 256]) -> Option<&'b [u8]> {
    let mut n = 0;
    let mut i = 0;
    while i < input.len() {
        let b = if input[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*input.get(i + 1)?)?;
            let lo = hex(*input.get(i + 2)?)?;
            i += 3;
            (hi * 16 + lo) as u8
        } else {
            i += 1;
            input[i - 1]
        };
        *buf.get_mut(n)? = b;
        n += 1;
    }
    Some(&buf[..n])
}

fn compile_condition(c: &cfg::Condition) -> Cond {
    match c {
        cfg::Condition::HttpRequestMethod(methods) => Cond::Method(
            methods
                .iter()
                .map(|m| m.as_bytes().to_vec().into_boxed_slice())
                .collect(),
        ),
        cfg::Condition::SourceIp(nets) => Cond::SourceIp(nets.clone().into_boxed_slice()),
        cfg::Condition::PathPattern(m) => Cond::Path(m.clone()),
        cfg::Condition::HostHeader(m) => Cond::Host(m.clone()),
        cfg::Condition::HttpHeader { name, matcher } => Cond::Header(
            name.to_ascii_lowercase().into_bytes().into_boxed_slice(),
            matcher.clone(),
        ),
        cfg::Condition::QueryString(pairs) => Cond::Query(pairs.clone().into_boxed_slice()),
    }
}

fn compile_action(a: &cfg::Action, group_index: &dyn Fn(&str) -> Option<usize>) -> Action {
    match a {
        cfg::Action::Forward(f) => {
            let groups: Box<[WeightedGroup]> = f
                .target_groups
                .iter()
                .map(|g| WeightedGroup {
                    index: group_index(&g.name).unwrap_or(MISSING_GROUP),
                    weight: g.weight,
                    name_hash: name_hash(&g.name),
                })
                .collect();
            Action::Forward(Forward {
                total_weight: groups.iter().map(|g| u64::from(g.weight)).sum(),
                groups,
                stickiness: f.stickiness,
            })
        }
        cfg::Action::Redirect(r) => Action::Redirect(r.clone()),
        cfg::Action::FixedResponse(r) => Action::FixedResponse(r.clone()),
    }
}

/// FNV-1a of a target group name: a stable identity to seal into cookies.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rules_toml: &str) -> RuleTable {
        let text = format!(
            r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 404 }}
{rules_toml}

[target_group.a]
[target_group.b]
"#
        );
        let loaded = match cfg::parse(&text, cfg::Format::Toml, "test") {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let names = ["a", "b"];
        RuleTable::compile(&loaded.config.listeners[0], &|n| {
            names.iter().position(|x| *x == n)
        })
    }

    type Headers<'a> = [(&'a [u8], &'a [u8])];

    fn eval(
        t: &RuleTable,
        method: &str,
        path: &str,
        query: Option<&str>,
        host: &str,
        headers: &Headers<'_>,
        peer: &str,
    ) -> Option<u32> {
        let view = RequestView {
            method: method.as_bytes(),
            path: path.as_bytes(),
            query: query.map(str::as_bytes),
            host: Some(host.as_bytes()),
            headers,
            peer: peer.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])),
        };
        t.evaluate(&view).priority
    }

    fn simple(t: &RuleTable, path: &str) -> Option<u32> {
        eval(t, "GET", path, None, "example.com", &[], "10.0.0.1")
    }

    #[test]
    fn lowest_priority_wins_and_default_is_last() {
        let t = table(
            r#"
[[listener.rule]]
priority = 20
conditions = [{ field = "path-pattern", values = ["/api/*"] }]
action = { type = "forward", target_group = "a" }
[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/api/v2/*"] }]
action = { type = "forward", target_group = "b" }
"#,
        );
        assert_eq!(simple(&t, "/api/v2/x"), Some(10));
        assert_eq!(simple(&t, "/api/v1/x"), Some(20));
        assert_eq!(simple(&t, "/api"), None, "/api/* does not match /api");
        assert_eq!(simple(&t, "/other"), None);
    }

    #[test]
    fn conditions_and_values_or() {
        let t = table(
            r#"
[[listener.rule]]
priority = 1
conditions = [
  { field = "http-request-method", values = ["GET", "HEAD"] },
  { field = "host-header", values = ["*.example.com"] },
  { field = "http-header", name = "X-Env", values = ["canary*"] },
  { field = "source-ip", values = ["10.0.0.0/8"] },
]
action = { type = "forward", target_group = "a" }
"#,
        );
        let canary: &Headers<'_> = &[(b"x-env", b"Canary-7")];
        assert_eq!(
            eval(&t, "GET", "/", None, "API.Example.COM:8080", canary, "10.1.2.3"),
            Some(1)
        );
        assert_eq!(
            eval(&t, "HEAD", "/", None, "a.example.com", canary, "10.1.2.3"),
            Some(1)
        );
        assert_eq!(
            eval(&t, "get", "/", None, "a.example.com", canary, "10.1.2.3"),
            None,
            "methods are case-sensitive"
        );
        assert_eq!(
            eval(&t, "GET", "/", None, "example.com", canary, "10.1.2.3"),
            None
        );
        assert_eq!(
            eval(
                &t,
                "GET",
                "/",
                None,
                "a.example.com",
                &[(b"x-env", b"prod")],
                "10.1.2.3"
            ),
            None
        );
        assert_eq!(
            eval(&t, "GET", "/", None, "a.example.com", canary, "192.168.1.1"),
            None
        );
        let repeated: &Headers<'_> = &[(b"X-Env", b"prod"), (b"X-ENV", b"canary")];
        assert_eq!(
            eval(&t, "GET", "/", None, "a.example.com", repeated, "10.1.2.3"),
            Some(1),
            "every instance is tried"
        );
    }

    #[test]
    fn query_string_pairs() {
        let t = table(
            r#"
[[listener.rule]]
priority = 1
conditions = [{ field = "query-string", values = [{ key = "version", value = "v2" }, { value = "beta*" }] }]
action = { type = "forward", target_group = "a" }
"#,
        );
        let q = |query: &str| eval(&t, "GET", "/", Some(query), "h.example", &[], "10.0.0.1");
        assert_eq!(q("version=v2"), Some(1));
        assert_eq!(
            q("a=1&VERSION=V2"),
            Some(1),
            "keys and values are case-insensitive"
        );
        assert_eq!(q("x=betamax"), Some(1), "no key means any key");
        assert_eq!(q("version=v3"), None);
        assert_eq!(
            q("v%65rsion=v%32"),
            Some(1),
            "percent-encoded pairs match decoded"
        );
        assert_eq!(eval(&t, "GET", "/", None, "h.example", &[], "10.0.0.1"), None);
    }

    #[test]
    fn path_never_sees_the_query_and_is_case_sensitive() {
        let t = table(
            r#"
[[listener.rule]]
priority = 5
conditions = [{ field = "path-pattern", values = ["/img/*.png"] }]
action = { type = "fixed-response", status_code = 200 }
"#,
        );
        assert_eq!(simple(&t, "/img/a.png"), Some(5));
        assert_eq!(simple(&t, "/IMG/a.png"), None);
        assert_eq!(
            eval(
                &t,
                "GET",
                "/img/a.jpg",
                Some("x=.png"),
                "h.example",
                &[],
                "10.0.0.1"
            ),
            None
        );
    }

    #[test]
    fn regex_values_search_unanchored() {
        let t = table(
            r#"
[[listener.rule]]
priority = 3
conditions = [{ field = "path-pattern", regex_values = ["^/v[0-9]+/"] }]
action = { type = "forward", target_group = "a" }
[[listener.rule]]
priority = 4
conditions = [{ field = "host-header", regex_values = [":8443$"] }]
action = { type = "forward", target_group = "b" }
"#,
        );
        assert_eq!(simple(&t, "/v12/items"), Some(3));
        assert_eq!(simple(&t, "/x/v12/items"), None);
        assert_eq!(
            eval(&t, "GET", "/", None, "h.example:8443", &[], "10.0.0.1"),
            Some(4),
            "host regexes see the port"
        );
    }

    #[test]
    fn forward_resolves_groups_and_weights() {
        let t = table(
            r#"
[[listener.rule]]
priority = 1
conditions = [{ field = "path-pattern", values = ["/*"] }]
action = { type = "forward", target_groups = [{ name = "a", weight = 10 }, { name = "b", weight = 20 }], stickiness_seconds = 60 }
"#,
        );
        let Action::Forward(f) = &t.rules()[0].action else {
            panic!("not a forward")
        };
        assert_eq!(
            f.groups.iter().map(|g| (g.index, g.weight)).collect::<Vec<_>>(),
            vec![(0, 10), (1, 20)]
        );
        assert_eq!(f.total_weight, 30);
        assert_eq!(f.stickiness, Some(Duration::from_secs(60)));
        assert_ne!(f.groups[0].name_hash, f.groups[1].name_hash);
    }

    #[test]
    fn host_port_stripping() {
        assert_eq!(host_without_port(b"a.example:80"), b"a.example");
        assert_eq!(host_without_port(b"a.example"), b"a.example");
        assert_eq!(host_without_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(host_without_port(b"a:b"), b"a:b");
    }
}
