//! ECS's JSON 1.1 calls (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`),
//! served by `hostalb-ecs` on the Docker engine `[docker] endpoint` names. Its state lives
//! in the state file's `Ecs` member, shared with the ELBv2 side: whichever side writes
//! the file writes ECS's current state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hostalb_aws::json11::CONTENT_TYPE;
use hostalb_aws::query::Params;
use hostalb_ecs::{
    Ecs, HealthReader, Registrar, RuleCall, RuleWeights, Shared, TargetChange, TargetTypeReader,
};
use hostalb_proxy::AwsAnswer;

use super::elbv2::Elbv2;
use super::state;

/// ELBv2's default deregistration delay, used when a group's cannot be read.
const DEFAULT_DEREGISTRATION_DELAY: u64 = 300;

/// The ECS API, once the Docker client could be made.
#[derive(Debug)]
pub(crate) struct EcsApi {
    ecs: Result<Ecs, String>,
}

impl EcsApi {
    pub(crate) fn new(shared: Shared, path: PathBuf, endpoint: Option<&str>, elbv2: Arc<Elbv2>) -> EcsApi {
        let saver_state = shared.clone();
        let saver = Box::new(move || {
            // The ELBv2 side's latest resources, as written, with ECS's current state; no
            // other write falls between the read and the write.
            let _one = state::WRITES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut current = state::load(&path).map_err(|e| e.to_string())?;
            current.ecs = saver_state.clone();
            state::write(&path, &current).map_err(|e| e.to_string())
        });
        let ecs = hostalb_ecs::docker::connect(endpoint)
            .map(|docker| {
                Ecs::new(shared, docker, saver, registrar(Arc::clone(&elbv2)))
                    .with_health(health(Arc::clone(&elbv2)))
                    .with_rules(rule_weights(Arc::clone(&elbv2)))
                    .with_target_types(target_types(elbv2))
            })
            .map_err(|e| format!("the Docker engine cannot be reached: {e}"));
        EcsApi { ecs }
    }

    /// Takes the state file's tasks back (running ones are watched again).
    pub(crate) async fn start(&self) -> Result<(), String> {
        match &self.ecs {
            Ok(ecs) => ecs.start().await,
            Err(_) => Ok(()),
        }
    }

    pub(crate) async fn call(self: &Arc<Self>, operation: &str, body: &[u8]) -> AwsAnswer {
        // A name that is no ECS operation is the caller's mistake (400) before anything
        // depends on the Docker engine.
        if let Some(e) = hostalb_ecs::unknown_operation(operation) {
            return answer_error(&e);
        }
        let ecs = match &self.ecs {
            Ok(e) => e,
            Err(m) => return answer_error(&hostalb_ecs::EcsError::server(m.clone())),
        };
        match ecs.call(operation, body).await {
            Ok(mut v) => {
                hostalb_aws::elbv2::strip_nulls(&mut v);
                AwsAnswer {
                    status: 200,
                    content_type: CONTENT_TYPE,
                    body: serde_json::to_vec(&v).unwrap_or_default(),
                }
            }
            Err(e) => answer_error(&e),
        }
    }
}

fn answer_error(e: &hostalb_ecs::EcsError) -> AwsAnswer {
    AwsAnswer {
        status: e.http_status(),
        content_type: CONTENT_TYPE,
        body: hostalb_aws::json11::encode_error(e.code, &e.message),
    }
}

/// Services' tasks go in and out of target groups through ELBv2's own RegisterTargets and
/// DeregisterTargets, as ECS's scheduler calls them: kept in the state file, applied as
/// every registration is.
fn registrar(elbv2: Arc<Elbv2>) -> Registrar {
    Arc::new(move |change: TargetChange| {
        let elbv2 = Arc::clone(&elbv2);
        Box::pin(async move {
            let action = if change.register {
                "RegisterTargets"
            } else {
                "DeregisterTargets"
            };
            elbv2_xml(
                &elbv2,
                action,
                &format!(
                    "TargetGroupArn={}&Targets.member.1.Id={}&Targets.member.1.Port={}",
                    form_encode(&change.target_group_arn),
                    change.ip,
                    change.port
                ),
            )
            .await?;
            if change.register {
                return Ok(Duration::ZERO);
            }
            // How long the target drains: the group's deregistration delay.
            let xml = elbv2_xml(
                &elbv2,
                "DescribeTargetGroupAttributes",
                &format!("TargetGroupArn={}", form_encode(&change.target_group_arn)),
            )
            .await?;
            Ok(Duration::from_secs(deregistration_delay(&xml)))
        })
    })
}

