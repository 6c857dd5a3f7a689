//! The local-filesystem [`BlobStore`]: one file per blob under the gateway's blob directory.
//!
//! # Layout
//!
//! A blob lives at `<dir>/<shard>/<name>`, where `<name>` is the [`BlobId`]'s display form
//! (`<26-char object id>.<kind>`, e.g. `7b3k….data`) and `<shard>` is the name's first two
//! characters (256 shards, because the first id character carries only 3 bits). Names
//! come only from server-generated ids, never from client input. The directories are
//! created with mode 0700 and the files with mode 0600.
//!
//! A tail blob (the commit point of an object, replaced at every upload commit) is kept
//! in a *slot file* (`local/slots.rs`): two slots, each with a sequence number and a checksum, and
//! a replace writes the one that is not current and `fdatasync`s, so a commit costs one
//! sync and no rename. A reader, and a crash, sees the old content or the new, never a mix.
//!
//! Every other whole-file write (the first replace of a tail, the replace of a data blob, a
//! tail whose new content outgrows its slots) writes `<dir>/<shard>/.tmp-<random id>` (a
//! fresh server-side random name), fsyncs it, renames it over the target and fsyncs the
//! directory: the same guarantee. [`BlobStore::list`] accepts only names that parse back
//! into a `BlobId` and sit in their own shard, so temp files and stray files are ignored.
//! After a crash a `.tmp-*` file may remain; it holds ciphertext only and is never listed.
//!
//! Durability: `append` is buffered by the kernel until `sync` (fsync). `create`,
//! `create_with`, `replace`, `truncate` and `delete` are durable when they return,
//! directory entry included. `create_with` writes each new file whole (a tail in its slot
//! form), fsyncs it and then fsyncs the shard directory once for all of them: an object's
//! two blobs share a shard, so a new object costs three syncs, where `create`, `append`,
//! `sync` and a first `replace` cost five (and a rename).
//! All blocking I/O runs on tokio's blocking pool; reads use positioned reads, so readers
//! and an appender share a file without a shared cursor. Appends and syncs tell the kernel
//! to drop the pages they wrote (`drop_cached_pages`): written ciphertext is not read back
//! soon, and keeping it cached made uploads cost up to twice the CPU.
//!
//! Not here: encryption (only ciphertext arrives), serialising writers of one blob (the
//! upload lease does that), garbage-collecting stale temp files.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobError, BlobId, BlobKind, BlobStore};
use crate::ids::OpaqueId;

mod slots;

use slots::Slotted;

/// Prefix of temporary files written by `replace`.
const TEMP_PREFIX: &str = ".tmp-";

/// The filesystem-backed blob store.
#[derive(Clone)]
pub struct LocalBlobStore {
    dir: Arc<PathBuf>,
}

