//! The wire protocol: JSON text frames with a `type` tag. PROTOCOL.md at the
//! repository root documents every frame with an example.
//!
//! Decoding never panics: a frame that is too large, not JSON, of an unknown type
//! or with wrong fields becomes a [`ProtocolError`], which the session answers
//! with an `error` frame while the connection carries on.

use serde::{Deserialize, Serialize};

use crate::chat::{ChatMessage, CodeAnchor};
use crate::codes::ErrorCode;
use crate::document::{Change, DocumentSnapshot, Revision, Version};
use crate::events::Event;
use crate::ids::{ParticipantId, Seq};
use crate::ot::TextOperation;
use crate::participant::{Participant, Role};
use crate::presence::{PresenceUpdate, PresenceView};
use crate::session::{SessionInfo, SessionStatus};
use crate::time::Timestamp;

/// The protocol version this crate speaks. A client may send it in `join`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from a client, with the optional request id `rid` that the server
/// echoes in its answer (`ack`, `error` or a response frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    /// Chosen by the client to match answers to requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<u64>,
    /// The request.
    #[serde(flatten)]
    pub frame: ClientFrame,
}

impl From<ClientFrame> for ClientMessage {
    fn from(frame: ClientFrame) -> Self {
        Self { rid: None, frame }
    }
}

