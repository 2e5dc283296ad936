//! A small HTTP/1 response parser for tests: several pipelined responses in one buffer,
//! bodies framed by Content-Length, chunked coding, or the end of the connection.

use std::fmt;

/// Most header lines accepted in one response head.
const MAX_HEADERS: usize = 512;

/// One HTTP/1 response as it arrived.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Header lines in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body with any chunked coding removed.
    pub body: Vec<u8>,
    /// False when the bytes ended before the body did (a truncated response).
    pub complete: bool,
    /// Whether the body was chunked.
    pub chunked: bool,
}

impl ParsedResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as a [`crate::Backend`]'s default answer, if it is one.
    pub fn reply(&self) -> Option<crate::BackendReply> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as the answer of the backend in the Docker test image, if it is one.
    pub fn container_reply(&self) -> Option<crate::docker::ContainerReply> {
        crate::docker::ContainerReply::from_body(&self.body)
    }

    /// Whether the response asks to close the connection (`Connection: close`).
    pub fn closes(&self) -> bool {
        self.header_all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

impl fmt::Debug for ParsedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedResponse")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("complete", &self.complete)
            .field("chunked", &self.chunked)
            .finish()
    }
}

pub(crate) fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn header_all_in<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Parses every response in `bytes`, in order, taking `bytes` as everything the peer sent
/// before closing: a body with neither Content-Length nor chunked coding runs to the end,
/// and a truncated last response is returned with `complete == false`.
///
/// 1xx, 204 and 304 responses have no body; an interim `100 Continue` is returned as a
/// response of its own. Responses to HEAD cannot be told apart here: avoid HEAD with this
/// parser. Parsing stops at the first bytes that are not a response head.
pub fn parse_responses(bytes: &[u8]) -> Vec<ParsedResponse> {
    let mut out = Vec::new();
    let mut rest = bytes;
    // Each round consumes at least one byte, so the loop ends within bytes.len() rounds.
    for _ in 0..=bytes.len() {
        if rest.is_empty() {
            break;
        }
        match parse_one(rest, true) {
            Parse::Done(resp, used) => {
                out.push(resp);
                rest = &rest[used.max(1).min(rest.len())..];
            }
            Parse::NeedMore | Parse::Invalid => break,
        }
    }
    out
}

/// The outcome of parsing the front of a buffer.
#[derive(Debug)]
pub(crate) enum Parse {
    /// One response and how many bytes it used.
    Done(ParsedResponse, usize),
    /// The response is not complete yet (only when the peer has not closed).
    NeedMore,
    /// The bytes are not an HTTP/1 response.
    Invalid,
}

/// Parses one response from the front of `buf`. With `eof`, a response cut short is
/// returned as incomplete instead of [`Parse::NeedMore`].
pub(crate) fn parse_one(buf: &[u8], eof: bool) -> Parse {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut storage);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return if eof { Parse::Invalid } else { Parse::NeedMore },
        Err(_) => return Parse::Invalid,
    };
    let status = head.code.unwrap_or(0);
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let mut resp = ParsedResponse {
        status,
        reason: head.reason.unwrap_or("").to_string(),
        version: format!("HTTP/1.{}", head.version.unwrap_or(1)),
        headers,
        body: Vec::new(),
        complete: true,
        chunked: false,
    };
    let rest = &buf[head_len..];
    match framing(&resp) {
        Framing::None => Parse::Done(resp, head_len),
        Framing::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if rest.len() >= n {
                resp.body = rest[..n].to_vec();
                Parse::Done(resp, head_len + n)
            } else if eof {
                resp.body = rest.to_vec();
                resp.complete = false;
                Parse::Done(resp, buf.len())
            } else {
                Parse::NeedMore
            }
        }
        Framing::Chunked => {
            resp.chunked = true;
            match scan_chunked(rest) {
                Chunked::Complete { used, data } => {
                    resp.body = data;
                    Parse::Done(resp, head_len + used)
                }
                Chunked::Incomplete { data } if eof => {
                    resp.body = data;
                    resp.complete = false;
                    Parse::Done(resp, buf.len())
                }
                Chunked::Incomplete { .. } => Parse::NeedMore,
                Chunked::Invalid { data } => {
                    resp.body = data;
                    resp.complete = false;
                    Parse::Done(resp, buf.len())
                }
            }
        }
        Framing::UntilClose => {
            if eof {
                resp.body = rest.to_vec();
                Parse::Done(resp, buf.len())
            } else {
                Parse::NeedMore
            }
        }
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(resp: &ParsedResponse) -> Framing {
    if (100..200).contains(&resp.status) || resp.status == 204 || resp.status == 304 {
        return Framing::None;
    }
    let te = resp.header_all("transfer-encoding");
    if !te.is_empty() {
        let last = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        return match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        };
    }
    match resp.header("content-length").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) => Framing::Length(n),
        Some(Err(_)) | None => Framing::UntilClose,
    }
}

