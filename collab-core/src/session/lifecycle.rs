//! The session as a whole: its title, language and status, ending it, and
//! reads of it for REST and polling clients.

use super::*;

impl Session {
    /// What a polling client reads: the events after `since` and, when it
    /// passes the document revision it holds, the document changes after it
    /// (as the `text_op` and `file_op` frames a WebSocket client gets). Only current members may read.
    ///
    /// # Errors
    /// [`SessionError::Banned`] for a kicked user, [`SessionError::NotParticipant`]
    /// for anyone else who is not a current member,
    /// [`DocumentError::UnknownRevision`] for a revision from the future.
    pub fn read(
        &self,
        user: &UserId,
        since: Seq,
        rev: Option<Revision>,
        limit: usize,
    ) -> Result<ReadPage, SessionError> {
        self.current_member_of(user)?;
        if let Some(rev) = rev.filter(|r| *r > self.document.rev()) {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.document.rev(),
            }
            .into());
        }
        let limit = limit.min(self.config.max_events_page);
        let page = self.log.since(since, limit);
        let (ops, ops_more, next_rev) = match rev {
            Some(rev) => {
                let (versions, more) = self.document.versions(rev, limit)?;
                let next = versions.last().map_or(rev, |v| v.rev);
                let frames = versions.into_iter().map(version_frame).collect();
                (frames, more, if more { next } else { self.document.rev() })
            }
            None => (Vec::new(), false, self.document.rev()),
        };
        // A page cut short continues after what it holds, not after the
        // newest event: a reader that reads `since = last_seq` misses nothing.
        let last_seq = match page.events.last() {
            Some(last) if page.has_more => last.seq,
            _ => self.log.last_seq(),
        };
        Ok(ReadPage {
            events: page.events,
            has_more: page.has_more || ops_more,
            last_seq,
            rev: next_rev,
            ops,
            status: self.heading.status(),
        })
    }

    /// The latest event's sequence number and the document's revision: what a
    /// waiting reader compares to know whether anything new happened.
    pub fn position(&self) -> (Seq, Revision) {
        (self.log.last_seq(), self.document.rev())
    }

    /// Whether `user` may do `action` in the session now, decided as for
    /// their frames: current members by their role, the creator as a host,
    /// and while the session is paused only hosts change the code. For a
    /// host application's own routes that act on a session (running its
    /// code, say); nothing changes.
    ///
    /// # Errors
    /// [`SessionError::NotParticipant`], [`SessionError::Forbidden`],
    /// [`SessionError::Paused`].
    pub fn may(&self, user: &UserId, action: Action) -> Result<(), SessionError> {
        self.authorize(Actor::User(user), action).map(|_| ())
    }

    /// Whether `user`, at `address`, may read the session's code and
    /// participants over REST: its current members and its creator may; a
    /// banned user, or a newcomer from a banned address, gets
    /// [`SessionError::Banned`]; anyone else `Ok(false)` (the public summary).
    ///
    /// # Errors
    /// [`SessionError::Banned`].
    pub fn may_read(
        &self,
        user: &UserId,
        address: Option<std::net::IpAddr>,
    ) -> Result<bool, SessionError> {
        let member = *user == self.created_by || self.current_member_of(user).is_ok();
        if self.members.is_banned(user)
            || (!member && address.is_some_and(|a| self.members.is_banned(&address_ban(a))))
        {
            return Err(SessionError::Banned);
        }
        Ok(member)
    }

    /// Changes title, language or status on behalf of `user`, who must be
    /// permitted to [`Action::UpdateSession`].
    ///
    /// # Errors
    /// [`SessionError::Forbidden`], [`SessionError::NotParticipant`],
    /// [`SessionError::SessionEnded`] or [`SessionError::InvalidInput`]; nothing changes.
    pub fn update(
        &mut self,
        user: &UserId,
        update: SessionUpdate,
        now: Timestamp,
    ) -> Result<SessionInfo, SessionError> {
        self.step(now, |s| {
            let by = s.authorize(Actor::User(user), Action::UpdateSession)?;
            s.apply_update(by, update, now)?;
            Ok(s.info())
        })
    }

    /// Ends the session on behalf of `user`, who must be permitted to
    /// [`Action::EndSession`]. Every connection is closed.
    ///
    /// # Errors
    /// [`SessionError::Forbidden`], [`SessionError::NotParticipant`] or
    /// [`SessionError::SessionEnded`]; nothing changes.
    pub fn end(&mut self, user: &UserId, now: Timestamp) -> Result<SessionInfo, SessionError> {
        self.step(now, |s| {
            let by = s.authorize(Actor::User(user), Action::EndSession)?;
            if s.is_ended() {
                return Err(SessionError::SessionEnded);
            }
            s.end_with(by, EndReason::Ended, now);
            Ok(s.info())
        })
    }

    // ---- reads -------------------------------------------------------------

    /// The whole session as one document, for `user`, who must be allowed
    /// [`Action::ExportSession`] (a host): every version, every event,
    /// everyone who joined, and the files at the start and now. It reads the
    /// whole history: a driver hands in what the store holds first when
    /// [`Session::export_needs_history`] says so.
    ///
    /// # Errors
    /// [`SessionError::NotParticipant`] or [`SessionError::Forbidden`];
    /// [`DocumentError::HistoryNotLoaded`] when the store's history is not
    /// in.
    pub fn export(&self, user: &UserId, now: Timestamp) -> Result<SessionExport, SessionError> {
        self.authorize(Actor::User(user), Action::ExportSession)?;
        let (versions, _) = self.document.versions(0, usize::MAX)?;
        // Every file that ever was: those there now, and those a version
        // names (created, then removed).
        let mut paths: BTreeSet<String> = self.document.paths().into_iter().collect();
        paths.extend(versions.iter().map(|v| v.file.clone()));
        let mut start = BTreeMap::new();
        for path in paths {
            if let Some(text) = self.document.text_at(&path, 0)? {
                start.insert(path, text);
            }
        }
        Ok(SessionExport {
            format: EXPORT_FORMAT.to_owned(),
            exported_at: now,
            session: self.info(),
            participants: self
                .members
                .values()
                .map(|m| m.participant().clone())
                .collect(),
            start: FilesAt {
                rev: 0,
                files: start,
            },
            versions,
            events: self.log.since(Seq(0), usize::MAX).events,
            end: FilesAt {
                rev: self.document.rev(),
                files: self.document.files(),
            },
        })
    }

    /// Whether `user`'s [`Session::export`] needs the store's history
    /// first: only an export the user may make does.
    pub fn export_needs_history(&self, user: &UserId) -> bool {
        self.document.text_floor() > 0 && self.may(user, Action::ExportSession).is_ok()
    }

    /// The session as the API shows it.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.clone(),
            title: self.heading.title().to_owned(),
            language: self.heading.language().to_owned(),
            status: self.heading.status(),
            capacity: self.config.capacity,
            online: self.online_count(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.heading.updated_at(),
            ended_at: self.heading.ended_at(),
            expires_after_secs: duration_ms(self.config.expires_after) / 1_000,
            last_seq: self.log.last_seq(),
        }
    }

    pub(super) fn apply_update(
        &mut self,
        by: Option<ParticipantId>,
        update: SessionUpdate,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        if self.is_ended() {
            return Err(SessionError::SessionEnded);
        }
        if let Some(title) = &update.title {
            check_title(title, self.config.max_title_chars)?;
        }
        if let Some(language) = &update.language {
            check_language(language)?;
        }
        if update.status == Some(SessionStatus::Ended) {
            return Err(SessionError::InvalidInput(
                "a session is ended by ending it, not by setting its status".into(),
            ));
        }
        if update.title.is_none() && update.language.is_none() && update.status.is_none() {
            return Err(SessionError::InvalidInput(
                "nothing to change: give a title, language or status".into(),
            ));
        }
        if let Some(language) = &update.language {
            self.document.set_language(language)?;
            self.sync_pending = true;
            self.schedule_commit(now);
        }
        self.heading.update(
            update.title.as_deref(),
            update.language.as_deref(),
            update.status,
            now,
        );
        self.last_activity = now;
        if let Some(m) = by.and_then(|p| self.members.get_mut(&p)) {
            m.presence.touch(now);
        }
        let SessionUpdate {
            title,
            language,
            status,
        } = update;
        Ok(self.record(
            now,
            EventKind::SessionUpdated {
                title,
                language,
                status,
                by,
            },
        ))
    }

    pub(super) fn end_with(
        &mut self,
        by: Option<ParticipantId>,
        reason: EndReason,
        now: Timestamp,
    ) -> Seq {
        self.heading.end(now);
        let seq = self.record(now, EventKind::SessionEnded { by, reason });
        self.close_everyone(CloseReason::SessionEnded, now);
        seq
    }

    pub(super) fn expired(&self, now: Timestamp) -> bool {
        !self.is_ended()
            && self.connections.is_empty()
            && now >= self.last_activity.plus(self.config.expires_after)
    }
}
