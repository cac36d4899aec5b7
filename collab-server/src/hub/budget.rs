//! The process-wide budget for bytes in flight: client messages read but
//! not yet applied, and frames queued for clients but not yet written.
//!
//! Incoming bytes are held against the budget: a whole message waits for
//! room before it is handed to its session (the socket is not read
//! meanwhile, so the client is slowed by TCP itself), and a message sent in
//! parts must find room for its whole size at its first part, while a
//! quarter of the budget stays free for everyone else's small messages, or
//! it is refused unread. Outgoing bytes are counted, never refused: once
//! the process holds more than its budget, a connection with more than a
//! sixteenth of it still to write is dropped as a slow consumer when another
//! frame comes for it, and what it had queued is dropped with it. So the
//! process holds at most the budget, plus a sixteenth of it and one frame
//! for each connection that keeps up (each frame counted once per
//! recipient, though a broadcast is one copy shared by all: the count errs
//! high). Frames relayed from another process to a client here are bounded
//! by the client's queue in frames, not counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes held, against a limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    incoming: AtomicUsize,
    outgoing: AtomicUsize,
    /// Tasks waiting for incoming room; releases wake them only if any.
    waiting: AtomicUsize,
    freed: tokio::sync::Notify,
}

/// Incoming bytes held until dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            incoming: AtomicUsize::new(0),
            outgoing: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
        })
    }

    /// Holds `bytes` of a message sent in parts if they fit while a quarter
    /// of the budget stays free.
    pub(crate) fn try_hold_large(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.try_hold(bytes, self.limit / 4)
    }

    /// Holds `bytes` of a whole message, waiting for room. A message larger
    /// than the whole budget (only with a budget set below the WebSocket
    /// message limit) waits for the budget to be empty.
    pub(crate) async fn hold(self: &Arc<Self>, bytes: usize) -> Charge {
        let bytes = bytes.min(self.limit);
        loop {
            if let Some(charge) = self.try_hold(bytes, 0) {
                return charge;
            }
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // Counted while this waits, uncounted however the wait ends
            // (a connection that closes drops its read mid-wait).
            let _waiting = Waiting::new(&self.waiting);
            // Room may have come between the try and the registration.
            if let Some(charge) = self.try_hold(bytes, 0) {
                return charge;
            }
            freed.await;
        }
    }

    fn try_hold(self: &Arc<Self>, bytes: usize, keep_free: usize) -> Option<Charge> {
        let room = self.limit.saturating_sub(keep_free);
        self.incoming
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                (held + bytes <= room).then_some(held + bytes)
            })
            .ok()?;
        Some(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// Counts `bytes` queued for a client.
    pub(crate) fn queue(&self, bytes: usize) {
        self.outgoing.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes queued for a client were written (or dropped with it).
    pub(crate) fn dequeue(&self, bytes: usize) {
        self.outgoing.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// What one connection may have queued and still count as keeping up
    /// while the process is over its budget: a sixteenth of it.
    pub(crate) fn share(&self) -> usize {
        self.limit / 16
    }

    /// Whether the process holds more than its budget, in and out.
    pub(crate) fn over(&self) -> bool {
        self.outgoing.load(Ordering::Relaxed) + self.incoming.load(Ordering::Relaxed) > self.limit
    }

    /// Bytes held now: incoming, outgoing.
    pub(crate) fn held(&self) -> (usize, usize) {
        (
            self.incoming.load(Ordering::Relaxed),
            self.outgoing.load(Ordering::Relaxed),
        )
    }
}

/// One task waiting for room, for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let budget = &self.budget;
        budget.incoming.fetch_sub(self.bytes, Ordering::SeqCst);
        if budget.waiting.load(Ordering::SeqCst) > 0 {
            budget.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_leave_a_quarter_free() {
        let budget = Budget::new(1000);
        let a = budget.try_hold_large(700).expect("room");
        assert!(budget.try_hold_large(100).is_none(), "a quarter stays free");
        assert!(budget.try_hold(250, 0).is_some(), "small ones use it");
        drop(a);
        assert_eq!(budget.held().0, 0);
    }

    #[tokio::test]
    async fn whole_messages_wait_for_room() {
        let budget = Budget::new(100);
        let first = budget.hold(80).await;
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.hold(50).await.bytes })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no room yet");
        drop(first);
        assert_eq!(waiter.await.unwrap(), 50);
        assert_eq!(budget.held().0, 0, "released on drop");
    }

    #[tokio::test]
    async fn a_wait_given_up_is_no_longer_counted() {
        let budget = Budget::new(100);
        let _all = budget.hold(100).await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(20), budget.hold(10)).await;
        assert!(gave_up.is_err());
        assert_eq!(budget.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn outgoing_is_counted_not_refused() {
        let budget = Budget::new(100);
        budget.queue(60);
        assert!(!budget.over());
        budget.queue(60);
        assert!(budget.over(), "over the budget");
        budget.dequeue(60);
        assert!(!budget.over());
        budget.dequeue(60);
        assert_eq!(budget.held(), (0, 0));
    }
}
