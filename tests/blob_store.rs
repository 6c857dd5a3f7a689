//! The `BlobStore` conformance suite: every case in `cases` is written once against a
//! [`Harness`] and run against every backend listed in `backends!` at the bottom: the
//! local filesystem store, and the in-memory store the at-rest tests use
//! (`support::mem_blob::MemBlob`), so a crash test over it means what it would mean over
//! a real store; and the S3 store against a real S3 server (moto, `support::s3`). A
//! harness constructor returns `None` when its backend is unavailable (skip, or fail
//! under `CI`).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sallyport::blob::local::LocalBlobStore;
use sallyport::blob::{BlobError, BlobId, BlobKind, BlobStore};
use sallyport::ids::OpaqueId;

/// A backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn BlobStore>;
    /// Puts objects into the backend that are not blobs of this store (temp files, foreign
    /// names, names that look almost right), near `beside` where the backend has places.
    async fn plant_strays(&self, beside: BlobId);
}

// === local filesystem ===

struct Local {
    store: Arc<LocalBlobStore>,
    _dir: tempfile::TempDir,
}

async fn local() -> Option<Box<dyn Harness>> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    Some(Box::new(Local { store, _dir: dir }))
}

#[async_trait]
impl Harness for Local {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }

    async fn plant_strays(&self, beside: BlobId) {
        let root: PathBuf = self.store.dir().to_path_buf();
        let name = beside.to_string();
        let shard = root.join(&name[..2]);
        let other = OpaqueId::random().to_string();
        for stray in [
            shard.join(format!(".tmp-{other}")),
            shard.join(format!("{name}.bak")),
            shard.join(name.to_uppercase()),
            shard.join(format!("{}.wal", beside.object)),
            shard.join("README"),
            root.join(&name), // right name, wrong place (not in its shard)
            root.join("notes.txt"),
        ] {
            std::fs::write(stray, b"stray").unwrap();
        }
        // A blob-named file in a shard it does not belong to.
        let wrong_shard = root.join(if name.starts_with("zz") { "00" } else { "zz" });
        std::fs::create_dir_all(&wrong_shard).unwrap();
        std::fs::write(wrong_shard.join(&name), b"stray").unwrap();
        // A directory with a blob's name.
        std::fs::create_dir_all(shard.join(BlobId::tail(beside.object).to_string())).unwrap();
        std::fs::create_dir_all(root.join("not-a-shard")).unwrap();
    }
}

// === in memory ===

struct Memory {
    store: Arc<support::mem_blob::MemBlob>,
}

async fn memory() -> Option<Box<dyn Harness>> {
    Some(Box::new(Memory {
        store: Arc::default(),
    }))
}

#[async_trait]
impl Harness for Memory {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }

    /// The in-memory store has no namespace shared with anything else, so there is no
    /// stray to plant: `list_ignores_strays` checks only its listing for it.
    async fn plant_strays(&self, _beside: BlobId) {}
}

// === S3 (the moto server of `support::s3`) ===

struct S3 {
    store: Arc<sallyport::blob::s3::S3BlobStore>,
    test: support::s3::S3Test,
}

/// Pieces of 256 KiB, so the 3 MiB case crosses a dozen piece boundaries.
async fn s3() -> Option<Box<dyn Harness>> {
    let test = support::s3::S3Test::require()?;
    let store = Arc::new(test.store(256 << 10));
    Some(Box::new(S3 { store, test }))
}

