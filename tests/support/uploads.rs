//! The real upload engine in-process: `sallyport::upload::Uploads` over the library's
//! `MemoryStore` and the in-memory blob store, with a static KEK and a real auditor. Tests
//! that need whole uploads (records, commits, ledgers, concatenation) drive this instead of
//! a model of the engine, so they cannot drift from `src/upload.rs`.
//!
//! Must be created inside a tokio runtime (the auditor's writer is a task).

use sallyport::http::problem::Describe;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use sallyport::at_rest::{AtRest, SegmentSize};
use sallyport::audit::{Actor, AuditContext, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::memory::MemoryStore;
use sallyport::tus::concat::BasePath;
use sallyport::tus::ledger::LedgerDocument;
use sallyport::tus::record::{UploadId, UploadRecord};
use sallyport::tus::{Requester, TusError, TusLimits};
use sallyport::upload::{Caller, UploadError, UploadSettings, Uploads};

use super::at_rest::fresh_keys;
use super::mem_blob::MemBlob;

/// The request body the engine takes, from bytes and optional trailers. The one place a
/// test body is built: when the engine takes any `http_body::Body`, only this changes.
pub fn body(bytes: &[u8], trailers: Option<HeaderMap>) -> axum::body::Body {
    use http_body_util::StreamBody;
    let mut frames = vec![Ok::<_, std::convert::Infallible>(http_body::Frame::data(
        Bytes::copy_from_slice(bytes),
    ))];
    if let Some(t) = trailers {
        frames.push(Ok(http_body::Frame::trailers(t)));
    }
    axum::body::Body::new(StreamBody::new(futures_util::stream::iter(frames)))
}

/// The caller a handler would build for `who`.
pub fn caller(who: Requester<'_>) -> Caller {
    Caller {
        bounds: None,
        name: who.name.to_owned(),
        admin: who.admin,
        audit: AuditContext {
            actor: Actor::Client {
                name: who.name.to_owned(),
                auth_method: None,
            },
            request_id: None,
            client_addr: None,
            peer_addr: None,
        },
    }
}

/// The protocol refusal inside an engine error (panics on any other error: these tests
/// expect the engine's own failures never to happen).
pub fn tus_error(e: UploadError) -> TusError {
    match e {
        UploadError::Tus { error, .. } => error,
        other => panic!("expected a tus refusal, got {other:?}"),
    }
}

/// The HTTP status of a refusal, as the error table answers it.
pub fn status(e: UploadError) -> u16 {
    tus_error(e).problem().status.as_u16()
}

/// The engine and its stores.
pub struct Engine {
    pub uploads: Uploads,
    pub state: Arc<MemoryStore>,
    pub blobs: Arc<MemBlob>,
    at_rest: AtRest,
}

impl Engine {
    /// An engine with these protocol limits, under `/files/`.
    pub fn new(limits: TusLimits) -> Self {
        let blobs = Arc::new(MemBlob::default());
        Self::over(limits, blobs.clone(), blobs)
    }

    /// An engine whose objects go through `store` (a wrapper of `blobs`, say).
    pub fn over(
        limits: TusLimits,
        blobs: Arc<MemBlob>,
        store: Arc<dyn sallyport::blob::BlobStore>,
    ) -> Self {
        let state = Arc::new(MemoryStore::new());
        let at_rest = AtRest::new(
            store,
            state.clone(),
            fresh_keys(),
            SegmentSize::new(4096).unwrap(),
        );
        let auditor = Auditor::start(
            sallyport::audit::log::StateLog::shared(state.clone()),
            "test".into(),
            16,
            Arc::new(Metrics::new()),
        );
        let settings = UploadSettings {
            limits,
            base: BasePath::default(),
            lease_ttl: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(30),
            min_body_rate: 1024,
            completed_retention: std::time::Duration::from_secs(30 * 86_400),
            max_open_per_principal: 100,
            max_bytes_per_principal: 1 << 40,
            cors_origins: Vec::new(),
        };
        let artifacts = sallyport::artifact::Artifacts::new(state.clone());
        let uploads = Uploads::new(state.clone(), at_rest.clone(), auditor, artifacts, settings);
        Self {
            uploads,
            state,
            blobs,
            at_rest,
        }
    }

    /// `POST /files/` by `who`; the created record.
    pub async fn post(
        &self,
        headers: &HeaderMap,
        bytes: &[u8],
        who: Requester<'_>,
    ) -> Result<UploadRecord, UploadError> {
        let outcome = self
            .uploads
            .create(&caller(who), headers, body(bytes, None))
            .await?;
        Ok(outcome.record)
    }

    /// A bodiless creation by `who` with `extra` headers; its id.
    pub async fn create(&self, extra: &[(&str, &str)], who: Requester<'_>) -> UploadId {
        let headers = super::tus_core::post_headers(extra);
        self.post(&headers, b"", who).await.unwrap().id
    }

    /// `PATCH /files/{id}` by `who` with `bytes` and optional trailers; the record after.
    pub async fn patch(
        &self,
        id: UploadId,
        headers: &HeaderMap,
        bytes: &[u8],
        trailers: Option<HeaderMap>,
        who: Requester<'_>,
    ) -> Result<UploadRecord, UploadError> {
        let outcome = self
            .uploads
            .patch(&caller(who), id, headers, body(bytes, trailers))
            .await?;
        Ok(outcome.record)
    }

    /// The stored record (no access check).
    pub async fn record(&self, id: UploadId) -> UploadRecord {
        self.uploads
            .record(id)
            .await
            .unwrap()
            .expect("the upload exists")
    }

    /// The ledger as its owner (or an admin) sees it.
    pub async fn ledger(&self, id: UploadId, who: Requester<'_>) -> LedgerDocument {
        self.uploads.ledger(&caller(who), id).await.unwrap()
    }

    /// The upload's plaintext, read back through the at-rest layer.
    pub async fn content(&self, id: UploadId) -> Vec<u8> {
        let reader = self.at_rest.open_reader(id.opaque()).await.unwrap();
        reader.read_range(0, reader.len()).await.unwrap().to_vec()
    }
}
