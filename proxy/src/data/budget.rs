//! The descriptor budget: how many client connections the process holds at once
//! (`max_client_connections`), so that target connections, health checks and the admin
//! API always find a descriptor.
//!
//! Every accepted client connection holds a [`Held`] until it closes. At the limit, the
//! accept loop ([`crate::data::listener`]) keeps the connection it just accepted waiting
//! and first closes idle connections (those waiting for their next, or first, request),
//! oldest idle first, in nginx's batches; when none is idle it stops accepting, and the
//! kernel's backlog keeps the new connections, until a held one closes or goes idle.
//!
//! "Idle" costs a request an atomic store when its connection starts to wait, a
//! compare-and-swap when it stops, and a few loads (no lock, no waker registration): the
//! wait is the one in which an idle connection has parked its buffers
//! ([`ClientRead::readable`], called by `session::read_head` only then), so [`Budgeted`],
//! the reader every plain client connection is served through, marks it there, and so does
//! the idle state of [`crate::data::idle`] ([`Held::idle_wait`]). A TLS connection keeps
//! its TLS session (several kilobytes) while it waits, and is never idle to the budget: it
//! is held until it closes (idle timeout at the latest).

use std::collections::BinaryHeap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

use crate::data::conn::ClientRead;

/// Descriptors kept out of the derived budget for everything that is not a client or a
/// target connection: standard streams, the runtime's epoll and wake-up descriptors,
/// signal handling, up to 50 listeners (ALB's limit per load balancer), the admin listener
/// and its connections, one health check in flight per target for about 150 targets, the
/// Docker event stream, the configuration watcher and the access log.
pub(crate) const FD_RESERVE: u64 = 256;

/// The derived budget is never below a quarter of the descriptor limit (a tiny limit
/// leaves no room after [`FD_RESERVE`]; a quarter still leaves three quarters for the rest).
const MIN_SHARE_DIVISOR: u64 = 4;

/// What a descriptor limit too large to be real (`RLIM_INFINITY`) is taken as: the
/// kernel's default ceiling for open files (`fs.nr_open`).
const LIMIT_CAP: u64 = 1 << 20;

/// What the limit is taken as when it cannot be read: Linux's default soft limit.
const LIMIT_UNKNOWN: u64 = 1024;

/// Idle connections closed in one go: at most this many, nginx's
/// `ngx_drain_connections` bound (the scan that finds them is paid once per batch).
const MAX_RECLAIM_BATCH: usize = 32;

/// A batch is one in this many idle connections (at least one), as nginx takes it.
const RECLAIM_SHARE: usize = 8;

/// A slot's state: busy (reading or serving a request), idle since a
/// [`crate::clock::coarse_ms`] instant (never 0), or asked to close.
const BUSY: u64 = 0;
const RECLAIM: u64 = u64::MAX;

/// The process's descriptor limit (the soft `RLIMIT_NOFILE`), capped.
pub(crate) fn descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => soft.min(LIMIT_CAP),
        Err(_) => LIMIT_UNKNOWN,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime and HAProxy do at
/// start: the soft limit (often 1024) is a compatibility default for `select(2)` users,
/// which hostalb is not. Returns the soft limit before and after.
pub fn raise_descriptor_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok((soft, soft.max(hard)))
}

/// The budget derived from a descriptor limit: half of what the reserve leaves, so that
/// every client connection with a request in flight can also hold a target connection
/// (idle pooled target connections were each opened for such a request), and never below a
/// quarter of the limit.
pub(crate) fn derive(limit: u64) -> usize {
    let limit = limit.min(LIMIT_CAP);
    let half_after_reserve = limit.saturating_sub(FD_RESERVE) / 2;
    half_after_reserve.max(limit / MIN_SHARE_DIVISOR).max(1) as usize
}

