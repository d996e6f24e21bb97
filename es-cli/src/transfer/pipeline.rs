//! The writing side of a transfer: [`Pipeline`] appends the events it is given to the target
//! in batches, a few in flight, in the source's order (see the [module docs](super)).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use es_core::store::{
    BatchAppend, BatchOutcome, ExpectedVersion, NewEvent, Store, StoreError, StreamId,
};
use es_stores::OpenedStore;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use indicatif::ProgressBar;

use crate::error::{CliError, CliResult};

/// About how many events one batch (one `append_many`) holds: a batch is sent once it holds
/// this many.
const BATCH_EVENTS: usize = 8 * 1024;
/// The same into PostgreSQL, where each batch is a transaction and its commit a round trip and
/// a flush of its own: twice as many events per batch copy 1M events in 9.0-9.5 s instead of
/// 10.3-10.9 s (the server takes at most 65,535 events in one transaction). The other stores
/// keep [`BATCH_EVENTS`], which holds the peak memory of a copy lower.
const BATCH_EVENTS_POSTGRES: usize = 16 * 1024;
/// The most batches in flight at once (bounds memory together with the page size).
const BATCHES_IN_FLIGHT: usize = 2;

type Batch = Pin<Box<dyn Future<Output = Result<BatchOutcome, StoreError>> + Send>>;

/// The streams of a batch's appends, in order, for messages: their ids in one string (one
/// allocation per batch rather than two per append).
#[derive(Default)]
struct StreamNames {
    text: String,
    /// Per append: where its aggregate type and its aggregate id end in `text`.
    ends: Vec<(usize, usize)>,
}

impl StreamNames {
    fn push(&mut self, stream: &StreamId) {
        self.text.push_str(&stream.aggregate_type);
        let type_end = self.text.len();
        self.text.push_str(&stream.aggregate_id);
        self.ends.push((type_end, self.text.len()));
    }

    /// The stream of append `i`, as `StreamId` displays it (`type/id`).
    fn get(&self, i: usize) -> String {
        let start = match i.checked_sub(1).and_then(|p| self.ends.get(p)) {
            Some(&(_, end)) => end,
            None => 0,
        };
        match self.ends.get(i) {
            Some(&(type_end, end)) => StreamId::new(
                self.text.get(start..type_end).unwrap_or_default(),
                self.text.get(type_end..end).unwrap_or_default(),
            )
            .to_string(),
            None => "?".to_owned(),
        }
    }
}

/// Consecutive events of one stream, gathered into one append.
struct Run {
    stream: StreamId,
    first_sequence: u64,
    events: Vec<NewEvent>,
}

/// Appends runs of events to a target store in batches, a few in flight, in order.
pub(super) struct Pipeline {
    target: Arc<dyn Store>,
    /// The run being gathered (not in `batch` yet).
    run: Option<Run>,
    /// The batch being gathered, its event count and its streams.
    batch: Vec<BatchAppend>,
    batch_events: usize,
    /// The events that fill a batch ([`BATCH_EVENTS`] or [`BATCH_EVENTS_POSTGRES`]).
    batch_size: usize,
    names: StreamNames,
    in_flight: FuturesOrdered<Batch>,
    /// Per batch in flight, in order: the stream of each of its appends (for messages).
    pending: VecDeque<StreamNames>,
    /// The target position of the last event committed so far.
    last_position: u64,
    /// Events committed.
    pub(super) written: u64,
    bar: ProgressBar,
}

impl Pipeline {
    pub(super) fn new(target: &OpenedStore, bar: ProgressBar) -> Self {
        Self {
            target: target.store(),
            batch_size: match target.url().backend() {
                "postgres" => BATCH_EVENTS_POSTGRES,
                _ => BATCH_EVENTS,
            },
            run: None,
            batch: Vec::new(),
            batch_events: 0,
            names: StreamNames::default(),
            in_flight: FuturesOrdered::new(),
            pending: VecDeque::new(),
            last_position: 0,
            written: 0,
            bar,
        }
    }

    /// Adds the event `stream#sequence`: to the run being gathered when it is the next event
    /// of the run's stream, else to a new run (the gathered one goes to the batch, which is
    /// sent when it is full).
    pub(super) async fn push(
        &mut self,
        stream: StreamId,
        sequence: u64,
        event: NewEvent,
    ) -> CliResult<()> {
        if let Some(run) = &mut self.run
            && run.stream == stream
            && run.first_sequence + run.events.len() as u64 == sequence
        {
            run.events.push(event);
            return Ok(());
        }
        let previous = self.run.replace(Run {
            stream,
            first_sequence: sequence,
            events: vec![event],
        });
        if let Some(run) = previous {
            self.add(run).await?;
        }
        Ok(())
    }

    /// Adds an append of `run` to the batch, sending the batch when it is full.
    async fn add(&mut self, run: Run) -> CliResult<()> {
        self.batch_events += run.events.len();
        let expected = ExpectedVersion::Exact(run.first_sequence.saturating_sub(1));
        self.names.push(&run.stream);
        self.batch
            .push(BatchAppend::new(run.stream, expected, run.events));
        if self.batch_events >= self.batch_size {
            self.send().await?;
        }
        Ok(())
    }

    /// Sends the gathered batch (after waiting for room).
    async fn send(&mut self) -> CliResult<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= BATCHES_IN_FLIGHT {
            self.complete_one().await?;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_events = 0;
        let names = std::mem::take(&mut self.names);
        let target = Arc::clone(&self.target);
        // Unconstrained: tokio's cooperative budget must not make the first poll return
        // before the batch is queued.
        let mut write: Batch = Box::pin(tokio::task::unconstrained(async move {
            target.append_many(batch).await
        }));
        // Poll it once now: that queues it at the store (the embedded stores' writer queue,
        // PostgreSQL's fair lock of its batch lane) before the next batch is made, so the
        // store commits the batches in this order.
        if let Poll::Ready(result) = futures::poll!(&mut write) {
            write = Box::pin(std::future::ready(result));
        }
        self.in_flight.push_back(write);
        self.pending.push_back(names);
        Ok(())
    }

    /// Waits for the oldest batch in flight and checks its answers.
    async fn complete_one(&mut self) -> CliResult<()> {
        let Some(result) = self.in_flight.next().await else {
            return Ok(());
        };
        let Some(streams) = self.pending.pop_front() else {
            return Ok(());
        };
        let outcomes = result.map_err(|e| CliError::store("writing to the target", &e))?;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let done = outcome.map_err(|e| match e {
                StoreError::Conflict { expected, actual } => CliError::new(format!(
                    "stream {} in the target is at version {actual} where {expected} was \
                     expected: the target holds other events for this stream; copy or import \
                     into an empty store",
                    streams.get(i)
                )),
                other => CliError::store(
                    &format!("writing to stream {} of the target", streams.get(i)),
                    &other,
                ),
            })?;
            for e in &done.events {
                if e.position <= self.last_position {
                    return Err(CliError::new(format!(
                        "the target committed {}#{} at position {} after position {}: the order \
                         of the log was not kept; remove the target and copy again",
                        e.stream, e.sequence, e.position, self.last_position
                    )));
                }
                self.last_position = e.position;
            }
            self.written += done.events.len() as u64;
            self.bar.inc(done.events.len() as u64);
        }
        Ok(())
    }

    /// Sends what is gathered and waits for every batch in flight.
    pub(super) async fn finish(&mut self) -> CliResult<()> {
        if let Some(run) = self.run.take() {
            self.add(run).await?;
        }
        self.send().await?;
        while !self.pending.is_empty() {
            self.complete_one().await?;
        }
        Ok(())
    }
}
