//! What the S3 blob store promises beyond the conformance suite (`blob_store.rs`), against
//! the moto server of `support::s3`: another gateway instance (a second store over the
//! same bucket and prefix) sees exactly what was synced; blobs span many pieces; a small
//! read fetches only the pieces it needs, by ranged GETs (counted by a wrapper around the
//! S3 client); a stale generation left by a crashed replace is ignored and then cleaned;
//! a gap between pieces is an error, never data; create is decided by a conditional PUT;
//! errors never carry the keys; and `ca_file` is what the store's TLS trusts.

#![allow(clippy::unwrap_used)]

mod support;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use sallyport::blob::s3::S3BlobStore;
use sallyport::blob::{BlobError, BlobId, BlobStore};
use sallyport::ids::OpaqueId;
use support::s3::S3Test;

const PIECE: u64 = 64 << 10;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// The keys of the blob's objects, as the bucket has them.
async fn keys(test: &S3Test, id: BlobId) -> Vec<String> {
    let dir = Path::from(format!("{}blobs/{id}", test.prefix));
    let metas: Vec<ObjectMeta> = test.raw().list(Some(&dir)).try_collect().await.unwrap();
    let mut keys: Vec<String> = metas.iter().map(|m| m.location.to_string()).collect();
    keys.sort();
    keys
}

fn piece_key(test: &S3Test, id: BlobId, generation: u64, start: u64) -> Path {
    Path::from(format!(
        "{}blobs/{id}/g{generation:020}/{start:020}",
        test.prefix
    ))
}

#[tokio::test]
async fn another_instance_sees_synced_bytes_and_nothing_else() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let (a, b) = (test.store(PIECE), test.store(PIECE));
    let id = BlobId::data(OpaqueId::random());
    a.create(id).await.unwrap();
    let first = pattern(10_000, 1);
    assert_eq!(a.append(id, &first).await.unwrap(), 10_000);
    // Appended but not synced: this instance sees it, the other does not.
    assert_eq!(a.len(id).await.unwrap(), 10_000);
    assert_eq!(b.len(id).await.unwrap(), 0);
    assert!(matches!(
        b.read_range(id, 0, 1).await,
        Err(BlobError::OutOfRange { blob_len: 0, .. })
    ));
    a.sync(id).await.unwrap();
    assert_eq!(b.len(id).await.unwrap(), 10_000);
    assert_eq!(
        b.read_range(id, 0, 10_000).await.unwrap().as_ref(),
        &first[..]
    );
    // The other instance resumes the blob where it was synced (as after a failover).
    let second = pattern(5_000, 2);
    assert_eq!(b.append(id, &second).await.unwrap(), 15_000);
    b.sync(id).await.unwrap();
    let whole = a.read_range(id, 0, 15_000).await.unwrap();
    assert_eq!(&whole[..10_000], &first[..]);
    assert_eq!(&whole[10_000..], &second[..]);
    // Two pieces, the empty marker overwritten by the first.
    assert_eq!(keys(&test, id).await.len(), 2);
}

#[tokio::test]
async fn a_blob_of_many_pieces_reads_back_across_piece_boundaries() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let writer = test.store(PIECE);
    let id = BlobId::data(OpaqueId::random());
    writer.create(id).await.unwrap();
    let data = pattern(1 << 20, 3);
    // Uneven appends: pieces are cut when the buffer passes 64 KiB, not on append edges.
    for chunk in data.chunks(50_000) {
        writer.append(id, chunk).await.unwrap();
    }
    writer.sync(id).await.unwrap();
    let pieces = keys(&test, id).await;
    assert!(
        pieces.len() >= 10,
        "1 MiB in 64 KiB pieces: {}",
        pieces.len()
    );
    let reader = test.store(PIECE);
    assert_eq!(reader.len(id).await.unwrap(), 1 << 20);
    for (offset, len) in [
        (0usize, 1usize),
        (99_999, 2),
        (100_000, 100_000),
        (1 << 19, 300_000),
        ((1 << 20) - 1, 1),
        (0, 1 << 20),
    ] {
        let got = reader
            .read_range(id, offset as u64, len as u64)
            .await
            .unwrap();
        assert_eq!(got.as_ref(), &data[offset..offset + len], "{offset}+{len}");
    }
}

