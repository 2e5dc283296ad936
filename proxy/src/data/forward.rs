//! The forward action, in order: pick the target group (weights, group stickiness) ->
//! apply the rule's transforms -> build the target's request head -> pick a target ->
//! reuse or open a connection -> send head and body while watching for the response ->
//! relay the response -> give the connection back to the pool when it is clean.
//!
//! A failed attempt is sent again only as [`crate::data::retry`] says; an error returned
//! from here is answered by [`crate::data::answer::error`], the one answer site.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use hostalb_config::{ProtocolVersion, Stickiness, TargetGroupProtocol, Transform};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::sleep;

use crate::data::answer::keep_alive_allowed;
use crate::data::body::{BodyError, BodyTransfer, flush};
use crate::data::conn::{ClientConn, ClientRead, Next, Record};
use crate::data::context::RequestCx;
use crate::data::cookies::{self, CookieKind};
use crate::data::errors::{ErrorKind, ProxyError, Side};
use crate::data::headers::{self, Forwarding, ToClient};
use crate::data::retry::{Failure, Reached, RetryPolicy};
use crate::data::tunnel;
use crate::data::upstream::{self, Upstream};
use crate::http1::request::RequestHead;
use crate::http1::response::{self, ResponseHead};
use crate::http1::{BodyKind, FieldKind, Version};
use crate::model::metrics::inc;
use crate::model::rules::{Forward, Match};
use crate::model::shared::Shared;
use crate::model::snapshot::Snapshot;
use crate::model::target::{InFlight, Target};
use crate::model::target_group::GroupRt;
use crate::{clock, rng};

/// The group stickiness cookie.
const GROUP_COOKIE: &str = "AWSALBTG";
/// The target stickiness cookie of lb_cookie groups (the same name for every group).
const TARGET_COOKIE: &str = "AWSALB";
/// The target stickiness cookie of app_cookie groups (ALB shards it as -0..-3 past 4 K;
/// hostalb's value is far smaller, so -0 is all there is).
const APP_COOKIE: &str = "AWSALBAPP-0";
/// Pipelined bytes read from the client while waiting for a response, at most.
const MAX_READ_AHEAD: usize = 80 * 1024;

