//! The admin API (hyper): health, ELBv2-shaped descriptions of rules, target groups and
//! target health, reload, Prometheus metrics and a dashboard page.
//!
//! JSON uses the member names of ELBv2's DescribeRules / DescribeTargetGroups /
//! DescribeTargetHealth / DescribeListeners (PascalCase, priorities and ports as strings
//! where ALB writes them so), with deterministic local ARNs, so tooling written against
//! ALB reads it unchanged.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use hostalb_config::{self as cfg, Action, Condition, HealthCheckPort, Stickiness, Transform};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::admin::config_log::ConfigLog;
use crate::admin::exposition::Format;
use crate::admin::sampler::Sampler;
use crate::admin::{dashboard, page, prometheus};
use crate::control::Proxy;
use crate::model::arn::{group_arn, lb_arn, listener_arn, rule_arn};
use crate::model::health::{Reason, State};
use crate::model::snapshot::Snapshot;
use crate::model::target::Target;
use crate::model::target_group::GroupRt;

/// What the admin server keeps beyond the proxy handle: the sampler of the last minute
/// and the configuration's history, each fed by its own task.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) sampler: Arc<Sampler>,
    pub(crate) config: Arc<ConfigLog>,
}

pub(crate) async fn serve(proxy: Proxy, socket: TcpListener) {
    let live = Arc::new(Live::default());
    live.sampler.start(proxy.clone());
    tokio::spawn(live.config.clone().run(proxy.clone()));
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let proxy = proxy.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let live = live.clone();
                async move { Ok::<_, Infallible>(route(&proxy, &live, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A call to `POST /` of the admin address: the AWS APIs (ELBv2's Query protocol, ECS's
/// JSON 1.1), answered by what the binary installs ([`Proxy::install_aws_api`]); they
/// route by SigV4 credential scope, then `X-Amz-Target`, then `Version`.
#[derive(Debug)]
pub struct AwsCall {
    pub method: String,
    /// The path as sent.
    pub path: String,
    /// The query string as sent, without `?`.
    pub query: String,
    /// Every header, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// The answer to an [`AwsCall`].
#[derive(Debug)]
pub struct AwsAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What answers the AWS APIs on the admin address.
pub trait AwsApi: Send + Sync + std::fmt::Debug {
    fn call(
        self: Arc<Self>,
        call: AwsCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AwsAnswer> + Send>>;
}

/// Largest AWS API request body read: ELBv2 calls are small forms (the largest, a rule
/// with every condition, is a few KiB).
const AWS_BODY_LIMIT: usize = 1024 * 1024;

async fn aws_call(proxy: &Proxy, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(api) = proxy.inner.aws_api.get().cloned() else {
        return error_json(StatusCode::NOT_FOUND, "NotFound", "no AWS API is served here");
    };
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, AWS_BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "the request body is over 1 MiB",
            );
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
        .collect();
    let call = AwsCall {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
    };
    let answer = api.call(call).await;
    let mut r = Response::new(Full::new(Bytes::from(answer.body)));
    *r.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(answer.content_type),
    );
    r
}

/// The ELBv2-shaped descriptions of what is served, for the AWS API.
impl Proxy {
    /// `{"Listeners": [...]}` of every listener served (DescribeListeners' shape plus
    /// `Name` and `Address`).
    pub fn describe_listeners_json(&self) -> Value {
        describe_listeners(&self.shared().snapshot.load())
    }

    /// `{"Rules": [...]}` of the listener named `listener`, its default rule last.
    pub fn describe_rules_json(&self, listener: &str) -> Option<Value> {
        let snap = self.shared().snapshot.load_full();
        let l = snap.listener_named(listener)?;
        Some(describe_rules(&snap, &l.cfg))
    }

    /// `{"TargetGroups": [...]}` of every target group served.
    pub fn describe_target_groups_json(&self) -> Value {
        describe_target_groups(&self.shared().snapshot.load())
    }

    /// `{"TargetHealthDescriptions": [...]}` of the group named `group`: health states and
    /// reason codes as the health checks see them now.
    pub fn describe_target_health_json(&self, group: &str) -> Option<Value> {
        let snap = self.shared().snapshot.load_full();
        let g = snap.group_named(group)?;
        Some(describe_target_health(g, None))
    }
}

async fn route(proxy: &Proxy, live: &Live, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() == Method::POST && req.uri().path() == "/" {
        return aws_call(proxy, req).await;
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let snap = proxy.shared().snapshot.load_full();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/") => {
            let view = dashboard::build(proxy, &snap, &live.sampler, &live.config);
            html(page::page(&view))
        }
        (&Method::GET, "/dashboard/view") => {
            let view = dashboard::build(proxy, &snap, &live.sampler, &live.config);
            html(page::fragment(&view))
        }
        (&Method::GET, "/api/dashboard") => {
            let view = dashboard::build(proxy, &snap, &live.sampler, &live.config);
            json_response(StatusCode::OK, serde_json::to_value(view).unwrap_or_default())
        }
        (&Method::GET, "/metrics") => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::from_accept(accept);
            let body = prometheus::render(proxy, &snap, &live.sampler, format);
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(format.content_type()),
            );
            r
        }
        (&Method::GET, "/api/listeners") => json_response(StatusCode::OK, describe_listeners(&snap)),
        (&Method::GET, "/api/discovery") => {
            let report = proxy
                .inner
                .discovery
                .lock()
                .map(|r| r.at(std::time::Instant::now()))
                .unwrap_or_default();
            json_response(StatusCode::OK, serde_json::to_value(report).unwrap_or_default())
        }
        (&Method::GET, "/api/rules") => {
            let name = param("listener");
            let listener = match &name {
                Some(n) => snap.listener_named(n),
                None if snap.listeners.len() == 1 => snap.listeners.first(),
                None => None,
            };
            match listener {
                Some(l) => json_response(StatusCode::OK, describe_rules(&snap, &l.cfg)),
                None => error_json(
                    StatusCode::NOT_FOUND,
                    "ListenerNotFound",
                    &format!(
                        "no listener {}; pass ?listener=NAME (one of: {})",
                        name.unwrap_or_default(),
                        listener_names(&snap)
                    ),
                ),
            }
        }
        (&Method::GET, "/api/target-groups") => json_response(StatusCode::OK, describe_target_groups(&snap)),
        (&Method::GET, "/api/target-health") => {
            match param("target_group").and_then(|n| snap.group_named(&n).cloned()) {
                Some(g) => {
                    let only: Option<Vec<std::net::SocketAddr>> =
                        param("targets").map(|list| list.split(',').filter_map(|t| t.parse().ok()).collect());
                    json_response(StatusCode::OK, describe_target_health(&g, only.as_deref()))
                }
                None => error_json(
                    StatusCode::NOT_FOUND,
                    "TargetGroupNotFound",
                    "pass ?target_group=NAME of a configured target group",
                ),
            }
        }
        (&Method::POST, "/api/reload") => {
            drop(req.into_body().collect().await);
            match proxy.reload().await {
                Ok(generation) => json_response(
                    StatusCode::OK,
                    json!({ "Reloaded": true, "Generation": generation }),
                ),
                Err(e) => {
                    let problems: Vec<Value> = match &e {
                        crate::control::ControlError::Config(c) => c
                            .problems()
                            .iter()
                            .map(|p| json!({ "Severity": format!("{:?}", p.severity), "Path": p.path, "Message": p.message, "Fix": p.fix }))
                            .collect(),
                        other => vec![json!({ "Severity": "Error", "Path": "", "Message": other.to_string(), "Fix": "" })],
                    };
                    json_response(
                        StatusCode::BAD_REQUEST,
                        json!({ "Reloaded": false, "Error": e.to_string(), "Problems": problems }),
                    )
                }
            }
        }
        (_, "/api/reload") => error_json(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "use POST"),
        _ => error_json(StatusCode::NOT_FOUND, "NotFound", "see / for the endpoints"),
    }
}

fn listener_names(snap: &Snapshot) -> String {
    snap.listeners
        .iter()
        .map(|l| l.cfg.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

fn html(body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, value: Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_json(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({ "Error": { "Code": code, "Message": message } }))
}

fn describe_listeners(snap: &Snapshot) -> Value {
    let listeners: Vec<Value> = snap
        .listeners
        .iter()
        .map(|l| {
            json!({
                "ListenerArn": listener_arn(&l.cfg.name),
                "LoadBalancerArn": lb_arn(),
                "Port": l.bound.port(),
                "Protocol": l.cfg.protocol.as_str(),
                "DefaultActions": [action_json(&l.cfg.default_action)],
                "Name": l.cfg.name,
                "Address": l.bound.to_string(),
            })
        })
        .collect();
    json!({ "Listeners": listeners })
}

fn describe_rules(_snap: &Snapshot, l: &cfg::Listener) -> Value {
    let mut rules: Vec<Value> = l
        .rules
        .iter()
        .map(|r| {
            let priority = r.priority.to_string();
            json!({
                "RuleArn": rule_arn(&l.name, &priority),
                "Priority": priority,
                "Conditions": r.conditions.iter().map(condition_json).collect::<Vec<_>>(),
                "Actions": [action_json(&r.action)],
                "IsDefault": false,
                "Transforms": r.transforms.iter().map(transform_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    rules.push(json!({
        "RuleArn": rule_arn(&l.name, "default"),
        "Priority": "default",
        "Conditions": [],
        "Actions": [action_json(&l.default_action)],
        "IsDefault": true,
    }));
    json!({ "Rules": rules })
}

fn condition_json(c: &Condition) -> Value {
    let values = |m: &cfg::ValueMatcher| m.globs.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>();
    let regexes = |m: &cfg::ValueMatcher| {
        m.regexes
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let field = c.field();
    match c {
        Condition::HostHeader(m) => {
            json!({ "Field": field, "Values": values(m), "HostHeaderConfig": { "Values": values(m), "RegexValues": regexes(m) } })
        }
        Condition::PathPattern(m) => {
            json!({ "Field": field, "Values": values(m), "PathPatternConfig": { "Values": values(m), "RegexValues": regexes(m) } })
        }
        Condition::HttpHeader { name, matcher } => {
            json!({ "Field": field, "HttpHeaderConfig": { "HttpHeaderName": name, "Values": values(matcher), "RegexValues": regexes(matcher) } })
        }
        Condition::HttpRequestMethod(methods) => {
            json!({ "Field": field, "HttpRequestMethodConfig": { "Values": methods } })
        }
        Condition::QueryString(pairs) => {
            let values: Vec<Value> = pairs
                .iter()
                .map(|p| match &p.key {
                    Some(k) => json!({ "Key": k.as_str(), "Value": p.value.as_str() }),
                    None => json!({ "Value": p.value.as_str() }),
                })
                .collect();
            json!({ "Field": field, "QueryStringConfig": { "Values": values } })
        }
        Condition::SourceIp(nets) => {
            json!({ "Field": field, "SourceIpConfig": { "Values": nets.iter().map(|n| n.to_string()).collect::<Vec<_>>() } })
        }
    }
}

fn transform_json(t: &Transform) -> Value {
    let rewrites: Vec<Value> = t
        .rewrites()
        .iter()
        .map(|r| json!({ "Regex": r.regex.as_str(), "Replace": r.replace }))
        .collect();
    match t {
        Transform::HostHeaderRewrite(_) => {
            json!({ "Type": t.kind(), "HostHeaderRewriteConfig": { "Rewrites": rewrites } })
        }
        Transform::UrlRewrite(_) => json!({ "Type": t.kind(), "UrlRewriteConfig": { "Rewrites": rewrites } }),
    }
}

fn action_json(a: &Action) -> Value {
    match a {
        Action::Forward(f) => {
            let groups: Vec<Value> = f
                .target_groups
                .iter()
                .map(|g| json!({ "TargetGroupArn": group_arn(&g.name), "Weight": g.weight }))
                .collect();
            let stickiness = match f.stickiness {
                Some(d) => json!({ "Enabled": true, "DurationSeconds": d.as_secs() }),
                None => json!({ "Enabled": false }),
            };
            let mut v = json!({
                "Type": "forward",
                "Order": 1,
                "ForwardConfig": { "TargetGroups": groups, "TargetGroupStickinessConfig": stickiness },
            });
            if let [single] = f.target_groups.as_slice() {
                v["TargetGroupArn"] = json!(group_arn(&single.name));
            }
            v
        }
        Action::Redirect(r) => {
            let protocol = match r.protocol {
                cfg::RedirectProtocol::Keep => "#{protocol}",
                cfg::RedirectProtocol::Http => "HTTP",
                cfg::RedirectProtocol::Https => "HTTPS",
            };
            json!({
                "Type": "redirect",
                "Order": 1,
                "RedirectConfig": {
                    "Protocol": protocol,
                    "Port": r.port.map(|p| p.to_string()).unwrap_or_else(|| "#{port}".into()),
                    "Host": r.host.source,
                    "Path": r.path.source,
                    "Query": r.query.source,
                    "StatusCode": format!("HTTP_{}", r.status_code),
                },
            })
        }
        Action::FixedResponse(f) => {
            let mut config =
                json!({ "MessageBody": f.message_body, "StatusCode": f.status_code.to_string() });
            if let Some(ct) = &f.content_type {
                config["ContentType"] = json!(ct);
            }
            json!({ "Type": "fixed-response", "Order": 1, "FixedResponseConfig": config })
        }
    }
}

/// Seconds as ELBv2 writes them (integers); fractions, which only hostalb allows, stay
/// fractions.
fn seconds_json(d: std::time::Duration) -> Value {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        json!(d.as_secs())
    } else {
        json!(s)
    }
}

fn describe_target_groups(snap: &Snapshot) -> Value {
    let groups: Vec<Value> = snap.groups.iter().map(|g| target_group_json(snap, g)).collect();
    json!({ "TargetGroups": groups })
}

fn target_group_json(snap: &Snapshot, g: &GroupRt) -> Value {
    let c = &g.cfg;
    let hc = &c.health_check;
    let matcher = if c.protocol_version == cfg::ProtocolVersion::Grpc {
        json!({ "GrpcCode": hc.matcher.source })
    } else {
        json!({ "HttpCode": hc.matcher.source })
    };
    let port = g
        .registered
        .first()
        .map(|t| t.addr.port())
        .or_else(|| c.targets.first().map(|a| a.port()));
    let lb_arns: Vec<String> = if snap.config.target_group_in_use(&c.name) {
        vec![lb_arn()]
    } else {
        vec![]
    };
    json!({
        "TargetGroupArn": group_arn(&c.name),
        "TargetGroupName": c.name,
        "Protocol": c.protocol.as_str(),
        "Port": port,
        "VpcId": "vpc-local",
        "HealthCheckProtocol": hc.protocol.as_str(),
        "HealthCheckPort": match hc.port { HealthCheckPort::TrafficPort => "traffic-port".to_owned(), HealthCheckPort::Port(p) => p.to_string() },
        "HealthCheckEnabled": hc.enabled,
        "HealthCheckIntervalSeconds": seconds_json(hc.interval),
        "HealthCheckTimeoutSeconds": seconds_json(hc.timeout),
        "HealthyThresholdCount": hc.healthy_threshold,
        "UnhealthyThresholdCount": hc.unhealthy_threshold,
        "HealthCheckPath": hc.path,
        "Matcher": matcher,
        "LoadBalancerArns": lb_arns,
        "TargetType": c.target_type.as_str(),
        "ProtocolVersion": c.protocol_version.as_str(),
        "IpAddressType": "ipv4",
        "Attributes": attributes(c),
    })
}

/// `describe-target-group-attributes`: every value a string.
fn attributes(c: &cfg::TargetGroup) -> Vec<Value> {
    let secs = |d: std::time::Duration| {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{}", s as u64)
        } else {
            format!("{s}")
        }
    };
    let (sticky, kind, lb_duration, app_name, app_duration) = match &c.stickiness {
        None => (
            "false",
            "lb_cookie",
            secs(cfg::defaults::STICKINESS_DURATION),
            String::new(),
            secs(cfg::defaults::STICKINESS_DURATION),
        ),
        Some(Stickiness::LbCookie { duration }) => (
            "true",
            "lb_cookie",
            secs(*duration),
            String::new(),
            secs(cfg::defaults::STICKINESS_DURATION),
        ),
        Some(Stickiness::AppCookie {
            cookie_name,
            duration,
        }) => (
            "true",
            "app_cookie",
            secs(cfg::defaults::STICKINESS_DURATION),
            cookie_name.clone(),
            secs(*duration),
        ),
    };
    let pairs: Vec<(&str, String)> = vec![
        (
            "deregistration_delay.timeout_seconds",
            secs(c.deregistration_delay),
        ),
        ("slow_start.duration_seconds", secs(c.slow_start)),
        ("load_balancing.algorithm.type", c.algorithm.as_str().to_owned()),
        ("stickiness.enabled", sticky.to_owned()),
        ("stickiness.type", kind.to_owned()),
        ("stickiness.lb_cookie.duration_seconds", lb_duration),
        ("stickiness.app_cookie.cookie_name", app_name),
        ("stickiness.app_cookie.duration_seconds", app_duration),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect()
}

/// A target's state and reason as DescribeTargetHealth reports them.
pub(crate) fn target_health(
    g: &GroupRt,
    t: &Target,
    draining: bool,
) -> (State, Option<Reason>, Option<String>) {
    if draining {
        return (State::Draining, Some(Reason::DeregistrationInProgress), None);
    }
    if !g.in_use {
        return (State::Unused, Some(Reason::NotInUse), None);
    }
    if !g.cfg.health_check.enabled {
        return (State::Unavailable, Some(Reason::HealthCheckDisabled), None);
    }
    let tracker = t.tracker();
    if tracker.state == State::Healthy && t.docker_unhealthy.load(Relaxed) {
        return (
            State::Unhealthy,
            Some(Reason::FailedHealthChecks),
            Some("Docker HEALTHCHECK reports the container unhealthy".into()),
        );
    }
    (tracker.state, tracker.reason, None)
}

/// DescribeTargetHealth: every registered and draining target, or only `only` (where an
/// address that is not registered is reported `unused` / `Target.NotRegistered`).
fn describe_target_health(g: &GroupRt, only: Option<&[std::net::SocketAddr]>) -> Value {
    let health_port = |addr: std::net::SocketAddr| match g.cfg.health_check.port {
        HealthCheckPort::TrafficPort => addr.port(),
        HealthCheckPort::Port(p) => p,
    };
    let describe = |addr: std::net::SocketAddr,
                    origin: Option<&crate::model::target::TargetOrigin>,
                    health: (State, Option<Reason>, Option<String>)| {
        let (state, reason, description) = health;
        let mut th = json!({ "State": state.as_str() });
        if let Some(r) = reason {
            th["Reason"] = json!(r.code());
            th["Description"] = json!(description.unwrap_or_else(|| r.description()));
        }
        let mut target = json!({ "Id": addr.ip().to_string(), "Port": addr.port() });
        if let Some(o) = origin {
            if let Some(id) = &o.container_id {
                target["ContainerId"] = json!(id);
            }
            if let Some(name) = &o.container_name {
                target["ContainerName"] = json!(name);
            }
        }
        json!({ "Target": target, "HealthCheckPort": health_port(addr).to_string(), "TargetHealth": th })
    };
    let wanted = |addr: std::net::SocketAddr| only.is_none_or(|list| list.contains(&addr));
    let mut out: Vec<Value> = Vec::new();
    for (list, draining) in [(&g.registered, false), (&g.draining, true)] {
        for t in list.iter().filter(|t| wanted(t.addr)) {
            out.push(describe(t.addr, Some(&t.origin), target_health(g, t, draining)));
        }
    }
    for addr in only.unwrap_or_default() {
        let known = g
            .registered
            .iter()
            .chain(g.draining.iter())
            .any(|t| t.addr == *addr);
        if !known {
            out.push(describe(
                *addr,
                None,
                (State::Unused, Some(Reason::NotRegistered), None),
            ));
        }
    }
    json!({ "TargetHealthDescriptions": out })
}
