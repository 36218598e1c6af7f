//! Streaming answers: the provider's SSE events written verbatim, in `seq` order.
//!
//! While the buyer waits for the first event (a long prefill), a `: keepalive` comment goes out on
//! a wall-clock interval so proxies and clients do not give up; nothing else drives it. When the
//! buyer goes away the body stream is dropped, and with it the [`RequestGuard`] that cancels the
//! request at the provider. The body is polled in the request's `relayed_request` span.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use hearth_protocol::openai::SSE_DONE;
use hearth_protocol::EndStatus;
use tokio::time::{Instant, MissedTickBehavior};

use super::errors::HttpError;
use super::guard::RequestGuard;
use crate::relay::{Dispatch, Failure, RelayEvent};
use crate::state::PoolState;

const KEEPALIVE: &[u8] = b": keepalive\n\n";

pub(crate) fn respond(
    shared: Arc<PoolState>,
    guard: RequestGuard,
    dispatch: Dispatch,
    deadline: Instant,
) -> Response {
    let span = dispatch.span.clone();
    let mut events = Box::pin(events(shared, guard, dispatch, deadline));
    // `tracing::Instrument` covers futures only; a stream enters its span on each poll by hand.
    let body = futures_util::stream::poll_fn(move |cx| span.in_scope(|| events.poll_next_unpin(cx)));
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("static header"));
    headers.insert(header::CACHE_CONTROL, "no-cache".parse().expect("static header"));
    headers.insert("x-accel-buffering", "no".parse().expect("static header"));
    response
}

enum Next {
    Relay(Option<RelayEvent>),
    Keepalive,
    Timeout,
}

fn is_done(event: &str) -> bool {
    event.trim() == SSE_DONE.trim()
}

fn error_event(e: &HttpError) -> Bytes {
    Bytes::from(e.error.to_sse_event())
}

fn events(
    shared: Arc<PoolState>,
    guard: RequestGuard,
    mut dispatch: Dispatch,
    deadline: Instant,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    async_stream::stream! {
        let _guard = guard;
        let period = shared.config.sse_keepalive;
        let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let timeout = tokio::time::sleep_until(deadline);
        tokio::pin!(timeout);
        let mut pending: BTreeMap<u64, String> = BTreeMap::new();
        let mut next_seq = 0;
        let mut started = false;
        let mut done_sent = false;
        loop {
            let next = tokio::select! {
                event = dispatch.events.recv() => Next::Relay(event),
                _ = keepalive.tick(), if !started => Next::Keepalive,
                _ = &mut timeout => Next::Timeout,
            };
            match next {
                Next::Keepalive => yield Ok(Bytes::from_static(KEEPALIVE)),
                Next::Relay(Some(RelayEvent::Chunk(chunk))) => {
                    pending.insert(chunk.seq, chunk.data);
                    while let Some(data) = pending.remove(&next_seq) {
                        next_seq += 1;
                        started = true;
                        done_sent |= is_done(&data);
                        let len = data.len();
                        yield Ok(Bytes::from(data));
                        // Counted as taken only once the connection asked for more after it.
                        dispatch.backlog.taken(len);
                    }
                }
                Next::Relay(Some(RelayEvent::End(end))) => {
                    // Whatever is left after a gap still goes out, in order.
                    for data in std::mem::take(&mut pending).into_values() {
                        done_sent |= is_done(&data);
                        yield Ok(Bytes::from(data));
                    }
                    let ok = matches!(end.status, EndStatus::Complete | EndStatus::Cancelled);
                    if !ok && !done_sent {
                        yield Ok(error_event(&HttpError::from_end(&end)));
                    }
                    if !done_sent {
                        yield Ok(Bytes::from_static(SSE_DONE.as_bytes()));
                    }
                    break;
                }
                Next::Relay(failure) => {
                    let failure = match failure {
                        Some(RelayEvent::Failed(f)) => f,
                        _ => Failure::Disconnected,
                    };
                    if !done_sent {
                        yield Ok(error_event(&HttpError::from_failure(&failure, true)));
                        yield Ok(Bytes::from_static(SSE_DONE.as_bytes()));
                    }
                    break;
                }
                Next::Timeout => {
                    shared.time_out(&dispatch.request_id, &dispatch.provider_id);
                    yield Ok(error_event(&HttpError::timeout()));
                    yield Ok(Bytes::from_static(SSE_DONE.as_bytes()));
                    break;
                }
            }
        }
    }
}
