//! Results: per-round figures, medians, ratios, the table on stdout, JSON and an SVG chart.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// The proxies hostalb is compared with, in the order of the tables.
pub(crate) const PEERS: [&str; 5] = ["nginx", "haproxy", "envoy", "traefik", "caddy"];

/// One measured round of one target under wrk.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Round {
    pub(crate) rps: f64,
    pub(crate) requests: u64,
    /// Bytes wrk read per second (headers and bodies).
    pub(crate) read_bps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
    pub(crate) cpu_us_per_req: f64,
    pub(crate) hwm_kb: u64,
    pub(crate) errors: u64,
    pub(crate) status_errors: u64,
    pub(crate) socket_errors: u64,
    pub(crate) reloads: u64,
    pub(crate) reload_failures: u64,
    pub(crate) processes: usize,
    /// Scenario (h): what the slow readers beside wrk got meanwhile (body bytes per
    /// second, whole responses, failed connections).
    pub(crate) slow_bps: f64,
    pub(crate) slow_responses: u64,
    pub(crate) slow_errors: u64,
}

impl Round {
    fn json(&self) -> Value {
        let mut v = json!({
            "rps": round2(self.rps), "requests": self.requests, "read_mib_per_s": round2(self.read_bps / 1048576.0),
            "p50_us": self.p50_us, "p90_us": self.p90_us, "p99_us": self.p99_us, "max_us": self.max_us,
            "cpu_us_per_request": round3(self.cpu_us_per_req), "peak_rss_kb": self.hwm_kb,
            "errors": self.errors, "non_2xx_3xx": self.status_errors, "socket_errors": self.socket_errors,
            "reloads": self.reloads, "reload_failures": self.reload_failures, "processes": self.processes,
        });
        if self.slow_responses > 0 || self.slow_bps > 0.0 || self.slow_errors > 0 {
            v["slow_readers"] = json!({
                "mib_per_s": round2(self.slow_bps / 1048576.0), "responses": self.slow_responses,
                "errors": self.slow_errors,
            });
        }
        v
    }
}

/// One upload of scenario (i).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UploadRound {
    pub(crate) seconds: f64,
    /// The proxy's CPU time over the uploads of its round, per upload (NaN: not measured).
    pub(crate) cpu_ms: f64,
}

/// One round of scenario (f).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdleRound {
    pub(crate) rss_before_kb: u64,
    pub(crate) rss_open_kb: u64,
    pub(crate) hwm_kb: u64,
    pub(crate) opened: u64,
    pub(crate) failed: u64,
    pub(crate) still_open: u64,
    pub(crate) open_seconds: f64,
}

/// The rounds of one target (or target variant) in one scenario.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) rounds: Vec<Round>,
    pub(crate) idle: Vec<IdleRound>,
    pub(crate) uploads: Vec<UploadRound>,
    pub(crate) notes: Vec<String>,
}

