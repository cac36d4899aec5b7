//! # collab-core
//!
//! The transport-agnostic core of collab: live collaboration sessions with
//! participants and roles, presence, chat and code comments, an event log, and a
//! shared document, under one permission model.
//!
//! - [`Session`] is a deterministic state machine: it takes connections, frames
//!   and the current time, and returns what to send to whom. It owns no socket
//!   and reads no clock, so tests drive many virtual clients on a virtual clock.
//! - It has no runtime: no tokio, no futures, no async traits. collab-server
//!   drives sessions on tokio (the `Hub`, one task per session) and holds
//!   the traits at the edges (authentication, storage, clocks).
//!
//! The wire protocol is in [`protocol`] (from collab-wire) and documented,
//! frame by frame, in `PROTOCOL.md` at the repository root.
//!
//! ```
//! use collab_core::{Identity, NewSession, Session, SessionConfig, SessionId, Timestamp, Transmit};
//! use collab_core::ids::ConnectionId;
//!
//! let host = Identity::new("u1", "Ann");
//! let id = SessionId::from_bytes([7; 16]);
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let mut session = Session::new(id, NewSession::default(), &host, SessionConfig::default(), now).unwrap();
//!
//! session.connect(ConnectionId(1), host, now).unwrap();
//! session.handle_text(ConnectionId(1), r#"{"type":"join","rid":1}"#, now);
//! session.handle_text(ConnectionId(1), r#"{"type":"chat_send","text":"hello"}"#, now);
//!
//! let mut kinds = Vec::new();
//! while let Some(Transmit::Send { frame, .. }) = session.poll_transmit() {
//!     kinds.push(serde_json::to_value(&frame).unwrap()["type"].as_str().unwrap().to_owned());
//! }
//! // The join event went out before this connection had joined; the welcome
//! // carries it. Ann's presence goes to the others only, and she is alone.
//! assert_eq!(kinds, ["welcome", "event"]);
//! ```

pub use collab_wire::{ot, parts, protocol};

pub mod chat;
pub mod document;
pub mod error;
pub mod events;
pub mod identity;
pub mod ids;
pub mod participant;
pub mod presence;
pub mod replica;
pub mod session;
pub mod store;
mod sync;
pub mod time;

pub use collab_wire::{
    BROWSER_CLIENT_MODULE, BROWSER_CODEMIRROR_MODULE, BROWSER_CONNECTION_MODULE, BROWSER_OT_MODULE,
    BROWSER_STATE_MODULE,
};

pub use chat::{ChatError, ChatLimits, ChatMessage, ChatPage, CodeAnchor};
pub use document::{
    Applied, Change, Document, DocumentError, DocumentSnapshot, Revision, RunOutput, SyncState,
    Version,
};
pub use error::{ErrorCode, Result, SessionError};
pub use events::{EndReason, Event, EventKind, EventPage};
pub use identity::{AuthError, Identity};
pub use ids::{ParticipantId, Seq, SessionId, UserId};
pub use ot::{Component, OtError, TextOperation};
pub use participant::{Action, Participant, Role};
pub use presence::{FileSelection, PresenceConfig, PresenceUpdate, PresenceView, Status, Viewport};
pub use protocol::{ClientFrame, ClientMessage, CloseReason, ServerFrame, Ties};
pub use replica::ReplicaClient;
pub use session::{
    NewSession, ReadPage, Session, SessionConfig, SessionInfo, SessionStatus, SessionUpdate, Tally,
    Transmit,
};
pub use store::{
    apply_changes, check_changes, DocumentWrite, SessionChanges, SessionRecord, SessionSummary,
    StoreError, StoredMember, StoredMembership, StoredSession,
};
pub use time::Timestamp;
