//! What a connection receives from its session, as the hub queues it for
//! the adapter to write.

use std::sync::Arc;

use collab_core::CloseReason;

/// What a connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text frame, serialised once for all its recipients.
    Text(Arc<str>),
    /// A binary frame: an automerge sync message for a replica.
    Binary(Vec<u8>),
    /// The session closed this connection; nothing follows.
    Close(CloseReason),
}
