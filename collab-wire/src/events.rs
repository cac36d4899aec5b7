//! Entries of a session's event log as they travel.

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
    /// A scheduled session reached the time it closes.
    Closed,
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
        /// When the scheduled session closes now (extended or shortened).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closes_at: Option<Timestamp>,
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
    /// A scheduled session closes soon: everyone is warned a few minutes
    /// before (or at once, when it was set to close sooner than that).
    SessionClosing {
        /// When it closes.
        closes_at: Timestamp,
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
