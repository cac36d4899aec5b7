//! The session harness of collab-core's tests (one `Session`, many virtual
//! clients, a virtual clock), and helpers for reading a hub connection.

#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use serde_json::Value;

#[path = "../../../collab-core/tests/common/mod.rs"]
mod session;

#[allow(unused_imports)] // hub and nodes tests use only the helpers below
pub use session::*;

/// The next frame of a hub connection as JSON, failing the test after 5 s.
pub async fn next_json(conn: &mut collab_server::Connection) -> Value {
    match tokio::time::timeout(Duration::from_secs(5), conn.recv())
        .await
        .expect("a frame in time")
    {
        Some(collab_server::Outbound::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads a hub connection until a frame of type `ty` arrives.
pub async fn until(conn: &mut collab_server::Connection, ty: &str) -> Value {
    loop {
        let f = next_json(conn).await;
        if f["type"] == ty {
            return f;
        }
    }
}
