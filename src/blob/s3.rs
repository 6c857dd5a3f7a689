//! The S3-compatible [`BlobStore`]: blobs as sets of immutable piece objects in a bucket,
//! over apache arrow-rs's `object_store` (its AWS client, on reqwest and rustls).
//!
//! # Layout
//!
//! S3 has no append, so a blob is a set of *pieces*
//! `{prefix}blobs/{blob name}/g{generation:020}/{start:020}`, each holding the blob's bytes
//! `[start, start + size)`; the blob is the pieces of its highest generation, contiguous
//! from 0 (`layout`, and `proto/at-rest-v1.md`, "Object storage layout"):
//!
//! - `create` lists the blob (any object: `AlreadyExists`), then writes the empty piece
//!   `g0/0` with a conditional PUT (`If-None-Match: *`), so two creators never both win.
//! - `append` buffers in memory, per blob, and writes a piece whenever the buffer reaches
//!   the piece size; `sync` writes what is buffered as one piece. A PUT that returned
//!   success is durable, and a listing by any other gateway instance sees it: after `sync`
//!   nothing of the blob lives only in this process.
//! - `read_range` GETs only the ranges of the pieces that overlap the request, taking the
//!   pieces from the blob's last listing when this process made one less than
//!   `listings::TTL` (5 s) ago and has not changed the blob since (see "Remembered
//!   listings"), else from a fresh LIST; bytes still buffered here come from memory.
//! - `truncate` deletes pieces past the new end from the highest start down and rewrites
//!   the one that straddles it (a PUT over a key is atomic), so a crash leaves a contiguous
//!   prefix at least as long as asked.
//! - `replace` writes the content as the single piece of generation g+1 (that PUT is the
//!   commit point: readers take the highest generation), then deletes the older
//!   generations; a crash between leaves stale objects readers ignore and the next
//!   mutation (append, sync, truncate, replace) removes.
//! - `delete` removes every object under the blob's name, strays included.
//!
//! # Remembered listings
//!
//! A download calls `len` once and then `read_range` per batch of segments; listing the
//! blob on every call cost one LIST (tens of ms on S3, and billed) per batch. So the current
//! pieces of a fresh listing (by `len` or by a read) are kept, bounded (`listings`: at most
//! 1024 blobs and 65 536 pieces, least recently used first out, and `listings::TTL`), and
//! used by `read_range` only: `create`, `append`, `sync`, `truncate`, `replace`, `len` and
//! `delete` always list, so writers and recovery see the store as it is. Every mutation
//! made here (a piece written by append or sync, create, truncate, replace, delete) forgets
//! the blob's entry, successful or not, and a listing begun before that is not kept.
//!
//! Why a remembered listing never yields wrong bytes, though another instance may have
//! changed the blob since. A piece key names the generation and the blob offset of its
//! first byte, so a GET of `g/s` at piece offset `o` returns what the blob held at `s + o`
//! when generation `g` was written there. Within one generation a key is only ever
//! written by: a flush (a new key at the blob's end), truncate (deletes a key, or rewrites
//! the straddling one with a *prefix* of its bytes: shorter, same bytes), create (`g0/0`,
//! empty, after a delete) and replace (`g/0` of a generation the blob did not have). So
//! while `g` is the blob's highest generation, every byte a
//! GET of one of its keys returns is the blob's current byte at that offset. A read with a
//! remembered listing checks, and lists again (up to 16 times, as before) on any sign the
//! listing is out of date, answering `OutOfRange`, `NotFound` or corruption only from a
//! fresh listing:
//!
//! - the request ends past the listing's end (the blob may have grown);
//! - a GET fails (`NotFound`: deleted by truncate, replace or delete; any other error, as a
//!   range past a piece rewritten shorter is refused);
//! - a GET returns other than exactly the bytes asked, or the object's size (from its
//!   `Content-Range`) differs from the listed size (rewritten by a truncate).
//!
//! The GETs of one read are all used or all dropped, so one read never joins two listings'
//! pieces. What remains is a replace made by another instance: it writes `g+1` and then
//! deletes `g`. Until `g`'s pieces are deleted, a read whose request fits the remembered
//! listing still returns generation `g`'s bytes: the blob's complete content as it was
//! before the replace, as a read that listed just before the commit PUT would; once any
//! piece it needs is gone, it lists again and reads `g+1`. Normally the deletes follow the
//! commit at once; if that instance crashed between the two, a reader on this instance
//! may return the pre-replace content for up to the TTL after its listing (or until its
//! next `len`, which lists afresh and replaces the entry). A download that calls `len`
//! first reads the generation `len` saw. (Object ETags are not compared: the size check
//! catches every rewrite the layout allows, and servers differ in how they quote ETags.)
//!
//! Not here: encryption (only ciphertext arrives); serialising writers of one blob (the
//! upload lease does that: two writers of one blob in one process, or in two, are a bug
//! above this layer); compacting the pieces of a finished blob (`docs/decisions/0009`).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{BlobError, BlobId, BlobStore};
use errors::{io_error, redact, s3_error};
use layout::{Cut, Keys, Listing, Piece};
use listings::Listings;

