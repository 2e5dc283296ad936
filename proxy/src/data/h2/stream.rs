//! One HTTP/2 stream, one task: the request path's phases as [`crate::data::session`] runs
//! them for HTTP/1 (the head, the check, the route, the act, the log), with the stream's
//! own I/O ([`H2Stream`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ::h2::server::SendResponse;
use ::h2::{Reason, RecvStream};
use bytes::Bytes;

use super::head;
use super::server::{ConnInfo, StreamGuard};
use crate::data::access_log::{AccessLog, Entry, Protocol};
use crate::data::answer;
use crate::data::conn::Record;
use crate::data::context::RequestCx;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::session;
use crate::http1::request::RequestHead;
use crate::model::metrics::inc;
use crate::model::rules::Action;
use crate::model::shared::Shared;

/// A stream's two halves and what its answer and log need to know of it.
#[derive(Debug)]
pub(crate) struct H2Stream {
    pub(crate) respond: SendResponse<Bytes>,
    /// The request body (taken by an HTTP/2 forward, which hands it to the target stream).
    pub(crate) body: Option<RecvStream>,
    /// The request is gRPC (`content-type: application/grpc*`).
    pub(crate) grpc: bool,
    /// The request is a HEAD (its answer carries no body).
    pub(crate) is_head: bool,
    pub(crate) peer: SocketAddr,
    /// Bytes of the request and of the response (heads as HTTP/1 text, bodies as sent),
    /// for the access log and `ProcessedBytes`.
    pub(crate) received: u64,
    pub(crate) sent: u64,
}

impl H2Stream {
    /// Sends a complete response hostalb makes itself: the head, then `body` (nothing
    /// for a HEAD request). The `h2` crate buffers it (at most
    /// `MAX_SEND_BUFFER_SIZE`-sized, hostalb's own pages are small) and sends it as the
    /// client's window allows.
    pub(crate) fn send_own(&mut self, resp: http::Response<()>, body: &[u8]) {
        let body_follows = !body.is_empty() && !self.is_head;
        self.sent += 64
            + resp
                .headers()
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>() as u64;
        match self.respond.send_response(resp, !body_follows) {
            Ok(mut send) if body_follows => {
                self.sent += body.len() as u64;
                let _ = send.send_data(Bytes::copy_from_slice(body), true);
            }
            _ => {}
        }
    }

    pub(crate) fn reset(&mut self, reason: Reason) {
        self.respond.send_reset(reason);
    }
}

/// Serves one stream to its end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    _open: StreamGuard,
) {
    let (parts, body) = req.into_parts();
    let end_stream = body.is_end_stream();
    // The freshest configuration, loaded once for this request.
    let snap = shared.snapshot.load_full();
    let Some(listener) = snap.listener(conn.listener).cloned() else {
        let mut respond = respond;
        respond.send_reset(Reason::REFUSED_STREAM);
        return;
    };
    let grpc = head::is_grpc(&parts);
    if grpc {
        inc(&shared.metrics.grpc_requests);
    }
    let mut s = H2Stream {
        respond,
        body: Some(body),
        grpc,
        is_head: parts.method == http::Method::HEAD,
        peer: conn.peer,
        received: 0,
        sent: 0,
    };
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let protocol = if grpc { Protocol::Grpc } else { Protocol::H2 };
    // 1. The head, as the HTTP/1 codec reads it.
    let head = match head::request_head(
        &parts,
        end_stream,
        listener.cfg.desync_mitigation_mode,
        &mut Vec::new(),
    ) {
        Ok(h) => h,
        Err(e) => {
            let mut rec = Record::default();
            let e = ProxyError::new(ErrorKind::BadHead(e));
            answer::h2_refused(&shared, &listener, &mut s, &e, &mut rec);
            log(
                &shared,
                snap.access_log.as_deref(),
                &conn,
                &s,
                protocol,
                None,
                &rec,
                started,
            );
            return;
        }
    };
    drop(parts);
    s.received += head.buf.len() as u64;
    let mut cx = RequestCx::new(&shared, &snap, &listener, &head);
    if cx.logging {
        cx.rec.created = Some(SystemTime::now());
        cx.rec.received = Some(Instant::now());
        cx.rec.desync = head.desync.logged();
    }
    handle(&mut cx, &conn, &mut s).await;
    drain_body(&mut s).await;
    log(
        &shared,
        snap.access_log.as_deref(),
        &conn,
        &s,
        protocol,
        Some(&head),
        &cx.rec,
        started,
    );
}

