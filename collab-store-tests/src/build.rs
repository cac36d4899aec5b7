//! Builders shared by the tests: records, events, messages and versions with
//! just the fields a test cares about.

use std::collections::{BTreeMap, BTreeSet};

use collab_core::{
    Change, ChatMessage, EndReason, Event, EventKind, Participant, ParticipantId, Role, RunOutput,
    Seq, SessionChanges, SessionId, SessionRecord, SessionStatus, StoredMember, StoredMembership,
    Timestamp, UserId, Version,
};

/// The `n`th test session's id.
pub fn session_id(n: u8) -> SessionId {
    SessionId::from_bytes([n; 16])
}

/// A record of `id` with the summary fields given.
pub fn record(id: &SessionId, title: &str, status: SessionStatus, at: u64) -> SessionRecord {
    SessionRecord {
        id: id.clone(),
        title: title.to_owned(),
        language: "rust".to_owned(),
        status,
        created_by: UserId::new("u1"),
        created_at: Timestamp(1_000),
        updated_at: Timestamp(at),
        ended_at: (status == SessionStatus::Ended).then_some(Timestamp(at)),
        last_activity: Timestamp(at),
        capacity: 8,
        expires_after_secs: 1_800,
        members: vec![StoredMember {
            participant: participant(1),
            membership: StoredMembership::Present,
        }],
        banned: vec![UserId::new("mallory")],
        next_participant: 2,
        initial_files: BTreeMap::from([("main.rs".to_owned(), "fn main() {}\n".to_owned())]),
        document_private: false,
        end_reason: None,
        starts_at: None,
        closes_at: None,
    }
}

/// Participant `p`, a host.
pub fn participant(p: u32) -> Participant {
    Participant {
        id: ParticipantId(p),
        user_id: UserId::new(format!("u{p}")),
        name: format!("Person {p}"),
        colour: "#e6194b".to_owned(),
        role: Role::Host,
        joined_at: Timestamp(1_000),
    }
}

/// A chat message with id `id`.
pub fn message(id: u64, text: &str) -> ChatMessage {
    ChatMessage {
        id: Seq(id),
        author: ParticipantId(1),
        text: text.to_owned(),
        anchor: None,
        reply_to: None,
        thread: Seq(id),
        mentions: Vec::new(),
        reactions: BTreeMap::from([("👍".to_owned(), BTreeSet::from([ParticipantId(2)]))]),
        posted_at: Timestamp(id),
        edited_at: None,
        deleted: false,
        cid: None,
    }
}

/// Event `seq` of one of a few kinds (`kind` modulo their number).
pub fn event(seq: u64, kind: u8, text: &str) -> Event {
    let kind = match kind % 5 {
        0 => EventKind::ParticipantLeft {
            participant: ParticipantId(1),
        },
        1 => EventKind::ParticipantRenamed {
            participant: ParticipantId(2),
            name: text.to_owned(),
        },
        2 => EventKind::MessagePosted {
            message: message(seq, text),
        },
        3 => EventKind::RunFinished {
            run: RunOutput {
                by: ParticipantId(1),
                at: Timestamp(seq),
                stdout: text.to_owned(),
                stderr: String::new(),
                exit_code: Some(0),
            },
        },
        _ => EventKind::SessionEnded {
            by: Some(ParticipantId(1)),
            reason: EndReason::Ended,
        },
    };
    Event {
        seq: Seq(seq),
        at: Timestamp(seq * 10),
        kind,
    }
}

/// Version `rev` creating or removing a file.
pub fn version(rev: u64, create: bool, text: &str) -> Version {
    Version {
        rev,
        file: "main.rs".to_owned(),
        change: if create {
            Change::Create {
                text: text.to_owned(),
            }
        } else {
            Change::Remove
        },
        author: Some(ParticipantId(1)),
        at: Timestamp(rev),
        oid: None,
    }
}

/// The first write of a session: its record and first event.
pub fn first_write(id: &SessionId) -> SessionChanges {
    let mut changes = SessionChanges::empty(id.clone());
    changes.record = Some(record(id, "Interview", SessionStatus::Waiting, 2_000));
    changes.events = vec![event(1, 0, "")];
    changes
}
