//! The browser client library (`collab-wire/js/collab-client.mjs`) and its
//! CodeMirror binding (`collab-codemirror.mjs`), under Node.js: runs
//! `tests/client/*.test.mjs` with `COLLAB_URL` set to a real example server
//! started on a free port over a fresh SQLite database. Bare imports
//! (`@codemirror/state`) resolve through the page's own import map to the
//! vendored files (`tests/client/import-map.mjs`), so the binding is tested
//! with the CodeMirror the page serves.
//!
//! Needs Node.js 20+ (its WebSocket, behind `--experimental-websocket` on
//! 20); fails, naming what is missing, rather than skipping.

mod common;

use std::path::Path;

#[test]
fn client_library_against_a_real_server() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = common::Server::start(&dir.path().join("collab.db"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(example.join("tests/client"))
        .expect("tests/client exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("tests/client/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no tests in tests/client");
    let mut args = vec![
        "--experimental-websocket",
        "--import",
        "./tests/client/import-map.mjs",
        "--test",
        "--test-reporter=spec",
    ];
    args.extend(files.iter().map(String::as_str));
    common::node_tests(
        "the client library's tests",
        &args,
        &[("COLLAB_URL", &server.url)],
    );
}
