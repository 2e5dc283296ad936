//! HTTP/2 to targets: how target groups with `protocol_version` `HTTP2` or `GRPC` reach
//! their targets, a sibling of [`crate::data::upstream`] (HTTP/1).
//!
//! A `protocol = "HTTP"` target gets HTTP/2 with prior knowledge (cleartext, no upgrade
//! dance, as gRPC servers expect); a `protocol = "HTTPS"` target gets TLS offering only
//! ALPN `h2`, its certificate not verified (ALB, alb-spec §3). A target that completes the
//! handshake without choosing a protocol is spoken to in HTTP/2 anyway.
//!
//! One client stream becomes one target stream on a pooled, multiplexed connection
//! ([`crate::model::h2pool`]). Both directions flow at once, so bidirectional gRPC
//! streaming works: the request body (DATA, then trailers) goes to the target while the
//! response comes back. Flow control is end to end: a DATA frame's window is given back to
//! its sender only once the frame was handed to the other side, and the other side's
//! window is waited for before sending, so a slow reader slows its writer instead of
//! filling memory; at most one stream window ([`STREAM_WINDOW`]) is held per stream.
//!
//! A reset on either side resets the other: the target's RST_STREAM reaches the client
//! with the same code (INTERNAL_ERROR when the target's connection failed or its code was
//! NO_ERROR mid-response), a client's RST_STREAM cancels the target stream (CANCEL). The
//! deregistration delay running out ends the stream the same way.
//!
//! How far a failure got ([`Reached`], for [`crate::data::retry`]): `Nothing` when the
//! target cannot have processed the request (connect refused or timed out, TLS handshake
//! failed, REFUSED_STREAM, a GOAWAY that excluded the stream); `Request` when the request
//! went out and no response head came back. Once a response head reached the client,
//! [`proxy`] returns [`Proxied`] with `complete: false` and the reason instead of an
//! error: the client's stream was reset, and only the access log has more to say.

// The HTTP/2 front end is the caller; until it is in, only the tests call `proxy`.
#![cfg_attr(not(test), allow(dead_code))]

use std::borrow::BorrowMut;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::data::coalesce::Coalesce;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::retry::{Failure, Reached};
use crate::data::upstream::{self, CONNECT_TIMEOUT};
use crate::model::h2pool::{Driver, Lease};
use crate::model::target::Target;

/// Receive window per stream towards targets: several round trips' worth of a fast local
/// target, and the most a stream buffers when its client reads slowly.
pub(crate) const STREAM_WINDOW: u32 = 256 * 1024;
/// Receive window per connection: as many full stream windows as the usual stream limit,
/// so that one stalled stream never stalls the others on its connection.
pub(crate) const CONNECTION_WINDOW: u32 = STREAM_WINDOW * ASSUMED_MAX_STREAMS as u32;
/// Streams a new connection may carry before the target's SETTINGS say otherwise: RFC 9113
/// §6.5.2 recommends servers allow at least 100.
pub(crate) const ASSUMED_MAX_STREAMS: usize = 100;
/// ALB: a target's response headers over 32 K are a 502.
const MAX_RESPONSE_HEADERS: u32 = 32 * 1024;
/// Tries to open a stream: a pooled connection that turns out to refuse new streams (the
/// target sent GOAWAY) is left for a new one, once.
const OPEN_ATTEMPTS: usize = 2;

/// What the front end needs about a stream that got a response, for the access log and
/// metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proxied {
    /// The target's status.
    pub(crate) status: u16,
    /// When the request head was handed to the target connection.
    pub(crate) sent_at: std::time::Instant,
    /// When the target's response head arrived.
    pub(crate) answered_at: std::time::Instant,
    /// The response reached the client whole (END_STREAM or trailers).
    pub(crate) complete: bool,
    /// Request body bytes sent to the target.
    pub(crate) request_bytes: u64,
    /// Response body bytes sent to the client.
    pub(crate) response_bytes: u64,
    /// Why the response was cut short (the access log's error reason), when it was.
    pub(crate) cut: Option<&'static str>,
}

