//! What the store is handed: the changes since the last save, and restoring
//! a session from what was stored.

use super::*;

/// How far a session's state has been handed to the store.
#[derive(Debug, Default)]
pub(super) struct Persisted {
    pub(super) seq: Seq,
    pub(super) rev: Revision,
    pub(super) heads: Vec<automerge::ChangeHash>,
    /// The revision the stored document holds; later ones are stored only
    /// as versions.
    pub(super) document_rev: Revision,
    /// Bytes of text the versions after `document_rev` insert.
    pub(super) unsaved_bytes: usize,
    /// Every document change stored.
    pub(super) saved: std::collections::HashSet<automerge::ChangeHash>,
    /// The record as last written, without its initial files: they never
    /// change, and a copy of a pasted exercise per session is not free.
    pub(super) record: Option<SessionRecord>,
    /// Document chunks appended since the last full save, and their bytes.
    pub(super) chunks: usize,
    pub(super) appended_bytes: usize,
    /// The size of the last full save (or of the document as loaded).
    pub(super) full_bytes: usize,
}

/// How far the last activity may move before the record is written for it alone.
pub(super) const RECORD_ACTIVITY_STEP: Duration = Duration::from_secs(60);

pub(super) fn stored_membership(m: Membership) -> StoredMembership {
    match m {
        Membership::Present => StoredMembership::Present,
        Membership::Left => StoredMembership::Left,
        Membership::Kicked => StoredMembership::Kicked,
    }
}

/// Appended document chunks after which the next write is a full save.
pub(super) const CHUNKS_BEFORE_COMPACTION: usize = 256;

/// The next write is a full save too once the appended chunks weigh twice
/// the last full save, or this much for a small document. automerge loads a
/// full save faster than the same changes in chunks (a fifth faster at
/// 50,000 edits), and the full saves grow geometrically, so they cost a
/// constant share of the bytes written; but a full save of a long history
/// takes a while (tenths of a second for a million operations), on the
/// session's task.
pub(super) const APPENDED_BYTES_BEFORE_COMPACTION: usize = 16 * 1024;

/// Revisions stored only as versions after which the document's changes are
/// written too, whether or not anything needs them, and likewise bytes of
/// text inserted by them. They bound what a load replays onto the stored
/// document (a local automerge change costs some 10 µs an edit and a few µs
/// a character): a few milliseconds.
pub(super) const DOCUMENT_SAVE_EVERY: Revision = 256;
pub(super) const DOCUMENT_SAVE_EVERY_BYTES: usize = 16 * 1024;

