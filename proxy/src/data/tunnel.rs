//! The connection after a `101 Switching Protocols` (a WebSocket): bytes copied both ways
//! between the client and the one target that answered, until the connection ends. ALB
//! pins an upgraded connection to its target: rules and stickiness no longer apply, and
//! health checks do not end it.
//!
//! How it ends:
//! - a side that closes its sending half (FIN, TLS close_notify) has that passed on: the
//!   other side's writing half is shut once what was read is written, and the other
//!   direction goes on (half-close); the tunnel ends when both directions have ended;
//! - a read or write error on either side (a reset, a target that died with bytes
//!   unread) ends both at once;
//! - nothing moved either way for the listener's idle timeout (ALB's idle timeout);
//! - the target's deregistration delay ran out ([`Target::cut_signal`]);
//! - hostalb drains: the tunnel carries on until it has been quiet for [`DRAIN_QUIET`]
//!   (a message in flight gets through) and at most half the idle timeout, so that it
//!   closes cleanly before the drain grace (the longest idle timeout) runs out.
//!
//! Fairness, as for bodies ([`crate::data::body`]): after [`TURN_BYTES`] moved or
//! [`TURN_OPS`] reads and writes that finished without waiting, the tunnel yields so one
//! busy connection cannot keep a worker from its others. Each direction reads into one
//! buffer of the connection's own set (no allocation per read).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::model::target::Target;

/// Bytes one direction reads at a time: a WebSocket frame of a few kilobytes in one read,
/// a large message in reads that keep the system calls few, and a buffer small enough to
/// stay in the connection's kept set.
const TUNNEL_READ: usize = 16 * 1024;
/// Bytes moved before the tunnel lets the worker's other connections run (as bodies do):
/// some tens of microseconds of copying on loopback.
const TURN_BYTES: usize = 64 * 1024;
/// Reads and writes before the tunnel lets the worker's other connections run (small
/// frames that are always there).
const TURN_OPS: usize = 16;
/// While hostalb drains, a tunnel with nothing moving for this long is closed: what was in
/// flight has been delivered.
const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// Shutting both sides down at the end (TLS close_notify, FIN) takes at most this long; a
/// peer that does not take it is dropped.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Why a tunnel ended, for the request's record (the debug log's `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Both sides closed their sending halves.
    Closed,
    /// A read or write on the client's side failed.
    ClientError,
    /// A read or write on the target's side failed.
    TargetError,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The target's deregistration delay ran out.
    Deregistered,
    /// hostalb is shutting down.
    Drained,
}

impl End {
    /// The record's `error` for an end that was not both sides closing.
    pub(crate) fn reason(self) -> Option<&'static str> {
        match self {
            End::Closed => None,
            End::ClientError => Some("TunnelClientError"),
            End::TargetError => Some("TunnelTargetError"),
            End::Idle => Some("TunnelIdleTimeout"),
            End::Deregistered => Some("Deregistered"),
            End::Drained => Some("TunnelDrained"),
        }
    }
}

