//! Each rule of a session, driven through the harness with virtual clients on a
//! virtual clock.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use collab_core::{
    CloseReason, ErrorCode, EventKind, Identity, NewSession, Role, ServerFrame, SessionConfig,
    SessionError, SessionStatus, SessionUpdate, Status,
};
use common::{host, user, Harness};
use serde_json::json;

fn presence_frames(
    h: &Harness,
    conn: collab_core::ids::ConnectionId,
    of: collab_core::ParticipantId,
) -> Vec<collab_core::PresenceView> {
    h.frames(conn)
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Presence {
                participant,
                presence,
            } if *participant == of => Some(presence.clone()),
            _ => None,
        })
        .collect()
}

// ---- sessions ------------------------------------------------------------

#[test]
fn a_new_session_has_defaults_and_its_code() {
    let h = Harness::with(
        SessionConfig::default(),
        NewSession {
            title: "Round 1".into(),
            language: "python".into(),
            code: "print(1)".into(),
            ..Default::default()
        },
    );
    let info = h.session.info();
    assert_eq!(info.capacity, 10);
    assert_eq!(info.status, SessionStatus::Waiting);
    assert_eq!(info.expires_after_secs, 30 * 60);
    assert_eq!(info.language, "python");
    assert_eq!(h.session.code(), "print(1)");
}

#[test]
fn bad_session_settings_are_refused() {
    let make = |new: NewSession| {
        collab_core::Session::new(
            collab_core::SessionId::from_bytes([1; 16]),
            new,
            &host(),
            SessionConfig::default(),
            common::T0,
        )
    };
    assert!(matches!(
        make(NewSession {
            capacity: Some(0),
            ..Default::default()
        }),
        Err(SessionError::InvalidInput(_))
    ));
    assert!(matches!(
        make(NewSession {
            language: "py thon".into(),
            ..Default::default()
        }),
        Err(SessionError::InvalidInput(_))
    ));
    assert!(matches!(
        make(NewSession {
            title: "x".repeat(201),
            ..Default::default()
        }),
        Err(SessionError::InvalidInput(_))
    ));
}

#[test]
fn host_updates_the_session_and_everyone_is_told() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let ed = h.join(user(1));
    h.clear_all();
    h.send(host_conn, json!({"type": "update_session", "rid": 4, "title": "Final", "language": "rust", "status": "active"}));
    let info = h.session.info();
    assert_eq!(
        (info.title.as_str(), info.language.as_str(), info.status),
        ("Final", "rust", SessionStatus::Active)
    );
    assert_eq!(h.session.document().language(), "rust");
    assert_eq!(h.event_kinds(ed), vec!["session_updated"]);
    assert!(h
        .json(host_conn)
        .iter()
        .any(|f| f["type"] == "ack" && f["rid"] == 4));
}

#[test]
fn updates_over_rest_need_a_host() {
    let mut h = Harness::new();
    let _ = h.join(user(1));
    let update = SessionUpdate {
        title: Some("hijack".into()),
        ..Default::default()
    };
    let err = h
        .session
        .update(&user(1).user_id, update.clone(), h.now)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = h
        .session
        .update(&user(99).user_id, update.clone(), h.now)
        .unwrap_err();
    assert_eq!(err, SessionError::NotParticipant);
    // The creator may update over REST before ever joining.
    assert_eq!(
        h.session
            .update(&host().user_id, update, h.now)
            .unwrap()
            .title,
        "hijack"
    );
}

#[test]
fn ending_closes_everyone_and_refuses_new_connections() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let ed = h.join(user(1));
    h.send(host_conn, json!({"type": "end_session"}));
    assert!(h.session.is_ended());
    assert!(h.event_kinds(ed).contains(&"session_ended".to_string()));
    assert!(h
        .json(ed)
        .iter()
        .any(|f| f["type"] == "goodbye" && f["reason"] == "session_ended"));
    assert_eq!(h.closed.get(&ed), Some(&CloseReason::SessionEnded));
    assert_eq!(h.closed.get(&host_conn), Some(&CloseReason::SessionEnded));
    assert_eq!(h.open(user(2)).unwrap_err(), SessionError::SessionEnded);
    // History stays readable.
    assert!(
        h.session
            .events_since(collab_core::Seq(0), 100)
            .events
            .len()
            >= 3
    );
}

#[test]
fn an_idle_empty_session_expires() {
    let mut h = Harness::new();
    let c = h.join(host());
    h.disconnect(c);
    h.advance(Duration::from_secs(29 * 60));
    assert!(!h.session.is_ended());
    h.advance(Duration::from_secs(61));
    assert!(h.session.is_ended());
    let last = h
        .session
        .events_since(collab_core::Seq(0), 100)
        .events
        .pop()
        .unwrap();
    assert!(matches!(
        last.kind,
        EventKind::SessionEnded {
            by: None,
            reason: collab_core::EndReason::Expired
        }
    ));
}

#[test]
fn a_session_with_someone_connected_does_not_expire() {
    let mut h = Harness::new();
    let c = h.join(host());
    h.idle(&[c], Duration::from_secs(40 * 60));
    assert!(!h.session.is_ended());
    assert!(h.closed.is_empty());
}

// ---- participants ----------------------------------------------------------

#[test]
fn creator_is_host_others_get_the_default_or_granted_role() {
    let mut h = Harness::new();
    let a = h.join(host());
    let b = h.join(user(1));
    let c = h.join(user(2).with_role(Role::Viewer));
    let roles: Vec<Role> = [a, b, c]
        .iter()
        .map(|c| {
            let me = h.me(*c);
            h.session
                .participants(h.now)
                .into_iter()
                .find(|p| p.participant.id == me)
                .unwrap()
                .participant
                .role
        })
        .collect();
    assert_eq!(roles, vec![Role::Host, Role::Editor, Role::Viewer]);
}

#[test]
fn ids_are_stable_and_colours_distinct() {
    let mut h = Harness::new();
    let conns: Vec<_> = (0..10).map(|i| h.join(user(i))).collect();
    let ids: HashSet<_> = conns.iter().map(|c| h.me(*c)).collect();
    assert_eq!(ids.len(), 10);
    let colours: HashSet<_> = h
        .session
        .participants(h.now)
        .into_iter()
        .map(|p| p.participant.colour)
        .collect();
    assert_eq!(colours.len(), 10);
}

