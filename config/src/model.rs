//! The validated configuration: every value typed, every matcher compiled.
//!
//! Vocabulary (ALB's): a *listener* accepts connections and evaluates its *rules* in
//! priority order; a rule's *conditions* all hold or the rule does not apply; the first
//! rule that applies runs its *action*, and the listener's *default action* runs when none
//! does. A *target group* is a set of *targets* (address and port) that forwards balance
//! over; targets are registered statically here or discovered from Docker.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::glob::Glob;
pub use crate::ssl_policies::{DEFAULT_SSL_POLICY, SSL_POLICIES, SslPolicy, TlsVersion, ssl_policy};

/// A whole, valid hostalb configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// ALB's documented limits are errors (true) or warnings (false).
    pub strict_alb: bool,
    pub admin: Admin,
    pub docker: Docker,
    /// Listeners in the order they were written.
    pub listeners: Vec<Listener>,
    /// Target groups by name (sorted by name).
    pub target_groups: Vec<TargetGroup>,
    /// Client connections the process holds at most; `None`: derived from the process's
    /// descriptor limit when it starts.
    pub max_client_connections: Option<u32>,
    /// `None`: no access log.
    pub access_log: Option<AccessLog>,
}

impl Config {
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    pub fn target_group(&self, name: &str) -> Option<&TargetGroup> {
        self.target_groups.iter().find(|t| t.name == name)
    }

    /// Whether any rule (or default action) of any listener forwards to `name`.
    /// ALB reports the targets of a group that no rule uses as `unused` (Target.NotInUse).
    pub fn target_group_in_use(&self, name: &str) -> bool {
        self.listeners
            .iter()
            .any(|l| l.default_action.forwards_to(name) || l.rules.iter().any(|r| r.action.forwards_to(name)))
    }
}

/// ALB's access log, written by hostalb to a file or standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// Where entries go; `None`: standard output (`path = "-"`).
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// ALB's space-separated line, field for field.
    Alb,
    /// One JSON object per line with the same fields, named.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddr,
    /// The credentials SigV4 signatures of AWS API calls are checked against (required on
    /// an admin address that is not loopback).
    pub credentials: Option<Credentials>,
    /// Where the AWS API keeps what it creates; `None`: `hostalb.state.json` beside the
    /// configuration file, or in the working directory without one.
    pub state_file: Option<std::path::PathBuf>,
    /// The address listeners made by CreateListener bind, on the port they name.
    pub api_listener_address: std::net::IpAddr,
}

/// An access key: `[admin] access_key_id` and `secret_access_key`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    /// The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"(hidden)")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Docker {
    /// Discovery runs: the configuration has a `[docker]` table or a target group with a
    /// `[docker]` selector.
    pub enabled: bool,
    /// `unix:///path`, `tcp://host:port` or `http://host:port`; `None` = `DOCKER_HOST`,
    /// else the local socket.
    pub endpoint: Option<String>,
    pub host_address: IpAddr,
    pub resync: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    Http,
    Https,
}

impl ListenerProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "HTTP",
            ListenerProtocol::Https => "HTTPS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// ALB's `MutualAuthentication` of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MutualAuthentication {
    pub mode: MtlsMode,
    /// PEM CA certificates a client certificate must chain to (`verify` only).
    pub trust_store: Option<PathBuf>,
    /// `verify`: accept client certificates past their validity period.
    pub ignore_client_certificate_expiry: bool,
    /// `verify`: list the trust store's CA names in the certificate request.
    pub advertise_trust_store_ca_names: bool,
}

/// ALB's mutual TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtlsMode {
    /// No client certificate is asked for.
    #[default]
    Off,
    /// A client certificate chaining to the trust store is required at the handshake;
    /// targets get its facts in `X-Amzn-Mtls-Clientcert-*` headers.
    Verify,
    /// Any client certificate is accepted unverified and its chain sent to targets in
    /// `X-Amzn-Mtls-Clientcert`.
    Passthrough,
}

impl MtlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Off => "off",
            MtlsMode::Verify => "verify",
            MtlsMode::Passthrough => "passthrough",
        }
    }
}

/// ALB `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XffMode {
    Append,
    Preserve,
    Remove,
}

/// ALB `routing.http.desync_mitigation_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesyncMitigationMode {
    Monitor,
    Defensive,
    Strictest,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: ListenerProtocol,
    pub certificates: Vec<Certificate>,
    /// No bytes either way for this long closes the connection (client and target side).
    pub idle_timeout: Duration,
    /// A whole request head must arrive within this long.
    pub header_timeout: Duration,
    /// Maximum lifetime of a client connection; closed at a request boundary after it.
    pub client_keep_alive: Duration,
    pub xff_mode: XffMode,
    /// `routing.http.xff_client_port.enabled`: append `ip:port` instead of `ip`.
    pub xff_client_port: bool,
    /// `routing.http.preserve_host_header.enabled`.
    pub preserve_host_header: bool,
    /// `routing.http.response.server.enabled`: `Server: awselb/2.0` on answers hostalb
    /// makes itself.
    pub server_header: bool,
    pub desync_mitigation_mode: DesyncMitigationMode,
    /// `routing.http.drop_invalid_header_fields.enabled`.
    pub drop_invalid_header_fields: bool,
    /// HTTPS listeners: the TLS versions and cipher suites offered (ALB's `SslPolicy`).
    pub ssl_policy: SslPolicy,
    /// HTTPS listeners: client certificates (ALB's `MutualAuthentication`).
    pub mutual_authentication: MutualAuthentication,
    /// `routing.http2.enabled`: HTTPS listeners may offer HTTP/2 (ALPN `h2`).
    pub http2: bool,
    pub default_action: Action,
    /// Rules sorted by ascending priority.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub transforms: Vec<Transform>,
    pub action: Action,
}

