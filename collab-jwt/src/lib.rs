//! A JSON Web Token [`Authenticator`] for collab.
//!
//! The host application's login issues a signed JWT; the browser sends it when it
//! connects; [`JwtAuthenticator`] checks the signature and the time claims and
//! turns the token into an [`Identity`].
//!
//! Algorithms: HS256 (shared secret, [`JwtAuthenticator::hs256`]) and, from a PEM
//! public key, RS256 ([`JwtAuthenticator::rs256_pem`]), ES256
//! ([`JwtAuthenticator::es256_pem`]) and EdDSA/Ed25519
//! ([`JwtAuthenticator::eddsa_pem`]). Each authenticator accepts exactly one
//! algorithm: a token whose header names another one (including `none`) is refused.
//!
//! Claims read from the token:
//!
//! | claim  | meaning                                   | required                   |
//! |--------|-------------------------------------------|----------------------------|
//! | `sub`  | the user id                               | yes                        |
//! | `name` | display name (defaults to `sub`)          | no                         |
//! | `role` | `host`, `editor` or `viewer`, in every session | no                    |
//! | `sessions` | `{"<session id>": "<role>", ...}`: good for these sessions only, in these roles | no |
//! | `exp`  | expiry, unix seconds                      | yes, checked               |
//! | `nbf`  | not valid before, unix seconds            | no, checked when present   |
//! | `aud`  | audience                                  | checked when configured    |
//! | `iss`  | issuer                                    | checked when configured    |
//!
//! With the hub's default [`Access`](collab_edges::Access) policy
//! ([`DefaultAccess`](collab_edges::DefaultAccess)), a token with `sessions`
//! joins and reads only the sessions it names and creates none; a token whose
//! `role` is `editor` or `viewer` joins in that role but creates no session
//! (creating one makes its creator the host). A `sessions` claim scopes a
//! link handed to a candidate: `Claims::new(..).with_session(&id, Role::Editor)`.
//!
//! Failures map to [`AuthError`]: an expired or not-yet-valid token is
//! [`AuthError::Expired`] (the client should refresh it); anything else wrong
//! (signature, audience, issuer, algorithm, shape, a missing `sub`, an unknown role)
//! is [`AuthError::Invalid`]; no token at all is [`AuthError::Missing`] unless the
//! host turned on [anonymous access](JwtAuthenticator::allow_anonymous).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use collab_core::{AuthError, Role};
//! use collab_edges::{Authenticator};
//! use collab_jwt::{Claims, JwtAuthenticator};
//!
//! let secret = b"a-long-random-secret-shared-with-the-login-service";
//!
//! // What the host application's login does:
//! let claims = Claims::new("u42", Duration::from_secs(3600))
//!     .with_name("Ann")
//!     .with_role(Role::Editor)
//!     .with_audience("collab");
//! let token = JwtAuthenticator::issue_hs256(secret, &claims).unwrap();
//!
//! // What the collab server does on every connection:
//! let auth = JwtAuthenticator::hs256(secret).audience("collab");
//! let id = auth.authenticate(Some(&token)).await.unwrap();
//! assert_eq!(id.user_id.0, "u42");
//! assert_eq!(id.name, "Ann");
//! assert_eq!(id.role, Some(Role::Editor));
//!
//! // The session layer can drop the connection when the token runs out.
//! assert_eq!(auth.expires_at(&token), Some(claims.exp));
//!
//! assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
//! assert_eq!(auth.authenticate(Some("not-a-jwt")).await, Err(AuthError::Invalid));
//! # });
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use collab_core::{AuthError, Identity, Role, UserId};
use collab_edges::Authenticator;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The longest token [`JwtAuthenticator`] will look at, in bytes. Longer ones are
/// [`AuthError::Invalid`] without being decoded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The largest clock-skew allowance [`JwtAuthenticator::leeway`] accepts; larger
/// values are clamped to it.
pub const MAX_LEEWAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The clock-skew allowance a new [`JwtAuthenticator`] starts with.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A signing algorithm this crate supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256, a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The algorithm's `alg` header spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be loaded or a token could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The key is not a valid key for the algorithm (bad PEM, wrong key type, a
    /// private key where a public one was expected, ...).
    #[error("invalid {algorithm} key: {reason}")]
    InvalidKey {
        /// The algorithm the key was meant for.
        algorithm: Algorithm,
        /// What was wrong with it.
        reason: String,
    },
    /// Signing a token failed.
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// The claims of a token, as a host application's login would issue them.
///
/// Build one with [`Claims::new`] and the `with_*` methods, then sign it with
/// [`JwtAuthenticator::issue_hs256`] or [`JwtAuthenticator::issue_pem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The display name; the user id is shown when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The role granted in sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Session-scoped grants: the token is good for these sessions only (by
    /// id), each in the role named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<BTreeMap<String, Role>>,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Not valid before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The intended audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl Claims {
    /// Claims for user `sub`, issued now and expiring after `ttl`.
    pub fn new(sub: impl Into<String>, ttl: Duration) -> Self {
        let now = unix_now();
        Self {
            sub: sub.into(),
            name: None,
            role: None,
            sessions: None,
            exp: now.saturating_add(ttl.as_secs()),
            nbf: None,
            iat: Some(now),
            aud: None,
            iss: None,
        }
    }

    /// The same claims with a display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same claims granting `role`.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// The same claims, good for `session` in `role` (and for any other
    /// session added the same way), and for no other session.
    pub fn with_session(mut self, session: &collab_core::SessionId, role: Role) -> Self {
        self.sessions
            .get_or_insert_with(BTreeMap::new)
            .insert(session.as_str().to_owned(), role);
        self
    }

    /// The same claims for audience `aud`.
    pub fn with_audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = Some(aud.into());
        self
    }

    /// The same claims from issuer `iss`.
    pub fn with_issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// The same claims, not valid before `nbf` (unix seconds).
    pub fn with_not_before(mut self, nbf: u64) -> Self {
        self.nbf = Some(nbf);
        self
    }

    /// The same claims expiring at `exp` (unix seconds).
    pub fn with_expiry(mut self, exp: u64) -> Self {
        self.exp = exp;
        self
    }
}

