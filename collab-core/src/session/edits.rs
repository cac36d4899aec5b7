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
                self.after_document_change(Some(conn), vec![version], now);
                Ok(Reply::Frame(ServerFrame::TextAck { rid, rev, oid }))
            }
        }
    }

    /// Applies a replica's sync message.
    pub(super) fn receive_sync(
        &mut self,
        conn: ConnectionId,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), SessionError> {
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
        let role = self.members[&me].participant.role;
        if !role.permits(Action::EditDocument) && Document::sync_message_has_changes(bytes)? {
            return Err(SessionError::Forbidden {
                action: Action::EditDocument,
                role,
            });
        }
        let Some(state) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.sync.as_mut())
        else {
            return Err(SessionError::NotJoined);
        };
        let (versions, effects) = self.document.receive_sync(state, bytes, Some(me), now)?;
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
                    self.language.clone_from(&language);
                    self.persisted.record_dirty = true;
                    self.record(
                        now,
                        EventKind::SessionUpdated {
                            title: None,
                            language: Some(language),
                            status: None,
                            by: Some(me),
                        },
                    );
                }
                SideEffect::Run(run) => {
                    self.record(now, EventKind::RunFinished { run });
                }
            }
        }
        self.after_document_change(Some(conn), versions, now);
        Ok(())
    }

    /// Tells everyone about new versions, and moves cursors and comment anchors.
    pub(super) fn after_document_change(
        &mut self,
        origin: Option<ConnectionId>,
        versions: Vec<Version>,
        now: Timestamp,
    ) {
        if versions.is_empty() {
            return;
        }
        self.sync_pending = true;
        self.schedule_commit(now);
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
