//! A target's HTTP/2 connections (target groups with `protocol_version` `HTTP2` or
//! `GRPC`), state a target carries across snapshots like its HTTP/1 [`crate::model::pool`].
//! [`crate::data::h2_upstream`] opens the connections and runs the streams.
//!
//! Why it is shaped this way:
//!
//! - **Shared, not taken.** An HTTP/1 connection serves one exchange at a time, so that pool
//!   hands connections out and takes them back. An HTTP/2 connection carries many streams
//!   at once, so here connections stay in the pool while in use and a request leases one
//!   stream slot on one of them ([`Lease`]); the slot is given back when the lease drops.
//! - **Fill the first connection with room.** Streams go to the oldest connection that has
//!   a free slot, up to the target's `SETTINGS_MAX_CONCURRENT_STREAMS` (as h2 last heard
//!   it); only when every connection is full is another one opened. Load concentrates on
//!   few connections, and those a burst added fall idle and close.
//! - **Lock-free lookup.** The list of connections is an `ArcSwap`: a request reads it
//!   without a lock and takes a slot with one compare-and-swap on the connection's counter.
//!   The list is copied only when a connection opens or closes.
//! - **One connect at a time.** Requests that find every connection full wait for the same
//!   connect (a shared `OnceCell`) instead of each opening its own: a burst of first
//!   requests to a new target opens one connection, not one per request. A caller whose
//!   connect is abandoned (its client left) leaves the cell to the next waiter.
//! - **Connections watch themselves.** Each connection has a driver task that runs the h2
//!   connection, closes it when no stream used it for the idle timeout, and takes it out of
//!   the pool when the target sends GOAWAY, the connection fails, or the target is cut. No
//!   sweep has to visit the pool.
//! - **Bounded.** At most [`MAX_CONNECTIONS`] per target; past that a stream goes to the
//!   least busy connection and h2 holds it until the target frees a slot (the response
//!   timeout still bounds the wait). A target whose limit is 0 fails the request after one
//!   connect instead of drawing a new connection per request.
//!
//! No lock is held across an await: the one mutex (which connect is under way) is taken
//! only by requests that found every connection full, and only to clone an `Arc`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use h2::client::SendRequest;
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use crate::data::errors::{ErrorKind, ProxyError};

/// Connections per target at most: the HTTP/1 pool's bound, far beyond what one target
/// with a hundred streams per connection needs.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Rounds of "wait for a connect, then look for a slot" before a request settles for the
/// least busy connection: a burst larger than one connection's streams needs a few.
const CONNECT_ROUNDS: usize = 4;
/// Set in a connection's stream counter once it takes no more streams; far above any
/// stream count.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// How often a retired connection looks whether its last stream ended: a retired
/// connection is rare (GOAWAY, failure) and holds only a socket meanwhile.
const RETIRED_CHECK: Duration = Duration::from_secs(1);

/// The driver of a newly opened connection: runs the h2 connection until it ends.
pub(crate) type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One HTTP/2 connection to the target.
pub(crate) struct Conn {
    send: SendRequest<Bytes>,
    /// Streams leased on it, plus [`CLOSED`] once it takes no new ones.
    state: AtomicUsize,
    /// When the last lease dropped, in milliseconds after `born`.
    idle_since_ms: AtomicU64,
    born: Instant,
    /// Wakes the driver: the connection was retired or killed.
    shut: Notify,
    /// Close now, whatever streams are open.
    killed: AtomicBool,
    pool: Weak<Shared>,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn streams(&self) -> usize {
        self.state.load(Ordering::Acquire) & !CLOSED
    }

    /// A stream slot when the connection is open and below the target's limit.
    fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        // h2 knows the limit the target announced in SETTINGS (before they arrive, the
        // assumption the connection was built with).
        let max = self.send.current_max_send_streams();
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & CLOSED == 0 && s < max).then_some(s + 1)
            })
            .ok()
            .map(|_| Lease { conn: self.clone() })
    }

    /// A stream slot whatever the limit (h2 holds the stream until the target has room).
    fn force_lease(self: &Arc<Self>) -> Lease {
        self.state.fetch_add(1, Ordering::AcqRel);
        Lease { conn: self.clone() }
    }

    /// Takes no more streams and leaves the pool; the streams on it go on (a target's
    /// GOAWAY promises to finish them) and the driver closes it once they are done.
    fn retire(self: &Arc<Self>) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if let Some(pool) = self.pool.upgrade() {
            pool.remove(self);
        }
        // Wakes the driver to close it when nothing uses it any more.
        self.shut.notify_one();
    }

    /// Closes it now: the streams on it end with an error (the target was cut).
    fn kill(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        self.killed.store(true, Ordering::Release);
        // A stored permit: the driver sees it even if it is not waiting right now.
        self.shut.notify_one();
    }
}

