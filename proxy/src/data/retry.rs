//! The one retry policy. A request is sent again only when
//!
//! - (a) no byte of it reached a target: the connection was refused or not established in
//!   time (retried only when the group has another target: the same one would refuse
//!   again, or make the client wait a second connect timeout), or a reused connection
//!   failed on the very first write; or
//! - (b) its method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE), its body (if any) was
//!   kept whole, the target group allows it (`retry_idempotent`, default true), and the
//!   target closed or reset the connection without sending one byte of a response.
//!
//! A request cut because its target's deregistration delay ran out (at once with a delay
//! of 0) counts as (a) when none of it was written yet and as (b) when it was written and
//! no byte of a response came back: hostalb closed the connection instead of the target,
//! and the group has another target to take it. Such a cut is hostalb's own doing, not a
//! target's failure: it does not use up the one retry (a batch of targets deregistered
//! one after the other may cut the same request more than once; a cut target is never
//! picked again), up to [`MAX_CUT_RETRIES`]. So targets deregistered with a delay of 0
//! (an ECS rolling update, a scale-in) lose no idempotent request in flight.
//!
//! Always on a new connection, preferably to another target, and at most once. A
//! non-idempotent request that reached a target is never sent again: the client gets
//! ALB's 502. A target that answered slowly (504) is never retried either: it may still
//! be working on the request.

use crate::data::errors::{ErrorKind, ProxyError};
use crate::http1::request::RequestHead;

/// Most times one request is sent again after deregistrations cut it: more targets than
/// this leaving within one request's life is no rolling update.
const MAX_CUT_RETRIES: u8 = 8;

/// How far a failed attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// No byte of the request was written to the target.
    Nothing,
    /// Some of the request was written; no byte of a response came back.
    Request,
    /// Some of a response came back.
    Response,
}

/// An attempt that failed, and how far it got.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) err: ProxyError,
    pub(crate) reached: Reached,
}

impl Failure {
    pub(crate) fn new(err: ProxyError, reached: Reached) -> Failure {
        Failure { err, reached }
    }
}

/// Whether the one retry a request may have is still there, and what may use it.
#[derive(Debug)]
pub(crate) struct RetryPolicy {
    /// Case (b) applies to this request.
    replay_allowed: bool,
    used: bool,
    /// Times the request was sent again after a deregistration cut it.
    cuts: u8,
}

impl RetryPolicy {
    /// `kept_whole`: the whole request (head and body) is held in memory and can be written
    /// again. `retry_idempotent`: the target group's attribute.
    pub(crate) fn new(head: &RequestHead, kept_whole: bool, retry_idempotent: bool) -> RetryPolicy {
        RetryPolicy {
            replay_allowed: retry_idempotent && kept_whole && is_idempotent(head.method()),
            used: false,
            cuts: 0,
        }
    }

    /// Whether the failed attempt may be sent again; takes the one retry when it may.
    /// `another_target`: the group has a routable target other than the one that failed.
    pub(crate) fn take(&mut self, failure: &Failure, another_target: bool) -> bool {
        if !self.eligible(failure, another_target) {
            return false;
        }
        if matches!(failure.err.kind, ErrorKind::Deregistered) {
            if self.cuts >= MAX_CUT_RETRIES {
                return false;
            }
            self.cuts += 1;
            return true;
        }
        if self.used {
            return false;
        }
        self.used = true;
        true
    }

    /// The request is on its retry: it must use a new connection.
    pub(crate) fn retrying(&self) -> bool {
        self.used || self.cuts > 0
    }

    fn eligible(&self, failure: &Failure, another_target: bool) -> bool {
        match (&failure.err.kind, failure.reached) {
            (ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout, _) => another_target,
            (ErrorKind::TargetClosed, Reached::Nothing) => true,
            (ErrorKind::TargetClosed, Reached::Request) => self.replay_allowed,
            (ErrorKind::Deregistered, Reached::Nothing) => another_target,
            (ErrorKind::Deregistered, Reached::Request) => self.replay_allowed && another_target,
            _ => false,
        }
    }
}