/// Members stay members after they go offline, so a long-lived session
/// gathers thousands of them: every join must still be answered (a colour
/// search over an endless sequence once froze the session at its 373rd).
#[test]
fn thousands_of_members_over_a_sessions_life_are_all_welcomed() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let mut welcomed = 0;
    for i in 0..3000 {
        let conn = h.open(user(i)).expect("a seat is free");
        h.send(conn, json!({"type": "join"}));
        let answered = h
            .take(conn)
            .iter()
            .any(|f| matches!(f, ServerFrame::Welcome { .. }));
        assert!(answered, "member {i} got no welcome");
        welcomed += 1;
        h.disconnect(conn);
        if i % 500 == 0 {
            h.take(host_conn);
        }
    }
    assert_eq!(welcomed, 3000);
    let everyone = h.session.participants(h.now);
    assert_eq!(everyone.len(), 3001);
    // Those online at once still tell each other apart.
    let online: Vec<_> = (3000..3009).map(|i| h.join(user(i))).collect();
    let colours: HashSet<_> = h
        .session
        .participants(h.now)
        .into_iter()
        .filter(|p| p.presence.status != Status::Offline)
        .map(|p| p.participant.colour)
        .collect();
    assert_eq!(colours.len(), online.len() + 1);
}

#[test]
fn the_participant_over_capacity_is_refused_and_nothing_changes() {
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            capacity: Some(3),
            ..Default::default()
        },
    );
    let first = h.join(user(0));
    let _ = h.join(user(1));
    let _ = h.join(user(2));
    h.clear_all();
    let before_events = h.session.event_count();
    let before = h.session.participants(h.now);
    let extra = h.open(user(3)).unwrap();
    h.send(extra, json!({"type": "join", "rid": 1}));
    assert_eq!(h.errors(extra), vec![ErrorCode::SessionFull]);
    assert!(h.json(extra)[0]["rid"] == 1);
    assert_eq!(h.session.event_count(), before_events);
    assert_eq!(h.session.participants(h.now), before);
    assert!(h.frames(first).is_empty(), "nobody else sees anything");
    // A second tab of someone already online takes no seat.
    let second_tab = h.open(user(0)).unwrap();
    h.send(second_tab, json!({"type": "join"}));
    assert!(h.errors(second_tab).is_empty());
    // A seat frees up when someone leaves.
    h.send(first, json!({"type": "leave"}));
    h.send(second_tab, json!({"type": "leave"}));
    h.send(extra, json!({"type": "join"}));
    assert!(h
        .frames(extra)
        .iter()
        .any(|f| matches!(f, ServerFrame::Welcome { .. })));
}

#[test]
fn the_same_identity_gets_its_own_participant_back() {
    let mut h = Harness::new();
    let _host = h.join(host());
    let first = h.join(user(1));
    let me = h.me(first);
    let colour = h
        .session
        .participant_of(&user(1).user_id)
        .unwrap()
        .colour
        .clone();
    h.disconnect(first); // a page refresh
    let again = h.join(user(1));
    assert_eq!(h.me(again), me);
    assert_eq!(
        h.session.participant_of(&user(1).user_id).unwrap().colour,
        colour
    );
    assert_eq!(h.session.participants(h.now).len(), 2, "no duplicate");
    let joins = h
        .session
        .events_since(collab_core::Seq(0), 100)
        .events
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::ParticipantJoined { .. }))
        .count();
    assert_eq!(joins, 2, "a reconnect is presence, not a new join");
}

#[test]
fn leaving_is_an_event_and_coming_back_is_a_rejoin() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let c = h.join(user(1));
    let me = h.me(c);
    h.clear_all();
    h.send(c, json!({"type": "leave"}));
    assert_eq!(h.closed.get(&c), Some(&CloseReason::Left));
    assert_eq!(h.event_kinds(host_conn), vec!["participant_left"]);
    let back = h.join(user(1));
    assert_eq!(h.me(back), me);
    let last = h
        .session
        .events_since(collab_core::Seq(0), 100)
        .events
        .pop()
        .unwrap();
    assert!(matches!(
        last.kind,
        EventKind::ParticipantJoined { rejoined: true, .. }
    ));
}

#[test]
fn host_kicks_and_the_kicked_cannot_return() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let ed = h.join(user(1));
    let other = h.join(user(2));
    let target = h.me(ed);
    h.clear_all();
    h.send(host_conn, json!({"type": "kick", "participant": target.0}));
    assert_eq!(h.closed.get(&ed), Some(&CloseReason::Kicked));
    assert!(h
        .json(ed)
        .iter()
        .any(|f| f["type"] == "goodbye" && f["reason"] == "kicked"));
    assert_eq!(h.event_kinds(other), vec!["participant_kicked"]);
    assert_eq!(h.open(user(1)).unwrap_err(), SessionError::Banned);
}

#[test]
fn only_hosts_kick_and_not_themselves() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let ed = h.join(user(1));
    let host_id = h.me(host_conn);
    h.clear_all();
    h.send(ed, json!({"type": "kick", "participant": host_id.0}));
    assert_eq!(h.errors(ed), vec![ErrorCode::Forbidden]);
    assert!(h.frames(host_conn).is_empty());
    h.send(host_conn, json!({"type": "kick", "participant": host_id.0}));
    assert_eq!(h.errors(host_conn), vec![ErrorCode::Forbidden]);
    h.send(host_conn, json!({"type": "kick", "participant": 999}));
    assert_eq!(
        h.errors(host_conn).last(),
        Some(&ErrorCode::UnknownParticipant)
    );
    assert!(h.closed.is_empty());
}

#[test]
fn roles_change_live_and_a_host_always_remains() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let ed = h.join(user(1));
    let ed_id = h.me(ed);
    let host_id = h.me(host_conn);
    h.clear_all();
    h.send(
        host_conn,
        json!({"type": "set_role", "participant": ed_id.0, "role": "viewer"}),
    );
    assert_eq!(h.event_kinds(ed), vec!["role_changed"]);
    // The new viewer is refused at once.
    h.send(ed, json!({"type": "update_session", "title": "x"}));
    assert_eq!(h.errors(ed), vec![ErrorCode::Forbidden]);
    h.send(
        host_conn,
        json!({"type": "set_role", "participant": host_id.0, "role": "editor"}),
    );
    assert_eq!(h.errors(host_conn), vec![ErrorCode::LastHost]);
    // With a second host, the first may step down.
    h.send(
        host_conn,
        json!({"type": "set_role", "participant": ed_id.0, "role": "host"}),
    );
    h.send(
        host_conn,
        json!({"type": "set_role", "participant": host_id.0, "role": "editor"}),
    );
    assert_eq!(h.errors(host_conn), vec![ErrorCode::LastHost]);
    assert_eq!(
        h.session.participant_of(&host().user_id).unwrap().role,
        Role::Editor
    );
}

