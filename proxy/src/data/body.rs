//! Moving bodies across the proxy without buffering them whole: request bodies from the
//! client to the target, response bodies from the target to the client. Both are
//! re-framed (chunked bodies decoded strictly and encoded again), and every read and
//! write is bounded by the listener's idle timeout.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::http1::BodyKind;
use crate::http1::chunked::{ChunkedDecoder, Decoded, encode_chunk_head, encode_end};

/// Read buffers grow by this much at a time.
const READ_CHUNK: usize = 16 * 1024;
/// A body that passes through unframed is read this much at a time: fewer system calls
/// for large bodies (the buffer is one of the connection's kept set).
const PASS_CHUNK: usize = 64 * 1024;
/// Output is written once this much is pending (and always before waiting for input).
const FLUSH_AT: usize = 64 * 1024;

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

/// Transfer state of one body, framed as it arrives (`from`) and as it leaves (`to`).
#[derive(Debug)]
pub(crate) struct BodyTransfer {
    from: BodyKind,
    to: BodyKind,
    /// Bytes left of a `Length` body.
    remaining: u64,
    decoder: ChunkedDecoder,
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
        while !self.done && !input.is_empty() {
            match self.from {
                BodyKind::Empty => self.done = true,
                BodyKind::Length(_) => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    self.put_data(out, &input[..n]);
                    input.advance(n);
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
                    Decoded::Data(data) => self.put_data(out, &data),
                    Decoded::End { trailers } => {
                        self.put_end(out, &trailers);
                        self.done = true;
                    }
                    Decoded::NeedMore => break,
                },
                BodyKind::UntilClose => {
                    let data = input.split();
                    self.put_data(out, &data);
                }
            }
        }
        Ok(self.done)
    }

    fn put_data(&self, out: &mut BytesMut, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.to == BodyKind::Chunked {
            encode_chunk_head(out, data.len());
            out.put_slice(data);
            out.put_slice(b"\r\n");
        } else {
            out.put_slice(data);
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
        loop {
            self.step_buffered(input, out)?;
            if self.done {
                self.flushed = true;
                return flush(wr, out, idle).await;
            }
            if out.len() >= FLUSH_AT || !out.is_empty() && input.is_empty() {
                self.flushed = true;
                flush(wr, out, idle).await?;
            }
            match fill(rd, input, idle).await {
                Ok(_) => {}
                Err(BodyError::SenderClosed) if self.from == BodyKind::UntilClose => {
                    // The end of a close-delimited body is its connection's end.
                    self.put_end(out, &[]);
                    self.done = true;
                    self.flushed = true;
                    return flush(wr, out, idle).await;
                }
                Err(e) => return Err(e),
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
        loop {
            let n = match self.from {
                BodyKind::Length(_) => usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len()),
                _ => input.len(),
            };
            if n > 0 || !out.is_empty() {
                let mut pending = Buf::chain(&out[..], &input[..n]);
                sent(timeout(idle, wr.write_all_buf(&mut pending)).await)?;
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
            }
            match fill_by(rd, input, PASS_CHUNK, idle).await {
                Ok(_) => {}
                Err(BodyError::SenderClosed) if self.from == BodyKind::UntilClose => {
                    self.done = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
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
        loop {
            self.step_buffered(input, &mut sink)?;
            sink.clear();
            if self.done {
                return Ok(true);
            }
            if read >= limit {
                return Ok(false);
            }
            read += fill(rd, input, idle).await?;
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
}