/// A target's state through ELBv2's own DescribeTargetHealth.
fn health(elbv2: Arc<Elbv2>) -> HealthReader {
    Arc::new(move |tg: String, ip: std::net::IpAddr, port: u16| {
        let elbv2 = Arc::clone(&elbv2);
        Box::pin(async move {
            let query = format!(
                "TargetGroupArn={}&Targets.member.1.Id={ip}&Targets.member.1.Port={port}",
                form_encode(&tg)
            );
            let xml = elbv2_xml(&elbv2, "DescribeTargetHealth", &query).await.ok()?;
            target_state(&xml)
        })
    })
}

/// A listener rule's forward weights, read by ELBv2's own DescribeRules and changed by its
/// own ModifyRule (a default rule's ARN changes the listener's default actions): the same
/// validation, state file and snapshot as every other change.
fn rule_weights(elbv2: Arc<Elbv2>) -> RuleWeights {
    Arc::new(move |call: RuleCall| {
        let elbv2 = Arc::clone(&elbv2);
        Box::pin(async move {
            let rule = match &call {
                RuleCall::Read(r) | RuleCall::Set(r, _) => r.clone(),
            };
            let query = format!("RuleArns.member.1={}", form_encode(&rule));
            let actions = rule_actions(&elbv2_xml(&elbv2, "DescribeRules", &query).await?);
            let Some(k) = forward_index(&actions) else {
                return Err(format!("the rule {rule} has no forward action"));
            };
            let RuleCall::Set(_, weights) = call else {
                return Ok(forward_weights(&actions, &k));
            };
            let mut query = format!("RuleArn={}", form_encode(&rule));
            for (key, value) in with_weights(&actions, &k, &weights) {
                query.push_str(&format!("&{}={}", form_encode(&key), form_encode(&value)));
            }
            let xml = elbv2_xml(&elbv2, "ModifyRule", &query).await?;
            Ok(forward_weights(&rule_actions(&xml), &k))
        })
    })
}

/// A target group's `TargetType` through ELBv2's own DescribeTargetGroups.
fn target_types(elbv2: Arc<Elbv2>) -> TargetTypeReader {
    Arc::new(move |tg: String| {
        let elbv2 = Arc::clone(&elbv2);
        Box::pin(async move {
            let query = format!("TargetGroupArns.member.1={}", form_encode(&tg));
            let xml = elbv2_xml(&elbv2, "DescribeTargetGroups", &query).await.ok()?;
            let (_, rest) = xml.split_once("<TargetType>")?;
            let (kind, _) = rest.split_once("</TargetType>")?;
            Some(kind.trim().to_owned())
        })
    })
}

/// The first rule's `Actions` of a DescribeRules or ModifyRule answer, as the query form's
/// (name, value) pairs (`Actions.member.1.Type`...): ELBv2's XML answers are written from
/// the same member names, lists as `member` elements, so the form reads back one to one.
fn rule_actions(xml: &str) -> Vec<(String, String)> {
    flatten_xml(xml)
        .into_iter()
        .filter_map(|(path, value)| {
            let (_, rest) = path.split_once(".Rules.member.1.Actions.")?;
            Some((format!("Actions.{rest}"), value))
        })
        .collect()
}

/// The `Actions.member.K` prefix of the forward action.
fn forward_index(actions: &[(String, String)]) -> Option<String> {
    actions.iter().find_map(|(k, v)| {
        let prefix = k.strip_suffix(".Type")?;
        (v == "forward" && prefix.matches('.').count() == 2).then(|| prefix.to_owned())
    })
}

