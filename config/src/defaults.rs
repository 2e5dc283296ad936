//! Every default hostalb applies, each with the reason it has that value.
//!
//! Where ALB documents a default, hostalb uses it, so that a service sees the same
//! behaviour behind hostalb as behind ALB.

use std::time::Duration;

/// Admin API address: loopback only, so a fresh install exposes nothing to the network.
pub const ADMIN_ADDRESS: &str = "127.0.0.1:9901";
/// Listeners the AWS API creates bind loopback: a local stand-in for a load balancer
/// exposes nothing to the network unless asked (`[admin] api_listener_address`).
pub const API_LISTENER_ADDRESS: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// The AWS API's state file name, beside the configuration file.
pub const STATE_FILE_NAME: &str = "hostalb.state.json";

/// Where a port published on `0.0.0.0` / `::` is reached from the host itself.
pub const DOCKER_HOST_ADDRESS: &str = "127.0.0.1";
/// Full list-and-reconcile period: Docker's event stream is lossy (it skips slow
/// subscribers and forgets history on restart), so hostalb re-lists this often.
pub const DOCKER_RESYNC: Duration = Duration::from_secs(30);

/// ALB `idle_timeout.timeout_seconds` default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a client may take to send one whole request head. ALB has no separate
/// setting; hyper's default is 30 s, long enough for any real client and short enough
/// that a slowloris client holds a connection for bounded time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// ALB `client_keep_alive.seconds` default: a client connection lives at most this long.
pub const CLIENT_KEEP_ALIVE: Duration = Duration::from_secs(3600);

/// ALB `deregistration_delay.timeout_seconds` default.
pub const DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
/// ALB `slow_start.duration_seconds` default (off).
pub const SLOW_START: Duration = Duration::ZERO;
/// ALB `stickiness.*.duration_seconds` default: one day.
pub const STICKINESS_DURATION: Duration = Duration::from_secs(86_400);

/// ALB health-check defaults (HTTP/HTTPS target groups).
pub const HEALTH_CHECK_PATH: &str = "/";
/// gRPC target groups probe this path by default, as ALB does.
pub const HEALTH_CHECK_PATH_GRPC: &str = "/AWS.ALB/healthcheck";
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(30);
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
pub const HEALTHY_THRESHOLD: u32 = 5;
pub const UNHEALTHY_THRESHOLD: u32 = 2;
pub const HEALTH_CHECK_MATCHER: &str = "200";
/// gRPC status codes ALB accepts by default (12 = UNIMPLEMENTED).
pub const HEALTH_CHECK_MATCHER_GRPC: &str = "12";

/// Body of the fixed-response default action used when a listener names none.
pub const DEFAULT_ACTION_BODY: &str = "no rule matched";
