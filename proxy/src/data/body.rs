//! Moving bodies across the proxy without buffering them whole: request bodies from the
//! client to the target, response bodies from the target to the client. Both are
//! re-framed (chunked bodies decoded strictly and encoded again), and every read and
//! write is bounded by the listener's idle timeout.
//!
//! A chunked body is forwarded chunk for chunk: each chunk's size line goes out as soon
//! as it is decoded, its data follows as it arrives, from the buffer it was read into
//! (no copy for large pieces, one vectored write per read). Only the framing is new:
//! extensions are dropped and sizes are written in hostalb's own form.
//!
//! Fairness: one worker thread serves many connections, so a transfer never keeps it for
//! long. After [`TURN_BYTES`] moved or [`TURN_OPS`] reads and writes that finished without
//! waiting, whichever comes first, the transfer yields and the worker's other connections
//! run. tokio's own budget (128 socket operations per poll) would let one large body move
//! megabytes in a single poll while every other client of the worker waits.

use std::future::Future;
use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::http1::BodyKind;
use crate::http1::chunked::{ChunkedDecoder, Decoded, encode_chunk_head, encode_end};

/// Read buffers grow by this much at a time (bodies that are discarded).
const READ_CHUNK: usize = 16 * 1024;
/// A body is read this much at a time: few system calls for large bodies, and the
/// buffer stays small enough to be one of the connection's kept set.
const BODY_READ: usize = 64 * 1024;
/// A re-framed body (chunked) whose sender keeps [`BODY_READ`] reads full is then read
/// this much at a time: an upload's cost is mostly the system calls and wakeups of both
/// sockets, so fewer and larger reads and writes make it faster (`scripts/bench i`: time
/// to HAProxy's 0.76 against 1.0 with [`BODY_READ`] alone). Small bodies never grow the
/// buffer this far; one that did is freed, not kept, after its exchange.
const LARGE_READ: usize = 256 * 1024;
/// Body pieces shorter than this are copied next to their framing (one buffer); longer
/// ones are written from the buffer they were read into.
const COPY_BELOW: usize = 4 * 1024;
/// Bytes a transfer moves before it lets the worker's other connections run: one read or
/// write of [`BODY_READ`] (of [`LARGE_READ`] for a large chunked body), some tens of
/// microseconds on loopback.
const TURN_BYTES: usize = 64 * 1024;
/// Reads and writes a transfer makes before it lets the worker's other connections run
/// (a sender that trickles many small pieces that are always there).
const TURN_OPS: usize = 16;
/// Slices given to one vectored write.
const MAX_SLICES: usize = 64;

/// Which side broke a body transfer.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The sending side's data was malformed (a chunk error).
    Malformed(&'static str),
    /// The sending side closed before the body ended.
    SenderClosed,
    /// The sending side was silent for the idle timeout.
    SenderIdle,
    SenderIo,
    /// The receiving side could not take the data.
    ReceiverIo,
    ReceiverIdle,
}

/// Reads more from `rd` into `buf` within `idle`; `SenderClosed` at end of stream.
pub(crate) async fn fill<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    idle: Duration,
) -> Result<usize, BodyError> {
    fill_by(rd, buf, READ_CHUNK, idle).await
}