/// The forward action for the request in `cx`. An error returned here has not been
/// answered yet: the session hands it to [`crate::data::answer::error`].
pub(crate) async fn forward<R, W>(
    cx: &mut RequestCx<'_>,
    c: &mut ClientConn<R, W>,
    fwd: &Forward,
    m: &Match<'_>,
) -> Result<Next, ProxyError>
where
    R: ClientRead,
    W: AsyncWrite + Unpin + Send,
{
    let (shared, listener, head) = (cx.shared, cx.listener, cx.head);
    // Pick the target group.
    let (group, set_cookie) = pick_group(shared, cx.snap, head, fwd)?;
    cx.rec.group = Some(group.state.name.clone());
    // ALB: an HTTP/1 request for an HTTP2 or GRPC group is 464 (those groups take
    // HTTP/2 requests only, which the HTTP/2 front end forwards).
    if group.cfg.protocol_version != ProtocolVersion::Http1 {
        return Err(protocol_mismatch());
    }
    let tls = group.cfg.protocol == TargetGroupProtocol::Https;

    // Apply the rule's transforms.
    let rewritten = apply_transforms(m.transforms, head)?;

    // The request head for the target, built once and written again on a retry. A small
    // body already read goes in the same write (and keeps the request whole for a retry).
    let mut out = std::mem::take(&mut c.spare_out);
    out.clear();
    out.reserve(head.buf.len() + 256);
    let forwarding = Forwarding {
        listener: &listener.cfg,
        texts: &c.texts,
        local: c.local,
        path_override: rewritten.path.as_deref(),
        host_override: rewritten.host.as_deref(),
        body: head.body,
        upgrade: head.upgrade.is_some(),
    };
    let trace_id = headers::write_request_head(&mut out, head, &forwarding);
    if cx.logging {
        cx.rec.trace_id = out.get(trace_id).map(Box::from);
        cx.rec.group_arn = Some(group.state.arn.clone());
    }
    if !head.expect_continue {
        cx.body
            .step_buffered(&mut c.rbuf, &mut out)
            .map_err(ProxyError::request_body)?;
    }
    let retry = RetryPolicy::new(head, cx.body.is_done(), group.cfg.retry_idempotent);
    let mut attempts = Attempts::new(retry, sticky_target(shared, group, head));
    let (inflight, done) = loop {
        let (target, inflight) = attempts.next(shared, group, &mut cx.rec)?;
        match attempt(cx, c, &target, &out, attempts.retrying(), tls).await {
            Ok(done) => break (inflight, done),
            Err(failure) => attempts.failed(group, &target, failure, &mut cx.rec)?,
        }
    };
    let Attempted {
        mut stream,
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
    write_target_cookies(shared, group, &target, head, &resp, &mut set_cookie);
    let response_time_us = sent_at.elapsed().as_micros() as u64;
    group
        .state
        .metrics
        .responses
        .record(resp.status, response_time_us);
    target.metrics.responses.record(resp.status, response_time_us);
    cx.rec.target_status = Some(resp.status);
    cx.rec.status = resp.status;

    // A WebSocket upgrade: the connection becomes a tunnel to this target.
    if resp.status == 101 {
        if head.upgrade.is_none() {
            return Err(ProxyError::new(ErrorKind::BadResponse("UnexpectedUpgrade")));
        }
        let to = ToClient {
            version: head.version,
            body: BodyKind::Empty,
            close: false,
            upgrade: true,
        };
        headers::write_response_head(&mut c.wbuf, &resp, &to, &set_cookie);
        if cx.logging {
            cx.rec.replied = Some(Instant::now());
        }
        if flush(&mut c.wr, &mut c.wbuf, idle).await.is_err() {
            return Ok(Next::Close);
        }
        // Pinned to this target until either side ends it (data/tunnel.rs); logged then.
        let end = tunnel::run(
            &mut c.rd,
            &mut c.wr,
            &mut stream,
            &mut c.rbuf,
            &mut c.upbuf,
            &target,
            shared.drain_signal(),
            idle,
        )
        .await;
        cx.rec.error = end.reason();
        drop(inflight);
        return Ok(Next::Close);
    }

    // Relay the response.
    let to_body = match (resp.body, head.version) {
        (BodyKind::Chunked | BodyKind::UntilClose, Version::Http11) => BodyKind::Chunked,
        (BodyKind::Chunked | BodyKind::UntilClose, Version::Http10) => BodyKind::UntilClose,
        (other, _) => other,
    };
    let close =
        !keep_alive_allowed(shared, listener, c, head) || !body_sent || to_body == BodyKind::UntilClose;
    let to = ToClient {
        version: head.version,
        body: to_body,
        close,
        upgrade: false,
    };
    headers::write_response_head(&mut c.wbuf, &resp, &to, &set_cookie);
    if cx.logging {
        cx.rec.replied = Some(Instant::now());
    }
    let mut relay = BodyTransfer::new(resp.body, to_body);
    // Biased: a body already in hand (the common case of a small response that came with
    // its head) is delivered even when the cut is due at the same moment; the cut ends
    // only a body still arriving.
    let relayed = tokio::select! {
        biased;
        r = relay.run(&mut stream, &mut c.upbuf, &mut c.wr, &mut c.wbuf, idle) => r,
        // The deregistration delay ran out mid-body: the client sees a truncated body.
        _ = target.cut_signal() => Err(BodyError::SenderClosed),
    };
    let clean = relayed.is_ok() && relay.is_done() && body_sent && c.upbuf.is_empty();
    c.upbuf.clear();
    if let Err(e) = relayed {
        if !relay.flushed() {
            // Nothing reached the client yet (the bad chunk came with the head): the
            // client gets a clean 502 instead of a response cut short.
            c.wbuf.clear();
            let reason = match e {
                BodyError::Malformed(r) => r,
                _ => "TargetClosedDuringResponse",
            };
            return Err(ProxyError::new(ErrorKind::BadResponse(reason)));
        }
        // The status line is out: all that can be done is to cut the client connection so
        // that it sees a truncated body, never a complete-looking one.
        cx.rec.error = Some(ProxyError::response_body_reason(&e));
        return Ok(Next::Close);
    }
    if clean && resp.keep_alive && head.target_reusable() {
        target.pool.put(stream);
    }
    drop(inflight);
    // Hand the buffers back for the next request on this connection.
    c.spare_response_fields = resp.fields;
    out.clear();
    c.spare_out = out;
    Ok(if close { Next::Close } else { Next::KeepAlive })
}

/// ALB's 464: the request's protocol does not suit the target group's protocol version
/// (an HTTP/1 request for an HTTP2 or GRPC group, gRPC for an HTTP1 group, a non-POST
/// request for a GRPC group).
pub(crate) fn protocol_mismatch() -> ProxyError {
    ProxyError::new(ErrorKind::ProtocolMismatch)
}

/// An attempt that got a response head.
struct Attempted {
    stream: Upstream,
    resp: ResponseHead,
    /// The request body was sent completely (a target may answer before reading it all).
    body_sent: bool,
    /// When the request was sent, for the target's response time.
    sent_at: Instant,
}

/// One attempt at a target: a pooled connection (unless `fresh`) or a new one (TLS when
/// `tls`), then the exchange, cut short when the target's deregistration delay runs out.
async fn attempt<R, W>(
    cx: &mut RequestCx<'_>,
    c: &mut ClientConn<R, W>,
    target: &Target,
    head_bytes: &[u8],
    fresh: bool,
    tls: bool,
) -> Result<Attempted, Failure>
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    let idle = cx.listener.cfg.idle_timeout;
    // Picked from a snapshot taken just before its deregistration delay (0) ran out:
    // nothing is sent, another target takes the request.
    if target.is_cut() {
        return Err(Failure::new(
            ProxyError::new(ErrorKind::Deregistered),
            Reached::Nothing,
        ));
    }
    let pooled = if fresh { None } else { target.pool.take(idle, tls) };
    let mut stream = match pooled {
        Some(s) => s,
        None => upstream::open(target.addr, tls)
            .await
            .map_err(|e| Failure::new(e, Reached::Nothing))?,
    };
    if cx.head.expect_continue && !cx.continue_sent {
        // ALB answers `100 Continue` itself once the request is routed.
        c.wbuf.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if flush(&mut c.wr, &mut c.wbuf, idle).await.is_err() {
            return Err(Failure::new(
                ProxyError::new(ErrorKind::ClientClosed),
                Reached::Nothing,
            ));
        }
        cx.continue_sent = true;
    }
    let is_head = cx.head.is_method(b"HEAD");
    let sent_at = Instant::now();
    cx.rec.dispatched = Some(sent_at);
    // Biased: an exchange that has its answer wins over a cut due at the same moment.
    let exchanged = tokio::select! {
        biased;
        r = exchange(c, &mut stream, head_bytes, &mut cx.body, is_head, idle) => r,
        _ = target.cut_signal() => Err(Failure::new(ProxyError::new(ErrorKind::Deregistered), Reached::Request)),
    };
    let (resp, body_sent) = exchanged.map_err(|mut f| {
        // Cut after part of a response head came (it is read into `upbuf`): never sent
        // again.
        if matches!(f.err.kind, ErrorKind::Deregistered) && !c.upbuf.is_empty() {
            f.reached = Reached::Response;
        }
        f
    })?;
    Ok(Attempted {
        stream,
        resp,
        body_sent,
        sent_at,
    })
}

