//! Lists the vendored editor files (`static/vendor`, written by
//! `vendor/revendor.mjs`) for `page::FILES`, so re-vendoring needs no edit
//! of the Rust code: `$OUT_DIR/vendored.rs` holds one `file(...)` per file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let vendor = manifest_dir.join("static").join("vendor");
    println!("cargo:rerun-if-changed={}", vendor.display());
    let mut files = Vec::new();
    walk(&vendor, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for path in &files {
        let relative = path
            .strip_prefix(&vendor)
            .expect("under static/vendor")
            .to_string_lossy()
            .replace('\\', "/");
        let content_type = if relative.ends_with(".js") {
            "JS"
        } else {
            "TEXT"
        };
        writeln!(
            out,
            "    file({url:?}, {content_type}, include_str!({path:?})),",
            url = format!("/vendor/{relative}"),
            path = path.display().to_string(),
        )
        .expect("write to a string");
    }
    out.push(']');
    let target =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("vendored.rs");
    std::fs::write(target, out).expect("write vendored.rs");
}
