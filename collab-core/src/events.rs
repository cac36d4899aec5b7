//! The session's append-only event log.
//!
//! Everything that happens to a session and should be remembered (joins, role
//! changes, chat) is an [`Event`] with the next [`Seq`]. A client that reconnects
//! asks for the events after the last sequence number it saw and so catches up
//! with no gap and no duplicate; history and replay are built on the same log.

use crate::ids::Seq;
use crate::time::Timestamp;

pub use collab_wire::events::{EndReason, Event, EventKind, EventPage};

/// The log itself: append-only, in sequence order.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventLog {
    events: Vec<Event>,
}

impl EventLog {
    /// The sequence number the next event will get.
    pub(crate) fn next_seq(&self) -> Seq {
        Seq(self.last_seq().0 + 1)
    }

    /// The newest event's sequence number, 0 when empty.
    pub(crate) fn last_seq(&self) -> Seq {
        self.events.last().map_or(Seq(0), |e| e.seq)
    }

    pub(crate) fn append(&mut self, at: Timestamp, kind: EventKind) -> &Event {
        let seq = self.next_seq();
        self.events.push(Event { seq, at, kind });
        &self.events[self.events.len() - 1]
    }

    /// Up to `limit` events after `after`, oldest first.
    pub(crate) fn since(&self, after: Seq, limit: usize) -> EventPage {
        let start = self.events.partition_point(|e| e.seq <= after);
        let end = start.saturating_add(limit).min(self.events.len());
        EventPage {
            events: self.events[start..end].to_vec(),
            has_more: end < self.events.len(),
        }
    }

    /// The time the newest `session_closing` warning was for, if any.
    pub(crate) fn last_closing_warning(&self) -> Option<Timestamp> {
        self.events.iter().rev().find_map(|e| match e.kind {
            EventKind::SessionClosing { closes_at } => Some(closes_at),
            _ => None,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// A log holding stored events, which must be numbered 1, 2, 3...
    pub(crate) fn restore(events: Vec<Event>) -> Result<Self, String> {
        for (i, e) in events.iter().enumerate() {
            if e.seq.0 != i as u64 + 1 {
                return Err(format!("event {} where {} belongs", e.seq.0, i + 1));
            }
        }
        Ok(Self { events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ParticipantId;

    fn left(p: u32) -> EventKind {
        EventKind::ParticipantLeft {
            participant: ParticipantId(p),
        }
    }

    #[test]
    fn since_returns_exactly_what_follows() {
        let mut log = EventLog::default();
        for p in 0..10 {
            log.append(Timestamp(p.into()), left(p));
        }
        let page = log.since(Seq(3), 4);
        assert_eq!(
            page.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        assert!(page.has_more);
        let rest = log.since(Seq(7), 100);
        assert_eq!(
            rest.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert!(!rest.has_more);
        assert!(log.since(Seq(10), 5).events.is_empty());
        assert!(log.since(Seq(99), 5).events.is_empty());
    }

    #[test]
    fn events_serialise_with_a_kind_tag() {
        let mut log = EventLog::default();
        let e = log.append(Timestamp(5), left(2)).clone();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq": 1, "at": 5, "kind": "participant_left", "participant": 2})
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }
}
