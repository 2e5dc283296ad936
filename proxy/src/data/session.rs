//! One client connection, request after request. This module is the request path in
//! order:
//!
//! 1. **read head**: wait for the next request (idle timeout, drain signal), then its
//!    whole head (header timeout, ALB's size limits, strict framing);
//! 2. **check**: ALB's request rules (405 TRACE, 463 X-Forwarded-For, desync mode);
//! 3. **route**: the listener's rules, from the snapshot loaded once for this request;
//! 4. **act**: a fixed response or a redirect answered here, or a forward
//!    ([`crate::data::forward`]: pick group -> pick target -> connect/reuse -> send -> relay);
//! 5. **log**: counters, and a debug event per request.
//!
//! Then the connection is kept for the next request or closed.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::data::access_log::{AccessLog, Entry};
use crate::data::answer;
use crate::data::conn::{ClientConn, ClientRead, Next, Record};
use crate::data::context::RequestCx;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::forward;
use crate::http1::desync::Verdict;
use crate::http1::request::{self, RequestHead};
use crate::model::metrics::inc;
use crate::model::rules::{Action, HeaderSource, Match, RequestView};
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerRt;

/// How long a keep-alive connection waits for its next request in its serving state (its
/// buffers parked, the boxed future of [`crate::data::idle`] kept) before it drops to its
/// idle state. A client that keeps a connection busy sends its next request well within
/// it (about 1 ms apart in the load harness's (a), p99 latencies of 3 to 10 ms under
/// load), so the serving state is not rebuilt per request; rebuilding it after a longer
/// pause costs a microsecond or two. Short, because every connection waiting in its
/// serving state holds a few kilobytes: a burst of new connections (each one request,
/// then quiet) would otherwise hold that many serving states at once, and the allocator
/// keeps the memory they leave.
pub(crate) const HOT_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How [`serve`] ended.
#[derive(Debug)]
pub(crate) enum Served {
    /// The connection closes.
    Closed,
    /// It waited [`HOT_WAIT`] for its next request with nothing of it read and its
    /// buffers parked: it waits on in its idle state, until this idle deadline.
    Idle(tokio::time::Instant),
}

/// Serves a client connection request after request, until it closes or (a connection
/// whose reader waits without buffers) goes idle. `resume`: the idle deadline of a
/// connection resumed from its idle state (its next request is arriving).
pub(crate) async fn serve<R, W>(
    shared: &Arc<Shared>,
    c: &mut ClientConn<R, W>,
    drain: &mut watch::Receiver<bool>,
    mut resume: Option<tokio::time::Instant>,
) -> Served
where
    R: ClientRead,
    W: tokio::io::AsyncWrite + Unpin + Send,
{
    let Some(mut listener) = shared.snapshot.load().listener(c.listener).cloned() else {
        return Served::Closed;
    };
    loop {
        // 1. Read the next request head.
        let head = match read_head(c, &listener, drain, resume.take()).await {
            HeadRead::Head(h) => h,
            HeadRead::Closed => return Served::Closed,
            HeadRead::Idle(deadline) => return Served::Idle(deadline),
            HeadRead::Refused(e) => {
                let mut rec = Record::default();
                let _ = answer::refused(shared, &listener, c, &e, &mut rec).await;
                let log = shared.snapshot.load().access_log.clone();
                log_exchange(shared, log.as_deref(), c, None, &rec, None);
                return Served::Closed;
            }
        };
        // Only the debug log needs the request's duration.
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        // 3 (early). The freshest configuration, loaded once for this request.
        let snap = shared.snapshot.load_full();
        let Some(current) = snap.listener(c.listener) else {
            // The listener was removed by a reload: its accept loop has stopped and its
            // connections close.
            return Served::Closed;
        };
        listener = current.clone();
        let mut cx = RequestCx::new(shared, &snap, &listener, &head);
        if cx.logging {
            cx.rec.created = Some(SystemTime::now());
            cx.rec.received = Some(Instant::now());
            cx.rec.desync = head.desync.logged();
        }
        // Not boxed: a box per request costs more CPU than the kilobytes it would save
        // an idle connection (docs/performance.md).
        let next = handle(&mut cx, c).await;
        // Closing with request bytes unread would reset the connection, and a reset can
        // destroy the answer before the client reads it.
        let unread_body = !cx.body.is_done();
        // The record is read where it lies: moving it out would copy it per request.
        log_exchange(
            shared,
            snap.access_log.as_deref(),
            c,
            Some(&head),
            &cx.rec,
            started,
        );
        drop(cx);
        c.spare_fields = head.fields;
        if next == Next::Close {
            if unread_body {
                answer::linger(c).await;
            }
            return Served::Closed;
        }
        if shared.is_draining() {
            return Served::Closed;
        }
    }
}

