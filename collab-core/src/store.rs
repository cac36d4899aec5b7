//! Durable sessions as data: what a store writes ([`SessionChanges`]) and
//! reads back ([`StoredSession`]), and the reference semantics of a write
//! ([`apply_changes`]). The `Store` trait itself, which the hub writes
//! through, is collab-server's.
//!
//! # The durability contract
//!
//! Whatever the server acknowledged to a client survives a crash and a
//! restart: an edit (`text_ack`, a replica's sync answer), a chat message or
//! any other request answered with `ack`, a REST request answered with
//! success, a role change or kick that others were told about. The hub
//! guarantees it by holding every frame a step produced until the step's
//! changes are written: `Store::save` returns only once they are durable
//! (for SQLite: committed in WAL mode with `synchronous=FULL`). What was not
//! yet acknowledged may be lost, and the client resends it when it
//! reconnects (thin clients by operation id, so nothing applies twice).
//!
//! A thin client's edit is durable once its version is stored: the
//! document's automerge changes are written only when something needs them
//! (a replica's changes, a change sent to a replica, the language, a run)
//! and every 256 revisions or 16 KiB of inserted text, and a load replays the versions the
//! stored document lacks ([`StoredSession::document_rev`]). Committing and
//! collecting automerge changes costs more than the edit itself.
//!
//! Writes are grouped: a session writes once for all the frames it handled
//! while its previous write was in flight, and a store may commit the writes
//! of many sessions in one transaction (the SQLite store does), so one fsync
//! carries many edits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;
use crate::document::{Revision, Version};
use crate::events::Event;
use crate::ids::{SessionId, UserId};
use crate::participant::Participant;
use crate::time::Timestamp;
use collab_wire::session::SessionStatus;

/// Why a store request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage itself failed (disk full, database locked, I/O error). The
    /// hub retries writes; a read may be retried later.
    #[error("storage failed: {0}")]
    Backend(String),
    /// What is stored for this session cannot be read back as a session. Only
    /// this session is affected.
    #[error("session {session} is damaged: {reason}")]
    Damaged {
        /// Which session.
        session: SessionId,
        /// What is wrong.
        reason: String,
    },
    /// The writer no longer owns the session: another process took it over
    /// at a later epoch. Fatal for the writer's copy of the session, which
    /// must stop serving it; nothing was written.
    #[error("session {session} belongs to epoch {current}; a write of epoch {epoch} is refused")]
    Fenced {
        /// Which session.
        session: SessionId,
        /// The writer's epoch.
        epoch: u64,
        /// The epoch the store was fenced at.
        current: u64,
    },
}

/// Whether a stored participant is still a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredMembership {
    /// A member.
    Present,
    /// They left; they may join again.
    Left,
    /// A host removed them; they may not join again.
    Kicked,
}

/// A participant as stored: who they are and whether they are still a member
/// (presence is not stored: everyone comes back offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    /// The participant.
    pub participant: Participant,
    /// Their membership.
    pub membership: StoredMembership,
}

/// A session's small, often rewritten state: its settings, status and
/// members. Chat, events, versions and the document are stored separately
/// and only appended to (or, for chat, rewritten one message at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session's id.
    pub id: SessionId,
    /// Title.
    pub title: String,
    /// Language.
    pub language: String,
    /// Status.
    pub status: SessionStatus,
    /// The user who created it (its first host).
    pub created_by: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its settings last changed.
    pub updated_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// The last time anything happened in it.
    pub last_activity: Timestamp,
    /// Most participants online at once.
    pub capacity: usize,
    /// Idle time with nobody connected before it expires, in seconds.
    pub expires_after_secs: u64,
    /// Everyone who ever joined.
    pub members: Vec<StoredMember>,
    /// Users removed by a host.
    pub banned: Vec<UserId>,
    /// The next participant id to give.
    pub next_participant: u32,
    /// The files as the session was created with them (revision 0), from
    /// which the stored versions replay to the current text.
    pub initial_files: BTreeMap<String, String>,
    /// No replica ever shared the stored document's automerge history, so
    /// the session may start it afresh from the texts (absent in records
    /// written before it existed: they count as shared, which is safe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub document_private: bool,
    /// Why it ended (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<crate::events::EndReason>,
    /// A scheduled session's planned start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// When a scheduled session closes: it does not expire before, however
    /// idle, and a sweep ends it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Timestamp>,
}