#[test]
fn when_the_last_host_leaves_the_earliest_editor_hosts() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let viewer = h.join(user(1));
    let first_editor = h.join(user(2));
    let second_editor = h.join(user(3));
    let (viewer_id, first_id) = (h.me(viewer), h.me(first_editor));
    h.send(
        host_conn,
        json!({"type": "set_role", "participant": viewer_id.0, "role": "viewer"}),
    );
    h.clear_all();
    h.send(host_conn, json!({"type": "leave"}));
    let role_of = |h: &Harness, n| h.session.participant_of(&user(n).user_id).unwrap().role;
    assert_eq!(role_of(&h, 1), Role::Viewer, "viewers are never promoted");
    assert_eq!(role_of(&h, 2), Role::Host, "the earliest editor hosts");
    assert_eq!(role_of(&h, 3), Role::Editor);
    assert!(h
        .event_kinds(second_editor)
        .contains(&"role_changed".to_owned()));
    // The new host runs the session.
    h.send(
        first_editor,
        json!({"type": "update_session", "title": "Taken over"}),
    );
    assert!(h.errors(first_editor).is_empty());
    // The creator comes back as a host, whoever hosts meanwhile.
    let back = h.join(host());
    assert_eq!(
        h.session.participant_of(&host().user_id).unwrap().role,
        Role::Host
    );
    let _ = (back, first_id);
}

// ---- permissions -------------------------------------------------------------

#[test]
fn a_viewer_is_refused_without_anyone_else_seeing_anything() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let viewer = h.join(user(1).with_role(Role::Viewer));
    h.clear_all();
    let info_before = h.session.info();
    for frame in [
        json!({"type": "update_session", "rid": 1, "title": "mine now"}),
        json!({"type": "end_session", "rid": 2}),
        json!({"type": "kick", "rid": 3, "participant": 1}),
        json!({"type": "set_role", "rid": 4, "participant": 2, "role": "host"}),
    ] {
        h.send(viewer, frame);
    }
    assert_eq!(h.errors(viewer), vec![ErrorCode::Forbidden; 4]);
    let rids: Vec<_> = h
        .json(viewer)
        .iter()
        .map(|f| f["rid"].as_u64().unwrap())
        .collect();
    assert_eq!(rids, vec![1, 2, 3, 4]);
    assert_eq!(h.session.info(), info_before);
    assert!(h.frames(host_conn).is_empty());
    // Viewers may still talk.
    h.send(viewer, json!({"type": "chat_send", "text": "question"}));
    assert_eq!(h.event_kinds(host_conn), vec!["message_posted"]);
}

// ---- presence ------------------------------------------------------------------

#[test]
fn status_moves_to_idle_away_and_offline() {
    let mut h = Harness::new();
    let watcher = h.join(host());
    let c = h.join(user(1));
    let id = h.me(c);
    h.clear_all();
    h.idle(&[watcher, c], Duration::from_secs(60)); // heartbeats are not activity
    let seen: Vec<Status> = presence_frames(&h, watcher, id)
        .iter()
        .map(|p| p.status)
        .collect();
    assert_eq!(seen, vec![Status::Idle]);
    h.idle(&[watcher, c], Duration::from_secs(240));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Away
    );
    h.send(
        c,
        json!({"type": "presence", "cursor": {"file": "main", "anchor": 3, "head": 3}}),
    );
    h.advance(Duration::from_millis(100));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Active
    );
    h.disconnect(c);
    h.advance(Duration::from_millis(100));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Offline
    );
}

#[test]
fn thresholds_are_configurable_and_status_can_be_declared() {
    let mut config = SessionConfig::default();
    config.presence.idle_after = Duration::from_secs(5);
    config.presence.away_after = Duration::from_secs(10);
    let mut h = Harness::with(config, NewSession::default());
    let watcher = h.join(host());
    let c = h.join(user(1));
    let id = h.me(c);
    h.idle(&[watcher, c], Duration::from_secs(5));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Idle
    );
    h.send(c, json!({"type": "presence", "status": "away"}));
    h.advance(Duration::from_millis(60));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Away
    );
    h.send(
        c,
        json!({"type": "presence", "status": "offline", "rid": 9}),
    );
    assert_eq!(h.errors(c), vec![ErrorCode::InvalidInput]);
}

#[test]
fn typing_clears_itself_after_a_pause() {
    let mut h = Harness::new();
    let watcher = h.join(host());
    let c = h.join(user(1));
    let id = h.me(c);
    h.advance(Duration::from_secs(1));
    h.clear_all();
    h.send(c, json!({"type": "presence", "typing": true}));
    assert!(presence_frames(&h, watcher, id).last().unwrap().typing);
    h.advance(Duration::from_millis(1_400));
    assert!(presence_frames(&h, watcher, id).last().unwrap().typing);
    h.advance(Duration::from_millis(200));
    assert!(
        !presence_frames(&h, watcher, id).last().unwrap().typing,
        "cleared about 1.5 s after"
    );
}

#[test]
fn cursors_per_file_viewports_and_who_is_viewing() {
    let mut h = Harness::new();
    let a = h.join(host());
    let b = h.join(user(1));
    let c = h.join(user(2));
    h.send(
        b,
        json!({"type": "presence", "cursor": {"file": "main", "anchor": 2, "head": 9},
        "viewport": {"file": "main", "first_line": 1, "last_line": 40}}),
    );
    h.send(
        b,
        json!({"type": "presence", "cursor": {"file": "util.py", "anchor": 0, "head": 0}}),
    );
    h.send(c, json!({"type": "presence", "viewport": {"file": "util.py", "first_line": 1, "last_line": 20}}));
    h.advance(Duration::from_millis(100));
    let b_view = presence_frames(&h, a, h.me(b)).pop().unwrap();
    assert_eq!(b_view.cursors.len(), 2, "a cursor in each file");
    assert_eq!(b_view.viewport.unwrap().last_line, 40);
    h.clear_all();
    h.send(
        a,
        json!({"type": "who_is_viewing", "file": "main", "rid": 5}),
    );
    let reply = h.json(a).pop().unwrap();
    assert_eq!(
        reply,
        json!({"type": "viewers", "rid": 5, "file": "main", "participants": [h.me(b).0]})
    );
    assert_eq!(h.session.viewers_of("util.py"), vec![h.me(c)]);
    h.disconnect(c);
    assert!(
        h.session.viewers_of("util.py").is_empty(),
        "offline participants view nothing"
    );
}

