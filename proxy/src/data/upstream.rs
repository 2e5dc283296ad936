//! Connections to targets: connecting with ALB's 10 s limit, TLS towards HTTPS targets
//! (handshake within its own 10 s), and [`Upstream`], the stream a request uses whichever
//! of the two it is. The keep-alive pool a target keeps them in is [`crate::model::pool`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::data::errors::{ErrorKind, ProxyError};

/// ALB: a target connection not established within 10 s is a 504.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// ALB: a TLS handshake with a target not done within 10 s is a 504 (alb-spec §4); the
/// handshake gets its own 10 s after the TCP connect.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection to `addr` within `CONNECT_TIMEOUT`.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, ProxyError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout)),
        Ok(Err(e)) => Err(ProxyError::io(ErrorKind::ConnectRefused, e)),
        Ok(Ok(stream)) => {
            // Heads and small bodies go out in one write; waiting for more would only add
            // latency.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// Opens a connection for an HTTP/1 request: plain, or TLS for an HTTPS target group.
pub(crate) async fn open(addr: SocketAddr, tls: bool) -> Result<Upstream, ProxyError> {
    let tcp = connect(addr).await?;
    if !tls {
        return Ok(Upstream::Plain(tcp));
    }
    let Some(connector) = http1_connector() else {
        return Err(ProxyError::new(ErrorKind::TargetTls));
    };
    handshake(connector, addr, tcp, TLS_HANDSHAKE_TIMEOUT).await
}

/// The TLS handshake on a connected socket, within `limit`: a failure is a 502, running
/// out of time a 504, both counted as `TargetTLSNegotiationErrorCount`.
pub(crate) async fn handshake(
    connector: &TlsConnector,
    addr: SocketAddr,
    tcp: TcpStream,
    limit: Duration,
) -> Result<Upstream, ProxyError> {
    match tokio::time::timeout(limit, connector.connect(addr, tcp)).await {
        Err(_) => Err(ProxyError::new(ErrorKind::TargetTlsTimeout)),
        Ok(Err(e)) => Err(ProxyError::io(ErrorKind::TargetTls, e)),
        Ok(Ok(stream)) => Ok(Upstream::Tls(Box::new(TlsConn {
            stream,
            unflushed: false,
        }))),
    }
}

/// The process's connector for HTTPS targets over HTTP/1, built on first use (building
/// reads no file and cannot fail with the ring provider's defaults; `None` if it did).
fn http1_connector() -> Option<&'static TlsConnector> {
    // OnceLock: built once by whichever request first needs it; every later request reads
    // it without a lock.
    static CONNECTOR: OnceLock<Option<TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            TlsConnector::new()
                .map_err(|e| tracing::error!(error = %e, "no TLS towards HTTPS targets"))
                .ok()
        })
        .as_ref()
}

/// A connection to a target: plain TCP, or TLS for HTTPS target groups. The TLS state is
/// boxed: it is large, and plain connections (the common case) should not carry its size.
#[derive(Debug)]
pub(crate) enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
}

impl Upstream {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Upstream::Tls(_))
    }

    /// The TCP socket underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Upstream::Plain(s) => s,
            Upstream::Tls(c) => c.stream.get_ref().0,
        }
    }

    /// Whether bytes written earlier still wait in the TLS session (never for plain).
    pub(crate) fn unflushed(&self) -> bool {
        matches!(self, Upstream::Tls(c) if c.unflushed)
    }

    /// Read and write halves usable at once (a request body going out while the response
    /// head comes in). Plain sockets split without a lock; a TLS session is one state
    /// machine that both halves drive.
    pub(crate) fn split(&mut self) -> (UpstreamRead<'_>, UpstreamWrite<'_>) {
        match self {
            Upstream::Plain(s) => {
                let (r, w) = s.split();
                (UpstreamRead::Plain(r), UpstreamWrite::Plain(w))
            }
            Upstream::Tls(c) => {
                // Both halves are polled by one task (one select!), so the mutex is never
                // contended; it is what lets the halves, and the task holding them, be Send.
                let shared = Arc::new(Mutex::new(&mut **c));
                (UpstreamRead::Tls(shared.clone()), UpstreamWrite::Tls(shared))
            }
        }
    }
}