#[async_trait]
impl Harness for S3 {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }

    async fn plant_strays(&self, beside: BlobId) {
        use object_store::ObjectStoreExt;
        let raw = self.test.raw();
        let root = format!("{}blobs/", self.test.prefix);
        let dir = format!("{root}{beside}");
        let zeros = "0".repeat(20);
        let other = OpaqueId::random();
        for key in [
            format!("{dir}/g{zeros}/notanumber"),
            format!("{dir}/{zeros}"), // no generation
            format!("{dir}/g0/{zeros}"),
            format!("{dir}/g{zeros}/{zeros}.tmp"),
            format!(
                "{root}{}/g{zeros}/{zeros}",
                beside.to_string().to_uppercase()
            ),
            format!("{root}{other}.wal/g{zeros}/{zeros}"),
            format!("{root}.tmp-{other}/g{zeros}/{zeros}"),
            format!("{root}{other}.data.tmp"),
            format!("{root}README"),
            // Right name, outside the store's prefix.
            format!("elsewhere/{root}{}/g{zeros}/{zeros}", BlobId::data(other)),
            format!("{}/g{zeros}/{zeros}", BlobId::tail(other)),
        ] {
            raw.put(&key.as_str().into(), b"stray".to_vec().into())
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn local_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = LocalBlobStore::open(&root).unwrap();
    let a = BlobId::data(OpaqueId::random());
    let b = BlobId::tail(OpaqueId::random());
    store.create(a).await.unwrap();
    store.replace(b, b"tail").await.unwrap();
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(root.clone()), 0o700);
    for id in [a, b] {
        let name = id.to_string();
        assert_eq!(mode(root.join(&name[..2])), 0o700);
        assert_eq!(mode(root.join(&name[..2]).join(&name)), 0o600);
    }
}

/// `create_with` on the local store: the data written as it is, a tail born a slot file
/// (so its first replace is in place), no temp file left.
#[tokio::test]
async fn local_create_with_writes_a_tail_as_a_slot_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = LocalBlobStore::open(&root).unwrap();
    let object = OpaqueId::random();
    let (data, tail) = (BlobId::data(object), BlobId::tail(object));
    store
        .create_with(&[(data, b"header"), (tail, b"generation 1")])
        .await
        .unwrap();
    let path = |id: BlobId| {
        let name = id.to_string();
        root.join(&name[..2]).join(&name)
    };
    assert_eq!(
        std::fs::read(path(data)).unwrap(),
        b"header",
        "data is written as it is"
    );
    let raw = std::fs::read(path(tail)).unwrap();
    assert!(
        raw.starts_with(b"sallyport/slots1"),
        "a tail is born a slot file"
    );
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&path(tail));
    store.replace(tail, b"generation 2").await.unwrap();
    assert_eq!(inode(&path(tail)), before, "its first replace is in place");
    assert_eq!(
        store.read_range(tail, 0, 12).await.unwrap().as_ref(),
        b"generation 2"
    );
    // No temp file was left in the shard.
    let names: Vec<String> = std::fs::read_dir(path(data).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// The local store keeps a tail in a slot file (`src/blob/local/slots.rs`): a tail written
/// before slot files is still read and becomes a slot file at its next replace; a torn
/// write of the newer slot leaves the current content; an append may not forge the magic.
#[tokio::test]
async fn local_tails_are_slot_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = LocalBlobStore::open(&root).unwrap();
    let id = BlobId::tail(OpaqueId::random());
    let name = id.to_string();
    let path = root.join(&name[..2]).join(&name);

    // A plain tail file, as the store wrote them before.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"SPAT old tail").unwrap();
    assert_eq!(store.len(id).await.unwrap(), 13);
    assert_eq!(store.read_range(id, 4, 4).await.unwrap().as_ref(), b" old");

    store.replace(id, b"generation 2").await.unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.starts_with(b"sallyport/slots1"), "a slot file now");
    assert_eq!(store.len(id).await.unwrap(), 12);
    store.replace(id, b"generation 3").await.unwrap();
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&path);
    store.replace(id, b"generation 4").await.unwrap();
    assert_eq!(inode(&path), before, "replaced in place, not renamed over");

    // Tear the newest slot (generation 4): what a crash during its write leaves.
    let raw = std::fs::read(&path).unwrap();
    let at = raw.windows(12).rposition(|w| w == b"generation 4").unwrap();
    let mut torn = raw.clone();
    torn[at + 11] = b'X';
    std::fs::write(&path, &torn).unwrap();
    assert_eq!(
        store.read_range(id, 0, 12).await.unwrap().as_ref(),
        b"generation 3"
    );
    // The next replace goes over the torn slot; the current one is untouched until then.
    store.replace(id, b"generation 5").await.unwrap();
    assert_eq!(
        store.read_range(id, 0, 12).await.unwrap().as_ref(),
        b"generation 5"
    );

    // A plain tail cannot be made to look like a slot file.
    let plain = BlobId::tail(OpaqueId::random());
    store.create(plain).await.unwrap();
    store.append(plain, b"sallyport/").await.unwrap();
    assert!(store.append(plain, b"slots1 forged").await.is_err());
    assert_eq!(
        store.len(plain).await.unwrap(),
        10,
        "the refused append changed nothing"
    );
    assert!(store.append(plain, b"other").await.is_ok());
}

