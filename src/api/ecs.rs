//! ECS's JSON 1.1 calls (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`),
//! served by `hostalb-ecs` on the Docker engine `[docker] endpoint` names. Its state lives
//! in the state file's `Ecs` member, shared with the ELBv2 side: whichever side writes
//! the file writes ECS's current state.

use std::path::PathBuf;
use std::sync::Arc;

use hostalb_aws::json11::CONTENT_TYPE;
use hostalb_ecs::{Ecs, Shared};
use hostalb_proxy::AwsAnswer;

use super::state;

/// The ECS API, once the Docker client could be made.
#[derive(Debug)]
pub(crate) struct EcsApi {
    ecs: Result<Ecs, String>,
}

impl EcsApi {
    pub(crate) fn new(shared: Shared, path: PathBuf, endpoint: Option<&str>) -> EcsApi {
        let saver_state = shared.clone();
        let saver = Box::new(move || {
            // The ELBv2 side's latest resources, as written, with ECS's current state; no
            // other write falls between the read and the write.
            let _one = state::WRITES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut current = state::load(&path).map_err(|e| e.to_string())?;
            current.ecs = saver_state.clone();
            state::write(&path, &current).map_err(|e| e.to_string())
        });
        let ecs = hostalb_ecs::docker::connect(endpoint)
            .map(|docker| Ecs::new(shared, docker, saver))
            .map_err(|e| format!("the Docker engine cannot be reached: {e}"));
        EcsApi { ecs }
    }

    /// Takes the state file's tasks back (running ones are watched again).
    pub(crate) async fn start(&self) -> Result<(), String> {
        match &self.ecs {
            Ok(ecs) => ecs.start().await,
            Err(_) => Ok(()),
        }
    }

    pub(crate) async fn call(self: &Arc<Self>, operation: &str, body: &[u8]) -> AwsAnswer {
        let ecs = match &self.ecs {
            Ok(e) => e,
            Err(m) => return answer_error(&hostalb_ecs::EcsError::server(m.clone())),
        };
        match ecs.call(operation, body).await {
            Ok(mut v) => {
                hostalb_aws::elbv2::strip_nulls(&mut v);
                AwsAnswer {
                    status: 200,
                    content_type: CONTENT_TYPE,
                    body: serde_json::to_vec(&v).unwrap_or_default(),
                }
            }
            Err(e) => answer_error(&e),
        }
    }
}

fn answer_error(e: &hostalb_ecs::EcsError) -> AwsAnswer {
    AwsAnswer {
        status: e.http_status(),
        content_type: CONTENT_TYPE,
        body: hostalb_aws::json11::encode_error(e.code, &e.message),
    }
}
