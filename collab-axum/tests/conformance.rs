//! The conformance suite against collab-axum on a real socket.

use collab_core::Hub;

async fn server(hub: Hub) -> String {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Small frames go out at once rather than waiting on the previous one's
    // acknowledgement (Nagle's algorithm), as in any real-time server.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().merge(collab_axum::router(hub));
    // Served with the client's address, as a host app that wants
    // per-address connection limits does.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server);
