//! The random-access reader of finished objects.
//!
//! Opening checks the header, the DEK's key reference and the key commitment (constant
//! time), applies the length rule to the blob length and authenticates the final segment,
//! so [`Reader::len`] is authenticated before any byte is served. A range read fetches
//! exactly the stored segments it touches in one blob read, decrypts them in place and
//! packs their plaintext together; the final segment is opened with the final flag, so a
//! read reaching the end verifies it again.
//!
//! Not here: HTTP range parsing ([`crate::range`]), objects still being written (their
//! data blob has no final segment, so opening one fails with [`AtRestError::NotFinished`]).

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream};

use super::AtRestError;
use super::format::{
    FinishedLayout, FormatError, HEADER_LEN, Header, ObjectKeys, SEGMENT_OVERHEAD, segment_offset,
};
use super::tail::{TailRecord, TailState};
use crate::blob::{BlobId, BlobStore};
use crate::ids::OpaqueId;
use crate::keys::Dek;
use crate::keys::record::DekRecord;

/// The largest range one [`Reader::read_range`] returns; larger ranges are streamed.
pub const MAX_READ: u64 = 64 * 1024 * 1024;
/// Plaintext bytes per item of [`Reader::stream_range`] (rounded to whole segments).
pub const STREAM_CHUNK: u64 = 1024 * 1024;

/// Reads a finished object. Cheap to clone (shares its keys).
#[derive(Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

struct Inner {
    blob: Arc<dyn BlobStore>,
    data: BlobId,
    keys: ObjectKeys,
    layout: FinishedLayout,
    blob_len: u64,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("object", &self.inner.keys.object)
            .field("len", &self.inner.layout.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub(crate) async fn open(
        blob: Arc<dyn BlobStore>,
        object: OpaqueId,
        record: &DekRecord,
        dek: Dek,
    ) -> Result<Self, AtRestError> {
        let data = BlobId::data(object);
        let blob_len = blob.len(data).await?;
        if blob_len < HEADER_LEN as u64 {
            return Err(FormatError::HeaderTruncated.into());
        }
        let header = Header::decode(&blob.read_range(data, 0, HEADER_LEN as u64).await?)?;
        let keys = header.unlock(object, &record.dek_id, &dek)?;
        drop(dek);
        let layout = match FinishedLayout::from_blob_len(blob_len, keys.segment_size) {
            Ok(layout) => layout,
            Err(e) => {
                // Tell "still being written" apart from a damaged object.
                return Err(if is_open(&*blob, object, &keys).await {
                    AtRestError::NotFinished
                } else {
                    e.into()
                });
            }
        };
        let reader = Self {
            inner: Arc::new(Inner {
                blob,
                data,
                keys,
                layout,
                blob_len,
            }),
        };
        // Authenticate the final segment now: it fixes the length.
        let s = u64::from(reader.inner.keys.segment_size.get());
        reader
            .decrypt(layout.full * s, layout.final_len, layout.full, layout.full)
            .await?;
        Ok(reader)
    }

    /// The plaintext length (authenticated).
    pub fn len(&self) -> u64 {
        self.inner.layout.plaintext_len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The object's plaintext segment size.
    pub fn segment_size(&self) -> u32 {
        self.inner.keys.segment_size.get()
    }

    /// `len` plaintext bytes at `offset`, decrypting exactly the segments they touch.
    pub async fn read_range(&self, offset: u64, len: u64) -> Result<Bytes, AtRestError> {
        let object_len = self.len();
        if offset > object_len || len > object_len - offset {
            return Err(AtRestError::Range {
                offset,
                len,
                object_len,
            });
        }
        if len > MAX_READ {
            return Err(AtRestError::ReadTooLarge { limit: MAX_READ });
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let s = u64::from(self.segment_size());
        self.decrypt(offset, len, offset / s, (offset + len - 1) / s)
            .await
    }

    /// The same bytes as [`Reader::read_range`], as a stream of chunks of about 1 MiB, for
    /// ranges of any size. Each chunk is decrypted when polled.
    pub fn stream_range(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, AtRestError>> + Send + 'static, AtRestError> {
        let object_len = self.len();
        if offset > object_len || len > object_len - offset {
            return Err(AtRestError::Range {
                offset,
                len,
                object_len,
            });
        }
        let s = u64::from(self.segment_size());
        let chunk = STREAM_CHUNK.div_ceil(s) * s;
        let end = offset + len;
        let reader = self.clone();
        Ok(stream::try_unfold(offset, move |at| {
            let reader = reader.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                // Chunks end on segment boundaries so no segment is decrypted twice.
                let stop = ((at / chunk + 1) * chunk).min(end);
                let bytes = reader
                    .decrypt(at, stop - at, at / s, (stop - 1) / s)
                    .await?;
                Ok(Some((bytes, stop)))
            }
        }))
    }

    /// Decrypts segments `first..=last` and returns plaintext `offset..offset + len`
    /// (which lies inside them).
    async fn decrypt(
        &self,
        offset: u64,
        len: u64,
        first: u64,
        last: u64,
    ) -> Result<Bytes, AtRestError> {
        let inner = &*self.inner;
        let s = inner.keys.segment_size;
        let seg = u64::from(s.get());
        let start = segment_offset(first, s);
        let stop = if last >= inner.layout.full {
            inner.blob_len
        } else {
            segment_offset(last + 1, s)
        };
        let stored = inner
            .blob
            .read_range(inner.data, start, stop - start)
            .await?;
        if stored.len() as u64 != stop - start {
            return Err(FormatError::InvalidLength(inner.blob_len).into());
        }
        let mut buf = match stored.try_into_mut() {
            Ok(buf) => buf,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        let mut plain = 0usize;
        for index in first..=last {
            let is_final = index == inner.layout.full;
            let stored_len = if is_final {
                inner.layout.final_len as usize + SEGMENT_OVERHEAD
            } else {
                s.stride() as usize
            };
            let src = ((index - first) * s.stride()) as usize;
            plain += inner
                .keys
                .open_segment_within(index, is_final, &mut buf, plain, src, stored_len)?;
        }
        let skip = (offset - first * seg) as usize;
        buf.truncate(plain);
        let bytes = buf.freeze();
        Ok(bytes.slice(skip..skip + len as usize))
    }
}

/// Whether the object's tail record authenticates and says it is still open.
async fn is_open(blob: &dyn BlobStore, object: OpaqueId, keys: &ObjectKeys) -> bool {
    let id = BlobId::tail(object);
    let Ok(len) = blob.len(id).await else {
        return false;
    };
    if len > super::tail::max_sealed_len(keys.segment_size) {
        return false;
    }
    match blob.read_range(id, 0, len).await {
        Ok(bytes) => TailRecord::open(keys, &bytes).is_ok_and(|t| t.state == TailState::Open),
        Err(_) => false,
    }
}
