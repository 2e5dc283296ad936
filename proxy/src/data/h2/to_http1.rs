//! The forward of an HTTP/2 stream to an `HTTP1` target group, in the order of
//! [`crate::data::forward`] and with its pieces (group pick and stickiness, transforms,
//! the target's request head, target pick, pool, retry policy): the request goes out as
//! HTTP/1.1 with ALB's header casing (names stay lower-case as HTTP/2 has them, except
//! `Host`, `X-Forwarded-For`/`-Proto`/`-Port` and `X-Amzn-Trace-Id`, which hostalb writes
//! itself), its body from the stream (`Content-Length` when the client gave one, else
//! chunked, request trailers in the last chunk); the response is read by the HTTP/1
//! parser and goes back as an HTTP/2 response without connection-specific fields, its
//! body as the client's flow-control window allows, chunked trailers as HTTP/2 trailers.
//!
//! A target that fails before the response head is answered as for HTTP/1 (502/504 ...);
//! one that fails mid-body resets the stream (`INTERNAL_ERROR`), so the client never
//! mistakes a cut body for a complete one. A client that resets its stream cancels the
//! request to the target (its connection is closed, not pooled).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ::h2::{Reason, RecvStream, SendStream};
use bytes::{BufMut, Bytes, BytesMut};
use hostalb_config::ProtocolVersion;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::server::ConnInfo;
use super::stream::H2Stream;
use crate::data::context::RequestCx;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::forward;
use crate::data::headers::{self, Forwarding};
use crate::data::retry::{Failure, Reached, RetryPolicy};
use crate::data::upstream::{self, Upstream};
use crate::http1::chunked::{ChunkedDecoder, Decoded, encode_chunk_head};
use crate::http1::response::ResponseHead;
use crate::http1::{BodyKind, FieldKind};
use crate::model::rules::{Forward, Match};
use crate::model::target::Target;

