//! Listening sockets and the accept loop: one task accepts, one task per connection
//! serves it (TLS first on HTTPS listeners).
//!
//! Each accepted connection takes its place in the descriptor budget
//! ([`crate::data::budget`]). At the limit, the connection just accepted waits in the loop
//! while idle client connections are closed to make room, or, when none is idle, until a
//! held one closes or goes idle; the connections behind it wait in the kernel's backlog.
//! Accept errors are logged at most once per second per listener, with the count of those
//! not logged; running out of descriptors or memory backs the loop off instead of
//! spinning.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::data::budget::{Held, Reclaim};
use crate::data::conn::{ClientConn, Identity};
use crate::data::idle::{self, IdleConn};
use crate::data::{h2, session};
use crate::model::metrics::inc;
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerId;

/// Pending connections the kernel queues before hostalb accepts them.
const BACKLOG: i32 = 4096;
/// ALB's TLS handshake limit towards targets, used here for clients too: a client that
/// cannot finish a handshake in 10 s is not going to.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause after an accept failed for want of descriptors or memory; doubled on each
/// failure in a row up to [`ACCEPT_BACKOFF_MAX`] (Go's `net/http` numbers). A client
/// connection that closes meanwhile ends the pause early.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// One log line per this interval and listener for accept errors and for a full budget;
/// the next line says how many were not logged.
const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// While the budget is full, how often the loop looks again without being woken: a safety
/// net (connections that close or go idle wake it).
const BUDGET_RECHECK: Duration = Duration::from_millis(250);

