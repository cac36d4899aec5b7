//! Document requests: thin-client operations, replica sync, and the fan-out
//! of every change to the other clients.

use super::*;

impl Session {
    /// The session document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The text of the session's main file.
    pub fn code(&self) -> String {
        self.document.text(DEFAULT_FILE).unwrap_or_default()
    }

    /// Sets the main file's text to `code` as `user`'s edit (REST `PATCH`
    /// with `code`): the difference from the text at revision `base` (the
    /// current one when absent) is applied as a text operation made at
    /// `base`, so it is rebased over whatever others typed since and never
    /// overwrites it. Returns the revision after it (the same when nothing
    /// changed).
    ///
    /// # Errors
    /// [`SessionError::NotParticipant`] unless `user` is a current member
    /// who may edit ([`SessionError::Forbidden`] otherwise); an unknown
    /// `base`; [`SessionError::SessionEnded`]; a document over its size limit.
    pub fn replace_code(
        &mut self,
        user: &UserId,
        base: Option<Revision>,
        code: &str,
        now: Timestamp,
    ) -> Result<Revision, SessionError> {
        self.step(now, |s| {
            if s.is_ended() {
                return Err(SessionError::SessionEnded);
            }
            let Some(me) = s.authorize(Actor::User(user), Action::EditDocument)? else {
                return Err(SessionError::NotParticipant);
            };
            let current = s.document.rev();
            let base = base.unwrap_or(current);
            if base > current {
                return Err(DocumentError::UnknownRevision { rev: base, current }.into());
            }
            let old = if base == current {
                s.document.text(DEFAULT_FILE)
            } else {
                s.document.text_at(DEFAULT_FILE, base)?
            }
            .unwrap_or_default();
            let op = replacement(&old, code);
            if op.is_noop() {
                return Ok(current);
            }
            let applied = s.document.apply_operation_with(
                me,
                base,
                DEFAULT_FILE,
                op,
                None,
                crate::protocol::Ties::default(),
                now,
            )?;
            let Applied::New(version) = applied else {
                return Ok(current);
            };
            let rev = version.rev;
            if let Some(m) = s.members.get_mut(&me) {
                m.presence.keystroke(now, &s.config.presence);
            }
            s.last_activity = now;
            s.after_document_change(None, vec![version]);
            Ok(rev)
        })
    }

    #[allow(clippy::too_many_arguments)] // one per field of the frame, plus who and when
    pub(super) fn text_op(
        &mut self,
        conn: ConnectionId,
        me: ParticipantId,
        rid: Option<u64>,
        (rev, ties): (Revision, crate::protocol::Ties),
        file: String,
        op: TextOperation,
        oid: Option<String>,
        now: Timestamp,
    ) -> Result<Reply, SessionError> {
        match self
            .document
            .apply_operation_with(me, rev, &file, op, oid.clone(), ties, now)?
        {
            Applied::Duplicate(rev) => Ok(Reply::Frame(ServerFrame::TextAck { rid, rev, oid })),
            Applied::New(version) => {
                let rev = version.rev;
                if let Some(m) = self.members.get_mut(&me) {
                    m.presence.keystroke(now, &self.config.presence);
                }
                self.last_activity = now;
                self.after_document_change(Some(conn), vec![version]);
                Ok(Reply::Frame(ServerFrame::TextAck { rid, rev, oid }))
            }
        }
    }

    /// Applies sync messages that came together from one replica, as one
    /// when they all may be (see [`Document::receive_sync_all`]); each
    /// message that is refused gets its own error in `refused`, and the
    /// others are still applied.
    pub(super) fn receive_syncs(
        &mut self,
        conn: ConnectionId,
        messages: &[&[u8]],
        now: Timestamp,
        refused: &mut Vec<SessionError>,
    ) {
        let mut admitted = Vec::with_capacity(messages.len());
        for bytes in messages {
            match self.check_sync(conn, bytes) {
                Ok(()) => admitted.push(*bytes),
                Err(e) => refused.push(e),
            }
        }
        if admitted.len() > 1 && self.apply_syncs(conn, &admitted, now).is_ok() {
            return;
        }
        // One at a time: a single message, or a batch one of whose
        // messages automerge refused (a batch changes nothing when refused).
        for bytes in admitted {
            if let Err(e) = self.apply_syncs(conn, &[bytes], now) {
                refused.push(e);
            }
        }
    }

    /// Whether a replica's sync message may be applied: its size, the
    /// connection, and the sender's right to edit when it carries changes.
    fn check_sync(&self, conn: ConnectionId, bytes: &[u8]) -> Result<(), SessionError> {
        if bytes.len() > self.config.max_sync_bytes {
            return Err(ProtocolError::TooLarge {
                len: bytes.len(),
                max: self.config.max_sync_bytes,
            }
            .into());
        }
        let c = self.connections.get(&conn).ok_or(SessionError::NotJoined)?;
        let me = c.participant.ok_or(SessionError::NotJoined)?;
        if c.sync.is_none() {
            return Err(ProtocolError::UnexpectedBinary.into());
        }
        // Reading a sync message for changes costs a parse: only when the
        // sender may not edit now.
        let role = self.members[&me].participant().role;
        let may_edit = role.permits(Action::EditDocument)
            && (role == Role::Host || self.heading.status() != SessionStatus::Paused);
        if !may_edit && Document::sync_message_has_changes(bytes)? {
            self.authorize(Actor::Member(me), Action::EditDocument)?;
        }
        Ok(())
    }

