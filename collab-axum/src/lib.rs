//! # collab-axum
//!
//! Mounts a [`collab_server::Hub`] into an axum application: the WebSocket
//! endpoint of the collab protocol and the session REST API. Everything a
//! session decides lives in collab-core, and every route is answered by
//! [`collab_server::http::api`]; this crate only upgrades WebSockets and hands
//! axum's requests to the API.
//!
//! ```no_run
//! use collab_server::{GuestAuthenticator, Hub};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(GuestAuthenticator::random().expect("randomness"));
//! let http = collab_axum::HttpConfig::default();
//! let app = axum::Router::new().merge(collab_axum::router(hub, http.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // TCP_NODELAY, header timeouts, connection caps, and the client's
//! // address for the hub's per-address limits.
//! collab_axum::serve(listener, app, http, std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! Serve with [`serve`]: `axum::serve` sets no header timeout and caps no
//! connections, and without the client's address (`ConnectInfo`) the hub's
//! per-address limits are off. Behind a reverse proxy, list its address in
//! [`HttpConfig::trusted_proxies`]. Give the router and [`serve`] the same
//! [`HttpConfig`]: the router upgrades and answers with it, `serve` accepts
//! with it.
//!
//! The routes are those of [`collab_server::http::api`]: `GET /ws/session/{id}`
//! and everything under `/api/v1/`.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use collab_server::http::api::{self, Api, ApiResponse};
use collab_server::http::transport::{
    is_message_too_large, pump_with_keepalive, WireIn, SUBPROTOCOL,
};
use collab_server::outbound::Outbound;
use collab_server::{Connection, Hub};
use futures::{future, SinkExt, StreamExt};

pub use collab_server::HttpConfig;

/// Serves `app` on `listener` until `shutdown` completes: each connection
/// with TCP_NODELAY, a header timeout and a place under the connection caps
/// of `config`, and its peer address passed to the handlers (as
/// `ConnectInfo<SocketAddr>`), so the hub's per-address limits apply.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let make = move |peer: SocketAddr| {
        let app = app.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            tower_service::Service::call(&mut app, req)
        })
    };
    collab_server::serve(listener, make, config, shutdown).await;
}

/// The collab routes over `hub`, served with `config`, ready to `merge` or
/// `nest` into the host application's router.
pub fn router<S>(hub: Hub, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ws/session/{id}", get(websocket))
        .route("/api/v1/{*path}", any(rest))
        .with_state(Api::new(hub, config))
}

/// The TCP peer, when the app is served with [`serve`] or
/// `into_make_service_with_connect_info::<SocketAddr>()`.
fn socket(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn reply(response: ApiResponse) -> Response {
    response.map(Body::new)
}

async fn rest(State(api): State<Api>, request: Request) -> Response {
    let peer = socket(request.extensions());
    match api::handle(&api, request, peer).await {
        Some(response) => reply(response),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn websocket(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    upgrade: WebSocketUpgrade,
) -> Response {
    let accepted =
        api::accept_websocket(&api, &id, &headers, query.as_deref(), socket(&extensions)).await;
    let conn = match accepted {
        Ok(conn) => conn,
        Err(refusal) => return reply(refusal),
    };
    let config = api.config();
    let keepalive = config.keepalive;
    // Nothing larger than the protocol takes is ever buffered.
    let max = api.hub().max_message_bytes();
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| drive(socket, conn, keepalive))
}

/// The WebSocket message for what a connection is sent: this adapter's one
/// mapping from [`Outbound`]. A text frame keeps the room's one copy of its
/// bytes, shared by every recipient's message.
pub fn message(out: Outbound) -> Message {
    match out {
        // Checked as UTF-8, not copied: `SharedText` is a `str`.
        Outbound::Text(text) => Message::Text(
            Utf8Bytes::try_from(text.bytes()).unwrap_or_else(|_| text.as_str().into()),
        ),
        Outbound::Binary(bytes) => Message::Binary(bytes.into()),
        Outbound::Ping => Message::Ping(Bytes::new()),
        Outbound::Close(reason) => Message::Close(Some(CloseFrame {
            code: reason.close_code(),
            reason: Utf8Bytes::from_static(reason.as_str()),
        })),
    }
}

/// What a client's WebSocket message is to the pump; `None` for what the
/// WebSocket layer answers itself.
fn wire_in(msg: Result<Message, axum::Error>) -> Option<WireIn> {
    match msg {
        Ok(Message::Text(text)) => Some(WireIn::Text(text.as_str().to_owned())),
        Ok(Message::Binary(bytes)) => Some(WireIn::Binary(bytes.to_vec())),
        Ok(Message::Pong(_)) => Some(WireIn::Pong),
        Ok(Message::Ping(_)) => None,
        Err(e) if is_message_too_large(&e) => Some(WireIn::TooLarge),
        Ok(Message::Close(_)) | Err(_) => Some(WireIn::Close),
    }
}

async fn drive(socket: WebSocket, conn: Connection, keepalive: std::time::Duration) {
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|msg| future::ready(wire_in(msg)));
    let outgoing = sink.with(|out| future::ready(Ok::<_, axum::Error>(message(out))));
    pump_with_keepalive(
        conn,
        Box::pin(incoming),
        Box::pin(outgoing),
        Some(keepalive),
    )
    .await;
}
