//! The browser modules' JSDoc types hold: the TypeScript compiler (pinned in
//! `js/package.json`, installed from its lock file with `npm ci` when
//! missing) checks `collab-ot.mjs` and `collab-client.mjs` as JavaScript
//! with `--checkJs`, so a renamed method, a wrong argument count or a typo
//! in a property against the documented types fails here. The modules stay
//! dependency-free; TypeScript is only this test's tool.
//!
//! Needs Node.js and npm (and the npm registry while `node_modules` is
//! missing); fails, naming what is missing, rather than skipping.

use std::path::Path;
use std::process::Command;

fn js_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/js"))
}

/// The string at `pointer` in the JSON file `path` (under `js/`), if any.
fn json_string(path: &str, pointer: &str) -> Option<String> {
    let text = std::fs::read_to_string(js_dir().join(path)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.pointer(pointer)?.as_str().map(str::to_owned)
}

#[test]
fn browser_modules_type_check() {
    let pinned = json_string("package.json", "/devDependencies/typescript");
    assert!(
        pinned.is_some(),
        "collab-wire/js/package.json pins typescript"
    );
    if json_string("node_modules/typescript/package.json", "/version") != pinned {
        let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
        let out = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(js_dir())
            .output()
            .unwrap_or_else(|e| panic!("`npm` could not be run ({e}): npm is required"));
        assert!(
            out.status.success(),
            "`npm ci` in collab-wire/js failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("node")
        .args([
            "node_modules/typescript/bin/tsc",
            "--noEmit",
            "--allowJs",
            "--checkJs",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "collab-ot.mjs",
            "collab-client.mjs",
            "collab-connection.mjs",
            "collab-state.mjs",
        ])
        .current_dir(js_dir())
        .output()
        .unwrap_or_else(|e| panic!("`node` could not be run ({e}): Node.js is required"));
    assert!(
        out.status.success(),
        "the browser modules do not match their JSDoc types:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