/// What a client can ask of a session.
///
/// Exhaustive on purpose: a server matches every request, and a new one
/// must fail to compile there rather than fall into a catch-all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Join the session (the first frame on a connection). Answered by `welcome`.
    Join {
        /// Display name; defaults to the name the authenticator gave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The last sequence number this client saw: the events after it follow
        /// the welcome, so a reconnecting client has no gap.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Seq>,
        /// The protocol version the client speaks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<u32>,
        /// How this connection edits the document: `thin` (text operations,
        /// the default) or `replica` (automerge sync in binary frames).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<ClientMode>,
        /// A thin client's document revision when it reconnects: instead of the
        /// files, it gets the changes since (`text_catchup`) to rebase its
        /// pending edits on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rev: Option<Revision>,
    },
    /// Leave the session for good (closing the connection only goes offline).
    Leave,
    /// Keeps the connection from being swept as stale. Answered by `heartbeat_ack`.
    Heartbeat,
    /// Set one's own presence.
    Presence(PresenceUpdate),
    /// Change the session (host only).
    UpdateSession {
        /// New title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// New language.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// New status (not `ended`: use `end_session`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<SessionStatus>,
        /// When a scheduled session closes now (to extend or shorten it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closes_at: Option<crate::time::Timestamp>,
    },
    /// End the session for everyone (host only).
    EndSession,
    /// Change a participant's role (host only).
    SetRole {
        /// Whose.
        participant: ParticipantId,
        /// The new role.
        role: Role,
    },
    /// Remove a participant; they cannot join again (host only).
    Kick {
        /// Whom.
        participant: ParticipantId,
        /// Also refuse newcomers from the addresses the participant is
        /// connected from, whoever they claim to be: a kicked guest cannot
        /// come back under a fresh identity from there. Current members
        /// connecting from those addresses are not affected.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ban_address: bool,
    },
    /// Post a message; with `anchor`, a code comment; with `reply_to`, a reply.
    ChatSend {
        /// The text.
        text: String,
        /// File and line for a code comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anchor: Option<CodeAnchor>,
        /// The message replied to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Seq>,
        /// The client's id for this message (1 to 64 characters): sending
        /// the same `cid` again posts nothing new and is acknowledged with
        /// the first post's sequence number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Change the text of one's own message.
    ChatEdit {
        /// Which message.
        message: Seq,
        /// The new text.
        text: String,
    },
    /// Delete one's own message (a host may delete any).
    ChatDelete {
        /// Which message.
        message: Seq,
    },
    /// Add the reaction, or remove it if this participant already has it.
    React {
        /// Which message.
        message: Seq,
        /// The reaction, usually one emoji.
        emoji: String,
    },
    /// A page of chat history. Answered by `chat_history`.
    ChatHistory {
        /// Messages before this sequence number; the newest if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Seq>,
        /// At most this many (capped by the server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Events after a sequence number. Answered by `events`.
    EventsSince {
        /// The last sequence number the client has.
        since: Seq,
        /// At most this many (capped by the server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Who has this file on screen. Answered by `viewers`.
    WhoIsViewing {
        /// The file's path.
        file: String,
    },
    /// Edit a file: an operation typed against revision `rev`. Answered by
    /// `text_ack`; everyone else gets a `text_op`.
    TextOp {
        /// The revision the operation was typed against.
        rev: Revision,
        /// The file.
        file: String,
        /// The operation (UTF-16 positions).
        op: TextOperation,
        /// The client's id for this operation, so a resend after a reconnect
        /// is recognised instead of applied twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oid: Option<String>,
        /// How the server breaks a tie between this operation's insert and a
        /// concurrent one at the same place: `history` (the default, what
        /// clients written before the rule existed expect) or `author`.
        #[serde(default, skip_serializing_if = "Ties::is_history")]
        ties: Ties,
    },
    /// Create a file.
    FileCreate {
        /// Its path.
        file: String,
        /// Its initial text.
        #[serde(default)]
        text: String,
    },
    /// Remove a file.
    FileRemove {
        /// Its path.
        file: String,
    },
    /// Share the output of a run of the session's code.
    RunOutput {
        /// Standard output.
        #[serde(default)]
        stdout: String,
        /// Standard error.
        #[serde(default)]
        stderr: String,
        /// Exit status; absent if the program was stopped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// The document's history after a revision, to replay. Answered by `versions`.
    History {
        /// Versions after this revision (0 for the start).
        #[serde(default)]
        after: Revision,
        /// At most this many (capped by the server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// A file's text at a revision. Answered by `text_at`.
    TextAt {
        /// The file.
        file: String,
        /// The revision.
        rev: Revision,
    },
    /// A fresh credential for this connection, before the one it connected
    /// with expires. Answered by `ack`, or an `error` (the old expiry stands).
    Authenticate {
        /// The new token, in the form the authenticator takes.
        token: String,
    },
}

impl ClientFrame {
    /// The frame's `type` on the wire (`join`, `text_op`, ...), for logs
    /// and metrics.
    pub const fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave => "leave",
            ClientFrame::Heartbeat => "heartbeat",
            ClientFrame::Presence(_) => "presence",
            ClientFrame::UpdateSession { .. } => "update_session",
            ClientFrame::EndSession => "end_session",
            ClientFrame::SetRole { .. } => "set_role",
            ClientFrame::Kick { .. } => "kick",
            ClientFrame::ChatSend { .. } => "chat_send",
            ClientFrame::ChatEdit { .. } => "chat_edit",
            ClientFrame::ChatDelete { .. } => "chat_delete",
            ClientFrame::React { .. } => "react",
            ClientFrame::ChatHistory { .. } => "chat_history",
            ClientFrame::EventsSince { .. } => "events_since",
            ClientFrame::WhoIsViewing { .. } => "who_is_viewing",
            ClientFrame::TextOp { .. } => "text_op",
            ClientFrame::FileCreate { .. } => "file_create",
            ClientFrame::FileRemove { .. } => "file_remove",
            ClientFrame::RunOutput { .. } => "run_output",
            ClientFrame::History { .. } => "history",
            ClientFrame::TextAt { .. } => "text_at",
            ClientFrame::Authenticate { .. } => "authenticate",
        }
    }

    /// A plain `join`: the authenticator's name, no catch-up, a thin client.
    pub fn join() -> Self {
        ClientFrame::Join {
            name: None,
            since: None,
            protocol: Some(PROTOCOL_VERSION),
            mode: None,
            rev: None,
        }
    }
}

/// How a connection edits the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMode {
    /// Sends text operations (JSON); the default.
    Thin,
    /// Holds its own automerge document and syncs in binary frames.
    Replica,
}

/// The `type` tags of [`ClientFrame`], to tell an unknown type from a malformed frame.
const CLIENT_FRAME_TYPES: [&str; 22] = [
    "join",
    "leave",
    "heartbeat",
    "presence",
    "update_session",
    "end_session",
    "set_role",
    "kick",
    "chat_send",
    "chat_edit",
    "chat_delete",
    "react",
    "chat_history",
    "events_since",
    "who_is_viewing",
    "text_op",
    "file_create",
    "file_remove",
    "run_output",
    "history",
    "text_at",
    "authenticate",
];

/// A participant with their current presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantState {
    /// Who.
    #[serde(flatten)]
    pub participant: Participant,
    /// Still a member: not left and not kicked. Former members are listed so that
    /// their old messages can show a name.
    pub present: bool,
    /// Their presence (`offline` when not connected).
    pub presence: PresenceView,
}

