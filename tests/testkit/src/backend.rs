//! [`Backend`]: a recording HTTP/1.1 server that answers every request with its name.
//!
//! It records every byte received per connection and every request (head in wire order,
//! body, connection number, index on that connection), so a test can assert what hostalb
//! forwarded to the target and on which upstream connection.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::patience::scaled;
use crate::response::{Chunked, header_all_in, header_in, scan_chunked};
use crate::sync::{lock, stopped};

/// Most header lines the backend accepts in one request: well above hostalb's own limit
/// plus the headers it adds, so the backend is never the one refusing a request.
const MAX_REQUEST_HEADERS: usize = 1000;

/// Longest `/delay/{ms}` honoured: a typo must not park a request for hours.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// Largest `/bytes/{n}` or `/chunked/{n}` body served (1 GiB).
const MAX_GENERATED_BODY: u64 = 1 << 30;

/// Size of each data frame of a generated body (and so of each chunk of `/chunked/{n}`).
const GENERATED_FRAME: u64 = 16 * 1024;

/// Default number of requests (and, apart, of health probes) recorded in full; later ones
/// are only counted, so a long load test does not fill memory.
const DEFAULT_MAX_RECORDED: usize = 50_000;

/// Default number of raw bytes recorded per backend (all connections together); a
/// connection that crosses it stops being recorded.
const DEFAULT_MAX_RAW_BYTES: usize = 64 << 20;

/// Default answer of `/health`, as a healthy target gives it.
const DEFAULT_HEALTH_STATUS: u16 = 200;

/// How long `stop()` waits for the listener and every connection to be closed.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// The body type of every answer.
type AnswerBody = BoxBody<Bytes, Infallible>;

/// One request as the backend received it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, as on the wire.
    pub method: String,
    /// The raw request target, query included.
    pub target: String,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Every header line in the order received, names as on the wire.
    pub headers: Vec<(String, String)>,
    /// The body (chunked coding removed), as much of it as arrived.
    pub body: Vec<u8>,
    /// Connection number, 0-based in accept order for this backend.
    pub connection: usize,
    /// Index of the request on its connection, 0-based.
    pub index: usize,
    /// Whether the whole body arrived.
    pub complete: bool,
    /// The status answered; `None` while the request is being handled or when it was
    /// abandoned (its connection closed first).
    pub status: Option<u16>,
    /// Arrival sequence number on the backend (finds the record again after `clear()`).
    seq: u64,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        split_target(&self.target).0
    }

    /// The query part of the target (after `?`), if there is a `?`.
    pub fn query(&self) -> Option<&str> {
        split_target(&self.target).1
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("connection", &self.connection)
            .field("index", &self.index)
            .field("complete", &self.complete)
            .field("status", &self.status)
            .finish()
    }
}

/// The JSON body of a [`Backend`]'s default answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendReply {
    /// Name of the backend that answered.
    pub backend: String,
    /// Request method.
    pub method: String,
    /// The raw request target, query included.
    pub target: String,
    /// The path part of the target.
    pub path: String,
    /// The query part of the target; `None` when the target has no `?`.
    pub query: Option<String>,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Every header line received, in order, names as on the wire.
    pub headers: Vec<(String, String)>,
    /// Length of the request body received.
    pub body_len: usize,
    /// Connection number on the backend, 0-based.
    pub connection: usize,
    /// Index of the request on that connection, 0-based.
    pub index: usize,
}

impl BackendReply {
    /// The first value of header `name` the backend received (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name` the backend received (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }
}

/// Builder for [`Backend`].
#[derive(Debug, Clone)]
pub struct BackendBuilder {
    name: String,
    bind: SocketAddr,
    idle_timeout: Option<Duration>,
    health_status: u16,
    max_recorded: usize,
    max_raw_bytes: usize,
}

impl BackendBuilder {
    /// The name the backend answers with (`x-backend` header and `"backend"` in the body).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The address to bind (default `127.0.0.1:0`); use a stopped backend's address to
    /// bring a target back.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Close a keep-alive connection after it has been idle this long (no request being
    /// handled, no bytes moving). Default: never.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// The status `/health` answers at first (default 200).
    pub fn health_status(mut self, status: u16) -> Self {
        self.health_status = status;
        self
    }