/// Copies both ways until the tunnel ends. `up` holds client bytes not yet sent to the
/// target (what came after the upgrade request), `down` target bytes not yet sent to the
/// client; both are the connection's buffers and are given back empty.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<CR, CW, T>(
    client_rd: &mut CR,
    client_wr: &mut CW,
    target_io: &mut T,
    up: &mut BytesMut,
    down: &mut BytesMut,
    target: &Target,
    mut drain: watch::Receiver<bool>,
    idle: Duration,
) -> End
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut down_flow = Flow::new(std::mem::take(down));
    // The `101` head was written just before: a TLS writer may still hold its records.
    down_flow.unflushed = true;
    let mut st = State {
        up: Flow::new(std::mem::take(up)),
        down: down_flow,
        up_first: true,
        last: Instant::now(),
    };
    let idle_timer = sleep(idle);
    tokio::pin!(idle_timer);
    // Armed when the drain begins; far away until then.
    let drain_timer = sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(drain_timer);
    let mut drain_deadline: Option<Instant> = None;
    if *drain.borrow_and_update() {
        // Upgraded while hostalb drains: it gets the drain's treatment from the start.
        let now = Instant::now();
        drain_deadline = Some(now + idle / 2);
        drain_timer.as_mut().reset(now + DRAIN_QUIET.min(idle / 2));
    }
    let cut = target.cut_signal();
    tokio::pin!(cut);
    let end = loop {
        let step = std::future::poll_fn(|cx| st.poll(cx, client_rd, client_wr, target_io));
        // The signals and timers first: a tunnel whose bytes always move (every poll
        // ends its turn) still sees the cut and the drain.
        tokio::select! {
            biased;
            _ = &mut idle_timer => {
                let due = st.last + idle;
                if Instant::now() >= due {
                    break End::Idle;
                }
                idle_timer.as_mut().reset(due);
            }
            _ = &mut cut => break End::Deregistered,
            changed = drain.changed(), if drain_deadline.is_none() => {
                if changed.is_err() || *drain.borrow() {
                    let now = Instant::now();
                    drain_deadline = Some(now + idle / 2);
                    drain_timer.as_mut().reset(now + DRAIN_QUIET.min(idle / 2));
                }
            }
            _ = &mut drain_timer, if drain_deadline.is_some() => {
                let now = Instant::now();
                let hard = drain_deadline.unwrap_or(now);
                let quiet_since = st.last + DRAIN_QUIET;
                if now >= hard || now >= quiet_since {
                    break End::Drained;
                }
                drain_timer.as_mut().reset(quiet_since.min(hard));
            }
            s = step => match s {
                Step::TurnUsed => tokio::task::yield_now().await,
                Step::End(end) => break end,
            },
        }
    };
    if matches!(end, End::Idle | End::Deregistered | End::Drained) {
        // A clean close of both sides: TLS close_notify and FIN, within a bound.
        let _ = timeout(CLOSE_WITHIN, async {
            let _ = client_wr.shutdown().await;
            let _ = target_io.shutdown().await;
        })
        .await;
    } else if end == End::TargetError {
        // The target is gone: the client learns at once, however its half stood.
        let _ = timeout(CLOSE_WITHIN, client_wr.shutdown()).await;
    }
    *up = st.up.give_back();
    *down = st.down.give_back();
    end
}

/// What [`State::poll`] tells the loop.
enum Step {
    /// The turn is used up: yield, then go on.
    TurnUsed,
    End(End),
}

/// Both directions and what they share.
struct State {
    /// Client to target.
    up: Flow,
    /// Target to client.
    down: Flow,
    /// Which direction goes first in the next turn: they take turns at going first, so
    /// a busy direction cannot use every turn up before the other moves.
    up_first: bool,
    /// When bytes last moved either way (the idle timeout counts from here).
    last: Instant,
}

impl State {
    /// Moves what can move without waiting in both directions, within one turn. Pending
    /// when both wait (their wakers registered); ready when the turn is used up or the
    /// tunnel ended. A turn begins at each poll: the task either waited or yielded since
    /// the last one.
    fn poll<CR, CW, T>(
        &mut self,
        cx: &mut Context<'_>,
        client_rd: &mut CR,
        client_wr: &mut CW,
        target_io: &mut T,
    ) -> Poll<Step>
    where
        CR: AsyncRead + Unpin,
        CW: AsyncWrite + Unpin,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let mut turn = Turn::default();
        let polled = if self.up_first {
            self.up
                .poll(cx, client_rd, target_io, &mut turn)
                .map_err(|f| f.end(Dir::Up))
                .and_then(|up| {
                    let down = self.down.poll(cx, target_io, client_wr, &mut turn);
                    down.map_err(|f| f.end(Dir::Down)).map(|down| (up, down))
                })
        } else {
            self.down
                .poll(cx, target_io, client_wr, &mut turn)
                .map_err(|f| f.end(Dir::Down))
                .and_then(|down| {
                    let up = self.up.poll(cx, client_rd, target_io, &mut turn);
                    up.map_err(|f| f.end(Dir::Up)).map(|up| (up, down))
                })
        };
        if turn.ops > 0 {
            self.last = Instant::now();
        }
        let (up, down) = match polled {
            Err(end) => return Poll::Ready(Step::End(end)),
            Ok(both) => both,
        };
        if up.is_ready() && down.is_ready() {
            return Poll::Ready(Step::End(End::Closed));
        }
        if turn.used_up() {
            self.up_first = !self.up_first;
            return Poll::Ready(Step::TurnUsed);
        }
        Poll::Pending
    }
}

