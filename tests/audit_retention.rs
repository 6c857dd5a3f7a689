#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retention and archive of the audit journal (issue 11 item 8): sealed segments past
//! `audit.retention` move to `audit.archive_dir`, closed by a signed checkpoint, and the
//! chain verifies across the archive and the live journal.
//!
//! Time is injected: the sweep takes "now" as a parameter (`SweepOptions::now`), so a
//! trail written a moment ago is "older than the retention" without sleeping. Trails are
//! real chain entries appended to a real journal with 64 KiB segments; `audit verify` and
//! `audit archive` are the real binary on a config naming the same data directory.
//!
//! - archive after the retention, then `verify --archive` intact across both, and
//!   `verify` without it says the prefix is archived; the closing checkpoint verifies;
//! - `--dry-run` (library and CLI) changes nothing; nothing is archived when retention is
//!   off, or nothing is old enough; the open segment is never archived;
//! - an archived segment edited → located; deleted → the gap reported; a gap at the
//!   boundary → reported;
//! - a crash at each step of a sweep (injected) → the journal still reads and verifies,
//!   and the next sweep completes;
//! - the gateway restarts over an archived journal, appends, verifies, and answers queries
//!   and traces from the live part;
//! - config refusals.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sallyport::audit::archive::{self, CrashPoint, SweepOptions};
use sallyport::audit::chain::{Body, GENESIS_PREV, seal};
use sallyport::audit::checkpointer::CheckpointKey;
use sallyport::audit::journal::Journal;
use sallyport::audit::log::{AppendOutcome, AuditLog};
use serde_json::{Value, json};

use support::{Gateway, cli_output};

const DAY: Duration = Duration::from_secs(86_400);
const SEGMENT: u64 = 64 << 10;
const UPLOAD: &str = "0rqavgd9xcsax9c1an02wss78p";

/// A data directory with a journal, a config file naming it, and an archive directory.
struct Trail {
    dir: tempfile::TempDir,
    journal: Arc<Journal>,
    /// The next entry's seq and prev hash.
    next: u64,
    prev: [u8; 32],
}

impl Trail {
    fn new() -> Self {
        Self::with_config("retention = \"1d\"\narchive_dir = \"{archive}\"\n")
    }

    /// `audit` is the `[audit]` section's extra lines (`{archive}` is replaced).
    fn with_config(audit: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let audit = audit.replace("{archive}", dir.path().join("archive").to_str().unwrap());
        std::fs::write(
            dir.path().join("sallyport.toml"),
            format!(
                "data_dir = {:?}\n{}\n[audit]\nsegment_bytes = \"64KiB\"\n{audit}\n[log]\nformat = \"text\"\nlevel = \"warn\"\n",
                data.display().to_string(),
                support::clients_toml()
            ),
        )
        .unwrap();
        let journal = Journal::open(&data.join("audit").join("audit"), "audit", SEGMENT).unwrap();
        Self {
            dir,
            journal: Arc::new(journal),
            next: 1,
            prev: GENESIS_PREV,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sallyport.toml")
    }

    fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("audit").join("audit")
    }

    fn key(&self) -> CheckpointKey {
        CheckpointKey::load_or_generate(
            &self.dir.path().join("data").join("audit-checkpoint.key"),
            false,
        )
        .unwrap()
    }

    /// Appends `n` real chain entries, timed now, in batches of 10.
    async fn append(&mut self, n: u64, action: &str, subject: Option<&str>) {
        let actor = json!({"kind": "system"});
        let details = json!({"pad": "x".repeat(200)});
        let time = sallyport::audit::now_rfc3339();
        let mut left = n;
        while left > 0 {
            let take = left.min(10);
            let first = self.next;
            let mut batch = Vec::new();
            for _ in 0..take {
                let (line, hash) = seal(&Body {
                    v: 1,
                    seq: self.next,
                    time: &time,
                    instance: "retention-test",
                    action,
                    outcome: "success",
                    actor: &actor,
                    request_id: None,
                    client_addr: None,
                    peer_addr: None,
                    subject,
                    details: &details,
                    prev: hex::encode(self.prev),
                })
                .unwrap();
                batch.push(line);
                self.prev = hash;
                self.next += 1;
            }
            assert_eq!(
                self.journal.append(first, &batch).await.unwrap(),
                AppendOutcome::Appended { first }
            );
            left -= take;
        }
    }

