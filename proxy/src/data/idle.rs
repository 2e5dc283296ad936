//! A plain HTTP/1 client connection while it waits for a request: before its first one,
//! and between requests once it has waited [`session::HOT_WAIT`] with nothing pipelined.
//!
//! Its task then holds only [`IdleConn`] and the wait: the socket, its place in the
//! budget, its [`Identity`], the idle deadline, one timer entry and the drain signal. No
//! buffer (they are parked in [`crate::data::buffers`]) and no serving state: when bytes
//! arrive, the serving state (the client connection with its header texts, and the
//! future that reads, routes and forwards requests, a few kilobytes) is built in a box of
//! its own ([`serve_boxed`]), and freed when the connection goes idle again. Ten thousand
//! idle connections thus cost their sockets and ten thousand small tasks.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::data::budget::{Budgeted, Held};
use crate::data::conn::{ClientConn, Identity};
use crate::data::session::{self, Served};
use crate::model::shared::Shared;

/// A plain client connection's state while it is idle.
#[derive(Debug)]
pub(crate) struct IdleConn {
    pub(crate) stream: TcpStream,
    /// Its place in the budget: marked idle while it waits here, so a full budget may ask
    /// it to close.
    pub(crate) held: Held,
    pub(crate) id: Identity,
}

/// Serves a plain connection until it closes: waits idle, serves what arrives in the boxed
/// serving state, waits idle again. `deadline`: when the idle timeout closes the
/// connection. The connection's task is this future.
// A plain `fn` returning an `async` block, not an `async fn`: an `async fn` keeps its
// arguments and their moved copies side by side in the future (544 bytes against 384,
// measured in the test build).
#[allow(clippy::manual_async_fn)]
pub(crate) fn run(
    shared: Arc<Shared>,
    mut conn: IdleConn,
    deadline: Instant,
) -> impl Future<Output = ()> + Send {
    async move {
        // ActiveConnectionCount and the drain's wait for open connections: from accept to
        // close.
        let _open = shared.connection_opened();
        // A reclaim or a shutdown wakes the task through the budget (no registration per wait).
        conn.held.attach_task().await;
        // The connection's one timer entry, its idle timeout, reset for each idle wait (it
        // holds the deadline, which the serving state gets from it).
        let mut idle_timeout = pin!(sleep_until(deadline));
        loop {
            if !wait(&shared, &conn, idle_timeout.as_mut()).await {
                return;
            }
            // Boxed: the serving state exists only while the connection is busy.
            match Box::pin(serve_boxed(&shared, conn, idle_timeout.deadline())).await {
                Some((idle, deadline)) => {
                    conn = idle;
                    idle_timeout.as_mut().reset(deadline);
                }
                None => return,
            }
        }
    }
}

/// Waits for bytes (`true`), or for the idle timeout, a shutdown or the budget asking the
/// connection to close (`false`). One timer entry; the drain and a reclaim wake the task
/// through its budget slot ([`crate::data::budget::Budget::wake_all`]).
async fn wait(shared: &Shared, conn: &IdleConn, mut sleep: Pin<&mut Sleep>) -> bool {
    let mut readable = pin!(conn.held.idle_wait(&conn.stream));
    poll_fn(|cx| {
        if shared.is_draining() || conn.held.reclaimed() {
            return Poll::Ready(false);
        }
        // An error is the serving state's to see (it reads and closes).
        if readable.as_mut().poll(cx).is_ready() {
            return Poll::Ready(!conn.held.reclaimed());
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Pending
    })
    .await
}

/// The serving state of a connection whose request is arriving: requests are served until
/// the connection closes (`None`) or goes idle again (its idle state back, and its new
/// idle deadline).
async fn serve_boxed(shared: &Arc<Shared>, conn: IdleConn, deadline: Instant) -> Option<(IdleConn, Instant)> {
    let IdleConn { mut stream, held, id } = conn;
    let local = stream.local_addr().ok()?;
    let mut drain = shared.drain_signal();
    let (rd, wr) = stream.split();
    let mut c = ClientConn::new(Budgeted::new(rd, held), wr, id, local, false);
    c.unpark_buffers();
    match session::serve(shared, &mut c, &mut drain, Some(deadline)).await {
        Served::Closed => None,
        Served::Idle(deadline) => {
            let id = c.identity();
            let held = c.into_reader().into_held();
            Some((IdleConn { stream, held, id }, deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use crate::data::budget::Budget;

    /// A connection that sends nothing is never woken: its readiness wait stays pending.
    #[tokio::test]
    async fn a_silent_connection_is_not_woken() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let budget = Budget::with_derived(Some(4), 4);
        let held = budget.try_hold().expect("room");
        let waited = tokio::time::timeout(Duration::from_millis(300), held.idle_wait(&server)).await;
        assert!(waited.is_err(), "woken with nothing sent: {waited:?}");
        // Bytes wake it, and stay there to be read.
        let mut client = client;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET")
            .await
            .expect("write");
        tokio::time::timeout(Duration::from_secs(5), held.idle_wait(&server))
            .await
            .expect("woken by bytes")
            .expect("no error");
        let mut buf = [0u8; 8];
        assert_eq!(server.try_read(&mut buf).expect("read"), 3);
    }
}
