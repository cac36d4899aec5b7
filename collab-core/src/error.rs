//! Errors of the session boundary, and the stable codes they travel as.

use crate::chat::ChatError;
use crate::document::DocumentError;
use crate::identity::AuthError;
use crate::participant::{Action, Role};
use crate::presence::PresenceError;
use crate::protocol::ProtocolError;

pub use collab_wire::codes::ErrorCode;

/// Why a session refused a request. Every variant is the caller's mistake or a
/// state the caller must handle (full, ended); none is fatal to the session, and
/// a refused request changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session already has `capacity` participants online.
    #[error("session is full ({capacity} participants)")]
    SessionFull {
        /// The session's capacity.
        capacity: usize,
    },
    /// The session has ended.
    #[error("session has ended")]
    SessionEnded,
    /// The session is paused: only hosts change the code until it goes on.
    #[error("the session is paused: only hosts can change the code until it goes on")]
    Paused,
    /// The connection has not joined yet.
    #[error("join the session first")]
    NotJoined,
    /// The connection has joined already.
    #[error("already joined")]
    AlreadyJoined,
    /// The participant's role does not permit the action.
    #[error("{} may not {}", role.with_article(), action.in_words())]
    Forbidden {
        /// What was asked.
        action: Action,
        /// The asker's role.
        role: Role,
    },
    /// Not a participant of this session, so nothing is permitted.
    #[error("not a participant of this session")]
    NotParticipant,
    /// This user was kicked from the session.
    #[error("removed from this session by a host")]
    Banned,
    /// No participant with that id in the session.
    #[error("no such participant")]
    UnknownParticipant,
    /// A host cannot kick themselves (they can leave).
    #[error("a host cannot remove themselves")]
    CannotKickSelf,
    /// The session would be left with no host.
    #[error("the session must keep at least one host")]
    LastHost,
    /// Input out of range: the text says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The client's protocol version is not supported.
    #[error("unsupported protocol version {0}")]
    UnsupportedProtocol(u32),
    /// A chat request failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// A presence update failed.
    #[error(transparent)]
    Presence(#[from] PresenceError),
    /// The frame could not be read.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A document operation failed.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The connection sends frames faster than allowed; the frame was not read.
    #[error("more than {per_second} frames a second")]
    RateLimited {
        /// The sustained rate allowed.
        per_second: u32,
    },
    /// A refreshed credential was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Only a participant themselves can leave; a host removes others with `kick`.
    #[error("only participants themselves can leave; a host removes others")]
    NotYourself,
    /// A refreshed credential names a different user than the connection's.
    #[error("the token names another user")]
    TokenForAnotherUser,
    /// The session has as many connections as it takes.
    #[error("the session takes at most {max} connections")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
}

impl SessionError {
    /// The code this error travels as.
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::SessionFull { .. } => ErrorCode::SessionFull,
            SessionError::SessionEnded => ErrorCode::SessionEnded,
            SessionError::Paused => ErrorCode::Forbidden,
            SessionError::NotJoined => ErrorCode::NotJoined,
            SessionError::AlreadyJoined => ErrorCode::AlreadyJoined,
            SessionError::Forbidden { .. } | SessionError::NotParticipant => ErrorCode::Forbidden,
            SessionError::CannotKickSelf => ErrorCode::Forbidden,
            SessionError::Banned => ErrorCode::Banned,
            SessionError::UnknownParticipant => ErrorCode::UnknownParticipant,
            SessionError::LastHost => ErrorCode::LastHost,
            SessionError::InvalidInput(_) | SessionError::Presence(_) => ErrorCode::InvalidInput,
            SessionError::UnsupportedProtocol(_) => ErrorCode::UnsupportedProtocol,
            SessionError::Chat(e) => match e {
                ChatError::TooLong { .. } => ErrorCode::MessageTooLong,
                ChatError::UnknownMessage(_) => ErrorCode::UnknownMessage,
                ChatError::NotAuthor => ErrorCode::NotAuthor,
                ChatError::Deleted(_) => ErrorCode::MessageDeleted,
                _ => ErrorCode::InvalidInput,
            },
            SessionError::Protocol(e) => e.code(),
            SessionError::RateLimited { .. } => ErrorCode::RateLimited,
            SessionError::TooManyConnections { .. } => ErrorCode::TooManyConnections,
            SessionError::Auth(_) => ErrorCode::Unauthorized,
            SessionError::TokenForAnotherUser | SessionError::NotYourself => ErrorCode::Forbidden,
            SessionError::Document(e) => match e {
                DocumentError::UnknownRevision { .. } => ErrorCode::UnknownRevision,
                DocumentError::UnknownFile(_) => ErrorCode::UnknownFile,
                DocumentError::FileExists(_) => ErrorCode::FileExists,
                DocumentError::TooLarge { .. } | DocumentError::TooManyFiles => {
                    ErrorCode::DocumentTooLarge
                }
                DocumentError::BadPath | DocumentError::RunOutputTooLarge => {
                    ErrorCode::InvalidInput
                }
                DocumentError::Operation(_)
                | DocumentError::BadSyncMessage(_)
                | DocumentError::Automerge(_) => ErrorCode::InvalidOperation,
                DocumentError::Structure(_) => ErrorCode::Internal,
                DocumentError::HistoryNotLoaded { .. } => ErrorCode::StorageFailed,
            },
        }
    }
}

/// The result of a session request: [`SessionError`] unless said otherwise.
pub type Result<T, E = SessionError> = std::result::Result<T, E>;
