//! Scenario (g): start-to-routable of a container. hostalb runs without --config (the
//! embedded default: listener on 0.0.0.0:8080, admin on 127.0.0.1:9901, target groups and
//! rules from container labels); each start is `docker run -d -p 80` of the test image
//! with the labels of a label-declared group and rule, timed from `docker run` returning
//! to the first 200 through hostalb.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::http;
use crate::procs::{self, Service};
use crate::servers;

pub(crate) const IMAGE: &str = "hostalb-test-backend:latest";
/// The embedded default's addresses.
const LISTENER: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
const ADMIN: ([u8; 4], u16) = ([127, 0, 0, 1], 9901);
/// Bound on each docker command.
const DOCKER_LIMIT: Duration = Duration::from_secs(60);
/// Bound on a container becoming routable, and on it ceasing to be after removal.
const ROUTE_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two probes through hostalb.
const PROBE_PAUSE: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Milliseconds from `docker run` returning to the first 200, one per start.
    pub(crate) ms: Vec<f64>,
    /// Milliseconds `docker run -d` itself took, one per start.
    pub(crate) run_ms: Vec<f64>,
    pub(crate) failures: Vec<String>,
}

/// Output of a bounded command.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(docker: &Path, args: &[&str], dir: &Path, limit: Duration) -> Result<Ran> {
    let out_path = dir.join("docker.out");
    let err_path = dir.join("docker.err");
    let out = File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let err = File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
    let mut child = Command::new(docker)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", docker.display()))?;
    let status = match procs::wait_bounded(&mut child, limit) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`docker {}` did not finish within {limit:?}", args.join(" "));
        }
    };
    Ok(Ran {
        ok: status.success(),
        stdout: std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .trim()
            .to_owned(),
        stderr: std::fs::read_to_string(&err_path)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    })
}

/// Why (g) cannot run here, or the docker CLI to run it with.
pub(crate) fn preflight(dir: &Path) -> std::result::Result<PathBuf, String> {
    let docker = procs::which("docker").ok_or("the docker CLI is not installed")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let info = run(
        &docker,
        &["info", "--format", "{{.ServerVersion}}"],
        dir,
        Duration::from_secs(20),
    )
    .map_err(|e| format!("{e:#}"))?;
    if !info.ok || info.stdout.is_empty() {
        let why = info
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no answer")
            .to_owned();
        return Err(format!(
            "`docker info` fails ({why}); start an engine (`eval \"$(scripts/docker-engine)\"` sets DOCKER_HOST) \
             or run `HOSTALB_BENCH_DOCKER=1 scripts/bench g`"
        ));
    }
    let image = run(
        &docker,
        &["image", "inspect", "--format", "{{.Id}}", IMAGE],
        dir,
        DOCKER_LIMIT,
    )
    .map_err(|e| format!("{e:#}"))?;
    if !image.ok {
        return Err(format!(
            "the image {IMAGE} is missing; build it with scripts/docker-test-image"
        ));
    }
    if TcpListener::bind(("0.0.0.0", LISTENER.1)).is_err() {
        return Err(format!(
            "port {} is in use; `hostalb run` without --config listens on 0.0.0.0:{}",
            LISTENER.1, LISTENER.1
        ));
    }
    if TcpListener::bind(SocketAddr::from(ADMIN)).is_err() {
        return Err(format!(
            "127.0.0.1:{} (the embedded default's admin address) is in use",
            ADMIN.1
        ));
    }
    Ok(docker)
}

/// Containers started by (g); dropping it removes them.
struct Containers {
    docker: PathBuf,
    dir: PathBuf,
    ids: Vec<String>,
}

impl Containers {
    fn remove(&mut self, id: &str) -> Result<()> {
        let r = run(&self.docker, &["rm", "-f", id], &self.dir, DOCKER_LIMIT)?;
        self.ids.retain(|i| i != id);
        if !r.ok {
            bail!("`docker rm -f {id}` failed: {}", r.stderr);
        }
        Ok(())
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            let _ = run(&self.docker, &["rm", "-f", &id], &self.dir, DOCKER_LIMIT);
        }
    }
}

fn status_through(addr: SocketAddr) -> Option<u16> {
    http::request(addr, "GET", "/", Duration::from_secs(1))
        .ok()
        .map(|r| r.status)
}

pub(crate) fn measure(docker: &Path, hostalb: &Path, dir: &Path, starts: usize) -> Result<Outcome> {
    let mut cmd = Command::new(hostalb);
    cmd.arg("run").arg("--workers").arg("1").env("RUST_LOG", "warn");
    let mut svc = Service::spawn(
        "hostalb (embedded default)",
        &mut cmd,
        Signal::SIGINT,
        &dir.join("hostalb.log"),
        true,
    )?;
    servers::read_announcement(&mut svc, "web")?;
    let addr = SocketAddr::from(LISTENER);
    let mut containers = Containers {
        docker: docker.to_path_buf(),
        dir: dir.to_path_buf(),
        ids: Vec::new(),
    };
    let mut out = Outcome::default();
    let tag = std::process::id();
    for i in 0..starts {
        procs::check_stop()?;
        svc.check_alive()?;
        let name = format!("hostalb-bench-{tag}-{i}");
        let invoked = Instant::now();
        let r = run(
            docker,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-p",
                "80",
                "--label",
                "hostalb.target-group=web",
                "--label",
                "hostalb.path-pattern=/*",
                IMAGE,
            ],
            dir,
            DOCKER_LIMIT,
        )?;
        let returned = Instant::now();
        let run_ms = (returned - invoked).as_secs_f64() * 1e3;
        if !r.ok {
            out.failures
                .push(format!("start {i}: docker run failed: {}", r.stderr));
            let _ = run(docker, &["rm", "-f", &name], dir, DOCKER_LIMIT);
            continue;
        }
        containers.ids.push(r.stdout.clone());
        let mut routed = false;
        while returned.elapsed() < ROUTE_LIMIT {
            procs::check_stop()?;
            if status_through(addr) == Some(200) {
                routed = true;
                break;
            }
            std::thread::sleep(PROBE_PAUSE);
        }
        let ms = returned.elapsed().as_secs_f64() * 1e3;
        if routed {
            out.ms.push(ms);
            out.run_ms.push(run_ms);
            eprintln!(
                "load:   start {:>2}/{starts}: `docker run -d` took {run_ms:.0} ms, routable {ms:.1} ms after it returned",
                i + 1
            );
        } else {
            out.failures.push(format!(
                "start {i}: no 200 through hostalb within {ROUTE_LIMIT:?}"
            ));
        }
        containers.remove(&r.stdout)?;
        // The next start must begin from a group without a routable target.
        let gone = Instant::now();
        while gone.elapsed() < ROUTE_LIMIT && status_through(addr) == Some(200) {
            procs::check_stop()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(out)
}
