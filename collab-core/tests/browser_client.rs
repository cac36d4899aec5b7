//! The browser client library (`collab-wire/js/collab-client.mjs` and its
//! `collab-connection.mjs`) restates a few facts of the session: the frame
//! rate it keeps under and the close codes after which it stops for good. Checked here against the session's
//! defaults and the wire's codes, so the two cannot drift apart silently.

use collab_core::protocol::CloseReason;
use collab_core::{SessionConfig, BROWSER_CLIENT_MODULE, BROWSER_CONNECTION_MODULE};

/// The value of `const NAME = value;` in `module`.
fn js_const(module: &str, name: &str) -> String {
    let start = format!("const {name} = ");
    let line = module
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("the module has no const {name}"));
    line[start.len()..].trim_end_matches(';').trim().to_owned()
}

#[test]
fn the_client_stays_under_the_session_rate_limit() {
    let config = SessionConfig::default();
    let rate: u32 = js_const(BROWSER_CONNECTION_MODULE, "RATE")
        .parse()
        .expect("a number");
    let burst: u32 = js_const(BROWSER_CONNECTION_MODULE, "BURST")
        .parse()
        .expect("a number");
    assert!(
        rate < config.frames_per_second,
        "the client sends {rate}/s, the session allows {}",
        config.frames_per_second
    );
    assert!(
        burst < config.frame_burst,
        "the client bursts {burst}, the session allows {}",
        config.frame_burst
    );
}

#[test]
fn the_client_stops_on_the_final_close_codes() {
    let table = js_const(BROWSER_CLIENT_MODULE, "FINAL_CLOSE");
    for reason in [
        CloseReason::Left,
        CloseReason::Kicked,
        CloseReason::SessionEnded,
    ] {
        let entry = format!("{}: \"{}\"", reason.close_code(), reason.as_str());
        assert!(
            table.contains(&entry),
            "FINAL_CLOSE ({table}) lacks {entry}"
        );
    }
}