    fn opts(&self, now: SystemTime) -> SweepOptions {
        let mut o = SweepOptions::new(DAY, self.archive());
        o.now = now;
        o
    }

    /// A sweep "two days from now".
    fn sweep_later(
        &self,
        tweak: impl FnOnce(&mut SweepOptions),
    ) -> Result<Option<archive::Swept>, archive::ArchiveError> {
        let mut o = self.opts(SystemTime::now() + 2 * DAY);
        tweak(&mut o);
        archive::sweep(&self.journal, &self.key(), &o)
    }

    fn public_key(&self) -> PathBuf {
        let out = cli_output(&self.config(), &["audit", "public-key"]);
        assert!(out.status.success(), "{out:?}");
        let path = self.dir.path().join("audit.pub");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    fn verify(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["audit", "verify"];
        all.extend_from_slice(args);
        let out = cli_output(&self.config(), &all);
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn verify_archive(&self) -> (i32, String, String) {
        let key = self.public_key();
        self.verify(&[
            "--archive",
            self.archive().to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
        ])
    }
}

/// File names and SHA-256 of every file under `dir` (empty when it does not exist).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    rd.map(|e| {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        (
            name,
            hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap())),
        )
    })
    .collect()
}

fn segs(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_keys()
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

#[tokio::test]
async fn archived_after_retention_and_verified_across_archive_and_live() {
    let mut t = Trail::new();
    t.append(1000, "test.probe", None).await;
    let before = segs(&t.journal_dir());
    assert!(before.len() >= 4, "{before:?}");

    let swept = t
        .sweep_later(|_| {})
        .unwrap()
        .expect("something to archive");
    // Every sealed segment went; the open one stayed.
    assert_eq!(swept.segments, before[..before.len() - 1]);
    assert_eq!(segs(&t.archive()), swept.segments);
    assert_eq!(segs(&t.journal_dir()), before[before.len() - 1..]);
    assert_eq!(swept.first_seq, 1);
    assert_eq!(swept.method, "rename");
    let cp = t.archive().join(&swept.checkpoint);
    assert_eq!(
        swept.checkpoint,
        format!("{:020}.checkpoint", swept.last_seq)
    );
    // The checkpoint is this key's, of the run's last entry.
    let note = t
        .key()
        .verifier()
        .verify(&std::fs::read(&cp).unwrap())
        .unwrap();
    assert_eq!(note.length, swept.last_seq);
    assert_eq!(t.journal.first_seq().await.unwrap(), swept.last_seq + 1);
    // The event it records validates against the schema.
    let ev = serde_json::to_value(swept.event()).unwrap();
    assert_eq!(ev["segments"], json!(swept.segments.len()));

    // The live journal keeps working: appends, head, reads from before the live start.
    t.append(50, "test.probe", None).await;
    assert_eq!(t.journal.head().await.unwrap().unwrap().seq, 1050);
    let page = t.journal.read(1, 5).await.unwrap();
    assert_eq!(page[0].seq, swept.last_seq + 1);

    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("audit chain intact"), "{out}");
    assert!(out.contains("length     1050"), "{out}");
    assert!(
        out.contains(&format!(
            "archive      {} segment(s), entries 1 to {}",
            swept.segments.len(),
            swept.last_seq
        )),
        "{out}"
    );
    assert!(
        out.contains("checkpoints  1 of 1 valid and consistent"),
        "{out}"
    );

    // Without --archive: verified from the live start, and it says so.
    let (code, out, err) = t.verify(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "verified from entry {}: entries 1 to {} are archived",
            swept.last_seq + 1,
            swept.last_seq
        )),
        "{out}"
    );
    // …and the archive's checkpoint still checks the boundary without the archive.
    let key = t.public_key();
    let (code, out, err) = t.verify(&[
        "--checkpoint",
        cp.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("consistent"), "{out}");
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_nothing_young_or_open_is_archived() {
    let mut t = Trail::new();
    t.append(600, "test.probe", None).await;
    let journal_before = snapshot(&t.journal_dir());

    // Dry: the plan, and not a byte changed (no archive directory even).
    let dry = t.sweep_later(|o| o.dry_run = true).unwrap().unwrap();
    assert!(dry.dry_run && !dry.segments.is_empty());
    assert_eq!(snapshot(&t.journal_dir()), journal_before);
    assert!(!t.archive().exists());

    // The CLI's dry run, beside the writer (no lock), real time: nothing is old enough.
    let out = cli_output(&t.config(), &["audit", "archive", "--dry-run", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "null");
    // The real CLI refuses beside a writer that holds the journal.
    let out = cli_output(&t.config(), &["audit", "archive"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another process"),
        "{out:?}"
    );

    // Entries younger than the retention stay.
    assert!(
        archive::sweep(&t.journal, &t.key(), &t.opts(SystemTime::now()))
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&t.journal_dir()), journal_before);

    // A century later everything sealed goes, the open segment never.
    let last = segs(&t.journal_dir()).pop().unwrap();
    let swept = archive::sweep(
        &t.journal,
        &t.key(),
        &t.opts(SystemTime::now() + 36_500 * DAY),
    )
    .unwrap()
    .unwrap();
    assert!(!swept.segments.contains(&last));
    assert_eq!(segs(&t.journal_dir()), vec![last]);
    // A second sweep finds nothing more.
    assert!(t.sweep_later(|_| {}).unwrap().is_none());
}

#[tokio::test]
async fn nothing_is_archived_when_retention_is_off() {
    let mut t = Trail::with_config("");
    t.append(600, "test.probe", None).await;
    let before = snapshot(&t.journal_dir());
    let out = cli_output(&t.config(), &["audit", "archive", "--dry-run"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit.retention is not set"),
        "{out:?}"
    );
    assert_eq!(snapshot(&t.journal_dir()), before);
}

#[tokio::test]
async fn an_edited_archived_segment_is_located_and_a_deleted_one_is_a_gap() {
    let mut t = Trail::new();
    t.append(1000, "test.probe", None).await;
    let swept = t.sweep_later(|_| {}).unwrap().unwrap();
    assert!(swept.segments.len() >= 3);
    let second = t.archive().join(&swept.segments[1]);
    let second_first: u64 = swept.segments[1][..20].parse().unwrap();
    let original = std::fs::read(&second).unwrap();

    // One byte of a payload flipped: the record's checksum fails, located by file,
    // offset and entry.
    let mut edited = original.clone();
    let at = 24 + 12 + 30; // inside the first record's payload
    edited[at] ^= 1;
    std::fs::write(&second, &edited).unwrap();
    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "archive DAMAGED: {} at byte 24 (entry {second_first})",
            second.display()
        )),
        "{err}"
    );
    assert!(err.contains("audit chain BROKEN"), "{err}");
    assert!(
        err.contains(&format!("intact up to entry {}", second_first - 1)),
        "{err}"
    );

    // Deleted: the gap, at the entry that is missing.
    std::fs::remove_file(&second).unwrap();
    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("where {second_first} was expected")),
        "{err}"
    );

    // Restored, it verifies again.
    std::fs::write(&second, &original).unwrap();
    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 0, "{out}\n{err}");
}

