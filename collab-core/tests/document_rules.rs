//! The document's rules through the session: who may edit, what is refused,
//! cursors and comments that follow edits, history and replay, run output.

mod common;

use std::time::Duration;

use collab_core::{
    ErrorCode, NewSession, ReplicaClient, Role, ServerFrame, SessionConfig, Transmit,
};
use common::{host, sync_replica, user, Harness};
use serde_json::{json, Value};

fn with_code(code: &str) -> Harness {
    Harness::with(
        SessionConfig::default(),
        NewSession {
            code: code.into(),
            language: "python".into(),
            ..Default::default()
        },
    )
}

fn last_of(h: &Harness, conn: collab_core::ids::ConnectionId, ty: &str) -> Value {
    h.json(conn)
        .into_iter()
        .rev()
        .find(|f| f["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} frame"))
}

#[test]
fn a_thin_edit_is_acked_and_sent_to_the_others() {
    let mut h = with_code("hello");
    let a = h.join(host());
    let b = h.join(user(1));
    let welcome = h
        .json(b)
        .into_iter()
        .find(|f| f["type"] == "welcome")
        .unwrap();
    assert_eq!(
        welcome["document"],
        json!({"rev": 0, "language": "python", "files": {"main": "hello"}})
    );
    h.clear_all();
    h.send(a, json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": [5, ", 😀 world"], "oid": "a-1"}));
    assert_eq!(
        h.json(a),
        vec![json!({"type": "text_ack", "rid": 1, "rev": 1, "oid": "a-1"})]
    );
    let op = last_of(&h, b, "text_op");
    assert_eq!(
        op,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [5, ", 😀 world"], "author": h.me(a).0, "oid": "a-1"})
    );
    assert_eq!(h.session.code(), "hello, 😀 world");
}

#[test]
fn concurrent_edits_are_rebased() {
    let mut h = with_code("abc");
    let a = h.join(host());
    let b = h.join(user(1));
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": [1, "X"]}),
    );
    // b typed against revision 0 too, without having seen a's edit.
    h.send(
        b,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": [2, -1, ]}),
    );
    h.send(
        b,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": [1, "Y"], "rid": 5}),
    );
    assert_eq!(h.session.code(), "aXYb");
    let ack = last_of(&h, b, "text_ack");
    assert_eq!(ack["rev"], 3);
}

#[test]
fn a_resent_operation_is_applied_once() {
    let mut h = with_code("");
    let a = h.join(host());
    for _ in 0..3 {
        h.send(
            a,
            json!({"type": "text_op", "rev": 0, "file": "main", "op": ["once"], "oid": "x-1"}),
        );
    }
    assert_eq!(h.session.code(), "once");
    let acks: Vec<u64> = h
        .json(a)
        .iter()
        .filter(|f| f["type"] == "text_ack")
        .map(|f| f["rev"].as_u64().unwrap())
        .collect();
    assert_eq!(acks, vec![1, 1, 1]);
}

#[test]
fn viewers_cannot_edit_by_either_path() {
    let mut h = with_code("keep");
    let _ = h.join(host());
    let viewer = h.join(user(1).with_role(Role::Viewer));
    h.send(
        viewer,
        json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": ["x"]}),
    );
    h.send(
        viewer,
        json!({"type": "file_create", "rid": 2, "file": "evil.py"}),
    );
    assert_eq!(
        h.errors(viewer),
        vec![ErrorCode::Forbidden, ErrorCode::Forbidden]
    );
    // A viewer's replica may read but not write.
    let replica_conn = h.open(user(2).with_role(Role::Viewer)).unwrap();
    h.send(replica_conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, replica_conn, &mut replica);
    assert_eq!(replica.text("main").as_deref(), Some("keep"));
    replica.splice("main", 0, 4, "gone").unwrap();
    let msg = replica.poll_message().unwrap();
    h.session.handle_binary(replica_conn, &msg, h.now);
    h.pump();
    assert_eq!(h.errors(replica_conn), vec![ErrorCode::Forbidden]);
    assert_eq!(h.session.code(), "keep");
    assert_eq!(h.session.document().rev(), 0);
}