#[test]
fn presence_is_bound_to_the_sender() {
    let mut h = Harness::new();
    let a = h.join(host());
    let b = h.join(user(1));
    h.advance(Duration::from_secs(1));
    h.clear_all();
    // A client naming someone else still only sets its own presence.
    h.send(
        b,
        json!({"type": "presence", "participant": h.me(a).0, "typing": true}),
    );
    assert!(presence_frames(&h, a, h.me(b)).last().unwrap().typing);
    assert!(presence_frames(&h, a, h.me(a)).is_empty());
}

#[test]
fn presence_fan_out_is_coalesced_latest_wins() {
    // Faster than the frame rate limit allows, to see coalescing alone.
    let config = {
        let mut c = SessionConfig::default();
        c.frames_per_second = 1_000;
        c.frame_burst = 1_000;
        c
    };
    let mut h = Harness::with(config, NewSession::default());
    let watcher = h.join(host());
    let c = h.join(user(1));
    let id = h.me(c);
    h.advance(Duration::from_secs(1));
    h.clear_all();
    // 200 cursor moves in one second: one every 5 ms.
    for i in 0..200u32 {
        h.send(
            c,
            json!({"type": "presence", "cursor": {"file": "main", "anchor": i, "head": i}}),
        );
        h.advance(Duration::from_millis(5));
    }
    h.advance(Duration::from_millis(100));
    let seen = presence_frames(&h, watcher, id);
    assert!(seen.len() <= 21, "at most 20 a second, saw {}", seen.len());
    assert!(seen.len() >= 15, "still live, saw {}", seen.len());
    assert_eq!(
        seen.last().unwrap().cursors[0].head,
        199,
        "the latest state arrives"
    );
}

#[test]
fn keystrokes_send_presence_only_when_typing_starts_and_stops() {
    let mut h = Harness::new();
    let watcher = h.join(host());
    let typist = h.join(user(1));
    let id = h.me(typist);
    h.advance(Duration::from_secs(1));
    h.clear_all();
    // Five seconds of typing, one character every 100 ms.
    let (_, mut rev) = h.session.position();
    for _ in 0..50 {
        h.send(
            typist,
            json!({"type": "text_op", "file": "main", "rev": rev, "op": ["x"]}),
        );
        rev += 1;
        h.advance(Duration::from_millis(100));
    }
    h.advance(Duration::from_secs(3));
    let seen = presence_frames(&h, watcher, id);
    let typing: Vec<bool> = seen.iter().map(|p| p.typing).collect();
    assert_eq!(typing, [true, false], "typing starts, then stops: {seen:?}");
    assert_eq!(h.session.code().len(), 50);
    // Nobody is sent their own presence.
    assert!(presence_frames(&h, typist, id).is_empty());
    h.send(
        typist,
        json!({"type": "presence", "cursor": {"file": "main", "anchor": 3, "head": 3}}),
    );
    h.advance(Duration::from_millis(100));
    assert_eq!(presence_frames(&h, watcher, id).len(), 3);
    assert!(presence_frames(&h, typist, id).is_empty());
}

#[test]
fn stale_connections_are_swept_and_heartbeats_keep_them() {
    let mut h = Harness::new();
    let watcher = h.join(host());
    let quiet = h.join(user(1));
    let id = h.me(quiet);
    for _ in 0..4 {
        h.advance(Duration::from_secs(20));
        h.send(watcher, json!({"type": "heartbeat"}));
    }
    assert_eq!(h.closed.get(&quiet), Some(&CloseReason::Stale));
    assert!(!h.closed.contains_key(&watcher));
    assert_eq!(
        presence_frames(&h, watcher, id).last().unwrap().status,
        Status::Offline
    );
}

// ---- chat ----------------------------------------------------------------------

#[test]
fn messages_have_a_length_limit() {
    let mut h = Harness::new();
    let c = h.join(host());
    h.send(c, json!({"type": "chat_send", "text": "x".repeat(4001)}));
    h.send(c, json!({"type": "chat_send", "text": "   "}));
    assert_eq!(
        h.errors(c),
        vec![ErrorCode::MessageTooLong, ErrorCode::InvalidInput]
    );
    assert_eq!(h.session.message_count(), 0);
    h.send(c, json!({"type": "chat_send", "text": "é".repeat(4000)}));
    assert_eq!(h.session.message_count(), 1);
}

#[test]
fn comments_threads_mentions_and_reactions() {
    let code = "line\n".repeat(20);
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            code,
            ..Default::default()
        },
    );
    let a = h.join(host());
    let b = h.join(Identity::new("u-b", "Bo Lin"));
    h.send(a, json!({"type": "chat_send", "rid": 1, "text": "why a loop here, @bo lin?", "anchor": {"file": "main", "line": 12}}));
    let root = h.session.chat_page(None, 10).messages[0].clone();
    assert_eq!(root.anchor.as_ref().unwrap().line, 12);
    assert_eq!(root.mentions, vec![h.me(b)]);
    assert!(h.event_kinds(b).contains(&"comment_posted".to_string()));
    h.send(
        b,
        json!({"type": "chat_send", "text": "speed", "reply_to": root.id.0}),
    );
    let reply = h.session.chat_page(None, 10).messages[1].clone();
    h.send(
        a,
        json!({"type": "chat_send", "text": "ok", "reply_to": reply.id.0}),
    );
    let page = h.session.chat_page(None, 10).messages;
    assert_eq!(page[1].thread, root.id);
    assert_eq!(
        page[2].thread, root.id,
        "a reply to a reply stays in the thread"
    );
    h.send(
        b,
        json!({"type": "chat_send", "text": "x", "reply_to": 999, "rid": 7}),
    );
    assert_eq!(h.errors(b), vec![ErrorCode::UnknownMessage]);
    h.send(
        b,
        json!({"type": "react", "message": root.id.0, "emoji": "👍"}),
    );
    h.send(
        a,
        json!({"type": "react", "message": root.id.0, "emoji": "👍"}),
    );
    h.send(
        b,
        json!({"type": "react", "message": root.id.0, "emoji": "👍"}),
    );
    let reactions = &h.session.message(root.id).unwrap().reactions;
    assert_eq!(
        reactions["👍"].iter().copied().collect::<Vec<_>>(),
        vec![h.me(a)]
    );
}

