//! Health probes over HTTP/2, for target groups whose targets speak it: `GRPC` groups get
//! ALB's gRPC health check, `HTTP2` groups an HTTP/2 `GET` (HTTP1 groups keep the HTTP/1.1
//! probe of [`crate::control::health`]).
//!
//! The gRPC probe is a unary call as a gRPC client makes it: `POST <path>` (ALB's default
//! `/AWS.ALB/healthcheck`) with `content-type: application/grpc`, `te: trailers` and one
//! empty message (five zero bytes: not compressed, length 0). Its result is the
//! `grpc-status` of the trailers, or of the headers for a trailers-only answer, matched
//! against the group's `GrpcCode` matcher (default `12`: a gRPC server without a handler
//! for the path answers UNIMPLEMENTED, which proves it is up and speaking gRPC). A reply
//! without any `grpc-status` is read as a gRPC client reads it: from the HTTP status (the
//! gRPC spec's mapping, e.g. 404 -> 12, 503 -> 14), and a `200` without one fails the
//! check as a malformed reply.
//!
//! Over HTTPS the probe offers ALPN `h2` only; over HTTP it speaks HTTP/2 with prior
//! knowledge (h2c), as gRPC over cleartext does. One connection per probe, closed after
//! it, as ALB does.

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use hostalb_config::{HealthCheck, ProtocolVersion, TargetGroupProtocol};
use http::{HeaderMap, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::control::health::probe_host;
use crate::data::upstream::{H2_ALPN, TlsConnector};
use crate::model::health::Probe;

/// The empty gRPC message a probe sends: flag 0 (not compressed), length 0.
const EMPTY_GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];
/// The most response body a probe reads before its trailers; a health answer is tiny, and
/// a target streaming more is not answering a health check.
const MAX_PROBE_BODY: usize = 64 * 1024;
// gRPC status codes of the gRPC spec's HTTP-to-gRPC mapping
// (doc/http-grpc-status-mapping.md), for a reply that carries no `grpc-status`.
/// HTTP 400.
const GRPC_INTERNAL: u16 = 13;
/// HTTP 401.
const GRPC_UNAUTHENTICATED: u16 = 16;
/// HTTP 403.
const GRPC_PERMISSION_DENIED: u16 = 7;
/// HTTP 404: no such method, as a gRPC server without the handler answers.
const GRPC_UNIMPLEMENTED: u16 = 12;
/// HTTP 429, 502, 503 and 504.
const GRPC_UNAVAILABLE: u16 = 14;
/// Every other HTTP status.
const GRPC_UNKNOWN: u16 = 2;

/// Whether a group's probes go over HTTP/2.
pub(crate) fn speaks_h2(hc: &HealthCheck) -> bool {
    hc.protocol_version != ProtocolVersion::Http1
}

/// The connector for HTTPS probes over HTTP/2 (ALPN `h2`), built on first use.
fn h2_connector() -> Option<&'static TlsConnector> {
    // OnceLock: built once by the first HTTPS HTTP/2 probe, read without a lock after.
    static CONNECTOR: OnceLock<Option<TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            TlsConnector::with_alpn(&[H2_ALPN])
                .map_err(|e| tracing::error!(error = %e, "no TLS for HTTP/2 health checks"))
                .ok()
        })
        .as_ref()
}

/// One HTTP/2 probe on a connected socket (TLS first for HTTPS checks). The caller bounds
/// it with the check's timeout.
pub(crate) async fn probe(stream: TcpStream, addr: SocketAddr, hc: &HealthCheck) -> Probe {
    match hc.protocol {
        TargetGroupProtocol::Https => {
            let Some(connector) = h2_connector() else {
                return Probe::Failed;
            };
            match connector.connect(addr, stream).await {
                Ok(tls) => exchange(tls, addr, hc).await,
                Err(_) => Probe::Failed,
            }
        }
        TargetGroupProtocol::Http => exchange(stream, addr, hc).await,
    }
}

async fn exchange<S>(io: S, addr: SocketAddr, hc: &HealthCheck) -> Probe
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok((client, connection)) = h2::client::handshake(io).await else {
        return Probe::Failed;
    };
    let call = call(client, addr, hc);
    tokio::pin!(call);
    // The connection task is driven here rather than spawned, so that the probe timeout
    // (which drops this future) also ends the connection.
    tokio::select! {
        biased;
        probe = &mut call => probe,
        // The connection ended before the answer was complete.
        _ = connection => Probe::Failed,
    }
}

