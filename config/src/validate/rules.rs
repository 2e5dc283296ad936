//! Rules, their conditions and their transforms.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::{Ctx, ListenerCtx, VALUE_MAX_LEN, is_tchar, validate_action};
use crate::glob::{Case, Glob, count_unescaped_wildcards, count_wildcards};
use crate::model::*;
use crate::raw::*;

/// ALB: rule priorities run from 1 to 50000.
const PRIORITY_MAX: i64 = 50_000;
/// ALB: at most three match evaluations per condition (five for source-ip).
const VALUES_PER_CONDITION: usize = 3;
const VALUES_PER_SOURCE_IP: usize = 5;
/// ALB quota "condition values per rule".
const VALUES_PER_RULE: usize = 5;
/// ALB: at most five wildcard characters per rule.
const WILDCARDS_PER_RULE: usize = 5;
/// ALB: http-header names and methods are at most 40 characters.
const NAME_MAX_LEN: usize = 40;
/// ALB: transform regex and replacement strings are at most 1024 characters.
const TRANSFORM_MAX_LEN: usize = 1024;

pub(super) fn validate_rule(cx: &mut Ctx, value: Value, path: &str, lx: &ListenerCtx<'_>) -> Option<Rule> {
    let raw: RawRule = cx.de(value, path)?;
    let priority = match raw.priority {
        None => {
            cx.error(
                &format!("{path}.priority"),
                "missing rule priority",
                "add priority = 10 (lowest is evaluated first)",
            );
            None
        }
        Some(p) if !(0..=u32::MAX as i64).contains(&p) => {
            cx.error(
                &format!("{path}.priority"),
                format!("priority {p} is out of range"),
                "use 1 to 50000",
            );
            None
        }
        Some(p) => {
            if !(1..=PRIORITY_MAX).contains(&p) {
                cx.limit(
                    &format!("{path}.priority"),
                    format!("ALB rule priorities run from 1 to {PRIORITY_MAX}, not {p}"),
                    "use a priority from 1 to 50000",
                );
            }
            Some(p as u32)
        }
    };

    let mut conditions = Vec::new();
    let mut budget = RuleBudget::default();
    for (c, value) in raw.conditions.into_iter().enumerate() {
        let cpath = format!("{path}.conditions[{c}]");
        if let Some(cond) = validate_condition(cx, value, &cpath, &mut budget) {
            conditions.push(cond);
        }
    }
    if conditions.is_empty() && budget.seen == 0 {
        cx.limit(
            &format!("{path}.conditions"),
            "a rule without conditions matches every request; ALB requires at least one",
            "add a condition, or make this the listener's default_action",
        );
    }
    for field in ["host-header", "http-request-method", "path-pattern", "source-ip"] {
        let n = budget.fields.get(field).copied().unwrap_or(0);
        if n > 1 {
            cx.limit(
                &format!("{path}.conditions"),
                format!("{n} `{field}` conditions; ALB allows one per rule"),
                format!("merge them into one `{field}` condition (its values are alternatives)"),
            );
        }
    }
    if budget.values > VALUES_PER_RULE {
        cx.limit(
            &format!("{path}.conditions"),
            format!(
                "{} condition values; ALB allows {VALUES_PER_RULE} per rule",
                budget.values
            ),
            "split the rule into several rules",
        );
    }
    if budget.wildcards > WILDCARDS_PER_RULE {
        cx.limit(
            &format!("{path}.conditions"),
            format!(
                "{} wildcards (* and ?); ALB allows {WILDCARDS_PER_RULE} per rule",
                budget.wildcards
            ),
            "use fewer wildcards, or regex_values",
        );
    }

    let mut transforms = Vec::new();
    let mut seen_kinds: Vec<&'static str> = Vec::new();
    for (t, value) in raw.transforms.into_iter().enumerate() {
        let tpath = format!("{path}.transforms[{t}]");
        if let Some(tr) = validate_transform(cx, value, &tpath) {
            if seen_kinds.contains(&tr.kind()) {
                cx.limit(
                    &tpath,
                    format!(
                        "a second `{}` transform; ALB allows one of each type per rule",
                        tr.kind()
                    ),
                    "merge the rewrites into one transform",
                );
            }
            seen_kinds.push(tr.kind());
            transforms.push(tr);
        }
    }

    let action = match raw.action {
        Some(v) => validate_action(cx, v, &format!("{path}.action"), lx),
        None => {
            cx.error(
                &format!("{path}.action"),
                "missing rule action",
                "add action = { type = \"forward\", target_group = \"NAME\" }",
            );
            None
        }
    };
    Some(Rule {
        priority: priority?,
        conditions,
        transforms,
        action: action?,
    })
}

