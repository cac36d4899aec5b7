//! The model test every store passes: random sequences of saves and deletes
//! over a few sessions, valid and invalid, applied to the store under test
//! and to the reference semantics (`MemoryStore`, which is
//! `collab_core::store::apply_changes`); both must give the same answers and
//! hold the same state after every step.

use std::future::Future;

use collab_core::{
    DocumentWrite, SessionChanges, SessionId, SessionStatus, StoreError, StoredSession, Timestamp,
    Version,
};
use collab_edges::{MemoryStore, Store};
use proptest::prelude::*;

use crate::build::{event, message, record, session_id, version};

/// The stores one case runs against, by name, and whatever must live as
/// long as they do (a temporary directory, a server).
pub struct Stores {
    /// The stores under test.
    pub stores: Vec<(String, Box<dyn Store>)>,
    /// Kept until the case ends.
    pub keep: Vec<Box<dyn std::any::Any>>,
}

/// Sessions the operations touch; one more id is never written validly, so
/// that a first write without a record always has a session to target.
const SESSIONS: u8 = 3;

#[derive(Debug, Clone)]
struct RecordSeed {
    title: String,
    status: SessionStatus,
    last_activity: u64,
    expires_after_secs: u64,
}

#[derive(Debug, Clone)]
enum DocumentSeed {
    Append(Vec<u8>),
    Replace(Vec<u8>),
}

/// How to make an otherwise valid save invalid.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    EventGap,
    VersionGap,
    FirstWriteWithoutRecord,
}

/// One step of a case: a save (valid or not) or a delete.
#[derive(Debug, Clone)]
pub struct Op(Step);

#[derive(Debug, Clone)]
enum Step {
    Save {
        session: u8,
        record: Option<RecordSeed>,
        events: Vec<(u8, String)>,
        versions: Vec<(bool, String)>,
        messages: Vec<(u64, String)>,
        document: Option<DocumentSeed>,
        breakage: Option<Breakage>,
    },
    Delete {
        session: u8,
    },
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z \"\\\\]{0,12}", "\\PC{0,8}",]
}

fn record_seed() -> impl Strategy<Value = RecordSeed> {
    (
        text(),
        prop_oneof![
            Just(SessionStatus::Waiting),
            Just(SessionStatus::Active),
            Just(SessionStatus::Paused),
            Just(SessionStatus::Ended),
        ],
        0..u64::MAX,
        prop_oneof![Just(0), 1..100_000u64, Just(u64::MAX)],
    )
        .prop_map(
            |(title, status, last_activity, expires_after_secs)| RecordSeed {
                title,
                status,
                last_activity,
                expires_after_secs,
            },
        )
}

fn op() -> impl Strategy<Value = Step> {
    let save = (
        0..SESSIONS,
        proptest::option::of(record_seed()),
        proptest::collection::vec((any::<u8>(), text()), 0..4),
        proptest::collection::vec((any::<bool>(), text()), 0..3),
        proptest::collection::vec((1..8u64, text()), 0..3),
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48).prop_map(DocumentSeed::Append),
            proptest::collection::vec(any::<u8>(), 0..48).prop_map(DocumentSeed::Replace),
        ]),
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Breakage::EventGap)),
            1 => Just(Some(Breakage::VersionGap)),
            1 => Just(Some(Breakage::FirstWriteWithoutRecord)),
        ],
    )
        .prop_map(
            |(session, record, events, versions, messages, document, breakage)| Step::Save {
                session,
                record,
                events,
                versions,
                messages,
                document,
                breakage,
            },
        );
    prop_oneof![
        12 => save,
        1 => (0..SESSIONS).prop_map(|session| Step::Delete { session }),
    ]
}

/// Every id an operation can touch.
fn all_ids() -> Vec<SessionId> {
    (0..=SESSIONS).map(session_id).collect()
}

/// The changes `op` stands for, given what the reference store holds now,
/// and whether they are invalid.
fn changes_for(session: u8, stored: Option<&StoredSession>, seed: &Step) -> (SessionChanges, bool) {
    let Step::Save {
        record: record_seed,
        events,
        versions,
        messages,
        document,
        breakage,
        ..
    } = seed
    else {
        unreachable!("only saves have changes");
    };
    let mut id = session_id(session);
    let mut stored = stored;
    if let Some(Breakage::FirstWriteWithoutRecord) = breakage {
        // The extra session is never written, so this write is always a first.
        id = session_id(SESSIONS);
        stored = None;
    }
    let mut changes = SessionChanges::empty(id.clone());
    // A valid first write needs a record; later ones carry one when seeded.
    let record_seed = record_seed.clone().or_else(|| {
        stored.is_none().then(|| RecordSeed {
            title: "first".to_owned(),
            status: SessionStatus::Waiting,
            last_activity: 5,
            expires_after_secs: 60,
        })
    });
    changes.record = record_seed.map(|seed| {
        let mut r = record(&id, &seed.title, seed.status, seed.last_activity);
        r.expires_after_secs = seed.expires_after_secs;
        r.ended_at = r.ended_at.map(|t| Timestamp(t.0 / 2));
        r
    });
    let next_seq = stored
        .and_then(|s| s.events.last())
        .map_or(1, |e| e.seq.0 + 1);
    changes.events = events
        .iter()
        .zip(next_seq..)
        .map(|((kind, text), seq)| event(seq, *kind, text))
        .collect();
    let next_rev = stored
        .and_then(|s| s.versions.last())
        .map_or(1, |v| v.rev + 1);
    changes.versions = versions
        .iter()
        .zip(next_rev..)
        .map(|((create, text), rev)| version(rev, *create, text))
        .collect();
    changes.messages = messages
        .iter()
        .map(|(id, text)| message(*id, text))
        .collect();
    changes.document = document.as_ref().map(|d| match d {
        DocumentSeed::Append(bytes) => DocumentWrite::Append(bytes.clone()),
        DocumentSeed::Replace(bytes) => DocumentWrite::Replace(bytes.clone()),
    });
    match breakage {
        None => (changes, false),
        Some(Breakage::EventGap) => {
            changes
                .events
                .push(event(next_seq + changes.events.len() as u64 + 1, 0, "gap"));
            (changes, true)
        }
        Some(Breakage::VersionGap) => {
            let rev = next_rev + changes.versions.len() as u64 + 1;
            changes.versions.push(version(rev, true, "gap"));
            (changes, true)
        }
        Some(Breakage::FirstWriteWithoutRecord) => {
            changes.record = None;
            (changes, true)
        }
    }
}