/// How the stored document changes in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentWrite {
    /// Append these automerge changes (an incremental save) to the stored chunks.
    Append(Vec<u8>),
    /// Replace every stored chunk with this full save (compaction).
    Replace(Vec<u8>),
}

/// What changed in one session since its last write: one atomic write.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionChanges {
    /// The session.
    pub id: SessionId,
    /// Its record, when it changed.
    pub record: Option<SessionRecord>,
    /// New events, in sequence order, following the stored ones.
    pub events: Vec<Event>,
    /// Chat messages posted or changed (edited, deleted, reacted to, anchor
    /// moved); each replaces the stored message with its id.
    pub messages: Vec<ChatMessage>,
    /// New document versions, in revision order, following the stored ones.
    pub versions: Vec<Version>,
    /// The document's new changes, if any.
    pub document: Option<DocumentWrite>,
    /// With `document`: every version up to this revision is in the stored
    /// document once it is written. Versions after it are stored only as
    /// versions, and replayed onto the document when the session loads.
    pub document_rev: Revision,
    /// The writer's ownership epoch when several processes serve sessions
    /// (0 for one process). A store shared by several processes refuses a
    /// write whose epoch is below one it was fenced at for this session.
    pub epoch: u64,
}

impl SessionChanges {
    /// Changes of `id` with nothing in them.
    pub fn empty(id: SessionId) -> Self {
        Self {
            id,
            record: None,
            events: Vec::new(),
            messages: Vec::new(),
            versions: Vec::new(),
            document: None,
            document_rev: 0,
            epoch: 0,
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.record.is_none()
            && self.events.is_empty()
            && self.messages.is_empty()
            && self.versions.is_empty()
            && self.document.is_none()
    }
}

/// Everything stored of one session, as `Store::load` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// Its record.
    pub record: SessionRecord,
    /// Every event, in sequence order.
    pub events: Vec<Event>,
    /// Every chat message, in id order.
    pub messages: Vec<ChatMessage>,
    /// The document's versions in revision order: every one from
    /// `Store::load`, those after `document_rev` from `Store::load_recent`.
    pub versions: Vec<Version>,
    /// The stored chunks, concatenated: automerge loads them as one document.
    pub document: Vec<u8>,
    /// The last revision whose change is in `document`. The versions after it
    /// are replayed onto the document when the session loads.
    pub document_rev: Revision,
}

/// One stored session, as `Store::sessions` lists it, for expiry and cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session.
    pub id: SessionId,
    /// Its status.
    pub status: SessionStatus,
    /// The last time anything happened in it.
    pub last_activity: Timestamp,
    /// When it ended, if it did.
    pub ended_at: Option<Timestamp>,
    /// Its idle expiry, in seconds.
    pub expires_after_secs: u64,
    /// When it closes, if it is scheduled: it is due then, and not before.
    pub closes_at: Option<Timestamp>,
}

impl SessionSummary {
    /// Whether a sweep at `now` has work for this session: it is open and
    /// idle past its expiry (a scheduled one: past the time it closes), or
    /// ended longer than `keep_ended` ago.
    pub fn is_due(&self, now: Timestamp, keep_ended: Duration) -> bool {
        match (self.ended_at, self.closes_at) {
            (Some(ended), _) => now >= ended.plus(keep_ended),
            (None, Some(closes)) => now >= closes,
            (None, None) => {
                now >= self
                    .last_activity
                    .plus(Duration::from_secs(self.expires_after_secs))
            }
        }
    }
}

