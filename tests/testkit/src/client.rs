//! HTTP clients for tests: [`Client`] (pooled keep-alive) and [`Conn`] (one explicit
//! connection, to test reuse).

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::patience::scaled;
use crate::response::{header_all_in, header_in};

/// Default bound on one request, response body included (scaled by the patience factor).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on opening one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection is kept: long, so tests see reuse.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// An error from a test client: connect, send, timeout or a bad response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    message: String,
    timeout: bool,
}

impl ClientError {
    fn new(message: impl Into<String>) -> Self {
        ClientError {
            message: message.into(),
            timeout: false,
        }
    }

    fn timeout(what: &str, after: Duration) -> Self {
        ClientError {
            message: format!("{what}: no answer within {after:?}"),
            timeout: true,
        }
    }

    fn chain(context: &str, e: &(dyn StdError + 'static)) -> Self {
        Self::new(format!("{context}: {}", error_chain(e)))
    }

    /// Whether the request ran out of time.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// The message, with every cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ClientError {}

/// `e` and all its sources, joined by `: `.
pub(crate) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    // Error chains are short; the bound guards against a cycle.
    for _ in 0..16 {
        let Some(s) = source else { break };
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A response received by [`Client`] or [`Conn`], body read in full.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `"HTTP/1.0"`, `"HTTP/1.1"` or `"HTTP/2.0"`.
    pub version: String,
    /// Header lines (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as a [`crate::Backend`]'s default answer, if it is one.
    pub fn reply(&self) -> Option<crate::BackendReply> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as the answer of the backend in the Docker test image, if it is one.
    pub fn container_reply(&self) -> Option<crate::docker::ContainerReply> {
        crate::docker::ContainerReply::from_body(&self.body)
    }

    /// The `x-backend` header: which backend answered.
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

async fn read_response(resp: hyper::Response<Incoming>) -> Result<HttpResponse, ClientError> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| ClientError::chain("reading the response body", &e))?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    })
}

fn build_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let method = hyper::Method::from_bytes(method.as_bytes())
        .map_err(|e| ClientError::new(format!("method {method:?}: {e}")))?;
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| ClientError::chain("building the request", &e))
}

/// Builder for [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    timeout: Duration,
    http2: bool,
    retry_canceled: bool,
    max_idle_per_host: usize,
}

impl ClientBuilder {
    /// Bound on each request, response body included (default 30 s × patience).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Whether a request that lost a race with the server closing a pooled connection is
    /// retried on a new one (default true, as browsers do; false counts it as an error).
    pub fn retry_canceled(mut self, retry: bool) -> Self {
        self.retry_canceled = retry;
        self
    }

    /// Most idle connections kept per address (default unbounded).
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(scaled(CONNECT_TIMEOUT)));
        let mut b = LegacyClient::builder(TokioExecutor::new());
        b.pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .retry_canceled_requests(self.retry_canceled)
            .http2_only(self.http2);
        Client {
            inner: b.build(connector),
            timeout: self.timeout,
        }
    }
}

/// A pooled keep-alive HTTP client (HTTP/1.1 unless built with `http2()`).
#[derive(Clone)]
pub struct Client {
    inner: LegacyClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// An HTTP/1.1 keep-alive client with the default timeout.
    pub fn new() -> Client {
        Self::builder().build()
    }

    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            timeout: scaled(DEFAULT_REQUEST_TIMEOUT),
            http2: false,
            retry_canceled: true,
            max_idle_per_host: usize::MAX,
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<HttpResponse, ClientError> {
        self.request("GET", url, &[], Bytes::new()).await
    }

    /// Sends `method url` with these extra headers and body (Host is set from the URL
    /// unless given).
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<HttpResponse, ClientError> {
        let req = build_request(method, url, headers, body.into())?;
        let what = format!("{method} {url}");
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| ClientError::chain(&what, &e))?;
            read_response(resp).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::timeout(&what, self.timeout)),
        }
    }
}

/// One explicit HTTP/1.1 connection: every request goes over the same TCP connection, one
/// after the other, so a test can check keep-alive reuse.
pub struct Conn {
    addr: SocketAddr,
    local: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<Result<(), hyper::Error>>,
    timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("local", &self.local)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects to `addr` (bounded by 5 s × patience).
    pub async fn connect(addr: SocketAddr) -> Result<Conn, ClientError> {
        let limit = scaled(CONNECT_TIMEOUT);
        let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::chain(&format!("connect {addr}"), &e)),
            Err(_) => return Err(ClientError::timeout(&format!("connect {addr}"), limit)),
        };
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .map_err(|e| ClientError::chain("local address", &e))?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::chain(&format!("handshake {addr}"), &e))?;
        let driver = tokio::spawn(connection);
        Ok(Conn {
            addr,
            local,
            sender,
            driver,
            timeout: scaled(DEFAULT_REQUEST_TIMEOUT),
        })
    }

    /// Sets the bound on each request, response body included.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This end's address (tells connections apart).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection can no longer carry requests.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }

    /// Waits up to `timeout` for the peer to close the connection; true if it did.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        if self.driver.is_finished() {
            return true;
        }
        tokio::time::timeout(timeout, &mut self.driver).await.is_ok()
    }

    /// `GET target` (origin form, e.g. `/a?b=1`) on this connection.
    pub async fn get(&mut self, target: &str) -> Result<HttpResponse, ClientError> {
        self.request("GET", target, &[], Bytes::new()).await
    }

    /// Sends `method target` with these headers and body on this connection; `Host` is the
    /// connected address unless given.
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<HttpResponse, ClientError> {
        let mut req = build_request(method, target, headers, body.into())?;
        if !req.headers().contains_key(hyper::header::HOST) {
            if let Ok(v) = self.addr.to_string().parse() {
                req.headers_mut().insert(hyper::header::HOST, v);
            }
        }
        let what = format!("{method} {target} on {}", self.addr);
        let timeout = self.timeout;
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await.map_err(|e| ClientError::chain(&what, &e))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::chain(&what, &e))?;
            read_response(resp).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::timeout(&what, timeout)),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
