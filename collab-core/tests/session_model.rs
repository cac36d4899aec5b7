//! Many virtual clients doing random things, valid and not, on a virtual clock:
//! the session never panics and its invariants hold after every step.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use collab_core::ids::ConnectionId;
use collab_core::{NewSession, Seq, ServerFrame, SessionConfig, Status};
use common::{host, user, Harness};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Connect(u32),
    Join(usize, Option<String>),
    Disconnect(usize),
    Frame(usize, String),
    Advance(u64),
}

fn frame() -> impl Strategy<Value = String> {
    let id = 0u64..40;
    let who = 0u32..10;
    prop_oneof![
        "[ -~é😀@]{0,40}".prop_map(|t| json!({"type": "chat_send", "text": t}).to_string()),
        ("[a-zé😀 ]{1,10}", 0u32..50).prop_map(|(t, line)| {
            json!({"type": "chat_send", "text": t, "anchor": {"file": "main", "line": line}}).to_string()
        }),
        ("[a-z@ ]{1,10}", id.clone()).prop_map(|(t, r)| json!({"type": "chat_send", "text": t, "reply_to": r}).to_string()),
        (id.clone(), "[a-z]{0,5}").prop_map(|(m, t)| json!({"type": "chat_edit", "message": m, "text": t}).to_string()),
        id.clone().prop_map(|m| json!({"type": "chat_delete", "message": m}).to_string()),
        (id.clone(), prop::sample::select(vec!["👍", "🎉", "", "a b", "x"]))
            .prop_map(|(m, e)| json!({"type": "react", "message": m, "emoji": e}).to_string()),
        who.clone().prop_map(|p| json!({"type": "kick", "participant": p}).to_string()),
        (who, prop::sample::select(vec!["host", "editor", "viewer"]))
            .prop_map(|(p, r)| json!({"type": "set_role", "participant": p, "role": r}).to_string()),
        (0u32..100, 0u32..100, any::<Option<bool>>(), prop::sample::select(vec!["main", "b.rs", ""])).prop_map(
            |(a, b, typing, file)| {
                json!({"type": "presence", "cursor": {"file": file, "anchor": a, "head": b},
                       "viewport": {"file": file, "first_line": a, "last_line": b}, "typing": typing})
                .to_string()
            }
        ),
        prop::sample::select(vec!["active", "idle", "away", "offline"])
            .prop_map(|s| json!({"type": "presence", "status": s}).to_string()),
        "[a-z ]{0,8}".prop_map(|t| json!({"type": "update_session", "title": t}).to_string()),
        prop::sample::select(vec!["waiting", "active", "paused", "ended"])
            .prop_map(|s| json!({"type": "update_session", "status": s}).to_string()),
        Just(json!({"type": "heartbeat"}).to_string()),
        Just(json!({"type": "leave"}).to_string()),
        Just(json!({"type": "end_session"}).to_string()),
        (0u64..40).prop_map(|s| json!({"type": "events_since", "since": s, "limit": 5}).to_string()),
        (0u64..40).prop_map(|s| json!({"type": "chat_history", "before": s}).to_string()),
        Just(json!({"type": "who_is_viewing", "file": "main"}).to_string()),
        ".{0,30}",
        "\\{\"type\":\"[a-z_]{1,12}\"(,\"[a-z]{1,6}\":[0-9]{1,3})?\\}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..8).prop_map(Op::Connect),
        2 => (0usize..16, proptest::option::of("[A-Za-z ]{0,8}")).prop_map(|(c, n)| Op::Join(c, n)),
        1 => (0usize..16).prop_map(Op::Disconnect),
        10 => (0usize..16, frame()).prop_map(|(c, f)| Op::Frame(c, f)),
        2 => prop_oneof![0u64..200, 1_000u64..70_000].prop_map(Op::Advance),
    ]
}

fn check_invariants(h: &Harness, conns: &[ConnectionId], capacity: usize) {
    let participants = h.session.participants(h.now);
    let online = participants
        .iter()
        .filter(|p| p.presence.status != Status::Offline)
        .count();
    assert!(
        online <= capacity,
        "{online} online over capacity {capacity}"
    );
    let present: Vec<_> = participants.iter().filter(|p| p.present).collect();
    let colours: HashSet<_> = present
        .iter()
        .map(|p| p.participant.colour.as_str())
        .collect();
    assert_eq!(
        colours.len(),
        present.len(),
        "colours distinct among current participants"
    );
    let log = h.session.events_since(Seq(0), usize::MAX);
    let mut all = log.events;
    let mut has_more = log.has_more;
    while has_more {
        let page = h.session.events_since(all.last().unwrap().seq, usize::MAX);
        has_more = page.has_more;
        all.extend(page.events);
    }
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, Seq(i as u64 + 1), "the log is contiguous from 1");
    }
    for c in conns {
        let seqs: Vec<u64> = h
            .frames(*c)
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Event { event } => Some(event.seq.0),
                _ => None,
            })
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "events arrive in order on {c:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_clients_never_break_a_session(ops in proptest::collection::vec(op(), 1..120)) {
        let capacity = 4;
        let mut h = Harness::with(
            SessionConfig::default(),
            NewSession { capacity: Some(capacity), ..Default::default() },
        );
        let mut conns: Vec<ConnectionId> = vec![];
        let host_conn = h.join(host());
        conns.push(host_conn);
        let mut stored = None;
        for op in ops {
            match op {
                Op::Connect(u) => {
                    if let Ok(c) = h.open(user(u)) {
                        conns.push(c);
                    }
                }
                Op::Join(i, name) => {
                    if let Some(c) = conns.get(i).copied() {
                        h.send(c, json!({"type": "join", "name": name}));
                    }
                }
                Op::Disconnect(i) => {
                    if let Some(c) = conns.get(i).copied() {
                        h.disconnect(c);
                    }
                }
                Op::Frame(i, text) => {
                    if let Some(c) = conns.get(i).copied() {
                        h.send_text(c, &text);
                    }
                }
                Op::Advance(ms) => h.advance(Duration::from_millis(ms)),
            }
            check_invariants(&h, &conns, capacity);
            check_what_is_kept(&mut h, &mut stored);
        }
    }
}