/// A token that passed [`JwtAuthenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Who the token names.
    pub identity: Identity,
    /// When the token expires, unix seconds; `None` for an anonymous guest, who
    /// has no token.
    pub expires_at: Option<u64>,
}

/// Checks JWT bearer tokens; see the [crate docs](crate).
///
/// One authenticator accepts one algorithm and one key. The builder methods
/// narrow what it accepts further.
#[derive(Clone)]
pub struct JwtAuthenticator {
    algorithm: Algorithm,
    key: DecodingKey,
    audiences: Vec<String>,
    issuers: Vec<String>,
    leeway: Duration,
    allow_anonymous: bool,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out: for HS256 it is the secret.
        f.debug_struct("JwtAuthenticator")
            .field("algorithm", &self.algorithm)
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("leeway", &self.leeway)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// Accepts HS256 tokens signed with `secret`. Use at least 32 random bytes.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_key(Algorithm::HS256, DecodingKey::from_secret(secret))
    }

    /// Accepts RS256 tokens signed by the private half of `public_key_pem`
    /// (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`).
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Self, JwtError> {
        let algorithm = Algorithm::RS256;
        let key =
            DecodingKey::from_rsa_pem(public_key_pem).map_err(|e| key_error(algorithm, &e))?;
        // jsonwebtoken parses RSA keys only when verifying; parse now so a bad key
        // fails here rather than on every connection.
        use rsa::pkcs1::DecodeRsaPublicKey;
        rsa::RsaPublicKey::from_pkcs1_der(key.as_bytes()).map_err(|e| JwtError::InvalidKey {
            algorithm,
            reason: e.to_string(),
        })?;
        Ok(Self::with_key(algorithm, key))
    }

    /// Accepts ES256 tokens signed by the private half of `public_key_pem`
    /// (a P-256 `-----BEGIN PUBLIC KEY-----`).
    pub fn es256_pem(public_key_pem: &[u8]) -> Result<Self, JwtError> {
        let algorithm = Algorithm::ES256;
        let key = DecodingKey::from_ec_pem(public_key_pem).map_err(|e| key_error(algorithm, &e))?;
        probe_key(algorithm, &key)?;
        Ok(Self::with_key(algorithm, key))
    }

    /// Accepts EdDSA (Ed25519) tokens signed by the private half of
    /// `public_key_pem` (an Ed25519 `-----BEGIN PUBLIC KEY-----`).
    pub fn eddsa_pem(public_key_pem: &[u8]) -> Result<Self, JwtError> {
        let algorithm = Algorithm::EdDSA;
        let key = DecodingKey::from_ed_pem(public_key_pem).map_err(|e| key_error(algorithm, &e))?;
        probe_key(algorithm, &key)?;
        Ok(Self::with_key(algorithm, key))
    }

    fn with_key(algorithm: Algorithm, key: DecodingKey) -> Self {
        Self {
            algorithm,
            key,
            audiences: Vec::new(),
            issuers: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            allow_anonymous: false,
        }
    }

    /// Requires tokens to name `audience` in their `aud` claim (a token without
    /// `aud` is refused). Call it again to accept several audiences (a token naming
    /// any one of them passes). Without it, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Requires tokens to carry `issuer` in their `iss` claim (a token without
    /// `iss` is refused). Call it again to accept several issuers. Without it,
    /// `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// How much clock skew to forgive when checking `exp` and `nbf` (default
    /// [`DEFAULT_LEEWAY`], at most [`MAX_LEEWAY`]; whole seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY);
        self
    }

    /// Whether a connection without a token gets in as a guest with a random id
    /// (default: no, it gets [`AuthError::Missing`]). An empty token counts as
    /// none. A token that is present but bad is refused either way.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The algorithm this authenticator accepts.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `token` and returns the identity with the token's expiry.
    pub fn verify(&self, token: Option<&str>) -> Result<Verified, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            if !self.allow_anonymous {
                return Err(AuthError::Missing);
            }
            return Ok(Verified {
                identity: guest_identity()?,
                expires_at: None,
            });
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Invalid);
        }

        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation())
            .map_err(map_error)?;
        let claims = data.claims;
        let sub = claims
            .sub
            .filter(|s| !s.trim().is_empty())
            .ok_or(AuthError::Invalid)?;
        let exp = claims
            .exp
            .and_then(NumericDate::into_secs)
            .ok_or(AuthError::Invalid)?;
        let name = claims
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| sub.clone());
        Ok(Verified {
            identity: Identity {
                user_id: UserId::new(sub),
                name,
                role: claims.role,
                expires_at: Some(collab_core::Timestamp::from_millis(
                    exp.saturating_mul(1_000),
                )),
                sessions: claims.sessions,
            },
            expires_at: Some(exp),
        })
    }

    /// The `exp` of `token` in unix seconds, if the token is valid now; `None`
    /// otherwise. The session layer can use it to drop a connection whose token
    /// ran out unless the client refreshed it.
    pub fn expires_at(&self, token: &str) -> Option<u64> {
        self.verify(Some(token)).ok().and_then(|v| v.expires_at)
    }

    /// Signs `claims` with HS256 and `secret`: what a host application's login
    /// does to hand a user a token. Also handy in tests and demos.
    pub fn issue_hs256(secret: &[u8], claims: &Claims) -> Result<String, JwtError> {
        sign(Algorithm::HS256, &EncodingKey::from_secret(secret), claims)
    }

    /// Signs `claims` with `algorithm` and a PEM private key (PKCS#8, or PKCS#1
    /// for RSA); for HS256 the PEM bytes are used as the secret. What a host
    /// application's login does, with an asymmetric key.
    pub fn issue_pem(
        algorithm: Algorithm,
        private_key_pem: &[u8],
        claims: &Claims,
    ) -> Result<String, JwtError> {
        let key = match algorithm {
            Algorithm::HS256 => Ok(EncodingKey::from_secret(private_key_pem)),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_key_pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_key_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_key_pem),
        }
        .map_err(|e| key_error(algorithm, &e))?;
        sign(algorithm, &key, claims)
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(self.algorithm.to_jwt());
        let mut required = vec!["exp", "sub"];
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        if self.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            // jsonwebtoken only compares `aud` when present: require it too.
            required.push("aud");
            v.set_audience(&self.audiences);
        }
        if !self.issuers.is_empty() {
            required.push("iss");
            v.set_issuer(&self.issuers);
        }
        v.set_required_spec_claims(&required);
        v
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        self.verify(token).map(|v| v.identity)
    }
}

