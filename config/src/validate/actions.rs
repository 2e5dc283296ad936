//! Actions: forward (one group or a weighted split), redirect and fixed-response.

use std::time::Duration;

use serde_json::Value;

use super::{Ctx, ListenerCtx, STICKINESS_MAX_SECONDS, VALUE_MAX_LEN};
use crate::model::*;
use crate::raw::*;

/// ALB: at most five target groups in one forward action; weights 0-999.
const GROUPS_PER_FORWARD: usize = 5;
const WEIGHT_MAX: i64 = 999;
/// ALB: fixed-response bodies are at most 1024 characters.
const FIXED_BODY_MAX: usize = 1024;
/// ALB: fixed-response content types.
const FIXED_CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

pub(super) fn validate_action(
    cx: &mut Ctx,
    value: Value,
    path: &str,
    lx: &ListenerCtx<'_>,
) -> Option<Action> {
    let raw: RawAction = cx.de(value, path)?;
    let Some(kind) = raw.kind.clone() else {
        cx.error(
            &format!("{path}.type"),
            "missing action type",
            "add type = \"forward\", \"redirect\" or \"fixed-response\"",
        );
        return None;
    };
    // Keys that belong to another action type are mistakes worth naming.
    let present: [(&str, bool, &str); 11] = [
        ("target_group", raw.target_group.is_some(), "forward"),
        ("target_groups", raw.target_groups.is_some(), "forward"),
        ("stickiness_seconds", raw.stickiness_seconds.is_some(), "forward"),
        ("protocol", raw.protocol.is_some(), "redirect"),
        ("port", raw.port.is_some(), "redirect"),
        ("host", raw.host.is_some(), "redirect"),
        ("path", raw.path.is_some(), "redirect"),
        ("query", raw.query.is_some(), "redirect"),
        ("content_type", raw.content_type.is_some(), "fixed-response"),
        ("message_body", raw.message_body.is_some(), "fixed-response"),
        (
            "status_code",
            raw.status_code.is_some() && kind == "forward",
            "redirect or fixed-response",
        ),
    ];
    if matches!(kind.as_str(), "forward" | "redirect" | "fixed-response") {
        for (key, is_set, owner) in present {
            if is_set && !owner.split(" or ").any(|o| o == kind) {
                cx.error(
                    &format!("{path}.{key}"),
                    format!("`{key}` belongs to {owner} actions, not {kind}"),
                    format!("remove {key}"),
                );
            }
        }
    }
    match kind.as_str() {
        "forward" => validate_forward(cx, raw, path, lx).map(Action::Forward),
        "redirect" => validate_redirect(cx, raw, path, lx).map(Action::Redirect),
        "fixed-response" => validate_fixed(cx, raw, path).map(Action::FixedResponse),
        "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => {
            cx.error(
                &format!("{path}.type"),
                format!("hostalb does not implement {kind} actions"),
                "authenticate in the service, or front hostalb with an identity-aware proxy",
            );
            None
        }
        other => {
            cx.error(
                &format!("{path}.type"),
                format!("unknown action type `{other}`"),
                "use forward, redirect or fixed-response",
            );
            None
        }
    }
}

