//! One HTTP/2 client connection: the `h2` crate's server with ALB's limits, one task per
//! stream ([`super::stream`]), and the connection's end: GOAWAY when it has been idle for
//! the listener's idle timeout, after [`MAX_STREAMS_PER_CONNECTION`] streams, when it
//! outlives `client_keep_alive`, on drain and shutdown, and (`ENHANCE_YOUR_CALM`) on a
//! flood ([`super::flood`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use ::h2::Reason;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};

use super::flood::{FloodWatch, Watched};
use crate::data::headers::ConnTexts;
use crate::data::tls::TlsInfo;
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerId;

/// ALB: at most 128 concurrent streams per connection; more are refused
/// (`REFUSED_STREAM`, which a client may retry).
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 128;
/// ALB: a connection is sent GOAWAY after 10,000 requests (nginx bounds rapid-reset
/// damage the same way, at 1,000).
pub(crate) const MAX_STREAMS_PER_CONNECTION: u64 = 10_000;
/// ALB: request headers may be 64 K in all.
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Streams the client resets before hostalb accepts them, at most (the `h2` crate's
/// default, against "stream stacking"; GOAWAY `ENHANCE_YOUR_CALM` beyond).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams hostalb resets because the client broke a stream rule, at most
/// (RUSTSEC-2024-0003; the `h2` crate's default; GOAWAY beyond).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// Response bytes buffered per stream for a client that does not read: bounds memory at
/// 128 streams × this per connection.
const MAX_SEND_BUFFER_SIZE: usize = 64 * 1024;
/// The client's stream window: RFC 9113's default (Envoy's edge advice too).
const INITIAL_STREAM_WINDOW: u32 = 64 * 1024;
/// The client's connection window: room for several streams' uploads at once (Envoy's
/// edge advice: 1 MiB).
const INITIAL_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// A connection that sent GOAWAY for a flood gets this long to flush it, then closes.
const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// What the stream tasks of one connection share about it.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    /// The peer's IP with IPv4-mapped IPv6 unmapped (source-ip rules, X-Forwarded-For).
    pub(crate) peer_ip: IpAddr,
    pub(crate) local: SocketAddr,
    /// Header texts formatted once for this connection.
    pub(crate) texts: ConnTexts,
    pub(crate) tls_info: Option<Box<TlsInfo>>,
    /// The connection's id in the access log (`conn_trace_id`).
    pub(crate) trace: u128,
    pub(crate) listener: ListenerId,
    /// Streams being served, and when the last one ended ([`crate::clock::coarse_ms`]):
    /// the connection is idle when none has been open for the idle timeout.
    open_streams: AtomicUsize,
    last_active_ms: AtomicU64,
}

impl ConnInfo {
    pub(crate) fn new(
        peer: SocketAddr,
        local: SocketAddr,
        tls_info: Option<Box<TlsInfo>>,
        listener: ListenerId,
    ) -> ConnInfo {
        let peer_ip = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        ConnInfo {
            texts: ConnTexts::new(peer_ip, peer.port(), local.port(), true),
            peer,
            peer_ip,
            local,
            tls_info,
            trace: (u128::from(crate::rng::next_u64()) << 64) | u128::from(crate::rng::next_u64()),
            listener,
            open_streams: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(crate::clock::coarse_ms()),
        }
    }

    /// Marks a stream open until the guard drops.
    pub(crate) fn stream_opened(self: &Arc<Self>) -> StreamGuard {
        self.open_streams.fetch_add(1, Relaxed);
        StreamGuard(self.clone())
    }

    /// When the connection becomes idle, as things stand: `None` while streams are open.
    fn idle_since_ms(&self) -> Option<u64> {
        (self.open_streams.load(Relaxed) == 0).then(|| self.last_active_ms.load(Relaxed))
    }
}

/// An open stream, counted in its connection's activity.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<ConnInfo>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.last_active_ms.store(crate::clock::coarse_ms(), Relaxed);
        self.0.open_streams.fetch_sub(1, Relaxed);
    }
}