/// One stream slot on one connection, given back on drop.
pub(crate) struct Lease {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("streams", &self.conn.streams())
            .finish()
    }
}

impl Lease {
    /// A handle to open the stream with (a reference count, no allocation).
    pub(crate) fn sender(&self) -> SendRequest<Bytes> {
        self.conn.send.clone()
    }

    /// The connection is unusable (it refused a new stream): no stream goes there again.
    pub(crate) fn discard(&self) {
        self.conn.retire();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let before = self.conn.state.fetch_sub(1, Ordering::AcqRel);
        if before == 1 {
            let ms = self.conn.born.elapsed().as_millis() as u64;
            self.conn.idle_since_ms.store(ms, Ordering::Release);
        } else if before == CLOSED | 1 {
            // The last stream of a retired connection: the driver can close it now.
            self.conn.shut.notify_one();
        }
    }
}

/// The outcome of one shared connect, for the requests that waited on it.
#[derive(Clone, Copy)]
enum Dialed {
    Refused,
    Timeout,
    Closed,
    Bad(&'static str),
}

impl Dialed {
    fn of(e: &ProxyError) -> Dialed {
        match e.kind {
            ErrorKind::ConnectTimeout => Dialed::Timeout,
            ErrorKind::TargetClosed => Dialed::Closed,
            ErrorKind::BadResponse(r) => Dialed::Bad(r),
            _ => Dialed::Refused,
        }
    }

    fn error(self) -> ProxyError {
        ProxyError::new(match self {
            Dialed::Refused => ErrorKind::ConnectRefused,
            Dialed::Timeout => ErrorKind::ConnectTimeout,
            Dialed::Closed => ErrorKind::TargetClosed,
            Dialed::Bad(r) => ErrorKind::BadResponse(r),
        })
    }
}

type Dial = Arc<OnceCell<Result<Arc<Conn>, Dialed>>>;

struct Shared {
    conns: ArcSwap<Vec<Arc<Conn>>>,
    /// The connect requests are waiting on, if one is under way or just finished.
    dial: Mutex<Option<Dial>>,
    /// Connections opened over the pool's life.
    opened: AtomicU64,
}

impl Shared {
    fn add(&self, conn: Arc<Conn>) {
        self.conns.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(conn.clone());
            list
        });
    }

    fn remove(&self, conn: &Arc<Conn>) {
        self.conns.rcu(|list| {
            list.iter()
                .filter(|c| !Arc::ptr_eq(c, conn))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Lets go of the finished connect that opened `conn`, so that a closed connection is
    /// not kept alive by it.
    fn forget_dial(&self, conn: &Arc<Conn>) {
        let mut dial = self.dial.lock().unwrap_or_else(|p| p.into_inner());
        let opened_it = matches!(
            dial.as_ref().and_then(|cell| cell.get()),
            Some(Ok(c)) if Arc::ptr_eq(c, conn)
        );
        if opened_it {
            *dial = None;
        }
    }

    /// A slot on the first open connection with room.
    fn lease_existing(&self) -> Option<Lease> {
        self.conns.load().iter().find_map(|c| c.try_lease())
    }
}

/// A target's HTTP/2 connections.
pub(crate) struct H2Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("connections", &self.connections())
            .finish()
    }
}

impl Default for H2Pool {
    fn default() -> Self {
        H2Pool {
            shared: Arc::new(Shared {
                conns: ArcSwap::from_pointee(Vec::new()),
                dial: Mutex::new(None),
                opened: AtomicU64::new(0),
            }),
        }
    }
}

