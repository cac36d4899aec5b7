//! Document merging: how fast edits get into a session document, from thin
//! clients and from replicas, against raw automerge doing the same edits.
//!
//! Run with: `cargo bench -p collab-benches --bench merge`
//! (`COLLAB_TRACE=path/to/automerge-paper.json.gz` to point at the trace; see
//! BENCHMARKS.md for the figures and how to read them).

use std::time::{Duration, Instant};

use automerge::transaction::Transactable as _;
use collab_benches::{drain, session, text_op_frame, Edit, Trace, T0};
use collab_core::ids::ConnectionId;
use collab_core::{Document, Identity, ReplicaClient, SyncState};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn single_writer(c: &mut Criterion, trace: &Trace) {
    let n = trace.edits.len();
    let frames: Vec<String> = trace
        .edits
        .iter()
        .enumerate()
        .map(|(i, e)| text_op_frame(e, i as u64))
        .collect();
    let mut group = c.benchmark_group("single_writer");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n as u64));

    group.bench_function("collab thin-client path", |b| {
        b.iter_batched(
            || session(1),
            |mut s| {
                let conn = ConnectionId(1);
                for (i, frame) in frames.iter().enumerate() {
                    s.handle_text(conn, frame, T0.plus(Duration::from_millis(i as u64)));
                    drain(&mut s);
                }
                assert_eq!(s.document().text("main").unwrap().len(), trace.end.len());
                s
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("raw automerge 0.6.1, commit per edit", |b| {
        use automerge_06::transaction::Transactable as _;
        b.iter(|| {
            let mut doc = automerge_06::AutoCommit::new_with_encoding(
                automerge_06::TextEncoding::Utf16CodeUnit,
            );
            let text = doc
                .put_object(automerge_06::ROOT, "text", automerge_06::ObjType::Text)
                .unwrap();
            for e in &trace.edits {
                doc.splice_text(&text, e.pos as usize, e.del as isize, &e.ins)
                    .unwrap();
                doc.commit();
            }
            doc
        });
    });

    group.bench_function("raw automerge 0.12.0, commit per edit", |b| {
        b.iter(|| {
            let mut doc =
                automerge::AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
            let text = doc
                .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
                .unwrap();
            for e in &trace.edits {
                doc.splice_text(&text, e.pos as usize, e.del as isize, &e.ins)
                    .unwrap();
                doc.commit();
            }
            doc
        });
    });
    group.finish();
}

/// A round-robin schedule for `writers` thin clients: each types at its own
/// place and sends against the revision it had at the start of the round, so
/// every operation is rebased over the others' operations of that round.
fn concurrent_frames(writers: usize, total: usize) -> Vec<(ConnectionId, String)> {
    let mut len_at_round_start: u32 = 0;
    let mut len: u32 = 0;
    let mut frames = Vec::with_capacity(total);
    let mut rev = 0u64;
    let rounds = total / writers;
    for round in 0..rounds {
        let base = rev;
        for w in 0..writers {
            let spot = (len_at_round_start as u64 * w as u64 / writers as u64) as u32;
            let edit = if round % 4 == 3 && spot > 0 {
                len -= 1;
                Edit {
                    pos: spot - 1,
                    del: 1,
                    ins: String::new(),
                }
            } else {
                len += 1;
                Edit {
                    pos: spot,
                    del: 0,
                    ins: ((b'a' + (w % 26) as u8) as char).to_string(),
                }
            };
            frames.push((ConnectionId(w as u64 + 1), text_op_frame(&edit, base)));
            rev += 1;
        }
        len_at_round_start = len;
    }
    frames
}

fn concurrent_writers(c: &mut Criterion) {
    let mut group = c.benchmark_group("concurrent_writers");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for writers in [2usize, 10, 50] {
        let total = 20_000 - 20_000 % writers;
        let frames = concurrent_frames(writers, total);
        group.throughput(Throughput::Elements(total as u64));
        group.bench_function(format!("{writers} writers, {total} operations"), |b| {
            b.iter_batched(
                || session(writers),
                |mut s| {
                    for (i, (conn, frame)) in frames.iter().enumerate() {
                        s.handle_text(*conn, frame, T0.plus(Duration::from_millis(i as u64)));
                        drain(&mut s);
                    }
                    assert_eq!(s.document().rev(), total as u64);
                    s
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// A server document whose history is the trace's first `history` edits, one
/// change each, saved.
fn saved_history(trace: &Trace, history: usize) -> Vec<u8> {
    let mut doc = Document::new("latex", [("main", "")]).unwrap();
    doc.set_max_len(u64::MAX);
    let mut bytes = doc.save();
    let mut am = automerge::AutoCommit::load_with_options(
        &bytes,
        automerge::LoadOptions::new().text_encoding(automerge::TextEncoding::Utf16CodeUnit),
    )
    .unwrap();
    let files = match automerge::ReadDoc::get(&am, automerge::ROOT, "files").unwrap() {
        Some((_, id)) => id,
        None => unreachable!("a document has files"),
    };
    let text = automerge::ReadDoc::get(&am, &files, "main")
        .unwrap()
        .unwrap()
        .1;
    for e in &trace.edits[..history] {
        am.splice_text(&text, e.pos as usize, e.del as isize, &e.ins)
            .unwrap();
        am.commit();
    }
    bytes = am.save();
    bytes
}

/// Records what a replica sends while it makes `edits` changes, `per_message`
/// at a time, against a server document loaded from `saved`.
fn record_replica(saved: &[u8], edits: &[Edit], per_message: usize) -> Vec<Vec<u8>> {
    let mut server = Document::load(saved).unwrap();
    let mut server_state = SyncState::new();
    let mut replica = ReplicaClient::new();
    let mut recorded = Vec::new();
    let exchange = |server: &mut Document,
                    st: &mut SyncState,
                    r: &mut ReplicaClient,
                    rec: &mut Vec<Vec<u8>>| loop {
        let down = server.generate_sync(st);
        if let Some(m) = &down {
            r.receive(m).unwrap();
        }
        let up = r.poll_message();
        if let Some(m) = &up {
            server.receive_sync(st, m, None, T0).unwrap();
            rec.push(m.clone());
        }
        if down.is_none() && up.is_none() {
            break;
        }
    };
    exchange(&mut server, &mut server_state, &mut replica, &mut recorded);
    recorded.clear();
    for chunk in edits.chunks(per_message) {
        for e in chunk {
            replica.splice("main", e.pos, e.del, &e.ins).unwrap();
            replica.commit(); // one change per keystroke
        }
        exchange(&mut server, &mut server_state, &mut replica, &mut recorded);
    }
    recorded
}

fn remote_changes(c: &mut Criterion, trace: &Trace) {
    let mut group = c.benchmark_group("remote_changes");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let incoming = 5_000usize;
    let full = trace.edits.len() - incoming;
    for (label, history) in [("10k", 10_000usize), ("40k", 40_000), ("full trace", full)] {
        if history + incoming > trace.edits.len() {
            continue;
        }
        let saved = saved_history(trace, history);
        let edits = &trace.edits[history..history + incoming];
        let expected = collab_benches::apply_all("", &trace.edits[..history + incoming]);
        for per_message in [1usize, 100] {
            let messages = record_replica(&saved, edits, per_message);
            group.throughput(Throughput::Elements(incoming as u64));
            group.bench_function(
                format!("{incoming} changes at {label} history, {per_message} per sync message"),
                |b| {
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let mut server = Document::load(&saved).unwrap();
                            let mut state = SyncState::new();
                            let start = Instant::now();
                            // The server's work per replica message: apply it (with
                            // the patches that become versions) and answer.
                            let first = server.generate_sync(&mut state);
                            std::hint::black_box(first);
                            for m in &messages {
                                let out = server.receive_sync(&mut state, m, None, T0).unwrap();
                                std::hint::black_box(out);
                                std::hint::black_box(server.generate_sync(&mut state));
                            }
                            spent += start.elapsed();
                            // Adjacent edits in one message may come as one patch.
                            assert!(server.rev() > 0 && server.rev() <= incoming as u64);
                            assert_eq!(server.text("main"), Some(expected.clone()));
                        }
                        spent
                    });
                },
            );
        }
    }
    group.finish();
}

fn late_joiner(c: &mut Criterion, trace: &Trace) {
    let mut group = c.benchmark_group("late_joiner");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let saved = saved_history(trace, trace.edits.len());
    group.bench_function("server CPU to sync a new replica, full trace", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut server = Document::load(&saved).unwrap();
                let mut replica = ReplicaClient::new();
                // As a session does when a replica joins: the snapshot, then sync.
                let start = Instant::now();
                let (snapshot, mut state) = server.replica_start();
                spent += start.elapsed();
                replica.receive(&snapshot).unwrap();
                loop {
                    let start = Instant::now();
                    let down = server.generate_sync(&mut state);
                    spent += start.elapsed();
                    if let Some(m) = &down {
                        replica.receive(m).unwrap();
                    }
                    let up = replica.poll_message();
                    if let Some(m) = &up {
                        let start = Instant::now();
                        server.receive_sync(&mut state, m, None, T0).unwrap();
                        spent += start.elapsed();
                    }
                    if down.is_none() && up.is_none() {
                        break;
                    }
                }
                assert_eq!(replica.text("main").unwrap().len(), trace.end.len());
            }
            spent
        });
    });
    // A session that grew in memory has no saved bytes to hand out: the first
    // replica to join pays for folding the history into one save.
    let frames: Vec<String> = trace
        .edits
        .iter()
        .enumerate()
        .map(|(i, e)| text_op_frame(e, i as u64))
        .collect();
    group.bench_function(
        "first replica start after the full trace was typed in memory",
        |b| {
            b.iter_batched(
                || {
                    let mut s = session(1);
                    for frame in &frames {
                        s.handle_text(ConnectionId(1), frame, T0);
                        drain(&mut s);
                    }
                    s
                },
                |mut s| {
                    // The same writer opens a replica connection: its join
                    // is answered with the document's save.
                    let replica = ConnectionId(2);
                    s.connect(replica, Identity::new("w0", "Writer 0"), T0)
                        .expect("room for a connection");
                    s.handle_text(replica, r#"{"type":"join","mode":"replica"}"#, T0);
                    drain(&mut s);
                    s
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.bench_function("load a saved document, full trace", |b| {
        b.iter(|| Document::load(&saved).unwrap());
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let trace = Trace::load();
    eprintln!("trace: {} ({} edits)", trace.source, trace.edits.len());
    single_writer(c, &trace);
    concurrent_writers(c);
    remote_changes(c, &trace);
    late_joiner(c, &trace);
}

criterion_group!(merge, benches);
criterion_main!(merge);