#[tokio::test]
async fn a_cut_at_the_boundary_is_reported() {
    let mut t = Trail::new();
    t.append(1000, "test.probe", None).await;
    let swept = t.sweep_later(|_| {}).unwrap().unwrap();
    // The archive's last segment lost: the archive ends early, the live journal starts
    // later, and the base no longer matches the archive.
    let last = t.archive().join(swept.segments.last().unwrap());
    std::fs::remove_file(&last).unwrap();
    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("BOUNDARY"), "{err}");
    assert!(
        err.contains(&format!(
            "the live journal starts at {}",
            swept.last_seq + 1
        )),
        "{err}"
    );
    // The closing checkpoint says the archive should reach its length.
    assert!(
        err.contains("TRUNCATED") || err.contains("UNCHECKED"),
        "{err}"
    );
}

#[tokio::test]
async fn a_crash_at_any_step_loses_nothing_and_the_next_sweep_completes() {
    for (point, copy) in [
        (CrashPoint::AfterCheckpoint, false),
        (CrashPoint::AfterBase, false),
        (CrashPoint::AfterCopy, true),
        (CrashPoint::AfterFirstMove, false),
        (CrashPoint::AfterFirstMove, true),
    ] {
        let mut t = Trail::new();
        t.append(1000, "test.probe", None).await;
        let all = t.journal.read(1, 2000).await.unwrap();
        let e = t
            .sweep_later(|o| {
                o.crash_at = Some(point);
                o.always_copy = copy;
            })
            .unwrap_err();
        assert!(
            matches!(e, archive::ArchiveError::Injected(p) if p == point),
            "{e}"
        );

        // The process died: reopen the journal from the files.
        let dir = t.journal_dir();
        drop(std::mem::replace(
            &mut t.journal,
            Arc::new(Journal::open_read_only(&dir, "audit").unwrap()),
        ));
        t.journal = Arc::new(Journal::open(&dir, "audit", SEGMENT).unwrap());
        // Nothing lost: what the journal and the archive hold together is the chain.
        let first = t.journal.first_seq().await.unwrap();
        let live = t.journal.read(1, 2000).await.unwrap();
        assert_eq!(live[..], all[(first - 1) as usize..], "{point:?}");
        let (code, out, err) = t.verify(&[]);
        assert_eq!(code, 0, "{point:?}: {out}\n{err}");

        // The next sweep (even with a shorter horizon) completes the run.
        let swept = t.sweep_later(|o| o.always_copy = copy).unwrap();
        assert!(swept.is_some(), "{point:?}");
        let (code, out, err) = t.verify_archive();
        assert_eq!(code, 0, "{point:?}: {out}\n{err}");
        assert!(out.contains("length     1000"), "{point:?}: {out}");
        assert!(
            !snapshot(&t.archive()).keys().any(|n| n.ends_with(".tmp")),
            "{point:?}"
        );
        // And the writer appends on.
        t.append(5, "test.probe", None).await;
        assert_eq!(t.journal.head().await.unwrap().unwrap().seq, 1005);
    }
}

