//! [`HostAlb`]: runs the real `hostalb` binary and learns the addresses it bound.
//!
//! The binary's contract: `hostalb run --config FILE [--workers N]` prints to stdout, one
//! per line, `listening admin ADDR` and `listening listener NAME ADDR` (the real bound
//! addresses, also when the config said port 0), then `ready`; a reload that adds listeners
//! prints more `listening listener` lines. Logs go to stderr. SIGHUP reloads, SIGTERM
//! drains and exits, SIGINT exits at once.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::watch;

use crate::client::Client;
use crate::patience::scaled;
use crate::sync::lock;

/// How long `start()` waits for `ready` (scaled by the patience factor).
const READY_PATIENCE: Duration = Duration::from_secs(15);

/// How long `run_check` lets `hostalb check` run.
const CHECK_PATIENCE: Duration = Duration::from_secs(30);

/// Most stderr kept in memory; older text is dropped first (long load tests log a lot).
const STDERR_CAP: usize = 16 << 20;

/// Spawning a just-written executable can fail with ETXTBSY while another thread's fork
/// still holds it open for writing; that many retries, 50 ms apart, ride it out.
const SPAWN_RETRIES: u32 = 20;

/// Environment variable that, when set, copies hostalb's stdout and stderr to the test's
/// stderr as they arrive.
pub const ECHO_VAR: &str = "HOSTALB_TEST_ECHO";

/// What hostalb has said on stdout so far.
#[derive(Debug, Default, Clone)]
struct Stdout {
    lines: Vec<String>,
    admin: Option<SocketAddr>,
    listeners: BTreeMap<String, SocketAddr>,
    ready: bool,
    closed: bool,
}

impl Stdout {
    fn take_line(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["listening", "admin", addr] => {
                if let Ok(a) = addr.parse() {
                    self.admin = Some(a);
                }
            }
            ["listening", "listener", name, addr] => {
                if let Ok(a) = addr.parse() {
                    self.listeners.insert((*name).to_string(), a);
                }
            }
            ["ready"] => self.ready = true,
            _ => {}
        }
        self.lines.push(line.to_string());
    }
}

/// hostalb could not be brought to `ready`.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong.
    pub reason: String,
    /// The exit status, when the process ended.
    pub status: Option<ExitStatus>,
    /// Its stdout lines.
    pub stdout: Vec<String>,
    /// Its stderr.
    pub stderr: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hostalb did not start: {}", self.reason)?;
        if let Some(s) = self.status {
            writeln!(f, "exit status: {s}")?;
        }
        writeln!(f, "--- stdout ---")?;
        for l in &self.stdout {
            writeln!(f, "{l}")?;
        }
        writeln!(f, "--- stderr ---")?;
        f.write_str(&self.stderr)
    }
}

impl std::error::Error for StartError {}

/// Builder for [`HostAlb`].
#[derive(Debug, Clone)]
pub struct HostAlbBuilder {
    binary: PathBuf,
    config: String,
    config_ext: String,
    workers: Option<usize>,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    ready_patience: Duration,
}

impl HostAlbBuilder {
    /// The configuration text (TOML unless `config_ext("json")`).
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = text.into();
        self
    }

    /// The configuration file's extension, `"toml"` (default) or `"json"`.
    pub fn config_ext(mut self, ext: &str) -> Self {
        self.config_ext = ext.trim_start_matches('.').to_string();
        self
    }

    /// Passes `--workers n`.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Appends an argument after `run --config FILE [--workers N]`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// How long to wait for `ready` (default 15 s, scaled by the patience factor).
    pub fn ready_timeout(mut self, patience: Duration) -> Self {
        self.ready_patience = patience;
        self
    }

    /// Starts hostalb and waits for `ready`; panics with its stdout and stderr otherwise.
    pub async fn start(self) -> HostAlb {
        match self.try_start().await {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts hostalb and waits for `ready`.
    pub async fn try_start(self) -> Result<HostAlb, StartError> {
        let fail = |reason: String| StartError {
            reason,
            status: None,
            stdout: Vec::new(),
            stderr: String::new(),
        };
        let dir = tempfile::Builder::new()
            .prefix("hostalb-test-")
            .tempdir()
            .map_err(|e| fail(format!("temp dir: {e}")))?;
        let config_path = dir.path().join(format!("hostalb.{}", self.config_ext));
        std::fs::write(&config_path, &self.config)
            .map_err(|e| fail(format!("writing {}: {e}", config_path.display())))?;

        let mut cmd = Command::new(&self.binary);
        cmd.arg("run").arg("--config").arg(&config_path);
        if let Some(n) = self.workers {
            cmd.arg("--workers").arg(n.to_string());
        }
        cmd.args(&self.args);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = spawn_retrying(&mut cmd)
            .await
            .map_err(|e| fail(format!("spawning {}: {e}", self.binary.display())))?;
        let pid = child.id().unwrap_or(0);
        let echo = std::env::var_os(ECHO_VAR).is_some();

        let (stdout_tx, stdout_rx) = watch::channel(Stdout::default());
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_stdout(out, stdout_tx, echo));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_stderr(err, Arc::clone(&stderr), echo));
        }
        let alb = HostAlb {
            binary: self.binary,
            pid,
            child: tokio::sync::Mutex::new(child),
            exit: Mutex::new(None),
            stdout: stdout_rx,
            stderr,
            config_path,
            dir,
        };

        let patience = scaled(self.ready_patience);
        let mut rx = alb.stdout.clone();
        let waited = tokio::time::timeout(patience, rx.wait_for(|s| s.ready || s.closed)).await;
        let reason = match waited {
            Ok(Ok(s)) if s.ready => return Ok(alb),
            Ok(_) => "stdout closed before `ready` (the process exited?)".to_string(),
            Err(_) => format!("no `ready` line within {patience:?}"),
        };
        let status = alb.wait_exit(Duration::from_millis(500)).await;
        Err(StartError {
            reason,
            status,
            stdout: alb.stdout_lines(),
            stderr: alb.stderr_text(),
        })
    }
}

