//! # collab-warp
//!
//! Mounts a [`collab_server::Hub`] into a warp application: the same WebSocket
//! endpoint and REST API as collab-axum, as warp Filters. Everything a session
//! decides lives in collab-core, and every route is answered by
//! [`collab_server::http::api`]; this crate only upgrades WebSockets and hands
//! warp's requests to the API.
//!
//! ```no_run
//! use collab_server::{GuestAuthenticator, Hub};
//! use warp::Filter;
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(GuestAuthenticator::random().expect("randomness"));
//! let http = collab_warp::HttpConfig::default();
//! let app = collab_warp::routes(hub, http.clone()).or(warp::path("hello").map(|| "hi"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // TCP_NODELAY, header timeouts, connection caps, and the client's
//! // address for the hub's per-address limits.
//! collab_warp::serve(listener, app, http, std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! Serve with [`serve`]: `warp::serve` sets no header timeout and caps no
//! connections. Behind a reverse proxy, list its address in
//! [`HttpConfig::trusted_proxies`]. Give the routes and [`serve`] the same
//! [`HttpConfig`]: the routes upgrade and answer with it, `serve` accepts
//! with it.

use std::net::SocketAddr;

use collab_server::http::api::{self, Api, ApiResponse};
use collab_server::http::transport::{
    is_message_too_large, pump_with_keepalive, WireIn, SUBPROTOCOL,
};
use collab_server::outbound::Outbound;
use collab_server::{Connection, Hub};
use futures::{future, SinkExt, StreamExt, TryStreamExt};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::{Reply, Response};
use warp::ws::Ws;
use warp::{Filter, Rejection};

pub use collab_server::HttpConfig;

/// The client address [`serve`] attaches to each request.
#[derive(Debug, Clone, Copy)]
struct ClientSocket(SocketAddr);

/// Serves `filter` on `listener` until `shutdown` completes: each connection
/// with TCP_NODELAY, a header timeout and a place under the connection caps
/// of `config`, and its peer address passed to the collab routes, so the
/// hub's per-address limits apply.
pub async fn serve<F, R>(
    listener: tokio::net::TcpListener,
    filter: F,
    config: HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let make = move |peer: SocketAddr| {
        let service = warp::service(filter.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ClientSocket(peer));
            let mut service = service.clone();
            tower_service::Service::call(&mut service, req)
        })
    };
    collab_server::serve(listener, make, config, shutdown).await;
}

/// The collab routes as one filter, to `or` with the host application's:
/// `GET /ws/session/{id}` and everything under `/api/v1/`, as
/// [`collab_server::http::api`] lists them. Each route is boxed: nested filter
/// types overflow the compiler's trait solver in release builds.
pub fn routes(hub: Hub, config: HttpConfig) -> BoxedFilter<(Response,)> {
    let api = Api::new(hub, config);
    let api = warp::any().map(move || api.clone());
    // The TCP peer: warp's own when it serves, ours when [`serve`] does.
    let socket = warp::addr::remote()
        .and(warp::ext::optional::<ClientSocket>())
        .map(|remote: Option<SocketAddr>, served: Option<ClientSocket>| {
            remote.or(served.map(|s| s.0))
        });
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();

    // hyper's upgrade of the connection, kept before `warp::ws()` (which
    // checks the handshake headers) takes it: the socket is then made here,
    // with the configured buffers, which warp's own `Ws` cannot set (the
    // WebSocket library's default read buffer, 128 KiB zero-filled before
    // every read, costs a third of a busy server's CPU).
    let ws = warp::path!("ws" / "session" / String)
        .and(warp::get())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ws())
        .and(api.clone())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(socket)
        .then(websocket)
        .boxed();
    // Decided on the path alone, before the body (which can be read only
    // once) is taken: the host's own `/api/v1/...` routes still get theirs.
    let api_path = warp::path::full().and_then(|path: warp::path::FullPath| async move {
        if api::serves(path.as_str()) {
            Ok(path)
        } else {
            Err(warp::reject::not_found())
        }
    });
    let rest = warp::method()
        .and(api_path)
        .and(query)
        .and(warp::header::headers_cloned())
        .and(socket)
        .and(warp::body::stream())
        .and(api)
        .and_then(rest)
        .boxed();
    ws.or(rest).unify().boxed()
}

