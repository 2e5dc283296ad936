//! One client connection, request after request. This module is the request path in
//! order:
//!
//! 1. **read head**: wait for the next request (idle timeout, drain signal), then its
//!    whole head (header timeout, ALB's size limits, strict framing);
//! 2. **check**: ALB's request rules (405 TRACE, 463 X-Forwarded-For, desync mode);
//! 3. **route**: the listener's rules, from the snapshot loaded once for this request;
//! 4. **act**: a fixed response or a redirect answered here, or a forward
//!    ([`crate::forward`]: pick group -> pick target -> connect/reuse -> send -> relay);
//! 5. **log**: counters, and a debug event per request.
//!
//! Then the connection is kept for the next request or closed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use hostalb_config::{
    DesyncMitigationMode, FixedResponse, ListenerProtocol, Redirect, RedirectProtocol, TemplatePart,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::body::{BodyTransfer, flush};
use crate::buffers::BufferSet;
use crate::counted::Counted;
use crate::errors::{ErrorKind, ProxyError};
use crate::forward;
use crate::http1::BodyKind;
use crate::http1::fields::HeaderField;
use crate::http1::request::{self, RequestHead};
use crate::metrics::inc;
use crate::respond::{self, Own};
use crate::rules::{self, Action, HeaderSource, RequestView};
use crate::shared::Shared;
use crate::snapshot::{ListenerId, ListenerRt, Snapshot};

/// A request body this small is read and dropped when hostalb answers without
/// forwarding, so the connection can stay open; a larger one closes the connection.
const DISCARDABLE_BODY: u64 = 64 * 1024;
/// ALB counts a Location longer than this as `HTTP_Redirect_Url_Limit_Exceeded_Count`
/// and answers 507.
const MAX_REDIRECT_URL: usize = 8 * 1024;

/// A client connection and its buffers.
#[derive(Debug)]
pub(crate) struct ClientConn<R, W> {
    pub(crate) rd: Counted<R>,
    pub(crate) wr: Counted<W>,
    /// Bytes read from the client and not consumed yet (pipelined requests, body).
    pub(crate) rbuf: BytesMut,
    /// Bytes to write to the client.
    pub(crate) wbuf: BytesMut,
    /// Bytes read from the target of the current exchange.
    pub(crate) upbuf: BytesMut,
    /// Buffers handed back after each exchange, so steady-state requests allocate
    /// nothing: request and response header fields, and the target request head.
    pub(crate) spare_fields: Vec<HeaderField>,
    pub(crate) spare_response_fields: Vec<HeaderField>,
    pub(crate) spare_out: BytesMut,
    pub(crate) peer: SocketAddr,
    /// The peer's IP with IPv4-mapped IPv6 unmapped (source-ip rules, X-Forwarded-For).
    pub(crate) peer_ip: IpAddr,
    /// Header texts formatted once for this connection.
    pub(crate) texts: crate::headers::ConnTexts,
    pub(crate) local: SocketAddr,
    /// When the connection was accepted ([`crate::clock::coarse_ms`]).
    pub(crate) opened_ms: u64,
    pub(crate) listener: ListenerId,
}

impl<R, W> ClientConn<R, W> {
    /// Hands the buffers to the thread's spare sets while the connection waits for its
    /// next request ([`crate::buffers`]).
    fn park_buffers(&mut self) {
        crate::buffers::put(BufferSet {
            rbuf: std::mem::take(&mut self.rbuf),
            wbuf: std::mem::take(&mut self.wbuf),
            upbuf: std::mem::take(&mut self.upbuf),
            out: std::mem::take(&mut self.spare_out),
            fields: std::mem::take(&mut self.spare_fields),
            response_fields: std::mem::take(&mut self.spare_response_fields),
        });
    }

    /// Takes a set of buffers for the request that is arriving.
    fn unpark_buffers(&mut self) {
        let set = crate::buffers::take();
        self.rbuf = set.rbuf;
        self.wbuf = set.wbuf;
        self.upbuf = set.upbuf;
        self.spare_out = set.out;
        self.spare_fields = set.fields;
        self.spare_response_fields = set.response_fields;
    }