/// Warns when a configured budget leaves target connections fewer descriptors than its
/// clients may need (the derived budget never does).
fn warn_beyond_descriptors(configured: Option<u32>) {
    let Some(n) = configured else { return };
    let fds = descriptor_limit();
    if u64::from(n) > fds.saturating_sub(FD_RESERVE) / 2 {
        tracing::warn!(
            max_client_connections = n,
            descriptor_limit = fds,
            "max_client_connections leaves target connections too few descriptors; \
             expect accept errors and 502s at that many clients"
        );
    }
}

/// Client connections held, against the limit.
#[derive(Debug)]
pub(crate) struct Budget {
    /// The limit in force: the configured `max_client_connections`, else `derived`.
    /// Relaxed: a reload's new value applies to the next accepts, whichever they are.
    limit: AtomicUsize,
    /// Derived once, from the descriptor limit at start.
    derived: usize,
    /// Connections held, never above `limit` (taken by compare-and-swap). SeqCst together
    /// with `waiting`: a connection that closes while an accept loop starts to wait either
    /// is seen by the loop's check or sees the loop waiting and wakes it.
    held: AtomicUsize,
    /// Idle connections asked to close and not closed yet: more are asked only when these
    /// are gone, so one full backlog does not close every idle connection at once.
    reclaiming: AtomicUsize,
    /// Accept loops waiting for room; while any waits, connections that close or go idle
    /// notify `freed`.
    waiting: AtomicUsize,
    /// Wakes the waiting accept loops (`notify_waiters`: each looks again).
    freed: Notify,
    /// Every held connection's slot, for the scan that finds the oldest idle ones. A lock
    /// taken once when a connection opens, once when it closes, and for that scan.
    slots: Mutex<Vec<Arc<Slot>>>,
}

/// One held connection's state, shared between its task and the scan.
#[derive(Debug)]
struct Slot {
    /// [`BUSY`], idle since (coarse ms), or [`RECLAIM`]. The connection moves it between
    /// busy and idle; only the scan moves idle to reclaim.
    state: AtomicU64,
    /// The connection task's waker ([`Held::attach_task`]), so a reclaim can wake it
    /// without a registration per wait. Without one, a reclaim is noticed at the
    /// connection's next wake-up (its idle timeout at the latest).
    waker: OnceLock<Waker>,
    /// Where the slot is in `Budget::slots` (changed only under that lock).
    index: AtomicUsize,
}

/// What [`Budget::reclaim_idle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// This many idle connections were asked to close.
    Closed(usize),
    /// Idle connections asked earlier are still closing: wait for them.
    Pending,
    /// None is idle: wait for one to close or go idle.
    NoneIdle,
}

impl Budget {
    /// A budget of `configured` connections, else one derived from the descriptor limit.
    pub(crate) fn new(configured: Option<u32>) -> Arc<Budget> {
        let budget = Self::with_derived(configured, derive(descriptor_limit()));
        tracing::info!(
            max_client_connections = budget.limit(),
            derived = configured.is_none(),
            descriptor_limit = descriptor_limit(),
            "client connection budget"
        );
        budget
    }

    pub(crate) fn with_derived(configured: Option<u32>, derived: usize) -> Arc<Budget> {
        warn_beyond_descriptors(configured);
        let budget = Budget {
            limit: AtomicUsize::new(configured.map_or(derived, |n| n as usize)),
            derived,
            held: AtomicUsize::new(0),
            reclaiming: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            slots: Mutex::new(Vec::new()),
        };
        Arc::new(budget)
    }