/// Sends the request (head, then the rest of the body) and reads the response head.
/// Returns the head and whether the request body was sent completely (a target may
/// answer early, before reading it all).
async fn exchange<R, W>(
    c: &mut ClientConn<R, W>,
    stream: &mut Upstream,
    head_bytes: &[u8],
    body: &mut BodyTransfer,
    is_head: bool,
    idle: Duration,
) -> Result<(ResponseHead, bool), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    c.upbuf.clear();
    // The head, and any body that came with it.
    send_head(stream, head_bytes, idle).await?;
    let (mut ur, mut uw) = stream.split();
    let received_any = AtomicBool::new(false);
    let recv = read_response_head(
        &mut ur,
        &mut c.upbuf,
        is_head,
        &received_any,
        &mut c.spare_response_fields,
    );
    tokio::pin!(recv);
    let answered = |e: ProxyError, received_any: &AtomicBool| Failure::new(e, reached_after(received_any));

    // The rest of the body, while watching for an early response.
    let mut body_sent = body.is_done();
    if !body_sent {
        let mut scratch = BytesMut::new();
        let send = body.run(&mut c.rd, &mut c.rbuf, &mut uw, &mut scratch, idle);
        tokio::pin!(send);
        tokio::select! {
            biased;
            r = &mut recv => {
                return r.map(|h| (h, false)).map_err(|e| answered(e, &received_any));
            }
            s = &mut send => match s {
                Ok(()) => body_sent = true,
                Err(e) => return Err(answered(ProxyError::request_body(e), &received_any)),
            },
        }
    }

    // The response head, noticing a client that goes away meanwhile (ALB's 460) and
    // keeping what it pipelines.
    let deadline = sleep(idle);
    tokio::pin!(deadline);
    loop {
        c.rbuf.reserve(1024);
        tokio::select! {
            biased;
            r = &mut recv => {
                return r.map(|h| (h, body_sent)).map_err(|e| answered(e, &received_any));
            }
            _ = &mut deadline => {
                return Err(answered(ProxyError::new(ErrorKind::ResponseTimeout), &received_any));
            }
            n = c.rd.read_buf(&mut c.rbuf), if c.rbuf.len() < MAX_READ_AHEAD => match n {
                Ok(0) | Err(_) => {
                    return Err(answered(ProxyError::new(ErrorKind::ClientClosed), &received_any));
                }
                Ok(_) => {}
            },
        }
    }
}

