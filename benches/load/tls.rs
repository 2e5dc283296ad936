//! The TLS scenarios' pieces: one ECDSA P-256 certificate for every proxy (made with the
//! `openssl` command), a check of what a handshake negotiates (`openssl s_client`), and
//! new-connection load with `openssl s_time -new`: every connection a full TLS 1.3
//! handshake (s_time's `-new` never offers a session to resume), one `GET` over HTTP/1.0,
//! and the close.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::procs::{self, Service};

/// The certificate and key every proxy serves, and the two in one file (HAProxy's form).
#[derive(Debug)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) combined: PathBuf,
}

/// Makes a self-signed ECDSA P-256 certificate in `dir`.
pub(crate) fn make_cert(openssl: &Path, dir: &Path) -> Result<TlsFiles> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .context("running openssl req")?;
    if !out.status.success() {
        bail!("openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let combined = dir.join("combined.pem");
    let mut both = fs::read(&cert).context("reading the certificate")?;
    both.extend(fs::read(&key).context("reading the key")?);
    fs::write(&combined, both).context("writing the combined PEM")?;
    // nginx workers run as an unprivileged user when started by root.
    use std::os::unix::fs::PermissionsExt;
    for f in [&cert, &key, &combined] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the permissions of {}", f.display()))?;
    }
    Ok(TlsFiles { cert, key, combined })
}

/// What one handshake with `addr` negotiated, from `openssl s_client -brief`, after
/// checking that `GET path` is answered 200: e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384,
/// ECDSA, X25519".
pub(crate) fn check(openssl: &Path, addr: SocketAddr, path: &str) -> Result<String> {
    let mut child = Command::new(openssl)
        .args(["s_client", "-brief", "-tls1_3", "-ign_eof", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl s_client")?;
    if let Some(mut i) = child.stdin.take() {
        let _ = write!(i, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    }
    if procs::wait_bounded(&mut child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("openssl s_client to {addr} did not finish within 10 s");
    }
    let out = child.wait_with_output().context("openssl s_client output")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let status_ok = stdout.lines().next().is_some_and(|l| l.contains(" 200 "));
    let protocol = field("Protocol version:");
    if !status_ok || protocol != "TLSv1.3" {
        bail!("{addr}: GET {path} over TLS 1.3 failed:\n{stderr}\n{stdout}");
    }
    Ok(format!(
        "{protocol} {}, {}, {}",
        field("Ciphersuite:"),
        field("Signature type:"),
        field("Server Temp Key:")
    ))
}

/// New connections made by `clients` `openssl s_time -new` processes in parallel for
/// `seconds`: (connections, seconds from the start to the last client's end, timed here:
/// s_time's own figure is in whole seconds).
pub(crate) fn s_time(
    openssl: &Path,
    addr: SocketAddr,
    path: &str,
    clients: usize,
    seconds: u64,
    log_dir: &Path,
    label: &str,
) -> Result<(u64, f64)> {
    let mut running = Vec::new();
    let start = std::time::Instant::now();
    for i in 0..clients {
        let log = log_dir.join(format!("{label}-s_time-{i}.txt"));
        let mut cmd = Command::new(openssl);
        cmd.args(["s_time", "-new", "-tls1_3", "-connect"])
            .arg(addr.to_string())
            .args(["-www", path, "-time"])
            .arg(seconds.to_string());
        running.push((
            Service::spawn("openssl s_time", &mut cmd, Signal::SIGTERM, &log, false)?,
            log,
        ));
    }
    let limit = Duration::from_secs(seconds + 20);
    let mut connections = 0u64;
    for (mut svc, log) in running {
        loop {
            procs::check_stop()?;
            match svc.check_alive() {
                Ok(()) if start.elapsed() > limit => bail!("openssl s_time did not finish within {limit:?}"),
                Ok(()) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let text = fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        let n = parse_s_time(&text).with_context(|| {
            format!(
                "openssl s_time output in {}:\n{}",
                log.display(),
                procs::tail(&log, 10)
            )
        })?;
        connections += n;
    }
    Ok((connections, start.elapsed().as_secs_f64()))
}

/// The connections of `1234 connections in 5 real seconds, 140 bytes read per
/// connection`, when each read a response.
fn parse_s_time(text: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.contains(" connections in ") && l.contains(" real seconds"))
        .context("no `connections in N real seconds` line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let n: u64 = words
        .first()
        .and_then(|w| w.parse().ok())
        .context("connections")?;
    let bytes: u64 = words.get(6).and_then(|w| w.parse().ok()).context("bytes read")?;
    if n == 0 || bytes == 0 {
        bail!("no connection succeeded with a response");
    }
    Ok(n)
}
