//! At-rest throughput on one core over the same 256 MiB buffer (issue 3's targets):
//!
//! * `sha256`: sha2 0.11, 64 KiB updates — the whole-file hash alone;
//! * `seal_aws_lc`: this format's segment sealing alone (64 KiB segments, random nonce
//!   per segment from aws-lc, copied into a 4 MiB batch buffer and sealed in place);
//! * `hash_and_seal`: the writer's hot path, `SegmentEncoder::push` (SHA-256 + seal);
//! * `seal_aws_lc_lesssafe_in_place` / `_out_of_place`: the same sealing through aws-lc-rs's
//!   caller-chosen-nonce `LessSafeKey` (not FIPS-approved for sealing), with and without
//!   the copy — reference points for `docs/decisions/0001-aead-implementation.md`;
//! * `seal_rustcrypto`: RustCrypto `aes-gcm` 0.10 doing the same sealing, for comparison.
//!
//! Targets: `seal_aws_lc` ≥ 3× `sha256` and `hash_and_seal` ≥ 0.75× `sha256`.
//! Run: `cargo bench --bench at_rest`. Under `cargo test --all-targets` (no `--bench`
//! argument) the buffer is 8 MiB and each function runs once, so the test run stays fast.

// A benchmark panics on a broken setup; that is its error report.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as Nonce12, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sallyport::at_rest::SegmentSize;
use sallyport::at_rest::encoder::{Resume, SegmentEncoder};
use sallyport::at_rest::format::{Header, ObjectKeys, SEGMENT_OVERHEAD};
use sallyport::ids::OpaqueId;
use sallyport::keys::Dek;
use sha2::{Digest, Sha256};

const SEGMENT: usize = 64 * 1024;
const BATCH: usize = 4 * 1024 * 1024;

fn buffer_len() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        256 * 1024 * 1024
    } else {
        8 * 1024 * 1024
    }
}

fn keys() -> ObjectKeys {
    let dek = Dek::generate().unwrap();
    let s = SegmentSize::new(SEGMENT as u32).unwrap();
    Header::create(OpaqueId::random(), [7; 16], s, &dek)
        .unwrap()
        .1
}

fn at_rest(c: &mut Criterion) {
    let len = buffer_len();
    let mut buf = vec![0u8; len];
    // Incompressible-looking content; the primitives do not care, but be honest.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }

    let mut group = c.benchmark_group("at_rest_256MiB");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("sha256", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            for chunk in buf.chunks(SEGMENT) {
                h.update(chunk);
            }
            black_box(h.finalize())
        })
    });

    let stride = SEGMENT + SEGMENT_OVERHEAD;
    let mut k = keys();
    let mut batch = vec![0u8; BATCH / stride * stride];
    group.bench_function("seal_aws_lc", |b| {
        b.iter(|| {
            let mut at = 0;
            for (i, chunk) in buf.chunks(SEGMENT).enumerate() {
                if at + stride > batch.len() {
                    black_box(&batch);
                    at = 0;
                }
                k.seal_segment(i as u64, false, chunk, &mut batch[at..at + stride])
                    .unwrap();
                at += stride;
            }
            black_box(&batch);
        })
    });

    // One encoder reused across iterations, as a writer reuses its batch buffer.
    let mut enc = SegmentEncoder::new(keys(), BATCH, Resume::empty());
    group.bench_function("hash_and_seal", |b| {
        b.iter(|| {
            enc.reset(Resume::empty());
            let mut rest = &buf[..];
            while !rest.is_empty() {
                let n = enc.push(rest).unwrap();
                rest = &rest[n..];
                if enc.batch_is_full() {
                    black_box(enc.batch());
                    enc.clear_batch();
                }
            }
            black_box(enc.hasher().clone().finalize())
        })
    });

    // Reference points for the decision record: the same sealing through aws-lc-rs's
    // caller-chosen-nonce API (`LessSafeKey`, which FIPS mode does not approve for
    // sealing), in place after a copy and out of place (no copy).
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[5u8; 32]).unwrap());
    group.bench_function("seal_aws_lc_lesssafe_in_place", |b| {
        b.iter(|| {
            let mut at = 0;
            for (i, chunk) in buf.chunks(SEGMENT).enumerate() {
                if at + stride > batch.len() {
                    black_box(&batch);
                    at = 0;
                }
                let mut nonce = [0u8; 12];
                aws_lc_rs::rand::fill(&mut nonce).unwrap();
                let out = &mut batch[at..at + stride];
                out[..12].copy_from_slice(&nonce);
                let body = &mut out[12..12 + chunk.len()];
                body.copy_from_slice(chunk);
                let aad = (i as u64).to_be_bytes();
                let tag = raw
                    .seal_in_place_separate_tag(
                        Nonce12::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        body,
                    )
                    .unwrap();
                out[12 + chunk.len()..].copy_from_slice(tag.as_ref());
                at += stride;
            }
            black_box(&batch);
        })
    });
    group.bench_function("seal_aws_lc_lesssafe_out_of_place", |b| {
        b.iter(|| {
            let mut at = 0;
            for (i, chunk) in buf.chunks(SEGMENT).enumerate() {
                if at + stride > batch.len() {
                    black_box(&batch);
                    at = 0;
                }
                let mut nonce = [0u8; 12];
                aws_lc_rs::rand::fill(&mut nonce).unwrap();
                let out = &mut batch[at..at + stride];
                out[..12].copy_from_slice(&nonce);
                let (body, tag) = out[12..].split_at_mut(chunk.len());
                let aad = (i as u64).to_be_bytes();
                raw.seal_out_of_place_scatter(
                    Nonce12::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    chunk,
                    body,
                    &[],
                    tag,
                )
                .unwrap();
                at += stride;
            }
            black_box(&batch);
        })
    });

    let cipher = Aes256Gcm::new_from_slice(&[9u8; 32]).unwrap();
    group.bench_function("seal_rustcrypto", |b| {
        b.iter(|| {
            let mut at = 0;
            for (i, chunk) in buf.chunks(SEGMENT).enumerate() {
                if at + stride > batch.len() {
                    black_box(&batch);
                    at = 0;
                }
                // Same shape as ours: nonce ‖ ciphertext ‖ tag, sealed in place. A counter
                // nonce is fine for a speed comparison (the key is throwaway).
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                let out = &mut batch[at..at + stride];
                out[..12].copy_from_slice(&nonce);
                let body = &mut out[12..12 + chunk.len()];
                body.copy_from_slice(chunk);
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"aad", body)
                    .unwrap();
                out[12 + chunk.len()..].copy_from_slice(&tag);
                at += stride;
            }
            black_box(&batch);
        })
    });
    group.finish();
}

criterion_group!(benches, at_rest);
criterion_main!(benches);
