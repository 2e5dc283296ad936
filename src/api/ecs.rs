//! ECS's JSON 1.1 calls (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`),
//! served by `hostalb-ecs` on the Docker engine `[docker] endpoint` names. Its state lives
//! in the state file's `Ecs` member, shared with the ELBv2 side: whichever side writes
//! the file writes ECS's current state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hostalb_aws::json11::CONTENT_TYPE;
use hostalb_aws::query::Params;
use hostalb_ecs::{Ecs, HealthReader, Registrar, Shared, TargetChange};
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
                Ecs::new(shared, docker, saver, registrar(Arc::clone(&elbv2))).with_health(health(elbv2))
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
            let form = format!(
                "Action={action}&Version={}&TargetGroupArn={}&Targets.member.1.Id={}&Targets.member.1.Port={}",
                hostalb_aws::elbv2::API_VERSION,
                form_encode(&change.target_group_arn),
                change.ip,
                change.port
            );
            let params = Params::parse(&form).map_err(|e| e.to_string())?;
            let answer = elbv2.call(&params).await;
            if answer.status != 200 {
                return Err(failure(action, &answer));
            }
            if change.register {
                return Ok(Duration::ZERO);
            }
            // How long the target drains: the group's deregistration delay.
            let form = format!(
                "Action=DescribeTargetGroupAttributes&Version={}&TargetGroupArn={}",
                hostalb_aws::elbv2::API_VERSION,
                form_encode(&change.target_group_arn)
            );
            let params = Params::parse(&form).map_err(|e| e.to_string())?;
            let answer = elbv2.call(&params).await;
            if answer.status != 200 {
                return Err(failure("DescribeTargetGroupAttributes", &answer));
            }
            Ok(Duration::from_secs(deregistration_delay(
                &String::from_utf8_lossy(&answer.body),
            )))
        })
    })
}

/// A target's state through ELBv2's own DescribeTargetHealth.
fn health(elbv2: Arc<Elbv2>) -> HealthReader {
    Arc::new(move |tg: String, ip: std::net::IpAddr, port: u16| {
        let elbv2 = Arc::clone(&elbv2);
        Box::pin(async move {
            let form = format!(
                "Action=DescribeTargetHealth&Version={}&TargetGroupArn={}&Targets.member.1.Id={ip}&Targets.member.1.Port={port}",
                hostalb_aws::elbv2::API_VERSION,
                form_encode(&tg)
            );
            let params = Params::parse(&form).ok()?;
            let answer = elbv2.call(&params).await;
            if answer.status != 200 {
                return None;
            }
            target_state(&String::from_utf8_lossy(&answer.body))
        })
    })
}

/// `TargetHealth.State` of a DescribeTargetHealth answer for one target.
fn target_state(xml: &str) -> Option<String> {
    let (_, rest) = xml.split_once("<TargetHealth>")?;
    let (_, rest) = rest.split_once("<State>")?;
    let (state, _) = rest.split_once("</State>")?;
    Some(state.trim().to_owned())
}

/// The error of an ELBv2 answer, with its message.
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
}