/// A TLS session with a target that writes through: tokio-rustls reports bytes written
/// once they are in the session, and with no flush after the last write (the HTTP/1 path
/// writes and then reads, as on a plain socket) its final records would wait for the next
/// write. So every write is followed by a flush; what cannot go out yet is pushed again
/// before the next write and whenever the connection is read.
#[derive(Debug)]
pub(crate) struct TlsConn {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// Records written into the session that the socket has not taken yet.
    unflushed: bool,
}

impl TlsConn {
    /// Pushes out records an earlier write left behind; `Pending` while the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// After `n` bytes went into the session: try to get them onto the socket now.
    fn after_write(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(n)),
            // The socket is full: the bytes are accepted, the records go out on the next
            // write or read (the waker is registered for writability meanwhile).
            Poll::Pending => {
                self.unflushed = true;
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // A reader waits for an answer to what was written: that must be on its way.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        let n = std::task::ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
        self.after_write(cx, n)
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        let n = std::task::ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.after_write(cx, n)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The TLS half of [`Upstream::split`]: the session both halves share.
type SharedTls<'a> = Arc<Mutex<&'a mut TlsConn>>;

/// Access to the TLS session inside an [`Upstream`] or one of its halves.
trait WithTls {
    fn with<T>(&mut self, f: impl FnOnce(&mut TlsConn) -> T) -> T;
}

impl WithTls for Box<TlsConn> {
    fn with<T>(&mut self, f: impl FnOnce(&mut TlsConn) -> T) -> T {
        f(self)
    }
}

impl WithTls for SharedTls<'_> {
    fn with<T>(&mut self, f: impl FnOnce(&mut TlsConn) -> T) -> T {
        // A panic cannot happen while the lock is held (the closures only poll), so a
        // poisoned lock is still consistent.
        let mut guard = self.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// The read half of [`Upstream::split`].
pub(crate) enum UpstreamRead<'a> {
    Plain(tokio::net::tcp::ReadHalf<'a>),
    Tls(SharedTls<'a>),
}

/// The write half of [`Upstream::split`].
pub(crate) enum UpstreamWrite<'a> {
    Plain(tokio::net::tcp::WriteHalf<'a>),
    Tls(SharedTls<'a>),
}

/// Delegates the read side to the plain socket or the TLS session.
macro_rules! delegate_read {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tls(s) => s.with(|c| c.poll_read(cx, buf)),
                }
            }
        }
    };
}

/// Delegates the write side to the plain socket or the TLS session.
macro_rules! delegate_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tls(s) => s.with(|c| c.poll_write(cx, buf)),
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    Self::Tls(s) => s.with(|c| c.poll_write_vectored(cx, bufs)),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    Self::Plain(s) => s.is_write_vectored(),
                    Self::Tls(_) => true,
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_flush(cx),
                    Self::Tls(s) => s.with(|c| c.poll_flush(cx)),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tls(s) => s.with(|c| c.poll_shutdown(cx)),
                }
            }
        }
    };
}

