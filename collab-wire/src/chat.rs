//! Chat messages and code comments as they travel.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{ParticipantId, Seq};
use crate::time::Timestamp;

/// Where a code comment points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeAnchor {
    /// The file's path in the session document.
    pub file: String,
    /// The line the comment is on (1-based). It follows edits: text inserted
    /// above moves the comment down with its line.
    pub line: u32,
    /// Set by the server: the UTF-16 position of the start of the line the
    /// comment was placed on, moved along with every edit of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

/// One chat message or code comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The sequence number it was posted at; unique in the session.
    pub id: Seq,
    /// Who wrote it.
    pub author: ParticipantId,
    /// The text; empty once deleted.
    pub text: String,
    /// Set for a code comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<CodeAnchor>,
    /// The message this replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// The first message of the thread it belongs to (itself for a thread root).
    pub thread: Seq,
    /// Participants named with `@name` in the text.
    pub mentions: Vec<ParticipantId>,
    /// Emoji to the participants who reacted with it.
    pub reactions: BTreeMap<String, BTreeSet<ParticipantId>>,
    /// When it was posted.
    pub posted_at: Timestamp,
    /// When it was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// Soft-deleted: the message keeps its place in the thread, without its text.
    pub deleted: bool,
    /// The author's own id for the message (`chat_send`'s `cid`): the same
    /// `cid` from the same author posts once, so a client that lost an
    /// acknowledgement can send again safely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatPage {
    /// Messages in sequence order.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist before this page.
    pub has_more: bool,
}