    /// How many requests (and, apart, health probes) are recorded in full (default 50 000);
    /// later ones are still counted.
    pub fn max_recorded(mut self, n: usize) -> Self {
        self.max_recorded = n;
        self
    }

    /// How many raw bytes are recorded, all connections together (default 64 MiB).
    pub fn max_raw_bytes(mut self, n: usize) -> Self {
        self.max_raw_bytes = n;
        self
    }

    /// Binds and starts serving; panics when the address cannot be bound.
    pub async fn start(self) -> Backend {
        let bind = self.bind;
        match self.try_start().await {
            Ok(b) => b,
            Err(e) => panic!("backend cannot bind {bind}: {e}"),
        }
    }

    /// Binds and starts serving.
    pub async fn try_start(self) -> io::Result<Backend> {
        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            idle_timeout: self.idle_timeout,
            health_status: AtomicU16::new(self.health_status),
            requests: Mutex::new(Vec::new()),
            probes: Mutex::new(Vec::new()),
            request_count: AtomicUsize::new(0),
            probe_count: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            max_recorded: self.max_recorded,
            conns: Mutex::new(Vec::new()),
            raw_bytes: AtomicUsize::new(0),
            max_raw_bytes: self.max_raw_bytes,
            open: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            epoch: Instant::now(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        Ok(Backend {
            addr,
            shared,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }
}

/// A recording HTTP/1.1 server on a loopback port: a target for hostalb.
///
/// Every request gets status 200, header `x-backend: <name>` and a JSON [`BackendReply`],
/// except these paths (each may follow any prefix, so `/api/delay/100` delays too):
///
/// | path | answer |
/// |---|---|
/// | `/status/{code}` | status `code` (200..=999) with the JSON reply (no body for 204/304) |
/// | `/delay/{ms}` | waits `ms` milliseconds, then the JSON reply |
/// | `/bytes/{n}` | `n` bytes with Content-Length |
/// | `/chunked/{n}` | `n` bytes, chunked |
/// | `/close` | the JSON reply with `Connection: close` |
/// | `/health` | the current health status with the JSON reply; recorded apart |
/// | `/echo` | the request body |
///
/// Generated bodies repeat `abcdefghijklmnopqrstuvwxyz`. Answers also carry
/// `x-backend-connection` and `x-backend-request` (connection number and index on it).
/// Stopping or dropping the backend closes its listener and all its connections.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A builder with the name `"backend"` bound to `127.0.0.1:0`.
    pub fn builder() -> BackendBuilder {
        BackendBuilder {
            name: "backend".to_string(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            idle_timeout: None,
            health_status: DEFAULT_HEALTH_STATUS,
            max_recorded: DEFAULT_MAX_RECORDED,
            max_raw_bytes: DEFAULT_MAX_RAW_BYTES,
        }
    }

    /// Starts a backend named `name` on `127.0.0.1:0`.
    pub async fn start(name: &str) -> Backend {
        Self::builder().name(name).start().await
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the status `/health` answers from now on.
    pub fn set_health_status(&self, status: u16) {
        self.shared.health_status.store(status, Ordering::SeqCst);
    }

    /// The status `/health` answers.
    pub fn health_status(&self) -> u16 {
        self.shared.health_status.load(Ordering::SeqCst)
    }

    /// Every request received except health probes, in arrival order (a request still
    /// being handled is included, with `status == None`); at most `max_recorded`.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Number of requests received except health probes (also those past
    /// `max_recorded`), since the start or the last `clear()`.
    pub fn request_count(&self) -> usize {
        self.shared.request_count.load(Ordering::SeqCst)
    }

    /// Every request to a path ending in `/health`, in arrival order; at most
    /// `max_recorded`.
    pub fn health_probes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.probes).clone()
    }

    /// Number of health probes received, since the start or the last `clear()`.
    pub fn health_probe_count(&self) -> usize {
        self.shared.probe_count.load(Ordering::SeqCst)
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Number of connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Requests (probes included) being handled now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever handled at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every byte received, per connection (index = connection number), up to
    /// `max_raw_bytes` in all.
    pub fn raw_received(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.conns).iter().map(|c| c.raw.clone()).collect()
    }

    /// Forgets every recorded request and probe and zeroes their counts (connection
    /// numbering and raw bytes are kept).
    pub fn clear(&self) {
        let mut requests = lock(&self.shared.requests);
        let mut probes = lock(&self.shared.probes);
        requests.clear();
        probes.clear();
        self.shared.request_count.store(0, Ordering::SeqCst);
        self.shared.probe_count.store(0, Ordering::SeqCst);
    }

    /// Closes the listener and every connection, and waits (bounded) until they are closed.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(scaled(STOP_PATIENCE), task).await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = lock(&self.task).take() {
            // Aborting the accept task drops its JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

/// State shared by the accept loop, the connections and the [`Backend`] handle.
struct Shared {
    name: String,
    idle_timeout: Option<Duration>,
    health_status: AtomicU16,
    requests: Mutex<Vec<RecordedRequest>>,
    probes: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicUsize,
    probe_count: AtomicUsize,
    next_seq: AtomicU64,
    max_recorded: usize,
    /// Raw bytes per connection; the index is the connection number.
    conns: Mutex<Vec<ConnRecord>>,
    raw_bytes: AtomicUsize,
    max_raw_bytes: usize,
    open: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Origin of the millisecond clock used for idle tracking.
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What one connection delivered: its bytes and where the next request head starts.
#[derive(Default)]
struct ConnRecord {
    raw: Vec<u8>,
    cursor: usize,
    /// Set once bytes were left out (over `max_raw_bytes`): heads are then taken from
    /// hyper's parse instead of the raw bytes.
    truncated: bool,
}

/// Per-connection activity, read by the idle timer.
struct Activity {
    last_ms: AtomicU64,
    active: AtomicUsize,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    // Owning the connections here means that ending this task closes all of them.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let id = {
                        let mut records = lock(&shared.conns);
                        records.push(ConnRecord::default());
                        records.len() - 1
                    };
                    shared.open.fetch_add(1, Ordering::SeqCst);
                    conns.spawn(serve_connection(Arc::clone(&shared), stream, id));
                }
                // Out of descriptors or similar: pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Decrements the open-connection count however the connection task ends.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, conn: usize) {
    let _open = OpenGuard(Arc::clone(&shared));
    let activity = Arc::new(Activity {
        last_ms: AtomicU64::new(shared.now_ms()),
        active: AtomicUsize::new(0),
    });
    let io = RecordingIo {
        inner: stream,
        shared: Arc::clone(&shared),
        conn,
        activity: Arc::clone(&activity),
    };
    let next_index = Arc::new(AtomicUsize::new(0));
    let svc = {
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(&activity);
        service_fn(move |req| {
            let index = next_index.fetch_add(1, Ordering::SeqCst);
            handle(Arc::clone(&shared), Arc::clone(&activity), conn, index, req)
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(MAX_REQUEST_HEADERS)
        .keep_alive(true);
    let connection = http.serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = connection => {}
        () = idle_watch(&shared, &activity) => {}
    }
}

/// Returns once the connection has been idle for the backend's idle timeout (never when
/// there is none). The loop lives as long as the connection.
async fn idle_watch(shared: &Shared, activity: &Activity) {
    let Some(idle) = shared.idle_timeout else {
        return std::future::pending().await;
    };
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
    loop {
        let since = shared
            .now_ms()
            .saturating_sub(activity.last_ms.load(Ordering::SeqCst));
        if activity.active.load(Ordering::SeqCst) == 0 && since >= idle_ms {
            return;
        }
        let wait = if since >= idle_ms {
            idle_ms
        } else {
            idle_ms - since
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// A TCP stream that appends every byte read to its connection's record.
struct RecordingIo {
    inner: TcpStream,
    shared: Arc<Shared>,
    conn: usize,
    activity: Arc<Activity>,
}

impl RecordingIo {
    fn touch(&self) {
        self.activity
            .last_ms
            .store(self.shared.now_ms(), Ordering::SeqCst);
    }
}

impl AsyncRead for RecordingIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                if let Some(rec) = lock(&this.shared.conns).get_mut(this.conn) {
                    let total = this.shared.raw_bytes.fetch_add(new.len(), Ordering::SeqCst);
                    if rec.truncated || total + new.len() > this.shared.max_raw_bytes {
                        rec.truncated = true;
                    } else {
                        rec.raw.extend_from_slice(new);
                    }
                }
                this.touch();
            }
        }
        polled
    }
}

impl AsyncWrite for RecordingIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.touch();
            }
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.touch();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request head as it appeared on the wire.
struct RawHead {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    len: usize,
    body: RawBody,
}

/// How the request body is framed on the wire.
enum RawBody {
    None,
    Length(usize),
    Chunked,
}

fn parse_raw_head(buf: &[u8]) -> Option<RawHead> {
    let mut storage = vec![httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let te_last = header_all_in(&headers, "transfer-encoding")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|t| !t.is_empty());
    let body = if let Some(te) = te_last {
        if te.eq_ignore_ascii_case("chunked") {
            RawBody::Chunked
        } else {
            RawBody::None
        }
    } else {
        match header_in(&headers, "content-length").map(|v| v.trim().parse::<usize>()) {
            Some(Ok(n)) => RawBody::Length(n),
            _ => RawBody::None,
        }
    };
    Some(RawHead {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        version: format!("HTTP/1.{}", req.version.unwrap_or(1)),
        headers,
        len,
        body,
    })
}

/// The head of the next request on connection `conn`, from the raw bytes.
fn next_raw_head(shared: &Shared, conn: usize) -> Option<RawHead> {
    let records = lock(&shared.conns);
    let rec = records.get(conn).filter(|r| !r.truncated)?;
    parse_raw_head(rec.raw.get(rec.cursor..)?)
}

/// Moves the connection's cursor past the request whose head is `head`, once its body has
/// been read.
fn advance_cursor(shared: &Shared, conn: usize, head: &RawHead) {
    let mut records = lock(&shared.conns);
    let Some(rec) = records.get_mut(conn) else {
        return;
    };
    let body_start = rec.cursor + head.len;
    let body_len = match head.body {
        RawBody::None => Some(0),
        RawBody::Length(n) => Some(n),
        RawBody::Chunked => match scan_chunked(rec.raw.get(body_start..).unwrap_or(&[])) {
            Chunked::Complete { used, .. } => Some(used),
            Chunked::Incomplete { .. } | Chunked::Invalid { .. } => None,
        },
    };
    // When the framing cannot be followed, skip everything received so far.
    rec.cursor = body_len.map_or(rec.raw.len(), |n| (body_start + n).min(rec.raw.len()));
}

/// Which list a request is recorded in, and its sequence number there.
#[derive(Clone, Copy)]
enum Slot {
    Request(u64),
    Probe(u64),
    /// Past `max_recorded`: counted only.
    Unrecorded,
}

/// Counts a request in flight (backend-wide and on its connection) until dropped, which
/// also happens when hyper drops the handler because the connection closed.
struct InFlight {
    shared: Arc<Shared>,
    activity: Arc<Activity>,
}

impl InFlight {
    fn new(shared: Arc<Shared>, activity: Arc<Activity>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        activity.active.fetch_add(1, Ordering::SeqCst);
        InFlight { shared, activity }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.activity.active.fetch_sub(1, Ordering::SeqCst);
        self.activity
            .last_ms
            .store(self.shared.now_ms(), Ordering::SeqCst);
    }
}

fn with_record(shared: &Shared, slot: Slot, f: impl FnOnce(&mut RecordedRequest)) {
    let (list, seq) = match slot {
        Slot::Request(seq) => (&shared.requests, seq),
        Slot::Probe(seq) => (&shared.probes, seq),
        Slot::Unrecorded => return,
    };
    // Records in progress are the most recent ones: search from the end.
    if let Some(r) = lock(list).iter_mut().rev().find(|r| r.seq == seq) {
        f(r);
    }
}

/// The special behaviour a path asks for.
enum Special {
    Default,
    Status(u16),
    Delay(u64),
    Bytes(u64),
    Chunked(u64),
    Close,
    Health,
    Echo,
    Invalid(String),
}

fn special(path: &str) -> Special {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let last = segments.last().copied();
    let pair = if segments.len() >= 2 {
        Some((segments[segments.len() - 2], segments[segments.len() - 1]))
    } else {
        None
    };
    match (pair, last) {
        (Some(("status", code)), _) => match code.parse::<u16>() {
            Ok(c) if (200..=999).contains(&c) => Special::Status(c),
            _ => Special::Invalid(format!("/status/{code}: want a status in 200..=999")),
        },
        (Some(("delay", ms)), _) => match ms.parse::<u64>() {
            Ok(ms) => Special::Delay(ms),
            Err(_) => Special::Invalid(format!("/delay/{ms}: want milliseconds")),
        },
        (Some(("bytes", n)), _) => match n.parse::<u64>() {
            Ok(n) if n <= MAX_GENERATED_BODY => Special::Bytes(n),
            _ => Special::Invalid(format!("/bytes/{n}: want a size up to {MAX_GENERATED_BODY}")),
        },
        (Some(("chunked", n)), _) => match n.parse::<u64>() {
            Ok(n) if n <= MAX_GENERATED_BODY => Special::Chunked(n),
            _ => Special::Invalid(format!("/chunked/{n}: want a size up to {MAX_GENERATED_BODY}")),
        },
        (_, Some("close")) => Special::Close,
        (_, Some("health")) => Special::Health,
        (_, Some("echo")) => Special::Echo,
        _ => Special::Default,
    }
}

fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

async fn handle(
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    conn: usize,
    index: usize,
    req: Request<Incoming>,
) -> Result<Response<AnswerBody>, Infallible> {
    let _in_flight = InFlight::new(Arc::clone(&shared), activity);
    let raw = next_raw_head(&shared, conn);
    let (method, target, version, headers) = match &raw {
        Some(h) => (
            h.method.clone(),
            h.target.clone(),
            h.version.clone(),
            h.headers.clone(),
        ),
        None => (
            req.method().to_string(),
            req.uri().to_string(),
            format!("{:?}", req.version()),
            req.headers()
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
        ),
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let special = special(&path);
    let record = RecordedRequest {
        method: method.clone(),
        target: target.clone(),
        version: version.clone(),
        headers: headers.clone(),
        body: Vec::new(),
        connection: conn,
        index,
        complete: false,
        status: None,
        seq: shared.next_seq.fetch_add(1, Ordering::SeqCst),
    };
    let slot = record_arrival(&shared, record, matches!(special, Special::Health));

    // Read the whole body, recording it as it arrives.
    let mut body = req.into_body();
    let mut received: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                    with_record(&shared, slot, |r| r.body.extend_from_slice(&data));
                }
            }
            Some(Err(_)) => {
                let answer = simple(
                    StatusCode::BAD_REQUEST,
                    &shared.name,
                    "request body broken\n",
                    true,
                );
                return Ok(answer);
            }
            None => break,
        }
    }
    if let Some(h) = &raw {
        advance_cursor(&shared, conn, h);
    }
    with_record(&shared, slot, |r| r.complete = true);

    let reply = BackendReply {
        backend: shared.name.clone(),
        method,
        target,
        path,
        query,
        version,
        headers,
        body_len: received.len(),
        connection: conn,
        index,
    };
    let (status, body, close) = match special {
        Special::Default => (StatusCode::OK, json_body(&reply), false),
        Special::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if code == 204 || code == 304 {
                Full::new(Bytes::new()).boxed()
            } else {
                json_body(&reply)
            };
            (status, body, false)
        }
        Special::Delay(ms) => {
            tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
            (StatusCode::OK, json_body(&reply), false)
        }
        Special::Bytes(n) => (StatusCode::OK, PatternBody::new(n, true).boxed(), false),
        Special::Chunked(n) => (StatusCode::OK, PatternBody::new(n, false).boxed(), false),
        Special::Close => (StatusCode::OK, json_body(&reply), true),
        Special::Health => {
            let code = shared.health_status.load(Ordering::SeqCst);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, json_body(&reply), false)
        }
        Special::Echo => (StatusCode::OK, Full::new(Bytes::from(received)).boxed(), false),
        Special::Invalid(why) => {
            with_record(&shared, slot, |r| r.status = Some(400));
            return Ok(simple(StatusCode::BAD_REQUEST, &shared.name, &why, false));
        }
    };
    let content_type = match special {
        Special::Bytes(_) | Special::Chunked(_) | Special::Echo => "application/octet-stream",
        _ => "application/json",
    };
    let mut builder = Response::builder()
        .status(status)
        .header("x-backend", shared.name.as_str())
        .header("x-backend-connection", conn)
        .header("x-backend-request", index)
        .header("content-type", content_type);
    if close {
        builder = builder.header("connection", "close");
    }
    let answer = builder.body(body).unwrap_or_else(|_| {
        simple(
            StatusCode::INTERNAL_SERVER_ERROR,
            &shared.name,
            "bad answer\n",
            true,
        )
    });
    with_record(&shared, slot, |r| r.status = Some(answer.status().as_u16()));
    Ok(answer)
}