delegate_read!(Upstream);
delegate_write!(Upstream);
delegate_read!(UpstreamRead<'_>);
delegate_write!(UpstreamWrite<'_>);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn refused_connect_is_a_502() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(addr).await.unwrap_err();
        assert_eq!(err.status(), 502);
        assert!(matches!(err.kind, ErrorKind::ConnectRefused));
    }

    /// A TLS server with a fresh self-signed certificate that records the SNI it was sent
    /// and counts handshakes; each connection echoes the byte count of what it reads
    /// until `\n` as one line, over and over.
    pub(crate) async fn tls_echo_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<Option<String>>>>) {
        let cert = rcgen::generate_simple_self_signed(vec!["target.test".to_owned()]).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(Vec::new()));
        let (h, n) = (handshakes.clone(), names.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, h, n) = (acceptor.clone(), h.clone(), n.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    h.fetch_add(1, Ordering::SeqCst);
                    n.lock()
                        .unwrap()
                        .push(tls.get_ref().1.server_name().map(str::to_owned));
                    let mut count = 0usize;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let Ok(k) = tls.read(&mut buf).await else { return };
                        if k == 0 {
                            return;
                        }
                        for b in &buf[..k] {
                            count += 1;
                            if *b == b'\n' {
                                let line = format!("{count}\n");
                                if tls.write_all(line.as_bytes()).await.is_err() {
                                    return;
                                }
                                count = 0;
                            }
                        }
                    }
                });
            }
        });
        (addr, handshakes, names)
    }

    async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> String {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).await.is_ok() && b[0] != b'\n' {
            line.push(b[0]);
        }
        String::from_utf8(line).unwrap()
    }

    #[tokio::test]
    async fn tls_targets_get_no_sni_and_any_certificate_is_taken() {
        let (addr, handshakes, names) = tls_echo_server().await;
        let mut up = open(addr, true).await.unwrap();
        assert!(up.is_tls());
        up.write_all(b"hello\n").await.unwrap();
        assert_eq!(read_line(&mut up).await, "6");
        assert_eq!(handshakes.load(Ordering::SeqCst), 1);
        assert_eq!(*names.lock().unwrap(), vec![None], "ALB sends no SNI to targets");
    }

    /// Big writes through both halves at once: the last records must reach the target
    /// without a flush by the caller (the HTTP/1 path writes, then only reads).
    #[tokio::test]
    async fn tls_writes_go_out_whole_without_a_flush() {
        let (addr, _, _) = tls_echo_server().await;
        let mut up = open(addr, true).await.unwrap();
        let body = {
            let mut b = vec![b'x'; 8 * 1024 * 1024 - 1];
            b.push(b'\n');
            b
        };
        let (mut r, mut w) = up.split();
        let write = async {
            let mut sent = 0;
            while sent < body.len() {
                sent += w.write(&body[sent..]).await.unwrap();
            }
        };
        let read = read_line(&mut r);
        let ((), line) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
            .await
            .expect("the whole body reached the target");
        assert_eq!(line, body.len().to_string());
        assert!(!up.unflushed());
    }

    #[tokio::test]
    async fn a_failed_handshake_is_a_502() {
        // A target that answers the ClientHello with plain HTTP.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let err = open(addr, true).await.unwrap_err();
        assert!(matches!(err.kind, ErrorKind::TargetTls), "{err}");
        assert_eq!(err.status(), 502);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_handshake_not_done_in_10_seconds_is_a_504() {
        // A target that accepts and never answers the ClientHello.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = connect(addr).await.unwrap();
        let (_silent, _) = listener.accept().await.unwrap();
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let connector = TlsConnector::new().unwrap();
        let err = handshake(&connector, addr, tcp, TLS_HANDSHAKE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err.kind, ErrorKind::TargetTlsTimeout), "{err}");
        assert_eq!(err.status(), 504);
        let waited = started.elapsed();
        assert!(
            waited >= TLS_HANDSHAKE_TIMEOUT && waited < TLS_HANDSHAKE_TIMEOUT + Duration::from_millis(100),
            "{waited:?}"
        );
    }
}

/// TLS towards targets (HTTPS target groups and health checks). ALB does not validate
/// target certificates (alb-spec §3), and neither does hostalb: targets on one host use
/// self-signed certificates more often than not. Handshake signatures are still checked.
#[derive(Clone)]
pub(crate) struct TlsConnector(tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector(..)")
    }
}

impl TlsConnector {
    /// The connector for HTTP/1 targets (ALPN `http/1.1`).
    pub(crate) fn new() -> Result<TlsConnector, rustls::Error> {
        Self::with_alpn(&[HTTP1_ALPN])
    }

    /// A connector offering `alpn`, in that order.
    pub(crate) fn with_alpn(alpn: &[&[u8]]) -> Result<TlsConnector, rustls::Error> {
        let config = unverified_client_config(alpn)?;
        Ok(TlsConnector(tokio_rustls::TlsConnector::from(config)))
    }

    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        // ALB sends no SNI to targets (targets behind an ALB see handshakes without a
        // server name); an IP address name makes rustls leave the extension out.
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        self.0.connect(name, stream).await
    }
}

/// ALPN offered to HTTP/1 targets.
pub(crate) const HTTP1_ALPN: &[u8] = b"http/1.1";
/// ALPN offered to HTTP/2 and gRPC targets.
pub(crate) const H2_ALPN: &[u8] = b"h2";

/// A rustls client configuration that accepts any target certificate (as ALB does) and
/// offers `alpn` in that order; used for HTTPS target groups and their health checks, over
/// HTTP/1 and HTTP/2 alike.
pub(crate) fn unverified_client_config(
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(std::sync::Arc::new(config))
}

/// Accepts any target certificate; verifies handshake signatures with the certificate's key.
#[derive(Debug)]
pub(crate) struct AnyCertificate(pub(crate) std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