#[tokio::test]
async fn the_gateway_restarts_over_an_archive_appends_and_answers_queries_from_the_live_part() {
    let mut t = Trail::with_config(
        "retention = \"1d\"\narchive_dir = \"{archive}\"\narchive_interval = \"1m\"\n",
    );
    t.append(900, "test.probe", None).await;
    t.append(1, "upload.created", Some(UPLOAD)).await;
    let swept = t.sweep_later(|_| {}).unwrap().unwrap();
    t.append(2, "upload.created", Some(UPLOAD)).await;
    let live_upload_seqs = [t.next - 2, t.next - 1];
    let text = std::fs::read_to_string(t.config()).unwrap();
    // The writer's lock goes with it.
    let reader = Arc::new(Journal::open_read_only(&t.journal_dir(), "audit").unwrap());
    drop(std::mem::replace(&mut t.journal, reader));

    // The gateway's own config: the same data directory and audit section.
    let extra: String = text
        .lines()
        .skip_while(|l| !l.starts_with("[audit]"))
        .take_while(|l| !l.starts_with("[log]"))
        .map(|l| format!("{l}\n"))
        .collect();
    let auditor = "sallyport-retention-auditor-token-0123456789";
    let extra = format!(
        "{extra}\n[[clients]]\nname = \"auditor\"\ntoken_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        support::token_hash(auditor)
    );
    for _ in 0..2 {
        let mut gw = Gateway::start_in(t.dir.path(), &extra);
        let client = gw.client();
        let get = |path: String| {
            let req = client.get(gw.url(&path)).bearer_auth(auditor).send();
            async move {
                let r = req.await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, page) = get("/v1/audit/events?action=server.started".into()).await;
        assert_eq!(s, 200, "{page}");
        assert!(!page["entries"].as_array().unwrap().is_empty(), "{page}");
        let (s, trace) = get(format!("/v1/audit/trace/{UPLOAD}")).await;
        assert_eq!(s, 200, "{trace}");
        let seqs: Vec<u64> = trace["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        // The archived mention is not in the live part; the live ones are.
        // (Entry 901 is archived only if its segment was sealed at the sweep.)
        let want: Vec<u64> = std::iter::once(live_upload_seqs[0] - 1)
            .chain(live_upload_seqs)
            .filter(|s| *s > swept.last_seq)
            .collect();
        assert_eq!(seqs, want, "{trace}");
        assert!(seqs.iter().all(|s| *s > swept.last_seq));
        gw.stop();
    }
    let (code, out, err) = t.verify_archive();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("audit chain intact"), "{out}");
}

#[test]
fn retention_config_is_off_by_default_and_refused_when_unsafe() {
    use sallyport::config::Config;
    let env = BTreeMap::new();
    let c = Config::from_toml("", &env).unwrap();
    assert_eq!(c.audit.retention, None);
    let c = Config::from_toml(
        "data_dir = \"/srv/sp\"\n[audit]\nretention = \"6y\"\narchive_dir = \"/mnt/worm/audit\"\n",
        &env,
    )
    .unwrap();
    let r = c.audit.retention.unwrap();
    assert!(r.period >= 6 * 365 * DAY);
    assert_eq!(r.archive_dir, PathBuf::from("/mnt/worm/audit"));
    assert_eq!(r.interval, Duration::from_secs(3600));
    let c = Config::from_toml(
        "[audit]\nretention = \"2190d\"\narchive_dir = \"/a\"\narchive_interval = \"15m\"\n",
        &env,
    )
    .unwrap();
    assert_eq!(c.audit.retention.unwrap().period, 2190 * DAY);

    for (audit, key, says) in [
        (
            "retention = \"12h\"\narchive_dir = \"/a\"",
            "audit.retention",
            "less than 1 day",
        ),
        (
            "retention = \"0s\"\narchive_dir = \"/a\"",
            "audit.retention",
            "less than 1 day",
        ),
        (
            "retention = \"forever\"\narchive_dir = \"/a\"",
            "audit.retention",
            "not a duration",
        ),
        ("retention = \"6y\"", "audit.archive_dir", "required"),
        (
            "retention = \"6y\"\narchive_dir = \"\"",
            "audit.archive_dir",
            "empty",
        ),
        (
            "retention = \"6y\"\narchive_dir = \"/srv/sp/audit/audit\"",
            "audit.archive_dir",
            "journal's directory or inside it",
        ),
        (
            "retention = \"6y\"\narchive_dir = \"/srv/sp/audit/audit/old\"",
            "audit.archive_dir",
            "journal's directory or inside it",
        ),
        (
            "retention = \"6y\"\narchive_dir = \"/srv/sp/x/../audit/audit\"",
            "audit.archive_dir",
            "journal's directory or inside it",
        ),
        (
            "archive_dir = \"/a\"",
            "audit.archive_dir",
            "audit.retention is not",
        ),
        (
            "archive_interval = \"1h\"",
            "audit.archive_interval",
            "audit.retention is not",
        ),
        (
            "retention = \"6y\"\narchive_dir = \"/a\"\narchive_interval = \"10s\"",
            "audit.archive_interval",
            "1m to 7d",
        ),
        (
            "retention = \"6y\"\narchive_dir = \"/a\"\nstore = \"state\"",
            "audit.retention",
            "audit.store",
        ),
        ("retention_days = 10", "retention_days", ""),
    ] {
        let text = format!("data_dir = \"/srv/sp\"\n[audit]\n{audit}\n");
        let err = Config::from_toml(&text, &env).unwrap_err().to_string();
        assert!(
            err.contains(key) && err.contains(says),
            "{audit:?} -> {err}"
        );
    }
}
