//! Active health checks as ALB runs them, and the target states they drive
//! (alb-spec §3, DescribeTargetHealth).
//!
//! A probe is what ALB sends: `GET <path>` with `User-Agent: ELB-HealthChecker/2.0` and
//! `Host: <target ip>[:<port> unless the default]`, the connection closed after each
//! probe. A new target is probed at once; later probes follow every interval, each target
//! at its own random phase so that many targets never fire in lockstep.
//!
//! Groups with protocol version HTTP2 or GRPC are probed over HTTP/2
//! ([`crate::control::health_h2`]: a gRPC call for GRPC groups).
//!
//! The states and their counting are [`crate::model::health`]. States: a registered
//! target is `initial` until its first probe passes (one pass is
//! enough, as ALB documents), then `healthy`; `unhealthy_threshold` consecutive failures
//! make it `unhealthy`, and only `healthy_threshold` consecutive passes bring it back.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use hostalb_config::{HealthCheck, HealthCheckPort, TargetGroupProtocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::control::health_h2;
use crate::model::health::Probe;

/// The longest probe response head read; anything longer fails the check.
const MAX_PROBE_HEAD: usize = 32 * 1024;

/// The address a probe goes to: the target's IP and the health-check port.
pub(crate) fn probe_address(target: SocketAddr, hc: &HealthCheck) -> SocketAddr {
    match hc.port {
        HealthCheckPort::TrafficPort => target,
        HealthCheckPort::Port(p) => SocketAddr::new(target.ip(), p),
    }
}

/// The `Host` (HTTP/2: `:authority`) ALB probes with: the target's IP, and the port
/// unless it is the protocol's default.
pub(crate) fn probe_host(addr: SocketAddr, hc: &HealthCheck) -> String {
    let default_port = match hc.protocol {
        TargetGroupProtocol::Http => 80,
        TargetGroupProtocol::Https => 443,
    };
    match (addr.ip(), addr.port() == default_port) {
        (IpAddr::V6(ip), true) => format!("[{ip}]"),
        (IpAddr::V6(ip), false) => format!("[{ip}]:{}", addr.port()),
        (ip, true) => ip.to_string(),
        (ip, false) => format!("{ip}:{}", addr.port()),
    }
}

/// The probe request ALB sends.
pub(crate) fn probe_request(addr: SocketAddr, hc: &HealthCheck) -> Vec<u8> {
    let host = probe_host(addr, hc);
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ELB-HealthChecker/2.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        hc.path
    )
    .into_bytes()
}

/// Sends one probe within the check's timeout.
pub(crate) async fn probe(
    addr: SocketAddr,
    hc: &HealthCheck,
    tls: Option<&crate::data::upstream::TlsConnector>,
) -> Probe {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.map_err(|_| Probe::Failed)?;
        let _ = stream.set_nodelay(true);
        if health_h2::speaks_h2(hc) {
            return Ok(health_h2::probe(stream, addr, hc).await);
        }
        match (hc.protocol, tls) {
            (TargetGroupProtocol::Https, Some(connector)) => {
                let tls_stream = connector.connect(addr, stream).await.map_err(|_| Probe::Failed)?;
                exchange(tls_stream, addr, hc).await
            }
            _ => exchange(stream, addr, hc).await,
        }
    };
    match tokio::time::timeout(hc.timeout, attempt).await {
        Err(_) => Probe::Timeout,
        Ok(Err(p)) | Ok(Ok(p)) => p,
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    hc: &HealthCheck,
) -> Result<Probe, Probe> {
    stream
        .write_all(&probe_request(addr, hc))
        .await
        .map_err(|_| Probe::Failed)?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let code = resp.code.unwrap_or(0);
                return Ok(if hc.matcher.matches(code) {
                    Probe::Pass
                } else {
                    Probe::CodeMismatch(code)
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_PROBE_HEAD => {}
            _ => return Err(Probe::Failed),
        }
        buf.reserve(1024);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(Probe::Failed),
            Ok(_) => {}
        }
    }
}

/// The random phase before a target's second probe, spreading targets over the interval.
pub(crate) fn phase(interval: Duration) -> Duration {
    let micros = interval.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(crate::rng::below(micros.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostalb_config::CodeMatcher;
    use tokio::net::TcpListener;

    fn hc(path: &str, matcher: &str, timeout_ms: u64) -> HealthCheck {
        let ranges = matcher
            .split(',')
            .map(|p| match p.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (p.parse().unwrap(), p.parse().unwrap()),
            })
            .collect();
        HealthCheck {
            enabled: true,
            protocol: TargetGroupProtocol::Http,
            protocol_version: hostalb_config::ProtocolVersion::Http1,
            path: path.into(),
            port: HealthCheckPort::TrafficPort,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(timeout_ms),
            healthy_threshold: 3,
            unhealthy_threshold: 2,
            matcher: CodeMatcher {
                source: matcher.into(),
                ranges,
            },
        }
    }

    /// A one-shot server answering `reply` and returning the request it received.
    async fn server(reply: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            if !reply.is_empty() {
                s.write_all(reply).await.unwrap();
            } else {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            req
        });
        (addr, task)
    }

    #[tokio::test]
    async fn probe_sends_what_alb_sends_and_passes_on_a_matching_code() {
        let (addr, task) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(
            probe(addr, &hc("/health?deep=1", "200", 1000), None).await,
            Probe::Pass
        );
        let req = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(req.starts_with("GET /health?deep=1 HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", addr.port())),
            "{req}"
        );
        assert!(req.contains("\r\nUser-Agent: ELB-HealthChecker/2.0\r\n"), "{req}");
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
    }

    #[tokio::test]
    async fn probe_outcomes() {
        let (addr, _t) = server(b"HTTP/1.1 503 Busy\r\n\r\n").await;
        assert_eq!(
            probe(addr, &hc("/", "200-299", 1000), None).await,
            Probe::CodeMismatch(503)
        );
        let (addr, _t) = server(b"HTTP/1.1 202 Accepted\r\n\r\n").await;
        assert_eq!(probe(addr, &hc("/", "200,202", 1000), None).await, Probe::Pass);
        let (addr, _t) = server(b"").await;
        assert_eq!(probe(addr, &hc("/", "200", 100), None).await, Probe::Timeout);
        let (addr, _t) = server(b"garbage\r\n\r\n").await;
        assert_eq!(probe(addr, &hc("/", "200", 1000), None).await, Probe::Failed);
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(probe(closed, &hc("/", "200", 1000), None).await, Probe::Failed);
    }

    #[test]
    fn host_leaves_out_the_default_port() {
        let check = hc("/", "200", 1000);
        let req = String::from_utf8(probe_request("10.0.0.1:80".parse().unwrap(), &check)).unwrap();
        assert!(req.contains("\r\nHost: 10.0.0.1\r\n"));
        let req = String::from_utf8(probe_request("[::1]:8080".parse().unwrap(), &check)).unwrap();
        assert!(req.contains("\r\nHost: [::1]:8080\r\n"));
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let phases: Vec<Duration> = (0..100).map(|_| phase(interval)).collect();
        assert!(phases.iter().all(|p| *p < interval));
        assert!(
            phases.iter().any(|p| *p < Duration::from_secs(3))
                && phases.iter().any(|p| *p > Duration::from_secs(7))
        );
    }
}
