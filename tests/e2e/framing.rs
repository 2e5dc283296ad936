//! Request and response framing through the real binary: the smuggling battery of
//! reliability.md §4 A1-A11. Every refused payload gets its exact status and a closed
//! connection, no byte of it reaches the target, hostalb's error counter moves by one, and
//! a normal request right after succeeds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hostalb_testkit::{Backend, RawBackend, RawBehaviour, RawConn, eventually, parse_responses, scaled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::start;
use crate::desync::{self, Sent, Then};
use crate::errors::{assert_closed_after, expect_metric, forward_config, get, send};

/// What the raw target answers to every request head.
const OK_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Raw: yes\r\n\r\nok";

/// One refused payload.
struct Case {
    id: &'static str,
    what: &'static str,
    payload: Vec<u8>,
    /// The statuses the spec allows; most cases allow exactly one.
    status: &'static [u16],
}

fn case(id: &'static str, what: &'static str, payload: impl Into<Vec<u8>>, status: &'static [u16]) -> Case {
    Case {
        id,
        what,
        payload: payload.into(),
        status,
    }
}

/// A POST with these header lines (each with its CRLF) and body bytes.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST /refused HTTP/1.1\r\nHost: example.com\r\n{fields}\r\n{body}").into_bytes()
}

/// A chunked POST whose body is `chunks` (as written on the wire).
fn chunked(chunks: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", chunks)
}

/// Every payload smuggles this request in some form; it must never reach a target.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n";

/// Sends every case to one hostalb in front of a raw target and checks the outcome.
async fn run_battery(cases: Vec<Case>) {
    let raw = RawBackend::start(RawBehaviour::Respond(OK_ANSWER.to_vec())).await;
    let alb = start(&forward_config(&[raw.addr()], "")).await;
    let addr = alb.listener("web");
    let mut answered: BTreeMap<u16, u32> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        let label = format!("{} {}", c.id, c.what);
        let before = raw.received_len();
        let (mut conn, resp) = send(addr, &c.payload).await;
        assert!(
            c.status.contains(&resp.status),
            "{label}: status {} not in {:?}: {resp:?}",
            resp.status,
            c.status
        );
        assert_eq!(resp.header("server"), Some("awselb/2.0"), "{label}: {resp:?}");
        assert!(
            resp.text().contains(&format!("<h1>{} ", resp.status)),
            "{label}: error page: {resp:?}"
        );
        assert_closed_after(&mut conn, &resp).await;
        assert_eq!(raw.received_len(), before, "{label}: bytes reached the target");
        *answered.entry(resp.status).or_default() += 1;
        let code = resp.status.to_string();
        expect_metric(
            &alb,
            "hostalb_elb_answers_total",
            &[("code", &code)],
            f64::from(answered[&resp.status]),
        )
        .await;

        // hostalb still serves a normal request.
        let probe = format!("/probe-{i}");
        let (_probe_conn, ok) = send(addr, &get(&probe)).await;
        assert_eq!(ok.status, 200, "{label}: the request after it: {ok:?}");
        assert_eq!(ok.header("x-raw"), Some("yes"), "{label}: {ok:?}");
    }
    // Everything the target ever read: the probes, and nothing of the payloads.
    let all: Vec<u8> = raw.received().concat();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(
        text.matches(" HTTP/1.1\r\n").count(),
        cases.len(),
        "only the probes reached the target: {text}"
    );
    assert_eq!(text.matches("GET /probe-").count(), cases.len(), "{text}");
    assert!(!text.contains("smuggled"), "a payload reached the target: {text}");
    assert!(!text.contains("/refused"), "a payload reached the target: {text}");
    let total: u32 = answered.values().sum();
    let (_, metrics) = alb.admin_get("/metrics").await;
    let elb = crate::errors::metric(&metrics, "hostalb_httpcode_elb_4xx_total", &[])
        + crate::errors::metric(&metrics, "hostalb_httpcode_elb_5xx_total", &[]);
    assert_eq!(elb, f64::from(total), "one ELB answer per payload");
}

/// A payload ALB's defensive mode forwards (Ambiguous): hostalb frames it one way, sends it
/// with that one framing, then closes the client and the target connection, so whatever a
/// differently-framing server made of the rest never reaches a target.
fn forwarded_then_closed(
    name: &'static str,
    reason: &'static str,
    payload: impl Into<Vec<u8>>,
    sent: Sent,
) -> desync::Case {
    let then = Then::ForwardClose(sent);
    desync::Case {
        name,
        reason: Some(reason),
        request: payload.into(),
        then: [then; 3],
        target_sees: None,
    }
}

