//! ARNs and dimensions in AWS's shape for the load balancer, its listeners, rules and
//! target groups: the admin API, metrics and the access log name things the same way.
//! Ids are stable hashes of the names, so they survive restarts and reloads.

/// The load balancer's name in ARNs and metric dimensions.
const LB_NAME: &str = "hostalb";
/// Region and account of every ARN hostalb shows (AWS's shape, alb-spec §8).
const ARN_PREFIX: &str = "arn:aws:elasticloadbalancing:us-east-1:000000000000";

/// A 16-hex-digit id: FNV-1a over the parts, each followed by a zero byte.
pub(crate) fn id16(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub(crate) fn lb_arn() -> String {
    format!("{ARN_PREFIX}:loadbalancer/app/{LB_NAME}/{}", id16(&[LB_NAME]))
}

pub(crate) fn listener_arn(name: &str) -> String {
    format!(
        "{ARN_PREFIX}:listener/app/{LB_NAME}/{}/{}",
        id16(&[LB_NAME]),
        id16(&["listener", name])
    )
}

pub(crate) fn rule_arn(listener: &str, priority: &str) -> String {
    format!(
        "{ARN_PREFIX}:listener-rule/app/{LB_NAME}/{}/{}/{}",
        id16(&[LB_NAME]),
        id16(&["listener", listener]),
        id16(&["rule", listener, priority])
    )
}

pub(crate) fn group_arn(name: &str) -> String {
    format!("{ARN_PREFIX}:{}", group_dimension(name))
}

/// The load balancer as CloudWatch and the access log name it: `app/<name>/<id>`.
pub(crate) fn lb_dimension() -> String {
    format!("app/{LB_NAME}/{}", id16(&[LB_NAME]))
}

/// A target group as CloudWatch names it: `targetgroup/<name>/<id>`.
pub(crate) fn group_dimension(name: &str) -> String {
    format!("targetgroup/{name}/{}", id16(&["targetgroup", name]))
}

/// An ACM-shaped certificate ARN for a certificate file (ALB logs the presented
/// certificate's ARN): a UUID-shaped id hashed from the file's path.
pub(crate) fn certificate_arn(cert_file: &str) -> String {
    let a = id16(&["certificate", cert_file]);
    let b = id16(&["certificate-2", cert_file]);
    format!(
        "arn:aws:acm:us-east-1:000000000000:certificate/{}-{}-{}-{}-{}",
        &a[..8],
        &a[8..12],
        &a[12..16],
        &b[..4],
        &b[4..16]
    )
}