/// RFC 9110 §9.2.2's idempotent methods (TRACE is refused before any forward).
pub(crate) fn is_idempotent(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE")
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::http1::request;

    fn head(method: &str) -> RequestHead {
        let mut buf = BytesMut::from(format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        match request::parse(&mut buf) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn failure(kind: ErrorKind, reached: Reached) -> Failure {
        Failure::new(ProxyError::new(kind), reached)
    }

    #[test]
    fn a_post_that_reached_a_target_is_never_sent_again() {
        let mut p = RetryPolicy::new(&head("POST"), true, true);
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
        let mut p = RetryPolicy::new(&head("PATCH"), true, true);
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
    }

    #[test]
    fn nothing_sent_is_retried_once_whatever_the_method() {
        let mut p = RetryPolicy::new(&head("POST"), false, false);
        assert!(p.take(&failure(ErrorKind::ConnectRefused, Reached::Nothing), true));
        assert!(p.retrying());
        assert!(!p.take(&failure(ErrorKind::ConnectRefused, Reached::Nothing), true));
        let mut p = RetryPolicy::new(&head("POST"), false, false);
        assert!(p.take(&failure(ErrorKind::TargetClosed, Reached::Nothing), false));
    }

    #[test]
    fn a_failed_connect_is_retried_only_on_another_target() {
        let mut p = RetryPolicy::new(&head("GET"), true, true);
        assert!(!p.take(&failure(ErrorKind::ConnectRefused, Reached::Nothing), false));
        assert!(!p.take(&failure(ErrorKind::ConnectTimeout, Reached::Nothing), false));
        assert!(p.take(&failure(ErrorKind::ConnectTimeout, Reached::Nothing), true));
    }

    #[test]
    fn idempotent_requests_kept_whole_are_retried_once_when_the_target_closed_silently() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"] {
            let mut p = RetryPolicy::new(&head(m), true, true);
            assert!(
                p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true),
                "{m}"
            );
            assert!(
                !p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true),
                "{m}"
            );
        }
    }

    #[test]
    fn no_replay_when_the_group_says_no_or_the_body_was_streamed() {
        let mut p = RetryPolicy::new(&head("GET"), true, false);
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
        let mut p = RetryPolicy::new(&head("PUT"), false, true);
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
    }

    #[test]
    fn timeouts_answers_and_cut_targets_are_never_retried() {
        let mut p = RetryPolicy::new(&head("GET"), true, true);
        assert!(!p.take(&failure(ErrorKind::ResponseTimeout, Reached::Request), true));
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Response), true));
        assert!(!p.take(&failure(ErrorKind::BadResponse("x"), Reached::Response), true));
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Response), true));
        assert!(!p.retrying());
    }

    #[test]
    fn a_request_cut_by_its_targets_deregistration_goes_to_another_target() {
        // Nothing written yet: any method, when there is another target.
        let mut p = RetryPolicy::new(&head("POST"), false, false);
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Nothing), false));
        assert!(p.take(&failure(ErrorKind::Deregistered, Reached::Nothing), true));
        // Written, no answer yet: idempotent requests kept whole only, and only once.
        let mut p = RetryPolicy::new(&head("GET"), true, true);
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Request), false));
        assert!(p.take(&failure(ErrorKind::Deregistered, Reached::Request), true));
        assert!(p.retrying());
        // Cut again by the next target of the batch: sent again, the one retry still
        // there for a target's own failure; bounded.
        assert!(p.take(&failure(ErrorKind::Deregistered, Reached::Request), true));
        assert!(p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
        assert!(!p.take(&failure(ErrorKind::TargetClosed, Reached::Request), true));
        for _ in 2..MAX_CUT_RETRIES {
            assert!(p.take(&failure(ErrorKind::Deregistered, Reached::Nothing), true));
        }
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Nothing), true));
        let mut p = RetryPolicy::new(&head("POST"), true, true);
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Request), true));
        let mut p = RetryPolicy::new(&head("GET"), true, false);
        assert!(!p.take(&failure(ErrorKind::Deregistered, Reached::Request), true));
    }
}