async fn fill_by<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    chunk: usize,
    idle: Duration,
) -> Result<usize, BodyError> {
    buf.reserve(chunk);
    match timeout(idle, rd.read_buf(buf)).await {
        Err(_) => Err(BodyError::SenderIdle),
        Ok(Err(_)) => Err(BodyError::SenderIo),
        Ok(Ok(0)) => Err(BodyError::SenderClosed),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Writes all of `out` to `wr` within `idle` per write, then clears it.
pub(crate) async fn flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
    idle: Duration,
) -> Result<(), BodyError> {
    if out.is_empty() {
        return Ok(());
    }
    sent(timeout(idle, wr.write_all(out)).await)?;
    out.clear();
    Ok(())
}

/// A write to the receiver, bounded by the idle timeout, as a body error.
fn sent(write: Result<std::io::Result<()>, tokio::time::error::Elapsed>) -> Result<(), BodyError> {
    match write {
        Err(_) => Err(BodyError::ReceiverIdle),
        Ok(Err(_)) => Err(BodyError::ReceiverIo),
        Ok(Ok(())) => Ok(()),
    }
}

/// Awaits `fut`; also tells whether it had to wait (was not ready at its first poll, so
/// the task went back to the scheduler meanwhile).
async fn waited<F: Future>(fut: F) -> (F::Output, bool) {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0u32;
    std::future::poll_fn(|cx| {
        polls = polls.saturating_add(1);
        fut.as_mut().poll(cx).map(|out| (out, polls > 1))
    })
    .await
}

/// The work a transfer did since it last let other tasks run.
#[derive(Debug, Default)]
struct Turn {
    bytes: usize,
    ops: usize,
}

impl Turn {
    /// Counts one read or write of `n` bytes (`waited`: the task was suspended for it, so
    /// a new turn began), and yields once the turn is used up. The yield puts the task
    /// behind the worker's other ready tasks; the transfer goes on when they have run.
    async fn moved(&mut self, n: usize, waited: bool) {
        if waited {
            *self = Turn::default();
        }
        self.bytes += n;
        self.ops += 1;
        if self.bytes >= TURN_BYTES || self.ops >= TURN_OPS {
            *self = Turn::default();
            tokio::task::yield_now().await;
        }
    }
}

/// Output waiting to be written, in order: `parts` (body pieces where they were read, and
/// the framing before them) from `first` on, then `tail`.
struct Pending<'a> {
    parts: &'a mut Vec<Bytes>,
    first: usize,
    tail: &'a mut BytesMut,
}

impl Buf for Pending<'_> {
    fn remaining(&self) -> usize {
        self.parts[self.first..].iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    fn chunk(&self) -> &[u8] {
        match self.parts[self.first..].iter().find(|p| !p.is_empty()) {
            Some(p) => p,
            None => &self.tail[..],
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(part) = self.parts.get_mut(self.first) else {
                self.tail.advance(cnt.min(self.tail.len()));
                return;
            };
            let k = cnt.min(part.len());
            part.advance(k);
            cnt -= k;
            if part.is_empty() {
                self.first += 1;
            }
        }
    }

    fn chunks_vectored<'b>(&'b self, dst: &mut [IoSlice<'b>]) -> usize {
        let mut n = 0;
        let parts = self.parts[self.first..].iter().map(|p| &p[..]);
        for piece in parts.chain(std::iter::once(&self.tail[..])) {
            if n == dst.len() {
                break;
            }
            if !piece.is_empty() {
                dst[n] = IoSlice::new(piece);
                n += 1;
            }
        }
        n
    }
}

/// Queues `data` to be written from where it is: `out`'s bytes so far go before it.
fn queue(out: &mut BytesMut, parts: &mut Vec<Bytes>, data: Bytes) {
    if !out.is_empty() {
        parts.push(out.split().freeze());
    }
    parts.push(data);
}

/// Writes `parts` then `tail` to `wr` (vectored), within `idle` per write; both are empty
/// afterwards. Returns the bytes written and whether the writing had to wait.
async fn write_out<W: AsyncWrite + Unpin>(
    wr: &mut W,
    parts: &mut Vec<Bytes>,
    tail: &mut BytesMut,
    idle: Duration,
) -> Result<(usize, bool), BodyError> {
    let mut pending = Pending {
        parts,
        first: 0,
        tail,
    };
    let n = pending.remaining();
    let mut any_wait = false;
    while pending.has_remaining() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = pending.chunks_vectored(&mut slices);
        let (written, wait) = waited(timeout(idle, wr.write_vectored(&slices[..count]))).await;
        any_wait |= wait;
        match written {
            Err(_) => return Err(BodyError::ReceiverIdle),
            Ok(Err(_)) | Ok(Ok(0)) => return Err(BodyError::ReceiverIo),
            Ok(Ok(k)) => pending.advance(k),
        }
    }
    parts.clear();
    tail.clear();
    Ok((n, any_wait))
}

