//! The PATCH body's work, spread over cores: a pipeline stage works on a blocking-pool
//! thread and consumes the body's frames while the request's task keeps reading (and
//! TLS-decrypting) the next ones. It holds that thread only while it has bytes to work on:
//! a body that stalls costs no thread.
//!
//! Every byte of a PATCH is hashed twice — once for the chunk
//! ([`ChunkHasher`](crate::tus::checksum::ChunkHasher): the ledger's SHA-256 and the
//! declared `Upload-Checksum` algorithm, or all four while a checksum trailer is
//! announced) and once for the whole file, inside the at-rest writer
//! with the AES-GCM sealing and the blob writes. The two are independent of each other
//! and of reading the socket, so the upload engine runs each as a [`Stage`]: the body's
//! frames (`Bytes`, shared, never copied) go to each stage in batches of about
//! [`BATCH_BYTES`], at most [`DEPTH`] batches ahead, so the memory a stage holds is
//! bounded (about 2 MiB) whatever the chunk's size. A stage sees the bytes in order, and
//! its state (the hasher, the writer) comes back to the request's task when it finishes,
//! so what happens to the data — and in which order the at-rest writer's steps run — is
//! exactly what it was in line; only which thread does the work changes.
//!
//! Not here: what the digests mean (`tus::checksum`), the at-rest format and its
//! commit protocol (`at_rest`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Bytes handed to a stage at once (fewer wake-ups than one hand-off per frame).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Batches queued ahead of a stage before `feed` waits.
pub const DEPTH: usize = 8;

/// Resolves (with an error, which means nothing more) once a stage's thread has returned:
/// after that the stage touches its state no more. See [`Stage::stopped`].
pub type StageStopped = oneshot::Receiver<()>;

/// A stage's thread stopped without returning its state (it panicked or was cancelled).
#[derive(Debug, thiserror::Error)]
#[error("an upload pipeline stage stopped")]
pub struct StageGone;

/// What a stage's thread returns: its state, and the first error of its step function
/// (after which it consumed nothing more).
pub type StageResult<S, E> = (S, Result<(), E>);

/// Runs `step` over the body's bytes on a blocking-pool thread.
///
/// Dropped before [`Stage::finish`] (the request was cancelled), it tells the thread to
/// stop before its next piece, so the work does not go on for long after the request —
/// and the upload's lease — are gone: at most the step under way completes. (For the
/// at-rest writer that step is one batch append, as when a request is dropped while it
/// awaits `Writer::append` in line; the next writer's recovery cuts it.)
#[derive(Debug)]
pub struct Stage<S, E> {
    tx: Option<mpsc::Sender<Vec<Bytes>>>,
    batch: Vec<Bytes>,
    batched: usize,
    length: u64,
    worker: Option<tokio::task::JoinHandle<StageResult<S, E>>>,
    stop: Arc<AtomicBool>,
    stopped: Option<StageStopped>,
}

