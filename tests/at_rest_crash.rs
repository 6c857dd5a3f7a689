//! Crash safety: a crash injected before, after or in the middle of every write step of a
//! workload, with every way of losing unsynced bytes, recovers exactly the acknowledged
//! bytes and finishes with the right SHA-256; and no nonce is ever written twice under a
//! key across a long randomized run of appends, crashes and retries.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, HashSet};

use sallyport::at_rest::writer::DEFERRED_TAILS;
use sallyport::at_rest::{AtRest, AtRestError, Reopened, Writer};
use sallyport::blob::{BlobId, BlobKind};
use sallyport::ids::OpaqueId;
use sallyport::state::StateStore;
use sha2::{Digest, Sha256};

use support::at_rest::store;
use support::data::data;
use support::mem_blob::{CrashMode, MemBlob, Unsynced};

const S: usize = 16;
const H: usize = 108;
const STRIDE: usize = S + 28;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Append(usize),
    Commit,
    /// A commit whose tail record goes to the state store (`Writer::commit_deferred`).
    CommitDeferred,
    Rollback,
    Finish,
}

/// A workload touching every path: partial fills, several segments per batch, a rollback
/// of uncommitted data, an empty commit, commits whose tail record goes to the tail blob
/// and to the state store (deferred) in turn, and finish after a deferred commit.
const WORKLOAD: &[Op] = &[
    Op::Append(5),
    Op::Commit,
    Op::Append(40),
    Op::Append(7),
    Op::CommitDeferred,
    Op::Commit,
    Op::Append(100),
    Op::Rollback,
    Op::Append(61),
    Op::Commit,
    Op::Append(16),
    Op::CommitDeferred,
    Op::Finish,
];

/// (final length, the most bytes ever appended at once before a rollback)
fn lengths() -> (usize, usize) {
    let mut len = 0;
    let mut most = 0;
    let mut committed = 0;
    for op in WORKLOAD {
        match op {
            Op::Append(n) => len += n,
            Op::Commit | Op::CommitDeferred | Op::Finish => committed = len,
            Op::Rollback => len = committed,
        }
        most = most.max(len);
    }
    (committed, most)
}

/// What the workload had acknowledged when the crash hit.
struct Outcome {
    object: OpaqueId,
    /// Length returned by the last successful commit (0 once create succeeded).
    acked: u64,
    /// Length the failing commit or finish was trying to make durable, if any.
    attempted: Option<u64>,
    /// Whether the crash hit during finish.
    in_finish: bool,
    completed: bool,
}

/// Runs the workload over `feed` (whose first `lengths().0` bytes are the object).
async fn run_workload(at_rest: &AtRest, feed: &[u8]) -> Outcome {
    let plain = &feed[..lengths().0];
    let object = OpaqueId::random();
    let mut out = Outcome {
        object,
        acked: 0,
        attempted: None,
        in_finish: false,
        completed: false,
    };
    let Ok(writer) = at_rest.create(object).await else {
        return out;
    };
    let mut fed = 0usize;
    // An Option so `finish` can take the writer by value.
    let mut w: Option<Writer> = Some(writer);
    for op in WORKLOAD {
        let writer = w.as_mut().unwrap();
        let result = match *op {
            Op::Append(n) => {
                let r = writer.append(&feed[fed..fed + n]).await;
                fed += n;
                r.map(|_| ())
            }
            Op::Commit | Op::CommitDeferred => {
                out.attempted = Some(fed as u64);
                let committed = if matches!(op, Op::Commit) {
                    writer.commit().await
                } else {
                    writer.commit_deferred(b"note").await
                };
                committed.map(|c| {
                    assert_eq!(c.plaintext_len, fed as u64);
                    out.acked = c.plaintext_len;
                    out.attempted = None;
                })
            }
            Op::Rollback => writer.rollback().await.map(|c| {
                assert_eq!(c.plaintext_len, out.acked);
                fed = c.plaintext_len as usize;
            }),
            Op::Finish => {
                out.attempted = Some(fed as u64);
                out.in_finish = true;
                w.take().unwrap().finish().await.map(|f| {
                    assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(plain)));
                    out.acked = f.plaintext_len;
                    out.completed = true;
                })
            }
        };
        if result.is_err() {
            return out;
        }
    }
    out
}

