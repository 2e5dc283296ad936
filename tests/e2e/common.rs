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
