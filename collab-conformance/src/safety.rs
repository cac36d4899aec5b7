//! Scenarios of a server open to the internet: guests, scoped tokens,
//! bans, strict input, slow and oversized requests, connection caps, rate
//! limits, proxies, and large pastes.

use super::*;

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

/// A front end on another origin may call the REST API when the hub's
/// origin policy lets it open WebSockets: preflights answered, answers
/// readable; any other origin gets no such headers.
pub async fn cross_origin_calls_follow_the_origin_policy(c: &Client) {
    let header = |found: &[(String, String)], name: &str| {
        found
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let app = "https://app.example.com";
    let (status, found) = c
        .headers_of(
            "OPTIONS",
            "/api/v1/sessions",
            &[
                ("origin", app),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        header(&found, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    let methods = header(&found, "access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = header(&found, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("authorization"), "{allowed}");

    let (status, found) = c
        .headers_of("GET", "/api/v1/health", &[("origin", app)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&found, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    assert_eq!(header(&found, "vary").as_deref(), Some("Origin"));

    let evil = "https://evil.example";
    let (status, found) = c
        .headers_of(
            "OPTIONS",
            "/api/v1/sessions",
            &[("origin", evil), ("access-control-request-method", "POST")],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(header(&found, "access-control-allow-origin"), None);
    let (_, found) = c
        .headers_of("GET", "/api/v1/health", &[("origin", evil)])
        .await;
    assert_eq!(
        header(&found, "access-control-allow-origin"),
        None,
        "a page elsewhere cannot read the answer"
    );
}
