//! The tokio driver: sessions run in their own tasks, connections are pumped
//! through bounded queues, and time comes from tokio's (paused) clock.

use std::sync::Arc;
use std::time::Duration;

use collab_server::Clock;

use collab_core::{ClientFrame, CloseReason, Identity, NewSession, SessionError, SessionUpdate};
use collab_server::{
    Connection, Hub, HubConfig, HubError, Outbound, TokenAuthenticator, TokioClock,
};
use serde_json::{json, Value};

mod common;
use common::until;

fn hub_with(config: HubConfig) -> Hub {
    Hub::builder(Arc::new(TokenAuthenticator::new()))
        .config(config)
        .build()
}

async fn joined(hub: &Hub, id: &collab_core::SessionId, who: Identity) -> Connection {
    let mut conn = hub.connect(id, who).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    conn
}

#[tokio::test]
async fn two_clients_chat_through_the_hub() {
    let hub = Hub::new(TokenAuthenticator::new());
    let ann = Identity::new("ann", "Ann");
    let info = hub
        .create_session(
            &ann,
            NewSession {
                code: "x = 1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut a = joined(&hub, &info.id, ann).await;
    let mut b = joined(&hub, &info.id, Identity::new("bo", "Bo")).await;
    b.send_text(json!({"type": "chat_send", "text": "hi @ann", "rid": 1}).to_string())
        .await
        .unwrap();
    // Ann sees Bo join first (and the session start, two being in), then
    // the message.
    let mut event = until(&mut a, "event").await;
    while event["event"]["kind"] != "message_posted" {
        assert!(
            ["participant_joined", "session_updated"]
                .contains(&event["event"]["kind"].as_str().unwrap()),
            "{event}"
        );
        event = until(&mut a, "event").await;
    }
    assert_eq!(event["event"]["message"]["text"], "hi @ann");
    assert_eq!(until(&mut b, "ack").await["rid"], 1);
    let view = hub.session(&info.id).await.unwrap();
    assert_eq!(view.code, "x = 1");
    assert_eq!(view.info.online, 2);
    let stats = hub.stats();
    assert_eq!((stats.sessions, stats.connections), (1, 2));
    assert!(stats.frames_in >= 3 && stats.frames_out >= 5);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_dropped_and_nobody_waits_for_it() {
    // Fast enough to outrun a reader, within the frame rate limit.
    let session = {
        let mut c = collab_core::SessionConfig::default();
        c.frames_per_second = 10_000;
        c.frame_burst = 10_000;
        c
    };
    let hub = hub_with({
        let mut c = HubConfig::default();
        c.outbound_queue = 16;
        c.session = session;
        c
    });
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut writer = joined(&hub, &info.id, host).await;
    let mut stalled = joined(&hub, &info.id, Identity::new("s", "Stalled")).await;
    // `stalled` reads nothing from here on while the writer keeps chatting.
    for i in 0..200u64 {
        writer
            .send_text(json!({"type": "chat_send", "text": format!("m{i}"), "rid": i}).to_string())
            .await
            .unwrap();
        let ack = until(&mut writer, "ack").await;
        assert_eq!(ack["rid"], i, "every request answered in turn");
    }
    assert_eq!(hub.stats().slow_consumer_drops, 1);
    // The backlog is dropped (it would stay in memory while a slow client
    // reads it); the close comes with its reason.
    let mut last = None;
    while let Some(out) = stalled.recv().await {
        last = Some(out);
    }
    assert_eq!(last, Some(Outbound::Close(CloseReason::SlowConsumer)));
    // The dropped participant shows offline to the others.
    let view = hub.session(&info.id).await.unwrap();
    assert_eq!(view.info.online, 1);
}

/// Past the process's budget for bytes in flight, a connection that has not
/// written what it was given is dropped when more comes for it, long before
/// its queue is full; one that reads keeps up and stays.
#[tokio::test]
async fn past_the_budget_a_reader_that_is_behind_is_dropped() {
    let hub = hub_with({
        let mut c = HubConfig::default();
        c.max_bytes_in_flight = 64 * 1024;
        c.session.frames_per_second = 10_000;
        c.session.frame_burst = 10_000;
        c
    });
    let host = Identity::new("h", "Host");
    let id = session_of(&hub, &host).await;
    let mut writer = joined(&hub, &id, host).await;
    let mut stalled = joined(&hub, &id, Identity::new("s", "Stalled")).await;
    let text = "x".repeat(1500);
    let mut sent = 0;
    while hub.stats().slow_consumer_drops == 0 {
        assert!(
            sent < 100,
            "still queued after {sent} messages: {:?}",
            hub.stats()
        );
        writer
            .send_text(json!({"type": "chat_send", "text": text, "rid": sent}).to_string())
            .await
            .unwrap();
        until(&mut writer, "ack").await;
        sent += 1;
    }
    // Dropped after about the budget's worth, far below its queue's 512 frames.
    assert!(sent < 60, "{sent}");
    let held = hub.stats().bytes_held_out;
    assert!(held > 0, "what the stalled reader was given is still held");
    let mut last = None;
    while let Some(out) = stalled.recv().await {
        last = Some(out);
    }
    assert_eq!(last, Some(Outbound::Close(CloseReason::SlowConsumer)));
    // Written (here: read), nothing is held any more; the writer goes on.
    writer
        .send_text(json!({"type": "chat_send", "text": "after", "rid": 1000}).to_string())
        .await
        .unwrap();
    assert_eq!(until(&mut writer, "ack").await["rid"], 1000);
    while let Ok(Some(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(50), writer.recv()).await
    {}
    assert_eq!(hub.stats().bytes_held_out, 0, "{:?}", hub.stats());
    assert_eq!(hub.stats().bytes_held_in, 0);
}

/// A message in parts whose sender stops halfway gives its room back when
/// its time is up, and the client is told; a part arriving after that is
/// dropped.
#[tokio::test(start_paused = true)]
async fn a_message_in_parts_left_unfinished_gives_its_room_back() {
    use collab_server::http::transport::{pump, WireIn};
    use futures::StreamExt as _;
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let id = session_of(&hub, &host).await;
    let conn = hub.connect(&id, host).await.unwrap();
    let (in_tx, in_rx) = futures::channel::mpsc::unbounded();
    let (out_tx, mut out_rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(pump(conn, in_rx, out_tx));
    in_tx
        .unbounded_send(WireIn::Text(r#"{"type":"join","mode":"replica"}"#.into()))
        .unwrap();
    // Joined as a replica once the snapshot has come.
    while !matches!(out_rx.next().await, Some(Outbound::Binary(_))) {}
    // 1 MiB: ten seconds and sixteen more.
    let frames = collab_core::parts::split(&vec![0x42; 1 << 20], 64 * 1024);
    in_tx
        .unbounded_send(WireIn::Binary(frames[0].clone()))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(hub.stats().bytes_held_in, 1 << 20);
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert_eq!(hub.stats().bytes_held_in, 0, "the room is given back");
    in_tx
        .unbounded_send(WireIn::Binary(frames[1].clone()))
        .unwrap();
    in_tx
        .unbounded_send(WireIn::Text(r#"{"type":"heartbeat","rid":5}"#.into()))
        .unwrap();
    let mut codes = Vec::new();
    while let Some(out) = out_rx.next().await {
        if let Outbound::Text(t) = out {
            let f: serde_json::Value = serde_json::from_str(&t).unwrap();
            if f["type"] == "error" {
                codes.push(f["code"].as_str().unwrap().to_owned());
            }
            if f["type"] == "heartbeat_ack" {
                break;
            }
        }
    }
    // The late part is dropped without a word: its message was refused.
    assert_eq!(codes, ["request_timeout"]);
}

#[tokio::test(start_paused = true)]
async fn presence_timers_run_on_tokio_time() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut watcher = joined(&hub, &info.id, host).await;
    let quiet = joined(&hub, &info.id, Identity::new("q", "Quiet")).await;
    let (quiet_tx, mut quiet_rx) = quiet.split();
    tokio::spawn(async move { while quiet_rx.recv().await.is_some() {} });
    let mut idle_seen = false;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        quiet_tx.send(ClientFrame::Heartbeat).await.unwrap();
        watcher.send(ClientFrame::Heartbeat).await.unwrap();
        while let Ok(Some(Outbound::Text(t))) =
            tokio::time::timeout(Duration::from_millis(1), watcher.recv()).await
        {
            let f: Value = serde_json::from_str(&t).unwrap();
            if f["type"] == "presence" && f["participant"] == 2 && f["presence"]["status"] == "idle"
            {
                idle_seen = true;
            }
        }
    }
    assert!(
        idle_seen,
        "idle after 60 s of tokio time, with no real waiting"
    );
}

/// A whole hub on a clock the test turns by hand: the session's timers
/// (stale connections, idle presence) fire when the clock is moved, with
/// tokio's own timer never advanced.
#[tokio::test]
async fn a_manual_clock_drives_a_whole_hub() {
    let clock = Arc::new(collab_server::ManualClock::new(
        collab_core::Timestamp::from_millis(1_700_000_000_000),
    ));
    let hub = Hub::builder(Arc::new(TokenAuthenticator::new()))
        .clock(clock.clone())
        .build();
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut watcher = joined(&hub, &info.id, host).await;
    let quiet = joined(&hub, &info.id, Identity::new("q", "Quiet")).await;
    let (_quiet_tx, mut quiet_rx) = quiet.split();
    // Let the session settle into its sleep until the next deadline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while tokio::time::timeout(Duration::from_millis(10), watcher.recv())
        .await
        .is_ok()
    {}
    // Nobody sends anything: only moving the clock can wake the session.
    // Past the 45 s stale timeout, both quiet connections are closed at once,
    // in real milliseconds.
    clock.advance(Duration::from_secs(46));
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match quiet_rx.recv().await {
                Some(Outbound::Close(reason)) => return Some(reason),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .expect("the session woke when the clock moved");
    assert_eq!(closed, Some(CloseReason::Stale));
}

/// A reader that went away is not a slow consumer: sends to its closed
/// queue end its connection without counting a drop.
#[tokio::test]
async fn a_reader_that_left_is_not_counted_as_slow() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut talker = joined(&hub, &info.id, host).await;
    let gone = joined(&hub, &info.id, Identity::new("g", "Gone")).await;
    // The reading half goes (a socket writer that ended); the sending half
    // keeps the connection registered.
    let (_still_sending, reader) = gone.split();
    drop(reader);
    for i in 0..20 {
        talker
            .send_text(json!({"type": "chat_send", "text": format!("m{i}"), "rid": i}).to_string())
            .await
            .unwrap();
        until(&mut talker, "ack").await;
    }
    let stats = hub.stats();
    assert_eq!(stats.slow_consumer_drops, 0, "{stats:?}");
    let view = hub.session(&info.id).await.unwrap();
    assert_eq!(view.info.online, 1, "the reader that left is offline");
}

#[tokio::test]
async fn hub_requests_and_their_errors() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let guest = Identity::new("g", "Guest");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let update = SessionUpdate {
        title: Some("Systems design".into()),
        ..Default::default()
    };
    let err = hub
        .update_session(&info.id, &guest, update.clone())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        HubError::Session(SessionError::NotParticipant)
    ));
    assert_eq!(
        hub.update_session(&info.id, &host, update)
            .await
            .unwrap()
            .title,
        "Systems design"
    );
    let mut g = joined(&hub, &info.id, guest.clone()).await;
    hub.end_session(&info.id, &host).await.unwrap();
    assert_eq!(until(&mut g, "goodbye").await["reason"], "session_ended");
    assert_eq!(
        g.recv().await,
        Some(Outbound::Close(CloseReason::SessionEnded))
    );
    // The guest, a member, may come back to review it; nobody new may.
    assert!(hub.connect(&info.id, guest).await.is_ok());
    let err = hub
        .connect(&info.id, Identity::new("late", "Late"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, HubError::Session(SessionError::SessionEnded)));
    let unknown = collab_core::SessionId::from_bytes([0; 16]);
    assert!(matches!(
        hub.session(&unknown).await,
        Err(HubError::SessionNotFound)
    ));
    assert!(matches!(
        hub.authenticate(Some("nope")).await,
        Err(HubError::Auth(_))
    ));
}

#[tokio::test]
async fn shutdown_says_goodbye_to_everyone() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut a = joined(&hub, &info.id, host).await;
    let mut b = joined(&hub, &info.id, Identity::new("b", "B")).await;
    hub.shutdown().await;
    for conn in [&mut a, &mut b] {
        assert_eq!(until(conn, "goodbye").await["reason"], "server_shutdown");
        assert_eq!(
            conn.recv().await,
            Some(Outbound::Close(CloseReason::ServerShutdown))
        );
        assert_eq!(conn.recv().await, None);
    }
    assert_eq!(hub.stats().sessions, 0);
}

#[tokio::test]
async fn dropping_a_connection_takes_the_participant_offline() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut a = joined(&hub, &info.id, host).await;
    let b = joined(&hub, &info.id, Identity::new("b", "B")).await;
    drop(b);
    loop {
        let f = until(&mut a, "presence").await;
        if f["participant"] == 2 && f["presence"]["status"] == "offline" {
            break;
        }
    }
    assert_eq!(hub.session(&info.id).await.unwrap().info.online, 1);
    assert_eq!(hub.stats().connections, 1);
}

#[tokio::test(start_paused = true)]
async fn a_flooding_client_is_refused_then_closed() {
    let hub = Hub::new(TokenAuthenticator::new());
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let mut flood = joined(&hub, &info.id, host).await;
    let mut refused = 0;
    for _ in 0..400 {
        if flood.send(ClientFrame::Heartbeat).await.is_err() {
            break;
        }
    }
    let mut last = None;
    while let Some(out) = flood.recv().await {
        if let Outbound::Text(t) = &out {
            if t.contains("rate_limited") {
                refused += 1;
            }
        }
        last = Some(out);
    }
    assert!(refused >= 100, "refused {refused}");
    assert_eq!(last, Some(Outbound::Close(CloseReason::RateLimited)));
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let hub = hub_with({
        let mut c = HubConfig::default();
        c.max_connections_per_address = 3;
        c
    });
    let host = Identity::new("h", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .unwrap();
    let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            hub.caller(host.clone(), Some(ip))
                .connect(&info.id)
                .await
                .unwrap(),
        );
    }
    let err = hub
        .caller(host.clone(), Some(ip))
        .connect(&info.id)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, HubError::TooManyConnections));
    assert!(hub
        .caller(host.clone(), Some("192.0.2.8".parse().unwrap()))
        .connect(&info.id)
        .await
        .is_ok());
    drop(open.pop());
    assert!(
        hub.caller(host, Some(ip)).connect(&info.id).await.is_ok(),
        "a slot frees on close"
    );
}

