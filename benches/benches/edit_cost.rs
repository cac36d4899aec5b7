//! What one thin-client edit costs the server as the session's history grows:
//! one typist sending one `text_op` per keystroke, four thin listeners
//! receiving each, the clock moving 200 ms a keystroke (so commit and
//! presence timers fire as they do live). Measured after 1k, 10k and 100k
//! revisions of the editing trace; the cost must not grow with them.
//!
//! Run with: `cargo bench -p collab-benches --bench edit_cost`

use std::time::{Duration, Instant};

use collab_benches::{drain, session, text_op_frame, Trace, T0};
use collab_core::ids::ConnectionId;
use collab_core::{Session, Timestamp};
use criterion::{criterion_group, criterion_main, Criterion};

/// A session with its history `revisions` long, and where the trace stands.
struct Replay {
    session: Session,
    now: Timestamp,
    next: usize,
}

impl Replay {
    fn new(trace: &Trace, revisions: usize) -> Self {
        let mut replay = Replay {
            session: session(5),
            now: T0,
            next: 0,
        };
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
        drain(&mut self.session);
        self.now = self.now.plus(Duration::from_millis(200));
        while let Some(at) = self.session.poll_timeout().filter(|t| *t <= self.now) {
            self.session.handle_timeout(at.max(self.now));
            drain(&mut self.session);
        }
    }
}

fn edit_cost(c: &mut Criterion) {
    let trace = Trace::load();
    let mut group = c.benchmark_group("edit_cost");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for revisions in [1_000usize, 10_000, 100_000] {
        let mut replay = Replay::new(&trace, revisions);
        group.bench_function(format!("one_edit_at_{revisions}_revisions"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    replay.step(&trace);
                }
                started.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, edit_cost);
criterion_main!(benches);
