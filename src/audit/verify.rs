//! Verifying an audit chain against signed checkpoints: pure code, fed entry lines in
//! order from wherever they live (the state store, an export file, a future journal).
//!
//! The chain alone ([`super::chain::Verifier`]) finds an edited, deleted, inserted or
//! reordered entry, but a shortened chain, or one re-hashed from some entry on by whoever
//! can write the store, verifies. A checkpoint signed earlier says "at length L the head
//! hash was H", so:
//!
//! - L greater than the number of entries: the tail was **truncated**;
//! - the chain intact through L but its hash at L is not H: the chain was **rewritten**
//!   (re-hashed, or entries replaced) somewhere after the last consistent checkpoint and
//!   at or before L;
//! - the chain broken before L: that checkpoint cannot be checked (the break is reported).
//!
//! A check may start after an archived prefix ([`ChainCheck::after`]): entries `1..=K` are
//! not pushed, the chain continues from entry K's hash, and a checkpoint at or before K
//! that is not exactly K is reported [`CheckpointStatus::Archived`] (not evidence of
//! tampering: verify with the archive to check it).
//!
//! Not here: reading files or the store, and checking signatures (the caller passes each
//! checkpoint already verified, or the reason it is not: see [`super::checkpoint`]).

use std::collections::BTreeMap;

use super::chain::{ChainError, ChainSummary, Verifier};
use super::checkpoint::{Checkpoint, NoteError};

/// Feeds entry lines to the chain verifier and notes the head at each checkpoint length.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    verifier: Verifier,
    /// Checkpoint lengths, and the head hash found there once the chain reached it.
    heads: BTreeMap<u64, Option<[u8; 32]>>,
    broken: Option<ChainError>,
    /// Every line pushed, intact or not: the log's length.
    lines: u64,
    /// Lines verified intact from the start.
    intact: u64,
    /// The entries before this one were not pushed (an archived prefix): 0 from genesis.
    start: u64,
}

/// A checkpoint given to [`ChainCheck::finish`]: where it came from and what it said.
#[derive(Debug, Clone)]
pub struct CheckpointInput {
    /// A file name, for the report.
    pub source: String,
    /// The verified checkpoint, or why its note was refused.
    pub note: Result<Checkpoint, NoteError>,
}

/// What one checkpoint showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// The chain at its length has its head hash.
    Consistent,
    /// The note was refused (malformed, another key, bad signature, another log).
    Invalid(String),
    /// Its length falls in an archived prefix this check did not read: not compared
    /// (verify with the archive).
    Archived {
        /// Its length.
        length: u64,
        /// The last entry of the prefix not read.
        through: u64,
    },
    /// It claims more entries than the log has: the tail was removed.
    Truncated {
        /// Its length.
        claimed: u64,
        /// How many entries the log has.
        log_length: u64,
    },
    /// The chain is intact through its length but has another head there: rewritten in
    /// `(after, length]`.
    Rewritten {
        /// The last length a checkpoint confirmed before it (0 when none).
        after: u64,
        /// Its length.
        length: u64,
        /// The hash it signed, hex.
        signed: String,
        /// The hash the chain has there, hex.
        found: String,
    },
    /// The chain is broken before its length, so it cannot be compared.
    Unchecked {
        /// Its length.
        length: u64,
    },
}

/// One line of the report per checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFinding {
    /// Where it came from.
    pub source: String,
    /// Its length, when its note was valid.
    pub length: Option<u64>,
    /// The finding.
    pub status: CheckpointStatus,
}

/// The verification's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries verified intact from the start (the chain is intact up to this entry).
    pub intact: ChainSummary,
    /// The first break, if any.
    pub broken: Option<ChainError>,
    /// Number of entries (lines) in the log.
    pub log_length: u64,
    /// Entries `1..=start` were not read here (an archived prefix); 0 when verified from
    /// the first entry.
    pub start: u64,
    /// Each checkpoint, in order of length (invalid ones first).
    pub checkpoints: Vec<CheckpointFinding>,
}

