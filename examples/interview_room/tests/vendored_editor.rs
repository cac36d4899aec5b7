//! The vendored editor (`static/vendor`) is exactly the packages
//! `vendor/package-lock.json` pins: runs `vendor/revendor.test.mjs`, which
//! installs them with `npm ci` (checking each tarball's integrity hash) and
//! compares every vendored file byte for byte, and the import map.
//!
//! Needs Node.js 20+, npm and the npm registry; fails, naming what is
//! missing, rather than skipping.

mod common;

#[test]
fn vendored_files_are_the_locked_packages() {
    // Re-vendor with `node vendor/revendor.mjs` when this fails.
    common::node_tests(
        "the check of the vendored editor against the lock file",
        &["--test", "--test-reporter=spec", "vendor/revendor.test.mjs"],
        &[],
    );
}
