//! # collab-warp
//!
//! Mounts a [`collab_core::Hub`] into a warp application: the same WebSocket
//! endpoint and REST API as collab-axum, as warp Filters. Everything a session
//! decides lives in collab-core; this crate only turns warp's types into the
//! core's and back.
//!
//! ```no_run
//! use collab_core::{GuestAuthenticator, Hub};
//! use warp::Filter;
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(GuestAuthenticator::random().expect("randomness"));
//! let app = collab_warp::routes(hub).or(warp::path("hello").map(|| "hi"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // TCP_NODELAY, header timeouts, connection caps, and the client's
//! // address for the hub's per-address limits.
//! collab_warp::serve(listener, app, collab_warp::HttpLimits::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! Serve with [`serve`]: `warp::serve` sets no header timeout and caps no
//! connections. Behind a reverse proxy, list its address in both
//! [`HttpLimits::trusted_proxies`] and
//! [`collab_core::HubConfig::trusted_proxies`].

use std::convert::Infallible;

use bytes::Bytes;
use collab_core::transport::{
    body_too_large, credential, decode_body, error_response, event_stream, pump_with_keepalive,
    JoinBody, WireIn, WireOut, MAX_BODY_BYTES, SUBPROTOCOL,
};
use collab_core::{
    Connection, Hub, HubError, Identity, NewSession, ReadQuery, SessionId, SessionUpdate,
};
use futures::{future, SinkExt, StreamExt};
use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection};

pub use collab_server::HttpLimits;

/// The client address [`serve`] attaches to each request.
#[derive(Debug, Clone, Copy)]
struct ClientSocket(std::net::SocketAddr);

