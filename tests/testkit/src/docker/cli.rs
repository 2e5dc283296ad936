//! Running the docker CLI with a bound on its time.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::docker::docker_host;
use crate::patience::scaled;

/// How long one docker command may run (scaled by the patience factor): `docker stop`
/// waits up to its own timeout, ten seconds by default, before it kills.
pub(crate) const COMMAND_PATIENCE: Duration = Duration::from_secs(120);

/// Pause between two looks at a running command.
const POLL: Duration = Duration::from_millis(5);

/// Exit code reported when the docker CLI could not be started (as a shell does).
const NOT_FOUND: i32 = 127;

/// Runs `docker ARGS` against [`docker_host`] and returns its output. It never hangs: a
/// command still running after two minutes (scaled by the patience factor) is killed and
/// its output says so. A CLI that cannot be started gives exit status 127 and the reason
/// in stderr.
///
/// ```no_run
/// let out = hostalb_testkit::docker::docker_cli(["ps", "--format", "{{.Names}}"]);
/// assert!(out.status.success());
/// ```
pub fn docker_cli<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    docker_cli_within(args, scaled(COMMAND_PATIENCE))
}

/// [`docker_cli`] with its own bound (not scaled).
pub fn docker_cli_within<I, S>(args: I, patience: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command
        .args(args)
        .env("DOCKER_HOST", docker_host())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(command, patience)
}

/// Runs `docker ARGS`; its stdout (trimmed) when it exits 0, else a message with the
/// command, its exit status and its stderr.
pub fn docker_ok<I, S>(args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let out = docker_cli(&args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`docker {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `command` (stdout and stderr piped) for at most `patience`.
pub(crate) fn run_bounded(mut command: Command, patience: Duration) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Output {
                status: ExitStatus::from_raw(NOT_FOUND << 8),
                stdout: Vec::new(),
                stderr: format!("cannot run {program}: {e}").into_bytes(),
            };
        }
    };
    // The pipes are drained on their own threads, so a chatty command never blocks on a
    // full pipe while this thread waits for it to exit.
    let stdout = drain(&mut child, true);
    let stderr = drain(&mut child, false);
    let deadline = Instant::now() + patience;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| killed());
            }
            Err(_) => {
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| killed());
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(format!("\n{program} killed after {patience:?}").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The raw wait status of a process killed by SIGKILL.
fn killed() -> ExitStatus {
    ExitStatus::from_raw(nix::sys::signal::Signal::SIGKILL as i32)
}

fn drain(child: &mut Child, stdout: bool) -> thread::JoinHandle<Vec<u8>> {
    let mut pipe: Option<Box<dyn Read + Send>> = if stdout {
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)
    } else {
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)
    };
    thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(p) = pipe.as_mut() {
            let _ = p.read_to_end(&mut out);
        }
        out
    })
}