fn validate_forward(cx: &mut Ctx, raw: RawAction, path: &str, lx: &ListenerCtx<'_>) -> Option<Forward> {
    let known = || {
        let mut names: Vec<&str> = lx.groups.keys().copied().collect();
        names.sort_unstable();
        if names.is_empty() {
            "define one with a [target_group.NAME] table".to_owned()
        } else {
            format!("use one of: {}", names.join(", "))
        }
    };
    let mut groups: Vec<WeightedTargetGroup> = Vec::new();
    let single = raw.target_group.is_some();
    match (raw.target_group, raw.target_groups) {
        (Some(_), Some(_)) => {
            cx.error(
                path,
                "give either target_group or target_groups, not both",
                "use target_group for one group, target_groups for a weighted split",
            );
            return None;
        }
        (None, None) => {
            cx.error(
                path,
                "a forward action needs a target group",
                "add target_group = \"NAME\"",
            );
            return None;
        }
        (Some(name), None) => {
            if !lx.groups.contains_key(name.as_str()) {
                if lx.declared_groups.contains(&name) {
                    return None;
                }
                cx.error(
                    &format!("{path}.target_group"),
                    format!("unknown target group `{name}`"),
                    known(),
                );
                return None;
            }
            groups.push(WeightedTargetGroup { name, weight: 1 });
        }
        (None, Some(list)) => {
            if list.is_empty() {
                cx.error(
                    &format!("{path}.target_groups"),
                    "target_groups is empty",
                    "list at least one { name, weight }",
                );
                return None;
            }
            if list.len() > GROUPS_PER_FORWARD {
                cx.limit(
                    &format!("{path}.target_groups"),
                    format!(
                        "{} target groups; ALB allows {GROUPS_PER_FORWARD} per forward",
                        list.len()
                    ),
                    "forward to at most five groups",
                );
            }
            let mut failed = false;
            for (i, g) in list.into_iter().enumerate() {
                let gpath = format!("{path}.target_groups[{i}]");
                if !lx.groups.contains_key(g.name.as_str()) {
                    failed = true;
                    if lx.declared_groups.contains(&g.name) {
                        continue;
                    }
                    cx.error(
                        &format!("{gpath}.name"),
                        format!("unknown target group `{}`", g.name),
                        known(),
                    );
                    continue;
                }
                if groups.iter().any(|x| x.name == g.name) {
                    cx.error(
                        &format!("{gpath}.name"),
                        format!("target group `{}` is listed twice", g.name),
                        "list each group once",
                    );
                    failed = true;
                    continue;
                }
                // moto fills a missing weight with 1; so do we.
                let weight = g.weight.unwrap_or(1);
                if weight < 0 {
                    cx.error(
                        &format!("{gpath}.weight"),
                        format!("weight {weight} is negative"),
                        "use 0 to 999",
                    );
                    failed = true;
                    continue;
                }
                if weight > WEIGHT_MAX {
                    cx.limit(
                        &format!("{gpath}.weight"),
                        format!("ALB weights run from 0 to {WEIGHT_MAX}, not {weight}"),
                        "scale the weights down",
                    );
                }
                groups.push(WeightedTargetGroup {
                    name: g.name,
                    weight: u32::try_from(weight).unwrap_or(u32::MAX),
                });
            }
            if failed {
                return None;
            }
            if groups.iter().all(|g| g.weight == 0) {
                cx.limit(
                    &format!("{path}.target_groups"),
                    "every weight is 0: no group can take a request, and each gets 503",
                    "give at least one group a weight above 0",
                );
            }
        }
    }
    check_group_protocols(cx, path, lx, &groups, single);
    let stickiness = match raw.stickiness_seconds {
        None => None,
        Some(s) => {
            let d = cx.seconds(Some(s), Duration::ZERO, &format!("{path}.stickiness_seconds"));
            if d.is_zero() {
                cx.limit(
                    &format!("{path}.stickiness_seconds"),
                    "ALB group stickiness lasts 1 to 604800 seconds; 0 turns it off",
                    "remove stickiness_seconds or use 1 to 604800",
                );
                None
            } else {
                if d.as_secs_f64() > STICKINESS_MAX_SECONDS || d.as_secs_f64() < 1.0 {
                    cx.limit(
                        &format!("{path}.stickiness_seconds"),
                        "ALB group stickiness lasts 1 to 604800 seconds",
                        "use 1 to 604800",
                    );
                }
                Some(d)
            }
        }
    };
    if groups.len() > 1 {
        for g in &groups {
            match lx.groups.get(g.name.as_str()).and_then(|tg| tg.stickiness.as_ref()) {
                Some(Stickiness::AppCookie { .. }) => cx.limit(
                    path,
                    format!("target group `{}` uses app_cookie stickiness, which ALB does not allow in a weighted forward", g.name),
                    "use lb_cookie stickiness on the group, or forward to it alone",
                ),
                Some(Stickiness::LbCookie { .. }) if stickiness.is_none() => cx.limit(
                    path,
                    format!("target group `{}` is sticky; ALB requires group stickiness on a weighted forward to it", g.name),
                    "add stickiness_seconds = 3600 (or another duration)",
                ),
                _ => {}
            }
        }
    }
    Some(Forward {
        target_groups: groups,
        stickiness,
    })
}

