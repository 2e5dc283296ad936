//! Test support for hostalb's end-to-end tests.
//!
//! Everything here runs over real loopback sockets bound to `127.0.0.1:0`, and every wait is
//! bounded in time (scaled by [`patience_factor`]).
//!
//! Vocabulary, as in hostalb itself:
//! - a **listener** is an address hostalb accepts client connections on;
//! - a **target** is an address hostalb forwards requests to;
//! - a **backend** is the server a test runs at a target: [`Backend`] (a recording HTTP/1.1
//!   server that answers with its name) or [`RawBackend`] (raw TCP with a scripted behaviour).
//!
//! The pieces:
//! - [`Backend`], [`RawBackend`]: targets that record what they received, so a test can say
//!   "the backend never saw this request";
//! - [`TlsBackend`]: an HTTPS target that counts its TLS handshakes and records the SNI it
//!   was sent; [`SelfSigned`] makes certificates for it and for HTTPS listeners;
//! - [`HostAlb`]: runs the real `hostalb` binary and reads the addresses it bound;
//!   [`run_check`] runs `hostalb check`;
//! - [`Client`], [`Conn`], [`RawConn`], [`raw_exchange`], [`parse_responses`]: clients, from
//!   pooled keep-alive HTTP down to raw bytes;
//! - [`eventually`], [`LoadGen`]: waiting for a condition, and steady background load;
//! - [`docker`]: containers on a real Docker engine ([`docker::TestContainer`]), for
//!   discovery; the binary `hostalb-testbackend` is what runs inside them.
//!
//! ```no_run
//! # async fn demo(binary: &std::path::Path) {
//! use std::time::Duration;
//! use hostalb_testkit::{Backend, Client, HostAlb, eventually};
//!
//! let a = Backend::builder().name("a").start().await;
//! let config = format!(
//!     r#"
//! [admin]
//! address = "127.0.0.1:0"
//!
//! [[listener]]
//! name = "web"
//! address = "127.0.0.1:0"
//! default_action = {{ type = "forward", target_group = "app" }}
//!
//! [target_group.app]
//! targets = ["{}"]
//! "#,
//!     a.addr()
//! );
//! let alb = HostAlb::start(binary, &config).await;
//! let resp = Client::new().get(&alb.url("web", "/hello")).await.unwrap();
//! assert_eq!(resp.backend(), Some("a"));
//! eventually(Duration::from_secs(2), async || a.request_count() == 1).await;
//! assert_eq!(a.requests()[0].target, "/hello");
//! # }
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod backend;
mod client;
pub mod docker;
mod hostalb;
mod load;
mod patience;
mod raw_backend;
mod raw_client;
mod response;
mod sync;
mod tls_backend;

pub use backend::{Backend, BackendBuilder, BackendReply, RecordedRequest};
pub use client::{Client, ClientBuilder, ClientError, Conn, HttpResponse};
pub use hostalb::{ECHO_VAR, HostAlb, HostAlbBuilder, StartError, run_check};
pub use load::{LoadGen, LoadGenBuilder, LoadReport};
pub use patience::{PATIENCE_VAR, TimedOut, eventually, patience_factor, scaled, try_eventually};
pub use raw_backend::{RawBackend, RawBehaviour};
pub use raw_client::{RawConn, raw_exchange};
pub use response::{ParsedResponse, parse_responses};
pub use tls_backend::{SelfSigned, TlsBackend, TlsRequest};
