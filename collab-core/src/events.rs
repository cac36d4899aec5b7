//! The session's append-only event log.
//!
//! Everything that happens to a session and should be remembered (joins, role
//! changes, chat) is an [`Event`] with the next [`Seq`]. A client that reconnects
//! asks for the events after the last sequence number it saw and so catches up
//! with no gap and no duplicate; history and replay are built on the same log.

use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;
use crate::document::RunOutput;
use crate::ids::{ParticipantId, Seq};
use crate::participant::{Participant, Role};
use crate::session::SessionStatus;
use crate::time::Timestamp;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the session's one order; the first event is 1.
    pub seq: Seq,
    /// When the server recorded it.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A host ended it.
    Ended,
    /// Nobody was connected and nothing happened for the session's expiry time.
    Expired,
}

/// What happened, with what a client needs to update its view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Someone joined for the first time, or came back after leaving.
    ParticipantJoined {
        /// Who, with their colour and role.
        participant: Participant,
        /// They had been in this session before.
        rejoined: bool,
    },
    /// A participant who was already present joined again under another name.
    ParticipantRenamed {
        /// Who.
        participant: ParticipantId,
        /// Their new display name.
        name: String,
    },
    /// Someone left of their own accord.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
    },
    /// A host removed someone; they cannot join again.
    ParticipantKicked {
        /// Who was removed.
        participant: ParticipantId,
        /// The host who did it.
        by: ParticipantId,
    },
    /// A host changed someone's role.
    RoleChanged {
        /// Whose role.
        participant: ParticipantId,
        /// The new role.
        role: Role,
        /// The host who did it.
        by: ParticipantId,
    },
    /// Title, language or status changed; absent fields did not.
    SessionUpdated {
        /// New title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// New language.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// New status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<SessionStatus>,
        /// Who changed it, when done by a participant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<ParticipantId>,
    },
    /// A chat message was posted.
    MessagePosted {
        /// The message as posted.
        message: ChatMessage,
    },
    /// A code comment (a message anchored at a file and line) was posted.
    CommentPosted {
        /// The comment as posted.
        message: ChatMessage,
    },
    /// A message's author changed its text.
    MessageEdited {
        /// Which message.
        message: Seq,
        /// The new text.
        text: String,
        /// Mentions in the new text.
        mentions: Vec<ParticipantId>,
    },
    /// A message was deleted (its author or a host did it).
    MessageDeleted {
        /// Which message.
        message: Seq,
        /// Who deleted it.
        by: ParticipantId,
    },
    /// Someone added or removed a reaction.
    ReactionToggled {
        /// Which message.
        message: Seq,
        /// The reaction.
        emoji: String,
        /// Who reacted.
        participant: ParticipantId,
        /// `true` if added, `false` if removed.
        added: bool,
    },
    /// Someone shared the output of a run of the session's code.
    RunFinished {
        /// The output.
        run: RunOutput,
    },
    /// The session ended; nobody can join any more.
    SessionEnded {
        /// The host who ended it, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<ParticipantId>,
        /// Why.
        reason: EndReason,
    },
}

/// One page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// Events in sequence order.
    pub events: Vec<Event>,
    /// More events follow this page.
    pub has_more: bool,
}

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
