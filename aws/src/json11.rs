//! The JSON 1.1 protocol ECS speaks, as a codec: `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>` and
//! `Content-Type: application/x-amz-json-1.1`; the body is the input shape as JSON (camelCase
//! members); answers are the output shape, errors `{"__type": "...", "message": "..."}`.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// ECS's target prefix (its API version in the JSON protocol's naming).
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
/// The service name in ECS's SigV4 credential scopes.
pub const ECS_SIGNING_NAME: &str = "ecs";

/// `X-Amz-Target`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// `AmazonEC2ContainerServiceV20141113`.
    pub prefix: &'a str,
    /// `RunTask`.
    pub operation: &'a str,
}

impl<'a> Target<'a> {
    /// Splits `PREFIX.Operation`.
    pub fn parse(header: &'a str) -> Result<Target<'a>, JsonError> {
        match header.trim().rsplit_once('.') {
            Some((prefix, operation)) if !prefix.is_empty() && !operation.is_empty() => {
                Ok(Target { prefix, operation })
            }
            _ => Err(JsonError::new(
                ErrorType::UnknownOperation,
                format!("X-Amz-Target `{header}` is not SERVICE.Operation"),
            )),
        }
    }

    /// Whether the target is ECS's.
    pub fn is_ecs(&self) -> bool {
        self.prefix == ECS_TARGET_PREFIX
    }
}

/// The error types hostalb answers with in the JSON protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The caller's mistake (ECS's generic client error).
    ClientException,
    /// hostalb's own fault.
    ServerException,
    /// A parameter is missing or invalid.
    InvalidParameterException,
    ClusterNotFoundException,
    ServiceNotFoundException,
    ServiceNotActiveException,
    /// The operation is not one hostalb serves.
    UnknownOperation,
    /// The body is not JSON of the input shape.
    SerializationException,
    InvalidSignatureException,
    IncompleteSignatureException,
    UnrecognizedClientException,
    MissingAuthenticationTokenException,
    AccessDeniedException,
}

impl ErrorType {
    /// The `__type` text.
    pub fn name(self) -> &'static str {
        use ErrorType::*;
        match self {
            ClientException => "ClientException",
            ServerException => "ServerException",
            InvalidParameterException => "InvalidParameterException",
            ClusterNotFoundException => "ClusterNotFoundException",
            ServiceNotFoundException => "ServiceNotFoundException",
            ServiceNotActiveException => "ServiceNotActiveException",
            UnknownOperation => "UnknownOperationException",
            SerializationException => "SerializationException",
            InvalidSignatureException => "InvalidSignatureException",
            IncompleteSignatureException => "IncompleteSignatureException",
            UnrecognizedClientException => "UnrecognizedClientException",
            MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            AccessDeniedException => "AccessDeniedException",
        }
    }

    /// The HTTP status of the answer.
    pub fn http_status(self) -> u16 {
        use ErrorType::*;
        match self {
            ServerException => 500,
            InvalidSignatureException
            | IncompleteSignatureException
            | UnrecognizedClientException
            | MissingAuthenticationTokenException
            | AccessDeniedException => 403,
            _ => 400,
        }
    }
}

/// A JSON-protocol error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub kind: ErrorType,
    pub message: String,
}

impl JsonError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> JsonError {
        JsonError {
            kind,
            message: message.into(),
        }
    }

    /// `{"__type":"ClientException","message":"..."}`.
    pub fn to_body(&self) -> Vec<u8> {
        encode_error(self.kind.name(), &self.message)
    }

    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for JsonError {}

/// Reads a request body as the input shape `T`; an empty body is `{}` (botocore sends
/// `{}` for an operation without members, some clients send nothing).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| JsonError::new(ErrorType::SerializationException, e.to_string()))
}

/// An answer's body: the output shape as JSON.
pub fn encode_body<T: Serialize>(output: &T) -> Vec<u8> {
    serde_json::to_vec(output).unwrap_or_else(|_| b"{}".to_vec())
}

/// An error body.
pub fn encode_error(type_name: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "__type": type_name, "message": message })).unwrap_or_default()
}

/// Reads an error body as botocore does: `__type` without any namespace before `#`, the
/// message from `message` or `Message`.
pub fn decode_error(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v.get("__type")?.as_str()?;
    let t = t.rsplit_once('#').map(|(_, t)| t).unwrap_or(t);
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    Some((t.to_owned(), message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_at_the_last_dot() {
        let t = Target::parse("AmazonEC2ContainerServiceV20141113.RunTask").unwrap();
        assert_eq!((t.prefix, t.operation), (ECS_TARGET_PREFIX, "RunTask"));
        assert!(t.is_ecs());
        assert!(!Target::parse("DynamoDB_20120810.GetItem").unwrap().is_ecs());
        for bad in ["RunTask", ".RunTask", "AmazonEC2ContainerServiceV20141113.", ""] {
            let e = Target::parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorType::UnknownOperation, "{bad}");
        }
    }

    #[test]
    fn bodies_decode_into_input_shapes() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        struct ListServices {
            cluster: Option<String>,
            max_results: Option<u32>,
        }
        let v: ListServices = decode_body(br#"{"cluster":"shop","maxResults":10}"#).unwrap();
        assert_eq!(v.cluster.as_deref(), Some("shop"));
        let empty: ListServices = decode_body(b"").unwrap();
        assert_eq!(
            empty,
            ListServices {
                cluster: None,
                max_results: None
            }
        );
        let e = decode_body::<ListServices>(br#"{"maxResults":"ten"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorType::SerializationException);
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn errors_round_trip_as_botocore_reads_them() {
        let e = JsonError::new(ErrorType::ClusterNotFoundException, "Cluster not found.");
        let body = e.to_body();
        assert_eq!(
            decode_error(&body),
            Some(("ClusterNotFoundException".into(), "Cluster not found.".into()))
        );
        assert_eq!(
            decode_error(br#"{"__type":"com.amazonaws.ecs#ClientException","Message":"m"}"#),
            Some(("ClientException".into(), "m".into()))
        );
        assert_eq!(ErrorType::InvalidSignatureException.http_status(), 403);
        assert_eq!(ErrorType::ServerException.http_status(), 500);
        assert_eq!(
            encode_body(&serde_json::json!({"services": []})),
            br#"{"services":[]}"#.to_vec()
        );
    }
}
