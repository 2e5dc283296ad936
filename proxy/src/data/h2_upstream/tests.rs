//! [`super::proxy`] between real h2 peers on loopback: an h2 client, an h2 server
//! connection that calls `proxy` for each of its streams (the front end's part, reduced
//! to that), and an h2 server as the target (cleartext or TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::*;
use crate::model::target::TargetOrigin;

/// Any one step of a test at most: loopback exchanges take milliseconds.
const STEP: Duration = Duration::from_secs(10);
/// The listener idle timeout the front uses unless a test needs a short one.
const IDLE: Duration = Duration::from_secs(30);

type Handler =
    Arc<dyn Fn(Request<RecvStream>, SendResponse<Bytes>) -> tokio::task::JoinHandle<()> + Send + Sync>;

/// A target: an h2 server whose streams `handler` serves.
struct TargetServer {
    addr: SocketAddr,
    /// Connections accepted so far.
    #[allow(dead_code)]
    connections: Arc<AtomicUsize>,
}

#[derive(Clone, Default)]
struct ServerOpts {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    max_streams: Option<u32>,
    /// Send GOAWAY after this many streams on a connection.
    goaway_after: Option<usize>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

async fn target_server(opts: ServerOpts, handler: Handler) -> TargetServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let (opts, handler) = (opts.clone(), handler.clone());
            tokio::spawn(async move {
                match &opts.tls {
                    Some(cfg) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
                        let Ok(tls) = acceptor.accept(sock).await else {
                            return;
                        };
                        serve_target(tls, &opts, handler).await;
                    }
                    None => serve_target(sock, &opts, handler).await,
                }
            });
        }
    });
    TargetServer { addr, connections }
}

async fn serve_target<T>(io: T, opts: &ServerOpts, handler: Handler)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut builder = h2::server::Builder::new();
    if let Some(n) = opts.max_streams {
        builder.max_concurrent_streams(n);
    }
    let Ok(mut conn) = builder.handshake::<T, Bytes>(io).await else {
        return;
    };
    let mut served = 0;
    while let Some(Ok((req, respond))) = conn.accept().await {
        handler(req, respond);
        served += 1;
        if opts.goaway_after == Some(served) {
            conn.graceful_shutdown();
        }
    }
}

/// Sends `data` on `to` within its flow-control window.
async fn send_all(to: &mut SendStream<Bytes>, data: Bytes) {
    send_flow(to, data).await.unwrap();
}

/// Reads a whole body, giving the window back as it goes.
async fn read_all(body: &mut RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// Echoes the body back, with `x-echo-method` and trailers `grpc-status: 0` plus the
/// request's trailer `x-req` as `x-req-echo`.
fn echo() -> Handler {
    Arc::new(|req, mut respond| {
        tokio::spawn(async move {
            let (parts, mut body) = req.into_parts();
            let data = read_all(&mut body).await.unwrap();
            let req_trailers = body.trailers().await.unwrap().unwrap_or_default();
            let resp = Response::builder()
                .status(200)
                .header("x-echo-method", parts.method.as_str())
                .header("x-echo-scheme", parts.uri.scheme_str().unwrap_or("-"))
                .body(())
                .unwrap();
            let mut send = respond.send_response(resp, false).unwrap();
            send_all(&mut send, Bytes::from(data)).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            if let Some(v) = req_trailers.get("x-req") {
                trailers.insert("x-req-echo", v.clone());
            }
            send.send_trailers(trailers).unwrap();
        })
    })
}

/// Sends each DATA frame back as it arrives, then trailers.
#[allow(dead_code)]
fn stream_echo() -> Handler {
    Arc::new(|req, mut respond| {
        tokio::spawn(async move {
            let mut body = req.into_body();
            let resp = Response::builder().status(200).body(()).unwrap();
            let mut send = respond.send_response(resp, false).unwrap();
            while let Some(chunk) = body.data().await {
                let Ok(chunk) = chunk else { return };
                let n = chunk.len();
                send_all(&mut send, chunk).await;
                let _ = body.flow_control().release_capacity(n);
            }
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            send.send_trailers(trailers).unwrap();
        })
    })
}

/// The front: an h2 server calling `proxy` for each stream, answering failures before a
/// response head with their status, and reporting every outcome.
struct Front {
    addr: SocketAddr,
    outcomes: mpsc::UnboundedReceiver<Result<Proxied, Failure>>,
}

async fn front(target: Arc<Target>, tls: bool, idle: Duration) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, outcomes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (target, tx) = (target.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(sock).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let (target, tx) = (target.clone(), tx.clone());
                    tokio::spawn(async move {
                        let (parts, body) = req.into_parts();
                        let head = Request::from_parts(parts, ());
                        let mut on_head = |p: &mut http::response::Parts| {
                            p.headers.insert("x-front", HeaderValue::from_static("1"));
                        };
                        let r =
                            proxy(&target, tls, head, body, &mut respond, &mut on_head, idle, false).await;
                        if let Err(f) = &r {
                            let resp = Response::builder().status(f.err.status()).body(()).unwrap();
                            let _ = respond.send_response(resp, true);
                        }
                        let _ = tx.send(r);
                    });
                }
            });
        }
    });
    Front { addr, outcomes }
}