/// The forward action's (group, weight); a missing weight counts 1, as ELBv2 reads it.
fn forward_weights(actions: &[(String, String)], k: &str) -> Vec<(String, u32)> {
    let groups = format!("{k}.ForwardConfig.TargetGroups.member.");
    let mut out: Vec<(String, String, u32)> = Vec::new();
    for (key, value) in actions {
        let Some(rest) = key.strip_prefix(&groups) else {
            continue;
        };
        let Some((n, member)) = rest.split_once('.') else {
            continue;
        };
        let i = match out.iter().position(|(x, _, _)| x == n) {
            Some(i) => i,
            None => {
                out.push((n.to_owned(), String::new(), 1));
                out.len() - 1
            }
        };
        match member {
            "TargetGroupArn" => out[i].1.clone_from(value),
            "Weight" => out[i].2 = value.parse().unwrap_or(1),
            _ => {}
        }
    }
    if out.is_empty()
        && let Some((_, g)) = actions
            .iter()
            .find(|(key, _)| *key == format!("{k}.TargetGroupArn"))
    {
        return vec![(g.clone(), 1)];
    }
    out.into_iter().map(|(_, g, w)| (g, w)).collect()
}

/// The actions with the forward action's groups and weights replaced (its stickiness and
/// every other action kept).
fn with_weights(actions: &[(String, String)], k: &str, weights: &[(String, u32)]) -> Vec<(String, String)> {
    let groups = format!("{k}.ForwardConfig.TargetGroups.");
    let single = format!("{k}.TargetGroupArn");
    let mut out: Vec<(String, String)> = actions
        .iter()
        .filter(|(key, _)| !key.starts_with(&groups) && *key != single)
        .cloned()
        .collect();
    for (i, (g, w)) in weights.iter().enumerate() {
        out.push((format!("{groups}member.{}.TargetGroupArn", i + 1), g.clone()));
        out.push((format!("{groups}member.{}.Weight", i + 1), w.to_string()));
    }
    out
}

/// An XML answer's leaf elements as (dotted path, text): a `member` element's step is
/// `member.N`, N counted from 1 within its parent, as the query form numbers list items.
/// Empty elements are left out.
fn flatten_xml(xml: &str) -> Vec<(String, String)> {
    struct Open {
        step: String,
        members: usize,
        children: bool,
        text: String,
    }
    let mut out = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        if let Some(top) = stack.last_mut() {
            top.text.push_str(&rest[..lt]);
        }
        let Some(gt) = rest[lt..].find('>') else { break };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let Some(done) = stack.pop() else { break };
            if done.step.split('.').next() != Some(name.trim()) {
                break;
            }
            if !done.children && !done.text.is_empty() {
                let mut path: Vec<&str> = stack.iter().map(|o| o.step.as_str()).collect();
                path.push(&done.step);
                out.push((path.join("."), xml_unescape(&done.text)));
            }
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or_default();
        let step = match stack.last_mut() {
            Some(parent) => {
                parent.children = true;
                if name == "member" {
                    parent.members += 1;
                    format!("member.{}", parent.members)
                } else {
                    name.to_owned()
                }
            }
            None => name.to_owned(),
        };
        stack.push(Open {
            step,
            members: 0,
            children: false,
            text: String::new(),
        });
    }
    out
}

/// XML text with its entities and character references read.
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `TargetHealth.State` of a DescribeTargetHealth answer for one target.
fn target_state(xml: &str) -> Option<String> {
    let (_, rest) = xml.split_once("<TargetHealth>")?;
    let (_, rest) = rest.split_once("<State>")?;
    let (state, _) = rest.split_once("</State>")?;
    Some(state.trim().to_owned())
}

/// The error of an ELBv2 answer, with its message.
/// One ELBv2 call (`action` with the form `query`) through hostalb's own ELBv2 API: its XML
/// answer, or what went wrong (a refused form, or the error ELBv2 answered).
async fn elbv2_xml(elbv2: &Elbv2, action: &str, query: &str) -> Result<String, String> {
    let form = format!(
        "Action={action}&Version={}&{query}",
        hostalb_aws::elbv2::API_VERSION
    );
    let params = Params::parse(&form).map_err(|e| e.to_string())?;
    let answer = elbv2.call(&params).await;
    if answer.status != 200 {
        return Err(failure(action, &answer));
    }
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

fn failure(action: &str, answer: &AwsAnswer) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    let message = body
        .split_once("<Message>")
        .and_then(|(_, m)| m.split_once("</Message>"))
        .map_or(body.as_ref(), |(m, _)| m);
    format!("{action} answered {}: {message}", answer.status)
}

