//! [`LoadGen`]: steady background load from concurrent keep-alive clients.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;

/// Default number of concurrent clients.
const DEFAULT_CONCURRENCY: usize = 8;

/// Default bound on a run: a forgotten `stop()` must not load the box forever.
const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(60);

/// Default bound on one request.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed request, so a refused port is not hammered in a tight loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Most error messages kept (all are counted).
const MAX_ERROR_MESSAGES: usize = 10_000;

/// Most latency samples kept, all clients together (16 bytes each).
const MAX_SAMPLES: usize = 1 << 21;

/// Extra time `stop()` gives clients to finish the request they are in.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Builder for [`LoadGen`].
#[derive(Debug, Clone)]
pub struct LoadGenBuilder {
    url: String,
    concurrency: usize,
    max_duration: Duration,
    request_timeout: Duration,
    pause: Option<Duration>,
    http2: bool,
    retry_canceled: bool,
}

impl LoadGenBuilder {
    /// Number of concurrent clients, each with its own keep-alive connection (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The run ends by itself after this long (default 60 s).
    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d;
        self
    }

    /// Bound on each request (default 10 s); a request past it counts as an error.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Each client pauses this long (±10 %) between requests (default: no pause).
    pub fn pause(mut self, d: Duration) -> Self {
        self.pause = Some(d);
        self
    }

    /// Speak HTTP/2 with prior knowledge (h2c).
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Retry a request that lost a race with the server closing an idle pooled connection
    /// (default false: such a race counts as an error, as it would for a strict client).
    pub fn retry_canceled(mut self, retry: bool) -> Self {
        self.retry_canceled = retry;
        self
    }

    /// Starts the clients.
    pub fn start(self) -> LoadGen {
        let (stop, stop_rx) = watch::channel(false);
        let progress = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + self.max_duration;
        let tasks = (0..self.concurrency)
            .map(|i| {
                let mut builder = Client::builder()
                    .timeout(self.request_timeout)
                    .retry_canceled(self.retry_canceled)
                    .max_idle_per_host(1);
                if self.http2 {
                    builder = builder.http2();
                }
                let run = ClientRun {
                    client: builder.build(),
                    url: self.url.clone(),
                    deadline,
                    pause: self.pause,
                    stop: stop_rx.clone(),
                    progress: Arc::clone(&progress),
                    max_samples: MAX_SAMPLES / self.concurrency,
                    seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                };
                tokio::spawn(run.run())
            })
            .collect();
        LoadGen {
            url: self.url,
            stop,
            tasks,
            progress,
            started,
            request_timeout: self.request_timeout,
        }
    }
}

/// Concurrent keep-alive clients sending `GET url` until stopped (or until the maximum
/// duration), counting statuses, errors and latencies.
pub struct LoadGen {
    url: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Tally>>,
    progress: Arc<AtomicU64>,
    started: Instant,
    request_timeout: Duration,
}

impl fmt::Debug for LoadGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadGen")
            .field("url", &self.url)
            .field("clients", &self.tasks.len())
            .field("done", &self.done())
            .finish_non_exhaustive()
    }
}

impl LoadGen {
    /// A builder for load on `url`.
    pub fn builder(url: impl Into<String>) -> LoadGenBuilder {
        LoadGenBuilder {
            url: url.into(),
            concurrency: DEFAULT_CONCURRENCY,
            max_duration: DEFAULT_MAX_DURATION,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pause: None,
            http2: false,
            retry_canceled: false,
        }
    }

    /// Starts `concurrency` clients on `url` for at most `max_duration`.
    pub fn start(url: impl Into<String>, concurrency: usize, max_duration: Duration) -> LoadGen {
        Self::builder(url)
            .concurrency(concurrency)
            .max_duration(max_duration)
            .start()
    }

