//! Bounds on what a client may send that the `h2` crate does not bound itself, read from
//! the frame headers as the bytes arrive (no frame is decoded twice: only the 9-byte
//! headers are looked at).
//!
//! - PING and SETTINGS (not acknowledgements): each costs an answer; more than
//!   [`MAX_CONTROL_FRAMES_PER_SECOND`] is a flood (nginx and Envoy bound them the same way).
//! - RST_STREAM from the client: each may cancel a request already sent to a target (the
//!   cost of "rapid reset", CVE-2023-44487, to a proxy); more than
//!   [`MAX_RESETS_PER_SECOND`] is a flood. Cancelling a few dozen requests stays fine.
//! - Frames with nothing in them (DATA without data or END_STREAM, HEADERS or
//!   CONTINUATION without a header block fragment): cost work and carry nothing; more
//!   than [`MAX_CONSECUTIVE_EMPTY_FRAMES`] in a row is a flood (Envoy's rule).
//!
//! - WINDOW_UPDATE is not counted: each costs the `h2` crate O(1) and no answer, an
//!   increment past 2^31-1 is already a FLOW_CONTROL_ERROR there, and a client that
//!   withholds updates (a zero-window reader) loses its stream at the idle timeout.
//!
//! A flood trips the watch; the connection answers with GOAWAY `ENHANCE_YOUR_CALM`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::data::coalesce::Coalesce;

/// PING and SETTINGS frames a client may send per second.
pub(crate) const MAX_CONTROL_FRAMES_PER_SECOND: u32 = 100;
/// RST_STREAM frames a client may send per second.
pub(crate) const MAX_RESETS_PER_SECOND: u32 = 200;
/// Empty frames a client may send in a row (Envoy allows 1; a little slack for clients
/// that flush an empty DATA frame now and then).
pub(crate) const MAX_CONSECUTIVE_EMPTY_FRAMES: u32 = 10;
/// The client connection preface (`PRI * HTTP/2.0...`) comes before the first frame.
const PREFACE_LEN: usize = 24;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;

/// What the connection task waits on: tripped once, when a flood is seen.
#[derive(Debug, Default)]
pub(crate) struct FloodWatch {
    tripped: AtomicBool,
    /// Wakes the connection task; a permit is kept when it is not waiting yet.
    notify: Notify,
    reason: std::sync::OnceLock<&'static str>,
}

impl FloodWatch {
    pub(crate) async fn tripped(&self) -> &'static str {
        while !self.tripped.load(Relaxed) {
            self.notify.notified().await;
        }
        self.reason.get().copied().unwrap_or("Flood")
    }

    fn trip(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.tripped.store(true, Relaxed);
        self.notify.notify_one();
    }
}

/// Counts frames as their headers go by.
#[derive(Debug)]
pub(crate) struct Scanner {
    preface_left: usize,
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
    window_start: Instant,
    control: u32,
    resets: u32,
    empty_run: u32,
    done: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            preface_left: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            skip: 0,
            window_start: Instant::now(),
            control: 0,
            resets: 0,
            empty_run: 0,
            done: false,
        }
    }
}

impl Scanner {
    /// Looks at the bytes just read; returns a flood's reason once.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Option<&'static str> {
        while !bytes.is_empty() && !self.done {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                let h = self.header;
                let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                self.skip = len;
                if let Some(reason) = self.frame(h[3], h[4], len) {
                    self.done = true;
                    return Some(reason);
                }
            }
        }
        None
    }

    fn frame(&mut self, kind: u8, flags: u8, len: usize) -> Option<&'static str> {
        let now = Instant::now();
        if now.saturating_duration_since(self.window_start).as_secs() >= 1 {
            self.window_start = now;
            self.control = 0;
            self.resets = 0;
        }
        let empty = len == 0
            && match kind {
                DATA => flags & FLAG_END_STREAM == 0,
                HEADERS | CONTINUATION => flags & (FLAG_END_HEADERS | FLAG_END_STREAM) == 0,
                _ => false,
            };
        if empty {
            self.empty_run += 1;
            if self.empty_run > MAX_CONSECUTIVE_EMPTY_FRAMES {
                return Some("EmptyFrameFlood");
            }
        } else if matches!(kind, DATA | HEADERS | CONTINUATION) {
            self.empty_run = 0;
        }
        match kind {
            PING | SETTINGS if flags & FLAG_ACK == 0 => {
                self.control += 1;
                (self.control > MAX_CONTROL_FRAMES_PER_SECOND).then_some("ControlFrameFlood")
            }
            RST_STREAM => {
                self.resets += 1;
                (self.resets > MAX_RESETS_PER_SECOND).then_some("RapidReset")
            }
            _ => None,
        }
    }
}