impl Session {
    /// A session back from the store, as it was at its last write: members
    /// (all offline), chat, events and document. The hub's `config` supplies
    /// the settings that are not stored; capacity and expiry are.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] when the stored parts do not make a session.
    pub fn restore(
        stored: StoredSession,
        mut config: SessionConfig,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let StoredSession {
            record,
            events,
            messages,
            versions,
            document,
            document_rev,
        } = stored;
        let damaged = |reason: String| StoreError::Damaged {
            session: record.id.clone(),
            reason,
        };
        config.capacity = record.capacity;
        config.expires_after = Duration::from_secs(record.expires_after_secs);
        let stored_len = document.len();
        let (document, stored_document) = Document::restore_with_stored(
            &document,
            document_rev,
            &record.initial_files,
            versions,
            record.document_private,
        )
        .map_err(|e| damaged(e.to_string()))?;
        let rev = document.rev();
        let log = crate::events::EventLog::restore(events).map_err(damaged)?;
        let chat = Chat::restore(messages);
        let anchored = chat
            .all()
            .iter()
            .filter(|m| m.anchor.is_some() && !m.deleted)
            .map(|m| m.id)
            .collect();
        let members = Roster::restore(
            record.members.iter().map(|m| {
                let membership = match m.membership {
                    StoredMembership::Present => Membership::Present,
                    StoredMembership::Left => Membership::Left,
                    StoredMembership::Kicked => Membership::Kicked,
                };
                Member::restored(m.participant.clone(), membership, now)
            }),
            record.banned.iter().cloned(),
            record.next_participant,
        )
        .map_err(damaged)?;
        let unsaved_bytes = document
            .versions_held(document_rev, usize::MAX)
            .0
            .iter()
            .map(inserted_bytes)
            .sum();
        let persisted = Persisted {
            unsaved_bytes,
            seq: log.last_seq(),
            rev,
            heads: stored_document.heads,
            document_rev,
            saved: stored_document.saved,
            record: Some(without_files(&record)),
            chunks: CHUNKS_BEFORE_COMPACTION / 2,
            appended_bytes: 0,
            full_bytes: stored_len,
        };
        let mut session = Self {
            id: record.id,
            config,
            heading: Heading::restored(
                record.title,
                record.language,
                record.status,
                record.updated_at,
                (record.ended_at, record.end_reason),
                record
                    .starts_at
                    .zip(record.closes_at)
                    .map(|(starts_at, closes_at)| super::heading::Schedule {
                        starts_at,
                        closes_at,
                    }),
            ),
            created_by: record.created_by,
            created_at: record.created_at,
            last_activity: record.last_activity,
            now,
            document,
            members,
            connections: Connections::default(),
            chat,
            log,
            outbox: VecDeque::new(),
            history_wait: Default::default(),
            anchored,
            sync_pending: false,
            timers: TimerTable::default(),
            tally: Tally::default(),
            initial_files: record.initial_files,
            persisted,
            warned_closing: None,
        };
        // A warning given before the session was unloaded is not given again.
        session.warned_closing = session.log.last_closing_warning();
        session
            .document
            .set_max_len(session.config.max_document_units);
        session.arm_session_expiry();
        session.arm_schedule(now);
        Ok(session)
    }

    /// What changed since the last call, for the store: the record when it
    /// changed, new events and versions, changed chat messages, and, when
    /// they are due, the document's new automerge changes (a full save on
    /// the first call and, to compact, after many appended chunks).
    ///
    /// The versions alone make a thin client's edit durable: a load replays
    /// them onto the stored document. The document's changes are written
    /// when the versions cannot rebuild them (a replica's changes, the
    /// language, a run), when they left the process (sent to a replica),
    /// and every 256 revisions or 16 KiB of inserted text; committing and
    /// collecting them costs more than the edit itself.
    ///
    /// A driver calls it again only once what the last call returned is
    /// stored: the session then lets go of history the store holds (see
    /// [`Session::history_floor`]).
    pub fn take_changes(&mut self) -> SessionChanges {
        // The last call's changes are stored by now (a driver asks again
        // only after its write succeeded), so what its document holds can
        // be read back from the store; not while a read of it is on its
        // way, which must find the floor where it was asked.
        if !self.awaits_history() {
            self.document
                .forget_stored_history(self.persisted.document_rev);
        }
        let mut changes = SessionChanges::empty(self.id.clone());
        // Both marks are taken: a write covers whatever they were set for.
        let marked = self.heading.take_changed() | self.members.take_changed();
        if marked || self.record_needs_write() {
            let record = self.stored_record();
            self.persisted.record = Some(without_files(&record));
            changes.record = Some(record);
        }
        if self.log.last_seq() > self.persisted.seq {
            changes.events = self.log.since(self.persisted.seq, usize::MAX).events;
            self.persisted.seq = self.log.last_seq();
        }
        changes.messages = self.chat.take_changed();
        let (versions, _) = self.document.versions_held(self.persisted.rev, usize::MAX);
        self.persisted.unsaved_bytes += versions.iter().map(inserted_bytes).sum::<usize>();
        changes.versions = versions;
        self.persisted.rev = self.document.rev();
        let first = self.persisted.heads.is_empty();
        let due = first
            || self.document.must_save()
            || self.document.rev() >= self.persisted.document_rev + DOCUMENT_SAVE_EVERY
            || self.persisted.unsaved_bytes >= DOCUMENT_SAVE_EVERY_BYTES;
        if !due {
            return changes;
        }
        let persisted = &mut self.persisted;
        changes.document_rev = self.document.rev();
        persisted.document_rev = changes.document_rev;
        persisted.unsaved_bytes = 0;
        let bytes = self
            .document
            .save_since(&mut persisted.heads, &mut persisted.saved);
        // Started afresh while committing: what was just collected does not
        // continue the stored document, which must be replaced.
        let restarted = self.document.take_restarted();
        if let Some(bytes) = bytes {
            persisted.chunks += 1;
            persisted.appended_bytes += bytes.len();
            let compact = first
                || restarted
                || self.document.wants_restart()
                || persisted.chunks >= CHUNKS_BEFORE_COMPACTION
                || persisted.appended_bytes
                    > (2 * persisted.full_bytes).max(APPENDED_BYTES_BEFORE_COMPACTION);
            changes.document = if compact {
                // A private document starts automerge afresh here, so what
                // it holds and loads is its text, not everything typed.
                if restarted || self.document.restart_private() == Ok(true) {
                    persisted.heads = self.document.heads();
                    persisted.saved = self.document.change_hashes();
                }
                let whole = self.document.save_for_store();
                persisted.chunks = 0;
                persisted.appended_bytes = 0;
                persisted.full_bytes = whole.len();
                Some(DocumentWrite::Replace(whole))
            } else {
                Some(DocumentWrite::Append(bytes))
            };
        }
        if !self.document.has_uncommitted() {
            self.timers.stop(Timer::Commit);
        }
        changes
    }

