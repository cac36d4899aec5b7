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
//! # async fn run() {
//! let hub = Hub::new(GuestAuthenticator);
//! let app = collab_warp::routes(hub).or(warp::path("hello").map(|| "hi"));
//! // Collaboration sends many small frames: send each at once (TCP_NODELAY)
//! // instead of holding it until the previous one is acknowledged. Accepted
//! // sockets inherit the option from the listener on Linux.
//! let socket = tokio::net::TcpSocket::new_v4().unwrap();
//! socket.set_nodelay(true).unwrap();
//! socket.bind(([127, 0, 0, 1], 8080).into()).unwrap();
//! warp::serve(app).incoming(socket.listen(1024).unwrap()).run().await;
//! # }
//! ```

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
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};
use warp::filters::BoxedFilter;
use warp::Filter;

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The collab routes as one filter, to `or` with the host application's.
///
/// Same paths as collab-axum: `GET /ws/session/{id}`, `POST /api/v1/sessions`,
/// `GET`/`PATCH /api/v1/sessions/{id}`, `POST /api/v1/sessions/{id}/end`,
/// `POST /api/v1/sessions/{id}/users`, `DELETE /api/v1/sessions/{id}/users/{user}`,
/// `GET /api/v1/sessions/{id}/events` (long-poll), `GET
/// /api/v1/sessions/{id}/events/stream` (server-sent events),
/// `GET /api/v1/health`, `GET /api/v1/stats`.
///
/// Each route is boxed: a chain of a dozen nested filter types overflows
/// the compiler's trait solver in release builds, and boxing costs one
/// indirect call per route tried.
pub fn routes(hub: Hub) -> BoxedFilter<(Response,)> {
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
    let body = warp::body::stream().then(read_body);

    let ws = warp::path!("ws" / "session" / String)
        .and(warp::get())
        .and(warp::ws())
        .and(hub.clone())
        .and(auth)
        .and(origin)
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::addr::remote())
        .and_then(websocket)
        .boxed();
    let create = warp::path!("api" / "v1" / "sessions")
        .and(warp::post())
        .and(hub.clone())
        .and(auth)
        .and(body)
        .and_then(create)
        .boxed();
    let read = warp::path!("api" / "v1" / "sessions" / String)
        .and(warp::get())
        .and(hub.clone())
        .and(auth)
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
        .and(warp::addr::remote())
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
        .and_then(poll)
        .boxed();
    let stream = warp::path!("api" / "v1" / "sessions" / String / "events" / "stream")
        .and(warp::get())
        .and(hub.clone())
        .and(auth)
        .and(warp::query::<ReadQuery>())
        .and(warp::header::optional::<String>("last-event-id"))
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

    ws.or(create)
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
    peer: Option<std::net::SocketAddr>,
) -> Result<Response, Infallible> {
    let connected = async {
        hub.check_origin(origin.as_deref(), host.as_deref())?;
        let who = identity(&hub, token).await?;
        hub.connect_from(&session_id(&id)?, who, peer.map(|p| p.ip()))
            .await
    };
    Ok(match connected.await {
        Ok(conn) => {
            let keepalive = hub.keepalive();
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
) -> Result<Response, Infallible> {
    let created = async {
        let who = identity(&hub, token).await?;
        let new: NewSession = decode_body(&body?)?;
        hub.create_session(&who, new).await
    };
    Ok(created
        .await
        .map_or_else(failure, |info| json_ok(StatusCode::CREATED, &info)))
}

async fn read(id: String, hub: Hub, token: Option<String>) -> Result<Response, Infallible> {
    let view = async {
        identity(&hub, token).await?;
        hub.session(&session_id(&id)?).await
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
    peer: Option<std::net::SocketAddr>,
) -> Result<Response, Infallible> {
    let joined = async {
        let who = identity(&hub, token).await?;
        let JoinBody { name } = decode_body(&body?)?;
        hub.join(&session_id(&id)?, who, name, peer.map(|p| p.ip()))
            .await
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
) -> Result<Response, Infallible> {
    let page = async {
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
) -> Result<Response, Infallible> {
    let opened = async {
        let who = identity(&hub, token).await?;
        let request = query.request(last_event_id.as_deref())?;
        event_stream(&hub, session_id(&id)?, who, request).await
    };
    Ok(match opened.await {
        Ok(events) => {
            let frames = events.map(|e| {
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