#[test]
fn origin_policy() {
    use collab_server::OriginPolicy;
    let same = OriginPolicy::SameOrigin;
    assert!(
        same.allows(None, Some("a.test")),
        "no origin: not a browser"
    );
    assert!(same.allows(Some("https://a.test:8080"), Some("a.test:8080")));
    assert!(!same.allows(Some("https://evil.test"), Some("a.test:8080")));
    let list = OriginPolicy::List(vec!["https://app.test".into()]);
    assert!(list.allows(Some("https://APP.test"), Some("api.test")));
    assert!(!list.allows(Some("https://evil.test"), Some("api.test")));
    assert!(OriginPolicy::Any.allows(Some("https://evil.test"), None));
    // Scheme, host and port all count.
    assert!(same.allows(Some("https://a.test"), Some("a.test:443")));
    assert!(same.allows(Some("http://a.test"), Some("a.test")));
    assert!(!same.allows(Some("http://a.test"), Some("a.test:8080")));
    assert!(!same.allows(Some("evil://a.test:8080"), Some("a.test:8080")));
    assert!(!same.allows(Some("a.test:8080"), Some("a.test:8080")));
    assert!(!same.allows(Some("null"), Some("a.test")));
    assert!(same.allows(Some("http://[::1]:8080"), Some("[::1]:8080")));
    assert!(!list.allows(Some("http://app.test"), Some("api.test")));
    assert!(!list.allows(Some("https://app.test:8443"), Some("api.test")));
    assert!(list.allows(Some("https://app.test:443"), Some("api.test")));
}