impl Report {
    /// Whether the chain is intact and every checkpoint is valid and consistent.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
            && self.checkpoints.iter().all(|c| {
                matches!(
                    c.status,
                    CheckpointStatus::Consistent | CheckpointStatus::Archived { .. }
                )
            })
    }
}

impl ChainCheck {
    /// A check that will note the head at each of `lengths`.
    pub fn new(lengths: impl IntoIterator<Item = u64>) -> Self {
        Self {
            verifier: Verifier::new(),
            heads: lengths.into_iter().map(|l| (l, None)).collect(),
            broken: None,
            lines: 0,
            intact: 0,
            start: 0,
        }
    }

    /// A check of a chain whose entries `1..=seq` are not pushed (archived): the first
    /// line pushed must be `seq + 1` with `prev` = `hash`. A checkpoint at `seq` is
    /// compared with `hash`.
    pub fn after(seq: u64, hash: [u8; 32], lengths: impl IntoIterator<Item = u64>) -> Self {
        let mut heads: BTreeMap<u64, Option<[u8; 32]>> =
            lengths.into_iter().map(|l| (l, None)).collect();
        if let Some(slot) = heads.get_mut(&seq) {
            *slot = Some(hash);
        }
        Self {
            verifier: Verifier::after(seq, hash),
            heads,
            broken: None,
            lines: seq,
            intact: seq,
            start: seq,
        }
    }

    /// Records a break found below the chain: the next entry's storage is damaged (a
    /// journal record whose checksum fails), at the next position. Entries after it are
    /// still counted.
    pub fn damaged(&mut self, reason: &'static str) {
        self.lines += 1;
        if self.broken.is_none() {
            self.broken = Some(ChainError::Malformed {
                position: self.lines,
                reason,
            });
        }
    }

    /// Entries seen so far (pushed, damaged, or before the start).
    pub fn length(&self) -> u64 {
        self.lines
    }

    /// The hash of the last intact entry, and whether the chain is still intact.
    pub fn head(&self) -> Option<[u8; 32]> {
        self.broken.is_none().then(|| self.verifier.head())
    }

    /// Checks the next entry line. After the first break the rest are only counted.
    pub fn push(&mut self, line: &[u8]) {
        self.lines += 1;
        if self.broken.is_some() {
            return;
        }
        match self.verifier.push(line) {
            Ok(()) => {
                self.intact = self.lines;
                if let Some(slot) = self.heads.get_mut(&self.lines) {
                    *slot = Some(self.verifier.head());
                }
            }
            Err(e) => self.broken = Some(e),
        }
    }

    /// The report, comparing `checkpoints` (of log `origin`) with what was pushed.
    pub fn finish(self, origin: &str, checkpoints: Vec<CheckpointInput>) -> Report {
        // After a break the verifier has counted the broken entry; its head is the last
        // good one.
        let intact = ChainSummary {
            length: self.intact,
            head_hash: hex::encode(self.verifier.head()),
        };
        let mut invalid = Vec::new();
        let mut valid = Vec::new();
        for c in checkpoints {
            match c.note {
                Ok(cp) if cp.origin == origin => valid.push((c.source, cp)),
                Ok(cp) => invalid.push(CheckpointFinding {
                    source: c.source,
                    length: Some(cp.length),
                    status: CheckpointStatus::Invalid(format!(
                        "checkpoint of another log ({:?}, expected {origin:?})",
                        cp.origin
                    )),
                }),
                Err(e) => invalid.push(CheckpointFinding {
                    source: c.source,
                    length: None,
                    status: CheckpointStatus::Invalid(e.to_string()),
                }),
            }
        }
        valid.sort_by_key(|(_, cp)| cp.length);
        let mut confirmed = 0;
        let mut findings = invalid;
        for (source, cp) in valid {
            let status = if cp.length > self.lines {
                CheckpointStatus::Truncated {
                    claimed: cp.length,
                    log_length: self.lines,
                }
            } else if cp.length > intact.length {
                CheckpointStatus::Unchecked { length: cp.length }
            } else if cp.length < self.start {
                CheckpointStatus::Archived {
                    length: cp.length,
                    through: self.start,
                }
            } else {
                let found = if cp.length == 0 {
                    Some(super::chain::GENESIS_PREV)
                } else {
                    self.heads.get(&cp.length).copied().flatten()
                };
                match found {
                    Some(h) if h == cp.head => {
                        confirmed = confirmed.max(cp.length);
                        CheckpointStatus::Consistent
                    }
                    Some(h) => CheckpointStatus::Rewritten {
                        after: confirmed,
                        length: cp.length,
                        signed: cp.head_hex(),
                        found: hex::encode(h),
                    },
                    // Every length given to `new` is noted once reached; a checkpoint
                    // not announced there cannot be compared.
                    None => CheckpointStatus::Unchecked { length: cp.length },
                }
            };
            findings.push(CheckpointFinding {
                source,
                length: Some(cp.length),
                status,
            });
        }
        Report {
            intact,
            broken: self.broken,
            log_length: self.lines,
            start: self.start,
            checkpoints: findings,
        }
    }
}

