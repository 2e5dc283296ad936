//! ARNs in AWS's shape (alb-spec §8) for the load balancer, its listeners, rules and target
//! groups, and their parsing.
//!
//! Ids are stable hashes of names, so they survive restarts and reloads. These functions
//! mirror `proxy/src/model/arn.rs` (the ids the admin API, the metrics and the access log
//! show) digit for digit; the end-to-end tests compare the two through the admin API. The
//! region and account are parameters here: the API answers with the account of the caller's
//! access key when it is a 12-digit number (as moto does), else [`DEFAULT_ACCOUNT`].

use std::fmt;

/// The region of every ARN hostalb makes: one host, one region.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account of every ARN when the caller's access key id is not a 12-digit number.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// The name of the load balancer a configuration file defines.
pub const HOSTALB_LB_NAME: &str = "hostalb";

/// Region and account of the ARNs made for one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub region: String,
    pub account: String,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            region: DEFAULT_REGION.to_owned(),
            account: DEFAULT_ACCOUNT.to_owned(),
        }
    }
}

impl Scope {
    /// The scope for a caller: its access key id is its account when it is a 12-digit
    /// number (test setups use `123456789012`), else the default account.
    pub fn for_access_key(access_key_id: Option<&str>) -> Scope {
        let account = match access_key_id {
            Some(k) if k.len() == 12 && k.bytes().all(|b| b.is_ascii_digit()) => k.to_owned(),
            _ => DEFAULT_ACCOUNT.to_owned(),
        };
        Scope {
            region: DEFAULT_REGION.to_owned(),
            account,
        }
    }

    fn prefix(&self, service: &str) -> String {
        format!("arn:aws:{service}:{}:{}", self.region, self.account)
    }
}