/// Counts a request and records it while there is room.
fn record_arrival(shared: &Shared, record: RecordedRequest, probe: bool) -> Slot {
    let (list, count) = if probe {
        (&shared.probes, &shared.probe_count)
    } else {
        (&shared.requests, &shared.request_count)
    };
    let mut list = lock(list);
    count.fetch_add(1, Ordering::SeqCst);
    if list.len() >= shared.max_recorded {
        return Slot::Unrecorded;
    }
    let seq = record.seq;
    list.push(record);
    if probe {
        Slot::Probe(seq)
    } else {
        Slot::Request(seq)
    }
}

fn json_body(reply: &BackendReply) -> AnswerBody {
    let bytes = serde_json::to_vec(reply).unwrap_or_default();
    Full::new(Bytes::from(bytes)).boxed()
}

fn simple(status: StatusCode, name: &str, text: &str, close: bool) -> Response<AnswerBody> {
    let mut answer = Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *answer.status_mut() = status;
    if let Ok(v) = name.parse() {
        answer.headers_mut().insert("x-backend", v);
    }
    if close {
        answer
            .headers_mut()
            .insert("connection", hyper::header::HeaderValue::from_static("close"));
    }
    answer
}

/// A generated body of `remaining` bytes repeating the alphabet, sent in 16 KiB frames;
/// with `exact` its size is announced (Content-Length), otherwise it is sent chunked.
struct PatternBody {
    sent: u64,
    remaining: u64,
    exact: bool,
}