#[test]
fn bad_operations_get_typed_errors_and_change_nothing() {
    let mut h = with_code("ab😀");
    let a = h.join(host());
    h.clear_all();
    let cases = [
        (json!([5, "x"]), ErrorCode::InvalidOperation), // past the end (length 4)
        (json!([3, "x"]), ErrorCode::InvalidOperation), // inside the surrogate pair
        (json!([2, -1]), ErrorCode::InvalidOperation),  // deletes half an emoji
        (json!([0]), ErrorCode::MalformedFrame),        // zero-length component
        (json!(["x", 1.5]), ErrorCode::MalformedFrame), // not an integer
    ];
    for (op, _) in &cases {
        h.send(
            a,
            json!({"type": "text_op", "rev": 0, "file": "main", "op": op}),
        );
    }
    h.send(
        a,
        json!({"type": "text_op", "rev": 7, "file": "main", "op": ["x"]}),
    );
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "nope.py", "op": ["x"]}),
    );
    let mut expected: Vec<ErrorCode> = cases.iter().map(|(_, c)| *c).collect();
    expected.push(ErrorCode::UnknownRevision);
    expected.push(ErrorCode::UnknownFile);
    assert_eq!(h.errors(a), expected);
    assert_eq!(h.session.code(), "ab😀");
    assert_eq!(h.session.document().rev(), 0);
}

#[test]
fn cursors_follow_other_peoples_edits() {
    let mut h = with_code("0123456789");
    let a = h.join(host());
    let b = h.join(user(1));
    // b's caret before "5", selection over "78".
    h.send(
        b,
        json!({"type": "presence", "cursor": {"file": "main", "anchor": 7, "head": 9}}),
    );
    h.send(
        a,
        json!({"type": "presence", "cursor": {"file": "main", "anchor": 2, "head": 2}}),
    );
    // a inserts after b's selection starts? No: a inserts at 4, before b's selection.
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": [4, "abc"]}),
    );
    let b_view = h
        .session
        .participants(h.now)
        .into_iter()
        .find(|p| p.participant.id == h.me(b))
        .unwrap();
    let sel = &b_view.presence.cursors[0];
    assert_eq!((sel.anchor, sel.head), (10, 12), "still on \"78\"");
    // An insert after a caret leaves it where it is.
    h.send(
        b,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [12, "zz"]}),
    );
    let a_view = h
        .session
        .participants(h.now)
        .into_iter()
        .find(|p| p.participant.id == h.me(a))
        .unwrap();
    assert_eq!(a_view.presence.cursors[0].head, 2);
}

#[test]
fn comment_anchors_follow_edits() {
    let mut h = with_code("line one\nline two\nline three\n");
    let a = h.join(host());
    h.send(
        a,
        json!({"type": "chat_send", "text": "why?", "anchor": {"file": "main", "line": 3}}),
    );
    let id = h.session.chat_page(None, 1).messages[0].id;
    assert_eq!(
        h.session
            .message(id)
            .unwrap()
            .anchor
            .as_ref()
            .unwrap()
            .offset,
        Some(18)
    );
    // Two lines inserted above: the comment moves down with its line.
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": [9, "new a\nnew b\n"]}),
    );
    let anchor = h.session.message(id).unwrap().anchor.clone().unwrap();
    assert_eq!(anchor.line, 5);
    assert_eq!(
        &h.session.code()[anchor.offset.unwrap() as usize..],
        "line three\n"
    );
    // Text after it does not move it.
    h.send(
        a,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [40, "!"]}),
    );
    assert_eq!(
        h.session.message(id).unwrap().anchor.as_ref().unwrap().line,
        5
    );
    // A comment on a line that is not there is refused.
    h.send(
        a,
        json!({"type": "chat_send", "text": "?", "anchor": {"file": "main", "line": 99}}),
    );
    assert_eq!(h.errors(a), vec![ErrorCode::InvalidInput]);
}

