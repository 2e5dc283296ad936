//! Tests against a real Docker engine, through the docker CLI.
//!
//! hostalb's discovery is tested with real containers: [`TestContainer`] runs one (the test
//! image by default: [`TEST_IMAGE`], whose program answers every request with its name and
//! the port it was reached on) and removes it when dropped. Every docker command goes to
//! [`docker_host`] and is bounded in time.
//!
//! A test that needs Docker calls [`require_docker`] first: without an engine or without
//! the test image it fails (it never skips) with the commands that provide them:
//!
//! ```text
//! scripts/test                          # provisions both, then runs every test
//! eval "$(scripts/docker-engine)"       # or: find or start an engine (as root: installs
//! scripts/docker-test-image             #     docker.io, starts dockerd), build the image
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use hostalb_testkit::docker::{ContainerSpec, TestContainer, http_get, require_docker};
//!
//! require_docker();
//! let c = TestContainer::run(ContainerSpec::new("web").publish(80).env("BACKEND_NAME", "web-1"));
//! let addr = c.wait_http(80, "/health", Duration::from_secs(10));
//! let resp = http_get(addr, "/", Duration::from_secs(2)).unwrap();
//! assert_eq!(resp.header("x-backend"), Some("web-1"));
//! c.stop(10);
//! ```
//!
//! The engine the project's scripts start themselves (the private engine, on
//! [`PRIVATE_DOCKER_HOST`]) can be stopped and started again by a test of a daemon
//! restart: [`stop_private_engine`], [`start_private_engine`].

mod cli;
mod container;
mod http;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use cli::{docker_cli, docker_cli_within, docker_ok};
pub use container::{ContainerSpec, ContainerState, TestContainer, remove_leftover_containers};
pub use http::{ContainerReply, http_get, http_request, wait_http};

/// The test image `scripts/docker-test-image` builds: `hostalb-testbackend` at `/backend`,
/// `ENTRYPOINT ["/backend"]`, `EXPOSE 80`.
pub const TEST_IMAGE: &str = "hostalb-test-backend:latest";

/// Label (value `1`) on every container a test starts.
pub const TEST_LABEL: &str = "io.hostalb.test";

/// Label holding the pid of the test process that started the container.
pub const OWNER_LABEL: &str = "io.hostalb.test.owner";

/// Where `scripts/docker-engine` starts its own engine when no other answers.
pub const PRIVATE_DOCKER_HOST: &str = "unix:///run/hostalb-docker/docker.sock";

/// The engine's default socket.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long the engine gets to answer `docker info`.
const INFO_PATIENCE: Duration = Duration::from_secs(20);

/// How long `scripts/docker-engine` may take to start or stop the private engine (it waits
/// 60 s for dockerd to answer, a minute for it to stop).
const SCRIPT_PATIENCE: Duration = Duration::from_secs(180);

/// The `DOCKER_HOST` every docker command of this module uses (and the one to give
/// hostalb): `$DOCKER_HOST` when set; otherwise the default socket when it answers, else
/// the private engine's socket when it answers, else the default socket. Chosen once per
/// process.
pub fn docker_host() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        if let Ok(host) = std::env::var("DOCKER_HOST")
            && !host.trim().is_empty()
        {
            return host;
        }
        [DEFAULT_DOCKER_HOST, PRIVATE_DOCKER_HOST]
            .into_iter()
            .find(|host| {
                let socket = host.trim_start_matches("unix://");
                std::path::Path::new(socket).exists() && engine_answers(host)
            })
            .unwrap_or(DEFAULT_DOCKER_HOST)
            .to_owned()
    })
    .clone()
}

fn engine_answers(host: &str) -> bool {
    let mut command = std::process::Command::new("docker");
    command
        .args(["info", "--format", "{{.ServerVersion}}"])
        .env("DOCKER_HOST", host)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cli::run_bounded(command, INFO_PATIENCE).status.success()
}

/// The workspace root (where `scripts/` is).
fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Ok when an engine answers at [`docker_host`] and holds [`TEST_IMAGE`]; otherwise what is
/// missing and exactly how to get it. Checked once per process.
pub fn docker_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE.get_or_init(check_available).clone()
}

fn check_available() -> Result<(), String> {
    let host = docker_host();
    let info = docker_cli_within(["info", "--format", "{{.ServerVersion}}"], INFO_PATIENCE);
    if !info.status.success() {
        return Err(instructions(&format!(
            "no Docker engine answers at DOCKER_HOST={host} (docker info: {})",
            String::from_utf8_lossy(&info.stderr).trim().trim_end_matches('.')
        )));
    }
    let image = docker_cli(["image", "inspect", "--format", "{{.Id}}", TEST_IMAGE]);
    if !image.status.success() {
        return Err(instructions(&format!(
            "the engine at DOCKER_HOST={host} has no image {TEST_IMAGE}"
        )));
    }
    Ok(())
}

fn instructions(problem: &str) -> String {
    let root = workspace_root();
    format!(
        "this test needs a Docker engine and the test image {TEST_IMAGE}, but {problem}.\n\
         Get both, then run the tests again from the same shell:\n\
         \x20   cd {root}\n\
         \x20   scripts/test                       # provisions Docker and the image, then runs every test\n\
         or only the Docker parts:\n\
         \x20   eval \"$(scripts/docker-engine)\"    # finds an engine, or (as root) installs docker.io and starts dockerd; exports DOCKER_HOST\n\
         \x20   scripts/docker-test-image          # builds {TEST_IMAGE} (static test backend, docker import)",
        root = root.display()
    )
}

/// Panics with [`docker_available`]'s instructions when Docker or the test image is
/// missing: a test that needs Docker fails without it, it never passes silently.
#[track_caller]
pub fn require_docker() {
    if let Err(e) = docker_available() {
        panic!("{e}");
    }
}

/// Stops the private engine (`scripts/docker-engine stop`), for a test of what happens
/// while Docker is down. Refused unless [`docker_host`] is [`PRIVATE_DOCKER_HOST`]: tests
/// only stop an engine the project's scripts started.
pub fn stop_private_engine() -> Result<(), String> {
    engine_script(&["stop"], "")
}

/// Starts the private engine again (`scripts/docker-engine`) with `dockerd_args` (such as
/// `--live-restore`) and waits until it answers. Refused unless [`docker_host`] is
/// [`PRIVATE_DOCKER_HOST`].
pub fn start_private_engine(dockerd_args: &str) -> Result<(), String> {
    engine_script(&["start"], dockerd_args)
}

fn engine_script(args: &[&str], dockerd_args: &str) -> Result<(), String> {
    let host = docker_host();
    if host != PRIVATE_DOCKER_HOST {
        return Err(format!(
            "DOCKER_HOST={host} is not the engine scripts/docker-engine starts ({PRIVATE_DOCKER_HOST}); \
             tests stop and start only that one. Run the tests with \
             DOCKER_HOST={PRIVATE_DOCKER_HOST} after `scripts/docker-engine` started it."
        ));
    }
    let script = workspace_root().join("scripts/docker-engine");
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script)
        .args(args)
        .env("DOCKER_HOST", &host)
        .env("HOSTALB_DOCKERD_ARGS", dockerd_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = cli::run_bounded(command, SCRIPT_PATIENCE);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed ({}): {}",
            script.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
