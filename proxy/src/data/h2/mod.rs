//! The HTTP/2 front end, a sibling of [`crate::data::session`]: HTTPS connections whose
//! client chose `h2` in ALPN are served here.
//!
//! - [`server`]: the connection, on the `h2` crate's server with ALB's limits (128
//!   concurrent streams, GOAWAY after 10,000 streams, 64 K of request headers, the
//!   listener's idle timeout counted on streams so that PINGs do not reset it) and
//!   GOAWAY on idle, drain, shutdown and `client_keep_alive`;
//! - [`flood`]: bounds the `h2` crate has not (PING and SETTINGS floods, rapid resets,
//!   runs of empty frames), read from the frames as they arrive;
//! - [`stream`]: one task per stream, through the same phases as HTTP/1: the request
//!   becomes the HTTP/1 codec's [`crate::http1::request::RequestHead`] ([`head`]), then
//!   the same check, the same rule table, the same answers ([`crate::data::answer`]), the
//!   same retry policy and the same access log record;
//! - [`to_http1`]: the forward action (group pick, ALB's protocol rules: 464 for gRPC to
//!   an `HTTP1` group and for non-POST to a `GRPC` group) and the forward to `HTTP1`
//!   target groups, translated to HTTP/1.1 with ALB's header casing;
//! - [`to_http2`]: the forward to `HTTP2` and `GRPC` target groups, over
//!   [`crate::data::h2_upstream`].

pub(crate) mod flood;
pub(crate) mod head;
pub(crate) mod server;
pub(crate) mod stream;
pub(crate) mod to_http1;
pub(crate) mod to_http2;
