//! A session as the REST API and the `welcome` frame show it, and the
//! bodies that create and change one.

use serde::{Deserialize, Serialize};

use crate::ids::{Seq, SessionId, UserId};
use crate::time::Timestamp;

/// Where an interview stands. `ended` is reached only by ending the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Created, not started.
    Waiting,
    /// Under way.
    Active,
    /// Paused by a host.
    Paused,
    /// Over: nobody can join, history stays readable.
    Ended,
}

/// What a session is created with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// Title shown to participants.
    #[serde(default)]
    pub title: String,
    /// Programming language of the code (`javascript`, `python`, ...).
    #[serde(default)]
    pub language: String,
    /// Initial code, put in the file [`DEFAULT_FILE`](crate::document::DEFAULT_FILE).
    #[serde(default)]
    pub code: String,
    /// Overrides the configured capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
    /// Overrides the configured expiry, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_secs: Option<u64>,
    /// When the interview is planned to start: the session is then kept
    /// open, however idle, until it closes. Absent: now, if `open_for_secs`
    /// is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// How long after its start the session stays open, in seconds; it
    /// closes then (ends, with the reason `closed`), unless a host extends
    /// it. Absent with `starts_at`: one hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_for_secs: Option<u64>,
}

/// A change to a session; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUpdate {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// New status; not `ended` (ending has its own request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    /// When a scheduled session closes now: later to extend it, sooner to
    /// shorten it; it must be in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Timestamp>,
}

/// A session as the REST API and the `welcome` frame show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's id.
    pub id: SessionId,
    /// Title.
    pub title: String,
    /// Language.
    pub language: String,
    /// Status.
    pub status: SessionStatus,
    /// Most participants online at once.
    pub capacity: usize,
    /// Participants online now.
    pub online: usize,
    /// The creator's user id.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change to title, language or status.
    pub updated_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Expiry after idleness, in seconds.
    pub expires_after_secs: u64,
    /// The newest event's sequence number.
    pub last_seq: Seq,
    /// When it is planned to start, for a scheduled session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// When a scheduled session closes: it is kept open, however idle,
    /// until then, and ends then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Timestamp>,
    /// Why it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<crate::events::EndReason>,
}

/// The name of the export format, in [`SessionExport::format`]; its JSON
/// schema is `collab-wire/export.schema.json`.
pub const EXPORT_FORMAT: &str = "collab-export/1";

/// A whole session as one document, for archives and for tools that review
/// an interview elsewhere: what `GET /api/v1/sessions/{id}/export` answers
/// a host. Replaying [`SessionExport::versions`] over
/// [`SessionExport::start`] gives [`SessionExport::end`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionExport {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// When the export was made.
    pub exported_at: Timestamp,
    /// The session.
    pub session: SessionInfo,
    /// Everyone who ever joined, with the role they have now (or had when
    /// they left); their role changes are in [`SessionExport::events`].
    pub participants: Vec<crate::participant::Participant>,
    /// The files as the session was created, at revision 0.
    pub start: FilesAt,
    /// Every change to the document, oldest first: who made it and when.
    pub versions: Vec<crate::document::Version>,
    /// Every event, oldest first: joins and leaves, role changes, chat and
    /// comments, runs, pauses, the end.
    pub events: Vec<crate::events::Event>,
    /// The files at the newest revision.
    pub end: FilesAt,
}

/// Every file's text at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesAt {
    /// The revision.
    pub rev: crate::document::Revision,
    /// Each file's path and text.
    pub files: std::collections::BTreeMap<String, String>,
}
