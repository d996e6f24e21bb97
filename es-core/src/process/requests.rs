//! What a process manager's handles ask of its runner about its dead letters (retries and
//! skips, carried out by the runner's task), and how its checkpoint state holds them: the
//! instances (`instances`) inside the projections' dead-letter envelope.

use tokio::sync::{mpsc, oneshot};

use crate::projection::{Parked, ProjectionError, unwrap_state};

use super::ProcessManager;
use super::instances::{Instances, instances_of};

/// A change to the dead letters asked for through a handle.
pub(crate) enum Ask {
    /// Re-run the parked events of the instance key, in order.
    Retry(String),
    /// Drop the parked event of the key at the position, keeping the reason.
    Skip {
        key: String,
        position: u64,
        reason: String,
    },
}

/// An [`Ask`] and where its answer goes: how many events were applied (a retry) or 1 (a skip).
pub(crate) struct Request {
    pub(crate) ask: Ask,
    pub(crate) reply: oneshot::Sender<Result<usize, ProjectionError>>,
}

/// The channel of a runner's requests: the handles' end goes into its shared status.
pub(crate) fn requests() -> (
    mpsc::UnboundedSender<Request>,
    mpsc::UnboundedReceiver<Request>,
) {
    mpsc::unbounded_channel()
}

/// The instances, their deadlines and the dead letters saved in a checkpoint's state.
pub(super) fn load_state<P: ProcessManager>(
    state: Option<Vec<u8>>,
) -> Result<(Instances<P>, Parked), ProjectionError> {
    let (own, parked) = unwrap_state(state)?;
    Ok((instances_of::<P>(own.as_deref())?, parked))
}

#[cfg(test)]
mod tests {
    use super::load_state;
    use crate::process::instances::tests::Flow;
    use crate::projection::{DeadLetter, Parked, wrap_state};

    /// A checkpoint written before process managers parked (formats 1 and 2, bare JSON) loads
    /// with no dead letters; one with dead letters wraps those bytes in the projections'
    /// envelope, which round-trips.
    #[test]
    fn checkpoints_without_dead_letters_load_as_before_and_the_envelope_round_trips() {
        let format_1 = br#"{"format":1,"instances":{"t-1":{"step":2}}}"#.to_vec();
        let ((instances, deadlines), parked) = load_state::<Flow>(Some(format_1.clone())).unwrap();
        assert_eq!(instances["t-1"], Flow { step: 2 });
        assert!(deadlines.is_empty());
        assert_eq!(parked, Parked::default());
        let format_2 = br#"{"format":2,"instances":{"t-1":{"step":1}},"deadlines":{"t-1":[
            {"id":"7:0","type":"TimedOut","version":1,"due":"2020-01-01T00:00:30Z","payload":null}]}}"#;
        let ((_, deadlines), parked) = load_state::<Flow>(Some(format_2.to_vec())).unwrap();
        assert_eq!(deadlines["t-1"][0].id(), "7:0");
        assert!(parked.is_empty());
        let ((instances, _), parked) = load_state::<Flow>(None).unwrap();
        assert!(instances.is_empty() && parked.is_empty());
        // Without dead letters the bytes are written as before.
        assert_eq!(
            wrap_state(Some(format_1.clone()), &Parked::default()).unwrap(),
            Some(format_1.clone())
        );

        let mut letters = Parked::default();
        letters.park(DeadLetter {
            key: "t-1".to_owned(),
            position: 4,
            event_type: "Started".to_owned(),
            error: "boom".to_owned(),
            skipped: None,
            retry_requested: false,
        });
        let wrapped = wrap_state(Some(format_1), &letters).unwrap();
        let ((instances, _), parked) = load_state::<Flow>(wrapped).unwrap();
        assert_eq!(instances["t-1"], Flow { step: 2 });
        assert_eq!(parked, letters);
        // A newer instances format inside the envelope is still refused.
        let newer = wrap_state(Some(br#"{"format":3,"instances":{}}"#.to_vec()), &letters).unwrap();
        let error = load_state::<Flow>(newer).unwrap_err().to_string();
        assert!(error.contains("format 3"), "{error}");
    }
}
