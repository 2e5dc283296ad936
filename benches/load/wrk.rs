//! Driving `wrk`: a Lua `done` hook prints its summary as one machine-readable line
//! (latency percentiles in microseconds), so nothing depends on wrk's human units.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::procs::{self, Service};

const MARK: &str = "HOSTALB_WRK";

const SCRIPT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("HOSTALB_WRK %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

#[derive(Debug)]
pub(crate) struct Wrk {
    bin: PathBuf,
    script: PathBuf,
    pub(crate) threads: usize,
    pub(crate) connections: usize,
}

/// One wrk run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) bytes: u64,
    pub(crate) connect_errors: u64,
    pub(crate) read_errors: u64,
    pub(crate) write_errors: u64,
    /// Responses with a status of 400 or more.
    pub(crate) status_errors: u64,
    pub(crate) timeouts: u64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

impl Outcome {
    pub(crate) fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.status_errors + self.timeouts
    }
}

impl Wrk {
    pub(crate) fn new(bin: PathBuf, dir: &Path, threads: usize, connections: usize) -> Result<Wrk> {
        let script = dir.join("report.lua");
        fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
        Ok(Wrk {
            bin,
            script,
            threads,
            connections,
        })
    }

    /// Runs wrk against `url` for `seconds`; its output goes to `log`.
    pub(crate) fn run(&self, url: &str, seconds: u64, log: &Path) -> Result<Outcome> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-t")
            .arg(self.threads.to_string())
            .arg("-c")
            .arg(self.connections.to_string())
            .arg("-d")
            .arg(format!("{seconds}s"))
            .arg("--timeout")
            .arg("2s")
            .arg("--latency")
            .arg("-s")
            .arg(&self.script)
            .arg(url);
        let mut svc = Service::spawn("wrk", &mut cmd, Signal::SIGTERM, log, false)?;
        // wrk stops by itself after `seconds`; the bound covers a wedged client.
        let limit = Duration::from_secs(seconds + 20);
        let start = std::time::Instant::now();
        loop {
            procs::check_stop()?;
            match svc.check_alive() {
                Ok(()) if start.elapsed() > limit => bail!("wrk did not finish within {limit:?}"),
                Ok(()) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let text = fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
        parse(&text).with_context(|| format!("wrk output in {}:\n{}", log.display(), procs::tail(log, 20)))
    }
}

fn parse(text: &str) -> Result<Outcome> {
    let Some(line) = text.lines().find_map(|l| l.strip_prefix(MARK)) else {
        bail!("no summary line from wrk");
    };
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if v.len() != 12 {
        bail!("wrk summary has {} fields, expected 12: {line}", v.len());
    }
    Ok(Outcome {
        requests: v[0] as u64,
        seconds: v[1] / 1e6,
        bytes: v[2] as u64,
        connect_errors: v[3] as u64,
        read_errors: v[4] as u64,
        write_errors: v[5] as u64,
        status_errors: v[6] as u64,
        timeouts: v[7] as u64,
        p50_us: v[8],
        p90_us: v[9],
        p99_us: v[10],
        max_us: v[11],
    })
}