#[derive(Default)]
struct RuleBudget {
    seen: usize,
    values: usize,
    wildcards: usize,
    fields: HashMap<&'static str, usize>,
}

fn validate_condition(cx: &mut Ctx, value: Value, path: &str, budget: &mut RuleBudget) -> Option<Condition> {
    budget.seen += 1;
    let raw: RawCondition = cx.de(value, path)?;
    let Some(field) = raw.field.as_deref() else {
        cx.error(
            &format!("{path}.field"),
            "missing condition field",
            "add field = one of host-header, path-pattern, http-header, http-request-method, query-string, source-ip",
        );
        return None;
    };
    let field: &'static str = match field {
        "host-header" => "host-header",
        "path-pattern" => "path-pattern",
        "http-header" => "http-header",
        "http-request-method" => "http-request-method",
        "query-string" => "query-string",
        "source-ip" => "source-ip",
        other => {
            cx.error(
                &format!("{path}.field"),
                format!("unknown condition field `{other}`"),
                "use host-header, path-pattern, http-header, http-request-method, query-string or source-ip",
            );
            return None;
        }
    };
    *budget.fields.entry(field).or_default() += 1;
    if raw.name.is_some() && field != "http-header" {
        cx.error(
            &format!("{path}.name"),
            format!("`name` is only for http-header conditions, not {field}"),
            "remove name",
        );
    }
    let regex_allowed = matches!(field, "host-header" | "path-pattern" | "http-header");
    if raw.regex_values.is_some() && !regex_allowed {
        cx.error(
            &format!("{path}.regex_values"),
            format!("{field} conditions take no regex_values"),
            "use values (host-header, http-header and path-pattern take regex_values)",
        );
    }
    let values = raw.values.unwrap_or_default();
    let regexes_raw = if regex_allowed {
        raw.regex_values.unwrap_or_default()
    } else {
        Vec::new()
    };
    let count = values.len() + regexes_raw.len();
    if count == 0 {
        cx.error(
            &format!("{path}.values"),
            "a condition needs at least one value",
            "add values = [\"...\"] (values are alternatives: any one matching is enough)",
        );
        return None;
    }
    budget.values += count;
    let per_condition = if field == "source-ip" {
        VALUES_PER_SOURCE_IP
    } else {
        VALUES_PER_CONDITION
    };
    if count > per_condition {
        cx.limit(
            &format!("{path}.values"),
            format!("{count} values; ALB allows {per_condition} per {field} condition"),
            "split the values over several rules",
        );
    }

    let condition = match field {
        "query-string" => {
            let mut pairs = Vec::new();
            for (v, item) in values.into_iter().enumerate() {
                let vpath = format!("{path}.values[{v}]");
                let Some(pair) = cx.de::<RawQueryPair>(item, &vpath) else {
                    continue;
                };
                let Some(value) = pair.value else {
                    cx.error(
                        &vpath,
                        "a query-string pair needs a value",
                        "write { key = \"k\", value = \"v\" } (key is optional)",
                    );
                    continue;
                };
                for (what, text) in [("key", pair.key.as_deref()), ("value", Some(value.as_str()))] {
                    if let Some(text) = text {
                        check_value_text(cx, text, &format!("{vpath}.{what}"), Charset::Visible);
                        budget.wildcards += count_unescaped_wildcards(text);
                    }
                }
                pairs.push(QueryPair {
                    key: pair.key.map(|k| Glob::new(&k, Case::Insensitive, true)),
                    value: Glob::new(&value, Case::Insensitive, true),
                });
            }
            Condition::QueryString(pairs)
        }
        "source-ip" => {
            let mut nets = Vec::new();
            for (v, item) in values.into_iter().enumerate() {
                let vpath = format!("{path}.values[{v}]");
                let Some(text) = string_value(cx, item, &vpath) else {
                    continue;
                };
                if let Some(net) = parse_cidr(cx, &text, &vpath) {
                    nets.push(net);
                }
            }
            Condition::SourceIp(nets)
        }
        "http-request-method" => {
            let mut methods = Vec::new();
            for (v, item) in values.into_iter().enumerate() {
                let vpath = format!("{path}.values[{v}]");
                let Some(text) = string_value(cx, item, &vpath) else {
                    continue;
                };
                if text.is_empty() || !text.bytes().all(is_tchar) {
                    cx.error(
                        &vpath,
                        format!("`{text}` is not an HTTP method"),
                        "use a method such as GET or POST",
                    );
                    continue;
                }
                if text.len() > NAME_MAX_LEN
                    || !text
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                {
                    cx.limit(
                        &vpath,
                        format!("ALB methods are up to {NAME_MAX_LEN} of A-Z, '-' and '_', not `{text}`"),
                        "write the method in upper case (matching is exact and case-sensitive)",
                    );
                }
                methods.push(text);
            }
            Condition::HttpRequestMethod(methods)
        }
        _ => {
            let (case, charset) = match field {
                "host-header" => (Case::Insensitive, Charset::Host),
                "path-pattern" => (Case::Sensitive, Charset::Path),
                _ => (Case::Insensitive, Charset::Visible),
            };
            let mut matcher = ValueMatcher::default();
            for (v, item) in values.into_iter().enumerate() {
                let vpath = format!("{path}.values[{v}]");
                let Some(text) = string_value(cx, item, &vpath) else {
                    continue;
                };
                check_value_text(cx, &text, &vpath, charset);
                budget.wildcards += count_wildcards(&text);
                matcher.globs.push(Glob::new(&text, case, false));
            }
            for (v, text) in regexes_raw.iter().enumerate() {
                let vpath = format!("{path}.regex_values[{v}]");
                if text.len() > VALUE_MAX_LEN {
                    cx.limit(
                        &vpath,
                        format!("ALB regex values are at most {VALUE_MAX_LEN} characters"),
                        "shorten the expression",
                    );
                }
                if text.contains("\\p{") || text.contains("\\P{") {
                    cx.limit(
                        &vpath,
                        "ALB regexes do not support \\p{..} classes",
                        "use explicit character classes",
                    );
                }
                match RegexValue::new(text, case == Case::Insensitive) {
                    Ok(r) => matcher.regexes.push(r),
                    Err(e) => cx.error(
                        &vpath,
                        format!("not a valid regex: {e}"),
                        "fix the expression (no lookaround or backreferences)",
                    ),
                }
            }
            match field {
                "host-header" => Condition::HostHeader(matcher),
                "path-pattern" => Condition::PathPattern(matcher),
                _ => {
                    let Some(name) = raw.name else {
                        cx.error(
                            &format!("{path}.name"),
                            "an http-header condition needs the header name",
                            "add name = \"X-Header\"",
                        );
                        return None;
                    };
                    let npath = format!("{path}.name");
                    if name.is_empty() || !name.bytes().all(is_tchar) {
                        cx.error(
                            &npath,
                            format!("`{name}` is not a header name"),
                            "use letters, digits and '-'",
                        );
                        return None;
                    }
                    if name.len() > NAME_MAX_LEN {
                        cx.limit(
                            &npath,
                            format!("ALB header names are at most {NAME_MAX_LEN} characters"),
                            "shorten the name",
                        );
                    }
                    if name.contains(['*', '?']) {
                        cx.limit(
                            &npath,
                            "ALB header names take no wildcards",
                            "name one header exactly",
                        );
                    }
                    if name.eq_ignore_ascii_case("host") {
                        cx.limit(
                            &npath,
                            "ALB does not allow http-header conditions on Host",
                            "use a host-header condition",
                        );
                    }
                    Condition::HttpHeader {
                        name: name.to_ascii_lowercase(),
                        matcher,
                    }
                }
            }
        }
    };
    Some(condition)
}

