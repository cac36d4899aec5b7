//! # collab-redis
//!
//! Several processes serving the same sessions, with Redis as the only
//! shared part:
//!
//! - [`RedisStore`], a [`collab_edges::Store`] every process reaches. A
//!   save is one Lua script, so it is atomic; it checks the session's fence
//!   first, so a process that lost a session's ownership cannot write.
//! - [`RedisBackplane`], a [`collab_edges::Backplane`]: each session's
//!   owner holds a lease (a key with a time to live, taken and renewed only
//!   by compare-and-set scripts) whose epoch grows with every new owner, and
//!   each process has an inbox (a pub/sub channel) through which the others
//!   forward their clients' frames to the owner and its answers back.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use collab_redis::{RedisBackplane, RedisStore};
//! use collab_server::{Hub, NodeId, SystemClock, TokenAuthenticator};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "redis://127.0.0.1:6379";
//! let store = Arc::new(RedisStore::connect(url, "collab").await?);
//! // Each process with a name of its own.
//! let node = NodeId("10.0.0.7:8080".into());
//! let backplane = Arc::new(RedisBackplane::connect(url, "collab", node).await?);
//! let hub = Hub::builder(Arc::new(TokenAuthenticator::new()))
//!     .clock(Arc::new(SystemClock))
//!     .cluster(store, backplane)
//!     .build();
//! # let _ = hub;
//! # Ok(())
//! # }
//! ```
//!
//! # What Redis must be configured with
//!
//! A save is acknowledged when Redis answers it. Redis answers a write
//! before it reaches the disk unless its append-only file is synced on
//! every write, so for an acknowledged edit to survive Redis being killed
//! or the machine losing power, run it with
//!
//! ```text
//! appendonly yes
//! appendfsync always
//! ```
//!
//! With `appendfsync everysec` (Redis's default once `appendonly` is on) up
//! to a second of acknowledged writes can be lost when Redis dies; without
//! the append-only file, everything since the last snapshot.
//! [`RedisStore::connect`] reads the server's settings and logs a warning
//! when they are not these. Redis syncs once for all the writes it handled
//! in one turn of its event loop, so concurrent saves share a sync.
//!
//! Keys: everything lives under the prefix given (`collab` above), a
//! session's keys under `PREFIX:{SESSION}:…` (one hash slot per session).
//! The store keeps a session index under `PREFIX:sessions` and the
//! backplane a lease and an epoch counter per session. One Redis server
//! (with replicas for reads if you like) is what the scripts expect; Redis
//! Cluster is not supported, since a save also updates the index.

mod backplane;
mod store;

pub use backplane::RedisBackplane;
pub use store::RedisStore;

/// Why connecting to Redis failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("not a Redis URL: {0}")]
    Url(String),
    /// Redis could not be reached or refused the connection.
    #[error("cannot reach Redis: {0}")]
    Unreachable(String),
}

fn connect_error(e: redis::RedisError) -> ConnectError {
    ConnectError::Unreachable(e.to_string())
}

/// Opens a client for `url` and a connection that reconnects by itself.
async fn open(url: &str) -> Result<(redis::Client, redis::aio::ConnectionManager), ConnectError> {
    let client = redis::Client::open(url).map_err(|e| ConnectError::Url(e.to_string()))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(5)));
    let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(connect_error)?;
    Ok((client, conn))
}