async fn rest<S, D>(
    method: warp::http::Method,
    path: warp::path::FullPath,
    query: Option<String>,
    headers: HeaderMap,
    socket: Option<SocketAddr>,
    body: S,
    api: Api,
) -> Result<Response, Rejection>
where
    S: futures::Stream<Item = Result<D, warp::Error>> + Send + 'static,
    D: bytes::Buf + Send,
{
    let uri = match query {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let mut request = warp::http::Request::new(request_body(body));
    *request.method_mut() = method;
    *request.headers_mut() = headers;
    *request.uri_mut() = uri.parse().map_err(|_| warp::reject::not_found())?;
    match api::handle(&api, request, socket).await {
        Some(response) => Ok(reply(response)),
        None => Err(warp::reject::not_found()),
    }
}

/// warp's body stream (`warp::body::stream()`) as the request body
/// [`collab_server::http::api`] reads, for a route of the host application
/// that reads its body as the API does ([`api::read_body`]).
pub fn request_body<S, D>(body: S) -> impl api::RequestBody
where
    S: futures::Stream<Item = Result<D, warp::Error>> + Send + 'static,
    D: bytes::Buf + Send,
{
    http_body_util::StreamBody::new(Box::pin(body.map_ok(http_body::Frame::data)))
}

fn reply(response: ApiResponse) -> Response {
    let (parts, body) = response.into_parts();
    let mut reply = match body.into_bytes() {
        Ok(bytes) => Response::new(bytes.into()),
        Err(stream) => warp::reply::stream(stream.into_stream()).into_response(),
    };
    *reply.status_mut() = parts.status;
    *reply.headers_mut() = parts.headers;
    reply
}

async fn websocket(
    id: String,
    upgrade: Option<OnUpgrade>,
    // Its filter checked the handshake headers; the upgrade is `upgrade`.
    _checked: Ws,
    api: Api,
    headers: HeaderMap,
    query: Option<String>,
    socket: Option<SocketAddr>,
) -> Response {
    let Some(upgrade) = upgrade else {
        // A server without HTTP/1 upgrades (HTTP/2, or hyper's upgrades
        // off) cannot carry a WebSocket.
        let body = api::error_body(
            "upgrade_required",
            "this connection cannot be upgraded to a WebSocket",
        );
        let body = warp::reply::with_header(body, "content-type", "application/json");
        return warp::reply::with_status(body, warp::http::StatusCode::UPGRADE_REQUIRED)
            .into_response();
    };
    let accepted = api::accept_websocket(&api, &id, &headers, query.as_deref(), socket).await;
    let conn = match accepted {
        Ok(conn) => conn,
        Err(refusal) => return reply(refusal),
    };
    let config = api.config();
    let keepalive = config.keepalive;
    // Nothing larger than the protocol takes is ever buffered.
    let max = api.hub().max_message_bytes();
    let socket_config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes);
    tokio::spawn(async move {
        // A client that went away before the upgrade completed drops
        // `conn`, which leaves the session.
        if let Ok(upgraded) = upgrade.await {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(socket_config));
            drive(socket.await, conn, keepalive).await;
        }
    });
    let mut reply = switching_protocols(&headers);
    // Name the subprotocol only when the client offered it, as the
    // WebSocket handshake requires.
    let offered = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').any(|e| e.trim() == SUBPROTOCOL));
    if offered {
        reply.headers_mut().insert(
            "sec-websocket-protocol",
            warp::http::HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    reply
}

/// The `101 Switching Protocols` answer to an upgrade request whose headers
/// warp's `ws()` filter has already checked.
fn switching_protocols(headers: &HeaderMap) -> Response {
    let key = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes())
        .unwrap_or_default();
    let mut response = Response::new(warp::hyper::body::Bytes::new().into());
    *response.status_mut() = warp::http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        "connection",
        warp::http::HeaderValue::from_static("upgrade"),
    );
    headers.insert("upgrade", warp::http::HeaderValue::from_static("websocket"));
    if let Ok(accept) = derive_accept_key(key).parse() {
        headers.insert("sec-websocket-accept", accept);
    }
    response
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
        Outbound::Binary(bytes) => Message::binary(bytes),
        Outbound::Ping => Message::Ping(Default::default()),
        Outbound::Close(reason) => Message::Close(Some(CloseFrame {
            code: CloseCode::from(reason.close_code()),
            reason: Utf8Bytes::from_static(reason.as_str()),
        })),
    }
}

/// What a client's WebSocket message is to the pump; `None` for what the
/// WebSocket layer answers itself.
fn wire_in(msg: Result<Message, tungstenite::Error>) -> Option<WireIn> {
    match msg {
        Ok(Message::Text(text)) => Some(WireIn::Text(text.as_str().to_owned())),
        Ok(Message::Binary(bytes)) => Some(WireIn::Binary(bytes.to_vec())),
        Ok(Message::Pong(_)) => Some(WireIn::Pong),
        Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => None,
        Err(e) if is_message_too_large(&e) => Some(WireIn::TooLarge),
        Ok(Message::Close(_)) | Err(_) => Some(WireIn::Close),
    }
}

async fn drive<S>(socket: WebSocketStream<S>, conn: Connection, keepalive: std::time::Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|msg| future::ready(wire_in(msg)));
    let outgoing = sink.with(|out| future::ready(Ok::<_, tungstenite::Error>(message(out))));
    pump_with_keepalive(
        conn,
        Box::pin(incoming),
        Box::pin(outgoing),
        Some(keepalive),
    )
    .await;
}