/// Sends the probe request and reads its result.
async fn call(client: h2::client::SendRequest<Bytes>, addr: SocketAddr, hc: &HealthCheck) -> Probe {
    let grpc = hc.protocol_version == ProtocolVersion::Grpc;
    let Some(request) = request(addr, hc, grpc) else {
        return Probe::Failed;
    };
    let Ok(mut client) = client.ready().await else {
        return Probe::Failed;
    };
    let Ok((response, mut body)) = client.send_request(request, !grpc) else {
        return Probe::Failed;
    };
    if grpc
        && body
            .send_data(Bytes::from_static(EMPTY_GRPC_MESSAGE), true)
            .is_err()
    {
        return Probe::Failed;
    }
    let Ok(response) = response.await else {
        return Probe::Failed;
    };
    let status = response.status();
    if !grpc {
        return judge(status.as_u16(), hc);
    }
    if let Some(code) = grpc_status(response.headers()) {
        // A trailers-only answer: the status came with the headers.
        return code.map_or(Probe::Failed, |c| judge(c, hc));
    }
    let mut body = response.into_body();
    let mut read = 0usize;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return Probe::Failed;
        };
        read += chunk.len();
        if read > MAX_PROBE_BODY {
            return Probe::Failed;
        }
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = match body.trailers().await {
        Ok(t) => t,
        Err(_) => return Probe::Failed,
    };
    match trailers.as_ref().and_then(grpc_status) {
        Some(Some(code)) => judge(code, hc),
        Some(None) => Probe::Failed,
        None if status == StatusCode::OK => Probe::Failed,
        None => judge(grpc_code_of_http(status), hc),
    }
}

/// The probe request: a gRPC call for GRPC groups, a `GET` for HTTP2 groups, with ALB's
/// `User-Agent` and the `:authority` ALB puts in `Host`.
fn request(addr: SocketAddr, hc: &HealthCheck, grpc: bool) -> Option<Request<()>> {
    let scheme = match hc.protocol {
        TargetGroupProtocol::Http => "http",
        TargetGroupProtocol::Https => "https",
    };
    let uri = format!("{scheme}://{}{}", probe_host(addr, hc), hc.path);
    let builder = Request::builder()
        .uri(uri)
        .header(http::header::USER_AGENT, "ELB-HealthChecker/2.0");
    let builder = if grpc {
        builder
            .method(Method::POST)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
    } else {
        builder.method(Method::GET).header(http::header::ACCEPT, "*/*")
    };
    builder.body(()).ok()
}

/// `grpc-status` in these headers: `None` when absent, `Some(None)` when not a number.
fn grpc_status(headers: &HeaderMap) -> Option<Option<u16>> {
    let value = headers.get("grpc-status")?;
    Some(value.to_str().ok().and_then(|v| v.trim().parse().ok()))
}

/// The gRPC status a gRPC client reports for a reply without `grpc-status`.
fn grpc_code_of_http(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => GRPC_INTERNAL,
        401 => GRPC_UNAUTHENTICATED,
        403 => GRPC_PERMISSION_DENIED,
        404 => GRPC_UNIMPLEMENTED,
        429 | 502..=504 => GRPC_UNAVAILABLE,
        _ => GRPC_UNKNOWN,
    }
}