async fn spawn_retrying(cmd: &mut Command) -> io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < SPAWN_RETRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

async fn read_stdout(out: ChildStdout, tx: watch::Sender<Stdout>, echo: bool) {
    let mut lines = BufReader::new(out).lines();
    // Ends when the process closes its stdout.
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[hostalb stdout] {line}");
        }
        tx.send_modify(|s| s.take_line(&line));
    }
    tx.send_modify(|s| s.closed = true);
}

async fn read_stderr(mut err: ChildStderr, text: Arc<Mutex<String>>, echo: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    // Ends when the process closes its stderr.
    while let Ok(n) = err.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let chunk = String::from_utf8_lossy(&buf[..n]);
        if echo {
            eprint!("{chunk}");
        }
        let mut t = lock(&text);
        t.push_str(&chunk);
        if t.len() > STDERR_CAP {
            let mut cut = t.len() - STDERR_CAP / 2;
            while !t.is_char_boundary(cut) {
                cut += 1;
            }
            t.drain(..cut);
        }
    }
}

/// The real `hostalb` binary, running with a config file in its own temp dir. Dropping it
/// kills the process (and prints its stderr when the test is failing).
pub struct HostAlb {
    binary: PathBuf,
    pid: u32,
    child: tokio::sync::Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    stdout: watch::Receiver<Stdout>,
    stderr: Arc<Mutex<String>>,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl fmt::Debug for HostAlb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = self.stdout.borrow();
        f.debug_struct("HostAlb")
            .field("binary", &self.binary)
            .field("pid", &self.pid)
            .field("admin", &out.admin)
            .field("listeners", &out.listeners)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl HostAlb {
    /// Starts `binary run --config <temp>/hostalb.toml` with this config and waits up to
    /// 15 s (× patience) for `ready`; panics with the captured stderr otherwise.
    pub async fn start(binary: impl AsRef<Path>, config_toml: &str) -> HostAlb {
        Self::builder(binary).config(config_toml).start().await
    }

    /// A builder for `binary` (tests pass `env!("CARGO_BIN_EXE_hostalb")`).
    pub fn builder(binary: impl AsRef<Path>) -> HostAlbBuilder {
        HostAlbBuilder {
            binary: binary.as_ref().to_path_buf(),
            config: String::new(),
            config_ext: "toml".to_string(),
            workers: None,
            env: Vec::new(),
            args: Vec::new(),
            ready_patience: READY_PATIENCE,
        }
    }

    /// The address listener `name` is bound to; panics when hostalb has not printed it.
    pub fn listener(&self, name: &str) -> SocketAddr {
        match self.try_listener(name) {
            Some(a) => a,
            None => panic!(
                "hostalb printed no address for listener {name:?}; stdout:\n{}",
                self.stdout_lines().join("\n")
            ),
        }
    }

    /// The address listener `name` is bound to, if hostalb printed it.
    pub fn try_listener(&self, name: &str) -> Option<SocketAddr> {
        self.stdout.borrow().listeners.get(name).copied()
    }

    /// Every listener printed so far, by name.
    pub fn listeners(&self) -> BTreeMap<String, SocketAddr> {
        self.stdout.borrow().listeners.clone()
    }

    /// Waits up to `patience` (× patience factor) for hostalb to print listener `name`
    /// (after a reload that adds it).
    pub async fn wait_listener(&self, name: &str, patience: Duration) -> Option<SocketAddr> {
        let mut rx = self.stdout.clone();
        let waited = tokio::time::timeout(
            scaled(patience),
            rx.wait_for(|s| s.listeners.contains_key(name) || s.closed),
        )
        .await;
        match waited {
            Ok(Ok(s)) => s.listeners.get(name).copied(),
            _ => None,
        }
    }

    /// The admin API address; panics when hostalb has not printed it.
    pub fn admin(&self) -> SocketAddr {
        match self.stdout.borrow().admin {
            Some(a) => a,
            None => panic!("hostalb printed no admin address"),
        }
    }

    /// `http://{listener address}{path}`; `path` starts with `/`.
    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{path}", self.listener(listener))
    }