#[test]
fn history_and_text_at_over_the_protocol() {
    let mut h = with_code("");
    let a = h.join(host());
    let b = h.join(user(1));
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": ["hello"]}),
    );
    h.advance(Duration::from_secs(1));
    h.send(
        b,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [5, " world"]}),
    );
    h.send(
        a,
        json!({"type": "file_create", "file": "notes.md", "text": "# notes"}),
    );
    h.clear_all();
    h.send(b, json!({"type": "history", "rid": 3, "after": 0}));
    let versions = last_of(&h, b, "versions");
    assert_eq!(versions["has_more"], false);
    let v = versions["versions"].as_array().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0]["author"].as_u64(), v[1]["author"].as_u64()),
        (Some(h.me(a).0.into()), Some(h.me(b).0.into()))
    );
    assert!(v[1]["at"].as_u64() > v[0]["at"].as_u64());
    assert_eq!(v[2]["action"], "create");
    for (rev, text) in [(0, ""), (1, "hello"), (2, "hello world")] {
        h.send(b, json!({"type": "text_at", "file": "main", "rev": rev}));
        assert_eq!(last_of(&h, b, "text_at")["text"], text);
    }
    h.send(b, json!({"type": "text_at", "file": "notes.md", "rev": 2}));
    assert!(
        last_of(&h, b, "text_at").get("text").is_none(),
        "not created yet"
    );
    h.send(b, json!({"type": "text_at", "file": "main", "rev": 99}));
    assert_eq!(h.errors(b), vec![ErrorCode::UnknownRevision]);
}

#[test]
fn run_output_is_shared() {
    let mut h = with_code("print(1)");
    let a = h.join(host());
    let b = h.join(user(1));
    h.send(
        a,
        json!({"type": "run_output", "stdout": "1\n", "exit_code": 0}),
    );
    let run = last_of(&h, b, "event");
    assert_eq!(run["event"]["kind"], "run_finished");
    assert_eq!(run["event"]["run"]["stdout"], "1\n");
    assert_eq!(h.session.document().runs().len(), 1);
    let viewer = h.join(user(2).with_role(Role::Viewer));
    h.send(viewer, json!({"type": "run_output", "stdout": "fake"}));
    assert_eq!(h.errors(viewer), vec![ErrorCode::Forbidden]);
}

#[test]
fn a_thin_client_reconnecting_from_a_revision_catches_up() {
    let mut h = with_code("");
    let a = h.join(host());
    let b = h.join(user(1));
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": ["one "]}),
    );
    h.disconnect(b);
    h.send(
        a,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [4, "two "]}),
    );
    h.send(a, json!({"type": "file_create", "file": "b.py"}));
    let back = h.open(user(1)).unwrap();
    h.send(back, json!({"type": "join", "rev": 1}));
    let welcome = last_of(&h, back, "welcome");
    assert!(
        welcome["document"].get("files").is_none(),
        "no full text when catching up"
    );
    let catchup = last_of(&h, back, "text_catchup");
    assert_eq!(catchup["rev"], 3);
    let ops = catchup["ops"].as_array().unwrap();
    assert_eq!(
        (ops[0]["type"].as_str(), ops[1]["type"].as_str()),
        (Some("text_op"), Some("file_op"))
    );
    let future = h.open(user(2)).unwrap();
    h.send(future, json!({"type": "join", "rev": 50}));
    assert_eq!(h.errors(future), vec![ErrorCode::UnknownRevision]);
}

#[test]
fn a_late_replica_gets_the_whole_document_from_one_exchange() {
    let mut h = with_code("start");
    let a = h.join(host());
    for i in 0..200 {
        h.send(
            a,
            json!({"type": "text_op", "rev": i, "file": "main", "op": [5 + i, "x"]}),
        );
    }
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(replica.text("main").unwrap(), h.session.code());
    // And the replica's edits reach thin clients as text operations.
    h.clear_all();
    replica.splice("main", 0, 5, "START").unwrap();
    sync_replica(&mut h, conn, &mut replica);
    assert!(h.session.code().starts_with("START"));
    let ops: Vec<Value> = h
        .json(a)
        .into_iter()
        .filter(|f| f["type"] == "text_op")
        .collect();
    assert!(!ops.is_empty());
    assert!(h
        .frames(a)
        .iter()
        .all(|f| !matches!(f, ServerFrame::Error { .. })));
    let _ = Transmit::Close {
        conn,
        reason: collab_core::CloseReason::Left,
    };
}

