//! The HTTP API, written once on `http` types: the REST routes, the
//! server-sent event stream, and the checks before a WebSocket upgrade.
//! Adapters hand requests to [`handle`] and mount the WebSocket with
//! [`accept_websocket`]; they never route or answer a collab request
//! themselves, so both serve exactly the same API.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/guests` | a fresh guest identity (with `GuestAuthenticator`) |
//! | `GET /ws/session/{id}` | WebSocket upgrade ([`accept_websocket`]); credential from `Authorization: Bearer`, the subprotocol or `?token=` |
//! | `POST /api/v1/sessions` | create a session (body: `NewSession`); the caller is its host |
//! | `GET /api/v1/sessions/{id}` | the session, its code and participants |
//! | `PATCH /api/v1/sessions/{id}` | change title, language, status or closing time (host only) |
//! | `POST /api/v1/sessions/{id}/end` | end the session (host only) |
//! | `POST /api/v1/sessions/{id}/users` | join without a socket (body: `{"name"}`) |
//! | `DELETE /api/v1/sessions/{id}/users/{user}` | leave (yourself, by user or participant id) |
//! | `GET /api/v1/sessions/{id}/events` | long-poll read: `?since=&rev=&wait=` |
//! | `GET /api/v1/sessions/{id}/events/stream` | the same as server-sent events (`Last-Event-ID` resumes) |
//! | `GET /api/v1/sessions/{id}/export` | the whole session as one document (host only) |
//! | `GET /api/v1/health` | liveness |
//! | `GET /api/v1/stats` | sessions, connections, frames and bytes |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use collab_core::{NewSession, SessionId, SessionUpdate};

use crate::http::transport::{credential, event_stream, JoinBody};
use crate::http::HttpConfig;
use crate::hub::{Caller, Connection, Hub, HubError, ReadQuery};
use crate::Identity;
use collab_core::ErrorCode;

/// How often an open event stream sends a comment line, so that proxies and
/// browsers keep it open while nothing happens.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(15);

/// The largest REST request body the API reads, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why an HTTP request failed. Each variant's code and status are those
/// of [`ApiError::code`]; every one is answered with
/// `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The hub refused the request; its code says why.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The body is over [`MAX_BODY_BYTES`]. Caller's mistake; 413.
    #[error("request body is over the {max}-byte limit")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The body did not arrive within [`HttpConfig::body_timeout`]. 408.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The body could not be read (the client went away, or sent a broken
    /// chunk). 400.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body is not a JSON object. Caller's mistake; 400.
    #[error("request body: expected a JSON object")]
    NotAnObject,
    /// The body is not the JSON this request takes. Caller's mistake; 400.
    #[error("request body: {0}")]
    BadJson(#[source] serde_json::Error),
    /// An answer could not be written as JSON. A bug; 500.
    #[error("could not write the answer: {0}")]
    Encode(#[source] serde_json::Error),
}

impl ApiError {
    /// The code this error travels as; its HTTP status is
    /// [`ErrorCode::http_status`].
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Hub(e) => e.code(),
            ApiError::BodyTooLarge { .. } => ErrorCode::FrameTooLarge,
            ApiError::BodyTimeout => ErrorCode::RequestTimeout,
            ApiError::NotAnObject | ApiError::BadJson(_) | ApiError::BodyUnreadable(_) => {
                ErrorCode::InvalidInput
            }
            ApiError::Encode(_) => ErrorCode::Internal,
        }
    }
}

/// The HTTP status and JSON body for a failed request:
/// `{"error": {"code": "session_full", "message": "..."}}`.
pub fn error_response(err: &ApiError) -> (u16, String) {
    let code = err.code();
    (code.http_status(), error_body(code, &err.to_string()))
}

/// The JSON body of a refusal, `{"error": {"code", "message"}}`: the shape
/// of every error the API answers, for routes a host application serves
/// beside it. `code` is an [`ErrorCode`], or a code of the application's
/// own (`"unsupported_language"`).
pub fn error_body(code: impl serde::Serialize, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

/// Reads a request body of at most `max` bytes that arrives within
/// `timeout`, as the API reads its own: for routes a host application
/// serves beside it.
///
/// # Errors
/// [`ApiError::BodyTooLarge`] (413) past `max`, whether or not the body
/// announced its length; [`ApiError::BodyTimeout`] (408);
/// [`ApiError::BodyUnreadable`] (400) when reading it failed otherwise.
pub async fn read_body<B>(body: B, max: usize, timeout: Duration) -> Result<Bytes, ApiError>
where
    B: RequestBody,
{
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::BodyTooLarge { max })
        }
        Ok(Err(e)) => Err(ApiError::BodyUnreadable(e.to_string())),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

