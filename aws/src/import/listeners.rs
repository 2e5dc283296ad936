//! Listeners and their rules: conditions, actions and transforms, in hostalb's terms.

use std::collections::HashSet;

use super::Described;
use super::groups::{Groups, is_load_balancer};
use super::notes::{NoteKind, Notes};
use super::toml_out::Tv;
use crate::arn::{self, ElbResource};
use crate::elbv2::{self, Action, RuleCondition};

/// Where imported listeners bind: a local stand-in listens on loopback, on the port the
/// original listens on (the address CreateListener uses too).
const LISTENER_HOST: [u8; 3] = [127, 0, 0];

/// A listener as it will be written.
#[derive(Debug, Clone)]
pub(crate) struct OutListener {
    pub source: String,
    /// `name`, `address`, `protocol`, `certificates` and load balancer attributes, in order.
    pub members: Vec<(String, Tv)>,
    pub default_action: Option<Tv>,
    pub rules: Vec<OutRule>,
}

/// A rule as it will be written.
#[derive(Debug, Clone)]
pub(crate) struct OutRule {
    pub source: String,
    pub priority: u32,
    pub conditions: Vec<Tv>,
    pub transforms: Vec<Tv>,
    pub action: Tv,
}

pub(crate) fn build(d: &Described, groups: &Groups, notes: &mut Notes) -> Vec<OutListener> {
    let mut out = Vec::new();
    let mut taken: HashSet<(u8, u16)> = HashSet::new();
    let mut names: HashSet<String> = HashSet::new();
    for l in &d.listeners {
        let lb_arn = l
            .load_balancer_arn
            .clone()
            .or_else(|| arn::load_balancer_of_listener(&l.listener_arn));
        let lb_name = lb_arn
            .as_deref()
            .and_then(|a| match ElbResource::parse(a) {
                Some(ElbResource::LoadBalancer { name, .. }) => Some(name.to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "alb".to_owned());
        let Some(port) = l.port else {
            notes.push(format!("listener `{}` has no port: left out", l.listener_arn));
            continue;
        };
        let protocol = l.protocol.as_deref().unwrap_or("HTTP");
        if !matches!(protocol, "HTTP" | "HTTPS") {
            notes.push(format!(
                "listener `{}`: protocol {protocol} (a network load balancer's) is not served by hostalb: left out",
                l.listener_arn
            ));
            continue;
        }
        let mut name = format!("{lb_name}-{port}");
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{lb_name}-{port}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        let host = (1..=u8::MAX).find(|h| !taken.contains(&(*h, port))).unwrap_or(1);
        taken.insert((host, port));
        let [a, b, c] = LISTENER_HOST;
        let address = format!("{a}.{b}.{c}.{host}:{port}");
        if host != 1 {
            notes.push_as(NoteKind::AddressMoved, format!(
                "listener `{name}` binds {address}: port {port} is already bound on 127.0.0.1 by another imported listener"
            ));
        }
        let mut members = vec![
            ("name".to_owned(), Tv::str(&name)),
            ("address".to_owned(), Tv::str(&address)),
            ("protocol".to_owned(), Tv::str(protocol)),
        ];
        if protocol == "HTTPS" {
            members.push(("certificates".to_owned(), certificates(l, &name, notes)));
            if let Some(policy) = &l.ssl_policy {
                if hostalb_config::ssl_policy(policy).is_some() {
                    members.push(("ssl_policy".to_owned(), Tv::str(policy)));
                } else {
                    notes.push(format!(
                        "listener `{name}`: security policy {policy} is not known to hostalb: left out (hostalb's default, {}, applies)",
                        hostalb_config::DEFAULT_SSL_POLICY
                    ));
                }
            }
        }
        if let Some(m) = &l.mutual_authentication {
            if let Some(tv) = mutual_authentication(m, protocol, &name, notes) {
                members.push(("mutual_authentication".to_owned(), tv));
            }
        }
        if let Some(lb) = &lb_arn {
            load_balancer_attributes(d, lb, &lb_name, &name, protocol == "HTTPS", &mut members, notes);
        }
        let what = format!("listener `{name}` default action");
        let default_action = match actions(&l.default_actions, groups, &what, notes) {
            Some(a) => Some(a),
            None => {
                let rule_default = d.rules.iter().find(|r| {
                    r.is_default
                        && arn::listener_of_rule(&r.rule_arn).as_deref() == Some(l.listener_arn.as_str())
                });
                rule_default.and_then(|r| actions(&r.actions, groups, &what, notes))
            }
        };
        if default_action.is_none() {
            notes.push(format!(
                "listener `{name}`: no default action could be carried over: hostalb's (fixed-response 404) applies"
            ));
        }
        let mut rules: Vec<OutRule> = d
            .rules
            .iter()
            .filter(|r| {
                !r.is_default
                    && arn::listener_of_rule(&r.rule_arn).as_deref() == Some(l.listener_arn.as_str())
            })
            .filter_map(|r| rule(r, &name, groups, notes))
            .collect();
        rules.sort_by_key(|r| r.priority);
        out.push(OutListener {
            source: l.listener_arn.clone(),
            members,
            default_action,
            rules,
        });
    }
    let listener_arns: HashSet<&str> = d.listeners.iter().map(|l| l.listener_arn.as_str()).collect();
    let mut orphans: Vec<String> = d
        .rules
        .iter()
        .filter_map(|r| arn::listener_of_rule(&r.rule_arn))
        .filter(|l| !listener_arns.contains(l.as_str()))
        .collect();
    orphans.sort();
    orphans.dedup();
    for l in orphans {
        notes.push(format!(
            "rules of listener `{l}` are left out: its describe-listeners output is not among the inputs"
        ));
    }
    out
}

/// ALB's `MutualAuthentication` as the listener's `mutual_authentication`: `verify` names
/// a trust-store file to put the trust store's CA bundle in.
fn mutual_authentication(m: &serde_json::Value, protocol: &str, name: &str, notes: &mut Notes) -> Option<Tv> {
    let mode = m.get("Mode").and_then(|v| v.as_str()).unwrap_or("off");
    if mode == "off" {
        return None;
    }
    if protocol != "HTTPS" {
        notes.push(format!(
            "listener `{name}`: mutual TLS mode {mode} on a {protocol} listener: left out"
        ));
        return None;
    }
    match mode {
        "passthrough" => Some(Tv::Table(vec![("mode".to_owned(), Tv::str("passthrough"))])),
        "verify" => {
            let store = m
                .get("TrustStoreArn")
                .and_then(|v| v.as_str())
                .and_then(|a| a.split('/').nth(1))
                .filter(|n| !n.is_empty())
                .unwrap_or(name);
            let file = format!("certs/truststore-{store}.pem");
            let mut table = vec![
                ("mode".to_owned(), Tv::str("verify")),
                ("trust_store".to_owned(), Tv::str(&file)),
            ];
            if m.get("IgnoreClientCertificateExpiry").and_then(|v| v.as_bool()) == Some(true) {
                table.push(("ignore_client_certificate_expiry".to_owned(), Tv::Bool(true)));
            }
            if m.get("AdvertiseTrustStoreCaNames").and_then(|v| v.as_str()) == Some("on") {
                table.push(("advertise_trust_store_ca_names".to_owned(), Tv::Bool(true)));
            }
            notes.push(format!(
                "listener `{name}` verifies client certificates: put the trust store's CA certificates (aws elbv2 get-trust-store-ca-certificates-bundle), in PEM, at {file}; revocation lists are not checked by hostalb"
            ));
            Some(Tv::Table(table))
        }
        other => {
            notes.push(format!(
                "listener `{name}`: unknown mutual TLS mode `{other}`: left out"
            ));
            None
        }
    }
}

fn certificates(l: &elbv2::Listener, name: &str, notes: &mut Notes) -> Tv {
    let arns: Vec<&str> = l
        .certificates
        .iter()
        .flatten()
        .filter_map(|c| c.certificate_arn.as_deref())
        .collect();
    let ids: Vec<String> = if arns.is_empty() {
        vec![name.to_owned()]
    } else {
        arns.iter()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
            .collect()
    };
    let files: Vec<Tv> = ids
        .iter()
        .map(|id| {
            Tv::Table(vec![
                ("cert_file".to_owned(), Tv::str(format!("certs/{id}.pem"))),
                ("key_file".to_owned(), Tv::str(format!("certs/{id}.key"))),
            ])
        })
        .collect();
    notes.push_as(NoteKind::CertificateFiles, format!(
        "listener `{name}` is HTTPS: its certificates ({}) cannot be exported from ACM; put each certificate chain and key, in PEM, at the certs/ paths written",
        if arns.is_empty() { "none listed".to_owned() } else { arns.join(", ") }
    ));
    Tv::Array(files)
}

/// Load balancer attributes hostalb has, per listener.
fn load_balancer_attributes(
    d: &Described,
    lb_arn: &str,
    lb_name: &str,
    listener: &str,
    https: bool,
    members: &mut Vec<(String, Tv)>,
    notes: &mut Notes,
) {
    let Some((_, _, attributes)) = d
        .attributes
        .iter()
        .find(|(of, _, _)| is_load_balancer(d, of) && (of == lb_arn || of == lb_name))
    else {
        return;
    };
    for a in attributes {
        let v = a.value.as_str();
        let int = |v: &str| v.trim().parse::<i64>().ok().map(Tv::Int);
        let boolean = |v: &str| match v {
            "true" => Some(Tv::Bool(true)),
            "false" => Some(Tv::Bool(false)),
            _ => None,
        };
        let (member, value) = match a.key.as_str() {
            "idle_timeout.timeout_seconds" => ("idle_timeout_seconds", int(v)),
            "client_keep_alive.seconds" => ("client_keep_alive_seconds", int(v)),
            "routing.http.desync_mitigation_mode" => ("desync_mitigation_mode", Some(Tv::str(v))),
            "routing.http.xff_header_processing.mode" => ("xff_mode", Some(Tv::str(v))),
            "routing.http.xff_client_port.enabled" => ("xff_client_port", boolean(v)),
            "routing.http.preserve_host_header.enabled" => ("preserve_host_header", boolean(v)),
            "routing.http.drop_invalid_header_fields.enabled" => ("drop_invalid_header_fields", boolean(v)),
            // HTTP/2 is offered on HTTPS listeners only; an HTTP listener has no such key.
            "routing.http2.enabled" if https => ("http2", boolean(v)),
            "waf.fail_open.enabled" if v == "true" => {
                notes.push(format!(
                    "load balancer `{lb_name}`: WAF is not part of hostalb: waf.fail_open.enabled left out"
                ));
                continue;
            }
            "deletion_protection.enabled"
            | "access_logs.s3.enabled"
            | "access_logs.s3.bucket"
            | "access_logs.s3.prefix"
            | "connection_logs.s3.enabled"
            | "connection_logs.s3.bucket"
            | "connection_logs.s3.prefix"
            | "health_check_logs.s3.enabled"
            | "health_check_logs.s3.bucket"
            | "health_check_logs.s3.prefix"
            | "routing.http2.enabled"
            | "load_balancing.cross_zone.enabled"
            | "routing.http.x_amzn_tls_version_and_cipher_suite.enabled"
            | "waf.fail_open.enabled"
            | "zonal_shift.config.enabled" => continue,
            other => {
                notes.push(format!("load balancer `{lb_name}`: attribute {other} = {v} has no counterpart in hostalb: left out"));
                continue;
            }
        };
        match value {
            Some(value) => {
                if !members.iter().any(|(k, _)| k == member) {
                    members.push((member.to_owned(), value));
                }
            }
            None => notes.push(format!(
                "listener `{listener}`: load balancer attribute {} = `{v}` cannot be read: left out",
                a.key
            )),
        }
    }
}

fn rule(r: &elbv2::Rule, listener: &str, groups: &Groups, notes: &mut Notes) -> Option<OutRule> {
    let Ok(priority) = r.priority.parse::<u32>() else {
        notes.push(format!(
            "rule `{}`: priority `{}` is not a number: left out",
            r.rule_arn, r.priority
        ));
        return None;
    };
    let what = format!("listener `{listener}` rule {priority}");
    let mut conditions = Vec::new();
    for c in &r.conditions {
        match condition(c) {
            Ok(tv) => conditions.push(tv),
            Err(why) => {
                // A rule without one of its conditions would match more than the original.
                notes.push(format!("{what}: {why}: the rule is left out"));
                return None;
            }
        }
    }
    let mut transforms = Vec::new();
    for t in r.transforms.iter().flatten() {
        let config = match t.kind.as_str() {
            "host-header-rewrite" => t.host_header_rewrite_config.as_ref(),
            "url-rewrite" => t.url_rewrite_config.as_ref(),
            other => {
                notes.push(format!("{what}: unknown transform `{other}`: left out"));
                continue;
            }
        };
        let rewrites: Vec<Tv> = config
            .map(|c| c.rewrites.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|rw| {
                Tv::Table(vec![
                    ("regex".to_owned(), Tv::str(&rw.regex)),
                    ("replace".to_owned(), Tv::str(&rw.replace)),
                ])
            })
            .collect();
        if rewrites.is_empty() {
            notes.push(format!(
                "{what}: transform `{}` has no rewrites: left out",
                t.kind
            ));
            continue;
        }
        transforms.push(Tv::Table(vec![
            ("type".to_owned(), Tv::str(&t.kind)),
            ("rewrites".to_owned(), Tv::Array(rewrites)),
        ]));
    }
    let Some(action) = actions(&r.actions, groups, &what, notes) else {
        notes.push(format!(
            "{what}: no action could be carried over: the rule is left out"
        ));
        return None;
    };
    Some(OutRule {
        source: r.rule_arn.clone(),
        priority,
        conditions,
        transforms,
        action,
    })
}

/// The union of a condition's values in its `*Config` and in the legacy `Values`.
fn union(a: Option<&Vec<String>>, b: Option<&Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in a.into_iter().flatten().chain(b.into_iter().flatten()) {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

fn condition(c: &RuleCondition) -> Result<Tv, String> {
    let field = c.field.as_str();
    let mut members = vec![("field".to_owned(), Tv::str(field))];
    let (values, regexes) = match field {
        "host-header" => {
            let cfg = c.host_header_config.as_ref();
            (
                union(cfg.and_then(|x| x.values.as_ref()), c.values.as_ref()),
                union(cfg.and_then(|x| x.regex_values.as_ref()), c.regex_values.as_ref()),
            )
        }
        "path-pattern" => {
            let cfg = c.path_pattern_config.as_ref();
            (
                union(cfg.and_then(|x| x.values.as_ref()), c.values.as_ref()),
                union(cfg.and_then(|x| x.regex_values.as_ref()), c.regex_values.as_ref()),
            )
        }
        "http-header" => {
            let cfg = c.http_header_config.as_ref();
            let Some(name) = cfg.and_then(|x| x.http_header_name.as_deref()) else {
                return Err("an http-header condition without HttpHeaderName".into());
            };
            members.push(("name".to_owned(), Tv::str(name)));
            (
                union(cfg.and_then(|x| x.values.as_ref()), c.values.as_ref()),
                union(cfg.and_then(|x| x.regex_values.as_ref()), c.regex_values.as_ref()),
            )
        }
        "http-request-method" => (
            union(
                c.http_request_method_config
                    .as_ref()
                    .and_then(|x| x.values.as_ref()),
                c.values.as_ref(),
            ),
            Vec::new(),
        ),
        "source-ip" => (
            union(
                c.source_ip_config.as_ref().and_then(|x| x.values.as_ref()),
                c.values.as_ref(),
            ),
            Vec::new(),
        ),
        "query-string" => {
            let pairs: Vec<Tv> = c
                .query_string_config
                .iter()
                .flat_map(|q| q.values.iter())
                .filter_map(|kv| {
                    let mut m = Vec::new();
                    if let Some(k) = &kv.key {
                        m.push(("key".to_owned(), Tv::str(k)));
                    }
                    m.push(("value".to_owned(), Tv::str(kv.value.as_ref()?)));
                    Some(Tv::Table(m))
                })
                .collect();
            if pairs.is_empty() {
                return Err("a query-string condition without values".into());
            }
            members.push(("values".to_owned(), Tv::Array(pairs)));
            return Ok(Tv::Table(members));
        }
        other => return Err(format!("condition field `{other}` is not one ALB defines")),
    };
    if values.is_empty() && regexes.is_empty() {
        return Err(format!("a {field} condition without values"));
    }
    if !values.is_empty() {
        members.push(("values".to_owned(), Tv::strs(&values)));
    }
    if !regexes.is_empty() {
        members.push(("regex_values".to_owned(), Tv::strs(&regexes)));
    }
    Ok(Tv::Table(members))
}

/// A rule's actions in `Order`: authentication ones are noted and left out; the terminal
/// one (forward, redirect, fixed-response) is the action written.
fn actions(list: &[Action], groups: &Groups, what: &str, notes: &mut Notes) -> Option<Tv> {
    let mut sorted: Vec<&Action> = list.iter().collect();
    sorted.sort_by_key(|a| a.order.unwrap_or(u32::MAX));
    for a in sorted {
        match a.kind.as_str() {
            "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => notes.push(format!(
                "{what}: {} action left out: hostalb does not authenticate, so requests reach the target unauthenticated",
                a.kind
            )),
            "forward" => return forward(a, groups, what, notes),
            "redirect" => return redirect(a, what, notes),
            "fixed-response" => return fixed_response(a, what, notes),
            other => notes.push(format!("{what}: unknown action type `{other}`: left out")),
        }
    }
    None
}

fn forward(a: &Action, groups: &Groups, what: &str, notes: &mut Notes) -> Option<Tv> {
    let config = a.forward_config.as_ref();
    let tuples: Vec<(String, Option<u32>)> = match config.and_then(|c| c.target_groups.as_ref()) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|t| Some((t.target_group_arn.clone()?, t.weight)))
            .collect(),
        _ => a.target_group_arn.iter().map(|arn| (arn.clone(), None)).collect(),
    };
    if tuples.is_empty() {
        notes.push(format!("{what}: a forward action names no target group"));
        return None;
    }
    let mut named = Vec::new();
    for (arn, weight) in &tuples {
        match groups.name_of(arn) {
            Some(n) => named.push((n.to_owned(), *weight)),
            None => {
                notes.push(format!("{what}: forwards to `{arn}`, which is not imported"));
                return None;
            }
        }
    }
    let mut members = vec![("type".to_owned(), Tv::str("forward"))];
    if let [(name, _)] = named.as_slice() {
        members.push(("target_group".to_owned(), Tv::str(name)));
    } else {
        let list = named
            .iter()
            .map(|(name, weight)| {
                Tv::Table(vec![
                    ("name".to_owned(), Tv::str(name)),
                    // moto and the CLI read a missing weight as 1.
                    ("weight".to_owned(), Tv::Int(i64::from(weight.unwrap_or(1)))),
                ])
            })
            .collect();
        members.push(("target_groups".to_owned(), Tv::Array(list)));
    }
    if let Some(s) = config.and_then(|c| c.target_group_stickiness_config.as_ref()) {
        if s.enabled == Some(true) {
            match s.duration_seconds {
                Some(d) => members.push(("stickiness_seconds".to_owned(), Tv::Int(i64::from(d)))),
                None => notes.push(format!(
                    "{what}: group stickiness is on without DurationSeconds: left off"
                )),
            }
        }
    }
    Some(Tv::Table(members))
}