/// Serves `filter` on `listener` until `shutdown` completes: each connection
/// with TCP_NODELAY, a header timeout and a place under the connection caps
/// of `limits`, and its peer address passed to the collab routes, so the
/// hub's per-address limits apply.
pub async fn serve<F, R>(
    listener: tokio::net::TcpListener,
    filter: F,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let make = move |peer: std::net::SocketAddr| {
        let service = warp::service(filter.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ClientSocket(peer));
            let mut service = service.clone();
            tower_service::Service::call(&mut service, req)
        })
    };
    collab_server::serve(listener, make, limits, shutdown).await;
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The collab routes as one filter, to `or` with the host application's.
///
/// Same paths as collab-axum: `GET /ws/session/{id}`, `POST /api/v1/sessions`,
/// `GET`/`PATCH /api/v1/sessions/{id}`, `POST /api/v1/sessions/{id}/end`,
/// `POST /api/v1/sessions/{id}/users`, `DELETE /api/v1/sessions/{id}/users/{user}`,
/// `POST /api/v1/guests` (a fresh guest identity),
/// `GET /api/v1/sessions/{id}/events` (long-poll), `GET
/// /api/v1/sessions/{id}/events/stream` (server-sent events),
/// `GET /api/v1/health`, `GET /api/v1/stats`.
///
/// Each route is boxed: a chain of a dozen nested filter types overflows
/// the compiler's trait solver in release builds, and boxing costs one
/// indirect call per route tried.
pub fn routes(hub: Hub) -> BoxedFilter<(Response,)> {
    let body_timeout = hub.body_timeout();
    let hub = warp::any().map(move || hub.clone());
    let auth = warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::query::<TokenQuery>())
        .map(
            |header: Option<String>, protocols: Option<String>, query: TokenQuery| {
                credential(
                    header.as_deref(),
                    protocols.as_deref(),
                    query.token.as_deref(),
                )
                .map(str::to_owned)
            },
        );
    let origin =
        warp::header::optional::<String>("origin").and(warp::header::optional::<String>("host"));
    // The client's address: the socket's peer, or the client a trusted
    // proxy forwards for.
    let peer = {
        let hub = hub.clone();
        warp::addr::remote()
            .and(warp::ext::optional::<ClientSocket>())
            .map(
                |remote: Option<std::net::SocketAddr>, served: Option<ClientSocket>| {
                    remote.or(served.map(|s| s.0))
                },
            )
            .and(warp::header::optional::<String>("forwarded"))
            .and(warp::header::optional::<String>("x-forwarded-for"))
            .and(hub)
            .map(
                |socket: Option<std::net::SocketAddr>,
                 forwarded: Option<String>,
                 x_forwarded_for: Option<String>,
                 hub: Hub| {
                    hub.client_address(
                        socket.map(|s| s.ip()),
                        forwarded.as_deref(),
                        x_forwarded_for.as_deref(),
                    )
                },
            )
            .boxed()
    };
    let body = warp::body::stream().then(move |stream| async move {
        tokio::time::timeout(body_timeout, read_body(stream))
            .await
            .unwrap_or(Err(HubError::BodyTimeout))
    });

    let ws = warp::path!("ws" / "session" / String)
        .and(warp::get())
        .and(warp::ws())
        .and(hub.clone())
        .and(auth)
        .and(origin)
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(peer.clone())
        .and_then(websocket)
        .boxed();
    let guest = warp::path!("api" / "v1" / "guests")
        .and(warp::post())
        .and(hub.clone())
        .and(peer.clone())
        .map(|hub: Hub, peer| match hub.issue_guest(peer) {
            Ok(issued) => warp::reply::with_header(
                json_ok(StatusCode::CREATED, &issued),
                "cache-control",
                "no-store",
            )
            .into_response(),
            Err(e) => failure(e),
        })
        .boxed();
    let create = warp::path!("api" / "v1" / "sessions")
        .and(warp::post())
        .and(hub.clone())
        .and(auth)
        .and(body)
        .and(peer.clone())
        .and_then(create)
        .boxed();
    let read = warp::path!("api" / "v1" / "sessions" / String)
        .and(warp::get())
        .and(hub.clone())
        .and(auth)
        .and(peer.clone())
        .and_then(read)
        .boxed();
    let update = warp::path!("api" / "v1" / "sessions" / String)
        .and(warp::patch())
        .and(hub.clone())
        .and(auth)
        .and(body)
        .and_then(update)
        .boxed();
    let end = warp::path!("api" / "v1" / "sessions" / String / "end")
        .and(warp::post())
        .and(hub.clone())
        .and(auth)
        .and_then(end)
        .boxed();
    let join = warp::path!("api" / "v1" / "sessions" / String / "users")
        .and(warp::post())
        .and(hub.clone())
        .and(auth)
        .and(body)
        .and(peer.clone())
        .and_then(join)
        .boxed();
    let leave = warp::path!("api" / "v1" / "sessions" / String / "users" / String)
        .and(warp::delete())
        .and(hub.clone())
        .and(auth)
        .and_then(leave)
        .boxed();
    let poll = warp::path!("api" / "v1" / "sessions" / String / "events")
        .and(warp::get())
        .and(hub.clone())
        .and(auth)
        .and(warp::query::<ReadQuery>())
        .and(peer.clone())
        .and_then(poll)
        .boxed();
    let stream = warp::path!("api" / "v1" / "sessions" / String / "events" / "stream")
        .and(warp::get())
        .and(hub.clone())
        .and(auth)
        .and(warp::query::<ReadQuery>())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(peer)
        .and_then(stream)
        .boxed();
    let health = warp::path!("api" / "v1" / "health")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
        .boxed();
    let stats = warp::path!("api" / "v1" / "stats")
        .and(warp::get())
        .and(hub)
        .map(|hub: Hub| warp::reply::json(&hub.stats()).into_response())
        .boxed();

    ws.or(guest)
        .unify()
        .or(create)
        .unify()
        .or(read)
        .unify()
        .or(update)
        .unify()
        .or(end)
        .unify()
        .or(join)
        .unify()
        .or(leave)
        .unify()
        .or(poll)
        .unify()
        .or(stream)
        .unify()
        .or(health)
        .unify()
        .or(stats)
        .unify()
        .boxed()
}

/// The request body, with or without a length, up to [`MAX_BODY_BYTES`]
/// (past it: the collab error, 413, JSON).
async fn read_body<S, B>(mut stream: S) -> Result<Bytes, HubError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            HubError::Session(collab_core::SessionError::InvalidInput(format!(
                "request body: {e}"
            )))
        })?;
        let len = body.len() + chunk.remaining();
        if len > MAX_BODY_BYTES {
            return Err(body_too_large(len));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(body))
}

fn failure(err: HubError) -> Response {
    let (status, body) = error_response(&err);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(
        warp::reply::with_header(body, "content-type", "application/json"),
        status,
    )
    .into_response()
}

fn json_ok<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn session_id(raw: &str) -> Result<SessionId, HubError> {
    SessionId::parse(raw).map_err(|_| HubError::SessionNotFound)
}

async fn identity(hub: &Hub, token: Option<String>) -> Result<Identity, HubError> {
    hub.authenticate(token.as_deref()).await
}

