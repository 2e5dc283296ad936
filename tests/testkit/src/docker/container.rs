//! [`TestContainer`]: one container of a test, removed when the test ends.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::docker::cli::{docker_cli, docker_ok};
use crate::docker::http::wait_http;
use crate::docker::{OWNER_LABEL, TEST_IMAGE, TEST_LABEL};
use crate::patience::scaled;

/// Longest name prefix kept (Docker names may be longer, but they show in every listing).
const MAX_PREFIX: usize = 40;

/// How often [`TestContainer::wait_exited`] looks at the container.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// What to run: the test image by default, each container port in `publish` on a random
/// host port (`-p PORT`).
///
/// ```no_run
/// use hostalb_testkit::docker::ContainerSpec;
///
/// let spec = ContainerSpec::new("blue")
///     .label("hostalb.target-group", "blue")
///     .publish(80)
///     .env("BACKEND_NAME", "blue-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Prefix of the container's name; the name gets a suffix unique to this run.
    pub name: String,
    /// Image to run ([`TEST_IMAGE`] by default).
    pub image: String,
    /// Labels (`--label k=v`), besides the test labels every container gets.
    pub labels: Vec<(String, String)>,
    /// Container ports published on random host ports (`-p PORT`).
    pub publish: Vec<u16>,
    /// Environment (`-e K=V`).
    pub env: Vec<(String, String)>,
    /// More `docker run` arguments, placed before the image (e.g. `--network`, `-p
    /// 127.0.0.1::80`).
    pub args: Vec<String>,
    /// Arguments after the image (given to its entrypoint).
    pub command: Vec<String>,
}

impl ContainerSpec {
    /// A spec for the test image, nothing published yet.
    pub fn new(name: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: TEST_IMAGE.to_owned(),
            labels: Vec::new(),
            publish: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            command: Vec::new(),
        }
    }

    /// Runs `image` instead of the test image.
    pub fn image(mut self, image: impl Into<String>) -> ContainerSpec {
        self.image = image.into();
        self
    }

    /// Adds label `key=value`.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> ContainerSpec {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Publishes `container_port` (TCP) on a random host port.
    pub fn publish(mut self, container_port: u16) -> ContainerSpec {
        self.publish.push(container_port);
        self
    }

    /// Sets environment variable `key=value`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ContainerSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds a `docker run` argument (before the image).
    pub fn arg(mut self, arg: impl Into<String>) -> ContainerSpec {
        self.args.push(arg.into());
        self
    }

    /// Adds an argument after the image.
    pub fn command_arg(mut self, arg: impl Into<String>) -> ContainerSpec {
        self.command.push(arg.into());
        self
    }
}

/// A container's state, from `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    /// Whether it runs (also when paused).
    pub running: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Exit code of the last run (0 while running).
    pub exit_code: i64,
    /// Host pid of its main process (0 when not running).
    pub pid: i64,
}

/// One container started by a test. Its name is unique to this run (the spec's name plus
/// a suffix), and it carries the labels [`TEST_LABEL`]`=1` and [`OWNER_LABEL`]`=<pid>`, so
/// that leftovers of a test process that died are found and removed (see
/// [`remove_leftover_containers`]). Dropping it removes the container (`docker rm -f`).
///
/// Every method runs the docker CLI and blocks; a docker command that fails panics with
/// docker's message (a test helper: the failure is the test's). In an async test that keeps
/// other tasks running meanwhile (load, say), call them through
/// `tokio::task::spawn_blocking` on an `Arc<TestContainer>`.
#[derive(Debug)]
pub struct TestContainer {
    id: String,
    name: String,
    removed: AtomicBool,
}

/// Runs once per test process, before its first container.
static SWEEP: Once = Once::new();

