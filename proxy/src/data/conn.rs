//! A client connection as the request path holds it: its halves, buffers and the
//! facts about it, what happens after an exchange, and the per-request record.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncRead;

use crate::data::buffers::BufferSet;
use crate::data::counted::Counted;
use crate::http1::fields::HeaderField;
use crate::model::snapshot::ListenerId;

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
    pub(crate) texts: crate::data::headers::ConnTexts,
    pub(crate) local: SocketAddr,
    /// When the connection was accepted ([`crate::clock::coarse_ms`]).
    pub(crate) opened_ms: u64,
    /// The connection's id in the access log (`conn_trace_id`).
    pub(crate) trace: u128,
    /// The client connected to an HTTPS listener.
    pub(crate) tls: bool,
    /// Its TLS session, for the access log.
    pub(crate) tls_info: Option<Box<crate::data::tls::TlsInfo>>,
    pub(crate) listener: ListenerId,
}

impl<R, W> ClientConn<R, W> {
    /// Hands the buffers to the thread's spare sets while the connection waits for its
    /// next request ([`crate::data::buffers`]).
    pub(crate) fn park_buffers(&mut self) {
        crate::data::buffers::put(BufferSet {
            rbuf: std::mem::take(&mut self.rbuf),
            wbuf: std::mem::take(&mut self.wbuf),
            upbuf: std::mem::take(&mut self.upbuf),
            out: std::mem::take(&mut self.spare_out),
            fields: std::mem::take(&mut self.spare_fields),
            response_fields: std::mem::take(&mut self.spare_response_fields),
        });
    }

    /// Takes a set of buffers for the request that is arriving.
    pub(crate) fn unpark_buffers(&mut self) {
        let set = crate::data::buffers::take();
        self.rbuf = set.rbuf;
        self.wbuf = set.wbuf;
        self.upbuf = set.upbuf;
        self.spare_out = set.out;
        self.spare_fields = set.fields;
        self.spare_response_fields = set.response_fields;
    }

    pub(crate) fn new(rd: R, wr: W, id: Identity, local: SocketAddr, tls: bool) -> Self {
        let peer_ip = match id.peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        ClientConn {
            texts: crate::data::headers::ConnTexts::new(peer_ip, id.peer.port(), local.port(), tls),
            rd: Counted::new(rd),
            wr: Counted::new(wr),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            upbuf: BytesMut::new(),
            spare_fields: Vec::new(),
            spare_response_fields: Vec::new(),
            spare_out: BytesMut::new(),
            peer: id.peer,
            peer_ip,
            local,
            opened_ms: id.opened_ms,
            tls,
            tls_info: None,
            trace: id.trace,
            listener: id.listener,
        }
    }

    /// What the connection keeps while it waits idle without this state.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            peer: self.peer,
            listener: self.listener,
            opened_ms: self.opened_ms,
            trace: self.trace,
        }
    }

    /// The reader, giving up the rest of the serving state.
    pub(crate) fn into_reader(self) -> R {
        self.rd.into_inner()
    }
}

/// What a client connection is for its whole life, serving or idle: its peer and
/// listener, when it opened (ALB's client keep-alive duration counts from there) and its
/// id in the access log. (Its local address is the socket's to say, when it is needed.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub(crate) peer: SocketAddr,
    pub(crate) listener: ListenerId,
    /// When the connection was accepted ([`crate::clock::coarse_ms`]).
    pub(crate) opened_ms: u64,
    /// The connection's id in the access log (`conn_trace_id`).
    pub(crate) trace: u128,
}

impl Identity {
    /// A connection accepted now.
    pub(crate) fn new(peer: SocketAddr, listener: ListenerId) -> Identity {
        Identity {
            peer,
            listener,
            opened_ms: crate::clock::coarse_ms(),
            trace: (u128::from(crate::rng::next_u64()) << 64) | u128::from(crate::rng::next_u64()),
        }
    }
}

/// What happens to the connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
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
    /// The access log's facts, gathered only while there is an access log: when the
    /// request arrived (wall clock and monotonic), was sent to a target, its response
    /// head came back, and the response began to go to the client.
    pub(crate) created: Option<std::time::SystemTime>,
    pub(crate) received: Option<std::time::Instant>,
    pub(crate) dispatched: Option<std::time::Instant>,
    pub(crate) answered: Option<std::time::Instant>,
    pub(crate) replied: Option<std::time::Instant>,
    /// The target of a first attempt that failed and was retried elsewhere.
    pub(crate) retried_from: Option<SocketAddr>,
    /// The `X-Amzn-Trace-Id` value sent to the target.
    pub(crate) trace_id: Option<Box<[u8]>>,
    /// A redirect's Location.
    pub(crate) redirect: Option<Box<[u8]>>,
    /// The target group's ARN (the access log's `target_group_arn`).
    pub(crate) group_arn: Option<Arc<str>>,
    /// Desync classification and reason, when not compliant.
    pub(crate) desync: Option<(&'static str, &'static str)>,
}

