//! A host application with live collaboration, on warp: its own filters
//! beside collab's, accounts checked by JWT, sessions kept in SQLite.
//!
//! ```text
//! COLLAB_JWT_SECRET=<32+ random bytes> cargo run -p collab-warp --example warp_host_app
//! ```

use std::sync::Arc;

use collab_server::{HttpConfig, Hub, OriginPolicy};
use warp::Filter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("COLLAB_JWT_SECRET")
        .map_err(|_| "set COLLAB_JWT_SECRET to the key your login signs tokens with")?;
    let auth =
        collab_jwt::JwtAuthenticator::hs256(secret.as_bytes()).issuer("https://login.example.com");
    let mut http = HttpConfig::default();
    http.origins = OriginPolicy::List(vec!["https://app.example.com".into()]);
    http.share_url = Some("https://app.example.com/room/{id}".into());
    let store = collab_sqlite::SqliteStore::open("collab.db")?;
    let hub = Hub::builder(Arc::new(auth)).store(Arc::new(store)).build();
    let home = warp::path::end().map(|| "your app's own routes go here");
    let app = collab_warp::routes(hub.clone(), http.clone()).or(home);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        hub.shutdown().await;
    };
    collab_warp::serve(listener, app, http, shutdown).await;
    Ok(())
}