impl PatternBody {
    fn new(len: u64, exact: bool) -> Self {
        PatternBody {
            sent: 0,
            remaining: len,
            exact,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(GENERATED_FRAME);
        let chunk: Vec<u8> = (this.sent..this.sent + n)
            .map(|i| b'a' + u8::try_from(i % 26).unwrap_or(0))
            .collect();
        this.sent += n;
        this.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.exact && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_paths_match_as_suffixes() {
        assert!(matches!(special("/status/503"), Special::Status(503)));
        assert!(matches!(special("/api/delay/20"), Special::Delay(20)));
        assert!(matches!(special("/bytes/10"), Special::Bytes(10)));
        assert!(matches!(special("/x/chunked/0"), Special::Chunked(0)));
        assert!(matches!(special("/close"), Special::Close));
        assert!(matches!(special("/svc/health"), Special::Health));
        assert!(matches!(special("/echo"), Special::Echo));
        assert!(matches!(special("/"), Special::Default));
        assert!(matches!(special("/status/99"), Special::Invalid(_)));
        assert!(matches!(special("/healthy"), Special::Default));
    }

    #[test]
    fn raw_head_keeps_order_and_case() {
        let head = parse_raw_head(
            b"POST /a?b=1 HTTP/1.1\r\nX-B: 1\r\nHost: h\r\nx-b: 2\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap();
        assert_eq!(head.target, "/a?b=1");
        assert_eq!(
            head.headers,
            vec![
                ("X-B".to_string(), "1".to_string()),
                ("Host".to_string(), "h".to_string()),
                ("x-b".to_string(), "2".to_string()),
                ("Content-Length".to_string(), "3".to_string()),
            ]
        );
        assert!(matches!(head.body, RawBody::Length(3)));
    }
}
