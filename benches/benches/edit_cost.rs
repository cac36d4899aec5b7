//! What one thin-client edit costs the server as the session's history grows:
//! one typist sending one `text_op` per keystroke, five thin listeners
//! receiving each (and, in the second group, an automerge replica following
//! along and answering every sync message), the clock moving 200 ms a
//! keystroke (so commit and presence timers fire as they do live). Measured
//! after 1k, 10k and 100k revisions of the editing trace; the cost must not
//! grow with them.
//!
//! Run with: `cargo bench -p collab-benches --bench edit_cost`

use std::time::{Duration, Instant};

use collab_benches::{session, text_op_frame, Trace, T0};
use collab_core::ids::ConnectionId;
use collab_core::{Identity, ReplicaClient, Session, Timestamp, Transmit};
use criterion::{criterion_group, criterion_main, Criterion};

/// A session with its history `revisions` long, and where the trace stands.
struct Replay {
    session: Session,
    now: Timestamp,
    next: usize,
    /// An automerge replica following the session, when the bench has one.
    replica: Option<ReplicaClient>,
}

/// The replica's connection.
const REPLICA_CONN: ConnectionId = ConnectionId(100);

impl Replay {
    fn new(trace: &Trace, revisions: usize, with_replica: bool) -> Self {
        let mut replay = Replay {
            session: session(6),
            now: T0,
            next: 0,
            replica: None,
        };
        if with_replica {
            let who = Identity::new("replica", "Replica");
            replay
                .session
                .connect(REPLICA_CONN, who, T0)
                .expect("room for the replica");
            replay
                .session
                .handle_text(REPLICA_CONN, r#"{"type":"join","mode":"replica"}"#, T0);
            replay.replica = Some(ReplicaClient::new());
            replay.exchange();
        }
        while (replay.session.document().rev() as usize) < revisions {
            replay.step(trace);
        }
        replay
    }

    /// One keystroke from the typist (connection 1), typed at the current
    /// revision, then 200 ms pass.
    fn step(&mut self, trace: &Trace) {
        let edit = &trace.edits[self.next % trace.edits.len()];
        self.next += 1;
        let rev = self.session.document().rev();
        let frame = text_op_frame(edit, rev);
        self.session.handle_text(ConnectionId(1), &frame, self.now);
        self.exchange();
        self.now = self.now.plus(Duration::from_millis(200));
        while let Some(at) = self.session.poll_timeout().filter(|t| *t <= self.now) {
            self.session.handle_timeout(at.max(self.now));
            self.exchange();
        }
    }

    /// Drains what the session sends (serialising text frames once, as the
    /// hub does); sync messages go to the replica, whose answers go back,
    /// until both are quiet.
    fn exchange(&mut self) {
        loop {
            let mut to_replica = Vec::new();
            while let Some(t) = self.session.poll_transmit() {
                match t {
                    Transmit::Send { frame, .. } => {
                        std::hint::black_box(frame.to_json());
                    }
                    Transmit::SendBinary { bytes, .. } => to_replica.push(bytes),
                    _ => {}
                }
            }
            let Some(replica) = self.replica.as_mut() else {
                return;
            };
            for bytes in &to_replica {
                replica
                    .receive(bytes)
                    .expect("the replica reads the server's sync");
            }
            // One answer for everything received, as a follower sends.
            match replica.poll_message() {
                Some(answer) => self.session.handle_binary(REPLICA_CONN, &answer, self.now),
                None if to_replica.is_empty() => return,
                None => {}
            }
        }
    }
}

/// Edits timed per sample: few enough that the history stays at the level
/// being measured; criterion's iteration count is met by scaling.
const TIMED_EDITS: u64 = 400;

fn edit_cost(c: &mut Criterion) {
    let trace = Trace::load();
    let mut group = c.benchmark_group("edit_cost");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(2));
    for with_replica in [false, true] {
        for revisions in [1_000usize, 10_000, 100_000] {
            let listeners = if with_replica {
                "thin_and_replica"
            } else {
                "thin"
            };
            group.bench_function(format!("{listeners}/at_{revisions}_revisions"), |b| {
                // Each sample starts from a fresh session replayed to the
                // level (not timed), then times the next TIMED_EDITS
                // keystrokes of the trace, each a real edit at that history
                // length; the time is scaled to criterion's iteration count.
                b.iter_custom(|iters| {
                    let mut replay = Replay::new(&trace, revisions, with_replica);
                    let started = Instant::now();
                    for _ in 0..TIMED_EDITS {
                        replay.step(&trace);
                    }
                    let elapsed = started.elapsed();
                    assert_eq!(
                        replay.session.document().rev() as usize,
                        revisions + TIMED_EDITS as usize,
                        "every timed edit was applied"
                    );
                    elapsed.mul_f64(iters as f64 / TIMED_EDITS as f64)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, edit_cost);
criterion_main!(benches);