impl Series {
    pub(crate) fn new(label: &str) -> Series {
        Series {
            label: label.to_owned(),
            rounds: Vec::new(),
            idle: Vec::new(),
            uploads: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Median seconds of an upload.
    pub(crate) fn upload_s(&self) -> f64 {
        median(self.uploads.iter().map(|u| u.seconds).collect())
    }

    /// Median CPU milliseconds per upload; NaN when not measured (the sink itself).
    fn upload_cpu_ms(&self) -> f64 {
        let measured: Vec<f64> = self
            .uploads
            .iter()
            .map(|u| u.cpu_ms)
            .filter(|c| c.is_finite())
            .collect();
        if measured.is_empty() {
            f64::NAN
        } else {
            median(measured)
        }
    }

    fn has_slow(&self) -> bool {
        self.rounds
            .iter()
            .any(|r| r.slow_responses > 0 || r.slow_bps > 0.0 || r.slow_errors > 0)
    }

    fn slow_bps(&self) -> f64 {
        self.med(|r| r.slow_bps)
    }

    fn med(&self, f: impl Fn(&Round) -> f64) -> f64 {
        median(self.rounds.iter().map(f).collect())
    }

    pub(crate) fn rps(&self) -> f64 {
        self.med(|r| r.rps)
    }
    pub(crate) fn p50(&self) -> f64 {
        self.med(|r| r.p50_us)
    }
    pub(crate) fn p99(&self) -> f64 {
        self.med(|r| r.p99_us)
    }
    pub(crate) fn cpu(&self) -> f64 {
        self.med(|r| r.cpu_us_per_req)
    }
    pub(crate) fn hwm_kb(&self) -> f64 {
        self.med(|r| r.hwm_kb as f64)
    }
    pub(crate) fn errors(&self) -> u64 {
        self.rounds.iter().map(|r| r.errors).sum()
    }
    fn reloads(&self) -> (u64, u64) {
        (
            self.rounds.iter().map(|r| r.reloads).sum(),
            self.rounds.iter().map(|r| r.reload_failures).sum(),
        )
    }
    fn idle_med(&self, f: impl Fn(&IdleRound) -> f64) -> f64 {
        median(self.idle.iter().map(f).collect())
    }

    /// Resident memory before the first round of idle connections (KB).
    fn idle_base_kb(&self) -> f64 {
        self.idle.first().map_or(0.0, |r| r.rss_before_kb as f64)
    }

    fn json(&self) -> Value {
        let mut v = json!({ "target": self.label, "notes": self.notes });
        if !self.rounds.is_empty() {
            let (reloads, reload_failures) = self.reloads();
            v["median"] = json!({
                "rps": round2(self.rps()), "p50_us": self.p50(), "p99_us": self.p99(),
                "cpu_us_per_request": round3(self.cpu()), "peak_rss_kb": self.hwm_kb(),
            });
            if self.has_slow() {
                v["median"]["slow_readers_mib_per_s"] = json!(round2(self.slow_bps() / 1048576.0));
            }
            v["errors_total"] = json!(self.errors());
            v["reloads_total"] = json!(reloads);
            v["reload_failures_total"] = json!(reload_failures);
            v["rounds"] = Value::Array(self.rounds.iter().map(Round::json).collect());
        }
        if !self.uploads.is_empty() {
            v["median"] = json!({
                "upload_ms": round2(self.upload_s() * 1e3),
                "cpu_ms_per_upload": Some(self.upload_cpu_ms()).filter(|c| c.is_finite()).map(round2),
            });
            v["uploads"] = Value::Array(
                self.uploads
                    .iter()
                    .map(|u| {
                        json!({ "ms": round2(u.seconds * 1e3), "cpu_ms": Some(u.cpu_ms).filter(|c| c.is_finite()).map(round2) })
                    })
                    .collect(),
            );
        }
        if !self.idle.is_empty() {
            v["median"] = json!({
                "rss_before_kb": self.idle_base_kb(),
                "kb_per_connection": round2(self.idle_med(|r| {
                    (r.rss_open_kb as f64 - self.idle_base_kb()) / (r.opened.max(1) as f64)
                })),
                "rss_open_kb": self.idle_med(|r| r.rss_open_kb as f64),
                "peak_rss_kb": self.idle_med(|r| r.hwm_kb as f64),
                "open_seconds": round2(self.idle_med(|r| r.open_seconds)),
            });
            v["rounds"] = Value::Array(
                self.idle
                    .iter()
                    .map(|r| {
                        json!({
                            "rss_before_kb": r.rss_before_kb, "rss_open_kb": r.rss_open_kb,
                            "peak_rss_kb": r.hwm_kb, "opened": r.opened, "failed": r.failed,
                            "still_open": r.still_open, "open_seconds": round2(r.open_seconds),
                        })
                    })
                    .collect(),
            );
        }
        v
    }
}

/// A scenario's results.
#[derive(Debug, Clone)]
pub(crate) struct ScenarioResult {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) series: Vec<Series>,
    /// (g): milliseconds per start and failures.
    pub(crate) docker_ms: Vec<f64>,
    pub(crate) docker_run_ms: Vec<f64>,
    pub(crate) docker_failures: Vec<String>,
    /// (i): the size of one upload, MiB.
    pub(crate) upload_mib: f64,
    pub(crate) notes: Vec<String>,
}

impl ScenarioResult {
    pub(crate) fn new(name: &str, title: &str) -> ScenarioResult {
        ScenarioResult {
            name: name.to_owned(),
            title: title.to_owned(),
            series: Vec::new(),
            docker_ms: Vec::new(),
            docker_run_ms: Vec::new(),
            docker_failures: Vec::new(),
            upload_mib: 0.0,
            notes: Vec::new(),
        }
    }

    fn get(&self, label: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.label == label && !s.rounds.is_empty())
    }

