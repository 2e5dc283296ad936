//! Write coalescing for HTTP/2 connections, client side and target side alike.
//!
//! The `h2` crate flushes at the end of every poll of its connection, and each stream task
//! that sends wakes the connection (tokio runs a task woken that way next), so without
//! help every response (or request) would be a TLS record and a `writev` of its own.
//! [`Coalesce`] makes the first write after a flush yield once to the runtime: the
//! connection task goes to the back of the worker's queue, behind the stream tasks
//! already runnable, whose frames then join the same write.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An I/O stream whose writes go out in batches (see the module docs).
#[derive(Debug)]
pub(crate) struct Coalesce<T> {
    inner: T,
    /// The task has yielded once since the last flush: the next write goes through.
    yielded: bool,
}

impl<T> Coalesce<T> {
    pub(crate) fn new(inner: T) -> Coalesce<T> {
        Coalesce {
            inner,
            yielded: false,
        }
    }

    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    /// Pending once per flush: the task wakes itself and returns, so tokio queues it
    /// behind the tasks already runnable (a task woken while it runs is rescheduled as a
    /// yield).
    fn yield_once(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.yield_once(cx));
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.yield_once(cx));
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if flushed.is_ready() {
            // The next write starts a new batch.
            this.yielded = false;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