/// Reads a JSON request body; an empty body reads as `{}`.
///
/// # Errors
/// [`ApiError::NotAnObject`] or [`ApiError::BadJson`] when the body is not
/// the expected JSON object.
pub fn decode_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    // A body is one JSON object: serde would also read a struct from an
    // array of its fields in order, which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::NotAnObject);
    }
    serde_json::from_slice(bytes).map_err(ApiError::BadJson)
}

/// The body of an API response: a whole JSON document, or a stream of
/// server-sent events. An `http_body::Body` for any framework to send.
pub struct ApiBody(Kind);

enum Kind {
    Full(Option<Bytes>),
    // The mutex is never locked (polling has `&mut`); it makes the body
    // `Sync`, which some frameworks ask of a streaming body.
    Stream(Mutex<BoxStream<'static, Bytes>>),
}

impl ApiBody {
    fn full(bytes: impl Into<Bytes>) -> Self {
        Self(Kind::Full(Some(bytes.into())))
    }

    fn empty() -> Self {
        Self(Kind::Full(None))
    }

    fn stream(stream: BoxStream<'static, Bytes>) -> Self {
        Self(Kind::Stream(Mutex::new(stream)))
    }

    /// The whole body when it is one JSON document; the body itself when
    /// it is a stream.
    ///
    /// # Errors
    /// The body, unchanged, when it is a stream.
    pub fn into_bytes(self) -> Result<Bytes, Self> {
        match self.0 {
            Kind::Full(bytes) => Ok(bytes.unwrap_or_default()),
            stream => Err(Self(stream)),
        }
    }

    /// The body as a stream of chunks, for frameworks that take one.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Sync {
        http_body_util::BodyDataStream::new(self)
    }
}

impl std::fmt::Debug for ApiBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Full(b) => write!(f, "ApiBody({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Kind::Stream(_) => f.write_str("ApiBody(stream)"),
        }
    }
}

