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
            starts_at: self.heading.schedule().map(|s| s.starts_at),
            closes_at: self.heading.schedule().map(|s| s.closes_at),
            end_reason: self.heading.end_reason(),
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
        if let Some(closes_at) = update.closes_at {
            let Some(schedule) = self.heading.schedule() else {
                return Err(SessionError::InvalidInput(
                    "only a scheduled session has a time it closes".into(),
                ));
            };
            let latest = schedule.starts_at.plus(self.config.max_open_for);
            if closes_at <= now || closes_at > latest {
                return Err(SessionError::InvalidInput(format!(
                    "closes_at must be in the future and at most {} hours after the start",
                    self.config.max_open_for.as_secs() / 3600
                )));
            }
        }
        if update.title.is_none()
            && update.language.is_none()
            && update.status.is_none()
            && update.closes_at.is_none()
        {
            return Err(SessionError::InvalidInput(
                "nothing to change: give a title, language, status or closes_at".into(),
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
        if let Some(closes_at) = update.closes_at {
            self.heading.close_at(closes_at, now);
        }
        self.last_activity = now;
        if let Some(m) = by.and_then(|p| self.members.get_mut(&p)) {
            m.presence.touch(now);
        }
        let SessionUpdate {
            title,
            language,
            status,
            closes_at,
        } = update;
        let seq = self.record(
            now,
            EventKind::SessionUpdated {
                title,
                language,
                status,
                closes_at,
                by,
            },
        );
        if closes_at.is_some() {
            // A new time: warned of again, at its own time.
            self.keep_schedule(now);
        }
        Ok(seq)
    }

    pub(super) fn end_with(
        &mut self,
        by: Option<ParticipantId>,
        reason: EndReason,
        now: Timestamp,
    ) -> Seq {
        self.heading.end(reason, now);
        self.timers.stop(Timer::Schedule);
        let seq = self.record(now, EventKind::SessionEnded { by, reason });
        self.close_everyone(CloseReason::SessionEnded, now);
        seq
    }

    /// Whether the session, idle with nobody connected past its expiry,
    /// ends now. A scheduled session never expires: it closes at its time.
    pub(super) fn expired(&self, now: Timestamp) -> bool {
        !self.is_ended()
            && self.heading.schedule().is_none()
            && self.connections.is_empty()
            && now >= self.last_activity.plus(self.config.expires_after)
    }

    /// A scheduled session's time: everyone is warned
    /// [`SessionConfig::closing_warning`] before it closes (once per closing
    /// time, at once if it is nearer than that), and it ends when it
    /// closes. Then arms the timer for what comes next.
    pub(super) fn keep_schedule(&mut self, now: Timestamp) {
        let Some(schedule) = self.heading.schedule() else {
            return;
        };
        if self.is_ended() {
            self.timers.stop(Timer::Schedule);
            return;
        }
        if now >= schedule.closes_at {
            self.end_with(None, EndReason::Closed, now);
            return;
        }
        if now >= self.closing_warning_at(schedule)
            && self.warned_closing != Some(schedule.closes_at)
        {
            self.warned_closing = Some(schedule.closes_at);
            self.record(
                now,
                EventKind::SessionClosing {
                    closes_at: schedule.closes_at,
                },
            );
        }
        self.arm_schedule(now);
    }

    /// Sets the schedule's timer: the warning if it is still to come, else
    /// the close.
    pub(super) fn arm_schedule(&mut self, now: Timestamp) {
        let Some(schedule) = self.heading.schedule().filter(|_| !self.is_ended()) else {
            self.timers.stop(Timer::Schedule);
            return;
        };
        let next = if self.warned_closing == Some(schedule.closes_at) {
            schedule.closes_at
        } else {
            self.closing_warning_at(schedule).max(now)
        };
        self.timers.set(Timer::Schedule, next);
    }

    /// When everyone is warned that `schedule`'s session closes.
    fn closing_warning_at(&self, schedule: super::heading::Schedule) -> Timestamp {
        Timestamp(
            schedule
                .closes_at
                .0
                .saturating_sub(duration_ms(self.config.closing_warning)),
        )
    }
}
