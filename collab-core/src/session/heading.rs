//! The session's heading: its title, language and status, and when they
//! last changed, as the stored record keeps them. Its fields change only
//! through its methods, each of which marks the heading for the store, so
//! no change can miss the next write.

use crate::events::EndReason;
use crate::session::SessionStatus;
use crate::time::Timestamp;

/// When a scheduled session is planned: it stays open, however idle, from
/// its creation until `closes_at`, and ends then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Schedule {
    pub(super) starts_at: Timestamp,
    pub(super) closes_at: Timestamp,
}

#[derive(Debug)]
pub(super) struct Heading {
    title: String,
    language: String,
    status: SessionStatus,
    updated_at: Timestamp,
    ended_at: Option<Timestamp>,
    end_reason: Option<EndReason>,
    schedule: Option<Schedule>,
    /// Changed since the store was last handed the record.
    changed: bool,
}

impl Heading {
    /// A new session's heading: waiting for people.
    pub(super) fn new(
        title: String,
        language: String,
        schedule: Option<Schedule>,
        now: Timestamp,
    ) -> Self {
        Self {
            title,
            language,
            status: SessionStatus::Waiting,
            updated_at: now,
            ended_at: None,
            end_reason: None,
            schedule,
            changed: false,
        }
    }

    /// The heading a stored record holds.
    pub(super) fn restored(
        title: String,
        language: String,
        status: SessionStatus,
        updated_at: Timestamp,
        ended: (Option<Timestamp>, Option<EndReason>),
        schedule: Option<Schedule>,
    ) -> Self {
        Self {
            title,
            language,
            status,
            updated_at,
            ended_at: ended.0,
            end_reason: ended.1,
            schedule,
            changed: false,
        }
    }

    pub(super) fn title(&self) -> &str {
        &self.title
    }

    pub(super) fn language(&self) -> &str {
        &self.language
    }

    pub(super) fn status(&self) -> SessionStatus {
        self.status
    }

    pub(super) fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    pub(super) fn ended_at(&self) -> Option<Timestamp> {
        self.ended_at
    }

    pub(super) fn end_reason(&self) -> Option<EndReason> {
        self.end_reason
    }

    pub(super) fn schedule(&self) -> Option<Schedule> {
        self.schedule
    }

    /// A host moved the time a scheduled session closes.
    pub(super) fn close_at(&mut self, closes_at: Timestamp, now: Timestamp) {
        if let Some(schedule) = &mut self.schedule {
            schedule.closes_at = closes_at;
            self.updated_at = now;
            self.changed = true;
        }
    }

    /// A host's update: what it names changes, and the heading was updated
    /// `now`.
    pub(super) fn update(
        &mut self,
        title: Option<&str>,
        language: Option<&str>,
        status: Option<SessionStatus>,
        now: Timestamp,
    ) {
        if let Some(title) = title {
            self.title = title.to_owned();
        }
        if let Some(language) = language {
            self.language = language.to_owned();
        }
        if let Some(status) = status {
            self.status = status;
        }
        self.updated_at = now;
        self.changed = true;
    }

    /// The language a run or a replica's document set; the heading follows
    /// the document, and nobody updated the session for it.
    pub(super) fn follow_language(&mut self, language: &str) {
        self.language = language.to_owned();
        self.changed = true;
    }

    /// The session ended `now`, for `reason`.
    pub(super) fn end(&mut self, reason: EndReason, now: Timestamp) {
        self.status = SessionStatus::Ended;
        self.ended_at = Some(now);
        self.end_reason = Some(reason);
        self.updated_at = now;
        self.changed = true;
    }

    /// Whether it changed since the last call.
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}