/// Numbers the containers of this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl TestContainer {
    /// `docker run -d` of `spec`; panics with docker's message when it fails.
    #[track_caller]
    pub fn run(spec: ContainerSpec) -> TestContainer {
        match TestContainer::try_run(spec) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// `docker run -d` of `spec`.
    pub fn try_run(spec: ContainerSpec) -> Result<TestContainer, String> {
        SWEEP.call_once(|| {
            remove_leftover_containers();
        });
        let name = unique_name(&spec.name);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            format!("{TEST_LABEL}=1"),
            "--label".into(),
            format!("{OWNER_LABEL}={}", std::process::id()),
        ];
        for (k, v) in &spec.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        for port in &spec.publish {
            args.push("-p".into());
            args.push(port.to_string());
        }
        for (k, v) in &spec.env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(spec.args.iter().cloned());
        args.push(spec.image.clone());
        args.extend(spec.command.iter().cloned());
        match docker_ok(&args) {
            Ok(id) => Ok(TestContainer {
                id,
                name,
                removed: AtomicBool::new(false),
            }),
            Err(e) => {
                // A container can be created and then fail to start (a port, a bad
                // entrypoint): it must not outlive the test either.
                let _ = docker_cli(["rm", "-f", "-v", name.as_str()]);
                Err(e)
            }
        }
    }

    /// The full container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's name (unique to this run).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host port `container_port/tcp` is published on (its IPv4 binding); panics when
    /// it is not published, or the container does not run.
    #[track_caller]
    pub fn host_port(&self, container_port: u16) -> u16 {
        match self.try_host_port(container_port) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// The host port `container_port/tcp` is published on (its IPv4 binding).
    ///
    /// Docker binds IPv4 and IPv6 apart; with the Debian engine here the two may be
    /// different ports, so this reads the IPv4 one.
    pub fn try_host_port(&self, container_port: u16) -> Result<u16, String> {
        let json = self.inspect("{{json .NetworkSettings.Ports}}");
        let ports: std::collections::HashMap<String, Option<Vec<PortBinding>>> = serde_json::from_str(&json)
            .map_err(|e| format!("container {}: ports {json:?}: {e}", self.name))?;
        let bindings = ports
            .get(&format!("{container_port}/tcp"))
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                format!(
                    "container {} does not publish {container_port}/tcp now (ports: {json})",
                    self.name
                )
            })?;
        bindings
            .iter()
            .filter(|b| b.host_ip.is_empty() || b.host_ip.parse::<Ipv4Addr>().is_ok())
            .find_map(|b| b.host_port.parse::<u16>().ok())
            .ok_or_else(|| {
                format!(
                    "container {}: {container_port}/tcp has no IPv4 binding ({json})",
                    self.name
                )
            })
    }

    /// `127.0.0.1:<host port of container_port>`: where a client on the host reaches it.
    #[track_caller]
    pub fn host_addr(&self, container_port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.host_port(container_port)))
    }

    /// The container's address on its (first) network, e.g. on the default bridge.
    #[track_caller]
    pub fn ip(&self) -> IpAddr {
        let json = self.inspect("{{json .NetworkSettings.Networks}}");
        let networks: std::collections::BTreeMap<String, NetworkEndpoint> = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("container {}: networks {json:?}: {e}", self.name));
        networks
            .values()
            .find_map(|n| n.ip_address.parse::<IpAddr>().ok())
            .unwrap_or_else(|| panic!("container {} has no address now ({json})", self.name))
    }

    /// `docker stop -t timeout_secs`: SIGTERM, then SIGKILL after the timeout. Returns how
    /// long the command took (the container has stopped when it returns).
    #[track_caller]
    pub fn stop(&self, timeout_secs: u32) -> Duration {
        let start = Instant::now();
        self.docker(&["stop", "-t", &timeout_secs.to_string()]);
        start.elapsed()
    }

    /// `docker kill` (SIGKILL).
    #[track_caller]
    pub fn kill(&self) {
        self.docker(&["kill"]);
    }

    /// `docker kill -s SIGNAL` (e.g. `"TERM"`, `"INT"`).
    #[track_caller]
    pub fn kill_with(&self, signal: &str) {
        self.docker(&["kill", "-s", signal]);
    }

    /// `docker restart` (stop with Docker's default timeout, then start). The published
    /// ports may move to other host ports: read them again.
    #[track_caller]
    pub fn restart(&self) {
        self.docker(&["restart"]);
    }

    /// `docker start` of a stopped container.
    #[track_caller]
    pub fn start(&self) {
        self.docker(&["start"]);
    }

    /// `docker pause`.
    #[track_caller]
    pub fn pause(&self) {
        self.docker(&["pause"]);
    }

    /// `docker unpause`.
    #[track_caller]
    pub fn unpause(&self) {
        self.docker(&["unpause"]);
    }

    /// `docker rm -f -v`: removes it now (dropping it later does nothing more).
    #[track_caller]
    pub fn rm(&self) {
        self.docker(&["rm", "-f", "-v"]);
        self.removed.store(true, Ordering::SeqCst);
    }

    /// Its state now.
    #[track_caller]
    pub fn state(&self) -> ContainerState {
        let json = self.inspect("{{json .State}}");
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("container {}: state {json:?}: {e}", self.name))
    }

    /// `docker inspect --format FORMAT`, trimmed.
    #[track_caller]
    pub fn inspect(&self, format: &str) -> String {
        self.docker_output(&["inspect", "--type", "container", "--format", format])
    }

    /// Its output so far (stdout and stderr, as `docker logs` gives them).
    #[track_caller]
    pub fn logs(&self) -> String {
        let out = docker_cli(["logs", self.id.as_str()]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until `container_port`'s host port answers `GET path` with any HTTP response;
    /// returns its address. Panics (with the container's logs) when it does not within
    /// `patience` (scaled by the patience factor).
    #[track_caller]
    pub fn wait_http(&self, container_port: u16, path: &str, patience: Duration) -> SocketAddr {
        let addr = self.host_addr(container_port);
        if let Err(e) = wait_http(addr, path, patience) {
            panic!("container {}: {e}\nits logs:\n{}", self.name, self.logs());
        }
        addr
    }

    /// Waits until it is no longer running, for at most `patience` (scaled); returns its
    /// exit code. Panics when it still runs.
    #[track_caller]
    pub fn wait_exited(&self, patience: Duration) -> i64 {
        let deadline = Instant::now() + scaled(patience);
        loop {
            let state = self.state();
            if !state.running && state.status != "restarting" {
                return state.exit_code;
            }
            if Instant::now() >= deadline {
                panic!(
                    "container {} still {} after {patience:?}",
                    self.name, state.status
                );
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    #[track_caller]
    fn docker(&self, args: &[&str]) {
        self.docker_output(args);
    }

    #[track_caller]
    fn docker_output(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.push(&self.id);
        match docker_ok(&all) {
            Ok(out) => out,
            Err(e) => panic!("container {}: {e}", self.name),
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        if !self.removed.load(Ordering::SeqCst) {
            let _ = docker_cli(["rm", "-f", "-v", self.id.as_str()]);
        }
    }
}

/// One entry of `.NetworkSettings.Ports`.
#[derive(Debug, Deserialize)]
struct PortBinding {
    #[serde(rename = "HostIp", default)]
    host_ip: String,
    #[serde(rename = "HostPort", default)]
    host_port: String,
}

/// One entry of `.NetworkSettings.Networks`.
#[derive(Debug, Deserialize)]
struct NetworkEndpoint {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

/// `hostalb-test-<prefix>-<pid>-<n>-<random>`: unique among the tests running now, in this
/// process and in others, and apart from the leftovers of earlier runs.
fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_PREFIX)
        .collect();
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let random = hasher.finish() & 0xff_ffff;
    let pid = std::process::id();
    if prefix.is_empty() {
        format!("hostalb-test-{pid}-{n}-{random:06x}")
    } else {
        format!("hostalb-test-{prefix}-{pid}-{n}-{random:06x}")
    }
}

/// Removes the test containers ([`TEST_LABEL`]) whose test process ([`OWNER_LABEL`]) is
/// gone: the leftovers of a run that crashed or was killed. Containers of test processes
/// still running are left alone, so parallel test binaries never remove each other's.
/// Returns how many it removed. Runs by itself before a process's first container.
///
/// To remove every test container whatever its owner (no tests running):
/// `docker rm -f $(docker ps -aq --filter label=io.hostalb.test=1)`.
pub fn remove_leftover_containers() -> usize {
    let format = format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let filter = format!("label={TEST_LABEL}=1");
    let Ok(listing) = docker_ok([
        "ps",
        "-a",
        "--filter",
        filter.as_str(),
        "--format",
        format.as_str(),
    ]) else {
        return 0;
    };
    let orphans: Vec<&str> = listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let id = words.next()?;
            let owner = words.next().and_then(|p| p.parse::<u32>().ok());
            match owner {
                Some(pid) if process_alive(pid) => None,
                _ => Some(id),
            }
        })
        .collect();
    if orphans.is_empty() {
        return 0;
    }
    let mut args = vec!["rm", "-f", "-v"];
    args.extend(orphans.iter().copied());
    let _ = docker_cli(&args);
    orphans.len()
}

/// Whether process `pid` exists on this host and has not exited.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any
        // character: read it after the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
