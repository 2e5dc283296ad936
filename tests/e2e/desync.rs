//! ALB's desync mitigation through the real binary, in all three modes (alb-spec §5).
//!
//! One table of requests, each named after the reason desync-guardian gives it, says what
//! each mode does with it: forward (both connections stay open), forward and then close the
//! client and the target connection, or answer with a status and never forward. A recording
//! target reads what hostalb forwarded as a strict server would and records the framing it
//! got (one `Content-Length`, or `Transfer-Encoding: chunked`, never both, never a
//! look-alike), the body, and the target connection each request came on and whether that
//! connection was closed. After every case a normal request still succeeds, and the
//! `DesyncMitigationMode_NonCompliant_Request_Count` counter moved once per non-compliant
//! request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostalb_testkit::{HostAlb, ParsedResponse, RawConn, eventually, scaled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::start;
use crate::errors::{assert_closed_after, forward_config, get, metric};

/// How long a test waits for an answer hostalb should give at once.
const ANSWER: Duration = Duration::from_secs(5);
/// What the target answers to every request it reads.
const TARGET_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Target: yes\r\n\r\nok";
/// A target connection silent this long is closed by the target (bounds every read).
const TARGET_IDLE: Duration = Duration::from_secs(20);
/// Requests one target connection serves at most (bounds its loop).
const TARGET_MAX_REQUESTS: usize = 1000;

/// What the target must have received of a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// No framing field and no body.
    Nothing,
    /// `Content-Length` alone, and this body.
    Length(&'static [u8]),
    /// `Transfer-Encoding: chunked` alone, and this body (decoded).
    Chunked(&'static [u8]),
}

/// What hostalb does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Forwarded as `Sent`; the client connection and the target connection stay open.
    Forward(Sent),
    /// Forwarded as `Sent`; then both the client and the target connection are closed.
    ForwardClose(Sent),
    /// Answered by hostalb with this status and never forwarded; the client connection closes.
    Refuse(u16),
}

use Sent::{Chunked, Length, Nothing};
use Then::{Forward, ForwardClose, Refuse};

/// One row of the table.
pub(crate) struct Case {
    /// `Reason: what the request does` (the reason is desync-guardian's classification).
    pub(crate) name: &'static str,
    /// The classification reason; `None` for a compliant request.
    pub(crate) reason: Option<&'static str>,
    pub(crate) request: Vec<u8>,
    /// In monitor, defensive and strictest mode.
    pub(crate) then: [Then; 3],
    /// Text the forwarded head must contain (how hostalb re-serialised it).
    pub(crate) target_sees: Option<&'static str>,
}

/// A request with this request line, these header lines (each with its CRLF) and body.
fn req(line: &str, fields: &str, body: &str) -> Vec<u8> {
    format!("{line}\r\nHost: example.com\r\n{fields}\r\n{body}").into_bytes()
}

fn case(name: &'static str, reason: Option<&'static str>, request: Vec<u8>, then: [Then; 3]) -> Case {
    Case {
        name,
        reason,
        request,
        then,
        target_sees: None,
    }
}

impl Case {
    fn sees(mut self, text: &'static str) -> Case {
        self.target_sees = Some(text);
        self
    }
}

/// Forwarded in every mode.
fn allowed(sent: Sent) -> [Then; 3] {
    [Forward(sent), Forward(sent), Forward(sent)]
}
/// Acceptable: blocked only in strictest mode.
fn acceptable(sent: Sent) -> [Then; 3] {
    [Forward(sent), Forward(sent), Refuse(400)]
}
/// Ambiguous: forwarded then both connections closed in defensive mode.
fn ambiguous(sent: Sent) -> [Then; 3] {
    [Forward(sent), ForwardClose(sent), Refuse(400)]
}
/// Severe, but hostalb can frame and forward it: monitor forwards it.
fn severe(sent: Sent) -> [Then; 3] {
    [Forward(sent), Refuse(400), Refuse(400)]
}
/// hostalb cannot frame or forward it: refused with `status` in every mode.
fn never(status: u16) -> [Then; 3] {
    [Refuse(status), Refuse(status), Refuse(status)]
}