impl<S, E> Drop for Stage<S, E> {
    fn drop(&mut self) {
        // After `finish` the thread has returned already; this matters only when the
        // stage is dropped unfinished.
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl<S, E> Stage<S, E>
where
    S: Send + 'static,
    E: Send + 'static,
{
    /// Starts a stage that calls `step(&mut state, bytes)` for every piece fed, in order,
    /// until a step fails. Dropping the stage without [`Stage::finish`] stops the thread
    /// once its queue is drained.
    pub fn start<F>(state: S, step: F) -> Self
    where
        F: FnMut(&mut S, &[u8]) -> Result<(), E> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(DEPTH);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        // Resolves when the last holder drops it: the driving task and, while one runs,
        // the blocking job that has the state.
        let (alive, gone) = oneshot::channel::<()>();
        let alive = Arc::new(alive);
        // The driver is an async task: while the body is idle it waits without a thread.
        // A blocking-pool thread is taken only while there are bytes to work on — one job
        // per run of queued batches — so a client whose body stalls holds no thread
        // (hundreds of stalled uploads once held every thread of the pool).
        let worker = tokio::spawn(async move {
            let _alive = alive.clone();
            let (mut state, mut step) = (state, step);
            while let Some(first) = rx.recv().await {
                let mut batches = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batches.push(more);
                }
                let stopped = stopped.clone();
                let alive = alive.clone();
                let job = tokio::task::spawn_blocking(move || {
                    let _alive = alive;
                    let mut outcome = None;
                    'batches: for batch in &batches {
                        for piece in batch {
                            if stopped.load(Ordering::SeqCst) {
                                outcome = Some(Ok(()));
                                break 'batches;
                            }
                            if let Err(e) = step(&mut state, piece) {
                                outcome = Some(Err(e));
                                break 'batches;
                            }
                        }
                    }
                    (state, step, outcome)
                });
                let (back, again, outcome) = match job.await {
                    Ok(returned) => returned,
                    // The step panicked (or the runtime is shutting down): end this task
                    // the same way, and `finish` reports the stage gone.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => std::panic::resume_unwind(Box::new("stage job cancelled")),
                };
                if let Some(outcome) = outcome {
                    return (back, outcome);
                }
                (state, step) = (back, again);
            }
            (state, Ok(()))
        });
        Self {
            tx: Some(tx),
            batch: Vec::new(),
            batched: 0,
            length: 0,
            worker: Some(worker),
            stop,
            stopped: Some(gone),
        }
    }

    /// A signal that resolves once the stage's thread has returned — also when the stage
    /// is dropped unfinished and the step under way still runs. Whoever must not let
    /// another writer in before this stage is done with its state (the upload's lease)
    /// waits on it. `None` after the first call.
    pub fn stopped(&mut self) -> Option<StageStopped> {
        self.stopped.take()
    }

    /// Bytes fed so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Feeds the next bytes (waits when the stage is [`DEPTH`] batches behind). `Err`
    /// means the stage stopped (a step failed): call [`Stage::finish`] for the error.
    pub async fn feed(&mut self, data: Bytes) -> Result<(), StageGone> {
        self.length += data.len() as u64;
        self.batched += data.len();
        self.batch.push(data);
        if self.batched >= BATCH_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<(), StageGone> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        let tx = self.tx.as_ref().ok_or(StageGone)?;
        tx.send(batch).await.map_err(|_| StageGone)
    }

    /// Waits until the stage has processed everything fed (or stopped at an error) and
    /// returns its state and outcome.
    pub async fn finish(mut self) -> Result<StageResult<S, E>, StageGone> {
        // A stage that stopped early refuses the rest; its result says why.
        let _ = self.send().await;
        drop(self.tx.take());
        let worker = self.worker.take().ok_or(StageGone)?;
        worker.await.map_err(|_| StageGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tus::checksum::{ChunkHasher, HashPlan};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hashing_stage_equals_hashing_in_line() {
        // Frames of awkward sizes, across several batches.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        let mut inline = ChunkHasher::new(HashPlan::Trailer);
        let mut stage = Stage::start(ChunkHasher::new(HashPlan::Trailer), |h, b| {
            h.update(b);
            Ok::<(), ()>(())
        });
        let mut at = 0;
        let sizes = [1usize, 16_384, 100_000, 7, 262_144, 300_001];
        for (i, size) in sizes.iter().cycle().enumerate() {
            if at >= data.len() {
                break;
            }
            let end = (at + size + i % 3).min(data.len());
            inline.update(&data[at..end]);
            stage
                .feed(Bytes::copy_from_slice(&data[at..end]))
                .await
                .unwrap();
            at = end;
        }
        assert_eq!(stage.length(), data.len() as u64);
        let (parallel, outcome) = stage.finish().await.unwrap();
        assert!(outcome.is_ok());
        assert_eq!(parallel.length(), inline.length());
        assert_eq!(parallel.finish(None).unwrap(), inline.finish(None).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_fed_leaves_the_state_untouched() {
        let stage = Stage::start(0u64, |n, b| {
            *n += b.len() as u64;
            Ok::<(), ()>(())
        });
        let (n, outcome) = stage.finish().await.unwrap();
        assert_eq!((n, outcome), (0, Ok(())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_stage_stops_before_its_next_piece() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let mut stage = Stage::start((), move |_, b| {
            // The first piece is under way when the stage is dropped.
            if b[0] == 0 {
                let _ = started_tx.send(());
                let _ = go_rx.recv();
            }
            let _ = seen_tx.send(b[0]);
            Ok::<(), ()>(())
        });
        for i in 0..4u8 {
            stage.feed(Bytes::from(vec![i; BATCH_BYTES])).await.unwrap();
        }
        started_rx.recv().unwrap();
        drop(stage);
        go_tx.send(()).unwrap();
        let seen: Vec<u8> = seen_rx.iter().collect();
        assert_eq!(seen, vec![0], "only the piece under way was processed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_resolves_only_after_the_step_under_way_of_a_dropped_stage() {
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let mut stage = Stage::start((), move |_, _| {
            let _ = started_tx.send(());
            let _ = go_rx.recv();
            finished.store(true, Ordering::SeqCst);
            Ok::<(), ()>(())
        });
        let mut stopped = stage.stopped().unwrap();
        assert!(stage.stopped().is_none(), "one signal per stage");
        stage
            .feed(Bytes::from(vec![1u8; BATCH_BYTES]))
            .await
            .unwrap();
        started_rx.recv().unwrap();
        drop(stage);
        assert!(
            stopped
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty),
            "the step under way has not returned yet"
        );
        go_tx.send(()).unwrap();
        let _ = stopped.await;
        assert!(
            done.load(Ordering::SeqCst),
            "the signal came after the step returned"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_step_stops_the_stage_and_reports_its_error() {
        // Fails on the second piece; pieces after it are never seen.
        let mut stage = Stage::start(Vec::<u8>::new(), |seen, b| {
            if b[0] == 2 {
                return Err("refused");
            }
            seen.push(b[0]);
            Ok(())
        });
        let mut fed_after_stop = false;
        for i in 1..=200u8 {
            let piece = Bytes::from(vec![i; BATCH_BYTES]);
            if stage.feed(piece).await.is_err() {
                fed_after_stop = true;
                break;
            }
        }
        assert!(fed_after_stop, "feeding a stopped stage fails");
        let (seen, outcome) = stage.finish().await.unwrap();
        assert_eq!(seen, vec![1]);
        assert_eq!(outcome, Err("refused"));
    }
}
