//! Bounded waiting: [`eventually`] and the patience factor that scales every wait.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

/// Environment variable that scales every wait in this crate (a float, default 1.0).
pub const PATIENCE_VAR: &str = "HOSTALB_TEST_PATIENCE";

/// Smallest and largest accepted patience factors: a typo must not make a test wait forever
/// or give up at once.
const PATIENCE_RANGE: (f64, f64) = (0.1, 100.0);

/// First pause between two checks of a condition; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);

/// Longest pause between two checks: conditions are cheap, answers should come quickly.
const MAX_POLL: Duration = Duration::from_millis(100);

/// The factor from `HOSTALB_TEST_PATIENCE` (default 1.0, clamped to 0.1..=100).
pub fn patience_factor() -> f64 {
    std::env::var(PATIENCE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .map_or(1.0, |f| f.clamp(PATIENCE_RANGE.0, PATIENCE_RANGE.1))
}

/// `d` multiplied by [`patience_factor`].
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(patience_factor())
}

/// A condition that did not hold within its patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// How long the condition was checked for (after scaling).
    pub waited: Duration,
    /// How many times it was checked.
    pub checks: u32,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "condition not met within {:?} ({} checks)",
            self.waited, self.checks
        )
    }
}

impl std::error::Error for TimedOut {}

/// Checks `condition` until it returns true, for at most `patience` (scaled by
/// [`patience_factor`]). Returns how long it took, or [`TimedOut`].
///
/// The condition is checked at once, then after pauses growing from 5 ms to 100 ms; a check
/// that itself hangs is cut off at the deadline.
pub async fn try_eventually<F>(patience: Duration, mut condition: F) -> Result<Duration, TimedOut>
where
    F: AsyncFnMut() -> bool,
{
    let waited = scaled(patience);
    let start = Instant::now();
    let deadline = start + waited;
    let mut pause = FIRST_POLL;
    let mut checks = 0u32;
    // Bounded by the deadline; the count bound is a second guard against a clock that
    // does not move.
    let max_checks = 2 + (waited.as_millis() / FIRST_POLL.as_millis()).min(u128::from(u32::MAX));
    while u128::from(checks) < max_checks {
        checks += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(true) = tokio::time::timeout(left.max(FIRST_POLL), condition()).await {
            return Ok(start.elapsed());
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_POLL);
    }
    Err(TimedOut { waited, checks })
}

/// Like [`try_eventually`], but panics (naming the caller's line) when the condition does
/// not hold in time. Returns how long it took.
///
/// ```no_run
/// # async fn demo(backend: &hostalb_testkit::Backend) {
/// use std::time::Duration;
/// use hostalb_testkit::eventually;
///
/// eventually(Duration::from_secs(3), async || backend.request_count() == 2).await;
/// # }
/// ```
#[track_caller]
pub fn eventually<F>(patience: Duration, condition: F) -> impl Future<Output = Duration>
where
    F: AsyncFnMut() -> bool,
{
    let caller = Location::caller();
    async move {
        match try_eventually(patience, condition).await {
            Ok(took) => took,
            Err(e) => panic!("eventually at {caller}: {e}"),
        }
    }
}
