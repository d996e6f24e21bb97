//! Projection checkpoints: positions with and without state.

use crate::store::CheckpointStore;

use super::ConformanceStore;

/// Checkpoints: unknown is `None`; saved with and without state; overwritten.
pub async fn checkpoints_save_load<S: ConformanceStore>(store: S) {
    assert_eq!(CheckpointStore::load(&store, "p").await.ok(), Some(None));
    let save = |name: &'static str, pos: u64, state: Option<Vec<u8>>| {
        let store = store.clone();
        async move {
            if let Err(e) = CheckpointStore::save(&store, name, pos, state).await {
                panic!("checkpoint save failed: {e}");
            }
        }
    };
    save("p", 5, None).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(cp.as_ref().map(|c| c.position), Some(5));
    assert_eq!(cp.and_then(|c| c.state), None);
    save("p", 9, Some(b"{\"total\":3}".to_vec())).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(cp.as_ref().map(|c| c.position), Some(9));
    assert_eq!(cp.and_then(|c| c.state), Some(b"{\"total\":3}".to_vec()));
    save("q", 1, Some(Vec::new())).await;
    let q = CheckpointStore::load(&store, "q").await.ok().flatten();
    assert_eq!(
        q.and_then(|c| c.state),
        Some(Vec::new()),
        "an empty state is not no state"
    );
    save("p", 12, None).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(
        cp.map(|c| (c.position, c.state)),
        Some((12, None)),
        "saving without state clears it"
    );
}
