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
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::data::answer::{answer_error, answer_fixed, answer_redirect};
use crate::data::conn::{ClientConn, ClientRead, Next, Record};
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::forward;
use crate::http1::desync::Verdict;
use crate::http1::request::{self, RequestHead};
use crate::model::metrics::inc;
use crate::model::rules::{Action, HeaderSource, RequestView};
use crate::model::shared::Shared;
use crate::model::snapshot::{ListenerRt, Snapshot};

/// Serves one client connection until it closes.
pub(crate) async fn serve<R, W>(shared: Arc<Shared>, mut c: ClientConn<R, W>)
where
    R: ClientRead,
    W: tokio::io::AsyncWrite + Unpin + Send,
{
    let _open = shared.connection_opened();
    let mut drain = shared.drain_signal();
    let Some(mut listener) = shared.snapshot.load().listener(c.listener).cloned() else {
        return;
    };
    loop {
        // 1. Read the next request head.
        let head = match read_head(&mut c, &listener, &mut drain).await {
            HeadRead::Head(h) => h,
            HeadRead::Closed => return,
            HeadRead::Refused(e) => {
                let mut rec = Record::default();
                let _ = answer_error(&shared, &listener, &mut c, None, &e, &mut rec).await;
                log_exchange(&c, None, &rec, None);
                let processed = c.rd.take_count() + c.wr.take_count();
                shared
                    .metrics
                    .processed_bytes
                    .fetch_add(processed, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        };
        // Only the debug log needs the request's duration.
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        // 3 (early). The freshest configuration, loaded once for this request.
        let snap = shared.snapshot.load_full();
        let Some(current) = snap.listener(c.listener) else {
            // The listener was removed by a reload: its accept loop has stopped and its
            // connections close.
            return;
        };
        listener = current.clone();
        let mut rec = Record::default();
        // Not boxed: a box per request costs more CPU than the kilobytes it would save
        // an idle connection (docs/performance.md).
        let next = handle(&shared, &snap, &listener, &mut c, &head, &mut rec).await;
        log_exchange(&c, Some(&head), &rec, started);
        c.spare_fields = head.fields;
        let processed = c.rd.take_count() + c.wr.take_count();
        shared
            .metrics
            .processed_bytes
            .fetch_add(processed, std::sync::atomic::Ordering::Relaxed);
        if next == Next::Close || shared.is_draining() {
            return;
        }
    }
}

enum HeadRead {
    Head(RequestHead),
    /// The connection ended quietly (client closed, idle timeout, shutdown).
    Closed,
    /// The head was refused; answer and close.
    Refused(ProxyError),
}

/// Phase 1: waits for and parses the next request head.
async fn read_head<R, W>(
    c: &mut ClientConn<R, W>,
    listener: &ListenerRt,
    drain: &mut watch::Receiver<bool>,
) -> HeadRead
where
    R: ClientRead,
{
    let idle_deadline = tokio::time::Instant::now() + listener.cfg.idle_timeout;
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
        let waiting_idle = header_deadline.is_none();
        if waiting_idle && *drain.borrow() {
            return HeadRead::Closed;
        }
        let deadline = header_deadline.unwrap_or(idle_deadline);
        if R::WAITS_WITHOUT_BUFFER && c.rbuf.is_empty() {
            // The next request may be there already (the common case under load, and the
            // readiness tokio remembers may be stale): try it with the buffers in hand.
            c.rbuf.reserve(4096);
            match c.rd.try_read_buf(&mut c.rbuf) {
                Ok(0) => return HeadRead::Closed,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return HeadRead::Closed,
            }
            // Nothing of the next request yet: wait without holding buffers.
            c.park_buffers();
            let ready = until_deadline(c.rd.readable(), deadline, header_deadline.is_some(), drain).await;
            c.unpark_buffers();
            match ready {
                Waited::Done(_) => {}
                Waited::End(end) => return end,
                Waited::Again => continue,
            }
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
        c.rbuf.reserve(4096);
        let read = until_deadline(
            c.rd.read_buf(&mut c.rbuf),
            deadline,
            header_deadline.is_some(),
            drain,
        )
        .await;
        match read {
            Waited::Done(Ok(0) | Err(_)) => return HeadRead::Closed,
            Waited::Done(Ok(_)) | Waited::Again => {}
            Waited::End(end) => return end,
        }
    }
}

/// How [`until_deadline`] ended.
enum Waited<T> {
    Done(T),
    /// The connection ends (or its head was refused).
    End(HeadRead),
    /// The drain signal changed without a shutdown: look again.
    Again,
}

/// Runs `io` until `deadline`: the header timeout when `in_head`, else the idle timeout,
/// which (like shutdown) closes a connection quietly. While no request has begun, a
/// shutdown closes the connection too; a request already arriving is served (and
/// answered with `Connection: close`).
async fn until_deadline<T>(
    io: impl Future<Output = T>,
    deadline: tokio::time::Instant,
    in_head: bool,
    drain: &mut watch::Receiver<bool>,
) -> Waited<T> {
    tokio::select! {
        biased;
        done = io => Waited::Done(done),
        _ = sleep_until(deadline) => Waited::End(if in_head {
            HeadRead::Refused(ProxyError::new(ErrorKind::HeaderTimeout))
        } else {
            HeadRead::Closed
        }),
        changed = drain.changed(), if !in_head => {
            if changed.is_err() || *drain.borrow() {
                Waited::End(HeadRead::Closed)
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

/// Phases 2 to 4 for one request.
async fn handle<R, W>(
    shared: &Shared,
    snap: &Snapshot,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: &RequestHead,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    // 2. ALB's request rules.
    if let Err(e) = check(shared, head) {
        return answer_error(shared, listener, c, Some(head), &e, rec).await;
    }
    // 3. Route.
    let view = RequestView {
        method: head.method(),
        path: head.path(),
        query: head.query(),
        host: head.host(),
        headers: head,
        peer: c.peer_ip,
    };
    let m = listener.table.evaluate(&view);
    inc(&shared.metrics.rule_evaluations);
    if c.peer_ip.is_ipv6() {
        inc(&shared.metrics.ipv6_requests);
    }
    rec.rule = m.priority;
    rec.action = m.action.kind();
    // 4. Act.
    match m.action {
        Action::FixedResponse(f) => {
            inc(&shared.metrics.fixed_responses);
            answer_fixed(shared, listener, c, head, f, rec).await
        }
        Action::Redirect(r) => answer_redirect(shared, listener, c, head, r, rec).await,
        Action::Forward(f) => forward::forward(shared, snap, listener, c, head, f, &m, rec).await,
    }
}

/// Phase 2: ALB's rules for requests that parsed: what hostalb cannot forward at all
/// (400/405/501/505), what the listener's desync mode blocks (400), TRACE, and
/// X-Forwarded-For. Every request desync mitigation does not find compliant is counted.
fn check(shared: &Shared, head: &RequestHead) -> Result<(), ProxyError> {
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

/// Phase 5: one debug event per request.
fn log_exchange<R, W>(
    c: &ClientConn<R, W>,
    head: Option<&RequestHead>,
    rec: &Record,
    started: Option<Instant>,
) {
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
        target_status = ?rec.target_status,
        group = ?rec.group,
        rule = ?rec.rule,
        action = rec.action,
        error = ?rec.error,
        micros = started.map(|s| s.elapsed().as_micros() as u64).unwrap_or(0),
        "request"
    );
}
