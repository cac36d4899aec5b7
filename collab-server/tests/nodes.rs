//! One session served from several processes: hubs joined by a
//! `MemoryBackplane` on one manual clock, sharing one store, with clients
//! on each. Frames from a client on any hub reach the session's owner and
//! the answers come back; a former owner that stalled cannot write once
//! another took the session over.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use collab_core::{
    CloseReason, Identity, NewSession, SessionChanges, SessionId, SessionSummary, StoreError,
    StoredSession, Timestamp,
};
use collab_server::{
    Connection, Hub, HubConfig, ManualClock, MemoryNet, MemoryStore, Outbound, Store,
    TokenAuthenticator,
};
use common::until;
use serde_json::{json, Value};

struct Cluster {
    clock: Arc<ManualClock>,
    net: Arc<MemoryNet>,
    hubs: Vec<Hub>,
}

fn cluster(store: Arc<dyn Store>, names: &[&str]) -> Cluster {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let net = MemoryNet::new();
    let auth = Arc::new(TokenAuthenticator::new());
    let hubs = names
        .iter()
        .map(|name| {
            Hub::builder(auth.clone())
                .clock(clock.clone())
                .cluster(store.clone(), Arc::new(net.node(name)))
                .build()
        })
        .collect();
    Cluster { clock, net, hubs }
}

async fn join(hub: &Hub, id: &SessionId, who: Identity) -> (Connection, Value) {
    let mut conn = hub.connect(id, who).await.expect("connected");
    conn.send_text(json!({"type": "join"}).to_string())
        .await
        .unwrap();
    let welcome = until(&mut conn, "welcome").await;
    (conn, welcome)
}

async fn message_posted(conn: &mut Connection) -> Value {
    loop {
        let f = until(conn, "event").await;
        if f["event"]["kind"] == "message_posted" {
            return f;
        }
    }
}