/// The table, by class.
fn cases() -> Vec<Case> {
    let post = |fields: &str, body: &str| req("POST /p HTTP/1.1", fields, body);
    let get_with = |fields: &str, body: &str| req("GET /g HTTP/1.1", fields, body);
    vec![
        // Compliant.
        case("Compliant: GET", None, get_with("", ""), allowed(Nothing)),
        case(
            "Compliant: POST, Content-Length 5",
            None,
            post("Content-Length: 5\r\n", "hello"),
            allowed(Length(b"hello")),
        ),
        case(
            "Compliant: POST, chunked",
            None,
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            allowed(Chunked(b"hello")),
        ),
        case(
            "Compliant: POST, Transfer-Encoding identity (a no-op coding, as ALB supports it)",
            None,
            post("Transfer-Encoding: identity\r\n", ""),
            allowed(Nothing),
        ),
        // Acceptable.
        case(
            "GetHeadZeroContentLength: GET + Content-Length 0",
            Some("GetHeadZeroContentLength"),
            get_with("Content-Length: 0\r\n", ""),
            acceptable(Length(b"")),
        ),
        case(
            "NonCompliantHeader: a field name with a space before the colon",
            Some("NonCompliantHeader"),
            get_with("X-Custom : v\r\n", ""),
            acceptable(Nothing),
        )
        .sees("\r\nX-Custom : v\r\n"),
        case(
            "NonCompliantHeader: \\x01 in a field value",
            Some("NonCompliantHeader"),
            get_with("X-Custom: a\x01b\r\n", ""),
            acceptable(Nothing),
        )
        .sees("\r\nX-Custom: a\x01b\r\n"),
        case(
            "NonCompliantHeader: U+0085 (bytes C2 85) in a field name",
            Some("NonCompliantHeader"),
            get_with("X-\u{85}: 1\r\n", ""),
            acceptable(Nothing),
        ),
        case(
            "NonCompliantVersion: HTTP/1.2 (forwarded as HTTP/1.1)",
            Some("NonCompliantVersion"),
            req("GET /v12 HTTP/1.2", "", ""),
            acceptable(Nothing),
        )
        .sees("GET /v12 HTTP/1.1\r\n"),
        case(
            "SpaceInUri: GET /a b?c d (forwarded percent-encoded)",
            Some("SpaceInUri"),
            req("GET /a b?c d HTTP/1.1", "", ""),
            acceptable(Nothing),
        )
        .sees("GET /a%20b?c%20d HTTP/1.1\r\n"),
        case(
            "NonCompliantVersion: a request line without a version (HTTP/0.9, read as HTTP/1.0)",
            Some("NonCompliantVersion"),
            b"GET /v09\r\nConnection: keep-alive\r\n\r\n".to_vec(),
            acceptable(Nothing),
        )
        .sees("GET /v09 HTTP/1.1\r\n"),
        case(
            "SpaceInUri: two spaces after the method",
            Some("SpaceInUri"),
            req("GET  /two HTTP/1.1", "", ""),
            acceptable(Nothing),
        )
        .sees("GET /two HTTP/1.1\r\n"),
        // Ambiguous.
        case(
            "AmbiguousUri: a tab in the target (forwarded percent-encoded)",
            Some("AmbiguousUri"),
            req("GET /a\tb HTTP/1.1", "", ""),
            ambiguous(Nothing),
        )
        .sees("GET /a%09b HTTP/1.1\r\n"),
        case(
            "BothTeClPresent: TE chunked + CL 5, body 0\\r\\n\\r\\n (chunked wins)",
            Some("BothTeClPresent"),
            post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            ambiguous(Chunked(b"")),
        ),
        case(
            "BothTeClPresent: CL 5 + TE chunked, a 5-byte chunk (chunked wins)",
            Some("BothTeClPresent"),
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            ambiguous(Chunked(b"hello")),
        ),
        case(
            "BothTeClPresent: TE identity + CL 5 (the length frames it)",
            Some("BothTeClPresent"),
            post("Transfer-Encoding: identity\r\nContent-Length: 5\r\n", "hello"),
            ambiguous(Length(b"hello")),
        ),
        case(
            "DuplicateContentLength: CL 5 twice",
            Some("DuplicateContentLength"),
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            ambiguous(Length(b"hello")),
        ),
        case(
            "EmptyHeader: a line ': value' (not forwarded)",
            Some("EmptyHeader"),
            get_with(": value\r\n", ""),
            ambiguous(Nothing),
        ),
        case(
            "SuspiciousHeader: Transfer_Encoding chunked + CL 5 (the look-alike is not forwarded)",
            Some("SuspiciousHeader"),
            post("Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", "hello"),
            ambiguous(Length(b"hello")),
        ),
        case(
            "SuspiciousHeader: 'Transfer-Encoding : chunked' + CL 5",
            Some("SuspiciousHeader"),
            post(
                "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            ambiguous(Length(b"0\r\n\r\n")),
        ),
        case(
            "SuspiciousHeader: \\x01Content-Length 5 on a POST without a length",
            Some("SuspiciousHeader"),
            post("\x01Content-Length: 5\r\n", ""),
            ambiguous(Nothing),
        ),
        case(
            "UndefinedContentLengthSemantics: GET + CL 5",
            Some("UndefinedContentLengthSemantics"),
            get_with("Content-Length: 5\r\n", "hello"),
            ambiguous(Length(b"hello")),
        ),
        case(
            "UndefinedTransferEncodingSemantics: GET + TE chunked",
            Some("UndefinedTransferEncodingSemantics"),
            get_with("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            ambiguous(Chunked(b"hello")),
        ),
        case(
            "UndefinedTransferEncodingSemantics: TE chunked in HTTP/1.0",
            Some("UndefinedTransferEncodingSemantics"),
            req(
                "POST /p10 HTTP/1.0",
                "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            ambiguous(Chunked(b"hello")),
        ),
        case(
            "UndefinedContentLengthSemantics: CL 5 in HTTP/0.9",
            Some("UndefinedContentLengthSemantics"),
            req(
                "POST /p09 HTTP/0.9",
                "Connection: keep-alive\r\nContent-Length: 5\r\n",
                "hello",
            ),
            ambiguous(Length(b"hello")),
        ),
        // Severe, and still forwardable.
        case(
            "BadMethod: G(T (monitor forwards it)",
            Some("BadMethod"),
            req("G(T /m HTTP/1.1", "", ""),
            severe(Nothing),
        )
        .sees("G(T /m HTTP/1.1\r\n"),
        case(
            "BadContentLength: a look-alike Content_Length abc (monitor forwards without it)",
            Some("BadContentLength"),
            post("Content_Length: abc\r\n", ""),
            severe(Nothing),
        ),
        // Severe, and nothing hostalb can forward.
        case(
            "BadContentLength: CL +5",
            Some("BadContentLength"),
            post("Content-Length: +5\r\n", "hello"),
            never(400),
        ),
        case(
            "BadContentLength: CL empty",
            Some("BadContentLength"),
            post("Content-Length: \r\n", ""),
            never(400),
        ),
        case(
            "MultipleContentLength: CL 5 and CL 6",
            Some("MultipleContentLength"),
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            never(400),
        ),
        case(
            "BadTransferEncoding: TE ,chunked",
            Some("BadTransferEncoding"),
            post("Transfer-Encoding: ,chunked\r\n", "0\r\n\r\n"),
            never(400),
        ),
        case(
            "BadTransferEncoding: TE xchunked (a coding hostalb cannot decode: 501)",
            Some("BadTransferEncoding"),
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
            never(501),
        ),
        case(
            "MultipleTransferEncodingChunked: TE chunked, chunked",
            Some("MultipleTransferEncodingChunked"),
            post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
            never(400),
        ),
        case(
            "BadHeader: NUL in a value",
            Some("BadHeader"),
            get_with("X-A: a\x00b\r\n", ""),
            never(400),
        ),
        case(
            "BadHeader: obs-fold",
            Some("BadHeader"),
            get_with("X-A: a\r\n folded\r\n", ""),
            never(400),
        ),
        case(
            "BadHeader: a bare LF line ending",
            Some("BadHeader"),
            get_with("X-A: a\nX-B: b\r\n", ""),
            never(400),
        ),
        case(
            "BadUri: NUL in the target",
            Some("BadUri"),
            req("GET /a\x00b HTTP/1.1", "", ""),
            never(400),
        ),
        case(
            "BadVersion: HTTP/1.32",
            Some("BadVersion"),
            req("GET / HTTP/1.32", "", ""),
            never(400),
        ),
        // HTTP/2 and later, or a coding hostalb does not implement.
        case(
            "Compliant: HTTP/2.0 on an HTTP/1 connection (505)",
            None,
            req("GET / HTTP/2.0", "", ""),
            never(505),
        ),
        case(
            "BothTeClPresent: TE gzip + CL 5 (gzip is not implemented: 501)",
            Some("BothTeClPresent"),
            post("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", "hello"),
            never(501),
        ),
    ]
}

/// One request as the target read it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Target connection number, in accept order.
    pub(crate) conn: usize,
    pub(crate) head: String,
    /// The framing fields (and look-alikes of them) in the head, lower-cased names.
    pub(crate) framing: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// A target that reads requests the way a strict server does (one framing field, strict
/// chunks), records them, and answers [`TARGET_ANSWER`] on a kept connection. A request
/// it cannot frame is recorded and its connection closed.
pub(crate) struct Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<Mutex<Vec<usize>>>,
    bytes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Target {
    pub(crate) async fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a target");
        let addr = listener.local_addr().expect("target address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let bytes = Arc::new(AtomicUsize::new(0));
        let (s, c, b) = (seen.clone(), closed.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            // Accepts until the test drops the target (its task is aborted then).
            for conn in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, c, b) = (s.clone(), c.clone(), b.clone());
                tokio::spawn(async move {
                    serve_target(conn, stream, &s, &b).await;
                    c.lock().unwrap().push(conn);
                });
            }
        });
        Target {
            addr,
            seen,
            closed,
            bytes,
            task,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn closed(&self, conn: usize) -> bool {
        self.closed.lock().unwrap().contains(&conn)
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

/// Reads one request after another from `stream`, bounded in count and by an idle timeout.
async fn serve_target(conn: usize, mut stream: TcpStream, seen: &Mutex<Vec<Seen>>, bytes: &AtomicUsize) {
    let mut buf: Vec<u8> = Vec::new();
    for _ in 0..TARGET_MAX_REQUESTS {
        let Some(head_end) = read_until(&mut stream, &mut buf, bytes, |b| {
            b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
        })
        .await
        else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let framing = framing_fields(&head);
        let exact: Vec<&(String, String)> = framing
            .iter()
            .filter(|(n, _)| n == "content-length" || n == "transfer-encoding")
            .collect();
        let body = match exact.as_slice() {
            [] => Some(Vec::new()),
            [(n, v)] if n == "content-length" => match v.trim().parse::<usize>() {
                Ok(len) => read_until(&mut stream, &mut buf, bytes, |b| (b.len() >= len).then_some(len))
                    .await
                    .map(|len| buf.drain(..len).collect()),
                Err(_) => None,
            },
            [(_, v)] if v.trim().eq_ignore_ascii_case("chunked") => {
                let used =
                    read_until(&mut stream, &mut buf, bytes, |b| dechunk(b).map(|(_, used)| used)).await;
                used.and_then(|used| {
                    let data = dechunk(&buf).map(|(data, _)| data);
                    buf.drain(..used);
                    data
                })
            }
            _ => None,
        };
        let framed = body.is_some() && framing.len() == exact.len();
        seen.lock().unwrap().push(Seen {
            conn,
            head,
            framing,
            body: body.unwrap_or_default(),
        });
        if !framed || stream.write_all(TARGET_ANSWER).await.is_err() {
            return;
        }
    }
}

/// Reads into `buf` until `done` finds what it needs; `None` at EOF, error or idle timeout.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    bytes: &AtomicUsize,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    // Each round reads at least one byte or ends: bounded by the idle timeout per read.
    loop {
        if let Some(n) = done(buf) {
            return Some(n);
        }
        match tokio::time::timeout(TARGET_IDLE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                bytes.fetch_add(n, Ordering::SeqCst);
                buf.extend_from_slice(&chunk[..n]);
            }
            _ => return None,
        }
    }
}

/// A strict chunked body at the front of `b`: its data and the bytes it took, once whole.
fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = b.len();
    let mut data = Vec::new();
    // Each round consumes a size line: bounded by the input.
    while !b.is_empty() {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?, 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            b = b.strip_prefix(b"\r\n")?;
            return Some((data, total - b.len()));
        }
        if b.len() < size + 2 {
            return None;
        }
        data.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    None
}

/// The fields of `head` whose name is, or reads as, `Content-Length` or
/// `Transfer-Encoding` once everything but letters is dropped.
fn framing_fields(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| {
            let letters: String = name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase();
            letters == "contentlength" || letters == "transferencoding"
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// Asserts that `got` arrived framed exactly as `sent` says.
fn assert_framed(got: &Seen, sent: Sent, label: &str) {
    let (fields, body): (Vec<(String, String)>, &[u8]) = match sent {
        Nothing => (vec![], b""),
        Length(b) => (vec![("content-length".into(), b.len().to_string())], b),
        Chunked(b) => (vec![("transfer-encoding".into(), "chunked".into())], b),
    };
    assert_eq!(got.framing, fields, "{label}: framing fields: {got:?}");
    assert_eq!(got.body, body, "{label}: body: {got:?}");
}

/// Sends `c` to hostalb (listener `web`) in front of `target` and checks `then`; then proves
/// hostalb still serves a normal request. Returns the target connection the request was
/// forwarded on, if it was.
pub(crate) async fn expect(
    alb: &HostAlb,
    target: &Target,
    c: &Case,
    then: Then,
    mode: &str,
) -> Option<usize> {
    let label = format!("[{mode}] {}", c.name);
    let mut forwarded_on = None;
    let addr = alb.listener("web");
    let seen_before = target.seen().len();
    let bytes_before = target.bytes();
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    conn.send(&c.request).await.expect("send the request");
    let resp = conn.read_response(scaled(ANSWER)).await.unwrap_or_else(|| {
        panic!(
            "{label}: no answer; received {:?}",
            String::from_utf8_lossy(conn.received())
        )
    });
    match then {
        Refuse(status) => {
            assert_eq!(resp.status, status, "{label}: {resp:?}");
            assert_eq!(resp.header("server"), Some("awselb/2.0"), "{label}: {resp:?}");
            assert_closed_after(&mut conn, &resp).await;
            assert_eq!(target.bytes(), bytes_before, "{label}: bytes reached the target");
        }
        Forward(sent) | ForwardClose(sent) => {
            assert_eq!(resp.status, 200, "{label}: {resp:?}");
            assert_eq!(resp.header("x-target"), Some("yes"), "{label}: {resp:?}");
            let seen = target.seen();
            assert_eq!(
                seen.len(),
                seen_before + 1,
                "{label}: one request forwarded: {seen:?}"
            );
            let got = seen[seen_before].clone();
            assert_framed(&got, sent, &label);
            if let Some(text) = c.target_sees {
                assert!(got.head.contains(text), "{label}: {text:?} not in {:?}", got.head);
            }
            if matches!(then, ForwardClose(_)) {
                assert_closed_after(&mut conn, &resp).await;
                eventually(Duration::from_secs(3), async || target.closed(got.conn)).await;
                let next = probe_fresh(addr, target, &label).await;
                assert_ne!(next.conn, got.conn, "{label}: the target connection was reused");
            } else {
                assert!(
                    !resp.closes(),
                    "{label}: the client connection should stay open: {resp:?}"
                );
                conn.send(&get("/same-connection"))
                    .await
                    .expect("send on the kept connection");
                let next = conn
                    .read_response(scaled(ANSWER))
                    .await
                    .unwrap_or_else(|| panic!("{label}: no answer on the kept connection"));
                assert_eq!(next.status, 200, "{label}: {next:?}");
                let after = target.seen();
                let last = after.last().expect("the probe reached the target");
                assert!(
                    last.head.starts_with("GET /same-connection "),
                    "{label}: {last:?}"
                );
            }
            forwarded_on = Some(got.conn);
        }
    }
    probe_fresh(addr, target, &label).await;
    forwarded_on
}

/// A normal request on a new client connection: 200 from the target. Returns what the
/// target read of it.
async fn probe_fresh(addr: SocketAddr, target: &Target, label: &str) -> Seen {
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    conn.send(&get("/probe")).await.expect("send the probe");
    let ok: ParsedResponse = conn
        .read_response(scaled(ANSWER))
        .await
        .unwrap_or_else(|| panic!("{label}: no answer to the probe after it"));
    assert_eq!(ok.status, 200, "{label}: the request after it: {ok:?}");
    assert_eq!(ok.header("x-target"), Some("yes"), "{label}: {ok:?}");
    let seen = target.seen();
    let last = seen.last().expect("the probe reached the target").clone();
    assert!(last.head.starts_with("GET /probe "), "{label}: {last:?}");
    last
}

/// ALB's `DesyncMitigationMode_NonCompliant_Request_Count` in `/metrics`.
async fn non_compliant(alb: &HostAlb) -> f64 {
    let (_, text) = alb.admin_get("/metrics").await;
    metric(
        &text,
        "hostalb_desync_mitigation_mode_non_compliant_requests_total",
        &[],
    )
}

/// Runs `table` in one mode (`None`: the key left out, i.e. the default), each case with
/// its expectation in `column` (0 monitor, 1 defensive, 2 strictest).
pub(crate) async fn run_cases(mode: Option<&str>, column: usize, table: &[Case]) {
    let target = Target::start().await;
    let extra = mode
        .map(|m| format!("desync_mitigation_mode = \"{m}\""))
        .unwrap_or_default();
    let alb = start(&forward_config(&[target.addr()], &extra)).await;
    let label = mode.unwrap_or("default");
    let mut to_close = Vec::new();
    for c in table {
        let then = c.then[column];
        let on = expect(&alb, &target, c, then, label).await;
        if matches!(then, ForwardClose(_)) {
            to_close.extend(on);
        }
    }
    // Only the target connections of forward-then-close requests were closed: every other
    // one went back to the pool.
    let closed: Vec<usize> = target.closed.lock().unwrap().clone();
    assert!(
        closed.iter().all(|c| to_close.contains(c)),
        "[{label}] target connections closed: {closed:?}; only {to_close:?} should be"
    );
    let counted = table.iter().filter(|c| c.reason.is_some()).count() as f64;
    let waited = hostalb_testkit::try_eventually(Duration::from_secs(3), async || {
        non_compliant(&alb).await == counted
    })
    .await;
    assert!(
        waited.is_ok(),
        "[{label}] non-compliant requests counted: {} of {counted}",
        non_compliant(&alb).await
    );
    let all = target.seen();
    assert!(
        all.iter().all(|s| s.framing.len() <= 1),
        "[{label}] the target got two framings: {all:?}"
    );
    assert!(
        all.iter().all(|s| !s.head.contains("/smuggled")),
        "[{label}] a smuggled request reached the target: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_what_hostalb_can_frame() {
    run_cases(Some("monitor"), 0, &cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defensive_mode_closes_both_connections_after_ambiguous_requests() {
    run_cases(Some("defensive"), 1, &cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defensive_is_the_default_mode() {
    run_cases(None, 1, &cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strictest_mode_blocks_everything_not_compliant() {
    run_cases(Some("strictest"), 2, &cases()).await;
}

/// Reads everything hostalb sends until it closes; returns the head and what followed it.
async fn answer_and_rest(addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    conn.send(request).await.expect("send the request");
    assert!(
        conn.wait_closed(scaled(ANSWER)).await,
        "hostalb should close after a refusal"
    );
    let got = conn.received();
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(got)));
    (
        String::from_utf8_lossy(&got[..end]).into_owned(),
        got[end..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_head_requests_carry_no_body() {
    let target = Target::start().await;
    let config = format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "app" }}

[[listener]]
name = "strict"
address = "127.0.0.1:0"
desync_mitigation_mode = "strictest"
default_action = {{ type = "forward", target_group = "app" }}

[target_group.app]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        target.addr()
    );
    let alb = start(&config).await;
    let long = format!(
        "HEAD /{} HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let cases: [(&str, &str, Vec<u8>, &str); 4] = [
        (
            "strict",
            "SpaceInUri blocked in strictest mode",
            req("HEAD /a b HTTP/1.1", "", ""),
            "400",
        ),
        (
            "web",
            "BadContentLength",
            req("HEAD /h HTTP/1.1", "Content-Length: +1\r\n", ""),
            "400",
        ),
        (
            "web",
            "HTTP/2.0: not HTTP/1.x",
            req("HEAD /h HTTP/2.0", "", ""),
            "505",
        ),
        ("web", "request line over 16 KiB", long.into_bytes(), "414"),
    ];
    for (listener, what, request, status) in cases {
        let (head, rest) = answer_and_rest(alb.listener(listener), &request).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("\r\ncontent-length: "),
            "{what}: the page length is announced: {head}"
        );
        assert!(
            rest.is_empty(),
            "{what}: a body followed: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert_eq!(target.bytes(), 0, "nothing was forwarded");
}