// === the cases ===

mod cases {
    use super::*;

    fn new_id() -> BlobId {
        BlobId::data(OpaqueId::random())
    }

    fn out_of_range<T: std::fmt::Debug>(r: Result<T, BlobError>, want: (u64, u64, u64)) {
        match r {
            Err(BlobError::OutOfRange {
                offset,
                len,
                blob_len,
                ..
            }) => assert_eq!((offset, len, blob_len), want),
            other => panic!("expected OutOfRange, got {other:?}"),
        }
    }

    fn not_found<T: std::fmt::Debug>(r: Result<T, BlobError>, id: BlobId) {
        match r {
            Err(BlobError::NotFound(got)) => assert_eq!(got, id),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    pub async fn ping_and_kind(h: Box<dyn Harness>) {
        let s = h.store();
        s.ping().await.unwrap();
        assert!(!s.kind().is_empty());
    }

    pub async fn create_twice_fails(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        match s.create(id).await {
            Err(BlobError::AlreadyExists(got)) => assert_eq!(got, id),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(s.len(id).await.unwrap(), 0);
        // A blob made by replace exists too.
        let replaced = new_id();
        s.replace(replaced, b"x").await.unwrap();
        assert!(matches!(
            s.create(replaced).await,
            Err(BlobError::AlreadyExists(_))
        ));
        assert_eq!(s.read_range(replaced, 0, 1).await.unwrap().as_ref(), b"x");
    }

    pub async fn create_with_content(h: Box<dyn Harness>) {
        let s = h.store();
        let object = OpaqueId::random();
        let (data, tail) = (BlobId::data(object), BlobId::tail(object));
        s.create_with(&[(data, b"header+segments"), (tail, b"first tail")])
            .await
            .unwrap();
        assert_eq!(s.len(data).await.unwrap(), 15);
        assert_eq!(
            s.read_range(data, 0, 15).await.unwrap().as_ref(),
            b"header+segments"
        );
        assert_eq!(s.len(tail).await.unwrap(), 10);
        assert_eq!(
            s.read_range(tail, 0, 10).await.unwrap().as_ref(),
            b"first tail"
        );
        // What they hold behaves like any blob's: appended to, replaced.
        assert_eq!(s.append(data, b"!").await.unwrap(), 16);
        s.replace(tail, b"second").await.unwrap();
        assert_eq!(s.read_range(tail, 0, 6).await.unwrap().as_ref(), b"second");
        // Empty content, and a blob that exists: refused, its content untouched.
        let empty = new_id();
        s.create_with(&[(empty, b"")]).await.unwrap();
        assert_eq!(s.len(empty).await.unwrap(), 0);
        match s.create_with(&[(data, b"other")]).await {
            Err(BlobError::AlreadyExists(got)) => assert_eq!(got, data),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(s.len(data).await.unwrap(), 16);
        let mut want = vec![data, tail, empty];
        want.sort();
        assert_eq!(s.list().await.unwrap(), want);
    }

    pub async fn append_len_read(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        assert_eq!(s.append(id, b"hello").await.unwrap(), 5);
        assert_eq!(s.append(id, b"").await.unwrap(), 5);
        assert_eq!(s.append(id, b" world").await.unwrap(), 11);
        s.sync(id).await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), 11);
        assert_eq!(
            s.read_range(id, 0, 11).await.unwrap().as_ref(),
            b"hello world"
        );
        assert_eq!(s.read_range(id, 6, 5).await.unwrap().as_ref(), b"world");
        assert_eq!(s.read_range(id, 4, 3).await.unwrap().as_ref(), b"o w");
        assert!(s.read_range(id, 11, 0).await.unwrap().is_empty());
        assert!(s.read_range(id, 0, 0).await.unwrap().is_empty());
    }

    pub async fn append_owned_writes_a_prefix_and_gives_the_buffer_back(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        s.append(id, b"head:").await.unwrap();
        let buf: Vec<u8> = (0u8..100).collect();
        let (len, back) = s.append_owned(id, buf.clone(), 60).await.unwrap();
        assert_eq!(len, 65);
        assert_eq!(back, buf, "the whole buffer comes back, unchanged");
        let (len, _) = s.append_owned(id, back, 0).await.unwrap();
        assert_eq!(len, 65);
        // A length past the buffer is refused and writes nothing.
        assert!(s.append_owned(id, vec![1u8; 4], 5).await.is_err());
        assert_eq!(s.len(id).await.unwrap(), 65);
        s.sync(id).await.unwrap();
        let got = s.read_range(id, 0, 65).await.unwrap();
        assert_eq!(&got[..5], b"head:");
        assert_eq!(&got[5..], &buf[..60]);
        let missing = new_id();
        not_found(s.append_owned(missing, vec![0u8; 8], 8).await, missing);
    }

    pub async fn large_blobs_read_back_at_any_offset(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        // 3 MiB of a non-repeating pattern, appended in uneven pieces.
        let data: Vec<u8> = (0u32..3 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut at = 0;
        for piece in [1usize, 65_535, 65_536, 1 << 20, 7] {
            assert_eq!(
                s.append(id, &data[at..at + piece]).await.unwrap(),
                (at + piece) as u64
            );
            at += piece;
        }
        s.append(id, &data[at..]).await.unwrap();
        s.sync(id).await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), data.len() as u64);
        for (offset, len) in [
            (0, 1),
            (65_535, 2),
            (1 << 20, 65_536),
            ((3 << 20) - 1, 1),
            (12_345, 2 << 20),
        ] {
            let got = s.read_range(id, offset as u64, len as u64).await.unwrap();
            assert_eq!(got.as_ref(), &data[offset..offset + len], "{offset}+{len}");
        }
    }

    pub async fn reads_past_the_end_are_out_of_range(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        out_of_range(s.read_range(id, 0, 1).await, (0, 1, 0));
        s.append(id, b"0123456789").await.unwrap();
        out_of_range(s.read_range(id, 0, 11).await, (0, 11, 10));
        out_of_range(s.read_range(id, 9, 2).await, (9, 2, 10));
        out_of_range(s.read_range(id, 11, 0).await, (11, 0, 10));
        out_of_range(s.read_range(id, u64::MAX, 2).await, (u64::MAX, 2, 10));
        out_of_range(s.read_range(id, 2, u64::MAX).await, (2, u64::MAX, 10));
        assert_eq!(s.read_range(id, 9, 1).await.unwrap().as_ref(), b"9");
    }

    pub async fn missing_blobs_are_not_found(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        not_found(s.append(id, b"x").await, id);
        not_found(s.sync(id).await, id);
        not_found(s.len(id).await, id);
        not_found(s.read_range(id, 0, 0).await, id);
        not_found(s.truncate(id, 0).await, id);
        assert!(!s.delete(id).await.unwrap());
        assert!(
            s.list().await.unwrap().is_empty(),
            "nothing was created by the failures"
        );
    }

    pub async fn truncate(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        s.create(id).await.unwrap();
        s.append(id, b"hello world").await.unwrap();
        out_of_range(s.truncate(id, 12).await, (12, 0, 11));
        assert_eq!(
            s.len(id).await.unwrap(),
            11,
            "a refused truncate changes nothing"
        );
        s.truncate(id, 11).await.unwrap();
        s.truncate(id, 5).await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), 5);
        assert_eq!(s.read_range(id, 0, 5).await.unwrap().as_ref(), b"hello");
        out_of_range(s.read_range(id, 0, 6).await, (0, 6, 5));
        // Appends continue at the new end.
        assert_eq!(s.append(id, b"!").await.unwrap(), 6);
        assert_eq!(s.read_range(id, 0, 6).await.unwrap().as_ref(), b"hello!");
        s.truncate(id, 0).await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), 0);
    }

    /// Both kinds: a store may keep blobs written by `replace` differently by kind (the
    /// local store keeps tails in slot files).
    const KINDS: [BlobKind; 2] = [BlobKind::Data, BlobKind::Tail];

    fn id_of(kind: BlobKind) -> BlobId {
        BlobId {
            object: OpaqueId::random(),
            kind,
        }
    }

    pub async fn replace(h: Box<dyn Harness>) {
        let s = h.store();
        let mut want = Vec::new();
        for kind in KINDS {
            let id = id_of(kind);
            s.replace(id, b"first version, long").await.unwrap();
            assert_eq!(
                s.read_range(id, 0, 19).await.unwrap().as_ref(),
                b"first version, long"
            );
            s.replace(id, b"short").await.unwrap();
            assert_eq!(
                s.len(id).await.unwrap(),
                5,
                "no tail of the old content is left"
            );
            assert_eq!(s.read_range(id, 0, 5).await.unwrap().as_ref(), b"short");
            out_of_range(s.read_range(id, 3, 3).await, (3, 3, 5));
            s.replace(id, b"").await.unwrap();
            assert_eq!(s.len(id).await.unwrap(), 0);
            // Many replaces in a row, growing past any first size.
            for i in 0..10usize {
                let v = vec![i as u8; 1 << (i * 2)];
                s.replace(id, &v).await.unwrap();
                assert_eq!(s.len(id).await.unwrap(), v.len() as u64);
                assert_eq!(s.read_range(id, 0, v.len() as u64).await.unwrap(), v);
            }
            // Replace of an appended blob, then append (and truncate) after replace.
            let a = id_of(kind);
            s.create(a).await.unwrap();
            s.append(a, b"appended").await.unwrap();
            s.replace(a, b"new").await.unwrap();
            assert_eq!(s.append(a, b"+").await.unwrap(), 4);
            assert_eq!(s.read_range(a, 0, 4).await.unwrap().as_ref(), b"new+");
            s.replace(a, b"again").await.unwrap();
            s.truncate(a, 2).await.unwrap();
            assert_eq!(s.len(a).await.unwrap(), 2);
            assert_eq!(s.read_range(a, 0, 2).await.unwrap().as_ref(), b"ag");
            s.replace(a, b"last").await.unwrap();
            assert_eq!(s.read_range(a, 0, 4).await.unwrap().as_ref(), b"last");
            want.extend([id, a]);
            want.sort();
            assert_eq!(
                s.list().await.unwrap(),
                want,
                "replace leaves no temp blob behind"
            );
        }
    }

    pub async fn replace_is_atomic(h: Box<dyn Harness>) {
        for kind in KINDS {
            replace_is_atomic_for(&*h, kind).await;
        }
    }

    async fn replace_is_atomic_for(h: &dyn Harness, kind: BlobKind) {
        const LEN: usize = 256 * 1024;
        let s = h.store();
        let before = s.list().await.unwrap();
        let id = id_of(kind);
        let bystander = BlobId::tail(OpaqueId::random());
        s.replace(id, &vec![b'a'; LEN]).await.unwrap();
        s.replace(bystander, b"b").await.unwrap();
        let mut want = before;
        want.extend([id, bystander]);
        want.sort();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (s, done) = (s.clone(), done.clone());
            tokio::spawn(async move {
                for i in 0..60u32 {
                    let fill = if i % 2 == 0 { b'b' } else { b'a' };
                    s.replace(id, &vec![fill; LEN]).await.unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, done, want) = (s.clone(), done.clone(), want.clone());
                tokio::spawn(async move {
                    let mut seen = BTreeSet::new();
                    // At least one read, even when the writer is done first (the in-memory
                    // store replaces faster than a reader task starts).
                    loop {
                        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                        let bytes = s.read_range(id, 0, LEN as u64).await.unwrap();
                        let first = bytes[0];
                        assert!(bytes.iter().all(|&b| b == first), "a reader saw a mix");
                        seen.insert(first);
                        assert_eq!(s.list().await.unwrap(), want, "a temp file was listed");
                        if finished {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        writer.await.unwrap();
        for r in readers {
            let seen = r.await.unwrap();
            assert!(!seen.is_empty());
        }
        assert_eq!(s.read_range(id, 0, 1).await.unwrap().as_ref(), b"a");
    }

    pub async fn delete(h: Box<dyn Harness>) {
        let s = h.store();
        let id = new_id();
        let keep = new_id();
        s.create(id).await.unwrap();
        s.append(id, b"data").await.unwrap();
        s.create(keep).await.unwrap();
        assert!(s.delete(id).await.unwrap());
        not_found(s.len(id).await, id);
        assert!(!s.delete(id).await.unwrap(), "deleted twice");
        assert_eq!(s.list().await.unwrap(), vec![keep]);
        // The id can be created afresh, empty.
        s.create(id).await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), 0);
    }

    pub async fn list_ignores_strays(h: Box<dyn Harness>) {
        let s = h.store();
        let mut want: Vec<BlobId> = (0..6)
            .map(|i| {
                let object = OpaqueId::random();
                if i % 2 == 0 {
                    BlobId::data(object)
                } else {
                    BlobId::tail(object)
                }
            })
            .collect();
        for id in &want {
            s.create(*id).await.unwrap();
        }
        h.plant_strays(want[0]).await;
        want.sort();
        assert_eq!(s.list().await.unwrap(), want);
        // Strays do not disturb the blobs themselves.
        assert_eq!(s.len(want[0]).await.unwrap(), 0);
        s.ping().await.unwrap();
    }

    pub async fn every_kind_is_its_own_blob(h: Box<dyn Harness>) {
        // Fails to compile when a kind is added, so this list stays complete.
        fn listed(kind: BlobKind) -> bool {
            match kind {
                BlobKind::Data | BlobKind::Tail => true,
            }
        }
        let kinds = [BlobKind::Data, BlobKind::Tail];
        assert!(kinds.iter().all(|&k| listed(k)));
        let s = h.store();
        let object = OpaqueId::random();
        let ids: Vec<BlobId> = kinds.iter().map(|&kind| BlobId { object, kind }).collect();
        for (i, id) in ids.iter().enumerate() {
            s.create(*id).await.unwrap();
            s.append(*id, &vec![i as u8; i + 1]).await.unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.len(*id).await.unwrap(), i as u64 + 1);
            assert_eq!(s.read_range(*id, 0, 1).await.unwrap()[0], i as u8);
        }
        assert_eq!(s.list().await.unwrap(), ids, "ascending, data before tail");
        assert!(s.delete(ids[0]).await.unwrap());
        assert_eq!(s.list().await.unwrap(), ids[1..]);
    }
}

// === wiring ===

/// Generates one test per case for one backend.
macro_rules! blob_suite {
    ($backend:ident, $make:path, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // `None`: the backend is unavailable and the test skips (`support::ci`).
                    if let Some(harness) = $make().await {
                        super::cases::$case(harness).await;
                    }
                }
            )*
        }
    };
}

/// Runs every case against each `backend => harness constructor`.
macro_rules! backends {
    ($($backend:ident => $make:path),* $(,)?) => {
        $(
            blob_suite!($backend, $make, [
                ping_and_kind,
                create_twice_fails,
                create_with_content,
                append_len_read,
                append_owned_writes_a_prefix_and_gives_the_buffer_back,
                large_blobs_read_back_at_any_offset,
                reads_past_the_end_are_out_of_range,
                missing_blobs_are_not_found,
                truncate,
                replace,
                replace_is_atomic,
                delete,
                list_ignores_strays,
                every_kind_is_its_own_blob,
            ]);
        )*
    };
}

backends! {
    local => super::local,
    memory => super::memory,
    s3 => super::s3,
}
