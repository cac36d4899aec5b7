//! The conformance suite against collab-axum on a real socket.

use collab_axum::HttpConfig;
use collab_server::Hub;

async fn server(hub: Hub, http: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().merge(collab_axum::router(hub, http.clone()));
    // The documented way to serve: TCP_NODELAY, timeouts, connection caps
    // and client addresses.
    tokio::spawn(collab_axum::serve(
        listener,
        app,
        http,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server);
