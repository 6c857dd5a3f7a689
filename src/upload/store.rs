//! How the upload engine keeps its state in the [`StateStore`]:
//!
//! | namespace | id | value | index |
//! |---|---|---|---|
//! | `upload` | upload id | [`UploadRecord::encode`] | `owner` = principal; `open_owner` = principal while unfinished |
//! | `upload_chunk` | `<upload id>.<index, 16 digits>` | a ledger [`ChunkEntry`] as JSON | `upload` = upload id |
//! | `upload_pending` | upload id | [`Pending`] as JSON | — |
//! | `upload_part_ledgers` | final upload id | its parts' ledgers (JSON array), copied at concatenation | — |
//! | `upload_quota` (counter) | principal | bytes its uploads hold (`quota.rs`) | — |
//! | `upload_claimed` | upload id | marker: an artifact took the upload's bytes off the quota | — |
//!
//! **Write-ahead for chunks.** Bytes become durable at the at-rest writer's commit, but
//! the upload record and ledger are separate writes. So before committing bytes the
//! engine stores a [`Pending`] record holding the upload record *as it will be* and the
//! ledger entry; after the commit it applies them and deletes the pending record. After a
//! crash in between, [`Pending`] and the at-rest writer's committed length say exactly
//! which state is true (see `Uploads::reconcile`), so no acknowledged chunk is ever lost
//! and no unacknowledged one is ledgered with a wrong digest.
//!
//! **Syncs.** A chunk that does not complete its upload makes one durable state write:
//! the record update, before the answer. The pending record, the object's commit point
//! (a deferred tail record, `at_rest_tail`, written by the at-rest writer) and the ledger
//! entry are written deferred just before it, so all of them are one commit on the
//! embedded store, and the pending record's deletion is deferred to the store's next
//! durable write (see [`StateStore::put_deferred`]). The chunk that completes the upload
//! writes its pending record durably first (`patch.rs`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::state::{
    CasOutcome, Expect, IndexEntry, Namespace, PutOptions, StateError, StateStore, Versioned,
};
use crate::tus::ledger::ChunkEntry;
use crate::tus::record::{UploadId, UploadRecord};

/// Upload records.
pub const UPLOADS: Namespace = Namespace::new("upload");
/// Ledger entries.
pub const CHUNKS: Namespace = Namespace::new("upload_chunk");
/// Write-ahead records of chunks being committed.
pub const PENDING: Namespace = Namespace::new("upload_pending");
/// A final upload's copy of its parts' ledgers, taken when it was concatenated (so the
/// final keeps them even after the parts are deleted).
pub const PART_LEDGERS: Namespace = Namespace::new("upload_part_ledgers");

/// Why stored upload state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Stored bytes are not what this code wrote.
    #[error("stored upload state is corrupt: {0}")]
    Corrupt(String),
    /// The record changed although this request holds the upload's lease.
    #[error("the upload record changed under the lease")]
    Changed,
}

/// A chunk being committed: the record and ledger entry to apply once the bytes are durable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The record's offset before the chunk.
    pub from_offset: u64,
    /// The record after the chunk (its `sha256` is filled in from the finished object
    /// when the chunk completes the upload).
    pub record: UploadRecord,
    /// The ledger entry, when the chunk has bytes.
    pub entry: Option<ChunkEntry>,
    /// The chunk completes the upload.
    pub completes: bool,
    /// The chunk's audit entry rides in the audit outbox (`audit::outbox`) on the same
    /// commit as the record: once the record is applied, the entry is durable and on its
    /// way to the chain, so a pending record left by a crash writes no entry again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outboxed: bool,
}

/// Typed access to the upload namespaces.
#[derive(Debug, Clone)]
pub struct UploadStore {
    state: Arc<dyn StateStore>,
}

fn index_for(record: &UploadRecord) -> Vec<IndexEntry> {
    let mut index = vec![IndexEntry::new("owner", record.owner.clone())];
    if !record.is_complete() {
        index.push(IndexEntry::new("open_owner", record.owner.clone()));
    }
    index
}

