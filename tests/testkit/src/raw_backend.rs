//! [`RawBackend`]: a raw TCP target with a scripted behaviour that records every byte.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::patience::scaled;
use crate::sync::{lock, stopped};

/// Size of each read from a connection.
const READ_CHUNK: usize = 16 * 1024;

/// After a scripted close, how long the peer's remaining bytes are read before the socket
/// is dropped: closing with unread bytes would turn the FIN into a RST and could destroy
/// the response just written.
const DRAIN_AFTER_CLOSE: Duration = Duration::from_secs(2);

/// How long `stop()` waits for the listener and every connection to be closed.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// What a [`RawBackend`] does with each connection it accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum RawBehaviour {
    /// After each request head (each new `\r\n\r\n`), write these bytes; keep the
    /// connection open unless they contain `Connection: close` (any case), in which case
    /// close it after writing.
    Respond(Vec<u8>),
    /// After the first request head, write these bytes and close.
    RespondThenClose(Vec<u8>),
    /// After the first request head, write these bytes and reset the connection (RST).
    RespondThenReset(Vec<u8>),
    /// Accept and read forever; never answer.
    Blackhole,
    /// Accept, then close at once (FIN).
    CloseImmediately,
    /// Accept, then reset at once (RST, via `SO_LINGER` 0).
    ResetImmediately,
    /// Read the first request head, then reset the connection (RST) without answering.
    ResetAfterHead,
    /// Read the first request head, then close the connection (FIN) without answering.
    CloseAfterHead,
    /// Answer the first request of each connection with these bytes; read the second
    /// request, then close (FIN) without answering: a target that dies (or gives up on a
    /// kept-alive connection) after it has read a request.
    AnswerFirstThenClose(Vec<u8>),
    /// As `AnswerFirstThenClose`, but reset (RST) after reading the second request.
    AnswerFirstThenReset(Vec<u8>),
}

impl fmt::Debug for RawBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawBehaviour::Respond(b) => write!(f, "Respond({:?})", String::from_utf8_lossy(b)),
            RawBehaviour::RespondThenClose(b) => {
                write!(f, "RespondThenClose({:?})", String::from_utf8_lossy(b))
            }
            RawBehaviour::RespondThenReset(b) => {
                write!(f, "RespondThenReset({:?})", String::from_utf8_lossy(b))
            }
            RawBehaviour::Blackhole => f.write_str("Blackhole"),
            RawBehaviour::CloseImmediately => f.write_str("CloseImmediately"),
            RawBehaviour::ResetImmediately => f.write_str("ResetImmediately"),
            RawBehaviour::ResetAfterHead => f.write_str("ResetAfterHead"),
            RawBehaviour::CloseAfterHead => f.write_str("CloseAfterHead"),
            RawBehaviour::AnswerFirstThenClose(_) => f.write_str("AnswerFirstThenClose"),
            RawBehaviour::AnswerFirstThenReset(_) => f.write_str("AnswerFirstThenReset"),
        }
    }
}

/// A raw TCP server on a loopback port: a target whose misbehaviour a test scripts.
///
/// It records every byte received, per connection. The behaviour applies to connections
/// accepted after it is set. Stopping or dropping it closes the listener and every
/// connection.
pub struct RawBackend {
    addr: SocketAddr,
    shared: Arc<RawShared>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for RawBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBackend")
            .field("addr", &self.addr)
            .field("behaviour", &*lock(&self.shared.behaviour))
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

struct RawShared {
    behaviour: Mutex<RawBehaviour>,
    received: Mutex<Vec<Vec<u8>>>,
}

impl RawBackend {
    /// Starts on `127.0.0.1:0`; panics when it cannot bind.
    pub async fn start(behaviour: RawBehaviour) -> RawBackend {
        match Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour).await {
            Ok(b) => b,
            Err(e) => panic!("raw backend cannot bind: {e}"),
        }
    }

