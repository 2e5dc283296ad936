//! Driving `h2load` (Debian's nghttp2-client) for the HTTP/2 scenario: a fixed number of
//! streams over a few TLS connections that negotiate `h2` by ALPN, for a duration; GETs,
//! or POSTs of a file's content with extra headers (the gRPC scenario's calls).
//!
//! hostalb sends GOAWAY after ALB's 10,000 streams on a connection, and h2load does not
//! reconnect: a timed h2load run against it stops after 10,000 requests per connection.
//! So a round is a series of h2load runs of [`REQUESTS_PER_CONNECTION`] requests on each
//! connection, one after the other until the round's time is up, for every proxy alike
//! (each proxy then takes a TLS handshake per 10,000 requests per connection).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::procs::{self, Service};

/// Requests on each connection of one h2load run: ALB's (and hostalb's) limit of streams
/// per connection, after which the server sends GOAWAY.
pub(crate) const REQUESTS_PER_CONNECTION: u64 = 10_000;

/// Longest an h2load run of [`REQUESTS_PER_CONNECTION`] requests per connection may
/// take: far more than any proxy here needs.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// One h2load run, or a series of them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub(crate) rps: f64,
    /// h2load's own measured time (the sum over a series).
    pub(crate) seconds: f64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Mean and standard deviation of the request times (h2load reports no percentiles).
    pub(crate) mean_us: f64,
    pub(crate) sd_us: f64,
}

/// What each request is: a GET of the URL, or a POST of `body` (a file) with `headers`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    pub(crate) body: Option<PathBuf>,
    pub(crate) headers: Vec<String>,
}

/// h2load runs of [`REQUESTS_PER_CONNECTION`] requests per connection, one after the
/// other, until `seconds` have passed (at least one run); the logs are `log` with `-N`
/// before the extension. Requests and time are summed, the request time averaged.
pub(crate) fn run_for(
    bin: &PathBuf,
    url: &str,
    call: &Call,
    connections: usize,
    streams: usize,
    seconds: u64,
    log: &Path,
) -> Result<Outcome> {
    let requests = REQUESTS_PER_CONNECTION * connections as u64;
    let start = std::time::Instant::now();
    let limit = Duration::from_secs(seconds);
    let mut runs: Vec<Outcome> = Vec::new();
    // Bounded: each run takes time, and the series stops at `seconds` or a runaway count.
    let max_runs = 10_000;
    while runs.is_empty() || (start.elapsed() < limit && runs.len() < max_runs) {
        procs::check_stop()?;
        let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or("h2load");
        let one = log.with_file_name(format!("{stem}-{}.txt", runs.len() + 1));
        runs.push(run(bin, url, call, connections, streams, requests, &one)?);
    }
    let succeeded: u64 = runs.iter().map(|o| o.succeeded).sum();
    let seconds: f64 = runs.iter().map(|o| o.seconds).sum();
    let n = succeeded.max(1) as f64;
    // The mean and standard deviation over all requests, from each run's.
    let mean = runs.iter().map(|o| o.mean_us * o.succeeded as f64).sum::<f64>() / n;
    let square = runs
        .iter()
        .map(|o| (o.sd_us * o.sd_us + o.mean_us * o.mean_us) * o.succeeded as f64)
        .sum::<f64>()
        / n;
    Ok(Outcome {
        rps: if seconds > 0.0 {
            succeeded as f64 / seconds
        } else {
            0.0
        },
        seconds,
        succeeded,
        failed: runs.iter().map(|o| o.failed).sum(),
        mean_us: mean,
        sd_us: (square - mean * mean).max(0.0).sqrt(),
    })
}

/// Runs `h2load` against `url` with `connections` connections of `streams` concurrent
/// streams each, `requests` in all; its output goes to `log`. Fails unless `h2` was
/// negotiated by ALPN.
pub(crate) fn run(
    bin: &PathBuf,
    url: &str,
    call: &Call,
    connections: usize,
    streams: usize,
    requests: u64,
    log: &Path,
) -> Result<Outcome> {
    let mut cmd = Command::new(bin);
    if let Some(body) = &call.body {
        cmd.arg("-d").arg(body);
    }
    for h in &call.headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg("-c")
        .arg(connections.to_string())
        .arg("-m")
        .arg(streams.to_string())
        .arg("-t")
        .arg("1");
    cmd.arg("-n").arg(requests.to_string()).arg(url);
    let mut svc = Service::spawn("h2load", &mut cmd, Signal::SIGTERM, log, false)?;
    let limit = RUN_LIMIT;
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
            o.seconds = rest
                .split(", ")
                .next()
                .and_then(micros)
                .map(|us| us / 1e6)
                .context("the time")?;
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