/// One rule condition, compiled. Values of one condition are alternatives (OR); the
/// conditions of a rule must all hold (AND).
#[derive(Debug, Clone)]
pub enum Condition {
    /// The Host header (first one), port removed for `values`; case-insensitive.
    HostHeader(ValueMatcher),
    /// The URL path, never the query; case-sensitive.
    PathPattern(ValueMatcher),
    /// A named header; every instance is tried. `name` is lower-case.
    HttpHeader { name: String, matcher: ValueMatcher },
    /// The method, exact and case-sensitive.
    HttpRequestMethod(Vec<String>),
    /// Any listed key/value pair present in the query string.
    QueryString(Vec<QueryPair>),
    /// The TCP peer address (never X-Forwarded-For).
    SourceIp(Vec<IpNet>),
}

impl Condition {
    /// ALB's field name for this condition.
    pub fn field(&self) -> &'static str {
        match self {
            Condition::HostHeader(_) => "host-header",
            Condition::PathPattern(_) => "path-pattern",
            Condition::HttpHeader { .. } => "http-header",
            Condition::HttpRequestMethod(_) => "http-request-method",
            Condition::QueryString(_) => "query-string",
            Condition::SourceIp(_) => "source-ip",
        }
    }
}

/// Wildcard `values` and `regex_values` of one condition: a value matches when any
/// glob or any regex does.
#[derive(Debug, Clone, Default)]
pub struct ValueMatcher {
    pub globs: Vec<Glob>,
    pub regexes: Vec<RegexValue>,
}

impl ValueMatcher {
    #[inline]
    pub fn matches(&self, value: &[u8]) -> bool {
        self.globs.iter().any(|g| g.matches(value)) || self.regexes.iter().any(|r| r.is_match(value))
    }

