//! Target groups: their settings, stickiness, health checks and code matchers.

use std::net::SocketAddr;

use serde_json::Value;

use super::{Ctx, STICKINESS_MAX_SECONDS, is_tchar};
use crate::defaults;
use crate::model::*;
use crate::raw::*;

pub(super) fn validate_target_group(cx: &mut Ctx, name: String, value: Value) -> Option<TargetGroup> {
    let path = format!("target_group.{name}");
    let raw: RawTargetGroup = cx.de(value, &path)?;
    if name.is_empty() {
        cx.error(
            &path,
            "a target group name cannot be empty",
            "name it, e.g. [target_group.api]",
        );
        return None;
    }
    if name.len() > 32
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        cx.limit(
            &path,
            format!("ALB target group names are 1-32 letters, digits and inner hyphens, not `{name}`"),
            "rename it, e.g. api-v2",
        );
    }
    let protocol = cx.choice(
        raw.protocol.as_deref(),
        &[
            ("HTTP", TargetGroupProtocol::Http),
            ("HTTPS", TargetGroupProtocol::Https),
        ],
        TargetGroupProtocol::Http,
        &format!("{path}.protocol"),
    );
    let protocol_version = cx.choice(
        raw.protocol_version.as_deref(),
        &[
            ("HTTP1", ProtocolVersion::Http1),
            ("HTTP2", ProtocolVersion::Http2),
            ("GRPC", ProtocolVersion::Grpc),
        ],
        ProtocolVersion::Http1,
        &format!("{path}.protocol_version"),
    );
    let target_type = match raw.target_type.as_deref() {
        Some(t @ ("lambda" | "alb")) => {
            cx.error(
                &format!("{path}.target_type"),
                format!("hostalb does not route to {t} targets"),
                "use instance (host ports) or ip (container addresses)",
            );
            TargetType::Instance
        }
        other => cx.choice(
            other,
            &[("instance", TargetType::Instance), ("ip", TargetType::Ip)],
            TargetType::Instance,
            &format!("{path}.target_type"),
        ),
    };
    let algorithm = cx.choice(
        raw.algorithm.as_deref(),
        &[
            ("round_robin", Algorithm::RoundRobin),
            ("least_outstanding_requests", Algorithm::LeastOutstandingRequests),
            ("weighted_random", Algorithm::WeightedRandom),
        ],
        Algorithm::RoundRobin,
        &format!("{path}.algorithm"),
    );
    let deregistration_delay = cx.seconds(
        raw.deregistration_delay_seconds,
        defaults::DEREGISTRATION_DELAY,
        &format!("{path}.deregistration_delay_seconds"),
    );
    cx.seconds_range(
        deregistration_delay,
        0.0,
        3600.0,
        &format!("{path}.deregistration_delay_seconds"),
        "deregistration delays",
    );
    let slow_start = cx.seconds(
        raw.slow_start_seconds,
        defaults::SLOW_START,
        &format!("{path}.slow_start_seconds"),
    );
    if !slow_start.is_zero() {
        cx.seconds_range(
            slow_start,
            30.0,
            900.0,
            &format!("{path}.slow_start_seconds"),
            "slow start (or 0 for off)",
        );
        match algorithm {
            Algorithm::LeastOutstandingRequests => cx.limit(
                &format!("{path}.slow_start_seconds"),
                "ALB does not allow slow start with least_outstanding_requests",
                "use round_robin, or set slow_start_seconds = 0",
            ),
            Algorithm::WeightedRandom => cx.limit(
                &format!("{path}.slow_start_seconds"),
                "ALB does not allow slow start with weighted_random",
                "use round_robin, or set slow_start_seconds = 0",
            ),
            Algorithm::RoundRobin => {}
        }
    }
    let stickiness = raw
        .stickiness
        .and_then(|s| validate_stickiness(cx, s, &format!("{path}.stickiness")));

    let mut targets: Vec<SocketAddr> = Vec::new();
    for (i, t) in raw.targets.unwrap_or_default().iter().enumerate() {
        let tpath = format!("{path}.targets[{i}]");
        match t.parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => cx.error(
                &tpath,
                format!("`{t}` has port 0"),
                "give the port the target listens on",
            ),
            Ok(a) if targets.contains(&a) => cx.limit(
                &tpath,
                format!("`{t}` is registered twice"),
                "list each target once",
            ),
            Ok(a) => targets.push(a),
            Err(_) => cx.error(
                &tpath,
                format!("`{t}` is not an IP:port"),
                "write e.g. 127.0.0.1:9001 or [::1]:9001 (no host names)",
            ),
        }
    }
    let health_check = validate_health_check(
        cx,
        raw.health_check.unwrap_or_default(),
        &format!("{path}.health_check"),
        protocol,
        protocol_version,
    );
    let docker = raw.docker.and_then(|d| {
        let container_port = match d.container_port {
            None => None,
            Some(p) => match u16::try_from(p) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    cx.error(
                        &format!("{path}.docker.container_port"),
                        format!("{p} is not a port"),
                        "use the port the container listens on, 1 to 65535",
                    );
                    return None;
                }
            },
        };
        Some(DockerSelector {
            labels: d.labels,
            container_port,
        })
    });
    Some(TargetGroup {
        name,
        protocol,
        protocol_version,
        target_type,
        algorithm,
        deregistration_delay,
        slow_start,
        stickiness,
        targets,
        health_check,
        docker,
        use_docker_health: raw.use_docker_health.unwrap_or(false),
        retry_idempotent: raw.retry_idempotent.unwrap_or(true),
    })
}