/// Binds a listening socket (`SO_REUSEADDR`; dual-stack when bound to `[::]`).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts until `stop` fires; then the socket closes (new connections are refused) while
/// accepted connections carry on.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    id: ListenerId,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let bound = listener.local_addr().ok();
    let mut errors = Throttle::default();
    let mut full = Throttle::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                // At the limit, this connection waits here, unread, like those behind it in
                // the backlog, until there is room: one descriptor per listener beyond the
                // budget, and no accept-and-close loop.
                let held = match shared.budget.try_hold() {
                    Some(held) => held,
                    None => match wait_for_room(&shared, &mut stop, &mut full, bound).await {
                        Some(held) => held,
                        None => return,
                    },
                };
                let _ = stream.set_nodelay(true);
                spawn_connection(&shared, id, stream, peer, held);
            }
            Err(e) => {
                inc(&shared.metrics.rejected_connections);
                let exhausted = out_of_resources(&e);
                if let Some(suppressed) = errors.allow(Instant::now()) {
                    if exhausted {
                        tracing::warn!(listener = ?bound, error = %e, suppressed, "accept failed");
                    } else {
                        tracing::debug!(listener = ?bound, error = %e, suppressed, "accept failed");
                    }
                }
                if exhausted {
                    // The connection stays in the backlog. Wait for a client connection to
                    // close, or a while, before trying again.
                    let budget = &shared.budget;
                    let freed = budget.freed();
                    tokio::pin!(freed);
                    freed.as_mut().enable();
                    let _waiting = budget.waiting();
                    tokio::select! {
                        biased;
                        _ = stop.changed() => return,
                        _ = freed => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }
}

/// With a connection accepted and the budget full: asks idle connections to close, or,
/// when none is idle, waits until a held one closes or goes idle (or the limit changes).
/// `None` when `stop` fired (the waiting connection is closed with the listener).
async fn wait_for_room(
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    full: &mut Throttle,
    bound: Option<SocketAddr>,
) -> Option<Held> {
    let budget = &shared.budget;
    let mut counted = false;
    loop {
        // Enabled before the check, so a close between the check and the wait still wakes.
        let freed = budget.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let _waiting = budget.waiting();
        if let Some(held) = budget.try_hold() {
            return Some(held);
        }
        match budget.reclaim_idle() {
            Reclaim::Closed(n) => {
                shared
                    .metrics
                    .budget_closed_connections
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = full.allow(Instant::now()) {
                    tracing::info!(
                        listener = ?bound,
                        max_client_connections = budget.limit(),
                        closed = n,
                        suppressed,
                        "client connection budget reached: closing idle connections"
                    );
                }
            }
            Reclaim::Pending => {}
            Reclaim::NoneIdle => {
                if !counted {
                    counted = true;
                    inc(&shared.metrics.budget_waits);
                }
                if let Some(suppressed) = full.allow(Instant::now()) {
                    tracing::warn!(
                        listener = ?bound,
                        max_client_connections = budget.limit(),
                        suppressed,
                        "client connection budget reached and no connection idle: \
                         new connections wait in the backlog"
                    );
                }
            }
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return None,
            _ = freed => {}
            _ = tokio::time::sleep(BUDGET_RECHECK) => {}
        }
    }
}

/// Errors that say the process or the system ran out of descriptors or buffer memory: the
/// pending connection stays in the backlog, and trying again at once would fail again.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// At most one log line per [`LOG_INTERVAL`].
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Whether to log at `now`: `Some(lines not logged since the last one)`, or `None`
    /// (counted as not logged).
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Spawns the task that serves an accepted connection. A plain connection's task is its
/// small idle state ([`idle::run`]); a TLS connection's is boxed whole.
fn spawn_connection(shared: &Arc<Shared>, id: ListenerId, stream: TcpStream, peer: SocketAddr, held: Held) {
    let (tls, idle_timeout) = match shared.snapshot.load().listener(id) {
        Some(l) => (l.tls.clone(), l.cfg.idle_timeout),
        None => return,
    };
    match tls {
        None => {
            let conn = IdleConn {
                stream,
                held,
                id: Identity::new(peer, id),
            };
            let deadline = tokio::time::Instant::now() + idle_timeout;
            tokio::spawn(idle::run(shared.clone(), conn, deadline));
        }
        Some(acceptor) => {
            tokio::spawn(Box::pin(tls_connection(
                shared.clone(),
                id,
                stream,
                peer,
                held,
                acceptor,
            )));
        }
    }
}

async fn tls_connection(
    shared: Arc<Shared>,
    id: ListenerId,
    stream: TcpStream,
    peer: SocketAddr,
    held: Held,
    acceptor: crate::data::tls::Acceptor,
) {
    let Ok(local) = stream.local_addr() else { return };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.0.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            let info = acceptor.info(tls_stream.get_ref().1);
            let mtls = acceptor.mtls(tls_stream.get_ref().1);
            if tls_stream.get_ref().1.alpn_protocol() == Some(crate::data::tls::ALPN_H2) {
                let mut conn = h2::server::ConnInfo::new(peer, local, Some(Box::new(info)), id);
                conn.texts.mtls = mtls;
                // Boxed: an HTTP/1 connection's future need not make room for HTTP/2's
                // (about 6 KB more per idle TLS connection).
                Box::pin(h2::server::serve(shared, conn, tls_stream)).await;
                drop(held);
                return;
            }
            let (rd, wr) = tokio::io::split(tls_stream);
            let rd = crate::data::conn::TlsReader::new(rd);
            let mut conn = ClientConn::new(rd, wr, Identity::new(peer, id), local, true);
            conn.tls_info = Some(Box::new(info));
            conn.texts.mtls = mtls;
            let _open = shared.connection_opened();
            let mut drain = shared.drain_signal();
            session::serve(&shared, &mut conn, &mut drain, None).await;
            // Held until here: a TLS connection is never idle to the budget.
            drop(held);
        }
        _ => inc(&shared.metrics.client_tls_negotiation_errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function of three arguments returns.
    fn future_size<A, B, C, F: Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A plain connection's task holds this future for its whole life, idle or not (tokio
    /// adds about 100 bytes of its own, in 128-byte steps): it must stay the small idle
    /// state of `data::idle`, the serving state boxed.
    #[test]
    fn a_plain_connection_task_is_its_small_idle_state() {
        let size = future_size(idle::run);
        assert!(size <= MAX_CONNECTION_FUTURE, "{size} bytes");
    }

    /// The bound of the test above: the idle state (socket, budget place, identity) is
    /// 128 bytes, the idle timeout's timer entry 112, the wait and the rest about 160; up
    /// to 416, tokio's task stays one 512-byte cell.
    const MAX_CONNECTION_FUTURE: usize = 416;

    #[test]
    fn throttle_logs_once_per_interval_and_counts_the_rest() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=99u64 {
            assert_eq!(t.allow(t0 + Duration::from_millis(i * 10 - 5)), None);
        }
        assert_eq!(t.allow(t0 + LOG_INTERVAL), Some(99));
        assert_eq!(t.allow(t0 + LOG_INTERVAL + Duration::from_millis(1)), None);
        assert_eq!(t.allow(t0 + LOG_INTERVAL * 3), Some(1));
    }

    #[test]
    fn descriptor_and_memory_shortages_back_off_other_errors_do_not() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(out_of_resources(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ECONNABORTED, libc::EPROTO, libc::EPERM] {
            assert!(!out_of_resources(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }
}
