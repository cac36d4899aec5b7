//! A host application with live collaboration, on axum: its own routes
//! beside collab's, accounts checked by JWT, sessions kept in SQLite.
//!
//! ```text
//! COLLAB_JWT_SECRET=<32+ random bytes> cargo run -p collab-axum --example axum_host_app
//! ```
//!
//! Your login issues tokens (`collab_jwt::Claims`); the browser sends one
//! with every REST call (`Authorization: Bearer`) and WebSocket upgrade.

use std::sync::Arc;

use axum::routing::get;
use collab_server::{HttpConfig, Hub, OriginPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("COLLAB_JWT_SECRET")
        .map_err(|_| "set COLLAB_JWT_SECRET to the key your login signs tokens with")?;
    let auth =
        collab_jwt::JwtAuthenticator::hs256(secret.as_bytes()).issuer("https://login.example.com");
    let mut http = HttpConfig::default();
    // The pages that may connect and call the REST API from a browser.
    http.origins = OriginPolicy::List(vec!["https://app.example.com".into()]);
    http.share_url = Some("https://app.example.com/room/{id}".into());
    let store = collab_sqlite::SqliteStore::open("collab.db")?;
    let hub = Hub::builder(Arc::new(auth)).store(Arc::new(store)).build();
    let app = axum::Router::new()
        .route("/", get(|| async { "your app's own routes go here" }))
        .merge(collab_axum::router(hub.clone(), http.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        // Stores what is pending and says goodbye to every client.
        hub.shutdown().await;
    };
    collab_axum::serve(listener, app, http, shutdown).await;
    Ok(())
}
