//! Sessions through a store: what is saved comes back whole, acknowledged
//! changes survive a new hub, idle sessions unload and load on demand, expiry
//! and deletion run on a virtual clock, and damage stays with its session.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use collab_core::{
    apply_changes, Change, ClientFrame, Document, DocumentError, ErrorCode, Identity, NewSession,
    ReplicaClient, Seq, ServerFrame, Session, SessionChanges, SessionConfig, SessionId,
    SessionStatus, SessionSummary, StoreError, StoredSession,
};
use collab_server::{
    Clock, Hub, HubConfig, HubError, MemoryStore, Store, TokenAuthenticator, TokioClock,
};
use common::{host, sync_replica, until, user, Harness};
use serde_json::{json, Value};

/// An insert of `text` at `at` as a text operation.
fn op_at(at: u64, text: &str) -> Value {
    if at == 0 {
        json!([text])
    } else {
        json!([at, text])
    }
}

/// Saves everything the harness's session has, restores it, and returns both.
fn round_trip(h: &mut Harness, stored: Option<StoredSession>) -> (StoredSession, Session) {
    let changes = h.session.take_changes();
    let stored = apply_changes(stored, changes).expect("valid changes");
    let restored =
        Session::restore(stored.clone(), SessionConfig::default(), h.now).expect("restores");
    (stored, restored)
}

#[test]
fn everything_saved_comes_back() {
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            title: "Round 1".into(),
            code: "print(1)\n".into(),
            capacity: Some(4),
            ..Default::default()
        },
    );
    let a = h.join(host());
    let b = h.join(user(1));
    let c = h.join(user(2));
    let bob = h.me(b);
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 0, "op": [9, "x = 2\n"], "oid": "a1"}),
    );
    h.send(b, json!({"type": "chat_send", "text": "hi @Hana"}));
    h.send(
        b,
        json!({"type": "chat_send", "text": "look", "anchor": {"file": "main", "line": 2}}),
    );
    // Events so far: three joins, the session going active when Bob came
    // in (seq 3), then the messages: "hi" is 5, "look" 6.
    h.send(a, json!({"type": "react", "message": 5, "emoji": "👍"}));
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 1, "op": ["# top\n", 15], "oid": "a2"}),
    );
    h.send(
        a,
        json!({"type": "file_create", "file": "notes.md", "text": "todo"}),
    );
    h.send(
        a,
        json!({"type": "set_role", "participant": bob, "role": "viewer"}),
    );
    let carl = h.me(c);
    h.send(a, json!({"type": "kick", "participant": carl}));
    h.send(
        a,
        json!({"type": "update_session", "title": "Round 2", "status": "active"}),
    );

    let (stored, mut back) = round_trip(&mut h, None);
    let now = h.now;
    let online = |mut info: collab_core::SessionInfo| {
        info.online = 0;
        info
    };
    assert_eq!(
        back.info(),
        online(h.session.info()),
        "settings, status, capacity, last_seq; nobody online"
    );
    assert_eq!(back.code(), h.session.code());
    assert_eq!(back.position(), h.session.position());
    assert_eq!(back.document().files(), h.session.document().files());
    assert_eq!(
        back.document().text_at("main", 1).unwrap(),
        h.session.document().text_at("main", 1).unwrap()
    );
    assert_eq!(
        back.events_since(Seq(0), 1000),
        h.session.events_since(Seq(0), 1000)
    );
    assert_eq!(back.chat_page(None, 100), h.session.chat_page(None, 100));
    // The comment's anchor moved with the edit above it, and came back moved.
    assert_eq!(
        back.message(Seq(6)).unwrap().anchor.as_ref().unwrap().line,
        3
    );
    assert_eq!(back.message(Seq(5)).unwrap().reactions.len(), 1);
    // Everyone comes back offline, with their roles; the kicked stay out.
    let people = back.participants(now);
    assert_eq!(people.len(), 3);
    assert!(people
        .iter()
        .all(|p| p.presence.status == collab_core::Status::Offline));
    assert_eq!(
        back.participant_of(&user(1).user_id).unwrap().role,
        collab_core::Role::Viewer
    );
    assert_eq!(
        back.connect(collab_core::ids::ConnectionId(99), user(2), now),
        Err(collab_core::SessionError::Banned)
    );

    // A resent operation (same oid) is not applied twice after the restore.
    back.connect(collab_core::ids::ConnectionId(50), host(), now)
        .unwrap();
    back.handle_text(
        collab_core::ids::ConnectionId(50),
        r#"{"type":"join","rev":3}"#,
        now,
    );
    back.handle_text(
        collab_core::ids::ConnectionId(50),
        r##"{"type":"text_op","file":"main","rev":1,"op":["# top\n",15],"oid":"a2"}"##,
        now,
    );
    assert_eq!(back.code(), h.session.code(), "the resend changed nothing");
    let mut acks = Vec::new();
    while let Some(t) = back.poll_transmit() {
        if let collab_core::Transmit::Send {
            frame: ServerFrame::TextAck { rev, .. },
            ..
        } = t
        {
            acks.push(rev);
        }
    }
    assert_eq!(acks, vec![2], "acknowledged as the revision it made");

    // Later changes continue the stored sequences.
    back.handle_text(
        collab_core::ids::ConnectionId(50),
        r#"{"type":"chat_send","text":"again"}"#,
        now,
    );
    let more = back.take_changes();
    assert!(more.record.is_some() || !more.events.is_empty());
    let stored = apply_changes(Some(stored), more).expect("continues the stored sequences");
    let again = Session::restore(stored, SessionConfig::default(), now).unwrap();
    assert_eq!(
        again.events_since(Seq(0), 1000),
        back.events_since(Seq(0), 1000)
    );
    assert!(
        back.take_changes().is_empty(),
        "nothing new, nothing to write"
    );
}

