//! What every e2e module shares.

use hostalb_testkit::HostAlb;

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hostalb")
}

/// Starts hostalb with `config` (admin on a free port unless the config says otherwise).
pub(crate) async fn start(config: &str) -> HostAlb {
    let config = if config.contains("[admin]") {
        config.to_owned()
    } else {
        format!("[admin]\naddress = \"127.0.0.1:0\"\n{config}")
    };
    HostAlb::start(bin(), &config).await
}

/// A free port below Linux's ephemeral range (32768-60999): a listener the API creates
/// binds it again after a restart, and a port from the ephemeral range could meanwhile be
/// taken as the local port of some other test's connection.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (seed.wrapping_add(n.wrapping_mul(104_729)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}