fn string_value(cx: &mut Ctx, item: Value, path: &str) -> Option<String> {
    match item {
        Value::String(s) => Some(s),
        other => {
            cx.error(
                path,
                format!("expected a string, found {other}"),
                "quote the value",
            );
            None
        }
    }
}

#[derive(Clone, Copy)]
enum Charset {
    Host,
    Path,
    Visible,
}

fn check_value_text(cx: &mut Ctx, text: &str, path: &str, charset: Charset) {
    if text.is_empty() {
        cx.limit(
            path,
            "ALB condition values cannot be empty",
            "write a value or a wildcard",
        );
        return;
    }
    if text.len() > VALUE_MAX_LEN {
        cx.limit(
            path,
            format!("ALB condition values are at most {VALUE_MAX_LEN} characters"),
            "shorten the value or use a wildcard",
        );
    }
    if !text.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' ') {
        cx.limit(
            path,
            "ALB matches only visible ASCII characters",
            "remove control and non-ASCII characters",
        );
        return;
    }
    match charset {
        Charset::Host => {
            if let Some(bad) = text
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-.*?".contains(*c)))
            {
                cx.limit(
                    path,
                    format!("ALB host-header values allow A-Z a-z 0-9 - . * ? only, not `{bad}`"),
                    "use regex_values for other characters (a port, say)",
                );
            } else if !text.contains('.') {
                cx.limit(
                    path,
                    format!("ALB host-header values need a `.`: `{text}`"),
                    "use a dotted name such as api.localhost",
                );
            } else if let Some(last) = text.rsplit('.').next() {
                if !last
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '*' || c == '?')
                {
                    cx.limit(
                        path,
                        format!("ALB host-header values end in letters after the last `.`: `{text}`"),
                        "use a name, not an address",
                    );
                }
            }
        }
        Charset::Path => {
            if let Some(bad) = text
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(*c)))
            {
                cx.limit(
                    path,
                    format!(
                        "ALB path patterns allow A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ? only, not `{bad}`"
                    ),
                    "use regex_values for other characters",
                );
            }
        }
        Charset::Visible => {}
    }
}