/// The client side of a connection, as [`crate::data::session`] waits on it.
pub(crate) trait ClientRead: AsyncRead + Unpin + Send {
    /// Whether [`ClientRead::readable`] and [`ClientRead::try_read_buf`] work: the stream
    /// can wait for bytes without a buffer, so an idle connection parks its buffers.
    const WAITS_WITHOUT_BUFFER: bool;

    /// Whether the connection has an idle state without its serving state
    /// ([`crate::data::idle`]): after [`crate::data::session::HOT_WAIT`] with nothing of a
    /// next request, the session hands the connection back to it.
    const HAS_IDLE_STATE: bool;

    /// Resolves when bytes may be readable (possibly spuriously).
    fn readable(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Reads what is there without waiting (`WouldBlock` when nothing is).
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize>;
}

impl ClientRead for tokio::net::tcp::ReadHalf<'_> {
    const WAITS_WITHOUT_BUFFER: bool = true;
    const HAS_IDLE_STATE: bool = false;

    fn readable(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        // The stream's reader waker slot, not `readable()`'s waiter list (a lock and a
        // list insertion per wait): this task is the only reader.
        let this: &Self = self;
        let stream: &tokio::net::TcpStream = this.as_ref();
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

/// A TLS client connection's reader, which waits for its next request without a buffer:
/// the wait reads one byte (rustls has decrypted the record into its own buffer by then)
/// and keeps it for the read that follows, so an idle TLS connection parks its buffers
/// like a plain one. It has no idle state otherwise (its TLS session stays).
#[derive(Debug)]
pub(crate) struct TlsReader<T> {
    inner: tokio::io::ReadHalf<T>,
    /// A byte the wait read.
    byte: Option<u8>,
    /// The wait saw the end of the stream (or an error).
    eof: bool,
}

impl<T> TlsReader<T> {
    pub(crate) fn new(inner: tokio::io::ReadHalf<T>) -> Self {
        TlsReader {
            inner,
            byte: None,
            eof: false,
        }
    }
}

impl<T: AsyncRead> AsyncRead for TlsReader<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() > 0 {
            if let Some(b) = this.byte.take() {
                buf.put_slice(&[b]);
                return std::task::Poll::Ready(Ok(()));
            }
            if this.eof {
                return std::task::Poll::Ready(Ok(()));
            }
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + Send> ClientRead for TlsReader<T> {
    const WAITS_WITHOUT_BUFFER: bool = true;
    const HAS_IDLE_STATE: bool = false;

    fn readable(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        std::future::poll_fn(move |cx| {
            if self.byte.is_some() || self.eof {
                return std::task::Poll::Ready(Ok(()));
            }
            let mut one = [0u8; 1];
            let mut buf = tokio::io::ReadBuf::new(&mut one);
            match std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                std::task::Poll::Ready(Ok(())) => {
                    match buf.filled().first() {
                        Some(&b) => self.byte = Some(b),
                        None => self.eof = true,
                    }
                    std::task::Poll::Ready(Ok(()))
                }
                // The connection is over: the read that follows sees its end.
                std::task::Poll::Ready(Err(e)) => {
                    self.eof = true;
                    std::task::Poll::Ready(Err(e))
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        // Only what the wait read: the rest of the request is read by the caller's
        // waiting read (a TLS read cannot be tried without registering its waker).
        if let Some(b) = self.byte.take() {
            buf.extend_from_slice(&[b]);
            return Ok(1);
        }
        if self.eof {
            return Ok(0);
        }
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl<T: ClientRead> ClientRead for Counted<T> {
    const WAITS_WITHOUT_BUFFER: bool = T::WAITS_WITHOUT_BUFFER;
    const HAS_IDLE_STATE: bool = T::HAS_IDLE_STATE;

    fn readable(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.get_mut().readable()
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        let n = self.get_mut().try_read_buf(buf)?;
        self.add_count(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A TLS connection's reader waits without a buffer: the wait keeps the one byte it
    /// read, which comes first, before the rest; the end of the stream reads as 0.
    #[tokio::test]
    async fn a_tls_reader_keeps_the_byte_its_wait_read_and_sees_the_end() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let (rd, _wr) = tokio::io::split(ours);
        let mut reader = TlsReader::new(rd);
        let mut buf = BytesMut::with_capacity(64);
        assert_eq!(
            reader.try_read_buf(&mut buf).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "nothing before the wait"
        );
        let early = tokio::time::timeout(Duration::from_millis(50), reader.readable()).await;
        assert!(early.is_err(), "nothing sent, nothing ready");
        peer.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        tokio::time::timeout(Duration::from_secs(5), reader.readable())
            .await
            .expect("ready once bytes came")
            .expect("no error");
        assert_eq!(reader.try_read_buf(&mut buf).expect("the kept byte"), 1);
        assert_eq!(&buf[..], b"G");
        let mut rest = [0u8; 64];
        let n = reader.read(&mut rest).await.expect("read");
        assert_eq!(&rest[..n], b"ET / HTTP/1.1\r\n");
        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), reader.readable())
            .await
            .expect("ready at the end")
            .expect("no error");
        assert_eq!(reader.try_read_buf(&mut buf).expect("the end"), 0);
    }
}