    /// hostalb against each other proxy, variant by variant (`hostalb+reload` against
    /// `nginx+reload`): (label, other, cpu ratio, rps ratio, p99 ratio).
    pub(crate) fn ratios(&self) -> Vec<(String, String, f64, f64, f64)> {
        let mut out = Vec::new();
        for h in self
            .series
            .iter()
            .filter(|s| s.label.starts_with("hostalb") && !s.rounds.is_empty())
        {
            for other in PEERS {
                let label = h.label.replacen("hostalb", other, 1);
                if let Some(o) = self.get(&label) {
                    out.push((
                        h.label.clone(),
                        label,
                        ratio(h.cpu(), o.cpu()),
                        ratio(h.rps(), o.rps()),
                        ratio(h.p99(), o.p99()),
                    ));
                }
            }
        }
        out
    }

    /// The floor: each proxy's CPU per request above the backend's own (the `direct`
    /// row, the same connections straight at the backend): what the proxy adds, which is
    /// what a proxy can cut. (label, CPU us/req, minus direct's); empty without `direct`,
    /// and beside the readers of (h), whose large responses the CPU per request includes
    /// and which get another share of the machine direct than through a proxy.
    pub(crate) fn above_floor(&self) -> Vec<(String, f64, f64)> {
        if self.series.iter().any(Series::has_slow) {
            return Vec::new();
        }
        let Some(direct) = self.get("direct") else {
            return Vec::new();
        };
        let floor = direct.cpu();
        self.series
            .iter()
            .filter(|s| s.label != "direct" && !s.label.ends_with("+reload") && !s.rounds.is_empty())
            .map(|s| (s.label.clone(), s.cpu(), s.cpu() - floor))
            .collect()
    }

    /// hostalb's figure against the better (lower) of nginx's and HAProxy's:
    /// (ratio, which one was better). None unless all three were measured.
    fn against_best(&self, figure: impl Fn(&Series) -> f64) -> Option<(f64, &'static str)> {
        let series = |label: &str| {
            self.series
                .iter()
                .find(|s| s.label == label && (!s.rounds.is_empty() || !s.uploads.is_empty()))
        };
        let h = figure(series("hostalb")?);
        let n = figure(series("nginx")?);
        let p = figure(series("haproxy")?);
        let (best, name) = if n <= p { (n, "nginx") } else { (p, "haproxy") };
        Some((ratio(h, best), name))
    }

    /// Scenarios (m) and (n): hostalb's CPU per request against the lowest of every other
    /// proxy measured (nginx, HAProxy, Envoy): (ratio, which one was lowest).
    fn cpu_goal(&self) -> Option<(f64, String)> {
        if !matches!(self.name.as_str(), "m" | "n") {
            return None;
        }
        let h = self.get("hostalb")?.cpu();
        let best = self
            .series
            .iter()
            .filter(|s| s.label != "hostalb" && !s.rounds.is_empty())
            .map(|s| (s.cpu(), s.label.clone()))
            .min_by(|a, b| a.0.total_cmp(&b.0))?;
        Some((ratio(h, best.0), best.1))
    }

    /// Scenario (h): hostalb's p99 against the better of the others.
    fn slow_goal(&self) -> Option<(f64, &'static str)> {
        if !self.series.iter().any(Series::has_slow) {
            return None;
        }
        self.against_best(Series::p99)
    }

    /// Scenario (i): hostalb's median upload time against the better of the others.
    fn upload_goal(&self) -> Option<(f64, &'static str)> {
        self.against_best(|s| {
            if s.uploads.is_empty() {
                f64::NAN
            } else {
                s.upload_s()
            }
        })
        .filter(|(r, _)| r.is_finite())
    }

    /// Scenario (e): each proxy's throughput with reloads against without.
    fn reload_changes(&self) -> Vec<(String, f64, u64, u64)> {
        let mut out = Vec::new();
        for s in self.series.iter().filter(|s| s.label.ends_with("+reload")) {
            let base = s.label.trim_end_matches("+reload");
            if let Some(b) = self.get(base) {
                out.push((
                    base.to_owned(),
                    ratio(s.rps(), b.rps()) - 1.0,
                    s.errors(),
                    b.errors(),
                ));
            }
        }
        out
    }