fn validate_stickiness(cx: &mut Ctx, raw: RawStickiness, path: &str) -> Option<Stickiness> {
    if raw.enabled == Some(false) {
        return None;
    }
    let duration = cx.seconds(
        raw.duration_seconds,
        defaults::STICKINESS_DURATION,
        &format!("{path}.duration_seconds"),
    );
    let secs = duration.as_secs_f64();
    if secs == 0.0 {
        cx.error(
            &format!("{path}.duration_seconds"),
            "stickiness for 0 seconds",
            "use 1 to 604800, or enabled = false",
        );
        return None;
    }
    if !(1.0..=STICKINESS_MAX_SECONDS).contains(&secs) {
        cx.limit(
            &format!("{path}.duration_seconds"),
            format!("ALB stickiness lasts 1 to 604800 seconds, not {secs}"),
            "use 1 to 604800",
        );
    }
    match raw.kind.as_deref() {
        Some("lb_cookie") => {
            if raw.cookie_name.is_some() {
                cx.error(
                    &format!("{path}.cookie_name"),
                    "cookie_name is for app_cookie stickiness",
                    "remove it, or use type = \"app_cookie\"",
                );
            }
            Some(Stickiness::LbCookie { duration })
        }
        Some("app_cookie") => {
            let Some(cookie_name) = raw.cookie_name else {
                cx.error(
                    &format!("{path}.cookie_name"),
                    "app_cookie stickiness needs the application's cookie name",
                    "add cookie_name = \"SESSIONID\"",
                );
                return None;
            };
            if cookie_name.is_empty() || !cookie_name.bytes().all(is_tchar) {
                cx.error(
                    &format!("{path}.cookie_name"),
                    format!("`{cookie_name}` is not a cookie name"),
                    "use letters, digits, '-' and '_'",
                );
                return None;
            }
            if ["AWSALB", "AWSALBAPP", "AWSALBTG"]
                .iter()
                .any(|p| cookie_name.starts_with(p))
            {
                cx.error(
                    &format!("{path}.cookie_name"),
                    format!("`{cookie_name}` starts with a name the load balancer uses itself"),
                    "use the application's own cookie name",
                );
                return None;
            }
            Some(Stickiness::AppCookie {
                cookie_name,
                duration,
            })
        }
        Some(other) => {
            cx.error(
                &format!("{path}.type"),
                format!("unknown stickiness type `{other}`"),
                "use lb_cookie or app_cookie",
            );
            None
        }
        None => {
            cx.error(
                &format!("{path}.type"),
                "missing stickiness type",
                "add type = \"lb_cookie\" or \"app_cookie\"",
            );
            None
        }
    }
}