#[test]
fn crash_between_every_pair_of_write_steps_recovers_exactly_the_acknowledged_bytes() {
    rt().block_on(async {
        let (len, most) = lengths();
        let feed = data(most, 42);
        let plain = &feed[..len];
        let digest = <[u8; 32]>::from(Sha256::digest(plain));
        let modes = [
            CrashMode::Before,
            CrashMode::After,
            CrashMode::Torn(1),
            CrashMode::Torn(STRIDE + 3),
        ];
        let losses = [Unsynced::Keep, Unsynced::Drop, Unsynced::KeepPrefix(30)];
        let mut crash_points = 0;
        let mut finished_by_recovery = 0;
        let mut cut = 0;
        for mode in modes {
            for loss in losses {
                for n in 0.. {
                    let (at_rest, blob, state) = store(S as u32);
                    // Batches of two segments, so appends go out mid-workload too.
                    let at_rest = at_rest.with_batch_bytes(2 * STRIDE);
                    blob.crash_at(n, mode);
                    let out = run_workload(&at_rest, &feed).await;
                    if !blob.has_crashed() {
                        assert!(out.completed, "no crash, yet the workload failed");
                        break;
                    }
                    crash_points += 1;
                    assert!(!out.completed, "crash {n} {mode:?}: completed anyway");
                    blob.restart(loss);
                    let context = format!("crash at step {n}, {mode:?}, {loss:?}");

                    let writer = match at_rest.open_writer(out.object).await {
                        Ok(Reopened::Open { writer, recovery }) => {
                            let got = recovery.committed.plaintext_len;
                            assert!(!recovery.tail_rebuilt, "{context}");
                            cut += recovery.cut_bytes;
                            // Exactly the acknowledged bytes; a crash *after* a tail
                            // replace took effect also commits what it was writing.
                            let ok = got == out.acked
                                || (mode == CrashMode::After && Some(got) == out.attempted);
                            assert!(ok, "{context}: recovered {got}, acked {}", out.acked);
                            *writer
                        }
                        Ok(Reopened::Finished(f)) => {
                            assert!(out.in_finish, "{context}: finished outside finish");
                            assert_eq!(f.plaintext_len, plain.len() as u64, "{context}");
                            assert_eq!(f.sha256, digest, "{context}");
                            // The workload's last commit was deferred: its record is
                            // stale once the finish is completed, and gone.
                            let deferred = state
                                .get(DEFERRED_TAILS, &out.object.to_string())
                                .await
                                .unwrap();
                            assert!(deferred.is_none(), "{context}: deferred record left");
                            finished_by_recovery += 1;
                            check_readable(&at_rest, out.object, plain).await;
                            continue;
                        }
                        Err(AtRestError::NotFound) => panic!("{context}: object lost"),
                        Err(e) => panic!("{context}: {e}"),
                    };
                    // Resume from the recovered offset, like a tus client after HEAD.
                    let mut writer = writer;
                    let from = writer.committed().plaintext_len as usize;
                    writer.append(&plain[from..]).await.unwrap();
                    let f = writer.finish().await.unwrap();
                    assert_eq!(f.sha256, digest, "{context}");
                    check_readable(&at_rest, out.object, plain).await;
                }
            }
        }
        // Every write step of the workload was a crash point in every combination, and
        // some crashes hit between the final segment and its tail record.
        let (at_rest, blob, _) = store(S as u32);
        assert!(
            run_workload(&at_rest.with_batch_bytes(2 * STRIDE), &feed)
                .await
                .completed
        );
        let steps = blob.mutations() as usize;
        assert!(steps >= 20, "the workload has only {steps} write steps");
        assert_eq!(crash_points, steps * modes.len() * losses.len());
        assert!(finished_by_recovery > 0);
        assert!(cut > 0, "no crash ever left uncommitted bytes to cut");
    });
}

