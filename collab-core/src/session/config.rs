//! What a session is configured with, and what it hands its driver.

use super::*;

/// Settings of one session. The defaults suit an interview room.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Most participants online at once (default 10).
    pub capacity: usize,
    /// Role of a participant who is not the creator and whose identity grants none
    /// (default Editor).
    pub default_role: Role,
    /// Presence timing.
    pub presence: PresenceConfig,
    /// Chat limits.
    pub chat: ChatLimits,
    /// With nobody connected, a session that sees nothing happen for this long
    /// ends (default 30 minutes).
    pub expires_after: Duration,
    /// The longest expiry a creator may ask for (default 7 days).
    pub max_expires_after: Duration,
    /// Largest text frame accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Frames a connection may send a second, sustained (default 60).
    pub frames_per_second: u32,
    /// Frames a connection may send at once above the sustained rate (default 120).
    pub frame_burst: u32,
    /// Most connections open to the session at once, joined or not (default 50).
    pub max_connections: usize,
    /// Largest sync message accepted from a replica, in bytes (default
    /// 16 MiB: a replica's first sync after long offline work can be
    /// large). One larger than a WebSocket message travels in parts
    /// ([`crate::parts`]).
    pub max_sync_bytes: usize,
    /// Longest display name, in characters (default 64).
    pub max_name_chars: usize,
    /// Longest title, in characters (default 200).
    pub max_title_chars: usize,
    /// Most events one `events` page carries (default 500).
    pub max_events_page: usize,
    /// Largest document, all files together, in UTF-16 code units
    /// (default 4 Mi: a few megabytes of code).
    pub max_document_units: u64,
    /// Longest a scheduled session may stay open after it starts (default
    /// 24 hours).
    pub max_open_for: Duration,
    /// How long before a scheduled session closes everyone is warned
    /// (default 5 minutes).
    pub closing_warning: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            capacity: 10,
            default_role: Role::Editor,
            presence: PresenceConfig::default(),
            chat: ChatLimits::default(),
            expires_after: Duration::from_secs(30 * 60),
            max_expires_after: Duration::from_secs(7 * 24 * 3600),
            max_frame_bytes: 64 * 1024,
            max_sync_bytes: 16 * 1024 * 1024,
            frames_per_second: 60,
            frame_burst: 120,
            max_connections: 50,
            max_name_chars: 64,
            max_title_chars: 200,
            max_events_page: 500,
            max_document_units: 4 * 1024 * 1024,
            max_open_for: Duration::from_secs(24 * 3600),
            closing_warning: Duration::from_secs(5 * 60),
        }
    }
}

/// What [`Session::read`] returns to a polling client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadPage {
    /// Events after the reader's `since`, in order.
    pub events: Vec<Event>,
    /// More events or document changes follow: read again at once.
    pub has_more: bool,
    /// The next `since`: the newest event's sequence number, or the last
    /// one on this page when `has_more` says more follow.
    pub last_seq: Seq,
    /// The next `rev`: the document's revision now, or the last change's on
    /// this page when more changes follow.
    pub rev: Revision,
    /// Document changes after the reader's `rev`, as WebSocket clients get them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ServerFrame>,
    /// The session's status (a reader stops once it is `ended`).
    pub status: SessionStatus,
}

/// Something the driver must do: send a frame, or close a connection.
// Nearly every transmit is a `Send`; boxing its frame would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// Send `frame` to every connection in `to` (serialise it once).
    Send {
        /// Recipients.
        to: Vec<ConnectionId>,
        /// The frame.
        frame: ServerFrame,
    },
    /// Send a binary frame (an automerge sync message) to one replica.
    SendBinary {
        /// The replica's connection.
        to: ConnectionId,
        /// The sync message.
        bytes: Vec<u8>,
    },
    /// Check a client's new credential with the authenticator, then hand the
    /// outcome to [`Session::handle_authenticated`]. The session cannot do it
    /// itself: authenticators are async and may call out.
    Authenticate {
        /// The connection that sent it.
        conn: ConnectionId,
        /// The request id to answer with.
        rid: Option<u64>,
        /// The credential, as the client sent it.
        token: String,
    },
    /// Read the versions `1..=through` from the store, then hand them to
    /// [`Session::handle_history`](super::Session::handle_history): the
    /// session was loaded with only the later ones, and a read needs them.
    /// Asked once until answered.
    LoadHistory {
        /// The last revision to read.
        through: Revision,
    },
    /// Close the connection after what was queued for it; the session has
    /// already forgotten it.
    Close {
        /// Which connection.
        conn: ConnectionId,
        /// Why (sent before in a `goodbye` frame).
        reason: CloseReason,
    },
}