/// The forward action for an HTTP/2 stream. An error returned here has not been answered
/// (nothing reached the client): the stream task answers it.
pub(crate) async fn forward(
    cx: &mut RequestCx<'_>,
    conn: &ConnInfo,
    s: &mut H2Stream,
    fwd: &Forward,
    m: &Match<'_>,
) -> Result<(), ProxyError> {
    let (shared, listener, head) = (cx.shared, cx.listener, cx.head);
    let (group, set_cookie) = forward::pick_group(shared, cx.snap, head, fwd)?;
    let tls = group.cfg.protocol == hostalb_config::TargetGroupProtocol::Https;
    cx.rec.group = Some(group.state.name.clone());
    // ALB's protocol rules: gRPC only to GRPC groups, GRPC groups take POSTs only.
    match group.cfg.protocol_version {
        ProtocolVersion::Http1 if s.grpc => return Err(forward::protocol_mismatch()),
        ProtocolVersion::Grpc if !head.is_method(b"POST") => return Err(forward::protocol_mismatch()),
        ProtocolVersion::Http1 | ProtocolVersion::Http2 | ProtocolVersion::Grpc => {}
    }
    let rewritten = forward::apply_transforms(m.transforms, head)?;
    if head.expect_continue && !s.body.as_ref().is_none_or(RecvStream::is_end_stream) {
        // ALB answers `100 Continue` itself once the request is routed.
        let mut cont = http::Response::new(());
        *cont.status_mut() = http::StatusCode::CONTINUE;
        let _ = s.respond.send_informational(cont);
    }
    let mut out = BytesMut::with_capacity(head.buf.len() + 256);
    let forwarding = Forwarding {
        listener: &listener.cfg,
        texts: &conn.texts,
        local: conn.local,
        path_override: rewritten.path.as_deref(),
        host_override: rewritten.host.as_deref(),
        body: head.body,
        upgrade: false,
    };
    let trace_id = headers::write_request_head(&mut out, head, &forwarding);
    if cx.logging {
        cx.rec.trace_id = out.get(trace_id).map(Box::from);
        cx.rec.group_arn = Some(group.state.arn.clone());
    }
    if group.cfg.protocol_version != ProtocolVersion::Http1 {
        return super::to_http2::forward(cx, s, group, set_cookie, &out).await;
    }
    // Only a request without a body is kept whole for a retry of kind (b).
    let retry = RetryPolicy::new(head, head.body.is_empty(), group.cfg.retry_idempotent);
    let mut attempts = forward::Attempts::new(retry, forward::sticky_target(shared, group, head));
    let (inflight, done) = loop {
        let (target, inflight) = attempts.next(shared, group, &mut cx.rec)?;
        match attempt(cx, s, &target, &out, attempts.retrying(), tls).await {
            Ok(done) => break (inflight, done),
            Err(failure) => attempts.failed(group, &target, failure, &mut cx.rec)?,
        }
    };
    let Attempted {
        mut stream,
        mut upbuf,
        resp,
        body_sent,
        sent_at,
    } = done;
    if cx.logging {
        cx.rec.answered = Some(Instant::now());
    }
    let idle = listener.cfg.idle_timeout;
    let target = inflight.target().clone();
    let mut set_cookie = set_cookie;
    forward::write_target_cookies(shared, group, &target, head, &resp, &mut set_cookie);
    let response_time_us = sent_at.elapsed().as_micros() as u64;
    group
        .state
        .metrics
        .responses
        .record(resp.status, response_time_us);
    target.metrics.responses.record(resp.status, response_time_us);
    cx.rec.target_status = Some(resp.status);
    cx.rec.status = resp.status;
    if resp.status == 101 {
        // HTTP/2 has no upgrade: hostalb never asks for one on its behalf.
        return Err(ProxyError::new(ErrorKind::BadResponse("UnexpectedUpgrade")));
    }
    let (h2_resp, head_len) = response_head(&resp, &set_cookie);
    let empty = resp.body.is_empty();
    s.sent += head_len as u64;
    let mut send = match s.respond.send_response(h2_resp, empty) {
        Ok(send) => send,
        Err(_) => {
            cx.rec.error = Some("ClientClosedDuringResponse");
            return Ok(());
        }
    };
    if cx.logging {
        cx.rec.replied = Some(Instant::now());
    }
    let relayed = if empty {
        Ok(())
    } else {
        // Biased as the HTTP/1 relay: a body already in hand beats a cut due at once.
        tokio::select! {
            biased;
            r = relay(&mut stream, &mut upbuf, resp.body, &mut send, idle, &mut s.sent) => r,
            // The deregistration delay ran out mid-body.
            _ = target.cut_signal() => Err(RelayError::Target("DeregistrationDelayExpired")),
        }
    };
    match relayed {
        Ok(()) => {
            if body_sent && resp.keep_alive && head.target_reusable() && upbuf.is_empty() {
                target.pool.put(stream);
            }
        }
        Err(e) => {
            // The head is out: a cut body must not look complete.
            send.send_reset(Reason::INTERNAL_ERROR);
            cx.rec.error = Some(e.reason());
        }
    }
    drop(inflight);
    Ok(())
}

/// An attempt that got a response head.
struct Attempted {
    stream: Upstream,
    /// Bytes read from the target after the head (the start of the body).
    upbuf: BytesMut,
    resp: ResponseHead,
    /// The request body was sent completely (a target may answer before reading it all).
    body_sent: bool,
    sent_at: Instant,
}