    /// Applies `max_client_connections` (a reload): new accepts follow the new limit;
    /// connections already held stay.
    pub(crate) fn configure(&self, configured: Option<u32>) {
        let limit = configured.map_or(self.derived, |n| n as usize);
        let previous = self.limit.swap(limit, Ordering::Relaxed);
        if previous != limit {
            tracing::info!(
                max_client_connections = limit,
                derived = configured.is_none(),
                "client connection budget"
            );
        }
        warn_beyond_descriptors(configured);
        self.freed.notify_waiters();
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Takes a place for an accepted connection, held until the returned guard drops;
    /// `None` at the limit.
    pub(crate) fn try_hold(self: &Arc<Self>) -> Option<Held> {
        let limit = self.limit();
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                (h < limit).then_some(h + 1)
            })
            .ok()?;
        let slot = Arc::new(Slot {
            state: AtomicU64::new(BUSY),
            waker: OnceLock::new(),
            index: AtomicUsize::new(0),
        });
        if let Ok(mut slots) = self.slots.lock() {
            slot.index.store(slots.len(), Ordering::Relaxed);
            slots.push(slot.clone());
        }
        Some(Held {
            budget: self.clone(),
            slot,
        })
    }

    /// Asks the oldest idle connections to close: a batch of one in eight idle ones, at
    /// least one and at most [`MAX_RECLAIM_BATCH`] (nginx's numbers), unless earlier ones
    /// are still closing. Each is woken and closes at once.
    pub(crate) fn reclaim_idle(&self) -> Reclaim {
        if self.reclaiming.load(Ordering::SeqCst) > 0 {
            return Reclaim::Pending;
        }
        let Ok(slots) = self.slots.lock() else {
            return Reclaim::NoneIdle;
        };
        // The oldest idle ones: a max-heap of the MAX_RECLAIM_BATCH smallest "idle since".
        let mut oldest: BinaryHeap<(u64, usize)> = BinaryHeap::with_capacity(MAX_RECLAIM_BATCH + 1);
        let mut idle = 0usize;
        for (i, slot) in slots.iter().enumerate() {
            let since = slot.state.load(Ordering::SeqCst);
            if since == BUSY || since == RECLAIM {
                continue;
            }
            idle += 1;
            oldest.push((since, i));
            if oldest.len() > MAX_RECLAIM_BATCH {
                oldest.pop();
            }
        }
        if idle == 0 {
            return Reclaim::NoneIdle;
        }
        let batch = (idle / RECLAIM_SHARE).clamp(1, MAX_RECLAIM_BATCH);
        let mut closed = 0;
        for (since, i) in oldest.into_sorted_vec().into_iter().take(batch) {
            let slot = &slots[i];
            // Counted before the swap: the connection may close (and uncount) at once.
            self.reclaiming.fetch_add(1, Ordering::SeqCst);
            match slot
                .state
                .compare_exchange(since, RECLAIM, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    closed += 1;
                    if let Some(w) = slot.waker.get() {
                        w.wake_by_ref();
                    }
                }
                // It went busy meanwhile: it keeps serving.
                Err(_) => {
                    self.reclaiming.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        if closed == 0 {
            // Every candidate went busy during the scan; the caller looks again.
            return Reclaim::Pending;
        }
        Reclaim::Closed(closed)
    }

    /// Registers an accept loop as waiting for room until the guard drops; create the
    /// `freed` notification (and enable it) before, and check for room after.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }

    /// Fires when a held connection closes or goes idle while an accept loop waits, or
    /// when the limit changes.
    pub(crate) fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// Wakes every held connection whose task is attached ([`Held::attach_task`]): its
    /// idle wait then looks again at what it waits for (a shutdown has begun).
    pub(crate) fn wake_all(&self) {
        if let Ok(slots) = self.slots.lock() {
            for slot in slots.iter() {
                if let Some(w) = slot.waker.get() {
                    w.wake_by_ref();
                }
            }
        }
    }

    fn wake_waiting(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }
}

/// An accept loop waiting for room (see [`Budget::waiting`]).
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a Budget);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One held client connection; dropping it gives the room back.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    slot: Arc<Slot>,
}

impl Held {
    /// Whether the budget asked this connection to close.
    #[inline]
    pub(crate) fn reclaimed(&self) -> bool {
        self.slot.state.load(Ordering::Relaxed) == RECLAIM
    }

    /// Lets a reclaim wake the task that serves this connection: awaited once by that
    /// task, before the connection first waits idle (a tokio task's waker does not
    /// change, so none is registered per wait).
    pub(crate) async fn attach_task(&self) {
        std::future::poll_fn(|cx| {
            self.slot.waker.get_or_init(|| cx.waker().clone());
            Poll::Ready(())
        })
        .await
    }