/// The outcome of reading a chunked body from the front of a buffer.
#[derive(Debug)]
pub(crate) enum Chunked {
    /// The last chunk and trailers arrived: bytes used and the decoded data.
    Complete { used: usize, data: Vec<u8> },
    /// More bytes are needed; the data decoded so far.
    Incomplete { data: Vec<u8> },
    /// The coding is broken; the data decoded before the break.
    Invalid { data: Vec<u8> },
}

/// Decodes a chunked body (chunk extensions ignored, trailers skipped). Lines may end in
/// CRLF or a bare LF.
pub(crate) fn scan_chunked(buf: &[u8]) -> Chunked {
    let mut data = Vec::new();
    let mut pos = 0usize;
    // Every round consumes at least one line, so the loop ends within buf.len() rounds.
    for _ in 0..=buf.len() {
        let Some((line, next)) = line_at(buf, pos) else {
            return Chunked::Incomplete { data };
        };
        let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size_text = std::str::from_utf8(size_text).unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunked::Invalid { data };
        };
        pos = next;
        if size == 0 {
            // Trailers, up to an empty line.
            for _ in 0..=buf.len() {
                let Some((line, next)) = line_at(buf, pos) else {
                    return Chunked::Incomplete { data };
                };
                pos = next;
                if line.is_empty() {
                    return Chunked::Complete { used: pos, data };
                }
            }
            return Chunked::Invalid { data };
        }
        let end = pos.saturating_add(size);
        if end > buf.len() {
            data.extend_from_slice(&buf[pos..]);
            return Chunked::Incomplete { data };
        }
        data.extend_from_slice(&buf[pos..end]);
        pos = end;
        match line_at(buf, pos) {
            None => return Chunked::Incomplete { data },
            Some((b"", next)) => pos = next,
            Some(_) => return Chunked::Invalid { data },
        }
    }
    Chunked::Invalid { data }
}

/// The line starting at `pos` (without its line ending) and where the next one starts.
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + nl + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nrest";
        match scan_chunked(body) {
            Chunked::Complete { used, data } => {
                assert_eq!(data, b"abcde");
                assert_eq!(&body[used..], b"rest");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn chunked_incomplete_and_invalid() {
        assert!(matches!(scan_chunked(b"5\r\nab"), Chunked::Incomplete { data } if data == b"ab"));
        assert!(matches!(scan_chunked(b"Z\r\n"), Chunked::Invalid { .. }));
        assert!(matches!(scan_chunked(b"2\r\nabX\r\n"), Chunked::Invalid { .. }));
    }

    #[test]
    fn need_more_until_eof() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab";
        assert!(matches!(parse_one(buf, false), Parse::NeedMore));
        match parse_one(buf, true) {
            Parse::Done(r, used) => {
                assert!(!r.complete);
                assert_eq!(r.body, b"ab");
                assert_eq!(used, buf.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
