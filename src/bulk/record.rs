//! The stored shape of the Bulk flow (`proto/bulk-v1.md` §6): publications (a batch bound
//! to a client and a level) and jobs (one kick-off and where it stands). Versioned JSON in
//! the state store, owned by this module; a job's record expires with the job (the
//! store's TTL), so a forgotten job is simply absent on every instance.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::request::Level;
use crate::batch::BatchId;
use crate::ids::{IdError, OpaqueId};
use crate::state::{CasOutcome, Expect, Namespace, PutOptions, StateError, StateStore};

/// The record encoding version.
pub const RECORD_VERSION: u32 = 1;
/// Publications, by id.
pub const PUBLICATIONS: Namespace = Namespace::new("bulk_publication");
/// The current publication of a `(client, level)`: `{client}:{level}` → publication id.
pub const CURRENT: Namespace = Namespace::new("bulk_current");
/// Jobs, by id.
pub const JOBS: Namespace = Namespace::new("bulk_job");

macro_rules! id_type {
    ($name:ident) => {
        /// A server-generated [`OpaqueId`].
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(OpaqueId);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(OpaqueId::random())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                s.parse().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id_type!(PublicationId);
id_type!(JobId);

/// A batch published for a client at a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    /// Encoding version.
    pub v: u32,
    /// Its id.
    pub id: PublicationId,
    /// The batch.
    pub batch: BatchId,
    /// The SMART client it is for.
    pub client_id: String,
    /// The export level.
    pub level: Level,
    /// The publisher (issuer of the grants behind the manifests' links).
    pub publisher: String,
    /// When (Unix seconds).
    pub created_at: u64,
    /// When it stops binding new jobs (Unix seconds).
    pub expires_at: u64,
    /// The member files as artifacts, once registered (after the batch's release).
    #[serde(default)]
    pub files: Option<Vec<FileRecord>>,
}

/// One delivered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// The artifact id.
    pub artifact: String,
    /// The FHIR resource type.
    pub resource_type: String,
    /// Records (lines).
    pub count: u64,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// One kick-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Encoding version.
    pub v: u32,
    /// Its id.
    pub id: JobId,
    /// The SMART client that kicked it off (the only one that sees it).
    pub client_id: String,
    /// The export level.
    pub level: Level,
    /// `_type`, if given.
    pub types: Option<Vec<String>>,
    /// `_since`, if given.
    pub since: Option<String>,
    /// The kick-off request URL (the manifest's `request`).
    pub request: String,
    /// The scope granted to the token that kicked it off.
    pub scope: String,
    /// When (Unix seconds).
    pub created_at: u64,
    /// When it is forgotten (Unix seconds).
    pub expires_at: u64,
    /// The publication it is bound to, once one matched.
    pub publication: Option<PublicationId>,
    /// No poll is answered before this (Unix milliseconds).
    pub next_poll_ms: u64,
    /// With `bulk.requires_access_token`: the grant behind the manifest's file URLs,
    /// issued at the first complete answer and kept for the job's life (its signed links
    /// never leave the gateway; the file endpoint signs them per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<JobGrant>,
}

/// The grant behind a job's token-protected file URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobGrant {
    /// The grant id.
    pub id: String,
    /// When it expires (Unix seconds); a poll after that issues a new one.
    pub expires: u64,
}

/// Why a stored record is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A record does not decode, or is stored under another id.
    #[error("a stored bulk record is unusable: {0}")]
    Corrupt(&'static str),
}

/// The Bulk flow's records in the state store.
#[derive(Debug, Clone)]
pub struct BulkStore {
    state: Arc<dyn StateStore>,
}