fn fast_harness() -> Harness {
    Harness::with(
        {
            let mut c = SessionConfig::default();
            c.frames_per_second = 1_000_000;
            c.frame_burst = 1_000_000;
            c
        },
        NewSession::default(),
    )
}

/// A thin client's edits are stored as versions at once and in the
/// document's changes only now and then: a restore after any write replays
/// the versions the stored document lacks, and gives back every edit.
#[test]
fn edits_are_stored_as_versions_and_the_document_now_and_then() {
    let mut h = fast_harness();
    let a = h.join(host());
    let mut stored: Option<StoredSession> = None;
    let mut document_writes = 0;
    for i in 0..2_100u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, "x")}),
        );
        let changes = h.session.take_changes();
        assert_eq!(changes.versions.len(), 1, "every edit is stored at once");
        if changes.document.is_some() {
            document_writes += 1;
        }
        stored = Some(apply_changes(stored, changes).unwrap());
        if [0, 1, 700, 1_024, 1_500, 2_099].contains(&i) {
            let s = stored.clone().unwrap();
            assert!(s.document_rev <= i + 1);
            let back = Session::restore(s.clone(), SessionConfig::default(), h.now).unwrap();
            assert_eq!(
                back.code(),
                "x".repeat(i as usize + 1),
                "restored after edit {i}"
            );
            assert_eq!(back.position().1, i + 1);
            // The history reads back too: replayed from the initial files,
            // and from checkpoints once they are built (and checked).
            let half = Some("x".repeat(i as usize / 2));
            assert_eq!(back.document().text_at("main", i / 2).unwrap(), half);
            let mut document = Document::restore(
                &s.document,
                s.document_rev,
                &s.record.initial_files,
                s.versions,
            )
            .unwrap();
            document.build_checkpoints().unwrap();
            assert_eq!(document.text_at("main", i / 2).unwrap(), half);
            assert_eq!(document.text("main"), back.document().text("main"));
        }
    }
    // The first write (a full save) and one every 256 revisions.
    assert_eq!(document_writes, 1 + 2_100 / 256);

    // And one after 16 KiB of inserted text, however few the revisions.
    let big = "y".repeat(9_000);
    for i in 0..2u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": 2_100 + i, "op": [2_100 + i * 9_000, big]}),
        );
        let changes = h.session.take_changes();
        assert_eq!(changes.document.is_some(), i == 1, "after insert {i}");
        stored = Some(apply_changes(stored, changes).unwrap());
    }
    let back = Session::restore(stored.unwrap(), SessionConfig::default(), h.now).unwrap();
    assert_eq!(back.code(), h.session.code());
}

/// What only automerge holds (here: runs) is written with every step, and
/// the appended chunks are compacted into a full save now and then.
#[test]
fn many_document_writes_compact_the_stored_document() {
    let mut h = fast_harness();
    let a = h.join(host());
    let mut stored: Option<StoredSession> = None;
    let mut replaced = 0;
    for i in 0..600u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, "x")}),
        );
        h.send(
            a,
            json!({"type": "run_output", "stdout": format!("{i}"), "stderr": ""}),
        );
        let changes = h.session.take_changes();
        assert!(changes.document.is_some(), "a run is in the document only");
        if matches!(
            changes.document,
            Some(collab_core::DocumentWrite::Replace(_))
        ) {
            replaced += 1;
        }
        stored = Some(apply_changes(stored, changes).unwrap());
    }
    assert!(replaced >= 2, "the first write and at least one compaction");
    let back = Session::restore(stored.unwrap(), SessionConfig::default(), h.now).unwrap();
    assert_eq!(back.code(), "x".repeat(600));
    assert_eq!(back.position().1, 600);
    assert_eq!(back.document().runs().last().unwrap().stdout, "599");
}

/// Whatever a replica was sent or sent itself is in the stored document
/// before the step's frames go out: a session restored from the store and
/// synced with the same replica again has every edit once.
#[test]
fn what_replicas_saw_or_made_is_stored_with_the_document() {
    let mut h = fast_harness();
    let typist = h.join(host());
    let replica_conn = h.open(user(2)).unwrap();
    h.send(replica_conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, replica_conn, &mut replica);
    let mut stored = Some(apply_changes(None, h.session.take_changes()).unwrap());

    let mut rev = h.session.position().1;
    for i in 0..5u64 {
        h.send(
            typist,
            json!({"type": "text_op", "file": "main", "rev": rev, "op": op_at(rev, "t")}),
        );
        rev += 1;
        // The step that edits sends the change to the replica, and so
        // stores the document, unless the replica's summary of what it has
        // (automerge's sync, a Bloom filter with a random actor id) gave a
        // false positive, about one step in twenty: then a later sync round
        // sends the change, and that round's write stores it. Either way
        // the restore below finds every edit once.
        let changes = h.session.take_changes();
        if changes.document.is_some() {
            assert_eq!(changes.document_rev, rev, "thin edit {i}");
        }
        stored = Some(apply_changes(stored, changes).unwrap());
        sync_replica(&mut h, replica_conn, &mut replica);

        replica.splice("main", 0, 0, "r").unwrap();
        sync_replica(&mut h, replica_conn, &mut replica);
        rev = h.session.position().1;
        let changes = h.session.take_changes();
        assert!(changes.document.is_some(), "the replica's edit {i}");
        stored = Some(apply_changes(stored, changes).unwrap());
    }
    let text = h.session.code();
    assert_eq!(text.matches('t').count(), 5);
    assert_eq!(text.matches('r').count(), 5);

    // The process goes away; the session comes back from the store, and
    // the replica, which kept its document, syncs with it again.
    rejoin_after_restore(&mut h, stored.unwrap(), &mut replica, &text);
}