#[allow(clippy::too_many_arguments)] // one per part of the upgrade request
async fn websocket(
    id: String,
    upgrade: Ws,
    hub: Hub,
    token: Option<String>,
    origin: Option<String>,
    host: Option<String>,
    protocols: Option<String>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let connected = async {
        hub.check_origin(origin.as_deref(), host.as_deref())?;
        let who = identity(&hub, token).await?;
        hub.connect_from(&session_id(&id)?, who, peer).await
    };
    Ok(match connected.await {
        Ok(conn) => {
            let keepalive = hub.keepalive();
            // Nothing larger than the protocol takes is ever buffered.
            let max = hub.max_message_bytes();
            let upgrade = upgrade.max_message_size(max).max_frame_size(max);
            let reply = upgrade.on_upgrade(move |socket| drive(socket, conn, keepalive));
            // Name the subprotocol only when the client offered it, as the
            // WebSocket handshake requires.
            let offered = protocols
                .as_deref()
                .is_some_and(|p| p.split(',').any(|e| e.trim() == SUBPROTOCOL));
            if offered {
                warp::reply::with_header(reply, "sec-websocket-protocol", SUBPROTOCOL)
                    .into_response()
            } else {
                reply.into_response()
            }
        }
        Err(e) => failure(e),
    })
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
            Err(_) => Some(WireIn::Close),
        })
    });
    let outgoing = sink.with(|out: WireOut| {
        future::ready(Ok::<_, warp::Error>(match out {
            WireOut::Text(text) => Message::text(text.as_ref()),
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

async fn create(
    hub: Hub,
    token: Option<String>,
    body: Result<Bytes, HubError>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let created = async {
        let who = identity(&hub, token).await?;
        let new: NewSession = decode_body(&body?)?;
        hub.create_session_from(&who, new, peer).await
    };
    Ok(created
        .await
        .map_or_else(failure, |info| json_ok(StatusCode::CREATED, &info)))
}

async fn read(
    id: String,
    hub: Hub,
    token: Option<String>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let view = async {
        let who = identity(&hub, token).await?;
        hub.session_for(&session_id(&id)?, &who, peer).await
    };
    Ok(view
        .await
        .map_or_else(failure, |v| json_ok(StatusCode::OK, &v)))
}

async fn update(
    id: String,
    hub: Hub,
    token: Option<String>,
    body: Result<Bytes, HubError>,
) -> Result<Response, Infallible> {
    let updated = async {
        let who = identity(&hub, token).await?;
        let update: SessionUpdate = decode_body(&body?)?;
        hub.update_session(&session_id(&id)?, &who, update).await
    };
    Ok(updated
        .await
        .map_or_else(failure, |info| json_ok(StatusCode::OK, &info)))
}

async fn end(id: String, hub: Hub, token: Option<String>) -> Result<Response, Infallible> {
    let ended = async {
        let who = identity(&hub, token).await?;
        hub.end_session(&session_id(&id)?, &who).await
    };
    Ok(ended
        .await
        .map_or_else(failure, |info| json_ok(StatusCode::OK, &info)))
}

async fn join(
    id: String,
    hub: Hub,
    token: Option<String>,
    body: Result<Bytes, HubError>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let joined = async {
        let who = identity(&hub, token).await?;
        let JoinBody { name } = decode_body(&body?)?;
        hub.join(&session_id(&id)?, who, name, peer).await
    };
    Ok(joined
        .await
        .map_or_else(failure, |p| json_ok(StatusCode::CREATED, &p)))
}

async fn leave(
    id: String,
    user: String,
    hub: Hub,
    token: Option<String>,
) -> Result<Response, Infallible> {
    let left = async {
        let who = identity(&hub, token).await?;
        hub.leave(&session_id(&id)?, &who.user_id, &user).await
    };
    Ok(left
        .await
        .map_or_else(failure, |()| StatusCode::NO_CONTENT.into_response()))
}

async fn poll(
    id: String,
    hub: Hub,
    token: Option<String>,
    query: ReadQuery,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let page = async {
        let _held = hub.hold_address(peer)?;
        let who = identity(&hub, token).await?;
        hub.read(&session_id(&id)?, &who, query.request(None)?)
            .await
    };
    Ok(page
        .await
        .map_or_else(failure, |p| json_ok(StatusCode::OK, &p)))
}

async fn stream(
    id: String,
    hub: Hub,
    token: Option<String>,
    query: ReadQuery,
    last_event_id: Option<String>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response, Infallible> {
    let opened = async {
        let held = hub.hold_address(peer)?;
        let who = identity(&hub, token).await?;
        let request = query.request(last_event_id.as_deref())?;
        Ok::<_, HubError>((
            held,
            event_stream(&hub, session_id(&id)?, who, request).await?,
        ))
    };
    Ok(match opened.await {
        Ok((held, events)) => {
            // The address stays counted while the stream is open.
            let frames = events.map(move |e| {
                let _ = &held;
                let frame = warp::sse::Event::default().data(e.data);
                Ok::<_, Infallible>(match e.id {
                    Some(id) => frame.id(id),
                    None => frame,
                })
            });
            warp::sse::reply(warp::sse::keep_alive().stream(frames)).into_response()
        }
        Err(e) => failure(e),
    })
}
