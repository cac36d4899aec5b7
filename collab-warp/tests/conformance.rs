//! The conformance suite against collab-warp on a real socket.

use collab_core::{GuestAuthenticator, Hub};

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = collab_warp::routes(Hub::new(GuestAuthenticator));
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server());
