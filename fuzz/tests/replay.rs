//! Every committed corpus seed and crasher of the fuzz targets, replayed
//! through the same functions the fuzzers call. A crasher is committed under
//! `fuzz/crashes/TARGET/` with the fix, so the crash stays fixed.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("frame", collab_fuzz::frame),
    ("text_operation", collab_fuzz::text_operation),
    ("session", collab_fuzz::session),
    ("document_sync", collab_fuzz::document_sync),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("readable");
            (e.path().display().to_string(), bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_and_crashers_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "the {name} target has committed seeds");
        for dir in ["corpus", "crashes"] {
            for (path, bytes) in inputs(&root.join(dir).join(name)) {
                let outcome = std::panic::catch_unwind(|| target(&bytes));
                assert!(outcome.is_ok(), "{path} crashes {name}");
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 40, "{replayed} inputs replayed");
}

/// The targets on pseudo-random inputs too: a quick net under every
/// `cargo test`, beside the fuzzer's long runs.
#[test]
fn random_inputs_do_not_crash() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, target) in TARGETS {
        for round in 0..200 {
            let len = (next() % 2048) as usize + round % 3;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            target(&bytes);
        }
    }
}

/// Writes valid sync messages and saved documents into the document_sync
/// corpus, so the fuzzer starts from messages automerge accepts. Run once
/// with `cargo test -p collab-fuzz -- --ignored write_sync_seeds`.
#[test]
#[ignore = "writes seed files; run by hand"]
fn write_sync_seeds() {
    use collab_core::{Document, ReplicaClient};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/document_sync");
    let mut server = Document::new("javascript", [("main", "let x = 1;\n")]).expect("document");
    std::fs::write(dir.join("saved-document.bin"), server.save()).expect("write");
    let (snapshot, _) = server.replica_start();
    let mut replica = ReplicaClient::new();
    replica.receive(&snapshot).expect("snapshot");
    replica.splice("main", 0, 3, "const").expect("edit");
    replica.commit();
    replica.splice("main", 5, 0, "😀é").expect("edit");
    let mut n = 0;
    while let Some(message) = replica.poll_message() {
        std::fs::write(dir.join(format!("sync-{n}.bin")), message).expect("write");
        n += 1;
        if n > 4 {
            break;
        }
    }
    assert!(n > 0);
}