/// Proxies one client stream to `target` over HTTP/2 (TLS when `tls`).
///
/// `client_body` is the client's request body, owned or borrowed: lent (`&mut`), it is
/// still whole after a failure with [`Reached::Nothing`], so the request can go to another
/// target (the retry policy's case (a)); nothing is ever taken from it before the target
/// stream is open, and a stream refused after part of the body went is `Reached::Request`.
///
/// `head` carries the pseudo-headers (its URI has the authority; the scheme is set to the
/// target hop's, `http` or `https`) and ALB's forwarding headers. `on_head` sees the
/// response head before it goes to the client (cookies, the recorded status). `idle`: the
/// listener's idle timeout, which is also the response timeout (no frame on the stream
/// for that long: 504 before the head, a reset after it) and the pooled connections' idle
/// limit. `fresh`: use a new connection (a retry).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn proxy(
    target: &Target,
    tls: bool,
    head: http::Request<()>,
    mut client_body: impl BorrowMut<RecvStream> + Send,
    client: &mut h2::server::SendResponse<Bytes>,
    on_head: &mut (dyn FnMut(&mut http::response::Parts) + Send),
    idle: Duration,
    fresh: bool,
) -> Result<Proxied, Failure> {
    let head = for_hop(head, tls);
    let end_of_request = client_body.borrow_mut().is_end_stream();
    // One wait for the cut for the whole stream, not one per frame.
    let cut = target.cut_signal();
    tokio::pin!(cut);
    let opened = tokio::select! {
        biased;
        () = &mut cut => return Err(fail(ErrorKind::Deregistered, Reached::Nothing)),
        _ = poll_fn(|cx| client.poll_reset(cx)) => {
            return Err(fail(ErrorKind::ClientClosed, Reached::Nothing));
        }
        r = open(target, tls, head, end_of_request, idle, fresh) => r?,
    };
    let Opened {
        lease: _lease,
        mut response,
        send,
        sent_at,
    } = opened;
    let progress = Progress::new();
    let pump = pump_request(client_body, send, &progress, end_of_request);
    tokio::pin!(pump);
    let mut pumped = false;
    let quiet = quiet(&progress, idle);
    tokio::pin!(quiet);

    // The response head, while the request body goes out.
    let answer = loop {
        tokio::select! {
            biased;
            () = &mut cut => return Err(fail(ErrorKind::Deregistered, Reached::Request)),
            r = &mut pump, if !pumped => {
                pumped = true;
                if let Err(Broke::Client) = r {
                    return Err(fail(ErrorKind::ClientClosed, Reached::Request));
                }
            }
            _ = poll_fn(|cx| client.poll_reset(cx)) => {
                return Err(fail(ErrorKind::ClientClosed, Reached::Request));
            }
            r = &mut response => break r,
            () = &mut quiet => return Err(fail(ErrorKind::ResponseTimeout, Reached::Request)),
        }
    };
    let answer = answer.map_err(|e| {
        let mut failure = failed_before_head(e);
        if failure.reached == Reached::Nothing && progress.took_body.load(Relaxed) {
            // Processed or not, part of the body is gone: it cannot go anywhere else.
            failure.reached = Reached::Request;
        }
        failure
    })?;
    let answered_at = std::time::Instant::now();
    progress.touch();
    let (mut parts, mut body) = answer.into_parts();
    let status = parts.status.as_u16();
    on_head(&mut parts);
    let end_of_response = body.is_end_stream();
    let mut to_client = match client.send_response(http::Response::from_parts(parts, ()), end_of_response) {
        Ok(s) => s,
        Err(_) => return Err(fail(ErrorKind::ClientClosed, Reached::Request)),
    };
    let mut out = Proxied {
        status,
        sent_at,
        answered_at,
        complete: end_of_response,
        request_bytes: 0,
        response_bytes: 0,
        cut: None,
    };

    // The response body, then its trailers, while the request body may still flow.
    let ended = if end_of_response {
        Ok(())
    } else {
        loop {
            let next = tokio::select! {
                biased;
                () = &mut cut => break Err(Cut::Deregistered),
                r = &mut pump, if !pumped => {
                    pumped = true;
                    if let Err(Broke::Client) = r {
                        break Err(Cut::Client);
                    }
                    continue;
                }
                _ = poll_fn(|cx| to_client.poll_reset(cx)) => break Err(Cut::Client),
                d = body.data() => d,
                () = &mut quiet => break Err(Cut::Quiet),
            };
            match next {
                Some(Ok(chunk)) => {
                    progress.touch();
                    let n = chunk.len();
                    let send = send_flow(&mut to_client, chunk);
                    tokio::pin!(send);
                    let sent = loop {
                        tokio::select! {
                            biased;
                            () = &mut cut => break Err(Cut::Deregistered),
                            r = &mut send => break r.map_err(|_| Cut::Client),
                            r = &mut pump, if !pumped => {
                                pumped = true;
                                if let Err(Broke::Client) = r {
                                    break Err(Cut::Client);
                                }
                            }
                            () = &mut quiet => break Err(Cut::Quiet),
                        }
                    };
                    if let Err(why) = sent {
                        break Err(why);
                    }
                    let _ = body.flow_control().release_capacity(n);
                    out.response_bytes += n as u64;
                    progress.touch();
                }
                Some(Err(e)) => break Err(Cut::Target(e.reason())),
                None => {
                    break match body.trailers().await {
                        Ok(Some(trailers)) => to_client.send_trailers(trailers).map_err(|_| Cut::Client),
                        Ok(None) => to_client.send_data(Bytes::new(), true).map_err(|_| Cut::Client),
                        Err(e) => Err(Cut::Target(e.reason())),
                    };
                }
            }
        }
    };
    out.request_bytes = progress.request_bytes.load(Relaxed);
    match ended {
        Ok(()) => out.complete = true,
        Err(why) => {
            out.cut = Some(why.reason());
            if let Some(code) = why.client_code() {
                to_client.send_reset(code);
            }
            // Dropping the target's stream handles (on return) cancels it at the target.
        }
    }
    // The lease, declared first, drops last: the slot frees once the stream handles are
    // gone.
    Ok(out)
}