async fn session_of(hub: &Hub, host: &Identity) -> collab_core::SessionId {
    hub.create_session(host, NewSession::default())
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_something_happens() {
    let hub = Hub::new(TokenAuthenticator::new());
    let ann = Identity::new("ann", "Ann");
    let pat = hub.caller(Identity::new("pat", "Pat"), None);
    let id = session_of(&hub, &ann).await;
    let a = joined(&hub, &id, ann.clone()).await;
    let me = pat.join(&id, Some("Pat".into())).await.unwrap();
    assert_eq!(me.participant.name, "Pat");
    let view = hub.session(&id).await.unwrap();
    assert_eq!(view.info.online, 2, "the REST participant is online");

    let start = view.info.last_seq;
    let reader = {
        let (id, pat) = (id.clone(), pat.clone());
        tokio::spawn(async move {
            let request = collab_server::ReadRequest {
                since: start,
                rev: Some(view.rev),
                wait: Duration::from_secs(30),
            };
            pat.read(&id, request).await
        })
    };
    // The reader is waiting: nothing has happened yet.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished());
    a.send_text(json!({"type": "chat_send", "text": "over to you"}).to_string())
        .await
        .unwrap();
    let page = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("answered at once")
        .unwrap()
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].seq.0, start.0 + 1);

    // An edit wakes a reader that holds a revision.
    let reader = {
        let (id, pat, since, rev) = (id.clone(), pat.clone(), page.last_seq, page.rev);
        tokio::spawn(async move {
            let request = collab_server::ReadRequest {
                since,
                rev: Some(rev),
                wait: Duration::from_secs(30),
            };
            pat.read(&id, request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.send_text(
        json!({"type": "text_op", "file": "main", "rev": page.rev, "op": ["hi"]}).to_string(),
    )
    .await
    .unwrap();
    let edits = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("answered at once")
        .unwrap()
        .unwrap();
    assert_eq!(edits.ops.len(), 1);
    assert_eq!(edits.rev, page.rev + 1);

    pat.leave(&id, "pat").await.unwrap();
    let err = pat
        .read(&id, collab_server::ReadRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        HubError::Session(SessionError::NotParticipant)
    ));
    assert_eq!(hub.session(&id).await.unwrap().info.online, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rest_participant_goes_offline_when_they_stop_polling() {
    let hub = hub_with(HubConfig::default());
    let ann = Identity::new("ann", "Ann");
    let pat = hub.caller(Identity::new("pat", "Pat"), None);
    let id = session_of(&hub, &ann).await;
    pat.join(&id, None).await.unwrap();
    // Polling every 10 s keeps them online past the 45 s stale timeout...
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        pat.read(&id, collab_server::ReadRequest::default())
            .await
            .unwrap();
    }
    assert_eq!(hub.session(&id).await.unwrap().info.online, 1);
    // ...and stopping takes them offline, still a member.
    tokio::time::sleep(Duration::from_secs(50)).await;
    let view = hub.session(&id).await.unwrap();
    assert_eq!(view.info.online, 0);
    pat.read(&id, collab_server::ReadRequest::default())
        .await
        .expect("still a member, may read and join again");
    pat.join(&id, None).await.unwrap();
    assert_eq!(hub.session(&id).await.unwrap().info.online, 1);
}

#[tokio::test]
async fn the_event_stream_follows_the_session_until_it_ends() {
    use futures::StreamExt;
    let hub = Hub::new(TokenAuthenticator::new());
    let ann = Identity::new("ann", "Ann");
    let id = session_of(&hub, &ann).await;
    let a = joined(&hub, &id, ann.clone()).await;
    let stream = hub.caller(ann.clone(), None).stream(
        id.clone(),
        collab_server::ReadRequest {
            rev: Some(0),
            ..Default::default()
        },
    );
    let mut stream = Box::pin(stream);
    // The join is already in the log.
    let (cursor, first) = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, collab_server::StreamItem::Event(_)));
    assert_eq!(cursor.to_string(), "1.0");
    a.send_text(json!({"type": "text_op", "file": "main", "rev": 0, "op": ["a"]}).to_string())
        .await
        .unwrap();
    let (cursor, edit) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(edit, collab_server::StreamItem::Document(_)));
    assert_eq!(cursor.to_string(), "1.1");
    assert_eq!(
        collab_server::StreamCursor::parse("1.1").unwrap(),
        cursor,
        "a Last-Event-ID resumes here"
    );
    hub.end_session(&id, &ann).await.unwrap();
    let (_, ended) = stream.next().await.unwrap().unwrap();
    let collab_server::StreamItem::Event(ended) = ended else {
        panic!("expected the end event")
    };
    assert!(matches!(
        ended.kind,
        collab_core::EventKind::SessionEnded { .. }
    ));
    assert!(
        stream.next().await.is_none(),
        "the stream ends with the session"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_refreshes_its_token_or_is_closed_when_it_expires() {
    let auth = Arc::new(TokenAuthenticator::new());
    let hub = Hub::builder(auth.clone()).build();
    let clock = TokioClock::new();
    let ann = Identity::new("ann", "Ann");
    let id = session_of(&hub, &ann).await;
    let soon = clock.now().plus(Duration::from_secs(30));
    let mut a = joined(&hub, &id, ann.clone().with_expiry(soon)).await;
    let mut b = joined(&hub, &id, Identity::new("bo", "Bo").with_expiry(soon)).await;
    auth.insert(
        "ann-fresh",
        ann.clone()
            .with_expiry(clock.now().plus(Duration::from_secs(3_600))),
    );
    a.send_text(json!({"type": "authenticate", "rid": 5, "token": "ann-fresh"}).to_string())
        .await
        .unwrap();
    assert_eq!(until(&mut a, "ack").await["rid"], 5);
    b.send_text(json!({"type": "authenticate", "rid": 6, "token": "ann-fresh"}).to_string())
        .await
        .unwrap();
    let refused = until(&mut b, "error").await;
    assert_eq!(refused["code"], "forbidden", "a token for someone else");

    // Heartbeats keep both fresh; only the credential runs out.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        for conn in [&a, &b] {
            conn.send(ClientFrame::Heartbeat).await.unwrap();
        }
    }
    let goodbye = until(&mut b, "goodbye").await;
    assert_eq!(goodbye["reason"], "token_expired");
    assert_eq!(
        b.recv().await,
        Some(Outbound::Close(CloseReason::TokenExpired))
    );
    a.send(ClientFrame::Heartbeat).await.unwrap();
    until(&mut a, "heartbeat_ack").await;
}

