//! ALB's access log (alb-spec §6): one entry per request, every field in ALB's order with
//! ALB's quoting and its `-` / `-1` conventions, or the same fields named in a JSON object.
//!
//! Entries are formatted on the request path into a buffer of the worker thread that
//! serves the request (an uncontended lock, no allocation once warm, no wakeup of another
//! thread per entry). A writer thread swaps those buffers out every `FLUSH_EVERY`, or as
//! soon as one fills past `HANDOFF_AT`, and writes them with one system call each: a
//! request never waits for the disk. A buffer the writer has not emptied by
//! `MAX_BUFFERED` (the disk cannot keep up) drops further entries and counts them, never
//! grows without bound. `reopen` (SIGUSR1) makes the writer open the path again before
//! its next write, so logrotate can move the file away.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hostalb_config::{AccessLog as LogConfig, AccessLogFormat};

use crate::clock;
use crate::data::conn::Record;
use crate::data::tls::TlsInfo;
use crate::http1::Version;
use crate::http1::request::RequestHead;
use crate::model::arn;

/// The writer empties the threads' buffers this often: entries reach the file within
/// about this long (nginx's `flush=` plays the same part).
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A thread's buffer this full wakes the writer at once (one wakeup per ~200 entries).
const HANDOFF_AT: usize = 64 * 1024;
/// A thread's buffer this full means the writer is behind: further entries are dropped
/// and counted until it catches up (bounds memory at a few megabytes per thread).
const MAX_BUFFERED: usize = 4 * 1024 * 1024;
/// The writer's own buffer in front of the file.
const WRITE_BUFFER: usize = 64 * 1024;

/// Tells each log apart in the threads' buffers (a reload may replace the log).
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// One worker thread's pending entries, shared with the writer, which swaps them out.
type ThreadBuffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    /// This thread's buffer, and the log it belongs to.
    static LOCAL: RefCell<Option<(u64, ThreadBuffer)>> = const { RefCell::new(None) };
}

/// A running access log: where entries go and how they are written.
#[derive(Debug)]
pub(crate) struct AccessLog {
    config: LogConfig,
    id: u64,
    /// Every thread's buffer for this log.
    buffers: Arc<Mutex<Vec<ThreadBuffer>>>,
    /// Wakes the writer early (a buffer filled); dropping it ends the writer.
    wake: SyncSender<()>,
    /// `app/<name>/<id>`, the `elb` field.
    elb: String,
    reopen: Arc<AtomicBool>,
}

/// What one entry says, gathered at the end of a request.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) tls: bool,
    /// The client's TLS session on an HTTPS listener.
    pub(crate) tls_info: Option<&'a TlsInfo>,
    pub(crate) client: SocketAddr,
    /// The listener port the client connected to (the `request` field's port).
    pub(crate) local_port: u16,
    /// `None` when the head was refused before it parsed.
    pub(crate) head: Option<&'a RequestHead>,
    pub(crate) rec: &'a Record,
    pub(crate) received_bytes: u64,
    pub(crate) sent_bytes: u64,
    /// The connection's id (`conn_trace_id`).
    pub(crate) conn_trace: u128,
    /// The protocol the request came in.
    pub(crate) protocol: Protocol,
}

/// The client's protocol, as the entry's `type` and request line say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.x (`http`, `https`, `ws`, `wss`).
    Http1,
    /// HTTP/2 over TLS (`h2`).
    H2,
    /// gRPC over HTTP/2 over TLS (`grpcs`).
    Grpc,
}

