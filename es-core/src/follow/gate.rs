//! [`ShareGate`]: how many of a group of leases (the partitions of one runner) this process
//! may hold, so that processes sharing a checkpoint store spread the partitions among them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The leases of one group this process holds, and its share of them: a runner of the group
/// asks for its lease only while the process holds fewer than its share, and gives its lease
/// up (between pages) while the process holds more.
#[derive(Debug)]
pub(crate) struct ShareGate {
    held: AtomicUsize,
    share: AtomicUsize,
}

impl ShareGate {
    /// A gate that lets this process hold up to `share` leases.
    pub(crate) fn new(share: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            share: AtomicUsize::new(share),
        }
    }

    /// Sets how many leases this process may hold.
    pub(crate) fn set_share(&self, share: usize) {
        self.share.store(share, Ordering::SeqCst);
    }

    /// How many leases this process holds.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Whether a runner of the group may ask for its lease.
    pub(super) fn may_acquire(&self) -> bool {
        self.held() < self.share.load(Ordering::SeqCst)
    }

    /// A runner took its lease.
    pub(super) fn acquired(&self) {
        self.held.fetch_add(1, Ordering::SeqCst);
    }

    /// A runner lost its lease.
    pub(super) fn released(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| h.checked_sub(1));
    }

    /// Whether a runner holding its lease should give it up (the process holds more than its
    /// share); when it says so, the lease is counted as given up already.
    pub(super) fn try_yield(&self) -> bool {
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                (h > self.share.load(Ordering::SeqCst)).then(|| h - 1)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_over_its_share_yields_only_the_excess() {
        let gate = ShareGate::new(4);
        for _ in 0..4 {
            assert!(gate.may_acquire());
            gate.acquired();
        }
        assert!(!gate.may_acquire());
        gate.set_share(2);
        assert!(gate.try_yield());
        assert!(gate.try_yield());
        assert!(!gate.try_yield());
        assert_eq!(gate.held(), 2);
        assert!(!gate.may_acquire());
        gate.released();
        assert!(gate.may_acquire());
    }
}
