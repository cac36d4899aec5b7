//! Keeps PROTOCOL.md honest.
//!
//! Every JSON example in the document sits in a fenced block whose info string
//! says what it is: ```` ```json client ```` (a client message), ```` ```json server ````
//! (a server frame) or ```` ```json event ```` (an event). This test extracts them
//! all and checks them against the library's own types, then checks that every
//! client frame type, server frame type, event kind and error code has an
//! example, and that the close-code, HTTP-status and limits tables match the
//! code.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use collab_core::document::{MAX_FILES, MAX_RUNS, MAX_RUN_OUTPUT_BYTES};
use collab_core::ot::MAX_WIRE_COMPONENTS;
use collab_core::presence::{MAX_CURSOR_FILES, MAX_FILE_PATH_BYTES};
use collab_core::protocol::{decode_client_frame, ProtocolError, PROTOCOL_VERSION};
use collab_core::{
    CloseReason, Document, DocumentError, ErrorCode, Event, ParticipantId, ServerFrame,
    SessionConfig, TextOperation, Timestamp,
};
use collab_server::HubConfig;
use serde_json::Value;

/// The frame limit client examples are decoded with (the default).
const MAX_FRAME_BYTES: usize = 65536;

/// Every `type` of a client frame.
const CLIENT_TYPES: [&str; 22] = [
    "join",
    "leave",
    "heartbeat",
    "presence",
    "update_session",
    "end_session",
    "set_role",
    "kick",
    "chat_send",
    "chat_edit",
    "chat_delete",
    "react",
    "chat_history",
    "events_since",
    "who_is_viewing",
    "text_op",
    "file_create",
    "file_remove",
    "run_output",
    "history",
    "text_at",
    "authenticate",
];

/// Every `type` of a server frame.
const SERVER_TYPES: [&str; 16] = [
    "welcome",
    "event",
    "presence",
    "ack",
    "error",
    "chat_history",
    "events",
    "viewers",
    "heartbeat_ack",
    "goodbye",
    "text_ack",
    "text_op",
    "file_op",
    "text_catchup",
    "versions",
    "text_at",
];

/// Every `kind` of an event.
const EVENT_KINDS: [&str; 14] = [
    "participant_joined",
    "participant_renamed",
    "participant_left",
    "participant_kicked",
    "role_changed",
    "session_updated",
    "message_posted",
    "comment_posted",
    "message_edited",
    "message_deleted",
    "reaction_toggled",
    "run_finished",
    "session_closing",
    "session_ended",
];

/// Every error code, as the type spells them (so a rename fails to compile).
const ERROR_CODES: [ErrorCode; 31] = [
    ErrorCode::MalformedFrame,
    ErrorCode::UnknownFrameType,
    ErrorCode::FrameTooLarge,
    ErrorCode::UnsupportedProtocol,
    ErrorCode::Unauthorized,
    ErrorCode::SessionNotFound,
    ErrorCode::NotJoined,
    ErrorCode::AlreadyJoined,
    ErrorCode::SessionFull,
    ErrorCode::SessionEnded,
    ErrorCode::Forbidden,
    ErrorCode::Banned,
    ErrorCode::UnknownParticipant,
    ErrorCode::UnknownMessage,
    ErrorCode::NotAuthor,
    ErrorCode::MessageDeleted,
    ErrorCode::LastHost,
    ErrorCode::InvalidInput,
    ErrorCode::MessageTooLong,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::TooManyConnections,
    ErrorCode::OriginNotAllowed,
    ErrorCode::UnknownRevision,
    ErrorCode::UnknownFile,
    ErrorCode::FileExists,
    ErrorCode::InvalidOperation,
    ErrorCode::DocumentTooLarge,
    ErrorCode::StorageFailed,
    ErrorCode::RequestTimeout,
    ErrorCode::ServerBusy,
];

/// Every reason a server closes a connection.
const CLOSE_REASONS: [CloseReason; 9] = [
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Client,
    Server,
    Event,
    /// A whole session's export (`GET /api/v1/sessions/{id}/export`).
    Export,
}