#[tokio::test(start_paused = true)]
async fn with_default_settings_a_silent_peer_is_dropped_within_45_seconds() {
    let hub = hub_with(HubConfig::default());
    let keepalive = collab_server::HttpConfig::default().keepalive;
    assert_eq!(keepalive, Duration::from_secs(15));
    let ann = Identity::new("ann", "Ann");
    let id = session_of(&hub, &ann).await;
    let mut silent = joined(&hub, &id, ann).await;
    let (alive_tx, mut alive_rx) = joined(&hub, &id, Identity::new("bo", "Bo")).await.split();
    let start = tokio::time::Instant::now();
    // Bo's client answers every keepalive ping (a pong touches the connection).
    let pinger = tokio::spawn(async move {
        loop {
            tokio::time::sleep(keepalive).await;
            if alive_tx.touch().await.is_err() {
                break;
            }
        }
    });
    loop {
        match silent.recv().await {
            Some(Outbound::Close(reason)) => {
                assert_eq!(reason, CloseReason::Stale);
                break;
            }
            Some(_) => {}
            None => panic!("closed without a reason"),
        }
    }
    let waited = start.elapsed();
    assert!(
        waited <= Duration::from_secs(45),
        "dropped after {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(44),
        "not before its time: {waited:?}"
    );
    // The peer that answered pings is still there.
    let still = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(Outbound::Close(r)) = alive_rx.recv().await {
                return r;
            }
        }
    })
    .await;
    assert!(still.is_err(), "the live peer was closed: {still:?}");
    pinger.abort();
}