impl BulkStore {
    /// The store over `state`.
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// Stores a new publication and makes it the current one of its client and level.
    pub async fn publish(&self, p: &Publication, now: u64) -> Result<(), RecordError> {
        let ttl = Some(Duration::from_secs(p.expires_at.saturating_sub(now).max(1)));
        let value = serde_json::to_vec(p).map_err(|_| RecordError::Corrupt("publication"))?;
        self.state
            .put(
                PUBLICATIONS,
                &p.id.to_string(),
                &value,
                Expect::Absent,
                PutOptions {
                    ttl,
                    index: Vec::new(),
                },
            )
            .await?;
        self.state
            .put(
                CURRENT,
                &current_key(&p.client_id, &p.level),
                p.id.to_string().as_bytes(),
                Expect::Any,
                PutOptions {
                    ttl,
                    index: Vec::new(),
                },
            )
            .await?;
        Ok(())
    }

    /// The current publication for `client_id` at `level`.
    pub async fn current(
        &self,
        client_id: &str,
        level: &Level,
    ) -> Result<Option<PublicationId>, RecordError> {
        let Some(v) = self
            .state
            .get(CURRENT, &current_key(client_id, level))
            .await?
        else {
            return Ok(None);
        };
        let id = std::str::from_utf8(&v.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(RecordError::Corrupt("current publication"))?;
        Ok(Some(id))
    }

    /// A publication and its version.
    pub async fn publication(
        &self,
        id: PublicationId,
    ) -> Result<Option<(Publication, u64)>, RecordError> {
        let Some(v) = self.state.get(PUBLICATIONS, &id.to_string()).await? else {
            return Ok(None);
        };
        let p: Publication =
            serde_json::from_slice(&v.value).map_err(|_| RecordError::Corrupt("publication"))?;
        if p.id != id {
            return Err(RecordError::Corrupt("a publication under another id"));
        }
        Ok(Some((p, v.version)))
    }

    /// Records the files of a publication (compare-and-swap); `false` when another write
    /// won.
    pub async fn set_files(
        &self,
        p: &Publication,
        version: u64,
        now: u64,
    ) -> Result<bool, RecordError> {
        let value = serde_json::to_vec(p).map_err(|_| RecordError::Corrupt("publication"))?;
        let ttl = Some(Duration::from_secs(p.expires_at.saturating_sub(now).max(1)));
        let outcome = self
            .state
            .put(
                PUBLICATIONS,
                &p.id.to_string(),
                &value,
                Expect::Version(version),
                PutOptions {
                    ttl,
                    index: Vec::new(),
                },
            )
            .await?;
        Ok(matches!(outcome, CasOutcome::Applied(_)))
    }

    /// A job and its version.
    pub async fn job(&self, id: JobId) -> Result<Option<(Job, u64)>, RecordError> {
        let Some(v) = self.state.get(JOBS, &id.to_string()).await? else {
            return Ok(None);
        };
        let j: Job = serde_json::from_slice(&v.value).map_err(|_| RecordError::Corrupt("job"))?;
        if j.id != id {
            return Err(RecordError::Corrupt("a job under another id"));
        }
        Ok(Some((j, v.version)))
    }

    /// Writes a job if `expect` holds: its new version, or `None` when another write won.
    /// The record lives until the job's `expires_at`.
    pub async fn put_job(
        &self,
        j: &Job,
        expect: Expect,
        now: u64,
    ) -> Result<Option<u64>, RecordError> {
        let value = serde_json::to_vec(j).map_err(|_| RecordError::Corrupt("job"))?;
        let ttl = Some(Duration::from_secs(j.expires_at.saturating_sub(now).max(1)));
        let outcome = self
            .state
            .put(
                JOBS,
                &j.id.to_string(),
                &value,
                expect,
                PutOptions {
                    ttl,
                    index: Vec::new(),
                },
            )
            .await?;
        Ok(match outcome {
            CasOutcome::Applied(version) => Some(version),
            _ => None,
        })
    }

    /// Deletes a job.
    pub async fn delete_job(&self, id: JobId) -> Result<(), RecordError> {
        self.state
            .delete(JOBS, &id.to_string(), Expect::Any)
            .await?;
        Ok(())
    }
}

fn current_key(client_id: &str, level: &Level) -> String {
    format!("{client_id}:{}", level.key())
}