/// Hands the step's changes to a store (the reference one) and checks that
/// the session loaded back from it has the same record: title, language,
/// status and their times, and every member's name, role, colour and
/// membership, and the bans. A change a step made without marking it for
/// the store would be missing here.
fn check_what_is_kept(h: &mut Harness, stored: &mut Option<collab_core::StoredSession>) {
    *stored =
        Some(collab_core::apply_changes(stored.take(), h.session.take_changes()).expect("stored"));
    let kept = stored.clone().expect("stored once");
    let loaded =
        collab_core::Session::restore(kept, SessionConfig::default(), h.now).expect("loads back");
    let heading = |info: collab_core::SessionInfo| {
        (
            info.title,
            info.language,
            info.status,
            info.capacity,
            info.expires_after_secs,
            info.updated_at,
            info.ended_at,
        )
    };
    assert_eq!(heading(loaded.info()), heading(h.session.info()));
    let members = |s: &collab_core::Session| {
        s.participants(h.now)
            .into_iter()
            .map(|p| (p.participant, p.present))
            .collect::<Vec<_>>()
    };
    assert_eq!(members(&loaded), members(&h.session));
    for u in 0..10 {
        let who = user(u).user_id;
        assert_eq!(
            loaded.may_read(&who, None).is_ok(),
            h.session.may_read(&who, None).is_ok(),
            "bans of {who}"
        );
    }
}

#[test]
fn ten_clients_chat_and_move_for_a_virtual_hour() {
    let mut h = Harness::new();
    let conns: Vec<ConnectionId> = std::iter::once(h.join(host()))
        .chain((1..10).map(|i| h.join(user(i))))
        .collect();
    let mut sent = 0;
    for minute in 0..60u32 {
        for (i, c) in conns.iter().enumerate() {
            let i = i as u32;
            h.send(*c, json!({"type": "presence", "cursor": {"file": "main", "anchor": minute + i, "head": minute + i}}));
            if (minute + i).is_multiple_of(4) {
                h.send(
                    *c,
                    json!({"type": "chat_send", "text": format!("minute {minute} from {i}")}),
                );
                sent += 1;
            }
        }
        h.idle(&conns, Duration::from_secs(60));
    }
    assert_eq!(h.session.message_count(), sent);
    let per_conn: HashMap<ConnectionId, usize> = conns
        .iter()
        .map(|c| {
            (
                *c,
                h.frames(*c)
                    .iter()
                    .filter(|f| matches!(f, ServerFrame::Event { .. }))
                    .count(),
            )
        })
        .collect();
    // Everyone who joined before the first message saw every message.
    assert!(per_conn.values().all(|n| *n >= sent));
    assert!(h.closed.is_empty(), "heartbeats kept everyone connected");
    check_invariants(&h, &conns, 10);
}

/// Each kind of change to what the store keeps of a session, one step at a
/// time, with the store handed the changes after every step: the session
/// loaded back from it is the same each time.
#[test]
fn every_change_to_the_record_is_kept() {
    let mut h = Harness::new();
    let mut stored = None;
    let hc = h.join(host());
    check_what_is_kept(&mut h, &mut stored);
    let a = h.join(user(1));
    check_what_is_kept(&mut h, &mut stored);
    let b = h.join(user(2));
    check_what_is_kept(&mut h, &mut stored);
    let (pa, pb) = (h.me(a), h.me(b));
    let steps = [
        (
            hc,
            json!({"type": "set_role", "participant": pa.0, "role": "viewer"}),
        ),
        (
            hc,
            json!({"type": "set_role", "participant": pa.0, "role": "host"}),
        ),
        (hc, json!({"type": "update_session", "title": "Round 2"})),
        (hc, json!({"type": "update_session", "status": "paused"})),
        (hc, json!({"type": "update_session", "language": "rust"})),
        (b, json!({"type": "leave"})),
        (
            hc,
            json!({"type": "kick", "participant": pa.0, "ban_address": true}),
        ),
    ];
    for (conn, frame) in steps {
        h.send(conn, frame);
        check_what_is_kept(&mut h, &mut stored);
    }
    // Back after leaving, under another name.
    let b = h.open(user(2)).expect("opens");
    h.send(b, json!({"type": "join", "name": "Bee"}));
    assert_eq!(h.me(b), pb, "the same participant");
    check_what_is_kept(&mut h, &mut stored);
    // A member who never left comes back under another name.
    h.disconnect(b);
    let b = h.open(user(2)).expect("opens");
    h.send(b, json!({"type": "join", "name": "Bo"}));
    check_what_is_kept(&mut h, &mut stored);
    assert_eq!(h.errors(hc), vec![], "every step was carried out");
    assert_eq!(h.errors(b), vec![]);
    h.send(hc, json!({"type": "end_session"}));
    check_what_is_kept(&mut h, &mut stored);
}
