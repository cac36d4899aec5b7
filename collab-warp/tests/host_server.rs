//! The collab routes mounted in warp's own server rather than
//! [`collab_warp::serve`]: the WebSocket is made from the upgrade warp's
//! server hands over, and must behave the same. Only scenarios that need
//! nothing from `serve` (client addresses, header timeouts, connection caps)
//! run here.

use collab_server::Hub;
use collab_warp::HttpConfig;

async fn server(hub: Hub, http: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = collab_warp::routes(hub, http.clone());
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    format!("http://{addr}")
}

collab_conformance::conformance_tests!(@each server;
    join_and_chat, token_in_the_subprotocol, bad_frames_keep_the_connection,
    kick_and_end_close_with_codes, presence_reaches_the_others,
    a_megabyte_paste_reaches_everyone, oversized_messages_are_refused_unread);
