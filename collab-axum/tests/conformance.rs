//! The conformance suite against collab-axum on a real socket.

use collab_core::{GuestAuthenticator, Hub};

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().merge(collab_axum::router(Hub::new(GuestAuthenticator)));
    // Served with the client's address, as a host app that wants
    // per-address connection limits does.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server());
