//! Who is connecting: the [`Authenticator`] trait turns a credential into an
//! [`Identity`], and the [`Access`] trait decides what that identity may do
//! with which session.

use std::collections::HashMap;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use collab_core::ids::{base64url, SessionId, UserId};
use collab_core::Role;

pub use collab_core::{AuthError, Identity};

/// Turns a credential (a bearer token, or none) into an identity.
///
/// Implement it over your application's sessions or tokens; collab-axum ships a
/// JWT implementation. Keep it quick: it runs on every connection.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `token` (`None` when the client sent none).
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError>;

    /// Issues a fresh anonymous identity, for authenticators that let guests
    /// in (`POST /api/v1/guests`). `None` (the default): guests are not
    /// offered.
    fn issue_guest(&self) -> Option<Result<GuestCredential, AuthError>> {
        None
    }
}

/// Tokens known in advance, each naming an identity. For tests, demos and
/// applications that hand out their own opaque tokens.
///
/// ```
/// # tokio_test_block_on(async {
/// use collab_edges::{Authenticator, Identity, TokenAuthenticator};
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

/// A guest credential the server issued: give `token` to its holder only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestCredential {
    /// The bearer token. Whoever holds it is this guest.
    pub token: String,
    /// The user id the token stands for, as others in a session see it. It
    /// is part of the token, but the token cannot be made from it.
    pub user_id: UserId,
}

type HmacSha256 = Hmac<Sha256>;

/// Version tag at the start of every guest token, so the format can change.
const GUEST_TOKEN_TAG: &str = "g1";

/// Anonymous access with identities the server hands out: `POST
/// /api/v1/guests` (or [`GuestAuthenticator::issue`]) returns a fresh token,
/// which the browser keeps and sends from then on. A token is a random id
/// and an HMAC-SHA256 of it under the server's key; the user id others see
/// is `guest:` and the id, from which no token can be made. Anyone holding a
/// session's link may join it: a host application turns this on only by
/// choosing this authenticator.
///
/// Keep the key across restarts ([`GuestAuthenticator::new`]) or every guest,
/// hosts included, becomes someone new.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use collab_edges::{Authenticator, GuestAuthenticator};
/// let guests = GuestAuthenticator::new([7; 32]);
/// let issued = guests.issue().unwrap();
/// let id = guests.authenticate(Some(&issued.token)).await.unwrap();
/// assert_eq!(id.user_id, issued.user_id);
/// // What others see is no credential.
/// assert!(guests.authenticate(Some(&issued.user_id.0)).await.is_err());
/// assert!(guests.authenticate(Some("made-up-token")).await.is_err());
/// # });
/// ```
#[derive(Clone)]
pub struct GuestAuthenticator {
    key: [u8; 32],
}

impl std::fmt::Debug for GuestAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestAuthenticator").finish_non_exhaustive()
    }
}

impl GuestAuthenticator {
    /// Guests signed with `key`: 32 secret random bytes the server keeps.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Guests signed with a fresh random key: tokens are good until the
    /// process stops. For tests and servers that keep nothing.
    ///
    /// # Errors
    /// When the operating system has no random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    /// Guests signed with the key kept in the file at `path`, made (32
    /// random bytes, readable by this user only) the first time. A server
    /// keeps its key across restarts this way: with another key every
    /// guest, hosts included, would come back as someone new. With several
    /// processes, share one key instead (collab-redis's
    /// `RedisStore::shared_guest_key`).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("guest-key-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// use collab_edges::GuestAuthenticator;
    /// let path = dir.join("app.guest-key");
    /// let auth = GuestAuthenticator::from_key_file(&path)?;
    /// assert_eq!(std::fs::read(&path)?.len(), 32);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<_, std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the file cannot be read or made, or holds anything but 32
    /// bytes (it is left as it is: remove it to make a new key).
    pub fn from_key_file(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(bytes) => bytes.try_into().map(Self::new).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a 32-byte key; remove it to make a new one",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut options = std::fs::OpenOptions::new();
                // Two servers starting at once: one makes it, the other
                // fails here rather than overwrite it.
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                std::io::Write::write_all(&mut file, &key)?;
                file.sync_all()?;
                Ok(Self::new(key))
            }
            Err(e) => Err(e),
        }
    }

    /// A fresh guest identity.
    ///
    /// # Errors
    /// [`AuthError::Backend`] when the operating system has no random source.
    pub fn issue(&self) -> Result<GuestCredential, AuthError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| AuthError::Backend(e.to_string()))?;
        let id = base64url(&id);
        let token = format!("{GUEST_TOKEN_TAG}.{id}.{}", self.tag(&id));
        Ok(GuestCredential {
            token,
            user_id: UserId::new(format!("guest:{id}")),
        })
    }

    fn mac(&self, id: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(GUEST_TOKEN_TAG.as_bytes());
        mac.update(b".");
        mac.update(id.as_bytes());
        mac
    }

    fn tag(&self, id: &str) -> String {
        base64url(&self.mac(id).finalize().into_bytes())
    }

    /// The guest id in `token` if the server issued it.
    fn verify<'t>(&self, token: &'t str) -> Option<&'t str> {
        let mut parts = token.split('.');
        let (Some(GUEST_TOKEN_TAG), Some(id), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tag = decode_base64url(tag)?;
        if id.len() != 22 {
            return None;
        }
        self.mac(id).verify_slice(&tag).ok()?;
        Some(id)
    }
}

