//! The conformance suite: scenarios every adapter must pass, run against a real
//! server on 127.0.0.1 over real sockets. An adapter's tests call
//! [`conformance_tests!`] with an async function that mounts a given
//! [`Hub`] on a fresh listener and returns its base URL; each scenario builds
//! its hub with [`hub_for`], so that the adapter under test is only glue.
//!
//! Most scenarios use [`NamedTokens`] (any token of 8+ URL-safe characters is
//! a distinct user, so scenarios can name their people); the guest scenario
//! uses the real [`collab_server::GuestAuthenticator`], whose tokens only the
//! server issues, and the credential scenario HS256 JWTs signed with
//! [`JWT_SECRET`].

use std::sync::Arc;
use std::time::Duration;

use collab_core::{AuthError, Identity};
use collab_server::{Authenticator, GuestAuthenticator, Hub, HubConfig, TokioClock};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a scenario waits for any one frame or response.
const PATIENCE: Duration = Duration::from_secs(10);

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
    base: String,
    http: reqwest::Client,
    hub: Option<Hub>,
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
            hub: None,
        }
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
        let resp = tokio::time::timeout(PATIENCE, req.send())
            .await
            .expect("in time")
            .expect("server reachable");
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
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = tokio::time::timeout(PATIENCE, req.send())
            .await
            .expect("in time")
            .expect("server reachable");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
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
        let url = format!(
            "{}/ws/session/{session}?token={token}",
            self.base.replacen("http", "ws", 1)
        );
        match tokio::time::timeout(
            PATIENCE,
            tokio_tungstenite::connect_async_with_config(url, None, true),
        )
        .await
        .expect("in time")
        {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
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

    /// Sends a binary frame; `false` if the connection broke while sending.
    pub async fn try_send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .is_ok()
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

/// Create a session over REST, read it back, change it as host; a non-host is refused.
pub async fn rest_lifecycle(c: &Client) {
    let id = c
        .create(
            "host-token-1",
            json!({"title": "Round 1", "language": "python", "code": "print(1)"}),
        )
        .await;
    assert_eq!(id.len(), 22);
    let r = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-1"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["code"].as_str(), r.body["capacity"].as_u64()),
        (Some("print(1)"), Some(10))
    );
    let r = c
        .rest(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-1"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("active")));
    let r = c
        .rest(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some("stranger-1"),
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let r = c
        .rest(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-1"),
            Some(json!({"capacity": "lots"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c.rest("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200);
}

/// Missing and bad credentials get 401; unknown sessions 404.
pub async fn bad_token_and_unknown_session(c: &Client) {
    let r = c
        .rest("POST", "/api/v1/sessions", None, Some(json!({})))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let id = c.create("host-token-2", json!({})).await;
    assert_eq!(c.ws(&id, "bad").await.err(), Some(401));
    assert_eq!(
        c.ws("AAAAAAAAAAAAAAAAAAAAAA", "someone-ok").await.err(),
        Some(404)
    );
    assert_eq!(
        c.ws("not-a-session-id", "someone-ok").await.err(),
        Some(404)
    );
    let r = c
        .rest(
            "GET",
            "/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA",
            Some("someone-ok"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

/// Two people join over WebSockets, see each other, chat, and get acks.
pub async fn join_and_chat(c: &Client) {
    let id = c.create("host-token-3", json!({})).await;
    let (mut host, welcome) = c.joined(&id, "host-token-3", "Hana").await;
    assert_eq!(welcome["participants"][0]["role"], "host");
    let (mut guest, welcome) = c.joined(&id, "guest-token-3", "Gus").await;
    assert_eq!(welcome["participants"].as_array().unwrap().len(), 2);
    let joined = host.until_event("participant_joined").await;
    assert_eq!(joined["participant"]["name"], "Gus");
    guest.send(json!({"type": "chat_send", "rid": 7, "text": "hi @Hana", "anchor": {"file": "main", "line": 1}})).await;
    let posted = host.until_event("comment_posted").await;
    assert_eq!(posted["message"]["text"], "hi @Hana");
    assert_eq!(posted["message"]["mentions"], json!([1]));
    assert_eq!(guest.until("ack").await["rid"], 7);
}

/// Garbage frames get error frames and the connection goes on.
pub async fn bad_frames_keep_the_connection(c: &Client) {
    let id = c.create("host-token-4", json!({})).await;
    let (mut ws, _) = c.joined(&id, "host-token-4", "Hana").await;
    ws.send_raw("{nope".into()).await;
    assert_eq!(ws.until("error").await["code"], "malformed_frame");
    ws.send(json!({"type": "fly", "rid": 3})).await;
    let e = ws.until("error").await;
    assert_eq!(
        (e["code"].as_str(), e["rid"].as_u64()),
        (Some("unknown_frame_type"), Some(3))
    );
    ws.send_raw(format!(
        r#"{{"type":"chat_send","text":"{}"}}"#,
        "x".repeat(70_000)
    ))
    .await;
    assert_eq!(ws.until("error").await["code"], "frame_too_large");
    ws.send(json!({"type": "heartbeat", "rid": 4})).await;
    assert_eq!(ws.until("heartbeat_ack").await["rid"], 4);
}

/// Viewers cannot change the session; a full session refuses the next joiner.
pub async fn roles_and_capacity(c: &Client) {
    let id = c.create("host-token-5", json!({"capacity": 2})).await;
    let (mut host, _) = c.joined(&id, "host-token-5", "Hana").await;
    let (mut guest, welcome) = c.joined(&id, "guest-token-5", "Gus").await;
    let guest_id = welcome["you"].as_u64().unwrap();
    host.send(json!({"type": "set_role", "participant": guest_id, "role": "viewer"}))
        .await;
    guest.until_event("role_changed").await;
    guest
        .send(json!({"type": "update_session", "rid": 1, "title": "mine"}))
        .await;
    assert_eq!(guest.until("error").await["code"], "forbidden");
    let mut third = c.ws(&id, "third-token-5").await.expect("upgrade");
    third.send(json!({"type": "join", "rid": 9})).await;
    let e = third.until("error").await;
    assert_eq!(
        (e["code"].as_str(), e["rid"].as_u64()),
        (Some("session_full"), Some(9))
    );
}

/// Kick and end close the sockets with their documented codes.
pub async fn kick_and_end_close_with_codes(c: &Client) {
    let id = c.create("host-token-6", json!({})).await;
    let (mut host, _) = c.joined(&id, "host-token-6", "Hana").await;
    let (mut guest, welcome) = c.joined(&id, "guest-token-6", "Gus").await;
    host.send(json!({"type": "kick", "participant": welcome["you"]}))
        .await;
    assert_eq!(guest.until("goodbye").await["reason"], "kicked");
    assert_eq!(guest.until_closed().await, (4001, "kicked".into()));
    assert_eq!(c.ws(&id, "guest-token-6").await.err(), Some(403));
    let r = c
        .rest(
            "POST",
            &format!("/api/v1/sessions/{id}/end"),
            Some("host-token-6"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(host.until_closed().await, (4002, "session_ended".into()));
    assert_eq!(c.ws(&id, "host-token-6").await.err(), Some(410));
}

/// A client that reconnects with `since` gets exactly what it missed.
pub async fn reconnect_and_catch_up(c: &Client) {
    let id = c.create("host-token-7", json!({})).await;
    let (mut host, _) = c.joined(&id, "host-token-7", "Hana").await;
    let (mut guest, welcome) = c.joined(&id, "guest-token-7", "Gus").await;
    let me = welcome["you"].clone();
    let last_seq = welcome["last_seq"].as_u64().unwrap();
    drop(guest);
    host.send(json!({"type": "chat_send", "text": "while you were away"}))
        .await;
    host.until_event("message_posted").await;
    guest = c.ws(&id, "guest-token-7").await.expect("upgrade");
    guest.send(json!({"type": "join", "since": last_seq})).await;
    let welcome = guest.until("welcome").await;
    assert_eq!(welcome["you"], me, "the same participant");
    let missed = guest.until("events").await;
    let seqs: Vec<u64> = missed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![last_seq + 1]);
}

/// A thin client and a replica edit the same file over real sockets and end
/// with the same text: text operations one way, automerge sync the other.
pub async fn thin_client_and_replica_edit_together(c: &Client) {
    let id = c
        .create(
            "host-token-8",
            json!({"code": "fn main() {}", "language": "rust"}),
        )
        .await;
    let (mut thin, welcome) = c.joined(&id, "host-token-8", "Hana").await;
    assert_eq!(welcome["document"]["files"]["main"], "fn main() {}");
    let mut ws = c.ws(&id, "replica-token-8").await.expect("upgrade");
    ws.send(json!({"type": "join", "mode": "replica"})).await;
    let mut replica = collab_core::ReplicaClient::new();
    // Sync until the replica has the text.
    while replica.text("main").is_none() {
        if let Next::Binary(b) = ws.next().await {
            replica.receive(&b).expect("sync message");
            if let Some(m) = replica.poll_message() {
                ws.send_binary(m).await;
            }
        }
    }
    thin.send(json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": [12, "\n// é😀"], "oid": "t1"})).await;
    assert_eq!(thin.until("text_ack").await["rev"], 1);
    // The replica gets the thin client's edit by sync (and so learns what the
    // server has: automerge sends changes once it knows the peer's state).
    while replica.text("main").as_deref() != Some("fn main() {}\n// é😀") {
        match ws.next().await {
            Next::Binary(b) => {
                replica.receive(&b).expect("sync message");
                if let Some(m) = replica.poll_message() {
                    ws.send_binary(m).await;
                }
            }
            Next::Closed(code, reason) => panic!("closed {code} {reason}"),
            Next::Frame(_) => {}
        }
    }
    replica.splice("main", 0, 2, "pub fn").expect("splice");
    if let Some(m) = replica.poll_message() {
        ws.send_binary(m).await;
    }
    // The thin client hears of the replica's edit as a text operation (a
    // replace may come as a delete and an insert). Meanwhile the replica keeps
    // answering the server, as a replica must: automerge may hold its change
    // back until it has heard the server's latest state.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    'heard: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no text_op for the replica's edit"
        );
        while let Some(next) = thin.next_within(Duration::from_millis(100)).await {
            if let Next::Frame(op) = next {
                if op["type"] == "text_op" {
                    assert_ne!(
                        op["author"],
                        json!(1),
                        "the thin client's own edit is not echoed"
                    );
                    if op["op"].to_string().contains("pub fn") {
                        break 'heard;
                    }
                }
            }
        }
        while let Some(next) = ws.next_within(Duration::from_millis(100)).await {
            if let Next::Binary(b) = next {
                replica.receive(&b).expect("sync message");
                if let Some(m) = replica.poll_message() {
                    ws.send_binary(m).await;
                }
            }
        }
    }
    let r = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-8"),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "pub fn main() {}\n// é😀");
}

/// Upgrades from another site's page are refused (cross-site WebSocket
/// hijacking); the server's own pages and non-browser clients get through.
pub async fn cross_site_upgrades_are_refused(c: &Client) {
    let id = c.create("host-token-9", json!({})).await;
    let evil = c
        .ws_with(
            &id,
            "?token=host-token-9",
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(evil.err(), Some(403));
    let host = c.base.trim_start_matches("http://").to_owned();
    let own_origin = format!("http://{host}");
    assert!(c
        .ws_with(&id, "?token=host-token-9", &[("origin", &own_origin)])
        .await
        .is_ok());
    assert!(
        c.ws(&id, "host-token-9").await.is_ok(),
        "no origin: not a browser"
    );
}

/// A browser's token rides in the subprotocol list; the server picks `collab.v1`.
pub async fn token_in_the_subprotocol(c: &Client) {
    let id = c.create("host-token-10", json!({})).await;
    let (mut ws, chosen) = c
        .ws_with(
            &id,
            "",
            &[("sec-websocket-protocol", "collab.v1, bearer.host-token-10")],
        )
        .await
        .expect("upgrade");
    assert_eq!(chosen.as_deref(), Some("collab.v1"));
    ws.send(json!({"type": "join"})).await;
    assert_eq!(ws.until("welcome").await["participants"][0]["role"], "host");
    let bad = c
        .ws_with(
            &id,
            "",
            &[("sec-websocket-protocol", "collab.v1, bearer.x")],
        )
        .await;
    assert_eq!(bad.err(), Some(401));
}

/// A client that floods frames is told `rate_limited`, then closed with 4008.
pub async fn flooding_is_refused_then_closed(c: &Client) {
    let id = c.create("host-token-11", json!({})).await;
    let (mut ws, _) = c.joined(&id, "host-token-11", "Hana").await;
    for _ in 0..400 {
        ws.send(json!({"type": "heartbeat"})).await;
    }
    let mut refused = 0;
    loop {
        match ws.next().await {
            Next::Frame(f) if f["type"] == "error" && f["code"] == "rate_limited" => refused += 1,
            Next::Closed(code, reason) => {
                assert_eq!((code, reason.as_str()), (4008, "rate_limited"));
                break;
            }
            _ => {}
        }
    }
    assert!(refused > 0);
}

/// Presence travels over real sockets: a cursor, a viewport and typing reach
/// the other participant, and `who_is_viewing` answers.
pub async fn presence_reaches_the_others(c: &Client) {
    let id = c.create("host-token-12", json!({"code": "a\nb\nc"})).await;
    let (mut host, _) = c.joined(&id, "host-token-12", "Hana").await;
    let (mut guest, welcome) = c.joined(&id, "guest-token-12", "Gus").await;
    let guest_id = welcome["you"].clone();
    guest
        .send(
            json!({"type": "presence", "cursor": {"file": "main", "anchor": 1, "head": 3},
            "viewport": {"file": "main", "first_line": 1, "last_line": 3}, "typing": true}),
        )
        .await;
    loop {
        let f = host.until("presence").await;
        if f["participant"] == guest_id && f["presence"]["typing"] == true {
            assert_eq!(f["presence"]["cursors"][0]["head"], 3);
            assert_eq!(f["presence"]["viewport"]["last_line"], 3);
            break;
        }
    }
    host.send(json!({"type": "who_is_viewing", "file": "main", "rid": 2}))
        .await;
    let viewers = host.until("viewers").await;
    assert_eq!(viewers["participants"], json!([guest_id]));
}

/// A client without a WebSocket joins over REST, reads by long-poll (a change
/// reaches it within one round trip), and leaves; only members may read.
pub async fn rest_join_poll_and_leave(c: &Client) {
    let id = c
        .create("host-token-14", json!({"code": "print(1)", "capacity": 2}))
        .await;
    let (mut host, _) = c.joined(&id, "host-token-14", "Hana").await;
    let users = format!("/api/v1/sessions/{id}/users");
    let r = c
        .rest(
            "POST",
            &users,
            Some("poller-token-14"),
            Some(json!({"name": "Pat"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], "Pat");
    assert_eq!(r.body["presence"]["status"], "active");
    let pat = r.body["id"].clone();
    assert_eq!(
        host.until_event("participant_joined").await["participant"]["id"],
        pat
    );
    let huge = json!({"name": "n".repeat(2 * 1024 * 1024)});
    let too_big = c
        .rest("POST", &users, Some("huge-token-14"), Some(huge))
        .await;
    assert_eq!(
        (too_big.status, too_big.body["error"]["code"].as_str()),
        (413, Some("frame_too_large"))
    );
    // Two online: the session is full for a third, over REST as over WebSocket.
    let full = c.rest("POST", &users, Some("third-token-14"), None).await;
    assert_eq!(
        (full.status, full.body["error"]["code"].as_str()),
        (409, Some("session_full"))
    );

    let view = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(view.body["online"], 2);
    let (since, rev) = (view.body["last_seq"].clone(), view.body["rev"].clone());
    let poll = format!("/api/v1/sessions/{id}/events?since={since}&rev={rev}&wait=30");
    let waiting = {
        let (c, poll) = (c.clone(), poll.clone());
        tokio::spawn(async move { c.rest("GET", &poll, Some("poller-token-14"), None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "nothing new yet: the read waits");
    host.send(json!({"type": "chat_send", "text": "hello @Pat"}))
        .await;
    let page = waiting.await.expect("the read");
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.body["events"][0]["kind"], "message_posted");
    assert_eq!(page.body["events"][0]["message"]["mentions"], json!([pat]));

    host.send(json!({"type": "text_op", "file": "main", "rev": rev, "op": [8, "\n"]}))
        .await;
    let since = page.body["last_seq"].clone();
    let edits = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since={since}&rev={rev}&wait=30"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(edits.body["ops"][0]["type"], "text_op", "{:?}", edits.body);
    assert_eq!(edits.body["rev"], rev.as_u64().unwrap() + 1);

    let bad = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since=soon"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let stranger = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events"),
            Some("stranger-token-14"),
            None,
        )
        .await;
    assert_eq!(stranger.status, 403);

    let someone_else = c
        .rest(
            "DELETE",
            &format!("{users}/host-token-14"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(someone_else.status, 403, "only yourself");
    let left = c
        .rest(
            "DELETE",
            &format!("{users}/{pat}"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(left.status, 204);
    assert_eq!(
        host.until_event("participant_left").await["participant"],
        pat
    );
    let after = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(after.status, 403);
    let view = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-14"),
            None,
        )
        .await;
    assert_eq!(view.body["online"], 1);
}

/// Server-sent events carry the session's events and document changes, each
/// with an id that `Last-Event-ID` resumes from, and end with the session.
pub async fn event_stream_follows_the_session(c: &Client) {
    let id = c.create("host-token-15", json!({})).await;
    let (mut host, _) = c.joined(&id, "host-token-15", "Hana").await;
    let path = format!("/api/v1/sessions/{id}/events/stream?rev=0");
    let (status, stream) = c.sse(&path, "host-token-15", &[]).await;
    assert_eq!(status, 200);
    let mut stream = stream.expect("a stream");
    let joined = stream.next().await.expect("the join");
    assert_eq!(
        (joined.data["kind"].as_str(), joined.id.as_deref()),
        (Some("participant_joined"), Some("1.0"))
    );
    host.send(json!({"type": "chat_send", "text": "hi"})).await;
    let chat = stream.next().await.expect("the message");
    assert_eq!(
        (chat.data["kind"].as_str(), chat.id.as_deref()),
        (Some("message_posted"), Some("2.0"))
    );
    host.send(json!({"type": "text_op", "file": "main", "rev": 0, "op": ["x"]}))
        .await;
    let edit = stream.next().await.expect("the edit");
    assert_eq!(
        (edit.data["type"].as_str(), edit.id.as_deref()),
        (Some("text_op"), Some("2.1"))
    );

    let (_, resumed) = c
        .sse(&path, "host-token-15", &[("last-event-id", "1.0")])
        .await;
    let mut resumed = resumed.expect("a stream");
    assert_eq!(resumed.next().await.expect("resumed").data["seq"], 2);
    assert_eq!(
        resumed.next().await.expect("resumed").data["type"],
        "text_op"
    );

    let (status, _) = c.sse(&path, "stranger-token-15", &[]).await;
    assert_eq!(status, 403);
    c.rest(
        "POST",
        &format!("/api/v1/sessions/{id}/end"),
        Some("host-token-15"),
        None,
    )
    .await;
    assert_eq!(
        stream.next().await.expect("the end").data["kind"],
        "session_ended"
    );
    assert_eq!(
        stream.next().await,
        None,
        "the stream ends with the session"
    );
    let (status, _) = c
        .sse(&path, "host-token-15", &[("last-event-id", "3.1")])
        .await;
    assert_eq!(status, 410, "nothing more to stream: EventSource stops");
}

/// A reader that stops reading while another participant keeps writing is
/// dropped with `slow_consumer` (4004); the writer is answered every time,
/// and the reader catches up on everything when it reconnects.
pub async fn slow_reader_is_dropped_and_catches_up(c: &Client) {
    let id = c.create("host-token-16", json!({})).await;
    let (mut writer, _) = c.joined(&id, "host-token-16", "Hana").await;
    let (mut reader, welcome) = c.joined(&id, "slow-token-16", "Sol").await;
    let since = welcome["last_seq"].clone();
    let text = "x".repeat(3_900);
    let mut sent: u64 = 0;
    loop {
        writer
            .send(json!({"type": "chat_send", "text": text, "rid": sent}))
            .await;
        assert_eq!(
            writer.until("ack").await["rid"],
            sent,
            "the writer never waits"
        );
        sent += 1;
        if sent % 100 == 0 {
            let stats = c.rest("GET", "/api/v1/stats", None, None).await;
            if stats.body["slow_consumer_drops"] == 1 {
                break;
            }
        }
        assert!(sent < 50_000, "the reader was never dropped");
    }
    // What was queued before the drop still arrives, then the close.
    let closed = reader.until_closed().await;
    assert_eq!(closed.0, 4004, "{closed:?}");

    let (mut back, _) = c.joined(&id, "slow-token-16", "Sol").await;
    let mut after = since.as_u64().expect("a seq");
    let mut posted = 0;
    loop {
        back.send(json!({"type": "events_since", "since": after, "rid": 1}))
            .await;
        let page = back.until("events").await;
        for event in page["events"].as_array().expect("events") {
            after = event["seq"].as_u64().expect("a seq");
            posted += u64::from(event["kind"] == "message_posted");
        }
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(posted, sent, "every message, none twice");
}

/// A peer that stops answering pings is dropped and shown offline; one that
/// only listens stays (its pongs keep it alive). Timers are shortened here;
/// by default the ping comes every 15 s and a silent peer goes after 45 s.
pub async fn dead_peers_are_dropped(c: &Client) {
    let id = c.create("host-token-17", json!({})).await;
    let (mut host, _) = c.joined(&id, "host-token-17", "Hana").await;
    let (_dead, welcome) = c.joined(&id, "dead-token-17", "Ded").await;
    let dead = welcome["you"].clone();
    let (mut listener, _) = c.joined(&id, "quiet-token-17", "Quinn").await;
    // The listener sends nothing, but reads all along (and so answers pings).
    let listening = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_millis(3_000);
        while let Ok(next) = tokio::time::timeout_at(until, listener.next()).await {
            assert!(
                !matches!(next, Next::Closed(..)),
                "a listening peer was dropped: {next:?}"
            );
        }
        listener
    });
    loop {
        let f = host.until("presence").await;
        if f["participant"] == dead && f["presence"]["status"] == "offline" {
            break;
        }
    }
    let mut listener = listening.await.expect("the listener stayed");
    listener.send(json!({"type": "heartbeat", "rid": 3})).await;
    assert_eq!(listener.until("heartbeat_ack").await["rid"], 3);
}

fn jwt(sub: &str, ttl: Duration) -> String {
    let claims = collab_jwt::Claims::new(sub, ttl).with_name(sub);
    collab_jwt::JwtAuthenticator::issue_hs256(JWT_SECRET, &claims).expect("signed")
}

/// A connection refreshes its JWT with `authenticate` and stays; one that
/// does not is closed with `token_expired` (4005) when its token runs out. A
/// refused or foreign token changes nothing; an expired one cannot connect.
pub async fn tokens_refresh_or_expire(c: &Client) {
    let host = jwt("host-18", Duration::from_secs(3_600));
    let id = c.create(&host, json!({})).await;
    let (mut ann, _) = c
        .joined(&id, &jwt("ann-18", Duration::from_secs(2)), "Ann")
        .await;
    let (mut bo, _) = c
        .joined(&id, &jwt("bo-18", Duration::from_secs(2)), "Bo")
        .await;
    let fresh = jwt("ann-18", Duration::from_secs(3_600));
    ann.send(json!({"type": "authenticate", "token": fresh, "rid": 1}))
        .await;
    assert_eq!(ann.until("ack").await["rid"], 1);
    bo.send(json!({"type": "authenticate", "token": fresh, "rid": 2}))
        .await;
    assert_eq!(bo.until("error").await["code"], "forbidden");
    bo.send(json!({"type": "authenticate", "token": "not-a-jwt", "rid": 3}))
        .await;
    assert_eq!(bo.until("error").await["code"], "unauthorized");
    assert_eq!(bo.until("goodbye").await["reason"], "token_expired");
    assert_eq!(bo.until_closed().await, (4005, "token_expired".into()));
    // Past its first token's expiry, Ann is still here.
    ann.send(json!({"type": "heartbeat", "rid": 4})).await;
    assert_eq!(ann.until("heartbeat_ack").await["rid"], 4);

    let mut stale = collab_jwt::Claims::new("cy-18", Duration::ZERO);
    stale.exp = stale.exp.saturating_sub(600);
    let stale = collab_jwt::JwtAuthenticator::issue_hs256(JWT_SECRET, &stale).expect("signed");
    assert_eq!(c.ws(&id, &stale).await.err(), Some(401));
}

/// Shutting the server down says goodbye to every client with 1001.
pub async fn shutdown_says_goodbye(c: &Client) {
    let id = c.create("host-token-19", json!({})).await;
    let (mut host, _) = c.joined(&id, "host-token-19", "Hana").await;
    let (mut guest, _) = c.joined(&id, "guest-token-19", "Gus").await;
    c.hub.as_ref().expect("the server's hub").shutdown().await;
    for ws in [&mut host, &mut guest] {
        assert_eq!(ws.until("goodbye").await["reason"], "server_shutdown");
        assert_eq!(ws.until_closed().await, (1001, "server_shutdown".into()));
    }
}

/// A test authenticator: any token of 8 to 128 URL-safe characters is a
/// user of its own, so scenarios can name their people with strings. The
/// user id is a digest of the token, never the token. Never use it outside
/// tests: whoever guesses a string is that user.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamedTokens;

#[async_trait::async_trait]
impl Authenticator for NamedTokens {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        use std::hash::{Hash, Hasher};
        let token = token.ok_or(AuthError::Missing)?;
        let valid = (8..=128).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(AuthError::Invalid);
        }
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut digest);
        Ok(Identity::new(
            format!("user-{:016x}", digest.finish()),
            "Guest",
        ))
    }
}

/// The HS256 secret of the JWT scenario's authenticator.
pub const JWT_SECRET: &[u8] = b"conformance-secret-of-at-least-32-bytes";

/// The hub a scenario runs against: default settings, except where the
/// scenario needs small limits or short timers to happen within a test.
pub fn hub_for(scenario: &str) -> Hub {
    let mut config = HubConfig::default();
    let mut auth: Arc<dyn Authenticator> = Arc::new(NamedTokens);
    match scenario {
        "slow_reader_is_dropped_and_catches_up" => {
            // A small queue, and no rate limit, so that one writer can
            // outrun a reader in a test's time.
            config.outbound_queue = 32;
            config.session.frames_per_second = 1_000_000;
            config.session.frame_burst = 1_000_000;
        }
        "dead_peers_are_dropped" => {
            config.keepalive = Duration::from_millis(200);
            config.session.presence.stale_after = Duration::from_millis(1_500);
        }
        "tokens_refresh_or_expire" | "session_scoped_tokens" => {
            auth = Arc::new(collab_jwt::JwtAuthenticator::hs256(JWT_SECRET));
        }
        "slow_and_idle_connections_are_closed" => {
            config.body_timeout = Duration::from_millis(800);
        }
        "polls_count_against_the_address" => {
            config.max_connections_per_address = 3;
        }
        "trusted_proxies_name_the_client" => {
            config.max_connections_per_address = 2;
            config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
        }
        "session_creation_is_rate_limited" => {
            config.session_creation = collab_server::Rate::new(3, Duration::from_secs(3600));
        }
        "guests_are_issued_and_kicks_hold" => {
            auth = Arc::new(GuestAuthenticator::random().expect("random key"));
        }
        _ => {}
    }
    Hub::with_config(auth, Arc::new(TokioClock::new()), config)
}

/// The HTTP limits a scenario serves with: the defaults, except where the
/// scenario needs them small.
pub fn limits_for(scenario: &str) -> collab_server::HttpLimits {
    let mut limits = collab_server::HttpLimits::default();
    match scenario {
        "slow_and_idle_connections_are_closed" => {
            limits.header_timeout = Duration::from_millis(800);
        }
        "connections_are_capped_per_address" => {
            limits.max_connections_per_address = 4;
        }
        _ => {}
    }
    limits
}

/// Generates one `#[tokio::test]` per scenario. `$serve` is an async function
/// taking the scenario's [`Hub`] and HTTP limits and returning the base URL
/// of a server that mounts the hub and serves with those limits.
#[macro_export]
macro_rules! conformance_tests {
    ($serve:expr) => {
        $crate::conformance_tests!(@each $serve;
            rest_lifecycle, bad_token_and_unknown_session, join_and_chat,
            bad_frames_keep_the_connection, roles_and_capacity,
            kick_and_end_close_with_codes, reconnect_and_catch_up,
            thin_client_and_replica_edit_together, cross_site_upgrades_are_refused,
            token_in_the_subprotocol, flooding_is_refused_then_closed,
            presence_reaches_the_others, rest_join_poll_and_leave,
            event_stream_follows_the_session, slow_reader_is_dropped_and_catches_up,
            dead_peers_are_dropped, tokens_refresh_or_expire, shutdown_says_goodbye,
            guests_are_issued_and_kicks_hold, session_scoped_tokens,
            strangers_and_the_banned_read_nothing, lenient_input_is_refused,
            slow_and_idle_connections_are_closed, connections_are_capped_per_address,
            oversized_messages_are_refused_unread, polls_count_against_the_address,
            session_creation_is_rate_limited, chat_sends_are_idempotent,
            trusted_proxies_name_the_client, a_megabyte_paste_reaches_everyone);
    };
    (@each $serve:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let hub = $crate::hub_for(stringify!($name));
                let limits = $crate::limits_for(stringify!($name));
                let client = $crate::Client::new($serve(hub.clone(), limits).await).with_hub(hub);
                $crate::$name(&client).await;
            }
        )*
    };
}

/// Every string in a JSON value, keys included, for checks on what a client saw.
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings_in(v, out);
            }
        }
        _ => {}
    }
}

/// Guests get their identity from the server: a made-up token is refused,
/// nothing another client receives carries someone's credential, no value
/// seen on the wire works as one, and a kicked guest stays out.
pub async fn guests_are_issued_and_kicks_hold(c: &Client) {
    assert_eq!(
        c.ws("AAAAAAAAAAAAAAAAAAAAAA", "tab-5f3a9c1e").await.err(),
        Some(401)
    );
    let host = c.guest().await;
    let gus = c.guest().await;
    assert_ne!(host, gus);
    let r = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("made-up-token-1"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 401, "a made-up token creates nothing");
    let id = c.create(&host, json!({"title": "Guests"})).await;
    let (mut hana, _) = c.joined(&id, &host, "Hana").await;
    let (mut gus_ws, welcome) = c.joined(&id, &gus, "Gus").await;
    gus_ws
        .send(json!({"type": "chat_send", "rid": 1, "text": "hello"}))
        .await;
    gus_ws.until("ack").await;
    // Everything Gus could read: his welcome, the session over REST, and
    // the events so far.
    let mut seen = Vec::new();
    strings_in(&welcome, &mut seen);
    let read = c
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(&gus), None)
        .await;
    assert_eq!(read.status, 200);
    strings_in(&read.body, &mut seen);
    let events = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since=0"),
            Some(&gus),
            None,
        )
        .await;
    strings_in(&events.body, &mut seen);
    assert!(seen.len() > 10, "read something: {seen:?}");
    for value in &seen {
        assert!(
            !value.contains(&host),
            "the host's credential reached a guest"
        );
        if value.len() >= 8 {
            let tried = c.ws(&id, value).await.err();
            assert_eq!(tried, Some(401), "{value} worked as a credential");
        }
    }
    // The host removes Gus: his identity is banned, and a fresh guest
    // identity from his address is refused too when the host bans it.
    let gus_id = welcome["you"].as_u64().expect("id");
    hana.send(json!({"type": "kick", "rid": 2, "participant": gus_id, "ban_address": true}))
        .await;
    hana.until("ack").await;
    assert_eq!(gus_ws.until_closed().await, (4001, "kicked".into()));
    assert_eq!(c.ws(&id, &gus).await.err(), Some(403));
    let fresh = c.guest().await;
    assert_eq!(c.ws(&id, &fresh).await.err(), Some(403), "address banned");
    let read = c
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(&gus), None)
        .await;
    assert_eq!(read.body["error"]["code"], "banned");
}

/// A JWT scoped to one session joins that session in the role it names,
/// and nothing else; an editor's token creates no session.
pub async fn session_scoped_tokens(c: &Client) {
    use collab_core::{Role, SessionId};
    let sign = |claims: &collab_jwt::Claims| {
        collab_jwt::JwtAuthenticator::issue_hs256(JWT_SECRET, claims).expect("signed")
    };
    let host = sign(&collab_jwt::Claims::new(
        "host-20",
        Duration::from_secs(600),
    ));
    let a = c.create(&host, json!({})).await;
    let b = c.create(&host, json!({})).await;
    let a_id = SessionId::parse(&a).expect("id");
    let viewer = sign(
        &collab_jwt::Claims::new("cand-20", Duration::from_secs(600))
            .with_session(&a_id, Role::Viewer),
    );
    let (_, welcome) = c.joined(&a, &viewer, "Cand").await;
    let me = welcome["you"].clone();
    let mine = welcome["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["id"] == me)
        .expect("me")
        .clone();
    assert_eq!(mine["role"], "viewer");
    assert_eq!(c.ws(&b, &viewer).await.err(), Some(403));
    let read = c
        .rest("GET", &format!("/api/v1/sessions/{b}"), Some(&viewer), None)
        .await;
    assert_eq!(read.status, 403);
    let r = c
        .rest("POST", "/api/v1/sessions", Some(&viewer), Some(json!({})))
        .await;
    assert_eq!(r.status, 403, "a scoped token creates nothing");
    let editor =
        sign(&collab_jwt::Claims::new("ed-20", Duration::from_secs(600)).with_role(Role::Editor));
    let r = c
        .rest("POST", "/api/v1/sessions", Some(&editor), Some(json!({})))
        .await;
    assert_eq!(
        r.status, 403,
        "an editor's token does not make its holder a host"
    );
}

/// Strangers read only a session's summary, the banned nothing; members
/// read it all.
pub async fn strangers_and_the_banned_read_nothing(c: &Client) {
    let id = c
        .create("host-token-21", json!({"code": "secret code"}))
        .await;
    let path = format!("/api/v1/sessions/{id}");
    let member = c.rest("GET", &path, Some("host-token-21"), None).await;
    assert_eq!(member.body["code"], "secret code");
    let stranger = c.rest("GET", &path, Some("stranger-21"), None).await;
    assert_eq!(stranger.status, 200);
    assert!(stranger.body.get("code").is_none(), "{:?}", stranger.body);
    assert!(stranger.body.get("participants").is_none());
    assert_eq!(stranger.body["capacity"], 10);
    let events = c
        .rest(
            "GET",
            &format!("{path}/events?since=0"),
            Some("stranger-21"),
            None,
        )
        .await;
    assert_eq!(events.status, 403);
    let (mut host, _) = c.joined(&id, "host-token-21", "Hana").await;
    let (_gus, welcome) = c.joined(&id, "guest-token-21", "Gus").await;
    host.send(json!({"type": "kick", "rid": 1, "participant": welcome["you"]}))
        .await;
    host.until("ack").await;
    let kicked = c.rest("GET", &path, Some("guest-token-21"), None).await;
    assert_eq!(
        (kicked.status, kicked.body["error"]["code"].as_str()),
        (403, Some("banned"))
    );
}

/// Lenient parsing is gone: a repeated key, a body that is not an object.
pub async fn lenient_input_is_refused(c: &Client) {
    let id = c.create("host-token-22", json!({})).await;
    let (mut ws, _) = c.joined(&id, "host-token-22", "Hana").await;
    ws.send_raw(r#"{"type":"heartbeat","rid":1,"type":"leave"}"#.into())
        .await;
    let err = ws.until("error").await;
    assert_eq!(err["code"], "malformed_frame");
    ws.send(json!({"type": "heartbeat", "rid": 2})).await;
    assert_eq!(ws.until("heartbeat_ack").await["rid"], 2, "still joined");
    let r = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("host-token-22"),
            Some(json!([])),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("host-token-22"),
            Some(json!({"expires_after_secs": u64::MAX})),
        )
        .await;
    assert_eq!(r.status, 400, "expiry is capped");
}

/// The server's address, for raw TCP clients.
fn socket_address(c: &Client) -> String {
    c.base.trim_start_matches("http://").to_owned()
}

/// Whether the server closes `tcp` within `wait` (reads until end of file).
async fn closed_within(tcp: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.is_ok()
}

/// Slow headers, silence and a stalled body are all cut off; the server
/// keeps answering everyone else.
pub async fn slow_and_idle_connections_are_closed(c: &Client) {
    use tokio::io::AsyncWriteExt;
    let addr = socket_address(c);
    let mut silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let dribble = async {
        for _ in 0..20 {
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), dribble).await;
    assert!(
        closed_within(&mut slow, Duration::from_secs(3)).await,
        "slow headers cut off"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "silence cut off"
    );
    // A body that stops halfway gets 408.
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer host-token-23\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\":",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        while let Ok(n) = stalled.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer to a stalled body");
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    let r = c.rest("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200);
}

/// Past the per-address cap a connection is closed at once, WebSockets
/// count, and a freed place is taken again.
pub async fn connections_are_capped_per_address(c: &Client) {
    let addr = socket_address(c);
    let id = c.create("host-token-24", json!({})).await;
    let (ws, _) = c.joined(&id, "host-token-24", "Hana").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    // The fifth (the WebSocket is one) is closed as soon as it is accepted.
    let mut over = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    assert!(
        closed_within(&mut over, Duration::from_secs(2)).await,
        "over the cap"
    );
    drop(ws);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c.rest("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200, "a freed place is usable");
}

/// A WebSocket message past the protocol's limit is refused by the
/// framework before it is read into memory, and the server goes on.
pub async fn oversized_messages_are_refused_unread(c: &Client) {
    let id = c.create("host-token-25", json!({})).await;
    let (mut ws, _) = c.joined(&id, "host-token-25", "Hana").await;
    let limit = c.hub.as_ref().expect("hub").max_message_bytes();
    let sent = ws.try_send_binary(vec![0u8; limit + 1024]).await;
    let closed = if sent {
        ws.until_closed().await.0
    } else {
        1009
    };
    assert_eq!(closed, 1009, "message too big");
    let (mut again, _) = c.joined(&id, "host-token-25", "Hana").await;
    again.send(json!({"type": "heartbeat", "rid": 1})).await;
    assert_eq!(again.until("heartbeat_ack").await["rid"], 1);
}

/// Long-polls and event streams hold one of the address's places while they
/// wait.
pub async fn polls_count_against_the_address(c: &Client) {
    let id = c.create("host-token-26", json!({})).await;
    let r = c
        .rest(
            "POST",
            &format!("/api/v1/sessions/{id}/users"),
            Some("host-token-26"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 201);
    let path = format!("/api/v1/sessions/{id}/events/stream");
    let (s1, first) = c.sse(&path, "host-token-26", &[]).await;
    let (s2, second) = c.sse(&path, "host-token-26", &[]).await;
    let (s3, third) = c.sse(&path, "host-token-26", &[]).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(s3, 429, "the third place is taken by the REST seat");
    drop((first, second, third));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since=0&wait=0"),
            Some("host-token-26"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "places free when streams close");
}

/// A user, and an address, create only so many sessions.
pub async fn session_creation_is_rate_limited(c: &Client) {
    for _ in 0..3 {
        c.create("host-token-27", json!({})).await;
    }
    let r = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("host-token-27"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    // The same address under another identity is held too.
    let r = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("other-token-27"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 429);
}

/// `chat_send` with a `cid` posts once however often it is sent.
pub async fn chat_sends_are_idempotent(c: &Client) {
    let id = c.create("host-token-28", json!({})).await;
    let (mut ws, _) = c.joined(&id, "host-token-28", "Hana").await;
    ws.send(json!({"type": "chat_send", "rid": 1, "text": "once", "cid": "m-1"}))
        .await;
    let first = ws.until("ack").await;
    ws.send(json!({"type": "chat_send", "rid": 2, "text": "once", "cid": "m-1"}))
        .await;
    let second = ws.until("ack").await;
    assert_eq!(first["seq"], second["seq"]);
    let history = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since=0&wait=0"),
            Some("host-token-28"),
            None,
        )
        .await;
    let posted = history.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "message_posted")
        .count();
    assert_eq!(posted, 1);
    ws.send(json!({"type": "chat_send", "rid": 3, "text": "x", "cid": "x".repeat(65)}))
        .await;
    assert_eq!(ws.until("error").await["code"], "invalid_input");
    ws.send(json!({"type": "text_op", "rid": 4, "rev": 0, "file": "main", "op": ["a"], "oid": "o".repeat(65)}))
        .await;
    assert_eq!(ws.until("error").await["code"], "invalid_input");
}

/// Behind a trusted proxy each forwarded client has its own places; a
/// client's own `X-Forwarded-For` counts only when a trusted proxy sent it.
pub async fn trusted_proxies_name_the_client(c: &Client) {
    let id = c.create("host-token-29", json!({})).await;
    let path = format!("/api/v1/sessions/{id}/events/stream");
    c.rest(
        "POST",
        &format!("/api/v1/sessions/{id}/users"),
        Some("host-token-29"),
        Some(json!({})),
    )
    .await;
    // Two clients behind the proxy (127.0.0.1, trusted): two places each.
    let mut open = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            let (status, s) = c
                .sse(&path, "host-token-29", &[("x-forwarded-for", client)])
                .await;
            assert_eq!(status, 200, "{client}");
            open.push(s);
        }
        let (status, _) = c
            .sse(&path, "host-token-29", &[("x-forwarded-for", client)])
            .await;
        assert_eq!(status, 429, "{client} is at its limit");
    }
    let (status, _) = c
        .sse(&path, "host-token-29", &[("forwarded", "for=203.0.113.3")])
        .await;
    assert_eq!(status, 200, "Forwarded names a third client");
}

/// A thin client (collab-ot.mjs's DocumentClient, under node) pastes a
/// megabyte and types on at once, then replays 3,000 keystrokes as fast as
/// it can; the other client and the server end with the same text, the
/// paste whole and every keystroke after it, with no edit refused (the
/// client paces itself under the frame limit). (A 69 KB paste used to be one frame over the limit, refused
/// without a rid, and everything after it was never sent.)
pub async fn a_megabyte_paste_reaches_everyone(c: &Client) {
    let id = c.create("host-token-30", json!({"code": ""})).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js/paste.mjs");
    let size = "1048576";
    let output =
        tokio::process::Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
            .arg("--experimental-websocket")
            .arg("--no-warnings")
            .arg(&script)
            .args([
                c.base.as_str(),
                &id,
                "paster-token-30",
                "watcher-token-30",
                size,
            ])
            .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the paste finishes in time")
        .expect("node runs (it is needed for these tests)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["same"], true, "{result}");
    assert_eq!(result["has_paste"], true, "{result}");
    assert_eq!(result["ends_typed"], true, "{result}");
    assert_eq!(result["pending"], false, "{result}");
    assert_eq!(
        result["errors"],
        json!([]),
        "nothing refused, the replay's 3,000 one-keystroke edits included: {result}"
    );
    assert!(
        result["a_len"].as_u64().unwrap_or(0) > 1_048_576 + 3_000,
        "{result}"
    );
    let read = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("paster-token-30"),
            None,
        )
        .await;
    assert_eq!(
        read.body["code"]
            .as_str()
            .map(|t| t.encode_utf16().count() as u64),
        result["a_len"].as_u64(),
        "the server holds the same text"
    );
}
