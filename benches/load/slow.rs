//! Scenario (h): clients that read large responses slowly, beside the normal wrk clients.
//!
//! Each slow reader is a thread with one keep-alive connection: it asks for the large
//! body, reads it a few KB at a time with a pause after each read (a client on a slow
//! link), and asks again, until told to stop. The proxy has to hold each of these
//! responses open for a long time and feed it as the client makes room.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::http;

/// Socket timeouts of a slow reader: far above its pace, so only a wedged proxy trips them.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How the slow readers behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub(crate) clients: usize,
    /// Bytes asked of each read.
    pub(crate) read_bytes: usize,
    /// Pause after each read.
    pub(crate) pause: Duration,
}

/// Counters shared by the readers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes: AtomicU64,
    pub(crate) responses: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// Running slow readers; [`Readers::stop`] ends them.
#[derive(Debug)]
pub(crate) struct Readers {
    stop: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
    handles: Vec<JoinHandle<Option<String>>>,
}

/// Starts `pace.clients` readers of `path` (a body of `body_len` bytes) on `addr`.
pub(crate) fn start(addr: SocketAddr, path: &str, body_len: usize, pace: Pace) -> Readers {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let handles = (0..pace.clients)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let counters = Arc::clone(&counters);
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut first_error = None;
                // Bounded by the stop flag; a failed connection is counted and replaced
                // after a short pause, so a broken proxy shows as errors, not a spin.
                while !stop.load(Ordering::Relaxed) && !crate::procs::stopping() {
                    if let Err(e) = read_on_one_connection(addr, &path, body_len, pace, &stop, &counters) {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                first_error
            })
        })
        .collect();
    Readers {
        stop,
        counters,
        handles,
    }
}

impl Readers {
    /// Bytes and responses so far.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (
            self.counters.bytes.load(Ordering::Relaxed),
            self.counters.responses.load(Ordering::Relaxed),
        )
    }

    /// Stops every reader (each ends within one pause or read) and returns the errors
    /// counted and the first one.
    pub(crate) fn stop(self) -> (u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = None;
        for h in self.handles {
            match h.join() {
                Ok(e) => {
                    if first.is_none() {
                        first = e;
                    }
                }
                Err(_) => {
                    first.get_or_insert_with(|| "a slow reader panicked".to_owned());
                }
            }
        }
        (self.counters.errors.load(Ordering::Relaxed), first)
    }
}

/// Requests the body again and again on one keep-alive connection, reading slowly, until
/// stopped (Ok) or the connection fails.
fn read_on_one_connection(
    addr: SocketAddr,
    path: &str,
    body_len: usize,
    pace: Pace,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<()> {
    let mut s = http::connect(addr, IO_TIMEOUT)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buf = vec![0u8; pace.read_bytes.max(1024)];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        s.write_all(request.as_bytes()).context("sending a request")?;
        // The head: read until its end, keeping what follows as the body's start.
        let mut head = Vec::with_capacity(1024);
        let (head_end, mut got) = loop {
            let n = s.read(&mut buf[..1024]).context("reading a response head")?;
            if n == 0 {
                bail!("connection closed before a response head");
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break (i + 4, head.len() - i - 4);
            }
            if head.len() > 64 * 1024 {
                bail!("response head too long");
            }
        };
        let text = String::from_utf8_lossy(&head[..head_end]);
        if !text.starts_with("HTTP/1.1 200") {
            bail!("answered `{}`", text.lines().next().unwrap_or_default());
        }
        counters.bytes.fetch_add(got as u64, Ordering::Relaxed);
        while got < body_len {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(pace.pause);
            let want = pace.read_bytes.min(body_len - got);
            let n = s.read(&mut buf[..want]).context("reading a response body")?;
            if n == 0 {
                bail!("connection closed after {got} of {body_len} body bytes");
            }
            got += n;
            counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        counters.responses.fetch_add(1, Ordering::Relaxed);
    }
}
