//! What a process manager's checkpoint holds besides its position: its live instances, in a
//! versioned format (a stored format: version 1 as written by the first release).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::projection::ProjectionError;

use super::ProcessManager;

/// The checkpoint format written by this version.
const FORMAT: u32 = 1;

/// The saved checkpoint state: the live instances.
#[derive(Serialize)]
struct SavedRef<'a, P> {
    format: u32,
    instances: &'a HashMap<String, P>,
}

#[derive(Deserialize)]
struct Saved<P> {
    format: u32,
    instances: HashMap<String, P>,
}

/// Encodes the instances to save with a checkpoint.
pub(super) fn encode_instances<P: ProcessManager>(
    instances: &HashMap<String, P>,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&SavedRef {
        format: FORMAT,
        instances,
    })
}

/// Decodes the instances saved with a checkpoint.
pub(super) fn decode_instances<P: ProcessManager>(
    bytes: &[u8],
) -> Result<HashMap<String, P>, ProjectionError> {
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
    Ok(saved.instances)
}

/// The instances saved with a checkpoint (none when it saved none).
pub(super) fn instances_of<P: ProcessManager>(
    state: Option<&[u8]>,
) -> Result<HashMap<String, P>, ProjectionError> {
    match state {
        Some(bytes) => decode_instances::<P>(bytes),
        None => Ok(HashMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::{Deserialize, Serialize};

    use super::decode_instances;
    use crate::process::{Commands, ProcessManager};
    use crate::projection::ProjectionError;
    use crate::store::RecordedEvent;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Flow {
        step: u32,
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
        let instances = decode_instances::<Flow>(stored).unwrap();
        assert_eq!(
            instances,
            HashMap::from([
                ("t-1".to_owned(), Flow { step: 2 }),
                ("t-2".to_owned(), Flow { step: 0 }),
            ])
        );
        let newer = br#"{"format":2,"instances":{}}"#;
        let error = decode_instances::<Flow>(newer).unwrap_err().to_string();
        assert!(error.contains("format 2"), "{error}");
        let garbage = decode_instances::<Flow>(b"not json")
            .unwrap_err()
            .to_string();
        assert!(garbage.contains("do not decode"), "{garbage}");
    }
}
