//! `hostalb`: command-line wiring only. The work is done by hostalb-config (what a user
//! writes), hostalb-proxy (the data plane and its control loop) and, for `demo`, the
//! local backends in `demo.rs`.

// The command line prints its results for people and scripts to read.
#![allow(clippy::print_stdout)]

mod api;
mod demo;
mod discovery;
mod embedded;
mod import;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hostalb_config::{Overlay, Severity};
use hostalb_proxy::{ConfigSource, Event, Exit, Proxy, Supervisor};

#[derive(Debug, Parser)]
#[command(
    name = "hostalb",
    version,
    about = "An Application Load Balancer for one host: Docker discovery, ALB listener rules, health checks."
)]
struct Cli {
    /// How log lines are written to standard error: `text` for people, `json` (one object
    /// per line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HOSTALB_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve: listeners, admin API and (with Docker) discovery. Without --config the
    /// embedded default is used: listener 0.0.0.0:8080, admin 127.0.0.1:9901, target
    /// groups and rules from container labels.
    Run {
        /// Configuration file (TOML, or JSON by its .json extension).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Worker threads of the runtime (default: one per core).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
        #[command(flatten)]
        embedded: EmbeddedArgs,
        /// Without --config: seconds a label-declared target group stays once no
        /// container declares it (its rule answers 503 meanwhile) [env:
        /// HOSTALB_LABEL_GROUP_GRACE] [default: 60]
        #[arg(long, value_name = "SECONDS")]
        label_group_grace: Option<f64>,
    },
    /// Validate a configuration file: print every problem; exit 1 when any is an error.
    /// Without --config: print the embedded default and validate it.
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        embedded: EmbeddedArgs,
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

/// The embedded default's addresses.
#[derive(Debug, clap::Args)]
struct EmbeddedArgs {
    /// Without --config: the listener's address [env: HOSTALB_LISTEN] [default:
    /// 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Without --config: the admin API's address [env: HOSTALB_ADMIN] [default:
    /// 127.0.0.1:9901]
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { config, embedded } => {
            let flags = embedded::Flags {
                listen: embedded.listen,
                admin: embedded.admin,
                label_group_grace: None,
            };
            match settings(flags, config.is_some()) {
                Ok(e) => check(config, e.addresses),
                Err(code) => code,
            }
        }
        Command::Import { files, output } => import::run(&files, output.as_deref()),
        Command::Run {
            config,
            workers,
            embedded,
            label_group_grace,
        } => {
            let flags = embedded::Flags {
                listen: embedded.listen,
                admin: embedded.admin,
                label_group_grace,
            };
            let settings = match settings(flags, config.is_some()) {
                Ok(e) => e,
                Err(code) => return code,
            };
            raise_descriptor_limit();
            let source = match config {
                Some(path) => ConfigSource::File(path),
                None => ConfigSource::Embedded,
            };
            with_runtime(workers, run(source, settings))
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

/// The embedded default's settings from flags and environment; a refusal is printed and
/// becomes exit code 2 (a usage error, as the command-line parser's own).
fn settings(flags: embedded::Flags, file: bool) -> Result<embedded::Embedded, ExitCode> {
    match embedded::resolve(flags, file, |name| std::env::var(name).ok()) {
        Ok(r) => {
            for name in r.ignored {
                tracing::warn!(
                    "{name} is ignored: it changes the embedded default, and --config names a file"
                );
            }
            Ok(r.embedded)
        }
        Err(message) => {
            eprintln!("hostalb: {message}");
            Err(ExitCode::from(2))
        }
    }
}

/// The log filter when RUST_LOG is not set: hostalb's own events from `info` up. rustls
/// warns of what clients send (an IP address as SNI, as wrk and many scripts do), once per
/// handshake: a client could flood the log with it, so only its errors are shown.
const DEFAULT_LOG_FILTER: &str = "info,rustls=error";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Not flattened: an event's own `target` field (a target address) must not clash
        // with the module path the formatter writes as `target`.
        LogFormat::Json => builder.json().init(),
    }
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

/// `hostalb check`: every problem on stdout, a summary line, exit 0 or 1. Without a file:
/// the embedded default's text first (with the addresses given), then its check.
fn check(path: Option<PathBuf>, addresses: hostalb_config::EmbeddedAddresses) -> ExitCode {
    let (origin, result) = match &path {
        Some(path) => (path.display().to_string(), hostalb_config::load(path)),
        None => {
            let text = hostalb_config::embedded_default_text(&addresses);
            println!("{}", text.trim_end());
            println!();
            let origin = hostalb_config::EMBEDDED_ORIGIN;
            (
                origin.to_owned(),
                hostalb_config::parse(&text, hostalb_config::Format::Toml, origin),
            )
        }
    };
    let mut state = None;
    let (problems, valid) = match result {
        Ok(loaded) => {
            // Certificate, key and trust-store files must load, as they will when served.
            let files = hostalb_proxy::tls_file_problems(&loaded.config);
            let valid = files.is_empty();
            // The state file the run would read, beside the file (when there is one).
            if let Some(path) = &path {
                state = Some(api::check::check(path, &loaded.config));
            }
            (loaded.warnings.into_iter().chain(files).collect(), valid)
        }
        Err(e) => (e.problems(), false),
    };
    for p in &problems {
        println!("{origin}: {p}");
    }
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    if valid {
        println!("{origin}: valid ({warnings} warning(s))");
    } else {
        println!("{origin}: invalid: {errors} error(s), {warnings} warning(s)");
    }
    let state_valid = state.as_ref().is_none_or(|s| s.errors.is_empty());
    if let Some(s) = state.as_ref().filter(|s| s.exists) {
        let shown = s.path.display();
        for e in &s.errors {
            println!("{shown}: error: {e}");
        }
        for w in &s.warnings {
            println!("{shown}: warning: {w}");
        }
        if s.errors.is_empty() {
            println!("{shown}: state file valid ({} warning(s))", s.warnings.len());
        } else {
            println!(
                "{shown}: state file invalid: {} error(s), {} warning(s); `hostalb run` would refuse to start with it",
                s.errors.len(),
                s.warnings.len()
            );
        }
    }
    if valid && state_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `hostalb run`: serve until a signal ends it. Prints the bound addresses on stdout
/// (`listening admin ADDR`, `listening listener NAME ADDR`, then `ready`).
async fn run(source: ConfigSource, settings: embedded::Embedded) -> ExitCode {
    // Without a configuration file, container labels declare target groups and rules.
    let labels = (source == ConfigSource::Embedded).then_some(discovery::LabelMode {
        addresses: settings.addresses,
        grace: settings.label_group_grace,
    });
    let overlay = Overlay {
        addresses: settings.addresses,
        label_groups: Vec::new(),
    };
    let loaded = match source.load_with(&overlay) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hostalb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let grace = drain_grace(&loaded.config);
    // What the AWS API made, kept in the state file: refused at start when it cannot be
    // read, before anything is bound.
    let config_file = match &source {
        ConfigSource::File(p) => Some(p.clone()),
        ConfigSource::Embedded => None,
    };
    let state_path = api::state::path_for(loaded.config.admin.state_file.as_deref(), config_file.as_deref());
    let state = match api::state::load(&state_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hostalb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy = match Proxy::start(loaded, source).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hostalb: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Reloads (SIGHUP, POST /api/reload) keep the addresses given.
    proxy.record_overlay(overlay);
    let aws = std::sync::Arc::new(api::Api::new(
        proxy.clone(),
        state,
        state_path.clone(),
        proxy.admin_address(),
    ));
    if let Err(e) = aws.start().await {
        eprintln!(
            "hostalb: state file {}: its resources do not fit the configuration: {e}\n  fix: change the configuration file, or move the state file away",
            state_path.display()
        );
        return ExitCode::FAILURE;
    }
    proxy.install_aws_api(aws);
    let discovery = discovery::start(&proxy, labels);
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
