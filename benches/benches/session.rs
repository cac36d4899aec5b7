//! Session benchmarks: how many frames a session handles per second.
//!
//! Run with: `cargo bench -p collab-benches --bench session`

use std::time::Duration;

use collab_core::ids::ConnectionId;
use collab_core::protocol::decode_client_frame;
use collab_core::{Identity, NewSession, Session, SessionConfig, SessionId, Timestamp, Transmit};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// A session with `n` joined participants on connections 1..=n.
fn session_with(n: u64) -> Session {
    let host = Identity::new("u0", "Host");
    let config = SessionConfig {
        capacity: n as usize,
        ..Default::default()
    };
    let mut s = Session::new(
        SessionId::from_bytes([1; 16]),
        NewSession::default(),
        &host,
        config,
        T0,
    )
    .unwrap();
    for i in 0..n {
        let who = if i == 0 {
            host.clone()
        } else {
            Identity::new(format!("u{i}"), format!("User {i}"))
        };
        s.connect(ConnectionId(i + 1), who, T0).unwrap();
        s.handle_text(ConnectionId(i + 1), r#"{"type":"join"}"#, T0);
    }
    while s.poll_transmit().is_some() {}
    s
}

/// Drains the outbox, serialising each frame once as the hub does.
fn drain(s: &mut Session) -> usize {
    let mut bytes = 0;
    while let Some(t) = s.poll_transmit() {
        if let Transmit::Send { frame, .. } = t {
            bytes += frame.to_json().len();
        }
    }
    bytes
}

fn chat(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat");
    for n in [2u64, 10, 50] {
        group.throughput(Throughput::Elements(1_000));
        group.bench_function(format!("1000 messages fanned out to {n}"), |b| {
            b.iter_batched(
                || session_with(n),
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
            || session_with(10),
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
