//! The crates that implement the traits at the edges build no web server:
//! their normal dependency trees hold none of hyper, http, axum, warp or
//! collab-server (which they may still use in their tests).

use std::process::Command;

#[test]
fn plug_ins_depend_on_no_http_crate() {
    let cargo = env!("CARGO");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for plug_in in [
        "collab-edges",
        "collab-sqlite",
        "collab-redis",
        "collab-jwt",
    ] {
        let out = Command::new(cargo)
            .current_dir(root)
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "-p",
                plug_in,
            ])
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo tree -p {plug_in}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(tree.contains("collab-core"), "{plug_in}: {tree}");
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            assert!(
                !["hyper", "http", "axum", "warp", "collab-server"].contains(&name),
                "{plug_in} depends on {line}"
            );
        }
    }
}
