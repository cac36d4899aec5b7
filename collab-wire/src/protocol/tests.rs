use super::*;
use crate::presence::FileSelection;

fn samples() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Join {
            name: Some("Ann".into()),
            since: Some(Seq(3)),
            protocol: Some(1),
            mode: Some(ClientMode::Thin),
            rev: Some(4),
        },
        ClientFrame::Leave,
        ClientFrame::Heartbeat,
        ClientFrame::Presence(PresenceUpdate {
            cursor: Some(FileSelection {
                file: "main".into(),
                anchor: 1,
                head: 4,
            }),
            typing: Some(true),
            ..Default::default()
        }),
        ClientFrame::UpdateSession {
            title: Some("t".into()),
            language: None,
            status: None,
            closes_at: Some(Timestamp(1_700_000_000_000)),
        },
        ClientFrame::EndSession,
        ClientFrame::SetRole {
            participant: ParticipantId(2),
            role: Role::Viewer,
        },
        ClientFrame::Kick {
            participant: ParticipantId(2),
            ban_address: true,
        },
        ClientFrame::ChatSend {
            text: "hi".into(),
            anchor: Some(CodeAnchor {
                file: "main".into(),
                line: 3,
                offset: None,
            }),
            reply_to: None,
            cid: Some("c1".into()),
        },
        ClientFrame::ChatEdit {
            message: Seq(4),
            text: "x".into(),
        },
        ClientFrame::ChatDelete { message: Seq(4) },
        ClientFrame::React {
            message: Seq(4),
            emoji: "🎉".into(),
        },
        ClientFrame::ChatHistory {
            before: None,
            limit: Some(50),
        },
        ClientFrame::EventsSince {
            since: Seq(0),
            limit: None,
        },
        ClientFrame::WhoIsViewing {
            file: "main".into(),
        },
        ClientFrame::TextOp {
            ties: Ties::Author,
            rev: 3,
            file: "main".into(),
            op: serde_json::from_str(r#"[2, "é😀", -1]"#).unwrap(),
            oid: Some("a1".into()),
        },
        ClientFrame::FileCreate {
            file: "b.py".into(),
            text: "x".into(),
        },
        ClientFrame::FileRemove {
            file: "b.py".into(),
        },
        ClientFrame::RunOutput {
            stdout: "1\n".into(),
            stderr: String::new(),
            exit_code: Some(0),
        },
        ClientFrame::History {
            after: 0,
            limit: Some(10),
        },
        ClientFrame::TextAt {
            file: "main".into(),
            rev: 2,
        },
        ClientFrame::Authenticate {
            token: "eyJ...".into(),
        },
    ]
}

#[test]
fn every_client_frame_round_trips_and_its_type_is_known() {
    let samples = samples();
    assert_eq!(
        samples.len(),
        CLIENT_FRAME_TYPES.len(),
        "a sample for every type"
    );
    for (i, frame) in samples.into_iter().enumerate() {
        let msg = ClientMessage {
            rid: Some(i as u64),
            frame,
        };
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(decode_client_frame(&text, 4096), Ok(msg), "{text}");
    }
}

#[test]
fn type_names_are_the_wire_tags() {
    for frame in samples() {
        let json = serde_json::to_value(ClientMessage::from(frame.clone())).unwrap();
        assert_eq!(json["type"], frame.type_name(), "{frame:?}");
        assert!(CLIENT_FRAME_TYPES.contains(&frame.type_name()));
    }
}

#[test]
fn bad_frames_get_typed_errors() {
    let err = |t: &str| decode_client_frame(t, 64).unwrap_err();
    assert!(matches!(
        err(&"x".repeat(65)),
        (None, ProtocolError::TooLarge { len: 65, max: 64 })
    ));
    assert!(matches!(
        err("not json"),
        (None, ProtocolError::Malformed(_))
    ));
    assert!(matches!(err("[1,2]"), (None, ProtocolError::Malformed(_))));
    assert!(matches!(
        err(r#"{"rid":1}"#),
        (Some(1), ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        err(r#"{"type":5}"#),
        (None, ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        err(r#"{"type":"nope"}"#),
        (None, ProtocolError::UnknownType(_))
    ));
    assert!(matches!(
        err(r#"{"type":"kick","rid":2}"#),
        (Some(2), ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        err(r#"{"type":"kick","participant":-1}"#),
        (None, ProtocolError::Malformed(_))
    ));
}

#[test]
fn close_codes_are_distinct() {
    use std::collections::HashSet;
    let reasons = [
        CloseReason::Left,
        CloseReason::Kicked,
        CloseReason::SessionEnded,
        CloseReason::Stale,
        CloseReason::SlowConsumer,
        CloseReason::ServerShutdown,
        CloseReason::RateLimited,
        CloseReason::TokenExpired,
        CloseReason::MessageTooBig,
    ];
    let codes: HashSet<_> = reasons.iter().map(|r| r.close_code()).collect();
    assert_eq!(codes.len(), reasons.len());
}

proptest::proptest! {
    #[test]
    fn decoding_never_panics(text in ".{0,300}") {
        let _ = decode_client_frame(&text, 256);
    }

    #[test]
    fn decoding_json_shaped_noise_never_panics(
        kind in proptest::sample::select(CLIENT_FRAME_TYPES.to_vec()),
        field in "[a-z_]{1,12}",
        value in proptest::prop_oneof![
            proptest::strategy::Just("null".to_string()),
            "-?[0-9]{1,25}",
            "\"[^\"\\\\]{0,20}\"",
            proptest::strategy::Just("{}".to_string()),
            proptest::strategy::Just("[1,\"a\"]".to_string()),
        ],
    ) {
        let text = format!(r#"{{"type":"{kind}","{field}":{value}}}"#);
        let _ = decode_client_frame(&text, 4096);
    }
}
