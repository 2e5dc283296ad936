//! A target's keep-alive pool: its idle connections, state a target carries across
//! snapshots ([`crate::data::upstream`] opens the connections).
//!
//! The pool is a lock-free bounded queue (`ArrayQueue`): a request takes an idle
//! connection or opens one, and gives it back only when the exchange ended cleanly
//! (response complete, request fully sent, no `Connection: close`). A connection is never
//! shared by two requests at once, so requests are never pipelined to a target.
//!
//! Idle connections are watched for the target closing them, as nginx and HAProxy do:
//! the reactor keeps their readiness, so a FIN or reset that arrived is seen without a
//! system call, and one that is idle long enough for a target's keep-alive timeout to
//! have fired is asked directly (a non-blocking peek) before it is reused. A connection
//! found closed is dropped, never tried; the periodic sweep closes the rest.
//!
//! Connections are plain or TLS ([`Upstream`]); a TLS connection is checked on its TCP
//! socket with a peek only, so that no TLS record is taken from under the session.

use std::io;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::data::upstream::Upstream;

/// An idle connection older than this is asked with a peek whether the target closed
/// it, rather than trusting readiness the reactor may not have caught up with yet. Busy
/// connections come back within microseconds and skip the system call; targets close idle
/// connections after a second or more (keep-alive timeouts), far beyond this.
const PEEK_AFTER_IDLE_MS: u64 = 50;
/// Idle connections kept per target. Beyond this the surplus closes: it only exists after
/// a burst and a target should not hold sockets for traffic that is gone.
const POOL_CAPACITY: usize = 256;

struct Idle {
    stream: Upstream,
    /// When it became idle ([`crate::clock::coarse_ms`]).
    since_ms: u64,
}

impl Idle {
    fn idle_ms(&self) -> u64 {
        crate::clock::coarse_ms().saturating_sub(self.since_ms)
    }

    fn fresh(&self, max_idle: Duration) -> bool {
        self.idle_ms() <= max_idle.as_millis() as u64
    }

    /// Whether the connection is still usable: nothing to read and no FIN or reset. Data
    /// arriving on an idle HTTP/1 connection is a protocol error, so it disqualifies it
    /// too.
    fn still_open(&self) -> bool {
        let tcp = self.stream.tcp();
        // Readiness first (no system call unless the reactor saw the socket readable).
        // A plain connection may be read: any byte there disqualifies it anyway. A TLS
        // one is only peeked at, leaving its records to the session.
        let ready = match &self.stream {
            Upstream::Plain(s) => {
                let mut probe = [0u8; 1];
                s.try_read(&mut probe).map(drop)
            }
            Upstream::Tls(_) => tcp.try_io(Interest::READABLE, || peek(tcp)),
        };
        match ready {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => return false,
        }
        if self.idle_ms() < PEEK_AFTER_IDLE_MS {
            return true;
        }
        matches!(peek(tcp), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A non-blocking peek of one byte: `WouldBlock` means open with nothing to read; a byte
/// or end of stream means the target spoke or closed.
fn peek(tcp: &TcpStream) -> io::Result<()> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    socket2::SockRef::from(tcp).peek(&mut byte).map(drop)
}

/// Idle keep-alive connections to one target.
pub(crate) struct Pool {
    idle: ArrayQueue<Idle>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle.len()).finish()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            idle: ArrayQueue::new(POOL_CAPACITY),
        }
    }
}

impl Pool {
    /// An idle connection that is still open, was idle at most `max_idle` and is TLS
    /// when `tls` (a reload may have switched the group's protocol; connections of the
    /// other kind are closed).
    pub(crate) fn take(&self, max_idle: Duration, tls: bool) -> Option<Upstream> {
        // Bounded: at most the queue's capacity of stale entries is discarded.
        for _ in 0..POOL_CAPACITY {
            let idle = self.idle.pop()?;
            if idle.stream.is_tls() == tls
                && !idle.stream.unflushed()
                && idle.fresh(max_idle)
                && idle.still_open()
            {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Returns a connection after a clean exchange.
    pub(crate) fn put(&self, stream: Upstream) {
        // A full pool drops (closes) the connection.
        let _ = self.idle.push(Idle {
            stream,
            since_ms: crate::clock::coarse_ms(),
        });
    }

    /// Closes every idle connection (the target left).
    pub(crate) fn clear(&self) {
        while self.idle.pop().is_some() {}
    }

    /// Closes idle connections older than `max_idle` or closed by the target.
    pub(crate) fn sweep(&self, max_idle: Duration) {
        for _ in 0..self.idle.len() {
            let Some(idle) = self.idle.pop() else { break };
            if idle.fresh(max_idle) && idle.still_open() {
                let _ = self.idle.push(idle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::upstream::connect;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn pool_returns_open_connections_and_drops_closed_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::default();
        let a = connect(addr).await.unwrap();
        let (server_a, _) = listener.accept().await.unwrap();
        let b = connect(addr).await.unwrap();
        let (_server_b, _) = listener.accept().await.unwrap();
        pool.put(Upstream::Plain(a));
        pool.put(Upstream::Plain(b));
        drop(server_a);
        // Give the FIN time to arrive (bounded).
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if pool.idle.len() == 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = pool
            .take(Duration::from_secs(60), false)
            .expect("one open connection");
        assert_eq!(got.tcp().peer_addr().unwrap(), addr);
        assert!(
            pool.take(Duration::from_secs(60), false).is_none(),
            "the closed one was dropped"
        );
    }

    #[tokio::test]
    async fn tls_connections_are_reused_and_checked_without_losing_records() {
        use crate::data::upstream::{open, tests::tls_echo_server};
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (addr, handshakes, _) = tls_echo_server().await;
        let pool = Pool::default();
        for round in 0..3 {
            let mut up = match pool.take(Duration::from_secs(60), true) {
                Some(up) => up,
                None => open(addr, true).await.unwrap(),
            };
            up.write_all(b"ping\n").await.unwrap();
            let mut line = [0u8; 2];
            up.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"5\n", "round {round}");
            pool.put(up);
            // Idle past the peek threshold: the check peeks the TCP socket, and the
            // session must still work afterwards.
            tokio::time::sleep(Duration::from_millis(PEEK_AFTER_IDLE_MS + 20)).await;
        }
        assert_eq!(
            handshakes.load(Ordering::SeqCst),
            1,
            "one TLS connection served all rounds"
        );
        assert!(
            pool.take(Duration::from_secs(60), false).is_none(),
            "a plain request never gets a TLS connection"
        );
        assert!(
            pool.take(Duration::from_secs(60), true).is_none(),
            "and that one was dropped"
        );
    }

    #[tokio::test]
    async fn tls_connections_the_target_closed_are_dropped() {
        use crate::data::upstream::{TlsConnector, handshake};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["t".to_owned()]).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        let tcp = connect(addr).await.unwrap();
        let connector = TlsConnector::new().unwrap();
        let up = handshake(&connector, addr, tcp, Duration::from_secs(5))
            .await
            .unwrap();
        let server_side = server.await.unwrap();
        let pool = Pool::default();
        pool.put(up);
        // The target closes the connection, as on its keep-alive timeout.
        drop(server_side);
        tokio::time::sleep(Duration::from_millis(PEEK_AFTER_IDLE_MS + 50)).await;
        assert!(pool.take(Duration::from_secs(60), true).is_none());
    }
}
