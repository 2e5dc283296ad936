//! `hostalb`: command-line wiring only. The work is done by hostalb-config (what a user
//! writes), hostalb-proxy (the data plane and its control loop) and, for `demo`, the
//! local backends in `demo.rs`.

// The command line prints its results for people and scripts to read.
#![allow(clippy::print_stdout)]

mod demo;
mod discovery;
mod import;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hostalb_config::Severity;
use hostalb_proxy::{ConfigSource, Event, Exit, Proxy, Supervisor};

#[derive(Debug, Parser)]
#[command(
    name = "hostalb",
    version,
    about = "An Application Load Balancer for one host: Docker discovery, ALB listener rules, health checks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve: listeners, admin API and (with Docker) discovery. Without --config the
    /// embedded default is used.
    Run {
        /// Configuration file (TOML, or JSON by its .json extension).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Worker threads of the runtime (default: one per core).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Validate a configuration file: print every problem; exit 1 when any is an error.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// A self-contained showcase without Docker: three local backends, two target
    /// groups, weighted and fixed-response rules. Runs until Ctrl-C.
    Demo {
        /// Port of the demo listener (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Port of the admin API (0 picks a free one).
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
    /// Write a configuration from `aws elbv2 describe-*` and `aws ecs describe-services |
    /// describe-task-definition` JSON output; what cannot be carried over is listed on
    /// stderr. Give describe-target-group-attributes output as NAME_OR_ARN=FILE.
    Import {
        /// Describe output (JSON); NAME_OR_ARN=FILE for attributes output; a directory
        /// stands for its .json files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<String>,
        /// Where to write the configuration (default: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => check(config),
        Command::Import { files, output } => import::run(&files, output.as_deref()),
        Command::Run { config, workers } => {
            raise_descriptor_limit();
            let source = match config {
                Some(path) => ConfigSource::File(path),
                None => ConfigSource::Embedded,
            };
            with_runtime(workers, run(source))
        }
        Command::Demo { port, admin_port } => {
            raise_descriptor_limit();
            with_runtime(None, demo::run(port, admin_port))
        }
    }
}

/// Raises the soft descriptor limit to the hard one before anything is opened (as Go's
/// runtime and HAProxy do); the client connection budget is derived from the result.
fn raise_descriptor_limit() {
    match hostalb_proxy::raise_descriptor_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(from = before, to = after, "descriptor limit raised")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn with_runtime(workers: Option<usize>, main: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("hostalb-worker");
    if let Some(n) = workers {
        builder.worker_threads(n.max(1));
    }
    match builder.build() {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("hostalb: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hostalb check`: every problem on stdout, a summary line, exit 0 or 1.
fn check(path: PathBuf) -> ExitCode {
    let origin = path.display().to_string();
    let (problems, valid) = match hostalb_config::load(&path) {
        Ok(loaded) => (loaded.warnings, true),
        Err(e) => (e.problems(), false),
    };
    for p in &problems {
        println!("{origin}: {p}");
    }
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    if valid {
        println!("{origin}: valid ({warnings} warning(s))");
        ExitCode::SUCCESS
    } else {
        println!("{origin}: invalid: {errors} error(s), {warnings} warning(s)");
        ExitCode::FAILURE
    }
}

/// `hostalb run`: serve until a signal ends it. Prints the bound addresses on stdout
/// (`listening admin ADDR`, `listening listener NAME ADDR`, then `ready`).
async fn run(source: ConfigSource) -> ExitCode {
    let loaded = match source.load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hostalb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let grace = drain_grace(&loaded.config);
    // Without a configuration file, container labels declare target groups and rules.
    let label_groups = source == ConfigSource::Embedded;
    let proxy = match Proxy::start(loaded, source).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hostalb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let discovery = discovery::start(&proxy, label_groups);
    let code = serve(proxy, grace).await;
    discovery.abort();
    code
}

/// Prints where hostalb listens, now and after reloads that bind new listeners.
pub(crate) fn announce(proxy: &Proxy) {
    let mut events = proxy.subscribe();
    println!("listening admin {}", proxy.admin_address());
    for (name, address) in proxy.listeners() {
        println!("listening listener {name} {address}");
    }
    println!("ready");
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::ListenerBound { name, address }) => println!("listening listener {name} {address}"),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Installs the signal handlers, announces readiness, and runs until a signal; maps how
/// it ended to the exit code.
pub(crate) async fn serve(proxy: Proxy, grace: std::time::Duration) -> ExitCode {
    serve_then(proxy, grace, || {}).await
}

/// [`serve`], calling `after_ready` once readiness has been announced.
pub(crate) async fn serve_then(
    proxy: Proxy,
    grace: std::time::Duration,
    after_ready: impl FnOnce(),
) -> ExitCode {
    let supervisor = match Supervisor::install(proxy.clone(), grace) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hostalb: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    announce(&proxy);
    after_ready();
    match supervisor.run().await {
        Exit::Drained => ExitCode::SUCCESS,
        Exit::GraceExpired => ExitCode::from(1),
        Exit::Immediate => ExitCode::from(130),
    }
}

/// In-flight requests get as long as the longest listener idle timeout to finish: a
/// request silent for longer would be cut by that timeout anyway.
fn drain_grace(config: &hostalb_config::Config) -> std::time::Duration {
    config
        .listeners
        .iter()
        .map(|l| l.idle_timeout)
        .max()
        .unwrap_or(hostalb_config::defaults::IDLE_TIMEOUT)
}