fn validate_health_check(
    cx: &mut Ctx,
    raw: RawHealthCheck,
    path: &str,
    protocol: TargetGroupProtocol,
    version: ProtocolVersion,
) -> HealthCheck {
    let grpc = version == ProtocolVersion::Grpc;
    let hc_protocol = cx.choice(
        raw.protocol.as_deref(),
        &[
            ("HTTP", TargetGroupProtocol::Http),
            ("HTTPS", TargetGroupProtocol::Https),
        ],
        protocol,
        &format!("{path}.protocol"),
    );
    let hc_path = raw.path.unwrap_or_else(|| {
        if grpc {
            defaults::HEALTH_CHECK_PATH_GRPC
        } else {
            defaults::HEALTH_CHECK_PATH
        }
        .to_owned()
    });
    if !hc_path.starts_with('/') {
        cx.error(
            &format!("{path}.path"),
            format!("`{hc_path}` must start with `/`"),
            "write e.g. \"/health\"",
        );
    } else if hc_path.len() > 1024 {
        cx.limit(
            &format!("{path}.path"),
            "ALB health-check paths are at most 1024 characters",
            "shorten it",
        );
    }
    if hc_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        cx.error(
            &format!("{path}.path"),
            "the health-check path has spaces or control characters",
            "percent-encode them",
        );
    }
    let port = match raw.port {
        None => HealthCheckPort::TrafficPort,
        Some(Scalar::Str(s)) if s == "traffic-port" => HealthCheckPort::TrafficPort,
        Some(p) => {
            let n = match &p {
                Scalar::Int(n) => u16::try_from(*n).ok(),
                Scalar::Str(s) => s.parse::<u16>().ok(),
            };
            match n {
                Some(n) if n > 0 => HealthCheckPort::Port(n),
                _ => {
                    cx.error(
                        &format!("{path}.port"),
                        format!("`{p}` is not a port"),
                        "use \"traffic-port\" or 1 to 65535",
                    );
                    HealthCheckPort::TrafficPort
                }
            }
        }
    };
    let interval = cx.seconds(
        raw.interval_seconds,
        defaults::HEALTH_CHECK_INTERVAL,
        &format!("{path}.interval_seconds"),
    );
    let timeout = cx.seconds(
        raw.timeout_seconds,
        defaults::HEALTH_CHECK_TIMEOUT,
        &format!("{path}.timeout_seconds"),
    );
    if interval.is_zero() {
        cx.error(
            &format!("{path}.interval_seconds"),
            "must be more than 0",
            "ALB's default is 30",
        );
    } else {
        cx.seconds_range(
            interval,
            5.0,
            300.0,
            &format!("{path}.interval_seconds"),
            "health-check intervals",
        );
    }
    if timeout.is_zero() {
        cx.error(
            &format!("{path}.timeout_seconds"),
            "must be more than 0",
            "ALB's default is 5",
        );
    } else {
        cx.seconds_range(
            timeout,
            2.0,
            120.0,
            &format!("{path}.timeout_seconds"),
            "health-check timeouts",
        );
    }
    if timeout >= interval && !interval.is_zero() {
        cx.error(
            &format!("{path}.timeout_seconds"),
            format!(
                "timeout {}s is not shorter than interval {}s: probes would overlap",
                timeout.as_secs_f64(),
                interval.as_secs_f64()
            ),
            "make timeout_seconds smaller than interval_seconds",
        );
    }
    let mut threshold = |value: Option<i64>, default: u32, key: &str| -> u32 {
        match value {
            None => default,
            Some(n) if !(1..=1000).contains(&n) => {
                cx.error(
                    &format!("{path}.{key}"),
                    format!("{n} is not a usable count"),
                    "use 2 to 10",
                );
                default
            }
            Some(n) => {
                if !(2..=10).contains(&n) {
                    cx.limit(
                        &format!("{path}.{key}"),
                        format!("ALB thresholds run from 2 to 10, not {n}"),
                        "use 2 to 10",
                    );
                }
                n as u32
            }
        }
    };
    let healthy_threshold = threshold(
        raw.healthy_threshold,
        defaults::HEALTHY_THRESHOLD,
        "healthy_threshold",
    );
    let unhealthy_threshold = threshold(
        raw.unhealthy_threshold,
        defaults::UNHEALTHY_THRESHOLD,
        "unhealthy_threshold",
    );
    let matcher_text = match raw.matcher {
        None => if grpc {
            defaults::HEALTH_CHECK_MATCHER_GRPC
        } else {
            defaults::HEALTH_CHECK_MATCHER
        }
        .to_owned(),
        Some(Scalar::Int(n)) => n.to_string(),
        Some(Scalar::Str(s)) => s,
    };
    let matcher = parse_code_matcher(cx, &matcher_text, &format!("{path}.matcher"), grpc);
    HealthCheck {
        enabled: raw.enabled.unwrap_or(true),
        protocol: hc_protocol,
        protocol_version: version,
        path: hc_path,
        port,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        matcher,
    }
}

/// ALB's `Matcher`: `HttpCode` 200-499, or for GRPC groups `GrpcCode` 0-99 (outside
/// either range: an ALB limit, a warning unless strict_alb).
fn parse_code_matcher(cx: &mut Ctx, text: &str, path: &str, grpc: bool) -> CodeMatcher {
    let (lo_limit, hi_limit) = if grpc { (0, 99) } else { (200, 499) };
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let parsed = match part.split_once('-') {
            Some((a, b)) => a.trim().parse::<u16>().ok().zip(b.trim().parse::<u16>().ok()),
            None => part.parse::<u16>().ok().map(|c| (c, c)),
        };
        match parsed {
            Some((lo, hi)) if lo <= hi && hi <= 599 => {
                if lo < lo_limit || hi > hi_limit {
                    cx.limit(
                        path,
                        format!("ALB matches codes {lo_limit}-{hi_limit}, not `{part}`"),
                        if grpc {
                            "use gRPC status codes from 0 to 99 (0 OK, 12 UNIMPLEMENTED, the default)"
                                .to_owned()
                        } else {
                            format!("use codes from {lo_limit} to {hi_limit}")
                        },
                    );
                }
                ranges.push((lo, hi));
            }
            _ => {
                cx.error(
                    path,
                    format!("`{part}` is not a code or a range"),
                    if grpc {
                        "write \"12\", \"0,12\" or \"0-99\""
                    } else {
                        "write \"200\", \"200,202\" or \"200-299\""
                    },
                );
            }
        }
    }
    if ranges.is_empty() {
        ranges.push(if grpc { (12, 12) } else { (200, 200) });
    }
    CodeMatcher {
        source: text.to_owned(),
        ranges,
    }
}