    pub(crate) fn new(
        rd: R,
        wr: W,
        peer: SocketAddr,
        local: SocketAddr,
        tls: bool,
        listener: ListenerId,
    ) -> Self {
        let peer_ip = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        ClientConn {
            texts: crate::headers::ConnTexts::new(peer_ip, peer.port(), local.port(), tls),
            rd: Counted::new(rd),
            wr: Counted::new(wr),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            upbuf: BytesMut::new(),
            spare_fields: Vec::new(),
            spare_response_fields: Vec::new(),
            spare_out: BytesMut::new(),
            peer,
            peer_ip,
            local,
            opened_ms: crate::clock::coarse_ms(),
            listener,
        }
    }
}

/// What happens to the connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
}

impl Next {
    /// `Close` unless `keep` holds (e.g. the request body was read whole).
    pub(crate) fn min_close(self, keep: bool) -> Next {
        if keep { self } else { Next::Close }
    }
}

/// The request path's per-request facts, for counters and the log.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) status: u16,
    pub(crate) target: Option<SocketAddr>,
    pub(crate) target_status: Option<u16>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) rule: Option<u32>,
    pub(crate) action: &'static str,
    pub(crate) error: Option<&'static str>,
}

/// The client side of a connection, as [`read_head`] waits on it.
pub(crate) trait ClientRead: AsyncRead + Unpin + Send {
    /// Whether [`ClientRead::readable`] and [`ClientRead::try_read_buf`] work: the stream
    /// can wait for bytes without a buffer, so an idle connection parks its buffers. A TLS
    /// stream cannot (its records are decrypted into its own buffer as they are read).
    const WAITS_WITHOUT_BUFFER: bool;

    /// Resolves when bytes may be readable (possibly spuriously).
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Reads what is there without waiting (`WouldBlock` when nothing is).
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize>;
}

impl ClientRead for tokio::net::tcp::ReadHalf<'_> {
    const WAITS_WITHOUT_BUFFER: bool = true;

    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        // The stream's reader waker slot, not `readable()`'s waiter list (a lock and a
        // list insertion per wait): this task is the only reader.
        let stream: &tokio::net::TcpStream = self.as_ref();
        std::future::poll_fn(move |cx| stream.poll_read_ready(cx))
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        // `poll_read`, not tokio's `try_read_buf`: a read that does not fill the buffer
        // shows the socket drained, and `poll_read` then forgets the readiness, so the next
        // look at the client (while the target answers, or before parking) costs no
        // `recvfrom` that can only say EAGAIN. Pending registers no real waker here; the
        // caller waits with `readable`, which does.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match tokio_util::io::poll_read_buf(std::pin::Pin::new(self), &mut cx, buf) {
            std::task::Poll::Ready(read) => read,
            std::task::Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T: AsyncRead + Send> ClientRead for tokio::io::ReadHalf<T> {
    const WAITS_WITHOUT_BUFFER: bool = false;

    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    fn try_read_buf(&mut self, _buf: &mut BytesMut) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl<T: ClientRead> ClientRead for Counted<T> {
    const WAITS_WITHOUT_BUFFER: bool = T::WAITS_WITHOUT_BUFFER;

    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.get_ref().readable()
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        let n = self.get_mut().try_read_buf(buf)?;
        self.add_count(n);
        Ok(n)
    }
}

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
            match request::parse_with(&mut c.rbuf, &mut c.spare_fields) {
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
    if let Err(e) = check(shared, listener, head) {
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

/// Phase 2: ALB's rules for requests that parsed.
fn check(shared: &Shared, listener: &ListenerRt, head: &RequestHead) -> Result<(), ProxyError> {
    if head.is_method(b"TRACE") {
        return Err(ProxyError::new(ErrorKind::Trace));
    }
    if head.xff_addresses > 30 {
        return Err(ProxyError::new(ErrorKind::TooManyForwardedFor));
    }
    if let Some(reason) = head.non_compliant {
        inc(&shared.metrics.desync_non_compliant);
        if listener.cfg.desync_mitigation_mode == DesyncMitigationMode::Strictest {
            return Err(ProxyError::new(ErrorKind::NonCompliant(reason)));
        }
    }
    Ok(())
}

/// Whether the connection may stay open after this exchange (before any error).
pub(crate) fn keep_alive_allowed<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &ClientConn<R, W>,
    head: &RequestHead,
) -> bool {
    head.keep_alive
        && !shared.is_draining()
        && crate::clock::coarse_ms().saturating_sub(c.opened_ms)
            < listener.cfg.client_keep_alive.as_millis() as u64
}

/// Writes an answer hostalb makes itself, dealing with an unread request body: a small
/// one is read and dropped so the connection can stay open; otherwise it closes.
pub(crate) async fn answer_own<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: Option<&RequestHead>,
    own: Own<'_>,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let idle = listener.cfg.idle_timeout;
    let mut keep = !own.close && head.is_some_and(|h| keep_alive_allowed(shared, listener, c, h));
    if let Some(h) = head {
        let discardable = match h.body {
            BodyKind::Empty => true,
            BodyKind::Length(n) => n <= DISCARDABLE_BODY && !h.expect_continue,
            _ => false,
        };
        if keep && !discardable {
            keep = false;
        }
        if keep && !h.body.is_empty() {
            let mut body = BodyTransfer::new(h.body, h.body);
            keep = matches!(
                body.discard(&mut c.rd, &mut c.rbuf, DISCARDABLE_BODY as usize, idle)
                    .await,
                Ok(true)
            );
        }
    }
    let version = head.map(|h| h.version).unwrap_or(crate::http1::Version::Http11);
    let is_head = head.is_some_and(|h| h.is_method(b"HEAD"));
    respond::write_own(&mut c.wbuf, &Own { close: !keep, ..own }, version, is_head);
    rec.status = own.status;
    if flush(&mut c.wr, &mut c.wbuf, idle).await.is_err() {
        return Next::Close;
    }
    if keep { Next::KeepAlive } else { Next::Close }
}