enum HeadRead {
    Head(RequestHead),
    /// The connection ended quietly (client closed, idle timeout, shutdown).
    Closed,
    /// Nothing of a next request within [`HOT_WAIT`]: the connection goes idle, its
    /// buffers parked, until this idle deadline.
    Idle(tokio::time::Instant),
    /// The head was refused; answer and close.
    Refused(ProxyError),
}

/// Phase 1: waits for and parses the next request head. `resume`: the idle deadline of a
/// connection resumed from its idle state, else the idle timeout counts from now.
async fn read_head<R, W>(
    c: &mut ClientConn<R, W>,
    listener: &ListenerRt,
    drain: &mut watch::Receiver<bool>,
    resume: Option<tokio::time::Instant>,
) -> HeadRead
where
    R: ClientRead,
{
    let now = tokio::time::Instant::now();
    let idle_deadline = resume.unwrap_or(now + listener.cfg.idle_timeout);
    let hot_end = now + HOT_WAIT;
    let mut header_deadline: Option<tokio::time::Instant> = None;
    loop {
        if !c.rbuf.is_empty() {
            match request::parse_with(
                &mut c.rbuf,
                &mut c.spare_fields,
                listener.cfg.desync_mitigation_mode,
            ) {
                Ok(Some(head)) => return HeadRead::Head(head),
                Ok(None) => {}
                Err(e) => return HeadRead::Refused(ProxyError::new(ErrorKind::BadHead(e))),
            }
            header_deadline.get_or_insert_with(|| tokio::time::Instant::now() + listener.cfg.header_timeout);
        }
        if R::WAITS_WITHOUT_BUFFER && c.rbuf.is_empty() {
            // The next request may be there already (the common case under load, and the
            // readiness tokio remembers may be stale): try it with the buffers in hand.
            // (With nothing of a request read, the connection is waiting idle.)
            c.rbuf.reserve(4096);
            match c.rd.try_read_buf(&mut c.rbuf) {
                Ok(0) => return HeadRead::Closed,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return HeadRead::Closed,
            }
            if *drain.borrow() {
                return HeadRead::Closed;
            }
            // Nothing of the next request yet: wait without holding buffers, in this state
            // until HOT_WAIT has passed, then in the connection's idle state.
            c.park_buffers();
            let hot = R::HAS_IDLE_STATE && hot_end < idle_deadline;
            let until = if hot { hot_end } else { idle_deadline };
            match until_deadline(c.rd.readable(), until, false, drain).await {
                Waited::Done(_) => {}
                Waited::Timeout if hot => return HeadRead::Idle(idle_deadline),
                Waited::Timeout | Waited::Drained => return HeadRead::Closed,
                Waited::Again => {
                    c.unpark_buffers();
                    continue;
                }
            }
            c.unpark_buffers();
            c.rbuf.reserve(4096);
            match c.rd.try_read_buf(&mut c.rbuf) {
                Ok(0) => return HeadRead::Closed,
                Ok(_) => {}
                // The readiness was stale: wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return HeadRead::Closed,
            }
            continue;
        }
        let in_head = header_deadline.is_some();
        if !in_head && *drain.borrow() {
            return HeadRead::Closed;
        }
        c.rbuf.reserve(4096);
        let read = until_deadline(
            c.rd.read_buf(&mut c.rbuf),
            header_deadline.unwrap_or(idle_deadline),
            in_head,
            drain,
        )
        .await;
        match read {
            Waited::Done(Ok(0) | Err(_)) => return HeadRead::Closed,
            Waited::Done(Ok(_)) | Waited::Again => {}
            Waited::Timeout if in_head => {
                return HeadRead::Refused(ProxyError::new(ErrorKind::HeaderTimeout));
            }
            Waited::Timeout | Waited::Drained => return HeadRead::Closed,
        }
    }
}

/// How [`until_deadline`] ended.
enum Waited<T> {
    Done(T),
    /// The deadline passed.
    Timeout,
    /// Shutdown (the drain signal) while no request has begun.
    Drained,
    /// The drain signal changed without a shutdown: look again.
    Again,
}