/// Inverse of [`base64url`]; `None` for anything else.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    Some(out)
}

#[async_trait]
impl Authenticator for GuestAuthenticator {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        let id = self.verify(token).ok_or(AuthError::Invalid)?;
        Ok(Identity::new(format!("guest:{id}"), "Guest"))
    }

    fn issue_guest(&self) -> Option<Result<GuestCredential, AuthError>> {
        Some(self.issue())
    }
}

/// What a request wants to do, for an [`Access`] policy to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRequest<'a> {
    /// Create a new session (whose host the caller becomes).
    Create,
    /// Read a session over REST (its code, participants, events) without a seat.
    Read(&'a SessionId),
    /// Join a session: open a WebSocket or a REST seat.
    Join(&'a SessionId),
}

/// A policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// Refused: the caller gets `forbidden` (403) and nothing changes.
    Deny,
    /// Allowed. With a role, a new member of the session gets it; without,
    /// the session decides (its creator is a host, others get its default).
    Allow {
        /// The role in that session.
        role: Option<Role>,
    },
}

/// Decides, per identity and session, who may create sessions, read them and
/// join them, and in which role. One hook for WebSockets and REST alike; the
/// session's own rules (bans, capacity, the permission matrix) still apply
/// after it.
///
/// Closures are policies too:
///
/// ```
/// use collab_edges::{Grant, Identity, SessionRequest};
/// use collab_core::Role;
/// // Everyone joins as a viewer, only "admin" creates.
/// let policy = |who: &Identity, request: SessionRequest<'_>| match request {
///     SessionRequest::Create if who.user_id.0 == "admin" => Grant::Allow { role: None },
///     SessionRequest::Create => Grant::Deny,
///     _ => Grant::Allow { role: Some(Role::Viewer) },
/// };
/// # fn takes(_: impl collab_edges::Access) {}
/// # takes(policy);
/// ```
#[async_trait]
pub trait Access: Send + Sync + 'static {
    /// May `who` do `request`?
    ///
    /// # Errors
    /// When the policy cannot decide (its backend is down): the request is
    /// refused with `unauthorized`, and the caller may try again.
    async fn authorize(
        &self,
        who: &Identity,
        request: SessionRequest<'_>,
    ) -> Result<Grant, AuthError>;
}