/// Writes a request head (and what came with it) in as few writes as possible, for both
/// front ends. A failure on the very first write means the target got nothing.
pub(crate) async fn send_head(
    stream: &mut Upstream,
    head_bytes: &[u8],
    idle: Duration,
) -> Result<(), Failure> {
    let mut written = 0;
    while written < head_bytes.len() {
        let reached = if written == 0 {
            Reached::Nothing
        } else {
            Reached::Request
        };
        match tokio::time::timeout(idle, stream.write(&head_bytes[written..])).await {
            Ok(Ok(0)) => return Err(Failure::new(ProxyError::new(ErrorKind::TargetClosed), reached)),
            Ok(Err(e)) => return Err(Failure::new(ProxyError::io(ErrorKind::TargetClosed, e), reached)),
            Err(_) => return Err(Failure::new(ProxyError::new(ErrorKind::ResponseTimeout), reached)),
            Ok(Ok(n)) => written += n,
        }
    }
    Ok(())
}

/// How far a request that was sent got when it failed: whether any byte of a response
/// came back ([`read_response_head`] sets `received_any`).
pub(crate) fn reached_after(received_any: &AtomicBool) -> Reached {
    if received_any.load(Relaxed) {
        Reached::Response
    } else {
        Reached::Request
    }
}