#[tokio::test]
async fn a_small_read_fetches_only_the_pieces_it_overlaps() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let counting = Arc::new(Counting::new(test.raw()));
    let store = S3BlobStore::over(counting.clone(), &test.prefix, PIECE as usize);
    let id = BlobId::data(OpaqueId::random());
    store.create(id).await.unwrap();
    let data = pattern(4 * PIECE as usize, 4);
    for chunk in data.chunks(PIECE as usize) {
        store.append(id, chunk).await.unwrap();
    }
    store.sync(id).await.unwrap();
    assert_eq!(keys(&test, id).await.len(), 4);
    counting.gets.lock().unwrap().clear();
    // 10 bytes across the boundary of pieces 1 and 2.
    let at = 2 * PIECE - 4;
    let got = store.read_range(id, at, 10).await.unwrap();
    assert_eq!(got.as_ref(), &data[at as usize..at as usize + 10]);
    let gets = counting.gets.lock().unwrap().clone();
    assert_eq!(
        gets,
        vec![
            (
                piece_key(&test, id, 0, PIECE).to_string(),
                Some(GetRange::Bounded(PIECE - 4..PIECE))
            ),
            (
                piece_key(&test, id, 0, 2 * PIECE).to_string(),
                Some(GetRange::Bounded(0..6))
            ),
        ]
    );
}

#[tokio::test]
async fn a_stale_generation_is_ignored_and_then_cleaned() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let store = test.store(PIECE);
    let id = BlobId::tail(OpaqueId::random());
    store.replace(id, b"old tail record").await.unwrap();
    store.replace(id, b"new").await.unwrap();
    assert_eq!(
        keys(&test, id).await,
        vec![piece_key(&test, id, 1, 0).to_string()],
        "replace removed generation 0"
    );
    // A crash between the new generation's PUT and the cleanup leaves the old one.
    let raw = test.raw();
    raw.put(
        &piece_key(&test, id, 0, 0),
        b"old tail record".to_vec().into(),
    )
    .await
    .unwrap();
    raw.put(&piece_key(&test, id, 0, 15), b" and more".to_vec().into())
        .await
        .unwrap();
    let other = test.store(PIECE);
    assert_eq!(other.len(id).await.unwrap(), 3);
    assert_eq!(other.read_range(id, 0, 3).await.unwrap().as_ref(), b"new");
    assert_eq!(other.list().await.unwrap(), vec![id]);
    // The next mutation removes it.
    other.append(id, b"!").await.unwrap();
    other.sync(id).await.unwrap();
    assert_eq!(
        keys(&test, id).await,
        vec![
            piece_key(&test, id, 1, 0).to_string(),
            piece_key(&test, id, 1, 3).to_string()
        ]
    );
    assert_eq!(store.read_range(id, 0, 4).await.unwrap().as_ref(), b"new!");
}

#[tokio::test]
async fn a_gap_between_pieces_is_an_error_not_data() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let store = test.store(PIECE);
    let id = BlobId::data(OpaqueId::random());
    let raw = test.raw();
    raw.put(&piece_key(&test, id, 0, 0), vec![1u8; 10].into())
        .await
        .unwrap();
    raw.put(&piece_key(&test, id, 0, 20), vec![2u8; 10].into())
        .await
        .unwrap();
    for result in [
        store.len(id).await.map(|_| ()),
        store.read_range(id, 0, 5).await.map(|_| ()),
        store.append(id, b"x").await.map(|_| ()),
        store.truncate(id, 5).await,
    ] {
        match result {
            Err(BlobError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                assert!(e.to_string().contains("gap"), "{e}");
            }
            other => panic!("expected a corruption error, got {other:?}"),
        }
    }
    // An overlap too.
    raw.put(&piece_key(&test, id, 0, 10), vec![3u8; 15].into())
        .await
        .unwrap();
    let err = store.len(id).await.unwrap_err().to_string();
    assert!(err.contains("overlap"), "{err}");
    // A replace supersedes the corrupt generation and removes it.
    store.replace(id, b"fresh").await.unwrap();
    assert_eq!(
        keys(&test, id).await,
        vec![piece_key(&test, id, 1, 0).to_string()]
    );
    assert_eq!(store.read_range(id, 0, 5).await.unwrap().as_ref(), b"fresh");
}