fn names(welcome: &Value) -> Vec<String> {
    let mut names: Vec<String> = welcome["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn frames_reach_the_owner_and_answers_come_back() {
    let store = Arc::new(MemoryStore::new());
    let c = cluster(store.clone(), &["a", "b", "c"]);
    let ann = Identity::new("ann", "Ann");
    let info = c.hubs[0]
        .create_session(&ann, NewSession::default())
        .await
        .unwrap();
    assert_eq!(c.net.lease(&info.id).unwrap().owner.0, "a");

    let (mut on_a, _) = join(&c.hubs[0], &info.id, ann).await;
    // Bob is on b, Carol on c: their connections are forwarded to a.
    let (mut on_b, welcome) = join(&c.hubs[1], &info.id, Identity::new("bob", "Bob")).await;
    assert_eq!(
        names(&welcome),
        ["Ann", "Bob"],
        "one session, wherever one connects"
    );
    let (mut on_c, welcome) = join(&c.hubs[2], &info.id, Identity::new("carol", "Carol")).await;
    assert_eq!(names(&welcome), ["Ann", "Bob", "Carol"]);

    on_b.send_text(json!({"type": "chat_send", "text": "from b", "rid": 1}).to_string())
        .await
        .unwrap();
    let ack = until(&mut on_b, "ack").await;
    assert_eq!(ack["rid"], 1, "the answer came back to b");
    let seen = message_posted(&mut on_a).await;
    assert_eq!(seen["event"]["message"]["text"], "from b");
    let seen = message_posted(&mut on_c).await;
    assert_eq!(seen["event"]["message"]["text"], "from b");

    on_c.send_text(
        json!({"type": "text_op", "file": "main", "rev": 0, "op": ["hi"], "oid": "c1"}).to_string(),
    )
    .await
    .unwrap();
    until(&mut on_c, "text_ack").await;
    let op = until(&mut on_b, "text_op").await;
    assert_eq!(op["op"], json!(["hi"]));

    // Everything acknowledged is in the store, written by the owner.
    let stored = store.load(&info.id).await.unwrap().unwrap();
    assert!(stored.messages.iter().any(|m| m.text == "from b"));
    assert_eq!(stored.versions.len(), 1);

    // A client leaving b goes offline on the owner (presence goes out in
    // its next slot, on the manual clock).
    drop(on_b);
    let mut offline = false;
    for _ in 0..20 {
        c.clock.advance(Duration::from_millis(100));
        while let Ok(Some(Outbound::Text(t))) =
            tokio::time::timeout(Duration::from_millis(50), on_a.recv()).await
        {
            let f: Value = serde_json::from_str(&t).unwrap();
            if f["type"] == "presence"
                && f["participant"] == 2
                && f["presence"]["status"] == "offline"
            {
                offline = true;
            }
        }
        if offline {
            break;
        }
    }
    assert!(offline, "Bob's leaving b reached the owner");
}

/// A store whose saves of one epoch wait until the test lets them go.
struct Gated {
    inner: MemoryStore,
    held_epoch: std::sync::atomic::AtomicU64,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl Store for Gated {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        if changes.epoch == self.held_epoch.load(std::sync::atomic::Ordering::SeqCst) {
            let _pass = self.gate.acquire().await.expect("open");
        }
        self.inner.save(changes).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(id).await
    }
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        self.inner.sessions().await
    }
    async fn fence(&self, id: &SessionId, epoch: u64) -> Result<(), StoreError> {
        self.inner.fence(id, epoch).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

#[tokio::test]
async fn a_stalled_owner_cannot_write_after_another_took_over() {
    let store = Arc::new(Gated {
        inner: MemoryStore::new(),
        held_epoch: u64::MAX.into(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let c = cluster(store.clone(), &["a", "b"]);
    let ann = Identity::new("ann", "Ann");
    let info = c.hubs[0]
        .create_session(&ann, NewSession::default())
        .await
        .unwrap();
    let (mut on_a, _) = join(&c.hubs[0], &info.id, ann).await;

    // a stalls in the middle of storing Ann's message (epoch 1), and is
    // cut off from the other processes while it does.
    store
        .held_epoch
        .store(1, std::sync::atomic::Ordering::SeqCst);
    on_a.send_text(
        json!({"type": "chat_send", "text": "from the stalled owner", "rid": 1}).to_string(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.net.cut_off(&collab_server::NodeId("a".into()));

    // Its lease lapses; b takes the session over at epoch 2 and serves Bob.
    c.clock
        .advance(HubConfig::default().lease_ttl + Duration::from_secs(1));
    let (mut on_b, welcome) = join(&c.hubs[1], &info.id, Identity::new("bob", "Bob")).await;
    let lease = c.net.lease(&info.id).unwrap();
    assert_eq!((lease.owner.0.as_str(), lease.epoch), ("b", 2));
    assert_eq!(names(&welcome), ["Ann", "Bob"]);
    on_b.send_text(
        json!({"type": "chat_send", "text": "from the new owner", "rid": 1}).to_string(),
    )
    .await
    .unwrap();
    until(&mut on_b, "ack").await;

    // a wakes up and tries to store Ann's message: refused, and Ann, who
    // never got an ack, is told to reconnect.
    store.gate.add_permits(1);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match on_a.recv().await {
                Some(Outbound::Text(t)) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(f["type"], "ack", "the stale owner acknowledged nothing");
                }
                Some(Outbound::Close(reason)) => return Some(reason),
                Some(Outbound::Binary(_) | Outbound::Ping) => {}
                None => return None,
            }
        }
    })
    .await
    .expect("Ann's connection closes");
    assert_eq!(closed, Some(CloseReason::ServerShutdown));

    let stored = store.inner.load(&info.id).await.unwrap().unwrap();
    let texts: Vec<&str> = stored.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["from the new owner"],
        "the stale write never landed"
    );
}

#[tokio::test]
async fn rest_requests_work_from_any_process() {
    use collab_core::session::SessionUpdate;
    use collab_server::{ReadRequest, SessionRead};
    let store = Arc::new(MemoryStore::new());
    let c = cluster(store.clone(), &["a", "b", "c"]);
    let ann = Identity::new("ann", "Ann");
    let bob = Identity::new("bob", "Bob");
    let info = c.hubs[0]
        .create_session(&ann, NewSession::default())
        .await
        .unwrap();
    let (on_a, _) = join(&c.hubs[0], &info.id, ann.clone()).await;

    // Reads and writes on b and c are answered by a, the owner.
    let read = c.hubs[1]
        .caller(ann.clone(), None)
        .session(&info.id)
        .await
        .expect("a read on b");
    assert!(matches!(read, SessionRead::Full(ref v) if v.participants.len() == 1));
    let update = SessionUpdate {
        title: Some("Pairing".into()),
        ..Default::default()
    };
    let updated = c.hubs[2]
        .update_session(&info.id, &ann, update)
        .await
        .expect("an update on c");
    assert_eq!(updated.title, "Pairing");
    assert_eq!(
        c.hubs[1].session(&info.id).await.unwrap().info.title,
        "Pairing"
    );
    // Refusals come back with the owner's code.
    let refused = c.hubs[1]
        .update_session(&info.id, &bob, SessionUpdate::default())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        collab_core::ErrorCode::Forbidden,
        "{refused}"
    );

    // Whether someone may change the code, asked on b, is the owner's
    // session deciding.
    let edit = collab_core::Action::EditDocument;
    let may = c.hubs[1]
        .caller(ann.clone(), None)
        .may(&info.id, edit)
        .await;
    assert!(may.is_ok(), "{may:?}");
    let refused = c.hubs[1]
        .caller(bob.clone(), None)
        .may(&info.id, edit)
        .await;
    assert_eq!(
        refused.unwrap_err().code(),
        collab_core::ErrorCode::Forbidden,
        "not a member yet"
    );

    // Bob joins over REST on b; the owner holds his connection.
    let joined = c.hubs[1]
        .caller(bob.clone(), None)
        .join(&info.id, Some("Bobby".into()))
        .await
        .expect("a REST join on b");
    assert_eq!(joined.participant.name, "Bobby");
    assert_eq!(
        c.hubs[0]
            .session(&info.id)
            .await
            .unwrap()
            .participants
            .len(),
        2
    );

    // A long-poll on c waits on the owner and wakes with Ann's message.
    let page = c.hubs[2]
        .caller(bob.clone(), None)
        .read(&info.id, ReadRequest::default())
        .await
        .unwrap();
    let since = page.last_seq;
    let poll = {
        let bob = c.hubs[2].caller(bob.clone(), None);
        let id = info.id.clone();
        tokio::spawn(async move {
            let request = ReadRequest {
                since,
                rev: None,
                wait: Duration::from_secs(20),
            };
            bob.read(&id, request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    on_a.send_text(json!({"type": "chat_send", "text": "news", "rid": 1}).to_string())
        .await
        .unwrap();
    let page = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long-poll woke")
        .unwrap()
        .unwrap();
    assert!(page
        .events
        .iter()
        .any(|e| serde_json::to_string(e).unwrap().contains("news")));

    // Leave on c, end on b.
    c.hubs[2]
        .caller(bob.clone(), None)
        .leave(&info.id, "bob")
        .await
        .expect("a leave on c");
    let ended = c.hubs[1].end_session(&info.id, &ann).await.unwrap();
    assert_eq!(ended.status, collab_core::session::SessionStatus::Ended);
    assert_eq!(c.net.lease(&info.id).unwrap().owner.0, "a", "nothing moved");
}

/// Hubs a and b, and a session Ann made on a.
async fn two_with_annes_session() -> (Cluster, Identity, collab_core::SessionInfo) {
    let c = cluster(Arc::new(MemoryStore::new()), &["a", "b"]);
    let ann = Identity::new("ann", "Ann");
    let info = c.hubs[0]
        .create_session(&ann, NewSession::default())
        .await
        .unwrap();
    (c, ann, info)
}

#[tokio::test]
async fn a_graceful_shutdown_hands_sessions_over_at_once() {
    let (c, ann, info) = two_with_annes_session().await;
    let (mut on_a, _) = join(&c.hubs[0], &info.id, ann.clone()).await;
    let (mut on_b, _) = join(&c.hubs[1], &info.id, Identity::new("bob", "Bob")).await;
    on_b.send_text(
        json!({"type": "text_op", "file": "main", "rev": 0, "op": ["kept"], "oid": "b1"})
            .to_string(),
    )
    .await
    .unwrap();
    until(&mut on_b, "text_ack").await;

    c.hubs[0].shutdown().await;
    for conn in [&mut on_a, &mut on_b] {
        let goodbye = until(conn, "goodbye").await;
        assert_eq!(goodbye["reason"], "server_shutdown");
    }
    // No lease to wait for: Ann comes back on b at once (the clock has not
    // moved), and b serves the session from the store, at a new epoch.
    let (_, welcome) = join(&c.hubs[1], &info.id, ann).await;
    let lease = c.net.lease(&info.id).unwrap();
    assert_eq!((lease.owner.0.as_str(), lease.epoch), ("b", 2));
    assert_eq!(welcome["document"]["files"]["main"], "kept", "{welcome}");
    // The process that left serves nothing any more.
    assert!(c.hubs[0]
        .connect(&info.id, Identity::new("carol", "Carol"))
        .await
        .is_err());
}

#[tokio::test]
async fn forwarded_connections_close_when_their_owner_dies() {
    let (c, ann, info) = two_with_annes_session().await;
    let (_on_a, _) = join(&c.hubs[0], &info.id, ann).await;
    let (mut on_b, _) = join(&c.hubs[1], &info.id, Identity::new("bob", "Bob")).await;

    // a goes silent. Bob sends nothing, yet once a's lease lapses b
    // notices, takes the lease, and tells him to reconnect.
    c.net.cut_off(&collab_server::NodeId("a".into()));
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            c.clock.advance(Duration::from_secs(1));
            match tokio::time::timeout(Duration::from_millis(20), on_b.recv()).await {
                Ok(Some(Outbound::Close(reason))) => return reason,
                Ok(None) => panic!("closed without a reason"),
                _ => {}
            }
        }
    })
    .await
    .expect("Bob's forwarded connection closes");
    assert_eq!(closed, CloseReason::ServerShutdown);
    assert_eq!(c.net.lease(&info.id).unwrap().owner.0, "b");
    let (_, welcome) = join(&c.hubs[1], &info.id, Identity::new("bob", "Bob")).await;
    assert_eq!(names(&welcome), ["Ann", "Bob"]);
}

/// A replica on another process than its session's owner sends a sync
/// message in parts: its own process puts it together and forwards it
/// whole; a message it refuses at the first part is answered there.
#[tokio::test]
async fn a_message_in_parts_reaches_the_owner_whole() {
    let (c, ann, info) = two_with_annes_session().await;
    let (mut on_a, _) = join(&c.hubs[0], &info.id, ann).await;
    let mut replica_conn = c.hubs[1]
        .connect(&info.id, Identity::new("rita", "Rita"))
        .await
        .expect("connected");
    replica_conn
        .send_text(json!({"type": "join", "mode": "replica"}).to_string())
        .await
        .unwrap();
    until(&mut replica_conn, "welcome").await;
    let mut replica = collab_core::ReplicaClient::new();
    let mut text = String::new();
    let mut seed = 11u32;
    for _ in 0..200_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        text.push(char::from(b'a' + (seed >> 16) as u8 % 26));
    }
    let mut sent_in_parts = false;
    let mut created = false;
    for _ in 0..200 {
        match tokio::time::timeout(std::time::Duration::from_millis(20), replica_conn.recv()).await
        {
            Ok(Some(collab_server::Outbound::Binary(b))) => replica.receive(&b).unwrap(),
            Ok(Some(collab_server::Outbound::Text(t))) => {
                assert!(!t.contains("\"error\""), "{t}");
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => {}
        }
        if replica.text("main").is_some() && !created {
            replica.create_file("big.txt", &text).unwrap();
            created = true;
        }
        while let Some(m) = replica.poll_message() {
            let frames = collab_core::parts::split(&m, 64 * 1024);
            sent_in_parts |= frames.len() > 1;
            for frame in frames {
                replica_conn.send_binary(frame).await.unwrap();
            }
        }
        if sent_in_parts {
            break;
        }
    }
    assert!(sent_in_parts, "the replica's change went in parts");
    // Ann, on the owner, hears of the file and its text.
    let mut inserted = 0;
    while inserted < text.len() {
        let f = common::next_json(&mut on_a).await;
        if f["file"] == "big.txt" {
            let texts = [&f["text"]]
                .into_iter()
                .chain(f["op"].as_array().into_iter().flatten());
            inserted += texts.filter_map(Value::as_str).map(str::len).sum::<usize>();
        }
    }
    assert_eq!(inserted, text.len());
    // A message over the sync limit is refused on b, without a rid.
    let mut part = collab_core::parts::split(&vec![0x42; 17 << 20], 64 * 1024).swap_remove(0);
    part.truncate(100);
    replica_conn.send_binary(part).await.unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match replica_conn.recv().await {
                Some(collab_server::Outbound::Text(t)) if t.contains("\"error\"") => {
                    break serde_json::from_str::<Value>(&t).unwrap();
                }
                Some(collab_server::Outbound::Close(reason)) => panic!("{reason:?}"),
                Some(_) => {}
                None => panic!("closed"),
            }
        }
    });
    let e = answer.await.expect("the refusal is answered on b");
    assert_eq!(e["code"], "frame_too_large", "{e}");
    assert!(e.get("rid").is_none());
}
