//! Run with: `cargo run -p interview-room` (then open the printed address).
//!
//! The collab example server: an interview room where people join a shared
//! session by link, chat, comment on lines of code and see each other's
//! presence. It mounts collab-axum into a plain axum app.
//!
//! Set `COLLAB_ADDR` to listen elsewhere than 127.0.0.1:8080, and
//! `COLLAB_DB` to keep sessions in another SQLite file than
//! `interview-room.db` (in the current directory). Sessions survive restarts:
//! whatever the server acknowledged is in that file.
//!
//! Anyone holding a session's link may join: the app uses
//! [`GuestAuthenticator`], where each browser makes up its own token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use collab_core::{GuestAuthenticator, Hub, HubConfig, TokioClock};
use collab_sqlite::SqliteStore;

mod page;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_DB: &str = "interview-room.db";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("COLLAB_ADDR")
        .unwrap_or_else(|_| DEFAULT_ADDR.into())
        .parse()?;
    let db = std::env::var("COLLAB_DB").unwrap_or_else(|_| DEFAULT_DB.into());
    let store = SqliteStore::open(&db)?;
    let hub = Hub::with_store(
        Arc::new(GuestAuthenticator),
        Arc::new(TokioClock::new()),
        HubConfig::default(),
        Arc::new(store),
    );
    let app = Router::new()
        .merge(page::routes())
        .merge(collab_axum::router(hub.clone()));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "interview room listening on http://{} (sessions kept in {db})",
        listener.local_addr()?
    );
    // Keystrokes are small frames: send each at once (TCP_NODELAY).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // With the client's address known, collab limits connections per address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        hub.shutdown().await;
    })
    .await?;
    Ok(())
}