/// Runs payloads that defensive mode (the default) forwards and then closes after.
async fn run_forwarded_then_closed(cases: Vec<desync::Case>) {
    desync::run_cases(None, 1, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_content_length_with_transfer_encoding_is_forwarded_chunked_then_closed() {
    // BothTeClPresent (Ambiguous): ALB forwards it in defensive mode; hostalb sends it
    // chunked only and closes both connections.
    run_forwarded_then_closed(vec![
        forwarded_then_closed(
            "A1 BothTeClPresent: TE chunked then CL 5",
            "BothTeClPresent",
            post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            Sent::Chunked(b""),
        ),
        forwarded_then_closed(
            "A1 BothTeClPresent: CL then TE, smuggled request after the last chunk",
            "BothTeClPresent",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            Sent::Chunked(b""),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_several_content_lengths_are_refused() {
    let body = format!("hello{SMUGGLED}");
    run_battery(vec![
        case(
            "A2",
            "CL 5 and CL 10",
            post("Content-Length: 5\r\nContent-Length: 10\r\n", &body),
            &[400],
        ),
        case(
            "A2",
            "CL 1000,1000",
            post("Content-Length: 1000,1000\r\n", &body),
            &[400],
        ),
        case(
            "A2",
            "CL 1000 1000",
            post("Content-Length: 1000 1000\r\n", &body),
            &[400],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_the_same_content_length_twice_is_forwarded_once_then_closed() {
    // DuplicateContentLength (Ambiguous): forwarded with one Content-Length, then both
    // connections closed; the bytes after the body never become a request.
    run_forwarded_then_closed(vec![forwarded_then_closed(
        "A2 DuplicateContentLength: CL 5 twice, a request after the body",
        "DuplicateContentLength",
        post(
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            &format!("hello{SMUGGLED}"),
        ),
        Sent::Length(b"hello"),
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3_content_length_that_is_not_digits_is_refused() {
    let body = format!("0123456789abcdef{SMUGGLED}");
    let values = [
        ("+1", "Content-Length: +1\r\n"),
        ("0x10", "Content-Length: 0x10\r\n"),
        ("1abc", "Content-Length: 1abc\r\n"),
        ("empty", "Content-Length: \r\n"),
        ("-48", "Content-Length: -48\r\n"),
        ("2^64", "Content-Length: 18446744073709551616\r\n"),
        ("1_0", "Content-Length: 1_0\r\n"),
    ];
    run_battery(
        values
            .iter()
            .map(|(what, field)| case("A3", what, post(field, &body), &[400]))
            .collect(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a5_transfer_codings_other_than_chunked_are_refused() {
    // `identity` alone is a no-op coding (ALB supports chunked and identity): such a POST
    // is forwarded without a body, see desync.rs. After chunked no coding may follow.
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let te = |v: &str| format!("Transfer-Encoding: {v}\r\n");
    run_battery(vec![
        case("A5", "xchunked", post(&te("xchunked"), &body), &[501]),
        case("A5", "gzip, chunked", post(&te("gzip, chunked"), &body), &[501]),
        case(
            "A5",
            "chunked, identity",
            post(&te("chunked, identity"), &body),
            &[501],
        ),
        case("A5", ",chunked", post(&te(",chunked"), &body), &[400]),
        case(
            "A5",
            "chunked, chunked",
            post(&te("chunked, chunked"), &body),
            &[400],
        ),
        case(
            "A5",
            "two chunked fields",
            post(&format!("{}{}", te("chunked"), te("chunked")), &body),
            &[400],
        ),
        case("A5", "chunked\\x11", post(&te("chunked\x11"), &body), &[400]),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_transfer_encoding_in_http_1_0_is_forwarded_chunked_then_closed() {
    // UndefinedTransferEncodingSemantics (Ambiguous): forwarded chunked as HTTP/1.1, then
    // both connections closed.
    let payload = format!(
        "POST /p10 HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    run_forwarded_then_closed(vec![forwarded_then_closed(
        "A6 UndefinedTransferEncodingSemantics: TE in HTTP/1.0",
        "UndefinedTransferEncodingSemantics",
        payload,
        Sent::Chunked(b""),
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a7_bad_chunk_framing_is_refused() {
    let end = format!("0\r\n\r\n{SMUGGLED}");
    let bad = [
        ("size 0x1", format!("0x1\r\na\r\n{end}")),
        ("size Z", format!("Z\r\n{end}")),
        ("size 0_2e", format!("0_2e\r\n{end}")),
        ("size with a leading space", format!(" 1\r\na\r\n{end}")),
        ("empty size line", format!("\r\n{end}")),
        ("17 hex digits", format!("00000000000000001\r\na\r\n{end}")),
        ("bare LF after the size", format!("1\na\r\n{end}")),
        ("bare LF after the data", format!("1\r\na\n{end}")),
        ("CR CR in the size line", format!("2\r\r;a\r\nab\r\n{end}")),
        ("data longer than its size", format!("1\r\nabc\r\n{end}")),
        ("bad chunk after a good one", format!("1\r\na\r\nZ\r\n{end}")),
    ];
    run_battery(
        bad.iter()
            .map(|(what, chunks)| case("A7", what, chunked(chunks), &[400]))
            .collect(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_malformed_header_lines_are_refused() {
    let line = |l: &[u8]| {
        let mut p = b"GET /refused HTTP/1.1\r\nHost: example.com\r\n".to_vec();
        p.extend_from_slice(l);
        p.extend_from_slice(b"\r\n\r\n");
        p.extend_from_slice(SMUGGLED.as_bytes());
        p
    };
    run_battery(vec![
        case("A8", "no colon", line(b"Content-Length 10"), &[400]),
        case("A8", "CR in a value", line(b"X-A: a\rb"), &[400]),
        case("A8", "NUL in a value", line(b"X-A: a\x00b"), &[400]),
        case("A8", "obs-fold", line(b"X-A: a\r\n folded"), &[400]),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_look_alike_and_nameless_fields_are_dropped_then_both_connections_closed() {
    // SuspiciousHeader and EmptyHeader (Ambiguous): forwarded without the field, then both
    // connections closed. (A name with \x85 or \xa0 is NonCompliantHeader, Acceptable:
    // forwarded, see desync.rs.)
    let line = |l: &str| format!("GET /a8 HTTP/1.1\r\nHost: example.com\r\n{l}\r\n\r\n{SMUGGLED}");
    run_forwarded_then_closed(vec![
        forwarded_then_closed(
            "A8 SuspiciousHeader: space before the colon",
            "SuspiciousHeader",
            line("Content-Length : 1"),
            Sent::Nothing,
        ),
        forwarded_then_closed(
            "A8 EmptyHeader: empty name",
            "EmptyHeader",
            line(": empty"),
            Sent::Nothing,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a9_malformed_request_lines_and_hosts_are_refused() {
    let host = "Host: example.com\r\n";
    run_battery(vec![
        case(
            "A9",
            "LF inside the request line",
            format!("GET /\nHTTP/1.1\r\n{host}\r\n"),
            &[400],
        ),
        case(
            "A9",
            "BadVersion: HTTP/1.32",
            format!("GET / HTTP/1.32\r\n{host}\r\n"),
            &[400],
        ),
        case(
            "A9",
            "BadVersion: HTTP/4294967295.255",
            format!("GET / HTTP/4294967295.255\r\n{host}\r\n"),
            &[400],
        ),
        // An HTTP/0.9 request line and two spaces in the request line are
        // NonCompliantVersion and SpaceInUri (Acceptable): forwarded, see desync.rs.
        case("A9", "no Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", &[400]),
        case(
            "A9",
            "two Host",
            "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n",
            &[400],
        ),
        case(
            "A9",
            "bad character in Host",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            &[400],
        ),
        case(
            "A9",
            "userinfo in an absolute URI",
            format!("GET http://u@h.example/ HTTP/1.1\r\n{host}\r\n"),
            &[400],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_content_length_with_leading_zeros_is_forwarded_as_decimal() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let payload = b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 010\r\n\r\n0123456789";
    let (mut conn, resp) = send(alb.listener("web"), payload).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, b"0123456789");
    let got = &backend.requests()[0];
    assert_eq!(got.header_all("content-length"), vec!["10"], "{got:?}");
    assert_eq!(got.body, b"0123456789");
    // Exactly ten bytes were the body: the connection goes on with the next request.
    conn.send(&get("/next")).await.unwrap();
    let next = conn
        .read_response(scaled(Duration::from_secs(5)))
        .await
        .expect("next answer");
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(backend.request_count(), 2);
    assert_eq!(backend.requests()[1].target, "/next");
}

/// Decodes a chunked body strictly (CRLF only, hex sizes without extensions); returns the
/// data and the bytes after the last chunk, or why it is not valid.
fn strict_dechunk(mut b: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let mut data = Vec::new();
    // Each round consumes at least one size line.
    for _ in 0..=b.len() {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("no CRLF after a size in {:?}", String::from_utf8_lossy(b)))?;
        let size_text = std::str::from_utf8(&b[..line_end]).map_err(|e| e.to_string())?;
        if size_text.is_empty() || !size_text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("chunk size line {size_text:?} is not bare hex"));
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|e| e.to_string())?;
        b = &b[line_end + 2..];
        if size == 0 {
            let rest = b.strip_prefix(b"\r\n").ok_or("no CRLF after the last chunk")?;
            return Ok((data, rest));
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return Err(format!("chunk of {size} not followed by CRLF"));
        }
        data.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    Err("no last chunk".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_is_reencoded_without_extensions() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let payload = b"POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
3;ext=1\r\nabc\r\n5 ;name=\"v\"\r\ndefgh\r\nA;x\r\n0123456789\r\n0\r\n\r\n";
    let (_conn, resp) = send(alb.listener("web"), payload).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, b"abcdefgh0123456789", "echoed body");

    let raw = &backend.raw_received()[0];
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    assert!(head.contains("\r\ntransfer-encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let (data, rest) = strict_dechunk(&raw[head_end..])
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&raw[head_end..])));
    assert_eq!(data, b"abcdefgh0123456789");
    assert!(rest.is_empty(), "nothing after the body: {rest:?}");
    let body_text = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    assert!(
        !body_text.contains(';') && !body_text.contains("ext") && !body_text.contains("name="),
        "chunk extensions must be dropped: {body_text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunk_mid_body_closes_both_connections() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    // The head and the first chunk are forwarded at once.
    eventually(Duration::from_secs(3), async || {
        backend.requests().first().is_some_and(|r| r.body == b"hello")
    })
    .await;
    assert_eq!(backend.in_flight(), 1);
    conn.send(format!("zz\r\nworld\r\n0\r\n\r\n{SMUGGLED}").as_bytes())
        .await
        .unwrap();
    let resp = conn.read_response(scaled(Duration::from_secs(5))).await;
    let resp = resp.unwrap_or_else(|| panic!("no answer to the bad chunk: {conn:?}"));
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"));
    assert_closed_after(&mut conn, &resp).await;

    // The target's request was aborted and its connection closed, not kept for reuse.
    eventually(Duration::from_secs(3), async || {
        backend.open_connections() == 0 && backend.in_flight() == 0
    })
    .await;
    let first = &backend.requests()[0];
    assert!(
        !first.complete,
        "the target must not see a complete body: {first:?}"
    );
    assert_eq!(
        backend.request_count(),
        1,
        "nothing after the bad chunk was forwarded"
    );

    let (_c, ok) = send(alb.listener("web"), &get("/after")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(backend.connections(), 2, "a fresh target connection");
    assert_eq!(backend.requests()[1].connection, 1);
    assert!(
        backend.requests().iter().all(|r| r.target != "/smuggled"),
        "{:?}",
        backend.requests()
    );
    expect_metric(&alb, "hostalb_elb_answers_total", &[("code", "400")], 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a10_pipelined_post_and_get_arrive_as_two_requests_in_order() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    // The POST body looks like a request: it must stay a body.
    let body = SMUGGLED;
    let payload = format!(
        "POST /first HTTP/1.1\r\nHost: example.com\r\nContent-Length: {}\r\n\r\n{body}GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n",
        body.len()
    );
    conn.send(payload.as_bytes()).await.unwrap();
    let one = conn
        .read_response(scaled(Duration::from_secs(5)))
        .await
        .expect("first answer");
    let two = conn
        .read_response(scaled(Duration::from_secs(5)))
        .await
        .expect("second answer");
    assert_eq!((one.status, two.status), (200, 200), "{one:?} {two:?}");
    assert_eq!(one.reply().unwrap().target, "/first");
    assert_eq!(one.reply().unwrap().body_len, body.len());
    assert_eq!(two.reply().unwrap().target, "/second");

    let got = backend.requests();
    assert_eq!(got.len(), 2, "exactly two requests: {got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].target.as_str()),
        ("POST", "/first")
    );
    assert_eq!(got[0].body, body.as_bytes());
    assert_eq!(got[0].header_all("content-length"), vec![body.len().to_string()]);
    assert!(got[0].complete);
    assert_eq!(
        (got[1].method.as_str(), got[1].target.as_str()),
        ("GET", "/second")
    );
    assert!(got[1].body.is_empty());
    assert!(got.iter().all(|r| r.target != "/smuggled"));
    // Well-formed on the wire: the raw bytes are exactly the two forwarded requests.
    let raw = backend.raw_received().concat();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(
        text.matches(" HTTP/1.1\r\n").count(),
        3,
        "two heads plus the body's text: {text}"
    );
    assert!(text.starts_with("POST /first HTTP/1.1\r\n"), "{text}");
}

/// A target that answered with broken framing gets a 502 for its client, and its
/// connection is never used again.
async fn check_bad_response_not_reused(answer: &[u8], what: &str) {
    let raw = RawBackend::start(RawBehaviour::Respond(answer.to_vec())).await;
    let alb = start(&forward_config(&[raw.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(&get("/bad")).await.unwrap();
    let resp = conn.read_response(scaled(Duration::from_secs(5))).await;
    let resp = resp.unwrap_or_else(|| panic!("{what}: no answer: {conn:?}"));
    assert_eq!(resp.status, 502, "{what}: {resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{what}: {resp:?}");
    assert_eq!(raw.connections(), 1);
    expect_metric(&alb, "hostalb_httpcode_elb_502_total", &[], 1.0).await;

    // The same target now answers well, on new connections only: a reused connection
    // would still get the broken answer.
    raw.set_behaviour(RawBehaviour::Respond(OK_ANSWER.to_vec()));
    let (_c, ok) = send(alb.listener("web"), &get("/next")).await;
    assert_eq!(
        ok.status, 200,
        "{what}: the next request must use a new connection: {ok:?}"
    );
    assert_eq!(raw.connections(), 2, "{what}: a new upstream connection");
    let received = raw.received();
    assert!(received[1].starts_with(b"GET /next HTTP/1.1\r\n"), "{what}");
    assert!(
        !String::from_utf8_lossy(&received[0]).contains("/next"),
        "{what}: the broken connection was reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_response_with_content_length_and_chunked_is_502_and_not_reused() {
    check_bad_response_not_reused(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "CL+TE",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_response_with_two_content_lengths_is_502_and_not_reused() {
    check_bad_response_not_reused(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "two CL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_response_with_a_bad_chunk_is_502_and_not_reused() {
    check_bad_response_not_reused(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "bad chunk",
    )
    .await;
}

/// A target whose first connection answers a good head and first chunk, then, in a later
/// write, a broken chunk; later connections answer [`OK_ANSWER`]. Returns its address, the
/// number of connections it accepted, and its task (abort it to stop).
async fn late_bad_chunk_target() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        // Bounded: a test needs two connections; the task is aborted at its end.
        for n in 0..8 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                // Bounded by the timeout: a connection lives at most 10 s here.
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Ok(k) = stream.read(&mut buf).await {
                        if k == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..k]);
                        if !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        seen.clear();
                        if n > 0 {
                            let _ = stream.write_all(OK_ANSWER).await;
                            continue;
                        }
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                            .await;
                        // A separate write, so the head and first chunk are relayed first.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let _ = stream.write_all(b"zz\r\nworld\r\n0\r\n\r\n").await;
                    }
                })
                .await;
            });
        }
    });
    (addr, accepted, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_bad_chunk_after_the_head_truncates_the_response_and_is_not_reused() {
    let (target, accepted, task) = late_bad_chunk_target().await;
    let alb = start(&forward_config(&[target], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(&get("/late")).await.unwrap();
    assert!(
        conn.wait_closed(scaled(Duration::from_secs(5))).await,
        "the client connection must be cut: {conn:?}"
    );
    let responses = parse_responses(conn.received());
    assert_eq!(responses.len(), 1, "{responses:?}");
    let resp = &responses[0];
    assert_eq!(resp.status, 200, "the head was already relayed: {resp:?}");
    assert!(resp.chunked, "{resp:?}");
    assert!(!resp.complete, "a broken body must never look complete: {resp:?}");
    assert_eq!(resp.body, b"hello", "{resp:?}");

    let (_c, ok) = send(alb.listener("web"), &get("/next")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        ok.header("x-raw"),
        Some("yes"),
        "answered on a new connection: {ok:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the broken connection was not reused"
    );
    task.abort();
}
