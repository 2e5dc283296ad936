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

use std::io;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::net::TcpStream;

/// An idle connection older than this is asked with a peek whether the target closed
/// it, rather than trusting readiness the reactor may not have caught up with yet. Busy
/// connections come back within microseconds and skip the system call; targets close idle
/// connections after a second or more (keep-alive timeouts), far beyond this.
const PEEK_AFTER_IDLE_MS: u64 = 50;
/// Idle connections kept per target. Beyond this the surplus closes: it only exists after
/// a burst and a target should not hold sockets for traffic that is gone.
const POOL_CAPACITY: usize = 256;

struct Idle {
    stream: TcpStream,
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
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => return false,
        }
        if self.idle_ms() < PEEK_AFTER_IDLE_MS {
            return true;
        }
        let mut peek = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(&self.stream).peek(&mut peek),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
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
    /// An idle connection that is still open and was idle at most `max_idle`.
    pub(crate) fn take(&self, max_idle: Duration) -> Option<TcpStream> {
        // Bounded: at most the queue's capacity of stale entries is discarded.
        for _ in 0..POOL_CAPACITY {
            let idle = self.idle.pop()?;
            if idle.fresh(max_idle) && idle.still_open() {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Returns a connection after a clean exchange.
    pub(crate) fn put(&self, stream: TcpStream) {
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
        pool.put(a);
        pool.put(b);
        drop(server_a);
        // Give the FIN time to arrive (bounded).
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if pool.idle.len() == 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = pool.take(Duration::from_secs(60)).expect("one open connection");
        assert_eq!(got.peer_addr().unwrap(), addr);
        assert!(
            pool.take(Duration::from_secs(60)).is_none(),
            "the closed one was dropped"
        );
    }
}
