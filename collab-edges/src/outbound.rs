//! What a connection's socket is sent: what its session queues, and the
//! keepalive pings of the socket's own pump. The one type between the
//! session and the WebSocket; each framework adapter maps it to its own
//! message type in one place.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use collab_core::CloseReason;

/// What a connection's socket is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text frame, serialised once for all its recipients.
    Text(SharedText),
    /// A binary frame: an automerge sync message for a replica.
    Binary(Vec<u8>),
    /// A WebSocket ping, to keep the connection alive and find dead peers.
    /// The socket's pump sends it on its own clock; a session never queues
    /// one.
    Ping,
    /// The connection is closed with this reason's WebSocket close code
    /// ([`CloseReason::close_code`]) and name; nothing follows.
    Close(CloseReason),
}

/// A text frame's JSON, serialised once and shared by all its recipients.
/// Cloning it copies nothing, and an adapter hands [`SharedText::bytes`] to
/// its WebSocket as they are: a frame fanned out to a room is one
/// allocation, however many are in it.
///
/// ```
/// use collab_edges::outbound::SharedText;
/// let text = SharedText::from(r#"{"type":"event"}"#.to_owned());
/// let copy = text.clone();
/// assert_eq!(copy.as_str(), r#"{"type":"event"}"#);
/// assert_eq!(copy.bytes().as_ptr(), text.as_ptr(), "the same bytes");
/// ```
#[derive(Clone)]
pub struct SharedText {
    text: Arc<str>,
    /// The same memory as `text`, as the WebSocket libraries take it.
    bytes: Bytes,
}

/// Lets `Bytes` own an `Arc<str>` without copying it.
struct Owner(Arc<str>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl SharedText {
    /// The text, as a string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text's bytes, shared (UTF-8).
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }
}

impl From<Arc<str>> for SharedText {
    fn from(text: Arc<str>) -> Self {
        let bytes = Bytes::from_owner(Owner(Arc::clone(&text)));
        Self { text, bytes }
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        Arc::<str>::from(text).into()
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        Arc::<str>::from(text).into()
    }
}

impl Deref for SharedText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for SharedText {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for SharedText {}

impl fmt::Display for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}