#[tokio::test]
async fn truncate_rewrites_the_straddling_piece_and_drops_the_rest() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let store = test.store(PIECE);
    let id = BlobId::data(OpaqueId::random());
    store.create(id).await.unwrap();
    let data = pattern(3 * PIECE as usize, 5);
    for chunk in data.chunks(PIECE as usize) {
        store.append(id, chunk).await.unwrap();
    }
    store.sync(id).await.unwrap();
    store.truncate(id, PIECE + 7).await.unwrap();
    assert_eq!(
        keys(&test, id).await,
        vec![
            piece_key(&test, id, 0, 0).to_string(),
            piece_key(&test, id, 0, PIECE).to_string()
        ]
    );
    let other = test.store(PIECE);
    assert_eq!(other.len(id).await.unwrap(), PIECE + 7);
    assert_eq!(
        other.read_range(id, 0, PIECE + 7).await.unwrap().as_ref(),
        &data[..PIECE as usize + 7]
    );
    // To 0: the blob still exists, as one empty piece.
    store.truncate(id, 0).await.unwrap();
    assert_eq!(other.len(id).await.unwrap(), 0);
    assert_eq!(keys(&test, id).await.len(), 1);
}

#[tokio::test]
async fn of_two_instances_creating_one_blob_exactly_one_wins() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let (a, b) = (test.store(PIECE), test.store(PIECE));
    for _ in 0..5 {
        let id = BlobId::data(OpaqueId::random());
        let (ra, rb) = tokio::join!(a.create(id), b.create(id));
        let won = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{ra:?} {rb:?}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert!(
                    matches!(e, BlobError::AlreadyExists(got) if got == id),
                    "{e:?}"
                );
            }
        }
    }
    // The conditional PUT itself refuses a second create of the marker.
    let id = BlobId::data(OpaqueId::random());
    a.create(id).await.unwrap();
    let again = test
        .raw()
        .put_opts(
            &piece_key(&test, id, 0, 0),
            PutPayload::new(),
            PutOptions {
                mode: object_store::PutMode::Create,
                ..PutOptions::default()
            },
        )
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn errors_never_carry_the_keys() {
    let Some(test) = S3Test::require() else {
        return;
    };
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = test.settings(PIECE);
    settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let store = S3BlobStore::open(&settings).unwrap();
    let err = store.ping().await.unwrap_err().to_string();
    assert!(err.contains("S3 ping failed"), "{err}");
    let id = BlobId::data(OpaqueId::random());
    let err2 = store.create(id).await.unwrap_err().to_string();
    for e in [&err, &err2] {
        assert!(!e.contains(support::s3::SECRET_ACCESS_KEY), "{e}");
        assert!(!e.contains(support::s3::ACCESS_KEY_ID), "{e}");
        assert!(!e.contains("Signature"), "{e}");
    }
    assert!(format!("{store:?}").starts_with("S3BlobStore"));
    assert!(!format!("{settings:?}").contains(support::s3::SECRET_ACCESS_KEY));
    // And the working store answers.
    test.store(PIECE).ping().await.unwrap();
}

#[tokio::test]
async fn repeated_reads_of_a_blob_list_it_once() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let writer = test.store(PIECE);
    let id = BlobId::data(OpaqueId::random());
    writer.create(id).await.unwrap();
    let data = pattern(16 * PIECE as usize, 6);
    for chunk in data.chunks(PIECE as usize) {
        writer.append(id, chunk).await.unwrap();
    }
    writer.sync(id).await.unwrap();
    // A download: many reads in batches that do not line up with the pieces.
    let counting = Arc::new(Counting::new(test.raw()));
    let reader = S3BlobStore::over(counting.clone(), &test.prefix, PIECE as usize);
    let batch = 100_000usize;
    let mut at = 0;
    while at < data.len() {
        let n = batch.min(data.len() - at);
        let got = reader.read_range(id, at as u64, n as u64).await.unwrap();
        assert_eq!(got.as_ref(), &data[at..at + n], "{at}+{n}");
        at += n;
    }
    assert_eq!(counting.lists(), 1, "11 reads, one listing");
    // `len` always lists, and that listing serves the reads after it.
    let other = Arc::new(Counting::new(test.raw()));
    let reader = S3BlobStore::over(other.clone(), &test.prefix, PIECE as usize);
    assert_eq!(reader.len(id).await.unwrap(), data.len() as u64);
    assert_eq!(reader.len(id).await.unwrap(), data.len() as u64);
    for at in [0, 5 * PIECE as usize + 3, data.len() - 10] {
        let got = reader.read_range(id, at as u64, 10).await.unwrap();
        assert_eq!(got.as_ref(), &data[at..at + 10]);
    }
    assert_eq!(other.lists(), 2, "two lens, three reads");
    // A mutation made here forgets the listing: the next read lists again.
    reader.truncate(id, 100).await.unwrap();
    let lists = other.lists();
    assert_eq!(
        reader.read_range(id, 0, 100).await.unwrap().as_ref(),
        &data[..100]
    );
    assert_eq!(other.lists(), lists + 1);
}