/// Which direction.
#[derive(Clone, Copy)]
enum Dir {
    /// Client to target.
    Up,
    /// Target to client.
    Down,
}

/// Which end of a direction failed.
#[derive(Debug, Clone, Copy)]
enum Failed {
    Reader,
    Writer,
}

impl Failed {
    fn end(self, dir: Dir) -> End {
        match (self, dir) {
            (Failed::Reader, Dir::Up) | (Failed::Writer, Dir::Down) => End::ClientError,
            (Failed::Reader, Dir::Down) | (Failed::Writer, Dir::Up) => End::TargetError,
        }
    }
}

/// One direction: read into `buf`, write it all out, again; at end of input, shut the
/// writer down.
struct Flow {
    buf: BytesMut,
    /// The reader reached end of input.
    eof: bool,
    /// Written bytes the writer may still hold (a TLS stream's records): flushed before
    /// this direction waits for more input.
    unflushed: bool,
    /// The writer is shut down: this direction is over.
    done: bool,
}

impl Flow {
    fn new(buf: BytesMut) -> Flow {
        Flow {
            buf,
            eof: false,
            unflushed: false,
            done: false,
        }
    }

    fn give_back(self) -> BytesMut {
        let mut buf = self.buf;
        buf.clear();
        buf
    }

    /// Moves bytes until it must wait (pending, wakers registered), the direction ends
    /// (ready) or fails (`Err`), or the turn is used up (pending, `turn.used_up()`).
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        rd: &mut R,
        wr: &mut W,
        turn: &mut Turn,
    ) -> Result<Poll<()>, Failed>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.done {
            return Ok(Poll::Ready(()));
        }
        loop {
            if turn.used_up() {
                return Ok(Poll::Pending);
            }
            // Write out what was read.
            while !self.buf.is_empty() {
                match Pin::new(&mut *wr).poll_write(cx, &self.buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(Failed::Writer),
                    Poll::Ready(Ok(n)) => {
                        self.buf.advance(n);
                        self.unflushed = true;
                        turn.moved(n);
                    }
                    Poll::Pending => return Ok(Poll::Pending),
                }
            }
            if self.eof {
                // Everything read is written: pass the half-close on.
                return match Pin::new(&mut *wr).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        self.done = true;
                        Ok(Poll::Ready(()))
                    }
                    Poll::Ready(Err(_)) => Err(Failed::Writer),
                    Poll::Pending => Ok(Poll::Pending),
                };
            }
            // Read more, into the buffer just emptied.
            self.buf.clear();
            self.buf.reserve(TUNNEL_READ);
            match tokio_util::io::poll_read_buf(Pin::new(&mut *rd), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(n)) => turn.moved(n),
                Poll::Ready(Err(_)) => return Err(Failed::Reader),
                Poll::Pending => {
                    // Nothing to read now: what was written must reach the peer before
                    // this direction waits.
                    if self.unflushed {
                        match Pin::new(&mut *wr).poll_flush(cx) {
                            Poll::Ready(Ok(())) => self.unflushed = false,
                            Poll::Ready(Err(_)) => return Err(Failed::Writer),
                            Poll::Pending => {}
                        }
                    }
                    return Ok(Poll::Pending);
                }
            }
        }
    }
}

/// The work done in one turn (since the task last waited or yielded).
#[derive(Debug, Default)]
struct Turn {
    bytes: usize,
    ops: usize,
}

