//! `hostalb-testbackend`: the HTTP/1.1 server inside hostalb's Docker test image
//! (`hostalb-test-backend:latest`, built by `scripts/docker-test-image`).
//!
//! It stands for a service behind hostalb: a container that publishes a port and answers
//! with its name, so a test can tell which target served a request. It is statically linked
//! (std plus small pure-Rust crates) and serves each connection on its own thread.
//!
//! Environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PORT` | port it listens on, on 0.0.0.0 | 80 |
//! | `EXTRA_PORTS` | more ports, comma-separated | none |
//! | `BACKEND_NAME` | the name it answers with | the hostname |
//! | `HEALTH_STATUS` | the status `/health` answers at first | 200 |
//! | `STOP_GRACE_MS` | how long it keeps accepting after SIGTERM or SIGINT | 300 |
//! | `IDLE_TIMEOUT_MS` | how long an idle keep-alive connection is kept | 60000 |
//!
//! What it answers is described in `answer.rs`.
//!
//! Stopping (SIGTERM from `docker stop`, or SIGINT): every answer from then on carries
//! `Connection: close`; it keeps accepting for `STOP_GRACE_MS` (a load balancer takes the
//! target out of rotation meanwhile), then closes its listeners and its idle connections,
//! lets the requests in flight finish, and exits 0 once no connection is left, or
//! [`DRAIN_PATIENCE`] after it stopped accepting, whichever comes first.
//!
//! Bad input (malformed requests, bad parameters, bad environment) never panics: a request
//! gets 400 (431 for a head too large), a bad environment variable exits 2 with a message.

mod answer;
mod conn;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Port listened on when `PORT` is not set: the port a web container usually exposes.
const DEFAULT_PORT: u16 = 80;

/// Answer of `/health` when `HEALTH_STATUS` is not set: a healthy target.
const DEFAULT_HEALTH: u16 = 200;

/// How long it keeps accepting after a stop signal when `STOP_GRACE_MS` is not set: long
/// enough for a load balancer that reacts to Docker's `kill` event to stop sending.
const DEFAULT_STOP_GRACE: Duration = Duration::from_millis(300);

/// Longest `STOP_GRACE_MS` honoured: `docker stop` kills after 10 s by default anyway.
const MAX_STOP_GRACE: Duration = Duration::from_secs(60);

/// How long idle keep-alive connections are kept when `IDLE_TIMEOUT_MS` is not set: longer
/// than a proxy's usual pool idle time, so the proxy is the side that closes.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long, after it stopped accepting, it waits for open connections before exiting
/// anyway: the whole stop stays well within `docker stop`'s default 10 s.
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);

/// Pause between two checks of the open connection count while draining.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How long it waits for each accept thread to close its listener after waking it.
const ACCEPTOR_PATIENCE: Duration = Duration::from_secs(1);

/// Pause after a failed accept (say, out of file descriptors), so the loop never spins.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Most connections served at once; more are closed at once rather than spawning threads
/// without bound.
const MAX_CONNECTIONS: usize = 10_000;

/// Stack of each connection thread: requests are small and handled without recursion.
const CONNECTION_STACK: usize = 256 * 1024;

/// Exit status for a bad environment or a port that cannot be bound.
const EXIT_BAD_START: u8 = 2;

/// What the environment asked for.
#[derive(Debug)]
struct Settings {
    name: String,
    hostname: String,
    ports: Vec<u16>,
    health: u16,
    stop_grace: Duration,
    idle_timeout: Duration,
}

/// State every connection shares.
#[derive(Debug)]
struct Shared {
    /// The name answered in `x-backend` and `"backend"`.
    name: String,
    /// The host (container) name.
    hostname: String,
    /// How long an idle keep-alive connection is kept.
    idle_timeout: Duration,
    /// What `/health` answers now.
    health: AtomicU16,
    /// A stop signal arrived: every answer closes its connection.
    stopping: AtomicBool,
    /// The listeners are closed: idle connections close too.
    closing: AtomicBool,
    /// Connections open now (served or about to be).
    connections: AtomicUsize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostalb-testbackend: {e}");
            ExitCode::from(EXIT_BAD_START)
        }
    }
}

