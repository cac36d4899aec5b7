//! The vendored editor (`static/vendor`) is exactly the packages
//! `vendor/package-lock.json` pins: runs `vendor/revendor.test.mjs`, which
//! installs them with `npm ci` (checking each tarball's integrity hash) and
//! compares every vendored file byte for byte, and the import map.
//!
//! Needs Node.js 20+, npm and the npm registry; fails, naming what is
//! missing, rather than skipping.

use std::path::Path;
use std::process::Command;

#[test]
fn vendored_files_are_the_locked_packages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "vendor/revendor.test.mjs"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`node` could not be run ({e}): Node.js 20+ is required"));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{output}");
    assert!(
        out.status.success(),
        "the vendored editor files differ from the locked packages \
         (re-vendor with `node vendor/revendor.mjs`):\n{output}"
    );
    assert!(output.contains("pass 3"), "all three checks ran:\n{output}");
}