/// What a store reads back: each session whole, with only its recent
/// versions, and ranges of its versions.
type Reads = (
    Vec<Option<StoredSession>>,
    Vec<Option<StoredSession>>,
    Vec<Vec<Version>>,
);

/// Everything a store holds, in a comparable form.
async fn state(store: &dyn Store) -> (Reads, Vec<String>) {
    let mut loads = Vec::new();
    let mut recent = Vec::new();
    let mut ranges = Vec::new();
    for id in all_ids() {
        let whole = store.load(&id).await.expect("load");
        let mut expected = whole.clone();
        if let Some(s) = expected.as_mut() {
            let document_rev = s.document_rev;
            s.versions.retain(|v| v.rev > document_rev);
        }
        let got = store.load_recent(&id).await.expect("load_recent");
        assert_eq!(
            got, expected,
            "load_recent is load without the document's versions"
        );
        recent.push(got);
        for (after, through) in [(0, u64::MAX), (1, 4), (3, 3), (2, 1)] {
            let got = store.versions(&id, after, through).await.expect("versions");
            let expected: Vec<Version> = whole.as_ref().map_or_else(Vec::new, |s| {
                s.versions
                    .iter()
                    .filter(|v| v.rev > after && v.rev <= through)
                    .cloned()
                    .collect()
            });
            assert_eq!(got, expected, "versions {after}..={through}");
            ranges.push(got);
        }
        loads.push(whole);
    }
    let loads = (loads, recent, ranges);
    let mut summaries: Vec<String> = store
        .sessions()
        .await
        .expect("sessions")
        .into_iter()
        .map(|s| format!("{s:?}"))
        .collect();
    summaries.sort();
    (loads, summaries)
}

fn is_damaged(result: &Result<(), StoreError>, id: &SessionId) -> bool {
    matches!(result, Err(StoreError::Damaged { session, .. }) if session == id)
}

/// Sequences of operations for one case.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op().prop_map(Op), 1..24)
}

/// Runs `ops` against the stores `make` opens (fresh and empty) and the
/// reference, on a runtime of its own.
///
/// # Errors
/// The first step where a store's answer or state differs from the reference's.
pub fn run<F, Fut>(ops: Vec<Op>, make: F) -> Result<(), TestCaseError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Stores>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let Stores {
            stores,
            keep: _keep,
        } = make().await;
        let reference = MemoryStore::new();
        for (step, op) in ops.iter().enumerate() {
            let before = state(&reference).await;
            let (expected, invalid, id) = match &op.0 {
                Step::Save { session, .. } => {
                    let stored = reference.load(&session_id(*session)).await.expect("load");
                    let (changes, invalid) = changes_for(*session, stored.as_ref(), &op.0);
                    let id = changes.id.clone();
                    for (name, store) in &stores {
                        let got = store.save(&changes.clone()).await;
                        if invalid {
                            prop_assert!(is_damaged(&got, &id), "step {step}, {name}: {got:?}");
                        } else {
                            prop_assert_eq!(&got, &Ok(()), "step {}, {}", step, name);
                        }
                    }
                    (reference.save(&changes).await, invalid, id)
                }
                Step::Delete { session } => {
                    let id = session_id(*session);
                    for (name, store) in &stores {
                        let got = store.delete(&id).await;
                        prop_assert_eq!(&got, &Ok(()), "step {}, {}", step, name);
                    }
                    (reference.delete(&id).await, false, id)
                }
            };
            // The reference agrees about validity, so the test's idea of a
            // valid write is the reference's.
            if invalid {
                prop_assert!(is_damaged(&expected, &id), "reference: {expected:?}");
                prop_assert_eq!(
                    &state(&reference).await,
                    &before,
                    "refusal changed the reference"
                );
            } else {
                prop_assert_eq!(&expected, &Ok(()));
            }
            let want = state(&reference).await;
            for (name, store) in &stores {
                let got = state(store.as_ref()).await;
                prop_assert_eq!(&got, &want, "step {}, {}", step, name);
            }
        }
        Ok(())
    })
}
