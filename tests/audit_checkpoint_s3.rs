#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Signed audit checkpoints in the S3-compatible store (`audit.checkpoint_bucket`), against
//! the moto server of `support::s3`:
//!
//! - each checkpoint is an object in its key's folder, named so that a listing returns the
//!   newest first, that this key verifies;
//! - a writer restarted over a cut log, with no checkpoint directory, halts before its first
//!   append from the highest checkpoint it finds in the bucket; a note under a name that
//!   does not say its length, or signed by another key, is not taken for it;
//! - an object is never overwritten: one planted at a checkpoint's name stays as it was,
//!   and the failed write is counted; the same state checkpointed by another instance with
//!   the same key is accepted, a different one under that name is not.

mod support;

use support::audit_probe::emit;

use std::sync::Arc;
use std::time::Duration;

use sallyport::audit::checkpointer::{CheckpointKey, Checkpointer, bucket_folder, object_name};
use sallyport::audit::log::StateLog;
use sallyport::audit::{AUDIT_LOG, AuditError, Auditor};
use sallyport::blob::s3::write_once::WriteOnceFolder;
use sallyport::metrics::Metrics;
use sallyport::state::StateStore;
use sallyport::state::memory::MemoryStore;
use support::s3::{BUCKET, S3Test};

/// The bucket folder of the key with id `kid`.
fn folder(s3: &S3Test, kid: &str) -> WriteOnceFolder {
    WriteOnceFolder::open(&s3.settings(5 << 20), BUCKET, &bucket_folder(kid)).unwrap()
}

fn key(dir: &std::path::Path) -> CheckpointKey {
    CheckpointKey::load_or_generate(&dir.join("audit-checkpoint.key"), false).unwrap()
}

/// A checkpointer every `every` entries, to the bucket only (no directory).
fn to_bucket(
    s3: &S3Test,
    dir: &std::path::Path,
    every: u64,
    metrics: &Arc<Metrics>,
) -> Checkpointer {
    let key = key(dir);
    let kid = key.key_id_hex();
    Checkpointer::new(key, every, Duration::from_secs(3600), None, metrics.clone())
        .with_bucket(folder(s3, &kid))
}

/// The failure counter's sample line.
fn failures(metrics: &Metrics) -> String {
    let text = metrics.encode();
    text.lines()
        .find(|l| l.starts_with("sallyport_audit_checkpoint_failures"))
        .unwrap_or_else(|| panic!("no failure counter in\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn checkpoints_in_the_bucket_verify_and_stop_a_writer_restarted_over_a_cut_log() {
    let Some(s3) = S3Test::require() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kid = key(dir.path()).key_id_hex();
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new());
    let mut first = to_bucket(&s3, dir.path(), 2, &metrics);
    first.recall_bucket().await.unwrap();
    let first = Auditor::start_with(
        StateLog::shared(store.clone()),
        "t".into(),
        1,
        metrics.clone(),
        Some(first),
    );
    for n in 1..=5 {
        emit(&first, n).await.unwrap();
    }
    // Entries 2 and 4 were checkpointed, each stored before the next append returned.
    let ours = folder(&s3, &kid);
    let names = ours.first_names(10).await.unwrap();
    assert_eq!(names, vec![object_name(4), object_name(2)], "newest first");
    assert_eq!(
        object_name(4),
        "18446744073709551611-00000000000000000004.checkpoint"
    );
    let verifier = key(dir.path()).verifier();
    let newest = ours.read(&names[0], 16 << 10).await.unwrap();
    let cp = verifier.verify(&newest).unwrap();
    assert_eq!(cp.length, 4);
    let oldest = ours.read(&names[1], 16 << 10).await.unwrap();
    // An old note copied under a newer name is passed over: the writer knows 4, not 2.
    ours.create(&object_name(9), oldest).await.unwrap();
    let mut probe = to_bucket(&s3, dir.path(), 2, &metrics);
    probe.recall_bucket().await.unwrap();
    assert_eq!(probe.last_known().map(|(len, _)| len), Some(4));
    let head = store.log_head(AUDIT_LOG).await.unwrap().unwrap();
    assert_eq!(head.seq, 5);
    assert_eq!(
        failures(&metrics),
        "sallyport_audit_checkpoint_failures_total 0"
    );
    drop(first);

    // The tail is cut to 3 while the gateway is down; a writer with no checkpoint
    // directory learns from the bucket that 4 was signed, and halts before appending.
    store.truncate_log(AUDIT_LOG, 3);
    let metrics = Arc::new(Metrics::new());
    let mut second = to_bucket(&s3, dir.path(), 2, &metrics);
    second.recall_bucket().await.unwrap();
    let second = Auditor::start_with(
        StateLog::shared(store.clone()),
        "t".into(),
        1,
        metrics.clone(),
        Some(second),
    );
    let e = emit(&second, 6).await.unwrap_err();
    assert!(
        matches!(e, AuditError::Halted(ref r) if r.seen_seq == 4 && r.found_seq == 3),
        "{e:?}"
    );
    let head = store.log_head(AUDIT_LOG).await.unwrap().unwrap();
    assert_eq!(head.seq, 3, "nothing appended over the cut");

    // Another key's note planted in this key's folder is not this writer's to trust.
    let other = tempfile::tempdir().unwrap();
    let other_kid = key(other.path()).key_id_hex();
    folder(&s3, &other_kid)
        .create(&object_name(4), newest)
        .await
        .unwrap();
    let mut third = to_bucket(&s3, other.path(), 2, &metrics);
    third.recall_bucket().await.unwrap();
    assert_eq!(third.last_known(), None);
}

#[tokio::test]
async fn a_checkpoint_object_is_never_overwritten() {
    let Some(s3) = S3Test::require() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kid = key(dir.path()).key_id_hex();
    let name = object_name(7);
    folder(&s3, &kid)
        .create(&name, "planted\n".into())
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut cp = to_bucket(&s3, dir.path(), 1, &metrics);
    cp.on_append(7, &[7; 32]).await;
    assert_eq!(
        failures(&metrics),
        "sallyport_audit_checkpoint_failures_total 1"
    );
    let there = folder(&s3, &kid).read(&name, 1 << 10).await.unwrap();
    assert_eq!(&there[..], b"planted\n", "overwritten");

    // Another instance with the same key checkpointing the same state: accepted.
    let same = object_name(8);
    let other_metrics = Arc::new(Metrics::new());
    let mut other = to_bucket(&s3, dir.path(), 1, &other_metrics);
    other.on_append(8, &[8; 32]).await;
    cp.on_append(8, &[8; 32]).await;
    assert_eq!(
        failures(&other_metrics),
        "sallyport_audit_checkpoint_failures_total 0"
    );
    assert_eq!(
        failures(&metrics),
        "sallyport_audit_checkpoint_failures_total 1"
    );
    let first = folder(&s3, &kid).read(&same, 16 << 10).await.unwrap();
    // A different head under that name: refused, the object unchanged.
    let mut third = to_bucket(&s3, dir.path(), 1, &metrics);
    third.on_append(8, &[9; 32]).await;
    assert_eq!(
        failures(&metrics),
        "sallyport_audit_checkpoint_failures_total 2"
    );
    assert_eq!(
        folder(&s3, &kid).read(&same, 16 << 10).await.unwrap(),
        first
    );

    // Names that are not object names are refused before any request.
    for bad in ["", "..", "a/b", "x y"] {
        let e = folder(&s3, &kid).create(bad, "x".into()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
}