fn fail(kind: ErrorKind, reached: Reached) -> Failure {
    Failure::new(ProxyError::new(kind), reached)
}

/// Sets the request's scheme to the target hop's.
fn for_hop(head: http::Request<()>, tls: bool) -> http::Request<()> {
    let scheme = if tls {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    if head.uri().scheme() == Some(&scheme) || head.uri().authority().is_none() {
        return head;
    }
    let (mut parts, ()) = head.into_parts();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(scheme);
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
    http::Request::from_parts(parts, ())
}

/// Why a stream ended before its response did.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The client reset its stream or went away.
    Client,
    /// The target reset the stream (its code) or its connection failed.
    Target(Option<Reason>),
    /// No frame for the idle timeout.
    Quiet,
    /// The deregistration delay ran out.
    Deregistered,
}

impl Cut {
    fn reason(self) -> &'static str {
        match self {
            Cut::Client => "ClientClosedDuringResponse",
            Cut::Target(_) => "TargetClosedDuringResponse",
            Cut::Quiet => "TargetResponseTimeout",
            Cut::Deregistered => "DeregistrationDelayExpired",
        }
    }

    /// The RST_STREAM code the client gets (none when it reset the stream itself).
    fn client_code(self) -> Option<Reason> {
        match self {
            Cut::Client => None,
            Cut::Target(Some(code)) if code != Reason::NO_ERROR => Some(code),
            Cut::Target(_) | Cut::Quiet | Cut::Deregistered => Some(Reason::INTERNAL_ERROR),
        }
    }
}