/// Text that does not compress: automerge's saves deflate their columns.
fn noise(n: usize, seed: &mut u64) -> String {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            char::from(b'a' + ((*seed >> 33) % 26) as u8)
        })
        .collect()
}

/// A document no replica ever shared keeps its text, not everything typed:
/// the stored document is started afresh from the texts when it is
/// compacted, while the versions keep the whole history. Once a replica
/// joins, the document is shared and its automerge history is kept.
#[test]
fn a_private_document_is_stored_as_its_text_until_a_replica_shares_it() {
    let mut h = fast_harness();
    let a = h.join(host());
    let mut stored: Option<StoredSession> = None;
    let mut seed = 7;
    let (mut rev, mut len) = (0u64, 0u64);
    let mut typed = 0;
    let write = |h: &mut Harness, stored: &mut Option<StoredSession>| {
        let changes = h.session.take_changes();
        *stored = Some(apply_changes(stored.take(), changes).unwrap());
    };
    for _ in 0..400 {
        let text = noise(100, &mut seed);
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": rev, "op": op_at(len, &text)}),
        );
        (rev, len, typed) = (rev + 1, len + 100, typed + 100);
        write(&mut h, &mut stored);
    }
    let full = h.session.code();
    while len > 0 {
        let op = if len == 100 {
            json!([-100])
        } else {
            json!([len - 100, -100])
        };
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": rev, "op": op}),
        );
        (rev, len) = (rev + 1, len - 100);
        write(&mut h, &mut stored);
    }
    assert_eq!(h.session.code(), "");
    let s = stored.clone().unwrap();
    assert!(s.record.document_private);
    assert!(
        s.document.len() < typed / 2,
        "{} bytes stored for {typed} characters typed and deleted",
        s.document.len()
    );

    // Back from the store: the text, and the whole history.
    let restored = Session::restore(s, SessionConfig::default(), h.now).unwrap();
    assert_eq!(restored.code(), "");
    assert_eq!(restored.position().1, rev);
    h.session = restored;
    assert_eq!(
        h.session.document().text_at("main", 400).unwrap(),
        Some(full)
    );

    // A replica joins: from now on the document is shared, and stays so.
    let replica_conn = h.open(user(2)).unwrap();
    h.send(replica_conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, replica_conn, &mut replica);
    replica.splice("main", 0, 0, "r").unwrap();
    sync_replica(&mut h, replica_conn, &mut replica);
    write(&mut h, &mut stored);
    assert!(!stored.as_ref().unwrap().record.document_private);
    let a = h.join(host());
    for i in 0..300u64 {
        let rev = h.session.position().1;
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": rev, "op": op_at(1 + i, "t")}),
        );
        write(&mut h, &mut stored);
    }
    sync_replica(&mut h, replica_conn, &mut replica);
    let text = h.session.code();
    assert_eq!(replica.text("main"), Some(text.clone()));
    // Restored, the shared session syncs with the same replica without
    // applying anything twice: its automerge history was kept.
    rejoin_after_restore(&mut h, stored.unwrap(), &mut replica, &text);
}

/// The session restored from `stored` in place of the harness's, and the
/// replica, which kept its document, joining and syncing again: both end
/// with `text`, nothing applied twice.
fn rejoin_after_restore(
    h: &mut Harness,
    stored: StoredSession,
    replica: &mut ReplicaClient,
    text: &str,
) {
    let restored = Session::restore(stored, SessionConfig::default(), h.now).unwrap();
    assert_eq!(restored.code(), text);
    h.session = restored;
    let again = h.open(user(2)).unwrap();
    h.send(again, json!({"type": "join", "mode": "replica"}));
    replica.reconnect();
    sync_replica(h, again, replica);
    assert_eq!(h.session.code(), text, "nothing applied twice");
    assert_eq!(replica.text("main").as_deref(), Some(text));
}

/// 600 typed characters with a store write after each: the harness and
/// the whole stored session, whose document holds most of them.
fn typed_and_stored() -> (Harness, collab_core::ids::ConnectionId, StoredSession) {
    let mut h = fast_harness();
    let a = h.join(host());
    let mut stored = None;
    for i in 0..600u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, "x"), "oid": format!("o{i}")}),
        );
        stored = Some(apply_changes(stored, h.session.take_changes()).unwrap());
    }
    let stored = stored.unwrap();
    assert!(stored.document_rev >= 512, "{}", stored.document_rev);
    (h, a, stored)
}

