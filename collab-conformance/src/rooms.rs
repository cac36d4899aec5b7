//! Scenarios of a session's life over WebSockets: REST lifecycle, joining,
//! chat, roles, kicks, catching up, editing, presence.

use super::*;

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

/// The create answer carries what a creator needs next, the creator is a
/// member, and `PATCH` with `code` is an edit merged with what others typed.
pub async fn rest_create_answer_and_code_patches(c: &Client) {
    let made = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("host-token-20"),
            Some(json!({"title": "Patch", "code": "print(1)\n"})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().expect("id").to_owned();
    assert_eq!(made.body["code"], "print(1)\n");
    assert_eq!(made.body["rev"], 0);
    let people = made.body["participants"].as_array().expect("participants");
    assert_eq!(people.len(), 1, "the creator is a member");
    assert_eq!(people[0]["role"], "host");
    assert_eq!(people[0]["present"], true);

    let session = format!("/api/v1/sessions/{id}");
    let r = c
        .rest(
            "PATCH",
            &session,
            Some("host-token-20"),
            Some(json!({"code": "print(2)\n"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (200, Some("print(2)\n")),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["rev"], 1);

    // Someone types a line at the top after revision 1; a PATCH made at
    // revision 1 changes the call and keeps their line.
    let (mut typist, _) = c.joined(&id, "typist-token-20", "Tia").await;
    typist
        .send(json!({"type": "text_op", "file": "main", "rev": 1, "op": ["# top\n", 9], "rid": 1}))
        .await;
    typist.until("text_ack").await;
    let r = c
        .rest(
            "PATCH",
            &session,
            Some("host-token-20"),
            Some(json!({"code": "print(3)\n", "rev": 1, "title": "Merged"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["code"], "# top\nprint(3)\n",
        "rebased, not overwritten"
    );
    assert_eq!(
        (r.body["rev"].as_u64(), r.body["title"].as_str()),
        (Some(3), Some("Merged"))
    );
    let seen = typist.until("text_op").await;
    assert_eq!(seen["rev"], 3, "the others get it as an edit");

    for (body, status, code) in [
        (json!({}), 400, "invalid_input"),
        (json!({"code": "x", "rev": 99}), 400, "unknown_revision"),
    ] {
        let r = c
            .rest("PATCH", &session, Some("host-token-20"), Some(body))
            .await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{:?}",
            r.body
        );
    }
    let r = c
        .rest(
            "PATCH",
            &session,
            Some("stranger-token-20"),
            Some(json!({"code": "mine"})),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let unchanged = c.rest("GET", &session, Some("host-token-20"), None).await;
    assert_eq!(unchanged.body["code"], "# top\nprint(3)\n");
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
    // Nobody new gets in; a member comes back to review it, read-only.
    assert_eq!(c.ws(&id, "stranger-token-6").await.err(), Some(410));
    let (mut review, welcome) = c.joined(&id, "host-token-6", "Renamed").await;
    assert_eq!(welcome["session"]["status"], "ended");
    assert_eq!(
        welcome["participants"][0]["name"], "Hana",
        "reviewing renames nobody"
    );
    review
        .send(json!({"type": "chat_send", "text": "too late", "rid": 1}))
        .await;
    let refused = review.until("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["rid"].as_u64()),
        (Some("session_ended"), Some(1))
    );
    review
        .send(json!({"type": "events_since", "since": 0, "rid": 2}))
        .await;
    let page = review.until("events").await;
    let kinds: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.last(), Some(&"session_ended"), "{kinds:?}");
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
    let (mut ws, mut replica) = replica_joined(c, &id, "replica-token-8").await;
    thin.send(json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": [12, "\n// é😀"], "oid": "t1"})).await;
    assert_eq!(thin.until("text_ack").await["rev"], 1);
    // The replica gets the thin client's edit by sync (and so learns what the
    // server has: automerge sends changes once it knows the peer's state).
    while replica.text("main").as_deref() != Some("fn main() {}\n// é😀") {
        match ws.next().await {
            Next::Binary(b) => {
                replica.receive(&b).expect("sync message");
                if let Some(m) = replica.poll_message() {
                    ws.send_sync(m).await;
                }
            }
            Next::Closed(code, reason) => panic!("closed {code} {reason}"),
            Next::Frame(_) => {}
        }
    }
    replica.splice("main", 0, 2, "pub fn").expect("splice");
    if let Some(m) = replica.poll_message() {
        ws.send_sync(m).await;
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
                    ws.send_sync(m).await;
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

/// A replica joined over a WebSocket and synced until it has the session's
/// `main` file.
async fn replica_joined(c: &Client, id: &str, token: &str) -> (Ws, collab_core::ReplicaClient) {
    let mut ws = c.ws(id, token).await.expect("upgrade");
    ws.send(json!({"type": "join", "mode": "replica"})).await;
    let mut replica = collab_core::ReplicaClient::new();
    while replica.text("main").is_none() {
        if let Next::Binary(b) = ws.next().await {
            replica.receive(&b).expect("sync message");
            if let Some(m) = replica.poll_message() {
                ws.send_sync(m).await;
            }
        }
    }
    (ws, replica)
}

/// A replica's sync message larger than a WebSocket message travels in
/// parts; one over the sync limit, or one the process has no room for, is
/// refused at its first part and the connection goes on. The scenario's hub
/// takes sync messages of 2 MiB and holds 4 MiB in flight, of which a
/// message in parts may take 3.
pub async fn sync_messages_travel_in_parts(c: &Client) {
    let id = c.create("host-token-30", json!({"code": "x"})).await;
    let (mut thin, _) = c.joined(&id, "host-token-30", "Hana").await;
    let (mut ws, mut replica) = replica_joined(c, &id, "replica-token-30").await;
    // Another connection starts a 2 MiB message and stops after one part:
    // it holds its room until it goes.
    let mut hog = c.ws(&id, "replica-token-30b").await.expect("upgrade");
    hog.send(json!({"type": "join", "mode": "replica"})).await;
    // Joined as a replica once the snapshot has come.
    while !matches!(hog.next().await, Next::Binary(_)) {}
    let first_part = |total: usize| {
        let mut frame = collab_core::parts::split(&vec![0x42; total], SYNC_FRAME_BYTES);
        frame.swap_remove(0)
    };
    hog.send_binary(first_part(2 << 20)).await;
    // Parts from a thin client: refused unread.
    thin.send_binary(first_part(100_000)).await;
    assert_eq!(thin.until("error").await["code"], "malformed_frame");
    // Over the sync limit: refused unread.
    ws.send_binary(first_part((2 << 20) + 1)).await;
    let e = ws.until("error").await;
    assert_eq!(e["code"], "frame_too_large", "{e}");
    // No room for another 1.5 MiB while the first is held.
    ws.send_binary(first_part(3 << 19)).await;
    let e = ws.until("error").await;
    assert_eq!(e["code"], "server_busy", "{e}");
    assert!(e.get("rid").is_none());
    // A real change of a few hundred KiB (text that does not compress)
    // fits beside it, and arrives whole.
    let mut seed = 7u32;
    let big: String = (0..400_000)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'!' + (seed >> 16) as u8 % 90)
        })
        .collect();
    replica.create_file("big.txt", &big).expect("create");
    // Automerge may hold the change back until it has heard the server; the
    // replica answers every sync message, as replicas do.
    let mut largest = 0;
    let mut inserted = 0;
    if let Some(m) = replica.poll_message() {
        largest = largest.max(m.len());
        ws.send_sync(m).await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no file_op");
        match thin.next_within(Duration::from_millis(100)).await {
            // The file is created, then filled (or created with its text).
            Some(Next::Frame(f)) if f["file"] == "big.txt" => {
                let texts = [&f["text"]]
                    .into_iter()
                    .chain(f["op"].as_array().into_iter().flatten());
                inserted += texts.filter_map(Value::as_str).map(str::len).sum::<usize>();
                if inserted == big.len() {
                    break;
                }
            }
            Some(Next::Closed(code, reason)) => panic!("closed {code} {reason}"),
            _ => {}
        }
        while let Some(next) = ws.next_within(Duration::from_millis(10)).await {
            match next {
                Next::Binary(b) => {
                    replica.receive(&b).expect("sync message");
                    if let Some(m) = replica.poll_message() {
                        largest = largest.max(m.len());
                        ws.send_sync(m).await;
                    }
                }
                Next::Frame(f) if f["type"] == "error" => panic!("{f}"),
                Next::Closed(code, reason) => panic!("closed {code} {reason}"),
                Next::Frame(_) => {}
            }
        }
    }
    assert!(
        largest > 2 * SYNC_FRAME_BYTES,
        "{largest} bytes: larger than a WebSocket message"
    );
    // The connection that held room goes, and a message of its size fits.
    drop(hog);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = c.hub.as_ref().expect("hub").stats();
        if stats.bytes_held_in == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ws.send(json!({"type": "heartbeat", "rid": 9})).await;
    assert_eq!(ws.until("heartbeat_ack").await["rid"], 9);
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

/// A host's export holds the whole session: every edit with its author and
/// time, the files at the start and the end, and every event, those after
/// the last edit included. Its versions replay into the final text, it
/// follows its published JSON schema, and nobody but a host gets it.
pub async fn the_export_tells_the_whole_story(c: &Client) {
    let made = c
        .rest(
            "POST",
            "/api/v1/sessions",
            Some("host-token-41"),
            Some(json!({"title": "Export", "code": "fn main() {}\n"})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().expect("id").to_owned();
    let (mut host, _) = c.joined(&id, "host-token-41", "Hana").await;
    let (mut guest, _) = c.joined(&id, "guest-token-41", "Gus").await;
    // Two edits typed on the same revision: the second is rebased.
    host.send(json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": ["// a\n", 13], "oid": "h1"}))
        .await;
    guest
        .send(json!({"type": "text_op", "rid": 2, "rev": 0, "file": "main", "op": [12, "\n// b", 1], "oid": "g1"}))
        .await;
    host.until("text_ack").await;
    guest.until("text_ack").await;
    host.send(json!({"type": "file_create", "rid": 3, "file": "notes.md", "text": "- asks good questions\n"}))
        .await;
    host.until("ack").await;
    // What happens after the last edit belongs to the story too.
    guest
        .send(json!({"type": "chat_send", "rid": 4, "text": "done, I think"}))
        .await;
    guest.until("ack").await;
    host.send(json!({"type": "chat_send", "rid": 5, "text": "why a loop?", "anchor": {"file": "main", "line": 2}}))
        .await;
    host.until("ack").await;
    let code = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("host-token-41"),
            None,
        )
        .await
        .body["code"]
        .clone();
    let ended = c
        .rest(
            "POST",
            &format!("/api/v1/sessions/{id}/end"),
            Some("host-token-41"),
            None,
        )
        .await;
    assert_eq!(ended.status, 200, "{:?}", ended.body);

    let path = format!("/api/v1/sessions/{id}/export");
    let r = c.rest("GET", &path, Some("host-token-41"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    check_export_schema(&r.body);
    let export: collab_core::session::SessionExport =
        serde_json::from_value(r.body.clone()).expect("an export");
    assert_eq!(export.format, collab_core::session::EXPORT_FORMAT);
    assert_eq!(export.start.rev, 0);
    assert_eq!(export.start.files["main"], "fn main() {}\n");
    let replayed =
        collab_core::document::replay(&export.start.files, &export.versions).expect("replays");
    assert_eq!(replayed, export.end.files, "the versions lead to the end");
    assert_eq!(
        json!(export.end.files["main"]),
        code,
        "the end is the session's code"
    );
    assert_eq!(export.end.files["notes.md"], "- asks good questions\n");
    assert_eq!(export.versions.len(), 3);
    let authors: std::collections::BTreeSet<_> =
        export.versions.iter().filter_map(|v| v.author).collect();
    assert_eq!(
        authors.len(),
        2,
        "both people's edits, each with its author"
    );
    assert!(export
        .versions
        .windows(2)
        .all(|w| w[0].at <= w[1].at && w[1].rev == w[0].rev + 1));
    assert_eq!(export.participants.len(), 2);
    let kinds: Vec<Value> = export
        .events
        .iter()
        .map(|e| serde_json::to_value(e).expect("an event")["kind"].clone())
        .collect();
    for kind in [
        "participant_joined",
        "message_posted",
        "comment_posted",
        "session_ended",
    ] {
        assert!(kinds.contains(&json!(kind)), "no {kind} in {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&json!("session_ended")));
    let last_edit = export.versions.last().expect("versions").at;
    assert!(
        export.events.iter().filter(|e| e.at >= last_edit).count() >= 3,
        "the chat, the comment and the end after the last edit are in it"
    );

    // An editor may not export, nor may someone who never joined.
    let r = c.rest("GET", &path, Some("guest-token-41"), None).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{:?}",
        r.body
    );
    let r = c.rest("GET", &path, Some("stranger-token-41"), None).await;
    assert!(r.status >= 400 && r.status < 500, "{:?}", r.body);
    assert!(r.body.get("versions").is_none(), "nothing of the session");
}

/// The export schema's `$id`.
const EXPORT_SCHEMA_ID: &str = "https://example.invalid/collab/export.schema.json";

/// Checks `export` against `collab-wire/export.schema.json`.
fn check_export_schema(export: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../collab-wire/export.schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the schema")).expect("JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(EXPORT_SCHEMA_ID, schema)
        .expect("the schema is added");
    let index = compiler
        .compile(EXPORT_SCHEMA_ID, &mut schemas)
        .expect("the schema compiles");
    if let Err(e) = schemas.validate(export, index) {
        panic!("the export does not follow its schema: {e:#}");
    }
}