impl http_body::Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(stream) => {
                let stream = stream.get_mut().unwrap_or_else(|e| e.into_inner());
                stream
                    .poll_next_unpin(cx)
                    .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.0 {
            Kind::Full(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// A request body the API can read: any `http_body::Body` whose chunks
/// are buffers and whose errors are errors (axum's, warp's, hyper's).
pub trait RequestBody:
    http_body::Body<Data: Buf + Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data: Buf + Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
{
}

/// An API response.
pub type ApiResponse = http::Response<ApiBody>;

/// Whether `path` is one of the API's (whatever the method). Adapters that
/// must decide before reading the body (warp, whose body can be taken
/// once) ask this first, and leave other requests to the host's routes.
pub fn serves(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    matches!(
        segments.as_slice(),
        ["health" | "stats" | "guests" | "sessions"]
            | ["sessions", _]
            | ["sessions", _, "end" | "users" | "events" | "export"]
            | ["sessions", _, "users", _]
            | ["sessions", _, "events", "stream"]
    )
}

/// The HTTP API over one hub, with the HTTP layer's settings: what the
/// adapters mount. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    hub: Hub,
    config: Arc<HttpConfig>,
}

impl Api {
    /// The API over `hub`, served with `config`.
    pub fn new(hub: Hub, config: HttpConfig) -> Self {
        Self {
            hub,
            config: Arc::new(config),
        }
    }

    /// The hub the API serves.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The settings it serves with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Checks a browser's `Origin` header against [`HttpConfig::origins`].
    ///
    /// # Errors
    /// [`HubError::OriginNotAllowed`].
    pub fn check_origin(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), HubError> {
        if self.config.origins.allows(origin, host) {
            Ok(())
        } else {
            Err(HubError::OriginNotAllowed)
        }
    }
}

/// Answers one API request. `socket` is the TCP peer when the adapter knows
/// it; with [`HttpConfig::client_address`] it names the client for
/// per-address limits. `None` when the path is not one of the API's: adapters pass
/// such requests on to the host application's routes.
pub async fn handle<B>(
    api: &Api,
    request: http::Request<B>,
    socket: Option<SocketAddr>,
) -> Option<ApiResponse>
where
    B: RequestBody,
{
    let (parts, body) = request.into_parts();
    if !serves(parts.uri.path()) {
        return None;
    }
    let path = parts.uri.path().strip_prefix("/api/v1/")?.to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let hub = api.hub();
    let call = Call {
        api,
        headers: &parts.headers,
        query: parts.uri.query().unwrap_or(""),
        socket,
    };
    let method = &parts.method;
    // Cross-origin calls (a front end served from another origin) are let
    // through for the pages the origin policy allows WebSockets from, and
    // for no one else.
    let origin = header_str(&parts.headers, header::ORIGIN).map(str::to_owned);
    let cross_origin_ok = origin.is_some()
        && api
            .check_origin(origin.as_deref(), header_str(&parts.headers, header::HOST))
            .is_ok();
    if method == Method::OPTIONS {
        return Some(preflight(origin.as_deref().filter(|_| cross_origin_ok)));
    }
    // The body is read before anything is decided: a request refused early
    // (a bad credential) still leaves the connection ready for the next.
    let body = if matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    ) {
        match call.body(body).await {
            Ok(bytes) => bytes,
            Err(e) => return Some(failure(&e)),
        }
    } else {
        Bytes::new()
    };
    let outcome = match segments.as_slice() {
        ["health"] if method == Method::GET => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        ["stats"] if method == Method::GET => Ok(json(StatusCode::OK, &hub.stats())),
        ["guests"] if method == Method::POST => call.guest(),
        ["sessions"] if method == Method::POST => call.create(body).await,
        ["sessions", id] if method == Method::GET => call.read(id).await,
        ["sessions", id] if method == Method::PATCH => call.update(id, body).await,
        ["sessions", id, "end"] if method == Method::POST => call.end(id).await,
        ["sessions", id, "users"] if method == Method::POST => call.join(id, body).await,
        ["sessions", id, "users", user] if method == Method::DELETE => call.leave(id, user).await,
        ["sessions", id, "events"] if method == Method::GET => call.poll(id).await,
        ["sessions", id, "events", "stream"] if method == Method::GET => call.stream(id).await,
        ["sessions", id, "export"] if method == Method::GET => call.export(id).await,
        ["health" | "stats"] => Ok(not_allowed("GET")),
        ["guests"] | ["sessions"] | ["sessions", _, "end" | "users"] => Ok(not_allowed("POST")),
        ["sessions", _] => Ok(not_allowed("GET, PATCH")),
        ["sessions", _, "users", _] => Ok(not_allowed("DELETE")),
        ["sessions", _, "events" | "export"] | ["sessions", _, "events", "stream"] => {
            Ok(not_allowed("GET"))
        }
        // Not the API's: the host application may have a route for it.
        _ => return None,
    };
    let mut response = outcome.unwrap_or_else(|e| failure(&e));
    if let Some(origin) = origin.filter(|_| cross_origin_ok) {
        allow_origin(response.headers_mut(), &origin);
    }
    Some(response)
}

/// The headers that let a page from `origin` read the answer.
fn allow_origin(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a browser's preflight (`OPTIONS`) before a cross-origin
/// call: what may be sent, for an allowed origin; a refusal otherwise.
fn preflight(allowed: Option<&str>) -> ApiResponse {
    let Some(origin) = allowed else {
        return failure(&HubError::OriginNotAllowed.into());
    };
    let mut response = http::Response::new(ApiBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The checks before a WebSocket upgrade to `GET /ws/session/{id}`: the
/// page's origin, the credential, and a place in the session. On success
/// the adapter upgrades (offering [`SUBPROTOCOL`](crate::http::transport::SUBPROTOCOL),
/// with [`Hub::max_message_bytes`] as its message limit) and pumps the
/// connection; on failure it answers with the response given.
///
/// # Errors
/// The response to send instead of upgrading.
pub async fn accept_websocket(
    api: &Api,
    session: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    socket: Option<SocketAddr>,
) -> Result<Connection, ApiResponse> {
    let call = Call {
        api,
        headers,
        query: query.unwrap_or(""),
        socket,
    };
    let attempt = async {
        api.check_origin(
            header_str(headers, header::ORIGIN),
            header_str(headers, header::HOST),
        )?;
        call.caller().await?.connect(&session_id(session)?).await
    };
    attempt.await.map_err(|e| failure(&e.into()))
}

/// One request's context.
struct Call<'a> {
    api: &'a Api,
    headers: &'a HeaderMap,
    query: &'a str,
    socket: Option<SocketAddr>,
}

impl Call<'_> {
    fn hub(&self) -> &Hub {
        &self.api.hub
    }

    async fn identity(&self) -> Result<Identity, HubError> {
        let token = query_param(self.query, "token");
        let token = credential(
            header_str(self.headers, header::AUTHORIZATION),
            header_str(self.headers, header::SEC_WEBSOCKET_PROTOCOL),
            token.as_deref(),
        );
        self.hub().authenticate(token).await
    }

    /// The hub acting for the authenticated client.
    async fn caller(&self) -> Result<Caller, HubError> {
        Ok(self.hub().caller(self.identity().await?, self.peer()))
    }

    /// The client's address: the socket's peer, or the client a trusted
    /// proxy forwards for.
    fn peer(&self) -> Option<std::net::IpAddr> {
        self.api.config.client_address(
            self.socket.map(|s| s.ip()),
            header_str(self.headers, header::FORWARDED),
            header_str(self.headers, "x-forwarded-for"),
        )
    }

    /// The request body, refused past [`MAX_BODY_BYTES`] (413) or when it
    /// does not arrive within [`HttpConfig::body_timeout`] (408).
    async fn body<B>(&self, body: B) -> Result<Bytes, ApiError>
    where
        B: RequestBody,
    {
        read_body(body, MAX_BODY_BYTES, self.api.config.body_timeout).await
    }

    fn guest(&self) -> Result<ApiResponse, ApiError> {
        let issued = self.hub().issue_guest(self.peer())?;
        let mut response = json(StatusCode::CREATED, &issued);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    async fn create(&self, body: Bytes) -> Result<ApiResponse, ApiError> {
        let caller = self.caller().await?;
        let new: NewSession = decode_body(&body)?;
        let info = caller.create_session(new).await?;
        // What a creator needs next: the code, its revision, who is in,
        // and the link to hand out.
        let created = Created {
            share_url: self.api.config.share_url(&info.id),
            view: self.hub().session(&info.id).await?,
        };
        Ok(json(StatusCode::CREATED, &created))
    }

    async fn read(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let read = self.caller().await?.session(&session_id(id)?).await?;
        Ok(json(StatusCode::OK, &read))
    }

    async fn update(&self, id: &str, body: Bytes) -> Result<ApiResponse, ApiError> {
        let caller = self.caller().await?;
        let id = session_id(id)?;
        let Patch { update, code, rev } = decode_body(&body)?;
        let metadata = update != SessionUpdate::default();
        if !metadata && code.is_none() {
            return Err(HubError::Session(collab_core::SessionError::InvalidInput(
                "nothing to change: give a title, language, status, closes_at or code".into(),
            ))
            .into());
        }
        if metadata {
            caller.update_session(&id, update).await?;
        }
        if let Some(code) = code {
            caller.replace_code(&id, rev, code).await?;
        }
        // The session as it is now, code and revision included: what the
        // edit became once merged with what others typed.
        Ok(json(StatusCode::OK, &self.hub().session(&id).await?))
    }

    async fn export(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let export = self.caller().await?.export(&session_id(id)?).await?;
        Ok(json(StatusCode::OK, &export))
    }

    async fn end(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let info = self.caller().await?.end_session(&session_id(id)?).await?;
        Ok(json(StatusCode::OK, &info))
    }

    async fn join(&self, id: &str, body: Bytes) -> Result<ApiResponse, ApiError> {
        let caller = self.caller().await?;
        let JoinBody { name } = decode_body(&body)?;
        let joined = caller.join(&session_id(id)?, name).await?;
        Ok(json(StatusCode::CREATED, &joined))
    }

    async fn leave(&self, id: &str, user: &str) -> Result<ApiResponse, ApiError> {
        let caller = self.caller().await?;
        let user = percent_decode(user).ok_or(HubError::Session(
            collab_core::SessionError::UnknownParticipant,
        ))?;
        caller.leave(&session_id(id)?, &user).await?;
        let mut response = http::Response::new(ApiBody::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }

    fn read_query(&self) -> ReadQuery {
        ReadQuery {
            token: None,
            since: query_param(self.query, "since"),
            rev: query_param(self.query, "rev"),
            wait: query_param(self.query, "wait"),
        }
    }

    async fn poll(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let _held = self.hub().hold_address(self.peer())?;
        let caller = self.caller().await?;
        let request = self.read_query().request(None)?;
        let page = caller.read(&session_id(id)?, request).await?;
        Ok(json(StatusCode::OK, &page))
    }

    async fn stream(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let held = self.hub().hold_address(self.peer())?;
        let caller = self.caller().await?;
        let last_event_id = header_str(self.headers, "last-event-id");
        let request = self.read_query().request(last_event_id)?;
        let events = event_stream(&caller, session_id(id)?, request).await?;
        let keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + STREAM_KEEPALIVE,
            STREAM_KEEPALIVE,
        );
        // The address stays counted while the stream is open.
        let frames = events.map(move |chunk| {
            let _ = &held;
            sse_frame(chunk.id.as_deref(), &chunk.data)
        });
        let frames = with_keepalive(frames.boxed(), keepalive);
        let mut response = http::Response::new(ApiBody::stream(frames));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(response)
    }
}

/// The body of `PATCH /api/v1/sessions/{id}`: the session's settings, and
/// the main file's new text made at revision `rev`.
#[derive(serde::Deserialize)]
struct Patch {
    #[serde(flatten)]
    update: SessionUpdate,
    code: Option<String>,
    rev: Option<collab_core::document::Revision>,
}

/// A session just created, as `POST /api/v1/sessions` answers it.
#[derive(serde::Serialize)]
struct Created {
    #[serde(flatten)]
    view: crate::hub::SessionView,
    #[serde(skip_serializing_if = "Option::is_none")]
    share_url: Option<String>,
}

/// `frames`, with a comment line whenever nothing was sent for
/// [`STREAM_KEEPALIVE`]; ends when `frames` ends.
fn with_keepalive(
    frames: BoxStream<'static, Bytes>,
    keepalive: tokio::time::Interval,
) -> BoxStream<'static, Bytes> {
    futures::stream::unfold(
        (frames, keepalive),
        |(mut frames, mut keepalive)| async move {
            tokio::select! {
                frame = frames.next() => {
                    keepalive.reset();
                    frame.map(|f| (f, (frames, keepalive)))
                }
                _ = keepalive.tick() => Some((Bytes::from_static(b":\n\n"), (frames, keepalive))),
            }
        },
    )
    .boxed()
}

/// One server-sent event: `id:` when given, then `data:` per line.
fn sse_frame(id: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> ApiResponse {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = http::Response::new(ApiBody::full(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => failure(&ApiError::Encode(e)),
    }
}

/// The JSON error response for `err`: its status and
/// `{"error": {"code", "message"}}`.
pub fn failure(err: &ApiError) -> ApiResponse {
    crate::telemetry::error(err.code());
    if err.code() == ErrorCode::Internal || err.code() == ErrorCode::StorageFailed {
        tracing::error!(error = %err, "request failed");
    } else {
        tracing::debug!(error = %err, "request refused");
    }
    let (status, body) = error_response(err);
    let mut response = http::Response::new(ApiBody::full(body));
    if matches!(
        err,
        ApiError::BodyTooLarge { .. } | ApiError::BodyTimeout | ApiError::BodyUnreadable(_)
    ) {
        // The rest of the body was never read: this connection cannot carry
        // another request, and the client must not try (it would write into
        // a socket the server is closing).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn status_only(status: StatusCode) -> ApiResponse {
    let mut response = http::Response::new(ApiBody::empty());
    *response.status_mut() = status;
    response
}

fn not_allowed(allow: &'static str) -> ApiResponse {
    let mut response = status_only(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn session_id(raw: &str) -> Result<SessionId, HubError> {
    SessionId::parse(raw).map_err(|_| HubError::SessionNotFound)
}

/// The first value of `name` in a URL query, decoded as a form would
/// encode it (`+` for a space, `%XX` for a byte).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(&key.replace('+', " "))?;
        (key == name).then(|| percent_decode(&value.replace('+', " ")))?
    })
}

/// `%XX`-decodes a path segment or query part; `None` when that leaves
/// something that is not UTF-8 or a `%` is not followed by two hex digits.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_objects() {
        let refused = decode_body::<collab_core::NewSession>(b" []");
        assert!(refused.is_err());
        let refused = decode_body::<collab_core::NewSession>(br#"{"title":"a","title":"b"}"#);
        assert!(refused.is_err(), "a repeated key is refused");
        assert!(decode_body::<collab_core::NewSession>(b"").is_ok());
        assert!(decode_body::<collab_core::NewSession>(br#" {"title":"a"}"#).is_ok());
    }

    /// A body past the limit is 413; one that breaks off is 400, not
    /// taken for a large one; a whole one is read.
    #[tokio::test]
    async fn bodies_are_read_within_limits() {
        fn body(chunks: Vec<Result<&'static [u8], std::io::Error>>) -> impl RequestBody {
            let frames = chunks
                .into_iter()
                .map(|c| c.map(|b| http_body::Frame::data(Bytes::from_static(b))));
            http_body_util::StreamBody::new(futures::stream::iter(frames))
        }
        let wait = Duration::from_secs(5);
        let read = read_body(body(vec![Ok(b"ab"), Ok(b"cd")]), 4, wait).await;
        assert_eq!(read.unwrap(), Bytes::from_static(b"abcd"));
        let big = read_body(body(vec![Ok(b"ab"), Ok(b"cde")]), 4, wait).await;
        assert!(
            matches!(big, Err(ApiError::BodyTooLarge { max: 4 })),
            "{big:?}"
        );
        let broken = vec![Ok(&b"ab"[..]), Err(std::io::Error::other("reset"))];
        let broken = read_body(body(broken), 4, wait).await;
        assert!(
            matches!(broken, Err(ApiError::BodyUnreadable(_))),
            "{broken:?}"
        );
        assert_eq!(broken.unwrap_err().code().http_status(), 400);
    }

    #[test]
    fn errors_carry_status_and_code() {
        let (status, body) = error_response(&HubError::SessionNotFound.into());
        assert_eq!(status, 404);
        assert!(body.contains(r#""code":"session_not_found""#));
        let full = HubError::Session(collab_core::SessionError::SessionFull { capacity: 10 });
        assert_eq!(error_response(&full.into()).0, 409);
        let bad = decode_body::<collab_core::NewSession>(b"{\"capacity\": \"lots\"}").unwrap_err();
        assert_eq!(error_response(&bad).0, 400);
        assert_eq!(
            decode_body::<collab_core::NewSession>(b"  ").unwrap(),
            collab_core::NewSession::default()
        );
    }

    #[test]
    fn the_api_knows_its_paths() {
        assert!(serves("/api/v1/health"));
        assert!(serves("/api/v1/sessions/abc/events/stream"));
        assert!(serves("/api/v1/sessions/abc/users/guest%3Ax"));
        assert!(!serves("/api/v1/run"));
        assert!(!serves("/api/v1/sessions/abc/run"));
        assert!(!serves("/api/v2/health"));
        assert!(!serves("/index.html"));
    }

    #[test]
    fn a_body_left_unread_closes_the_connection() {
        let refused = failure(&ApiError::BodyTooLarge { max: 1 });
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        let late = failure(&ApiError::BodyTimeout);
        assert_eq!(late.headers()[header::CONNECTION], "close");
        let other = failure(&ApiError::NotAnObject);
        assert!(other.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn queries_decode_like_forms() {
        let q = "token=a%2Bb&since=3&name=Ann+Lee&empty&wait=";
        assert_eq!(query_param(q, "token").as_deref(), Some("a+b"));
        assert_eq!(query_param(q, "since").as_deref(), Some("3"));
        assert_eq!(query_param(q, "name").as_deref(), Some("Ann Lee"));
        assert_eq!(query_param(q, "empty").as_deref(), Some(""));
        assert_eq!(query_param(q, "wait").as_deref(), Some(""));
        assert_eq!(query_param(q, "rev"), None);
        assert_eq!(query_param("since=%zz", "since"), None);
        assert_eq!(
            query_param("since=1&since=2", "since").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn path_segments_decode() {
        assert_eq!(percent_decode("guest%3Aabc").as_deref(), Some("guest:abc"));
        assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("✓"));
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn sse_frames_carry_every_line() {
        assert_eq!(&sse_frame(Some("7.2"), "{}")[..], b"id: 7.2\ndata: {}\n\n");
        assert_eq!(&sse_frame(None, "a\nb")[..], b"data: a\ndata: b\n\n");
    }
}