/// Guest identities are issued up to a burst per address, then at the
/// sustained rate; another address has its own allowance.
#[tokio::test(start_paused = true)]
async fn guest_identities_are_rate_limited_per_address() {
    let guests = collab_server::GuestAuthenticator::random().unwrap();
    let hub = Hub::new(guests);
    let here: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let there: std::net::IpAddr = "203.0.113.10".parse().unwrap();
    let burst = collab_server::HubConfig::default().guest_issue.burst;
    for _ in 0..burst {
        hub.issue_guest(Some(here)).expect("within the burst");
    }
    assert!(matches!(
        hub.issue_guest(Some(here)),
        Err(collab_server::HubError::RateLimited)
    ));
    assert!(hub.issue_guest(Some(there)).is_ok());
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    assert!(
        hub.issue_guest(Some(here)).is_ok(),
        "the allowance comes back"
    );
    // An authenticator that issues no guests says so.
    let tokens = Hub::new(collab_server::TokenAuthenticator::new());
    assert!(matches!(
        tokens.issue_guest(None),
        Err(collab_server::HubError::GuestsNotOffered)
    ));
}

/// The `Access` policy set on the builder decides what a caller may do;
/// the application's own calls on the hub are trusted as they are.
#[tokio::test]
async fn access_decides_for_callers_and_the_application_is_trusted() {
    use collab_core::participant::Role;
    use collab_server::{Grant, SessionRequest};
    fn policy(who: &Identity, request: SessionRequest<'_>) -> Grant {
        match (who.user_id.0.as_str(), request) {
            ("host", _) => Grant::Allow { role: None },
            ("vi", SessionRequest::Join(_) | SessionRequest::Read(_)) => Grant::Allow {
                role: Some(Role::Viewer),
            },
            _ => Grant::Deny,
        }
    }
    let hub = Hub::builder(Arc::new(TokenAuthenticator::new()))
        .access(policy)
        .build();
    let host = Identity::new("host", "Host");
    let eve = Identity::new("eve", "Eve");
    let info = hub
        .caller(host.clone(), None)
        .create_session(NewSession::default())
        .await
        .unwrap();
    let eve_calls = hub.caller(eve.clone(), None);
    let refused = eve_calls.create_session(NewSession::default()).await;
    assert!(matches!(refused, Err(HubError::Forbidden)), "{refused:?}");
    let refused = eve_calls.connect(&info.id).await.err();
    assert!(matches!(refused, Some(HubError::Forbidden)), "{refused:?}");
    let refused = eve_calls.session(&info.id).await;
    assert!(matches!(refused, Err(HubError::Forbidden)), "{refused:?}");
    let refused = eve_calls.join(&info.id, None).await;
    assert!(matches!(refused, Err(HubError::Forbidden)), "{refused:?}");

    // The application creates for Eve, reads everything and connects her
    // in the role it gives.
    hub.create_session(&eve, NewSession::default())
        .await
        .expect("the application's own call");
    assert!(hub.session(&info.id).await.is_ok());
    // (Not the default role, which is an editor's.)
    let mut viewer = eve.clone();
    viewer.role = Some(Role::Viewer);
    let mut conn = hub.connect(&info.id, viewer).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    let welcome = until(&mut conn, "welcome").await;
    let role_of = |welcome: &Value, name: &str| {
        welcome["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["role"].clone())
    };
    assert_eq!(role_of(&welcome, "Eve"), Some(json!("viewer")), "{welcome}");

    // A caller gets the role the policy gives.
    let mut viewer = hub
        .caller(Identity::new("vi", "Vi"), None)
        .connect(&info.id)
        .await
        .unwrap();
    viewer.send(ClientFrame::join()).await.unwrap();
    let welcome = until(&mut viewer, "welcome").await;
    assert_eq!(role_of(&welcome, "Vi"), Some(json!("viewer")), "{welcome}");
}