#[test]
fn edit_and_delete_follow_authorship_and_role() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let a = h.join(user(1));
    let b = h.join(user(2));
    h.send(a, json!({"type": "chat_send", "text": "first"}));
    h.send(b, json!({"type": "chat_send", "text": "second"}));
    let ids: Vec<_> = h
        .session
        .chat_page(None, 10)
        .messages
        .iter()
        .map(|m| m.id.0)
        .collect();
    h.send(
        b,
        json!({"type": "chat_edit", "message": ids[0], "text": "not mine"}),
    );
    h.send(b, json!({"type": "chat_delete", "message": ids[0]}));
    assert_eq!(
        h.errors(b),
        vec![ErrorCode::NotAuthor, ErrorCode::Forbidden]
    );
    h.send(
        a,
        json!({"type": "chat_edit", "message": ids[0], "text": "first, edited"}),
    );
    let m = h.session.message(collab_core::Seq(ids[0])).unwrap();
    assert_eq!(
        (m.text.as_str(), m.edited_at.is_some()),
        ("first, edited", true)
    );
    h.send(host_conn, json!({"type": "chat_delete", "message": ids[1]}));
    let m = h.session.message(collab_core::Seq(ids[1])).unwrap();
    assert!(
        m.deleted && m.text.is_empty(),
        "soft delete keeps the place, not the text"
    );
    assert_eq!(h.session.chat_page(None, 10).messages.len(), 2);
    h.send(
        b,
        json!({"type": "chat_edit", "message": ids[1], "text": "undelete?"}),
    );
    assert_eq!(h.errors(b).last(), Some(&ErrorCode::MessageDeleted));
}

#[test]
fn history_comes_in_pages_of_sequence_numbers() {
    let mut h = Harness::new();
    let c = h.join(host());
    for i in 0..25 {
        h.send(c, json!({"type": "chat_send", "text": format!("m{i}")}));
    }
    h.clear_all();
    h.send(c, json!({"type": "chat_history", "limit": 10, "rid": 3}));
    let page = h.json(c).pop().unwrap();
    assert_eq!(page["type"], "chat_history");
    assert_eq!(page["has_more"], true);
    let msgs = page["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 10);
    assert_eq!(msgs[9]["text"], "m24");
    let oldest = msgs[0]["id"].as_u64().unwrap();
    h.send(
        c,
        json!({"type": "chat_history", "before": oldest, "limit": 100}),
    );
    let page = h.json(c).pop().unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 15);
    assert_eq!(page["has_more"], false);
}

#[test]
fn everyone_sees_one_order() {
    let mut h = Harness::new();
    let conns: Vec<_> = std::iter::once(h.join(host()))
        .chain((1..8).map(|i| h.join(user(i))))
        .collect();
    h.clear_all();
    for round in 0..20 {
        for (i, c) in conns.iter().enumerate() {
            if (round + i) % 3 != 0 {
                h.send(
                    *c,
                    json!({"type": "chat_send", "text": format!("{round}:{i}")}),
                );
            }
        }
    }
    let orders: Vec<Vec<u64>> = conns
        .iter()
        .map(|c| h.events(*c).iter().map(|e| e.seq.0).collect())
        .collect();
    assert!(orders.iter().all(|o| o == &orders[0]));
    assert!(orders[0].windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
}

// ---- event log -------------------------------------------------------------------

#[test]
fn a_reconnecting_client_catches_up_without_gaps_or_duplicates() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let c = h.join(user(1));
    h.send(host_conn, json!({"type": "chat_send", "text": "before"}));
    let last_seen = h.events(c).last().unwrap().seq;
    h.disconnect(c);
    h.send(
        host_conn,
        json!({"type": "chat_send", "text": "while away 1"}),
    );
    h.send(
        host_conn,
        json!({"type": "update_session", "title": "renamed"}),
    );
    h.send(
        host_conn,
        json!({"type": "chat_send", "text": "while away 2"}),
    );
    let back = h.open(user(1)).unwrap();
    h.send(back, json!({"type": "join", "since": last_seen.0}));
    let caught_up: Vec<u64> = h
        .frames(back)
        .iter()
        .find_map(|f| match f {
            ServerFrame::Events { events, .. } => Some(events.iter().map(|e| e.seq.0).collect()),
            _ => None,
        })
        .unwrap();
    let expected: Vec<u64> = (last_seen.0 + 1..=h.session.info().last_seq.0).collect();
    assert_eq!(caught_up, expected);
    assert_eq!(caught_up.len(), 3);
    // events_since pages through the same log.
    h.send(
        back,
        json!({"type": "events_since", "since": 0, "limit": 2, "rid": 1}),
    );
    let page = h.json(back).pop().unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
}

// ---- protocol --------------------------------------------------------------------

