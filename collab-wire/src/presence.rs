//! Presence as it travels: status, cursors, viewports.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest file path accepted in a cursor or viewport, in bytes.
pub const MAX_FILE_PATH_BYTES: usize = 512;

/// Most files a participant's cursors are remembered in; the oldest is forgotten.
pub const MAX_CURSOR_FILES: usize = 64;

/// How present a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Did something within `idle_after`.
    Active,
    /// Quiet for `idle_after`, or said so.
    Idle,
    /// Quiet for `away_after`, or said so.
    Away,
    /// No open connection.
    Offline,
}

/// A caret or selection in one file. Offsets count UTF-16 code units, as browsers
/// do; `anchor == head` is a plain caret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSelection {
    /// The file's path in the session document.
    pub file: String,
    /// Where the selection started.
    pub anchor: u32,
    /// Where the caret is.
    pub head: u32,
}

/// The lines of a file a participant has on screen (inclusive, 1-based or
/// 0-based as the client chooses, but `first_line <= last_line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    /// The file on screen.
    pub file: String,
    /// First visible line.
    pub first_line: u32,
    /// Last visible line.
    pub last_line: u32,
}

/// What a client says about itself. Every field is optional: absent means unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    /// New caret or selection in a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<FileSelection>,
    /// New viewport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// Typing now (`true`) or stopped (`false`). `true` clears itself after the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// `active`, `idle` or `away`, said by the person (say "I'm away"). `idle` and
    /// `away` hold until their next activity. `offline` is the server's to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// A participant's presence as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceView {
    /// Current status.
    pub status: Status,
    /// Caret or selection in each file they have one in.
    pub cursors: Vec<FileSelection>,
    /// What they have on screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// Typing right now.
    pub typing: bool,
    /// Their last activity.
    pub last_active: Timestamp,
}
