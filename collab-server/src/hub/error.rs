//! Why a hub request failed.

use super::*;

/// Why a hub request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The credential was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No live session has that id.
    #[error("no such session")]
    SessionNotFound,
    /// The session refused the request; nothing changed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The operating system could not provide randomness for a session id. Fatal.
    #[error("no random source for session ids")]
    Random(#[source] std::io::Error),
    /// The session's task has stopped (the hub is shutting down).
    #[error("session is shutting down")]
    ShuttingDown,
    /// A WebSocket upgrade from a page whose origin the policy does not allow.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// This client address has as many connections open as it may.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// The store could not load or save the session.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host application's [`Access`] policy does not allow this
    /// identity to do this with this session. Caller's mistake.
    #[error("not allowed for this session")]
    Forbidden,
    /// Too many requests of this kind from this user or address (session
    /// creation, guest identities). Retry later.
    #[error("too many requests; try again later")]
    RateLimited,
    /// The authenticator issues no guest identities.
    #[error("guest access is not offered")]
    GuestsNotOffered,
    /// The session is served by another process, which this request
    /// cannot reach from here. May be retried (on that process).
    #[error("the session is served by node {0}")]
    OwnedElsewhere(crate::backplane::NodeId),
    /// The backplane between processes failed. May be retried.
    #[error(transparent)]
    Backplane(#[from] crate::backplane::BackplaneError),
    /// The process owning the session refused; its code says why.
    #[error("{message}")]
    Remote {
        /// The owner's error code.
        code: ErrorCode,
        /// The owner's message.
        message: String,
    },
}

impl HubError {
    /// The code this error travels as.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::Auth(_) => ErrorCode::Unauthorized,
            HubError::SessionNotFound => ErrorCode::SessionNotFound,
            HubError::Session(e) => e.code(),
            HubError::Random(_) | HubError::ShuttingDown => ErrorCode::Internal,
            HubError::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            HubError::TooManyConnections => ErrorCode::TooManyConnections,
            HubError::Store(_) => ErrorCode::StorageFailed,
            HubError::Forbidden | HubError::GuestsNotOffered => ErrorCode::Forbidden,
            HubError::RateLimited => ErrorCode::RateLimited,
            HubError::OwnedElsewhere(_) | HubError::Backplane(_) => ErrorCode::Internal,
            HubError::Remote { code, .. } => *code,
        }
    }
}

/// The result of a hub request: [`HubError`] unless said otherwise.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