/// How the server breaks ties when it rebases a thin client's operation
/// over concurrent changes that insert at the same place. The client must
/// transform the server's operations over its pending ones by the same rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ties {
    /// The change already in the history goes first (protocol 1 as first
    /// published; what a client that sends no `ties` gets).
    #[default]
    History,
    /// The insert of the author who [goes first](crate::ot::inserts_first)
    /// comes first, whatever arrived first: runs typed at one spot by
    /// several people stay contiguous.
    Author,
}

impl Ties {
    /// Whether this is the default rule (left out on the wire).
    pub fn is_history(&self) -> bool {
        *self == Ties::History
    }
}

/// Why the server is closing a connection. Sent in a `goodbye` frame just before
/// it closes; adapters map it to a WebSocket close code with [`CloseReason::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// The participant left.
    Left,
    /// A host removed the participant.
    Kicked,
    /// The session ended.
    SessionEnded,
    /// Nothing arrived, heartbeats included, within the stale timeout.
    Stale,
    /// The client did not read its frames fast enough; it should reconnect and
    /// catch up with `since`.
    SlowConsumer,
    /// The server is shutting down; reconnect later.
    ServerShutdown,
    /// The client kept sending faster than allowed after being told.
    RateLimited,
    /// The credential the connection was opened with expired and was not
    /// refreshed with `authenticate`; reconnect with a new one.
    TokenExpired,
    /// The client sent a WebSocket message over the size limit, which the
    /// WebSocket layer refused unread. No `goodbye` precedes this one: the
    /// WebSocket close (code 1009) alone says it.
    MessageTooBig,
}

impl CloseReason {
    /// The reason's wire spelling (`left`, `kicked`, ...), also the text of
    /// the WebSocket close frame.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Left => "left",
            CloseReason::Kicked => "kicked",
            CloseReason::SessionEnded => "session_ended",
            CloseReason::Stale => "stale",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::MessageTooBig => "message_too_big",
        }
    }

    /// The WebSocket close code for this reason (RFC 6455 private range, except
    /// the standard 1001 for shutdown and 1009 for a message too big).
    pub const fn close_code(self) -> u16 {
        match self {
            CloseReason::Left => 4000,
            CloseReason::Kicked => 4001,
            CloseReason::SessionEnded => 4002,
            CloseReason::Stale => 4003,
            CloseReason::SlowConsumer => 4004,
            CloseReason::ServerShutdown => 1001,
            CloseReason::RateLimited => 4008,
            CloseReason::TokenExpired => 4005,
            CloseReason::MessageTooBig => 1009,
        }
    }

    /// Whether a client should reconnect after this.
    pub const fn may_reconnect(self) -> bool {
        matches!(
            self,
            CloseReason::Stale
                | CloseReason::SlowConsumer
                | CloseReason::ServerShutdown
                | CloseReason::RateLimited
                | CloseReason::TokenExpired
                | CloseReason::MessageTooBig
        )
    }
}

