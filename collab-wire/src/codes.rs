//! Stable error codes: what clients and every adapter match on.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Clients and adapters match on these;
/// they never change meaning. Serialised in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON or not a valid frame of its type.
    MalformedFrame,
    /// The frame's `type` is not one this server knows.
    UnknownFrameType,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// The client speaks a protocol version this server does not.
    UnsupportedProtocol,
    /// Credentials missing or not valid.
    Unauthorized,
    /// The session does not exist.
    SessionNotFound,
    /// The connection must send `join` first.
    NotJoined,
    /// The connection has joined already.
    AlreadyJoined,
    /// The session is at capacity.
    SessionFull,
    /// The session has ended.
    SessionEnded,
    /// The participant's role does not allow this.
    Forbidden,
    /// This user was removed from the session and cannot join again.
    Banned,
    /// No such participant.
    UnknownParticipant,
    /// No such message.
    UnknownMessage,
    /// Only a message's author may do this.
    NotAuthor,
    /// The message was deleted.
    MessageDeleted,
    /// The change would leave the session without a host.
    LastHost,
    /// A value is out of range or empty (a name, a title, a message, a cursor).
    InvalidInput,
    /// The message is longer than the limit.
    MessageTooLong,
    /// Too many requests; slow down.
    RateLimited,
    /// The server failed; the request may be retried.
    Internal,
    /// Too many connections: to this session, or from this address.
    TooManyConnections,
    /// A WebSocket upgrade from a page whose origin is not allowed.
    OriginNotAllowed,
    /// A document revision the server does not have.
    UnknownRevision,
    /// No such file in the document.
    UnknownFile,
    /// The file exists already.
    FileExists,
    /// A text operation or sync message does not fit the document.
    InvalidOperation,
    /// The document would grow past its limit.
    DocumentTooLarge,
    /// The server could not load or store the session (its storage failed, or
    /// what is stored for this session is damaged). Other sessions are not
    /// affected. HTTP 503.
    StorageFailed,
    /// The request body did not arrive in time. HTTP 408.
    RequestTimeout,
    /// The server holds as many bytes of incoming messages as it takes; the
    /// message was not read. Send it again later. HTTP 503.
    ServerBusy,
}

impl ErrorCode {
    /// The code's wire spelling (`session_full`, ...), for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::UnknownFrameType => "unknown_frame_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::SessionFull => "session_full",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Banned => "banned",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::NotAuthor => "not_author",
            ErrorCode::MessageDeleted => "message_deleted",
            ErrorCode::LastHost => "last_host",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::UnknownRevision => "unknown_revision",
            ErrorCode::UnknownFile => "unknown_file",
            ErrorCode::FileExists => "file_exists",
            ErrorCode::InvalidOperation => "invalid_operation",
            ErrorCode::DocumentTooLarge => "document_too_large",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::ServerBusy => "server_busy",
        }
    }

    /// The HTTP status an adapter answers with for this code, so every adapter
    /// agrees: 400 for bad input, 401, 403, 404, 409 for a full session, 410 for
    /// an ended one, 413 for an oversized frame, 429, 500.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedFrame
            | ErrorCode::UnknownFrameType
            | ErrorCode::UnsupportedProtocol
            | ErrorCode::InvalidInput
            | ErrorCode::NotJoined
            | ErrorCode::AlreadyJoined
            | ErrorCode::MessageTooLong => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden
            | ErrorCode::Banned
            | ErrorCode::NotAuthor
            | ErrorCode::LastHost => 403,
            ErrorCode::SessionNotFound
            | ErrorCode::UnknownParticipant
            | ErrorCode::UnknownMessage => 404,
            ErrorCode::SessionFull | ErrorCode::FileExists => 409,
            ErrorCode::UnknownRevision | ErrorCode::InvalidOperation => 400,
            ErrorCode::UnknownFile => 404,
            ErrorCode::DocumentTooLarge => 413,
            ErrorCode::StorageFailed | ErrorCode::ServerBusy => 503,
            ErrorCode::SessionEnded | ErrorCode::MessageDeleted => 410,
            ErrorCode::FrameTooLarge => 413,
            ErrorCode::RateLimited | ErrorCode::TooManyConnections => 429,
            ErrorCode::OriginNotAllowed => 403,
            ErrorCode::Internal => 500,
            ErrorCode::RequestTimeout => 408,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_wire_spelling() {
        let every = [
            ErrorCode::MalformedFrame,
            ErrorCode::UnknownFrameType,
            ErrorCode::FrameTooLarge,
            ErrorCode::UnsupportedProtocol,
            ErrorCode::Unauthorized,
            ErrorCode::SessionNotFound,
            ErrorCode::NotJoined,
            ErrorCode::AlreadyJoined,
            ErrorCode::SessionFull,
            ErrorCode::SessionEnded,
            ErrorCode::Forbidden,
            ErrorCode::Banned,
            ErrorCode::UnknownParticipant,
            ErrorCode::UnknownMessage,
            ErrorCode::NotAuthor,
            ErrorCode::MessageDeleted,
            ErrorCode::LastHost,
            ErrorCode::InvalidInput,
            ErrorCode::MessageTooLong,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::TooManyConnections,
            ErrorCode::OriginNotAllowed,
            ErrorCode::UnknownRevision,
            ErrorCode::UnknownFile,
            ErrorCode::FileExists,
            ErrorCode::InvalidOperation,
            ErrorCode::DocumentTooLarge,
            ErrorCode::StorageFailed,
            ErrorCode::RequestTimeout,
            ErrorCode::ServerBusy,
        ];
        for code in every {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