async fn check_readable(at_rest: &AtRest, object: OpaqueId, plain: &[u8]) {
    let reader = at_rest.open_reader(object).await.unwrap();
    assert_eq!(reader.len(), plain.len() as u64);
    let got = reader.read_range(0, plain.len() as u64).await.unwrap();
    assert_eq!(&got[..], plain);
}

/// Every nonce that reached storage, per `(object, blob kind)` (one key each), and how
/// often each segment index was sealed.
#[derive(Default)]
struct Recorded {
    nonces: HashMap<(OpaqueId, BlobKind), Vec<[u8; 12]>>,
    sealed_per_index: HashMap<(OpaqueId, u64), usize>,
}

fn nonces_written(blob: &MemBlob) -> Recorded {
    let mut rec = Recorded::default();
    let (nonces, sealed_per_index) = (&mut rec.nonces, &mut rec.sealed_per_index);
    for w in blob.writes() {
        let key = (w.id.object, w.id.kind);
        match w.id.kind {
            BlobKind::Tail => {
                assert!(w.replace);
                let mut n = [0u8; 12];
                n.copy_from_slice(&w.bytes[5..17]);
                nonces.entry(key).or_default().push(n);
            }
            BlobKind::Data => {
                if w.offset == 0 {
                    // The header (never anything else at offset 0).
                    assert!(w.bytes.len() <= H);
                    continue;
                }
                // Appends start on a segment boundary and hold whole segments (plus at
                // most one final segment last); a torn one may end early.
                assert_eq!((w.offset as usize - H) % STRIDE, 0);
                let first = (w.offset as usize - H) / STRIDE;
                for (k, start) in (0..w.bytes.len()).step_by(STRIDE).enumerate() {
                    if w.bytes.len() - start >= 12 {
                        let mut n = [0u8; 12];
                        n.copy_from_slice(&w.bytes[start..start + 12]);
                        nonces.entry(key).or_default().push(n);
                        *sealed_per_index
                            .entry((w.id.object, (first + k) as u64))
                            .or_insert(0) += 1;
                    }
                }
            }
        }
    }
    rec
}

#[test]
fn no_nonce_repeats_under_a_key_across_appends_crashes_and_retries() {
    rt().block_on(async {
        let (at_rest, blob, state) = store(S as u32);
        let at_rest = at_rest.with_batch_bytes(3 * STRIDE);
        blob.record_writes();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let mut objects = Vec::new();
        for round in 0..4 {
            let object = OpaqueId::random();
            objects.push(object);
            let plain = data(4000, round);
            let mut w = at_rest.create(object).await.unwrap();
            let mut fed = 0usize;
            let mut steps = 0;
            while fed < plain.len() || steps < 10 {
                steps += 1;
                if steps > 5000 {
                    panic!("no progress");
                }
                let choice = next(10);
                let result: Result<(), AtRestError> = if choice < 6 {
                    let n = (next(60) as usize).min(plain.len() - fed);
                    let r = w.append(&plain[fed..fed + n]).await;
                    fed += n;
                    r
                } else if choice < 8 {
                    w.commit().await.map(|_| ())
                } else if choice < 9 {
                    w.rollback().await.map(|c| fed = c.plaintext_len as usize)
                } else {
                    // Arm a crash a few mutations ahead in a random mode.
                    let mode = match next(3) {
                        0 => CrashMode::Before,
                        1 => CrashMode::After,
                        _ => CrashMode::Torn(next(50) as usize),
                    };
                    blob.crash_at(next(4), mode);
                    Ok(())
                };
                if result.is_err() || blob.has_crashed() {
                    blob.restart(match next(3) {
                        0 => Unsynced::Keep,
                        1 => Unsynced::Drop,
                        _ => Unsynced::KeepPrefix(next(100) as usize),
                    });
                    w = match at_rest.open_writer(object).await.unwrap() {
                        Reopened::Open { writer, .. } => *writer,
                        Reopened::Finished(_) => unreachable!("finish is not called here"),
                    };
                    // Retry: the same plaintext is sealed again at the same indices.
                    fed = w.committed().plaintext_len as usize;
                }
            }
            blob.restart(Unsynced::Keep);
            let f = w.finish().await.unwrap();
            assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        }

        let Recorded {
            nonces,
            sealed_per_index,
        } = nonces_written(&blob);
        let mut total = 0;
        for ((object, kind), list) in &nonces {
            let unique: HashSet<_> = list.iter().collect();
            assert_eq!(
                unique.len(),
                list.len(),
                "nonce repeated for {object} {kind:?}"
            );
            total += list.len();
        }
        // The wrapped DEKs' nonces (all under the one KEK) are distinct too.
        let mut wraps: HashSet<Vec<u8>> = HashSet::new();
        for o in &objects {
            let rec = state
                .raw(sallyport::keys::record::DEK_NAMESPACE, &o.to_string())
                .await
                .unwrap();
            wraps.insert(rec[rec.len() - 60..rec.len() - 48].to_vec());
        }
        assert_eq!(wraps.len(), objects.len());
        // The run is long, and retries really re-sealed the same segment indices.
        assert!(total > 1000, "only {total} nonces recorded");
        let resealed = sealed_per_index.values().filter(|&&n| n > 1).count();
        assert!(
            resealed > 10,
            "only {resealed} segment indices were sealed more than once"
        );
    });
}