    /// Waits for bytes (or the end of the stream) on `stream` while marking the connection
    /// idle: the wait of a connection that holds neither buffers nor a request
    /// ([`crate::data::idle`]). Ready early when the budget asks the connection to close
    /// ([`Held::reclaimed`]). Readiness is confirmed by a peek of one byte: tokio takes a
    /// newly registered socket as readable (bytes may have come before its registration),
    /// and a connection that has sent nothing must not be woken to build its serving state.
    #[inline]
    pub(crate) fn idle_wait<'a>(
        &'a self,
        stream: &'a tokio::net::TcpStream,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        IdleWait {
            idle: self.idle(),
            stream,
            peek: true,
        }
    }

    /// Marks the connection idle until the returned guard drops.
    #[inline]
    fn idle(&self) -> Idle<'_> {
        self.idle_since(crate::clock::coarse_ms())
    }

    #[inline]
    fn idle_since(&self, since_ms: u64) -> Idle<'_> {
        // SeqCst with the load of `waiting` in `wake_waiting`: an accept loop that starts
        // to wait either sees this connection idle in its scan or is woken by it.
        self.slot
            .state
            .store(since_ms.clamp(1, RECLAIM - 1), Ordering::SeqCst);
        self.budget.wake_waiting();
        Idle(self)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.budget.slots.lock() {
            let i = self.slot.index.load(Ordering::Relaxed);
            if i < slots.len() && Arc::ptr_eq(&slots[i], &self.slot) {
                slots.swap_remove(i);
                if let Some(moved) = slots.get(i) {
                    moved.index.store(i, Ordering::Relaxed);
                }
            }
        }
        if self.slot.state.load(Ordering::SeqCst) == RECLAIM {
            self.budget.reclaiming.fetch_sub(1, Ordering::SeqCst);
        }
        self.budget.held.fetch_sub(1, Ordering::SeqCst);
        self.budget.wake_waiting();
    }
}

/// A connection waiting idle; dropping it marks the connection busy again (unless the
/// budget asked it to close meanwhile, which it then does).
struct Idle<'a>(&'a Held);

impl Drop for Idle<'_> {
    #[inline]
    fn drop(&mut self) {
        let state = &self.0.slot.state;
        let since = state.load(Ordering::Relaxed);
        if since != RECLAIM {
            // Only the scan changes an idle state, and only to RECLAIM: a failed swap
            // leaves the request to close the connection.
            let _ = state.compare_exchange(since, BUSY, Ordering::SeqCst, Ordering::Relaxed);
        }
    }
}

/// [`ClientRead::readable`] of a connection waiting idle: marked idle from its creation
/// (where `read_head` starts the wait) until dropped; ready early when the budget asks the
/// connection to close.
struct IdleWait<'a> {
    idle: Idle<'a>,
    stream: &'a tokio::net::TcpStream,
    /// Confirm readiness with a peek (see [`Held::idle_wait`]); not needed where a read
    /// that came up short has just cleared it.
    peek: bool,
}

impl Future for IdleWait<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.idle.0.reclaimed() {
            return Poll::Ready(Ok(()));
        }
        // The stream's reader waker slot, as the unbudgeted reader waits (`conn.rs`): this
        // task is the only reader.
        if this.peek {
            let mut one = [0u8; 1];
            let mut buf = ReadBuf::new(&mut one);
            return this.stream.poll_peek(cx, &mut buf).map_ok(|_| ());
        }
        this.stream.poll_read_ready(cx)
    }
}

/// A client connection's reader, holding its place in the budget: its
/// [`ClientRead::readable`] (the idle wait) marks the connection idle, and a connection
/// asked to close reads as aborted.
#[derive(Debug)]
pub(crate) struct Budgeted<R> {
    inner: R,
    held: Held,
}

impl<R> Budgeted<R> {
    pub(crate) fn new(inner: R, held: Held) -> Self {
        Budgeted { inner, held }
    }