impl AccessLog {
    /// Opens the log's destination now, so that a path that cannot be written is an error
    /// when the configuration is loaded, and starts its writer.
    pub(crate) fn open(config: &LogConfig) -> io::Result<Arc<AccessLog>> {
        let sink = Sink::open(config.path.as_deref())?;
        let (wake, rx) = sync_channel(1);
        let reopen = Arc::new(AtomicBool::new(false));
        let buffers: Arc<Mutex<Vec<ThreadBuffer>>> = Arc::default();
        let writer = Writer {
            path: config.path.clone(),
            sink,
            reopen: reopen.clone(),
            buffers: buffers.clone(),
            spare: Vec::new(),
        };
        std::thread::Builder::new()
            .name("hostalb-access-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(AccessLog {
            config: config.clone(),
            id: NEXT_LOG_ID.fetch_add(1, Relaxed),
            buffers,
            wake,
            elb: arn::lb_dimension(),
            reopen,
        }))
    }

    /// The configuration this log was opened with (a reload keeps the log when equal).
    pub(crate) fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Opens the file again before the next write (after logrotate moved it).
    pub(crate) fn reopen(&self) {
        self.reopen.store(true, Relaxed);
    }

    /// Formats `entry` into this thread's buffer; never waits for the disk. An entry the
    /// writer has no room for is counted in `dropped`.
    pub(crate) fn write(&self, entry: &Entry<'_>, dropped: &AtomicU64) {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let buffer = match &*local {
                Some((id, b)) if *id == self.id => b,
                _ => {
                    let b = ThreadBuffer::default();
                    lock(&self.buffers).push(b.clone());
                    &local.insert((self.id, b)).1
                }
            };
            let mut out = lock(buffer);
            if out.len() >= MAX_BUFFERED {
                dropped.fetch_add(1, Relaxed);
                return;
            }
            let fields = Fields::of(entry, &self.elb);
            match self.config.format {
                AccessLogFormat::Alb => fields.write_alb(&mut out),
                AccessLogFormat::Json => fields.write_json(&mut out),
            }
            out.push(b'\n');
            if out.len() >= HANDOFF_AT {
                // Full (a wakeup is already pending) is fine: the writer is on its way.
                let _ = self.wake.try_send(());
            }
        });
    }
}

/// Locks a buffer; a panic elsewhere while it was held leaves bytes that are still bytes.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the writer writes.
enum Sink {
    File(BufWriter<File>),
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    fn open(path: Option<&Path>) -> io::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout(BufWriter::with_capacity(WRITE_BUFFER, io::stdout())),
            Some(p) => {
                let file = OpenOptions::new().create(true).append(true).open(p)?;
                Sink::File(BufWriter::with_capacity(WRITE_BUFFER, file))
            }
        })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::File(w) => w,
            Sink::Stdout(w) => w,
        }
    }
}

struct Writer {
    path: Option<std::path::PathBuf>,
    sink: Sink,
    reopen: Arc<AtomicBool>,
    buffers: Arc<Mutex<Vec<ThreadBuffer>>>,
    /// An empty buffer to swap in, keeping the allocations in use.
    spare: Vec<u8>,
}

impl Writer {
    /// Writes until every sender is gone (the log was replaced or hostalb stops), then
    /// flushes what is left.
    fn run(mut self, rx: Receiver<()>) {
        loop {
            let last = match rx.recv_timeout(FLUSH_EVERY) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            if self.reopen.swap(false, Relaxed) {
                self.flush();
                match Sink::open(self.path.as_deref()) {
                    Ok(sink) => self.sink = sink,
                    Err(e) => {
                        tracing::warn!(error = %e, "access log: cannot reopen; writing on to the old file")
                    }
                }
            }
            self.drain();
            if last {
                return;
            }
        }
    }

    /// Swaps every thread's buffer out and writes what they held.
    fn drain(&mut self) {
        let buffers: Vec<ThreadBuffer> = lock(&self.buffers).clone();
        let mut wrote = false;
        for b in buffers {
            {
                let mut held = lock(&b);
                if held.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *held, &mut self.spare);
            }
            let pending = std::mem::take(&mut self.spare);
            self.put(&pending);
            self.spare = pending;
            self.spare.clear();
            wrote = true;
        }
        if wrote {
            self.flush();
        }
    }

    fn put(&mut self, line: &[u8]) {
        if let Err(e) = self.sink.out().write_all(line) {
            tracing::warn!(error = %e, "access log: write failed; entry lost");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.sink.out().flush() {
            tracing::warn!(error = %e, "access log: flush failed");
        }
    }
}

