//! Driving `h2load` (Debian's nghttp2-client) for the HTTP/2 scenario: a fixed number of
//! streams over a few TLS connections that negotiate `h2` by ALPN, for a duration.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::procs::{self, Service};

/// One h2load run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub(crate) rps: f64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Mean and standard deviation of the request times (h2load reports no percentiles).
    pub(crate) mean_us: f64,
    pub(crate) sd_us: f64,
}

/// Runs `h2load` against `url` for `seconds` with `connections` connections of `streams`
/// concurrent streams each; its output goes to `log`.
pub(crate) fn run(
    bin: &PathBuf,
    url: &str,
    connections: usize,
    streams: usize,
    seconds: u64,
    log: &Path,
) -> Result<Outcome> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(connections.to_string())
        .arg("-m")
        .arg(streams.to_string())
        .arg("-t")
        .arg("1")
        .arg("-D")
        .arg(seconds.to_string())
        .arg(url);
    let mut svc = Service::spawn("h2load", &mut cmd, Signal::SIGTERM, log, false)?;
    let limit = Duration::from_secs(seconds + 20);
    let start = std::time::Instant::now();
    loop {
        procs::check_stop()?;
        match svc.check_alive() {
            Ok(()) if start.elapsed() > limit => bail!("h2load did not finish within {limit:?}"),
            Ok(()) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let text = fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    if let Some(p) = text
        .lines()
        .find_map(|l| l.strip_prefix("Application protocol: "))
    {
        if p.trim() != "h2" {
            bail!("it negotiated {} by ALPN, not h2", p.trim());
        }
    }
    parse(&text).with_context(|| format!("h2load output in {}:\n{}", log.display(), procs::tail(log, 20)))
}

fn parse(text: &str) -> Result<Outcome> {
    if !text.contains("Application protocol: h2") {
        bail!("h2 was not negotiated");
    }
    let mut o = Outcome::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("finished in ") {
            // finished in 5.00s, 12345.67 req/s, 1.23MB/s
            o.rps = rest
                .split(", ")
                .nth(1)
                .and_then(|w| w.strip_suffix(" req/s"))
                .and_then(|w| w.parse().ok())
                .context("req/s")?;
        } else if line.starts_with("requests:") {
            // requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
            let num = |label: &str| {
                words
                    .windows(2)
                    .find(|w| w[1].trim_end_matches(',') == label)
                    .and_then(|w| w[0].parse::<u64>().ok())
            };
            o.succeeded = num("succeeded").context("succeeded")?;
            o.failed = num("failed").unwrap_or(0) + num("errored").unwrap_or(0) + num("timeout").unwrap_or(0);
        } else if words.first() == Some(&"time")
            && words.get(1) == Some(&"for")
            && words.get(2) == Some(&"request:")
        {
            // time for request:  min  max  mean  sd  +/- sd
            o.mean_us = words.get(5).and_then(|w| micros(w)).context("mean")?;
            o.sd_us = words.get(6).and_then(|w| micros(w)).unwrap_or(0.0);
        }
    }
    if o.succeeded == 0 {
        bail!("no request succeeded");
    }
    Ok(o)
}

/// `123us`, `1.23ms`, `1.2s` in microseconds.
fn micros(w: &str) -> Option<f64> {
    if let Some(v) = w.strip_suffix("us") {
        v.parse().ok()
    } else if let Some(v) = w.strip_suffix("ms") {
        v.parse::<f64>().ok().map(|v| v * 1e3)
    } else if let Some(v) = w.strip_suffix('s') {
        v.parse::<f64>().ok().map(|v| v * 1e6)
    } else {
        None
    }
}