#[test]
fn bad_frames_get_error_frames_and_the_connection_goes_on() {
    let mut h = Harness::new();
    let c = h.join(host());
    h.clear_all();
    h.send_text(c, "this is not json");
    h.send_text(c, r#"{"type":"warp_drive","rid":5}"#);
    h.send_text(c, r#"{"type":"chat_send","rid":6}"#);
    h.send_text(
        c,
        &format!(r#"{{"type":"chat_send","text":"{}"}}"#, "a".repeat(70_000)),
    );
    h.send_text(c, "\u{0}\u{ffff}");
    h.send_text(c, r#"{"type":"join","protocol":99}"#);
    assert_eq!(
        h.errors(c),
        vec![
            ErrorCode::MalformedFrame,
            ErrorCode::UnknownFrameType,
            ErrorCode::MalformedFrame,
            ErrorCode::FrameTooLarge,
            ErrorCode::MalformedFrame,
            ErrorCode::UnsupportedProtocol,
        ]
    );
    assert!(h.closed.is_empty());
    h.send_text(c, r#"{"type":"chat_send","text":"still here"}"#);
    assert_eq!(h.session.message_count(), 1);
}

#[test]
fn frames_before_join_are_refused() {
    let mut h = Harness::new();
    let c = h.open(user(1)).unwrap();
    h.send(c, json!({"type": "chat_send", "text": "sneaky"}));
    assert_eq!(h.errors(c), vec![ErrorCode::NotJoined]);
    h.send(c, json!({"type": "join"}));
    h.send(c, json!({"type": "join"}));
    assert_eq!(h.errors(c).last(), Some(&ErrorCode::AlreadyJoined));
    assert_eq!(h.session.message_count(), 0);
}

#[test]
fn names_are_checked_and_default_to_the_identity() {
    let mut h = Harness::new();
    let c = h.open(user(1)).unwrap();
    h.send(c, json!({"type": "join", "name": "x".repeat(65)}));
    h.send(c, json!({"type": "join", "name": "  "}));
    assert_eq!(
        h.errors(c),
        vec![ErrorCode::InvalidInput, ErrorCode::InvalidInput]
    );
    h.send(c, json!({"type": "join", "name": "  Ada  "}));
    assert_eq!(
        h.session.participant_of(&user(1).user_id).unwrap().name,
        "Ada"
    );
    let d = h.join(user(2));
    assert_eq!(
        h.session.participant_of(&user(2).user_id).unwrap().name,
        "User2"
    );
    let _ = d;
}

#[test]
fn a_tab_opened_before_a_kick_cannot_join_after_it() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let joined = h.join(user(1));
    let waiting = h.open(user(1)).unwrap(); // a second tab, not joined yet
    h.send(
        host_conn,
        json!({"type": "kick", "participant": h.me(joined).0}),
    );
    assert_eq!(h.closed.get(&waiting), Some(&CloseReason::Kicked));
    h.send(waiting, json!({"type": "join"}));
    assert!(h.session.participant_of(&user(1).user_id).is_some());
    let present = h
        .session
        .participants(h.now)
        .into_iter()
        .filter(|p| p.present)
        .count();
    assert_eq!(present, 1, "only the host is a member");
}

#[test]
fn a_rename_on_reconnect_is_told_to_everyone() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let c = h.join(user(1));
    h.disconnect(c);
    h.clear_all();
    let again = h.open(user(1)).unwrap();
    h.send(again, json!({"type": "join", "name": "Ada L."}));
    assert_eq!(h.event_kinds(host_conn), vec!["participant_renamed"]);
    assert_eq!(
        h.session.participant_of(&user(1).user_id).unwrap().name,
        "Ada L."
    );
}

#[test]
fn refusals_read_well() {
    let err = SessionError::Forbidden {
        action: collab_core::Action::UpdateSession,
        role: Role::Editor,
    };
    assert_eq!(err.to_string(), "an editor may not change the session");
}

#[test]
fn joining_again_without_a_name_keeps_the_chosen_one() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let c = h.open(user(1)).unwrap();
    h.send(c, json!({"type": "join", "name": "Ada"}));
    h.disconnect(c);
    h.clear_all();
    let again = h.open(user(1)).unwrap();
    h.send(again, json!({"type": "join"}));
    assert_eq!(
        h.session.participant_of(&user(1).user_id).unwrap().name,
        "Ada"
    );
    assert!(h.event_kinds(host_conn).is_empty());
}

// ---- credentials that expire ---------------------------------------------

#[test]
fn a_connection_closes_when_its_credential_expires() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let expiring = user(1).with_expiry(h.now.plus(Duration::from_secs(60)));
    let conn = h.join(expiring);
    // The session wakes for the expiry, whatever else it waits for.
    let wake = h.session.poll_timeout().expect("a deadline");
    assert!(wake <= h.now.plus(Duration::from_secs(60)));
    h.idle(&[host_conn, conn], Duration::from_secs(59));
    assert!(!h.closed.contains_key(&conn));
    h.idle(&[host_conn, conn], Duration::from_secs(2));
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::TokenExpired));
    assert!(!h.closed.contains_key(&host_conn), "no expiry, no close");
    assert!(h.frames(conn).iter().any(|f| matches!(
        f,
        ServerFrame::Goodbye {
            reason: CloseReason::TokenExpired
        }
    )));
}

#[test]
fn a_refreshed_credential_keeps_the_connection_open() {
    let mut h = Harness::new();
    let at = h.now.plus(Duration::from_secs(60));
    let conn = h.join(user(1).with_expiry(at));
    h.send(
        conn,
        json!({"type": "authenticate", "rid": 7, "token": "fresh"}),
    );
    assert_eq!(h.auth_requests.len(), 1);
    assert_eq!(h.auth_requests[0].2, "fresh");
    // The driver checked it: valid for another hour.
    let later = h.now.plus(Duration::from_secs(3_600));
    h.session
        .handle_authenticated(conn, Some(7), Ok(user(1).with_expiry(later)), h.now);
    h.pump();
    assert!(h
        .frames(conn)
        .iter()
        .any(|f| matches!(f, ServerFrame::Ack { rid: 7, .. })));
    h.idle(&[conn], Duration::from_secs(120));
    assert!(!h.closed.contains_key(&conn), "the new expiry holds");
    h.idle(&[conn], Duration::from_secs(3_500));
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::TokenExpired));
}

#[test]
fn a_refused_or_foreign_credential_changes_nothing() {
    let mut h = Harness::new();
    let at = h.now.plus(Duration::from_secs(60));
    let conn = h.join(user(1).with_expiry(at));
    let later = h.now.plus(Duration::from_secs(3_600));
    h.session
        .handle_authenticated(conn, Some(1), Err(collab_core::AuthError::Expired), h.now);
    h.session
        .handle_authenticated(conn, Some(2), Ok(user(2).with_expiry(later)), h.now);
    h.pump();
    assert_eq!(
        h.errors(conn),
        vec![ErrorCode::Unauthorized, ErrorCode::Forbidden]
    );
    h.idle(&[conn], Duration::from_secs(61));
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::TokenExpired));
}

// ---- joining and reading without a socket ---------------------------------

#[test]
fn a_rest_participant_joins_reads_and_leaves() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let poll = h.open(user(1)).unwrap();
    let joined = h
        .session
        .join_connection(poll, Some("Pat".into()), h.now)
        .unwrap();
    h.pump();
    assert_eq!(joined.participant.name, "Pat");
    assert!(joined.present);
    let (seq, rev) = h.session.position();

    h.send(host_conn, json!({"type": "chat_send", "text": "hello Pat"}));
    h.send(
        host_conn,
        json!({"type": "text_op", "file": "main", "rev": rev, "op": ["x"]}),
    );
    let page = h
        .session
        .read(&user(1).user_id, seq, Some(rev), 100)
        .unwrap();
    let kinds: Vec<_> = page
        .events
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap()["kind"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("message_posted")]);
    assert_eq!(page.ops.len(), 1, "the edit, as a text_op");
    assert_eq!(page.rev, rev + 1);
    assert_eq!(page.last_seq, page.events[0].seq);

    // Nothing new: an empty page at the same position.
    let again = h
        .session
        .read(&user(1).user_id, page.last_seq, Some(page.rev), 100)
        .unwrap();
    assert!(again.events.is_empty() && again.ops.is_empty());

    assert!(matches!(
        h.session.leave_user(&user(1).user_id, "host-user", h.now),
        Err(SessionError::NotYourself)
    ));
    h.session
        .leave_user(
            &user(1).user_id,
            &joined.participant.id.0.to_string(),
            h.now,
        )
        .unwrap();
    h.pump();
    assert_eq!(h.closed.get(&poll), Some(&CloseReason::Left));
    assert!(matches!(
        h.session.read(&user(1).user_id, seq, None, 100),
        Err(SessionError::NotParticipant)
    ));
    assert!(matches!(
        h.session.leave_user(&user(1).user_id, "user-1", h.now),
        Err(SessionError::NotParticipant)
    ));
}

