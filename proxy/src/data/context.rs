//! The per-request context: what every phase of one request reads and writes, carried
//! from the route to the answer instead of being passed piece by piece.

use crate::data::body::BodyTransfer;
use crate::data::conn::Record;
use crate::http1::request::RequestHead;
use crate::model::shared::Shared;
use crate::model::snapshot::{ListenerRt, Snapshot};

/// One request on its way through the request path.
#[derive(Debug)]
pub(crate) struct RequestCx<'a> {
    pub(crate) shared: &'a Shared,
    /// The snapshot loaded once for this request: rules and targets of one version.
    pub(crate) snap: &'a Snapshot,
    pub(crate) listener: &'a ListenerRt,
    pub(crate) head: &'a RequestHead,
    /// How much of the request body has been read from the client. The forward moves it
    /// on; an answer hostalb makes itself drains or gives up on exactly what is left.
    pub(crate) body: BodyTransfer,
    /// hostalb answered `100 Continue`: the client sends its body.
    pub(crate) continue_sent: bool,
    /// What happened, for counters and the log.
    pub(crate) rec: Record,
    /// Gather the access log's facts (there is an access log).
    pub(crate) logging: bool,
}

impl<'a> RequestCx<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        snap: &'a Snapshot,
        listener: &'a ListenerRt,
        head: &'a RequestHead,
    ) -> RequestCx<'a> {
        RequestCx {
            shared,
            snap,
            listener,
            head,
            body: BodyTransfer::new(head.body, head.body),
            continue_sent: false,
            rec: Record::default(),
            logging: snap.access_log.is_some(),
        }
    }
}
