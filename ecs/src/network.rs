//! `awsvpc` on one host: each task gets its own network namespace and address, as an ENI
//! gives it on EC2. The task's pause container ([`crate::pause`]) is attached to the Docker
//! bridge network [`NETWORK`] and holds the namespace; the task's containers join it
//! (`container:` network mode), as the agent's containers join its pause container, so they
//! reach each other on `localhost`. The host routes to the bridge, so a target group of
//! type `ip` reaches the task at `{task address, containerPort}`; no host port is bound.
//!
//! `networkConfiguration.awsvpcConfiguration` (subnets, security groups, public IP) is
//! accepted and kept; on one host it selects nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::docker::{self, Owner};
use crate::driver::update;
use crate::model::TaskDefinition;
use crate::records::{Attachment, KeyValue, NetworkInterface, PRIVATE_IPV4};
use crate::{Inner, pause};

/// The Docker bridge network awsvpc tasks get their addresses on, made when the first such
/// task starts and kept (it stands for the VPC's subnet).
pub const NETWORK: &str = "hostalb-awsvpc";
/// Label marking what hostalb made on the engine.
pub const MADE_BY_LABEL: &str = "com.hostalb.made-by";

/// How long the container holding an awsvpc task's namespace may take to get its address
/// after it started (Docker gives it at start: this only bounds a slow engine).
const ADDRESS_PATIENCE: Duration = Duration::from_secs(10);
/// How often the address is looked for meanwhile.
const ADDRESS_EVERY: Duration = Duration::from_millis(100);

/// Labels of the network hostalb makes.
pub fn labels() -> HashMap<String, String> {
    HashMap::from([(MADE_BY_LABEL.to_owned(), "hostalb-ecs".to_owned())])
}

/// The task's `ElasticNetworkInterface` attachment, as DescribeTasks shows it on AWS, with
/// its address; `subnet`: the subnet to show, when one is known.
pub fn attachment(id: &str, eni: &str, ip: &str, subnet: Option<&str>) -> Attachment {
    let mut details = Vec::new();
    if let Some(s) = subnet {
        details.push(KeyValue {
            name: "subnetId".into(),
            value: s.to_owned(),
        });
    }
    details.push(KeyValue {
        name: "networkInterfaceId".into(),
        value: eni.to_owned(),
    });
    details.push(KeyValue {
        name: PRIVATE_IPV4.into(),
        value: ip.to_owned(),
    });
    Attachment {
        id: id.to_owned(),
        kind: "ElasticNetworkInterface".into(),
        status: "ATTACHED".into(),
        details,
    }
}

/// The interface as each container of the task shows it.
pub fn interface(attachment_id: &str, ip: &str) -> NetworkInterface {
    NetworkInterface {
        attachment_id: attachment_id.to_owned(),
        private_ipv4_address: ip.to_owned(),
    }
}

/// `networkConfiguration` of RunTask or CreateService: accepted for awsvpc task
/// definitions (kept, meaningless here), refused for the others as ECS refuses it.
pub fn check_configuration(
    mode: crate::model::NetworkMode,
    given: Option<&serde_json::Value>,
) -> Result<(), crate::EcsError> {
    let given = given.filter(|v| !v.is_null());
    match (mode, given) {
        (crate::model::NetworkMode::Awsvpc, _) | (_, None) => Ok(()),
        _ => Err(crate::EcsError::invalid(
            "Network Configuration is not valid for the given networkMode of this task definition.",
        )),
    }
}

