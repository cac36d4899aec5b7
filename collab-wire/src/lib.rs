//! # collab-wire
//!
//! What travels between a collab client and server, and nothing else: the
//! JSON frames of the WebSocket protocol ([`protocol`]), the stable error and
//! close codes ([`codes`], [`protocol::CloseReason`]), ids, timestamps, the
//! data the frames carry (participants, presence, chat, events, document
//! versions), and the text-operation algebra thin clients edit with
//! ([`ot`]). It depends on serde and thiserror only, so a client, a load
//! generator or another server can speak the protocol without the rest of
//! collab.
//!
//! PROTOCOL.md at the repository root documents every frame with an example.
//!
//! ```
//! use collab_wire::protocol::{decode_client_frame, ClientFrame};
//! use collab_wire::ot::TextOperation;
//!
//! let msg = decode_client_frame(r#"{"type":"text_op","rid":3,"file":"main","rev":0,"op":["hi"]}"#, 1024).unwrap();
//! let ClientFrame::TextOp { op, .. } = msg.frame else { unreachable!() };
//! assert_eq!(op.apply("").unwrap(), "hi");
//!
//! let mut same = TextOperation::new();
//! same.insert("hi");
//! assert_eq!(op, same);
//! ```

pub mod chat;
pub mod codes;
pub mod document;
pub mod events;
pub mod ids;
pub mod ot;
pub mod participant;
pub mod parts;
pub mod presence;
pub mod protocol;
pub mod session;
pub mod time;

/// The browser side of the thin-client protocol: a dependency-free ES module
/// with the text-operation algebra and the client state machine
/// (`TextOperation`, `DocumentClient`, `diffToOperation`). Serve it to pages
/// that edit without automerge, for example at `/collab-ot.mjs`. Its limits
/// and the error codes it acts on are checked against this crate's by the
/// `browser_module` test.
pub const BROWSER_OT_MODULE: &str = include_str!("../js/collab-ot.mjs");

/// The browser client library: a dependency-free ES module (`CollabClient`)
/// that connects with a token, reconnects with back-off and resumes, joins,
/// and keeps the session's participants, presence, document (through
/// `collab-ot.mjs`, which it imports as `./collab-ot.mjs`), chat and events.
/// Serve it beside [`BROWSER_OT_MODULE`], [`BROWSER_CONNECTION_MODULE`] and
/// [`BROWSER_STATE_MODULE`], for example at `/collab-client.mjs`.
pub const BROWSER_CLIENT_MODULE: &str = include_str!("../js/collab-client.mjs");

/// One WebSocket to a session, as the client library opens it (`Connection`):
/// JSON frames, request ids matched to answers, a rate limit under the
/// server's, a heartbeat. [`BROWSER_CLIENT_MODULE`] imports it as
/// `./collab-connection.mjs`: serve it beside it, for example at
/// `/collab-connection.mjs`.
pub const BROWSER_CONNECTION_MODULE: &str = include_str!("../js/collab-connection.mjs");

/// How the client library's session state takes in events and presence
/// (`applyEvent`, `applyPresence`): pure functions, no socket.
/// [`BROWSER_CLIENT_MODULE`] imports it as `./collab-state.mjs`: serve it
/// beside it, for example at `/collab-state.mjs`.
pub const BROWSER_STATE_MODULE: &str = include_str!("../js/collab-state.mjs");

/// The CodeMirror 6 binding of the client library: sends an editor's changes,
/// shows others' edits outside the undo history, draws others' cursors. It
/// imports `@codemirror/state` and `@codemirror/view` by name (an import map
/// resolves them) and `./collab-ot.mjs`. Serve it beside the others, for
/// example at `/collab-codemirror.mjs`.
pub const BROWSER_CODEMIRROR_MODULE: &str = include_str!("../js/collab-codemirror.mjs");
