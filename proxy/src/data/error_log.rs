//! Operators' log lines for the errors hostalb answers itself: one line per error, at
//! most one a second per status class (4xx, 5xx), with how many were left out since the
//! last line. A flood of bad requests or a dead target must not flood the log; the
//! counters (`hostalb_elb_answers_total`) and the access log still have every one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock;

/// At most one line per class this often.
const EVERY_MS: u64 = 1000;

/// Per class (4xx, 5xx): when the last line was written ([`clock::coarse_ms`] + 1, so 0
/// means never), and how many errors were left out since.
static LAST_MS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static LEFT_OUT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Logs an answer hostalb made itself, unless its class already had a line this second.
pub(crate) fn answered(status: u16, reason: &'static str, client: SocketAddr, target: Option<SocketAddr>) {
    let class = match status {
        400..=499 => 0,
        500..=599 => 1,
        _ => return,
    };
    let now = clock::coarse_ms() + 1;
    let last = LAST_MS[class].load(Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= EVERY_MS;
    if !due
        || LAST_MS[class]
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        LEFT_OUT[class].fetch_add(1, Relaxed);
        return;
    }
    let left_out = LEFT_OUT[class].swap(0, Relaxed);
    let target = target.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    if class == 1 {
        tracing::warn!(status, reason, %client, %target, left_out, "hostalb answered a 5xx");
    } else {
        tracing::info!(status, reason, %client, %target, left_out, "hostalb answered a 4xx");
    }
}