    pub fn len(&self) -> usize {
        self.globs.len() + self.regexes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `regex_values` entry: an unanchored search, as ALB's examples (which spell `^...$`
/// when they mean anchoring) imply.
#[derive(Debug, Clone)]
pub struct RegexValue {
    source: String,
    regex: regex::bytes::Regex,
}

impl RegexValue {
    pub(crate) fn new(source: &str, case_insensitive: bool) -> Result<RegexValue, regex::Error> {
        let regex = regex::bytes::RegexBuilder::new(source)
            .case_insensitive(case_insensitive)
            .size_limit(1 << 20)
            .build()?;
        Ok(RegexValue {
            source: source.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    #[inline]
    pub fn is_match(&self, value: &[u8]) -> bool {
        self.regex.is_match(value)
    }

    /// Replaces the first match in `value` with `replace` (`$1`-style references);
    /// `None` when the regex does not match.
    pub fn replace_first(&self, value: &[u8], replace: &str) -> Option<Vec<u8>> {
        if !self.regex.is_match(value) {
            return None;
        }
        Some(self.regex.replace(value, replace.as_bytes()).into_owned())
    }
}

/// One `{ key?, value }` pair of a query-string condition; no key means any key.
#[derive(Debug, Clone)]
pub struct QueryPair {
    pub key: Option<Glob>,
    pub value: Glob,
}

/// A rule transform (applied after the rule is chosen; never changes routing).
#[derive(Debug, Clone)]
pub enum Transform {
    HostHeaderRewrite(Vec<Rewrite>),
    UrlRewrite(Vec<Rewrite>),
}

impl Transform {
    pub fn kind(&self) -> &'static str {
        match self {
            Transform::HostHeaderRewrite(_) => "host-header-rewrite",
            Transform::UrlRewrite(_) => "url-rewrite",
        }
    }

    pub fn rewrites(&self) -> &[Rewrite] {
        match self {
            Transform::HostHeaderRewrite(r) | Transform::UrlRewrite(r) => r,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rewrite {
    pub regex: RegexValue,
    /// Replacement with `$1`-style capture references.
    pub replace: String,
}

#[derive(Debug, Clone)]
pub enum Action {
    Forward(Forward),
    Redirect(Redirect),
    FixedResponse(FixedResponse),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Forward(_) => "forward",
            Action::Redirect(_) => "redirect",
            Action::FixedResponse(_) => "fixed-response",
        }
    }

    pub fn forwards_to(&self, target_group: &str) -> bool {
        match self {
            Action::Forward(f) => f.target_groups.iter().any(|g| g.name == target_group),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// One entry for `target_group = "x"` (weight 1), up to five for `target_groups`.
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Group stickiness (`AWSALBTG`) duration; `None` = off.
    pub stickiness: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTargetGroup {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectProtocol {
    /// `#{protocol}`: keep the listener's.
    Keep,
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub protocol: RedirectProtocol,
    /// `None` = `#{port}` (the listener port).
    pub port: Option<u16>,
    pub host: Template,
    pub path: Template,
    pub query: Template,
    /// 301 or 302.
    pub status_code: u16,
}

/// A redirect component with `#{host}`, `#{path}`, `#{port}`, `#{protocol}` and `#{query}`
/// placeholders, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Host,
    /// The original path without its leading `/`.
    Path,
    Port,
    Protocol,
    Query,
}

impl Template {
    pub fn parse(source: &str) -> Template {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(start) = rest.find("#{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            let part = match &after[..end] {
                "host" => TemplatePart::Host,
                "path" => TemplatePart::Path,
                "port" => TemplatePart::Port,
                "protocol" => TemplatePart::Protocol,
                "query" => TemplatePart::Query,
                _ => {
                    // Not a placeholder ALB knows: keep it as text.
                    literal.push_str(&rest[..start + 2 + end + 1]);
                    rest = &after[end + 1..];
                    continue;
                }
            };
            literal.push_str(&rest[..start]);
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Template {
            source: source.to_owned(),
            parts,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedResponse {
    pub status_code: u16,
    pub content_type: Option<String>,
    pub message_body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetGroupProtocol {
    Http,
    Https,
}

impl TargetGroupProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetGroupProtocol::Http => "HTTP",
            TargetGroupProtocol::Https => "HTTPS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    Http1,
    Http2,
    Grpc,
}

impl ProtocolVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::Http1 => "HTTP1",
            ProtocolVersion::Http2 => "HTTP2",
            ProtocolVersion::Grpc => "GRPC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
            Algorithm::WeightedRandom => "weighted_random",
        }
    }
}

/// ALB `TargetType`: `instance` registers the host port Docker published (ECS bridge
/// mode); `ip` registers the container's own address and port (the awsvpc analogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Instance,
    Ip,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Instance => "instance",
            TargetType::Ip => "ip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    LbCookie { duration: Duration },
    AppCookie { cookie_name: String, duration: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckPort {
    TrafficPort,
    Port(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: TargetGroupProtocol,
    /// The group's protocol version, which decides the probe: an HTTP/1.1 `GET` for
    /// HTTP1, an HTTP/2 `GET` for HTTP2, a gRPC call over HTTP/2 for GRPC (whose
    /// `matcher` then holds gRPC status codes).
    pub protocol_version: ProtocolVersion,
    /// Path, possibly with `?query`.
    pub path: String,
    pub port: HealthCheckPort,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub matcher: CodeMatcher,
}

/// `"200"`, `"200,202"` or `"200-299"` (and lists of ranges), compiled: HTTP status
/// codes, or gRPC status codes (`"12"`, `"0-99"`) for GRPC groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMatcher {
    pub source: String,
    pub ranges: Vec<(u16, u16)>,
}

impl CodeMatcher {
    pub fn matches(&self, code: u16) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSelector {
    /// Every label must be present with this exact value.
    pub labels: BTreeMap<String, String>,
    /// The container port whose published host port becomes the target. `None`: the
    /// container's `hostalb.container-port` label, else its only published TCP port.
    pub container_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    pub name: String,
    pub protocol: TargetGroupProtocol,
    pub protocol_version: ProtocolVersion,
    pub target_type: TargetType,
    pub algorithm: Algorithm,
    pub deregistration_delay: Duration,
    pub slow_start: Duration,
    pub stickiness: Option<Stickiness>,
    /// Static registrations.
    pub targets: Vec<SocketAddr>,
    pub health_check: HealthCheck,
    pub docker: Option<DockerSelector>,
    /// Use the container's Docker HEALTHCHECK status as an extra signal.
    pub use_docker_health: bool,
    /// An idempotent request whose target closed without answering is sent once more,
    /// on a new connection (false: exactly ALB, which answers 502).
    pub retry_idempotent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_placeholders_and_text() {
        let t = Template::parse("/new/#{path}?x");
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Literal("/new/".into()),
                TemplatePart::Path,
                TemplatePart::Literal("?x".into())
            ]
        );
        let t = Template::parse("#{host}");
        assert_eq!(t.parts, vec![TemplatePart::Host]);
        let t = Template::parse("a#{nope}b#{port");
        assert_eq!(t.parts, vec![TemplatePart::Literal("a#{nope}b#{port".into())]);
    }

    #[test]
    fn code_matcher_ranges() {
        let m = CodeMatcher {
            source: "200-299,404".into(),
            ranges: vec![(200, 299), (404, 404)],
        };
        assert!(m.matches(204));
        assert!(m.matches(404));
        assert!(!m.matches(300));
    }
}
