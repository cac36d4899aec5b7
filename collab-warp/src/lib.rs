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
use std::sync::{Arc, Mutex};

use collab_server::http::api::{self, Api, ApiResponse};
use collab_server::http::transport::{
    is_message_too_large, pump_with_keepalive, WireIn, WireOut, SUBPROTOCOL,
};
use collab_server::{Connection, Hub};
use futures::{future, SinkExt, StreamExt, TryStreamExt};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection};

pub use collab_server::HttpConfig;

/// The client address [`serve`] attaches to each request.
#[derive(Debug, Clone, Copy)]
struct ClientSocket(SocketAddr);

/// A WebSocket upgrade of a collab route that [`serve`] took from hyper
/// before warp saw the request, so that [`routes`] can finish it with the
/// configured socket buffers: warp's own `Ws` cannot set the read buffer, and the
/// WebSocket library's default (128 KiB, zero-filled before every read)
/// costs a third of a busy server's CPU.
#[derive(Clone)]
struct UpgradeSlot(Arc<Mutex<Option<OnUpgrade>>>);

impl UpgradeSlot {
    fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whether `request` is a WebSocket upgrade for a collab session, whose
/// upgrade [`serve`] keeps for [`routes`] (other upgrades stay with warp).
fn is_collab_upgrade<B>(request: &hyper::Request<B>) -> bool {
    let upgrade = request
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade && request.uri().path().contains("/ws/session/")
}

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
            if is_collab_upgrade(&req) {
                let upgrade = hyper::upgrade::on(&mut req);
                req.extensions_mut()
                    .insert(UpgradeSlot(Arc::new(Mutex::new(Some(upgrade)))));
            }
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

    let ws = warp::path!("ws" / "session" / String)
        .and(warp::get())
        .and(warp::ws())
        .and(api.clone())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(socket)
        .and(warp::ext::optional::<UpgradeSlot>())
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
    upgrade: Ws,
    api: Api,
    headers: HeaderMap,
    query: Option<String>,
    socket: Option<SocketAddr>,
    slot: Option<UpgradeSlot>,
) -> Response {
    let accepted = api::accept_websocket(&api, &id, &headers, query.as_deref(), socket).await;
    let conn = match accepted {
        Ok(conn) => conn,
        Err(refusal) => return reply(refusal),
    };
    let keepalive = api.config().keepalive;
    // Nothing larger than the protocol takes is ever buffered.
    let max = api.hub().max_message_bytes();
    let mut reply = match slot.as_ref().and_then(UpgradeSlot::take) {
        // Under [`serve`]: finished here, with the configured buffers.
        Some(on_upgrade) => {
            let config = WebSocketConfig::default()
                .max_message_size(Some(max))
                .max_frame_size(Some(max))
                .read_buffer_size(api.config().read_buffer_bytes)
                .write_buffer_size(api.config().write_buffer_bytes);
            tokio::spawn(async move {
                // A client that went away before the upgrade completed
                // drops `conn`, which leaves the session.
                if let Ok(upgraded) = on_upgrade.await {
                    let io = hyper_util::rt::TokioIo::new(upgraded);
                    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config));
                    drive_raw(socket.await, conn, keepalive).await;
                }
            });
            switching_protocols(&headers)
        }
        // Mounted in a server of the host's own: warp's upgrade, with its
        // default buffers.
        None => {
            let upgrade = upgrade.max_message_size(max).max_frame_size(max);
            upgrade
                .on_upgrade(move |socket| drive(socket, conn, keepalive))
                .into_response()
        }
    };
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

/// [`drive`] for a socket upgraded under [`serve`].
async fn drive_raw<S>(socket: WebSocketStream<S>, conn: Connection, keepalive: std::time::Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
    use tokio_tungstenite::tungstenite::{Message as Raw, Utf8Bytes};
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|msg| {
        future::ready(match msg {
            Ok(Raw::Text(text)) => Some(WireIn::Text(text.as_str().to_owned())),
            Ok(Raw::Binary(bytes)) => Some(WireIn::Binary(bytes.to_vec())),
            Ok(Raw::Pong(_)) => Some(WireIn::Pong),
            // Answered by the WebSocket layer itself.
            Ok(Raw::Ping(_)) | Ok(Raw::Frame(_)) => None,
            Err(e) if is_message_too_large(&e) => Some(WireIn::TooLarge),
            Ok(Raw::Close(_)) | Err(_) => Some(WireIn::Close),
        })
    });
    let outgoing = sink.with(|out: WireOut| {
        future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(match out {
            // The room's one copy of the text, shared: checked as UTF-8,
            // not copied.
            WireOut::Text(text) => Raw::Text(
                Utf8Bytes::try_from(text.bytes()).unwrap_or_else(|_| text.as_str().into()),
            ),
            WireOut::Binary(bytes) => Raw::binary(bytes),
            WireOut::Ping => Raw::Ping(Default::default()),
            WireOut::Close { code, reason } => Raw::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })),
        }))
    });
    pump_with_keepalive(
        conn,
        Box::pin(incoming),
        Box::pin(outgoing),
        Some(keepalive),
    )
    .await;
}

async fn drive(socket: WebSocket, conn: Connection, keepalive: std::time::Duration) {
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|msg| {
        future::ready(match msg {
            Ok(m) if m.is_text() => m.to_str().ok().map(|t| WireIn::Text(t.to_owned())),
            Ok(m) if m.is_binary() => Some(WireIn::Binary(m.into_bytes().to_vec())),
            Ok(m) if m.is_close() => Some(WireIn::Close),
            Ok(m) if m.is_pong() => Some(WireIn::Pong),
            Ok(_) => None,
            Err(e) if is_message_too_large(&e) => Some(WireIn::TooLarge),
            Err(_) => Some(WireIn::Close),
        })
    });
    let outgoing = sink.with(|out: WireOut| {
        future::ready(Ok::<_, warp::Error>(match out {
            // warp's own message takes a `String`: a copy per recipient
            // here, which the raw path above avoids.
            WireOut::Text(text) => Message::text(text.as_str()),
            WireOut::Binary(bytes) => Message::binary(bytes),
            WireOut::Ping => Message::ping(Vec::new()),
            WireOut::Close { code, reason } => Message::close_with(code, reason),
        }))
    });
    pump_with_keepalive(
        conn,
        Box::pin(incoming),
        Box::pin(outgoing),
        Some(keepalive),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, upgrade: Option<&str>) -> hyper::Request<()> {
        let mut builder = hyper::Request::get(path);
        if let Some(upgrade) = upgrade {
            builder = builder.header("upgrade", upgrade);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_collab_upgrades_are_kept_from_warp() {
        assert!(is_collab_upgrade(&request(
            "/ws/session/abc",
            Some("websocket")
        )));
        assert!(is_collab_upgrade(&request(
            "/collab/ws/session/abc",
            Some("WebSocket")
        )));
        assert!(!is_collab_upgrade(&request("/ws/session/abc", None)));
        assert!(!is_collab_upgrade(&request(
            "/chat/socket",
            Some("websocket")
        )));
        assert!(!is_collab_upgrade(&request(
            "/api/v1/sessions",
            Some("h2c")
        )));
    }
}