    pub(crate) fn json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "title": self.title,
            "targets": self.series.iter().map(Series::json).collect::<Vec<_>>(),
            "notes": self.notes,
        });
        let ratios: Vec<Value> = self
            .ratios()
            .into_iter()
            .map(|(h, o, cpu, rps, p99)| {
                json!({ "hostalb": h, "other": o, "cpu_per_request": round3(cpu), "rps": round3(rps), "p99": round3(p99) })
            })
            .collect();
        if !ratios.is_empty() {
            v["ratios"] = Value::Array(ratios);
        }
        let changes: Vec<Value> = self
            .reload_changes()
            .into_iter()
            .map(|(t, change, e_reload, e_base)| {
                json!({ "target": t, "rps_change": round3(change), "errors_with_reloads": e_reload, "errors_without": e_base })
            })
            .collect();
        if !changes.is_empty() {
            v["reload_effect"] = Value::Array(changes);
        }
        let floor: Vec<Value> = self
            .above_floor()
            .into_iter()
            .map(|(label, cpu, above)| {
                json!({ "target": label, "cpu_us_per_request": round3(cpu), "above_direct_us": round3(above) })
            })
            .collect();
        if !floor.is_empty() {
            v["above_floor"] = Value::Array(floor);
        }
        if let Some((r, best)) = self.cpu_goal() {
            v["cpu_per_request_against_best_other"] =
                json!({ "ratio": round3(r), "best_other": best, "goal_at_most": 1.0 });
        }
        if let Some((r, best)) = self.slow_goal() {
            v["p99_against_best_other"] =
                json!({ "ratio": round3(r), "best_other": best, "goal_at_most": 1.5 });
        }
        if let Some((r, best)) = self.upload_goal() {
            v["upload_time_against_best_other"] =
                json!({ "ratio": round3(r), "best_other": best, "goal_at_most": 1.0 });
        }
        if !self.docker_ms.is_empty() || !self.docker_failures.is_empty() {
            let mut sorted = self.docker_ms.clone();
            sorted.sort_by(f64::total_cmp);
            v["start_to_routable_ms"] = json!({
                "starts": self.docker_ms.iter().map(|x| round2(*x)).collect::<Vec<_>>(),
                "median": round2(median(self.docker_ms.clone())),
                "worst": sorted.last().copied().map(round2),
                "best": sorted.first().copied().map(round2),
                "failures": self.docker_failures,
                "docker_run_ms": self.docker_run_ms.iter().map(|x| round2(*x)).collect::<Vec<_>>(),
                "docker_run_median_ms": round2(median(self.docker_run_ms.clone())),
            });
        }
        v
    }

    /// The scenario's table, for stdout and docs/performance.md.
    pub(crate) fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "({}) {}", self.name, self.title);
        let load: Vec<&Series> = self.series.iter().filter(|s| !s.rounds.is_empty()).collect();
        if !load.is_empty() {
            let reload = load.iter().any(|s| s.label.ends_with("+reload"));
            let slow = load.iter().any(|s| s.has_slow());
            let _ = write!(
                t,
                "  {:<16} {:>9} {:>8} {:>8} {:>11} {:>9} {:>7}",
                "target", "req/s", "p50 ms", "p99 ms", "CPU us/req", "RSS MB", "errors"
            );
            if reload {
                let _ = write!(t, " {:>8}", "reloads");
            }
            if slow {
                let _ = write!(t, " {:>11} {:>9}", "slow MiB/s", "slow err");
            }
            t.push('\n');
            for s in &load {
                let _ = write!(
                    t,
                    "  {:<16} {:>9.0} {:>8.3} {:>8.3} {:>11.2} {:>9.1} {:>7}",
                    s.label,
                    s.rps(),
                    s.p50() / 1e3,
                    s.p99() / 1e3,
                    s.cpu(),
                    s.hwm_kb() / 1024.0,
                    s.errors()
                );
                if reload {
                    let (n, failed) = s.reloads();
                    let _ = write!(
                        t,
                        " {:>8}",
                        if failed > 0 {
                            format!("{n} ({failed} failed)")
                        } else {
                            n.to_string()
                        }
                    );
                }
                if slow {
                    let errors: u64 = s.rounds.iter().map(|r| r.slow_errors).sum();
                    let _ = write!(t, " {:>11.1} {:>9}", s.slow_bps() / 1048576.0, errors);
                }
                t.push('\n');
            }
            for (h, o, cpu, rps, p99) in self.ratios() {
                let _ = writeln!(
                    t,
                    "  {:<24} CPU/req {cpu:.2}   req/s {rps:.2}   p99 {p99:.2}",
                    format!("{h} / {o}")
                );
            }
            let floor = self.above_floor();
            if let (Some(direct), Some(h)) = (self.get("direct"), floor.iter().find(|f| f.0 == "hostalb")) {
                let _ = write!(
                    t,
                    "  above the floor (CPU us/req minus direct's {:.2}): hostalb {:.2}",
                    direct.cpu(),
                    h.2
                );
                for (label, _, above) in floor.iter().filter(|f| f.0 != "hostalb") {
                    let _ = write!(t, ", {label} {above:.2} (hostalb {:.2}x)", ratio(h.2, *above));
                }
                t.push('\n');
            }
            if let Some((r, best)) = self.cpu_goal() {
                let _ = writeln!(
                    t,
                    "  hostalb CPU/req / lowest of the others ({best}): {r:.2} (goal: at most 1.0)"
                );
            }
            if let Some((r, best)) = self.slow_goal() {
                let _ = writeln!(
                    t,
                    "  hostalb p99 / best of nginx and haproxy ({best}): {r:.2} (goal: at most 1.5)"
                );
            }
            for (target, change, e_reload, e_base) in self.reload_changes() {
                let _ = writeln!(
                    t,
                    "  {target:<10} with reloads: req/s {:+.1} % against without, errors {e_reload} (without reloads {e_base})",
                    change * 100.0
                );
            }
        }
        let uploads: Vec<&Series> = self.series.iter().filter(|s| !s.uploads.is_empty()).collect();
        if !uploads.is_empty() {
            let _ = writeln!(
                t,
                "  {:<16} {:>8} {:>12} {:>9} {:>9} {:>9} {:>13}",
                "target", "uploads", "median ms", "best ms", "worst ms", "MiB/s", "CPU ms/upload"
            );
            for s in &uploads {
                let mut sorted: Vec<f64> = s.uploads.iter().map(|u| u.seconds).collect();
                sorted.sort_by(f64::total_cmp);
                let med = s.upload_s();
                let cpu = s.upload_cpu_ms();
                let _ = writeln!(
                    t,
                    "  {:<16} {:>8} {:>12.1} {:>9.1} {:>9.1} {:>9.0} {:>13}",
                    s.label,
                    s.uploads.len(),
                    med * 1e3,
                    sorted.first().copied().unwrap_or(0.0) * 1e3,
                    sorted.last().copied().unwrap_or(0.0) * 1e3,
                    self.upload_mib / med.max(1e-9),
                    if cpu.is_finite() {
                        format!("{cpu:.1}")
                    } else {
                        "-".to_owned()
                    }
                );
            }
            let h = uploads.iter().find(|s| s.label == "hostalb");
            for other in ["nginx", "haproxy"] {
                if let (Some(h), Some(o)) = (h, uploads.iter().find(|s| s.label == other)) {
                    let _ = writeln!(
                        t,
                        "  hostalb / {other:<14} upload time {:.2}   CPU/upload {:.2}",
                        ratio(h.upload_s(), o.upload_s()),
                        ratio(h.upload_cpu_ms(), o.upload_cpu_ms())
                    );
                }
            }
            if let Some((r, best)) = self.upload_goal() {
                let _ = writeln!(
                    t,
                    "  hostalb upload time / best of nginx and haproxy ({best}): {r:.2} (goal: at most 1.0)"
                );
            }
        }
        let idle: Vec<&Series> = self.series.iter().filter(|s| !s.idle.is_empty()).collect();
        if !idle.is_empty() {
            let _ = writeln!(
                t,
                "  {:<16} {:>14} {:>16} {:>13} {:>10} {:>7} {:>10}",
                "target", "RSS before MB", "RSS w/ conns MB", "KB per conn", "peak MB", "failed", "open s"
            );
            for s in &idle {
                // The baseline is the process before its first round: memory a process
                // keeps after the connections of a round closed counts against it.
                let before = s.idle_base_kb();
                let open = s.idle_med(|r| r.rss_open_kb as f64);
                let per = s.idle_med(|r| (r.rss_open_kb as f64 - before) / (r.opened.max(1) as f64));
                let failed: u64 = s
                    .idle
                    .iter()
                    .map(|r| r.failed + (r.opened - r.still_open.min(r.opened)))
                    .sum();
                let _ = writeln!(
                    t,
                    "  {:<16} {:>14.1} {:>16.1} {:>13.2} {:>10.1} {:>7} {:>10.2}",
                    s.label,
                    before / 1024.0,
                    open / 1024.0,
                    per,
                    s.idle_med(|r| r.hwm_kb as f64) / 1024.0,
                    failed,
                    s.idle_med(|r| r.open_seconds)
                );
            }
            let h = idle.iter().find(|s| s.label == "hostalb");
            for other in ["nginx", "haproxy"] {
                if let (Some(h), Some(o)) = (h, idle.iter().find(|s| s.label == other)) {
                    let _ = writeln!(
                        t,
                        "  hostalb / {other:<14} RSS with connections {:.2}",
                        ratio(
                            h.idle_med(|r| r.rss_open_kb as f64),
                            o.idle_med(|r| r.rss_open_kb as f64)
                        )
                    );
                }
            }
        }
        if !self.docker_ms.is_empty() || !self.docker_failures.is_empty() {
            let mut sorted = self.docker_ms.clone();
            sorted.sort_by(f64::total_cmp);
            let _ = writeln!(
                t,
                "  starts {}: median {:.1} ms, best {:.1} ms, worst {:.1} ms, failures {}",
                self.docker_ms.len(),
                median(self.docker_ms.clone()),
                sorted.first().copied().unwrap_or(0.0),
                sorted.last().copied().unwrap_or(0.0),
                self.docker_failures.len()
            );
            let _ = writeln!(
                t,
                "  (`docker run -d` itself took {:.0} ms, median)",
                median(self.docker_run_ms.clone())
            );
            for f in &self.docker_failures {
                let _ = writeln!(t, "    {f}");
            }
        }
        for s in &self.series {
            for n in &s.notes {
                let _ = writeln!(t, "  note ({}): {n}", s.label);
            }
        }
        for n in &self.notes {
            let _ = writeln!(t, "  note: {n}");
        }
        t
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