/// The claims read back from a token; lenient in shape, checked by `verify`.
#[derive(Deserialize)]
struct TokenClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    sessions: Option<BTreeMap<String, Role>>,
    #[serde(default)]
    exp: Option<NumericDate>,
}

/// JWT `NumericDate`: integer or fractional seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(u64),
    Float(f64),
}

impl NumericDate {
    fn into_secs(self) -> Option<u64> {
        match self {
            NumericDate::Int(n) => Some(n),
            NumericDate::Float(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                // In range, checked above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(f.round() as u64)
            }
            NumericDate::Float(_) => None,
        }
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => AuthError::Expired,
        _ => AuthError::Invalid,
    }
}

fn key_error(algorithm: Algorithm, e: &jsonwebtoken::errors::Error) -> JwtError {
    JwtError::InvalidKey {
        algorithm,
        reason: e.to_string(),
    }
}

/// Builds a verifier for `key`, which parses EC and Ed keys, and reports a bad one.
fn probe_key(algorithm: Algorithm, key: &DecodingKey) -> Result<(), JwtError> {
    jsonwebtoken::crypto::verify("", b"", key, algorithm.to_jwt())
        .map(|_| ())
        .map_err(|e| key_error(algorithm, &e))
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Claims) -> Result<String, JwtError> {
    jsonwebtoken::encode(&Header::new(algorithm.to_jwt()), claims, key)
        .map_err(|e| JwtError::Signing(e.to_string()))
}

fn guest_identity() -> Result<Identity, AuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Backend(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Identity::new(format!("guest:{hex}"), "Guest"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
