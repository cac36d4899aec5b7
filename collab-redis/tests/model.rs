//! `RedisStore` against the reference semantics, on a real `redis-server`:
//! the model test every store passes (`collab_store_tests::model`).

use std::cell::Cell;

use collab_redis::RedisStore;
use collab_store_tests::model::{ops, run, Stores};
use proptest::test_runner::{Config, TestRunner};

use collab_store_tests::redis_server::RedisServer;

#[test]
fn redis_store_matches_the_reference() {
    // One server for every case (started and stopped by this test); each
    // case keeps its keys under a prefix of its own, so it starts empty.
    let server = RedisServer::start();
    let url = server.url();
    let case = Cell::new(0);
    let mut runner = TestRunner::new(Config::with_cases(64));
    let result = runner.run(&ops(), |ops| {
        case.set(case.get() + 1);
        let prefix = format!("case{}", case.get());
        let url = url.clone();
        run(ops, || async move {
            let store = RedisStore::connect(&url, &prefix).await.expect("connect");
            Stores {
                stores: vec![("redis".into(), Box::new(store))],
                keep: Vec::new(),
            }
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
