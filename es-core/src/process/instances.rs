//! What a process manager's checkpoint holds besides its position: its live instances and
//! their pending deadlines, in a versioned format (a stored format: version 1 as written by the
//! first release, version 2 adds the deadlines).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::projection::ProjectionError;

use super::ProcessManager;
use super::deadline::ScheduledDeadline;

/// The newest checkpoint format this version reads and writes.
const FORMAT: u32 = 2;

/// Pending deadlines by instance key.
pub(super) type SavedDeadlines = HashMap<String, Vec<ScheduledDeadline>>;

/// The saved checkpoint state: the live instances, and their deadlines. Without deadlines it is
/// written as format 1, which the first release reads too (so it can still take over from a
/// node of this version while none is pending).
#[derive(Serialize)]
struct SavedRef<'a, P> {
    format: u32,
    instances: &'a HashMap<String, P>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    deadlines: &'a SavedDeadlines,
}

#[derive(Deserialize)]
struct Saved<P> {
    format: u32,
    instances: HashMap<String, P>,
    #[serde(default)]
    deadlines: SavedDeadlines,
}

/// Encodes the instances and their deadlines to save with a checkpoint.
pub(super) fn encode_instances<P: ProcessManager>(
    instances: &HashMap<String, P>,
    deadlines: &SavedDeadlines,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&SavedRef {
        format: if deadlines.is_empty() { 1 } else { FORMAT },
        instances,
        deadlines,
    })
}

/// The live instances and their pending deadlines, as a checkpoint holds them.
pub(super) type Instances<P> = (HashMap<String, P>, SavedDeadlines);

/// Decodes the instances (and deadlines) saved with a checkpoint.
pub(super) fn decode_instances<P: ProcessManager>(
    bytes: &[u8],
) -> Result<Instances<P>, ProjectionError> {
    let saved: Saved<P> = serde_json::from_slice(bytes).map_err(|e| {
        ProjectionError::State(format!(
            "the saved instances of process manager `{}` do not decode: {e}",
            P::NAME
        ))
    })?;
    if saved.format > FORMAT {
        return Err(ProjectionError::State(format!(
            "the checkpoint of process manager `{}` has format {}, newer than this version \
             reads ({FORMAT})",
            P::NAME,
            saved.format
        )));
    }
    Ok((saved.instances, saved.deadlines))
}

/// The instances (and deadlines) saved with a checkpoint (none when it saved none).
pub(super) fn instances_of<P: ProcessManager>(
    state: Option<&[u8]>,
) -> Result<Instances<P>, ProjectionError> {
    match state {
        Some(bytes) => decode_instances::<P>(bytes),
        None => Ok((HashMap::new(), HashMap::new())),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;

    use serde::{Deserialize, Serialize};

    use super::{decode_instances, encode_instances};
    use crate::process::{Commands, ProcessManager};
    use crate::projection::ProjectionError;
    use crate::store::RecordedEvent;

    /// A process manager whose instances are one number: the fixture of this module's tests
    /// and of `requests`'.
    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    pub(in crate::process) struct Flow {
        pub(in crate::process) step: u32,
    }

    impl ProcessManager for Flow {
        const NAME: &'static str = "flow";
        fn accepts(_: &str) -> bool {
            true
        }
        fn starts(_: &RecordedEvent) -> bool {
            true
        }
        fn handle(&mut self, _: &RecordedEvent, _: &mut Commands) -> Result<(), ProjectionError> {
            Ok(())
        }
    }

    /// The checkpoint format is a stored format: version 1 as written by the first release.
    #[test]
    fn checkpoints_of_format_1_decode_and_newer_ones_are_refused() {
        let stored = br#"{"format":1,"instances":{"t-1":{"step":2},"t-2":{"step":0}}}"#;
        let (instances, deadlines) = decode_instances::<Flow>(stored).unwrap();
        assert!(deadlines.is_empty());
        assert_eq!(
            instances,
            HashMap::from([
                ("t-1".to_owned(), Flow { step: 2 }),
                ("t-2".to_owned(), Flow { step: 0 }),
            ])
        );
        let newer = br#"{"format":3,"instances":{}}"#;
        let error = decode_instances::<Flow>(newer).unwrap_err().to_string();
        assert!(error.contains("format 3"), "{error}");
        let garbage = decode_instances::<Flow>(b"not json")
            .unwrap_err()
            .to_string();
        assert!(garbage.contains("do not decode"), "{garbage}");
    }

    /// Format 2 adds the pending deadlines; without any, format 1 is written (what the first
    /// release reads).
    #[test]
    fn checkpoints_of_format_2_keep_deadlines_and_format_1_is_written_without_them() {
        let stored = br#"{"format":2,"instances":{"t-1":{"step":1}},"deadlines":{"t-1":[
            {"id":"7:0","type":"TimedOut","version":1,"due":"2020-01-01T00:00:30Z","payload":null}]}}"#;
        let (instances, deadlines) = decode_instances::<Flow>(stored).unwrap();
        assert_eq!(instances["t-1"], Flow { step: 1 });
        let pending = &deadlines["t-1"];
        assert_eq!((pending[0].id(), pending[0].name()), ("7:0", "TimedOut"));
        assert_eq!(pending[0].due().to_rfc3339(), "2020-01-01T00:00:30+00:00");
        let again = encode_instances(&instances, &deadlines).unwrap();
        assert_eq!(decode_instances::<Flow>(&again).unwrap().1, deadlines);
        assert!(again.starts_with(br#"{"format":2,"#));
        let without = encode_instances(&instances, &HashMap::new()).unwrap();
        assert_eq!(without, br#"{"format":1,"instances":{"t-1":{"step":1}}}"#);
    }
}