/// What the server sends a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerFrame {
    /// The answer to `join`: everything needed to draw the session.
    Welcome {
        /// Echo of the join's request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The protocol version the server speaks.
        protocol: u32,
        /// The session.
        session: SessionInfo,
        /// The joining participant's id.
        you: ParticipantId,
        /// Everyone, with presence.
        participants: Vec<ParticipantState>,
        /// The newest event's sequence number.
        last_seq: Seq,
        /// The document: revision, language and, for a thin client joining
        /// afresh, every file's text.
        document: DocumentSnapshot,
    },
    /// Something happened; sent to every joined connection.
    Event {
        /// The event.
        event: Event,
    },
    /// A participant's presence changed (coalesced: the latest state only).
    Presence {
        /// Whose.
        participant: ParticipantId,
        /// Their presence now.
        presence: PresenceView,
    },
    /// A request with a `rid` succeeded.
    Ack {
        /// The request's id.
        rid: u64,
        /// The event the request produced, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
    },
    /// A request failed; nothing changed.
    Error {
        /// The request's id, when it had one and it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// Stable code.
        code: ErrorCode,
        /// For people.
        message: String,
    },
    /// Answer to `chat_history`.
    ChatHistory {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// Messages, oldest first.
        messages: Vec<ChatMessage>,
        /// Older messages exist.
        has_more: bool,
    },
    /// Answer to `events_since`, and the catch-up after a `join` with `since`.
    Events {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// Events, oldest first.
        events: Vec<Event>,
        /// More events follow: ask again from the last one.
        has_more: bool,
    },
    /// Answer to `who_is_viewing`.
    Viewers {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The file asked about.
        file: String,
        /// Online participants whose viewport is on it.
        participants: Vec<ParticipantId>,
    },
    /// Answer to `heartbeat`.
    HeartbeatAck {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The server's clock.
        server_time: Timestamp,
    },
    /// The server is about to close this connection.
    Goodbye {
        /// Why.
        reason: CloseReason,
    },
    /// Answer to `text_op`: the operation is applied as revision `rev`.
    TextAck {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The revision the operation became (or became before, for a resend).
        rev: Revision,
        /// The operation's id, as the client sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oid: Option<String>,
    },
    /// Someone else's edit, as revision `rev` (apply it on top of revision `rev - 1`).
    TextOp {
        /// The revision this edit made.
        rev: Revision,
        /// The file.
        file: String,
        /// The edit, rebased onto the server's history.
        op: TextOperation,
        /// Who made it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<ParticipantId>,
        /// The author's id for the operation, if a thin client made it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oid: Option<String>,
    },
    /// A file was created or removed, as revision `rev`.
    FileOp {
        /// The revision.
        rev: Revision,
        /// The file.
        file: String,
        /// `create` (with `text`) or `remove`.
        #[serde(flatten)]
        change: Change,
        /// Who did it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<ParticipantId>,
    },
    /// After a `join` with `rev`: every change since, as `text_op` and
    /// `file_op` frames, oldest first; `rev` is the revision they lead to.
    TextCatchup {
        /// The document's revision after them.
        rev: Revision,
        /// The changes.
        ops: Vec<ServerFrame>,
    },
    /// Answer to `history`.
    Versions {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// Versions, oldest first.
        versions: Vec<Version>,
        /// More follow.
        has_more: bool,
    },
    /// Answer to `text_at`.
    TextAt {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The file.
        file: String,
        /// The revision.
        rev: Revision,
        /// The text then; absent if the file did not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

impl ServerFrame {
    /// The frame's `type` on the wire (`welcome`, `text_ack`, ...), for logs
    /// and metrics.
    pub const fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "welcome",
            ServerFrame::Event { .. } => "event",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Error { .. } => "error",
            ServerFrame::ChatHistory { .. } => "chat_history",
            ServerFrame::Events { .. } => "events",
            ServerFrame::Viewers { .. } => "viewers",
            ServerFrame::HeartbeatAck { .. } => "heartbeat_ack",
            ServerFrame::Goodbye { .. } => "goodbye",
            ServerFrame::TextAck { .. } => "text_ack",
            ServerFrame::TextOp { .. } => "text_op",
            ServerFrame::FileOp { .. } => "file_op",
            ServerFrame::TextCatchup { .. } => "text_catchup",
            ServerFrame::Versions { .. } => "versions",
            ServerFrame::TextAt { .. } => "text_at",
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and
        // every value is plain data.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"type":"error","code":"internal","message":"{e}"}}"#))
    }
}

/// A frame that could not be read. The connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Larger than the limit; not parsed at all.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The frame's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, not an object, no `type`, or fields of the wrong shape.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A `type` this server does not know.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A binary frame where none is expected.
    #[error("binary frames carry document sync only")]
    UnexpectedBinary,
    /// The server holds as many bytes of incoming messages as it takes: a
    /// message sent in parts was refused at its first part, unread.
    #[error("no room for a message of {len} bytes now; send it again later")]
    Busy {
        /// The message's size.
        len: usize,
    },
    /// A message in parts whose last part did not come in time (ten
    /// seconds and one for every 64 KiB): dropped, with the room it held.
    #[error("the message's parts did not all arrive in time")]
    PartsTooSlow,
}