/// Reads one final response head (interim 1xx responses other than 101 are dropped:
/// hostalb answered `100 Continue` itself).
pub(crate) async fn read_response_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    is_head: bool,
    received_any: &AtomicBool,
    spare: &mut Vec<crate::http1::fields::HeaderField>,
) -> Result<ResponseHead, ProxyError> {
    loop {
        while !buf.is_empty() {
            match response::parse_with(buf, is_head, spare) {
                Ok(Some(h)) if h.is_informational() && h.status != 101 => continue,
                Ok(Some(h)) => return Ok(h),
                Ok(None) => break,
                Err(response::BadResponse(reason)) => {
                    return Err(ProxyError::new(ErrorKind::BadResponse(reason)));
                }
            }
        }
        buf.reserve(8192);
        match rd.read_buf(buf).await {
            Ok(0) => return Err(ProxyError::new(ErrorKind::TargetClosed)),
            Err(e) => return Err(ProxyError::io(ErrorKind::TargetClosed, e)),
            Ok(_) => received_any.store(true, Relaxed),
        }
    }
}

/// The attempts of one forward, for both front ends: the target a valid stickiness
/// cookie names first, then the group's pick, avoiding the target that failed; a failed
/// attempt goes again only as the one [`RetryPolicy`] says.
#[derive(Debug)]
pub(crate) struct Attempts {
    retry: RetryPolicy,
    /// Target stickiness: a valid cookie naming a target that still takes requests.
    sticky: Option<Arc<Target>>,
    /// The target whose attempt failed: a retry goes to another one when there is one.
    avoid: Option<SocketAddr>,
}

impl Attempts {
    pub(crate) fn new(retry: RetryPolicy, sticky: Option<Arc<Target>>) -> Attempts {
        Attempts {
            retry,
            sticky,
            avoid: None,
        }
    }

    /// This is a retry: it goes on a new connection.
    pub(crate) fn retrying(&self) -> bool {
        self.retry.retrying()
    }

    /// The next attempt's target, counted (ALB's RequestCount once per request whatever
    /// happens next, UnhealthyRoutingRequestCount when the group fails open) and recorded.
    pub(crate) fn next(
        &mut self,
        shared: &Shared,
        group: &GroupRt,
        rec: &mut Record,
    ) -> Result<(Arc<Target>, InFlight), ProxyError> {
        // A retry goes to another target when there is one, cookie or not.
        let picked = match self.sticky.take() {
            Some(t) if !self.retry.retrying() => Some(t),
            _ => group.pick(self.avoid).cloned(),
        };
        let Some(target) = picked else {
            return Err(ProxyError::new(ErrorKind::NoTargets));
        };
        if group.fail_open {
            inc(&group.state.metrics.unhealthy_routing_requests);
        }
        let inflight = target.begin();
        if rec.target.is_none() {
            inc(&shared.metrics.request_count);
            inc(&group.state.metrics.request_count);
        }
        rec.target = Some(target.addr);
        Ok((target, inflight))
    }

    /// After a failed attempt at `target`: a target's failure is counted; `Ok` when the
    /// retry policy sends the request again, else the error to answer.
    pub(crate) fn failed(
        &mut self,
        group: &GroupRt,
        target: &Target,
        failure: Failure,
        rec: &mut Record,
    ) -> Result<(), ProxyError> {
        // A target cut before anything was sent to it had no connection error.
        let cut_unused =
            matches!(failure.err.kind, ErrorKind::Deregistered) && failure.reached == Reached::Nothing;
        if failure.err.side() == Side::Target && !cut_unused {
            count_connection_error(group, target, &failure.err);
        }
        if self.retry.take(&failure, group.routable.len() > 1) {
            self.avoid = Some(target.addr);
            rec.retried_from = Some(target.addr);
            return Ok(());
        }
        Err(failure.err)
    }
}

pub(crate) fn count_connection_error(group: &GroupRt, target: &Target, err: &ProxyError) {
    inc(&target.connection_errors);
    match err.kind {
        ErrorKind::TargetTls | ErrorKind::TargetTlsTimeout => {
            inc(&group.state.metrics.target_tls_negotiation_errors)
        }
        _ => inc(&group.state.metrics.target_connection_errors),
    }
}

