//! The request path, phase after phase, as a request meets it:
//!
//! 1. accept ([`listener`]);
//! 2. read head, 3. classify and check, 4. route, 5. act ([`session`], the HTTP/1 front
//!    end: one task per client connection, request after request; [`h2`], the HTTP/2
//!    front end: one task per connection and one per stream, each stream's head read by
//!    the HTTP/1 codec, then the same check, rules and answers);
//! 6. pick the target, 7. connect or reuse, 8. send, 9. relay ([`forward`], with the
//!    upstream connector [`upstream`] and the one [`retry`] policy; HTTP/2 streams reach
//!    `HTTP1` groups through the same pieces, `HTTP2`/`GRPC` groups through
//!    [`h2_upstream`]);
//! 10. log (the per-request [`context::RequestCx`] carries the record to the end).
//!
//! Every answer hostalb makes itself, errors included, is written by [`answer`]. The rest
//! are pieces those phases use: the client connection ([`conn`]), bodies, headers,
//! errors, cookies and trace ids.
//!
//! How the second protocol plugs in: a front end owns its connection and produces one
//! [`context::RequestCx`] per request; the phases after the head (check, route on the
//! snapshot's rule table, act) take the context, and the forward reaches targets through
//! a connector. The HTTP/2 front end [`h2`] is a sibling of [`session`], and the h2
//! upstream [`h2_upstream`] a sibling of [`upstream`]; [`answer`] (with its `h2_*`
//! answers) and [`retry`] stay the one answer site and the one retry policy for both.

pub(crate) mod access_log;
pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod buffers;
pub(crate) mod client_cert;
pub(crate) mod coalesce;
pub(crate) mod conn;
pub(crate) mod context;
pub(crate) mod cookies;
pub(crate) mod counted;
pub(crate) mod error_log;
pub(crate) mod errors;
pub(crate) mod forward;
pub(crate) mod h2;
pub(crate) mod h2_upstream;
pub(crate) mod headers;
pub(crate) mod idle;
pub(crate) mod listener;
pub(crate) mod respond;
pub(crate) mod retry;
pub(crate) mod session;
pub(crate) mod tls;
pub(crate) mod trace_id;
pub(crate) mod tunnel;
pub(crate) mod upstream;