impl ProtocolError {
    /// The code this error travels as.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtocolError::Malformed(_) | ProtocolError::UnexpectedBinary => {
                ErrorCode::MalformedFrame
            }
            ProtocolError::UnknownType(_) => ErrorCode::UnknownFrameType,
            ProtocolError::Busy { .. } => ErrorCode::ServerBusy,
            ProtocolError::PartsTooSlow => ErrorCode::RequestTimeout,
        }
    }
}

/// The request id of a text frame, read without decoding the rest: what a
/// refusal that does not read the frame (the rate limit) still answers with,
/// so the client knows which request was dropped. `None` for a frame over
/// `max_bytes`, one that is not JSON, or one without a `rid`.
pub fn request_id(text: &str, max_bytes: usize) -> Option<u64> {
    if text.len() > max_bytes {
        return None;
    }
    serde_json::from_str::<Probe<'_>>(text).ok()?.rid
}

/// Reads a client's text frame.
///
/// On failure returns the error together with the frame's `rid` when one could
/// be read, so the error frame can still be matched to its request.
///
/// ```
/// use collab_wire::protocol::{decode_client_frame, ClientFrame, ProtocolError};
///
/// let msg = decode_client_frame(r#"{"type":"heartbeat","rid":7}"#, 1024).unwrap();
/// assert_eq!(msg.rid, Some(7));
/// assert_eq!(msg.frame, ClientFrame::Heartbeat);
///
/// let (rid, err) = decode_client_frame(r#"{"type":"teleport","rid":8}"#, 1024).unwrap_err();
/// assert_eq!(rid, Some(8));
/// assert!(matches!(err, ProtocolError::UnknownType(t) if t == "teleport"));
/// ```
pub fn decode_client_frame(
    text: &str,
    max_bytes: usize,
) -> Result<ClientMessage, (Option<u64>, ProtocolError)> {
    if text.len() > max_bytes {
        return Err((
            None,
            ProtocolError::TooLarge {
                len: text.len(),
                max: max_bytes,
            },
        ));
    }
    // Most frames are well formed: a light first read finds the type and the
    // rid without building a tree, then the frame is read directly. Only frames
    // the first read cannot make sense of take the slower path below, which
    // tells what is wrong. (Reading `ClientMessage` alone would accept an
    // integer `type` as a variant index, and an array as a struct.)
    if let Ok(probe) = serde_json::from_str::<Probe<'_>>(text) {
        let rid = probe.rid;
        let Some(kind) = probe.kind else {
            return Err((
                rid,
                ProtocolError::Malformed("missing string field `type`".into()),
            ));
        };
        if !CLIENT_FRAME_TYPES.contains(&kind.as_ref()) {
            return Err((rid, ProtocolError::UnknownType(truncate(&kind, 64))));
        }
        return serde_json::from_str(text)
            .map_err(|e| (rid, ProtocolError::Malformed(e.to_string())));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (None, ProtocolError::Malformed(e.to_string())))?;
    let Some(object) = value.as_object() else {
        return Err((
            None,
            ProtocolError::Malformed("a frame is a JSON object".into()),
        ));
    };
    let rid = object.get("rid").and_then(serde_json::Value::as_u64);
    let Some(kind) = object.get("type").and_then(serde_json::Value::as_str) else {
        return Err((
            rid,
            ProtocolError::Malformed("missing string field `type`".into()),
        ));
    };
    if !CLIENT_FRAME_TYPES.contains(&kind) {
        return Err((rid, ProtocolError::UnknownType(truncate(kind, 64))));
    }
    // Read from the text, not the tree: building the tree kept only the last
    // of two equal keys, so `{"type":"heartbeat","type":"leave"}` would act as
    // a leave. The direct read refuses a repeated key instead.
    serde_json::from_str(text).map_err(|e| (rid, ProtocolError::Malformed(e.to_string())))
}

/// The type and request id of a frame, read without the rest.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    rid: Option<u64>,
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests;