fn run() -> Result<(), String> {
    // Registered before anything else: as PID 1 in a container, a signal that arrives
    // before a handler exists is ignored, and `docker stop` would have to kill.
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot handle SIGTERM/SIGINT: {e}"))?;
    let settings = Settings::from_env()?;
    let shared = Arc::new(Shared {
        name: settings.name.clone(),
        hostname: settings.hostname.clone(),
        idle_timeout: settings.idle_timeout,
        health: AtomicU16::new(settings.health),
        stopping: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
    });

    let mut listeners = Vec::with_capacity(settings.ports.len());
    for &port in &settings.ports {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
            .map_err(|e| format!("cannot listen on 0.0.0.0:{port}: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the address of port {port}: {e}"))?;
        listeners.push((bound, listener));
    }
    let mut acceptors = Vec::with_capacity(listeners.len());
    for (bound, listener) in listeners {
        let shared = Arc::clone(&shared);
        // Tells main that this listener is closed (the sender is dropped with the thread).
        let (done_tx, done_rx) = mpsc::channel::<()>();
        thread::Builder::new()
            .name(format!("accept-{}", bound.port()))
            .spawn(move || {
                accept_loop(&listener, &shared);
                drop(listener);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the accept thread for {bound}: {e}"))?;
        acceptors.push((bound, done_rx));
    }
    let ports: Vec<String> = acceptors.iter().map(|(a, _)| a.port().to_string()).collect();
    eprintln!(
        "hostalb-testbackend {} (host {}) listening on 0.0.0.0 ports {}",
        settings.name,
        settings.hostname,
        ports.join(",")
    );

    let signal = signals.forever().next();
    let signal = match signal {
        Some(SIGTERM) => "SIGTERM",
        Some(SIGINT) => "SIGINT",
        _ => "a stop request",
    };
    eprintln!(
        "received {signal}: answers close their connections; accepting for {:?} more",
        settings.stop_grace
    );
    shared.stopping.store(true, Ordering::SeqCst);
    thread::sleep(settings.stop_grace);

    shared.closing.store(true, Ordering::SeqCst);
    for (bound, done) in &acceptors {
        wake_acceptor(*bound);
        if done.recv_timeout(ACCEPTOR_PATIENCE).is_ok() {
            eprintln!("port {} closed", bound.port());
        } else {
            eprintln!("port {} did not close in time", bound.port());
        }
    }
    let deadline = Instant::now() + DRAIN_PATIENCE;
    while shared.connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(DRAIN_POLL);
    }
    let left = shared.connections.load(Ordering::SeqCst);
    eprintln!("exiting with {left} connection(s) open");
    Ok(())
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let port = match env("PORT") {
            Some(v) => parse_port("PORT", &v)?,
            None => DEFAULT_PORT,
        };
        let mut ports = vec![port];
        if let Some(extra) = env("EXTRA_PORTS") {
            for item in extra.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let p = parse_port("EXTRA_PORTS", item)?;
                if p == 0 || !ports.contains(&p) {
                    ports.push(p);
                }
            }
        }
        let health = match env("HEALTH_STATUS") {
            Some(v) => answer::parse_status(&v)
                .ok_or_else(|| format!("HEALTH_STATUS={v:?} is not a status code in 200..=999"))?,
            None => DEFAULT_HEALTH,
        };
        let stop_grace = match env("STOP_GRACE_MS") {
            Some(v) => parse_ms("STOP_GRACE_MS", &v)?.min(MAX_STOP_GRACE),
            None => DEFAULT_STOP_GRACE,
        };
        let idle_timeout = match env("IDLE_TIMEOUT_MS") {
            Some(v) => parse_ms("IDLE_TIMEOUT_MS", &v)?,
            None => DEFAULT_IDLE_TIMEOUT,
        };
        let hostname = hostname();
        let name = env("BACKEND_NAME").unwrap_or_else(|| hostname.clone());
        Ok(Settings {
            name: header_safe(&name),
            hostname: header_safe(&hostname),
            ports,
            health,
            stop_grace,
            idle_timeout,
        })
    }
}

/// The variable's value, trimmed; `None` when unset, empty or not Unicode.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse_port(var: &str, value: &str) -> Result<u16, String> {
    value
        .parse::<u16>()
        .map_err(|_| format!("{var}: {value:?} is not a port number (0..=65535)"))
}

fn parse_ms(var: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{var}={value:?} is not a number of milliseconds"))
}

/// The host's name: in a container, the one Docker gave it (`/etc/hostname`, also in
/// `HOSTNAME`).
fn hostname() -> String {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    from_file("/etc/hostname")
        .or_else(|| env("HOSTNAME"))
        .or_else(|| from_file("/proc/sys/kernel/hostname"))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `s` with control characters replaced, so that it can go into a header value.
fn header_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => start_connection(stream, shared),
            Err(e) => {
                if !shared.closing.load(Ordering::SeqCst) {
                    eprintln!("accept failed: {e}");
                    thread::sleep(ACCEPT_ERROR_PAUSE);
                }
            }
        }
        // Woken by `wake_acceptor` (or any connection accepted after the grace period,
        // which is served like the others).
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Makes the accept thread of `bound` return from `accept`, so it sees `closing` and
/// closes its listener: one connection to itself.
fn wake_acceptor(bound: SocketAddr) {
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()));
    let _ = TcpStream::connect_timeout(&to, ACCEPTOR_PATIENCE);
}

/// Counts one open connection for as long as it lives.
#[derive(Debug)]
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start_connection(stream: TcpStream, shared: &Arc<Shared>) {
    if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        shared.connections.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let slot = ConnectionSlot(Arc::clone(shared));
    // When the thread cannot be started the closure is dropped, and the slot with it.
    let started = thread::Builder::new()
        .name("conn".to_owned())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            conn::serve(stream, &slot.0);
            drop(slot);
        });
    if let Err(e) = started {
        eprintln!("cannot start a connection thread: {e}");
    }
}