/// Runs `io` until `deadline` (the header timeout when `in_head`, else the idle timeout
/// or the end of the hot wait). While no request has begun, a shutdown ends the wait too;
/// a request already arriving is served (and answered with `Connection: close`).
async fn until_deadline<T>(
    io: impl Future<Output = T>,
    deadline: tokio::time::Instant,
    in_head: bool,
    drain: &mut watch::Receiver<bool>,
) -> Waited<T> {
    tokio::select! {
        biased;
        done = io => Waited::Done(done),
        _ = sleep_until(deadline) => Waited::Timeout,
        changed = drain.changed(), if !in_head => {
            if changed.is_err() || *drain.borrow() {
                Waited::Drained
            } else {
                Waited::Again
            }
        }
    }
}

impl HeaderSource for RequestHead {
    fn any_value(&self, name: &[u8], test: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.values_named(name).any(test)
    }
}

/// Phases 2 to 4 for one request. Every error on the way is answered in one place,
/// [`answer::error`].
async fn handle<R, W>(cx: &mut RequestCx<'_>, c: &mut ClientConn<R, W>) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin + Send,
{
    let (shared, head) = (cx.shared, cx.head);
    // 2. ALB's request rules.
    if let Err(e) = check(shared, head) {
        return answer::error(cx, c, e).await;
    }
    // 3. Route.
    let m = route(cx, c.peer_ip);
    // 4. Act.
    match m.action {
        Action::FixedResponse(f) => {
            inc(&shared.metrics.fixed_responses);
            answer::fixed(cx, c, f).await
        }
        Action::Redirect(r) => answer::redirect(cx, c, r).await,
        Action::Forward(f) => match forward::forward(cx, c, f, &m).await {
            Ok(next) => next,
            Err(e) => answer::error(cx, c, e).await,
        },
    }
}

/// Phase 3, the same for both front ends: the listener's rules for the request in `cx`,
/// counted and recorded.
pub(crate) fn route<'a>(cx: &mut RequestCx<'a>, peer: std::net::IpAddr) -> Match<'a> {
    let (shared, listener, head) = (cx.shared, cx.listener, cx.head);
    let view = RequestView {
        method: head.method(),
        path: head.path(),
        query: head.query(),
        host: head.host(),
        headers: head,
        peer,
    };
    let m = listener.table.evaluate(&view);
    inc(&shared.metrics.rule_evaluations);
    if peer.is_ipv6() {
        inc(&shared.metrics.ipv6_requests);
    }
    cx.rec.rule = m.priority;
    cx.rec.action = m.action.kind();
    m
}

/// Phase 2: ALB's rules for requests that parsed: what hostalb cannot forward at all
/// (400/405/501/505), what the listener's desync mode blocks (400), TRACE, and
/// X-Forwarded-For. Every request desync mitigation does not find compliant is counted.
pub(crate) fn check(shared: &Shared, head: &RequestHead) -> Result<(), ProxyError> {
    if !head.desync.is_compliant() {
        inc(&shared.metrics.desync_non_compliant);
    }
    if let Some(refusal) = head.refusal {
        return Err(ProxyError::new(ErrorKind::BadHead(refusal)));
    }
    if head.verdict == Verdict::Block {
        let reason = head.desync.reason.unwrap_or("NonCompliant");
        return Err(ProxyError::new(ErrorKind::NonCompliant(reason)));
    }
    if head.is_method(b"TRACE") {
        return Err(ProxyError::new(ErrorKind::Trace));
    }
    if head.xff_addresses > 30 {
        return Err(ProxyError::new(ErrorKind::TooManyForwardedFor));
    }
    Ok(())
}

/// Phase 10: the request's bytes counted, its access log entry, and a debug event.
fn log_exchange<R, W>(
    shared: &Shared,
    access_log: Option<&AccessLog>,
    c: &mut ClientConn<R, W>,
    head: Option<&RequestHead>,
    rec: &Record,
    started: Option<Instant>,
) {
    let (received, sent) = (c.rd.take_count(), c.wr.take_count());
    shared
        .metrics
        .processed_bytes
        .fetch_add(received + sent, std::sync::atomic::Ordering::Relaxed);
    if let Some(log) = access_log {
        log.write(
            &Entry {
                tls: c.tls,
                tls_info: c.tls_info.as_deref(),
                client: c.peer,
                local_port: c.local.port(),
                head,
                rec,
                received_bytes: received,
                sent_bytes: sent,
                conn_trace: c.trace,
                protocol: crate::data::access_log::Protocol::Http1,
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
        client = %c.peer,
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