fn redirect(a: &Action, what: &str, notes: &mut Notes) -> Option<Tv> {
    let Some(r) = &a.redirect_config else {
        notes.push(format!("{what}: a redirect action without RedirectConfig"));
        return None;
    };
    let mut members = vec![("type".to_owned(), Tv::str("redirect"))];
    for (key, value) in [
        ("protocol", &r.protocol),
        ("port", &r.port),
        ("host", &r.host),
        ("path", &r.path),
        ("query", &r.query),
    ] {
        if let Some(v) = value {
            members.push((key.to_owned(), Tv::str(v)));
        }
    }
    members.push(("status_code".to_owned(), Tv::str(&r.status_code)));
    Some(Tv::Table(members))
}

fn fixed_response(a: &Action, what: &str, notes: &mut Notes) -> Option<Tv> {
    let Some(f) = &a.fixed_response_config else {
        notes.push(format!(
            "{what}: a fixed-response action without FixedResponseConfig"
        ));
        return None;
    };
    let status = match f.status_code.trim().parse::<i64>() {
        Ok(n) => Tv::Int(n),
        Err(_) => Tv::str(&f.status_code),
    };
    let mut members = vec![
        ("type".to_owned(), Tv::str("fixed-response")),
        ("status_code".to_owned(), status),
    ];
    if let Some(ct) = &f.content_type {
        members.push(("content_type".to_owned(), Tv::str(ct)));
    }
    if let Some(body) = &f.message_body {
        members.push(("message_body".to_owned(), Tv::str(body)));
    }
    Some(Tv::Table(members))
}