    /// Applies admitted sync messages of one connection as one.
    fn apply_syncs(
        &mut self,
        conn: ConnectionId,
        messages: &[&[u8]],
        now: Timestamp,
    ) -> Result<(), SessionError> {
        let me = self
            .connections
            .get(&conn)
            .and_then(|c| c.participant)
            .ok_or(SessionError::NotJoined)?;
        let Some(state) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.sync.as_mut())
        else {
            return Err(SessionError::NotJoined);
        };
        let (versions, effects) = self
            .document
            .receive_sync_all(state, messages, Some(me), now)?;
        self.sync_pending = true;
        if !versions.is_empty() {
            if let Some(m) = self.members.get_mut(&me) {
                m.presence.keystroke(now, &self.config.presence);
            }
            self.last_activity = now;
        }
        for effect in effects {
            match effect {
                SideEffect::Language(language) => {
                    self.heading.follow_language(&language);
                    self.record(
                        now,
                        EventKind::SessionUpdated {
                            title: None,
                            language: Some(language),
                            status: None,
                            closes_at: None,
                            by: Some(me),
                        },
                    );
                }
                SideEffect::Run(run) => {
                    self.record(now, EventKind::RunFinished { run });
                }
            }
        }
        self.after_document_change(Some(conn), versions);
        Ok(())
    }

    /// Tells everyone about new versions, and moves cursors and comment anchors.
    pub(super) fn after_document_change(
        &mut self,
        origin: Option<ConnectionId>,
        versions: Vec<Version>,
    ) {
        if versions.is_empty() {
            return;
        }
        // No commit timer for edits: they reach automerge when something
        // reads it (a replica's sync, the store) or every COMMIT_EVERY.
        self.sync_pending = true;
        let thin = self.connections_where(|id, c| {
            c.participant.is_some() && c.sync.is_none() && Some(id) != origin
        });
        for version in versions {
            match &version.change {
                Change::Edit { op } => {
                    for m in self.members.values_mut() {
                        m.presence.transform_cursor(&version.file, op);
                    }
                    let document = &self.document;
                    self.chat
                        .for_each_anchor_in(&self.anchored, &version.file, |anchor| {
                            if let Some(offset) = anchor.offset {
                                let moved = op.transform_index(offset, true);
                                anchor.offset = Some(moved);
                                if let Some(line) = document.line_of(&version.file, moved) {
                                    anchor.line = line;
                                }
                            }
                        });
                }
                Change::Remove => {
                    for m in self.members.values_mut() {
                        m.presence.forget_file(&version.file);
                    }
                    // Comments stay, but no longer point into a file that a
                    // later one of the same name would move them in.
                    self.chat
                        .for_each_anchor_in(&self.anchored, &version.file, |a| a.offset = None);
                }
                Change::Create { .. } => {}
            }
            if !thin.is_empty() {
                self.send(thin.clone(), version_frame(version));
            }
        }
    }

    pub(super) fn schedule_commit(&mut self, now: Timestamp) {
        if self.timers.get(Timer::Commit).is_none() {
            self.timers.set(Timer::Commit, now.plus(COMMIT_DELAY));
        }
    }

    /// What every input ends with: coalesced presence, and sync messages for
    /// replicas that lack changes.
    pub(super) fn after_input(&mut self, now: Timestamp) {
        self.flush_presence(now);
        self.arm_session_expiry();
        if !self.sync_pending {
            return;
        }
        self.sync_pending = false;
        for conn in self.connections_where(|_, c| c.sync.is_some()) {
            let Some(state) = self
                .connections
                .get_mut(&conn)
                .and_then(|c| c.sync.as_mut())
            else {
                continue;
            };
            if let Some(bytes) = self.document.generate_sync(state) {
                self.outbox
                    .push_back(Transmit::SendBinary { to: conn, bytes });
            }
        }
        if !self.document.has_uncommitted() {
            self.timers.stop(Timer::Commit);
        }
    }
}

/// The text operation that turns `old` into `new`: what they share at the
/// start and at the end is kept, the middle replaced (positions in UTF-16
/// code units, as the protocol counts).
fn replacement(old: &str, new: &str) -> TextOperation {
    let units = |s: &str| s.encode_utf16().count() as u32;
    let prefix = old
        .char_indices()
        .zip(new.chars())
        .take_while(|((_, a), b)| a == b)
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8());
    let (old_rest, new_rest) = (&old[prefix..], &new[prefix..]);
    let suffix = old_rest
        .chars()
        .rev()
        .zip(new_rest.chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(c, _)| c.len_utf8())
        .sum::<usize>();
    let old_mid = &old_rest[..old_rest.len() - suffix];
    let new_mid = &new_rest[..new_rest.len() - suffix];
    let mut op = TextOperation::new();
    op.retain(units(&old[..prefix]))
        .delete(units(old_mid))
        .insert(new_mid)
        .retain(units(&old_rest[old_rest.len() - suffix..]));
    op
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn a_replacement_keeps_what_is_shared_and_counts_utf16() {
        for (old, new) in [
            ("", "abc"),
            ("abc", ""),
            ("hello world", "hello brave world"),
            ("aaa", "aa"),
            ("x😀y", "x😀😀y"),
            ("é😀", "😀"),
            ("same", "same"),
        ] {
            let op = replacement(old, new);
            assert_eq!(op.apply(old).unwrap(), new, "{old:?} -> {new:?}");
        }
        let op = replacement("hello world", "hello brave world");
        assert_eq!(
            serde_json::to_value(&op).unwrap()[1],
            "brave ",
            "only the new words are inserted"
        );
    }
}