    /// `http://{admin address}{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin())
    }

    /// The config file hostalb was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temp dir holding the config file (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the config file (hostalb may reload on the change; SIGHUP or the API makes
    /// it reload for sure).
    pub fn write_config(&self, text: &str) {
        if let Err(e) = std::fs::write(&self.config_path, text) {
            panic!("writing {}: {e}", self.config_path.display());
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn signal(&self, sig: Signal) -> bool {
        if lock(&self.exit).is_some() {
            return false;
        }
        match i32::try_from(self.pid) {
            Ok(pid) if pid > 0 => kill(Pid::from_raw(pid), sig).is_ok(),
            _ => false,
        }
    }

    /// Sends SIGHUP (reload the file). Returns false when the process is gone. The reload
    /// happens asynchronously: follow with [`crate::eventually`] or the admin API.
    pub fn reload_sighup(&self) -> bool {
        self.signal(Signal::SIGHUP)
    }

    /// Sends SIGTERM (drain and exit). Returns false when the process is gone.
    pub fn sigterm(&self) -> bool {
        self.signal(Signal::SIGTERM)
    }

    /// Sends SIGINT (exit at once). Returns false when the process is gone.
    pub fn sigint(&self) -> bool {
        self.signal(Signal::SIGINT)
    }

    /// Sends SIGKILL. Returns false when the process is gone.
    pub fn sigkill(&self) -> bool {
        self.signal(Signal::SIGKILL)
    }

    /// `POST /api/reload` on the admin address: `(status, body)`; panics when the admin API
    /// cannot be reached.
    pub async fn reload_api(&self) -> (u16, String) {
        self.admin_request("POST", "/api/reload").await
    }

    /// `GET path` on the admin address: `(status, body)`; panics when the admin API cannot
    /// be reached.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        self.admin_request("GET", path).await
    }

    async fn admin_request(&self, method: &str, path: &str) -> (u16, String) {
        let url = self.admin_url(path);
        let client = Client::new();
        match client.request(method, &url, &[], Vec::new()).await {
            Ok(r) => (r.status, r.text()),
            Err(e) => panic!(
                "admin API {method} {url}: {e}\n--- stderr ---\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it is still
    /// running.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = *lock(&self.exit) {
            return Some(s);
        }
        let mut child = self.child.lock().await;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => {
                *lock(&self.exit) = Some(status);
                Some(status)
            }
            _ => None,
        }
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.borrow().lines.clone()
    }

    /// Stderr so far (the logs; the oldest part is dropped past 16 MiB).
    pub fn stderr_text(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Waits up to `patience` (× patience factor) for stderr to contain `needle`.
    pub async fn wait_stderr(&self, needle: &str, patience: Duration) -> bool {
        crate::patience::try_eventually(patience, async || lock(&self.stderr).contains(needle))
            .await
            .is_ok()
    }
}

impl Drop for HostAlb {
    fn drop(&mut self) {
        let _ = self.child.get_mut().start_kill();
        if std::thread::panicking() {
            let text = lock(&self.stderr);
            let tail_from = text.len().saturating_sub(64 * 1024);
            let mut cut = tail_from;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            eprintln!(
                "--- hostalb (pid {}) stdout ---\n{}\n--- hostalb stderr (last 64 KiB) ---\n{}",
                self.pid,
                self.stdout.borrow().lines.join("\n"),
                &text[cut..]
            );
        }
    }
}

/// Runs `binary check --config FILE` on `config_text` written to a temp file with
/// extension `ext` (`"toml"` or `"json"`); returns `(exit code, stdout, stderr)`, exit code
/// -1 when killed by a signal. Bounded by 30 s × patience (then killed).
pub fn run_check(binary: impl AsRef<Path>, config_text: &str, ext: &str) -> (i32, String, String) {
    let binary = binary.as_ref();
    let dir = match tempfile::Builder::new().prefix("hostalb-check-").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temp dir: {e}"),
    };
    let path = dir
        .path()
        .join(format!("hostalb.{}", ext.trim_start_matches('.')));
    if let Err(e) = std::fs::write(&path, config_text) {
        panic!("writing {}: {e}", path.display());
    }
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("check")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = {
        let mut tries = 0;
        loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < SPAWN_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("spawning {}: {e}", binary.display()),
            }
        }
    };
    let out = child.stdout.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = s.read_to_end(&mut v);
            v
        })
    });
    let err = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = s.read_to_end(&mut v);
            v
        })
    });
    let deadline = Instant::now() + scaled(CHECK_PATIENCE);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    (code, collect(out), collect(err))
}