impl H2Pool {
    /// A stream slot: on an open connection with room, else on a new one opened by `dial`
    /// (shared with the other requests waiting, unless `fresh`: then a connection of its
    /// own, as a retry needs). `dial` gives the stream handle and the connection's driver.
    /// `idle`: the connection closes once no stream used it for this long.
    pub(crate) async fn lease<F, Fut>(
        &self,
        fresh: bool,
        idle: Duration,
        dial: F,
    ) -> Result<Lease, ProxyError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(SendRequest<Bytes>, Driver), ProxyError>>,
    {
        if fresh {
            let conn = self.open(&dial, idle).await?;
            return Ok(conn.force_lease());
        }
        for _ in 0..CONNECT_ROUNDS {
            if let Some(lease) = self.shared.lease_existing() {
                return Ok(lease);
            }
            if self.connections() >= MAX_CONNECTIONS {
                break;
            }
            let cell = self.current_dial();
            // Our own connect's error keeps its detail; waiters get its kind.
            let mut own_error = None;
            let got = cell
                .get_or_init(|| async {
                    match self.open(&dial, idle).await {
                        Ok(conn) => Ok(conn),
                        Err(e) => {
                            let dialed = Dialed::of(&e);
                            own_error = Some(e);
                            Err(dialed)
                        }
                    }
                })
                .await
                .clone();
            match got {
                Err(dialed) => return Err(own_error.unwrap_or_else(|| dialed.error())),
                Ok(conn) => {
                    if let Some(lease) = conn.try_lease() {
                        return Ok(lease);
                    }
                    if conn.send.current_max_send_streams() == 0 {
                        // The target takes no streams at all (SETTINGS_MAX_CONCURRENT_STREAMS
                        // 0): more connections would not help.
                        return Err(ProxyError::new(ErrorKind::TargetClosed));
                    }
                }
            }
        }
        // Every connection is full and no more may open: the least busy one, where h2
        // holds the stream until the target has room.
        let conns = self.shared.conns.load();
        if let Some(conn) = conns
            .iter()
            .filter(|c| !c.is_closed())
            .min_by_key(|c| c.streams())
        {
            return Ok(conn.force_lease());
        }
        let conn = self.open(&dial, idle).await?;
        Ok(conn.force_lease())
    }

    /// The connect under way, or a new one when the last has finished.
    fn current_dial(&self) -> Dial {
        // Held only to clone or replace an Arc, never across an await.
        let mut dial = self
            .shared
            .dial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*dial {
            Some(cell) if !cell.initialized() => cell.clone(),
            _ => {
                let cell: Dial = Arc::new(OnceCell::new());
                *dial = Some(cell.clone());
                cell
            }
        }
    }

    /// Opens a connection, puts it in the pool and starts its driver.
    async fn open<F, Fut>(&self, dial: &F, idle: Duration) -> Result<Arc<Conn>, ProxyError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(SendRequest<Bytes>, Driver), ProxyError>>,
    {
        let (send, driver) = dial().await?;
        let conn = Arc::new(Conn {
            send,
            state: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            born: Instant::now(),
            shut: Notify::new(),
            killed: AtomicBool::new(false),
            pool: Arc::downgrade(&self.shared),
        });
        self.shared.add(conn.clone());
        self.shared.opened.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(drive(conn.clone(), driver, idle));
        Ok(conn)
    }

    /// Closes every connection (the target was cut): its streams end at once.
    pub(crate) fn clear(&self) {
        let conns = self.shared.conns.swap(Arc::new(Vec::new()));
        for c in conns.iter() {
            c.kill();
        }
    }

    /// Connections open now.
    pub(crate) fn connections(&self) -> usize {
        self.shared.conns.load().len()
    }

    /// Connections opened since the target was registered.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn opened(&self) -> u64 {
        self.shared.opened.load(Ordering::Relaxed)
    }
}