/// `stored` as `Store::load_recent` hands it: the versions its document
/// holds left out.
fn recent(stored: &StoredSession) -> StoredSession {
    let mut recent = stored.clone();
    recent.versions.retain(|v| v.rev > stored.document_rev);
    recent
}

/// A session loads with only the versions its stored document lacks. Reads
/// after them are answered at once; a frame that reads further back waits
/// while the driver reads the rest from the store, the frames of its
/// connection wait behind it, and the others go on.
#[test]
fn a_restored_session_reads_its_older_history_only_when_asked() {
    let (mut h, _, whole) = typed_and_stored();
    let floor = whole.document_rev;
    h.session = Session::restore(recent(&whole), SessionConfig::default(), h.now).unwrap();
    assert_eq!(h.session.code(), "x".repeat(600));
    assert_eq!(h.session.history_floor(), floor);
    let a = h.join(host());
    let b = h.join(user(1));
    h.take(b);

    h.send(b, json!({"type": "history", "after": floor, "rid": 1}));
    h.send(
        b,
        json!({"type": "text_at", "file": "main", "rev": floor + 1, "rid": 2}),
    );
    match &h.take(b)[..] {
        [ServerFrame::Versions { versions, .. }, ServerFrame::TextAt { text, .. }] => {
            assert_eq!(versions.len() as u64, 600 - floor);
            assert_eq!(
                text.as_deref(),
                Some("x".repeat(floor as usize + 1).as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h.history_requests.is_empty(), "nothing read from the store");

    // An edit made on an old revision, a page of the whole history and a
    // chat message after them: all wait, in order.
    h.send(
        b,
        json!({"type": "text_op", "file": "main", "rev": 10, "op": [10, "y"], "oid": "b1"}),
    );
    h.send(
        b,
        json!({"type": "history", "after": 0, "limit": 5000, "rid": 3}),
    );
    h.send(b, json!({"type": "chat_send", "text": "after", "rid": 4}));
    assert!(h.take(b).is_empty());
    assert_eq!(h.history_requests, vec![floor], "asked once");
    // Another client is not held up.
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 600, "op": [600, "z"], "oid": "a1"}),
    );
    assert!(h
        .take(a)
        .iter()
        .any(|f| matches!(f, ServerFrame::TextAck { rev: 601, .. })));

    let older = collab_core::document::encode_versions(&whole.versions[..floor as usize]);
    h.session.handle_history(Some(&older), h.now).unwrap();
    h.pump();
    let frames = h.take(b);
    let acked = frames
        .iter()
        .position(|f| matches!(f, ServerFrame::TextAck { rev: 602, .. }));
    let page = frames
        .iter()
        .position(|f| matches!(f, ServerFrame::Versions { rid: Some(3), versions, has_more: false } if versions.len() == 602));
    let chat = frames
        .iter()
        .position(|f| matches!(f, ServerFrame::Ack { rid: 4, .. }));
    assert!(
        matches!((acked, page, chat), (Some(x), Some(y), Some(z)) if x < y && y < z),
        "{frames:?}"
    );
    let code = h.session.code();
    assert_eq!(
        (
            code.matches('x').count(),
            code.matches('y').count(),
            code.matches('z').count()
        ),
        (600, 1, 1),
        "{code}"
    );
    // Old texts read back, checked against the stored document.
    h.send(
        b,
        json!({"type": "text_at", "file": "main", "rev": 5, "rid": 5}),
    );
    assert!(matches!(
        &h.take(b)[..],
        [ServerFrame::TextAt { text: Some(t), .. }] if t == "xxxxx"
    ));
    // An operation resent from before the floor is known: not applied twice.
    h.take(a);
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 2, "op": op_at(2, "x"), "oid": "o2"}),
    );
    assert_eq!(h.session.code(), code);
    assert!(h
        .take(a)
        .iter()
        .any(|f| matches!(f, ServerFrame::TextAck { rev: 3, .. })));
}

/// A live session lets go of the versions its store's document holds, but
/// for the last 1,024, and reads them back when asked, checked against the
/// text it kept; a session whose old history was read keeps it.
#[test]
fn a_live_session_keeps_only_recent_history_beside_a_store() {
    let mut h = fast_harness();
    let a = h.join(host());
    let mut stored = None;
    for i in 0..3_000u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, "x"), "oid": format!("o{i}")}),
        );
        stored = Some(apply_changes(stored, h.session.take_changes()).unwrap());
    }
    let stored = stored.unwrap();
    let floor = h.session.history_floor();
    assert!(
        floor.is_multiple_of(1_024) && floor > 0 && floor <= 3_000 - 1_024,
        "{floor}"
    );
    assert!(floor <= stored.document_rev);
    // Recent reads and rebases need nothing from the store.
    h.take(a);
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 2_990, "op": [5, "!"], "oid": "late"}),
    );
    h.send(
        a,
        json!({"type": "text_at", "file": "main", "rev": floor + 3, "rid": 1}),
    );
    assert!(h.history_requests.is_empty());
    let frames = h.take(a);
    assert!(frames
        .iter()
        .any(|f| matches!(f, ServerFrame::TextAck { rev: 3_001, .. })));
    assert!(frames.iter().any(
        |f| matches!(f, ServerFrame::TextAt { text: Some(t), .. } if *t == "x".repeat(floor as usize + 3))
    ));
    // Old ones are read back.
    h.send(
        a,
        json!({"type": "text_at", "file": "main", "rev": 7, "rid": 2}),
    );
    assert_eq!(h.history_requests, vec![floor]);
    let older = collab_core::document::encode_versions(&stored.versions[..floor as usize]);
    h.session.handle_history(Some(&older), h.now).unwrap();
    h.pump();
    assert!(matches!(
        &h.take(a)[..],
        [ServerFrame::TextAt { text: Some(t), .. }] if t == "xxxxxxx"
    ));
    assert_eq!(h.session.history_floor(), 0);
    for i in 3_001..3_100u64 {
        h.send(
            a,
            json!({"type": "text_op", "file": "main", "rev": i, "op": [1, "y"]}),
        );
        h.session.take_changes();
    }
    assert_eq!(h.session.history_floor(), 0, "kept once read");
}