impl Front {
    async fn outcome(&mut self) -> Result<Proxied, Failure> {
        timeout(STEP, self.outcomes.recv()).await.unwrap().unwrap()
    }
}

async fn client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn post(path: &str) -> Request<()> {
    Request::builder()
        .method("POST")
        .uri(format!("https://example.test{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

fn target_at(addr: SocketAddr) -> Arc<Target> {
    Target::new(addr, TargetOrigin::default())
}

/// One unary call: request body and trailers, response body and trailers.
async fn unary(
    send: &mut h2::client::SendRequest<Bytes>,
    body: &'static [u8],
) -> (http::response::Parts, Vec<u8>, HeaderMap) {
    let mut send = send.clone().ready().await.unwrap();
    let (response, mut stream) = send.send_request(post("/pkg.Echo/Unary"), false).unwrap();
    send_all(&mut stream, Bytes::from_static(body)).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-req", HeaderValue::from_static("abc"));
    stream.send_trailers(trailers).unwrap();
    let resp = timeout(STEP, response).await.unwrap().unwrap();
    let (parts, mut body) = resp.into_parts();
    let data = timeout(STEP, read_all(&mut body)).await.unwrap().unwrap();
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    (parts, data, trailers)
}

#[tokio::test]
async fn unary_call_carries_bodies_and_trailers_both_ways() {
    let server = target_server(ServerOpts::default(), echo()).await;
    let target = target_at(server.addr);
    let mut front = front(target.clone(), false, IDLE).await;
    let mut c = client(front.addr).await;
    let (parts, data, trailers) = unary(&mut c, b"hello").await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-echo-method"], "POST");
    assert_eq!(parts.headers["x-echo-scheme"], "http", "the scheme is the hop's");
    assert_eq!(parts.headers["x-front"], "1", "on_head ran");
    assert_eq!(data, b"hello");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["x-req-echo"], "abc",
        "request trailers reached the target"
    );
    let out = front.outcome().await.unwrap();
    assert_eq!(out.status, 200);
    assert!(out.complete);
    assert_eq!(out.request_bytes, 5);
    assert_eq!(out.response_bytes, 5);
    assert_eq!(out.cut, None);
    assert!(out.answered_at >= out.sent_at);
    assert_eq!(target.h2.opened(), 1);
}

#[tokio::test]
async fn refused_connect_fails_with_nothing_reached() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut front = front(target_at(addr), false, IDLE).await;
    let mut c = client(front.addr).await;
    let (response, _) = c.send_request(post("/x"), true).unwrap();
    let resp = timeout(STEP, response).await.unwrap().unwrap();
    assert_eq!(resp.status(), 502);
    let f = front.outcome().await.unwrap_err();
    assert_eq!(f.reached, Reached::Nothing);
    assert!(matches!(f.err.kind, ErrorKind::ConnectRefused), "{:?}", f.err);
}