/// One attempt at a target: a pooled connection (unless `fresh`) or a new one, then the
/// exchange, cut short when the target's deregistration delay runs out or the client
/// resets the stream.
async fn attempt(
    cx: &mut RequestCx<'_>,
    s: &mut H2Stream,
    target: &Target,
    head_bytes: &[u8],
    fresh: bool,
    tls: bool,
) -> Result<Attempted, Failure> {
    let idle = cx.listener.cfg.idle_timeout;
    let pooled = if fresh { None } else { target.pool.take(idle, tls) };
    let mut stream = match pooled {
        Some(st) => st,
        None => upstream::open(target.addr, tls)
            .await
            .map_err(|e| Failure::new(e, Reached::Nothing))?,
    };
    let is_head = cx.head.is_method(b"HEAD");
    let sent_at = Instant::now();
    cx.rec.dispatched = Some(sent_at);
    let mut upbuf = BytesMut::new();
    let framing = cx.head.body;
    let H2Stream {
        respond,
        body,
        received,
        ..
    } = s;
    let Some(body) = body.as_mut() else {
        return Err(Failure::new(
            ProxyError::new(ErrorKind::ClientClosed),
            Reached::Nothing,
        ));
    };
    let reset = std::future::poll_fn(|ctx| respond.poll_reset(ctx));
    let exchanged = tokio::select! {
        biased;
        r = exchange(body, &mut stream, head_bytes, framing, is_head, idle, &mut upbuf, received) => r,
        _ = target.cut_signal() => Err(Failure::new(ProxyError::new(ErrorKind::Deregistered), Reached::Request)),
        // The client cancelled: so is the request to the target (its connection closes).
        _ = reset => Err(Failure::new(ProxyError::new(ErrorKind::ClientClosed), Reached::Request)),
    };
    let (resp, body_sent) = exchanged?;
    Ok(Attempted {
        stream,
        upbuf,
        resp,
        body_sent,
        sent_at,
    })
}

/// Sends the request (head, then the body from the stream) and reads the response head.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    body: &mut RecvStream,
    stream: &mut Upstream,
    head_bytes: &[u8],
    framing: BodyKind,
    is_head: bool,
    idle: Duration,
    upbuf: &mut BytesMut,
    received: &mut u64,
) -> Result<(ResponseHead, bool), Failure> {
    forward::send_head(stream, head_bytes, idle).await?;
    let (mut ur, mut uw) = stream.split();
    let received_any = AtomicBool::new(false);
    let mut spare = Vec::new();
    let recv = forward::read_response_head(&mut ur, upbuf, is_head, &received_any, &mut spare);
    tokio::pin!(recv);
    let answered =
        |e: ProxyError, received_any: &AtomicBool| Failure::new(e, forward::reached_after(received_any));
    // The body, while watching for an early response.
    let mut body_sent = framing.is_empty();
    if !body_sent {
        let send = send_body(body, &mut uw, framing == BodyKind::Chunked, idle, received);
        tokio::pin!(send);
        tokio::select! {
            biased;
            r = &mut recv => {
                return r.map(|h| (h, false)).map_err(|e| answered(e, &received_any));
            }
            sent = &mut send => match sent {
                Ok(()) => body_sent = true,
                Err(e) => return Err(answered(e, &received_any)),
            },
        }
    }
    match tokio::time::timeout(idle, recv).await {
        Ok(r) => r.map(|h| (h, body_sent)).map_err(|e| answered(e, &received_any)),
        Err(_) => Err(answered(
            ProxyError::new(ErrorKind::ResponseTimeout),
            &received_any,
        )),
    }
}

/// Copies the request body from the stream to the target, chunk-encoded when `chunked`,
/// giving the client window back as each piece is written (so a slow target slows the
/// client, and nothing piles up here); request trailers go in the last chunk.
async fn send_body<W: AsyncWrite + Unpin>(
    body: &mut RecvStream,
    w: &mut W,
    chunked: bool,
    idle: Duration,
    received: &mut u64,
) -> Result<(), ProxyError> {
    let mut frame = BytesMut::new();
    loop {
        let next = tokio::time::timeout(idle, body.data())
            .await
            .map_err(|_| ProxyError::new(ErrorKind::ClientIdle))?;
        let data = match next {
            None => break,
            Some(Ok(data)) => data,
            Some(Err(e)) => return Err(client_stream_error(&e)),
        };
        let n = data.len();
        *received += n as u64;
        if n == 0 {
            continue;
        }
        if chunked {
            frame.clear();
            encode_chunk_head(&mut frame, n);
            write_target(w, &frame, idle).await?;
            write_target(w, &data, idle).await?;
            write_target(w, b"\r\n", idle).await?;
        } else {
            write_target(w, &data, idle).await?;
        }
        let _ = body.flow_control().release_capacity(n);
    }
    if chunked {
        let trailers = tokio::time::timeout(idle, body.trailers())
            .await
            .map_err(|_| ProxyError::new(ErrorKind::ClientIdle))?
            .map_err(|e| client_stream_error(&e))?;
        frame.clear();
        frame.put_slice(b"0\r\n");
        for (name, value) in trailers.iter().flatten() {
            frame.put_slice(name.as_str().as_bytes());
            frame.put_slice(b": ");
            frame.put_slice(value.as_bytes());
            frame.put_slice(b"\r\n");
        }
        frame.put_slice(b"\r\n");
        write_target(w, &frame, idle).await?;
    }
    Ok(())
}

