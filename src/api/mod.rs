//! The AWS APIs on the admin address (`POST /`), wired to the proxy's control API. The
//! binary holds them, as it holds Docker discovery: `hostalb-aws` has the shapes and
//! codecs, `hostalb-proxy` the one way in (validate, then apply as a reload does), and
//! neither knows the other.
//!
//! A call is routed by its SigV4 credential scope's service, then `X-Amz-Target`, then
//! `Version`: ELBv2's Query protocol is served ([`elbv2`]), ECS's JSON 1.1 calls by
//! [`ecs`]. On an admin address that is not loopback, every call must carry a valid
//! signature made with `[admin] access_key_id / secret_access_key`, else 403
//! `InvalidSignature`.

pub(crate) mod check;
mod doc;
mod ecs;
mod elbv2;
pub(crate) mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use hostalb_aws::elbv2::{API_VERSION, ElbError, ErrorCode, SIGNING_NAME, XML_NAMESPACE};
use hostalb_aws::query::Params;
use hostalb_aws::{json11, sigv4};
use hostalb_proxy::{AwsAnswer, AwsApi, AwsCall, Proxy};

pub(crate) use self::elbv2::Elbv2;

/// The service name of ECS in SigV4 credential scopes.
const ECS_SIGNING_NAME: &str = "ecs";
/// The error code of every refused signature (the admin address's promise).
const INVALID_SIGNATURE: &str = "InvalidSignature";

/// The AWS APIs of one hostalb.
#[derive(Debug)]
pub(crate) struct Api {
    elbv2: Arc<Elbv2>,
    ecs: Arc<ecs::EcsApi>,
    /// Signatures are required (the admin address is not loopback).
    signed_only: bool,
    proxy: Proxy,
}

impl Api {
    pub(crate) fn new(proxy: Proxy, state: state::ApiState, state_path: PathBuf, admin: SocketAddr) -> Api {
        let shared = state.ecs.clone();
        let endpoint = proxy.config().docker.endpoint.clone();
        let elbv2 = Arc::new(Elbv2::new(proxy.clone(), state, state_path.clone()));
        Api {
            signed_only: !admin.ip().is_loopback(),
            ecs: Arc::new(ecs::EcsApi::new(
                shared,
                state_path,
                endpoint.as_deref(),
                Arc::clone(&elbv2),
            )),
            elbv2,
            proxy,
        }
    }

    /// Serves the state loaded at start.
    pub(crate) async fn start(&self) -> Result<(), String> {
        self.elbv2.start().await?;
        self.ecs.start().await
    }

    async fn answer(&self, call: AwsCall) -> AwsAnswer {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signed = sigv4::SignedRequest {
            method: &call.method,
            path: &call.path,
            query: &call.query,
            headers: &headers,
            body: &call.body,
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let auth = sigv4::Authorization::of(&signed);
        let service = auth.as_ref().ok().map(|a| a.service.clone());
        let target = header("x-amz-target");
        let is_ecs = service.as_deref() == Some(ECS_SIGNING_NAME)
            || target
                .and_then(|t| json11::Target::parse(t).ok())
                .is_some_and(|t| t.is_ecs());
        if self.signed_only {
            if let Err(message) = self.check_signature(&signed, auth.as_ref()) {
                return if is_ecs {
                    json_error(403, INVALID_SIGNATURE, &message)
                } else {
                    xml_error(403, INVALID_SIGNATURE, &message)
                };
            }
        }
        if is_ecs {
            let operation = target.and_then(|t| t.rsplit('.').next()).unwrap_or("(none)");
            return self.ecs.call(operation, &call.body).await;
        }
        match service.as_deref() {
            None | Some(SIGNING_NAME) => {}
            Some(other) => {
                return xml_error(
                    400,
                    "InvalidAction",
                    &format!(
                        "service `{other}` (the credential scope's) is not served here: ELBv2 ({SIGNING_NAME}) is"
                    ),
                );
            }
        }
        let body = String::from_utf8_lossy(&call.body);
        let params = match Params::parse(&body) {
            Ok(p) => p,
            Err(e) => return elb_error(&ElbError::from(e)),
        };
        if let Some(v) = params.version() {
            if v != API_VERSION {
                return elb_error(&ElbError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Version {v} is not served: ELBv2's is {API_VERSION}"),
                ));
            }
        }
        self.elbv2.call(&params).await
    }

    /// Checks the call's signature against the configured credentials.
    fn check_signature(
        &self,
        req: &sigv4::SignedRequest<'_>,
        auth: Result<&sigv4::Authorization, &sigv4::SigError>,
    ) -> Result<(), String> {
        // The credentials of the configuration served now (a reload may change them).
        let config = self.proxy.config();
        let Some(creds) = &config.admin.credentials else {
            return Err(
                "the admin address is not loopback and no [admin] access_key_id / secret_access_key is configured: every call is refused"
                    .into(),
            );
        };
        let auth = auth.map_err(|e| e.to_string())?;
        if auth.access_key_id != creds.access_key_id {
            return Err(sigv4::SigError::UnknownAccessKey(auth.access_key_id.clone()).to_string());
        }
        let expect = sigv4::Expect {
            region: None,
            service: None,
            now: SystemTime::now(),
            max_skew: sigv4::MAX_CLOCK_SKEW,
        };
        sigv4::verify(req, auth, &creds.secret_access_key, &expect).map_err(|e| e.to_string())
    }
}

impl AwsApi for Api {
    fn call(
        self: Arc<Self>,
        call: AwsCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AwsAnswer> + Send>> {
        Box::pin(async move { self.answer(call).await })
    }
}

/// A request id for one answer.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    // A counter and the clock are enough for ids that only have to differ.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hostalb_aws::request_id((t << 32) ^ u128::from(n))
}

pub(crate) fn xml_answer(action: &str, result: &serde_json::Value) -> AwsAnswer {
    AwsAnswer {
        status: 200,
        content_type: "text/xml",
        body: hostalb_aws::query::xml::response(action, XML_NAMESPACE, Some(result), &request_id())
            .into_bytes(),
    }
}

pub(crate) fn elb_error(e: &ElbError) -> AwsAnswer {
    AwsAnswer {
        status: e.http_status(),
        content_type: "text/xml",
        body: e.to_xml(&request_id()).into_bytes(),
    }
}

fn xml_error(status: u16, code: &str, message: &str) -> AwsAnswer {
    AwsAnswer {
        status,
        content_type: "text/xml",
        body: hostalb_aws::query::xml::error("Sender", code, message, &request_id()).into_bytes(),
    }
}

fn json_error(status: u16, type_name: &str, message: &str) -> AwsAnswer {
    AwsAnswer {
        status,
        content_type: "application/x-amz-json-1.1",
        body: json11::encode_error(type_name, message),
    }
}