fn chunk_id(upload: UploadId, index: u64) -> String {
    format!("{upload}.{index:016}")
}

impl UploadStore {
    /// Wraps the state store.
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// The record and its version.
    pub async fn get(&self, id: UploadId) -> Result<Option<(UploadRecord, u64)>, StoreError> {
        match self.state.get(UPLOADS, &id.to_string()).await? {
            None => Ok(None),
            Some(Versioned { value, version }) => {
                let record =
                    UploadRecord::decode(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(Some((record, version)))
            }
        }
    }

    /// Stores a new record; `false` if the id exists.
    pub async fn create(&self, record: &UploadRecord) -> Result<bool, StoreError> {
        let options = PutOptions {
            ttl: None,
            index: index_for(record),
        };
        let out = self
            .state
            .put(
                UPLOADS,
                &record.id.to_string(),
                &record.encode(),
                Expect::Absent,
                options,
            )
            .await?;
        Ok(matches!(out, CasOutcome::Applied(_)))
    }

    /// Replaces the record at `version`; returns the new version.
    pub async fn update(&self, record: &UploadRecord, version: u64) -> Result<u64, StoreError> {
        let options = PutOptions {
            ttl: None,
            index: index_for(record),
        };
        match self
            .state
            .put(
                UPLOADS,
                &record.id.to_string(),
                &record.encode(),
                Expect::Version(version),
                options,
            )
            .await?
        {
            CasOutcome::Applied(v) => Ok(v),
            CasOutcome::Conflict(_) => Err(StoreError::Changed),
        }
    }

    /// Deletes the record.
    pub async fn delete(&self, id: UploadId) -> Result<(), StoreError> {
        self.state
            .delete(UPLOADS, &id.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// Deletes the record if it is still at `version`; whether this call deleted it.
    pub async fn delete_at(&self, id: UploadId, version: u64) -> Result<bool, StoreError> {
        let out = self
            .state
            .delete(UPLOADS, &id.to_string(), Expect::Version(version))
            .await?;
        Ok(matches!(out, CasOutcome::Applied(_)))
    }

    /// How many unfinished uploads `owner` has (stops counting past `cap`).
    pub async fn open_count(&self, owner: &str, cap: usize) -> Result<usize, StoreError> {
        let entry = IndexEntry::new("open_owner", owner.to_owned());
        Ok(self
            .state
            .list_index(UPLOADS, &entry, None, cap)
            .await?
            .len())
    }

    /// Upload ids after `after`, for the sweeper.
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(self.state.list(UPLOADS, after, limit).await?)
    }

    /// Stores a ledger entry (idempotent: the same index is the same entry), deferred: it
    /// is durable once the caller's next durable write is, which must be the upload
    /// record's [`UploadStore::update`] that accounts for it (so the entry and the record
    /// become durable in one commit, and a crash keeps both or only the entry, which the
    /// pending record then completes).
    pub async fn put_chunk(&self, upload: UploadId, entry: &ChunkEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let options = PutOptions {
            ttl: None,
            index: vec![IndexEntry::new("upload", upload.to_string())],
        };
        self.state
            .put_deferred(
                CHUNKS,
                &chunk_id(upload, entry.index),
                &bytes,
                Expect::Any,
                options,
            )
            .await?;
        Ok(())
    }

    /// The upload's ledger entries in index order.
    pub async fn chunks(&self, upload: UploadId) -> Result<Vec<ChunkEntry>, StoreError> {
        let entry = IndexEntry::new("upload", upload.to_string());
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .state
                .list_index(CHUNKS, &entry, after.as_deref(), 1000)
                .await?;
            if ids.is_empty() {
                return Ok(out);
            }
            for id in &ids {
                if let Some(v) = self.state.get(CHUNKS, id).await? {
                    let chunk: ChunkEntry = serde_json::from_slice(&v.value)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    out.push(chunk);
                }
            }
            after = ids.last().cloned();
        }
    }

    /// Up to `limit` of the upload's ledger entries after the store id `after`, in index
    /// order, and the store id of the last one (to pass as `after` for the next page).
    pub async fn chunks_page(
        &self,
        upload: UploadId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ChunkEntry>, Option<String>), StoreError> {
        let entry = IndexEntry::new("upload", upload.to_string());
        let ids = self.state.list_index(CHUNKS, &entry, after, limit).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(v) = self.state.get(CHUNKS, id).await? {
                let chunk: ChunkEntry = serde_json::from_slice(&v.value)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(chunk);
            }
        }
        Ok((out, ids.last().cloned()))
    }

