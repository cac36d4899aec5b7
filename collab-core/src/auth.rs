//! Who is connecting: the [`Authenticator`] trait turns a credential into an [`Identity`].

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;
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
}

impl Identity {
    /// An identity with no granted role.
    pub fn new(user_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            user_id: UserId::new(user_id),
            name: name.into(),
            role: None,
            expires_at: None,
        }
    }

    /// The same identity with a granted role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
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

/// Turns a credential (a bearer token, or none) into an identity.
///
/// Implement it over your application's sessions or tokens; collab-axum ships a
/// JWT implementation. Keep it quick: it runs on every connection.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `token` (`None` when the client sent none).
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError>;
}

/// Tokens known in advance, each naming an identity. For tests, demos and
/// applications that hand out their own opaque tokens.
///
/// ```
/// # tokio_test_block_on(async {
/// use collab_core::{Authenticator, Identity, TokenAuthenticator};
/// let auth = TokenAuthenticator::new();
/// auth.insert("secret-1", Identity::new("u1", "Ann"));
/// assert_eq!(auth.authenticate(Some("secret-1")).await.unwrap().name, "Ann");
/// assert!(auth.authenticate(Some("guess")).await.is_err());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct TokenAuthenticator {
    tokens: RwLock<HashMap<String, Identity>>,
}

impl TokenAuthenticator {
    /// An authenticator that knows no token yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` as `identity` from now on.
    pub fn insert(&self, token: impl Into<String>, identity: Identity) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.into(), identity);
    }

    /// Stops accepting `token`.
    pub fn revoke(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .ok_or(AuthError::Invalid)
    }
}

/// Lets anyone in: the token is an id the browser made up and keeps (in
/// sessionStorage, say), so a refresh is the same participant; the name comes
/// from the `join` frame.
///
/// This is anonymous access, and a host application turns it on only by
/// choosing this authenticator: anyone who holds a session's link can join.
/// Tokens must be 8 to 128 characters of `A-Z a-z 0-9 - _`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use collab_core::{Authenticator, GuestAuthenticator};
/// let id = GuestAuthenticator.authenticate(Some("tab-5f3a9c1e")).await.unwrap();
/// assert_eq!(id.user_id.0, "guest:tab-5f3a9c1e");
/// assert!(GuestAuthenticator.authenticate(Some("x")).await.is_err());
/// assert!(GuestAuthenticator.authenticate(None).await.is_err());
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestAuthenticator;

#[async_trait]
impl Authenticator for GuestAuthenticator {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        let valid = (8..=128).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(AuthError::Invalid);
        }
        Ok(Identity::new(format!("guest:{token}"), "Guest"))
    }
}