/// A connection whose HTTP/2 side is done is shut for writing (its GOAWAY is out), then
/// read and dropped this long at most before it closes: closing with unread bytes (a
/// flood still arriving) would reset it, and the reset can destroy the GOAWAY before the
/// client reads it.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// ... and this many bytes at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// The client's stream, watched. When the `h2` crate drops it (the connection is done),
/// the stream lingers in a task of its own before it closes ([`LINGER_TIME`]).
///
/// Writes are coalesced ([`Coalesce`]): the responses of every stream task already
/// runnable go out together, in one TLS record and one `writev`.
#[derive(Debug)]
pub(crate) struct Watched<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// `Some` until dropped.
    inner: Option<Coalesce<T>>,
    scanner: Scanner,
    watch: Arc<FloodWatch>,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Watched<T> {
    pub(crate) fn new(inner: T, watch: Arc<FloodWatch>) -> Watched<T> {
        Watched {
            inner: Some(Coalesce::new(inner)),
            scanner: Scanner::default(),
            watch,
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Watched<T> {
    fn drop(&mut self) {
        let Some(io) = self.inner.take() else { return };
        let mut io = io.into_inner();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tokio::time::timeout(LINGER_TIME, io.shutdown()).await;
            let deadline = tokio::time::Instant::now() + LINGER_TIME;
            let mut sink = vec![0u8; 16 * 1024];
            let mut read = 0;
            while read < LINGER_BYTES {
                match tokio::time::timeout_at(deadline, io.read(&mut sink)).await {
                    Ok(Ok(n)) if n > 0 => read += n,
                    _ => break,
                }
            }
        });
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let before = buf.filled().len();
        let polled = Pin::new(io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Some(reason) = this.scanner.scan(&buf.filled()[before..]) {
                this.watch.trip(reason);
            }
        }
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    fn preface() -> Vec<u8> {
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn the_first_write_after_a_flush_yields_once_then_writes_go_through() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = Watched::new(a, Arc::new(FloodWatch::default()));
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = || count.0.load(std::sync::atomic::Ordering::Relaxed);
        // The first write: pending, and the task is woken to come back.
        assert!(Pin::new(&mut w).poll_write(&mut cx, b"one").is_pending());
        assert_eq!(wakes(), 1);
        // Then it and the next go through until the flush.
        assert!(matches!(
            Pin::new(&mut w).poll_write(&mut cx, b"one"),
            Poll::Ready(Ok(3))
        ));
        let two = [std::io::IoSlice::new(b"tw"), std::io::IoSlice::new(b"o")];
        assert!(matches!(
            Pin::new(&mut w).poll_write_vectored(&mut cx, &two),
            Poll::Ready(Ok(n)) if n > 0
        ));
        assert!(matches!(
            Pin::new(&mut w).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        // A new batch yields again.
        assert!(Pin::new(&mut w).poll_write_vectored(&mut cx, &two).is_pending());
        assert_eq!(wakes(), 2);
        drop(w);
        let mut got = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread().build();
        let Ok(rt) = rt else { panic!("a runtime") };
        let read = rt.block_on(b.read_to_end(&mut got));
        assert!(read.is_ok());
        assert!(got.starts_with(b"one"), "{got:?}");
    }

    #[test]
    fn pings_past_the_budget_trip_even_split_across_reads() {
        let mut s = Scanner::default();
        let mut bytes = preface();
        for _ in 0..MAX_CONTROL_FRAMES_PER_SECOND {
            bytes.extend(frame(PING, 0, &[0; 8]));
        }
        for piece in bytes.chunks(7) {
            assert_eq!(s.scan(piece), None);
        }
        assert_eq!(s.scan(&frame(PING, 0, &[0; 8])), Some("ControlFrameFlood"));
    }

    #[test]
    fn acks_data_and_a_few_resets_are_fine() {
        let mut s = Scanner::default();
        let mut bytes = preface();
        for _ in 0..1000 {
            bytes.extend(frame(PING, FLAG_ACK, &[0; 8]));
            bytes.extend(frame(DATA, 0, &[1; 100]));
        }
        for _ in 0..60 {
            bytes.extend(frame(RST_STREAM, 0, &[0, 0, 0, 8]));
        }
        bytes.extend(frame(DATA, FLAG_END_STREAM, &[]));
        assert_eq!(s.scan(&bytes), None);
    }

    #[test]
    fn resets_and_empty_frames_past_their_bounds_trip() {
        let mut s = Scanner::default();
        let mut bytes = preface();
        for _ in 0..=MAX_RESETS_PER_SECOND {
            bytes.extend(frame(RST_STREAM, 0, &[0, 0, 0, 8]));
        }
        assert_eq!(s.scan(&bytes), Some("RapidReset"));
        let mut s = Scanner::default();
        let mut bytes = preface();
        bytes.extend(frame(HEADERS, 0, &[0x82]));
        for _ in 0..=MAX_CONSECUTIVE_EMPTY_FRAMES {
            bytes.extend(frame(CONTINUATION, 0, &[]));
        }
        assert_eq!(s.scan(&bytes), Some("EmptyFrameFlood"));
    }
}
