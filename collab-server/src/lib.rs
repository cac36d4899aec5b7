//! # collab-server
//!
//! The tokio driver of collab. [`collab_core`] decides what every frame does
//! and reads no clock; this crate runs it:
//!
//! - [`Hub`] owns the live sessions, one task each, loads and saves them
//!   through a [`Store`], and hands each WebSocket a [`Connection`];
//! - the traits at the edges, each with an implementation for tests, from
//!   [`collab_edges`] (re-exported here): [`Authenticator`] (with
//!   [`GuestAuthenticator`] and [`TokenAuthenticator`]), [`Access`],
//!   [`Store`] ([`MemoryStore`]), [`Clock`] ([`ManualClock`],
//!   [`TokioClock`]) and [`Backplane`];
//! - [`http`], the layer in front of the hub: the one HTTP API
//!   ([`http::api`]), the socket pump an adapter runs for each WebSocket and
//!   the HTTP helpers ([`http::transport`]), and the accept loop with
//!   connection caps and header timeouts ([`http::accept`]).
//!
//! collab-axum and collab-warp mount all of it into a web framework.
//!
//! ```
//! use collab_server::{Hub, GuestAuthenticator};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let auth = GuestAuthenticator::random().expect("randomness");
//! let guest = auth.issue().expect("randomness");
//! let hub = Hub::new(auth);
//! let who = hub.authenticate(Some(&guest.token)).await.unwrap();
//! let info = hub.create_session(&who, Default::default()).await.unwrap();
//! assert_eq!(info.created_by, who.user_id);
//! # }
//! ```

pub mod http;
pub mod hub;
pub mod telemetry;

/// The traits at the edges live in collab-edges, which the crates that
/// implement them depend on instead of this one; they are here too, under
/// the same paths.
pub use collab_edges::{auth, backplane, clock, outbound, store};

pub use auth::{
    Access, AuthError, Authenticator, DefaultAccess, Grant, GuestAuthenticator, GuestCredential,
    Identity, SessionRequest, TokenAuthenticator,
};
pub use backplane::{
    Backplane, BackplaneError, Lease, Letter, MalformedLetter, MemoryBackplane, MemoryNet, NodeId,
};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use http::accept::serve;
pub use http::{HttpConfig, OriginPolicy};
pub use hub::{
    AddressGuard, Caller, Connection, ConnectionReceiver, ConnectionSender, Hub, HubBuilder,
    HubConfig, HubError, HubStats, Outbound, Rate, ReadQuery, ReadRequest, Result, SessionRead,
    SessionView, StreamCursor, StreamItem, MAX_READ_WAIT,
};
pub use store::{MemoryStore, Store};
