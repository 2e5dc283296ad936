//! Processes: starting the servers under a guard that always stops them, reading their
//! CPU time and memory from /proc, raising the open-file limit, stopping on signals.

use std::collections::HashMap;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Set by SIGINT, SIGTERM and SIGHUP: every wait of the harness checks it, returns an
/// error, and the guards stop what was started while the error unwinds.
fn stop_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

pub(crate) fn install_signal_flags() -> Result<()> {
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(stop_flag()))
            .with_context(|| format!("installing the handler of signal {sig}"))?;
    }
    Ok(())
}

pub(crate) fn stopping() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

/// Fails when a stop signal arrived.
pub(crate) fn check_stop() -> Result<()> {
    if stopping() {
        bail!("interrupted: stopping every process the harness started");
    }
    Ok(())
}

/// Sleeps `d` in short slices, failing early when a stop signal arrives.
pub(crate) fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Clock ticks per second of the utime/stime fields of /proc/PID/stat.
pub(crate) fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// The fields of /proc/PID/stat the harness uses.
#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: i32,
    /// utime + stime + cutime + cstime: the process's own CPU time and that of its
    /// children it has waited for (an nginx worker replaced by a reload ends up here).
    cpu_ticks: u64,
    start_time: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: num(14)? + num(15)? + num(16)? + num(17)?,
        start_time: num(22)?,
    })
}

/// `root` and every process descending from it, each with its stat.
fn tree(root: i32) -> Vec<(i32, Stat)> {
    let mut children: HashMap<i32, Vec<(i32, Stat)>> = HashMap::new();
    let mut root_stat = None;
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Some(stat) = read_stat(pid) else { continue };
            if pid == root {
                root_stat = Some(stat);
            } else {
                children.entry(stat.ppid).or_default().push((pid, stat));
            }
        }
    }
    let Some(root_stat) = root_stat else {
        return Vec::new();
    };
    let mut out = vec![(root, root_stat)];
    let mut i = 0;
    // Bounded: each pid is visited once (a pid has one parent).
    while i < out.len() && out.len() < 100_000 {
        if let Some(kids) = children.remove(&out[i].0) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

fn status_kb(pid: i32, field: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub(crate) cpu_ticks: u64,
    /// VmHWM (peak resident set) summed over the processes alive now.
    pub(crate) hwm_kb: u64,
    /// VmRSS (resident set now) summed over the processes alive now.
    pub(crate) rss_kb: u64,
    pub(crate) processes: usize,
}

pub(crate) fn usage(root: i32) -> Usage {
    let procs = tree(root);
    Usage {
        cpu_ticks: procs.iter().map(|(_, s)| s.cpu_ticks).sum(),
        hwm_kb: procs.iter().map(|(p, _)| status_kb(*p, "VmHWM")).sum(),
        rss_kb: procs.iter().map(|(p, _)| status_kb(*p, "VmRSS")).sum(),
        processes: procs.len(),
    }
}

/// Raises RLIMIT_NOFILE (inherited by every process started afterwards) towards `want`:
/// the hard limit too when allowed (root), else the soft limit to the hard one.
/// Returns the soft limit in force.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= want {
        return soft;
    }
    if hard < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return want;
    }
    let target = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

/// Looks a program up in PATH and in the sbin directories (nginx and haproxy live in
/// /usr/sbin, which a user's PATH may lack).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in [
        "/usr/local/sbin",
        "/usr/sbin",
        "/sbin",
        "/usr/local/bin",
        "/usr/bin",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Ports handed out in this run, never handed out twice.
fn taken() -> &'static Mutex<Vec<u16>> {
    static TAKEN: OnceLock<Mutex<Vec<u16>>> = OnceLock::new();
    TAKEN.get_or_init(|| Mutex::new(Vec::new()))
}

/// A port on 127.0.0.1 that nothing listens on now. It is drawn below the kernel's
/// ephemeral range, so the many outgoing connections of a run never hold it.
pub(crate) fn free_port() -> Result<u16> {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let low_ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (lo, hi) = if low_ephemeral > 12_000 {
        (10_000u16, low_ephemeral - 1)
    } else {
        (0, 0)
    };
    let mut x = SEED.load(Ordering::Relaxed);
    if x == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        x = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    }
    for _ in 0..500 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = if hi > lo {
            lo + (x % u64::from(hi - lo)) as u16
        } else {
            0
        };
        let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        let Ok(addr) = listener.local_addr() else { continue };
        let mut t = taken()
            .lock()
            .map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
        if t.contains(&addr.port()) {
            continue;
        }
        t.push(addr.port());
        SEED.store(x, Ordering::Relaxed);
        return Ok(addr.port());
    }
    bail!("no free port found on 127.0.0.1 after 500 tries")
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A started server. Dropping it stops it: the stop signal, up to 5 s for it to exit,
/// then SIGKILL, then SIGKILL for any process it had started that is still alive.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) name: String,
    child: Option<Child>,
    pid: i32,
    stop_signal: Signal,
    pub(crate) log: PathBuf,
}

impl Service {
    /// Starts `cmd` with stdin closed and stderr (and stdout unless the caller set it) into
    /// `log`.
    pub(crate) fn spawn(
        name: &str,
        cmd: &mut Command,
        stop_signal: Signal,
        log: &Path,
        pipe_stdout: bool,
    ) -> Result<Service> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let out = match pipe_stdout {
            true => Stdio::piped(),
            false => Stdio::from(file.try_clone().context("duplicating a log file handle")?),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pid = child.id() as i32;
        Ok(Service {
            name: name.to_owned(),
            child: Some(child),
            pid,
            stop_signal,
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// Ok while the process runs; an error with its exit status and log tail once it
    /// has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was stopped", self.name);
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                bail!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 15)
                )
            }
            Err(e) => bail!("{}: cannot query its state: {e}", self.name),
        }
    }

    /// Waits until `addr` accepts connections, at most `limit`.
    pub(crate) fn wait_listening(&mut self, addr: SocketAddr, limit: Duration) -> Result<()> {
        let end = Instant::now() + limit;
        loop {
            check_stop()?;
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "{} does not accept connections on {addr} after {limit:?}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the main process (reloads).
    pub(crate) fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.pid), sig).with_context(|| format!("sending {sig} to {}", self.name))
    }

    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let descendants: Vec<(i32, u64)> = tree(self.pid)
            .into_iter()
            .skip(1)
            .map(|(p, s)| (p, s.start_time))
            .collect();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid), self.stop_signal);
            if wait_bounded(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = wait_bounded(&mut child, Duration::from_secs(5));
            }
        }
        for (pid, start) in descendants {
            if read_stat(pid).is_some_and(|s| s.start_time == start) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for a child at most `limit`; None when it still runs.
pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}