#[test]
fn a_host_removing_someone_over_rest_kicks_them() {
    let mut h = Harness::new();
    let _host = h.join(host());
    let guest = h.join(user(1));
    let other = h.join(user(2));
    assert!(
        matches!(
            h.session.leave_user(&host().user_id, "nobody", h.now),
            Err(SessionError::UnknownParticipant)
        ),
        "an unknown participant"
    );
    assert!(
        matches!(
            h.session.leave_user(&user(2).user_id, "user-1", h.now),
            Err(SessionError::NotYourself)
        ),
        "an editor removes only themselves"
    );
    h.session
        .leave_user(&host().user_id, "user-1", h.now)
        .expect("a host removes others");
    h.pump();
    assert_eq!(h.closed.get(&guest), Some(&CloseReason::Kicked));
    assert_eq!(h.closed.get(&other), None);
    assert!(
        matches!(
            h.session.leave_user(&user(1).user_id, "user-1", h.now),
            Err(SessionError::Banned)
        ),
        "kicked, not left: they cannot come back"
    );
}

#[test]
fn a_reader_paging_by_last_seq_and_rev_misses_nothing() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let poll = h.open(user(1)).unwrap();
    h.session.join_connection(poll, None, h.now).unwrap();
    h.pump();
    let (start_seq, start_rev) = h.session.position();
    for n in 0..7u64 {
        h.send(
            host_conn,
            json!({"type": "chat_send", "text": format!("m{n}")}),
        );
        h.send(
            host_conn,
            json!({"type": "text_op", "file": "main", "rev": start_rev + n, "op": ["x"]}),
        );
    }
    let (mut since, mut rev) = (start_seq, start_rev);
    let (mut texts, mut ops) = (Vec::new(), 0);
    loop {
        let page = h
            .session
            .read(&user(1).user_id, since, Some(rev), 3)
            .unwrap();
        for e in &page.events {
            if let Some(text) = serde_json::to_value(&e.kind).unwrap()["message"]["text"].as_str() {
                texts.push(text.to_owned());
            }
        }
        ops += page.ops.len();
        (since, rev) = (page.last_seq, page.rev);
        if !page.has_more {
            break;
        }
    }
    let sent: Vec<String> = (0..7).map(|n| format!("m{n}")).collect();
    assert_eq!(texts, sent, "every message once, in order");
    assert_eq!(ops, 7, "every change once");
    assert_eq!((since, rev), h.session.position());
}

#[test]
fn strangers_and_kicked_users_cannot_read() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    let guest = h.join(user(1));
    let me = h.me(guest);
    assert!(matches!(
        h.session
            .read(&user(9).user_id, collab_core::Seq(0), None, 10),
        Err(SessionError::NotParticipant)
    ));
    h.send(host_conn, json!({"type": "kick", "participant": me}));
    assert!(matches!(
        h.session
            .read(&user(1).user_id, collab_core::Seq(0), None, 10),
        Err(SessionError::Banned)
    ));
    assert!(matches!(
        h.session
            .read(&host().user_id, collab_core::Seq(0), Some(99), 10),
        Err(SessionError::Document(_))
    ));
}

#[test]
fn a_rest_join_counts_against_capacity() {
    let mut h = Harness::with(
        {
            let mut c = SessionConfig::default();
            c.capacity = 1;
            c
        },
        NewSession::default(),
    );
    h.join(host());
    let poll = h.open(user(1)).unwrap();
    assert!(matches!(
        h.session.join_connection(poll, None, h.now),
        Err(SessionError::SessionFull { capacity: 1 })
    ));
}

#[test]
fn a_frame_refused_by_the_rate_limit_is_named_by_its_rid() {
    let mut h = Harness::with(
        {
            let mut c = SessionConfig::default();
            c.frames_per_second = 1;
            c.frame_burst = 2;
            c
        },
        NewSession::default(),
    );
    let conn = h.open(host()).unwrap();
    h.send(conn, json!({"type": "join"}));
    h.send(conn, json!({"type": "heartbeat", "rid": 1}));
    h.send(
        conn,
        json!({"type": "text_op", "rid": 41, "file": "main", "rev": 0, "op": ["x"]}),
    );
    h.send_text(conn, "not json at all");
    let refusals: Vec<_> = h
        .frames(conn)
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Error { rid, code, .. } if *code == ErrorCode::RateLimited => Some(*rid),
            _ => None,
        })
        .collect();
    assert_eq!(refusals, vec![Some(41), None]);
    assert_eq!(h.session.code(), "", "the refused edit had no effect");
}

#[test]
fn a_second_person_starts_the_session_and_pausing_stops_edits_but_the_hosts() {
    let mut h = Harness::new();
    let host_conn = h.join(host());
    assert_eq!(
        h.session.info().status,
        SessionStatus::Waiting,
        "alone: waiting"
    );
    let guest = h.join(user(1));
    assert_eq!(
        h.session.info().status,
        SessionStatus::Active,
        "two people in: under way"
    );
    h.send(
        host_conn,
        json!({"type": "update_session", "status": "paused", "rid": 1}),
    );
    h.pump();
    let rev = h.session.position().1;
    h.send(
        guest,
        json!({"type": "text_op", "file": "main", "rev": rev, "op": ["x"], "rid": 2}),
    );
    let refused = h
        .json(guest)
        .into_iter()
        .find(|f| f["rid"] == 2)
        .expect("an answer");
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("paused"),
        "{refused}"
    );
    assert_eq!(h.session.position().1, rev, "nothing applied");
    assert!(matches!(
        h.session
            .replace_code(&user(1).user_id, None, "mine", h.now),
        Err(SessionError::Paused)
    ));
    h.send(
        host_conn,
        json!({"type": "text_op", "file": "main", "rev": rev, "op": ["h"], "rid": 3}),
    );
    assert_eq!(h.session.position().1, rev + 1, "a host still edits");
    h.send(
        host_conn,
        json!({"type": "update_session", "status": "active", "rid": 4}),
    );
    h.send(
        guest,
        json!({"type": "text_op", "file": "main", "rev": rev + 1, "op": [1, "x"], "rid": 5}),
    );
    assert_eq!(h.session.position().1, rev + 2, "going on again");
}

