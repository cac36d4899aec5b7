//! # collab-edges
//!
//! The traits a host plugs into collab, each with an implementation for
//! tests, apart from the web server that drives them:
//!
//! - [`Authenticator`] (with [`GuestAuthenticator`] and
//!   [`TokenAuthenticator`]) says who a credential is, and [`Access`]
//!   ([`DefaultAccess`]) what they may do;
//! - [`Store`] ([`MemoryStore`]) keeps sessions;
//! - [`Clock`] ([`ManualClock`], [`TokioClock`], [`SystemClock`]) gives the
//!   time and the timers;
//! - [`Backplane`] ([`MemoryBackplane`]) joins processes that serve the same
//!   sessions, and [`Outbound`] is what a connection receives, as it crosses
//!   one.
//!
//! A crate that implements one (collab-sqlite, collab-redis, collab-jwt)
//! depends on this one and on collab-core only, not on HTTP; collab-server
//! drives them and re-exports everything here.
//!
//! ```
//! use collab_edges::{MemoryStore, Store};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let id = collab_core::SessionId::from_bytes([7; 16]);
//! assert!(store.load(&id).await.unwrap().is_none());
//! # });
//! ```

pub mod auth;
pub mod backplane;
pub mod clock;
pub mod outbound;
pub mod store;

pub use auth::{
    Access, AuthError, Authenticator, DefaultAccess, Grant, GuestAuthenticator, GuestCredential,
    Identity, SessionRequest, TokenAuthenticator,
};
pub use backplane::{
    Backplane, BackplaneError, Lease, Letter, MalformedLetter, MemoryBackplane, MemoryNet, NodeId,
};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use outbound::{Outbound, SharedText};
pub use store::{MemoryStore, Store};
