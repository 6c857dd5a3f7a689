//! The batch service's storage: batch records (compare-and-swap, indexed by owner and
//! state), member bindings (indexed by batch and by batch + name), the per-member facts of
//! a seal in progress, and the documents (manifest, provenance, report) as encrypted
//! at-rest objects holding their exact bytes. A small cache keeps parsed manifests, which
//! never change once a batch is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::record::{BatchId, BatchRecord, BatchRecordError, Document, MemberBinding, MemberFacts};
use crate::at_rest::{AtRest, AtRestError};
use crate::ids::OpaqueId;
use crate::manifest::{Manifest, ManifestLimits};
use crate::state::{CasOutcome, Expect, IndexEntry, Namespace, PutOptions, StateError, StateStore};
use crate::tus::record::UploadId;

/// Batch records.
pub const BATCHES: Namespace = Namespace::new("batch");
/// Member bindings, by upload id.
pub const MEMBERS: Namespace = Namespace::new("batch_member");
/// Facts of a seal in progress, by `{batch}.{upload}`.
pub const FACTS: Namespace = Namespace::new("batch_facts");
/// Index of batch records by owner.
pub const INDEX_OWNER: &str = "owner";
/// Index of batch records by state.
pub const INDEX_STATE: &str = "state";
/// Index of bindings and facts by batch.
pub const INDEX_BATCH: &str = "batch";
/// Index of bindings by `{batch}/{member}`.
pub const INDEX_MEMBER: &str = "member";

const MANIFEST_CACHE: usize = 256;

