//! The conformance suite against collab-warp on a real socket.

use collab_core::Hub;

async fn server(hub: Hub) -> String {
    // Small frames go out at once rather than waiting on the previous one's
    // acknowledgement (Nagle's algorithm). warp takes a plain listener, and
    // accepted sockets inherit TCP_NODELAY from it on Linux.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_nodelay(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = collab_warp::routes(hub);
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(server);