impl Turn {
    fn moved(&mut self, n: usize) {
        self.bytes += n;
        self.ops += 1;
    }

    fn used_up(&self) -> bool {
        self.bytes >= TURN_BYTES || self.ops >= TURN_OPS
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, DuplexStream, ReadHalf, WriteHalf, duplex, split};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::model::target::TargetOrigin;

    const IDLE: Duration = Duration::from_secs(60);

    /// A tunnel between in-memory streams: the test holds the client's and the target's
    /// far ends.
    struct Rig {
        client: DuplexStream,
        target: DuplexStream,
        drain: watch::Sender<bool>,
        pinned: Arc<Target>,
        done: JoinHandle<(End, BytesMut, BytesMut)>,
    }

    fn rig(up: &[u8], down: &[u8]) -> Rig {
        rig_draining(up, down, false)
    }

    fn rig_draining(up: &[u8], down: &[u8], draining: bool) -> Rig {
        let (client, proxy_client) = duplex(64 * 1024);
        let (target, mut proxy_target) = duplex(64 * 1024);
        let (drain, drain_rx) = watch::channel(draining);
        let pinned = Target::new("127.0.0.1:9".parse().expect("addr"), TargetOrigin::default());
        let t = pinned.clone();
        let (mut up, mut down) = (BytesMut::from(up), BytesMut::from(down));
        let done = tokio::spawn(async move {
            let (mut rd, mut wr): (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>) = split(proxy_client);
            let end = run(
                &mut rd,
                &mut wr,
                &mut proxy_target,
                &mut up,
                &mut down,
                &t,
                drain_rx,
                IDLE,
            )
            .await;
            (end, up, down)
        });
        Rig {
            client,
            target,
            drain,
            pinned,
            done,
        }
    }

