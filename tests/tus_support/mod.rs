//! Shared by the tus core tests: a small in-memory model of the upload handler that drives
//! `sallyport::tus` exactly as the real handler will (parse, plan, hash, verify, commit),
//! with maps instead of the state store and blob store.
// Each test file uses a different subset of this module; `allow-unwrap-in-tests` covers
// #[test] functions only, not these helpers.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub use std::collections::HashMap;
pub use std::time::Duration;

pub use http::{HeaderMap, HeaderName, HeaderValue};
pub use sha2::{Digest, Sha256};

pub use sallyport::tus::checksum::Checksum;
pub use sallyport::tus::concat::{BasePath, UploadConcat};
pub use sallyport::tus::dates::Timestamp;
pub use sallyport::tus::headers::{self, OFFSET_OCTET_STREAM};
pub use sallyport::tus::ledger::{ChunkEntry, LedgerDocument, PartLedger};
pub use sallyport::tus::metadata::{Metadata, MetadataLimits};
pub use sallyport::tus::plan::{self, Commit};
pub use sallyport::tus::record::{UploadId, UploadRecord};
pub use sallyport::tus::request::{CreateRequest, DeclaredLength, PatchRequest};
pub use sallyport::tus::{Requester, TusError, TusLimits};

pub const T0: i64 = 1_700_000_000;
pub const ALICE: Requester<'static> = Requester {
    name: "clinic-7",
    admin: false,
};
pub const MALLORY: Requester<'static> = Requester {
    name: "lab-9",
    admin: false,
};
pub const ADMIN: Requester<'static> = Requester {
    name: "ops",
    admin: true,
};

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs).unwrap()
}

pub fn limits() -> TusLimits {
    TusLimits {
        max_size: 1000,
        expire_after: Duration::from_secs(3600),
        metadata: MetadataLimits {
            max_pairs: 4,
            max_key_len: 16,
            max_decoded_total: 64,
        },
        max_concat_parts: 3,
    }
}

pub fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

pub fn get<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

/// The handler, minus I/O: records, ledgers, plaintext and whole-file hashers in maps.
/// Records go through their stored encoding on every write, as in the state store.
#[derive(Default)]
pub struct Model {
    pub records: HashMap<UploadId, UploadRecord>,
    pub ledgers: HashMap<UploadId, Vec<ChunkEntry>>,
    pub parts: HashMap<UploadId, Vec<PartLedger>>,
    pub data: HashMap<UploadId, Vec<u8>>,
    pub whole: HashMap<UploadId, Sha256>,
}

impl Model {
    pub fn store(&mut self, record: UploadRecord) {
        let stored = UploadRecord::decode(&record.encode()).unwrap();
        assert_eq!(stored, record);
        self.records.insert(record.id, stored);
    }

    pub fn post(
        &mut self,
        h: &HeaderMap,
        body: &[u8],
        id: UploadId,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, TusError> {
        let base = BasePath::default();
        match CreateRequest::from_headers(h, &base, &limits())? {
            CreateRequest::Upload(new) => {
                let created = plan::plan_create(&new, id, who, now, &limits())?;
                if created.body.is_none() && !body.is_empty() {
                    return Err(TusError::UnsupportedMediaType);
                }
                self.store(created.record);
                self.whole.insert(id, Sha256::new());
                if let Some(p) = created.body {
                    self.take_body(&p, body, None, who, now)?;
                }
            }
            CreateRequest::Final(new) => {
                let parts: Vec<Option<&UploadRecord>> =
                    new.parts.iter().map(|p| self.records.get(p)).collect();
                let mut fp = plan::plan_concat_final(&new, &parts, id, who, now, &limits())?;
                let mut whole = Sha256::new();
                let mut data = Vec::new();
                let mut ledgers = Vec::new();
                for (part, _) in &fp.parts {
                    whole.update(&self.data[part]);
                    data.extend_from_slice(&self.data[part]);
                    ledgers.push(
                        PartLedger::from_part(&self.records[part], self.ledgers[part].clone())
                            .unwrap(),
                    );
                }
                let digest: [u8; 32] = whole.finalize().into();
                assert!(plan::complete_final(
                    &mut fp.record,
                    &digest,
                    data.len() as u64,
                    now
                ));
                self.store(fp.record);
                self.data.insert(id, data);
                self.parts.insert(id, ledgers);
            }
        }
        Ok(plan::creation_headers(&self.records[&id], &base))
    }

    pub fn patch(
        &mut self,
        id: UploadId,
        h: &HeaderMap,
        body: &[u8],
        trailers: Option<&HeaderMap>,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, TusError> {
        let req = PatchRequest::from_headers(h, &limits())?;
        let record = self.records.get(&id).ok_or(TusError::NotFound)?;
        let p = plan::plan_patch(record, &req, who, now, &limits())?;
        self.take_body(&p, body, trailers, who, now)?;
        Ok(plan::patch_headers(&self.records[&id]))
    }

    /// Streams, verifies, "fsyncs" and commits, as the handler will.
    pub fn take_body(
        &mut self,
        p: &plan::PatchPlan,
        body: &[u8],
        trailers: Option<&HeaderMap>,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Commit, TusError> {
        if body.len() as u64 > p.max_body() {
            return Err(p.too_long());
        }
        let mut hasher = p.hasher();
        for piece in body.chunks(7) {
            hasher.update(piece);
        }
        let expected = p.expected_checksum(trailers)?;
        let digest = hasher.finish(expected.as_ref())?;
        let mut whole = self.whole[&p.upload()].clone();
        whole.update(body);
        let mut record = self.records[&p.upload()].clone();
        // Like the real handler: the whole-file digest only when this chunk completes.
        let completes = p.completes(&record, digest.length);
        let sum: [u8; 32] = whole.clone().finalize().into();
        let commit = p.commit(
            &mut record,
            &digest,
            completes.then_some(&sum),
            who,
            now,
            &limits(),
        )?;
        assert_eq!(commit.completed, completes);
        self.data
            .entry(p.upload())
            .or_default()
            .extend_from_slice(body);
        self.whole.insert(p.upload(), whole);
        if let Some(e) = &commit.entry {
            self.ledgers.entry(p.upload()).or_default().push(e.clone());
        }
        self.store(record);
        Ok(commit)
    }

    pub fn ledger(&self, id: UploadId) -> LedgerDocument {
        let own = self.ledgers.get(&id).cloned().unwrap_or_default();
        let parts = self.parts.get(&id).cloned().unwrap_or_default();
        LedgerDocument::build(&self.records[&id], own, parts).unwrap()
    }
}

pub fn create(m: &mut Model, id: &str, extra: &[(&str, &str)]) -> UploadId {
    let id: UploadId = id.parse().unwrap();
    let mut h = vec![("tus-resumable", "1.0.0")];
    h.extend_from_slice(extra);
    m.post(&hm(&h), b"", id, ALICE, at(0)).unwrap();
    id
}

pub fn patch_headers(offset: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = vec![
        ("tus-resumable", "1.0.0"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("upload-offset", offset),
    ];
    h.extend_from_slice(extra);
    hm(&h)
}

pub const U: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a";
pub const V: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b";
pub const F: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f";