fn judge(code: u16, hc: &HealthCheck) -> Probe {
    if hc.matcher.matches(code) {
        Probe::Pass
    } else {
        Probe::CodeMismatch(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostalb_config::{CodeMatcher, HealthCheckPort};
    use std::time::Duration;
    use tokio::net::TcpListener;

    fn hc(version: ProtocolVersion, path: &str, lo: u16, hi: u16) -> HealthCheck {
        HealthCheck {
            enabled: true,
            protocol: TargetGroupProtocol::Http,
            protocol_version: version,
            path: path.into(),
            port: HealthCheckPort::TrafficPort,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            matcher: CodeMatcher {
                source: format!("{lo}-{hi}"),
                ranges: vec![(lo, hi)],
            },
        }
    }

    /// An h2c server answering one request as `answer` says; returns the request it got
    /// (head and body).
    async fn server<F>(
        answer: F,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<(http::request::Parts, Vec<u8>)>,
    )
    where
        F: FnOnce(&mut h2::server::SendResponse<Bytes>) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::handshake(tcp).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let (parts, mut body) = req.into_parts();
            let mut got = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                got.extend_from_slice(&chunk);
            }
            answer(&mut respond);
            // Keep the connection going until the client leaves.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = conn.accept().await {}
            })
            .await;
            (parts, got)
        });
        (addr, task)
    }

    fn trailers_only(code: &'static str) -> impl FnOnce(&mut h2::server::SendResponse<Bytes>) {
        move |respond| {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", code)
                .body(())
                .unwrap();
            respond.send_response(resp, true).unwrap();
        }
    }

    #[tokio::test]
    async fn grpc_probe_sends_a_grpc_call_and_reads_a_trailers_only_status() {
        let (addr, task) = server(trailers_only("12")).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let check = hc(ProtocolVersion::Grpc, "/AWS.ALB/healthcheck", 12, 12);
        assert_eq!(probe(tcp, addr, &check).await, Probe::Pass);
        let (parts, body) = task.await.unwrap();
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri.path(), "/AWS.ALB/healthcheck");
        assert_eq!(
            parts.uri.authority().unwrap().as_str(),
            format!("127.0.0.1:{}", addr.port())
        );
        assert_eq!(parts.headers["content-type"], "application/grpc");
        assert_eq!(parts.headers["te"], "trailers");
        assert_eq!(parts.headers["user-agent"], "ELB-HealthChecker/2.0");
        assert_eq!(body, EMPTY_GRPC_MESSAGE);
    }

    #[tokio::test]
    async fn grpc_probe_reads_the_status_from_trailers() {
        let (addr, _task) = server(|respond| {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut stream = respond.send_response(resp, false).unwrap();
            stream
                .send_data(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]), false)
                .unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            stream.send_trailers(trailers).unwrap();
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            probe(tcp, addr, &hc(ProtocolVersion::Grpc, "/x", 12, 12)).await,
            Probe::CodeMismatch(0)
        );
    }

    #[tokio::test]
    async fn grpc_probe_without_a_status_maps_the_http_status_or_fails() {
        let (addr, _task) = server(|respond| {
            let resp = http::Response::builder().status(404).body(()).unwrap();
            respond.send_response(resp, true).unwrap();
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            probe(tcp, addr, &hc(ProtocolVersion::Grpc, "/x", 12, 12)).await,
            Probe::Pass
        );

        let (addr, _task) = server(|respond| {
            let resp = http::Response::builder().status(200).body(()).unwrap();
            respond.send_response(resp, true).unwrap();
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            probe(tcp, addr, &hc(ProtocolVersion::Grpc, "/x", 0, 99)).await,
            Probe::Failed
        );
    }

    #[tokio::test]
    async fn http2_probe_is_a_get_matched_on_the_http_status() {
        let (addr, task) = server(|respond| {
            let resp = http::Response::builder().status(204).body(()).unwrap();
            respond.send_response(resp, true).unwrap();
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            probe(tcp, addr, &hc(ProtocolVersion::Http2, "/health?x=1", 200, 299)).await,
            Probe::Pass
        );
        let (parts, body) = task.await.unwrap();
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.uri.path_and_query().unwrap().as_str(), "/health?x=1");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn a_target_that_does_not_speak_http2_fails_the_check() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            probe(tcp, addr, &hc(ProtocolVersion::Grpc, "/x", 12, 12)).await,
            Probe::Failed
        );
    }

    #[test]
    fn http_statuses_map_to_grpc_codes_as_grpc_clients_do() {
        for (http, grpc) in [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (503, 14),
            (500, 2),
        ] {
            assert_eq!(
                grpc_code_of_http(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }

    #[tokio::test]
    async fn https_grpc_probe_negotiates_h2_over_tls() {
        let cert = rcgen::generate_simple_self_signed(vec!["grpc.test".to_owned()]).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut conn = h2::server::handshake(tls).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            trailers_only("0")(&mut respond);
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = conn.accept().await {}
            })
            .await;
            (alpn, req.uri().scheme_str().map(str::to_owned))
        });
        let mut check = hc(ProtocolVersion::Grpc, "/AWS.ALB/healthcheck", 0, 0);
        check.protocol = TargetGroupProtocol::Https;
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(probe(tcp, addr, &check).await, Probe::Pass);
        let (alpn, scheme) = server.await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(scheme.as_deref(), Some("https"));
    }
}
