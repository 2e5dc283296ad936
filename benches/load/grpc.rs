//! Scenario (n): the gRPC target and the call h2load makes.
//!
//! The target is the harness's own cleartext HTTP/2 server (prior knowledge, what
//! `grpc://` upstreams and `protocol = "HTTP"` GRPC groups speak) on two ports, the two
//! targets: it answers every POST with one gRPC message and the trailers
//! `grpc-status: 0`, whatever the method, after reading the request to its end. It is
//! written on the h2 crate rather than grpcio so that the target is never what limits a
//! proxy. It counts the calls it answered, so that the harness can check that each call
//! h2load counted as a success reached it.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;

/// The method every call names: a gRPC path `/package.Service/Method`.
pub(crate) const METHOD_PATH: &str = "/hostalb.bench.Echo/Unary";
/// The prefix the proxies route to the gRPC targets (the service).
pub(crate) const SERVICE_PREFIX: &str = "/hostalb.bench.Echo/";
/// The request message: protobuf field 1 (a string) `hello`, 5-byte framed (uncompressed
/// flag, big-endian length).
const REQUEST: &[u8] = b"\x00\x00\x00\x00\x07\x0a\x05hello";
/// The answer message: field 1 `ok`, framed the same way.
const ANSWER: &[u8] = b"\x00\x00\x00\x00\x04\x0a\x02ok";
/// Worker threads of the target's runtime: the backend nginx's worker count of the other
/// scenarios, so the target takes what a one-worker backend takes.
const TARGET_THREADS: usize = 1;

/// Writes the request body h2load sends (`-d`) into `dir`.
pub(crate) fn request_file(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let p = dir.join("grpc-request.bin");
    fs::write(&p, REQUEST).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// The headers of a gRPC call, for h2load's `-H`.
pub(crate) const CALL_HEADERS: [&str; 2] = ["content-type: application/grpc", "te: trailers"];

/// The running target; it stops when dropped (its runtime with it).
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) ports: [u16; 2],
    answered: Arc<AtomicU64>,
    // Dropping the runtime ends the accept loops and the connections.
    _rt: tokio::runtime::Runtime,
}

impl Target {
    /// Calls answered with `grpc-status: 0` so far.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

pub(crate) fn start() -> Result<Target> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TARGET_THREADS)
        .enable_all()
        .thread_name("grpc-target")
        .build()
        .context("starting the gRPC target's runtime")?;
    let answered = Arc::new(AtomicU64::new(0));
    let mut ports = [0u16; 2];
    for port in &mut ports {
        let l = rt
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .context("binding the gRPC target")?;
        *port = l.local_addr().context("the gRPC target's address")?.port();
        rt.spawn(accept(l, answered.clone()));
    }
    Ok(Target {
        ports,
        answered,
        _rt: rt,
    })
}

async fn accept(l: tokio::net::TcpListener, answered: Arc<AtomicU64>) {
    loop {
        let Ok((sock, _)) = l.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(connection(sock, answered.clone()));
    }
}

async fn connection(sock: tokio::net::TcpStream, answered: Arc<AtomicU64>) {
    let Ok(mut conn) = h2::server::handshake(sock).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(call(req, respond, answered.clone()));
    }
}

/// One call: the request read to its end, then headers, the message and the trailers.
async fn call(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    answered: Arc<AtomicU64>,
) {
    let mut body = req.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(());
    let Ok(head) = head else { return };
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    if send.send_data(Bytes::from_static(ANSWER), false).is_err() {
        return;
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    if send.send_trailers(trailers).is_ok() {
        answered.fetch_add(1, Ordering::Relaxed);
    }
}