#[test]
fn a_stale_tail_record_is_discarded_and_the_hash_rebuilt() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let object = OpaqueId::random();
        let plain = data(10 * S + 3, 5);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..4 * S + 1]).await.unwrap();
        w.commit().await.unwrap();
        let old_data = blob.raw(BlobId::data(object)).unwrap();
        w.append(&plain[4 * S + 1..]).await.unwrap();
        w.commit().await.unwrap();
        drop(w);
        // The data blob rolled back behind the tail record's back (a store that lost
        // synced bytes, or a restored backup): the tail now claims missing segments.
        blob.set_raw(BlobId::data(object), old_data);
        let mut w = match at_rest.open_writer(object).await.unwrap() {
            Reopened::Open { writer, recovery } => {
                assert!(recovery.tail_rebuilt);
                assert_eq!(recovery.committed.plaintext_len, 4 * S as u64);
                *writer
            }
            Reopened::Finished(_) => panic!(),
        };
        w.append(&plain[4 * S..]).await.unwrap();
        let f = w.finish().await.unwrap();
        assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        check_readable(&at_rest, object, &plain).await;

        // A segment replaced under the same length: the nonce fingerprint catches it.
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..3 * S]).await.unwrap();
        w.commit().await.unwrap();
        drop(w);
        let mut bytes = blob.raw(BlobId::data(object)).unwrap();
        bytes[H + 2 * STRIDE] ^= 1;
        blob.set_raw(BlobId::data(object), bytes);
        match at_rest.open_writer(object).await.unwrap() {
            Reopened::Open { recovery, .. } => {
                assert!(recovery.tail_rebuilt);
                assert_eq!(recovery.committed.plaintext_len, 2 * S as u64);
            }
            Reopened::Finished(_) => panic!(),
        }
    });
}

#[test]
fn a_failed_write_poisons_the_writer_until_rollback() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let object = OpaqueId::random();
        let plain = data(5 * S, 1);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..S + 2]).await.unwrap();
        w.commit().await.unwrap();
        w.append(&plain[S + 2..3 * S]).await.unwrap();
        blob.crash_at(1, CrashMode::Before); // the sync of the next commit
        assert!(w.commit().await.is_err());
        blob.restart(Unsynced::Keep);
        assert!(matches!(w.append(b"x").await, Err(AtRestError::Poisoned)));
        assert!(matches!(w.commit().await, Err(AtRestError::Poisoned)));
        assert_eq!(w.rollback().await.unwrap().plaintext_len, S as u64 + 2);
        w.append(&plain[S + 2..]).await.unwrap();
        let f = w.finish().await.unwrap();
        assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
    });
}