// ---- scheduled sessions ----------------------------------------------------

/// A session scheduled for later is kept open however idle, warns everyone
/// before it closes, and closes at its time with the reason `closed`.
#[test]
fn a_scheduled_session_stays_open_until_it_closes_and_warns_first() {
    let starts_at = common::T0.plus(Duration::from_secs(2 * 3600));
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            starts_at: Some(starts_at),
            open_for_secs: Some(3600),
            ..Default::default()
        },
    );
    let closes_at = starts_at.plus(Duration::from_secs(3600));
    let info = h.session.info();
    assert_eq!(
        (info.starts_at, info.closes_at),
        (Some(starts_at), Some(closes_at))
    );
    // Created before lunch, nobody there for hours: still open.
    h.advance(Duration::from_secs(2 * 3600 + 30 * 60));
    assert!(!h.session.is_ended(), "not expired while scheduled");
    let c = h.join(host());
    let g = h.join(user(1));
    h.idle(&[c, g], Duration::from_secs(24 * 60));
    assert!(!h.session.is_ended());
    assert!(!h.event_kinds(g).contains(&"session_closing".to_owned()));
    // Five minutes before: everyone is warned, once.
    h.idle(&[c, g], Duration::from_secs(60));
    let warned: Vec<_> = h
        .events(g)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::SessionClosing { .. }))
        .collect();
    assert_eq!(warned.len(), 1);
    assert!(
        matches!(warned[0].kind, EventKind::SessionClosing { closes_at: at } if at == closes_at)
    );
    assert!(h.event_kinds(c).contains(&"session_closing".to_owned()));
    h.idle(&[c, g], Duration::from_secs(4 * 60 + 59));
    assert!(!h.session.is_ended());
    h.idle(&[c, g], Duration::from_secs(1));
    assert!(
        h.session.is_ended(),
        "closed at its time, people there or not"
    );
    assert_eq!(h.closed.get(&g), Some(&CloseReason::SessionEnded));
    assert_eq!(
        h.session.info().end_reason,
        Some(collab_core::EndReason::Closed)
    );
    let kinds = h.event_kinds(g);
    assert_eq!(kinds.iter().filter(|k| *k == "session_closing").count(), 1);
}

/// A host extends a scheduled session: it closes later, and everyone is
/// warned again before the new time; others may not, and times out of
/// range are refused.
#[test]
fn a_host_extends_a_scheduled_session() {
    let mut h = Harness::with(
        SessionConfig::default(),
        NewSession {
            open_for_secs: Some(600),
            ..Default::default()
        },
    );
    let c = h.join(host());
    let g = h.join(user(1));
    h.idle(&[c, g], Duration::from_secs(5 * 60));
    assert!(h.event_kinds(g).contains(&"session_closing".to_owned()));
    let later = common::T0.plus(Duration::from_secs(40 * 60));
    h.send(
        g,
        json!({"type": "update_session", "rid": 1, "closes_at": later.0}),
    );
    assert_eq!(h.errors(g), vec![ErrorCode::Forbidden]);
    for bad in [
        common::T0.0,
        common::T0.plus(Duration::from_secs(25 * 3600)).0,
    ] {
        h.send(
            c,
            json!({"type": "update_session", "rid": 2, "closes_at": bad}),
        );
    }
    assert_eq!(
        h.errors(c),
        vec![ErrorCode::InvalidInput, ErrorCode::InvalidInput]
    );
    h.send(
        c,
        json!({"type": "update_session", "rid": 3, "closes_at": later.0}),
    );
    assert_eq!(h.session.info().closes_at, Some(later));
    assert!(h.events(g).iter().any(|e| matches!(
        e.kind,
        EventKind::SessionUpdated { closes_at: Some(at), .. } if at == later
    )));
    h.idle(&[c, g], Duration::from_secs(10 * 60));
    assert!(!h.session.is_ended(), "extended past its first time");
    h.idle(&[c, g], Duration::from_secs(20 * 60));
    let warnings = h
        .event_kinds(g)
        .iter()
        .filter(|k| *k == "session_closing")
        .count();
    assert_eq!(warnings, 2, "warned again for the new time");
    h.idle(&[c, g], Duration::from_secs(5 * 60));
    assert!(h.session.is_ended());
}

/// Schedules out of range are refused when the session is made; a
/// session without one has no time it closes to move.
#[test]
fn schedules_are_checked() {
    let config = SessionConfig::default();
    let make = |new: NewSession| {
        collab_core::Session::new(
            collab_core::SessionId::from_bytes([3; 16]),
            new,
            &host(),
            SessionConfig::default(),
            common::T0,
        )
    };
    for new in [
        NewSession {
            open_for_secs: Some(10),
            ..Default::default()
        },
        NewSession {
            open_for_secs: Some(config.max_open_for.as_secs() + 1),
            ..Default::default()
        },
        NewSession {
            starts_at: Some(
                common::T0
                    .plus(config.max_expires_after)
                    .plus(Duration::from_secs(1)),
            ),
            ..Default::default()
        },
        // Started 59 minutes ago for an hour: closed within the minute.
        NewSession {
            starts_at: Some(collab_core::Timestamp(common::T0.0 - 59 * 60 * 1000)),
            open_for_secs: Some(3600),
            ..Default::default()
        },
    ] {
        assert!(matches!(make(new), Err(SessionError::InvalidInput(_))));
    }
    // Started 50 minutes ago for an hour: open for ten more.
    let late = NewSession {
        starts_at: Some(collab_core::Timestamp(common::T0.0 - 50 * 60 * 1000)),
        open_for_secs: Some(3600),
        ..Default::default()
    };
    assert!(make(late).is_ok());
    let mut h = Harness::new();
    let c = h.join(host());
    let later = common::T0.plus(Duration::from_secs(3600));
    h.send(
        c,
        json!({"type": "update_session", "rid": 1, "closes_at": later.0}),
    );
    assert_eq!(h.errors(c), vec![ErrorCode::InvalidInput]);
}
