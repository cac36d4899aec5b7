//! The conformance suite against collab-warp on a real socket.

use collab_server::Hub;
use collab_warp::HttpConfig;

async fn server(hub: Hub, http: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = collab_warp::routes(hub, http.clone());
    // The documented way to serve: TCP_NODELAY, timeouts, connection caps
    // and client addresses.
    tokio::spawn(collab_warp::serve(
        listener,
        routes,
        http,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server);