/// When the store cannot read the older history, what waited for it is
/// answered `storage_failed`, and the next read that needs it asks again.
#[test]
fn a_history_the_store_cannot_read_is_an_error_and_asked_again() {
    let (mut h, _, whole) = typed_and_stored();
    let floor = whole.document_rev;
    // A history that starts between the first revision and the stored
    // document's is refused: the texts in between could not be read.
    let mut middle = whole.clone();
    middle.versions.drain(..floor as usize / 2);
    assert!(matches!(
        Session::restore(middle, SessionConfig::default(), h.now),
        Err(StoreError::Damaged { .. })
    ));
    h.session = Session::restore(recent(&whole), SessionConfig::default(), h.now).unwrap();
    // Nobody who has not joined makes the session read its history.
    let stranger = h.open(user(9)).unwrap();
    h.send(stranger, json!({"type": "history", "after": 0, "rid": 9}));
    assert!(h.history_requests.is_empty());
    assert!(matches!(
        &h.take(stranger)[..],
        [ServerFrame::Error {
            rid: Some(9),
            code: ErrorCode::NotJoined,
            ..
        }]
    ));
    let b = h.join(user(1));
    h.take(b);
    h.send(b, json!({"type": "history", "after": 0, "rid": 1}));
    h.send(b, json!({"type": "chat_send", "text": "later", "rid": 2}));
    h.session.handle_history(None, h.now).unwrap();
    h.pump();
    let frames = h.take(b);
    assert!(
        matches!(
            &frames[..],
            [
                ServerFrame::Error {
                    rid: Some(1),
                    code: ErrorCode::StorageFailed,
                    ..
                },
                ..,
                ServerFrame::Ack { rid: 2, .. }
            ]
        ),
        "{frames:?}"
    );
    h.send(
        b,
        json!({"type": "text_at", "file": "main", "rev": 3, "rid": 3}),
    );
    assert_eq!(h.history_requests, vec![floor, floor]);
    assert!(h.session.awaits_history());
    // Versions that do not fit are refused, and the frame still answered.
    let wrong = collab_core::document::encode_versions(&whole.versions[..floor as usize - 1]);
    assert!(matches!(
        h.session.handle_history(Some(&wrong), h.now),
        Err(DocumentError::Structure(_))
    ));
    h.pump();
    assert!(matches!(
        &h.take(b)[..],
        [ServerFrame::Error {
            rid: Some(3),
            code: ErrorCode::StorageFailed,
            ..
        }]
    ));
    assert_eq!(h.session.history_floor(), floor);
}

#[test]
fn stored_parts_that_do_not_fit_are_refused() {
    let mut h = Harness::new();
    let a = h.join(host());
    h.send(
        a,
        json!({"type": "text_op", "file": "main", "rev": 0, "op": ["abc"]}),
    );
    let stored = apply_changes(None, h.session.take_changes()).unwrap();
    let mut gap = stored.clone();
    gap.events[0].seq = Seq(5);
    let mut garbage = stored.clone();
    garbage.document = b"not automerge".to_vec();
    let mut ahead = stored.clone();
    ahead.document_rev = 2;
    let mut unfit = stored.clone();
    unfit.document_rev = 0;
    if let Change::Edit { op } = &mut unfit.versions[0].change {
        *op = serde_json::from_value(json!([10, "late"])).unwrap();
    }
    for broken in [gap, garbage, ahead, unfit] {
        assert!(matches!(
            Session::restore(broken, SessionConfig::default(), h.now),
            Err(StoreError::Damaged { .. })
        ));
    }

    // Initial files that the history does not lead from are found on the
    // first read of the history, which reports it; the text is the stored
    // document's.
    let mut wrong = stored;
    wrong
        .record
        .initial_files
        .insert("main".into(), "something else".into());
    let mut document = Document::restore(
        &wrong.document,
        wrong.document_rev,
        &wrong.record.initial_files,
        wrong.versions,
    )
    .unwrap();
    assert_eq!(document.text("main").as_deref(), Some("abc"));
    assert!(matches!(
        document.build_checkpoints(),
        Err(DocumentError::Structure(_))
    ));
}

// ---- through the hub -----------------------------------------------------

fn store_hub(store: Arc<dyn Store>, auth: Arc<TokenAuthenticator>) -> Hub {
    Hub::builder(auth).store(store).build()
}

