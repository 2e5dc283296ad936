//! ELBv2 (Elastic Load Balancing v2, API version 2015-12-01): the shapes in botocore's
//! member names, the typed requests of the actions hostalb serves, and the error codes.
//!
//! Shapes serialize to the JSON `aws elbv2 describe-*` prints (PascalCase) and, through
//! [`crate::query::xml`], to the XML the Query protocol answers with; they deserialize
//! leniently (unknown members ignored, missing ones empty) so that any version of the
//! CLI's output can be read.

mod errors;
mod requests;
mod shapes;

pub use errors::{ElbError, ErrorCode};
pub use requests::*;
pub use shapes::*;

/// The API version every ELBv2 call carries (`Version=2015-12-01`).
pub const API_VERSION: &str = "2015-12-01";
/// The XML namespace of ELBv2's answers.
pub const XML_NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
/// The service name in SigV4 credential scopes.
pub const SIGNING_NAME: &str = "elasticloadbalancing";

/// A shape as JSON without its absent (`null`) members, as the CLI prints it.
pub fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    strip_nulls(&mut v);
    v
}

/// Removes `null` members of objects, at every depth.
pub fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
