//! The one data-plane error type: what went wrong, on which side, and the answer the
//! client gets (ALB's codes, alb-spec §4). Whether a failure may be retried is decided
//! in one place, [`crate::data::retry`].

use std::fmt;
use std::io;

use crate::data::body::BodyError;
use crate::http1::request::HeadError;

/// Whose fault an error is: counted separately, and only target errors mark targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Target,
    Internal,
}

#[derive(Debug)]
pub(crate) enum ErrorKind {
    /// The request head was refused (400/405/414/431/501/505).
    BadHead(HeadError),
    /// The request head did not arrive within the header timeout (408).
    HeaderTimeout,
    /// `TRACE` (405).
    Trace,
    /// More than 30 addresses in X-Forwarded-For (463).
    TooManyForwardedFor,
    /// Non-compliant request refused in `strictest` desync mode (400).
    NonCompliant(&'static str),
    /// The request body was malformed or ended early (400).
    ClientBody(&'static str),
    /// The client went silent mid-request past the idle timeout (408).
    ClientIdle,
    /// The client closed before hostalb answered (460: logged, never sent).
    ClientClosed,
    /// The target group has no registered targets (503).
    NoTargets,
    /// Every group of a weighted forward has weight 0 (503).
    NoWeight,
    /// The target refused the connection or was unreachable (502).
    ConnectRefused,
    /// The connection was not established in 10 s (504).
    ConnectTimeout,
    /// The target closed or reset the connection before a complete response head (502).
    TargetClosed,
    /// The target's response head was malformed, too large or ambiguously framed (502).
    BadResponse(&'static str),
    /// The target sent nothing for the idle timeout (504).
    ResponseTimeout,
    /// A rule transform matched but its result was unusable (500).
    TransformFailed,
    /// The target's deregistration delay ran out with the request in flight (502).
    Deregistered,
    /// A redirect's Location would be longer than ALB allows (507).
    RedirectTooLong,
    /// The TLS handshake with an HTTPS target failed (502, `TargetTLSNegotiationErrorCount`).
    TargetTls,
    /// The TLS handshake with an HTTPS target took more than 10 s (504, counted as
    /// `TargetTLSNegotiationErrorCount` too).
    TargetTlsTimeout,
    /// The request's protocol does not fit the target group's protocol version, e.g.
    /// HTTP/1.1 to an HTTP2 or GRPC group (464).
    ProtocolMismatch,
}

#[derive(Debug)]
pub(crate) struct ProxyError {
    pub(crate) kind: ErrorKind,
    pub(crate) io: Option<io::Error>,
}

impl ProxyError {
    pub(crate) fn new(kind: ErrorKind) -> ProxyError {
        ProxyError { kind, io: None }
    }

    pub(crate) fn io(kind: ErrorKind, e: io::Error) -> ProxyError {
        ProxyError { kind, io: Some(e) }
    }

    /// The status hostalb answers with (460 is never sent).
    pub(crate) fn status(&self) -> u16 {
        match &self.kind {
            ErrorKind::BadHead(h) => h.status,
            ErrorKind::HeaderTimeout | ErrorKind::ClientIdle => 408,
            ErrorKind::Trace => 405,
            ErrorKind::TooManyForwardedFor => 463,
            ErrorKind::ProtocolMismatch => 464,
            ErrorKind::NonCompliant(_) | ErrorKind::ClientBody(_) => 400,
            ErrorKind::ClientClosed => 460,
            ErrorKind::NoTargets | ErrorKind::NoWeight => 503,
            ErrorKind::ConnectRefused
            | ErrorKind::TargetClosed
            | ErrorKind::BadResponse(_)
            | ErrorKind::Deregistered
            | ErrorKind::TargetTls => 502,
            ErrorKind::ConnectTimeout | ErrorKind::ResponseTimeout | ErrorKind::TargetTlsTimeout => 504,
            ErrorKind::TransformFailed => 500,
            ErrorKind::RedirectTooLong => 507,
        }
    }

    pub(crate) fn side(&self) -> Side {
        match &self.kind {
            ErrorKind::BadHead(_)
            | ErrorKind::HeaderTimeout
            | ErrorKind::Trace
            | ErrorKind::TooManyForwardedFor
            | ErrorKind::NonCompliant(_)
            | ErrorKind::ClientBody(_)
            | ErrorKind::ClientIdle
            | ErrorKind::ClientClosed
            | ErrorKind::ProtocolMismatch => Side::Client,
            ErrorKind::ConnectRefused
            | ErrorKind::ConnectTimeout
            | ErrorKind::TargetClosed
            | ErrorKind::BadResponse(_)
            | ErrorKind::ResponseTimeout
            | ErrorKind::Deregistered
            | ErrorKind::TargetTls
            | ErrorKind::TargetTlsTimeout => Side::Target,
            ErrorKind::NoTargets
            | ErrorKind::NoWeight
            | ErrorKind::TransformFailed
            | ErrorKind::RedirectTooLong => Side::Internal,
        }
    }

    /// The access log's `error_reason`.
    pub(crate) fn reason(&self) -> &'static str {
        match &self.kind {
            ErrorKind::BadHead(h) => h.reason,
            ErrorKind::HeaderTimeout => "RequestHeaderTimeout",
            ErrorKind::Trace => "TraceNotSupported",
            ErrorKind::TooManyForwardedFor => "TooManyXForwardedFor",
            ErrorKind::NonCompliant(r) => r,
            ErrorKind::ClientBody(r) => r,
            ErrorKind::ClientIdle => "ClientIdleTimeout",
            ErrorKind::ClientClosed => "ClientClosedConnection",
            ErrorKind::NoTargets => "NoRegisteredTargets",
            ErrorKind::NoWeight => "AllTargetGroupWeightsZero",
            ErrorKind::ConnectRefused => "TargetConnectionError",
            ErrorKind::ConnectTimeout => "TargetConnectTimeout",
            ErrorKind::TargetClosed => "TargetClosedConnection",
            ErrorKind::BadResponse(r) => r,
            ErrorKind::ResponseTimeout => "TargetResponseTimeout",
            ErrorKind::TransformFailed => "TransformFailed",
            ErrorKind::RedirectTooLong => "RedirectUrlTooLong",
            ErrorKind::Deregistered => "DeregistrationDelayExpired",
            ErrorKind::TargetTls => "TargetTLSNegotiationError",
            ErrorKind::TargetTlsTimeout => "TargetTLSHandshakeTimeout",
            ErrorKind::ProtocolMismatch => "ProtocolVersionMismatch",
        }
    }

    /// Whether the client connection must close after the answer: after a framing error or
    /// a broken request body nobody knows where the next request starts.
    pub(crate) fn closes_client(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BadHead(_)
                | ErrorKind::HeaderTimeout
                | ErrorKind::ClientBody(_)
                | ErrorKind::ClientIdle
                | ErrorKind::ClientClosed
                | ErrorKind::NonCompliant(_)
        )
    }
}

impl ProxyError {
    /// A failed transfer of the request body (client to target).
    pub(crate) fn request_body(e: BodyError) -> ProxyError {
        ProxyError::new(match e {
            BodyError::Malformed(reason) => ErrorKind::ClientBody(reason),
            BodyError::SenderIdle => ErrorKind::ClientIdle,
            // ALB: "client closed before sending full body" is a 400 in the log; nobody is
            // left to receive it.
            BodyError::SenderClosed | BodyError::SenderIo => ErrorKind::ClientClosed,
            BodyError::ReceiverIdle => ErrorKind::ResponseTimeout,
            BodyError::ReceiverIo => ErrorKind::TargetClosed,
        })
    }

    /// A failed transfer of the response body (target to client), for the log: the
    /// reason a response was cut short.
    pub(crate) fn response_body_reason(e: &BodyError) -> &'static str {
        match e {
            BodyError::ReceiverIo | BodyError::ReceiverIdle => "ClientClosedDuringResponse",
            BodyError::Malformed(r) => r,
            BodyError::SenderClosed | BodyError::SenderIdle | BodyError::SenderIo => {
                "TargetClosedDuringResponse"
            }
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())?;
        if let Some(e) = &self.io {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProxyError {}