#[tokio::test]
async fn acknowledged_changes_are_in_the_store_before_the_ack() {
    let store = Arc::new(MemoryStore::new());
    let auth = Arc::new(TokenAuthenticator::new());
    let hub = store_hub(store.clone(), auth.clone());
    let ann = Identity::new("ann", "Ann");
    let info = hub
        .create_session(&ann, NewSession::default())
        .await
        .unwrap();
    assert!(
        store.load(&info.id).await.unwrap().is_some(),
        "created means stored"
    );
    let mut conn = hub.connect(&info.id, ann.clone()).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    for i in 0..50u64 {
        conn.send_text(
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, "k"), "oid": format!("o{i}")})
                .to_string(),
        )
        .await
        .unwrap();
        let ack = until(&mut conn, "text_ack").await;
        // The moment a client hears of it, the store has it.
        let stored = store.load(&info.id).await.unwrap().unwrap();
        assert_eq!(stored.versions.len() as u64, ack["rev"].as_u64().unwrap());
    }
    conn.send_text(json!({"type": "chat_send", "text": "done", "rid": 7}).to_string())
        .await
        .unwrap();
    let ack = until(&mut conn, "ack").await;
    let stored = store.load(&info.id).await.unwrap().unwrap();
    assert!(stored
        .events
        .iter()
        .any(|e| e.seq.0 == ack["seq"].as_u64().unwrap()));

    // A second hub over the same store (the first one crashed, say) serves
    // the session with every acknowledged change, and a reconnecting client
    // catches up from where it was.
    let hub2 = store_hub(store.clone(), auth);
    let view = hub2.session(&info.id).await.unwrap();
    assert_eq!(view.code, "k".repeat(50));
    assert_eq!(view.rev, 50);
    let mut back = hub2.connect(&info.id, ann).await.unwrap();
    back.send_text(json!({"type": "join", "since": 1, "rev": 40}).to_string())
        .await
        .unwrap();
    let welcome = until(&mut back, "welcome").await;
    assert_eq!(welcome["participants"][0]["name"], "Ann");
    let catchup = until(&mut back, "text_catchup").await;
    assert_eq!(catchup["ops"].as_array().unwrap().len(), 10);
    let events = until(&mut back, "events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["message_posted"],
        "after seq 1 (the join): the message, once"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_unload_and_load_again_on_demand() {
    let store = Arc::new(MemoryStore::new());
    let hub = store_hub(store.clone(), Arc::new(TokenAuthenticator::new()));
    let ann = Identity::new("ann", "Ann");
    let id = hub
        .create_session(&ann, NewSession::default())
        .await
        .unwrap()
        .id;
    let mut conn = hub.connect(&id, ann.clone()).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    conn.send_text(json!({"type": "chat_send", "text": "brb"}).to_string())
        .await
        .unwrap();
    until(&mut conn, "event").await;
    drop(conn);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(hub.stats().sessions, 1, "still in memory a minute later");
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(hub.stats().sessions, 0, "unloaded after five idle minutes");
    let view = hub.session(&id).await.unwrap();
    assert_eq!(hub.stats().sessions, 1, "loaded on demand");
    assert_eq!(view.participants[0].participant.name, "Ann");
    let mut conn = hub.connect(&id, ann).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    let welcome = until(&mut conn, "welcome").await;
    assert_eq!(welcome["you"], 1, "the same participant");
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_and_ended_ones_are_deleted_later() {
    let store = Arc::new(MemoryStore::new());
    let hub = store_hub(store.clone(), Arc::new(TokenAuthenticator::new()));
    let clock = TokioClock::new();
    let ann = Identity::new("ann", "Ann");
    let id = hub
        .create_session(&ann, NewSession::default())
        .await
        .unwrap()
        .id;
    let other = hub
        .create_session(
            &ann,
            NewSession {
                expires_after_secs: Some(24 * 3600),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    // Unloaded after 5 minutes; the sweep expires it after 30.
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    hub.sweep().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ended = hub.session(&id).await.unwrap();
    assert_eq!(ended.info.status, SessionStatus::Ended);
    let stored = store.load(&id).await.unwrap().unwrap();
    assert!(stored.record.ended_at.is_some());
    assert!(stored
        .events
        .iter()
        .any(|e| matches!(e.kind, collab_core::EventKind::SessionEnded { .. })));
    assert_eq!(
        hub.session(&other).await.unwrap().info.status,
        SessionStatus::Waiting,
        "a longer expiry is kept"
    );
    // Readable for a week, then gone.
    tokio::time::sleep(Duration::from_secs(6 * 24 * 3600)).await;
    hub.sweep().await.unwrap();
    assert!(hub.session(&id).await.is_ok());
    tokio::time::sleep(Duration::from_secs(2 * 24 * 3600)).await;
    hub.sweep().await.unwrap();
    assert!(matches!(
        hub.session(&id).await,
        Err(HubError::SessionNotFound)
    ));
    assert!(store.load(&id).await.unwrap().is_none());
    let _ = clock.now();
}

/// A store whose copy of one session is damaged.
struct Damaging {
    inner: MemoryStore,
    broken: std::sync::Mutex<Option<SessionId>>,
}

#[async_trait]
impl Store for Damaging {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        self.inner.save(changes).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let mut stored = self.inner.load(id).await?;
        if self.broken.lock().unwrap().as_ref() == Some(id) {
            if let Some(s) = stored.as_mut() {
                s.document = b"\x85\x6f\x4a\x83garbage".to_vec();
            }
        }
        Ok(stored)
    }
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        self.inner.sessions().await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

#[tokio::test]
async fn a_damaged_session_fails_alone() {
    let ann = Identity::new("ann", "Ann");
    let store = Arc::new(Damaging {
        inner: MemoryStore::new(),
        broken: std::sync::Mutex::new(None),
    });
    let auth = Arc::new(TokenAuthenticator::new());
    let first = store_hub(store.clone(), auth.clone());
    let good = first
        .create_session(&ann, NewSession::default())
        .await
        .unwrap()
        .id;
    let bad = first
        .create_session(&ann, NewSession::default())
        .await
        .unwrap()
        .id;
    *store.broken.lock().unwrap() = Some(bad.clone());

    // A restarted server: nothing in memory, everything loads from the store.
    let hub = store_hub(store, auth);
    let err = hub.session(&bad).await.unwrap_err();
    assert!(
        matches!(err, HubError::Store(StoreError::Damaged { .. })),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::StorageFailed);
    assert_eq!(err.code().http_status(), 503);
    assert!(hub.connect(&bad, ann.clone()).await.is_err());
    // The other session works as if nothing happened.
    let mut conn = hub.connect(&good, ann).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    assert_eq!(hub.session(&good).await.unwrap().info.online, 1);
}

/// A store whose loads of one session wait until the test lets them go.
struct SlowToLoad {
    inner: MemoryStore,
    slow: SessionId,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl Store for SlowToLoad {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        self.inner.save(changes).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        if *id == self.slow {
            let _pass = self.gate.acquire().await.expect("the gate stays open");
        }
        self.inner.load(id).await
    }
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        self.inner.sessions().await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

#[tokio::test]
async fn a_slow_load_holds_up_no_other_session() {
    let memory = MemoryStore::new();
    let ann = Identity::new("ann", "Ann");
    // Two stored sessions, written as a hub writes them.
    let mut ids = Vec::new();
    for title in ["heavy", "light"] {
        let now = collab_core::Timestamp::from_millis(1_700_000_000_000);
        let id = SessionId::from_bytes([ids.len() as u8 + 1; 16]);
        let new = NewSession {
            title: title.into(),
            ..NewSession::default()
        };
        let mut session =
            Session::new(id.clone(), new, &ann, SessionConfig::default(), now).unwrap();
        memory.save(&session.take_changes()).await.unwrap();
        ids.push(id);
    }
    let store = Arc::new(SlowToLoad {
        inner: memory,
        slow: ids[0].clone(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let hub = store_hub(store.clone(), Arc::new(TokenAuthenticator::new()));
    let heavy = {
        let hub = hub.clone();
        let id = ids[0].clone();
        tokio::spawn(async move { hub.session(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!heavy.is_finished(), "the heavy session is still loading");
    // The light session loads while the heavy one is stuck.
    let light = tokio::time::timeout(Duration::from_secs(5), hub.session(&ids[1]))
        .await
        .expect("the light session loads while another is loading")
        .unwrap();
    assert_eq!(light.info.title, "light");
    store.gate.add_permits(1);
    let heavy = heavy.await.unwrap().unwrap();
    assert_eq!(heavy.info.title, "heavy");
}

/// A store that counts its reads of version ranges.
#[derive(Default)]
struct CountingVersions {
    inner: MemoryStore,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Store for CountingVersions {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        self.inner.save(changes).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(id).await
    }
    async fn load_recent(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load_recent(id).await
    }
    async fn versions(
        &self,
        id: &SessionId,
        after: collab_core::Revision,
        through: collab_core::Revision,
    ) -> Result<Vec<collab_core::Version>, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.versions(id, after, through).await
    }
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        self.inner.sessions().await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

/// A session of 600 edits (each inserting `text`) written by one hub to a
/// store that counts its history reads, and a second hub over the same
/// store, as another process would be: it loads the session with the
/// versions after its stored document only.
struct OldHistory {
    store: Arc<CountingVersions>,
    hub: Hub,
    id: SessionId,
    ann: Identity,
    floor: u64,
}

async fn stored_with_old_history(text: &str) -> OldHistory {
    let store = Arc::new(CountingVersions::default());
    let auth = Arc::new(TokenAuthenticator::new());
    let fast = |store: Arc<CountingVersions>, auth: Arc<TokenAuthenticator>| {
        let mut config = HubConfig::default();
        config.session.frames_per_second = 1_000_000;
        config.session.frame_burst = 1_000_000;
        Hub::builder(auth).config(config).store(store).build()
    };
    let hub = fast(store.clone(), auth.clone());
    let ann = Identity::new("ann", "Ann");
    let id = hub
        .create_session(&ann, NewSession::default())
        .await
        .unwrap()
        .id;
    let mut conn = hub.connect(&id, ann.clone()).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    for i in 0..600u64 {
        conn.send_text(
            json!({"type": "text_op", "file": "main", "rev": i, "op": op_at(i, text), "oid": format!("o{i}")})
                .to_string(),
        )
        .await
        .unwrap();
        until(&mut conn, "text_ack").await;
    }
    drop(conn);
    let floor = store.inner.load(&id).await.unwrap().unwrap().document_rev;
    assert!(floor >= 512, "{floor}");
    OldHistory {
        hub: fast(store.clone(), auth),
        store,
        id,
        ann,
        floor,
    }
}

/// A hub loads a stored session with the versions after its document only,
/// and reads the rest once, when a frame or a REST request reads that far
/// back; both kinds wait for that one read.
#[tokio::test]
async fn a_loaded_session_reads_its_older_history_from_the_store_on_demand() {
    use std::sync::atomic::Ordering;
    let OldHistory {
        store,
        hub: hub2,
        id,
        ann,
        floor,
    } = stored_with_old_history("x").await;
    let mut conn = hub2.connect(&id, ann.clone()).await.unwrap();
    conn.send(ClientFrame::join()).await.unwrap();
    until(&mut conn, "welcome").await;
    conn.send_text(json!({"type": "history", "after": floor, "rid": 1}).to_string())
        .await
        .unwrap();
    let page = until(&mut conn, "versions").await;
    assert_eq!(
        page["versions"].as_array().unwrap().len() as u64,
        600 - floor
    );
    assert_eq!(store.reads.load(Ordering::SeqCst), 0, "loaded without them");

    // A replace made on an old revision and a read from the start.
    let read = collab_server::ReadRequest {
        since: Seq(0),
        rev: Some(0),
        wait: Duration::ZERO,
    };
    let reader = hub2.caller(ann.clone(), None);
    let (replaced, page) = tokio::join!(
        hub2.replace_code(&id, &ann, Some(5), "xxxxx!".into()),
        reader.read(&id, read),
    );
    assert_eq!(replaced.unwrap(), 601);
    let page = page.unwrap();
    assert!(
        matches!(page.ops.first(), Some(ServerFrame::TextOp { rev: 1, .. })),
        "from the first revision: {:?}",
        page.ops.first()
    );
    let code = hub2.session(&id).await.unwrap().code;
    assert_eq!(
        (code.matches('x').count(), code.matches('!').count()),
        (600, 1)
    );
    conn.send_text(json!({"type": "history", "after": 0, "limit": 5000, "rid": 2}).to_string())
        .await
        .unwrap();
    let page = until(&mut conn, "versions").await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 601);
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        1,
        "read once, when needed"
    );
}

/// A host's export of a session loaded from its store holds the whole
/// history: the older versions are read from the store first, once, and
/// replay from the start to the text there is now.
#[tokio::test]
async fn an_export_reads_the_older_history_from_the_store() {
    use std::sync::atomic::Ordering;
    let OldHistory {
        store,
        hub: hub2,
        id,
        ann,
        ..
    } = stored_with_old_history("y").await;
    let ben = Identity::new("ben", "Ben");
    let mut guest = hub2.connect(&id, ben.clone()).await.unwrap();
    guest.send(ClientFrame::join()).await.unwrap();
    until(&mut guest, "welcome").await;
    assert!(matches!(
        hub2.caller(ben, None).export(&id).await,
        Err(HubError::Session(
            collab_core::SessionError::Forbidden { .. }
        ))
    ));
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        0,
        "nothing read for a refusal"
    );
    let export = hub2.caller(ann, None).export(&id).await.unwrap();
    assert_eq!(export.versions.len(), 600);
    assert_eq!(export.versions[0].rev, 1);
    let replayed = collab_core::document::replay(&export.start.files, &export.versions).unwrap();
    assert_eq!(replayed, export.end.files);
    assert_eq!(export.end.files["main"].matches('y').count(), 600);
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        1,
        "the older history, read once"
    );
}

/// A scheduled session's times and why it ended come back from the store,
/// and a warning given before it was saved is not given again after a
/// reload between the warning and the close.
#[test]
fn a_schedule_and_an_end_reason_are_kept() {
    let starts_at = common::T0.plus(Duration::from_secs(60));
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            starts_at: Some(starts_at),
            open_for_secs: Some(600),
            ..Default::default()
        },
    );
    let c = h.join(host());
    h.idle(&[c], Duration::from_secs(6 * 60 + 1));
    assert_eq!(
        h.event_kinds(c)
            .iter()
            .filter(|k| *k == "session_closing")
            .count(),
        1
    );
    let (stored, mut back) = round_trip(&mut h, None);
    assert_eq!(
        stored.record.closes_at,
        Some(starts_at.plus(Duration::from_secs(600)))
    );
    assert_eq!(back.info().starts_at, Some(starts_at));
    assert_eq!(back.info().closes_at, h.session.info().closes_at);
    // Loaded between the warning and the close: no second warning.
    let seq = back.events_since(Seq(0), 1000).events.len();
    back.handle_timeout(h.now.plus(Duration::from_secs(60)));
    assert_eq!(
        back.events_since(Seq(0), 1000).events.len(),
        seq,
        "warned once, before it was saved"
    );
    // At its close it ends, warned no more.
    let late = starts_at.plus(Duration::from_secs(601));
    assert_eq!(back.poll_timeout().map(|t| t <= late), Some(true));
    back.handle_timeout(late);
    assert!(back.is_ended());
    let after: Vec<_> = back.events_since(Seq(0), 1000).events.split_off(seq);
    assert!(
        matches!(
            after.as_slice(),
            [collab_core::Event {
                kind: collab_core::EventKind::SessionEnded {
                    reason: collab_core::EndReason::Closed,
                    ..
                },
                ..
            }]
        ),
        "{after:?}"
    );
    let mut changes = back.take_changes();
    let record = changes.record.take().expect("the record changed");
    assert_eq!(record.end_reason, Some(collab_core::EndReason::Closed));
}