fn builder() -> ::h2::server::Builder {
    let mut b = ::h2::server::Builder::new();
    b.max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .max_send_buffer_size(MAX_SEND_BUFFER_SIZE)
        .initial_window_size(INITIAL_STREAM_WINDOW)
        .initial_connection_window_size(INITIAL_CONNECTION_WINDOW);
    b
}

/// Why the connection is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Serving,
    /// GOAWAY sent; open streams finish until the deadline.
    Graceful(Instant),
    /// GOAWAY for a flood; closed at the deadline.
    Abrupt(Instant),
}

/// Serves one HTTP/2 connection until it closes.
pub(crate) async fn serve<T>(shared: Arc<Shared>, info: ConnInfo, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _open = shared.connection_opened();
    let mut drain = shared.drain_signal();
    let Some(listener) = shared.snapshot.load().listener(info.listener).cloned() else {
        return;
    };
    let idle = listener.cfg.idle_timeout;
    let opened = Instant::now();
    let keep_alive_until = opened + listener.cfg.client_keep_alive;
    drop(listener);
    let watch = Arc::new(FloodWatch::default());
    let io = Watched::new(io, watch.clone());
    // The preface and SETTINGS exchange, within the idle timeout.
    let mut conn = match tokio::time::timeout(idle, builder().handshake::<_, bytes::Bytes>(io)).await {
        Ok(Ok(c)) => c,
        _ => return,
    };
    let info = Arc::new(info);
    let mut accepted: u64 = 0;
    let mut ending = Ending::Serving;
    loop {
        let idle_at = match info.idle_since_ms() {
            Some(since) => {
                let idle_for = crate::clock::coarse_ms().saturating_sub(since);
                Instant::now() + idle.saturating_sub(Duration::from_millis(idle_for))
            }
            // Streams are open: look again after a while.
            None => Instant::now() + idle,
        };
        let deadline = match ending {
            Ending::Serving => None,
            Ending::Graceful(d) | Ending::Abrupt(d) => Some(d),
        };
        let serving = ending == Ending::Serving;
        tokio::select! {
            biased;
            reason = watch.tripped(), if !matches!(ending, Ending::Abrupt(_)) => {
                tracing::debug!(client = %info.peer, reason, "HTTP/2 flood: GOAWAY ENHANCE_YOUR_CALM");
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                ending = Ending::Abrupt(Instant::now() + FLOOD_GRACE);
            }
            next = conn.accept() => match next {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(client = %info.peer, error = %e, "HTTP/2 connection error");
                    break;
                }
                Some(Ok((req, mut respond))) => {
                    accepted += 1;
                    if accepted > MAX_STREAMS_PER_CONNECTION || matches!(ending, Ending::Abrupt(_)) {
                        // Past ALB's 10,000 (the GOAWAY is on its way): safe to retry.
                        respond.send_reset(Reason::REFUSED_STREAM);
                        continue;
                    }
                    let guard = info.stream_opened();
                    tokio::spawn(super::stream::serve(shared.clone(), info.clone(), req, respond, guard));
                    if accepted == MAX_STREAMS_PER_CONNECTION && serving {
                        conn.graceful_shutdown();
                        ending = Ending::Graceful(Instant::now() + idle);
                    }
                }
            },
            _ = sleep_until(idle_at), if serving => {
                if info.idle_since_ms().is_some_and(|since| {
                    crate::clock::coarse_ms().saturating_sub(since) >= idle.as_millis() as u64
                }) {
                    conn.graceful_shutdown();
                    ending = Ending::Graceful(Instant::now() + idle);
                }
            }
            _ = sleep_until(keep_alive_until), if serving => {
                conn.graceful_shutdown();
                ending = Ending::Graceful(Instant::now() + idle);
            }
            changed = drain.changed(), if serving => {
                if changed.is_err() || *drain.borrow() {
                    conn.graceful_shutdown();
                    ending = Ending::Graceful(Instant::now() + idle);
                }
            }
            _ = sleep_until(deadline.unwrap_or(opened)), if deadline.is_some() => break,
        }
    }
}