/// A target error before any response head.
fn failed_before_head(e: h2::Error) -> Failure {
    // The target says it did not process the stream: REFUSED_STREAM, or a GOAWAY whose
    // last stream id excluded it (h2 fails such streams with the GOAWAY).
    if e.reason() == Some(Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote()) {
        return fail(ErrorKind::TargetClosed, Reached::Nothing);
    }
    if e.is_library() {
        // h2 refused what the target sent (malformed or oversized response headers, a
        // protocol violation).
        return fail(ErrorKind::BadResponse("TargetProtocolError"), Reached::Request);
    }
    match e.into_io() {
        Some(io) => Failure::new(ProxyError::io(ErrorKind::TargetClosed, io), Reached::Request),
        None => fail(ErrorKind::TargetClosed, Reached::Request),
    }
}

/// A stream opened at the target.
struct Opened {
    /// Its slot on the connection, held until the stream is done.
    lease: Lease,
    response: ResponseFuture,
    send: SendStream<Bytes>,
    sent_at: std::time::Instant,
}

/// Opens the stream: a slot on a pooled connection (or a new one), then the request head.
async fn open(
    target: &Target,
    tls: bool,
    head: http::Request<()>,
    end_of_request: bool,
    idle: Duration,
    fresh: bool,
) -> Result<Opened, Failure> {
    let addr = target.addr;
    let mut fresh = fresh;
    for _ in 0..OPEN_ATTEMPTS {
        let lease = target
            .h2
            .lease(fresh, idle, || dial(addr, tls))
            .await
            .map_err(|e| Failure::new(e, Reached::Nothing))?;
        // A new handle has no stream pending, so this only asks whether the connection
        // still takes streams (it does not after a GOAWAY or a failure).
        let Ok(mut sender) = lease.sender().ready().await else {
            lease.discard();
            fresh = true;
            continue;
        };
        let sent_at = std::time::Instant::now();
        return match sender.send_request(head, end_of_request) {
            Ok((response, send)) => Ok(Opened {
                lease,
                response,
                send,
                sent_at,
            }),
            // h2 refused the head itself (a connection-specific header, a missing
            // pseudo-header): nothing is wrong with the connection.
            Err(e) if e.reason().is_none() && !e.is_io() => Err(fail(
                ErrorKind::ClientBody("InvalidRequestHeaders"),
                Reached::Nothing,
            )),
            Err(_) => {
                lease.discard();
                Err(fail(ErrorKind::TargetClosed, Reached::Nothing))
            }
        };
    }
    Err(fail(ErrorKind::TargetClosed, Reached::Nothing))
}

/// Opens a connection to `addr` (TCP within ALB's 10 s, then TLS within another 10 s when
/// `tls`), and starts HTTP/2 on it.
async fn dial(addr: SocketAddr, tls: bool) -> Result<(SendRequest<Bytes>, Driver), ProxyError> {
    let tcp = upstream::connect(addr).await?;
    if !tls {
        return handshake(Coalesce::new(tcp)).await;
    }
    let Some(connector) = tls_connector() else {
        return Err(ProxyError::new(ErrorKind::TargetTls));
    };
    // The same handshake as HTTP/1's HTTPS targets: a failure is a 502 and running out of
    // time a 504, both counted as TargetTLSNegotiationErrorCount.
    let stream = upstream::handshake(connector, addr, tcp, upstream::TLS_HANDSHAKE_TIMEOUT).await?;
    handshake(Coalesce::new(stream)).await
}

/// Starts HTTP/2 on a connection: the preface and our SETTINGS, then a PING whose answer
/// proves the target speaks HTTP/2 and, coming after its SETTINGS, that its stream limit
/// is known before the connection is shared (one round trip per new connection).
async fn handshake<T>(io: T) -> Result<(SendRequest<Bytes>, Driver), ProxyError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_max_send_streams(ASSUMED_MAX_STREAMS)
        .max_header_list_size(MAX_RESPONSE_HEADERS)
        .enable_push(false);
    let (send, mut connection) = builder.handshake::<T, Bytes>(io).await.map_err(handshake_error)?;
    let Some(mut ping) = connection.ping_pong() else {
        return Err(ProxyError::new(ErrorKind::TargetClosed));
    };
    let answered = tokio::time::timeout(CONNECT_TIMEOUT, async {
        tokio::select! {
            r = &mut connection => Err(r.err().map(handshake_error).unwrap_or_else(|| ProxyError::new(ErrorKind::TargetClosed))),
            r = ping.ping(h2::Ping::opaque()) => r.map(|_| ()).map_err(handshake_error),
        }
    })
    .await;
    match answered {
        Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout)),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok((
            send,
            Box::pin(async move {
                let _ = connection.await;
            }),
        )),
    }
}