#[tokio::test]
async fn another_instance_changing_a_blob_between_reads_is_seen_never_mixed() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let counting = Arc::new(Counting::new(test.raw()));
    let a = S3BlobStore::over(counting.clone(), &test.prefix, PIECE as usize);
    let b = test.store(PIECE);
    let id = BlobId::data(OpaqueId::random());
    let p = PIECE as usize;
    b.create(id).await.unwrap();
    let mut data = pattern(4 * p, 7);
    for chunk in data.chunks(p) {
        b.append(id, chunk).await.unwrap();
    }
    b.sync(id).await.unwrap();
    assert_eq!(a.read_range(id, 0, 10).await.unwrap().as_ref(), &data[..10]);
    assert_eq!(counting.lists(), 1);

    // Extended: a read past the remembered end lists again and succeeds.
    let more = pattern(p, 8);
    b.append(id, &more).await.unwrap();
    b.sync(id).await.unwrap();
    data.extend_from_slice(&more);
    let got = a.read_range(id, 4 * PIECE, PIECE).await.unwrap();
    assert_eq!(got.as_ref(), &data[4 * p..]);
    assert_eq!(counting.lists(), 2);

    // Truncated: what is gone is out of range, what is left is read.
    b.truncate(id, 2 * PIECE + 7).await.unwrap();
    assert!(matches!(
        a.read_range(id, 2 * PIECE, 100).await,
        Err(BlobError::OutOfRange { blob_len, .. }) if blob_len == 2 * PIECE + 7
    ));
    let got = a.read_range(id, 0, 2 * PIECE + 7).await.unwrap();
    assert_eq!(got.as_ref(), &data[..2 * p + 7]);

    // Truncated into a piece and extended with other bytes, so that the remembered
    // listing still covers the range: the piece rewritten shorter is noticed.
    b.truncate(id, PIECE + 5).await.unwrap();
    let other = pattern(2 * p, 9);
    b.append(id, &other).await.unwrap();
    b.sync(id).await.unwrap();
    data.truncate(p + 5);
    data.extend_from_slice(&other);
    let lists = counting.lists();
    let got = a.read_range(id, PIECE, PIECE).await.unwrap();
    assert_eq!(got.as_ref(), &data[p..2 * p]);
    assert_eq!(counting.lists(), lists + 1);
    let got = a.read_range(id, 0, data.len() as u64).await.unwrap();
    assert_eq!(got.as_ref(), &data[..]);

    // Replaced by a shorter content: the old generation's pieces are gone.
    b.replace(id, b"replaced").await.unwrap();
    assert_eq!(a.read_range(id, 0, 8).await.unwrap().as_ref(), b"replaced");
    assert!(matches!(
        a.read_range(id, 0, 9).await,
        Err(BlobError::OutOfRange { blob_len: 8, .. })
    ));

    // Deleted: NotFound, not what was remembered.
    b.delete(id).await.unwrap();
    assert!(matches!(
        a.read_range(id, 0, 8).await,
        Err(BlobError::NotFound(got)) if got == id
    ));
}

