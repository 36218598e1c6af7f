//! [`RequestGuard`]: the buyer's hold on a request in flight. Both ways of answering (the whole
//! body in `chat`, the event stream in `sse`) keep one for as long as the buyer is there.

use std::sync::Arc;

use crate::state::PoolState;

/// Cancels the request at the provider if the buyer's side is dropped before the request ended
/// (the HTTP handler future or the SSE body). After a normal end it finds nothing to cancel.
pub(crate) struct RequestGuard {
    pub shared: Arc<PoolState>,
    pub request_id: String,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.shared.abandon(&self.request_id, "buyer_disconnected");
    }
}