/// Transfer state of one body, framed as it arrives (`from`) and as it leaves (`to`).
#[derive(Debug)]
pub(crate) struct BodyTransfer {
    from: BodyKind,
    to: BodyKind,
    /// Bytes left of a `Length` body.
    remaining: u64,
    decoder: ChunkedDecoder,
    /// Data bytes still to come of the chunk being sent on (its size is written already).
    chunk_open: u64,
    done: bool,
    /// Some output was written to the receiver.
    flushed: bool,
}

impl BodyTransfer {
    /// `to` must be `Length` (same length) only when `from` is; otherwise `Chunked` or
    /// `UntilClose` (raw bytes, the receiver's connection closes at the end).
    pub(crate) fn new(from: BodyKind, to: BodyKind) -> BodyTransfer {
        BodyTransfer {
            from,
            to,
            remaining: match from {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            decoder: ChunkedDecoder::default(),
            chunk_open: 0,
            done: from.is_empty(),
            flushed: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any output reached the receiver.
    pub(crate) fn flushed(&self) -> bool {
        self.flushed
    }

    /// Moves what `input` already holds into `out`, re-framed. Returns whether the body is
    /// complete. Never reads or writes a socket.
    pub(crate) fn step_buffered(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, BodyError> {
        self.step(input, out, None)
    }

    /// [`BodyTransfer::step_buffered`]; with `parts`, long body pieces are not copied into
    /// `out` but queued in `parts` (after `out`'s bytes so far, moved into `parts` too).
    fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        mut parts: Option<&mut Vec<Bytes>>,
    ) -> Result<bool, BodyError> {
        while !self.done && !input.is_empty() {
            match self.from {
                BodyKind::Empty => self.done = true,
                BodyKind::Length(_) => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    self.put_from(out, parts.as_deref_mut(), input, n)?;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.put_end(out, &[]);
                        self.done = true;
                    }
                }
                BodyKind::Chunked => match self
                    .decoder
                    .decode(input)
                    .map_err(|e| BodyError::Malformed(e.0))?
                {
                    Decoded::Data(data) => {
                        let (len, rest) = (data.len(), self.decoder.chunk_left());
                        self.open_chunk(out, len, rest)?;
                        match parts.as_deref_mut() {
                            Some(parts) if len >= COPY_BELOW => queue(out, parts, data),
                            _ => out.put_slice(&data),
                        }
                        self.close_chunk(out, len);
                    }
                    Decoded::End { trailers } => {
                        self.put_end(out, &trailers);
                        self.done = true;
                    }
                    Decoded::NeedMore => break,
                },
                BodyKind::UntilClose => {
                    let n = input.len();
                    self.put_from(out, parts.as_deref_mut(), input, n)?;
                }
            }
        }
        Ok(self.done)
    }

    /// Sends the first `n` bytes of `input` on (taking them from it), framed for the
    /// receiver: as one chunk of their own when it gets chunked framing.
    fn put_from(
        &mut self,
        out: &mut BytesMut,
        parts: Option<&mut Vec<Bytes>>,
        input: &mut BytesMut,
        n: usize,
    ) -> Result<(), BodyError> {
        self.open_chunk(out, n, 0)?;
        match parts {
            Some(parts) if n >= COPY_BELOW => queue(out, parts, input.split_to(n).freeze()),
            _ => {
                out.put_slice(&input[..n]);
                input.advance(n);
            }
        }
        self.close_chunk(out, n);
        Ok(())
    }

    /// Before `len` data bytes for a chunked receiver: the size line of a new chunk when
    /// none is open, sized for them and the `rest` of their chunk still to come.
    fn open_chunk(&mut self, out: &mut BytesMut, len: usize, rest: u64) -> Result<(), BodyError> {
        if self.to != BodyKind::Chunked || self.chunk_open > 0 || len == 0 {
            return Ok(());
        }
        let size = (len as u64)
            .checked_add(rest)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or(BodyError::Malformed("ChunkSizeTooLarge"))?;
        encode_chunk_head(out, size);
        self.chunk_open = size as u64;
        Ok(())
    }

    /// After `len` data bytes for a chunked receiver: the CRLF that ends their chunk once
    /// all of it went out.
    fn close_chunk(&mut self, out: &mut BytesMut, len: usize) {
        if self.to != BodyKind::Chunked || len == 0 {
            return;
        }
        self.chunk_open = self.chunk_open.saturating_sub(len as u64);
        if self.chunk_open == 0 {
            out.put_slice(b"\r\n");
        }
    }

    fn put_end(&self, out: &mut BytesMut, trailers: &[u8]) {
        if self.to == BodyKind::Chunked {
            encode_end(out, trailers);
        }
    }

    /// Transfers the rest of the body from `rd` (with `input` holding bytes already read)
    /// to `wr`, through `out` (which may already hold a head to send first).
    pub(crate) async fn run<R, W>(
        &mut self,
        rd: &mut R,
        input: &mut BytesMut,
        wr: &mut W,
        out: &mut BytesMut,
        idle: Duration,
    ) -> Result<(), BodyError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if !self.done
            && self.from == self.to
            && matches!(self.from, BodyKind::Length(_) | BodyKind::UntilClose)
        {
            return self.pass_through(rd, input, wr, out, idle).await;
        }
        let mut turn = Turn::default();
        let mut parts: Vec<Bytes> = Vec::new();
        let mut read = BODY_READ;
        loop {
            self.step(input, out, Some(&mut parts))?;
            if self.done {
                self.flushed = true;
                return write_out(wr, &mut parts, out, idle).await.map(|_| ());
            }
            // Everything decoded goes out before waiting for more: one write per read.
            if !parts.is_empty() || !out.is_empty() {
                self.flushed = true;
                let (n, wait) = write_out(wr, &mut parts, out, idle).await?;
                turn.moved(n, wait).await;
            }
            match waited(fill_by(rd, input, read, idle)).await {
                (Ok(n), wait) => {
                    if n >= BODY_READ {
                        read = LARGE_READ;
                    }
                    turn.moved(n, wait).await;
                }
                (Err(BodyError::SenderClosed), _) if self.from == BodyKind::UntilClose => {
                    // The end of a close-delimited body is its connection's end.
                    self.put_end(out, &[]);
                    self.done = true;
                    self.flushed = true;
                    return write_out(wr, &mut parts, out, idle).await.map(|_| ());
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    /// [`BodyTransfer::run`] for a body whose framing does not change (a length, or the
    /// connection's end): its bytes go from the read buffer to the receiver without a copy,
    /// written together with what `out` holds (the head) in one vectored write.
    async fn pass_through<R, W>(
        &mut self,
        rd: &mut R,
        input: &mut BytesMut,
        wr: &mut W,
        out: &mut BytesMut,
        idle: Duration,
    ) -> Result<(), BodyError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut turn = Turn::default();
        loop {
            let n = match self.from {
                BodyKind::Length(_) => usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len()),
                _ => input.len(),
            };
            if n > 0 || !out.is_empty() {
                let moved = out.len() + n;
                let mut pending = Buf::chain(&out[..], &input[..n]);
                let (write, wait) = waited(timeout(idle, wr.write_all_buf(&mut pending))).await;
                sent(write)?;
                self.flushed = true;
                out.clear();
                input.advance(n);
                if let BodyKind::Length(_) = self.from {
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.done = true;
                        return Ok(());
                    }
                }
                turn.moved(moved, wait).await;
            }
            match waited(fill_by(rd, input, BODY_READ, idle)).await {
                (Ok(n), wait) => turn.moved(n, wait).await,
                (Err(BodyError::SenderClosed), _) if self.from == BodyKind::UntilClose => {
                    self.done = true;
                    return Ok(());
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    /// Reads and drops the rest of the body (an answer was given without forwarding it),
    /// reading at most `limit` more bytes. Returns whether the body ended.
    pub(crate) async fn discard<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        input: &mut BytesMut,
        limit: usize,
        idle: Duration,
    ) -> Result<bool, BodyError> {
        let mut sink = BytesMut::new();
        let mut read = 0usize;
        let mut turn = Turn::default();
        loop {
            self.step_buffered(input, &mut sink)?;
            sink.clear();
            if self.done {
                return Ok(true);
            }
            if read >= limit {
                return Ok(false);
            }
            let (n, wait) = waited(fill(rd, input, idle)).await;
            let n = n?;
            read += n;
            turn.moved(n, wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn length_body_moves_exactly_its_length() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"ello!EXTRA").await.unwrap();
        let mut input = BytesMut::from(&b"h"[..]);
        let mut out = BytesMut::new();
        let mut sink: Vec<u8> = Vec::new();
        let mut t = BodyTransfer::new(BodyKind::Length(5), BodyKind::Length(5));
        t.run(
            &mut server,
            &mut input,
            &mut sink,
            &mut out,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(sink, b"hello");
        assert!(t.is_done());
        // What follows the body stays for the next request.
        let mut rest = BytesMut::new();
        let _ = fill(&mut server, &mut rest, Duration::from_millis(50)).await;
        assert_eq!(&[&input[..], &rest[..]].concat(), b"!EXTRA");
    }

    #[tokio::test]
    async fn a_large_length_body_follows_its_head_and_arrives_whole() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut client, mut server) = tokio::io::duplex(8 * 1024);
        let sent = body[1000..].to_vec();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(7_000) {
                client.write_all(piece).await.unwrap();
            }
            client.write_all(b"NEXT").await.unwrap();
            client
        });
        let mut input = BytesMut::from(&body[..1000]);
        let mut out = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n"[..]);
        let mut sink: Vec<u8> = Vec::new();
        let mut t = BodyTransfer::new(BodyKind::Length(200_000), BodyKind::Length(200_000));
        t.run(
            &mut server,
            &mut input,
            &mut sink,
            &mut out,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let _client = writer.await.unwrap();
        assert!(t.is_done() && t.flushed());
        assert_eq!(&sink[..19], b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(sink[19..] == body[..], "body differs");
        assert!(out.is_empty());
        // Bytes after the body stay unread or in the input for the next exchange.
        let mut rest = input.to_vec();
        let mut more = BytesMut::new();
        while rest.len() < 4 {
            fill(&mut server, &mut more, Duration::from_secs(1))
                .await
                .unwrap();
            rest.extend_from_slice(&more.split());
        }
        assert_eq!(rest, b"NEXT");
    }

    #[tokio::test]
    async fn chunked_is_reencoded_and_stops_at_the_end() {
        let mut input = BytesMut::from(&b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /next"[..]);
        let mut out = BytesMut::new();
        let mut sink: Vec<u8> = Vec::new();
        let mut t = BodyTransfer::new(BodyKind::Chunked, BodyKind::Chunked);
        let mut empty = tokio::io::empty();
        t.run(
            &mut empty,
            &mut input,
            &mut sink,
            &mut out,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(sink, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(&input[..], b"GET /next");
    }

    #[tokio::test]
    async fn until_close_to_chunked_ends_with_last_chunk() {
        let mut input = BytesMut::from(&b"xyz"[..]);
        let mut out = BytesMut::new();
        let mut sink: Vec<u8> = Vec::new();
        let mut t = BodyTransfer::new(BodyKind::UntilClose, BodyKind::Chunked);
        let mut empty = tokio::io::empty();
        t.run(
            &mut empty,
            &mut input,
            &mut sink,
            &mut out,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(sink, b"3\r\nxyz\r\n0\r\n\r\n");
    }

    #[tokio::test]
    async fn early_end_and_bad_chunks_are_errors() {
        let mut t = BodyTransfer::new(BodyKind::Length(10), BodyKind::Length(10));
        let mut input = BytesMut::from(&b"abc"[..]);
        let (mut out, mut sink): (BytesMut, Vec<u8>) = (BytesMut::new(), Vec::new());
        let mut empty = tokio::io::empty();
        let err = t
            .run(
                &mut empty,
                &mut input,
                &mut sink,
                &mut out,
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::SenderClosed), "{err:?}");
        let mut t = BodyTransfer::new(BodyKind::Chunked, BodyKind::Chunked);
        let mut input = BytesMut::from(&b"zz\r\n"[..]);
        let err = t
            .run(
                &mut empty,
                &mut input,
                &mut sink,
                &mut out,
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Malformed(_)), "{err:?}");
    }

    #[tokio::test]
    async fn silent_sender_hits_the_idle_timeout() {
        let (_client, mut server) = tokio::io::duplex(64);
        let mut t = BodyTransfer::new(BodyKind::Length(10), BodyKind::Length(10));
        let (mut input, mut out, mut sink) = (BytesMut::new(), BytesMut::new(), Vec::<u8>::new());
        let err = t
            .run(
                &mut server,
                &mut input,
                &mut sink,
                &mut out,
                Duration::from_millis(30),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::SenderIdle), "{err:?}");
    }

    /// A chunked body of `sizes` chunks (byte `i` of the body is `i % 251`), each size line
    /// with an extension, and the body's bytes.
    fn chunked(sizes: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let (mut framed, mut body) = (Vec::new(), Vec::new());
        for &size in sizes {
            framed.extend_from_slice(format!("{size:x};ext=1\r\n").as_bytes());
            for _ in 0..size {
                let b = (body.len() % 251) as u8;
                body.push(b);
                framed.push(b);
            }
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        (framed, body)
    }

    /// The chunk sizes of a chunked body and its data (panics on framing errors).
    fn chunk_sizes(mut framed: &[u8]) -> (Vec<usize>, Vec<u8>) {
        let (mut sizes, mut body) = (Vec::new(), Vec::new());
        for _ in 0..100_000 {
            let nl = framed.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&framed[..nl]).unwrap(), 16).unwrap();
            framed = &framed[nl + 2..];
            if size == 0 {
                assert_eq!(framed, b"\r\n");
                return (sizes, body);
            }
            sizes.push(size);
            body.extend_from_slice(&framed[..size]);
            assert_eq!(&framed[size..size + 2], b"\r\n");
            framed = &framed[size + 2..];
        }
        panic!("too many chunks");
    }

    #[tokio::test]
    async fn large_chunks_leave_as_the_same_chunks_not_read_sized_pieces() {
        let sizes = [300_000, 5, 100_000, 70_000];
        let (framed, body) = chunked(&sizes);
        // The sender writes in odd pieces, so chunks arrive over many reads.
        let (mut client, mut server) = tokio::io::duplex(16 * 1024);
        let writer = tokio::spawn(async move {
            for piece in framed.chunks(7_000) {
                client.write_all(piece).await.unwrap();
            }
            client.write_all(b"NEXT").await.unwrap();
            client
        });
        let (mut input, mut out, mut sink) = (BytesMut::new(), BytesMut::new(), Vec::<u8>::new());
        let mut t = BodyTransfer::new(BodyKind::Chunked, BodyKind::Chunked);
        t.run(
            &mut server,
            &mut input,
            &mut sink,
            &mut out,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let _client = writer.await.unwrap();
        assert!(t.is_done());
        let (got_sizes, got_body) = chunk_sizes(&sink);
        assert_eq!(got_sizes, sizes, "chunks were cut or merged");
        assert!(got_body == body, "body differs");
        // Extensions are dropped: the size lines are hostalb's own.
        assert!(sink.starts_with(b"493e0\r\n"));
    }

    #[tokio::test]
    async fn a_chunk_begun_with_the_head_goes_on_as_one_chunk() {
        let mut input = BytesMut::from(&b"a\r\n01234"[..]);
        let mut out = BytesMut::from(&b"HEAD "[..]);
        let mut t = BodyTransfer::new(BodyKind::Chunked, BodyKind::Chunked);
        assert!(!t.step_buffered(&mut input, &mut out).unwrap());
        assert_eq!(&out[..], b"HEAD a\r\n01234");
        let mut rest: &[u8] = b"56789\r\n0\r\nX-Sum: 45\r\n\r\n";
        let mut sink = Vec::new();
        t.run(&mut rest, &mut input, &mut sink, &mut out, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(sink, b"HEAD a\r\n0123456789\r\n0\r\nX-Sum: 45\r\n\r\n");
    }

    #[tokio::test]
    async fn a_bad_chunk_end_after_streamed_data_is_an_error() {
        let (framed, _) = chunked(&[100_000]);
        let mut bad = framed[..framed.len() - 7].to_vec();
        bad.extend_from_slice(b"XY0\r\n\r\n");
        let mut rd: &[u8] = &bad;
        let (mut input, mut out, mut sink) = (BytesMut::new(), BytesMut::new(), Vec::<u8>::new());
        let mut t = BodyTransfer::new(BodyKind::Chunked, BodyKind::Chunked);
        let err = t
            .run(&mut rd, &mut input, &mut sink, &mut out, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Malformed("BadChunkEnd")), "{err:?}");
        assert!(!t.is_done());
    }

    /// A receiver that is always ready and counts what it got.
    struct Counting {
        bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.bytes
                .fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Runs a transfer of `body` (framed as `from`) from a sender and to a receiver that
    /// are always ready, beside a task that notes how far the transfer got each time it
    /// runs. Returns the most bytes the transfer moved between two turns of that task,
    /// and how many turns it had.
    fn largest_turn(from: BodyKind, to: BodyKind, body: Vec<u8>) -> (usize, usize) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bytes = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let watcher = {
                let (bytes, done) = (Arc::clone(&bytes), Arc::clone(&done));
                tokio::spawn(async move {
                    let (mut last, mut largest, mut turns) = (0, 0, 0);
                    // Bounded: the transfer ends, or 10 million turns.
                    for _ in 0..10_000_000 {
                        let now = bytes.load(Ordering::Relaxed);
                        largest = largest.max(now - last);
                        last = now;
                        turns += 1;
                        if done.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    (largest, turns)
                })
            };
            // Let the watcher take its first look before the transfer starts.
            tokio::task::yield_now().await;
            let mut rd = std::io::Cursor::new(body);
            let mut wr = Counting {
                bytes: Arc::clone(&bytes),
            };
            let (mut input, mut out) = (BytesMut::new(), BytesMut::new());
            let mut t = BodyTransfer::new(from, to);
            t.run(&mut rd, &mut input, &mut wr, &mut out, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(t.is_done());
            done.store(true, Ordering::Relaxed);
            watcher.await.unwrap()
        })
    }

    #[test]
    fn a_large_body_lets_other_tasks_run_between_bounded_turns() {
        const LEN: usize = 8 * 1024 * 1024;
        let body = vec![7u8; LEN];
        let (largest, turns) = largest_turn(BodyKind::Length(LEN as u64), BodyKind::Length(LEN as u64), body);
        // A turn ends with the read or write that uses it up: less than TURN_BYTES before
        // it, and that one operation.
        assert!(
            largest <= TURN_BYTES + BODY_READ,
            "{largest} bytes moved in one turn"
        );
        assert!(
            turns >= LEN / (TURN_BYTES + BODY_READ),
            "the other task ran only {turns} times"
        );

        // A chunked body's reads grow to LARGE_READ (writes carry a chunk's framing too).
        let (framed, _) = chunked(&[LEN / 2, LEN / 2]);
        let (largest, turns) = largest_turn(BodyKind::Chunked, BodyKind::Chunked, framed);
        assert!(
            largest <= TURN_BYTES + LARGE_READ + 64,
            "{largest} bytes moved in one turn"
        );
        assert!(
            turns >= LEN / (TURN_BYTES + LARGE_READ),
            "the other task ran only {turns} times"
        );
    }
}
