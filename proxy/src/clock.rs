//! Time on the request path without reading a clock per request.
//!
//! Wall-clock seconds (trace ids, `Date`, cookie expiry) and coarse monotonic
//! milliseconds (idle ages, connection lifetimes) are refreshed by one ticker task every
//! [`TICK`]; a request reads an atomic. The HTTP date is formatted at most once per
//! second per thread. Response times, which need precision, still read the clock.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How stale the coarse values may be.
pub(crate) const TICK: Duration = Duration::from_millis(50);

static UNIX_SECONDS: AtomicU64 = AtomicU64::new(0);
static MONOTONIC_MS: AtomicU64 = AtomicU64::new(0);

struct Cached {
    second: u64,
    date: [u8; 29],
}

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, date: [b' '; 29] }) };
}

fn read_unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fixed instant for timestamps kept in atomics.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn read_monotonic_ms() -> u64 {
    // Never 0, so that 0 can mean "not set yet".
    (epoch().elapsed().as_millis() as u64).max(1)
}

/// Seconds since the Unix epoch (at most [`TICK`] stale once the ticker runs).
pub(crate) fn unix_seconds() -> u64 {
    match UNIX_SECONDS.load(Relaxed) {
        0 => read_unix_seconds(),
        s => s,
    }
}

/// Milliseconds since [`epoch`] (at most [`TICK`] stale once the ticker runs).
pub(crate) fn coarse_ms() -> u64 {
    match MONOTONIC_MS.load(Relaxed) {
        0 => read_monotonic_ms(),
        ms => ms,
    }
}

/// Keeps the coarse clocks current, for as long as the runtime runs.
pub(crate) async fn tick() {
    loop {
        UNIX_SECONDS.store(read_unix_seconds(), Relaxed);
        MONOTONIC_MS.store(read_monotonic_ms(), Relaxed);
        tokio::time::sleep(TICK).await;
    }
}

/// Calls `f` with the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn with_http_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = unix_seconds();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.second != now {
            c.second = now;
            c.date = format_http_date(now);
        }
        f(&c.date)
    })
}

/// Formats `secs` as an IMF-fixdate.
pub(crate) fn format_http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], day as u64);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let y = year as u64;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], hour);
    out[19] = b':';
    two(&mut out[20..22], minute);
    out[22] = b':';
    two(&mut out[23..25], second);
    out[25..29].copy_from_slice(b" GMT");
    out
}

/// Appends `t` as ISO 8601 in UTC with microseconds (`2026-12-01T00:54:40.123456Z`), as
/// ALB's access log writes times.
pub(crate) fn write_iso8601_micros(out: &mut Vec<u8>, t: std::time::SystemTime) {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut text = [0u8; 27];
    let y = year.clamp(0, 9999) as u64;
    two(&mut text[0..2], y / 100);
    two(&mut text[2..4], y % 100);
    text[4] = b'-';
    two(&mut text[5..7], u64::from(month));
    text[7] = b'-';
    two(&mut text[8..10], u64::from(day));
    text[10] = b'T';
    two(&mut text[11..13], rem / 3600);
    text[13] = b':';
    two(&mut text[14..16], (rem % 3600) / 60);
    text[16] = b':';
    two(&mut text[17..19], rem % 60);
    text[19] = b'.';
    let micros = u64::from(since.subsec_micros());
    two(&mut text[20..22], micros / 10_000);
    two(&mut text[22..24], micros / 100 % 100);
    two(&mut text[24..26], micros % 100);
    text[26] = b'Z';
    out.extend_from_slice(&text);
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_with_microseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_543_616_580_186_641);
        let mut out = Vec::new();
        write_iso8601_micros(&mut out, t);
        assert_eq!(out, b"2018-11-30T22:23:00.186641Z");
        out.clear();
        write_iso8601_micros(&mut out, std::time::UNIX_EPOCH);
        assert_eq!(out, b"1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(&format_http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format_http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format_http_date(4_102_444_799), b"Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn cached_date_is_well_formed() {
        let text = with_http_date(|d| String::from_utf8_lossy(d).into_owned());
        assert_eq!(text.len(), 29);
        assert!(text.ends_with(" GMT"));
    }
}
