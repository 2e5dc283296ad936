//! ELBv2's actions over the API's state: each change builds the whole configuration anew
//! (the file's, with the API's resources merged), which the proxy validates and applies as
//! a reload; only then is the state file written. A change the validator refuses answers
//! its problems (path and fix) and changes nothing. Resources of the configuration file are
//! read-only (`OperationNotPermitted`), except that targets may be registered in any group.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use hostalb_aws::arn::{self, ElbResource, HOSTALB_LB_NAME, Scope};
use hostalb_aws::elbv2::*;
use hostalb_aws::query::Params;
use hostalb_config::ConfigError;
use hostalb_proxy::{AwsAnswer, ControlError, Proxy, Registration, TargetOrigin};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::state::{self, ApiListener, ApiState};
use super::{doc, elb_error, xml_answer};

/// Where HTTPS listeners' certificates are read, beside the state file: `certs/ID.pem`
/// and `certs/ID.key` for `arn:aws:acm:...:certificate/ID`.
const CERTS_DIR: &str = "certs";
/// ELBv2's largest (and default) page: `PageSize` runs from 1 to 400.
const MAX_PAGE_SIZE: usize = 400;
/// Rule priorities ELBv2 accepts.
const PRIORITIES: std::ops::RangeInclusive<u32> = 1..=50_000;
/// The hosted zone id AWS gives ALBs in us-east-1 (scripts read it, nothing resolves it).
const HOSTED_ZONE_ID: &str = "Z35SXDOTRQ7X7K";
/// The VPC every resource reports: one host is one network.
const VPC_ID: &str = "vpc-local";

type R<T> = Result<T, ElbError>;

fn err(code: ErrorCode, message: impl Into<String>) -> ElbError {
    ElbError::new(code, message)
}

/// Each id asked for names one of `all` (compared by `id`): ELBv2 answers `code` for the
/// first that does not.
fn all_known<T>(
    asked: &[String],
    all: &[T],
    id: impl Fn(&T) -> &String,
    code: ErrorCode,
    what: &str,
) -> R<()> {
    match asked.iter().find(|a| !all.iter().any(|x| id(x) == *a)) {
        Some(a) => Err(err(code, format!("{what} `{a}` not found"))),
        None => Ok(()),
    }
}

fn read_only(what: &str) -> ElbError {
    err(
        ErrorCode::OperationNotPermitted,
        format!(
            "{what} is defined in the configuration file and is read-only through the API; fix: change the file and reload"
        ),
    )
}

/// ELBv2 on one hostalb.
#[derive(Debug)]
pub(crate) struct Elbv2 {
    proxy: Proxy,
    /// One call at a time: each builds the next state from the last one.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: ApiState,
    path: PathBuf,
    /// The configuration document of `state`, as last applied.
    doc: Value,
}

impl Elbv2 {
    pub(crate) fn new(proxy: Proxy, state: ApiState, path: PathBuf) -> Elbv2 {
        let doc = Value::Null;
        Elbv2 {
            proxy,
            inner: Mutex::new(Inner { state, path, doc }),
        }
    }

    /// The document for the state loaded at start, and the registrations it holds: applied
    /// once the proxy runs.
    pub(crate) async fn start(&self) -> Result<(), String> {
        let mut inner = self.inner.lock().await;
        let d = self
            .document(&inner.state, &inner.doc, &inner.path)
            .map_err(|e| e.to_string())?;
        let registrations = registrations(&inner.state);
        if !inner.state.listeners.is_empty() || !inner.state.target_groups.is_empty() {
            self.proxy.apply_api(d.clone()).await.map_err(|e| e.to_string())?;
        }
        inner.doc = d;
        self.proxy.set_api_registrations(registrations).await;
        Ok(())
    }

    pub(crate) async fn call(&self, params: &Params) -> AwsAnswer {
        let mut req = match Request::decode(params) {
            Ok(r) => r,
            Err(e) => return elb_error(&e),
        };
        forward_defaults(&mut req);
        let action = req.action();
        let mut inner = self.inner.lock().await;
        match self.handle(&mut inner, req).await {
            Ok(result) => xml_answer(action, &result),
            Err(e) => elb_error(&e),
        }
    }

    /// The configuration document of `s`; `applied` is the one being served (its listeners
    /// are the API's), `path` the state file (certificates are read beside it).
    fn document(&self, s: &ApiState, applied: &Value, path: &Path) -> Result<Value, doc::DocError> {
        state_document(&self.proxy.config(), s, applied, path)
    }

    /// Applies `next` (validated as a reload), then writes it to the state file; on any
    /// failure nothing changes.
    async fn commit(&self, inner: &mut Inner, next: ApiState) -> R<()> {
        let d = self
            .document(&next, &inner.doc, &inner.path)
            .map_err(|e| match e {
                doc::DocError::Internal(m) => err(ErrorCode::InternalFailure, m),
                not_carried => err(ErrorCode::ValidationError, not_carried.to_string()),
            })?;
        if d != inner.doc {
            let file_count = self
                .proxy
                .config()
                .listeners
                .len()
                .saturating_sub(doc::listener_names(&inner.doc).len());
            self.proxy
                .apply_api(d.clone())
                .await
                .map_err(|e| control_error(e, &|path| explain(path, &next, file_count)))?;
        }
        if let Err(e) = state::save(&inner.path, &next) {
            if d != inner.doc {
                let _ = self.proxy.apply_api(inner.doc.clone()).await;
            }
            return Err(err(ErrorCode::InternalFailure, e.to_string()));
        }
        if registrations(&next) != registrations(&inner.state) {
            self.proxy.set_api_registrations(registrations(&next)).await;
        }
        inner.doc = d;
        inner.state = next;
        Ok(())
    }

