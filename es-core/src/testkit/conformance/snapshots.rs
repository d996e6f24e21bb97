//! Snapshots: save, load the latest, prune.

use crate::store::{Snapshot, SnapshotStore};

use super::{ConformanceStore, stream};

/// Snapshots: save, load the latest, prune keeping the most recent.
pub async fn snapshots_save_load_prune<S: ConformanceStore>(store: S) {
    let s = stream("a");
    assert_eq!(
        SnapshotStore::load_latest(&store, &s).await.ok(),
        Some(None)
    );
    for v in [10u64, 30, 20] {
        let snap = Snapshot::new(s.clone(), v, format!("state-{v}").into_bytes());
        if let Err(e) = SnapshotStore::save(&store, snap).await {
            panic!("snapshot save failed: {e}");
        }
    }
    let other = Snapshot::new(stream("b"), 5, b"other".to_vec());
    if let Err(e) = SnapshotStore::save(&store, other).await {
        panic!("snapshot save failed: {e}");
    }
    let latest = match SnapshotStore::load_latest(&store, &s).await {
        Ok(Some(snap)) => snap,
        other => panic!("load_latest: {other:?}"),
    };
    assert_eq!(
        latest.version, 30,
        "the latest snapshot is the highest version"
    );
    assert_eq!(latest.state, b"state-30".to_vec());
    assert_eq!(latest.stream, s);
    if let Err(e) = SnapshotStore::prune(&store, &s, 1).await {
        panic!("prune failed: {e}");
    }
    let latest = SnapshotStore::load_latest(&store, &s).await.ok().flatten();
    assert_eq!(
        latest.map(|x| x.version),
        Some(30),
        "prune keeps the most recent"
    );
    if let Err(e) = SnapshotStore::prune(&store, &s, 0).await {
        panic!("prune failed: {e}");
    }
    assert_eq!(
        SnapshotStore::load_latest(&store, &s).await.ok(),
        Some(None)
    );
    let b = SnapshotStore::load_latest(&store, &stream("b"))
        .await
        .ok()
        .flatten();
    assert_eq!(
        b.map(|x| x.state),
        Some(b"other".to_vec()),
        "prune touches one stream only"
    );
    // Saving the same version again replaces it.
    for state in [b"one".to_vec(), b"two".to_vec()] {
        if let Err(e) = SnapshotStore::save(&store, Snapshot::new(s.clone(), 7, state)).await {
            panic!("snapshot save failed: {e}");
        }
    }
    let again = SnapshotStore::load_latest(&store, &s).await.ok().flatten();
    assert_eq!(again.map(|x| x.state), Some(b"two".to_vec()));
}
