//! `SqliteStore`, in memory and on a file, against the reference semantics:
//! the model test every store passes (`collab_store_tests::model`).

use collab_sqlite::SqliteStore;
use collab_store_tests::model::{ops, run, Stores};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sqlite_store_matches_the_reference(ops in ops()) {
        run(ops, || async {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = SqliteStore::open(dir.path().join("s.db")).expect("open");
            Stores {
                stores: vec![
                    ("in memory".into(), Box::new(SqliteStore::open_in_memory().expect("open"))),
                    ("file".into(), Box::new(file)),
                ],
                keep: vec![Box::new(dir)],
            }
        })?;
    }
}