fn parse_cidr(cx: &mut Ctx, text: &str, path: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        if net == "255.255.255.255/32".parse::<IpNet>().ok()? {
            cx.limit(path, "ALB rejects 255.255.255.255/32", "remove it");
        }
        return Some(net.trunc());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        cx.limit(
            path,
            format!("ALB wants CIDR notation: `{text}`"),
            format!("write {text}/{}", if ip.is_ipv4() { 32 } else { 128 }),
        );
        return Some(IpNet::from(ip));
    }
    cx.error(
        path,
        format!("`{text}` is not a CIDR block"),
        "write e.g. 10.0.0.0/8 or ::1/128",
    );
    None
}

fn validate_transform(cx: &mut Ctx, value: Value, path: &str) -> Option<Transform> {
    let raw: RawTransform = cx.de(value, path)?;
    let kind = raw.kind.as_deref().unwrap_or("");
    if raw.rewrites.is_empty() {
        cx.error(
            &format!("{path}.rewrites"),
            "a transform needs at least one rewrite",
            "add rewrites = [{ regex = \"^/old/(.*)$\", replace = \"/new/$1\" }]",
        );
        return None;
    }
    let mut rewrites = Vec::new();
    for (i, r) in raw.rewrites.into_iter().enumerate() {
        let rpath = format!("{path}.rewrites[{i}]");
        if r.regex.len() > TRANSFORM_MAX_LEN || r.replace.len() > TRANSFORM_MAX_LEN {
            cx.limit(
                &rpath,
                format!("ALB transform regex and replace are at most {TRANSFORM_MAX_LEN} characters"),
                "shorten them",
            );
        }
        match RegexValue::new(&r.regex, false) {
            Ok(regex) => rewrites.push(Rewrite {
                regex,
                replace: r.replace,
            }),
            Err(e) => cx.error(
                &format!("{rpath}.regex"),
                format!("not a valid regex: {e}"),
                "fix the expression",
            ),
        }
    }
    match kind {
        "host-header-rewrite" => Some(Transform::HostHeaderRewrite(rewrites)),
        "url-rewrite" => Some(Transform::UrlRewrite(rewrites)),
        other => {
            cx.error(
                &format!("{path}.type"),
                format!("unknown transform type `{other}`"),
                "use host-header-rewrite or url-rewrite",
            );
            None
        }
    }
}
