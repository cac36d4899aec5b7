//! Session benchmarks: how many frames a session handles per second.
//!
//! Run with: `cargo bench -p collab-benches --bench session`

use std::time::Duration;

use collab_benches::{drain, session, T0};
use collab_core::ids::ConnectionId;
use collab_core::protocol::decode_client_frame;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn chat(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat");
    for n in [2u64, 10, 50] {
        group.throughput(Throughput::Elements(1_000));
        group.bench_function(format!("1000 messages fanned out to {n}"), |b| {
            b.iter_batched(
                || session(n as usize),
                |mut s| {
                    for i in 0..1_000u64 {
                        let now = T0.plus(Duration::from_millis(i));
                        s.handle_text(
                            ConnectionId(1 + i % n),
                            r#"{"type":"chat_send","text":"hello @User 1, look at line 12"}"#,
                            now,
                        );
                        drain(&mut s);
                    }
                    s
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn presence(c: &mut Criterion) {
    let mut group = c.benchmark_group("presence");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1000 cursor moves from 10 clients, coalesced", |b| {
        b.iter_batched(
            || session(10),
            |mut s| {
                for i in 0..1_000u64 {
                    let now = T0.plus(Duration::from_millis(i * 2));
                    let frame = format!(
                        r#"{{"type":"presence","cursor":{{"file":"main","anchor":{i},"head":{i}}},"typing":true}}"#
                    );
                    s.handle_text(ConnectionId(1 + i % 10), &frame, now);
                    if s.poll_timeout().is_some_and(|t| t <= now) {
                        s.handle_timeout(now);
                    }
                    drain(&mut s);
                }
                s
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol");
    let frame = r#"{"type":"presence","rid":9,"cursor":{"file":"main","anchor":120,"head":131},"viewport":{"file":"main","first_line":1,"last_line":40}}"#;
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode a presence frame", |b| {
        b.iter(|| decode_client_frame(frame, 65_536).unwrap())
    });
    group.finish();
}

criterion_group!(benches, chat, presence, protocol);
criterion_main!(benches);
