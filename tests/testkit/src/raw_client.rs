//! Raw-byte clients: [`raw_exchange`] for one shot, [`RawConn`] for a conversation.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::patience::scaled;
use crate::response::{Parse, ParsedResponse, parse_one};

/// Bound on opening one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of each read.
const READ_CHUNK: usize = 16 * 1024;

/// Connects to `addr`, writes `request`, and reads until the peer closes (or resets) or
/// `timeout` passes; returns every byte that arrived. Write errors (a peer that closes
/// early) are ignored: what arrived is still returned. Panics when it cannot connect.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut conn = match RawConn::connect(addr).await {
        Ok(c) => c,
        Err(e) => panic!("raw_exchange cannot connect to {addr}: {e}"),
    };
    let _ = conn.send(request).await;
    let _ = conn.wait_closed(timeout).await;
    conn.received().to_vec()
}

/// One raw TCP connection: send bytes, read responses or wait for the close, and keep
/// everything received.
pub struct RawConn {
    stream: TcpStream,
    addr: SocketAddr,
    received: Vec<u8>,
    /// How much of `received` earlier `read_response` calls consumed.
    consumed: usize,
    closed: bool,
    reset: bool,
}

impl fmt::Debug for RawConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawConn")
            .field("addr", &self.addr)
            .field("received", &String::from_utf8_lossy(&self.received))
            .field("closed", &self.closed)
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

impl RawConn {
    /// Connects to `addr` (bounded by 5 s × patience).
    pub async fn connect(addr: SocketAddr) -> io::Result<RawConn> {
        let limit = scaled(CONNECT_TIMEOUT);
        let stream = tokio::time::timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect {addr}")))??;
        let _ = stream.set_nodelay(true);
        Ok(RawConn {
            stream,
            addr,
            received: Vec::new(),
            consumed: 0,
            closed: false,
            reset: false,
        })
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Closes the write side (sends FIN) but keeps reading.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    /// Everything received so far.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Whether the peer has closed (FIN or RST) as far as reads have seen.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the peer reset the connection (as far as reads have seen).
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// Reads once, waiting until `deadline`; false when nothing more can arrive.
    async fn read_more(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) => {
                self.closed = true;
                false
            }
            Ok(Ok(n)) => {
                self.received.extend_from_slice(&buf[..n]);
                true
            }
            Ok(Err(e)) => {
                self.closed = true;
                self.reset = e.kind() == io::ErrorKind::ConnectionReset;
                false
            }
            Err(_) => false,
        }
    }

    /// Reads until one more complete response has arrived and returns it; when the peer
    /// closes first, returns what arrived (a truncated response has `complete == false`);
    /// `None` when nothing parseable arrived within `timeout`.
    pub async fn read_response(&mut self, timeout: Duration) -> Option<ParsedResponse> {
        let deadline = Instant::now() + timeout;
        // Each round either parses, reads more bytes, or ends: bounded by the deadline.
        loop {
            let pending = &self.received[self.consumed..];
            if !pending.is_empty() {
                match parse_one(pending, self.closed) {
                    Parse::Done(resp, used) => {
                        self.consumed += used.max(1).min(pending.len());
                        return Some(resp);
                    }
                    Parse::Invalid => return None,
                    Parse::NeedMore => {}
                }
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            if !self.read_more(deadline).await && !self.closed {
                return None;
            }
        }
    }

    /// Reads until the peer closes (FIN or RST) or `timeout` passes; true when it closed.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline: read_more returns false at the latest then.
        while self.read_more(deadline).await {}
        self.closed
    }

    /// Reads whatever arrives within `timeout` without waiting for a close; returns the
    /// bytes received during this call.
    pub async fn read_for(&mut self, timeout: Duration) -> Vec<u8> {
        let start = self.received.len();
        let deadline = Instant::now() + timeout;
        while self.read_more(deadline).await {}
        self.received[start..].to_vec()
    }
}