mod errors;
pub mod layout;
mod listings;
mod open;
pub mod settings;
pub mod write_once;

/// How often a read lists again after a piece it listed vanished under it.
const READ_ATTEMPTS: usize = 16;

/// The S3 blob store.
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    keys: Keys,
    piece_size: usize,
    /// Appended bytes not yet written as a piece, per blob being written here.
    pending: Mutex<HashMap<BlobId, Pending>>,
    /// The last listing of recently read blobs, for `read_range` only.
    listings: Mutex<Listings>,
}

/// A blob's bytes appended in this process and not yet in a piece.
#[derive(Debug)]
struct Pending {
    /// The generation the pieces go to.
    generation: u64,
    /// The blob offset of `bytes[0]` (the durable length when buffering began).
    start: u64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("root", &self.keys.root())
            .field("piece_size", &self.piece_size)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// Opens the store described by `settings` (no request is sent; see `ping`).
    pub fn open(settings: &settings::S3Settings) -> Result<Self, BlobError> {
        let store = open::amazon_s3(settings)?;
        Ok(Self::over(
            Arc::new(store),
            &settings.prefix,
            usize::try_from(settings.piece_size.0).unwrap_or(usize::MAX),
        ))
    }

    /// A store over any `object_store` (tests wrap the S3 client to count requests), with
    /// keys under `prefix` (empty, or ending with `/`) and pieces of `piece_size` bytes.
    pub fn over(store: Arc<dyn ObjectStore>, prefix: &str, piece_size: usize) -> Self {
        Self {
            store,
            keys: Keys::new(prefix),
            piece_size: piece_size.max(1),
            pending: Mutex::new(HashMap::new()),
            listings: Mutex::new(Listings::default()),
        }
    }

    /// Locks the pending buffers. Never held across an await.
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Pending>> {
        // A panic while holding it leaves only plain data, still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the remembered listings. Never held across an await.
    fn listings(&self) -> std::sync::MutexGuard<'_, Listings> {
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the remembered listing of `id`: called after every mutation this process
    /// makes to it (whether or not the mutation succeeded), so reads here list again.
    fn forget(&self, id: BlobId) {
        self.listings().forget(id);
    }

    /// Lists the blob afresh and remembers its current pieces for later reads: `NotFound`
    /// when it has no piece, the corruption when its current generation has one.
    async fn list_current(&self, id: BlobId) -> Result<Arc<[Piece]>, BlobError> {
        let (epoch, listed_at) = (self.listings().epoch(), Instant::now());
        let listing = self.existing(id).await?;
        let current: Arc<[Piece]> = Self::current(id, &listing)?.into();
        self.listings()
            .insert(id, epoch, Arc::clone(&current), listed_at);
        Ok(current)
    }

    /// Every object under the blob's name: its pieces (every generation) and strays.
    async fn list_blob(&self, id: BlobId) -> Result<(Listing, Vec<Path>), BlobError> {
        let dir = Path::from(self.keys.blob_dir(id));
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| s3_error("list", id, &e))?;
        let mut pieces = Vec::new();
        let mut all = Vec::with_capacity(objects.len());
        for meta in objects {
            if let Some((got, generation, start)) = self.keys.parse(meta.location.as_ref())
                && got == id
            {
                pieces.push(Piece {
                    generation,
                    start,
                    size: meta.size,
                });
            }
            all.push(meta.location);
        }
        Ok((Listing::new(pieces), all))
    }