    /// Deletes every ledger entry of the upload.
    pub async fn delete_chunks(&self, upload: UploadId) -> Result<(), StoreError> {
        let entry = IndexEntry::new("upload", upload.to_string());
        loop {
            let ids = self.state.list_index(CHUNKS, &entry, None, 1000).await?;
            if ids.is_empty() {
                return Ok(());
            }
            for id in &ids {
                self.state.delete(CHUNKS, id, Expect::Any).await?;
            }
        }
    }

    /// Stores a final upload's copy of its parts' ledgers.
    pub async fn set_part_ledgers(
        &self,
        upload: UploadId,
        parts: &[crate::tus::ledger::PartLedger],
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(parts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.state
            .put(
                PART_LEDGERS,
                &upload.to_string(),
                &bytes,
                Expect::Any,
                PutOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// A final upload's copy of its parts' ledgers.
    pub async fn part_ledgers(
        &self,
        upload: UploadId,
    ) -> Result<Option<Vec<crate::tus::ledger::PartLedger>>, StoreError> {
        match self.state.get(PART_LEDGERS, &upload.to_string()).await? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v.value)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    /// Deletes a final upload's copy of its parts' ledgers.
    pub async fn delete_part_ledgers(&self, upload: UploadId) -> Result<(), StoreError> {
        self.state
            .delete(PART_LEDGERS, &upload.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// The pending chunk, if a commit was under way.
    pub async fn pending(&self, upload: UploadId) -> Result<Option<Pending>, StoreError> {
        match self.state.get(PENDING, &upload.to_string()).await? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v.value)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    /// Writes the pending chunk (durably, before the bytes are committed).
    pub async fn set_pending(&self, upload: UploadId, pending: &Pending) -> Result<(), StoreError> {
        let bytes = Self::encode_pending(pending)?;
        self.state
            .put(
                PENDING,
                &upload.to_string(),
                &bytes,
                Expect::Any,
                PutOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// A pending chunk as stored: what [`UploadStore::set_pending_deferred`] writes, and
    /// what the writer seals as the commit's note (`patch.rs`).
    pub fn encode_pending(pending: &Pending) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(pending).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Writes a pending chunk (encoded by [`UploadStore::encode_pending`]) deferred:
    /// durable with the store's next durable write (the upload record's), for a commit
    /// whose note in the object's commit point says the same (`patch.rs`).
    pub async fn set_pending_deferred(
        &self,
        upload: UploadId,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        self.state
            .put_deferred(
                PENDING,
                &upload.to_string(),
                encoded,
                Expect::Any,
                PutOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Clears the pending chunk.
    pub async fn clear_pending(&self, upload: UploadId) -> Result<(), StoreError> {
        self.state
            .delete(PENDING, &upload.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// Clears the pending chunk of a commit that is applied and audited, deferred: a crash
    /// before the store's next durable write may bring the record back, and then the
    /// next request under the lease only writes the chunk's audit entries again, marked
    /// recovered (entries are written at least once). Costs no sync of its own.
    pub async fn clear_pending_deferred(&self, upload: UploadId) -> Result<(), StoreError> {
        self.state
            .delete_deferred(PENDING, &upload.to_string(), Expect::Any)
            .await?;
        Ok(())
    }
}