    /// Whether the record must be written for what no mark covers: never
    /// written, the document turned shared, or the last activity moved
    /// enough to matter. The last activity counts once it moved a minute,
    /// or exactly once nobody is connected (it times expiry, which then
    /// starts), so busy steps do not rewrite the record.
    fn record_needs_write(&self) -> bool {
        let Some(r) = &self.persisted.record else {
            return true;
        };
        let activity_moved = self.last_activity != r.last_activity
            && (self.connections.is_empty()
                || self.last_activity.since(r.last_activity) >= RECORD_ACTIVITY_STEP);
        activity_moved || r.document_private != self.document.is_private()
    }

    /// The session's record as the store keeps it.
    pub(super) fn stored_record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            title: self.heading.title().to_owned(),
            language: self.heading.language().to_owned(),
            status: self.heading.status(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.heading.updated_at(),
            ended_at: self.heading.ended_at(),
            last_activity: self.last_activity,
            capacity: self.config.capacity,
            expires_after_secs: self.config.expires_after.as_secs(),
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    participant: m.participant().clone(),
                    membership: stored_membership(m.membership()),
                })
                .collect(),
            banned: self.members.banned(),
            next_participant: self.members.next_id(),
            initial_files: self.initial_files.clone(),
            document_private: self.document.is_private(),
            end_reason: self.heading.end_reason(),
            starts_at: self.heading.schedule().map(|s| s.starts_at),
            closes_at: self.heading.schedule().map(|s| s.closes_at),
        }
    }

    // ---- driver interface -------------------------------------------------
}

/// A record's copy for comparing later ones with (see `Persisted::record`).
fn without_files(record: &SessionRecord) -> SessionRecord {
    SessionRecord {
        initial_files: BTreeMap::new(),
        members: record.members.clone(),
        banned: record.banned.clone(),
        title: record.title.clone(),
        language: record.language.clone(),
        id: record.id.clone(),
        created_by: record.created_by.clone(),
        ..*record
    }
}

/// Bytes of text a version inserts.
fn inserted_bytes(version: &Version) -> usize {
    match &version.change {
        Change::Edit { op } => op
            .components()
            .iter()
            .map(|c| match c {
                crate::ot::Component::Insert(s) => s.len(),
                _ => 0,
            })
            .sum(),
        Change::Create { text } => text.len(),
        Change::Remove => 0,
    }
}