const COLORS: [(&str, &str); 7] = [
    ("direct", "#9e9e9e"),
    ("hostalb", "#e4572e"),
    ("nginx", "#29a329"),
    ("haproxy", "#1f77b4"),
    ("envoy", "#8e44ad"),
    ("traefik", "#17becf"),
    ("caddy", "#bcbd22"),
];

/// A chart panel: its title and the figure it shows.
type Panel = (&'static str, fn(&Series) -> f64);

/// Grouped bars: one group per load scenario, one bar per target (no reload variants).
pub(crate) fn svg(results: &[ScenarioResult]) -> String {
    let groups: Vec<(&ScenarioResult, Vec<&Series>)> = results
        .iter()
        .map(|r| {
            let s: Vec<&Series> = r
                .series
                .iter()
                .filter(|s| !s.rounds.is_empty() && !s.label.contains('+'))
                .collect();
            (r, s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let panels: [Panel; 2] = [
        ("CPU microseconds per request (median; lower is better)", |s| {
            s.cpu()
        }),
        ("requests per second (median; higher is better)", |s| s.rps()),
    ];
    let bar = 14.0;
    let gap = 18.0;
    let group_w: f64 = groups.iter().map(|(_, s)| s.len() as f64 * bar + gap).sum();
    let width = (group_w + 80.0).max(420.0);
    let panel_h = 200.0;
    let height = panels.len() as f64 * (panel_h + 70.0) + 40.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(o, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    for (pi, (title, value)) in panels.iter().enumerate() {
        let top = 20.0 + pi as f64 * (panel_h + 70.0);
        let base = top + 20.0 + panel_h;
        let max = groups
            .iter()
            .flat_map(|(_, s)| s.iter().map(|x| value(x)))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let _ = writeln!(
            o,
            "<text x=\"10\" y=\"{:.0}\" font-weight=\"bold\">{title}</text>",
            top + 10.0
        );
        let _ = writeln!(
            o,
            "<line x1=\"40\" y1=\"{base:.0}\" x2=\"{:.0}\" y2=\"{base:.0}\" stroke=\"#444\"/>",
            width - 10.0
        );
        let mut x = 50.0;
        for (r, series) in &groups {
            let start = x;
            for s in series {
                let v = value(s);
                let h = v / max * panel_h;
                let color = COLORS
                    .iter()
                    .find(|(n, _)| *n == s.label)
                    .map(|(_, c)| *c)
                    .unwrap_or("#777");
                let _ = writeln!(
                    o,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{} {}: {v:.2}</title></rect>",
                    base - h,
                    bar - 2.0,
                    r.name,
                    s.label
                );
                x += bar;
            }
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
                (start + x) / 2.0,
                base + 14.0,
                r.name
            );
            x += gap;
        }
    }
    let mut lx = 10.0;
    for (name, color) in COLORS {
        let _ = writeln!(
            o,
            "<rect x=\"{lx:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.0}\" y=\"{:.0}\">{name}</text>",
            height - 22.0,
            lx + 14.0,
            height - 13.0
        );
        lx += 80.0;
    }
    o.push_str("</svg>\n");
    o
}
