//! A folder of write-once objects in an S3-compatible bucket, for records the gateway must
//! never overwrite: its signed audit checkpoints (`audit::checkpointer`).
//!
//! Every object is created with a conditional PUT (`If-None-Match: *`): an object of that
//! name that already exists is never replaced, and the create fails with
//! `io::ErrorKind::AlreadyExists`. That stops the gateway overwriting a record by mistake;
//! it does not stop a holder of its keys deleting one. A folder meant to outlive a
//! compromised gateway lives in a bucket with S3 Object Lock (compliance mode), which no
//! key can undo before the retention ends (`docs/deployment.md`).
//!
//! The folder is reached with the `[blob]` store's endpoint, region, keys and CA, in the
//! blob bucket or another one on the same endpoint.
//!
//! Not here: what the objects hold (the caller), the blob store itself (`super`).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::errors::redact;
use super::settings::S3Settings;

/// Write-once objects under `{prefix}{folder}/` of one bucket.
pub struct WriteOnceFolder {
    store: Arc<dyn ObjectStore>,
    /// `{prefix}{folder}`, no trailing `/`.
    root: String,
    /// `s3://bucket/root/`, for messages.
    location: String,
}

impl std::fmt::Debug for WriteOnceFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOnceFolder")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl WriteOnceFolder {
    /// The folder `folder` (one path segment) under the store's prefix in `bucket`,
    /// reached with `settings`' endpoint, region, keys and CA.
    pub fn open(settings: &S3Settings, bucket: &str, folder: &str) -> io::Result<Self> {
        let mut settings = settings.clone();
        settings.bucket = bucket.to_owned();
        let store = super::open::amazon_s3(&settings)
            .map_err(|e| io::Error::other(format!("opening s3://{bucket}: {e}")))?;
        Ok(Self::over(
            Arc::new(store),
            bucket,
            &format!("{}{folder}", settings.prefix),
        ))
    }

    /// A folder at `root` (no trailing `/`) of any `object_store` (tests).
    pub fn over(store: Arc<dyn ObjectStore>, bucket: &str, root: &str) -> Self {
        let root = root.trim_end_matches('/').to_owned();
        Self {
            location: format!("s3://{bucket}/{root}/"),
            store,
            root,
        }
    }

    /// `s3://bucket/root/`, for logs and messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, name: &str) -> io::Result<Path> {
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an object name (letters, digits, '-', '_', '.')"),
            ));
        }
        Ok(Path::from(format!("{}/{name}", self.root)))
    }

    /// Creates object `name` holding `bytes`, never replacing one: an existing object is
    /// `io::ErrorKind::AlreadyExists`. Durable when it returns (S3 acknowledges a PUT once
    /// the object is stored).
    pub async fn create(&self, name: &str, bytes: Bytes) -> io::Result<()> {
        let key = self.key(name)?;
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from(bytes), create)
            .await
        {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}{name} already exists", self.location),
            )),
            Err(e) => Err(io::Error::other(format!(
                "creating {}{name}: {}",
                self.location,
                redact(&e.to_string())
            ))),
        }
    }

    /// The names of the folder's objects (directly under it), sorted.
    pub async fn names(&self) -> io::Result<Vec<String>> {
        let mut names = self.first_names(usize::MAX).await?;
        names.sort();
        Ok(names)
    }

    /// The first `limit` names in the store's listing order (ascending by key, as S3
    /// lists), fetching only the listing pages they are on.
    pub async fn first_names(&self, limit: usize) -> io::Result<Vec<String>> {
        let root = Path::from(self.root.as_str());
        let mut listing = self.store.list(Some(&root));
        let mut names = Vec::new();
        while names.len() < limit {
            let Some(meta) = listing.try_next().await.map_err(|e| {
                io::Error::other(format!(
                    "listing {}: {}",
                    self.location,
                    redact(&e.to_string())
                ))
            })?
            else {
                break;
            };
            if let Some(name) = meta
                .location
                .as_ref()
                .strip_prefix(&self.root)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|name| !name.contains('/'))
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Object `name`'s bytes, refused when it is larger than `max` bytes.
    pub async fn read(&self, name: &str, max: u64) -> io::Result<Bytes> {
        let key = self.key(name)?;
        let failed = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}{name} not found", self.location),
            ),
            e => io::Error::other(format!(
                "reading {}{name}: {}",
                self.location,
                redact(&e.to_string())
            )),
        };
        let got = self.store.get(&key).await.map_err(failed)?;
        if got.meta.size > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}{name} is {} bytes, more than {max}",
                    self.location, got.meta.size
                ),
            ));
        }
        got.bytes().await.map_err(failed)
    }
}
