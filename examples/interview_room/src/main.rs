//! Run with: `cargo run -p interview-room` (then open the printed address).
//!
//! The collab example server: an interview room where people join a shared
//! session by link, chat, comment on lines of code and see each other's
//! presence. It mounts collab-axum into a plain axum app.
//!
//! Set `COLLAB_ADDR` to listen elsewhere than 127.0.0.1:8080.
//!
//! Anyone holding a session's link may join: the app uses
//! [`GuestAuthenticator`], where each browser makes up its own token.

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use collab_core::{GuestAuthenticator, Hub};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("COLLAB_ADDR")
        .unwrap_or_else(|_| DEFAULT_ADDR.into())
        .parse()?;
    let hub = Hub::new(GuestAuthenticator);
    let app = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .merge(collab_axum::router(hub.clone()));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "interview room listening on http://{}",
        listener.local_addr()?
    );
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

/// A page that says what this server offers and how to try it.
const INDEX: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>collab interview room</title>
<h1>collab interview room</h1>
<p>This server speaks the collab protocol (see PROTOCOL.md in the repository).</p>
<pre>
# create a session (any token of 8+ URL-safe characters identifies you)
curl -s -X POST http://HOST/api/v1/sessions -H 'Authorization: Bearer alice-0001' \
     -d '{"title":"Round 1","language":"python","code":"print(1)"}'

# read it
curl -s http://HOST/api/v1/sessions/ID -H 'Authorization: Bearer alice-0001'

# talk to it over a WebSocket: ws://HOST/ws/session/ID?token=alice-0001
# then send {"type":"join","name":"Alice"} and {"type":"chat_send","text":"hello"}
</pre>
"#;
