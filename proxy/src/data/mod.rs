//! The request path, phase after phase: [`listener`] accepts, [`session`] reads each
//! request head, checks and routes it and acts on it, [`forward`] picks the target,
//! connects or reuses, sends, relays; [`answer`] is every answer hostalb makes itself.
//! The rest are the pieces those phases use: the client connection ([`conn`]), bodies,
//! headers, the upstream connectors and pool, errors, cookies and trace ids.

pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod buffers;
pub(crate) mod conn;
pub(crate) mod cookies;
pub(crate) mod counted;
pub(crate) mod errors;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod listener;
pub(crate) mod respond;
pub(crate) mod session;
pub(crate) mod tls;
pub(crate) mod trace_id;
pub(crate) mod upstream;
