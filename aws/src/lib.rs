//! hostalb's AWS surfaces, as pure code: no sockets, no runtime.
//!
//! - [`elbv2`]: the ELBv2 API shapes (load balancer, listener, rule with its conditions and
//!   actions, target group and its attributes, target health) in botocore's member names,
//!   the typed requests of the actions hostalb serves, and ELBv2's error codes;
//! - [`ecs`]: the ECS shapes `hostalb import` reads (service, task definition);
//! - [`query`]: the Query protocol: form-urlencoded `Action=..&Version=2015-12-01&..` with
//!   `Name.member.N` lists and `Name.entry.N.key` maps in, XML answers and errors out;
//! - [`json11`]: the JSON 1.1 envelope ECS speaks (`X-Amz-Target`, `__type` errors);
//! - [`sigv4`]: Signature Version 4 verification (canonical request, string to sign,
//!   signing key), as botocore signs;
//! - [`arn`]: ARNs in AWS's shape, the same ids hostalb's admin API, metrics and access log
//!   show;
//! - [`import`]: `hostalb import`: the JSON `aws elbv2 describe-*` and `aws ecs describe-*`
//!   print, in; a hostalb configuration (TOML text) and notes on what could not be carried
//!   over, out.
//!
//! Vocabulary as in ALB: a *load balancer* has *listeners*; a listener's *rules* (conditions,
//! then actions, by priority) forward to *target groups*, whose *targets* are health-checked.

pub mod arn;
pub mod ecs;
pub mod elbv2;
pub mod import;

pub mod json11;
pub mod query;
pub mod sigv4;

mod hex;

/// A request id in the UUID shape AWS uses (`x-amzn-RequestId`, `<RequestId>`), from 128
/// bits the caller draws.
pub fn request_id(bits: u128) -> String {
    let h = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_shaped() {
        assert_eq!(
            super::request_id(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            "01234567-89ab-cdef-0011-223344556677"
        );
    }
}
