//! Scenario (f): many idle keep-alive client connections. Each connection sends one
//! request, reads the answer and then stays open and silent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::http;
use crate::procs;

/// Threads opening connections at once.
const OPENERS: usize = 8;
/// Bound on opening all connections.
const OPEN_LIMIT: Duration = Duration::from_secs(120);
/// Connections from one loopback source address: the kernel's ephemeral ports (32768 to
/// 60999 by default, about 28,000) bound the connections from one address to one
/// destination, so beyond this many the connections come from 127.0.0.2, 127.0.0.3, ...
const PER_SOURCE: usize = 20_000;
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections held open; dropping it closes them.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) streams: Vec<TcpStream>,
    pub(crate) failed: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) seconds: f64,
}

/// Opens `n` connections to `addr`, each with one answered request on `path`.
pub(crate) fn open(addr: SocketAddr, path: &str, n: usize) -> Result<Held> {
    let start = Instant::now();
    let failed = Arc::new(AtomicU64::new(0));
    let per = n.div_ceil(OPENERS);
    let sources = Arc::new(sources(addr, n));
    let mut handles = Vec::new();
    for t in 0..OPENERS {
        let count = per.min(n.saturating_sub(t * per));
        let failed = Arc::clone(&failed);
        let path = path.to_owned();
        let sources = Arc::clone(&sources);
        handles.push(std::thread::spawn(move || {
            let mut held = Vec::with_capacity(count);
            let mut first_error = None;
            for j in 0..count {
                if procs::stopping() || start.elapsed() > OPEN_LIMIT {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let source = sources.get((t * per + j) / PER_SOURCE).copied();
                let attempt = connect_from(source, addr).and_then(|mut s| {
                    let r = http::exchange(&mut s, "GET", &path, &addr.to_string(), true)?;
                    if r.status != 200 {
                        bail!("answered {}", r.status);
                    }
                    Ok(s)
                });
                match attempt {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (held, first_error)
        }));
    }
    let mut streams = Vec::with_capacity(n);
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok((held, err)) => {
                streams.extend(held);
                if first_error.is_none() {
                    first_error = err;
                }
            }
            Err(_) => bail!("a connection-opening thread panicked"),
        }
    }
    procs::check_stop()?;
    Ok(Held {
        streams,
        failed: failed.load(Ordering::Relaxed),
        first_error,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// How many of the held connections the server still keeps open (a read would block
/// rather than see the end of the stream).
pub(crate) fn still_open(held: &Held) -> usize {
    let mut buf = [0u8; 1];
    held.streams
        .iter()
        .filter(|s| {
            if s.set_nonblocking(true).is_err() {
                return false;
            }
            let open = matches!(s.peek(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            let _ = s.set_nonblocking(false);
            open
        })
        .count()
}

/// The next loopback source address (127.0.0.x) not used yet by this run.
static NEXT_SOURCE: AtomicU64 = AtomicU64::new(2);

/// The loopback source addresses of one [`open`] of `n` connections to `addr`, one per
/// [`PER_SOURCE`] connections, fresh for each call (a port in TIME_WAIT from an earlier
/// round stays taken on its address for a minute); empty when one address is enough or
/// `addr` is not IPv4 loopback (the kernel's choice then).
fn sources(addr: SocketAddr, n: usize) -> Vec<IpAddr> {
    if n <= PER_SOURCE || !addr.ip().is_loopback() || !addr.is_ipv4() {
        return Vec::new();
    }
    let count = n.div_ceil(PER_SOURCE);
    let first = NEXT_SOURCE.fetch_add(count as u64, Ordering::Relaxed);
    (0..count as u64)
        .map(|i| {
            // 127.0.0.2 to 127.0.0.254, round and round.
            let host = 2 + (first + i - 2) % 253;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8))
        })
        .collect()
}

/// [`http::connect`], bound to `source` when given.
fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> Result<TcpStream> {
    use anyhow::Context as _;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let Some(ip) = source else {
        return http::connect(addr, CONNECT_TIMEOUT);
    };
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).context("socket")?;
    socket
        .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
        .with_context(|| format!("binding to {ip}"))?;
    socket
        .connect_timeout(&SockAddr::from(addr), CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr} from {ip}"))?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(CONNECT_TIMEOUT))
        .context("setting a read timeout")?;
    s.set_write_timeout(Some(CONNECT_TIMEOUT))
        .context("setting a write timeout")?;
    let _ = s.set_nodelay(true);
    Ok(s)
}