    /// The blob's listing, `NotFound` when it has no piece.
    async fn existing(&self, id: BlobId) -> Result<Listing, BlobError> {
        let (listing, _) = self.list_blob(id).await?;
        if listing.exists() {
            Ok(listing)
        } else {
            Err(BlobError::NotFound(id))
        }
    }

    /// The current pieces of a listing, or the corruption as an error.
    fn current(id: BlobId, listing: &Listing) -> Result<Vec<Piece>, BlobError> {
        listing.current().map_err(|c| {
            io_error(
                io::ErrorKind::InvalidData,
                format!("blob {id} is corrupt: {c}"),
            )
        })
    }

    async fn put(
        &self,
        id: BlobId,
        generation: u64,
        start: u64,
        data: Bytes,
    ) -> Result<(), BlobError> {
        let key = Path::from(self.keys.piece(id, generation, start));
        self.store
            .put(&key, PutPayload::from(data))
            .await
            .map_err(|e| s3_error("put", id, &e))?;
        Ok(())
    }

    async fn delete_keys(&self, id: BlobId, mut keys: Vec<Path>) -> Result<(), BlobError> {
        if keys.is_empty() {
            return Ok(());
        }
        // Highest key first: within a generation that is the highest start first, so an
        // interrupted delete leaves a contiguous prefix rather than a gap.
        keys.sort();
        keys.reverse();
        let locations = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(s3_error("delete", id, &e)),
            })
    }

    /// Deletes the listed pieces of older generations (a replace's unfinished cleanup).
    async fn clean_stale(&self, id: BlobId, listing: &Listing) -> Result<(), BlobError> {
        let stale: Vec<Path> = listing
            .stale()
            .map(|p| Path::from(self.keys.piece(id, p.generation, p.start)))
            .collect();
        self.delete_keys(id, stale).await
    }

    /// Writes the buffered bytes of `id` as one piece and drops them from memory.
    /// `Ok(false)` when nothing was buffered.
    async fn flush(&self, id: BlobId) -> Result<bool, BlobError> {
        let job = {
            let pending = self.pending();
            match pending.get(&id) {
                Some(p) if !p.bytes.is_empty() => {
                    Some((p.generation, p.start, Bytes::copy_from_slice(&p.bytes)))
                }
                Some(_) => None,
                None => return Ok(false),
            }
        };
        let Some((generation, start, data)) = job else {
            self.pending().remove(&id);
            return Ok(true);
        };
        let written = data.len();
        // Until this PUT returns the bytes stay buffered, so readers here still see them;
        // after it they are in the piece (both at once is the same bytes).
        let put = self.put(id, generation, start, data).await;
        self.forget(id);
        put?;
        let mut pending = self.pending();
        if let Some(p) = pending.get_mut(&id) {
            let n = written.min(p.bytes.len());
            p.bytes.drain(..n);
            p.start += n as u64;
            if p.bytes.is_empty() {
                pending.remove(&id);
            }
        }
        Ok(true)
    }
}

