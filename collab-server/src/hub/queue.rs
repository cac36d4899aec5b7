//! The bounded queue of frames from a session to one connection.
//!
//! Every connection has one, so its size at rest is paid thousands of
//! times. tokio's mpsc channel stores its items in blocks of 32 slots, which
//! it allocates as the queue moves along and keeps for reuse until the
//! channel is dropped: heaptrack found about 2.6 KiB per connection's queue
//! once frames had flowed (3,000 connections under peerbench's load), nearly
//! all of it empty slots. This queue keeps what is queued in a `VecDeque`
//! behind a mutex that only the session task and the connection's writer
//! take, and gives the room back once a burst has drained.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Room a drained queue keeps for the next frames: a few frames in a row are
/// the common case, and a queue that had to hold more than this gives the
/// rest back when it empties.
const KEEP: usize = 8;

/// Creates a queue that holds at most `capacity` items.
pub(super) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity,
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            closed: false,
            waker: None,
        }),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned one is as good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State<T> {
    items: VecDeque<T>,
    /// Live senders; at zero the receiver gets `None` once it has drained.
    senders: usize,
    /// The receiver closed or went: nothing more is accepted.
    closed: bool,
    /// The receiver waiting for an item.
    waker: Option<Waker>,
}

impl<T> State<T> {
    fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front();
        if self.items.is_empty() && self.items.capacity() > KEEP {
            self.items.shrink_to(KEEP);
        }
        item
    }

    /// Whether nothing more can come.
    fn finished(&self) -> bool {
        self.senders == 0 || self.closed
    }
}

/// Why [`Sender::try_send`] did not queue an item; the item comes back.
#[derive(Debug)]
pub(super) enum TrySendError<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The receiver closed the queue or went.
    Closed(T),
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Nothing queued, and nothing more will be.
    Disconnected,
}

/// The sending side; clones send into the same queue.
pub(super) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or closed. Never waits.
    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.shared.capacity {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders == 0 {
                state.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The receiving side.
pub(super) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is drained and every sender has
    /// gone, or it was closed.
    pub(super) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.pop() {
            return Poll::Ready(Some(item));
        }
        if state.finished() {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item if one is queued, without waiting.
    pub(super) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        match state.pop() {
            Some(item) => Ok(item),
            None if state.finished() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses anything more; what is queued can still be received.
    pub(super) fn close(&mut self) {
        self.shared.lock().closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_out_in_order_until_the_senders_go() {
        let (tx, mut rx) = channel(4);
        let other = tx.clone();
        tx.try_send(1).unwrap();
        other.try_send(2).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        other.try_send(3).unwrap();
        drop(other);
        // Queued before the last sender went: still delivered.
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_closed_one_drains() {
        let (tx, mut rx) = channel(2);
        tx.try_send("a").unwrap();
        tx.try_send("b").unwrap();
        assert!(matches!(tx.try_send("c"), Err(TrySendError::Full("c"))));
        rx.close();
        assert!(matches!(tx.try_send("d"), Err(TrySendError::Closed("d"))));
        assert_eq!(rx.try_recv(), Ok("a"));
        assert_eq!(rx.recv().await, Some("b"));
        assert_eq!(rx.recv().await, None);
        drop(rx);
        assert!(matches!(tx.try_send("e"), Err(TrySendError::Closed("e"))));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_an_item_and_for_the_last_sender() {
        let (tx, mut rx) = channel(8);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(waiting.await.unwrap(), (Some(7), None));
    }

    #[test]
    fn a_drained_queue_gives_back_the_room_a_burst_took() {
        let (tx, mut rx) = channel(512);
        for i in 0..200 {
            tx.try_send(i).unwrap();
        }
        assert!(rx.shared.lock().items.capacity() >= 200);
        while rx.try_recv().is_ok() {}
        assert!(rx.shared.lock().items.capacity() <= KEEP);
    }
}
