//! Who is connecting: an [`Identity`] as the host application vouches for
//! it, or why a credential was refused ([`AuthError`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{SessionId, UserId};
use crate::participant::Role;
use crate::time::Timestamp;

/// A user as the host application vouches for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The host application's user id. The same id joining again is the same participant.
    pub user_id: UserId,
    /// The name to show unless the participant picks one when joining.
    pub name: String,
    /// A role the host application grants (for example from a token claim). When
    /// absent, the session's creator is a Host and everyone else gets the
    /// session's default role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// When the credential stops being valid. A session closes the connection
    /// then (`token_expired`) unless the client sends a fresh credential with
    /// an `authenticate` frame first. `None`: it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Session-scoped grants: when set, the credential is good for these
    /// sessions only (by id), each in the role named, and creates none. See
    /// the server's `DefaultAccess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<BTreeMap<String, Role>>,
}

impl Identity {
    /// An identity with no granted role.
    pub fn new(user_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            user_id: UserId::new(user_id),
            name: name.into(),
            role: None,
            expires_at: None,
            sessions: None,
        }
    }

    /// The same identity with a granted role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// The same identity, good only for `session`, in `role` there (more
    /// sessions may be added the same way).
    pub fn with_session_grant(mut self, session: &SessionId, role: Role) -> Self {
        self.sessions
            .get_or_insert_with(BTreeMap::new)
            .insert(session.as_str().to_owned(), role);
        self
    }

    /// The same identity, valid until `at`.
    pub fn with_expiry(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was given and anonymous access is off. Caller's mistake.
    #[error("credentials required")]
    Missing,
    /// The credential is not valid (unknown, bad signature, wrong audience). Caller's mistake.
    #[error("invalid credentials")]
    Invalid,
    /// The credential has expired or is not valid yet. The caller should refresh it.
    #[error("credentials expired or not yet valid")]
    Expired,
    /// The authenticator itself failed (a key service is down). May be retried.
    #[error("authentication backend failed: {0}")]
    Backend(String),
}