/// Why the batch store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A document could not be stored or read.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// A stored record is unusable.
    #[error(transparent)]
    Record(#[from] BatchRecordError),
    /// A stored binding, facts record or manifest is unusable.
    #[error("a stored batch document is unusable: {0}")]
    Corrupt(&'static str),
}

/// Storage shared by the service and the membership port.
#[derive(Debug, Clone)]
pub struct BatchStore {
    state: Arc<dyn StateStore>,
    at_rest: AtRest,
    limits: ManifestLimits,
    manifests: Arc<Mutex<HashMap<BatchId, Arc<Manifest>>>>,
}

impl BatchStore {
    /// The store.
    pub fn new(state: Arc<dyn StateStore>, at_rest: AtRest, limits: ManifestLimits) -> Self {
        Self {
            state,
            at_rest,
            limits,
            manifests: Arc::default(),
        }
    }

    /// The state store (for leases).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// The at-rest layer.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    // --- records ---

    /// The record and its version.
    pub async fn get(&self, id: BatchId) -> Result<Option<(BatchRecord, u64)>, StoreError> {
        let Some(v) = self.state.get(BATCHES, &id.to_string()).await? else {
            return Ok(None);
        };
        let record = BatchRecord::decode(&v.value)?;
        if record.id != id {
            return Err(StoreError::Corrupt(
                "a batch record is stored under another id",
            ));
        }
        Ok(Some((record, v.version)))
    }

    /// Writes `record` if the stored version is `expect`; `false` when another write won.
    pub async fn put(&self, record: &BatchRecord, expect: Expect) -> Result<bool, StoreError> {
        let options = PutOptions {
            ttl: None,
            index: vec![
                IndexEntry::new(INDEX_OWNER, record.owner.clone()),
                IndexEntry::new(INDEX_STATE, record.state.as_str()),
            ],
        };
        let outcome = self
            .state
            .put(
                BATCHES,
                &record.id.to_string(),
                &record.encode(),
                expect,
                options,
            )
            .await?;
        Ok(matches!(outcome, CasOutcome::Applied(_)))
    }

    /// Deletes a record nobody has learnt of (its `batch.opened` entry could not be
    /// written) and its documents, so no unrecorded batch stays.
    pub async fn forget(&self, record: &BatchRecord) -> Result<(), StoreError> {
        self.state
            .delete(BATCHES, &record.id.to_string(), Expect::Any)
            .await?;
        self.at_rest.delete(record.manifest.object).await?;
        if let Some(p) = &record.provenance {
            self.at_rest.delete(p.object).await?;
        }
        Ok(())
    }

    /// Batch ids by index entry (or all), ascending, after `after`.
    pub async fn list(
        &self,
        entry: Option<IndexEntry>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(match entry {
            Some(e) => self.state.list_index(BATCHES, &e, after, limit).await?,
            None => self.state.list(BATCHES, after, limit).await?,
        })
    }

    // --- documents ---

    /// Stores `bytes` as an encrypted object.
    pub async fn put_document(&self, bytes: &[u8]) -> Result<Document, StoreError> {
        let object = OpaqueId::random();
        self.at_rest.put(object, bytes).await?;
        Ok(Document {
            object,
            sha256: hex::encode(Sha256::digest(bytes)),
            len: bytes.len() as u64,
        })
    }

    /// A stored document's exact bytes.
    pub async fn read_document(&self, doc: &Document) -> Result<Bytes, StoreError> {
        let reader = self.at_rest.open_reader(doc.object).await?;
        let bytes = reader.read_range(0, reader.len()).await?;
        if hex::encode(Sha256::digest(&bytes)) != doc.sha256 {
            return Err(StoreError::Corrupt(
                "a stored document differs from its digest",
            ));
        }
        Ok(bytes)
    }

    /// The batch's parsed manifest (cached: manifests never change).
    pub async fn manifest(&self, record: &BatchRecord) -> Result<Arc<Manifest>, StoreError> {
        if let Some(m) = self.cache().get(&record.id) {
            return Ok(m.clone());
        }
        let bytes = self.read_document(&record.manifest).await?;
        // The manifest was accepted under the limits of its day; a lower limit configured
        // since must not make a stored batch unreadable.
        let limits = ManifestLimits {
            max_manifest_bytes: usize::MAX,
            max_members: crate::manifest::MAX_MEMBERS,
            ..self.limits
        };
        let manifest = Arc::new(
            Manifest::parse(&bytes, &limits)
                .map_err(|_| StoreError::Corrupt("a stored manifest does not parse"))?,
        );
        let mut cache = self.cache();
        if cache.len() >= MANIFEST_CACHE {
            cache.clear();
        }
        cache.insert(record.id, manifest.clone());
        Ok(manifest)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<BatchId, Arc<Manifest>>> {
        // A poisoned cache only means a panic elsewhere mid-insert; the map is still valid.
        self.manifests.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- bindings ---

    /// Binds `binding.upload` to its batch and member.
    pub async fn bind(&self, binding: &MemberBinding) -> Result<(), StoreError> {
        let options = PutOptions {
            ttl: None,
            index: vec![
                IndexEntry::new(INDEX_BATCH, binding.batch.to_string()),
                IndexEntry::new(INDEX_MEMBER, member_key(binding.batch, &binding.member)),
            ],
        };
        let value = serde_json::to_vec(binding).map_err(|_| StoreError::Corrupt("binding"))?;
        self.state
            .put(
                MEMBERS,
                &binding.upload.to_string(),
                &value,
                Expect::Any,
                options,
            )
            .await?;
        Ok(())
    }

    /// Removes a binding.
    pub async fn unbind(&self, upload: UploadId) -> Result<(), StoreError> {
        self.state
            .delete(MEMBERS, &upload.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// The binding of `upload`, if it is a member.
    pub async fn binding(&self, upload: UploadId) -> Result<Option<MemberBinding>, StoreError> {
        let Some(v) = self.state.get(MEMBERS, &upload.to_string()).await? else {
            return Ok(None);
        };
        let b: MemberBinding =
            serde_json::from_slice(&v.value).map_err(|_| StoreError::Corrupt("binding"))?;
        if b.upload != upload {
            return Err(StoreError::Corrupt(
                "a binding is stored under another upload",
            ));
        }
        Ok(Some(b))
    }

    /// The uploads bound to `member` of `batch`.
    pub async fn bound(&self, batch: BatchId, member: &str) -> Result<Vec<UploadId>, StoreError> {
        let entry = IndexEntry::new(INDEX_MEMBER, member_key(batch, member));
        let ids = self.state.list_index(MEMBERS, &entry, None, 1000).await?;
        Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Every binding of `batch`, ascending by upload id.
    pub async fn bindings(&self, batch: BatchId) -> Result<Vec<MemberBinding>, StoreError> {
        let entry = IndexEntry::new(INDEX_BATCH, batch.to_string());
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .state
                .list_index(MEMBERS, &entry, after.as_deref(), 500)
                .await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(out);
            };
            for id in &ids {
                let Ok(upload) = id.parse::<UploadId>() else {
                    continue;
                };
                if let Some(b) = self.binding(upload).await?
                    && b.batch == batch
                {
                    out.push(b);
                }
            }
            after = Some(last);
        }
    }

    // --- facts of a seal in progress ---

    /// The stored facts of one member upload.
    pub async fn facts(
        &self,
        batch: BatchId,
        upload: UploadId,
    ) -> Result<Option<MemberFacts>, StoreError> {
        let Some(v) = self.state.get(FACTS, &facts_key(batch, upload)).await? else {
            return Ok(None);
        };
        let facts =
            serde_json::from_slice(&v.value).map_err(|_| StoreError::Corrupt("member facts"))?;
        Ok(Some(facts))
    }

    /// Stores the facts of one member upload.
    pub async fn put_facts(&self, batch: BatchId, facts: &MemberFacts) -> Result<(), StoreError> {
        let options = PutOptions {
            ttl: None,
            index: vec![IndexEntry::new(INDEX_BATCH, batch.to_string())],
        };
        let value = serde_json::to_vec(facts).map_err(|_| StoreError::Corrupt("member facts"))?;
        self.state
            .put(
                FACTS,
                &facts_key(batch, facts.upload),
                &value,
                Expect::Any,
                options,
            )
            .await?;
        Ok(())
    }

    /// Deletes the facts of a finished seal.
    pub async fn clear_facts(
        &self,
        batch: BatchId,
        uploads: &[UploadId],
    ) -> Result<(), StoreError> {
        for upload in uploads {
            self.state
                .delete(FACTS, &facts_key(batch, *upload), Expect::Any)
                .await?;
        }
        Ok(())
    }
}

fn member_key(batch: BatchId, member: &str) -> String {
    format!("{batch}/{member}")
}

fn facts_key(batch: BatchId, upload: UploadId) -> String {
    format!("{batch}.{upload}")
}