/// `deregistration_delay.timeout_seconds` of a DescribeTargetGroupAttributes answer
/// (ELBv2's default, 300 s, when it cannot be read).
fn deregistration_delay(xml: &str) -> u64 {
    xml.split_once("<Key>deregistration_delay.timeout_seconds</Key>")
        .and_then(|(_, rest)| rest.split_once("<Value>"))
        .and_then(|(_, rest)| rest.split_once("</Value>"))
        .and_then(|(v, _)| v.trim().parse().ok())
        .unwrap_or(DEFAULT_DEREGISTRATION_DELAY)
}

/// Percent-encodes a form value (ARNs hold `:` and `/`).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_deregistration_delay_and_encodes_arns() {
        let xml = "<Attributes><member><Key>stickiness.enabled</Key><Value>false</Value></member>\
                   <member><Key>deregistration_delay.timeout_seconds</Key><Value>7</Value></member></Attributes>";
        assert_eq!(deregistration_delay(xml), 7);
        assert_eq!(deregistration_delay("<x/>"), DEFAULT_DEREGISTRATION_DELAY);
        assert_eq!(
            target_state("<TargetHealthDescriptions><member><TargetHealth><State>healthy</State></TargetHealth></member>").as_deref(),
            Some("healthy")
        );
        assert_eq!(target_state("<x/>"), None);
        assert_eq!(form_encode("arn:aws:x/y z"), "arn%3Aaws%3Ax%2Fy%20z");
    }

    #[test]
    fn a_rules_forward_weights_read_back_as_the_form_and_change_alone() {
        let xml = "<?xml version=\"1.0\"?><DescribeRulesResponse xmlns=\"x\"><DescribeRulesResult><Rules><member>\
                   <RuleArn>r</RuleArn><Conditions></Conditions><Actions>\
                   <member><Type>fixed-response</Type><Order>1</Order><FixedResponseConfig><StatusCode>503</StatusCode><MessageBody>a &amp; b</MessageBody></FixedResponseConfig></member>\
                   <member><Type>forward</Type><Order>2</Order><ForwardConfig><TargetGroups>\
                   <member><TargetGroupArn>blue</TargetGroupArn><Weight>100</Weight></member>\
                   <member><TargetGroupArn>green</TargetGroupArn><Weight>0</Weight></member>\
                   </TargetGroups><TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig></ForwardConfig></member>\
                   </Actions></member></Rules></DescribeRulesResult></DescribeRulesResponse>";
        let actions = rule_actions(xml);
        assert!(actions.contains(&(
            "Actions.member.1.FixedResponseConfig.MessageBody".into(),
            "a & b".into()
        )));
        let k = forward_index(&actions).unwrap();
        assert_eq!(k, "Actions.member.2");
        assert_eq!(
            forward_weights(&actions, &k),
            vec![("blue".into(), 100), ("green".into(), 0)]
        );
        let changed = with_weights(&actions, &k, &[("blue".into(), 10), ("green".into(), 90)]);
        assert_eq!(
            forward_weights(&changed, &k),
            vec![("blue".into(), 10), ("green".into(), 90)]
        );
        assert!(changed.contains(&(
            "Actions.member.2.ForwardConfig.TargetGroupStickinessConfig.Enabled".into(),
            "false".into()
        )));
        let single = vec![
            ("Actions.member.1.Type".to_owned(), "forward".to_owned()),
            ("Actions.member.1.TargetGroupArn".to_owned(), "blue".to_owned()),
        ];
        assert_eq!(
            forward_weights(&single, "Actions.member.1"),
            vec![("blue".into(), 1)]
        );
        assert_eq!(xml_unescape("&#65;&#x42;&lt;&zz"), "AB<&zz");
    }
}