    /// The place in the budget, for the connection's idle state to keep.
    pub(crate) fn into_held(self) -> Held {
        self.held
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Budgeted<R> {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// A plain TCP client connection: the one kind that is idle to the budget, and has an idle
/// state without its serving state. (A TLS connection holds its place outside its reader:
/// it is never idle to the budget.)
impl ClientRead for Budgeted<tokio::net::tcp::ReadHalf<'_>> {
    const WAITS_WITHOUT_BUFFER: bool = true;
    const HAS_IDLE_STATE: bool = true;

    #[inline]
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        // A read that came up short has just cleared the readiness (`session::read_head`).
        IdleWait {
            idle: self.held.idle(),
            stream: self.inner.as_ref(),
            peek: false,
        }
    }

    #[inline]
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if self.held.reclaimed() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        // The trait's read (it forgets a drained socket's readiness), not tokio's inherent one.
        ClientRead::try_read_buf(&mut self.inner, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn budget(limit: u32) -> Arc<Budget> {
        Budget::with_derived(Some(limit), 1000)
    }

    /// `held` idle since `since`, woken by `waker` when reclaimed.
    fn idle_with<'a>(held: &'a Held, since: u64, waker: &Waker) -> Idle<'a> {
        held.slot.waker.get_or_init(|| waker.clone());
        held.idle_since(since)
    }

    #[test]
    fn derived_budget_is_half_of_what_the_reserve_leaves_and_at_least_a_quarter() {
        assert_eq!(derive(1024), (1024 - 256) / 2);
        assert_eq!(derive(1 << 20), ((1 << 20) - 256) / 2);
        assert_eq!(derive(524_288), (524_288 - 256) / 2);
        // A limit the reserve would swallow still gets a quarter.
        assert_eq!(derive(64), 16);
        assert_eq!(derive(300), 75);
        assert_eq!(derive(0), 1);
        // RLIM_INFINITY is taken as the kernel's ceiling.
        assert_eq!(derive(u64::MAX), derive(LIMIT_CAP));
        // Whatever the limit, clients and targets together stay within it.
        for limit in [16u64, 256, 1000, 4096, 65_536] {
            assert!(2 * derive(limit) as u64 <= limit, "{limit}");
        }
    }

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back_on_drop() {
        let b = budget(2);
        let first = b.try_hold().expect("room for the first");
        let second = b.try_hold().expect("room for the second");
        assert!(b.try_hold().is_none(), "the limit is 2");
        assert_eq!(b.held(), 2);
        drop(first);
        assert_eq!(b.held(), 1);
        let third = b.try_hold().expect("room after a close");
        drop((second, third));
        assert_eq!(b.held(), 0);
        assert_eq!(b.slots.lock().map(|s| s.len()).unwrap_or(99), 0);
    }

    #[test]
    fn a_new_limit_applies_to_new_places_and_none_configured_means_derived() {
        let b = budget(1);
        let held = b.try_hold();
        assert!(b.try_hold().is_none());
        b.configure(Some(3));
        let more: Vec<_> = (0..2).filter_map(|_| b.try_hold()).collect();
        assert_eq!(more.len(), 2);
        // Lowering keeps what is held and refuses new places.
        b.configure(Some(1));
        assert_eq!(b.held(), 3);
        assert!(b.try_hold().is_none());
        b.configure(None);
        assert_eq!(b.limit(), 1000);
        drop((held, more));
    }