impl std::fmt::Display for CheckpointStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Consistent => write!(f, "consistent"),
            Self::Invalid(why) => write!(f, "INVALID: {why}"),
            Self::Truncated {
                claimed,
                log_length,
            } => write!(
                f,
                "TRUNCATED: signed at length {claimed}, the log has {log_length} entries — entries {} to {claimed} were removed",
                log_length + 1
            ),
            Self::Rewritten {
                after,
                length,
                signed,
                found,
            } => write!(
                f,
                "REWRITTEN: the chain at length {length} has head {found}, the checkpoint signed {signed} — entries after {after} up to {length} were rewritten or re-hashed"
            ),
            Self::Archived { length, through } => write!(
                f,
                "not checked: entries 1 to {through} are archived (verify with --archive DIR); this one signs {length}"
            ),
            Self::Unchecked { length } => {
                write!(f, "UNCHECKED: the chain is broken before entry {length}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Body, GENESIS_PREV, seal};

    fn chain(n: u64, tag: &str) -> Vec<Vec<u8>> {
        let actor = serde_json::json!({"kind": "system"});
        let details = serde_json::json!({ "tag": tag });
        let mut prev = GENESIS_PREV;
        (1..=n)
            .map(|seq| {
                let (line, hash) = seal(&Body {
                    v: 1,
                    seq,
                    time: "2026-12-06T02:00:00.000Z",
                    instance: "t",
                    action: "test.event",
                    outcome: "success",
                    actor: &actor,
                    request_id: None,
                    client_addr: None,
                    peer_addr: None,
                    subject: None,
                    details: &details,
                    prev: hex::encode(prev),
                })
                .unwrap();
                prev = hash;
                line
            })
            .collect()
    }

    fn cp_at(lines: &[Vec<u8>], length: u64) -> CheckpointInput {
        let mut v = Verifier::new();
        for l in &lines[..length as usize] {
            v.push(l).unwrap();
        }
        CheckpointInput {
            source: format!("{length}"),
            note: Ok(Checkpoint {
                origin: "o".into(),
                length,
                head: v.head(),
                time: "2026-12-06T02:00:00.000Z".into(),
            }),
        }
    }

    fn check(lines: &[Vec<u8>], cps: Vec<CheckpointInput>) -> Report {
        let lengths: Vec<u64> = cps
            .iter()
            .filter_map(|c| c.note.as_ref().ok().map(|c| c.length))
            .collect();
        let mut c = ChainCheck::new(lengths);
        for l in lines {
            c.push(l);
        }
        c.finish("o", cps)
    }

    #[test]
    fn consistent_truncated_and_rewritten_are_told_apart() {
        let lines = chain(10, "a");
        let cps = || vec![cp_at(&lines, 4), cp_at(&lines, 8)];
        let r = check(&lines, cps());
        assert!(r.ok(), "{r:?}");
        // Truncated to 6: the 8 checkpoint says so, the 4 one still holds.
        let r = check(&lines[..6], cps());
        assert!(!r.ok() && r.broken.is_none());
        assert_eq!(r.checkpoints[0].status, CheckpointStatus::Consistent);
        assert_eq!(
            r.checkpoints[1].status,
            CheckpointStatus::Truncated {
                claimed: 8,
                log_length: 6
            }
        );
        // Re-hashed from entry 1 (another chain of the same length): located at the first
        // checkpoint.
        let other = chain(10, "b");
        let r = check(&other, cps());
        assert!(r.broken.is_none());
        assert!(matches!(
            r.checkpoints[0].status,
            CheckpointStatus::Rewritten {
                after: 0,
                length: 4,
                ..
            }
        ));
        // An entry edited at 7: the 4 holds, the 8 cannot be compared, the break is named.
        let mut edited = lines.clone();
        edited[6] = chain(10, "c")[6].clone();
        let r = check(&edited, cps());
        assert!(matches!(
            r.broken,
            Some(ChainError::PrevMismatch { position: 7, .. })
        ));
        assert_eq!(r.intact.length, 6);
        assert_eq!(r.checkpoints[0].status, CheckpointStatus::Consistent);
        assert_eq!(
            r.checkpoints[1].status,
            CheckpointStatus::Unchecked { length: 8 }
        );
    }

    #[test]
    fn a_check_after_an_archived_prefix_links_to_it_and_says_what_it_did_not_read() {
        let lines = chain(10, "a");
        let cps = || vec![cp_at(&lines, 2), cp_at(&lines, 4), cp_at(&lines, 8)];
        let lengths: Vec<u64> = vec![2, 4, 8];
        let mut v = Verifier::new();
        for l in &lines[..4] {
            v.push(l).unwrap();
        }
        let (seq, hash) = Verifier::anchor(&lines[3]).unwrap();
        assert_eq!((seq, hash), (4, v.head()));
        let mut c = ChainCheck::after(seq, hash, lengths.clone());
        for l in &lines[4..] {
            c.push(l);
        }
        let r = c.finish("o", cps());
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.start, r.intact.length, r.log_length), (4, 10, 10));
        assert_eq!(
            r.checkpoints[0].status,
            CheckpointStatus::Archived {
                length: 2,
                through: 4
            }
        );
        // The boundary checkpoint is compared with the anchor.
        assert_eq!(r.checkpoints[1].status, CheckpointStatus::Consistent);
        assert_eq!(r.checkpoints[2].status, CheckpointStatus::Consistent);
        // A live part that does not continue the anchor is a break at the boundary.
        let mut c = ChainCheck::after(seq, hash, lengths.clone());
        c.push(&lines[5]);
        let r = c.finish("o", vec![]);
        assert!(matches!(
            r.broken,
            Some(ChainError::SeqGap {
                position: 5,
                expected: 5,
                found: 6
            })
        ));
        let other = chain(10, "b");
        let mut c = ChainCheck::after(seq, hash, lengths);
        c.push(&other[4]);
        assert!(matches!(
            c.finish("o", vec![]).broken,
            Some(ChainError::PrevMismatch { position: 5, .. })
        ));
        // An anchor whose bytes were edited does not verify on its own.
        let mut edited = lines[3].clone();
        edited[10] ^= 1;
        assert!(Verifier::anchor(&edited).is_err());
        // Damage below the chain is a break at the next position.
        let mut c = ChainCheck::new([]);
        c.push(&lines[0]);
        c.damaged("record damaged");
        let r = c.finish("o", vec![]);
        assert!(matches!(
            r.broken,
            Some(ChainError::Malformed { position: 2, .. })
        ));
        assert_eq!(r.intact.length, 1);
    }
}