/// Chooses the target group of a forward: the one the group-stickiness cookie names when
/// it is valid and still in the action with a weight, else by weight. Returns the group
/// and the `Set-Cookie` lines to add to the response.
pub(crate) fn pick_group<'s>(
    shared: &Shared,
    snap: &'s Snapshot,
    head: &RequestHead,
    fwd: &Forward,
) -> Result<(&'s Arc<GroupRt>, Vec<u8>), ProxyError> {
    let now = clock::unix_seconds();
    let mut chosen = None;
    if fwd.stickiness.is_some() {
        if let Some(value) = cookies::find(head.values_of(FieldKind::Cookie), GROUP_COOKIE.as_bytes()) {
            let sticky = shared
                .cookie_key
                .open(CookieKind::TargetGroup, value)
                .and_then(|p| <[u8; 16]>::try_from(p.as_slice()).ok())
                .and_then(|p| {
                    let hash = u64::from_le_bytes(p[..8].try_into().ok()?);
                    let expires = u64::from_le_bytes(p[8..].try_into().ok()?);
                    (expires > now).then_some(hash)
                })
                .and_then(|hash| {
                    fwd.groups
                        .iter()
                        .position(|g| g.name_hash == hash && g.weight > 0)
                });
            if sticky.is_none() {
                inc(&shared.metrics.non_sticky_requests);
            }
            chosen = sticky;
        }
    }
    let chosen = match chosen {
        Some(i) => i,
        None if fwd.groups.len() == 1 && fwd.groups[0].weight > 0 => 0,
        None if fwd.total_weight == 0 => return Err(ProxyError::new(ErrorKind::NoWeight)),
        None => {
            let mut r = rng::below(fwd.total_weight);
            let mut index = 0;
            for (i, g) in fwd.groups.iter().enumerate() {
                if r < u64::from(g.weight) {
                    index = i;
                    break;
                }
                r -= u64::from(g.weight);
            }
            index
        }
    };
    let weighted = &fwd.groups[chosen];
    let group = snap
        .groups
        .get(weighted.index)
        .ok_or_else(|| ProxyError::new(ErrorKind::NoTargets))?;
    let mut set_cookie = Vec::new();
    if let Some(duration) = fwd.stickiness {
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&weighted.name_hash.to_le_bytes());
        payload[8..].copy_from_slice(&(now + duration.as_secs().max(1)).to_le_bytes());
        let sealed = shared.cookie_key.seal(CookieKind::TargetGroup, &payload);
        let mut buf = BytesMut::new();
        cookies::write_set_cookie(&mut buf, GROUP_COOKIE, &sealed, true);
        set_cookie = buf.to_vec();
    }
    Ok((group, set_cookie))
}

/// The target a valid stickiness cookie names, when it still takes new requests (is in
/// the routable set). A cookie that does not open, has expired or names a target that is
/// unhealthy or gone gets a normal pick (counted as `NonStickyRequestCount`).
pub(crate) fn sticky_target(shared: &Shared, group: &GroupRt, head: &RequestHead) -> Option<Arc<Target>> {
    let (name, kind): (&[u8], CookieKind) = match &group.cfg.stickiness {
        None => return None,
        Some(Stickiness::LbCookie { .. }) => (TARGET_COOKIE.as_bytes(), CookieKind::Target),
        Some(Stickiness::AppCookie { .. }) => (APP_COOKIE.as_bytes(), CookieKind::AppTarget),
    };
    let value = cookies::find(head.values_of(FieldKind::Cookie), name)?;
    let found = shared
        .cookie_key
        .open(kind, value)
        .and_then(|p| cookies::read_target_payload(&p))
        .filter(|(g, _, expires)| *g == group.name_hash && *expires > clock::unix_seconds())
        .and_then(|(_, addr, _)| group.routable_at(addr).cloned());
    if found.is_none() {
        inc(&shared.metrics.non_sticky_requests);
    }
    found
}

