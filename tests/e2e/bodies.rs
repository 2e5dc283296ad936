//! Large bodies through the real binary: a 32 MiB chunked upload arrives whole, in the
//! chunks it was sent in; a client that does not read its large response, and one that
//! reads a large response as fast as it can, do not keep another client of the same
//! worker from being answered.

use std::hash::Hasher;
use std::net::SocketAddr;
use std::time::Duration;

use hostalb_testkit::{Backend, HostAlb, RawConn, scaled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::bin;
use crate::errors::forward_config;

/// Bound on one response or one whole large body.
const PATIENCE: Duration = Duration::from_secs(30);

/// hostalb with one worker, so every connection of a test shares it, in front of `backend`.
async fn one_worker(backend: &Backend) -> HostAlb {
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n{}",
        forward_config(&[backend.addr()], "")
    );
    HostAlb::builder(bin()).config(config).workers(1).start().await
}

/// A body of `len` bytes (byte `i` is `i % 251`) in chunks of `sizes`, repeated.
fn chunked_body(len: usize, sizes: &[usize]) -> (Vec<u8>, Vec<usize>, u64) {
    let mut framed = Vec::with_capacity(len + 4096);
    let mut sent_sizes = Vec::new();
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at == len {
            break;
        }
        let n = size.min(len - at);
        framed.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        let data: Vec<u8> = (at..at + n).map(|i| (i % 251) as u8).collect();
        hash.write(&data);
        framed.extend_from_slice(&data);
        framed.extend_from_slice(b"\r\n");
        sent_sizes.push(n);
        at += n;
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    (framed, sent_sizes, hash.finish())
}

/// The chunk sizes of the chunked body that starts `raw` (after its head).
fn chunk_sizes(raw: &[u8]) -> Vec<usize> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut at = find(raw, b"\r\n\r\n").expect("a request head") + 4;
    let mut sizes = Vec::new();
    // Bounded by the body's length: every step consumes at least a size line.
    while at < raw.len() {
        let nl = at + find(&raw[at..], b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[at..nl]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        sizes.push(size);
        at = nl + 2 + size + 2;
    }
    sizes
}

#[tokio::test]
async fn a_32_mib_chunked_upload_arrives_whole_in_the_chunks_it_was_sent_in() {
    const LEN: usize = 32 << 20;
    let backend = Backend::builder()
        .name("sink")
        .max_raw_bytes(LEN + (1 << 20))
        .start()
        .await;
    let alb = one_worker(&backend).await;
    // Large chunks, a few odd small ones between them.
    let (framed, sent_sizes, hash) = chunked_body(LEN, &[1 << 20, 7, 300_000, 65_536, 3 << 20]);
    let mut request =
        b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&framed);

    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(&request).await.unwrap();
    let resp = conn
        .read_response(scaled(PATIENCE))
        .await
        .expect("an answer to the upload");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.reply().expect("the backend's reply").body_len, LEN);

    let requests = backend.requests();
    let got = requests.last().expect("the upload reached the backend");
    let mut got_hash = std::collections::hash_map::DefaultHasher::new();
    got_hash.write(&got.body);
    assert!(got_hash.finish() == hash, "the body that arrived differs");
    let raw = backend.raw_received();
    let raw = raw
        .iter()
        .find(|r| r.starts_with(b"POST /upload"))
        .expect("the raw upload");
    assert_eq!(
        chunk_sizes(raw),
        sent_sizes,
        "chunks were cut or merged on the way"
    );

    // The connection goes on: a next request is answered.
    conn.send(b"GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    let resp = conn
        .read_response(scaled(PATIENCE))
        .await
        .expect("an answer after the upload");
    assert_eq!(resp.status, 200, "{resp:?}");
}

/// Reads a response head from `s` and returns its Content-Length and the body bytes read
/// with it.
async fn read_head(s: &mut TcpStream) -> (usize, usize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let limit = tokio::time::Instant::now() + scaled(PATIENCE);
    loop {
        let n = tokio::time::timeout_at(limit, s.read(&mut buf))
            .await
            .expect("a response head in time")
            .unwrap();
        assert!(n > 0, "closed before a response head");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..i]).to_ascii_lowercase();
            assert!(text.starts_with("http/1.1 200"), "{text}");
            let len = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            return (len, head.len() - i - 4);
        }
        assert!(head.len() < 64 * 1024, "response head too long");
    }
}

/// Reads the rest of a body of `len` bytes of which `got` arrived; returns the total.
async fn read_rest(s: &mut TcpStream, len: usize, mut got: usize) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    timeout(scaled(PATIENCE), async {
        while got < len {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
    })
    .await
    .expect("the whole body in time");
    got
}

/// `count` small requests on one keep-alive connection, each answered by the backend.
async fn small_requests_answered(addr: SocketAddr, count: usize) {
    let mut conn = RawConn::connect(addr).await.unwrap();
    for i in 0..count {
        conn.send(format!("GET /small/{i} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let resp = conn
            .read_response(scaled(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|| panic!("small request {i} got no answer"));
        assert_eq!(resp.status, 200, "small request {i}: {resp:?}");
        assert_eq!(resp.reply().expect("a backend reply").path, format!("/small/{i}"));
    }
}

#[tokio::test]
async fn a_reader_that_stalls_and_one_that_reads_fast_do_not_hold_up_small_requests() {
    const STALLED: usize = 16 << 20;
    const FAST: usize = 64 << 20;
    let backend = Backend::start("app").await;
    let alb = one_worker(&backend).await;
    let addr = alb.listener("web");

    // A client that asks for a large body and then reads nothing.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(format!("GET /bytes/{STALLED} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (len, got) = read_head(&mut stalled).await;
    assert_eq!(len, STALLED);

    // A client that reads a larger body as fast as it can, at the same time.
    let fast = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /bytes/{FAST} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (len, got) = read_head(&mut s).await;
        (len, read_rest(&mut s, len, got).await)
    });

    // Meanwhile another client's small requests are answered, one after the other.
    small_requests_answered(addr, 20).await;

    let (len, read) = fast.await.unwrap();
    assert_eq!((len, read), (FAST, FAST), "the fast reader's body");
    // The stalled client can still read its whole body.
    assert_eq!(read_rest(&mut stalled, STALLED, got).await, STALLED);
    small_requests_answered(addr, 2).await;
}
