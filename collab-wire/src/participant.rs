//! Participants, their roles, and the one permission matrix.

use serde::{Deserialize, Serialize};

use crate::ids::{ParticipantId, UserId};
use crate::time::Timestamp;

/// What a participant may do in a session. See [`Role::permits`] for the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the session: changes roles, kicks, updates and ends it. The creator is a Host.
    Host,
    /// Edits the document and chats.
    Editor,
    /// Watches and chats; cannot edit the document or change the session.
    Viewer,
}

/// Something a participant asks to do; [`Role::permits`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Change the session document.
    EditDocument,
    /// Change the session's title, language or status.
    UpdateSession,
    /// End the session for everyone.
    EndSession,
    /// Give another participant a different role.
    ChangeRole,
    /// Remove another participant from the session.
    Kick,
    /// Post a chat message or a code comment.
    PostMessage,
    /// React to a message with an emoji.
    React,
    /// Delete someone else's message (everyone may delete their own).
    DeleteAnyMessage,
    /// Set one's own presence: cursor, viewport, typing, status.
    SetPresence,
    /// Take the whole session away as one document: every edit, message,
    /// run and event (`GET /api/v1/sessions/{id}/export`).
    ExportSession,
}

impl Action {
    /// Every action, for exhaustive tests and documentation.
    pub const ALL: [Action; 10] = [
        Action::EditDocument,
        Action::UpdateSession,
        Action::EndSession,
        Action::ChangeRole,
        Action::Kick,
        Action::PostMessage,
        Action::React,
        Action::DeleteAnyMessage,
        Action::SetPresence,
        Action::ExportSession,
    ];
}

impl Action {
    /// The action's wire spelling (`edit_document`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::EditDocument => "edit_document",
            Action::UpdateSession => "update_session",
            Action::EndSession => "end_session",
            Action::ChangeRole => "change_role",
            Action::Kick => "kick",
            Action::PostMessage => "post_message",
            Action::React => "react",
            Action::DeleteAnyMessage => "delete_any_message",
            Action::SetPresence => "set_presence",
            Action::ExportSession => "export_session",
        }
    }
}

impl Action {
    /// The action in plain words, for messages people read: "edit the
    /// document", "end the session".
    pub const fn in_words(self) -> &'static str {
        match self {
            Action::EditDocument => "edit the document",
            Action::UpdateSession => "change the session",
            Action::EndSession => "end the session",
            Action::ChangeRole => "change roles",
            Action::Kick => "remove participants",
            Action::PostMessage => "post messages",
            Action::React => "react to messages",
            Action::DeleteAnyMessage => "delete others' messages",
            Action::SetPresence => "share their presence",
            Action::ExportSession => "export the session",
        }
    }
}

impl Role {
    /// The role with its article, for messages people read: "a host",
    /// "an editor".
    pub const fn with_article(self) -> &'static str {
        match self {
            Role::Host => "a host",
            Role::Editor => "an editor",
            Role::Viewer => "a viewer",
        }
    }

    /// The role's wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// The one permission matrix. Every rule about who may do what is here.
    ///
    /// | action | Host | Editor | Viewer |
    /// |---|---|---|---|
    /// | edit document | yes | yes | no |
    /// | update / end / export session, change roles, kick, delete others' messages | yes | no | no |
    /// | post messages, react, set own presence | yes | yes | yes |
    ///
    /// ```
    /// use collab_wire::participant::{Action, Role};
    /// assert!(Role::Editor.permits(Action::EditDocument));
    /// assert!(!Role::Viewer.permits(Action::EditDocument));
    /// assert!(!Role::Editor.permits(Action::Kick));
    /// ```
    pub const fn permits(self, action: Action) -> bool {
        match action {
            Action::EditDocument => matches!(self, Role::Host | Role::Editor),
            Action::UpdateSession
            | Action::EndSession
            | Action::ChangeRole
            | Action::Kick
            | Action::DeleteAnyMessage
            | Action::ExportSession => matches!(self, Role::Host),
            Action::PostMessage | Action::React | Action::SetPresence => true,
        }
    }
}

/// A participant as everyone in the session sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Stable for the life of the session.
    pub id: ParticipantId,
    /// The host application's user behind this participant.
    pub user_id: UserId,
    /// Display name.
    pub name: String,
    /// A CSS colour (`#rrggbb`) distinct from the other current participants'.
    pub colour: String,
    /// What they may do.
    pub role: Role,
    /// When they first joined.
    pub joined_at: Timestamp,
}