#[test]
fn a_file_made_by_a_replica_reaches_thin_clients_once() {
    let mut h = with_code("x");
    let a = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    h.clear_all();
    replica.create_file("util.go", "package main").unwrap();
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(
        h.session.document().text("util.go").as_deref(),
        Some("package main")
    );
    // The thin client rebuilds the file from what it is sent.
    let mut text = None::<String>;
    for f in h.json(a) {
        match f["type"].as_str() {
            Some("file_op") if f["file"] == "util.go" => {
                text = Some(f["text"].as_str().unwrap_or("").to_owned())
            }
            Some("text_op") if f["file"] == "util.go" => {
                let op: collab_core::TextOperation =
                    serde_json::from_value(f["op"].clone()).unwrap();
                text = Some(op.apply(text.as_deref().unwrap()).unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(text.as_deref(), Some("package main"));
}

#[test]
fn operation_ids_belong_to_their_author() {
    let mut h = with_code("");
    let a = h.join(host());
    let b = h.join(user(1));
    h.send(
        a,
        json!({"type": "text_op", "rev": 0, "file": "main", "op": ["A"], "oid": "1"}),
    );
    h.send(
        b,
        json!({"type": "text_op", "rev": 1, "file": "main", "op": [1, "B"], "oid": "1"}),
    );
    assert_eq!(h.session.code(), "AB", "b's op is not mistaken for a's");
}

#[test]
fn the_creator_of_a_file_learns_its_revision() {
    let mut h = with_code("");
    let a = h.join(host());
    h.send(
        a,
        json!({"type": "file_create", "file": "b.py", "text": "pass"}),
    );
    let op = last_of(&h, a, "file_op");
    assert_eq!(
        (op["rev"].as_u64(), op["action"].as_str()),
        (Some(1), Some("create"))
    );
    h.send(
        a,
        json!({"type": "text_op", "rev": 1, "file": "b.py", "op": [4, "\n"]}),
    );
    assert_eq!(h.session.document().text("b.py").as_deref(), Some("pass\n"));
}

#[test]
fn a_language_change_reaches_replicas() {
    let mut h = with_code("x");
    let a = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    h.send(a, json!({"type": "update_session", "language": "go"}));
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(replica.language().as_deref(), Some("go"));
}

/// A replica's sync message whose Bloom filter has entries but no bits per
/// entry made automerge divide by zero while answering it, which panicked
/// the session's task (found by the `document_sync` fuzz target). It is
/// refused now, and the session goes on.
#[test]
fn a_sync_message_that_would_crash_automerge_is_refused() {
    let crasher = include_bytes!(
        "../../fuzz/crashes/document_sync/crash-792dda7f06a0678b8d7731794e067257f0064cbf"
    );
    let mut h = with_code("keep");
    let _ = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    // The crasher as one message, and in two parts as the fuzz target sent it.
    let split = usize::from(crasher[0]).min(crasher.len());
    for message in [&crasher[..], &crasher[..split], &crasher[split..]] {
        h.session.handle_binary(conn, message, h.now);
        h.pump();
    }
    assert!(!h.errors(conn).is_empty(), "refused with an error");
    replica.splice("main", 0, 4, "kept").unwrap();
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(h.session.code(), "kept", "the replica still edits");
}

/// A replica that only follows a busy session answers every sync message it
/// gets; answers without changes cost a tenth of a frame, so it is not
/// refused where the same number of edits would be.
#[test]
fn a_replica_that_only_follows_is_not_rate_limited() {
    let mut h = with_code("keep");
    let _ = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    // An answer with nothing new: what a follower sends after each message.
    replica.reconnect();
    let answer = replica.poll_message().expect("a sync message");
    assert!(!collab_core::Document::sync_message_has_changes(&answer).unwrap());
    h.clear_all();
    for _ in 0..400 {
        h.session.handle_binary(conn, &answer, h.now);
    }
    h.pump();
    assert!(
        !h.errors(conn).contains(&ErrorCode::RateLimited),
        "a follower's answers were refused"
    );
    // Messages that carry edits still count in full.
    let editor = h.open(user(2)).unwrap();
    h.send(editor, json!({"type": "join", "mode": "replica"}));
    let mut writer = ReplicaClient::new();
    sync_replica(&mut h, editor, &mut writer);
    h.clear_all();
    for i in 0..200u32 {
        writer.splice("main", 0, 0, "x").unwrap();
        let m = writer.poll_message().unwrap();
        h.session.handle_binary(editor, &m, h.now);
        let _ = i;
    }
    h.pump();
    assert!(h.errors(editor).contains(&ErrorCode::RateLimited));
}

/// A replica that takes what arrived in one go answers once: the snapshot
/// and the first sync message of a join come together, and one answer
/// settles them.
#[test]
fn a_replica_answers_what_arrived_together_once() {
    let mut h = with_code("hello");
    let _ = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let burst = h.take_binary(conn);
    assert!(burst.len() >= 2, "{} binary frames on join", burst.len());
    let mut replica = ReplicaClient::new();
    let answer = replica
        .receive_all(burst.iter().map(Vec::as_slice))
        .unwrap();
    assert_eq!(replica.text("main").as_deref(), Some("hello"));
    if let Some(a) = answer {
        h.session.handle_binary(conn, &a, h.now);
        h.pump();
    }
    assert!(h.errors(conn).is_empty());
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(replica.text("main").as_deref(), Some("hello"));
}

/// A client that does not ask for ties by author gets the rule protocol 1
/// first published (the history goes first), so clients written against it
/// keep converging; one that asks gets the author's order.
#[test]
fn ties_go_by_author_only_for_clients_that_ask() {
    for (ties, expected) in [(None, "BA"), (Some("author"), "AB")] {
        let mut h = with_code("");
        let host_conn = h.join(host()); // participant 1
        let guest = h.join(user(1)); // participant 2
        h.send(
            guest,
            json!({"type": "text_op", "rid": 1, "rev": 0, "file": "main", "op": ["B"]}),
        );
        let mut frame = json!({"type": "text_op", "rid": 2, "rev": 0, "file": "main", "op": ["A"]});
        if let Some(t) = ties {
            frame["ties"] = json!(t);
        }
        h.send(host_conn, frame);
        assert_eq!(h.session.code(), expected, "ties: {ties:?}");
    }
}

/// Sync messages that arrive together from one replica are applied as one
/// (one automerge call for all their changes); a bad one among them is
/// refused on its own and the others still land.
#[test]
fn a_replicas_messages_that_arrive_together_land_together() {
    let mut h = with_code("hello");
    let thin = h.join(host());
    let conn = h.open(user(1)).unwrap();
    h.send(conn, json!({"type": "join", "mode": "replica"}));
    let mut replica = ReplicaClient::new();
    sync_replica(&mut h, conn, &mut replica);
    h.json(thin);
    let mut burst = Vec::new();
    for (i, word) in [" a", " b", " c"].iter().enumerate() {
        replica.splice("main", 5 + 2 * i as u32, 0, word).unwrap();
        burst.push(replica.poll_message().expect("a message with the change"));
    }
    burst.insert(1, b"not a sync message".to_vec());
    let frames: Vec<&[u8]> = burst.iter().map(Vec::as_slice).collect();
    h.session.handle_binaries(conn, &frames, h.now);
    h.pump();
    assert_eq!(h.errors(conn).len(), 1, "the bad message alone is refused");
    assert_eq!(
        h.session.document().text("main").as_deref(),
        Some("hello a b c")
    );
    let ops = h
        .json(thin)
        .into_iter()
        .filter(|f| f["type"] == "text_op")
        .count();
    assert!(ops >= 1, "the thin client hears of the replica's edits");
    sync_replica(&mut h, conn, &mut replica);
    assert_eq!(replica.text("main").as_deref(), Some("hello a b c"));
}