/// What an error reading the request stream means: the client reset it (or went away),
/// or broke a stream rule (a body longer or shorter than its `content-length`).
fn client_stream_error(e: &::h2::Error) -> ProxyError {
    if e.is_remote() || e.is_io() || e.is_go_away() {
        ProxyError::new(ErrorKind::ClientClosed)
    } else {
        ProxyError::new(ErrorKind::ClientBody("BadContentLength"))
    }
}

async fn write_target<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<(), ProxyError> {
    match tokio::time::timeout(idle, w.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ProxyError::io(ErrorKind::TargetClosed, e)),
        Err(_) => Err(ProxyError::new(ErrorKind::ResponseTimeout)),
    }
}

/// The HTTP/2 response for a target's HTTP/1 response head: status and fields, without
/// the connection-specific ones (`Connection` and what it names, `Keep-Alive`,
/// `Transfer-Encoding`, `Upgrade`, `TE`, `Trailer`, `Proxy-Connection`), names
/// lower-cased; `content-length` kept when it tells the body's length. A field HTTP/2
/// cannot carry is left out. `extra`: stickiness `Set-Cookie` lines. Returns the response
/// and the head's size as HTTP/1 text (for the byte counts).
fn response_head(resp: &ResponseHead, extra: &[u8]) -> (http::Response<()>, usize) {
    let mut out = http::Response::new(());
    *out.status_mut() = http::StatusCode::from_u16(resp.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let h = out.headers_mut();
    let buf = &resp.buf[..];
    let keep_length = !matches!(resp.body, BodyKind::Chunked | BodyKind::UntilClose);
    for f in &resp.fields {
        if f.connection_listed {
            continue;
        }
        let keep = match f.kind {
            FieldKind::ContentLength => keep_length,
            kind => !kind.is_hop_by_hop(),
        };
        if !keep {
            continue;
        }
        append(h, f.name.get(buf), f.value.get(buf));
    }
    for line in extra.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = memchr::memchr(b':', line) {
            append(h, &line[..colon], crate::http1::trim_ows(&line[colon + 1..]));
        }
    }
    (out, resp.buf.len() + extra.len())
}

fn append(h: &mut HeaderMap, name: &[u8], value: &[u8]) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        h.append(n, v);
    }
}