#[async_trait]
impl<F> Access for F
where
    F: Fn(&Identity, SessionRequest<'_>) -> Grant + Send + Sync + 'static,
{
    async fn authorize(
        &self,
        who: &Identity,
        request: SessionRequest<'_>,
    ) -> Result<Grant, AuthError> {
        Ok(self(who, request))
    }
}

/// The policy a hub (collab-server's `Hub`) uses unless told otherwise:
///
/// - An identity with session-scoped grants ([`Identity::sessions`], from a
///   JWT's `sessions` claim) reads and joins only those sessions, in the role
///   granted there, and creates none.
/// - Otherwise an identity whose authenticator granted a role other than
///   host (`editor`, `viewer`) may not create sessions: creating makes one
///   the host. It joins and reads in that role.
/// - Anyone else (no role, or host) may create, and may read and join any
///   session whose id they hold; the session then decides the role.
///
/// Whatever the policy, REST reads of code and participants are for the
/// session's current members (and its creator); others learn only the
/// session's public summary, and banned users nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultAccess;

#[async_trait]
impl Access for DefaultAccess {
    async fn authorize(
        &self,
        who: &Identity,
        request: SessionRequest<'_>,
    ) -> Result<Grant, AuthError> {
        Ok(default_grant(who, request))
    }
}

fn default_grant(who: &Identity, request: SessionRequest<'_>) -> Grant {
    match (&who.sessions, request) {
        (Some(_), SessionRequest::Create) => Grant::Deny,
        (Some(grants), SessionRequest::Read(id) | SessionRequest::Join(id)) => {
            match grants.get(id.as_str()) {
                Some(role) => Grant::Allow { role: Some(*role) },
                None => Grant::Deny,
            }
        }
        (None, SessionRequest::Create) => match who.role {
            None | Some(Role::Host) => Grant::Allow { role: None },
            Some(_) => Grant::Deny,
        },
        (None, _) => Grant::Allow { role: who.role },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key made on first start is the one read after a restart: a
    /// guest's token still names them. A file that is not a key is refused
    /// and left alone.
    #[test]
    fn a_kept_guest_key_outlives_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "collab-guest-key-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("room.db.guest-key");
        let first = GuestAuthenticator::from_key_file(&path).unwrap();
        let guest = first.issue().unwrap();
        let restarted = GuestAuthenticator::from_key_file(&path).unwrap();
        let who = block_on(restarted.authenticate(Some(&guest.token))).unwrap();
        assert_eq!(who.user_id, guest.user_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by this user only");
        }
        let elsewhere = GuestAuthenticator::random().unwrap();
        assert!(block_on(elsewhere.authenticate(Some(&guest.token))).is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(GuestAuthenticator::from_key_file(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn guest_tokens_are_issued_not_made_up() {
        let guests = GuestAuthenticator::new([1; 32]);
        let a = guests.issue().unwrap();
        let b = guests.issue().unwrap();
        assert_ne!(a.user_id, b.user_id);
        let id = block_on(guests.authenticate(Some(&a.token))).unwrap();
        assert_eq!(id.user_id, a.user_id);
        // Tampering with any part of the token, or using another key's, fails.
        let other = GuestAuthenticator::new([2; 32]);
        assert_eq!(
            block_on(other.authenticate(Some(&a.token))),
            Err(AuthError::Invalid)
        );
        let id_part = a.user_id.0.trim_start_matches("guest:");
        let b_id = b.user_id.0.trim_start_matches("guest:");
        let swapped = a.token.replace(id_part, b_id);
        assert!(block_on(guests.authenticate(Some(&swapped))).is_err());
        for bad in ["", "g1", "g1..", "g1.x.y", &a.user_id.0, id_part] {
            assert!(block_on(guests.authenticate(Some(bad))).is_err(), "{bad}");
        }
        assert_eq!(block_on(guests.authenticate(None)), Err(AuthError::Missing));
    }

    #[test]
    fn the_default_policy() {
        let session = SessionId::from_bytes([3; 16]);
        let other = SessionId::from_bytes([4; 16]);
        let anyone = Identity::new("u", "U");
        assert_eq!(
            default_grant(&anyone, SessionRequest::Create),
            Grant::Allow { role: None }
        );
        assert_eq!(
            default_grant(&anyone, SessionRequest::Join(&session)),
            Grant::Allow { role: None }
        );
        let editor = anyone.clone().with_role(Role::Editor);
        assert_eq!(default_grant(&editor, SessionRequest::Create), Grant::Deny);
        assert_eq!(
            default_grant(&editor, SessionRequest::Join(&session)),
            Grant::Allow {
                role: Some(Role::Editor)
            }
        );
        let scoped = anyone.with_session_grant(&session, Role::Viewer);
        assert_eq!(default_grant(&scoped, SessionRequest::Create), Grant::Deny);
        assert_eq!(
            default_grant(&scoped, SessionRequest::Join(&session)),
            Grant::Allow {
                role: Some(Role::Viewer)
            }
        );
        assert_eq!(
            default_grant(&scoped, SessionRequest::Read(&other)),
            Grant::Deny
        );
    }
}
