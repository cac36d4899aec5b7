//! Lists the vendored editor files (`static/vendor`, written by
//! `vendor/revendor.mjs`) for `page::VENDORED`, so re-vendoring needs no
//! edit of the Rust code: `$OUT_DIR/vendored.rs` holds one `vendored(...)`
//! per file, with a gzip copy made here (they are most of the page's bytes;
//! compressed once at build time rather than on every request).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let mut out = String::from("&[\n");
    for (i, path) in files.iter().enumerate() {
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
        let gz = out_dir.join(format!("vendored-{i}.gz"));
        let body = std::fs::read(path).expect("read a vendored file");
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&body).expect("compress in memory");
        std::fs::write(&gz, encoder.finish().expect("compress in memory"))
            .expect("write the gzip copy");
        writeln!(
            out,
            "    vendored({url:?}, {content_type}, include_str!({path:?}), include_bytes!({gz:?})),",
            url = format!("/vendor/{relative}"),
            path = path.display().to_string(),
            gz = gz.display().to_string(),
        )
        .expect("write to a string");
    }
    out.push(']');
    std::fs::write(out_dir.join("vendored.rs"), out).expect("write vendored.rs");
}
