//! What the hub shows of a session over REST, and its counters.

use super::*;

/// A session's state as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub info: SessionInfo,
    /// The text of the main file.
    pub code: String,
    /// The document revision `code` is at (a polling client's first `rev`).
    pub rev: Revision,
    /// Everyone, with presence.
    pub participants: Vec<ParticipantState>,
}

/// A REST read of a session: all of it for its members (and its creator),
/// its public summary for anyone else the [`Access`] policy lets read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SessionRead {
    /// Code, revision and participants: for members.
    Full(SessionView),
    /// Title, language, status, capacity and how many are online: enough to
    /// decide whether to join.
    Summary(SessionInfo),
}

/// Counters across the hub, for a stats endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    /// Live sessions.
    pub sessions: u64,
    /// Open connections.
    pub connections: u64,
    /// Frames received from clients.
    pub frames_in: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Frames queued to clients (one per recipient).
    pub frames_out: u64,
    /// Bytes queued to clients.
    pub bytes_out: u64,
    /// Connections dropped for not keeping up.
    pub slow_consumer_drops: u64,
    /// Bytes of client messages read and not yet applied, held against
    /// [`HubConfig::max_bytes_in_flight`](crate::HubConfig::max_bytes_in_flight).
    pub bytes_held_in: u64,
    /// Bytes of frames queued for clients and not yet written.
    pub bytes_held_out: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) frames_in: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) frames_out: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) drops: AtomicU64,
}
