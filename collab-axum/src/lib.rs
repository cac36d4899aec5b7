//! # collab-axum
//!
//! Mounts a [`collab_core::Hub`] into an axum application: the WebSocket
//! endpoint of the collab protocol and the session REST API. Everything a
//! session decides lives in collab-core; this crate only turns axum's types into
//! the core's and back.
//!
//! ```no_run
//! use collab_core::{GuestAuthenticator, Hub};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(GuestAuthenticator::random().expect("randomness"));
//! let app = axum::Router::new().merge(collab_axum::router(hub));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // TCP_NODELAY, header timeouts, connection caps, and the client's
//! // address for the hub's per-address limits.
//! collab_axum::serve(listener, app, collab_axum::HttpLimits::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! Serve with [`serve`]: `axum::serve` sets no header timeout and caps no
//! connections, and without the client's address (`ConnectInfo`) the hub's
//! per-address limits are off. Behind a reverse proxy, list its address in
//! both [`HttpLimits::trusted_proxies`] and
//! [`collab_core::HubConfig::trusted_proxies`].
//!
//! Routes (PROTOCOL.md describes the WebSocket frames):
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/guests` | a fresh guest identity (with `GuestAuthenticator`) |
//! | `GET /ws/session/{id}` | WebSocket upgrade; credential from `Authorization: Bearer` or `?token=` |
//! | `POST /api/v1/sessions` | create a session (body: `NewSession`); the caller is its host |
//! | `GET /api/v1/sessions/{id}` | the session, its code and participants |
//! | `PATCH /api/v1/sessions/{id}` | change title, language or status (host only) |
//! | `POST /api/v1/sessions/{id}/end` | end the session (host only) |
//! | `POST /api/v1/sessions/{id}/users` | join without a socket (body: `{"name"}`) |
//! | `DELETE /api/v1/sessions/{id}/users/{user}` | leave (yourself, by user or participant id) |
//! | `GET /api/v1/sessions/{id}/events` | long-poll read: `?since=&rev=&wait=` |
//! | `GET /api/v1/sessions/{id}/events/stream` | the same as server-sent events (`Last-Event-ID` resumes) |
//! | `GET /api/v1/health` | liveness |
//! | `GET /api/v1/stats` | sessions, connections, frames and bytes |

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseFrame, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use collab_core::transport::{
    body_too_large, credential, decode_body, error_response, event_stream, pump_with_keepalive,
    JoinBody, WireIn, WireOut, MAX_BODY_BYTES, SUBPROTOCOL,
};
use collab_core::{
    Connection, Hub, HubError, Identity, NewSession, ReadQuery, SessionId, SessionUpdate,
};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

pub use collab_server::HttpLimits;

/// Serves `app` on `listener` until `shutdown` completes: each connection
/// with TCP_NODELAY, a header timeout and a place under the connection caps
/// of `limits`, and its peer address passed to the handlers (as
/// `ConnectInfo<SocketAddr>`), so the hub's per-address limits apply.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let make = move |peer: std::net::SocketAddr| {
        let app = app.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let mut app = app.clone();
            tower_service::Service::call(&mut app, req)
        })
    };
    collab_server::serve(listener, make, limits, shutdown).await;
}

/// The collab routes, ready to `merge` or `nest` into the host application's router.
pub fn router<S>(hub: Hub) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ws/session/{id}", get(websocket))
        .route("/api/v1/guests", post(guest))
        .route("/api/v1/sessions", post(create))
        .route("/api/v1/sessions/{id}", get(read).patch(update))
        .route("/api/v1/sessions/{id}/end", post(end))
        .route("/api/v1/sessions/{id}/users", post(join))
        .route("/api/v1/sessions/{id}/users/{user}", delete(leave))
        .route("/api/v1/sessions/{id}/events", get(poll))
        .route("/api/v1/sessions/{id}/events/stream", get(stream))
        .route(
            "/api/v1/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/v1/stats", get(stats))
        .with_state(hub)
}

/// A failed request, answered with the error's status and JSON body.
struct ApiError(HubError);

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = error_response(&self.0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn identity(
    hub: &Hub,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<Identity, ApiError> {
    identity_with(hub, headers, query.token.as_deref()).await
}

async fn identity_with(
    hub: &Hub,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Identity, ApiError> {
    let token = credential(
        header_str(headers, header::AUTHORIZATION),
        header_str(headers, header::SEC_WEBSOCKET_PROTOCOL),
        query_token,
    );
    Ok(hub.authenticate(token).await?)
}

/// The client's address: the socket's peer (known when the host app serves
/// with [`serve`] or `into_make_service_with_connect_info::<SocketAddr>()`),
/// or the client a trusted proxy forwards for.
fn peer(
    hub: &Hub,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<std::net::IpAddr> {
    let socket = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    hub.client_address(
        socket,
        header_str(headers, header::FORWARDED),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    )
}

/// The request body, refused with the collab error (413, JSON) past
/// [`MAX_BODY_BYTES`] rather than axum's plain-text one.
async fn read_body(hub: &Hub, body: Body) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(
        hub.body_timeout(),
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError(body_too_large(MAX_BODY_BYTES + 1))),
        Err(_) => Err(ApiError(HubError::BodyTimeout)),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|_| ApiError(HubError::SessionNotFound))
}

async fn websocket(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    hub.check_origin(
        header_str(&headers, header::ORIGIN),
        header_str(&headers, header::HOST),
    )?;
    let who = identity(&hub, &headers, &query).await?;
    let conn = hub
        .connect_from(&session_id(&id)?, who, peer(&hub, &headers, &extensions))
        .await?;
    let keepalive = hub.keepalive();
    // Nothing larger than the protocol takes is ever buffered.
    let max = hub.max_message_bytes();
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| drive(socket, conn, keepalive)))
}

async fn drive(socket: WebSocket, conn: Connection, keepalive: std::time::Duration) {
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|msg| async move {
        match msg {
            Ok(Message::Text(text)) => Some(WireIn::Text(text.as_str().to_owned())),
            Ok(Message::Binary(bytes)) => Some(WireIn::Binary(bytes.to_vec())),
            Ok(Message::Pong(_)) => Some(WireIn::Pong),
            // Answered by the WebSocket layer itself.
            Ok(Message::Ping(_)) => None,
            Ok(Message::Close(_)) | Err(_) => Some(WireIn::Close),
        }
    });
    let outgoing = sink.with(|out: WireOut| async move {
        Ok::<_, axum::Error>(match out {
            WireOut::Text(text) => Message::Text(text.as_ref().into()),
            WireOut::Binary(bytes) => Message::Binary(bytes.into()),
            WireOut::Ping => Message::Ping(Bytes::new()),
            WireOut::Close { code, reason } => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        })
    });
    pump_with_keepalive(
        conn,
        Box::pin(incoming),
        Box::pin(outgoing),
        Some(keepalive),
    )
    .await;
}

async fn guest(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let issued = hub.issue_guest(peer(&hub, &headers, &extensions))?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(issued),
    )
        .into_response())
}

async fn create(
    State(hub): State<Hub>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    let new: NewSession = decode_body(&read_body(&hub, body).await?)?;
    let info = hub
        .create_session_from(&who, new, peer(&hub, &headers, &extensions))
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn read(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    let peer = peer(&hub, &headers, &extensions);
    Ok(Json(hub.session_for(&session_id(&id)?, &who, peer).await?).into_response())
}

async fn update(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    let update: SessionUpdate = decode_body(&read_body(&hub, body).await?)?;
    Ok(Json(hub.update_session(&session_id(&id)?, &who, update).await?).into_response())
}

async fn end(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    Ok(Json(hub.end_session(&session_id(&id)?, &who).await?).into_response())
}

async fn join(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    let JoinBody { name } = decode_body(&read_body(&hub, body).await?)?;
    let joined = hub
        .join(
            &session_id(&id)?,
            who,
            name,
            peer(&hub, &headers, &extensions),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(joined)).into_response())
}

async fn leave(
    State(hub): State<Hub>,
    Path((id, user)): Path<(String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = identity(&hub, &headers, &query).await?;
    hub.leave(&session_id(&id)?, &who.user_id, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn poll(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let _held = hub.hold_address(peer(&hub, &headers, &extensions))?;
    let who = identity_with(&hub, &headers, query.token.as_deref()).await?;
    let request = query.request(None)?;
    Ok(Json(hub.read(&session_id(&id)?, &who, request).await?).into_response())
}

async fn stream(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let held = hub.hold_address(peer(&hub, &headers, &extensions))?;
    let who = identity_with(&hub, &headers, query.token.as_deref()).await?;
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let request = query.request(last_event_id)?;
    let events = event_stream(&hub, session_id(&id)?, who, request).await?;
    // The address stays counted while the stream is open.
    let frames = events.map(move |e| {
        let _ = &held;
        let frame = SseFrame::default().data(e.data);
        Ok::<_, std::convert::Infallible>(match e.id {
            Some(id) => frame.id(id),
            None => frame,
        })
    });
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn stats(State(hub): State<Hub>) -> Json<collab_core::HubStats> {
    Json(hub.stats())
}
