//! Scenario (f): many idle keep-alive client connections. Each connection sends one
//! request, reads the answer and then stays open and silent.

use std::net::{SocketAddr, TcpStream};
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
    let mut handles = Vec::new();
    for t in 0..OPENERS {
        let count = per.min(n.saturating_sub(t * per));
        let failed = Arc::clone(&failed);
        let path = path.to_owned();
        handles.push(std::thread::spawn(move || {
            let mut held = Vec::with_capacity(count);
            let mut first_error = None;
            for _ in 0..count {
                if procs::stopping() || start.elapsed() > OPEN_LIMIT {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let attempt = http::connect(addr, Duration::from_secs(10)).and_then(|mut s| {
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