    /// Starts on `addr`.
    pub async fn bind(addr: SocketAddr, behaviour: RawBehaviour) -> io::Result<RawBackend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(RawShared {
            behaviour: Mutex::new(behaviour),
            received: Mutex::new(Vec::new()),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), rx));
        Ok(RawBackend {
            addr,
            shared,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the behaviour for connections accepted from now on.
    pub fn set_behaviour(&self, behaviour: RawBehaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Every byte received, per connection (index = connection number, accept order).
    pub fn received(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.received).clone()
    }

    /// Total bytes received over all connections.
    pub fn received_len(&self) -> usize {
        lock(&self.shared.received).iter().map(Vec::len).sum()
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.received).len()
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

impl Drop for RawBackend {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<RawShared>, mut shutdown: watch::Receiver<bool>) {
    // Owning the connections here means that ending this task closes all of them.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let id = {
                        let mut received = lock(&shared.received);
                        received.push(Vec::new());
                        received.len() - 1
                    };
                    let behaviour = lock(&shared.behaviour).clone();
                    conns.spawn(serve(Arc::clone(&shared), stream, id, behaviour));
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

/// Reads once from `stream`, recording what arrived. `Ok(0)` means the peer closed.
async fn read_some(
    shared: &RawShared,
    id: usize,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    let n = stream.read(buf).await?;
    if n > 0 {
        if let Some(rec) = lock(&shared.received).get_mut(id) {
            rec.extend_from_slice(&buf[..n]);
        }
    }
    Ok(n)
}

/// Where the next request head ends (just past `\r\n\r\n`) in `bytes`, searching from
/// `from`.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

fn asks_to_close(bytes: &[u8]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    lower
        .windows(b"connection: close".len())
        .any(|w| w == b"connection: close")
}

fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Closes the write side, then reads (recording) until the peer closes or the drain time
/// is up, so the close is a FIN rather than a RST.
async fn close_gracefully(shared: &RawShared, id: usize, mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut buf = vec![0u8; READ_CHUNK];
    let _ = tokio::time::timeout(DRAIN_AFTER_CLOSE, async {
        // Ends at EOF, on error, or at the drain timeout.
        while let Ok(n) = read_some(shared, id, &mut stream, &mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn serve(shared: Arc<RawShared>, mut stream: TcpStream, id: usize, behaviour: RawBehaviour) {
    let mut buf = vec![0u8; READ_CHUNK];
    match behaviour {
        RawBehaviour::CloseImmediately => drop(stream),
        RawBehaviour::ResetImmediately => reset(stream),
        RawBehaviour::Blackhole => {
            // Lives until the peer closes or the backend stops.
            while let Ok(n) = read_some(&shared, id, &mut stream, &mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        RawBehaviour::Respond(answer) => {
            let close = asks_to_close(&answer);
            // Bytes after the last answered head, and where to resume the search in them.
            let mut pending: Vec<u8> = Vec::new();
            let mut scan_from = 0usize;
            // Lives until the peer closes, the answer closes, or the backend stops.
            while let Ok(n) = read_some(&shared, id, &mut stream, &mut buf).await {
                if n == 0 {
                    return;
                }
                pending.extend_from_slice(&buf[..n]);
                // Answer every head that has arrived (pipelined heads get one answer each).
                while let Some(end) = head_end(&pending, scan_from) {
                    pending.drain(..end);
                    scan_from = 0;
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                    if close {
                        close_gracefully(&shared, id, stream).await;
                        return;
                    }
                }
                // A head end may straddle two reads: resume three bytes back.
                scan_from = pending.len().saturating_sub(3);
            }
        }
        RawBehaviour::RespondThenClose(answer) => respond_once(&shared, id, stream, &answer, false).await,
        RawBehaviour::RespondThenReset(answer) => respond_once(&shared, id, stream, &answer, true).await,
        RawBehaviour::ResetAfterHead => {
            if wait_for_heads(&shared, id, &mut stream, &mut buf, 1).await {
                reset(stream);
            }
        }
        RawBehaviour::CloseAfterHead => {
            if wait_for_heads(&shared, id, &mut stream, &mut buf, 1).await {
                drop(stream);
            }
        }
        RawBehaviour::AnswerFirstThenClose(answer) => {
            if answer_first(&shared, id, &mut stream, &answer).await {
                drop(stream);
            }
        }
        RawBehaviour::AnswerFirstThenReset(answer) => {
            if answer_first(&shared, id, &mut stream, &answer).await {
                reset(stream);
            }
        }
    }
}

/// Waits for a request head, writes `answer`, then closes (or resets).
async fn respond_once(shared: &RawShared, id: usize, mut stream: TcpStream, answer: &[u8], then_reset: bool) {
    let mut buf = vec![0u8; READ_CHUNK];
    if !wait_for_heads(shared, id, &mut stream, &mut buf, 1).await {
        return;
    }
    if stream.write_all(answer).await.is_err() {
        return;
    }
    if then_reset {
        let _ = stream.flush().await;
        reset(stream);
    } else {
        close_gracefully(shared, id, stream).await;
    }
}

/// Answers the first request head with `answer`, then reads until a second head has
/// arrived; false when the peer closed first.
async fn answer_first(shared: &RawShared, id: usize, stream: &mut TcpStream, answer: &[u8]) -> bool {
    let mut buf = vec![0u8; READ_CHUNK];
    wait_for_heads(shared, id, stream, &mut buf, 1).await
        && stream.write_all(answer).await.is_ok()
        && wait_for_heads(shared, id, stream, &mut buf, 2).await
}

/// Reads until `n` request heads have arrived on the connection; false when the peer
/// closed first.
async fn wait_for_heads(
    shared: &RawShared,
    id: usize,
    stream: &mut TcpStream,
    buf: &mut [u8],
    n: usize,
) -> bool {
    let arrived = |shared: &RawShared| {
        lock(&shared.received).get(id).is_some_and(|r| {
            let (mut count, mut from) = (0, 0);
            while let Some(end) = head_end(r, from) {
                count += 1;
                from = end;
            }
            count >= n
        })
    };
    if arrived(shared) {
        return true;
    }
    // Lives until the heads arrive, the peer closes, or the backend stops.
    while let Ok(read) = read_some(shared, id, stream, buf).await {
        if read == 0 {
            return false;
        }
        if arrived(shared) {
            return true;
        }
    }
    false
}