/// One entry's fields, each as ALB writes it.
struct Fields<'a> {
    entry: &'a Entry<'a>,
    elb: &'a str,
    now: SystemTime,
}

/// A duration field: seconds with millisecond precision, `-1` when the step never
/// happened.
fn seconds(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64()),
        _ => None,
    }
}

impl<'a> Fields<'a> {
    fn of(entry: &'a Entry<'a>, elb: &'a str) -> Fields<'a> {
        Fields {
            entry,
            elb,
            now: SystemTime::now(),
        }
    }

    fn rec(&self) -> &Record {
        self.entry.rec
    }

    fn kind(&self) -> &'static str {
        match self.entry.protocol {
            Protocol::H2 => return "h2",
            Protocol::Grpc => return "grpcs",
            Protocol::Http1 => {}
        }
        match (self.entry.tls, self.rec().target_status == Some(101)) {
            (false, false) => "http",
            (true, false) => "https",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    /// request, target and response processing times; all `-1` when no request was
    /// dispatched to a target. For a WebSocket (`ws`, `wss`) they are the upgrade's, as
    /// ALB logs them; its entry is written when the connection closes, so `time` minus
    /// `request_creation_time` is how long it lasted, and the byte counts are the whole
    /// connection's.
    fn times(&self) -> [Option<f64>; 3] {
        let r = self.rec();
        if r.dispatched.is_none() {
            return [None; 3];
        }
        [
            seconds(r.received, r.dispatched),
            seconds(r.dispatched, r.answered),
            seconds(r.answered, r.replied),
        ]
    }

    /// The request line as ALB logs it: `METHOD scheme://host:port/uri HTTP/x`.
    fn request(&self, out: &mut Vec<u8>) {
        let Some(head) = self.entry.head else {
            out.extend_from_slice(b"- - - ");
            return;
        };
        escaped(out, head.method());
        out.extend_from_slice(if self.entry.tls { b" https://" } else { b" http://" });
        let host = head
            .host()
            .map(crate::model::rules::host_without_port)
            .unwrap_or_default();
        if host.is_empty() {
            out.push(b'-');
        } else {
            for b in host {
                out.push(b.to_ascii_lowercase());
            }
        }
        let _ = write!(out, ":{}", self.entry.local_port);
        escaped(out, head.path());
        if let Some(q) = head.query() {
            out.push(b'?');
            escaped(out, q);
        }
        out.extend_from_slice(match (self.entry.protocol, head.version) {
            (Protocol::H2 | Protocol::Grpc, _) => b" HTTP/2.0",
            (Protocol::Http1, Version::Http10) => b" HTTP/1.0",
            (Protocol::Http1, Version::Http11) => b" HTTP/1.1",
        });
    }

    fn user_agent(&self) -> Option<&[u8]> {
        self.entry.head.and_then(|h| h.values_named(b"user-agent").next())
    }

    fn trace_id(&self) -> Option<&[u8]> {
        self.rec().trace_id.as_deref().or_else(|| {
            self.entry
                .head
                .and_then(|h| h.values_named(b"x-amzn-trace-id").next())
        })
    }

    /// `matched_rule_priority`: the rule's priority, 0 for the default action, -1 when
    /// the rules were never evaluated (the request was refused first).
    fn rule(&self) -> i64 {
        match (self.rec().action, self.rec().rule) {
            ("", _) => -1,
            (_, Some(p)) => i64::from(p),
            (_, None) => 0,
        }
    }

    /// `target:port_list`: the target that answered. A retried request's first target is
    /// left out (it is in the debug log): the Athena table reads one address here.
    fn targets(&self, out: &mut Vec<u8>) {
        match self.rec().target {
            Some(t) => {
                let _ = write!(out, "{t}");
            }
            None => out.push(b'-'),
        }
    }

    fn write_alb(&self, out: &mut Vec<u8>) {
        let r = self.rec();
        out.extend_from_slice(self.kind().as_bytes());
        out.push(b' ');
        clock::write_iso8601_micros(out, self.now);
        let _ = write!(out, " {} {} ", self.elb, self.entry.client);
        match r.target {
            Some(t) => {
                let _ = write!(out, "{t}");
            }
            None => out.push(b'-'),
        }
        for t in self.times() {
            out.push(b' ');
            match t {
                Some(s) => write_seconds(out, s),
                None => out.extend_from_slice(b"-1"),
            }
        }
        out.push(b' ');
        write_u64(out, u64::from(r.status));
        out.push(b' ');
        match r.target_status {
            Some(s) => write_u64(out, u64::from(s)),
            None => out.push(b'-'),
        }
        out.push(b' ');
        write_u64(out, self.entry.received_bytes);
        out.push(b' ');
        write_u64(out, self.entry.sent_bytes);
        out.extend_from_slice(b" \"");
        self.request(out);
        out.extend_from_slice(b"\" \"");
        quoted_or_dash(out, self.user_agent());
        out.extend_from_slice(b"\" ");
        let tls = self.entry.tls_info;
        out.extend_from_slice(tls.map_or("-", |t| t.cipher).as_bytes());
        out.push(b' ');
        out.extend_from_slice(tls.map_or("-", |t| t.protocol).as_bytes());
        out.push(b' ');
        match (&r.group_arn, &r.group) {
            (Some(a), _) => out.extend_from_slice(a.as_bytes()),
            (None, Some(g)) => out.extend_from_slice(arn::group_arn(g).as_bytes()),
            (None, None) => out.push(b'-'),
        }
        out.extend_from_slice(b" \"");
        quoted_or_dash(out, self.trace_id());
        out.extend_from_slice(b"\" \"");
        quoted_or_dash(out, tls.and_then(|t| t.sni.as_deref()).map(str::as_bytes));
        out.extend_from_slice(b"\" \"");
        quoted_or_dash(out, tls.map(|t| t.cert_arn.as_bytes()));
        out.extend_from_slice(b"\" ");
        let _ = write!(out, "{} ", self.rule());
        clock::write_iso8601_micros(out, r.created.unwrap_or(self.now));
        out.extend_from_slice(b" \"");
        out.extend_from_slice(if r.action.is_empty() {
            b"-"
        } else {
            r.action.as_bytes()
        });
        out.extend_from_slice(b"\" \"");
        quoted_or_dash(out, r.redirect.as_deref());
        // error_reason: ALB documents its values for authenticate and Lambda actions only,
        // which hostalb has not; its own reasons are in the operators' log and in
        // `hostalb_elb_answers_total`.
        out.extend_from_slice(b"\" \"-\" \"");
        self.targets(out);
        out.extend_from_slice(b"\" \"");
        match r.target_status {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.push(b'-'),
        }
        out.extend_from_slice(b"\" \"");
        let (class, reason) = r.desync.unwrap_or(("-", "-"));
        let _ = write!(out, "{class}\" \"{reason}\" TID_{:032x}", self.entry.conn_trace);
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let r = self.rec();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let mut time = Vec::with_capacity(32);
        clock::write_iso8601_micros(&mut time, self.now);
        let mut created = Vec::with_capacity(32);
        clock::write_iso8601_micros(&mut created, r.created.unwrap_or(self.now));
        let mut request = Vec::with_capacity(128);
        self.request(&mut request);
        let mut targets = Vec::with_capacity(64);
        self.targets(&mut targets);
        let [req_t, target_t, resp_t] = self
            .times()
            .map(|t| t.map(|s| (s * 1000.0).round() / 1000.0).unwrap_or(-1.0));
        let value = serde_json::json!({
            "type": self.kind(),
            "time": text(Some(&time)),
            "elb": self.elb,
            "client:port": self.entry.client.to_string(),
            "target:port": r.target.map(|t| t.to_string()),
            "request_processing_time": req_t,
            "target_processing_time": target_t,
            "response_processing_time": resp_t,
            "elb_status_code": r.status,
            "target_status_code": r.target_status,
            "received_bytes": self.entry.received_bytes,
            "sent_bytes": self.entry.sent_bytes,
            "request": text(Some(&request)),
            "user_agent": text(self.user_agent()),
            "ssl_cipher": self.entry.tls_info.map(|t| t.cipher),
            "ssl_protocol": self.entry.tls_info.map(|t| t.protocol),
            "target_group_arn": r.group.as_deref().map(arn::group_arn),
            "trace_id": text(self.trace_id()),
            "domain_name": self.entry.tls_info.and_then(|t| t.sni.as_deref()),
            "chosen_cert_arn": self.entry.tls_info.map(|t| &*t.cert_arn),
            "matched_rule_priority": self.rule(),
            "request_creation_time": text(Some(&created)),
            "actions_executed": (!r.action.is_empty()).then_some(r.action),
            "redirect_url": text(r.redirect.as_deref()),
            "error_reason": None::<String>,
            "target:port_list": (targets != b"-").then(|| String::from_utf8_lossy(&targets).into_owned()),
            "target_status_code_list": r.target_status.map(|s| s.to_string()),
            "classification": r.desync.map(|d| d.0),
            "classification_reason": r.desync.map(|d| d.1),
            "conn_trace_id": format!("TID_{:032x}", self.entry.conn_trace),
        });
        let _ = serde_json::to_writer(&mut *out, &value);
    }
}

/// Appends seconds with millisecond precision (`0.012`), without the float formatter.
fn write_seconds(out: &mut Vec<u8>, s: f64) {
    let ms = (s * 1000.0).round().max(0.0) as u64;
    write_u64(out, ms / 1000);
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Appends the decimal digits of `n`.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `b` with `"`, `\` and bytes outside printable ASCII written as `\xHH`, so a
/// quoted field always ends at its closing quote.
fn escaped(out: &mut Vec<u8>, b: &[u8]) {
    for &c in b {
        if c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c) {
            let _ = write!(out, "\\x{c:02x}");
        } else {
            out.push(c);
        }
    }
}

fn quoted_or_dash(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(v) if !v.is_empty() => escaped(out, v),
        _ => out.push(b'-'),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use bytes::BytesMut;

    use super::*;
    use crate::http1::request;

    /// The regular expression of AWS's Athena table for ALB access logs (with the
    /// classification and conn_trace_id columns): what ALB users parse their logs with.
    const ATHENA: &str = concat!(
        r#"^([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*):([0-9]*) ([^ ]*)[:-]([0-9]*) ([-.0-9]*) ([-.0-9]*) ([-.0-9]*) "#,
        r#"(|[-0-9]*) (-|[-0-9]*) ([-0-9]*) ([-0-9]*) "([^ ]*) (.*) (- |[^ ]*)" "([^"]*)" "#,
        r#"([A-Z0-9_-]+) ([A-Za-z0-9.-]*) ([^ ]*) "([^"]*)" "([^"]*)" "([^"]*)" ([-.0-9]*) ([^ ]*) "#,
        r#""([^"]*)" "([^"]*)" "([^ ]*)" "([^\s]+?)" "([^\s]+)" "([^ ]*)" "([^ ]*)" ?([^ ]*)?( .*)?$"#
    );

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        match request::parse(&mut buf) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn line(entry: &Entry<'_>, format: AccessLogFormat) -> String {
        let fields = Fields::of(entry, "app/hostalb/0123456789abcdef");
        let mut out = Vec::new();
        match format {
            AccessLogFormat::Alb => fields.write_alb(&mut out),
            AccessLogFormat::Json => fields.write_json(&mut out),
        }
        String::from_utf8(out).expect("utf-8")
    }

    fn forwarded() -> Record {
        let t0 = Instant::now();
        Record {
            status: 200,
            target: Some("127.0.0.1:9001".parse().expect("addr")),
            target_status: Some(200),
            group: Some("api".into()),
            rule: Some(10),
            action: "forward",
            created: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_543_616_568)),
            received: Some(t0),
            dispatched: Some(t0 + Duration::from_micros(400)),
            answered: Some(t0 + Duration::from_millis(12)),
            replied: Some(t0 + Duration::from_millis(12)),
            trace_id: Some(b"Root=1-58337364-23a8c76965a2ef7629b185e3".as_slice().into()),
            ..Record::default()
        }
    }

    fn entry<'a>(head: Option<&'a RequestHead>, rec: &'a Record) -> Entry<'a> {
        Entry {
            tls: false,
            tls_info: None,
            client: "192.168.131.39:2817".parse::<SocketAddr>().expect("addr"),
            local_port: 80,
            head,
            rec,
            received_bytes: 34,
            sent_bytes: 366,
            conn_trace: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            protocol: Protocol::Http1,
        }
    }

    #[test]
    fn a_forwarded_request_is_one_alb_line_that_athena_parses() {
        let h = head("GET /a/b?x=1 HTTP/1.1\r\nHost: WWW.Example.com\r\nUser-Agent: curl/8.0 \"q\"\r\n\r\n");
        let rec = forwarded();
        let text = line(&entry(Some(&h), &rec), AccessLogFormat::Alb);
        let re = regex::Regex::new(ATHENA).expect("regex");
        let caps = re
            .captures(&text)
            .unwrap_or_else(|| panic!("Athena's regex does not parse:\n{text}"));
        let field = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
        assert_eq!(field(1), "http");
        assert_eq!(field(3), "app/hostalb/0123456789abcdef");
        assert_eq!((field(4), field(5)), ("192.168.131.39", "2817"));
        assert_eq!((field(6), field(7)), ("127.0.0.1", "9001"));
        assert_eq!((field(8), field(9), field(10)), ("0.000", "0.012", "0.000"));
        assert_eq!(
            (field(11), field(12), field(13), field(14)),
            ("200", "200", "34", "366")
        );
        assert_eq!(
            (field(15), field(16), field(17)),
            ("GET", "http://www.example.com:80/a/b?x=1", "HTTP/1.1")
        );
        assert_eq!(field(18), r"curl/8.0 \x22q\x22", "quotes never end the field");
        assert_eq!((field(19), field(20)), ("-", "-"));
        assert!(
            field(21).starts_with("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/api/")
        );
        assert_eq!(field(22), "Root=1-58337364-23a8c76965a2ef7629b185e3");
        assert_eq!(field(25), "10", "matched_rule_priority");
        assert_eq!(field(26), "2018-11-30T22:22:48.000000Z");
        assert_eq!((field(27), field(28), field(29)), ("forward", "-", "-"));
        assert_eq!((field(30), field(31)), ("127.0.0.1:9001", "200"));
        assert_eq!((field(32), field(33)), ("-", "-"));
        assert_eq!(field(34), "TID_0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn an_upgraded_connection_is_ws_or_wss() {
        let h = head("GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        let rec = Record {
            status: 101,
            target_status: Some(101),
            ..forwarded()
        };
        let mut e = entry(Some(&h), &rec);
        let text = line(&e, AccessLogFormat::Alb);
        assert!(text.starts_with("ws "), "{text}");
        assert!(text.contains(" 101 101 34 366 "), "{text}");
        e.tls = true;
        assert!(line(&e, AccessLogFormat::Alb).starts_with("wss "));
        let v: serde_json::Value = serde_json::from_str(&line(&e, AccessLogFormat::Json)).expect("json");
        assert_eq!(v["type"], "wss");
    }

    #[test]
    fn a_retried_request_names_only_the_target_that_answered() {
        let h = head("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        let rec = Record {
            retried_from: Some("127.0.0.1:9002".parse().expect("addr")),
            ..forwarded()
        };
        let text = line(&entry(Some(&h), &rec), AccessLogFormat::Alb);
        let re = regex::Regex::new(ATHENA).expect("regex");
        let caps = re
            .captures(&text)
            .unwrap_or_else(|| panic!("not parsed:\n{text}"));
        assert_eq!(caps.get(30).map(|m| m.as_str()), Some("127.0.0.1:9001"));
    }

    #[test]
    fn answers_without_a_target_use_dash_and_minus_one() {
        let h = head("GET /old HTTP/1.1\r\nHost: h.example\r\n\r\n");
        let rec = Record {
            status: 301,
            rule: None,
            action: "redirect",
            redirect: Some(b"https://h.example:443/old".as_slice().into()),
            ..Record::default()
        };
        let text = line(&entry(Some(&h), &rec), AccessLogFormat::Alb);
        let re = regex::Regex::new(ATHENA).expect("regex");
        let caps = re
            .captures(&text)
            .unwrap_or_else(|| panic!("not parsed:\n{text}"));
        let field = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
        assert_eq!(field(6), "", "no target: `-`");
        assert_eq!((field(8), field(9), field(10)), ("-1", "-1", "-1"));
        assert_eq!((field(11), field(12)), ("301", "-"));
        assert_eq!(field(21), "-", "no target group");
        assert_eq!(field(25), "0", "the default action");
        assert_eq!((field(27), field(28)), ("redirect", "https://h.example:443/old"));

        // A head refused before it parsed: no request line, rules never evaluated.
        let rec = Record {
            status: 400,
            error: Some("BadHeader"),
            ..Record::default()
        };
        let text = line(&entry(None, &rec), AccessLogFormat::Alb);
        let caps = re
            .captures(&text)
            .unwrap_or_else(|| panic!("not parsed:\n{text}"));
        let field = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
        assert_eq!(field(15), "-");
        assert!(
            text.contains(r#" "- - - " "#),
            "ALB's request field for a malformed request: {text}"
        );
        assert_eq!((field(25), field(27), field(29)), ("-1", "-", "-"));
    }

    #[test]
    fn json_names_the_same_fields() {
        let h = head("POST /x HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 0\r\n\r\n");
        let rec = forwarded();
        let text = line(&entry(Some(&h), &rec), AccessLogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["type"], "http");
        assert_eq!(v["elb_status_code"], 200);
        assert_eq!(v["target:port"], "127.0.0.1:9001");
        assert_eq!(v["request"], "POST http://a.example:80/x HTTP/1.1");
        assert_eq!(v["target_processing_time"], 0.012);
        assert_eq!(v["matched_rule_priority"], 10);
        assert_eq!(v["actions_executed"], "forward");
        assert!(v["user_agent"].is_null());
        assert_eq!(v.as_object().map(|o| o.len()), Some(30), "{v}");
    }

    #[test]
    fn the_writer_appends_lines_and_reopens_a_moved_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&LogConfig {
            path: Some(path.clone()),
            format: AccessLogFormat::Alb,
        })
        .expect("open");
        let h = head("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        let rec = forwarded();
        let dropped = AtomicU64::new(0);
        log.write(&entry(Some(&h), &rec), &dropped);
        let read_lines = |p: &Path| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
        wait_until(|| read_lines(&path) == 1);
        let moved = dir.path().join("access.log.1");
        std::fs::rename(&path, &moved).expect("rename");
        log.reopen();
        log.write(&entry(Some(&h), &rec), &dropped);
        wait_until(|| read_lines(&path) == 1);
        assert_eq!(read_lines(&moved), 1);
        assert_eq!(dropped.load(Relaxed), 0);
    }

    fn wait_until(mut ok: impl FnMut() -> bool) {
        for _ in 0..200 {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("not within 2 s");
    }
}
