//! The conformance suite against collab-axum on a real socket.

use collab_core::{GuestAuthenticator, Hub};

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().merge(collab_axum::router(Hub::new(GuestAuthenticator)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server());
