//! The layer in front of the [`Hub`](crate::Hub): what turns HTTP requests
//! and WebSockets into hub requests and connections. The hub knows nothing
//! of HTTP; the adapters (collab-axum, collab-warp) are glue over this layer.
//!
//! - [`api`]: every REST route, the event stream and the WebSocket
//!   admission, on the `http` types both adapters share;
//! - [`transport`]: the socket pump an adapter runs for each WebSocket, and
//!   the HTTP helpers (credentials, bodies, error responses, event streams);
//! - [`accept`]: the accept loop with connection caps and header timeouts;
//! - [`HttpConfig`]: every setting of this layer, once.

pub mod accept;
mod address;
pub mod api;
mod config;
pub mod transport;

pub use config::{HttpConfig, OriginPolicy};