    async fn handle(&self, inner: &mut Inner, req: Request) -> R<Value> {
        let s = &inner.state;
        let mut next = s.clone();
        let scope = Scope::default();
        let config = self.proxy.config();
        let file_lb = arn::load_balancer_arn(&scope, HOSTALB_LB_NAME);
        let file_listeners = file_listener_names(&config, &inner.doc);
        let has_file_lb = !file_listeners.is_empty();
        match req {
            Request::CreateLoadBalancer(c) => {
                check_name(&c.name, "Name")?;
                if c.name == HOSTALB_LB_NAME {
                    return Err(err(
                        ErrorCode::DuplicateLoadBalancerName,
                        format!(
                            "load balancer name `{HOSTALB_LB_NAME}` is the configuration file's; fix: choose another name"
                        ),
                    ));
                }
                if c.kind.as_deref().is_some_and(|k| k != "application") {
                    return Err(err(
                        ErrorCode::ValidationError,
                        "hostalb serves application load balancers only; fix: leave Type out or set it to application",
                    ));
                }
                if let Some(lb) = s.load_balancers.iter().find(|l| l.load_balancer_name == c.name) {
                    // ELBv2: creating a load balancer that exists answers it.
                    return Ok(json!({ "LoadBalancers": [to_json(lb)] }));
                }
                let lb = LoadBalancer {
                    load_balancer_arn: arn::load_balancer_arn(&scope, &c.name),
                    dns_name: Some(config.admin.api_listener_address.to_string()),
                    canonical_hosted_zone_id: Some(HOSTED_ZONE_ID.into()),
                    created_time: Some(now_iso()),
                    load_balancer_name: c.name.clone(),
                    scheme: Some(c.scheme.unwrap_or_else(|| "internet-facing".into())),
                    vpc_id: Some(VPC_ID.into()),
                    state: Some(LoadBalancerState {
                        code: Some("active".into()),
                        reason: None,
                    }),
                    kind: Some("application".into()),
                    // The subnets given are kept and shown (hostalb uses none); their
                    // zones are unknown here, so ZoneName is left out.
                    availability_zones: Some(
                        c.subnets
                            .iter()
                            .map(|id| hostalb_aws::elbv2::AvailabilityZone {
                                zone_name: None,
                                subnet_id: Some(id.clone()),
                            })
                            .collect(),
                    ),
                    security_groups: Some(c.security_groups),
                    ip_address_type: Some(c.ip_address_type.unwrap_or_else(|| "ipv4".into())),
                };
                set_tags(&mut next, &lb.load_balancer_arn, c.tags);
                next.load_balancers.push(lb.clone());
                self.commit(inner, next).await?;
                Ok(json!({ "LoadBalancers": [to_json(&lb)] }))
            }
            Request::DescribeLoadBalancers(d) => {
                let mut all: Vec<LoadBalancer> = Vec::new();
                if has_file_lb {
                    all.push(LoadBalancer {
                        load_balancer_arn: file_lb.clone(),
                        dns_name: Some("localhost".into()),
                        load_balancer_name: HOSTALB_LB_NAME.into(),
                        scheme: Some("internet-facing".into()),
                        vpc_id: Some(VPC_ID.into()),
                        state: Some(LoadBalancerState {
                            code: Some("active".into()),
                            reason: None,
                        }),
                        kind: Some("application".into()),
                        ip_address_type: Some("ipv4".into()),
                        ..LoadBalancer::default()
                    });
                }
                all.extend(s.load_balancers.iter().cloned());
                all_known(
                    &d.load_balancer_arns,
                    &all,
                    |l| &l.load_balancer_arn,
                    ErrorCode::LoadBalancerNotFound,
                    "load balancer",
                )?;
                all_known(
                    &d.names,
                    &all,
                    |l| &l.load_balancer_name,
                    ErrorCode::LoadBalancerNotFound,
                    "load balancer",
                )?;
                all.retain(|l| {
                    (d.load_balancer_arns.is_empty() || d.load_balancer_arns.contains(&l.load_balancer_arn))
                        && (d.names.is_empty() || d.names.contains(&l.load_balancer_name))
                });
                let (items, marker) = page(all, d.marker.as_deref(), d.page_size)?;
                Ok(
                    json!({ "LoadBalancers": items.iter().map(to_json).collect::<Vec<_>>(), "NextMarker": marker }),
                )
            }
            Request::DeleteLoadBalancer { load_balancer_arn } => {
                if load_balancer_arn == file_lb {
                    return Err(read_only("load balancer `hostalb`"));
                }
                if !s
                    .load_balancers
                    .iter()
                    .any(|l| l.load_balancer_arn == load_balancer_arn)
                {
                    // ELBv2: deleting a load balancer that is gone succeeds.
                    return Ok(json!({}));
                }
                next.load_balancers
                    .retain(|l| l.load_balancer_arn != load_balancer_arn);
                let gone: Vec<String> = next
                    .listeners
                    .iter()
                    .filter(|l| l.listener.load_balancer_arn.as_deref() == Some(&load_balancer_arn))
                    .map(|l| l.listener.listener_arn.clone())
                    .collect();
                next.listeners
                    .retain(|l| !gone.contains(&l.listener.listener_arn));
                next.rules
                    .retain(|r| arn::listener_of_rule(&r.rule_arn).is_none_or(|l| !gone.contains(&l)));
                forget(&mut next, &load_balancer_arn);
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::CreateTargetGroup(c) => {
                check_name(&c.name, "Name")?;
                if file_groups(&config, s).contains(&c.name) {
                    return Err(err(
                        ErrorCode::DuplicateTargetGroupName,
                        format!(
                            "target group `{}` is defined in the configuration file; fix: choose another name",
                            c.name
                        ),
                    ));
                }
                let protocol = c.protocol.clone().unwrap_or_else(|| "HTTP".into());
                if !matches!(protocol.as_str(), "HTTP" | "HTTPS") {
                    return Err(err(
                        ErrorCode::UnsupportedProtocol,
                        format!("protocol {protocol}: hostalb serves HTTP and HTTPS target groups"),
                    ));
                }
                let target_type = c.target_type.clone().unwrap_or_else(|| "instance".into());
                if !matches!(target_type.as_str(), "instance" | "ip") {
                    return Err(err(
                        ErrorCode::ValidationError,
                        format!(
                            "target type {target_type}: hostalb registers targets by IP address (instance or ip)"
                        ),
                    ));
                }
                if let Some(existing) = s.target_groups.iter().find(|g| g.target_group_name == c.name) {
                    if existing.protocol.as_deref() == Some(protocol.as_str()) && existing.port == c.port {
                        return Ok(json!({ "TargetGroups": [to_json(existing)] }));
                    }
                    return Err(err(
                        ErrorCode::DuplicateTargetGroupName,
                        format!("a target group named `{}` exists with other settings", c.name),
                    ));
                }
                let mut g = TargetGroup {
                    target_group_arn: arn::target_group_arn(&scope, &c.name),
                    target_group_name: c.name.clone(),
                    protocol: Some(protocol.clone()),
                    port: c.port,
                    vpc_id: Some(c.vpc_id.clone().unwrap_or_else(|| VPC_ID.into())),
                    health_check_protocol: Some(protocol),
                    health_check_port: Some("traffic-port".into()),
                    health_check_enabled: Some(true),
                    health_check_interval_seconds: Some(30),
                    health_check_timeout_seconds: Some(5),
                    healthy_threshold_count: Some(5),
                    unhealthy_threshold_count: Some(2),
                    health_check_path: Some("/".into()),
                    matcher: Some(Matcher {
                        http_code: Some("200".into()),
                        grpc_code: None,
                    }),
                    load_balancer_arns: Vec::new(),
                    target_type: Some(target_type),
                    protocol_version: Some(c.protocol_version.clone().unwrap_or_else(|| "HTTP1".into())),
                    ip_address_type: Some(c.ip_address_type.clone().unwrap_or_else(|| "ipv4".into())),
                };
                apply_health_check(&mut g, &c.health_check);
                set_tags(&mut next, &g.target_group_arn, c.tags);
                next.target_groups.push(g.clone());
                self.commit(inner, next).await?;
                Ok(json!({ "TargetGroups": [to_json(&g)] }))
            }
            Request::DescribeTargetGroups(d) => {
                let mut all = self.all_target_groups(s);
                all_known(
                    &d.target_group_arns,
                    &all,
                    |g| &g.target_group_arn,
                    ErrorCode::TargetGroupNotFound,
                    "target group",
                )?;
                all_known(
                    &d.names,
                    &all,
                    |g| &g.target_group_name,
                    ErrorCode::TargetGroupNotFound,
                    "target group",
                )?;
                if let Some(lb) = &d.load_balancer_arn {
                    if *lb != file_lb && !s.load_balancers.iter().any(|l| &l.load_balancer_arn == lb) {
                        return Err(err(
                            ErrorCode::LoadBalancerNotFound,
                            format!("load balancer `{lb}` not found"),
                        ));
                    }
                }
                all.retain(|g| {
                    (d.target_group_arns.is_empty() || d.target_group_arns.contains(&g.target_group_arn))
                        && (d.names.is_empty() || d.names.contains(&g.target_group_name))
                        && d.load_balancer_arn
                            .as_ref()
                            .is_none_or(|lb| g.load_balancer_arns.contains(lb))
                });
                let (items, marker) = page(all, d.marker.as_deref(), d.page_size)?;
                Ok(
                    json!({ "TargetGroups": items.iter().map(to_json).collect::<Vec<_>>(), "NextMarker": marker }),
                )
            }
            Request::DeleteTargetGroup { target_group_arn } => {
                let name = self.group_name(s, &target_group_arn);
                match name {
                    Some((_, false)) => return Err(read_only("this target group")),
                    None => return Ok(json!({})),
                    Some((_, true)) => {}
                }
                if let Some(user) = group_users(s, &target_group_arn).first() {
                    return Err(err(
                        ErrorCode::ResourceInUse,
                        format!(
                            "target group `{target_group_arn}` is used by `{user}`; fix: delete or change that first"
                        ),
                    ));
                }
                next.target_groups
                    .retain(|g| g.target_group_arn != target_group_arn);
                if let Some((n, _)) = &name {
                    next.registrations.remove(n);
                }
                forget(&mut next, &target_group_arn);
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::ModifyTargetGroup(m) => {
                self.api_group(s, &m.target_group_arn)?;
                let Some(g) = next
                    .target_groups
                    .iter_mut()
                    .find(|g| g.target_group_arn == m.target_group_arn)
                else {
                    return Err(not_found_group(&m.target_group_arn));
                };
                apply_health_check(g, &m.health_check);
                let g = g.clone();
                self.commit(inner, next).await?;
                let g = self
                    .all_target_groups(&inner.state)
                    .into_iter()
                    .find(|x| x.target_group_arn == g.target_group_arn)
                    .unwrap_or(g);
                Ok(json!({ "TargetGroups": [to_json(&g)] }))
            }
            Request::RegisterTargets {
                target_group_arn,
                targets,
            } => {
                let (name, _) = self
                    .group_name(s, &target_group_arn)
                    .ok_or_else(|| not_found_group(&target_group_arn))?;
                let port = self.group_port(s, &name);
                let list = next.registrations.entry(name).or_default();
                for t in targets {
                    target_address(&t, port)?;
                    let t = TargetDescription {
                        port: t.port.or(port),
                        ..t
                    };
                    if !list.iter().any(|x| x.id == t.id && x.port == t.port) {
                        list.push(t);
                    }
                }
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::DeregisterTargets {
                target_group_arn,
                targets,
            } => {
                let (name, _) = self
                    .group_name(s, &target_group_arn)
                    .ok_or_else(|| not_found_group(&target_group_arn))?;
                let port = self.group_port(s, &name);
                if let Some(list) = next.registrations.get_mut(&name) {
                    for t in &targets {
                        let p = t.port.or(port);
                        list.retain(|x| !(x.id == t.id && (p.is_none() || x.port == p)));
                    }
                    if list.is_empty() {
                        next.registrations.remove(&name);
                    }
                }
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::DescribeTargetHealth(d) => {
                let (name, _) = self
                    .group_name(s, &d.target_group_arn)
                    .ok_or_else(|| not_found_group(&d.target_group_arn))?;
                let described = self
                    .proxy
                    .describe_target_health_json(&name)
                    .and_then(|v| v.get("TargetHealthDescriptions").cloned())
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                let out: Vec<Value> = if d.targets.is_empty() {
                    described
                } else {
                    let port = self.group_port(s, &name);
                    d.targets
                        .iter()
                        .map(|t| {
                            let p = t.port.or(port);
                            described
                                .iter()
                                .find(|x| {
                                    x["Target"]["Id"].as_str() == Some(t.id.as_str())
                                        && p.is_none_or(|p| {
                                            x["Target"]["Port"].as_u64() == Some(u64::from(p))
                                        })
                                })
                                .cloned()
                                .unwrap_or_else(|| {
                                    json!({
                                        "Target": { "Id": t.id, "Port": p },
                                        "HealthCheckPort": p.map(|p| p.to_string()),
                                        "TargetHealth": {
                                            "State": "unused",
                                            "Reason": "Target.NotRegistered",
                                            "Description": "Target is not registered to the target group",
                                        },
                                    })
                                })
                        })
                        .collect()
                };
                let mut v = json!({ "TargetHealthDescriptions": out });
                strip_nulls(&mut v);
                Ok(v)
            }
            Request::CreateListener(c) => {
                let lb = self.api_lb(s, &c.load_balancer_arn, &file_lb)?;
                let protocol = c.protocol.clone().unwrap_or_else(|| "HTTP".into());
                check_protocol(&protocol)?;
                let https = protocol == "HTTPS";
                let certificates = default_certificate(&c.certificates, https)?;
                let port = c.port.ok_or_else(|| ElbError::missing("Port"))?;
                if s.listeners.iter().any(|l| {
                    l.listener.load_balancer_arn.as_deref() == Some(&c.load_balancer_arn)
                        && l.listener.port == Some(port)
                }) {
                    return Err(err(
                        ErrorCode::DuplicateListener,
                        format!(
                            "load balancer `{}` has a listener on port {port}",
                            lb.load_balancer_name
                        ),
                    ));
                }
                self.check_actions(s, &c.default_actions)?;
                let key = format!("{port}-{}", unique());
                let listener = Listener {
                    listener_arn: arn::listener_arn(&scope, &lb.load_balancer_name, &key),
                    load_balancer_arn: Some(c.load_balancer_arn.clone()),
                    port: Some(port),
                    protocol: Some(protocol),
                    ssl_policy: https.then(|| c.ssl_policy.unwrap_or_else(|| DEFAULT_SSL_POLICY.into())),
                    certificates,
                    default_actions: c.default_actions,
                    ..Listener::default()
                };
                set_tags(&mut next, &listener.listener_arn, c.tags);
                next.listeners.push(ApiListener {
                    key,
                    listener: listener.clone(),
                });
                self.commit(inner, next).await?;
                Ok(json!({ "Listeners": [listener_json(&listener)] }))
            }
            Request::DescribeListeners(d) => {
                let mut all: Vec<Listener> = Vec::new();
                if has_file_lb {
                    all.extend(self.file_listeners(&file_listeners).into_iter().map(|(_, l)| l));
                }
                all.extend(s.listeners.iter().map(|l| l.listener.clone()));
                if let Some(lb) = &d.load_balancer_arn {
                    let known = (has_file_lb && *lb == file_lb)
                        || s.load_balancers.iter().any(|l| &l.load_balancer_arn == lb);
                    if !known {
                        return Err(err(
                            ErrorCode::LoadBalancerNotFound,
                            format!("load balancer `{lb}` not found"),
                        ));
                    }
                }
                all_known(
                    &d.listener_arns,
                    &all,
                    |l| &l.listener_arn,
                    ErrorCode::ListenerNotFound,
                    "listener",
                )?;
                all.retain(|l| {
                    (d.listener_arns.is_empty() || d.listener_arns.contains(&l.listener_arn))
                        && d.load_balancer_arn
                            .as_ref()
                            .is_none_or(|lb| l.load_balancer_arn.as_ref() == Some(lb))
                });
                let (items, marker) = page(all, d.marker.as_deref(), d.page_size)?;
                Ok(
                    json!({ "Listeners": items.iter().map(listener_json).collect::<Vec<_>>(), "NextMarker": marker }),
                )
            }
            Request::ModifyListener(m) => {
                let i = self.api_listener(s, &m.listener_arn, &file_listeners)?;
                let l = &mut next.listeners[i].listener;
                if let Some(p) = &m.protocol {
                    check_protocol(p)?;
                    l.protocol = Some(p.clone());
                }
                let https = l.protocol.as_deref() == Some("HTTPS");
                if let Some(c) = &m.certificates {
                    let mut list = default_certificate(c, https)?.unwrap_or_default();
                    // The extra certificates (AddListenerCertificates) stay.
                    list.extend(
                        l.certificates
                            .iter()
                            .flatten()
                            .filter(|x| x.is_default != Some(true))
                            .cloned(),
                    );
                    l.certificates = Some(list);
                } else if https && l.certificates.as_ref().is_none_or(Vec::is_empty) {
                    return Err(err(
                        ErrorCode::ValidationError,
                        "an HTTPS listener needs a certificate: give Certificates",
                    ));
                }
                if !https {
                    l.certificates = None;
                    l.ssl_policy = None;
                } else if let Some(p) = &m.ssl_policy {
                    l.ssl_policy = Some(p.clone());
                } else if l.ssl_policy.is_none() {
                    l.ssl_policy = Some(DEFAULT_SSL_POLICY.into());
                }
                if let Some(port) = m.port {
                    if s.listeners.iter().any(|o| {
                        o.listener.listener_arn != m.listener_arn
                            && o.listener.load_balancer_arn == l.load_balancer_arn
                            && o.listener.port == Some(port)
                    }) {
                        return Err(err(
                            ErrorCode::DuplicateListener,
                            format!("the load balancer has a listener on port {port}"),
                        ));
                    }
                    l.port = Some(port);
                }
                if let Some(actions) = m.default_actions {
                    self.check_actions(s, &actions)?;
                    l.default_actions = actions;
                }
                let l = l.clone();
                self.commit(inner, next).await?;
                Ok(json!({ "Listeners": [listener_json(&l)] }))
            }
            Request::DeleteListener { listener_arn } => {
                self.api_listener(s, &listener_arn, &file_listeners)?;
                next.listeners.retain(|l| l.listener.listener_arn != listener_arn);
                let gone: Vec<String> = next
                    .rules
                    .iter()
                    .filter(|r| arn::listener_of_rule(&r.rule_arn).as_deref() == Some(&listener_arn))
                    .map(|r| r.rule_arn.clone())
                    .collect();
                next.rules.retain(|r| !gone.contains(&r.rule_arn));
                for a in gone.iter().chain(std::iter::once(&listener_arn)) {
                    forget(&mut next, a);
                }
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::CreateRule(c) => {
                let i = self.api_listener(s, &c.listener_arn, &file_listeners)?;
                if !PRIORITIES.contains(&c.priority) {
                    return Err(ElbError::invalid(
                        "Priority",
                        &c.priority.to_string(),
                        "between 1 and 50000",
                    ));
                }
                let priority = c.priority.to_string();
                if rules_of(s, &c.listener_arn).any(|r| r.priority == priority) {
                    return Err(err(
                        ErrorCode::PriorityInUse,
                        format!("priority {priority} is in use on this listener"),
                    ));
                }
                self.check_actions(s, &c.actions)?;
                let listener = &s.listeners[i];
                let lb = lb_name_of(&listener.listener.listener_arn);
                let rule = Rule {
                    rule_arn: arn::rule_arn(&scope, &lb, &listener.key, &format!("{priority}-{}", unique())),
                    priority,
                    conditions: c.conditions,
                    actions: c.actions,
                    is_default: false,
                    transforms: (!c.transforms.is_empty()).then_some(c.transforms),
                };
                set_tags(&mut next, &rule.rule_arn, c.tags);
                next.rules.push(rule.clone());
                self.commit(inner, next).await?;
                Ok(json!({ "Rules": [to_json(&rule)] }))
            }
            Request::DescribeRules(d) => {
                let mut all: Vec<Rule> = Vec::new();
                match &d.listener_arn {
                    Some(l) => {
                        if let Some(api) = s.listeners.iter().find(|x| &x.listener.listener_arn == l) {
                            all.extend(listener_rules(s, api));
                        } else if let Some(name) = self.file_listener_of(&file_listeners, l) {
                            all.extend(self.file_rules(&name));
                        } else {
                            return Err(err(
                                ErrorCode::ListenerNotFound,
                                format!("listener `{l}` not found"),
                            ));
                        }
                    }
                    None => {
                        for api in &s.listeners {
                            all.extend(listener_rules(s, api));
                        }
                        for name in &file_listeners {
                            all.extend(self.file_rules(name));
                        }
                    }
                }
                all_known(
                    &d.rule_arns,
                    &all,
                    |r| &r.rule_arn,
                    ErrorCode::RuleNotFound,
                    "rule",
                )?;
                all.retain(|r| d.rule_arns.is_empty() || d.rule_arns.contains(&r.rule_arn));
                let (items, marker) = page(all, d.marker.as_deref(), d.page_size)?;
                Ok(json!({ "Rules": items.iter().map(to_json).collect::<Vec<_>>(), "NextMarker": marker }))
            }
            Request::ModifyRule(m) => {
                if let Some(api) = s.listeners.iter().position(|l| default_rule_arn(l) == m.rule_arn) {
                    // The default rule's actions are the listener's default actions.
                    if let Some(actions) = m.actions {
                        self.check_actions(s, &actions)?;
                        next.listeners[api].listener.default_actions = actions;
                    }
                    self.commit(inner, next).await?;
                    let rule = listener_rules(&inner.state, &inner.state.listeners[api]).pop();
                    return Ok(json!({ "Rules": rule.iter().map(to_json).collect::<Vec<_>>() }));
                }
                let i = self.api_rule(s, &m.rule_arn)?;
                if let Some(actions) = &m.actions {
                    self.check_actions(s, actions)?;
                }
                let r = &mut next.rules[i];
                if let Some(c) = m.conditions {
                    r.conditions = c;
                }
                if let Some(a) = m.actions {
                    r.actions = a;
                }
                if m.reset_transforms == Some(true) {
                    r.transforms = None;
                } else if let Some(t) = m.transforms {
                    r.transforms = Some(t);
                }
                let r = r.clone();
                self.commit(inner, next).await?;
                Ok(json!({ "Rules": [to_json(&r)] }))
            }
            Request::SetRulePriorities { rule_priorities } => {
                let mut changed = Vec::new();
                for p in &rule_priorities {
                    let i = self.api_rule(s, &p.rule_arn)?;
                    if !PRIORITIES.contains(&p.priority) {
                        return Err(ElbError::invalid(
                            "RulePriorities.member.Priority",
                            &p.priority.to_string(),
                            "between 1 and 50000",
                        ));
                    }
                    next.rules[i].priority = p.priority.to_string();
                    changed.push(i);
                }
                let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
                for r in &next.rules {
                    let key = (
                        arn::listener_of_rule(&r.rule_arn).unwrap_or_default(),
                        r.priority.clone(),
                    );
                    if let Some(other) = seen.insert(key, &r.rule_arn) {
                        return Err(err(
                            ErrorCode::PriorityInUse,
                            format!("priority {} is in use by `{other}`", r.priority),
                        ));
                    }
                }
                let out: Vec<Value> = changed.iter().map(|i| to_json(&next.rules[*i])).collect();
                self.commit(inner, next).await?;
                Ok(json!({ "Rules": out }))
            }
            Request::DeleteRule { rule_arn } => {
                if s.listeners.iter().any(|l| default_rule_arn(l) == rule_arn) {
                    return Err(err(
                        ErrorCode::OperationNotPermitted,
                        "a listener's default rule cannot be deleted; fix: delete the listener, or modify the rule's actions",
                    ));
                }
                self.api_rule(s, &rule_arn)?;
                next.rules.retain(|r| r.rule_arn != rule_arn);
                forget(&mut next, &rule_arn);
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::DescribeTargetGroupAttributes { target_group_arn } => {
                let (name, api) = self
                    .group_name(s, &target_group_arn)
                    .ok_or_else(|| not_found_group(&target_group_arn))?;
                let attrs = if api {
                    merged(GROUP_ATTRIBUTES, s.attributes.get(&target_group_arn))
                } else {
                    file_group_attributes(&config, &name)
                };
                Ok(json!({ "Attributes": attrs.iter().map(to_json).collect::<Vec<_>>() }))
            }
            Request::ModifyTargetGroupAttributes {
                target_group_arn,
                attributes,
            } => {
                self.api_group(s, &target_group_arn)?;
                set_attributes(&mut next, &target_group_arn, attributes, GROUP_ATTRIBUTES)?;
                let effective = merged(GROUP_ATTRIBUTES, next.attributes.get(&target_group_arn));
                let value = |k: &str| effective.iter().find(|a| a.key == k).map(|a| a.value.as_str());
                if value("stickiness.enabled") == Some("true")
                    && value("stickiness.type") == Some("app_cookie")
                    && value("stickiness.app_cookie.cookie_name").is_none_or(str::is_empty)
                {
                    return Err(err(
                        ErrorCode::ValidationError,
                        "stickiness of type app_cookie needs stickiness.app_cookie.cookie_name",
                    ));
                }
                self.commit(inner, next).await?;
                let attrs = merged(GROUP_ATTRIBUTES, inner.state.attributes.get(&target_group_arn));
                Ok(json!({ "Attributes": attrs.iter().map(to_json).collect::<Vec<_>>() }))
            }
            Request::DescribeLoadBalancerAttributes { load_balancer_arn } => {
                if has_file_lb && load_balancer_arn == file_lb {
                    return Ok(
                        json!({ "Attributes": merged(LB_ATTRIBUTES, None).iter().map(to_json).collect::<Vec<_>>() }),
                    );
                }
                self.api_lb(s, &load_balancer_arn, &file_lb)?;
                let attrs = merged(LB_ATTRIBUTES, s.attributes.get(&load_balancer_arn));
                Ok(json!({ "Attributes": attrs.iter().map(to_json).collect::<Vec<_>>() }))
            }
            Request::ModifyLoadBalancerAttributes {
                load_balancer_arn,
                attributes,
            } => {
                self.api_lb(s, &load_balancer_arn, &file_lb)?;
                set_attributes(&mut next, &load_balancer_arn, attributes, LB_ATTRIBUTES)?;
                self.commit(inner, next).await?;
                let attrs = merged(LB_ATTRIBUTES, inner.state.attributes.get(&load_balancer_arn));
                Ok(json!({ "Attributes": attrs.iter().map(to_json).collect::<Vec<_>>() }))
            }
            Request::AddTags { resource_arns, tags } => {
                for a in &resource_arns {
                    self.taggable(s, a, &file_listeners)?;
                    let list = next.tags.entry(a.clone()).or_default();
                    for t in &tags {
                        list.retain(|x| x.key != t.key);
                        list.push(t.clone());
                    }
                }
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::RemoveTags {
                resource_arns,
                tag_keys,
            } => {
                for a in &resource_arns {
                    self.taggable(s, a, &file_listeners)?;
                    if let Some(list) = next.tags.get_mut(a) {
                        list.retain(|x| !tag_keys.contains(&x.key));
                    }
                }
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
            Request::DescribeTags { resource_arns } => {
                let mut out = Vec::new();
                for a in &resource_arns {
                    if !self.exists(s, a, &file_listeners) {
                        return Err(not_found(a));
                    }
                    let tags = s.tags.get(a).cloned().unwrap_or_default();
                    out.push(TagDescription {
                        resource_arn: a.clone(),
                        tags,
                    });
                }
                Ok(json!({ "TagDescriptions": out.iter().map(to_json).collect::<Vec<_>>() }))
            }
            Request::DescribeSslPolicies {
                names,
                marker,
                page_size,
                ..
            } => {
                let all = ssl_policies();
                for n in &names {
                    if !all.iter().any(|p| p["Name"] == n.as_str()) {
                        return Err(err(
                            ErrorCode::ValidationError,
                            format!(
                                "SSL policy {n} is not known; the ones served: {}",
                                hostalb_config::SSL_POLICIES
                                    .iter()
                                    .map(|p| p.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
                let all: Vec<Value> = all
                    .into_iter()
                    .filter(|p| names.is_empty() || names.iter().any(|n| p["Name"] == n.as_str()))
                    .collect();
                let (items, marker) = page(all, marker.as_deref(), page_size)?;
                Ok(json!({ "SslPolicies": items, "NextMarker": marker }))
            }
            Request::DescribeListenerCertificates {
                listener_arn,
                marker,
                page_size,
            } => {
                let all: Vec<Certificate> = if let Some(l) = s
                    .listeners
                    .iter()
                    .find(|l| l.listener.listener_arn == listener_arn)
                {
                    l.listener.certificates.clone().unwrap_or_default()
                } else if let Some(name) = self.file_listener_of(&file_listeners, &listener_arn) {
                    config
                        .listeners
                        .iter()
                        .filter(|l| l.name == name)
                        .flat_map(|l| l.certificates.iter())
                        .enumerate()
                        .map(|(i, c)| Certificate {
                            certificate_arn: Some(arn::certificate_arn(
                                &scope,
                                &c.cert_file.display().to_string(),
                            )),
                            is_default: Some(i == 0),
                        })
                        .collect()
                } else {
                    return Err(err(
                        ErrorCode::ListenerNotFound,
                        format!("listener `{listener_arn}` not found"),
                    ));
                };
                let (items, marker) = page(all, marker.as_deref(), page_size)?;
                Ok(
                    json!({ "Certificates": items.iter().map(to_json).collect::<Vec<_>>(), "NextMarker": marker }),
                )
            }
            Request::AddListenerCertificates {
                listener_arn,
                certificates,
            } => {
                let i = self.api_listener(s, &listener_arn, &file_listeners)?;
                let l = &mut next.listeners[i].listener;
                if l.protocol.as_deref() != Some("HTTPS") {
                    return Err(err(
                        ErrorCode::ValidationError,
                        "certificates go on HTTPS listeners",
                    ));
                }
                let list = l.certificates.get_or_insert_with(Vec::new);
                for c in &certificates {
                    let Some(arn) = c.certificate_arn.clone() else {
                        return Err(ElbError::missing("Certificates.member.CertificateArn"));
                    };
                    if !list
                        .iter()
                        .any(|x| x.certificate_arn.as_deref() == Some(arn.as_str()))
                    {
                        list.push(Certificate {
                            certificate_arn: Some(arn),
                            is_default: Some(false),
                        });
                    }
                }
                let added: Vec<Value> = list
                    .iter()
                    .filter(|x| {
                        certificates
                            .iter()
                            .any(|c| c.certificate_arn == x.certificate_arn)
                    })
                    .map(to_json)
                    .collect();
                self.commit(inner, next).await?;
                Ok(json!({ "Certificates": added }))
            }
            Request::RemoveListenerCertificates {
                listener_arn,
                certificates,
            } => {
                let i = self.api_listener(s, &listener_arn, &file_listeners)?;
                let list = next.listeners[i]
                    .listener
                    .certificates
                    .get_or_insert_with(Vec::new);
                let default_named = list.iter().any(|x| {
                    x.is_default == Some(true)
                        && certificates
                            .iter()
                            .any(|c| c.certificate_arn == x.certificate_arn)
                });
                if default_named {
                    return Err(err(
                        ErrorCode::OperationNotPermitted,
                        "the default certificate cannot be removed; fix: ModifyListener with another certificate",
                    ));
                }
                list.retain(|x| {
                    !certificates
                        .iter()
                        .any(|c| c.certificate_arn == x.certificate_arn)
                });
                self.commit(inner, next).await?;
                Ok(json!({}))
            }
        }
    }

    /// Every target group: the file's (as the proxy describes them) and the API's.
    fn all_target_groups(&self, s: &ApiState) -> Vec<TargetGroup> {
        let config = self.proxy.config();
        let files = file_groups(&config, s);
        let described = self.proxy.describe_target_groups_json();
        let mut out: Vec<TargetGroup> = described["TargetGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                g["TargetGroupName"]
                    .as_str()
                    .is_some_and(|n| files.iter().any(|f| f == n))
            })
            .filter_map(|g| serde_json::from_value(g.clone()).ok())
            .collect();
        for g in &s.target_groups {
            let mut g = g.clone();
            g.load_balancer_arns = lbs_using(s, &g.target_group_arn);
            out.push(g);
        }
        out
    }

    /// The name of the group an ARN names, and whether the API made it.
    fn group_name(&self, s: &ApiState, arn: &str) -> Option<(String, bool)> {
        if let Some(g) = s.target_groups.iter().find(|g| g.target_group_arn == arn) {
            return Some((g.target_group_name.clone(), true));
        }
        let config = self.proxy.config();
        file_groups(&config, s)
            .into_iter()
            .find(|n| arn::target_group_arn(&Scope::default(), n) == arn)
            .map(|n| (n, false))
    }

    fn api_group(&self, s: &ApiState, arn: &str) -> R<()> {
        match self.group_name(s, arn) {
            Some((_, true)) => Ok(()),
            Some((name, false)) => Err(read_only(&format!("target group `{name}`"))),
            None => Err(not_found_group(arn)),
        }
    }

    /// The port targets registered without one get: the group's.
    fn group_port(&self, s: &ApiState, name: &str) -> Option<u16> {
        if let Some(g) = s.target_groups.iter().find(|g| g.target_group_name == name) {
            return g.port;
        }
        self.all_target_groups(s)
            .into_iter()
            .find(|g| g.target_group_name == name)
            .and_then(|g| g.port)
    }

    fn api_lb(&self, s: &ApiState, arn: &str, file_lb: &str) -> R<LoadBalancer> {
        if arn == file_lb {
            return Err(read_only("load balancer `hostalb`"));
        }
        s.load_balancers
            .iter()
            .find(|l| l.load_balancer_arn == arn)
            .cloned()
            .ok_or_else(|| {
                err(
                    ErrorCode::LoadBalancerNotFound,
                    format!("load balancer `{arn}` not found"),
                )
            })
    }

    fn api_listener(&self, s: &ApiState, arn: &str, file_listeners: &[String]) -> R<usize> {
        if let Some(i) = s.listeners.iter().position(|l| l.listener.listener_arn == arn) {
            return Ok(i);
        }
        match self.file_listener_of(file_listeners, arn) {
            Some(name) => Err(read_only(&format!("listener `{name}`"))),
            None => Err(err(
                ErrorCode::ListenerNotFound,
                format!("listener `{arn}` not found"),
            )),
        }
    }

    fn api_rule(&self, s: &ApiState, arn: &str) -> R<usize> {
        if let Some(i) = s.rules.iter().position(|r| r.rule_arn == arn) {
            return Ok(i);
        }
        if s.listeners.iter().any(|l| default_rule_arn(l) == arn) {
            return Err(err(
                ErrorCode::OperationNotPermitted,
                "a listener's default rule has no priority",
            ));
        }
        if matches!(ElbResource::parse(arn), Some(ElbResource::Rule { lb, .. }) if lb == HOSTALB_LB_NAME) {
            return Err(read_only("this rule"));
        }
        Err(err(ErrorCode::RuleNotFound, format!("rule `{arn}` not found")))
    }

    fn file_listener_of(&self, file_listeners: &[String], arn: &str) -> Option<String> {
        file_listeners
            .iter()
            .find(|n| arn::listener_arn(&Scope::default(), HOSTALB_LB_NAME, n) == arn)
            .cloned()
    }

    /// The file's listeners as the proxy describes them: (name, listener).
    fn file_listeners(&self, names: &[String]) -> Vec<(String, Listener)> {
        let described = self.proxy.describe_listeners_json();
        described["Listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let name = l["Name"].as_str()?.to_owned();
                if !names.contains(&name) {
                    return None;
                }
                let listener: Listener = serde_json::from_value(l.clone()).ok()?;
                Some((name, listener))
            })
            .collect()
    }

    fn file_rules(&self, listener: &str) -> Vec<Rule> {
        self.proxy
            .describe_rules_json(listener)
            .and_then(|v| v.get("Rules").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// Forwards must name target groups that exist; only the actions hostalb performs.
    fn check_actions(&self, s: &ApiState, actions: &[Action]) -> R<()> {
        if actions.is_empty() {
            return Err(ElbError::missing("Actions"));
        }
        for a in actions {
            match a.kind.as_str() {
                "forward" | "redirect" | "fixed-response" => {}
                other => {
                    return Err(err(
                        ErrorCode::InvalidLoadBalancerAction,
                        format!(
                            "action type {other} is not performed by hostalb (forward, redirect and fixed-response are)"
                        ),
                    ));
                }
            }
            let named = a.target_group_arn.iter().chain(
                a.forward_config
                    .iter()
                    .flat_map(|f| f.target_groups.iter().flatten())
                    .filter_map(|t| t.target_group_arn.as_ref()),
            );
            for g in named {
                if self.group_name(s, g).is_none() {
                    return Err(not_found_group(g));
                }
            }
        }
        Ok(())
    }

    fn exists(&self, s: &ApiState, arn: &str, file_listeners: &[String]) -> bool {
        self.taggable(s, arn, file_listeners).is_ok()
            || (!file_listeners.is_empty()
                && arn == arn::load_balancer_arn(&Scope::default(), HOSTALB_LB_NAME))
            || self.file_listener_of(file_listeners, arn).is_some()
            || self.group_name(s, arn).is_some()
    }

    /// A resource the API made (tags may change); else why not.
    fn taggable(&self, s: &ApiState, arn: &str, file_listeners: &[String]) -> R<()> {
        let api = s.load_balancers.iter().any(|l| l.load_balancer_arn == arn)
            || s.listeners.iter().any(|l| l.listener.listener_arn == arn)
            || s.rules.iter().any(|r| r.rule_arn == arn)
            || s.target_groups.iter().any(|g| g.target_group_arn == arn);
        if api {
            return Ok(());
        }
        let file = (!file_listeners.is_empty()
            && arn == arn::load_balancer_arn(&Scope::default(), HOSTALB_LB_NAME))
            || self.file_listener_of(file_listeners, arn).is_some()
            || self.group_name(s, arn).is_some();
        if file {
            return Err(read_only("this resource"));
        }
        Err(not_found(arn))
    }
}

fn not_found_group(arn: &str) -> ElbError {
    err(
        ErrorCode::TargetGroupNotFound,
        format!("target group `{arn}` not found"),
    )
}

/// The not-found error of the kind of resource an ARN names.
fn not_found(arn: &str) -> ElbError {
    match ElbResource::parse(arn) {
        Some(ElbResource::LoadBalancer { .. }) => err(
            ErrorCode::LoadBalancerNotFound,
            format!("load balancer `{arn}` not found"),
        ),
        Some(ElbResource::Listener { .. }) => {
            err(ErrorCode::ListenerNotFound, format!("listener `{arn}` not found"))
        }
        Some(ElbResource::Rule { .. }) => err(ErrorCode::RuleNotFound, format!("rule `{arn}` not found")),
        Some(ElbResource::TargetGroup { .. }) => not_found_group(arn),
        None => err(ErrorCode::ValidationError, format!("`{arn}` is not an ELBv2 ARN")),
    }
}

/// A configuration problem as ELBv2's error: hostalb's problems (path, message, fix) as
/// the message; `explain` names the API resource a path is in.
fn control_error(e: ControlError, explain: &dyn Fn(&str) -> Option<String>) -> ElbError {
    match e {
        ControlError::Config(ConfigError::Invalid { problems, .. }) => {
            let text: Vec<String> = problems
                .iter()
                .filter(|p| p.severity == hostalb_config::Severity::Error)
                .map(|p| {
                    let what = explain(&p.path).map(|w| format!(" ({w})")).unwrap_or_default();
                    format!("{}{what}: {} (fix: {})", p.path, p.message, p.fix)
                })
                .collect();
            err(ErrorCode::ValidationError, text.join("; "))
        }
        ControlError::Tls { .. } => err(
            ErrorCode::CertificateNotFound,
            format!(
                "{e}; fix: put the certificate chain and its key, in PEM, at the paths named (an ARN hostalb shows for a file listener's certificate reads that listener's files)"
            ),
        ),
        ControlError::Bind { .. } => err(ErrorCode::InvalidConfigurationRequest, e.to_string()),
        other => err(ErrorCode::InternalFailure, other.to_string()),
    }
}

/// Which API resource a configuration path (`listener[2].rule[0].conditions[1]`) is in:
/// the API's listeners follow the file's `file_count` ones, their rules by priority.
fn explain(path: &str, s: &ApiState, file_count: usize) -> Option<String> {
    let index = |text: &str, prefix: &str| -> Option<(usize, usize)> {
        let rest = text.strip_prefix(prefix)?;
        let end = rest.find(']')?;
        Some((rest[..end].parse().ok()?, prefix.len() + end + 1))
    };
    let (n, used) = index(path, "listener[")?;
    let listener = s.listeners.get(n.checked_sub(file_count)?)?;
    if let Some((j, _)) = index(&path[used..], ".rule[") {
        let mut rules: Vec<&Rule> = rules_of(s, &listener.listener.listener_arn).collect();
        rules.sort_by_key(|r| r.priority.parse::<u32>().unwrap_or(u32::MAX));
        if let Some(r) = rules.get(j) {
            return Some(format!("rule `{}` at priority {}", r.rule_arn, r.priority));
        }
    }
    Some(format!("listener `{}`", listener.listener.listener_arn))
}

/// The SSL policy of HTTPS listeners that name none (ELBv2's default).
const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-2016-08";
/// Every policy hostalb accepts, each with the versions and suites it serves of it (the
/// parts rustls lacks are left out: docs/config.md's table).
fn ssl_policies() -> Vec<Value> {
    hostalb_config::SSL_POLICIES
        .iter()
        .map(|p| {
            let ciphers: Vec<Value> = p
                .ciphers()
                .iter()
                .enumerate()
                .map(|(i, c)| json!({ "Name": c, "Priority": i + 1 }))
                .collect();
            json!({
                "Name": p.name,
                "SslProtocols": p.protocols(),
                "Ciphers": ciphers,
                "SupportedLoadBalancerTypes": ["application"],
            })
        })
        .collect()
}

fn check_protocol(p: &str) -> R<()> {
    if matches!(p, "HTTP" | "HTTPS") {
        Ok(())
    } else {
        Err(err(
            ErrorCode::UnsupportedProtocol,
            format!("protocol {p}: hostalb serves HTTP and HTTPS listeners"),
        ))
    }
}

/// An HTTPS listener's certificates as CreateListener / ModifyListener give them: exactly
/// one, the default (as ELBv2 requires).
fn default_certificate(given: &[Certificate], https: bool) -> R<Option<Vec<Certificate>>> {
    if !https {
        return Ok(None);
    }
    match given {
        [c] if c.certificate_arn.is_some() => Ok(Some(vec![Certificate {
            certificate_arn: c.certificate_arn.clone(),
            is_default: Some(true),
        }])),
        [] => Err(err(
            ErrorCode::ValidationError,
            "an HTTPS listener needs a certificate: give Certificates with one CertificateArn",
        )),
        _ => Err(err(
            ErrorCode::ValidationError,
            "give exactly one certificate (the default); add more with AddListenerCertificates",
        )),
    }
}

/// A listener as DescribeListeners shows it: only its default certificate.
fn listener_json(l: &Listener) -> Value {
    let mut l = l.clone();
    if let Some(list) = &mut l.certificates {
        list.retain(|c| c.is_default != Some(false));
        for c in list.iter_mut() {
            c.is_default = None;
        }
    }
    to_json(&l)
}

/// Validates a load balancer or target group name as ELBv2 does.
fn check_name(name: &str, member: &str) -> R<()> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if ok {
        Ok(())
    } else {
        Err(ElbError::invalid(
            member,
            name,
            "1 to 32 letters, digits and hyphens, not starting or ending with a hyphen",
        ))
    }
}

/// The target groups of the configuration file (and of container labels): every group
/// served that the API did not make.
/// The configuration document of `s` beside `config` (the file's, or the one served);
/// `applied` is the document being served (its listeners are the API's), `path` the state
/// file (certificates are read beside it).
pub(crate) fn state_document(
    config: &hostalb_config::Config,
    s: &ApiState,
    applied: &Value,
    path: &Path,
) -> Result<Value, doc::DocError> {
    let files = file_groups(config, s);
    let api = doc::listener_names(applied);
    let cert_files: Vec<(PathBuf, PathBuf)> = config
        .listeners
        .iter()
        .filter(|l| !api.contains(&l.name))
        .flat_map(|l| l.certificates.iter())
        .map(|c| (c.cert_file.clone(), c.key_file.clone()))
        .collect();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let certs = doc::Certificates {
        dir: &dir.join(CERTS_DIR),
        files: &cert_files,
    };
    doc::document(s, &files, config.admin.api_listener_address, &certs)
}

/// Fills what ELBv2 answers for a forward action's `ForwardConfig` when the call left it
/// out: `TargetGroupStickinessConfig` `{Enabled: false}` (as AWS describes such rules).
fn forward_defaults(req: &mut Request) {
    let actions = match req {
        Request::CreateListener(c) => Some(&mut c.default_actions),
        Request::ModifyListener(m) => m.default_actions.as_mut(),
        Request::CreateRule(c) => Some(&mut c.actions),
        Request::ModifyRule(m) => m.actions.as_mut(),
        _ => None,
    };
    for a in actions.into_iter().flatten() {
        if let Some(f) = &mut a.forward_config {
            f.target_group_stickiness_config
                .get_or_insert(hostalb_aws::elbv2::TargetGroupStickinessConfig {
                    enabled: Some(false),
                    duration_seconds: None,
                });
        }
    }
}

fn file_groups(config: &hostalb_config::Config, s: &ApiState) -> Vec<String> {
    config
        .target_groups
        .iter()
        .map(|g| g.name.clone())
        .filter(|n| !s.target_groups.iter().any(|g| &g.target_group_name == n))
        .collect()
}

fn file_listener_names(config: &hostalb_config::Config, api_doc: &Value) -> Vec<String> {
    let api = doc::listener_names(api_doc);
    config
        .listeners
        .iter()
        .map(|l| l.name.clone())
        .filter(|n| !api.contains(n))
        .collect()
}

fn lb_name_of(listener_arn: &str) -> String {
    match ElbResource::parse(listener_arn) {
        Some(ElbResource::Listener { lb, .. }) => lb.to_owned(),
        _ => String::new(),
    }
}

fn default_rule_arn(l: &ApiListener) -> String {
    arn::rule_arn(
        &Scope::default(),
        &lb_name_of(&l.listener.listener_arn),
        &l.key,
        "default",
    )
}

fn rules_of<'a>(s: &'a ApiState, listener_arn: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
    s.rules
        .iter()
        .filter(move |r| arn::listener_of_rule(&r.rule_arn).as_deref() == Some(listener_arn))
}

/// A listener's rules by priority, then its default rule.
fn listener_rules(s: &ApiState, l: &ApiListener) -> Vec<Rule> {
    let mut rules: Vec<Rule> = rules_of(s, &l.listener.listener_arn).cloned().collect();
    rules.sort_by_key(|r| r.priority.parse::<u32>().unwrap_or(u32::MAX));
    rules.push(Rule {
        rule_arn: default_rule_arn(l),
        priority: "default".into(),
        conditions: Vec::new(),
        actions: l.listener.default_actions.clone(),
        is_default: true,
        transforms: None,
    });
    rules
}

fn action_groups(a: &Action) -> Vec<String> {
    let mut out: Vec<String> = a.target_group_arn.iter().cloned().collect();
    out.extend(
        a.forward_config
            .iter()
            .flat_map(|f| f.target_groups.iter().flatten())
            .filter_map(|t| t.target_group_arn.clone()),
    );
    out
}

/// The listeners and rules forwarding to a group.
fn group_users(s: &ApiState, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in &s.listeners {
        if l.listener
            .default_actions
            .iter()
            .any(|a| action_groups(a).iter().any(|g| g == group))
        {
            out.push(l.listener.listener_arn.clone());
        }
    }
    for r in &s.rules {
        if r.actions
            .iter()
            .any(|a| action_groups(a).iter().any(|g| g == group))
        {
            out.push(r.rule_arn.clone());
        }
    }
    out
}

/// The load balancers whose listeners forward to a group.
fn lbs_using(s: &ApiState, group: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for user in group_users(s, group) {
        let listener = arn::listener_of_rule(&user).unwrap_or(user);
        if let Some(lb) = arn::load_balancer_of_listener(&listener) {
            if !out.contains(&lb) {
                out.push(lb);
            }
        }
    }
    out
}

/// Registrations as the proxy takes them (targets whose address cannot be read are left
/// out; RegisterTargets refuses them).
fn registrations(s: &ApiState) -> BTreeMap<String, Vec<Registration>> {
    s.registrations
        .iter()
        .map(|(name, targets)| {
            let regs = targets
                .iter()
                .filter_map(|t| target_address(t, None).ok())
                .map(|address| Registration {
                    address,
                    origin: TargetOrigin::default(),
                    docker_unhealthy: false,
                })
                .collect();
            (name.clone(), regs)
        })
        .collect()
}

fn target_address(t: &TargetDescription, group_port: Option<u16>) -> R<SocketAddr> {
    let ip: IpAddr = t.id.parse().map_err(|_| {
        err(
            ErrorCode::InvalidTarget,
            format!("target `{}`: hostalb registers targets by IP address (instance ids cannot be resolved on one host)", t.id),
        )
    })?;
    let port = t.port.or(group_port).ok_or_else(|| {
        err(
            ErrorCode::ValidationError,
            format!("target `{}` has no Port and its target group has none", t.id),
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

fn apply_health_check(g: &mut TargetGroup, h: &HealthCheckSettings) {
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = &h.$field {
                g.$field = Some(v.clone());
            }
        };
    }
    set!(health_check_protocol);
    set!(health_check_port);
    set!(health_check_enabled);
    set!(health_check_path);
    set!(health_check_interval_seconds);
    set!(health_check_timeout_seconds);
    set!(healthy_threshold_count);
    set!(unhealthy_threshold_count);
    set!(matcher);
}

fn set_tags(s: &mut ApiState, arn: &str, tags: Vec<Tag>) {
    if !tags.is_empty() {
        s.tags.insert(arn.to_owned(), tags);
    }
}

/// Drops the tags and attributes of a deleted resource.
fn forget(s: &mut ApiState, arn: &str) {
    s.tags.remove(arn);
    s.attributes.remove(arn);
}

/// Target group attributes hostalb serves, with ALB's defaults.
const GROUP_ATTRIBUTES: &[(&str, &str)] = &[
    ("deregistration_delay.timeout_seconds", "300"),
    ("slow_start.duration_seconds", "0"),
    ("load_balancing.algorithm.type", "round_robin"),
    ("stickiness.enabled", "false"),
    ("stickiness.type", "lb_cookie"),
    ("stickiness.lb_cookie.duration_seconds", "86400"),
    ("stickiness.app_cookie.cookie_name", ""),
    ("stickiness.app_cookie.duration_seconds", "86400"),
];

/// Load balancer attributes hostalb serves, with ALB's defaults.
const LB_ATTRIBUTES: &[(&str, &str)] = &[
    ("idle_timeout.timeout_seconds", "60"),
    ("client_keep_alive.seconds", "3600"),
    ("routing.http.desync_mitigation_mode", "defensive"),
    ("routing.http.xff_header_processing.mode", "append"),
    ("routing.http.xff_client_port.enabled", "false"),
    ("routing.http.preserve_host_header.enabled", "false"),
    ("routing.http.drop_invalid_header_fields.enabled", "false"),
    ("deletion_protection.enabled", "false"),
];

fn merged(defaults: &[(&str, &str)], set: Option<&Vec<Attribute>>) -> Vec<Attribute> {
    defaults
        .iter()
        .map(|(k, v)| {
            let value = set
                .and_then(|s| s.iter().find(|a| a.key == *k))
                .map(|a| a.value.clone())
                .unwrap_or_else(|| (*v).to_owned());
            Attribute {
                key: (*k).to_owned(),
                value,
            }
        })
        .collect()
}

fn set_attributes(s: &mut ApiState, arn: &str, attributes: Vec<Attribute>, known: &[(&str, &str)]) -> R<()> {
    let list = s.attributes.entry(arn.to_owned()).or_default();
    for a in attributes {
        if !known.iter().any(|(k, _)| *k == a.key) {
            return Err(err(
                ErrorCode::ValidationError,
                format!(
                    "attribute {} is not served by hostalb; the ones that are: {}",
                    a.key,
                    known.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        check_attribute(&a)?;
        list.retain(|x| x.key != a.key);
        list.push(a);
    }
    Ok(())
}

/// An attribute's value must read as its type (the validator then judges its range).
fn check_attribute(a: &Attribute) -> R<()> {
    let v = a.value.as_str();
    let one_of = |values: &[&str]| -> R<()> {
        if values.contains(&v) {
            Ok(())
        } else {
            Err(ElbError::invalid(
                &a.key,
                v,
                &format!("one of {}", values.join(", ")),
            ))
        }
    };
    match a.key.as_str() {
        k if k.ends_with("seconds") => v
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| ElbError::invalid(&a.key, v, "a whole number of seconds")),
        k if k.ends_with(".enabled") => one_of(&["true", "false"]),
        "load_balancing.algorithm.type" => {
            one_of(&["round_robin", "least_outstanding_requests", "weighted_random"])
        }
        "stickiness.type" => one_of(&["lb_cookie", "app_cookie"]),
        "routing.http.desync_mitigation_mode" => one_of(&["monitor", "defensive", "strictest"]),
        "routing.http.xff_header_processing.mode" => one_of(&["append", "preserve", "remove"]),
        _ => Ok(()),
    }
}

fn file_group_attributes(config: &hostalb_config::Config, name: &str) -> Vec<Attribute> {
    let mut attrs = merged(GROUP_ATTRIBUTES, None);
    if let Some(g) = config.target_groups.iter().find(|g| g.name == name) {
        let set = |attrs: &mut Vec<Attribute>, k: &str, v: String| {
            if let Some(a) = attrs.iter_mut().find(|a| a.key == k) {
                a.value = v;
            }
        };
        set(
            &mut attrs,
            "deregistration_delay.timeout_seconds",
            g.deregistration_delay.as_secs().to_string(),
        );
        set(
            &mut attrs,
            "slow_start.duration_seconds",
            g.slow_start.as_secs().to_string(),
        );
        set(
            &mut attrs,
            "stickiness.enabled",
            g.stickiness.is_some().to_string(),
        );
    }
    attrs
}

/// One page of `items` from `marker` (an index ELBv2 clients pass back unread).
fn page<T>(items: Vec<T>, marker: Option<&str>, size: Option<u32>) -> R<(Vec<T>, Option<String>)> {
    let size = size.map_or(MAX_PAGE_SIZE, |s| s as usize);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ElbError::invalid(
            "PageSize",
            &size.to_string(),
            "between 1 and 400",
        ));
    }
    let start = match marker {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| {
                err(
                    ErrorCode::ValidationError,
                    format!("Marker `{m}` is not one this API gave"),
                )
            })?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items.into_iter().skip(start).take(end - start).collect(), next))
}

/// A unique suffix for ids: nanoseconds since the epoch.
fn unique() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

/// Now as ISO 8601 (`2026-12-01T04:05:11.000Z`), as ELBv2 writes `CreatedTime`.
fn now_iso() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end() {
        let items: Vec<u32> = (0..5).collect();
        let (a, m) = page(items.clone(), None, Some(2)).unwrap();
        assert_eq!((a, m.as_deref()), (vec![0, 1], Some("2")));
        let (b, m) = page(items.clone(), Some("4"), Some(2)).unwrap();
        assert_eq!((b, m), (vec![4], None));
        assert!(page(items.clone(), Some("x"), None).is_err());
        assert!(page(items, None, Some(401)).is_err());
    }

    #[test]
    fn attribute_values_read_as_their_type() {
        let a = |k: &str, v: &str| Attribute {
            key: k.into(),
            value: v.into(),
        };
        assert!(check_attribute(&a("deregistration_delay.timeout_seconds", "30")).is_ok());
        assert!(check_attribute(&a("deregistration_delay.timeout_seconds", "soon")).is_err());
        assert!(check_attribute(&a("stickiness.enabled", "yes")).is_err());
        assert!(check_attribute(&a("load_balancing.algorithm.type", "least_outstanding_requests")).is_ok());
        assert!(check_attribute(&a("routing.http.desync_mitigation_mode", "lenient")).is_err());
    }

    #[test]
    fn iso_time_is_well_formed() {
        let t = now_iso();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with(".000Z"), "{t}");
    }
}