/// A 16-hex-digit id: FNV-1a over the parts, each followed by a zero byte.
pub fn id16(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/LB/ID`.
pub fn load_balancer_arn(scope: &Scope, lb: &str) -> String {
    format!(
        "{}:loadbalancer/{}",
        scope.prefix("elasticloadbalancing"),
        load_balancer_dimension(lb)
    )
}

/// `...:listener/app/LB/LBID/ID`.
pub fn listener_arn(scope: &Scope, lb: &str, listener: &str) -> String {
    format!(
        "{}:listener/app/{lb}/{}/{}",
        scope.prefix("elasticloadbalancing"),
        id16(&[lb]),
        id16(&["listener", listener])
    )
}

/// `...:listener-rule/app/LB/LBID/LISTENERID/ID`; `priority` is `"default"` for the
/// default rule.
pub fn rule_arn(scope: &Scope, lb: &str, listener: &str, priority: &str) -> String {
    format!(
        "{}:listener-rule/app/{lb}/{}/{}/{}",
        scope.prefix("elasticloadbalancing"),
        id16(&[lb]),
        id16(&["listener", listener]),
        id16(&["rule", listener, priority])
    )
}

/// `...:targetgroup/NAME/ID`.
pub fn target_group_arn(scope: &Scope, name: &str) -> String {
    format!(
        "{}:{}",
        scope.prefix("elasticloadbalancing"),
        target_group_dimension(name)
    )
}

/// The load balancer as CloudWatch and the access log name it: `app/LB/ID`.
pub fn load_balancer_dimension(lb: &str) -> String {
    format!("app/{lb}/{}", id16(&[lb]))
}

/// A target group as CloudWatch names it: `targetgroup/NAME/ID`.
pub fn target_group_dimension(name: &str) -> String {
    format!("targetgroup/{name}/{}", id16(&["targetgroup", name]))
}

/// An ACM-shaped certificate ARN for a certificate file: a UUID-shaped id hashed from the
/// file's path.
pub fn certificate_arn(scope: &Scope, cert_file: &str) -> String {
    let a = id16(&["certificate", cert_file]);
    let b = id16(&["certificate-2", cert_file]);
    format!(
        "{}:certificate/{}-{}-{}-{}-{}",
        scope.prefix("acm"),
        &a[..8],
        &a[8..12],
        &a[12..16],
        &b[..4],
        &b[4..16]
    )
}

/// An ARN split at its colons: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth colon (`targetgroup/api/73e2d6bc24d8a067`).
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN; `None` when it has fewer than six parts or does not start with `arn`.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// What an ELBv2 ARN names, with the names and ids its resource part carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElbResource<'a> {
    LoadBalancer {
        name: &'a str,
        id: &'a str,
    },
    Listener {
        lb: &'a str,
        lb_id: &'a str,
        id: &'a str,
    },
    Rule {
        lb: &'a str,
        lb_id: &'a str,
        listener_id: &'a str,
        id: &'a str,
    },
    TargetGroup {
        name: &'a str,
        id: &'a str,
    },
}

impl<'a> ElbResource<'a> {
    /// Reads an ELBv2 ARN of an application load balancer's resources; `None` for anything
    /// else (another service, a network load balancer, a malformed ARN).
    pub fn parse(text: &'a str) -> Option<ElbResource<'a>> {
        let arn = Arn::parse(text)?;
        if arn.service != "elasticloadbalancing" {
            return None;
        }
        let parts: Vec<&str> = arn.resource.split('/').collect();
        match parts.as_slice() {
            ["loadbalancer", "app", name, id] => Some(ElbResource::LoadBalancer { name, id }),
            ["listener", "app", lb, lb_id, id] => Some(ElbResource::Listener { lb, lb_id, id }),
            ["listener-rule", "app", lb, lb_id, listener_id, id] => Some(ElbResource::Rule {
                lb,
                lb_id,
                listener_id,
                id,
            }),
            ["targetgroup", name, id] => Some(ElbResource::TargetGroup { name, id }),
            _ => None,
        }
    }
}

/// The ARN of the listener a rule belongs to: the rule's ARN less its last id, with
/// `listener-rule/` read as `listener/`.
pub fn listener_of_rule(rule_arn: &str) -> Option<String> {
    let arn = Arn::parse(rule_arn)?;
    let ElbResource::Rule {
        lb,
        lb_id,
        listener_id,
        ..
    } = ElbResource::parse(rule_arn)?
    else {
        return None;
    };
    Some(format!(
        "arn:{}:{}:{}:{}:listener/app/{lb}/{lb_id}/{listener_id}",
        arn.partition, arn.service, arn.region, arn.account
    ))
}

/// The ARN of the load balancer a listener belongs to.
pub fn load_balancer_of_listener(listener_arn: &str) -> Option<String> {
    let arn = Arn::parse(listener_arn)?;
    let ElbResource::Listener { lb, lb_id, .. } = ElbResource::parse(listener_arn)? else {
        return None;
    };
    Some(format!(
        "arn:{}:{}:{}:{}:loadbalancer/app/{lb}/{lb_id}",
        arn.partition, arn.service, arn.region, arn.account
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_alb_spec_section_8() {
        let s = Scope::default();
        let lb = load_balancer_arn(&s, "hostalb");
        assert_eq!(
            lb,
            format!(
                "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/hostalb/{}",
                id16(&["hostalb"])
            )
        );
        let l = listener_arn(&s, "hostalb", "web");
        let r = rule_arn(&s, "hostalb", "web", "10");
        let g = target_group_arn(&s, "api");
        for (arn, tail) in [
            (&lb, "loadbalancer/app/hostalb/"),
            (&l, "listener/app/hostalb/"),
            (&r, "listener-rule/app/hostalb/"),
            (&g, "targetgroup/api/"),
        ] {
            assert!(arn.contains(tail), "{arn}");
            let id = arn.rsplit('/').next().unwrap_or_default();
            assert_eq!(id.len(), 16, "{arn}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{arn}");
        }
        assert!(matches!(
            ElbResource::parse(&l),
            Some(ElbResource::Listener { lb: "hostalb", .. })
        ));
        assert_eq!(listener_of_rule(&r).as_deref(), Some(l.as_str()));
        assert_eq!(load_balancer_of_listener(&l).as_deref(), Some(lb.as_str()));
    }

    #[test]
    fn ids_are_fnv1a_over_zero_terminated_parts() {
        // Computed independently (FNV-1a 64, each part followed by a zero byte).
        assert_eq!(id16(&[]), "cbf29ce484222325");
        assert_eq!(id16(&["hostalb"]), "4be52f79763685f0");
        assert_eq!(id16(&["listener", "web"]), "3c942bbe3a1c2e81");
        assert_eq!(id16(&["targetgroup", "api"]), "db8244ebbc728fd1");
        assert_eq!(id16(&["rule", "web", "10"]), "8d095fda6b6c82e2");
        assert_ne!(id16(&["listener", "web"]), id16(&["listenerweb"]));
    }

    #[test]
    fn a_twelve_digit_access_key_is_the_account() {
        assert_eq!(
            Scope::for_access_key(Some("123456789012")).account,
            "123456789012"
        );
        assert_eq!(
            Scope::for_access_key(Some("AKIAIOSFODNN7EXAMPLE")).account,
            DEFAULT_ACCOUNT
        );
        assert_eq!(
            Scope::for_access_key(Some("12345678901")).account,
            DEFAULT_ACCOUNT
        );
        assert_eq!(Scope::for_access_key(None), Scope::default());
        let s = Scope::for_access_key(Some("123456789012"));
        assert!(
            target_group_arn(&s, "api")
                .starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/")
        );
        assert!(certificate_arn(&s, "/c.pem").starts_with("arn:aws:acm:us-east-1:123456789012:certificate/"));
    }

    #[test]
    fn parses_what_aws_and_moto_print() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/36311f970778a51d/3b150cd1662f5ddb/139753787735248";
        assert_eq!(
            ElbResource::parse(rule),
            Some(ElbResource::Rule {
                lb: "shop",
                lb_id: "36311f970778a51d",
                listener_id: "3b150cd1662f5ddb",
                id: "139753787735248"
            })
        );
        assert_eq!(
            listener_of_rule(rule).as_deref(),
            Some(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/36311f970778a51d/3b150cd1662f5ddb"
            )
        );
        assert_eq!(
            ElbResource::parse("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api/73e2d6bc24d8a067"),
            Some(ElbResource::TargetGroup {
                name: "api",
                id: "73e2d6bc24d8a067"
            })
        );
        assert_eq!(
            ElbResource::parse("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/n/1"),
            None
        );
        assert_eq!(ElbResource::parse("arn:aws:ecs:us-east-1:1:service/a/b"), None);
        assert_eq!(Arn::parse("not-an-arn"), None);
        let a = Arn::parse("arn:aws:ecs:us-east-1:1:task-definition/shop-api:1").unwrap();
        assert_eq!(a.resource, "task-definition/shop-api:1");
        assert_eq!(
            a.to_string(),
            "arn:aws:ecs:us-east-1:1:task-definition/shop-api:1"
        );
    }
}