/// ALB's listener/target protocol rules (alb-spec §5): HTTP2 and GRPC groups only behind
/// HTTPS listeners (an HTTP listener speaks HTTP/1 only, and every request would get 464),
/// and one forward's groups share one protocol version (ALB refuses the mix; requests of
/// one protocol would get 464 from a share of them).
fn check_group_protocols(
    cx: &mut Ctx,
    path: &str,
    lx: &ListenerCtx<'_>,
    groups: &[WeightedTargetGroup],
    single: bool,
) {
    let field = |i: usize| {
        if single {
            format!("{path}.target_group")
        } else {
            format!("{path}.target_groups[{i}]")
        }
    };
    let mut first: Option<(&str, ProtocolVersion)> = None;
    for (i, g) in groups.iter().enumerate() {
        let Some(tg) = lx.groups.get(g.name.as_str()) else {
            continue;
        };
        let version = tg.protocol_version;
        if version != ProtocolVersion::Http1 && lx.protocol == ListenerProtocol::Http {
            cx.error(
                &field(i),
                format!(
                    "target group `{}` has protocol_version = \"{}\", which ALB allows only behind HTTPS listeners (an HTTP listener speaks HTTP/1, and every request would get 464)",
                    g.name,
                    version.as_str()
                ),
                "forward to it from an HTTPS listener (protocol = \"HTTPS\" with certificates), or set protocol_version = \"HTTP1\" on the group",
            );
        }
        match first {
            None => first = Some((g.name.as_str(), version)),
            Some((name, v)) if v != version => cx.error(
                &field(i),
                format!(
                    "target group `{}` has protocol_version = \"{}\" but `{name}` in the same forward has \"{}\"; ALB requires one protocol version per forward",
                    g.name,
                    version.as_str(),
                    v.as_str()
                ),
                "give the groups the same protocol_version, or split the traffic with separate rules",
            ),
            Some(_) => {}
        }
    }
}

fn validate_redirect(cx: &mut Ctx, raw: RawAction, path: &str, lx: &ListenerCtx<'_>) -> Option<Redirect> {
    let status_code = match raw.status_code {
        None => {
            cx.error(
                &format!("{path}.status_code"),
                "a redirect needs a status code",
                "add status_code = \"HTTP_301\" (or \"HTTP_302\")",
            );
            None
        }
        Some(s) => {
            let code = match &s {
                Scalar::Int(n) => u16::try_from(*n).ok(),
                Scalar::Str(t) => t.strip_prefix("HTTP_").unwrap_or(t).parse::<u16>().ok(),
            };
            match code {
                Some(301 | 302) => code,
                Some(c @ (303 | 307 | 308)) => {
                    cx.limit(
                        &format!("{path}.status_code"),
                        format!("ALB redirects with HTTP_301 or HTTP_302 only, not {c}"),
                        "use \"HTTP_301\" or \"HTTP_302\"",
                    );
                    Some(c)
                }
                _ => {
                    cx.error(
                        &format!("{path}.status_code"),
                        format!("`{s}` is not a redirect status"),
                        "use \"HTTP_301\" or \"HTTP_302\"",
                    );
                    None
                }
            }
        }
    };
    // A protocol or port that cannot be read is reported once; the loop check below
    // would otherwise judge the fallback instead of what was written.
    let mut unreadable = false;
    let protocol = match raw.protocol.as_deref() {
        None | Some("#{protocol}") => RedirectProtocol::Keep,
        Some(p) if p.eq_ignore_ascii_case("HTTP") => RedirectProtocol::Http,
        Some(p) if p.eq_ignore_ascii_case("HTTPS") => RedirectProtocol::Https,
        Some(p) => {
            cx.error(
                &format!("{path}.protocol"),
                format!("unknown protocol `{p}`"),
                "use HTTP, HTTPS or #{protocol}",
            );
            unreadable = true;
            RedirectProtocol::Keep
        }
    };
    if protocol == RedirectProtocol::Http && lx.protocol == ListenerProtocol::Https {
        cx.limit(
            &format!("{path}.protocol"),
            "ALB does not redirect from HTTPS to HTTP",
            "redirect to HTTPS, or keep #{protocol}",
        );
    }
    let port = match raw.port {
        None => None,
        Some(Scalar::Str(s)) if s == "#{port}" => None,
        Some(p) => {
            let n = match &p {
                Scalar::Int(n) => u16::try_from(*n).ok(),
                Scalar::Str(s) => s.parse::<u16>().ok(),
            };
            match n {
                Some(n) if n > 0 => Some(n),
                _ => {
                    cx.error(
                        &format!("{path}.port"),
                        format!("`{p}` is not a port"),
                        "use 1 to 65535 or \"#{port}\"",
                    );
                    unreadable = true;
                    None
                }
            }
        }
    };
    let host = raw.host.unwrap_or_else(|| "#{host}".to_owned());
    if host.is_empty() {
        cx.error(
            &format!("{path}.host"),
            "the redirect host is empty",
            "use \"#{host}\" or a host name",
        );
    } else if host.len() > VALUE_MAX_LEN {
        cx.limit(
            &format!("{path}.host"),
            "ALB redirect hosts are at most 128 characters",
            "shorten it",
        );
    }
    let path_text = raw.path.unwrap_or_else(|| "/#{path}".to_owned());
    if !path_text.starts_with('/') {
        cx.error(
            &format!("{path}.path"),
            format!("the redirect path `{path_text}` must start with `/`"),
            "write e.g. \"/#{path}\" (#{path} has no leading slash)",
        );
    } else if path_text.len() > VALUE_MAX_LEN {
        cx.limit(
            &format!("{path}.path"),
            "ALB redirect paths are at most 128 characters",
            "shorten it",
        );
    }
    let mut query_text = raw.query.unwrap_or_else(|| "#{query}".to_owned());
    if let Some(stripped) = query_text.strip_prefix('?') {
        cx.limit(
            &format!("{path}.query"),
            "ALB redirect queries have no leading `?` (it is added)",
            "remove the `?`",
        );
        query_text = stripped.to_owned();
    }
    if query_text.len() > VALUE_MAX_LEN {
        cx.limit(
            &format!("{path}.query"),
            "ALB redirect queries are at most 128 characters",
            "shorten it",
        );
    }
    let host = Template::parse(&host);
    let target_path = Template::parse(&path_text);
    let same_protocol = matches!(
        (protocol, lx.protocol),
        (RedirectProtocol::Keep, _)
            | (RedirectProtocol::Http, ListenerProtocol::Http)
            | (RedirectProtocol::Https, ListenerProtocol::Https)
    );
    let same_port = port.is_none() || port == Some(lx.port);
    let same_host = host.parts == [TemplatePart::Host];
    let same_path = target_path.parts == [TemplatePart::Literal("/".into()), TemplatePart::Path];
    if !unreadable && same_protocol && same_port && same_host && same_path {
        cx.limit(path, "this redirect changes none of protocol, host, port and path: it would redirect to itself forever", "change at least one of them");
    }
    Some(Redirect {
        protocol,
        port,
        host,
        path: target_path,
        query: Template::parse(&query_text),
        status_code: status_code?,
    })
}

