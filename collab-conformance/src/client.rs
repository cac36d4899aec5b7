//! The clients scenarios drive a server with: REST, WebSocket and
//! server-sent events, each call bounded by the suite's patience.

use super::*;

/// A REST response: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`null` if empty or not JSON).
    pub body: Value,
}

/// A client of one server under test.
#[derive(Clone)]
pub struct Client {
    pub(crate) base: String,
    http: reqwest::Client,
    pub(crate) hub: Option<Hub>,
    /// The client address a trusted proxy names in `X-Forwarded-For`.
    forwarded_for: Option<String>,
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
            hub: None,
            forwarded_for: None,
        }
    }

    /// The same client, its REST requests and WebSocket upgrades sent as a trusted proxy sends a
    /// client's: with `X-Forwarded-For: address`, so that a server which
    /// trusts 127.0.0.1 applies its per-address limits to each simulated
    /// client apart.
    pub fn forwarded_for(mut self, address: impl Into<String>) -> Self {
        self.forwarded_for = Some(address.into());
        self
    }

    /// The same client, able to reach the server's hub (for shutdown).
    pub fn with_hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Opens a streamed GET (server-sent events) with a bearer token and
    /// extra headers; returns the status and, for a 200, the open stream.
    pub async fn sse(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Option<Sse>) {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = send(req).await;
        let status = resp.status().as_u16();
        (
            status,
            (status == 200).then(|| Sse {
                resp,
                buffer: String::new(),
            }),
        )
    }

    /// Sends a REST request with an optional bearer token and JSON body.
    ///
    /// # Panics
    /// If the server cannot be reached: the scenario fails.
    pub async fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(address) = &self.forwarded_for {
            req = req.header("x-forwarded-for", address);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = send(req).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Sends a request with the given headers and no body; returns the
    /// status and the response's headers (names in lower case).
    pub async fn headers_of(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = send(req).await;
        let found = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        (resp.status().as_u16(), found)
    }

    /// A fresh guest token from the server (`POST /api/v1/guests`).
    pub async fn guest(&self) -> String {
        let r = self.rest("POST", "/api/v1/guests", None, None).await;
        assert_eq!(r.status, 201, "guest: {:?}", r.body);
        r.body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a session as `token`'s user; returns its id.
    pub async fn create(&self, token: &str, body: Value) -> String {
        let r = self
            .rest("POST", "/api/v1/sessions", Some(token), Some(body))
            .await;
        assert_eq!(r.status, 201, "create: {:?}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Opens a WebSocket to a session; `Err` carries the HTTP status of a refused upgrade.
    pub async fn ws(&self, session: &str, token: &str) -> Result<Ws, u16> {
        match self.upgrade(session, token).await.expect("in time") {
            Ok(ws) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// Opens a WebSocket to a session, for a client that expects failures
    /// (a server killed under it): never panics, says what went wrong.
    pub async fn try_ws(&self, session: &str, token: &str) -> Result<Ws, String> {
        match self.upgrade(session, token).await {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// The upgrade to a session's WebSocket, within [`PATIENCE`].
    async fn upgrade(
        &self,
        session: &str,
        token: &str,
    ) -> Result<Result<Ws, tokio_tungstenite::tungstenite::Error>, tokio::time::error::Elapsed>
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/ws/session/{session}?token={token}",
            self.base.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request().expect("a valid URL");
        if let Some(address) = &self.forwarded_for {
            request.headers_mut().insert(
                "x-forwarded-for",
                address.parse().expect("an address is a header value"),
            );
        }
        let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
        let connected = tokio::time::timeout(PATIENCE, connecting).await?;
        Ok(connected.map(|(socket, _)| Ws { socket }))
    }

    /// Opens a WebSocket with extra request headers; `Err` carries the HTTP
    /// status of a refused upgrade. Returns the subprotocol the server chose.
    pub async fn ws_with(
        &self,
        session: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Ws, Option<String>), u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/ws/session/{session}{query}",
            self.base.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request().expect("a valid URL");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                value.parse().expect("header value"),
            );
        }
        match tokio::time::timeout(
            PATIENCE,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        )
        .await
        .expect("in time")
        {
            Ok((socket, response)) => {
                let chosen = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok((Ws { socket }, chosen))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// Opens a WebSocket and joins; returns it with the welcome frame.
    pub async fn joined(&self, session: &str, token: &str, name: &str) -> (Ws, Value) {
        let mut ws = self.ws(session, token).await.expect("upgrade");
        ws.send(json!({"type": "join", "name": name})).await;
        let welcome = ws.until("welcome").await;
        (ws, welcome)
    }
}

/// An open server-sent event stream.
#[derive(Debug)]
pub struct Sse {
    resp: reqwest::Response,
    buffer: String,
}

/// One server-sent event: its `id` and its `data` parsed as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `id` field, if any.
    pub id: Option<String>,
    /// The `data` field as JSON.
    pub data: Value,
}

impl Sse {
    /// The next event with data (comments and keep-alives skipped); `None`
    /// when the server ends the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("JSON data");
                return Some(SseEvent { id, data });
            }
            let chunk = tokio::time::timeout(PATIENCE, self.resp.chunk())
                .await
                .expect("an event in time")
                .expect("stream readable")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// One WebSocket connection under test.
#[derive(Debug)]
pub struct Ws {
    socket: Socket,
}

/// What a connection yielded next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A JSON text frame.
    Frame(Value),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The server closed with this code and reason.
    Closed(u16, String),
}

impl Ws {
    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_raw(frame.to_string()).await;
    }

    /// Sends a JSON frame; `false` if the connection is gone (a server that
    /// died, in a crash test).
    pub async fn try_send(&mut self, frame: Value) -> bool {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_ok()
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// Sends a replica's sync message as a replica must: whole when it fits
    /// in a text frame's limit (64 KiB), else in parts.
    pub async fn send_sync(&mut self, message: Vec<u8>) {
        for frame in collab_core::parts::split(&message, SYNC_FRAME_BYTES) {
            self.send_binary(frame).await;
        }
    }

    /// Sends one WebSocket message in `frames` frames of equal size (text
    /// when `text`), as a client that fragments its messages does; `false`
    /// if the connection broke while sending. A server that refuses the
    /// message stops reading at its first frame's header.
    pub async fn try_send_fragmented(&mut self, payload: &[u8], frames: usize, text: bool) -> bool {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let size = payload.len().div_ceil(frames.max(1)).max(1);
        let chunks: Vec<&[u8]> = payload.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => Data::Text,
                (0, false) => Data::Binary,
                _ => Data::Continue,
            };
            let fin = i + 1 == chunks.len();
            let frame = Frame::message(chunk.to_vec(), OpCode::Data(opcode), fin);
            if self.socket.send(Message::Frame(frame)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Sends a binary frame; `false` if the connection broke while sending.
    pub async fn try_send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .is_ok()
    }

    /// Sends any text; `false` if the connection is gone.
    pub async fn try_send_raw(&mut self, text: String) -> bool {
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends any text.
    pub async fn send_raw(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame or close.
    pub async fn next(&mut self) -> Next {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Next::Frame(serde_json::from_str(&t).expect("JSON"))
                }
                Some(Ok(Message::Binary(b))) => return Next::Binary(b.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Next::Closed(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Next::Closed(1006, e.to_string()),
                None => return Next::Closed(1006, String::new()),
            }
        }
    }

    /// The next frame or close, if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Next> {
        tokio::time::timeout(wait, self.next()).await.ok()
    }

    /// Reads until a frame of type `ty`.
    pub async fn until(&mut self, ty: &str) -> Value {
        loop {
            match self.next().await {
                Next::Frame(f) if f["type"] == ty => return f,
                Next::Closed(code, reason) => {
                    panic!("closed ({code} {reason}) before a {ty} frame")
                }
                _ => {}
            }
        }
    }

    /// Reads until an event of kind `kind`.
    pub async fn until_event(&mut self, kind: &str) -> Value {
        loop {
            let f = self.until("event").await;
            if f["event"]["kind"] == kind {
                return f["event"].clone();
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn until_closed(&mut self) -> (u16, String) {
        loop {
            if let Next::Closed(code, reason) = self.next().await {
                return (code, reason);
            }
        }
    }
}

/// Sends `req`, failing the scenario if the server does not answer within
/// [`PATIENCE`] or cannot be reached.
async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    tokio::time::timeout(PATIENCE, req.send())
        .await
        .expect("in time")
        .expect("server reachable")
}

/// The largest binary frame a replica sends: the server's text frame limit.
pub const SYNC_FRAME_BYTES: usize = 64 * 1024;