/// A request body this small, arriving this soon, is read and dropped after hostalb
/// answered without reading it (an error, a fixed response, a target that answered
/// early): the stream then ends cleanly, where dropping it unread would reset it
/// (`RST_STREAM NO_ERROR`, which some clients, curl among them, take for a failure).
const DISCARDABLE_BODY: usize = 64 * 1024;
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops what is left of the request body, bounded by [`DISCARDABLE_BODY`] and
/// [`DISCARD_TIME`]; the answer is already on its way, so nobody waits for this.
async fn drain_body(s: &mut H2Stream) {
    let Some(body) = s.body.as_mut() else { return };
    let deadline = tokio::time::Instant::now() + DISCARD_TIME;
    let mut read = 0;
    while !body.is_end_stream() && read < DISCARDABLE_BODY {
        match tokio::time::timeout_at(deadline, body.data()).await {
            Ok(Some(Ok(data))) => {
                read += data.len();
                let _ = body.flow_control().release_capacity(data.len());
            }
            _ => break,
        }
    }
    s.received += read as u64;
}

/// Phases 2 to 4, as [`crate::data::session`] runs them; every error is answered by
/// [`answer::h2_error`].
async fn handle(cx: &mut RequestCx<'_>, conn: &ConnInfo, s: &mut H2Stream) {
    let (shared, head) = (cx.shared, cx.head);
    // 2. ALB's request rules.
    if let Err(e) = session::check(shared, head) {
        return answer::h2_error(cx, s, e);
    }
    // 3. Route.
    let m = session::route(cx, conn.peer_ip);
    // 4. Act.
    match m.action {
        Action::FixedResponse(f) => {
            inc(&shared.metrics.fixed_responses);
            answer::h2_fixed(cx, s, f);
        }
        Action::Redirect(r) => answer::h2_redirect(cx, s, r, conn.local.port()),
        Action::Forward(f) => {
            if let Err(e) = super::to_http1::forward(cx, conn, s, f, &m).await {
                answer::h2_error(cx, s, e);
            }
        }
    }
}

/// Phase 10: the stream's bytes counted, its access log entry, and a debug event.
#[allow(clippy::too_many_arguments)]
fn log(
    shared: &Shared,
    access_log: Option<&AccessLog>,
    conn: &ConnInfo,
    s: &H2Stream,
    protocol: Protocol,
    head: Option<&RequestHead>,
    rec: &Record,
    started: Option<Instant>,
) {
    shared
        .metrics
        .processed_bytes
        .fetch_add(s.received + s.sent, std::sync::atomic::Ordering::Relaxed);
    if let Some(log) = access_log {
        log.write(
            &Entry {
                tls: true,
                tls_info: conn.tls_info.as_deref(),
                client: conn.peer,
                local_port: conn.local.port(),
                head,
                rec,
                received_bytes: s.received,
                sent_bytes: s.sent,
                conn_trace: conn.trace,
                protocol,
            },
            &shared.metrics.access_log_dropped,
        );
    }
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let (method, path) = head
        .map(|h| {
            (
                String::from_utf8_lossy(h.method()).into_owned(),
                String::from_utf8_lossy(h.path()).into_owned(),
            )
        })
        .unwrap_or_default();
    tracing::debug!(
        client = %conn.peer,
        protocol = "h2",
        method,
        path,
        status = rec.status,
        target = ?rec.target,
        retried_from = ?rec.retried_from,
        target_status = ?rec.target_status,
        group = ?rec.group,
        rule = ?rec.rule,
        action = rec.action,
        error = ?rec.error,
        micros = started.map(|s| s.elapsed().as_micros() as u64).unwrap_or(0),
        "request"
    );
}