    #[test]
    fn the_oldest_idle_connection_is_asked_to_close_and_woken() {
        let b = budget(3);
        let (old_wakes, old_waker) = counting_waker();
        let (new_wakes, new_waker) = counting_waker();
        let old = b.try_hold().expect("room");
        let new = b.try_hold().expect("room");
        let busy = b.try_hold().expect("room");
        let _old_idle = idle_with(&old, 100, &old_waker);
        let _new_idle = idle_with(&new, 200, &new_waker);
        assert_eq!(b.reclaim_idle(), Reclaim::Closed(1));
        assert!(old.reclaimed());
        assert!(!new.reclaimed() && !busy.reclaimed());
        assert_eq!(old_wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(new_wakes.0.load(Ordering::SeqCst), 0);
        // Until it has closed, no more are asked.
        assert_eq!(b.reclaim_idle(), Reclaim::Pending);
        drop(_old_idle);
        assert!(old.reclaimed(), "going busy does not undo a reclaim");
        drop(old);
        assert_eq!(b.reclaiming.load(Ordering::SeqCst), 0);
        assert_eq!(b.reclaim_idle(), Reclaim::Closed(1));
        assert!(new.reclaimed());
    }

    #[test]
    fn busy_connections_are_never_asked_to_close() {
        let b = budget(2);
        let (_, waker) = counting_waker();
        let a = b.try_hold().expect("room");
        let c = b.try_hold().expect("room");
        // Idle, then busy again (a request arrived).
        drop(idle_with(&a, 10, &waker));
        assert_eq!(b.reclaim_idle(), Reclaim::NoneIdle);
        assert!(!a.reclaimed() && !c.reclaimed());
    }

    #[test]
    fn a_batch_is_one_in_eight_idle_between_one_and_thirty_two() {
        for (idle, batch) in [(1usize, 1usize), (7, 1), (16, 2), (100, 12), (400, 32)] {
            let b = budget(idle as u32);
            let (_, waker) = counting_waker();
            let held: Vec<Held> = (0..idle).filter_map(|_| b.try_hold()).collect();
            let guards: Vec<Idle<'_>> = held
                .iter()
                .enumerate()
                .map(|(i, h)| idle_with(h, 1000 + i as u64, &waker))
                .collect();
            assert_eq!(b.reclaim_idle(), Reclaim::Closed(batch), "{idle} idle");
            // The oldest ones, in order.
            let asked: Vec<usize> = (0..idle).filter(|&i| held[i].reclaimed()).collect();
            assert_eq!(asked, (0..batch).collect::<Vec<_>>(), "{idle} idle");
            drop(guards);
        }
    }

    #[tokio::test]
    async fn a_waiting_accept_loop_is_woken_when_a_connection_goes_idle_or_closes() {
        let b = budget(1);
        let held = b.try_hold().expect("room");
        let (_, waker) = counting_waker();
        let freed = b.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let waiting = b.waiting();
        let idle = idle_with(&held, 1, &waker);
        tokio::time::timeout(Duration::from_secs(5), freed.as_mut())
            .await
            .expect("woken by the idle connection");
        drop(idle);
        let freed = b.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), freed)
            .await
            .expect("woken by the close");
        drop(waiting);
    }

    /// A reader waiting idle on a real socket: a reclaim ends the wait, and the connection
    /// then reads as aborted; bytes that arrive end it as usual.
    #[tokio::test]
    async fn an_idle_reader_is_woken_by_a_reclaim_and_then_reads_as_aborted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let (rd, _wr) = server.split();
        let b = budget(1);
        let held = b.try_hold().expect("room");
        held.attach_task().await;
        let mut reader = Budgeted::new(rd, held);

        // Bytes arrive: the wait ends, the bytes are read, the connection is busy.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET")
            .await
            .expect("write");
        tokio::time::timeout(Duration::from_secs(5), reader.readable())
            .await
            .expect("readable")
            .expect("no error");
        let mut buf = BytesMut::with_capacity(64);
        assert_eq!(reader.try_read_buf(&mut buf).expect("read"), 3);
        assert_eq!(b.reclaim_idle(), Reclaim::NoneIdle);

        // Nothing arrives: the reader waits idle until reclaimed.
        let waits = async {
            reader.readable().await.expect("no error");
            reader.try_read_buf(&mut buf).map_err(|e| e.kind())
        };
        let reclaims = async {
            loop {
                if b.reclaim_idle() == Reclaim::Closed(1) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (read, ()) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(waits, reclaims) })
                .await
                .expect("woken by the reclaim");
        assert_eq!(read, Err(io::ErrorKind::ConnectionAborted));
        drop(reader);
        assert_eq!(b.held(), 0);
    }
}