#[tokio::test]
async fn a_replace_whose_cleanup_did_not_run_is_seen_by_the_next_listing() {
    let Some(test) = S3Test::require() else {
        return;
    };
    let a = test.store(PIECE);
    let id = BlobId::tail(OpaqueId::random());
    a.replace(id, b"old record").await.unwrap();
    assert_eq!(
        a.read_range(id, 0, 10).await.unwrap().as_ref(),
        b"old record"
    );
    // Another instance committed generation 1 and crashed before deleting generation 0.
    test.raw()
        .put(&piece_key(&test, id, 1, 0), b"new".to_vec().into())
        .await
        .unwrap();
    // Within the TTL a read that fits the remembered listing returns the old content,
    // whole (as a read that listed just before the commit would); never a mix.
    assert_eq!(
        a.read_range(id, 0, 10).await.unwrap().as_ref(),
        b"old record"
    );
    // `len` lists afresh, and the reads after it follow that listing.
    assert_eq!(a.len(id).await.unwrap(), 3);
    assert_eq!(a.read_range(id, 0, 3).await.unwrap().as_ref(), b"new");
    assert!(matches!(
        a.read_range(id, 0, 10).await,
        Err(BlobError::OutOfRange { blob_len: 3, .. })
    ));
}

// === a request-counting wrapper ===

/// Passes every call to `inner`, recording each GET's key and range and counting LISTs;
/// with `unconditional`, it drops every PUT's condition, as some S3 servers do.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    gets: Mutex<Vec<(String, Option<GetRange>)>>,
    lists: AtomicUsize,
    unconditional: bool,
}

impl Counting {
    fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            gets: Mutex::new(Vec::new()),
            lists: AtomicUsize::new(0),
            unconditional: false,
        }
    }

    /// The LISTs (any kind) sent so far.
    fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.unconditional {
            opts.mode = object_store::PutMode::Overwrite;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets
            .lock()
            .unwrap()
            .push((location.to_string(), options.range.clone()));
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_server_that_ignores_conditional_creates_is_found_out() {
    let Some(test) = S3Test::require() else {
        return;
    };
    // moto answers a second `If-None-Match: *` create of one key with 412.
    assert!(test.store(PIECE).refuses_second_create().await.unwrap());
    // A server that drops the condition overwrites: the probe says so.
    let mut lax = Counting::new(test.raw());
    lax.unconditional = true;
    let store = S3BlobStore::over(Arc::new(lax), &test.prefix, PIECE as usize);
    assert!(!store.refuses_second_create().await.unwrap());
    // Both probes deleted their object.
    let root = Path::from(format!("{}blobs", test.prefix));
    let left: Vec<ObjectMeta> = test.raw().list(Some(&root)).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_is_the_trust_for_the_store_tls() {
    let Some(test) = S3Test::require() else {
        return;
    };
    // The moto server's TLS listener: its certificate chains to the test CA only.
    let mut settings = test.settings(PIECE);
    settings.endpoint = Some(test.tls_endpoint.clone());
    settings.allow_http = false;
    settings.ca_file = Some(test.ca_file.clone());
    let store = S3BlobStore::open(&settings).unwrap();
    store.ping().await.unwrap();
    // A blob of several pieces written and read back over TLS, the same objects as the
    // plain listener's.
    let id = BlobId::data(OpaqueId::random());
    store.create(id).await.unwrap();
    let data = pattern(200_000, 9);
    for chunk in data.chunks(50_000) {
        store.append(id, chunk).await.unwrap();
    }
    store.sync(id).await.unwrap();
    assert_eq!(
        store.read_range(id, 1_000, 150_000).await.unwrap().as_ref(),
        &data[1_000..151_000]
    );
    assert_eq!(test.store(PIECE).len(id).await.unwrap(), 200_000);
    assert!(keys(&test, id).await.len() >= 2, "several pieces");
    store.delete(id).await.unwrap();
    assert!(keys(&test, id).await.is_empty());

    // With the system's roots, or with another CA, the handshake fails: no HTTP answer.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).unwrap().pem()).unwrap();
    for ca in [None, Some(other)] {
        settings.ca_file = ca.clone();
        let err = S3BlobStore::open(&settings)
            .unwrap()
            .ping()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("error sending request"),
            "{ca:?}: not refused at the handshake: {err}"
        );
    }
    // A file that holds no certificate is refused when the store opens.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    settings.ca_file = Some(junk);
    let err = S3BlobStore::open(&settings).unwrap_err().to_string();
    assert!(err.contains("blob.ca_file"), "{err}");
}
