//! Three hubs as three processes, joined only by a real `redis-server`:
//! the Redis backplane and the Redis store together.

use std::sync::Arc;
use std::time::Duration;

use collab_core::{Identity, NewSession, SessionChanges, SessionId, StoreError};
use collab_redis::{RedisBackplane, RedisStore};
use collab_server::{
    Backplane, BackplaneError, Connection, Hub, HubConfig, NodeId, Outbound, Store, SystemClock,
    TokenAuthenticator,
};
use collab_store_tests::build::first_write;
use serde_json::{json, Value};

use collab_store_tests::redis_server::RedisServer;

async fn hub(url: &str, name: &str) -> (Hub, Arc<RedisStore>) {
    let store = Arc::new(RedisStore::connect(url, "t").await.expect("store"));
    let backplane = RedisBackplane::connect(url, "t", NodeId(name.into()))
        .await
        .expect("backplane");
    let hub = Hub::builder(Arc::new(TokenAuthenticator::new()))
        .clock(Arc::new(SystemClock))
        .cluster(store.clone(), Arc::new(backplane))
        .build();
    (hub, store)
}

async fn next_json(conn: &mut Connection) -> Value {
    match tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .expect("a frame in time")
    {
        Some(Outbound::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A thin client that only inserts at the start of the file: it needs the
/// revision and the length it knows, nothing more.
struct Typist {
    conn: Connection,
    name: String,
    rev: u64,
    len: usize,
    /// (seq, text) of every chat message seen, in order.
    messages: Vec<(u64, String)>,
    /// Every other participant's cursor, as the last presence frame had it.
    cursors: std::collections::HashMap<u64, (u64, u64)>,
}

impl Typist {
    async fn join(hub: &Hub, id: &SessionId, name: &str) -> Self {
        let conn = hub
            .connect(id, Identity::new(name, name))
            .await
            .expect("connected");
        conn.send_text(json!({"type": "join"}).to_string())
            .await
            .unwrap();
        let mut me = Self {
            conn,
            name: name.into(),
            rev: 0,
            len: 0,
            messages: Vec::new(),
            cursors: std::collections::HashMap::new(),
        };
        loop {
            let f = next_json(&mut me.conn).await;
            if f["type"] == "welcome" {
                me.rev = f["document"]["rev"].as_u64().unwrap();
                me.len = f["document"]["files"]["main"].as_str().unwrap().len();
                return me;
            }
        }
    }

    /// Reads one frame, keeping track of the document and the chat; returns it.
    async fn read(&mut self) -> Value {
        let f = next_json(&mut self.conn).await;
        match f["type"].as_str() {
            Some("text_op") => {
                self.rev = f["rev"].as_u64().unwrap();
                for part in f["op"].as_array().unwrap() {
                    if let Some(s) = part.as_str() {
                        self.len += s.len();
                    }
                }
            }
            Some("presence") => {
                let cursor = &f["presence"]["cursors"][0];
                if let (Some(anchor), Some(head)) =
                    (cursor["anchor"].as_u64(), cursor["head"].as_u64())
                {
                    self.cursors
                        .insert(f["participant"].as_u64().unwrap(), (anchor, head));
                }
            }
            Some("event") if f["event"]["kind"] == "message_posted" => {
                let m = &f["event"]["message"];
                self.messages.push((
                    f["event"]["seq"].as_u64().unwrap(),
                    m["text"].as_str().unwrap().into(),
                ));
            }
            _ => {}
        }
        f
    }

    async fn chat(&mut self, n: u64) {
        let text = format!("{} says {n}", self.name);
        self.conn
            .send_text(json!({"type": "chat_send", "text": text, "rid": n}).to_string())
            .await
            .unwrap();
        loop {
            let f = self.read().await;
            if f["type"] == "ack" && f["rid"] == n {
                return;
            }
            assert_ne!(f["type"], "error", "{f}");
        }
    }

    async fn move_cursor(&mut self, anchor: u64, head: u64, rid: u64) {
        let frame = json!({"type": "presence", "rid": rid, "cursor": {"file": "main", "anchor": anchor, "head": head}});
        self.conn.send_text(frame.to_string()).await.unwrap();
        loop {
            let f = self.read().await;
            if f["type"] == "ack" && f["rid"] == rid {
                return;
            }
            assert_ne!(f["type"], "error", "{f}");
        }
    }

    async fn insert(&mut self, n: u64) {
        let token = format!("[{}{n}]", self.name);
        let op = if self.len == 0 {
            json!([token])
        } else {
            json!([token, self.len])
        };
        let oid = format!("{}-{n}", self.name);
        self.conn
            .send_text(
                json!({"type": "text_op", "file": "main", "rev": self.rev, "op": op, "oid": oid})
                    .to_string(),
            )
            .await
            .unwrap();
        loop {
            let f = self.read().await;
            if f["type"] == "text_ack" && f["oid"] == oid.as_str() {
                self.rev = f["rev"].as_u64().unwrap();
                self.len += token.len();
                return;
            }
            assert_ne!(f["type"], "error", "{f}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_every_node_edit_chat_move_cursors_and_converge() {
    let server = RedisServer::start();
    let url = server.url();
    let mut hubs = Vec::new();
    for name in ["a", "b", "c"] {
        hubs.push(hub(&url, name).await);
    }
    let info = hubs[0]
        .0
        .create_session(&Identity::new("host", "Host"), NewSession::default())
        .await
        .unwrap();
    let names = ["ann", "bob", "cy", "dee", "eve", "fay"];
    let mut typists = Vec::new();
    for (i, name) in names.iter().enumerate() {
        typists.push(Typist::join(&hubs[i % 3].0, &info.id, name).await);
    }
    const EACH: u64 = 8;
    let tasks: Vec<_> = typists
        .into_iter()
        .map(|mut t| {
            tokio::spawn(async move {
                for n in 1..=EACH {
                    t.chat(n).await;
                    t.insert(n).await;
                    t.move_cursor(0, 0, 1000 + n).await;
                }
                t
            })
        })
        .collect();
    let mut typists = Vec::new();
    for task in tasks {
        typists.push(task.await.expect("typist"));
    }
    let total = (names.len() as u64 * EACH) as usize;
    for t in &mut typists {
        while t.messages.len() < total {
            t.read().await;
        }
    }
    // Everyone saw every message once, in one order.
    let order = typists[0].messages.clone();
    let mut texts: Vec<_> = order.iter().map(|(_, t)| t.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), total, "every message once");
    for t in &typists {
        assert_eq!(t.messages, order, "{} saw another order", t.name);
    }
    // Cursors moved on every node reach every other node.
    for (i, t) in typists.iter_mut().enumerate() {
        let i = i as u64;
        t.move_cursor(i, i + 1, 5000).await;
    }
    for (i, t) in typists.iter_mut().enumerate() {
        let others: std::collections::BTreeSet<(u64, u64)> = (0..names.len() as u64)
            .filter(|j| *j != i as u64)
            .map(|j| (j, j + 1))
            .collect();
        while !others.is_subset(&t.cursors.values().copied().collect()) {
            t.read().await;
        }
    }
    // Every node serves the same text, holding every insert once.
    let mut seen = Vec::new();
    for (hub, _) in &hubs {
        let late = Typist::join(hub, &info.id, "late").await;
        late.conn
            .send_text(json!({"type": "leave"}).to_string())
            .await
            .ok();
        seen.push((late.rev, late.len));
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    assert_eq!(seen[0].0, total as u64, "one revision per insert");
    // And the store every node shares has all of it.
    let stored = hubs[1].1.load(&info.id).await.unwrap().expect("stored");
    assert_eq!(stored.versions.len(), total);
    assert!(stored.messages.len() >= total);
    for name in names {
        for n in 1..=EACH {
            let token = format!("[{name}{n}]");
            let count = stored
                .versions
                .iter()
                .filter(|v| format!("{:?}", v.change).contains(&token))
                .count();
            assert_eq!(count, 1, "{token}");
        }
    }
}

#[tokio::test]
async fn a_lapsed_owner_loses_its_lease_and_its_writes_are_refused() {
    let server = RedisServer::start();
    let url = server.url();
    let a = RedisBackplane::connect(&url, "t", NodeId("a".into()))
        .await
        .unwrap();
    let b = RedisBackplane::connect(&url, "t", NodeId("b".into()))
        .await
        .unwrap();
    let store = RedisStore::connect(&url, "t").await.unwrap();
    let id = SessionId::from_bytes([9; 16]);
    let now = collab_core::Timestamp::from_millis(1_000);
    let ttl = Duration::from_millis(300);

    // A secret shared by every process: the first one's stays.
    assert_eq!(store.shared_secret("k", b"one").await.unwrap(), b"one");
    let other = RedisStore::connect(&url, "t").await.unwrap();
    assert_eq!(other.shared_secret("k", b"two").await.unwrap(), b"one");

    let first = a.claim(&id, now, ttl).await.unwrap();
    assert_eq!((first.owner.0.as_str(), first.epoch), ("a", 1));
    let seen = b.claim(&id, now, ttl).await.unwrap();
    assert_eq!(
        (&seen.owner, seen.epoch),
        (&first.owner, first.epoch),
        "held: b learns the owner"
    );
    assert!(seen.expires <= first.expires, "and when it lapses");
    store.fence(&id, first.epoch).await.unwrap();
    let mut write = first_write(&id);
    write.epoch = 1;
    store.save(&write).await.unwrap();
    let renewed = a.renew(&first, now, ttl).await.unwrap();
    assert_eq!(renewed.epoch, 1);

    // a stalls past its lease; b takes over with a new epoch and fences.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = b.claim(&id, now, ttl).await.unwrap();
    assert_eq!((taken.owner.0.as_str(), taken.epoch), ("b", 2));
    store.fence(&id, taken.epoch).await.unwrap();

    // a wakes: it cannot renew, and its write is refused by epoch.
    assert!(matches!(
        a.renew(&renewed, now, ttl).await,
        Err(BackplaneError::Lost { owner, .. }) if owner.0 == "b"
    ));
    let mut stale = SessionChanges::empty(id.clone());
    stale.epoch = 1;
    stale.events = vec![collab_store_tests::build::event(2, 0, "")];
    assert!(matches!(
        store.save(&stale).await,
        Err(StoreError::Fenced {
            epoch: 1,
            current: 2,
            ..
        })
    ));
    stale.epoch = 2;
    store.save(&stale).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().events.len(), 2);

    // A release by the former owner does nothing; the owner's own hands the
    // session on at once, with a new epoch.
    a.release(&renewed).await.unwrap();
    assert_eq!(a.claim(&id, now, ttl).await.unwrap().owner.0, "b");
    b.release(&taken).await.unwrap();
    let handed = a.claim(&id, now, ttl).await.unwrap();
    assert_eq!((handed.owner.0.as_str(), handed.epoch), ("a", 3));

    // Letters reach a listening node, and fail for one that is not there.
    let letter = collab_server::Letter {
        from: NodeId("a".into()),
        session: id.clone(),
        conn: collab_core::ids::ConnectionId(1),
        envelope: collab_server::backplane::Envelope::Disconnect,
    };
    a.send(&NodeId("b".into()), letter.clone()).await.unwrap();
    assert_eq!(b.recv().await, Some(letter.clone()));
    assert!(matches!(
        a.send(&NodeId("nobody".into()), letter).await,
        Err(BackplaneError::Unreachable(_))
    ));
}

#[tokio::test]
async fn acknowledged_writes_survive_redis_being_killed() {
    let mut server = RedisServer::start();
    let url = server.url();
    let store = RedisStore::connect(&url, "t").await.unwrap();
    let id = SessionId::from_bytes([4; 16]);
    store.save(&first_write(&id)).await.unwrap();
    for seq in 2..=200 {
        let mut changes = SessionChanges::empty(id.clone());
        changes.events = vec![collab_store_tests::build::event(seq, 1, "x")];
        store.save(&changes).await.unwrap();
    }
    // SIGKILL: nothing more is written; what was acknowledged is in the
    // append-only file, synced before each answer.
    server.restart();
    let fresh = RedisStore::connect(&url, "t").await.unwrap();
    let stored = fresh.load(&id).await.unwrap().expect("survived");
    assert_eq!(stored.events.len(), 200);
    // The first connection reconnects by itself and goes on writing.
    let mut again = None;
    for _ in 0..50 {
        let mut changes = SessionChanges::empty(id.clone());
        changes.events = vec![collab_store_tests::build::event(201, 1, "after")];
        match store.save(&changes).await {
            Ok(()) => {
                again = Some(());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(again.is_some(), "the store reconnected");
    assert_eq!(fresh.load(&id).await.unwrap().unwrap().events.len(), 201);
}

/// A hub whose store and backplane reach Redis at `url`, with a short lease.
async fn hub_with_lease(url: &str, name: &str, lease: Duration) -> Hub {
    let store = Arc::new(RedisStore::connect(url, "t").await.expect("store"));
    let backplane = RedisBackplane::connect(url, "t", NodeId(name.into()))
        .await
        .expect("backplane");
    let mut config = HubConfig::default();
    config.lease_ttl = lease;
    Hub::builder(Arc::new(TokenAuthenticator::new()))
        .clock(Arc::new(SystemClock))
        .config(config)
        .cluster(store, Arc::new(backplane))
        .build()
}

/// Reads `conn` until it closes; panics on an acknowledgement, which a
/// process cut off from the store must never send.
async fn closes_without_acks(conn: &mut Connection, within: Duration) {
    tokio::time::timeout(within, async {
        loop {
            match conn.recv().await {
                Some(Outbound::Text(t)) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(f["type"], "text_ack", "acknowledged while cut off: {f}");
                }
                Some(Outbound::Close(_)) | None => return,
                Some(Outbound::Binary(_) | Outbound::Ping) => {}
            }
        }
    })
    .await
    .expect("the connection closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_gives_its_sessions_up_to_one_owner() {
    let server = RedisServer::start();
    let url = server.url();
    let proxy = collab_store_tests::proxy::Proxy::start(server.port());
    let lease = Duration::from_millis(1_500);
    // a reaches Redis only through the proxy the test cuts.
    let a = hub_with_lease(&proxy.url(), "a", lease).await;
    let b = hub_with_lease(&url, "b", lease).await;
    let c = hub_with_lease(&url, "c", lease).await;

    let ann = Identity::new("ann", "Ann");
    let info = a.create_session(&ann, NewSession::default()).await.unwrap();
    let id = info.id.clone();
    let mut on_a = Typist::join(&a, &id, "ann").await;
    let mut on_b = Typist::join(&b, &id, "bob").await;
    for n in 0..5 {
        on_a.insert(n).await;
        on_b.insert(n).await;
    }

    // The split: a loses Redis. Ann's edit cannot be stored, so it is never
    // acknowledged; once a's lease ends by its own clock it closes Ann's
    // connection, and b, seeing the lease gone, closes Bob's forwarded one.
    proxy.cut();
    let token = "[ann-cut]";
    let cut_edit = json!({"type": "text_op", "file": "main", "rev": on_a.rev, "op": [token, on_a.len], "oid": "cut"}).to_string();
    on_a.conn.send_text(cut_edit.clone()).await.unwrap();
    closes_without_acks(&mut on_a.conn, Duration::from_secs(20)).await;
    closes_without_acks(&mut on_b.conn, Duration::from_secs(20)).await;

    // Everyone comes back through b and c: one new owner, at a new epoch.
    let mut on_b = Typist::join(&b, &id, "bob").await;
    let mut on_c = Typist::join(&c, &id, "ann").await;
    let held = server.get(&format!("t:{{{id}}}:lease")).expect("a lease");
    let (epoch, owner) = held.split_once(' ').unwrap();
    assert!(owner == "b" || owner == "c", "{held}");
    assert!(epoch.parse::<u64>().unwrap() >= 2, "{held}");
    on_b.insert(5).await;
    // Ann resends her unacknowledged edit with its id: it lands once.
    on_c.conn.send_text(cut_edit).await.unwrap();
    loop {
        let f = on_c.read().await;
        if f["type"] == "text_ack" && f["oid"] == "cut" {
            break;
        }
    }

    // The split heals: a serves nothing of the session, its lease is gone
    // for good, and a client on a is forwarded to the one owner.
    proxy.heal();
    tokio::time::sleep(lease).await;
    assert_eq!(a.stats().sessions, 0, "a stopped serving the session");
    let mut again_on_a = Typist::join(&a, &id, "ann").await;
    again_on_a.insert(6).await;
    assert_eq!(
        server.get(&format!("t:{{{id}}}:lease")),
        Some(held.clone()),
        "still the one owner"
    );
    let view = b.session(&id).await.unwrap();
    for (who, n) in [("ann", 0), ("bob", 4), ("bob", 5), ("ann", 6)] {
        let mark = format!("[{who}{n}]");
        assert_eq!(
            view.code.matches(&mark).count(),
            1,
            "{mark} in {:?}",
            view.code
        );
    }
    assert_eq!(view.code.matches(token).count(), 1);
}