/// One tagged JSON block of the document.
#[derive(Debug)]
struct Example {
    tag: Tag,
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The tagged JSON blocks of `doc`, in order. Panics on a `json` block without
/// a known tag, so that no example escapes checking, and on an unclosed fence.
fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    // The block being read: its tag (None for a block of another language),
    // its opening line and its text.
    let mut open: Option<(Option<Tag>, usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        let trimmed = line.trim();
        let is_fence = trimmed.starts_with("```");
        if let Some((tag, start, text)) = &mut open {
            if is_fence && trimmed.chars().all(|c| c == '`') {
                if let Some(tag) = *tag {
                    out.push(Example {
                        tag,
                        line: *start,
                        text: std::mem::take(text),
                    });
                }
                open = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if is_fence {
            let info = trimmed.trim_start_matches('`');
            let mut words = info.split_whitespace();
            let tag = match words.next() {
                Some("json") => Some(match words.next() {
                    Some("client") => Tag::Client,
                    Some("server") => Tag::Server,
                    Some("event") => Tag::Event,
                    Some("export") => Tag::Export,
                    other => panic!(
                        "PROTOCOL.md:{}: a json block must say `client`, `server`, `event` or `export`, not {other:?}",
                        i + 1
                    ),
                }),
                _ => None,
            };
            open = Some((tag, i + 1, String::new()));
        }
    }
    if let Some((_, start, _)) = open {
        panic!("PROTOCOL.md:{start}: code block is never closed");
    }
    out
}

fn tagged(tag: Tag) -> Vec<Example> {
    let all = examples(&doc());
    let some: Vec<Example> = all.into_iter().filter(|e| e.tag == tag).collect();
    assert!(!some.is_empty(), "no {tag:?} examples found in PROTOCOL.md");
    some
}

/// The example as a JSON value, or a description of why it is not one.
fn parse(example: &Example) -> Result<Value, String> {
    serde_json::from_str(&example.text)
        .map_err(|e| format!("PROTOCOL.md:{}: not JSON: {e}", example.line))
}

fn str_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The name a unit enum value travels as.
fn name_of(value: serde_json::Result<Value>) -> String {
    match value {
        Ok(Value::String(s)) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

#[test]
fn client_examples_decode() {
    let mut problems = Vec::new();
    for ex in tagged(Tag::Client) {
        let value = match parse(&ex) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match decode_client_frame(&ex.text, MAX_FRAME_BYTES) {
            Ok(msg) => {
                // Unknown fields are ignored on decode, so a misspelt optional
                // field would go unnoticed; a round trip notices it.
                let again = serde_json::to_value(&msg).expect("client messages serialise");
                if again != value {
                    problems.push(format!(
                        "PROTOCOL.md:{}: decodes, but fields are lost or changed: {again}",
                        ex.line
                    ));
                }
            }
            Err((_, e)) => problems.push(format!("PROTOCOL.md:{}: {e}", ex.line)),
        }
        if str_field(&value, "type") == Some("join") {
            if let Some(v) = value.get("protocol") {
                if v.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
                    problems.push(format!(
                        "PROTOCOL.md:{}: join states protocol {v}, the library speaks {PROTOCOL_VERSION}",
                        ex.line
                    ));
                }
            }
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn server_examples_round_trip() {
    let mut problems = Vec::new();
    for ex in tagged(Tag::Server) {
        let value = match parse(&ex) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match serde_json::from_str::<ServerFrame>(&ex.text) {
            Ok(frame) => {
                let again = serde_json::to_value(&frame).expect("server frames serialise");
                if again != value {
                    problems.push(format!(
                        "PROTOCOL.md:{}: does not round-trip; the library writes {again}",
                        ex.line
                    ));
                }
            }
            Err(e) => problems.push(format!("PROTOCOL.md:{}: not a ServerFrame: {e}", ex.line)),
        }
        if str_field(&value, "type") == Some("welcome")
            && value["protocol"].as_u64() != Some(u64::from(PROTOCOL_VERSION))
        {
            problems.push(format!(
                "PROTOCOL.md:{}: welcome states protocol {}, the library speaks {PROTOCOL_VERSION}",
                ex.line, value["protocol"]
            ));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn event_examples_round_trip() {
    let mut problems = Vec::new();
    for ex in tagged(Tag::Event) {
        let value = match parse(&ex) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match serde_json::from_str::<Event>(&ex.text) {
            Ok(event) => {
                let again = serde_json::to_value(&event).expect("events serialise");
                if again != value {
                    problems.push(format!(
                        "PROTOCOL.md:{}: does not round-trip; the library writes {again}",
                        ex.line
                    ));
                }
            }
            Err(e) => problems.push(format!("PROTOCOL.md:{}: not an Event: {e}", ex.line)),
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn the_client_type_list_is_the_librarys() {
    for t in CLIENT_TYPES {
        let text = format!(r#"{{"type":"{t}"}}"#);
        let result = decode_client_frame(&text, MAX_FRAME_BYTES);
        assert!(
            !matches!(result, Err((_, ProtocolError::UnknownType(_)))),
            "{t} is not a client frame type"
        );
    }
    let result = decode_client_frame(r#"{"type":"teleport"}"#, MAX_FRAME_BYTES);
    assert!(matches!(result, Err((_, ProtocolError::UnknownType(_)))));
}

/// The variant names serde lists when it meets an unknown one: every name the
/// library's type has, in declaration order.
fn names_in_unknown_variant_error(err: &serde_json::Error) -> Vec<String> {
    let text = err.to_string();
    let list = text
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("not an unknown-variant error: {text}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_lists_are_the_librarys() {
    // A name added to the library but not to these lists (and so not to
    // PROTOCOL.md) fails here.
    let unknown = serde_json::from_str::<collab_core::ClientFrame>(r#"{"type":"__unknown__"}"#)
        .expect_err("no such client frame");
    assert_eq!(
        names_in_unknown_variant_error(&unknown),
        CLIENT_TYPES,
        "client frame types"
    );
    let unknown = serde_json::from_str::<ServerFrame>(r#"{"type":"__unknown__"}"#)
        .expect_err("no such server frame");
    assert_eq!(
        names_in_unknown_variant_error(&unknown),
        SERVER_TYPES,
        "server frame types"
    );
    let unknown = serde_json::from_str::<Event>(r#"{"seq":1,"at":1,"kind":"__unknown__"}"#)
        .expect_err("no such event kind");
    assert_eq!(
        names_in_unknown_variant_error(&unknown),
        EVENT_KINDS,
        "event kinds"
    );
    let unknown =
        serde_json::from_str::<ErrorCode>(r#""__unknown__""#).expect_err("no such error code");
    let codes: Vec<String> = ERROR_CODES
        .iter()
        .map(|c| name_of(serde_json::to_value(c)))
        .collect();
    assert_eq!(
        names_in_unknown_variant_error(&unknown),
        codes,
        "error codes"
    );
    let unknown =
        serde_json::from_str::<CloseReason>(r#""__unknown__""#).expect_err("no such close reason");
    let reasons: Vec<String> = CLOSE_REASONS
        .iter()
        .map(|r| name_of(serde_json::to_value(r)))
        .collect();
    assert_eq!(
        names_in_unknown_variant_error(&unknown),
        reasons,
        "close reasons"
    );
}

#[test]
fn every_client_frame_type_has_an_example() {
    let found: BTreeSet<String> = tagged(Tag::Client)
        .iter()
        .filter_map(|ex| parse(ex).ok())
        .filter_map(|v| str_field(&v, "type").map(str::to_owned))
        .collect();
    assert_eq!(
        found,
        set(&CLIENT_TYPES),
        "the client frame types with an example in PROTOCOL.md (left) must be all of them (right)"
    );
}

#[test]
fn every_server_frame_type_has_an_example() {
    let found: BTreeSet<String> = tagged(Tag::Server)
        .iter()
        .filter_map(|ex| parse(ex).ok())
        .filter_map(|v| str_field(&v, "type").map(str::to_owned))
        .collect();
    assert_eq!(
        found,
        set(&SERVER_TYPES),
        "the server frame types with an example in PROTOCOL.md (left) must be all of them (right)"
    );
}

#[test]
fn every_event_kind_has_an_example() {
    let mut found = BTreeSet::new();
    for ex in tagged(Tag::Event) {
        if let Some(kind) = parse(&ex).ok().as_ref().and_then(|v| str_field(v, "kind")) {
            found.insert(kind.to_owned());
        }
    }
    for ex in tagged(Tag::Server) {
        let Ok(v) = parse(&ex) else { continue };
        if str_field(&v, "type") == Some("event") {
            if let Some(kind) = str_field(&v["event"], "kind") {
                found.insert(kind.to_owned());
            }
        }
    }
    assert_eq!(
        found,
        set(&EVENT_KINDS),
        "the event kinds with an example in PROTOCOL.md (left) must be all of them (right)"
    );
}

#[test]
fn every_error_code_is_documented_with_an_example() {
    let doc = doc();
    let in_examples: BTreeSet<String> = tagged(Tag::Server)
        .iter()
        .filter_map(|ex| parse(ex).ok())
        .filter(|v| str_field(v, "type") == Some("error"))
        .filter_map(|v| str_field(&v, "code").map(str::to_owned))
        .collect();
    let mut problems = Vec::new();
    for code in ERROR_CODES {
        let name = name_of(serde_json::to_value(code));
        if !doc.contains(&name) {
            problems.push(format!("error code {name} is not in PROTOCOL.md"));
        }
        if !doc.contains(&format!("### `{name}`")) {
            problems.push(format!("error code {name} has no section"));
        }
        if !in_examples.contains(&name) {
            problems.push(format!("error code {name} has no `error` frame example"));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn the_http_status_table_matches_the_library() {
    let doc = doc();
    let mut problems = Vec::new();
    for code in ERROR_CODES {
        let row = format!(
            "| `{}` | {} |",
            name_of(serde_json::to_value(code)),
            code.http_status()
        );
        if !doc.contains(&row) {
            problems.push(format!("the HTTP status table has no row {row}"));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn the_close_code_table_matches_the_library() {
    let doc = doc();
    let mut problems = Vec::new();
    for reason in CLOSE_REASONS {
        let row = format!(
            "| `{}` | {} | {} |",
            name_of(serde_json::to_value(reason)),
            reason.close_code(),
            if reason.may_reconnect() { "yes" } else { "no" }
        );
        if !doc.contains(&row) {
            problems.push(format!("the close code table has no row {row}"));
        }
    }
    assert_no_problems(&problems);
}

/// A duration as the limits table writes it: `50 ms`, `1.5 s`, `45 s`, `5 min`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 120_000 && ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else if ms > 1_000 {
        format!("{} s", d.as_secs_f64())
    } else {
        format!("{ms} ms")
    }
}

/// The document's default size limit, in UTF-16 units, as `documented`:
/// found by growing a document to one unit past it, which must be refused
/// with that limit. (The limit has no public constant.)
fn document_size_limit(documented: u32) -> u64 {
    let mut doc = Document::new("", [("main", "")]).expect("a document");
    let mut op = TextOperation::new();
    op.insert(&"a".repeat(documented as usize + 1));
    match doc.apply_operation(
        ParticipantId(1),
        0,
        "main",
        op,
        None,
        Timestamp::from_millis(0),
    ) {
        Err(DocumentError::TooLarge { max, .. }) => max,
        other => panic!(
            "{} units past the documented limit: {other:?}",
            documented + 1
        ),
    }
}

#[test]
fn the_limits_table_matches_the_defaults() {
    let cfg = SessionConfig::default();
    let hub = HubConfig::default();
    let http = collab_server::HttpConfig::default();
    let p = &cfg.presence;
    let rows = [
        ("Text frame size", format!("{} bytes", cfg.max_frame_bytes)),
        (
            "WebSocket message",
            format!("{} bytes", cfg.max_frame_bytes * 2),
        ),
        ("Sync message size", format!("{} bytes", cfg.max_sync_bytes)),
        (
            "Bytes in flight",
            format!("{} bytes", hub.max_bytes_in_flight),
        ),
        (
            "Chat message or comment",
            format!("{} characters", cfg.chat.max_message_chars),
        ),
        (
            "Reaction",
            format!("{} characters", cfg.chat.max_reaction_chars),
        ),
        ("Display name", format!("{} characters", cfg.max_name_chars)),
        (
            "Session title",
            format!("{} characters", cfg.max_title_chars),
        ),
        (
            "File path (document, cursor, viewport, anchor)",
            format!("{MAX_FILE_PATH_BYTES} bytes"),
        ),
        ("Files in the document", format!("{MAX_FILES} files")),
        (
            "Document size",
            format!("{} UTF-16 units", document_size_limit(4_194_304)),
        ),
        (
            "Text operation",
            format!("{MAX_WIRE_COMPONENTS} components"),
        ),
        ("Run output", format!("{MAX_RUN_OUTPUT_BYTES} bytes")),
        ("Run outputs kept", format!("{MAX_RUNS} runs")),
        (
            // `history` is capped at 20 events pages (session.rs, `dispatch`).
            "History page",
            format!("{} versions", cfg.max_events_page * 20),
        ),
        (
            "Files with a remembered cursor",
            format!("{MAX_CURSOR_FILES} files"),
        ),
        (
            "Chat history page",
            format!("{} messages", cfg.chat.max_page),
        ),
        ("Events page", format!("{} events", cfg.max_events_page)),
        (
            "Participants online",
            format!("{} participants", cfg.capacity),
        ),
        ("Presence broadcasts", human(p.min_broadcast_interval)),
        ("Typing flag", human(p.typing_timeout)),
        ("Idle after", human(p.idle_after)),
        ("Away after", human(p.away_after)),
        ("Stale connection", human(p.stale_after)),
        ("Keepalive ping", human(http.keepalive)),
        (
            "Frame rate",
            format!("{} frames a second", cfg.frames_per_second),
        ),
        ("Frame burst", format!("{} frames", cfg.frame_burst)),
        (
            "Connections to a session",
            format!("{} connections", cfg.max_connections),
        ),
        (
            "Connections from an address",
            format!("{} connections", hub.max_connections_per_address),
        ),
        ("Session expiry", human(cfg.expires_after)),
        ("Outbound queue", format!("{} frames", hub.outbound_queue)),
        (
            "Client id (`oid`, `cid`)",
            format!("{} bytes", collab_core::session::MAX_CLIENT_ID_BYTES),
        ),
        (
            "Longest expiry",
            format!("{} s", cfg.max_expires_after.as_secs()),
        ),
        (
            "Sessions created",
            format!("{} sessions", hub.session_creation.burst),
        ),
        (
            "Guest credentials issued",
            format!("{} credentials", hub.guest_issue.burst),
        ),
        ("Request body", human(http.body_timeout)),
    ];
    let doc = doc();
    let mut problems = Vec::new();
    for (label, value) in rows {
        let row = format!("| {label} | {value} |");
        if !doc.contains(&row) {
            problems.push(format!("the limits table has no row starting {row}"));
        }
    }
    let per_second = 1_000 / p.min_broadcast_interval.as_millis();
    if !doc.contains(&format!("{per_second} a second")) {
        problems.push(format!("presence rate should read {per_second} a second"));
    }
    assert_no_problems(&problems);
}

/// The export's example reads as the library's type, and its versions,
/// applied to its start, give its end, as the text says.
#[test]
fn the_export_example_decodes_and_replays() {
    use collab_core::session::SessionExport;
    for ex in tagged(Tag::Export) {
        let export: SessionExport = serde_json::from_str(&ex.text)
            .unwrap_or_else(|e| panic!("PROTOCOL.md:{}: not an export: {e}", ex.line));
        assert_eq!(export.format, collab_core::session::EXPORT_FORMAT);
        let replayed = collab_core::document::replay(&export.start.files, &export.versions)
            .unwrap_or_else(|e| panic!("PROTOCOL.md:{}: does not replay: {e}", ex.line));
        assert_eq!(replayed, export.end.files, "PROTOCOL.md:{}", ex.line);
    }
}

/// The export's JSON schema names every event kind there is.
#[test]
fn the_export_schema_knows_every_event_kind() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collab-wire/export.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let kinds: BTreeSet<String> = schema["$defs"]["event"]["properties"]["kind"]["enum"]
        .as_array()
        .expect("the event kinds")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, set(&EVENT_KINDS));
}
