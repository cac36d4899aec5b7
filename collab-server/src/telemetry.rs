//! What the server reports through the `metrics` facade. The library only
//! records; the host installs an exporter (the example serves Prometheus
//! text at `/metrics`). With no exporter installed, recording costs a
//! branch.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `collab_connections` | gauge | | open WebSocket and REST-join connections |
//! | `collab_sessions_loaded` | gauge | | sessions in memory |
//! | `collab_frames_in_total` | counter | `type` | client frames read (`sync` for a replica's binary frame) |
//! | `collab_frames_out_total` | counter | `type` | frames queued to clients, one per recipient |
//! | `collab_errors_total` | counter | `code` | error frames sent and failed HTTP requests |
//! | `collab_slow_consumer_drops_total` | counter | | connections dropped because their queue was full |
//! | `collab_store_save_seconds` | histogram | | one session's store write, retries included |
//! | `collab_session_step_seconds` | histogram | | one session step: commands applied, stored, delivered |
//! | `collab_session_load_seconds` | histogram | | loading and restoring a session from the store |

use std::sync::Once;

use collab_core::{ErrorCode, Tally};

/// Open connections.
pub const CONNECTIONS: &str = "collab_connections";
/// Sessions in memory.
pub const SESSIONS_LOADED: &str = "collab_sessions_loaded";
/// Client frames read, by `type`.
pub const FRAMES_IN: &str = "collab_frames_in_total";
/// Frames queued to clients, by `type`.
pub const FRAMES_OUT: &str = "collab_frames_out_total";
/// Errors answered, by `code`.
pub const ERRORS: &str = "collab_errors_total";
/// Connections dropped for a full queue.
pub const SLOW_CONSUMER_DROPS: &str = "collab_slow_consumer_drops_total";
/// Store write latency.
pub const STORE_SAVE_SECONDS: &str = "collab_store_save_seconds";
/// Session step time.
pub const SESSION_STEP_SECONDS: &str = "collab_session_step_seconds";
/// Session load time.
pub const SESSION_LOAD_SECONDS: &str = "collab_session_load_seconds";

/// Describes every metric to the installed recorder, once per process.
pub(crate) fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_gauge!(CONNECTIONS, "Open connections, WebSocket and REST joins.");
        describe_gauge!(SESSIONS_LOADED, "Sessions in memory.");
        describe_counter!(FRAMES_IN, "Client frames read, by type.");
        describe_counter!(
            FRAMES_OUT,
            "Frames queued to clients, one per recipient, by type."
        );
        describe_counter!(
            ERRORS,
            "Error frames sent and failed HTTP requests, by code."
        );
        describe_counter!(
            SLOW_CONSUMER_DROPS,
            "Connections dropped because they did not read their frames."
        );
        describe_histogram!(
            STORE_SAVE_SECONDS,
            Unit::Seconds,
            "One session's store write."
        );
        describe_histogram!(SESSION_STEP_SECONDS, Unit::Seconds, "One session step.");
        describe_histogram!(SESSION_LOAD_SECONDS, Unit::Seconds, "Loading one session.");
    });
}

/// Reports what a session counted during a step.
pub(crate) fn report(tally: &Tally) {
    for (kind, n) in tally.frames_in() {
        metrics::counter!(FRAMES_IN, "type" => kind).increment(n);
    }
    for (code, n) in tally.errors() {
        metrics::counter!(ERRORS, "code" => code.as_str()).increment(n);
    }
}

/// Counts one failed request.
pub(crate) fn error(code: ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.as_str()).increment(1);
}
