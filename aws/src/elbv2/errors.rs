//! ELBv2's error codes (the `Code` of `<ErrorResponse>`) with their HTTP status, as
//! botocore's model declares them, and the Query protocol's common errors.

use std::fmt;

use crate::query::xml;

/// Declares [`ErrorCode`] once: the variants, their `Code` text (the variant's name) and
/// [`ErrorCode::ALL`].
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// The error codes hostalb answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)+
        }

        impl ErrorCode {
            /// The `Code` element's text.
            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)+
                }
            }

            /// Every code, for tables and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)+];
        }
    };
}

error_codes! {
    // ELBv2's own (botocore: `*Exception` shapes).
    CertificateNotFound,
    DuplicateListener,
    DuplicateLoadBalancerName,
    DuplicateTagKeys,
    DuplicateTargetGroupName,
    HealthUnavailable,
    IncompatibleProtocols,
    InvalidConfigurationRequest,
    InvalidLoadBalancerAction,
    InvalidTarget,
    ListenerNotFound,
    LoadBalancerNotFound,
    OperationNotPermitted,
    PriorityInUse,
    ResourceInUse,
    RuleNotFound,
    TargetGroupAssociationLimit,
    TargetGroupNotFound,
    TooManyActions,
    TooManyListeners,
    TooManyLoadBalancers,
    TooManyRules,
    TooManyTags,
    TooManyTargetGroups,
    TooManyTargets,
    UnsupportedProtocol,
    // The Query protocol's common errors.
    /// A parameter is missing or malformed.
    ValidationError,
    /// `Action` names no action hostalb serves.
    InvalidAction,
    /// No `Action` parameter.
    MissingAction,
    /// `Version` is not `2015-12-01`.
    InvalidParameterValue,
    /// The signature does not match, or is expired, or is scoped to another region or
    /// service.
    SignatureDoesNotMatch,
    /// The Authorization header is malformed.
    IncompleteSignature,
    /// The access key id is unknown.
    InvalidClientTokenId,
    /// No signature where one is required.
    MissingAuthenticationToken,
    /// A fault of hostalb's own.
    InternalFailure,
}

impl ErrorCode {
    /// The HTTP status of the answer.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            HealthUnavailable | InternalFailure => 500,
            SignatureDoesNotMatch
            | IncompleteSignature
            | InvalidClientTokenId
            | MissingAuthenticationToken => 403,
            _ => 400,
        }
    }

    /// `Sender` (the caller's fault) or `Receiver` (hostalb's), the `Type` element.
    pub fn fault(self) -> &'static str {
        if self.http_status() >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// An ELBv2 error answer: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElbError {
    pub code: ErrorCode,
    pub message: String,
}

impl ElbError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ElbError {
        ElbError {
            code,
            message: message.into(),
        }
    }

    /// A missing required parameter, worded as AWS words it.
    pub fn missing(member: &str) -> ElbError {
        ElbError::new(
            ErrorCode::ValidationError,
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(member)
            ),
        )
    }

    /// A parameter whose value cannot be read as its type.
    pub fn invalid(member: &str, value: &str, expected: &str) -> ElbError {
        ElbError::new(
            ErrorCode::ValidationError,
            format!(
                "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must be {expected}",
                lower_first(member)
            ),
        )
    }

    /// The `<ErrorResponse>` document.
    pub fn to_xml(&self, request_id: &str) -> String {
        xml::error(self.code.fault(), self.code.code(), &self.message, request_id)
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl fmt::Display for ElbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.message)
    }
}

impl std::error::Error for ElbError {}

/// AWS's validation messages name members in camelCase paths (`listenerArn`,
/// `conditions.1.values`).
fn lower_first(member: &str) -> String {
    member
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_members_as_aws_does() {
        let e = ElbError::missing("ListenerArn");
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.contains("'listenerArn'"), "{}", e.message);
        let e = ElbError::invalid("Conditions.member.1.Field", "x", "a condition field");
        assert!(e.message.contains("'conditions.member.1.field'"), "{}", e.message);
    }

    #[test]
    fn statuses_follow_the_model() {
        assert_eq!(ErrorCode::TargetGroupNotFound.http_status(), 400);
        assert_eq!(ErrorCode::HealthUnavailable.http_status(), 500);
        assert_eq!(ErrorCode::HealthUnavailable.fault(), "Receiver");
        assert_eq!(ErrorCode::SignatureDoesNotMatch.http_status(), 403);
        let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }
}
