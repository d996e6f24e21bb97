//! `/api/follow`: the log as it grows, as server-sent events.
//!
//! Each new event is one SSE message named `event`, whose data is the event's JSON (the
//! export format) and whose id is its position: a browser's `EventSource` that reconnects
//! sends it back as `Last-Event-ID` and resumes after it. A store error ends the stream with
//! one message named `error`; a server told to stop ends it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use es_core::store::{EventStore, RecordedEvent};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use super::error::ApiError;
use super::read::event_json;
use super::state::App;
use crate::error::{CliResult, StoreContext};
use crate::inspect::{LogFilter, LogFollower};

#[derive(Deserialize)]
pub(super) struct FollowParams {
    /// The first position to send (default: the next event committed).
    from: Option<u64>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    aggregate: Option<String>,
}

/// What the stream of one client holds between messages.
struct Following {
    follower: LogFollower,
    filter: LogFilter,
    ready: VecDeque<RecordedEvent>,
    ended: bool,
}

impl Following {
    /// The next message: an event that passes the filter (waiting for one), or an error.
    async fn next_message(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(match message(&e) {
                    Ok(m) => m,
                    Err(e) => self.end(e.to_string()),
                });
            }
            match self.follower.next_page().await {
                Ok(page) => self
                    .ready
                    .extend(page.into_iter().filter(|e| self.filter.matches(e))),
                Err(e) => return Some(self.end(e.to_string())),
            }
        }
    }

    fn end(&mut self, error: String) -> Event {
        self.ended = true;
        Event::default().event("error").data(error)
    }
}

fn message(e: &RecordedEvent) -> CliResult<Event> {
    let json = event_json(e)?;
    Ok(Event::default()
        .event("event")
        .id(e.position.to_string())
        .data(json.get()))
}

/// `GET /api/follow`.
pub(super) async fn follow(
    State(app): State<App>,
    Query(params): Query<FollowParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let es = app.store.store();
    let follower = LogFollower::new(es.clone());
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not a position"))?
                + 1,
        ),
        None => None,
    };
    let from = match resume.or(params.from) {
        Some(from) => from,
        None => es.head_position().await.doing("reading the head")? + 1,
    };
    let mut following = Following {
        follower,
        filter: LogFilter {
            from,
            limit: 0,
            event_type: params.event_type.filter(|t| !t.is_empty()),
            aggregate: params.aggregate.filter(|a| !a.is_empty()),
        },
        ready: VecDeque::new(),
        ended: false,
    };
    following.follower.next = from.max(1);
    let stream = futures::stream::unfold(following, |mut f| async move {
        f.next_message().await.map(|m| (Ok(m), f))
    })
    .take_until(app.stopped());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