/// Runs one connection until the target ends it, it fails or is killed, or no stream
/// used it for `idle` (or it was retired and its last stream ended); then takes it out of
/// the pool.
async fn drive(conn: Arc<Conn>, mut driver: Driver, idle: Duration) {
    let mut deadline = conn.born + idle;
    loop {
        tokio::select! {
            () = &mut driver => break,
            () = conn.shut.notified() => {
                if conn.killed.load(Ordering::Acquire) {
                    break;
                }
                // Retired: it closes once its last stream ends (checked below, and at
                // the latest when the idle deadline comes).
                deadline = Instant::now();
            }
            () = tokio::time::sleep_until(deadline) => {
                let state = conn.state.load(Ordering::Acquire);
                if state == CLOSED {
                    break;
                }
                if state & CLOSED != 0 {
                    // Retired with streams still open: look again within a moment.
                    deadline = Instant::now() + RETIRED_CHECK.min(idle);
                    continue;
                }
                let since = conn.born
                    + Duration::from_millis(conn.idle_since_ms.load(Ordering::Acquire));
                if state != 0 {
                    deadline = Instant::now() + idle;
                    continue;
                }
                if since + idle > Instant::now() {
                    deadline = since + idle;
                    continue;
                }
                // Closed only if still unused: a lease taken meanwhile keeps it open.
                if conn
                    .state
                    .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    break;
                }
            }
        }
    }
    conn.state.fetch_or(CLOSED, Ordering::AcqRel);
    if let Some(pool) = conn.pool.upgrade() {
        pool.remove(&conn);
        pool.forget_dial(&conn);
    }
    // Dropping the driver closes the socket; streams still open on it end with an error.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to an in-memory h2 server that accepts streams and never answers.
    async fn connection() -> (SendRequest<Bytes>, Driver) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let Ok(mut server) = h2::server::handshake(far).await else {
                return;
            };
            let mut held = Vec::new();
            while let Some(Ok(stream)) = server.accept().await {
                held.push(stream);
            }
        });
        let (send, conn) = h2::client::handshake(near).await.unwrap();
        (
            send,
            Box::pin(async move {
                let _ = conn.await;
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn requests_arriving_together_wait_for_one_connect() {
        let pool = Arc::new(H2Pool::default());
        let dials = Arc::new(AtomicUsize::new(0));
        let leases: Vec<_> = (0..20)
            .map(|_| {
                let (pool, dials) = (pool.clone(), dials.clone());
                tokio::spawn(async move {
                    pool.lease(false, Duration::from_secs(60), || {
                        let dials = dials.clone();
                        async move {
                            dials.fetch_add(1, Ordering::SeqCst);
                            // Slow enough that every request arrives during the connect.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(connection().await)
                        }
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut held = Vec::new();
        for l in leases {
            held.push(l.await.unwrap());
        }
        assert_eq!(dials.load(Ordering::SeqCst), 1);
        assert_eq!(pool.connections(), 1);
        assert_eq!(pool.shared.conns.load()[0].streams(), 20);
        drop(held);
        assert_eq!(pool.shared.conns.load()[0].streams(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_connect_fails_everyone_who_waited_for_it_with_its_kind() {
        let pool = Arc::new(H2Pool::default());
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.lease(false, Duration::from_secs(60), || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<(SendRequest<Bytes>, Driver), _>(ProxyError::new(ErrorKind::ConnectTimeout))
                    })
                    .await
                    .unwrap_err()
                })
            })
            .collect();
        for w in waiting {
            assert!(matches!(w.await.unwrap().kind, ErrorKind::ConnectTimeout));
        }
        assert_eq!(pool.connections(), 0);
        assert_eq!(pool.opened(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retired_connection_takes_no_streams_and_closes_after_its_last() {
        let pool = H2Pool::default();
        let idle = Duration::from_secs(60);
        let first = pool
            .lease(false, idle, || async { Ok(connection().await) })
            .await
            .unwrap();
        let conn = first.conn.clone();
        first.discard();
        assert_eq!(pool.connections(), 0, "out of the pool at once");
        assert!(conn.try_lease().is_none());
        let second = pool
            .lease(false, idle, || async { Ok(connection().await) })
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&second.conn, &conn));
        drop(first);
        // The driver closes it once its last stream is gone (bounded wait).
        for _ in 0..100 {
            if Arc::strong_count(&conn) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&conn), 1, "the driver let go of it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closes_after_the_idle_timeout_without_streams_only() {
        let pool = H2Pool::default();
        let idle = Duration::from_secs(60);
        let lease = pool
            .lease(false, idle, || async { Ok(connection().await) })
            .await
            .unwrap();
        // A stream open longer than the idle timeout keeps its connection.
        tokio::time::sleep(idle * 2).await;
        assert_eq!(pool.connections(), 1);
        drop(lease);
        tokio::time::sleep(idle - Duration::from_secs(1)).await;
        assert_eq!(pool.connections(), 1, "not idle long enough yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pool.connections(), 0);
    }
}