/// A connection that failed before carrying a stream: closed, or not HTTP/2 at all.
fn handshake_error(e: h2::Error) -> ProxyError {
    if e.is_library() || e.is_go_away() {
        return ProxyError::new(ErrorKind::BadResponse("TargetNotHttp2"));
    }
    match e.into_io() {
        Some(io) => ProxyError::io(ErrorKind::TargetClosed, io),
        None => ProxyError::new(ErrorKind::TargetClosed),
    }
}

/// The TLS client for HTTP/2 targets: ALPN `h2` only, any certificate (ALB does not
/// verify targets'), built once.
fn tls_connector() -> Option<&'static upstream::TlsConnector> {
    // OnceLock: built by whichever stream first needs it; every later one reads it.
    static CONNECTOR: OnceLock<Option<upstream::TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| upstream::TlsConnector::with_alpn(&[b"h2"]).ok())
        .as_ref()
}

/// The stream's last frame time and request bytes, shared by the two directions (atomics:
/// the proxy future must stay `Send`).
struct Progress {
    base: Instant,
    last_ms: AtomicU64,
    request_bytes: AtomicU64,
    /// Something was taken from the client's request body: it cannot be sent again.
    took_body: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            took_body: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Relaxed))
    }
}

/// Completes once no frame moved on the stream for `idle`.
async fn quiet(progress: &Progress, idle: Duration) {
    loop {
        let due = progress.last() + idle;
        if due <= Instant::now() {
            return;
        }
        tokio::time::sleep_until(due).await;
    }
}

/// Which side broke a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broke {
    Client,
    Target,
}

/// Sends the request body (DATA, then trailers or END_STREAM) from the client's stream to
/// the target's. Nothing to do when the request head ended the stream.
async fn pump_request(
    mut from: impl BorrowMut<RecvStream>,
    mut to: SendStream<Bytes>,
    progress: &Progress,
    ended: bool,
) -> Result<(), Broke> {
    if ended {
        return Ok(());
    }
    let from = from.borrow_mut();
    while let Some(data) = from.data().await {
        progress.took_body.store(true, Relaxed);
        let Ok(chunk) = data else {
            to.send_reset(Reason::CANCEL);
            return Err(Broke::Client);
        };
        progress.touch();
        let n = chunk.len();
        send_flow(&mut to, chunk).await.map_err(|_| Broke::Target)?;
        // The client may send more only once this went on.
        let _ = from.flow_control().release_capacity(n);
        progress.request_bytes.fetch_add(n as u64, Relaxed);
        progress.touch();
    }
    let trailers = from.trailers().await;
    progress.took_body.store(true, Relaxed);
    let sent = match trailers {
        Ok(Some(trailers)) => to.send_trailers(trailers),
        Ok(None) => to.send_data(Bytes::new(), true),
        Err(_) => {
            to.send_reset(Reason::CANCEL);
            return Err(Broke::Client);
        }
    };
    sent.map_err(|_| Broke::Target)
}

/// Sends `chunk` on `to` as its receiver's window allows: the part that fits, then the
/// rest as window updates come, so h2 never buffers more than the window.
async fn send_flow(to: &mut SendStream<Bytes>, mut chunk: Bytes) -> Result<(), Broke> {
    while !chunk.is_empty() {
        to.reserve_capacity(chunk.len());
        let room = match poll_fn(|cx| to.poll_capacity(cx)).await {
            Some(Ok(room)) => room,
            Some(Err(_)) | None => return Err(Broke::Target),
        };
        if room == 0 {
            continue;
        }
        let part = chunk.split_to(room.min(chunk.len()));
        to.send_data(part, false).map_err(|_| Broke::Target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