impl S3BlobStore {
    /// Whether the server refuses a second create of one key: `create` (and the audit
    /// checkpoints' write-once objects) rely on `If-None-Match: *` answered 412 when the
    /// key exists, which some S3-compatible servers ignore, overwriting silently. Creates a
    /// probe object under the blob root (a name no blob has, so readers pass over it)
    /// twice, then deletes it. `Ok(false)`: the second create succeeded.
    pub async fn refuses_second_create(&self) -> Result<bool, BlobError> {
        let key = Path::from(format!(
            "{}conditional-create-probe-{}",
            self.keys.root(),
            crate::ids::OpaqueId::random()
        ));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let failed = |e: object_store::Error| {
            io_error(
                io::ErrorKind::Other,
                format!(
                    "S3 conditional-create probe failed: {}",
                    redact(&e.to_string())
                ),
            )
        };
        self.store
            .put_opts(&key, PutPayload::from_static(b"1"), create())
            .await
            .map_err(failed)?;
        let second = self
            .store
            .put_opts(&key, PutPayload::from_static(b"2"), create())
            .await;
        let refused = match second {
            Ok(_) => false,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => true,
            Err(e) => {
                let _ = self.store.delete(&key).await;
                return Err(failed(e));
            }
        };
        self.store.delete(&key).await.map_err(failed)?;
        Ok(refused)
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn ping(&self) -> Result<(), BlobError> {
        // One authenticated ListObjectsV2 that starts after every key the store writes
        // ('~' sorts after the id alphabet): it checks the endpoint, bucket and keys, and
        // returns an empty page however many blobs there are.
        let root = Path::from(self.keys.root());
        // Parsed, not built: `Path::from` would percent-encode the '~', and '%' sorts first.
        let after = Path::parse(format!("{}~", self.keys.root()))
            .map_err(|e| io_error(io::ErrorKind::InvalidInput, format!("S3 ping: {e}")))?;
        let mut page = self.store.list_with_offset(Some(&root), &after);
        match page.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(BlobError::Io(io::Error::other(format!(
                "S3 ping failed: {}",
                redact(&e.to_string())
            )))),
        }
    }

    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        // Whatever happened to the blob, reads here list it again.
        let result = async {
            // A blob is its pieces: strays under its name do not make it exist (list, len
            // and read agree), so they do not block a create either.
            let (listing, _) = self.list_blob(id).await?;
            if listing.exists() {
                return Err(BlobError::AlreadyExists(id));
            }
            let key = Path::from(self.keys.piece(id, 0, 0));
            let create = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self.store.put_opts(&key, PutPayload::new(), create).await {
                Ok(_) => {
                    self.pending().remove(&id);
                    Ok(())
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Err(BlobError::AlreadyExists(id)),
                Err(e) => Err(s3_error("create", id, &e)),
            }
        }
        .await;
        self.forget(id);
        result
    }

    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        // The first append since the last sync learns where the blob ends (and that it
        // exists) from a listing; later ones continue the buffer.
        let fresh = if self.pending().contains_key(&id) {
            None
        } else {
            let listing = self.existing(id).await?;
            let current = Self::current(id, &listing)?;
            self.clean_stale(id, &listing).await?;
            Some(Pending {
                generation: listing.generation().unwrap_or(0),
                start: layout::length(&current),
                bytes: Vec::new(),
            })
        };
        let (len, full) = {
            let mut pending = self.pending();
            let p = match (pending.entry(id), fresh) {
                (std::collections::hash_map::Entry::Occupied(e), _) => e.into_mut(),
                (std::collections::hash_map::Entry::Vacant(e), Some(fresh)) => e.insert(fresh),
                // Dropped by a delete, replace or truncate between the check and here:
                // writers of one blob are serialised above this layer, so this is a bug.
                (std::collections::hash_map::Entry::Vacant(_), None) => {
                    return Err(io_error(
                        io::ErrorKind::Other,
                        format!("blob {id} was changed during an append"),
                    ));
                }
            };
            p.bytes.extend_from_slice(data);
            (
                p.start + p.bytes.len() as u64,
                p.bytes.len() >= self.piece_size,
            )
        };
        if full {
            self.flush(id).await?;
        }
        Ok(len)
    }

    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        if !self.flush(id).await? {
            // Nothing buffered: still, a missing blob is NotFound.
            self.existing(id).await?;
        }
        Ok(())
    }

    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        // Whatever happened to the blob, reads here list it again.
        let result = async {
            let listing = self.existing(id).await?;
            let current = Self::current(id, &listing)?;
            let durable = layout::length(&current);
            let buffered = self
                .pending()
                .get(&id)
                .map(|p| (p.start, p.bytes.len() as u64));
            let blob_len = buffered.map_or(durable, |(start, n)| start + n);
            if len > blob_len {
                return Err(BlobError::OutOfRange {
                    id,
                    offset: len,
                    len: 0,
                    blob_len,
                });
            }
            if let Some((start, _)) = buffered
                && len >= start
            {
                // The cut is inside the buffer: nothing beyond `len` is ever written.
                if let Some(p) = self.pending().get_mut(&id) {
                    p.bytes
                        .truncate(usize::try_from(len - start).unwrap_or(usize::MAX));
                }
                self.flush(id).await?;
                return self.clean_stale(id, &listing).await;
            }
            self.pending().remove(&id);
            for cut in layout::plan_truncate(&current, len) {
                match cut {
                    Cut::Delete(p) => {
                        let key = Path::from(self.keys.piece(id, p.generation, p.start));
                        self.delete_keys(id, vec![key]).await?;
                    }
                    Cut::Shorten(p, keep) => {
                        let kept = if keep == 0 {
                            Bytes::new()
                        } else {
                            let key = Path::from(self.keys.piece(id, p.generation, p.start));
                            self.store
                                .get_range(&key, 0..keep)
                                .await
                                .map_err(|e| s3_error("get", id, &e))?
                        };
                        if kept.len() as u64 != keep {
                            return Err(io_error(
                                io::ErrorKind::InvalidData,
                                format!("blob {id}: a piece changed during truncate"),
                            ));
                        }
                        self.put(id, p.generation, p.start, kept).await?;
                    }
                }
            }
            self.clean_stale(id, &listing).await
        }
        .await;
        self.forget(id);
        result
    }

    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        // Whatever happened to the blob, reads here list it again.
        let result = async {
            let (listing, _) = self.list_blob(id).await?;
            let generation = match listing.generation() {
                None => 0,
                Some(g) => g.checked_add(1).ok_or_else(|| {
                    io_error(
                        io::ErrorKind::InvalidData,
                        format!("blob {id}: generations exhausted"),
                    )
                })?,
            };
            self.pending().remove(&id);
            // The commit point: from here on readers take this generation.
            self.put(id, generation, 0, Bytes::copy_from_slice(data))
                .await?;
            // Every listed piece is of an older generation now (a corrupt one included).
            let older: Vec<Path> = listing
                .pieces()
                .iter()
                .map(|p| Path::from(self.keys.piece(id, p.generation, p.start)))
                .collect();
            self.delete_keys(id, older).await
        }
        .await;
        self.forget(id);
        result
    }

    async fn len(&self, id: BlobId) -> Result<u64, BlobError> {
        // Always a fresh listing; it also primes the reads that usually follow.
        let current = self.list_current(id).await?;
        Ok(match self.pending().get(&id) {
            Some(p) => p.start + p.bytes.len() as u64,
            None => layout::length(&current),
        })
    }

    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        let end = offset.checked_add(len);
        // This process's unwritten bytes: (start, end, the part of them inside the range).
        let buffered = self.pending().get(&id).map(|p| {
            let b_end = p.start + p.bytes.len() as u64;
            let part = match end {
                Some(end) if end > p.start && offset < b_end => {
                    let from = usize::try_from(offset.max(p.start) - p.start).unwrap_or(0);
                    let to = usize::try_from(end.min(b_end) - p.start).unwrap_or(0);
                    p.bytes[from..to].to_vec()
                }
                _ => Vec::new(),
            };
            (p.start, b_end, part)
        });
        // A remembered listing is only a guess of which pieces to GET: any sign that it is
        // out of date drops it and lists again, and only a fresh listing decides an error
        // (see the module doc for why the bytes it yields are never wrong).
        let mut use_cached = true;
        for _ in 0..READ_ATTEMPTS {
            let cached = if use_cached {
                self.listings().get(id, Instant::now())
            } else {
                None
            };
            let fresh = cached.is_none();
            let current = match cached {
                Some(current) => current,
                None => self.list_current(id).await?,
            };
            use_cached = false;
            // This listing (remembered or, in a race, just made) is out of date.
            let stale = || self.listings().forget(id);
            let durable = layout::length(&current);
            let (durable_end, blob_len) = match &buffered {
                Some((start, b_end, _)) => (*start, *b_end),
                None => (durable, durable),
            };
            let Some(end) = end.filter(|&e| e <= blob_len) else {
                if fresh {
                    return Err(BlobError::OutOfRange {
                        id,
                        offset,
                        len,
                        blob_len,
                    });
                }
                stale(); // the blob may have grown since
                continue;
            };
            let from_pieces = offset.min(durable_end)..end.min(durable_end);
            if from_pieces.end > durable {
                if fresh {
                    return Err(io_error(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob {id}: its pieces end at {durable}, before its buffer at {durable_end}"
                        ),
                    ));
                }
                stale();
                continue;
            }
            let reads = layout::overlapping(&current, from_pieces.start, from_pieces.end)
                .into_iter()
                .map(|(p, range)| {
                    let key = Path::from(self.keys.piece(id, p.generation, p.start));
                    let want = range.end - range.start;
                    async move {
                        let got = self
                            .store
                            .get_opts(&key, GetOptions::new().with_range(Some(range)))
                            .await?;
                        // The object's whole size (from Content-Range) must still be the
                        // listed one, and exactly the asked bytes must arrive.
                        let same = got.meta.size == p.size;
                        let bytes = got.bytes().await?;
                        Ok::<_, object_store::Error>(
                            (same && bytes.len() as u64 == want).then_some(bytes),
                        )
                    }
                });
            let parts = match futures_util::future::try_join_all(reads).await {
                Ok(parts) => parts,
                // Gone since the listing: a replace or truncate ran; list again.
                Err(object_store::Error::NotFound { .. }) => {
                    stale();
                    continue;
                }
                // From a remembered listing, any failure may be its staleness (a range
                // past a piece rewritten shorter is refused): list again to decide.
                Err(_) if !fresh => {
                    stale();
                    continue;
                }
                Err(e) => return Err(s3_error("get", id, &e)),
            };
            let Some(parts) = parts.into_iter().collect::<Option<Vec<Bytes>>>() else {
                // A piece was rewritten (shorter) since the listing.
                stale();
                continue;
            };
            let tail = buffered
                .as_ref()
                .map(|(_, _, part)| part.as_slice())
                .unwrap_or(&[]);
            if parts.len() == 1 && tail.is_empty() {
                return Ok(parts.into_iter().next().unwrap_or_default());
            }
            let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for part in &parts {
                out.extend_from_slice(part);
            }
            out.extend_from_slice(tail);
            return Ok(Bytes::from(out));
        }
        Err(io_error(
            io::ErrorKind::Other,
            format!("blob {id} kept changing during a read ({READ_ATTEMPTS} attempts)"),
        ))
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobError> {
        // Whatever happened to the blob, reads here list it again.
        let result = async {
            self.pending().remove(&id);
            let (listing, all) = self.list_blob(id).await?;
            self.delete_keys(id, all).await?;
            Ok(listing.exists())
        }
        .await;
        self.forget(id);
        result
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        let root = Path::from(self.keys.root());
        let objects: Vec<_> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| {
                BlobError::Io(io::Error::other(format!(
                    "S3 list failed: {}",
                    redact(&e.to_string())
                )))
            })?;
        let ids: BTreeSet<BlobId> = objects
            .iter()
            .filter_map(|meta| self.keys.parse_blob(meta.location.as_ref()))
            .collect();
        Ok(ids.into_iter().collect())
    }
}
