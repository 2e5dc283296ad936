//! A strict decoder for `Transfer-Encoding: chunked`, and the matching encoder.
//!
//! Chunk sizes are 1 to 16 hex digits, lines end in CRLF only, chunk extensions are
//! checked for stray CR/LF and dropped, trailers are validated as header fields. Bodies
//! are always re-encoded when forwarded, so a chunk framing trick never reaches a target.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::is_tchar;

/// The longest chunk-size line (size plus extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// The largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkError(pub(crate) &'static str);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The last chunk and the trailer field lines (each with its CRLF; empty when none).
    End { trailers: Bytes },
    /// More input is needed.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    remaining: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            remaining: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Data bytes of the current chunk not returned yet: after a [`Decoded::Data`], what
    /// is still to come of the same chunk (0 once its data is complete).
    pub(crate) fn chunk_left(&self) -> u64 {
        match self.state {
            State::Data => self.remaining,
            _ => 0,
        }
    }

    /// Decodes the next item from the front of `buf`, consuming what it used.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(nl) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > MAX_SIZE_LINE {
                            return Err(ChunkError("ChunkSizeLineTooLong"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    if nl == 0 || buf[nl - 1] != b'\r' {
                        return Err(ChunkError("BareLfInChunk"));
                    }
                    let size = parse_size_line(&buf[..nl - 1])?;
                    buf.advance(nl + 1);
                    if size == 0 {
                        self.state = State::Trailers;
                    } else {
                        self.remaining = size;
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(n).freeze();
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataEnd;
                    }
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err(ChunkError("BadChunkEnd"));
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("BadChunkEnd"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        self.state = State::Done;
                        return Ok(Decoded::End {
                            trailers: Bytes::new(),
                        });
                    }
                    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                        if buf.len() > MAX_TRAILERS {
                            return Err(ChunkError("TrailersTooLarge"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let section = &buf[..end + 4];
                    if section.len() > MAX_TRAILERS || super::find_bare_lf(section).is_some() {
                        return Err(ChunkError("BadTrailers"));
                    }
                    let mut fields = [httparse::EMPTY_HEADER; 64];
                    match httparse::parse_headers(section, &mut fields) {
                        Ok(httparse::Status::Complete(_)) => {}
                        _ => return Err(ChunkError("BadTrailers")),
                    }
                    let trailers = buf.split_to(end + 2).freeze();
                    buf.advance(2);
                    self.state = State::Done;
                    return Ok(Decoded::End { trailers });
                }
                State::Done => {
                    return Ok(Decoded::End {
                        trailers: Bytes::new(),
                    });
                }
            }
        }
    }
}

/// `1*16HEXDIG [BWS ";" ext...]` with nothing but visible characters, SP and HTAB after.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("BadChunkSize"));
    }
    if digits > 16 {
        return Err(ChunkError("ChunkSizeTooLarge"));
    }
    let mut size: u64 = 0;
    for b in &line[..digits] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        size = (size << 4) | u64::from(d);
    }
    let rest = &line[digits..];
    if rest.is_empty() {
        return Ok(size);
    }
    // Only BWS may stand between the size and the `;` of an extension.
    let ws = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    let ext = &rest[ws..];
    if ext.first() != Some(&b';') {
        return Err(ChunkError("BadChunkSize"));
    }
    // Extensions are dropped when re-encoding; they only need to be harmless.
    if !ext
        .iter()
        .all(|b| is_tchar(*b) || matches!(b, b';' | b'=' | b'"' | b' ' | b'\t' | b'/' | b'\\'))
    {
        return Err(ChunkError("BadChunkExtension"));
    }
    Ok(size)
}

/// Appends one chunk (`size CRLF data CRLF`) for `data` to `out`.
pub(crate) fn encode_chunk_head(out: &mut BytesMut, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

/// Appends the last chunk with `trailers` (field lines with their CRLFs, or empty).
pub(crate) fn encode_end(out: &mut BytesMut, trailers: &[u8]) {
    out.put_slice(b"0\r\n");
    out.put_slice(trailers);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        for _ in 0..1000 {
            match dec.decode(&mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::End { trailers } => return Ok((body, trailers.to_vec())),
                Decoded::NeedMore => return Err(ChunkError("incomplete")),
            }
        }
        Err(ChunkError("loop"))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (body, trailers) = decode_all(b"5\r\nhello\r\n6;name=v\r\n world\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"hello world");
        assert!(trailers.is_empty());
        let (body, trailers) = decode_all(b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n").unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(trailers, b"X-Sum: 1\r\n");
        let (body, _) = decode_all(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body.len(), 10);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let input = b"4\r\nabcd\r\n2\r\nef\r\n0\r\nT: v\r\n\r\n";
        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut done = false;
        for b in input {
            buf.put_u8(*b);
            loop {
                match dec.decode(&mut buf).unwrap() {
                    Decoded::Data(d) => body.extend_from_slice(&d),
                    Decoded::End { trailers } => {
                        assert_eq!(&trailers[..], b"T: v\r\n");
                        done = true;
                        break;
                    }
                    Decoded::NeedMore => break,
                }
            }
        }
        assert!(done);
        assert_eq!(body, b"abcdef");
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"0x1\r\na\r\n0\r\n\r\n"[..],
            b"Z\r\n",
            b"0_2e\r\n",
            b" 1\r\na\r\n0\r\n\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"1\na\r\n0\r\n\r\n",
            b"1\r\na\n0\r\n\r\n",
            b"2\r\r;a\r\nab\r\n0\r\n\r\n",
            b"1\r\nabc\r\n",
            b"+1\r\na\r\n",
            b"1 x\r\na\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encoder_round_trips() {
        let mut out = BytesMut::new();
        for piece in [&b"hello"[..], &[7u8; 300][..]] {
            encode_chunk_head(&mut out, piece.len());
            out.put_slice(piece);
            out.put_slice(b"\r\n");
        }
        encode_end(&mut out, b"");
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
        let (body, _) = decode_all(&out).unwrap();
        assert_eq!(body.len(), 305);
    }
}