/// Applies `changes` to `stored` (or creates it): the reference semantics of
/// `Store::save`, which other stores can test themselves against.
///
/// # Errors
/// [`StoreError::Damaged`] for a first write without a record, a record of
/// another session, or events or versions that do not follow the stored ones
/// (those already stored are skipped, so that a retried write goes through).
/// A retried document append adds changes automerge already has, which it
/// ignores on load.
pub fn apply_changes(
    mut stored: Option<StoredSession>,
    changes: SessionChanges,
) -> Result<StoredSession, StoreError> {
    apply_in_place(&mut stored, changes)?;
    Ok(stored.expect("created or updated"))
}

/// [`apply_changes`] on a session in place; on error nothing changes.
pub fn apply_in_place(
    stored: &mut Option<StoredSession>,
    changes: SessionChanges,
) -> Result<(), StoreError> {
    check_changes(stored.as_ref(), &changes)?;
    let s = match stored {
        Some(s) => {
            if let Some(record) = changes.record {
                s.record = record;
            }
            s
        }
        None => stored.insert(StoredSession {
            record: changes.record.expect("checked"),
            events: Vec::new(),
            messages: Vec::new(),
            versions: Vec::new(),
            document: Vec::new(),
            document_rev: 0,
        }),
    };
    let stored_seq = s.events.last().map_or(0, |e| e.seq.0);
    s.events
        .extend(changes.events.into_iter().filter(|e| e.seq.0 > stored_seq));
    let stored_rev = s.versions.last().map_or(0, |v| v.rev);
    s.versions
        .extend(changes.versions.into_iter().filter(|v| v.rev > stored_rev));
    for message in changes.messages {
        match s.messages.binary_search_by_key(&message.id, |m| m.id) {
            Ok(i) => s.messages[i] = message,
            Err(i) => s.messages.insert(i, message),
        }
    }
    match changes.document {
        Some(DocumentWrite::Append(bytes)) => {
            s.document.extend_from_slice(&bytes);
            s.document_rev = changes.document_rev;
        }
        Some(DocumentWrite::Replace(bytes)) => {
            s.document = bytes;
            s.document_rev = changes.document_rev;
        }
        None => {}
    }
    Ok(())
}

/// Whether `changes` may be applied to `stored`: a first write carries a
/// record, and events and versions continue the stored sequences.
///
/// # Errors
/// [`StoreError::Damaged`] saying what does not fit.
pub fn check_changes(
    stored: Option<&StoredSession>,
    changes: &SessionChanges,
) -> Result<(), StoreError> {
    let damaged = |reason: &str| StoreError::Damaged {
        session: changes.id.clone(),
        reason: reason.to_owned(),
    };
    if stored.is_none() && changes.record.is_none() {
        return Err(damaged("first write without a record"));
    }
    if changes.record.as_ref().is_some_and(|r| r.id != changes.id) {
        return Err(damaged("the record is of another session"));
    }
    let stored_seq = stored.and_then(|s| s.events.last()).map_or(0, |e| e.seq.0);
    if !continues(stored_seq, changes.events.iter().map(|e| e.seq.0)) {
        return Err(damaged("events out of sequence"));
    }
    let stored_rev = stored.and_then(|s| s.versions.last()).map_or(0, |v| v.rev);
    if !continues(stored_rev, changes.versions.iter().map(|v| v.rev)) {
        return Err(damaged("versions out of sequence"));
    }
    let last_rev = changes
        .versions
        .last()
        .map_or(stored_rev, |v| v.rev.max(stored_rev));
    if changes.document.is_some() && changes.document_rev > last_rev {
        return Err(damaged("the document covers versions that are not stored"));
    }
    Ok(())
}

/// Whether `numbers` go on from `stored` one by one. Numbers already stored
/// are skipped: a write retried after a failure that came after its commit
/// must not be refused (a store cannot always tell whether it committed).
fn continues(stored: u64, numbers: impl Iterator<Item = u64>) -> bool {
    (stored + 1..)
        .zip(numbers.filter(|n| *n > stored))
        .all(|(next, n)| n == next)
}

impl StoredSession {
    /// The summary `Store::sessions` lists for it.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.record.id.clone(),
            status: self.record.status,
            last_activity: self.record.last_activity,
            ended_at: self.record.ended_at,
            expires_after_secs: self.record.expires_after_secs,
            closes_at: self.record.closes_at,
        }
    }
}
