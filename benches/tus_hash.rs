//! Per-chunk hashing cost of the tus core: what one 8 MiB PATCH body costs to hash for the
//! ledger (SHA-256 only), with a declared `sha1`/`sha256` checksum, and when the checksum
//! arrives as a trailer (all four algorithms). The upload path's other costs (encryption,
//! the whole-file SHA-256, fsync) are measured by the handler's benchmark.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sallyport::tus::checksum::{ChecksumAlgorithm, ChunkHasher, HashPlan};

const CHUNK: usize = 8 * 1024 * 1024;
/// The size of the body frames hyper typically hands over.
const FRAME: usize = 64 * 1024;

fn hashing(c: &mut Criterion) {
    let body = vec![0x5au8; CHUNK];
    let mut group = c.benchmark_group("tus_chunk_hasher_8MiB");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    group.sample_size(20);
    for (name, plan) in [
        ("sha256_only", HashPlan::Sha256Only),
        (
            "declared_sha256",
            HashPlan::Declared(ChecksumAlgorithm::Sha256),
        ),
        ("declared_sha1", HashPlan::Declared(ChecksumAlgorithm::Sha1)),
        ("declared_md5", HashPlan::Declared(ChecksumAlgorithm::Md5)),
        (
            "declared_sha512",
            HashPlan::Declared(ChecksumAlgorithm::Sha512),
        ),
        ("trailer_all_four", HashPlan::Trailer),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut h = ChunkHasher::new(plan);
                for frame in body.chunks(FRAME) {
                    h.update(frame);
                }
                h.finish(None)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