/// Answers an error as ALB does, counting it.
pub(crate) async fn answer_error<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: Option<&RequestHead>,
    e: &ProxyError,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let status = e.status();
    rec.status = status;
    rec.error = Some(e.reason());
    shared.metrics.count_elb_answer(status, e.reason());
    if matches!(e.kind, ErrorKind::ClientClosed) {
        // 460: logged, never sent (the client is gone).
        return Next::Close;
    }
    let body = respond::elb_error_body(status);
    answer_own(
        shared,
        listener,
        c,
        head,
        Own {
            status,
            content_type: Some(b"text/html"),
            body: &body,
            close: e.closes_client(),
            server_header: listener.cfg.server_header,
            extra: &[],
        },
        rec,
    )
    .await
}

async fn answer_fixed<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: &RequestHead,
    f: &FixedResponse,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    shared.metrics.count_elb_answer(f.status_code, "FixedResponse");
    let own = Own {
        status: f.status_code,
        content_type: f.content_type.as_deref().map(str::as_bytes),
        body: f.message_body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &[],
    };
    answer_own(shared, listener, c, Some(head), own, rec).await
}

async fn answer_redirect<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: &RequestHead,
    r: &Redirect,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let location = redirect_location(r, listener.cfg.protocol, c.local.port(), head);
    if location.len() > MAX_REDIRECT_URL {
        inc(&shared.metrics.redirect_url_limit_exceeded);
        let e = ProxyError::new(ErrorKind::BadResponse("RedirectUrlTooLong"));
        rec.error = Some(e.reason());
        shared.metrics.count_elb_answer(507, "RedirectUrlTooLong");
        let body = respond::elb_error_body(507);
        let own = Own {
            status: 507,
            content_type: Some(b"text/html"),
            body: &body,
            close: false,
            server_header: listener.cfg.server_header,
            extra: &[],
        };
        return answer_own(shared, listener, c, Some(head), own, rec).await;
    }
    inc(&shared.metrics.redirects);
    shared.metrics.count_elb_answer(r.status_code, "Redirect");
    let extra: [(&[u8], &[u8]); 1] = [(b"Location", &location)];
    let body = format!(
        "<html>\r\n<head><title>{0} {1}</title></head>\r\n<body>\r\n<center><h1>{0} {1}</h1></center>\r\n</body>\r\n</html>\r\n",
        r.status_code,
        respond::reason_phrase(r.status_code)
    );
    let own = Own {
        status: r.status_code,
        content_type: Some(b"text/html"),
        body: body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &extra,
    };
    answer_own(shared, listener, c, Some(head), own, rec).await
}