    async fn read_n(s: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        s.read_exact(&mut got).await.expect("read");
        got
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_go_both_ways_and_half_closes_are_passed_on() {
        let mut r = rig(b"early", b"leftover");
        // What came with the upgrade goes first.
        assert_eq!(read_n(&mut r.target, 5).await, b"early");
        assert_eq!(read_n(&mut r.client, 8).await, b"leftover");
        r.client.write_all(b"ping").await.expect("write");
        assert_eq!(read_n(&mut r.target, 4).await, b"ping");
        // A large message, larger than a turn and than the pipes.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let sent = big.clone();
        let mut target = r.target;
        let writer = tokio::spawn(async move {
            target.write_all(&sent).await.expect("write");
            // The target closes its sending half; it still reads.
            target.shutdown().await.expect("shutdown");
            target
        });
        let mut got = Vec::new();
        r.client.read_to_end(&mut got).await.expect("read to end");
        assert!(got == big, "{} bytes arrived of {}", got.len(), big.len());
        let mut target = writer.await.expect("writer");
        // The client's direction still works after the target's half-close.
        r.client.write_all(b"after").await.expect("write");
        assert_eq!(read_n(&mut target, 5).await, b"after");
        r.client.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        target.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
        let (end, up, down) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Closed);
        assert!(up.is_empty() && down.is_empty(), "buffers given back empty");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_moving_for_the_idle_timeout_ends_it() {
        let mut r = rig(b"", b"");
        tokio::time::sleep(IDLE / 2).await;
        r.client.write_all(b"x").await.expect("write");
        assert_eq!(read_n(&mut r.target, 1).await, b"x");
        // Activity moved the deadline: half the timeout later it still runs.
        tokio::time::sleep(IDLE * 3 / 4).await;
        assert!(!r.done.is_finished());
        tokio::time::sleep(IDLE / 2).await;
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Idle);
        // Both sides see the end.
        let mut rest = Vec::new();
        r.client.read_to_end(&mut rest).await.expect("client eof");
        r.target.read_to_end(&mut rest).await.expect("target eof");
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_fails_ends_the_client_side_at_once() {
        let r = rig(b"", b"");
        let (mut client, target) = (r.client, r.target);
        // The target's end goes away: writes to it fail.
        drop(target);
        client.write_all(b"to nobody").await.expect("write");
        let (end, _, _) = r.done.await.expect("tunnel");
        // Dropping a duplex end reads as end of input on the target side, then the write
        // fails: either way the tunnel is over and the client sees its end.
        assert!(matches!(end, End::TargetError | End::Closed), "{end:?}");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("client eof");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_closes_a_quiet_tunnel_and_a_busy_one_by_half_the_idle_timeout() {
        // Quiet: closed about DRAIN_QUIET after the drain begins.
        let r = rig(b"", b"");
        r.drain.send_replace(true);
        let began = Instant::now();
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Drained);
        assert!(began.elapsed() <= DRAIN_QUIET + Duration::from_millis(10));

        // Busy: a client that sends every 100 ms keeps it up to half the idle timeout.
        let mut r = rig(b"", b"");
        r.drain.send_replace(true);
        let began = Instant::now();
        let mut sent = 0usize;
        while !r.done.is_finished() && began.elapsed() < IDLE {
            if r.client.write_all(b"m").await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Drained);
        let took = began.elapsed();
        assert!(
            took >= IDLE / 2 && took <= IDLE / 2 + Duration::from_millis(200),
            "{took:?}"
        );
        assert!(sent > 100);
        drop(r.target);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_opened_while_draining_is_closed_by_the_drain() {
        let r = rig_draining(b"", b"", true);
        let began = Instant::now();
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Drained);
        assert!(began.elapsed() <= DRAIN_QUIET + Duration::from_millis(10));
        drop((r.client, r.target, r.drain));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deregistration_cut_ends_it() {
        let mut r = rig(b"", b"");
        r.client.write_all(b"x").await.expect("write");
        assert_eq!(read_n(&mut r.target, 1).await, b"x");
        r.pinned.cut();
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Deregistered);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cut_ends_a_tunnel_whose_bytes_never_stop() {
        let r = rig(b"", b"");
        let (mut client, mut target) = (r.client, r.target);
        let pump = tokio::spawn(async move {
            let chunk = [7u8; 4096];
            while target.write_all(&chunk).await.is_ok() {}
        });
        let mut got = vec![0u8; 1 << 20];
        client.read_exact(&mut got).await.expect("a megabyte through");
        r.pinned.cut();
        let drained = tokio::spawn(async move {
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let (end, _, _) = r.done.await.expect("tunnel");
        assert_eq!(end, End::Deregistered);
        drained.await.expect("client sees the end");
        pump.await.expect("target sees the end");
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_client_writer_holds_is_flushed_before_the_tunnel_waits() {
        let (mut client, proxy_client) = duplex(64 * 1024);
        let (mut target, mut proxy_target) = duplex(64 * 1024);
        let (_drain, drain_rx) = watch::channel(false);
        let pinned = Target::new("127.0.0.1:9".parse().expect("addr"), TargetOrigin::default());
        let done = tokio::spawn(async move {
            let (mut rd, wr) = split(proxy_client);
            // A writer that keeps what it is given until flushed, as a TLS stream may.
            let mut wr = tokio::io::BufWriter::new(wr);
            wr.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
                .await
                .expect("head");
            let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
            run(
                &mut rd,
                &mut wr,
                &mut proxy_target,
                &mut up,
                &mut down,
                &pinned,
                drain_rx,
                IDLE,
            )
            .await
        });
        // The head arrives though the target says nothing (not at the idle timeout's
        // close).
        let began = Instant::now();
        let head = read_n(&mut client, 36).await;
        assert!(head.starts_with(b"HTTP/1.1 101"));
        assert!(began.elapsed() < Duration::from_secs(1), "{:?}", began.elapsed());
        target.write_all(b"frame").await.expect("write");
        assert_eq!(read_n(&mut client, 5).await, b"frame");
        drop((client, target));
        assert!(matches!(
            done.await.expect("tunnel"),
            End::Closed | End::ClientError | End::TargetError
        ));
    }
}
