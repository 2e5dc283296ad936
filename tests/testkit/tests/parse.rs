//! `parse_responses` handles the framings a proxy can answer with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hostalb_testkit::parse_responses;

#[test]
fn pipelined_content_length_and_chunked() {
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;e=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let r = parse_responses(bytes);
    assert_eq!(r.len(), 4);
    assert_eq!((r[0].status, r[0].body.as_slice()), (200, &b"abc"[..]));
    assert_eq!(r[0].header("x-a"), Some("1"));
    assert_eq!(r[1].status, 404);
    assert_eq!(r[1].reason, "Not Found");
    assert_eq!(r[1].text(), "wikipedia");
    assert!(r[1].chunked && r[1].complete);
    assert_eq!(r[2].status, 204);
    assert!(r[2].body.is_empty());
    assert_eq!(r[3].status, 502);
    assert!(r[3].closes());
    assert!(r.iter().all(|x| x.complete));
}

#[test]
fn body_until_close_and_http10() {
    let r = parse_responses(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\neverything to the end");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].version, "HTTP/1.0");
    assert_eq!(r[0].text(), "everything to the end");
    assert!(r[0].complete);
}

#[test]
fn interim_continue_is_its_own_response() {
    let r = parse_responses(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno",
    );
    let statuses: Vec<u16> = r.iter().map(|x| x.status).collect();
    assert_eq!(statuses, [100, 413]);
}

#[test]
fn truncated_bodies_are_marked_incomplete() {
    let r = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(r.len(), 1);
    assert!(!r[0].complete);
    assert_eq!(r[0].body, b"abc");

    let r = parse_responses(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert!(!r[0].complete);
    assert_eq!(r[0].body, b"hello");
}

#[test]
fn garbage_and_empty_input() {
    assert!(parse_responses(b"").is_empty());
    assert!(parse_responses(b"not http at all\r\n\r\n").is_empty());
    let r = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxGARBAGE");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body, b"x");
}