/// Appends the target stickiness cookie: `AWSALB` (and `AWSALBCORS`) on every response of
/// an lb_cookie group, renewing its period; `AWSALBAPP-0` for an app_cookie group once
/// the application has set its own cookie (and on every later sticky request).
pub(crate) fn write_target_cookies(
    shared: &Shared,
    group: &GroupRt,
    target: &Target,
    head: &RequestHead,
    resp: &ResponseHead,
    out: &mut Vec<u8>,
) {
    let sets = |prefix: &[u8]| {
        resp.fields
            .iter()
            .any(|f| f.kind == FieldKind::SetCookie && f.value.get(&resp.buf).starts_with(prefix))
    };
    write_target_cookies_by(shared, group, target, head, &sets, out);
}

/// [`write_target_cookies`] for any response: `sets_cookie(prefix)` says whether the
/// response sets a cookie whose `name=value` starts with `prefix`.
pub(crate) fn write_target_cookies_by(
    shared: &Shared,
    group: &GroupRt,
    target: &Target,
    head: &RequestHead,
    sets_cookie: &dyn Fn(&[u8]) -> bool,
    out: &mut Vec<u8>,
) {
    let (name, kind, duration, cors) = match &group.cfg.stickiness {
        None => return,
        Some(Stickiness::LbCookie { duration }) => (TARGET_COOKIE, CookieKind::Target, *duration, true),
        Some(Stickiness::AppCookie {
            cookie_name,
            duration,
        }) => {
            let prefix = format!("{cookie_name}=");
            let app_set = sets_cookie(prefix.as_bytes());
            let had = cookies::find(head.values_of(FieldKind::Cookie), APP_COOKIE.as_bytes()).is_some();
            if !app_set && !had {
                return;
            }
            (APP_COOKIE, CookieKind::AppTarget, *duration, false)
        }
    };
    let expires = clock::unix_seconds() + duration.as_secs().max(1);
    let payload = cookies::target_payload(group.name_hash, target.addr, expires);
    let sealed = shared.cookie_key.seal(kind, &payload);
    let mut buf = BytesMut::new();
    cookies::write_set_cookie(&mut buf, name, &sealed, cors);
    out.extend_from_slice(&buf);
}

/// A rule's transforms applied to the request.
#[derive(Debug, Default)]
pub(crate) struct Rewritten {
    /// New request target (path and the original query).
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) host: Option<Vec<u8>>,
}

/// Applies url-rewrite and host-header-rewrite: the first rewrite whose regex matches is
/// used; no match leaves the request unchanged; a result that is not a usable path or
/// host is ALB's 500.
pub(crate) fn apply_transforms(
    transforms: &[Transform],
    head: &RequestHead,
) -> Result<Rewritten, ProxyError> {
    let mut out = Rewritten::default();
    for t in transforms {
        match t {
            Transform::UrlRewrite(rewrites) => {
                let path = head.path();
                if let Some(new) = rewrites
                    .iter()
                    .find_map(|r| r.regex.replace_first(path, &r.replace))
                {
                    if new.first() != Some(&b'/') || !new.iter().all(|b| (0x21..0x7f).contains(b)) {
                        return Err(ProxyError::new(ErrorKind::TransformFailed));
                    }
                    let mut target = new;
                    if let Some(q) = head.query() {
                        target.push(b'?');
                        target.extend_from_slice(q);
                    }
                    out.path = Some(target);
                }
            }
            Transform::HostHeaderRewrite(rewrites) => {
                let host = crate::model::rules::host_without_port(head.host().unwrap_or_default())
                    .to_ascii_lowercase();
                if let Some(new) = rewrites
                    .iter()
                    .find_map(|r| r.regex.replace_first(&host, &r.replace))
                {
                    if new.is_empty()
                        || !new
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(b))
                    {
                        return Err(ProxyError::new(ErrorKind::TransformFailed));
                    }
                    out.host = Some(new);
                }
            }
        }
    }
    Ok(out)
}