impl std::fmt::Debug for LocalBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlobStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl LocalBlobStore {
    /// Opens the store rooted at `dir`, creating it (mode 0700) if needed. Blocks.
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        if !fs::metadata(dir)?.is_dir() {
            return Err(BlobError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                "the blob store path is not a directory",
            )));
        }
        Ok(Self {
            dir: Arc::new(dir.to_path_buf()),
        })
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` with the store's paths on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, BlobError>
    where
        T: Send + 'static,
        F: FnOnce(&Layout) -> Result<T, BlobError> + Send + 'static,
    {
        let layout = Layout {
            dir: Arc::clone(&self.dir),
        };
        tokio::task::spawn_blocking(move || f(&layout))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(format!("blob task failed: {e}"))))?
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn ping(&self) -> Result<(), BlobError> {
        self.run(|l| {
            if fs::metadata(&*l.dir)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::NotADirectory, "blob dir is gone").into())
            }
        })
        .await
    }

    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        self.run(move |l| {
            let shard = l.ensure_shard(id)?;
            let path = l.path(id);
            let file = match new_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(BlobError::AlreadyExists(id));
                }
                other => other?,
            };
            file.sync_all()?;
            sync_dir(&shard)?;
            Ok(())
        })
        .await
    }

    async fn create_with(&self, blobs: &[(BlobId, &[u8])]) -> Result<(), BlobError> {
        // Copied to the blocking thread: an object's header and first tail record, or a
        // small object written whole (`AtRest::put`).
        let blobs: Vec<(BlobId, Vec<u8>)> = blobs.iter().map(|&(id, d)| (id, d.to_vec())).collect();
        self.run(move |l| {
            let mut shards: Vec<PathBuf> = Vec::with_capacity(blobs.len());
            for (id, data) in &blobs {
                let shard = l.ensure_shard(*id)?;
                let content = match id.kind {
                    BlobKind::Tail => std::borrow::Cow::Owned(slots::encode_new(data)?),
                    BlobKind::Data => std::borrow::Cow::Borrowed(data.as_slice()),
                };
                let mut file = match new_file(&l.path(*id)) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(BlobError::AlreadyExists(*id));
                    }
                    other => other?,
                };
                file.write_all(&content)?;
                file.sync_all()?;
                drop_cached_pages(&file);
                if !shards.contains(&shard) {
                    shards.push(shard);
                }
            }
            // One directory sync makes every new name in it durable.
            for shard in &shards {
                sync_dir(shard)?;
            }
            Ok(())
        })
        .await
    }

    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        let data = data.to_vec();
        self.run(move |l| l.append(id, &data)).await
    }

    async fn append_owned(
        &self,
        id: BlobId,
        buf: Vec<u8>,
        len: usize,
    ) -> Result<(u64, Vec<u8>), BlobError> {
        super::owned_prefix(&buf, len)?;
        // The buffer moves to the blocking thread and back: no copy of the batch.
        self.run(move |l| Ok((l.append(id, &buf[..len])?, buf)))
            .await
    }

    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        self.run(move |l| {
            // fsync flushes the file's data whichever descriptor wrote it.
            let file = File::open(l.path(id)).map_err(not_found(id))?;
            file.sync_all()?;
            drop_cached_pages(&file);
            Ok(())
        })
        .await
    }

    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        self.run(move |l| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(l.path(id))
                .map_err(not_found(id))?;
            if let Some(current) = l.slotted(id, &file)? {
                let blob_len = current.content.len() as u64;
                let keep = usize::try_from(len)
                    .ok()
                    .filter(|&n| n <= current.content.len())
                    .ok_or(BlobError::OutOfRange {
                        id,
                        offset: len,
                        len: 0,
                        blob_len,
                    })?;
                return l.write_plain(id, &current.content[..keep]);
            }
            let blob_len = file.metadata()?.len();
            if len > blob_len {
                return Err(BlobError::OutOfRange {
                    id,
                    offset: len,
                    len: 0,
                    blob_len,
                });
            }
            file.set_len(len)?;
            file.sync_all()?;
            Ok(())
        })
        .await
    }

    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        let data = data.to_vec();
        self.run(move |l| {
            if id.kind != BlobKind::Tail {
                return l.write_plain(id, &data);
            }
            match OpenOptions::new().read(true).write(true).open(l.path(id)) {
                Ok(file) => match Slotted::read(&file) {
                    // The common case: one positioned write and one fdatasync.
                    Ok(Some(current)) if current.fits(data.len()) => {
                        current.overwrite(&file, &data)?;
                        return Ok(());
                    }
                    // A plain tail (written before slot files, or by create and append),
                    // one that outgrew its slots, or a damaged one: written anew whole.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
                    Err(e) => return Err(e.into()),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            l.write_whole(id, &slots::encode_new(&data)?)
        })
        .await
    }

    async fn len(&self, id: BlobId) -> Result<u64, BlobError> {
        self.run(move |l| {
            if id.kind != BlobKind::Tail {
                return Ok(fs::metadata(l.path(id)).map_err(not_found(id))?.len());
            }
            let file = File::open(l.path(id)).map_err(not_found(id))?;
            match l.slotted(id, &file)? {
                Some(current) => Ok(current.content.len() as u64),
                None => Ok(file.metadata()?.len()),
            }
        })
        .await
    }

    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        self.run(move |l| {
            let file = File::open(l.path(id)).map_err(not_found(id))?;
            let slotted = l.slotted(id, &file)?;
            let blob_len = match &slotted {
                Some(current) => current.content.len() as u64,
                None => file.metadata()?.len(),
            };
            let out_of_range = BlobError::OutOfRange {
                id,
                offset,
                len,
                blob_len,
            };
            if offset.checked_add(len).is_none_or(|end| end > blob_len) {
                return Err(out_of_range);
            }
            if let Some(current) = slotted {
                // Inside the content: checked above.
                let at = offset as usize;
                return Ok(Bytes::copy_from_slice(
                    &current.content[at..at + len as usize],
                ));
            }
            // len <= blob_len, which is a real file's size; it fits in memory terms of usize
            // on the 64-bit targets this gateway supports, and is checked anyway.
            let mut buf = vec![0u8; usize::try_from(len).map_err(|_| out_of_range)?];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobError> {
        self.run(move |l| match fs::remove_file(l.path(id)) {
            Ok(()) => {
                sync_dir(&l.shard(id))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        self.run(|l| {
            let mut out = Vec::new();
            for shard in fs::read_dir(&*l.dir)? {
                let shard = shard?;
                let Some(shard_name) = shard.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if shard_name.len() != 2 || !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let name = entry.file_name();
                    let Some(id) = name.to_str().and_then(parse_name) else {
                        continue;
                    };
                    if shard_of(id) == shard_name && entry.file_type()?.is_file() {
                        out.push(id);
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}

/// Paths of one store.
struct Layout {
    dir: Arc<PathBuf>,
}

impl Layout {
    /// [`BlobStore::append`], on the calling (blocking) thread.
    fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.path(id))
            .map_err(not_found(id))?;
        if id.kind == BlobKind::Tail {
            // The gateway never appends to a tail; the contract allows it, so a slot
            // file becomes a plain one here, and a plain one may not become a
            // look-alike of a slot file.
            if let Some(current) = Slotted::read(&file)? {
                let mut whole = current.content;
                whole.extend_from_slice(data);
                self.write_plain(id, &whole)?;
                return Ok(whole.len() as u64);
            }
            refuse_slot_magic(&file, data)?;
        }
        file.write_all(data)?;
        // Starts writeback of what was just written and drops what is already clean,
        // so a long PATCH does not pile up dirty cache until its fsync (see below).
        drop_cached_pages(&file);
        Ok(file.metadata()?.len())
    }

    fn shard(&self, id: BlobId) -> PathBuf {
        self.dir.join(shard_of(id))
    }

    fn path(&self, id: BlobId) -> PathBuf {
        self.shard(id).join(id.to_string())
    }

    /// The current content of `id`'s file when it is a slot file (tail blobs only).
    fn slotted(&self, id: BlobId, file: &File) -> io::Result<Option<Slotted>> {
        if id.kind == BlobKind::Tail {
            Slotted::read(file)
        } else {
            Ok(None)
        }
    }

    /// Writes `id`'s whole content as a plain file (what `append` and `truncate` extend).
    fn write_plain(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        if id.kind == BlobKind::Tail && data.starts_with(slots::MAGIC) {
            return Err(slot_magic());
        }
        self.write_whole(id, data)
    }

    /// Replaces `id`'s file with `bytes` through a fresh temp file, its fsync, a rename and
    /// a directory fsync: a reader, and a crash, sees the old file or the new one.
    fn write_whole(&self, id: BlobId, bytes: &[u8]) -> Result<(), BlobError> {
        let shard = self.ensure_shard(id)?;
        // The temp name is a fresh random id: unique, and never derived from input.
        let temp = shard.join(format!("{TEMP_PREFIX}{}", OpaqueId::random()));
        let written = new_file(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| fs::rename(&temp, self.path(id)));
        if let Err(e) = renamed {
            // Best effort: the temp file holds only ciphertext and is never listed.
            let _ = fs::remove_file(&temp);
            return Err(e.into());
        }
        sync_dir(&shard)?;
        Ok(())
    }

    /// Creates the blob's shard directory if needed, durably; returns its path.
    fn ensure_shard(&self, id: BlobId) -> io::Result<PathBuf> {
        let shard = self.shard(id);
        match DirBuilder::new().mode(0o700).create(&shard) {
            Ok(()) => sync_dir(&self.dir)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(shard)
    }
}

/// The shard directory name of a blob: the first two characters of its name.
fn shard_of(id: BlobId) -> String {
    // An id's display form is always 26 ASCII characters, so this takes exactly two.
    id.object.to_string().chars().take(2).collect()
}

/// Parses a file name written by this store back into its id; `None` for anything else.
fn parse_name(name: &str) -> Option<BlobId> {
    let (object, suffix) = name.split_once('.')?;
    Some(BlobId {
        object: object.parse().ok()?,
        kind: BlobKind::from_suffix(suffix)?,
    })
}

/// Creates a new file with mode 0600, failing if it exists.
fn new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Tells the kernel that the file's (now clean) cached pages will not be needed soon.
///
/// Why: an upload streams gigabytes of ciphertext that nobody reads back until a download,
/// perhaps days later. Left in the page cache it evicts what is hot (the state database,
/// recent downloads), and every new page the next upload writes is a page the kernel must
/// find and, on a VM, the host must back: measured here, buffered writes cost 0.3–2.8 CPU
/// s/GiB depending on that, and a steady 0.25–0.3 s/GiB when the written pages are
/// dropped after each fsync (figures in `docs/uploads.md`, "Performance"). Advice
/// only: a failure changes nothing, so it is ignored.
fn drop_cached_pages(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

/// Makes a directory's entries durable (a created, renamed or removed name).
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Refuses an append that would make a plain tail blob begin with the slot-file magic
/// (it would then read as a slot file).
fn refuse_slot_magic(file: &File, data: &[u8]) -> Result<(), BlobError> {
    let have = file.metadata()?.len();
    let magic_len = slots::MAGIC.len() as u64;
    if have >= magic_len {
        return Ok(());
    }
    let mut prefix = vec![0u8; have as usize];
    file.read_exact_at(&mut prefix, 0)?;
    prefix.extend(data.iter().take((magic_len - have) as usize));
    if prefix == slots::MAGIC[..] {
        return Err(slot_magic());
    }
    Ok(())
}

fn slot_magic() -> BlobError {
    BlobError::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "a tail blob may not begin with the local store's slot-file magic",
    ))
}

/// Maps "no such file" to `NotFound(id)`.
fn not_found(id: BlobId) -> impl Fn(io::Error) -> BlobError {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::NotFound(id)
        } else {
            BlobError::Io(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strays_are_rejected() {
        let id = BlobId::tail(OpaqueId::random());
        assert_eq!(parse_name(&id.to_string()), Some(id));
        let data = BlobId::data(id.object);
        assert_eq!(parse_name(&data.to_string()), Some(data));
        for stray in [
            "",
            ".tmp-0123456789abcdefghjkmnpqrs",
            "0123456789abcdefghjkmnpqrs",
            "0123456789abcdefghjkmnpqrs.",
            "0123456789abcdefghjkmnpqrs.DATA",
            "0123456789abcdefghjkmnpqrs.data.bak",
            "0123456789ABCDEFGHJKMNPQRS.data",
            "../0123456789abcdefghjkmnpq.data",
        ] {
            assert_eq!(parse_name(stray), None, "{stray:?}");
        }
    }

    #[test]
    fn shards_are_the_first_two_characters() {
        let id = BlobId::data("0123456789abcdefghjkmnpqrs".parse().unwrap());
        assert_eq!(shard_of(id), "01");
    }
}