    /// Requests finished so far (answered or failed).
    pub fn done(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Stops the clients, lets each finish the request it is in (bounded), and reports.
    pub async fn stop(self) -> LoadReport {
        let _ = self.stop.send(true);
        let mut tally = Tally::default();
        let grace = self.request_timeout + STOP_GRACE;
        for task in self.tasks {
            let abort = task.abort_handle();
            match tokio::time::timeout(grace, task).await {
                Ok(Ok(t)) => tally.merge(t),
                Ok(Err(e)) => tally.error(format!("load client task failed: {e}")),
                Err(_) => {
                    abort.abort();
                    tally.error("load client did not stop in time".to_string());
                }
            }
        }
        tally.latencies.sort_unstable();
        LoadReport {
            ok: tally.ok,
            non_2xx: tally.non_2xx.into_iter().collect(),
            errors: tally.errors,
            error_count: tally.error_count,
            total: tally.ok + tally.non_2xx_total + tally.error_count,
            backends: tally.backends.into_iter().collect(),
            elapsed: self.started.elapsed(),
            latencies: tally.latencies,
        }
    }
}

/// What a [`LoadGen`] run saw.
#[derive(Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Other statuses and how often each came, by status.
    pub non_2xx: Vec<(u16, u64)>,
    /// Error messages (connect, reset, timeout, truncated body), the first 10 000.
    pub errors: Vec<String>,
    /// All errors, counted.
    pub error_count: u64,
    /// Requests finished: `ok` + non-2xx + errors.
    pub total: u64,
    /// Responses per `x-backend` header value (which backend answered).
    pub backends: Vec<(String, u64)>,
    /// How long the run lasted.
    pub elapsed: Duration,
    /// Latency of each answered request (up to 2 Mi samples in all), sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// The latency at quantile `q` (0.0..=1.0) of answered requests; zero when none.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let last = self.latencies.len() - 1;
        let rank = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
        self.latencies[rank.min(last)]
    }

    /// Median latency.
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// 99th percentile latency.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// Requests finished per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.total as f64 / secs } else { 0.0 }
    }

    /// True when every request got a 2xx and there was at least one.
    pub fn all_ok(&self) -> bool {
        self.total > 0 && self.ok == self.total
    }
}

impl fmt::Debug for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first_errors: Vec<&String> = self.errors.iter().take(10).collect();
        f.debug_struct("LoadReport")
            .field("ok", &self.ok)
            .field("non_2xx", &self.non_2xx)
            .field("error_count", &self.error_count)
            .field("first_errors", &first_errors)
            .field("total", &self.total)
            .field("backends", &self.backends)
            .field("elapsed", &self.elapsed)
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .finish()
    }
}

/// Counts kept by one client, merged at the end.
#[derive(Default)]
struct Tally {
    ok: u64,
    non_2xx: BTreeMap<u16, u64>,
    non_2xx_total: u64,
    errors: Vec<String>,
    error_count: u64,
    backends: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Tally {
    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERROR_MESSAGES {
            self.errors.push(message);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (s, n) in other.non_2xx {
            *self.non_2xx.entry(s).or_default() += n;
        }
        self.non_2xx_total += other.non_2xx_total;
        self.error_count += other.error_count;
        let room = MAX_ERROR_MESSAGES.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
        for (b, n) in other.backends {
            *self.backends.entry(b).or_default() += n;
        }
        self.latencies.extend(other.latencies);
    }
}

/// One load client's loop.
struct ClientRun {
    client: Client,
    url: String,
    deadline: Instant,
    pause: Option<Duration>,
    stop: watch::Receiver<bool>,
    progress: Arc<AtomicU64>,
    max_samples: usize,
    seed: u64,
}

impl ClientRun {
    async fn run(mut self) -> Tally {
        let mut tally = Tally::default();
        // Bounded by the deadline (and by stop); each request is bounded by its timeout.
        while !*self.stop.borrow() && Instant::now() < self.deadline {
            let sent = Instant::now();
            let failed = match self.client.get(&self.url).await {
                Ok(resp) => {
                    if tally.latencies.len() < self.max_samples {
                        tally.latencies.push(sent.elapsed());
                    }
                    if (200..300).contains(&resp.status) {
                        tally.ok += 1;
                    } else {
                        *tally.non_2xx.entry(resp.status).or_default() += 1;
                        tally.non_2xx_total += 1;
                    }
                    if let Some(b) = resp.backend() {
                        *tally.backends.entry(b.to_string()).or_default() += 1;
                    }
                    false
                }
                Err(e) => {
                    tally.error(e.to_string());
                    true
                }
            };
            self.progress.fetch_add(1, Ordering::Relaxed);
            let wait = match self.pause {
                Some(p) => Some(self.jitter(p)),
                None if failed => Some(ERROR_BACKOFF),
                None => None,
            };
            if let Some(wait) = wait {
                let until = (Instant::now() + wait).min(self.deadline);
                let _ = tokio::time::timeout_at(until.into(), self.stop.wait_for(|s| *s)).await;
            }
        }
        tally
    }

    /// `d` ± 10 %, from a small xorshift generator.
    fn jitter(&mut self, d: Duration) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed % 10_001) as f64 / 10_000.0;
        d.mul_f64(0.9 + 0.2 * unit)
    }
}