/// CreateService of an awsvpc task definition: each load balancer's target group must be
/// of type `ip` (tasks register by address), as ECS requires; an `instance` group is
/// refused with ECS's message. Groups whose type cannot be read are left to
/// RegisterTargets.
pub(crate) async fn check_target_groups(
    inner: &crate::Inner,
    input: &serde_json::Value,
) -> Result<(), crate::EcsError> {
    let Some(read) = &inner.target_types else {
        return Ok(());
    };
    let Some(reference) = input.get("taskDefinition").and_then(serde_json::Value::as_str) else {
        return Ok(());
    };
    let Ok(td) = crate::ops::find_td_pub(inner, reference) else {
        return Ok(());
    };
    if td.mode() != crate::model::NetworkMode::Awsvpc {
        return Ok(());
    }
    let groups = input
        .get("loadBalancers")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|lb| lb.get("targetGroupArn").and_then(serde_json::Value::as_str));
    for tg in groups {
        if let Some(kind) = read(tg.to_owned()).await
            && kind != "ip"
        {
            return Err(crate::EcsError::invalid(format!(
                "The provided target group {tg} has target type {kind}, which is incompatible with the awsvpc network mode specified in the task definition."
            )));
        }
    }
    Ok(())
}

/// An id shaped as ECS's attachment ids (a UUID).
fn uuid_like() -> String {
    let h = crate::random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reads the address of the container holding the task's namespace and records it as the
/// task's network interface.
pub(crate) async fn record_address(inner: &Inner, arn: &str, id: &str) -> Result<(), String> {
    let ip = task_address(inner, id).await?;
    let attachment_id = uuid_like();
    let eni = format!("eni-{}", crate::random_hex(8));
    tracing::info!(task = %arn, address = %ip, "ECS: the awsvpc task's address");
    update(inner, arn, |t| {
        t.attachments = vec![attachment(&attachment_id, &eni, &ip, None)];
        for r in &mut t.containers {
            r.network_interfaces = vec![interface(&attachment_id, &ip)];
        }
    });
    Ok(())
}

/// Starts the task's pause container on [`NETWORK`] (its image made first when
/// the engine lacks it) and records the task's address; its Docker name.
pub(crate) async fn start_pause(
    inner: &Inner,
    arn: &str,
    td: &TaskDefinition,
    owner: &Owner<'_>,
    root: Vec<u8>,
) -> Result<String, String> {
    inner
        .engine
        .import_image(pause::REPOSITORY, pause::TAG, root)
        .await
        .map_err(|e| format!("the pause image {}: {e}", pause::IMAGE))?;
    let name = format!(
        "ecs-{}-{}-internalecspause-{}",
        td.family,
        owner.revision,
        crate::random_hex(10)
    );
    // Recorded before it exists, so that a stop (or a restarted hostalb) removes it.
    update(inner, arn, |t| t.pause_container = Some(name.clone()));
    let id = inner
        .engine
        .create(&name, docker::pause_body(owner))
        .await
        .map_err(|e| format!("the pause container: {e}"))?;
    inner
        .engine
        .start(&id)
        .await
        .map_err(|e| format!("the pause container: {e}"))?;
    record_address(inner, arn, &id).await?;
    Ok(name)
}

/// The address of an awsvpc task: its namespace holder's on [`NETWORK`].
async fn task_address(inner: &Inner, id: &str) -> Result<String, String> {
    let began = Instant::now();
    loop {
        if let Some(ip) = inner.engine.address_on(id, NETWORK).await? {
            return Ok(ip);
        }
        if began.elapsed() >= ADDRESS_PATIENCE {
            return Err(format!(
                "the container got no address on the Docker network {} within {} s",
                NETWORK,
                ADDRESS_PATIENCE.as_secs()
            ));
        }
        tokio::time::sleep(ADDRESS_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetworkMode;
    use serde_json::json;

    #[test]
    fn network_configuration_goes_with_awsvpc_only() {
        let given = json!({"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}});
        check_configuration(NetworkMode::Awsvpc, Some(&given)).unwrap();
        check_configuration(NetworkMode::Awsvpc, None).unwrap();
        check_configuration(NetworkMode::Bridge, None).unwrap();
        check_configuration(NetworkMode::Bridge, Some(&serde_json::Value::Null)).unwrap();
        let e = check_configuration(NetworkMode::Bridge, Some(&given)).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        let a = attachment("id-1", "eni-1", "172.18.0.2", Some("subnet-1"));
        let names: Vec<&str> = a.details.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["subnetId", "networkInterfaceId", "privateIPv4Address"]);
        assert_eq!(interface("id-1", "172.18.0.2").private_ipv4_address, "172.18.0.2");
    }
}