/// How a response body relay failed.
#[derive(Debug)]
enum RelayError {
    /// The target closed, stalled or sent a malformed body.
    Target(&'static str),
    /// The client reset the stream, went away, or did not read for the idle timeout.
    Client(&'static str),
}

impl RelayError {
    fn reason(&self) -> &'static str {
        match self {
            RelayError::Target(r) | RelayError::Client(r) => r,
        }
    }
}

/// Relays the response body from the target into the stream: decoded from its HTTP/1
/// framing, sent as the client's window allows, trailers as HTTP/2 trailers.
async fn relay<R: AsyncRead + Unpin>(
    rd: &mut R,
    upbuf: &mut BytesMut,
    kind: BodyKind,
    send: &mut SendStream<Bytes>,
    idle: Duration,
    sent: &mut u64,
) -> Result<(), RelayError> {
    let mut chunked = ChunkedDecoder::default();
    let mut left = match kind {
        BodyKind::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        // The next decoded piece of the body, or its end (with trailers).
        let piece = match kind {
            BodyKind::Empty => break,
            BodyKind::Length(_) if left == 0 => break,
            BodyKind::Length(_) => {
                if upbuf.is_empty() && read_target(rd, upbuf, idle).await? == 0 {
                    return Err(RelayError::Target("TargetClosedDuringResponse"));
                }
                let n = (upbuf.len() as u64).min(left) as usize;
                left -= n as u64;
                upbuf.split_to(n).freeze()
            }
            BodyKind::UntilClose => {
                if upbuf.is_empty() && read_target(rd, upbuf, idle).await? == 0 {
                    break;
                }
                upbuf.split().freeze()
            }
            BodyKind::Chunked => match chunked.decode(upbuf) {
                Ok(Decoded::Data(d)) => d,
                Ok(Decoded::End { trailers }) => {
                    return finish(send, &trailers);
                }
                Ok(Decoded::NeedMore) => {
                    if read_target(rd, upbuf, idle).await? == 0 {
                        return Err(RelayError::Target("TargetClosedDuringResponse"));
                    }
                    continue;
                }
                Err(e) => return Err(RelayError::Target(e.0)),
            },
        };
        *sent += piece.len() as u64;
        send_all(send, piece, idle).await?;
    }
    finish(send, b"")
}

/// Ends the stream: with trailers when the target sent some, else an empty last frame.
fn finish(send: &mut SendStream<Bytes>, trailer_lines: &[u8]) -> Result<(), RelayError> {
    let mut trailers = HeaderMap::new();
    for line in trailer_lines.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = &line[..colon];
            // Framing and connection fields are not trailers HTTP/2 may carry.
            if FieldKind::of(name).is_hop_by_hop() {
                continue;
            }
            append(&mut trailers, name, crate::http1::trim_ows(&line[colon + 1..]));
        }
    }
    let sent = if trailers.is_empty() {
        send.send_data(Bytes::new(), true)
    } else {
        send.send_trailers(trailers)
    };
    sent.map_err(|_| RelayError::Client("ClientClosedDuringResponse"))
}

async fn read_target<R: AsyncRead + Unpin>(
    rd: &mut R,
    upbuf: &mut BytesMut,
    idle: Duration,
) -> Result<usize, RelayError> {
    upbuf.reserve(16 * 1024);
    match tokio::time::timeout(idle, rd.read_buf(upbuf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(_)) => Err(RelayError::Target("TargetClosedDuringResponse")),
        Err(_) => Err(RelayError::Target("TargetIdleDuringResponse")),
    }
}

/// Sends `data` as the stream's flow-control window allows: capacity is reserved, and
/// the `h2` crate assigns it as the client opens its window. A client that opens none for
/// the idle timeout (a zero-window reader) loses the stream.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes, idle: Duration) -> Result<(), RelayError> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = tokio::time::timeout(idle, std::future::poll_fn(|cx| send.poll_capacity(cx)))
            .await
            .map_err(|_| RelayError::Client("ClientIdleDuringResponse"))?;
        let n = match granted {
            Some(Ok(n)) => n,
            _ => return Err(RelayError::Client("ClientClosedDuringResponse")),
        };
        if n == 0 {
            continue;
        }
        let piece = data.split_to(n.min(data.len()));
        send.send_data(piece, false)
            .map_err(|_| RelayError::Client("ClientClosedDuringResponse"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::response;

    #[test]
    fn the_http1_response_becomes_an_http2_head_without_connection_fields() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\nX-App: yes\r\n\r\n"[..],
        );
        let resp = response::parse(&mut buf, false)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse"));
        let (h2, _) = response_head(&resp, b"Set-Cookie: AWSALB=x; Path=/\r\n");
        let h = h2.headers();
        assert_eq!(h2.status(), 200);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-app"], "yes");
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, vec!["a=1", "AWSALB=x; Path=/"]);
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "transfer-encoding",
            "trailer",
            "upgrade",
            "content-length",
        ] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..]);
        let resp = response::parse(&mut buf, false)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse"));
        assert_eq!(response_head(&resp, b"").0.headers()["content-length"], "5");
    }
}
