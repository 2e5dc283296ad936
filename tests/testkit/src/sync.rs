//! Small helpers over `std::sync` shared by the recorders.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, carrying on with the data when another thread panicked while holding it: a
/// recorder's contents stay meaningful after a failed assertion elsewhere.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resolves once the flag in `rx` is true (or its sender is gone).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
