//! Scenarios of the other ways in and out: REST joins and long-polls,
//! event streams, slow and dead peers, credentials that expire, shutdown.

use super::*;

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
            &format!("{users}/1"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(someone_else.status, 403, "only yourself, or a host");
    let nobody = c
        .rest(
            "DELETE",
            &format!("{users}/no-such-user"),
            Some("poller-token-14"),
            None,
        )
        .await;
    assert_eq!(
        (nobody.status, nobody.body["error"]["code"].as_str()),
        (404, Some("unknown_participant"))
    );
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
    // The creator is a member from the start (the first event); joining
    // under the same name adds none.
    let (mut host, _) = c.joined(&id, "host-token-15", "Guest").await;
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
        if sent.is_multiple_of(100) {
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