/// The `Location` of a redirect: `protocol://host:port/path?query`, always with an
/// explicit port, as ALB writes it. Components left unset keep the request's values.
pub(crate) fn redirect_location(
    r: &Redirect,
    listener: ListenerProtocol,
    port: u16,
    head: &RequestHead,
) -> Vec<u8> {
    // `#{protocol}` is the request's protocol; the Location's scheme is the redirect's.
    let request_protocol = match listener {
        ListenerProtocol::Http => "http",
        ListenerProtocol::Https => "https",
    };
    let protocol = match r.protocol {
        RedirectProtocol::Keep => request_protocol,
        RedirectProtocol::Http => "http",
        RedirectProtocol::Https => "https",
    };
    let host_value = head.host().unwrap_or_default();
    let mut host = rules::host_without_port(host_value).to_vec();
    host.make_ascii_lowercase();
    let path = head.path();
    let vars = TemplateVars {
        host: &host,
        path: path.strip_prefix(b"/").unwrap_or(path),
        port,
        protocol: request_protocol,
        query: head.query().unwrap_or_default(),
    };
    let mut out = Vec::with_capacity(64 + path.len());
    out.extend_from_slice(protocol.as_bytes());
    out.extend_from_slice(b"://");
    vars.expand(&r.host.parts, &mut out);
    out.push(b':');
    out.extend_from_slice(r.port.unwrap_or(port).to_string().as_bytes());
    vars.expand(&r.path.parts, &mut out);
    let query_start = out.len() + 1;
    out.push(b'?');
    vars.expand(&r.query.parts, &mut out);
    if out.len() == query_start {
        out.pop();
    }
    out
}

struct TemplateVars<'a> {
    host: &'a [u8],
    path: &'a [u8],
    port: u16,
    protocol: &'a str,
    query: &'a [u8],
}

impl TemplateVars<'_> {
    fn expand(&self, parts: &[TemplatePart], out: &mut Vec<u8>) {
        for part in parts {
            match part {
                TemplatePart::Literal(s) => out.extend_from_slice(s.as_bytes()),
                TemplatePart::Host => out.extend_from_slice(self.host),
                TemplatePart::Path => out.extend_from_slice(self.path),
                TemplatePart::Port => out.extend_from_slice(self.port.to_string().as_bytes()),
                TemplatePart::Protocol => out.extend_from_slice(self.protocol.as_bytes()),
                TemplatePart::Query => out.extend_from_slice(self.query),
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        match request::parse(&mut buf) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn redirect(toml_action: &str) -> Redirect {
        let text = format!(
            "[[listener]]\nname = \"w\"\naddress = \"127.0.0.1:80\"\ndefault_action = {toml_action}\n"
        );
        match hostalb_config::parse(&text, hostalb_config::Format::Toml, "t")
            .map(|l| l.config.listeners[0].default_action.clone())
        {
            Ok(hostalb_config::Action::Redirect(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn location(action: &str, raw: &str, port: u16) -> String {
        String::from_utf8(redirect_location(
            &redirect(action),
            ListenerProtocol::Http,
            port,
            &head(raw),
        ))
        .unwrap_or_default()
    }

    #[test]
    fn redirect_to_https_keeps_path_and_query_with_explicit_port() {
        let a = r#"{ type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }"#;
        assert_eq!(
            location(a, "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n", 80),
            "https://example.com:443/a/b?x=1"
        );
        assert_eq!(
            location(a, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 80),
            "https://example.com:443/"
        );
    }

    #[test]
    fn protocol_keyword_is_the_request_protocol() {
        let a = r##"{ type = "redirect", protocol = "HTTPS", port = "443", query = "was=#{protocol}", status_code = "HTTP_301" }"##;
        assert_eq!(
            location(a, "GET /p HTTP/1.1\r\nHost: h.example\r\n\r\n", 80),
            "https://h.example:443/p?was=http"
        );
    }

    #[test]
    fn redirect_templates_expand() {
        let a = r##"{ type = "redirect", host = "new.#{host}", path = "/v2/#{path}", query = "from=#{port}&#{query}", status_code = "HTTP_302" }"##;
        assert_eq!(
            location(a, "GET /items?q=1 HTTP/1.1\r\nHost: old.example\r\n\r\n", 8080),
            "http://new.old.example:8080/v2/items?from=8080&q=1"
        );
        let a = r##"{ type = "redirect", path = "/fixed", query = "", status_code = "HTTP_301" }"##;
        assert_eq!(
            location(a, "GET /x?drop=1 HTTP/1.1\r\nHost: h.example\r\n\r\n", 80),
            "http://h.example:80/fixed"
        );
    }
}