fn validate_fixed(cx: &mut Ctx, raw: RawAction, path: &str) -> Option<FixedResponse> {
    let status_code = match raw.status_code {
        None => {
            cx.error(
                &format!("{path}.status_code"),
                "a fixed response needs a status code",
                "add status_code = 404",
            );
            None
        }
        Some(s) => {
            let code = match &s {
                Scalar::Int(n) => u16::try_from(*n).ok(),
                Scalar::Str(t) => t.parse::<u16>().ok(),
            };
            match code {
                Some(c) if (200..=599).contains(&c) => {
                    if !matches!(c / 100, 2 | 4 | 5) {
                        cx.limit(
                            &format!("{path}.status_code"),
                            format!("ALB fixed responses use 2xx, 4xx or 5xx, not {c}"),
                            "use a redirect action for 3xx",
                        );
                    }
                    Some(c)
                }
                _ => {
                    cx.error(
                        &format!("{path}.status_code"),
                        format!("`{s}` is not a final HTTP status code"),
                        "use 200-599 (a 1xx cannot end an exchange)",
                    );
                    None
                }
            }
        }
    };
    if let Some(ct) = &raw.content_type {
        if !FIXED_CONTENT_TYPES.contains(&ct.as_str()) {
            cx.limit(
                &format!("{path}.content_type"),
                format!(
                    "ALB fixed responses use {}, not `{ct}`",
                    FIXED_CONTENT_TYPES.join(", ")
                ),
                "use one of those",
            );
        }
        if ct.bytes().any(|b| b < 0x20 || b == 0x7f) {
            cx.error(
                &format!("{path}.content_type"),
                "the content type has control characters",
                "remove them",
            );
            return None;
        }
    }
    let body = raw.message_body.unwrap_or_default();
    if body.chars().count() > FIXED_BODY_MAX {
        cx.limit(
            &format!("{path}.message_body"),
            format!("ALB fixed-response bodies are at most {FIXED_BODY_MAX} characters"),
            "shorten the body",
        );
    }
    Some(FixedResponse {
        status_code: status_code?,
        content_type: raw.content_type,
        message_body: body,
    })
}
